//! The first hour of a new user, with the real binary against the real remote:
//! `ferry init` then `ferry doctor` before anything is built, the dry run's headline, global
//! options on either side of the subcommand, SERVICE left out when there is one, and a jump
//! host that is not deployed to, what `--help` and the man pages tell, and the one doctor check
//! that changes a host. Users: ferry75 (init, doctor), ferry76 (deploy, rollback, logs),
//! ferry77 + ferry78 (bastion and target), ferry79 (the .deb installed on the remote),
//! ferry120 (doctor creating the unit directory).

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
    // Nor do the commands that only read the hosts: status asks, and finds nothing deployed.
    let run = p.ferry(&["status"]);
    assert_ne!(run.code, 2, "status refused the config\n{run}");
    assert!(run.stdout.contains("j.service"), "{run}");
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
    assert!(!dry.stdout.contains("nothing to do"), "{dry}");
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

/// What a new user looks for in `--help` and the man pages: the environment, ~/.ssh/config,
/// known_hosts, NO_COLOR and each command's exit codes; a page for every command and none for
/// `help`; SERVICE's default; the global options only where they do something; the one doctor
/// check that changes a host.
#[test]
fn help_and_man_pages_say_what_a_new_user_looks_for() {
    let p = Project::new();
    let help = |args: &[&str]| {
        let run = p.ferry(args);
        run.assert_code(0);
        run.stdout
    };
    // Help text as one line: clap wraps it at the terminal's width.
    let words = |text: String| text.split_whitespace().collect::<Vec<_>>().join(" ");
    let root = help(&["--help"]);
    for word in [
        "FERRY_KEY_PASSPHRASE",
        "~/.ssh/config",
        "known_hosts",
        "NO_COLOR",
        "Exit codes",
    ] {
        assert!(root.contains(word), "ferry --help lacks {word}\n{root}");
    }
    for sub in ["deploy", "status", "logs", "doctor", "rollback", "releases"] {
        assert!(help(&[sub, "--help"]).contains("Exit codes"), "{sub}");
    }

    // Every command listed by --help has its page, written by `ferry man --out-dir`.
    let commands: Vec<String> = root
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| !l.is_empty())
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .map(|l| l.split_whitespace().next().unwrap().to_string())
        .filter(|c| c != "help")
        .collect();
    assert!(commands.len() >= 12, "{commands:?}");
    p.ferry(&["man", "--out-dir", "man1"]).assert_code(0);
    let mut pages: Vec<String> = std::fs::read_dir(p.path("man1"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    pages.sort();
    let mut want: Vec<String> = commands.iter().map(|c| format!("ferry-{c}.1")).collect();
    want.push("ferry.1".into());
    want.sort();
    assert_eq!(pages, want);
    let page = std::fs::read_to_string(p.path("man1/ferry.1")).unwrap();
    assert!(
        !page.contains("ferry\\-help"),
        "ferry(1) names ferry-help(1)"
    );
    for word in [
        "FERRY_KEY_PASSPHRASE",
        "ssh/config",
        "known_hosts",
        "NO_COLOR",
    ] {
        assert!(page.contains(word), "ferry(1) lacks {word}");
    }

    // SERVICE may be left out, and says so.
    for sub in ["rollback", "logs", "exec", "units"] {
        assert!(
            words(help(&[sub, "--help"])).contains("Default: the config's only service"),
            "{sub}"
        );
    }

    // Global options: after the subcommand too, and not offered where they do nothing.
    let offers = |sub: &str, flag: &str| {
        help(&[sub, "--help"])
            .lines()
            .any(|l| l.trim_start().starts_with('-') && l.contains(flag))
    };
    for sub in ["init", "completions", "man"] {
        assert!(!offers(sub, "--output"), "{sub}");
    }
    assert!(!offers("completions", "--config"));
    assert!(offers("init", "--config"));
    assert!(offers("status", "--output"));
    p.write("other/x.service", "[Service]\nExecStart=/bin/true\n");
    p.write(
        "other/ferry.toml",
        "[hosts.h]\naddress = \"x\"\n[services.x]\nunits = [\"x.service\"]\n",
    );
    let run = p.ferry(&["units", "--output", "json", "-c", "other/ferry.toml"]);
    run.assert_code(0);
    assert_eq!(run.events("unit-file")[0]["name"], "x.service", "{run}");
    let run = p.ferry(&["init", "--output", "json"]);
    run.assert_code(2);
    assert!(
        run.stderr.contains("does nothing for `ferry init`"),
        "{run}"
    );
    assert!(!p.path("deploy.toml").exists());

    assert!(
        words(help(&["doctor", "--help"]))
            .contains("~/.config/systemd/user is missing, doctor creates it"),
        "doctor's help does not say it creates ~/.config/systemd/user"
    );
}

/// The doctor check its help says changes the host: a missing ~/.config/systemd/user is
/// created (and said so), then found; options after the subcommand.
#[test]
fn doctor_creates_the_unit_directory_as_its_help_says() {
    let user = "ferry120";
    let r = remote();
    r.reset(user);
    r.ssh(user, "rm -rf ~/.config/systemd/user");
    let p = Project::new();
    p.config(&host_table("box", user));
    let unit_dir = |run: &crate::support::Run| {
        let check = run
            .events("check")
            .into_iter()
            .find(|c| c["check"] == "unit directory")
            .unwrap_or_else(|| panic!("no unit directory check\n{run}"));
        assert_eq!(check["status"], "pass", "{run}");
        check["detail"].as_str().unwrap().to_string()
    };
    let run = p.ferry(&["doctor", "-H", "box", "--output", "json"]);
    assert_eq!(unit_dir(&run), "~/.config/systemd/user created");
    assert_eq!(
        r.ssh(user, "test -d ~/.config/systemd/user && echo yes"),
        "yes\n"
    );
    let run = p.ferry(&["doctor", "--output", "json"]);
    assert_eq!(unit_dir(&run), "~/.config/systemd/user exists");
}
