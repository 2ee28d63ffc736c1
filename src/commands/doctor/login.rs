//! The checks of the SSH login itself: the connection verdicts when it failed, then (once
//! logged in) whether the login shell runs a command given to ssh, whether the SFTP subsystem
//! answers, and how many sessions at once sshd grants (`MaxSessions`). Probing is the
//! transport's; judging each answer here is pure and unit-tested.

use crate::config::Host;
use crate::error::Error;
use crate::report::doctor::{Check, CheckId, RootFix, Status};
use crate::transport::ssh::{Connection, LoginShell, Sessions, SftpAnswer};

/// The most sessions (channels running a command or SFTP) a deploy holds on one connection at
/// once: the lock's holder, the SFTP session and up to two commands.
pub const SESSIONS_AT_ONCE: usize = 4;
/// How many sessions the probe opens at most (OpenSSH's default MaxSessions).
const SESSIONS_PROBED: usize = 10;

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
        | Error::HostCertInvalid { .. }
        | Error::KnownHosts { .. } => 1,
        Error::Auth { .. } | Error::Key { .. } => 2,
        _ => 0,
    };
    let mut checks = Vec::new();
    for (i, name) in CheckId::ALL.into_iter().enumerate() {
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

/// The login checks of a connected host, and whether the login shell runs commands (the
/// other checks need it).
pub async fn checks(host: &str, conn: &Connection) -> (Vec<Check>, bool) {
    // First, while no other channel of this connection is open.
    let sessions = conn.max_sessions_probe(SESSIONS_PROBED).await;
    let shell = conn.login_shell_probe().await;
    let runs = matches!(shell, Ok(LoginShell::Ran { .. }));
    let sftp = conn.sftp_probe().await;
    let failed = |check, e: Error| {
        Check::fail(
            host,
            check,
            e.to_string(),
            "the connection failed during the check: run doctor again",
        )
    };
    let checks = vec![
        match shell {
            Ok(s) => judge_login_shell(host, &conn.user, &s),
            Err(e) => failed(CheckId::LoginShell, e),
        },
        match sftp {
            Ok(a) => judge_sftp(host, &conn.user, &a),
            Err(e) => failed(CheckId::SftpSubsystem, e),
        },
        match sessions {
            Ok(s) => judge_max_sessions(host, s),
            Err(e) => failed(CheckId::MaxSessions, e),
        },
    ];
    (checks, runs)
}

/// The checks of the one script, skipped: the login shell does not run commands.
pub fn skipped(host: &str) -> Vec<Check> {
    CheckId::ALL
        .into_iter()
        .filter(|c| !c.is_connection() && !c.is_login())
        .map(|c| {
            Check::new(
                host,
                c,
                Status::Skip,
                "not checked: the login shell does not run commands (see `login shell`)",
            )
        })
        .collect()
}

/// The startup file a shell reads for a command given to ssh (where a line that prints or
/// exits belongs behind an "interactive only" test).
pub fn startup_file(shell: &str) -> &'static str {
    match shell.rsplit('/').next().unwrap_or_default() {
        "bash" => "~/.bashrc",
        "zsh" => "~/.zshenv",
        "fish" => "~/.config/fish/config.fish",
        _ => "~/.profile (or the file the login shell reads)",
    }
}

pub fn judge_login_shell(host: &str, user: &str, probe: &LoginShell) -> Check {
    let c = CheckId::LoginShell;
    let (shell, stdout, stderr) = match probe {
        LoginShell::NotRun(why) => {
            return Check::fail(
                host,
                c,
                why.clone(),
                format!(
                    "sshd runs every command through {user}'s login shell and its startup files: make `ssh {user}@HOST true` run `true` and return (no `exec` of another shell, no `exit`, no read from the terminal in a non-interactive shell)"
                ),
            );
        }
        LoginShell::Ran {
            shell,
            stdout,
            stderr,
        } => (shell, stdout, stderr),
    };
    let shown = if shell.is_empty() {
        "the login shell"
    } else {
        shell
    };
    let file = startup_file(shell);
    if !stdout.is_empty() {
        let text = String::from_utf8_lossy(stdout);
        let short: String = text.trim().chars().take(100).collect();
        return Check::warn(
            host,
            c,
            format!(
                "`{shown}` runs ferry's commands, but its startup files print {} bytes on stdout before them ({short:?}): that breaks an SFTP server sshd starts through the shell (OpenSSH's sftp and scp too)",
                stdout.len()
            ),
            format!(
                "make {file} print nothing when not interactive: put `[ -t 1 ] || return` or `case $- in *i*) ;; *) return;; esac` before the line that prints"
            ),
        );
    }
    if !stderr.is_empty() {
        return Check::pass(
            host,
            c,
            format!(
                "`{shown}` runs ferry's commands (its startup files print {} bytes on stderr: ignored)",
                stderr.len()
            ),
        );
    }
    Check::pass(
        host,
        c,
        format!("`{shown}` runs ferry's commands; its startup files print nothing"),
    )
}

/// The hint for an SFTP subsystem that is missing or does not run.
const SFTP_HINT: &str = "as root on the host: put `Subsystem sftp internal-sftp` (or the distribution's sftp-server, e.g. /usr/lib/openssh/sftp-server) in /etc/ssh/sshd_config, check it with `sshd -t`, then `systemctl reload ssh` (sshd on RHEL)";

pub fn judge_sftp(host: &str, user: &str, answer: &SftpAnswer) -> Check {
    let c = CheckId::SftpSubsystem;
    let fail =
        |detail: String| Check::fail(host, c, detail, SFTP_HINT).fixed_by(RootFix::SftpSubsystem);
    match answer {
        SftpAnswer::Version(v) => {
            Check::pass(host, c, format!("answers (SFTP protocol version {v})"))
        }
        SftpAnswer::NoSubsystem => fail(
            "sshd refused the SFTP subsystem: its config has no `Subsystem sftp` line, and ferry uploads releases over SFTP".to_string(),
        ),
        SftpAnswer::Garbage(bytes) => {
            let text = String::from_utf8_lossy(bytes);
            let short: String = text.trim().chars().take(100).collect();
            Check::fail(
                host,
                c,
                format!(
                    "the SFTP subsystem's first {} bytes are not SFTP ({short:?}): a startup file of {user}'s login shell prints on stdout, and sshd starts sftp-server through that shell",
                    bytes.len()
                ),
                "make the startup file print nothing when not interactive (see `login shell`), or use `Subsystem sftp internal-sftp` in /etc/ssh/sshd_config (no shell)",
            )
        }
        SftpAnswer::Ended { status, stderr } => {
            let status = status.map_or("no exit status".to_string(), |s| format!("exit status {s}"));
            let said = if stderr.is_empty() {
                String::new()
            } else {
                format!(": {}", stderr.chars().take(200).collect::<String>())
            };
            fail(format!(
                "the SFTP subsystem ended without answering ({status}{said}): sshd's `Subsystem sftp` names a program that does not run"
            ))
        }
        SftpAnswer::NoAnswer => fail(
            "the SFTP subsystem did not answer within 15s".to_string(),
        ),
    }
}

pub fn judge_max_sessions(host: &str, s: Sessions) -> Check {
    let c = CheckId::MaxSessions;
    let need = SESSIONS_AT_ONCE;
    let hint = "as root on the host: set `MaxSessions 10` (OpenSSH's default) in /etc/ssh/sshd_config (or its Match block for this user), check with `sshd -t`, then `systemctl reload ssh`";
    match (s.refused, s.granted) {
        (false, n) => Check::pass(
            host,
            c,
            format!("at least {n} sessions per connection (a deploy uses up to {need} at once)"),
        ),
        (true, n) if n >= need => Check::pass(
            host,
            c,
            format!("{n} sessions per connection (a deploy uses up to {need} at once)"),
        ),
        (true, n) if n >= 2 => Check::warn(
            host,
            c,
            format!(
                "sshd grants {n} sessions per connection (MaxSessions {n}); a deploy uses up to {need} at once, so its commands wait for each other's channels (slower)"
            ),
            hint,
        )
        .fixed_by(RootFix::MaxSessions),
        (true, n) => Check::fail(
            host,
            c,
            format!(
                "sshd grants {n} session(s) per connection (MaxSessions {n}): a deploy holds its lock on one and needs at least one more"
            ),
            hint,
        )
        .fixed_by(RootFix::MaxSessions),
    }
}

/// The root commands for a fix of sshd's config: `KEY VALUE` in place of the file's own line
/// (else first in the file, ahead of any `Match`), kept only when `sshd -t` accepts it.
pub fn sshd_fix(fix: RootFix) -> Vec<String> {
    let (key, value) = match fix {
        RootFix::SftpSubsystem => ("Subsystem[[:space:]]+sftp", "Subsystem sftp internal-sftp"),
        _ => ("MaxSessions", "MaxSessions 10"),
    };
    let f = "/etc/ssh/sshd_config";
    vec![
        format!("cp -p {f} {f}.ferry-backup"),
        format!(
            "if grep -qiE '^[[:space:]]*{key}([[:space:]]|$)' {f}; then sed -i -E 's/^[[:space:]]*{key}([[:space:]].*)?$/{value}/I' {f}; else sed -i '1i {value}' {f}; fi"
        ),
        format!("sshd -t || {{ cp -p {f}.ferry-backup {f}; exit 1; }}"),
        "systemctl reload ssh 2>/dev/null || systemctl reload sshd".into(),
    ]
}

#[cfg(test)]
#[path = "login_tests.rs"]
mod tests;
