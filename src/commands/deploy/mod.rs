//! `ferry deploy`: prepare the releases locally, then roll each service out over its hosts
//! (canary hosts first, then batches, within the failure budget: see `rollout`), putting hosts
//! back when asked to; on each host `execute` makes the plan and executes its steps.
//!
//! Several services are rolled out one after another, each with its own rollout, in the order
//! of their `after` lists; a rollout that stops does not stop the next service's, unless that
//! one comes after it (then it is not deployed). A service's `migrate` hook runs once per
//! rollout, before any host switches (see `migrate`). Each rollout's outcome per host is recorded in
//! `.ferry/state.json` (see `state`) for `--retry-failed`.

pub(crate) mod command;
pub mod hooks;
mod migrate;
pub mod promote;
mod put_back;
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
use crate::error::{Error, Exit, Result};
use crate::outcome::HostOutcome;
use crate::plan::Origin;
use crate::prepare::local;
use crate::release;
use crate::report::Reporter;
use crate::report::deploy::{HostResult, Summary};
use crate::report::fleet::{self, BatchEvent, RolloutEvent};
use crate::session::Session;

pub use crate::commands::deploy::steps::Options;
pub use command::run;

/// Each selected service with its selected hosts, in deploy order.
type Rollouts = Vec<(Service, Vec<Host>)>;

/// `ferry deploy [SERVICE...] [--host NAME...]`.
pub async fn deploy_services(
    config: &Config,
    services: &[String],
    hosts: &[String],
    opts: Options,
    reporter: Arc<Reporter>,
) -> Result<Exit> {
    let state_file = state::path(&config.path);
    let rollouts = select(config, services, hosts, &opts, &state_file, &reporter)?;
    if opts.retry_failed && rollouts.is_empty() {
        if reporter.format == crate::report::Format::Json {
            reporter.emit(&Summary {
                kind: "summary",
                ok: 0,
                failed: 0,
                exit_code: Exit::Ok,
                dry_run: opts.dry_run,
                action: "deployed",
            });
        } else {
            reporter.heading("nothing to retry: every selected host ended ok in its last rollout");
        }
        return Ok(Exit::Ok);
    }
    expect_hosts(&rollouts, opts.dry_run, &reporter);
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
    let opts = Arc::new(opts);
    let (results, events, deployed) = match rollouts.first() {
        Some((first, _)) => {
            let base = Ctx {
                service: Arc::new(first.clone()),
                pre,
                job: Job::Promote,
                origin: Arc::new(local::origin(config)),
                opts: opts.clone(),
                reporter: reporter.clone(),
                state_file,
                migration: None,
            };
            roll_out_all(config, &base, rollouts, prepared).await
        }
        None => Default::default(),
    };
    let code = Exit::combine(results.iter().map(|r| r.code));
    if results.len() > 1 || code != Exit::Ok || !opts.dry_run {
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
    let action = if opts.no_switch { "staged" } else { "deployed" };
    Ok(finish(
        &results,
        &events,
        code,
        opts.dry_run,
        action,
        &reporter,
    ))
}

/// Each selected service with its selected hosts, in the order its `hosts` lists them (with
/// `--retry-failed`, only those to retry).
fn select(
    config: &Config,
    services: &[String],
    hosts: &[String],
    opts: &Options,
    state_file: &std::path::Path,
    reporter: &Reporter,
) -> Result<Rollouts> {
    let targets = targets::resolve(config, services, hosts)?;
    let recorded = if opts.retry_failed {
        Some(state::load(state_file)?)
    } else {
        None
    };
    let mut rollouts: Rollouts = Vec::new();
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
    Ok(rollouts)
}

/// Roll every service out, one after another: the results, the rollouts' events, and the
/// services deployed (for their `local_after` hooks).
async fn roll_out_all(
    config: &Config,
    base: &Ctx,
    rollouts: Rollouts,
    prepared: Vec<Arc<local::Local>>,
) -> (
    Vec<HostResult>,
    Vec<RolloutEvent>,
    Vec<(String, Arc<local::Local>)>,
) {
    let mut results: Vec<HostResult> = Vec::new();
    let mut events: Vec<RolloutEvent> = Vec::new();
    let mut deployed: Vec<(String, Arc<local::Local>)> = Vec::new();
    let mut failed: Vec<String> = Vec::new();
    for ((service, hosts), local) in rollouts.into_iter().zip(prepared) {
        if let Some(before) = failed
            .iter()
            .find(|f| !base.opts.dry_run && config.comes_after(&service.name, f))
        {
            let (r, e) = skip_service(&service, &hosts, before, &base.reporter);
            r.iter().for_each(|r| base.reporter.tally().done(r));
            failed.push(service.name.clone());
            results.extend(r);
            events.push(e);
            continue;
        }
        deployed.push((service.name.clone(), local.clone()));
        let ctx = Ctx {
            service: Arc::new(service),
            job: Job::Deploy(local),
            ..base.share()
        };
        let (r, e) = roll_out(&ctx, hosts).await;
        if r.iter().any(|r| !r.result.is_success()) {
            failed.push(ctx.service.name.clone());
        }
        results.extend(r);
        events.extend(e);
        // The connections opened early were for the first rollout's hosts.
        base.pre.abort();
    }
    (results, events, deployed)
}

/// The end of a rollout command: the rollouts' events, then the summary; the exit code.
fn finish(
    results: &[HostResult],
    events: &[RolloutEvent],
    code: Exit,
    dry_run: bool,
    action: &'static str,
    reporter: &Reporter,
) -> Exit {
    for e in events {
        reporter.emit(e);
    }
    let ok = results.iter().filter(|r| r.result.is_success()).count();
    reporter.emit(&Summary {
        kind: "summary",
        ok,
        failed: results.len() - ok,
        exit_code: code,
        dry_run,
        action,
    });
    code
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

/// What a rollout does on each host.
#[derive(Clone)]
enum Job {
    /// Deploy this release (`ferry deploy`).
    Deploy(Arc<local::Local>),
    /// Switch to the release staged there (`ferry promote`).
    Promote,
}

/// What every host of one service's rollout shares.
struct Ctx {
    service: Arc<Service>,
    /// Connections opened while the release was prepared.
    pre: Preconnected,
    job: Job,
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
            job: self.job.clone(),
            origin: self.origin.clone(),
            opts: self.opts.clone(),
            reporter: self.reporter.clone(),
            state_file: self.state_file.clone(),
            migration: self.migration.clone(),
        }
    }

    /// Does this rollout record its outcomes in the state file (for `--retry-failed`)? A
    /// deploy's, not a dry run's or a promote's.
    fn records_state(&self) -> bool {
        !self.opts.dry_run && matches!(self.job, Job::Deploy(_))
    }

    /// The values of the release's env, masked in what hosts print.
    fn env(&self) -> Option<&crate::release::env::EnvFile> {
        match &self.job {
            Job::Deploy(local) => local.skeleton.env.as_ref(),
            Job::Promote => None,
        }
    }

    /// Record results in the state file (a warning when it cannot be written).
    fn record_state(&self, results: &[HostResult]) {
        if !self.records_state() {
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
    if ctx.records_state() {
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
        if budget.lock().unwrap().stop_reason().is_some() {
            break;
        }
        let done = run_wave(ctx, &hosts, wave, waves.len(), &budget).await;
        ctx.record_state(&done);
        results.extend(done);
    }
    let stopped = budget.lock().unwrap().stop_reason();
    for name in &names {
        if !results.iter().any(|r| r.host == *name) {
            let why = stopped.as_deref().unwrap_or("the rollout stopped");
            let r = not_reached(name, &service.name, why);
            ctx.reporter.tally().done(&r);
            results.push(r);
        }
    }
    let mut put_back = 0;
    if let Some(why) = &stopped
        && ctx.opts.rollback_all_on_failure
    {
        put_back = put_back_all(ctx, &hosts, &mut results, why).await;
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

/// One batch (or the canary hosts) of a rollout, up to `--parallel` hosts at once, within the
/// failure budget.
async fn run_wave(
    ctx: &Ctx,
    hosts: &[Host],
    wave: &rollout::Wave,
    waves: usize,
    budget: &Arc<Mutex<Budget>>,
) -> Vec<HostResult> {
    let service = &ctx.service;
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
    if waves > 1 {
        let event = BatchEvent {
            kind: "batch",
            service: service.name.clone(),
            batch: wave.index + 1,
            batches: waves,
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
            c.reporter.tally().done(&r);
            r
        }
    })
    .await
}

/// `--rollback-all-on-failure`: put the hosts the stopped rollout switched back on their
/// previous release; how many were.
async fn put_back_all(ctx: &Ctx, hosts: &[Host], results: &mut [HostResult], why: &str) -> usize {
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
                ctx.service.name,
                switched.len()
            ),
        );
    }
    let (c, why) = (ctx.share(), Arc::new(why.to_string()));
    let back: Vec<HostResult> = fanout::each(
        switched,
        ctx.opts.parallel,
        move |(host, r): (Host, HostResult)| {
            let (c, why) = (c.share(), why.clone());
            async move {
                let r = put_back::put_back_host(&host, r, &why, &c).await;
                c.reporter.fleet_done(&host.name, &fleet::done_line(&r));
                r
            }
        },
    )
    .await;
    ctx.record_state(&back);
    back.iter().for_each(|b| ctx.reporter.tally().done(b));
    let mut put_back = 0;
    for b in back {
        if b.result == HostOutcome::RolledBack {
            put_back += 1;
        }
        if let Some(r) = results.iter_mut().find(|r| r.host == b.host) {
            *r = b;
        }
    }
    put_back
}

/// Tell the reporter's tally which hosts each rollout will work on (what an interrupt reports).
pub(super) fn expect_hosts(rollouts: &[(Service, Vec<Host>)], dry_run: bool, reporter: &Reporter) {
    for (service, hosts) in rollouts {
        let names: Vec<String> = hosts.iter().map(|h| h.name.clone()).collect();
        let batches = (!dry_run).then(|| rollout::waves(&names, &service.rollout).len());
        reporter.tally().expect(&service.name, &names, batches);
    }
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
                Exit::Ok,
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
        Exit::Ok,
    )
}

/// Deploy the service to one host (its own connection).
async fn deploy_host(host: &Host, ctx: &Ctx) -> HostResult {
    let Job::Deploy(local) = &ctx.job else {
        return promote::promote_host(host, ctx).await;
    };
    let session = match ctx.pre.open(host, &ctx.reporter).await {
        Ok(s) => s,
        // The result says the error, which way it failed and its hint, once.
        Err(e) => return HostResult::not_connected(&host.name, &ctx.service.name, &e),
    };
    let ss = session
        .service(&ctx.service)
        .masking(local.skeleton.env.as_ref())
        .probing(&local.skeleton);
    let result = crate::commands::deploy::steps::deploy_service(
        &ss,
        local,
        &ctx.origin,
        &ctx.opts,
        ctx.migration.as_deref(),
    )
    .await;
    session.close().await;
    result
}
