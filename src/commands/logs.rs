//! `ferry logs`: read the journal of a service's units on its hosts and print it.
//!
//! One connection per host, one exec channel running `journalctl --user -o json` (commands from
//! `journal.rs`). Without --follow, one host's entries are printed as they arrive and several
//! hosts' entries are merged by time at the end. With --follow, each host prints whole lines as
//! they arrive; a dropped connection is re-established with backoff and journalctl resumes after
//! the last entry printed; SIGINT/SIGTERM stop every remote journalctl and end with exit 0.

use std::path::Path;
use std::time::Duration;

use tokio::sync::watch;

use crate::config::Host;
use crate::error::{Error, exit};

use crate::release::Action;
use crate::report::logs::LogEntry;
use crate::report::{Reporter, sanitize, sanitize_bytes};
use crate::systemd::journal::{self, Emptiness, Entry, Line, LineBuffer, Query, Resume};
use crate::systemd::versions;
use crate::transport::ssh::{self, Connection, Event, Exit, Signal, Stdin};

/// Delay before reconnection attempt `n` (0-based): 0.5 s doubling, at most 10 s.
pub fn backoff(attempt: u32) -> Duration {
    let ms = 500u64.saturating_mul(1u64 << attempt.min(10));
    Duration::from_millis(ms.min(10_000))
}

/// What `ferry logs` was asked for (built from the command line by `cli`).
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The service whose units' journal to show.
    /// None: the config's only service.
    pub service: Option<String>,
    /// Only these hosts (by name); empty: every host of the service.
    pub hosts: Vec<String>,
    /// Keep printing new entries as they arrive.
    pub follow: bool,
    /// Number of most recent entries per host.
    pub lines: Option<u64>,
    /// journalctl's --since / --until, passed through.
    pub since: Option<String>,
    pub until: Option<String>,
    /// These units instead of the service's units.
    pub units: Vec<String>,
    /// journalctl --grep.
    pub grep: Option<String>,
    /// Since the service's last deploy on each host (from its history.jsonl).
    pub since_deploy: bool,
}

/// How long journalctl gets to exit after SIGTERM before ferry kills it by pid.
const TERM_GRACE: Duration = Duration::from_millis(1500);

/// `ferry logs SERVICE ...`: resolve the service, hosts and units, then read or follow.
pub async fn command(
    config_path: &Path,
    args: Options,
    reporter: &Reporter,
) -> Result<exit::Exit, Error> {
    let config = crate::config::load_for_hosts(config_path)?;
    let name = crate::commands::targets::the_service(&config, args.service.as_deref())?;
    let (service, hosts) = crate::commands::targets::service_hosts(&config, &name, &args.hosts)?;
    let units = if args.units.is_empty() {
        service.units.iter().map(|u| u.name.clone()).collect()
    } else {
        args.units.clone()
    };
    if units.is_empty() {
        return Err(Error::Usage(format!(
            "service `{}` has no units; name one with --unit UNIT",
            service.name
        )));
    }
    let since_deploy = args.since_deploy.then(|| service.name.clone());
    let query = Query {
        units,
        lines: args.lines,
        since: args.since,
        until: args.until,
        grep: args.grep,
        follow: args.follow,
    };
    if query.follow {
        follow(hosts, query, since_deploy.as_deref(), reporter).await
    } else {
        read(hosts, query, since_deploy.as_deref(), reporter).await
    }
}

/// `--since` for `--since-deploy`: the start of the last `deploy` in a service's history
/// (the time in its release id, UTC), as journalctl's `@EPOCH`. None: no deploy recorded.
pub fn since_last_deploy(history: &str) -> Option<String> {
    let record = crate::release::parse_history(history)
        .into_iter()
        .rev()
        .find(|r| r.action == Action::Deploy)?;
    let id = &record.release;
    if !crate::release::is_release_id(id) {
        return None;
    }
    let stamp = format!(
        "{}-{}-{}T{}:{}:{}Z",
        &id[0..4],
        &id[4..6],
        &id[6..8],
        &id[9..11],
        &id[11..13],
        &id[13..15]
    );
    let t = humantime::parse_rfc3339(&stamp).ok()?;
    let secs = t.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
    Some(format!("@{secs}"))
}

/// The query for one host: with `--since-deploy`, its `--since` read from the host's history.
/// No deploy recorded: a warning, and the last 100 entries.
async fn host_query(
    conn: &Connection,
    host: &Host,
    query: &Query,
    since_deploy: Option<&str>,
    reporter: &Reporter,
) -> Result<Query, Error> {
    let Some(service) = since_deploy else {
        return Ok(query.clone());
    };
    let history = crate::release::Paths::new(service).history();
    let out = conn
        .exec(&format!(
            "cd \"$HOME\" && tail -n 1000 {} 2>/dev/null; true",
            crate::shell::quote(&history)
        ))
        .await?;
    let mut q = query.clone();
    match since_last_deploy(&out.stdout_str()) {
        Some(since) => q.since = Some(since),
        None => {
            reporter.warn(
                Some(&host.name),
                &format!(
                    "no deploy of {service} is recorded in ~/{history}; showing its last 100 entries"
                ),
            );
            q.lines = Some(q.lines.unwrap_or(100));
        }
    }
    Ok(q)
}

/// The host column's width when several hosts are shown.
fn host_column(hosts: &[Host]) -> Option<usize> {
    (hosts.len() > 1).then(|| {
        hosts
            .iter()
            .map(|h| h.name.chars().count())
            .max()
            .unwrap_or(0)
    })
}

/// Turn per-host failures into the command's result. With several hosts they are reported
/// here (`reporter`) or were already (None); one host's error is returned as it is.
fn finish(
    failures: Vec<Error>,
    reporter: Option<&Reporter>,
    hosts: usize,
) -> Result<exit::Exit, Error> {
    if failures.is_empty() {
        return Ok(exit::OK);
    }
    let code = if failures.iter().any(Error::is_connection) {
        exit::CONNECTION
    } else {
        exit::FAILED
    };
    if hosts == 1 {
        return Err(failures.into_iter().next().expect("one failure"));
    }
    if let Some(reporter) = reporter {
        for e in &failures {
            reporter.error(e);
        }
    }
    tracing::debug!("{} of {hosts} host(s) failed", failures.len());
    Err(Error::Reported { code })
}

/// What one host gave without --follow.
struct HostRead {
    /// Entries kept for merging (several hosts), or empty when printed as they came.
    entries: Vec<Entry>,
    count: usize,
}

/// Without --follow: one host streams straight to stdout; several are merged by time.
async fn read(
    hosts: Vec<Host>,
    query: Query,
    since_deploy: Option<&str>,
    reporter: &Reporter,
) -> Result<exit::Exit, Error> {
    let column = host_column(&hosts);
    let stream_directly = hosts.len() == 1;
    let results = futures::future::join_all(hosts.iter().map(|h| {
        read_host(
            h,
            &query,
            since_deploy,
            stream_directly.then_some(reporter),
            reporter,
        )
    }))
    .await;
    let mut failures = Vec::new();
    let mut per_host = Vec::new();
    for r in results {
        match r {
            Ok(read) => per_host.push(read.entries),
            Err(e) => {
                failures.push(e);
                per_host.push(Vec::new());
            }
        }
    }
    if !stream_directly {
        for (i, e) in journal::merge(per_host) {
            reporter.emit(&LogEntry::new(&hosts[i].name, &e, column));
        }
    }
    finish(failures, Some(reporter), hosts.len())
}

/// Run journalctl once on a host; print entries as they come when `print` is given.
async fn read_host(
    host: &Host,
    query: &Query,
    since_deploy: Option<&str>,
    print: Option<&Reporter>,
    reporter: &Reporter,
) -> Result<HostRead, Error> {
    let conn = ssh::connect(host).await?;
    let result = match host_query(&conn, host, query, since_deploy, reporter).await {
        Ok(query) => read_on(&conn, host, &query, print, reporter).await,
        Err(e) => Err(e),
    };
    conn.close().await;
    result
}

async fn read_on(
    conn: &Connection,
    host: &Host,
    query: &Query,
    print: Option<&Reporter>,
    reporter: &Reporter,
) -> Result<HostRead, Error> {
    let cmd = journal::command(query, &Resume::Start);
    tracing::debug!("{}: exec {cmd}", host.name);
    let mut process = conn.spawn(&cmd, Stdin::Closed).await?;
    let mut out = LineBuffer::default();
    let mut err = LineBuffer::default();
    let mut stderr_lines = Vec::new();
    let mut read = HostRead {
        entries: Vec::new(),
        count: 0,
    };
    let take = |line: Vec<u8>, read: &mut HostRead| match journal::parse_line(&line) {
        Line::Entry(e) => {
            read.count += 1;
            match print {
                Some(r) => r.emit(&LogEntry::new(&host.name, &e, None)),
                None => read.entries.push(*e),
            }
        }
        Line::Other(text) => reporter.warn(Some(&host.name), &text),
        Line::Anchor(_) | Line::Pid(_) | Line::Blank => {}
    };
    while let Some(event) = process.next().await {
        match event {
            Event::Stdout(data) => {
                for line in out.push(&data) {
                    take(line, &mut read);
                }
            }
            Event::Stderr(data) => stderr_lines.extend(err.push(&data)),
            Event::Exit(_) => {}
        }
    }
    if let Some(line) = out.finish() {
        take(line, &mut read);
    }
    stderr_lines.extend(err.finish());
    let stderr: Vec<String> = stderr_lines.iter().map(|l| sanitize_bytes(l)).collect();
    // "No journal files were found/opened": an empty journal on any systemd, not an error.
    let stderr = versions::journal_stderr_without_notices(&stderr);
    let status = match process.exit() {
        Some(Exit::Status(s)) => Some(*s),
        _ => None,
    };
    if process.connection_lost() {
        return Err(process.lost("reading the journal"));
    }
    if status != Some(0) {
        // journalctl --grep exits 1 when nothing matched: not an error.
        if status == Some(1) && stderr.is_empty() && read.count == 0 {
            report_empty(conn, host, query, reporter).await;
            return Ok(read);
        }
        return Err(Error::Command {
            host: host.name.clone(),
            command: "journalctl --user".into(),
            status: match process.exit() {
                Some(Exit::Status(s)) => format!("exit status {s}"),
                Some(Exit::Signal(sig)) => format!("killed by signal {sig}"),
                None => "no exit status".into(),
            },
            stderr: stderr.join("\n"),
        });
    }
    for line in &stderr {
        reporter.warn(Some(&host.name), &format!("journalctl: {line}"));
    }
    if read.count == 0 {
        report_empty(conn, host, query, reporter).await;
    }
    Ok(read)
}

/// A host's journal gave nothing: find out why and say so on stderr.
async fn report_empty(conn: &Connection, host: &Host, query: &Query, reporter: &Reporter) {
    let probe = match conn.exec(journal::EMPTY_PROBE).await {
        Ok(out) => out.stdout_str(),
        Err(e) => {
            tracing::debug!("{}: empty-journal probe failed: {e}", host.name);
            return;
        }
    };
    match journal::judge_empty(&probe) {
        Emptiness::NoMatch => {
            let filters = [
                query.since.as_ref().map(|s| format!("--since {s}")),
                query.until.as_ref().map(|s| format!("--until {s}")),
                query.grep.as_ref().map(|s| format!("--grep {s}")),
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>();
            let mut msg = format!(
                "no journal entries for {}",
                sanitize(&query.units.join(", "))
            );
            if !filters.is_empty() {
                msg.push_str(&format!(" matching {}", sanitize(&filters.join(" "))));
            }
            reporter.progress(Some(&host.name), &msg);
        }
        Emptiness::Unreadable { message, hint } => {
            reporter.warn(Some(&host.name), &format!("{message}\n  hint: {hint}"));
        }
    }
}

/// With --follow: every host in parallel until SIGINT/SIGTERM (exit 0), or until every host
/// has ended on its own or failed.
async fn follow(
    hosts: Vec<Host>,
    query: Query,
    since_deploy: Option<&str>,
    reporter: &Reporter,
) -> Result<exit::Exit, Error> {
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
                reporter.error(e);
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
    let failures: Vec<Error> = results.into_iter().filter_map(Result::err).collect();
    if stopped && failures.is_empty() {
        return Ok(exit::OK);
    }
    finish(failures, None, hosts.len())
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

/// Follow one host until stopped; reconnect when the connection drops.
async fn follow_host(
    host: &Host,
    query: &Query,
    since_deploy: Option<&str>,
    column: Option<usize>,
    reporter: &Reporter,
    mut stop: watch::Receiver<bool>,
) -> Result<(), Error> {
    let name = host.name.as_str();
    let mut query = query.clone();
    let mut since_deploy = since_deploy;
    let mut state = FollowState::default();
    let mut attempt: u32 = 0;
    loop {
        if *stop.borrow() {
            return Ok(());
        }
        let connected = tokio::select! {
            r = ssh::connect(host) => r,
            _ = stop.changed() => return Ok(()),
        };
        let conn = match connected {
            Ok(c) => c,
            Err(e) if state.started && transient(&e) => {
                let wait = backoff(attempt);
                reporter.warn(
                    Some(name),
                    &format!(
                        "cannot reconnect ({e}); trying again in {}",
                        humantime::format_duration(wait)
                    ),
                );
                attempt += 1;
                tokio::select! {
                    _ = tokio::time::sleep(wait) => continue,
                    _ = stop.changed() => return Ok(()),
                }
            }
            Err(e) => return Err(e),
        };
        attempt = 0;
        if let Some(service) = since_deploy.take() {
            match host_query(&conn, host, &query, Some(service), reporter).await {
                Ok(q) => query = q,
                Err(e) => {
                    conn.close().await;
                    return Err(e);
                }
            }
        }
        if !state.started {
            // Say at once when nothing will ever show (system user, volatile journal).
            if let Ok(out) = conn.exec(journal::EMPTY_PROBE).await
                && let Some((message, hint)) = journal::follow_warning(&out.stdout_str())
            {
                reporter.warn(Some(name), &format!("{message}\n  hint: {hint}"));
            }
        } else {
            reporter.warn(
                Some(name),
                &match &state.last_printed {
                    Some(_) => "reconnected; resuming after the last entry shown".to_string(),
                    None => "reconnected".to_string(),
                },
            );
        }
        let end = stream_once(&conn, host, &query, column, reporter, &mut state, &mut stop).await;
        match end {
            Ok(StreamEnd::Stopped) => {
                conn.close().await;
                return Ok(());
            }
            Ok(StreamEnd::Exited { status, stderr }) => {
                conn.close().await;
                if status == Some(0) || *stop.borrow() {
                    return Ok(());
                }
                if versions::follow_ended_without_journal(status, &stderr) {
                    return Err(Error::Command {
                        host: host.name.clone(),
                        command: "journalctl --user --follow".into(),
                        status: "exit status 1".into(),
                        stderr: versions::NO_JOURNAL_TO_FOLLOW.into(),
                    });
                }
                return Err(Error::Command {
                    host: host.name.clone(),
                    command: "journalctl --user --follow".into(),
                    status: status
                        .map(|s| format!("exit status {s}"))
                        .unwrap_or_else(|| "ended without exit status".into()),
                    stderr,
                });
            }
            Ok(StreamEnd::Lost) | Err(_) => {
                if let Err(e) = &end {
                    tracing::debug!("{name}: stream failed: {e}");
                    if !state.started {
                        conn.close().await;
                        return Err(end.err().expect("error"));
                    }
                }
                conn.close().await;
                if *stop.borrow() {
                    return Ok(());
                }
                let wait = backoff(attempt);
                attempt += 1;
                reporter.warn(
                    Some(name),
                    &format!(
                        "connection lost; reconnecting in {}",
                        humantime::format_duration(wait)
                    ),
                );
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = stop.changed() => return Ok(()),
                }
            }
        }
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
    let name = host.name.as_str();
    let resume = state.resume();
    let cmd = journal::command(query, &resume);
    tracing::debug!("{name}: exec {cmd}");
    let mut process = conn.spawn(&cmd, Stdin::Closed).await?;
    state.started = true;
    let mut out = LineBuffer::default();
    let mut err = LineBuffer::default();
    let mut stderr = Vec::new();
    let mut pid: Option<u32> = None;
    let mut stopping: Option<tokio::time::Instant> = None;
    let mut killed_by_pid = false;
    let handle_line =
        |line: Vec<u8>, state: &mut FollowState, pid: &mut Option<u32>| match journal::parse_line(
            &line,
        ) {
            Line::Entry(e) => {
                reporter.emit(&LogEntry::new(name, &e, column));
                state.last_printed = Some(e.cursor);
            }
            Line::Anchor(a) => {
                if state.anchor.is_none() {
                    state.anchor = Some(a);
                }
            }
            Line::Pid(p) => *pid = Some(p),
            Line::Other(text) => reporter.warn(Some(name), &text),
            Line::Blank => {}
        };
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
                        handle_line(line, state, &mut pid);
                    }
                }
                Some(Event::Stderr(data)) => {
                    for line in err.push(&data) {
                        let text = sanitize_bytes(&line);
                        if stopping.is_none()
                            && !text.trim().is_empty()
                            && !versions::is_no_journal_notice(&text)
                        {
                            reporter.warn(Some(name), &format!("journalctl: {text}"));
                        }
                        stderr.push(text);
                    }
                }
                Some(Event::Exit(_)) => {}
                None => break,
            },
            _ = stop.changed(), if stopping.is_none() => {
                // SIGTERM to journalctl over the channel (honoured for non-root logins).
                tracing::debug!("{name}: stopping journalctl (pid {pid:?})");
                if let Err(e) = process.signal(Signal::Term).await {
                    tracing::debug!("{name}: cannot send SIGTERM: {e}");
                }
                stopping = Some(tokio::time::Instant::now() + TERM_GRACE);
            }
            _ = deadline => {
                if !killed_by_pid && let Some(p) = pid {
                    // The signal did not reach it (root login?): by pid, if it is still ours.
                    tracing::debug!("{name}: journalctl {p} ignored SIGTERM; killing it by pid");
                    let _ = tokio::time::timeout(
                        Duration::from_secs(3),
                        conn.exec(&format!(
                            "[ \"$(cat /proc/{p}/comm 2>/dev/null)\" = journalctl ] && kill -TERM {p}"
                        )),
                    )
                    .await;
                    killed_by_pid = true;
                    stopping = Some(tokio::time::Instant::now() + TERM_GRACE);
                } else {
                    process.close().await;
                    break;
                }
            }
        }
    }
    if let Some(line) = out.finish() {
        handle_line(line, state, &mut pid);
    }
    if stopping.is_some() {
        return Ok(StreamEnd::Stopped);
    }
    if let Some(exit) = process.exit()
        && !conn.is_closed()
    {
        stderr.extend(err.finish().map(|l| sanitize_bytes(&l)));
        return Ok(StreamEnd::Exited {
            status: match exit {
                Exit::Status(s) => Some(*s),
                Exit::Signal(_) => None,
            },
            stderr: stderr.join("\n"),
        });
    }
    Ok(StreamEnd::Lost)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_ten_seconds() {
        let d: Vec<u64> = (0..8).map(|a| backoff(a).as_millis() as u64).collect();
        assert_eq!(d, vec![500, 1000, 2000, 4000, 8000, 10000, 10000, 10000]);
        assert_eq!(backoff(u32::MAX), Duration::from_secs(10));
    }

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
    fn since_deploy_is_the_start_of_the_last_deploy() {
        let line = |action: &str, release: &str| {
            format!(
                r#"{{"time":"2026-11-24T12:00:09Z","action":"{action}","release":"{release}","outcome":"ok","by":"me"}}"#
            )
        };
        let history = [
            line("deploy", "20261124T110000Z-aaaaaaaa"),
            line("deploy", "20261124T120000Z-bbbbbbbb"),
            line("rollback", "20261124T110000Z-aaaaaaaa"),
            "{torn".into(),
        ]
        .join("\n");
        // 2026-11-24T12:00:00Z
        assert_eq!(since_last_deploy(&history).as_deref(), Some("@1795521600"));
        assert_eq!(since_last_deploy(""), None);
        assert_eq!(
            since_last_deploy(&line("rollback", "20261124T110000Z-a")),
            None
        );
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
