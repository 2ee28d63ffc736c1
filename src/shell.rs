//! Quoting of remote command lines for a POSIX shell.
//!
//! SSH runs every command through the remote user's login shell, so each argument is quoted here
//! and a command line is only ever built with [`command`]. Never concatenate unquoted arguments.

/// Quote one argument so that a POSIX shell reads it back as exactly these bytes.
///
/// Plain words (letters, digits and `-_./=:@%+,`) are left as they are; everything else is put in
/// single quotes, with each `'` written as `'\''`.
pub fn quote(arg: &str) -> String {
    if !arg.is_empty()
        && arg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:@%+,".contains(&b))
    {
        return arg.to_string();
    }
    let mut out = String::with_capacity(arg.len() + 2);
    out.push('\'');
    for c in arg.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

/// A command line from a program and its arguments, each quoted.
pub fn command<I, S>(args: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    args.into_iter()
        .map(|a| quote(a.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Shell text printing `items`, each followed by a NUL byte, with the shell's own `printf` (a
/// builtin: no argument list of an executed program, however many items), for `xargs -0`.
/// With no items it prints nothing.
pub fn nul_list<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    let mut out = String::from("printf '%s\\0'");
    let mut any = false;
    for item in items {
        out.push(' ');
        out.push_str(&quote(item));
        any = true;
    }
    if !any {
        return "true".to_string();
    }
    out
}

/// A path under the remote user's home directory, as a shell word: `"$HOME"/'rel path'`.
/// `rel` must be relative.
pub fn home_path(rel: &str) -> String {
    debug_assert!(!rel.starts_with('/'));
    if rel.is_empty() {
        "\"$HOME\"".to_string()
    } else {
        format!("\"$HOME\"/{}", quote(rel))
    }
}

/// What bounds a command ferry starts on a host (see [`bounded`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bounds {
    /// Stopped (TERM, then KILL [`KILL_AFTER_SECS`] later) when it runs longer than this.
    pub timeout: Option<std::time::Duration>,
    /// A lock file (relative to the home directory) held while any process of the command
    /// lives; the command waits up to [`RUN_LOCK_WAIT_SECS`] for it, else it fails with
    /// [`RUN_LOCK_BUSY`].
    pub lock: Option<String>,
}

/// Seconds between the TERM and the KILL that end a bounded command.
pub const KILL_AFTER_SECS: u64 = 5;

/// How long a bounded command (and a deploy taking its service's lock) waits for the run lock
/// of [`Bounds::lock`]: longer than a command killed at the end of its ferry takes to die.
pub const RUN_LOCK_WAIT_SECS: u64 = 30;

/// Exit status of a bounded command that could not take its run lock.
pub const RUN_LOCK_BUSY: u32 = 76;

/// A timeout for `timeout(1)`: whole seconds, rounded up, at least 1 (0 would mean none).
fn secs(d: std::time::Duration) -> u64 {
    (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
}

/// The script that runs `script` (a `sh` script) on the host so that it ends with ferry.
///
/// The command runs in a session (process group) of its own, its stdin `/dev/null`, its
/// output the channel's (streamed as it comes), under `timeout` when `bounds` has one. A
/// watcher reads the channel's stdin, saved as fd 3 (a background job's stdin would be
/// `/dev/null`), to its end. ferry keeps that stdin open while it waits (spawn the script
/// with stdin open: a closed one ends the command at once), so when ferry exits, is killed
/// or gives up on the channel, sshd closes it and the watcher ends the whole group, TERM
/// then KILL. The watcher holds neither stdout nor stderr (sshd would wait for it), and is
/// stopped once the command exits; whatever the command left running in its group is sent
/// TERM then. With a lock, the command's processes hold it (fd 9) as long as any lives.
///
/// The host needs `setsid` and `flock` (util-linux) and `timeout` (coreutils). The script
/// exits with the command's status (128 + N when a signal N killed it, as a shell running the
/// command itself says); it must be the last part of a script.
pub fn bounded(script: &str, bounds: &Bounds) -> String {
    let mut s = String::from("exec 3<&0 </dev/null\n");
    if let Some(lock) = &bounds.lock {
        s.push_str(&format!(
            "exec 9>>{path}\nif ! flock -w {RUN_LOCK_WAIT_SECS} 9; then printf '%s\\n' {msg} >&2; exit {RUN_LOCK_BUSY}; fi\n",
            path = home_path(lock),
            msg = quote(&format!(
                "ferry: a command of an earlier deploy still holds ~/{lock} after {RUN_LOCK_WAIT_SECS}s; find it with `ps -u \"$USER\" -o pid,pgid,args` and end its group (`kill -- -PGID`)"
            )),
        ));
    }
    let timeout = match bounds.timeout {
        Some(d) => format!("timeout -k {KILL_AFTER_SECS}s {}s ", secs(d)),
        None => String::new(),
    };
    s.push_str(&format!(
        "setsid {timeout}sh -c {} 3<&- &\nferry_p=$!\n",
        quote(script)
    ));
    if bounds.lock.is_some() {
        s.push_str("exec 9>&-\n");
    }
    s.push_str(&format!(
        "(while read -r _; do :; done; trap '' TERM; \
         kill -s TERM -- -$ferry_p 2>/dev/null || kill -s TERM $ferry_p 2>/dev/null; \
         for _ in {ticks}; do sleep 1; kill -s 0 -- -$ferry_p 2>/dev/null || exit 0; done; \
         kill -s KILL -- -$ferry_p 2>/dev/null) <&3 >/dev/null 2>&1 &\n\
         ferry_w=$!\nexec 3<&-\n\
         wait $ferry_p\nferry_r=$?\n\
         kill -s TERM -- -$ferry_p 2>/dev/null\nkill $ferry_w 2>/dev/null\n\
         exit $ferry_r\n",
        ticks = (1..=KILL_AFTER_SECS)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(" "),
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The list comes back whole through `xargs -0`, from the shell's builtin: 50,000 items
    /// (far more than an argument list of 128 KiB holds), odd names included.
    #[test]
    fn nul_lists_feed_xargs_whatever_their_length() {
        let mut items: Vec<String> = (0..50_000).map(|i| format!("dir/file {i}")).collect();
        items.push("it's \"odd\"\nname $x `y`".into());
        let script = format!(
            "{} | xargs -0 -r sh -c 'for a; do printf \"%s|\" \"$a\"; done' x",
            nul_list(items.iter().map(|s| s.as_str()))
        );
        for shell in ["/bin/sh", "/bin/dash", "/bin/bash"] {
            if !std::path::Path::new(shell).exists() {
                continue;
            }
            let mut child = std::process::Command::new(shell)
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            std::io::Write::write_all(&mut child.stdin.take().unwrap(), script.as_bytes()).unwrap();
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success(), "{shell}");
            let got: Vec<&str> = std::str::from_utf8(&out.stdout)
                .unwrap()
                .strip_suffix('|')
                .unwrap()
                .split('|')
                .collect();
            assert_eq!(got, items, "{shell}");
        }
        assert_eq!(nul_list([]), "true");
    }

    #[test]
    fn plain_words_stay_plain() {
        assert_eq!(quote("systemctl"), "systemctl");
        assert_eq!(quote("--user"), "--user");
        assert_eq!(quote("a/b.c@d:e=f%g+h,i"), "a/b.c@d:e=f%g+h,i");
    }

    #[test]
    fn everything_else_is_single_quoted() {
        assert_eq!(quote(""), "''");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), "'it'\\''s'");
        assert_eq!(quote("$HOME"), "'$HOME'");
        assert_eq!(quote("a;b"), "'a;b'");
        assert_eq!(quote("a\nb"), "'a\nb'");
        assert_eq!(quote("~"), "'~'");
        assert_eq!(quote("*"), "'*'");
    }

    #[test]
    fn command_joins_quoted_args() {
        assert_eq!(
            command(["echo", "a b", "$x", "it's"]),
            "echo 'a b' '$x' 'it'\\''s'"
        );
    }

    #[test]
    fn home_paths() {
        assert_eq!(
            home_path(".config/systemd/user"),
            "\"$HOME\"/.config/systemd/user"
        );
        assert_eq!(home_path("a b"), "\"$HOME\"/'a b'");
    }

    /// The quoting round-trips through a real local `sh` for awkward bytes.
    #[test]
    fn round_trip_through_sh() {
        let args = [
            "plain",
            "with space",
            "quote'single",
            "quote\"double",
            "$HOME and `date`",
            "semi;colon && rm -rf /",
            "new\nline",
            "back\\slash",
            "",
            "glob * ?",
            "unicode ✓",
        ];
        let line = format!("printf '%s\\0' {}", command(args));
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&line)
            .output()
            .expect("sh runs");
        let got: Vec<String> = out
            .stdout
            .split(|b| *b == 0)
            .map(|s| String::from_utf8(s.to_vec()).unwrap())
            .collect();
        let mut want: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        want.push(String::new()); // after the last NUL
        assert_eq!(got, want);
    }

    #[test]
    fn bounded_text_saves_stdin_and_runs_the_command_in_its_own_group() {
        let s = bounded(
            "echo 'hi'",
            &Bounds {
                timeout: Some(std::time::Duration::from_millis(1500)),
                lock: Some(".local/share/ferry/api/lock.run".into()),
            },
        );
        let pos = |n: &str| s.find(n).unwrap_or_else(|| panic!("{n} in {s}"));
        assert!(s.starts_with("exec 3<&0 </dev/null\n"), "{s}");
        assert!(pos("exec 9>>\"$HOME\"/.local/share/ferry/api/lock.run") < pos("flock -w 30 9"));
        assert!(
            pos("flock -w 30 9") < pos("setsid timeout -k 5s 2s sh -c 'echo '\\''hi'\\''' 3<&- &")
        );
        assert!(pos("3<&- &") < pos("exec 9>&-"));
        assert!(pos("exec 9>&-") < pos("<&3 >/dev/null 2>&1 &"));
        assert!(s.ends_with("exit $ferry_r\n"), "{s}");
        let plain = bounded("true", &Bounds::default());
        assert!(plain.contains("setsid sh -c true 3<&- &"), "{plain}");
        assert!(
            !plain.contains("flock") && !plain.contains("timeout"),
            "{plain}"
        );
    }

    /// A bounded script run by a real local `sh`, its stdin a pipe held open as ferry holds
    /// the channel's.
    struct Held {
        child: std::process::Child,
        stdin: Option<std::process::ChildStdin>,
        lines: std::sync::mpsc::Receiver<String>,
        stderr: std::thread::JoinHandle<String>,
    }

    impl Held {
        fn start(script: &str, bounds: &Bounds, home: &std::path::Path) -> Held {
            use std::io::{BufRead, Read};
            use std::process::Stdio;
            let mut child = std::process::Command::new("sh")
                .arg("-c")
                .arg(bounded(script, bounds))
                .env("HOME", home)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let out = child.stdout.take().unwrap();
            let (tx, lines) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                for l in std::io::BufReader::new(out).lines().map_while(|l| l.ok()) {
                    let _ = tx.send(l);
                }
            });
            let mut err = child.stderr.take().unwrap();
            let stderr = std::thread::spawn(move || {
                let mut s = String::new();
                let _ = err.read_to_string(&mut s);
                s
            });
            let stdin = child.stdin.take();
            Held {
                child,
                stdin,
                lines,
                stderr,
            }
        }

        /// How the script ended (stdin open until then).
        fn child_status(mut self) -> std::process::ExitStatus {
            let status = self.child.wait().unwrap();
            drop(self.stdin.take());
            status
        }

        fn line(&self) -> String {
            self.lines.recv().expect("a line")
        }

        /// Wait for the end (stdin still open), then close stdin: status, rest of stdout, stderr.
        fn finish(mut self) -> (Option<i32>, Vec<String>, String) {
            let status = self.child.wait().unwrap();
            drop(self.stdin.take());
            let rest = self.lines.iter().collect();
            (status.code(), rest, self.stderr.join().unwrap())
        }
    }

    fn alive(pid: &str) -> bool {
        std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("kill -s 0 {pid} 2>/dev/null"))
            .status()
            .unwrap()
            .success()
    }

    /// Poll (a bounded number of tries) until `pid` is gone.
    fn gone(pid: &str) -> bool {
        (0..300).any(|_| {
            let dead = !alive(pid);
            if !dead {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            dead
        })
    }

    #[test]
    fn bounded_passes_output_and_status_and_ends_what_the_command_left() {
        let home = tempfile::tempdir().unwrap();
        let held = Held::start(
            "sleep 1000 & echo $!; echo out; echo err >&2; exit 3",
            &Bounds::default(),
            home.path(),
        );
        let left = held.line();
        let (code, rest, err) = held.finish();
        assert_eq!(code, Some(3));
        assert_eq!(rest, ["out"]);
        assert_eq!(err, "err\n");
        assert!(gone(&left), "the background sleep {left} still runs");
    }

    #[test]
    fn bounded_ends_as_the_command_did() {
        use std::os::unix::process::ExitStatusExt;
        let home = tempfile::tempdir().unwrap();
        let held = Held::start("kill -s KILL $$", &Bounds::default(), home.path());
        let status = held.child_status();
        assert_eq!((status.code(), status.signal()), (Some(137), None));
        let held = Held::start("exit 200", &Bounds::default(), home.path());
        assert_eq!(held.child_status().code(), Some(200));
    }

    #[test]
    fn bounded_ends_with_its_stdin() {
        let home = tempfile::tempdir().unwrap();
        let mut held = Held::start(
            // TERM is ignored (by the sleep too): the KILL after it ends them.
            "trap '' TERM; echo $$; sleep 1000; echo late",
            &Bounds::default(),
            home.path(),
        );
        let sh = held.line();
        assert!(alive(&sh));
        drop(held.stdin.take());
        let status = held.child.wait().unwrap();
        assert!(!status.success(), "{status:?}");
        assert!(gone(&sh), "the command {sh} outlived the channel");
        assert_eq!(held.lines.iter().collect::<Vec<_>>(), Vec::<String>::new());
    }

    #[test]
    fn bounded_times_out_and_holds_its_lock_while_it_runs() {
        let home = tempfile::tempdir().unwrap();
        let bounds = Bounds {
            timeout: Some(std::time::Duration::from_secs(1)),
            lock: Some("run.lock".into()),
        };
        let held = Held::start("echo started; exec sleep 1000", &bounds, home.path());
        assert_eq!(held.line(), "started");
        let free = || {
            std::process::Command::new("flock")
                .args(["-n", "run.lock", "true"])
                .current_dir(home.path())
                .status()
                .unwrap()
                .success()
        };
        assert!(!free(), "the lock is free while the command runs");
        let (code, _, _) = held.finish();
        assert_eq!(code, Some(124));
        assert!(free(), "the lock is held after the command ended");
    }
}
