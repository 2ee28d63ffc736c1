//! The self-arming revert, pure: the script a transient systemd timer runs on the host when a
//! deploy is not confirmed in time, and the `systemd-run` command line that arms it.
//!
//! The script runs under the service's lock and only while `current` still points at the
//! unconfirmed release (a newer deploy or rollback wins). It records its real outcome in the
//! history: `reverted`, or `revert-failed` when the activation of the previous release failed
//! (for example its directory is gone), in which case `current` stays where it was and the
//! next deploy sees that release was never verified.

use std::time::Duration;

use crate::plan::Activation;
use crate::release::{HistoryRecord, Paths};
use crate::shell::quote;

/// Placeholders the script fills in when it runs.
pub const TIME: &str = "__TIME__";
pub const OUTCOME: &str = "__OUTCOME__";
/// The deadline the timer was armed for (UTC, from the host's clock), filled in when it runs.
pub const DEADLINE: &str = "__DEADLINE__";

/// The script the self-revert timer runs.
pub fn script(
    paths: &Paths,
    unconfirmed: &str,
    activation: &Activation,
    record: &HistoryRecord,
) -> String {
    let line = serde_json::to_string(record).expect("history serialises");
    format!(
        "cd \"$HOME\" || exit 1\n\
         exec 9>>{lock}\n\
         flock -w 600 9 || exit 1\n\
         printf 'self-revert of %s (since %s)\\n' {unconfirmed_q} \"$(date -u +%Y-%m-%dT%H:%M:%SZ)\" > {info}\n\
         [ \"$(readlink {current})\" = {expected} ] || {{ echo 'a newer deploy or rollback happened: nothing to revert'; exit 0; }}\n\
         (\n{activation})\n\
         rc=$?\n\
         if [ \"$rc\" -eq 0 ]; then outcome=reverted; else outcome=revert-failed; echo \"the revert failed (exit $rc): the unverified release stays current\" >&2; fi\n\
         now=$(date -u +%Y-%m-%dT%H:%M:%SZ)\n\
         dl=$(date -u -d \"@$(cat {deadline} 2>/dev/null)\" +%Y-%m-%dT%H:%M:%SZ 2>/dev/null) || dl=unknown\n\
         printf '%s\\n' {line} | sed \"s/{TIME}/$now/g; s/{OUTCOME}/$outcome/g; s/{DEADLINE}/$dl/g\" >> {history}\n\
         exit $rc\n",
        lock = quote(&paths.lock()),
        info = quote(&format!("{}.info", paths.lock())),
        unconfirmed_q = quote(unconfirmed),
        current = quote(&paths.current()),
        expected = quote(&format!("releases/{unconfirmed}")),
        activation = activation.script(paths),
        line = quote(&line),
        history = quote(&paths.history()),
        deadline = quote(&deadline_path(paths)),
    )
}

/// Where the host records the revert's deadline (seconds since the epoch, its own clock).
pub fn deadline_path(paths: &Paths) -> String {
    format!("{}/revert.deadline", paths.dir())
}

/// The state of a self-revert worth telling the user about (`ferry status`, `ferry releases`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    /// Armed: the host reverts the current release at `deadline` (seconds since the epoch,
    /// the host's clock, whose time was `now` when read).
    Pending {
        deadline: Option<u64>,
        now: Option<u64>,
    },
    /// The current release was never confirmed and its timer is gone.
    Lost,
}

/// What to tell about `service`'s self-revert of its current release `current`.
pub fn notice(service: &str, current: &str, state: Notice) -> String {
    match state {
        Notice::Pending { deadline, now } => {
            let when = deadline.map(|d| {
                let at = humantime::format_rfc3339_seconds(
                    std::time::UNIX_EPOCH + Duration::from_secs(d),
                );
                match now {
                    Some(n) if d > n => format!(" at {at} (in {}s)", d - n),
                    _ => format!(" at {at}"),
                }
            });
            format!(
                "{service}: the deploy of {current} is not confirmed: the host reverts it to the previous release by itself{} unless `ferry rollback {service} --to {current}` confirms it",
                when.unwrap_or_default()
            )
        }
        Notice::Lost => format!(
            "{service}: the deploy of {current} was never confirmed and its self-revert timer is gone (the user manager restarted or the host rebooted before the deadline): `ferry rollback {service}` goes back to the last verified release, `ferry rollback {service} --to {current}` keeps it"
        ),
    }
}

/// Where the host records which release the timer guards (removed by the confirm; see
/// [`crate::plan::RemoteState::revert_lost`]).
pub fn target_path(paths: &Paths) -> String {
    format!("{}/revert.target", paths.dir())
}

/// Where the script is stored on the host (systemd would expand `$VAR`s in a command line).
pub fn script_path(paths: &Paths) -> String {
    format!("{}/revert.sh", paths.dir())
}

/// The line ending the script in [`arm_command`]'s here-document.
const SCRIPT_END: &str = "FERRY_REVERT_SCRIPT_END";

/// Shell command that stores `script` (in a here-document: the command may be part of a
/// larger one whose stdin carries other data), records which release the timer guards,
/// clears an old timer and arms a new one firing after `after`; prints [`ARMED`] once armed
/// and its fire time read back from systemd is the deadline it computed.
///
/// The deadline is an absolute time on the HOST's clock (`--on-calendar=@EPOCH`): a
/// `daemon-reload` re-arms an `--on-active=` timer from the moment of the reload (systemd
/// #16186, #31914, #31945), so reloads (another deploy on the same user) postponed it for
/// ever; a realtime timer keeps its time across reloads and daemon-reexec (checked on 252).
/// The monotonic `--on-active=` stays as a second trigger (whichever comes first fires): it
/// fires on time when nothing reloads, even if the host's clock is stepped back.
pub fn arm_command(
    paths: &Paths,
    service: &str,
    unconfirmed: &str,
    after: Duration,
    script: &str,
) -> String {
    assert!(
        !script.lines().any(|l| l == SCRIPT_END),
        "the revert script holds its here-document's end line"
    );
    let unit = paths.revert_unit();
    let file = script_path(paths);
    // Whole seconds, rounded up: the realtime trigger never fires before `after`.
    let secs = after.as_millis().div_ceil(1000);
    let run = crate::shell::command([
        "systemd-run",
        "--user",
        "--quiet",
        "--collect",
        &format!("--unit={unit}"),
        &format!(
            "--description=ferry: revert {service} unless the deploy of {unconfirmed} is confirmed"
        ),
        // Every line of the script under one name: `journalctl --user -t UNIT` shows them
        // even when journald could not tell the unit of a line (the script prints and
        // exits before journald reads its cgroup, so `-u` misses that line).
        &format!("--property=SyslogIdentifier={unit}"),
        &format!("--on-active={}ms", after.as_millis()),
        "--timer-property=AccuracySec=100ms",
    ]);
    format!(
        "cd \"$HOME\" && cat > {f} <<'{SCRIPT_END}' && chmod 700 {f} && printf '%s\\n' {id} > {target} && \
         {{ systemctl --user stop {u}.timer {u}.service >/dev/null 2>&1; systemctl --user reset-failed {u}.timer {u}.service >/dev/null 2>&1; true; }} && \
         d=$(( $(date +%s) + {secs} )) && printf '%s\\n' \"$d\" > {dl} && \
         {run} \"--on-calendar=@$d\" /bin/sh \"$HOME\"/{f} && \
         n=$(date -d \"$(systemctl --user show -p NextElapseUSecRealtime --value {u}.timer)\" +%s) && \
         {{ [ \"$n\" = \"$d\" ] || {{ echo \"the self-revert timer {unit} fires at $n, not at the deadline $d it was armed for\" >&2; systemctl --user stop {u}.timer >/dev/null 2>&1; false; }}; }} && \
         echo {ARMED} && echo \"{DEADLINE_AT} $d\"\n{script}{nl}{SCRIPT_END}\n",
        nl = if script.ends_with('\n') { "" } else { "\n" },
        f = quote(&file),
        u = quote(&unit),
        id = quote(unconfirmed),
        target = quote(&target_path(paths)),
        dl = quote(&deadline_path(paths)),
    )
}

/// Printed by [`arm_command`] with the deadline (seconds since the epoch, the host's clock).
pub const DEADLINE_AT: &str = "@ferry-deadline";

/// See [`arm_command`].
pub const ARMED: &str = "@ferry-armed";

/// Stop the timer (and a revert in progress); prints where `current` points afterwards.
pub fn disarm_command(paths: &Paths) -> String {
    let unit = quote(&paths.revert_unit());
    format!(
        "systemctl --user stop {unit}.timer {unit}.service >/dev/null 2>&1; cd \"$HOME\" && readlink {}",
        quote(&paths.current())
    )
}

/// Confirm a deploy of `release` in one command: stop the timer (when `armed`), then, only if
/// `current` is still that release, append the history line and delete the old releases
/// `prune`. Prints where `current` points, then [`PRUNED`] when the releases were deleted,
/// [`NOT_RECORDED`] when the history line could not be written (the errors on stderr).
///
/// The script is one step on the host that runs to its end whatever happens to the
/// connection: it runs in a session of its own (`setsid`) with its output in temporary files
/// that the command prints once it is done, so ferry killed or cut off after sending it
/// cannot leave the timer stopped with no history line. `pause` (seconds; tests only) waits
/// between stopping the timer and recording.
pub fn confirm_command(
    paths: &Paths,
    release: &str,
    armed: bool,
    history_line: &str,
    prune: &[String],
    pause: Option<u64>,
) -> String {
    let body = confirm_body(paths, release, armed, history_line, prune, pause);
    format!(
        "cd \"$HOME\" || exit 1; o=$(mktemp) || exit 1; \
         if command -v setsid >/dev/null 2>&1; then s=setsid; else s=; fi; \
         $s sh -c {body} >\"$o\" 2>\"$o.err\" </dev/null & wait $!; r=$?; \
         cat \"$o\"; cat \"$o.err\" >&2; rm -f \"$o\" \"$o.err\"; exit $r",
        body = quote(&body)
    )
}

/// The script of [`confirm_command`].
fn confirm_body(
    paths: &Paths,
    release: &str,
    armed: bool,
    history_line: &str,
    prune: &[String],
    pause: Option<u64>,
) -> String {
    let unit = quote(&paths.revert_unit());
    let mut stop = if armed {
        format!("systemctl --user stop {unit}.timer {unit}.service >/dev/null 2>&1; ")
    } else {
        String::new()
    };
    if let Some(secs) = pause {
        stop.push_str(&format!("sleep {secs}; "));
    }
    let mut cmd = format!(
        "{stop}cd \"$HOME\" && c=$(readlink {current}); printf '%s\\n' \"$c\"; \
         [ \"$c\" = {expected} ] || exit 0; printf '%s\\n' {line} >> {history} || echo {NOT_RECORDED}; \
         rm -f {target}",
        current = quote(&paths.current()),
        expected = quote(&format!("releases/{release}")),
        line = quote(history_line),
        history = quote(&paths.history()),
        target = quote(&target_path(paths)),
    );
    if !prune.is_empty() {
        let doomed: Vec<String> = prune.iter().map(|d| quote(d)).collect();
        cmd.push_str(&format!(
            "; (cd {} && rm -rf -- {}) && echo {PRUNED}",
            quote(&paths.releases()),
            doomed.join(" ")
        ));
    }
    cmd
}

/// See [`confirm_command`].
pub const PRUNED: &str = "@ferry-pruned";
/// See [`confirm_command`].
pub const NOT_RECORDED: &str = "@ferry-not-recorded";

/// Cancel a pending revert, whatever state it is in.
pub fn cancel_command(paths: &Paths) -> String {
    let unit = quote(&paths.revert_unit());
    format!(
        "systemctl --user stop {unit}.timer {unit}.service >/dev/null 2>&1; cd \"$HOME\" && rm -f {}; true",
        quote(&target_path(paths))
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::release::{Action, Outcome};

    fn activation() -> Activation {
        Activation {
            release: "20261124T000000Z-00000001".into(),
            install: vec!["web.service".into()],
            reload: true,
            remove: vec![],
            enable: vec![],
            stop_first: vec![],
            restart: vec!["web.service".into()],
            start: vec![],
            switch: None,
        }
    }

    fn record() -> HistoryRecord {
        HistoryRecord {
            time: TIME.into(),
            action: Action::Revert,
            release: "20261124T000000Z-00000001".into(),
            previous: None,
            outcome: Outcome::Other(OUTCOME.into()),
            by: "me".into(),
            git_commit: None,
            reason: None,
        }
    }

    #[test]
    fn guards_on_current_and_takes_the_lock() {
        let p = Paths::new("web");
        let s = script(&p, "20261124T000001Z-00000002", &activation(), &record());
        assert!(s.contains("[ \"$(readlink .local/share/ferry/web/current)\" = releases/20261124T000001Z-00000002 ]"), "{s}");
        assert!(s.contains("flock -w 600 9"));
        assert!(s.contains("restart --no-block web.service"));
    }

    /// A scratch home whose `web` service has `current` -> `releases/CURRENT` (that directory
    /// created only when `make_current`), and the service's directory in it.
    fn scratch_home(current: &str, make_current: bool) -> (tempfile::TempDir, std::path::PathBuf) {
        let home = tempfile::tempdir().unwrap();
        let dir = home.path().join(Paths::new("web").dir());
        let releases = dir.join("releases");
        std::fs::create_dir_all(if make_current {
            releases.join(current)
        } else {
            releases
        })
        .unwrap();
        std::os::unix::fs::symlink(format!("releases/{current}"), dir.join("current")).unwrap();
        (home, dir)
    }

    /// Run `script` with sh, HOME being `home`.
    fn sh(script: &str, home: &tempfile::TempDir) -> std::process::Output {
        std::process::Command::new("sh")
            .arg("-c")
            .arg(script)
            .env("HOME", home.path())
            .output()
            .unwrap()
    }

    /// The script records what really happened: run it with sh in a scratch home where the
    /// previous release's directory is gone and `current` points at the unconfirmed release.
    #[test]
    fn a_revert_that_cannot_run_records_revert_failed() {
        let (home, dir) = scratch_home("20261124T000001Z-00000002", true);
        let p = Paths::new("web");
        let s = script(&p, "20261124T000001Z-00000002", &activation(), &record());
        assert!(!sh(&s, &home).status.success());
        let history = std::fs::read_to_string(dir.join("history.jsonl")).unwrap();
        let rec: HistoryRecord = serde_json::from_str(history.trim()).unwrap();
        assert_eq!(rec.outcome, Outcome::RevertFailed, "{history}");
        assert!(!rec.time.contains(TIME));
        assert_eq!(
            std::fs::read_link(dir.join("current")).unwrap(),
            std::path::Path::new("releases/20261124T000001Z-00000002")
        );
    }

    /// Confirming records the release only while `current` is still it.
    #[test]
    fn confirm_records_only_while_current_is_the_release() {
        let (home, dir) = scratch_home("R2", false);
        let p = Paths::new("web");
        std::fs::create_dir_all(dir.join("releases/R0")).unwrap();
        let run = |release: &str| {
            let out = sh(
                &confirm_command(
                    &p,
                    release,
                    false,
                    "{\"it's\":\"$x\"}",
                    &["R0".to_string()],
                    None,
                ),
                &home,
            );
            assert!(out.status.success(), "{out:?}");
            String::from_utf8(out.stdout).unwrap()
        };
        // Not current (the revert fired): nothing recorded, nothing pruned.
        assert_eq!(run("R1"), "releases/R2\n");
        assert!(!dir.join("history.jsonl").exists());
        assert!(dir.join("releases/R0").exists());
        assert_eq!(run("R2"), format!("releases/R2\n{PRUNED}\n"));
        assert_eq!(
            std::fs::read_to_string(dir.join("history.jsonl")).unwrap(),
            "{\"it's\":\"$x\"}\n"
        );
        assert!(!dir.join("releases/R0").exists());
    }

    /// The "newer deploy happened" guard, run: nothing is reverted or recorded.
    #[test]
    fn a_newer_deploy_wins_over_the_revert() {
        let (home, dir) = scratch_home("20261124T000003Z-00000003", true);
        let p = Paths::new("web");
        let s = script(&p, "20261124T000001Z-00000002", &activation(), &record());
        let out = sh(&s, &home);
        assert!(out.status.success());
        assert!(String::from_utf8_lossy(&out.stdout).contains("nothing to revert"));
        assert!(!dir.join("history.jsonl").exists());
        assert_eq!(
            std::fs::read_link(dir.join("current")).unwrap(),
            std::path::Path::new("releases/20261124T000003Z-00000003")
        );
    }
}
