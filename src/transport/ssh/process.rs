//! A command running on the host over a channel: its output, its exit, the marker filter
//! (see `wrap`), and the signals ferry sends it.

use super::*;

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
    pub(super) channel: russh::Channel<client::Msg>,
    pub(super) handle: Arc<Handle<Handler>>,
    pub(super) host: String,
    pub(super) user: String,
    pub(super) command: String,
    pub(super) exit: Option<Exit>,
    /// The server closed the channel (as opposed to the session dropping it).
    pub(super) closed: bool,
    /// The startup files' output before ferry's marker, and events read while waiting for it.
    pub(super) preamble: wrap::Preamble,
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

    pub(super) fn noise_text(&self) -> Vec<u8> {
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
    pub(super) async fn started(&mut self) -> Result<()> {
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
        self.read_all(&mut out, &mut on_output).await;
        self.ended(out)
    }

    /// [`RemoteProcess::output`], giving up after `limit`: then the command's stdin is closed
    /// and the channel too (a command started by `crate::shell::bounded` ends with it), and
    /// the answer is Ok(None).
    pub async fn output_within(
        mut self,
        limit: Duration,
        mut on_output: impl FnMut(Stream, &[u8]),
    ) -> Result<Option<Output>> {
        let mut out = Output::default();
        let read = self.read_all(&mut out, &mut on_output);
        if tokio::time::timeout(limit, read).await.is_err() {
            let _ = self.send_eof().await;
            self.close().await;
            return Ok(None);
        }
        self.ended(out).map(Some)
    }

    async fn read_all(&mut self, out: &mut Output, on_output: &mut impl FnMut(Stream, &[u8])) {
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
    }

    /// The output of a command read to its end, or why it has none.
    fn ended(&self, out: Output) -> Result<Output> {
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
pub(super) fn sig_name(sig: &russh::Sig) -> String {
    match sig {
        russh::Sig::Custom(name) => name.clone(),
        other => format!("{other:?}"),
    }
}

/// A command shortened for messages: its first line, at most 80 characters.
pub(super) fn abbreviate(command: &str) -> String {
    let first = command.lines().next().unwrap_or_default();
    let mut short: String = first.chars().take(80).collect();
    if short.len() < command.len() {
        short.push_str("...");
    }
    short
}

/// Does this russh error mean the connection itself is gone (not just one request refused)?
pub(super) fn transport_gone(e: &russh::Error) -> bool {
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
