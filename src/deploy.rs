//! `ferry deploy` (and `ferry rollback`): runs a plan on each host, hosts in parallel.
//!
//! On one host, for one service: lock, read the remote state, plan, upload into a staging
//! directory (renamed into `releases/ID` when complete), arm the self-revert timer, activate
//! (units, `current`, daemon-reload, enable, restart), verify the units, run the health checks,
//! then confirm (disarm, history, prune) or roll back. Until activation nothing the running
//! service uses is touched, so an interrupted deploy leaves the previous release serving.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

use crate::config::{Config, Host, Service};
use crate::error::{Error, Result, exit};
use crate::health;
use crate::lock;
use crate::plan::{self, Activation, LocalFile, LocalRelease, LocalUnit, Origin, Plan, Transfer};
use crate::release::{self, HistoryRecord, Manifest, Paths};
use crate::report::{Human, Reporter, Style, sanitize};
use crate::sftp::Sftp;
use crate::shell::quote;
use crate::ssh::{self, Connection};
use crate::systemd::{self, Verdict};

/// How often unit states are polled.
const POLL: Duration = Duration::from_millis(250);

#[derive(Debug, Clone)]
pub struct Options {
    pub dry_run: bool,
    pub no_rollback: bool,
    pub lock_wait: Option<Duration>,
    pub parallel: usize,
}

// ---------------------------------------------------------------------------------------------
// Events (data on stdout).

/// The result for one service on one host.
#[derive(Debug, Clone, Serialize)]
pub struct HostResult {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub host: String,
    pub service: String,
    /// ok, planned, failed, rolled-back, rollback-failed, locked, unreachable
    pub result: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip)]
    pub code: i32,
}

impl Human for HostResult {
    fn human(&self, s: &Style) -> Option<String> {
        let verdict = match self.result.as_str() {
            "ok" => s.green("ok"),
            "planned" => s.bold("planned (dry run)"),
            "rolled-back" => s.yellow("ROLLED BACK"),
            _ => s.red(&self.result.to_uppercase()),
        };
        let mut line = format!("{} {} {verdict}", s.bold(&self.host), self.service);
        if let Some(r) = &self.release {
            line.push_str(&format!(" release {r}"));
        }
        if let Some(reason) = &self.reason {
            line.push_str(&format!(": {}", sanitize(reason)));
        }
        Some(line)
    }
}

/// A unit's state after a deploy.
#[derive(Debug, Clone, Serialize)]
pub struct UnitEvent {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub host: String,
    pub service: String,
    pub unit: String,
    pub up: bool,
    pub state: String,
    pub detail: String,
}

impl Human for UnitEvent {
    fn human(&self, s: &Style) -> Option<String> {
        let mark = if self.up {
            s.green("up  ")
        } else {
            s.red("DOWN")
        };
        Some(format!(
            "{} {mark} {:<28} {}",
            s.bold(&self.host),
            self.unit,
            sanitize(&self.detail)
        ))
    }
}

/// A journal line of a failed unit (from this deploy only).
#[derive(Debug, Clone, Serialize)]
pub struct JournalEvent {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub host: String,
    pub service: String,
    pub line: String,
}

impl Human for JournalEvent {
    fn human(&self, s: &Style) -> Option<String> {
        Some(format!(
            "{} {} {}",
            s.bold(&self.host),
            s.dim("|"),
            self.line
        ))
    }
}

/// Progress of a phase (JSON only; people see it on stderr).
#[derive(Debug, Clone, Serialize)]
pub struct PhaseEvent {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub host: String,
    pub service: String,
    pub phase: &'static str,
    pub message: String,
    /// Bytes sent, for the `uploaded` phase.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// Duration of the phase in seconds, for the `uploaded` phase.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seconds: Option<f64>,
}

impl Human for PhaseEvent {
    fn human(&self, _: &Style) -> Option<String> {
        None
    }
}

/// What `--dry-run` shows.
#[derive(Debug, Clone, Serialize)]
pub struct PlanEvent {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub host: String,
    #[serde(flatten)]
    pub plan: Plan,
}

impl Human for PlanEvent {
    fn human(&self, s: &Style) -> Option<String> {
        let h = s.bold(&self.host);
        let p = &self.plan;
        let mut out = vec![format!(
            "{h} {}: would deploy release {} (current: {})",
            p.service,
            p.release,
            p.previous.as_deref().unwrap_or("none")
        )];
        for f in &p.files {
            let what = match (f.change, f.transfer) {
                (plan::Change::New, _) => "new      upload",
                (plan::Change::Changed, _) => "changed  upload",
                (_, Transfer::Reuse) => "same     reuse ",
                _ => "         upload",
            };
            out.push(format!(
                "{h}   file {what} {} ({} bytes, mode {:o})",
                f.dest, f.size, f.mode
            ));
        }
        for u in &p.units {
            let change = format!("{:?}", u.change).to_lowercase();
            out.push(format!("{h}   unit {change:<9} {}", u.name));
        }
        if !p.enable.is_empty() {
            out.push(format!("{h}   enable  {}", p.enable.join(" ")));
        }
        if !p.stop_first.is_empty() {
            out.push(format!("{h}   stop    {}", p.stop_first.join(" ")));
        }
        if !p.restart.is_empty() {
            out.push(format!("{h}   restart {}", p.restart.join(" ")));
        }
        if !p.start.is_empty() {
            out.push(format!("{h}   start   {}", p.start.join(" ")));
        }
        out.push(format!("{h}   upload  {} bytes", p.upload_bytes()));
        Some(out.join("\n"))
    }
}

/// Final summary.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub ok: usize,
    pub failed: usize,
    pub exit_code: i32,
    pub dry_run: bool,
}

impl Human for Summary {
    fn human(&self, s: &Style) -> Option<String> {
        Some(if self.dry_run && self.failed == 0 {
            format!("dry run: {} plan(s), nothing was changed", self.ok)
        } else if self.failed == 0 {
            s.green(&format!("deployed: {} ok", self.ok))
        } else {
            s.red(&format!(
                "{} ok, {} not ok (exit {})",
                self.ok, self.failed, self.exit_code
            ))
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Local preparation.

/// Hash a file by streaming it (memory stays bounded).
async fn sha256_file(path: &std::path::Path) -> std::io::Result<(u64, String)> {
    let mut f = tokio::fs::File::open(path).await?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        size += n as u64;
        h.update(&buf[..n]);
    }
    Ok((size, plan::hex(&h.finalize())))
}

/// Read and hash the local side of a release.
pub async fn prepare(service: &Service) -> Result<LocalRelease> {
    let mut files = Vec::new();
    for f in &service.files {
        let (size, sha256) = sha256_file(&f.source).await.map_err(|e| {
            Error::Usage(format!(
                "service {}: cannot read {}: {e}",
                service.name,
                f.source.display()
            ))
        })?;
        files.push(LocalFile {
            source: f.source.clone(),
            dest: f.dest.clone(),
            mode: f.mode,
            size,
            sha256,
        });
    }
    let mut units = Vec::new();
    for u in &service.units {
        let content = tokio::fs::read(&u.source).await.map_err(|e| {
            Error::Usage(format!(
                "service {}: cannot read unit file {}: {e}",
                service.name,
                u.source.display()
            ))
        })?;
        if std::str::from_utf8(&content).is_err() {
            return Err(Error::Usage(format!(
                "service {}: unit file {} is not UTF-8 text",
                service.name,
                u.source.display()
            )));
        }
        let sha256 = plan::hex(&Sha256::digest(&content));
        units.push(LocalUnit {
            name: u.name.clone(),
            content,
            sha256,
        });
    }
    Ok(LocalRelease { files, units })
}

/// `user@hostname` and the git commit of the config's directory.
pub fn origin(config: &Config) -> Origin {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .filter(|u| !u.is_empty())
        .or_else(|| {
            std::process::Command::new("id")
                .arg("-un")
                .output()
                .ok()
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
                .filter(|u| !u.is_empty())
        })
        .unwrap_or_else(|| "unknown".into());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into());
    let dir = config
        .path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .current_dir(dir)
            .stderr(std::process::Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let git_commit = git(&["rev-parse", "--short=12", "HEAD"]).map(|c| {
        match git(&["status", "--porcelain", "--untracked-files=no"]) {
            Some(s) if !s.is_empty() => format!("{c}-dirty"),
            _ => c,
        }
    });
    Origin {
        by: format!("{user}@{host}"),
        git_commit,
        created: release::now_rfc3339(),
    }
}

// ---------------------------------------------------------------------------------------------
// One service on one host.

/// Context of a deploy of one service on one host.
pub struct Job<'a> {
    pub conn: &'a Connection,
    pub host: &'a Host,
    pub service: &'a Service,
    pub reporter: &'a Reporter,
    pub paths: Paths,
    /// Main PIDs of the verified units, last seen: their output is found by PID in the
    /// journal when journald could not tell its unit (a process that exited at once).
    pub pids: std::sync::Mutex<Vec<u32>>,
}

impl<'a> Job<'a> {
    pub fn new(
        conn: &'a Connection,
        host: &'a Host,
        service: &'a Service,
        reporter: &'a Reporter,
    ) -> Job<'a> {
        Job {
            conn,
            host,
            service,
            reporter,
            paths: Paths::new(&service.name),
            pids: Default::default(),
        }
    }

    fn phase(&self, phase: &'static str, message: impl Into<String>) {
        let message = message.into();
        self.reporter.emit(&PhaseEvent {
            kind: "phase",
            host: self.host.name.clone(),
            service: self.service.name.clone(),
            phase,
            message: message.clone(),
            bytes: None,
            seconds: None,
        });
        self.reporter.progress(
            Some(&self.host.name),
            &format!("{}: {message}", self.service.name),
        );
    }

    fn result(
        &self,
        result: &str,
        release: Option<&str>,
        previous: Option<&str>,
        reason: Option<String>,
        code: i32,
    ) -> HostResult {
        HostResult {
            kind: "result",
            host: self.host.name.clone(),
            service: self.service.name.clone(),
            result: result.to_string(),
            release: release.map(String::from),
            previous: previous.map(String::from),
            reason,
            code,
        }
    }

    pub async fn remote_state(&self, dests: &[String]) -> Result<plan::RemoteState> {
        let out = self
            .conn
            .run(&plan::remote_state_script(&self.paths, dests))
            .await?;
        Ok(plan::parse_remote_state(&out))
    }

    /// Upload the release into a staging directory, then rename it into `releases/ID`.
    async fn upload(&self, plan: &Plan, local: &LocalRelease) -> Result<()> {
        let staging = self.paths.staging(&plan.release);
        let meta = format!("{staging}/{}", release::META_DIR);
        let sftp = Sftp::new(&self.host.name, self.conn.sftp().await?);
        sftp.mkdir_all(&format!("{meta}/units")).await?;
        // Directories of the files.
        let mut dirs: Vec<String> = plan
            .files
            .iter()
            .filter_map(|f| {
                f.dest
                    .rsplit_once('/')
                    .map(|(d, _)| format!("{staging}/{d}"))
            })
            .collect();
        dirs.sort();
        dirs.dedup();
        for d in &dirs {
            sftp.mkdir_all(d).await?;
        }
        // Files identical to the current release's are copied on the host, not sent.
        let reuse: Vec<_> = plan
            .files
            .iter()
            .filter(|f| f.transfer == Transfer::Reuse)
            .collect();
        if !reuse.is_empty() {
            let mut script = format!(
                "set -e\ncd \"$HOME\"\nC={}\nN={}\n",
                quote(&self.paths.current()),
                quote(&staging)
            );
            for f in &reuse {
                let d = quote(&f.dest);
                script.push_str(&format!(
                    "cp --reflink=auto \"$C/\"{d} \"$N/\"{d}\nchmod {:o} \"$N/\"{d}\n",
                    f.mode
                ));
            }
            self.conn.run(&script).await?;
        }
        let total = plan.upload_bytes();
        let uploads: Vec<_> = plan
            .files
            .iter()
            .filter(|f| f.transfer == Transfer::Upload)
            .collect();
        if !uploads.is_empty() {
            self.phase(
                "upload",
                format!(
                    "uploading {} file(s), {} ({} reused)",
                    uploads.len(),
                    human_bytes(total),
                    reuse.len()
                ),
            );
        }
        let bar = self.reporter.bytes_bar(&self.host.name, total);
        let started = Instant::now();
        let count = uploads.len();
        for f in uploads {
            bar.set_message(f.dest.clone());
            sftp.upload(&f.source, &format!("{staging}/{}", f.dest), f.mode, |n| {
                bar.inc(n)
            })
            .await?;
        }
        bar.finish_and_clear();
        if count > 0 {
            let secs = started.elapsed().as_secs_f64();
            let message = format!(
                "uploaded {} in {secs:.2}s ({}/s)",
                human_bytes(total),
                human_bytes((total as f64 / secs.max(1e-6)) as u64)
            );
            self.reporter.emit(&PhaseEvent {
                kind: "phase",
                host: self.host.name.clone(),
                service: self.service.name.clone(),
                phase: "uploaded",
                message: message.clone(),
                bytes: Some(total),
                seconds: Some(secs),
            });
            self.reporter.progress(
                Some(&self.host.name),
                &format!("{}: {message}", self.service.name),
            );
        }
        for u in &local.units {
            sftp.write(&format!("{meta}/units/{}", u.name), &u.content, 0o644)
                .await?;
        }
        let manifest = serde_json::to_vec(&plan.manifest).expect("manifest serialises");
        sftp.write(&format!("{meta}/manifest.json"), &manifest, 0o600)
            .await?;
        sftp.rename(&staging, &self.paths.release(&plan.release))
            .await?;
        sftp.close().await;
        Ok(())
    }

    /// The host's time now (to show the journal from here on), and the units' invocation ids
    /// (to tell a restarted unit).
    async fn before_restart(
        &self,
        units: &[String],
    ) -> Result<(Option<String>, BTreeMap<String, String>)> {
        let mut cmd = "echo \"since=@$(date +%s.%N)\"; ".to_string();
        if !units.is_empty() {
            cmd.push_str(&systemd::systemctl(
                &[
                    vec!["show".to_string()],
                    units.to_vec(),
                    vec!["--property=Id,InvocationID".to_string()],
                ]
                .concat(),
            ));
        }
        let out = self.conn.exec(&cmd).await?.stdout_str();
        // A time, not a journal cursor: the lines a service writes to stdout can be stored
        // after systemd's own lines yet sort before them, and --after-cursor would miss them.
        let since = out
            .lines()
            .find_map(|l| l.strip_prefix("since="))
            .map(|c| c.trim().to_string());
        let ids = systemd::parse_show(&out)
            .into_iter()
            .filter(|s| !s.id.is_empty())
            .map(|s| (s.id, s.invocation_id))
            .collect();
        Ok((since, ids))
    }

    /// Wait until every unit is up and has stayed up for the settle time, or one failed, or
    /// the timeout passed. Returns the last states and, on failure, the reason.
    async fn verify(
        &self,
        units: &[String],
        before: &BTreeMap<String, String>,
        timeout: Duration,
    ) -> Result<(Vec<(String, Verdict)>, Option<String>)> {
        let start = Instant::now();
        let mut settled_since: Option<Instant> = None;
        let mut invocations: BTreeMap<String, String> = BTreeMap::new();
        // Services triggered by sockets may be idle: ask for their sockets too.
        let mut query: Vec<String> = units.to_vec();
        loop {
            let out = self.conn.run(&systemd::show_command(&query)).await?;
            let states = systemd::parse_show(&out);
            {
                let mut pids = self.pids.lock().unwrap();
                for st in states.iter().filter(|st| units.contains(&st.id)) {
                    if st.main_pid != 0 && !pids.contains(&st.main_pid) {
                        pids.push(st.main_pid);
                    }
                }
            }
            let by_id: BTreeMap<&str, &systemd::UnitState> =
                states.iter().map(|s| (s.id.as_str(), s)).collect();
            let mut extra = Vec::new();
            let mut verdicts = Vec::new();
            for u in units {
                let Some(st) = by_id.get(u.as_str()) else {
                    verdicts.push((u.clone(), Verdict::Pending("no state yet".into())));
                    continue;
                };
                for t in &st.triggered_by {
                    if !query.contains(t) {
                        extra.push(t.clone());
                    }
                }
                let listening = st
                    .triggered_by
                    .iter()
                    .any(|t| by_id.get(t.as_str()).is_some_and(|s| s.is_listening()));
                let mut v = systemd::assess(st, before.get(u).map(String::as_str), listening);
                // Active and up, but another invocation than when first seen active: it
                // restarted behind our back (a crash loop with a long RestartSec).
                if matches!(v, Verdict::Up(_)) && st.is_active() && !st.invocation_id.is_empty() {
                    match invocations.get(u) {
                        Some(prev) if *prev != st.invocation_id => {
                            v = Verdict::Failed(
                                "restarted while being verified (crash loop?)".into(),
                            );
                        }
                        _ => {
                            invocations.insert(u.clone(), st.invocation_id.clone());
                        }
                    }
                }
                verdicts.push((u.clone(), v));
            }
            if !extra.is_empty() {
                query.extend(extra);
                continue;
            }
            if let Some((u, Verdict::Failed(why))) = verdicts
                .iter()
                .find(|(_, v)| matches!(v, Verdict::Failed(_)))
            {
                let reason = format!("{u}: {why}");
                return Ok((verdicts, Some(reason)));
            }
            let all_up = verdicts.iter().all(|(_, v)| matches!(v, Verdict::Up(_)));
            if all_up {
                let since = *settled_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= self.service.settle_time {
                    return Ok((verdicts, None));
                }
            } else {
                settled_since = None;
            }
            // Units that are up get their settle time even past start_timeout.
            if !all_up && start.elapsed() > timeout {
                let pending: Vec<String> = verdicts
                    .iter()
                    .filter_map(|(u, v)| match v {
                        Verdict::Pending(w) => Some(format!("{u}: {w}")),
                        _ => None,
                    })
                    .collect();
                let reason = format!(
                    "not up within start_timeout ({}): {}",
                    humantime::format_duration(timeout),
                    pending.join("; ")
                );
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
                up,
                state: state.into(),
                detail,
            });
        }
    }

    /// Print the units' journal lines written since `since`.
    async fn show_journal(&self, since: Option<&str>, units: &[String]) {
        let mut args: Vec<String> = vec![
            "journalctl".into(),
            "--user".into(),
            "--no-pager".into(),
            "-q".into(),
            "-o".into(),
            "short-iso-precise".into(),
            "-n".into(),
            "200".into(),
        ];
        match since {
            Some(since) => args.push(format!("--since={since}")),
            None => args.push("--since=-5min".into()),
        }
        for u in units {
            args.push(format!("--user-unit={u}"));
        }
        let by_unit = crate::shell::command(&args);
        // Lines journald could not attribute to the unit (its process had exited) are found
        // by the process's PID.
        let pids: Vec<u32> = self.pids.lock().unwrap().clone();
        let cmd = if pids.is_empty() {
            by_unit
        } else {
            let mut by_pid: Vec<String> = args[..args.len() - units.len()].to_vec();
            by_pid.extend(pids.iter().map(|p| format!("_PID={p}")));
            format!(
                "{by_unit}; echo {JOURNAL_SPLIT}; {}",
                crate::shell::command(&by_pid)
            )
        };
        let mut lines = Vec::new();
        for attempt in 0..8 {
            match self.conn.exec(&cmd).await {
                Ok(out) => lines = journal_lines(&out.stdout),
                Err(e) => {
                    self.reporter.warn(
                        Some(&self.host.name),
                        &format!("cannot read the journal: {e}"),
                    );
                    return;
                }
            }
            if has_process_output(&lines) || attempt == 7 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        if lines.is_empty() {
            self.reporter.warn(
                Some(&self.host.name),
                "the journal has no lines from these units (is the journal persistent and readable? see `ferry doctor`)",
            );
        }
        for line in lines {
            self.reporter.emit(&JournalEvent {
                kind: "journal",
                host: self.host.name.clone(),
                service: self.service.name.clone(),
                line,
            });
        }
    }

    async fn append_history(&self, record: &HistoryRecord) {
        let line = serde_json::to_string(record).expect("history serialises");
        let cmd = format!(
            "cd \"$HOME\" && printf '%s\\n' {} >> {}",
            quote(&line),
            quote(&self.paths.history())
        );
        if let Err(e) = self.conn.run(&cmd).await {
            self.reporter.warn(
                Some(&self.host.name),
                &format!("cannot record the history: {e}"),
            );
        }
    }

    fn revert_unit(&self) -> String {
        self.paths.revert_unit()
    }

    /// Stop a pending self-revert (an explicit rollback takes over from it).
    pub async fn cancel_pending_revert(&self) -> Result<()> {
        let unit = quote(&self.revert_unit());
        self.conn
            .run(&format!(
                "systemctl --user stop {unit}.timer {unit}.service >/dev/null 2>&1; true"
            ))
            .await
            .map(|_| ())
    }

    /// Arm a transient timer that reverts to `previous` unless disarmed in time.
    async fn arm_revert(&self, new: &Manifest, previous: &Manifest, by: &str) -> Result<()> {
        let activation = Activation::back_to(previous, Some(new));
        let record = HistoryRecord {
            time: "__TIME__".into(),
            action: "revert".into(),
            release: previous.id.clone(),
            previous: Some(new.id.clone()),
            outcome: "reverted".into(),
            by: by.to_string(),
            git_commit: previous.git_commit.clone(),
            reason: Some(format!(
                "deploy of {} was not confirmed within confirm_timeout ({})",
                new.id,
                humantime::format_duration(self.service.confirm_timeout)
            )),
        };
        let script = revert_script(&self.paths, &new.id, &activation, &record);
        let unit = self.revert_unit();
        // The script goes into a file: systemd would expand `$VAR`s in a command line.
        let file = format!("{}/revert.sh", self.paths.dir());
        let cmd = format!(
            "cd \"$HOME\" && cat > {f} && chmod 700 {f} && printf '%s\\n' {id} > {target} && \
             {{ systemctl --user stop {u}.timer {u}.service >/dev/null 2>&1; systemctl --user reset-failed {u}.timer {u}.service >/dev/null 2>&1; true; }} && \
             {} \"$HOME\"/{f}",
            crate::shell::command([
                "systemd-run",
                "--user",
                "--quiet",
                "--collect",
                &format!("--unit={unit}"),
                &format!(
                    "--description=ferry: revert {} unless the deploy of {} is confirmed",
                    self.service.name, new.id
                ),
                &format!("--on-active={}ms", self.service.confirm_timeout.as_millis()),
                "--timer-property=AccuracySec=100ms",
                "/bin/sh",
            ]),
            f = quote(&file),
            u = quote(&unit),
            id = quote(&new.id),
            target = quote(&format!("{}/revert.target", self.paths.dir())),
        );
        let out = self
            .conn
            .exec_streaming(&cmd, Some(script.as_bytes()), |_, _| {})
            .await?;
        if out.success() {
            Ok(())
        } else {
            Err(Error::Command {
                host: self.host.name.clone(),
                command: "systemd-run (arming the self-revert timer)".into(),
                status: out.status_text(),
                stderr: out.stderr_str(),
            })
        }
    }

    /// Disarm the revert timer; false if it already fired (the host reverted by itself).
    async fn disarm_revert(&self, release_id: &str) -> Result<bool> {
        let unit = quote(&self.revert_unit());
        let cmd = format!(
            "systemctl --user stop {unit}.timer {unit}.service >/dev/null 2>&1; cd \"$HOME\" && readlink {}",
            quote(&self.paths.current())
        );
        let out = self.conn.exec(&cmd).await?;
        Ok(out.stdout_str().trim() == format!("releases/{release_id}"))
    }

    async fn prune(&self, releases: &[String], current: &str, protect: Option<&str>) {
        let doomed =
            release::to_prune(releases, Some(current), protect, self.service.keep_releases);
        if doomed.is_empty() {
            return;
        }
        let mut cmd = format!(
            "cd \"$HOME\" && cd {} && rm -rf --",
            quote(&self.paths.releases())
        );
        for d in &doomed {
            cmd.push(' ');
            cmd.push_str(&quote(d));
        }
        match self.conn.run(&cmd).await {
            Ok(_) => self.phase("prune", format!("removed {} old release(s)", doomed.len())),
            Err(e) => self
                .reporter
                .warn(Some(&self.host.name), &format!("pruning failed: {e}")),
        }
    }

    /// Activate `activation`, verify it and run the health checks. Err(reason) on failure.
    async fn go_live(
        &self,
        activation: &Activation,
        journal_units: &mut Vec<String>,
        armed: bool,
    ) -> Result<std::result::Result<(), (String, Option<String>)>> {
        let verify_units = activation.verify_units();
        let (since, before) = self.before_restart(&verify_units).await?;
        *journal_units = verify_units.clone();
        let script = activation.script(&self.paths);
        let out = match self.conn.exec(&script).await {
            Ok(out) => out,
            Err(_) if self.conn.is_closed() => {
                // Nothing more can be done from here: say what the host will do by itself.
                let then = if armed {
                    format!(
                        "the host reverts to the previous release by itself within confirm_timeout ({})",
                        humantime::format_duration(self.service.confirm_timeout)
                    )
                } else {
                    "no self-revert was armed: check the host with `ferry status` and deploy or roll back again".to_string()
                };
                return Err(Error::Ssh {
                    host: self.host.name.clone(),
                    message: format!(
                        "the connection was lost while switching to {}; {then}",
                        activation.release
                    ),
                });
            }
            Err(e) => return Err(e),
        };
        if !out.success() {
            return Ok(Err((
                format!(
                    "activation failed ({}): {}",
                    out.status_text(),
                    out.stderr_str().trim()
                ),
                since,
            )));
        }
        if verify_units.is_empty() {
            return Ok(Ok(()));
        }
        self.phase(
            "verify",
            format!("waiting for {} to come up", verify_units.join(", ")),
        );
        let (verdicts, failure) = self
            .verify(&verify_units, &before, self.service.start_timeout)
            .await?;
        self.report_units(&verdicts);
        if let Some(reason) = failure {
            return Ok(Err((reason, since)));
        }
        if let Some(h) = &self.service.health {
            self.phase("health", "running health checks");
            if let Err(reason) = health::run(self.conn, h, &self.paths).await {
                return Ok(Err((format!("health check failed: {reason}"), since)));
            }
            self.phase("health", "healthy");
        }
        Ok(Ok(()))
    }

    /// Deploy the service on this host.
    pub async fn deploy(
        &self,
        local: &LocalRelease,
        origin: &Origin,
        opts: &Options,
    ) -> HostResult {
        match self.deploy_inner(local, origin, opts).await {
            Ok(r) => r,
            Err(e) => {
                let code = e.exit_code();
                let result = if code == exit::LOCKED {
                    "locked"
                } else {
                    "failed"
                };
                self.result(result, None, None, Some(e.to_string()), code.max(1))
            }
        }
    }

    async fn deploy_inner(
        &self,
        local: &LocalRelease,
        origin: &Origin,
        opts: &Options,
    ) -> Result<HostResult> {
        let dests: Vec<String> = local.files.iter().map(|f| f.dest.clone()).collect();
        if opts.dry_run {
            let remote = self.remote_state(&dests).await?;
            let id = release::release_id(std::time::SystemTime::now(), &local.content_hash());
            let plan = plan::make(self.service, local, &remote, &id, origin);
            self.reporter.emit(&PlanEvent {
                kind: "plan",
                host: self.host.name.clone(),
                plan,
            });
            return Ok(self.result(
                "planned",
                Some(&id),
                remote.current.as_deref(),
                None,
                exit::OK,
            ));
        }
        let holder = format!("{} (deploy, since {})", origin.by, release::now_rfc3339());
        let lock = lock::acquire(self.conn, &self.paths, opts.lock_wait, &holder, |h| {
            self.phase("lock", format!("waiting for the lock held by {h}"))
        })
        .await?;
        let result = self.deploy_locked(local, origin, opts, &dests).await;
        lock.release().await;
        result
    }

    async fn deploy_locked(
        &self,
        local: &LocalRelease,
        origin: &Origin,
        opts: &Options,
        dests: &[String],
    ) -> Result<HostResult> {
        // Leftovers of interrupted deploys go first, in the same round trip as the state.
        let out = self
            .conn
            .run(&format!(
                "(cd \"$HOME\" && rm -rf {}/.*.partial)\n{}",
                quote(&self.paths.releases()),
                plan::remote_state_script(&self.paths, dests)
            ))
            .await?;
        let remote = plan::parse_remote_state(&out);
        if remote.revert_pending && !remote.current_unconfirmed() {
            // A timer left over for a release that is no longer current: harmless, clear it.
            self.cancel_pending_revert().await?;
        }
        if remote.current_unconfirmed() {
            return Err(Error::Failed {
                message: format!(
                    "{}: the deploy of {} was never confirmed (ferry stopped before the end) and the host will revert it to the previous release by itself within confirm_timeout ({}); wait for that, or run `ferry rollback {}` now",
                    self.host.name,
                    remote.current.as_deref().unwrap_or("the current release"),
                    humantime::format_duration(self.service.confirm_timeout),
                    self.service.name
                ),
                code: exit::FAILED,
            });
        }
        let mut id = release::release_id(std::time::SystemTime::now(), &local.content_hash());
        while remote.releases.contains(&id) || remote.current.as_ref() == Some(&id) {
            tokio::time::sleep(Duration::from_millis(1000)).await;
            id = release::release_id(std::time::SystemTime::now(), &local.content_hash());
        }
        let plan = plan::make(self.service, local, &remote, &id, origin);
        let previous = remote.current.clone();
        self.phase(
            "upload",
            format!(
                "release {id} (current: {})",
                previous.as_deref().unwrap_or("none")
            ),
        );
        self.upload(&plan, local).await?;

        let activation = Activation::for_plan(&plan);
        self.switch(
            &plan.manifest,
            activation,
            &remote,
            "deploy",
            true,
            origin,
            opts,
        )
        .await
    }

    /// Make `new` live (its files are on the host), verify it, then confirm it or go back to
    /// the release that was current. Used by deploy (with the self-revert timer armed) and by
    /// rollback (without: its target is a release that was healthy before).
    #[allow(clippy::too_many_arguments)]
    pub async fn switch(
        &self,
        new: &Manifest,
        activation: Activation,
        remote: &plan::RemoteState,
        action: &str,
        arm: bool,
        origin: &Origin,
        opts: &Options,
    ) -> Result<HostResult> {
        let id = new.id.clone();
        let previous = remote.current.clone();
        let prev_manifest = remote
            .manifest
            .clone()
            .filter(|m| Some(&m.id) == previous.as_ref());
        let armed = if let Some(pm) = prev_manifest.as_ref().filter(|_| arm) {
            self.arm_revert(new, pm, &origin.by).await?;
            true
        } else {
            false
        };
        self.phase(
            "activate",
            format!("switching to {id}: installing units, switching `current`, restarting"),
        );
        let mut units = Vec::new();
        let live = self.go_live(&activation, &mut units, armed).await?;
        let record = |outcome: &str, reason: Option<String>| HistoryRecord {
            time: release::now_rfc3339(),
            action: action.to_string(),
            release: id.clone(),
            previous: previous.clone(),
            outcome: outcome.into(),
            by: origin.by.clone(),
            git_commit: origin.git_commit.clone(),
            reason,
        };
        match live {
            Ok(()) => {
                if armed && !self.disarm_revert(&id).await? {
                    let reason = "the self-revert timer fired before the deploy was confirmed (confirm_timeout too short?); the host is back on the previous release".to_string();
                    return Ok(self.result(
                        "rolled-back",
                        Some(&id),
                        previous.as_deref(),
                        Some(reason),
                        exit::ROLLED_BACK,
                    ));
                }
                self.append_history(&record("ok", None)).await;
                if action == "deploy" {
                    let mut all = remote.releases.clone();
                    all.push(id.clone());
                    let protect = release::last_good(&remote.history, Some(&id)).map(String::from);
                    self.prune(&all, &id, protect.as_deref().or(previous.as_deref()))
                        .await;
                }
                Ok(self.result("ok", Some(&id), previous.as_deref(), None, exit::OK))
            }
            Err((reason, since)) => {
                self.reporter.warn(
                    Some(&self.host.name),
                    &format!("{}: {reason}", self.service.name),
                );
                self.show_journal(since.as_deref(), &units).await;
                let Some(pm) = prev_manifest.filter(|_| !opts.no_rollback) else {
                    if armed {
                        let _ = self.disarm_revert(&id).await;
                    }
                    self.append_history(&record("failed", Some(reason.clone())))
                        .await;
                    let why = if previous.is_none() {
                        format!("{reason} (first deploy of this service: nothing to roll back to)")
                    } else if opts.no_rollback {
                        format!("{reason} (--no-rollback: the failed release stays in place)")
                    } else {
                        format!("{reason} (the previous release has no manifest: cannot roll back)")
                    };
                    return Ok(self.result(
                        "failed",
                        Some(&id),
                        previous.as_deref(),
                        Some(why),
                        exit::FAILED,
                    ));
                };
                self.phase("rollback", format!("rolling back to {}", pm.id));
                let back = Activation::back_to(&pm, Some(new));
                let mut units2 = Vec::new();
                let rb = self.go_live(&back, &mut units2, armed).await;
                if armed {
                    let _ = self.disarm_revert(&pm.id).await;
                }
                match rb {
                    Ok(Ok(())) => {
                        self.append_history(&record("rolled-back", Some(reason.clone())))
                            .await;
                        self.append_history(&HistoryRecord {
                            action: "rollback".into(),
                            release: pm.id.clone(),
                            previous: Some(id.clone()),
                            outcome: "ok".into(),
                            reason: Some(format!("automatic, after: {reason}")),
                            git_commit: pm.git_commit.clone(),
                            ..record("ok", None)
                        })
                        .await;
                        Ok(self.result(
                            "rolled-back",
                            Some(&id),
                            previous.as_deref(),
                            Some(format!("{reason}; rolled back to {}", pm.id)),
                            exit::ROLLED_BACK,
                        ))
                    }
                    Ok(Err((rb_reason, rb_since))) => {
                        self.show_journal(rb_since.as_deref(), &units2).await;
                        self.append_history(&record(
                            "rollback-failed",
                            Some(format!("{reason}; rollback: {rb_reason}")),
                        ))
                        .await;
                        Ok(self.result(
                            "rollback-failed",
                            Some(&id),
                            previous.as_deref(),
                            Some(format!(
                                "DEPLOY FAILED: {reason}; ROLLBACK TO {} FAILED TOO: {rb_reason}",
                                pm.id
                            )),
                            exit::FAILED,
                        ))
                    }
                    Err(e) => Ok(self.result(
                        "rollback-failed",
                        Some(&id),
                        previous.as_deref(),
                        Some(format!(
                            "DEPLOY FAILED: {reason}; ROLLBACK TO {} FAILED TOO: {e}",
                            pm.id
                        )),
                        exit::FAILED,
                    )),
                }
            }
        }
    }
}

/// The script the self-revert timer runs: under the lock, and only if `current` still points
/// at the unconfirmed release, go back to the previous one and record it.
pub fn revert_script(
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
         now=$(date -u +%Y-%m-%dT%H:%M:%SZ)\n\
         printf '%s\\n' {line} | sed \"s/__TIME__/$now/\" >> {history}\n\
         exit $rc\n",
        lock = quote(&paths.lock()),
        info = quote(&format!("{}.info", paths.lock())),
        unconfirmed_q = quote(unconfirmed),
        current = quote(&paths.current()),
        expected = quote(&format!("releases/{unconfirmed}")),
        activation = activation.script(paths),
        line = quote(&line),
        history = quote(&paths.history()),
    )
}

/// Lines of `journalctl -o short-iso` output, made safe to print.
/// Separates the by-unit and the by-PID journal queries in one command's output.
const JOURNAL_SPLIT: &str = "--ferry-journal-split--";

/// Lines of `journalctl -o short-iso-precise` output (one query, or two separated by
/// [`JOURNAL_SPLIT`]), made safe to print. The two queries' entries are merged by time without
/// duplicates; an entry is its first line and the indented continuation lines of a multi-line
/// message, which stay with it.
fn journal_lines(raw: &[u8]) -> Vec<String> {
    let mut entries: Vec<Vec<String>> = Vec::new();
    for part in raw.split(|b| *b == b'\n') {
        if part.is_empty() || part == JOURNAL_SPLIT.as_bytes() {
            continue;
        }
        let line = crate::report::sanitize_bytes(part);
        match entries.last_mut() {
            Some(entry) if part[0].is_ascii_whitespace() => entry.push(line),
            _ => entries.push(vec![line]),
        }
    }
    let mut seen = std::collections::HashSet::new();
    entries.retain(|e| seen.insert(e.clone()));
    // Stable: entries of one second keep the order journalctl gave them.
    entries.sort_by(|a, b| {
        let t = |e: &Vec<String>| e[0].split_whitespace().next().unwrap_or("").to_string();
        t(a).cmp(&t(b))
    });
    entries.into_iter().flatten().collect()
}

/// Does any line come from the unit's own processes (not from systemd about the unit)?
/// short-iso lines are `TIME HOST IDENTIFIER[PID]: MESSAGE`.
fn has_process_output(lines: &[String]) -> bool {
    lines.iter().any(|l| {
        l.split_whitespace()
            .nth(2)
            .is_some_and(|ident| !ident.starts_with("systemd["))
    })
}

fn human_bytes(n: u64) -> String {
    const UNITS: &[&str] = &["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < UNITS.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}

// ---------------------------------------------------------------------------------------------
// Fan-out over hosts.

/// Which exit code wins when hosts end differently: a failed host first, then unreachable,
/// locked, rolled back.
pub fn combine_codes(codes: &[i32]) -> i32 {
    for c in [
        exit::FAILED,
        exit::CONNECTION,
        exit::LOCKED,
        exit::ROLLED_BACK,
    ] {
        if codes.contains(&c) {
            return c;
        }
    }
    codes
        .iter()
        .copied()
        .find(|c| *c != exit::OK)
        .unwrap_or(exit::OK)
}

/// `ferry deploy`.
pub async fn run(
    config: &Config,
    services: Vec<Service>,
    host_filter: &[String],
    opts: Options,
    reporter: Arc<Reporter>,
) -> Result<i32> {
    // Everything local first: bad input fails before any host changes.
    let mut prepared = Vec::new();
    for s in services {
        let local = prepare(&s).await?;
        prepared.push((s, Arc::new(local)));
    }
    for f in host_filter {
        if !config.hosts.contains_key(f) {
            return Err(Error::Usage(format!(
                "--host {f}: no such host in {}",
                config.path.display()
            )));
        }
    }
    // host -> services deployed there, in config order.
    let mut per_host: BTreeMap<String, Vec<(Service, Arc<LocalRelease>)>> = BTreeMap::new();
    for (s, l) in &prepared {
        for h in &s.hosts {
            if host_filter.is_empty() || host_filter.contains(h) {
                per_host
                    .entry(h.clone())
                    .or_default()
                    .push((s.clone(), l.clone()));
            }
        }
    }
    if per_host.is_empty() {
        return Err(Error::Usage(
            "nothing to deploy: no selected service runs on the selected hosts".into(),
        ));
    }
    let origin = Arc::new(origin(config));
    let sem = Arc::new(tokio::sync::Semaphore::new(opts.parallel.max(1)));
    let opts = Arc::new(opts);
    let mut tasks = Vec::new();
    for (host_name, jobs) in per_host {
        let host = config.hosts[&host_name].clone();
        let (sem, reporter, origin, opts) =
            (sem.clone(), reporter.clone(), origin.clone(), opts.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = sem.acquire().await.expect("semaphore open");
            deploy_host(&host, &jobs, &origin, &opts, &reporter).await
        }));
    }
    let mut results = Vec::new();
    for t in tasks {
        results.extend(
            t.await
                .map_err(|e| Error::Local(format!("a deploy task failed: {e}")))?,
        );
    }
    let codes: Vec<i32> = results.iter().map(|r| r.code).collect();
    let code = combine_codes(&codes);
    if results.len() > 1 || code != exit::OK || !opts.dry_run {
        for r in &results {
            reporter.emit(r);
        }
    }
    let ok = results.iter().filter(|r| r.code == exit::OK).count();
    reporter.emit(&Summary {
        kind: "summary",
        ok,
        failed: results.len() - ok,
        exit_code: code,
        dry_run: opts.dry_run,
    });
    Ok(code)
}

async fn deploy_host(
    host: &Host,
    jobs: &[(Service, Arc<LocalRelease>)],
    origin: &Origin,
    opts: &Options,
    reporter: &Reporter,
) -> Vec<HostResult> {
    reporter.progress(
        Some(&host.name),
        &format!("connecting to {}@{}:{}", host.user, host.address, host.port),
    );
    let conn = match ssh::connect(host).await {
        Ok(c) => c,
        Err(e) => {
            reporter.error(&e);
            return jobs
                .iter()
                .map(|(s, _)| HostResult {
                    kind: "result",
                    host: host.name.clone(),
                    service: s.name.clone(),
                    result: "unreachable".into(),
                    release: None,
                    previous: None,
                    reason: Some(e.to_string()),
                    code: e.exit_code(),
                })
                .collect();
        }
    };
    let mut results = Vec::new();
    for (service, local) in jobs {
        let job = Job::new(&conn, host, service, reporter);
        results.push(job.deploy(local, origin, opts).await);
    }
    conn.close().await;
    results
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_code_precedence() {
        assert_eq!(combine_codes(&[0, 0]), 0);
        assert_eq!(combine_codes(&[0, 4]), 4);
        assert_eq!(combine_codes(&[4, 5]), 5);
        assert_eq!(combine_codes(&[5, 3, 4]), 3);
        assert_eq!(combine_codes(&[3, 1, 0]), 1);
    }

    #[test]
    fn journal_queries_merge_by_time_keeping_continuations() {
        let raw = format!(
            "2026-11-24T13:10:19.000002+0000 h systemd[5]: Started a.\n2026-11-24T13:10:19.000009+0000 h systemd[5]: a failed.\n{JOURNAL_SPLIT}\n2026-11-24T13:10:19.000005+0000 h sh[9]: first\n    second line\n2026-11-24T13:10:19.000009+0000 h systemd[5]: a failed.\n"
        );
        let lines = journal_lines(raw.as_bytes());
        assert_eq!(
            lines,
            vec![
                "2026-11-24T13:10:19.000002+0000 h systemd[5]: Started a.",
                "2026-11-24T13:10:19.000005+0000 h sh[9]: first",
                "    second line",
                "2026-11-24T13:10:19.000009+0000 h systemd[5]: a failed.",
            ]
        );
    }

    #[test]
    fn journal_output() {
        let raw = b"2026-11-24T13:10:19+0000 h systemd[58]: Started bad.service.\n2026-11-24T13:10:19+0000 h sh[9]: bad \x1b[31mred\xff\n";
        let lines = journal_lines(raw);
        assert_eq!(lines.len(), 2);
        assert!(
            lines[1].ends_with("bad \\u{1b}[31mred\\xff"),
            "{}",
            lines[1]
        );
        assert!(has_process_output(&lines));
        assert!(!has_process_output(&lines[..1]));
    }

    #[test]
    fn bytes() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(20 * 1024 * 1024), "20.0 MiB");
    }

    #[test]
    fn revert_script_guards_on_current() {
        let p = Paths::new("web");
        let a = Activation {
            release: "20261124T000000Z-00000001".into(),
            install: vec!["web.service".into()],
            remove: vec![],
            enable: vec![],
            stop_first: vec![],
            restart: vec!["web.service".into()],
            start: vec![],
        };
        let rec = HistoryRecord {
            time: "__TIME__".into(),
            action: "revert".into(),
            release: a.release.clone(),
            previous: None,
            outcome: "reverted".into(),
            by: "me".into(),
            git_commit: None,
            reason: None,
        };
        let s = revert_script(&p, "20261124T000001Z-00000002", &a, &rec);
        assert!(s.contains("[ \"$(readlink .local/share/ferry/web/current)\" = releases/20261124T000001Z-00000002 ]"), "{s}");
        assert!(s.contains("flock -w 600 9"));
        assert!(s.contains("restart --no-block web.service"));
    }
}
