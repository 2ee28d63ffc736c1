//! ferry: deploy services to Linux hosts as systemd user services over SSH and SFTP.
//!
//! The flow reads from the file names: `config` -> `plan` -> (`ssh`, `sftp`, `systemd` commands)
//! -> `report`. Pure modules (`config`, `plan`, `release`, `systemd`, `shell`, `known_hosts`,
//! `journal`) have no I/O and are unit-tested; the rest are tested against a real remote.

pub mod cli;
pub mod commands;
pub mod config;
pub mod digest;
pub mod elf;
pub mod error;
pub mod exit;
pub mod fault;
pub mod human;
pub mod outcome;
pub mod paths;
pub mod plan;
pub mod prepare;
pub mod release;
pub mod report;
pub mod session;
pub mod shell;
pub mod systemd;
pub mod transport;

use crate::cli::{Cli, Command};
use crate::commands::{
    Context, deploy, doctor, exec, init, interrupt, logs, man, releases, rollback, status, units,
};
use crate::error::Error;
use crate::exit::Exit;
use crate::report::{Format, Reporter};

/// Parse the command line, run, and return the exit code.
pub fn main() -> Exit {
    // `COMPLETE=SHELL ferry ...`: a completion request (or the shell's registration) answered
    // on stdout, then exit; otherwise nothing happens here.
    clap_complete::CompleteEnv::with_factory(cli::command).complete();
    let cli = match cli::parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() {
                Exit::Usage
            } else {
                Exit::Ok
            };
            let _ = e.print();
            return code;
        }
    };
    init_tracing(cli.verbose, cli.quiet);
    let format = match cli.output {
        cli::OutputFormat::Human => Format::Human,
        cli::OutputFormat::Json => Format::Json,
    };
    let reporter = std::sync::Arc::new(Reporter::new(format, cli.quiet, cli.verbose > 0));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    // SIGINT/SIGTERM during a deploy or rollback: see `commands::interrupt`.
    let guarded = match &cli.command {
        Command::Deploy(a) => Some((interrupt::Guarded::Deploy, a.dry_run)),
        Command::Promote(a) => Some((interrupt::Guarded::Promote, a.dry_run)),
        Command::Rollback(_) => Some((interrupt::Guarded::Rollback, false)),
        _ => None,
    };
    let result = runtime.block_on(async {
        match guarded {
            Some((what, dry_run)) => {
                interrupt::guard(run(cli, &reporter), what, dry_run, &reporter).await
            }
            None => run(cli, &reporter).await,
        }
    });
    if reporter.tally().is_interrupted() {
        // Host tasks parked after the signal: do not wait for them.
        runtime.shutdown_background();
    }
    match result {
        Ok(code) => code,
        Err(e) => {
            if !matches!(e, Error::Reported { .. } | Error::Interrupted) {
                reporter.error(&e);
            }
            e.exit_code()
        }
    }
}

fn init_tracing(verbose: u8, quiet: bool) {
    use tracing_subscriber::filter::Targets;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let default = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "ferry=warn",
        (false, 1) => "ferry=debug",
        (false, _) => "ferry=trace,russh=debug",
    };
    // RUST_LOG as `LEVEL` or `TARGET=LEVEL,...` (no span or field filters: that would need
    // env-filter and its regex engine); one that does not parse is ignored.
    let filter: Targets = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| default.parse().expect("valid default filter"));
    // Colours only on a terminal and never with NO_COLOR, like the rest of ferry's stderr.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .with_target(verbose > 1)
        .without_time();
    tracing_subscriber::registry().with(fmt).with(filter).init();
}

/// Run a parsed command line: each subcommand is `commands::NAME::run(args, &Context)`.
pub async fn run(cli: Cli, reporter: &std::sync::Arc<Reporter>) -> Result<Exit, Error> {
    cli::refuse_idle_globals(&cli)?;
    let ctx = Context::new(&cli, reporter.clone());
    match cli.command {
        Command::Deploy(args) => deploy::run(args, &ctx).await,
        Command::Logs(args) => logs::run(args, &ctx).await,
        Command::Status(args) => status::run(args, &ctx).await,
        Command::Doctor(args) => doctor::run(args, &ctx).await,
        Command::Rollback(args) => rollback::run(args, &ctx).await,
        Command::Promote(args) => deploy::command::promote(args, &ctx).await,
        Command::Releases(args) => releases::run(args, &ctx).await,
        Command::Units(args) => units::run(args, &ctx),
        Command::Exec(args) => exec::run(args, &ctx).await,
        Command::Init(args) => init::run(args, &ctx),
        Command::Completions(args) => commands::completions::run(args, &ctx),
        Command::Man(args) => man::run(args, &ctx),
    }
}
