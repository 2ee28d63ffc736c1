//! What ferry starts on a host ends with it: a health command past its timeout, a hook whose
//! ferry was killed, a `ferry exec` whose ferry was killed or interrupted; and a killed
//! deploy's hook is gone before the next deploy's hook starts (no two ever overlap); a hook
//! past its timeout ends; a process that keeps the run lock stops the next deploy.
//! Remote users: ferry123, ferry124.

use crate::faults::{Bg, current, result, started_from_unit};
use crate::faults24::signal;
use crate::support::{Project, host_table, remote};

/// deploy.toml of one service `app` (app.service) on `user`, shipping `msg` and `hook.sh`.
fn config(user: &str, extra: &str) -> String {
    format!(
        "{}[services.app]\nunits = [\"app.service\"]\nstart_timeout = \"3s\"\nsettle_time = \"0.3s\"\n\
         [[services.app.files]]\nsource = \"msg\"\ndest = \"msg\"\n\
         [[services.app.files]]\nsource = \"hook.sh\"\ndest = \"hook.sh\"\n{extra}\n",
        host_table("web1", user)
    )
}

/// The processes of `user` whose command line matches `pattern` (a regular expression written
/// so that it does not match itself, e.g. `sleep 12[3]`), one `PID ARGS` line each.
fn processes(user: &str, pattern: &str) -> String {
    let out = remote().ssh_raw(user, &format!("pgrep -a -u \"$(id -u)\" -f '{pattern}'"));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Poll until no process of `user` matches `pattern`; panics with what still runs.
fn wait_gone(user: &str, pattern: &str, what: &str) {
    let mut last = String::new();
    for _ in 0..300 {
        last = processes(user, pattern);
        if last.trim().is_empty() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("{what} still runs on the host:\n{last}");
}

/// Poll until some process of `user` matches `pattern`.
fn wait_running(user: &str, pattern: &str, what: &str) {
    remote().poll(&format!("{what} to run on the host"), 300, || {
        (!processes(user, pattern).trim().is_empty()).then_some(())
    });
}

/// A number of seconds no other run of these tests sleeps (this run's pid in it), ending in
/// `tail`; the pattern that finds its `sleep` (see [`processes`]).
fn marker(tail: &str) -> (String, String) {
    let id = std::process::id();
    let (head, last) = tail.split_at(tail.len() - 1);
    (format!("1{id}{tail}"), format!("sleep 1{id}{head}[{last}]"))
}

/// A health command that never answers, with a short health timeout: the deploy is rolled
/// back and the command does not outlive it (the host's own `timeout` ended it). Then a
/// `ferry exec` of a long command, killed (SIGKILL) and interrupted (SIGINT): the command ends.
#[test]
fn a_health_command_past_its_timeout_and_a_killed_exec_end_on_the_host() {
    let user = "ferry123";
    let r = remote();
    r.reset(user);
    let p = Project::new();
    started_from_unit(&p, "app");
    p.write("hook.sh", "true\n");
    p.write("msg", "one\n");
    p.config(&config(user, ""));
    let run = p.ferry(&["--output", "json", "deploy"]);
    run.assert_code(0);
    let first = result(&run)["release"].as_str().unwrap().to_string();

    p.write("msg", "two\n");
    let (secs, health) = marker("23");
    p.config(&config(
        user,
        &format!("[services.app.health]\ncommand = \"exec sleep {secs}\"\ntimeout = \"2s\"\ninterval = \"200ms\"\n"),
    ));
    let run = p.ferry(&["--output", "json", "deploy"]);
    run.assert_code(4);
    assert_eq!(result(&run)["result"], "rolled-back", "{run}");
    assert_eq!(current(user, "app"), format!("releases/{first}"), "{run}");
    wait_gone(user, &health, "the health command");

    let (secs, exec) = marker("223");
    let command = format!("echo started >&2; exec sleep {secs}");
    for sig in ["KILL", "INT"] {
        let mut bg = Bg::spawn(&p, &["exec", "app", "--", "sh", "-c", &command], &[]);
        bg.wait_for_line("started");
        wait_running(user, &exec, "the exec'd command");
        signal(bg.pid(), sig);
        let run = bg.finish();
        assert_ne!(run.code, 0, "{run}");
        wait_gone(
            user,
            &exec,
            &format!("the exec'd command (ferry got SIG{sig})"),
        );
    }
    a_command_that_keeps_the_run_lock_stops_the_next_deploy(&p, user);
}

/// A process still holding the run lock (as a hook that will not die would) past the wait:
/// the next deploy stops before changing anything (exit 5) and names the file.
fn a_command_that_keeps_the_run_lock_stops_the_next_deploy(p: &Project, user: &str) {
    let serving = current(user, "app");
    let _held = remote().hold(
        user,
        "cd ~/.local/share/ferry/app && exec flock lock.run sh -c 'echo holding; exec cat'",
        "holding",
    );
    p.write("msg", "three\n");
    let run = p.ferry(&["--output", "json", "deploy"]);
    run.assert_code(5);
    assert!(
        run.stderr.contains("~/.local/share/ferry/app/lock.run"),
        "{run}"
    );
    // While it waited, it said what for.
    assert!(
        run.stdout
            .contains("holds ~/.local/share/ferry/app/lock.run; waiting up to 30s"),
        "{run}"
    );
    assert_eq!(current(user, "app"), serving, "{run}");
}

/// The hook: says when it starts and how it ends, in ~/hook.log, with its pid. On TERM it
/// takes a second to stop (as a real hook cleaning up may): the next deploy's hook must not
/// start meanwhile. Its output goes to a file: a hook that writes to the channel of a ferry
/// that is gone dies of SIGPIPE at once, and this one must take its time.
const HOOK: &str = "log() { echo \"$1 $$\" >> \"$HOME/hook.log\"; }\n\
    exec >> \"$HOME/hook.out\" 2>&1\n\
    trap 'sleep 1; log stopped; exit 143' TERM\n\
    log start\n\
    sleep \"$(cat msg)\" & wait $!\n\
    log end\n";

/// A `before_switch` hook whose ferry is killed while the hook sleeps: the hook ends (its
/// last line never written), the host keeps its release, and the next deploy's hook starts
/// only once the killed one has stopped: the log's lines never interleave.
#[test]
fn a_killed_deploys_hook_ends_before_the_next_deploys_hook_starts() {
    let user = "ferry124";
    let r = remote();
    r.reset(user);
    let p = Project::new();
    started_from_unit(&p, "app");
    p.write("hook.sh", HOOK);
    let hooks = "[services.app.hooks]\nbefore_switch = \"sh hook.sh\"\ntimeout = \"10m\"\n";
    p.write("msg", "0\n");
    p.config(&config(user, hooks));
    p.ferry(&["deploy"]).assert_code(0);
    let good = current(user, "app");
    r.ssh(user, "rm -f ~/hook.log");

    // The sleep's length is the release's content: a long one, then a short one.
    let (secs, hook) = marker("24");
    p.write("msg", format!("{secs}\n"));
    let bg = Bg::spawn(&p, &["deploy"], &[]);
    wait_running(user, &hook, "the first hook");
    signal(bg.pid(), "KILL");
    bg.finish();

    p.write("msg", "1\n");
    let run = p.ferry(&["--output", "json", "deploy"]);
    run.assert_code(0);
    wait_gone(user, &hook, "the killed deploy's hook");
    assert_ne!(current(user, "app"), good, "{run}");

    let log = r.ssh(user, "cat ~/hook.log");
    let lines: Vec<(&str, &str)> = log
        .lines()
        .map(|l| l.split_once(' ').unwrap_or_else(|| panic!("{log}")))
        .collect();
    let words: Vec<&str> = lines.iter().map(|(w, _)| *w).collect();
    assert_eq!(words, ["start", "stopped", "start", "end"], "{log}");
    assert_eq!(lines[0].1, lines[1].1, "{log}");
    assert_eq!(lines[2].1, lines[3].1, "{log}");
    assert_ne!(lines[0].1, lines[2].1, "{log}");
    a_hook_past_its_timeout_ends(&p, user);
}

/// A hook past `hooks.timeout`: its output came line by line, the host's `timeout` ended it,
/// the deploy failed before the switch and the release serving stays.
fn a_hook_past_its_timeout_ends(p: &Project, user: &str) {
    let serving = current(user, "app");
    let (secs, hook) = marker("124");
    p.write("msg", format!("{secs}\n"));
    p.config(&config(
        user,
        "[services.app.hooks]\nbefore_switch = \"echo waiting; sleep $(cat msg)\"\ntimeout = \"1s\"\n",
    ));
    let run = p.ferry(&["--output", "json", "deploy"]);
    run.assert_code(1);
    let reason = result(&run)["reason"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        reason.contains("timed out after hooks.timeout (1s)"),
        "{run}"
    );
    let lines: Vec<_> = run
        .events("hook")
        .into_iter()
        .filter_map(|e| e["line"].as_str().map(String::from))
        .collect();
    assert_eq!(lines, ["waiting"], "{run}");
    assert_eq!(current(user, "app"), serving, "{run}");
    wait_gone(user, &hook, "the hook past its timeout");
}
