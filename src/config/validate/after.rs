//! `after = [...]` of `[services.NAME]`: names of other services, without a cycle (a deploy of
//! several services deploys them in that order, see `Config::in_order`).

use std::collections::BTreeMap;

use super::*;

impl<'a> Validator<'a> {
    /// Every name `after` lists is another service; the relation has no cycle (each cycle is
    /// reported once, at the `after` of its first service by name).
    pub(crate) fn after(&mut self, services: &BTreeMap<String, Service>) {
        for (name, s) in services {
            for (i, other) in s.after.iter().enumerate() {
                let key = [
                    Seg::Key("services"),
                    Seg::Key(name),
                    Seg::Key("after"),
                    Seg::Index(i),
                ];
                if other == name {
                    self.error(&key, "a service cannot come after itself; remove it");
                } else if !services.contains_key(other) {
                    let known: Vec<&str> = services.keys().map(String::as_str).collect();
                    self.error(
                        &key,
                        format!(
                            "no service `{other}` in this file (the services: {}); after names services deployed before this one",
                            known.join(", ")
                        ),
                    );
                }
            }
        }
        let mut reported: Vec<Vec<String>> = Vec::new();
        for name in services.keys() {
            let Some(cycle) = cycle_from(name, services) else {
                continue;
            };
            // The same circle seen from another of its services.
            let mut members = cycle[..cycle.len() - 1].to_vec();
            members.sort();
            if reported.contains(&members) {
                continue;
            }
            reported.push(members);
            let key = [Seg::Key("services"), Seg::Key(name), Seg::Key("after")];
            self.error(
                &key,
                format!(
                    "after goes round in a circle: {}; remove one of these names",
                    cycle.join(" -> ")
                ),
            );
        }
    }
}

/// A path of `after` from `start` back to `start` (`[a, b, a]`), if there is one.
fn cycle_from(start: &str, services: &BTreeMap<String, Service>) -> Option<Vec<String>> {
    fn walk(
        at: &str,
        start: &str,
        services: &BTreeMap<String, Service>,
        path: &mut Vec<String>,
        seen: &mut Vec<String>,
    ) -> bool {
        let Some(s) = services.get(at) else {
            return false;
        };
        for next in &s.after {
            if next == at {
                continue;
            }
            if next == start {
                path.push(next.clone());
                return true;
            }
            if seen.contains(next) {
                continue;
            }
            seen.push(next.clone());
            path.push(next.clone());
            if walk(next, start, services, path, seen) {
                return true;
            }
            path.pop();
        }
        false
    }
    let mut path = vec![start.to_string()];
    walk(start, start, services, &mut path, &mut Vec::new()).then_some(path)
}
