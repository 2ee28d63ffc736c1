//! `ferry status` events: the table of units for people (or one `unit` object per unit with
//! `--output json`), the hosts that could not be queried, and the closing summary.

use serde::Serialize;

use crate::error::Error;
use crate::report::{Format, Human, Reporter, Style, sanitize};

/// Print the outcome of `ferry status`, hosts in the order given: the table (JSON: one `unit`
/// object per row), then each host that could not be queried, then the summary, returned.
pub fn emit(
    reporter: &Reporter,
    hosts: usize,
    rows: &[UnitStatus],
    errors: &[HostError],
) -> Summary {
    match reporter.format {
        Format::Json => rows.iter().for_each(|r| reporter.emit(r)),
        Format::Human => reporter.emit(&Table {
            rows: rows.to_vec(),
        }),
    }
    for e in errors {
        reporter.emit(e);
    }
    let summary = Summary::new(hosts, rows, errors);
    reporter.emit(&summary);
    summary
}

/// `1.5M`, `320K`, `2.1G`.
pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "K", "M", "G", "T"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1024.0 && i < UNITS.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{b}B")
    } else if v < 10.0 {
        format!("{v:.1}{}", UNITS[i])
    } else {
        format!("{v:.0}{}", UNITS[i])
    }
}

/// `45s`, `12m 3s`, `3h 2m`, `5d 4h`: the two largest units.
pub fn human_age(secs: u64) -> String {
    let parts = [
        (secs / 86400, "d"),
        (secs % 86400 / 3600, "h"),
        (secs % 3600 / 60, "m"),
        (secs % 60, "s"),
    ];
    let first = parts.iter().position(|(n, _)| *n > 0).unwrap_or(3);
    parts[first..]
        .iter()
        .take(2)
        .filter(|(n, _)| *n > 0 || first == 3)
        .map(|(n, u)| format!("{n}{u}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A host that could not be asked (unreachable), or whose user manager did not answer.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct HostError {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub host: String,
    /// false: connection or authentication failed; true: connected, but the query failed.
    pub reachable: bool,
    /// Not reachable: which way the connection failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection: Option<crate::error::ConnectFailure>,
    pub error: String,
    pub hint: Option<String>,
}

/// One unit on one host: a table row, or one JSON object.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct UnitStatus {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub host: String,
    pub service: String,
    pub unit: String,
    pub load_state: String,
    pub active_state: String,
    pub sub_state: String,
    pub result: String,
    /// When the unit entered its state (RFC 3339, UTC).
    pub since: Option<String>,
    /// Seconds in that state, by the host's clock.
    pub since_seconds: Option<u64>,
    pub main_pid: Option<u32>,
    pub memory_bytes: Option<u64>,
    pub restarts: u64,
    /// UnitFileState: enabled, disabled, static, ...
    pub enabled: String,
    /// The release id `current` points to; null when there is none.
    pub release: Option<String>,
    /// Blue/green: the colour the front sends connections to (`blue`, `green`); absent for
    /// other services.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub live: Option<String>,
    /// Sockets only: listening or not.
    pub listening: Option<bool>,
    pub listen: Vec<String>,
    pub triggered_by: Vec<String>,
    /// Up, or started on demand by a listening socket / active timer.
    pub ok: bool,
    /// Why it is not ok, or how it is started.
    pub note: Option<String>,
    /// False when the host's login user has no linger: the unit lives only while that user
    /// has a session (left out when it lingers or the host did not say).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub linger: Option<bool>,
}

impl HostError {
    pub fn new(host: &str, e: &Error) -> HostError {
        HostError {
            kind: "host",
            host: host.to_string(),
            reachable: !e.is_connection(),
            connection: e.connect_failure(),
            hint: e.hint(),
            error: e.to_string(),
        }
    }
}

impl Human for HostError {
    fn human(&self, s: &Style) -> Option<String> {
        let mut line = format!(
            "{} {} {}",
            s.bold(&self.host),
            s.red(match self.connection {
                Some(c) => c.label(),
                None if self.reachable => "ERROR",
                None => "NOT CONNECTED",
            }),
            sanitize(
                self.error
                    .strip_prefix(self.host.as_str())
                    .and_then(|e| e.strip_prefix(": "))
                    .unwrap_or(&self.error)
            )
        );
        if let Some(h) = &self.hint {
            // A hint may span lines (the known_hosts line to add): keep them, indented.
            let hint = crate::report::sanitize_lines(h).replace('\n', "\n        ");
            line.push_str(&format!("\n  hint: {hint}"));
        }
        Some(line)
    }
}

/// The whole table (human output).
#[derive(Debug, Serialize)]
pub struct Table {
    pub rows: Vec<UnitStatus>,
}

impl Human for Table {
    fn human(&self, s: &Style) -> Option<String> {
        if self.rows.is_empty() {
            return None;
        }
        Some(render_table(&self.rows, s))
    }
}

/// Render rows as aligned columns, fitted to the terminal (see [`super::table`]).
pub fn render_table(rows: &[UnitStatus], s: &Style) -> String {
    render_table_in(rows, s, super::table::width())
}

/// Render rows as aligned columns within `width` (None: every column); the service column only
/// when there are several services.
pub fn render_table_in(rows: &[UnitStatus], s: &Style, width: Option<usize>) -> String {
    let several_services = rows.windows(2).any(|w| w[0].service != w[1].service);
    let mut header = vec!["HOST"];
    if several_services {
        header.push("SERVICE");
    }
    header.extend([
        "UNIT", "STATE", "SINCE", "PID", "MEMORY", "RESTARTS", "ENABLED", "RELEASE", "NOTE",
    ]);
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| row_cells(r, several_services))
        .collect();
    // Too wide for the terminal: leave out PID, MEMORY, ENABLED, RESTARTS, SINCE, in that order.
    let off = usize::from(several_services);
    let mut all = vec![header.iter().map(|h| h.to_string()).collect::<Vec<_>>()];
    all.extend(cells);
    let drop_order = [4 + off, 5 + off, 7 + off, 6 + off, 3 + off];
    let keep = super::table::keep(&super::table::widths(&all), &drop_order, width);
    let mut all = super::table::project(all, &keep);
    let mut cells = all.split_off(1);
    let header: Vec<String> = all.remove(0);
    let ncol = header.len();
    // The last column (the note) is shortened to what is left of the line.
    if let Some(width) = width {
        let before: usize = super::table::widths(&cells)
            .iter()
            .take(ncol - 1)
            .map(|w| w + 2)
            .sum();
        for row in &mut cells {
            row[ncol - 1] = super::table::shorten(&row[ncol - 1], width.saturating_sub(before));
        }
    }
    table_lines(&header, &cells, rows, 1 + off + 1, s)
}

/// One row's cells, the service's only when there are several services.
fn row_cells(r: &UnitStatus, several_services: bool) -> Vec<String> {
    let mut c = vec![sanitize(&r.host)];
    if several_services {
        c.push(sanitize(&r.service));
    }
    let state = if r.sub_state.is_empty() {
        r.active_state.clone()
    } else {
        format!("{} ({})", r.active_state, r.sub_state)
    };
    c.extend([
        sanitize(&r.unit),
        sanitize(&state),
        r.since_seconds
            .map(|a| format!("{} ago", human_age(a)))
            .or_else(|| r.since.clone())
            .unwrap_or_else(|| "-".into()),
        r.main_pid
            .map(|p| p.to_string())
            .unwrap_or_else(|| "-".into()),
        r.memory_bytes
            .map(human_bytes)
            .unwrap_or_else(|| "-".into()),
        r.restarts.to_string(),
        if r.enabled.is_empty() {
            "-".into()
        } else {
            sanitize(&r.enabled)
        },
        match (&r.release, &r.live) {
            (Some(id), Some(c)) => format!("{} ({c} live)", sanitize(id)),
            (Some(id), None) => sanitize(id),
            (None, _) => "none".into(),
        },
        r.note.as_deref().map(sanitize).unwrap_or_default(),
    ]);
    c
}

/// The table's lines: the header in bold, the cells padded to their column (the last
/// column not), the state green when the unit is up and red when not.
fn table_lines(
    header: &[String],
    cells: &[Vec<String>],
    rows: &[UnitStatus],
    state_col: usize,
    s: &Style,
) -> String {
    let ncol = header.len();
    let widths = super::table::widths(
        &[header.to_vec()]
            .into_iter()
            .chain(cells.iter().cloned())
            .collect::<Vec<_>>(),
    );
    let pad = |text: &str, w: usize| format!("{text}{}", " ".repeat(w - text.chars().count()));
    let mut lines = Vec::new();
    let head: Vec<String> = header
        .iter()
        .enumerate()
        .map(|(i, h)| {
            if i + 1 == ncol {
                h.to_string()
            } else {
                pad(h, widths[i])
            }
        })
        .collect();
    lines.push(s.bold(head.join("  ").trim_end()));
    for (row, r) in cells.iter().zip(rows) {
        let cols: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let text = if i + 1 == ncol {
                    c.clone()
                } else {
                    pad(c, widths[i])
                };
                if i == state_col {
                    if r.ok { s.green(&text) } else { s.red(&text) }
                } else {
                    text
                }
            })
            .collect();
        lines.push(cols.join("  ").trim_end().to_string());
    }
    lines.join("\n")
}

/// The closing line.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Summary {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub hosts: usize,
    pub units: usize,
    pub up: usize,
    pub down: usize,
    pub unreachable: usize,
    /// Hosts reached whose user manager could not be queried.
    pub failed: usize,
}

impl Summary {
    pub fn new(hosts: usize, rows: &[UnitStatus], errors: &[HostError]) -> Summary {
        let up = rows.iter().filter(|r| r.ok).count();
        let unreachable = errors.iter().filter(|e| !e.reachable).count();
        Summary {
            kind: "summary",
            hosts,
            units: rows.len(),
            up,
            down: rows.len() - up,
            unreachable,
            failed: errors.len() - unreachable,
        }
    }
}

impl Human for Summary {
    fn human(&self, s: &Style) -> Option<String> {
        let mut text = if self.down == 0 {
            format!("all {} unit(s) up on {} host(s)", self.up, self.hosts)
        } else {
            format!("{} of {} unit(s) down", self.down, self.units)
        };
        if self.unreachable > 0 {
            text.push_str(&format!("; {} host(s) unreachable", self.unreachable));
        }
        if self.failed > 0 {
            text.push_str(&format!("; {} host(s) could not be queried", self.failed));
        }
        Some(
            if self.down == 0 && self.unreachable == 0 && self.failed == 0 {
                s.green(&text)
            } else {
                s.red(&text)
            },
        )
    }
}

impl Human for UnitStatus {
    fn human(&self, s: &Style) -> Option<String> {
        Some(render_table(std::slice::from_ref(self), s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::status::tests::OUT;
    use crate::commands::status::{parse_output, unit_statuses};

    #[test]
    fn human_units() {
        assert_eq!(human_bytes(512), "512B");
        assert_eq!(human_bytes(1572864), "1.5M");
        assert_eq!(human_bytes(50 * 1024 * 1024), "50M");
        assert_eq!(human_age(0), "0s");
        assert_eq!(human_age(45), "45s");
        assert_eq!(human_age(723), "12m 3s");
        assert_eq!(human_age(3 * 3600 + 125), "3h 2m");
        assert_eq!(human_age(86400 * 5 + 3600 * 4 + 9), "5d 4h");
        assert_eq!(human_age(7200), "2h");
    }

    #[test]
    fn renders_an_aligned_table() {
        let rows = unit_statuses("h1", &parse_output(OUT));
        let t = render_table_in(&rows, &Style { color: false }, None);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), rows.len() + 1);
        assert!(lines[0].starts_with("HOST  SERVICE  UNIT"), "{t}");
        let col = lines[0].find("STATE").unwrap();
        assert_eq!(&lines[1][col..col + 16], "active (running)", "{t}");
        assert!(
            lines[1].contains("1m 40s ago") && lines[1].contains("1.5M"),
            "{t}"
        );
        assert!(lines[1].contains("20261124T123456Z-1a2b3c4d"), "{t}");
        assert!(
            lines
                .iter()
                .any(|l| l.contains("idle.service") && l.contains("none")),
            "{t}"
        );
        let coloured = render_table_in(&rows, &Style { color: true }, None);
        assert!(coloured.contains("\x1b[31mfailed (failed)"), "{coloured}");
    }

    #[test]
    fn the_table_fits_80_columns_by_leaving_out_the_least_useful_columns() {
        let all = unit_statuses("web1", &parse_output(OUT));
        let first = all[0].service.clone();
        let rows: Vec<UnitStatus> = all.into_iter().filter(|r| r.service == first).collect();
        let wide = render_table_in(&rows, &Style { color: false }, None);
        assert!(wide.lines().any(|l| l.chars().count() > 80), "{wide}");
        let t = render_table_in(&rows, &Style { color: false }, Some(80));
        for l in t.lines() {
            assert!(
                l.chars().count() <= 80,
                "{} columns: {l}\n{t}",
                l.chars().count()
            );
        }
        let head = t.lines().next().unwrap();
        for kept in ["HOST", "UNIT", "STATE", "RELEASE"] {
            assert!(head.contains(kept), "{head}");
        }
        assert!(!head.contains("PID") && !head.contains("MEMORY"), "{head}");
    }

    #[test]
    fn summary_counts_and_words() {
        let rows = unit_statuses("h1", &parse_output(OUT));
        let plain = Style { color: false };
        let s = Summary::new(1, &rows, &[]);
        assert_eq!((s.units, s.up, s.down), (6, 3, 3));
        assert_eq!(s.human(&plain).unwrap(), "3 of 6 unit(s) down");
        let queried = HostError::new(
            "h2",
            &Error::Command {
                host: "h2".into(),
                command: "systemctl --user show".into(),
                status: "exit status 1".into(),
                stderr: "Failed to connect to bus".into(),
            },
        );
        assert!(queried.reachable);
        let unreachable = HostError {
            reachable: false,
            host: "h3".into(),
            ..queried.clone()
        };
        let s = Summary::new(3, &rows[..1], &[queried.clone(), unreachable]);
        assert_eq!((s.unreachable, s.failed), (1, 1));
        assert_eq!(
            s.human(&plain).unwrap(),
            "all 1 unit(s) up on 3 host(s); 1 host(s) unreachable; 1 host(s) could not be queried"
        );
        let err = queried;
        let v = serde_json::to_value(&err).unwrap();
        assert_eq!(v["type"], "host");
        assert_eq!(v["host"], "h2");
    }
}
