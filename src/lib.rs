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

use clap::Parser;

use crate::cli::{Cli, Command, completions};
use crate::commands::{deploy, doctor, exec, init, logs, releases, rollback, status, targets};
use crate::error::Error;
use crate::report::{Format, Reporter};
use crate::session::unit_check;

/// Parse the command line, run, and return the exit code.
pub fn main() -> exit::Exit {
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
    let interrupted_note = match cli.command {
        Command::Deploy(_) => Some(
            "interrupted: hosts not yet switched keep their current release; a host already switched reverts to its previous release by itself within confirm_timeout; `ferry deploy --retry-failed` deploys to the hosts that were not done",
        ),
        Command::Rollback(_) => Some(
            "interrupted: a host may be left between releases; check with `ferry status` and run the rollback again",
        ),
        _ => None,
    };
    let result = runtime.block_on(async {
        let Some(note) = interrupted_note else {
            return run(cli, &reporter).await;
        };
        // Ctrl-C during a deploy: say what state the hosts are in, then exit 130. Whatever was
        // not activated yet is untouched; an activated, unconfirmed release is reverted by the
        // host's self-revert timer; the lock dies with the connection.
        tokio::select! {
            r = run(cli, &reporter) => r,
            _ = tokio::signal::ctrl_c() => {
                reporter.warn(None, note);
                Err(Error::Interrupted)
            }
        }
    });
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
    use tracing_subscriber::EnvFilter;
    let default = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "ferry=warn",
        (false, 1) => "ferry=debug",
        (false, _) => "ferry=trace,russh=debug",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    // Colours only on a terminal and never with NO_COLOR, like the rest of ferry's stderr.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .with_target(verbose > 1)
        .without_time()
        .init();
}

/// Run a parsed command line.
pub async fn run(cli: Cli, reporter: &std::sync::Arc<Reporter>) -> Result<exit::Exit, Error> {
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
