//! Faults of the reliability round kept fixed against the real remote: SIGTERM and SIGINT in
//! the middle of a deploy (every result and the summary still printed, the truth said, the host
//! left as said), a signal after the end, what the next deploy cleaned up, a user without
//! linger, the client's clock an hour off, a flood of journal lines, a filesystem out of inodes.
//! Users ferry104..ferry108 and the nolinger user; no TCP port is listened on.

use crate::faults::{Bg, Gate, current, result, started_from, started_from_unit};
use crate::support::{Project, Run, host_table, remote};

/// deploy.toml of one service `app` (app.service) on `user`, shipping the file `msg`.
fn config(user: &str, extra: &str) -> String {
    format!(
        "{}[services.app]\nunits = [\"app.service\"]\nstart_timeout = \"3s\"\nsettle_time = \"0.3s\"\n{extra}\n\
         [[services.app.files]]\nsource = \"msg\"\ndest = \"msg\"\n",
        host_table("web1", user)
    )
}

fn release_of(run: &Run) -> String {
    let id = result(run)["release"].as_str().map(String::from);
    format!("releases/{}", id.unwrap_or_else(|| panic!("{run}")))
}

/// Send `sig` (TERM, INT, KILL) to the process `pid`, with the shell's built-in kill.
pub(crate) fn signal(pid: u32, sig: &str) {
    let ok = std::process::Command::new("sh")
        .args(["-c", &format!("kill -{sig} {pid}")])
        .status()
        .unwrap();
    assert!(ok.success());
}

/// Poll until `f` is true (a bounded number of tries; no wall-clock assertion).
fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..900 {
        if f() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("gave up waiting for {what}");
}

fn lock_free(user: &str) -> bool {
    remote()
        .ssh_raw(user, "flock -n ~/.local/share/ferry/app/lock true")
        .status
        .success()
}

fn partials(user: &str) -> usize {
    remote()
        .ssh(
            user,
            "ls -a ~/.local/share/ferry/app/releases | grep -c partial; true",
        )
        .trim()
        .parse()
        .unwrap()
}

/// The last JSON line is a `summary` with `code`.
fn assert_summary_last(run: &Run, code: i64) {
    let events = run.json();
    let last = events.last().unwrap_or_else(|| panic!("no events\n{run}"));
    assert_eq!(last["type"], "summary", "{run}");
    assert_eq!(last["exit_code"], code, "{run}");
}

/// SIGTERM before the switch and SIGINT after it: exit 143 / 130, a `result` saying where the
/// host was, the `rollout` and the `summary` last; the host as said (old release serving, or
/// reverted by itself); the next deploys say what they cleaned up and what the host did.
#[test]
fn sigterm_and_sigint_mid_deploy_print_every_result_and_leave_the_host_as_said() {
    let user = "ferry104";
    let r = remote();
    r.reset(user);
    let p = Project::new();
    started_from_unit(&p, "app");
    p.write("msg", "one\n");
    p.config(&config(user, "confirm_timeout = \"6s\""));
    let run = p.ferry(&["--output", "json", "deploy"]);
    run.assert_code(0);
    let v1 = release_of(&run);

    // SIGTERM before the upload: nothing the service uses changed.
    p.write("msg", "two\n");
    let gate = Gate::new();
    let pause = gate.env("upload");
    let mut bg = Bg::spawn(
        &p,
        &["--output", "json", "deploy"],
        &[("FERRY_FAULT_PAUSE", &pause)],
    );
    bg.wait_for_line("FERRY_FAULT_PAUSE=upload");
    signal(bg.pid(), "TERM");
    let run = bg.finish();
    run.assert_code(143);
    assert_summary_last(&run, 143);
    let res = result(&run);
    assert_eq!(res["result"], "interrupted", "{run}");
    let reason = res["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("interrupted by SIGTERM in step `upload` of the deploy of ")
            && reason.contains(&format!(
                "before activation: the host still runs release {}",
                &v1["releases/".len()..]
            )),
        "{run}"
    );
    let rollout = &run.events("rollout")[0];
    assert_eq!(rollout["stopped"], "interrupted by SIGTERM", "{run}");
    assert!(
        run.stderr
            .contains("interrupted: hosts not yet switched keep their current release")
            && run.stderr.contains("(SIGTERM)"),
        "{run}"
    );
    assert_eq!(current(user, "app"), v1);
    assert_eq!(started_from(user, "app"), v1);
    wait_for("the lock to be free", || lock_free(user));
    assert_eq!(partials(user), 1, "the interrupted upload's staging dir");

    // The next deploy removes it and says so.
    let run = p.ferry(&["deploy"]);
    run.assert_code(0);
    assert!(
        run.stderr
            .contains("removed what an interrupted deploy left: 1 staging directory (releases/."),
        "{run}"
    );
    assert_eq!(partials(user), 0);
    let v2 = current(user, "app");
    assert_ne!(v2, v1);

    // SIGINT after the switch: the host is on the new release and reverts by itself.
    p.write("msg", "three\n");
    let pause = gate.env("verify");
    let mut bg = Bg::spawn(
        &p,
        &["--output", "json", "deploy"],
        &[("FERRY_FAULT_PAUSE", &pause)],
    );
    bg.wait_for_line("FERRY_FAULT_PAUSE=verify");
    let v3 = current(user, "app");
    assert_ne!(v3, v2, "switched before verify");
    signal(bg.pid(), "INT");
    let run = bg.finish();
    run.assert_code(130);
    assert_summary_last(&run, 130);
    let res = result(&run);
    assert_eq!(res["result"], "interrupted", "{run}");
    let reason = res["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("interrupted by SIGINT in step `verify`")
            && reason.contains(&format!(
                "self-revert armed on the host brings release {} back",
                &v2["releases/".len()..]
            )),
        "{run}"
    );
    wait_for("the self-revert", || current(user, "app") == v2);
    wait_for("the service restarted from v2", || {
        started_from(user, "app") == v2
    });

    // The next deploy says the host reverted by itself.
    let run = p.ferry(&["deploy"]);
    run.assert_code(0);
    assert!(
        run.stderr.contains(&format!(
            "since the last deploy, the host reverted by itself to release {}",
            &v2["releases/".len()..]
        )),
        "{run}"
    );
    r.reset(user);
}

/// A signal once every host has its result (here during a slow `local_after` hook) interrupts
/// nothing: the deploy's own exit code and summary, no "interrupted".
#[test]
fn a_signal_after_every_host_is_done_interrupts_nothing() {
    let user = "ferry105";
    let r = remote();
    r.reset(user);
    let p = Project::new();
    started_from_unit(&p, "app");
    p.write("msg", "one\n");
    p.write(
        "hook.sh",
        "touch ready\nwhile [ ! -e go ]; do sleep 0.1; done\n",
    );
    p.config(&config(
        user,
        "[services.app.hooks]\nlocal_after = \"sh hook.sh\"",
    ));
    let mut bg = Bg::spawn(&p, &["--output", "json", "deploy"], &[]);
    let ready = p.path("ready");
    wait_for("the local_after hook", || ready.exists());
    signal(bg.pid(), "INT");
    bg.wait_for_line("nothing is interrupted");
    p.write("go", "");
    let run = bg.finish();
    run.assert_code(0);
    assert_summary_last(&run, 0);
    assert_eq!(result(&run)["result"], "ok", "{run}");
    assert!(!run.stderr.contains("interrupted:"), "{run}");
    let v1 = release_of(&run);
    assert_eq!(current(user, "app"), v1);
    assert_eq!(started_from(user, "app"), v1);
    let history = r.ssh(user, "tail -n 1 ~/.local/share/ferry/app/history.jsonl");
    assert!(history.contains("\"outcome\":\"ok\""), "{history}");
    r.reset(user);
}

/// A user without linger: refused (nothing on the host changes) unless --allow-no-linger,
/// which warns; `ferry status` says the services live only while someone is logged in.
#[test]
fn a_user_without_linger_is_refused_unless_allowed_and_status_says_so() {
    let r = remote();
    let user = r.nolinger_user.clone();
    let home = r.home(&user);
    let clean =
        format!("rm -rf {home}/.local/share/ferry/app {home}/.config/systemd/user/app.service");
    let _ = r.ssh_raw(&user, "systemctl --user stop app.service");
    assert!(r.root(&clean).status.success());
    let p = Project::new();
    started_from_unit(&p, "app");
    p.write("msg", "one\n");
    p.config(&config(&user, ""));

    let run = p.ferry(&["--output", "json", "deploy"]);
    run.assert_code(1);
    let res = result(&run);
    assert_eq!(res["result"], "refused", "{run}");
    let reason = res["reason"].as_str().unwrap();
    assert!(
        reason.starts_with(&format!("{user} has no linger on this host"))
            && reason.contains(&format!("loginctl enable-linger {user}"))
            && reason.contains("--allow-no-linger"),
        "{run}"
    );
    let exists = r.root(&format!("test -e {home}/.local/share/ferry/app/current"));
    assert!(
        !exists.status.success(),
        "the refused deploy changed the host"
    );

    let run = p.ferry(&["deploy", "--allow-no-linger"]);
    run.assert_code(0);
    assert!(
        run.stderr
            .contains(&format!("{user} has no linger (--allow-no-linger)")),
        "{run}"
    );
    let v1 = current(&user, "app");
    assert!(v1.starts_with("releases/"), "{v1}");

    let status = p.ferry(&["status"]);
    assert!(
        status.stderr.contains(&format!(
            "{user} has no linger: its services live only while someone is logged in as {user}"
        )),
        "{status}"
    );
    let json = p.ferry(&["--output", "json", "status"]);
    let unit = &json.events("unit")[0];
    assert_eq!(unit["linger"], false, "{json}");

    let _ = r.ssh_raw(&user, "systemctl --user stop app.service");
    assert!(r.root(&clean).status.success());
}

/// The client's clock an hour ahead (then behind): the release id takes the host's time, so
/// `logs --since-deploy` shows the deploy's lines.
#[test]
fn a_client_clock_off_by_an_hour_still_finds_the_deploys_journal() {
    let user = "ferry106";
    let r = remote();
    r.reset(user);
    let p = Project::new();
    p.write(
        "app.service",
        "[Service]\nExecStart=/bin/sh -c 'cat %h/.local/share/ferry/app/current/msg; exec sleep 600'\n",
    );
    for (offset, msg) in [("3600", "ahead\n"), ("-3600", "behind\n")] {
        let env = [("FERRY_FAULT_CLOCK_OFFSET", offset)];
        p.write("msg", msg);
        p.config(&config(user, ""));
        let run = p.ferry_env(&["--output", "json", "deploy"], &env);
        run.assert_code(0);
        let id = result(&run)["release"].as_str().unwrap().to_string();
        let stamp = format!(
            "{}-{}-{}T{}:{}:{}Z",
            &id[0..4],
            &id[4..6],
            &id[6..8],
            &id[9..11],
            &id[11..13],
            &id[13..15]
        );
        let made = humantime::parse_rfc3339(&stamp)
            .unwrap()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let host_now: u64 = r.ssh(user, "date +%s").trim().parse().unwrap();
        assert!(
            made <= host_now && host_now - made < 600,
            "release {id} is not of the host's time ({host_now})"
        );
        // The user manager's line of this deploy's start (the unit's own stdout line is not
        // asserted: journald dropped it now and then on this remote, with or without ferry).
        let logs = p.ferry_env(&["logs", "app", "--since-deploy"], &env);
        logs.assert_code(0);
        assert!(logs.stdout.contains("Started app.service."), "{logs}");
    }
    r.reset(user);
}

/// A failing unit that floods its journal (a 1 MiB line, then 300 lines of 1.5 KB): the
/// excerpt a failed deploy prints is capped in all (and per line), and says what it cut.
#[test]
fn a_failing_deploys_journal_excerpt_is_capped_and_says_what_was_cut() {
    let user = "ferry107";
    let r = remote();
    r.reset(user);
    let p = Project::new();
    p.write("msg", "one\n");
    p.write(
        "crash.sh",
        "#!/bin/sh\nhead -c 1048576 /dev/zero | tr '\\0' x; echo\n\
         y=$(head -c 1500 /dev/zero | tr '\\0' y)\ni=0\nwhile [ $i -lt 300 ]; do printf 'line %d %s\\n' $i \"$y\"; i=$((i+1)); done\nexit 1\n",
    );
    p.write(
        "app.service",
        "[Service]\nExecStart=%h/.local/share/ferry/app/current/bin/crash.sh\n",
    );
    // settle_time long enough for the flood to be written before the unit exits.
    let cfg = config(user, "").replace("settle_time = \"0.3s\"", "settle_time = \"5s\"");
    p.config(&format!(
        "{cfg}[[services.app.files]]\nsource = \"crash.sh\"\ndest = \"bin/crash.sh\"\nmode = \"0755\"\n"
    ));
    let run = p.ferry(&["deploy"]);
    run.assert_code(1);
    assert!(
        run.stdout.len() < 100_000,
        "{} bytes of output",
        run.stdout.len()
    );
    // However much of the flood journald had taken in when the excerpt was read, the
    // excerpt is at most 64 KiB and says how many earlier lines it left out.
    assert!(
        run.stdout.contains(" earlier line(s), ")
            && run
                .stdout
                .contains("`ferry logs app --since-deploy` shows them all]"),
        "{}",
        &run.stdout[run.stdout.len().saturating_sub(3000)..]
    );
    r.reset(user);
}

/// A filesystem out of inodes during the upload: the error names the host, the path and the
/// cause (not SFTP's bare "Failure"); the old release keeps serving.
#[test]
fn a_filesystem_out_of_inodes_is_named_with_the_host_and_the_path() {
    let user = "ferry108";
    let r = remote();
    r.reset(user);
    let home = r.home(user);
    let dir = format!("{home}/.local/share/ferry");
    r.ssh(user, "mkdir -p ~/.local/share/ferry");
    let out = r.root(&format!(
        "umount {dir} 2>/dev/null; mount -t tmpfs -o size=20m,nr_inodes=300,mode=0755,uid=$(id -u {user}),gid=$(id -g {user}) tmpfs {dir}"
    ));
    assert!(out.status.success(), "{out:?}");
    let p = Project::new();
    started_from_unit(&p, "app");
    p.write("msg", "one\n");
    p.config(&config(user, ""));
    let run = p.ferry(&["--output", "json", "deploy"]);
    run.assert_code(0);
    let v1 = release_of(&run);

    p.write("new.txt", "a new file\n");
    p.config(&format!(
        "{}[[services.app.files]]\nsource = \"new.txt\"\ndest = \"new.txt\"\n",
        config(user, "")
    ));
    let gate = Gate::new();
    let pause = gate.env("upload");
    let mut bg = Bg::spawn(
        &p,
        &["--output", "json", "deploy"],
        &[("FERRY_FAULT_PAUSE", &pause)],
    );
    bg.wait_for_line("FERRY_FAULT_PAUSE=upload");
    // Use up every inode left.
    r.ssh(
        user,
        "cd ~/.local/share/ferry && mkdir -p fill && i=0; while touch fill/f$i 2>/dev/null; do i=$((i+1)); done; echo $i",
    );
    gate.open();
    let run = bg.finish();
    run.assert_code(1);
    let reason = result(&run)["reason"].as_str().unwrap().to_string();
    assert!(
        reason.contains("cannot create")
            && reason.contains(".partial")
            && reason.contains("on web1: the filesystem of")
            && reason.contains("has no free inodes"),
        "{run}"
    );
    assert!(!reason.contains("Failure: Failure"), "{run}");
    assert_eq!(current(user, "app"), v1);
    assert_eq!(started_from(user, "app"), v1);

    let _ = r.ssh_raw(user, "systemctl --user stop app.service");
    let _ = r.root(&format!("umount -l {dir}"));
    r.reset(user);
}

/// Killed (SIGKILL) while the host runs the confirm script: the script runs to its end on the
/// host: the self-revert disarmed, the release recorded ok, the old release pruned; the new
/// release stays live.
#[test]
fn a_deploy_killed_during_confirm_is_still_confirmed_on_the_host() {
    let user = "ferry109";
    let r = remote();
    r.reset(user);
    let p = Project::new();
    started_from_unit(&p, "app");
    p.config(&config(user, "confirm_timeout = \"6s\"\nkeep_releases = 2"));
    for msg in ["one\n", "two\n"] {
        p.write("msg", msg);
        p.ferry(&["deploy"]).assert_code(0);
    }
    let v1_v2 = r.ssh(user, "ls ~/.local/share/ferry/app/releases");
    p.write("msg", "three\n");
    let mut bg = Bg::spawn(&p, &["deploy"], &[("FERRY_FAULT_CONFIRM_PAUSE", "3")]);
    bg.wait_for_line("FERRY_FAULT_CONFIRM_PAUSE");
    // The script's first act is to stop the armed timer: then it runs on the host.
    let timer_active = || {
        r.ssh(
            user,
            "systemctl --user is-active ferry-revert-app.timer; true",
        )
        .trim()
            == "active"
    };
    wait_for("the confirm script to start", || !timer_active());
    signal(bg.pid(), "KILL");
    let run = bg.finish();
    assert_eq!(run.code, -1, "killed: {run}");
    let v3 = current(user, "app");
    let id = &v3["releases/".len()..];
    wait_for("the history record of the confirm", || {
        let last = r.ssh(user, "tail -n 1 ~/.local/share/ferry/app/history.jsonl");
        last.contains(&format!("\"release\":\"{id}\"")) && last.contains("\"outcome\":\"ok\"")
    });
    assert!(!timer_active());
    assert_eq!(current(user, "app"), v3);
    assert_eq!(started_from(user, "app"), v3);
    let releases = r.ssh(user, "ls -A ~/.local/share/ferry/app/releases");
    let oldest = v1_v2.lines().next().unwrap();
    assert_eq!(releases.lines().count(), 2, "{releases}");
    assert!(!releases.contains(oldest), "not pruned: {releases}");
    // The next deploy is not refused (nothing pending) and works.
    p.write("msg", "four\n");
    p.ferry(&["deploy"]).assert_code(0);
    r.reset(user);
}
