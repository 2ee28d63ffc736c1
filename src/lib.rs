//! ferry: deploy services to Linux hosts as systemd user services over SSH and SFTP.
//!
//! The flow reads from the file names: `config` -> `plan` -> (`ssh`, `sftp`, `systemd` commands)
//! -> `report`. Pure modules (`config`, `plan`, `release`, `systemd`, `shell`, `known_hosts`,
//! `journal`) have no I/O and are unit-tested; the rest are tested against a real remote.

pub mod cli;
pub mod config;
pub mod doctor;
pub mod error;
pub mod journal;
pub mod known_hosts;
pub mod logs;
pub mod report;
pub mod shell;
pub mod ssh;
pub mod status;
pub mod systemd;

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::error::{Error, exit};
use crate::report::{Format, Reporter};

/// Parse the command line, run, and return the exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { exit::USAGE } else { exit::OK };
            let _ = e.print();
            return code;
        }
    };
    init_tracing(cli.verbose, cli.quiet);
    let format = match cli.output {
        cli::OutputFormat::Human => Format::Human,
        cli::OutputFormat::Json => Format::Json,
    };
    let reporter = Reporter::new(format, cli.quiet, cli.verbose > 0);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(run(cli, &reporter)) {
        Ok(code) => code,
        Err(e) => {
            if !matches!(e, Error::Failed { .. }) {
                reporter.error(&e);
            }
            e.exit_code()
        }
    }
}

fn init_tracing(verbose: u8, quiet: bool) {
    use tracing_subscriber::EnvFilter;
    let default = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "ferry=warn",
        (false, 1) => "ferry=debug",
        (false, _) => "ferry=trace,russh=debug",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(verbose > 1)
        .without_time()
        .init();
}

/// Run a parsed command line.
pub async fn run(cli: Cli, reporter: &Reporter) -> Result<i32, Error> {
    let config_path = cli::config_path(&cli);
    match cli.command {
        Command::Doctor(args) => {
            let config = config::load(&config_path)?;
            let hosts: Vec<_> = config
                .select_hosts(&args.filter.hosts)
                .map_err(Error::Usage)?
                .into_iter()
                .cloned()
                .collect();
            if hosts.is_empty() {
                return Err(Error::Usage(format!(
                    "no hosts in {}: add a [hosts.NAME] table",
                    config_path.display()
                )));
            }
            let ok = doctor::run(hosts, reporter).await;
            Ok(if ok { exit::OK } else { exit::FAILED })
        }
        Command::Deploy(_) => not_yet("deploy", 3),
        Command::Logs(args) => logs::command(&config_path, args, reporter).await,
        Command::Status(args) => status::command(&config_path, args, reporter).await,
        Command::Rollback(_) => not_yet("rollback", 5),
        Command::Releases(_) => not_yet("releases", 5),
    }
}

fn not_yet(command: &str, issue: u32) -> Result<i32, Error> {
    Err(Error::Usage(format!(
        "`ferry {command}` is not implemented yet (issue #{issue}); nothing was done"
    )))
}
