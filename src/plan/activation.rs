//! The activation script: the order of the remote steps that make a release live.

use crate::release::{self, Manifest, Paths};
use crate::shell::quote;
use crate::systemd;
use crate::systemd::switch::{self, Colour, Switch};
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
    /// Blue/green: which colour the activation starts, and whether it moves the front.
    pub switch: Option<SwitchMode>,
}

/// What an activation of a blue/green service does with the colours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SwitchMode {
    /// A deploy: start `colour` on the release; the front and `current` stay (the `switch`
    /// step moves them once the colour is verified).
    Prepare {
        service: String,
        switch: Switch,
        colour: Colour,
    },
    /// A rollback or revert: bring the release back on `colour` (nothing restarts when it
    /// runs it already), move the front and `current` there, stop the other colour.
    Back {
        service: String,
        switch: Switch,
        colour: Colour,
    },
}

/// Words for a shell command line, each quoted.
fn words(v: &[String]) -> String {
    v.iter().map(|s| quote(s)).collect::<Vec<_>>().join(" ")
}

/// How long a rollback waits for the colour it starts to accept connections.
pub const BACK_PORT_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

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
            switch: plan.switch.as_ref().and_then(|sp| {
                Some(SwitchMode::Prepare {
                    service: plan.service.clone(),
                    switch: plan.manifest.switch.clone()?,
                    colour: sp.to,
                })
            }),
        }
    }

    /// Going back from `from` (the failed or current release) to the release described by
    /// `to`: install `to`'s units, remove units only `from` had, restart `to`'s restart list.
    /// A blue/green `to` comes back on colour `back` (see [`SwitchMode::Back`]).
    pub fn back_to(to: &Manifest, from: Option<&Manifest>, back: Option<Colour>) -> Activation {
        let keep: BTreeSet<&str> = to.units.iter().map(|u| u.name.as_str()).collect();
        // Going back past the release that brought blue/green: its colours stop.
        let colours: Vec<String> = match from.and_then(|m| m.switch.as_ref()) {
            Some(_) if to.switch.is_none() => Colour::BOTH
                .iter()
                .map(|c| switch::instance(&to.service, *c))
                .collect(),
            _ => Vec::new(),
        };
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
                    .chain(colours)
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
            switch: to.switch.clone().map(|sw| SwitchMode::Back {
                service: to.service.clone(),
                switch: sw,
                colour: back.unwrap_or(Colour::Blue),
            }),
        }
    }

    /// The restart list of the script: the colour a deploy starts comes last.
    fn restarted(&self) -> Vec<String> {
        let mut v = self.restart.clone();
        if let Some(SwitchMode::Prepare {
            service, colour, ..
        }) = &self.switch
        {
            v.push(switch::instance(service, *colour));
        }
        v
    }

    /// The shell script that performs the activation on the host. Steps: install the unit
    /// files atomically (copy to a temp name, rename), disable and remove units the release
    /// no longer has, switch `current` atomically (new symlink, rename over), daemon-reload,
    /// enable, stop changed sockets, restart and start (without waiting: ferry verifies).
    pub fn script(&self, paths: &Paths) -> String {
        let mut s = self.install_lines(paths);
        s.push_str(&self.start_lines());
        if let Some(SwitchMode::Back {
            service,
            switch,
            colour,
        }) = &self.switch
        {
            s.push_str(&switch::back_lines(
                service,
                switch,
                *colour,
                BACK_PORT_WAIT,
            ));
        }
        s.push_str("echo activated\n");
        s
    }

    /// The script up to the switch of `current`: the release checked, its unit files
    /// installed, the units it no longer has removed.
    fn install_lines(&self, paths: &Paths) -> String {
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
        match &self.switch {
            // The colour's release link; `current` moves with the front.
            Some(SwitchMode::Prepare { switch, colour, .. }) => {
                s.push_str(&switch::prepare_lines(switch, *colour))
            }
            Some(SwitchMode::Back { .. }) => {}
            None => s.push_str(
                "ln -sfn \"$R\" \"$S/.current.tmp\"\nmv -fT \"$S/.current.tmp\" \"$S/current\"\n",
            ),
        }
        s
    }

    /// The script from the reload to the restarts: enable, daemon-reload, stop changed
    /// sockets, clear failed states, start and restart (without waiting: ferry verifies).
    fn start_lines(&self) -> String {
        let mut s = String::new();
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
        let restart = self.restarted();
        for u in &restart {
            let q = quote(u);
            s.push_str(&format!(
                "[ \"$(systemctl --user show -p SubState --value -- {q})\" = auto-restart ] && systemctl --user stop -- {q} || true\n"
            ));
        }
        // A unit that failed or hit its start limit (quick successive deploys) would refuse to
        // start: clear that first.
        let mut all: Vec<String> = restart.clone();
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
        if !restart.is_empty() {
            s.push_str(&format!(
                "systemctl --user restart --no-block {}\n",
                words(&restart)
            ));
        }
        s
    }

    /// The units of [`Activation::verify_units`] that must come up as a new invocation: not
    /// the colour a rollback comes back on, which keeps running when it runs the release
    /// already (instant) and is restarted and waited for by the script otherwise.
    pub fn restarted_units(&self) -> Vec<String> {
        let mut v = self.verify_units();
        if let Some(SwitchMode::Back {
            service, colour, ..
        }) = &self.switch
        {
            let keep = switch::instance(service, *colour);
            v.retain(|u| *u != keep);
        }
        v
    }

    /// Units whose state proves the activation worked.
    pub fn verify_units(&self) -> Vec<String> {
        let mut v = self.restarted();
        if let Some(SwitchMode::Back {
            service, colour, ..
        }) = &self.switch
        {
            v.push(switch::instance(service, *colour));
        }
        for u in &self.start {
            if !v.contains(u) {
                v.push(u.clone());
            }
        }
        v
    }
}
