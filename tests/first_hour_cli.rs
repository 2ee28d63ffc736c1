//! The first hour, on the command line (issue "the first hour"): each connection failure said
//! once per host with its class (authentication failed, host key refused, unreachable) by
//! deploy, rollback, status, exec, logs and releases, and completion of service and host names
//! from deploy.toml, with the real binary. Users: ferry99 (connection failures: nothing may
//! change on it), ferry100 (completion), ferry110 (exec, logs, releases beside failing hosts).
//! Ports: 19720, 19550.

use crate::support::{Project, Run, host_table, remote};

/// Three hosts that cannot be deployed to, each for its own reason, all as `user`; `closed`
/// is a loopback port nothing listens on.
fn three_failures(user: &str, closed: u16) -> Project {
    let r = remote();
    let p = Project::new();
    p.write("app.service", "[Service]\nExecStart=/bin/sleep 600\n");
    p.write("empty_known_hosts", "");
    let host = |name: &str, port: u16, key: &std::path::Path, kh: &std::path::Path| {
        format!(
            "[hosts.{name}]\naddress = \"{}\"\nport = {port}\nuser = \"{user}\"\nidentity = \"{}\"\n\
             known_hosts = \"{}\"\nconnect_timeout = \"30s\"\n\n",
            r.host,
            key.display(),
            kh.display()
        )
    };
    p.config(&format!(
        "{}{}{}[services.app]\nunits = [\"app.service\"]\n[services.app.rollout]\nmax_fail = 3\n",
        host("badkey", r.port, &r.unknown_key, &r.known_hosts),
        host("closed", closed, &r.key, &r.known_hosts),
        host("stranger", r.port, &r.key, &p.path("empty_known_hosts")),
    ));
    p
}

#[test]
fn each_connection_failure_is_said_once_with_its_class() {
    let r = remote();
    r.reset("ferry99");
    let p = three_failures("ferry99", 19720);
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

/// The failing hosts of [`three_failures`]: name, verdict, and words of the reason.
const FAILURES: [(&str, &str, &str); 3] = [
    ("badkey", "AUTHENTICATION FAILED", "authentication as `"),
    ("closed", "UNREACHABLE", "cannot connect to"),
    ("stranger", "HOST KEY REFUSED", "is not known"),
];

/// Each failing host is said once: its line in `out` (the stream it belongs on) starts with
/// the host and gives its verdict; its reason appears once over stdout and stderr; a hint for
/// each; no `error:` line.
fn said_once(run: &Run, out: &str, what: &str) {
    let all = format!("{}{}", run.stdout, run.stderr);
    for (host, verdict, reason) in FAILURES {
        assert_eq!(all.matches(reason).count(), 1, "{what}: {reason}\n{run}");
        let line = out
            .lines()
            .find(|l| l.contains(reason))
            .unwrap_or_else(|| panic!("{what}: no line for {host}\n{run}"));
        assert!(
            line.starts_with(&format!("{host} {verdict} ")),
            "{what}: {line}\n{run}"
        );
    }
    assert_eq!(all.matches("hint:").count(), 3, "{what}\n{run}");
    assert!(!all.contains("error:"), "{what}\n{run}");
}

/// Every stdout line is an event of docs/events.schema.json; the failing hosts' events of
/// `kind` carry the way the connection failed and a hint.
fn json_says_the_class(run: &Run, kind: &str, what: &str) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/events.schema.json");
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    for event in run.json() {
        assert!(
            validator.is_valid(&event),
            "{what}: {event} is not in the schema"
        );
    }
    let events = run.events(kind);
    for (host, class) in [
        ("badkey", "auth-failed"),
        ("closed", "unreachable"),
        ("stranger", "host-key-refused"),
    ] {
        let e = events
            .iter()
            .find(|e| e["host"] == host)
            .unwrap_or_else(|| panic!("{what}: no {kind} event for {host}\n{run}"));
        assert_eq!(e["connection"], class, "{what}\n{run}");
        assert!(e["hint"].as_str().is_some_and(|h| !h.is_empty()), "{what}");
    }
    // Said once: by the events, not on stderr as well.
    assert!(
        !run.stderr.contains("hint:") && !run.stderr.contains("error:"),
        "{what}\n{run}"
    );
}

/// exec, logs (several hosts, one, followed) and releases say each connection failure as
/// deploy and status do, exit 3, and the host that works still gives its data on stdout.
#[test]
fn exec_logs_and_releases_say_each_connection_failure_once_with_its_class() {
    let user = "ferry110";
    let r = remote();
    r.reset(user);
    let p = three_failures(user, 19550);
    p.write(
        "app.service",
        "[Service]\nExecStart=/bin/sh -c 'echo app-started; exec sleep 600'\n",
    );
    let text = std::fs::read_to_string(p.path("deploy.toml")).unwrap();
    p.config(&format!("{}{text}", host_table("good", user)));
    p.ferry(&["-H", "good", "deploy"]).assert_code(0);
    let current = r.ssh(
        user,
        "basename $(readlink ~/.local/share/ferry/app/current)",
    );

    let run = p.ferry(&["exec", "--", "echo", "hi-from-exec"]);
    run.assert_code(3);
    assert_eq!(run.stdout, "good: hi-from-exec\n", "{run}");
    said_once(&run, &run.stderr, "exec");
    let run = p.ferry(&["--output", "json", "exec", "--", "echo", "hi"]);
    run.assert_code(3);
    json_says_the_class(&run, "exec", "exec --output json");

    // The journal line may reach the journal just after the deploy ended.
    let logs = r.poll("the unit's line in ferry logs", 100, || {
        let run = p.ferry(&["logs", "-n", "20"]);
        run.stdout.contains("app-started").then_some(run)
    });
    logs.assert_code(3);
    said_once(&logs, &logs.stderr, "logs");
    assert!(!logs.stdout.contains("hint:"), "{logs}");
    let run = p.ferry(&[
        "logs", "-f", "-H", "badkey", "-H", "closed", "-H", "stranger",
    ]);
    run.assert_code(3);
    said_once(&run, &run.stderr, "logs -f");
    let run = p.ferry(&["-H", "closed", "logs"]);
    run.assert_code(3);
    assert!(
        run.stderr
            .starts_with("closed UNREACHABLE cannot connect to"),
        "{run}"
    );
    assert_eq!(run.stderr.matches("hint:").count(), 1, "{run}");
    assert!(!run.stderr.contains("error:"), "{run}");
    let run = p.ferry(&["--output", "json", "logs", "-n", "20"]);
    run.assert_code(3);
    assert!(!run.events("entry").is_empty(), "{run}");
    json_says_the_class(&run, "host", "logs --output json");

    let run = p.ferry(&["releases"]);
    run.assert_code(3);
    assert!(
        run.stdout
            .lines()
            .any(|l| l.starts_with("good") && l.contains(current.trim())),
        "{run}"
    );
    said_once(&run, &run.stdout, "releases");
    let run = p.ferry(&["--output", "json", "releases"]);
    run.assert_code(3);
    assert_eq!(run.events("release").len(), 1, "{run}");
    json_says_the_class(&run, "host", "releases --output json");
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
