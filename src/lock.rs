//! One deploy at a time per service per host: a `flock` held by a process of the SSH session.
//!
//! The holder is `flock LOCKFILE sh -c '...; exec cat >/dev/null'` whose stdin is the channel:
//! when ferry releases the lock it sends EOF; when ferry dies or loses the connection, sshd
//! closes the channel, `cat` sees EOF and the lock is free again. No stale lock is possible.

use std::time::Duration;

use crate::error::{Error, Result, exit};
use crate::release::Paths;
use crate::shell::quote;
use crate::ssh::{Connection, Event, Exit, RemoteProcess, Stdin};

/// Exit status flock uses when the lock is held by someone else (`-E`).
const BUSY: u32 = 75;

/// A held lock; released by [`RemoteLock::release`] or when the connection ends.
pub struct RemoteLock {
    /// The holder; its stdin stays open while the lock is held.
    holder: RemoteProcess,
}

/// The command that takes the lock and holds it while its stdin is open.
pub fn command(paths: &Paths, wait: Option<Duration>, holder: &str) -> String {
    let dir = quote(&paths.dir());
    let lock = quote(&paths.lock());
    let info = quote(&format!("{}.info", paths.lock()));
    let inner = format!(
        "printf '%s\\n' {} > {info}; echo acquired; exec cat >/dev/null",
        quote(holder)
    );
    let mode = match wait {
        None => "-n".to_string(),
        Some(d) => format!("-w {}", d.as_secs_f64().max(0.1)),
    };
    format!(
        "cd \"$HOME\" && mkdir -p {dir} && exec flock {mode} -E {BUSY} {lock} sh -c {}",
        quote(&inner)
    )
}

/// Take the service's lock on the host. When it is held: fail at once, or, with `wait`, call
/// `on_wait` with the holder and wait up to `wait` for it.
pub async fn acquire(
    conn: &Connection,
    paths: &Paths,
    wait: Option<Duration>,
    holder: &str,
    on_wait: impl FnOnce(&str),
) -> Result<RemoteLock> {
    let mut current = match attempt(conn, paths, None, holder).await? {
        Ok(lock) => return Ok(lock),
        Err(current) => current,
    };
    if let Some(w) = wait {
        on_wait(&current);
        match attempt(conn, paths, Some(w), holder).await? {
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
        code: exit::LOCKED,
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
) -> Result<std::result::Result<RemoteLock, String>> {
    let mut holder_process = conn
        .spawn(&command(paths, wait, holder), Stdin::Open)
        .await?;
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    let mut status = None;
    while let Some(event) = holder_process.next().await {
        match event {
            Event::Stdout(data) => {
                stdout.extend_from_slice(&data);
                if stdout.windows(9).any(|w| w == b"acquired\n") {
                    return Ok(Ok(RemoteLock {
                        holder: holder_process,
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
    Err(Error::Command {
        host: conn.host.clone(),
        command: "flock (taking the deploy lock)".into(),
        status: status.map_or("no exit status".into(), |s| format!("exit status {s}")),
        stderr: format!(
            "{}{}",
            String::from_utf8_lossy(&stderr),
            if status == Some(127) {
                " (is util-linux's flock installed on the host?)"
            } else {
                ""
            }
        ),
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
        let c = command(&Paths::new("web"), None, "me@box since 12:00");
        assert!(
            c.contains("exec flock -n -E 75 .local/share/ferry/web/lock sh -c"),
            "{c}"
        );
        assert!(c.contains("me@box since 12:00"), "{c}");
        let c = command(&Paths::new("web"), Some(Duration::from_secs(90)), "x");
        assert!(c.contains("flock -w 90 -E 75"), "{c}");
    }
}
