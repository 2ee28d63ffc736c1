//! The events of `ferry releases` (one per release, one per history record) and the table
//! people see.

use serde::Serialize;

use crate::release::HistoryRecord;
use crate::report::{Human, Style, sanitize};

/// One release on one host.
#[derive(Debug, Clone, Serialize)]
pub struct ReleaseEvent {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub host: String,
    pub service: String,
    pub id: String,
    pub current: bool,
    /// The `staged` link points to it (`deploy --no-switch`; `ferry promote` switches to it).
    pub staged: bool,
    pub created: Option<String>,
    pub deployed_by: Option<String>,
    pub git_commit: Option<String>,
    /// Size on disk in bytes (files shared with other releases counted here too).
    pub size: Option<u64>,
    /// Outcome of the last deploy or rollback of this release, from the history.
    pub outcome: Option<String>,
}

impl Human for ReleaseEvent {
    fn human(&self, s: &Style) -> Option<String> {
        let mark = if self.current {
            s.green("*")
        } else if self.staged {
            "+".into()
        } else {
            " ".into()
        };
        Some(format!(
            "{} {mark} {}  {:<20} {:<24} {:<14} {:>9}  {}",
            s.bold(&self.host),
            self.id,
            self.created.as_deref().unwrap_or("-"),
            sanitize(self.deployed_by.as_deref().unwrap_or("-")),
            sanitize(self.git_commit.as_deref().unwrap_or("-")),
            self.size
                .map(|b| format!("{} KiB", b / 1024))
                .unwrap_or_else(|| "-".into()),
            self.outcome.as_deref().unwrap_or("-"),
        ))
    }
}

/// One history record on one host.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryEvent {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub host: String,
    pub service: String,
    #[serde(flatten)]
    pub record: HistoryRecord,
}

impl Human for HistoryEvent {
    fn human(&self, s: &Style) -> Option<String> {
        let r = &self.record;
        let mut line = format!(
            "{}   {} {:<8} {} {:<15} by {}",
            s.bold(&self.host),
            r.time,
            r.action,
            r.release,
            r.outcome,
            sanitize(&r.by)
        );
        if let Some(reason) = &r.reason {
            line.push_str(&format!(": {}", sanitize(reason)));
        }
        Some(line)
    }
}

/// What people see of `ferry releases`: a table of the releases, then the history.
#[derive(Debug, Clone, Serialize)]
pub struct ReleasesTable {
    pub releases: Vec<ReleaseEvent>,
    pub history: Vec<HistoryEvent>,
}

/// Left-align `cells` in columns as wide as their widest cell (the last column is not padded).
fn columns(rows: &[Vec<String>]) -> Vec<String> {
    let widths = super::table::widths(rows);
    rows.iter()
        .map(|r| {
            let mut line = String::new();
            for (i, cell) in r.iter().enumerate() {
                if i + 1 == r.len() {
                    line.push_str(cell);
                } else {
                    let pad = widths[i] - cell.chars().count();
                    line.push_str(cell);
                    line.push_str(&" ".repeat(pad + 2));
                }
            }
            line.trim_end().to_string()
        })
        .collect()
}

impl Human for ReleasesTable {
    fn human(&self, s: &Style) -> Option<String> {
        let mut out = Vec::new();
        let mut rows = vec![
            [
                "HOST",
                "",
                "RELEASE",
                "CREATED",
                "DEPLOYED BY",
                "COMMIT",
                "SIZE",
                "OUTCOME",
            ]
            .map(String::from)
            .to_vec(),
        ];
        for r in &self.releases {
            rows.push(vec![
                sanitize(&r.host),
                match (r.current, r.staged) {
                    (true, _) => "*".into(),
                    (false, true) => "+ staged".into(),
                    _ => String::new(),
                },
                r.id.clone(),
                sanitize(r.created.as_deref().unwrap_or("-")),
                sanitize(r.deployed_by.as_deref().unwrap_or("-")),
                sanitize(r.git_commit.as_deref().unwrap_or("-")),
                r.size
                    .map(|b| format!("{} KiB", b / 1024))
                    .unwrap_or_else(|| "-".into()),
                sanitize(r.outcome.as_deref().unwrap_or("-")),
            ]);
        }
        // Too wide for the terminal: leave out SIZE, COMMIT, DEPLOYED BY, CREATED, in order.
        let width = super::table::width();
        let keep = super::table::keep(&super::table::widths(&rows), &[6, 5, 4, 3], width);
        let rows = super::table::project(rows, &keep);
        let mut lines = columns(&rows);
        lines[0] = s.bold(&lines[0]);
        out.extend(lines);
        if !self.history.is_empty() {
            out.push(String::new());
            let mut rows = vec![
                [
                    "HOST", "TIME", "ACTION", "RELEASE", "OUTCOME", "BY", "REASON",
                ]
                .map(String::from)
                .to_vec(),
            ];
            for h in &self.history {
                let r = &h.record;
                rows.push(vec![
                    sanitize(&h.host),
                    sanitize(&r.time),
                    sanitize(r.action.as_str()),
                    sanitize(&r.release),
                    sanitize(r.outcome.as_str()),
                    sanitize(&r.by),
                    sanitize(r.reason.as_deref().unwrap_or("")),
                ]);
            }
            // Leave out BY when too wide (then the reason wraps as it must).
            let keep = super::table::keep(&super::table::widths(&rows), &[5], width);
            let rows = super::table::project(rows, &keep);
            let mut lines = columns(&rows);
            lines[0] = s.bold(&lines[0]);
            out.extend(lines);
        }
        Some(out.join("\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_stay_aligned_with_a_dirty_commit() {
        let ev = |id: &str, commit: &str, current: bool| ReleaseEvent {
            kind: "release",
            host: "web1".into(),
            service: "s".into(),
            id: id.into(),
            current,
            staged: false,
            created: Some("2026-11-24T12:00:00Z".into()),
            deployed_by: Some("me@box".into()),
            git_commit: Some(commit.into()),
            size: Some(2048),
            outcome: Some("deploy ok".into()),
        };
        let t = ReleasesTable {
            releases: vec![
                ev("20261124T120000Z-00000001", "0123456789ab-dirty", false),
                ev("20261124T130000Z-00000002", "0123456789ab", true),
            ],
            history: vec![],
        };
        let text = t.human(&Style { color: false }).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("HOST"), "{text}");
        let col = |l: &str| l.find("2 KiB").unwrap();
        assert_eq!(col(lines[1]), col(lines[2]), "{text}");
        assert_eq!(lines[0].find("SIZE").unwrap(), col(lines[1]), "{text}");
        assert!(lines[2].starts_with("web1  *"), "{text}");
    }
}
