//! `ferry deploy`: prepare the releases locally, then roll each service out over its hosts
//! (canary hosts first, then batches, within the failure budget: see `rollout`), putting hosts
//! back when asked to; on each host `execute` makes the plan and executes its steps.
//!
//! Several services are rolled out one after another, each with its own rollout, in the order
//! of their `after` lists; a rollout that stops does not stop the next service's, unless that
//! one comes after it (then it is not deployed). A service's `migrate` hook runs once per
//! rollout, before any host switches (see `migrate`). Each rollout's outcome per host is recorded in
//! `.ferry/state.json` (see `state`) for `--retry-failed`.

mod command;
pub mod hooks;
mod migrate;
pub mod rollout;
mod runner;
pub mod state;
pub mod steps;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::commands::deploy::migrate::Migration;
use crate::commands::deploy::rollout::Budget;
use crate::commands::fanout;
use crate::commands::targets;
use crate::config::{Config, Host, Service};
use crate::error::{Error, Exit, Result, exit};
use crate::outcome::HostOutcome;
use crate::plan::Origin;
use crate::prepare::local;
use crate::release::{self, HistoryRecord};
use crate::report::Reporter;
use crate::report::deploy::{HostResult, Summary};
use crate::report::fleet::{self, BatchEvent, RolloutEvent};
use crate::session::{ServiceSession, Session};

pub use crate::commands::deploy::steps::Options;
pub use command::run;

/// `ferry deploy [SERVICE...] [--host NAME...]`.
pub async fn deploy_services(
    config: &Config,
    services: &[String],
    hosts: &[String],
    opts: Options,
    reporter: Arc<Reporter>,
) -> Result<Exit> {
    let targets = targets::resolve(config, services, hosts)?;
    let state_file = state::path(&config.path);
    let recorded = if opts.retry_failed {
        Some(state::load(&state_file)?)
    } else {
        None
    };
    // Each selected service with its selected hosts, in the order its `hosts` lists them.
    let mut rollouts: Vec<(Service, Vec<Host>)> = Vec::new();
    for service in in_order(config, targets::services(config, services)?) {
        if rollouts.iter().any(|(s, _)| s.name == service.name) {
            continue;
        }
        let mut here: Vec<Host> = service
            .hosts
            .iter()
            .filter_map(|name| {
                targets
                    .iter()
                    .find(|t| {
                        t.host.name == *name && t.services.iter().any(|s| s.name == service.name)
                    })
                    .map(|t| t.host.clone())
            })
            .collect();
        if let Some(recorded) = &recorded {
            let Some(retry) = recorded.retry_hosts(&service.name) else {
                if services.contains(&service.name) {
                    return Err(Error::Usage(format!(
                        "--retry-failed: no rollout of {} is recorded in {}; deploy it without --retry-failed first",
                        service.name,
                        state_file.display()
                    )));
                }
                continue;
            };
            here.retain(|h| retry.contains(&h.name));
            if here.is_empty() {
                reporter.progress(
                    None,
                    &format!(
                        "{}: nothing to retry: every selected host ended ok in its last rollout",
                        service.name
                    ),
                );
            }
        }
        if !here.is_empty() {
            rollouts.push((service, here));
        }
    }
    if recorded.is_some() && rollouts.is_empty() {
        if reporter.format == crate::report::Format::Json {
            reporter.emit(&Summary {
                kind: "summary",
                ok: 0,
                failed: 0,
                exit_code: exit::OK,
                dry_run: opts.dry_run,
                action: "deployed",
            });
        } else {
            reporter.heading("nothing to retry: every selected host ended ok in its last rollout");
        }
        return Ok(exit::OK);
    }
    // Binaries built for another architecture than a host's `arch`: before any connection.
    for (service, hosts) in &rollouts {
        crate::prepare::arch::check(service, hosts)?;
    }
    // The first hosts are connected to while the files are hashed; nothing on a host changes
    // before every release was read and checked (bad input fails first).
    let pre = Preconnected::start(
        rollouts
            .first()
            .map(|(_, hosts)| &hosts[..hosts.len().min(opts.parallel.max(1))])
            .unwrap_or_default(),
        &reporter,
    );
    let mut prepared: Vec<Arc<local::Local>> = Vec::new();
    for (s, _) in &rollouts {
        match local::prepare(s).await {
            Ok(p) => prepared.push(Arc::new(p)),
            Err(e) => {
                pre.abort();
                return Err(e);
            }
        }
    }
    let origin = Arc::new(local::origin(config));
    let opts = Arc::new(opts);
    let mut results: Vec<HostResult> = Vec::new();
    let mut events: Vec<RolloutEvent> = Vec::new();
    let mut deployed: Vec<(String, Arc<local::Local>)> = Vec::new();
    let mut failed: Vec<String> = Vec::new();
    for ((service, hosts), local) in rollouts.into_iter().zip(prepared) {
        if let Some(before) = failed
            .iter()
            .find(|f| !opts.dry_run && config.comes_after(&service.name, f))
        {
            let (r, e) = skip_service(&service, &hosts, before, &reporter);
            failed.push(service.name.clone());
            results.extend(r);
            events.push(e);
            continue;
        }
        deployed.push((service.name.clone(), local.clone()));
        let ctx = Ctx {
            service: Arc::new(service),
            pre: pre.clone(),
            local,
            origin: origin.clone(),
            opts: opts.clone(),
            reporter: reporter.clone(),
            state_file: state_file.clone(),
            migration: None,
        };
        let (r, e) = roll_out(&ctx, hosts).await;
        if r.iter().any(|r| !r.result.is_success()) {
            failed.push(ctx.service.name.clone());
        }
        results.extend(r);
        events.extend(e);
        // The connections opened early were for the first rollout's hosts.
        pre.abort();
    }
    let code = Exit::combine(results.iter().map(|r| r.code));
    if results.len() > 1 || code != exit::OK || !opts.dry_run {
        reporter.results(&results);
    }
    if !opts.dry_run {
        for (name, local) in deployed.iter() {
            let mine: Vec<&HostResult> = results.iter().filter(|r| r.service == *name).collect();
            if let Some(service) = config.services.get(name) {
                hooks::run_local(service, &mine, local.skeleton.env.as_ref(), &reporter).await;
            }
        }
    }
    for e in &events {
        reporter.emit(e);
    }
    let ok = results.iter().filter(|r| r.result.is_success()).count();
    reporter.emit(&Summary {
        kind: "summary",
        ok,
        failed: results.len() - ok,
        exit_code: code,
        dry_run: opts.dry_run,
        action: "deployed",
    });
    Ok(code)
}

/// Connections being opened before they are needed (see [`deploy`]), by host name.
#[derive(Clone, Default)]
struct Preconnected(Arc<Mutex<HashMap<String, tokio::task::JoinHandle<Result<Session>>>>>);

impl Preconnected {
    /// Start connecting to `hosts`.
    fn start(hosts: &[Host], reporter: &Arc<Reporter>) -> Preconnected {
        let pre = Preconnected::default();
        for h in hosts {
            let (host, reporter) = (h.clone(), reporter.clone());
            let task = tokio::spawn(async move { Session::open(&host, &reporter).await });
            pre.0.lock().unwrap().insert(h.name.clone(), task);
        }
        pre
    }

    /// The session to `host`: the one opened early, or a new one.
    async fn open(&self, host: &Host, reporter: &Arc<Reporter>) -> Result<Session> {
        let early = self.0.lock().unwrap().remove(&host.name);
        match early {
            Some(task) => task
                .await
                .unwrap_or_else(|e| Err(Error::Local(format!("connecting to {}: {e}", host.name)))),
            None => Session::open(host, reporter).await,
        }
    }

    /// Close the connections not taken.
    fn abort(&self) {
        for (_, task) in self.0.lock().unwrap().drain() {
            task.abort();
        }
    }
}

/// What every host of one service's rollout shares.
struct Ctx {
    service: Arc<Service>,
    /// Connections opened while the release was prepared.
    pre: Preconnected,
    local: Arc<local::Local>,
    origin: Arc<Origin>,
    opts: Arc<Options>,
    reporter: Arc<Reporter>,
    state_file: std::path::PathBuf,
    /// The rollout's migration (`hooks.migrate`), which every host waits for.
    migration: Option<Arc<Migration>>,
}

impl Ctx {
    fn share(&self) -> Ctx {
        Ctx {
            service: self.service.clone(),
            pre: self.pre.clone(),
            local: self.local.clone(),
            origin: self.origin.clone(),
            opts: self.opts.clone(),
            reporter: self.reporter.clone(),
            state_file: self.state_file.clone(),
            migration: self.migration.clone(),
        }
    }

    /// Record results in the state file (a warning when it cannot be written).
    fn record_state(&self, results: &[HostResult]) {
        if self.opts.dry_run {
            return;
        }
        let now = release::now_rfc3339();
        let written = state::update(&self.state_file, |s| {
            for r in results {
                s.set(
                    &r.service,
                    &r.host,
                    r.result.as_str(),
                    r.release.as_deref(),
                    &now,
                );
            }
        });
        if let Err(e) = written {
            self.reporter.warn(None, &e.to_string());
        }
    }
}

/// Roll one service out over `hosts`: its results in rollout order, and the rollout's summary
/// (none for a dry run).
async fn roll_out(ctx: &Ctx, hosts: Vec<Host>) -> (Vec<HostResult>, Option<RolloutEvent>) {
    let mut ctx = ctx.share();
    let mut hosts = hosts;
    let recorded = state::load(&ctx.state_file)
        .ok()
        .and_then(|s| s.migrated(&ctx.service.name).cloned());
    ctx.migration = Migration::for_rollout(&ctx.service, &mut hosts, recorded).map(Arc::new);
    let (results, event) = roll_out_hosts(&ctx, hosts).await;
    if let Some(ran) = ctx.migration.as_ref().and_then(|m| m.done())
        && !ctx.opts.dry_run
    {
        let name = &ctx.service.name;
        if let Err(e) = state::update(&ctx.state_file, |s| s.set_migrated(name, ran)) {
            ctx.reporter.warn(None, &e.to_string());
        }
    }
    (results, event)
}

async fn roll_out_hosts(ctx: &Ctx, hosts: Vec<Host>) -> (Vec<HostResult>, Option<RolloutEvent>) {
    let service = &ctx.service;
    let names: Vec<String> = hosts.iter().map(|h| h.name.clone()).collect();
    let waves = if ctx.opts.dry_run {
        // A dry run changes nothing: every host shows its plan.
        rollout::waves(&names, &Default::default())
    } else {
        rollout::waves(&names, &service.rollout)
    };
    if !ctx.opts.dry_run {
        let now = release::now_rfc3339();
        if let Err(e) = state::update(&ctx.state_file, |s| s.start(&service.name, &names, &now)) {
            ctx.reporter.warn(None, &e.to_string());
        }
    }
    if hosts.len() > 1 {
        ctx.reporter.fleet_begin();
    }
    let budget = Arc::new(Mutex::new(Budget::new(&service.rollout)));
    let mut results: Vec<HostResult> = Vec::new();
    for wave in &waves {
        let stop = budget.lock().unwrap().stop_reason();
        if stop.is_some() {
            break;
        }
        if wave.index > 0 && !service.rollout.pause.is_zero() {
            ctx.reporter.progress(
                None,
                &format!(
                    "{}: pausing {} before the next batch",
                    service.name,
                    humantime::format_duration(service.rollout.pause)
                ),
            );
            tokio::time::sleep(service.rollout.pause).await;
        }
        if waves.len() > 1 {
            let event = BatchEvent {
                kind: "batch",
                service: service.name.clone(),
                batch: wave.index + 1,
                batches: waves.len(),
                canary: wave.canary,
                hosts: wave.hosts.clone(),
            };
            ctx.reporter.progress(None, &event.text());
            ctx.reporter.emit(&event);
        }
        let wave_hosts: Vec<Host> = hosts
            .iter()
            .filter(|h| wave.hosts.contains(&h.name))
            .cloned()
            .collect();
        let (c, b, canary) = (ctx.share(), budget.clone(), wave.canary);
        let done: Vec<HostResult> =
            fanout::each(wave_hosts, ctx.opts.parallel, move |host: Host| {
                let (c, b) = (c.share(), b.clone());
                async move {
                    // Once over budget, no further host starts, not even in this batch.
                    if let Some(why) = b.lock().unwrap().stop_reason() {
                        return not_reached(&host.name, &c.service.name, &why);
                    }
                    let r = deploy_host(&host, &c).await;
                    if let Some(m) = &c.migration
                        && m.leader == host.name
                    {
                        m.leader_ended(&r);
                    }
                    if !c.opts.dry_run {
                        let mut b = b.lock().unwrap();
                        b.record(&host.name, canary, r.result.is_success());
                        if let Some(why) = c.migration.as_ref().and_then(|m| m.failed()) {
                            b.halt(why);
                        }
                    }
                    c.reporter.fleet_done(&host.name, &fleet::done_line(&r));
                    r
                }
            })
            .await;
        ctx.record_state(&done);
        results.extend(done);
    }
    let stopped = budget.lock().unwrap().stop_reason();
    for name in &names {
        if !results.iter().any(|r| r.host == *name) {
            let why = stopped.as_deref().unwrap_or("the rollout stopped");
            results.push(not_reached(name, &service.name, why));
        }
    }
    let mut put_back = 0;
    if let Some(why) = &stopped
        && ctx.opts.rollback_all_on_failure
    {
        let switched: Vec<(Host, HostResult)> = results
            .iter()
            .filter(|r| r.result == HostOutcome::Ok)
            .filter_map(|r| {
                let host = hosts.iter().find(|h| h.name == r.host)?;
                Some((host.clone(), r.clone()))
            })
            .collect();
        if !switched.is_empty() {
            ctx.reporter.progress(
                None,
                &format!(
                    "{}: putting {} switched host(s) back on their previous release (--rollback-all-on-failure)",
                    service.name,
                    switched.len()
                ),
            );
        }
        let (c, why) = (ctx.share(), Arc::new(why.clone()));
        let back: Vec<HostResult> = fanout::each(
            switched,
            ctx.opts.parallel,
            move |(host, r): (Host, HostResult)| {
                let (c, why) = (c.share(), why.clone());
                async move {
                    let r = put_back_host(&host, r, &why, &c).await;
                    c.reporter.fleet_done(&host.name, &fleet::done_line(&r));
                    r
                }
            },
        )
        .await;
        ctx.record_state(&back);
        for b in back {
            if b.result == HostOutcome::RolledBack {
                put_back += 1;
            }
            if let Some(r) = results.iter_mut().find(|r| r.host == b.host) {
                *r = b;
            }
        }
    }
    ctx.reporter.fleet_end();
    if ctx.opts.dry_run {
        return (results, None);
    }
    let count = |f: &dyn Fn(&HostResult) -> bool| results.iter().filter(|r| f(r)).count();
    let not_reached = count(&|r| r.result == HostOutcome::NotReached);
    // Over budget after the last host started: nothing was left out, the rollout went through.
    let stopped = stopped.filter(|_| not_reached > 0 || ctx.opts.rollback_all_on_failure);
    let event = RolloutEvent {
        kind: "rollout",
        service: service.name.clone(),
        hosts: names.len(),
        batches: waves.len(),
        deployed: count(&|r| r.result == HostOutcome::Ok),
        failed: budget.lock().unwrap().failed().len(),
        put_back,
        not_reached,
        stopped,
    };
    (results, Some(event))
}

/// Services in deploy order: each after those its `after` lists (when selected too).
fn in_order(config: &Config, selected: Vec<Service>) -> Vec<Service> {
    let names: Vec<String> = selected.iter().map(|s| s.name.clone()).collect();
    let mut selected: Vec<Option<Service>> = selected.into_iter().map(Some).collect();
    config
        .in_order(&names)
        .iter()
        .filter_map(|n| names.iter().position(|m| m == n))
        .filter_map(|i| selected[i].take())
        .collect()
}

/// A service that comes after one that failed (`after`): not deployed, its hosts keep their
/// releases; said once, and as its rollout's `stopped`.
fn skip_service(
    service: &Service,
    hosts: &[Host],
    failed: &str,
    reporter: &Reporter,
) -> (Vec<HostResult>, RolloutEvent) {
    let why = format!("it comes after {failed}, which did not deploy everywhere (after)");
    reporter.warn(None, &format!("{}: not deployed: {why}", service.name));
    let results: Vec<HostResult> = hosts
        .iter()
        .map(|h| {
            HostResult::new(
                &h.name,
                &service.name,
                HostOutcome::NotReached,
                None,
                None,
                Some(format!("not deployed, keeps its current release: {why}")),
                exit::OK,
            )
        })
        .collect();
    let event = RolloutEvent {
        kind: "rollout",
        service: service.name.clone(),
        hosts: hosts.len(),
        batches: 0,
        deployed: 0,
        failed: 0,
        put_back: 0,
        not_reached: hosts.len(),
        stopped: Some(format!("not deployed: {why}")),
    };
    (results, event)
}

/// A host the rollout did not start on: it keeps its release.
fn not_reached(host: &str, service: &str, why: &str) -> HostResult {
    HostResult::new(
        host,
        service,
        HostOutcome::NotReached,
        None,
        None,
        Some(format!(
            "not reached, keeps its current release: the rollout stopped ({why})"
        )),
        exit::OK,
    )
}

/// Deploy the service to one host (its own connection).
async fn deploy_host(host: &Host, ctx: &Ctx) -> HostResult {
    let session = match ctx.pre.open(host, &ctx.reporter).await {
        Ok(s) => s,
        Err(e) => {
            // The result line says the error; the hint is said here, once.
            ctx.reporter.hint_of(&host.name, &e);
            return HostResult::new(
                &host.name,
                &ctx.service.name,
                HostOutcome::Unreachable,
                None,
                None,
                Some(e.to_string()),
                e.exit_code(),
            );
        }
    };
    let ss = session
        .service(&ctx.service)
        .masking(ctx.local.skeleton.env.as_ref())
        .probing(&ctx.local.skeleton);
    let result = crate::commands::deploy::steps::deploy_service(
        &ss,
        &ctx.local,
        &ctx.origin,
        &ctx.opts,
        ctx.migration.as_deref(),
    )
    .await;
    session.close().await;
    result
}

/// `--rollback-all-on-failure`: put a host that went through back on the release it had
/// before (`deployed.previous`), as `ferry rollback --to` would, if it is still on the release
/// this rollout gave it.
async fn put_back_host(host: &Host, deployed: HostResult, why: &str, ctx: &Ctx) -> HostResult {
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
        Err(e) => {
            ctx.reporter.error(&e);
            return result(
                HostOutcome::RollbackFailed,
                format!("deployed, but could not be put back on {old}: {e}"),
                e.exit_code(),
            );
        }
    };
    let ss = session
        .service(&ctx.service)
        .masking(ctx.local.skeleton.env.as_ref());
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
            exit::FAILED,
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
    let remote = ss.probe(&[], false).await?;
    let current = remote.current.as_deref();
    if current != Some(new) {
        let note = format!(
            "left alone: its current release is now {} (not {new}, which this rollout deployed)",
            current.unwrap_or("none")
        );
        ss.warn(&note);
        return Ok(ss.result(HostOutcome::Ok, current, Some(old), Some(note), exit::OK));
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
            code: exit::FAILED,
        });
    };
    ss.phase(
        "rollback",
        format!("putting {old} back (the rollout stopped)"),
    );
    let record = |outcome: &str, reason: String| HistoryRecord {
        time: release::now_rfc3339(),
        action: "rollback".into(),
        release: old.to_string(),
        previous: Some(new.to_string()),
        outcome: outcome.into(),
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
            ss.record(&record("ok", because)).await;
            Ok(ss.result(
                HostOutcome::RolledBack,
                Some(new),
                Some(old),
                Some(format!(
                    "deployed, then put back on {old}: the rollout stopped ({why})"
                )),
                exit::ROLLED_BACK,
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
            ss.record(&record("failed", format!("{because}; {}", f.reason)))
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
                exit::FAILED,
            ))
        }
    }
}
