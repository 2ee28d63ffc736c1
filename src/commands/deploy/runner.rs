//! The step runner: executes a plan's steps in order, exactly as `--dry-run` printed them. It
//! owns what the steps hand to each other (the SFTP session from `stage` to `seal`, whether
//! the meta files were written, whether the self-revert is armed, the state before the
//! switch), one method per step; a step either lets the next one run or ends the deploy with
//! its result. A lost connection says in which step, and what state that leaves the host in.

use crate::commands::deploy::hooks::{self, Hook};
use crate::commands::deploy::migrate::{self, Migration};
use crate::commands::deploy::state::Migrated;
use crate::commands::deploy::steps::{
    Name, Provisional, fail, make_plan, record, refusal_code, unchanged,
};
use crate::error::{Error, Exit, Result};
use crate::outcome::HostOutcome;
use crate::plan::{self, LocalRelease, Origin, Plan, RemoteState, Step};
use crate::release::{self, Action, HistoryRecord, Outcome};
use crate::report::deploy::HostResult;
use crate::report::hooks::MigrateEvent;
use crate::session::{Before, LiveFailure, ServiceSession};
use crate::transport::sftp::Sftp;

/// What a step lets happen next.
enum Flow {
    /// The next step runs.
    Next,
    /// The deploy ends here with this result.
    Done(HostResult),
}

/// One deploy of one service on one host, from its plan to its result.
pub(crate) struct Runner<'a> {
    ss: &'a ServiceSession<'a>,
    /// The plan under way; replaced once, when an upload learned the hashes of a provisional
    /// plan (same steps, the release's own id).
    plan: Plan,
    /// The release as it is for this host (templates rendered), replaced with the plan.
    local: LocalRelease,
    remote: &'a RemoteState,
    origin: &'a Origin,
    provisional: Provisional<'a>,
    /// Opened before the plan was made; an error opening it matters only if a step needs it.
    opened: Option<Result<Sftp>>,
    /// The session the release is staged with, from `stage` to `seal`.
    sftp: Option<Sftp>,
    /// What the upload left in the staging directory for the seal.
    staged: crate::session::upload::Staged,
    /// The self-revert is armed on the host.
    armed: bool,
    /// The units' state before the switch, which verification compares against.
    before: Before,
    /// The index of the step under way.
    at: usize,
    /// The rollout's migration, which every host waits for before it switches.
    migration: Option<&'a Migration>,
    /// The migration has passed (or there is none to wait for).
    migrated: bool,
    /// The files an interrupted upload left that the cleanup moved into the new staging
    /// directory (which it then created): the upload sends them from where they stop.
    resume: Vec<plan::resume::PartialFile>,
}

impl<'a> Runner<'a> {
    pub(crate) fn new(
        ss: &'a ServiceSession<'a>,
        plan: &Plan,
        local: &LocalRelease,
        remote: &'a RemoteState,
        origin: &'a Origin,
        sftp: Result<Sftp>,
        provisional: Provisional<'a>,
    ) -> Runner<'a> {
        Runner {
            ss,
            plan: plan.clone(),
            local: local.clone(),
            remote,
            origin,
            provisional,
            opened: Some(sftp),
            sftp: None,
            staged: Default::default(),
            armed: false,
            before: Before::default(),
            at: 0,
            migration: None,
            migrated: false,
            resume: Vec::new(),
        }
    }

    /// The rollout has a migration: this host waits for it before it switches (or runs it,
    /// when its plan has the `migrate` step).
    pub(crate) fn with_migration(mut self, migration: Option<&'a Migration>) -> Runner<'a> {
        self.migration = migration;
        self
    }

    /// Run every step; the result of the deploy on this host.
    pub(crate) async fn run(mut self) -> Result<HostResult> {
        for index in 0..self.plan.steps.len() {
            self.at = index;
            let step = self.plan.steps[index].clone();
            self.at_point(Some(index)).await;
            crate::fault::point(step.name());
            crate::fault::pause(step.name()).await;
            // Nothing live changes (nor is staged) before the rollout's migration has passed.
            if matches!(
                step,
                Step::BeforeSwitch { .. }
                    | Step::ArmRevert { .. }
                    | Step::Activate { .. }
                    | Step::Staged { .. }
            ) && !self.migrated
            {
                self.migrated = true;
                if let Some(Flow::Done(result)) = self.await_migration().await {
                    return Ok(result);
                }
            }
            self.ss.step(index, &step);
            match self.step(&step).await {
                Ok(Flow::Next) => {}
                Ok(Flow::Done(result)) => return Ok(result),
                Err(e) => return Err(self.lost(e)),
            }
        }
        Ok(self.result(HostOutcome::Ok, None, Exit::Ok))
    }

    async fn step(&mut self, step: &Step) -> Result<Flow> {
        let ss = self.ss;
        match step {
            Step::Lock => {}
            Step::Unchanged { current } => return Ok(Flow::Done(unchanged(ss, current))),
            Step::Refuse { reason, why } => {
                return Err(Error::Refused {
                    host: ss.host.name.clone(),
                    message: reason.clone(),
                    code: refusal_code(*why),
                });
            }
            Step::CleanStaging { dirs } => {
                let resume = plan::resume::resumable(&self.plan, self.remote);
                if ss.clean_staging(dirs, &self.plan, &resume).await? {
                    self.resume = resume;
                }
                let kept = match self.resume.iter().map(|f| f.size).sum::<u64>() {
                    0 => String::new(),
                    n => format!(
                        "; kept what it had sent of {} file(s) ({}) to resume from",
                        self.resume.len(),
                        crate::report::deploy::human_bytes(n)
                    ),
                };
                ss.warn(&format!(
                    "removed what an interrupted deploy left: {} staging director{} (releases/{}){kept}",
                    dirs.len(),
                    if dirs.len() == 1 { "y" } else { "ies" },
                    dirs.join(", releases/")
                ));
            }
            Step::ClearStaleRevert => {
                ss.cancel_revert().await?;
                ss.warn(&format!(
                    "stopped the self-revert timer an interrupted deploy left armed for release {}, which is no longer current",
                    self.remote.revert_for.as_deref().unwrap_or("(unknown)")
                ));
            }
            Step::Stage { .. } => self.stage().await?,
            Step::Reuse { .. } => ss.reuse(&self.plan).await?,
            Step::Upload { .. } => self.upload().await?,
            Step::Seal {
                units, arm_revert, ..
            } => return self.seal(units, arm_revert.as_ref()).await,
            Step::Migrate { command } => return self.migrate(command).await,
            Step::BeforeSwitch { command } => return self.before_switch(command).await,
            Step::ArmRevert { to, .. } => {
                let to = ss.manifest_of(to, self.remote).await?;
                let back = self.remote.back_colour(&ss.service.name, &to);
                ss.arm_revert(&self.plan.manifest, &to, &self.origin.by, back)
                    .await?;
                self.armed = true;
            }
            Step::Activate { .. } => return self.activate().await,
            Step::Verify { units } => return self.verify(units).await,
            Step::Health { .. } => return self.health().await,
            Step::Switch { from, to, .. } => return self.switch(*from, *to).await,
            Step::AfterSwitch { command } => return self.after_switch(command).await,
            Step::Staged { .. } => return self.staged().await,
            Step::Confirm { prune, .. } => return self.confirm(prune).await,
        }
        Ok(Flow::Next)
    }

    fn id(&self) -> &str {
        &self.plan.release
    }

    fn previous(&self) -> Option<&'a str> {
        self.remote.current.as_deref()
    }

    fn record(&self, outcome: Outcome, reason: Option<String>) -> HistoryRecord {
        record(&self.plan, self.origin, outcome, reason)
    }

    fn result(&self, outcome: HostOutcome, reason: Option<String>, code: Exit) -> HostResult {
        self.ss
            .result(outcome, Some(self.id()), self.previous(), reason, code)
    }

    async fn stage(&mut self) -> Result<()> {
        let id = self.id();
        let release = if release::is_pending(id) {
            "new release, its id once the upload has hashed its files".to_string()
        } else {
            format!("release {id}")
        };
        self.ss.phase(
            "upload",
            format!("{release} (current: {})", self.previous().unwrap_or("none")),
        );
        let s = self.opened.take().expect("one stage step")?;
        // The cleanup made the staging directory when it kept files to resume.
        if self.resume.is_empty() {
            self.ss.stage(&self.plan, &s).await?;
        }
        self.sftp = Some(s);
        Ok(())
    }

    async fn upload(&mut self) -> Result<()> {
        let uploaded = self
            .ss
            .upload(
                &self.plan,
                &self.local,
                self.sftp.as_ref().expect("staged before upload"),
                std::mem::take(&mut self.provisional.deferred),
                self.provisional.prepared,
                self.remote,
                &self.resume,
            )
            .await?;
        self.staged.incoming = uploaded.incoming;
        let learned = uploaded.learned;
        if learned.is_empty() {
            self.staged.meta_written = true;
            return Ok(());
        }
        self.replan(learned).await
    }

    /// Every hash is known: the release's id, and the plan the rest follows (its steps must be
    /// the same, else nothing goes live).
    async fn replan(&mut self, learned: Vec<(usize, u64, String)>) -> Result<()> {
        let ss = self.ss;
        let mut full = self.provisional.view.clone();
        for (i, size, sha256) in learned {
            full.files[i].size = size;
            full.files[i].sha256 = sha256;
        }
        let made = make_plan(
            ss,
            &full,
            self.remote,
            self.origin,
            self.provisional.opts,
            Name::StagedAs(&self.plan.staging),
        );
        let (p, l) = match made {
            Ok(made) => made,
            Err(e) => return Err(ss.abandon_staging(&self.plan, e).await),
        };
        let names = |p: &Plan| p.steps.iter().map(Step::name).collect::<Vec<_>>();
        if names(&p) != names(&self.plan) {
            let e = Error::Local(format!(
                "the plan of {} changed once its files were hashed ({:?}, then {:?}); nothing went live: deploy again",
                ss.host.name,
                names(&self.plan),
                names(&p)
            ));
            return Err(ss.abandon_staging(&self.plan, e).await);
        }
        self.plan = p;
        self.local = l;
        Ok(())
    }

    async fn seal(
        &mut self,
        units: &[String],
        arm_revert: Option<&plan::RevertArm>,
    ) -> Result<Flow> {
        let ss = self.ss;
        let arming = match arm_revert {
            Some(a) => {
                let to = ss.manifest_of(&a.to, self.remote).await?;
                let back = self.remote.back_colour(&ss.service.name, &to);
                Some(ss.revert_arming(&self.plan.manifest, &to, &self.origin.by, back))
            }
            None => None,
        };
        let s = self.sftp.take().expect("staged before seal");
        let out = ss
            .seal(
                &self.plan,
                &self.local,
                s,
                &self.staged,
                units,
                arming.as_deref(),
            )
            .await?;
        self.armed |= arming.is_some();
        if !units.is_empty()
            && let Err(e) =
                crate::session::unit_check::evaluate(ss, self.id(), units, &self.local, &out)
        {
            if self.armed {
                // The timer would guard a release that never goes live.
                ss.cancel_revert().await?;
            }
            ss.record(&self.record(Outcome::Refused, Some(e.to_string())))
                .await;
            return Err(e);
        }
        Ok(Flow::Next)
    }

    /// Wait for the rollout's migration (run by another host) before anything live changes;
    /// when it failed, this host stops here with nothing switched.
    async fn await_migration(&mut self) -> Option<Flow> {
        let m = self.migration?;
        if m.leader == self.ss.host.name {
            return None;
        }
        if m.pending() {
            self.ss.phase(
                "migrate",
                format!("waiting for the migration on {} before switching", m.leader),
            );
        }
        let why = m.wait().await.err()?;
        let reason = format!(
            "not switched: {why}; nothing switched on any host, {} keeps serving",
            self.previous().unwrap_or("no release")
        );
        self.ss
            .record(&self.record(Outcome::Failed, Some(reason.clone())))
            .await;
        Some(Flow::Done(self.result(
            HostOutcome::Failed,
            Some(reason),
            Exit::Failed,
        )))
    }

    /// Run the rollout's migration here (once), or find that it ran for this content.
    async fn migrate(&mut self, command: &str) -> Result<Flow> {
        let ss = self.ss;
        let m = self
            .migration
            .expect("a migrate step only with a migration");
        self.migrated = true;
        let id = self.id().to_string();
        let event = |result: &'static str, reason: Option<String>| {
            ss.reporter.emit(&MigrateEvent::new(
                &ss.host.name,
                &ss.service.name,
                &id,
                result,
                reason,
            ));
        };
        if let Some(ran) = m.already_ran(&id, &self.remote.history) {
            event(
                "skipped",
                Some(format!(
                    "it already ran for release {} (same content) on {} at {}",
                    ran.release, ran.host, ran.time
                )),
            );
            m.open(ran);
            return Ok(Flow::Next);
        }
        let failed = if m.on != ss.host.name {
            Some(format!(
                "the migration of {id} runs on {} (migrate_on), which this deploy does not select, and it has not run for this release: deploy with --host {} too",
                m.on, m.on
            ))
        } else {
            hooks::run_remote(
                ss,
                Hook::Migrate,
                command,
                &id,
                self.previous(),
                self.local.env.as_ref(),
            )
            .await?
        };
        let Some(reason) = failed else {
            ss.record(&migrate::record(
                &id,
                self.previous(),
                &self.origin.by,
                command,
            ))
            .await;
            event("ran", None);
            m.open(Migrated {
                release: id.clone(),
                host: ss.host.name.clone(),
                time: release::now_rfc3339(),
            });
            return Ok(Flow::Next);
        };
        event("failed", Some(reason.clone()));
        m.shut(format!(
            "the migration failed on {}: {reason}",
            ss.host.name
        ));
        let why = format!(
            "{reason}; nothing switched on any host, {} keeps serving",
            self.previous().unwrap_or("no release")
        );
        ss.record(&self.record(Outcome::Failed, Some(why.clone())))
            .await;
        Ok(Flow::Done(self.result(
            HostOutcome::Failed,
            Some(why),
            Exit::Failed,
        )))
    }

    async fn before_switch(&mut self, command: &str) -> Result<Flow> {
        let ss = self.ss;
        let failed = hooks::run_remote(
            ss,
            Hook::BeforeSwitch,
            command,
            self.id(),
            self.previous(),
            self.local.env.as_ref(),
        )
        .await?;
        let Some(reason) = failed else {
            return Ok(Flow::Next);
        };
        // Nothing live changed: the old release keeps serving.
        ss.record(&self.record(Outcome::Failed, Some(reason.clone())))
            .await;
        let why = format!(
            "{reason}; nothing live changed, {} keeps serving",
            self.previous().unwrap_or("no release")
        );
        Ok(Flow::Done(self.result(
            HostOutcome::Failed,
            Some(why),
            Exit::Failed,
        )))
    }

    async fn activate(&mut self) -> Result<Flow> {
        let ss = self.ss;
        ss.phase(
            "activate",
            format!(
                "switching to {}: installing units, switching `current`, restarting",
                self.id()
            ),
        );
        let activation = plan::Activation::for_plan(&self.plan);
        match ss.activate(&activation, self.armed).await? {
            Ok(b) => {
                self.before = b;
                Ok(Flow::Next)
            }
            Err(f) => self.fail(f).await,
        }
    }

    async fn verify(&mut self, units: &[String]) -> Result<Flow> {
        let ss = self.ss;
        let failed = ss
            .verify(
                units,
                &self.before,
                ss.service.start_timeout,
                ss.service.settle_time,
            )
            .await?;
        match failed {
            None => Ok(Flow::Next),
            Some(reason) => self.fail_with(reason, units.to_vec()).await,
        }
    }

    async fn health(&mut self) -> Result<Flow> {
        let checks = self
            .ss
            .service
            .health
            .as_ref()
            .expect("planned with health");
        // Blue/green: the new colour is checked on its own port, before the front moves.
        let checks = match (&self.plan.switch, &self.ss.service.switch) {
            (Some(sp), Some(sw)) => crate::config::health_on(checks, sw, sp.port),
            _ => checks.clone(),
        };
        match self.ss.health(&checks).await {
            None => Ok(Flow::Next),
            Some(reason) => {
                let units = plan::Activation::for_plan(&self.plan).verify_units();
                self.fail_with(reason, units).await
            }
        }
    }

    /// Blue/green: move the front to the verified colour. A front that could not move is a
    /// failure before anything switched (the old colour still serves).
    async fn switch(
        &mut self,
        from: Option<crate::systemd::switch::Colour>,
        to: crate::systemd::switch::Colour,
    ) -> Result<Flow> {
        match self.ss.switch_over(self.id(), from, to).await? {
            None => Ok(Flow::Next),
            Some(reason) => {
                let units = plan::Activation::for_plan(&self.plan).verify_units();
                self.fail_with(reason, units).await
            }
        }
    }

    async fn after_switch(&mut self, command: &str) -> Result<Flow> {
        let failed = hooks::run_remote(
            self.ss,
            Hook::AfterSwitch,
            command,
            self.id(),
            self.previous(),
            self.local.env.as_ref(),
        )
        .await?;
        match failed {
            None => Ok(Flow::Next),
            Some(reason) => {
                let units = plan::Activation::for_plan(&self.plan).verify_units();
                self.fail_with(reason, units).await
            }
        }
    }

    /// Disarms the timer, records the release as ok and prunes, in one command.
    async fn confirm(&mut self, prune: &[String]) -> Result<Flow> {
        let ok = self.record(Outcome::Ok, None);
        let confirmed = self.ss.confirm(self.id(), self.armed, &ok, prune).await?;
        if self.armed && !confirmed {
            let reason = "the self-revert timer fired before the deploy was confirmed (confirm_timeout too short?); the host is back on the previous release".to_string();
            return Ok(Flow::Done(self.result(
                HostOutcome::RolledBack,
                Some(reason),
                Exit::RolledBack,
            )));
        }
        Ok(Flow::Next)
    }

    /// `--no-switch`: mark the release staged; the host keeps serving its current release.
    async fn staged(&mut self) -> Result<Flow> {
        let record = HistoryRecord {
            action: Action::Stage,
            ..self.record(Outcome::Staged, None)
        };
        self.ss.mark_staged(self.id(), &record).await?;
        let serving = self.previous().unwrap_or("no release");
        let reason = format!(
            "staged, not switched: {serving} keeps serving; `ferry promote {}` switches to it",
            self.ss.service.name
        );
        self.ss.phase("staged", reason.clone());
        Ok(Flow::Done(self.result(
            HostOutcome::Ok,
            Some(reason),
            Exit::Ok,
        )))
    }

    async fn fail_with(&mut self, reason: String, units: Vec<String>) -> Result<Flow> {
        let f = LiveFailure {
            reason,
            since: self.before.since.clone(),
            units,
        };
        self.fail(f).await
    }

    /// The new release failed to go live: roll back or stay, as planned.
    async fn fail(&mut self, f: LiveFailure) -> Result<Flow> {
        self.at_point(None).await;
        let r = fail(self.ss, &self.plan, self.remote, self.origin, self.armed, f).await?;
        Ok(Flow::Done(r))
    }

    /// Note what stopping here (at step `index`, or None: during a rollback) leaves on the
    /// host, for an interrupt's report; once ferry is interrupted, nothing more starts.
    async fn at_point(&self, index: Option<usize>) {
        let ss = self.ss;
        let state = self.plan.state_if_lost(index, ss.service.confirm_timeout);
        let state = match index {
            Some(i) => format!(
                "in step `{}` of the deploy of {}: {state}",
                self.plan.steps[i].name(),
                self.plan.release
            ),
            None => format!("{state} (deploy of {})", self.plan.release),
        };
        if !ss
            .reporter
            .tally()
            .at(&ss.host.name, &ss.service.name, state)
        {
            std::future::pending::<()>().await;
        }
    }

    /// A lost connection names the step it happened in and what that leaves on the host.
    fn lost(&self, e: Error) -> Error {
        match e {
            Error::ConnectionLost { host, during } => Error::ConnectionLost {
                during: format!(
                    "{during} (step `{}` of the deploy of {}); {}",
                    self.plan.steps[self.at].name(),
                    self.plan.release,
                    self.plan
                        .state_if_lost(Some(self.at), self.ss.service.confirm_timeout)
                ),
                host,
            },
            e => e,
        }
    }
}
