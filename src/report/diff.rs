//! The `unit-diff` event of `--dry-run`: how a unit file (rendered for the host) differs from
//! the one installed there.

use serde::Serialize;

use crate::report::{Human, Style, sanitize};

#[derive(Debug, Clone, Serialize)]
pub struct UnitDiffEvent {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub host: String,
    pub service: String,
    pub unit: String,
    /// Lines starting with `-` (installed only) or `+` (new only), in file order.
    pub diff: Vec<String>,
}

impl Human for UnitDiffEvent {
    fn human(&self, s: &Style) -> Option<String> {
        let h = s.bold(&self.host);
        let mut out = vec![format!("{h}   diff of {} (installed -> new)", self.unit)];
        for l in &self.diff {
            let line = sanitize(l);
            out.push(format!(
                "{h}     {}",
                if l.starts_with('-') {
                    s.red(&line)
                } else {
                    s.green(&line)
                }
            ));
        }
        Some(out.join("\n"))
    }
}
