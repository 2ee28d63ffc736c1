//! `ferry units SERVICE`: the unit files a deploy installs, as text to read or to eject into
//! files, or one `unit-file` JSON object each.

use serde::Serialize;

use crate::report::{Human, Style, sanitize};

/// One unit file.
#[derive(Debug, Serialize)]
pub struct UnitFile {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub service: String,
    pub name: String,
    /// The local file, or `generated from [services.NAME.run]`.
    pub from: String,
    pub content: String,
}

impl Human for UnitFile {
    fn human(&self, s: &Style) -> Option<String> {
        let mut text = s.dim(&format!(
            "# ---- {} ({}): save as {}",
            self.name,
            sanitize(&self.from),
            self.name
        ));
        text.push('\n');
        text.push_str(&sanitize_unit(&self.content));
        Some(text.trim_end().to_string() + "\n")
    }
}

/// The file's text, with control characters (but newlines and tabs) escaped.
fn sanitize_unit(text: &str) -> String {
    text.lines().map(sanitize).collect::<Vec<_>>().join("\n")
}
