//! Exit codes as a closed set: the contract scripts and CI jobs rely on (README.md, "Output and
//! exit codes"), the number each class is, and which one wins when hosts end differently.
//!
//! Call sites name a class by its variant (`Exit::Failed`).

use serde::{Serialize, Serializer};

/// How a ferry command ended, as its process exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Exit {
    /// Everything succeeded.
    Ok,
    /// The operation failed on at least one host (deploy failed, a check failed, a unit is down).
    Failed,
    /// Bad command line or config: nothing was changed on any host.
    Usage,
    /// A host could not be reached, its host key was not accepted, or authentication failed.
    Connection,
    /// The new release failed and the previous release was restored (the host serves the old one).
    RolledBack,
    /// Another deploy of the service holds the host's lock.
    Locked,
    /// Interrupted by SIGINT.
    Interrupted,
    /// Stopped by SIGTERM (128 + 15), with the same guarantees and messages as SIGINT.
    Terminated,
}

impl Exit {
    /// Every class, in the order of their numbers.
    pub const ALL: [Exit; 8] = [
        Exit::Ok,
        Exit::Failed,
        Exit::Usage,
        Exit::Connection,
        Exit::RolledBack,
        Exit::Locked,
        Exit::Interrupted,
        Exit::Terminated,
    ];

    /// The process exit status.
    pub fn code(self) -> u8 {
        match self {
            Exit::Ok => 0,
            Exit::Failed => 1,
            Exit::Usage => 2,
            Exit::Connection => 3,
            Exit::RolledBack => 4,
            Exit::Locked => 5,
            Exit::Interrupted => 130,
            Exit::Terminated => 143,
        }
    }

    /// Success?
    pub fn is_ok(self) -> bool {
        self == Exit::Ok
    }

    /// This class for something that went wrong: `Ok` becomes `Failed`, the others stay.
    pub fn or_failed(self) -> Exit {
        match self {
            Exit::Ok => Exit::Failed,
            other => other,
        }
    }

    /// The exit of a command whose hosts ended with `exits`: a failed host wins, then an
    /// unreachable one, a locked one, a rolled-back one; otherwise the first that is not ok
    /// (usage, interrupted), else ok.
    pub fn combine(exits: impl IntoIterator<Item = Exit>) -> Exit {
        let exits: Vec<Exit> = exits.into_iter().collect();
        [
            Exit::Failed,
            Exit::Connection,
            Exit::Locked,
            Exit::RolledBack,
        ]
        .into_iter()
        .find(|e| exits.contains(e))
        .or_else(|| exits.iter().copied().find(|e| !e.is_ok()))
        .unwrap_or(Exit::Ok)
    }
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.code())
    }
}

/// In JSON (`exit_code` of a summary) an exit is its number.
impl Serialize for Exit {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(self.code())
    }
}

impl From<Exit> for std::process::ExitCode {
    fn from(e: Exit) -> Self {
        std::process::ExitCode::from(e.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_the_documented_ones() {
        let codes: Vec<u8> = Exit::ALL.iter().map(|e| e.code()).collect();
        assert_eq!(codes, [0, 1, 2, 3, 4, 5, 130, 143]);
        assert_eq!(Exit::Failed.to_string(), "1");
        assert_eq!(serde_json::to_string(&Exit::RolledBack).unwrap(), "4");
        assert_eq!(serde_json::to_string(&Exit::Interrupted).unwrap(), "130");
    }

    #[test]
    fn combining_keeps_the_precedence_failed_connection_locked_rolled_back() {
        use Exit::*;
        assert_eq!(Exit::combine([]), Ok);
        assert_eq!(Exit::combine([Ok, Ok]), Ok);
        assert_eq!(Exit::combine([Ok, RolledBack]), RolledBack);
        assert_eq!(Exit::combine([RolledBack, Locked]), Locked);
        assert_eq!(Exit::combine([Locked, Connection, RolledBack]), Connection);
        assert_eq!(Exit::combine([Connection, Failed, Ok]), Failed);
        assert_eq!(Exit::combine([Ok, Interrupted]), Interrupted);
        // Usage and interrupted rank below the four: the first of them met, in host order.
        assert_eq!(Exit::combine([Usage, Interrupted]), Usage);
        assert_eq!(Exit::combine([Interrupted, Usage]), Interrupted);
        assert_eq!(Exit::combine([Usage, RolledBack]), RolledBack);
        assert_eq!(Exit::combine([Interrupted, Failed]), Failed);
        // Any one host not ok makes the whole not ok.
        for e in Exit::ALL {
            assert_eq!(Exit::combine([Ok, e, Ok]), e);
        }
    }

    #[test]
    fn or_failed_never_gives_ok() {
        assert_eq!(Exit::Ok.or_failed(), Exit::Failed);
        for e in Exit::ALL.into_iter().filter(|e| !e.is_ok()) {
            assert_eq!(e.or_failed(), e);
        }
    }
}
