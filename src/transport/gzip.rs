//! A file read, hashed and gzip-compressed on blocking threads, for an upload over a slow link
//! (see [`crate::plan::encoding`]). The file is cut into blocks of [`BLOCK`] bytes, each
//! compressed as its own gzip member by one of a few workers at once (a concatenation of
//! members is one gzip stream to `gzip -dc`, as pigz writes them), so compression runs on every
//! core while the network sends what is ready. A block that does not shrink is stored as is
//! (a stored member: a few bytes of framing), and after a run of those the workers stop trying
//! but for one block in 16: random or already-compressed data costs no CPU time.
//!
//! The SHA-256 is of the file's own bytes (what the host must have once it decompressed),
//! taken by the reader as it goes: the file is read once. Memory stays bounded: a few blocks
//! are in flight.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::error::Error;

/// Plain bytes per gzip member.
pub const BLOCK: usize = 1024 * 1024;

/// A block is stored as is unless compression saves at least this fraction of it.
const KEEP_BELOW: f64 = 0.97;

/// After this many blocks in a row that did not shrink, blocks are stored without trying...
const GIVE_UP_AFTER: usize = 4;

/// ...but for one in this many, in case the data changes.
const RETRY_EVERY: u64 = 16;

/// One compressed block, `seq` from 0 in file order.
#[derive(Debug)]
pub struct Block {
    pub seq: u64,
    pub data: Vec<u8>,
    /// The plain bytes it stands for.
    pub plain: u64,
}

/// What the reader found once the file was read to the end.
#[derive(Debug)]
pub struct Whole {
    pub size: u64,
    pub sha256: String,
    pub after: Option<std::fs::Metadata>,
}

/// Compress one block: a gzip member at `level`, or stored when that does not shrink it.
/// Returns the member and whether it shrank.
pub fn member(plain: &[u8], level: u32) -> (Vec<u8>, bool) {
    if level > 0 {
        let packed = encode(plain, flate2::Compression::new(level));
        if (packed.len() as f64) < plain.len() as f64 * KEEP_BELOW {
            return (packed, true);
        }
    }
    (encode(plain, flate2::Compression::none()), false)
}

/// `data` as gzip members of [`BLOCK`] bytes, compressed on every core at once, in order.
pub fn members(data: &[u8]) -> Vec<u8> {
    let blocks: Vec<&[u8]> = data.chunks(BLOCK).collect();
    let workers = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(1, 4);
    let per = blocks.len().div_ceil(workers).max(1);
    std::thread::scope(|scope| {
        let parts: Vec<_> = blocks
            .chunks(per)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .flat_map(|b| member(b, 6).0)
                        .collect::<Vec<u8>>()
                })
            })
            .collect();
        parts
            .into_iter()
            .flat_map(|p| p.join().expect("compression does not panic"))
            .collect()
    })
}

fn encode(plain: &[u8], level: flate2::Compression) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::with_capacity(plain.len() / 2 + 64), level);
    enc.write_all(plain).expect("writing to memory");
    enc.finish().expect("writing to memory")
}

/// Should block `seq` be compressed, after `streak` blocks in a row that did not shrink?
fn worth_trying(seq: u64, streak: usize) -> bool {
    streak < GIVE_UP_AFTER || seq.is_multiple_of(RETRY_EVERY)
}

/// Read `path` (hashing from byte `hashed` on, into `hash`) and compress it at `level` on
/// `workers` threads. Blocks arrive on the receiver in any order; the handle gives the
/// file's size and SHA-256 once it was read to the end (or the error reading it). Dropping
/// the receiver stops the threads.
pub fn spawn(
    path: PathBuf,
    resume: Option<(ring::digest::Context, u64)>,
    level: u32,
    workers: usize,
) -> (
    tokio::sync::mpsc::Receiver<Block>,
    tokio::task::JoinHandle<Result<Whole, Error>>,
) {
    let (tx, rx) = tokio::sync::mpsc::channel::<Block>(workers * 2);
    let handle = tokio::task::spawn_blocking(move || {
        let (plain_tx, plain_rx) = std::sync::mpsc::sync_channel::<(u64, Vec<u8>)>(workers);
        let plain_rx = Mutex::new(plain_rx);
        let streak = AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for _ in 0..workers {
                let tx = tx.clone();
                let (plain_rx, streak) = (&plain_rx, &streak);
                scope.spawn(move || {
                    loop {
                        let next = plain_rx.lock().expect("no worker panics").recv();
                        let Ok((seq, plain)) = next else { return };
                        let level = if worth_trying(seq, streak.load(Ordering::Relaxed)) {
                            level
                        } else {
                            0
                        };
                        let (data, shrank) = member(&plain, level);
                        if shrank {
                            streak.store(0, Ordering::Relaxed);
                        } else if level > 0 {
                            streak.fetch_add(1, Ordering::Relaxed);
                        }
                        let block = Block {
                            seq,
                            data,
                            plain: plain.len() as u64,
                        };
                        if tx.blocking_send(block).is_err() {
                            return;
                        }
                    }
                });
            }
            drop(tx);
            read_blocks(&path, resume, plain_tx)
        })
    });
    (rx, handle)
}

/// The reader: blocks of the file to the workers, hashing as it goes.
fn read_blocks(
    path: &std::path::Path,
    resume: Option<(ring::digest::Context, u64)>,
    to: std::sync::mpsc::SyncSender<(u64, Vec<u8>)>,
) -> Result<Whole, Error> {
    let (mut hash, hashed) =
        resume.unwrap_or_else(|| (ring::digest::Context::new(&ring::digest::SHA256), 0));
    let cannot = |what: &str, e: std::io::Error| {
        Error::Local(format!("cannot {what} {}: {e}", path.display()))
    };
    let mut file = std::fs::File::open(path).map_err(|e| cannot("open", e))?;
    let mut size = 0u64;
    for seq in 0.. {
        let mut block = Vec::with_capacity(BLOCK);
        let n = (&mut file)
            .take(BLOCK as u64)
            .read_to_end(&mut block)
            .map_err(|e| cannot("read", e))?;
        if n == 0 {
            break;
        }
        let end = size + n as u64;
        if end > hashed {
            let from = hashed.saturating_sub(size) as usize;
            hash.update(&block[from..]);
        }
        size = end;
        if to.send((seq, block)).is_err() {
            // The upload stopped: its error is the one to tell.
            break;
        }
    }
    Ok(Whole {
        size,
        sha256: crate::digest::hex(hash.finish().as_ref()),
        after: file.metadata().ok(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gunzip(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(data)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn text_shrinks_and_random_data_is_stored() {
        let text: Vec<u8> = b"ferry deploys services\n".repeat(10_000);
        let (packed, shrank) = member(&text, 6);
        assert!(shrank && packed.len() < text.len() / 10, "{}", packed.len());
        assert_eq!(gunzip(&packed), text);

        let mut random = vec![0u8; 100_000];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut random).unwrap();
        let (stored, shrank) = member(&random, 6);
        assert!(!shrank);
        assert!(stored.len() < random.len() + 100, "{}", stored.len());
        assert_eq!(gunzip(&stored), random);
    }

    #[test]
    fn members_of_several_blocks_are_the_data_in_order() {
        let data: Vec<u8> = (0..BLOCK * 5 + 77).map(|i| (i % 251) as u8).collect();
        assert_eq!(gunzip(&members(&data)), data);
    }

    #[test]
    fn after_a_run_of_incompressible_blocks_only_some_are_tried() {
        assert!(worth_trying(5, GIVE_UP_AFTER - 1));
        assert!(!worth_trying(5, GIVE_UP_AFTER));
        assert!(worth_trying(RETRY_EVERY * 3, GIVE_UP_AFTER + 10));
    }

    #[tokio::test]
    async fn the_members_in_order_are_the_file_and_the_hash_is_of_its_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        // Three and a half blocks: half text, half random, so both kinds of member appear.
        let mut content = Vec::new();
        let mut random = vec![0u8; BLOCK * 2];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut random).unwrap();
        content.extend(b"0123456789abcdef".repeat(BLOCK / 16));
        content.extend(&random);
        content.extend(b"x".repeat(BLOCK / 2));
        std::fs::write(&path, &content).unwrap();

        let (mut rx, handle) = spawn(path, None, 6, 3);
        let mut blocks = Vec::new();
        while let Some(b) = rx.recv().await {
            blocks.push(b);
        }
        let whole = handle.await.unwrap().unwrap();
        blocks.sort_by_key(|b| b.seq);
        assert_eq!(blocks.len(), 4);
        let stream: Vec<u8> = blocks.iter().flat_map(|b| b.data.clone()).collect();
        assert_eq!(gunzip(&stream), content);
        assert_eq!(whole.size, content.len() as u64);
        assert_eq!(whole.sha256, crate::digest::sha256_hex(&content));
        assert!(stream.len() < content.len() * 3 / 4, "{}", stream.len());
    }
}
