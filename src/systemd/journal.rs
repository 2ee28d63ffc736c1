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
    /// After a reconnection: right after this entry (the last one printed, or the journal's
    /// last entry when follow started and nothing was printed since), so nothing is lost or
    /// printed twice.
    AfterCursor(String),
    /// After a reconnection when the user's journal was empty at start and nothing was
    /// printed: everything that matches is new.
    Everything,
}

/// The line a follow command prints before the entries: the cursor of the user journal's last
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
        let anchor = shell::command([
            "journalctl",
            "--user",
            "--quiet",
            "--lines=1",
            "--output=json",
            "--output-fields=__CURSOR",
            "--no-pager",
        ]);
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
mod tests {
    use super::*;

    fn q() -> Query {
        Query {
            units: vec!["app.service".into(), "app.socket".into()],
            ..Default::default()
        }
    }

    #[test]
    fn args_for_a_plain_query() {
        let mut q = q();
        q.lines = Some(5);
        q.since = Some("-1h".into());
        q.until = Some("2026-11-24 10:00".into());
        q.grep = Some("it's [0-9]+".into());
        assert_eq!(
            journalctl_args(&q, &Resume::Start),
            vec![
                "--user",
                "--output=json",
                "--all",
                "--no-pager",
                "--unit=app.service",
                "--unit=app.socket",
                "--lines=5",
                "--since=-1h",
                "--until=2026-11-24 10:00",
                "--grep=it's [0-9]+",
            ]
        );
        let c = command(&q, &Resume::Start);
        assert_eq!(
            c,
            "exec journalctl --user --output=json --all --no-pager --unit=app.service --unit=app.socket \
             --lines=5 --since=-1h '--until=2026-11-24 10:00' '--grep=it'\\''s [0-9]+'"
        );
    }

    #[test]
    fn follow_prints_an_anchor_first_and_resumes_after_a_cursor() {
        let mut q = q();
        q.follow = true;
        q.lines = Some(0);
        let c = command(&q, &Resume::Start);
        assert!(
            c.starts_with("printf %s 'ferry-anchor '; journalctl --user --quiet --lines=1"),
            "{c}"
        );
        assert!(c.ends_with("exec journalctl --user --output=json --all --no-pager --unit=app.service --unit=app.socket --lines=0 --follow"), "{c}");
        let c = command(&q, &Resume::AfterCursor("s=abc;i=1f".into()));
        assert_eq!(
            c,
            "echo \"ferry-pid $$\"; exec journalctl --user --output=json --all --no-pager --unit=app.service --unit=app.socket '--after-cursor=s=abc;i=1f' --follow"
        );
        let a = journalctl_args(&q, &Resume::Everything);
        assert!(a.contains(&"--lines=all".to_string()) && !a.contains(&"--lines=0".to_string()));
    }

    /// The command survives a real `sh` with hostile arguments: each arrives as one argument.
    #[test]
    fn command_round_trips_through_sh() {
        let q = Query {
            units: vec!["a b;rm -rf ~.service".into()],
            grep: Some("$(touch /tmp/x) `id` 'q'".into()),
            since: Some("\"today\"".into()),
            ..Default::default()
        };
        let line = command(&q, &Resume::Start).replacen("exec journalctl", "printf '%s\\n'", 1);
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&line)
            .output()
            .unwrap();
        let got: Vec<String> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(String::from)
            .collect();
        let want: Vec<String> = journalctl_args(&q, &Resume::Start);
        assert_eq!(got, want);
    }

    const TEXT: &str = r#"{"__CURSOR":"s=1;i=a","__REALTIME_TIMESTAMP":"1764000000123456","PRIORITY":"3","_PID":"4242","_SYSTEMD_USER_UNIT":"app.service","SYSLOG_IDENTIFIER":"app","MESSAGE":"line 7"}"#;

    #[test]
    fn parses_a_text_entry() {
        let e = parse_entry(TEXT).unwrap();
        assert_eq!(e.cursor, "s=1;i=a");
        assert_eq!(e.realtime_us, 1764000000123456);
        assert_eq!(e.priority, 3);
        assert_eq!(e.pid, Some(4242));
        assert_eq!(e.unit, "app.service");
        assert_eq!(e.message, Message::Text("line 7".into()));
    }

    #[test]
    fn parses_bytes_null_and_repeated_messages() {
        // "bad \xff \x1b[31m"
        let j = r#"{"__CURSOR":"c","__REALTIME_TIMESTAMP":"1","MESSAGE":[98,97,100,32,255,32,27,91,51,49,109],"SYSLOG_IDENTIFIER":"x"}"#;
        let e = parse_entry(j).unwrap();
        assert_eq!(e.message, Message::Bytes(b"bad \xff \x1b[31m".to_vec()));
        assert_eq!(e.message.json_text().unwrap(), "bad \\xff \u{1b}[31m");
        assert_eq!(e.unit, "x");
        assert_eq!(e.priority, 6);
        assert_eq!(e.pid, None);

        let j = r#"{"__CURSOR":"c","__REALTIME_TIMESTAMP":"1","MESSAGE":null,"_COMM":"sh"}"#;
        let e = parse_entry(j).unwrap();
        assert_eq!(e.message, Message::Absent);
        assert_eq!(e.unit, "sh");

        let j = r#"{"__CURSOR":"c","__REALTIME_TIMESTAMP":"1","MESSAGE":["a",[98,255]]}"#;
        let e = parse_entry(j).unwrap();
        assert_eq!(e.message, Message::Bytes(b"a\nb\xff".to_vec()));
        assert_eq!(e.unit, "?");

        // Valid UTF-8 sent as bytes (journald does so for control characters) becomes text.
        let j = r#"{"__CURSOR":"c","__REALTIME_TIMESTAMP":"1","MESSAGE":[104,105,7]}"#;
        assert_eq!(
            parse_entry(j).unwrap().message,
            Message::Text("hi\u{7}".into())
        );
    }

    #[test]
    fn the_user_manager_s_messages_name_the_unit() {
        let j = r#"{"__CURSOR":"c","__REALTIME_TIMESTAMP":"1","_SYSTEMD_USER_UNIT":"init.scope","USER_UNIT":"app.service","MESSAGE":"Started app.service."}"#;
        assert_eq!(parse_entry(j).unwrap().unit, "app.service");
    }

    #[test]
    fn bad_entries_are_errors() {
        assert!(parse_entry("{}").is_err());
        assert!(parse_entry("[1]").is_err());
        assert!(parse_entry(r#"{"__CURSOR":"c","__REALTIME_TIMESTAMP":"x"}"#).is_err());
    }

    #[test]
    fn classifies_lines() {
        assert!(matches!(parse_line(TEXT.as_bytes()), Line::Entry(_)));
        assert_eq!(parse_line(b""), Line::Blank);
        assert_eq!(parse_line(b"ferry-pid 4242"), Line::Pid(4242));
        assert_eq!(parse_line(b"ferry-anchor "), Line::Anchor(None));
        let anchor = format!("ferry-anchor {TEXT}");
        assert_eq!(
            parse_line(anchor.as_bytes()),
            Line::Anchor(Some("s=1;i=a".into()))
        );
        assert_eq!(
            parse_line(b"No journal files were found.\x1b[0m\xff"),
            Line::Other("No journal files were found.\x1b[0m\\xff".into())
        );
        assert!(matches!(parse_line(b"{broken"), Line::Other(_)));
    }

    #[test]
    fn line_buffer_keeps_partial_lines() {
        let mut b = LineBuffer::default();
        assert!(b.push(b"ab").is_empty());
        assert_eq!(
            b.push(b"c\nde\n\nf"),
            vec![b"abc".to_vec(), b"de".to_vec(), b"".to_vec()]
        );
        assert_eq!(b.push(b"g\n"), vec![b"fg".to_vec()]);
        assert_eq!(b.finish(), None);
        b.push(b"tail");
        assert_eq!(b.finish(), Some(b"tail".to_vec()));
    }

    fn entry(ts: u64, msg: &str) -> Entry {
        Entry {
            cursor: format!("c{ts}{msg}"),
            realtime_us: ts,
            priority: 6,
            pid: Some(1),
            unit: "u.service".into(),
            message: Message::Text(msg.into()),
            from_manager: false,
        }
    }

    #[test]
    fn merges_by_time_stably() {
        let a = vec![entry(1, "a1"), entry(5, "a5"), entry(5, "a5b")];
        let b = vec![entry(2, "b2"), entry(5, "b5"), entry(9, "b9")];
        let m: Vec<(usize, String)> = merge(vec![a, b])
            .into_iter()
            .map(|(h, e)| (h, e.message.json_text().unwrap()))
            .collect();
        let want = [
            (0, "a1"),
            (1, "b2"),
            (0, "a5"),
            (0, "a5b"),
            (1, "b5"),
            (1, "b9"),
        ];
        assert_eq!(m, want.map(|(h, s)| (h, s.to_string())));
    }

    #[test]
    fn judges_an_empty_journal() {
        assert_eq!(
            judge_empty("uid=1001\nuser=a\npersistent=yes\nentries=1\n"),
            Emptiness::NoMatch
        );
        let Emptiness::Unreadable { message, hint } =
            judge_empty("uid=990\nuser=sysuser\npersistent=yes\nentries=0\n")
        else {
            panic!()
        };
        assert!(message.contains("system user"), "{message}");
        assert!(hint.contains("uid >= 1000"), "{hint}");
        let Emptiness::Unreadable { message, hint } =
            judge_empty("uid=1001\nuser=a\npersistent=no\nentries=0\n")
        else {
            panic!()
        };
        assert!(message.contains("not persistent"), "{message}");
        assert!(hint.contains("Storage=persistent"), "{hint}");
        assert!(matches!(
            judge_empty("uid=1001\nuser=a\npersistent=yes\nentries=0\n"),
            Emptiness::Unreadable { .. }
        ));
        assert!(follow_warning("uid=1001\nuser=a\npersistent=yes\nentries=0\n").is_none());
        assert!(follow_warning("uid=990\nuser=s\npersistent=yes\nentries=0\n").is_some());
        assert!(follow_warning("uid=1001\nuser=a\npersistent=no\nentries=0\n").is_some());
        assert!(follow_warning("uid=1001\nuser=a\npersistent=no\nentries=3\n").is_none());
    }

    #[test]
    fn reads_journal_facts() {
        let f = JournalFacts::parse(
            "uid=1001\nuser=app\npersistent=yes\nvar_log_journal=yes\nstorage=Persistent\n",
        );
        assert_eq!(
            f,
            JournalFacts {
                uid: Some(1001),
                user: "app".into(),
                machine_dir: true,
                var_log_journal: true,
                storage: "persistent".into(),
            }
        );
        assert!(f.persistent() && !f.system_user());
        // Storage= not set anywhere: journald's default.
        let f = JournalFacts::parse("uid=x\nuser=\nstorage=\n");
        assert_eq!(f.storage, "auto");
        assert_eq!(f.uid, None);
        assert_eq!(f.user_name(), "the user");
        assert!(!f.persistent());
        assert_eq!(kv("a=1\nkey= v \nkey=2\n", "key"), Some("v"));
        assert_eq!(kv("keys=1\n", "key"), None);
    }

    fn facts(storage: &str, machine_dir: bool, var_log_journal: bool, uid: u32) -> JournalFacts {
        JournalFacts {
            uid: Some(uid),
            user: "app".into(),
            machine_dir,
            var_log_journal,
            storage: storage.into(),
        }
    }

    #[test]
    fn diagnoses_each_cause_with_its_fix() {
        assert_eq!(diagnose(&facts("persistent", true, true, 1001)), None);
        assert_eq!(diagnose(&facts("auto", true, true, 1001)), None);
        // A system user first: no storage setting helps it.
        let d = diagnose(&facts("persistent", true, true, 999)).unwrap();
        assert!(
            d.message.contains("app (uid 999) is a system user"),
            "{d:?}"
        );
        assert!(d.hint.contains("usermod -aG systemd-journal app"), "{d:?}");
        let d = diagnose(&facts("volatile", true, true, 1001)).unwrap();
        assert!(d.message.contains("Storage=volatile"), "{d:?}");
        assert!(d.hint.contains("set Storage=persistent"), "{d:?}");
        let d = diagnose(&facts("none", false, false, 1001)).unwrap();
        assert!(d.message.contains("Storage=none"), "{d:?}");
        let d = diagnose(&facts("auto", false, false, 1001)).unwrap();
        assert!(
            d.message
                .contains("not persistent (Storage=auto and no /var/log/journal)"),
            "{d:?}"
        );
        assert!(
            d.hint
                .starts_with("as root on the host: mkdir -p /var/log/journal;")
        );
        let d = diagnose(&facts("persistent", false, true, 1001)).unwrap();
        assert!(
            d.message
                .contains("journald does not write to /var/log/journal"),
            "{d:?}"
        );
    }

    /// The probe runs in a real `sh` and answers every key (whatever this machine's journal is).
    #[test]
    fn empty_probe_runs_in_sh() {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(EMPTY_PROBE)
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        for key in ["uid", "user", "persistent", "var_log_journal", "storage"] {
            assert!(kv(&text, key).is_some(), "{key} missing in {text:?}");
        }
        assert!(kv(&text, "uid").unwrap().parse::<u32>().is_ok(), "{text}");
        assert!(
            kv(&text, "entries").unwrap().parse::<u64>().is_ok(),
            "{text}"
        );
    }

    #[test]
    fn failure_query_reads_units_then_pids() {
        let units = vec!["app.service".to_string(), "app.socket".to_string()];
        let c = failure_query_command(&units, &[285, 290], Some("2026-11-24 12:00:00"), 200);
        assert_eq!(
            c,
            "journalctl --user --output=json --all --quiet --no-pager --lines=200 \
             '--since=2026-11-24 12:00:00' --user-unit=app.service --user-unit=app.socket; \
             echo ferry-journal-split; \
             journalctl --user --output=json --all --quiet --no-pager --lines=200 \
             '--since=2026-11-24 12:00:00' _PID=285 _PID=290"
        );
        assert_eq!(
            failure_query_command(&units[..1], &[], None, 50),
            "journalctl --user --output=json --all --quiet --no-pager --lines=50 --since=-5min \
             --user-unit=app.service"
        );
        assert_eq!(
            failure_query_command(&[], &[7], None, 5),
            "journalctl --user --output=json --all --quiet --no-pager --lines=5 --since=-5min _PID=7"
        );
        assert_eq!(failure_query_command(&[], &[], None, 5), "true");
    }

    /// Hostile unit names arrive as one argument each through a real `sh`.
    #[test]
    fn failure_query_round_trips_through_sh() {
        let units = vec!["a b;$(id).service".to_string()];
        let line = failure_query_command(&units, &[9], Some("'today'"), 3)
            .replace("journalctl", "printf '%s\\n'");
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&line)
            .output()
            .unwrap();
        let got = String::from_utf8(out.stdout).unwrap();
        let got: Vec<&str> = got.lines().collect();
        assert_eq!(got[6], "--since='today'");
        assert_eq!(got[7], "--user-unit=a b;$(id).service");
        assert_eq!(got[8], "ferry-journal-split");
        assert_eq!(got[16], "_PID=9");
        assert_eq!(got.len(), 17);
    }

    /// Output as journalctl 252 printed it for a unit that wrote two lines and exited 3; the
    /// `_PID=` query finds its line again plus one journald could not attribute to the unit.
    #[test]
    fn failure_output_merges_by_time_without_duplicates() {
        let by_unit = [
            r#"{"_PID":"69","SYSLOG_IDENTIFIER":"systemd","_SYSTEMD_USER_UNIT":"init.scope","USER_UNIT":"app.service","PRIORITY":"6","MESSAGE":"Starting app.service - demo...","__CURSOR":"s=ef95;i=15a;b=2ea6;m=bc239443;t=6610aec8ede16;x=9844","__REALTIME_TIMESTAMP":"1795549406617110","_COMM":"systemd","_TRANSPORT":"journal"}"#,
            r#"{"_COMM":"sh","_SYSTEMD_USER_UNIT":"app.service","PRIORITY":"6","MESSAGE":"started","__CURSOR":"s=ef95;i=15b;b=2ea6;m=bc239b82;t=6610aec8ee555;x=ae47","_PID":"285","SYSLOG_IDENTIFIER":"sh","_TRANSPORT":"stdout","__REALTIME_TIMESTAMP":"1795549406618965"}"#,
            r#"{"PRIORITY":"5","_PID":"69","MESSAGE":"app.service: Main process exited, code=exited, status=3/NOTIMPLEMENTED","SYSLOG_IDENTIFIER":"systemd","USER_UNIT":"app.service","_SYSTEMD_USER_UNIT":"init.scope","__CURSOR":"s=ef95;i=15e;b=2ea6;m=bc239f75;t=6610aec8ee948;x=337e","EXIT_STATUS":"3","__REALTIME_TIMESTAMP":"1795549406619976"}"#,
            r#"{"MESSAGE":"app.service: Failed with result 'exit-code'.","PRIORITY":"4","USER_UNIT":"app.service","_SYSTEMD_USER_UNIT":"init.scope","_PID":"69","UNIT_RESULT":"exit-code","__CURSOR":"s=ef95;i=15f;b=2ea6;m=bc23a058;t=6610aec8eea2b;x=5ee6","__REALTIME_TIMESTAMP":"1795549406620203"}"#,
        ];
        let by_pid = [
            r#"{"_COMM":"sh","_SYSTEMD_USER_UNIT":"app.service","PRIORITY":"6","MESSAGE":"started","__CURSOR":"s=ef95;i=15b;b=2ea6;m=bc239b82;t=6610aec8ee555;x=ae47","_PID":"285","SYSLOG_IDENTIFIER":"sh","_TRANSPORT":"stdout","__REALTIME_TIMESTAMP":"1795549406618965"}"#,
            r#"{"MESSAGE":"boom: cannot open /etc/app.conf","PRIORITY":"6","_PID":"285","SYSLOG_IDENTIFIER":"sh","_TRANSPORT":"stdout","__CURSOR":"s=ef95;i=15d;b=2ea6;m=bc239daa;t=6610aec8ee77d;x=a260","__REALTIME_TIMESTAMP":"1795549406619517"}"#,
        ];
        let raw = format!(
            "{}\n{FAILURE_SPLIT}\n{}\n",
            by_unit.join("\n"),
            by_pid.join("\n")
        );
        let entries = parse_failure_output(raw.as_bytes());
        let got: Vec<(u64, &str, Option<u32>, String)> = entries
            .iter()
            .map(|e| {
                (
                    e.realtime_us,
                    e.unit.as_str(),
                    e.pid,
                    e.message.json_text().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    1795549406617110,
                    "app.service",
                    Some(69),
                    "Starting app.service - demo...".into()
                ),
                (1795549406618965, "app.service", Some(285), "started".into()),
                (
                    1795549406619517,
                    "sh",
                    Some(285),
                    "boom: cannot open /etc/app.conf".into()
                ),
                (
                    1795549406619976,
                    "app.service",
                    Some(69),
                    "app.service: Main process exited, code=exited, status=3/NOTIMPLEMENTED".into()
                ),
                (
                    1795549406620203,
                    "app.service",
                    Some(69),
                    "app.service: Failed with result 'exit-code'.".into()
                ),
            ]
        );
        assert_eq!(entries[4].priority, 4);
        // Nothing, or only journalctl's words: no entries.
        assert!(parse_failure_output(b"").is_empty());
        assert!(parse_failure_output(b"-- No entries --\nferry-journal-split\n").is_empty());
    }

    #[test]
    fn tells_the_manager_s_lines_from_the_unit_s_own() {
        let manager = r#"{"__CURSOR":"c1","__REALTIME_TIMESTAMP":"100","_PID":"5","SYSLOG_IDENTIFIER":"systemd","_SYSTEMD_USER_UNIT":"init.scope","USER_UNIT":"a.service","MESSAGE":"a.service: Main process exited"}"#;
        let own = r#"{"__CURSOR":"c2","__REALTIME_TIMESTAMP":"50","_PID":"42","SYSLOG_IDENTIFIER":"sh","_SYSTEMD_USER_UNIT":"a.service","MESSAGE":"cannot open"}"#;
        assert!(parse_entry(manager).unwrap().from_manager);
        assert!(!parse_entry(own).unwrap().from_manager);
    }
}
