//! What a host's sshd and login allow, against the real test remote: doctor's login checks
//! (a startup file that prints or exits, a missing or broken SFTP subsystem, a low
//! MaxSessions), deploys under MaxSessions, and a jump host that forbids forwarding. The
//! sshd settings come from an own sshd per case (`OwnSshd`). Users: ferry94 (doctor's login
//! checks), ferry96 (deploys under MaxSessions; the jump host's logins), ferry127 (an http
//! health check where forwarding is forbidden).

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
    let out = remote().root(&format!(
        "cp /etc/skel/.bashrc /home/{user}/.bashrc && chown {user}: /home/{user}/.bashrc"
    ));
    assert!(out.status.success(), "{out:?}");
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

fn app_config(p: &Project, sshd: &OwnSshd, user: &str, msg: &str) {
    p.write(
        "app.service",
        "[Service]\nExecStart=/bin/sh -c 'exec sleep 600'\n",
    );
    p.write("msg", msg);
    p.config(&format!(
        "{}[services.app]\nunits = [\"app.service\"]\nstart_timeout = \"3s\"\nsettle_time = \"0.3s\"\n\
         [[services.app.files]]\nsource = \"msg\"\ndest = \"msg\"\n",
        sshd.host_table(p, "web1", user)
    ));
}

fn root_out(cmd: &str) -> String {
    String::from_utf8_lossy(&remote().root(cmd).stdout)
        .trim()
        .to_string()
}

/// MaxSessions 2: a deploy (which wants more at once) waits for its own sessions and
/// succeeds; its history time is the host's even with this machine's clock an hour ahead.
/// MaxSessions 1: it cannot hold its lock and do anything else: the error names MaxSessions
/// and the fix, and the host keeps its release with no staging directory left.
#[test]
fn deploys_under_max_sessions_and_history_times_from_the_host() {
    let user = "ferry96";
    let r = remote();
    r.reset(user);
    let dir = format!("/home/{user}/.local/share/ferry/app");
    let two = OwnSshd::start_with("-o MaxSessions=2");
    let p = Project::new();
    app_config(&p, &two, user, "two sessions\n");
    let run = p.ferry_env(
        &["--output", "json", "deploy"],
        &[("FERRY_FAULT_CLOCK_OFFSET", "3600")],
    );
    run.assert_code(0);
    assert_eq!(root_out(&format!("cat {dir}/current/msg")), "two sessions");
    let host_now: u64 = root_out("date +%s").parse().unwrap();
    let id = root_out(&format!("readlink {dir}/current"));
    let id = id.trim_start_matches("releases/");
    let stamp = format!(
        "{}-{}-{}T{}:{}:{}Z",
        &id[0..4],
        &id[4..6],
        &id[6..8],
        &id[9..11],
        &id[11..13],
        &id[13..15]
    );
    let deployed_at = humantime::parse_rfc3339(&stamp).unwrap();
    let history = root_out(&format!("tail -n 1 {dir}/history.jsonl"));
    let last: Value = serde_json::from_str(&history).unwrap();
    assert_eq!(last["outcome"], "ok", "{history}");
    let time = humantime::parse_rfc3339(last["time"].as_str().unwrap()).unwrap();
    let secs =
        |t: std::time::SystemTime| t.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    // On the host's clock: not before the deploy's release id, not after the host's now.
    assert!(
        secs(deployed_at) <= secs(time) && secs(time) <= host_now,
        "history time {} outside [{stamp}, host now {host_now}]: {history}",
        last["time"]
    );
    drop(two);

    let one = OwnSshd::start_with("-o MaxSessions=1");
    app_config(&p, &one, user, "one session\n");
    let run = p.ferry(&["deploy"]);
    assert_ne!(run.code, 0, "{run}");
    let text = format!("{run}");
    assert!(
        text.contains("MaxSessions") && text.contains("MaxSessions 10"),
        "{run}"
    );
    assert_eq!(root_out(&format!("cat {dir}/current/msg")), "two sessions");
    assert_eq!(
        root_out(&format!("ls -a {dir}/releases | grep -c partial; true")),
        "0"
    );
}

/// A jump host whose sshd forbids forwarding: the error names the jump host and
/// AllowTcpForwarding, not a generic channel failure.
#[test]
fn a_jump_host_without_forwarding_is_named() {
    let user = "ferry96";
    let bastion = OwnSshd::start_with("-o AllowTcpForwarding=no");
    let p = Project::new();
    p.config(&format!(
        "{}{}proxy_jump = \"bastion\"\n",
        bastion.host_table(&p, "bastion", user),
        crate::support::host_table("web1", user)
            .trim_end()
            .to_string()
            + "\n"
    ));
    let run = p.ferry(&["doctor", "--host", "web1"]);
    run.assert_code(3);
    let text = format!("{run}");
    assert!(
        text.contains("jump host bastion refuses to forward")
            && text.contains("AllowTcpForwarding"),
        "{run}"
    );
}

/// An http health check through an sshd that forbids forwarding: the deploy fails at once
/// (no retries until the health timeout) with what the server forbids and how to check
/// instead, and the previous release serves again.
#[test]
fn an_http_health_check_where_forwarding_is_forbidden_says_so() {
    let user = "ferry127";
    let r = remote();
    r.reset(user);
    let sshd = OwnSshd::start_with("-o AllowTcpForwarding=no");
    let p = Project::new();
    app_config(&p, &sshd, user, "one\n");
    p.ferry(&["deploy"]).assert_code(0);
    let dir = format!("/home/{user}/.local/share/ferry/app");
    let first = root_out(&format!("readlink {dir}/current"));

    app_config(&p, &sshd, user, "two\n");
    let toml = std::fs::read_to_string(p.path("deploy.toml")).unwrap();
    p.config(&format!(
        "{toml}[services.app.health]\nhttp = \"http://127.0.0.1:9/healthz\"\ntimeout = \"10m\"\ninterval = \"1s\"\n"
    ));
    let run = p.ferry(&["deploy"]);
    run.assert_code(4);
    let text = format!("{run}");
    assert!(
        text.contains("forbids forwarding")
            && text.contains("AllowTcpForwarding")
            && text.contains("health.command"),
        "{run}"
    );
    assert!(!text.contains("still failing after"), "retried: {run}");
    assert_eq!(root_out(&format!("readlink {dir}/current")), first);
}
