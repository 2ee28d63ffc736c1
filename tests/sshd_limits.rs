//! What a host's sshd and login allow, against the real test remote: doctor's login checks
//! (a startup file that prints or exits, a missing or broken SFTP subsystem, a low
//! MaxSessions), deploys under MaxSessions, and a jump host that forbids forwarding. The
//! sshd settings come from an own sshd per case (`OwnSshd`). Users: ferry94 (doctor's login
//! checks), ferry96 (deploys under MaxSessions; the jump host's logins).

use serde_json::Value;

use crate::support::{OwnSshd, Project, remote};

fn check(run: &crate::support::Run, name: &str) -> Value {
    run.json()
        .into_iter()
        .find(|e| e["type"] == "check" && e["check"] == name)
        .unwrap_or_else(|| panic!("no `{name}` check in {run}"))
}

/// Put `lines` at the top of the user's ~/.bashrc (as root), or the stock file back.
fn bashrc(user: &str, lines: &str) {
    let out = remote().root(&format!(
        "f=/home/{user}/.bashrc; {{ printf '%s\\n' '{lines}'; cat /etc/skel/.bashrc; }} > $f && chown {user}: $f"
    ));
    assert!(out.status.success(), "{out:?}");
}

fn doctor(sshd: &OwnSshd, user: &str, extra: &[&str]) -> crate::support::Run {
    let p = Project::new();
    p.config(&sshd.host_table(&p, "web1", user));
    let mut args = vec!["--output", "json", "doctor"];
    args.extend_from_slice(extra);
    p.ferry(&args)
}

/// doctor's login checks, one case after another on one user.
#[test]
fn doctor_checks_the_login_shell_sftp_and_max_sessions() {
    let user = "ferry94";
    startup_files(user);
    sftp_and_max_sessions(user);
}

/// A startup file that prints on stdout (sftp-server breaks) and one that exits (nothing
/// runs): doctor names the file and the shell, and skips what it could not check.
fn startup_files(user: &str) {
    let sshd = OwnSshd::start();
    remote().reset(user);

    let run = doctor(&sshd, user, &[]);
    let c = check(&run, "login shell");
    assert_eq!(c["status"], "pass", "{run}");
    assert_eq!(
        c["detail"],
        "`/bin/bash` runs ferry's commands; its startup files print nothing"
    );
    assert_eq!(check(&run, "sftp subsystem")["status"], "pass", "{run}");
    let c = check(&run, "max sessions");
    assert_eq!(c["status"], "pass", "{run}");
    assert!(
        c["detail"].as_str().unwrap().starts_with("at least 10 "),
        "{c}"
    );
    run.assert_code(0);

    bashrc(user, "echo hello from bashrc");
    let run = doctor(&sshd, user, &[]);
    let c = check(&run, "login shell");
    assert_eq!(c["status"], "warn", "{run}");
    assert!(
        c["detail"]
            .as_str()
            .unwrap()
            .contains("print 18 bytes on stdout"),
        "{c}"
    );
    assert!(c["hint"].as_str().unwrap().contains("~/.bashrc"), "{c}");
    let c = check(&run, "sftp subsystem");
    assert_eq!(c["status"], "fail", "{run}");
    assert!(
        c["detail"]
            .as_str()
            .unwrap()
            .contains("\"hello from bashrc"),
        "{c}"
    );
    run.assert_code(1);

    bashrc(user, "exit 0");
    let run = doctor(&sshd, user, &[]);
    let c = check(&run, "login shell");
    assert_eq!(c["status"], "fail", "{run}");
    assert!(
        c["detail"]
            .as_str()
            .unwrap()
            .contains("did not run ferry's command"),
        "{c}"
    );
    let c = check(&run, "systemd version");
    assert_eq!(c["status"], "skip", "{run}");
    run.assert_code(1);
    remote().reset(user);
}

/// No `Subsystem sftp`, a `Subsystem sftp` whose program does not exist, and MaxSessions 1
/// and 2: each is named, with the sshd_config fix.
fn sftp_and_max_sessions(user: &str) {
    let none = OwnSshd::start_dropping(&["Subsystem"], "");
    let run = doctor(&none, user, &["--fix"]);
    let c = check(&run, "sftp subsystem");
    assert_eq!(c["status"], "fail", "{run}");
    assert!(
        c["detail"]
            .as_str()
            .unwrap()
            .contains("no `Subsystem sftp` line"),
        "{c}"
    );
    let fix = run
        .events("fix")
        .into_iter()
        .find(|f| f["check"] == "sftp subsystem")
        .unwrap_or_else(|| panic!("no fix in {run}"));
    assert!(
        fix["commands"].to_string().contains("internal-sftp"),
        "{fix}"
    );
    run.assert_code(1);
    drop(none);

    let broken = OwnSshd::start_dropping(
        &["Subsystem"],
        "-o 'Subsystem=sftp /usr/lib/openssh/no-such-sftp-server'",
    );
    let run = doctor(&broken, user, &[]);
    let c = check(&run, "sftp subsystem");
    assert_eq!(c["status"], "fail", "{run}");
    let detail = c["detail"].as_str().unwrap();
    assert!(detail.contains("ended without answering"), "{c}");
    drop(broken);

    for (max, status) in [(1, "fail"), (2, "warn")] {
        let sshd = OwnSshd::start_with(&format!("-o MaxSessions={max}"));
        let run = doctor(&sshd, user, &[]);
        let c = check(&run, "max sessions");
        assert_eq!(c["status"], status, "{run}");
        assert!(
            c["detail"]
                .as_str()
                .unwrap()
                .contains(&format!("(MaxSessions {max})")),
            "{c}"
        );
        assert!(
            c["hint"].as_str().unwrap().contains("MaxSessions 10"),
            "{c}"
        );
        // The other checks still ran, one session at a time.
        assert_eq!(check(&run, "user manager")["status"], "pass", "{run}");
    }
}
