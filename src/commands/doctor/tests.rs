//! Tests of `ferry doctor`'s probes and judges, without a host.

use super::*;

#[test]
fn user_manager_states() {
    assert_eq!(
        judge_user_manager("h", "running\nrc=0\n").status,
        Status::Pass
    );
    let c = judge_user_manager("h", "degraded\nrc=1\nbad.service\nworse.service\n");
    assert_eq!(c.status, Status::Fail);
    assert!(
        c.detail.contains("bad.service, worse.service"),
        "{}",
        c.detail
    );
    let c = judge_user_manager("h", "Failed to connect to bus: No medium found\nrc=1\n");
    assert!(c.hint.unwrap().contains("libpam-systemd"));
}

#[test]
fn linger() {
    assert_eq!(
        judge_linger("h", "user=u\nlinger=yes\n").status,
        Status::Pass
    );
    let c = judge_linger("h", "user=bob\nlinger=no\n");
    assert_eq!(c.status, Status::Fail);
    assert_eq!(
        c.hint.as_deref(),
        Some("as root on the host: loginctl enable-linger bob")
    );
}

#[test]
fn fixes_are_root_commands_for_what_did_not_pass() {
    let c = judge_linger("h", "user=bob\nlinger=no\n");
    assert_eq!(
        fix_commands(&c, "bob"),
        Some(vec!["loginctl enable-linger bob".to_string()])
    );
    let ok = judge_linger("h", "user=bob\nlinger=yes\n");
    assert_eq!(fix_commands(&ok, "bob"), None);
    // A user name is quoted for the shell root runs.
    assert_eq!(
        fix_commands(&c, "o'brien").unwrap()[0],
        "loginctl enable-linger 'o'\\''brien'"
    );
    let volatile = judge_journal_storage("h", &facts("", "no", 1001));
    assert_eq!(volatile.status, Status::Fail);
    let cmds = fix_commands(&volatile, "bob").unwrap();
    assert!(
        cmds.iter()
            .any(|c| c.contains(JOURNAL_DROPIN) && c.contains("Storage=persistent"))
    );
    assert_eq!(cmds.last().unwrap(), "systemctl restart systemd-journald");
    let system = judge_journal_storage("h", &facts("", "no", 990));
    assert_eq!(system.status, Status::Fail);
    assert_eq!(
        fix_commands(&system, "bob"),
        None,
        "no command makes a system uid a regular one"
    );
    let ports = judge_ports("h", "port_start=2048\n");
    assert_eq!(ports.status, Status::Warn);
    assert!(
        fix_commands(&ports, "bob").unwrap()[0]
            .starts_with("sysctl -w net.ipv4.ip_unprivileged_port_start=1024")
    );
    // Every command parses in sh.
    for c in [c, volatile, ports] {
        for cmd in fix_commands(&c, "bob").unwrap() {
            let ok = std::process::Command::new("sh")
                .args(["-n", "-c", &cmd])
                .status()
                .unwrap();
            assert!(ok.success(), "{cmd}");
        }
    }
}

#[test]
fn journal() {
    let ok = judge_journal("h", "uid=1000\npersistent=yes\nreadable=yes\n");
    assert_eq!(ok.status, Status::Pass);
    let sys = judge_journal("h", "uid=990\npersistent=yes\nreadable=no\n");
    assert_eq!(sys.status, Status::Fail);
    assert!(sys.hint.unwrap().contains("system user"));
    let vol = judge_journal("h", "uid=1000\npersistent=no\nreadable=yes\n");
    assert_eq!(vol.status, Status::Fail);
    assert!(vol.detail.contains("not persistent"));
}

/// `ferry doctor` and `ferry logs` (nothing shown) give the same reason and fix.
#[test]
fn journal_check_says_what_logs_says() {
    for facts in [
        "uid=990\nuser=sys\npersistent=yes\nvar_log_journal=yes\nstorage=persistent\n",
        "uid=1001\nuser=app\npersistent=no\nvar_log_journal=no\nstorage=\n",
        "uid=1001\nuser=app\npersistent=yes\nvar_log_journal=yes\nstorage=volatile\n",
    ] {
        let c = judge_journal("h", &(format!("{facts}readable=no\n")));
        let journal::Emptiness::Unreadable { message, hint } =
            journal::judge_empty(&format!("{facts}entries=0\n"))
        else {
            panic!("{facts}")
        };
        assert_eq!(c.status, Status::Fail);
        assert_eq!((c.detail, c.hint.unwrap()), (message, hint));
    }
}

#[test]
fn unit_dir() {
    assert_eq!(
        judge_unit_dir("h", "unit_dir=exists\n").status,
        Status::Pass
    );
    assert_eq!(
        judge_unit_dir("h", "unit_dir=unwritable\n").status,
        Status::Fail
    );
}

#[test]
fn connection_failure_marks_later_checks_skipped() {
    let host = Host {
        name: "h".into(),
        address: "127.0.0.1".into(),
        user: "u".into(),
        port: 1,
        identity: None,
        known_hosts: "kh".into(),
        host_key_policy: crate::config::HostKeyPolicy::Strict,
        connect_timeout: std::time::Duration::from_secs(1),
        compress: Default::default(),
        proxy_jump: None,
        identities: Vec::new(),
        ssh: Default::default(),
        arch: None,
    };
    let err = Error::Auth {
        host: "h".into(),
        user: "u".into(),
        tried: vec![],
    };
    let checks = connection_checks(&host, &err);
    let st: Vec<Status> = checks.iter().map(|c| c.status).collect();
    assert_eq!(
        st,
        vec![
            Status::Pass,
            Status::Pass,
            Status::Fail,
            Status::Skip,
            Status::Skip,
            Status::Skip,
            Status::Skip,
            Status::Skip,
            Status::Skip,
            Status::Skip,
            Status::Skip,
            Status::Skip,
            Status::Skip,
            Status::Skip,
            Status::Skip,
            Status::Skip
        ]
    );
}

#[test]
fn unit_dir_names_the_error() {
    let c = judge_unit_dir(
        "h",
        "unit_dir=unwritable\nerror=mkdir: cannot create directory '/home/a/.config': Permission denied\n",
    );
    assert!(c.detail.ends_with("Permission denied"), "{}", c.detail);
}

#[test]
fn systemd_versions() {
    let debian = "systemd 252 (252.39-1~deb12u2)\n+PAM +AUDIT +SELINUX +PCRE2 -PWQUALITY default-hierarchy=unified\n";
    let c = judge_systemd_version("h", debian);
    assert_eq!((c.status, c.detail.as_str()), (Status::Pass, "systemd 252"));
    let c = judge_systemd_version("h", "systemd 257.9-1 (257.9-1)\n+PAM\n");
    assert_eq!((c.status, c.detail.as_str()), (Status::Pass, "systemd 257"));
    let c = judge_systemd_version("h", "systemd 229\n+PAM\n");
    assert_eq!(c.status, Status::Fail);
    assert_eq!(
        c.hint.as_deref(),
        Some("upgrade systemd on the host to 236 or newer")
    );
    let c = judge_systemd_version("h", "systemd 245 (245.4)\n+PAM -PCRE2 +ZSTD\n");
    assert_eq!(c.status, Status::Warn);
    assert!(c.detail.contains("--grep"), "{}", c.detail);
    let c = judge_systemd_version("h", "");
    assert_eq!(c.status, Status::Fail);
    assert!(c.detail.contains("printed nothing"), "{}", c.detail);
}

#[test]
fn user_bus() {
    let ok = "uid=1001\nuser=app\nxdg=/run/user/1001\nrun_dir=yes\nbus=yes\n";
    let c = judge_user_bus("h", ok);
    assert_eq!(c.status, Status::Pass, "{c:?}");
    let c = judge_user_bus("h", &ok.replace("xdg=/run/user/1001", "xdg="));
    assert_eq!(c.status, Status::Fail);
    assert!(c.detail.contains("XDG_RUNTIME_DIR is not set"), "{c:?}");
    assert!(c.hint.unwrap().contains("UsePAM yes"));
    let c = judge_user_bus("h", &ok.replace("xdg=/run/user/1001", "xdg=/run/user/0"));
    assert!(
        c.detail
            .contains("XDG_RUNTIME_DIR is /run/user/0, not /run/user/1001"),
        "{c:?}"
    );
    let c = judge_user_bus("h", &ok.replace("run_dir=yes", "run_dir=no"));
    assert_eq!(c.status, Status::Fail);
    assert!(
        c.hint
            .unwrap()
            .starts_with("as root on the host: loginctl enable-linger app")
    );
    let c = judge_user_bus("h", &ok.replace("bus=yes", "bus=no"));
    assert_eq!(c.status, Status::Fail);
    assert!(
        c.detail.starts_with("/run/user/1001/bus does not exist"),
        "{c:?}"
    );
    assert!(c.hint.unwrap().contains("dbus-user-session"));
}

/// A journal probe's output: storage, whether /var/log/journal is there and used, the uid.
fn facts(storage: &str, dir: &str, uid: u32) -> String {
    format!(
        "uid={uid}\nuser=app\npersistent={dir}\nvar_log_journal={dir}\nstorage={storage}\nreadable=yes\n"
    )
}

#[test]
fn journal_storage() {
    let c = judge_journal_storage("h", &facts("persistent", "yes", 1001));
    assert_eq!(c.status, Status::Pass);
    assert_eq!(
        c.detail,
        "Storage=persistent, /var/log/journal in use; uid 1001 gets its own journal"
    );
    let c = judge_journal_storage("h", &facts("", "yes", 1001));
    assert_eq!(c.status, Status::Pass);
    assert!(
        c.detail
            .starts_with("Storage=auto, /var/log/journal in use")
    );
    let c = judge_journal_storage("h", &facts("", "no", 1001));
    assert_eq!(c.status, Status::Fail);
    assert_eq!(
        c.detail,
        "Storage=auto, no /var/log/journal; uid 1001 gets its own journal"
    );
    assert!(
        c.hint
            .unwrap()
            .starts_with("as root on the host: mkdir -p /var/log/journal")
    );
    let c = judge_journal_storage("h", &facts("volatile", "yes", 1001));
    assert_eq!(c.status, Status::Fail);
    assert!(c.detail.contains("exists but is not used"), "{c:?}");
    assert!(c.hint.unwrap().contains("set Storage=persistent"));
    let c = judge_journal_storage("h", &facts("persistent", "yes", 990));
    assert_eq!(c.status, Status::Fail);
    assert!(
        c.detail
            .ends_with("uid 990 is below 1000: no per-user journal"),
        "{c:?}"
    );
    // The fix is the one `ferry logs` gives for an empty journal.
    let journal::Emptiness::Unreadable { hint, .. } =
        journal::judge_empty(&facts("persistent", "yes", 990))
    else {
        panic!()
    };
    assert_eq!(c.hint.unwrap(), hint);
}

#[test]
fn cgroup_delegation() {
    let text = |controllers: &str, root: &str| {
        format!("uid=1001\nuser=app\nv2=yes\nroot={root}\ncontrollers={controllers}\nsubtree=\n")
    };
    let all = "cpuset cpu io memory pids";
    let c = judge_cgroups("h", &text("cpu memory pids", all));
    assert_eq!(c.status, Status::Pass);
    assert_eq!(c.detail, "delegated to user@1001.service: cpu memory pids");
    let c = judge_cgroups("h", &text("memory pids", all));
    assert_eq!(c.status, Status::Warn);
    assert!(
        c.detail.contains(
            "(missing: cpu): CPUQuota=/CPUWeight= in user units are accepted but not enforced"
        ),
        "{c:?}"
    );
    let hint = c.hint.unwrap();
    assert!(
        hint.starts_with("as root on the host: mkdir -p /etc/systemd/system/user@.service.d;")
            && hint.contains("Delegate=cpu memory pids")
            && hint.contains("systemctl restart user@1001.service"),
        "{hint}"
    );
    // A container that got no controllers (like the test remote): say where to fix it.
    let c = judge_cgroups("h", &text("", ""));
    assert_eq!(c.status, Status::Warn);
    assert!(
        c.detail
            .starts_with("delegated to user@1001.service: none (missing: cpu memory pids)"),
        "{c:?}"
    );
    assert!(
        c.hint
            .unwrap()
            .starts_with("the kernel offers no cpu/memory/pids controller")
    );
    let c = judge_cgroups("h", "uid=1001\nuser=app\nv2=no\n");
    assert_eq!(c.status, Status::Warn);
    assert!(
        c.hint
            .unwrap()
            .contains("systemd.unified_cgroup_hierarchy=1")
    );
    let c = judge_cgroups(
        "h",
        "uid=1001\nuser=app\nv2=yes\nroot=cpu\ncontrollers=missing\n",
    );
    assert_eq!(c.status, Status::Warn);
    assert!(
        c.detail
            .contains("/sys/fs/cgroup/user.slice/user-1001.slice/user@1001.service does not exist")
    );
}

#[test]
fn unprivileged_ports() {
    let c = judge_ports("h", "port_start=1024\n");
    assert_eq!(c.status, Status::Pass);
    assert!(c.detail.contains("ports 1024 and up"), "{c:?}");
    assert_eq!(judge_ports("h", "port_start=0\n").status, Status::Pass);
    assert!(
        judge_ports("h", "port_start=80\n")
            .detail
            .contains("ports 80 and up")
    );
    let c = judge_ports("h", "port_start=2000\n");
    assert_eq!(c.status, Status::Warn);
    assert!(
        c.hint
            .unwrap()
            .contains("sysctl -w net.ipv4.ip_unprivileged_port_start=1024")
    );
    assert_eq!(judge_ports("h", "port_start=\n").status, Status::Pass);
}

#[test]
fn sections_and_an_unfinished_script() {
    let out = "@ferry-doctor systemd\nsystemd 252 (252.39)\n+PCRE2\n@ferry-doctor bus\nuid=1\n@ferry-doctor end\n";
    let s = parse_sections(out);
    assert_eq!(s["systemd"], "systemd 252 (252.39)\n+PCRE2\n");
    assert_eq!(s["bus"], "uid=1\n");
    assert!(s.contains_key("end"));
    let checks = judge_all("h", "@ferry-doctor systemd\nsystemd 252\n");
    let ids: Vec<CheckId> = checks.iter().map(|c| c.check).collect();
    assert_eq!(ids, CheckId::ALL[6..].to_vec());
    assert_eq!(checks[0].status, Status::Pass);
    assert!(
        checks[1]
            .detail
            .ends_with("(the check script did not run to its end)"),
        "{:?}",
        checks[1]
    );
}

/// The whole script runs in a real `sh` and every section answers (whatever this machine
/// is: only the shape is checked here; the values are checked against the test remote).
#[test]
fn script_runs_in_sh() {
    let out = std::process::Command::new("sh")
        .arg("-c")
        // Without systemd-cat, the journal probe answers at once (no journal to poll here).
        .arg(script().replace("command -v systemd-cat", "command -v ferry-no-such-command"))
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let s = parse_sections(&text);
    let names: Vec<&str> = probes().iter().map(|(n, _)| *n).collect();
    for n in names.iter().chain(&["end"]) {
        assert!(s.contains_key(*n), "no section {n} in {text}");
    }
    for (section, key) in [
        ("bus", "uid"),
        ("bus", "run_dir"),
        ("linger", "linger"),
        ("journal", "storage"),
        ("journal", "readable"),
        ("cgroup", "v2"),
        ("ports", "port_start"),
    ] {
        assert!(
            kv(&s[section], key).is_some(),
            "{key} missing in {section}: {text}"
        );
    }
}

#[test]
fn check_ids_serialise_as_their_names_in_report_order() {
    let names: Vec<String> = CheckId::ALL
        .iter()
        .map(|c| serde_json::to_string(c).unwrap())
        .collect();
    assert_eq!(names[0], "\"reachable\"");
    assert_eq!(names[1], "\"host key\"");
    assert_eq!(names.last().unwrap(), "\"host tools\"");
    let mut sorted = CheckId::ALL;
    sorted.sort();
    assert_eq!(sorted, CheckId::ALL, "declaration order is report order");
    assert!(CheckId::ALL[..3].iter().all(|c| c.is_connection()));
    assert!(!CheckId::ALL[3..].iter().any(|c| c.is_connection()));
}

#[test]
fn a_fix_is_attached_by_the_judge_that_found_its_cause() {
    // A volatile journal is fixed by persistent storage; a system uid by nothing.
    let volatile = judge_journal_storage("h", &facts("", "no", 1001));
    assert_eq!(volatile.fix, Some(RootFix::PersistentJournal));
    let system = judge_journal_storage("h", &facts("", "no", 990));
    assert_eq!(system.fix, None);
    // Passing checks carry no fix.
    assert_eq!(judge_linger("h", "user=u\nlinger=yes\n").fix, None);
    assert_eq!(
        judge_linger("h", "user=u\nlinger=no\n").fix,
        Some(RootFix::EnableLinger)
    );
    assert_eq!(judge_ports("h", "port_start=1024\n").fix, None);
}
