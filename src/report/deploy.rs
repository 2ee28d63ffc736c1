//! The events of `ferry deploy` and `ferry rollback`, with their human forms: per-host results,
//! phases, unit states, journal lines of a failure, the plan a dry run prints, the steps as they
//! are executed, and the summary.

use serde::Serialize;

use crate::error::{ConnectFailure, Error};
use crate::exit::Exit;
pub use crate::human::human_bytes;
use crate::outcome::HostOutcome;
use crate::plan::{self, Plan, Step, Transfer};
use crate::report::{Human, Style, sanitize};

/// The result for one service on one host.
#[derive(Debug, Clone, Serialize)]
pub struct HostResult {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub host: String,
    pub service: String,
    pub result: HostOutcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What was asked of the host for this (each costs a round trip or more).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote: Option<RemoteOps>,
    /// `unreachable` only: which way the connection failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection: Option<ConnectFailure>,
    /// What to do about it (connection failures).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    #[serde(skip)]
    pub code: Exit,
}

/// Remote operations of one service's deploy or rollback on one host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RemoteOps {
    /// Commands run (an SSH channel each).
    pub commands: u64,
    /// SFTP sessions opened.
    pub sftp_sessions: u64,
    /// SFTP requests other than data writes and reads (open, close, setstat, ...).
    pub sftp_requests: u64,
}

impl HostResult {
    pub fn new(
        host: &str,
        service: &str,
        result: HostOutcome,
        release: Option<&str>,
        previous: Option<&str>,
        reason: Option<String>,
        code: Exit,
    ) -> HostResult {
        HostResult {
            kind: "result",
            host: host.to_string(),
            service: service.to_string(),
            result,
            release: release.map(String::from),
            previous: previous.map(String::from),
            reason,
            remote: None,
            connection: None,
            hint: None,
            code,
        }
    }

    /// `service` on `host` could not be connected to: the reason, which way it failed and
    /// what to do, said once by the result.
    pub fn not_connected(host: &str, service: &str, err: &Error) -> HostResult {
        HostResult {
            connection: err.connect_failure(),
            hint: err.hint(),
            ..HostResult::new(
                host,
                service,
                HostOutcome::Unreachable,
                None,
                None,
                Some(err.to_string()),
                err.exit_code(),
            )
        }
    }

    /// The verdict for people: the outcome, or for a connection failure which way it failed.
    pub fn verdict(&self) -> String {
        match (self.result, self.connection) {
            (HostOutcome::Unreachable, Some(c)) => c.label().to_string(),
            (result, _) => crate::report::fleet::verdict(result),
        }
    }

    /// The reason for people: without the host's name in front when the line names it.
    pub fn human_reason(&self) -> Option<String> {
        let reason = self.reason.as_deref()?;
        let own = reason
            .strip_prefix(self.host.as_str())
            .and_then(|r| r.strip_prefix(": "));
        Some(sanitize(
            own.filter(|_| self.connection.is_some()).unwrap_or(reason),
        ))
    }

    /// The hint as indented lines under the result (empty without one).
    pub fn human_hint(&self) -> String {
        match &self.hint {
            Some(h) => format!(
                "\n  hint: {}",
                crate::report::sanitize_lines(h).replace('\n', "\n        ")
            ),
            None => String::new(),
        }
    }
}

impl Human for HostResult {
    fn human(&self, s: &Style) -> Option<String> {
        let verdict = match self.result {
            HostOutcome::Ok => s.green("ok"),
            HostOutcome::Unchanged => s.green("unchanged"),
            HostOutcome::Planned => s.bold("planned (dry run)"),
            HostOutcome::RolledBack => s.yellow("ROLLED BACK"),
            _ => s.red(&self.verdict()),
        };
        let mut line = format!("{} {} {verdict}", s.bold(&self.host), self.service);
        if let Some(r) = &self.release {
            line.push_str(&format!(" release {r}"));
        }
        if let Some(reason) = self.human_reason() {
            line.push_str(&format!(": {reason}"));
        }
        line.push_str(&self.human_hint());
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
    /// The same as `up`: every `unit` event (deploy's and status's) has `host`, `service`,
    /// `unit` and `ok`.
    pub ok: bool,
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

impl JournalEvent {
    /// A journal entry of a failure, in the line format of `ferry logs` (no colour, no host).
    pub fn new(host: &str, service: &str, entry: &crate::systemd::journal::Entry) -> JournalEvent {
        let entry = crate::report::logs::LogEntry::new(host, entry, None);
        let line = entry.human(&Style { color: false }).unwrap_or_default();
        JournalEvent {
            kind: "journal",
            host: host.to_string(),
            service: service.to_string(),
            line: cap_line(line, service),
        }
    }
}

/// The longest journal line a failure excerpt shows, in bytes: a unit that logs a 1 MiB line
/// must not flood the terminal or a CI log (`ferry logs` shows whole lines).
pub const EXCERPT_LINE_MAX: usize = 2000;

/// The most a failure excerpt shows in all, in bytes (its lines as cut by
/// [`EXCERPT_LINE_MAX`]): the last lines are kept, being nearest the failure.
pub const EXCERPT_TOTAL_MAX: usize = 64 * 1024;

/// The excerpt `lines` within [`EXCERPT_TOTAL_MAX`]: the last ones, after a first line that
/// says how many earlier lines and bytes were left out (when any were).
pub fn cap_excerpt(mut lines: Vec<JournalEvent>, service: &str) -> Vec<JournalEvent> {
    let mut total = 0;
    let keep = lines
        .iter()
        .rev()
        .take_while(|e| {
            total += e.line.len() + 1;
            total <= EXCERPT_TOTAL_MAX
        })
        .count();
    let cut = lines.len() - keep;
    if cut == 0 {
        return lines;
    }
    let dropped: usize = lines[..cut].iter().map(|e| e.line.len() + 1).sum();
    let note = JournalEvent {
        line: format!(
            "[... {cut} earlier line(s), {dropped} bytes, not shown: the excerpt shows at most {EXCERPT_TOTAL_MAX} bytes; `ferry logs {service} --since-deploy` shows them all]"
        ),
        ..lines[0].clone()
    };
    lines.drain(..cut);
    lines.insert(0, note);
    lines
}

/// `line` cut at [`EXCERPT_LINE_MAX`] bytes (on a character boundary), with what was left out.
fn cap_line(line: String, service: &str) -> String {
    if line.len() <= EXCERPT_LINE_MAX {
        return line;
    }
    let mut end = EXCERPT_LINE_MAX;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    format!(
        "{} [... {} more bytes; `ferry logs {service}` shows the whole line]",
        &line[..end],
        line.len() - end
    )
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
    /// Bytes of the files that went over the link (compressed), for the `uploaded` phase.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sent_bytes: Option<u64>,
    /// Bytes of the files not sent again, as an interrupted upload had sent them (the upload
    /// resumed from there), for the `uploaded` phase when there were any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resumed_bytes: Option<u64>,
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
        // The headline says what the steps say: a no-op or a refusal is not "would deploy".
        let unchanged = p.steps.iter().find_map(|st| match st {
            Step::Unchanged { current } => Some(current.as_str()),
            _ => None,
        });
        let refused = p.steps.iter().any(|st| matches!(st, Step::Refuse { .. }));
        let headline = match (unchanged, refused) {
            (Some(current), _) => format!(
                "{h} {}: nothing to deploy: {current} is current, the same, and up (--force deploys)",
                p.service
            ),
            (None, true) => format!(
                "{h} {}: would NOT deploy release {} (refused, see below; current: {})",
                p.service,
                p.release,
                p.previous.as_deref().unwrap_or("none")
            ),
            (None, false) => format!(
                "{h} {}: would deploy release {} (current: {})",
                p.service,
                p.release,
                p.previous.as_deref().unwrap_or("none")
            ),
        };
        let mut out = vec![headline];
        if unchanged.is_some() {
            for (i, step) in p.steps.iter().enumerate() {
                out.push(format!("{h}   step {:>2} {}", i + 1, step_text(step)));
            }
            return Some(out.join("\n"));
        }
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
        if !p.env.is_empty() {
            out.push(format!(
                "{h}   env     {} (values not shown)",
                p.env.join(" ")
            ));
        }
        if !p.enable.is_empty() {
            out.push(format!("{h}   enable  {}", p.enable.join(" ")));
        }
        if !p.units.is_empty() && !p.daemon_reload {
            out.push(format!(
                "{h}   reload  none (the unit files are unchanged and loaded as they are)"
            ));
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
        if !p.previous_verified && p.previous.is_some() {
            out.push(format!(
                "{h}   note    the current release was never verified (its self-revert failed)"
            ));
        }
        for (i, step) in p.steps.iter().enumerate() {
            out.push(format!("{h}   step {:>2} {}", i + 1, step_text(step)));
        }
        match &p.on_failure {
            plan::OnFailure::RollBack { to } => {
                out.push(format!("{h}   on failure: roll back to {to}"))
            }
            plan::OnFailure::Stay { reason } => {
                out.push(format!("{h}   on failure: stay ({reason})"))
            }
        }
        Some(out.join("\n"))
    }
}

/// A step of the plan, as it is executed (JSON only; people see progress on stderr).
#[derive(Debug, Clone, Serialize)]
pub struct StepEvent {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub host: String,
    pub service: String,
    /// Position in the plan's `steps`, from 0.
    pub index: usize,
    #[serde(flatten)]
    pub step: Step,
}

impl Human for StepEvent {
    fn human(&self, _: &Style) -> Option<String> {
        None
    }
}

/// One line for a step of a plan.
pub fn step_text(step: &Step) -> String {
    let name = step.name();
    let detail = match step {
        Step::Lock => "hold the service's lock".to_string(),
        Step::Unchanged { current } => {
            format!("nothing to do: {current} is current, the same, and up (--force deploys)")
        }
        Step::Refuse { reason, .. } => format!("REFUSED: {}", sanitize(reason)),
        Step::CleanStaging { dirs } => format!("remove {} leftover staging dir(s)", dirs.len()),
        Step::ClearStaleRevert => "stop a self-revert timer left for an old release".into(),
        Step::Stage { release } => format!("create releases/.{release}.partial"),
        Step::Staged { release } => format!(
            "mark {release} staged (the `staged` link, a history line); nothing switched: `ferry promote` does"
        ),
        Step::Reuse { files } => format!("copy {} unchanged file(s) on the host", files.len()),
        Step::Upload { files, bytes } => {
            format!("send {} file(s), {}", files.len(), human_bytes(*bytes))
        }
        Step::Seal {
            release,
            units,
            arm_revert,
        } => {
            let mut t = format!("set modes, fsync, rename into releases/{release}");
            if !units.is_empty() {
                t.push_str(&format!(
                    "; check {} unit file(s) with systemd-analyze --user verify: {}",
                    units.len(),
                    units.join(" ")
                ));
            }
            if let Some(a) = arm_revert {
                t.push_str(&format!(
                    "; arm the self-revert to {} (fires after {})",
                    a.to,
                    humantime::format_duration(std::time::Duration::from_millis(a.after_ms))
                ));
            }
            t
        }
        Step::Switch { from, to, drain_ms } => {
            let drain = humantime::format_duration(std::time::Duration::from_millis(*drain_ms));
            match from {
                Some(from) => format!(
                    "move the front to {}, let {} drain for {drain}, then stop it",
                    to.name(),
                    from.name()
                ),
                None => format!("move the front to {} (first blue/green deploy)", to.name()),
            }
        }
        Step::Migrate { command } => format!(
            "run the migration once for the rollout (every host waits for it before switching; skipped if it ran for this release): {}",
            sanitize(command)
        ),
        Step::BeforeSwitch { command } => {
            format!("run the before_switch hook: {}", sanitize(command))
        }
        Step::AfterSwitch { command } => {
            format!("run the after_switch hook: {}", sanitize(command))
        }
        Step::ArmRevert { to, after_ms } => format!(
            "arm the self-revert to {to} (fires after {})",
            humantime::format_duration(std::time::Duration::from_millis(*after_ms))
        ),
        Step::Activate { release } => {
            format!("install units, switch `current` to {release}, daemon-reload, enable, restart")
        }
        Step::Verify { units } => format!("wait for {} to be up and settled", units.join(", ")),
        Step::Health { checks } => format!("health checks: {}", checks.join(", ")),
        Step::Confirm { release, prune } if prune.is_empty() => {
            format!("disarm the self-revert, record {release} as deployed")
        }
        Step::Confirm { release, prune } => format!(
            "disarm the self-revert, record {release} as deployed, delete {} old release(s)",
            prune.len()
        ),
    };
    format!("{name:<19}{detail}")
}

/// Final summary.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub ok: usize,
    pub failed: usize,
    pub exit_code: Exit,
    pub dry_run: bool,
    /// What an ok host was: "deployed", "rolled back" (human form only).
    #[serde(skip)]
    pub action: &'static str,
}

impl Human for Summary {
    fn human(&self, s: &Style) -> Option<String> {
        Some(if self.dry_run && self.failed == 0 {
            format!("dry run: {} plan(s), nothing was changed", self.ok)
        } else if self.failed == 0 {
            s.green(&format!("{}: {} ok", self.action, self.ok))
        } else {
            s.red(&format!(
                "{} ok, {} not ok (exit {})",
                self.ok, self.failed, self.exit_code
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_journal_line_is_cut_and_says_how_much_was_left_out() {
        let cut = cap_line("é".repeat(600_000), "web");
        assert!(cut.len() < EXCERPT_LINE_MAX + 100, "{} bytes", cut.len());
        assert!(cut.ends_with("[... 1198000 more bytes; `ferry logs web` shows the whole line]"));
        assert_eq!(cap_line("short".into(), "web"), "short");
    }

    #[test]
    fn a_long_excerpt_keeps_its_last_lines_and_says_what_was_cut() {
        let line = |i: usize| JournalEvent {
            kind: "journal",
            host: "web1".into(),
            service: "web".into(),
            line: format!("{i:04} {}", "x".repeat(EXCERPT_LINE_MAX)),
        };
        let lines: Vec<JournalEvent> = (0..200).map(line).collect();
        let each = lines[0].line.len() + 1;
        let capped = cap_excerpt(lines, "web");
        let shown: usize = capped.iter().map(|e| e.line.len() + 1).sum();
        assert!(shown < EXCERPT_TOTAL_MAX + 300, "{shown} bytes");
        let kept = EXCERPT_TOTAL_MAX / each;
        assert_eq!(capped.len(), kept + 1);
        assert_eq!(
            capped[0].line,
            format!(
                "[... {} earlier line(s), {} bytes, not shown: the excerpt shows at most 65536 bytes; `ferry logs web --since-deploy` shows them all]",
                200 - kept,
                (200 - kept) * each
            )
        );
        assert!(capped.last().unwrap().line.starts_with("0199 "));
        let few: Vec<JournalEvent> = (0..3).map(line).collect();
        assert_eq!(cap_excerpt(few, "web").len(), 3);
    }
}
