//! Sealing a staged release: its meta files, the files sent compressed decompressed into
//! place (their SHA-256 checked on the host), modes, fsync, the stat record and the rename
//! into `releases/ID`, in one command; the unit files' check and the self-revert's arming
//! ride along.

use crate::error::{Error, Result};
use crate::plan::{LocalRelease, Plan, revert};
use crate::release;
use crate::session::ServiceSession;
use crate::session::upload::{Incoming, Staged};
use crate::transport::sftp::Sftp;

impl ServiceSession<'_> {
    /// Seal the release: write its meta files unless the upload did (`staged`), decompress the
    /// files sent compressed, then
    /// set the files' modes, fsync them, write the stat record and rename the staging directory
    /// into `releases/ID`, in one command: from here on the release is complete on the host.
    /// The same command then checks the unit files `check` (see [`crate::session::unit_check`]): its
    /// output is returned for [`crate::session::unit_check::evaluate`].
    pub async fn seal(
        &self,
        plan: &Plan,
        local: &LocalRelease,
        sftp: Sftp,
        staged: &Staged,
        check: &[String],
        arm: Option<&str>,
    ) -> Result<crate::transport::ssh::Output> {
        let sealed = async {
            if !staged.meta_written {
                self.write_meta(plan, local, &sftp).await?;
            }
            // Closed before the seal's command: a server with a low MaxSessions has the
            // session free for it.
            sftp.close().await;
            self.seal_staging(plan, local, &staged.incoming, check, arm)
                .await
        };
        let out = match sealed.await {
            Ok(out) => out,
            Err(e) => return Err(self.abandon_staging(plan, e).await),
        };
        // Sealed: nothing to abandon. Not armed: the deploy stops before the switch.
        if arm.is_some() && !out.stdout_str().lines().any(|l| l == revert::ARMED) {
            return Err(self.arming_failed(&out));
        }
        Ok(out)
    }

    /// The meta files of a release, relative to its directory, with their modes and content.
    pub(super) fn meta_files<'l>(
        plan: &Plan,
        local: &'l LocalRelease,
    ) -> Vec<(String, u32, std::borrow::Cow<'l, [u8]>)> {
        let meta = release::META_DIR;
        let mut files: Vec<(String, u32, std::borrow::Cow<[u8]>)> = local
            .units
            .iter()
            .map(|u| {
                (
                    format!("{meta}/units/{}", u.name),
                    0o644,
                    (&u.content[..]).into(),
                )
            })
            .collect();
        if let Some(env) = &local.env {
            files.push((format!("{meta}/env"), 0o600, env.content().into()));
        }
        let manifest = serde_json::to_vec(&plan.manifest).expect("manifest serialises");
        files.push((format!("{meta}/manifest.json"), 0o600, manifest.into()));
        files
    }

    /// Write the meta files into the staging directory, all at once: the SFTP requests of the
    /// files interleave, so the round trips of each file's open and close overlap.
    pub(super) async fn write_meta(
        &self,
        plan: &Plan,
        local: &LocalRelease,
        sftp: &Sftp,
    ) -> Result<()> {
        let staging = self.paths.staging(&plan.staging);
        let files: Vec<(String, std::borrow::Cow<[u8]>)> = Self::meta_files(plan, local)
            .into_iter()
            .map(|(path, _, content)| (format!("{staging}/{path}"), content))
            .collect();
        futures::future::try_join_all(
            files
                .iter()
                .map(|(path, content)| sftp.write(path, content)),
        )
        .await?;
        Ok(())
    }

    async fn seal_staging(
        &self,
        plan: &Plan,
        local: &LocalRelease,
        incoming: &[Incoming],
        check: &[String],
        arm: Option<&str>,
    ) -> Result<crate::transport::ssh::Output> {
        // The hashes are the plan's: learned by the upload when the plan waited for them.
        let decode: Vec<release::Decode> = incoming
            .iter()
            .filter_map(|i| {
                let f = plan.files.iter().find(|f| f.dest == i.dest())?;
                Some(i.decode(&f.sha256))
            })
            .collect();
        // A reused file was given its mode by the reuse step.
        let files: Vec<release::SealFile> = plan
            .files
            .iter()
            .map(|f| release::SealFile {
                dest: f.dest.clone(),
                mode: f.mode,
                has_mode: f.transfer == crate::plan::Transfer::Reuse,
            })
            .collect();
        let meta: Vec<(String, u32)> = Self::meta_files(plan, local)
            .into_iter()
            .map(|(p, m, _)| (p, m))
            .collect();
        let hashes: Vec<&str> = plan.files.iter().map(|f| f.sha256.as_str()).collect();
        let mut cmd = release::seal_command(
            &self.paths,
            &plan.staging,
            &plan.release,
            &files,
            &meta,
            &decode,
        );
        if !check.is_empty() {
            self.reporter.progress(
                Some(&self.host.name),
                &format!(
                    "{}: sealing {} and checking {} unit file(s)",
                    self.service.name,
                    plan.release,
                    check.len()
                ),
            );
            // Whatever the check finds, the release stays sealed.
            cmd.push_str("set +e\n");
            cmd.push_str(&crate::session::unit_check::script(
                &self.service.name,
                &self.paths.release(&plan.release),
                check,
            ));
            cmd.push('\n');
        }
        if let Some(arm) = arm {
            cmd.push_str(arm);
        }
        let out = self
            .conn
            .exec_streaming(&cmd, Some(&release::seal_input(&hashes)), |_, _| {})
            .await?;
        if out.stdout_str().lines().any(|l| l == release::SEALED) {
            Ok(out)
        } else {
            Err(Error::Command {
                host: self.host.name.clone(),
                command: format!(
                    "sealing release {} (modes, fsync, stat record, rename)",
                    plan.release
                ),
                status: out.status_text(),
                stderr: out.stderr_str(),
            })
        }
    }
}
