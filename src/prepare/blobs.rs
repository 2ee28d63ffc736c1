//! The files ferry uploaded, kept on this machine by SHA-256 (`$XDG_CACHE_HOME/ferry/blobs`,
//! else `~/.cache/ferry/blobs`), so that the next deploy of a changed file can send only its
//! difference from what the host has (see [`crate::transport::delta`]). Only files up to
//! [`MAX_FILE`] are kept, 1 GiB in all (the least recently used go first); a copy is
//! checked against its name before it is used. `FERRY_BLOB_CACHE=0` turns the cache off.

use std::path::PathBuf;
use std::time::SystemTime;

/// Larger files are not kept (nor sent as a delta: both copies are read into memory).
pub const MAX_FILE: u64 = 128 * 1024 * 1024;

/// The cache's size limit.
const MAX_TOTAL: u64 = 1024 * 1024 * 1024;

fn dir() -> Option<PathBuf> {
    if std::env::var_os("FERRY_BLOB_CACHE").is_some_and(|v| v == "0") {
        return None;
    }
    Some(crate::prepare::hash_cache::cache_dir()?.join("blobs"))
}

fn is_sha256(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The bytes whose SHA-256 is `sha256`, if the cache has them (and they still hash so).
pub fn get(sha256: &str) -> Option<Vec<u8>> {
    if !is_sha256(sha256) {
        return None;
    }
    let path = dir()?.join(sha256);
    let bytes = std::fs::read(&path).ok()?;
    let ok = crate::digest::sha256_hex(&bytes) == sha256;
    if !ok {
        let _ = std::fs::remove_file(&path);
        return None;
    }
    // Used: the last to go.
    let _ = std::fs::File::options()
        .append(true)
        .open(&path)
        .and_then(|f| f.set_modified(SystemTime::now()));
    Some(bytes)
}

/// Is `sha256` in the cache (not checked)?
pub fn has(sha256: &str) -> bool {
    is_sha256(sha256) && dir().is_some_and(|d| d.join(sha256).is_file())
}

/// Keep `bytes` (whose SHA-256 the caller computed) under `sha256`. Best effort: a cache that
/// cannot be written costs the next deploy its delta, nothing else.
pub fn put(sha256: &str, bytes: &[u8]) {
    if !is_sha256(sha256) || bytes.len() as u64 > MAX_FILE {
        return;
    }
    let Some(dir) = dir() else { return };
    let path = dir.join(sha256);
    if path.is_file() {
        return;
    }
    let tmp = dir.join(format!(".{sha256}.{}", std::process::id()));
    let written = std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(&tmp, bytes))
        .and_then(|()| std::fs::rename(&tmp, &path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        tracing::debug!("blob cache: cannot keep {sha256}: {e}");
        return;
    }
    prune(&dir, MAX_TOTAL);
}

/// Remove the least recently used blobs until the rest fit in `limit` bytes.
fn prune(dir: &std::path::Path, limit: u64) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut blobs: Vec<(SystemTime, u64, PathBuf)> = entries
        .flatten()
        .filter(|e| e.file_name().to_str().is_some_and(is_sha256))
        .filter_map(|e| {
            let m = e.metadata().ok()?;
            Some((m.modified().ok()?, m.len(), e.path()))
        })
        .collect();
    let mut total: u64 = blobs.iter().map(|b| b.1).sum();
    blobs.sort();
    for (_, len, path) in blobs {
        if total <= limit {
            break;
        }
        if std::fs::remove_file(&path).is_ok() {
            total -= len;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha(b: &[u8]) -> String {
        crate::digest::sha256_hex(b)
    }

    #[test]
    fn the_oldest_blobs_go_first_when_the_cache_is_full() {
        let dir = tempfile::tempdir().unwrap();
        for (i, age) in [(1u8, 300u64), (2, 200), (3, 100)] {
            let content = vec![i; 1000];
            let path = dir.path().join(sha(&content));
            std::fs::write(&path, &content).unwrap();
            let f = std::fs::File::options().append(true).open(&path).unwrap();
            f.set_modified(SystemTime::now() - std::time::Duration::from_secs(age))
                .unwrap();
        }
        std::fs::write(dir.path().join("not-a-blob"), vec![0; 5000]).unwrap();
        prune(dir.path(), 2000);
        let left: Vec<bool> = [1u8, 2, 3]
            .iter()
            .map(|&i| dir.path().join(sha(&vec![i; 1000])).exists())
            .collect();
        assert_eq!(left, [false, true, true]);
        assert!(dir.path().join("not-a-blob").exists());
    }

    #[test]
    fn only_sha256_names_are_looked_up() {
        assert!(is_sha256(&"ab".repeat(32)));
        assert!(!is_sha256("../../etc/passwd"));
        assert!(!is_sha256(&"ab".repeat(31)));
        assert!(get("../x").is_none());
    }
}
