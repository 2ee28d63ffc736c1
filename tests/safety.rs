//! Safe deploys against the real remote: health checks, automatic and self-arming rollback,
//! locks, release history and pruning.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::{Project, Run, host_table, remote};

/// A service that serves its release's `www/` directory over HTTP on `port` (python3 on the
/// host), and over a unix socket through systemd-socket-proxyd. `current` is resolved once,
/// when the server starts (it runs in, and serves, that release directory), so what it serves
/// is the release it *started* from: a deploy or rollback that does not restart it shows.
fn web_service(p: &Project, service: &str, port: u16) {
    p.write(
        &format!("{service}.service"),
        format!(
            "[Service]\nExecStart=/bin/sh -c 'cd \"$$(readlink -f %h/.local/share/ferry/{service}/current)\" && exec /usr/bin/python3 -m http.server {port} --bind 127.0.0.1 --directory www'\n"
        ),
    );
    // unix socket -> TCP, for the unix_http check.
    p.write(
        &format!("{service}-unix.socket"),
        format!("[Socket]\nListenStream=%t/{service}.sock\n[Install]\nWantedBy=sockets.target\n"),
    );
    p.write(
        &format!("{service}-unix.service"),
        format!(
            "[Unit]\nRequires={service}-unix.socket\nAfter={service}-unix.socket\n[Service]\nExecStart=/lib/systemd/systemd-socket-proxyd 127.0.0.1:{port}\n"
        ),
    );
}

fn release(p: &Project, version: &str, healthy: bool) {
    p.write("www/index.html", format!("{version}\n"));
    let health = p.path("www/healthz");
    if healthy {
        p.write("www/healthz", "ok\n");
    } else if health.exists() {
        std::fs::remove_file(health).unwrap();
    }
}

fn config(p: &Project, user: &str, service: &str, health: &str, extra: &str) {
    let mut files = String::new();
    for f in ["index.html", "healthz"] {
        if p.path(&format!("www/{f}")).exists() {
            files.push_str(&format!(
                "[[services.{service}.files]]\nsource = \"www/{f}\"\ndest = \"www/{f}\"\n"
            ));
        }
    }
    p.config(&format!(
        "{}[services.{service}]\nunits = [\"{service}.service\", \"{service}-unix.socket\", \"{service}-unix.service\"]\n\
         restart = [\"{service}.service\"]\nstart_timeout = \"10s\"\n{extra}\n\
         [services.{service}.health]\n{health}\ntimeout = \"4s\"\ninterval = \"200ms\"\n\n{files}",
        host_table("web1", user)
    ));
}

/// A ferry run in the background, started and waited for until its stderr shows `marker`.
struct Background {
    child: std::process::Child,
    rest: std::thread::JoinHandle<Vec<String>>,
    seen: Vec<String>,
}

fn spawn_until(p: &Project, args: &[&str], marker: &str) -> Background {
    let mut child = p
        .command(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        seen.push(line.clone());
        if line.contains(marker) {
            break;
        }
    }
    assert!(
        seen.last().is_some_and(|l| l.contains(marker)),
        "ferry {args:?} never printed {marker:?}: {seen:#?}"
    );
    let rest = std::thread::spawn(move || lines.map_while(Result::ok).collect());
    Background { child, rest, seen }
}

impl Background {
    /// Wait for the end; the exit code.
    fn finish(mut self) -> i32 {
        let status = self.child.wait().unwrap();
        let rest = self.rest.join().unwrap();
        if status.code() != Some(0) {
            eprintln!("background ferry: {:#?}\n{rest:#?}", self.seen);
        }
        status.code().unwrap_or(-1)
    }

    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

fn json_result(run: &Run) -> serde_json::Value {
    run.events("result")
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no result event\n{run}"))
}

fn serving(port: u16) -> Option<String> {
    // python's http.server may need a moment after a restart.
    for _ in 0..20 {
        if let Some(body) = remote().http_get(port, "/") {
            return Some(body);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

/// Health checks (http, unix_http, command) pass and fail; a failed check rolls back to the
/// previous release, which serves again; history, rollback --to and pruning.
#[test]
fn health_checks_rollback_history_and_pruning() {
    let user = "ferry7";
    let port = 18171;
    let r = remote();
    r.reset(user);
    let p = Project::new();
    let svc = "site";
    web_service(&p, svc, port);
    let all_checks = format!(
        "http = \"http://127.0.0.1:{port}/healthz\"\nunix_http = {{ socket = \"%t/{svc}.sock\", path = \"/healthz\" }}\ncommand = \"test -f www/healthz\""
    );

    // v1: healthy; all three checks pass.
    release(&p, "v1", true);
    config(&p, user, svc, &all_checks, "keep_releases = 20");
    let run = p.ferry(&["--output", "json", "deploy"]);
    run.assert_code(0);
    let v1 = json_result(&run)["release"].as_str().unwrap().to_string();
    assert_eq!(serving(port).as_deref(), Some("v1\n"));
    let unit = format!("{svc}.service");
    let home = format!("{}/.local/share/ferry/{svc}/", r.home(user));
    // The release the server process started from, and its InvocationID.
    let started = || {
        r.started_from(user, &unit)
            .strip_prefix(&home)
            .unwrap_or_else(|| panic!("{unit} does not run from a release"))
            .to_string()
    };
    let invocation = || r.unit_prop(user, &unit, "InvocationID");
    assert_eq!(started(), format!("releases/{v1}"));

    // Each check alone fails on a release without /healthz, and the old release serves again.
    for check in [
        format!("http = \"http://127.0.0.1:{port}/healthz\""),
        format!("unix_http = {{ socket = \"%t/{svc}.sock\", path = \"/healthz\" }}"),
        "command = \"test -f www/healthz\"".to_string(),
    ] {
        let good = r
            .ssh(
                user,
                &format!("readlink ~/.local/share/ferry/{svc}/current"),
            )
            .trim()
            .to_string();
        release(&p, "v2-broken", false);
        config(&p, user, svc, &check, "keep_releases = 20");
        let before = invocation();
        let start = Instant::now();
        let run = p.ferry(&["--output", "json", "deploy"]);
        run.assert_code(4);
        let res = json_result(&run);
        assert_eq!(res["result"], "rolled-back", "{run}");
        let reason = res["reason"].as_str().unwrap();
        assert!(reason.contains("health check failed"), "{check}: {reason}");
        let good_id = good.trim_start_matches("releases/");
        assert!(
            reason.contains(&format!("rolled back to {good_id}")),
            "{reason}"
        );
        assert_eq!(serving(port).as_deref(), Some("v1\n"), "{check}");
        let now = r.ssh(
            user,
            &format!("readlink ~/.local/share/ferry/{svc}/current"),
        );
        assert_eq!(now.trim(), good);
        // The server was restarted (on the new release, then on the old one) and runs the
        // old release.
        assert_eq!(started(), good, "{check}");
        assert_ne!(invocation(), before, "{check}: {unit} was not restarted");
        eprintln!(
            "{check}: failed deploy + rollback took {:?}",
            start.elapsed()
        );
        // The same check passes on a healthy release.
        release(&p, "v1", true);
        config(&p, user, svc, &check, "keep_releases = 20");
        p.ferry(&["deploy"]).assert_code(0);
    }
    a_rolled_back_deploy_is_said_and_recorded(&p, user, svc, &all_checks);
    rollback_to_and_back(&p, user, svc, port, &v1, &all_checks);
    pruning_keeps_the_newest_releases(&p, user, svc, &all_checks);
}

/// The human output of a rolled-back deploy has the reason and says ROLLED BACK; the history
/// has every deploy and rollback, in order.
fn a_rolled_back_deploy_is_said_and_recorded(p: &Project, user: &str, svc: &str, all_checks: &str) {
    // The human output of a rolled-back deploy has the reason and says ROLLED BACK.
    release(p, "v3-broken", false);
    config(p, user, svc, all_checks, "keep_releases = 20");
    let run = p.ferry(&["deploy"]);
    run.assert_code(4);
    assert!(
        run.stdout.contains("ROLLED BACK") && run.stdout.contains("health check failed"),
        "{run}"
    );

    // History: every deploy and rollback, in order.
    let run = p.ferry(&["--output", "json", "releases", svc]);
    run.assert_code(0);
    let history = run.events("history");
    let outcomes: Vec<String> = history
        .iter()
        .map(|h| {
            format!(
                "{} {}",
                h["action"].as_str().unwrap(),
                h["outcome"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(outcomes[0], "deploy ok");
    assert_eq!(outcomes[1], "deploy rolled-back");
    assert_eq!(outcomes[2], "rollback ok");
    assert!(
        history
            .iter()
            .all(|h| h["by"].as_str().unwrap().starts_with("tester@")),
        "{run}"
    );
}

/// `rollback --to` the first release, then deploy again: history shows it all in order; a
/// plain `rollback` goes to the previous healthy release.
fn rollback_to_and_back(p: &Project, user: &str, svc: &str, port: u16, v1: &str, all_checks: &str) {
    let r = remote();
    let unit = format!("{svc}.service");
    let home = format!("{}/.local/share/ferry/{svc}/", r.home(user));
    // The release the server process started from, and its InvocationID.
    let started = || {
        r.started_from(user, &unit)
            .strip_prefix(&home)
            .unwrap_or_else(|| panic!("{unit} does not run from a release"))
            .to_string()
    };
    let invocation = || r.unit_prop(user, &unit, "InvocationID");
    // rollback --to the first release, then deploy again: history shows it all in order.
    let before = invocation();
    let run = p.ferry(&["--output", "json", "rollback", svc, "--to", v1]);
    run.assert_code(0);
    assert_eq!(serving(port).as_deref(), Some("v1\n"));
    assert_eq!(started(), format!("releases/{v1}"));
    assert_ne!(invocation(), before, "rollback --to did not restart {unit}");
    release(p, "v4", true);
    config(p, user, svc, all_checks, "keep_releases = 20");
    let run = p.ferry(&["--output", "json", "deploy"]);
    run.assert_code(0);
    let v4 = json_result(&run)["release"].as_str().unwrap().to_string();
    assert_eq!(serving(port).as_deref(), Some("v4\n"));
    assert_eq!(started(), format!("releases/{v4}"));
    let run = p.ferry(&["--output", "json", "releases", svc]);
    let history = run.events("history");
    let n = history.len();
    assert_eq!(history[n - 2]["action"], "rollback");
    assert_eq!(history[n - 2]["release"], v1);
    assert_eq!(history[n - 1]["action"], "deploy");
    assert_eq!(history[n - 1]["outcome"], "ok");
    // Plain `rollback` goes to the previous healthy release.
    let before = invocation();
    p.ferry(&["rollback", svc]).assert_code(0);
    assert_eq!(serving(port).as_deref(), Some("v1\n"));
    assert_eq!(started(), format!("releases/{v1}"));
    assert_ne!(invocation(), before, "rollback did not restart {unit}");
}

/// Pruning: after 7 more deploys with keep_releases = 5, 5 release directories remain, the
/// current one among them; the history survives pruning.
fn pruning_keeps_the_newest_releases(p: &Project, user: &str, svc: &str, all_checks: &str) {
    let r = remote();
    // Pruning: after 7 more deploys with keep_releases = 5, 5 release directories remain,
    // the current one among them; the history survives pruning.
    config(p, user, svc, all_checks, "keep_releases = 5");
    for i in 0..7 {
        release(p, &format!("p{i}"), true);
        p.ferry(&["deploy"]).assert_code(0);
    }
    let dirs = r.ssh(user, &format!("ls ~/.local/share/ferry/{svc}/releases"));
    let dirs: Vec<&str> = dirs.lines().collect();
    assert_eq!(dirs.len(), 5, "{dirs:?}");
    let current = r.ssh(
        user,
        &format!("readlink ~/.local/share/ferry/{svc}/current"),
    );
    assert!(dirs.contains(&current.trim().trim_start_matches("releases/")));
    let run = p.ferry(&["--output", "json", "releases", svc]);
    assert!(run.events("history").len() >= 15, "{run}");
    assert_eq!(run.events("release").len(), 5);
}

/// A crash-looping new release is rolled back.
#[test]
fn crash_loop_is_rolled_back() {
    let user = "ferry8";
    let r = remote();
    r.reset(user);
    let p = Project::new();
    p.write(
        "run.sh",
        "#!/bin/sh\ncd \"$(dirname \"$(readlink -f \"$0\")\")/..\" || exit 1\necho \"version $(cat bin/version)\"\nexec sleep 600\n",
    );
    p.write("version", "good\n");
    p.write(
        "cl.service",
        "[Service]\nExecStart=%h/.local/share/ferry/cl/current/bin/run.sh\nRestart=always\nRestartSec=100ms\n",
    );
    let cfg = format!(
        "{}[services.cl]\nunits = [\"cl.service\"]\nstart_timeout = \"10s\"\n[[services.cl.files]]\nsource = \"run.sh\"\ndest = \"bin/run.sh\"\nmode = \"0755\"\n[[services.cl.files]]\nsource = \"version\"\ndest = \"bin/version\"\n",
        host_table("web1", user)
    );
    p.config(&cfg);
    p.ferry(&["deploy"]).assert_code(0);
    let good = r.ssh(user, "readlink ~/.local/share/ferry/cl/current");
    let good_dir = format!("{}/.local/share/ferry/cl/{}", r.home(user), good.trim());
    assert_eq!(r.started_from(user, "cl.service"), good_dir);
    let before = r.unit_prop(user, "cl.service", "InvocationID");
    p.write(
        "run.sh",
        "#!/bin/sh\necho 'crashing on purpose'\nsleep 0.2\nexit 4\n",
    );
    let run = p.ferry(&["--output", "json", "deploy"]);
    run.assert_code(4);
    let res = json_result(&run);
    assert_eq!(res["result"], "rolled-back", "{run}");
    assert!(
        run.events("journal")
            .iter()
            .any(|j| j["line"].as_str().unwrap().contains("crashing on purpose")),
        "{run}"
    );
    assert_eq!(
        r.ssh(user, "readlink ~/.local/share/ferry/cl/current"),
        good
    );
    assert_eq!(
        r.ssh(user, "systemctl --user is-active cl.service"),
        "active\n"
    );
    // Restarted on the good release.
    assert_eq!(r.started_from(user, "cl.service"), good_dir);
    assert_ne!(r.unit_prop(user, "cl.service", "InvocationID"), before);
    // --no-rollback leaves the failed release in place.
    let run = p.ferry(&["deploy", "--no-rollback"]);
    run.assert_code(1);
    assert!(run.stdout.contains("--no-rollback"), "{run}");
    assert_ne!(
        r.ssh(user, "readlink ~/.local/share/ferry/cl/current"),
        good
    );

    // Pruning never deletes the last healthy release, even when it is the oldest: with
    // keep_releases = 2, a fixed deploy keeps itself and `good`, and prunes the two failed ones.
    p.write("run.sh", "#!/bin/sh\necho fixed\nexec sleep 600\n");
    p.config(&cfg.replace(
        "start_timeout = \"10s\"",
        "start_timeout = \"10s\"\nkeep_releases = 2",
    ));
    let run = p.ferry(&["--output", "json", "deploy"]);
    run.assert_code(0);
    let fixed = json_result(&run)["release"].as_str().unwrap().to_string();
    let dirs = r.ssh(user, "ls ~/.local/share/ferry/cl/releases");
    let good_id = good.trim().trim_start_matches("releases/");
    assert_eq!(dirs, format!("{good_id}\n{fixed}\n"));
}

/// Locks: two deploys of one service at once: one deploys, the other is refused with the
/// holder and changes nothing (or waits with --lock-wait, then deploys its own content); two
/// services deploy in parallel. Then the self-arming revert: ferry killed after the restart,
/// before confirmation; a deploy meanwhile is refused and changes nothing; the host goes back
/// by itself and the old release runs again.
///
/// A deploy is held in its health check by a gate the test opens (a file on the host), never
/// by a sleep: the lock is held exactly until the test releases it.
#[test]
fn locks_and_self_arming_revert() {
    let user = "ferry13";
    let r = remote();
    r.reset(user);
    r.ssh(user, "rm -f ~/gate");
    let p = Project::new();
    p.write("msg", "one\n");
    // Each service runs in the release it started from (resolved at start).
    for svc in ["a", "b"] {
        p.write(
            &format!("{svc}.service"),
            format!(
                "[Service]\nExecStart=/bin/sh -c 'cd \"$$(readlink -f %h/.local/share/ferry/{svc}/current)\" && exec sleep 600'\n"
            ),
        );
    }
    let t = Locks {
        p: &p,
        user,
        home: r.home(user),
    };
    p.config(&t.cfg(GATED, "120s", "150s"));
    t.open_gate();
    p.ferry(&["deploy"]).assert_code(0);
    t.close_gate();

    one_service_deploys_one_at_a_time(&t);
    two_services_deploy_in_parallel(&t);
    the_host_reverts_by_itself(&t);
    a_rollback_takes_over_from_a_pending_revert(&t);
    // Health commands of killed deploys still wait at the gate: let them end.
    t.open_gate();
}

/// The health check of a gated deploy waits until the test opens the gate.
const GATED: &str = "while [ ! -e $HOME/gate ]; do sleep 0.1; done";

/// The project and remote user of [`locks_and_self_arming_revert`], with what its phases ask.
struct Locks<'a> {
    p: &'a Project,
    user: &'a str,
    home: String,
}

impl Locks<'_> {
    /// Services `a` and `b`, with these health checks and confirm timeout.
    fn cfg(&self, health_cmd: &str, health_timeout: &str, confirm: &str) -> String {
        let mut c = host_table("web1", self.user);
        for svc in ["a", "b"] {
            c.push_str(&format!(
                "[services.{svc}]\nunits = [\"{svc}.service\"]\nstart_timeout = \"3s\"\nconfirm_timeout = \"{confirm}\"\n\
                 [[services.{svc}.files]]\nsource = \"msg\"\ndest = \"msg\"\n\
                 [services.{svc}.health]\ncommand = \"{health_cmd}\"\ntimeout = \"{health_timeout}\"\n"
            ));
        }
        c
    }

    fn close_gate(&self) {
        remote().ssh(self.user, "rm -f ~/gate");
    }

    fn open_gate(&self) {
        remote().ssh(self.user, "touch ~/gate");
    }

    /// The `msg` file of `svc`'s current release.
    fn msg(&self, svc: &str) -> String {
        remote().ssh(
            self.user,
            &format!("cat ~/.local/share/ferry/{svc}/current/msg"),
        )
    }

    /// The release `svc`'s process started from, as `releases/ID`.
    fn started(&self, svc: &str) -> String {
        let dir = format!("{}/.local/share/ferry/{svc}/", self.home);
        remote()
            .started_from(self.user, &format!("{svc}.service"))
            .strip_prefix(&dir)
            .unwrap_or_else(|| panic!("{svc}.service does not run from a release"))
            .to_string()
    }

    /// Where `svc`'s `current` points, as `releases/ID`.
    fn current(&self, svc: &str) -> String {
        remote()
            .ssh(
                self.user,
                &format!("readlink ~/.local/share/ferry/{svc}/current"),
            )
            .trim()
            .to_string()
    }
}

/// Two deploys of one service at once: the second is refused with the holder and changes
/// nothing, or waits with --lock-wait and then deploys its own content.
fn one_service_deploys_one_at_a_time(t: &Locks) {
    let (p, r, user) = (t.p, remote(), t.user);
    // Two deploys of `a` at once: the second comes while the first holds the lock (its health
    // check waits at the gate). The second is refused and changes nothing on the host.
    p.write("msg", "two\n");
    let first = spawn_until(p, &["deploy", "a"], "running health checks");
    let before = r.host_state(user, "a");
    let second = p.ferry(&["deploy", "a"]);
    second.assert_code(5);
    assert!(second.stdout.contains("locked by tester@"), "{second}");
    assert!(second.stdout.contains("(deploy, since "), "{second}");
    assert_eq!(
        r.host_state(user, "a"),
        before,
        "a refused deploy changed the host"
    );
    t.open_gate();
    assert_eq!(first.finish(), 0);
    assert_eq!(t.msg("a"), "two\n");
    t.close_gate();

    // With --lock-wait the second waits for the first, then deploys its own content: it is
    // what ends up live, after the first's.
    p.write("msg", "three, the first\n");
    let first = spawn_until(p, &["deploy", "a"], "running health checks");
    p.write("msg", "three, the waiting one\n");
    let second = spawn_until(
        p,
        &["deploy", "a", "--lock-wait", "300s"],
        "waiting for the lock held by tester@",
    );
    assert_eq!(t.msg("a"), "three, the first\n");
    t.open_gate();
    assert_eq!(first.finish(), 0);
    assert_eq!(second.finish(), 0);
    assert_eq!(t.msg("a"), "three, the waiting one\n");
    assert_eq!(t.started("a"), t.current("a"));
    let run = p.ferry(&["--output", "json", "releases", "a"]);
    let history = run.events("history");
    let n = history.len();
    assert_eq!(
        history[n - 1]["release"],
        t.current("a").trim_start_matches("releases/")
    );
    assert_eq!(history[n - 1]["outcome"], "ok", "{run}");
    assert_eq!(history[n - 2]["outcome"], "ok", "{run}");
    assert_eq!(
        history[n - 1]["previous"],
        history[n - 2]["release"],
        "{run}"
    );
    t.close_gate();
}

/// Two different services deploy in parallel: `b` deploys while `a` holds its lock.
fn two_services_deploy_in_parallel(t: &Locks) {
    let p = t.p;
    p.config(&t.cfg(GATED, "120s", "150s").replacen(
        &format!("[services.b.health]\ncommand = \"{GATED}\""),
        "[services.b.health]\ncommand = \"true\"",
        1,
    ));
    p.write("msg", "four\n");
    let a = spawn_until(p, &["deploy", "a"], "running health checks");
    let b = p.ferry(&["deploy", "b"]);
    b.assert_code(0);
    assert_eq!(t.msg("b"), "four\n");
    assert_eq!(t.started("b"), t.current("b"));
    t.open_gate();
    assert_eq!(a.finish(), 0);
    assert_eq!(t.msg("a"), "four\n");
}

/// Self-arming revert: ferry killed after the restart, before confirmation; the host goes
/// back by itself and the old release runs again.
fn the_host_reverts_by_itself(t: &Locks) {
    let (p, r, user) = (t.p, remote(), t.user);
    // Self-arming revert: kill ferry while the health check waits (after the restart, before
    // confirmation). After confirm_timeout the host is back on the old release by itself.
    t.close_gate();
    let before = t.current("a");
    assert_eq!(t.started("a"), before);
    p.config(&t.cfg(GATED, "4s", "20s"));
    p.write("msg", "five\n");
    let child = spawn_until(p, &["deploy", "a"], "running health checks");
    child.kill();
    let switched = t.current("a");
    assert_ne!(
        switched, before,
        "the new release was live when ferry was killed"
    );
    assert_eq!(t.started("a"), switched);
    // The revert is armed for confirm_timeout (20 s) after the activation: the timer says so.
    let timer = r.unit_prop(user, "ferry-revert-a.timer", "TimersMonotonic");
    assert!(timer.contains("OnActiveUSec=20s"), "{timer}");
    let unconfirmed_invocation = r.unit_prop(user, "a.service", "InvocationID");
    // Meanwhile a new deploy is refused: the host has a revert pending. It changes nothing.
    let state = r.host_state(user, "a");
    let run = p.ferry(&["deploy", "a"]);
    run.assert_code(1);
    assert!(run.stdout.contains("never confirmed"), "{run}");
    assert_eq!(
        r.host_state(user, "a"),
        state,
        "a deploy refused during a pending revert changed the host"
    );
    // The revert fires (polled: up to 60 s for a 20 s confirm_timeout on a loaded machine).
    r.poll("the host reverting by itself", 600, || {
        (t.current("a") == before).then_some(())
    });
    // The old release runs again: the service was restarted on it, and is up.
    r.poll("a.service restarted on the old release", 300, || {
        let inv = r.unit_prop(user, "a.service", "InvocationID");
        let active = r.unit_prop(user, "a.service", "ActiveState");
        (active == "active" && inv != unconfirmed_invocation && !inv.is_empty()).then_some(())
    });
    assert_eq!(
        t.started("a"),
        before,
        "the reverted service runs another release"
    );
    assert_eq!(t.msg("a"), "four\n");
    // The revert records itself once it is done: poll for the history line.
    let last = r.poll("the revert in the history", 100, || {
        let run = p.ferry(&["--output", "json", "releases", "a"]);
        let last = run.events("history").last().cloned().unwrap();
        (last["action"] == "revert").then_some(last)
    });
    assert_eq!(last["outcome"], "reverted", "{last}");
    // And the next deploy works (the lock was released with the killed session).
    p.config(&t.cfg("true", "4s", "30s"));
    p.ferry(&["deploy", "a"]).assert_code(0);
    assert_eq!(t.msg("a"), "five\n");
    assert_eq!(t.started("a"), t.current("a"));
}

/// An explicit rollback takes over from a pending self-revert; a late revert script then
/// changes nothing.
fn a_rollback_takes_over_from_a_pending_revert(t: &Locks) {
    let (p, r, user) = (t.p, remote(), t.user);
    // An explicit rollback takes over from a pending self-revert: it goes back to the last
    // healthy release at once, and the timer is gone afterwards.
    let healthy = t.current("a");
    p.config(&t.cfg(GATED, "4s", "20s"));
    p.write("msg", "six\n");
    spawn_until(p, &["deploy", "a"], "running health checks").kill();
    assert_eq!(t.msg("a"), "six\n");
    p.config(&t.cfg("true", "4s", "30s"));
    let run = p.ferry(&["rollback", "a"]);
    run.assert_code(0);
    assert_eq!(t.msg("a"), "five\n");
    assert_eq!(t.started("a"), healthy);
    let timer = r.ssh_raw(user, "systemctl --user is-active ferry-revert-a.timer");
    assert_eq!(String::from_utf8_lossy(&timer.stdout).trim(), "inactive");

    // The revert script's "newer deploy or rollback happened" guard, run on the host: the
    // timer was stopped, but were it to fire now (a late timer racing the rollback), the
    // script the timer runs must see that `current` moved on and change nothing.
    let state = r.host_state(user, "a");
    let history = r.ssh(user, "cat ~/.local/share/ferry/a/history.jsonl");
    let out = r.ssh_raw(user, "/bin/sh \"$HOME\"/.local/share/ferry/a/revert.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("nothing to revert"),
        "{out:?}"
    );
    assert_eq!(
        r.host_state(user, "a"),
        state,
        "the stale revert changed the host"
    );
    assert_eq!(
        r.ssh(user, "cat ~/.local/share/ferry/a/history.jsonl"),
        history,
        "the stale revert wrote history"
    );
    assert_eq!(t.msg("a"), "five\n");
}
