//! `deploy.toml`: the schema (serde, unknown keys refused), defaults, and validation.
//!
//! The file is parsed once into a spanned document (`Doc`); serde reads the schema from it,
//! and the spans give the line of every key an error names. Every problem is reported with the
//! file, line and key it concerns, and all problems are collected before returning (one per
//! key, in file order), so a user fixes their config in one pass. Nothing here touches the
//! network; the only I/O is reading the config file and checking that the local files it names
//! (unit files, release files, identity keys) exist.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use toml::de::{DeTable, DeValue};

use crate::systemd;

/// Default config file name, looked up in the current directory.
pub const DEFAULT_CONFIG: &str = "deploy.toml";

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
    /// Explicit private key. None: ssh-agent, then the default key files.
    pub identity: Option<PathBuf>,
    pub known_hosts: PathBuf,
    pub host_key_policy: HostKeyPolicy,
    pub connect_timeout: Duration,
    /// Connect through this host (ProxyJump), itself connected directly.
    pub proxy_jump: Option<Box<Host>>,
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
    // Environment and hooks (issue 10).
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
fn parse_batch(value: &toml::Value) -> Result<Batch, String> {
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
mod humantime_str {
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

// ---------------------------------------------------------------------------------------------
// Raw schema, as written in the file.

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    defaults: RawSettings,
    #[serde(default)]
    hosts: BTreeMap<String, RawHost>,
    #[serde(default)]
    groups: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    services: BTreeMap<String, RawService>,
}

#[derive(Debug, Default, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    user: Option<String>,
    port: Option<u16>,
    identity: Option<String>,
    known_hosts: Option<String>,
    host_key_policy: Option<HostKeyPolicy>,
    connect_timeout: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawHost {
    address: String,
    user: Option<String>,
    port: Option<u16>,
    identity: Option<String>,
    known_hosts: Option<String>,
    host_key_policy: Option<HostKeyPolicy>,
    connect_timeout: Option<String>,
    proxy_jump: Option<String>,
    // Per-host variables for templates (issue 10).
    #[schemars(with = "Option<BTreeMap<String, serde_json::Value>>")]
    vars: Option<BTreeMap<String, toml::Value>>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawService {
    hosts: Option<Vec<String>>,
    #[serde(default)]
    units: Vec<String>,
    restart: Option<Vec<String>>,
    enable: Option<bool>,
    start_timeout: Option<String>,
    settle_time: Option<String>,
    #[serde(default)]
    files: Vec<RawFile>,
    health: Option<RawHealth>,
    keep_releases: Option<usize>,
    confirm_timeout: Option<String>,
    rollout: Option<RawRollout>,
    // Units generated from a `run` table, and the lints of the service's units (issue 13).
    run: Option<RawRun>,
    lint: Option<String>,
    // Environment and hooks (issue 10).
    #[schemars(with = "Option<BTreeMap<String, schema::EnvValue>>")]
    env: Option<BTreeMap<String, toml::Value>>,
    hooks: Option<RawHooks>,
    templates: Option<bool>,
    #[schemars(with = "Option<BTreeMap<String, schema::CountOrText>>")]
    instances: Option<BTreeMap<String, toml::Value>>,
}

/// `[services.NAME.run]`: units generated by ferry (see `crate::systemd::units`).
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawRun {
    command: String,
    socket: Option<String>,
    tcp_proxy: Option<String>,
    restart: Option<String>,
    environment_file: Option<bool>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawHooks {
    before_switch: Option<String>,
    after_switch: Option<String>,
    local_after: Option<String>,
    timeout: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawRollout {
    canary: Option<usize>,
    #[schemars(with = "Option<schema::CountOrText>")]
    batch: Option<toml::Value>,
    max_fail: Option<usize>,
    pause: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawFile {
    source: String,
    dest: String,
    mode: Option<String>,
    secret: Option<bool>,
    template: Option<bool>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawHealth {
    http: Option<String>,
    unix_http: Option<RawUnixHttp>,
    command: Option<String>,
    timeout: Option<String>,
    interval: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawUnixHttp {
    socket: String,
    #[serde(default = "default_health_path")]
    path: String,
}

fn default_health_path() -> String {
    "/".to_string()
}

/// The shapes of values the parser reads as `toml::Value` and checks itself, for the schema
/// generated from these types (see [`type_schema`]).
mod schema {
    #[allow(dead_code)]
    #[derive(schemars::JsonSchema)]
    #[serde(untagged)]
    pub enum EnvValue {
        Literal(String),
        Number(f64),
        Bool(bool),
        Env { env: String },
        Command { command: String },
        File { file: String },
    }

    #[allow(dead_code)]
    #[derive(schemars::JsonSchema)]
    #[serde(untagged)]
    pub enum CountOrText {
        Count(u64),
        Text(String),
    }
}

/// The JSON Schema of deploy.toml generated from the types the parser reads (keys and value
/// types; no descriptions). docs/deploy.schema.json, written for people and editors, is tested
/// to have exactly these keys and types.
pub fn type_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(RawConfig)).expect("a schema serialises")
}

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

    fn expand(&self, path: &str, base: &Path) -> Result<PathBuf, String> {
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

/// Read and validate a config file, then check the local files it names.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let whole_file = |message: String| {
        ConfigErrors(vec![ConfigError {
            file: path.to_path_buf(),
            line: None,
            key: String::new(),
            message,
        }])
    };
    let text = std::fs::read_to_string(path).map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::NotFound {
            "; create it (see deploy.example.toml) or pass --config PATH"
        } else {
            ""
        };
        whole_file(format!("cannot read the config file: {e}{hint}"))
    })?;
    let env = Env::current().map_err(|e| whole_file(format!("the OpenSSH client config: {e}")))?;
    load_text(&text, path, &env)
}

/// Validate config text, then check the local files it names.
fn load_text(text: &str, path: &Path, env: &Env) -> Result<Config, ConfigErrors> {
    let doc = Doc::parse(text, path)?;
    let config = validate(&doc, path, env)?;
    check_local_files(&config, &doc)?;
    Ok(config)
}

/// Parse and validate config text. Pure: no file system access (see [`load`]).
pub fn parse(text: &str, path: &Path, env: &Env) -> Result<Config, ConfigErrors> {
    let doc = Doc::parse(text, path)?;
    validate(&doc, path, env)
}

fn validate(doc: &Doc, path: &Path, env: &Env) -> Result<Config, ConfigErrors> {
    let raw = doc.raw(path)?;
    let base = path
        .parent()
        .map(|p| {
            if p.as_os_str().is_empty() {
                Path::new(".")
            } else {
                p
            }
        })
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let mut v = Validator::new(doc, path);
    v.control_characters();
    let config = v.config(raw, env, &base);
    v.finish().map(|()| config)
}

/// Check that every local file the config names exists and is readable: unit files, release
/// files and the hosts' `identity` keys (wherever the key was set: deploy.toml or ~/.ssh/config).
fn check_local_files(config: &Config, doc: &Doc) -> Result<(), ConfigErrors> {
    let mut v = Validator::new(doc, &config.path);
    for (name, host) in &config.hosts {
        let Some(identity) = &host.identity else {
            continue;
        };
        let Err(e) = readable_file(identity) else {
            continue;
        };
        let own = [Seg::Key("hosts"), Seg::Key(name), Seg::Key("identity")];
        let default = [Seg::Key("defaults"), Seg::Key("identity")];
        if doc.get(&own).is_some() {
            v.error(&own, format!("identity key {}: {e}", identity.display()));
        } else if doc.get(&default).is_some() {
            v.error(
                &default,
                format!("identity key {}: {e}", identity.display()),
            );
        } else {
            v.error(
                &[Seg::Key("hosts"), Seg::Key(name), Seg::Key("address")],
                format!(
                    "identity key {} (IdentityFile of ~/.ssh/config for this address): {e}; fix ~/.ssh/config or set `identity`",
                    identity.display()
                ),
            );
        }
    }
    for (name, svc) in &config.services {
        for (i, unit) in svc.units.iter().enumerate() {
            if let Err(e) = readable_file(&unit.source) {
                v.error(
                    &[
                        Seg::Key("services"),
                        Seg::Key(name),
                        Seg::Key("units"),
                        Seg::Index(i),
                    ],
                    format!("unit file {}: {e}", unit.source.display()),
                );
            }
        }
        for (i, file) in svc.files.iter().enumerate() {
            if let Err(e) = readable_file(&file.source) {
                v.error(
                    &[
                        Seg::Key("services"),
                        Seg::Key(name),
                        Seg::Key("files"),
                        Seg::Index(i),
                        Seg::Key("source"),
                    ],
                    format!("{}: {e}", file.source.display()),
                );
            }
        }
    }
    v.finish()
}

fn readable_file(path: &Path) -> Result<(), String> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => std::fs::File::open(path)
            .map(|_| ())
            .map_err(|e| format!("cannot be read: {e}")),
        Ok(_) => Err("is not a regular file".into()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err("does not exist (paths are relative to the config file's directory)".into())
        }
        Err(e) => Err(format!("cannot be read: {e}")),
    }
}

/// A step of a key path.
#[derive(Debug, Clone, Copy)]
enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

fn key_string(path: &[Seg]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            Seg::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

/// `s` with control characters escaped (`\u{1b}`, `\n`), so a value never drives the terminal.
fn printable(s: &str) -> std::borrow::Cow<'_, str> {
    if s.chars().any(char::is_control) {
        s.chars()
            .map(|c| {
                if c.is_control() {
                    c.escape_default().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect::<String>()
            .into()
    } else {
        s.into()
    }
}

/// The document, parsed once: serde reads the schema from it, and its spans give the line of
/// every key and value an error names.
struct Doc<'a> {
    text: &'a str,
    root: toml::Spanned<DeTable<'a>>,
}

impl<'a> Doc<'a> {
    /// A TOML syntax error, located.
    fn parse(text: &'a str, path: &Path) -> Result<Doc<'a>, ConfigErrors> {
        let root = DeTable::parse(text).map_err(|e| {
            ConfigErrors(vec![ConfigError {
                file: path.to_path_buf(),
                line: e.span().map(|s| line_of(text, s.start)),
                key: String::new(),
                message: e.message().trim().to_string(),
            }])
        })?;
        Ok(Doc { text, root })
    }

    /// The raw schema (unknown keys and wrong types refused, with the key they concern).
    fn raw(&self, path: &Path) -> Result<RawConfig, ConfigErrors> {
        RawConfig::deserialize(toml::de::Deserializer::from(self.root.clone())).map_err(|e| {
            ConfigErrors(vec![ConfigError {
                file: path.to_path_buf(),
                line: e.span().map(|s| line_of(self.text, s.start)),
                key: e
                    .span()
                    .and_then(|s| self.key_at(s.start))
                    .unwrap_or_default(),
                message: e.message().trim().to_string(),
            }])
        })
    }

    /// The value at `path`, when it is written in the file.
    fn get(&self, path: &[Seg]) -> Option<&toml::Spanned<DeValue<'a>>> {
        let mut found = None;
        let mut table = Some(self.root.get_ref());
        let mut array: Option<&toml::de::DeArray<'a>> = None;
        for seg in path {
            let next = match (seg, table, array) {
                (Seg::Key(k), Some(t), _) => t.get(*k),
                (Seg::Index(i), _, Some(a)) => a.get(*i),
                _ => None,
            }?;
            (table, array) = match next.get_ref() {
                DeValue::Table(t) => (Some(t), None),
                DeValue::Array(a) => (None, Some(a)),
                _ => (None, None),
            };
            found = Some(next);
        }
        found
    }

    /// The line of the value at `path`, or of its nearest ancestor that is written.
    fn locate(&self, path: &[Seg]) -> Option<usize> {
        (1..=path.len())
            .rev()
            .find_map(|n| self.get(&path[..n]))
            .map(|v| line_of(self.text, v.span().start))
    }

    /// The dotted key whose value (or key) covers a byte offset, e.g. `defaults.port`.
    /// (Table spans cover only their headers, so every entry is searched.)
    fn key_at(&self, offset: usize) -> Option<String> {
        fn covers(r: std::ops::Range<usize>, offset: usize) -> bool {
            r.start <= offset && offset < r.end.max(r.start + 1)
        }
        fn is_leaf(v: &DeValue) -> bool {
            !matches!(v, DeValue::Table(_) | DeValue::Array(_))
        }
        fn walk(value: &DeValue, offset: usize, path: &mut Vec<String>) -> bool {
            match value {
                DeValue::Table(t) => walk_table(t, offset, path),
                DeValue::Array(a) => {
                    for (i, v) in a.iter().enumerate() {
                        let last = path.last().cloned().unwrap_or_default();
                        if let Some(l) = path.last_mut() {
                            l.push_str(&format!("[{i}]"));
                        }
                        if (is_leaf(v.get_ref()) && covers(v.span(), offset))
                            || walk(v.get_ref(), offset, path)
                        {
                            return true;
                        }
                        if let Some(l) = path.last_mut() {
                            *l = last;
                        }
                    }
                    false
                }
                _ => false,
            }
        }
        fn walk_table(t: &DeTable, offset: usize, path: &mut Vec<String>) -> bool {
            for (k, v) in t.iter() {
                path.push(k.get_ref().to_string());
                if (is_leaf(v.get_ref()) && covers(v.span(), offset))
                    || covers(k.span(), offset)
                    || walk(v.get_ref(), offset, path)
                {
                    return true;
                }
                path.pop();
            }
            false
        }
        let mut path = Vec::new();
        walk_table(self.root.get_ref(), offset, &mut path).then(|| path.join("."))
    }
}

/// 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// The longest duration ferry accepts. Anything longer is a slip (`"30h"` for `"30s"`), and the
/// automatic-rollback timer (`systemd-run --on-active=confirm_timeout`) must fire the same day.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);

struct Validator<'a> {
    doc: &'a Doc<'a>,
    path: &'a Path,
    errors: Vec<ConfigError>,
}

impl<'a> Validator<'a> {
    fn new(doc: &'a Doc<'a>, path: &'a Path) -> Self {
        Validator {
            doc,
            path,
            errors: Vec::new(),
        }
    }

    /// The errors, in the order of the file (top to bottom), or Ok.
    fn finish(mut self) -> Result<(), ConfigErrors> {
        self.errors.sort_by_key(|e| e.line.unwrap_or(usize::MAX));
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ConfigErrors(self.errors))
        }
    }

    /// One error per key: the first problem found is the one reported.
    fn error(&mut self, key: &[Seg], message: impl Into<String>) {
        let key_text = key_string(key);
        if self.errors.iter().any(|e| e.key == key_text) {
            return;
        }
        self.errors.push(ConfigError {
            file: self.path.to_path_buf(),
            line: self.doc.locate(key),
            key: key_text,
            message: message.into(),
        });
    }

    /// A duration; zero is refused unless `zero_ok`, and so is one above [`MAX_DURATION`].
    fn duration_or_zero(
        &mut self,
        key: &[Seg],
        value: Option<&str>,
        default: Duration,
        zero_ok: bool,
    ) -> Duration {
        let Some(s) = value else {
            return default;
        };
        match humantime::parse_duration(s) {
            Ok(d) if d.is_zero() && !zero_ok => {
                self.error(key, "must be longer than zero");
                default
            }
            Ok(d) if d > MAX_DURATION => {
                self.error(
                    key,
                    format!(
                        "`{}` is longer than 24h, the longest ferry accepts",
                        printable(s),
                    ),
                );
                default
            }
            Ok(d) => d,
            Err(e) => {
                self.error(
                    key,
                    format!(
                        "`{}` is not a duration ({e}); write e.g. \"30s\", \"2m\", \"1m 30s\"",
                        printable(s)
                    ),
                );
                default
            }
        }
    }

    fn duration(&mut self, key: &[Seg], value: Option<&str>, default: Duration) -> Duration {
        self.duration_or_zero(key, value, default, false)
    }

    /// Control characters in any key or string value are refused: names and paths are printed
    /// (`--dry-run`, errors, events), and an escape sequence in them would drive the terminal.
    /// A health `command`, hooks and env values (never printed) may span lines (newlines and
    /// tabs).
    fn control_characters(&mut self) {
        fn walk<'d>(v: &mut Validator, value: &'d DeValue<'d>, path: &mut Vec<Seg<'d>>) {
            match value {
                DeValue::String(s) => {
                    let multiline_ok = matches!(
                        path.as_slice(),
                        [
                            Seg::Key("services"),
                            _,
                            Seg::Key("health"),
                            Seg::Key("command")
                        ] | [Seg::Key("services"), _, Seg::Key("hooks" | "env"), ..]
                    );
                    if let Some(c) = s
                        .chars()
                        .find(|c| c.is_control() && !(multiline_ok && matches!(c, '\n' | '\t')))
                    {
                        v.error(
                            path,
                            format!(
                                "contains the control character {}; remove it",
                                c.escape_unicode()
                            ),
                        );
                    }
                }
                DeValue::Table(t) => table(v, t, path),
                DeValue::Array(a) => {
                    for (i, item) in a.iter().enumerate() {
                        path.push(Seg::Index(i));
                        walk(v, item.get_ref(), path);
                        path.pop();
                    }
                }
                _ => {}
            }
        }
        fn table<'d>(v: &mut Validator, t: &'d DeTable<'d>, path: &mut Vec<Seg<'d>>) {
            for (k, item) in t.iter() {
                path.push(Seg::Key(k.get_ref()));
                if let Some(c) = k.get_ref().chars().find(|c| c.is_control()) {
                    v.error(
                        path,
                        format!(
                            "the name contains the control character {}; remove it",
                            c.escape_unicode()
                        ),
                    );
                } else {
                    walk(v, item.get_ref(), path);
                }
                path.pop();
            }
        }
        let doc = self.doc;
        table(self, doc.root.get_ref(), &mut Vec::new());
    }

    fn config(&mut self, raw: RawConfig, env: &Env, base: &Path) -> Config {
        let mut hosts = BTreeMap::new();
        let mut jumps = Vec::new();
        let mut vars: BTreeMap<String, serde_json::Map<String, serde_json::Value>> =
            BTreeMap::new();
        for (name, mut h) in raw.hosts {
            if let Some(v) = h.vars.take() {
                let json = v
                    .into_iter()
                    .map(|(k, v)| (k, serde_json::to_value(v).unwrap_or_default()))
                    .collect();
                vars.insert(name.clone(), json);
            }
            if let Some(j) = &h.proxy_jump {
                jumps.push((name.clone(), j.clone()));
            }
            let host = self.host(&name, h, &raw.defaults, env, base);
            hosts.insert(name, host);
        }
        // ProxyJump: one level, through another host of this file.
        let jumping: BTreeSet<String> = jumps.iter().map(|(n, _)| n.clone()).collect();
        for (name, jump) in jumps {
            let key = [Seg::Key("hosts"), Seg::Key(&name), Seg::Key("proxy_jump")];
            match hosts.get(&jump) {
                None => self.error(
                    &key,
                    format!("host `{jump}` is not defined; proxy_jump names another [hosts.NAME]"),
                ),
                Some(_) if jump == name => self.error(&key, "a host cannot jump through itself"),
                Some(_) if jumping.contains(&jump) => self.error(
                    &key,
                    format!("`{jump}` itself uses proxy_jump; only one jump is supported"),
                ),
                Some(j) => {
                    let j = Box::new(j.clone());
                    if let Some(h) = hosts.get_mut(&name) {
                        h.proxy_jump = Some(j);
                    }
                }
            }
        }
        let groups = raw.groups;
        self.groups(&groups, &hosts);
        let mut services = BTreeMap::new();
        for (name, s) in raw.services {
            let mut svc = self.service(&name, s, &hosts, &groups, base);
            svc.host_context = svc
                .hosts
                .iter()
                .filter_map(|h| hosts.get(h))
                .map(|h| {
                    let context = serde_json::json!({
                        "name": h.name,
                        "address": h.address,
                        "user": h.user,
                        "vars": vars.get(&h.name).cloned().unwrap_or_default(),
                    });
                    (h.name.clone(), context)
                })
                .collect();
            services.insert(name, svc);
        }
        Config {
            path: self.path.to_path_buf(),
            hosts,
            groups,
            services,
        }
    }

    /// `[groups]`: names that are not hosts, members that exist, no cycles.
    fn groups(&mut self, groups: &BTreeMap<String, Vec<String>>, hosts: &BTreeMap<String, Host>) {
        for (name, members) in groups {
            let key = [Seg::Key("groups"), Seg::Key(name)];
            if !valid_name(name) {
                self.error(
                    &key,
                    "group names may use letters, digits, `-`, `_` and `.` only",
                );
            } else if hosts.contains_key(name) {
                self.error(
                    &key,
                    format!(
                        "`{name}` is both a host and a group; rename one (--host and `hosts` must know which is meant)"
                    ),
                );
            }
            for (i, m) in members.iter().enumerate() {
                if !hosts.contains_key(m) && !groups.contains_key(m) {
                    self.error(
                        &[Seg::Key("groups"), Seg::Key(name), Seg::Index(i)],
                        unknown_host_or_group(m, hosts, groups),
                    );
                }
            }
        }
        // Cycles: a depth-first walk; an edge back to a group on the current path closes one,
        // reported once, at the member that closes it.
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            Visiting,
            Done,
        }
        fn visit<'g>(
            v: &mut Validator,
            name: &'g str,
            groups: &'g BTreeMap<String, Vec<String>>,
            marks: &mut BTreeMap<&'g str, Mark>,
            stack: &mut Vec<&'g str>,
        ) {
            marks.insert(name, Mark::Visiting);
            stack.push(name);
            for (i, m) in groups[name].iter().enumerate() {
                if !groups.contains_key(m) {
                    continue;
                }
                match marks.get(m.as_str()) {
                    Some(Mark::Visiting) => {
                        let from = stack.iter().position(|s| s == m).unwrap_or(0);
                        let mut cycle: Vec<&str> = stack[from..].to_vec();
                        cycle.push(m);
                        v.error(
                            &[Seg::Key("groups"), Seg::Key(name), Seg::Index(i)],
                            format!(
                                "groups form a cycle: {}; a group cannot contain itself",
                                cycle.join(" -> ")
                            ),
                        );
                    }
                    Some(Mark::Done) => {}
                    None => visit(v, m, groups, marks, stack),
                }
            }
            stack.pop();
            marks.insert(name, Mark::Done);
        }
        let mut marks = BTreeMap::new();
        for name in groups.keys() {
            if !marks.contains_key(name.as_str()) {
                visit(self, name, groups, &mut marks, &mut Vec::new());
            }
        }
    }

    fn host(&mut self, name: &str, h: RawHost, d: &RawSettings, env: &Env, base: &Path) -> Host {
        let k = |key: &'static str| [Seg::Key("hosts"), Seg::Key(name), Seg::Key(key)];
        if !valid_name(name) {
            self.error(
                &[Seg::Key("hosts"), Seg::Key(name)],
                "host names may use letters, digits, `-`, `_` and `.` only",
            );
        }
        let written = h.address.trim().to_string();
        // ~/.ssh/config applies under what deploy.toml says (as with `ssh ADDRESS`).
        let ssh = env.ssh_config.as_ref().map(|c| c.query(&written));
        let address = ssh
            .as_ref()
            .and_then(|p| p.host_name.clone())
            .unwrap_or_else(|| written.clone());
        if address.is_empty() || address.contains(|c: char| c.is_whitespace() || c.is_control()) {
            self.error(&k("address"), "must be a host name or IP address");
        }
        // Which table a setting came from, for error locations.
        let pick = |own: &Option<String>, def: &Option<String>, key: &'static str| match own {
            Some(v) => Some((
                v.clone(),
                vec![Seg::Key("hosts"), Seg::Key(name), Seg::Key(key)],
            )),
            None => def
                .clone()
                .map(|v| (v, vec![Seg::Key("defaults"), Seg::Key(key)])),
        };
        let user = match h
            .user
            .clone()
            .or(d.user.clone())
            .or(ssh.as_ref().and_then(|p| p.user.clone()))
            .or(env.local_user.clone())
        {
            Some(u) if valid_user(&u) => u,
            Some(u) => {
                self.error(&k("user"), format!("`{u}` is not a valid user name"));
                u
            }
            None => {
                self.error(
                    &k("user"),
                    "no user set and the local user name is unknown: set `user`",
                );
                String::new()
            }
        };
        let port = h
            .port
            .or(d.port)
            .or(ssh.as_ref().and_then(|p| p.port))
            .unwrap_or(22);
        if port == 0 {
            self.error(&k("port"), "port 0 is not valid");
        }
        let identity = match pick(&h.identity, &d.identity, "identity") {
            None => ssh
                .as_ref()
                .and_then(|p| p.identity_file.as_ref())
                .and_then(|f| f.first().cloned()),
            Some((p, key)) => match env.expand(&p, base) {
                Ok(p) => Some(p),
                Err(e) => {
                    self.error(&key, e);
                    None
                }
            },
        };
        let known_hosts = match pick(&h.known_hosts, &d.known_hosts, "known_hosts") {
            Some((p, key)) => env.expand(&p, base).unwrap_or_else(|e| {
                self.error(&key, e);
                PathBuf::new()
            }),
            None => env.expand("~/.ssh/known_hosts", base).unwrap_or_else(|e| {
                self.error(&k("known_hosts"), e);
                PathBuf::new()
            }),
        };
        let host_key_policy = h
            .host_key_policy
            .or(d.host_key_policy)
            .unwrap_or(HostKeyPolicy::Strict);
        let connect_timeout = match pick(&h.connect_timeout, &d.connect_timeout, "connect_timeout")
        {
            None => ssh
                .as_ref()
                .and_then(|p| p.connect_timeout)
                .filter(|t| !t.is_zero())
                .unwrap_or(Duration::from_secs(10)),
            Some((v, key)) => self.duration(&key, Some(&v), Duration::from_secs(10)),
        };
        Host {
            name: name.to_string(),
            address,
            user,
            port,
            identity,
            known_hosts,
            host_key_policy,
            connect_timeout,
            proxy_jump: None,
        }
    }

    fn service(
        &mut self,
        name: &str,
        s: RawService,
        hosts: &BTreeMap<String, Host>,
        groups: &BTreeMap<String, Vec<String>>,
        base: &Path,
    ) -> Service {
        let sk = |key: &'static str| [Seg::Key("services"), Seg::Key(name), Seg::Key(key)];
        if !valid_name(name) {
            self.error(
                &[Seg::Key("services"), Seg::Key(name)],
                "service names may use letters, digits, `-`, `_` and `.` only (they name remote directories)",
            );
        }
        // hosts: host and group names, expanded to hosts (first seen first, no duplicates).
        let mut svc_hosts: Vec<String> = Vec::new();
        match &s.hosts {
            None => svc_hosts = hosts.keys().cloned().collect(),
            Some(list) => {
                for (i, h) in list.iter().enumerate() {
                    let key = [
                        Seg::Key("services"),
                        Seg::Key(name),
                        Seg::Key("hosts"),
                        Seg::Index(i),
                    ];
                    if hosts.contains_key(h) {
                        if !svc_hosts.contains(h) {
                            svc_hosts.push(h.clone());
                        }
                    } else if groups.contains_key(h) {
                        let mut members = Vec::new();
                        expand_group(h, groups, hosts, &mut members, &mut Vec::new());
                        if members.is_empty() {
                            self.error(
                                &key,
                                format!(
                                    "the group `{h}` has no hosts; add hosts to it under [groups] or leave it out here"
                                ),
                            );
                        }
                        for m in members {
                            if !svc_hosts.contains(&m) {
                                svc_hosts.push(m);
                            }
                        }
                    } else {
                        self.error(&key, unknown_host_or_group(h, hosts, groups));
                    }
                }
            }
        }
        match &s.hosts {
            None if svc_hosts.is_empty() => self.error(
                &sk("hosts"),
                "the service has no hosts: define [hosts.NAME]",
            ),
            Some(list) if list.is_empty() => self.error(
                &sk("hosts"),
                "lists no hosts: name hosts or groups, or leave `hosts` out to deploy to every host",
            ),
            _ => {}
        }
        // units
        let mut units = Vec::new();
        let mut unit_names = BTreeSet::new();
        for (i, u) in s.units.iter().enumerate() {
            let key = [
                Seg::Key("services"),
                Seg::Key(name),
                Seg::Key("units"),
                Seg::Index(i),
            ];
            let file_name = Path::new(u)
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("")
                .to_string();
            if let Err(e) = systemd::validate_unit_name(&file_name) {
                self.error(&key, format!("`{file_name}`: {e}"));
            } else if !unit_names.insert(file_name.clone()) {
                self.error(&key, format!("unit `{file_name}` is listed twice"));
            }
            units.push(UnitFile {
                source: base.join(u),
                name: file_name,
            });
        }
        // run: generated units, which `restart` may name (and restarts by default); lint.
        let run = s.run.map(|r| {
            let run = crate::systemd::units::Run {
                command: r.command,
                socket: r.socket,
                tcp_proxy: r.tcp_proxy,
                restart: r.restart.unwrap_or_else(|| "on-failure".into()),
                environment_file: r.environment_file.unwrap_or(false),
            };
            let rk = |key: &'static str| {
                [
                    Seg::Key("services"),
                    Seg::Key(name),
                    Seg::Key("run"),
                    Seg::Key(key),
                ]
            };
            for (key, message) in crate::systemd::units::validate(&run) {
                self.error(&rk(key), message);
            }
            for unit in crate::systemd::units::names(name, &run) {
                if !unit_names.insert(unit.clone()) {
                    self.error(
                        &rk("command"),
                        format!("`{unit}` is generated from this `run` table and also listed in `units`: remove one of them"),
                    );
                }
            }
            run
        });
        let run_restart = run
            .as_ref()
            .map(|r| crate::systemd::units::restarted(name, r))
            .unwrap_or_default();
        let lint = match s
            .lint
            .as_deref()
            .map(|l| (l, crate::systemd::lint::Level::parse(l)))
        {
            None => crate::systemd::lint::Level::default(),
            Some((_, Some(level))) => level,
            Some((text, None)) => {
                self.error(
                    &sk("lint"),
                    format!("`{}`: use \"deny\" (a finding stops the deploy), \"warn\" (the default) or \"off\"", printable(text)),
                );
                crate::systemd::lint::Level::default()
            }
        };
        // restart
        let restart = match s.restart {
            Some(list) => {
                for (i, r) in list.iter().enumerate() {
                    let key = [
                        Seg::Key("services"),
                        Seg::Key(name),
                        Seg::Key("restart"),
                        Seg::Index(i),
                    ];
                    if let Err(e) = systemd::validate_unit_name(r) {
                        self.error(&key, format!("`{r}`: {e}"));
                    } else if !unit_names.contains(r)
                        && !unit_names.contains(&crate::systemd::template_of(r))
                    {
                        self.error(
                            &key,
                            format!(
                                "`{r}` is not one of this service's units; add its file to `units`"
                            ),
                        );
                    }
                }
                list
            }
            None => units
                .iter()
                .filter(|u| u.name.ends_with(".service") && !u.name.contains("@."))
                .map(|u| u.name.clone())
                .chain(run_restart)
                .collect(),
        };
        let start_timeout = self.duration(
            &sk("start_timeout"),
            s.start_timeout.as_deref(),
            Duration::from_secs(30),
        );
        let settle_time = self.duration_or_zero(
            &sk("settle_time"),
            s.settle_time.as_deref(),
            Duration::from_millis(1500),
            true,
        );
        // files
        let mut files = Vec::new();
        let mut dests = BTreeMap::new();
        for (i, f) in s.files.iter().enumerate() {
            let fk = |key: &'static str| {
                [
                    Seg::Key("services"),
                    Seg::Key(name),
                    Seg::Key("files"),
                    Seg::Index(i),
                    Seg::Key(key),
                ]
            };
            let dest = match normalize_dest(&f.dest) {
                Ok(d) => d,
                Err(e) => {
                    self.error(&fk("dest"), format!("`{}`: {e}", printable(&f.dest)));
                    f.dest.clone()
                }
            };
            if let Some(prev) = dests.insert(dest.clone(), i) {
                self.error(
                    &fk("dest"),
                    format!(
                        "`{dest}` is also the dest of files[{prev}]; each file needs its own dest"
                    ),
                );
            }
            let secret = f.secret.unwrap_or(false);
            let mode = match &f.mode {
                None if secret => 0o600,
                None => 0o644,
                Some(m) => match parse_mode(m) {
                    Ok(m) if secret && m & 0o077 != 0 => {
                        self.error(
                            &fk("mode"),
                            format!("`{m:04o}`: a secret file must not be readable by group or others; use \"0600\" or \"0400\" (or leave mode out)"),
                        );
                        0o600
                    }
                    Ok(m) => m,
                    Err(e) => {
                        self.error(&fk("mode"), format!("`{m}`: {e}"));
                        0o644
                    }
                },
            };
            files.push(FileSpec {
                source: base.join(&f.source),
                dest,
                mode,
                secret,
                template: f.template.unwrap_or(false),
            });
        }
        // A dest cannot be a file and, for another file, a directory (`bin` and `bin/x`).
        for (dest, &i) in &dests {
            for (cut, _) in dest.match_indices('/') {
                let dir = &dest[..cut];
                let Some(&j) = dests.get(dir) else { continue };
                let (at, message) = if i > j {
                    (
                        i,
                        format!(
                            "`{dest}` is inside `{dir}`, the dest of files[{j}]; `{dir}` cannot be both a file and a directory"
                        ),
                    )
                } else {
                    (
                        j,
                        format!(
                            "`{dir}` is also a directory: files[{i}] goes to `{dest}`; `{dir}` cannot be both a file and a directory"
                        ),
                    )
                };
                self.error(
                    &[
                        Seg::Key("services"),
                        Seg::Key(name),
                        Seg::Key("files"),
                        Seg::Index(at),
                        Seg::Key("dest"),
                    ],
                    message,
                );
            }
        }
        let health = s.health.map(|h| self.health(name, h));
        let keep_releases = s.keep_releases.unwrap_or(5);
        if keep_releases < 2 {
            self.error(
                &sk("keep_releases"),
                "must be at least 2 (the current release and one to roll back to)",
            );
        }
        // The self-revert must not fire while ferry is still verifying: confirm_timeout covers
        // the start, the settle time and the health checks. The default: 60 s, or that plus 10 s.
        // Environment and hooks (issue 10).
        let env = self.env(name, s.env.unwrap_or_default(), base);
        let hooks = self.hooks(name, s.hooks, base);
        let health_timeout = health.as_ref().map(|h| h.timeout).unwrap_or_default();
        // An after_switch hook runs while the self-revert is armed: it is part of verification.
        let hook_timeout = hooks
            .after_switch
            .as_ref()
            .map(|_| hooks.timeout)
            .unwrap_or_default();
        let verification = start_timeout + settle_time + health_timeout + hook_timeout;
        let parts = if hook_timeout.is_zero() {
            "start_timeout + settle_time + health.timeout"
        } else {
            "start_timeout + settle_time + health.timeout + hooks.timeout (after_switch)"
        };
        let confirm_timeout = self.duration(
            &sk("confirm_timeout"),
            s.confirm_timeout.as_deref(),
            (verification + Duration::from_secs(10)).max(Duration::from_secs(60)),
        );
        if s.confirm_timeout.is_none() && confirm_timeout > MAX_DURATION {
            self.error(
                &sk("confirm_timeout"),
                format!(
                    "{parts} ({}) leave no room for the automatic rollback timer, which is at most 24h: shorten them",
                    humantime::format_duration(verification),
                ),
            );
        } else if s.confirm_timeout.is_some() && confirm_timeout <= verification {
            self.error(
                &sk("confirm_timeout"),
                format!(
                    "must be longer than {parts} ({}); otherwise the host reverts a deploy that is still being verified",
                    humantime::format_duration(verification)
                ),
            );
        }
        let rollout = s.rollout.map(|r| self.rollout(name, r)).unwrap_or_default();
        Service {
            name: name.to_string(),
            hosts: svc_hosts,
            units,
            restart,
            enable: s.enable.unwrap_or(true),
            start_timeout,
            settle_time,
            files,
            health,
            keep_releases,
            confirm_timeout,
            rollout,
            run,
            lint,
            env,
            hooks,
            templates: s.templates.unwrap_or(false),
            instances: self.instances(name, s.instances.unwrap_or_default(), &unit_names),
            host_context: BTreeMap::new(),
        }
    }

    /// `[services.NAME.env]`: names a shell and systemd accept; values a literal (string,
    /// number, boolean) or one of `{ env = "VAR" }`, `{ command = "..." }`, `{ file = "..." }`.
    fn env(
        &mut self,
        name: &str,
        raw: BTreeMap<String, toml::Value>,
        base: &Path,
    ) -> BTreeMap<String, EnvValue> {
        const HOW: &str = "write a string, or one of { env = \"VAR\" }, { command = \"...\" }, { file = \"PATH\" }";
        let mut env = BTreeMap::new();
        for (var, value) in raw {
            let key = [
                Seg::Key("services"),
                Seg::Key(name),
                Seg::Key("env"),
                Seg::Key(&var),
            ];
            if !valid_env_name(&var) {
                self.error(
                    &key,
                    "variable names may use letters, digits and `_`, and must not start with a digit",
                );
                continue;
            }
            if var.starts_with("FERRY_") {
                self.error(
                    &key,
                    "names starting with FERRY_ are ferry's own (hooks get FERRY_SERVICE, FERRY_HOST, ...); rename it",
                );
                continue;
            }
            let parsed = match value {
                toml::Value::String(v) => Ok(EnvValue::Literal(v)),
                toml::Value::Integer(n) => Ok(EnvValue::Literal(n.to_string())),
                toml::Value::Float(f) => Ok(EnvValue::Literal(f.to_string())),
                toml::Value::Boolean(b) => Ok(EnvValue::Literal(b.to_string())),
                toml::Value::Table(t) => {
                    let mut entries = t.into_iter();
                    match (entries.next(), entries.next()) {
                        (Some((kind, toml::Value::String(v))), None) => match kind.as_str() {
                            "env" if valid_env_name(&v) => Ok(EnvValue::Env(v)),
                            "env" => Err(format!(
                                "`{}` is not an environment variable name",
                                printable(&v)
                            )),
                            "command" if v.trim().is_empty() => {
                                Err("`command` must not be empty".to_string())
                            }
                            "command" => Ok(EnvValue::Command {
                                command: v,
                                dir: base.to_path_buf(),
                            }),
                            "file" => Ok(EnvValue::File(base.join(v))),
                            other => Err(format!("unknown source `{}`; {HOW}", printable(other))),
                        },
                        (Some(_), None) => Err(format!("the source must be a string; {HOW}")),
                        _ => Err(format!("give exactly one source; {HOW}")),
                    }
                }
                other => Err(format!("a {} is not a value; {HOW}", other.type_str())),
            };
            match parsed {
                Ok(v) => {
                    env.insert(var, v);
                }
                Err(e) => self.error(&key, e),
            }
        }
        env
    }

    /// `[services.NAME.instances]`: template units of this service, counts 0..=100 or a
    /// template string.
    fn instances(
        &mut self,
        name: &str,
        raw: BTreeMap<String, toml::Value>,
        units: &BTreeSet<String>,
    ) -> BTreeMap<String, InstanceCount> {
        let mut out = BTreeMap::new();
        for (unit, count) in raw {
            let key = [
                Seg::Key("services"),
                Seg::Key(name),
                Seg::Key("instances"),
                Seg::Key(&unit),
            ];
            if !unit.contains("@.") || !units.contains(&unit) {
                self.error(
                    &key,
                    format!(
                        "`{}` is not a template unit (NAME@.service) of this service's `units`",
                        printable(&unit)
                    ),
                );
                continue;
            }
            let count = match count {
                toml::Value::Integer(n) if (0..=100).contains(&n) => InstanceCount::Fixed(n as u32),
                toml::Value::String(t) if t.contains("{{") => InstanceCount::PerHost(t),
                _ => {
                    self.error(
                        &key,
                        "write a number of instances (0 to 100) or a template such as \"{{ host.vars.instances }}\"",
                    );
                    continue;
                }
            };
            out.insert(unit, count);
        }
        out
    }

    fn hooks(&mut self, name: &str, raw: Option<RawHooks>, base: &Path) -> Hooks {
        let Some(h) = raw else {
            return Hooks {
                dir: base.to_path_buf(),
                ..Hooks::default()
            };
        };
        let hk = |key: &'static str| {
            [
                Seg::Key("services"),
                Seg::Key(name),
                Seg::Key("hooks"),
                Seg::Key(key),
            ]
        };
        for (key, command) in [
            ("before_switch", &h.before_switch),
            ("after_switch", &h.after_switch),
            ("local_after", &h.local_after),
        ] {
            if command.as_ref().is_some_and(|c| c.trim().is_empty()) {
                self.error(&hk(key), "must not be empty (leave it out for no hook)");
            }
        }
        Hooks {
            timeout: self.duration(
                &hk("timeout"),
                h.timeout.as_deref(),
                Hooks::default().timeout,
            ),
            before_switch: h.before_switch,
            after_switch: h.after_switch,
            local_after: h.local_after,
            dir: base.to_path_buf(),
        }
    }

    fn rollout(&mut self, name: &str, r: RawRollout) -> Rollout {
        let rk = |key: &'static str| {
            [
                Seg::Key("services"),
                Seg::Key(name),
                Seg::Key("rollout"),
                Seg::Key(key),
            ]
        };
        let batch = match r.batch.as_ref().map(parse_batch) {
            None => Batch::All,
            Some(Ok(b)) => b,
            Some(Err(e)) => {
                self.error(&rk("batch"), e);
                Batch::All
            }
        };
        Rollout {
            canary: r.canary.unwrap_or(0),
            batch,
            max_fail: r.max_fail.unwrap_or(0),
            pause: self.duration_or_zero(&rk("pause"), r.pause.as_deref(), Duration::ZERO, true),
        }
    }

    fn health(&mut self, name: &str, h: RawHealth) -> Health {
        let hk = |key: &'static str| {
            [
                Seg::Key("services"),
                Seg::Key(name),
                Seg::Key("health"),
                Seg::Key(key),
            ]
        };
        let http_set = h.http.is_some();
        let http = h.http.and_then(|url| match parse_http_url(&url) {
            Ok(c) => Some(c),
            Err(e) => {
                self.error(&hk("http"), format!("`{url}`: {e}"));
                None
            }
        });
        let unix_http = h.unix_http.map(|u| {
            if !u.path.starts_with('/') {
                self.error(&hk("unix_http"), "`path` must start with `/`");
            }
            if u.socket.is_empty() {
                self.error(&hk("unix_http"), "`socket` must not be empty");
            }
            UnixHttpCheck {
                socket: u.socket,
                path: u.path,
            }
        });
        if let Some(c) = &h.command
            && c.trim().is_empty()
        {
            self.error(&hk("command"), "must not be empty");
        }
        // An `http` that was refused above already has its error: no second one.
        if !http_set && unix_http.is_none() && h.command.is_none() {
            self.error(
                &[Seg::Key("services"), Seg::Key(name), Seg::Key("health")],
                "no check set: set `http`, `unix_http` or `command`",
            );
        }
        Health {
            http,
            unix_http,
            command: h.command,
            timeout: self.duration(
                &hk("timeout"),
                h.timeout.as_deref(),
                Duration::from_secs(30),
            ),
            interval: self.duration(
                &hk("interval"),
                h.interval.as_deref(),
                Duration::from_secs(1),
            ),
        }
    }
}

/// "no host or group `x`; defined hosts: a, b; groups: web".
fn unknown_host_or_group(
    name: &str,
    hosts: &BTreeMap<String, Host>,
    groups: &BTreeMap<String, Vec<String>>,
) -> String {
    let list = |names: Vec<&String>| {
        if names.is_empty() {
            "(none)".to_string()
        } else {
            names
                .into_iter()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    format!(
        "no host or group `{}`; defined hosts: {}; groups: {}",
        printable(name),
        list(hosts.keys().collect()),
        list(groups.keys().collect())
    )
}

/// An environment variable name a shell and systemd accept.
pub fn valid_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Names of hosts and services: used in remote paths, so kept plain.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn valid_user(user: &str) -> bool {
    !user.is_empty()
        && user.len() <= 32
        && !user.starts_with('-')
        && user
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '$'))
}

/// `bin/app` stays `bin/app`; absolute paths and paths that leave the release directory are refused.
/// Control characters and names of directories (`bin/`) are refused too.
fn normalize_dest(dest: &str) -> Result<String, String> {
    if let Some(c) = dest.chars().find(|c| c.is_control()) {
        return Err(format!(
            "contains the control character {}; remove it",
            c.escape_unicode()
        ));
    }
    if dest.starts_with('/') {
        return Err("must be relative to the release directory, not absolute".into());
    }
    let mut parts = Vec::new();
    for part in dest.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err("must stay inside the release directory (no `..`)".into()),
            p => parts.push(p),
        }
    }
    if parts.is_empty() {
        return Err("must name a file".into());
    }
    if dest.ends_with('/') || dest.ends_with("/.") {
        return Err("names a directory; give the file name (e.g. `bin/app`)".into());
    }
    if parts[0] == "units" || parts[0] == ".ferry" {
        return Err(format!("`{}/` is reserved for ferry's own files", parts[0]));
    }
    Ok(parts.join("/"))
}

/// `"0755"` / `"755"` / `"0o755"` -> 0o755.
fn parse_mode(mode: &str) -> Result<u32, String> {
    let digits = mode.trim_start_matches("0o");
    if digits.is_empty() || digits.len() > 4 || !digits.chars().all(|c| ('0'..='7').contains(&c)) {
        return Err("not an octal file mode; write e.g. \"0644\" or \"0755\"".into());
    }
    let m = u32::from_str_radix(digits, 8).map_err(|e| e.to_string())?;
    if m > 0o7777 {
        return Err("mode out of range".into());
    }
    if m & 0o400 == 0 {
        return Err("the owner must be able to read the file (e.g. \"0600\")".into());
    }
    Ok(m)
}

/// `http://HOST:PORT/path` (plain HTTP only: the check runs over the SSH connection).
fn parse_http_url(url: &str) -> Result<HttpCheck, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or("only http:// URLs are supported (the check is tunnelled over SSH)")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = if let Some(stripped) = authority.strip_prefix('[') {
        let end = stripped.find(']').ok_or("unclosed `[` in the host")?;
        let host = &stripped[..end];
        let port = match &stripped[end + 1..] {
            "" => 80,
            p => p
                .strip_prefix(':')
                .and_then(|p| p.parse().ok())
                .ok_or("bad port")?,
        };
        (host.to_string(), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (
                h.to_string(),
                p.parse().map_err(|_| format!("bad port `{p}`"))?,
            ),
            None => (authority.to_string(), 80),
        }
    };
    if host.is_empty() {
        return Err("no host in the URL".into());
    }
    Ok(HttpCheck {
        host,
        port,
        path: path.to_string(),
        url: url.to_string(),
    })
}

/// A `--host` or service name on the command line that the config does not define. Its
/// Display is the message for the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectError {
    #[error("--host {name}: no such host or group in {}; {}", file.display(), defined_hosts(hosts, groups))]
    UnknownHost {
        name: String,
        file: PathBuf,
        hosts: Vec<String>,
        groups: Vec<String>,
    },
    #[error("--host {name}: the group `{name}` in {} has no hosts; add some to it under [groups]", file.display())]
    EmptyGroup { name: String, file: PathBuf },
    #[error("no service `{name}` in {}; {}", file.display(), defined_services(services))]
    UnknownService {
        name: String,
        file: PathBuf,
        services: Vec<String>,
    },
}

fn defined_hosts(hosts: &[String], groups: &[String]) -> String {
    if hosts.is_empty() {
        return "no hosts are defined: add a [hosts.NAME] table".into();
    }
    let mut s = format!("hosts: {}", hosts.join(", "));
    if !groups.is_empty() {
        s.push_str(&format!("; groups: {}", groups.join(", ")));
    }
    s
}

fn defined_services(services: &[String]) -> String {
    if services.is_empty() {
        "no services are defined: add a [services.NAME] table".into()
    } else {
        format!("defined: {}", services.join(", "))
    }
}

/// The hosts a group stands for, nested groups expanded, in first-seen order without
/// duplicates. A name in a cycle is not expanded twice (cycles are refused when loading).
fn expand_group(
    name: &str,
    groups: &BTreeMap<String, Vec<String>>,
    hosts: &BTreeMap<String, Host>,
    out: &mut Vec<String>,
    visiting: &mut Vec<String>,
) {
    let Some(members) = groups.get(name) else {
        return;
    };
    if visiting.iter().any(|v| v == name) {
        return;
    }
    visiting.push(name.to_string());
    for m in members {
        if hosts.contains_key(m) {
            if !out.contains(m) {
                out.push(m.clone());
            }
        } else {
            expand_group(m, groups, hosts, out, visiting);
        }
    }
    visiting.pop();
}

impl Config {
    /// The hosts of a group (nested groups expanded, first-seen order, no duplicates).
    pub fn group_hosts(&self, group: &str) -> Vec<String> {
        let mut out = Vec::new();
        expand_group(group, &self.groups, &self.hosts, &mut out, &mut Vec::new());
        out
    }

    /// Hosts selected by `--host` (all when empty): host and group names, expanded, without
    /// duplicates, in config order.
    pub fn select_hosts(&self, names: &[String]) -> Result<Vec<&Host>, SelectError> {
        if names.is_empty() {
            return Ok(self.hosts.values().collect());
        }
        let mut wanted = BTreeSet::new();
        for n in names {
            if self.hosts.contains_key(n) {
                wanted.insert(n.clone());
            } else if self.groups.contains_key(n) {
                let members = self.group_hosts(n);
                if members.is_empty() {
                    return Err(SelectError::EmptyGroup {
                        name: n.clone(),
                        file: self.path.clone(),
                    });
                }
                wanted.extend(members);
            } else {
                return Err(SelectError::UnknownHost {
                    name: n.clone(),
                    file: self.path.clone(),
                    hosts: self.hosts.keys().cloned().collect(),
                    groups: self.groups.keys().cloned().collect(),
                });
            }
        }
        Ok(self
            .hosts
            .values()
            .filter(|h| wanted.contains(&h.name))
            .collect())
    }

    /// Services selected by name (all when empty).
    pub fn select_services(&self, names: &[String]) -> Result<Vec<&Service>, SelectError> {
        if names.is_empty() {
            return Ok(self.services.values().collect());
        }
        names
            .iter()
            .map(|n| {
                self.services
                    .get(n)
                    .ok_or_else(|| SelectError::UnknownService {
                        name: n.clone(),
                        file: self.path.clone(),
                        services: self.services.keys().cloned().collect(),
                    })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Env {
        Env {
            home: Some(PathBuf::from("/home/me")),
            local_user: Some("me".into()),
            ssh_config: None,
        }
    }

    fn parse_ok(text: &str) -> Config {
        parse(text, Path::new("conf/deploy.toml"), &env()).unwrap_or_else(|e| panic!("{e}"))
    }

    fn parse_err(text: &str) -> ConfigErrors {
        parse(text, Path::new("conf/deploy.toml"), &env()).expect_err("config should be refused")
    }

    #[test]
    fn env_values_and_hooks() {
        let c = parse_ok(
            r#"
[hosts.a]
address = "a"
[services.api.env]
LOG_LEVEL = "info"
PORT = 8080
DATABASE_URL = { env = "API_DATABASE_URL" }
API_TOKEN = { command = "pass show api/token" }
SENTRY_DSN = { file = "secrets/sentry.dsn" }
[services.api.hooks]
before_switch = "bin/api migrate"
after_switch = "bin/api warm"
local_after = "scripts/notify.sh"
timeout = "2m"
"#,
        );
        let s = &c.services["api"];
        assert_eq!(s.env["LOG_LEVEL"], EnvValue::Literal("info".into()));
        assert_eq!(s.env["PORT"], EnvValue::Literal("8080".into()));
        assert_eq!(
            s.env["DATABASE_URL"],
            EnvValue::Env("API_DATABASE_URL".into())
        );
        assert_eq!(
            s.env["API_TOKEN"],
            EnvValue::Command {
                command: "pass show api/token".into(),
                dir: "conf".into()
            }
        );
        assert_eq!(
            s.env["SENTRY_DSN"],
            EnvValue::File("conf/secrets/sentry.dsn".into())
        );
        assert_eq!(s.hooks.before_switch.as_deref(), Some("bin/api migrate"));
        assert_eq!(s.hooks.timeout, Duration::from_secs(120));
        // The after_switch hook runs while the self-revert is armed.
        assert_eq!(
            s.confirm_timeout,
            Duration::from_secs(30 + 120 + 10) + Duration::from_millis(1500)
        );
        assert_eq!(c.services["api"].hooks.dir, PathBuf::from("conf"));
    }

    #[test]
    fn bad_env_and_hooks_name_line_and_key() {
        let e = parse_err(
            "[hosts.a]\naddress = \"a\"\n[services.api.env]\n\"1X\" = \"v\"\nA = { vault = \"x\" }\nB = { env = \"X\", file = \"y\" }\nFERRY_HOST = \"x\"\nC = [1]\n[services.api.hooks]\nbefore_switch = \" \"\ntimeout = \"soon\"\n",
        );
        let text = e.to_string();
        for (line, key) in [
            (4, "services.api.env.1X"),
            (5, "services.api.env.A"),
            (6, "services.api.env.B"),
            (7, "services.api.env.FERRY_HOST"),
            (8, "services.api.env.C"),
            (10, "services.api.hooks.before_switch"),
            (11, "services.api.hooks.timeout"),
        ] {
            assert!(
                text.contains(&format!("conf/deploy.toml:{line}: `{key}`")),
                "{key} at line {line}:\n{text}"
            );
        }
        // A multi-line value is fine (a PEM key); an escape character is not.
        parse_ok(
            "[hosts.a]\naddress = \"a\"\n[services.api.env]\nKEY = \"\"\"\nline1\nline2\n\"\"\"\n",
        );
    }

    #[test]
    fn vars_templates_and_instances() {
        let c = parse_ok(
            "[hosts.a]\naddress = \"a\"\n[hosts.a.vars]\nport = 8081\n[services.api]\ntemplates = true\nunits = [\"api@.service\"]\n[services.api.instances]\n\"api@.service\" = 3\n",
        );
        let s = &c.services["api"];
        assert!(s.templates);
        assert_eq!(s.instances["api@.service"], InstanceCount::Fixed(3));
        assert_eq!(s.host_context["a"]["vars"]["port"], 8081);
        assert_eq!(s.host_context["a"]["user"], "me");
        let e = parse_err(
            "[hosts.a]\naddress = \"a\"\n[services.api]\nunits = [\"api@.service\", \"b.service\"]\n[services.api.instances]\n\"b.service\" = 2\n\"api@.service\" = -1\n",
        );
        let text = e.to_string();
        assert!(
            text.contains(":6: `services.api.instances.b.service`")
                && text.contains(":7: `services.api.instances.api@.service`"),
            "{text}"
        );
    }

    #[test]
    fn defaults_apply_and_hosts_override() {
        let c = parse_ok(
            r#"
[defaults]
user = "deploy"
port = 2222
connect_timeout = "3s"
host_key_policy = "accept-new"

[hosts.a]
address = "a.example"

[hosts.b]
address = "b.example"
user = "other"
port = 22
identity = "~/.ssh/id_b"
known_hosts = "kh"
host_key_policy = "strict"
"#,
        );
        let a = &c.hosts["a"];
        assert_eq!(a.user, "deploy");
        assert_eq!(a.port, 2222);
        assert_eq!(a.connect_timeout, Duration::from_secs(3));
        assert_eq!(a.host_key_policy, HostKeyPolicy::AcceptNew);
        assert_eq!(a.identity, None);
        assert_eq!(a.known_hosts, PathBuf::from("/home/me/.ssh/known_hosts"));
        let b = &c.hosts["b"];
        assert_eq!(b.user, "other");
        assert_eq!(b.port, 22);
        assert_eq!(b.identity, Some(PathBuf::from("/home/me/.ssh/id_b")));
        assert_eq!(b.known_hosts, PathBuf::from("conf/kh"));
        assert_eq!(b.host_key_policy, HostKeyPolicy::Strict);
    }

    #[test]
    fn proxy_jump_resolves_one_level() {
        let c = parse_ok(
            "[hosts.bastion]\naddress = \"b\"\n[hosts.web]\naddress = \"10.0.0.5\"\nproxy_jump = \"bastion\"\n",
        );
        assert_eq!(c.hosts["web"].proxy_jump.as_ref().unwrap().address, "b");
        assert!(c.hosts["bastion"].proxy_jump.is_none());
        let e = parse_err("[hosts.web]\naddress = \"x\"\nproxy_jump = \"nope\"\n");
        assert_eq!(e.0[0].key, "hosts.web.proxy_jump");
        let e = parse_err("[hosts.web]\naddress = \"x\"\nproxy_jump = \"web\"\n");
        assert!(e.0[0].message.contains("itself"));
        let e = parse_err(
            "[hosts.a]\naddress = \"x\"\nproxy_jump = \"b\"\n[hosts.b]\naddress = \"y\"\nproxy_jump = \"c\"\n[hosts.c]\naddress = \"z\"\n",
        );
        assert!(e.0[0].message.contains("only one jump"), "{e}");
    }

    #[test]
    fn ssh_config_applies_under_deploy_toml() {
        let cfg = ssh2_config::SshConfig::default()
            .home_dir("/home/me")
            .parse(
                &mut "Host web\n  HostName 10.1.2.3\n  User alice\n  Port 2200\n  IdentityFile ~/.ssh/web_key\n  ConnectTimeout 4\n".as_bytes(),
                ssh2_config::ParseRule::STRICT,
            )
            .unwrap();
        let env = Env {
            ssh_config: Some(cfg),
            ..env()
        };
        let c = parse(
            "[hosts.a]\naddress = \"web\"\n[hosts.b]\naddress = \"web\"\nuser = \"bob\"\nport = 22\n[hosts.c]\naddress = \"other\"\n",
            Path::new("deploy.toml"),
            &env,
        )
        .unwrap();
        let a = &c.hosts["a"];
        assert_eq!(a.address, "10.1.2.3");
        assert_eq!(a.user, "alice");
        assert_eq!(a.port, 2200);
        assert_eq!(a.identity, Some(PathBuf::from("/home/me/.ssh/web_key")));
        assert_eq!(a.connect_timeout, Duration::from_secs(4));
        let b = &c.hosts["b"];
        assert_eq!((b.user.as_str(), b.port), ("bob", 22));
        assert_eq!(c.hosts["c"].address, "other");
        assert_eq!(c.hosts["c"].user, "me");
    }

    #[test]
    fn local_user_is_the_default_user() {
        let c = parse_ok("[hosts.a]\naddress = \"x\"\n");
        assert_eq!(c.hosts["a"].user, "me");
        assert_eq!(c.hosts["a"].port, 22);
        assert_eq!(c.hosts["a"].connect_timeout, Duration::from_secs(10));
    }

    #[test]
    fn unknown_key_names_line_and_key() {
        let e = parse_err("[hosts.a]\naddress = \"x\"\nprot = 22\n");
        let text = e.to_string();
        assert!(text.starts_with("conf/deploy.toml:3"), "{text}");
        assert!(text.contains("prot"), "{text}");
    }

    #[test]
    fn wrong_type_names_line() {
        let e = parse_err("[defaults]\nport = \"22\"\n[hosts.a]\naddress = \"x\"\n");
        assert_eq!(e.0[0].line, Some(2), "{e}");
        assert_eq!(e.0[0].key, "defaults.port", "{e}");
        let e = parse_err("[hosts.a]\naddress = \"x\"\n[services.s]\nunits = [\"a.service\", 3]\n");
        assert_eq!(e.0[0].key, "services.s.units[1]", "{e}");
        let e = parse_err(
            "[hosts.a]\naddress = \"x\"\n[[services.s.files]]\nsource = 1\ndest = \"d\"\n",
        );
        assert_eq!(e.0[0].key, "services.s.files[0].source", "{e}");
    }

    #[test]
    fn bad_duration_and_policy() {
        let e = parse_err("[defaults]\nconnect_timeout = \"soon\"\n[hosts.a]\naddress = \"x\"\n");
        assert_eq!(e.0[0].line, Some(2), "{e}");
        assert_eq!(e.0[0].key, "defaults.connect_timeout");
        let e = parse_err("[hosts.a]\naddress = \"x\"\nhost_key_policy = \"yolo\"\n");
        assert_eq!(e.0[0].line, Some(3), "{e}");
        assert!(e.to_string().contains("strict"), "{e}");
    }

    const SERVICE_OK: &str = r#"
[hosts.web1]
address = "w1"
[hosts.web2]
address = "w2"

[services.app]
units = ["deploy/app.service", "deploy/app.socket"]

[[services.app.files]]
source = "target/app"
dest = "bin/app"
mode = "0755"
"#;

    #[test]
    fn service_defaults() {
        let c = parse_ok(SERVICE_OK);
        let s = &c.services["app"];
        assert_eq!(s.hosts, vec!["web1", "web2"]);
        assert_eq!(s.restart, vec!["app.service"]);
        assert!(s.enable);
        assert_eq!(s.start_timeout, Duration::from_secs(30));
        assert_eq!(s.settle_time, Duration::from_millis(1500));
        assert_eq!(s.keep_releases, 5);
        assert_eq!(s.confirm_timeout, Duration::from_secs(60));
        let c = parse_ok("[hosts.h]\naddress = \"x\"\n[services.s]\nstart_timeout = \"5m\"\n");
        assert_eq!(
            c.services["s"].confirm_timeout,
            Duration::from_secs(300) + Duration::from_millis(1500) + Duration::from_secs(10)
        );
        assert_eq!(s.units[0].name, "app.service");
        assert_eq!(s.units[0].source, PathBuf::from("conf/deploy/app.service"));
        assert_eq!(s.files[0].mode, 0o755);
        assert_eq!(s.files[0].dest, "bin/app");
    }

    fn service_err(extra_service: &str, extra_file: &str) -> ConfigErrors {
        let text = format!(
            "[hosts.web1]\naddress = \"w1\"\n[services.app]\nunits = [\"app.service\"]\n{extra_service}\n[[services.app.files]]\nsource = \"a\"\ndest = \"bin/a\"\n{extra_file}\n"
        );
        parse_err(&text)
    }

    #[test]
    fn service_errors_name_key_and_line() {
        let e = service_err("hosts = [\"web9\"]", "");
        assert_eq!(e.0[0].key, "services.app.hosts[0]");
        assert_eq!(e.0[0].line, Some(5));
        assert!(e.0[0].message.contains("web9"));

        let e = service_err("", "mode = \"rwx\"");
        assert_eq!(e.0[0].key, "services.app.files[0].mode");
        assert_eq!(e.0[0].line, Some(9));

        let e = service_err("start_timeout = \"fast\"", "");
        assert_eq!(e.0[0].key, "services.app.start_timeout");

        let e = service_err("restart = [\"other.service\"]", "");
        assert_eq!(e.0[0].key, "services.app.restart[0]");
    }

    #[test]
    fn dest_rules() {
        assert_eq!(normalize_dest("bin//./app").unwrap(), "bin/app");
        assert!(normalize_dest("/etc/passwd").is_err());
        assert!(normalize_dest("../x").is_err());
        assert!(normalize_dest("a/../../x").is_err());
        assert!(normalize_dest("").is_err());
        assert!(normalize_dest("units/x").is_err());
        let e = parse_err(
            "[hosts.h]\naddress = \"x\"\n[services.s]\n[[services.s.files]]\nsource = \"a\"\ndest = \"bin/a\"\n[[services.s.files]]\nsource = \"b\"\ndest = \"bin//a\"\n",
        );
        assert_eq!(e.0[0].key, "services.s.files[1].dest");
        assert_eq!(e.0[0].line, Some(9));
        assert!(e.0[0].message.contains("files[0]"));
    }

    #[test]
    fn bad_unit_names_are_refused() {
        let e = parse_err(
            "[hosts.h]\naddress = \"x\"\n[services.s]\nunits = [\"ok.service\", \"bad name.service\", \"x.conf\"]\n",
        );
        assert_eq!(e.0.len(), 2, "{e}");
        assert_eq!(e.0[0].key, "services.s.units[1]");
        assert_eq!(e.0[1].key, "services.s.units[2]");
    }

    #[test]
    fn secret_files_default_to_0600_and_refuse_loose_modes() {
        let c = parse_ok(
            "[hosts.h]\naddress = \"x\"\n[services.s]\n[[services.s.files]]\nsource = \"k\"\ndest = \"etc/key\"\nsecret = true\n",
        );
        assert_eq!(c.services["s"].files[0].mode, 0o600);
        assert!(c.services["s"].files[0].secret);
        let e = parse_err(
            "[hosts.h]\naddress = \"x\"\n[services.s]\n[[services.s.files]]\nsource = \"k\"\ndest = \"etc/key\"\nsecret = true\nmode = \"0644\"\n",
        );
        assert_eq!(e.0[0].key, "services.s.files[0].mode");
        assert!(e.0[0].message.contains("secret"));
    }

    #[test]
    fn modes() {
        assert_eq!(parse_mode("0755").unwrap(), 0o755);
        assert_eq!(parse_mode("600").unwrap(), 0o600);
        assert_eq!(parse_mode("0o640").unwrap(), 0o640);
        assert!(parse_mode("0855").is_err());
        assert!(parse_mode("0044").is_err());
        assert!(parse_mode("77777").is_err());
    }

    #[test]
    fn one_error_per_mistake_in_octal_and_https() {
        let e = parse_err(
            "[hosts.h]\naddress = \"x\"\nuser = \"u\"\n[services.s]\n[[services.s.files]]\nsource = \"a\"\ndest = \"a\"\nsecret = true\nmode = \"0644\"\n[services.s.health]\nhttp = \"https://h/x\"\n",
        );
        let text = e.to_string();
        assert!(text.contains("`0644`: a secret file"), "{text}");
        assert!(!text.contains("`420`"), "{text}");
        assert!(text.contains("only http:// URLs"), "{text}");
        assert!(!text.contains("no check set"), "{text}");
    }

    #[test]
    fn http_urls() {
        let c = parse_http_url("http://127.0.0.1:8080/healthz?x=1").unwrap();
        assert_eq!(
            (c.host.as_str(), c.port, c.path.as_str()),
            ("127.0.0.1", 8080, "/healthz?x=1")
        );
        let c = parse_http_url("http://localhost").unwrap();
        assert_eq!((c.port, c.path.as_str()), (80, "/"));
        let c = parse_http_url("http://[::1]:81/x").unwrap();
        assert_eq!((c.host.as_str(), c.port), ("::1", 81));
        assert!(parse_http_url("https://x/").is_err());
        assert!(parse_http_url("http://x:port/").is_err());
    }

    #[test]
    fn confirm_timeout_must_cover_verification() {
        let e = parse_err(
            "[hosts.h]\naddress = \"x\"\n[services.s]\nstart_timeout = \"30s\"\nconfirm_timeout = \"20s\"\n",
        );
        assert_eq!(e.0[0].key, "services.s.confirm_timeout");
    }

    #[test]
    fn several_errors_are_all_reported() {
        let e = parse_err(
            "[hosts.h]\naddress = \"x\"\nconnect_timeout = \"x\"\n[services.s]\nhosts = [\"nope\"]\nkeep_releases = 1\n",
        );
        assert_eq!(e.0.len(), 3, "{e}");
    }

    // --- refused values that used to pass ------------------------------------------------------

    fn files_err(dests: &[&str]) -> ConfigErrors {
        let mut text = String::from("[hosts.h]\naddress = \"x\"\n[services.s]\n");
        for d in dests {
            text.push_str(&format!(
                "[[services.s.files]]\nsource = \"a\"\ndest = \"{d}\"\n"
            ));
        }
        parse_err(&text)
    }

    #[test]
    fn dest_with_control_characters_is_refused() {
        for dest in [r"bin/\u001b[31mapp", r"bin/a\nb", r"bin/a\tb"] {
            let e = files_err(&[dest]);
            assert_eq!(e.0.len(), 1, "{e}");
            assert_eq!(e.0[0].key, "services.s.files[0].dest", "{e}");
            assert_eq!(e.0[0].line, Some(6), "{e}");
            assert!(e.0[0].message.contains("control character"), "{e}");
            // What reaches the terminal is escaped.
            assert!(!e.to_string().contains(['\u{1b}', '\t']), "{e:?}");
            assert_eq!(e.to_string().lines().count(), 1, "{e}");
        }
        assert!(normalize_dest("bin/\u{1b}[31mx").is_err());
        assert!(normalize_dest("bin/a\nb").is_err());
        assert!(normalize_dest("a\0b").is_err());
    }

    #[test]
    fn dest_naming_a_directory_is_refused() {
        let e = files_err(&["bin/"]);
        assert_eq!(e.0[0].key, "services.s.files[0].dest");
        assert_eq!(e.0[0].line, Some(6));
        assert!(
            e.0[0]
                .message
                .contains("names a directory; give the file name"),
            "{e}"
        );
        assert!(normalize_dest("bin/.").is_err());
        assert_eq!(normalize_dest("bin/app").unwrap(), "bin/app");
    }

    #[test]
    fn a_dest_cannot_be_a_file_and_a_directory() {
        let e = files_err(&["bin", "share/x", "bin/x"]);
        assert_eq!(e.0.len(), 1, "{e}");
        assert_eq!(e.0[0].key, "services.s.files[2].dest");
        assert_eq!(e.0[0].line, Some(12));
        let m = &e.0[0].message;
        assert!(
            m.contains("`bin/x`") && m.contains("`bin`") && m.contains("files[0]"),
            "{e}"
        );
        // The other order: the directory comes first.
        let e = files_err(&["bin/x/y", "bin"]);
        assert_eq!(e.0[0].key, "services.s.files[1].dest");
        assert_eq!(e.0[0].line, Some(9));
        let m = &e.0[0].message;
        assert!(m.contains("`bin/x/y`") && m.contains("files[0]"), "{e}");
        // Siblings sharing a directory are fine.
        parse_ok(
            "[hosts.h]\naddress = \"x\"\n[services.s]\n[[services.s.files]]\nsource = \"a\"\ndest = \"bin/a\"\n[[services.s.files]]\nsource = \"a\"\ndest = \"bin/ab\"\n",
        );
    }

    #[test]
    fn durations_are_capped_at_a_day() {
        let e = parse_err("[hosts.h]\naddress = \"x\"\n[services.s]\nconfirm_timeout = \"25h\"\n");
        assert_eq!(e.0[0].key, "services.s.confirm_timeout");
        assert_eq!(e.0[0].line, Some(4));
        assert!(e.0[0].message.contains("longer than 24h"), "{e}");
        for key in ["start_timeout", "settle_time"] {
            let e = parse_err(&format!(
                "[hosts.h]\naddress = \"x\"\n[services.s]\n{key} = \"2days\"\n"
            ));
            assert_eq!(e.0[0].key, format!("services.s.{key}"), "{e}");
            assert_eq!(e.0[0].line, Some(4), "{e}");
        }
        let e = parse_err(
            "[hosts.h]\naddress = \"x\"\n[services.s]\n[services.s.health]\ncommand = \"true\"\ntimeout = \"100000h\"\n",
        );
        assert_eq!(e.0[0].key, "services.s.health.timeout");
        assert_eq!(e.0[0].line, Some(6));
        let e = parse_err("[defaults]\nconnect_timeout = \"48h\"\n[hosts.h]\naddress = \"x\"\n");
        assert_eq!(e.0[0].key, "defaults.connect_timeout");
        // Each within the cap, but together they leave the rollback timer no room.
        let e = parse_err(
            "[hosts.h]\naddress = \"x\"\n[services.s]\nstart_timeout = \"20h\"\n[services.s.health]\ncommand = \"true\"\ntimeout = \"20h\"\n",
        );
        assert_eq!(e.0[0].key, "services.s.confirm_timeout", "{e}");
        assert_eq!(e.0[0].line, Some(3), "{e}");
        assert!(e.0[0].message.contains("shorten them"), "{e}");
        let c = parse_ok("[hosts.h]\naddress = \"x\"\n[services.s]\nconfirm_timeout = \"24h\"\n");
        assert_eq!(c.services["s"].confirm_timeout, MAX_DURATION);
    }

    #[test]
    fn control_characters_in_names_and_values_are_refused() {
        let e = parse_err("[hosts.a]\naddress = \"x\"\nuser = \"bob\\u001b[2J\"\n");
        assert_eq!(
            (e.0[0].key.as_str(), e.0[0].line),
            ("hosts.a.user", Some(3))
        );
        assert_eq!(e.0.len(), 1, "one error per key: {e}");
        let e = parse_err("[hosts.a]\naddress = \"x\\r\"\n");
        assert_eq!(
            (e.0[0].key.as_str(), e.0[0].line),
            ("hosts.a.address", Some(2))
        );
        let e = parse_err("[defaults]\nuser = \"a\\u0007\"\n[hosts.a]\naddress = \"x\"\n");
        assert_eq!(e.0[0].key, "defaults.user", "{e}");
        let e = parse_err(
            "[hosts.h]\naddress = \"x\"\n[services.s]\nunits = [\"ok.service\", \"a\\u001b.service\"]\nrestart = [\"ok.service\\n\"]\n",
        );
        let keys: Vec<&str> = e.0.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(
            keys,
            ["services.s.units[1]", "services.s.restart[0]"],
            "{e}"
        );
        assert_eq!(e.0[1].line, Some(5));
        let e = parse_err("[hosts.\"a\\u001b\"]\naddress = \"x\"\n");
        assert_eq!(e.0[0].line, Some(1), "{e}");
        assert!(!e.to_string().contains('\u{1b}'), "{e:?}");
        // A health command may span lines.
        let c = parse_ok(
            "[hosts.h]\naddress = \"x\"\n[services.s.health]\ncommand = \"\"\"\ntest -e /a\n\\ttest -e /b\n\"\"\"\n",
        );
        assert!(
            c.services["s"]
                .health
                .as_ref()
                .unwrap()
                .command
                .as_ref()
                .unwrap()
                .contains('\n')
        );
    }

    // --- local files --------------------------------------------------------------------------

    #[test]
    fn missing_or_unusable_identity_is_a_config_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("deploy.toml");
        std::fs::write(dir.path().join("key"), "k").unwrap();
        let load = |text: &str, env: &Env| load_text(text, &path, env);
        load("[hosts.a]\naddress = \"x\"\nidentity = \"key\"\n", &env()).unwrap();

        let e = load("[hosts.a]\naddress = \"x\"\nidentity = \"nope\"\n", &env()).unwrap_err();
        assert_eq!(
            (e.0[0].key.as_str(), e.0[0].line),
            ("hosts.a.identity", Some(3))
        );
        assert!(e.0[0].message.contains("does not exist"), "{e}");
        assert!(
            e.0[0]
                .message
                .contains(&dir.path().join("nope").display().to_string()),
            "{e}"
        );

        // From [defaults]: reported once, where it is written.
        let e = load(
            "[defaults]\nidentity = \"~/.ssh/none\"\n[hosts.a]\naddress = \"x\"\n[hosts.b]\naddress = \"y\"\n",
            &env(),
        )
        .unwrap_err();
        assert_eq!(e.0.len(), 1, "{e}");
        assert_eq!(
            (e.0[0].key.as_str(), e.0[0].line),
            ("defaults.identity", Some(2))
        );
        assert!(e.0[0].message.contains("/home/me/.ssh/none"), "{e}");

        // A directory is no key.
        let e = load("[hosts.a]\naddress = \"x\"\nidentity = \".\"\n", &env()).unwrap_err();
        assert!(e.0[0].message.contains("not a regular file"), "{e}");

        // From ~/.ssh/config: located at the address it applies to.
        let ssh = ssh2_config::SshConfig::default()
            .home_dir("/home/me")
            .parse(
                &mut "Host web\n  IdentityFile ~/.ssh/missing\n".as_bytes(),
                ssh2_config::ParseRule::STRICT,
            )
            .unwrap();
        let env = Env {
            ssh_config: Some(ssh),
            ..env()
        };
        let e = load("[hosts.a]\n\naddress = \"web\"\n", &env).unwrap_err();
        assert_eq!(
            (e.0[0].key.as_str(), e.0[0].line),
            ("hosts.a.address", Some(3))
        );
        assert!(e.0[0].message.contains("~/.ssh/config"), "{e}");
    }

    // --- groups --------------------------------------------------------------------------------

    const GROUPS: &str = r#"
[hosts.web1]
address = "w1"
[hosts.web2]
address = "w2"
[hosts.web3]
address = "w3"
[hosts.db]
address = "d"

[groups]
eu = ["web2", "web1"]
web = ["eu", "web3", "web1"]
all = ["web", "db"]
"#;

    #[test]
    fn groups_expand_nested_deduplicated_in_first_seen_order() {
        let c = parse_ok(&format!(
            "{GROUPS}[services.api]\nhosts = [\"db\", \"web\", \"web2\"]\n[services.all]\nhosts = [\"all\"]\n[services.default]\n"
        ));
        assert_eq!(c.services["api"].hosts, ["db", "web2", "web1", "web3"]);
        assert_eq!(c.services["all"].hosts, ["web2", "web1", "web3", "db"]);
        assert_eq!(c.services["default"].hosts, ["db", "web1", "web2", "web3"]);
        assert_eq!(c.groups["web"], ["eu", "web3", "web1"], "kept as written");
        assert_eq!(c.group_hosts("web"), ["web2", "web1", "web3"]);
    }

    #[test]
    fn select_hosts_takes_hosts_and_groups() {
        let c = parse_ok(GROUPS);
        let names = |sel: &[&str]| -> Vec<String> {
            let sel: Vec<String> = sel.iter().map(|s| s.to_string()).collect();
            c.select_hosts(&sel)
                .unwrap()
                .into_iter()
                .map(|h| h.name.clone())
                .collect()
        };
        assert_eq!(names(&[]), ["db", "web1", "web2", "web3"]);
        assert_eq!(names(&["eu"]), ["web1", "web2"], "config order");
        assert_eq!(names(&["web3", "eu", "web1"]), ["web1", "web2", "web3"]);
        assert_eq!(names(&["db"]), ["db"]);
        let e = c.select_hosts(&["nope".to_string()]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--host nope: no such host or group in conf/deploy.toml; hosts: db, web1, web2, web3; groups: all, eu, web"
        );
    }

    #[test]
    fn selection_errors_say_what_is_defined() {
        let c = parse_ok("");
        let e = c.select_hosts(&["x".into()]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--host x: no such host or group in conf/deploy.toml; no hosts are defined: add a [hosts.NAME] table"
        );
        let e = c.select_services(&["x".into()]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "no service `x` in conf/deploy.toml; no services are defined: add a [services.NAME] table"
        );
        let c = parse_ok("[hosts.h]\naddress = \"x\"\n[services.a]\n[services.b]\n");
        let e = c.select_services(&["x".into()]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "no service `x` in conf/deploy.toml; defined: a, b"
        );
        assert_eq!(c.select_services(&["b".into()]).unwrap()[0].name, "b");
        let e = c.select_hosts(&["x".into()]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--host x: no such host or group in conf/deploy.toml; hosts: h"
        );
        let c = parse_ok("[hosts.h]\naddress = \"x\"\n[groups]\nnone = []\n");
        let e = c.select_hosts(&["none".into()]).unwrap_err();
        assert!(matches!(e, SelectError::EmptyGroup { .. }), "{e}");
        assert!(e.to_string().contains("has no hosts"), "{e}");
    }

    #[test]
    fn group_errors_name_line_and_key() {
        let hosts = "[hosts.a]\naddress = \"x\"\n[hosts.b]\naddress = \"y\"\n[groups]\n";
        // An unknown member.
        let e = parse_err(&format!("{hosts}g = [\"a\", \"c\"]\n"));
        assert_eq!((e.0[0].key.as_str(), e.0[0].line), ("groups.g[1]", Some(6)));
        assert_eq!(
            e.0[0].message,
            "no host or group `c`; defined hosts: a, b; groups: g"
        );
        // A cycle, named in full.
        let e = parse_err(&format!("{hosts}x = [\"a\", \"y\"]\ny = [\"x\"]\n"));
        assert_eq!(e.0.len(), 1, "{e}");
        assert_eq!((e.0[0].key.as_str(), e.0[0].line), ("groups.y[0]", Some(7)));
        assert!(e.0[0].message.contains("x -> y -> x"), "{e}");
        let e = parse_err(&format!("{hosts}x = [\"x\"]\n"));
        assert!(e.0[0].message.contains("x -> x"), "{e}");
        // A group named like a host.
        let e = parse_err(&format!("{hosts}a = [\"b\"]\n"));
        assert_eq!((e.0[0].key.as_str(), e.0[0].line), ("groups.a", Some(6)));
        assert!(e.0[0].message.contains("both a host and a group"), "{e}");
        // An unknown name in a service's hosts.
        let e = parse_err(&format!(
            "{hosts}g = [\"a\"]\n[services.s]\nhosts = [\"g\", \"zz\"]\n"
        ));
        assert_eq!(
            (e.0[0].key.as_str(), e.0[0].line),
            ("services.s.hosts[1]", Some(8))
        );
        assert_eq!(
            e.0[0].message,
            "no host or group `zz`; defined hosts: a, b; groups: g"
        );
        // An empty group used by a service (also through a group of empty groups).
        let e = parse_err(&format!(
            "{hosts}none = []\nnested = [\"none\"]\n[services.s]\nhosts = [\"a\", \"nested\"]\n"
        ));
        assert_eq!(e.0.len(), 1, "{e}");
        assert_eq!(
            (e.0[0].key.as_str(), e.0[0].line),
            ("services.s.hosts[1]", Some(9))
        );
        assert!(e.0[0].message.contains("`nested` has no hosts"), "{e}");
        // An empty list.
        let e = parse_err(&format!("{hosts}[services.s]\nhosts = []\n"));
        assert_eq!(e.0[0].key, "services.s.hosts");
        // Bad group names.
        let e = parse_err(&format!("{hosts}\"a b\" = [\"a\"]\n"));
        assert_eq!(e.0[0].key, "groups.a b");
    }

    // --- rollout -------------------------------------------------------------------------------

    fn rollout(table: &str) -> Result<Rollout, ConfigErrors> {
        parse(
            &format!("[hosts.h]\naddress = \"x\"\n[services.s.rollout]\n{table}"),
            Path::new("conf/deploy.toml"),
            &env(),
        )
        .map(|c| c.services["s"].rollout.clone())
    }

    #[test]
    fn rollout_defaults_and_values() {
        let d = parse_ok(SERVICE_OK).services["app"].rollout.clone();
        assert_eq!(d, Rollout::default());
        assert_eq!(
            (d.canary, d.batch, d.max_fail, d.pause),
            (0, Batch::All, 0, Duration::ZERO)
        );
        let r = rollout("canary = 1\nbatch = 2\nmax_fail = 1\npause = \"30s\"\n").unwrap();
        assert_eq!(
            r,
            Rollout {
                canary: 1,
                batch: Batch::Count(2),
                max_fail: 1,
                pause: Duration::from_secs(30)
            }
        );
        assert_eq!(
            rollout("batch = \"25%\"\n").unwrap().batch,
            Batch::Percent(25)
        );
        assert_eq!(
            rollout("batch = \"100%\"\n").unwrap().batch,
            Batch::Percent(100)
        );
        assert_eq!(rollout("pause = \"0s\"\n").unwrap().pause, Duration::ZERO);
    }

    #[test]
    fn rollout_errors_name_line_and_key() {
        for (batch, says) in [
            ("0", "at least 1 host"),
            ("-2", "at least 1 host"),
            ("\"0%\"", "at least 1 host"),
            ("\"101%\"", "at most 100%"),
            ("\"half\"", "not a count or a percentage"),
            ("\"x%\"", "not a percentage"),
            ("true", "not a batch size"),
        ] {
            let e = rollout(&format!("canary = 1\nbatch = {batch}\n")).unwrap_err();
            assert_eq!(e.0[0].key, "services.s.rollout.batch", "{batch}: {e}");
            assert_eq!(e.0[0].line, Some(5), "{batch}: {e}");
            assert!(e.0[0].message.contains(says), "{batch}: {e}");
        }
        let e = rollout("pause = \"soon\"\n").unwrap_err();
        assert_eq!(
            (e.0[0].key.as_str(), e.0[0].line),
            ("services.s.rollout.pause", Some(4))
        );
        let e = rollout("canary = -1\n").unwrap_err();
        assert_eq!(
            (e.0[0].key.as_str(), e.0[0].line),
            ("services.s.rollout.canary", Some(4))
        );
        let e = rollout("batches = 2\n").unwrap_err();
        assert_eq!(e.0[0].line, Some(4), "{e}");
        assert!(e.to_string().contains("batches"), "{e}");
    }

    #[test]
    fn batch_sizes() {
        assert_eq!(Batch::All.size(7), 7);
        assert_eq!(Batch::All.size(0), 1);
        assert_eq!(Batch::Count(2).size(7), 2);
        assert_eq!(Batch::Count(9).size(7), 7);
        assert_eq!(Batch::Percent(25).size(8), 2);
        assert_eq!(Batch::Percent(25).size(7), 2, "rounded up");
        assert_eq!(Batch::Percent(10).size(3), 1);
        assert_eq!(Batch::Percent(1).size(1), 1);
        assert_eq!(Batch::Percent(100).size(5), 5);
    }

    // --- health in release manifests ---------------------------------------------------------

    #[test]
    fn the_example_config_is_valid() {
        let c = parse(
            include_str!("../../deploy.example.toml"),
            Path::new("deploy.example.toml"),
            &env(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.services["demo"].hosts, ["local"]);
        assert_eq!(c.services["demo"].rollout, Rollout::default());
    }

    #[test]
    fn health_round_trips_through_json() {
        let c = parse_ok(
            "[hosts.h]\naddress = \"x\"\n[services.s.health]\nhttp = \"http://127.0.0.1:8080/healthz\"\nunix_http = { socket = \"%t/s.sock\" }\ncommand = \"true\"\ntimeout = \"1m 30s\"\ninterval = \"250ms\"\n",
        );
        let health = c.services["s"].health.clone().unwrap();
        let json = serde_json::to_string(&health).unwrap();
        assert!(json.contains(r#""timeout":"1m 30s""#), "{json}");
        assert!(json.contains(r#""interval":"250ms""#), "{json}");
        let back: Health = serde_json::from_str(&json).unwrap();
        assert_eq!(back, health);
        let none = Health {
            http: None,
            unix_http: None,
            command: Some("x".into()),
            timeout: Duration::from_millis(1500),
            interval: Duration::from_secs(1),
        };
        let back: Health = serde_json::from_str(&serde_json::to_string(&none).unwrap()).unwrap();
        assert_eq!(back, none);
    }

    // --- `run` and `lint` (issue 13) ---

    #[test]
    fn run_table_generates_units_that_restart_and_may_be_named() {
        let c = parse_ok(
            "[hosts.h]\naddress = \"x\"\n[services.aptly]\nunits = [\"extra.service\"]\n[services.aptly.run]\ncommand = \"bin/aptly api serve\"\nsocket = \"%t/aptly.sock\"\ntcp_proxy = \"127.0.0.1:8080\"\n",
        );
        let s = &c.services["aptly"];
        assert_eq!(
            s.restart,
            ["extra.service", "aptly.service", "aptly-proxy.service"]
        );
        let run = s.run.as_ref().unwrap();
        assert_eq!(run.restart, "on-failure");
        assert!(!run.environment_file);
        assert_eq!(s.lint, crate::systemd::lint::Level::Warn);
        let c = parse_ok(
            "[hosts.h]\naddress = \"x\"\n[services.a]\nrestart = [\"a.service\"]\nlint = \"deny\"\n[services.a.run]\ncommand = \"/bin/sleep 100\"\n",
        );
        assert_eq!(c.services["a"].restart, ["a.service"]);
        assert_eq!(c.services["a"].lint, crate::systemd::lint::Level::Deny);
    }

    #[test]
    fn run_table_errors_name_their_key() {
        let e = parse_err(
            "[hosts.h]\naddress = \"x\"\n[services.a]\nlint = \"strict\"\nunits = [\"a.service\"]\n[services.a.run]\ncommand = \"bin/a\"\ntcp_proxy = \"8080\"\nrestart = \"sometimes\"\n",
        );
        let keys: Vec<&str> = e.0.iter().map(|e| e.key.as_str()).collect();
        assert!(keys.contains(&"services.a.run.tcp_proxy"), "{e}");
        assert!(keys.contains(&"services.a.run.restart"), "{e}");
        assert!(keys.contains(&"services.a.lint"), "{e}");
        assert!(e.to_string().contains("also listed in `units`"), "{e}");
        let e = parse_err(
            "[hosts.h]\naddress = \"x\"\n[services.a.run]\ncommand = \"bin/a\"\nuser = \"root\"\n",
        );
        assert!(e.to_string().contains("user"), "{e}");
    }
}
