//! The `host tools` check: the commands ferry's remote scripts run, found on the host's PATH
//! (as ferry's commands see it: a non-interactive login of the deploy user), and whether they
//! are the GNU/util-linux ones the suite is tested with or BusyBox applets.

use super::{Check, CheckId};
use crate::systemd::journal::kv;

/// The commands ferry runs on a host: (command, what needs it, the Debian package). Without
/// any of them a deploy fails on the host, midway.
pub const REQUIRED: [(&str, &str, &str); 17] = [
    ("flock", "the deploy lock", "util-linux"),
    (
        "setsid",
        "hooks, health commands and `ferry exec`",
        "util-linux",
    ),
    (
        "timeout",
        "timeouts of hooks and health commands",
        "coreutils",
    ),
    ("xargs", "file lists", "findutils"),
    ("stat", "the stat record of a release", "coreutils"),
    ("sha256sum", "verifying files on the host", "coreutils"),
    ("mktemp", "temporary files", "coreutils"),
    ("head", "long scripts sent on stdin", "coreutils"),
    ("readlink", "reading `current`", "coreutils"),
    ("sync", "making sealed files durable", "coreutils"),
    ("cut", "reading hashes", "coreutils"),
    ("paste", "the stat record of a release", "coreutils"),
    ("awk", "reading the host's files", "mawk"),
    ("sed", "reading the history", "sed"),
    ("grep", "reading units", "grep"),
    ("systemd-run", "the self-revert timer", "systemd"),
    ("journalctl", "`ferry logs` and failure journals", "systemd"),
];

/// Commands ferry uses when they are there: (command, what is lost without it).
pub const OPTIONAL: [(&str, &str); 2] = [
    (
        "gzip",
        "compressed and delta uploads (files are sent whole)",
    ),
    (
        "tar",
        "many small files in one stream (they go one by one over SFTP)",
    ),
];

/// Prints `missing=NAME` for each command not on PATH and `busybox=NAME` for each that is a
/// BusyBox applet.
pub fn probe() -> String {
    let names: Vec<&str> = REQUIRED
        .iter()
        .map(|t| t.0)
        .chain(OPTIONAL.iter().map(|t| t.0))
        .collect();
    format!(
        "for t in {}; do p=$(command -v \"$t\" 2>/dev/null) || {{ echo \"missing=$t\"; continue; }}; \
         case \"$(readlink -f \"$p\" 2>/dev/null)\" in */busybox*) echo \"busybox=$t\" ;; esac; done; echo tools=checked",
        names.join(" ")
    )
}

fn values<'a>(text: &'a str, key: &str) -> Vec<&'a str> {
    text.lines()
        .filter_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
        .map(str::trim)
        .collect()
}

/// Judge the output of [`probe`].
pub fn judge_tools(host: &str, text: &str) -> Check {
    let c = CheckId::HostTools;
    if kv(text, "tools").is_none() {
        return Check::fail(
            host,
            c,
            "the check of the host's commands did not run",
            "run doctor again; if it says so again, run `sh -c 'command -v flock'` as the deploy user on the host",
        );
    }
    let missing = values(text, "missing");
    let required: Vec<&(&str, &str, &str)> =
        REQUIRED.iter().filter(|t| missing.contains(&t.0)).collect();
    if !required.is_empty() {
        let said: Vec<String> = required
            .iter()
            .map(|(name, need, _)| format!("{name} ({need})"))
            .collect();
        let mut packages: Vec<&str> = required.iter().map(|t| t.2).collect();
        packages.sort();
        packages.dedup();
        return Check::fail(
            host,
            c,
            format!("not on the deploy user's PATH: {}", said.join(", ")),
            format!(
                "as root on the host: apt-get install {} (or the same packages of the host's distribution); if they are installed, the deploy user's PATH lacks their directory",
                packages.join(" ")
            ),
        );
    }
    let busybox = values(text, "busybox");
    if !busybox.is_empty() {
        return Check::warn(
            host,
            c,
            format!(
                "BusyBox applets: {} (ferry is tested with GNU coreutils, findutils and util-linux; BusyBox's may lack options it uses, such as `stat -c %.9Z`)",
                busybox.join(", ")
            ),
            "as root on the host: install coreutils, findutils and util-linux, and put them ahead of BusyBox on PATH",
        );
    }
    let optional: Vec<&(&str, &str)> = OPTIONAL.iter().filter(|t| missing.contains(&t.0)).collect();
    if !optional.is_empty() {
        let said: Vec<String> = optional
            .iter()
            .map(|(n, lost)| format!("{n}: {lost}"))
            .collect();
        let names: Vec<&str> = optional.iter().map(|(n, _)| *n).collect();
        return Check::warn(
            host,
            c,
            format!("not on PATH: {}", said.join("; ")),
            format!("as root on the host: apt-get install {}", names.join(" ")),
        );
    }
    Check::pass(
        host,
        c,
        format!(
            "{} commands found ({}, ...)",
            REQUIRED.len() + OPTIONAL.len(),
            REQUIRED[..4]
                .iter()
                .map(|t| t.0)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::doctor::Status;

    /// The probe run by sh with a PATH of a scratch directory holding some of the commands:
    /// the missing ones are named, with their packages, and the check fails.
    #[test]
    fn the_probe_names_what_is_missing_from_path() {
        let dir = tempfile::tempdir().unwrap();
        for t in ["flock", "xargs", "stat", "readlink", "gzip"] {
            std::os::unix::fs::symlink(format!("/usr/bin/{t}"), dir.path().join(t)).unwrap();
        }
        let out = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(probe())
            .env("PATH", dir.path())
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.contains("missing=setsid\n"), "{text}");
        assert!(!text.contains("missing=flock\n"), "{text}");
        assert!(!text.contains("missing=gzip\n"), "{text}");
        let check = judge_tools("web1", &text);
        assert_eq!(check.status, Status::Fail, "{check:?}");
        assert!(check.detail.contains("setsid (hooks"), "{}", check.detail);
        assert!(!check.detail.contains("flock"), "{}", check.detail);
        let hint = check.hint.unwrap();
        assert!(hint.contains("apt-get install coreutils"), "{hint}");
        assert!(hint.contains("util-linux"), "{hint}");
    }

    #[test]
    fn all_found_passes_busybox_and_a_missing_gzip_or_tar_warn() {
        let all = "tools=checked\n";
        assert_eq!(judge_tools("h", all).status, Status::Pass);
        let bb = judge_tools("h", "busybox=stat\nbusybox=xargs\ntools=checked\n");
        assert_eq!(bb.status, Status::Warn);
        assert!(bb.detail.contains("stat, xargs"), "{}", bb.detail);
        let gz = judge_tools("h", "missing=gzip\ntools=checked\n");
        assert_eq!(gz.status, Status::Warn);
        assert!(gz.detail.contains("sent whole"), "{}", gz.detail);
        let both = judge_tools("h", "missing=gzip\nmissing=tar\ntools=checked\n");
        assert_eq!(both.status, Status::Warn);
        assert!(
            both.detail.contains("one by one over SFTP"),
            "{}",
            both.detail
        );
        assert_eq!(
            both.hint.as_deref(),
            Some("as root on the host: apt-get install gzip tar")
        );
        let none = judge_tools("h", "");
        assert_eq!(none.status, Status::Fail);
    }
}
