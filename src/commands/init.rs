//! `ferry init`: write a commented starter deploy.toml and a unit file for one service.
//!
//! Never overwrites: every file it would write is checked first, and each is then created with
//! `create_new`, so an existing deploy.toml or unit file is refused (exit 2, naming the file)
//! and nothing at all is written. The text itself is built by a pure function ([`files`]),
//! tested by parsing it with the real config parser.

use std::path::{Path, PathBuf};

use crate::cli::InitArgs;
use crate::commands::Context;
use crate::error::{Error, Exit};
use crate::report::Reporter;

/// What `ferry init` was asked for.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where deploy.toml goes (`--config`).
    pub config: PathBuf,
    pub service: Option<String>,
    pub binary: Option<PathBuf>,
    /// `[USER@]ADDRESS[:PORT]`.
    pub host: Option<String>,
}

/// A server given as `[USER@]ADDRESS[:PORT]` (IPv6: `[ADDR]:PORT`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub user: Option<String>,
    pub address: String,
    pub port: Option<u16>,
}

impl Target {
    pub fn parse(s: &str) -> Result<Target, String> {
        let (user, rest) = match s.rsplit_once('@') {
            Some((u, r)) => (Some(u.to_string()), r),
            None => (None, s),
        };
        let (address, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (addr, after) = v6
                .split_once(']')
                .ok_or_else(|| format!("`{s}`: missing `]` after an IPv6 address"))?;
            match after.strip_prefix(':') {
                Some(p) => (addr.to_string(), Some(p)),
                None if after.is_empty() => (addr.to_string(), None),
                None => return Err(format!("`{s}`: unexpected `{after}` after `]`")),
            }
        } else if rest.matches(':').count() == 1 {
            let (a, p) = rest.split_once(':').expect("one colon");
            (a.to_string(), Some(p))
        } else {
            (rest.to_string(), None)
        };
        let port = port
            .map(|p| {
                p.parse::<u16>()
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| format!("`{s}`: `{p}` is not a port number (1-65535)"))
            })
            .transpose()?;
        let bad = |c: char| c.is_control() || c.is_whitespace() || matches!(c, '"' | '\\' | '/');
        if address.is_empty() || address.chars().any(bad) {
            return Err(format!(
                "`{s}`: expected [USER@]ADDRESS[:PORT], e.g. deploy@web1.example.org"
            ));
        }
        if let Some(u) = &user
            && (u.is_empty() || u.chars().any(bad))
        {
            return Err(format!("`{s}`: `{u}` is not a user name"));
        }
        Ok(Target {
            user,
            address,
            port,
        })
    }

    /// The `[hosts.NAME]` name: the first label of a host name, else `server`.
    fn host_name(&self) -> String {
        let first = self.address.split('.').next().unwrap_or_default();
        let is_ip = self.address.contains(':')
            || self.address.chars().all(|c| c.is_ascii_digit() || c == '.');
        if !is_ip && valid_name(first) {
            first.to_string()
        } else {
            "server".to_string()
        }
    }
}

/// Names of services and hosts: what config.rs accepts (plain, they end up in remote paths).
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with(['.', '-'])
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// A TOML basic string.
fn quoted(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// The files `ferry init` writes: (path relative to the config's directory, content).
pub fn files(service: &str, binary: &str, target: Option<&Target>) -> Vec<(String, String)> {
    let unit_path = format!("deploy/{service}.service");
    let config = format!(
        "{}{}",
        config_head(service, binary, target),
        config_service(service, binary, &unit_path, &HostLines::of(target).host)
    );
    vec![
        ("deploy.toml".into(), config),
        (unit_path, unit_file(service)),
    ]
}

/// What deploy.toml says of the server: as given (`--host`) or a placeholder.
struct HostLines {
    /// The `[hosts.NAME]` name.
    host: String,
    address: String,
    user_line: String,
    port_line: String,
    /// The command that records the server's host key.
    keyscan: String,
}

impl HostLines {
    fn of(target: Option<&Target>) -> HostLines {
        match target {
            Some(t) => HostLines {
                host: t.host_name(),
                address: t.address.clone(),
                user_line: match &t.user {
                    Some(u) => format!("user = {}", quoted(u)),
                    None => {
                        "#user = \"deploy\"                 # default: your local user name".into()
                    }
                },
                port_line: match t.port {
                    Some(p) => format!("port = {p}"),
                    None => "#port = 22".into(),
                },
                keyscan: format!(
                    "ssh-keyscan{} {} >> ~/.ssh/known_hosts",
                    t.port.map(|p| format!(" -p {p}")).unwrap_or_default(),
                    t.address
                ),
            },
            None => HostLines {
                host: "server".to_string(),
                address: "server.example.org".to_string(),
                user_line: "#user = \"deploy\"                 # default: your local user name"
                    .into(),
                port_line: "#port = 22".into(),
                keyscan: "ssh-keyscan ADDRESS >> ~/.ssh/known_hosts".into(),
            },
        }
    }
}

/// deploy.toml up to the service: the steps of a first deploy, `[defaults]` and the host.
fn config_head(service: &str, binary: &str, target: Option<&Target>) -> String {
    let HostLines {
        host,
        address,
        user_line,
        port_line,
        keyscan,
    } = HostLines::of(target);
    let edit_address = if target.is_none() {
        "\n#   0. Set `address` below to your server (or run `ferry init --host` next time)."
    } else {
        ""
    };
    format!(
        r#"# deploy.toml: how ferry deploys `{service}`. Written by `ferry init`; edit freely.
# Every key, with its default: deploy.example.toml in ferry's repository (and its JSON Schema
# for editors: docs/deploy.schema.json).
#
# First deploy:{edit_address}
#   1. Build the program this file uploads: {binary}
#   2. Put the server's host key into ~/.ssh/known_hosts, and compare its fingerprint
#      (`ssh-keygen -lf ~/.ssh/known_hosts`) with the one the server shows
#      (`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` on it):
#        {keyscan}
#      or set host_key_policy = "accept-new" below to trust it on the first connection.
#   3. ferry doctor              the host is ready: login, systemd user manager, lingering, journal
#   4. ferry deploy --dry-run    what would change, nothing changed
#   5. ferry deploy              then: ferry status, ferry logs {service}

[defaults]
# Private key to log in with. Default: ssh-agent, then ~/.ssh/id_ed25519, id_ecdsa, id_rsa.
#identity = "~/.ssh/id_ed25519"
known_hosts = "~/.ssh/known_hosts"
# "strict": refuse a host whose key is not in known_hosts; "accept-new": record it on first use.
host_key_policy = "strict"
connect_timeout = "10s"

# One table per server; `ferry -H NAME` selects one.
[hosts.{host}]
address = {address}
{user_line}
{port_line}

"#,
        address = quoted(&address),
    )
}

/// deploy.toml's service: its units, timings and files, and a health check to fill in.
fn config_service(service: &str, binary: &str, unit_path: &str, host: &str) -> String {
    format!(
        r#"[services.{service}]
hosts = [{host_q}]
# Unit files installed into ~/.config/systemd/user on the host (see the file for what it runs).
units = [{unit_q}]
# Restarted on each deploy. Default: every .service unit above.
restart = [{restart_q}]
# How long the unit may take to come up, and how long it must then stay up.
start_timeout = "30s"
settle_time = "1.5s"
# Releases kept on each host (the current one included).
keep_releases = 5

# The program. It lands in ~/.local/share/ferry/{service}/releases/ID/bin/{service} on the host;
# the unit runs it through the `current` link, which ferry switches on each deploy.
[[services.{service}.files]]
source = {binary_q}
dest = "bin/{service}"
mode = "0755"

# More files: configuration, or a secret (mode 0600, never printed):
#[[services.{service}.files]]
#source = "secrets/{service}.env"
#dest = "etc/{service}.env"
#secret = true

# Checks after the restart; a failing check rolls the host back to the previous release.
#[services.{service}.health]
#http = "http://127.0.0.1:8080/healthz"     # tunnelled over SSH: the port need not be open
#command = "curl -fsS http://127.0.0.1:8080/healthz"
#timeout = "30s"
"#,
        host_q = quoted(host),
        unit_q = quoted(unit_path),
        restart_q = quoted(&format!("{service}.service")),
        binary_q = quoted(binary),
    )
}

/// The unit file: runs the program of the `current` release.
fn unit_file(service: &str) -> String {
    format!(
        r#"# {service}.service, written by `ferry init`. ferry installs it into ~/.config/systemd/user/
# on the host. It runs the release that `current` points to, which each deploy switches.
[Unit]
Description={service} (deployed by ferry)

[Service]
ExecStart=%h/.local/share/ferry/{service}/current/bin/{service}
WorkingDirectory=%h/.local/share/ferry/{service}/current
#EnvironmentFile=%h/.local/share/ferry/{service}/current/etc/{service}.env
Restart=on-failure
RestartSec=1s

[Install]
# default.target: the user manager has no multi-user.target. It starts at boot only when the
# user lingers (`ferry doctor` checks; `loginctl enable-linger USER` as root).
WantedBy=default.target
"#
    )
}

/// `ferry init`.
pub fn run(args: InitArgs, ctx: &Context) -> Result<Exit, Error> {
    let opts = Options {
        config: ctx.config_path.clone(),
        service: args.service,
        binary: args.binary,
        host: args.host,
    };
    write(&opts, &ctx.reporter)
}

/// Write the starter files `opts` asks for, or none.
fn write(opts: &Options, reporter: &Reporter) -> Result<Exit, Error> {
    let dir = opts
        .config
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let service = match &opts.service {
        Some(s) => s.clone(),
        None => std::env::current_dir()
            .ok()
            .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_default(),
    };
    if !valid_name(&service) {
        return Err(Error::Usage(format!(
            "`{service}` cannot be a service name (letters, digits, `-`, `_`, `.`); give one with --service NAME"
        )));
    }
    let target = opts
        .host
        .as_deref()
        .map(Target::parse)
        .transpose()
        .map_err(|e| Error::Usage(format!("--host {e}")))?;
    let binary = match &opts.binary {
        Some(b) if b.is_relative() && dir != Path::new(".") => {
            // Paths in deploy.toml are relative to its directory; --binary is relative to here.
            std::env::current_dir()
                .map_err(|e| Error::Local(format!("cannot read the current directory: {e}")))?
                .join(b)
        }
        Some(b) => b.clone(),
        None => PathBuf::from(format!("target/release/{service}")),
    };
    let binary = binary.to_str().ok_or_else(|| {
        Error::Usage(format!(
            "--binary {}: not valid UTF-8; rename it",
            binary.display()
        ))
    })?;
    let files = files(&service, binary, target.as_ref());
    let paths: Vec<PathBuf> = files
        .iter()
        .map(|(rel, _)| {
            if rel == "deploy.toml" {
                opts.config.clone()
            } else if dir == Path::new(".") {
                PathBuf::from(rel)
            } else {
                dir.join(rel)
            }
        })
        .collect();
    let existing: Vec<String> = paths
        .iter()
        .filter(|p| p.symlink_metadata().is_ok())
        .map(|p| p.display().to_string())
        .collect();
    if !existing.is_empty() {
        return Err(Error::Usage(format!(
            "{} already exist{}; ferry init never overwrites: move {} away, or write elsewhere with --config DIR/deploy.toml",
            existing.join(" and "),
            if existing.len() == 1 { "s" } else { "" },
            if existing.len() == 1 { "it" } else { "them" },
        )));
    }
    for (path, (_, content)) in paths.iter().zip(&files) {
        write_new(path, content)?;
        reporter.progress(None, &format!("wrote {}", path.display()));
    }
    if opts.binary.is_none() {
        reporter.progress(
            None,
            &format!(
                "the program is expected at {binary}: build it, or edit `source` in the config"
            ),
        );
    }
    reporter.progress(
        None,
        &format!(
            "next: {}ferry doctor, then ferry deploy --dry-run (the steps are at the top of {})",
            if target.is_none() {
                "set `address`, "
            } else {
                "add the host key to known_hosts, "
            },
            opts.config.display()
        ),
    );
    Ok(Exit::Ok)
}

/// Create a new file (and its directory); an existing one is an error, never replaced.
fn write_new(path: &Path, content: &str) -> Result<(), Error> {
    use std::io::Write;
    let fail = |e: std::io::Error| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            Error::Usage(format!(
                "{} already exists; ferry init never overwrites",
                path.display()
            ))
        } else {
            Error::Local(format!("cannot write {}: {e}", path.display()))
        }
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(fail)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(fail)?;
    f.write_all(content.as_bytes()).map_err(fail)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Env, parse};

    fn env() -> Env {
        Env {
            home: Some("/home/me".into()),
            local_user: Some("me".into()),
            ssh_config: None,
        }
    }

    #[test]
    fn parses_user_address_port() {
        let t = Target::parse("deploy@web1.example.org:2222").unwrap();
        assert_eq!(t.user.as_deref(), Some("deploy"));
        assert_eq!(t.address, "web1.example.org");
        assert_eq!(t.port, Some(2222));
        assert_eq!(t.host_name(), "web1");
        let t = Target::parse("10.0.0.5").unwrap();
        assert_eq!((t.user.as_deref(), t.port), (None, None));
        assert_eq!(t.host_name(), "server");
        let t = Target::parse("[::1]:22").unwrap();
        assert_eq!((t.address.as_str(), t.port), ("::1", Some(22)));
        assert_eq!(Target::parse("fe80::1").unwrap().address, "fe80::1");
        assert!(Target::parse("web1:99999").is_err());
        assert!(Target::parse("web 1").is_err());
        assert!(Target::parse("@web1").is_err());
    }

    #[test]
    fn the_starter_config_is_valid_and_names_what_it_deploys() {
        for target in [
            None,
            Some(Target::parse("deploy@web1.example.org:2222").unwrap()),
        ] {
            let files = files("hello", "target/release/hello", target.as_ref());
            let config = parse(&files[0].1, Path::new("/p/deploy.toml"), &env())
                .unwrap_or_else(|e| panic!("{e}\n{}", files[0].1));
            let svc = &config.services["hello"];
            assert_eq!(svc.units.len(), 1);
            assert_eq!(svc.units[0].name, "hello.service");
            assert_eq!(svc.files[0].dest, "bin/hello");
            assert_eq!(svc.files[0].mode, 0o755);
            let host = &config.hosts[&svc.hosts[0]];
            if target.is_some() {
                assert_eq!(host.name, "web1");
                assert_eq!(host.address, "web1.example.org");
                assert_eq!(host.port, 2222);
                assert_eq!(host.user, "deploy");
            } else {
                assert_eq!(host.user, "me");
            }
            assert_eq!(files[1].0, "deploy/hello.service");
            assert!(
                files[1]
                    .1
                    .contains("ExecStart=%h/.local/share/ferry/hello/current/bin/hello")
            );
        }
    }

    #[test]
    fn odd_values_are_quoted() {
        let t = Target::parse("a.b").unwrap();
        let files = files("s", "dir with \"quote\"/s", Some(&t));
        let config = parse(&files[0].1, Path::new("/p/deploy.toml"), &env()).unwrap();
        assert_eq!(
            config.services["s"].files[0].source,
            Path::new("/p/dir with \"quote\"/s")
        );
    }
}
