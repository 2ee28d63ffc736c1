//! Health checks, made by ferry itself through the SSH connection: HTTP over a direct-tcpip
//! channel, HTTP over a unix socket on the host (direct-streamlocal), or a command on the host.
//! The host needs no curl. `%t` and `%h` in socket paths mean what they mean in unit files.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::config::Health;
use crate::release::Paths;
use crate::shell::{Bounds, quote};
use crate::transport::ssh::{Connection, Stdin};

/// Expand `%h` (home) and `%t` (XDG_RUNTIME_DIR) as systemd does in unit files; `%%` is `%`.
pub fn expand(spec: &str, home: &str, runtime: &str) -> String {
    let mut out = String::new();
    let mut chars = spec.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('h') => out.push_str(home),
            Some('t') => out.push_str(runtime),
            Some('%') => out.push('%'),
            Some(o) => {
                out.push('%');
                out.push(o);
            }
            None => out.push('%'),
        }
    }
    out
}

/// The request ferry sends.
pub fn request(host: &str, path: &str) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: ferry-health/1\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    )
    .into_bytes()
}

/// Status code of an HTTP response's first line.
pub fn status_code(response: &[u8]) -> Option<u16> {
    let line = response.split(|b| *b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?.trim_end();
    let mut parts = line.split(' ');
    let version = parts.next()?;
    if !version.starts_with("HTTP/") {
        return None;
    }
    parts.next()?.parse().ok()
}

async fn http_over<S>(mut stream: S, host: &str, path: &str) -> Result<u16, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    stream
        .write_all(&request(host, path))
        .await
        .map_err(|e| format!("cannot send the request: {e}"))?;
    stream.flush().await.ok();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    // The status line is all we need; read until it is complete or the peer closes.
    loop {
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|e| format!("cannot read the answer: {e}"))?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.contains(&b'\n') || buf.len() > 64 * 1024 {
            break;
        }
    }
    status_code(&buf).ok_or_else(|| {
        if buf.is_empty() {
            "the connection closed without an answer".to_string()
        } else {
            "the answer is not HTTP".to_string()
        }
    })
}

fn judge(what: &str, code: Result<u16, String>) -> Result<String, String> {
    match code {
        Ok(c) if (200..300).contains(&c) => Ok(format!("{what}: {c}")),
        Ok(c) => Err(format!("{what}: HTTP {c}")),
        Err(e) => Err(format!("{what}: {e}")),
    }
}

/// Why a round of checks did not pass.
#[derive(Debug)]
enum Miss {
    /// A check failed; the next round may pass.
    Failing(String),
    /// No round can pass (the host's sshd forbids the forwarding the check needs).
    Never(String),
}

impl From<String> for Miss {
    fn from(s: String) -> Miss {
        Miss::Failing(s)
    }
}

/// A connection the host opens for an HTTP check; its sshd's refusal ends the checks.
fn opened<S>(what: &str, r: crate::error::Result<S>) -> Result<Result<S, String>, Miss> {
    match r {
        Ok(s) => Ok(Ok(s)),
        Err(e @ crate::error::Error::ForwardingForbidden { .. }) => Err(Miss::Never(format!(
            "{what}: {e}; {}",
            e.hint().unwrap_or_default()
        ))),
        Err(e) => Ok(Err(e.to_string())),
    }
}

/// Exit status of `timeout` when the time ran out.
const TIMED_OUT: u32 = 124;

/// How long past its own bound ferry waits for a health command's answer (the host's
/// `timeout` answers first; this bounds a host that stops answering).
const COMMAND_GRACE: Duration = Duration::from_secs(5);

/// The remote script of a health command: in the current release, its `bin/` first on PATH,
/// bounded by `per_try` and by ferry's channel, holding the service's run lock (see
/// [`crate::shell::bounded`]).
pub fn command_script(cmd: &str, paths: &Paths, per_try: Duration) -> String {
    format!(
        "cd \"$HOME\"/{dir} && PATH=\"$HOME/{dir}/bin:$PATH\" && export PATH || exit 1\n{}",
        crate::shell::bounded(
            cmd,
            &Bounds {
                timeout: Some(per_try),
                lock: Some(paths.run_lock()),
            }
        ),
        dir = quote(&paths.current()),
    )
}

/// One round of every configured check; Ok with what passed, Err with what failed.
async fn round(
    conn: &Connection,
    health: &Health,
    paths: &Paths,
    home: &str,
    runtime: &str,
    per_try: Duration,
) -> Result<Vec<String>, Miss> {
    let mut passed = Vec::new();
    let timed = || format!("no answer within {}", humantime::format_duration(per_try));
    if let Some(h) = &health.http {
        let what = format!("GET {}", h.url);
        let r = match tokio::time::timeout(per_try, conn.connect_tcp(&h.host, h.port)).await {
            Err(_) => Err(timed()),
            Ok(s) => match opened(&what, s)? {
                Ok(s) => tokio::time::timeout(per_try, http_over(s, &h.host, &h.path))
                    .await
                    .unwrap_or_else(|_| Err(timed())),
                Err(e) => Err(e),
            },
        };
        passed.push(judge(&what, r)?);
    }
    if let Some(u) = &health.unix_http {
        let socket = expand(&u.socket, home, runtime);
        let what = format!("GET {} on unix socket {socket}", u.path);
        let r = match tokio::time::timeout(per_try, conn.connect_unix(&socket)).await {
            Err(_) => Err(timed()),
            Ok(s) => match opened(&what, s)? {
                Ok(s) => tokio::time::timeout(per_try, http_over(s, "localhost", &u.path))
                    .await
                    .unwrap_or_else(|_| Err(timed())),
                Err(e) => Err(e),
            },
        };
        passed.push(judge(&what, r)?);
    }
    if let Some(cmd) = &health.command {
        let what = format!("`{cmd}`");
        let out = conn
            .spawn(&command_script(cmd, paths, per_try), Stdin::Open)
            .await
            .map_err(|e| format!("{what}: {e}"))?
            .output_within(per_try + COMMAND_GRACE, |_, _| {})
            .await
            .map_err(|e| format!("{what}: {e}"))?
            .ok_or_else(|| format!("{what}: {}", timed()))?;
        if out.status == Some(TIMED_OUT) {
            return Err(format!("{what}: {}", timed()).into());
        }
        if !out.success() {
            let mut msg = format!("{what}: {}", out.status_text());
            let err = out.stderr_str();
            if !err.trim().is_empty() {
                msg.push_str(&format!(": {}", err.trim()));
            }
            return Err(msg.into());
        }
        passed.push(format!("{what}: exit 0"));
    }
    Ok(passed)
}

/// Health checks that did not pass in time: the last failure, for people.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unhealthy(pub String);

/// Run the checks every `interval` until all pass in one round, or `timeout` passes. Ok with
/// what passed.
pub async fn run(
    conn: &Connection,
    health: &Health,
    paths: &Paths,
) -> Result<Vec<String>, Unhealthy> {
    let env = conn
        .run("printf '%s\\n' \"$HOME\" \"${XDG_RUNTIME_DIR:-/run/user/$(id -u)}\"")
        .await
        .map_err(|e| Unhealthy(e.to_string()))?;
    let mut lines = env.lines();
    let home = lines.next().unwrap_or_default().to_string();
    let runtime = lines.next().unwrap_or_default().to_string();
    let start = Instant::now();
    let per_try = health.timeout.min(Duration::from_secs(10));
    loop {
        match round(conn, health, paths, &home, &runtime, per_try).await {
            Ok(passed) => return Ok(passed),
            Err(Miss::Never(why)) => return Err(Unhealthy(why)),
            Err(Miss::Failing(last)) => {
                if start.elapsed() + health.interval > health.timeout {
                    return Err(Unhealthy(format!(
                        "{last} (still failing after {})",
                        humantime::format_duration(Duration::from_secs(start.elapsed().as_secs()))
                    )));
                }
                tracing::debug!("{}: health: {last}", conn.host);
            }
        }
        tokio::time::sleep(health.interval).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_specifiers() {
        assert_eq!(
            expand("%t/app.sock", "/home/u", "/run/user/1000"),
            "/run/user/1000/app.sock"
        );
        assert_eq!(expand("%h/x%%y", "/home/u", "/r"), "/home/u/x%y");
        assert_eq!(expand("%q", "/h", "/r"), "%q");
    }

    #[test]
    fn the_command_runs_in_current_bounded_by_the_try() {
        let s = command_script("exec sleep 1", &Paths::new("api"), Duration::from_secs(3));
        let pos = |n: &str| s.find(n).unwrap_or_else(|| panic!("{n} in {s}"));
        assert!(
            s.starts_with("cd \"$HOME\"/.local/share/ferry/api/current && "),
            "{s}"
        );
        assert!(pos("export PATH || exit 1") < pos("lock.run"));
        assert!(pos("flock -w 30 9") < pos("setsid timeout -k 5s 3s sh -c 'exec sleep 1'"));
    }

    #[test]
    fn status_codes() {
        assert_eq!(status_code(b"HTTP/1.1 200 OK\r\nX: y\r\n"), Some(200));
        assert_eq!(
            status_code(b"HTTP/1.0 503 Service Unavailable\n"),
            Some(503)
        );
        assert_eq!(status_code(b"SSH-2.0-OpenSSH\r\n"), None);
        assert_eq!(status_code(b""), None);
    }

    #[test]
    fn judges() {
        assert!(judge("x", Ok(204)).is_ok());
        assert!(judge("x", Ok(500)).is_err());
        assert!(judge("x", Err("refused".into())).is_err());
    }

    #[tokio::test]
    async fn http_over_a_stream() {
        let (mut server, client) = tokio::io::duplex(4096);
        let srv = tokio::spawn(async move {
            let mut buf = vec![0u8; 1024];
            let n = server.read(&mut buf).await.unwrap();
            assert!(buf[..n].starts_with(b"GET /healthz HTTP/1.1\r\nHost: h\r\n"));
            server
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                .await
                .unwrap();
        });
        assert_eq!(http_over(client, "h", "/healthz").await, Ok(200));
        srv.await.unwrap();
    }
}
