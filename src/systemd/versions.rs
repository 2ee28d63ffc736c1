//! What differs between the systemd versions ferry's hosts run (252 on Debian 12 and RHEL 9,
//! 255 on Ubuntu 24.04, 257 on Debian 13), recognised in one place. Pure.

/// A notice `journalctl --user` prints (on stderr) when the user has no journal file (yet), in
/// the wording of each systemd version:
///
/// - up to 255: `No journal files were found.`
/// - 256 and later, when files exist that the user may not read (the system journal, other
///   users' journals) but none of the user's own: `No journal files were opened due to
///   insufficient permissions.`
///
/// Both mean "this user's journal is empty": ferry treats them as no entries, not as an error
/// (the reasons a journal stays empty are judged separately, see `journal::judge_empty`).
pub fn is_no_journal_notice(line: &str) -> bool {
    let line = line.trim().trim_start_matches("journalctl: ").trim();
    matches!(
        line,
        "No journal files were found."
            | "No journal files were opened due to insufficient permissions."
    )
}

/// The lines of journalctl's stderr that say something: without the "no journal files" notice
/// of any version ([`is_no_journal_notice`]) and without blank lines.
pub fn journal_stderr_without_notices(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .filter(|l| !l.trim().is_empty() && !is_no_journal_notice(l))
        .cloned()
        .collect()
}

/// `journalctl --user --follow` ended because the user has no journal file to follow: on
/// systemd 256 and later it prints the notice and exits 1 at once (252 waits for a file to
/// appear). `stderr` is what it printed there.
pub fn follow_ended_without_journal(status: Option<u32>, stderr: &str) -> bool {
    let said: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    status == Some(1) && !said.is_empty() && said.iter().all(|l| is_no_journal_notice(l))
}

/// What to say when [`follow_ended_without_journal`].
pub const NO_JOURNAL_TO_FOLLOW: &str = "this user has no journal file to follow (yet): journalctl \
    on systemd 256 and later stops at once when there is none (on older versions it waits). Run \
    `ferry logs -f` again once the service has logged something";

/// A hint for a warning of `systemd-analyze verify` that means "this systemd is older than the
/// unit": it ignores a setting or a value that a newer version knows (e.g. `Type=notify-reload`,
/// systemd 253+, which 252 drops: the service then runs as `Type=simple`). None for others.
pub fn older_systemd_hint(line: &str) -> Option<&'static str> {
    let ignored_value = line.contains("Failed to parse") && line.contains(", ignoring");
    let unknown_key = line.contains("Unknown key") && line.contains("ignoring");
    (ignored_value || unknown_key).then_some(
        "the host's systemd ignores this setting (`systemctl --version` there; Debian 12 has 252, \
         Debian 13 257): the unit runs without it, use what that version knows",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_journal_notices_of_every_version() {
        // systemd 252 (Debian 12).
        assert!(is_no_journal_notice("No journal files were found."));
        // systemd 257 (Debian 13), a user with no journal file yet.
        assert!(is_no_journal_notice(
            "No journal files were opened due to insufficient permissions."
        ));
        // With a trailing CR or the prefix ferry adds when it shows journalctl's stderr.
        assert!(is_no_journal_notice("No journal files were found.\r"));
        assert!(is_no_journal_notice(
            "journalctl: No journal files were opened due to insufficient permissions."
        ));
    }

    #[test]
    fn other_stderr_is_not_a_notice() {
        for other in [
            "",
            "Failed to open journal: Permission denied",
            "No journal files were found. Extra",
            "Hint: You are currently not seeing messages from other users and the system.",
            "Failed to add match 'x': Invalid argument",
        ] {
            assert!(!is_no_journal_notice(other), "{other}");
        }
    }

    #[test]
    fn a_follow_that_ends_for_lack_of_a_journal() {
        let notice = "No journal files were opened due to insufficient permissions.";
        assert!(follow_ended_without_journal(Some(1), notice));
        assert!(follow_ended_without_journal(
            Some(1),
            &format!("{notice}\n\n")
        ));
        // Another exit status, nothing said, or something else said: a real failure.
        assert!(!follow_ended_without_journal(Some(0), notice));
        assert!(!follow_ended_without_journal(None, notice));
        assert!(!follow_ended_without_journal(Some(1), ""));
        assert!(!follow_ended_without_journal(
            Some(1),
            &format!("{notice}\nFailed to iterate through journal: Bad message")
        ));
    }

    #[test]
    fn settings_an_older_systemd_ignores() {
        // systemd 252 on a unit written for 257.
        assert!(
            older_systemd_hint(
                "r.service:2: Failed to parse service type, ignoring: notify-reload"
            )
            .is_some()
        );
        assert!(
            older_systemd_hint("a.service:3: Unknown key 'FooBar' in section [Service], ignoring.")
                .is_some()
        );
        assert_eq!(
            older_systemd_hint(
                "b.service: Unit configuration has fatal error, unit will not be started."
            ),
            None
        );
    }

    #[test]
    fn stderr_keeps_what_matters() {
        let lines: Vec<String> = [
            "No journal files were opened due to insufficient permissions.",
            "  ",
            "Failed to add match 'x': Invalid argument",
            "No journal files were found.",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            journal_stderr_without_notices(&lines),
            vec!["Failed to add match 'x': Invalid argument".to_string()]
        );
    }
}
