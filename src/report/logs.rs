//! `ferry logs` events: one journal entry as a line for people or a JSON object.

use serde::Serialize;

use crate::report::{Human, Style, sanitize, sanitize_bytes};
use crate::systemd::journal::{Entry, Message, format_timestamp};

/// A message, safe for a terminal: control characters and invalid bytes escaped.
pub fn message_display(m: &Message) -> String {
    match m {
        Message::Text(s) => sanitize(s),
        Message::Bytes(b) => sanitize_bytes(b),
        Message::Absent => "[no message]".to_string(),
    }
}

/// One entry as printed: `HOST TIMESTAMP UNIT[PID]: MESSAGE`, or a JSON object.
#[derive(Debug, Clone, Serialize)]
pub struct LogEntry {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub host: String,
    pub unit: String,
    /// RFC 3339, UTC, microseconds.
    pub timestamp: String,
    pub timestamp_us: u64,
    pub priority: u8,
    pub pid: Option<u32>,
    /// The message text; bytes that are not UTF-8 written as `\xNN`. null when absent.
    pub message: Option<String>,
    /// The raw bytes, only when the message is not valid UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_bytes: Option<Vec<u8>>,
    pub cursor: String,
    /// Human output: the width of the host column, or None to leave it out (one host).
    #[serde(skip)]
    pub host_column: Option<usize>,
    #[serde(skip)]
    display: String,
}

impl LogEntry {
    pub fn new(host: &str, e: &Entry, host_column: Option<usize>) -> LogEntry {
        LogEntry {
            kind: "entry",
            host: host.to_string(),
            unit: e.unit.clone(),
            timestamp: format_timestamp(e.realtime_us, true),
            timestamp_us: e.realtime_us,
            priority: e.priority,
            pid: e.pid,
            message: e.message.json_text(),
            message_bytes: match &e.message {
                Message::Bytes(b) => Some(b.clone()),
                _ => None,
            },
            cursor: e.cursor.clone(),
            host_column,
            display: message_display(&e.message),
        }
    }
}

impl Human for LogEntry {
    fn human(&self, s: &Style) -> Option<String> {
        let mut line = String::new();
        if let Some(w) = self.host_column {
            line.push_str(&s.bold(&format!("{:<w$}", sanitize(&self.host))));
            line.push(' ');
        }
        line.push_str(&s.dim(&format_timestamp(self.timestamp_us, false)));
        line.push(' ');
        line.push_str(&sanitize(&self.unit));
        if let Some(pid) = self.pid {
            line.push_str(&format!("[{pid}]"));
        }
        line.push_str(": ");
        let msg = match self.priority {
            0..=3 => s.red(&self.display),
            4 => s.yellow(&self.display),
            _ => self.display.clone(),
        };
        line.push_str(&msg);
        Some(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::systemd::journal::parse_entry;
    use serde_json::Value;

    const TEXT: &str = r#"{"__CURSOR":"s=1;i=a","__REALTIME_TIMESTAMP":"1764000000123456","PRIORITY":"3","_PID":"4242","_SYSTEMD_USER_UNIT":"app.service","SYSLOG_IDENTIFIER":"app","MESSAGE":"line 7"}"#;

    #[test]
    fn messages_are_escaped_for_a_terminal() {
        assert_eq!(
            message_display(&Message::Bytes(b"bad \xff \x1b[31m".to_vec())),
            "bad \\xff \\u{1b}[31m"
        );
        assert_eq!(message_display(&Message::Absent), "[no message]");
        assert_eq!(message_display(&Message::Text("a\x07".into())), "a\\u{7}");
    }

    #[test]
    fn formats_for_people_and_json() {
        let e = parse_entry(TEXT).unwrap();
        let plain = Style { color: false };
        let one = LogEntry::new("web1", &e, None);
        assert_eq!(
            one.human(&plain).unwrap(),
            "2025-11-24T16:00:00.123Z app.service[4242]: line 7"
        );
        let many = LogEntry::new("web1", &e, Some(6));
        assert_eq!(
            many.human(&plain).unwrap(),
            "web1   2025-11-24T16:00:00.123Z app.service[4242]: line 7"
        );
        let coloured = many.human(&Style { color: true }).unwrap();
        assert!(coloured.contains("\x1b[31mline 7\x1b[0m"), "{coloured:?}");
        let v: Value = serde_json::to_value(&one).unwrap();
        assert_eq!(v["type"], "entry");
        assert_eq!(v["host"], "web1");
        assert_eq!(v["unit"], "app.service");
        assert_eq!(v["timestamp"], "2025-11-24T16:00:00.123456Z");
        assert_eq!(v["priority"], 3);
        assert_eq!(v["pid"], 4242);
        assert_eq!(v["message"], "line 7");
        assert_eq!(v["cursor"], "s=1;i=a");
        assert!(v.get("message_bytes").is_none());
        assert!(v.get("host_column").is_none());
    }

    #[test]
    fn hostile_messages_are_escaped_for_people() {
        let j = r#"{"__CURSOR":"c","__REALTIME_TIMESTAMP":"1","MESSAGE":[27,93,50,59,112,119,110,7,255,10,120],"_SYSTEMD_USER_UNIT":"a\u001b[2J.service"}"#;
        let e = parse_entry(j).unwrap();
        let line = LogEntry::new("h", &e, None)
            .human(&Style { color: false })
            .unwrap();
        assert!(
            !line.contains('\x1b') && !line.contains('\x07') && !line.contains('\n'),
            "{line:?}"
        );
        assert!(line.ends_with(": \\u{1b}]2;pwn\\u{7}\\xff\\nx"), "{line:?}");
        let v: Value = serde_json::to_value(LogEntry::new("h", &e, None)).unwrap();
        assert_eq!(v["message_bytes"][8], 255);
    }
}
