//! Unit tests of `ferry status`: the script, its parsing and the judging of units.
use super::*;

fn services() -> Vec<(String, Vec<String>)> {
    vec![
        (
            "web".into(),
            vec!["web.service".into(), "web.socket".into()],
        ),
        ("it's".into(), vec![]),
    ]
}

#[test]
fn script_quotes_and_marks_sections() {
    let s = script(&services());
    assert!(s.starts_with("TZ=UTC; export TZ;"), "{s}");
    assert!(s.contains("printf '%s\\n' '@ferry service web';"), "{s}");
    assert!(
        s.contains("readlink \"$HOME\"/.local/share/ferry/web/current"),
        "{s}"
    );
    assert!(s.contains("'@ferry service it'\\''s'"), "{s}");
    assert!(
        s.contains("systemctl --user show web.service web.socket --property=Id,"),
        "{s}"
    );
    assert!(s.ends_with("echo '@ferry end'"));
}

/// The script runs in a real `sh` (with systemctl and readlink replaced) and parses back.
/// [`script`] of [`services`] run by sh, with `bin` (a fake systemctl) first on PATH.
fn run_script(bin: &std::path::Path, home: &std::path::Path) -> HostReport {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(script(&services()))
        .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
        .env("HOME", home)
        .output()
        .unwrap();
    parse_output(&String::from_utf8(out.stdout).unwrap())
}

#[test]
fn script_runs_in_sh() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let fake = "#!/bin/sh\ncase \"$*\" in *is-active*) echo inactive;; *--value*) echo web.socket; echo;; \
        *Result) printf 'Id=web.socket\\nActiveState=active\\nSubState=listening\\n';; \
        *) printf 'Id=web.service\\nActiveState=inactive\\nSubState=dead\\nTriggeredBy=web.socket\\n\\nId=web.socket\\nActiveState=active\\nSubState=listening\\n';; esac\n";
    let sc = bin.join("systemctl");
    std::fs::write(&sc, fake).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&sc, std::fs::Permissions::from_mode(0o755)).unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir_all(home.join(".local/share/ferry/web/releases/20261124T120000Z-aa"))
        .unwrap();
    std::os::unix::fs::symlink(
        "releases/20261124T120000Z-aa",
        home.join(".local/share/ferry/web/current"),
    )
    .unwrap();
    // Its deploy armed a self-revert (the history only has its stage line) and the timer
    // is gone: lost.
    let web = home.join(".local/share/ferry/web");
    std::fs::write(web.join("revert.target"), "20261124T120000Z-aa\n").unwrap();
    std::fs::write(web.join("revert.deadline"), "1764000000\n").unwrap();
    std::fs::write(
        web.join("history.jsonl"),
        "{\"action\":\"stage\",\"release\":\"20261124T120000Z-aa\"}\n",
    )
    .unwrap();
    let r = run_script(&bin, &home);
    assert!(r.complete && r.now.is_some());
    assert_eq!(r.services.len(), 2);
    assert_eq!(r.services[0].current, "releases/20261124T120000Z-aa");
    assert_eq!(r.services[0].units.len(), 2);
    assert_eq!(r.services[0].triggers[0].id, "web.socket");
    assert_eq!(r.services[1].service, "it's");
    assert_eq!(r.services[1].current, "");
    let rows = unit_statuses("h", &r);
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r.ok), "{rows:?}");
    assert_eq!(rows[0].release.as_deref(), Some("20261124T120000Z-aa"));
    assert_eq!(
        r.services[0].revert,
        Some(RevertReport {
            target: "20261124T120000Z-aa".into(),
            deadline: Some(1764000000),
            armed: false,
            recorded: false,
        })
    );
    let note = revert_note(&r.services[0], r.now).unwrap();
    assert!(note.contains("self-revert timer is gone"), "{note}");
    assert_eq!(r.services[1].revert, None);
    // Once the history mentions it (a confirm wrote its deploy line), nothing to say.
    std::fs::write(
        web.join("history.jsonl"),
        "{\"action\":\"deploy\",\"release\":\"20261124T120000Z-aa\",\"outcome\":\"ok\"}\n",
    )
    .unwrap();
    let r = run_script(&bin, &home);
    assert!(r.services[0].revert.as_ref().unwrap().recorded);
    assert_eq!(revert_note(&r.services[0], r.now), None);
}

#[test]
fn a_pending_revert_says_when() {
    let svc = ServiceReport {
        service: "web".into(),
        current: "releases/20261124T120000Z-aa".into(),
        revert: RevertReport::parse("20261124T120000Z-aa 1764000030 active 0"),
        ..Default::default()
    };
    let note = revert_note(&svc, Some(1764000000)).unwrap();
    assert!(
        note.contains("at 2025-11-24T16:00:30Z (in 30s)")
            && note.contains("--to 20261124T120000Z-aa"),
        "{note}"
    );
    // Armed for another release (a newer deploy won): nothing to say.
    let other = ServiceReport {
        revert: RevertReport::parse("20261124T110000Z-bb 1764000030 active 0"),
        ..svc.clone()
    };
    assert_eq!(revert_note(&other, Some(1764000000)), None);
    assert_eq!(RevertReport::parse("- - - 0"), None);
}

/// Script output of one host with every kind of unit state.
pub(crate) const OUT: &str = "@ferry now 1764000100
@ferry service app
@ferry current releases/20261124T123456Z-1a2b3c4d
@ferry show
Id=app.service
LoadState=loaded
ActiveState=active
SubState=running
Result=success
NRestarts=2
MainPID=4242
ActiveEnterTimestamp=Mon 2025-11-24 16:00:00 UTC
StateChangeTimestamp=Mon 2025-11-24 16:00:00 UTC
UnitFileState=enabled
MemoryCurrent=1572864

Id=app.socket
LoadState=loaded
ActiveState=active
SubState=listening
Result=success
Listen=/run/user/1009/app.sock (Stream)
UnitFileState=enabled
MemoryCurrent=[not set]

Id=bad.service
LoadState=loaded
ActiveState=failed
SubState=failed
Result=exit-code
MainPID=0
ExecMainPID=77
StateChangeTimestamp=Mon 2025-11-24 15:59:00 UTC
UnitFileState=disabled

Id=gone.service
LoadState=not-found
ActiveState=inactive
SubState=dead
@ferry triggers
@ferry service idle
@ferry current
@ferry show
Id=idle.service
LoadState=loaded
ActiveState=inactive
SubState=dead
Result=success
TriggeredBy=idle.socket
UnitFileState=static

Id=stopped.service
LoadState=loaded
ActiveState=inactive
SubState=dead
Result=success
UnitFileState=enabled
@ferry triggers
Id=idle.socket
LoadState=loaded
ActiveState=active
SubState=listening
@ferry end
";

#[test]
fn parses_and_judges() {
    let r = parse_output(OUT);
    assert!(r.complete);
    assert_eq!(r.now, Some(1764000100));
    let rows = unit_statuses("h1", &r);
    let by = |u: &str| rows.iter().find(|r| r.unit == u).unwrap();
    let app = by("app.service");
    assert!(app.ok);
    assert_eq!(app.since.as_deref(), Some("2025-11-24T16:00:00Z"));
    assert_eq!(app.since_seconds, Some(100));
    assert_eq!(app.main_pid, Some(4242));
    assert_eq!(app.memory_bytes, Some(1572864));
    assert_eq!(app.restarts, 2);
    assert_eq!(app.enabled, "enabled");
    assert_eq!(app.release.as_deref(), Some("20261124T123456Z-1a2b3c4d"));
    assert_eq!(app.listening, None);
    let sock = by("app.socket");
    assert!(sock.ok);
    assert_eq!(sock.listening, Some(true));
    assert_eq!(
        sock.note.as_deref(),
        Some("listening on /run/user/1009/app.sock")
    );
    let bad = by("bad.service");
    assert!(!bad.ok);
    assert_eq!(bad.main_pid, None);
    assert_eq!(bad.note.as_deref(), Some("failed (result: exit-code)"));
    assert_eq!(bad.since_seconds, Some(160));
    assert_eq!(by("gone.service").note.as_deref(), Some("not installed"));
    let idle = by("idle.service");
    assert!(idle.ok, "{idle:?}");
    assert_eq!(idle.release, None);
    assert_eq!(
        idle.note.as_deref(),
        Some("socket-activated: idle.socket is listening")
    );
    let stopped = by("stopped.service");
    assert!(!stopped.ok);
    assert_eq!(stopped.note.as_deref(), Some("stopped"));
    assert_eq!(exit_code(&rows, 0, 0), Exit::Failed);
    let ups: Vec<UnitStatus> = rows.iter().filter(|r| r.ok).cloned().collect();
    assert_eq!(exit_code(&ups, 0, 0), Exit::Ok);
    assert_eq!(exit_code(&ups, 1, 0), Exit::Connection);
    assert_eq!(exit_code(&ups, 0, 1), Exit::Failed);
}

#[test]
fn a_socket_that_is_not_listening_is_down() {
    let svc = UnitState {
        id: "a.service".into(),
        load_state: "loaded".into(),
        active_state: "inactive".into(),
        result: "success".into(),
        triggered_by: vec!["a.socket".into()],
        ..Default::default()
    };
    let sock = UnitState {
        id: "a.socket".into(),
        load_state: "loaded".into(),
        active_state: "failed".into(),
        sub_state: "failed".into(),
        ..Default::default()
    };
    assert_eq!(judge(&svc, &[&sock]), Verdict::Down("stopped".into()));
    assert!(!judge(&sock, &[&svc]).ok());
    let timer = UnitState {
        id: "a.timer".into(),
        active_state: "active".into(),
        sub_state: "waiting".into(),
        ..Default::default()
    };
    let svc = UnitState {
        triggered_by: vec!["a.timer".into()],
        ..svc
    };
    assert_eq!(
        judge(&svc, &[&timer]),
        Verdict::OnDemand("started by a.timer".into())
    );
}

#[test]
fn release_ids_and_timestamps() {
    assert_eq!(
        release_id("releases/20261124T123456Z-1a2b3c4d").as_deref(),
        Some("20261124T123456Z-1a2b3c4d")
    );
    assert_eq!(release_id(""), None);
    // Not a ferry release id: not shown as one (the same check as deploy's).
    assert_eq!(release_id("/abs/releases/x/"), None);
    assert_eq!(
        parse_timestamp("Tue 2026-11-24 12:00:00 UTC"),
        Some(1795521600)
    );
    assert_eq!(parse_timestamp("n/a"), None);
    assert_eq!(parse_timestamp("Tue 2026-11-24 12:00:00 CET"), None);
    assert_eq!(parse_timestamp(""), None);
}

#[test]
fn json_fields() {
    let rows = unit_statuses("h1", &parse_output(OUT));
    let v = serde_json::to_value(&rows[1]).unwrap();
    for k in [
        "type",
        "host",
        "service",
        "unit",
        "active_state",
        "sub_state",
        "since",
        "main_pid",
        "memory_bytes",
        "restarts",
        "enabled",
        "release",
        "listening",
        "ok",
    ] {
        assert!(v.get(k).is_some(), "{k} missing in {v}");
    }
    assert_eq!(v["type"], "unit");
    assert_eq!(v["listening"], true);
}
