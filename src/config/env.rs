//! The local environment a config is resolved in: the home directory, the local user name and
//! the OpenSSH client config.

use std::path::{Path, PathBuf};

// ---------------------------------------------------------------------------------------------

/// The environment the config is resolved in: where `~` points and who the local user is.
#[derive(Debug, Clone)]
pub struct Env {
    pub home: Option<PathBuf>,
    pub local_user: Option<String>,
    /// The user's OpenSSH client config (~/.ssh/config), when it exists.
    pub ssh_config: Option<ssh2_config::SshConfig>,
}

impl Env {
    /// The real environment of this process.
    pub fn current() -> Result<Env, SshConfigError> {
        let home = std::env::var_os("HOME").map(PathBuf::from);
        let ssh_config = match &home {
            Some(h) => read_ssh_config(h)?,
            None => None,
        };
        Ok(Env {
            home,
            local_user: std::env::var("USER")
                .ok()
                .or_else(|| std::env::var("LOGNAME").ok())
                .filter(|u| !u.is_empty()),
            ssh_config,
        })
    }

    pub(crate) fn expand(&self, path: &str, base: &Path) -> Result<PathBuf, String> {
        if path == "~" || path.starts_with("~/") {
            let home = self
                .home
                .as_ref()
                .ok_or("`~` used but HOME is not set: write the path in full")?;
            Ok(home.join(path.trim_start_matches('~').trim_start_matches('/')))
        } else {
            Ok(base.join(path))
        }
    }
}

/// The user's `~/.ssh/config` could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SshConfigError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    Parse { path: PathBuf, message: String },
}

/// `~/.ssh/config`, as OpenSSH's client reads it (HostName, User, Port, IdentityFile,
/// ConnectTimeout are used); None when there is none.
pub fn read_ssh_config(home: &Path) -> Result<Option<ssh2_config::SshConfig>, SshConfigError> {
    use ssh2_config::{ParseRule, SshConfig};
    let path = home.join(".ssh").join("config");
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(SshConfigError::Read { path, source }),
    };
    SshConfig::default()
        .home_dir(home)
        .parse(
            &mut std::io::BufReader::new(file),
            ParseRule::ALLOW_UNKNOWN_FIELDS | ParseRule::ALLOW_UNSUPPORTED_FIELDS,
        )
        .map(Some)
        .map_err(|e| SshConfigError::Parse {
            message: e.to_string(),
            path,
        })
}
