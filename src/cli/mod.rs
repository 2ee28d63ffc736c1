//! Command-line arguments (clap derive types only; nothing below this module knows clap).

pub mod completions;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// What `ferry --help` and ferry(1) say about the environment, files and exit codes.
const ROOT_AFTER_LONG_HELP: &str = "\
Exit codes:
  0    ok (or nothing to do)
  1    failed on a host (and stayed on the new release, or nothing to roll back to)
  2    config or usage error: nothing on a host was changed
  3    a host could not be reached, its host key was refused, or the login failed
  4    failed and rolled back: the host is on its previous release
  5    the service's lock is held by another deploy
  130  interrupted (Ctrl-C)
  143  stopped by SIGTERM

Environment:
  FERRY_CONFIG          the config file (as --config)
  FERRY_KEY_PASSPHRASE  the passphrase of an encrypted identity key (never printed)
  SSH_AUTH_SOCK         the ssh-agent ferry asks for keys
  NO_COLOR              no colours on stderr when set and not empty
  RUST_LOG              logging filter (overrides -v/-q), e.g. ferry=debug

Files:
  deploy.toml           hosts and services (see deploy.example.toml)
  ~/.ssh/config         read as `ssh` reads it; deploy.toml's settings win over it
  ~/.ssh/known_hosts    host keys are verified against it (host_key_policy, known_hosts)
  .ferry/state.json     the last rollout, for `ferry deploy --retry-failed`
  On each host: ~/.local/share/ferry/SERVICE/ (releases, current, history.jsonl) and the
  units in ~/.config/systemd/user.";

/// Exit codes of the commands that act on hosts and only report (status, releases, logs).
const REPORT_EXIT: &str = "Exit codes: 0 ok, 1 a unit is not up or a host reported a failure, \
    2 config or usage error, 3 a host could not be reached or the login failed.";

#[derive(Debug, Parser)]
#[command(
    name = "ferry",
    version,
    about = "Deploy services to Linux hosts as systemd user services, over SSH and SFTP",
    long_about = "Deploy services to Linux hosts as systemd user services, over SSH and SFTP.\n\n\
        ferry uploads a release's files into ~/.local/share/ferry/SERVICE/releases/ID on each host, \
        installs its unit files into ~/.config/systemd/user, switches the `current` symlink, \
        restarts the units with `systemctl --user` and waits until they are really up.\n\n\
        Hosts and services are described in deploy.toml (see deploy.example.toml).",
    after_help = "Exit codes: 0 ok, 1 failed on a host, 2 config or usage error, 3 connection or \
        authentication failure, 4 failed and rolled back, 5 lock held by another deploy, 130 interrupted (SIGINT), 143 stopped (SIGTERM).",
    after_long_help = ROOT_AFTER_LONG_HELP
)]
pub struct Cli {
    /// Config file.
    #[arg(
        long,
        short = 'c',
        global = true,
        env = "FERRY_CONFIG",
        default_value = "deploy.toml"
    )]
    pub config: PathBuf,

    /// More logging on stderr (-v debug, -vv trace). RUST_LOG overrides.
    #[arg(long, short = 'v', global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Only errors on stderr; no progress.
    #[arg(long, short = 'q', global = true, conflicts_with = "verbose")]
    pub quiet: bool,

    /// Format of what is printed on stdout.
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Human)]
    pub output: OutputFormat,

    /// Only these hosts or groups (repeatable), given before the subcommand (`ferry -H web
    /// status`); the same as `-H` after it.
    #[arg(long = "host", short = 'H', value_name = "NAME", add = clap_complete::ArgValueCandidates::new(completions::hosts))]
    pub hosts: Vec<String>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Text for people; tables and colours on a terminal.
    Human,
    /// JSON Lines: one JSON object per line, nothing else on stdout.
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Upload a release, install its units, restart them and verify that they are up.
    #[command(
        after_help = "Exit codes: 0 deployed (or already current and up), 1 failed on a host \
            (and stayed), 2 config or usage error (nothing changed), 3 a host could not be \
            reached or the login failed, 4 failed and rolled back to the previous release, \
            5 the lock is held by another deploy, 130 interrupted (SIGINT), 143 stopped (SIGTERM)."
    )]
    Deploy(DeployArgs),
    /// Show the journal of a service's units, on one host or many.
    #[command(after_help = REPORT_EXIT)]
    Logs(LogsArgs),
    /// Show the state of a service's units on each host (exit 0 only when all are up).
    #[command(after_help = REPORT_EXIT)]
    Status(StatusArgs),
    /// Check that each host is ready for ferry: reachable, host key, login, systemd version,
    /// user bus, user manager, lingering, journal and its storage, unit directory, cgroup
    /// delegation, unprivileged ports, the host's commands (flock, setsid, timeout, ...). Each failure or warning says how to fix it. Exit 0 when
    /// no check failed (warnings do not count), 3 when a host cannot be reached, else 1.
    ///
    /// One check changes the host: when ~/.config/systemd/user is missing, doctor creates it
    /// (as the deploy user; a deploy would create it too). Everything else only reads.
    #[command(
        after_help = "Exit codes: 0 no check failed (warnings do not count), 1 a check failed, \
            2 config or usage error, 3 a host could not be reached or the login failed."
    )]
    Doctor(DoctorArgs),
    /// Switch a service back to its previous release (or the one given with --to).
    #[command(
        after_help = "Exit codes: 0 switched back and up, 1 failed on a host, 2 config or usage \
            error (or no release to go back to), 3 a host could not be reached or the login \
            failed, 5 the lock is held by a deploy, 130 interrupted (SIGINT), 143 stopped (SIGTERM)."
    )]
    Rollback(RollbackArgs),
    /// Switch the hosts that hold a release staged by `ferry deploy --no-switch` to it: under
    /// the lock, as a rollout (canary, batches, max_fail), with the self-revert armed; judged
    /// by the checks it was staged with. A host whose current release changed since it was
    /// staged is refused (stage again), as is one with nothing staged.
    #[command(
        after_help = "Exit codes: 0 promoted (or --dry-run), 1 nothing staged, refused or failed \
            on a host, 2 config or usage error, 3 a host could not be reached or the login \
            failed, 4 failed and went back to the previous release, 5 the lock is held by \
            another deploy, 130 interrupted."
    )]
    Promote(PromoteArgs),
    /// List the releases of a service on each host, with the deploy history.
    #[command(after_help = REPORT_EXIT)]
    Releases(ReleasesArgs),
    /// Print the unit files a deploy of SERVICE installs (those generated from
    /// `[services.SERVICE.run]` included), to read them or eject them into files; lint them.
    Units(UnitsArgs),
    /// Run a command on a service's hosts, in the current release's directory, as the deploy user.
    #[command(
        long_about = "Run a command on a service's hosts as the deploy user, in the current release's \
            directory (~/.local/share/ferry/SERVICE/current) with its bin/ first on PATH and \
            FERRY_SERVICE and FERRY_RELEASE set.\n\n\
            The words after `--` are passed as they are (each quoted for the remote shell): use \
            `-- sh -c 'a | b'` for shell syntax. Output is printed line by line, prefixed by the \
            host; --output json prints one object per host with stdout, stderr and exit_status.\n\n\
            Exit: 0 when the command exited 0 on every host, 1 when it did not on one, 3 when a \
            host could not be reached."
    )]
    Exec(ExecArgs),
    /// Write a commented starter deploy.toml (at --config) and a unit file; never overwrites.
    Init(InitArgs),
    /// Print a shell completion script (bash, zsh, fish) on stdout.
    ///
    /// The script completes commands and options. To be offered the service and host names of
    /// deploy.toml too (`ferry logs <TAB>`, `-H <TAB>`), let ferry complete at each TAB
    /// instead: `source <(COMPLETE=bash ferry)` in ~/.bashrc, `source <(COMPLETE=zsh ferry)`
    /// in ~/.zshrc, `COMPLETE=fish ferry | source` in ~/.config/fish/config.fish. Names are
    /// read from --config on the line being completed, else FERRY_CONFIG, else ./deploy.toml.
    Completions(CompletionsArgs),
    /// Print the man page ferry(1), or ferry-COMMAND(1), in roff on stdout.
    Man(ManArgs),
}

#[derive(Debug, Args)]
pub struct UnitsArgs {
    /// The service whose units to print. Default: the config's only service.
    #[arg(add = clap_complete::ArgValueCandidates::new(completions::services))]
    pub service: Option<String>,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// A subcommand (e.g. `deploy`): its own page ferry-COMMAND(1). Default: ferry(1).
    #[arg(value_name = "COMMAND", conflicts_with = "out_dir")]
    pub command: Option<String>,
    /// Write every page (ferry.1 and ferry-COMMAND.1 for each command) into DIR instead, e.g.
    /// `ferry man --out-dir ~/.local/share/man/man1`.
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// The service's name (its directory on hosts, its unit NAME.service). Default: the name of
    /// the current directory.
    #[arg(long, value_name = "NAME")]
    pub service: Option<String>,
    /// The program to deploy (a local path). Default: target/release/NAME.
    #[arg(long, value_name = "PATH")]
    pub binary: Option<PathBuf>,
    /// The server: `[USER@]ADDRESS[:PORT]`. Default: a placeholder to edit.
    #[arg(long, value_name = "ADDRESS")]
    pub host: Option<String>,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: Shell,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Debug, Args, Clone, Default)]
pub struct HostFilter {
    /// Only these hosts or groups (repeatable). Default: every host (of the service, for
    /// commands that take one).
    #[arg(long = "host", short = 'H', value_name = "NAME", add = clap_complete::ArgValueCandidates::new(completions::hosts))]
    pub hosts: Vec<String>,
}

#[derive(Debug, Args)]
pub struct DeployArgs {
    /// Services to deploy. Default: every service in the config.
    #[arg(value_name = "SERVICE", add = clap_complete::ArgValueCandidates::new(completions::services))]
    pub services: Vec<String>,
    #[command(flatten)]
    pub filter: HostFilter,
    /// How many hosts to deploy to at once.
    #[arg(long, short = 'p', default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..))]
    pub parallel: u16,
    /// Connect and show what would change; change nothing.
    #[arg(long, short = 'n')]
    pub dry_run: bool,
    /// Leave a failed release in place instead of restoring the previous one.
    #[arg(long)]
    pub no_rollback: bool,
    /// Deploy a new release even when the same release is already current and up (by default
    /// that is a no-op: no new release, no restart).
    #[arg(long)]
    pub force: bool,
    /// Wait up to this long for another deploy's lock (e.g. "2m") instead of failing at once.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub lock_wait: Option<std::time::Duration>,
    /// Deploy only to the hosts that failed or were not reached in the last rollout of each
    /// service (recorded in .ferry/state.json next to the config).
    #[arg(long)]
    pub retry_failed: bool,
    /// When a rollout stops (a canary failed, or more than max_fail hosts), put every host it
    /// had switched back on its previous release.
    #[arg(long, conflicts_with = "no_rollback")]
    pub rollback_all_on_failure: bool,
    /// Stage the release and stop before the switch: upload, seal and check the unit files
    /// (blue/green: start the idle colour on it, verify and health-check it); the current
    /// release keeps serving. `ferry promote` switches to it later.
    #[arg(long)]
    pub no_switch: bool,
    /// Deploy to a login user that has no linger (refused by default: its services would stop
    /// when its last session ends, and so would the self-revert timer).
    #[arg(long)]
    pub allow_no_linger: bool,
}

#[derive(Debug, Args)]
pub struct PromoteArgs {
    /// The service to promote. Default: the config's only service.
    #[arg(add = clap_complete::ArgValueCandidates::new(completions::services))]
    pub service: Option<String>,
    #[command(flatten)]
    pub filter: HostFilter,
    /// How many hosts to switch at once.
    #[arg(long, short = 'p', default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..))]
    pub parallel: u16,
    /// Say what each host would switch to; change nothing.
    #[arg(long, short = 'n')]
    pub dry_run: bool,
    /// Wait up to this long for another deploy's lock (e.g. "2m") instead of failing at once.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub lock_wait: Option<std::time::Duration>,
    /// When the rollout stops (a canary failed, or more than max_fail hosts), put every host it
    /// had switched back on its previous release.
    #[arg(long)]
    pub rollback_all_on_failure: bool,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// The service whose hosts and current release to use. Default: the config's only
    /// service.
    #[arg(add = clap_complete::ArgValueCandidates::new(completions::services))]
    pub service: Option<String>,
    #[command(flatten)]
    pub filter: HostFilter,
    /// How many hosts to run the command on at once.
    #[arg(long, short = 'p', default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..))]
    pub parallel: u16,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The service whose units' journal to show. Default: the config's only service.
    #[arg(add = clap_complete::ArgValueCandidates::new(completions::services))]
    pub service: Option<String>,
    #[command(flatten)]
    pub filter: HostFilter,
    /// Keep printing new entries as they arrive.
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// Number of most recent entries to show (per host).
    #[arg(long, short = 'n', value_name = "N")]
    pub lines: Option<u64>,
    /// Entries on or newer than this (journalctl syntax: "2026-11-24 10:00", "-1h", "today").
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    pub since: Option<String>,
    /// Entries on or older than this (journalctl syntax).
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    pub until: Option<String>,
    /// Show this unit instead of the service's units (repeatable; any unit name).
    #[arg(long, short = 'u', value_name = "UNIT")]
    pub unit: Vec<String>,
    /// Only entries whose message matches this pattern (journalctl --grep).
    #[arg(long, short = 'g', value_name = "PATTERN")]
    pub grep: Option<String>,
    /// Entries since the service's last deploy on each host (its last `deploy` record in the
    /// host's history.jsonl), e.g. to attach to a failed CI job.
    #[arg(long, conflicts_with = "since")]
    pub since_deploy: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Services to show. Default: every service.
    #[arg(value_name = "SERVICE", add = clap_complete::ArgValueCandidates::new(completions::services))]
    pub services: Vec<String>,
    #[command(flatten)]
    pub filter: HostFilter,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    #[command(flatten)]
    pub filter: HostFilter,
    /// Print the exact root commands that fix what failed (nothing is run).
    #[arg(long)]
    pub fix: bool,
    /// With --fix: run those commands on the host through `sudo -n` (when the login may), and
    /// say what changed.
    #[arg(long, requires = "fix")]
    pub sudo: bool,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The service to roll back. Default: the config's only service.
    #[arg(add = clap_complete::ArgValueCandidates::new(completions::services))]
    pub service: Option<String>,
    /// The release to switch to. Default: the one before the current one.
    #[arg(long, value_name = "RELEASE_ID")]
    pub to: Option<String>,
    #[command(flatten)]
    pub filter: HostFilter,
    /// Wait up to this long for another deploy's lock.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub lock_wait: Option<std::time::Duration>,
}

#[derive(Debug, Args)]
pub struct ReleasesArgs {
    /// Services to list. Default: every service.
    #[arg(add = clap_complete::ArgValueCandidates::new(completions::services))]
    pub services: Vec<String>,
    #[command(flatten)]
    pub filter: HostFilter,
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (write e.g. \"30s\", \"2m\")"))
}

/// The hosts selected with `-H`, before and after the subcommand.
pub fn selected_hosts(cli: &Cli) -> Vec<String> {
    let after = match &cli.command {
        Command::Deploy(a) => &a.filter.hosts,
        Command::Logs(a) => &a.filter.hosts,
        Command::Status(a) => &a.filter.hosts,
        Command::Doctor(a) => &a.filter.hosts,
        Command::Rollback(a) => &a.filter.hosts,
        Command::Promote(a) => &a.filter.hosts,
        Command::Releases(a) => &a.filter.hosts,
        Command::Exec(a) => &a.filter.hosts,
        Command::Units(_) | Command::Init(_) | Command::Completions(_) | Command::Man(_) => {
            return cli.hosts.clone();
        }
    };
    let mut all = cli.hosts.clone();
    all.extend(after.iter().cloned());
    all
}

/// The global options each of these commands has no use for: parsed (and refused, see
/// [`refuse_idle_globals`] for `--output json`), but left out of their help, man pages and
/// completions. `init` keeps `--config` (where to write) and `-v`/`-q`; `man` keeps `-q`
/// (the `wrote` lines of `--out-dir`).
const IDLE_GLOBALS: [(&str, &[&str]); 3] = [
    ("init", &["output"]),
    ("completions", &["output", "config", "verbose", "quiet"]),
    ("man", &["output", "config", "verbose"]),
];

/// The command line as `--help`, the man pages and the completions show it (and as it is
/// parsed): [`Cli`]'s, without the global options a command has no use for.
pub fn command() -> clap::Command {
    hide_idle_globals(<Cli as clap::CommandFactory>::command())
}

/// `cmd` (from [`Cli`]) without the global options a command has no use for: each such
/// command gets a hidden copy of the option, which the global one then does not replace.
pub fn hide_idle_globals(mut cmd: clap::Command) -> clap::Command {
    for (sub, idle) in IDLE_GLOBALS {
        let copies: Vec<clap::Arg> = cmd
            .get_arguments()
            .filter(|a| idle.contains(&a.get_id().as_str()))
            .map(|a| a.clone().hide(true))
            .collect();
        cmd = cmd.mut_subcommand(sub, |s| s.args(copies));
    }
    cmd
}

/// Parse the process's arguments with [`command`].
pub fn parse() -> Result<Cli, clap::Error> {
    use clap::FromArgMatches;
    let mut cmd = command();
    let matches = cmd.try_get_matches_from_mut(std::env::args_os())?;
    Cli::from_arg_matches(&matches).map_err(|e| e.format(&mut cmd))
}

/// Global options that do nothing for the command given are refused, not silently ignored
/// (`ferry --output json init` would otherwise print text).
pub fn refuse_idle_globals(cli: &Cli) -> Result<(), crate::error::Error> {
    let name = match &cli.command {
        Command::Init(_) => "init",
        Command::Completions(_) => "completions",
        Command::Man(_) => "man",
        Command::Units(_) => "units",
        _ => return Ok(()),
    };
    let idle = if !cli.hosts.is_empty() {
        Some("-H/--host")
    } else if cli.output == OutputFormat::Json && name != "units" {
        Some("--output json")
    } else {
        None
    };
    match idle {
        Some(opt) => Err(crate::error::Error::Usage(format!(
            "{opt} does nothing for `ferry {name}`: drop it"
        ))),
        None => Ok(()),
    }
}

/// Where the config is: `--config`, `FERRY_CONFIG`, or ./deploy.toml.
pub fn config_path(cli: &Cli) -> PathBuf {
    cli.config.clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_deploy_flags() {
        let cli = Cli::try_parse_from([
            "ferry",
            "--output",
            "json",
            "deploy",
            "web",
            "--host",
            "a",
            "-H",
            "b",
            "--parallel",
            "3",
            "--dry-run",
            "--lock-wait",
            "1m",
        ])
        .unwrap();
        assert_eq!(cli.output, OutputFormat::Json);
        let Command::Deploy(d) = cli.command else {
            panic!()
        };
        assert_eq!(d.services, vec!["web"]);
        assert_eq!(d.filter.hosts, vec!["a", "b"]);
        assert_eq!(d.parallel, 3);
        assert!(d.dry_run);
        assert_eq!(d.lock_wait, Some(std::time::Duration::from_secs(60)));
    }

    #[test]
    fn logs_since_and_until_take_relative_times() {
        let cli = Cli::try_parse_from([
            "ferry", "logs", "demo", "--since", "-1m", "--until", "-10s", "-f",
        ])
        .unwrap();
        let Command::Logs(l) = cli.command else {
            panic!()
        };
        assert_eq!(l.since.as_deref(), Some("-1m"));
        assert_eq!(l.until.as_deref(), Some("-10s"));
        assert!(l.follow, "flags after a hyphen value still parse");
        let cli = Cli::try_parse_from(["ferry", "logs", "demo", "--since=-2h"]).unwrap();
        let Command::Logs(l) = cli.command else {
            panic!()
        };
        assert_eq!(l.since.as_deref(), Some("-2h"));
    }

    #[test]
    fn idle_globals_are_parsed_but_not_offered() {
        let mut cmd = command();
        cmd.build();
        let shown = |sub: &str, id: &str| {
            let sub = cmd.find_subcommand(sub).unwrap();
            let arg = sub.get_arguments().find(|a| a.get_id() == id);
            !arg.unwrap_or_else(|| panic!("{id}")).is_hide_set()
        };
        assert!(!shown("init", "output"));
        assert!(shown("init", "config") && shown("init", "quiet"));
        for sub in ["completions", "man"] {
            for id in ["output", "config", "verbose"] {
                assert!(!shown(sub, id), "{sub}: {id}");
            }
        }
        assert!(shown("man", "quiet"));
        assert!(shown("status", "output") && shown("deploy", "config"));
        // Still parsed (and `--output json` then refused with a reason).
        let m = command()
            .try_get_matches_from(["ferry", "init", "--output", "json"])
            .unwrap();
        let cli = <Cli as clap::FromArgMatches>::from_arg_matches(&m).unwrap();
        assert!(refuse_idle_globals(&cli).is_err());
    }

    #[test]
    fn global_options_go_before_or_after_the_subcommand() {
        for argv in [
            &["ferry", "-H", "web", "--output", "json", "status"][..],
            &["ferry", "status", "-H", "web", "--output", "json"][..],
            &["ferry", "--output", "json", "status", "--host", "web"][..],
        ] {
            let cli = Cli::try_parse_from(argv).unwrap();
            assert_eq!(selected_hosts(&cli), vec!["web"], "{argv:?}");
            assert_eq!(cli.output, OutputFormat::Json, "{argv:?}");
            assert!(matches!(cli.command, Command::Status(_)), "{argv:?}");
        }
        let cli = Cli::try_parse_from(["ferry", "-H", "a", "deploy", "-H", "b"]).unwrap();
        assert_eq!(selected_hosts(&cli), vec!["a", "b"]);
        // init's own --host (the server to write) is not the global one.
        let cli = Cli::try_parse_from(["ferry", "init", "--host", "me@h"]).unwrap();
        assert!(refuse_idle_globals(&cli).is_ok());
        let cli = Cli::try_parse_from(["ferry", "-H", "web", "init"]).unwrap();
        assert!(refuse_idle_globals(&cli).is_err());
        let cli = Cli::try_parse_from(["ferry", "--output", "json", "init"]).unwrap();
        assert!(refuse_idle_globals(&cli).is_err());
    }

    #[test]
    fn parses_exec_and_fleet_flags() {
        let cli = Cli::try_parse_from([
            "ferry", "exec", "api", "-H", "web", "-p", "32", "--", "ls", "-l", "--", "a b",
        ])
        .unwrap();
        let Command::Exec(e) = cli.command else {
            panic!()
        };
        assert_eq!(e.service.as_deref(), Some("api"));
        assert_eq!(e.filter.hosts, vec!["web"]);
        assert_eq!(e.parallel, 32);
        assert_eq!(e.command, vec!["ls", "-l", "--", "a b"]);
        assert!(
            Cli::try_parse_from(["ferry", "exec", "api"]).is_err(),
            "a command is required"
        );
        let cli = Cli::try_parse_from([
            "ferry",
            "deploy",
            "api",
            "--retry-failed",
            "--rollback-all-on-failure",
        ])
        .unwrap();
        let Command::Deploy(d) = cli.command else {
            panic!()
        };
        assert!(d.retry_failed && d.rollback_all_on_failure);
        assert!(
            Cli::try_parse_from([
                "ferry",
                "deploy",
                "--no-rollback",
                "--rollback-all-on-failure"
            ])
            .is_err()
        );
    }

    #[test]
    fn parses_init_completions_and_since_deploy() {
        let cli = Cli::try_parse_from([
            "ferry",
            "init",
            "--service",
            "web",
            "--binary",
            "bin/web",
            "--host",
            "deploy@web1:2222",
        ])
        .unwrap();
        let Command::Init(i) = cli.command else {
            panic!()
        };
        assert_eq!(i.service.as_deref(), Some("web"));
        assert_eq!(i.host.as_deref(), Some("deploy@web1:2222"));
        let cli = Cli::try_parse_from(["ferry", "completions", "zsh"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Completions(CompletionsArgs { shell: Shell::Zsh })
        ));
        assert!(Cli::try_parse_from(["ferry", "completions", "tcsh"]).is_err());
        let cli = Cli::try_parse_from(["ferry", "logs", "web", "--since-deploy"]).unwrap();
        let Command::Logs(l) = cli.command else {
            panic!()
        };
        assert!(l.since_deploy);
        assert!(
            Cli::try_parse_from(["ferry", "logs", "web", "--since-deploy", "--since", "-1h"])
                .is_err()
        );
    }

    #[test]
    fn parallel_zero_is_refused() {
        assert!(Cli::try_parse_from(["ferry", "deploy", "--parallel", "0"]).is_err());
    }
}
