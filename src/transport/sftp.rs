//! Uploads over SFTP: streamed from disk (memory stays bounded whatever the file size), into a
//! release's staging directory, which nothing uses until the seal renames it into place: so a
//! file is written under its own name (mode 0600 from the first byte), and nothing waits for a
//! round trip per file beyond its open and close. The seal gives each file its mode and
//! fsyncs them all in one command (`release::seal_command`).
//!
//! Remote paths are relative to the login directory (the home directory, where OpenSSH's
//! sftp-server starts). When an upload fails, its partial file is removed at once; a full
//! disk is named as such (SFTP v3 only says "Failure"), with the space left there.

use std::path::Path;
use std::sync::Arc;

use russh_sftp::client::SftpSession;
use russh_sftp::client::error::Error as SftpError;
use russh_sftp::client::fs::File;
use russh_sftp::protocol::{FileAttributes, OpenFlags, StatusCode};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use crate::error::{Error, Result};

/// Size of each read from the local file; writes are pipelined by russh-sftp.
const CHUNK: usize = 256 * 1024;

/// gzip's own default: 3-4x faster than level 9 for a few per cent more bytes; with a worker per
/// core it outpaces a 100 Mbit/s link.
const GZIP_LEVEL: u32 = 6;

/// What [`Sftp::upload`] sent: its size, its SHA-256 (hex), and the local file's metadata once
/// it was read to the end.
#[derive(Debug)]
pub struct Sent {
    pub size: u64,
    /// Bytes written to the host: `size`, or fewer when compressed or resumed.
    pub wire: u64,
    /// Bytes not sent again: what an interrupted upload had already sent (resumed).
    pub resumed: u64,
    pub sha256: String,
    pub after: Option<std::fs::Metadata>,
}

/// Hash `src` from byte `from` up to byte `to` into `hash`; returns where it got (short of
/// `to` when the file is shorter).
async fn hash_to(
    src: &mut tokio::fs::File,
    local: &Path,
    hash: &mut ring::digest::Context,
    from: u64,
    to: u64,
) -> Result<u64> {
    let cannot = |e: std::io::Error| Error::Local(format!("cannot read {}: {e}", local.display()));
    src.seek(std::io::SeekFrom::Start(from))
        .await
        .map_err(cannot)?;
    let mut buf = vec![0u8; CHUNK];
    let mut at = from;
    while at < to {
        let want = ((to - at) as usize).min(CHUNK);
        let n = src.read(&mut buf[..want]).await.map_err(cannot)?;
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
        at += n as u64;
    }
    Ok(at)
}

/// Below this many free bytes, a write that failed without a reason failed for lack of space
/// (a failed write leaves at most the few KiB of one SFTP write free).
const FULL_BELOW: u64 = 1024 * 1024;

/// Is the SSH connection closed? (From [`crate::transport::ssh::Connection::liveness`].)
pub type Liveness = Arc<dyn Fn() -> bool + Send + Sync>;

/// An SFTP session bound to a host name for error messages.
pub struct Sftp {
    pub host: String,
    session: SftpSession,
    closed: Option<Liveness>,
    /// The connection's counters of remote operations.
    counters: Option<std::sync::Arc<crate::transport::ssh::Counters>>,
}

/// Where an upload failed.
enum Failed {
    /// On this machine (reading the source): nothing to say about the host.
    Local(Error),
    /// Writing, flushing or closing the remote file.
    Write { what: String, error: std::io::Error },
}

impl Sftp {
    pub fn new(host: &str, session: SftpSession) -> Sftp {
        Sftp {
            host: host.to_string(),
            session,
            closed: None,
            counters: None,
        }
    }

    /// An SFTP session on a new channel of `conn`, which can tell a lost connection
    /// ([`Error::ConnectionLost`]) from a failed request.
    pub async fn open(conn: &crate::transport::ssh::Connection) -> Result<Sftp> {
        let session = conn.sftp().await?;
        Ok(Sftp {
            counters: Some(conn.counters.clone()),
            ..Sftp::with_liveness(&conn.host, session, conn.liveness())
        })
    }

    /// [`Sftp::new`] that can also tell a lost connection from a failed request.
    pub fn with_liveness(host: &str, session: SftpSession, closed: Liveness) -> Sftp {
        Sftp {
            closed: Some(closed),
            ..Sftp::new(host, session)
        }
    }

    /// Count `n` SFTP requests a transfer waits for (see [`crate::transport::ssh::Counters`]).
    fn count(&self, n: u64) {
        if let Some(c) = &self.counters {
            c.sftp_requests
                .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        }
    }

    fn connection_closed(&self) -> bool {
        self.closed.as_ref().is_some_and(|f| f())
    }

    /// An error of an SFTP request: [`Error::ConnectionLost`] when the connection (or the SFTP
    /// session) is gone, else [`Error::Sftp`] with `what` and the server's reason.
    fn err(&self, what: String, e: &SftpError) -> Error {
        if self.connection_closed() || session_gone(e) {
            return self.lost(&what);
        }
        Error::Sftp {
            host: self.host.clone(),
            message: format!("{what}: {e}"),
        }
    }

    /// The same for an I/O error of a remote file.
    fn io_err(&self, what: String, e: &std::io::Error) -> Error {
        if self.connection_closed() || io_gone(e) {
            return self.lost(&what);
        }
        Error::Sftp {
            host: self.host.clone(),
            message: format!("{what}: {e}"),
        }
    }

    /// `what` is "cannot write PATH" and the like: the connection was lost at that step.
    fn lost(&self, what: &str) -> Error {
        let step = what.strip_prefix("cannot ").unwrap_or(what);
        Error::ConnectionLost {
            host: self.host.clone(),
            during: format!("transferring files over SFTP (at: {step})"),
        }
    }

    /// Upload `local` to the new file `remote` (in a staging directory: see the module doc).
    /// `on_progress` gets the number of bytes written since the last call. Returns the size and
    /// SHA-256 of the bytes sent, hashed as they are read (the file is read once): from the
    /// start, or with `resume` = (hash of the first N bytes, N), from byte N on. With
    /// `partial` = (N, SHA-256 of the N bytes `remote` holds: what an interrupted upload
    /// left), only the bytes from N on are sent when the local file's first N bytes hash the
    /// same; else `remote` is written again from the start.
    pub async fn upload(
        &self,
        local: &Path,
        remote: &str,
        resume: Option<(ring::digest::Context, u64)>,
        partial: Option<(u64, String)>,
        mut on_progress: impl FnMut(u64),
    ) -> Result<Sent> {
        let fresh = || (ring::digest::Context::new(&ring::digest::SHA256), 0);
        let (mut hash, mut hashed) = match (resume, &partial) {
            // A hash taken over from past the host's bytes cannot say what those hash to.
            (Some((_, n)), Some((at, _))) if n > *at => fresh(),
            (Some(r), _) => r,
            (None, _) => fresh(),
        };
        let mut src = tokio::fs::File::open(local)
            .await
            .map_err(|e| Error::Local(format!("cannot open {}: {e}", local.display())))?;
        let mut from = 0;
        if let Some((at, sha256)) = partial {
            hashed = hash_to(&mut src, local, &mut hash, hashed, at).await?;
            if hashed == at && crate::digest::hex(hash.clone().finish().as_ref()) == sha256 {
                from = at;
            }
        }
        let resumed = match from {
            0 => None,
            at => self.open_at(remote, at).await,
        };
        let mut dst = match resumed {
            Some(dst) => dst,
            None => {
                from = 0;
                src.seek(std::io::SeekFrom::Start(0))
                    .await
                    .map_err(|e| Error::Local(format!("cannot read {}: {e}", local.display())))?;
                self.create(remote).await?
            }
        };
        if from > 0 {
            on_progress(from);
        }
        let abort_at = crate::fault::upload_abort_at();
        let mut size = from;
        let copied = async {
            let mut buf = crate::digest::ReadBuf::new(CHUNK);
            loop {
                let n = src.read(buf.space()).await.map_err(|e| {
                    Failed::Local(Error::Local(format!(
                        "cannot read {}: {e}",
                        local.display()
                    )))
                })?;
                if n == 0 {
                    return Ok(());
                }
                let data = buf.filled(n);
                let end = size + n as u64;
                if end > hashed {
                    let from = hashed.saturating_sub(size) as usize;
                    hash.update(&data[from..n]);
                }
                size = end;
                dst.write_all(data).await.map_err(|error| Failed::Write {
                    what: format!("cannot write {remote}"),
                    error,
                })?;
                on_progress(n as u64);
                crate::fault::upload_abort(size, abort_at);
            }
        }
        .await;
        if let Err(failed) = copied {
            return Err(self.abandon(dst, remote, failed).await);
        }
        // What the file is once read: whoever continued a hash compares it with the file's
        // metadata from before.
        let after = src.metadata().await.ok();
        self.finish(dst, remote).await?;
        Ok(Sent {
            size,
            wire: size - from,
            resumed: from,
            sha256: crate::digest::hex(hash.finish().as_ref()),
            after,
        })
    }

    /// [`Sftp::upload`] of a small file (below `max` bytes), read whole on this machine in one
    /// go (one blocking read, not one per chunk), then written like [`Sftp::write`]. None when
    /// the file turned out larger: then it goes by [`Sftp::upload`].
    pub async fn upload_small(&self, local: &Path, remote: &str, max: u64) -> Result<Option<Sent>> {
        let path = local.to_path_buf();
        let read = tokio::task::spawn_blocking(move || -> std::io::Result<_> {
            use std::io::Read;
            let mut f = std::fs::File::open(&path)?;
            let mut bytes = Vec::new();
            (&mut f).take(max).read_to_end(&mut bytes)?;
            let mut more = [0u8; 1];
            if f.read(&mut more)? > 0 {
                return Ok(None);
            }
            Ok(Some((bytes, f.metadata().ok())))
        })
        .await
        .map_err(|e| Error::Local(format!("cannot read {}: {e}", local.display())))?
        .map_err(|e| Error::Local(format!("cannot read {}: {e}", local.display())))?;
        let Some((bytes, after)) = read else {
            return Ok(None);
        };
        self.write(remote, &bytes).await?;
        let size = bytes.len() as u64;
        Ok(Some(Sent {
            size,
            wire: size,
            resumed: 0,
            sha256: crate::digest::sha256_hex(&bytes),
            after,
        }))
    }

    /// Open the existing file `remote` to write it from byte `at` on (not truncated); None
    /// when it cannot be (then it is written whole).
    async fn open_at(&self, remote: &str, at: u64) -> Option<File> {
        self.count(1);
        let opened = self
            .session
            .open_with_flags(remote.to_string(), OpenFlags::WRITE)
            .await;
        let mut f = match opened {
            Ok(f) => f,
            Err(e) => {
                tracing::debug!("{}: cannot open {remote} to resume: {e}", self.host);
                return None;
            }
        };
        f.seek(std::io::SeekFrom::Start(at)).await.ok()?;
        Some(f)
    }

    /// [`Sftp::upload`] of `local` gzip-compressed into `remote` (see
    /// [`crate::transport::gzip`]): the size and SHA-256 returned are of the file's own bytes,
    /// `on_progress` counts them too (the bar shows how much of the file went).
    pub async fn upload_gzip(
        &self,
        local: &Path,
        remote: &str,
        resume: Option<(ring::digest::Context, u64)>,
        mut on_progress: impl FnMut(u64),
    ) -> Result<Sent> {
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get().clamp(1, 4));
        let (mut blocks, reader) =
            crate::transport::gzip::spawn(local.to_path_buf(), resume, GZIP_LEVEL, workers);
        let mut dst = self.create(remote).await?;
        let mut waiting = std::collections::BTreeMap::new();
        let mut next = 0u64;
        let mut wire = 0u64;
        let copied: std::result::Result<(), Failed> = async {
            while let Some(block) = blocks.recv().await {
                waiting.insert(block.seq, block);
                while let Some(block) = waiting.remove(&next) {
                    dst.write_all(&block.data)
                        .await
                        .map_err(|error| Failed::Write {
                            what: format!("cannot write {remote}"),
                            error,
                        })?;
                    on_progress(block.plain);
                    wire += block.data.len() as u64;
                    next += 1;
                }
            }
            Ok(())
        }
        .await;
        // The threads stop once nothing receives their blocks.
        drop(blocks);
        let whole = reader.await.expect("the reader does not panic");
        let whole = match (copied, whole) {
            (Err(failed), _) => return Err(self.abandon(dst, remote, failed).await),
            (Ok(()), Err(e)) => return Err(self.abandon(dst, remote, Failed::Local(e)).await),
            (Ok(()), Ok(whole)) => whole,
        };
        self.finish(dst, remote).await?;
        Ok(Sent {
            size: whole.size,
            wire,
            resumed: 0,
            sha256: whole.sha256,
            after: whole.after,
        })
    }

    /// Write small content (unit files, manifests) the same way as [`Sftp::upload`].
    pub async fn write(&self, remote: &str, content: &[u8]) -> Result<()> {
        let mut dst = self.create(remote).await?;
        if let Err(error) = dst.write_all(content).await {
            let what = format!("cannot write {remote}");
            return Err(self
                .abandon(dst, remote, Failed::Write { what, error })
                .await);
        }
        self.finish(dst, remote).await
    }

    /// Create `remote`, mode 0600 from the first byte: a secret is never readable by others,
    /// even for a moment (the seal gives each file its mode).
    async fn create(&self, remote: &str) -> Result<File> {
        let mut attrs = FileAttributes::empty();
        attrs.permissions = Some(0o600);
        self.count(1);
        let created = self
            .session
            .open_with_flags_and_attributes(
                remote.to_string(),
                OpenFlags::CREATE | OpenFlags::TRUNCATE | OpenFlags::WRITE,
                attrs,
            )
            .await;
        match created {
            Ok(f) => Ok(f),
            Err(e) => Err(self
                .create_failed(format!("cannot create {remote}"), remote, &e)
                .await),
        }
    }

    /// Creating `path` failed: SFTP v3's bare "Failure" is named from the filesystem's
    /// statistics (no free inodes, no space), with the host and the path.
    async fn create_failed(&self, what: String, path: &str, e: &SftpError) -> Error {
        let error = self.err(what.clone(), e);
        let failure = matches!(e, SftpError::Status(s) if s.status_code == StatusCode::Failure);
        if !failure || matches!(error, Error::ConnectionLost { .. }) {
            return error;
        }
        let dir = parent(path);
        self.count(1);
        let stats = self.session.fs_info(dir.to_string()).await.ok().flatten();
        Error::Sftp {
            host: self.host.clone(),
            message: create_failure(&self.host, &what, dir, stats.as_ref()),
        }
    }

    /// Wait for every pipelined write, then close (checking the result: a dropped file loses
    /// errors).
    async fn finish(&self, mut dst: File, remote: &str) -> Result<()> {
        let written = async {
            let write = |what: &str| {
                let what = format!("cannot {what} {remote}");
                move |error| Failed::Write { what, error }
            };
            // Close waits for every pipelined write first. (No flush: russh-sftp's flush is
            // an fsync per file; the seal fsyncs all the release's files in one command.)
            self.count(1);
            dst.shutdown().await.map_err(write("close"))
        }
        .await;
        if let Err(failed) = written {
            return Err(self.abandon(dst, remote, failed).await);
        }
        Ok(())
    }

    /// An upload failed: say why (a full disk by name), and remove the partial file at once
    /// (unless the connection is gone: then nothing can be removed).
    async fn abandon(&self, dst: File, tmp: &str, failed: Failed) -> Error {
        let error = match failed {
            Failed::Local(e) => e,
            Failed::Write { what, error } => match self.io_err(what.clone(), &error) {
                lost @ Error::ConnectionLost { .. } => return lost,
                _ if is_failure(&error) => {
                    // Ask before removing the file, which frees its space.
                    let dir = parent(tmp);
                    let free = self.free_space(dir).await.ok().flatten();
                    Error::Sftp {
                        host: self.host.clone(),
                        message: write_failure(&self.host, &what, dir, free, &error.to_string()),
                    }
                }
                other => other,
            },
        };
        if matches!(error, Error::ConnectionLost { .. }) {
            return error;
        }
        // Dropping the file sends its CLOSE (sftp-server keeps an open file's space), which the
        // server handles before the REMOVE that follows on the same channel.
        drop(dst);
        self.count(1);
        if let Err(e) = self.session.remove_file(tmp.to_string()).await {
            tracing::warn!("{}: cannot remove the partial file {tmp}: {e}", self.host);
        }
        error
    }

    /// Free bytes for ferry's user on the filesystem of `path` (statvfs@openssh.com); None when
    /// the server lacks that extension.
    pub async fn free_space(&self, path: &str) -> Result<Option<u64>> {
        self.count(1);
        let info = self
            .session
            .fs_info(path.to_string())
            .await
            .map_err(|e| self.err(format!("cannot query the free space of {path}"), &e))?;
        Ok(info.map(|s| {
            let unit = if s.fragment_size > 0 {
                s.fragment_size
            } else {
                s.block_size
            };
            s.blocks_avail.saturating_mul(unit)
        }))
    }

    /// chmod with only the permissions set (a full attribute set would also truncate).
    pub async fn chmod(&self, path: &str, mode: u32) -> Result<()> {
        let mut attrs = FileAttributes::empty();
        attrs.permissions = Some(mode);
        self.count(1);
        self.session
            .set_metadata(path.to_string(), attrs)
            .await
            .map_err(|e| self.err(format!("cannot chmod {path} to {mode:o}"), &e))
    }

    /// Read a small remote file; None when it does not exist.
    pub async fn read_optional(&self, path: &str) -> Result<Option<Vec<u8>>> {
        self.count(2);
        match self.session.try_exists(path.to_string()).await {
            Ok(false) => Ok(None),
            _ => self
                .session
                .read(path.to_string())
                .await
                .map(Some)
                .map_err(|e| self.err(format!("cannot read {path}"), &e)),
        }
    }

    /// Create the directory `path` (its parent must exist, or be created by a request sent
    /// before this one: sftp-server handles requests in order).
    pub async fn mkdir(&self, path: &str) -> Result<()> {
        self.count(1);
        match self.session.create_dir(path.to_string()).await {
            Ok(()) => Ok(()),
            Err(e) => {
                let what = format!("cannot create the directory {path}");
                Err(self.create_failed(what, path, &e).await)
            }
        }
    }

    pub async fn rename(&self, from: &str, to: &str) -> Result<()> {
        self.count(1);
        self.session
            .rename(from.to_string(), to.to_string())
            .await
            .map_err(|e| self.err(format!("cannot rename {from} to {to}"), &e))
    }

    pub async fn close(self) {
        let _ = self.session.close().await;
    }
}

/// The directory of a remote path (`.` for a bare name: the login directory).
fn parent(path: &str) -> &str {
    match path.rsplit_once('/') {
        Some(("", _)) => "/",
        Some((dir, _)) => dir,
        None => ".",
    }
}

/// Did the server answer SSH_FX_FAILURE, SFTP v3's reason for "no space left" (and for
/// anything else it has no code for)? russh-sftp hands a failed write back as an I/O error
/// carrying the server's message ("Failure"), other requests as a status.
fn is_failure(e: &std::io::Error) -> bool {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<SftpError>())
    {
        Some(SftpError::Status(s)) => s.status_code == StatusCode::Failure,
        Some(_) => false,
        None => e.to_string() == "Failure",
    }
}

/// Does this SFTP error mean the session (its channel, or the connection) is gone?
fn session_gone(e: &SftpError) -> bool {
    match e {
        SftpError::Status(s) => matches!(
            s.status_code,
            StatusCode::NoConnection | StatusCode::ConnectionLost
        ),
        // russh-sftp's words when the session's transport ended under a pending request.
        SftpError::UnexpectedBehavior(m) => {
            m == "sender dropped"
                || m == "session closed"
                || m.starts_with("SendError")
                || m.starts_with("RecvError")
        }
        SftpError::IO(_) => true,
        _ => false,
    }
}

/// The same for an I/O error of a remote file.
fn io_gone(e: &std::io::Error) -> bool {
    use std::io::ErrorKind as K;
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<SftpError>())
    {
        Some(inner) => session_gone(inner),
        None => matches!(
            e.kind(),
            K::BrokenPipe | K::ConnectionReset | K::ConnectionAborted | K::NotConnected
        ),
    }
}

/// The message for a write that failed with SSH_FX_FAILURE: a full disk when (almost) no
/// space is left on that filesystem, else the server's word and what was checked.
fn write_failure(host: &str, what: &str, dir: &str, free: Option<u64>, cause: &str) -> String {
    match free {
        Some(free) if free < FULL_BELOW => format!(
            "{what}: the disk of {host} is full ({free} bytes free on the filesystem of {dir}); the partial file was removed: make room there and deploy again"
        ),
        Some(free) => format!(
            "{what}: {cause} ({free} bytes free on the filesystem of {dir}, so not a full disk: a disk quota, or an I/O error on {host}?); the partial file was removed"
        ),
        None => format!(
            "{what}: {cause} (the server gave no reason and cannot report free space: is the disk of {host} full?); the partial file was removed"
        ),
    }
}

/// The message for a file or directory that could not be created with SSH_FX_FAILURE, from
/// the statistics of its filesystem (None: the server cannot report them).
fn create_failure(
    host: &str,
    what: &str,
    dir: &str,
    stats: Option<&russh_sftp::extensions::Statvfs>,
) -> String {
    let Some(s) = stats else {
        return format!(
            "{what} on {host}: the server says only \"Failure\" and cannot report the filesystem's state: is its disk full, or out of inodes (`df -h {dir}; df -i {dir}` there)?"
        );
    };
    let unit = if s.fragment_size > 0 {
        s.fragment_size
    } else {
        s.block_size
    };
    let free = s.blocks_avail.saturating_mul(unit);
    // Filesystems without a fixed inode table (btrfs) report 0 inodes in all.
    if s.inodes > 0 && s.inodes_avail == 0 {
        format!(
            "{what} on {host}: the filesystem of {dir} has no free inodes (all {} are used: too many files, whatever the space, {free} bytes, left); delete files there (`df -i {dir}` shows it) and deploy again",
            s.inodes
        )
    } else if free < FULL_BELOW {
        format!(
            "{what} on {host}: the disk is full ({free} bytes free on the filesystem of {dir}); make room there and deploy again"
        )
    } else {
        format!(
            "{what} on {host}: the server says only \"Failure\" ({free} bytes and {} inodes free on the filesystem of {dir}: a quota, or an I/O error?)",
            s.inodes_avail
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(inodes: u64, inodes_avail: u64, blocks_avail: u64) -> russh_sftp::extensions::Statvfs {
        russh_sftp::extensions::Statvfs {
            block_size: 4096,
            fragment_size: 4096,
            blocks: 1 << 20,
            blocks_free: blocks_avail,
            blocks_avail,
            inodes,
            inodes_free: inodes_avail,
            inodes_avail,
            fs_id: 0,
            flags: 0,
            name_max: 255,
        }
    }

    #[test]
    fn a_failed_create_names_the_host_the_path_and_no_free_inodes() {
        let what = "cannot create r/.x.partial/bin/app";
        let m = create_failure("web1", what, "r/.x.partial/bin", Some(&stats(512, 0, 1000)));
        assert!(
            m.starts_with("cannot create r/.x.partial/bin/app on web1: the filesystem of r/.x.partial/bin has no free inodes (all 512 are used"),
            "{m}"
        );
        let m = create_failure("web1", what, "d", Some(&stats(512, 10, 1)));
        assert!(
            m.contains("on web1: the disk is full (4096 bytes free"),
            "{m}"
        );
        // btrfs: no inode table, 0 inodes in all, and space left: not called inode exhaustion.
        let m = create_failure("web1", what, "d", Some(&stats(0, 0, 1000)));
        assert!(
            m.contains("says only \"Failure\" (4096000 bytes and 0 inodes free"),
            "{m}"
        );
        let m = create_failure("web1", what, "d", None);
        assert!(
            m.contains("on web1: the server says only \"Failure\""),
            "{m}"
        );
    }
    use russh_sftp::protocol::Status;

    fn status(code: StatusCode, message: &str) -> SftpError {
        SftpError::Status(Status {
            id: 1,
            status_code: code,
            error_message: message.into(),
            language_tag: "en".into(),
        })
    }

    #[test]
    fn a_full_disk_is_named_with_the_space_left() {
        assert_eq!(
            write_failure("web1", "cannot write app/bin", "app", Some(4096), "Failure"),
            "cannot write app/bin: the disk of web1 is full (4096 bytes free on the filesystem of app); the partial file was removed: make room there and deploy again"
        );
        assert!(write_failure("h", "w", "d", Some(0), "Failure").contains("is full (0 bytes"));
    }

    #[test]
    fn a_failure_with_space_left_is_not_called_a_full_disk() {
        let m = write_failure("web1", "cannot write x", "d", Some(5 << 30), "Failure");
        assert!(!m.contains("is full"), "{m}");
        assert!(m.contains("cannot write x: Failure (5368709120 bytes free on the filesystem of d, so not a full disk"), "{m}");
        let m = write_failure("web1", "cannot write x", "d", None, "Failure");
        assert!(m.contains("is the disk of web1 full?"), "{m}");
        assert!(m.contains("partial file was removed"), "{m}");
    }

    #[test]
    fn ssh_fx_failure_is_recognised_in_both_forms() {
        // A failed write: russh-sftp gives the server's message as an I/O error.
        assert!(is_failure(&std::io::Error::other("Failure")));
        // A failed fsync or other request: the status itself.
        assert!(is_failure(&std::io::Error::other(status(
            StatusCode::Failure,
            "Failure"
        ))));
        assert!(!is_failure(&std::io::Error::other("Permission denied")));
        assert!(!is_failure(&std::io::Error::other(status(
            StatusCode::PermissionDenied,
            "Permission denied"
        ))));
    }

    #[test]
    fn a_lost_session_is_told_apart_from_a_failed_request() {
        assert!(session_gone(&SftpError::UnexpectedBehavior(
            "sender dropped".into()
        )));
        assert!(session_gone(&SftpError::UnexpectedBehavior(
            "session closed".into()
        )));
        assert!(session_gone(&status(StatusCode::ConnectionLost, "")));
        assert!(session_gone(&status(StatusCode::NoConnection, "")));
        assert!(!session_gone(&status(StatusCode::Failure, "Failure")));
        assert!(!session_gone(&status(
            StatusCode::NoSuchFile,
            "No such file"
        )));
        assert!(!session_gone(&SftpError::Timeout));
        assert!(io_gone(&std::io::Error::other(
            SftpError::UnexpectedBehavior("sender dropped".into())
        )));
        assert!(io_gone(&std::io::Error::from(
            std::io::ErrorKind::BrokenPipe
        )));
        assert!(!io_gone(&std::io::Error::other("Failure")));
    }

    #[test]
    fn parent_of_remote_paths() {
        assert_eq!(parent(".local/share/ferry/x/f"), ".local/share/ferry/x");
        assert_eq!(parent("f"), ".");
        assert_eq!(parent("/f"), "/");
    }
}
