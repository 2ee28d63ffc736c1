//! Selecting hosts and services from the command line (`--host`, service names), and the
//! errors that name what the config does define.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use super::*;

/// Display is the message for the user.
/// A `--host` or service name on the command line that the config does not define. Its
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

pub(crate) fn defined_hosts(hosts: &[String], groups: &[String]) -> String {
    if hosts.is_empty() {
        return "no hosts are defined: add a [hosts.NAME] table".into();
    }
    let mut s = format!("hosts: {}", hosts.join(", "));
    if !groups.is_empty() {
        s.push_str(&format!("; groups: {}", groups.join(", ")));
    }
    s
}

pub(crate) fn defined_services(services: &[String]) -> String {
    if services.is_empty() {
        "no services are defined: add a [services.NAME] table".into()
    } else {
        format!("defined: {}", services.join(", "))
    }
}

/// The hosts a group stands for, nested groups expanded, in first-seen order without
/// duplicates. A name in a cycle is not expanded twice (cycles are refused when loading).
pub(crate) fn expand_group(
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

    /// `names` (services of this config) in deploy order: a service after those its `after`
    /// lists among `names`, otherwise in the order given. (`after` has no cycle: validated.)
    pub fn in_order(&self, names: &[String]) -> Vec<String> {
        let mut left: Vec<&String> = names.iter().collect();
        let mut out: Vec<String> = Vec::new();
        while !left.is_empty() {
            let ready = left.iter().position(|n| {
                self.services.get(*n).is_none_or(|s| {
                    s.after
                        .iter()
                        .all(|a| out.contains(a) || !left.contains(&a) || a == *n)
                })
            });
            // A cycle cannot pass validation; should one get here, the given order stands.
            let i = ready.unwrap_or(0);
            out.push(left.remove(i).clone());
        }
        out
    }

    /// Does `service` come after `other`, directly or through services in between?
    pub fn comes_after(&self, service: &str, other: &str) -> bool {
        let mut todo = vec![service.to_string()];
        let mut seen: Vec<String> = Vec::new();
        while let Some(s) = todo.pop() {
            let Some(svc) = self.services.get(&s) else {
                continue;
            };
            for a in &svc.after {
                if a == other {
                    return true;
                }
                if !seen.contains(a) {
                    seen.push(a.clone());
                    todo.push(a.clone());
                }
            }
        }
        false
    }
}
