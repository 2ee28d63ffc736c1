//! ferry-demo: the tiny HTTP/1.1 server newcomers deploy first (std only).
//!
//! Build: `cargo build --release --example ferry-demo` (-> target/release/examples/ferry-demo).
//!
//! It listens on the socket systemd hands it (socket activation: `LISTEN_PID`/`LISTEN_FDS`, fd 3,
//! unix or TCP), or else on `--listen ADDR` (`127.0.0.1:8080`, `unix:/path`). It answers:
//!
//! - `GET /`        the contents of `--message FILE`, read at every request (so a redeploy shows)
//! - `GET /healthz` `ok`
//! - `GET /version` the version and the pid (so a restart shows)
//! - `GET /release` the directory this process started from, resolved once at start: the
//!   directory holding `bin/ferry-demo` (its own executable, symlinks such as ferry's
//!   `current` resolved), so `/release` shows which release is *running*, not which one
//!   `current` points to now
//!
//! `HEAD` works too; anything else gets 404 (or 405 for a known path). One line is logged per
//! request on stdout, which journald captures. SIGTERM's default action ends it: there is no
//! state to save, and each log line is written out as a whole.
//!
//! Test switches: `--fail-at-start` exits 1 at once; `--crash-after SECS` exits 1 after SECS
//! seconds (with `Restart=always` that makes a crash loop).

// The example server prints its log: the print rule (clippy.toml) is for src/.
#![allow(clippy::disallowed_macros)]

use std::io::{self, Read, Write};
use std::net::TcpListener;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

const VERSION: &str = env!("CARGO_PKG_VERSION");
const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
const DEFAULT_MESSAGE: &str = "hello from ferry-demo";
/// The first fd systemd passes (`SD_LISTEN_FDS_START`).
const LISTEN_FDS_START: i32 = 3;
/// Request line plus headers; longer requests get 431.
const MAX_HEAD: usize = 8 * 1024;
/// A client that sends nothing (or reads nothing) for this long is dropped.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

const USAGE: &str = "\
usage: ferry-demo [--listen ADDR] [--message FILE] [--fail-at-start] [--crash-after SECS]

  --listen ADDR       127.0.0.1:8080 (default) or unix:/path; ignored under socket activation
  --message FILE      the body of GET /, read at each request (default: \"hello from ferry-demo\")
  --fail-at-start     print an error and exit 1 at once (to test failed deploys)
  --crash-after SECS  exit 1 after SECS seconds (to test crash loops)";

/// Command-line options.
#[derive(Debug, Default, PartialEq)]
struct Options {
    listen: Option<String>,
    message: Option<PathBuf>,
    fail_at_start: bool,
    crash_after: Option<u64>,
}

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Options, String> {
    let mut opts = Options::default();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        // Accept both `--flag value` and `--flag=value`.
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg, None),
        };
        let mut value = |name: &str| {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match flag.as_str() {
            "--listen" => opts.listen = Some(value("--listen")?),
            "--message" => opts.message = Some(PathBuf::from(value("--message")?)),
            "--crash-after" => {
                let v = value("--crash-after")?;
                let secs = v
                    .parse()
                    .map_err(|_| format!("--crash-after: `{v}` is not a number of seconds"))?;
                opts.crash_after = Some(secs);
            }
            "--fail-at-start" => opts.fail_at_start = true,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    Ok(opts)
}

/// Write one log line to stdout. Errors (e.g. journald gone) are ignored: logging never kills
/// the server. Rust's stdout is line-buffered, so each line goes out as soon as it is complete.
fn log(line: &str) {
    let _ = writeln!(io::stdout().lock(), "{line}");
}

fn main() {
    let opts = match parse_args(std::env::args().skip(1)) {
        Ok(o) => o,
        Err(e) if e.is_empty() => {
            println!("{USAGE}");
            return;
        }
        Err(e) => {
            eprintln!("ferry-demo: {e}\n{USAGE}");
            std::process::exit(2);
        }
    };
    if opts.fail_at_start {
        eprintln!("ferry-demo: error: failing at start as asked (--fail-at-start)");
        std::process::exit(1);
    }

    let (listener, activated) = match Listener::open(opts.listen.as_deref()) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("ferry-demo: error: {e}");
            std::process::exit(1);
        }
    };
    log(&format!(
        "ferry-demo {VERSION} (pid {}) listening on {}{}",
        std::process::id(),
        listener.describe(),
        if activated {
            " (socket activation)"
        } else {
            ""
        }
    ));

    if let Some(secs) = opts.crash_after {
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(secs));
            eprintln!("ferry-demo: crashing after {secs} s as asked (--crash-after)");
            std::process::exit(1);
        });
    }

    let message = opts.message;
    let started_from: &'static str = Box::leak(started_from().into_boxed_str());
    loop {
        match listener.accept() {
            Ok(conn) => {
                let message = message.clone();
                let spawned = std::thread::Builder::new()
                    .spawn(move || serve(conn, message.as_deref(), started_from));
                if let Err(e) = spawned {
                    log(&format!("cannot start a thread for a connection: {e}"));
                }
            }
            Err(e) if is_fatal_accept_error(&e) => {
                eprintln!("ferry-demo: error: the listening socket is unusable: {e}");
                std::process::exit(1);
            }
            Err(e) => {
                // E.g. too many open files, or a client that went away: wait a little, go on.
                log(&format!("accept failed: {e}"));
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// The release directory this process was started from: the resolved path of its own
/// executable (the kernel resolves symlinks such as `current` at exec time), without the
/// trailing `bin/NAME`; the executable's directory when it is not in a `bin` directory.
fn started_from() -> String {
    match std::env::current_exe() {
        Ok(exe) => release_dir_of(&exe).display().to_string(),
        Err(e) => format!("(unknown: {e})"),
    }
}

/// `/x/releases/ID/bin/ferry-demo` -> `/x/releases/ID`; `/x/y/ferry-demo` -> `/x/y`.
fn release_dir_of(exe: &Path) -> &Path {
    let dir = exe.parent().unwrap_or(exe);
    match dir.file_name() {
        Some(name) if name == "bin" => dir.parent().unwrap_or(dir),
        _ => dir,
    }
}

/// Errors meaning the fd is not a listening stream socket (e.g. a wrong LISTEN_FDS, or a
/// `ListenDatagram=` socket): retrying would spin forever.
fn is_fatal_accept_error(e: &io::Error) -> bool {
    // Linux errno values: EBADF, EINVAL, ENOTSOCK, EOPNOTSUPP.
    matches!(e.raw_os_error(), Some(9 | 22 | 88 | 95))
}

// ---------------------------------------------------------------------------------------------
// Listening: inherited from systemd, or bound here.

enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

/// An accepted connection, with a name for the log.
struct Conn {
    stream: Box<dyn ReadWrite + Send>,
    peer: String,
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

impl Listener {
    /// The socket systemd passed, if this process was socket-activated (then the bool is true);
    /// else bind `listen`.
    fn open(listen: Option<&str>) -> Result<(Listener, bool), String> {
        if let Some(fd) = take_activation_fd()? {
            return Ok((Listener::from_fd(fd)?, true));
        }
        let addr = listen.unwrap_or(DEFAULT_LISTEN);
        match addr.strip_prefix("unix:") {
            Some(path) => {
                // A socket file left by an earlier run would make bind fail: remove it. Only a
                // socket is removed, never a regular file given by mistake.
                if std::fs::symlink_metadata(path)
                    .is_ok_and(|m| std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()))
                {
                    let _ = std::fs::remove_file(path);
                }
                UnixListener::bind(path)
                    .map(|l| (Listener::Unix(l), false))
                    .map_err(|e| format!("cannot listen on unix:{path}: {e}"))
            }
            None => TcpListener::bind(addr)
                .map(|l| (Listener::Tcp(l), false))
                .map_err(|e| {
                    format!("cannot listen on {addr}: {e} (write HOST:PORT or unix:/path)")
                }),
        }
    }

    /// Wrap an inherited socket: ask the kernel for its address as a unix socket; if it is not
    /// one (getsockname returns another family), try TCP.
    fn from_fd(fd: OwnedFd) -> Result<Listener, String> {
        let unix = UnixListener::from(fd);
        let listener = if unix.local_addr().is_ok() {
            Listener::Unix(unix)
        } else {
            let tcp = TcpListener::from(OwnedFd::from(unix));
            match tcp.local_addr() {
                Ok(_) => Listener::Tcp(tcp),
                Err(e) => {
                    return Err(format!(
                        "fd {LISTEN_FDS_START} from systemd is neither a unix nor a TCP socket: {e}"
                    ));
                }
            }
        };
        // systemd passes blocking sockets unless NonBlocking=yes: make sure, since we block.
        let blocking = match &listener {
            Listener::Tcp(l) => l.set_nonblocking(false),
            Listener::Unix(l) => l.set_nonblocking(false),
        };
        blocking.map_err(|e| format!("fd {LISTEN_FDS_START}: {e}"))?;
        Ok(listener)
    }

    /// How it listens, for the startup line: `tcp 127.0.0.1:8080` or `unix:/path`.
    fn describe(&self) -> String {
        match self {
            Listener::Tcp(l) => match l.local_addr() {
                Ok(a) => format!("tcp {a}"),
                Err(_) => "tcp (unknown address)".to_string(),
            },
            Listener::Unix(l) => {
                let addr = l.local_addr().ok();
                match addr.as_ref().and_then(|a| a.as_pathname()) {
                    Some(p) => format!("unix:{}", p.display()),
                    None => "unix (abstract or unnamed address)".to_string(),
                }
            }
        }
    }

    fn accept(&self) -> io::Result<Conn> {
        match self {
            Listener::Tcp(l) => {
                let (s, addr) = l.accept()?;
                let _ = s.set_read_timeout(Some(IO_TIMEOUT));
                let _ = s.set_write_timeout(Some(IO_TIMEOUT));
                Ok(Conn {
                    stream: Box::new(s),
                    peer: addr.to_string(),
                })
            }
            Listener::Unix(l) => {
                let (s, _) = l.accept()?;
                let _ = s.set_read_timeout(Some(IO_TIMEOUT));
                let _ = s.set_write_timeout(Some(IO_TIMEOUT));
                Ok(Conn {
                    stream: Box::new(s),
                    peer: "unix".to_string(),
                })
            }
        }
    }
}

/// The systemd socket-activation protocol (sd_listen_fds(3)): when `LISTEN_PID` is our pid and
/// `LISTEN_FDS` >= 1, fd 3 is a listening socket passed to us. The variables are removed so
/// that they do not leak into anything we might start.
fn take_activation_fd() -> Result<Option<OwnedFd>, String> {
    let pid = std::env::var("LISTEN_PID").ok();
    let fds = std::env::var("LISTEN_FDS").ok();
    for var in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        // SAFETY: called from main before any other thread is started.
        unsafe { std::env::remove_var(var) };
    }
    let ours = pid.and_then(|p| p.parse::<u32>().ok()) == Some(std::process::id());
    let count = fds.and_then(|n| n.parse::<u32>().ok()).unwrap_or(0);
    if !ours || count == 0 {
        return Ok(None);
    }
    if count > 1 {
        log(&format!(
            "systemd passed {count} sockets; using the first (fd {LISTEN_FDS_START})"
        ));
    }
    // Make sure fd 3 really is an open socket before taking ownership of it.
    match std::fs::read_link(format!("/proc/self/fd/{LISTEN_FDS_START}")) {
        Ok(target) if target.to_string_lossy().starts_with("socket:") => {}
        Ok(target) => {
            return Err(format!(
                "LISTEN_FDS is set but fd {LISTEN_FDS_START} is not a socket ({})",
                target.display()
            ));
        }
        Err(e) => {
            return Err(format!(
                "LISTEN_FDS is set but fd {LISTEN_FDS_START} is not open: {e}"
            ));
        }
    }
    // SAFETY: fd 3 is open (checked above) and, by the protocol, handed to this process alone.
    Ok(Some(unsafe { OwnedFd::from_raw_fd(LISTEN_FDS_START) }))
}

// ---------------------------------------------------------------------------------------------
// HTTP

/// The parts of a request line we use.
#[derive(Debug, PartialEq)]
struct Request {
    method: String,
    /// The path without the query string.
    path: String,
}

#[derive(Debug, PartialEq)]
struct Response {
    status: u16,
    reason: &'static str,
    body: Vec<u8>,
    /// For 405: the methods allowed.
    allow: Option<&'static str>,
}

impl Response {
    fn new(status: u16, reason: &'static str, body: impl Into<Vec<u8>>) -> Response {
        Response {
            status,
            reason,
            body: body.into(),
            allow: None,
        }
    }

    /// The bytes on the wire; `head_only` for HEAD requests (headers, no body).
    fn to_bytes(&self, head_only: bool) -> Vec<u8> {
        let mut out = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n",
            self.status,
            self.reason,
            self.body.len()
        );
        if let Some(allow) = self.allow {
            out.push_str(&format!("Allow: {allow}\r\n"));
        }
        out.push_str("\r\n");
        let mut bytes = out.into_bytes();
        if !head_only {
            bytes.extend_from_slice(&self.body);
        }
        bytes
    }
}

/// Handle one connection: read the head, answer, log, close.
fn serve(mut conn: Conn, message: Option<&Path>, started_from: &str) {
    let (request, response) = match read_head(&mut conn.stream) {
        Ok(head) => match parse_request(&head) {
            Ok(req) => {
                let resp = route(&req, message, started_from);
                (Some(req), resp)
            }
            Err(e) => (
                None,
                Response::new(400, "Bad Request", format!("bad request: {e}\n")),
            ),
        },
        Err(HeadError::TooLong) => (
            None,
            Response::new(
                431,
                "Request Header Fields Too Large",
                "request head too long\n",
            ),
        ),
        Err(HeadError::Io(e)) => {
            // The client went away or timed out: nobody to answer.
            log(&format!("{} read failed: {e}", conn.peer));
            return;
        }
    };
    let head_only = request.as_ref().is_some_and(|r| r.method == "HEAD");
    let written = conn
        .stream
        .write_all(&response.to_bytes(head_only))
        .and_then(|()| conn.stream.flush());
    let what = match &request {
        Some(r) => format!("{} {}", r.method, r.path),
        None => "(bad request)".to_string(),
    };
    let note = match written {
        Ok(()) => String::new(),
        Err(e) => format!(" (write failed: {e})"),
    };
    log(&format!(
        "{} \"{what}\" {} {}{note}",
        conn.peer,
        response.status,
        response.body.len()
    ));
}

#[derive(Debug)]
enum HeadError {
    TooLong,
    Io(io::Error),
}

/// Read up to the blank line that ends the request head (at most MAX_HEAD bytes).
fn read_head(stream: &mut impl Read) -> Result<Vec<u8>, HeadError> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        if let Some(end) = head_end(&head) {
            head.truncate(end);
            return Ok(head);
        }
        if head.len() >= MAX_HEAD {
            return Err(HeadError::TooLong);
        }
        let n = match stream.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(HeadError::Io(e)),
        };
        if n == 0 {
            // EOF before the blank line: answer what we got if it holds a request line
            // (e.g. `printf 'GET / HTTP/1.0\n' | nc`), else give up.
            if head.contains(&b'\n') {
                return Ok(head);
            }
            return Err(HeadError::Io(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed before a complete request",
            )));
        }
        head.extend_from_slice(&buf[..n]);
    }
}

/// Where the head ends: after `\r\n\r\n` or `\n\n` (lenient, as RFC 9112 allows).
fn head_end(buf: &[u8]) -> Option<usize> {
    let crlf = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Parse the request line `METHOD SP TARGET SP HTTP/1.x`; headers are ignored.
fn parse_request(head: &[u8]) -> Result<Request, &'static str> {
    let line_end = head.iter().position(|&b| b == b'\n').unwrap_or(head.len());
    let line = std::str::from_utf8(&head[..line_end]).map_err(|_| "request line is not UTF-8")?;
    let mut parts = line.trim_end_matches('\r').split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("expected `METHOD /path HTTP/1.1`");
    };
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err("bad method");
    }
    if !version.starts_with("HTTP/1.") {
        return Err("only HTTP/1.x is spoken here");
    }
    if !target.starts_with('/') {
        return Err("the target must be a path starting with `/`");
    }
    let path = target.split(['?', '#']).next().unwrap_or("/");
    Ok(Request {
        method: method.to_string(),
        path: path.to_string(),
    })
}

/// The answer to a request.
fn route(req: &Request, message: Option<&Path>, started_from: &str) -> Response {
    let known = matches!(
        req.path.as_str(),
        "/" | "/healthz" | "/version" | "/release"
    );
    if !known {
        return Response::new(404, "Not Found", "not found\n");
    }
    if req.method != "GET" && req.method != "HEAD" {
        let mut r = Response::new(405, "Method Not Allowed", "method not allowed\n");
        r.allow = Some("GET, HEAD");
        return r;
    }
    match req.path.as_str() {
        "/healthz" => Response::new(200, "OK", "ok\n"),
        "/release" => Response::new(200, "OK", format!("{started_from}\n")),
        "/version" => Response::new(
            200,
            "OK",
            format!("ferry-demo {VERSION} pid {}\n", std::process::id()),
        ),
        _ => match read_message(message) {
            Ok(body) => Response::new(200, "OK", body),
            Err(e) => {
                log(&format!("cannot read the message file: {e}"));
                Response::new(
                    500,
                    "Internal Server Error",
                    format!("cannot read the message file: {e}\n"),
                )
            }
        },
    }
}

/// The message file's contents with exactly one trailing newline; the default without a file.
fn read_message(file: Option<&Path>) -> Result<Vec<u8>, String> {
    let mut text = match file {
        None => DEFAULT_MESSAGE.as_bytes().to_vec(),
        Some(path) => std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?,
    };
    while matches!(text.last(), Some(b'\n' | b'\r')) {
        text.pop();
    }
    text.push(b'\n');
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: &str, path: &str) -> Request {
        Request {
            method: method.into(),
            path: path.into(),
        }
    }

    #[test]
    fn parses_request_lines() {
        assert_eq!(
            parse_request(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
            Ok(req("GET", "/"))
        );
        assert_eq!(
            parse_request(b"HEAD /healthz?x=1 HTTP/1.0\n\n"),
            Ok(req("HEAD", "/healthz"))
        );
        assert!(parse_request(b"GET /\r\n\r\n").is_err());
        assert!(parse_request(b"GET  / HTTP/1.1\r\n\r\n").is_err());
        assert!(parse_request(b"get / HTTP/1.1\r\n\r\n").is_err());
        assert!(parse_request(b"GET http://x/ HTTP/1.1\r\n\r\n").is_err());
        assert!(parse_request(b"GET / SPDY/3\r\n\r\n").is_err());
        assert!(parse_request(b"\xff / HTTP/1.1\r\n\r\n").is_err());
        assert!(parse_request(b"").is_err());
    }

    #[test]
    fn finds_the_end_of_the_head() {
        assert_eq!(head_end(b"GET / HTTP/1.1\r\n\r\nbody"), Some(18));
        assert_eq!(head_end(b"GET / HTTP/1.1\n\n"), Some(16));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: x\r\n"), None);
    }

    #[test]
    fn reads_heads_and_refuses_huge_ones() {
        let mut input: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\n\r\nextra";
        assert_eq!(
            read_head(&mut input).unwrap(),
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
        );
        let mut eof: &[u8] = b"GET / HTTP/1.0\n";
        assert_eq!(read_head(&mut eof).unwrap(), b"GET / HTTP/1.0\n");
        let mut nothing: &[u8] = b"";
        assert!(matches!(read_head(&mut nothing), Err(HeadError::Io(_))));
        let huge = vec![b'a'; MAX_HEAD * 2];
        assert!(matches!(
            read_head(&mut huge.as_slice()),
            Err(HeadError::TooLong)
        ));
    }

    #[test]
    fn routes() {
        assert_eq!(route(&req("GET", "/healthz"), None, "/r").body, b"ok\n");
        assert_eq!(
            route(&req("GET", "/"), None, "/r").body,
            b"hello from ferry-demo\n"
        );
        let v = route(&req("GET", "/version"), None, "/r");
        assert!(String::from_utf8(v.body).unwrap().contains(VERSION));
        assert_eq!(route(&req("GET", "/nope"), None, "/r").status, 404);
        assert_eq!(
            route(&req("GET", "/release"), None, "/srv/releases/r1").body,
            b"/srv/releases/r1\n"
        );
        let r = route(&req("POST", "/"), None, "/r");
        assert_eq!((r.status, r.allow), (405, Some("GET, HEAD")));
        let missing = route(
            &req("GET", "/"),
            Some(Path::new("/nonexistent/ferry-demo")),
            "/r",
        );
        assert_eq!(missing.status, 500);
    }

    #[test]
    fn message_file_is_read_at_each_request() {
        let dir = std::env::temp_dir().join(format!("ferry-demo-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("message.txt");
        std::fs::write(&file, "release 1\n\n").unwrap();
        assert_eq!(
            route(&req("GET", "/"), Some(&file), "/r").body,
            b"release 1\n"
        );
        std::fs::write(&file, "release 2").unwrap();
        assert_eq!(
            route(&req("GET", "/"), Some(&file), "/r").body,
            b"release 2\n"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_release_is_the_directory_above_bin() {
        assert_eq!(
            release_dir_of(Path::new(
                "/h/.local/share/ferry/demo/releases/r1/bin/ferry-demo"
            )),
            Path::new("/h/.local/share/ferry/demo/releases/r1")
        );
        assert_eq!(
            release_dir_of(Path::new("/opt/demo/ferry-demo")),
            Path::new("/opt/demo")
        );
        // The test binary itself is not in a `bin` directory: its own directory.
        let exe = std::env::current_exe().unwrap();
        assert_eq!(started_from(), exe.parent().unwrap().display().to_string());
    }

    #[test]
    fn responses_carry_length_and_close() {
        let r = Response::new(200, "OK", "ok\n");
        let text = String::from_utf8(r.to_bytes(false)).unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
        assert!(text.contains("Content-Length: 3\r\n"), "{text}");
        assert!(text.contains("Connection: close\r\n"), "{text}");
        assert!(text.ends_with("\r\n\r\nok\n"), "{text}");
        let head = String::from_utf8(r.to_bytes(true)).unwrap();
        assert!(
            head.ends_with("Content-Length: 3\r\nConnection: close\r\n\r\n"),
            "{head}"
        );
    }

    #[test]
    fn arguments() {
        let args = |a: &[&str]| parse_args(a.iter().map(|s| s.to_string()));
        assert_eq!(args(&[]), Ok(Options::default()));
        let o = args(&[
            "--listen",
            "unix:/tmp/s",
            "--message=m.txt",
            "--crash-after",
            "5",
        ])
        .unwrap();
        assert_eq!(o.listen.as_deref(), Some("unix:/tmp/s"));
        assert_eq!(o.message, Some(PathBuf::from("m.txt")));
        assert_eq!(o.crash_after, Some(5));
        assert!(args(&["--fail-at-start"]).unwrap().fail_at_start);
        assert!(args(&["--listen"]).is_err());
        assert!(args(&["--crash-after", "soon"]).is_err());
        assert!(args(&["--bogus"]).is_err());
    }
}
