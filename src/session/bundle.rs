//! Many small files of a release sent as one tar stream into the staging directory (see
//! [`crate::transport::bundle`]) instead of one by one over SFTP, when the host has `tar`.

use crate::error::{Error, Result};
use crate::plan::{FilePlan, Plan};
use crate::session::ServiceSession;
use crate::transport::bundle::{self, Member, Packed, Stopped};
use crate::transport::ssh::Stdin;

/// At least this many small files go in one stream; fewer go over SFTP (a few files cost a
/// round trip or two either way).
pub(crate) const BUNDLE_MIN: usize = 32;

/// A file goes in the stream when it is smaller than this (it is read whole).
pub(crate) const BUNDLE_FILE: u64 = 64 * 1024;

/// Chunks of the stream between the packer and the network.
const CHUNKS_IN_FLIGHT: usize = 8;

impl ServiceSession<'_> {
    /// Send `files` as one tar stream, gzip-compressed when the host
    /// has gzip, unpacked by the host's `tar` into the staging directory; `on_file` is called
    /// with each file's size once it is in the stream. Returns what was sent of each file, in
    /// order, and the bytes of the stream.
    pub(super) async fn send_bundle(
        &self,
        plan: &Plan,
        files: &[&FilePlan],
        gzip: bool,
        on_file: impl Fn(u64) + Send + 'static,
    ) -> Result<(Vec<Packed>, u64)> {
        let staging = self.paths.staging(&plan.staging);
        let members: Vec<Member> = files
            .iter()
            .map(|f| Member {
                source: f.source.clone(),
                dest: f.dest.clone(),
            })
            .collect();
        let process = self
            .conn
            .spawn(&bundle::unpack_command(&staging, gzip), Stdin::Open)
            .await?;
        let (tx, mut rx) = tokio::sync::mpsc::channel(CHUNKS_IN_FLIGHT);
        let packing =
            tokio::task::spawn_blocking(move || bundle::pack(&members, gzip, tx, on_file));
        let mut write_failed = None;
        while let Some(chunk) = rx.recv().await {
            if let Err(e) = process.write(&chunk).await {
                write_failed = Some(e);
                break;
            }
        }
        drop(rx);
        let packed = packing.await.expect("packing does not panic");
        if let Err(Stopped::Read(e)) = packed {
            // The host's tar gets a cut stream and fails: the local cause is the one to say.
            process.close().await;
            return Err(Error::Local(e));
        }
        if write_failed.is_none() {
            let _ = process.send_eof().await;
        }
        let out = process.output(|_, _| {}).await?;
        if !out.success() {
            return Err(Error::Command {
                host: self.conn.host.clone(),
                command: format!(
                    "tar -x (unpacking {} file(s) into ~/{staging})",
                    files.len()
                ),
                status: out.status_text(),
                stderr: out.stderr_str(),
            });
        }
        match (packed, write_failed) {
            (Ok(packed), None) => Ok(packed),
            (_, Some(e)) => Err(e),
            (Err(_), None) => Err(Error::Local(format!(
                "the stream of {} file(s) to {} stopped before its end",
                files.len(),
                self.host.name
            ))),
        }
    }
}
