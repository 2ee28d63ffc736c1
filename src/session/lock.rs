//! One deploy at a time per service per host: a `flock` held by a process of the SSH session.
//!
//! The holder is `flock LOCKFILE sh -c '...; exec cat >/dev/null'` whose stdin is the channel:
//! when ferry releases the lock it sends EOF; when ferry dies or loses the connection, sshd
//! closes the channel, `cat` sees EOF and the lock is free again. No stale lock is possible.
//!
//! What a deploy ran on the host (hooks, health commands) dies with its channel too, but not
//! always at once (a hook's TERM handler may take seconds): those hold a second lock,
//! `lock.run`, while any of their processes lives, and a new holder waits for it (a bounded
//! time) before it says `acquired`, so nothing of the next deploy overlaps them.

use std::time::Duration;

use crate::error::{Error, Result, exit};
use crate::release::Paths;
use crate::shell::{RUN_LOCK_WAIT_SECS, quote};
use crate::transport::ssh::{Connection, Event, Exit, RemoteProcess, Stdin};

/// Exit status flock uses when the lock is held by someone else (`-E`).
const BUSY: u32 = 75;

/// Exit status of the holder when a command of an earlier deploy still holds the run lock
/// (`Paths::run_lock`) after `RUN_LOCK_WAIT_SECS`.
const RUN_BUSY: u32 = crate::shell::RUN_LOCK_BUSY;

/// How long "do not wait" waits, in seconds: a dry run's probe holds the lock (shared) for
/// an instant, and a deploy started at that instant must not be refused for it.
const GRACE_SECS: f64 = 2.0;

/// A held lock; released by [`RemoteLock::release`] or when the connection ends.
pub struct RemoteLock {
    /// The holder; its stdin stays open while the lock is held.
    holder: RemoteProcess,
    /// What the script run once the lock was taken printed (see [`command`]).
    pub then: Option<Then>,
}

/// The output of the script the holder runs once it has the lock.
#[derive(Debug, Clone, Default)]
pub struct Then {
    pub stdout: String,
    pub stderr: String,
    pub status: i32,
}

/// The line the holder prints when a command of an earlier deploy still holds the run lock
/// and it starts waiting for it (so that ferry can say what it waits for).
const RUN_WAITING: &str = "run-lock-busy";

/// The line ending the output of the script run under the lock, before its exit status.
const THEN_END: &str = "@ferry-then-end";

/// The command that takes the lock and holds it while its stdin is open. With `then`, the
/// holder runs that script (a `sh` script, stdin closed) as soon as it has the lock, and
/// prints `THEN_END` and its exit status after it: reading the host under the lock costs
/// no round trip of its own.
///
/// The shell holds the lock on a descriptor of its own (`flock FD`) and runs `then` from a
/// variable, in a subshell without that descriptor: no argument list grows with the script
/// (a probe of many files is long), and `exec cat` keeps the descriptor, so the lock lives
/// exactly as long as the channel's stdin.
pub fn command(paths: &Paths, wait: Option<Duration>, holder: &str, then: Option<&str>) -> String {
    let dir = quote(&paths.dir());
    let lock = quote(&paths.lock());
    let info = quote(&format!("{}.info", paths.lock()));
    let then = match then {
        Some(script) => format!(
            "ferry_then={}\n(eval \"$ferry_then\") </dev/null 9>&-; r=$?; echo; echo \"{THEN_END} $r\"\n",
            quote(script)
        ),
        None => String::new(),
    };
    let mode = match wait {
        None => format!("-w {GRACE_SECS}"),
        Some(d) => format!("-w {}", d.as_secs_f64().max(GRACE_SECS)),
    };
    // A hook or health command of a deploy that ended (killed, cut off) may still be dying:
    // nothing starts under the lock before it is gone.
    format!(
        "cd \"$HOME\" && mkdir -p {dir} || exit 1\n\
         exec 9>>{lock} || exit 1\n\
         flock {mode} -E {BUSY} 9 || exit $?\n\
         printf '%s\\n' {} > {info}\n\
         flock -n {run} true 9>&- || {{ echo {RUN_WAITING}; \
         flock -w {RUN_LOCK_WAIT_SECS} -E {RUN_BUSY} {run} true 9>&- || exit {RUN_BUSY}; }}\n\
         echo acquired\n\
         {then}exec cat >/dev/null\n",
        quote(holder),
        run = quote(&paths.run_lock()),
    )
}

/// Take the service's lock on the host. When it is held: fail at once, or, with `wait`, call
/// `on_wait` with the holder and wait up to `wait` for it. Once it is taken, the holder runs
/// `then` (see [`command`]); its output is in [`RemoteLock::then`].
pub async fn acquire(
    conn: &Connection,
    paths: &Paths,
    wait: Option<Duration>,
    holder: &str,
    on_wait: impl Fn(&str) + Sync,
    then: Option<&str>,
) -> Result<RemoteLock> {
    let mut current = match attempt(conn, paths, None, holder, &on_wait, then).await? {
        Ok(lock) => return Ok(lock),
        Err(current) => current,
    };
    if let Some(w) = wait {
        on_wait(&format!("waiting for the lock held by {current}"));
        match attempt(conn, paths, Some(w), holder, &on_wait, then).await? {
            Ok(lock) => return Ok(lock),
            Err(now) => current = now,
        }
    }
    let waited = match wait {
        Some(d) => format!(" (waited {})", humantime::format_duration(d)),
        None => String::new(),
    };
    Err(Error::Refused {
        host: conn.host.clone(),
        message: format!(
            "service `{}` is locked by {current}{waited}; wait for it to finish, or pass --lock-wait DURATION",
            paths.service
        ),
        code: exit::Exit::Locked,
    })
}

/// Who holds the lock, from the holder's note.
async fn holder_of(conn: &Connection, paths: &Paths) -> String {
    let info = conn
        .exec(&format!(
            "cd \"$HOME\" && cat {} 2>/dev/null",
            quote(&format!("{}.info", paths.lock()))
        ))
        .await
        .map(|o| o.stdout_str().trim().to_string())
        .unwrap_or_default();
    if info.is_empty() {
        "another deploy".to_string()
    } else {
        info
    }
}

/// One try: Ok(Ok(lock)), or Ok(Err(holder)) when someone else holds it.
async fn attempt(
    conn: &Connection,
    paths: &Paths,
    wait: Option<Duration>,
    holder: &str,
    on_wait: &(dyn Fn(&str) + Sync),
    then: Option<&str>,
) -> Result<std::result::Result<RemoteLock, String>> {
    let mut holder_process = conn
        .spawn(&command(paths, wait, holder, then), Stdin::Open)
        .await?;
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    let mut status = None;
    // Where the output of `then` starts, once the lock is taken.
    let mut acquired_at: Option<usize> = None;
    // How far the output was searched for the end of `then`'s output, and whether it was seen:
    // the output is searched once, not again with every chunk (a probe of many files prints
    // megabytes in thousands of chunks).
    let mut scanned: usize = 0;
    let mut end_seen = false;
    let mut said_run_wait = false;
    while let Some(event) = holder_process.next().await {
        match event {
            Event::Stdout(data) => {
                stdout.extend_from_slice(&data);
                if acquired_at.is_none() && !said_run_wait {
                    let line = format!("{RUN_WAITING}\n");
                    if stdout.windows(line.len()).any(|w| w == line.as_bytes()) {
                        said_run_wait = true;
                        on_wait(&format!(
                            "a command of an earlier deploy still holds ~/{}; waiting up to {RUN_LOCK_WAIT_SECS}s for it to end",
                            paths.run_lock()
                        ));
                    }
                }
                if acquired_at.is_none() {
                    acquired_at = stdout
                        .windows(9)
                        .position(|w| w == b"acquired\n")
                        .map(|p| p + 9);
                    if acquired_at.is_some() {
                        // From here on, stderr is the script's.
                        stderr.clear();
                    }
                }
                let Some(at) = acquired_at else { continue };
                if then.is_none() {
                    return Ok(Ok(RemoteLock {
                        holder: holder_process,
                        then: None,
                    }));
                }
                if !end_seen {
                    let from = scanned.saturating_sub(THEN_END.len() + 1).max(at);
                    let marker = format!("\n{THEN_END} ");
                    end_seen = stdout[from..]
                        .windows(marker.len())
                        .any(|w| w == marker.as_bytes());
                    scanned = stdout.len();
                }
                if !end_seen {
                    continue;
                }
                if let Some(out) = then_output(&stdout[at..], &stderr) {
                    return Ok(Ok(RemoteLock {
                        holder: holder_process,
                        then: Some(out),
                    }));
                }
            }
            Event::Stderr(data) => stderr.extend_from_slice(&data),
            Event::Exit(Exit::Status(s)) => status = Some(s),
            Event::Exit(Exit::Signal(_)) => {}
        }
    }
    if holder_process.connection_lost() {
        return Err(holder_process.lost(format!(
            "taking the deploy lock of service `{}` (nothing had been changed on the host yet)",
            paths.service
        )));
    }
    if status == Some(BUSY) {
        return Ok(Err(holder_of(conn, paths).await));
    }
    Err(not_taken(conn, paths, status, &stderr))
}

/// Why the lock was not taken when nobody else holds it: the run lock still held by an earlier
/// deploy's command, or flock itself failing.
fn not_taken(conn: &Connection, paths: &Paths, status: Option<u32>, stderr: &[u8]) -> Error {
    if status == Some(RUN_BUSY) {
        return Error::Refused {
            host: conn.host.clone(),
            message: format!(
                "a hook or health command of an earlier deploy of service `{service}` still runs on the host {RUN_LOCK_WAIT_SECS}s after that deploy ended (it holds ~/{run}); find it on the host with `ps -u \"$USER\" -o pid,pgid,args`, end its group (`kill -- -PGID`), and deploy again",
                service = paths.service,
                run = paths.run_lock(),
            ),
            code: exit::Exit::Locked,
        };
    }
    Error::Command {
        host: conn.host.clone(),
        command: "flock (taking the deploy lock)".into(),
        status: status.map_or("no exit status".into(), |s| format!("exit status {s}")),
        stderr: format!(
            "{}{}",
            String::from_utf8_lossy(stderr),
            if status == Some(127) {
                " (is util-linux's flock installed on the host?)"
            } else {
                ""
            }
        ),
    }
}

/// The output of the script run under the lock, once it has all arrived: what precedes the
/// line `THEN_END STATUS` (the script's output with one newline added).
fn then_output(out: &[u8], stderr: &[u8]) -> Option<Then> {
    let text = String::from_utf8_lossy(out);
    let marker = format!("\n{THEN_END} ");
    let at = text.rfind(&marker)?;
    let rest = &text[at + marker.len()..];
    let line_end = rest.find('\n')?;
    Some(Then {
        stdout: text[..at]
            .strip_suffix('\n')
            .unwrap_or(&text[..at])
            .to_string(),
        stderr: String::from_utf8_lossy(stderr).into_owned(),
        status: rest[..line_end].trim().parse().unwrap_or(-1),
    })
}

impl RemoteLock {
    /// Release: EOF ends the holder's `cat`, which ends flock.
    pub async fn release(mut self) {
        let _ = self.holder.send_eof().await;
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            while self.holder.next().await.is_some() {}
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_command() {
        let c = command(&Paths::new("web"), None, "me@box since 12:00", None);
        assert!(
            c.contains("exec 9>>.local/share/ferry/web/lock") && c.contains("flock -w 2 -E 75 9"),
            "{c}"
        );
        assert!(c.contains("me@box since 12:00"), "{c}");
        assert!(
            c.contains(
                "flock -n .local/share/ferry/web/lock.run true 9>&- || { echo run-lock-busy; flock -w 30 -E 76 .local/share/ferry/web/lock.run true 9>&- || exit 76; }\necho acquired"
            ),
            "{c}"
        );
        let c = command(&Paths::new("web"), Some(Duration::from_secs(90)), "x", None);
        assert!(c.contains("flock -w 90 -E 75"), "{c}");
    }

    /// The script run under the lock, run: its output and status come back whole, the
    /// holder's own line before it left out, and the holder still holds on.
    #[test]
    fn the_script_under_the_lock_reports_its_output_and_status() {
        let home = tempfile::tempdir().unwrap();
        let script = "printf 'a\\nacquired\\n'; printf 'no newline'; echo oops >&2; exit 3";
        let cmd = command(&Paths::new("web"), None, "me", Some(script));
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&cmd)
            .env("HOME", home.path())
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let stdout = &out.stdout;
        let at = stdout.windows(9).position(|w| w == b"acquired\n").unwrap() + 9;
        let then = then_output(&stdout[at..], &out.stderr).unwrap();
        assert_eq!(then.stdout, "a\nacquired\nno newline");
        assert_eq!(then.stderr, "oops\n");
        assert_eq!(then.status, 3);
        // Not all there yet: no output.
        assert!(then_output(b"a\nb", b"").is_none());
    }
}
