//! Releases of many files: 10,000 small files deploy, and redeploy with one changed, all of
//! them right on the host; a dry run of them reads the host too. No remote command grows with
//! the number of files (a long script goes over the channel's stdin, lists through `xargs -0`).
//! Remote users: ferry121, ferry122.

use crate::support::{Project, host_table, remote};

/// The files' directory in the project and in the release.
const DIR: &str = "data";

/// The content of file `i` (a few bytes), `round` telling deploys apart.
fn content(i: usize, round: &str) -> String {
    format!("{round} {i}\n")
}

fn dest(i: usize) -> String {
    format!("{DIR}/d{:02}/f{i:05}.txt", i % 100)
}

/// A project of `n` files and one unit, every file at `data/...` in both places.
fn project(user: &str, n: usize) -> Project {
    let p = Project::new();
    p.write(
        "many.service",
        "[Service]\nExecStart=/bin/sh -c 'exec sleep 600'\n",
    );
    let mut config = format!(
        "{}[services.many]\nunits = [\"many.service\"]\nstart_timeout = \"10s\"\nsettle_time = \"0.2s\"\n",
        host_table("web1", user)
    );
    for i in 0..n {
        p.write(&dest(i), content(i, "one"));
        config.push_str(&format!(
            "[[services.many.files]]\nsource = \"{d}\"\ndest = \"{d}\"\n",
            d = dest(i)
        ));
    }
    p.config(&config);
    p
}

/// The SHA-256 of the tree under `data` (each file's hash and path, sorted), computed by the
/// same commands here and on the host.
const TREE_SUM: &str =
    "find data -type f | LC_ALL=C sort | xargs -d '\\n' sha256sum | sha256sum | cut -c1-64";

fn local_tree(p: &Project) -> String {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(TREE_SUM)
        .current_dir(p.path("."))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn host_tree(user: &str) -> String {
    remote()
        .ssh(
            user,
            &format!("cd ~/.local/share/ferry/many/current && {TREE_SUM}"),
        )
        .trim()
        .to_string()
}

fn host_count(user: &str) -> usize {
    remote()
        .ssh(
            user,
            &format!("find ~/.local/share/ferry/many/current/{DIR} -type f | wc -l"),
        )
        .trim()
        .parse()
        .unwrap()
}

/// What `ferry releases` says: (id, current, outcome) of each release.
fn releases(p: &Project) -> Vec<(String, bool, String)> {
    let run = p.ferry(&["--output", "json", "releases", "many"]);
    run.assert_code(0);
    run.events("release")
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap().to_string(),
                r["current"].as_bool().unwrap(),
                r["outcome"].as_str().unwrap_or("-").to_string(),
            )
        })
        .collect()
}

/// The message of a deploy's JSON output saying how many files it uploads and reuses.
fn upload_message(run: &crate::support::Run) -> String {
    run.events("phase")
        .iter()
        .filter(|e| e["phase"] == "upload")
        .filter_map(|e| e["message"].as_str())
        .find(|m| m.starts_with("uploading "))
        .unwrap_or_default()
        .to_string()
}

/// 10,000 files deploy in one tar stream (all on the host, the tree's hash the local one's,
/// each file's mode set), then a redeploy with one changed uploads that one and reuses the
/// rest (the changed file new on the host, the others still right); `ferry releases` lists
/// both, the second current.
#[test]
fn ten_thousand_files_deploy_and_redeploy_with_one_changed() {
    let user = "ferry121";
    let n = 10_000;
    let r = remote();
    r.reset(user);
    let p = project(user, n);
    let started = std::time::Instant::now();
    let first = p.ferry(&["--output", "json", "deploy"]);
    first.assert_code(0);
    println!("deploy of {n} files: {:.2?}", started.elapsed());
    // Sent as one tar stream, not file by file over SFTP.
    assert!(
        upload_message(&first).starts_with(&format!("uploading {n} file(s)"))
            && upload_message(&first).contains(&format!("{n} in one tar stream")),
        "{first}"
    );
    assert_eq!(host_count(user), n);
    assert_eq!(host_tree(user), local_tree(&p));
    // Unpacked 0600, then given their mode by the seal (0644 by default).
    assert_eq!(
        r.ssh(
            user,
            &format!("stat -c %a ~/.local/share/ferry/many/current/{}", dest(7))
        )
        .trim(),
        "644"
    );
    let listed = releases(&p);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert!(listed[0].1 && listed[0].2 == "deploy ok", "{listed:?}");

    let changed = 4321;
    p.write(&dest(changed), content(changed, "two"));
    let started = std::time::Instant::now();
    let second = p.ferry(&["--output", "json", "deploy"]);
    second.assert_code(0);
    println!(
        "redeploy of {n} files, one changed: {:.2?}",
        started.elapsed()
    );
    assert!(
        upload_message(&second).starts_with("uploading 1 file(s)")
            && upload_message(&second).contains(&format!("({} reused", n - 1)),
        "{second}"
    );
    assert_eq!(
        r.ssh(
            user,
            &format!("cat ~/.local/share/ferry/many/current/{}", dest(changed))
        ),
        content(changed, "two")
    );
    assert_eq!(host_count(user), n);
    assert_eq!(host_tree(user), local_tree(&p));
    // The reused files have their mode (0644 by default).
    assert_eq!(
        r.ssh(
            user,
            &format!(
                "stat -c %a ~/.local/share/ferry/many/current/{}",
                dest(changed + 1)
            )
        )
        .trim(),
        "644"
    );
    let listed = releases(&p);
    assert_eq!(listed.len(), 2, "{listed:?}");
    let current: Vec<_> = listed.iter().filter(|r| r.1).collect();
    assert_eq!(current.len(), 1, "{listed:?}");
    assert_eq!(
        current[0].0,
        listed.iter().map(|r| r.0.clone()).max().unwrap()
    );
    assert!(listed.iter().all(|r| r.2 == "deploy ok"), "{listed:?}");
}

/// 6,000 files: a dry run reads the host (the probe's list of files is long) and plans them
/// all; a redeploy of the same files is a no-op that reads them all from the stat record.
#[test]
fn a_dry_run_and_a_no_op_redeploy_of_six_thousand_files() {
    let user = "ferry122";
    let n = 6_000;
    let r = remote();
    r.reset(user);
    let p = project(user, n);
    let dry = p.ferry(&["--output", "json", "deploy", "--dry-run"]);
    dry.assert_code(0);
    assert!(
        r.ssh_raw(user, "test -e ~/.local/share/ferry/many/current")
            .status
            .code()
            != Some(0),
        "a dry run deployed"
    );
    p.ferry(&["deploy"]).assert_code(0);
    assert_eq!(host_tree(user), local_tree(&p));
    let again = p.ferry(&["--output", "json", "deploy"]);
    again.assert_code(0);
    // Nothing changed: no new release.
    assert_eq!(releases(&p).len(), 1, "{again}");
    assert_eq!(host_tree(user), local_tree(&p));
}
