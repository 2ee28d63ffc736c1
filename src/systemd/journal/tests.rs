//! Tests of the journal: the journalctl lines, the parsing of their output and the diagnosis of
//! an empty journal.

use super::*;

fn q() -> Query {
    Query {
        units: vec!["app.service".into(), "app.socket".into()],
        ..Default::default()
    }
}

#[test]
fn args_for_a_plain_query() {
    let mut q = q();
    q.lines = Some(5);
    q.since = Some("-1h".into());
    q.until = Some("2026-11-24 10:00".into());
    q.grep = Some("it's [0-9]+".into());
    assert_eq!(
        journalctl_args(&q, &Resume::Start),
        vec![
            "--user",
            "--output=json",
            "--all",
            "--no-pager",
            "--unit=app.service",
            "--unit=app.socket",
            "--lines=5",
            "--since=-1h",
            "--until=2026-11-24 10:00",
            "--grep=it's [0-9]+",
        ]
    );
    let c = command(&q, &Resume::Start);
    assert_eq!(
        c,
        "exec journalctl --user --output=json --all --no-pager --unit=app.service --unit=app.socket \
         --lines=5 --since=-1h '--until=2026-11-24 10:00' '--grep=it'\\''s [0-9]+'"
    );
}

#[test]
fn follow_prints_an_anchor_first_and_resumes_after_a_cursor() {
    let mut q = q();
    q.follow = true;
    q.lines = Some(0);
    let c = command(&q, &Resume::Start);
    // The anchor matches the same units (journalctl 252 skips the first entry after a
    // cursor that does not match the filter).
    assert!(
        c.starts_with(
            "printf %s 'ferry-anchor '; journalctl --user --quiet --lines=1 --output=json \
             --output-fields=__CURSOR --no-pager --unit=app.service --unit=app.socket 2>/dev/null; echo;"
        ),
        "{c}"
    );
    assert!(c.ends_with("exec journalctl --user --output=json --all --no-pager --unit=app.service --unit=app.socket --lines=0 --follow"), "{c}");
    let c = command(&q, &Resume::AfterCursor("s=abc;i=1f".into()));
    assert_eq!(
        c,
        "echo \"ferry-pid $$\"; exec journalctl --user --output=json --all --no-pager --unit=app.service --unit=app.socket '--after-cursor=s=abc;i=1f' --follow"
    );
    let a = journalctl_args(&q, &Resume::Everything);
    assert!(a.contains(&"--lines=all".to_string()) && !a.contains(&"--lines=0".to_string()));
}

/// The command survives a real `sh` with hostile arguments: each arrives as one argument.
#[test]
fn command_round_trips_through_sh() {
    let q = Query {
        units: vec!["a b;rm -rf ~.service".into()],
        grep: Some("$(touch /tmp/x) `id` 'q'".into()),
        since: Some("\"today\"".into()),
        ..Default::default()
    };
    let line = command(&q, &Resume::Start).replacen("exec journalctl", "printf '%s\\n'", 1);
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(&line)
        .output()
        .unwrap();
    let got: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    let want: Vec<String> = journalctl_args(&q, &Resume::Start);
    assert_eq!(got, want);
}

const TEXT: &str = r#"{"__CURSOR":"s=1;i=a","__REALTIME_TIMESTAMP":"1764000000123456","PRIORITY":"3","_PID":"4242","_SYSTEMD_USER_UNIT":"app.service","SYSLOG_IDENTIFIER":"app","MESSAGE":"line 7"}"#;

#[test]
fn parses_a_text_entry() {
    let e = parse_entry(TEXT).unwrap();
    assert_eq!(e.cursor, "s=1;i=a");
    assert_eq!(e.realtime_us, 1764000000123456);
    assert_eq!(e.priority, 3);
    assert_eq!(e.pid, Some(4242));
    assert_eq!(e.unit, "app.service");
    assert_eq!(e.message, Message::Text("line 7".into()));
}

#[test]
fn parses_bytes_null_and_repeated_messages() {
    // "bad \xff \x1b[31m"
    let j = r#"{"__CURSOR":"c","__REALTIME_TIMESTAMP":"1","MESSAGE":[98,97,100,32,255,32,27,91,51,49,109],"SYSLOG_IDENTIFIER":"x"}"#;
    let e = parse_entry(j).unwrap();
    assert_eq!(e.message, Message::Bytes(b"bad \xff \x1b[31m".to_vec()));
    assert_eq!(e.message.json_text().unwrap(), "bad \\xff \u{1b}[31m");
    assert_eq!(e.unit, "x");
    assert_eq!(e.priority, 6);
    assert_eq!(e.pid, None);

    let j = r#"{"__CURSOR":"c","__REALTIME_TIMESTAMP":"1","MESSAGE":null,"_COMM":"sh"}"#;
    let e = parse_entry(j).unwrap();
    assert_eq!(e.message, Message::Absent);
    assert_eq!(e.unit, "sh");

    let j = r#"{"__CURSOR":"c","__REALTIME_TIMESTAMP":"1","MESSAGE":["a",[98,255]]}"#;
    let e = parse_entry(j).unwrap();
    assert_eq!(e.message, Message::Bytes(b"a\nb\xff".to_vec()));
    assert_eq!(e.unit, "?");

    // Valid UTF-8 sent as bytes (journald does so for control characters) becomes text.
    let j = r#"{"__CURSOR":"c","__REALTIME_TIMESTAMP":"1","MESSAGE":[104,105,7]}"#;
    assert_eq!(
        parse_entry(j).unwrap().message,
        Message::Text("hi\u{7}".into())
    );
}

#[test]
fn the_user_manager_s_messages_name_the_unit() {
    let j = r#"{"__CURSOR":"c","__REALTIME_TIMESTAMP":"1","_SYSTEMD_USER_UNIT":"init.scope","USER_UNIT":"app.service","MESSAGE":"Started app.service."}"#;
    assert_eq!(parse_entry(j).unwrap().unit, "app.service");
}

#[test]
fn bad_entries_are_errors() {
    assert!(parse_entry("{}").is_err());
    assert!(parse_entry("[1]").is_err());
    assert!(parse_entry(r#"{"__CURSOR":"c","__REALTIME_TIMESTAMP":"x"}"#).is_err());
}

#[test]
fn classifies_lines() {
    assert!(matches!(parse_line(TEXT.as_bytes()), Line::Entry(_)));
    assert_eq!(parse_line(b""), Line::Blank);
    assert_eq!(parse_line(b"ferry-pid 4242"), Line::Pid(4242));
    assert_eq!(parse_line(b"ferry-anchor "), Line::Anchor(None));
    let anchor = format!("ferry-anchor {TEXT}");
    assert_eq!(
        parse_line(anchor.as_bytes()),
        Line::Anchor(Some("s=1;i=a".into()))
    );
    assert_eq!(
        parse_line(b"No journal files were found.\x1b[0m\xff"),
        Line::Other("No journal files were found.\x1b[0m\\xff".into())
    );
    assert!(matches!(parse_line(b"{broken"), Line::Other(_)));
}

#[test]
fn line_buffer_keeps_partial_lines() {
    let mut b = LineBuffer::default();
    assert!(b.push(b"ab").is_empty());
    assert_eq!(
        b.push(b"c\nde\n\nf"),
        vec![b"abc".to_vec(), b"de".to_vec(), b"".to_vec()]
    );
    assert_eq!(b.push(b"g\n"), vec![b"fg".to_vec()]);
    assert_eq!(b.finish(), None);
    b.push(b"tail");
    assert_eq!(b.finish(), Some(b"tail".to_vec()));
}

fn entry(ts: u64, msg: &str) -> Entry {
    Entry {
        cursor: format!("c{ts}{msg}"),
        realtime_us: ts,
        priority: 6,
        pid: Some(1),
        unit: "u.service".into(),
        message: Message::Text(msg.into()),
        from_manager: false,
    }
}

#[test]
fn merges_by_time_stably() {
    let a = vec![entry(1, "a1"), entry(5, "a5"), entry(5, "a5b")];
    let b = vec![entry(2, "b2"), entry(5, "b5"), entry(9, "b9")];
    let m: Vec<(usize, String)> = merge(vec![a, b])
        .into_iter()
        .map(|(h, e)| (h, e.message.json_text().unwrap()))
        .collect();
    let want = [
        (0, "a1"),
        (1, "b2"),
        (0, "a5"),
        (0, "a5b"),
        (1, "b5"),
        (1, "b9"),
    ];
    assert_eq!(m, want.map(|(h, s)| (h, s.to_string())));
}

#[test]
fn judges_an_empty_journal() {
    assert_eq!(
        judge_empty("uid=1001\nuser=a\npersistent=yes\nentries=1\n"),
        Emptiness::NoMatch
    );
    let Emptiness::Unreadable { message, hint } =
        judge_empty("uid=990\nuser=sysuser\npersistent=yes\nentries=0\n")
    else {
        panic!()
    };
    assert!(message.contains("system user"), "{message}");
    assert!(hint.contains("uid >= 1000"), "{hint}");
    let Emptiness::Unreadable { message, hint } =
        judge_empty("uid=1001\nuser=a\npersistent=no\nentries=0\n")
    else {
        panic!()
    };
    assert!(message.contains("not persistent"), "{message}");
    assert!(hint.contains("Storage=persistent"), "{hint}");
    assert!(matches!(
        judge_empty("uid=1001\nuser=a\npersistent=yes\nentries=0\n"),
        Emptiness::Unreadable { .. }
    ));
    assert!(follow_warning("uid=1001\nuser=a\npersistent=yes\nentries=0\n").is_none());
    assert!(follow_warning("uid=990\nuser=s\npersistent=yes\nentries=0\n").is_some());
    assert!(follow_warning("uid=1001\nuser=a\npersistent=no\nentries=0\n").is_some());
    assert!(follow_warning("uid=1001\nuser=a\npersistent=no\nentries=3\n").is_none());
}

#[test]
fn reads_journal_facts() {
    let f = JournalFacts::parse(
        "uid=1001\nuser=app\npersistent=yes\nvar_log_journal=yes\nstorage=Persistent\n",
    );
    assert_eq!(
        f,
        JournalFacts {
            uid: Some(1001),
            user: "app".into(),
            machine_dir: true,
            var_log_journal: true,
            storage: "persistent".into(),
        }
    );
    assert!(f.persistent() && !f.system_user());
    // Storage= not set anywhere: journald's default.
    let f = JournalFacts::parse("uid=x\nuser=\nstorage=\n");
    assert_eq!(f.storage, "auto");
    assert_eq!(f.uid, None);
    assert_eq!(f.user_name(), "the user");
    assert!(!f.persistent());
    assert_eq!(kv("a=1\nkey= v \nkey=2\n", "key"), Some("v"));
    assert_eq!(kv("keys=1\n", "key"), None);
}

fn facts(storage: &str, machine_dir: bool, var_log_journal: bool, uid: u32) -> JournalFacts {
    JournalFacts {
        uid: Some(uid),
        user: "app".into(),
        machine_dir,
        var_log_journal,
        storage: storage.into(),
    }
}

#[test]
fn diagnoses_each_cause_with_its_fix() {
    assert_eq!(diagnose(&facts("persistent", true, true, 1001)), None);
    assert_eq!(diagnose(&facts("auto", true, true, 1001)), None);
    // A system user first: no storage setting helps it.
    let d = diagnose(&facts("persistent", true, true, 999)).unwrap();
    assert!(
        d.message.contains("app (uid 999) is a system user"),
        "{d:?}"
    );
    assert!(d.hint.contains("usermod -aG systemd-journal app"), "{d:?}");
    let d = diagnose(&facts("volatile", true, true, 1001)).unwrap();
    assert!(d.message.contains("Storage=volatile"), "{d:?}");
    assert!(d.hint.contains("set Storage=persistent"), "{d:?}");
    let d = diagnose(&facts("none", false, false, 1001)).unwrap();
    assert!(d.message.contains("Storage=none"), "{d:?}");
    let d = diagnose(&facts("auto", false, false, 1001)).unwrap();
    assert!(
        d.message
            .contains("not persistent (Storage=auto and no /var/log/journal)"),
        "{d:?}"
    );
    assert!(
        d.hint
            .starts_with("as root on the host: mkdir -p /var/log/journal;")
    );
    let d = diagnose(&facts("persistent", false, true, 1001)).unwrap();
    assert!(
        d.message
            .contains("journald does not write to /var/log/journal"),
        "{d:?}"
    );
}

/// The probe runs in a real `sh` and answers every key (whatever this machine's journal is).
#[test]
fn empty_probe_runs_in_sh() {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(EMPTY_PROBE)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    for key in ["uid", "user", "persistent", "var_log_journal", "storage"] {
        assert!(kv(&text, key).is_some(), "{key} missing in {text:?}");
    }
    assert!(kv(&text, "uid").unwrap().parse::<u32>().is_ok(), "{text}");
    assert!(
        kv(&text, "entries").unwrap().parse::<u64>().is_ok(),
        "{text}"
    );
}

#[test]
fn failure_query_reads_units_then_pids() {
    let units = vec!["app.service".to_string(), "app.socket".to_string()];
    let c = failure_query_command(&units, &[285, 290], Some("2026-11-24 12:00:00"), 200);
    assert_eq!(
        c,
        "journalctl --user --output=json --all --quiet --no-pager --lines=200 \
         '--since=2026-11-24 12:00:00' --user-unit=app.service --user-unit=app.socket; \
         echo ferry-journal-split; \
         journalctl --user --output=json --all --quiet --no-pager --lines=200 \
         '--since=2026-11-24 12:00:00' _PID=285 _PID=290"
    );
    assert_eq!(
        failure_query_command(&units[..1], &[], None, 50),
        "journalctl --user --output=json --all --quiet --no-pager --lines=50 --since=-5min \
         --user-unit=app.service"
    );
    assert_eq!(
        failure_query_command(&[], &[7], None, 5),
        "journalctl --user --output=json --all --quiet --no-pager --lines=5 --since=-5min _PID=7"
    );
    assert_eq!(failure_query_command(&[], &[], None, 5), "true");
}

/// Hostile unit names arrive as one argument each through a real `sh`.
#[test]
fn failure_query_round_trips_through_sh() {
    let units = vec!["a b;$(id).service".to_string()];
    let line = failure_query_command(&units, &[9], Some("'today'"), 3)
        .replace("journalctl", "printf '%s\\n'");
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(&line)
        .output()
        .unwrap();
    let got = String::from_utf8(out.stdout).unwrap();
    let got: Vec<&str> = got.lines().collect();
    assert_eq!(got[6], "--since='today'");
    assert_eq!(got[7], "--user-unit=a b;$(id).service");
    assert_eq!(got[8], "ferry-journal-split");
    assert_eq!(got[16], "_PID=9");
    assert_eq!(got.len(), 17);
}

/// Output as journalctl 252 printed it for a unit that wrote two lines and exited 3; the
/// `_PID=` query finds its line again plus one journald could not attribute to the unit.
#[test]
fn failure_output_merges_by_time_without_duplicates() {
    let by_unit = [
        r#"{"_PID":"69","SYSLOG_IDENTIFIER":"systemd","_SYSTEMD_USER_UNIT":"init.scope","USER_UNIT":"app.service","PRIORITY":"6","MESSAGE":"Starting app.service - demo...","__CURSOR":"s=ef95;i=15a;b=2ea6;m=bc239443;t=6610aec8ede16;x=9844","__REALTIME_TIMESTAMP":"1795549406617110","_COMM":"systemd","_TRANSPORT":"journal"}"#,
        r#"{"_COMM":"sh","_SYSTEMD_USER_UNIT":"app.service","PRIORITY":"6","MESSAGE":"started","__CURSOR":"s=ef95;i=15b;b=2ea6;m=bc239b82;t=6610aec8ee555;x=ae47","_PID":"285","SYSLOG_IDENTIFIER":"sh","_TRANSPORT":"stdout","__REALTIME_TIMESTAMP":"1795549406618965"}"#,
        r#"{"PRIORITY":"5","_PID":"69","MESSAGE":"app.service: Main process exited, code=exited, status=3/NOTIMPLEMENTED","SYSLOG_IDENTIFIER":"systemd","USER_UNIT":"app.service","_SYSTEMD_USER_UNIT":"init.scope","__CURSOR":"s=ef95;i=15e;b=2ea6;m=bc239f75;t=6610aec8ee948;x=337e","EXIT_STATUS":"3","__REALTIME_TIMESTAMP":"1795549406619976"}"#,
        r#"{"MESSAGE":"app.service: Failed with result 'exit-code'.","PRIORITY":"4","USER_UNIT":"app.service","_SYSTEMD_USER_UNIT":"init.scope","_PID":"69","UNIT_RESULT":"exit-code","__CURSOR":"s=ef95;i=15f;b=2ea6;m=bc23a058;t=6610aec8eea2b;x=5ee6","__REALTIME_TIMESTAMP":"1795549406620203"}"#,
    ];
    let by_pid = [
        r#"{"_COMM":"sh","_SYSTEMD_USER_UNIT":"app.service","PRIORITY":"6","MESSAGE":"started","__CURSOR":"s=ef95;i=15b;b=2ea6;m=bc239b82;t=6610aec8ee555;x=ae47","_PID":"285","SYSLOG_IDENTIFIER":"sh","_TRANSPORT":"stdout","__REALTIME_TIMESTAMP":"1795549406618965"}"#,
        r#"{"MESSAGE":"boom: cannot open /etc/app.conf","PRIORITY":"6","_PID":"285","SYSLOG_IDENTIFIER":"sh","_TRANSPORT":"stdout","__CURSOR":"s=ef95;i=15d;b=2ea6;m=bc239daa;t=6610aec8ee77d;x=a260","__REALTIME_TIMESTAMP":"1795549406619517"}"#,
    ];
    let raw = format!(
        "{}\n{FAILURE_SPLIT}\n{}\n",
        by_unit.join("\n"),
        by_pid.join("\n")
    );
    let entries = parse_failure_output(raw.as_bytes());
    let got: Vec<(u64, &str, Option<u32>, String)> = entries
        .iter()
        .map(|e| {
            (
                e.realtime_us,
                e.unit.as_str(),
                e.pid,
                e.message.json_text().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (
                1795549406617110,
                "app.service",
                Some(69),
                "Starting app.service - demo...".into()
            ),
            (1795549406618965, "app.service", Some(285), "started".into()),
            (
                1795549406619517,
                "sh",
                Some(285),
                "boom: cannot open /etc/app.conf".into()
            ),
            (
                1795549406619976,
                "app.service",
                Some(69),
                "app.service: Main process exited, code=exited, status=3/NOTIMPLEMENTED".into()
            ),
            (
                1795549406620203,
                "app.service",
                Some(69),
                "app.service: Failed with result 'exit-code'.".into()
            ),
        ]
    );
    assert_eq!(entries[4].priority, 4);
    // Nothing, or only journalctl's words: no entries.
    assert!(parse_failure_output(b"").is_empty());
    assert!(parse_failure_output(b"-- No entries --\nferry-journal-split\n").is_empty());
}

#[test]
fn tells_the_manager_s_lines_from_the_unit_s_own() {
    let manager = r#"{"__CURSOR":"c1","__REALTIME_TIMESTAMP":"100","_PID":"5","SYSLOG_IDENTIFIER":"systemd","_SYSTEMD_USER_UNIT":"init.scope","USER_UNIT":"a.service","MESSAGE":"a.service: Main process exited"}"#;
    let own = r#"{"__CURSOR":"c2","__REALTIME_TIMESTAMP":"50","_PID":"42","SYSLOG_IDENTIFIER":"sh","_SYSTEMD_USER_UNIT":"a.service","MESSAGE":"cannot open"}"#;
    assert!(parse_entry(manager).unwrap().from_manager);
    assert!(!parse_entry(own).unwrap().from_manager);
}
