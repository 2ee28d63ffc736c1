//! What happened to one service on one host, as a closed set: the `result` of the JSON events,
//! the verdict of the tables, the order of the final table and the exit code each maps to.
//!
//! The variants are declared in table order: successes first, the worst last (next to the
//! summary line, where a long table is read from). Serialised in kebab-case (`rolled-back`),
//! the names docs/events.md documents.

use serde::{Deserialize, Serialize};

use crate::exit::Exit;

/// The outcome of a service on a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HostOutcome {
    /// The release is live and verified.
    Ok,
    /// The host already ran this release: nothing was done.
    Unchanged,
    /// A dry run: the plan was printed, nothing was done.
    Planned,
    /// The rollout stopped before this host: it keeps its release.
    NotReached,
    /// ferry was stopped (SIGINT, SIGTERM) while working on this host: the reason says what
    /// state that left it in.
    Interrupted,
    /// The new release failed and the previous one was restored.
    RolledBack,
    /// Another deploy of the service holds the host's lock.
    Locked,
    /// The host refused the deploy before anything changed (space, checks, policy).
    Refused,
    /// The host could not be reached or logged in to.
    Unreachable,
    /// The operation failed.
    Failed,
    /// The new release failed and so did the way back: the host needs a look.
    RollbackFailed,
}

impl HostOutcome {
    /// Every outcome, in table order.
    pub const ALL: [HostOutcome; 11] = [
        HostOutcome::Ok,
        HostOutcome::Unchanged,
        HostOutcome::Planned,
        HostOutcome::NotReached,
        HostOutcome::Interrupted,
        HostOutcome::RolledBack,
        HostOutcome::Locked,
        HostOutcome::Refused,
        HostOutcome::Unreachable,
        HostOutcome::Failed,
        HostOutcome::RollbackFailed,
    ];

    /// The name used in JSON and in `.ferry/state.json`.
    pub fn as_str(self) -> &'static str {
        match self {
            HostOutcome::Ok => "ok",
            HostOutcome::Unchanged => "unchanged",
            HostOutcome::Planned => "planned",
            HostOutcome::NotReached => "not-reached",
            HostOutcome::Interrupted => "interrupted",
            HostOutcome::RolledBack => "rolled-back",
            HostOutcome::Locked => "locked",
            HostOutcome::Refused => "refused",
            HostOutcome::Unreachable => "unreachable",
            HostOutcome::Failed => "failed",
            HostOutcome::RollbackFailed => "rollback-failed",
        }
    }

    /// The outcome named `name` (as written by [`HostOutcome::as_str`]).
    pub fn parse(name: &str) -> Option<HostOutcome> {
        HostOutcome::ALL.into_iter().find(|o| o.as_str() == name)
    }

    /// Where it goes in the final table: ok and unchanged share a place, so that the rollout
    /// order stays among the hosts that are fine.
    pub fn rank(self) -> u8 {
        match self {
            HostOutcome::Ok | HostOutcome::Unchanged => 0,
            other => other as u8 - 1,
        }
    }

    /// Whether it counts as a success for the failure budget and `--retry-failed`.
    pub fn is_success(self) -> bool {
        matches!(
            self,
            HostOutcome::Ok | HostOutcome::Unchanged | HostOutcome::Planned
        )
    }

    /// The exit of a host that ended so (combined over hosts by [`Exit::combine`]).
    pub fn exit(self) -> Exit {
        match self {
            HostOutcome::Ok | HostOutcome::Unchanged | HostOutcome::Planned => Exit::Ok,
            HostOutcome::NotReached => Exit::Failed,
            HostOutcome::Interrupted => Exit::Interrupted,
            HostOutcome::RolledBack => Exit::RolledBack,
            HostOutcome::Locked => Exit::Locked,
            HostOutcome::Refused | HostOutcome::Failed | HostOutcome::RollbackFailed => {
                Exit::Failed
            }
            HostOutcome::Unreachable => Exit::Connection,
        }
    }
}

impl std::fmt::Display for HostOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Sort items by outcome (stable: the rollout order stays within an outcome's place).
pub fn sort_by_outcome<T>(items: &mut [T], outcome: impl Fn(&T) -> HostOutcome) {
    items.sort_by_key(|i| outcome(i).rank());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_match_the_serde_names() {
        for o in HostOutcome::ALL {
            assert_eq!(HostOutcome::parse(o.as_str()), Some(o));
            assert_eq!(serde_json::to_string(&o).unwrap(), format!("\"{o}\""));
        }
        assert_eq!(HostOutcome::parse("rolledback"), None);
    }

    #[test]
    fn the_table_puts_successes_first_and_a_failed_rollback_last() {
        let mut all = HostOutcome::ALL;
        all.reverse();
        all.sort_by_key(|o| o.rank());
        assert_eq!(&all[..2], &[HostOutcome::Unchanged, HostOutcome::Ok]);
        assert_eq!(all.last(), Some(&HostOutcome::RollbackFailed));
        let ranks: Vec<u8> = HostOutcome::ALL.iter().map(|o| o.rank()).collect();
        assert!(ranks.windows(2).all(|w| w[0] <= w[1]), "{ranks:?}");
        assert!(HostOutcome::Failed.rank() < HostOutcome::RollbackFailed.rank());
        assert!(HostOutcome::Unreachable.rank() < HostOutcome::Failed.rank());
    }

    #[test]
    fn exit_codes_follow_the_contract() {
        assert_eq!(HostOutcome::Ok.exit(), Exit::Ok);
        assert_eq!(HostOutcome::Planned.exit(), Exit::Ok);
        assert_eq!(HostOutcome::RolledBack.exit(), Exit::RolledBack);
        assert_eq!(HostOutcome::Locked.exit(), Exit::Locked);
        assert_eq!(HostOutcome::Unreachable.exit(), Exit::Connection);
        assert_eq!(HostOutcome::RollbackFailed.exit(), Exit::Failed);
        assert!(
            HostOutcome::ALL
                .iter()
                .all(|o| o.is_success() == (o.exit() == Exit::Ok) || *o == HostOutcome::NotReached)
        );
    }
}
