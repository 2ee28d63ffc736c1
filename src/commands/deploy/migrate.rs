//! The migration of a rollout (`[services.NAME.hooks] migrate`): run once, on one host, after
//! its release is sealed and before any host switches.
//!
//! The host (`migrate_on`, else the first host of the rollout) is deployed first; its plan has
//! a `migrate` step after `seal`. Every other host of the rollout goes through its own steps
//! up to the switch and waits there (at a gate) until the migration has passed: then they all
//! switch. A failed migration shuts the gate: no host switches, each keeps its release, and the
//! rollout stops.
//!
//! A migration that succeeded is recorded in the migrate host's history (`action` `migrate`)
//! and in `.ferry/state.json`; a later deploy of a release with the same content (its id's
//! hash: `--retry-failed`, or deploying the same build again) skips it and says why.

use std::sync::Mutex;

use tokio::sync::watch;

use crate::commands::deploy::state::Migrated;
use crate::config::{Host, Service};
use crate::outcome::HostOutcome;
use crate::release::{self, Action, HistoryRecord, Outcome};
use crate::report::deploy::HostResult;

/// Where the gate stands.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Gate {
    Pending,
    /// The migration ran (or had run): hosts may switch.
    Open,
    /// It failed (or its host never got to it): no host switches.
    Shut(String),
}

/// The migration of one service's rollout.
pub(crate) struct Migration {
    /// The host whose plan has the `migrate` step: the first host of the rollout.
    pub(crate) leader: String,
    /// The host it must run on: `migrate_on`, else the leader. When this rollout does not
    /// select it, the leader can only find that it ran already.
    pub(crate) on: String,
    /// The migration `.ferry/state.json` records for the service.
    pub(crate) recorded: Option<Migrated>,
    gate: watch::Sender<Gate>,
    /// What ran (or was found run) in this rollout, for the state file.
    done: Mutex<Option<Migrated>>,
}

impl Migration {
    /// The migration of `service`'s rollout over `hosts` (None without a `migrate` hook). The
    /// migrate host, when the rollout has it, is moved to the front: it is deployed first.
    pub(crate) fn for_rollout(
        service: &Service,
        hosts: &mut Vec<Host>,
        recorded: Option<Migrated>,
    ) -> Option<Migration> {
        service.hooks.migrate.as_ref()?;
        let first = hosts.first()?.name.clone();
        let on = service.hooks.migrate_on.clone().unwrap_or(first);
        if let Some(i) = hosts.iter().position(|h| h.name == on) {
            let h = hosts.remove(i);
            hosts.insert(0, h);
        }
        Some(Migration {
            leader: hosts[0].name.clone(),
            on,
            recorded,
            gate: watch::Sender::new(Gate::Pending),
            done: Mutex::new(None),
        })
    }

    /// Hosts may switch; `ran` is what the state file records.
    pub(crate) fn open(&self, ran: Migrated) {
        *self.done.lock().unwrap() = Some(ran);
        self.gate.send_replace(Gate::Open);
    }

    /// No host switches, for this reason.
    pub(crate) fn shut(&self, why: String) {
        self.gate.send_if_modified(|g| {
            if *g == Gate::Pending {
                *g = Gate::Shut(why);
                true
            } else {
                false
            }
        });
    }

    /// Wait until the migration passed (Ok) or failed (the reason).
    pub(crate) async fn wait(&self) -> Result<(), String> {
        let mut rx = self.gate.subscribe();
        let gate = rx
            .wait_for(|g| *g != Gate::Pending)
            .await
            .map(|g| g.clone())
            .unwrap_or_else(|_| Gate::Shut("the migration was abandoned".into()));
        match gate {
            Gate::Shut(why) => Err(why),
            _ => Ok(()),
        }
    }

    /// Has the migration not passed or failed yet?
    pub(crate) fn pending(&self) -> bool {
        *self.gate.borrow() == Gate::Pending
    }

    /// Why the rollout must stop, once the migration failed.
    pub(crate) fn failed(&self) -> Option<String> {
        match &*self.gate.borrow() {
            Gate::Shut(why) => Some(why.clone()),
            _ => None,
        }
    }

    /// What ran (or was found run) in this rollout.
    pub(crate) fn done(&self) -> Option<Migrated> {
        self.done.lock().unwrap().clone()
    }

    /// The leader's deploy ended: if it never got to the migration, the gate must not hold
    /// the other hosts forever. A leader already on this content (unchanged) lets them go.
    pub(crate) fn leader_ended(&self, result: &HostResult) {
        if *self.gate.borrow() != Gate::Pending {
            return;
        }
        if result.result == HostOutcome::Unchanged {
            self.gate.send_replace(Gate::Open);
            return;
        }
        self.shut(format!(
            "the migrate host {} did not get to the migration ({}: {})",
            self.leader,
            result.result,
            result.reason.as_deref().unwrap_or("no reason given")
        ));
    }

    /// Why the migration need not run for release `id`: it ran for a release of the same
    /// content (recorded locally or in this host's `history`).
    pub(crate) fn already_ran(&self, id: &str, history: &[HistoryRecord]) -> Option<Migrated> {
        let key = release::content_key(id);
        if let Some(r) = &self.recorded
            && release::content_key(&r.release) == key
        {
            return Some(r.clone());
        }
        history
            .iter()
            .rev()
            .find(|h| {
                h.action == Action::Migrate
                    && h.outcome == Outcome::Ok
                    && release::content_key(&h.release) == key
            })
            .map(|h| Migrated {
                release: h.release.clone(),
                host: self.leader.clone(),
                time: h.time.clone(),
            })
    }
}

/// The history record of a migration that ran.
pub(crate) fn record(id: &str, previous: Option<&str>, by: &str, command: &str) -> HistoryRecord {
    HistoryRecord {
        time: release::now_rfc3339(),
        action: Action::Migrate,
        release: id.to_string(),
        previous: previous.map(String::from),
        outcome: Outcome::Ok,
        by: by.to_string(),
        git_commit: None,
        reason: Some(format!("ran `{command}`")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn migration(recorded: Option<Migrated>) -> Migration {
        Migration {
            leader: "a".into(),
            on: "a".into(),
            recorded,
            gate: watch::Sender::new(Gate::Pending),
            done: Mutex::new(None),
        }
    }

    fn rec(action: Action, release: &str, outcome: Outcome) -> HistoryRecord {
        HistoryRecord {
            time: "2026-11-25T10:00:00Z".into(),
            action,
            release: release.into(),
            previous: None,
            outcome,
            by: "me".into(),
            git_commit: None,
            reason: None,
        }
    }

    #[test]
    fn a_release_of_the_same_content_finds_its_migration() {
        let m = migration(None);
        let history = [
            rec(Action::Migrate, "20261125T100000Z-1a2b3c4d", Outcome::Ok),
            rec(Action::Deploy, "20261125T100000Z-1a2b3c4d", Outcome::Ok),
        ];
        let found = m.already_ran("20261125T120000Z-1a2b3c4d.2", &history);
        assert_eq!(found.unwrap().release, "20261125T100000Z-1a2b3c4d");
        assert!(
            m.already_ran("20261125T120000Z-99999999", &history)
                .is_none()
        );
        // A failed one does not count; a deploy record is not a migration.
        let history = [rec(
            Action::Migrate,
            "20261125T100000Z-1a2b3c4d",
            Outcome::Failed,
        )];
        assert!(
            m.already_ran("20261125T120000Z-1a2b3c4d", &history)
                .is_none()
        );
        let m = migration(Some(Migrated {
            release: "20261125T090000Z-1a2b3c4d".into(),
            host: "b".into(),
            time: "t".into(),
        }));
        assert_eq!(
            m.already_ran("20261125T120000Z-1a2b3c4d", &[])
                .unwrap()
                .host,
            "b"
        );
    }

    #[tokio::test]
    async fn the_gate_holds_until_the_migration_passes_or_fails() {
        let m = migration(None);
        assert!(m.failed().is_none());
        m.shut("it failed".into());
        assert_eq!(m.wait().await, Err("it failed".to_string()));
        assert_eq!(m.failed().as_deref(), Some("it failed"));
        // Once shut, it stays shut.
        m.shut("again".into());
        assert_eq!(m.failed().as_deref(), Some("it failed"));
        let m = migration(None);
        m.open(Migrated {
            release: "r".into(),
            host: "a".into(),
            time: "t".into(),
        });
        assert_eq!(m.wait().await, Ok(()));
        assert_eq!(m.done().unwrap().release, "r");
    }
}
