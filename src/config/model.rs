//! The validated model of deploy.toml: hosts, services and their settings, every default
//! applied, and the errors a config can have.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use super::*;

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from.
    pub path: PathBuf,
    pub hosts: BTreeMap<String, Host>,
    /// `[groups]` as written: each group's members are host names or other groups' names.
    pub groups: BTreeMap<String, Vec<String>>,
    /// Each service's `hosts` are already expanded to host names.
    pub services: BTreeMap<String, Service>,
}

/// How an unknown host key is treated. A changed key is refused under every policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum HostKeyPolicy {
    /// Refuse hosts whose key is not in known_hosts.
    Strict,
    /// Record the key of a host not yet in known_hosts (trust on first use).
    AcceptNew,
}

/// One remote host, with every default applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    pub name: String,
    pub address: String,
    pub user: String,
    pub port: u16,
    /// deploy.toml's private key: that key alone. None: the agent and `identities`, in
    /// OpenSSH's order (see `transport::ssh::auth`).
    pub identity: Option<PathBuf>,
    pub known_hosts: PathBuf,
    pub host_key_policy: HostKeyPolicy,
    pub connect_timeout: Duration,
    /// Whether uploads are gzip-compressed (see `plan::encoding`).
    pub compress: Compress,
    /// Connect through this host (ProxyJump), itself connected directly.
    pub proxy_jump: Option<Box<Host>>,
    /// The IdentityFiles of ~/.ssh/config (or OpenSSH's defaults), in order, tokens expanded;
    /// files that do not exist are skipped when connecting. `identity` (deploy.toml) comes first.
    pub identities: Vec<PathBuf>,
    /// The rest of what the OpenSSH client config says for this host.
    pub ssh: SshOptions,
    /// `arch`: the host's architecture as deploy.toml says it.
    pub arch: Option<HostArch>,
}

/// `arch = "aarch64"` of a `[hosts.NAME]` table (a `uname -m` value), and where it is written:
/// a release binary built for another architecture is a config error, before any connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostArch {
    pub name: String,
    pub file: PathBuf,
    pub line: Option<usize>,
}

/// The `uname -m` values `arch` accepts.
pub const ARCHES: &[&str] = &[
    "x86_64",
    "i686",
    "i386",
    "aarch64",
    "aarch64_be",
    "armv7l",
    "armv6l",
    "armv8l",
    "riscv64",
    "ppc64le",
    "ppc64",
    "s390x",
    "loongarch64",
];

/// Options resolved from the OpenSSH client config (see `config::ssh`) for one host,
/// kept as ssh would use them. The transport acts on all of them but `certificates` and
/// `address_family` (stored, not yet used).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SshOptions {
    pub identities_only: bool,
    /// A socket path, `none` or `SSH_AUTH_SOCK`; None when not set.
    pub identity_agent: Option<String>,
    pub certificates: Vec<PathBuf>,
    pub user_known_hosts: Vec<PathBuf>,
    pub global_known_hosts: Vec<PathBuf>,
    pub host_key_alias: Option<String>,
    /// HashKnownHosts: record new keys with the host name hashed.
    pub hash_known_hosts: bool,
    pub revoked_host_keys: Option<PathBuf>,
    /// None: 0 (no keepalive from the client).
    pub server_alive_interval: Option<Duration>,
    pub server_alive_count_max: u32,
    pub connection_attempts: u32,
    pub address_family: AddressFamily,
    /// Every ProxyJump hop, in order (empty: none).
    pub proxy_jumps: Vec<crate::config::ssh::Jump>,
    pub proxy_command: Option<String>,
}

/// OpenSSH's AddressFamily.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AddressFamily {
    #[default]
    Any,
    Inet,
    Inet6,
}

/// A service: the files of a release and the units that run it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub name: String,
    pub hosts: Vec<String>,
    pub units: Vec<UnitFile>,
    /// Units restarted after install (names, e.g. `foo.service`).
    pub restart: Vec<String>,
    pub enable: bool,
    pub start_timeout: Duration,
    /// How long restarted units must stay up, without restarting, to count as up.
    pub settle_time: Duration,
    pub files: Vec<FileSpec>,
    pub health: Option<Health>,
    pub keep_releases: usize,
    pub confirm_timeout: Duration,
    /// How the deploy moves across the service's hosts.
    pub rollout: Rollout,
    /// `[services.NAME.run]`: units ferry generates (installed with `units`).
    pub run: Option<crate::systemd::units::Run>,
    /// `lint`: what ferry's lints of the units do (default: warn).
    pub lint: crate::systemd::lint::Level,
    // Environment and hooks.
    /// `[services.NAME.env]`: written to the release as a 0600 env file (`.ferry/env`), which
    /// every `.service` unit of the service reads (see `crate::release::env`). Values are resolved on
    /// the machine running ferry, once per deploy, and never printed.
    pub env: BTreeMap<String, EnvValue>,
    /// `[services.NAME.hooks]`.
    pub hooks: Hooks,
    /// `templates = true`: unit files are rendered per host (see `crate::prepare::template`).
    pub templates: bool,
    /// `[services.NAME.instances]`: template unit (`app@.service`) -> how many instances
    /// (`app@1` .. `app@N`) run, a number or a template giving one per host.
    pub instances: BTreeMap<String, InstanceCount>,
    /// What templates see of each of the service's hosts, by host name: `name`, `address`,
    /// `user` and `vars` (`[hosts.NAME.vars]`).
    pub host_context: BTreeMap<String, serde_json::Value>,
    /// `[services.NAME.switch]`: blue/green behind a front that never restarts (see
    /// `crate::systemd::switch`).
    pub switch: Option<crate::systemd::switch::Switch>,
    /// `after`: services a deploy of several deploys before this one (validated: known
    /// names, no cycle).
    pub after: Vec<String>,
}

/// Where the value of an environment variable comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvValue {
    /// Written in deploy.toml.
    Literal(String),
    /// `{ env = "VAR" }`: ferry's own environment (e.g. a CI secret).
    Env(String),
    /// `{ command = "..." }`: stdout of `sh -c COMMAND`, run in the config file's directory,
    /// one trailing newline removed.
    Command { command: String, dir: PathBuf },
    /// `{ file = "..." }`: a local file's content (resolved against the config's directory).
    File(PathBuf),
}

/// How many instances of a template unit run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstanceCount {
    Fixed(u32),
    /// A template rendered per host, e.g. `"{{ host.vars.api_instances }}"`.
    PerHost(String),
}

/// `[services.NAME.hooks]`: commands run around the switch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hooks {
    /// On each host, in the new release's directory with its env, under the lock, before
    /// anything live changes. Failure stops that host's deploy.
    pub before_switch: Option<String>,
    /// On each host once the units are verified (and healthy). Failure fails the deploy
    /// (rolled back).
    pub after_switch: Option<String>,
    /// On the machine running ferry, once per deploy, after every host, in the config's
    /// directory.
    pub local_after: Option<String>,
    /// Once per rollout, on one host (`migrate_on`, else the first host deployed), in the new
    /// release's directory with its env, after its seal and before any host switches.
    pub migrate: Option<String>,
    /// The host `migrate` runs on (one of the service's hosts).
    pub migrate_on: Option<String>,
    /// The longest a hook may run (default 5m).
    pub timeout: Duration,
    /// The config file's directory (where `local_after` runs).
    pub dir: PathBuf,
}

impl Default for Hooks {
    fn default() -> Hooks {
        Hooks {
            before_switch: None,
            after_switch: None,
            local_after: None,
            migrate: None,
            migrate_on: None,
            timeout: Duration::from_secs(300),
            dir: PathBuf::from("."),
        }
    }
}

/// `[services.NAME.rollout]`: canary hosts first, then batches, stopping after too many
/// failures.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Rollout {
    /// Hosts deployed first, on their own, before any batch. Default 0.
    pub canary: usize,
    /// How many hosts are deployed at once after the canaries. Default: all.
    pub batch: Batch,
    /// Failed hosts tolerated before the rollout stops. Default 0.
    pub max_fail: usize,
    /// Wait between batches. Default 0.
    pub pause: Duration,
}

/// The size of a rollout batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Batch {
    /// Every remaining host at once.
    #[default]
    All,
    /// At most this many hosts (at least 1).
    Count(usize),
    /// This percentage of the hosts, rounded up (1..=100).
    Percent(u8),
}

impl Batch {
    /// Hosts per batch out of `hosts`: at least 1, at most `hosts` (when there are any).
    pub fn size(&self, hosts: usize) -> usize {
        let n = match *self {
            Batch::All => hosts,
            Batch::Count(n) => n.min(hosts),
            Batch::Percent(p) => (hosts * usize::from(p)).div_ceil(100),
        };
        n.max(1)
    }
}

/// `2` or `"25%"`.
pub(crate) fn parse_batch(value: &toml::Value) -> Result<Batch, String> {
    const HOW: &str = "write a count of hosts (e.g. 2) or a percentage string (e.g. \"25%\")";
    match value {
        toml::Value::Integer(n) if *n >= 1 => Ok(Batch::Count(
            usize::try_from(*n).map_err(|_| format!("{n} is too large"))?,
        )),
        toml::Value::Integer(n) => Err(format!("{n}: a batch must hold at least 1 host; {HOW}")),
        toml::Value::String(text) => {
            let Some(number) = text.trim().strip_suffix('%') else {
                return Err(format!(
                    "`{}` is not a count or a percentage; {HOW}",
                    printable(text)
                ));
            };
            match number.trim().parse::<u32>() {
                Ok(0) => Err(format!(
                    "`{text}`: a batch must hold at least 1 host; {HOW}"
                )),
                Ok(p @ 1..=100) => Ok(Batch::Percent(p as u8)),
                Ok(_) => Err(format!("`{text}`: a percentage is at most 100%")),
                Err(_) => Err(format!("`{}` is not a percentage; {HOW}", printable(text))),
            }
        }
        other => Err(format!("a {} is not a batch size; {HOW}", other.type_str())),
    }
}

/// A local unit file to install.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitFile {
    /// Local path (resolved against the config file's directory).
    pub source: PathBuf,
    /// The unit name: the file name, e.g. `statifier.service`.
    pub name: String,
}

/// One file of a release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSpec {
    pub source: PathBuf,
    /// Path relative to the release directory, normalised (`a/b`, no `.`/`..`).
    pub dest: String,
    pub mode: u32,
    /// A secret (key, token, password file): mode 0600 unless a stricter one is given.
    pub secret: bool,
    /// `template = true`: the file is rendered per host like unit templates (see
    /// `crate::prepare::template`); it must be UTF-8 text of at most [`TEMPLATE_FILE_MAX`] bytes.
    pub template: bool,
}

/// The largest file `template = true` renders (it is held in memory, once per host).
pub const TEMPLATE_FILE_MAX: u64 = 1 << 20;

/// Health checks of a service; all that are set must pass. Serializable (durations as
/// humantime strings, e.g. "30s"), so a release manifest can record the checks it was deployed
/// with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    pub http: Option<HttpCheck>,
    pub unix_http: Option<UnixHttpCheck>,
    pub command: Option<String>,
    #[serde(with = "humantime_str")]
    pub timeout: Duration,
    #[serde(with = "humantime_str")]
    pub interval: Duration,
}

/// A Duration as a humantime string ("1m 30s"), which humantime parses back exactly.
pub(crate) mod humantime_str {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_duration(*d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpCheck {
    pub host: String,
    pub port: u16,
    /// Path and query, starting with `/`.
    pub path: String,
    /// The URL as written, for messages.
    pub url: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnixHttpCheck {
    /// Socket path on the host; may contain `%t` and `%h`.
    pub socket: String,
    pub path: String,
}

/// A config problem, located in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// Dotted key, e.g. `services.web.files[0].dest`.
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        // A key or message may quote what the file says: never let it drive the terminal.
        if self.key.is_empty() {
            write!(f, ": {}", printable(&self.message))
        } else {
            write!(
                f,
                ": `{}`: {}",
                printable(&self.key),
                printable(&self.message)
            )
        }
    }
}

/// All the problems found in one config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// The health checks of a colour listening on `port`: an `http` check of the front's port
/// goes to the colour's port instead (another port is left alone).
pub fn health_on(checks: &Health, switch: &crate::systemd::switch::Switch, port: u16) -> Health {
    let mut h = checks.clone();
    let front = crate::systemd::units::parse_tcp(&switch.listen);
    if let Some(http) = &mut h.http
        && Some(http.port) == front
    {
        http.port = port;
    }
    h
}

/// The `compress` setting of a host: `auto` (by the round trip), `always` or `never`.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    serde::Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Compress {
    #[default]
    Auto,
    Always,
    Never,
}

impl Compress {
    pub fn parse(s: &str) -> Option<Compress> {
        match s {
            "auto" => Some(Compress::Auto),
            "always" => Some(Compress::Always),
            "never" => Some(Compress::Never),
            _ => None,
        }
    }
}
