//! `ferry doctor` events: one line per check (with its hint when it did not pass) and the
//! closing summary.

use serde::Serialize;

use crate::report::{Human, Style, sanitize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Fail,
    /// Works, but something a service may need is missing (does not change the exit code).
    Warn,
    /// Not run because an earlier check failed.
    Skip,
}

/// One verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub host: String,
    pub check: CheckId,
    pub status: Status,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// The root fix `--fix` prints or runs, attached by the judge that found the cause.
    #[serde(skip)]
    pub fix: Option<RootFix>,
}

/// The checks of `ferry doctor`, in the order they are reported. Serialised as their names
/// (`"host key"`), the `check` field of docs/events.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CheckId {
    Reachable,
    HostKey,
    Authenticated,
    LoginShell,
    SftpSubsystem,
    MaxSessions,
    SystemdVersion,
    UserBus,
    UserManager,
    Lingering,
    Journal,
    JournalStorage,
    UnitDirectory,
    CgroupDelegation,
    UnprivilegedPorts,
    HostTools,
}

impl CheckId {
    /// Every check, in report order.
    pub const ALL: [CheckId; 16] = [
        CheckId::Reachable,
        CheckId::HostKey,
        CheckId::Authenticated,
        CheckId::LoginShell,
        CheckId::SftpSubsystem,
        CheckId::MaxSessions,
        CheckId::SystemdVersion,
        CheckId::UserBus,
        CheckId::UserManager,
        CheckId::Lingering,
        CheckId::Journal,
        CheckId::JournalStorage,
        CheckId::UnitDirectory,
        CheckId::CgroupDelegation,
        CheckId::UnprivilegedPorts,
        CheckId::HostTools,
    ];

    /// The name people and JSON see.
    pub fn name(self) -> &'static str {
        match self {
            CheckId::Reachable => "reachable",
            CheckId::HostKey => "host key",
            CheckId::Authenticated => "authenticated",
            CheckId::LoginShell => "login shell",
            CheckId::SftpSubsystem => "sftp subsystem",
            CheckId::MaxSessions => "max sessions",
            CheckId::SystemdVersion => "systemd version",
            CheckId::UserBus => "user bus",
            CheckId::UserManager => "user manager",
            CheckId::Lingering => "lingering",
            CheckId::Journal => "journal",
            CheckId::JournalStorage => "journal storage",
            CheckId::UnitDirectory => "unit directory",
            CheckId::CgroupDelegation => "cgroup delegation",
            CheckId::UnprivilegedPorts => "unprivileged ports",
            CheckId::HostTools => "host tools",
        }
    }

    /// Whether failing it means ferry could not connect or log in (exit code 3).
    pub fn is_connection(self) -> bool {
        matches!(
            self,
            CheckId::Reachable | CheckId::HostKey | CheckId::Authenticated
        )
    }

    /// Whether it is one of the checks of the login itself (shell, SFTP, sessions), made
    /// before the one script of the others.
    pub fn is_login(self) -> bool {
        matches!(
            self,
            CheckId::LoginShell | CheckId::SftpSubsystem | CheckId::MaxSessions
        )
    }
}

impl std::fmt::Display for CheckId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.name())
    }
}

impl Serialize for CheckId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// A root fix for a cause a judge found (the commands are `commands::doctor::fix_commands`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootFix {
    /// `loginctl enable-linger`.
    EnableLinger,
    /// Lingering on, and the user's manager started.
    StartUserManager,
    /// A persistent journal (journald `Storage=persistent`).
    PersistentJournal,
    /// The cgroup controllers delegated to user managers.
    DelegateControllers,
    /// `net.ipv4.ip_unprivileged_port_start` lowered to 1024.
    UnprivilegedPorts,
    /// `Subsystem sftp internal-sftp` in sshd_config.
    SftpSubsystem,
    /// `MaxSessions 10` (OpenSSH's default) in sshd_config.
    MaxSessions,
}

/// A fix for one check of one host: printed, or run through `sudo -n`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FixEvent {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub host: String,
    pub check: CheckId,
    /// The commands, to run as root on the host, in order.
    pub commands: Vec<String>,
    /// `print` (not run), `done` (ran through sudo -n and succeeded) or `failed`.
    pub result: &'static str,
    /// With `failed`: why (sudo's or the command's message).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Human for Check {
    fn human(&self, s: &Style) -> Option<String> {
        let mark = match self.status {
            Status::Pass => s.green("ok  "),
            Status::Fail => s.red("FAIL"),
            Status::Warn => s.yellow("warn"),
            Status::Skip => s.dim("skip"),
        };
        let mut line = format!(
            "{} {mark} {:<18} {}",
            s.bold(&self.host),
            self.check,
            sanitize(&self.detail)
        );
        if let Some(h) = &self.hint {
            // A hint may hold lines to paste (a known_hosts line): each on its own line,
            // indented under the hint, never as a literal `\n`.
            let pad = " ".repeat(self.host.len());
            for (i, part) in h.lines().enumerate() {
                let label = if i == 0 { "hint: " } else { "      " };
                line.push_str(&format!("\n{pad}      {label}{}", sanitize(part)));
            }
        }
        Some(line)
    }
}

impl Human for FixEvent {
    fn human(&self, s: &Style) -> Option<String> {
        let pad = " ".repeat(self.host.len());
        let (mark, what) = match self.result {
            "done" => (s.green("done"), "ran as root with sudo -n:"),
            "failed" => (
                s.red("FAIL"),
                "could not run with sudo -n; as root on the host:",
            ),
            _ => (s.yellow("fix "), "as root on the host:"),
        };
        let mut text = format!("{} {mark} {:<18} {what}", s.bold(&self.host), self.check);
        for c in &self.commands {
            text.push_str(&format!("\n{pad}      {}", sanitize(c)));
        }
        if let Some(e) = &self.error {
            text.push_str(&format!("\n{pad}      error: {}", sanitize(e)));
        }
        Some(text)
    }
}

/// Summary line after all hosts.
#[derive(Debug, Serialize)]
pub struct Summary {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub hosts: usize,
    pub passed: usize,
    pub failed: usize,
    /// Checks that passed with a warning (they do not change the exit code).
    pub warnings: usize,
}

impl Human for Summary {
    fn human(&self, s: &Style) -> Option<String> {
        let warnings = if self.warnings > 0 {
            format!(", {} warning(s)", self.warnings)
        } else {
            String::new()
        };
        Some(if self.failed > 0 {
            s.red(&format!(
                "{} check(s) failed, {} passed on {} host(s){warnings}",
                self.failed, self.passed, self.hosts
            ))
        } else if self.warnings > 0 {
            s.yellow(&format!(
                "no check failed on {} host(s): {} passed{warnings}",
                self.hosts, self.passed
            ))
        } else {
            s.green(&format!(
                "all {} checks passed on {} host(s)",
                self.passed, self.hosts
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hint_of_several_lines_prints_them_as_lines() {
        let c = Check {
            hint: Some(
                "add this line to ~/.ssh/known_hosts:\n  [h]:22 ssh-ed25519 AAAA\nor set x".into(),
            ),
            kind: "check",
            host: "web1".into(),
            check: CheckId::HostKey,
            status: Status::Fail,
            detail: "not known".into(),
            fix: None,
        };
        let out = c.human(&Style { color: false }).unwrap();
        assert!(!out.contains("\\n"), "{out}");
        assert_eq!(out.lines().count(), 4, "{out}");
        assert!(
            out.lines()
                .nth(2)
                .unwrap()
                .ends_with("  [h]:22 ssh-ed25519 AAAA"),
            "{out}"
        );
    }

    #[test]
    fn a_failed_check_shows_its_hint_under_it() {
        let c = Check {
            kind: "check",
            host: "web1".into(),
            check: CheckId::Lingering,
            status: Status::Fail,
            detail: "off for app".into(),
            hint: Some("as root on the host: loginctl enable-linger app".into()),
            fix: None,
        };
        assert_eq!(
            c.human(&Style { color: false }).unwrap(),
            "web1 FAIL lingering          off for app\n          hint: as root on the host: loginctl enable-linger app"
        );
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(v["type"], "check");
        assert_eq!(v["status"], "fail");
    }

    #[test]
    fn a_fix_lists_its_commands() {
        let f = FixEvent {
            kind: "fix",
            host: "web1".into(),
            check: CheckId::Lingering,
            commands: vec!["loginctl enable-linger app".into()],
            result: "print",
            error: None,
        };
        assert_eq!(
            f.human(&Style { color: false }).unwrap(),
            "web1 fix  lingering          as root on the host:\n          loginctl enable-linger app"
        );
        let f = FixEvent {
            result: "failed",
            error: Some("sudo is not installed".into()),
            ..f
        };
        let text = f.human(&Style { color: false }).unwrap();
        assert!(text.contains("FAIL lingering"), "{text}");
        assert!(text.ends_with("error: sudo is not installed"), "{text}");
        assert_eq!(serde_json::to_value(&f).unwrap()["result"], "failed");
    }

    #[test]
    fn summary_words() {
        let plain = Style { color: false };
        let s = Summary {
            kind: "summary",
            hosts: 2,
            passed: 14,
            failed: 0,
            warnings: 0,
        };
        assert_eq!(
            s.human(&plain).unwrap(),
            "all 14 checks passed on 2 host(s)"
        );
        let s = Summary { warnings: 1, ..s };
        assert_eq!(
            s.human(&plain).unwrap(),
            "no check failed on 2 host(s): 14 passed, 1 warning(s)"
        );
        let s = Summary { failed: 2, ..s };
        assert_eq!(
            s.human(&plain).unwrap(),
            "2 check(s) failed, 14 passed on 2 host(s), 1 warning(s)"
        );
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(
            (&v["type"], &v["passed"], &v["failed"], &v["warnings"]),
            (&"summary".into(), &14.into(), &2.into(), &1.into())
        );
    }
}
