//! Tests of planning: the steps of a deploy, the remote-state probe and the activation and
//! seal scripts, without a host.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::config::Service;
use crate::release::{self, Action, HistoryRecord, Manifest, ManifestUnit, Outcome, Paths};

use super::*;
use crate::config;
use std::path::Path;

pub(super) fn service() -> Service {
    let c = config::parse(
        r#"
[hosts.h]
address = "x"
[services.app]
units = ["app.service", "app.socket"]
[[services.app.files]]
source = "app"
dest = "bin/app"
mode = "0755"
[[services.app.files]]
source = "msg"
dest = "share/msg"
"#,
        Path::new("deploy.toml"),
        &config::Env {
            home: Some("/home/me".into()),
            local_user: Some("me".into()),
            ssh_config: None,
        },
    )
    .unwrap();
    c.services["app"].clone()
}

pub(super) fn local() -> LocalRelease {
    LocalRelease {
        files: vec![
            LocalFile {
                source: "app".into(),
                dest: "bin/app".into(),
                mode: 0o755,
                size: 10,
                sha256: "aa".repeat(32),
                content: None,
            },
            LocalFile {
                source: "msg".into(),
                dest: "share/msg".into(),
                mode: 0o644,
                size: 3,
                sha256: "bb".repeat(32),
                content: None,
            },
        ],
        units: vec![
            LocalUnit {
                name: "app.service".into(),
                content: b"[Service]\nExecStart=x\n".to_vec(),
                sha256: "11".repeat(32),
            },
            LocalUnit {
                name: "app.socket".into(),
                content: b"[Socket]\nListenStream=%t/a\n[Install]\nWantedBy=sockets.target\n"
                    .to_vec(),
                sha256: "22".repeat(32),
            },
        ],
        env: None,
        instances: Vec::new(),
        binaries: Vec::new(),
    }
}

/// The plan of the test release, [`ID`], for a host in state `remote`.
fn plan_on(remote: &RemoteState) -> Plan {
    make(
        &service(),
        &local(),
        remote,
        ID,
        &origin(),
        Options::default(),
    )
}

pub(super) fn origin() -> Origin {
    Origin {
        by: "me@box".into(),
        git_commit: None,
        created: "2026-11-24T12:00:00Z".into(),
    }
}

const ID: &str = "20261124T120000Z-abcdef01";
const OLD: &str = "20261123T120000Z-00000001";

#[test]
fn an_upload_is_certain_where_the_current_release_has_no_file_of_that_size() {
    let mut remote = deployed();
    let current = local().files[0].clone();
    // Same dest, same size: it may be identical (reused), so its hash is needed first.
    assert!(!upload_certain(&remote, &current.dest, current.size));
    assert!(upload_certain(&remote, &current.dest, current.size + 1));
    assert!(upload_certain(&remote, "bin/other", current.size));
    // A current release without a readable manifest: sizes unknown, hash first.
    remote.manifest = None;
    assert!(!upload_certain(&remote, &current.dest, current.size + 1));
    assert!(upload_certain(&remote, "bin/other", current.size));
    // First deploy.
    assert!(upload_certain(
        &RemoteState::default(),
        &current.dest,
        current.size
    ));
}

#[test]
fn first_deploy_uploads_everything() {
    let p = make(
        &service(),
        &local(),
        &RemoteState::default(),
        ID,
        &origin(),
        Options::default(),
    );
    assert!(
        p.files
            .iter()
            .all(|f| f.transfer == Transfer::Upload && f.change == Change::New)
    );
    assert!(p.units.iter().all(|u| u.change == Change::New));
    assert_eq!(p.enable, vec!["app.socket"]);
    assert_eq!(p.restart, vec!["app.service"]);
    assert_eq!(p.start, vec!["app.socket"]);
    assert_eq!(p.upload_bytes(), 13);
    assert_eq!(p.previous, None);
}

#[test]
fn unchanged_files_are_reused_changed_ones_uploaded() {
    let mut remote = RemoteState {
        current: Some(OLD.into()),
        ..Default::default()
    };
    remote
        .current_files
        .insert("bin/app".into(), "aa".repeat(32));
    remote
        .current_files
        .insert("share/msg".into(), "cc".repeat(32));
    remote
        .installed_units
        .insert("app.service".into(), "11".repeat(32));
    remote
        .installed_units
        .insert("app.socket".into(), "99".repeat(32));
    remote.manifest = Some(Manifest {
        id: OLD.into(),
        service: "app".into(),
        created: "x".into(),
        deployed_by: "x".into(),
        git_commit: None,
        files: vec![],
        units: vec![
            ManifestUnit {
                name: "app.service".into(),
                sha256: "11".repeat(32),
            },
            ManifestUnit {
                name: "old.timer".into(),
                sha256: "33".repeat(32),
            },
        ],
        restart: vec![],
        enable: vec![],
        start: vec![],
        judging: None,
        switch: None,
        migrate: None,
    });
    let p = plan_on(&remote);
    assert_eq!(p.files[0].transfer, Transfer::Reuse);
    assert_eq!(p.files[1].change, Change::Changed);
    assert_eq!(p.upload_bytes(), 3);
    assert_eq!(p.units[0].change, Change::Unchanged);
    assert_eq!(p.units[1].change, Change::Changed);
    assert_eq!(p.removed_units(), vec!["old.timer"]);
    assert_eq!(p.stop_first, vec!["app.socket"]);
    assert_eq!(p.previous.as_deref(), Some(OLD));
}

#[test]
fn parses_remote_state() {
    let m = Manifest {
        id: OLD.into(),
        service: "app".into(),
        created: "c".into(),
        deployed_by: "me@box".into(),
        git_commit: None,
        files: vec![],
        units: vec![],
        restart: vec![],
        enable: vec![],
        start: vec![],
        judging: None,
        switch: None,
        migrate: None,
    };
    let text = format!(
        "current=releases/{OLD}\nrelease={OLD}\nrelease=garbage\nrelease={ID}\nmanifest={}\nunit={} app.service\nfile={} bin/app\nhistory={{\"bad\nfile=x\nunitstate.Id=ferry-revert-app.timer\nunitstate.ActiveState=active\nunitstate.NeedDaemonReload=no\nrevert_for={OLD}\n",
        serde_json::to_string(&m).unwrap(),
        "11".repeat(32),
        "aa".repeat(32)
    );
    let st = parse_remote_state(&text);
    assert_eq!(st.current.as_deref(), Some(OLD));
    assert_eq!(st.releases, vec![OLD.to_string(), ID.to_string()]);
    assert_eq!(st.manifest, Some(m));
    assert_eq!(st.installed_units["app.service"], "11".repeat(32));
    assert_eq!(st.current_files["bin/app"], "aa".repeat(32));
    assert!(st.history.is_empty());
    assert!(st.revert_pending);
    assert!(st.current_unconfirmed());
}

#[test]
fn probe_script_quotes_dests() {
    let s = remote_state_script(
        &Paths::new("app"),
        &["bin/my app".into()],
        &[],
        ProbeLock::Ignore,
    );
    assert!(s.contains("printf '%s\\0' 'bin/my app' | xargs -0"), "{s}");
    assert!(s.contains("S=.local/share/ferry/app\n"), "{s}");
}

/// The stdout of `script` run by sh with HOME being `home` and `input` on its stdin (it must
/// succeed).
pub(super) fn sh_in(home: &std::path::Path, script: &str, input: &[u8]) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new("sh")
        .arg("-c")
        .arg(script)
        .env("HOME", home)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{script}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// In the scratch `home` of the test below: the installed unit files are hashed (one
/// sha256sum for all), the history read whole.
fn installed_units_and_history_are_probed(home: &std::path::Path, paths: &Paths, dests: &[String]) {
    let dir = home.join(paths.dir());
    let ud = home.join(release::UNIT_DIR);
    std::fs::create_dir_all(&ud).unwrap();
    std::fs::write(ud.join("a-b.service"), b"[Service]\n").unwrap();
    std::fs::write(ud.join("c.socket"), b"[Socket]\n").unwrap();
    std::fs::create_dir_all(ud.join("default.target.wants")).unwrap();
    std::fs::write(
        dir.join("history.jsonl"),
        format!(
            "{}\n{}",
            serde_json::to_string(&rec("R1", Action::Deploy, Outcome::Ok, None)).unwrap(),
            serde_json::to_string(&rec("R2", Action::Deploy, Outcome::Failed, Some("R1"))).unwrap()
        ),
    )
    .unwrap();
    let out = sh_in(
        home,
        &remote_state_script(paths, dests, &[], ProbeLock::Ignore),
        b"",
    );
    let st = parse_remote_state(&out);
    // This machine has both, as a Debian host does.
    assert!(st.gzip && st.tar, "{out}");
    assert_eq!(
        st.installed_units,
        BTreeMap::from([
            (
                "a-b.service".to_string(),
                crate::digest::sha256_hex(b"[Service]\n")
            ),
            (
                "c.socket".to_string(),
                crate::digest::sha256_hex(b"[Socket]\n")
            ),
        ]),
        "{out}"
    );
    let read: Vec<&str> = st.history.iter().map(|r| r.release.as_str()).collect();
    assert_eq!(read, vec!["R1", "R2"], "the last line has no newline");
}

/// Run with sh in a scratch home: the seal writes the stat record and renames the release;
/// the probe then takes each file's hash from the record (no sha256sum: a made-up hash in
/// the record is what it reports) until the file is touched, then hashes it for real.
#[test]
fn the_probe_trusts_the_stat_record_until_a_file_changes() {
    let home = tempfile::tempdir().unwrap();
    let paths = Paths::new("app");
    let id = "20261124T000000Z-00000001";
    // Staged under a pending id (its hashes were learned during the upload), sealed as `id`.
    let pending = release::pending_id(std::time::SystemTime::now());
    assert!(release::is_pending(&pending) && !release::is_pending(id));
    let staging = home.path().join(paths.staging(&pending));
    std::fs::create_dir_all(staging.join("bin")).unwrap();
    std::fs::create_dir_all(staging.join(release::META_DIR)).unwrap();
    std::fs::write(staging.join("bin/my app"), b"binary").unwrap();
    std::fs::write(staging.join("share"), b"data").unwrap();
    let sh = |script: &str, input: &[u8]| sh_in(home.path(), script, input);
    let dests = vec!["bin/my app".to_string(), "share".to_string()];
    let fake = ["ab".repeat(32), "cd".repeat(32)];
    sh(
        &release::seal_command(
            &paths,
            &pending,
            id,
            &[
                release::SealFile::written("bin/my app", 0o750),
                release::SealFile::written("share", 0o640),
            ],
            &[],
            &[],
        ),
        &release::seal_input(&[&fake[0], &fake[1]]),
    );
    let dir = home.path().join(paths.dir());
    assert!(!staging.exists());
    assert!(home.path().join(paths.release(id)).is_dir());
    // Each file has its mode (they were written 0600).
    let mode = |f: &str| {
        use std::os::unix::fs::PermissionsExt;
        let p = home.path().join(paths.release(id)).join(f);
        std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
    };
    assert_eq!((mode("bin/my app"), mode("share")), (0o750, 0o640));
    std::os::unix::fs::symlink(format!("releases/{id}"), dir.join("current")).unwrap();
    let probe = || {
        parse_remote_state(&sh(
            &remote_state_script(
                &paths,
                &[dests.clone(), vec!["absent".into()]].concat(),
                &[],
                ProbeLock::Ignore,
            ),
            b"",
        ))
        .current_files
    };
    let files = probe();
    assert_eq!(files.len(), 2, "{files:?}");
    installed_units_and_history_are_probed(home.path(), &paths, &dests);
    assert_eq!(files["bin/my app"], fake[0]);
    assert_eq!(files["share"], fake[1]);
    // Touched (same size, new content): hashed on the host.
    std::fs::write(dir.join("current/share"), b"DATA").unwrap();
    let files = probe();
    assert_eq!(files["bin/my app"], fake[0]);
    assert_eq!(files["share"], crate::digest::sha256_hex(b"DATA"));
    // No record (a release sealed by an older ferry): every file is hashed.
    std::fs::remove_file(dir.join(format!(
        "current/{}/{}",
        release::META_DIR,
        release::STAT_RECORD
    )))
    .unwrap();
    assert_eq!(probe()["bin/my app"], crate::digest::sha256_hex(b"binary"));
}

#[test]
fn activation_script_order() {
    let p = make(
        &service(),
        &local(),
        &RemoteState::default(),
        ID,
        &origin(),
        Options::default(),
    );
    let s = Activation::for_plan(&p).script(&Paths::new("app"));
    let pos = |needle: &str| s.find(needle).unwrap_or_else(|| panic!("{needle} in {s}"));
    assert!(pos("mv -f \"$UD/.ferry-tmp.\"app.service") < pos("mv -fT"));
    assert!(pos("mv -fT") < pos("enable --no-reload app.socket"));
    assert!(pos("enable --no-reload app.socket") < pos("daemon-reload"));
    assert!(pos("daemon-reload") < pos("start app.socket"));
    assert!(pos("start app.socket") < pos("restart --no-block app.service"));
    // A crash-looping service is stopped (and waited for) before the restart.
    assert!(
        pos("= auto-restart ] && systemctl --user stop -- app.service")
            < pos("restart --no-block app.service")
    );
    assert_eq!(
        Activation::for_plan(&p).verify_units(),
        vec!["app.service", "app.socket"]
    );

    // The same unit files as installed, loaded as they are: none copied, no reload.
    let mut remote = RemoteState::default();
    for u in &local().units {
        remote
            .installed_units
            .insert(u.name.clone(), u.sha256.clone());
    }
    let p = plan_on(&remote);
    assert!(!p.daemon_reload);
    let a = Activation::for_plan(&p);
    assert!(a.install.is_empty(), "{a:?}");
    let s = a.script(&Paths::new("app"));
    assert!(
        !s.contains("daemon-reload") && !s.contains(".ferry-tmp."),
        "{s}"
    );
    assert!(s.contains("restart --no-block app.service"), "{s}");
    // One changed: it alone is copied, and the manager reloads.
    let first = local().units[0].name.clone();
    remote
        .installed_units
        .insert(first.clone(), "00".repeat(32));
    let p = plan_on(&remote);
    let a = Activation::for_plan(&p);
    assert!(p.daemon_reload);
    assert_eq!(a.install, vec![first]);
    // Unchanged files the manager has not loaded as they are (edited by hand): reload.
    remote.installed_units.insert(
        local().units[0].name.clone(),
        local().units[0].sha256.clone(),
    );
    remote.need_reload = true;
    let p = plan_on(&remote);
    assert!(p.daemon_reload);
}

#[test]
fn back_to_removes_units_the_failed_release_added() {
    let to = Manifest {
        id: OLD.into(),
        service: "app".into(),
        created: "c".into(),
        deployed_by: "x".into(),
        git_commit: None,
        files: vec![],
        units: vec![ManifestUnit {
            name: "app.service".into(),
            sha256: "1".into(),
        }],
        restart: vec!["app.service".into()],
        enable: vec![],
        start: vec![],
        judging: None,
        switch: None,
        migrate: None,
    };
    let mut from = to.clone();
    from.id = ID.into();
    from.units.push(ManifestUnit {
        name: "extra.timer".into(),
        sha256: "2".into(),
    });
    let a = Activation::back_to(&to, Some(&from), None);
    assert_eq!(a.release, OLD);
    assert_eq!(a.remove, vec!["extra.timer"]);
    assert_eq!(a.restart, vec!["app.service"]);
}

#[test]
fn instances_are_restarted_and_the_surplus_removed() {
    let mut remote = deployed();
    remote.manifest.as_mut().unwrap().restart =
        vec!["app@1.service".into(), "app@3.service".into()];
    let mut l = local();
    l.instances = vec!["app@1.service".into(), "app@2.service".into()];
    let p = make(&service(), &l, &remote, ID, &origin(), Options::default());
    assert_eq!(
        p.restart,
        vec!["app.service", "app@1.service", "app@2.service"]
    );
    assert_eq!(p.removed_units(), vec!["app@3.service"]);
    // Going back to the release with 3 instances removes none; going from it to one with
    // 2 removes the third.
    let back = Activation::back_to(&p.manifest, remote.manifest.as_ref(), None);
    assert_eq!(back.remove, vec!["app@3.service"]);
}

#[test]
fn content_hash_changes_with_mode() {
    let a = local();
    let mut b = local();
    b.files[0].mode = 0o700;
    assert_ne!(a.content_hash(), b.content_hash());
    assert_eq!(a.content_hash(), local().content_hash());
}

pub(super) fn names(p: &Plan) -> Vec<&'static str> {
    p.steps.iter().map(Step::name).collect()
}

pub(super) fn rec(
    release: &str,
    action: Action,
    outcome: Outcome,
    previous: Option<&str>,
) -> release::HistoryRecord {
    release::HistoryRecord {
        time: "t".into(),
        action,
        release: release.into(),
        previous: previous.map(String::from),
        outcome,
        by: "me".into(),
        git_commit: None,
        reason: None,
    }
}

/// A host where release A was deployed and verified, and is current.
pub(super) fn deployed() -> RemoteState {
    let a = "20261124T110000Z-aaaaaaaa";
    let first = make(
        &service(),
        &local(),
        &RemoteState::default(),
        a,
        &origin(),
        Options::default(),
    );
    RemoteState {
        current: Some(a.into()),
        releases: vec![a.into()],
        manifest: Some(first.manifest),
        current_files: [("bin/app".to_string(), local().files[0].sha256.clone())].into(),
        history: vec![rec(a, Action::Deploy, Outcome::Ok, None)],
        ..Default::default()
    }
}

#[test]
fn steps_of_a_first_deploy_and_a_redeploy() {
    let p = make(
        &service(),
        &local(),
        &RemoteState::default(),
        ID,
        &origin(),
        Options::default(),
    );
    assert_eq!(
        names(&p),
        vec![
            "lock", "stage", "upload", "seal", "activate", "verify", "confirm"
        ]
    );
    assert!(matches!(&p.on_failure, OnFailure::Stay { reason } if reason.contains("first deploy")));

    let remote = deployed();
    let p = plan_on(&remote);
    assert_eq!(
        names(&p),
        vec![
            "lock", "stage", "reuse", "upload", "seal", "activate", "verify", "confirm"
        ]
    );
    assert_eq!(
        p.on_failure,
        OnFailure::RollBack {
            to: remote.current.clone().unwrap()
        }
    );
    // The seal's command arms the self-revert...
    let seal_arms = |p: &Plan| {
        p.steps.iter().find_map(|st| match st {
            Step::Seal { arm_revert, .. } => Some(arm_revert.clone()),
            _ => None,
        })
    };
    assert_eq!(
        seal_arms(&p),
        Some(Some(RevertArm {
            to: remote.current.clone().unwrap(),
            after_ms: service().confirm_timeout.as_millis() as u64
        }))
    );
    // ... unless a before_switch hook runs first: then it is a step of its own, after it.
    let mut hooked = service();
    hooked.hooks.before_switch = Some("true".into());
    let h = make(
        &hooked,
        &local(),
        &remote,
        ID,
        &origin(),
        Options::default(),
    );
    assert_eq!(seal_arms(&h), Some(None));
    let n = names(&h);
    assert_eq!(
        &n[n.len() - 5..],
        &[
            "before-switch",
            "arm-revert",
            "activate",
            "verify",
            "confirm"
        ]
    );
    let p = make(
        &service(),
        &local(),
        &remote,
        ID,
        &origin(),
        Options {
            no_rollback: true,
            ..Default::default()
        },
    );
    assert!(!names(&p).contains(&"arm-revert"));
    assert_eq!(seal_arms(&p), Some(None));
    assert!(
        matches!(&p.on_failure, OnFailure::Stay { reason } if reason.contains("--no-rollback"))
    );
}

#[test]
fn leftovers_stale_timers_and_pruning_are_steps() {
    let mut remote = deployed();
    remote.partial = vec![".20261124T100000Z-00000000.partial".into()];
    remote.revert_pending = true;
    remote.revert_for = Some("20261124T100000Z-00000000".into());
    let mut s = service();
    s.keep_releases = 2;
    remote
        .releases
        .insert(0, "20261124T090000Z-99999999".into());
    let p = make(&s, &local(), &remote, ID, &origin(), Options::default());
    let n = names(&p);
    assert_eq!(&n[..3], &["lock", "clean-staging", "clear-stale-revert"]);
    assert_eq!(
        p.steps.last(),
        Some(&Step::Confirm {
            release: ID.into(),
            prune: vec!["20261124T090000Z-99999999".into()]
        })
    );
    let sealed_units = |p: &Plan| {
        p.steps
            .iter()
            .find_map(|st| match st {
                Step::Seal { units, .. } => Some(units.clone()),
                _ => None,
            })
            .unwrap()
    };
    // The same unit files and file layout as the current, verified release: checked then,
    // not again.
    assert_eq!(sealed_units(&p), Vec::<String>::new());
    // A changed unit file: the release's unit files are checked.
    let mut changed = local();
    changed.units[0].sha256 = "99".repeat(32);
    let p = make(&s, &changed, &remote, ID, &origin(), Options::default());
    assert_eq!(sealed_units(&p), vec!["app.service", "app.socket"]);
    // A file's mode changed (an ExecStart= target may no longer be executable): checked.
    let mut moded = local();
    moded.files[0].mode = 0o644;
    let p = make(&s, &moded, &remote, ID, &origin(), Options::default());
    assert_eq!(sealed_units(&p).len(), 2);
    // The current release was never verified (its self-revert failed): checked.
    remote.history = vec![rec(
        remote.current.as_deref().unwrap(),
        Action::Deploy,
        Outcome::RevertFailed,
        None,
    )];
    let p = make(&s, &local(), &remote, ID, &origin(), Options::default());
    assert_eq!(sealed_units(&p).len(), 2);
}

#[test]
fn refusals() {
    let mut remote = deployed();
    remote.lock_holder = Some("ci@runner (deploy, since t)".into());
    let p = plan_on(&remote);
    assert_eq!(names(&p), vec!["refuse"]);
    let (reason, why) = p.refusal().unwrap();
    assert_eq!(why, Refusal::Locked);
    assert!(reason.contains("ci@runner"), "{reason}");

    let mut remote = deployed();
    remote.revert_pending = true;
    remote.revert_for = remote.current.clone();
    let p = plan_on(&remote);
    assert_eq!(names(&p), vec!["lock", "refuse"]);
    assert_eq!(p.refusal().unwrap().1, Refusal::PendingRevert);

    // The timer is gone (the user manager restarted) and no line says the deploy was
    // confirmed: refused, and the release is not taken as verified.
    remote.revert_pending = false;
    let current = remote.current.clone();
    remote
        .history
        .retain(|r| Some(&r.release) != current.as_ref());
    assert!(remote.revert_lost() && !remote.current_verified());
    let p = plan_on(&remote);
    assert_eq!(names(&p), vec!["lock", "refuse"]);
    let (reason, why) = p.refusal().unwrap();
    assert_eq!(why, Refusal::LostRevert);
    assert!(reason.contains("self-revert timer is gone"), "{reason}");

    // A confirm (or a rollback to it, or the revert) wrote a line about it: not lost.
    for (action, release, previous) in [
        (Action::Deploy, remote.current.clone().unwrap(), None),
        (Action::Rollback, remote.current.clone().unwrap(), None),
        (Action::Revert, "x".to_string(), remote.current.clone()),
    ] {
        let mut r = remote.clone();
        r.history.push(HistoryRecord {
            time: "2026-11-24T12:00:00Z".into(),
            action,
            release,
            previous,
            outcome: Outcome::Ok,
            by: "t".into(),
            git_commit: None,
            reason: None,
        });
        assert!(!r.revert_lost(), "{:?}", r.history);
    }
    // Only a stage line: still lost.
    let mut r = remote.clone();
    r.history.push(HistoryRecord {
        time: "2026-11-24T12:00:00Z".into(),
        action: Action::Stage,
        release: remote.current.clone().unwrap(),
        previous: None,
        outcome: Outcome::Staged,
        by: "t".into(),
        git_commit: None,
        reason: None,
    });
    assert!(r.revert_lost());
}

#[test]
fn an_unverified_current_release_is_not_a_rollback_target() {
    let b = "20261124T120000Z-bbbbbbbb";
    let mut remote = deployed();
    let a = remote.current.clone().unwrap();
    remote.releases.push(b.into());
    remote.current = Some(b.into());
    remote
        .history
        .push(rec(&a, Action::Revert, Outcome::RevertFailed, Some(b)));
    assert!(!remote.current_verified());
    assert_eq!(remote.fallback(), Some(a.clone()));
    let p = plan_on(&remote);
    assert!(!p.previous_verified);
    assert_eq!(p.on_failure, OnFailure::RollBack { to: a.clone() });
    // Gone from the host: nothing to go back to.
    remote.releases.retain(|r| *r != a);
    let p = plan_on(&remote);
    assert!(
        matches!(&p.on_failure, OnFailure::Stay { reason } if reason.contains("never verified"))
    );
}

#[test]
fn the_probe_reports_leftovers_and_the_lock_holder() {
    let st = parse_remote_state(
        "current=releases/20261124T120000Z-abcdef01\npartial=.20261124T130000Z-00000001.partial\npartial=.junk\nlock=ci@runner (deploy, since t)\n",
    );
    assert_eq!(st.partial, vec![".20261124T130000Z-00000001.partial"]);
    assert_eq!(
        st.lock_holder.as_deref(),
        Some("ci@runner (deploy, since t)")
    );
    let s = remote_state_script(&Paths::new("app"), &[], &[], ProbeLock::Report);
    assert!(s.contains("flock -n -s -E 75"), "{s}");
    assert!(
        !remote_state_script(&Paths::new("app"), &[], &[], ProbeLock::Ignore).contains("flock")
    );
}

#[test]
fn the_probe_reports_free_space_and_a_release_that_does_not_fit_is_refused() {
    let s = remote_state_script(&Paths::new("app"), &[], &[], ProbeLock::Ignore);
    assert!(s.contains("df -Pk"), "{s}");
    let st = parse_remote_state("free=2048 .local/share/ferry\nfree=junk x\n");
    let free = st.free.clone().unwrap();
    assert_eq!(free.bytes, 2048 * 1024);
    assert_eq!(free.display_path(), "~/.local/share/ferry");
    assert_eq!(
        FreeSpace {
            bytes: 0,
            path: ".".into()
        }
        .display_path(),
        "~"
    );

    let mut remote = deployed();
    let fits = plan_on(&remote);
    let needed = fits.space_needed();
    // Both files (one reused: it is copied on the host), the units, the margin.
    assert_eq!(needed, 2 * 4096 + 3 * 4096 + SPACE_MARGIN);
    remote.free = Some(FreeSpace {
        bytes: needed,
        path: ".local/share/ferry".into(),
    });
    let p = plan_on(&remote);
    assert!(p.refusal().is_none(), "{:?}", names(&p));
    remote.free.as_mut().unwrap().bytes = needed - 1;
    let p = plan_on(&remote);
    assert_eq!(names(&p), vec!["lock", "refuse"]);
    let (reason, why) = p.refusal().unwrap();
    assert_eq!(why, Refusal::DiskFull);
    assert!(
        reason.starts_with("the host's disk is full: ")
            && reason.contains("free on the filesystem of ~/.local/share/ferry, the release needs"),
        "{reason}"
    );
    // Leftover staging directories hold space the probe cannot count: clean, then try.
    remote.partial = vec![".20261124T100000Z-00000000.partial".into()];
    let p = plan_on(&remote);
    assert!(p.refusal().is_none());
}

#[test]
fn a_lost_connection_says_what_state_the_host_is_in() {
    let remote = deployed();
    let a = remote.current.clone().unwrap();
    let p = plan_on(&remote);
    let t = Duration::from_secs(60);
    let at = |name: &str| p.steps.iter().position(|s| s.name() == name).unwrap();
    let s = p.state_if_lost(Some(at("upload")), t);
    assert!(
        s.starts_with(&format!(
            "before activation: the host still runs release {a}"
        )),
        "{s}"
    );
    assert!(s.contains(&format!(".{ID}.partial")), "{s}");
    assert!(
        p.state_if_lost(Some(at("seal")), t)
            .starts_with("before activation")
    );
    assert!(
        p.state_if_lost(Some(at("activate")), t)
            .starts_with("during the activation")
    );
    for step in ["activate", "verify"] {
        let s = p.state_if_lost(Some(at(step)), t);
        assert!(
            s.contains(&format!(
                "self-revert armed on the host brings release {a} back within confirm_timeout (1m)"
            )),
            "{s}"
        );
    }
    assert!(
        p.state_if_lost(Some(at("confirm")), t)
            .contains("if the confirmation reached the host it stays")
    );
    assert!(
        p.state_if_lost(None, t)
            .starts_with("during the rollback: the self-revert")
    );
    // A first deploy has no self-revert.
    let p = make(
        &service(),
        &local(),
        &RemoteState::default(),
        ID,
        &origin(),
        Options::default(),
    );
    let act = p.steps.iter().position(|s| s.name() == "activate").unwrap();
    assert!(
        p.state_if_lost(Some(act - 1), t)
            .contains("no release of this service (first deploy)")
    );
    assert!(
        p.state_if_lost(Some(act), t)
            .contains("unverified, with no self-revert")
    );
    assert!(
        p.state_if_lost(Some(act + 1), t)
            .contains("not verified and with no self-revert")
    );
}

#[test]
fn json_modes_are_octal_strings() {
    let p = make(
        &service(),
        &local(),
        &RemoteState::default(),
        ID,
        &origin(),
        Options::default(),
    );
    let v = serde_json::to_value(&p).unwrap();
    assert_eq!(v["files"][0]["mode"], "0755");
    assert_eq!(v["files"][1]["mode"], "0644");
    // Hashes of files are never printed (a short secret's hash could be guessed).
    assert!(v["files"][0].get("sha256").is_none());
}

/// `deployed()` with every file and unit of `local()` in place and the units active.
fn deployed_and_up() -> RemoteState {
    let mut remote = deployed();
    for f in &local().files {
        remote
            .current_files
            .insert(f.dest.clone(), f.sha256.clone());
    }
    for u in &local().units {
        remote
            .installed_units
            .insert(u.name.clone(), u.sha256.clone());
        remote.unit_active.insert(u.name.clone(), "active".into());
    }
    remote
}

#[test]
fn redeploying_the_current_release_is_a_no_op() {
    let remote = deployed_and_up();
    let p = plan_on(&remote);
    assert_eq!(names(&p), vec!["lock", "unchanged"]);
    assert_eq!(p.unchanged(), remote.current.as_deref());
    // --force deploys anyway.
    let p = make(
        &service(),
        &local(),
        &remote,
        ID,
        &origin(),
        Options {
            force: true,
            ..Default::default()
        },
    );
    assert!(names(&p).contains(&"activate"));
    // An idle socket-activated service counts as up when its socket is active.
    let mut idle = deployed_and_up();
    idle.unit_active
        .insert("app.service".into(), "inactive".into());
    let p = plan_on(&idle);
    assert_eq!(names(&p), vec!["lock", "unchanged"]);
    // Not when a unit is down, a file differs on disk, a mode changed, or the current
    // release was never verified.
    let mut down = deployed_and_up();
    down.unit_active
        .insert("app.socket".into(), "failed".into());
    down.unit_active
        .insert("app.service".into(), "inactive".into());
    assert!(plan_on(&down).unchanged().is_none());
    let mut edited = deployed_and_up();
    edited
        .current_files
        .insert("share/msg".into(), "cc".repeat(32));
    assert!(plan_on(&edited).unchanged().is_none());
    let mut l = local();
    l.files[1].mode = 0o600;
    assert!(
        make(
            &service(),
            &l,
            &deployed_and_up(),
            ID,
            &origin(),
            Options::default()
        )
        .unchanged()
        .is_none()
    );
    let mut unverified = deployed_and_up();
    let cur = unverified.current.clone().unwrap();
    unverified
        .history
        .push(rec(&cur, Action::Deploy, Outcome::Failed, None));
    assert!(plan_on(&unverified).unchanged().is_none());
}

#[test]
fn the_probe_reads_unit_states() {
    let st = parse_remote_state(
        "unitstate.Id=a.service\nunitstate.ActiveState=active\nunitstate.NeedDaemonReload=no\nunitstate.Id=a.socket\nunitstate.ActiveState=failed\nunitstate.NeedDaemonReload=no\n",
    );
    assert!(!st.need_reload);
    assert!(
        parse_remote_state("unitstate.Id=a.service\nunitstate.NeedDaemonReload=yes\n").need_reload
    );
    assert_eq!(
        st.unit_active.get("a.service").map(String::as_str),
        Some("active")
    );
    assert_eq!(
        st.unit_active.get("a.socket").map(String::as_str),
        Some("failed")
    );
    let s = remote_state_script(
        &Paths::new("app"),
        &[],
        &["a b.service".into()],
        ProbeLock::Ignore,
    );
    assert!(
        s.contains(
            "systemctl --user show -p Id -p ActiveState -p NeedDaemonReload -- ferry-revert-app.timer 'a b.service'"
        ),
        "{s}"
    );
}

/// The seal rebuilds a file sent as a delta (with `dd` from the current release's copy and the
/// literals) and one sent gzip-compressed, in real `sh`, and refuses a result whose SHA-256 is
/// not the file's.
#[test]
fn the_seal_rebuilds_deltas_and_compressed_files_and_checks_their_hashes() {
    use crate::transport::{delta, gzip};
    let home = tempfile::tempdir().unwrap();
    let paths = Paths::new("app");
    let sha = |b: &[u8]| crate::digest::sha256_hex(b);
    let mut x: u64 = 99;
    let old: Vec<u8> = (0..400_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    let mut new = old.clone();
    new.splice(10_000..10_000, b"inserted bytes".iter().copied());
    new.truncate(350_000);
    let text = b"compressed text\n".repeat(5000);
    // The current release has the old copy.
    let cur = home.path().join(paths.release("20261124T000000Z-00000001"));
    std::fs::create_dir_all(cur.join("bin")).unwrap();
    std::fs::write(cur.join("bin/app"), &old).unwrap();
    std::os::unix::fs::symlink(
        "releases/20261124T000000Z-00000001",
        home.path().join(paths.current()),
    )
    .unwrap();
    let run = |id: &str, text_sha: &str| {
        let staging = home.path().join(paths.staging(id));
        let meta = staging.join(release::META_DIR);
        std::fs::create_dir_all(staging.join("bin")).unwrap();
        std::fs::create_dir_all(&meta).unwrap();
        let d = delta::diff(&old, &new);
        std::fs::write(meta.join("incoming-0.ops"), d.ops_text()).unwrap();
        std::fs::write(
            meta.join("incoming-0.lit.gz"),
            gzip::member(&d.literals, 6).0,
        )
        .unwrap();
        std::fs::write(meta.join("incoming-1.gz"), gzip::member(&text, 6).0).unwrap();
        let decode = [
            release::Decode::Patch {
                ops: ".ferry/incoming-0.ops".into(),
                literals: ".ferry/incoming-0.lit.gz".into(),
                to: "bin/app".into(),
                sha256: sha(&new),
            },
            release::Decode::Gunzip {
                from: ".ferry/incoming-1.gz".into(),
                to: "text".into(),
                sha256: text_sha.into(),
            },
        ];
        let script = release::seal_command(
            &paths,
            id,
            id,
            &[
                release::SealFile::written("bin/app", 0o755),
                release::SealFile::written("text", 0o644),
            ],
            &[],
            &decode,
        );
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&script)
            .env("HOME", home.path())
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        (out, home.path().join(paths.release(id)))
    };
    let (out, dir) = run("20261124T000001Z-00000002", &sha(&text));
    assert!(out.status.success(), "{out:?}");
    assert_eq!(std::fs::read(dir.join("bin/app")).unwrap(), new);
    assert_eq!(std::fs::read(dir.join("text")).unwrap(), text);
    let left: Vec<_> = std::fs::read_dir(dir.join(release::META_DIR))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(
        !left
            .iter()
            .any(|n| n.to_string_lossy().starts_with("incoming")),
        "{left:?}"
    );

    // A wrong hash: the seal fails, saying which file, and the release is not sealed.
    let (out, dir) = run("20261124T000002Z-00000003", &"0".repeat(64));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("text: {}", release::DECODE_MISMATCH)),
        "{stderr}"
    );
    assert!(!dir.exists());
}

/// A rollback cut off before it recorded how it ended left its pending record: the probe
/// under the lock appends it (with where `current` points) and removes it; a dry run's probe
/// only shows it.
#[test]
fn the_probe_records_a_rollback_that_was_cut_off() {
    let home = tempfile::tempdir().unwrap();
    let paths = Paths::new("app");
    let dir = home.path().join(paths.dir());
    std::fs::create_dir_all(dir.join("releases").join(ID)).unwrap();
    std::os::unix::fs::symlink(format!("releases/{ID}"), dir.join("current")).unwrap();
    let deployed = HistoryRecord {
        time: "2026-11-24T12:00:00Z".into(),
        action: Action::Deploy,
        release: ID.into(),
        previous: None,
        outcome: Outcome::Ok,
        by: "t".into(),
        git_commit: None,
        reason: None,
    };
    let pending = HistoryRecord {
        action: Action::Rollback,
        previous: Some(OLD.into()),
        outcome: Outcome::Interrupted,
        reason: Some(format!("cut off; current was {}", release::PENDING_CURRENT)),
        ..deployed.clone()
    };
    let line = |r: &HistoryRecord| format!("{}\n", serde_json::to_string(r).unwrap());
    std::fs::write(dir.join("history.jsonl"), line(&deployed)).unwrap();
    std::fs::write(home.path().join(paths.pending_record()), line(&pending)).unwrap();

    let dry = parse_remote_state(&sh_in(
        home.path(),
        &remote_state_script(&paths, &[], &[], ProbeLock::Report),
        b"",
    ));
    assert_eq!(dry.history.len(), 2);
    assert_eq!(dry.history[1].outcome, Outcome::Interrupted);
    assert_eq!(dry.interrupted_rollback, None);
    assert!(home.path().join(paths.pending_record()).exists());

    let st = parse_remote_state(&sh_in(
        home.path(),
        &remote_state_script(&paths, &[], &[], ProbeLock::Held),
        b"",
    ));
    assert_eq!(st.interrupted_rollback.as_deref(), Some(ID));
    assert!(!home.path().join(paths.pending_record()).exists());
    let last = st.history.last().unwrap();
    assert_eq!(last.outcome, Outcome::Interrupted);
    assert_eq!(
        last.reason.as_deref(),
        Some(format!("cut off; current was releases/{ID}").as_str())
    );
    // Verified before: the release it went back to is still good.
    assert!(st.current_verified());
    let again = parse_remote_state(&sh_in(
        home.path(),
        &remote_state_script(&paths, &[], &[], ProbeLock::Held),
        b"",
    ));
    assert_eq!(again.history.len(), 2);
    assert_eq!(again.interrupted_rollback, None);
}

/// The host's clock in milliseconds (GNU `date +%s.%N`), whole seconds from a `date` that
/// prints `%N` as it is; the offset from it puts this machine's time on the host's clock,
/// never ahead of it.
#[test]
fn the_hosts_clock_to_the_millisecond() {
    let st = parse_remote_state("now=1796404506.949742123\n");
    assert_eq!(st.clock, Some(1_796_404_506));
    assert_eq!(st.clock_ms, Some(1_796_404_506_949));
    assert_eq!(
        parse_remote_state("now=1796404506.N\n").clock_ms,
        Some(1_796_404_506_000)
    );
    assert_eq!(
        parse_remote_state("now=1796404506\n").clock,
        Some(1_796_404_506)
    );
    assert_eq!(parse_remote_state("now=soon\n").clock, None);

    let mut st = parse_remote_state("now=1000.250000000\n");
    // The answer came 50 ms after the host read its clock, on a clock 2 s behind the host's.
    let local = std::time::UNIX_EPOCH + Duration::from_millis(998_300);
    st.set_clock_offset(local);
    assert_eq!(st.clock_offset, Some(1_950));
    let then = std::time::UNIX_EPOCH + Duration::from_millis(999_000);
    assert_eq!(
        st.host_time(then),
        std::time::UNIX_EPOCH + Duration::from_millis(1_000_950)
    );
}
