//! `ferry logs`: read the journal of a service's units on its hosts and print it.
//!
//! One connection per host, one exec channel running `journalctl --user -o json` (commands from
//! `journal.rs`). Without --follow, one host's entries are printed as they arrive and several
//! hosts' entries are merged by time at the end. With --follow (follow.rs), each host prints
//! whole lines as they arrive; a dropped connection is re-established with backoff and
//! journalctl resumes after the last entry printed; SIGINT/SIGTERM stop every remote journalctl
//! and end with exit 0.

use std::time::Duration;

use crate::cli::LogsArgs;
use crate::commands::Context;
use crate::config::Host;
use crate::error::{Error, exit};

use crate::release::Action;
use crate::report::logs::LogEntry;
use crate::report::{Reporter, sanitize, sanitize_bytes};
use crate::systemd::journal::{self, Emptiness, Entry, Line, LineBuffer, Query, Resume};
use crate::systemd::versions;
use crate::transport::ssh::{self, Connection, Event, Exit, Stdin};

mod follow;

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

impl From<LogsArgs> for Options {
    fn from(a: LogsArgs) -> Self {
        Options {
            service: a.service,
            hosts: a.filter.hosts,
            follow: a.follow,
            lines: a.lines,
            since: a.since,
            until: a.until,
            units: a.unit,
            grep: a.grep,
            since_deploy: a.since_deploy,
        }
    }
}

/// `ferry logs SERVICE ...`: resolve the service, hosts and units, then read or follow.
pub async fn run(args: LogsArgs, ctx: &Context) -> Result<exit::Exit, Error> {
    let args = Options {
        hosts: ctx.hosts.clone(),
        ..args.into()
    };
    let reporter = &ctx.reporter;
    let config = ctx.config_for_hosts()?;
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
        follow::follow(hosts, query, since_deploy.as_deref(), reporter).await
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

/// Turn per-host failures (host name, error) into the command's result. They are reported
/// here, unless `reported` (already, as they happened); one host's error other than a failure
/// to connect is returned as it is.
fn finish(
    failures: Vec<(String, Error)>,
    reporter: &Reporter,
    reported: bool,
    hosts: usize,
) -> Result<exit::Exit, Error> {
    if failures.is_empty() {
        return Ok(exit::Exit::Ok);
    }
    let code = if failures.iter().any(|(_, e)| e.is_connection()) {
        exit::Exit::Connection
    } else {
        exit::Exit::Failed
    };
    if hosts == 1 && failures[0].1.connect_failure().is_none() {
        return Err(failures.into_iter().next().expect("one failure").1);
    }
    if !reported {
        for (host, e) in &failures {
            reporter.host_error(host, e);
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
    for (r, host) in results.into_iter().zip(&hosts) {
        match r {
            Ok(read) => per_host.push(read.entries),
            Err(e) => {
                failures.push((host.name.clone(), e));
                per_host.push(Vec::new());
            }
        }
    }
    if !stream_directly {
        for (i, e) in journal::merge(per_host) {
            reporter.emit(&LogEntry::new(&hosts[i].name, &e, column));
        }
    }
    finish(failures, reporter, false, hosts.len())
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
}
