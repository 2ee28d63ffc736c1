//! `ferry logs` and `ferry status` against the real test remote (tests/remote/ferry-remote).
//!
//! Uses only the remote users ferry9, ferry10 and ferry11 (other users belong to other tests).
//! Units are installed by hand over plain ssh (`ferry deploy` is not used). Tests that share a
//! user hold that user's lock, as some of them kill the user's sessions or count its processes.
//! Without the FERRY_TEST_* environment these tests fail, saying how to start the remote.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

// ---------------------------------------------------------------------------------------------
// Minimal support (self-contained until the shared tests/support module exists).

const USERS: [&str; 3] = ["ferry9", "ferry10", "ferry11"];
static LOCKS: [Mutex<()>; 3] = [Mutex::new(()), Mutex::new(()), Mutex::new(())];

/// Lock the given users (always in the same order, so tests cannot deadlock).
fn lock(users: &[&str]) -> Vec<MutexGuard<'static, ()>> {
    USERS
        .iter()
        .enumerate()
        .filter(|(_, u)| users.contains(u))
        .map(|(i, _)| LOCKS[i].lock().unwrap_or_else(|e| e.into_inner()))
        .collect()
}

struct Remote {
    host: String,
    port: String,
    key: String,
    known_hosts: String,
    script: String,
}

fn remote() -> Remote {
    let var = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| {
            panic!(
                "{name} is not set: these tests need the test remote. Start it and load its \
                 environment:\n  sudo tests/remote/ferry-remote start\n  eval \"$(tests/remote/ferry-remote env)\"\n\
                 then run the tests again."
            )
        })
    };
    Remote {
        host: var("FERRY_TEST_HOST"),
        port: var("FERRY_TEST_PORT"),
        key: var("FERRY_TEST_KEY"),
        known_hosts: var("FERRY_TEST_KNOWN_HOSTS"),
        script: var("FERRY_TEST_REMOTE"),
    }
}

impl Remote {
    fn ssh_cmd(&self, user: &str, script: &str) -> Command {
        let mut c = Command::new("ssh");
        c.args(["-F", "/dev/null", "-i", &self.key, "-p", &self.port])
            .args(["-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes"])
            .args([
                "-o",
                "StrictHostKeyChecking=yes",
                "-o",
                "GlobalKnownHostsFile=/dev/null",
            ])
            .arg("-o")
            .arg(format!("UserKnownHostsFile={}", self.known_hosts))
            .args(["-o", "LogLevel=ERROR", "-o", "ConnectTimeout=5"])
            .arg(format!("{user}@{}", self.host))
            .arg(script);
        c
    }

    /// Run a shell script as `user` on the remote; panic when it fails.
    fn ssh(&self, user: &str, script: &str) -> String {
        self.ssh_stdin(user, script, b"")
    }

    fn ssh_stdin(&self, user: &str, script: &str, stdin: &[u8]) -> String {
        let mut child = self
            .ssh_cmd(user, script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ssh runs");
        child.stdin.take().unwrap().write_all(stdin).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "ssh {user} `{script}` failed: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Install a user unit file on the remote (by hand: ferry deploy is not used here).
    fn install_unit(&self, user: &str, name: &str, text: &str) {
        self.ssh_stdin(
            user,
            &format!("mkdir -p ~/.config/systemd/user && cat > ~/.config/systemd/user/{name}"),
            text.as_bytes(),
        );
    }

    /// Remove units (stopped, reset, deleted) so that every test starts from nothing.
    fn remove_units(&self, user: &str, names: &[&str]) {
        let n = names.join(" ");
        self.ssh(
            user,
            &format!(
                "systemctl --user stop {n} 2>/dev/null; systemctl --user reset-failed {n} 2>/dev/null; \
                 cd ~/.config/systemd/user 2>/dev/null && rm -f {n}; systemctl --user daemon-reload"
            ),
        );
    }

    /// Root on the remote (through ferry-remote exec).
    fn root(&self, args: &[&str]) -> Output {
        Command::new(&self.script)
            .arg("exec")
            .args(args)
            .output()
            .expect("ferry-remote exec runs")
    }
}

/// A service for [`Setup::new`]: name, host names, units as (file name, text).
type ServiceSpec<'a> = (&'a str, &'a [&'a str], &'a [(&'a str, &'a str)]);

/// A temp directory with a deploy.toml and local copies of the unit files.
struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    /// `hosts`: (name, remote user). `services`: (name, host names, units as (file name, text)).
    fn new(hosts: &[(&str, &str)], services: &[ServiceSpec]) -> Setup {
        let r = remote();
        let dir = tempfile::tempdir().unwrap();
        let mut toml = format!(
            "[defaults]\nport = {}\nidentity = \"{}\"\nknown_hosts = \"{}\"\n",
            r.port, r.key, r.known_hosts
        );
        for (name, user) in hosts {
            toml.push_str(&format!(
                "\n[hosts.{name}]\naddress = \"{}\"\nuser = \"{user}\"\n",
                r.host
            ));
        }
        for (name, svc_hosts, units) in services {
            let mut names = Vec::new();
            for (unit, text) in *units {
                std::fs::write(dir.path().join(unit), text).unwrap();
                names.push(format!("\"{unit}\""));
            }
            let hs: Vec<String> = svc_hosts.iter().map(|h| format!("\"{h}\"")).collect();
            toml.push_str(&format!(
                "\n[services.{name}]\nhosts = [{}]\nunits = [{}]\n",
                hs.join(", "),
                names.join(", ")
            ));
        }
        std::fs::write(dir.path().join("deploy.toml"), toml).unwrap();
        Setup { dir }
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("deploy.toml")
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_ferry"));
        c.arg("--config")
            .arg(self.config())
            .args(args)
            .env_remove("NO_COLOR");
        c
    }

    fn run(&self, args: &[&str]) -> Run {
        let out = self.command(args).output().expect("ferry runs");
        Run {
            code: out.status.code(),
            stdout: out.stdout,
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Start ferry with stdout read line by line in a thread: (arrival time, line).
    fn spawn(&self, args: &[&str]) -> Running {
        let mut child = self
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ferry starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            let mut line = Vec::new();
            loop {
                line.clear();
                match r.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let _ = tx.send((SystemTime::now(), line.clone()));
                    }
                }
            }
        });
        let stderr = child.stderr.take().unwrap();
        let (etx, erx) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = etx.send(l);
            }
        });
        Running {
            child,
            lines: rx,
            stderr: erx,
            got: Vec::new(),
        }
    }
}

struct Run {
    code: Option<i32>,
    stdout: Vec<u8>,
    stderr: String,
}

impl Run {
    fn text(&self) -> String {
        String::from_utf8(self.stdout.clone()).expect("ferry's stdout is UTF-8")
    }
    fn json(&self) -> Vec<Value> {
        self.text()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect()
    }
    fn ok(&self) -> &Self {
        assert_eq!(self.code, Some(0), "ferry failed; stderr:\n{}", self.stderr);
        self
    }
}

struct Running {
    child: Child,
    lines: mpsc::Receiver<(SystemTime, Vec<u8>)>,
    stderr: mpsc::Receiver<String>,
    got: Vec<(SystemTime, String)>,
}

impl Running {
    /// Wait until `pred` holds for the lines read so far (or panic after `timeout`).
    fn wait_for(
        &mut self,
        timeout: Duration,
        what: &str,
        pred: impl Fn(&[(SystemTime, String)]) -> bool,
    ) {
        let end = Instant::now() + timeout;
        while !pred(&self.got) {
            let left = end.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok((t, l)) => {
                    let s = String::from_utf8(l).expect("ferry's stdout is UTF-8");
                    self.got.push((t, s.trim_end_matches('\n').to_string()));
                }
                Err(_) => panic!(
                    "timed out waiting for {what}; got {} lines, last: {:?}; stderr: {:?}",
                    self.got.len(),
                    self.got.last(),
                    self.stderr.try_iter().collect::<Vec<_>>()
                ),
            }
        }
    }

    fn signal(&self, sig: &str) {
        // The shell's built-in kill: no dependency on a kill binary.
        let st = Command::new("sh")
            .arg("-c")
            .arg(format!("kill -{sig} {}", self.child.id()))
            .status()
            .unwrap();
        assert!(st.success());
    }

    /// Wait for ferry to exit (at most `timeout`); returns its code and the rest of stdout/stderr.
    fn finish(mut self, timeout: Duration) -> (Option<i32>, Vec<String>, String) {
        let end = Instant::now() + timeout;
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > end {
                let _ = self.child.kill();
                panic!("ferry did not exit within {timeout:?} after the signal");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        // ferry has exited: read its output to the end (the reader threads stop at EOF and
        // drop their senders), rather than guessing how long the last lines take.
        let drain_end = Instant::now() + Duration::from_secs(30);
        loop {
            let left = drain_end.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok((t, l)) => self
                    .got
                    .push((t, String::from_utf8(l).unwrap().trim_end().to_string())),
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    panic!("ferry's stdout was still open 30 s after it exited")
                }
            }
        }
        let mut stderr = Vec::new();
        loop {
            let left = drain_end.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(l) => stderr.push(l),
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    panic!("ferry's stderr was still open 30 s after it exited")
                }
            }
        }
        (
            status.code(),
            std::mem::take(&mut self.got)
                .into_iter()
                .map(|(_, l)| l)
                .collect(),
            stderr.join("\n"),
        )
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A fresh token so a test recognises its own lines among earlier runs'.
fn token() -> String {
    let n = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("t{:x}", n % 0xffff_ffff_ffff)
}

/// A unit running a shell script (as `sh -c`), never restarted. The script is escaped for
/// systemd's command line: C escapes, `$` variables and `%` specifiers.
fn script_unit(script: &str) -> String {
    let escaped = script
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('$', "$$")
        .replace('%', "%%");
    format!(
        "[Unit]\nDescription=ferry logs test\n\n[Service]\nExecStart=/bin/sh -c \"{escaped}\"\n"
    )
}

/// Start units freshly on the remote.
fn start_units(r: &Remote, user: &str, units: &[(&str, &str)]) {
    for (name, text) in units {
        r.install_unit(user, name, text);
    }
    let names: Vec<&str> = units.iter().map(|(n, _)| *n).collect();
    r.ssh(
        user,
        &format!(
            "systemctl --user daemon-reload && systemctl --user restart {}",
            names.join(" ")
        ),
    );
}

/// Wait until `journalctl -u unit` on the remote contains `needle` (the unit got that far).
fn wait_journal(r: &Remote, user: &str, unit: &str, needle: &str) {
    // A bounded number of tries (not a wall-clock bound: each try waits for the host).
    for _ in 0..100 {
        let out = r.ssh(
            user,
            &format!(
                "journalctl --user -u {unit} -o cat --no-pager | grep -c -- '{needle}' || true"
            ),
        );
        if out.trim() != "0" && !out.trim().is_empty() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("{unit} of {user} never logged {needle}");
}

fn journalctl_pids(r: &Remote, user: &str) -> String {
    r.ssh(user, &format!("pgrep -u {user} -x journalctl -a || true"))
        .trim()
        .to_string()
}

/// `n=NUMBER` in a line.
fn number(line: &str) -> Option<u64> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix("n="))
        .and_then(|n| n.parse().ok())
}

// ---------------------------------------------------------------------------------------------
// ferry logs

/// -n 5 prints exactly the last 5 entries; --since filters by time; --output json carries the
/// fields (and PRIORITY from a `<3>` prefix).
#[test]
fn logs_last_n_since_and_json() {
    let _g = lock(&["ferry9"]);
    let r = remote();
    let tok = token();
    let unit = "flt-numbers.service";
    let text = script_unit(&format!(
        "for i in $(seq 1 10); do echo {tok} n=$i; done; sleep 3; \
         for i in $(seq 11 19); do echo {tok} n=$i; done; echo '<3>'{tok} n=20; exec sleep infinity"
    ));
    let s = Setup::new(
        &[("a", "ferry9")],
        &[
            ("numbers", &["a"], &[(unit, &text)]),
            (
                "other",
                &["a"],
                &[(
                    "flt-not-installed.service",
                    "[Service]\nExecStart=/bin/true\n",
                )],
            ),
        ],
    );
    start_units(&r, "ferry9", &[(unit, &text)]);
    wait_journal(&r, "ferry9", unit, &format!("{tok} n=20"));

    // --unit: any unit, not only the service's own.
    let run = s.run(&["logs", "other", "--unit", unit, "-n", "2"]);
    run.ok();
    let nums: Vec<u64> = run.text().lines().filter_map(number).collect();
    assert_eq!(nums, vec![19, 20], "{}", run.text());

    let run = s.run(&["logs", "numbers", "-n", "5"]);
    run.ok();
    let lines: Vec<String> = run.text().lines().map(String::from).collect();
    assert_eq!(lines.len(), 5, "{lines:?}");
    let nums: Vec<u64> = lines.iter().filter_map(|l| number(l)).collect();
    assert_eq!(nums, vec![16, 17, 18, 19, 20], "{lines:?}");
    // `TIMESTAMP UNIT[PID]: MESSAGE`, no host column with one host.
    assert!(
        lines[0].contains(&format!(" {unit}[")) && lines[0].ends_with(&format!("]: {tok} n=16")),
        "{}",
        lines[0]
    );

    // 25: the user manager's "Started" message may sit among the first lines.
    let json = s.run(&["--output", "json", "logs", "numbers", "-n", "25"]);
    json.ok();
    let entries = json.json();
    let mine: Vec<&Value> = entries
        .iter()
        .filter(|e| e["message"].as_str().unwrap_or("").starts_with(&tok))
        .collect();
    assert_eq!(mine.len(), 20, "{entries:?}");
    for e in &mine {
        assert_eq!(e["type"], "entry");
        assert_eq!(e["host"], "a");
        assert_eq!(e["unit"], unit);
        assert!(e["timestamp"].as_str().unwrap().ends_with('Z'), "{e}");
        assert!(e["timestamp_us"].as_u64().unwrap() > 1_600_000_000_000_000);
        assert!(e["pid"].as_u64().unwrap() > 1);
        assert!(e["cursor"].as_str().unwrap().starts_with("s="), "{e}");
    }
    assert_eq!(mine[0]["priority"], 6);
    assert_eq!(mine[19]["priority"], 3, "the <3> prefix sets PRIORITY");
    assert_eq!(mine[19]["message"], format!("{tok} n=20"));

    // --since at one second before n=11 (n=10 was written 3 s earlier).
    let t11 = mine[10]["timestamp_us"].as_u64().unwrap() / 1_000_000 - 1;
    let since = format!("@{t11}");
    let run = s.run(&["logs", "numbers", "--since", &since]);
    run.ok();
    let nums: Vec<u64> = run
        .text()
        .lines()
        .filter(|l| l.contains(&tok))
        .filter_map(number)
        .collect();
    assert_eq!(nums, (11..=20).collect::<Vec<_>>(), "{}", run.text());

    // --grep with no match: nothing on stdout, exit 0, a note on stderr.
    let run = s.run(&["logs", "numbers", "--grep", "no-such-line-xyzzy"]);
    run.ok();
    assert!(run.stdout.is_empty());
    assert!(run.stderr.contains("no journal entries"), "{}", run.stderr);

    r.remove_units("ferry9", &[unit]);
}

/// A line written after follow started is printed within 2 s (each line carries the time it
/// was written; the remote shares this machine's clock).
#[test]
fn follow_prints_new_lines_within_two_seconds() {
    let _g = lock(&["ferry9"]);
    let r = remote();
    let tok = token();
    let unit = "flt-follow.service";
    let text = script_unit(&format!(
        "i=0; while :; do i=$((i+1)); echo {tok} n=$i ns=$(date +%s%N); sleep 0.2; done"
    ));
    let s = Setup::new(&[("a", "ferry9")], &[("tick", &["a"], &[(unit, &text)])]);
    start_units(&r, "ferry9", &[(unit, &text)]);
    let mut f = s.spawn(&["logs", "tick", "-f", "-n", "0"]);
    f.wait_for(Duration::from_secs(10), "10 lines", |g| g.len() >= 10);
    let mut worst = Duration::ZERO;
    for (at, line) in &f.got {
        let ns: u128 = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("ns="))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no ns= in {line}"));
        let printed = at.duration_since(UNIX_EPOCH).unwrap().as_nanos();
        worst = worst.max(Duration::from_nanos(printed.saturating_sub(ns) as u64));
    }
    assert!(worst < Duration::from_secs(2), "worst latency {worst:?}");
    f.signal("INT");
    let (code, _, _) = f.finish(Duration::from_secs(10));
    assert_eq!(code, Some(0));
    r.remove_units("ferry9", &[unit]);
}

/// The connection is cut from the remote side (the user's sshd session processes are killed);
/// ferry reconnects and the numbers it printed have no gap and no duplicate.
#[test]
fn follow_reconnects_without_gap_or_duplicate() {
    let _g = lock(&["ferry9"]);
    let r = remote();
    let tok = token();
    let unit = "flt-reconnect.service";
    let text = script_unit(&format!(
        "i=0; while :; do i=$((i+1)); echo {tok} n=$i; sleep 0.05; done"
    ));
    let s = Setup::new(&[("a", "ferry9")], &[("tick", &["a"], &[(unit, &text)])]);
    start_units(&r, "ferry9", &[(unit, &text)]);
    let mut f = s.spawn(&["logs", "tick", "-f", "-n", "3"]);
    f.wait_for(Duration::from_secs(10), "20 lines", |g| g.len() >= 20);
    let before = f.got.len();
    let out = r.root(&["pkill", "-KILL", "-u", "ferry9", "-x", "sshd(-session)?"]);
    assert!(
        out.status.success(),
        "pkill found no sshd of ferry9: {out:?}"
    );
    // Lines keep coming after the reconnection (the unit wrote ~20 per second meanwhile).
    f.wait_for(
        Duration::from_secs(20),
        "lines after the reconnection",
        |g| g.len() >= before + 60,
    );
    f.signal("INT");
    let (code, lines, stderr) = f.finish(Duration::from_secs(10));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("connection lost"), "{stderr}");
    assert!(stderr.contains("reconnected"), "{stderr}");
    // `-n 3` right after the start may reach back to the user manager's own "Started ..." line,
    // which is in the unit's journal too (seen on systemd 257).
    let lines: Vec<&String> = lines
        .iter()
        .filter(|l| !l.contains(&format!("Started {unit}")))
        .collect();
    let nums: Vec<u64> = lines.iter().filter_map(|l| number(l)).collect();
    assert_eq!(
        nums.len(),
        lines.len(),
        "every line is one of the unit's: {lines:?}"
    );
    for w in nums.windows(2) {
        assert_eq!(
            w[1],
            w[0] + 1,
            "gap or duplicate around {} -> {}: {nums:?}",
            w[0],
            w[1]
        );
    }
    r.remove_units("ferry9", &[unit]);
}

/// `-f -n 0` with nothing printed yet: a line the unit logs while the connection is down (sshd
/// sessions killed, the line written before ferry can reconnect) is printed once after
/// "reconnected", and a later line too. journalctl 252 skipped that line when ferry resumed
/// after a cursor of another unit's entry.
#[test]
fn follow_from_zero_lines_prints_what_was_logged_during_the_outage() {
    let user = "ferry95";
    let _g = lock(&[user]);
    let r = remote();
    let tok = token();
    let unit = "flt-outage.service";
    let fifo = format!("/home/{user}/outage.fifo");
    let text = script_unit(&format!(
        "rm -f {fifo}; mkfifo {fifo}; echo {tok} ready; while :; do read x < {fifo}; [ -n \"$x\" ] && echo {tok} $x; done"
    ));
    let s = Setup::new(&[("a", user)], &[("quiet", &["a"], &[(unit, &text)])]);
    start_units(&r, user, &[(unit, &text)]);
    wait_journal(&r, user, unit, &format!("{tok} ready"));
    let mut f = s.spawn(&["logs", "quiet", "-f", "-n", "0"]);
    // Following: ferry's journalctl runs on the host (a bounded number of polls).
    let mut tries = 0;
    while journalctl_pids(&r, user).is_empty() {
        tries += 1;
        assert!(tries < 200, "ferry's journalctl never started on the host");
        std::thread::sleep(Duration::from_millis(100));
    }
    let cut = r.root(&[
        "sh",
        "-c",
        &format!("pkill -KILL -u {user} -x 'sshd(-session)?' && echo during > {fifo}"),
    ]);
    assert!(cut.status.success(), "cut and write: {cut:?}");
    f.wait_for(
        Duration::from_secs(30),
        "the line logged during the outage",
        |g| g.iter().any(|(_, l)| l.contains(&format!("{tok} during"))),
    );
    let after = r.root(&["sh", "-c", &format!("echo after > {fifo}")]);
    assert!(after.status.success(), "write: {after:?}");
    f.wait_for(Duration::from_secs(30), "the line logged after", |g| {
        g.iter().any(|(_, l)| l.contains(&format!("{tok} after")))
    });
    f.signal("INT");
    let (code, lines, stderr) = f.finish(Duration::from_secs(10));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("reconnected"), "{stderr}");
    let mine: Vec<&String> = lines.iter().filter(|l| l.contains(&tok)).collect();
    assert_eq!(mine.len(), 2, "each line once, nothing else: {lines:?}");
    assert!(mine[0].ends_with(&format!("{tok} during")), "{lines:?}");
    assert!(mine[1].ends_with(&format!("{tok} after")), "{lines:?}");
    r.remove_units(user, &[unit]);
}

/// SIGINT and SIGTERM end follow with exit 0 and leave no journalctl of the user running.
#[test]
fn follow_stops_cleanly_on_sigint_and_sigterm() {
    let _g = lock(&["ferry9"]);
    let r = remote();
    let unit = "flt-quiet.service";
    // A quiet unit: journalctl then sits waiting, the hard case for stopping it.
    let text = script_unit("exec sleep infinity");
    let s = Setup::new(&[("a", "ferry9")], &[("quiet", &["a"], &[(unit, &text)])]);
    start_units(&r, "ferry9", &[(unit, &text)]);
    for sig in ["INT", "TERM"] {
        assert_eq!(
            journalctl_pids(&r, "ferry9"),
            "",
            "a journalctl was left before the test"
        );
        // -v: ferry says (debug) when journalctl ignored the channel's SIGTERM and it had to
        // fall back to killing it by pid.
        let f = s.spawn(&["-v", "logs", "quiet", "-f"]);
        let end = Instant::now() + Duration::from_secs(10);
        while journalctl_pids(&r, "ferry9").is_empty() {
            assert!(Instant::now() < end, "ferry's journalctl never started");
            std::thread::sleep(Duration::from_millis(100));
        }
        f.signal(sig);
        let (code, _, stderr) = f.finish(Duration::from_secs(10));
        assert_eq!(code, Some(0), "SIG{sig}: {stderr}");
        // SIGTERM over the channel stopped journalctl: the by-pid fallback was not needed.
        assert!(
            stderr.contains("stopping journalctl"),
            "SIG{sig}: no debug output with -v:\n{stderr}"
        );
        assert!(
            !stderr.contains("killing it by pid"),
            "SIG{sig}: journalctl ignored the channel's SIGTERM:\n{stderr}"
        );
        // Checked right after ferry exited: it waits for journalctl's exit status.
        assert_eq!(
            journalctl_pids(&r, "ferry9"),
            "",
            "SIG{sig} left a journalctl running"
        );
    }
    r.remove_units("ferry9", &[unit]);
}

/// Two hosts (two users on the same address): merged in timestamp order with a host column;
/// follow shows both hosts' lines, each whole.
#[test]
fn two_hosts_merged_and_followed() {
    let _g = lock(&["ferry10", "ferry11"]);
    let r = remote();
    let tok = token();
    let unit = "flt-two.service";
    let text = |h: &str| {
        script_unit(&format!(
            "i=0; while [ $i -lt 40 ]; do i=$((i+1)); echo {tok} host={h} n=$i; sleep 0.03; done; \
             while :; do i=$((i+1)); echo {tok} host={h} n=$i; sleep 0.1; done"
        ))
    };
    let (tb, tc) = (text("hb"), text("hc"));
    let s = Setup::new(
        &[("hb", "ferry10"), ("hc", "ferry11")],
        &[("two", &["hb", "hc"], &[(unit, &tb)])],
    );
    start_units(&r, "ferry10", &[(unit, &tb)]);
    start_units(&r, "ferry11", &[(unit, &tc)]);
    wait_journal(&r, "ferry10", unit, &format!("{tok} host=hb n=40"));
    wait_journal(&r, "ferry11", unit, &format!("{tok} host=hc n=40"));

    let json = s.run(&["--output", "json", "logs", "two", "-n", "30"]);
    json.ok();
    let entries = json.json();
    assert_eq!(entries.len(), 60, "30 per host");
    let ts: Vec<u64> = entries
        .iter()
        .map(|e| e["timestamp_us"].as_u64().unwrap())
        .collect();
    assert!(
        ts.windows(2).all(|w| w[0] <= w[1]),
        "not in timestamp order: {ts:?}"
    );
    let hosts: Vec<&str> = entries
        .iter()
        .map(|e| e["host"].as_str().unwrap())
        .collect();
    assert!(
        hosts.windows(2).filter(|w| w[0] != w[1]).count() > 2,
        "not interleaved: {hosts:?}"
    );
    for e in &entries {
        let m = e["message"].as_str().unwrap();
        assert!(
            m.contains(&format!("host={}", e["host"].as_str().unwrap())),
            "{e}"
        );
    }

    let human = s.run(&["logs", "two", "-n", "5"]);
    human.ok();
    for l in human.text().lines() {
        let host = l.split_whitespace().next().unwrap();
        assert!(host == "hb" || host == "hc", "{l}");
        assert!(
            l.ends_with(&format!("n={}", number(l).unwrap()))
                && l.contains(&format!("host={host}")),
            "{l}"
        );
    }

    let mut f = s.spawn(&["logs", "two", "-f", "-n", "0"]);
    f.wait_for(Duration::from_secs(15), "lines of both hosts", |g| {
        g.len() >= 20
            && g.iter().any(|(_, l)| l.starts_with("hb "))
            && g.iter().any(|(_, l)| l.starts_with("hc "))
    });
    f.signal("INT");
    let (code, lines, stderr) = f.finish(Duration::from_secs(10));
    assert_eq!(code, Some(0), "{stderr}");
    for l in &lines {
        // Whole lines: `HOST TIMESTAMP UNIT[PID]: TOKEN host=HOST n=N`, the host matching.
        let host = l.split_whitespace().next().unwrap();
        assert!(
            l.contains(&format!(" {unit}[")) && l.contains(&format!(": {tok} host={host} n=")),
            "mixed or broken line: {l:?}"
        );
        assert!(
            l.split_whitespace().last().unwrap().starts_with("n="),
            "{l:?}"
        );
    }
    r.remove_units("ferry10", &[unit]);
    r.remove_units("ferry11", &[unit]);
}

/// Invalid UTF-8, an ANSI escape sequence, an OSC title sequence and a bell are printed escaped.
#[test]
fn hostile_bytes_are_printed_safely() {
    let _g = lock(&["ferry9"]);
    let r = remote();
    let tok = token();
    let unit = "flt-bytes.service";
    let text = script_unit(&format!(
        "printf '{tok} bad \\377\\376 \\033[31mred\\033[0m \\033]0;title\\007 end\\n'; exec sleep infinity"
    ));
    let s = Setup::new(&[("a", "ferry9")], &[("bytes", &["a"], &[(unit, &text)])]);
    start_units(&r, "ferry9", &[(unit, &text)]);
    wait_journal(&r, "ferry9", unit, &format!("{tok} bad"));

    // -n 5: systemd's own "Started" line about the unit may be stored after the process's.
    let run = s.run(&["logs", "bytes", "-n", "5"]);
    run.ok();
    let out = String::from_utf8(run.stdout.clone()).expect("stdout stays valid UTF-8");
    assert!(
        !out.contains('\x1b') && !out.contains('\x07'),
        "raw control bytes: {out:?}"
    );
    assert!(
        out.contains(&format!(
            "{tok} bad \\xff\\xfe \\u{{1b}}[31mred\\u{{1b}}[0m \\u{{1b}}]0;title\\u{{7}} end"
        )),
        "{out:?}"
    );

    let json = s.run(&["--output", "json", "logs", "bytes", "-n", "5"]);
    json.ok();
    let entries = json.json();
    // This run's line (the last 5 entries may hold an earlier run's line too).
    let e = entries
        .iter()
        .find(|e| {
            e["message_bytes"].as_array().is_some_and(|b| {
                b.iter()
                    .map(|b| b.as_u64().unwrap_or(0) as u8)
                    .collect::<Vec<u8>>()
                    .starts_with(tok.as_bytes())
            })
        })
        .unwrap_or_else(|| panic!("no entry with message_bytes: {entries:#?}"));
    let bytes: Vec<u8> = e["message_bytes"]
        .as_array()
        .expect("message_bytes for a non-UTF-8 message")
        .iter()
        .map(|b| b.as_u64().unwrap() as u8)
        .collect();
    let mut want = format!("{tok} bad ").into_bytes();
    want.extend_from_slice(b"\xff\xfe \x1b[31mred\x1b[0m \x1b]0;title\x07 end");
    assert_eq!(bytes, want);
    r.remove_units("ferry9", &[unit]);
}

// ---------------------------------------------------------------------------------------------
// ferry status

const ACTIVE: &str =
    "[Service]\nExecStart=/bin/sleep infinity\n\n[Install]\nWantedBy=default.target\n";
const FAILED: &str = "[Service]\nExecStart=/bin/false\n";
const STOPPED: &str = "[Service]\nExecStart=/bin/sleep infinity\n";
const SOCKET: &str =
    "[Socket]\nListenStream=%t/flt-st.sock\n\n[Install]\nWantedBy=sockets.target\n";
const SOCKET_SERVICE: &str = "[Service]\nExecStart=/bin/sleep infinity\n";

fn unit_row<'a>(rows: &'a [Value], host: &str, unit: &str) -> &'a Value {
    rows.iter()
        .find(|r| r["type"] == "unit" && r["host"] == host && r["unit"] == unit)
        .unwrap_or_else(|| panic!("no row for {host} {unit}: {rows:?}"))
}

/// Active service, listening socket with its idle service, failed service, stopped service:
/// each reported with its fields; exit 0 only when all are up.
#[test]
fn status_reports_states_and_exit_codes() {
    let _g = lock(&["ferry11"]);
    let r = remote();
    let user = "ferry11";
    let units = [
        "flt-st-active.service",
        "flt-st.socket",
        "flt-st.service",
        "flt-st-failed.service",
        "flt-st-stopped.service",
    ];
    r.remove_units(user, &units);
    let s = Setup::new(
        &[("h", user)],
        &[
            (
                "up",
                &["h"],
                &[
                    ("flt-st-active.service", ACTIVE),
                    ("flt-st.socket", SOCKET),
                    ("flt-st.service", SOCKET_SERVICE),
                ],
            ),
            ("broken", &["h"], &[("flt-st-failed.service", FAILED)]),
            ("stopped", &["h"], &[("flt-st-stopped.service", STOPPED)]),
        ],
    );
    for (name, text) in [
        ("flt-st-active.service", ACTIVE),
        ("flt-st.socket", SOCKET),
        ("flt-st.service", SOCKET_SERVICE),
        ("flt-st-failed.service", FAILED),
        ("flt-st-stopped.service", STOPPED),
    ] {
        r.install_unit(user, name, text);
    }
    // `current` as ferry deploy lays it out, for service "up" only.
    let release = "20261124T123456Z-1a2b3c4d";
    r.ssh(
        user,
        &format!(
            "rm -rf ~/.local/share/ferry/up ~/.local/share/ferry/broken ~/.local/share/ferry/stopped; \
             mkdir -p ~/.local/share/ferry/up/releases/{release} && \
             ln -sfn releases/{release} ~/.local/share/ferry/up/current && \
             systemctl --user daemon-reload && systemctl --user enable --now flt-st-active.service flt-st.socket && \
             systemctl --user start flt-st-failed.service; \
             for i in $(seq 50); do [ \"$(systemctl --user is-failed flt-st-failed.service)\" = failed ] && break; sleep 0.1; done"
        ),
    );

    // All up: the active service, the listening socket, the idle socket-activated service.
    let run = s.run(&["--output", "json", "status", "up"]);
    assert_eq!(run.code, Some(0), "{}\n{}", run.text(), run.stderr);
    let rows = run.json();
    let active = unit_row(&rows, "h", "flt-st-active.service");
    assert_eq!(active["active_state"], "active");
    assert_eq!(active["sub_state"], "running");
    assert_eq!(active["ok"], true);
    assert!(active["main_pid"].as_u64().unwrap() > 1);
    assert_eq!(active["enabled"], "enabled");
    assert_eq!(active["release"], release);
    assert_eq!(active["restarts"], 0);
    assert!(active["since"].as_str().unwrap().ends_with('Z'));
    assert!(active["since_seconds"].as_u64().unwrap() < 600);
    assert!(active.get("memory_bytes").is_some());
    assert_eq!(active["listening"], Value::Null);
    let sock = unit_row(&rows, "h", "flt-st.socket");
    assert_eq!(sock["listening"], true);
    assert_eq!(sock["sub_state"], "listening");
    assert!(
        sock["listen"][0].as_str().unwrap().contains("flt-st.sock"),
        "{sock}"
    );
    let idle = unit_row(&rows, "h", "flt-st.service");
    assert_eq!(idle["active_state"], "inactive");
    assert_eq!(
        idle["ok"], true,
        "socket-activated and the socket listens: {idle}"
    );
    let summary = rows.iter().find(|r| r["type"] == "summary").unwrap();
    assert_eq!(summary["down"], 0);

    // Human table on a pipe: plain text, one row per unit.
    let run = s.run(&["status", "up"]);
    assert_eq!(run.code, Some(0));
    let text = run.text();
    assert!(
        !text.contains('\x1b'),
        "no colour when not a terminal: {text:?}"
    );
    assert!(text.lines().next().unwrap().starts_with("HOST"), "{text}");
    assert!(
        text.contains(release) && text.contains("listening on"),
        "{text}"
    );

    // Failed service: exit 1.
    let run = s.run(&["--output", "json", "status", "broken"]);
    assert_eq!(run.code, Some(1), "{}", run.text());
    let rows = run.json();
    let failed = unit_row(&rows, "h", "flt-st-failed.service");
    assert_eq!(failed["active_state"], "failed");
    assert_eq!(failed["result"], "exit-code");
    assert_eq!(failed["ok"], false);
    assert_eq!(failed["release"], Value::Null);

    // Stopped service: exit 1.
    let run = s.run(&["--output", "json", "status", "stopped"]);
    assert_eq!(run.code, Some(1), "{}", run.text());
    let stopped = unit_row(&run.json(), "h", "flt-st-stopped.service").clone();
    assert_eq!(stopped["active_state"], "inactive");
    assert_eq!(stopped["ok"], false);
    assert_eq!(stopped["note"], "stopped");

    // The socket stopped: its service no longer counts as up.
    r.ssh(user, "systemctl --user stop flt-st.socket");
    let run = s.run(&["--output", "json", "status", "up"]);
    assert_eq!(run.code, Some(1), "{}", run.text());
    let rows = run.json();
    assert_eq!(unit_row(&rows, "h", "flt-st.socket")["listening"], false);
    assert_eq!(unit_row(&rows, "h", "flt-st.service")["ok"], false);

    // All services at once: exit 1, every unit listed.
    let run = s.run(&["--output", "json", "status"]);
    assert_eq!(run.code, Some(1));
    assert_eq!(
        run.json().iter().filter(|r| r["type"] == "unit").count(),
        units.len()
    );

    r.ssh(
        user,
        "systemctl --user disable flt-st-active.service flt-st.socket 2>/dev/null; rm -rf ~/.local/share/ferry/up",
    );
    r.remove_units(user, &units);
}

/// An unreachable host is reported, with exit code 3 (connection), next to a reachable one.
#[test]
fn status_with_an_unreachable_host() {
    let _g = lock(&["ferry10"]);
    let r = remote();
    let user = "ferry10";
    let unit = "flt-st-reach.service";
    r.remove_units(user, &[unit]);
    let s = Setup::new(
        &[("ok", user), ("gone", user)],
        &[("reach", &["ok", "gone"], &[(unit, ACTIVE)])],
    );
    // Point host "gone" at a closed port.
    let cfg = std::fs::read_to_string(s.config()).unwrap();
    let cfg = cfg.replace(
        "[hosts.gone]\n",
        "[hosts.gone]\nport = 1\nconnect_timeout = \"2s\"\n",
    );
    std::fs::write(s.config(), cfg).unwrap();
    start_units(&r, user, &[(unit, ACTIVE)]);
    let run = s.run(&["--output", "json", "status"]);
    assert_eq!(run.code, Some(3), "{}\n{}", run.text(), run.stderr);
    let rows = run.json();
    assert_eq!(unit_row(&rows, "ok", unit)["ok"], true);
    assert!(
        rows.iter()
            .any(|r| r["type"] == "host" && r["host"] == "gone"),
        "{rows:?}"
    );
    r.remove_units(user, &[unit]);
}
