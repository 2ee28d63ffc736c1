//! Staged releases on the host: the `staged` link `deploy --no-switch` leaves next to `current`
//! (with its `stage` history record, in the same command), and its removal once `ferry
//! promote` is done with it.

use crate::error::{Error, Result};
use crate::release::HistoryRecord;
use crate::shell::quote;

use super::ServiceSession;

impl ServiceSession<'_> {
    /// Point `staged` at release `id` (a new link renamed over the old one) and append
    /// `record` to the history, in one command.
    pub async fn mark_staged(&self, id: &str, record: &HistoryRecord) -> Result<()> {
        let line = self.history_line(record);
        let staged = quote(&self.paths.staged());
        let cmd = format!(
            "cd \"$HOME\" && ln -sfn {target} {staged}.tmp && mv -fT {staged}.tmp {staged} && printf '%s\\n' {line} >> {history}",
            target = quote(&format!("releases/{id}")),
            line = quote(&line),
            history = quote(&self.paths.history()),
        );
        let out = self.conn.exec(&cmd).await?;
        if !out.success() {
            return Err(Error::Command {
                host: self.host.name.clone(),
                command: "marking the release staged".into(),
                status: out.status_text(),
                stderr: out.stderr_str(),
            });
        }
        Ok(())
    }

    /// Remove the `staged` link when it still points to release `id` (a warning when that
    /// fails: the next promote says the host's `current` moved on).
    pub async fn unstage(&self, id: &str) {
        let cmd = format!(
            "cd \"$HOME\" && s={} && if [ \"$(readlink \"$s\")\" = {} ]; then rm -f \"$s\"; fi",
            quote(&self.paths.staged()),
            quote(&format!("releases/{id}")),
        );
        if let Err(e) = self.conn.run(&cmd).await {
            self.warn(&format!("cannot remove the `staged` link: {e}"));
        }
    }
}
