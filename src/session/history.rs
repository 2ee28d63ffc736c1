//! The service's history on the host: the lines a session appends (stamped with the host's
//! time), the pending line of a rollback under way, and the replacement of a provisional one.

use super::ServiceSession;
use crate::error::Result;
use crate::plan::{self, RemoteState};
use crate::release::HistoryRecord;
use crate::shell::quote;

impl ServiceSession<'_> {
    /// `record` as a history line, its time the host's (when the host's clock was read; a
    /// time the host's script fills in is left as it is).
    pub fn history_line(&self, record: &HistoryRecord) -> String {
        let offset = *self.clock_offset.lock().unwrap();
        match offset {
            Some(offset) if record.time != plan::revert::TIME => {
                let st = RemoteState {
                    clock_offset: Some(offset),
                    ..RemoteState::default()
                };
                let time = st.host_time(crate::fault::now());
                let stamped = HistoryRecord {
                    time: humantime::format_rfc3339_seconds(time).to_string(),
                    ..record.clone()
                };
                serde_json::to_string(&stamped).expect("history serialises")
            }
            _ => serde_json::to_string(record).expect("history serialises"),
        }
    }

    /// Append a record to the service's history on the host (a warning when it fails: the
    /// deploy itself is done).
    pub async fn record(&self, record: &HistoryRecord) {
        let line = self.history_line(record);
        // A pending record (see [`ServiceSession::record_pending`]) is replaced by this one.
        let cmd = format!(
            "cd \"$HOME\" && printf '%s\\n' {} >> {} && rm -f {}",
            quote(&line),
            quote(&self.paths.history()),
            quote(&self.paths.pending_record())
        );
        if let Err(e) = self.conn.run(&cmd).await {
            self.warn(&format!("cannot record the history: {e}"));
        }
    }

    /// Leave `record` on the host as the history line of what this session is about to do,
    /// for the next contact to append should this session be cut off before its own
    /// [`ServiceSession::record`] (see [`crate::paths::Paths::pending_record`]).
    pub async fn record_pending(&self, record: &HistoryRecord) -> Result<()> {
        let line = self.history_line(record);
        let cmd = format!(
            "cd \"$HOME\" && printf '%s\\n' {} > {}",
            quote(&line),
            quote(&self.paths.pending_record())
        );
        self.conn.run(&cmd).await.map(|_| ())
    }

    /// Replace the last history record (a provisional one this session wrote under the lock)
    /// by `record`.
    pub async fn replace_last_record(&self, record: &HistoryRecord) {
        let line = self.history_line(record);
        let cmd = format!(
            "cd \"$HOME\" && f={} && {{ head -n -1 \"$f\"; printf '%s\\n' {}; }} > \"$f.tmp\" && mv -f \"$f.tmp\" \"$f\"",
            quote(&self.paths.history()),
            quote(&line),
        );
        if let Err(e) = self.conn.run(&cmd).await {
            self.warn(&format!("cannot record the history: {e}"));
        }
    }
}
