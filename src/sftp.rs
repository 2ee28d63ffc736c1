//! Uploads over SFTP: streamed from disk (memory stays bounded whatever the file size), written
//! to a temporary name, fsynced, chmod'ed, then renamed into place.
//!
//! Remote paths are relative to the login directory (the home directory, where OpenSSH's
//! sftp-server starts).

use std::path::Path;

use russh_sftp::client::SftpSession;
use russh_sftp::client::fs::File;
use russh_sftp::protocol::{FileAttributes, OpenFlags};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::error::{Error, Result};

/// Size of each read from the local file; writes are pipelined by russh-sftp.
const CHUNK: usize = 256 * 1024;

/// An SFTP session bound to a host name for error messages.
pub struct Sftp {
    pub host: String,
    session: SftpSession,
}

impl Sftp {
    pub fn new(host: &str, session: SftpSession) -> Sftp {
        Sftp {
            host: host.to_string(),
            session,
        }
    }

    fn err(&self, what: String, e: impl std::fmt::Display) -> Error {
        Error::Sftp {
            host: self.host.clone(),
            message: format!("{what}: {e}"),
        }
    }

    /// `mkdir -p` (mode 0755 for directories ferry creates; the umask applies).
    pub async fn mkdir_all(&self, dir: &str) -> Result<()> {
        let mut path = String::new();
        for part in dir.split('/').filter(|p| !p.is_empty()) {
            if !path.is_empty() {
                path.push('/');
            }
            path.push_str(part);
            match self.session.metadata(path.clone()).await {
                Ok(m) if m.is_dir() => continue,
                Ok(_) => {
                    return Err(
                        self.err(format!("{path} exists and is not a directory"), "remove it")
                    );
                }
                Err(_) => {}
            }
            if let Err(e) = self.session.create_dir(path.clone()).await {
                // Raced with another creator? Fine if it is a directory now.
                match self.session.metadata(path.clone()).await {
                    Ok(m) if m.is_dir() => {}
                    _ => return Err(self.err(format!("cannot create directory {path}"), e)),
                }
            }
        }
        Ok(())
    }

    /// Upload `local` to `remote` with `mode`: temp name, fsync, chmod, rename.
    /// `on_progress` gets the number of bytes written since the last call.
    pub async fn upload(
        &self,
        local: &Path,
        remote: &str,
        mode: u32,
        mut on_progress: impl FnMut(u64),
    ) -> Result<()> {
        let mut src = tokio::fs::File::open(local)
            .await
            .map_err(|e| Error::Local(format!("cannot open {}: {e}", local.display())))?;
        let (tmp, mut dst) = self.create_temp(remote).await?;
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = src
                .read(&mut buf)
                .await
                .map_err(|e| Error::Local(format!("cannot read {}: {e}", local.display())))?;
            if n == 0 {
                break;
            }
            dst.write_all(&buf[..n])
                .await
                .map_err(|e| self.err(format!("cannot write {tmp}"), e))?;
            on_progress(n as u64);
        }
        self.finish(dst, &tmp, remote, mode).await
    }

    /// Write small content (unit files, manifests) the same way as [`Sftp::upload`].
    pub async fn write(&self, remote: &str, content: &[u8], mode: u32) -> Result<()> {
        let (tmp, mut dst) = self.create_temp(remote).await?;
        dst.write_all(content)
            .await
            .map_err(|e| self.err(format!("cannot write {tmp}"), e))?;
        self.finish(dst, &tmp, remote, mode).await
    }

    /// Create `.NAME.ferry-part` beside `remote`, mode 0600 from the first byte: a secret is
    /// never readable by others, even for a moment.
    async fn create_temp(&self, remote: &str) -> Result<(String, File)> {
        let tmp = match remote.rsplit_once('/') {
            Some((d, n)) => format!("{d}/.{n}.ferry-part"),
            None => format!(".{remote}.ferry-part"),
        };
        let mut attrs = FileAttributes::empty();
        attrs.permissions = Some(0o600);
        let file = self
            .session
            .open_with_flags_and_attributes(
                tmp.clone(),
                OpenFlags::CREATE | OpenFlags::TRUNCATE | OpenFlags::WRITE,
                attrs,
            )
            .await
            .map_err(|e| self.err(format!("cannot create {tmp}"), e))?;
        Ok((tmp, file))
    }

    /// Wait for every pipelined write, fsync (fsync@openssh.com), close (checking the
    /// result: a dropped file loses errors), chmod, rename into place.
    async fn finish(&self, mut dst: File, tmp: &str, remote: &str, mode: u32) -> Result<()> {
        dst.flush()
            .await
            .map_err(|e| self.err(format!("cannot write {tmp}"), e))?;
        dst.sync_all()
            .await
            .map_err(|e| self.err(format!("cannot fsync {tmp}"), e))?;
        dst.shutdown()
            .await
            .map_err(|e| self.err(format!("cannot close {tmp}"), e))?;
        self.chmod(tmp, mode).await?;
        // Only ever used inside a new release directory: there is nothing to replace, and
        // plain SFTP rename refuses to overwrite.
        let _ = self.session.remove_file(remote.to_string()).await;
        self.session
            .rename(tmp.to_string(), remote.to_string())
            .await
            .map_err(|e| self.err(format!("cannot rename {tmp} to {remote}"), e))
    }

    /// chmod with only the permissions set (a full attribute set would also truncate).
    pub async fn chmod(&self, path: &str, mode: u32) -> Result<()> {
        let mut attrs = FileAttributes::empty();
        attrs.permissions = Some(mode);
        self.session
            .set_metadata(path.to_string(), attrs)
            .await
            .map_err(|e| self.err(format!("cannot chmod {path} to {mode:o}"), e))
    }

    /// Read a small remote file; None when it does not exist.
    pub async fn read_optional(&self, path: &str) -> Result<Option<Vec<u8>>> {
        match self.session.try_exists(path.to_string()).await {
            Ok(false) => Ok(None),
            _ => self
                .session
                .read(path.to_string())
                .await
                .map(Some)
                .map_err(|e| self.err(format!("cannot read {path}"), e)),
        }
    }

    pub async fn rename(&self, from: &str, to: &str) -> Result<()> {
        self.session
            .rename(from.to_string(), to.to_string())
            .await
            .map_err(|e| self.err(format!("cannot rename {from} to {to}"), e))
    }

    pub async fn close(self) {
        let _ = self.session.close().await;
    }
}
