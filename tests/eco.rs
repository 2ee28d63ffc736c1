//! Fitting the ecosystem: `ferry init` (its result deployed to the real remote), completions
//! and man pages, the JSON Schema of deploy.toml, the events schema (every event of real runs
//! validated against docs/events.schema.json), `ferry logs --since-deploy`, and the CI script
//! examples/ci/deploy.sh run as a CI job would run it.
//!
//! Remote user: ferry41 only (ferry1 read-only, for doctor). The tests here that change ferry41
//! take [`user`] (one at a time), and each uses its own service name.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard};

use serde_json::Value;

use crate::support::{Project, Run, ferry_bin, host_table, remote};

const USER: &str = "ferry41";

/// ferry41, for one test at a time.
fn user() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn read_json(rel: &str) -> Value {
    let text = std::fs::read_to_string(repo(rel)).unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{rel} is not JSON: {e}"))
}

/// Remove one service of ferry41: its units stopped and removed, its releases gone.
fn clean(service: &str) {
    remote().ssh(
        USER,
        &format!(
            "systemctl --user stop '{service}*' 2>/dev/null; \
             systemctl --user disable '{service}.service' 2>/dev/null; \
             rm -rf ~/.config/systemd/user/{service}* ~/.local/share/ferry/{service}; \
             systemctl --user daemon-reload; systemctl --user reset-failed; true"
        ),
    );
}

/// A program for a release: says which version started, then runs (or fails soon).
///
/// The failing one lives a moment before exiting: journald learns a line's unit from the
/// process's cgroup, and a process already gone when its line is read leaves the line without
/// its unit, so `journalctl --user -u UNIT` (and `ferry logs`) would not show it. (The journal a
/// failed deploy prints finds such lines by PID; `ferry logs` cannot.)
fn app(version: &str, fail: bool) -> String {
    if fail {
        format!("#!/bin/sh\necho \"app {version} crashing on purpose\"\nsleep 0.1\nexit 3\n")
    } else {
        format!("#!/bin/sh\necho \"app {version} started\"\nexec sleep infinity\n")
    }
}

fn write_exec(p: &Project, rel: &str, content: &str) {
    use std::os::unix::fs::PermissionsExt;
    p.write(rel, content);
    std::fs::set_permissions(p.path(rel), std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// When `unit` of ferry41 is active: the directory its main process runs in, as the kernel
/// resolved it (units run in `current`, so this is the release it started from).
fn running_release(unit: &str) -> Option<String> {
    let out = remote().ssh(
        USER,
        &format!(
            "pid=$(systemctl --user show -P MainPID {unit}); \
             [ \"$pid\" != 0 ] && systemctl --user is-active --quiet {unit} && \
             readlink /proc/$pid/cwd; true"
        ),
    );
    let out = out.trim();
    (!out.is_empty()).then(|| out.to_string())
}

fn current(service: &str) -> String {
    remote()
        .ssh(
            USER,
            &format!("readlink ~/.local/share/ferry/{service}/current || true"),
        )
        .trim()
        .to_string()
}

// ---------------------------------------------------------------------------------------------
// ferry init

#[test]
fn init_writes_a_config_that_deploys_to_a_real_host_and_never_overwrites() {
    let _u = user();
    let r = remote();
    let service = "ecoinit";
    clean(service);
    let p = Project::new();
    write_exec(&p, "build/ecoinit", &app("1", false));
    let host = format!("{USER}@{}:{}", r.host, r.port);
    let run = p.ferry(&[
        "init",
        "--service",
        service,
        "--binary",
        "build/ecoinit",
        "--host",
        &host,
    ]);
    run.assert_code(0);
    assert!(run.stderr.contains("wrote deploy.toml"), "{run}");
    let config = std::fs::read_to_string(p.path("deploy.toml")).unwrap();
    let unit = std::fs::read_to_string(p.path("deploy/ecoinit.service")).unwrap();
    assert!(config.contains(&format!("ssh-keyscan -p {} {}", r.port, r.host)));

    // A second init refuses, names the file, and changes nothing.
    p.write("deploy/ecoinit.service", "mine\n");
    let again = p.ferry(&["init", "--service", service, "--host", "elsewhere"]);
    again.assert_code(2);
    assert!(again.stderr.contains("deploy.toml"), "{again}");
    assert!(again.stderr.contains("ecoinit.service"), "{again}");
    assert!(again.stderr.contains("never overwrites"), "{again}");
    assert_eq!(
        std::fs::read_to_string(p.path("deploy.toml")).unwrap(),
        config
    );
    assert_eq!(
        std::fs::read_to_string(p.path("deploy/ecoinit.service")).unwrap(),
        "mine\n"
    );
    p.write("deploy/ecoinit.service", &unit);

    // What a user does next (the file says so): their key and known_hosts.
    let config = config
        .replace(
            "#identity = \"~/.ssh/id_ed25519\"",
            &format!("identity = \"{}\"", r.key.display()),
        )
        .replace(
            "known_hosts = \"~/.ssh/known_hosts\"",
            &format!("known_hosts = \"{}\"", r.known_hosts.display()),
        );
    p.config(&config);

    let dry = p.ferry(&["--output", "json", "deploy", "--dry-run"]);
    dry.assert_code(0);
    let plan = &dry.events("plan")[0];
    assert_eq!(plan["service"], service);
    assert_eq!(plan["files"][0]["dest"], "bin/ecoinit");
    assert_eq!(plan["units"][0]["name"], "ecoinit.service");
    assert_eq!(current(service), "", "a dry run changes nothing");

    p.ferry(&["deploy"]).assert_code(0);
    let release = current(service);
    assert!(release.starts_with("releases/"), "{release}");
    let cwd = running_release("ecoinit.service").expect("ecoinit.service runs");
    assert!(
        cwd.ends_with(&format!("/.local/share/ferry/ecoinit/{release}")),
        "{cwd} is not {release}"
    );
    let enabled = r.ssh(USER, "systemctl --user is-enabled ecoinit.service || true");
    assert_eq!(enabled.trim(), "enabled");
    clean(service);
}

#[test]
fn init_without_a_host_leaves_a_placeholder_and_refuses_bad_names() {
    let p = Project::new();
    let run = p.ferry(&["init", "--service", "web"]);
    run.assert_code(0);
    let config = std::fs::read_to_string(p.path("deploy.toml")).unwrap();
    assert!(config.contains("address = \"server.example.org\""));
    assert!(config.contains("source = \"target/release/web\""));
    assert!(run.stderr.contains("target/release/web"), "{run}");
    let bad = p.ferry(&["init", "--service", "no/slash", "-c", "other/deploy.toml"]);
    bad.assert_code(2);
    assert!(bad.stderr.contains("--service"), "{bad}");
    assert!(!p.path("other").exists());
}

// ---------------------------------------------------------------------------------------------
// Completions and man pages

#[test]
fn bash_completion_completes_subcommands_and_flags() {
    let p = Project::new();
    let script = p.ferry(&["completions", "bash"]);
    script.assert_code(0);
    p.write("ferry.bash", &script.stdout);
    let complete = |words: &str, cword: usize| {
        let out = Command::new("bash")
            .arg("-c")
            .arg(format!(
                "source ./ferry.bash; COMP_WORDS=({words}); COMP_CWORD={cword}; \
                 COMP_LINE=\"${{COMP_WORDS[*]}}\"; COMP_POINT=${{#COMP_LINE}}; \
                 _ferry ferry \"${{COMP_WORDS[$COMP_CWORD]}}\" \"${{COMP_WORDS[$COMP_CWORD-1]}}\"; \
                 printf '%s\\n' \"${{COMPREPLY[@]}}\""
            ))
            .current_dir(p.dir.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let subs = complete("ferry de", 1);
    assert!(subs.lines().any(|l| l == "deploy"), "{subs}");
    let flags = complete("ferry logs --since-d", 2);
    assert!(flags.lines().any(|l| l == "--since-deploy"), "{flags}");
    for shell in ["zsh", "fish"] {
        let run = p.ferry(&["completions", shell]);
        run.assert_code(0);
        assert!(run.stdout.contains("since-deploy"), "{shell}");
    }
    p.ferry(&["completions", "tcsh"]).assert_code(2);
}

#[test]
fn man_pages_are_roff_for_ferry_and_each_command() {
    let p = Project::new();
    let page = p.ferry(&["man"]);
    page.assert_code(0);
    assert!(page.stdout.contains(".TH ferry 1"), "{page}");
    assert!(page.stdout.contains("Exit codes"), "{page}");
    let logs = p.ferry(&["man", "logs"]);
    logs.assert_code(0);
    assert!(logs.stdout.contains(".TH ferry-logs 1"), "{logs}");
    assert!(logs.stdout.contains("since\\-deploy"), "{logs}");
    let nope = p.ferry(&["man", "nope"]);
    nope.assert_code(2);
    assert!(nope.stderr.contains("deploy"), "{nope}");
    // man(1) itself reads it, when installed here.
    if Command::new("man").arg("--version").output().is_ok() {
        p.write("ferry.1", &page.stdout);
        let out = Command::new("man")
            .args(["-l", "ferry.1"])
            .env("MANPAGER", "cat")
            .env("MANWIDTH", "100")
            .current_dir(p.dir.path())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success() && text.contains("ferry"), "{out:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// The JSON Schema of deploy.toml

fn toml_to_json(text: &str) -> Value {
    let v: toml::Value = toml::from_str(text).expect("TOML");
    serde_json::to_value(v).unwrap()
}

fn deploy_schema() -> jsonschema::Validator {
    jsonschema::validator_for(&read_json("docs/deploy.schema.json")).expect("a valid schema")
}

fn errors(v: &jsonschema::Validator, doc: &Value) -> Vec<String> {
    v.iter_errors(doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

#[test]
fn deploy_example_and_init_output_validate_against_the_config_schema() {
    let v = deploy_schema();
    let example = toml_to_json(&std::fs::read_to_string(repo("deploy.example.toml")).unwrap());
    assert_eq!(errors(&v, &example), Vec::<String>::new());
    let p = Project::new();
    p.ferry(&["init", "--service", "web", "--host", "me@web1:2222"])
        .assert_code(0);
    let init = toml_to_json(&std::fs::read_to_string(p.path("deploy.toml")).unwrap());
    assert_eq!(errors(&v, &init), Vec::<String>::new());
    // What the parser refuses, the schema refuses too.
    for bad in [
        "[defaults]\nprot = 22\n",
        "[hosts.a]\nuser = \"x\"\n",
        "[services.s]\nkeep_releases = 1\n",
        "[services.s.rollout]\nbatch = \"half\"\n",
        "[defaults]\nhost_key_policy = \"yes\"\n",
        "[[services.s.files]]\nsource = \"a\"\ndest = \"b\"\nmode = \"0855\"\n",
    ] {
        assert!(!errors(&v, &toml_to_json(bad)).is_empty(), "{bad}");
    }
}

/// Every leaf key of the schema, as (path, sample value); `*` is a table name, `[]` an array.
fn schema_keys(schema: &Value, path: &str, out: &mut Vec<(String, Value)>) {
    if let Some(props) = schema["properties"].as_object() {
        for (k, sub) in props {
            schema_keys(sub, &format!("{path}.{k}"), out);
        }
        return;
    }
    if schema["additionalProperties"].is_object() {
        return schema_keys(&schema["additionalProperties"], &format!("{path}.*"), out);
    }
    if schema["type"] == "array" && schema["items"]["type"] == "object" {
        return schema_keys(&schema["items"], &format!("{path}[]"), out);
    }
    let key = path.rsplit(['.', ']']).next().unwrap();
    let sample = if let Some(d) = schema.get("default") {
        d.clone()
    } else if let Some(e) = schema["enum"].as_array() {
        e[0].clone()
    } else {
        match (key, schema["type"].as_str()) {
            ("http", _) => "http://127.0.0.1:19300/".into(),
            ("mode", _) => "0644".into(),
            ("batch", _) => 1.into(),
            ("pause", _) => "1s".into(),
            (_, Some("array")) => Value::Array(vec![]),
            (_, Some("integer")) => 2.into(),
            (_, Some("boolean")) => true.into(),
            _ if schema["pattern"] == "^\\s*[0-9]" => "1s".into(),
            _ => "x".into(),
        }
    };
    out.push((path.trim_start_matches('.').to_string(), sample));
}

/// Set `path` (as from [`schema_keys`]) in a TOML table, creating what is missing.
fn set(table: &mut toml::Table, path: &str, value: toml::Value) {
    let (head, rest) = match path.split_once('.') {
        Some((h, r)) => (h, Some(r)),
        None => (path, None),
    };
    let (name, array) = match head.strip_suffix("[]") {
        Some(n) => (n, true),
        None => (head, false),
    };
    let name = match name {
        "*" => "x",
        n => n,
    };
    let Some(rest) = rest else {
        table.insert(name.to_string(), value);
        return;
    };
    let entry = table.entry(name.to_string()).or_insert_with(|| {
        if array {
            toml::Value::Array(vec![toml::Value::Table(toml::Table::new())])
        } else {
            toml::Value::Table(toml::Table::new())
        }
    });
    let inner = match entry {
        toml::Value::Array(a) => a[0].as_table_mut().unwrap(),
        toml::Value::Table(t) => t,
        _ => unreachable!(),
    };
    set(inner, rest, value);
}

#[test]
fn every_key_of_the_config_schema_is_a_key_ferry_reads() {
    let schema = read_json("docs/deploy.schema.json");
    let mut keys = Vec::new();
    schema_keys(&schema, "", &mut keys);
    assert!(keys.len() > 35, "{keys:?}");
    let env = ferry::config::Env {
        home: Some("/home/me".into()),
        local_user: Some("me".into()),
        ssh_config: None,
    };
    let check = |path: &str, value: Value| {
        let mut t = toml::Table::new();
        set(&mut t, path, serde_json::from_value(value).unwrap());
        let text = toml::to_string(&t).unwrap();
        match ferry::config::parse(&text, Path::new("/p/deploy.toml"), &env) {
            Ok(_) => None,
            Err(e) => Some(e.to_string()),
        }
    };
    for (path, sample) in &keys {
        if let Some(e) = check(path, sample.clone()) {
            assert!(
                !e.contains("unknown field"),
                "the schema has `{path}`, ferry does not read it: {e}"
            );
        }
    }
    // The check above does tell: a key ferry does not have is reported as unknown.
    let e = check("services.*.restart_policy", Value::from("x")).unwrap();
    assert!(e.contains("unknown field"), "{e}");
}

// ---------------------------------------------------------------------------------------------
// Events: every event of real runs validates against docs/events.schema.json

/// One validator per event kind of the schema ($defs), with the commands that emit it.
struct EventSchema {
    kinds: BTreeMap<String, (jsonschema::Validator, Vec<String>)>,
    whole: jsonschema::Validator,
}

impl EventSchema {
    fn load() -> EventSchema {
        let schema = read_json("docs/events.schema.json");
        assert_eq!(schema["title"], "ferry events v1");
        let defs = schema["$defs"].as_object().unwrap();
        let kinds = defs
            .iter()
            .map(|(name, def)| {
                let one = serde_json::json!({
                    "$schema": schema["$schema"],
                    "$defs": schema["$defs"],
                    "$ref": format!("#/$defs/{name}"),
                });
                let commands = def["x-commands"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|c| c.as_str().unwrap().to_string())
                    .collect();
                (
                    name.clone(),
                    (jsonschema::validator_for(&one).unwrap(), commands),
                )
            })
            .collect();
        EventSchema {
            kinds,
            whole: jsonschema::validator_for(&schema).unwrap(),
        }
    }

    /// The kind an event of `command` is: exactly one must match, and list the command.
    fn kind_of(&self, command: &str, event: &Value) -> String {
        let errs = errors(&self.whole, event);
        assert!(
            errs.is_empty(),
            "`ferry {command}` printed an event the schema does not allow:\n{event}\n{errs:#?}"
        );
        let matching: Vec<&String> = self
            .kinds
            .iter()
            .filter(|(_, (v, _))| v.is_valid(event))
            .map(|(k, _)| k)
            .collect();
        assert_eq!(matching.len(), 1, "{event}");
        let (_, commands) = &self.kinds[matching[0]];
        let base = command.split(' ').next().unwrap();
        assert!(
            commands
                .iter()
                .any(|c| c == command || c.split(' ').next() == Some(base)),
            "`ferry {command}` printed a `{}` event, documented only for {commands:?}: {event}",
            matching[0]
        );
        matching[0].clone()
    }
}

/// Run ferry with --output json; check the exit code; every stdout line against the schema.
fn run_json(
    p: &Project,
    schema: &EventSchema,
    seen: &mut BTreeSet<String>,
    args: &[&str],
    code: i32,
) -> Run {
    let mut full = vec!["--output", "json"];
    full.extend_from_slice(args);
    let run = p.ferry(&full);
    run.assert_code(code);
    let command = args
        .iter()
        .filter(|a| {
            matches!(
                **a,
                "deploy"
                    | "--dry-run"
                    | "promote"
                    | "rollback"
                    | "releases"
                    | "status"
                    | "logs"
                    | "doctor"
                    | "exec"
                    | "units"
            )
        })
        .copied()
        .collect::<Vec<_>>()
        .join(" ");
    for event in run.json() {
        seen.insert(schema.kind_of(&command, &event));
    }
    run
}

fn events_config(p: &Project, service: &str, extra_hosts: &str) -> String {
    let hosts = if extra_hosts.is_empty() {
        "[\"web1\"]".to_string()
    } else {
        "[\"web1\", \"down\"]".to_string()
    };
    p.write(
        &format!("units/{service}.service"),
        format!(
            "[Unit]\nDescription={service}\n[Service]\nExecStart=%h/.local/share/ferry/{service}/current/bin/app\n\
             WorkingDirectory=%h/.local/share/ferry/{service}/current\n\
             [Install]\nWantedBy=default.target\n"
        ),
    );
    format!(
        "{}{extra_hosts}[services.{service}]\nhosts = {hosts}\nunits = [\"units/{service}.service\"]\n\
         start_timeout = \"10s\"\nsettle_time = \"1s\"\nconfirm_timeout = \"60s\"\n\
         [[services.{service}.files]]\nsource = \"app\"\ndest = \"bin/app\"\nmode = \"0755\"\n\
         [[services.{service}.files]]\nsource = \"version\"\ndest = \"share/version\"\n\
         [services.{service}.health]\ncommand = \"systemctl --user is-active --quiet {service}.service\"\ntimeout = \"5s\"\n",
        host_table("web1", USER)
    )
}

#[test]
fn every_event_of_real_runs_validates_against_the_events_schema() {
    let _u = user();
    let r = remote();
    let schema = EventSchema::load();
    let mut seen = BTreeSet::new();
    let service = "ecoev";
    clean(service);
    let p = Project::new();
    p.config(&events_config(&p, service, ""));
    let unit = format!("{service}.service");

    // doctor, read-only, as ferry1.
    let d = Project::new();
    d.config(&host_table("probe", "ferry1"));
    let doctor = d.ferry(&["--output", "json", "doctor"]);
    assert!(matches!(doctor.code, 0 | 1), "{doctor}");
    for e in doctor.json() {
        seen.insert(schema.kind_of("doctor", &e));
    }

    write_exec(&p, "app", &app("1", false));
    p.write("version", "1\n");
    run_json(&p, &schema, &mut seen, &["deploy", "--dry-run"], 0);
    run_json(&p, &schema, &mut seen, &["deploy"], 0);
    let v1 = current(service);
    p.write("version", "2\n");
    run_json(&p, &schema, &mut seen, &["deploy"], 0);
    run_json(&p, &schema, &mut seen, &["status"], 0);
    run_json(&p, &schema, &mut seen, &["logs", service], 0);
    run_json(&p, &schema, &mut seen, &["releases"], 0);

    // A failing release: rolled back (exit 4), its journal shown.
    write_exec(&p, "app", &app("3", true));
    let failed = run_json(&p, &schema, &mut seen, &["deploy"], 4);
    assert!(
        failed
            .events("journal")
            .iter()
            .any(|j| j["line"].as_str().unwrap().contains("crashing on purpose")),
        "{failed}"
    );
    // logs --since-deploy: from the failed deploy's start on (its release id's time), so the
    // crash and the old release started again by the rollback, not the first deploy's start.
    let failed_id = failed.events("result")[0]["release"]
        .as_str()
        .unwrap()
        .to_string();
    let start = format!(
        "{}-{}-{}T{}:{}:{}",
        &failed_id[0..4],
        &failed_id[4..6],
        &failed_id[6..8],
        &failed_id[9..11],
        &failed_id[11..13],
        &failed_id[13..15]
    );
    // A busy journald can be behind the rollback's restart: read until its line is in.
    let mut since = run_json(
        &p,
        &schema,
        &mut seen,
        &["logs", service, "--since-deploy"],
        0,
    );
    for _ in 0..40 {
        let arrived = since.events("entry").iter().any(|e| {
            e["message"]
                .as_str()
                .unwrap_or_default()
                .contains("app 1 started")
        });
        if arrived {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
        since = run_json(
            &p,
            &schema,
            &mut seen,
            &["logs", service, "--since-deploy"],
            0,
        );
    }
    let entries = since.events("entry");
    assert!(
        entries
            .iter()
            .all(|e| e["timestamp"].as_str().unwrap() >= start.as_str()),
        "an entry older than {start}\n{since}"
    );
    let count = |text: &str| {
        entries
            .iter()
            .filter(|e| e["message"].as_str().unwrap_or_default().contains(text))
            .count()
    };
    assert_eq!(count("app 3 crashing"), 1, "{since}");
    assert_eq!(
        count("app 1 started"),
        1,
        "only the rollback's restart\n{since}"
    );

    run_json(&p, &schema, &mut seen, &["rollback", service], 0);
    assert_eq!(current(service), v1, "rolled back to the first release");
    assert!(
        running_release(&unit).is_some(),
        "{unit} runs after the rollback"
    );

    // A staged release: `deploy --no-switch`, `releases` shows it, `promote` (dry run, then for
    // real, then again with nothing staged: exit 1).
    write_exec(&p, "app", &app("6", false));
    run_json(&p, &schema, &mut seen, &["deploy", "--no-switch"], 0);
    assert_eq!(current(service), v1, "staging switched nothing");
    let listed = run_json(&p, &schema, &mut seen, &["releases"], 0);
    assert!(
        listed.events("release").iter().any(|e| e["staged"] == true),
        "{listed}"
    );
    run_json(&p, &schema, &mut seen, &["promote", "--dry-run"], 0);
    run_json(&p, &schema, &mut seen, &["promote"], 0);
    assert_ne!(current(service), v1, "promoted");
    run_json(&p, &schema, &mut seen, &["promote"], 1);

    // A migration (`hooks.migrate`): its `migrate` event, then the failing release again.
    p.config(&format!(
        "{}[services.{service}.hooks]\nmigrate = \"echo migrating\"\n",
        events_config(&p, service, "")
    ));
    write_exec(&p, "app", &app("5", false));
    p.write("version", "5\n");
    let migrated = run_json(&p, &schema, &mut seen, &["deploy"], 0);
    assert_eq!(migrated.events("migrate")[0]["result"], "ran", "{migrated}");
    p.config(&events_config(&p, service, ""));
    write_exec(&p, "app", &app("3", true));

    // The same failure without rollback: failed (exit 1), the unit down in status (exit 1).
    run_json(&p, &schema, &mut seen, &["deploy", "--no-rollback"], 1);
    run_json(&p, &schema, &mut seen, &["status"], 1);

    // A host that does not answer: the result and status of an unreachable host (exit 3).
    let down = format!(
        "[hosts.down]\naddress = \"127.0.0.1\"\nport = 19399\nuser = \"{USER}\"\nidentity = \"{}\"\nknown_hosts = \"{}\"\nconnect_timeout = \"3s\"\n\n",
        r.key.display(),
        r.known_hosts.display()
    );
    p.config(&events_config(&p, service, &down));
    write_exec(&p, "app", &app("4", false));
    run_json(&p, &schema, &mut seen, &["deploy"], 3);
    run_json(&p, &schema, &mut seen, &["status"], 3);
    run_json(&p, &schema, &mut seen, &["deploy", "--dry-run"], 3);

    // Kinds printed by the runs of the next test.
    let not_exercised: BTreeSet<String> = [
        "batch",
        "exec",
        "exec_summary",
        "fix",
        "hook",
        "unit_diff",
        "unit_file",
    ]
    .iter()
    .map(|k| k.to_string())
    .collect();
    let all: BTreeSet<String> = schema
        .kinds
        .keys()
        .filter(|k| !not_exercised.contains(*k))
        .cloned()
        .collect();
    let unseen: Vec<&String> = all.difference(&seen).collect();
    assert!(
        unseen.is_empty(),
        "documented events that no run printed: {unseen:?}"
    );
    clean(service);
}

/// The event kinds of a rollout in batches, hooks, a dry run of a changed unit, `exec`,
/// `units` and `doctor --fix` (without --sudo it prints the root commands and changes
/// nothing), validated against the schema like the ones above (remote user ferry43; the user
/// without lingering for `doctor --fix`).
#[test]
fn batches_hooks_unit_diffs_exec_and_units_events_validate_against_the_schema() {
    let user = "ferry43";
    let r = remote();
    r.reset(user);
    let schema = EventSchema::load();
    let mut seen = BTreeSet::new();
    let p = Project::new();
    p.write(
        "units/evx.service",
        "[Unit]\nDescription=evx\n[Service]\nExecStart=/bin/sleep infinity\n",
    );
    p.write("version", "1\n");
    // Two host names for one remote user: the batches run one after the other, so the second
    // host finds the release of the first current (an `unchanged` result).
    p.config(&format!(
        "{}{}[services.evx]\nhosts = [\"h1\", \"h2\"]\nunits = [\"units/evx.service\"]\n\
         start_timeout = \"10s\"\nsettle_time = \"0.3s\"\n\
         [[services.evx.files]]\nsource = \"version\"\ndest = \"share/version\"\n\
         [services.evx.rollout]\nbatch = 1\n\
         [services.evx.hooks]\nbefore_switch = \"echo before $FERRY_RELEASE\"\n\
         after_switch = \"echo after >&2\"\nlocal_after = \"echo local $FERRY_RESULT\"\n",
        host_table("h1", user),
        host_table("h2", user)
    ));
    let run = run_json(&p, &schema, &mut seen, &["deploy"], 0);
    assert_eq!(run.events("batch").len(), 2, "{run}");
    let hooks: Vec<String> = run
        .events("hook")
        .iter()
        .filter_map(|h| h["line"].as_str().map(str::to_string))
        .collect();
    assert!(
        hooks.iter().any(|l| l.starts_with("before 20"))
            && hooks.iter().any(|l| l == "after")
            && hooks.iter().any(|l| l.starts_with("local ")),
        "{run}"
    );
    p.write(
        "units/evx.service",
        "[Unit]\nDescription=evx changed\n[Service]\nExecStart=/bin/sleep infinity\n",
    );
    let dry = run_json(&p, &schema, &mut seen, &["deploy", "--dry-run"], 0);
    assert!(
        dry.events("unit-diff").iter().any(|d| d["diff"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l == "+Description=evx changed")),
        "{dry}"
    );
    let exec = run_json(
        &p,
        &schema,
        &mut seen,
        &["exec", "evx", "-H", "h1", "--", "cat", "share/version"],
        0,
    );
    assert_eq!(exec.events("exec")[0]["stdout"], "1\n", "{exec}");
    let units = run_json(&p, &schema, &mut seen, &["units", "evx"], 0);
    assert!(
        units.events("unit-file")[0]["content"]
            .as_str()
            .unwrap()
            .contains("Description=evx changed"),
        "{units}"
    );
    let d = Project::new();
    d.config(&host_table("box", &r.nolinger_user));
    let fix = run_json(&d, &schema, &mut seen, &["doctor", "--fix"], 1);
    assert!(
        fix.events("fix").iter().any(|f| f["check"] == "lingering"),
        "{fix}"
    );
    let want: BTreeSet<String> = [
        "batch",
        "exec",
        "exec_summary",
        "fix",
        "hook",
        "unit_diff",
        "unit_file",
    ]
    .iter()
    .map(|k| k.to_string())
    .collect();
    let missing: Vec<&String> = want.difference(&seen).collect();
    assert!(missing.is_empty(), "not printed: {missing:?}");
    r.reset(user);
}

#[test]
fn every_event_type_in_the_source_is_documented() {
    let schema = read_json("docs/events.schema.json");
    let documented: BTreeSet<String> = schema["$defs"]
        .as_object()
        .unwrap()
        .values()
        .map(|d| {
            d["properties"]["type"]["const"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let doc = std::fs::read_to_string(repo("docs/events.md")).unwrap();
    let mut found = BTreeSet::new();
    let mut stack = vec![repo("src")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for piece in text.split("kind: \"").skip(1) {
                let kind = piece.split('"').next().unwrap();
                found.insert((kind.to_string(), path.display().to_string()));
            }
        }
    }
    assert!(found.len() > 10, "{found:?}");
    for (kind, file) in found {
        assert!(
            documented.contains(&kind),
            "{file} emits `{kind}` events: add them to docs/events.schema.json"
        );
        assert!(
            doc.contains(&format!("`{kind}`")),
            "docs/events.md does not describe `{kind}`"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The CI script

/// Run examples/ci/deploy.sh as a CI job would: the key and known_hosts from "secrets" (env),
/// no ssh-agent of ours, HOME a fresh directory, ferry on PATH.
fn ci_deploy(p: &Project, args: &[&str]) -> Run {
    let r = remote();
    let bin_dir = Path::new(ferry_bin()).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("sh")
        .arg(repo("examples/ci/deploy.sh"))
        .args(args)
        .current_dir(p.dir.path())
        .env("HOME", p.path("home"))
        .env("PATH", path)
        .env("NO_COLOR", "1")
        .env_remove("SSH_AUTH_SOCK")
        .env_remove("FERRY_CONFIG")
        .env("FERRY_SSH_KEY", std::fs::read_to_string(&r.key).unwrap())
        .env(
            "FERRY_KNOWN_HOSTS",
            std::fs::read_to_string(&r.known_hosts).unwrap(),
        )
        .output()
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn the_ci_script_deploys_fails_with_ferrys_code_and_keeps_the_logs() {
    let _u = user();
    let r = remote();
    let service = "ecoci";
    clean(service);
    let p = Project::new();
    std::fs::create_dir_all(p.path("home")).unwrap();
    // As in a real project: no identity (the key comes from the agent the script starts), the
    // default known_hosts (the script writes it).
    let config = events_config(&p, service, "")
        .replace(&format!("identity = \"{}\"\n", r.key.display()), "")
        .replace(
            &format!("known_hosts = \"{}\"\n", r.known_hosts.display()),
            "",
        );
    assert!(!config.contains("identity"), "{config}");
    p.config(&config);
    write_exec(&p, "app", &app("1", false));
    p.write("version", "1\n");

    let ok = ci_deploy(&p, &[]);
    ok.assert_code(0);
    let jsonl = std::fs::read_to_string(p.path("ferry-out/deploy.jsonl")).unwrap();
    assert!(jsonl.contains("\"type\":\"result\""), "{jsonl}");
    assert!(jsonl.contains("\"result\":\"ok\""), "{jsonl}");
    assert!(!p.path(&format!("ferry-out/logs-{service}.txt")).exists());
    let first = current(service);
    assert!(
        running_release(&format!("{service}.service")).is_some(),
        "the service runs"
    );
    assert!(
        !ok.stdout.contains("PRIVATE KEY") && !ok.stderr.contains("PRIVATE KEY"),
        "{ok}"
    );

    write_exec(&p, "app", &app("2", true));
    let failed = ci_deploy(&p, &[service]);
    failed.assert_code(4);
    assert_eq!(current(service), first, "rolled back");
    let logs = std::fs::read_to_string(p.path(&format!("ferry-out/logs-{service}.txt")))
        .unwrap_or_else(|e| panic!("no logs file ({e})\n{failed}"));
    assert!(logs.contains("app 2 crashing on purpose"), "{logs}");
    // Since this deploy: the old release started again by the rollback, not its first start.
    assert_eq!(logs.matches("app 1 started").count(), 1, "{logs}");
    assert!(failed.stderr.contains("exit code 4"), "{failed}");
    clean(service);
}

#[test]
fn the_ci_examples_call_the_tested_script() {
    for f in [
        "examples/ci/github-actions.yml",
        "examples/ci/gitlab-ci.yml",
    ] {
        let text = std::fs::read_to_string(repo(f)).unwrap();
        assert!(text.contains("deploy.sh"), "{f}");
        assert!(text.contains("FERRY_SSH_KEY"), "{f}");
        assert!(text.contains("FERRY_KNOWN_HOSTS"), "{f}");
        assert!(
            text.contains("ferry-out"),
            "{f}: the output kept as an artifact"
        );
        assert!(!text.contains('\t'), "{f}: YAML has no tabs");
    }
}

#[test]
fn logs_since_deploy_without_a_recorded_deploy_says_so() {
    let _u = user();
    let service = "econone";
    clean(service);
    let p = Project::new();
    p.config(&events_config(&p, service, ""));
    write_exec(&p, "app", &app("1", false));
    p.write("version", "1\n");
    let run = p.ferry(&["logs", service, "--since-deploy"]);
    run.assert_code(0);
    assert!(
        run.stderr.contains(
            "no deploy of econone is recorded in ~/.local/share/ferry/econone/history.jsonl"
        ),
        "{run}"
    );
    let both = p.ferry(&["logs", service, "--since-deploy", "--since", "-1h"]);
    both.assert_code(2);
}

/// The shape of a JSON Schema: every key path (`.services.*.files[].mode`) with the JSON types
/// its value may have (`null` left out: in TOML a key is absent instead).
fn shape(root: &Value, node: &Value, path: &str, out: &mut BTreeMap<String, BTreeSet<String>>) {
    let node = match node["$ref"].as_str() {
        Some(r) => &root["$defs"][r.trim_start_matches("#/$defs/")],
        None => node,
    };
    let types = out.entry(path.to_string()).or_default();
    match &node["type"] {
        Value::String(t) => {
            types.insert(t.clone());
        }
        Value::Array(ts) => types.extend(ts.iter().map(|t| t.as_str().unwrap().to_string())),
        _ => {}
    }
    if node.get("enum").is_some() || node.get("const").is_some() {
        types.insert("string".into());
    }
    types.remove("null");
    for kw in ["anyOf", "oneOf"] {
        for alt in node[kw].as_array().into_iter().flatten() {
            shape(root, alt, path, out);
        }
    }
    if let Some(props) = node["properties"].as_object() {
        for (k, v) in props {
            shape(root, v, &format!("{path}.{k}"), out);
        }
    }
    // `true` and `{}` both allow any value.
    let any = serde_json::json!({});
    for (kw, suffix) in [("additionalProperties", ".*"), ("items", "[]")] {
        let sub = match &node[kw] {
            Value::Bool(true) => &any,
            v if v.is_object() => v,
            _ => continue,
        };
        shape(root, sub, &format!("{path}{suffix}"), out);
    }
}

/// docs/deploy.schema.json (written for people: descriptions, defaults, patterns) has exactly
/// the keys, and the value types, of the schema generated from the types the parser reads:
/// a key added to the parser and not documented, or documented and not read, fails here.
#[test]
fn the_config_schema_has_the_keys_and_types_of_the_config_types() {
    let doc = read_json("docs/deploy.schema.json");
    let generated = ferry::config::type_schema();
    let (mut a, mut b) = (BTreeMap::new(), BTreeMap::new());
    shape(&doc, &doc, "", &mut a);
    shape(&generated, &generated, "", &mut b);
    assert!(a.len() > 60, "{a:?}");
    let only_doc: Vec<_> = a.keys().filter(|k| !b.contains_key(*k)).collect();
    let only_types: Vec<_> = b.keys().filter(|k| !a.contains_key(*k)).collect();
    assert!(
        only_doc.is_empty() && only_types.is_empty(),
        "keys only in docs/deploy.schema.json: {only_doc:?}; keys only in the config types: {only_types:?}"
    );
    let differ: Vec<_> = a
        .iter()
        .filter(|(k, t)| b[*k] != **t)
        .map(|(k, t)| format!("{k}: documented {t:?}, read as {:?}", b[k]))
        .collect();
    assert!(differ.is_empty(), "{differ:#?}");
}
