//! Many small files sent as one stream: a tar archive, gzip-compressed when the host has gzip,
//! written on a blocking thread while the files are read and hashed, and unpacked on the host
//! by `tar -x` into the staging directory. A release of thousands of small files then costs
//! one command and one stream instead of an open, a write and a close over SFTP per file
//! (three requests each, 64 files in flight: hundreds of round trips on a distant host).
//!
//! Each member is a regular file of mode 0600 (the seal gives every file its mode), owned by
//! whoever unpacks it (`-o`), its modification time the time it is unpacked (`-m`). Memory
//! stays bounded: one file and a few chunks of the stream are held at a time.

use std::io::{Read, Write};
use std::path::PathBuf;

use tokio::sync::mpsc::Sender;

use crate::shell::quote;

/// Bytes of the stream handed to the network at a time.
const CHUNK: usize = 256 * 1024;

/// A file to send: read from `source`, unpacked at `dest` (relative to the staging directory).
#[derive(Debug, Clone)]
pub struct Member {
    pub source: PathBuf,
    pub dest: String,
}

/// What was sent of one member: its size and SHA-256 as read, and its metadata after the read
/// (to tell whether it changed while it was read).
#[derive(Debug)]
pub struct Packed {
    pub size: u64,
    pub sha256: String,
    pub after: Option<std::fs::Metadata>,
}

/// Why a stream was not packed to its end.
#[derive(Debug)]
pub enum Stopped {
    /// A local file could not be read: what to say.
    Read(String),
    /// The other end stopped taking the stream (the host's command ended, or the connection).
    Closed,
}

/// The host's command that unpacks the stream into `dir` (relative to the home directory).
pub fn unpack_command(dir: &str, gzip: bool) -> String {
    format!(
        "cd \"$HOME\"/{} && exec tar -x{}mof -",
        quote(dir),
        if gzip { "z" } else { "" }
    )
}

/// Chunks of the stream on their way to the network, and how many bytes went.
struct Chunks {
    buf: Vec<u8>,
    tx: Sender<Vec<u8>>,
    sent: u64,
}

impl Chunks {
    fn hand_over(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.sent += chunk.len() as u64;
        self.tx
            .blocking_send(chunk)
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))
    }
}

impl Write for Chunks {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.hand_over()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.hand_over()
    }
}

/// Pack `members` into one tar stream (gzip-compressed with `gzip`) sent in chunks on `tx`,
/// calling `on_file` with each file's size once it is in the stream. Blocking: run it on a
/// blocking thread. Returns what was packed of each member, in order, and the bytes of the
/// stream.
pub fn pack(
    members: &[Member],
    gzip: bool,
    tx: Sender<Vec<u8>>,
    on_file: impl Fn(u64),
) -> Result<(Vec<Packed>, u64), Stopped> {
    let chunks = Chunks {
        buf: Vec::with_capacity(CHUNK),
        tx,
        sent: 0,
    };
    let closed = |_: std::io::Error| Stopped::Closed;
    if gzip {
        let encoder = flate2::write::GzEncoder::new(chunks, flate2::Compression::fast());
        let mut tar = tar::Builder::new(encoder);
        let packed = members_into(&mut tar, members, &on_file)?;
        let mut chunks = tar.into_inner().and_then(|e| e.finish()).map_err(closed)?;
        chunks.flush().map_err(closed)?;
        Ok((packed, chunks.sent))
    } else {
        let mut tar = tar::Builder::new(chunks);
        let packed = members_into(&mut tar, members, &on_file)?;
        let mut chunks = tar.into_inner().map_err(closed)?;
        chunks.flush().map_err(closed)?;
        Ok((packed, chunks.sent))
    }
}

fn members_into<W: Write>(
    tar: &mut tar::Builder<W>,
    members: &[Member],
    on_file: &impl Fn(u64),
) -> Result<Vec<Packed>, Stopped> {
    let mut packed = Vec::with_capacity(members.len());
    for m in members {
        let cannot =
            |e: std::io::Error| Stopped::Read(format!("cannot read {}: {e}", m.source.display()));
        let mut f = std::fs::File::open(&m.source).map_err(cannot)?;
        let mut bytes = Vec::new();
        f.read_to_end(&mut bytes).map_err(cannot)?;
        let after = f.metadata().ok();
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(bytes.len() as u64);
        header.set_mode(0o600);
        header.set_mtime(0);
        tar.append_data(&mut header, &m.dest, bytes.as_slice())
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::BrokenPipe => Stopped::Closed,
                _ => Stopped::Read(format!(
                    "cannot pack {} as {}: {e}",
                    m.source.display(),
                    m.dest
                )),
            })?;
        on_file(bytes.len() as u64);
        packed.push(Packed {
            size: bytes.len() as u64,
            sha256: crate::digest::sha256_hex(&bytes),
            after,
        });
    }
    Ok(packed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pack files with this module, unpack them with the system's `tar` as the host does:
    /// the same bytes at the same paths, mode 0600, and the hashes and sizes returned are the
    /// files'.
    fn round_trip(gzip: bool) {
        let src = tempfile::tempdir().unwrap();
        let out = tempfile::tempdir().unwrap();
        let long = format!("{}/{}.txt", "d".repeat(60), "f".repeat(90));
        let names = [
            "a.txt".to_string(),
            "sub/b.bin".to_string(),
            long,
            "empty".into(),
        ];
        let mut members = Vec::new();
        for (i, n) in names.iter().enumerate() {
            let path = src.path().join(format!("src{i}"));
            let body: Vec<u8> = match i {
                3 => Vec::new(),
                _ => (0..(1000 * i + 7)).map(|b| (b * 7 + i) as u8).collect(),
            };
            std::fs::write(&path, &body).unwrap();
            members.push(Member {
                source: path,
                dest: n.clone(),
            });
            std::fs::create_dir_all(out.path().join(n).parent().unwrap()).unwrap();
        }
        let (tx, mut rx) = tokio::sync::mpsc::channel(4);
        let count = std::sync::atomic::AtomicU64::new(0);
        let collect = std::thread::spawn(move || {
            let mut all = Vec::new();
            while let Some(c) = rx.blocking_recv() {
                all.extend(c);
            }
            all
        });
        let (packed, sent) = pack(&members, gzip, tx, |n| {
            count.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        })
        .map_err(|e| format!("{e:?}"))
        .unwrap();
        let stream = collect.join().unwrap();
        assert_eq!(stream.len() as u64, sent);
        // The host's command, from the staging directory on.
        let cmd = unpack_command("x", gzip);
        let tar = cmd.split("&& ").nth(1).unwrap();
        let mut child = std::process::Command::new("sh")
            .arg("-c")
            .arg(tar)
            .current_dir(out.path())
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(&stream).unwrap();
        assert!(child.wait().unwrap().success());
        let mut total = 0;
        for (m, p) in members.iter().zip(&packed) {
            let body = std::fs::read(&m.source).unwrap();
            let unpacked = out.path().join(&m.dest);
            assert_eq!(std::fs::read(&unpacked).unwrap(), body, "{}", m.dest);
            assert_eq!(p.size, body.len() as u64);
            assert_eq!(p.sha256, crate::digest::sha256_hex(&body));
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&unpacked).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{}", m.dest);
            total += body.len() as u64;
        }
        assert_eq!(count.into_inner(), total);
    }

    #[test]
    fn a_stream_unpacks_with_tar_as_the_host_does() {
        round_trip(false);
    }

    #[test]
    fn a_gzip_stream_unpacks_with_tar_z() {
        round_trip(true);
    }

    #[test]
    fn the_unpack_command_quotes_the_directory() {
        assert_eq!(
            unpack_command(".local/share/ferry/a b/.x.partial", true),
            "cd \"$HOME\"/'.local/share/ferry/a b/.x.partial' && exec tar -xzmof -"
        );
    }

    #[test]
    fn a_missing_file_stops_the_stream_naming_it() {
        let (tx, _rx) = tokio::sync::mpsc::channel(4);
        let members = [Member {
            source: "/nonexistent/ferry-bundle-test".into(),
            dest: "a".into(),
        }];
        match pack(&members, true, tx, |_| {}) {
            Err(Stopped::Read(e)) => {
                assert!(
                    e.to_string().contains("/nonexistent/ferry-bundle-test"),
                    "{e}"
                )
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_reader_gone_is_closed() {
        let src = tempfile::tempdir().unwrap();
        let path = src.path().join("big");
        std::fs::write(&path, vec![7u8; 3 * CHUNK]).unwrap();
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        drop(rx);
        let members = [Member {
            source: path,
            dest: "big".into(),
        }];
        assert!(matches!(
            pack(&members, false, tx, |_| {}),
            Err(Stopped::Closed)
        ));
    }
}
