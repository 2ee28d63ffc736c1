//! Validation of the raw config into the model: one `Validator` collects every problem with
//! its file, line and key. The top level, defaults and hosts are here; services in `service`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::de::{DeTable, DeValue};

use super::*;
use crate::config::ssh::{Jump, Resolved, System};

mod after;
mod service;
mod ssh;
mod switch;

/// The longest duration ferry accepts. Anything longer is a slip (`"30h"` for `"30s"`), and the
/// automatic-rollback timer (`systemd-run --on-active=confirm_timeout`) must fire the same day.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);

pub(crate) struct Validator<'a> {
    pub(crate) doc: &'a Doc<'a>,
    pub(crate) path: &'a Path,
    pub(crate) errors: Vec<ConfigError>,
}

impl<'a> Validator<'a> {
    pub(crate) fn new(doc: &'a Doc<'a>, path: &'a Path) -> Self {
        Validator {
            doc,
            path,
            errors: Vec::new(),
        }
    }

    /// The errors, in the order of the file (top to bottom), or Ok.
    pub(crate) fn finish(mut self) -> Result<(), ConfigErrors> {
        self.errors.sort_by_key(|e| e.line.unwrap_or(usize::MAX));
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ConfigErrors(self.errors))
        }
    }

    /// One error per key: the first problem found is the one reported.
    pub(crate) fn error(&mut self, key: &[Seg], message: impl Into<String>) {
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
    pub(crate) fn duration_or_zero(
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

    pub(crate) fn duration(
        &mut self,
        key: &[Seg],
        value: Option<&str>,
        default: Duration,
    ) -> Duration {
        self.duration_or_zero(key, value, default, false)
    }

    /// Control characters in any key or string value are refused: names and paths are printed
    /// (`--dry-run`, errors, events), and an escape sequence in them would drive the terminal.
    /// A health `command`, hooks and env values (never printed) may span lines (newlines and
    /// tabs).
    pub(crate) fn control_characters(&mut self) {
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

    pub(crate) fn config(&mut self, raw: RawConfig, env: &Env, base: &Path) -> Config {
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
        self.proxy_jumps(&mut hosts, &jumps);
        // Hosts others jump through: hops, not deploy targets unless a service names them.
        let jumping_through: BTreeSet<String> = jumps.iter().map(|(_, j)| j.clone()).collect();
        let groups = raw.groups;
        self.groups(&groups, &hosts);
        let mut services = BTreeMap::new();
        for (name, s) in raw.services {
            let mut svc = self.service(&name, s, &hosts, &groups, &jumping_through, base);
            svc.host_context = host_context(&svc.hosts, &hosts, &vars);
            services.insert(name, svc);
        }
        self.after(&services);
        Config {
            path: self.path.to_path_buf(),
            hosts,
            groups,
            services,
        }
    }

    /// `proxy_jump` (host, the host it jumps through): through other hosts of this file, any
    /// number of hops (a jump host's own proxy_jump is followed), cycles refused. Each host's
    /// `proxy_jump` is set to its chain of hops.
    fn proxy_jumps(&mut self, hosts: &mut BTreeMap<String, Host>, jumps: &[(String, String)]) {
        let jump_of: BTreeMap<String, String> = jumps.iter().cloned().collect();
        for (name, jump) in jumps {
            let key = [Seg::Key("hosts"), Seg::Key(name), Seg::Key("proxy_jump")];
            if !hosts.contains_key(jump) {
                self.error(
                    &key,
                    format!("host `{jump}` is not defined; proxy_jump names another [hosts.NAME]"),
                );
                continue;
            }
            if jump == name {
                self.error(&key, "a host cannot jump through itself");
                continue;
            }
            // The hops from this host outwards: name, its jump, that one's jump, ...
            let mut chain = vec![name.clone()];
            let mut next = Some(jump.clone());
            let mut cycle = None;
            while let Some(hop) = next.take() {
                if chain.contains(&hop) {
                    cycle = Some(hop);
                    break;
                }
                chain.push(hop.clone());
                next = jump_of
                    .get(&hop)
                    .filter(|j| hosts.contains_key(*j))
                    .cloned();
            }
            if let Some(hop) = cycle {
                self.error(
                    &key,
                    format!(
                        "proxy_jump goes round in a circle: {} -> {hop}",
                        chain.join(" -> ")
                    ),
                );
                continue;
            }
            // Built from the outermost hop in: each hop connected through the one after it.
            let mut via: Option<Box<Host>> = None;
            for (i, hop) in chain[1..].iter().rev().enumerate() {
                let mut h = hosts[hop].clone();
                if i > 0 {
                    h.proxy_jump = via.take();
                }
                via = Some(Box::new(h));
            }
            if let Some(h) = hosts.get_mut(name) {
                h.proxy_jump = via;
            }
        }
    }

    /// `[groups]`: names that are not hosts, members that exist, no cycles.
    pub(crate) fn groups(
        &mut self,
        groups: &BTreeMap<String, Vec<String>>,
        hosts: &BTreeMap<String, Host>,
    ) {
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

    pub(crate) fn host(
        &mut self,
        name: &str,
        h: RawHost,
        d: &RawSettings,
        env: &Env,
        base: &Path,
    ) -> Host {
        let k = |key: &'static str| [Seg::Key("hosts"), Seg::Key(name), Seg::Key(key)];
        if !valid_name(name) {
            self.error(
                &[Seg::Key("hosts"), Seg::Key(name)],
                "host names may use letters, digits, `-`, `_` and `.` only",
            );
        }
        let written = h.address.trim().to_string();
        // The OpenSSH client config applies under what deploy.toml says (as `-o` over it).
        let ssh = self.resolve_ssh(&written, env, &k("address"));
        let set = |key: &str| {
            ssh.as_ref()
                .filter(|r| r.is_set(key))
                .and_then(|r| r.get(key))
        };
        let address = set("hostname").map_or_else(|| written.clone(), str::to_string);
        if address.is_empty() || address.contains(|c: char| c.is_whitespace() || c.is_control()) {
            self.error(&k("address"), "must be a host name or IP address");
        }
        let user = h
            .user
            .clone()
            .or(d.user.clone())
            .or(set("user").map(str::to_string))
            .or(env.local_user.clone());
        let user = self.host_user(&k("user"), user);
        let port = h
            .port
            .or(d.port)
            .or(set("port").and_then(|p| p.parse().ok()))
            .unwrap_or(22);
        if port == 0 {
            self.error(&k("port"), "port 0 is not valid");
        }
        let (identities, options) = match &ssh {
            Some(r) => self.ssh_options(r, &k("address")),
            None => Default::default(),
        };
        // deploy.toml's `identity` only: the IdentityFiles of the OpenSSH config are tried in
        // order when connecting (missing ones skipped), as ssh does.
        let identity = pick(name, &h.identity, &d.identity, "identity")
            .and_then(|(p, key)| env.expand(&p, base).map_err(|e| self.error(&key, e)).ok());
        let known_hosts = self.known_hosts(
            pick(name, &h.known_hosts, &d.known_hosts, "known_hosts"),
            &options,
            &k("known_hosts"),
            env,
            base,
        );
        let host_key_policy = h
            .host_key_policy
            .or(d.host_key_policy)
            .or(ssh.as_ref().and_then(ssh::host_key_policy))
            .unwrap_or(HostKeyPolicy::Strict);
        let connect_timeout = self.connect_timeout(
            pick(
                name,
                &h.connect_timeout,
                &d.connect_timeout,
                "connect_timeout",
            ),
            ssh.as_ref(),
        );
        let mut host = Host {
            name: name.to_string(),
            address,
            user,
            port,
            identity,
            known_hosts,
            host_key_policy,
            connect_timeout,
            compress: h.compress.or(d.compress).unwrap_or_default(),
            proxy_jump: None,
            identities,
            ssh: options,
            arch: self.arch(name, h.arch.as_deref()),
        };
        // ProxyJump of the OpenSSH config (deploy.toml's `proxy_jump` replaces it, as `-J`).
        if let (None, Some(r)) = (&h.proxy_jump, &ssh) {
            let hops = host.ssh.proxy_jumps.clone();
            let mut chain = vec![written.to_ascii_lowercase()];
            host.proxy_jump = self.ssh_jumps(&hops, r, &host, env, &k("address"), &mut chain);
        }
        host
    }

    /// A host's `connect_timeout`: as set (`picked`), else the OpenSSH config's, else 10 s.
    fn connect_timeout(
        &mut self,
        picked: Option<(String, Vec<Seg>)>,
        ssh: Option<&Resolved>,
    ) -> Duration {
        match picked {
            None => ssh
                .and_then(ssh::connect_timeout)
                .unwrap_or(Duration::from_secs(10)),
            Some((v, key)) => self.duration(&key, Some(&v), Duration::from_secs(10)),
        }
    }

    /// The OpenSSH client config for the host `written` in deploy.toml, if there is one; a
    /// problem is reported at `key` (the host's address).
    fn resolve_ssh(&mut self, written: &str, env: &Env, key: &[Seg]) -> Option<Resolved> {
        match env.ssh_config.as_ref().map(|c| c.resolve(written, &System)) {
            Some(Ok(r)) => Some(r),
            Some(Err(e)) => {
                self.error(key, format!("the OpenSSH client config: {e}"));
                None
            }
            None => None,
        }
    }

    /// A host's `user` (from deploy.toml, the OpenSSH config or the local user name).
    fn host_user(&mut self, key: &[Seg], user: Option<String>) -> String {
        match user {
            Some(u) if valid_user(&u) => u,
            Some(u) => {
                self.error(key, format!("`{u}` is not a valid user name"));
                u
            }
            None => {
                self.error(
                    key,
                    "no user set and the local user name is unknown: set `user`",
                );
                String::new()
            }
        }
    }

    /// A host's `known_hosts`: as set (`picked`), else the OpenSSH config's first
    /// UserKnownHostsFile, else `~/.ssh/known_hosts`; a problem of the last is reported at `key`.
    fn known_hosts(
        &mut self,
        picked: Option<(String, Vec<Seg>)>,
        options: &SshOptions,
        key: &[Seg],
        env: &Env,
        base: &Path,
    ) -> PathBuf {
        match picked {
            Some((p, key)) => env.expand(&p, base).unwrap_or_else(|e| {
                self.error(&key, e);
                PathBuf::new()
            }),
            None => match options.user_known_hosts.first() {
                Some(p) => p.clone(),
                None => env.expand("~/.ssh/known_hosts", base).unwrap_or_else(|e| {
                    self.error(key, e);
                    PathBuf::new()
                }),
            },
        }
    }

    /// `arch` of `[hosts.NAME]`: one of [`ARCHES`] (`amd64` and `arm64` are Debian's names
    /// for two of them, and refused with the name `uname -m` prints).
    fn arch(&mut self, name: &str, arch: Option<&str>) -> Option<HostArch> {
        let arch = arch?;
        let key = [Seg::Key("hosts"), Seg::Key(name), Seg::Key("arch")];
        if !ARCHES.contains(&arch) {
            let hint = match arch {
                "amd64" => " (`uname -m` says x86_64)".to_string(),
                "arm64" => " (`uname -m` says aarch64)".to_string(),
                _ => String::new(),
            };
            self.error(
                &key,
                format!(
                    "`{arch}` is not an architecture ferry knows{hint}: write what `uname -m` prints on the host, one of {}",
                    ARCHES.join(", ")
                ),
            );
            return None;
        }
        Some(HostArch {
            name: arch.to_string(),
            file: self.path.to_path_buf(),
            line: self.doc.locate(&key),
        })
    }

    /// The hops of an OpenSSH `ProxyJump a,b` as hosts, as ssh goes through them (it runs
    /// `ssh -J a -W TARGET b` for the target, and `ssh -W b a` for b): each hop is resolved
    /// through the OpenSSH config under its own name, with the hop's `user@` and `:port` taken
    /// first (as `-l` and `-p`). The target goes through the last hop, each hop through the one
    /// before it; the first hop's own ProxyJump (a chain, followed the same way; a circle is
    /// refused) or ProxyCommand is used, the later hops' are replaced by the hop before them
    /// (as `-J` replaces them). `chain` holds the names being reached, outermost first.
    fn ssh_jumps(
        &mut self,
        hops: &[Jump],
        from: &Resolved,
        target: &Host,
        env: &Env,
        key: &[Seg],
        chain: &mut Vec<String>,
    ) -> Option<Box<Host>> {
        if let Some(back) = hops
            .iter()
            .find(|j| chain.contains(&j.host.to_ascii_lowercase()))
        {
            let circle = format!(
                "{} -> {}",
                chain.join(" -> "),
                back.host.to_ascii_lowercase()
            );
            let e = from.error(
                "proxyjump",
                format!("ProxyJump goes round in a circle: {circle}"),
            );
            self.error(key, format!("the OpenSSH client config: {e}"));
            return None;
        }
        let mut via: Option<Box<Host>> = None;
        for (i, j) in hops.iter().enumerate() {
            let (mut hop, r) = self.ssh_hop(j, target, env, key);
            let own = std::mem::take(&mut hop.ssh.proxy_jumps);
            if i > 0 {
                hop.ssh.proxy_command = None;
                hop.proxy_jump = via.take();
            } else if let (false, Some(r)) = (own.is_empty(), &r) {
                chain.push(j.host.to_ascii_lowercase());
                hop.proxy_jump = self.ssh_jumps(&own, r, target, env, key, chain);
                chain.pop();
            }
            via = Some(Box::new(hop));
        }
        via
    }

    /// One ProxyJump hop as a host, resolved through the OpenSSH config under its own name
    /// (and the resolution, when there is an OpenSSH config). Its keys are its own
    /// (IdentityFile, agent), not deploy.toml's `identity`; its StrictHostKeyChecking,
    /// ConnectTimeout and UserKnownHostsFile are its own when its config sets them, else the
    /// target's.
    fn ssh_hop(
        &mut self,
        j: &Jump,
        target: &Host,
        env: &Env,
        key: &[Seg],
    ) -> (Host, Option<Resolved>) {
        let r = match env.ssh_config.as_ref().map(|c| c.resolve_hop(j, &System)) {
            Some(Ok(r)) => Some(r),
            Some(Err(e)) => {
                self.error(
                    key,
                    format!("the OpenSSH client config: ProxyJump {}: {e}", j.host),
                );
                None
            }
            None => None,
        };
        let set = |k: &str| r.as_ref().filter(|r| r.is_set(k)).and_then(|r| r.get(k));
        let address = set("hostname").unwrap_or(&j.host).to_string();
        let user = j
            .user
            .clone()
            .or(set("user").map(str::to_string))
            .or(env.local_user.clone())
            .unwrap_or_else(|| target.user.clone());
        let port = j
            .port
            .or(set("port").and_then(|p| p.parse().ok()))
            .unwrap_or(22);
        let (identities, options) = match &r {
            Some(r) => self.ssh_options(r, key),
            None => Default::default(),
        };
        let known_hosts = match options.user_known_hosts.first() {
            Some(p) if set("userknownhostsfile").is_some() => p.clone(),
            _ => target.known_hosts.clone(),
        };
        let hop = Host {
            name: j.host.clone(),
            address,
            user,
            port,
            identity: None,
            known_hosts,
            host_key_policy: r
                .as_ref()
                .and_then(ssh::host_key_policy)
                .unwrap_or(target.host_key_policy),
            connect_timeout: r
                .as_ref()
                .and_then(ssh::connect_timeout)
                .unwrap_or(target.connect_timeout),
            compress: target.compress,
            proxy_jump: None,
            identities,
            ssh: options,
            arch: None,
        };
        (hop, r)
    }

    /// The IdentityFiles (expanded) and the other options of a resolved OpenSSH config; a
    /// problem is reported at `key` (the host's address).
    fn ssh_options(&mut self, r: &Resolved, key: &[Seg]) -> (Vec<PathBuf>, SshOptions) {
        let out = r
            .paths("identityfile")
            .and_then(|ids| Ok((ids, ssh::options(r)?)));
        out.unwrap_or_else(|e| {
            self.error(key, format!("the OpenSSH client config: {e}"));
            Default::default()
        })
    }
}

/// A setting of `[hosts.NAME]`, else of `[defaults]`, with the key it came from (for error
/// locations).
fn pick<'k>(
    name: &'k str,
    own: &Option<String>,
    def: &Option<String>,
    key: &'static str,
) -> Option<(String, Vec<Seg<'k>>)> {
    match own {
        Some(v) => Some((
            v.clone(),
            vec![Seg::Key("hosts"), Seg::Key(name), Seg::Key(key)],
        )),
        None => def
            .clone()
            .map(|v| (v, vec![Seg::Key("defaults"), Seg::Key(key)])),
    }
}

/// What templates see of each of a service's hosts: `name`, `address`, `user` and `vars`.
fn host_context(
    svc_hosts: &[String],
    hosts: &BTreeMap<String, Host>,
    vars: &BTreeMap<String, serde_json::Map<String, serde_json::Value>>,
) -> BTreeMap<String, serde_json::Value> {
    svc_hosts
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
        .collect()
}
