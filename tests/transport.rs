//! The SSH transport and `ferry doctor` against the real remote: host keys, authentication,
//! quoting, and the readiness checks.

use crate::support::{OwnSshd, Project, host_table, remote};

fn doctor_json(p: &Project) -> (i32, Vec<serde_json::Value>, String) {
    let run = p.ferry(&["--output", "json", "doctor"]);
    let json = run.json();
    (run.code, json, run.stderr)
}

fn check<'a>(events: &'a [serde_json::Value], name: &str) -> &'a serde_json::Value {
    events
        .iter()
        .find(|e| e["type"] == "check" && e["check"] == name)
        .unwrap_or_else(|| panic!("no `{name}` check in {events:#?}"))
}

#[test]
fn doctor_passes_on_a_ready_host() {
    let p = Project::new();
    p.config(&host_table("web1", "ferry1"));
    let (code, events, stderr) = doctor_json(&p);
    for name in [
        "reachable",
        "host key",
        "authenticated",
        "user manager",
        "lingering",
        "journal",
        "unit directory",
        "host tools",
    ] {
        assert_eq!(
            check(&events, name)["status"],
            "pass",
            "{name}: {events:#?}\n{stderr}"
        );
    }
    assert_eq!(code, 0, "{stderr}");
    // The human output names each check too.
    let run = p.ferry(&["doctor"]);
    run.assert_code(0);
    assert!(run.stdout.contains("lingering"), "{run}");
    // Every check passed, some perhaps with a warning (the test remote delegates no cgroup
    // controllers).
    assert!(
        run.stdout.contains("all 12 checks passed") || run.stdout.contains("no check failed"),
        "{run}"
    );
}

#[test]
fn doctor_reports_lingering_off() {
    let r = remote();
    let p = Project::new();
    p.config(&host_table("box", &r.nolinger_user));
    let (code, events, _) = doctor_json(&p);
    let c = check(&events, "lingering");
    assert_eq!(c["status"], "fail", "{events:#?}");
    assert_eq!(
        c["hint"],
        format!(
            "as root on the host: loginctl enable-linger {}",
            r.nolinger_user
        )
    );
    assert_eq!(code, 1);
}

#[test]
fn doctor_reports_unreadable_journal_of_a_system_user() {
    let r = remote();
    let p = Project::new();
    p.config(&host_table("box", &r.system_user));
    let (code, events, _) = doctor_json(&p);
    let c = check(&events, "journal");
    assert_eq!(c["status"], "fail", "{events:#?}");
    assert!(
        c["hint"].as_str().unwrap().contains("system user"),
        "{c:#?}"
    );
    assert_eq!(code, 1);
}

#[test]
fn changed_host_key_is_refused() {
    let r = remote();
    let p = Project::new();
    let cfg = host_table("web1", "ferry1").replace(
        &r.known_hosts.display().to_string(),
        &r.wrong_known_hosts.display().to_string(),
    );
    p.config(&cfg);
    let run = p.ferry(&["doctor"]);
    run.assert_code(3);
    assert!(run.stdout.contains("HAS CHANGED"), "{run}");
    assert!(
        run.stdout
            .contains(&format!("{}:1", r.wrong_known_hosts.display())),
        "names the known_hosts line: {run}"
    );
    // accept-new does not accept a changed key either.
    p.config(&cfg.replace(
        "connect_timeout",
        "host_key_policy = \"accept-new\"\nconnect_timeout",
    ));
    let run = p.ferry(&["doctor"]);
    run.assert_code(3);
    assert!(run.stdout.contains("HAS CHANGED"), "{run}");
}

/// A changed or unknown host key stops `deploy` too, before anything reaches the host: no
/// release directory, no unit, no lock file; exit 3 with the reason.
#[test]
fn deploy_refuses_a_changed_or_unknown_host_key_and_leaves_the_host_untouched() {
    let r = remote();
    let user = "ferry1";
    let p = Project::new();
    p.write("msg", "should never arrive\n");
    p.write("hostkey.service", "[Service]\nExecStart=/bin/sleep 600\n");
    let service = "[services.hostkey]\nunits = [\"hostkey.service\"]\n\
                   [[services.hostkey.files]]\nsource = \"msg\"\ndest = \"msg\"\n";
    let untouched = || {
        let out = r.ssh(
            user,
            "test -e ~/.local/share/ferry/hostkey && echo dir; \
             test -e ~/.config/systemd/user/hostkey.service && echo unit; \
             systemctl --user show hostkey.service -p LoadState --value",
        );
        assert_eq!(out, "not-found\n", "the refused deploy touched the host");
    };
    let unknown = p.path("kh");
    let cases = [
        (
            "changed key, strict",
            host_table("web1", user).replace(
                &r.known_hosts.display().to_string(),
                &r.wrong_known_hosts.display().to_string(),
            ),
            "HAS CHANGED",
        ),
        (
            "changed key, accept-new",
            host_table("web1", user)
                .replace(
                    &r.known_hosts.display().to_string(),
                    &r.wrong_known_hosts.display().to_string(),
                )
                .replace(
                    "connect_timeout",
                    "host_key_policy = \"accept-new\"\nconnect_timeout",
                ),
            "HAS CHANGED",
        ),
        (
            "unknown host, strict",
            host_table("web1", user).replace(
                &r.known_hosts.display().to_string(),
                &unknown.display().to_string(),
            ),
            "is not known",
        ),
    ];
    let wrong_before = std::fs::read_to_string(&r.wrong_known_hosts).unwrap();
    untouched();
    for (case, hosts, says) in cases {
        p.config(&format!("{hosts}{service}"));
        for args in [&["deploy"][..], &["--output", "json", "deploy"][..]] {
            let run = p.ferry(args);
            run.assert_code(3);
            let text = format!("{}{}", run.stdout, run.stderr);
            assert!(text.contains(says), "{case}: {run}");
            untouched();
        }
        assert!(!unknown.exists(), "{case}: strict wrote known_hosts");
    }
    // accept-new did not replace the changed key in the known_hosts file either.
    assert_eq!(
        std::fs::read_to_string(&r.wrong_known_hosts).unwrap(),
        wrong_before
    );
}

#[test]
fn unknown_host_strict_refuses_accept_new_records() {
    let r = remote();
    let p = Project::new();
    let kh = p.path("kh");
    let cfg = host_table("web1", "ferry1").replace(
        &r.known_hosts.display().to_string(),
        &kh.display().to_string(),
    );
    p.config(&cfg);
    let run = p.ferry(&["doctor"]);
    run.assert_code(3);
    assert!(run.stdout.contains("is not known"), "{run}");
    assert!(run.stdout.contains("SHA256:"), "fingerprint shown: {run}");
    assert!(
        run.stdout
            .contains(&format!("[{}]:{} ssh-ed25519 ", r.host, r.port)),
        "line to add shown: {run}"
    );
    assert!(!kh.exists(), "strict must not write known_hosts");

    p.config(&cfg.replace(
        "connect_timeout",
        "host_key_policy = \"accept-new\"\nconnect_timeout",
    ));
    let run = p.ferry(&["doctor"]);
    run.assert_code(0);
    let recorded = std::fs::read_to_string(&kh).unwrap();
    let pinned = std::fs::read_to_string(&r.known_hosts).unwrap();
    let key = |s: &str| s.split_whitespace().nth(2).map(String::from);
    assert_eq!(
        key(&recorded),
        key(pinned.lines().find(|l| l.contains("ed25519")).unwrap())
    );
    assert!(run.stdout.contains("new: recorded"), "{run}");
    // Now known: strict passes.
    p.config(&cfg);
    p.ferry(&["doctor"]).assert_code(0);
}

#[test]
fn unknown_client_key_is_rejected_with_a_clear_error() {
    let r = remote();
    let p = Project::new();
    p.config(&host_table("web1", "ferry1").replace(
        &r.key.display().to_string(),
        &r.unknown_key.display().to_string(),
    ));
    let run = p.ferry(&["doctor"]);
    run.assert_code(3);
    assert!(
        run.stdout
            .contains("authentication as `ferry1` was rejected"),
        "{run}"
    );
    assert!(
        run.stdout.contains("publickey"),
        "names the key tried: {run}"
    );
    assert!(run.stdout.contains("authorized_keys"), "hint: {run}");
}

#[test]
fn rsa_and_encrypted_keys_authenticate() {
    let r = remote();
    let p = Project::new();
    p.config(&host_table("web1", "ferry1").replace(
        &r.key.display().to_string(),
        &r.rsa_key.display().to_string(),
    ));
    let run = p.ferry(&["--output", "json", "doctor"]);
    run.assert_code(0);
    let auth = check(&run.json(), "authenticated").clone();
    assert!(
        auth["detail"].as_str().unwrap().contains("ssh-rsa"),
        "{auth}"
    );

    p.config(&host_table("web1", "ferry1").replace(
        &r.key.display().to_string(),
        &r.enc_key.display().to_string(),
    ));
    // No passphrase and no terminal: a clear error, not a hang.
    let run = p.ferry(&["doctor"]);
    run.assert_code(3);
    assert!(run.stdout.contains("FERRY_KEY_PASSPHRASE"), "{run}");
    let run = p.ferry_env(
        &["doctor"],
        &[("FERRY_KEY_PASSPHRASE", &r.enc_key_passphrase)],
    );
    run.assert_code(0);
    assert!(
        !run.stdout.contains(&r.enc_key_passphrase) && !run.stderr.contains(&r.enc_key_passphrase)
    );
    let run = p.ferry_env(&["doctor"], &[("FERRY_KEY_PASSPHRASE", "wrong")]);
    run.assert_code(3);
    assert!(run.stdout.contains("passphrase"), "{run}");
}

#[test]
fn connection_refused_names_host_and_hints() {
    let p = Project::new();
    // A port nothing listens on.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    p.config(&host_table("dead", "ferry1").replace(
        &format!("port = {}", remote().port),
        &format!("port = {port}"),
    ));
    let run = p.ferry(&["doctor"]);
    run.assert_code(3);
    assert!(
        run.stdout.contains("dead") && run.stdout.contains("cannot connect"),
        "{run}"
    );
    assert!(run.stdout.contains("sshd running"), "{run}");
}

/// Arguments survive the remote shell exactly: ferry's quoting, through ferry's transport.
#[test]
fn quoting_round_trips_through_the_remote_shell() {
    let r = remote();
    let host = ferry::config::Host {
        name: "web1".into(),
        address: r.host.clone(),
        user: "ferry1".into(),
        port: r.port,
        identity: Some(r.key.clone()),
        known_hosts: r.known_hosts.clone(),
        host_key_policy: ferry::config::HostKeyPolicy::Strict,
        connect_timeout: std::time::Duration::from_secs(10),
        compress: Default::default(),
        proxy_jump: None,
        identities: Vec::new(),
        ssh: Default::default(),
        arch: None,
    };
    let args = [
        "plain",
        "with space",
        "it's",
        "say \"hi\"",
        "$HOME $(id) `id`",
        "a;b && c || d",
        "new\nline",
        "back\\slash",
        "",
        "* ? [a]",
        "~",
        "ünïcödé",
    ];
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let conn = ferry::transport::ssh::connect(&host)
            .await
            .expect("connects");
        let mut cmd = vec!["printf", "%s\\0"];
        cmd.extend(args);
        let out = conn.exec(&ferry::shell::command(cmd)).await.unwrap();
        assert!(out.success(), "{}", out.stderr_str());
        let got: Vec<String> = out
            .stdout
            .split(|b| *b == 0)
            .map(|s| String::from_utf8(s.to_vec()).unwrap())
            .collect();
        let mut want: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        want.push(String::new());
        assert_eq!(got, want);
        // Exit status and stderr come back too (sent after EOF by OpenSSH).
        let out = conn.exec("echo oops >&2; exit 7").await.unwrap();
        assert_eq!(out.status, Some(7));
        assert_eq!(out.stderr_str(), "oops\n");
        // Many commands share one connection at once.
        let outs =
            futures::future::join_all((0..20).map(|i| conn.exec_owned(format!("echo {i}")))).await;
        for (i, o) in outs.into_iter().enumerate() {
            assert_eq!(o.unwrap().stdout_str(), format!("{i}\n"));
        }
        conn.close().await;
    });
}

/// With no `identity`, ferry authenticates with the keys of ssh-agent (SSH_AUTH_SOCK).
#[test]
fn ssh_agent_authenticates() {
    let r = remote();
    let p = Project::new();
    let sock = p.path("agent.sock");
    let _agent = Agent::start(&sock, &r.key);
    let cfg: String = host_table("web1", "ferry1")
        .lines()
        .filter(|l| !l.starts_with("identity"))
        .map(|l| format!("{l}\n"))
        .collect();
    p.config(&cfg);
    let sock_str = sock.display().to_string();
    let run = p.ferry_env(
        &["--output", "json", "doctor"],
        &[("SSH_AUTH_SOCK", &sock_str)],
    );
    run.assert_code(0);
    let auth = check(&run.json(), "authenticated").clone();
    assert!(
        auth["detail"].as_str().unwrap().contains("ssh-agent"),
        "{auth}"
    );
    // Without the agent (and no key files in HOME) nothing is left to try: a clear error.
    let run = p.ferry(&["doctor"]);
    run.assert_code(3);
    assert!(run.stdout.contains("no key available"), "{run}");
}

/// A real ssh-agent on a socket, holding one key; killed on drop.
struct Agent(std::process::Child);

impl Agent {
    fn start(sock: &std::path::Path, key: &std::path::Path) -> Agent {
        let child = std::process::Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(sock)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("ssh-agent runs");
        let agent = Agent(child);
        let mut tries = 0;
        while !sock.exists() {
            tries += 1;
            assert!(tries < 200, "ssh-agent never made {}", sock.display());
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        let add = std::process::Command::new("ssh-add")
            .arg(key)
            .env("SSH_AUTH_SOCK", sock)
            .output()
            .unwrap();
        assert!(
            add.status.success(),
            "{}",
            String::from_utf8_lossy(&add.stderr)
        );
        agent
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The IdentityFiles, IdentityAgent and IdentitiesOnly of ~/.ssh/config are used as ssh uses
/// them (each case checked with `ssh -G`-style configs against the real sshd): every
/// IdentityFile in order with missing ones skipped, the agent named by IdentityAgent (SSH_AUTH_SOCK
/// unset), `IdentityFile x.pub` whose private half only the agent holds, and `IdentityAgent
/// none` (the agent is not asked even with SSH_AUTH_SOCK set).
#[test]
fn ssh_config_identity_files_and_identity_agent_are_used_as_ssh_does() {
    let r = remote();
    let user = "ferry61";
    let p = Project::new();
    let wrong = p.path("wrong_key");
    let gen_key = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&wrong)
        .output()
        .unwrap();
    assert!(gen_key.status.success(), "{gen_key:?}");
    let public = std::process::Command::new("ssh-keygen")
        .arg("-y")
        .arg("-f")
        .arg(&r.key)
        .output()
        .unwrap();
    assert!(public.status.success(), "{public:?}");
    p.write("only.pub", &public.stdout);
    let sock = p.path("agent.sock");
    let _agent = Agent::start(&sock, &r.key);
    let sock_str = sock.display().to_string();
    p.config(&format!(
        "[hosts.web]\naddress = \"alias\"\nknown_hosts = \"{}\"\n",
        r.known_hosts.display()
    ));
    let base = format!(
        "Host alias\n  HostName {}\n  Port {}\n  User {user}\n",
        r.host, r.port
    );
    let doctor = |ssh_config: &str, env: &[(&str, &str)]| {
        p.write(".ssh/config", format!("{base}{ssh_config}"));
        p.ferry_env(&["--output", "json", "doctor"], env)
    };
    let authenticated = |run: &crate::support::Run| {
        run.assert_code(0);
        check(&run.json(), "authenticated")["detail"]
            .as_str()
            .unwrap()
            .to_string()
    };

    // Every IdentityFile in order: a missing one skipped, a refused one passed over.
    let run = doctor(
        &format!(
            "  IdentityFile ~/missing_key\n  IdentityFile ~/wrong_key\n  IdentityFile {}\n",
            r.key.display()
        ),
        &[],
    );
    let how = authenticated(&run);
    assert!(how.contains(&r.key.display().to_string()), "{how}");

    // IdentityAgent PATH: that agent, with SSH_AUTH_SOCK unset; its key before the files.
    let run = doctor(
        "  IdentityAgent ~/agent.sock\n  IdentityFile ~/wrong_key\n",
        &[],
    );
    let how = authenticated(&run);
    assert!(
        how.contains("with ssh-agent key ssh-ed25519 SHA256:"),
        "{how}"
    );

    // IdentityFile x.pub + IdentitiesOnly: the agent's key that matches it.
    let run = doctor(
        "  IdentityAgent ~/agent.sock\n  IdentitiesOnly yes\n  IdentityFile ~/only.pub\n",
        &[],
    );
    let how = authenticated(&run);
    assert!(
        how.contains("with ssh-agent key ssh-ed25519 SHA256:") && how.contains("~/only.pub"),
        "{how}"
    );

    // IdentityAgent none: the agent is not asked even though SSH_AUTH_SOCK points at it.
    let run = doctor(
        "  IdentityAgent none\n  IdentityFile ~/wrong_key\n",
        &[("SSH_AUTH_SOCK", &sock_str)],
    );
    run.assert_code(3);
    assert!(
        run.stdout.contains("tried: publickey ~/wrong_key")
            && !run.stdout.contains("ssh-agent key"),
        "{run}"
    );

    // An agent with more refused keys than sshd's MaxAuthTries (6): said as ssh says it.
    let many = p.path("many.sock");
    let _many = Agent::start(&many, &wrong);
    for i in 0..7 {
        let k = p.path(&format!("extra_{i}"));
        let made = std::process::Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&k)
            .output()
            .unwrap();
        assert!(made.status.success(), "{made:?}");
        let add = std::process::Command::new("ssh-add")
            .arg(&k)
            .env("SSH_AUTH_SOCK", &many)
            .output()
            .unwrap();
        assert!(add.status.success(), "{add:?}");
    }
    let many_str = many.display().to_string();
    let run = doctor("", &[("SSH_AUTH_SOCK", &many_str)]);
    run.assert_code(3);
    assert!(
        run.stdout.contains("too many authentication failures"),
        "{run}"
    );
}

/// The known_hosts options of ~/.ssh/config are used as ssh uses them (no `known_hosts` in
/// deploy.toml): several UserKnownHostsFiles (the key in the second), GlobalKnownHostsFile,
/// HostKeyAlias (the key recorded under the alias), and RevokedHostKeys listing the server's
/// key (refused, naming that file).
#[test]
fn ssh_config_known_hosts_files_alias_and_revoked_keys_are_used_as_ssh_does() {
    let r = remote();
    let user = "ferry62";
    let p = Project::new();
    let recorded = std::fs::read_to_string(&r.known_hosts).unwrap();
    p.write("kh_real", &recorded);
    let keys: String = recorded
        .lines()
        .filter_map(|l| l.split_once(' ').map(|(_, k)| format!("{k}\n")))
        .collect();
    p.write(
        "kh_alias",
        keys.lines()
            .map(|k| format!("myalias {k}\n"))
            .collect::<String>(),
    );
    p.write("revoked", format!("# revoked\n{keys}"));
    p.config("[hosts.web]\naddress = \"alias\"\n");
    let base = format!(
        "Host alias\n  HostName {}\n  Port {}\n  User {user}\n  IdentityFile {}\n",
        r.host,
        r.port,
        r.key.display()
    );
    let doctor = |ssh_config: &str| {
        p.write(".ssh/config", format!("{base}{ssh_config}"));
        p.ferry(&["--output", "json", "doctor"])
    };
    let host_key = |run: &crate::support::Run| check(&run.json(), "host key").clone();

    let run = doctor("  UserKnownHostsFile ~/kh_missing ~/kh_real\n");
    run.assert_code(0);
    assert_eq!(host_key(&run)["status"], "pass", "{run}");

    let run = doctor("  UserKnownHostsFile ~/kh_missing\n  GlobalKnownHostsFile ~/kh_real\n");
    run.assert_code(0);

    let run = doctor("  UserKnownHostsFile ~/kh_alias\n  HostKeyAlias myalias\n");
    run.assert_code(0);
    // Without the alias the same file does not know the host.
    let run = doctor("  UserKnownHostsFile ~/kh_alias\n");
    run.assert_code(3);
    assert!(run.stdout.contains("is not known"), "{run}");

    let run = doctor("  UserKnownHostsFile ~/kh_real\n  RevokedHostKeys ~/revoked\n");
    run.assert_code(3);
    assert!(
        run.stdout.contains("is revoked by") && run.stdout.contains("revoked:2"),
        "{run}"
    );
}

/// A known_hosts file hashed by `ssh-keygen -H` (OpenSSH's HashKnownHosts) verifies the host.
#[test]
fn hashed_known_hosts_entries_verify_the_host() {
    let r = remote();
    let p = Project::new();
    let kh = p.path("known_hosts");
    std::fs::copy(&r.known_hosts, &kh).unwrap();
    let out = std::process::Command::new("ssh-keygen")
        .arg("-H")
        .arg("-f")
        .arg(&kh)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let hashed = std::fs::read_to_string(&kh).unwrap();
    assert!(
        hashed.starts_with("|1|") && !hashed.contains("127.0.0.1"),
        "{hashed}"
    );
    p.config(&host_table("web1", "ferry1").replace(
        &r.known_hosts.display().to_string(),
        &kh.display().to_string(),
    ));
    let run = p.ferry(&["doctor"]);
    run.assert_code(0);
}

/// proxy_jump: the target's address is a name only the jump host resolves; ferry logs in to
/// the jump host, tunnels to the target and verifies the target's own host key.
#[test]
fn proxy_jump_reaches_a_host_only_the_jump_host_can() {
    let r = remote();
    let p = Project::new();
    let pinned = std::fs::read_to_string(&r.known_hosts).unwrap();
    let key_line = pinned.lines().find(|l| l.contains("ssh-ed25519")).unwrap();
    let key = key_line
        .split_whitespace()
        .skip(1)
        .collect::<Vec<_>>()
        .join(" ");
    let kh = p.path("known_hosts");
    std::fs::write(
        &kh,
        format!("{pinned}\n[ferry-jump-only]:{} {key}\n", r.port),
    )
    .unwrap();
    let mut cfg = host_table("bastion", "ferry16").replace(
        &r.known_hosts.display().to_string(),
        &kh.display().to_string(),
    );
    cfg.push_str(
        &host_table("web1", "ferry1")
            .replace(
                &r.known_hosts.display().to_string(),
                &kh.display().to_string(),
            )
            .replace(
                &format!("address = \"{}\"", r.host),
                "address = \"ferry-jump-only\"",
            ),
    );
    // Without the jump the name does not resolve here.
    p.config(&cfg);
    let run = p.ferry(&["doctor", "--host", "web1"]);
    run.assert_code(3);
    // Through the jump host it works, and says so.
    p.config(&cfg.replace("[hosts.web1]\n", "[hosts.web1]\nproxy_jump = \"bastion\"\n"));
    let run = p.ferry(&["--output", "json", "doctor", "--host", "web1"]);
    run.assert_code(0);
    let reach = check(&run.json(), "reachable").clone();
    assert_eq!(
        reach["detail"],
        format!("ferry-jump-only:{} through bastion", r.port)
    );
    // The target's key is verified on its own: a wrong one is refused even through the jump.
    std::fs::write(
        &kh,
        format!(
            "{pinned}\n[ferry-jump-only]:{} {}\n",
            r.port,
            std::fs::read_to_string(&r.wrong_known_hosts)
                .unwrap()
                .split_whitespace()
                .skip(1)
                .collect::<Vec<_>>()
                .join(" ")
        ),
    )
    .unwrap();
    let run = p.ferry(&["doctor", "--host", "web1"]);
    run.assert_code(3);
    assert!(run.stdout.contains("HAS CHANGED"), "{run}");
}

/// `ProxyJump hop1,hop2` of ~/.ssh/config, each hop resolved under its own name: ferry goes
/// through both to a name only the far side resolves; a hop that rejects its login is named.
#[test]
fn ssh_config_proxy_jump_with_two_hops() {
    let r = remote();
    let p = Project::new();
    let pinned = std::fs::read_to_string(&r.known_hosts).unwrap();
    let key = pinned
        .lines()
        .find(|l| l.contains("ssh-ed25519"))
        .unwrap()
        .split_whitespace()
        .skip(1)
        .collect::<Vec<_>>()
        .join(" ");
    p.write(
        "kh",
        format!("{pinned}\n[ferry-jump-only]:{} {key}\n", r.port),
    );
    p.config("[hosts.web]\naddress = \"target\"\nknown_hosts = \"~/kh\"\n");
    let ssh_config = |jump: &str, hop1_user: &str| {
        format!(
            "Host target\n  HostName ferry-jump-only\n  Port {port}\n  User ferry65\n  IdentityFile {key}\n{jump}\
             Host hop1\n  User {hop1_user}\nHost hop2\n  User ferry64\n\
             Host hop1 hop2\n  HostName {host}\n  Port {port}\n  IdentityFile {key}\n",
            port = r.port,
            host = r.host,
            key = r.key.display()
        )
    };
    // Without the jumps the name does not resolve here.
    p.write(".ssh/config", ssh_config("", "ferry63"));
    p.ferry(&["doctor"]).assert_code(3);
    p.write(
        ".ssh/config",
        ssh_config("  ProxyJump hop1,hop2\n", "ferry63"),
    );
    let run = p.ferry(&["--output", "json", "doctor"]);
    run.assert_code(0);
    assert_eq!(
        check(&run.json(), "reachable")["detail"],
        format!("ferry-jump-only:{} through hop2", r.port)
    );
    // The first hop is really used: its login failing is reported under its name.
    p.write(
        ".ssh/config",
        ssh_config("  ProxyJump hop1,hop2\n", "nobody-here"),
    );
    let run = p.ferry(&["doctor"]);
    run.assert_code(3);
    assert!(
        run.stdout.contains("hop1: authentication as `nobody-here`"),
        "{run}"
    );
}

/// `ProxyCommand ssh -W %h:%p ...` of ~/.ssh/config: ferry speaks SSH over the command's stdin
/// and stdout to a name only the far side resolves; a command that fails is named.
#[test]
fn ssh_config_proxy_command_reaches_a_host_only_the_far_side_resolves() {
    let r = remote();
    let p = Project::new();
    let pinned = std::fs::read_to_string(&r.known_hosts).unwrap();
    let key = pinned
        .lines()
        .find(|l| l.contains("ssh-ed25519"))
        .unwrap()
        .split_whitespace()
        .skip(1)
        .collect::<Vec<_>>()
        .join(" ");
    p.write(
        "kh",
        format!("{pinned}\n[ferry-jump-only]:{} {key}\n", r.port),
    );
    p.config("[hosts.web]\naddress = \"target\"\nknown_hosts = \"~/kh\"\n");
    let ssh_config = |proxy: &str| {
        format!(
            "Host target\n  HostName ferry-jump-only\n  Port {}\n  User ferry66\n  IdentityFile {}\n  ProxyCommand {proxy}\n",
            r.port,
            r.key.display()
        )
    };
    p.write(
        ".ssh/config",
        ssh_config(&format!(
            "ssh -F /dev/null -q -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile={} -i {} -p {} ferry67@{} -W %h:%p",
            r.known_hosts.display(),
            r.key.display(),
            r.port,
            r.host
        )),
    );
    let run = p.ferry(&["--output", "json", "doctor"]);
    run.assert_code(0);
    assert!(
        check(&run.json(), "authenticated")["detail"]
            .as_str()
            .unwrap()
            .starts_with("as ferry66 "),
        "{run}"
    );
    p.write(".ssh/config", ssh_config("false"));
    let run = p.ferry(&["doctor"]);
    run.assert_code(3);
    assert!(run.stdout.contains("ProxyCommand `false`"), "{run}");
}

/// ConnectionAttempts of ~/.ssh/config: a refused connection is tried that many times and the
/// error says so.
#[test]
fn ssh_config_connection_attempts_are_made_and_said() {
    let r = remote();
    let p = Project::new();
    p.config(&format!(
        "[hosts.web]\naddress = \"closed\"\nknown_hosts = \"{}\"\n",
        r.known_hosts.display()
    ));
    p.write(
        ".ssh/config",
        "Host closed\n  HostName 127.0.0.1\n  Port 1\n  ConnectionAttempts 3\n",
    );
    let run = p.ferry(&["-v", "doctor"]);
    run.assert_code(3);
    assert!(
        run.stdout.contains("(3 attempts: ConnectionAttempts)"),
        "{run}"
    );
    assert!(run.stderr.contains("trying again in 1s (3/3)"), "{run}");
}

/// `StrictHostKeyChecking accept-new` + `HashKnownHosts yes` of ~/.ssh/config: the new key is
/// recorded with the name hashed (OpenSSH's `ssh-keygen -F` finds it; the name is not in the
/// file), and the next connection verifies against it.
#[test]
fn ssh_config_hash_known_hosts_records_a_hashed_line() {
    let r = remote();
    let p = Project::new();
    p.config("[hosts.web]\naddress = \"alias\"\n");
    p.write(
        ".ssh/config",
        format!(
            "Host alias\n  HostName {}\n  Port {}\n  User ferry68\n  IdentityFile {}\n  UserKnownHostsFile ~/kh\n  StrictHostKeyChecking accept-new\n  HashKnownHosts yes\n",
            r.host,
            r.port,
            r.key.display()
        ),
    );
    p.ferry(&["doctor"]).assert_code(0);
    let recorded = std::fs::read_to_string(p.path("kh")).unwrap();
    assert!(
        recorded.starts_with("|1|") && !recorded.contains(&r.host),
        "{recorded}"
    );
    let found = std::process::Command::new("ssh-keygen")
        .arg("-F")
        .arg(format!("[{}]:{}", r.host, r.port))
        .arg("-f")
        .arg(p.path("kh"))
        .output()
        .unwrap();
    assert!(found.status.success(), "ssh-keygen -F: {found:?}");
    let run = p.ferry(&["--output", "json", "doctor"]);
    run.assert_code(0);
    assert_eq!(check(&run.json(), "host key")["status"], "pass", "{run}");
    assert_eq!(std::fs::read_to_string(p.path("kh")).unwrap(), recorded);
}

/// ~/.ssh/config applies under deploy.toml, as with `ssh ALIAS`: HostName, Port, User,
/// IdentityFile of a Host alias.
#[test]
fn ssh_config_host_alias() {
    let r = remote();
    let p = Project::new();
    p.write(
        ".ssh/config",
        format!(
            "Host web-alias\n  HostName {}\n  Port {}\n  User ferry1\n  IdentityFile {}\n",
            r.host,
            r.port,
            r.key.display()
        ),
    );
    p.config(&format!(
        "[hosts.web]\naddress = \"web-alias\"\nknown_hosts = \"{}\"\n",
        r.known_hosts.display()
    ));
    let run = p.ferry(&["--output", "json", "doctor"]);
    run.assert_code(0);
    let events = run.json();
    assert_eq!(
        check(&events, "reachable")["detail"],
        format!("{}:{}", r.host, r.port)
    );
    assert!(
        check(&events, "authenticated")["detail"]
            .as_str()
            .unwrap()
            .starts_with("as ferry1 ")
    );
}

/// A known_hosts that is a FIFO (reading it would block forever) or a directory is refused
/// before connecting, with an error naming the file; so is it under accept-new (appending to a
/// FIFO would block too).
#[test]
fn known_hosts_that_is_not_a_regular_file_is_refused() {
    let r = remote();
    let p = Project::new();
    let fifo = p.path("kh.fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .output()
        .expect("mkfifo runs");
    assert!(made.status.success(), "{made:?}");
    let dir = p.path("kh.d");
    std::fs::create_dir(&dir).unwrap();
    let base = host_table("web1", "ferry1");
    for (path, kind) in [(&fifo, "FIFO"), (&dir, "directory")] {
        let cfg = base.replace(
            &r.known_hosts.display().to_string(),
            &path.display().to_string(),
        );
        for cfg in [
            cfg.clone(),
            cfg.replace(
                "connect_timeout",
                "host_key_policy = \"accept-new\"\nconnect_timeout",
            ),
        ] {
            p.config(&cfg);
            let run = p.ferry(&["doctor"]);
            run.assert_code(3);
            assert!(
                run.stdout
                    .contains(&format!("cannot use known_hosts file {}", path.display())),
                "names the file: {run}"
            );
            assert!(run.stdout.contains(kind), "says what it is: {run}");
            assert!(run.stdout.contains("not a regular file"), "{run}");
        }
    }
    assert!(dir.read_dir().unwrap().next().is_none(), "nothing written");
}

/// `ferry status` to a host with an unknown key shows the hint's lines as lines: the
/// known_hosts line to add can be copied as it is (no literal `\n`).
#[test]
fn unknown_host_hint_keeps_its_lines() {
    let r = remote();
    let p = Project::new();
    let kh = p.path("kh");
    p.write("u/x.service", "[Service]\nExecStart=/bin/true\n");
    let cfg = format!(
        "{}[services.x]\nhosts = [\"web1\"]\nunits = [\"u/x.service\"]\n",
        host_table("web1", "ferry1").replace(
            &r.known_hosts.display().to_string(),
            &kh.display().to_string(),
        )
    );
    p.config(&cfg);
    let run = p.ferry(&["status"]);
    run.assert_code(3);
    let all = format!("{}{}", run.stdout, run.stderr);
    assert!(all.contains("is not known"), "{run}");
    assert!(!all.contains("\\n"), "a literal \\n in: {run}");
    let line_to_add = format!("[{}]:{} ssh-ed25519 ", r.host, r.port);
    let line = all
        .lines()
        .find(|l| l.contains(&line_to_add))
        .unwrap_or_else(|| panic!("no line to add: {run}"));
    assert!(
        line.trim_start().starts_with(&line_to_add),
        "the line to add stands on its own line: {line:?}"
    );
}

/// 32 connections at once to one sshd with its default `MaxStartups 10:30:100`: sshd drops
/// handshakes past ten at once, and ferry tries those again, so every connection succeeds.
#[test]
fn many_connections_at_once_to_one_sshd_all_succeed() {
    let r = remote();
    // The proof needs sshd's default limit: this test's own sshd runs with it (the remote's main
    // sshd raises it for the OpenSSH logins of the other tests).
    let sshd = OwnSshd::start();
    let p = Project::new();
    let host = ferry::config::Host {
        name: "web1".into(),
        address: r.host.clone(),
        user: "ferry1".into(),
        port: sshd.port,
        identity: Some(r.key.clone()),
        known_hosts: sshd.known_hosts(&p),
        host_key_policy: ferry::config::HostKeyPolicy::Strict,
        // The retries' budget: 32 handshakes at once on a loaded 2-core machine need more
        // than 10 s.
        connect_timeout: std::time::Duration::from_secs(30),
        compress: Default::default(),
        proxy_jump: None,
        identities: Vec::new(),
        ssh: Default::default(),
        arch: None,
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let results = futures::future::join_all((0..32).map(|_| async {
            let conn = ferry::transport::ssh::connect(&host).await?;
            let out = conn.run("echo ok").await;
            conn.close().await;
            out.map(|o| (o, conn.attempts))
        }))
        .await;
        let mut retried = 0;
        for (i, result) in results.into_iter().enumerate() {
            let (out, attempts) = result.unwrap_or_else(|e| panic!("connection {i}: {e}"));
            assert_eq!(out, "ok\n");
            if attempts > 1 {
                retried += 1;
            }
        }
        // sshd really dropped some, so the retry was exercised (and worked).
        assert!(
            retried > 0,
            "no handshake was dropped: the test proves nothing"
        );
    });
}

/// The connection dies under a running command and an open SFTP session (sshd of the user
/// killed): every operation says the connection was lost, with exit code 3, instead of
/// russh's "sender dropped".
#[test]
fn a_connection_lost_mid_command_is_reported_as_such() {
    let r = remote();
    let host = ferry::config::Host {
        name: "web1".into(),
        address: r.host.clone(),
        user: "ferry14".into(),
        port: r.port,
        identity: Some(r.key.clone()),
        known_hosts: r.known_hosts.clone(),
        host_key_policy: ferry::config::HostKeyPolicy::Strict,
        connect_timeout: std::time::Duration::from_secs(10),
        compress: Default::default(),
        proxy_jump: None,
        identities: Vec::new(),
        ssh: Default::default(),
        arch: None,
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        use ferry::error::Error;
        use ferry::transport::ssh::{Event, Stdin};
        let conn = ferry::transport::ssh::connect(&host)
            .await
            .expect("connects");
        let sftp = ferry::transport::sftp::Sftp::open(&conn)
            .await
            .expect("sftp");
        let plain = ferry::transport::sftp::Sftp::new("web1", conn.sftp().await.expect("sftp"));
        // statvfs@openssh.com works on OpenSSH: the home filesystem has room.
        let free = sftp
            .free_space(".")
            .await
            .expect("statvfs")
            .expect("supported");
        assert!(free > 0);
        let cmd = "echo started; exec sleep 600";
        let mut process = conn.spawn(cmd, Stdin::Closed).await.unwrap();
        assert_eq!(
            process.next().await,
            Some(Event::Stdout(b"started\n".to_vec()))
        );
        let out = r.root("pkill -KILL -u ferry14 -x 'sshd(-session)?'");
        assert!(out.status.success(), "no sshd of ferry14 killed: {out:?}");

        let e = process.output(|_, _| {}).await.unwrap_err();
        assert!(matches!(e, Error::ConnectionLost { .. }), "{e:?}");
        assert_eq!(
            e.to_string(),
            format!("web1: the connection was lost while running `{cmd}`")
        );
        assert_eq!(e.exit_code().code(), 3);
        assert!(e.hint().unwrap().contains("may or may not have finished"));

        let e = conn.exec("true").await.unwrap_err();
        assert_eq!(
            e.to_string(),
            "web1: the connection was lost while starting `true`"
        );
        for s in [&sftp, &plain] {
            let e = s.write("lost.txt", b"x").await.unwrap_err();
            assert!(matches!(e, Error::ConnectionLost { .. }), "{e:?}");
            assert_eq!(e.exit_code().code(), 3);
            assert!(
                e.to_string().contains("transferring files over SFTP"),
                "{e}"
            );
        }
    });
}
