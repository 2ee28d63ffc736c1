//! What a line of `history.jsonl` says was done (`Action`) and how it ended (`Outcome`), as
//! closed sets written under the names docs/events.md documents (`deploy`, `rolled-back`).
//!
//! A history is read back long after it was written, maybe by another version of ferry: a
//! name this version does not know is kept as `Other(name)` (and written back unchanged), so an
//! old or newer history stays readable. `Other` is also how the self-revert script's
//! placeholder outcome (filled in on the host by `sed`) is carried.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The closed set's variants and their names, the fallback `Other`, and the conversions.
macro_rules! named {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal,)* }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vdoc])* $variant,)*
            /// A name this version of ferry does not know (written by another version).
            Other(String),
        }

        impl $name {
            /// Every known value.
            pub const KNOWN: &'static [$name] = &[$($name::$variant),*];

            /// The name in history.jsonl and in JSON events.
            pub fn as_str(&self) -> &str {
                match self {
                    $($name::$variant => $text,)*
                    $name::Other(s) => s,
                }
            }

            /// The value named `name`: a known one, else `Other`.
            pub fn parse(name: &str) -> $name {
                match name {
                    $($text => $name::$variant,)*
                    other => $name::Other(other.to_string()),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                Ok($name::parse(&String::deserialize(d)?))
            }
        }
    };
}

named! {
    /// What a history line records.
    Action {
        /// `ferry deploy` made a release current.
        Deploy = "deploy",
        /// `ferry rollback`, or the rollback after a failed deploy or hook.
        Rollback = "rollback",
        /// The host's self-arming timer went back to the previous release.
        Revert = "revert",
        /// A deploy's migration hook ran.
        Migrate = "migrate",
        /// `ferry deploy --no-switch` staged a release (its outcome: `Staged`).
        Stage = "stage",
        /// `ferry promote` made the staged release current.
        Promote = "promote",
    }
}

named! {
    /// How the recorded action ended.
    Outcome {
        /// Done and verified.
        Ok = "ok",
        /// It failed and stayed so (no way back was taken, or there was none).
        Failed = "failed",
        /// Refused before the switch (the seal's unit check found an error).
        Refused = "refused",
        /// It failed and the previous release was restored.
        RolledBack = "rolled-back",
        /// It failed and so did the way back.
        RollbackFailed = "rollback-failed",
        /// The self-revert went back to the previous release.
        Reverted = "reverted",
        /// The self-revert could not activate the previous release.
        RevertFailed = "revert-failed",
        /// A `stage` record: not `ok`, as the release never went live.
        Staged = "staged",
        /// ferry stopped (killed, cut off) during a rollback before it had verified the
        /// release: recorded by the next contact, the reason says where `current` was then.
        Interrupted = "interrupted",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_names_are_todays_strings_and_round_trip() {
        let actions: Vec<&str> = Action::KNOWN.iter().map(Action::as_str).collect();
        assert_eq!(
            actions,
            [
                "deploy", "rollback", "revert", "migrate", "stage", "promote"
            ]
        );
        let outcomes: Vec<&str> = Outcome::KNOWN.iter().map(Outcome::as_str).collect();
        assert_eq!(
            outcomes,
            [
                "ok",
                "failed",
                "refused",
                "rolled-back",
                "rollback-failed",
                "reverted",
                "revert-failed",
                "staged",
                "interrupted"
            ]
        );
        for a in Action::KNOWN {
            let json = serde_json::to_string(a).unwrap();
            assert_eq!(json, format!("\"{a}\""));
            assert_eq!(&serde_json::from_str::<Action>(&json).unwrap(), a);
        }
        for o in Outcome::KNOWN {
            let json = serde_json::to_string(o).unwrap();
            assert_eq!(json, format!("\"{o}\""));
            assert_eq!(&serde_json::from_str::<Outcome>(&json).unwrap(), o);
        }
        assert_eq!(Outcome::parse("rolled-back"), Outcome::RolledBack);
        assert_eq!(Action::parse("revert"), Action::Revert);
        // `deploy --no-switch` and `ferry promote` records are known values, not `Other`.
        assert_eq!(Action::parse("stage"), Action::Stage);
        assert_eq!(Action::parse("promote"), Action::Promote);
        assert_eq!(Outcome::parse("staged"), Outcome::Staged);
    }

    #[test]
    fn an_unknown_name_is_kept_as_it_was_written() {
        let o: Outcome = serde_json::from_str("\"half-done\"").unwrap();
        assert_eq!(o, Outcome::Other("half-done".into()));
        assert_eq!(serde_json::to_string(&o).unwrap(), "\"half-done\"");
        // Case and spelling matter: a near miss is not a known value.
        assert_eq!(
            Outcome::parse("rolledback"),
            Outcome::Other("rolledback".into())
        );
        assert_eq!(Action::parse("Deploy"), Action::Other("Deploy".into()));
        assert!(serde_json::from_str::<Action>("3").is_err());
    }
}
