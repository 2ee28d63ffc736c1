//! The SSH transport: connect with a timeout, verify the host key against known_hosts,
//! authenticate, and run remote commands over channels of one multiplexed connection.
//!
//! One [`Connection`] per host serves every command, SFTP session and forwarded socket of an
//! operation. Every command runs through one streaming API, [`Connection::spawn`] ->
//! [`RemoteProcess`] (output as it arrives, then the exit, which OpenSSH sends after EOF);
//! `exec`/`run` collect it. No other module sees russh's channel messages.
//!
//! A handshake the server cuts short (sshd's MaxStartups) is tried again; a connection that
//! dies under an operation is [`Error::ConnectionLost`], saying what was under way.

pub mod config;
pub mod known_hosts;
mod wrap;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::client::{self, Handle};
use russh::keys::agent::client::AgentClient;
use russh::keys::{HashAlg, PrivateKey, PrivateKeyWithHashAlg, PublicKey};
use russh::{ChannelMsg, Disconnect};

use crate::config::{Host, HostKeyPolicy};
use crate::error::{Error, Result};
use crate::transport::ssh::known_hosts::Verdict;

/// Environment variable with the passphrase of an encrypted private key.
pub const PASSPHRASE_ENV: &str = "FERRY_KEY_PASSPHRASE";

/// What happened when the server's host key was checked.
#[derive(Debug)]
enum KeyOutcome {
    Accepted { fingerprint: String, learned: bool },
    Refused(Box<Error>),
}

struct Handler {
    host: Host,
    /// The contents of the host's known_hosts file, read before connecting.
    known: String,
    outcome: Arc<Mutex<Option<KeyOutcome>>>,
}

/// Read a known_hosts file; a missing one is empty. Only a regular file (or a symlink to one)
/// is read: a FIFO would block forever, a device could be endless, a directory is a mistake.
fn read_known_hosts(host: &Host) -> Result<String> {
    let path = &host.known_hosts;
    let refuse = |message: String| Error::KnownHosts {
        host: host.name.clone(),
        path: path.clone(),
        message,
    };
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(String::new()),
        Err(e) => return Err(refuse(e.to_string())),
    };
    if let Some(kind) = not_a_regular_file(&meta.file_type()) {
        return Err(refuse(format!(
            "it is {kind}, not a regular file; ferry reads known_hosts only from a regular file"
        )));
    }
    std::fs::read_to_string(path).map_err(|e| refuse(e.to_string()))
}

/// What kind of file this is when it is not a regular file (`a directory`, `a FIFO ...`).
fn not_a_regular_file(t: &std::fs::FileType) -> Option<&'static str> {
    use std::os::unix::fs::FileTypeExt;
    if t.is_file() {
        None
    } else if t.is_dir() {
        Some("a directory")
    } else if t.is_fifo() {
        Some("a FIFO (named pipe)")
    } else if t.is_socket() {
        Some("a socket")
    } else if t.is_char_device() {
        Some("a character device")
    } else if t.is_block_device() {
        Some("a block device")
    } else {
        Some("a special file")
    }
}

impl Handler {
    fn judge(&self, key: &PublicKey) -> KeyOutcome {
        let h = &self.host;
        let fingerprint = known_hosts::fingerprint(key);
        let addr = format!("{}:{}", h.address, h.port);
        let refuse = |e: Error| KeyOutcome::Refused(Box::new(e));
        match known_hosts::check(&self.known, &h.address, h.port, key) {
            Verdict::Known { .. } => KeyOutcome::Accepted {
                fingerprint,
                learned: false,
            },
            Verdict::Changed { line } | Verdict::OtherAlgorithm { line, .. } => {
                refuse(Error::HostKeyChanged {
                    host: h.name.clone(),
                    addr,
                    fingerprint,
                    known_hosts: h.known_hosts.clone(),
                    line,
                })
            }
            Verdict::Revoked { line } => refuse(Error::HostKeyRevoked {
                host: h.name.clone(),
                addr,
                fingerprint,
                known_hosts: h.known_hosts.clone(),
                line,
            }),
            Verdict::Unknown => {
                let line_to_add = known_hosts::entry_line(&h.address, h.port, key);
                match h.host_key_policy {
                    HostKeyPolicy::Strict => refuse(Error::HostKeyUnknown {
                        host: h.name.clone(),
                        addr,
                        fingerprint,
                        known_hosts: h.known_hosts.clone(),
                        line_to_add,
                    }),
                    HostKeyPolicy::AcceptNew => match append_line(&h.known_hosts, &line_to_add) {
                        Ok(()) => {
                            tracing::warn!(
                                "{}: recorded new host key {fingerprint} in {}",
                                h.name,
                                h.known_hosts.display()
                            );
                            KeyOutcome::Accepted {
                                fingerprint,
                                learned: true,
                            }
                        }
                        Err(e) => refuse(Error::KnownHosts {
                            host: h.name.clone(),
                            path: h.known_hosts.clone(),
                            message: format!("cannot record the new host key: {e}"),
                        }),
                    },
                }
            }
        }
    }
}

/// Append a line to known_hosts (creating the file 0600 and its directory 0700 if needed).
fn append_line(path: &Path, line: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
        && !dir.exists()
    {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    let existing = std::fs::read(path).unwrap_or_default();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)?;
    if !existing.is_empty() && !existing.ends_with(b"\n") {
        f.write_all(b"\n")?;
    }
    f.write_all(format!("{line}\n").as_bytes())?;
    f.sync_all()
}

impl client::Handler for Handler {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        server_public_key: &russh::keys::PublicKeyOrCertificate,
    ) -> std::result::Result<bool, Self::Error> {
        let outcome = match server_public_key {
            russh::keys::PublicKeyOrCertificate::PublicKey { key, .. } => self.judge(key),
            russh::keys::PublicKeyOrCertificate::Certificate(_) => {
                KeyOutcome::Refused(Box::new(Error::Ssh {
                    host: self.host.name.clone(),
                    message: "the server presented a host certificate; ferry verifies plain host keys only".into(),
                }))
            }
        };
        let ok = matches!(outcome, KeyOutcome::Accepted { .. });
        *self.outcome.lock().unwrap() = Some(outcome);
        Ok(ok)
    }
}

/// An authenticated connection to one host.
pub struct Connection {
    handle: Arc<Handle<Handler>>,
    /// The host's name in the config.
    pub host: String,
    pub user: String,
    /// How authentication succeeded, e.g. `publickey ~/.ssh/id_ed25519 (ssh-ed25519 SHA256:..)`.
    pub auth_method: String,
    /// The verified host key.
    pub host_key: String,
    /// The host key was new and recorded under `accept-new`.
    pub host_key_learned: bool,
    /// How many handshakes it took (more than 1 when the server cut one short).
    pub attempts: u32,
    /// The jump host's connection, kept open while this one lives.
    jump: Option<Box<Connection>>,
    /// What was asked of the host on this connection (each costs at least a round trip).
    pub counters: Arc<Counters>,
    /// A round trip to the host, estimated from the key exchange (see [`writes_in_flight`]).
    pub rtt: Duration,
}

/// How many SFTP writes (32 KiB each) of one file are sent before the first is acknowledged,
/// for a host `rtt` away: enough for ~40 MiB/s per file on that round trip, at least 16
/// (512 KiB) and at most 64 (2 MiB: OpenSSH's channel window, which bounds what is in flight
/// anyway). Measured on a loopback host: a deeper pipeline leaves sshd a backlog that it drains
/// slowly at first (20 MiB took 0.22 s with 64 in flight, 0.10 s with 16; `sftp -R` shows the
/// same), while a distant host needs the depth (40 ms at 100 Mbit/s is 500 KiB in flight).
pub fn writes_in_flight(rtt: Duration) -> usize {
    const WRITE: f64 = 32.0 * 1024.0;
    const RATE: f64 = 40.0 * 1024.0 * 1024.0;
    ((rtt.as_secs_f64() * RATE / WRITE).ceil() as usize).clamp(16, 64)
}

/// Remote operations of a connection: each costs at least one round trip to the host, which
/// is what makes a deploy slow on a distant link.
#[derive(Debug, Default)]
pub struct Counters {
    /// Commands run (a channel each: open, exec, output, exit).
    pub commands: std::sync::atomic::AtomicU64,
    /// SFTP sessions opened (a channel and a subsystem request each).
    pub sftp_sessions: std::sync::atomic::AtomicU64,
    /// SFTP requests other than the data writes and reads (open, close, fsync, setstat,
    /// rename, stat, ...): the ones a transfer waits for.
    pub sftp_requests: std::sync::atomic::AtomicU64,
}

impl Counters {
    pub fn count(counter: &std::sync::atomic::AtomicU64) {
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// (commands, sftp sessions, sftp requests) so far.
    pub fn snapshot(&self) -> (u64, u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (
            self.commands.load(Relaxed),
            self.sftp_sessions.load(Relaxed),
            self.sftp_requests.load(Relaxed),
        )
    }
}

/// Output of a finished remote command.
#[derive(Debug, Clone, Default)]
pub struct Output {
    /// Exit status; None when the command was killed by a signal or none was sent.
    pub status: Option<u32>,
    pub signal: Option<String>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Output {
    pub fn success(&self) -> bool {
        self.status == Some(0)
    }

    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn stderr_str(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    /// `exit status 1`, `killed by signal TERM`.
    pub fn status_text(&self) -> String {
        match (&self.status, &self.signal) {
            (Some(s), _) => format!("exit status {s}"),
            (None, Some(sig)) => format!("killed by signal {sig}"),
            (None, None) => "no exit status".into(),
        }
    }
}

/// Which stream a chunk of output came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// What a spawned command's stdin gets.
#[derive(Debug, Clone, Copy)]
pub enum Stdin<'a> {
    /// EOF at once.
    Closed,
    /// These bytes, then EOF.
    Data(&'a [u8]),
    /// Kept open: write with [`RemoteProcess::write`], end with [`RemoteProcess::send_eof`].
    Open,
}

/// How a remote command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    /// It exited with this status.
    Status(u32),
    /// It was killed by this signal (`TERM`, `KILL`, ...).
    Signal(String),
}

/// What a running remote command produced: output as it arrives, then how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
    Exit(Exit),
}

/// A signal for a remote process. OpenSSH delivers channel signals for non-root logins only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Term,
    Kill,
    Int,
    Hup,
}

/// A command running on the host, on its own channel of the connection.
///
/// Dropping it sends nothing: the remote command keeps its stdin open until it ends or the
/// connection ends (the deploy lock relies on exactly that).
pub struct RemoteProcess {
    channel: russh::Channel<client::Msg>,
    handle: Arc<Handle<Handler>>,
    host: String,
    user: String,
    command: String,
    exit: Option<Exit>,
    /// The server closed the channel (as opposed to the session dropping it).
    closed: bool,
    /// The startup files' output before ferry's marker, and events read while waiting for it.
    preamble: wrap::Preamble,
}

impl RemoteProcess {
    /// The next chunk of output or the exit; None once the channel has closed. OpenSSH sends
    /// the exit status after the output's EOF and before closing, so read until None.
    /// Cancel-safe: a `select!` may drop it and call it again.
    pub async fn next(&mut self) -> Option<Event> {
        if let Some(event) = self.preamble.pending.pop_front() {
            return Some(event);
        }
        loop {
            let Some(event) = self.raw_next().await else {
                // Closed: an exit held for a marker that never came means the shell never ran
                // the command.
                self.closed_without_marker();
                return self.preamble.pending.pop_front();
            };
            if let Some(event) = self.filter(event) {
                return Some(event);
            }
            if let Some(event) = self.preamble.pending.pop_front() {
                return Some(event);
            }
        }
    }

    /// The channel closed: when an exit came but the marker never did, report that the login
    /// shell did not run the command (status 255).
    fn closed_without_marker(&mut self) {
        if self.preamble.stdout.seen() {
            if let Some(exit) = self.preamble.early_exit.take() {
                self.exit = Some(exit.clone());
                self.preamble.pending.push_back(Event::Exit(exit));
            }
            return;
        }
        let Some(exit) = self.preamble.early_exit.take() else {
            return;
        };
        tracing::debug!("{}: no marker before {exit:?}", self.host);
        let message = wrap::not_started(&self.host, &self.user, &self.noise_text());
        self.exit = Some(Exit::Status(NOT_STARTED));
        self.preamble
            .pending
            .push_back(Event::Stderr(message.into_bytes()));
        self.preamble
            .pending
            .push_back(Event::Exit(Exit::Status(NOT_STARTED)));
    }

    /// The next message of the channel as an event, before the marker filter.
    async fn raw_next(&mut self) -> Option<Event> {
        loop {
            match self.channel.wait().await? {
                ChannelMsg::Data { data } => return Some(Event::Stdout(data.into())),
                ChannelMsg::ExtendedData { data, ext: 1 } => {
                    return Some(Event::Stderr(data.into()));
                }
                ChannelMsg::ExitStatus { exit_status } => {
                    return Some(Event::Exit(Exit::Status(exit_status)));
                }
                ChannelMsg::ExitSignal { signal_name, .. } => {
                    return Some(Event::Exit(Exit::Signal(sig_name(&signal_name))));
                }
                ChannelMsg::Close => {
                    self.closed = true;
                    return None;
                }
                _ => {}
            }
        }
    }

    /// Drop what the login shell printed before ferry's marker (logged once at debug). An exit
    /// before the marker means the shell never ran the command: say so on stderr, status 255.
    fn filter(&mut self, event: Event) -> Option<Event> {
        let event = match event {
            Event::Stdout(data) => {
                let own = self.preamble.stdout.feed(&data);
                self.report_noise();
                // An early exit status stays held until the channel closes (more output may
                // follow it): see `closed_without_marker`.
                (!own.is_empty()).then_some(Event::Stdout(own))?
            }
            Event::Stderr(data) => {
                let own = self.preamble.stderr.feed(&data);
                self.report_noise();
                (!own.is_empty()).then_some(Event::Stderr(own))?
            }
            Event::Exit(exit) if !self.preamble.stdout.seen() => {
                // Held: the output (and its marker) may still come before the channel closes.
                self.preamble.early_exit = Some(exit);
                return None;
            }
            Event::Exit(exit) => {
                self.exit = Some(exit.clone());
                Event::Exit(exit)
            }
        };
        Some(event)
    }

    fn noise_text(&self) -> Vec<u8> {
        let mut all = self.preamble.stdout.before().to_vec();
        all.extend_from_slice(self.preamble.stderr.before());
        all
    }

    fn report_noise(&mut self) {
        let p = &self.preamble;
        if p.reported || !p.stdout.seen() || !p.stderr.seen() || p.noise() == 0 {
            return;
        }
        self.preamble.reported = true;
        tracing::debug!(
            "{}: the login shell of `{}` printed {} bytes before ferry's command (a startup file such as ~/.bashrc prints; ignored): {:?}",
            self.host,
            self.user,
            self.preamble.noise(),
            String::from_utf8_lossy(&self.noise_text())
                .chars()
                .take(200)
                .collect::<String>()
        );
    }

    /// Wait until the command has started (its marker came), keeping what arrives meanwhile;
    /// ends early when the command ends without it. Input is sent only after this, so that a
    /// startup file that starts another shell reading stdin never runs it as commands.
    async fn started(&mut self) -> Result<()> {
        let wait = async {
            while !self.preamble.stdout.seen() {
                let Some(event) = self.raw_next().await else {
                    self.closed_without_marker();
                    return;
                };
                if let Some(event) = self.filter(event) {
                    self.preamble.pending.push_back(event);
                }
            }
        };
        if tokio::time::timeout(START_TIMEOUT, wait).await.is_err() {
            let mut message = wrap::not_started(&self.host, &self.user, &self.noise_text());
            message.push_str(&format!(
                " (nothing came within {}s)",
                START_TIMEOUT.as_secs()
            ));
            return Err(ssh_err(&self.host, message));
        }
        Ok(())
    }

    /// How the command ended, once [`RemoteProcess::next`] has returned the exit.
    pub fn exit(&self) -> Option<&Exit> {
        self.exit.as_ref()
    }

    /// The output ended without an exit status because the connection went away (only
    /// meaningful after [`RemoteProcess::next`] returned None).
    pub fn connection_lost(&self) -> bool {
        self.exit.is_none() && (!self.closed || self.handle.is_closed())
    }

    /// [`Error::ConnectionLost`] for this command; `during` says what was under way.
    pub fn lost(&self, during: impl Into<String>) -> Error {
        Error::ConnectionLost {
            host: self.host.clone(),
            during: during.into(),
        }
    }

    fn failed(&self, e: russh::Error, what: &str) -> Error {
        if self.handle.is_closed() || transport_gone(&e) {
            self.lost(format!("running `{}`", abbreviate(&self.command)))
        } else {
            ssh_err(&self.host, format!("{what}: {e}"))
        }
    }

    /// Send bytes to the command's stdin.
    pub async fn write(&self, data: &[u8]) -> Result<()> {
        self.channel
            .data(data)
            .await
            .map_err(|e| self.failed(e, "cannot send input"))
    }

    /// Close the command's stdin.
    pub async fn send_eof(&self) -> Result<()> {
        self.channel
            .eof()
            .await
            .map_err(|e| self.failed(e, "cannot close the input"))
    }

    /// Send a signal to the command (OpenSSH ignores it for root logins).
    pub async fn signal(&self, signal: Signal) -> Result<()> {
        let sig = match signal {
            Signal::Term => russh::Sig::TERM,
            Signal::Kill => russh::Sig::KILL,
            Signal::Int => russh::Sig::INT,
            Signal::Hup => russh::Sig::HUP,
        };
        self.channel
            .signal(sig)
            .await
            .map_err(|e| self.failed(e, &format!("cannot send SIG{signal:?}")))
    }

    /// Close our side of the channel (the server may still send what is in flight).
    pub async fn close(&self) {
        let _ = self.channel.close().await;
    }

    /// Read to the end, calling `on_output` with each chunk, and collect everything.
    pub async fn output(mut self, mut on_output: impl FnMut(Stream, &[u8])) -> Result<Output> {
        let mut out = Output::default();
        while let Some(event) = self.next().await {
            match event {
                Event::Stdout(data) => {
                    on_output(Stream::Stdout, &data);
                    out.stdout.extend_from_slice(&data);
                }
                Event::Stderr(data) => {
                    on_output(Stream::Stderr, &data);
                    out.stderr.extend_from_slice(&data);
                }
                Event::Exit(Exit::Status(s)) => out.status = Some(s),
                Event::Exit(Exit::Signal(sig)) => out.signal = Some(sig),
            }
        }
        if self.connection_lost() {
            return Err(self.lost(format!("running `{}`", abbreviate(&self.command))));
        }
        if !self.preamble.stdout.seen() {
            return Err(ssh_err(
                &self.host,
                wrap::not_started(&self.host, &self.user, &self.noise_text()),
            ));
        }
        Ok(out)
    }
}

/// The exit status reported when the login shell never ran ferry's command.
pub const NOT_STARTED: u32 = 255;

/// How long the login shell may take before ferry's command starts (its startup files run
/// first), when the command needs its input.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// `TERM`, `KILL`, or the name a server sent.
fn sig_name(sig: &russh::Sig) -> String {
    match sig {
        russh::Sig::Custom(name) => name.clone(),
        other => format!("{other:?}"),
    }
}

/// A command shortened for messages: its first line, at most 80 characters.
fn abbreviate(command: &str) -> String {
    let first = command.lines().next().unwrap_or_default();
    let mut short: String = first.chars().take(80).collect();
    if short.len() < command.len() {
        short.push_str("...");
    }
    short
}

/// Does this russh error mean the connection itself is gone (not just one request refused)?
fn transport_gone(e: &russh::Error) -> bool {
    use russh::Error as E;
    matches!(
        e,
        E::SendError
            | E::RecvError
            | E::Disconnect
            | E::HUP
            | E::IO(_)
            | E::KeepaliveTimeout
            | E::InactivityTimeout
            | E::ConnectionTimeout
    )
}

/// Ciphers in order of preference: AES-GCM first where the CPU has AES instructions (it is then
/// the fastest, as OpenSSH's own benchmarks show), ChaCha20-Poly1305 first elsewhere.
fn cipher_order(aes_in_hardware: bool) -> Vec<russh::cipher::Name> {
    use russh::cipher::{AES_128_CTR, AES_128_GCM, AES_256_CTR, AES_256_GCM, CHACHA20_POLY1305};
    if aes_in_hardware {
        vec![
            AES_128_GCM,
            AES_256_GCM,
            CHACHA20_POLY1305,
            AES_256_CTR,
            AES_128_CTR,
        ]
    } else {
        vec![
            CHACHA20_POLY1305,
            AES_128_GCM,
            AES_256_GCM,
            AES_256_CTR,
            AES_128_CTR,
        ]
    }
}

fn aes_in_hardware() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("aes")
            && std::arch::is_x86_feature_detected!("pclmulqdq")
    }
    #[cfg(target_arch = "aarch64")]
    {
        std::arch::is_aarch64_feature_detected!("aes")
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        false
    }
}

fn client_config(algorithms: Vec<russh::keys::Algorithm>) -> client::Config {
    let mut preferred = russh::Preferred {
        cipher: cipher_order(aes_in_hardware()).into(),
        ..Default::default()
    };
    if !algorithms.is_empty() {
        // Ask first for the algorithms known_hosts holds for this host, then the rest.
        let mut keys: Vec<_> = algorithms;
        for a in preferred.key.iter() {
            if !keys.contains(a) {
                keys.push(a.clone());
            }
        }
        preferred.key = keys.into();
    }
    client::Config {
        preferred,
        nodelay: true,
        keepalive_interval: Some(Duration::from_secs(10)),
        keepalive_max: 3,
        inactivity_timeout: None,
        window_size: 8 * 1024 * 1024,
        ..Default::default()
    }
}

fn ssh_err(host: &str, e: impl std::fmt::Display) -> Error {
    Error::Ssh {
        host: host.to_string(),
        message: e.to_string(),
    }
}

/// How many times a handshake the server cut short is tried in all.
pub const HANDSHAKE_TRIES: u32 = 5;

/// Connect, verify the host key and authenticate.
///
/// sshd drops connections beyond its `MaxStartups` (default 10:30:100: past ten
/// unauthenticated connections at once, 30% and more are closed at once), which many hosts
/// behind one sshd, or one host with a high `--parallel`, run into. A handshake that the server
/// reset or closed before authentication is therefore tried again, up to
/// [`HANDSHAKE_TRIES`] times within `connect_timeout`, after a growing, jittered pause. A refused
/// host key, a failed authentication or a refused TCP connection is never retried.
pub async fn connect(host: &Host) -> Result<Connection> {
    let bastion = match &host.proxy_jump {
        Some(jump) => Some(Box::pin(connect(jump)).await?),
        None => None,
    };
    let deadline = tokio::time::Instant::now() + host.connect_timeout;
    let mut attempt = 1;
    loop {
        match attempt_handshake(host, bastion.as_ref(), deadline).await {
            Ok(mut conn) => {
                conn.attempts = attempt;
                conn.jump = bastion.map(Box::new);
                return Ok(conn);
            }
            Err(Failure::Final(e)) => {
                if let Some(b) = &bastion {
                    b.close().await;
                }
                return Err(e);
            }
            Err(Failure::Retry(cause)) => {
                let delay = retry_delay(attempt, jitter());
                let out_of_time = tokio::time::Instant::now() + delay >= deadline;
                if attempt >= HANDSHAKE_TRIES || out_of_time {
                    if let Some(b) = &bastion {
                        b.close().await;
                    }
                    return Err(ssh_err(
                        &host.name,
                        format!(
                            "handshake with {}:{} failed: {cause} ({attempt} attempt(s) within {}); sshd's MaxStartups may be limiting logins at once: lower --parallel, or raise MaxStartups in the host's sshd_config",
                            host.address,
                            host.port,
                            humantime::format_duration(host.connect_timeout)
                        ),
                    ));
                }
                tracing::info!(
                    "{}: {cause} (sshd MaxStartups?), retrying in {}ms ({}/{HANDSHAKE_TRIES})",
                    host.name,
                    delay.as_millis(),
                    attempt + 1
                );
                tokio::time::sleep(delay).await;
                attempt += 1;
            }
        }
    }
}

/// Why one handshake attempt failed.
enum Failure {
    /// Worth another try: what happened, e.g. "handshake reset by the server".
    Retry(String),
    /// Final.
    Final(Error),
}

/// The pause before attempt `attempt + 1`: 100 ms doubling per attempt (at most 1.6 s), plus
/// `jitter` (0..1) times as much again, so that connections dropped together do not all come
/// back together.
fn retry_delay(attempt: u32, jitter: f64) -> Duration {
    let base = 100u64 << attempt.clamp(1, 5).saturating_sub(1);
    let extra = (base as f64 * jitter.clamp(0.0, 1.0)) as u64;
    Duration::from_millis(base + extra)
}

/// A random fraction in 0..1, from the standard library's randomly seeded hasher.
fn jitter() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0);
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// Is a failed handshake worth another try, and what happened? Only when the server cut it
/// short: reset it, or closed the connection before its banner or during the key exchange.
/// A refused host key (russh's UnknownKey, whatever the reason) is never retried.
fn retryable(e: &russh::Error) -> Option<&'static str> {
    use std::io::ErrorKind as K;
    match e {
        russh::Error::IO(io) => match io.kind() {
            K::ConnectionReset | K::ConnectionAborted => Some("handshake reset by the server"),
            K::UnexpectedEof | K::BrokenPipe => {
                Some("the server closed the connection during the handshake")
            }
            _ => None,
        },
        russh::Error::Disconnect | russh::Error::HUP => {
            Some("the server closed the connection during the handshake")
        }
        _ => None,
    }
}

/// One attempt: connect (directly, or through the jump host), verify the host key,
/// authenticate. Connecting and the key exchange must end by `deadline`.
async fn attempt_handshake(
    host: &Host,
    bastion: Option<&Connection>,
    deadline: tokio::time::Instant,
) -> std::result::Result<Connection, Failure> {
    let addr = format!("{}:{}", host.address, host.port);
    let timed_out = |addr: String| {
        Failure::Final(Error::ConnectTimeout {
            host: host.name.clone(),
            addr,
            after: host.connect_timeout,
        })
    };
    let Some(bastion) = bastion else {
        return handshake(host, None, deadline).await;
    };
    // ProxyJump: the jump host opens a TCP connection to the target, and we speak SSH to the
    // target through that channel. The target's key is checked as usual.
    tracing::debug!(
        "{}: connecting to {addr} through {}",
        host.name,
        bastion.host
    );
    let channel = tokio::time::timeout_at(
        deadline,
        bastion
            .handle
            .channel_open_direct_tcpip(&host.address, host.port as u32, "127.0.0.1", 0),
    )
    .await
    .map_err(|_| timed_out(format!("{addr} (through {})", bastion.host)))?
    .map_err(|e| {
        Failure::Final(if bastion.is_closed() || transport_gone(&e) {
            Error::ConnectionLost {
                host: bastion.host.clone(),
                during: format!("opening a connection to {addr} for {}", host.name),
            }
        } else {
            ssh_err(
                &host.name,
                format!(
                    "the jump host {} cannot connect to {addr}: {e}",
                    bastion.host
                ),
            )
        })
    })?;
    handshake(host, Some(channel.into_stream()), deadline).await
}

/// Connect (directly, or over a jump host's channel), verify the host key, authenticate.
async fn handshake(
    host: &Host,
    stream: Option<russh::ChannelStream<client::Msg>>,
    deadline: tokio::time::Instant,
) -> std::result::Result<Connection, Failure> {
    let known = read_known_hosts(host).map_err(Failure::Final)?;
    let algorithms = known_hosts::known_algorithms(&known, &host.address, host.port);
    let config = Arc::new(client_config(algorithms));
    let outcome = Arc::new(Mutex::new(None));
    let handler = Handler {
        host: host.clone(),
        known,
        outcome: outcome.clone(),
    };
    let addr = format!("{}:{}", host.address, host.port);
    let via = match &host.proxy_jump {
        Some(j) => format!("{addr} (through {})", j.name),
        None => addr.clone(),
    };
    tracing::debug!("{}: connecting to {addr} as {}", host.name, host.user);
    // A refused host key surfaces as a generic error: report the real reason. A handshake the
    // server cut short may be tried again.
    let failed = |e: russh::Error| match outcome.lock().unwrap().take() {
        Some(KeyOutcome::Refused(err)) => Failure::Final(*err),
        _ => match retryable(&e) {
            Some(cause) => Failure::Retry(cause.to_string()),
            None => Failure::Final(ssh_err(
                &host.name,
                format!("handshake with {addr} failed: {e}"),
            )),
        },
    };
    let connecting = async {
        match stream {
            Some(stream) => client::connect_stream(config, stream, handler)
                .await
                .map_err(failed),
            None => {
                let tcp = tokio::net::TcpStream::connect((host.address.as_str(), host.port))
                    .await
                    .map_err(|source| {
                        Failure::Final(Error::Connect {
                            host: host.name.clone(),
                            addr: addr.clone(),
                            source,
                        })
                    })?;
                tcp.set_nodelay(true).ok();
                client::connect_stream(config, tcp, handler)
                    .await
                    .map_err(failed)
            }
        }
    };
    let started = tokio::time::Instant::now();
    let mut handle = tokio::time::timeout_at(deadline, connecting)
        .await
        .map_err(|_| {
            Failure::Final(Error::ConnectTimeout {
                host: host.name.clone(),
                addr: via,
                after: host.connect_timeout,
            })
        })??;
    // Connecting, the version exchange and the key exchange take about three round trips (and
    // the server's fork and key signature: an overestimate on a near host).
    let rtt = started.elapsed() / 3;
    tracing::debug!(
        "{}: key exchange done; round trip estimated at {rtt:?}: {} SFTP writes in flight per file",
        host.name,
        writes_in_flight(rtt)
    );
    let (host_key, host_key_learned) = match outcome.lock().unwrap().take() {
        Some(KeyOutcome::Accepted {
            fingerprint,
            learned,
        }) => (fingerprint, learned),
        _ => {
            // Cannot happen: russh only proceeds after check_server_key accepted the key.
            return Err(Failure::Final(ssh_err(
                &host.name,
                "host key was not verified",
            )));
        }
    };
    let auth_method = tokio::time::timeout(
        host.connect_timeout.max(Duration::from_secs(10)),
        authenticate(&mut handle, host),
    )
    .await
    .map_err(|_| {
        Failure::Final(Error::ConnectTimeout {
            host: host.name.clone(),
            addr,
            after: host.connect_timeout,
        })
    })?
    .map_err(Failure::Final)?;
    tracing::debug!("{}: authenticated with {auth_method}", host.name);
    Ok(Connection {
        handle: Arc::new(handle),
        host: host.name.clone(),
        user: host.user.clone(),
        auth_method,
        host_key,
        host_key_learned,
        attempts: 1,
        jump: None,
        counters: Arc::default(),
        rtt,
    })
}

/// Display a path with the home directory written as `~`.
fn tilde(path: &Path) -> String {
    if let Some(home) = std::env::var_os("HOME")
        && let Ok(rest) = path.strip_prefix(&home)
    {
        return format!("~/{}", rest.display());
    }
    path.display().to_string()
}

/// Load a private key; an encrypted key's passphrase comes from FERRY_KEY_PASSPHRASE or a
/// prompt on the terminal, never from the config.
fn load_key(path: &Path) -> Result<PrivateKey> {
    let key_err = |message: String| Error::Key {
        path: path.to_path_buf(),
        message,
    };
    match russh::keys::load_secret_key(path, None) {
        Ok(k) => Ok(k),
        Err(russh::keys::Error::KeyIsEncrypted) => {
            let passphrase = match std::env::var(PASSPHRASE_ENV) {
                Ok(p) => p,
                Err(_) if std::io::IsTerminal::is_terminal(&std::io::stdin()) => {
                    rpassword::prompt_password(format!("Passphrase for {}: ", tilde(path)))
                        .map_err(|e| key_err(format!("cannot read the passphrase: {e}")))?
                }
                Err(_) => {
                    return Err(key_err(format!(
                        "the key is encrypted; set {PASSPHRASE_ENV}, run on a terminal to be asked, or use ssh-agent"
                    )));
                }
            };
            russh::keys::load_secret_key(path, Some(&passphrase))
                .map_err(|e| key_err(format!("cannot decrypt it ({e}); is the passphrase right?")))
        }
        Err(e) => Err(key_err(e.to_string())),
    }
}

async fn rsa_hash(handle: &Handle<Handler>) -> Option<HashAlg> {
    match handle.best_supported_rsa_hash().await {
        Ok(Some(h)) => h,
        // The server did not say: rsa-sha2-256 is what every current OpenSSH accepts.
        _ => Some(HashAlg::Sha256),
    }
}

async fn try_key(
    handle: &mut Handle<Handler>,
    host: &Host,
    path: &Path,
    tried: &mut Vec<String>,
) -> Result<Option<String>> {
    let key = Arc::new(load_key(path)?);
    let hash = if key.algorithm().is_rsa() {
        rsa_hash(handle).await
    } else {
        None
    };
    let label = format!(
        "publickey {} ({})",
        tilde(path),
        known_hosts::fingerprint(key.public_key())
    );
    let result = handle
        .authenticate_publickey(&host.user, PrivateKeyWithHashAlg::new(key, hash))
        .await
        .map_err(|e| ssh_err(&host.name, e))?;
    if result.success() {
        Ok(Some(label))
    } else {
        tried.push(label);
        Ok(None)
    }
}

async fn authenticate(handle: &mut Handle<Handler>, host: &Host) -> Result<String> {
    let mut tried = Vec::new();
    if let Some(identity) = &host.identity {
        if let Some(m) = try_key(handle, host, identity, &mut tried).await? {
            return Ok(m);
        }
    } else {
        if std::env::var_os("SSH_AUTH_SOCK").is_some() {
            match AgentClient::connect_env().await {
                Ok(mut agent) => match agent.request_identities().await {
                    Ok(ids) => {
                        for id in ids {
                            let public = id.public_key().into_owned();
                            let hash = if public.algorithm().is_rsa() {
                                rsa_hash(handle).await
                            } else {
                                None
                            };
                            let label =
                                format!("ssh-agent key {}", known_hosts::fingerprint(&public));
                            match handle
                                .authenticate_publickey_with(&host.user, public, hash, &mut agent)
                                .await
                            {
                                Ok(r) if r.success() => return Ok(label),
                                Ok(_) => tried.push(label),
                                Err(e) => tried.push(format!("{label}: {e}")),
                            }
                        }
                    }
                    Err(e) => tried.push(format!("ssh-agent: cannot list keys: {e}")),
                },
                Err(e) => tried.push(format!("ssh-agent: cannot connect: {e}")),
            }
        }
        let home = std::env::var_os("HOME").map(PathBuf::from);
        for name in ["id_ed25519", "id_ecdsa", "id_rsa"] {
            let Some(home) = &home else { break };
            let path = home.join(".ssh").join(name);
            if !path.exists() {
                continue;
            }
            match try_key(handle, host, &path, &mut tried).await {
                Ok(Some(m)) => return Ok(m),
                Ok(None) => {}
                // A default key that cannot be loaded is skipped, as OpenSSH does.
                Err(e) => tried.push(e.to_string()),
            }
        }
    }
    Err(Error::Auth {
        host: host.name.clone(),
        user: host.user.clone(),
        tried,
    })
}

impl Connection {
    fn err(&self, e: impl std::fmt::Display) -> Error {
        ssh_err(&self.host, e)
    }

    /// The error for a failed operation: [`Error::ConnectionLost`] when the connection is gone
    /// (`during` says what was under way), else [`Error::Ssh`] with `what` and russh's reason.
    fn failed(&self, e: russh::Error, what: &str, during: impl FnOnce() -> String) -> Error {
        if self.handle.is_closed() || transport_gone(&e) {
            Error::ConnectionLost {
                host: self.host.clone(),
                during: during(),
            }
        } else {
            self.err(format!("{what}: {e}"))
        }
    }

    /// Start `command` on a new channel. Read what it prints and how it ends with
    /// [`RemoteProcess::next`]. With [`Stdin::Open`] its stdin stays open until
    /// [`RemoteProcess::send_eof`] (or until the process or the connection is dropped).
    pub async fn spawn(&self, command: &str, stdin: Stdin<'_>) -> Result<RemoteProcess> {
        tracing::debug!("{}: exec {command}", self.host);
        Counters::count(&self.counters.commands);
        let nonce = wrap::nonce();
        let running = || format!("starting `{}`", abbreviate(command));
        let channel = self
            .handle
            .channel_open_session()
            .await
            .map_err(|e| self.failed(e, "cannot open a channel", running))?;
        channel
            .exec(true, wrap::wrap(command, &nonce))
            .await
            .map_err(|e| self.failed(e, &format!("cannot run `{command}`"), running))?;
        let mut process = RemoteProcess {
            channel,
            handle: self.handle.clone(),
            host: self.host.clone(),
            user: self.user.clone(),
            command: command.to_string(),
            exit: None,
            closed: false,
            preamble: wrap::Preamble::new(&nonce),
        };
        match stdin {
            Stdin::Open => process.started().await?,
            Stdin::Closed => process.send_eof().await?,
            Stdin::Data(input) => {
                process.started().await?;
                process.write(input).await?;
                process.send_eof().await?;
            }
        }
        Ok(process)
    }

    /// Run a command, feeding `stdin` (then EOF), calling `on_output` with chunks as they arrive.
    pub async fn exec_streaming(
        &self,
        command: &str,
        stdin: Option<&[u8]>,
        on_output: impl FnMut(Stream, &[u8]),
    ) -> Result<Output> {
        let stdin = match stdin {
            Some(input) => Stdin::Data(input),
            None => Stdin::Closed,
        };
        self.spawn(command, stdin).await?.output(on_output).await
    }
    /// Run a command and collect its output.
    pub async fn exec(&self, command: &str) -> Result<Output> {
        self.exec_streaming(command, None, |_, _| {}).await
    }

    /// [`Connection::exec`] taking the command by value (handy for many commands at once).
    pub async fn exec_owned(&self, command: String) -> Result<Output> {
        self.exec(&command).await
    }

    /// Run a command; a non-zero exit is an error carrying its stderr. Returns stdout.
    pub async fn run(&self, command: &str) -> Result<String> {
        let out = self.exec(command).await?;
        if out.success() {
            Ok(out.stdout_str())
        } else {
            Err(Error::Command {
                host: self.host.clone(),
                command: command.to_string(),
                status: out.status_text(),
                stderr: out.stderr_str(),
            })
        }
    }

    /// Start an SFTP session on a new channel of this connection.
    pub async fn sftp(&self) -> Result<russh_sftp::client::SftpSession> {
        let starting = || "starting an SFTP session".to_string();
        Counters::count(&self.counters.sftp_sessions);
        let channel = self
            .handle
            .channel_open_session()
            .await
            .map_err(|e| self.failed(e, "cannot open a channel", starting))?;
        channel
            .request_subsystem(true, "sftp")
            .await
            .map_err(|e| self.failed(e, "cannot start the sftp subsystem", starting))?;
        let config = russh_sftp::client::Config {
            max_concurrent_writes: writes_in_flight(self.rtt),
            request_timeout_secs: 60,
            ..Default::default()
        };
        match russh_sftp::client::SftpSession::new_with_config(channel.into_stream(), config).await
        {
            Ok(session) => Ok(session),
            Err(e) => Err(Error::Sftp {
                host: self.host.clone(),
                message: match self.startup_output().await {
                    Some(printed) => wrap::breaks_sftp(&self.user, &printed),
                    None => format!("cannot start an SFTP session: {e}"),
                },
            }),
        }
    }

    /// What the login shell's startup files print on stdout before a command (which breaks
    /// an SFTP server started through that shell), if anything.
    async fn startup_output(&self) -> Option<Vec<u8>> {
        let mut process = self.spawn("true", Stdin::Closed).await.ok()?;
        while process.next().await.is_some() {}
        let printed = process.preamble.stdout.before().to_vec();
        (!printed.is_empty()).then_some(printed)
    }

    /// A function telling whether this connection is closed (for sessions on its channels,
    /// such as SFTP, to tell a lost connection from a failed request).
    pub fn liveness(&self) -> Arc<dyn Fn() -> bool + Send + Sync> {
        let handle = self.handle.clone();
        Arc::new(move || handle.is_closed())
    }

    /// A TCP connection made by the host to `host:port` (direct-tcpip).
    pub async fn connect_tcp(
        &self,
        host: &str,
        port: u16,
    ) -> Result<russh::ChannelStream<client::Msg>> {
        let channel = self
            .handle
            .channel_open_direct_tcpip(host, port as u32, "127.0.0.1", 0)
            .await
            .map_err(|e| {
                self.failed(
                    e,
                    &format!("cannot open {host}:{port} from the host"),
                    || format!("opening {host}:{port} from the host"),
                )
            })?;
        Ok(channel.into_stream())
    }

    /// A connection made by the host to a unix socket (direct-streamlocal).
    pub async fn connect_unix(&self, path: &str) -> Result<russh::ChannelStream<client::Msg>> {
        let channel = self
            .handle
            .channel_open_direct_streamlocal(path)
            .await
            .map_err(|e| {
                self.failed(
                    e,
                    &format!("cannot open unix socket {path} on the host"),
                    || format!("opening unix socket {path} on the host"),
                )
            })?;
        Ok(channel.into_stream())
    }

    pub fn is_closed(&self) -> bool {
        self.handle.is_closed()
    }

    /// Close the connection (and the jump host's) politely.
    pub async fn close(&self) {
        let _ = self
            .handle
            .disconnect(Disconnect::ByApplication, "", "en")
            .await;
        if let Some(jump) = &self.jump {
            Box::pin(jump.close()).await;
        }
    }

    /// The jump host's name, when connected through one.
    pub fn via(&self) -> Option<&str> {
        self.jump.as_ref().map(|j| j.host.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sftp_pipeline_deepens_with_the_round_trip() {
        let ms = |n| writes_in_flight(Duration::from_millis(n));
        // A near host (loopback: the key exchange takes 20-35 ms, so ~7-12 ms): 512 KiB.
        assert_eq!(ms(0), 16);
        assert_eq!(ms(12), 16);
        // 20 ms: 800 KiB; 40 ms: 1.6 MiB; beyond: the 2 MiB of OpenSSH's window.
        assert_eq!(ms(20), 26);
        assert_eq!(ms(40), 52);
        assert_eq!(ms(60), 64);
        assert_eq!(ms(400), 64);
    }
    use std::io::ErrorKind;

    fn io(kind: ErrorKind) -> russh::Error {
        russh::Error::IO(std::io::Error::from(kind))
    }

    #[test]
    fn a_handshake_the_server_cut_short_is_retried() {
        // sshd past MaxStartups closes the accepted socket: a reset when our banner was
        // already sent, an EOF (russh: Disconnect) when not.
        assert_eq!(
            retryable(&io(ErrorKind::ConnectionReset)),
            Some("handshake reset by the server")
        );
        for e in [
            io(ErrorKind::UnexpectedEof),
            io(ErrorKind::BrokenPipe),
            russh::Error::Disconnect,
            russh::Error::HUP,
        ] {
            assert_eq!(
                retryable(&e),
                Some("the server closed the connection during the handshake"),
                "{e:?}"
            );
        }
        assert!(retryable(&io(ErrorKind::ConnectionAborted)).is_some());
    }

    #[test]
    fn host_key_and_protocol_failures_are_never_retried() {
        for e in [
            // What russh returns when check_server_key refused the key.
            russh::Error::UnknownKey,
            russh::Error::KeyChanged { line: 3 },
            russh::Error::WrongServerSig,
            russh::Error::NotAuthenticated,
            russh::Error::NoAuthMethod,
            russh::Error::Version,
            russh::Error::Kex,
            russh::Error::PacketAuth,
            io(ErrorKind::PermissionDenied),
            io(ErrorKind::ConnectionRefused),
            io(ErrorKind::TimedOut),
        ] {
            assert_eq!(retryable(&e), None, "{e:?}");
        }
    }

    #[test]
    fn retry_delays_grow_are_jittered_and_bounded() {
        let low: Vec<u64> = (1..=6)
            .map(|a| retry_delay(a, 0.0).as_millis() as u64)
            .collect();
        assert_eq!(low, vec![100, 200, 400, 800, 1600, 1600]);
        assert_eq!(retry_delay(2, 1.0), Duration::from_millis(400));
        assert_eq!(retry_delay(2, 0.5), Duration::from_millis(300));
        // Out-of-range input stays within bounds.
        assert_eq!(retry_delay(0, 7.0), Duration::from_millis(200));
        assert_eq!(retry_delay(u32::MAX, -1.0), Duration::from_millis(1600));
        // Every retry of a connect fits in the default 10 s connect_timeout.
        let worst: Duration = (1..HANDSHAKE_TRIES).map(|a| retry_delay(a, 1.0)).sum();
        assert!(worst <= Duration::from_secs(3), "{worst:?}");
    }

    #[test]
    fn jitter_is_a_fraction_and_varies() {
        let samples: Vec<f64> = (0..64).map(|_| jitter()).collect();
        assert!(
            samples.iter().all(|j| (0.0..1.0).contains(j)),
            "{samples:?}"
        );
        assert!(samples.iter().any(|j| *j != samples[0]), "{samples:?}");
    }

    #[test]
    fn a_lost_session_is_told_apart_from_a_refused_request() {
        for e in [
            russh::Error::SendError,
            russh::Error::RecvError,
            russh::Error::Disconnect,
            russh::Error::HUP,
            russh::Error::KeepaliveTimeout,
            io(ErrorKind::ConnectionReset),
        ] {
            assert!(transport_gone(&e), "{e:?}");
        }
        for e in [
            russh::Error::ChannelOpenFailure(russh::ChannelOpenFailure::AdministrativelyProhibited),
            russh::Error::RequestDenied,
            russh::Error::WrongChannel,
        ] {
            assert!(!transport_gone(&e), "{e:?}");
        }
    }

    #[test]
    fn commands_are_abbreviated_in_messages() {
        assert_eq!(abbreviate("true"), "true");
        assert_eq!(abbreviate("sh -s\necho hi"), "sh -s...");
        let long = "x".repeat(100);
        assert_eq!(abbreviate(&long), format!("{}...", "x".repeat(80)));
        assert_eq!(abbreviate("ünï"), "ünï");
    }

    #[test]
    fn connection_lost_names_host_and_what_was_under_way() {
        let e = Error::ConnectionLost {
            host: "web1".into(),
            during: "running `systemctl --user restart app.service`".into(),
        };
        assert_eq!(
            e.to_string(),
            "web1: the connection was lost while running `systemctl --user restart app.service`"
        );
        assert_eq!(e.exit_code(), crate::error::exit::CONNECTION);
        assert!(
            e.hint()
                .unwrap()
                .contains("run the same ferry command again")
        );
    }

    #[test]
    fn aes_gcm_first_with_aes_instructions() {
        assert_eq!(cipher_order(true)[0], russh::cipher::AES_128_GCM);
        assert_eq!(cipher_order(false)[0], russh::cipher::CHACHA20_POLY1305);
        // Only AEAD or CTR ciphers; never CBC or none.
        for c in cipher_order(true) {
            let n = c.as_ref();
            assert!(
                n.contains("gcm") || n.contains("ctr") || n.contains("chacha"),
                "{n}"
            );
        }
    }
}
