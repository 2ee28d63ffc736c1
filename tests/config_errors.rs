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
