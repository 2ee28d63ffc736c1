//! The plan against the real remote: what `--dry-run` prints is what `deploy` executes, step for
//! step; refusals (lock held, self-revert pending) are in the plan and change nothing.

use crate::support::{Project, Run, host_table, remote};

/// A step without the parts that differ between two runs (release ids are made of the time).
fn step_shape(step: &serde_json::Value) -> serde_json::Value {
    let mut s = step.clone();
    let obj = s.as_object_mut().unwrap();
    for k in ["type", "host", "service", "index", "release"] {
        obj.remove(k);
    }
    s
}

fn planned_steps(run: &Run) -> Vec<serde_json::Value> {
    let plan = &run.events("plan")[0];
    plan["steps"]
        .as_array()
        .unwrap_or_else(|| panic!("plan has no steps\n{run}"))
        .iter()
        .map(step_shape)
        .collect()
}

fn current(user: &str) -> String {
    remote()
        .ssh(user, "readlink ~/.local/share/ferry/app/current || true")
        .trim()
        .to_string()
}

fn project(user: &str) -> Project {
    let p = Project::new();
    p.write("app.service", "[Service]\nExecStart=/bin/sleep 600\n");
    p.write("bin/tool", "#!/bin/sh\necho tool\n");
    p.write("msg", "one\n");
    p.config(&format!(
        "{}[services.app]\nunits = [\"app.service\"]\nstart_timeout = \"10s\"\nsettle_time = \"0.3s\"\nkeep_releases = 2\n\
         [[services.app.files]]\nsource = \"bin/tool\"\ndest = \"bin/tool\"\nmode = \"0755\"\n\
         [[services.app.files]]\nsource = \"msg\"\ndest = \"msg\"\n\
         [services.app.health]\ncommand = \"tool\"\ntimeout = \"5s\"\n",
        host_table("web1", user)
    ));
    p
}

#[test]
fn the_steps_deploy_executes_are_the_steps_dry_run_printed() {
    let user = "ferry14";
    let r = remote();
    r.reset(user);
    let p = project(user);
    p.ferry(&["deploy"]).assert_code(0);
    p.write("msg", "two\n");
    p.ferry(&["deploy"]).assert_code(0);
    // The third release: two are kept, so the oldest is pruned.
    p.write("msg", "three\n");

    let dry = p.ferry(&["--output", "json", "deploy", "--dry-run"]);
    dry.assert_code(0);
    let planned = planned_steps(&dry);
    let names: Vec<&str> = planned
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        vec![
            "lock", "stage", "reuse", "upload", "seal", "activate", "verify", "health", "confirm"
        ],
        "{dry}"
    );
    // The seal's command also arms the self-revert (the unit files are those of the current,
    // verified release: not checked again); the confirmation's also prunes.
    let step = |name: &str| planned.iter().find(|s| s["step"] == name).unwrap().clone();
    assert!(step("seal").get("units").is_none(), "{dry}");
    assert!(step("seal")["arm_revert"]["after_ms"].is_u64(), "{dry}");
    assert_eq!(
        step("confirm")["prune"].as_array().map(Vec::len),
        Some(1),
        "{dry}"
    );
    // The human dry run lists the same steps.
    let human = p.ferry(&["deploy", "--dry-run"]);
    human.assert_code(0);
    for n in &names {
        assert!(
            human.stdout.contains("step") && human.stdout.contains(n),
            "{n}: {human}"
        );
    }

    let run = p.ferry(&["--output", "json", "deploy"]);
    run.assert_code(0);
    let executed: Vec<serde_json::Value> = run.events("step").iter().map(step_shape).collect();
    assert_eq!(
        executed, planned,
        "executed steps differ from the plan\n{run}"
    );
    // The indexes are the plan's positions, in order.
    let idx: Vec<u64> = run
        .events("step")
        .iter()
        .map(|s| s["index"].as_u64().unwrap())
        .collect();
    assert_eq!(idx, (0..planned.len() as u64).collect::<Vec<_>>());
    // And they did what they say: the new content is live, the old release was pruned.
    assert_eq!(
        r.ssh(user, "cat ~/.local/share/ferry/app/current/msg"),
        "three\n"
    );
    let releases = r.ssh(user, "ls ~/.local/share/ferry/app/releases");
    assert_eq!(releases.lines().count(), 2, "{releases}");

    a_killed_deploy_is_refused_until_confirmed(&p, user);
}

/// A deploy killed while its release is live but unconfirmed leaves the self-revert armed:
/// the plan of the next deploy is a refusal, and that deploy changes nothing.
fn a_killed_deploy_is_refused_until_confirmed(p: &Project, user: &str) {
    let r = remote();
    let cfg = std::fs::read_to_string(p.path("deploy.toml")).unwrap();
    p.config(&cfg.replace(
        "command = \"tool\"\ntimeout = \"5s\"",
        "command = \"tool && sleep 60\"\ntimeout = \"90s\"",
    ));
    let cfg = std::fs::read_to_string(p.path("deploy.toml")).unwrap();
    p.config(&cfg.replace(
        "keep_releases = 2",
        "keep_releases = 2\nconfirm_timeout = \"10m\"",
    ));
    p.write("msg", "four\n");
    let mut child = p
        .command(&["deploy"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::BufRead;
        let lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
        let seen = lines
            .map_while(Result::ok)
            .any(|l| l.contains("running health checks"));
        assert!(seen, "the deploy never reached its health checks");
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let unconfirmed = current(user);
    let state = || {
        r.ssh(
            user,
            "cd ~/.local/share/ferry/app && readlink current; ls releases; cat history.jsonl | wc -l; systemctl --user is-active ferry-revert-app.timer",
        )
    };
    let before = state();
    assert!(before.ends_with("active\n"), "{before}");
    let dry = p.ferry(&["--output", "json", "deploy", "--dry-run"]);
    dry.assert_code(1);
    let planned = planned_steps(&dry);
    let names: Vec<&str> = planned
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["lock", "refuse"], "{dry}");
    assert_eq!(planned[1]["why"], "pending-revert", "{dry}");
    let run = p.ferry(&["--output", "json", "deploy"]);
    run.assert_code(1);
    let res = &run.events("result")[0];
    assert_eq!(res["result"], "refused", "{run}");
    assert!(
        res["reason"].as_str().unwrap().contains("never confirmed"),
        "{run}"
    );
    let executed: Vec<String> = run
        .events("step")
        .iter()
        .map(|s| s["step"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(executed, vec!["lock", "refuse"], "{run}");
    assert_eq!(state(), before, "a refused deploy changed the host");
    assert_eq!(current(user), unconfirmed);
    // Confirming the current release ends the refusal.
    let id = unconfirmed.trim_start_matches("releases/").to_string();
    p.ferry(&["rollback", "app", "--to", &id]).assert_code(0);
    p.ferry(&["deploy", "--dry-run"]).assert_code(0);
}

#[test]
fn a_held_lock_is_a_refusal_in_the_plan_and_the_deploy() {
    let user = "ferry16";
    let r = remote();
    r.reset(user);
    let p = project(user);
    p.ferry(&["deploy"]).assert_code(0);
    let before = current(user);
    p.write("msg", "two\n");

    let held = r.hold(
        user,
        "cd ~/.local/share/ferry/app && exec flock lock sh -c 'echo \"someone@else (deploy, since now)\" > lock.info; echo held; exec cat >/dev/null'",
        "held",
    );
    let dry = p.ferry(&["--output", "json", "deploy", "--dry-run"]);
    dry.assert_code(5);
    let planned = planned_steps(&dry);
    assert_eq!(planned.len(), 1, "{dry}");
    assert_eq!(planned[0]["step"], "refuse");
    assert_eq!(planned[0]["why"], "locked");
    assert!(
        planned[0]["reason"]
            .as_str()
            .unwrap()
            .contains("someone@else"),
        "{dry}"
    );
    let res = &dry.events("result")[0];
    assert_eq!(res["result"], "refused", "{dry}");

    let run = p.ferry(&["--output", "json", "deploy"]);
    run.assert_code(5);
    assert_eq!(run.events("result")[0]["result"], "locked", "{run}");
    assert!(run.events("step").is_empty(), "{run}");
    // Nothing changed on the host.
    assert_eq!(current(user), before);
    assert_eq!(
        r.ssh(user, "cat ~/.local/share/ferry/app/current/msg"),
        "one\n"
    );
    assert_eq!(
        r.ssh(user, "ls -A ~/.local/share/ferry/app/releases")
            .lines()
            .count(),
        1
    );

    drop(held);
    p.ferry(&["deploy"]).assert_code(0);
    assert_ne!(current(user), before);
}

/// A CI job that runs again must not restart production: the same release, current and up, is
/// "unchanged" (no new release, no restart); `--force` deploys anyway; a stopped unit is not
/// "up", so the deploy goes ahead.
#[test]
fn redeploying_what_is_current_and_up_is_a_no_op() {
    let user = "ferry42";
    let r = remote();
    r.reset(user);
    let p = project(user);
    p.ferry(&["deploy"]).assert_code(0);
    let invocation = || r.unit_prop(user, "app.service", "InvocationID");
    let releases = || r.ssh(user, "ls ~/.local/share/ferry/app/releases");
    let (inv, rels, cur) = (invocation(), releases(), current(user));

    let run = p.ferry(&["--output", "json", "deploy"]);
    run.assert_code(0);
    let res = &run.events("result")[0];
    assert_eq!(res["result"], "unchanged", "{run}");
    let steps: Vec<String> = run
        .events("step")
        .iter()
        .map(|s| s["step"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(steps, vec!["lock", "unchanged"], "{run}");
    assert_eq!(invocation(), inv, "the unit was restarted");
    assert_eq!(releases(), rels, "a new release was made");
    assert_eq!(current(user), cur);
    let dry = p.ferry(&["--output", "json", "deploy", "--dry-run"]);
    dry.assert_code(0);
    let planned: Vec<String> = planned_steps(&dry)
        .iter()
        .map(|s| s["step"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(planned, vec!["lock", "unchanged"], "{dry}");

    // --force: a new release, restarted.
    let run = p.ferry(&["--output", "json", "deploy", "--force"]);
    run.assert_code(0);
    assert_eq!(run.events("result")[0]["result"], "ok", "{run}");
    assert_ne!(current(user), cur);
    let inv2 = invocation();
    assert_ne!(inv2, inv);

    // A stopped unit is not up: the same content is deployed again and the unit runs.
    r.ssh(user, "systemctl --user stop app.service");
    let run = p.ferry(&["--output", "json", "deploy"]);
    run.assert_code(0);
    assert_eq!(run.events("result")[0]["result"], "ok", "{run}");
    assert_eq!(r.unit_prop(user, "app.service", "ActiveState"), "active");

    // The release's stat record lets a redeploy trust the hashes of untouched files; a file
    // edited on the host (same size, other bytes) is hashed again: not the deployed content,
    // so the deploy is no no-op, and the file is uploaded, not copied from the host.
    let rec = r.ssh(
        user,
        "cat ~/.local/share/ferry/app/current/.ferry/files.stat",
    );
    assert_eq!(rec.lines().count(), 2, "{rec}");
    assert!(
        rec.lines().any(|l| l.ends_with(" msg")) && rec.lines().any(|l| l.ends_with(" bin/tool")),
        "{rec}"
    );
    r.ssh(
        user,
        "printf 'ONE\\n' > ~/.local/share/ferry/app/current/msg",
    );
    let run = p.ferry(&["--output", "json", "deploy"]);
    run.assert_code(0);
    assert_eq!(run.events("result")[0]["result"], "ok", "{run}");
    let steps = run.events("step");
    let upload = steps
        .iter()
        .find(|s| s["step"] == "upload")
        .unwrap_or_else(|| panic!("no upload step\n{run}"));
    assert_eq!(
        upload["files"],
        serde_json::json!(["msg"]),
        "only the edited file is uploaded\n{run}"
    );
    assert_eq!(
        r.ssh(user, "cat ~/.local/share/ferry/app/current/msg"),
        "one\n"
    );
}
