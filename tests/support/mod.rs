//! Test support: the real test remote (started by `tests/remote/ferry-remote start`) and a
//! `Project` that runs the real `ferry` binary in a temporary directory with its own deploy.toml.
//!
//! Tests that run at the same time never share a remote user: each test takes its own user
//! from the lingering users ferry1..ferry12 (see the table in tests/lib.rs), and its own
//! loopback ports (the remote shares the host's network).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

/// Coordinates of the test remote, from the environment `ferry-remote env` prints.
#[derive(Debug, Clone)]
pub struct Remote {
    pub host: String,
    pub port: u16,
    pub key: PathBuf,
    pub known_hosts: PathBuf,
    pub wrong_known_hosts: PathBuf,
    pub unknown_key: PathBuf,
    pub rsa_key: PathBuf,
    pub enc_key: PathBuf,
    pub enc_key_passphrase: String,
    pub nolinger_user: String,
    pub system_user: String,
    pub script: PathBuf,
}

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "\n\nthe test remote is not set up: {name} is not set.\n\
             Run the whole suite with `tests/run` (README), or start the remote by hand:\n  \
             sudo tests/remote/ferry-remote start && eval \"$(tests/remote/ferry-remote env)\"\n\
             then run cargo test again in that shell.\n"
        )
    })
}

/// The test remote; panics (loudly, with what to do) when it is not configured.
pub fn remote() -> &'static Remote {
    static REMOTE: OnceLock<Remote> = OnceLock::new();
    REMOTE.get_or_init(|| {
        let r = Remote {
            host: var("FERRY_TEST_HOST"),
            port: var("FERRY_TEST_PORT").parse().expect("FERRY_TEST_PORT is a port"),
            key: var("FERRY_TEST_KEY").into(),
            known_hosts: var("FERRY_TEST_KNOWN_HOSTS").into(),
            wrong_known_hosts: var("FERRY_TEST_WRONG_KNOWN_HOSTS").into(),
            unknown_key: var("FERRY_TEST_UNKNOWN_KEY").into(),
            rsa_key: var("FERRY_TEST_RSA_KEY").into(),
            enc_key: var("FERRY_TEST_ENC_KEY").into(),
            enc_key_passphrase: var("FERRY_TEST_ENC_KEY_PASSPHRASE"),
            nolinger_user: var("FERRY_TEST_NOLINGER_USER"),
            system_user: var("FERRY_TEST_SYSTEM_USER"),
            script: var("FERRY_TEST_REMOTE").into(),
        };
        // Fail loudly and early if it is configured but not running.
        let out = r.ssh_raw("ferry1", "true");
        assert!(
            out.status.success(),
            "\n\nthe test remote at {}:{} does not answer ({}).\nStart it: sudo tests/remote/ferry-remote start\n",
            r.host,
            r.port,
            String::from_utf8_lossy(&out.stderr).trim()
        );
        r
    })
}

impl Remote {
    /// OpenSSH's ssh as `user`, with strict host key checking against the pinned key.
    pub fn ssh_raw(&self, user: &str, command: &str) -> Output {
        Command::new("ssh")
            .args([
                "-F",
                "/dev/null",
                "-o",
                "BatchMode=yes",
                "-o",
                "StrictHostKeyChecking=yes",
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "ConnectTimeout=10",
                "-o",
                "LogLevel=ERROR",
            ])
            .arg("-o")
            .arg(format!("UserKnownHostsFile={}", self.known_hosts.display()))
            .arg("-i")
            .arg(&self.key)
            .arg("-p")
            .arg(self.port.to_string())
            .arg(format!("{user}@{}", self.host))
            .arg(command)
            .stdin(Stdio::null())
            .output()
            .expect("ssh runs")
    }

    /// Run `command` as `user` in the background with its stdin open; it runs until the
    /// returned [`Held`] is dropped (stdin closed, then the ssh client killed). Returns once
    /// the command has printed `ready` on stdout.
    pub fn hold(&self, user: &str, command: &str, ready: &str) -> Held {
        use std::io::BufRead;
        let mut child = Command::new("ssh")
            .args([
                "-F",
                "/dev/null",
                "-o",
                "BatchMode=yes",
                "-o",
                "StrictHostKeyChecking=yes",
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "LogLevel=ERROR",
            ])
            .arg("-o")
            .arg(format!("UserKnownHostsFile={}", self.known_hosts.display()))
            .arg("-i")
            .arg(&self.key)
            .arg("-p")
            .arg(self.port.to_string())
            .arg(format!("{user}@{}", self.host))
            .arg(command)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("ssh runs");
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let found = lines
            .by_ref()
            .map_while(Result::ok)
            .any(|l| l.contains(ready));
        assert!(found, "`{command}` as {user} never printed {ready:?}");
        Held { child }
    }

    /// Run a command as `user` on the remote; panics with its stderr when it fails.
    pub fn ssh(&self, user: &str, command: &str) -> String {
        let out = self.ssh_raw(user, command);
        assert!(
            out.status.success(),
            "ssh {user} `{command}` failed: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Run a command as root inside the remote.
    pub fn root(&self, command: &str) -> Output {
        Command::new(&self.script)
            .args(["exec", "sh", "-c", command])
            .stdin(Stdio::null())
            .output()
            .expect("ferry-remote exec runs")
    }

    /// Run a command as root inside the remote with `input` on its stdin.
    pub fn root_stdin(&self, command: &str, input: &[u8]) -> Output {
        use std::io::Write;
        let mut child = Command::new(&self.script)
            .args(["exec", "sh", "-c", command])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ferry-remote exec runs");
        child.stdin.take().unwrap().write_all(input).unwrap();
        child.wait_with_output().expect("ferry-remote exec ends")
    }

    /// A clean slate for `user`: its units stopped and removed, ferry's files gone.
    pub fn reset(&self, user: &str) {
        self.ssh(
            user,
            "systemctl --user list-units --all --plain --no-legend 'ferry-*' '*.socket' '*.service' '*.timer' 2>/dev/null \
               | awk '{print $1}' | grep -v -e '^dbus' -e '^init.scope' -e '^systemd-' | xargs -r systemctl --user stop 2>/dev/null; \
             rm -rf ~/.config/systemd/user/* ~/.local/share/ferry; \
             systemctl --user daemon-reload; systemctl --user reset-failed; true",
        );
    }

    /// `systemctl --user show UNIT -p PROP --value` as `user`, trimmed.
    pub fn unit_prop(&self, user: &str, unit: &str, prop: &str) -> String {
        self.ssh(
            user,
            &format!("systemctl --user show {unit} -p {prop} --value"),
        )
        .trim()
        .to_string()
    }

    /// `user`'s home directory on the host.
    pub fn home(&self, user: &str) -> String {
        self.ssh(user, "printf %s \"$HOME\"")
    }

    /// The directory the main process of `unit` runs in, resolved (`/proc/PID/cwd`): test
    /// services `cd` into the resolved release directory when they start, so this is the
    /// release the running process *started* from, whatever `current` says now.
    pub fn started_from(&self, user: &str, unit: &str) -> String {
        let pid = self.unit_prop(user, unit, "MainPID");
        assert!(
            pid != "0" && !pid.is_empty(),
            "{unit} of {user} has no main process"
        );
        self.ssh(user, &format!("readlink /proc/{pid}/cwd"))
            .trim()
            .to_string()
    }

    /// What a user checks to see that a host did not change: `current` of `service`, its
    /// releases directory, the unit directory (names, symlinks, contents) and each installed
    /// unit's state and InvocationID (a restarted unit gets a new one).
    pub fn host_state(&self, user: &str, service: &str) -> String {
        self.ssh(
            user,
            &format!(
                "cd ~ && S=.local/share/ferry/{service}; echo \"current: $(readlink $S/current)\"; \
                 echo releases:; ls -a $S/releases 2>/dev/null; \
                 UD=.config/systemd/user; echo units:; \
                 find $UD -mindepth 1 -printf '%P %y %l\\n' 2>/dev/null | sort; \
                 find $UD -type f -exec sha256sum {{}} + 2>/dev/null | sort -k2; \
                 for u in $(ls $UD 2>/dev/null | grep -v -e '\\.wants$' -e '\\.requires$'); do \
                   systemctl --user show \"$u\" -p Id,ActiveState,UnitFileState,InvocationID | tr '\\n' ' '; echo; \
                 done"
            ),
        )
    }

    /// Poll `check` (a bounded number of tries, 100 ms apart) until it returns Some; panics
    /// naming `what` when it never does. For state that settles asynchronously on the host.
    pub fn poll<T>(&self, what: &str, tries: u32, mut check: impl FnMut() -> Option<T>) -> T {
        for _ in 0..tries {
            if let Some(v) = check() {
                return v;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("{what}: not reached after {tries} tries")
    }

    /// `curl http://127.0.0.1:PORT/PATH` from the test machine: the body, or None.
    pub fn http_get(&self, port: u16, path: &str) -> Option<String> {
        let out = Command::new("curl")
            .args(["-fsS", "--max-time", "5"])
            .arg(format!("http://127.0.0.1:{port}{path}"))
            .output()
            .expect("curl runs");
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

/// What a ferry run printed and how it ended.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// JSON Lines of stdout.
    pub fn json(&self) -> Vec<serde_json::Value> {
        self.stdout
            .lines()
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {l}\n{self}"))
            })
            .collect()
    }

    /// JSON events of a given type.
    pub fn events(&self, kind: &str) -> Vec<serde_json::Value> {
        self.json()
            .into_iter()
            .filter(|e| e["type"] == kind)
            .collect()
    }

    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(self.code, code, "unexpected exit code\n{self}");
        self
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit code {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// A remote command kept running by [`Remote::hold`].
pub struct Held {
    child: std::process::Child,
}

impl Drop for Held {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A temporary project directory with a deploy.toml, where the real ferry binary runs.
pub struct Project {
    pub dir: tempfile::TempDir,
}

impl Project {
    pub fn new() -> Project {
        Project {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Write a file (creating directories).
    pub fn write(&self, rel: &str, content: impl AsRef<[u8]>) -> &Self {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, content).unwrap();
        self
    }

    pub fn config(&self, toml: &str) -> &Self {
        self.write("deploy.toml", toml)
    }

    /// Run `ferry ARGS` in the project directory, with HOME pointing into it (so no personal
    /// keys or known_hosts are used) and no ssh-agent.
    pub fn ferry(&self, args: &[&str]) -> Run {
        self.ferry_env(args, &[])
    }

    pub fn ferry_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut cmd = self.command(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("ferry runs");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// The ferry command, ready to spawn.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(ferry_bin());
        cmd.args(args)
            .current_dir(self.dir.path())
            .env("HOME", self.dir.path())
            .env("USER", "tester")
            .env("NO_COLOR", "1")
            .env_remove("SSH_AUTH_SOCK")
            .env_remove("FERRY_CONFIG")
            .env_remove("RUST_LOG")
            .env_remove("FERRY_KEY_PASSPHRASE")
            .stdin(Stdio::null());
        cmd
    }
}

pub fn ferry_bin() -> &'static str {
    env!("CARGO_BIN_EXE_ferry")
}

/// The demo server binary, built by cargo as an example of this package.
pub fn demo_bin() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let bin = Path::new(ferry_bin());
            let p = bin.parent().unwrap().join("examples").join("ferry-demo");
            if !p.exists() {
                // `cargo test --all-targets` builds examples as tests only: build the binary.
                let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
                let status = Command::new(cargo)
                    .args(["build", "--example", "ferry-demo"])
                    .current_dir(env!("CARGO_MANIFEST_DIR"))
                    .status()
                    .expect("cargo runs");
                assert!(status.success(), "cargo build --example ferry-demo failed");
            }
            assert!(p.exists(), "{} is missing after building it", p.display());
            p
        })
        .clone()
}

/// A `[hosts.NAME]` table for the test remote as `user`.
pub fn host_table(name: &str, user: &str) -> String {
    let r = remote();
    format!(
        "[hosts.{name}]\naddress = \"{}\"\nport = {}\nuser = \"{user}\"\nidentity = \"{}\"\nknown_hosts = \"{}\"\nconnect_timeout = \"30s\"\n\n",
        r.host,
        r.port,
        r.key.display(),
        r.known_hosts.display()
    )
}

/// A second sshd in the test remote, on a port of its own, with the remote's sshd config (so
/// sshd's default MaxStartups): a burst of connections to it cannot disturb the logins of the
/// tests that share the main sshd (OpenSSH's client does not retry). Stopped when dropped.
pub struct OwnSshd {
    pub port: u16,
    pidfile: String,
}

impl OwnSshd {
    pub fn start() -> OwnSshd {
        OwnSshd::start_with("")
    }

    /// [`OwnSshd::start`] with more sshd options (`-o Key=Value ...`).
    pub fn start_with(options: &str) -> OwnSshd {
        OwnSshd::start_dropping(&[], options)
    }

    /// [`OwnSshd::start_with`], leaving out the config lines that start with one of `drop`
    /// (e.g. `Subsystem`: OpenSSH 9.2 refuses a second `Subsystem sftp`, even from `-o`).
    pub fn start_dropping(dropped_lines: &[&str], options: &str) -> OwnSshd {
        let r = remote();
        let dropped: String = dropped_lines
            .iter()
            .map(|d| format!(" -e '^{d}'"))
            .collect();
        // The container shares the host's network: a port free here is free there.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let pidfile = format!("/run/ferry-test-sshd-{port}.pid");
        // sshd binds its socket before it forks into the background: it listens on return.
        // The remote's sshd config, but with sshd's default MaxStartups (the main sshd's drop-in
        // raises it, and a config file's value wins over `-o`).
        let conf = format!("/run/ferry-test-sshd-{port}.conf");
        let out = r.root(&format!(
            "{{ grep -hv -e '^MaxStartups' -e '^Port' /etc/ssh/sshd_config.d/*.conf; grep -v -e '^Include'{dropped} /etc/ssh/sshd_config; }} > {conf} && \
             /usr/sbin/sshd -f {conf} -p {port} -o PidFile={pidfile} {options}"
        ));
        assert!(out.status.success(), "own sshd did not start: {out:?}");
        OwnSshd { port, pidfile }
    }

    /// A known_hosts file pinning the remote's host key for this port.
    pub fn known_hosts(&self, p: &Project) -> std::path::PathBuf {
        let r = remote();
        let pinned = std::fs::read_to_string(&r.known_hosts).unwrap();
        let kh = p.path("known_hosts.own");
        std::fs::write(
            &kh,
            pinned.replace(
                &format!("[{}]:{} ", r.host, r.port),
                &format!("[{}]:{} ", r.host, self.port),
            ),
        )
        .unwrap();
        kh
    }
}

impl OwnSshd {
    /// Restart it the way `systemctl restart ssh` does: the listener stops (sessions it
    /// started go on) and a new one takes the port.
    pub fn restart(&self) {
        let r = remote();
        let out = r.root(&format!(
            "kill $(cat {0}) && while kill -0 $(cat {0}) 2>/dev/null; do sleep 0.05; done; /usr/sbin/sshd -f /run/ferry-test-sshd-{1}.conf -p {1} -o PidFile={0}",
            self.pidfile, self.port
        ));
        assert!(out.status.success(), "own sshd did not restart: {out:?}");
    }

    /// `host_table` text pointed at this sshd.
    pub fn host_table(&self, p: &Project, name: &str, user: &str) -> String {
        let r = remote();
        host_table(name, user)
            .replace(
                &format!("port = {}\n", r.port),
                &format!("port = {}\n", self.port),
            )
            .replace(
                &r.known_hosts.display().to_string(),
                &self.known_hosts(p).display().to_string(),
            )
    }
}

impl Drop for OwnSshd {
    fn drop(&mut self) {
        remote().root(&format!("kill $(cat {0}) && rm -f {0}", self.pidfile));
    }
}
