//! `ferry rollback SERVICE [--to ID]`: make a release that is still on the host current again,
//! on each selected host. A sequence of session steps: lock, read the host, choose the target,
//! restore it (judged by the checks it was deployed with), cancel a pending self-revert,
//! record the history.

use std::sync::Arc;

use crate::cli::RollbackArgs;
use crate::commands::{Context, fanout, targets};
use crate::config::{Host, Service};
use crate::error::{Error, Exit, Result};
use crate::outcome::HostOutcome;
use crate::plan::{Origin, RemoteState};
use crate::prepare::local;
use crate::release::{self, Action, HistoryRecord, Outcome};
use crate::report::Reporter;
use crate::report::deploy::{HostResult, Summary};
use crate::session::{LiveFailure, ServiceSession, Session};

#[derive(Debug, Clone)]
pub struct Options {
    pub to: Option<String>,
    pub lock_wait: Option<std::time::Duration>,
}

/// `ferry rollback`.
pub async fn run(args: RollbackArgs, ctx: &Context) -> Result<Exit> {
    let config = ctx.config_for_hosts()?;
    let opts = Options {
        to: args.to,
        lock_wait: args.lock_wait,
    };
    let name = targets::the_service(&config, args.service.as_deref())?;
    let (service, hosts) = targets::service_hosts(&config, &name, &ctx.hosts)?;
    let reporter = &ctx.reporter;
    let origin = Arc::new(local::origin(&config));
    let service = Arc::new(service);
    let opts = Arc::new(opts);
    let parallel = hosts.len();
    let names: Vec<String> = hosts.iter().map(|h| h.name.clone()).collect();
    reporter.tally().expect(&service.name, &names, None);
    let r = reporter.clone();
    let results = fanout::each(hosts, parallel, move |host: Host| {
        let (r, service, origin, opts) = (r.clone(), service.clone(), origin.clone(), opts.clone());
        async move {
            let state = "during the rollback: the host may be left between releases; check with `ferry status` and run the rollback again";
            if !r.tally().at(&host.name, &service.name, state.to_string()) {
                std::future::pending::<()>().await;
            }
            let result = rollback_host(&host, &service, &origin, &opts, &r).await;
            r.tally().done(&result);
            result
        }
    })
    .await;
    for r in &results {
        reporter.emit(r);
    }
    // A rollback that ended on the release it was asked for is a success (not "rolled back").
    let code = Exit::combine(results.iter().map(|r| r.code));
    let ok = results.iter().filter(|r| r.code.is_ok()).count();
    reporter.emit(&Summary {
        kind: "summary",
        ok,
        failed: results.len() - ok,
        exit_code: code,
        dry_run: false,
        action: "rolled back",
    });
    Ok(code)
}

async fn rollback_host(
    host: &Host,
    service: &Service,
    origin: &Origin,
    opts: &Options,
    reporter: &Arc<Reporter>,
) -> HostResult {
    let session = match Session::open(host, reporter).await {
        Ok(s) => s,
        // The result says the error, which way it failed and its hint, once.
        Err(e) => return HostResult::not_connected(&host.name, &service.name, &e),
    };
    let ss = session.service(service);
    let result = match ss.lock(opts.lock_wait, "rollback", &origin.by).await {
        Ok(lock) => {
            let r = rollback_locked(&ss, origin, opts).await;
            lock.release().await;
            r
        }
        Err(e) => Err(e),
    };
    let result = result.unwrap_or_else(|e| {
        let code = e.exit_code().or_failed();
        let kind = if code == Exit::Locked {
            HostOutcome::Locked
        } else {
            HostOutcome::Failed
        };
        let reason = match e {
            Error::Refused { message, .. } => message,
            e => e.to_string(),
        };
        ss.result(kind, None, None, Some(reason), code)
    });
    session.close().await;
    result
}

/// Refused before anything changed on the host.
fn refuse(ss: &ServiceSession<'_>, message: String, code: Exit) -> Error {
    Error::Refused {
        host: ss.host.name.clone(),
        message,
        code,
    }
}

/// With the service's lock held: read the host, choose the target, switch to it (and back to
/// where the host was when the target does not come up).
async fn rollback_locked(
    ss: &ServiceSession<'_>,
    origin: &Origin,
    opts: &Options,
) -> Result<HostResult> {
    let remote = ss.probe(&[], crate::plan::ProbeLock::Held).await?;
    let (manifests, _) = ss.manifests().await?;
    let ids: Vec<String> = manifests.iter().map(|(id, _)| id.clone()).collect();
    let target = choose_target(ss, opts, &remote, &ids)?;
    let current = remote.current.as_deref();
    if current == Some(target.as_str()) {
        return confirm_current(ss, origin, &remote, &target).await;
    }
    let not_undone = migrations_past(&manifests, &target, current, &remote.history);
    let Some(manifest) = manifests
        .into_iter()
        .find(|(i, _)| *i == target)
        .and_then(|(_, m)| m)
    else {
        return Err(refuse(
            ss,
            format!("release {target} has no readable manifest"),
            Exit::Failed,
        ));
    };
    // What the history says should ferry be cut off from here on (replaced by the record of
    // how it ended).
    let pending = HistoryRecord {
        time: release::now_rfc3339(),
        action: Action::Rollback,
        release: target.clone(),
        previous: current.map(String::from),
        outcome: Outcome::Interrupted,
        by: origin.by.clone(),
        git_commit: manifest.git_commit.clone(),
        reason: Some(format!(
            "ferry stopped during this rollback from {}, before it had verified {target}; `current` pointed to {} when the next ferry found this",
            current.unwrap_or("no release"),
            release::PENDING_CURRENT
        )),
    };
    ss.record_pending(&pending).await?;
    ss.phase("activate", format!("switching to {target}"));
    let back = remote.back_colour(&ss.service.name, &manifest);
    let restored = ss
        .restore(&manifest, remote.current_manifest(), back)
        .await?;
    let switch = Switch {
        ss,
        origin,
        remote: &remote,
        target: &target,
        manifest: &manifest,
    };
    match restored {
        Ok(()) => switch.done(&not_undone).await,
        Err(f) => switch.go_back(f).await,
    }
}

/// The release to roll back to: `--to` when it is on the host, else the last good one before
/// the current one.
fn choose_target(
    ss: &ServiceSession<'_>,
    opts: &Options,
    remote: &RemoteState,
    ids: &[String],
) -> Result<String> {
    match &opts.to {
        Some(t) if !ids.contains(t) => Err(refuse(
            ss,
            format!(
                "release {t} is not on the host; `ferry releases {}` lists them",
                ss.service.name
            ),
            Exit::Usage,
        )),
        Some(t) => Ok(t.clone()),
        None => release::rollback_target(ids, remote.current.as_deref(), &remote.history)
            .ok_or_else(|| {
                refuse(
                    ss,
                    format!(
                        "no release to roll back to (only {} on the host)",
                        remote.current.as_deref().unwrap_or("none")
                    ),
                    Exit::Failed,
                )
            }),
    }
}

/// Asking for the current release confirms it: a pending self-revert would otherwise take
/// the host away from it, and a release whose self-revert was lost is otherwise refused by
/// the next deploy. Either way the history records the confirmation.
async fn confirm_current(
    ss: &ServiceSession<'_>,
    origin: &Origin,
    remote: &RemoteState,
    target: &str,
) -> Result<HostResult> {
    let reason = if remote.revert_pending {
        ss.cancel_revert().await?;
        "already current; its pending self-revert is cancelled (confirmed)"
    } else if remote.revert_lost() {
        "already current; its deploy was never confirmed and its self-revert timer was lost: now confirmed"
    } else {
        "already current; nothing to do"
    };
    if remote.revert_pending || remote.revert_lost() {
        ss.record(&HistoryRecord {
            time: release::now_rfc3339(),
            action: Action::Rollback,
            release: target.to_string(),
            previous: Some(target.to_string()),
            outcome: Outcome::Ok,
            by: origin.by.clone(),
            git_commit: remote.current_manifest().and_then(|m| m.git_commit.clone()),
            reason: Some(format!("kept by `ferry rollback --to {target}`: {reason}")),
        })
        .await;
    }
    Ok(ss.result(
        HostOutcome::Ok,
        Some(target),
        Some(target),
        Some(reason.into()),
        Exit::Ok,
    ))
}

/// A switch to `target` under way on one host, once the restore has been tried.
struct Switch<'a> {
    ss: &'a ServiceSession<'a>,
    origin: &'a Origin,
    remote: &'a RemoteState,
    target: &'a str,
    manifest: &'a release::Manifest,
}

impl Switch<'_> {
    fn current(&self) -> Option<&str> {
        self.remote.current.as_deref()
    }

    /// The history line of this rollback.
    fn record(&self, outcome: Outcome, reason: Option<String>) -> HistoryRecord {
        HistoryRecord {
            time: release::now_rfc3339(),
            action: Action::Rollback,
            release: self.target.to_string(),
            previous: self.current().map(String::from),
            outcome,
            by: self.origin.by.clone(),
            git_commit: self.manifest.git_commit.clone(),
            reason,
        }
    }

    fn result(&self, outcome: HostOutcome, reason: Option<String>, code: Exit) -> HostResult {
        self.ss
            .result(outcome, Some(self.target), self.current(), reason, code)
    }

    /// The target is up: record it, cancel a moot self-revert, say which migrations stay.
    async fn done(&self, not_undone: &[String]) -> Result<HostResult> {
        let ss = self.ss;
        ss.record(&self.record(Outcome::Ok, None)).await;
        // A self-revert still pending for the release we left is moot now (its guard sees
        // `current` changed); cleared only once the rollback has succeeded, so that an
        // interrupted rollback still leaves the host protected.
        if self.remote.revert_pending {
            ss.cancel_revert().await?;
        }
        let note = (!not_undone.is_empty()).then(|| {
            let said: Vec<String> = not_undone
                .iter()
                .map(|r| format!("the migration of release {r} is not undone"))
                .collect();
            said.join("; ")
        });
        if let Some(n) = &note {
            ss.warn(&format!(
                "{}: {n} (ferry does not reverse migrations)",
                ss.service.name
            ));
        }
        Ok(self.result(HostOutcome::Ok, note, Exit::Ok))
    }

    /// The target did not come up: go back to where the host was.
    async fn go_back(&self, f: LiveFailure) -> Result<HostResult> {
        let ss = self.ss;
        let reason = f.reason;
        ss.warn(&format!("{}: {reason}", ss.service.name));
        ss.show_journal(f.since.as_deref(), &f.units).await;
        let Some(back) = self.remote.current_manifest() else {
            ss.record(&self.record(Outcome::Failed, Some(reason.clone())))
                .await;
            return Ok(self.result(HostOutcome::Failed, Some(reason), Exit::Failed));
        };
        ss.phase("rollback", format!("going back to {}", back.id));
        let colour = self.remote.back_colour(&ss.service.name, back);
        match ss.restore(back, Some(self.manifest), colour).await? {
            Ok(()) => {
                ss.record(&self.record(Outcome::RolledBack, Some(reason.clone())))
                    .await;
                Ok(self.result(
                    HostOutcome::RolledBack,
                    Some(format!("{reason}; back on {}", back.id)),
                    Exit::RolledBack,
                ))
            }
            Err(f2) => {
                ss.show_journal(f2.since.as_deref(), &f2.units).await;
                let why = format!("{reason}; going back: {}", f2.reason);
                ss.record(&self.record(Outcome::RollbackFailed, Some(why)))
                    .await;
                Ok(self.result(
                    HostOutcome::RollbackFailed,
                    Some(format!(
                        "ROLLBACK TO {} FAILED: {reason}; GOING BACK TO {} FAILED TOO: {}",
                        self.target, back.id, f2.reason
                    )),
                    Exit::Failed,
                ))
            }
        }
    }
}

/// The releases a rollback from `current` to `target` goes back past (newer than `target`,
/// up to `current`) that went live on this host with a migration (`hooks.migrate`): their
/// migrations stay done.
fn migrations_past(
    manifests: &[(String, Option<release::Manifest>)],
    target: &str,
    current: Option<&str>,
    history: &[HistoryRecord],
) -> Vec<String> {
    let Some(current) = current else {
        return Vec::new();
    };
    let went_live = |id: &str| {
        id == current
            || history.iter().any(|h| {
                h.release == id
                    && (h.action == Action::Deploy || h.action == Action::Promote)
                    && h.outcome == Outcome::Ok
            })
    };
    let mut ids: Vec<String> = manifests
        .iter()
        .filter(|(id, m)| {
            id.as_str() > target
                && id.as_str() <= current
                && m.as_ref().is_some_and(|m| m.migrate.is_some())
                && went_live(id)
        })
        .map(|(id, _)| id.clone())
        .collect();
    ids.sort();
    ids
}
