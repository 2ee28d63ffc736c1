//! Faults found by trying to break ferry, each kept fixed here against the real remote. Every
//! test asserts the host's state afterwards (what `current` is, what the service started from,
//! the history) and that the next deploy works.

use std::time::Duration;

use crate::support::{Project, Run, host_table, remote};

/// A unit that records which release directory it started from, then stays up: proof that a
/// rollback restarted the service (not just moved the symlink).
pub(crate) fn started_from_unit(p: &Project, service: &str) {
    p.write(
        &format!("{service}.service"),
        format!(
            "[Service]\nExecStart=/bin/sh -c 'readlink -f %h/.local/share/ferry/{service}/current > %t/{service}.started; exec sleep 600'\n"
        ),
    );
}

/// The release directory (`releases/ID`) the service's running process started from.
pub(crate) fn started_from(user: &str, service: &str) -> String {
    let out = remote().ssh(user, &format!("cat \"$XDG_RUNTIME_DIR/{service}.started\""));
    let path = out.trim();
    let i = path.find("releases/").unwrap_or_else(|| panic!("{path}"));
    path[i..].to_string()
}

pub(crate) fn current(user: &str, service: &str) -> String {
    remote()
        .ssh(
            user,
            &format!("readlink ~/.local/share/ferry/{service}/current"),
        )
        .trim()
        .to_string()
}

pub(crate) fn result(run: &Run) -> serde_json::Value {
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

// ---------------------------------------------------------------------------------------------
// The fault-injection suite: disk full, connection lost, kill -9 at every step,
// stalled sessions, sshd restarted, the self-revert racing a new deploy.

/// The main PID of a user unit (0 when it has none).
fn main_pid(user: &str, unit: &str) -> u32 {
    remote()
        .ssh(
            user,
            &format!("systemctl --user show -p MainPID --value {unit}"),
        )
        .trim()
        .parse()
        .unwrap()
}

/// Entries of the service's `releases/` directory, hidden ones (staging) included.
pub(crate) fn release_dirs(user: &str, service: &str) -> Vec<String> {
    let out = remote().ssh(
        user,
        &format!("ls -A ~/.local/share/ferry/{service}/releases 2>/dev/null; true"),
    );
    out.lines().map(String::from).collect()
}

fn history_lines(user: &str, service: &str) -> Vec<String> {
    remote()
        .ssh(
            user,
            &format!("cat ~/.local/share/ferry/{service}/history.jsonl 2>/dev/null; true"),
        )
        .lines()
        .map(String::from)
        .collect()
}

/// Is the service's lock free? (flock -n succeeds.)
fn lock_free(user: &str, service: &str) -> bool {
    remote()
        .ssh_raw(
            user,
            &format!("flock -n ~/.local/share/ferry/{service}/lock true"),
        )
        .status
        .success()
}

/// A ferry run in the background whose stderr is read line by line as it comes.
pub(crate) struct Bg {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    stderr: Vec<String>,
    stdout: std::thread::JoinHandle<String>,
}

impl Bg {
    pub(crate) fn spawn(p: &Project, args: &[&str], env: &[(&str, &str)]) -> Bg {
        let mut cmd = p.command(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for l in std::io::BufReader::new(err).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        let mut out = child.stdout.take().unwrap();
        let stdout = std::thread::spawn(move || {
            let mut s = String::new();
            use std::io::Read;
            let _ = out.read_to_string(&mut s);
            s
        });
        Bg {
            child,
            lines,
            stderr: Vec::new(),
            stdout,
        }
    }

    /// Wait until ferry prints a line containing `needle` on stderr (it exits first: panic).
    pub(crate) fn wait_for_line(&mut self, needle: &str) {
        while let Ok(l) = self.lines.recv() {
            let found = l.contains(needle);
            self.stderr.push(l);
            if found {
                return;
            }
        }
        panic!(
            "ferry never printed {needle:?}; stderr:\n{}",
            self.stderr.join("\n")
        );
    }

    fn kill(&mut self) {
        self.child.kill().unwrap();
    }

    /// The process id of the ferry run (to send it a signal).
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn finish(mut self) -> Run {
        let status = self.child.wait().unwrap();
        self.stderr.extend(self.lines.iter());
        Run {
            code: status.code().unwrap_or(-1),
            stdout: self.stdout.join().unwrap(),
            stderr: self.stderr.join("\n"),
        }
    }
}

/// A FERRY_FAULT_PAUSE gate: ferry waits before a step until [`Gate::open`].
pub(crate) struct Gate {
    file: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Gate {
    pub(crate) fn new() -> Gate {
        let dir = tempfile::tempdir().unwrap();
        Gate {
            file: dir.path().join("go"),
            _dir: dir,
        }
    }
    pub(crate) fn env(&self, step: &str) -> String {
        format!("{step}:{}", self.file.display())
    }
    pub(crate) fn open(&self) {
        std::fs::write(&self.file, "").unwrap();
    }
}

/// A small tmpfs over the user's `~/.local/share/ferry`, unmounted when dropped.
struct SmallDisk {
    user: String,
}

impl SmallDisk {
    fn mount(user: &str, size: &str) -> SmallDisk {
        let r = remote();
        r.ssh(user, "mkdir -p ~/.local/share/ferry");
        let out = r.root(&format!(
            "umount /home/{user}/.local/share/ferry 2>/dev/null; \
             mount -t tmpfs -o size={size},mode=0755,uid=$(id -u {user}),gid=$(id -g {user}) tmpfs /home/{user}/.local/share/ferry"
        ));
        assert!(
            out.status.success(),
            "mount: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        SmallDisk {
            user: user.to_string(),
        }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let user = &self.user;
        // The units use files on it: stop them first.
        let _ = remote().ssh_raw(user, "systemctl --user stop app.service");
        let _ = remote().root(&format!("umount -l /home/{user}/.local/share/ferry"));
    }
}

fn app_config(user: &str, extra: &str, files: &[&str]) -> String {
    let mut s = format!(
        "{}[services.app]\nunits = [\"app.service\"]\nstart_timeout = \"3s\"\nsettle_time = \"0.3s\"\n{extra}\n",
        host_table("web1", user)
    );
    for f in files {
        s.push_str(&format!(
            "[[services.app.files]]\nsource = \"{f}\"\ndest = \"{f}\"\n"
        ));
    }
    s
}

fn release_of(run: &Run) -> String {
    format!(
        "releases/{}",
        result(run)["release"]
            .as_str()
            .unwrap_or_else(|| panic!("{run}"))
    )
}

/// A full disk once said "Failure". A release that cannot fit is refused before
/// anything changes; one that fits the check but not the disk (filled between the plan and
/// the upload) fails naming the full disk, and its staging directory is removed at once.
#[test]
fn a_full_disk_is_refused_early_or_cleaned_up_at_once() {
    let user = "ferry20";
    let r = remote();
    r.reset(user);
    let _disk = SmallDisk::mount(user, "2m");
    let p = Project::new();
    started_from_unit(&p, "app");
    p.write("msg", "one\n");
    p.config(&app_config(user, "", &["msg"]));
    let run = p.ferry(&["--output", "json", "deploy"]);
    run.assert_code(0);
    let v1 = release_of(&run);
    let pid = main_pid(user, "app.service");
    let history = history_lines(user, "app");

    // 3 MiB on a 2 MiB filesystem: refused before anything is sent.
    p.write("big", vec![7u8; 3 << 20]);
    p.config(&app_config(user, "", &["msg", "big"]));
    let run = p.ferry(&["--output", "json", "deploy"]);
    run.assert_code(1);
    let res = result(&run);
    assert_eq!(res["result"], "refused", "{run}");
    let reason = res["reason"].as_str().unwrap();
    assert!(
        reason.contains("the host's disk is full: ")
            && reason.contains(
                "free on the filesystem of ~/.local/share/ferry/app, the release needs 4.0 MiB"
            ),
        "{run}"
    );
    assert_eq!(current(user, "app"), v1);
    assert_eq!(
        release_dirs(user, "app"),
        vec![v1.trim_start_matches("releases/")]
    );
    assert_eq!(main_pid(user, "app.service"), pid);
    assert_eq!(history_lines(user, "app"), history);
    // The dry run says the same.
    let dry = p.ferry(&["--output", "json", "deploy", "--dry-run"]);
    dry.assert_code(1);
    assert_eq!(
        dry.events("plan")[0]["steps"][1]["why"],
        "disk-full",
        "{dry}"
    );

    // 300 KiB fits the check, but the disk fills up after the plan (ferry paused before the
    // upload): the write fails, and ferry says why and removes its staging directory at once.
    p.write("big", vec![7u8; 300 << 10]);
    let gate = Gate::new();
    let mut bg = Bg::spawn(
        &p,
        &["--output", "json", "deploy"],
        &[("FERRY_FAULT_PAUSE", &gate.env("upload"))],
    );
    bg.wait_for_line("FERRY_FAULT_PAUSE=upload");
    // Fill it, then leave 64 KiB.
    r.ssh(
        user,
        "cat /dev/zero > ~/.local/share/ferry/filler 2>/dev/null; truncate -s -64K ~/.local/share/ferry/filler",
    );
    assert_eq!(
        release_dirs(user, "app").len(),
        2,
        "the staging directory is there before the upload"
    );
    gate.open();
    let run = bg.finish();
    run.assert_code(1);
    let res = result(&run);
    assert_eq!(res["result"], "failed", "{run}");
    let reason = res["reason"].as_str().unwrap();
    println!("upload: {reason}");
    assert!(reason.contains("the disk of web1 is full"), "{run}");
    assert!(
        reason.contains("staging directory") && reason.contains("was removed"),
        "{run}"
    );
    // Removed now, not at the next deploy; the old release still serves, untouched.
    assert_eq!(
        release_dirs(user, "app"),
        vec![v1.trim_start_matches("releases/")]
    );
    assert_eq!(current(user, "app"), v1);
    assert_eq!(started_from(user, "app"), v1);
    assert_eq!(main_pid(user, "app.service"), pid);
    assert_eq!(
        r.ssh(
            user,
            "find ~/.local/share/ferry -name '*.ferry-part' -o -name '*.partial'"
        ),
        ""
    );

    // Room made: the same deploy works.
    r.ssh(user, "rm ~/.local/share/ferry/filler");
    let run = p.ferry(&["--output", "json", "deploy"]);
    run.assert_code(0);
    let v2 = release_of(&run);
    assert_eq!(current(user, "app"), v2);
    assert_eq!(started_from(user, "app"), v2);

    // The same when the disk fills up before the unchanged 300 KiB file is copied on the host
    // (`cp` says "No space left on device"): named, staging removed at once.
    p.write("msg", "three\n");
    let gate = Gate::new();
    let mut bg = Bg::spawn(
        &p,
        &["--output", "json", "deploy"],
        &[("FERRY_FAULT_PAUSE", &gate.env("reuse"))],
    );
    bg.wait_for_line("FERRY_FAULT_PAUSE=reuse");
    r.ssh(
        user,
        "cat /dev/zero > ~/.local/share/ferry/filler 2>/dev/null; truncate -s -64K ~/.local/share/ferry/filler",
    );
    gate.open();
    let run = bg.finish();
    run.assert_code(1);
    let reason = result(&run)["reason"].as_str().unwrap().to_string();
    println!("reuse: {reason}");
    assert!(
        reason.contains("the disk of web1 is full") && reason.contains("was removed"),
        "{run}"
    );
    assert_eq!(
        r.ssh(user, "find ~/.local/share/ferry -name '*.partial'"),
        ""
    );
    assert_eq!(current(user, "app"), v2);
    assert_eq!(started_from(user, "app"), v2);
    r.ssh(user, "rm ~/.local/share/ferry/filler");
    let run = p.ferry(&["--output", "json", "deploy"]);
    run.assert_code(0);
    assert_eq!(started_from(user, "app"), release_of(&run));
}

/// Is the service's self-revert timer armed?
fn revert_armed(user: &str) -> bool {
    remote()
        .ssh(
            user,
            "systemctl --user is-active ferry-revert-app.timer ferry-revert-app.service; true",
        )
        .lines()
        .any(|l| l.trim() == "active" || l.trim() == "activating")
}

/// A deploy killed (`abort`, like kill -9) just before each step of its plan, and before its
/// own rollback: the host is left serving a verified release (at once before activation; by
/// the self-revert, within confirm_timeout, after it; the new one when it was confirmed), no
/// lock is held, and the next deploy cleans up and works.
#[test]
fn a_deploy_killed_at_every_step_leaves_the_host_serving_and_the_next_deploy_works() {
    let user = "ferry21";
    let r = remote();
    r.reset(user);
    let p = Project::new();
    started_from_unit(&p, "app");
    p.write("static", "the same in every release\n");
    p.config(&app_config(
        user,
        "confirm_timeout = \"15s\"\nkeep_releases = 2\n\
         [services.app.health]\ncommand = \"! grep -q bad msg\"\ntimeout = \"1s\"\ninterval = \"200ms\"\n",
        &["static", "msg"],
    ));
    let mut good = String::new();
    for v in ["zero", "one"] {
        p.write("msg", format!("{v}\n"));
        let run = p.ferry(&["--output", "json", "deploy"]);
        run.assert_code(0);
        good = release_of(&run);
    }
    let steps = [
        "lock", "stage", "reuse", "upload", "seal", "activate", "verify", "health", "confirm",
        "rollback",
    ];
    for (n, step) in steps.into_iter().enumerate() {
        let pid = main_pid(user, "app.service");
        // `rollback`: a release whose health check fails, killed before going back.
        p.write(
            "msg",
            if step == "rollback" {
                format!("bad {n}\n")
            } else {
                format!("{step} {n}\n")
            },
        );
        let run = p.ferry_env(&["deploy"], &[("FERRY_FAULT_AT", step)]);
        assert!(
            run.code != 0
                && run
                    .stderr
                    .contains(&format!("FERRY_FAULT_AT={step}: aborting")),
            "{step}: ferry did not stop there\n{run}"
        );
        match step {
            // Before activation nothing the service uses was touched.
            "lock" | "stage" | "reuse" | "upload" | "seal" | "activate" => {
                assert_eq!(current(user, "app"), good, "{step}");
                assert_eq!(started_from(user, "app"), good, "{step}");
                assert_eq!(main_pid(user, "app.service"), pid, "{step}: restarted");
            }
            // Activated, never confirmed: the host goes back by itself.
            "verify" | "health" | "confirm" | "rollback" => {
                assert_ne!(current(user, "app"), good, "{step}: not activated?");
                wait_for(&format!("{step}: the self-revert to {good}"), || {
                    current(user, "app") == good && !revert_armed(user)
                });
                assert_eq!(started_from(user, "app"), good, "{step}");
                let last = history_lines(user, "app").pop().unwrap();
                assert!(
                    last.contains("\"action\":\"revert\"")
                        && last.contains("\"outcome\":\"reverted\""),
                    "{step}: {last}"
                );
            }
            _ => unreachable!(),
        }
        // The lock died with ferry's session.
        wait_for(&format!("{step}: the lock to be free"), || {
            lock_free(user, "app")
        });
        // The next deploy (of a good release) cleans up and works.
        p.write("msg", format!("{step} {n} fixed\n"));
        let run = p.ferry(&["--output", "json", "deploy"]);
        run.assert_code(0);
        good = release_of(&run);
        assert_eq!(current(user, "app"), good, "{step}");
        assert_eq!(started_from(user, "app"), good, "{step}");
        assert_eq!(
            r.ssh(user, "cat ~/.local/share/ferry/app/current/msg"),
            format!("{step} {n} fixed\n")
        );
        let dirs = release_dirs(user, "app");
        assert!(
            dirs.iter().all(|d| !d.starts_with('.')) && dirs.len() <= 3,
            "{step}: leftovers {dirs:?}"
        );
        assert!(!revert_armed(user), "{step}: a revert timer is left");
    }
}

/// Kill the user's SSH sessions from the host's side (sshd's per-session processes run as the
/// user; the listening sshd does not).
fn kill_sessions(user: &str, signal: &str) {
    let out = remote().root(&format!("pkill -{signal} -u {user} -x 'sshd(-session)?'"));
    assert!(
        out.status.success(),
        "pkill -{signal} -u {user} sshd: no process? {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A connection lost mid-deploy once said "sender dropped", exit 1. Now: the
/// connection to the host was lost, in which step, what state the host is in; exit 3. The
/// host is in that state, and the next deploy works.
#[test]
fn a_connection_lost_mid_deploy_says_where_and_the_host_recovers() {
    let user = "ferry22";
    let r = remote();
    r.reset(user);
    let p = Project::new();
    started_from_unit(&p, "app");
    p.config(&app_config(
        user,
        "confirm_timeout = \"8s\"\n\
         [services.app.health]\ncommand = \"sleep 1\"\ntimeout = \"3s\"\ninterval = \"200ms\"\n",
        &["msg"],
    ));
    p.write("msg", "first\n");
    let run = p.ferry(&["--output", "json", "deploy"]);
    run.assert_code(0);
    let mut good = release_of(&run);
    for (n, step) in ["upload", "activate", "verify", "health"]
        .into_iter()
        .enumerate()
    {
        let pid = main_pid(user, "app.service");
        p.write("msg", format!("{step} {n}\n"));
        let gate = Gate::new();
        let mut bg = Bg::spawn(
            &p,
            &["--output", "json", "deploy"],
            &[("FERRY_FAULT_PAUSE", &gate.env(step))],
        );
        if step == "health" {
            // While the health check runs on the host.
            gate.open();
            bg.wait_for_line("running health checks");
        } else {
            bg.wait_for_line(&format!("FERRY_FAULT_PAUSE={step}"));
        }
        kill_sessions(user, "KILL");
        gate.open();
        let run = bg.finish();
        run.assert_code(3);
        let res = result(&run);
        assert_eq!(res["result"], "failed", "{run}");
        let reason = res["reason"].as_str().unwrap();
        assert!(
            reason.starts_with("web1: the connection was lost while "),
            "{run}"
        );
        println!("{step}: {reason}");
        let id = run
            .events("step")
            .iter()
            .find_map(|e| {
                (e["step"] == "stage").then(|| e["release"].as_str().unwrap().to_string())
            })
            .unwrap_or_else(|| panic!("{run}"));
        let good_id = good.trim_start_matches("releases/");
        let revert = format!(
            "the self-revert armed on the host brings release {good_id} back within confirm_timeout (8s)"
        );
        match step {
            "upload" => {
                assert!(reason.contains("(step `upload` of the deploy of"), "{run}");
                assert!(
                    reason.contains(&format!("before activation: the host still runs release {good_id}, nothing it uses was changed")),
                    "{run}"
                );
                assert_eq!(current(user, "app"), good);
                assert_eq!(main_pid(user, "app.service"), pid);
                assert!(release_dirs(user, "app").contains(&format!(".{id}.partial")));
            }
            "activate" => {
                assert!(
                    reason.contains("(step `activate` of the deploy of"),
                    "{run}"
                );
                assert!(
                    reason.contains("during the activation of") && reason.contains(&revert),
                    "{run}"
                );
                // The connection was gone before the activation script was sent.
                assert_eq!(current(user, "app"), good);
                assert_eq!(main_pid(user, "app.service"), pid);
            }
            _ => {
                if step == "verify" {
                    assert!(reason.contains("(step `verify` of the deploy of"), "{run}");
                } else {
                    assert!(reason.contains("verifying the new release"), "{run}");
                }
                assert!(
                    reason.contains(&format!("after activation of {id}: {revert}")),
                    "{run}"
                );
                assert_eq!(current(user, "app"), format!("releases/{id}"));
                wait_for(&format!("{step}: the self-revert"), || {
                    current(user, "app") == good && !revert_armed(user)
                });
                assert_eq!(started_from(user, "app"), good);
            }
        }
        // The next deploy cleans up and works.
        wait_for("the lock to be free", || lock_free(user, "app"));
        // (After `activate`, the lost deploy's timer may still be armed: that release never
        // became current, so this deploy clears it instead of being refused.)
        let run = p.ferry(&["--output", "json", "deploy"]);
        run.assert_code(0);
        good = release_of(&run);
        assert_eq!(started_from(user, "app"), good);
        assert!(
            release_dirs(user, "app")
                .iter()
                .all(|d| !d.starts_with('.'))
        );
        assert!(!revert_armed(user));
    }
}

/// The SSH session stalled (its sshd process stopped, as a hung host or a dead network path
/// would): ferry does not hang; its keepalive (every 10 s, 3 unanswered = dead) ends the
/// connection, it says so with exit 3, and the host is in the state it names.
#[test]
fn a_stalled_session_is_given_up_and_the_host_recovers() {
    let user = "ferry24";
    let r = remote();
    r.reset(user);
    let p = Project::new();
    started_from_unit(&p, "app");
    p.config(&app_config(user, "confirm_timeout = \"8s\"\n", &["msg"]));
    p.write("msg", "first\n");
    let run = p.ferry(&["--output", "json", "deploy"]);
    run.assert_code(0);
    let mut good = release_of(&run);
    for (n, step) in ["upload", "activate", "verify"].into_iter().enumerate() {
        let pid = main_pid(user, "app.service");
        p.write("msg", format!("{step} {n}\n"));
        let gate = Gate::new();
        let mut bg = Bg::spawn(
            &p,
            &["--output", "json", "deploy"],
            &[("FERRY_FAULT_PAUSE", &gate.env(step))],
        );
        bg.wait_for_line(&format!("FERRY_FAULT_PAUSE={step}"));
        kill_sessions(user, "STOP");
        gate.open();
        let run = bg.finish();
        // Let the stopped processes go: they find their connection closed and exit.
        kill_sessions(user, "CONT");
        run.assert_code(3);
        let reason = result(&run)["reason"].as_str().unwrap().to_string();
        println!("{step}: {reason}");
        assert!(
            reason.starts_with("web1: the connection was lost while "),
            "{run}"
        );
        assert!(
            reason.contains(&format!("(step `{step}` of the deploy of")),
            "{run}"
        );
        if step == "upload" || step == "activate" {
            // Stalled before the activation script was sent.
            let state = if step == "upload" {
                "before activation"
            } else {
                "during the activation"
            };
            assert!(reason.contains(state), "{run}");
            assert_eq!(current(user, "app"), good);
            assert_eq!(main_pid(user, "app.service"), pid);
        } else {
            assert!(reason.contains("after activation"), "{run}");
            wait_for("the self-revert", || {
                current(user, "app") == good && !revert_armed(user)
            });
            assert_eq!(started_from(user, "app"), good);
        }
        wait_for("the lock to be free", || lock_free(user, "app"));
        let run = p.ferry(&["--output", "json", "deploy"]);
        run.assert_code(0);
        good = release_of(&run);
        assert_eq!(started_from(user, "app"), good);
        assert!(
            release_dirs(user, "app")
                .iter()
                .all(|d| !d.starts_with('.'))
        );
    }
}

/// sshd restarted on the host during a deploy: the running session survives (sshd's
/// sessions outlive the listener), the deploy completes, and the next one connects anew.
/// And the self-revert racing a new deploy: it fires while that deploy holds the lock, waits
/// for the lock, and never undoes the newer deploy.
#[test]
fn sshd_restarted_and_the_self_revert_racing_a_new_deploy() {
    let user = "ferry23";
    let r = remote();
    r.reset(user);
    let p = Project::new();
    started_from_unit(&p, "app");
    // An sshd of this test's own: restarting the remote's main sshd would refuse the logins of
    // the tests running beside this one.
    let sshd = crate::support::OwnSshd::start();
    // A confirm_timeout long enough that the timers below have not fired yet when the next
    // deploy plans, even on a loaded machine.
    p.config(
        &app_config(user, "confirm_timeout = \"15s\"\n", &["msg"]).replace(
            &host_table("web1", user),
            &sshd.host_table(&p, "web1", user),
        ),
    );
    p.write("msg", "first\n");
    p.ferry(&["deploy"]).assert_code(0);

    p.write("msg", "second\n");
    let gate = Gate::new();
    let mut bg = Bg::spawn(
        &p,
        &["--output", "json", "deploy"],
        &[("FERRY_FAULT_PAUSE", &gate.env("upload"))],
    );
    bg.wait_for_line("FERRY_FAULT_PAUSE=upload");
    sshd.restart();
    gate.open();
    let run = bg.finish();
    run.assert_code(0);
    let v2 = release_of(&run);
    assert_eq!(started_from(user, "app"), v2);
    p.write("msg", "third\n");
    let run = p.ferry(&["--output", "json", "deploy"]);
    run.assert_code(0);
    let v3 = release_of(&run);
    assert_eq!(started_from(user, "app"), v3);

    // A deploy killed just before activation leaves its self-revert armed (for a release that
    // never became current).
    p.write("msg", "fourth\n");
    let run = p.ferry_env(&["deploy"], &[("FERRY_FAULT_AT", "activate")]);
    assert!(
        run.stderr.contains("FERRY_FAULT_AT=activate: aborting"),
        "{run}"
    );
    assert!(revert_armed(user));
    // The next deploy takes the lock and plans; it waits before clearing that timer until the
    // timer has fired: the revert then waits for the lock.
    wait_for("the lock to be free", || lock_free(user, "app"));
    p.write("msg", "fifth\n");
    let gate = Gate::new();
    let mut bg = Bg::spawn(
        &p,
        &["--output", "json", "deploy"],
        &[("FERRY_FAULT_PAUSE", &gate.env("clear-stale-revert"))],
    );
    bg.wait_for_line("FERRY_FAULT_PAUSE=clear-stale-revert");
    wait_for("the revert to fire and wait for the lock", || {
        r.ssh(
            user,
            "systemctl --user is-active ferry-revert-app.service; true",
        )
        .trim()
            == "active"
    });
    assert_eq!(
        current(user, "app"),
        v3,
        "the revert did not wait for the lock"
    );
    gate.open();
    let run = bg.finish();
    run.assert_code(0);
    let v5 = release_of(&run);
    assert_eq!(current(user, "app"), v5);
    assert_eq!(started_from(user, "app"), v5);
    assert!(!revert_armed(user));
    assert!(
        !history_lines(user, "app")
            .iter()
            .any(|l| l.contains("\"action\":\"revert\"")),
        "a revert ran"
    );

    // Again, but the new deploy dies while the revert waits: the revert then gets the lock,
    // sees `current` is not the release it guards, and does nothing.
    let pid = main_pid(user, "app.service");
    p.write("msg", "sixth\n");
    let run = p.ferry_env(&["deploy"], &[("FERRY_FAULT_AT", "activate")]);
    assert!(
        run.stderr.contains("FERRY_FAULT_AT=activate: aborting"),
        "{run}"
    );
    wait_for("the lock to be free", || lock_free(user, "app"));
    p.write("msg", "seventh\n");
    let gate = Gate::new();
    let mut bg = Bg::spawn(
        &p,
        &["deploy"],
        &[("FERRY_FAULT_PAUSE", &gate.env("clear-stale-revert"))],
    );
    bg.wait_for_line("FERRY_FAULT_PAUSE=clear-stale-revert");
    wait_for("the revert to fire and wait for the lock", || {
        r.ssh(
            user,
            "systemctl --user is-active ferry-revert-app.service; true",
        )
        .trim()
            == "active"
    });
    let said_before = r
        .ssh(
            user,
            "journalctl --user -t ferry-revert-app -o cat --no-pager | grep -c 'a newer deploy or rollback happened: nothing to revert'; true",
        )
        .trim()
        .parse::<usize>()
        .unwrap_or(0);
    bg.kill();
    bg.finish();
    wait_for("the revert to finish", || !revert_armed(user));
    // Its own line says why it did nothing (counted: an earlier revert of this test said it
    // too). Read by identifier: under load, journald may not tell the unit of a line printed by
    // a process that exits at once, and `-u` would miss it.
    let said = || {
        r.ssh(
            user,
            "journalctl --user -t ferry-revert-app -o cat --no-pager | grep -c 'a newer deploy or rollback happened: nothing to revert'; true",
        )
        .trim()
        .parse::<usize>()
        .unwrap_or(0)
    };
    wait_for("the revert to say it did nothing", || said() > said_before);
    assert_eq!(current(user, "app"), v5);
    assert_eq!(main_pid(user, "app.service"), pid);
    assert!(
        !history_lines(user, "app")
            .iter()
            .any(|l| l.contains("\"action\":\"revert\"")),
        "a revert ran"
    );
    p.write("msg", "eighth\n");
    let run = p.ferry(&["--output", "json", "deploy"]);
    run.assert_code(0);
    assert_eq!(started_from(user, "app"), release_of(&run));
}

/// Wait until the file's last change is more than 2 s old (ferry continues a background hash
/// in an upload only for such a file: a later change must move its timestamps).
fn settle(path: &std::path::Path) {
    use std::os::unix::fs::MetadataExt;
    wait_for("the file to be 2 s old", || {
        let m = std::fs::metadata(path).unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        now.as_secs_f64() - (m.ctime() as f64 + m.ctime_nsec() as f64 / 1e9) > 2.2
    });
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The manifest of the service's current release on the host.
fn current_manifest(user: &str, service: &str) -> serde_json::Value {
    serde_json::from_str(&remote().ssh(
        user,
        &format!("cat ~/.local/share/ferry/{service}/current/.ferry/manifest.json"),
    ))
    .unwrap()
}

/// The entry of file `dest` in a manifest.
fn manifest_file<'m>(manifest: &'m serde_json::Value, dest: &str) -> &'m serde_json::Value {
    manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["dest"] == dest)
        .unwrap_or_else(|| panic!("no {dest} in {manifest}"))
}

/// "Never read a local file twice": a file the host gets uploaded whatever it holds
/// (new, or of another size than the current release's) is not waited for: its upload takes the
/// background hash over where it got to (here paused after its first MiB) and hashes the rest
/// as it sends it. The release is staged under a pending id and sealed under its own id; its
/// manifest has the file's real hash (a redeploy is a no-op). A file changed during such an
/// upload stops the deploy before anything goes live, and the next deploy works.
#[test]
fn a_file_hashed_while_it_is_uploaded_gets_its_release_id_at_the_seal() {
    let user = "ferry44";
    let r = remote();
    r.reset(user);
    let p = Project::new();
    started_from_unit(&p, "app");
    p.write("msg", "one\n");
    p.config(&app_config(user, "", &["msg"]));
    let run = p.ferry(&["--output", "json", "deploy"]);
    run.assert_code(0);
    let v1 = release_of(&run);

    let content: Vec<u8> = (0..(5u32 << 20) + 7)
        .map(|i| (i.wrapping_mul(2654435761) >> 11) as u8)
        .collect();
    p.write("big", &content);
    p.config(&app_config(user, "", &["msg", "big"]));
    settle(&p.path("big"));
    // Never opened: the upload taking the hash over releases it.
    let hash_gate = Gate::new();
    let run = p.ferry_env(
        &["--output", "json", "deploy"],
        &[("FERRY_FAULT_PAUSE", &hash_gate.env("hash"))],
    );
    run.assert_code(0);
    assert!(
        run.stderr.contains("FERRY_FAULT_PAUSE=hash: waiting"),
        "{run}"
    );
    let step_release = |run: &Run, name: &str| {
        run.events("step")
            .iter()
            .find(|e| e["step"] == name)
            .and_then(|e| e["release"].as_str().map(String::from))
            .unwrap_or_else(|| panic!("no {name} step\n{run}"))
    };
    let staged = step_release(&run, "stage");
    let sealed = step_release(&run, "seal");
    assert!(staged.contains("-pending-"), "{run}");
    assert!(!sealed.contains("pending"), "{run}");
    let v2 = release_of(&run);
    assert_eq!(v2, format!("releases/{sealed}"));
    assert_eq!(step_release(&run, "activate"), sealed);
    assert_eq!(current(user, "app"), v2);
    assert_eq!(started_from(user, "app"), v2);
    let manifest = current_manifest(user, "app");
    assert_eq!(manifest["id"], sealed.as_str());
    let big = manifest_file(&manifest, "big");
    assert_eq!(big["sha256"], sha256_hex(&content).as_str(), "{manifest}");
    assert_eq!(big["size"], content.len() as u64);
    assert_eq!(
        r.ssh(user, "sha256sum < ~/.local/share/ferry/app/current/big")
            .split_whitespace()
            .next()
            .unwrap(),
        sha256_hex(&content)
    );
    let dirs = release_dirs(user, "app");
    assert!(!dirs.iter().any(|d| d.contains("partial")), "{dirs:?}");
    assert!(dirs.contains(&v1.trim_start_matches("releases/").to_string()));
    // The same again: nothing to do (the hash learned by the upload is the file's).
    let run = p.ferry(&["--output", "json", "deploy"]);
    run.assert_code(0);
    assert_eq!(result(&run)["result"], "unchanged", "{run}");

    // Another size again, then changed (its first bytes, hashed before the upload took the
    // hash over) while ferry waits before the upload.
    let mut changed = content.clone();
    changed.extend_from_slice(b"three");
    p.write("big", &changed);
    settle(&p.path("big"));
    let (hash_gate, upload_gate) = (Gate::new(), Gate::new());
    let pauses = format!("{},{}", hash_gate.env("hash"), upload_gate.env("upload"));
    let mut bg = Bg::spawn(
        &p,
        &["--output", "json", "deploy"],
        &[("FERRY_FAULT_PAUSE", &pauses)],
    );
    bg.wait_for_line("FERRY_FAULT_PAUSE=upload");
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(p.path("big"))
            .unwrap();
        f.write_all_at(b"CHANGED", 0).unwrap();
    }
    upload_gate.open();
    let run = bg.finish();
    run.assert_code(1);
    let reason = result(&run)["reason"].as_str().unwrap().to_string();
    assert!(
        reason.contains("big changed while it was being deployed"),
        "{run}"
    );
    assert!(reason.contains("nothing went live"), "{run}");
    assert_eq!(current(user, "app"), v2);
    assert_eq!(started_from(user, "app"), v2);
    assert_eq!(current_manifest(user, "app")["id"], sealed.as_str());
    let dirs = release_dirs(user, "app");
    assert!(!dirs.iter().any(|d| d.contains("partial")), "{dirs:?}");

    // Stable again: deployed, with the hash of what it is now.
    let run = p.ferry(&["--output", "json", "deploy"]);
    run.assert_code(0);
    let v3 = release_of(&run);
    assert_eq!(current(user, "app"), v3);
    assert_eq!(started_from(user, "app"), v3);
    let now = std::fs::read(p.path("big")).unwrap();
    let manifest = current_manifest(user, "app");
    let big = manifest_file(&manifest, "big");
    assert_eq!(big["sha256"], sha256_hex(&now).as_str(), "{manifest}");
}
