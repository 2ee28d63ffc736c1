//! Sending a release's files to the host (see [`crate::transport::sftp`]): several files in
//! flight at once, each as it is or gzip-compressed for a distant host
//! ([`crate::plan::encoding`]); a compressed file lands in the staging directory's meta
//! directory and the seal decompresses it into place, checking its SHA-256 there.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use crate::error::Result;
use crate::plan::encoding::{self, Encoding};
use crate::plan::{LocalRelease, Plan, Transfer};
use crate::prepare::local::{Deferred, Local};
use crate::release;
use crate::report::deploy::{PhaseEvent, human_bytes};
use crate::session::{ServiceSession, UPLOADS_IN_FLIGHT};
use crate::transport::sftp::Sftp;

/// What an upload did: the (index, size, hash) it learned of files whose hashes the plan
/// waited for, and the files sent compressed, which the seal decompresses.
#[derive(Debug, Default)]
pub struct Uploaded {
    pub learned: Vec<(usize, u64, String)>,
    pub gzipped: Vec<Gzipped>,
}

/// What the staging directory holds once the upload is done, which the seal completes.
#[derive(Debug, Default)]
pub struct Staged {
    /// The upload wrote the manifest and meta files (it learned no hash).
    pub meta_written: bool,
    /// The files sent compressed, which the seal decompresses.
    pub gzipped: Vec<Gzipped>,
}

/// A file sent gzip-compressed: where it is in the staging directory, and where it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gzipped {
    /// Relative to the staging directory (inside its meta directory).
    pub sent_as: String,
    pub dest: String,
}

impl Gzipped {
    fn of(index: usize, dest: &str) -> Gzipped {
        Gzipped {
            sent_as: format!("{}/incoming-{index}.gz", release::META_DIR),
            dest: dest.to_string(),
        }
    }
}

impl ServiceSession<'_> {
    /// Send the files that are not on the host, and the release's meta files (unit files, env,
    /// manifest) at the same time. With `deferred` files (whose hashes the plan waited for
    /// not), the meta files wait for the seal, which knows the release's id: returns the
    /// (index, size, hash) the upload learned of each. Files are gzip-compressed for a
    /// distant host that has `gzip` (`host_gzip`, from the probe).
    pub async fn upload(
        &self,
        plan: &Plan,
        local: &LocalRelease,
        sftp: &Sftp,
        deferred: Vec<Deferred>,
        prepared: &Local,
        host_gzip: bool,
    ) -> Result<Uploaded> {
        let sent = async {
            if deferred.is_empty() {
                let (files, meta) = tokio::join!(
                    self.send_files(plan, sftp, deferred, prepared, host_gzip),
                    self.write_meta(plan, local, sftp)
                );
                files.and_then(|uploaded| meta.map(|()| uploaded))
            } else {
                self.send_files(plan, sftp, deferred, prepared, host_gzip)
                    .await
            }
        };
        match sent.await {
            Ok(uploaded) => Ok(uploaded),
            Err(e) => Err(self.abandon_staging(plan, e).await),
        }
    }

    async fn send_files(
        &self,
        plan: &Plan,
        sftp: &Sftp,
        deferred: Vec<Deferred>,
        prepared: &Local,
        host_gzip: bool,
    ) -> Result<Uploaded> {
        let staging = self.paths.staging(&plan.staging);
        let total = plan.upload_bytes();
        let uploads: Vec<_> = plan
            .files
            .iter()
            .enumerate()
            .filter(|(_, f)| f.transfer == Transfer::Upload)
            .map(|(i, f)| {
                let how = match f.content {
                    // A rendered template, in memory (and small).
                    Some(_) => Encoding::Plain,
                    None => encoding::choose(self.host.compress, f.size, self.conn.rtt, host_gzip),
                };
                (i, f, how)
            })
            .collect();
        let gzipped: Vec<Gzipped> = uploads
            .iter()
            .filter(|(_, _, how)| *how == Encoding::Gzip)
            .map(|(i, f, _)| Gzipped::of(*i, &f.dest))
            .collect();
        let reused = plan.files.len() - uploads.len();
        let compressed = match gzipped.len() {
            0 => String::new(),
            n => format!(", {n} gzip-compressed"),
        };
        self.phase(
            "upload",
            format!(
                "uploading {} file(s), {} ({reused} reused{compressed})",
                uploads.len(),
                human_bytes(total),
            ),
        );
        let mut deferred: std::collections::BTreeMap<String, Deferred> =
            deferred.into_iter().map(|d| (d.dest.clone(), d)).collect();
        let bar = self.reporter.bytes_bar(&self.host.name, total);
        let started = Instant::now();
        // Several files in flight at once: the round trips of one file's open, fsync, close,
        // chmod and rename overlap with the others' (a release of many small files on a distant
        // host), and small files do not wait behind a large one.
        let bar = &bar;
        let wire = &std::sync::atomic::AtomicU64::new(0);
        let slots = &tokio::sync::Semaphore::new(UPLOADS_IN_FLIGHT);
        let sends = uploads.into_iter().map(|(i, f, how)| {
            let to = match how {
                Encoding::Gzip => format!("{staging}/{}", Gzipped::of(i, &f.dest).sent_as),
                Encoding::Plain => format!("{staging}/{}", f.dest),
            };
            let deferred = deferred.remove(&f.dest);
            async move {
                let _slot = slots
                    .acquire()
                    .await
                    .expect("the semaphore is never closed");
                bar.set_message(f.dest.clone());
                match &f.content {
                    // A rendered template, in memory.
                    Some(content) => {
                        sftp.write(&to, content).await?;
                        bar.inc(content.len() as u64);
                        wire.fetch_add(content.len() as u64, Relaxed);
                        Ok(None)
                    }
                    None => {
                        let (index, resume) = match deferred {
                            Some(d) => (Some(d.index), d.resume),
                            None => (None, None),
                        };
                        let resumed = resume.is_some();
                        let progress = |n| bar.inc(n);
                        let sent = match how {
                            Encoding::Gzip => {
                                sftp.upload_gzip(&f.source, &to, resume, progress).await?
                            }
                            Encoding::Plain => {
                                sftp.upload(&f.source, &to, resume, progress).await?
                            }
                        };
                        wire.fetch_add(sent.wire, Relaxed);
                        match index {
                            // Its hash is what was sent (and what other hosts were sent).
                            Some(i) => {
                                let (size, sha256) = prepared.learned(
                                    i,
                                    resumed,
                                    sent.size,
                                    sent.sha256,
                                    sent.after.as_ref(),
                                )?;
                                Ok(Some((i, size, sha256)))
                            }
                            // The release's manifest (and the stat record the next deploy
                            // trusts) says the planned hash: it must be what was sent.
                            None if sent.sha256 != f.sha256 => {
                                Err(crate::prepare::local::changed(&f.source))
                            }
                            None => Ok(None),
                        }
                    }
                }
            }
        });
        let learned: Vec<(usize, u64, String)> = futures::future::try_join_all(sends)
            .await?
            .into_iter()
            .flatten()
            .collect();
        bar.finish_and_clear();
        let secs = started.elapsed().as_secs_f64();
        let wire = wire.load(Relaxed);
        let mut message = format!(
            "uploaded {} in {secs:.2}s ({}/s)",
            human_bytes(total),
            human_bytes((total as f64 / secs.max(1e-6)) as u64)
        );
        if !gzipped.is_empty() {
            message.push_str(&format!(", {} sent gzip-compressed", human_bytes(wire)));
        }
        self.reporter.emit(&PhaseEvent {
            kind: "phase",
            host: self.host.name.clone(),
            service: self.service.name.clone(),
            phase: "uploaded",
            message: message.clone(),
            bytes: Some(total),
            seconds: Some(secs),
            sent_bytes: Some(wire),
        });
        self.reporter.progress(
            Some(&self.host.name),
            &format!("{}: {message}", self.service.name),
        );
        Ok(Uploaded { learned, gzipped })
    }
}
