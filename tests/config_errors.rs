//! Config errors name the file, line and key, and nothing connects.

use crate::support::Project;

fn refused(config: &str, expect: &[&str]) {
    let p = Project::new();
    p.config(config);
    p.write("app", "binary");
    p.write("app.service", "[Service]\nExecStart=/bin/true\n");
    let run = p.ferry(&["deploy"]);
    run.assert_code(2);
    for e in expect {
        assert!(run.stderr.contains(e), "stderr should contain {e:?}\n{run}");
    }
    assert!(run.stdout.is_empty(), "{run}");
    assert!(
        !run.stderr.contains("connecting"),
        "nothing connects: {run}"
    );
}

const HOST: &str = "[hosts.web1]\naddress = \"127.0.0.1\"\nport = 1\n";

#[test]
fn unknown_key() {
    refused(&format!("{HOST}prot = 22\n"), &["deploy.toml:4", "prot"]);
}

#[test]
fn wrong_type() {
    refused(
        &format!("{HOST}[services.a]\nunits = \"app.service\"\n"),
        &["deploy.toml:5", "services.a.units"],
    );
}

#[test]
fn undefined_host() {
    refused(
        &format!("{HOST}[services.a]\nhosts = [\"web2\"]\nunits = [\"app.service\"]\n"),
        &["deploy.toml:5", "services.a.hosts[0]", "web2", "web1"],
    );
}

#[test]
fn missing_local_file() {
    refused(
        &format!(
            "{HOST}[services.a]\nunits = [\"app.service\"]\n[[services.a.files]]\nsource = \"nope\"\ndest = \"bin/app\"\n"
        ),
        &[
            "deploy.toml:7",
            "services.a.files[0].source",
            "does not exist",
        ],
    );
}

#[test]
fn bad_unit_name() {
    refused(
        &format!("{HOST}[services.a]\nunits = [\"app.conf\"]\n"),
        &["deploy.toml:5", "services.a.units[0]", "app.conf"],
    );
}

#[test]
fn dest_escaping_the_release() {
    refused(
        &format!(
            "{HOST}[services.a]\n[[services.a.files]]\nsource = \"app\"\ndest = \"../../.bashrc\"\n"
        ),
        &[
            "deploy.toml:7",
            "services.a.files[0].dest",
            "inside the release directory",
        ],
    );
    refused(
        &format!(
            "{HOST}[services.a]\n[[services.a.files]]\nsource = \"app\"\ndest = \"/usr/bin/app\"\n"
        ),
        &["services.a.files[0].dest", "not absolute"],
    );
}

#[test]
fn duplicate_dest() {
    refused(
        &format!(
            "{HOST}[services.a]\n[[services.a.files]]\nsource = \"app\"\ndest = \"bin/app\"\n[[services.a.files]]\nsource = \"app\"\ndest = \"bin/app\"\n"
        ),
        &["deploy.toml:10", "services.a.files[1].dest", "files[0]"],
    );
}

#[test]
fn bad_mode_and_duration() {
    refused(
        &format!(
            "{HOST}[services.a]\nstart_timeout = \"soon\"\n[[services.a.files]]\nsource = \"app\"\ndest = \"bin/app\"\nmode = \"0999\"\n"
        ),
        &["deploy.toml:5", "start_timeout", "deploy.toml:9", "mode"],
    );
}

#[test]
fn missing_config_file() {
    let p = Project::new();
    let run = p.ferry(&["doctor"]);
    run.assert_code(2);
    assert!(
        run.stderr.contains("deploy.toml") && run.stderr.contains("deploy.example.toml"),
        "{run}"
    );
}

#[test]
fn unknown_host_flag() {
    let p = Project::new();
    p.config(HOST);
    let run = p.ferry(&["doctor", "--host", "web9"]);
    run.assert_code(2);
    assert!(run.stderr.contains("web9"), "{run}");
}

#[test]
fn missing_identity_key() {
    refused(
        &format!("{HOST}identity = \"keys/nope\"\n[services.a]\nunits = [\"app.service\"]\n"),
        &[
            "deploy.toml:4",
            "hosts.web1.identity",
            "keys/nope",
            "does not exist",
        ],
    );
}

#[test]
fn dest_with_an_escape_sequence() {
    let p = Project::new();
    p.config(&format!(
        "{HOST}[services.a]\n[[services.a.files]]\nsource = \"app\"\ndest = \"bin/\\u001b[31mred\"\n"
    ));
    p.write("app", "binary");
    let run = p.ferry(&["deploy", "--dry-run"]);
    run.assert_code(2);
    assert!(
        run.stderr.contains("deploy.toml:7")
            && run.stderr.contains("services.a.files[0].dest")
            && run.stderr.contains("control character"),
        "{run}"
    );
    assert!(
        !run.stderr.contains('\u{1b}') && !run.stdout.contains('\u{1b}'),
        "the escape reaches the terminal: {run:?}"
    );
}

#[test]
fn dest_that_is_also_a_directory() {
    refused(
        &format!(
            "{HOST}[services.a]\n[[services.a.files]]\nsource = \"app\"\ndest = \"bin\"\n[[services.a.files]]\nsource = \"app\"\ndest = \"bin/app\"\n"
        ),
        &[
            "deploy.toml:10",
            "services.a.files[1].dest",
            "`bin`",
            "files[0]",
        ],
    );
}

#[test]
fn group_errors() {
    refused(
        &format!("{HOST}[groups]\nweb = [\"web1\", \"web9\"]\n"),
        &[
            "deploy.toml:5",
            "groups.web[1]",
            "web9",
            "defined hosts: web1",
        ],
    );
    refused(
        &format!("{HOST}[groups]\na = [\"b\"]\nb = [\"a\"]\n"),
        &["deploy.toml:6", "groups.b[0]", "a -> b -> a"],
    );
    refused(
        &format!("{HOST}[groups]\nnone = []\n[services.a]\nhosts = [\"none\"]\n"),
        &[
            "deploy.toml:7",
            "services.a.hosts[0]",
            "`none` has no hosts",
        ],
    );
}

#[test]
fn bad_rollout() {
    refused(
        &format!("{HOST}[services.a]\n[services.a.rollout]\ncanary = 1\nbatch = \"0%\"\n"),
        &[
            "deploy.toml:7",
            "services.a.rollout.batch",
            "at least 1 host",
        ],
    );
}

#[test]
fn unknown_group_flag_names_hosts_and_groups() {
    let p = Project::new();
    p.config(&format!("{HOST}[groups]\nweb = [\"web1\"]\n"));
    let run = p.ferry(&["doctor", "--host", "web9"]);
    run.assert_code(2);
    assert!(
        run.stderr.contains(
            "--host web9: no such host or group in deploy.toml; hosts: web1; groups: web"
        ),
        "{run}"
    );
}

#[test]
fn no_services_defined() {
    let p = Project::new();
    p.config(HOST);
    let run = p.ferry(&["deploy", "api"]);
    run.assert_code(2);
    assert!(
        run.stderr.contains(
            "no service `api` in deploy.toml; no services are defined: add a [services.NAME] table"
        ),
        "{run}"
    );
}

/// `--host GROUP` deploys to the group's hosts only: `b` is unreachable (port 1), so a deploy
/// that tried it would fail; one that resolves the group reaches `a` only.
#[test]
fn deploy_to_a_group() {
    let user = "ferry19";
    let r = crate::support::remote();
    r.reset(user);
    let p = Project::new();
    p.write("app", "group deploy\n");
    p.config(&format!(
        "{}[hosts.b]\naddress = \"127.0.0.1\"\nport = 1\nuser = \"{user}\"\nconnect_timeout = \"2s\"\n\n\
         [groups]\ncanary = [\"a\"]\nall = [\"canary\", \"b\"]\n\n\
         [services.grp]\nhosts = [\"all\"]\n[[services.grp.files]]\nsource = \"app\"\ndest = \"share/app.txt\"\n",
        crate::support::host_table("a", user)
    ));
    let run = p.ferry(&["--output", "json", "deploy", "-H", "canary"]);
    run.assert_code(0);
    assert_eq!(
        r.ssh(user, "cat ~/.local/share/ferry/grp/current/share/app.txt"),
        "group deploy\n"
    );
    let hosts: std::collections::BTreeSet<String> = run
        .json()
        .iter()
        .filter_map(|e| e["host"].as_str().map(str::to_string))
        .collect();
    assert_eq!(hosts, ["a".to_string()].into(), "{run}");
    r.reset(user);
}

#[test]
fn an_arch_that_uname_does_not_print() {
    refused(
        &format!("{HOST}arch = \"amd64\"\n"),
        &[
            "deploy.toml:4",
            "hosts.web1.arch",
            "`amd64` is not an architecture ferry knows (`uname -m` says x86_64)",
        ],
    );
}

/// A binary built for another architecture than the host's `arch`: exit 2 before any
/// connection, at the `arch` key, naming the file and the target to build for.
#[cfg(target_arch = "x86_64")]
#[test]
fn a_binary_for_another_arch_than_the_hosts() {
    let p = Project::new();
    p.config(&format!(
        "{HOST}arch = \"aarch64\"\n[services.a]\nunits = [\"app.service\"]\n[[services.a.files]]\nsource = \"app\"\ndest = \"bin/app\"\nmode = \"0755\"\n[[services.a.files]]\nsource = \"run.sh\"\ndest = \"bin/run.sh\"\n"
    ));
    std::fs::copy(std::env::current_exe().unwrap(), p.path("app")).unwrap();
    p.write("run.sh", "#!/bin/sh\nexec bin/app\n");
    p.write("app.service", "[Service]\nExecStart=/bin/true\n");
    for args in [&["deploy"][..], &["deploy", "--dry-run"]] {
        let run = p.ferry(args);
        run.assert_code(2);
        for e in [
            "deploy.toml:4",
            "hosts.web1.arch",
            "host web1 is aarch64, and services.a.files[0] (./app -> bin/app) is an ELF executable for x86_64",
            "--target aarch64-unknown-linux-gnu",
        ] {
            assert!(run.stderr.contains(e), "stderr should contain {e:?}\n{run}");
        }
        assert!(
            !run.stderr.contains("run.sh"),
            "a script is not checked\n{run}"
        );
        assert!(
            !run.stderr.contains("connecting"),
            "nothing connects: {run}"
        );
    }
    // The same release on an x86_64 host passes this check (and then fails to connect).
    p.config(&format!(
        "{HOST}arch = \"x86_64\"\nconnect_timeout = \"2s\"\n[services.a]\nunits = [\"app.service\"]\n[[services.a.files]]\nsource = \"app\"\ndest = \"bin/app\"\n"
    ));
    let run = p.ferry(&["deploy"]);
    assert!(run.stderr.contains("connecting"), "{run}");
    assert_ne!(run.code, 2, "{run}");
}
