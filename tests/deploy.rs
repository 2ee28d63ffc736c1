//! `ferry deploy` against the real remote: what a user checks after a deploy.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::{Project, demo_bin, host_table, remote};

/// The example's unit files, with the proxy's TCP port changed to `port` and the service
/// name changed to `service` (so tests never collide with each other or with the demo).
fn demo_units(p: &Project, service: &str, port: u16) -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/demo/units");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&root).expect("examples/demo/units exists") {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let text = std::fs::read_to_string(&path)
            .unwrap()
            .replace("18080", &port.to_string())
            .replace("/ferry/demo/", &format!("/ferry/{service}/"));
        p.write(&format!("units/{name}"), text);
        names.push(format!("units/{name}"));
    }
    names.sort();
    names
}

fn demo_config(p: &Project, user: &str, service: &str, port: u16, extra: &str) -> String {
    let units = demo_units(p, service, port);
    std::fs::copy(demo_bin(), p.path("ferry-demo")).unwrap();
    format!(
        "{}[services.{service}]\nunits = {units:?}\nrestart = [\"ferry-demo.service\", \"ferry-demo-proxy.service\"]\nstart_timeout = \"20s\"\n{extra}\n\
         [[services.{service}.files]]\nsource = \"ferry-demo\"\ndest = \"bin/ferry-demo\"\nmode = \"0755\"\n\n\
         [[services.{service}.files]]\nsource = \"message.txt\"\ndest = \"share/message.txt\"\n",
        host_table("web1", user)
    )
}

/// GET / over the service's unix socket, on the host (as the user would with curl).
fn get_unix(user: &str) -> String {
    remote().ssh(
        user,
        "curl -fsS --max-time 5 --unix-socket \"$XDG_RUNTIME_DIR/ferry-demo.sock\" http://localhost/",
    )
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

/// Wait until `child` (a ferry deploy) is uploading `share/big.bin` to `user`'s host. No
/// deadline: hashing and sending 400 MiB take what they take on a loaded machine; the wait
/// ends (and fails) if ferry finishes first.
fn wait_until_uploading(user: &str, child: &mut std::process::Child) {
    loop {
        let size = remote().ssh(
            user,
            "stat -c %s ~/.local/share/ferry/demo/releases/.*.partial/share/big.bin 2>/dev/null || echo 0",
        );
        if size.trim().parse::<u64>().unwrap_or(0) > 1024 * 1024 {
            return;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "ferry finished before it could be interrupted"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The release the demo server (ferry-demo.service) *started* from, asked over its TCP proxy:
/// `/release` is resolved once when the process starts, so it proves what runs, not where
/// `current` points. Returns the release id.
fn running_release(port: u16) -> String {
    let dir = remote()
        .http_get(port, "/release")
        .expect("the demo answers /release");
    let dir = dir.trim();
    let (_, id) = dir
        .rsplit_once("/releases/")
        .unwrap_or_else(|| panic!("/release is not a release directory: {dir}"));
    id.to_string()
}

/// The demo server's pid, from its own `/version` answer.
fn demo_pid(port: u16) -> String {
    let v = remote()
        .http_get(port, "/version")
        .expect("the demo answers");
    v.trim().rsplit(' ').next().unwrap().to_string()
}

/// Neither the secret nor its sha256 (nor a prefix of it) appears in `run`'s output.
fn assert_secret_hidden(run: &crate::support::Run, secret: &str) {
    use sha2::{Digest, Sha256};
    let hash: String = Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let secret = secret.trim();
    for text in [&run.stdout, &run.stderr] {
        assert!(!text.contains(secret), "the secret was printed\n{run}");
        assert!(
            !text.to_lowercase().contains(&hash[..12]),
            "the secret's sha256 ({hash}) was printed\n{run}"
        );
    }
}

fn result_event(run: &crate::support::Run) -> serde_json::Value {
    let r = run.events("result");
    assert_eq!(r.len(), 1, "{run}");
    r[0].clone()
}

#[test]
fn deploys_the_example_and_redeploys_a_change() {
    let user = "ferry2";
    let port = 18102;
    let r = remote();
    r.reset(user);
    let p = Project::new();
    p.write("message.txt", "hello, release one\n");
    p.write("api-token", "hunter2-s3cr3t-token\n");
    p.config(&format!(
        "{}\n[[services.demo.files]]\nsource = \"api-token\"\ndest = \"etc/api-token\"\nsecret = true\n",
        demo_config(&p, user, "demo", port, "")
    ));

    let secret = "hunter2-s3cr3t-token\n";
    let run = p.ferry(&["--output", "json", "deploy"]);
    run.assert_code(0);
    // The secret is 0600 on the host and appears nowhere in ferry's output.
    let mode = r.ssh(
        user,
        "stat -c %a ~/.local/share/ferry/demo/current/etc/api-token",
    );
    assert_eq!(mode.trim(), "600");
    assert!(
        !run.stdout.contains("hunter2") && !run.stderr.contains("hunter2"),
        "{run}"
    );
    assert_secret_hidden(&run, secret);
    let first = result_event(&run)["release"].as_str().unwrap().to_string();
    // The server that answers was started from the new release.
    assert_eq!(running_release(port), first);
    assert_eq!(get_unix(user), "hello, release one\n");
    assert_eq!(
        r.http_get(port, "/").as_deref(),
        Some("hello, release one\n")
    );
    assert_eq!(current(user, "demo"), format!("releases/{first}"));
    // Units are installed and enabled; the sockets listen.
    let enabled = r.ssh(
        user,
        "systemctl --user is-enabled ferry-demo.socket ferry-demo-proxy.socket",
    );
    assert_eq!(enabled, "enabled\nenabled\n");
    // Every unit reported up.
    let units = run.events("unit");
    assert!(
        units.len() >= 2 && units.iter().all(|u| u["up"] == true),
        "{run}"
    );

    the_dry_run_changes_nothing(&p, user, secret);

    // Redeploy: new content served, old release kept, current switched.
    let pid_before = demo_pid(port);
    let run = p.ferry(&["--output", "json", "deploy"]);
    run.assert_code(0);
    assert_secret_hidden(&run, secret);
    let second = result_event(&run)["release"].as_str().unwrap().to_string();
    assert_ne!(first, second);
    // The server was restarted on the new release.
    assert_eq!(running_release(port), second);
    assert_ne!(demo_pid(port), pid_before, "the demo was not restarted");
    assert_eq!(get_unix(user), "hello, release two\n");
    assert_eq!(
        r.http_get(port, "/").as_deref(),
        Some("hello, release two\n")
    );
    assert_eq!(current(user, "demo"), format!("releases/{second}"));
    let releases = r.ssh(user, "ls ~/.local/share/ferry/demo/releases");
    assert_eq!(releases, format!("{first}\n{second}\n"));
    // The unchanged binary was not sent again but is in place, with its mode.
    let mode = r.ssh(
        user,
        &format!("stat -c %a ~/.local/share/ferry/demo/releases/{second}/bin/ferry-demo"),
    );
    assert_eq!(mode.trim(), "755");
    // JSON mode: stdout is JSON Lines only.
    run.json();

    a_failed_release_and_a_manual_rollback(&p, user, port, &first, &second);
}

/// Dry run (JSON, `-v`, `-vv`) of a changed message: the remote does not change at all, the
/// plan names the change, the secret is never printed.
fn the_dry_run_changes_nothing(p: &Project, user: &str, secret: &str) {
    let r = remote();
    p.write("message.txt", "hello, release two\n");
    let snapshot = || {
        r.ssh(
            user,
            "cd ~ && find .local/share/ferry .config/systemd/user -printf '%p %s %m %l\\n' | sort; \
             systemctl --user show ferry-demo.service ferry-demo-proxy.service -p InvocationID,ActiveState",
        )
    };
    let before = snapshot();
    let run = p.ferry(&["--output", "json", "deploy", "--dry-run"]);
    run.assert_code(0);
    assert_secret_hidden(&run, secret);
    let plan = &run.events("plan")[0];
    let files = plan["files"].as_array().unwrap();
    let msg = files
        .iter()
        .find(|f| f["dest"] == "share/message.txt")
        .unwrap();
    assert_eq!(msg["change"], "changed", "{run}");
    let bin = files
        .iter()
        .find(|f| f["dest"] == "bin/ferry-demo")
        .unwrap();
    assert_eq!(bin["transfer"], "reuse", "{run}");
    assert_eq!(snapshot(), before, "dry run changed the remote");
    // Human dry-run output names the change.
    let run = p.ferry(&["-v", "deploy", "--dry-run"]);
    run.assert_code(0);
    assert!(
        !run.stdout.contains("hunter2") && !run.stderr.contains("hunter2"),
        "{run}"
    );
    assert_secret_hidden(&run, secret);
    assert!(
        run.stdout.contains("changed  upload share/message.txt"),
        "{run}"
    );
    let run = p.ferry(&["-vv", "deploy", "--dry-run"]);
    run.assert_code(0);
    assert_secret_hidden(&run, secret);
    assert_eq!(snapshot(), before, "dry run changed the remote");
}

/// A release that fails its health check (verbose, with the secret changed): rolled back,
/// the server restarted on the second release again; the secret is never printed. Then a
/// manual rollback (verbose) goes back to the first release: the server restarts on it.
fn a_failed_release_and_a_manual_rollback(
    p: &Project,
    user: &str,
    port: u16,
    first: &str,
    second: &str,
) {
    let r = remote();
    let cfg = std::fs::read_to_string(p.path("deploy.toml")).unwrap();
    let secret = "another-s3cr3t-value\n";
    p.write("api-token", secret);
    p.write("message.txt", "hello, broken release\n");
    p.config(&format!(
        "{cfg}\n[services.demo.health]\ncommand = \"echo checking; false\"\ntimeout = \"3s\"\n"
    ));
    let pid_before = demo_pid(port);
    let run = p.ferry(&["-vv", "deploy"]);
    run.assert_code(4);
    assert!(run.stdout.contains("ROLLED BACK"), "{run}");
    assert_secret_hidden(&run, secret);
    assert_eq!(current(user, "demo"), format!("releases/{second}"));
    assert_eq!(running_release(port), second);
    assert_ne!(
        demo_pid(port),
        pid_before,
        "the rollback did not restart the demo"
    );
    assert_eq!(
        r.http_get(port, "/").as_deref(),
        Some("hello, release two\n")
    );
    let run = p.ferry(&["--output", "json", "-vv", "deploy", "--dry-run"]);
    assert_secret_hidden(&run, secret);

    // A manual rollback (verbose) goes back to the first release: the server restarts on it.
    p.config(&cfg);
    let pid_before = demo_pid(port);
    let run = p.ferry(&["-vv", "rollback", "demo"]);
    run.assert_code(0);
    assert_secret_hidden(&run, secret);
    assert_secret_hidden(&run, "hunter2-s3cr3t-token\n");
    assert_eq!(current(user, "demo"), format!("releases/{first}"));
    assert_eq!(running_release(port), first);
    assert_ne!(
        demo_pid(port),
        pid_before,
        "the rollback did not restart the demo"
    );
    assert_eq!(
        r.http_get(port, "/").as_deref(),
        Some("hello, release one\n")
    );
    let run = p.ferry(&[
        "--output", "json", "-vv", "rollback", "demo", "--to", second,
    ]);
    run.assert_code(0);
    assert_secret_hidden(&run, "hunter2-s3cr3t-token\n");
    assert_eq!(running_release(port), second);
}

#[test]
fn a_failing_service_fails_the_deploy_with_its_journal() {
    let user = "ferry3";
    let r = remote();
    r.reset(user);
    let p = Project::new();
    p.write(
        "bad.service",
        "[Service]\nExecStart=/bin/sh -c 'echo \"bad: cannot open /etc/bad.conf\" >&2; exit 1'\n",
    );
    p.write(
        "loop.service",
        "[Service]\nExecStart=/bin/sh -c 'echo \"loop: starting, then crashing\"; sleep 0.3; exit 3'\nRestart=always\nRestartSec=200ms\n",
    );
    p.config(&format!(
        "{}[services.bad]\nunits = [\"bad.service\"]\nstart_timeout = \"15s\"\n\n[services.loop]\nunits = [\"loop.service\"]\nstart_timeout = \"15s\"\n",
        host_table("web1", user)
    ));
    let run = p.ferry(&["deploy", "bad"]);
    run.assert_code(1);
    assert!(
        run.stdout.contains("bad: cannot open /etc/bad.conf"),
        "journal lines shown: {run}"
    );
    assert!(run.stdout.contains("FAILED"), "{run}");
    assert!(run.stdout.contains("nothing to roll back to"), "{run}");
    // The host: a first deploy has nothing to go back to, so the failed release stays, as
    // ferry said: one release, no staging left, `current` on it, the unit installed and
    // failed, and the history says it failed.
    let state = r.host_state(user, "bad");
    let releases: Vec<&str> = state
        .lines()
        .skip_while(|l| *l != "releases:")
        .skip(1)
        .take_while(|l| *l != "units:")
        .filter(|l| !l.starts_with('.'))
        .collect();
    assert_eq!(releases.len(), 1, "{state}");
    assert!(
        state.contains(&format!("current: releases/{}\n", releases[0])),
        "{state}"
    );
    assert!(
        state.contains("Id=bad.service ActiveState=failed"),
        "{state}"
    );
    let hist = p.ferry(&["--output", "json", "releases", "bad"]);
    let last = hist.events("history").last().cloned().unwrap();
    assert_eq!(last["action"], "deploy", "{hist}");
    assert_eq!(last["outcome"], "failed", "{hist}");

    let run = p.ferry(&["--output", "json", "deploy", "loop"]);
    run.assert_code(1);
    let res = result_event(&run);
    assert_eq!(res["result"], "failed", "{run}");
    let reason = res["reason"].as_str().unwrap();
    assert!(reason.contains("loop.service"), "{reason}");
    assert!(
        reason.contains("crash") || reason.contains("restart"),
        "{reason}"
    );
    let journal: Vec<String> = run
        .events("journal")
        .iter()
        .map(|j| j["line"].as_str().unwrap().to_string())
        .collect();
    assert!(
        journal
            .iter()
            .any(|l| l.contains("loop: starting, then crashing")),
        "{run}"
    );

    // Fixed, a re-run works.
    p.write("bad.service", "[Service]\nExecStart=/bin/sleep 600\n");
    p.ferry(&["deploy", "bad"]).assert_code(0);
    assert_eq!(
        r.ssh(user, "systemctl --user is-active bad.service"),
        "active\n"
    );
}

#[test]
fn deploys_two_hosts_in_parallel() {
    let r = remote();
    let (u1, u2) = ("ferry4", "ferry5");
    r.reset(u1);
    r.reset(u2);
    let p = Project::new();
    std::fs::copy(demo_bin(), p.path("ferry-demo")).unwrap();
    p.write("message.txt", "two hosts\n");
    // Each host listens on its own port, chosen by the host's user name in the unit.
    p.write(
        "app.service",
        "[Service]\nExecStart=/bin/sh -c 'exec %h/.local/share/ferry/app/current/bin/ferry-demo --listen 127.0.0.1:$(cat %h/port) --message %h/.local/share/ferry/app/current/share/message.txt'\n",
    );
    r.ssh(u1, "echo 18141 > ~/port");
    r.ssh(u2, "echo 18151 > ~/port");
    p.config(&format!(
        "{}{}[services.app]\nunits = [\"app.service\"]\n[[services.app.files]]\nsource = \"ferry-demo\"\ndest = \"bin/ferry-demo\"\nmode = \"0755\"\n[[services.app.files]]\nsource = \"message.txt\"\ndest = \"share/message.txt\"\n",
        host_table("web1", u1),
        host_table("web2", u2)
    ));
    let start = Instant::now();
    let run = p.ferry(&["deploy", "--parallel", "2"]);
    let took = start.elapsed();
    run.assert_code(0);
    assert_eq!(r.http_get(18141, "/").as_deref(), Some("two hosts\n"));
    assert_eq!(r.http_get(18151, "/").as_deref(), Some("two hosts\n"));
    // One summary line per host, prefixed by the host.
    let lines: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.contains(" app ok"))
        .collect();
    assert_eq!(lines.len(), 2, "{run}");
    assert!(
        lines[0].starts_with("web1") && lines[1].starts_with("web2"),
        "{run}"
    );
    assert!(
        run.stderr
            .lines()
            .all(|l| l.starts_with("web1:") || l.starts_with("web2:")),
        "{run}"
    );
    // Both hosts were connected to before either was switched: they ran at the same time.
    let pos = |needle: &str| {
        run.stderr
            .lines()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("{needle}: {run}"))
    };
    let first_switch = pos("switching to");
    assert!(
        pos("web1: connecting") < first_switch && pos("web2: connecting") < first_switch,
        "{run}"
    );
    eprintln!("two-host deploy took {took:?}");

    one_host_broken_the_other_still_deploys(&p, u2);
}

/// One host broken (web2, user `u2`): the other still deploys; the summary says which failed,
/// and web2's host went back as far as it could.
fn one_host_broken_the_other_still_deploys(p: &Project, u2: &str) {
    let r = remote();
    r.ssh(u2, "echo notaport > ~/port");
    p.write("message.txt", "two hosts, again\n");
    let web2_before = r.host_state(u2, "app");
    let run = p.ferry(&["deploy"]);
    // web2's previous release reads the same broken port file: its rollback fails too,
    // and ferry says so loudly.
    assert_eq!(run.code, 1, "{run}");
    assert!(
        run.stdout.lines().any(|l| l.starts_with("web1 app ok")),
        "{run}"
    );
    assert!(
        run.stdout
            .lines()
            .any(|l| l.starts_with("web2 app ROLLBACK-FAILED") && l.contains("FAILED TOO")),
        "{run}"
    );
    assert_eq!(
        r.http_get(18141, "/").as_deref(),
        Some("two hosts, again\n")
    );
    // web2's host went back as far as it could: `current` on the old release again, the unit
    // directory as it was, the failed release kept beside the old one (for inspection), and
    // the unit (restarted on the old release) failed, as ferry said.
    let web2_after = r.host_state(u2, "app");
    let section = |state: &str, from: &str, to: &str| -> Vec<String> {
        state
            .lines()
            .skip_while(|l| *l != from)
            .skip(1)
            .take_while(|l| *l != to)
            .map(str::to_string)
            .collect()
    };
    assert_eq!(
        web2_after.lines().next(),
        web2_before.lines().next(),
        "current moved\n{web2_after}"
    );
    let units = |s: &str| -> Vec<String> {
        section(s, "units:", "")
            .into_iter()
            .filter(|l| !l.starts_with("Id="))
            .collect()
    };
    assert_eq!(units(&web2_after), units(&web2_before), "{web2_after}");
    let (old_rel, new_rel) = (
        section(&web2_before, "releases:", "units:"),
        section(&web2_after, "releases:", "units:"),
    );
    assert_eq!(new_rel.len(), old_rel.len() + 1, "{web2_after}");
    assert!(old_rel.iter().all(|d| new_rel.contains(d)), "{web2_after}");
    assert!(
        web2_after.contains("Id=app.service ActiveState=failed"),
        "{web2_after}"
    );
}

#[test]
fn a_deploy_killed_during_upload_leaves_the_old_release_serving() {
    let user = "ferry6";
    let port = 18162;
    let r = remote();
    r.reset(user);
    let p = Project::new();
    p.write("message.txt", "the old release\n");
    let cfg = demo_config(&p, user, "demo", port, "");
    p.config(&cfg);
    p.ferry(&["deploy"]).assert_code(0);
    let old = current(user, "demo");
    assert_eq!(r.http_get(port, "/").as_deref(), Some("the old release\n"));
    let old_pid = demo_pid(port);

    // A big file makes the upload take a while; kill ferry in the middle of it.
    let big = p.path("big.bin");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&big).unwrap();
        let block: Vec<u8> = (0..1024 * 1024).map(|i| (i * 7 % 251) as u8).collect();
        for i in 0..400u32 {
            let mut b = block.clone();
            b[..4].copy_from_slice(&i.to_le_bytes());
            f.write_all(&b).unwrap();
        }
    }
    p.write("message.txt", "the new release\n");
    p.config(&format!(
        "{cfg}\n[[services.demo.files]]\nsource = \"big.bin\"\ndest = \"share/big.bin\"\n"
    ));
    let mut child = p.command(&["deploy"]).spawn().unwrap();
    wait_until_uploading(user, &mut child);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    assert_eq!(current(user, "demo"), old);
    assert_eq!(r.http_get(port, "/").as_deref(), Some("the old release\n"));
    assert_eq!(get_unix(user), "the old release\n");
    // The server still runs from the old release: never restarted.
    assert_eq!(format!("releases/{}", running_release(port)), old);
    assert_eq!(demo_pid(port), old_pid, "the demo was restarted");

    // Ctrl-C (SIGINT) during the upload: ferry says what state the host is in and exits 130.
    let mut child = p
        .command(&["deploy"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_until_uploading(user, &mut child);
    // The shell's built-in kill: no dependency on a kill binary.
    let kill = std::process::Command::new("sh")
        .args(["-c", &format!("kill -INT {}", child.id())])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("interrupted: hosts not yet switched keep their current release"),
        "{stderr}"
    );
    assert_eq!(current(user, "demo"), old);
    assert_eq!(r.http_get(port, "/").as_deref(), Some("the old release\n"));
    assert_eq!(get_unix(user), "the old release\n");
    // The server still runs from the old release: never restarted.
    assert_eq!(format!("releases/{}", running_release(port)), old);
    assert_eq!(demo_pid(port), old_pid, "the demo was restarted");

    // The next deploy works and cleans up the partial upload.
    p.config(&cfg);
    let run = p.ferry(&["--output", "json", "deploy"]);
    run.assert_code(0);
    assert_eq!(r.http_get(port, "/").as_deref(), Some("the new release\n"));
    let new = result_event(&run)["release"].as_str().unwrap().to_string();
    assert_eq!(running_release(port), new);
    let leftovers = r.ssh(
        user,
        "ls -a ~/.local/share/ferry/demo/releases | grep -c partial || true",
    );
    assert_eq!(leftovers.trim(), "0");
}

/// The units of a release as a user sees them: the unit directory (names, symlinks, contents)
/// and systemd's view of every unit either release has (loaded, active, enabled, what a
/// socket listens on).
fn unit_view(user: &str, names: &[&str]) -> String {
    remote().ssh(
        user,
        &format!(
            "cd ~/.config/systemd/user && find . -mindepth 1 -printf '%P %y %l\\n' | sort && \
             find . -type f -exec sha256sum {{}} + | sort -k2 && \
             systemctl --user show {} -p Id,LoadState,ActiveState,SubState,UnitFileState,Listen",
            names.join(" ")
        ),
    )
}

/// A unit of the `ur` service's releases: the main service, in release `v`.
fn ur_main(v: &str) -> String {
    format!(
        "[Service]\nEnvironment=V={v}\nExecStart=/bin/sh -c 'cd \"$$(readlink -f %h/.local/share/ferry/ur/current)\" && exec sleep 600'\n\
         [Install]\nWantedBy=default.target\n"
    )
}

/// A socket of the `ur` service listening on `%t/PATH`.
fn ur_socket(path: &str) -> String {
    format!("[Socket]\nListenStream=%t/{path}\n[Install]\nWantedBy=sockets.target\n")
}

const UR_IDLE: &str = "[Service]\nExecStart=/bin/sleep 600\n";

/// Release A of `ur`: main, a socket that B changes (ur-echo), a socket that B removes (ur-old).
fn ur_release_a(p: &Project) {
    for f in ["ur-new.socket", "ur-new.service"] {
        let _ = std::fs::remove_file(p.path(&format!("units/{f}")));
    }
    p.write("units/ur-main.service", ur_main("A"));
    p.write("units/ur-echo.socket", ur_socket("ur-a.sock"));
    p.write("units/ur-echo.service", UR_IDLE);
    p.write("units/ur-old.socket", ur_socket("ur-old.sock"));
    p.write("units/ur-old.service", UR_IDLE);
    p.write("version", "A\n");
}

/// Release B of `ur`: main changed, ur-echo.socket changed, ur-old removed, ur-new added.
fn ur_release_b(p: &Project) {
    for f in ["ur-old.socket", "ur-old.service"] {
        let _ = std::fs::remove_file(p.path(&format!("units/{f}")));
    }
    p.write("units/ur-main.service", ur_main("B"));
    p.write("units/ur-echo.socket", ur_socket("ur-b.sock"));
    p.write("units/ur-new.socket", ur_socket("ur-new.sock"));
    p.write("units/ur-new.service", UR_IDLE);
    p.write("version", "B\n");
}

/// Rolling back a release that added, changed and removed units (sockets among them) puts
/// the old release's units back exactly: files, enablement, what runs and listens; after an
/// automatic rollback and after `ferry rollback`.
#[test]
fn rollback_restores_the_old_releases_units() {
    let user = "ferry12";
    let r = remote();
    r.reset(user);
    let p = Project::new();
    let config = |p: &Project, health: &str| {
        let mut units: Vec<String> = std::fs::read_dir(p.path("units"))
            .unwrap()
            .map(|e| format!("units/{}", e.unwrap().file_name().to_str().unwrap()))
            .collect();
        units.sort();
        p.config(&format!(
            "{}[services.ur]\nunits = {units:?}\nrestart = [\"ur-main.service\"]\nstart_timeout = \"10s\"\n\
             [[services.ur.files]]\nsource = \"version\"\ndest = \"version\"\n\
             [services.ur.health]\ncommand = \"{health}\"\ntimeout = \"3s\"\n",
            host_table("web1", user)
        ));
    };
    let names = [
        "ur-main.service",
        "ur-echo.socket",
        "ur-echo.service",
        "ur-old.socket",
        "ur-old.service",
        "ur-new.socket",
        "ur-new.service",
    ];
    let home = r.home(user);
    let release_dir = |id: &str| format!("{home}/.local/share/ferry/ur/releases/{id}");

    ur_release_a(&p);
    config(&p, "true");
    let run = p.ferry(&["--output", "json", "deploy"]);
    run.assert_code(0);
    let a = result_event(&run)["release"].as_str().unwrap().to_string();
    let view_a = unit_view(user, &names);
    assert!(
        view_a.contains("Id=ur-old.socket\nLoadState=loaded\nActiveState=active\nSubState=listening\nUnitFileState=enabled"),
        "{view_a}"
    );
    assert!(view_a.contains("ur-a.sock (Stream)"), "{view_a}");
    assert_eq!(r.started_from(user, "ur-main.service"), release_dir(&a));

    // B fails its health check: rolled back automatically.
    ur_release_b(&p);
    config(&p, "false");
    let inv = r.unit_prop(user, "ur-main.service", "InvocationID");
    let run = p.ferry(&["deploy"]);
    run.assert_code(4);
    assert_eq!(
        unit_view(user, &names),
        view_a,
        "after the automatic rollback"
    );
    assert_eq!(r.started_from(user, "ur-main.service"), release_dir(&a));
    assert_ne!(
        r.unit_prop(user, "ur-main.service", "InvocationID"),
        inv,
        "ur-main.service was not restarted"
    );

    // B healthy: deployed, its units live (the view differs from A's).
    config(&p, "true");
    let run = p.ferry(&["--output", "json", "deploy"]);
    run.assert_code(0);
    let b = result_event(&run)["release"].as_str().unwrap().to_string();
    let view_b = unit_view(user, &names);
    assert!(view_b.contains("ur-b.sock (Stream)"), "{view_b}");
    assert!(
        view_b.contains("Id=ur-new.socket\nLoadState=loaded\nActiveState=active\nSubState=listening\nUnitFileState=enabled"),
        "{view_b}"
    );
    assert!(
        view_b.contains("Id=ur-old.socket\nLoadState=not-found\nActiveState=inactive"),
        "{view_b}"
    );
    assert_eq!(r.started_from(user, "ur-main.service"), release_dir(&b));

    // `ferry rollback`: A's units again, exactly.
    let inv = r.unit_prop(user, "ur-main.service", "InvocationID");
    p.ferry(&["rollback", "ur"]).assert_code(0);
    assert_eq!(unit_view(user, &names), view_a, "after ferry rollback");
    assert_eq!(r.started_from(user, "ur-main.service"), release_dir(&a));
    assert_ne!(r.unit_prop(user, "ur-main.service", "InvocationID"), inv);
}
