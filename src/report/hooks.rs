//! The `hook` event: a line of a hook's output, or how the hook ended.

use serde::Serialize;

use crate::report::{Human, Style, sanitize};

/// A line a hook printed (`line` and `stream` set), or its end (`ok` set).
#[derive(Debug, Clone, Serialize)]
pub struct HookEvent {
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The host it ran on (`local` for `local_after`).
    pub host: String,
    pub service: String,
    /// before_switch, after_switch, local_after
    pub hook: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ok: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<u32>,
}

impl HookEvent {
    pub fn line(
        host: &str,
        service: &str,
        hook: &'static str,
        stream: &'static str,
        line: &str,
    ) -> HookEvent {
        HookEvent {
            kind: "hook",
            host: host.to_string(),
            service: service.to_string(),
            hook,
            stream: Some(stream),
            line: Some(line.to_string()),
            ok: None,
            exit_code: None,
        }
    }

    pub fn status(
        host: &str,
        service: &str,
        hook: &'static str,
        ok: bool,
        exit_code: Option<u32>,
    ) -> HookEvent {
        HookEvent {
            kind: "hook",
            host: host.to_string(),
            service: service.to_string(),
            hook,
            stream: None,
            line: None,
            ok: Some(ok),
            exit_code,
        }
    }
}

impl Human for HookEvent {
    fn human(&self, s: &Style) -> Option<String> {
        let h = s.bold(&self.host);
        match (&self.line, self.ok) {
            (Some(line), _) => Some(format!("{h} {}| {}", self.hook, sanitize(line))),
            (None, Some(true)) => Some(format!("{h} {} {}", self.hook, s.green("ok"))),
            (None, Some(false)) => Some(format!(
                "{h} {} {}",
                self.hook,
                s.red(&match self.exit_code {
                    Some(c) => format!("FAILED (exit status {c})"),
                    None => "FAILED".to_string(),
                })
            )),
            (None, None) => None,
        }
    }
}

/// What became of a service's migration (`hooks.migrate`) in a rollout: `ran`, `skipped`
/// (it ran before for a release of the same content; `reason` says where and when), or
/// `failed` (nothing was switched on any host).
#[derive(Debug, Clone, Serialize)]
pub struct MigrateEvent {
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The host it ran on (or was checked on).
    pub host: String,
    pub service: String,
    pub release: String,
    /// ran, skipped, failed
    pub result: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl MigrateEvent {
    pub fn new(
        host: &str,
        service: &str,
        release: &str,
        result: &'static str,
        reason: Option<String>,
    ) -> MigrateEvent {
        MigrateEvent {
            kind: "migrate",
            host: host.to_string(),
            service: service.to_string(),
            release: release.to_string(),
            result,
            reason,
        }
    }
}

impl Human for MigrateEvent {
    fn human(&self, s: &Style) -> Option<String> {
        let h = s.bold(&self.host);
        let why = self
            .reason
            .as_deref()
            .map(|r| format!(": {}", sanitize(r)))
            .unwrap_or_default();
        let what = match self.result {
            "ran" => s.green("ran"),
            "skipped" => "skipped".to_string(),
            other => s.red(&other.to_uppercase()),
        };
        Some(format!(
            "{h} migration of {} for release {} {what}{why}",
            sanitize(&self.service),
            self.release
        ))
    }
}
