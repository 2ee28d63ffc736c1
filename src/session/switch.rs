//! Blue/green (`[services.NAME.switch]`): the deploy's `switch` step on one host (see
//! `crate::systemd::switch` for the layout and the commands).

use crate::error::Result;
use crate::systemd::switch::{self, Colour};

use super::ServiceSession;

impl ServiceSession<'_> {
    /// Blue/green, a deploy's `switch` step: once the new colour `to` (running `release`)
    /// accepts connections, move the front and `current` to it; then let `from` drain and stop
    /// it. Some(reason) when the front could not be moved (it stays on `from`).
    pub async fn switch_over(
        &self,
        release: &str,
        from: Option<Colour>,
        to: Colour,
    ) -> Result<Option<String>> {
        let sw = self.service.switch.as_ref().expect("planned with a switch");
        let name = &self.service.name;
        self.phase("switch", format!("moving the front to {}", to.name()));
        let cmd = switch::switch_command(name, sw, to, release, self.service.start_timeout);
        let out = self.conn.exec(&cmd).await?;
        if !out.success() || !out.stdout_str().lines().any(|l| l == "switched") {
            return Ok(Some(format!(
                "the front was not moved to {} ({}): {}",
                to.name(),
                out.status_text(),
                out.stderr_str().trim()
            )));
        }
        let Some(from) = from else { return Ok(None) };
        self.phase(
            "drain",
            format!(
                "{} is live; {} drains for {}",
                to.name(),
                from.name(),
                humantime::format_duration(sw.drain)
            ),
        );
        tokio::time::sleep(sw.drain).await;
        let out = self.conn.exec(&switch::stop_command(name, from)).await?;
        if !out.success() {
            self.warn(&format!(
                "cannot stop the drained colour {}: {}",
                switch::instance(name, from),
                out.stderr_str().trim()
            ));
        }
        Ok(None)
    }
}
