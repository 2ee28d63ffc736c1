//! Resuming uploads an interrupted deploy cut off: the probe lines that say which files of
//! the new release a staging directory it left holds (their size, and their SHA-256 as the
//! host hashes them), and the choice of those taken into the new staging directory. The
//! upload sends such a file from where it stopped only when the host's bytes are the local
//! file's first bytes; the seal checks the whole file's SHA-256 as for any upload.

use crate::plan::{Plan, RemoteState, Transfer};
use crate::release::Paths;
use crate::shell::quote;

/// Files smaller than this are sent again whole: resuming them saves next to nothing.
pub const RESUME_MIN: u64 = 1024 * 1024;

/// A file at a dest of the new release in a staging directory an interrupted deploy left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartialFile {
    /// The staging directory's name in `releases` (`.ID.partial`).
    pub dir: String,
    pub dest: String,
    pub size: u64,
    /// SHA-256 (hex) of its bytes, hashed on the host.
    pub sha256: String,
}

/// Shell lines printing `partial.file=SIZE SHA256 DIR/DEST` for each of `files` (dest, local
/// size) of at least [`RESUME_MIN`] that a leftover staging directory holds as a regular file
/// of at most the local size (a longer one is not the start of it). Nothing runs a hash when
/// no staging directory was left.
pub fn partial_files_script(paths: &Paths, files: &[(String, u64)]) -> String {
    let files: Vec<_> = files.iter().filter(|(_, n)| *n >= RESUME_MIN).collect();
    if files.is_empty() {
        return String::new();
    }
    let mut s = format!(
        "ferry_partial() {{ for d in \"$HOME\"/{r}/.*.partial; do f=\"$d/$2\"; \
         [ -f \"$f\" ] && [ ! -L \"$f\" ] || continue; n=$(stat -c %s -- \"$f\" 2>/dev/null) || continue; \
         [ \"$n\" -gt 0 ] && [ \"$n\" -le \"$1\" ] || continue; \
         echo \"partial.file=$n $(sha256sum < \"$f\" | cut -c1-64) ${{d##*/}}/$2\"; done; }}\n",
        r = quote(&paths.releases())
    );
    for (dest, size) in files {
        s.push_str(&format!("ferry_partial {size} {}\n", quote(dest)));
    }
    s
}

/// Parse one `partial.file=` value (see [`partial_files_script`]).
pub(crate) fn parse_partial_file(v: &str) -> Option<PartialFile> {
    let mut parts = v.splitn(3, ' ');
    let size = parts.next()?.parse().ok()?;
    let sha256 = parts.next()?;
    let (dir, dest) = parts.next()?.split_once('/')?;
    let id = dir.strip_prefix('.')?.strip_suffix(".partial")?;
    let hex = sha256.len() == 64 && sha256.bytes().all(|b| b.is_ascii_hexdigit());
    (hex && crate::release::is_release_id(id) && !dest.is_empty()).then(|| PartialFile {
        dir: dir.to_string(),
        dest: dest.to_string(),
        size,
        sha256: sha256.to_string(),
    })
}

/// The leftover files the new staging directory takes before the cleanup removes the rest:
/// for each file `plan` uploads from disk, the longest one at its dest that is no longer than
/// it. Whether it is the start of the local file is for the upload to check.
pub fn resumable(plan: &Plan, remote: &RemoteState) -> Vec<PartialFile> {
    let new = format!(".{}.partial", plan.staging);
    plan.files
        .iter()
        .filter(|f| f.transfer == Transfer::Upload && f.content.is_none())
        .filter(|f| f.size >= RESUME_MIN)
        .filter_map(|f| {
            remote
                .partial_files
                .iter()
                .filter(|p| p.dest == f.dest && p.size <= f.size)
                .filter(|p| p.dir != new && remote.partial.contains(&p.dir))
                .max_by_key(|p| p.size)
                .cloned()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str, home: &std::path::Path) -> String {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(script)
            .env("HOME", home)
            .output()
            .unwrap();
        assert!(out.status.success(), "{script}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    }

    #[test]
    fn the_probe_lists_leftover_files_no_longer_than_the_local_ones() {
        let home = tempfile::tempdir().unwrap();
        let paths = Paths::new("app");
        let releases = home.path().join(paths.releases());
        let old = ".20261124T100000Z-pending-1a2b3c4d.partial";
        std::fs::create_dir_all(releases.join(old).join("bin")).unwrap();
        let head = vec![7u8; 1536 * 1024];
        std::fs::write(releases.join(old).join("bin/my app"), &head).unwrap();
        std::fs::write(releases.join(old).join("long"), vec![1u8; 3 << 20]).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", releases.join(old).join("link")).unwrap();
        let mib = RESUME_MIN;
        let files = [
            ("bin/my app".to_string(), 4 * mib),
            ("long".to_string(), 2 * mib),
            ("link".to_string(), 4 * mib),
            ("absent".to_string(), 4 * mib),
        ];
        let out = sh(&partial_files_script(&paths, &files), home.path());
        let found: Vec<_> = out
            .lines()
            .filter_map(|l| l.strip_prefix("partial.file="))
            .map(|v| parse_partial_file(v).unwrap())
            .collect();
        assert_eq!(
            found,
            vec![PartialFile {
                dir: old.into(),
                dest: "bin/my app".into(),
                size: head.len() as u64,
                sha256: crate::digest::sha256_hex(&head),
            }],
            "{out}"
        );
        // No leftover directory, or no file big enough to resume: nothing to run.
        assert_eq!(
            sh(
                &partial_files_script(&paths, &files),
                home.path().join("none").as_path()
            ),
            ""
        );
        assert_eq!(
            partial_files_script(&paths, &[("small".into(), mib - 1)]),
            ""
        );
    }

    #[test]
    fn the_longest_leftover_no_longer_than_the_file_is_taken() {
        use crate::plan::tests::{local, origin, service};
        let mut l = local();
        l.files[0].size = 4 * RESUME_MIN;
        let dir = |n: u8| format!(".20261124T10000{n}Z-00000000.partial");
        let at = |n: u8, dest: &str, size: u64| PartialFile {
            dir: dir(n),
            dest: dest.into(),
            size,
            sha256: "ab".repeat(32),
        };
        let mut remote = RemoteState {
            partial: vec![dir(1), dir(2)],
            ..Default::default()
        };
        remote.partial_files = vec![
            at(1, "bin/app", RESUME_MIN),
            at(2, "bin/app", 2 * RESUME_MIN),
            // Longer than the file: not its start.
            at(1, "bin/app", 5 * RESUME_MIN),
            // Not a directory the cleanup removes.
            at(3, "bin/app", 3 * RESUME_MIN),
            // Too small to resume.
            at(2, "share/msg", 3),
        ];
        let id = "20261124T120000Z-abcdef01";
        let plan = crate::plan::make(&service(), &l, &remote, id, &origin(), Default::default());
        assert_eq!(
            resumable(&plan, &remote),
            vec![at(2, "bin/app", 2 * RESUME_MIN)]
        );
        // A file the plan reuses or renders from a template is not resumed.
        let mut l = l.clone();
        l.files[0].content = Some(b"x".to_vec());
        let plan = crate::plan::make(&service(), &l, &remote, id, &origin(), Default::default());
        assert_eq!(resumable(&plan, &remote), vec![]);
    }

    #[test]
    fn only_ferrys_own_staging_directories_and_hashes_are_taken() {
        let sha = "ab".repeat(32);
        let ok = format!("5 {sha} .20261124T100000Z-00000001.partial/bin/app");
        assert_eq!(parse_partial_file(&ok).unwrap().dest, "bin/app");
        for bad in [
            format!("5 {sha} ../x/bin/app"),
            format!("5 {sha} .junk.partial/bin/app"),
            "5 abc .20261124T100000Z-00000001.partial/bin/app".to_string(),
            format!("x {sha} .20261124T100000Z-00000001.partial/bin/app"),
            format!("5 {sha} .20261124T100000Z-00000001.partial/"),
        ] {
            assert_eq!(parse_partial_file(&bad), None, "{bad}");
        }
    }
}
