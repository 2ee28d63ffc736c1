//! Staged releases: `ferry deploy --no-switch` then `ferry promote`, on two hosts (a plain
//! service) and on one blue/green host, against the real remote: what serves, where `current`
//! and `staged` point, what the history says, and the refusals.

use crate::support::{Project, Run, demo_bin, host_table, remote};

/// Where `NAME` (`current`, `staged`) of service `web` points on `user`'s host ("" if nowhere).
pub(crate) fn link(user: &str, name: &str) -> String {
    remote()
        .ssh(
            user,
            &format!("readlink ~/.local/share/ferry/web/{name} || true"),
        )
        .trim()
        .trim_start_matches("releases/")
        .to_string()
}

/// The last line of the service's history on `user`'s host.
pub(crate) fn last_history(user: &str) -> serde_json::Value {
    let h = remote().ssh(user, "tail -n 1 ~/.local/share/ferry/web/history.jsonl");
    serde_json::from_str(h.trim()).unwrap_or_else(|e| panic!("{e}: {h}"))
}

/// The `result` event of `host`.
pub(crate) fn result_of(run: &Run, host: &str) -> serde_json::Value {
    run.events("result")
        .into_iter()
        .find(|e| e["host"] == host)
        .unwrap_or_else(|| panic!("no result for {host}\n{run}"))
}

/// Two hosts (one user each) running the demo server on a port of their own.
pub(crate) fn plain_config(p: &Project, users: [&str; 2], extra: &str) {
    std::fs::copy(demo_bin(), p.path("ferry-demo")).unwrap();
    p.write(
        "web.service",
        "[Service]\nExecStart=/bin/sh -c 'exec %h/.local/share/ferry/web/current/bin/ferry-demo --listen 127.0.0.1:$(cat %h/port) --message %h/.local/share/ferry/web/current/share/message.txt'\n",
    );
    p.config(&format!(
        "{}{}[services.web]\nunits = [\"web.service\"]\nsettle_time = \"0.5s\"\n\
         [[services.web.files]]\nsource = \"ferry-demo\"\ndest = \"bin/ferry-demo\"\nmode = \"0755\"\n\
         [[services.web.files]]\nsource = \"message.txt\"\ndest = \"share/message.txt\"\n{extra}",
        host_table("a", users[0]),
        host_table("b", users[1]),
    ));
}

/// The plain service on two hosts: staged, listed, promoted, promoted again (nothing staged),
/// and a promote refused on the host whose `current` changed since it was staged.
fn promote_on_two_hosts(users: [&str; 2]) {
    let r = remote();
    let ports = [19701, 19702];
    for (u, port) in users.iter().zip(ports) {
        r.reset(u);
        r.ssh(u, &format!("echo {port} > ~/port"));
    }
    let p = Project::new();
    plain_config(&p, users, "");
    p.write("message.txt", "release 1\n");
    p.ferry(&["deploy"]).assert_code(0);
    let first: Vec<String> = users.iter().map(|u| link(u, "current")).collect();
    let pids: Vec<String> = users
        .iter()
        .map(|u| r.unit_prop(u, "web.service", "InvocationID"))
        .collect();

    // Staged: the old release still serves, `current` and the running unit are unchanged.
    p.write("message.txt", "release 2\n");
    let staged = p.ferry(&["--output", "json", "deploy", "--no-switch"]);
    staged.assert_code(0);
    let steps: Vec<String> = staged
        .events("step")
        .iter()
        .map(|s| s["step"].as_str().unwrap().to_string())
        .collect();
    assert!(steps.contains(&"staged".to_string()), "{staged}");
    assert!(
        !steps.iter().any(|s| s == "activate" || s == "confirm"),
        "{staged}"
    );
    let mut second = String::new();
    for (i, u) in users.iter().enumerate() {
        assert_eq!(r.http_get(ports[i], "/").as_deref(), Some("release 1\n"));
        assert_eq!(link(u, "current"), first[i], "current moved on {u}");
        assert_eq!(
            r.unit_prop(u, "web.service", "InvocationID"),
            pids[i],
            "restarted on {u}"
        );
        second = link(u, "staged");
        assert!(second > first[i], "staged on {u}: {second:?}");
        let h = last_history(u);
        assert_eq!(
            (&h["action"], &h["outcome"]),
            (&"stage".into(), &"staged".into()),
            "{h}"
        );
        assert_eq!(h["previous"], first[i].as_str(), "{h}");
    }
    let listed = p.ferry(&["--output", "json", "releases"]);
    listed.assert_code(0);
    let marked: Vec<(String, String)> = listed
        .events("release")
        .iter()
        .filter(|e| e["staged"] == true)
        .map(|e| {
            (
                e["host"].as_str().unwrap().into(),
                e["id"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(marked.len(), 2, "{listed}");
    assert!(marked.iter().all(|(_, id)| *id == second), "{listed}");
    let human = p.ferry(&["releases"]);
    assert!(human.stdout.contains("+ staged"), "{human}");

    // A dry run says what it would do and changes nothing.
    let dry = p.ferry(&["promote", "--dry-run"]);
    dry.assert_code(0);
    assert!(dry.stdout.contains("would switch from"), "{dry}");
    assert_eq!(link(users[0], "current"), first[0]);

    // Promoted: the new release serves, the history says so, the staged link is gone.
    let promoted = p.ferry(&["--output", "json", "promote", "web"]);
    promoted.assert_code(0);
    assert_eq!(promoted.events("result").len(), 2, "{promoted}");
    assert!(
        promoted
            .events("result")
            .iter()
            .all(|e| e["result"] == "ok"),
        "{promoted}"
    );
    assert_eq!(promoted.events("rollout")[0]["deployed"], 2, "{promoted}");
    for (i, u) in users.iter().enumerate() {
        assert_eq!(r.http_get(ports[i], "/").as_deref(), Some("release 2\n"));
        assert_eq!(link(u, "current"), second);
        assert_eq!(link(u, "staged"), "");
        let h = last_history(u);
        assert_eq!(
            (&h["action"], &h["outcome"]),
            (&"promote".into(), &"ok".into()),
            "{h}"
        );
        assert_eq!(
            (&h["release"], &h["previous"]),
            (&second.as_str().into(), &first[i].as_str().into()),
            "{h}"
        );
    }

    // Nothing staged any more: said, exit 1, nothing changed.
    let again = p.ferry(&["promote"]);
    again.assert_code(1);
    assert!(again.stdout.contains("nothing staged for web"), "{again}");
    assert_eq!(r.http_get(ports[0], "/").as_deref(), Some("release 2\n"));

    // Staged on both, then host a deploys another release: a's promote is refused, naming
    // both releases; b is promoted.
    p.write("message.txt", "release 3\n");
    p.ferry(&["deploy", "--no-switch"]).assert_code(0);
    let third = link(users[0], "staged");
    p.write("message.txt", "release 4\n");
    p.ferry(&["deploy", "-H", "a"]).assert_code(0);
    let fourth = link(users[0], "current");
    // As a rollout: with a canary, a's refusal stops it; b is not reached and keeps its
    // staged release.
    plain_config(&p, users, "[services.web.rollout]\ncanary = 1\n");
    let stopped = p.ferry(&["--output", "json", "promote"]);
    stopped.assert_code(1);
    assert_eq!(
        result_of(&stopped, "b")["result"],
        "not-reached",
        "{stopped}"
    );
    assert_eq!(stopped.events("rollout")[0]["not_reached"], 1, "{stopped}");
    assert_eq!(r.http_get(ports[1], "/").as_deref(), Some("release 2\n"));
    assert_eq!(link(users[1], "staged"), third);
    plain_config(&p, users, "");
    let mixed = p.ferry(&["--output", "json", "promote"]);
    mixed.assert_code(1);
    let a = result_of(&mixed, "a");
    let why = a["reason"].as_str().unwrap_or_default();
    assert_eq!(a["result"], "refused", "{mixed}");
    assert!(
        why.contains(&format!("{third} was staged on top of {second}"))
            && why.contains(&format!("current release is now {fourth}")),
        "{mixed}"
    );
    assert_eq!(result_of(&mixed, "b")["result"], "ok", "{mixed}");
    assert_eq!(r.http_get(ports[0], "/").as_deref(), Some("release 4\n"));
    assert_eq!(r.http_get(ports[1], "/").as_deref(), Some("release 3\n"));
    assert_eq!(link(users[0], "staged"), third, "a keeps its staged link");

    // A staged release that fails once live: promote goes back to the release the host had
    // (exit 4), which serves again; the history says so.
    let (b, before) = (users[1], link(users[1], "current"));
    std::fs::write(p.path("ferry-demo"), "#!/bin/sh\nexit 3\n").unwrap();
    p.write("message.txt", "release 5\n");
    p.ferry(&["deploy", "--no-switch", "-H", "b"])
        .assert_code(0);
    let broken = link(b, "staged");
    let failed = p.ferry(&["--output", "json", "promote", "-H", "b"]);
    failed.assert_code(4);
    assert_eq!(result_of(&failed, "b")["result"], "rolled-back", "{failed}");
    assert_eq!(link(b, "current"), before);
    assert_eq!(r.http_get(ports[1], "/").as_deref(), Some("release 3\n"));
    let h = last_history(b);
    assert_eq!(
        (&h["action"], &h["outcome"], &h["release"]),
        (
            &"promote".into(),
            &"rolled-back".into(),
            &broken.as_str().into()
        ),
        "{h}"
    );
    assert_eq!(
        link(b, "staged"),
        "",
        "a failed promote leaves nothing staged"
    );
}

/// Blue/green: staging starts the idle colour on the new release and checks it there, the
/// front stays; promote moves the front and stops the old colour.
fn blue_green_promote(user: &str) {
    let r = remote();
    let (listen, ports) = (19710, [19711, 19712]);
    r.reset(user);
    let p = Project::new();
    std::fs::copy(demo_bin(), p.path("ferry-demo")).unwrap();
    p.config(&format!(
        "{}[services.web]\nstart_timeout = \"20s\"\nsettle_time = \"0.5s\"\n\
         [services.web.run]\ncommand = \"bin/ferry-demo --listen 127.0.0.1:${{PORT}} --message message.txt\"\n\n\
         [services.web.switch]\nlisten = \"127.0.0.1:{listen}\"\nports = [{}, {}]\ndrain = \"1s\"\n\n\
         [services.web.health]\nhttp = \"http://127.0.0.1:{listen}/healthz\"\ntimeout = \"20s\"\ninterval = \"100ms\"\n\n\
         [[services.web.files]]\nsource = \"ferry-demo\"\ndest = \"bin/ferry-demo\"\nmode = \"0755\"\n\n\
         [[services.web.files]]\nsource = \"message.txt\"\ndest = \"message.txt\"\n",
        host_table("h", user),
        ports[0],
        ports[1],
    ));
    p.write("message.txt", "release 1\n");
    p.ferry(&["deploy"]).assert_code(0);
    let live = || {
        r.ssh(user, "readlink ~/.local/share/ferry/web/live.sock")
            .trim()
            .to_string()
    };
    assert_eq!(live(), "blue.sock");
    let first = link(user, "current");

    p.write("message.txt", "release 2\n");
    let staged = p.ferry(&["--output", "json", "deploy", "--no-switch"]);
    staged.assert_code(0);
    let steps: Vec<String> = staged
        .events("step")
        .iter()
        .map(|s| s["step"].as_str().unwrap().to_string())
        .collect();
    assert!(
        steps.contains(&"health".into()) && steps.last().map(String::as_str) == Some("staged"),
        "{staged}"
    );
    // The front still serves the old release; green, on its own port, serves the new one.
    assert_eq!(r.http_get(listen, "/").as_deref(), Some("release 1\n"));
    assert_eq!(r.http_get(ports[1], "/").as_deref(), Some("release 2\n"));
    assert_eq!(live(), "blue.sock");
    assert_eq!(link(user, "current"), first);
    let second = link(user, "staged");
    assert!(second > first, "{second}");

    let promoted = p.ferry(&["promote"]);
    promoted.assert_code(0);
    assert_eq!(r.http_get(listen, "/").as_deref(), Some("release 2\n"));
    assert_eq!(live(), "green.sock");
    assert_eq!(link(user, "current"), second);
    assert_eq!(link(user, "staged"), "");
    r.poll("blue stopped after its drain", 100, || {
        (r.unit_prop(user, "web@blue.service", "ActiveState") != "active").then_some(())
    });
    assert_eq!(last_history(user)["action"], "promote");

    // Staged on blue, whose process then stopped: promote starts it again on the staged
    // release next to the live colour and moves the front once it answers.
    p.write("message.txt", "release 3\n");
    p.ferry(&["deploy", "--no-switch"]).assert_code(0);
    let third = link(user, "staged");
    assert_eq!(r.http_get(ports[0], "/").as_deref(), Some("release 3\n"));
    r.ssh(user, "systemctl --user stop web@blue.service");
    let promoted = p.ferry(&["promote"]);
    promoted.assert_code(0);
    assert_eq!(r.http_get(listen, "/").as_deref(), Some("release 3\n"));
    assert_eq!(live(), "blue.sock");
    assert_eq!(link(user, "current"), third);
}

/// Both scenarios, one after the other: they share the two remote users of this module.
#[test]
fn promote_after_no_switch_on_two_hosts_and_blue_green() {
    let users = ["ferry97", "ferry98"];
    promote_on_two_hosts(users);
    blue_green_promote(users[0]);
}
