//! The local environment a config is resolved in: the home directory, the local user name and
//! the OpenSSH client config (resolved by `config::ssh`).

use std::path::{Path, PathBuf};

use crate::config::ssh::Context;

// ---------------------------------------------------------------------------------------------

/// The environment the config is resolved in: where `~` points and who the local user is.
#[derive(Debug, Clone)]
pub struct Env {
    pub home: Option<PathBuf>,
    pub local_user: Option<String>,
    /// Where the OpenSSH client config is read from (~/.ssh/config, /etc/ssh/ssh_config) and
    /// the local side its tokens expand to. None: no OpenSSH config is used.
    pub ssh_config: Option<Context>,
}

impl Env {
    /// The real environment of this process. The local user is the passwd name of this
    /// process's uid, as ssh takes it (so an unset $USER, as under cron, is fine), else $USER or
    /// $LOGNAME.
    pub fn current() -> Env {
        let ssh_config = Context::current();
        Env {
            home: std::env::var_os("HOME").map(PathBuf::from),
            local_user: ssh_config
                .as_ref()
                .map(|c| c.local_user.clone())
                .or_else(|| std::env::var("USER").ok())
                .or_else(|| std::env::var("LOGNAME").ok())
                .filter(|u| !u.is_empty()),
            ssh_config,
        }
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
