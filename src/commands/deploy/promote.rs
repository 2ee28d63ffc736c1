//! `ferry promote [SERVICE]`: switch the hosts that hold a release staged by `ferry deploy
//! --no-switch` to it, as a rollout (canary, batches, max_fail, `--rollback-all-on-failure`)
//! of the deploy's kind. On each host, under the service's lock: the staged release must still
//! sit on the release that was current when it was staged (else the host is refused: another
//! deploy or rollback came in between); the self-revert is armed, the release goes live
//! (blue/green: the idle colour already running it is health-checked again and the front
//! moves, the old colour drains), is judged by the checks it was staged with, `after_switch`
//! runs (its output masks the staged env's secrets), and the confirmation records a `promote`
//! line in the history. A failure goes back to the release that was current (exit 4).

use crate::exit::Exit;
use std::sync::Arc;

use super::{Ctx, Job, Options, Preconnected, finish, roll_out_hosts};
use crate::commands::deploy::hooks::{self, Hook};
use crate::commands::targets;
use crate::config::{Config, Host};
use crate::error::{Error, Result};
use crate::outcome::HostOutcome;
use crate::plan::RemoteState;
use crate::prepare::local;
use crate::release::env::{self, EnvFile};
use crate::release::{self, Action, HistoryRecord, Manifest, Outcome};
use crate::report::Reporter;
use crate::report::deploy::HostResult;
use crate::session::{ServiceSession, Session};
use crate::systemd::switch;

/// `ferry promote SERVICE [--host NAME]...`.
pub async fn run(
    config: &Config,
    service: &str,
    hosts: &[String],
    opts: Options,
    reporter: Arc<Reporter>,
) -> Result<Exit> {
    let (service, selected) = targets::service_hosts(config, service, hosts)?;
    // In the order the service's `hosts` lists them, as a deploy goes.
    let hosts: Vec<Host> = service
        .hosts
        .iter()
        .filter_map(|n| selected.iter().find(|h| h.name == *n).cloned())
        .collect();
    let dry_run = opts.dry_run;
    super::expect_hosts(&[(service.clone(), hosts.clone())], dry_run, &reporter);
    let ctx = Ctx {
        service: Arc::new(service),
        pre: Preconnected::default(),
        job: Job::Promote,
        origin: Arc::new(local::origin(config)),
        opts: Arc::new(opts),
        reporter: reporter.clone(),
        state_file: super::state::path(&config.path),
        migration: None,
    };
    let (results, event) = roll_out_hosts(&ctx, hosts).await;
    let code = Exit::combine(results.iter().map(|r| r.code));
    // A dry run has no plan to show: its results say what each host would do.
    reporter.results(&results);
    let events: Vec<_> = event.into_iter().collect();
    Ok(finish(
        &results, &events, code, dry_run, "promoted", &reporter,
    ))
}

/// Promote the service's staged release on one host (its own connection).
pub(super) async fn promote_host(host: &Host, ctx: &Ctx) -> HostResult {
    let session = match Session::open(host, &ctx.reporter).await {
        Ok(s) => s,
        Err(e) => return HostResult::not_connected(&host.name, &ctx.service.name, &e),
    };
    let mut ss = session.service(&ctx.service);
    let result = if ctx.opts.dry_run {
        dry_run(&ss).await
    } else {
        match ss.lock(ctx.opts.lock_wait, "promote", &ctx.origin.by).await {
            Ok(lock) => {
                let r = promote_locked(&mut ss, ctx).await;
                lock.release().await;
                r
            }
            Err(e) => Err(e),
        }
    };
    let result = result.unwrap_or_else(|e| super::steps::error_result(&ss, e));
    session.close().await;
    result
}

/// The release a host would be promoted to, or why it cannot be (said to the user as is).
pub fn staged_release(remote: &RemoteState, service: &str) -> std::result::Result<String, String> {
    let current = remote.current.as_deref();
    let shown = current.unwrap_or("none");
    let Some((staged, base)) = remote.staged_on().filter(|(s, _)| Some(*s) != current) else {
        return Err(format!(
            "nothing staged for {service} (current: {shown}); `ferry deploy --no-switch` stages a release"
        ));
    };
    if !remote.releases.iter().any(|r| r == staged) {
        return Err(format!(
            "the staged release {staged} is no longer on the host; stage it again with `ferry deploy --no-switch`"
        ));
    }
    if base != current {
        return Err(format!(
            "not promoted: {staged} was staged on top of {}, but the host's current release is now {shown} (deployed or rolled back since); stage again with `ferry deploy --no-switch`, or switch anyway with `ferry rollback {service} --to {staged}`",
            base.unwrap_or("no release"),
        ));
    }
    if remote.current_unconfirmed() {
        return Err(format!(
            "the deploy of {shown} was never confirmed and its self-revert is still armed; wait for it, or run `ferry rollback {service}` first"
        ));
    }
    if remote.revert_lost() {
        return Err(crate::plan::lost_revert_message(remote, service));
    }
    Ok(staged.to_string())
}

/// `promote --dry-run`: what a promote would do on this host; nothing changes.
async fn dry_run(ss: &ServiceSession<'_>) -> Result<HostResult> {
    let remote = ss.probe(&[], crate::plan::ProbeLock::Report).await?;
    let current = remote.current.as_deref();
    if let Some(holder) = &remote.lock_holder {
        return Ok(ss.result(
            HostOutcome::Locked,
            None,
            current,
            Some(format!("{} is locked by {holder}", ss.service.name)),
            Exit::Locked,
        ));
    }
    Ok(match staged_release(&remote, &ss.service.name) {
        Ok(id) => ss.result(
            HostOutcome::Planned,
            Some(&id),
            current,
            Some(format!(
                "would switch from {} to the staged {id}",
                current.unwrap_or("no release")
            )),
            Exit::Ok,
        ),
        Err(why) => ss.result(HostOutcome::Refused, None, current, Some(why), Exit::Failed),
    })
}

/// Promote under the lock: check, arm the self-revert, go live, judge, confirm.
async fn promote_locked(ss: &mut ServiceSession<'_>, ctx: &Ctx) -> Result<HostResult> {
    let remote = ss.probe(&[], crate::plan::ProbeLock::Held).await?;
    let id = staged_release(&remote, &ss.service.name).map_err(|message| Error::Refused {
        host: ss.host.name.clone(),
        message,
        code: Exit::Failed,
    })?;
    let secrets = staged_secrets(ss, &id).await?;
    ss.mask_from_now(secrets);
    let ss = &*ss;
    let to = ss.manifest_of(&id, &remote).await?;
    let current = remote.current.as_deref();
    let record = |outcome: Outcome, reason: Option<String>| HistoryRecord {
        time: release::now_rfc3339(),
        action: Action::Promote,
        release: id.clone(),
        previous: current.map(String::from),
        outcome,
        by: ctx.origin.by.clone(),
        git_commit: to.git_commit.clone(),
        reason,
    };
    let from = remote.current_manifest();
    let armed = match from {
        Some(from) => {
            let back = remote.back_colour(&ss.service.name, from);
            ss.arm_revert(&to, from, &ctx.origin.by, back).await?;
            true
        }
        None => false,
    };
    ss.phase(
        "activate",
        format!("promoting {id} (current: {})", current.unwrap_or("none")),
    );
    let failed = match go_live(ss, &remote, &to).await? {
        None => match &ss.service.hooks.after_switch {
            Some(command) => {
                let env = ss.masked();
                hooks::run_remote(ss, Hook::AfterSwitch, command, &id, current, env).await?
            }
            None => None,
        },
        failed => failed,
    };
    if let Some(reason) = failed {
        let r = go_back(ss, &remote, &to, &reason, armed, &record).await;
        ss.unstage(&id).await;
        return r;
    }
    if !ss
        .confirm(&id, armed, &record(Outcome::Ok, None), &[])
        .await?
        && armed
    {
        let reason = "the self-revert timer fired before the promote was confirmed (confirm_timeout too short?); the host is back on the previous release".to_string();
        return Ok(ss.result(
            HostOutcome::RolledBack,
            Some(&id),
            current,
            Some(reason),
            Exit::RolledBack,
        ));
    }
    ss.unstage(&id).await;
    let reason = format!("promoted: {id} is live (was {})", current.unwrap_or("none"));
    Ok(ss.result(HostOutcome::Ok, Some(&id), current, Some(reason), Exit::Ok))
}

/// The secret values of the staged release's env as the host holds them, read before
/// anything changes: masked in what the promote shows (the after_switch hook's output, the
/// journal lines of a failure), as a deploy masks the values it resolved. None when the
/// service has no secret in its env.
async fn staged_secrets(ss: &ServiceSession<'_>, id: &str) -> Result<Option<EnvFile>> {
    let names = env::secret_names(ss.service);
    if names.is_empty() {
        return Ok(None);
    }
    let script = env::secrets_script(&ss.paths.release(id), &names);
    let out = ss.conn.exec(&script).await?;
    if !out.success() {
        return Err(Error::Refused {
            host: ss.host.name.clone(),
            message: format!(
                "cannot read the env of the staged release {id} (to mask its secrets): {}: {}; stage it again with `ferry deploy --no-switch`",
                out.status_text(),
                out.stderr_str().trim()
            ),
            code: Exit::Failed,
        });
    }
    Ok(env::secrets_read(&names, &out.stdout))
}

/// Make the staged release `to` live. Blue/green, when a colour still runs it (it was
/// started and checked when staged): its health checks once more on its own port, then the
/// front moves and the old colour drains. Otherwise as a rollback brings a release back.
/// Some(reason) when it failed.
async fn go_live(
    ss: &ServiceSession<'_>,
    remote: &RemoteState,
    to: &Manifest,
) -> Result<Option<String>> {
    let name = &ss.service.name;
    let colour = remote.back_colour(name, to);
    if let (Some(c), Some(sw)) = (colour, &ss.service.switch)
        && remote.colours.get(&c) == Some(&to.id)
        && remote
            .unit_active
            .get(&switch::instance(name, c))
            .map(String::as_str)
            == Some("active")
    {
        if let Some(h) = &release::judging(to, ss.service).health
            && let Some(reason) = ss
                .health(&crate::config::health_on(h, sw, sw.port(c)))
                .await
        {
            return Ok(Some(reason));
        }
        return ss.switch_over(&to.id, remote.live, c).await;
    }
    Ok(
        match ss.restore(to, remote.current_manifest(), colour).await? {
            Ok(()) => None,
            Err(f) => {
                ss.show_journal(f.since.as_deref(), &f.units).await;
                Some(f.reason)
            }
        },
    )
}

/// The promoted release failed: back to the release that was current, recorded.
async fn go_back(
    ss: &ServiceSession<'_>,
    remote: &RemoteState,
    to: &Manifest,
    reason: &str,
    armed: bool,
    record: &(dyn Fn(Outcome, Option<String>) -> HistoryRecord + Sync),
) -> Result<HostResult> {
    ss.warn(&format!("{}: {reason}", ss.service.name));
    let current = remote.current.as_deref();
    let result =
        |outcome, why: String, code| ss.result(outcome, Some(&to.id), current, Some(why), code);
    let Some(back) = remote.current_manifest() else {
        ss.record(&record(Outcome::Failed, Some(reason.to_string())))
            .await;
        return Ok(result(
            HostOutcome::Failed,
            reason.to_string(),
            Exit::Failed,
        ));
    };
    ss.phase("rollback", format!("going back to {}", back.id));
    let colour = remote.back_colour(&ss.service.name, back);
    let restored = ss.restore(back, Some(to), colour).await?;
    if armed {
        let _ = ss.disarm_revert(&back.id).await;
    }
    Ok(match restored {
        Ok(()) => {
            ss.record(&record(Outcome::RolledBack, Some(reason.to_string())))
                .await;
            result(
                HostOutcome::RolledBack,
                format!("{reason}; back on {}", back.id),
                Exit::RolledBack,
            )
        }
        Err(f) => {
            ss.show_journal(f.since.as_deref(), &f.units).await;
            let why = format!(
                "PROMOTE OF {} FAILED: {reason}; GOING BACK TO {} FAILED TOO: {}",
                to.id, back.id, f.reason
            );
            ss.record(&record(Outcome::RollbackFailed, Some(why.clone())))
                .await;
            result(HostOutcome::RollbackFailed, why, Exit::Failed)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "20261201T100000Z-aaaaaaaa";
    const B: &str = "20261202T100000Z-bbbbbbbb";
    const C: &str = "20261203T100000Z-cccccccc";

    fn stage(release: &str, previous: Option<&str>) -> HistoryRecord {
        HistoryRecord {
            time: "2026-12-03T10:00:00Z".into(),
            action: Action::Stage,
            release: release.into(),
            previous: previous.map(String::from),
            outcome: Outcome::Staged,
            by: "me@here".into(),
            git_commit: None,
            reason: None,
        }
    }

    fn remote(
        current: Option<&str>,
        staged: Option<&str>,
        history: Vec<HistoryRecord>,
    ) -> RemoteState {
        RemoteState {
            current: current.map(String::from),
            staged: staged.map(String::from),
            releases: vec![A.into(), B.into(), C.into()],
            history,
            ..Default::default()
        }
    }

    #[test]
    fn a_release_staged_on_the_current_one_is_promoted() {
        let r = remote(Some(A), Some(B), vec![stage(B, Some(A))]);
        assert_eq!(staged_release(&r, "web"), Ok(B.to_string()));
        // On a host with no release yet.
        let r = remote(None, Some(B), vec![stage(B, None)]);
        assert_eq!(staged_release(&r, "web"), Ok(B.to_string()));
    }

    #[test]
    fn nothing_staged_or_staged_already_current_says_so() {
        for r in [
            remote(Some(A), None, vec![]),
            remote(Some(B), Some(B), vec![stage(B, Some(A))]),
        ] {
            let e = staged_release(&r, "web").unwrap_err();
            assert!(e.starts_with("nothing staged for web (current: "), "{e}");
            assert!(e.contains("`ferry deploy --no-switch`"), "{e}");
        }
    }

    #[test]
    fn a_host_whose_current_moved_since_staging_is_refused_naming_both() {
        let r = remote(Some(C), Some(B), vec![stage(B, Some(A))]);
        let e = staged_release(&r, "web").unwrap_err();
        assert!(
            e.contains(&format!("{B} was staged on top of {A}"))
                && e.contains(&format!("current release is now {C}"))
                && e.contains(&format!("ferry rollback web --to {B}")),
            "{e}"
        );
        // A staged release whose directory is gone.
        let mut r = remote(Some(A), Some(B), vec![stage(B, Some(A))]);
        r.releases.retain(|x| x != B);
        assert!(
            staged_release(&r, "web")
                .unwrap_err()
                .contains("no longer on the host")
        );
    }
}
