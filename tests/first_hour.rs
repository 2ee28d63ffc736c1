//! The first hour of a new user, with the real binary against the real remote:
//! `ferry init` then `ferry doctor` before anything is built, the dry run's headline, global
//! options on either side of the subcommand, SERVICE left out when there is one, and a jump
//! host that is not deployed to. Users: ferry75 (init, doctor), ferry76 (deploy, rollback,
//! logs), ferry77 + ferry78 (bastion and target),
//! ferry79 (the .deb installed on the remote).

use crate::support::{Project, host_table, remote};

/// A project whose HOME has the remote's key and known_hosts where `ssh` looks for them, as a
/// user whose `ssh HOST` works would have.
fn project_with_ssh_home() -> Project {
    let r = remote();
    let p = Project::new();
    p.write(".ssh/id_ed25519", std::fs::read(&r.key).unwrap());
    p.write(".ssh/known_hosts", std::fs::read(&r.known_hosts).unwrap());
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        p.path(".ssh/id_ed25519"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    p
}

#[test]
fn init_then_doctor_works_before_the_program_is_built() {
    let user = "ferry75";
    let r = remote();
    let p = project_with_ssh_home();
    let host = format!("{user}@{}:{}", r.host, r.port);
    p.ferry(&["init", "--service", "j", "--host", &host])
        .assert_code(0);
    assert!(!p.path("target/release/j").exists());
    let run = p.ferry(&["--output", "json", "doctor"]);
    assert_ne!(run.code, 2, "doctor refused the config\n{run}");
    let checks = run.events("check");
    let status = |name: &str| {
        checks
            .iter()
            .find(|c| c["check"] == name)
            .unwrap_or_else(|| panic!("no {name} check\n{run}"))["status"]
            .clone()
    };
    assert_eq!(status("reachable"), "pass", "{run}");
    assert_eq!(status("host key"), "pass", "{run}");
    assert_eq!(status("authenticated"), "pass", "{run}");
    run.assert_code(0);
    // A deploy still needs the program, and says so before connecting.
    let run = p.ferry(&["deploy"]);
    run.assert_code(2);
    assert!(run.stderr.contains("target/release/j"), "{run}");
    // Global options where they do nothing are refused, not ignored.
    let run = p.ferry(&["--output", "json", "init"]);
    run.assert_code(2);
    assert!(run.stderr.contains("--output json"), "{run}");
}

fn one_service(user: &str, version: &str) -> Project {
    let p = Project::new();
    p.write(
        "app.service",
        "[Service]\nExecStart=/bin/sh -c 'echo started; exec sleep 600'\n",
    );
    p.write("version", version);
    p.config(&format!(
        "{}[services.app]\nunits = [\"app.service\"]\nsettle_time = \"0.3s\"\n\
         [[services.app.files]]\nsource = \"version\"\ndest = \"version\"\n",
        host_table("web1", user)
    ));
    p
}

#[test]
fn one_service_needs_no_name_and_the_dry_run_headline_matches_its_plan() {
    let user = "ferry76";
    let r = remote();
    r.reset(user);
    let p = one_service(user, "one\n");
    p.ferry(&["deploy"]).assert_code(0);
    let first = r.ssh(user, "readlink ~/.local/share/ferry/app/current");

    // A no-op: the headline says so, not "would deploy".
    let dry = p.ferry(&["deploy", "--dry-run"]);
    dry.assert_code(0);
    let headline = dry.stdout.lines().next().unwrap_or_default();
    assert!(headline.contains("nothing to deploy"), "{dry}");
    assert!(!dry.stdout.contains("would deploy"), "{dry}");
    assert!(!dry.stdout.contains("restart app.service"), "{dry}");

    // A change: it would deploy.
    p.write("version", "two\n");
    let dry = p.ferry(&["deploy", "--dry-run"]);
    assert!(
        dry.stdout
            .lines()
            .next()
            .unwrap()
            .contains("would deploy release"),
        "{dry}"
    );
    p.ferry(&["deploy"]).assert_code(0);
    assert_ne!(
        r.ssh(user, "readlink ~/.local/share/ferry/app/current"),
        first
    );

    // -H before the subcommand, and no SERVICE for logs and rollback.
    let run = p.ferry(&["-H", "web1", "status"]);
    run.assert_code(0);
    assert!(run.stdout.contains("app.service"), "{run}");
    let run = p.ferry(&["logs", "-n", "20"]);
    run.assert_code(0);
    assert!(run.stdout.contains("started"), "{run}");
    p.ferry(&["-H", "web1", "rollback"]).assert_code(0);
    assert_eq!(
        r.ssh(user, "readlink ~/.local/share/ferry/app/current"),
        first
    );
    assert_eq!(
        r.ssh(user, "cat ~/.local/share/ferry/app/current/version"),
        "one\n"
    );

    // With two services, leaving SERVICE out is a usage error that names them.
    let text = std::fs::read_to_string(p.path("deploy.toml")).unwrap();
    p.config(&format!("{text}[services.other]\nunits = []\n"));
    let run = p.ferry(&["rollback"]);
    run.assert_code(2);
    assert!(run.stderr.contains("app, other"), "{run}");
}

#[test]
fn a_jump_host_is_a_hop_not_a_deploy_target() {
    let (bastion, target) = ("ferry77", "ferry78");
    let r = remote();
    r.reset(bastion);
    r.reset(target);
    let p = Project::new();
    p.write("app.service", "[Service]\nExecStart=/bin/sleep 600\n");
    p.config(&format!(
        "{}{}\nproxy_jump = \"bastion\"\n[services.app]\nunits = [\"app.service\"]\nsettle_time = \"0.3s\"\n",
        host_table("bastion", bastion),
        host_table("web", target).trim_end()
    ));
    let run = p.ferry(&["--output", "json", "deploy"]);
    run.assert_code(0);
    let hosts: Vec<String> = run
        .events("result")
        .iter()
        .map(|e| e["host"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(hosts, vec!["web"], "{run}");
    assert_eq!(r.unit_prop(target, "app.service", "ActiveState"), "active");
    assert_eq!(
        r.ssh(
            bastion,
            "test -e ~/.local/share/ferry/app && echo yes || echo no"
        ),
        "no\n"
    );
}

/// `packaging/build-deb` (README "Install") packages the binary with its completions and man
/// pages; installed with dpkg on the Debian remote, the installed ferry runs and its files are
/// where bash, zsh, fish and man look.
#[test]
fn the_deb_installs_a_working_ferry_with_completions_and_man_pages() {
    let r = remote();
    let out_dir = tempfile::tempdir().unwrap();
    let built =
        std::process::Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/packaging/build-deb"))
            .arg(crate::support::ferry_bin())
            .arg(out_dir.path())
            .output()
            .expect("packaging/build-deb runs");
    assert!(
        built.status.success(),
        "build-deb failed: {}",
        String::from_utf8_lossy(&built.stderr)
    );
    let deb = String::from_utf8(built.stdout).unwrap().trim().to_string();
    let bytes = std::fs::read(&deb).unwrap();
    let install = r.root_stdin(
        "cat > /tmp/ferry.deb && dpkg -i /tmp/ferry.deb && rm /tmp/ferry.deb",
        &bytes,
    );
    assert!(
        install.status.success(),
        "dpkg -i failed: {}",
        String::from_utf8_lossy(&install.stderr)
    );
    let version = r.ssh("ferry79", "ferry --version");
    assert_eq!(
        version.trim(),
        format!("ferry {}", env!("CARGO_PKG_VERSION"))
    );
    let files = r.ssh(
        "ferry79",
        "ls /usr/share/bash-completion/completions/ferry /usr/share/zsh/vendor-completions/_ferry \
         /usr/share/fish/vendor_completions.d/ferry.fish /usr/share/man/man1/ferry.1.gz \
         /usr/share/man/man1/ferry-deploy.1.gz /usr/share/man/man1/ferry-units.1.gz",
    );
    assert_eq!(files.lines().count(), 6, "{files}");
    let page = r.ssh("ferry79", "zcat /usr/share/man/man1/ferry.1.gz");
    assert!(page.contains("FERRY_KEY_PASSPHRASE"), "{page}");
    let removed = r.root("dpkg -r ferry");
    assert!(
        removed.status.success(),
        "{}",
        String::from_utf8_lossy(&removed.stderr)
    );
    assert_eq!(
        r.ssh("ferry79", "command -v ferry || echo gone").trim(),
        "gone"
    );
}
