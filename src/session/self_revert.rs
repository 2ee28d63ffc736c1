//! The self-revert on the host: the transient timer armed before a switch that goes back to
//! the previous release unless the deploy confirms in time, its disarming and cancelling.

use crate::error::{Error, Result};
use crate::plan::{Activation, revert};
use crate::release::{Action, HistoryRecord, Manifest, Outcome};
use crate::session::ServiceSession;
use crate::systemd::switch::Colour;

impl ServiceSession<'_> {
    /// The command arming a transient timer that goes back to `to` unless disarmed within
    /// confirm_timeout (see [`revert::arm_command`]).
    pub fn revert_arming(
        &self,
        new: &Manifest,
        to: &Manifest,
        by: &str,
        back: Option<Colour>,
    ) -> String {
        let activation = Activation::back_to(to, Some(new), back);
        let record = HistoryRecord {
            time: revert::TIME.into(),
            action: Action::Revert,
            release: to.id.clone(),
            previous: Some(new.id.clone()),
            outcome: Outcome::Other(revert::OUTCOME.into()),
            by: by.to_string(),
            git_commit: to.git_commit.clone(),
            reason: Some(format!(
                "deploy of {} was not confirmed within confirm_timeout ({}); deadline {} (host clock), reverted at the record's time",
                new.id,
                humantime::format_duration(self.service.confirm_timeout),
                revert::DEADLINE,
            )),
        };
        let script = revert::script(&self.paths, &new.id, &activation, &record);
        revert::arm_command(
            &self.paths,
            &self.service.name,
            &new.id,
            self.service.confirm_timeout,
            &script,
        )
    }

    /// The error of an arming command that did not say [`revert::ARMED`].
    pub(super) fn arming_failed(&self, out: &crate::transport::ssh::Output) -> Error {
        Error::Command {
            host: self.host.name.clone(),
            command: "systemd-run (arming the self-revert timer)".into(),
            status: out.status_text(),
            stderr: out.stderr_str(),
        }
    }

    /// Arm the self-revert (see [`ServiceSession::revert_arming`]).
    pub async fn arm_revert(
        &self,
        new: &Manifest,
        to: &Manifest,
        by: &str,
        back: Option<Colour>,
    ) -> Result<()> {
        let out = self
            .conn
            .exec(&self.revert_arming(new, to, by, back))
            .await?;
        if out.stdout_str().lines().any(|l| l == revert::ARMED) {
            Ok(())
        } else {
            Err(self.arming_failed(&out))
        }
    }

    /// Disarm the revert timer; false if it already fired (the host reverted by itself).
    pub async fn disarm_revert(&self, release_id: &str) -> Result<bool> {
        let out = self.conn.exec(&revert::disarm_command(&self.paths)).await?;
        Ok(out.stdout_str().trim() == format!("releases/{release_id}"))
    }

    /// Confirm a deploy: disarm the revert timer (when `armed`) and, if `current` is still
    /// `release_id` (the timer had not fired), append `record` to the history and delete the
    /// old releases `prune`, in one command. False if the host had already reverted by itself
    /// (nothing recorded or deleted then).
    pub async fn confirm(
        &self,
        release_id: &str,
        armed: bool,
        record: &HistoryRecord,
        prune: &[String],
    ) -> Result<bool> {
        let line = self.history_line(record);
        let pause = crate::fault::confirm_pause();
        let cmd = revert::confirm_command(&self.paths, release_id, armed, &line, prune, pause);
        let out = self.conn.exec(&cmd).await?;
        let stdout = out.stdout_str();
        let mut lines = stdout.lines();
        let confirmed = lines.next().map(str::trim) == Some(&format!("releases/{release_id}"));
        let said = |mark: &str| stdout.lines().any(|l| l == mark);
        if !out.success() || said(revert::NOT_RECORDED) {
            self.warn(&format!(
                "cannot record the history: {}",
                out.stderr_str().trim()
            ));
        }
        if confirmed && !prune.is_empty() {
            if said(revert::PRUNED) {
                self.phase("prune", format!("removed {} old release(s)", prune.len()));
            } else {
                self.warn(&format!(
                    "pruning old releases failed (the next deploy tries again): {}",
                    out.stderr_str().trim()
                ));
            }
        }
        Ok(confirmed)
    }

    /// Stop a pending self-revert (an explicit rollback takes over from it, or it was left
    /// for a release that is no longer current).
    pub async fn cancel_revert(&self) -> Result<()> {
        self.conn
            .run(&revert::cancel_command(&self.paths))
            .await
            .map(|_| ())
    }
}
