//! `ferry promote` when things go wrong, against the real remote: a promote killed (SIGKILL)
//! while the old colour drains, a blue/green promote whose idle colour fails its health
//! check, `--rollback-all-on-failure` over two hosts with one failing, and an after_switch
//! hook whose output holds a secret of the staged release's env.

use crate::faults::Bg;
use crate::staged::{last_history, link, plain_config, result_of};
use crate::support::{Project, demo_bin, host_table, remote};

/// The blue/green demo service of `user`: front `listen`, colours `ports`; `health_extra` adds
/// lines to its `[services.web.health]`.
fn blue_green_config(p: &Project, user: &str, listen: u16, ports: [u16; 2], health_extra: &str) {
    std::fs::copy(demo_bin(), p.path("ferry-demo")).unwrap();
    p.config(&format!(
        "{}[services.web]\nstart_timeout = \"10s\"\nsettle_time = \"0.5s\"\nconfirm_timeout = \"30s\"\n\
         [services.web.run]\ncommand = \"bin/ferry-demo --listen 127.0.0.1:${{PORT}} --message message.txt\"\n\n\
         [services.web.switch]\nlisten = \"127.0.0.1:{listen}\"\nports = [{}, {}]\ndrain = \"10s\"\n\n\
         [services.web.health]\nhttp = \"http://127.0.0.1:{listen}/healthz\"\ntimeout = \"5s\"\ninterval = \"100ms\"\n{health_extra}\n\
         [[services.web.files]]\nsource = \"ferry-demo\"\ndest = \"bin/ferry-demo\"\nmode = \"0755\"\n\n\
         [[services.web.files]]\nsource = \"message.txt\"\ndest = \"message.txt\"\n",
        host_table("h", user),
        ports[0],
        ports[1],
    ));
}

fn live(user: &str) -> String {
    remote()
        .ssh(user, "readlink ~/.local/share/ferry/web/live.sock")
        .trim()
        .to_string()
}

/// A staged green whose health check fails on promote: the front stays on blue, which still
/// serves; exit 4, `promote rolled-back` in the history, nothing staged any more.
fn failed_blue_green_promote_goes_back(user: &str, p: &Project, listen: u16, ports: [u16; 2]) {
    let r = remote();
    let first = link(user, "current");
    // Staged with one more check, which passes now and fails once ~/unhealthy exists.
    blue_green_config(
        p,
        user,
        listen,
        ports,
        "command = \"test ! -e $HOME/unhealthy\"\n",
    );
    p.write("message.txt", "release 2\n");
    p.ferry(&["deploy", "--no-switch"]).assert_code(0);
    let second = link(user, "staged");
    assert_eq!(r.http_get(ports[1], "/").as_deref(), Some("release 2\n"));
    r.ssh(user, "touch ~/unhealthy");
    let failed = p.ferry(&["--output", "json", "promote"]);
    failed.assert_code(4);
    let res = result_of(&failed, "h");
    assert_eq!(res["result"], "rolled-back", "{failed}");
    assert!(
        res["reason"]
            .as_str()
            .is_some_and(|w| w.contains("test ! -e")),
        "{failed}"
    );
    assert_eq!(r.http_get(listen, "/").as_deref(), Some("release 1\n"));
    assert_eq!(r.http_get(ports[0], "/").as_deref(), Some("release 1\n"));
    assert_eq!(live(user), "blue.sock");
    assert_eq!(link(user, "current"), first);
    assert_eq!(link(user, "staged"), "");
    let h = last_history(user);
    assert_eq!(
        (&h["action"], &h["outcome"], &h["release"]),
        (
            &"promote".into(),
            &"rolled-back".into(),
            &second.as_str().into()
        ),
        "{h}"
    );
    r.ssh(user, "rm ~/unhealthy");
}

/// ferry killed (SIGKILL) during a promote's activation, once the front moved and the old
/// colour drains: the front keeps serving; the self-revert puts the old release back; the
/// next promote and deploy work.
fn promote_killed_while_draining(user: &str, p: &Project, listen: u16, ports: [u16; 2]) {
    let r = remote();
    let first = link(user, "current");
    blue_green_config(p, user, listen, ports, "");
    p.write("message.txt", "release 3\n");
    p.ferry(&["deploy", "--no-switch"]).assert_code(0);
    let third = link(user, "staged");
    let mut bg = Bg::spawn(p, &["promote"], &[]);
    bg.wait_for_line("drains for");
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &bg.pid().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let run = bg.finish();
    assert_ne!(run.code, 0, "{run}");
    // Killed mid-way: the front had moved and still serves, both colours run.
    assert_eq!(r.http_get(listen, "/").as_deref(), Some("release 3\n"));
    assert_eq!(
        r.unit_prop(user, "web@blue.service", "ActiveState"),
        "active"
    );
    // Never confirmed: the self-revert (confirm_timeout 30s) puts the old release back.
    let h = r.poll("the self-revert to put release 1 back", 900, || {
        let h = last_history(user);
        (h["action"] == "revert").then_some(h)
    });
    assert_eq!(
        (&h["outcome"], &h["release"], &h["previous"]),
        (
            &"reverted".into(),
            &first.as_str().into(),
            &third.as_str().into()
        ),
        "{h}"
    );
    assert_eq!(r.http_get(listen, "/").as_deref(), Some("release 1\n"));
    assert_eq!(link(user, "current"), first);
    assert_eq!(live(user), "blue.sock");
    // The staged release is still staged on top of release 1: promote works.
    assert_eq!(link(user, "staged"), third);
    let promoted = p.ferry(&["promote", "--lock-wait", "30s"]);
    promoted.assert_code(0);
    assert_eq!(r.http_get(listen, "/").as_deref(), Some("release 3\n"));
    assert_eq!(link(user, "current"), third);
    assert_eq!(last_history(user)["action"], "promote");
    p.write("message.txt", "release 4\n");
    p.ferry(&["deploy"]).assert_code(0);
    assert_eq!(r.http_get(listen, "/").as_deref(), Some("release 4\n"));
}

/// Blue/green on one host: a promote failing its health check, then a promote killed.
fn blue_green(user: &str) {
    let r = remote();
    let (listen, ports) = (19970, [19971, 19972]);
    r.reset(user);
    let p = Project::new();
    blue_green_config(&p, user, listen, ports, "");
    p.write("message.txt", "release 1\n");
    p.ferry(&["deploy"]).assert_code(0);
    assert_eq!(live(user), "blue.sock");
    failed_blue_green_promote_goes_back(user, &p, listen, ports);
    promote_killed_while_draining(user, &p, listen, ports);
}

/// Two hosts staged, b's release broken: `promote --rollback-all-on-failure` puts a (promoted)
/// back too; both serve the old release.
fn rollback_all_on_failure(users: [&str; 2]) {
    let r = remote();
    let ports = [19960, 19961];
    for (u, port) in users.iter().zip(ports) {
        r.reset(u);
        r.ssh(u, &format!("echo {port} > ~/port"));
    }
    let p = Project::new();
    plain_config(&p, users, "");
    p.write("message.txt", "release 1\n");
    p.ferry(&["deploy"]).assert_code(0);
    let first: Vec<String> = users.iter().map(|u| link(u, "current")).collect();
    p.write("message.txt", "release 2\n");
    p.ferry(&["deploy", "--no-switch", "-H", "a"])
        .assert_code(0);
    std::fs::write(p.path("ferry-demo"), "#!/bin/sh\nexit 3\n").unwrap();
    p.ferry(&["deploy", "--no-switch", "-H", "b"])
        .assert_code(0);
    let promoted = p.ferry(&["--output", "json", "promote", "--rollback-all-on-failure"]);
    promoted.assert_code(4);
    for host in ["a", "b"] {
        assert_eq!(
            result_of(&promoted, host)["result"],
            "rolled-back",
            "{promoted}"
        );
    }
    assert_eq!(promoted.events("rollout")[0]["put_back"], 1, "{promoted}");
    for (i, u) in users.iter().enumerate() {
        assert_eq!(r.http_get(ports[i], "/").as_deref(), Some("release 1\n"));
        assert_eq!(link(u, "current"), first[i], "{promoted}");
    }
    let a = last_history(users[0]);
    assert_eq!(
        (&a["action"], &a["outcome"]),
        (&"rollback".into(), &"ok".into()),
        "{a}"
    );
    assert!(
        a["reason"]
            .as_str()
            .is_some_and(|w| w.contains("--rollback-all-on-failure")),
        "{a}"
    );
    let b = last_history(users[1]);
    assert_eq!(
        (&b["action"], &b["outcome"]),
        (&"promote".into(), &"rolled-back".into()),
        "{b}"
    );
}

/// The after_switch hook of a promote prints a secret of the staged release's env: shown as
/// `***` (the value the host holds, though ferry's own environment no longer has it); a
/// literal value of deploy.toml is shown as is.
fn after_switch_output_is_masked(user: &str) {
    let r = remote();
    let port = 19961;
    r.reset(user);
    r.ssh(user, &format!("echo {port} > ~/port"));
    let p = Project::new();
    std::fs::copy(demo_bin(), p.path("ferry-demo")).unwrap();
    p.write(
        "web.service",
        "[Service]\nExecStart=/bin/sh -c 'exec %h/.local/share/ferry/web/current/bin/ferry-demo --listen 127.0.0.1:$(cat %h/port) --message %h/.local/share/ferry/web/current/share/message.txt'\n",
    );
    p.config(&format!(
        "{}[services.web]\nunits = [\"web.service\"]\nsettle_time = \"0.5s\"\n\
         [services.web.env]\nAPI_TOKEN = {{ env = \"FERRY_H3_TOKEN\" }}\nLEVEL = \"plain-level\"\n\
         [services.web.hooks]\nafter_switch = \"echo token=$API_TOKEN level=$LEVEL; echo to-stderr $API_TOKEN >&2\"\n\
         [[services.web.files]]\nsource = \"ferry-demo\"\ndest = \"bin/ferry-demo\"\nmode = \"0755\"\n\
         [[services.web.files]]\nsource = \"message.txt\"\ndest = \"share/message.txt\"\n",
        host_table("h", user),
    ));
    p.write("message.txt", "release 1\n");
    p.ferry_env(&["deploy"], &[("FERRY_H3_TOKEN", "tok-first-111")])
        .assert_code(0);
    p.write("message.txt", "release 2\n");
    p.ferry_env(
        &["deploy", "--no-switch"],
        &[("FERRY_H3_TOKEN", "tok-staged-222")],
    )
    .assert_code(0);
    let promoted = p.ferry(&["--output", "json", "promote"]);
    promoted.assert_code(0);
    assert_eq!(r.http_get(port, "/").as_deref(), Some("release 2\n"));
    let lines: Vec<(String, String)> = promoted
        .events("hook")
        .iter()
        .filter_map(|e| Some((e["stream"].as_str()?.into(), e["line"].as_str()?.into())))
        .collect();
    assert_eq!(
        lines,
        [
            ("stdout".into(), "token=*** level=plain-level".into()),
            ("stderr".into(), "to-stderr ***".into())
        ],
        "{promoted}"
    );
    assert!(
        !promoted.stdout.contains("tok-staged-222") && !promoted.stderr.contains("tok-staged-222"),
        "{promoted}"
    );
    // The hook did see the value.
    assert_eq!(
        r.ssh(
            user,
            ". ~/.local/share/ferry/web/current/.ferry/env; echo $API_TOKEN"
        )
        .trim(),
        "tok-staged-222"
    );
}

/// All four, sharing this module's two remote users: the two-host one first, then the
/// blue/green one on the first user while the masking one runs on the second.
#[test]
fn promote_killed_failed_rolled_back_all_and_masked() {
    let users = ["ferry118", "ferry119"];
    rollback_all_on_failure(users);
    std::thread::scope(|s| {
        s.spawn(|| blue_green(users[0]));
        s.spawn(|| after_switch_output_is_masked(users[1]));
    });
}
