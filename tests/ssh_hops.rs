//! Where ~/.ssh/config sends ferry, as ssh: jump hosts named only there (a hop's HostName,
//! User, Port, IdentityFile and its own ProxyJump come from the Host block of its name, a
//! chain of hops; a hop's `user@` and `:port` beat those lines), CanonicalizeHostname's
//! canonical name and `Match canonical`; and the messages about ssh_config's files: the
//! unknown-host hint has real lines, no deploy.toml note follows their paths.
//! Remote users: ferry116 (the jump test, target and hops), ferry117 (names and paths).

use std::process::Command;

use crate::support::*;

/// The remote's ed25519 host key line `TYPE KEY`.
fn host_key(r: &Remote) -> String {
    std::fs::read_to_string(&r.known_hosts)
        .unwrap()
        .lines()
        .find(|l| l.contains("ssh-ed25519"))
        .unwrap()
        .split_whitespace()
        .skip(1)
        .collect::<Vec<_>>()
        .join(" ")
}

fn doctor_json(p: &Project) -> (Run, serde_json::Value) {
    let run = p.ferry(&["--output", "json", "doctor"]);
    let reach = run
        .json()
        .into_iter()
        .find(|e| e["type"] == "check" && e["check"] == "reachable")
        .unwrap_or_default();
    (run, reach)
}

/// `target` -> ProxyJump hop2 -> (hop2's own) ProxyJump hop1: hop1's HostName, Port and User
/// exist only in `Host hop1`, and hop2's and the target's address is a name only the remote
/// resolves, so only the whole chain reaches it. The same files work for `ssh -F`.
#[test]
fn a_jump_hosts_own_settings_and_proxy_jump_come_from_ssh_config() {
    let r = remote();
    let p = Project::new();
    p.write(
        "kh",
        format!(
            "[{}]:{port} {key}\n[ferry-jump-only]:{port} {key}\n",
            r.host,
            port = r.port,
            key = host_key(r)
        ),
    );
    p.config("[hosts.web]\naddress = \"target\"\n");
    let ssh_config = |jump: &str, hop1_user: &str, hop2_extra: &str| {
        format!(
            "Host target\n  HostName ferry-jump-only\n  Port {port}\n  User ferry116\n  ProxyJump {jump}\n\
             Host hop2\n{hop2_extra}  HostName ferry-jump-only\n  Port {port}\n  User ferry116\n  ProxyJump hop1\n\
             Host hop1\n  HostName {host}\n  Port {port}\n  User {hop1_user}\n\
             Host *\n  IdentityFile {key}\n  UserKnownHostsFile {kh}\n  StrictHostKeyChecking yes\n  BatchMode yes\n",
            port = r.port,
            host = r.host,
            key = r.key.display(),
            kh = p.path("kh").display(),
        )
    };
    let ssh = |args: &[&str]| {
        Command::new("ssh")
            .arg("-F")
            .arg(p.path(".ssh/config"))
            .args(args)
            .output()
            .expect("the ssh client runs")
    };
    p.write(".ssh/config", ssh_config("hop2", "ferry116", ""));
    let (run, reach) = doctor_json(&p);
    run.assert_code(0);
    assert_eq!(
        reach["detail"],
        format!("ferry-jump-only:{} through hop2", r.port),
        "{run}"
    );
    let out = ssh(&["target", "whoami"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ferry116");
    // hop1 is really the first hop: its login failing is reported under its name.
    p.write(".ssh/config", ssh_config("hop2", "nobody-here", ""));
    let run = p.ferry(&["doctor"]);
    run.assert_code(3);
    assert!(
        run.stdout.contains("hop1: authentication as `nobody-here`"),
        "{run}"
    );
    assert!(!ssh(&["target", "true"]).status.success());
    // `user@hop2:port` beats hop2's own User and Port lines (as ssh's -l and -p).
    p.write(
        ".ssh/config",
        ssh_config(
            &format!("ferry116@hop2:{}", r.port),
            "ferry116",
            "  User nobody-here\n  Port 1\n",
        ),
    );
    let (run, _) = doctor_json(&p);
    run.assert_code(0);
    assert!(ssh(&["target", "true"]).status.success());
}

/// A host known only from ~/.ssh/config with its own UserKnownHostsFile and IdentityFiles: the
/// unknown-host hint stands on real lines and names the file really read, and no paths of the
/// OpenSSH config get deploy.toml's "(paths are relative ...)" note. Then CanonicalizeHostname:
/// `127.1` becomes `127.0.0.1` (its known_hosts name) and `Match canonical` gives the login;
/// a name no CanonicalDomains resolves, with CanonicalizeFallbackLocal no, is a config error
/// at that line before any connection. `ssh -F` with the same files agrees.
#[test]
fn ssh_config_names_are_canonical_and_paths_said_as_read() {
    let r = remote();
    let p = Project::new();
    p.write("u/x.service", "[Service]\nExecStart=/bin/true\n");
    p.config(
        "[hosts.web]\naddress = \"plain\"\n[services.x]\nhosts = [\"web\"]\nunits = [\"u/x.service\"]\n",
    );
    p.write(
        ".ssh/config",
        format!(
            "Host plain\n  HostName {}\n  Port {}\n  User ferry117\n  IdentityFile ~/no-such-key\n  IdentityFile {}\n  UserKnownHostsFile ~/kh-%r\n",
            r.host,
            r.port,
            r.key.display()
        ),
    );
    let run = p.ferry(&["status"]);
    run.assert_code(3);
    let all = format!("{}{}", run.stdout, run.stderr);
    assert!(all.contains("is not known"), "{run}");
    assert!(!all.contains("\\n"), "a literal \\n in: {run}");
    assert!(!all.contains("relative to"), "{run}");
    assert!(
        all.contains(&p.path("kh-ferry117").display().to_string()),
        "the known_hosts file named as read: {run}"
    );
    let line_to_add = format!("[{}]:{} ssh-ed25519 ", r.host, r.port);
    assert!(
        all.lines()
            .any(|l| l.trim_start().starts_with(&line_to_add)),
        "the line to add stands on its own line: {run}"
    );
    // A missing IdentityFile is skipped, as ssh does; once the host is known, it connects.
    p.write(
        "kh-ferry117",
        format!("[{}]:{} {}\n", r.host, r.port, host_key(r)),
    );
    let run = p.ferry(&["doctor"]);
    run.assert_code(0);
    // Only missing keys: the failure names them, without the note.
    let text = std::fs::read_to_string(p.path(".ssh/config")).unwrap();
    p.write(
        ".ssh/config",
        text.replace(&format!("  IdentityFile {}\n", r.key.display()), ""),
    );
    let run = p.ferry(&["doctor"]);
    run.assert_code(3);
    let all = format!("{}{}", run.stdout, run.stderr);
    assert!(!all.contains("relative to"), "{run}");
    canonical_names(&p, r);
}

fn canonical_names(p: &Project, r: &Remote) {
    p.write(
        "kh-canon",
        format!("[{}]:{} {}\n", r.host, r.port, host_key(r)),
    );
    p.config("[hosts.web]\naddress = \"127.1\"\n");
    let ssh_config = |extra: &str| {
        format!(
            "CanonicalizeHostname yes\nCanonicalDomains ferry.invalid\n{extra}\
             Match canonical host {host}\n  Port {port}\n  User ferry117\n  IdentityFile {key}\n\
             Host *\n  UserKnownHostsFile {kh}\n  StrictHostKeyChecking yes\n  BatchMode yes\n",
            host = r.host,
            port = r.port,
            key = r.key.display(),
            kh = p.path("kh-canon").display(),
        )
    };
    p.write(".ssh/config", ssh_config(""));
    let run = p.ferry(&["--output", "json", "doctor"]);
    run.assert_code(0);
    let out = Command::new("ssh")
        .arg("-F")
        .arg(p.path(".ssh/config"))
        .args(["127.1", "whoami"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ferry117");
    p.config("[hosts.web]\naddress = \"nowhere\"\n");
    p.write(".ssh/config", ssh_config("CanonicalizeFallbackLocal no\n"));
    let run = p.ferry(&["doctor"]);
    run.assert_code(2);
    let config = p.path(".ssh/config").display().to_string();
    assert!(
        run.stderr.contains(&format!(
            "{config}:3: canonicalizefallbacklocal: could not resolve host \"nowhere\""
        )),
        "{run}"
    );
}
