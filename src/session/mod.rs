//! The per-host session: one SSH connection to a host and the operations every command performs
//! there for a service (read the remote state, lock, stage and seal a release, arm and disarm
//! the self-revert, activate, verify, run health checks, read the journal of a failure, record
//! history, prune). Commands (`deploy`, `rollback`, `releases`) are sequences of these steps.
//!
//! Until [`ServiceSession::activate`] nothing the running service uses is touched, so an
//! interrupted deploy leaves the previous release serving.

mod bundle;
pub mod health;
mod history;
pub mod lock;
mod poll;
pub mod seal;
mod self_revert;
mod stage;
mod staged;
mod switch;
pub mod unit_check;
pub mod upload;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::{Health, Host, Service};
use crate::error::{Error, Exit, Result};
use crate::outcome::HostOutcome;
use crate::plan::{self, Activation, LocalRelease, Plan, RemoteState, Step};
use crate::release::{self, Manifest, Paths};
use crate::report::Reporter;
use crate::report::deploy::{
    HostResult, JournalEvent, PhaseEvent, RemoteOps, StepEvent, UnitEvent,
};
use crate::session::lock::RemoteLock;
use crate::shell::quote;
use crate::systemd::switch::Colour;
use crate::systemd::{self, Verdict};
use crate::transport::sftp::Sftp;
use crate::transport::ssh::{self, Connection};

/// How often unit states are polled.
const POLL: Duration = Duration::from_millis(250);

/// A connection to one host, shared by everything a command does there.
pub struct Session {
    pub conn: Connection,
    pub host: Host,
    pub reporter: Arc<Reporter>,
}

impl Session {
    /// Connect (host key verified, authenticated).
    pub async fn open(host: &Host, reporter: &Arc<Reporter>) -> Result<Session> {
        reporter.progress(
            Some(&host.name),
            &format!("connecting to {}@{}:{}", host.user, host.address, host.port),
        );
        let conn = ssh::connect(host).await?;
        Ok(Session {
            conn,
            host: host.clone(),
            reporter: reporter.clone(),
        })
    }

    /// The operations on one service of this host.
    pub fn service<'a>(&'a self, service: &'a Service) -> ServiceSession<'a> {
        ServiceSession {
            session: self,
            conn: &self.conn,
            host: &self.host,
            service,
            reporter: &self.reporter,
            paths: Paths::new(&service.name),
            pids: Mutex::new(Vec::new()),
            env: None,
            binaries_probe: String::new(),
            resume_probe: String::new(),
            counted_from: self.conn.counters.snapshot(),
            clock_offset: Mutex::new(None),
        }
    }

    pub async fn close(self) {
        self.conn.close().await;
    }
}

/// Why going live failed: the reason, and the host's time just before (for the journal).
#[derive(Debug, Clone)]
pub struct LiveFailure {
    pub reason: String,
    pub since: Option<String>,
    pub units: Vec<String>,
}

/// State taken just before an activation: the host's time and the units' invocation ids.
#[derive(Debug, Clone, Default)]
pub struct Before {
    pub since: Option<String>,
    pub invocations: BTreeMap<String, String>,
    /// The units' states (`systemctl show`) read by the activation's own command, once their
    /// jobs were done: the verification's first look, without a round trip of its own.
    pub states: Option<String>,
}

/// The line ending the reads taken before an activation (see
/// [`ServiceSession::before_command`]).
const BEFORE_END: &str = "@ferry-before-end";

/// The line before the units' states in the activation's output (see
/// [`ServiceSession::states_command`]).
const STATES: &str = "@ferry-states";

/// Files of a release uploaded at once, per host, when they are large (see [`SMALL_FILE`]).
pub(crate) const UPLOADS_IN_FLIGHT: usize = 4;

/// Small files (below [`SMALL_FILE`]) uploaded at once, per host: a release of many small
/// files waits on a round trip per file's open and close, not on bandwidth, and sftp-server
/// answers requests in order, so many in flight keep it busy.
pub(crate) const SMALL_IN_FLIGHT: usize = 64;

/// A file below this size counts as small for [`SMALL_IN_FLIGHT`].
pub(crate) const SMALL_FILE: u64 = 256 * 1024;

/// One service on one host.
pub struct ServiceSession<'a> {
    pub session: &'a Session,
    pub conn: &'a Connection,
    pub host: &'a Host,
    pub service: &'a Service,
    pub reporter: &'a Reporter,
    pub paths: Paths,
    /// Main PIDs of the verified units, last seen: their output is found by PID in the
    /// journal when journald could not tell its unit (a process that exited at once).
    pids: Mutex<Vec<u32>>,
    /// The service's env, when it has one: its secret values are masked in the journal lines
    /// this session shows (a service that prints its database URL when it fails must not put
    /// it in a CI log).
    env: Option<crate::release::env::EnvFile>,
    /// Shell text the probe also runs: what the release's binaries need of the host (see
    /// [`crate::elf::Query`]).
    binaries_probe: String,
    /// Shell text the probe also runs: the files an interrupted upload left of those the
    /// release sends from disk (see [`crate::plan::resume`]).
    resume_probe: String,
    /// The connection's counters when this session began (see [`ServiceSession::result`]).
    counted_from: (u64, u64, u64),
    /// The host's clock minus this machine's in milliseconds, once read (history records take
    /// the host's time).
    clock_offset: Mutex<Option<i64>>,
}

impl ServiceSession<'_> {
    /// Mask the secret values of `env` in the journal lines this session shows.
    pub fn masking(mut self, env: Option<&crate::release::env::EnvFile>) -> Self {
        self.env = env.cloned();
        self
    }

    /// Mask the secret values of `env` from now on (see [`ServiceSession::masking`]).
    pub fn mask_from_now(&mut self, env: Option<crate::release::env::EnvFile>) {
        self.env = env;
    }

    /// The env whose secret values this session masks.
    pub fn masked(&self) -> Option<&crate::release::env::EnvFile> {
        self.env.as_ref()
    }

    /// Have the probe also look for what `local`'s binaries need (their program interpreters
    /// and libraries), for what an interrupted upload left of its files, and for the first
    /// bytes of the current copies of big files of the same size, in the same command.
    pub fn probing(mut self, local: &LocalRelease) -> Self {
        let files: Vec<String> = local.files.iter().map(|f| f.dest.clone()).collect();
        self.binaries_probe = crate::elf::Query::of(&local.binaries, &files).script();
        let sizes: Vec<(String, u64)> = local
            .files
            .iter()
            .filter(|f| f.content.is_none())
            .map(|f| (f.dest.clone(), f.size))
            .collect();
        self.resume_probe = plan::resume::partial_files_script(&self.paths, &sizes);
        self.resume_probe
            .push_str(&plan::prefix::prefix_script(&self.paths, &sizes));
        self
    }

    /// The probe's script: the remote state, and what the binaries need.
    fn probe_script(&self, dests: &[String], units: &[String], lock: plan::ProbeLock) -> String {
        let state = plan::remote_state_script(&self.paths, dests, units, lock);
        format!("{}{}{state}", self.binaries_probe, self.resume_probe)
    }

    // -----------------------------------------------------------------------------------------
    // Reporting helpers.

    pub fn phase(&self, phase: &'static str, message: impl Into<String>) {
        let message = message.into();
        self.reporter.emit(&PhaseEvent {
            kind: "phase",
            host: self.host.name.clone(),
            service: self.service.name.clone(),
            phase,
            message: message.clone(),
            bytes: None,
            seconds: None,
            sent_bytes: None,
            resumed_bytes: None,
        });
        self.reporter.progress(
            Some(&self.host.name),
            &format!("{}: {message}", self.service.name),
        );
    }

    /// Say that a step of the plan is being executed now.
    pub fn step(&self, index: usize, step: &Step) {
        self.reporter.emit(&StepEvent {
            kind: "step",
            host: self.host.name.clone(),
            service: self.service.name.clone(),
            index,
            step: step.clone(),
        });
    }

    pub fn warn(&self, message: &str) {
        self.reporter.warn(Some(&self.host.name), message);
    }

    pub fn result(
        &self,
        result: HostOutcome,
        release: Option<&str>,
        previous: Option<&str>,
        reason: Option<String>,
        code: Exit,
    ) -> HostResult {
        let (c, s, r) = self.conn.counters.snapshot();
        let (c0, s0, r0) = self.counted_from;
        HostResult {
            remote: Some(RemoteOps {
                commands: c - c0,
                sftp_sessions: s - s0,
                sftp_requests: r - r0,
            }),
            ..HostResult::new(
                &self.host.name,
                &self.service.name,
                result,
                release,
                previous,
                reason,
                code,
            )
        }
    }

    // -----------------------------------------------------------------------------------------
    // Reading the host.

    /// `units` and, for blue/green, both colours' instances: which one runs, which brings a
    /// release back.
    fn with_colours(&self, units: &[String]) -> Vec<String> {
        let mut units = units.to_vec();
        if self.service.switch.is_some() {
            units.extend(Colour::BOTH.map(|c| systemd::switch::instance(&self.service.name, c)));
        }
        units
    }

    /// The remote state (one round trip); `lock` says whether this session holds the
    /// service's lock (see [`plan::ProbeLock`]).
    pub async fn probe(&self, dests: &[String], lock: plan::ProbeLock) -> Result<RemoteState> {
        self.probe_units(dests, &[], lock).await
    }

    /// [`ServiceSession::probe`], also reading the ActiveState of `units` (for a deploy: is
    /// the release already current and up?).
    pub async fn probe_units(
        &self,
        dests: &[String],
        units: &[String],
        lock: plan::ProbeLock,
    ) -> Result<RemoteState> {
        let units = self.with_colours(units);
        let out = self
            .conn
            .run(&self.probe_script(dests, &units, lock))
            .await?;
        Ok(self.read_state(&out))
    }

    /// The remote state from the probe's output; says what the probe found of an earlier
    /// rollback that was cut off.
    fn read_state(&self, out: &str) -> RemoteState {
        let mut st = plan::parse_remote_state(out);
        st.set_clock_offset(crate::fault::now());
        *self.clock_offset.lock().unwrap() = st.clock_offset;
        if let Some(r) = &st.interrupted_rollback {
            self.warn(&format!(
                "an earlier `ferry rollback` to {r} was cut off before it recorded how it ended; recorded now in the history as `rollback interrupted` (`ferry releases {}` shows it)",
                self.service.name
            ));
        }
        st
    }

    /// Every release directory with its manifest (None when unreadable) and size in KiB.
    pub async fn manifests(&self) -> Result<(release::Manifests, Vec<(String, u64)>)> {
        let out = self
            .conn
            .run(&release::manifests_script(&self.paths))
            .await?;
        Ok(release::parse_manifests(&out))
    }

    /// The manifest of release `id`: the current one from the probe, others read from the host.
    pub async fn manifest_of(&self, id: &str, remote: &RemoteState) -> Result<Manifest> {
        if let Some(m) = remote.current_manifest().filter(|m| m.id == id) {
            return Ok(m.clone());
        }
        let (manifests, _) = self.manifests().await?;
        manifests
            .into_iter()
            .find(|(i, _)| i == id)
            .and_then(|(_, m)| m)
            .ok_or_else(|| Error::Refused {
                host: self.host.name.clone(),
                message: format!("release {id} has no readable manifest on the host"),
                code: Exit::Failed,
            })
    }

    // -----------------------------------------------------------------------------------------
    // Lock.

    /// Take the service's lock; refused (exit 5) when another deploy or rollback holds it.
    pub async fn lock(&self, wait: Option<Duration>, action: &str, by: &str) -> Result<RemoteLock> {
        self.lock_then(wait, action, by, None).await
    }

    async fn lock_then(
        &self,
        wait: Option<Duration>,
        action: &str,
        by: &str,
        then: Option<&str>,
    ) -> Result<RemoteLock> {
        let holder = format!("{by} ({action}, since {})", release::now_rfc3339());
        lock::acquire(
            self.conn,
            &self.paths,
            wait,
            &holder,
            |m| self.phase("lock", m.to_string()),
            then,
        )
        .await
    }

    /// Take the service's lock (see [`ServiceSession::lock`]) and read the host under it
    /// ([`ServiceSession::probe_units`]) in the same command: the lock's holder runs the probe
    /// once it has the lock.
    pub async fn lock_and_probe(
        &self,
        wait: Option<Duration>,
        action: &str,
        by: &str,
        dests: &[String],
        units: &[String],
    ) -> Result<(RemoteLock, RemoteState)> {
        let units = self.with_colours(units);
        let script = self.probe_script(dests, &units, plan::ProbeLock::Held);
        let mut lock = self.lock_then(wait, action, by, Some(&script)).await?;
        let then = lock.then.take().expect("the probe ran under the lock");
        if then.status != 0 {
            let e = Error::Command {
                host: self.host.name.clone(),
                command: "reading the host's releases under the lock".into(),
                status: format!("exit status {}", then.status),
                stderr: then.stderr,
            };
            lock.release().await;
            return Err(e);
        }
        let st = self.read_state(&then.stdout);
        Ok((lock, st))
    }

    /// An SFTP session on this connection.
    pub async fn sftp(&self) -> Result<Sftp> {
        Sftp::open(self.conn).await
    }

    // -----------------------------------------------------------------------------------------
    // Going live.

    /// A command printing the host's time now (to show the journal from here on), and the
    /// units' invocation ids (to tell a restarted unit), then [`BEFORE_END`]: the start of the
    /// activation's command.
    fn before_command(units: &[String]) -> String {
        let mut cmd = "echo \"since=@$(date +%s.%N)\"\n".to_string();
        if !units.is_empty() {
            cmd.push_str(&systemd::systemctl(
                &[
                    vec!["show".to_string()],
                    units.to_vec(),
                    vec!["--property=Id,InvocationID".to_string()],
                ]
                .concat(),
            ));
            cmd.push('\n');
        }
        cmd.push_str(&format!("echo {BEFORE_END}\n"));
        cmd
    }

    /// A command waiting (at most about a second, polling on the host) until the units have no
    /// job queued or running, then printing [`STATES`] and their states: what the
    /// verification looks at first.
    fn states_command(units: &[String]) -> String {
        if units.is_empty() {
            return String::new();
        }
        let list: Vec<String> = units.iter().map(|u| quote(u)).collect();
        format!(
            "i=0; while [ $i -lt 50 ] && [ -n \"$(systemctl --user list-jobs --no-legend -- {} 2>/dev/null)\" ]; do sleep 0.02; i=$((i+1)); done\necho {STATES}\n{} || true\n",
            list.join(" "),
            systemd::show_command(units)
        )
    }

    /// What the activation's command printed: [`ServiceSession::before_command`]'s reads,
    /// the activation's own lines, then [`ServiceSession::states_command`]'s.
    fn parse_activation(out: &str) -> Before {
        Before {
            states: out
                .split_once(&format!("\n{STATES}\n"))
                .map(|(_, states)| states.to_string()),
            ..Self::parse_before(out)
        }
    }

    /// What [`ServiceSession::before_command`] printed.
    fn parse_before(out: &str) -> Before {
        let out = out.split(BEFORE_END).next().unwrap_or_default();
        // A time, not a journal cursor: the lines a service writes to stdout can be stored
        // after systemd's own lines yet sort before them, and --after-cursor would miss them.
        let since = out
            .lines()
            .find_map(|l| l.strip_prefix("since="))
            .map(|c| c.trim().to_string());
        let invocations = systemd::parse_show(out)
            .into_iter()
            .filter(|s| !s.id.is_empty())
            .map(|s| (s.id, s.invocation_id))
            .collect();
        Before {
            since,
            invocations,
            states: None,
        }
    }

    /// Run the activation script. Err(failure) when it ran and failed; a lost connection is an
    /// error saying what the host will do by itself.
    pub async fn activate(
        &self,
        activation: &Activation,
        armed: bool,
    ) -> Result<std::result::Result<Before, LiveFailure>> {
        let verify_units = activation.verify_units();
        // The host's clock and the units' invocations are read by the same command, just
        // before it switches.
        let script = format!(
            "{}{}{}",
            Self::before_command(&activation.restarted_units()),
            activation.script(&self.paths),
            Self::states_command(&verify_units)
        );
        let out = match self.conn.exec(&script).await {
            Ok(out) => out,
            Err(_) if self.conn.is_closed() => {
                // Nothing more can be done from here. A deploy says what the host does by
                // itself (see `Plan::state_if_lost`); without a self-revert, say it here.
                let then = if armed {
                    String::new()
                } else {
                    "; no self-revert was armed: check the host with `ferry status` and deploy or roll back again".to_string()
                };
                return Err(Error::ConnectionLost {
                    host: self.host.name.clone(),
                    during: format!("switching to {}{then}", activation.release),
                });
            }
            Err(e) => return Err(e),
        };
        let before = Self::parse_activation(&out.stdout_str());
        if !out.success() {
            return Ok(Err(LiveFailure {
                reason: format!(
                    "activation failed ({}): {}",
                    out.status_text(),
                    out.stderr_str().trim()
                ),
                since: before.since,
                units: verify_units,
            }));
        }
        Ok(Ok(before))
    }

    /// Wait until every unit is up and has stayed up for `settle`, or one failed, or `timeout`
    /// passed; report the units' states. Some(reason) on failure.
    pub async fn verify(
        &self,
        units: &[String],
        before: &Before,
        timeout: Duration,
        settle: Duration,
    ) -> Result<Option<String>> {
        self.phase(
            "verify",
            format!("waiting for {} to come up", units.join(", ")),
        );
        let (verdicts, failure) = self.poll_units(units, before, timeout, settle).await?;
        self.report_units(&verdicts);
        Ok(failure)
    }

    async fn poll_units(
        &self,
        units: &[String],
        before: &Before,
        timeout: Duration,
        settle: Duration,
    ) -> Result<(Vec<(String, Verdict)>, Option<String>)> {
        let start = Instant::now();
        let mut settled_since: Option<Instant> = None;
        let mut invocations: BTreeMap<String, String> = BTreeMap::new();
        // Services triggered by sockets may be idle: ask for their sockets too.
        let mut query: Vec<String> = units.to_vec();
        // The first look was taken by the activation's command, when there was one.
        let mut seed = before.states.clone();
        loop {
            let out = match seed.take() {
                Some(states) => states,
                None => self.conn.run(&systemd::show_command(&query)).await?,
            };
            let states = systemd::parse_show(&out);
            {
                let mut pids = self.pids.lock().unwrap();
                for st in states.iter().filter(|st| units.contains(&st.id)) {
                    if st.main_pid != 0 && !pids.contains(&st.main_pid) {
                        pids.push(st.main_pid);
                    }
                }
            }
            let (verdicts, extra) = poll::judge(
                units,
                &states,
                &query,
                &before.invocations,
                &mut invocations,
            );
            if !extra.is_empty() {
                query.extend(extra);
                continue;
            }
            if let Some(reason) = poll::failed(&verdicts) {
                return Ok((verdicts, Some(reason)));
            }
            let all_up = verdicts.iter().all(|(_, v)| matches!(v, Verdict::Up(_)));
            if all_up {
                let since = *settled_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= settle {
                    return Ok((verdicts, None));
                }
            } else {
                settled_since = None;
            }
            // Units that are up get their settle time even past start_timeout.
            if !all_up && start.elapsed() > timeout {
                let reason = poll::not_up(&verdicts, timeout);
                return Ok((verdicts, Some(reason)));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    fn report_units(&self, verdicts: &[(String, Verdict)]) {
        for (u, v) in verdicts {
            let (up, state, detail) = match v {
                Verdict::Up(d) => (true, "up", d.clone()),
                Verdict::Pending(d) => (false, "pending", d.clone()),
                Verdict::Failed(d) => (false, "failed", d.clone()),
            };
            self.reporter.emit(&UnitEvent {
                kind: "unit",
                host: self.host.name.clone(),
                service: self.service.name.clone(),
                unit: u.clone(),
                ok: up,
                up,
                state: state.into(),
                detail,
            });
        }
    }

    /// Run the health checks `checks`. Some(reason) when they fail.
    pub async fn health(&self, checks: &Health) -> Option<String> {
        self.phase("health", "running health checks");
        match health::run(self.conn, checks, &self.paths).await {
            Ok(_) => {
                self.phase("health", "healthy");
                None
            }
            Err(reason) => Some(format!("health check failed: {reason}")),
        }
    }

    /// Make the release described by `to` live again (its files are on the host), coming from
    /// `from`, and judge it by the checks it was deployed with. Used by an automatic rollback
    /// and by `ferry rollback`.
    /// A blue/green `to` comes back on colour `back` (see `RemoteState::back_colour`).
    pub async fn restore(
        &self,
        to: &Manifest,
        from: Option<&Manifest>,
        back: Option<Colour>,
    ) -> Result<std::result::Result<(), LiveFailure>> {
        let activation = Activation::back_to(to, from, back);
        let before = match self.activate(&activation, false).await? {
            Ok(b) => b,
            Err(f) => return Ok(Err(f)),
        };
        crate::fault::point("restored");
        let units = activation.verify_units();
        let judge = release::judging(to, self.service);
        if !units.is_empty()
            && let Some(reason) = self
                .verify(&units, &before, judge.start_timeout, judge.settle_time)
                .await?
        {
            return Ok(Err(LiveFailure {
                reason,
                since: before.since,
                units,
            }));
        }
        if let Some(h) = &judge.health
            && let Some(reason) = self.health(h).await
        {
            return Ok(Err(LiveFailure {
                reason,
                since: before.since,
                units,
            }));
        }
        Ok(Ok(()))
    }

    // -----------------------------------------------------------------------------------------
    // After the fact.

    /// Show the units' journal lines written since `since` (the failure's own lines).
    pub async fn show_journal(&self, since: Option<&str>, units: &[String]) {
        let pids: Vec<u32> = self.pids.lock().unwrap().clone();
        let cmd = crate::systemd::journal::failure_query_command(units, &pids, since, 200);
        let mut entries = Vec::new();
        // The process's own lines can reach the journal after systemd's, and a busy journald
        // can be seconds behind: wait up to 5 s for them (only a silent crash waits it all).
        const ATTEMPTS: u32 = 20;
        for attempt in 0..ATTEMPTS {
            match self.conn.exec(&cmd).await {
                Ok(out) => {
                    entries = crate::systemd::journal::parse_failure_output(&out.stdout);
                    if entries.iter().any(|e| !e.from_manager) {
                        break;
                    }
                }
                Err(e) => {
                    self.warn(&format!("cannot read the journal: {e}"));
                    return;
                }
            }
            if attempt + 1 == ATTEMPTS {
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        if entries.is_empty() {
            self.warn(
                "the journal has no lines from these units (is the journal persistent and readable? see `ferry doctor`)",
            );
        }
        let events: Vec<JournalEvent> = entries
            .iter()
            .map(|e| {
                let mut event = JournalEvent::new(&self.host.name, &self.service.name, e);
                if let Some(env) = &self.env {
                    event.line = env.mask(&event.line);
                }
                event
            })
            .collect();
        for event in crate::report::deploy::cap_excerpt(events, &self.service.name) {
            self.reporter.emit(&event);
        }
    }
}

impl ServiceSession<'_> {
    /// `--dry-run`: show how each changed unit, as rendered for this host, differs from the one
    /// installed there (one round trip to read them).
    pub async fn show_unit_diffs(&self, plan: &Plan, local: &LocalRelease) -> Result<()> {
        let ss = self;
        let changed: Vec<&crate::plan::LocalUnit> = local
            .units
            .iter()
            .filter(|u| {
                plan.units
                    .iter()
                    .any(|p| p.name == u.name && p.change == crate::plan::Change::Changed)
            })
            .collect();
        if changed.is_empty() {
            return Ok(());
        }
        let mut cmd = String::from("cd \"$HOME\" || exit 1\n");
        for u in &changed {
            cmd.push_str(&format!(
                "echo {m}; cat {} 2>/dev/null\n",
                crate::shell::quote(&Paths::new(&ss.service.name).unit(&u.name)),
                m = crate::shell::quote(&format!("--ferry-unit-- {}", u.name)),
            ));
        }
        let out = ss.conn.run(&cmd).await?;
        let mut installed: std::collections::BTreeMap<String, String> = Default::default();
        let mut current: Option<String> = None;
        for line in out.split_inclusive('\n') {
            if let Some(name) = line.strip_prefix("--ferry-unit-- ") {
                current = Some(name.trim_end().to_string());
                installed.insert(name.trim_end().to_string(), String::new());
            } else if let Some(c) = &current {
                installed.get_mut(c).expect("inserted").push_str(line);
            }
        }
        for u in changed {
            let old = installed.get(&u.name).cloned().unwrap_or_default();
            ss.reporter.emit(&crate::report::diff::UnitDiffEvent {
                kind: "unit-diff",
                host: ss.host.name.clone(),
                service: ss.service.name.clone(),
                unit: u.name.clone(),
                diff: crate::prepare::template::diff(&old, &String::from_utf8_lossy(&u.content)),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
