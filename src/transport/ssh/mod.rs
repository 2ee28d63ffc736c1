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

mod auth;
/// The OpenSSH client config resolution, by its former path (it lives in `config::ssh`, pure).
pub use crate::config::ssh as config;
mod counters;
mod dial;
mod forward;
mod host_cert;
mod host_key;
pub mod known_hosts;
mod probe;
mod process;
mod proxy_command;
mod round_trip;
mod sessions;
mod wrap;

pub use counters::Counters;
use dial::{jitter, retry_delay};

pub use probe::{LoginShell, Sessions, SftpAnswer};
pub use process::*;

use host_key::{Handler, KeyOutcome, key_name, known_files, read_known_hosts};

use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::client::{self, Handle};
use russh::{ChannelMsg, Disconnect};

use crate::config::Host;
use crate::error::{Error, Result};

/// Environment variable with the passphrase of an encrypted private key.
pub const PASSPHRASE_ENV: &str = "FERRY_KEY_PASSPHRASE";

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
    /// The SSH pings measuring the round trip in the background, once started (see
    /// [`Connection::start_round_trip`]).
    pinging: Mutex<Option<tokio::task::JoinHandle<Duration>>>,
    /// A session channel opened ahead of need, once [`Connection::keep_a_spare_session`] was
    /// called (see there).
    spare: sessions::Spare,
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

/// The client keepalive: ServerAliveInterval/ServerAliveCountMax when the OpenSSH config sets
/// them (a frozen server is given up after about interval x count, as by ssh); else every 10 s,
/// 3 missed (OpenSSH sends none by default and waits on TCP; ferry bounds a frozen server).
fn keepalive(host: &Host) -> (Duration, usize) {
    match host.ssh.server_alive_interval {
        Some(i) => (i, host.ssh.server_alive_count_max.max(1) as usize),
        None => (Duration::from_secs(10), 3),
    }
}

fn client_config(
    algorithms: Vec<russh::keys::Algorithm>,
    certificates: bool,
    host: &Host,
) -> client::Config {
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
    if certificates {
        // The certificate forms of the same algorithms, asked for ahead of the plain keys.
        preferred.host_key_certificates = preferred.key.clone();
    }
    client::Config {
        preferred,
        nodelay: true,
        keepalive_interval: Some(keepalive(host).0),
        keepalive_max: keepalive(host).1,
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
    let mut deadline = tokio::time::Instant::now() + host.connect_timeout;
    let mut attempt = 1;
    // ssh's ConnectionAttempts: a TCP connection refused or unreachable is tried again, 1 s
    // apart, each attempt with its own ConnectTimeout.
    let mut tcp_attempt = 1;
    loop {
        match attempt_handshake(host, bastion.as_ref(), deadline).await {
            Ok(mut conn) => {
                conn.attempts = attempt;
                conn.jump = bastion.map(Box::new);
                return Ok(conn);
            }
            Err(Failure::Final(Error::Connect { .. }))
                if tcp_attempt < host.ssh.connection_attempts =>
            {
                tracing::info!(
                    "{}: cannot connect, trying again in 1s ({}/{})",
                    host.name,
                    tcp_attempt + 1,
                    host.ssh.connection_attempts
                );
                tcp_attempt += 1;
                tokio::time::sleep(Duration::from_secs(1)).await;
                deadline = tokio::time::Instant::now() + host.connect_timeout;
            }
            Err(Failure::Final(Error::Connect {
                host: name,
                addr,
                source,
                ..
            })) => {
                if let Some(b) = &bastion {
                    b.close().await;
                }
                return Err(Error::Connect {
                    host: name,
                    addr,
                    source,
                    attempts: tcp_attempt,
                });
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
        } else if let russh::Error::ChannelOpenFailure(
            russh::ChannelOpenFailure::AdministrativelyProhibited,
        ) = e
        {
            ssh_err(
                &host.name,
                format!(
                    "the jump host {} refuses to forward a connection to {addr} (AdministrativelyProhibited): its sshd has `AllowTcpForwarding no` (or `DisableForwarding yes`, or a `permitopen=`/`restrict` in authorized_keys); as root on {}: set `AllowTcpForwarding yes` (or `local`) in /etc/ssh/sshd_config for {}, then `systemctl reload ssh`",
                    bastion.host, bastion.host, bastion.user
                ),
            )
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

/// What the host key is checked against: the known_hosts files and RevokedHostKeys (read
/// now), the key algorithms known_hosts records for the host (asked for first), and whether a
/// `@cert-authority` line covers it (then host certificates are asked for first, as ssh does).
fn trust(host: &Host) -> Result<Trust> {
    let known = known_files(host)
        .into_iter()
        .map(|p| read_known_hosts(host, &p).map(|c| (p, c)))
        .collect::<Result<Vec<_>>>()?;
    let revoked = match &host.ssh.revoked_host_keys {
        Some(p) => Some((p.clone(), host_key::read_revoked(host, p)?)),
        None => None,
    };
    let (name, port) = key_name(host);
    let algorithms = known
        .iter()
        .flat_map(|(_, c)| known_hosts::known_algorithms(c, name, port))
        .fold(Vec::new(), |mut all, a| {
            if !all.contains(&a) {
                all.push(a);
            }
            all
        });
    let certificates = known
        .iter()
        .any(|(_, c)| !known_hosts::cert_authorities(c, name, port).is_empty());
    let outcome = Arc::new(Mutex::new(None));
    let handler = Handler {
        host: host.clone(),
        known,
        revoked,
        outcome: outcome.clone(),
    };
    Ok(Trust {
        handler,
        outcome,
        algorithms,
        certificates,
    })
}

struct Trust {
    handler: Handler,
    /// What the handler concluded of the server's key (read after the key exchange).
    outcome: Arc<Mutex<Option<KeyOutcome>>>,
    algorithms: Vec<russh::keys::Algorithm>,
    certificates: bool,
}

/// Connect (directly, or over a jump host's channel), verify the host key, authenticate.
async fn handshake(
    host: &Host,
    stream: Option<russh::ChannelStream<client::Msg>>,
    deadline: tokio::time::Instant,
) -> std::result::Result<Connection, Failure> {
    let Trust {
        handler,
        outcome,
        algorithms,
        certificates,
    } = trust(host).map_err(Failure::Final)?;
    let config = Arc::new(client_config(algorithms, certificates, host));
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
            None if host.ssh.proxy_command.is_some() => {
                let command = host.ssh.proxy_command.as_deref().unwrap_or_default();
                tracing::debug!("{}: ProxyCommand {command}", host.name);
                let proxy = proxy_command::spawn(command).map_err(|e| {
                    Failure::Final(ssh_err(
                        &host.name,
                        format!("cannot run ProxyCommand `{command}`: {e}"),
                    ))
                })?;
                client::connect_stream(config, proxy, handler)
                    .await
                    .map_err(|e| match failed(e) {
                        // The command's own message (on stderr) says why; a command that
                        // ended is not worth another try.
                        Failure::Final(Error::Ssh { host, message }) => {
                            Failure::Final(Error::Ssh {
                                host,
                                message: format!("{message} (through ProxyCommand `{command}`)"),
                            })
                        }
                        Failure::Retry(cause) => Failure::Final(ssh_err(
                            &host.name,
                            format!(
                                "handshake through ProxyCommand `{command}` failed: {cause} \
                                 (did the command end? its own message is above)"
                            ),
                        )),
                        other => other,
                    })
            }
            None => {
                let tcp = dial::tcp(host).await.map_err(Failure::Final)?;
                client::connect_stream(config, tcp, handler)
                    .await
                    .map_err(failed)
            }
        }
    };
    let started = tokio::time::Instant::now();
    let handle = tokio::time::timeout_at(deadline, connecting)
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
    let accepted = outcome.lock().unwrap().take();
    logged_in(host, handle, accepted, rtt, addr).await
}

/// After the key exchange (`rtt`: its estimate of the round trip): the host key's verdict,
/// then authentication.
async fn logged_in(
    host: &Host,
    mut handle: client::Handle<Handler>,
    accepted: Option<KeyOutcome>,
    rtt: Duration,
    addr: String,
) -> std::result::Result<Connection, Failure> {
    tracing::debug!(
        "{}: key exchange done; round trip estimated at {rtt:?}: {} SFTP writes in flight per file",
        host.name,
        writes_in_flight(rtt)
    );
    let (host_key, host_key_learned) = match accepted {
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
        auth::authenticate(&mut handle, host),
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
        pinging: Mutex::new(None),
        spare: Default::default(),
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
    ///
    /// The command line sent stays short whatever the command's length: a long command goes
    /// over the channel's stdin, ahead of the command's own input (see `wrap::bounded`).
    pub async fn spawn(&self, command: &str, stdin: Stdin<'_>) -> Result<RemoteProcess> {
        let nonce = wrap::nonce();
        let (line, script) = wrap::bounded(command, &nonce);
        match &script {
            None => tracing::debug!("{}: exec {command}", self.host),
            Some(s) => tracing::debug!(
                "{}: exec (a script of {} bytes, sent on stdin) {}",
                self.host,
                s.len(),
                command.chars().take(2000).collect::<String>()
            ),
        }
        Counters::count(&self.counters.commands);
        let running = || format!("starting `{}`", abbreviate(command));
        let channel = self.open_session(running).await?;
        channel.exec(true, line).await.map_err(|e| {
            self.failed(e, &format!("cannot run `{}`", abbreviate(command)), running)
        })?;
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
        if let Some(script) = &script {
            // The reader waits for it; the command's own input follows.
            process.started().await?;
            process.write(script).await?;
        }
        match stdin {
            Stdin::Open if script.is_none() => process.started().await?,
            Stdin::Open => {}
            Stdin::Closed => process.send_eof().await?,
            Stdin::Data(input) => {
                if script.is_none() {
                    process.started().await?;
                }
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
        let channel = self.open_session(starting).await?;
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
mod tests;
