//! The OpenSSH client config (~/.ssh/config, then /etc/ssh/ssh_config) resolved for one host
//! exactly as OpenSSH 9.2's `ssh -G HOST` resolves it: `Host` and `Match` (host, originalhost,
//! user, localuser, exec, all, final, canonical; `!` negation), the first value of each option
//! winning, `Include` (globs, relative to ~/.ssh or /etc/ssh, read in place), a second pass for
//! `Match final`, the `%` tokens and `${ENV}`. The result is keyed like `ssh -G` prints it
//! (lowercase keyword -> values, multi-valued options keeping every value in order).
//!
//! Every keyword OpenSSH accepts is accepted (`keywords.rs`); an unknown one is an error with
//! file:line, as ssh's "Bad configuration option" (unless `IgnoreUnknown` covers it). The
//! values of the options ferry uses are checked on every line; those ferry has no use for are
//! kept as written.
//!
//! **Built in, not `ssh -G`.** ferry always resolves with this parser and never asks the
//! installed `ssh -G`: one resolution for every host costs no process (a deploy to 50 hosts
//! would start 50), works where no OpenSSH client is installed (minimal CI images,
//! containers), gives the same answer whatever client version is installed, and lets deploy.toml's
//! explicit settings sit above it the way `-o` does (validate::host applies them first).
//! `ssh -G` is the oracle of the differential suite (tests/ssh_config_oracle.rs), which runs it
//! on a generated corpus. CanonicalizeHostname looks names up as ssh does (`canonical.rs`).
//! Not done as ssh does: CanonicalizePermittedCNAMEs (refused while canonicalizing), and
//! `Match exec` commands run with `$SHELL -c` (else /bin/sh) like ssh, but with ferry's
//! environment.
//!
//! Pure apart from [`World`], which reads files, expands globs, runs `Match exec` and looks
//! names up.

mod canonical;
mod keywords;
mod parse;
mod resolve;
pub mod tokens;
mod values;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use tokens::Tokens;
pub use values::{COMPARED, DEFAULT_IDENTITIES, Jump, jumps, seconds};

/// The local side a config is resolved on.
#[derive(Debug, Clone)]
pub struct Context {
    /// The files in order, each with the directory its relative Includes start from.
    pub files: Vec<(PathBuf, PathBuf)>,
    /// The local user's home (OpenSSH takes it from the passwd entry).
    pub home: PathBuf,
    /// The local user's name (the passwd name, as ssh takes it; not $USER).
    pub local_user: String,
    /// The local host name (%l).
    pub local_host: String,
    pub uid: u32,
    /// Environment variables for `${NAME}`.
    pub env: BTreeMap<String, String>,
}

impl Context {
    /// ~/.ssh/config then /etc/ssh/ssh_config, for the given user.
    pub fn standard(home: PathBuf, local_user: String, local_host: String, uid: u32) -> Context {
        Context {
            files: vec![
                (home.join(".ssh/config"), home.join(".ssh")),
                ("/etc/ssh/ssh_config".into(), "/etc/ssh".into()),
            ],
            env: std::env::vars().collect(),
            home,
            local_user,
            local_host,
            uid,
        }
    }

    /// This process's user (the passwd name of its uid, else $USER) and host. The home is
    /// $HOME when set (unlike ssh, which takes the passwd entry's: ferry's own `~` in
    /// deploy.toml is $HOME, and both must agree), else the passwd entry's.
    pub fn current() -> Option<Context> {
        use std::os::unix::fs::MetadataExt;
        let uid = std::fs::metadata("/proc/self").map(|m| m.uid()).ok()?;
        let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
        let entry = passwd.lines().find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 6 && f[2] == uid.to_string()).then(|| (f[0].to_string(), f[5].to_string()))
        });
        let (user, home) = match entry {
            Some((u, h)) => (u, h),
            None => (std::env::var("USER").ok()?, std::env::var("HOME").ok()?),
        };
        let local_host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_default();
        let home = std::env::var("HOME")
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or(home);
        Some(Context::standard(home.into(), user, local_host, uid))
    }

    fn tokens(&self) -> Tokens {
        Tokens {
            local_user: self.local_user.clone(),
            home: self.home.to_string_lossy().into_owned(),
            local_host: self.local_host.clone(),
            uid: self.uid,
            ..Tokens::default()
        }
    }

    /// The options for `host` (the name as given).
    pub fn resolve(&self, host: &str, world: &dyn World) -> Result<Resolved, SshConfigError> {
        resolve::resolve(self, world, host, None, None)
    }

    /// The options for a jump host written `[user@]host[:port]`, as the ssh that OpenSSH runs
    /// for the hop (`ssh -l user -p port host`) resolves them: the hop's own user and port are
    /// taken before the files, so their `User`/`Port` lines do not change them and
    /// `Match user` and `%r`/`%p` see them.
    pub fn resolve_hop(&self, hop: &Jump, world: &dyn World) -> Result<Resolved, SshConfigError> {
        resolve::resolve(self, world, &hop.host, hop.user.as_deref(), hop.port)
    }
}

/// What resolution needs from the system.
pub trait World {
    fn read(&self, path: &Path) -> std::io::Result<String>;
    /// The files a glob pattern names, sorted.
    fn glob(&self, pattern: &str) -> Vec<PathBuf>;
    /// Run a `Match exec` command; true when it exits 0.
    fn exec(&self, command: &str) -> bool;
    /// The addresses a name resolves to (CanonicalizeHostname); empty when it does not.
    fn lookup(&self, name: &str) -> Vec<std::net::IpAddr>;
}

/// The real file system and shell.
pub struct System;

impl World for System {
    fn read(&self, path: &Path) -> std::io::Result<String> {
        std::fs::read_to_string(path)
    }
    fn glob(&self, pattern: &str) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = glob::glob(pattern)
            .map(|g| g.filter_map(|p| p.ok()).collect())
            .unwrap_or_default();
        v.sort();
        v
    }
    fn exec(&self, command: &str) -> bool {
        let shell = std::env::var("SHELL").unwrap_or_else(|_| "/bin/sh".into());
        std::process::Command::new(shell)
            .arg("-c")
            .arg(command)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }
    fn lookup(&self, name: &str) -> Vec<std::net::IpAddr> {
        use std::net::ToSocketAddrs;
        (name, 0)
            .to_socket_addrs()
            .map(|a| a.map(|a| a.ip()).collect())
            .unwrap_or_default()
    }
}

/// The options for one host, as `ssh -G` prints them (defaults filled in).
#[derive(Debug, Clone)]
pub struct Resolved {
    pub values: BTreeMap<String, Vec<String>>,
    /// Where each option set in a file came from (file, line).
    pub origins: BTreeMap<String, (PathBuf, usize)>,
    pub tokens: Tokens,
    env: BTreeMap<String, String>,
}

impl Resolved {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values
            .get(key)
            .and_then(|v| v.first())
            .map(String::as_str)
    }

    pub fn all(&self, key: &str) -> &[String] {
        self.values.get(key).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Set by a file (not a default).
    pub fn is_set(&self, key: &str) -> bool {
        self.origins.contains_key(key)
    }

    /// ProxyCommand with its tokens expanded; None when not set or `none`.
    pub fn proxy_command(&self) -> Result<Option<String>, SshConfigError> {
        match self.get("proxycommand") {
            None | Some("none") => Ok(None),
            Some(c) => tokens::proxy_command(c, &self.tokens)
                .map(Some)
                .map_err(|m| self.error("proxycommand", m)),
        }
    }

    /// A path option's values with `~`, tokens and `${ENV}` expanded as ssh does at use.
    pub fn paths(&self, key: &str) -> Result<Vec<PathBuf>, SshConfigError> {
        self.all(key)
            .iter()
            .map(|v| {
                tokens::path(v, &self.tokens, &self.env)
                    .map(PathBuf::from)
                    .map_err(|m| self.error(key, m))
            })
            .collect()
    }

    /// An error about an option, located where it was set.
    pub fn error(&self, key: &str, message: String) -> SshConfigError {
        match self.origins.get(key) {
            Some((f, l)) => SshConfigError::at(f, *l, key, message),
            None => SshConfigError::at(Path::new("ssh_config"), 0, key, message),
        }
    }

    /// The compared options as `ssh -G` prints them, one `key value` line each.
    pub fn g_lines(&self) -> Vec<String> {
        values::g_lines(&self.values)
    }
}

/// An ssh_config file could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SshConfigError {
    #[error("cannot read {}: {message}", path.display())]
    Read { path: PathBuf, message: String },
    #[error("{}:{line}: {option}: {message}", path.display())]
    Option {
        path: PathBuf,
        line: usize,
        option: String,
        message: String,
    },
}

impl SshConfigError {
    pub(crate) fn at(path: &Path, line: usize, option: &str, message: String) -> Self {
        SshConfigError::Option {
            path: path.to_path_buf(),
            line,
            option: option.to_string(),
            message,
        }
    }
    pub(crate) fn read(path: &Path, e: std::io::Error) -> Self {
        SshConfigError::Read {
            path: path.to_path_buf(),
            message: e.to_string(),
        }
    }
}
