//! `ferry doctor`: is each host ready for ferry? One verdict per check, with a hint per failure.
//!
//! The probes are plain remote commands; judging their output is pure and unit-tested.

use serde::Serialize;

use crate::config::Host;
use crate::error::Error;
use crate::journal::{self, Diagnosis, JournalFacts, kv};
use crate::report::Reporter;
use crate::report::doctor::Summary;
use crate::ssh::{self, Connection, Output};

/// The checks, in the order they are reported.
pub const CHECKS: &[&str] = &[
    "reachable",
    "host key",
    "authenticated",
    "user manager",
    "lingering",
    "journal",
    "unit directory",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Fail,
    /// Not run because an earlier check failed.
    Skip,
}

/// One verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub host: String,
    pub check: &'static str,
    pub status: Status,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl Check {
    fn new(host: &str, check: &'static str, status: Status, detail: impl Into<String>) -> Check {
        Check {
            kind: "check",
            host: host.to_string(),
            check,
            status,
            detail: detail.into(),
            hint: None,
        }
    }
    fn pass(host: &str, check: &'static str, detail: impl Into<String>) -> Check {
        Check::new(host, check, Status::Pass, detail)
    }
    fn fail(
        host: &str,
        check: &'static str,
        detail: impl Into<String>,
        hint: impl Into<String>,
    ) -> Check {
        Check {
            hint: Some(hint.into()),
            ..Check::new(host, check, Status::Fail, detail)
        }
    }
}

/// The verdicts for a host whose connection failed, from the error.
pub fn connection_checks(host: &Host, err: &Error) -> Vec<Check> {
    let n = &host.name;
    let addr = format!("{}:{}", host.address, host.port);
    let hint = err.hint().unwrap_or_default();
    let failed_at = match err {
        Error::Connect { .. } | Error::ConnectTimeout { .. } => 0,
        Error::HostKeyUnknown { .. }
        | Error::HostKeyChanged { .. }
        | Error::HostKeyRevoked { .. }
        | Error::KnownHosts { .. } => 1,
        Error::Auth { .. } | Error::Key { .. } => 2,
        _ => 0,
    };
    let mut checks = Vec::new();
    for (i, name) in CHECKS.iter().enumerate() {
        let c = if i < failed_at {
            let detail = match i {
                0 => addr.clone(),
                1 => format!("verified against {}", host.known_hosts.display()),
                _ => String::new(),
            };
            Check::pass(n, name, detail)
        } else if i == failed_at {
            Check::fail(n, name, err.to_string(), hint.clone())
        } else {
            Check::new(n, name, Status::Skip, "not checked: not connected")
        };
        checks.push(c);
    }
    checks
}

/// Probe commands, each judged by a function below.
pub const USER_MANAGER_PROBE: &str = "systemctl --user is-system-running 2>&1; echo \"rc=$?\"; \
    systemctl --user list-units --state=failed --plain --no-legend --no-pager 2>/dev/null | cut -d' ' -f1";
pub const LINGER_PROBE: &str = "u=$(id -un); echo \"user=$u\"; \
    v=$(loginctl show-user \"$u\" --property=Linger --value 2>/dev/null); \
    if [ -z \"$v\" ]; then if [ -e \"/var/lib/systemd/linger/$u\" ]; then v=yes; else v=no; fi; fi; echo \"linger=$v\"";
/// [`journal::FACTS_PROBE`], then a message of the user's own read back with `journalctl --user`.
pub fn journal_probe() -> String {
    format!(
        "{}; {}",
        journal::FACTS_PROBE,
        "m=\"ferry-doctor-$$-$(date +%s%N)\"; \
    if ! command -v systemd-cat >/dev/null; then echo readable=unknown; exit 0; fi; \
    echo \"$m\" | systemd-cat -t ferry-doctor; i=0; \
    while [ $i -lt 40 ]; do \
      if journalctl --user -q -o cat \"MESSAGE=$m\" 2>/dev/null | grep -q .; then echo readable=yes; exit 0; fi; \
      sleep 0.1; i=$((i+1)); done; echo readable=no"
    )
}
pub const UNIT_DIR_PROBE: &str = "d=\"$HOME/.config/systemd/user\"; \
    if [ -d \"$d\" ]; then s=exists; else s=created; fi; \
    mkdir -p \"$d\" && [ -w \"$d\" ] && echo \"unit_dir=$s\" || echo unit_dir=unwritable";

pub fn judge_user_manager(host: &str, out: &Output) -> Check {
    let text = out.stdout_str();
    let mut lines = text.lines();
    let state = lines.next().unwrap_or("").trim().to_string();
    let failed: Vec<&str> = lines
        .filter(|l| !l.starts_with("rc=") && !l.trim().is_empty())
        .map(str::trim)
        .collect();
    let c = "user manager";
    match state.as_str() {
        "running" => Check::pass(host, c, "running"),
        "degraded" => Check::fail(
            host,
            c,
            format!("degraded: failed units: {}", failed.join(", ")),
            "inspect with `journalctl --user -u UNIT`; clear with `systemctl --user reset-failed`",
        ),
        "starting" | "initializing" => Check::fail(
            host,
            c,
            state.clone(),
            "the user manager is still starting; run doctor again in a moment",
        ),
        s if s.contains("Failed to connect to bus") || s.contains("No such file") => Check::fail(
            host,
            c,
            format!("not reachable: {s}"),
            "the login did not get XDG_RUNTIME_DIR/DBUS_SESSION_BUS_ADDRESS: is libpam-systemd installed and UsePAM yes in sshd_config? is lingering on?",
        ),
        s => Check::fail(
            host,
            c,
            if s.is_empty() {
                "no answer".to_string()
            } else {
                s.to_string()
            },
            "check `systemctl --user status` on the host",
        ),
    }
}

pub fn judge_linger(host: &str, out: &Output) -> Check {
    let text = out.stdout_str();
    let user = kv(&text, "user").unwrap_or("USER").to_string();
    match kv(&text, "linger") {
        Some("yes") => Check::pass(host, "lingering", "on"),
        _ => Check::fail(
            host,
            "lingering",
            format!("off for {user}: its services stop at logout and do not start at boot"),
            format!("as root on the host: loginctl enable-linger {user}"),
        ),
    }
}

pub fn judge_journal(host: &str, out: &Output) -> Check {
    let text = out.stdout_str();
    let facts = JournalFacts::parse(&text);
    let readable = kv(&text, "readable");
    let c = "journal";
    if readable == Some("no") || !facts.persistent() {
        // The same words as `ferry logs` when the journal shows nothing.
        let d = journal::diagnose(&facts).unwrap_or_else(|| Diagnosis {
            message: format!(
                "`journalctl --user` does not show the own messages of {} (uid {})",
                facts.user_name(),
                facts.uid.map_or("?".to_string(), |u| u.to_string())
            ),
            hint: "as root on the host: check that journald's SplitMode is uid (the default) and that /var/log/journal/MACHINE-ID/user-UID.journal belongs to the user".to_string(),
        });
        return Check::fail(host, c, d.message, d.hint);
    }
    match readable {
        Some("yes") => Check::pass(host, c, "persistent, readable by the user"),
        _ => Check::fail(
            host,
            c,
            "persistent, but could not test reading it (systemd-cat missing)",
            "install systemd on the host",
        ),
    }
}

pub fn judge_unit_dir(host: &str, out: &Output) -> Check {
    let text = out.stdout_str();
    let c = "unit directory";
    match kv(&text, "unit_dir") {
        Some("exists") => Check::pass(host, c, "~/.config/systemd/user exists"),
        Some("created") => Check::pass(host, c, "~/.config/systemd/user created"),
        _ => Check::fail(
            host,
            c,
            format!(
                "~/.config/systemd/user cannot be created: {}",
                out.stderr_str().trim()
            ),
            "check the ownership and permissions of the home directory",
        ),
    }
}

/// Run every check on one host.
pub async fn check_host(host: &Host) -> Vec<Check> {
    let conn: Connection = match ssh::connect(host).await {
        Ok(c) => c,
        Err(e) => return connection_checks(host, &e),
    };
    let n = &host.name;
    let mut checks = vec![
        Check::pass(
            n,
            "reachable",
            match conn.via() {
                Some(j) => format!("{}:{} through {j}", host.address, host.port),
                None => format!("{}:{}", host.address, host.port),
            },
        ),
        Check::pass(
            n,
            "host key",
            if conn.host_key_learned {
                format!(
                    "{} (new: recorded in {})",
                    conn.host_key,
                    host.known_hosts.display()
                )
            } else {
                format!("{} (known_hosts)", conn.host_key)
            },
        ),
        Check::pass(
            n,
            "authenticated",
            format!("as {} with {}", host.user, conn.auth_method),
        ),
    ];
    let journal_probe = journal_probe();
    let (um, linger, journal, dir) = tokio::join!(
        conn.exec(USER_MANAGER_PROBE),
        conn.exec(LINGER_PROBE),
        conn.exec(&journal_probe),
        conn.exec(UNIT_DIR_PROBE),
    );
    type Judge = fn(&str, &Output) -> Check;
    let probes: [(&'static str, _, Judge); 4] = [
        ("user manager", um, judge_user_manager),
        ("lingering", linger, judge_linger),
        ("journal", journal, judge_journal),
        ("unit directory", dir, judge_unit_dir),
    ];
    for (name, result, judge) in probes {
        checks.push(match result {
            Ok(out) => judge(n, &out),
            Err(e) => Check::fail(
                n,
                name,
                e.to_string(),
                "the connection failed during the check",
            ),
        });
    }
    conn.close().await;
    checks
}

/// `ferry doctor`: check hosts in parallel, print in config order. Exit code: 0 when every
/// check passed, 3 when a host could not be reached or logged in to, else 1.
pub async fn run(hosts: Vec<Host>, reporter: &Reporter) -> i32 {
    let tasks: Vec<_> = hosts
        .into_iter()
        .map(|h| tokio::spawn(async move { check_host(&h).await }))
        .collect();
    let mut passed = 0;
    let mut failed = 0;
    let mut unconnected = false;
    let n = tasks.len();
    for t in tasks {
        let checks = t.await.expect("doctor task panicked");
        for c in &checks {
            match c.status {
                Status::Pass => passed += 1,
                Status::Fail => {
                    failed += 1;
                    unconnected |= matches!(c.check, "reachable" | "host key" | "authenticated");
                }
                Status::Skip => {}
            }
            reporter.emit(c);
        }
    }
    reporter.emit(&Summary {
        kind: "summary",
        hosts: n,
        passed,
        failed,
    });
    if unconnected {
        crate::error::exit::CONNECTION
    } else if failed > 0 {
        crate::error::exit::FAILED
    } else {
        crate::error::exit::OK
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(stdout: &str) -> Output {
        Output {
            status: Some(0),
            signal: None,
            stdout: stdout.as_bytes().to_vec(),
            stderr: vec![],
        }
    }

    #[test]
    fn user_manager_states() {
        assert_eq!(
            judge_user_manager("h", &out("running\nrc=0\n")).status,
            Status::Pass
        );
        let c = judge_user_manager("h", &out("degraded\nrc=1\nbad.service\nworse.service\n"));
        assert_eq!(c.status, Status::Fail);
        assert!(
            c.detail.contains("bad.service, worse.service"),
            "{}",
            c.detail
        );
        let c = judge_user_manager(
            "h",
            &out("Failed to connect to bus: No medium found\nrc=1\n"),
        );
        assert!(c.hint.unwrap().contains("libpam-systemd"));
    }

    #[test]
    fn linger() {
        assert_eq!(
            judge_linger("h", &out("user=u\nlinger=yes\n")).status,
            Status::Pass
        );
        let c = judge_linger("h", &out("user=bob\nlinger=no\n"));
        assert_eq!(c.status, Status::Fail);
        assert_eq!(
            c.hint.as_deref(),
            Some("as root on the host: loginctl enable-linger bob")
        );
    }

    #[test]
    fn journal() {
        let ok = judge_journal("h", &out("uid=1000\npersistent=yes\nreadable=yes\n"));
        assert_eq!(ok.status, Status::Pass);
        let sys = judge_journal("h", &out("uid=990\npersistent=yes\nreadable=no\n"));
        assert_eq!(sys.status, Status::Fail);
        assert!(sys.hint.unwrap().contains("system user"));
        let vol = judge_journal("h", &out("uid=1000\npersistent=no\nreadable=yes\n"));
        assert_eq!(vol.status, Status::Fail);
        assert!(vol.detail.contains("not persistent"));
    }

    /// `ferry doctor` and `ferry logs` (nothing shown) give the same reason and fix.
    #[test]
    fn journal_check_says_what_logs_says() {
        for facts in [
            "uid=990\nuser=sys\npersistent=yes\nvar_log_journal=yes\nstorage=persistent\n",
            "uid=1001\nuser=app\npersistent=no\nvar_log_journal=no\nstorage=\n",
            "uid=1001\nuser=app\npersistent=yes\nvar_log_journal=yes\nstorage=volatile\n",
        ] {
            let c = judge_journal("h", &out(&format!("{facts}readable=no\n")));
            let journal::Emptiness::Unreadable { message, hint } =
                journal::judge_empty(&format!("{facts}entries=0\n"))
            else {
                panic!("{facts}")
            };
            assert_eq!(c.status, Status::Fail);
            assert_eq!((c.detail, c.hint.unwrap()), (message, hint));
        }
    }

    #[test]
    fn unit_dir() {
        assert_eq!(
            judge_unit_dir("h", &out("unit_dir=exists\n")).status,
            Status::Pass
        );
        assert_eq!(
            judge_unit_dir("h", &out("unit_dir=unwritable\n")).status,
            Status::Fail
        );
    }

    #[test]
    fn connection_failure_marks_later_checks_skipped() {
        let host = Host {
            name: "h".into(),
            address: "127.0.0.1".into(),
            user: "u".into(),
            port: 1,
            identity: None,
            known_hosts: "kh".into(),
            host_key_policy: crate::config::HostKeyPolicy::Strict,
            connect_timeout: std::time::Duration::from_secs(1),
            proxy_jump: None,
        };
        let err = Error::Auth {
            host: "h".into(),
            user: "u".into(),
            tried: vec![],
        };
        let checks = connection_checks(&host, &err);
        let st: Vec<Status> = checks.iter().map(|c| c.status).collect();
        assert_eq!(
            st,
            vec![
                Status::Pass,
                Status::Pass,
                Status::Fail,
                Status::Skip,
                Status::Skip,
                Status::Skip,
                Status::Skip
            ]
        );
    }
}
