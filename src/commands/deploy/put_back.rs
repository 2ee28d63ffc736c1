//! `--rollback-all-on-failure`, one host: put a host the stopped rollout switched back on the
//! release it had before, as `ferry rollback --to` would, under the lock, recorded in the
//! history; a host whose `current` changed since is left alone.

use crate::config::Host;
use crate::error::{Error, Result};
use crate::exit::Exit;
use crate::outcome::HostOutcome;
use crate::release::{self, Action, HistoryRecord, Outcome};
use crate::report::deploy::HostResult;
use crate::session::{ServiceSession, Session};

use super::Ctx;

/// `--rollback-all-on-failure`: put a host that went through back on the release it had
/// before (`deployed.previous`), as `ferry rollback --to` would, if it is still on the release
/// this rollout gave it.
pub(super) async fn put_back_host(
    host: &Host,
    deployed: HostResult,
    why: &str,
    ctx: &Ctx,
) -> HostResult {
    let (Some(new), Some(old)) = (deployed.release.clone(), deployed.previous.clone()) else {
        let note = "stays on the new release: it had no release before this deploy".to_string();
        ctx.reporter.warn(Some(&host.name), &note);
        return HostResult {
            reason: Some(note),
            ..deployed
        };
    };
    let result = |result: HostOutcome, reason: String, code: Exit| {
        HostResult::new(
            &host.name,
            &ctx.service.name,
            result,
            Some(&new),
            Some(&old),
            Some(reason),
            code,
        )
    };
    let session = match Session::open(host, &ctx.reporter).await {
        Ok(s) => s,
        // Said once, by the result line: which way the connection failed and its hint.
        Err(e) => {
            return HostResult {
                connection: e.connect_failure(),
                hint: e.hint(),
                ..result(
                    HostOutcome::RollbackFailed,
                    format!(
                        "deployed, but could not be put back on {old}: {}",
                        e.message_on(&host.name)
                    ),
                    e.exit_code(),
                )
            };
        }
    };
    let ss = session.service(&ctx.service).masking(ctx.env());
    let r = match ss
        .lock(ctx.opts.lock_wait, "rollback", &ctx.origin.by)
        .await
    {
        Ok(lock) => {
            let r = put_back_locked(&ss, &new, &old, why, ctx).await;
            lock.release().await;
            r
        }
        Err(e) => Err(e),
    };
    session.close().await;
    r.unwrap_or_else(|e| {
        let reason = match e {
            Error::Refused { message, .. } => message,
            e => e.to_string(),
        };
        result(
            HostOutcome::RollbackFailed,
            format!("deployed, but could not be put back on {old}: {reason}"),
            Exit::Failed,
        )
    })
}

async fn put_back_locked(
    ss: &ServiceSession<'_>,
    new: &str,
    old: &str,
    why: &str,
    ctx: &Ctx,
) -> Result<HostResult> {
    let remote = ss.probe(&[], crate::plan::ProbeLock::Held).await?;
    let current = remote.current.as_deref();
    if current != Some(new) {
        let note = format!(
            "left alone: its current release is now {} (not {new}, which this rollout deployed)",
            current.unwrap_or("none")
        );
        ss.warn(&note);
        return Ok(ss.result(HostOutcome::Ok, current, Some(old), Some(note), Exit::Ok));
    }
    let (manifests, _) = ss.manifests().await?;
    let Some(back) = manifests
        .into_iter()
        .find(|(id, _)| id == old)
        .and_then(|(_, m)| m)
    else {
        return Err(Error::Refused {
            host: ss.host.name.clone(),
            message: format!("release {old} is no longer on the host (or has no manifest)"),
            code: Exit::Failed,
        });
    };
    ss.phase(
        "rollback",
        format!("putting {old} back (the rollout stopped)"),
    );
    let record = |outcome: Outcome, reason: String| HistoryRecord {
        time: release::now_rfc3339(),
        action: Action::Rollback,
        release: old.to_string(),
        previous: Some(new.to_string()),
        outcome,
        by: ctx.origin.by.clone(),
        git_commit: back.git_commit.clone(),
        reason: Some(reason),
    };
    let because = format!(
        "--rollback-all-on-failure: the rollout of {} stopped: {why}",
        ss.service.name
    );
    let colour = remote.back_colour(&ss.service.name, &back);
    match ss.restore(&back, remote.current_manifest(), colour).await? {
        Ok(()) => {
            ss.record(&record(Outcome::Ok, because)).await;
            Ok(ss.result(
                HostOutcome::RolledBack,
                Some(new),
                Some(old),
                Some(format!(
                    "deployed, then put back on {old}: the rollout stopped ({why})"
                )),
                Exit::RolledBack,
            ))
        }
        Err(f) => {
            ss.warn(&format!("{}: {}", ss.service.name, f.reason));
            ss.show_journal(f.since.as_deref(), &f.units).await;
            // Go back to the release that passed its checks in this rollout.
            let again = match remote.current_manifest() {
                Some(m) => {
                    let colour = remote.back_colour(&ss.service.name, m);
                    ss.restore(m, Some(&back), colour)
                        .await?
                        .err()
                        .map(|f| f.reason)
                }
                None => Some("its manifest is unreadable".into()),
            };
            ss.record(&record(Outcome::Failed, format!("{because}; {}", f.reason)))
                .await;
            let reason = match again {
                None => format!(
                    "could not be put back on {old} ({}); back on {new}",
                    f.reason
                ),
                Some(e) => format!(
                    "PUTTING {old} BACK FAILED ({}); GOING BACK TO {new} FAILED TOO: {e}",
                    f.reason
                ),
            };
            Ok(ss.result(
                HostOutcome::RollbackFailed,
                Some(new),
                Some(old),
                Some(reason),
                Exit::Failed,
            ))
        }
    }
}
