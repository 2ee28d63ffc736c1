//! `[inventory] command`: hosts listed by a local command (a cloud CLI, `terraform output
//! -json`), merged with `[hosts]`. The command runs once per ferry run, with `sh -c` in the
//! config's directory, before any connection; each host it prints is checked as a
//! `[hosts.NAME]` table is, and every problem names the command and the entry.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use serde::Deserialize;
use serde_json::Value;

use super::*;

/// `[inventory]`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawInventory {
    pub(crate) command: String,
}

/// Where the command's output comes from.
pub(crate) enum Source {
    /// Run the command (once per process for a command and directory).
    Run,
    /// Not run: [`parse`](super::parse) is pure; a config with `[inventory]` is refused.
    NotRun,
    /// This output, as if the command had printed it (tests).
    #[cfg(test)]
    Output(String),
}

/// One host the command listed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entry {
    pub(crate) name: String,
    pub(crate) address: String,
    pub(crate) user: Option<String>,
    pub(crate) port: Option<u16>,
    pub(crate) groups: Vec<String>,
    pub(crate) vars: serde_json::Map<String, Value>,
}

/// What later errors about the inventory's hosts need to point at the command.
#[derive(Default)]
pub(crate) struct Merged {
    line: Option<usize>,
    command: String,
    hosts: BTreeSet<String>,
    groups: BTreeSet<String>,
}

impl Merged {
    /// Errors the validation of `[hosts]`/`[groups]` reported about a host or group that only
    /// the command defines point at `[inventory] command` and name the host.
    pub(crate) fn relocate(&self, errors: &mut [ConfigError]) {
        for e in errors.iter_mut() {
            let owner = |table: &str, names: &BTreeSet<String>| {
                names
                    .iter()
                    .find(|n| {
                        let prefix = format!("{table}.{n}");
                        e.key == prefix
                            || e.key.starts_with(&format!("{prefix}."))
                            || e.key.starts_with(&format!("{prefix}["))
                    })
                    .cloned()
            };
            let what = match (owner("hosts", &self.hosts), owner("groups", &self.groups)) {
                (Some(h), _) => format!("host `{h}`"),
                (None, Some(g)) => format!("group `{g}`"),
                (None, None) => continue,
            };
            e.message = format!(
                "{what} of the inventory command `{}` (`{}`): {}",
                self.command, e.key, e.message
            );
            e.key = "inventory.command".into();
            e.line = self.line;
        }
    }
}

const KEY: [Seg<'static>; 2] = [Seg::Key("inventory"), Seg::Key("command")];

/// Run the inventory command (per `source`), check the hosts it lists and add them to
/// `raw.hosts` (and their groups to `raw.groups`). Problems go to `v`.
pub(crate) fn merge(v: &mut Validator, raw: &mut RawConfig, base: &Path, source: Source) -> Merged {
    let Some(inventory) = raw.inventory.take() else {
        return Merged::default();
    };
    let command = inventory.command.trim().to_string();
    let line = v.doc.locate(&KEY);
    let mut merged = Merged {
        line,
        command: command.clone(),
        ..Merged::default()
    };
    let fail = |v: &mut Validator, message: String| {
        v.errors.push(ConfigError {
            file: v.path.to_path_buf(),
            line,
            key: "inventory.command".into(),
            message: format!("the inventory command `{command}` {message}"),
        });
    };
    if command.is_empty() {
        fail(
            v,
            "is empty: write the command that prints the hosts as JSON".into(),
        );
        return merged;
    }
    let output = match source {
        Source::Run => run(&command, base),
        Source::NotRun => Err("is not run by config::parse (only by config::load)".into()),
        #[cfg(test)]
        Source::Output(text) => Ok(text),
    };
    let entries = match output.and_then(|text| entries(&text).map_err(|e| e.join("; "))) {
        Ok(entries) => entries,
        Err(message) => {
            fail(v, message);
            return merged;
        }
    };
    let own_groups: BTreeSet<String> = raw.groups.keys().cloned().collect();
    for (i, e) in entries.into_iter().enumerate() {
        if raw.hosts.contains_key(&e.name) {
            v.error(
                &[Seg::Key("hosts"), Seg::Key(&e.name)],
                format!(
                    "host `{}` is also listed by the inventory command `{command}` (entry {}); define it once: drop this table or rename it",
                    e.name,
                    i + 1
                ),
            );
            continue;
        }
        let vars = match e
            .vars
            .iter()
            .map(|(k, val)| {
                toml::Value::try_from(val)
                    .map(|t| (k.clone(), t))
                    .map_err(|_| k)
            })
            .collect::<Result<BTreeMap<_, _>, _>>()
        {
            Ok(vars) => (!vars.is_empty()).then_some(vars),
            Err(k) => {
                fail(
                    v,
                    format!(
                        "entry {} (`{}`): `vars.{k}` holds a null, which templates cannot use: leave it out",
                        i + 1,
                        e.name
                    ),
                );
                continue;
            }
        };
        for g in &e.groups {
            raw.groups
                .entry(g.clone())
                .or_default()
                .push(e.name.clone());
            if !own_groups.contains(g) {
                merged.groups.insert(g.clone());
            }
        }
        merged.hosts.insert(e.name.clone());
        let host = RawHost {
            address: e.address,
            user: e.user,
            port: e.port,
            vars,
            ..RawHost::default()
        };
        raw.hosts.insert(e.name, host);
    }
    merged
}

/// The command's stdout, run once per process for each command and directory (a second
/// config load in the same run reuses it).
fn run(command: &str, dir: &Path) -> Result<String, String> {
    type Cache = Mutex<BTreeMap<(PathBuf, String), Result<String, String>>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let key = (dir.to_path_buf(), command.to_string());
    let mut cache = cache.lock().unwrap_or_else(|e| e.into_inner());
    cache
        .entry(key)
        .or_insert_with(|| run_once(command, dir))
        .clone()
}

fn run_once(command: &str, dir: &Path) -> Result<String, String> {
    use std::os::unix::process::ExitStatusExt;
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| {
            format!(
                "could not be started with `sh -c` in {}: {e}",
                dir.display()
            )
        })?;
    if !out.status.success() {
        let status = match (out.status.code(), out.status.signal()) {
            (Some(c), _) => format!("exit status {c}"),
            (None, Some(s)) => format!("killed by signal {s}"),
            (None, None) => "an unknown status".into(),
        };
        let stderr = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        let tail = lines[lines.len().saturating_sub(20)..].join(" | ");
        let said = if tail.is_empty() {
            "it printed nothing on stderr".to_string()
        } else {
            format!("its stderr: {tail}")
        };
        return Err(format!(
            "failed ({status}, run with `sh -c` in {}); {said}",
            dir.display()
        ));
    }
    String::from_utf8(out.stdout).map_err(|_| "printed output that is not UTF-8".to_string())
}

const SHAPE: &str = "print a JSON array of hosts, or {\"hosts\": [...]} (or the `terraform output -json` of an output named `hosts`), each host {\"name\", \"address\", \"user\", \"port\", \"groups\", \"vars\"}";

/// The hosts of the command's output (pure). Accepted shapes: an array of hosts; an object
/// whose `hosts` is an array of hosts or an object of hosts by name; and `terraform output
/// -json` with an output named `hosts` (`{"hosts": {"value": ..., "type": ...}}`, the other
/// outputs ignored). Every problem is returned, each naming its entry.
pub(crate) fn entries(text: &str) -> Result<Vec<Entry>, Vec<String>> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| vec![format!("printed no valid JSON ({e}); it must {SHAPE}")])?;
    let hosts = match value {
        Value::Array(_) => value,
        Value::Object(mut top) => match top.remove("hosts") {
            None => {
                return Err(vec![format!(
                    "printed an object without `hosts`; it must {SHAPE}"
                )]);
            }
            Some(Value::Object(o))
                if o.contains_key("value")
                    && o.keys()
                        .all(|k| matches!(k.as_str(), "value" | "type" | "sensitive")) =>
            {
                o["value"].clone()
            }
            Some(hosts) => {
                if let Some(k) = top.keys().next() {
                    return Err(vec![format!(
                        "printed an unknown top-level key `{k}`: only `hosts` is read"
                    )]);
                }
                hosts
            }
        },
        _ => {
            return Err(vec![format!(
                "printed JSON of another shape; it must {SHAPE}"
            )]);
        }
    };
    let items: Vec<(Option<String>, Value)> = match hosts {
        Value::Array(a) => a.into_iter().map(|v| (None, v)).collect(),
        Value::Object(o) => o.into_iter().map(|(k, v)| (Some(k), v)).collect(),
        _ => {
            return Err(vec![format!(
                "printed `hosts` that is neither an array nor an object; it must {SHAPE}"
            )]);
        }
    };
    let mut out = Vec::new();
    let mut errors = Vec::new();
    let mut seen = BTreeSet::new();
    for (i, (key, item)) in items.into_iter().enumerate() {
        match entry(i, key, item) {
            Ok(e) if !seen.insert(e.name.clone()) => errors.push(format!(
                "lists host `{}` twice (again at entry {})",
                e.name,
                i + 1
            )),
            Ok(e) => out.push(e),
            Err(mut e) => errors.append(&mut e),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// One entry: entry `i` of a list (`key` None: its `name` is required) or of a map by name.
fn entry(i: usize, key: Option<String>, item: Value) -> Result<Entry, Vec<String>> {
    let at = format!("entry {}", i + 1);
    let Value::Object(mut fields) = item else {
        return Err(vec![format!(
            "{at}: must be an object with `name` and `address`"
        )]);
    };
    // Terraform writes null for an optional attribute left unset: the same as absent.
    fields.retain(|_, v| !v.is_null());
    let name = match (key, fields.remove("name")) {
        (None, None) => return Err(vec![format!("{at}: has no `name`")]),
        (Some(k), None) => k,
        (None, Some(Value::String(s))) => s,
        (Some(k), Some(Value::String(s))) if s == k => s,
        (Some(k), Some(other)) => {
            return Err(vec![format!(
                "{at}: `name` is {other} but its key is `{k}`"
            )]);
        }
        (None, Some(other)) => {
            return Err(vec![format!("{at}: `name` must be a string, not {other}")]);
        }
    };
    let at = format!("{at} (`{name}`)");
    let mut errors = Vec::new();
    let mut bad = |field: &str, problem: String| errors.push(format!("{at}: `{field}`: {problem}"));
    if !valid_name(&name) {
        bad(
            "name",
            "host names may use letters, digits, `-`, `_` and `.` only".into(),
        );
    }
    let address = match fields.remove("address") {
        Some(Value::String(s))
            if !s.trim().is_empty() && !s.trim().contains(char::is_whitespace) =>
        {
            s.trim().to_string()
        }
        Some(other) => {
            bad(
                "address",
                format!("{other} is not a host name or IP address"),
            );
            String::new()
        }
        None => {
            bad("address", "missing: every host needs one".into());
            String::new()
        }
    };
    let user = match fields.remove("user") {
        None => None,
        Some(Value::String(u)) if valid_user(&u) => Some(u),
        Some(other) => {
            bad("user", format!("{other} is not a valid user name"));
            None
        }
    };
    let (port, groups, vars) = port_groups_vars(&mut fields, &mut bad);
    for k in fields.keys() {
        bad(
            k,
            "unknown field; a host has name, address, user, port, groups and vars".into(),
        );
    }
    if errors.is_empty() {
        Ok(Entry {
            name,
            address,
            user,
            port,
            groups,
            vars,
        })
    } else {
        Err(errors)
    }
}

/// An entry's `port`, `groups` and `vars` (taken out of `fields`); problems go to `bad`.
fn port_groups_vars(
    fields: &mut serde_json::Map<String, Value>,
    bad: &mut impl FnMut(&str, String),
) -> (Option<u16>, Vec<String>, serde_json::Map<String, Value>) {
    // A number, or its digits as a string (Terraform's map(string) turns numbers into strings).
    let port = match fields.remove("port") {
        None => None,
        Some(p) => match p
            .as_u64()
            .or_else(|| p.as_str().and_then(|s| s.parse().ok()))
        {
            Some(n @ 1..=65535) => Some(n as u16),
            _ => {
                bad("port", format!("{p} is not a port (1 to 65535)"));
                None
            }
        },
    };
    let mut groups = Vec::new();
    match fields.remove("groups") {
        None => {}
        Some(Value::Array(a)) => {
            for g in a {
                match g {
                    Value::String(g) if valid_name(&g) => groups.push(g),
                    other => bad(
                        "groups",
                        format!("{other} is not a group name (letters, digits, `-`, `_`, `.`)"),
                    ),
                }
            }
        }
        Some(other) => bad(
            "groups",
            format!("must be an array of group names, not {other}"),
        ),
    }
    let vars = match fields.remove("vars") {
        None => Default::default(),
        Some(Value::Object(o)) => o,
        Some(other) => {
            bad("vars", format!("must be an object, not {other}"));
            Default::default()
        }
    };
    (port, groups, vars)
}

#[cfg(test)]
mod tests;
