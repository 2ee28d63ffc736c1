//! The first hour, on the command line (issue "the first hour"): each connection failure said
//! once per host with its class (authentication failed, host key refused, unreachable), and
//! completion of service and host names from deploy.toml, with the real binary. Users: ferry99
//! (connection failures: nothing may change on it), ferry100 (completion). Ports: 19720.

use crate::support::{Project, remote};

/// Three hosts that cannot be deployed to, each for its own reason, all as ferry99.
fn three_failures() -> Project {
    let r = remote();
    let p = Project::new();
    p.write("app.service", "[Service]\nExecStart=/bin/sleep 600\n");
    p.write("empty_known_hosts", "");
    let host = |name: &str, port: u16, key: &std::path::Path, kh: &std::path::Path| {
        format!(
            "[hosts.{name}]\naddress = \"{}\"\nport = {port}\nuser = \"ferry99\"\nidentity = \"{}\"\n\
             known_hosts = \"{}\"\nconnect_timeout = \"30s\"\n\n",
            r.host,
            key.display(),
            kh.display()
        )
    };
    p.config(&format!(
        "{}{}{}[services.app]\nunits = [\"app.service\"]\n[services.app.rollout]\nmax_fail = 3\n",
        host("badkey", r.port, &r.unknown_key, &r.known_hosts),
        host("closed", 19720, &r.key, &r.known_hosts),
        host("stranger", r.port, &r.key, &p.path("empty_known_hosts")),
    ));
    p
}

#[test]
fn each_connection_failure_is_said_once_with_its_class() {
    let r = remote();
    r.reset("ferry99");
    let p = three_failures();
    let run = p.ferry(&["--output", "json", "deploy"]);
    run.assert_code(3);
    let classes: Vec<(String, String, String)> = run
        .events("result")
        .iter()
        .map(|e| {
            (
                e["host"].as_str().unwrap().to_string(),
                e["result"].as_str().unwrap().to_string(),
                e["connection"].as_str().unwrap_or("none").to_string(),
            )
        })
        .collect();
    let want = |h: &str, c: &str| (h.to_string(), "unreachable".to_string(), c.to_string());
    for w in [
        want("badkey", "auth-failed"),
        want("closed", "unreachable"),
        want("stranger", "host-key-refused"),
    ] {
        assert!(classes.contains(&w), "{w:?} not in {classes:?}\n{run}");
    }
    for e in run.events("result") {
        assert!(e["hint"].as_str().is_some_and(|h| !h.is_empty()), "{run}");
    }

    // For people: the verdict says the class, and each reason is printed once over stdout and
    // stderr together, without the host's name twice.
    for args in [&["deploy"][..], &["rollback"][..]] {
        let run = p.ferry(args);
        run.assert_code(3);
        let all = format!("{}{}", run.stdout, run.stderr);
        for (host, verdict, reason) in [
            (
                "badkey",
                "AUTHENTICATION FAILED",
                "authentication as `ferry99` was rejected",
            ),
            ("closed", "UNREACHABLE", "cannot connect to"),
            ("stranger", "HOST KEY REFUSED", "is not known"),
        ] {
            assert_eq!(all.matches(reason).count(), 1, "{args:?}: {reason}\n{run}");
            let line = run
                .stdout
                .lines()
                .find(|l| l.contains(reason))
                .unwrap_or_else(|| panic!("no result line for {host}\n{run}"));
            assert!(
                line.starts_with(host) && line.contains(verdict),
                "{line}\n{run}"
            );
            assert!(!line.contains(&format!("{host}: ")), "{line}");
        }
        assert_eq!(all.matches("hint:").count(), 3, "{args:?}\n{run}");
        assert!(!all.contains("error:"), "{args:?}\n{run}");
    }

    let run = p.ferry(&["status"]);
    run.assert_code(3);
    assert!(
        run.stdout
            .lines()
            .any(|l| l.starts_with("badkey") && l.contains("AUTHENTICATION FAILED")),
        "{run}"
    );
    let run = p.ferry(&["--output", "json", "status"]);
    let hosts = run.events("host");
    let stranger = hosts.iter().find(|h| h["host"] == "stranger").unwrap();
    assert_eq!(stranger["connection"], "host-key-refused", "{run}");
    assert_eq!(stranger["reachable"], false);

    // Nothing reached the host.
    assert_eq!(
        r.ssh(
            "ferry99",
            "test -e ~/.local/share/ferry && echo yes || echo no"
        ),
        "no\n"
    );
}

/// What the shell gets for the words of a command line, the cursor on the last one, through
/// clap_complete's environment protocol (what `source <(COMPLETE=bash ferry)` installs).
fn complete(p: &Project, words: &[&str], env: &[(&str, &str)]) -> Vec<String> {
    let index = words.len().to_string();
    let mut all: Vec<&str> = vec!["--", "ferry"];
    all.extend_from_slice(words);
    let mut vars = vec![
        ("COMPLETE", "bash"),
        ("_CLAP_COMPLETE_INDEX", index.as_str()),
        ("_CLAP_IFS", "\n"),
    ];
    vars.extend_from_slice(env);
    let run = p.ferry_env(&all, &vars);
    run.assert_code(0);
    run.stdout.lines().map(String::from).collect()
}

#[test]
fn completion_offers_the_services_and_hosts_of_deploy_toml() {
    let p = Project::new();
    p.config(&format!(
        "{}{}[groups]\nfront = [\"web1\", \"web2\"]\n\n\
         [services.api]\nunits = []\n[services.worker]\nunits = []\n",
        crate::support::host_table("web1", "ferry100"),
        crate::support::host_table("web2", "ferry100"),
    ));
    let names = |words: &[&str]| -> Vec<String> {
        complete(&p, words, &[])
            .into_iter()
            .filter(|c| !c.starts_with('-'))
            .collect()
    };
    for cmd in [
        "logs", "rollback", "exec", "status", "deploy", "releases", "units", "promote",
    ] {
        assert_eq!(names(&[cmd, ""]), ["api", "worker"], "ferry {cmd} <TAB>");
    }
    assert_eq!(names(&["logs", "w"]), ["worker"]);
    assert_eq!(names(&["-H", ""]), ["web1", "web2", "front"]);
    assert_eq!(names(&["status", "-H", "web"]), ["web1", "web2"]);
    assert_eq!(names(&["deploy", "--host", "f"]), ["front"]);
    // Options are still offered.
    assert!(complete(&p, &["logs", "--"], &[]).contains(&"--since-deploy".to_string()));

    // Another config: from --config on the line, or FERRY_CONFIG.
    p.write(
        "other/ferry.toml",
        "[hosts.db1]\naddress = \"x\"\n[services.db]\nunits = []\n",
    );
    assert_eq!(names(&["--config", "other/ferry.toml", "logs", ""]), ["db"]);
    let env = [("FERRY_CONFIG", "other/ferry.toml")];
    let hosts: Vec<String> = complete(&p, &["-H", ""], &env);
    assert_eq!(hosts, ["db1"]);
    // No config here: no names, and no error.
    let empty = Project::new();
    assert!(
        complete(&empty, &["logs", ""], &[])
            .iter()
            .all(|c| c.starts_with('-'))
    );

    // The registration script, and the static scripts, still work.
    let reg = p.ferry_env(&[], &[("COMPLETE", "bash")]);
    reg.assert_code(0);
    assert!(
        reg.stdout.contains("-F _clap_complete_ferry ferry"),
        "{reg}"
    );
    for shell in ["bash", "zsh", "fish"] {
        let run = p.ferry(&["completions", shell]);
        run.assert_code(0);
        assert!(run.stdout.contains("rollback"), "{shell}\n{run}");
    }
}
