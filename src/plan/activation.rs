//! The activation script: the order of the remote steps that make a release live.

use crate::release::{self, Manifest, Paths};
use crate::shell::quote;
use crate::systemd;
use std::collections::BTreeSet;

use super::*;

/// What an activation does: make `release` live with its units.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Activation {
    pub release: String,
    /// Unit files copied into the unit directory (those that differ from what is there).
    pub install: Vec<String>,
    /// Run `daemon-reload` (see [`Plan::daemon_reload`]).
    pub reload: bool,
    pub remove: Vec<String>,
    pub enable: Vec<String>,
    pub stop_first: Vec<String>,
    pub restart: Vec<String>,
    pub start: Vec<String>,
}

impl Activation {
    pub fn for_plan(plan: &Plan) -> Activation {
        // An unchanged unit file is left alone: copying it would give it a new mtime, which
        // the manager would take for a change (NeedDaemonReload) without a reload.
        let changed: BTreeSet<&str> = plan
            .units
            .iter()
            .filter(|u| u.change != Change::Unchanged)
            .map(|u| u.name.as_str())
            .collect();
        Activation {
            release: plan.release.clone(),
            install: plan
                .manifest
                .units
                .iter()
                .map(|u| u.name.clone())
                .filter(|n| changed.contains(n.as_str()))
                .collect(),
            reload: plan.daemon_reload,
            remove: plan.removed_units(),
            enable: plan.enable.clone(),
            stop_first: plan.stop_first.clone(),
            restart: plan.restart.clone(),
            start: plan.start.clone(),
        }
    }

    /// Going back from `from` (the failed or current release) to the release described by
    /// `to`: install `to`'s units, remove units only `from` had, restart `to`'s restart list.
    pub fn back_to(to: &Manifest, from: Option<&Manifest>) -> Activation {
        let keep: BTreeSet<&str> = to.units.iter().map(|u| u.name.as_str()).collect();
        let remove = from
            .map(|m| {
                m.units
                    .iter()
                    .filter(|u| !keep.contains(u.name.as_str()))
                    .map(|u| u.name.clone())
                    .chain(
                        m.restart
                            .iter()
                            .filter(|u| is_instance(u) && !to.restart.contains(u))
                            .cloned(),
                    )
                    .collect()
            })
            .unwrap_or_default();
        // Sockets whose unit file differs between the two releases need a restart too.
        let changed_sockets = from
            .map(|m| {
                to.units
                    .iter()
                    .filter(|u| {
                        systemd::unit_type(&u.name) == "socket"
                            && !to.restart.contains(&u.name)
                            && m.units
                                .iter()
                                .any(|o| o.name == u.name && o.sha256 != u.sha256)
                    })
                    .map(|u| u.name.clone())
                    .collect()
            })
            .unwrap_or_default();
        Activation {
            release: to.id.clone(),
            install: to.units.iter().map(|u| u.name.clone()).collect(),
            reload: true,
            remove,
            enable: to.enable.clone(),
            stop_first: changed_sockets,
            restart: to.restart.clone(),
            start: to.start.clone(),
        }
    }

    /// The shell script that performs the activation on the host. Steps: install the unit
    /// files atomically (copy to a temp name, rename), disable and remove units the release
    /// no longer has, switch `current` atomically (new symlink, rename over), daemon-reload,
    /// enable, stop changed sockets, restart and start (without waiting: ferry verifies).
    pub fn script(&self, paths: &Paths) -> String {
        let words = |v: &[String]| v.iter().map(|s| quote(s)).collect::<Vec<_>>().join(" ");
        let mut s = String::new();
        s.push_str("set -e\ncd \"$HOME\"\n");
        s.push_str(&format!("S={}\n", quote(&paths.dir())));
        s.push_str(&format!(
            "R={}\n",
            quote(&format!("releases/{}", self.release))
        ));
        s.push_str(&format!("UD={}\n", quote(release::UNIT_DIR)));
        s.push_str(
            "[ -d \"$S/$R\" ] || { echo \"release $R is missing on the host\" >&2; exit 3; }\n",
        );
        s.push_str("mkdir -p \"$UD\"\n");
        for u in &self.install {
            let u = quote(u);
            s.push_str(&format!(
                "cp -f \"$S/$R/{meta}/units/\"{u} \"$UD/.ferry-tmp.\"{u}\nmv -f \"$UD/.ferry-tmp.\"{u} \"$UD/\"{u}\n",
                meta = release::META_DIR
            ));
        }
        if !self.remove.is_empty() {
            let r = words(&self.remove);
            s.push_str(&format!(
                "systemctl --user disable --now {r} >/dev/null 2>&1 || true\nfor u in {r}; do rm -f \"$UD/$u\"; done\n"
            ));
        }
        s.push_str(
            "ln -sfn \"$R\" \"$S/.current.tmp\"\nmv -fT \"$S/.current.tmp\" \"$S/current\"\n",
        );
        // Enabled first without a reload of its own (`enable` reloads the manager, which
        // takes as long as the daemon-reload), then one reload when a unit file changed.
        if !self.enable.is_empty() {
            s.push_str(&format!(
                "systemctl --user enable --no-reload {} 2>&1\n",
                words(&self.enable)
            ));
        }
        if self.reload {
            s.push_str("systemctl --user daemon-reload\n");
        }
        if !self.stop_first.is_empty() {
            s.push_str(&format!(
                "systemctl --user stop {}\n",
                words(&self.stop_first)
            ));
        }
        // A service in a crash loop (waiting to be restarted by systemd) is stopped first, and
        // waited for: a restart job merged with its pending automatic restart would count as
        // one of its restarts, and its old crashes would pass for the new release's.
        for u in &self.restart {
            let q = quote(u);
            s.push_str(&format!(
                "[ \"$(systemctl --user show -p SubState --value -- {q})\" = auto-restart ] && systemctl --user stop -- {q} || true\n"
            ));
        }
        // A unit that failed or hit its start limit (quick successive deploys) would refuse to
        // start: clear that first.
        let mut all: Vec<String> = self.restart.clone();
        all.extend(self.start.iter().cloned());
        all.extend(self.stop_first.iter().cloned());
        if !all.is_empty() {
            s.push_str(&format!(
                "systemctl --user reset-failed {} >/dev/null 2>&1 || true\n",
                words(&all)
            ));
        }
        // Sockets (and timers, paths) first, and waited for: a service restarted before its
        // socket listens would take the port itself and the socket would then be refused.
        if !self.start.is_empty() {
            s.push_str(&format!("systemctl --user start {}\n", words(&self.start)));
        }
        if !self.restart.is_empty() {
            s.push_str(&format!(
                "systemctl --user restart --no-block {}\n",
                words(&self.restart)
            ));
        }
        s.push_str("echo activated\n");
        s
    }

    /// Units whose state proves the activation worked.
    pub fn verify_units(&self) -> Vec<String> {
        let mut v = self.restart.clone();
        for u in &self.start {
            if !v.contains(u) {
                v.push(u.clone());
            }
        }
        v
    }
}
