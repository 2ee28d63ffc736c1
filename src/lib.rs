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

use clap::Parser;

use crate::cli::{Cli, Command, completions};
use crate::commands::{
    deploy, doctor, exec, init, interrupt, logs, releases, rollback, status, targets,
};
use crate::error::{Error, exit};
use crate::report::{Format, Reporter};
use crate::session::unit_check;

/// Parse the command line, run, and return the exit code.
pub fn main() -> i32 {
    // `COMPLETE=SHELL ferry ...`: a completion request (or the shell's registration) answered
    // on stdout, then exit; otherwise nothing happens here.
    clap_complete::CompleteEnv::with_factory(<Cli as clap::CommandFactory>::command).complete();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
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

/// Run a parsed command line.
pub async fn run(cli: Cli, reporter: &std::sync::Arc<Reporter>) -> Result<i32, Error> {
    let config_path = cli::config_path(&cli);
    cli::refuse_idle_globals(&cli)?;
    let hosts = cli::selected_hosts(&cli);
    match cli.command {
        Command::Doctor(args) => {
            let config = config::load_for_hosts(&config_path)?;
            let hosts = targets::hosts(&config, &hosts)?;
            let fix = match (args.fix, args.sudo) {
                (false, _) => doctor::Fix::No,
                (true, false) => doctor::Fix::Print,
                (true, true) => doctor::Fix::Sudo,
            };
            Ok(doctor::run(hosts, fix, reporter).await)
        }
        Command::Deploy(args) => {
            let config = config::load(&config_path)?;
            let opts = deploy::Options {
                dry_run: args.dry_run,
                no_rollback: args.no_rollback,
                lock_wait: args.lock_wait,
                parallel: args.parallel as usize,
                retry_failed: args.retry_failed,
                rollback_all_on_failure: args.rollback_all_on_failure,
                force: args.force,
                no_switch: args.no_switch,
                allow_no_linger: args.allow_no_linger,
            };
            // ferry's lints of the units, before any connection (lint = "deny": exit 2).
            let named: Vec<&config::Service> = config
                .services
                .values()
                .filter(|s| args.services.is_empty() || args.services.contains(&s.name))
                .collect();
            unit_check::lint_local(&named, reporter)?;
            deploy::run(&config, &args.services, &hosts, opts, reporter.clone()).await
        }
        Command::Logs(args) => {
            let opts = logs::Options {
                hosts: hosts.clone(),
                ..args.into()
            };
            logs::command(&config_path, opts, reporter).await
        }
        Command::Status(args) => {
            let opts = status::Options {
                services: args.services,
                hosts: hosts.clone(),
            };
            let config = config::load_for_hosts(&config_path)?;
            status::command(&config, &opts, reporter).await
        }
        Command::Rollback(args) => {
            let config = config::load_for_hosts(&config_path)?;
            let opts = rollback::Options {
                to: args.to,
                lock_wait: args.lock_wait,
            };
            let service = targets::the_service(&config, args.service.as_deref())?;
            rollback::run(&config, &service, &hosts, opts, reporter.clone()).await
        }
        Command::Promote(args) => {
            let config = config::load_for_hosts(&config_path)?;
            let opts = deploy::Options {
                dry_run: args.dry_run,
                no_rollback: false,
                lock_wait: args.lock_wait,
                parallel: args.parallel as usize,
                retry_failed: false,
                rollback_all_on_failure: args.rollback_all_on_failure,
                force: false,
                no_switch: false,
                allow_no_linger: false,
            };
            let service = targets::the_service(&config, args.service.as_deref())?;
            deploy::promote::run(&config, &service, &hosts, opts, reporter.clone()).await
        }
        Command::Units(args) => {
            let config = config::load(&config_path)?;
            let name = targets::the_service(&config, args.service.as_deref())?;
            let service = targets::services(&config, std::slice::from_ref(&name))?;
            let texts = unit_check::unit_texts(&service[0]);
            if texts.is_empty() {
                reporter.warn(
                    None,
                    &format!(
                        "service {} installs no unit files: list them in `units` or add a [services.{}.run] table",
                        name, name
                    ),
                );
            }
            for (unit, content, from) in texts {
                reporter.emit(&report::units::UnitFile {
                    kind: "unit-file",
                    service: name.clone(),
                    name: unit,
                    from,
                    content,
                });
            }
            unit_check::lint_local(&[&service[0]], reporter)?;
            Ok(exit::OK)
        }
        Command::Exec(args) => {
            let config = config::load_for_hosts(&config_path)?;
            let opts = exec::Options {
                service: targets::the_service(&config, args.service.as_deref())?,
                hosts: hosts.clone(),
                parallel: args.parallel as usize,
                command: args.command,
            };
            exec::run(&config, opts, reporter.clone()).await
        }
        Command::Releases(args) => {
            let config = config::load_for_hosts(&config_path)?;
            releases::run(&config, &args.services, &hosts, reporter.clone()).await
        }
        Command::Init(args) => {
            let opts = init::Options {
                config: config_path,
                service: args.service,
                binary: args.binary,
                host: args.host,
            };
            init::run(&opts, reporter)
        }
        Command::Completions(args) => {
            report::print_raw(&completions::completions(args.shell));
            Ok(error::exit::OK)
        }
        Command::Man(args) => {
            match &args.out_dir {
                Some(dir) => {
                    for file in completions::write_man_pages(dir)? {
                        reporter.progress(None, &format!("wrote {}", file.display()));
                    }
                }
                None => report::print_raw(&completions::man(args.command.as_deref())?),
            }
            Ok(error::exit::OK)
        }
    }
}
