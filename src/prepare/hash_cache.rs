//! A cache of local files' SHA-256, so that a redeploy does not hash an unchanged 256 MiB
//! binary again: `$XDG_CACHE_HOME/ferry/hashes.json` (else `~/.cache/ferry/hashes.json`).
//!
//! An entry is used only while the file's device, inode, size, mtime and ctime (nanoseconds)
//! are all what they were when it was hashed; any write, truncation, replacement or chmod
//! changes the ctime, which user space cannot set back. Files changed since are hashed again,
//! and an upload hashes what it sends and refuses content that differs from the plan's hash.
//! File timestamps advance in clock ticks (a few ms), so a file written twice within one tick
//! keeps its ctime: like git's "racy" index entries, a file whose ctime is less than
//! [`RACY`] old when it is hashed is not cached.
//! The cache is written atomically (a temporary file renamed into place); two ferry processes
//! at once may lose each other's entries, never corrupt them. Without a home directory, or
//! with `FERRY_HASH_CACHE=0`, nothing is cached.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// More entries than this and the cache starts over (it only saves time). A release of
/// 10,000 files fits, with room for a few projects (about 200 bytes an entry).
const MAX_ENTRIES: usize = 50_000;

/// Entries put since the last save after which [`HashCache::save_due`] saves: the cache is not
/// written whole after every small file (a release of many files made that quadratic).
const SAVE_EVERY: usize = 1024;

/// A file at least this large is saved at once once hashed: its hash cost time worth keeping
/// even if ferry is killed before the next save.
const SAVE_AT_ONCE: u64 = 1024 * 1024;

/// A file changed more recently than this when it was hashed is not cached.
pub const RACY: std::time::Duration = std::time::Duration::from_secs(2);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

impl Stamp {
    fn of(m: &std::fs::Metadata) -> Stamp {
        Stamp {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime_ns: m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128,
            ctime_ns: m.ctime() as i128 * 1_000_000_000 + m.ctime_nsec() as i128,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    stamp: Stamp,
    sha256: String,
}

#[derive(Debug)]
pub struct HashCache {
    file: Option<PathBuf>,
    entries: BTreeMap<String, Entry>,
    changed: bool,
    /// Entries put since the cache was last written.
    unsaved: usize,
    racy: std::time::Duration,
}

/// ferry's cache directory: `$XDG_CACHE_HOME/ferry`, else `~/.cache/ferry`.
pub(crate) fn cache_dir() -> Option<PathBuf> {
    let base = match std::env::var_os("XDG_CACHE_HOME") {
        Some(d) if Path::new(&d).is_absolute() => PathBuf::from(d),
        _ => PathBuf::from(std::env::var_os("HOME")?).join(".cache"),
    };
    Some(base.join("ferry"))
}

/// Where the cache lives, from the environment.
fn location() -> Option<PathBuf> {
    if std::env::var_os("FERRY_HASH_CACHE").is_some_and(|v| v == "0") {
        return None;
    }
    Some(cache_dir()?.join("hashes.json"))
}

/// Is the file the same one, unchanged, as when `before` was read (device, inode, size,
/// mtime, ctime)?
pub fn unchanged(before: &std::fs::Metadata, after: &std::fs::Metadata) -> bool {
    Stamp::of(before) == Stamp::of(after)
}

/// Was the file last changed more than [`RACY`] before now (so that a later change cannot
/// leave its timestamps as they are)?
pub fn settled(m: &std::fs::Metadata) -> bool {
    now_ns() - Stamp::of(m).ctime_ns >= RACY.as_nanos() as i128
}

/// Nanoseconds since the epoch, as stamps count them.
fn now_ns() -> i128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0)
}

impl HashCache {
    /// The cache of this user (empty when it cannot be read).
    pub fn load() -> HashCache {
        let file = location();
        let entries = file
            .as_ref()
            .and_then(|f| std::fs::read(f).ok())
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        HashCache {
            file,
            entries,
            changed: false,
            unsaved: 0,
            racy: RACY,
        }
    }

    fn key(path: &Path) -> Option<String> {
        std::fs::canonicalize(path)
            .ok()
            .and_then(|p| p.to_str().map(str::to_string))
    }

    /// The hash of `path` if the cache knows it and the file is unchanged since; with its size.
    pub fn get(&self, path: &Path) -> Option<(u64, String)> {
        let m = std::fs::metadata(path).ok()?;
        let e = self.entries.get(&Self::key(path)?)?;
        (e.stamp == Stamp::of(&m)).then(|| (m.size(), e.sha256.clone()))
    }

    /// Remember the hash of `path`, taken while its metadata was `before` (nothing is kept if
    /// the file changed while it was hashed).
    pub fn put(&mut self, path: &Path, before: &std::fs::Metadata, sha256: &str) {
        let (Some(key), Ok(after)) = (Self::key(path), std::fs::metadata(path)) else {
            return;
        };
        let stamp = Stamp::of(before);
        if stamp != Stamp::of(&after) {
            return;
        }
        if now_ns() - stamp.ctime_ns < self.racy.as_nanos() as i128 {
            return;
        }
        if self.entries.len() >= MAX_ENTRIES {
            self.entries.clear();
        }
        self.entries.insert(
            key,
            Entry {
                stamp,
                sha256: sha256.to_string(),
            },
        );
        self.changed = true;
        self.unsaved += 1;
    }

    /// [`HashCache::save`] when it is due: the file just put (of `size` bytes) is large, or
    /// many entries were put since the last save. The rest is saved at the end
    /// ([`HashCache::save`]).
    pub fn save_due(&mut self, size: u64) {
        if size >= SAVE_AT_ONCE || self.unsaved >= SAVE_EVERY {
            self.save();
        }
    }

    /// Write the cache back if it changed (best effort: a cache that cannot be written only
    /// costs time).
    pub fn save(&mut self) {
        let Some(file) = &self.file else { return };
        if !self.changed {
            return;
        }
        self.changed = false;
        self.unsaved = 0;
        let Some(dir) = file.parent() else { return };
        if std::fs::create_dir_all(dir).is_err() {
            return;
        }
        let tmp = dir.join(format!(".hashes.{}.tmp", std::process::id()));
        let Ok(json) = serde_json::to_vec(&self.entries) else {
            return;
        };
        if std::fs::write(&tmp, json).is_ok() && std::fs::rename(&tmp, file).is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache_in(dir: &Path, racy: std::time::Duration) -> HashCache {
        HashCache {
            file: Some(dir.join("cache/hashes.json")),
            entries: BTreeMap::new(),
            changed: false,
            unsaved: 0,
            racy,
        }
    }

    /// Write `content` to `f` until its ctime differs from `old`'s (timestamps move in ticks).
    fn rewrite(f: &Path, content: &[u8], old: &std::fs::Metadata) {
        for _ in 0..100_000 {
            std::fs::write(f, content).unwrap();
            if std::fs::metadata(f).unwrap().ctime_nsec() != old.ctime_nsec()
                || std::fs::metadata(f).unwrap().ctime() != old.ctime()
            {
                return;
            }
        }
        panic!("the ctime of {} never moved", f.display());
    }

    #[test]
    fn a_hash_is_used_while_the_file_is_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("bin");
        std::fs::write(&f, b"one").unwrap();
        let m = std::fs::metadata(&f).unwrap();
        // Just written: racy, not cached.
        let mut c = cache_in(dir.path(), RACY);
        c.put(&f, &m, "h1");
        assert_eq!(c.get(&f), None);
        let mut c = cache_in(dir.path(), std::time::Duration::ZERO);
        assert_eq!(c.get(&f), None);
        c.put(&f, &m, "h1");
        assert_eq!(c.get(&f), Some((3, "h1".to_string())));
        c.save();
        // Another process reads it back.
        let mut again = cache_in(dir.path(), std::time::Duration::ZERO);
        again.entries =
            serde_json::from_slice(&std::fs::read(dir.path().join("cache/hashes.json")).unwrap())
                .unwrap();
        assert_eq!(again.get(&f), Some((3, "h1".to_string())));
        // Rewritten with the same size (and even the old mtime): the ctime moved, so unknown.
        rewrite(&f, b"two", &m);
        std::fs::File::options()
            .write(true)
            .open(&f)
            .unwrap()
            .set_modified(m.modified().unwrap())
            .unwrap();
        assert_eq!(again.get(&f), None);
        // A file that changes while it is hashed is not remembered (the old entry stays).
        let before = std::fs::metadata(&f).unwrap();
        rewrite(&f, b"three", &before);
        again.put(&f, &before, "h3");
        let key = HashCache::key(&f).unwrap();
        assert_eq!(again.entries[&key].sha256, "h1");
        // Hashed while unchanged: remembered.
        let now = std::fs::metadata(&f).unwrap();
        again.put(&f, &now, "h3");
        assert_eq!(again.get(&f), Some((5, "h3".to_string())));
    }
}
