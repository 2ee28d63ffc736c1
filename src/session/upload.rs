//! Sending a release's files to the host (see [`crate::transport::sftp`]): several files in
//! flight at once, each as it is, gzip-compressed, or as a delta from the host's current copy
//! ([`crate::plan::encoding`], [`crate::transport::delta`]). A file sent in another form lands
//! in the staging directory's meta directory, and the seal rebuilds it in place and checks its
//! SHA-256 there.

use std::time::Instant;

use crate::error::{Error, Result};
use crate::plan::encoding::{self, Compress, Encoding};
use crate::plan::resume::PartialFile;
use crate::plan::{FilePlan, LocalRelease, Plan, RemoteState, Transfer};
use crate::prepare::blobs;
use crate::prepare::local::{Deferred, Local};
use crate::release;
use crate::report::deploy::{PhaseEvent, human_bytes};
use crate::session::bundle::{BUNDLE_FILE, BUNDLE_MIN};
use crate::session::{SMALL_FILE, SMALL_IN_FLIGHT, ServiceSession, UPLOADS_IN_FLIGHT};
use crate::transport::bundle::Packed;
use crate::transport::sftp::{Sent, Sftp};
use crate::transport::{delta, gzip};

/// What an upload did: the (index, size, hash) it learned of files whose hashes the plan
/// waited for, and the files sent in another form, which the seal rebuilds.
#[derive(Debug, Default)]
pub struct Uploaded {
    pub learned: Vec<(usize, u64, String)>,
    pub incoming: Vec<Incoming>,
    /// Bytes not sent again: what an interrupted upload had sent of files resumed.
    pub resumed: u64,
}

/// What the staging directory holds once the upload is done, which the seal completes.
#[derive(Debug, Default)]
pub struct Staged {
    /// The upload wrote the manifest and meta files (it learned no hash).
    pub meta_written: bool,
    /// The files sent in another form than their bytes.
    pub incoming: Vec<Incoming>,
}

/// A file sent in another form, relative to the staging directory (in its meta directory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    Gzip {
        sent_as: String,
        dest: String,
    },
    Delta {
        ops: String,
        literals: String,
        dest: String,
    },
}

impl Incoming {
    fn gzip(index: usize, dest: &str) -> Incoming {
        Incoming::Gzip {
            sent_as: format!("{}/incoming-{index}.gz", release::META_DIR),
            dest: dest.to_string(),
        }
    }

    fn delta(index: usize, dest: &str) -> Incoming {
        Incoming::Delta {
            ops: format!("{}/incoming-{index}.ops", release::META_DIR),
            literals: format!("{}/incoming-{index}.lit.gz", release::META_DIR),
            dest: dest.to_string(),
        }
    }

    pub fn dest(&self) -> &str {
        match self {
            Incoming::Gzip { dest, .. } | Incoming::Delta { dest, .. } => dest,
        }
    }

    /// The seal's command for it, given the file's SHA-256.
    pub fn decode(&self, sha256: &str) -> release::Decode {
        match self.clone() {
            Incoming::Gzip { sent_as, dest } => release::Decode::Gunzip {
                from: sent_as,
                to: dest,
                sha256: sha256.to_string(),
            },
            Incoming::Delta {
                ops,
                literals,
                dest,
            } => release::Decode::Patch {
                ops,
                literals,
                to: dest,
                sha256: sha256.to_string(),
            },
        }
    }
}

/// A delta is sent when its literals are at most this fraction of the file (else the whole
/// file, compressed, costs about the same and needs no old copy).
const DELTA_AT_MOST: f64 = 0.75;

/// What one file's send did.
struct FileSent {
    learned: Option<(usize, u64, String)>,
    incoming: Option<Incoming>,
    wire: u64,
    resumed: u64,
}

impl ServiceSession<'_> {
    /// Send the files that are not on the host, and the release's meta files (unit files, env,
    /// manifest) at the same time. With `deferred` files (whose hashes the plan waited for
    /// not), the meta files wait for the seal, which knows the release's id: returns the
    /// (index, size, hash) the upload learned of each. For a distant host with `gzip` (from
    /// the probe, `remote`) files are compressed, or sent as a delta from the current copy.
    /// `resume`: the files an interrupted upload left in the staging directory, which are
    /// sent from where they stop when they are the start of the local file.
    #[allow(clippy::too_many_arguments)]
    pub async fn upload(
        &self,
        plan: &Plan,
        local: &LocalRelease,
        sftp: &Sftp,
        deferred: Vec<Deferred>,
        prepared: &Local,
        remote: &RemoteState,
        resume: &[PartialFile],
    ) -> Result<Uploaded> {
        let files = (sftp, deferred, prepared, remote, resume);
        let sent = async {
            if files.1.is_empty() {
                let (files, meta) = tokio::join!(
                    self.send_files(plan, files),
                    self.write_meta(plan, local, sftp)
                );
                files.and_then(|uploaded| meta.map(|()| uploaded))
            } else {
                self.send_files(plan, files).await
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
        (sftp, deferred, prepared, remote, resume): (
            &Sftp,
            Vec<Deferred>,
            &Local,
            &RemoteState,
            &[PartialFile],
        ),
    ) -> Result<Uploaded> {
        let total = plan.upload_bytes();
        // Measured only when it decides something: `auto`, a host with gzip, a file big enough.
        let decides = self.host.compress == Compress::Auto
            && remote.gzip
            && plan.files.iter().any(|f| {
                f.transfer == Transfer::Upload
                    && f.content.is_none()
                    && f.size >= encoding::MIN_SIZE
            });
        let rtt = match decides {
            true => self.conn.round_trip(encoding::WAN_RTT).await,
            false => self.conn.round_trip_so_far(),
        };
        let uploads: Vec<_> = plan
            .files
            .iter()
            .enumerate()
            .filter(|(_, f)| f.transfer == Transfer::Upload)
            .map(|(i, f)| {
                let how = match f.content {
                    // A rendered template, in memory (and small).
                    Some(_) => Encoding::Plain,
                    None => encoding::choose(self.host.compress, f.size, rtt, remote.gzip),
                };
                (i, f, how)
            })
            .collect();
        let reused = plan.files.len() - uploads.len();
        let gzipped = uploads.iter().filter(|u| u.2 == Encoding::Gzip).count();
        let (bundled, uploads) = bundled(uploads, remote, resume);
        let sending = uploads.len() + bundled.len();
        self.phase(
            "upload",
            uploading(sending, total, reused, gzipped, bundled.len()),
        );
        let mut deferred: std::collections::BTreeMap<String, Deferred> =
            deferred.into_iter().map(|d| (d.dest.clone(), d)).collect();
        let bundled_deferred: Vec<Option<Deferred>> =
            bundled.iter().map(|f| deferred.remove(&f.dest)).collect();
        let bar = &self.reporter.bytes_bar(&self.host.name, total);
        let started = Instant::now();
        let stream = self.send_stream(plan, &bundled, bundled_deferred, prepared, remote, bar);
        // Several files in flight at once: the round trips of one file's open, fsync, close,
        // chmod and rename overlap with the others' (a release of many small files on a distant
        // host), and small files do not wait behind a large one.
        // A large file takes the slots of several small ones: at most UPLOADS_IN_FLIGHT large
        // files, SMALL_IN_FLIGHT small ones, at once.
        let slots = &tokio::sync::Semaphore::new(SMALL_IN_FLIGHT);
        let large = (SMALL_IN_FLIGHT / UPLOADS_IN_FLIGHT) as u32;
        let resume: std::collections::HashMap<&str, &PartialFile> =
            resume.iter().map(|p| (p.dest.as_str(), p)).collect();
        let sends = uploads.into_iter().map(|(i, f, how)| {
            let deferred = deferred.remove(&f.dest);
            let old = remote.current_files.get(&f.dest).cloned();
            let partial = resume.get(f.dest.as_str()).copied();
            let weight = if f.size < SMALL_FILE { 1 } else { large };
            async move {
                let _slot = slots
                    .acquire_many(weight)
                    .await
                    .expect("the semaphore is never closed");
                bar.set_message(f.dest.clone());
                let file = (i, f, how, partial);
                self.send_file(plan, sftp, prepared, file, deferred, old, bar)
                    .await
            }
        });
        let mut uploaded = Uploaded::default();
        let (each, stream) = tokio::join!(futures::future::try_join_all(sends), stream);
        let (streamed, mut wire) = stream?;
        for sent in each?.into_iter().chain(streamed) {
            uploaded.learned.extend(sent.learned);
            uploaded.incoming.extend(sent.incoming);
            uploaded.resumed += sent.resumed;
            wire += sent.wire;
        }
        bar.finish_and_clear();
        self.uploaded_phase(total, wire, started.elapsed().as_secs_f64(), &uploaded);
        Ok(uploaded)
    }

    /// [`ServiceSession::send_bundle`] of `bundled` (nothing when empty), each file checked
    /// as [`bundled_file`] says: what was sent of each, and the bytes of the stream.
    async fn send_stream(
        &self,
        plan: &Plan,
        bundled: &[&FilePlan],
        deferred: Vec<Option<Deferred>>,
        prepared: &Local,
        remote: &RemoteState,
        bar: &indicatif::ProgressBar,
    ) -> Result<(Vec<FileSent>, u64)> {
        if bundled.is_empty() {
            return Ok((Vec::new(), 0));
        }
        let bar = bar.clone();
        let (packed, wire) = self
            .send_bundle(plan, bundled, remote.gzip, move |n| bar.inc(n))
            .await?;
        let sent = bundled
            .iter()
            .zip(deferred)
            .zip(packed)
            .map(|((f, d), p)| bundled_file(prepared, f, d, p))
            .collect::<Result<Vec<FileSent>>>()?;
        Ok((sent, wire))
    }

    /// Send file `i` of the plan, `how` it goes (from where `partial`, what an interrupted
    /// upload left, stops, when that is the start of the file and it goes as it is); `old`:
    /// the SHA-256 of the current release's copy on the host.
    #[allow(clippy::too_many_arguments)]
    async fn send_file(
        &self,
        plan: &Plan,
        sftp: &Sftp,
        prepared: &Local,
        (i, f, how, partial): (usize, &FilePlan, Encoding, Option<&PartialFile>),
        deferred: Option<Deferred>,
        old: Option<String>,
        bar: &indicatif::ProgressBar,
    ) -> Result<FileSent> {
        let staging = self.paths.staging(&plan.staging);
        if let Some(content) = &f.content {
            sftp.write(&format!("{staging}/{}", f.dest), content)
                .await?;
            bar.inc(content.len() as u64);
            return Ok(FileSent {
                learned: None,
                incoming: None,
                wire: content.len() as u64,
                resumed: 0,
            });
        }
        let (index, resume) = match deferred {
            Some(d) => (Some(d.index), d.resume),
            None => (None, None),
        };
        let mut resumed = resume.is_some();
        let progress = |n| bar.inc(n);
        let old =
            old.filter(|sha| how == Encoding::Gzip && f.size <= blobs::MAX_FILE && blobs::has(sha));
        let delta = match old {
            Some(old) => self.send_delta(sftp, &staging, i, f, &old).await?,
            None => None,
        };
        let (sent, incoming) = match (how, delta) {
            (_, Some((sent, incoming))) => {
                bar.inc(sent.size);
                (sent, Some(incoming))
            }
            (Encoding::Gzip, None) => {
                let incoming = Incoming::gzip(i, &f.dest);
                let Incoming::Gzip { sent_as, .. } = &incoming else {
                    unreachable!("made as gzip")
                };
                let to = format!("{staging}/{sent_as}");
                let sent = sftp.upload_gzip(&f.source, &to, resume, progress).await?;
                (sent, Some(incoming))
            }
            (Encoding::Plain, None) if partial.is_none() && f.size < SMALL_FILE => {
                // Read whole in one go; hashed afresh (a background hash begun is not needed).
                let to = format!("{staging}/{}", f.dest);
                match sftp.upload_small(&f.source, &to, SMALL_FILE).await? {
                    Some(sent) => {
                        resumed = false;
                        bar.inc(sent.size);
                        (sent, None)
                    }
                    None => {
                        let sent = sftp.upload(&f.source, &to, resume, None, progress).await?;
                        (sent, None)
                    }
                }
            }
            (Encoding::Plain, None) => {
                let to = format!("{staging}/{}", f.dest);
                let partial = partial.map(|p| (p.size, p.sha256.clone()));
                let sent = sftp
                    .upload(&f.source, &to, resume, partial, progress)
                    .await?;
                (sent, None)
            }
        };
        if how == Encoding::Gzip && sent.size <= blobs::MAX_FILE {
            keep(&f.source, &sent.sha256).await;
        }
        let (wire, kept) = (sent.wire, sent.resumed);
        let learned = match index {
            // Its hash is what was sent (and what other hosts were sent).
            Some(i) => {
                Some(prepared.learned(i, resumed, sent.size, sent.sha256, sent.after.as_ref())?)
            }
            // The release's manifest (and the stat record the next deploy trusts) says the
            // planned hash: it must be what was sent.
            None if sent.sha256 != f.sha256 => {
                return Err(crate::prepare::local::changed(&f.source));
            }
            None => None,
        };
        Ok(FileSent {
            learned: learned
                .map(|(size, sha)| (index.expect("learned of a deferred file"), size, sha)),
            incoming,
            wire,
            resumed: kept,
        })
    }

    /// Send `f` as a delta from the cached copy whose SHA-256 is `old` (what the host's
    /// current release has at the same dest), if the delta is worth it.
    async fn send_delta(
        &self,
        sftp: &Sftp,
        staging: &str,
        i: usize,
        f: &FilePlan,
        old: &str,
    ) -> Result<Option<(Sent, Incoming)>> {
        let cannot =
            |e: std::io::Error| Error::Local(format!("cannot read {}: {e}", f.source.display()));
        let new = tokio::fs::read(&f.source).await.map_err(cannot)?;
        let after = tokio::fs::metadata(&f.source).await.ok();
        let old = old.to_string();
        let made = tokio::task::spawn_blocking(move || {
            let sha256 = crate::digest::sha256_hex(&new);
            let delta = blobs::get(&old).map(|old| delta::diff(&old, &new));
            let delta =
                delta.filter(|d| (d.literals.len() as f64) <= new.len() as f64 * DELTA_AT_MOST);
            let packed = delta.map(|d| {
                let literals = gzip::members(&d.literals);
                let literals = if d.literals.is_empty() {
                    gzip::member(&[], 6).0
                } else {
                    literals
                };
                (d.ops_text(), literals)
            });
            (new.len() as u64, sha256, packed)
        })
        .await
        .expect("the delta does not panic");
        let (size, sha256, Some((ops, literals))) = made else {
            return Ok(None);
        };
        let incoming = Incoming::delta(i, &f.dest);
        let Incoming::Delta {
            ops: ops_at,
            literals: lit_at,
            ..
        } = &incoming
        else {
            unreachable!("a delta")
        };
        let (ops_to, lit_to) = (format!("{staging}/{ops_at}"), format!("{staging}/{lit_at}"));
        let (a, b) = tokio::join!(
            sftp.write(&ops_to, ops.as_bytes()),
            sftp.write(&lit_to, &literals)
        );
        a.and(b)?;
        let sent = Sent {
            size,
            wire: (ops.len() + literals.len()) as u64,
            resumed: 0,
            sha256,
            after,
        };
        Ok(Some((sent, incoming)))
    }

    fn uploaded_phase(&self, total: u64, wire: u64, secs: f64, uploaded: &Uploaded) {
        let mut message = format!(
            "uploaded {} in {secs:.2}s ({}/s)",
            human_bytes(total),
            human_bytes((total as f64 / secs.max(1e-6)) as u64)
        );
        let deltas = uploaded
            .incoming
            .iter()
            .filter(|i| matches!(i, Incoming::Delta { .. }))
            .count();
        match (uploaded.incoming.len(), deltas) {
            (0, _) => {}
            (_, 0) => message.push_str(&format!(", {} sent gzip-compressed", human_bytes(wire))),
            (_, d) => message.push_str(&format!(
                ", {} sent ({d} file(s) as a delta from the current release, the rest gzip-compressed)",
                human_bytes(wire)
            )),
        }
        if uploaded.resumed > 0 {
            let sent = match uploaded.incoming.is_empty() {
                true => format!(", {} sent", human_bytes(wire)),
                false => String::new(),
            };
            message.push_str(&format!(
                "{sent}, {} resumed from what an interrupted upload had sent",
                human_bytes(uploaded.resumed)
            ));
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
            resumed_bytes: Some(uploaded.resumed).filter(|n| *n > 0),
        });
        self.reporter.progress(
            Some(&self.host.name),
            &format!("{}: {message}", self.service.name),
        );
    }
}

/// The upload's first line: how many files go, how many are reused, compressed (or as a
/// delta) and in one stream.
fn uploading(sending: usize, total: u64, reused: usize, gzipped: usize, streamed: usize) -> String {
    let mut how = format!("{reused} reused");
    if gzipped > 0 {
        how.push_str(&format!(", {gzipped} compressed or as a delta"));
    }
    if streamed > 0 {
        how.push_str(&format!(", {streamed} in one tar stream"));
    }
    format!(
        "uploading {sending} file(s), {} ({how})",
        human_bytes(total)
    )
}

/// The files of `uploads` that go in one tar stream (see [`crate::transport::bundle`]), and
/// the others: small files sent as they are and not resumed, when there are at least
/// [`BUNDLE_MIN`] of them and the host has `tar`.
fn bundled<'p>(
    uploads: Vec<(usize, &'p FilePlan, Encoding)>,
    remote: &RemoteState,
    resume: &[PartialFile],
) -> (Vec<&'p FilePlan>, Vec<(usize, &'p FilePlan, Encoding)>) {
    let fits = |f: &FilePlan, how: Encoding| {
        how == Encoding::Plain
            && f.content.is_none()
            && f.size < BUNDLE_FILE
            && !resume.iter().any(|p| p.dest == f.dest)
    };
    if !remote.tar || uploads.iter().filter(|u| fits(u.1, u.2)).count() < BUNDLE_MIN {
        return (Vec::new(), uploads);
    }
    let (streamed, each): (Vec<_>, Vec<_>) = uploads.into_iter().partition(|u| fits(u.1, u.2));
    (streamed.into_iter().map(|(_, f, _)| f).collect(), each)
}

/// What was sent of file `f` in a tar stream, checked as [`ServiceSession::send_file`] checks
/// a file sent alone: a file whose hash the plan waited for learns it (unless it changed while
/// it was read), another must have the planned hash.
fn bundled_file(
    prepared: &Local,
    f: &FilePlan,
    deferred: Option<Deferred>,
    p: Packed,
) -> Result<FileSent> {
    let learned = match deferred {
        Some(d) => {
            let (size, sha) =
                prepared.learned(d.index, false, p.size, p.sha256, p.after.as_ref())?;
            Some((d.index, size, sha))
        }
        None if p.sha256 != f.sha256 => return Err(crate::prepare::local::changed(&f.source)),
        None => None,
    };
    Ok(FileSent {
        learned,
        incoming: None,
        wire: 0,
        resumed: 0,
    })
}

/// Keep the file just sent in the blob cache, if it still hashes to what was sent (the next
/// deploy sends its changes as a delta from it).
async fn keep(source: &std::path::Path, sha256: &str) {
    if blobs::has(sha256) {
        return;
    }
    let (source, sha256) = (source.to_path_buf(), sha256.to_string());
    let _ = tokio::task::spawn_blocking(move || {
        if let Ok(bytes) = std::fs::read(&source) {
            let now = crate::digest::sha256_hex(&bytes);
            if now == sha256 {
                blobs::put(&sha256, &bytes);
            }
        }
    })
    .await;
}
