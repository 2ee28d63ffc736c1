//! Error kinds, the hint each one gives the user, and the exit code each maps to.

use std::path::PathBuf;
use std::time::Duration;

use crate::config::ConfigErrors;

/// The exit classes (`Exit::Failed`, ...) and [`Exit`], beside the errors that map to them.
pub use crate::exit::{self, Exit};

/// The three ways a connection to a host fails, told apart in results (`connection` in JSON):
/// all exit 3, but each asks for another fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConnectFailure {
    /// No SSH session: refused, timed out, no route, or the SSH handshake failed.
    Unreachable,
    /// The host's key is unknown, changed or revoked (known_hosts).
    HostKeyRefused,
    /// The host refused every key offered, or the key could not be loaded.
    AuthFailed,
}

impl ConnectFailure {
    /// The verdict for people (tables and result lines).
    pub fn label(self) -> &'static str {
        match self {
            ConnectFailure::Unreachable => "UNREACHABLE",
            ConnectFailure::HostKeyRefused => "HOST KEY REFUSED",
            ConnectFailure::AuthFailed => "AUTHENTICATION FAILED",
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Config(#[from] ConfigErrors),

    #[error("{0}")]
    Usage(String),

    #[error("{host}: cannot connect to {addr}: {source}{}", if *attempts > 1 { format!(" ({attempts} attempts: ConnectionAttempts)") } else { String::new() })]
    Connect {
        host: String,
        addr: String,
        source: std::io::Error,
        /// How many times it was tried (ssh's ConnectionAttempts).
        attempts: u32,
    },

    #[error("{host}: no answer from {addr} within {}", humantime::format_duration(*after))]
    ConnectTimeout {
        host: String,
        addr: String,
        after: Duration,
    },

    #[error(
        "{host}: the host key of {addr} is not known ({fingerprint}); refusing to connect (host_key_policy = strict)"
    )]
    HostKeyUnknown {
        host: String,
        addr: String,
        fingerprint: String,
        known_hosts: PathBuf,
        line_to_add: String,
    },

    #[error(
        "{host}: THE HOST KEY OF {addr} HAS CHANGED: it is {fingerprint}, but {}:{line} records another key. Someone may be intercepting the connection (man-in-the-middle), or the host was reinstalled. Refusing to connect.",
        known_hosts.display()
    )]
    HostKeyChanged {
        host: String,
        addr: String,
        fingerprint: String,
        known_hosts: PathBuf,
        line: usize,
    },

    #[error("{host}: the host key of {addr} ({fingerprint}) is revoked by {}:{line} (@revoked in known_hosts, or RevokedHostKeys)", known_hosts.display())]
    HostKeyRevoked {
        host: String,
        addr: String,
        fingerprint: String,
        known_hosts: PathBuf,
        line: usize,
    },

    #[error(
        "{host}: the host certificate of {addr} ({fingerprint}, signed by CA {ca}) is not valid: {reason}"
    )]
    HostCertInvalid {
        host: String,
        addr: String,
        fingerprint: String,
        ca: String,
        reason: String,
    },

    #[error("{host}: cannot use known_hosts file {}: {message}", path.display())]
    KnownHosts {
        host: String,
        path: PathBuf,
        message: String,
    },

    #[error("{host}: authentication as `{user}` was rejected; tried: {}", if tried.is_empty() { "nothing (no key available)".to_string() } else { tried.join("; ") })]
    Auth {
        host: String,
        user: String,
        tried: Vec<String>,
    },

    #[error("cannot load private key {}: {message}", path.display())]
    Key { path: PathBuf, message: String },

    #[error("{host}: ssh: {message}")]
    Ssh { host: String, message: String },

    /// The host's sshd refused to open a connection from the host to `to` for ferry (a TCP
    /// port or a unix socket, for a health check): forwarding is forbidden there.
    #[error(
        "{host}: the host's sshd forbids forwarding, so ferry cannot reach {to} from there (AdministrativelyProhibited: `AllowTcpForwarding no` or `DisableForwarding yes` in sshd_config, or `restrict`/`permitopen=` on the key in authorized_keys)"
    )]
    ForwardingForbidden { host: String, to: String },

    /// The SSH connection went away in the middle of an operation (`during`: what was under way).
    #[error("{host}: the connection was lost while {during}")]
    ConnectionLost { host: String, during: String },

    #[error("{host}: `{command}` failed ({status}){}", stderr_suffix(stderr))]
    Command {
        host: String,
        command: String,
        status: String,
        stderr: String,
    },

    #[error("{host}: sftp: {message}")]
    Sftp { host: String, message: String },

    #[error("{0}")]
    Local(String),

    /// Refused before anything changed on the host (another deploy holds the lock, the
    /// current release's self-revert is pending, the asked-for release is not there).
    #[error("{host}: {message}")]
    Refused {
        host: String,
        message: String,
        code: Exit,
    },

    /// Failed, and every detail has been reported already: only the exit code is left.
    #[error("failed (reported above)")]
    Reported { code: Exit },

    #[error("interrupted")]
    Interrupted,
}

fn stderr_suffix(stderr: &str) -> String {
    let s = stderr.trim();
    if s.is_empty() {
        String::new()
    } else {
        format!(": {s}")
    }
}

impl Error {
    /// The exit code for this error.
    pub fn exit_code(&self) -> Exit {
        match self {
            Error::Config(_) | Error::Usage(_) => Exit::Usage,
            Error::Connect { .. }
            | Error::ConnectTimeout { .. }
            | Error::HostKeyUnknown { .. }
            | Error::HostKeyChanged { .. }
            | Error::HostKeyRevoked { .. }
            | Error::HostCertInvalid { .. }
            | Error::KnownHosts { .. }
            | Error::Auth { .. }
            | Error::Key { .. }
            | Error::Ssh { .. }
            | Error::ConnectionLost { .. } => Exit::Connection,
            Error::Command { .. }
            | Error::Sftp { .. }
            | Error::Local(_)
            | Error::ForwardingForbidden { .. } => Exit::Failed,
            Error::Refused { code, .. } | Error::Reported { code } => *code,
            Error::Interrupted => Exit::Interrupted,
        }
    }

    /// Is this a failure to reach or log in to a host?
    pub fn is_connection(&self) -> bool {
        self.exit_code() == Exit::Connection
    }

    /// Which way a connection failed (None when this is not a connection failure).
    pub fn connect_failure(&self) -> Option<ConnectFailure> {
        Some(match self {
            Error::Connect { .. }
            | Error::ConnectTimeout { .. }
            | Error::Ssh { .. }
            | Error::ConnectionLost { .. } => ConnectFailure::Unreachable,
            Error::HostKeyUnknown { .. }
            | Error::HostKeyChanged { .. }
            | Error::HostKeyRevoked { .. }
            | Error::KnownHosts { .. } => ConnectFailure::HostKeyRefused,
            Error::Auth { .. } | Error::Key { .. } => ConnectFailure::AuthFailed,
            _ => return None,
        })
    }

    /// The message without its leading `HOST: `, for a line that names the host already.
    pub fn message_on(&self, host: &str) -> String {
        let text = self.to_string();
        match text.strip_prefix(host).and_then(|t| t.strip_prefix(": ")) {
            Some(rest) => rest.to_string(),
            None => text,
        }
    }

    /// What the user can do about it.
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            Error::Config(_) => "fix the config file; nothing was changed on any host".into(),
            Error::Connect { source, .. } => match source.kind() {
                std::io::ErrorKind::ConnectionRefused => {
                    "is sshd running there, and are `address` and `port` right?".into()
                }
                _ => "check `address`, `port` and the network path to the host".into(),
            },
            Error::ConnectTimeout { .. } => {
                "check the address and firewall, or raise `connect_timeout`".into()
            }
            Error::ForwardingForbidden { .. } => "allow it for this user (as root on the host: `AllowTcpForwarding local` in /etc/ssh/sshd_config, then `systemctl reload ssh`), or check health with `health.command` instead (e.g. `curl -fsS http://127.0.0.1:PORT/healthz`), which needs no forwarding".into(),
            Error::HostKeyUnknown {
                known_hosts,
                line_to_add,
                ..
            } => format!(
                "verify the fingerprint with the host's owner (ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub on the host), then add this line to {}:\n  {line_to_add}\nor set host_key_policy = \"accept-new\" to record keys of new hosts on first use",
                known_hosts.display()
            ),
            Error::HostKeyChanged {
                known_hosts, line, ..
            } => format!(
                "if the change is expected (host reinstalled), remove line {line} of {} (ssh-keygen -R HOST -f FILE) and verify the new key; otherwise investigate before connecting",
                known_hosts.display()
            ),
            Error::HostKeyRevoked { .. } => {
                "this key was revoked on purpose; do not connect".into()
            }
            Error::HostCertInvalid { .. } => {
                "ssh refuses it too: have the host's owner renew its certificate (ssh-keygen -s CA -h -n NAME -V ...), or remove the @cert-authority line to judge its plain key".into()
            }
            Error::KnownHosts { .. } => {
                "fix or remove the known_hosts file, or point `known_hosts` at another".into()
            }
            Error::Auth { user, .. } => format!(
                "is the public key in ~{user}/.ssh/authorized_keys on the host? set `identity` to the right key, or load it into ssh-agent"
            ),
            Error::Key { .. } => {
                "check `identity`; for an encrypted key set FERRY_KEY_PASSPHRASE or use ssh-agent"
                    .into()
            }
            Error::ConnectionLost { host, .. } => format!(
                "what was under way on {host} may or may not have finished there; check the network path and that sshd is up on {host}, then run the same ferry command again (`ferry status` shows where the host stands)"
            ),
            Error::Command { .. } => return None,
            _ => return None,
        })
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Local(e.to_string())
    }
}
