//! Output for fleets: the live progress of a rollout (one line per host with its phase, on a
//! terminal), its batches, the final table of outcomes (sorted by outcome, worst last), the
//! rollout's summary, and the events of `ferry exec`.

use std::collections::HashMap;
use std::sync::Mutex;

use serde::Serialize;

use crate::exit::Exit;
use crate::outcome::HostOutcome;
use crate::report::deploy::HostResult;
use crate::report::{Format, Human, Reporter, Style, sanitize};

/// Live per-host lines while a rollout runs on a terminal: a host gets a line when it starts,
/// showing its latest phase, replaced by its outcome when it is done. Inactive (the default),
/// progress messages are printed one per line as usual.
#[derive(Default)]
pub struct Lines {
    bars: Mutex<Option<HashMap<String, indicatif::ProgressBar>>>,
}

impl Lines {
    pub fn is_active(&self) -> bool {
        self.bars.lock().unwrap().is_some()
    }
}

impl Reporter {
    /// Start showing one live line per host (only on a terminal, without --quiet/-v).
    pub fn fleet_begin(&self) {
        if self.progress_bars {
            *self.fleet.bars.lock().unwrap() = Some(HashMap::new());
        }
    }

    /// Show `message` on `host`'s live line; false when live lines are off.
    pub(crate) fn fleet_update(&self, host: &str, message: &str) -> bool {
        let mut guard = self.fleet.bars.lock().unwrap();
        let Some(bars) = guard.as_mut() else {
            return false;
        };
        let bar = bars.entry(host.to_string()).or_insert_with(|| {
            let bar = self.multi.add(indicatif::ProgressBar::new_spinner());
            bar.set_style(
                indicatif::ProgressStyle::with_template("{prefix:.bold} {wide_msg}")
                    .expect("valid template"),
            );
            bar.set_prefix(format!("{host}:"));
            bar
        });
        bar.set_message(sanitize(message));
        true
    }

    /// `host` is done: its live line (if any) gives way to `outcome`, printed once.
    pub fn fleet_done(&self, host: &str, outcome: &str) {
        let bar = self
            .fleet
            .bars
            .lock()
            .unwrap()
            .as_mut()
            .and_then(|b| b.remove(host));
        if let Some(bar) = bar {
            bar.finish_and_clear();
            self.multi.remove(&bar);
        }
        // Printed above the live lines (not through `progress`, which would give the host a
        // live line again).
        if !self.quiet {
            let outcome = crate::report::table::fit(
                &sanitize(outcome),
                host.chars().count() + 2,
                crate::report::table::stderr_width(),
            );
            let host = self.err_style.bold(&format!("{host}:"));
            self.stderr_line(&format!("{host} {outcome}"));
        }
    }

    /// Stop the live lines.
    pub fn fleet_end(&self) {
        let bars = self.fleet.bars.lock().unwrap().take();
        for (_, bar) in bars.into_iter().flatten() {
            bar.finish_and_clear();
            self.multi.remove(&bar);
        }
    }

    /// The final results: one `result` event per host and service in JSON, a table for people;
    /// sorted by outcome, worst last.
    pub fn results(&self, results: &[HostResult]) {
        let mut sorted: Vec<&HostResult> = results.iter().collect();
        crate::outcome::sort_by_outcome(&mut sorted, |r| r.result);
        if self.format == Format::Json || sorted.len() == 1 {
            for r in sorted {
                self.emit(r);
            }
            return;
        }
        self.emit(&Table(sorted.into_iter().cloned().collect()));
    }
}

/// A host's outcome for people, as a single host's result line says it (report/deploy.rs).
pub fn verdict(result: HostOutcome) -> String {
    match result {
        HostOutcome::Ok => "ok".into(),
        HostOutcome::Unchanged => "unchanged".into(),
        HostOutcome::Planned => "planned (dry run)".into(),
        HostOutcome::NotReached => "not reached".into(),
        HostOutcome::RolledBack => "ROLLED BACK".into(),
        // Not reached, host key refused or login rejected: the reason says which (JSON keeps
        // `unreachable`).
        HostOutcome::Unreachable => "NOT CONNECTED".into(),
        other => other.as_str().to_uppercase(),
    }
}

/// What the live line of a finished host says. A connection failure only says which way it
/// failed: its reason and hint are said once, by the result.
pub fn done_line(r: &HostResult) -> String {
    let mut s = format!("{}: {}", r.service, r.verdict());
    if let Some(reason) = r.reason.as_ref().filter(|_| r.connection.is_none()) {
        s.push_str(&format!(": {reason}"));
    }
    s
}

/// The results of several hosts as an aligned table (human only; JSON has `result` events).
#[derive(Debug, Clone, Serialize)]
struct Table(Vec<HostResult>);

impl Human for Table {
    fn human(&self, s: &Style) -> Option<String> {
        let hw = self.0.iter().map(|r| r.host.len()).max().unwrap_or(0);
        let sw = self.0.iter().map(|r| r.service.len()).max().unwrap_or(0);
        let vw = self.0.iter().map(|r| r.verdict().len()).max().unwrap_or(0);
        let lines: Vec<String> = self
            .0
            .iter()
            .map(|r| {
                let v = format!("{:<vw$}", r.verdict());
                let v = match r.result {
                    HostOutcome::Ok | HostOutcome::Unchanged => s.green(&v),
                    HostOutcome::Planned => s.bold(&v),
                    HostOutcome::NotReached | HostOutcome::RolledBack => s.yellow(&v),
                    _ => s.red(&v),
                };
                let mut line = format!(
                    "{} {:<sw$} {v}",
                    s.bold(&format!("{:<hw$}", r.host)),
                    r.service
                );
                if let Some(rel) = &r.release {
                    line.push_str(&format!(" release {rel}"));
                }
                if let Some(reason) = r.human_reason() {
                    let sep = if r.release.is_some() { ":" } else { "" };
                    line.push_str(&format!("{sep} {reason}"));
                }
                format!("{}{}", line.trim_end(), r.human_hint())
            })
            .collect();
        Some(lines.join("\n"))
    }
}

/// A batch of a rollout starts (JSON; people see a progress line).
#[derive(Debug, Clone, Serialize)]
pub struct BatchEvent {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub service: String,
    /// From 1.
    pub batch: usize,
    pub batches: usize,
    pub canary: bool,
    pub hosts: Vec<String>,
}

impl BatchEvent {
    /// The progress line for people.
    pub fn text(&self) -> String {
        let what = if self.canary {
            "canary".to_string()
        } else {
            format!("batch {}/{}", self.batch, self.batches)
        };
        format!("{}: {what}: {}", self.service, self.hosts.join(", "))
    }
}

impl Human for BatchEvent {
    fn human(&self, _: &Style) -> Option<String> {
        None
    }
}

/// How a service's rollout ended.
#[derive(Debug, Clone, Serialize)]
pub struct RolloutEvent {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub service: String,
    /// Hosts in the rollout.
    pub hosts: usize,
    pub batches: usize,
    /// Hosts now on the new release (verified).
    pub deployed: usize,
    /// Hosts that failed (whatever happened next: rolled back, left, unreachable...).
    pub failed: usize,
    /// Hosts put back on their previous release by --rollback-all-on-failure.
    pub put_back: usize,
    pub not_reached: usize,
    /// Why the rollout stopped early (None: it went through).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
}

impl Human for RolloutEvent {
    fn human(&self, s: &Style) -> Option<String> {
        let Some(why) = &self.stopped else {
            if self.failed > 0 && self.hosts > 1 {
                return Some(s.red(&format!(
                    "{}: {} of {} host(s) failed. After fixing the cause: ferry deploy {} --retry-failed",
                    self.service, self.failed, self.hosts, self.service
                )));
            }
            // A rollout that went through in one batch says nothing beyond the results.
            return (self.batches > 1).then(|| {
                format!(
                    "{}: rolled out in {} batches: {} of {} host(s) deployed",
                    self.service, self.batches, self.deployed, self.hosts
                )
            });
        };
        let mut text = format!("{}: ROLLOUT STOPPED: {why}", self.service);
        if self.not_reached > 0 {
            text.push_str(&format!(
                "; {} host(s) not reached keep their current release",
                self.not_reached
            ));
        }
        if self.put_back > 0 {
            text.push_str(&format!(
                "; {} host(s) put back on their previous release (--rollback-all-on-failure)",
                self.put_back
            ));
        }
        if self.deployed > 0 {
            text.push_str(&format!(
                "; {} host(s) stay on the new release",
                self.deployed
            ));
        }
        text.push_str(&format!(
            ". After fixing the cause: ferry deploy {} --retry-failed",
            self.service
        ));
        Some(s.red(&text))
    }
}

/// What `ferry exec` got from one host.
#[derive(Debug, Clone, Serialize)]
pub struct ExecEvent {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub host: String,
    pub service: String,
    pub stdout: String,
    pub stderr: String,
    /// The command's exit status; null when it was killed by a signal or never ran.
    pub exit_status: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
    /// Why the command could not run (connection, no current release).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// It could not be connected to: which way that failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection: Option<crate::error::ConnectFailure>,
    /// With `connection`: what to do.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    #[serde(skip)]
    pub code: Exit,
}

impl Human for ExecEvent {
    /// People saw the output as it came.
    fn human(&self, _: &Style) -> Option<String> {
        None
    }
}

/// The end of `ferry exec`.
#[derive(Debug, Clone, Serialize)]
pub struct ExecSummary {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub service: String,
    pub ok: usize,
    pub failed: usize,
    pub exit_code: Exit,
}

impl ExecSummary {
    pub fn text(&self) -> String {
        if self.failed == 0 {
            format!("{}: exit status 0 on {} host(s)", self.service, self.ok)
        } else {
            format!(
                "{}: exit status 0 on {} host(s), not on {} (exit {})",
                self.service, self.ok, self.failed, self.exit_code
            )
        }
    }
}

impl Human for ExecSummary {
    fn human(&self, _: &Style) -> Option<String> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(host: &str, result: HostOutcome, reason: Option<&str>) -> HostResult {
        HostResult::new(
            host,
            "api",
            result,
            (result == HostOutcome::Ok).then_some("R2"),
            None,
            reason.map(String::from),
            result.exit(),
        )
    }

    #[test]
    fn table_is_aligned_and_plain_without_colour() {
        let t = Table(vec![
            r("web1", HostOutcome::Ok, None),
            r("web10", HostOutcome::NotReached, Some("keeps its release")),
        ]);
        let text = t.human(&Style { color: false }).unwrap();
        assert_eq!(
            text,
            "web1  api ok          release R2\nweb10 api not reached keeps its release"
        );
    }

    #[test]
    fn stopped_rollout_says_what_happened_and_what_to_do() {
        let e = RolloutEvent {
            kind: "rollout",
            service: "api".into(),
            hosts: 6,
            batches: 3,
            deployed: 3,
            failed: 1,
            put_back: 0,
            not_reached: 2,
            stopped: Some("the canary host web1 failed".into()),
        };
        let text = e.human(&Style { color: false }).unwrap();
        assert!(
            text.contains("ROLLOUT STOPPED: the canary host web1 failed")
                && text.contains("2 host(s) not reached keep their current release")
                && text.contains("3 host(s) stay on the new release")
                && text.contains("ferry deploy api --retry-failed"),
            "{text}"
        );
        let failed = RolloutEvent {
            stopped: None,
            batches: 1,
            ..e.clone()
        };
        let text = failed.human(&Style { color: false }).unwrap();
        assert!(text.contains("api: 1 of 6 host(s) failed"), "{text}");
        let ok = RolloutEvent {
            stopped: None,
            batches: 1,
            failed: 0,
            ..e
        };
        assert_eq!(ok.human(&Style { color: false }), None);
    }

    #[test]
    fn exec_event_json_has_the_documented_fields() {
        let e = ExecEvent {
            kind: "exec",
            host: "web1".into(),
            service: "api".into(),
            stdout: "hi\n".into(),
            stderr: String::new(),
            exit_status: Some(0),
            signal: None,
            error: None,
            connection: None,
            hint: None,
            code: crate::exit::Exit::Ok,
        };
        let v: serde_json::Value = serde_json::to_value(&e).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"type": "exec", "host": "web1", "service": "api",
                "stdout": "hi\n", "stderr": "", "exit_status": 0})
        );
    }

    #[test]
    fn connection_failures_say_which_way_once_with_the_hint() {
        use crate::error::Error;
        let auth = Error::Auth {
            host: "web1".into(),
            user: "deploy".into(),
            tried: vec!["publickey ~/.ssh/id_ed25519".into()],
        };
        let refused = Error::Connect {
            host: "web2".into(),
            addr: "10.0.0.2:22".into(),
            source: std::io::ErrorKind::ConnectionRefused.into(),
            attempts: 1,
        };
        let key = Error::HostKeyUnknown {
            host: "web3".into(),
            addr: "10.0.0.3:22".into(),
            fingerprint: "ssh-ed25519 SHA256:x".into(),
            known_hosts: "kh".into(),
            line_to_add: "10.0.0.3 ssh-ed25519 AAAA".into(),
        };
        let results: Vec<HostResult> = [("web1", &auth), ("web2", &refused), ("web3", &key)]
            .into_iter()
            .map(|(h, e)| HostResult::not_connected(h, "api", e))
            .collect();
        let verdicts: Vec<String> = results.iter().map(HostResult::verdict).collect();
        assert_eq!(
            verdicts,
            ["AUTHENTICATION FAILED", "UNREACHABLE", "HOST KEY REFUSED"]
        );
        // The live line names the class only; the result says the reason and hint once.
        assert_eq!(done_line(&results[0]), "api: AUTHENTICATION FAILED");
        let one = results[0].human(&Style { color: false }).unwrap();
        assert_eq!(
            one.lines().next().unwrap(),
            "web1 api AUTHENTICATION FAILED: authentication as `deploy` was rejected; tried: publickey ~/.ssh/id_ed25519"
        );
        assert_eq!(one.matches("rejected").count(), 1, "{one}");
        assert!(
            one.contains("\n  hint: is the public key in ~deploy/"),
            "{one}"
        );
        let table = Table(results.clone())
            .human(&Style { color: false })
            .unwrap();
        assert!(
            table.contains("web2 api UNREACHABLE           cannot connect to 10.0.0.2:22"),
            "{table}"
        );
        assert!(table.contains("add this line to kh:\n"), "{table}");
        let v = serde_json::to_value(&results[2]).unwrap();
        assert_eq!(v["result"], "unreachable");
        assert_eq!(v["connection"], "host-key-refused");
        assert!(
            v["reason"]
                .as_str()
                .unwrap()
                .starts_with("web3: the host key")
        );
        let v = serde_json::to_value(r("web4", HostOutcome::Failed, Some("x"))).unwrap();
        assert!(v.get("connection").is_none() && v.get("hint").is_none());
    }
}
