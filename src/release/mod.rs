//! Releases, pure: ids, remote paths, manifests, history records, and which releases to keep.
//!
//! Remote layout (paths relative to the remote user's home directory):
//! ```text
//! .local/share/ferry/SERVICE/releases/RELEASE_ID/   the release's files
//! .local/share/ferry/SERVICE/releases/RELEASE_ID/.ferry/manifest.json
//! .local/share/ferry/SERVICE/releases/RELEASE_ID/.ferry/units/NAME   copies of the unit files
//! .local/share/ferry/SERVICE/current -> releases/RELEASE_ID
//! .local/share/ferry/SERVICE/history.jsonl           one line per deploy, rollback, revert
//! .local/share/ferry/SERVICE/lock                    flock'ed while a deploy runs
//! .local/share/ferry/SERVICE/lock.run                flock'ed while a deploy's hook or health command runs
//! .config/systemd/user/NAME                          installed unit files
//! ```

pub mod env;
pub mod history;

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::shell;

pub use crate::paths::{META_DIR, Paths, ROOT, UNIT_DIR};
pub use history::{Action, Outcome};

/// A release id: UTC time to the second, then a short hash of the release's content, so ids
/// sort by time: `20261124T123456Z-1a2b3c4d`.
pub fn release_id(now: SystemTime, content_hash: &str) -> String {
    format!(
        "{}-{}",
        id_stamp(now),
        &content_hash[..content_hash.len().min(8)]
    )
}

/// What a release id says of its content (the hash after the time, without the `.N` of a
/// second release of the same content in the same second): two releases with the same key
/// hold the same files, units and env.
pub fn content_key(id: &str) -> &str {
    let rest = id.get(17..).unwrap_or(id);
    rest.split('.').next().unwrap_or(rest)
}

/// The time part of a release id: `20261124T123456Z`.
fn id_stamp(now: SystemTime) -> String {
    humantime::format_rfc3339_seconds(now)
        .to_string()
        .replace(['-', ':'], "")
}

/// A release id not taken yet on the host: [`release_id`], with `.2`, `.3`, ... appended when
/// a release of the same second and content exists (a quick redeploy).
pub fn fresh_id(now: SystemTime, content_hash: &str, taken: &[String]) -> String {
    let base = release_id(now, content_hash);
    let mut id = base.clone();
    let mut n = 1;
    while taken.contains(&id) {
        n += 1;
        id = format!("{base}.{n}");
    }
    id
}

/// The id a release is staged under while its own waits for the hashes its upload computes:
/// `20261124T123456Z-pending-1a2b3c4d` (a random suffix); the seal renames the staging
/// directory to the release id.
pub fn pending_id(now: SystemTime) -> String {
    let mut nonce = [0u8; 4];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut nonce)
        .expect("the system's random source");
    format!("{}-pending-{}", id_stamp(now), crate::digest::hex(&nonce))
}

/// Is this id a [`pending_id`]?
pub fn is_pending(id: &str) -> bool {
    is_release_id(id) && id[17..].starts_with("pending-")
}

/// Is this a release id ferry made? (Guards every path built from remote listings.)
pub fn is_release_id(s: &str) -> bool {
    let b = s.as_bytes();
    s.len() >= 18
        && s.len() <= 64
        && b[8] == b'T'
        && b[15] == b'Z'
        && b[16] == b'-'
        && b[..8].iter().all(u8::is_ascii_digit)
        && b[9..15].iter().all(u8::is_ascii_digit)
        && s[17..]
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
}

/// The release id a `current` symlink's target names (`releases/ID`, with or without a
/// trailing `/` or a leading path), when it is a ferry release id.
pub fn parse_current(target: &str) -> Option<String> {
    let t = target.trim().trim_end_matches('/');
    let id = t.rsplit('/').next().unwrap_or(t);
    is_release_id(id).then(|| id.to_string())
}

/// What a release holds; stored as `.ferry/manifest.json` in the release directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub id: String,
    pub service: String,
    /// RFC 3339 UTC.
    pub created: String,
    /// `user@hostname` of the person or job that deployed it.
    pub deployed_by: String,
    /// Commit of the local git working tree, if any (with `-dirty` when it had changes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_commit: Option<String>,
    pub files: Vec<ManifestFile>,
    pub units: Vec<ManifestUnit>,
    /// Units restarted when this release goes live.
    pub restart: Vec<String>,
    /// Units enabled when this release goes live.
    pub enable: Vec<String>,
    /// Other units started (sockets, timers, paths).
    #[serde(default)]
    pub start: Vec<String>,
    /// The timeouts and health checks the release was deployed with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub judging: Option<StoredJudging>,
    /// `[services.NAME.switch]` of the release: it runs as blue/green colours behind a front.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub switch: Option<crate::systemd::switch::Switch>,
    /// The `migrate` hook the release was deployed with: run once per rollout, never undone
    /// (a rollback past this release says so).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migrate: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestFile {
    pub dest: String,
    pub mode: u32,
    pub size: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestUnit {
    pub name: String,
    pub sha256: String,
}

/// Do two releases hold the same thing (files, modes, units, what is restarted, enabled and
/// started, how they are judged), whatever their ids, dates and authors?
pub fn same_content(a: &Manifest, b: &Manifest) -> bool {
    let files = |m: &Manifest| {
        let mut v: Vec<(String, u32, String)> = m
            .files
            .iter()
            .map(|f| (f.dest.clone(), f.mode, f.sha256.clone()))
            .collect();
        v.sort();
        v
    };
    let units = |m: &Manifest| {
        let mut v: Vec<(String, String)> = m
            .units
            .iter()
            .map(|u| (u.name.clone(), u.sha256.clone()))
            .collect();
        v.sort();
        v
    };
    a.service == b.service
        && files(a) == files(b)
        && units(a) == units(b)
        && a.restart == b.restart
        && a.enable == b.enable
        && a.start == b.start
        && a.judging == b.judging
        && a.switch == b.switch
}

impl Manifest {
    pub fn size(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
}

/// How a release is judged when it goes live: with the timeouts and health checks it was
/// deployed with (kept in its manifest), so that a rollback is not judged by a newer config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Judging {
    pub start_timeout: std::time::Duration,
    pub settle_time: std::time::Duration,
    pub health: Option<crate::config::Health>,
}

/// The judging of `manifest`; a manifest written before ferry kept it falls back to the
/// service's config.
pub fn judging(manifest: &Manifest, service: &crate::config::Service) -> Judging {
    match &manifest.judging {
        Some(j) => Judging {
            start_timeout: std::time::Duration::from_millis(j.start_timeout_ms),
            settle_time: std::time::Duration::from_millis(j.settle_time_ms),
            health: j.health.clone(),
        },
        None => Judging {
            start_timeout: service.start_timeout,
            settle_time: service.settle_time,
            health: service.health.clone(),
        },
    }
}

/// [`Judging`] as stored in a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredJudging {
    pub start_timeout_ms: u64,
    pub settle_time_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<crate::config::Health>,
}

impl StoredJudging {
    pub fn of(service: &crate::config::Service) -> StoredJudging {
        StoredJudging {
            start_timeout_ms: service.start_timeout.as_millis() as u64,
            settle_time_ms: service.settle_time.as_millis() as u64,
            health: service.health.clone(),
        }
    }
}

/// Script printing `manifest=ID JSON` (or `manifest=ID` without one) and `size=ID KIB` for
/// every release directory of the service.
pub fn manifests_script(paths: &Paths) -> String {
    format!(
        "cd \"$HOME\" || exit 1\nS={}\nfor d in \"$S\"/releases/*/; do d=${{d%/}}; id=${{d##*/}}; \
         if [ -f \"$d/{META_DIR}/manifest.json\" ]; then echo \"manifest=$id $(tr -d '\\n' < \"$d/{META_DIR}/manifest.json\")\"; \
         else echo \"manifest=$id\"; fi; \
         echo \"size=$id $(du -sk \"$d\" 2>/dev/null | cut -f1)\"; done; exit 0\n",
        crate::shell::quote(&paths.dir()),
    )
}

/// Release ids with their manifest (None for a release without a readable one).
pub type Manifests = Vec<(String, Option<Manifest>)>;

/// Parse [`manifests_script`]'s output: manifests by release id, and sizes in KiB.
pub fn parse_manifests(text: &str) -> (Manifests, Vec<(String, u64)>) {
    let mut manifests = Vec::new();
    let mut sizes = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("manifest=") {
            let (id, json) = rest.split_once(' ').unwrap_or((rest, ""));
            if is_release_id(id) {
                manifests.push((id.to_string(), serde_json::from_str(json).ok()));
            }
        } else if let Some(rest) = line.strip_prefix("size=")
            && let Some((id, kib)) = rest.split_once(' ')
            && let Ok(k) = kib.trim().parse()
        {
            sizes.push((id.to_string(), k));
        }
    }
    (manifests, sizes)
}

/// One line of `history.jsonl`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryRecord {
    /// RFC 3339 UTC.
    pub time: String,
    /// `deploy`, `rollback`, `revert` (the self-arming timer), `migrate`.
    pub action: Action,
    pub release: String,
    /// The release that was current before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<String>,
    /// `ok`, `failed`, `refused`, `rolled-back`, `rollback-failed`, `reverted`, `revert-failed`.
    pub outcome: Outcome,
    pub by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_commit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Parse history lines, skipping lines that are not records (a torn last line after a crash).
pub fn parse_history(text: &str) -> Vec<HistoryRecord> {
    text.lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Does record `i` leave its release live and good? An `ok` record, or a way back to a
/// release that an earlier record verified: the host's self-revert (`revert ... reverted`)
/// or a rollback cut off before it verified it (`rollback ... interrupted`); it was verified
/// before, so it is still a good rollback target.
pub fn good_at(history: &[HistoryRecord], i: usize) -> bool {
    let r = &history[i];
    let back = (r.action == Action::Revert && r.outcome == Outcome::Reverted)
        || (r.action == Action::Rollback && r.outcome == Outcome::Interrupted);
    r.outcome == Outcome::Ok
        || (back
            && history[..i]
                .iter()
                .any(|e| e.release == r.release && e.outcome == Outcome::Ok))
}

/// The placeholder in a pending rollback record (see [`crate::paths::Paths::pending_record`])
/// that the host replaces by where `current` points when it appends the record.
pub const PENDING_CURRENT: &str = "__CURRENT__";

/// The good releases of `history` (see [`good_at`]), newest first.
fn good_releases(history: &[HistoryRecord]) -> impl Iterator<Item = &str> {
    (0..history.len())
        .rev()
        .filter(|&i| good_at(history, i))
        .map(|i| history[i].release.as_str())
}

/// The last release that was deployed (or rolled back to) successfully, other than `except`.
pub fn last_good<'a>(history: &'a [HistoryRecord], except: Option<&str>) -> Option<&'a str> {
    good_releases(history).find(|r| Some(*r) != except)
}

/// Releases to delete so that `keep` remain: oldest first; never the current one, never the
/// last healthy one before it, never one that is not a ferry release id.
pub fn to_prune(
    releases: &[String],
    current: Option<&str>,
    protect: Option<&str>,
    keep: usize,
) -> Vec<String> {
    let mut sorted: Vec<&String> = releases.iter().filter(|r| is_release_id(r)).collect();
    sorted.sort();
    let excess = sorted.len().saturating_sub(keep);
    sorted
        .into_iter()
        .filter(|r| Some(r.as_str()) != current && Some(r.as_str()) != protect)
        .take(excess)
        .cloned()
        .collect()
}

/// The release before `current` among those present (for `ferry rollback` without `--to`):
/// the newest healthy one in history, else the newest older release on disk.
pub fn rollback_target(
    releases: &[String],
    current: Option<&str>,
    history: &[HistoryRecord],
) -> Option<String> {
    let present = |r: &str| releases.iter().any(|x| x == r);
    if let Some(good) = good_releases(history).find(|r| Some(*r) != current && present(r)) {
        return Some(good.to_string());
    }
    let mut older: Vec<&String> = releases
        .iter()
        .filter(|r| is_release_id(r) && Some(r.as_str()) < current)
        .collect();
    older.sort();
    older.last().map(|s| s.to_string())
}

/// RFC 3339 UTC, seconds.
/// The stat record of a release (in its meta directory): one line per file, `SHA256 INODE SIZE
/// CTIME_NS DEST`, written when the release is sealed. The next deploy trusts a file's hash from
/// it while `stat` still says the same (any write, chmod or replacement of the file changes its
/// ctime), and hashes the file on the host only when it does not.
pub const STAT_RECORD: &str = "files.stat";

/// The `stat` format of the record (after the hash): inode, size, ctime with nanoseconds, name.
pub const STAT_FORMAT: &str = "%i %s %.9Z %n";

/// A file of a release as the seal sees it: where it is, its mode, and whether it already has
/// that mode (a file copied from the current release by the reuse step); the others were
/// written 0600.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealFile {
    pub dest: String,
    pub mode: u32,
    pub has_mode: bool,
}

impl SealFile {
    /// A file written 0600 by the upload, given `mode` by the seal.
    pub fn written(dest: impl Into<String>, mode: u32) -> SealFile {
        SealFile {
            dest: dest.into(),
            mode,
            has_mode: false,
        }
    }
}

/// Above this many files the seal makes them durable with one `sync -f` (syncfs of the
/// filesystem that holds them) rather than an fsync per file (10,000 files: 3 ms against
/// 40 ms on the test remote, and a journal commit per file on a real disk).
pub const SYNCFS_ABOVE: usize = 256;

/// Shell command that seals the staged release `id`: gives each file its mode (`files` are the
/// release's files, `meta` the files of its meta directory, each with its mode; all were
/// written 0600 but for the files that have their mode already), fsyncs them (before the
/// rename: a crash must not leave a sealed release with empty files), writes the stat record, then renames the staging directory into `releases/ID`
/// (failing if it exists): from then on the release is complete on the host. The files'
/// SHA-256 hashes come on stdin, one line each in the order of `files` (see [`seal_input`];
/// not on the command line, which an error message shows: the hash of a short secret could
/// be guessed).
pub fn seal_command(
    paths: &Paths,
    staging: &str,
    id: &str,
    files: &[SealFile],
    meta: &[(String, u32)],
    decode: &[Decode],
) -> String {
    let staging = shell::quote(&paths.staging(staging));
    let mut script = format!("set -e\ncd \"$HOME\"\nN={staging}\n");
    if !decode.is_empty() {
        script.push_str(&format!("C=\"$HOME\"/{}\n", shell::quote(&paths.current())));
    }
    script.push_str("cd \"$N\"\n");
    for d in decode {
        script.push_str(&d.command());
    }
    // No command's argument list grows with the number of files: the lists are printed by
    // the shell's own `printf` (a builtin) into `xargs -0`. One chmod per mode.
    let mut by_mode: std::collections::BTreeMap<u32, Vec<&str>> = Default::default();
    let to_mode = files
        .iter()
        .filter(|f| !f.has_mode)
        .map(|f| (f.dest.as_str(), f.mode));
    for (path, mode) in to_mode.chain(meta.iter().map(|(p, m)| (p.as_str(), *m))) {
        by_mode.entry(mode).or_default().push(path);
    }
    for (mode, paths) in &by_mode {
        script.push_str(&format!(
            "{} | xargs -0 -r chmod {mode:o} --\n",
            shell::nul_list(paths.iter().copied())
        ));
    }
    // The release's files as a function: listed once, used twice.
    script.push_str(&format!(
        "ferry_files() {{ {}; }}\n",
        shell::nul_list(files.iter().map(|f| f.dest.as_str()))
    ));
    // `sync FILE...` fsyncs each, `sync -f .` the whole filesystem at once (coreutils 8.24 and
    // later); an older sync syncs everything.
    if files.len() + meta.len() > SYNCFS_ABOVE {
        script.push_str("sync -f . 2>/dev/null || sync\n");
    } else {
        script.push_str(&format!(
            "{{ ferry_files; {}; }} | xargs -0 -r sync -- 2>/dev/null || sync\n",
            shell::nul_list(meta.iter().map(|(p, _)| p.as_str()).chain(["."]))
        ));
    }
    if !files.is_empty() {
        script.push_str(&format!(
            "cat > {meta}/{rec}.sha\n\
             ferry_files | xargs -0 -r stat -c {fmt} -- | paste -d' ' {meta}/{rec}.sha - > {meta}/{rec}\n\
             rm -f {meta}/{rec}.sha\n",
            meta = META_DIR,
            rec = STAT_RECORD,
            fmt = shell::quote(STAT_FORMAT),
        ));
    }
    script.push_str(&format!(
        "cd \"$HOME\"\nmv -T \"$N\" {}\necho {SEALED}\n",
        shell::quote(&paths.release(id))
    ));
    script
}

/// A file sent in another form than its own bytes, which [`seal_command`] turns into the file
/// in the staging directory, checking the result's SHA-256 on the host. Paths are relative to
/// the staging directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decode {
    /// A gzip stream: `gzip -dc`.
    Gunzip {
        from: String,
        to: String,
        sha256: String,
    },
    /// A delta from the current release's copy at `to` (see `transport::delta`): the
    /// operations (`c OFFSET LEN`: from the old copy, `l OFFSET LEN`: from the literals) and
    /// the literals, gzip-compressed.
    Patch {
        ops: String,
        literals: String,
        to: String,
        sha256: String,
    },
}

/// What the seal says on stderr when a decoded file is not what was sent.
pub const DECODE_MISMATCH: &str = "ferry: decoded on the host, its SHA-256 is not the file's";

impl Decode {
    fn to(&self) -> &str {
        match self {
            Decode::Gunzip { to, .. } | Decode::Patch { to, .. } => to,
        }
    }

    fn sha256(&self) -> &str {
        match self {
            Decode::Gunzip { sha256, .. } | Decode::Patch { sha256, .. } => sha256,
        }
    }

    /// The commands, run in the staging directory; the current release is `$C`.
    fn command(&self) -> String {
        let to = shell::quote(self.to());
        let mut script = match self {
            Decode::Gunzip { from, .. } => {
                let from = shell::quote(from);
                format!("gzip -dc < {from} > {to}\nrm -f -- {from}\n")
            }
            Decode::Patch { ops, literals, .. } => {
                let (ops, gz) = (shell::quote(ops), shell::quote(literals));
                let lit = shell::quote(literals.trim_end_matches(".gz"));
                // One `dd` per range (GNU dd: byte offsets and counts).
                format!(
                    "gzip -dc < {gz} > {lit}\n\
                     while read -r op a b; do\n\
                     case $op in\n\
                     c) dd if=\"$C\"/{to} bs=64K iflag=skip_bytes,count_bytes skip=\"$a\" count=\"$b\" status=none ;;\n\
                     l) dd if={lit} bs=64K iflag=skip_bytes,count_bytes skip=\"$a\" count=\"$b\" status=none ;;\n\
                     *) exit 1 ;;\n\
                     esac\n\
                     done < {ops} > {to}\n\
                     rm -f -- {ops} {gz} {lit}\n"
                )
            }
        };
        script.push_str(&format!(
            "[ \"$(sha256sum < {to} | cut -c1-64)\" = {sha} ] || {{ echo {msg} >&2; exit 1; }}\n",
            sha = self.sha256(),
            msg = shell::quote(&format!(
                "{}: {DECODE_MISMATCH} ({}): deploy again",
                self.to(),
                self.sha256()
            )),
        ));
        script
    }
}

/// The line [`seal_command`] prints once the release is sealed (commands may follow it).
pub const SEALED: &str = "@ferry-sealed";

/// The stdin of [`seal_command`]: the files' hashes, a line each.
pub fn seal_input(hashes: &[&str]) -> Vec<u8> {
    hashes
        .iter()
        .map(|h| format!("{h}\n"))
        .collect::<String>()
        .into_bytes()
}

pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(crate::fault::now()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn ids_sort_by_time() {
        let t = UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        let a = release_id(t, "abcdef0123456789");
        assert!(is_release_id(&a), "{a}");
        assert!(a.ends_with("-abcdef01"));
        let b = release_id(t + Duration::from_secs(1), "00000000");
        assert!(b > a);
        assert_eq!(&a[..16], "20261118T110640Z");
    }

    #[test]
    fn fresh_ids_never_collide() {
        let t = UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        let a = release_id(t, "abcdef0123456789");
        let b = fresh_id(t, "abcdef0123456789", std::slice::from_ref(&a));
        assert_eq!(b, format!("{a}.2"));
        assert!(is_release_id(&b));
        let c = fresh_id(t, "abcdef0123456789", &[a.clone(), b.clone()]);
        assert_eq!(c, format!("{a}.3"));
        assert!(b > a && c > b);
    }

    #[test]
    fn current_targets() {
        let id = "20261124T123456Z-1a2b3c4d";
        assert_eq!(
            parse_current(&format!("releases/{id}")).as_deref(),
            Some(id)
        );
        assert_eq!(
            parse_current(&format!("releases/{id}/\n")).as_deref(),
            Some(id)
        );
        assert_eq!(
            parse_current(&format!("/home/u/.local/share/ferry/s/releases/{id}")).as_deref(),
            Some(id)
        );
        assert_eq!(parse_current("releases/../../etc"), None);
        assert_eq!(parse_current(""), None);
    }

    #[test]
    fn release_id_guard() {
        assert!(is_release_id("20261124T123456Z-1a2b3c4d"));
        assert!(!is_release_id("current"));
        assert!(!is_release_id("../../etc"));
        assert!(!is_release_id("20261124T123456Z-a/b"));
        assert!(!is_release_id(".20261124T123456Z-1a2b3c4d.partial"));
    }

    fn ids(n: usize) -> Vec<String> {
        (0..n)
            .map(|i| format!("20261124T1200{i:02}Z-0000000{i}"))
            .collect()
    }

    #[test]
    fn prune_keeps_newest_current_and_last_good() {
        let r = ids(7);
        assert_eq!(
            to_prune(&r, Some(&r[6]), None, 5),
            vec![r[0].clone(), r[1].clone()]
        );
        // The last good one is old: it is kept, and one more is pruned instead.
        assert_eq!(
            to_prune(&r, Some(&r[6]), Some(&r[0]), 5),
            vec![r[1].clone(), r[2].clone()]
        );
        // Current is old (rolled back to): kept.
        assert_eq!(
            to_prune(&r, Some(&r[1]), None, 5),
            vec![r[0].clone(), r[2].clone()]
        );
        assert!(to_prune(&r, Some(&r[6]), None, 10).is_empty());
        let mut with_junk = r.clone();
        with_junk.push("notes".into());
        assert_eq!(to_prune(&with_junk, Some(&r[6]), None, 5).len(), 2);
    }

    fn rec(release: &str, outcome: Outcome) -> HistoryRecord {
        HistoryRecord {
            time: "t".into(),
            action: Action::Deploy,
            release: release.into(),
            previous: None,
            outcome,
            by: "me@here".into(),
            git_commit: None,
            reason: None,
        }
    }

    #[test]
    fn last_good_and_rollback_target() {
        let r = ids(4);
        let h = vec![
            rec(&r[0], Outcome::Ok),
            rec(&r[1], Outcome::Ok),
            rec(&r[2], Outcome::RolledBack),
            rec(&r[3], Outcome::Ok),
        ];
        assert_eq!(last_good(&h, Some(&r[3])), Some(r[1].as_str()));
        assert_eq!(rollback_target(&r, Some(&r[3]), &h), Some(r[1].clone()));
        // Without history: the newest older release on disk.
        assert_eq!(rollback_target(&r, Some(&r[3]), &[]), Some(r[2].clone()));
        assert_eq!(rollback_target(&r[..1], Some(&r[0]), &[]), None);
    }

    /// After the host reverted to X (verified before), X is the rollback target of
    /// the next failed deploy, not the release before it; a revert to a release never
    /// verified does not make it good.
    #[test]
    fn a_release_the_host_reverted_to_stays_a_good_target() {
        let r: Vec<String> = (1..=4)
            .map(|i| format!("2026010{i}T000000Z-0000000{i}"))
            .collect();
        let revert = |to: &str, from: &str| HistoryRecord {
            action: Action::Revert,
            previous: Some(from.into()),
            ..rec(to, Outcome::Reverted)
        };
        let h = vec![
            rec(&r[0], Outcome::Ok),
            rec(&r[1], Outcome::Ok),
            revert(&r[1], &r[2]),
        ];
        assert!(good_at(&h, 2));
        assert_eq!(last_good(&h, Some(&r[3])), Some(r[1].as_str()));
        assert_eq!(rollback_target(&r, Some(&r[3]), &h), Some(r[1].clone()));
        // A revert to a release no record verified is not good.
        let h = vec![
            rec(&r[0], Outcome::Ok),
            rec(&r[1], Outcome::Failed),
            revert(&r[1], &r[2]),
        ];
        assert!(!good_at(&h, 2));
        assert_eq!(rollback_target(&r, Some(&r[3]), &h), Some(r[0].clone()));
    }

    #[test]
    fn history_skips_torn_lines() {
        let line = serde_json::to_string(&rec("x", Outcome::Ok)).unwrap();
        let text = format!("{line}\n{line}\n{{\"time\":\"t\",\"act");
        assert_eq!(parse_history(&text).len(), 2);
    }

    #[test]
    fn history_lines_keep_their_exact_names_and_unknown_ones_stay_readable() {
        let line =
            r#"{"time":"t","action":"rollback","release":"r","outcome":"rolled-back","by":"me"}"#;
        let h = parse_history(line);
        assert_eq!(h[0].action, Action::Rollback);
        assert_eq!(h[0].outcome, Outcome::RolledBack);
        assert_eq!(serde_json::to_string(&h[0]).unwrap(), line);
        // Written by another version: names this one does not know are kept, not dropped.
        let other = r#"{"time":"t","action":"canary","release":"r","outcome":"paused","by":"me"}"#;
        let text = format!("{line}\n{other}\n{line}");
        let h = parse_history(&text);
        assert_eq!(h.len(), 3);
        assert_eq!(h[1].action, Action::Other("canary".into()));
        assert_eq!(h[1].outcome, Outcome::Other("paused".into()));
        assert_eq!(serde_json::to_string(&h[1]).unwrap(), other);
        assert!(!good_at(&h, 1));
    }

    #[test]
    fn paths() {
        let p = Paths::new("web");
        assert_eq!(p.release("ID"), ".local/share/ferry/web/releases/ID");
        assert_eq!(
            p.staging("ID"),
            ".local/share/ferry/web/releases/.ID.partial"
        );
        assert_eq!(p.current(), ".local/share/ferry/web/current");
        assert_eq!(p.unit("a.service"), ".config/systemd/user/a.service");
    }
}
