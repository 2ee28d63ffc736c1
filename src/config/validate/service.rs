//! Validation of one `[services.NAME]` table and its subtables.

use crate::systemd;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use super::*;

/// What verifying a deploy takes while the self-revert is armed (`confirm_timeout` must be
/// longer): its total, and the keys that add up to it, for messages.
struct Verification {
    total: Duration,
    parts: &'static str,
}

impl Verification {
    /// The start and settle time, the health checks, an after_switch hook (it runs while the
    /// self-revert is armed) and, blue/green, the old colour's drain.
    fn of(
        start_and_settle: Duration,
        health: Option<&Health>,
        hooks: &Hooks,
        switch: Option<&crate::systemd::switch::Switch>,
    ) -> Verification {
        let health_timeout = health.map(|h| h.timeout).unwrap_or_default();
        let hook_timeout = hooks
            .after_switch
            .as_ref()
            .map(|_| hooks.timeout)
            .unwrap_or_default();
        let drain = switch.map(|s| s.drain).unwrap_or_default();
        Verification {
            total: start_and_settle + health_timeout + hook_timeout + drain,
            parts: if hook_timeout.is_zero() {
                "start_timeout + settle_time + health.timeout"
            } else {
                "start_timeout + settle_time + health.timeout + hooks.timeout (after_switch)"
            },
        }
    }
}

impl<'a> Validator<'a> {
    pub(crate) fn service(
        &mut self,
        name: &str,
        s: RawService,
        hosts: &BTreeMap<String, Host>,
        groups: &BTreeMap<String, Vec<String>>,
        jump_hosts: &BTreeSet<String>,
        base: &Path,
    ) -> Service {
        let sk = |key: &'static str| [Seg::Key("services"), Seg::Key(name), Seg::Key(key)];
        if !valid_name(name) {
            self.error(
                &[Seg::Key("services"), Seg::Key(name)],
                "service names may use letters, digits, `-`, `_` and `.` only (they name remote directories)",
            );
        }
        let svc_hosts = self.service_hosts(name, s.hosts.as_deref(), hosts, groups, jump_hosts);
        let (units, mut unit_names) = self.unit_files(name, &s.units, base);
        let switched = s.switch.is_some();
        let run = s
            .run
            .map(|r| self.run_table(name, r, switched, &mut unit_names));
        // Blue/green: the colours are started by the switch, not restarted.
        let run_restart = run
            .as_ref()
            .filter(|_| !switched)
            .map(|r| crate::systemd::units::restarted(name, r))
            .unwrap_or_default();
        let lint = self.lint_level(name, s.lint.as_deref());
        let restart = self.restart_list(name, s.restart, &units, &unit_names, run_restart);
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
        let files = self.file_specs(name, &s.files, base);
        let health = s.health.map(|h| self.health(name, h));
        let keep_releases = self.keep_releases(name, s.keep_releases);
        let env = self.env(name, s.env.unwrap_or_default(), base);
        let hooks = self.hooks(name, s.hooks, base);
        self.migrate_on(name, &hooks, hosts, &svc_hosts);
        let switch = s.switch.map(|raw| {
            let listed: BTreeSet<String> = units.iter().map(|u| u.name.clone()).collect();
            let around = switch::Around {
                run: run.as_ref(),
                unit_names: &listed,
                instances: s
                    .instances
                    .as_ref()
                    .is_some_and(|i| i.contains_key(&crate::systemd::switch::template(name))),
                unix_health: health.as_ref().is_some_and(|h| h.unix_http.is_some()),
            };
            self.switch(name, raw, around)
        });
        let verification = Verification::of(
            start_timeout + settle_time,
            health.as_ref(),
            &hooks,
            switch.as_ref(),
        );
        let confirm_timeout =
            self.confirm_timeout(name, s.confirm_timeout.as_deref(), verification);
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
            switch,
            after: s.after.unwrap_or_default(),
        }
    }

    /// `hosts`: host and group names, expanded to hosts (first seen first, no duplicates).
    /// Left out: every host, except the jump hosts (bastions) others connect through.
    fn service_hosts(
        &mut self,
        name: &str,
        listed: Option<&[String]>,
        hosts: &BTreeMap<String, Host>,
        groups: &BTreeMap<String, Vec<String>>,
        jump_hosts: &BTreeSet<String>,
    ) -> Vec<String> {
        let key = [Seg::Key("services"), Seg::Key(name), Seg::Key("hosts")];
        let Some(list) = listed else {
            let all: Vec<String> = hosts
                .keys()
                .filter(|h| !jump_hosts.contains(*h))
                .cloned()
                .collect();
            if all.is_empty() {
                self.error(&key, "the service has no hosts: define [hosts.NAME]");
            }
            return all;
        };
        let mut svc_hosts: Vec<String> = Vec::new();
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
        if list.is_empty() {
            self.error(
                &key,
                "lists no hosts: name hosts or groups, or leave `hosts` out to deploy to every host",
            );
        }
        svc_hosts
    }

    /// `units`: unit files with valid names, each listed once; and the set of their names.
    fn unit_files(
        &mut self,
        name: &str,
        listed: &[String],
        base: &Path,
    ) -> (Vec<UnitFile>, BTreeSet<String>) {
        let mut units = Vec::new();
        let mut unit_names = BTreeSet::new();
        for (i, u) in listed.iter().enumerate() {
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
        (units, unit_names)
    }

    /// `[services.NAME.run]`: the units generated from it, which `restart` may name (and
    /// restarts by default), join `unit_names`; one also listed in `units` is refused.
    fn run_table(
        &mut self,
        name: &str,
        r: RawRun,
        switched: bool,
        unit_names: &mut BTreeSet<String>,
    ) -> crate::systemd::units::Run {
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
        let generated = if switched {
            crate::systemd::switch::names(name, Some(&run))
        } else {
            crate::systemd::units::names(name, &run)
        };
        for unit in generated {
            if !unit_names.insert(unit.clone()) {
                self.error(
                    &rk("command"),
                    format!("`{unit}` is generated from this `run` table and also listed in `units`: remove one of them"),
                );
            }
        }
        run
    }

    /// `lint`: "deny", "warn" (the default) or "off".
    fn lint_level(&mut self, name: &str, lint: Option<&str>) -> crate::systemd::lint::Level {
        match lint.map(|l| (l, crate::systemd::lint::Level::parse(l))) {
            None => crate::systemd::lint::Level::default(),
            Some((_, Some(level))) => level,
            Some((text, None)) => {
                self.error(
                    &[Seg::Key("services"), Seg::Key(name), Seg::Key("lint")],
                    format!("`{}`: use \"deny\" (a finding stops the deploy), \"warn\" (the default) or \"off\"", printable(text)),
                );
                crate::systemd::lint::Level::default()
            }
        }
    }

    /// `restart`: units of this service (or instances of its templates). Left out: every
    /// plain `.service` of `units`, then `run_restart` (those the `run` table restarts).
    fn restart_list(
        &mut self,
        name: &str,
        listed: Option<Vec<String>>,
        units: &[UnitFile],
        unit_names: &BTreeSet<String>,
        run_restart: Vec<String>,
    ) -> Vec<String> {
        let Some(list) = listed else {
            return units
                .iter()
                .filter(|u| u.name.ends_with(".service") && !u.name.contains("@."))
                .map(|u| u.name.clone())
                .chain(run_restart)
                .collect();
        };
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
                    format!("`{r}` is not one of this service's units; add its file to `units`"),
                );
            }
        }
        list
    }

    /// `[[services.NAME.files]]`: each file with a dest of its own.
    fn file_specs(&mut self, name: &str, listed: &[RawFile], base: &Path) -> Vec<FileSpec> {
        let mut dests = BTreeMap::new();
        let files = listed
            .iter()
            .enumerate()
            .map(|(i, f)| self.file_spec(name, i, f, base, &mut dests))
            .collect();
        self.nested_dests(name, &dests);
        files
    }

    /// `files[i]`; its dest is recorded in `dests` (dest -> index), where it must be new.
    fn file_spec(
        &mut self,
        name: &str,
        i: usize,
        f: &RawFile,
        base: &Path,
        dests: &mut BTreeMap<String, usize>,
    ) -> FileSpec {
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
                format!("`{dest}` is also the dest of files[{prev}]; each file needs its own dest"),
            );
        }
        let secret = f.secret.unwrap_or(false);
        FileSpec {
            source: base.join(&f.source),
            dest,
            mode: self.file_mode(&fk("mode"), f.mode.as_deref(), secret),
            secret,
            template: f.template.unwrap_or(false),
        }
    }

    /// A file's `mode` (octal); a secret's default is 0600 and it must not be readable by
    /// group or others.
    fn file_mode(&mut self, key: &[Seg], mode: Option<&str>, secret: bool) -> u32 {
        match mode {
            None if secret => 0o600,
            None => 0o644,
            Some(m) => match parse_mode(m) {
                Ok(m) if secret && m & 0o077 != 0 => {
                    self.error(
                        key,
                        format!("`{m:04o}`: a secret file must not be readable by group or others; use \"0600\" or \"0400\" (or leave mode out)"),
                    );
                    0o600
                }
                Ok(m) => m,
                Err(e) => {
                    self.error(key, format!("`{m}`: {e}"));
                    0o644
                }
            },
        }
    }

    /// A dest cannot be a file and, for another file, a directory (`bin` and `bin/x`).
    fn nested_dests(&mut self, name: &str, dests: &BTreeMap<String, usize>) {
        for (dest, &i) in dests {
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
    }

    /// `keep_releases`: at least 2 (default 5).
    fn keep_releases(&mut self, name: &str, keep: Option<usize>) -> usize {
        let keep_releases = keep.unwrap_or(5);
        if keep_releases < 2 {
            self.error(
                &[
                    Seg::Key("services"),
                    Seg::Key(name),
                    Seg::Key("keep_releases"),
                ],
                "must be at least 2 (the current release and one to roll back to)",
            );
        }
        keep_releases
    }

    /// `confirm_timeout`: the self-revert must not fire while ferry is still verifying, so it
    /// is longer than the `verification`. The default: 60 s, or that plus 10 s.
    fn confirm_timeout(
        &mut self,
        name: &str,
        written: Option<&str>,
        verification: Verification,
    ) -> Duration {
        let key = [
            Seg::Key("services"),
            Seg::Key(name),
            Seg::Key("confirm_timeout"),
        ];
        let Verification { total, parts } = verification;
        let confirm_timeout = self.duration(
            &key,
            written,
            (total + Duration::from_secs(10)).max(Duration::from_secs(60)),
        );
        if written.is_none() && confirm_timeout > MAX_DURATION {
            self.error(
                &key,
                format!(
                    "{parts} ({}) leave no room for the automatic rollback timer, which is at most 24h: shorten them",
                    humantime::format_duration(total),
                ),
            );
        } else if written.is_some() && confirm_timeout <= total {
            self.error(
                &key,
                format!(
                    "must be longer than {parts} ({}); otherwise the host reverts a deploy that is still being verified",
                    humantime::format_duration(total)
                ),
            );
        }
        confirm_timeout
    }

    /// `migrate_on`: one of the service's hosts, and only with `migrate`.
    fn migrate_on(
        &mut self,
        name: &str,
        hooks: &Hooks,
        hosts: &BTreeMap<String, Host>,
        svc_hosts: &[String],
    ) {
        let Some(on) = &hooks.migrate_on else {
            return;
        };
        let key = [
            Seg::Key("services"),
            Seg::Key(name),
            Seg::Key("hooks"),
            Seg::Key("migrate_on"),
        ];
        if hooks.migrate.is_none() {
            self.error(
                &key,
                "names the host of the migration, but there is no `migrate` command in this table: add one or leave migrate_on out",
            );
        } else if !hosts.contains_key(on) {
            self.error(
                &key,
                format!("host `{on}` is not defined; migrate_on names one of the service's hosts"),
            );
        } else if !svc_hosts.iter().any(|h| h == on) {
            self.error(
                &key,
                format!(
                    "`{on}` is not one of the hosts of {name} ({}); the migration runs on a host the service is deployed to",
                    svc_hosts.join(", ")
                ),
            );
        }
    }

    /// `[services.NAME.env]`: names a shell and systemd accept; values a literal (string,
    /// number, boolean) or one of `{ env = "VAR" }`, `{ command = "..." }`, `{ file = "..." }`.
    pub(crate) fn env(
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
    pub(crate) fn instances(
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

    pub(crate) fn hooks(&mut self, name: &str, raw: Option<RawHooks>, base: &Path) -> Hooks {
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
            ("migrate", &h.migrate),
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
            migrate: h.migrate,
            migrate_on: h.migrate_on,
            dir: base.to_path_buf(),
        }
    }

    pub(crate) fn rollout(&mut self, name: &str, r: RawRollout) -> Rollout {
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

    pub(crate) fn health(&mut self, name: &str, h: RawHealth) -> Health {
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
