//! Fleets against the real remote: rollouts in batches with a failure budget, canaries,
//! `--retry-failed`, `--rollback-all-on-failure`, `ferry exec`, 32 handshakes at once.
//!
//! Users ferry25..ferry32, and ferry45..ferry60 for the sixteen-host rollout. Each test has its own service name and cleans only that service, so
//! tests that share a user do not disturb each other. A host is made to fail deterministically
//! by a file in the user's home that the service's health command looks for
//! (`~/fail-SERVICE-VERSION`): the previous version still passes, so its rollback succeeds.

use crate::support::{Project, Run, host_table, remote};

/// Remove one service from a user: its unit, its releases, its failure switches.
fn clean(user: &str, service: &str) {
    remote().ssh(
        user,
        &format!(
            "systemctl --user stop {service}.service ferry-revert-{service}.timer 2>/dev/null; \
             rm -f ~/.config/systemd/user/{service}.service ~/fail-{service}-*; \
             rm -rf ~/.local/share/ferry/{service}; \
             systemctl --user daemon-reload; systemctl --user reset-failed {service}.service 2>/dev/null; true"
        ),
    );
}

/// A project deploying `service` (a unit that records which release it started from, then
/// stays up) to `hosts` (name, user), through the group `fleet`.
fn fleet_project(service: &str, hosts: &[(&str, &str)], rollout: &str) -> Project {
    let p = Project::new();
    p.write(
        &format!("{service}.service"),
        format!(
            "[Service]\nExecStart=/bin/sh -c 'readlink -f %h/.local/share/ferry/{service}/current > %t/{service}.started; exec sleep infinity'\n"
        ),
    );
    p.write("version", "v1\n");
    let mut config = String::new();
    for (name, user) in hosts {
        config.push_str(&host_table(name, user));
    }
    let names: Vec<&str> = hosts.iter().map(|(n, _)| *n).collect();
    config.push_str(&format!(
        "[groups]\nfleet = {names:?}\n\n\
         [services.{service}]\nhosts = [\"fleet\"]\nunits = [\"{service}.service\"]\n\
         start_timeout = \"20s\"\nsettle_time = \"300ms\"\n\n\
         [services.{service}.health]\n\
         command = 'test ! -e \"$HOME/fail-{service}-$(cat share/version)\"'\n\
         timeout = \"2s\"\ninterval = \"500ms\"\n\n\
         [services.{service}.rollout]\n{rollout}\n\n\
         [[services.{service}.files]]\nsource = \"version\"\ndest = \"share/version\"\n"
    ));
    p.config(&config);
    p
}

/// What a user would look at on a host: the version `current` serves, the release it points
/// to, and the release the running process started from.
#[derive(Debug, Clone, PartialEq, Eq)]
struct HostView {
    version: String,
    current: String,
    started_from: String,
    history_lines: usize,
}

fn view(user: &str, service: &str) -> HostView {
    let out = remote().ssh(
        user,
        &format!(
            "d=~/.local/share/ferry/{service}; cat $d/current/share/version; readlink $d/current; \
             readlink -f \"$(cat \"$XDG_RUNTIME_DIR/{service}.started\")\"; \
             systemctl --user is-active {service}.service; wc -l < $d/history.jsonl"
        ),
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 5, "{out}");
    assert_eq!(
        lines[3], "active",
        "{service} is not running on {user}: {out}"
    );
    let started = lines[2];
    HostView {
        version: lines[0].to_string(),
        current: lines[1].to_string(),
        started_from: started[started.find("releases/").unwrap_or(0)..].to_string(),
        history_lines: lines[4].trim().parse().unwrap(),
    }
}

/// The host runs `version`, and its process started from the release `current` points to.
fn assert_on(user: &str, service: &str, version: &str) -> HostView {
    let v = view(user, service);
    assert_eq!(v.version, version, "{user}: {v:?}");
    assert_eq!(v.started_from, v.current, "{user}: {v:?}");
    v
}

fn results(run: &Run) -> Vec<(String, String)> {
    let mut r: Vec<(String, String)> = run
        .events("result")
        .iter()
        .map(|e| {
            (
                e["host"].as_str().unwrap().to_string(),
                e["result"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    r.sort();
    r
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut r: Vec<(String, String)> = v
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    r.sort();
    r
}

fn last_history(user: &str, service: &str) -> serde_json::Value {
    let out = remote().ssh(
        user,
        &format!("tail -n 1 ~/.local/share/ferry/{service}/history.jsonl"),
    );
    serde_json::from_str(out.trim()).unwrap()
}

/// Host 3 of 6 fails with batch = 2, max_fail = 0: hosts 1-2 stay on the new release, 3 is
/// rolled back, 4 (same batch, already under way) finishes on the new release, 5-6 are not
/// reached and untouched. `--retry-failed` then deploys to 3, 5 and 6 only. With
/// `--rollback-all-on-failure` every switched host goes back.
#[test]
fn rollout_stops_past_max_fail_and_retry_failed_finishes_it() {
    let service = "roll";
    let hosts = [
        ("h1", "ferry25"),
        ("h2", "ferry26"),
        ("h3", "ferry27"),
        ("h4", "ferry28"),
        ("h5", "ferry29"),
        ("h6", "ferry30"),
    ];
    for (_, u) in hosts {
        clean(u, service);
    }
    let user = |h: &str| hosts.iter().find(|(n, _)| *n == h).unwrap().1;
    let p = fleet_project(service, &hosts, "batch = 2\nmax_fail = 0");

    // v1 everywhere, in three batches.
    let run = p.ferry(&["--output", "json", "deploy"]);
    run.assert_code(0);
    let batches: Vec<Vec<String>> = run
        .events("batch")
        .iter()
        .map(|b| serde_json::from_value(b["hosts"].clone()).unwrap())
        .collect();
    assert_eq!(
        batches,
        vec![vec!["h1", "h2"], vec!["h3", "h4"], vec!["h5", "h6"]],
        "{run}"
    );
    let rollout = &run.events("rollout")[0];
    assert_eq!(rollout["deployed"], 6, "{run}");
    assert!(rollout.get("stopped").is_none(), "{run}");
    let v1: Vec<HostView> = hosts
        .iter()
        .map(|(_, u)| assert_on(u, service, "v1"))
        .collect();

    // v2 fails on h3.
    remote().ssh(user("h3"), &format!("touch ~/fail-{service}-v2"));
    p.write("version", "v2\n");
    let run = p.ferry(&["--output", "json", "deploy", service]);
    run.assert_code(4);
    assert_eq!(
        results(&run),
        pairs(&[
            ("h1", "ok"),
            ("h2", "ok"),
            ("h3", "rolled-back"),
            ("h4", "ok"),
            ("h5", "not-reached"),
            ("h6", "not-reached"),
        ]),
        "{run}"
    );
    let rollout = &run.events("rollout")[0];
    assert!(
        rollout["stopped"]
            .as_str()
            .unwrap()
            .contains("1 host(s) failed (h3), more than max_fail = 0"),
        "{run}"
    );
    assert_eq!(rollout["not_reached"], 2, "{run}");
    // Results are listed by outcome, the worst last.
    let order: Vec<String> = run
        .events("result")
        .iter()
        .map(|e| e["result"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        order,
        [
            "ok",
            "ok",
            "ok",
            "not-reached",
            "not-reached",
            "rolled-back"
        ],
        "{run}"
    );
    let v2_h1 = assert_on(user("h1"), service, "v2");
    assert_on(user("h2"), service, "v2");
    assert_on(user("h4"), service, "v2");
    let h3 = assert_on(user("h3"), service, "v1");
    assert_eq!(h3.current, v1[2].current, "h3 is back on its v1 release");
    assert_eq!(last_history(user("h3"), service)["action"], "rollback");
    for (i, h) in [(4, "h5"), (5, "h6")] {
        assert_eq!(view(user(h), service), v1[i], "{h} was not touched");
    }
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(p.path(".ferry/state.json")).unwrap())
            .unwrap();
    assert_eq!(
        state["services"][service]["hosts"]["h3"]["result"],
        "rolled-back"
    );
    assert_eq!(
        state["services"][service]["hosts"]["h5"]["result"],
        "not-reached"
    );
    assert_eq!(state["services"][service]["hosts"]["h1"]["result"], "ok");

    // The cause is fixed: --retry-failed deploys to h3, h5 and h6 only.
    remote().ssh(user("h3"), &format!("rm ~/fail-{service}-v2"));
    let before: Vec<HostView> = ["h1", "h2", "h4"]
        .iter()
        .map(|h| view(user(h), service))
        .collect();
    let run = p.ferry(&["--output", "json", "deploy", "--retry-failed"]);
    run.assert_code(0);
    assert_eq!(
        results(&run),
        pairs(&[("h3", "ok"), ("h5", "ok"), ("h6", "ok")]),
        "{run}"
    );
    for (i, h) in ["h1", "h2", "h4"].iter().enumerate() {
        assert_eq!(
            view(user(h), service),
            before[i],
            "{h} was not deployed again"
        );
    }
    let mut v2 = Vec::new();
    for (_, u) in hosts {
        v2.push(assert_on(u, service, "v2"));
    }
    assert_eq!(v2[0], v2_h1);

    // Nothing left to retry.
    let run = p.ferry(&["deploy", "--retry-failed"]);
    run.assert_code(0);
    assert!(run.stdout.contains("nothing to retry"), "{run}");
    for (i, (_, u)) in hosts.iter().enumerate() {
        assert_eq!(view(u, service), v2[i], "{u} was not touched");
    }

    // v3 fails on h3 again, with --rollback-all-on-failure: h1, h2, h4 are put back on v2.
    remote().ssh(user("h3"), &format!("touch ~/fail-{service}-v3"));
    p.write("version", "v3\n");
    let run = p.ferry(&["deploy", "--rollback-all-on-failure"]);
    run.assert_code(4);
    for (i, (h, u)) in hosts.iter().enumerate() {
        let now = assert_on(u, service, "v2");
        assert_eq!(now.current, v2[i].current, "{h} is on its v2 release again");
        if ["h1", "h2", "h4"].contains(h) {
            let rec = last_history(u, service);
            assert_eq!(rec["action"], "rollback", "{h}: {rec}");
            assert!(
                rec["reason"]
                    .as_str()
                    .unwrap()
                    .contains("--rollback-all-on-failure"),
                "{h}: {rec}"
            );
        }
        if ["h5", "h6"].contains(h) {
            assert_eq!(now, v2[i], "{h} was not touched");
        }
    }
    // People see one table, sorted by outcome, and what happened.
    let row = |h: &str| {
        run.stdout
            .lines()
            .position(|l| l.starts_with(&format!("{h} roll ")))
            .unwrap_or_else(|| panic!("no row for {h}\n{run}"))
    };
    assert!(row("h5") < row("h3") && row("h6") < row("h1"), "{run}");
    assert!(
        run.stdout
            .lines()
            .nth(row("h1"))
            .unwrap()
            .contains("ROLLED BACK"),
        "{run}"
    );
    assert!(
        run.stdout.contains("ROLLOUT STOPPED")
            && run
                .stdout
                .contains("2 host(s) not reached keep their current release")
            && run
                .stdout
                .contains("3 host(s) put back on their previous release"),
        "{run}"
    );
}

/// A canary that fails stops the rollout, whatever max_fail says: the other hosts are not
/// reached and keep their release; --retry-failed would deploy to all three.
#[test]
fn a_failed_canary_stops_everything() {
    let service = "canary";
    let hosts = [("c1", "ferry31"), ("c2", "ferry32"), ("c3", "ferry25")];
    for (_, u) in hosts {
        clean(u, service);
    }
    let p = fleet_project(service, &hosts, "canary = 1\nbatch = 1\nmax_fail = 5");
    let run = p.ferry(&["--output", "json", "deploy"]);
    run.assert_code(0);
    let batches = run.events("batch");
    assert_eq!(batches.len(), 3, "{run}");
    assert_eq!(batches[0]["canary"], true);
    assert_eq!(batches[0]["hosts"], serde_json::json!(["c1"]));
    let v1: Vec<HostView> = hosts
        .iter()
        .map(|(_, u)| assert_on(u, service, "v1"))
        .collect();

    remote().ssh("ferry31", &format!("touch ~/fail-{service}-v2"));
    p.write("version", "v2\n");
    let run = p.ferry(&["--output", "json", "deploy"]);
    run.assert_code(4);
    assert_eq!(
        results(&run),
        pairs(&[
            ("c1", "rolled-back"),
            ("c2", "not-reached"),
            ("c3", "not-reached")
        ]),
        "{run}"
    );
    assert_eq!(
        run.events("rollout")[0]["stopped"],
        "the canary host c1 failed",
        "{run}"
    );
    assert_eq!(
        run.events("batch").len(),
        1,
        "no batch after the canary\n{run}"
    );
    let c1 = assert_on("ferry31", service, "v1");
    assert_eq!(c1.current, v1[0].current);
    assert_eq!(view("ferry32", service), v1[1]);
    assert_eq!(view("ferry25", service), v1[2]);

    // --retry-failed covers the canary and the hosts not reached (a dry run shows it).
    let run = p.ferry(&["--output", "json", "deploy", "--retry-failed", "--dry-run"]);
    run.assert_code(0);
    let mut planned: Vec<String> = run
        .events("plan")
        .iter()
        .map(|e| e["host"].as_str().unwrap().to_string())
        .collect();
    planned.sort();
    assert_eq!(planned, ["c1", "c2", "c3"], "{run}");
    assert_eq!(view("ferry32", service), v1[1], "a dry run changes nothing");
}

/// A project with the service `tool` (no units: a script in bin/) on `hosts`.
fn tool_project(hosts: &[(&str, &str)], extra_hosts: &str) -> Project {
    let p = Project::new();
    p.write("greet", "#!/bin/sh\necho \"hello $*\"\n");
    let mut config = String::new();
    for (name, user) in hosts {
        config.push_str(&host_table(name, user));
    }
    config.push_str(extra_hosts);
    let names: Vec<&str> = hosts.iter().map(|(n, _)| *n).collect();
    config.push_str(&format!(
        "[groups]\ntools = {names:?}\n\n[services.tool]\nhosts = [\"tools\"]\n\n\
         [[services.tool.files]]\nsource = \"greet\"\ndest = \"bin/greet\"\nmode = \"0755\"\n"
    ));
    p.config(&config);
    p
}

#[test]
fn exec_runs_in_the_current_release_with_output_and_exit_codes_per_host() {
    let hosts = [("t1", "ferry26"), ("t2", "ferry28"), ("t3", "ferry29")];
    for (_, u) in hosts {
        clean(u, "tool");
    }
    let p = tool_project(&hosts, "");
    p.ferry(&["deploy", "-H", "t1", "-H", "t2"]).assert_code(0);

    // Output prefixed by host, arguments passed as they are, the release's bin/ on PATH.
    let run = p.ferry(&[
        "exec", "tool", "-H", "t1", "-H", "t2", "--", "greet", "a  b", "$HOME", "it's;",
    ]);
    run.assert_code(0);
    let mut lines: Vec<&str> = run.stdout.lines().collect();
    lines.sort();
    assert_eq!(
        lines,
        ["t1: hello a  b $HOME it's;", "t2: hello a  b $HOME it's;"],
        "{run}"
    );

    // In the current release's directory; stdout, stderr and exit status per host in JSON.
    let run = p.ferry(&[
        "--output",
        "json",
        "exec",
        "tool",
        "-H",
        "tools",
        "--",
        "sh",
        "-c",
        "pwd -P; echo \"$FERRY_RELEASE\"; echo oops >&2; test \"$(id -un)\" = ferry26",
    ]);
    run.assert_code(1);
    let execs = run.events("exec");
    assert_eq!(execs.len(), 3, "{run}");
    for (e, (name, user)) in execs.iter().zip(hosts) {
        assert_eq!(e["host"], name);
        assert_eq!(e["service"], "tool");
        if name == "t3" {
            // Never deployed there: said so, and it counts as a failure.
            assert!(e["exit_status"].is_null(), "{e}");
            assert!(
                e["error"].as_str().unwrap().contains("no current release"),
                "{e}"
            );
            continue;
        }
        let current = remote()
            .ssh(user, "readlink -f ~/.local/share/ferry/tool/current")
            .trim()
            .to_string();
        let release = current.rsplit('/').next().unwrap().to_string();
        assert_eq!(e["stdout"], format!("{current}\n{release}\n"), "{e}");
        assert_eq!(e["stderr"], "oops\n", "{e}");
        assert_eq!(
            e["exit_status"],
            if user == "ferry26" { 0 } else { 1 },
            "{e}"
        );
    }
    let summary = &run.events("summary")[0];
    assert_eq!(summary["ok"], 1);
    assert_eq!(summary["failed"], 2);
    assert_eq!(summary["exit_code"], 1);

    // A host that cannot be reached: exit 3 wins over the others' 0.
    let p = tool_project(
        &hosts[..1],
        "[hosts.down]\naddress = \"127.0.0.1\"\nport = 19299\nconnect_timeout = \"2s\"\n\n",
    );
    let config = std::fs::read_to_string(p.path("deploy.toml"))
        .unwrap()
        .replace("tools = [\"t1\"]", "tools = [\"t1\", \"down\"]");
    p.config(&config);
    let run = p.ferry(&["--output", "json", "exec", "tool", "--", "true"]);
    run.assert_code(3);
    let execs = run.events("exec");
    assert_eq!(execs.len(), 2, "{run}");
    assert_eq!(execs[1]["host"], "t1");
    assert_eq!(execs[1]["exit_status"], 0, "{run}");
    assert!(
        execs[0]["error"].as_str().unwrap().contains("down"),
        "{run}"
    );
}

/// 32 hosts behind one sshd with the default MaxStartups (10:30:100), all at once: handshakes
/// that sshd drops are retried, and every host answers. Four host names share each user (these
/// commands keep no state per host).
#[test]
fn thirty_two_parallel_handshakes() {
    let users = [
        "ferry25", "ferry26", "ferry27", "ferry28", "ferry29", "ferry30", "ferry31", "ferry32",
    ];
    for u in users {
        clean(u, "hs");
    }
    let mut config = String::new();
    let mut names = Vec::new();
    for i in 0..32 {
        let name = format!("n{i:02}");
        config.push_str(&host_table(&name, users[i % 8]));
        names.push(name);
    }
    let p = Project::new();
    p.write("greet", "#!/bin/sh\necho \"hello from $(id -un)\"\n");
    config.push_str(&format!(
        "[groups]\nall = {names:?}\ndistinct = {:?}\n\n[services.hs]\nhosts = [\"all\"]\n\n\
         [[services.hs.files]]\nsource = \"greet\"\ndest = \"bin/greet\"\nmode = \"0755\"\n",
        &names[..8]
    ));
    p.config(&config);
    p.ferry(&["deploy", "-H", "distinct"]).assert_code(0);

    let run = p.ferry(&[
        "--output",
        "json",
        "exec",
        "hs",
        "--parallel",
        "32",
        "--",
        "greet",
    ]);
    run.assert_code(0);
    let execs = run.events("exec");
    assert_eq!(execs.len(), 32, "{run}");
    for (i, e) in execs.iter().enumerate() {
        assert_eq!(e["host"], names[i].as_str());
        assert_eq!(e["exit_status"], 0, "{e}");
        assert_eq!(e["stdout"], format!("hello from {}\n", users[i % 8]), "{e}");
    }
}

/// Sixteen hosts, each its own remote user (ferry45..ferry60): a canary, then batches of 25%.
/// A release that fails on two hosts of the second batch (max_fail = 1) stops the rollout
/// there: the canary and the first batches stay on it, the two are rolled back, the rest of
/// their batch finishes, the seven hosts after it are not reached and untouched; once the
/// cause is gone, `--retry-failed` deploys to exactly those nine.
#[test]
fn sixteen_hosts_canary_and_percentage_batches() {
    let service = "sixteen";
    let names: Vec<String> = (1..=16).map(|i| format!("s{i}")).collect();
    let users: Vec<String> = (45..=60).map(|i| format!("ferry{i}")).collect();
    let hosts: Vec<(&str, &str)> = names
        .iter()
        .zip(&users)
        .map(|(n, u)| (n.as_str(), u.as_str()))
        .collect();
    for (_, u) in &hosts {
        clean(u, service);
    }
    let p = fleet_project(service, &hosts, "canary = 1\nbatch = \"25%\"\nmax_fail = 1");

    let run = p.ferry(&["--output", "json", "deploy", "--parallel", "16"]);
    run.assert_code(0);
    let sizes: Vec<usize> = run
        .events("batch")
        .iter()
        .map(|b| b["hosts"].as_array().unwrap().len())
        .collect();
    assert_eq!(sizes, [1, 4, 4, 4, 3], "{run}");
    assert_eq!(run.events("rollout")[0]["deployed"], 16, "{run}");
    let v1: Vec<HostView> = users.iter().map(|u| assert_on(u, service, "v1")).collect();

    // v2 fails on s6 and s7 (the second batch is s6..s9).
    for u in [&users[5], &users[6]] {
        remote().ssh(u, &format!("touch ~/fail-{service}-v2"));
    }
    p.write("version", "v2\n");
    let run = p.ferry(&["--output", "json", "deploy", "--parallel", "16"]);
    run.assert_code(4);
    let expected: Vec<(String, &str)> = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let r = match i {
                0..=4 | 7 | 8 => "ok",
                5 | 6 => "rolled-back",
                _ => "not-reached",
            };
            (n.clone(), r)
        })
        .collect();
    let expected: Vec<(&str, &str)> = expected.iter().map(|(n, r)| (n.as_str(), *r)).collect();
    assert_eq!(results(&run), pairs(&expected), "{run}");
    let rollout = &run.events("rollout")[0];
    assert_eq!(rollout["not_reached"], 7, "{run}");
    for (i, u) in users.iter().enumerate() {
        match i {
            0..=4 | 7 | 8 => {
                assert_on(u, service, "v2");
            }
            5 | 6 => {
                let now = assert_on(u, service, "v1");
                assert_eq!(now.current, v1[i].current, "{u} is back on its v1 release");
            }
            _ => assert_eq!(view(u, service), v1[i], "{u} was not touched"),
        }
    }

    // The cause is gone: --retry-failed deploys to s6, s7 and s10..s16 only.
    for u in [&users[5], &users[6]] {
        remote().ssh(u, &format!("rm ~/fail-{service}-v2"));
    }
    let untouched: Vec<HostView> = [0, 1, 2, 3, 4, 7, 8]
        .iter()
        .map(|&i| view(&users[i], service))
        .collect();
    let run = p.ferry(&[
        "--output",
        "json",
        "deploy",
        "--retry-failed",
        "--parallel",
        "16",
    ]);
    run.assert_code(0);
    let retried: Vec<(&str, &str)> = [5, 6, 9, 10, 11, 12, 13, 14, 15]
        .iter()
        .map(|&i| (names[i].as_str(), "ok"))
        .collect();
    assert_eq!(results(&run), pairs(&retried), "{run}");
    for (k, &i) in [0, 1, 2, 3, 4, 7, 8].iter().enumerate() {
        assert_eq!(
            view(&users[i], service),
            untouched[k],
            "{} was not deployed again",
            names[i]
        );
    }
    for u in &users {
        assert_on(u, service, "v2");
    }
}
