//! One service on one host: make the plan (or print it for `--dry-run`), take the lock, and
//! execute the plan's steps one by one, exactly as they were printed; when activation,
//! verification, a health check or a hook after the switch fails, the plan's `on_failure`
//! applies: go back to the previous verified release (judged by the checks it was deployed
//! with), or stay. Every outcome is a `HostResult`.

use crate::error::{Error, Exit, Result};
use crate::outcome::HostOutcome;
use crate::plan::{self, LocalRelease, OnFailure, Origin, Plan, Refusal, RemoteState};
use crate::prepare::local::Local;
use crate::release::{self, Action, HistoryRecord, Outcome};
use crate::report::deploy::{HostResult, PlanEvent};
use crate::session::{LiveFailure, ServiceSession};

use super::migrate::Migration;
use super::runner::Runner;

/// Options of `ferry deploy`.
#[derive(Debug, Clone)]
pub struct Options {
    pub dry_run: bool,
    pub no_rollback: bool,
    pub lock_wait: Option<std::time::Duration>,
    pub parallel: usize,
    /// Only the hosts that failed or were not reached in the last rollout of each service.
    pub retry_failed: bool,
    /// When a rollout stops, put every host it switched back on its previous release.
    pub rollback_all_on_failure: bool,
    /// Deploy even when the release is already current and up.
    pub force: bool,
    /// `--no-switch`: stage the release on every host and stop before the switch.
    pub no_switch: bool,
    /// Deploy to a login user without linger (warned, not refused).
    pub allow_no_linger: bool,
}

/// Deploy one service on one host; every outcome is a [`HostResult`].
pub(crate) async fn deploy_service(
    ss: &ServiceSession<'_>,
    local: &Local,
    origin: &Origin,
    opts: &Options,
    migration: Option<&Migration>,
) -> HostResult {
    let outcome = if opts.dry_run {
        dry_run(ss, local, origin, opts, migration).await
    } else {
        deploy_locked(ss, local, origin, opts, migration).await
    };
    outcome.unwrap_or_else(|e| error_result(ss, e))
}

/// The result of a host whose deploy (or promote) stopped with an error: locked, refused, or
/// failed, with the error's own words.
pub(super) fn error_result(ss: &ServiceSession<'_>, e: Error) -> HostResult {
    let code = e.exit_code().or_failed();
    let result = match &e {
        _ if code == Exit::Locked => HostOutcome::Locked,
        Error::Refused { .. } => HostOutcome::Refused,
        _ => HostOutcome::Failed,
    };
    let reason = match e {
        Error::Refused { message, .. } => message,
        e => e.to_string(),
    };
    ss.result(result, None, None, Some(reason), code)
}

fn dests(local: &LocalRelease) -> Vec<String> {
    local.files.iter().map(|f| f.dest.clone()).collect()
}

/// The release's units whose state the probe reads (templates have none; their instances do).
fn probed_units(local: &LocalRelease) -> Vec<String> {
    let mut v: Vec<String> = local
        .units
        .iter()
        .map(|u| u.name.clone())
        .filter(|n| !n.contains("@."))
        .collect();
    v.extend(local.instances.iter().cloned());
    v
}

/// How a plan names its release.
#[derive(Debug, Clone, Copy)]
pub(super) enum Name<'a> {
    /// By its content (every hash is known).
    Fresh,
    /// A pending id: some hashes are learned by the upload (see [`Provisional`]).
    Pending,
    /// By its content, staged under this pending id.
    StagedAs(&'a str),
}

/// The plan's options on `host`: it runs the migration when it is the rollout's migrate host.
fn plan_options(opts: &Options, migration: Option<&Migration>, host: &str) -> plan::Options {
    plan::Options {
        no_rollback: opts.no_rollback,
        force: opts.force,
        migrate: migration.is_some_and(|m| m.leader == host),
        no_switch: opts.no_switch,
        allow_no_linger: opts.allow_no_linger,
    }
}

pub(super) fn make_plan(
    ss: &ServiceSession<'_>,
    local: &LocalRelease,
    remote: &RemoteState,
    origin: &Origin,
    opts: plan::Options,
    name: Name<'_>,
) -> Result<(Plan, LocalRelease)> {
    // The host's clock: the id's time is what `logs --since-deploy` asks the host's journal.
    let now = remote.host_time(crate::fault::now());
    let id = match name {
        Name::Pending => release::pending_id(now),
        Name::Fresh | Name::StagedAs(_) => {
            release::fresh_id(now, &local.content_hash(), &remote.releases)
        }
    };
    // The release as it is for this host (unit templates rendered).
    let local = crate::prepare::template::for_host(ss.service, local, &ss.host.name, &id)?;
    let mut plan = plan::make(ss.service, &local, remote, &id, origin, opts);
    if let Some(reason) = crate::elf::refusal(&local.binaries, &remote.host, &ss.host.name) {
        plan.refuse(reason, Refusal::Binary);
    }
    if let Name::StagedAs(staging) = name {
        plan.staging = staging.to_string();
    }
    Ok((plan, local))
}

/// A plan made before the hashes of some files were known (`deferred`: the host gets them
/// uploaded whatever they hold): its release has a pending id, its upload learns the hashes,
/// and then the plan is made again with the release's id (same steps, staged under the
/// pending id), for the seal and everything after it.
pub struct Provisional<'a> {
    pub(super) prepared: &'a Local,
    /// The release for this host before templates are rendered, those hashes empty.
    pub(super) view: LocalRelease,
    pub(super) deferred: Vec<crate::prepare::local::Deferred>,
    pub(super) opts: plan::Options,
}

/// Print the plan; nothing changes on the host (the lock is looked at, not taken).
async fn dry_run(
    ss: &ServiceSession<'_>,
    local: &Local,
    origin: &Origin,
    opts: &Options,
    migration: Option<&Migration>,
) -> Result<HostResult> {
    let skeleton = &local.skeleton;
    let remote = ss
        .probe_units(
            &dests(skeleton),
            &probed_units(skeleton),
            crate::plan::ProbeLock::Report,
        )
        .await?;
    let (plan, rendered) = make_plan(
        ss,
        &*local.full().await?,
        &remote,
        origin,
        plan_options(opts, migration, &ss.host.name),
        Name::Fresh,
    )?;
    ss.reporter.emit(&PlanEvent {
        kind: "plan",
        host: ss.host.name.clone(),
        plan: plan.clone(),
    });
    if plan.refusal().is_none() {
        ss.show_unit_diffs(&plan, &rendered).await?;
    }
    let previous = remote.current.as_deref();
    if let Some(current) = plan.unchanged() {
        return Ok(unchanged(ss, current));
    }
    Ok(match plan.refusal() {
        Some((reason, why)) => ss.result(
            HostOutcome::Refused,
            Some(&plan.release),
            previous,
            Some(reason.to_string()),
            refusal_code(why),
        ),
        None => ss.result(
            HostOutcome::Planned,
            Some(&plan.release),
            previous,
            None,
            Exit::Ok,
        ),
    })
}

/// The result of a deploy that had nothing to do.
pub(super) fn unchanged(ss: &ServiceSession<'_>, current: &str) -> HostResult {
    ss.result(
        HostOutcome::Unchanged,
        Some(current),
        Some(current),
        Some(format!(
            "already deployed: {current} is current with the same content and its units are up (--force deploys anyway)"
        )),
        Exit::Ok,
    )
}

pub(super) fn refusal_code(why: Refusal) -> Exit {
    match why {
        Refusal::Locked => Exit::Locked,
        Refusal::PendingRevert
        | Refusal::LostRevert
        | Refusal::DiskFull
        | Refusal::Binary
        | Refusal::NoLinger => Exit::Failed,
    }
}

async fn deploy_locked(
    ss: &ServiceSession<'_>,
    local: &Local,
    origin: &Origin,
    opts: &Options,
    migration: Option<&Migration>,
) -> Result<HostResult> {
    // The host is locked and read while the files may still be being hashed.
    let (prepared, local) = (local, &local.skeleton);
    // The SFTP session that may upload the release opens while the lock is taken and the host
    // read (its round trips overlap); a plan with nothing to send closes it unused.
    let (dests, units) = (dests(local), probed_units(local));
    // Each command after this one finds its channel open (see
    // `Connection::keep_a_spare_session`).
    ss.conn.keep_a_spare_session();
    // The link is measured meanwhile when the upload may be decided by it (see
    // `Connection::start_round_trip`).
    if ss.host.compress == crate::config::Compress::Auto
        && local
            .files
            .iter()
            .any(|f| f.content.is_none() && f.size >= crate::plan::encoding::MIN_SIZE)
    {
        ss.conn.start_round_trip(crate::plan::encoding::WAN_RTT);
    }
    let (locked, sftp) = tokio::join!(
        ss.lock_and_probe(opts.lock_wait, "deploy", &origin.by, &dests, &units),
        ss.sftp()
    );
    let (lock, remote) = locked?;
    if let Some(r) = remote.history.last().filter(|r| r.action == Action::Revert) {
        ss.warn(&format!(
            "since the last deploy, the host reverted by itself to release {} at {} ({}): {}",
            r.release,
            r.time,
            r.outcome,
            r.reason.as_deref().unwrap_or("no reason recorded")
        ));
    }
    if remote.linger == Some(false) && opts.allow_no_linger {
        let user = remote.user.as_deref().unwrap_or("the login user");
        ss.warn(&format!(
            "{user} has no linger (--allow-no-linger): the services deployed live only while someone is logged in as {user}, and the self-revert timer dies with the last session; as root on the host: loginctl enable-linger {user}"
        ));
    }
    let result = async {
        // Files this host gets uploaded whatever their content are not waited for: their
        // upload hashes them (unless a template renders the release id, which needs them).
        let may_defer =
            !crate::prepare::template::uses_release_id(ss.service, local, &ss.host.name)?;
        let (view, deferred) = prepared.for_host(&remote, may_defer).await?;
        let name = if deferred.is_empty() {
            Name::Fresh
        } else {
            Name::Pending
        };
        let opts = plan_options(opts, migration, &ss.host.name);
        let (plan, rendered) = make_plan(ss, &view, &remote, origin, opts, name)?;
        let provisional = Provisional {
            prepared,
            view,
            deferred,
            opts,
        };
        Runner::new(ss, &plan, &rendered, &remote, origin, sftp, provisional)
            .with_migration(migration)
            .run()
            .await
    }
    .await;
    lock.release().await;
    result
}

/// The history record of this deploy of `plan`'s release.
pub(super) fn record(
    plan: &Plan,
    origin: &Origin,
    outcome: Outcome,
    reason: Option<String>,
) -> HistoryRecord {
    HistoryRecord {
        time: release::now_rfc3339(),
        action: Action::Deploy,
        release: plan.release.clone(),
        previous: plan.previous.clone(),
        outcome,
        by: origin.by.clone(),
        git_commit: origin.git_commit.clone(),
        reason,
    }
}

/// The history record of a failed deploy of `plan`'s release (coming from `previous`).
fn failure_record(
    plan: &Plan,
    previous: Option<&str>,
    origin: &Origin,
    outcome: Outcome,
    reason: String,
) -> HistoryRecord {
    HistoryRecord {
        previous: previous.map(String::from),
        ..record(plan, origin, outcome, Some(reason))
    }
}

/// The new release failed to go live: show its journal, then roll back or stay, as planned.
pub(super) async fn fail(
    ss: &ServiceSession<'_>,
    plan: &Plan,
    remote: &RemoteState,
    origin: &Origin,
    armed: bool,
    failure: LiveFailure,
) -> Result<HostResult> {
    let id = plan.release.as_str();
    let previous = remote.current.as_deref();
    let reason = failure.reason;
    if ss.conn.is_closed() {
        // Activated (or its activation failed): the state after activation.
        let at = plan
            .steps
            .iter()
            .position(|s| s.name() == "verify" || s.name() == "health")
            .unwrap_or(0);
        return Ok(lost(
            ss,
            plan,
            previous,
            Some(at),
            "verifying the new release",
        ));
    }
    ss.warn(&format!("{}: {reason}", ss.service.name));
    ss.show_journal(failure.since.as_deref(), &failure.units)
        .await;
    match &plan.on_failure {
        OnFailure::Stay { reason: why } => {
            if armed {
                let _ = ss.disarm_revert(id).await;
            }
            ss.record(&failure_record(
                plan,
                previous,
                origin,
                Outcome::Failed,
                reason.clone(),
            ))
            .await;
            Ok(ss.result(
                HostOutcome::Failed,
                Some(id),
                previous,
                Some(format!("{reason} ({why})")),
                Exit::Failed,
            ))
        }
        OnFailure::RollBack { to } => roll_back(ss, plan, remote, origin, armed, &reason, to).await,
    }
}

/// The result of a deploy whose connection was lost during `during` (at step `at`, or during
/// the rollback): what state that leaves the host in.
fn lost(
    ss: &ServiceSession<'_>,
    plan: &Plan,
    previous: Option<&str>,
    at: Option<usize>,
    during: &str,
) -> HostResult {
    let id = plan.release.as_str();
    let e = Error::ConnectionLost {
        host: ss.host.name.clone(),
        during: format!(
            "{during} (deploy of {id}); {}",
            plan.state_if_lost(at, ss.service.confirm_timeout)
        ),
    };
    ss.result(
        HostOutcome::Failed,
        Some(id),
        previous,
        Some(e.to_string()),
        Exit::Connection,
    )
}

/// Go back to the verified release `to` after the new release failed for `reason`.
async fn roll_back(
    ss: &ServiceSession<'_>,
    plan: &Plan,
    remote: &RemoteState,
    origin: &Origin,
    armed: bool,
    reason: &str,
    to: &str,
) -> Result<HostResult> {
    let id = plan.release.as_str();
    let previous = remote.current.as_deref();
    let record =
        |outcome: Outcome, why: String| failure_record(plan, previous, origin, outcome, why);
    let lost_back = || {
        lost(
            ss,
            plan,
            previous,
            None,
            &format!("rolling back to {to} after: {reason}"),
        )
    };
    crate::fault::point("rollback");
    ss.phase("rollback", format!("rolling back to {to}"));
    // Recorded before going back, so that a deploy killed during its rollback leaves a trace;
    // the final outcome replaces this record.
    ss.record(&record(
        Outcome::Failed,
        format!("{reason}; killed while rolling back to {to}"),
    ))
    .await;
    let back = match ss.manifest_of(to, remote).await {
        Ok(m) => m,
        Err(Error::ConnectionLost { .. }) => return Ok(lost_back()),
        Err(e) => {
            ss.replace_last_record(&record(
                Outcome::RollbackFailed,
                format!("{reason}; rollback: {e}"),
            ))
            .await;
            return Ok(rollback_failed(
                ss,
                id,
                previous,
                reason,
                to,
                &e.to_string(),
            ));
        }
    };
    let colour = remote.back_colour(&ss.service.name, &back);
    let restored = ss.restore(&back, Some(&plan.manifest), colour).await;
    if armed {
        let _ = ss.disarm_revert(to).await;
    }
    let failed_too = match restored {
        Ok(Ok(())) => {
            ss.replace_last_record(&record(Outcome::RolledBack, reason.to_string()))
                .await;
            ss.record(&HistoryRecord {
                action: Action::Rollback,
                release: to.to_string(),
                previous: Some(id.to_string()),
                outcome: Outcome::Ok,
                reason: Some(format!("automatic, after: {reason}")),
                git_commit: back.git_commit.clone(),
                ..record(Outcome::Ok, String::new())
            })
            .await;
            return Ok(ss.result(
                HostOutcome::RolledBack,
                Some(id),
                previous,
                Some(format!("{reason}; rolled back to {to}")),
                Exit::RolledBack,
            ));
        }
        Ok(Err(f)) => {
            ss.show_journal(f.since.as_deref(), &f.units).await;
            f.reason
        }
        Err(Error::ConnectionLost { .. }) => return Ok(lost_back()),
        Err(e) => e.to_string(),
    };
    ss.replace_last_record(&record(
        Outcome::RollbackFailed,
        format!("{reason}; rollback: {failed_too}"),
    ))
    .await;
    Ok(rollback_failed(ss, id, previous, reason, to, &failed_too))
}

fn rollback_failed(
    ss: &ServiceSession<'_>,
    id: &str,
    previous: Option<&str>,
    reason: &str,
    to: &str,
    rb_reason: &str,
) -> HostResult {
    ss.result(
        HostOutcome::RollbackFailed,
        Some(id),
        previous,
        Some(format!(
            "DEPLOY FAILED: {reason}; ROLLBACK TO {to} FAILED TOO: {rb_reason}"
        )),
        Exit::Failed,
    )
}
