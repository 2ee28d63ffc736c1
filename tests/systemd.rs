//! systemd expertise against the real remote: units generated from a `[services.X.run]` table
//! (the unix socket + TCP bridge setup), `systemd-analyze verify` of the units before the
//! switch, lints that stop a deploy, and `doctor --fix`.
//! Users: ferry33..ferry36 (and the nolinger user, read-only). TCP ports: 19400..19499.

use crate::support::{Project, demo_bin, host_table, remote};

fn current(user: &str, service: &str) -> Option<String> {
    let out = remote().ssh_raw(
        user,
        &format!("readlink ~/.local/share/ferry/{service}/current"),
    );
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// GET / over a unix socket on the host, as the user would with curl.
fn get_unix(user: &str, socket: &str) -> String {
    remote().ssh(
        user,
        &format!(
            "curl -fsS --max-time 5 --unix-socket \"$XDG_RUNTIME_DIR/{socket}\" http://localhost/"
        ),
    )
}

/// A project deploying the demo server as `service` from a `run` table.
fn run_project(user: &str, service: &str, run: &str, extra: &str) -> Project {
    let p = Project::new();
    std::fs::copy(demo_bin(), p.path("ferry-demo")).unwrap();
    p.write("message.txt", "release one\n");
    p.config(&format!(
        "{}[services.{service}]\nstart_timeout = \"20s\"\nsettle_time = \"0.5s\"\n{extra}\n\
         [services.{service}.run]\n{run}\n\
         [[services.{service}.files]]\nsource = \"ferry-demo\"\ndest = \"bin/ferry-demo\"\nmode = \"0755\"\n\n\
         [[services.{service}.files]]\nsource = \"message.txt\"\ndest = \"share/message.txt\"\n",
        host_table("web1", user)
    ));
    p
}

#[test]
fn run_table_deploys_a_socket_activated_service_with_a_tcp_bridge() {
    let user = "ferry33";
    let port = 19401;
    let r = remote();
    r.reset(user);
    // The aptly-like setup: a unix socket, a socket-activated service, a TCP bridge.
    let p = run_project(
        user,
        "aptly",
        &format!(
            "command = \"bin/ferry-demo --message share/message.txt\"\nsocket = \"%t/aptly.sock\"\ntcp_proxy = \"127.0.0.1:{port}\"\nrestart = \"on-failure\"\nenvironment_file = true\n"
        ),
        "",
    );

    // `ferry units` prints the four units, ready to be saved as files.
    let units = p.ferry(&["--output", "json", "units", "aptly"]);
    units.assert_code(0);
    let files = units.events("unit-file");
    let names: Vec<&str> = files.iter().map(|f| f["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "aptly.service",
            "aptly.socket",
            "aptly-proxy.socket",
            "aptly-proxy.service"
        ],
        "{units}"
    );
    assert!(
        files[0]["content"]
            .as_str()
            .unwrap()
            .contains("WorkingDirectory=%h/.local/share/ferry/aptly/current\n")
    );
    let human = p.ferry(&["units", "aptly"]);
    human.assert_code(0);
    assert!(
        human.stdout.contains("# ---- aptly-proxy.socket")
            && human
                .stdout
                .contains(&format!("ListenStream=127.0.0.1:{port}")),
        "{human}"
    );

    // The dry run shows the generated units and the check step.
    let dry = p.ferry(&["--output", "json", "deploy", "--dry-run"]);
    dry.assert_code(0);
    let plan = &dry.events("plan")[0];
    let planned: Vec<&str> = plan["units"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap())
        .collect();
    assert_eq!(planned.len(), 4, "{dry}");
    assert!(planned.contains(&"aptly-proxy.service"), "{dry}");
    // The seal's command checks the release's four unit files.
    let seal = plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == "seal")
        .unwrap();
    assert_eq!(seal["units"].as_array().map(Vec::len), Some(4), "{dry}");
    assert!(
        current(user, "aptly").is_none(),
        "a dry run changes nothing"
    );

    let run = p.ferry(&["deploy"]);
    run.assert_code(0);
    // Both sockets serve the release; the sockets are enabled for the next boot.
    assert_eq!(get_unix(user, "aptly.sock"), "release one\n");
    assert_eq!(r.http_get(port, "/").as_deref(), Some("release one\n"));
    assert_eq!(
        r.ssh(
            user,
            "systemctl --user is-enabled aptly.socket aptly-proxy.socket"
        ),
        "enabled\nenabled\n"
    );
    // The process runs from the release `current` points to.
    let first = current(user, "aptly").unwrap();
    let cwd = r.ssh(
        user,
        "readlink /proc/$(systemctl --user show aptly.service -p MainPID --value)/cwd",
    );
    assert!(
        cwd.trim()
            .ends_with(&format!("/.local/share/ferry/aptly/{first}")),
        "{cwd} vs {first}"
    );

    // A redeploy of a new message is served on both sockets.
    p.write("message.txt", "release two\n");
    p.ferry(&["deploy"]).assert_code(0);
    assert_ne!(current(user, "aptly").unwrap(), first);
    assert_eq!(get_unix(user, "aptly.sock"), "release two\n");
    assert_eq!(r.http_get(port, "/").as_deref(), Some("release two\n"));
    r.reset(user);
}

#[test]
fn a_broken_unit_is_refused_before_the_switch() {
    let user = "ferry34";
    let r = remote();
    r.reset(user);
    let good = "[Unit]\nDescription=extra\nWants=worker@1.service\n[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=%h/.local/share/ferry/svc/current/bin/ferry-demo --help\n";
    let p = run_project(
        user,
        "svc",
        "command = \"bin/ferry-demo --message share/message.txt\"\nsocket = \"%t/svc34.sock\"\n",
        "units = [\"extra.service\", \"worker@.service\"]\nrestart = [\"svc.service\"]\n",
    );
    // A template, referenced by an instance: verified as it is.
    p.write(
        "worker@.service",
        "[Service]\nExecStart=%h/.local/share/ferry/svc/current/bin/ferry-demo --help %i\n",
    );
    // The first deploy is verified with the release in place (`current` does not exist yet),
    // and a warning of systemd-analyze is shown, not fatal.
    p.write("extra.service", format!("{good}Bogus=1\n"));
    let run = p.ferry(&["deploy"]);
    run.assert_code(0);
    assert!(
        run.stderr.contains("Unknown key") && run.stderr.contains("extra.service"),
        "{run}"
    );
    let first = current(user, "svc").unwrap();
    assert_eq!(get_unix(user, "svc34.sock"), "release one\n");

    // A syntax error: refused before anything is switched.
    p.write("message.txt", "release two\n");
    p.write("extra.service", good.replace("[Service]", "[Service"));
    let run = p.ferry(&["--output", "json", "deploy"]);
    run.assert_code(1);
    let result = &run.events("result")[0];
    assert_eq!(result["result"], "refused", "{run}");
    let reason = result["reason"].as_str().unwrap();
    assert!(
        reason.contains("systemd-analyze") && reason.contains("Invalid section header"),
        "{run}"
    );
    assert_eq!(current(user, "svc").unwrap(), first, "current did not move");
    // The history says why.
    let last = r.ssh(user, "tail -n 1 ~/.local/share/ferry/svc/history.jsonl");
    assert!(
        last.contains("\"outcome\":\"refused\"") && last.contains("Invalid section header"),
        "{last}"
    );
    assert_eq!(get_unix(user, "svc34.sock"), "release one\n");
    let installed = r.ssh(user, "cat ~/.config/systemd/user/extra.service");
    assert!(
        installed.contains("Bogus=1"),
        "the old unit stays: {installed}"
    );

    // A unit whose program is not in the new release: refused too.
    p.write(
        "extra.service",
        good.replace("bin/ferry-demo --help", "bin/missing"),
    );
    let run = p.ferry(&["--output", "json", "deploy"]);
    run.assert_code(1);
    let reason = run.events("result")[0]["reason"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(reason.contains("bin/missing"), "{run}");
    assert_eq!(current(user, "svc").unwrap(), first);
    assert_eq!(get_unix(user, "svc34.sock"), "release one\n");
    r.reset(user);
}

#[test]
fn lints_warn_or_stop_the_deploy() {
    let user = "ferry35";
    let r = remote();
    r.reset(user);
    let unit = "[Unit]\nAfter=network-online.target\n[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n";
    let p = Project::new();
    p.write("lint35.service", unit);
    let config = |lint: &str| {
        format!(
            "{}[services.lint35]\nunits = [\"lint35.service\"]\nsettle_time = \"0s\"\n{lint}\n",
            host_table("web1", user)
        )
    };
    // deny: exit 2 before any connection; the message says what to write instead.
    p.config(&config("lint = \"deny\""));
    let run = p.ferry(&["deploy"]);
    run.assert_code(2);
    assert!(
        run.stderr
            .contains("lint35.service:8: `WantedBy=multi-user.target`")
            && run.stderr.contains("use WantedBy=default.target")
            && run.stderr.contains("network-online.target is inert"),
        "{run}"
    );
    assert!(current(user, "lint35").is_none(), "nothing changed");
    assert_eq!(
        r.ssh(user, "ls ~/.local/share/ferry 2>/dev/null | wc -l")
            .trim(),
        "0"
    );
    p.ferry(&["units", "lint35"]).assert_code(2);

    // warn (the default): the deploy goes on, with the warnings.
    p.config(&config(""));
    let run = p.ferry(&["deploy"]);
    run.assert_code(0);
    assert!(
        run.stderr.contains("warning:") && run.stderr.contains("use WantedBy=default.target"),
        "{run}"
    );
    assert!(current(user, "lint35").is_some());

    // off: silent.
    p.config(&config("lint = \"off\""));
    let run = p.ferry(&["deploy"]);
    run.assert_code(0);
    assert!(!run.stderr.contains("WantedBy"), "{run}");

    // A lint that needs the host: a port below its ip_unprivileged_port_start, under deny,
    // stops the deploy at check-units; the current release stays.
    let before = current(user, "lint35").unwrap();
    let start: u32 = r
        .ssh(user, "cat /proc/sys/net/ipv4/ip_unprivileged_port_start")
        .trim()
        .parse()
        .unwrap();
    assert!(
        start > 80,
        "the remote allows port 80 to users: the test needs it not to"
    );
    p.write(
        "lint35.service",
        "[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/true\n",
    );
    p.write(
        "lint35.socket",
        "[Socket]\nListenStream=127.0.0.1:80\n[Install]\nWantedBy=sockets.target\n",
    );
    p.config(&format!(
        "{}[services.lint35]\nunits = [\"lint35.service\", \"lint35.socket\"]\nsettle_time = \"0s\"\nlint = \"deny\"\n",
        host_table("web1", user)
    ));
    let run = p.ferry(&["--output", "json", "deploy"]);
    run.assert_code(1);
    let reason = run.events("result")[0]["reason"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        reason.contains("port 80 is below")
            && reason.contains(&format!("ip_unprivileged_port_start ({start})")),
        "{run}"
    );
    assert_eq!(current(user, "lint35").unwrap(), before);
    r.reset(user);
}

#[test]
fn doctor_fix_prints_the_root_commands_for_a_user_without_linger() {
    let r = remote();
    let user = r.nolinger_user.clone();
    let p = Project::new();
    p.config(&host_table("box", &user));

    let run = p.ferry(&["doctor", "--fix"]);
    run.assert_code(1);
    assert!(
        run.stdout.contains("fix  lingering")
            && run.stdout.contains("as root on the host:")
            && run
                .stdout
                .contains(&format!("      loginctl enable-linger {user}")),
        "{run}"
    );

    let json = p.ferry(&["--output", "json", "doctor", "--fix"]);
    let fixes = json.events("fix");
    let linger = fixes
        .iter()
        .find(|f| f["check"] == "lingering")
        .unwrap_or_else(|| panic!("{json}"));
    assert_eq!(linger["result"], "print");
    assert_eq!(
        linger["commands"][0],
        format!("loginctl enable-linger {user}")
    );

    // --sudo: the remote has no sudo, so nothing changes and ferry says so.
    let run = p.ferry(&["--output", "json", "doctor", "--fix", "--sudo"]);
    run.assert_code(1);
    let linger = run
        .events("fix")
        .into_iter()
        .find(|f| f["check"] == "lingering")
        .unwrap_or_else(|| panic!("{run}"));
    assert_eq!(linger["result"], "failed", "{run}");
    assert!(linger["error"].as_str().unwrap().contains("sudo"), "{run}");
    let lingering = r.root(&format!("test -e /var/lib/systemd/linger/{user}"));
    assert!(!lingering.status.success(), "linger was not turned on");

    // A ready user gets no fix for lingering.
    let p = Project::new();
    p.config(&host_table("web1", "ferry36"));
    let run = p.ferry(&["--output", "json", "doctor", "--fix"]);
    assert!(
        !run.events("fix").iter().any(|f| f["check"] == "lingering"),
        "{run}"
    );
}
