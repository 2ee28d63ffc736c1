//! The journal, pure: `journalctl --user` command lines for `ferry logs` and for a deploy's
//! failure excerpt, parsing of `journalctl -o json` lines into entries, merging entries by time,
//! and judging why a user's journal shows nothing. Nothing here touches the network or prints:
//! `logs.rs` runs these commands, `report::logs` shows the entries.

use std::time::{Duration, UNIX_EPOCH};

use serde_json::Value;

use crate::shell;

/// What to read from the journal, as the user asked for it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    /// Units to show (`-u` each); never empty when a command is built.
    pub units: Vec<String>,
    /// `-n`: the most recent N entries. None: journalctl's default (all; 10 with --follow).
    pub lines: Option<u64>,
    pub since: Option<String>,
    pub until: Option<String>,
    pub grep: Option<String>,
    pub follow: bool,
}

/// Where a (re)started journalctl begins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resume {
    /// The first start: as the user asked (`-n`, `--since`).
    Start,
    /// After a reconnection: right after this entry (the last one printed, or the units' last
    /// entry when follow started and nothing was printed since), so nothing is lost or
    /// printed twice. The entry must match the query's units (see [`command`]).
    AfterCursor(String),
    /// After a reconnection when the user's journal was empty at start and nothing was
    /// printed: everything that matches is new.
    Everything,
}

/// The line a follow command prints before the entries: the cursor of the units' last
/// entry at start (a resume point when nothing gets printed before a reconnection).
pub const ANCHOR_PREFIX: &str = "ferry-anchor ";

/// The line a follow command prints first: the pid that becomes journalctl's (`exec`), so that
/// it can be stopped by pid if a signal over the channel does not reach it.
pub const PID_PREFIX: &str = "ferry-pid ";

/// The arguments of `journalctl` (without the program name) for a query.
pub fn journalctl_args(q: &Query, resume: &Resume) -> Vec<String> {
    // --all: long and unprintable fields in full (otherwise json prints them as null).
    let mut a: Vec<String> = ["--user", "--output=json", "--all", "--no-pager"]
        .map(String::from)
        .to_vec();
    for u in &q.units {
        a.push(format!("--unit={u}"));
    }
    match resume {
        Resume::Start => {
            if let Some(n) = q.lines {
                a.push(format!("--lines={n}"));
            }
        }
        Resume::AfterCursor(c) => a.push(format!("--after-cursor={c}")),
        // --follow alone would start at the last 10 entries.
        Resume::Everything => a.push("--lines=all".into()),
    }
    if let Some(s) = &q.since {
        a.push(format!("--since={s}"));
    }
    if let Some(u) = &q.until {
        a.push(format!("--until={u}"));
    }
    if let Some(g) = &q.grep {
        a.push(format!("--grep={g}"));
    }
    if q.follow {
        a.push("--follow".into());
    }
    a
}

/// The remote command line for a query: every argument quoted, and `exec` so that the channel's
/// process IS journalctl (a signal sent over the channel reaches it, not a shell).
/// A follow command prints its pid (see [`PID_PREFIX`]) and, at the first start, an anchor
/// line (see [`ANCHOR_PREFIX`]) before the entries.
pub fn command(q: &Query, resume: &Resume) -> String {
    let mut argv = vec!["journalctl".to_string()];
    argv.extend(journalctl_args(q, resume));
    let mut main = format!("exec {}", shell::command(&argv));
    if q.follow {
        main = format!("echo \"{PID_PREFIX}$$\"; {main}");
    }
    if q.follow && *resume == Resume::Start {
        // The anchor is the last entry that matches the same units, not the journal's last
        // entry: journalctl 252 (`sd_journal_next_skip(j, 2)`) skips the first entry after a
        // cursor whose own entry does not match the filter, so a line the unit logged while
        // the connection was down would be lost.
        let mut argv: Vec<String> = [
            "journalctl",
            "--user",
            "--quiet",
            "--lines=1",
            "--output=json",
            "--output-fields=__CURSOR",
            "--no-pager",
        ]
        .map(String::from)
        .to_vec();
        argv.extend(q.units.iter().map(|u| format!("--unit={u}")));
        let anchor = shell::command(&argv);
        format!(
            "printf %s {}; {anchor} 2>/dev/null; echo; {main}",
            shell::quote(ANCHOR_PREFIX)
        )
    } else {
        main
    }
}

/// One journal entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub cursor: String,
    /// `__REALTIME_TIMESTAMP`: microseconds since the epoch.
    pub realtime_us: u64,
    /// 0 (emerg) .. 7 (debug); 6 (info) when absent.
    pub priority: u8,
    pub pid: Option<u32>,
    /// The user unit (or, failing that, the syslog identifier or command name).
    pub unit: String,
    pub message: Message,
    /// Written by the user manager (systemd) about the unit, not by the unit's processes.
    pub from_manager: bool,
}

/// A MESSAGE field: text, bytes that are not UTF-8, or absent (null).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Text(String),
    Bytes(Vec<u8>),
    Absent,
}

impl Message {
    /// The text, invalid bytes as `\xNN`; None when absent. Control characters are kept: escape
    /// them before they reach a terminal (the reporting layer does).
    pub fn json_text(&self) -> Option<String> {
        match self {
            Message::Text(s) => Some(s.clone()),
            Message::Bytes(b) => Some(escape_invalid(b)),
            Message::Absent => None,
        }
    }
}

/// Bytes as text: valid UTF-8 as is, each invalid byte as `\xNN`.
fn escape_invalid(b: &[u8]) -> String {
    let mut out = String::with_capacity(b.len());
    for chunk in b.utf8_chunks() {
        out.push_str(chunk.valid());
        for byte in chunk.invalid() {
            out.push_str(&format!("\\x{byte:02x}"));
        }
    }
    out
}

/// One line of journalctl's stdout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    Entry(Box<Entry>),
    /// The anchor line of a follow command: the cursor, or None when the journal was empty.
    Anchor(Option<String>),
    /// The pid of the remote journalctl (follow commands).
    Pid(u32),
    Blank,
    /// Not an entry: a message to show as a warning. Raw remote text (invalid bytes as `\xNN`,
    /// control characters kept): print it only through `Reporter::warn`, which escapes them.
    Other(String),
}

/// Bytes of a field value: a JSON string, or an array of byte values.
fn field_bytes(v: &Value) -> Option<Vec<u8>> {
    match v {
        Value::String(s) => Some(s.as_bytes().to_vec()),
        Value::Array(items) if items.iter().all(Value::is_u64) => Some(
            items
                .iter()
                .map(|b| b.as_u64().unwrap_or(0).min(255) as u8)
                .collect(),
        ),
        _ => None,
    }
}

/// All values of a field: a field present several times in one entry is an array of values.
fn field_values(v: &Value) -> Vec<Vec<u8>> {
    match v {
        Value::Array(items) if !items.is_empty() && !items.iter().all(Value::is_u64) => {
            items.iter().filter_map(field_bytes).collect()
        }
        other => field_bytes(other).into_iter().collect(),
    }
}

/// The first value of a field as text (lossy).
fn field_str(obj: &serde_json::Map<String, Value>, key: &str) -> Option<String> {
    let v = obj.get(key)?;
    let first = field_values(v).into_iter().next()?;
    Some(String::from_utf8_lossy(&first).into_owned())
}

fn parse_message(v: Option<&Value>) -> Message {
    let Some(v) = v else {
        return Message::Absent;
    };
    let values = field_values(v);
    if values.is_empty() {
        return Message::Absent;
    }
    let joined = values.join(&b"\n"[..]);
    match String::from_utf8(joined) {
        Ok(s) => Message::Text(s),
        Err(e) => Message::Bytes(e.into_bytes()),
    }
}

/// Parse one `journalctl -o json` object.
pub fn parse_entry(text: &str) -> Result<Entry, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let Value::Object(obj) = v else {
        return Err("not a JSON object".into());
    };
    let cursor = field_str(&obj, "__CURSOR").ok_or("no __CURSOR")?;
    let realtime_us = field_str(&obj, "__REALTIME_TIMESTAMP")
        .and_then(|t| t.parse().ok())
        .ok_or("no __REALTIME_TIMESTAMP")?;
    let priority = field_str(&obj, "PRIORITY")
        .and_then(|p| p.parse::<u8>().ok())
        .filter(|p| *p <= 7)
        .unwrap_or(6);
    let pid = field_str(&obj, "_PID").and_then(|p| p.parse().ok());
    // The unit's own messages carry _SYSTEMD_USER_UNIT; the user manager's messages about a
    // unit carry USER_UNIT (their _SYSTEMD_USER_UNIT is init.scope).
    let unit = field_str(&obj, "_SYSTEMD_USER_UNIT")
        .filter(|u| !u.is_empty() && u != "init.scope")
        .or_else(|| field_str(&obj, "USER_UNIT"))
        .or_else(|| field_str(&obj, "SYSLOG_IDENTIFIER"))
        .or_else(|| field_str(&obj, "_COMM"))
        .unwrap_or_else(|| "?".to_string());
    let from_manager = field_str(&obj, "_SYSTEMD_USER_UNIT").as_deref() == Some("init.scope")
        || field_str(&obj, "SYSLOG_IDENTIFIER").as_deref() == Some("systemd");
    Ok(Entry {
        cursor,
        realtime_us,
        priority,
        pid,
        unit,
        from_manager,
        message: parse_message(obj.get("MESSAGE")),
    })
}

/// Classify one complete line of journalctl's stdout (without its newline).
pub fn parse_line(line: &[u8]) -> Line {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.iter().all(u8::is_ascii_whitespace) {
        return Line::Blank;
    }
    if let Some(pid) = line
        .strip_prefix(PID_PREFIX.as_bytes())
        .and_then(|p| std::str::from_utf8(p).ok())
        .and_then(|p| p.trim().parse().ok())
    {
        return Line::Pid(pid);
    }
    if let Some(rest) = line.strip_prefix(ANCHOR_PREFIX.as_bytes()) {
        let rest = String::from_utf8_lossy(rest);
        let rest = rest.trim();
        if rest.is_empty() {
            return Line::Anchor(None);
        }
        return match parse_entry(rest) {
            Ok(e) => Line::Anchor(Some(e.cursor)),
            Err(_) => Line::Anchor(None),
        };
    }
    if line.first() == Some(&b'{') {
        // journalctl's JSON is ASCII-safe (bytes go in arrays), so from_utf8 only fails on junk.
        let text = String::from_utf8_lossy(line);
        return match parse_entry(&text) {
            Ok(e) => Line::Entry(Box::new(e)),
            Err(err) => Line::Other(format!("unreadable journal line ({err}): {text}")),
        };
    }
    Line::Other(escape_invalid(line))
}

/// Splits a byte stream into complete lines; a partial line waits for the rest.
#[derive(Debug, Default)]
pub struct LineBuffer {
    buf: Vec<u8>,
}

impl LineBuffer {
    /// Add bytes; returns the lines they complete (without `\n`).
    pub fn push(&mut self, data: &[u8]) -> Vec<Vec<u8>> {
        let mut lines = Vec::new();
        let mut rest = data;
        while let Some(i) = rest.iter().position(|b| *b == b'\n') {
            self.buf.extend_from_slice(&rest[..i]);
            lines.push(std::mem::take(&mut self.buf));
            rest = &rest[i + 1..];
        }
        self.buf.extend_from_slice(rest);
        lines
    }

    /// What is left without a newline (at the end of the stream).
    pub fn finish(&mut self) -> Option<Vec<u8>> {
        if self.buf.is_empty() {
            None
        } else {
            Some(std::mem::take(&mut self.buf))
        }
    }
}

/// Merge several hosts' entries (each list already in journal order) into one list in timestamp
/// order; entries with the same timestamp keep host order, then their own order.
pub fn merge(per_host: Vec<Vec<Entry>>) -> Vec<(usize, Entry)> {
    let mut all: Vec<(usize, Entry)> = per_host
        .into_iter()
        .enumerate()
        .flat_map(|(h, entries)| entries.into_iter().map(move |e| (h, e)))
        .collect();
    // Stable: ties keep the order above.
    all.sort_by_key(|(h, e)| (e.realtime_us, *h));
    all
}

/// RFC 3339 in UTC with the given precision: `2026-11-24T12:34:56.123Z`.
pub fn format_timestamp(us: u64, micros: bool) -> String {
    let t = UNIX_EPOCH + Duration::from_micros(us);
    if micros {
        humantime::format_rfc3339_micros(t).to_string()
    } else {
        humantime::format_rfc3339_millis(t).to_string()
    }
}

/// Syslog priority names.
pub fn priority_name(p: u8) -> &'static str {
    [
        "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
    ]
    .get(p as usize)
    .copied()
    .unwrap_or("info")
}

/// The line between the two queries of [`failure_query_command`].
pub const FAILURE_SPLIT: &str = "ferry-journal-split";

/// One shell command for the journal excerpt of failed units: `journalctl --user -o json` of
/// the units (`--user-unit=U`: their own messages and the user manager's about them), then a
/// [`FAILURE_SPLIT`] line, then the entries of the given processes (`_PID=`: the lines of a
/// process that exited before journald could tell its unit). Each query reads at most `lines`
/// entries written since `since` (journalctl syntax; `-5min` when None). A part with nothing
/// to match is left out; with neither units nor pids the command prints nothing.
/// Parse its output with [`parse_failure_output`].
pub fn failure_query_command(
    units: &[String],
    pids: &[u32],
    since: Option<&str>,
    lines: usize,
) -> String {
    let base: Vec<String> = vec![
        "journalctl".into(),
        "--user".into(),
        "--output=json".into(),
        "--all".into(),
        "--quiet".into(),
        "--no-pager".into(),
        format!("--lines={lines}"),
        format!("--since={}", since.unwrap_or("-5min")),
    ];
    let query = |matches: Vec<String>| shell::command([base.clone(), matches].concat());
    let mut parts = Vec::new();
    if !units.is_empty() {
        parts.push(query(
            units.iter().map(|u| format!("--user-unit={u}")).collect(),
        ));
    }
    if !pids.is_empty() {
        parts.push(query(pids.iter().map(|p| format!("_PID={p}")).collect()));
    }
    if parts.is_empty() {
        return "true".to_string();
    }
    parts.join(&format!("; echo {FAILURE_SPLIT}; "))
}

/// The entries in the output of [`failure_query_command`]: both queries' entries in time order
/// (ties keep the order journalctl gave), each entry once (by cursor). Lines that are not
/// entries are skipped.
pub fn parse_failure_output(raw: &[u8]) -> Vec<Entry> {
    let mut seen = std::collections::HashSet::new();
    let mut entries: Vec<Entry> = raw
        .split(|b| *b == b'\n')
        .filter_map(|line| match parse_line(line) {
            Line::Entry(e) => Some(*e),
            _ => None,
        })
        .filter(|e| seen.insert(e.cursor.clone()))
        .collect();
    entries.sort_by_key(|e| e.realtime_us);
    entries
}

/// The value of `KEY=value` in a probe's output (the first line with that key), trimmed.
pub fn kv<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
        .map(str::trim)
}

/// The shell text of [`FACTS_PROBE`] (a macro so that [`EMPTY_PROBE`] can extend it at compile
/// time).
macro_rules! facts_probe {
    () => {
        "echo \"uid=$(id -u)\"; echo \"user=$(id -un)\"; \
        mid=$(cat /etc/machine-id 2>/dev/null); \
        if [ -n \"$mid\" ] && [ -d \"/var/log/journal/$mid\" ]; then echo persistent=yes; else echo persistent=no; fi; \
        if [ -d /var/log/journal ]; then echo var_log_journal=yes; else echo var_log_journal=no; fi; \
        echo \"storage=$( { systemd-analyze cat-config systemd/journald.conf 2>/dev/null || \
          cat /etc/systemd/journald.conf /etc/systemd/journald.conf.d/*.conf 2>/dev/null; } \
          | sed -n 's/^[[:space:]]*Storage[[:space:]]*=[[:space:]]*//p' | tail -n 1)\""
    };
}

/// Facts about the login's journal, as `KEY=value` lines (see [`JournalFacts::parse`]): the uid
/// and user, whether journald writes this machine's journal to /var/log/journal, whether
/// /var/log/journal exists, and journald's effective `Storage=` (empty when not set).
pub const FACTS_PROBE: &str = facts_probe!();

/// Run when a host's journal gave nothing: [`FACTS_PROBE`], and whether the user's journal has
/// any entry at all.
pub const EMPTY_PROBE: &str = concat!(
    facts_probe!(),
    "; echo \"entries=$(journalctl --user --quiet --lines=1 --output=cat --no-pager 2>/dev/null | wc -l)\""
);

/// What [`FACTS_PROBE`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JournalFacts {
    pub uid: Option<u32>,
    /// The login name; empty when unknown.
    pub user: String,
    /// /var/log/journal/MACHINE-ID exists.
    pub machine_dir: bool,
    /// /var/log/journal exists.
    pub var_log_journal: bool,
    /// journald's `Storage=` (lowercase); `auto` when not set.
    pub storage: String,
}

/// uids below this are system users: journald gives them no per-user journal file, so
/// `journalctl --user` shows them nothing (their messages go to the system journal).
pub const FIRST_REGULAR_UID: u32 = 1000;

impl JournalFacts {
    pub fn parse(probe: &str) -> JournalFacts {
        let storage = kv(probe, "storage")
            .filter(|s| !s.is_empty())
            .unwrap_or("auto")
            .to_ascii_lowercase();
        JournalFacts {
            uid: kv(probe, "uid").and_then(|u| u.parse().ok()),
            user: kv(probe, "user").unwrap_or("").to_string(),
            machine_dir: kv(probe, "persistent") == Some("yes"),
            var_log_journal: kv(probe, "var_log_journal") == Some("yes"),
            storage,
        }
    }

    /// The user's name for messages.
    pub fn user_name(&self) -> &str {
        if self.user.is_empty() {
            "the user"
        } else {
            &self.user
        }
    }

    /// A system user (uid below [`FIRST_REGULAR_UID`]).
    pub fn system_user(&self) -> bool {
        self.uid.is_some_and(|u| u < FIRST_REGULAR_UID)
    }

    /// journald writes to /var/log/journal: the only storage with per-user journals.
    pub fn persistent(&self) -> bool {
        self.machine_dir && !matches!(self.storage.as_str(), "volatile" | "none")
    }
}

/// A reason, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnosis {
    pub message: String,
    pub hint: String,
}

/// Why `journalctl --user` can show nothing for a reason that does not go away by itself: a
/// system user, or a journal that is not persistent. None when neither applies. `ferry logs`
/// (empty output) and `ferry doctor` (journal checks) say the same thing through this.
pub fn diagnose(f: &JournalFacts) -> Option<Diagnosis> {
    let user = f.user_name();
    if let Some(uid) = f.uid.filter(|_| f.system_user()) {
        return Some(Diagnosis {
            message: format!(
                "`journalctl --user` shows nothing: {user} (uid {uid}) is a system user, and journald writes the logs of system users to the system journal, not to a journal {user} can read"
            ),
            hint: format!(
                "deploy as a regular user, not a system user (uid >= {FIRST_REGULAR_UID}), or let {user} read the system journal (as root: usermod -aG systemd-journal {user}) and read it with `journalctl _SYSTEMD_USER_UNIT=UNIT` on the host"
            ),
        });
    }
    let restart = "systemctl restart systemd-journald (earlier messages are lost)";
    match f.storage.as_str() {
        "none" => Some(Diagnosis {
            message: "`journalctl --user` shows nothing: journald stores no logs at all (Storage=none)".to_string(),
            hint: format!(
                "as root on the host: set Storage=persistent in /etc/systemd/journald.conf (and in any file of /etc/systemd/journald.conf.d that sets Storage=none); mkdir -p /var/log/journal; {restart}"
            ),
        }),
        "volatile" => Some(Diagnosis {
            message: "`journalctl --user` shows nothing: the journal is not persistent (Storage=volatile), and journald keeps no per-user journal in volatile storage".to_string(),
            hint: format!(
                "as root on the host: set Storage=persistent in /etc/systemd/journald.conf (and in any file of /etc/systemd/journald.conf.d that sets Storage=volatile); mkdir -p /var/log/journal; {restart}"
            ),
        }),
        _ if !f.persistent() => Some(Diagnosis {
            message: format!(
                "`journalctl --user` shows nothing: the journal is not persistent ({}), and journald keeps no per-user journal in volatile storage",
                if f.var_log_journal {
                    "journald does not write to /var/log/journal".to_string()
                } else {
                    format!("Storage={} and no /var/log/journal", f.storage)
                }
            ),
            hint: format!(
                "as root on the host: mkdir -p /var/log/journal; set Storage=persistent in /etc/systemd/journald.conf; {restart}"
            ),
        }),
        _ => None,
    }
}

/// Why a journal query gave nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Emptiness {
    /// The user's journal has entries, just none that match.
    NoMatch,
    /// The user's journal is empty or unreadable: the message and what to do.
    Unreadable { message: String, hint: String },
}

/// Judge the output of [`EMPTY_PROBE`].
pub fn judge_empty(probe: &str) -> Emptiness {
    let entries: u64 = kv(probe, "entries")
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    if entries > 0 {
        return Emptiness::NoMatch;
    }
    let facts = JournalFacts::parse(probe);
    let d = diagnose(&facts).unwrap_or_else(|| Diagnosis {
        message: format!(
            "the journal of {} is empty or cannot be read",
            facts.user_name()
        ),
        hint: "run `ferry doctor`; check journald's SplitMode (uid) and the permissions of /var/log/journal".to_string(),
    });
    Emptiness::Unreadable {
        message: d.message,
        hint: d.hint,
    }
}

/// Whether a follow should warn at start that nothing will ever show: only for causes that do
/// not go away (a system user, a volatile journal), not for a journal that is merely empty yet.
pub fn follow_warning(probe: &str) -> Option<(String, String)> {
    if judge_empty(probe) == Emptiness::NoMatch {
        return None;
    }
    diagnose(&JournalFacts::parse(probe)).map(|d| (d.message, d.hint))
}

#[cfg(test)]
mod tests;
