//! Faults found by trying to break ferry, each kept fixed here against the real remote. Every
//! test asserts the host's state afterwards (what `current` is, what the service started from,
//! the history) and that the next deploy works.

use std::time::Duration;

use crate::support::{Project, Run, host_table, remote};

/// A unit that records which release directory it started from, then stays up: proof that a
/// rollback restarted the service (not just moved the symlink).
fn started_from_unit(p: &Project, service: &str) {
    p.write(
        &format!("{service}.service"),
        format!(
            "[Service]\nExecStart=/bin/sh -c 'readlink -f %h/.local/share/ferry/{service}/current > %t/{service}.started; exec sleep 600'\n"
        ),
    );
}

/// The release directory (`releases/ID`) the service's running process started from.
fn started_from(user: &str, service: &str) -> String {
    let out = remote().ssh(user, &format!("cat \"$XDG_RUNTIME_DIR/{service}.started\""));
    let path = out.trim();
    let i = path.find("releases/").unwrap_or_else(|| panic!("{path}"));
    path[i..].to_string()
}

fn current(user: &str, service: &str) -> String {
    remote()
        .ssh(
            user,
            &format!("readlink ~/.local/share/ferry/{service}/current"),
        )
        .trim()
        .to_string()
}

fn result(run: &Run) -> serde_json::Value {
    run.events("result")
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no result\n{run}"))
}

/// Poll until `f` is true (a bounded number of tries; no wall-clock assertion).
fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..600 {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("gave up waiting for {what}");
}

/// Issue: a rollback was judged by the new config's health checks, so adding a check the old
/// release cannot pass ended in ROLLBACK-FAILED though the old release was back and serving.
#[test]
fn a_rollback_is_judged_by_the_checks_the_release_was_deployed_with() {
    let user = "ferry17";
    let r = remote();
    r.reset(user);
    let p = Project::new();
    started_from_unit(&p, "app");
    p.write("msg", "one\n");
    let base = format!(
        "{}[services.app]\nunits = [\"app.service\"]\nstart_timeout = \"10s\"\nsettle_time = \"0.3s\"\n\
         [[services.app.files]]\nsource = \"msg\"\ndest = \"msg\"\n",
        host_table("web1", user)
    );
    p.config(&base);
    let run = p.ferry(&["--output", "json", "deploy"]);
    run.assert_code(0);
    let v1 = format!("releases/{}", result(&run)["release"].as_str().unwrap());
    assert_eq!(started_from(user, "app"), v1);

    // v2 adds a check that neither v2 nor v1 passes.
    p.write("msg", "two\n");
    p.config(&format!(
        "{base}[services.app.health]\ncommand = \"test -e msg.v2-ready\"\ntimeout = \"1s\"\ninterval = \"200ms\"\n"
    ));
    let run = p.ferry(&["--output", "json", "deploy"]);
    run.assert_code(4);
    let res = result(&run);
    assert_eq!(res["result"], "rolled-back", "{run}");
    assert!(
        res["reason"]
            .as_str()
            .unwrap()
            .contains("health check failed"),
        "{run}"
    );
    // v1 is current and its service was really restarted from v1.
    assert_eq!(current(user, "app"), v1);
    assert_eq!(started_from(user, "app"), v1);
    let run = p.ferry(&["--output", "json", "releases", "app"]);
    let history: Vec<String> = run
        .events("history")
        .iter()
        .map(|h| {
            format!(
                "{} {}",
                h["action"].as_str().unwrap(),
                h["outcome"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        history,
        vec!["deploy ok", "deploy rolled-back", "rollback ok"],
        "{run}"
    );

    // A manual rollback is judged the same way: back to v1 from a healthy v3.
    p.write("msg.v2-ready", "");
    p.config(&format!(
        "{base}[[services.app.files]]\nsource = \"msg.v2-ready\"\ndest = \"msg.v2-ready\"\n\
         [services.app.health]\ncommand = \"test -e msg.v2-ready\"\ntimeout = \"1s\"\ninterval = \"200ms\"\n"
    ));
    let run = p.ferry(&["--output", "json", "deploy"]);
    run.assert_code(0);
    let v3 = format!("releases/{}", result(&run)["release"].as_str().unwrap());
    assert_eq!(started_from(user, "app"), v3);
    let id1 = v1.trim_start_matches("releases/");
    let run = p.ferry(&["--output", "json", "rollback", "app", "--to", id1]);
    run.assert_code(0);
    assert_eq!(current(user, "app"), v1);
    assert_eq!(started_from(user, "app"), v1);
    // The summary line is there for people.
    let run = p.ferry(&[
        "rollback",
        "app",
        "--to",
        v3.trim_start_matches("releases/"),
    ]);
    run.assert_code(0);
    assert!(run.stdout.contains("rolled back: 1 ok"), "{run}");
    assert_eq!(started_from(user, "app"), v3);
}

/// Issue: a self-revert that could not run (the previous release's directory gone) was
/// recorded as `reverted`; `current` stayed on the unverified release and the next deploy took
/// that release for a verified one.
#[test]
fn a_self_revert_that_cannot_run_is_recorded_and_the_next_deploy_knows() {
    let user = "ferry18";
    let r = remote();
    r.reset(user);
    let p = Project::new();
    started_from_unit(&p, "app");
    let cfg = |health: &str, confirm: &str| {
        format!(
            "{}[services.app]\nunits = [\"app.service\"]\nstart_timeout = \"2s\"\nsettle_time = \"0.3s\"\nconfirm_timeout = \"{confirm}\"\n\
             [[services.app.files]]\nsource = \"msg\"\ndest = \"msg\"\n\
             [services.app.health]\ncommand = \"{health}\"\ntimeout = \"5s\"\ninterval = \"200ms\"\n",
            host_table("web1", user)
        )
    };
    let mut ids = Vec::new();
    for v in ["one", "two"] {
        p.write("msg", format!("{v}\n"));
        p.config(&cfg("true", "30s"));
        let run = p.ferry(&["--output", "json", "deploy"]);
        run.assert_code(0);
        ids.push(result(&run)["release"].as_str().unwrap().to_string());
    }
    // v3: killed during its health check (which waits for a file that never comes), so its
    // self-revert to v2 stays armed; then v2's directory disappears.
    p.write("msg", "three\n");
    p.config(&cfg("test -e never", "8s"));
    let mut child = p
        .command(&["deploy"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::BufRead;
        let lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
        assert!(
            lines
                .map_while(Result::ok)
                .any(|l| l.contains("running health checks")),
            "the deploy never reached its health checks"
        );
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let v3 = current(user, "app");
    assert_ne!(v3, format!("releases/{}", ids[1]));
    r.ssh(
        user,
        &format!("rm -rf ~/.local/share/ferry/app/releases/{}", ids[1]),
    );
    let history = || r.ssh(user, "cat ~/.local/share/ferry/app/history.jsonl");
    wait_for("the self-revert to run", || {
        history().contains("\"action\":\"revert\"")
    });
    let last: serde_json::Value = serde_json::from_str(history().lines().last().unwrap()).unwrap();
    assert_eq!(last["action"], "revert");
    assert_eq!(last["outcome"], "revert-failed", "{last}");
    assert_eq!(
        current(user, "app"),
        v3,
        "current moved though the revert failed"
    );
    let run = p.ferry(&["--output", "json", "releases", "app"]);
    let outcomes: Vec<String> = run
        .events("release")
        .iter()
        .map(|e| e["outcome"].as_str().unwrap_or("-").to_string())
        .collect();
    assert!(
        outcomes.contains(&"unverified (revert revert-failed)".to_string()),
        "{run}"
    );

    // The next deploy knows v3 was never verified: a failure goes back to v1, the last
    // verified release still on the host, not to v3.
    p.write("msg", "four\n");
    p.config(&cfg("false", "30s"));
    let dry = p.ferry(&["--output", "json", "deploy", "--dry-run"]);
    dry.assert_code(0);
    let plan = &dry.events("plan")[0];
    assert_eq!(plan["previous_verified"], false, "{dry}");
    assert_eq!(plan["on_failure"]["then"], "roll-back", "{dry}");
    assert_eq!(plan["on_failure"]["to"], ids[0].as_str(), "{dry}");
    let run = p.ferry(&["--output", "json", "deploy"]);
    run.assert_code(4);
    assert_eq!(current(user, "app"), format!("releases/{}", ids[0]));
    assert_eq!(started_from(user, "app"), format!("releases/{}", ids[0]));
    // And a good deploy works.
    p.config(&cfg("true", "30s"));
    p.ferry(&["deploy"]).assert_code(0);
    assert_eq!(
        r.ssh(user, "cat ~/.local/share/ferry/app/current/msg"),
        "four\n"
    );
}
