//! `ferry logs --follow`: every host's journal followed in parallel until SIGINT/SIGTERM. Each
//! host prints whole lines as they arrive; a dropped connection is re-established with backoff
//! and journalctl resumes after the last entry printed; a stop sends SIGTERM to every remote
//! journalctl (by pid when the channel's signal does not reach it) and ends with exit 0.

use std::time::Duration;

use tokio::sync::watch;

use super::{backoff, finish, host_column, host_query};
use crate::config::Host;
use crate::error::{Error, Exit};
use crate::report::logs::LogEntry;
use crate::report::{Reporter, sanitize_bytes};
use crate::systemd::journal::{self, Line, LineBuffer, Query, Resume};
use crate::systemd::versions;
use crate::transport::ssh::{self, Connection, Event, RemoteProcess, Signal, Stdin};

/// How long journalctl gets to exit after SIGTERM before ferry kills it by pid.
const TERM_GRACE: Duration = Duration::from_millis(1500);

/// With --follow: every host in parallel until SIGINT/SIGTERM (exit 0), or until every host
/// has ended on its own or failed.
pub(super) async fn follow(
    hosts: Vec<Host>,
    query: Query,
    since_deploy: Option<&str>,
    reporter: &Reporter,
) -> Result<Exit, Error> {
    use tokio::signal::unix::{SignalKind, signal};
    let column = host_column(&hosts);
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut sigint = signal(SignalKind::interrupt())
        .map_err(|e| Error::Local(format!("cannot handle SIGINT: {e}")))?;
    let mut sigterm = signal(SignalKind::terminate())
        .map_err(|e| Error::Local(format!("cannot handle SIGTERM: {e}")))?;
    let several = hosts.len() > 1;
    let all = futures::future::join_all(hosts.iter().map(|h| {
        let stop = stop_rx.clone();
        let query = &query;
        async move {
            let r = follow_host(h, query, since_deploy, column, reporter, stop).await;
            // With several hosts the others go on: say at once why this one stopped.
            if several && let Err(e) = &r {
                reporter.host_error(&h.name, e);
            }
            r
        }
    }));
    tokio::pin!(all);
    let results = tokio::select! {
        r = &mut all => r,
        _ = sigint.recv() => stop_all(&stop_tx, &mut all, &mut sigint, &mut sigterm).await,
        _ = sigterm.recv() => stop_all(&stop_tx, &mut all, &mut sigint, &mut sigterm).await,
    };
    let stopped = *stop_tx.borrow();
    let failures: Vec<(String, Error)> = results
        .into_iter()
        .zip(&hosts)
        .filter_map(|(r, h)| r.err().map(|e| (h.name.clone(), e)))
        .collect();
    if stopped && failures.is_empty() {
        return Ok(Exit::Ok);
    }
    finish(failures, reporter, several, hosts.len())
}

/// Ask every host to stop and wait for them; a second signal gives up waiting.
async fn stop_all<F: std::future::Future<Output = Vec<Result<(), Error>>> + Unpin>(
    stop: &watch::Sender<bool>,
    all: &mut F,
    sigint: &mut tokio::signal::unix::Signal,
    sigterm: &mut tokio::signal::unix::Signal,
) -> Vec<Result<(), Error>> {
    let _ = stop.send(true);
    tokio::select! {
        r = all => r,
        _ = sigint.recv() => Vec::new(),
        _ = sigterm.recv() => Vec::new(),
    }
}

/// Is this error worth another connection attempt (the network, the server going away), or
/// final (host key, authentication, key)?
fn transient(e: &Error) -> bool {
    matches!(
        e,
        Error::Connect { .. }
            | Error::ConnectTimeout { .. }
            | Error::Ssh { .. }
            | Error::ConnectionLost { .. }
    )
}

/// Where one host's stream stands across reconnections.
#[derive(Debug, Default)]
struct FollowState {
    /// The cursor of the last entry printed.
    last_printed: Option<String>,
    /// The anchor line of the first start: None until seen; Some(None) if the journal was empty.
    anchor: Option<Option<String>>,
    started: bool,
}

impl FollowState {
    fn resume(&self) -> Resume {
        match (&self.last_printed, &self.anchor) {
            (Some(c), _) => Resume::AfterCursor(c.clone()),
            (None, Some(Some(a))) if self.started => Resume::AfterCursor(a.clone()),
            (None, Some(None)) if self.started => Resume::Everything,
            // Nothing printed and no anchor seen: as if for the first time.
            _ => Resume::Start,
        }
    }
}

/// How one channel's stream ended.
enum StreamEnd {
    /// We were asked to stop and did.
    Stopped,
    /// journalctl ended by itself.
    Exited { status: Option<u32>, stderr: String },
    /// The connection (or channel) went away.
    Lost,
}

/// What a step of one host's follow loop leads to.
enum Flow<T> {
    /// Go on with this.
    Go(T),
    /// Start over from the top of the loop (a backoff has been waited).
    Again,
    /// Asked to stop, or journalctl ended well: this host is done.
    Done,
}

/// One host's follow loop: what it was asked for and where its stream stands.
struct Follower<'a> {
    host: &'a Host,
    query: Query,
    /// The service whose last deploy gives `--since`, until it has been read from the host.
    since_deploy: Option<&'a str>,
    column: Option<usize>,
    reporter: &'a Reporter,
    stop: watch::Receiver<bool>,
    state: FollowState,
    /// Reconnection attempts since the last connection that worked.
    attempt: u32,
}

/// Follow one host until stopped; reconnect when the connection drops.
async fn follow_host(
    host: &Host,
    query: &Query,
    since_deploy: Option<&str>,
    column: Option<usize>,
    reporter: &Reporter,
    stop: watch::Receiver<bool>,
) -> Result<(), Error> {
    let mut f = Follower {
        host,
        query: query.clone(),
        since_deploy,
        column,
        reporter,
        stop,
        state: FollowState::default(),
        attempt: 0,
    };
    loop {
        if *f.stop.borrow() {
            return Ok(());
        }
        let conn = match f.connect().await? {
            Flow::Go(conn) => conn,
            Flow::Again => continue,
            Flow::Done => return Ok(()),
        };
        if let Err(e) = f.start(&conn).await {
            conn.close().await;
            return Err(e);
        }
        let end = stream_once(
            &conn,
            f.host,
            &f.query,
            f.column,
            f.reporter,
            &mut f.state,
            &mut f.stop,
        )
        .await;
        conn.close().await;
        if let Flow::Done = f.ended(end).await? {
            return Ok(());
        }
    }
}

impl Follower<'_> {
    /// Connect; once streaming has started, a network failure is retried after a backoff.
    async fn connect(&mut self) -> Result<Flow<Connection>, Error> {
        let connected = tokio::select! {
            r = ssh::connect(self.host) => r,
            _ = self.stop.changed() => return Ok(Flow::Done),
        };
        match connected {
            Ok(conn) => {
                self.attempt = 0;
                Ok(Flow::Go(conn))
            }
            Err(e) if self.state.started && transient(&e) => {
                let wait = backoff(self.attempt);
                self.reporter.warn(
                    Some(&self.host.name),
                    &format!(
                        "cannot reconnect ({e}); trying again in {}",
                        humantime::format_duration(wait)
                    ),
                );
                self.attempt += 1;
                Ok(self.pause(wait).await)
            }
            Err(e) => Err(e),
        }
    }

    /// Before the stream on a new connection: the `--since-deploy` query the first time, and
    /// what the user should know (nothing will ever show; reconnected).
    async fn start(&mut self, conn: &Connection) -> Result<(), Error> {
        let host = self.host;
        if let Some(service) = self.since_deploy.take() {
            self.query = host_query(conn, host, &self.query, Some(service), self.reporter).await?;
        }
        if !self.state.started {
            // Say at once when nothing will ever show (system user, volatile journal).
            if let Ok(out) = conn.exec(journal::EMPTY_PROBE).await
                && let Some((message, hint)) = journal::follow_warning(&out.stdout_str())
            {
                self.reporter
                    .warn(Some(&host.name), &format!("{message}\n  hint: {hint}"));
            }
        } else {
            self.reporter.warn(
                Some(&host.name),
                match &self.state.last_printed {
                    Some(_) => "reconnected; resuming after the last entry shown",
                    None => "reconnected",
                },
            );
        }
        Ok(())
    }

    /// After a stream (its connection closed): done, failed, or reconnect after a backoff.
    async fn ended(&mut self, end: Result<StreamEnd, Error>) -> Result<Flow<()>, Error> {
        match end {
            Ok(StreamEnd::Stopped) => Ok(Flow::Done),
            Ok(StreamEnd::Exited { status, stderr }) => {
                if status == Some(0) || *self.stop.borrow() {
                    return Ok(Flow::Done);
                }
                Err(exited(self.host, status, stderr))
            }
            Err(e) => {
                tracing::debug!("{}: stream failed: {e}", self.host.name);
                if !self.state.started {
                    return Err(e);
                }
                Ok(self.lost().await)
            }
            Ok(StreamEnd::Lost) => Ok(self.lost().await),
        }
    }

    /// The connection went away while streaming: wait, then reconnect (unless stopped).
    async fn lost<T>(&mut self) -> Flow<T> {
        if *self.stop.borrow() {
            return Flow::Done;
        }
        let wait = backoff(self.attempt);
        self.attempt += 1;
        self.reporter.warn(
            Some(&self.host.name),
            &format!(
                "connection lost; reconnecting in {}",
                humantime::format_duration(wait)
            ),
        );
        self.pause(wait).await
    }

    /// Wait `wait`, or less when asked to stop.
    async fn pause<T>(&mut self, wait: Duration) -> Flow<T> {
        tokio::select! {
            _ = tokio::time::sleep(wait) => Flow::Again,
            _ = self.stop.changed() => Flow::Done,
        }
    }
}

/// The error of a followed journalctl that exited by itself and not with 0.
fn exited(host: &Host, status: Option<u32>, stderr: String) -> Error {
    if versions::follow_ended_without_journal(status, &stderr) {
        return Error::Command {
            host: host.name.clone(),
            command: "journalctl --user --follow".into(),
            status: "exit status 1".into(),
            stderr: versions::NO_JOURNAL_TO_FOLLOW.into(),
        };
    }
    Error::Command {
        host: host.name.clone(),
        command: "journalctl --user --follow".into(),
        status: status
            .map(|s| format!("exit status {s}"))
            .unwrap_or_else(|| "ended without exit status".into()),
        stderr,
    }
}

/// How one host's followed lines are shown.
struct Shown<'a> {
    name: &'a str,
    column: Option<usize>,
    reporter: &'a Reporter,
}

impl Shown<'_> {
    /// A line of journalctl's stdout: an entry is printed, the anchor and pid are kept.
    fn line(&self, line: &[u8], state: &mut FollowState, pid: &mut Option<u32>) {
        match journal::parse_line(line) {
            Line::Entry(e) => {
                self.reporter
                    .emit(&LogEntry::new(self.name, &e, self.column));
                state.last_printed = Some(e.cursor);
            }
            Line::Anchor(a) => {
                if state.anchor.is_none() {
                    state.anchor = Some(a);
                }
            }
            Line::Pid(p) => *pid = Some(p),
            Line::Other(text) => self.reporter.warn(Some(self.name), &text),
            Line::Blank => {}
        }
    }

    /// A line of its stderr, kept for the error; shown at once unless stopping, blank or the
    /// notice of an empty journal.
    fn stderr(&self, line: &[u8], stopping: bool) -> String {
        let text = sanitize_bytes(line);
        if !stopping && !text.trim().is_empty() && !versions::is_no_journal_notice(&text) {
            self.reporter
                .warn(Some(self.name), &format!("journalctl: {text}"));
        }
        text
    }
}

/// Run one follow channel on a connection until it ends or we are asked to stop.
async fn stream_once(
    conn: &Connection,
    host: &Host,
    query: &Query,
    column: Option<usize>,
    reporter: &Reporter,
    state: &mut FollowState,
    stop: &mut watch::Receiver<bool>,
) -> Result<StreamEnd, Error> {
    let shown = Shown {
        name: host.name.as_str(),
        column,
        reporter,
    };
    let cmd = journal::command(query, &state.resume());
    tracing::debug!("{}: exec {cmd}", shown.name);
    let mut process = conn.spawn(&cmd, Stdin::Closed).await?;
    state.started = true;
    let (mut out, mut err) = (LineBuffer::default(), LineBuffer::default());
    let mut stderr = Vec::new();
    let mut pid: Option<u32> = None;
    let mut stopping: Option<tokio::time::Instant> = None;
    let mut killed_by_pid = false;
    loop {
        let deadline = async {
            match stopping {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            event = process.next() => match event {
                Some(Event::Stdout(data)) => {
                    for line in out.push(&data) {
                        shown.line(&line, state, &mut pid);
                    }
                }
                Some(Event::Stderr(data)) => {
                    for line in err.push(&data) {
                        stderr.push(shown.stderr(&line, stopping.is_some()));
                    }
                }
                Some(Event::Exit(_)) => {}
                None => break,
            },
            _ = stop.changed(), if stopping.is_none() => {
                // SIGTERM to journalctl over the channel (honoured for non-root logins).
                tracing::debug!("{}: stopping journalctl (pid {pid:?})", shown.name);
                if let Err(e) = process.signal(Signal::Term).await {
                    tracing::debug!("{}: cannot send SIGTERM: {e}", shown.name);
                }
                stopping = Some(tokio::time::Instant::now() + TERM_GRACE);
            }
            _ = deadline => match pid {
                Some(p) if !killed_by_pid => {
                    kill_by_pid(conn, shown.name, p).await;
                    killed_by_pid = true;
                    stopping = Some(tokio::time::Instant::now() + TERM_GRACE);
                }
                _ => {
                    process.close().await;
                    break;
                }
            },
        }
    }
    if let Some(line) = out.finish() {
        shown.line(&line, state, &mut pid);
    }
    if stopping.is_some() {
        return Ok(StreamEnd::Stopped);
    }
    Ok(stream_end(&process, conn, stderr, &mut err))
}

/// The SIGTERM did not reach journalctl (a root login?): kill it by pid, if it is still ours.
async fn kill_by_pid(conn: &Connection, name: &str, pid: u32) {
    tracing::debug!("{name}: journalctl {pid} ignored SIGTERM; killing it by pid");
    let _ = tokio::time::timeout(
        Duration::from_secs(3),
        conn.exec(&format!(
            "[ \"$(cat /proc/{pid}/comm 2>/dev/null)\" = journalctl ] && kill -TERM {pid}"
        )),
    )
    .await;
}

/// How a channel that ended by itself ended: journalctl exited, or the connection went.
fn stream_end(
    process: &RemoteProcess,
    conn: &Connection,
    mut stderr: Vec<String>,
    err: &mut LineBuffer,
) -> StreamEnd {
    match process.exit() {
        Some(exit) if !conn.is_closed() => {
            stderr.extend(err.finish().map(|l| sanitize_bytes(&l)));
            StreamEnd::Exited {
                status: match exit {
                    ssh::Exit::Status(s) => Some(*s),
                    ssh::Exit::Signal(_) => None,
                },
                stderr: stderr.join("\n"),
            }
        }
        _ => StreamEnd::Lost,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resumes_after_the_last_printed_entry_or_the_anchor() {
        let mut s = FollowState::default();
        assert_eq!(s.resume(), Resume::Start);
        s.started = true;
        // Lost before the anchor line arrived: nothing shown, start over.
        assert_eq!(s.resume(), Resume::Start);
        s.anchor = Some(None);
        assert_eq!(s.resume(), Resume::Everything);
        s.anchor = Some(Some("a".into()));
        assert_eq!(s.resume(), Resume::AfterCursor("a".into()));
        s.last_printed = Some("c".into());
        assert_eq!(s.resume(), Resume::AfterCursor("c".into()));
    }

    #[test]
    fn only_network_errors_are_retried() {
        assert!(transient(&Error::Ssh {
            host: "h".into(),
            message: "x".into()
        }));
        assert!(!transient(&Error::Auth {
            host: "h".into(),
            user: "u".into(),
            tried: vec![]
        }));
    }
}
