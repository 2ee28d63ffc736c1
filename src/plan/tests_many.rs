//! Host scripts for releases of many files, run by a real `sh`: the seal makes them durable
//! with one `sync -f` instead of an fsync per file, leaves the mode of the files the reuse step
//! copied, gives the others theirs, and writes a stat record of every file; the probe reads
//! only regular files of the current release without a shell test per file.

use super::tests::sh_in;
use super::{ProbeLock, parse_remote_state, remote_state_script};
use crate::paths::Paths;
use crate::release::{self, SealFile};

#[test]
fn a_seal_of_many_files_syncs_the_filesystem_once_and_leaves_reused_modes_alone() {
    use std::os::unix::fs::PermissionsExt;
    let home = tempfile::tempdir().unwrap();
    let paths = Paths::new("app");
    let id = "20261204T000000Z-00000001";
    let staging = home.path().join(paths.staging(id));
    std::fs::create_dir_all(staging.join("data")).unwrap();
    std::fs::create_dir_all(staging.join(release::META_DIR)).unwrap();
    let n = release::SYNCFS_ABOVE + 44;
    let mut files = Vec::new();
    for i in 0..n {
        let dest = format!("data/f{i:04}");
        let path = staging.join(&dest);
        std::fs::write(&path, format!("{i}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        // Every other file "was copied by the reuse step": the seal must not touch its mode
        // (here left 0600 on disk to tell a chmod from none).
        files.push(SealFile {
            dest,
            mode: 0o644,
            has_mode: i % 2 == 1,
        });
    }
    let script = release::seal_command(&paths, id, id, &files, &[], &[]);
    assert!(
        script.contains("\nsync -f . 2>/dev/null || sync\n"),
        "{script}"
    );
    assert!(!script.contains("xargs -0 -r sync"), "{script}");
    let hashes: Vec<String> = (0..n).map(|i| format!("{i:064x}")).collect();
    let refs: Vec<&str> = hashes.iter().map(String::as_str).collect();
    let out = sh_in(home.path(), &script, &release::seal_input(&refs));
    assert!(out.lines().any(|l| l == release::SEALED), "{out}");
    let sealed = home.path().join(paths.release(id));
    let mode = |i: usize| {
        let p = sealed.join(format!("data/f{i:04}"));
        std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
    };
    assert_eq!(
        (mode(0), mode(1), mode(n - 2), mode(n - 1)),
        (0o644, 0o600, 0o644, 0o600)
    );
    let record =
        std::fs::read_to_string(sealed.join(release::META_DIR).join(release::STAT_RECORD)).unwrap();
    assert_eq!(record.lines().count(), n);
    assert!(
        record.lines().next().unwrap().starts_with(&hashes[0]),
        "{record}"
    );
}

#[test]
fn a_seal_of_a_few_files_fsyncs_each() {
    let paths = Paths::new("app");
    let files = [SealFile::written("bin/app", 0o755)];
    let script = release::seal_command(&paths, "x", "x", &files, &[], &[]);
    assert!(
        script.contains("| xargs -0 -r sync -- 2>/dev/null || sync\n"),
        "{script}"
    );
    assert!(!script.contains("sync -f"), "{script}");
}

#[test]
fn the_probe_reports_regular_files_only() {
    let home = tempfile::tempdir().unwrap();
    let paths = Paths::new("app");
    let id = "20261204T000000Z-00000001";
    let rel = home.path().join(paths.release(id));
    std::fs::create_dir_all(rel.join("d")).unwrap();
    std::fs::write(rel.join("a"), b"a\n").unwrap();
    std::fs::write(rel.join("empty"), b"").unwrap();
    std::os::unix::fs::symlink("a", rel.join("l")).unwrap();
    std::os::unix::fs::symlink(format!("releases/{id}"), home.path().join(paths.current()))
        .unwrap();
    let dests: Vec<String> = ["a", "empty", "l", "d", "missing"].map(String::from).into();
    let out = sh_in(
        home.path(),
        &remote_state_script(&paths, &dests, &[], ProbeLock::Ignore),
        b"",
    );
    let files = parse_remote_state(&out).current_files;
    assert_eq!(
        files.keys().map(String::as_str).collect::<Vec<_>>(),
        ["a", "empty"],
        "{out}"
    );
    assert_eq!(files["a"], crate::digest::sha256_hex(b"a\n"));
}
