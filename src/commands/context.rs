//! What every subcommand is given besides its own arguments: the reporter (which also holds
//! the output mode), the config file's path and the hosts selected with `-H`. Each
//! subcommand is `run(args, &Context) -> Result<Exit>`; it loads the config it needs itself,
//! so that commands that need none (init, completions, man) never read it.

use std::path::PathBuf;
use std::sync::Arc;

use crate::cli::{self, Cli};
use crate::config::{self, Config};
use crate::error::Result;
use crate::report::Reporter;

/// The part of a command line every subcommand shares.
pub struct Context {
    /// Where everything shown goes: human text or JSON Lines, quiet or verbose.
    pub reporter: Arc<Reporter>,
    /// `--config`, `FERRY_CONFIG`, or ./deploy.toml.
    pub config_path: PathBuf,
    /// The hosts or groups given with `-H`, before and after the subcommand; empty: all.
    pub hosts: Vec<String>,
}

impl Context {
    /// The context of a parsed command line.
    pub fn new(cli: &Cli, reporter: Arc<Reporter>) -> Context {
        Context {
            reporter,
            config_path: cli::config_path(cli),
            hosts: cli::selected_hosts(cli),
        }
    }

    /// The whole config, local files checked (what a deploy uploads, the units it installs).
    pub fn config(&self) -> Result<Config> {
        Ok(config::load(&self.config_path)?)
    }

    /// The config for commands that only talk to hosts (local files not needed).
    pub fn config_for_hosts(&self) -> Result<Config> {
        Ok(config::load_for_hosts(&self.config_path)?)
    }
}
