//! Staging a release on the host: the staging directory and its directories, the files
//! reused from the current release, and what an interrupted or failed upload leaves (removed
//! at once, or at the next deploy).

use crate::error::{Error, Result};
use crate::plan::resume::PartialFile;
use crate::plan::{Plan, Transfer};
use crate::release;
use crate::report::deploy::human_bytes;
use crate::session::ServiceSession;
use crate::shell::quote;
use crate::transport::sftp::Sftp;

/// Below this many free bytes after a failed write, the disk is full (a failed write leaves
/// at most a few KiB free).
const DISK_FULL_BELOW: u64 = 1024 * 1024;

impl ServiceSession<'_> {
    /// Remove staging directories left by interrupted deploys. With `resume` (files they hold
    /// that the upload may send from where they stop: [`crate::plan::resume::resumable`]),
    /// the same command first creates the new staging directory and its directories, as the
    /// stage step would, and moves those files into it: returns whether it did (then the
    /// stage step has nothing to create).
    pub async fn clean_staging(
        &self,
        dirs: &[String],
        plan: &Plan,
        resume: &[PartialFile],
    ) -> Result<bool> {
        let releases = quote(&self.paths.releases());
        let mut cmd = String::from("cd \"$HOME\" || exit 1\n");
        if !resume.is_empty() {
            let made: Vec<String> = self.staging_dirs(plan).iter().map(|d| quote(d)).collect();
            let staging = self.paths.staging(&plan.staging);
            cmd.push_str(&format!(
                "if mkdir -- {} 2>/dev/null; then echo made=yes\n",
                made.join(" ")
            ));
            for f in resume {
                let from = format!("{}/{}/{}", self.paths.releases(), f.dir, f.dest);
                let to = format!("{staging}/{}", f.dest);
                cmd.push_str(&format!(
                    "mv -f -- {} {} 2>/dev/null || true\n",
                    quote(&from),
                    quote(&to)
                ));
            }
            cmd.push_str(&format!("else rm -rf -- {}; fi\n", quote(&staging)));
        }
        cmd.push_str(&format!("cd {releases} && rm -rf --"));
        for d in dirs {
            cmd.push(' ');
            cmd.push_str(&quote(d));
        }
        let out = self.conn.run(&cmd).await?;
        Ok(out.lines().any(|l| l == "made=yes"))
    }

    /// A step writing the staging directory failed: remove that directory at once (a full
    /// disk must not stay full until the next deploy), and name a full disk as such. Nothing
    /// can be removed when the connection is gone: the next deploy does it then.
    pub async fn abandon_staging(&self, plan: &Plan, error: Error) -> Error {
        if matches!(error, Error::ConnectionLost { .. }) || self.conn.is_closed() {
            return error;
        }
        let staging = self.paths.staging(&plan.staging);
        let releases = self.paths.releases();
        // Free space first: removing the directory frees what it took.
        let cmd = format!(
            "cd \"$HOME\" || exit 1; echo \"free=$(df -Pk -- {r} 2>/dev/null | awk 'NR==2 {{print $4}}')\"; rm -rf -- {s}",
            r = quote(&releases),
            s = quote(&staging),
        );
        let out = self.conn.exec(&cmd).await;
        let removed = matches!(&out, Ok(o) if o.success());
        let free = out.ok().and_then(|o| {
            o.stdout_str()
                .lines()
                .find_map(|l| l.strip_prefix("free="))
                .and_then(|k| k.trim().parse::<u64>().ok())
                .map(|k| k.saturating_mul(1024))
        });
        let note = if removed {
            format!("the staging directory ~/{staging} was removed")
        } else {
            format!(
                "the staging directory ~/{staging} could not be removed (the next deploy removes it)"
            )
        };
        let host = self.host.name.clone();
        let full = free.is_some_and(|f| f < DISK_FULL_BELOW);
        let full_says = |free: u64| {
            format!(
                "the disk of {host} is full ({} free on the filesystem of ~/{releases}): make room there and deploy again",
                human_bytes(free)
            )
        };
        match error {
            Error::Sftp { host, message } if message.contains("is full") => Error::Sftp {
                host,
                message: format!("{message}; {note}"),
            },
            e if full => {
                // A command's own words, not its script.
                let cause = match &e {
                    Error::Command { stderr, .. } if !stderr.trim().is_empty() => {
                        stderr.trim().to_string()
                    }
                    e => e.to_string(),
                };
                Error::Sftp {
                    host: host.clone(),
                    message: format!(
                        "{}; {note} (the error: {cause})",
                        full_says(free.unwrap_or(0))
                    ),
                }
            }
            Error::Sftp { host, message } => Error::Sftp {
                host,
                message: format!("{message}; {note}"),
            },
            e => {
                self.warn(&note);
                e
            }
        }
    }

    /// Create the staging directory and the directories of the release's files over `sftp`:
    /// every mkdir is sent at once (sftp-server handles requests in order, parents first), so
    /// it costs one round trip whatever the depth.
    pub async fn stage(&self, plan: &Plan, sftp: &Sftp) -> Result<()> {
        match self.stage_dirs(plan, sftp).await {
            Ok(()) => Ok(()),
            Err(e) => Err(self.abandon_staging(plan, e).await),
        }
    }

    async fn stage_dirs(&self, plan: &Plan, sftp: &Sftp) -> Result<()> {
        let dirs = self.staging_dirs(plan);
        // `releases` exists unless this is the service's first release (the lock made the
        // service's directory): its mkdir may fail, the others may not.
        let releases = self.paths.releases();
        let (first, rest) = tokio::join!(
            sftp.mkdir(&releases),
            futures::future::try_join_all(dirs.iter().map(|d| sftp.mkdir(d)))
        );
        if let Err(e) = first {
            tracing::debug!("{}: mkdir {releases}: {e}", self.host.name);
        }
        rest.map(|_| ())
    }

    /// The staging directory and the directories of the release's files, parents first.
    fn staging_dirs(&self, plan: &Plan) -> Vec<String> {
        let staging = self.paths.staging(&plan.staging);
        let mut dirs: Vec<String> = vec![
            staging.clone(),
            format!("{staging}/{}", release::META_DIR),
            format!("{staging}/{}/units", release::META_DIR),
        ];
        let mut seen: std::collections::HashSet<String> = dirs.iter().cloned().collect();
        for f in &plan.files {
            let mut at = staging.clone();
            if let Some((dir, _)) = f.dest.rsplit_once('/') {
                for part in dir.split('/') {
                    at = format!("{at}/{part}");
                    if seen.insert(at.clone()) {
                        dirs.push(at.clone());
                    }
                }
            }
        }
        dirs
    }

    /// Copy files identical to the current release's on the host.
    pub async fn reuse(&self, plan: &Plan) -> Result<()> {
        match self.copy_reused(plan).await {
            Ok(()) => Ok(()),
            Err(e) => Err(self.abandon_staging(plan, e).await),
        }
    }

    /// One `cp` for all the reused files (as many per process as `xargs` fits), then one
    /// `chmod` per mode: no argument list grows with the number of files, and no process is
    /// started per file.
    async fn copy_reused(&self, plan: &Plan) -> Result<()> {
        let reused: Vec<_> = plan
            .files
            .iter()
            .filter(|f| f.transfer == Transfer::Reuse)
            .collect();
        if reused.is_empty() {
            return Ok(());
        }
        let staging = self.paths.staging(&plan.staging);
        let mut script = format!(
            "set -e\nN=\"$HOME\"/{}\ncd \"$HOME\"/{}\n{} | xargs -0 -r cp --reflink=auto --parents -t \"$N\" --\ncd \"$N\"\n",
            quote(&staging),
            quote(&self.paths.current()),
            crate::shell::nul_list(reused.iter().map(|f| f.dest.as_str()))
        );
        let mut by_mode: std::collections::BTreeMap<u32, Vec<&str>> = Default::default();
        for f in &reused {
            by_mode.entry(f.mode).or_default().push(&f.dest);
        }
        for (mode, dests) in by_mode {
            script.push_str(&format!(
                "{} | xargs -0 -r chmod {mode:o} --\n",
                crate::shell::nul_list(dests)
            ));
        }
        self.conn.run(&script).await.map(|_| ())
    }
}
