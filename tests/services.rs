//! Real services against the real remote: `[env]` values reaching the process (and never
//! printed), and the hooks around the switch. Users ferry37..ferry40.

use crate::support::{Project, Run, host_table, remote};

/// A service whose process writes its environment to `$XDG_RUNTIME_DIR/app.env` when it
/// starts, then sleeps: what the process really got is read back from there.
const UNIT: &str = "[Unit]\nDescription=ferry env test\n\n[Service]\nExecStart=/bin/sh -c 'env > %t/app.env; exec sleep 600'\n";

const SECRET_ENV: &str = "env-s3cret-Zq81";
const SECRET_CMD: &str = "cmd-s3cret-Wx42";
const SECRET_FILE: &str = "file-s3cret-Pv77";

fn project(user: &str, env: &str, hooks: &str) -> Project {
    let p = Project::new();
    p.write("units/app.service", UNIT);
    p.write("dsn.txt", format!("{SECRET_FILE}\n"));
    p.write("payload.txt", "payload\n");
    p.config(&format!(
        "{}[services.svc]\nunits = [\"units/app.service\"]\nstart_timeout = \"10s\"\nsettle_time = \"0.3s\"\n\n\
         [[services.svc.files]]\nsource = \"payload.txt\"\ndest = \"share/payload.txt\"\n\n\
         [services.svc.env]\n{env}\n\n[services.svc.hooks]\n{hooks}\n",
        host_table("web1", user)
    ));
    p
}

/// The process's environment, once it has the variable `until` (a fresh start writes it).
fn process_env(user: &str, until: &str) -> String {
    for _ in 0..100 {
        let out = remote().ssh(user, "cat \"$XDG_RUNTIME_DIR/app.env\" 2>/dev/null; true");
        if out.lines().any(|l| l == until) {
            return out;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!(
        "the service's process never started with {until}:\n{}",
        remote().ssh(user, "cat \"$XDG_RUNTIME_DIR/app.env\" 2>/dev/null; true")
    );
}

fn current(user: &str) -> String {
    remote()
        .ssh(user, "readlink ~/.local/share/ferry/svc/current; true")
        .trim()
        .to_string()
}

fn main_pid(user: &str) -> String {
    remote()
        .ssh(user, "systemctl --user show app.service -p MainPID --value")
        .trim()
        .to_string()
}

fn assert_no_secret(run: &Run) {
    for s in [SECRET_ENV, SECRET_CMD, SECRET_FILE] {
        assert!(
            !run.stdout.contains(s) && !run.stderr.contains(s),
            "secret {s} printed:\n{run}"
        );
    }
}

const ENV: &str = "LITERAL = \"plain value\"\nTRICKY = \"it's \\\"q\\\" $HOME `x` \\\\n end\"\nVERSION = \"1\"\n\
FROM_ENV = { env = \"SVC_TEST_SECRET\" }\nFROM_CMD = { command = \"printf '%s\\\\n' cmd-s3cret-Wx42\" }\n\
FROM_FILE = { file = \"dsn.txt\" }";

#[test]
fn env_values_reach_the_process_and_are_never_printed() {
    let user = "ferry37";
    let r = remote();
    r.reset(user);
    let p = project(user, ENV, "");
    let secret = [("SVC_TEST_SECRET", SECRET_ENV)];

    // Every output mode of a dry run and a deploy: names shown, values never.
    let dry = p.ferry_env(&["deploy", "--dry-run"], &secret);
    dry.assert_code(0);
    assert!(
        dry.stdout
            .contains("FROM_CMD FROM_ENV FROM_FILE LITERAL TRICKY VERSION (values not shown)"),
        "{dry}"
    );
    assert_no_secret(&dry);
    let dry = p.ferry_env(&["--output", "json", "deploy", "--dry-run"], &secret);
    dry.assert_code(0);
    assert_eq!(dry.events("plan")[0]["env"][1], "FROM_ENV", "{dry}");
    assert_no_secret(&dry);
    let run = p.ferry_env(&["-vv", "--output", "json", "deploy"], &secret);
    run.assert_code(0);
    assert_no_secret(&run);
    assert!(run.stderr.contains("DEBUG"), "-vv logs: {run}");

    // The process got every value, exactly.
    let env = process_env(user, "VERSION=1");
    for line in [
        "LITERAL=plain value",
        &format!("FROM_ENV={SECRET_ENV}"),
        &format!("FROM_CMD={SECRET_CMD}"),
        &format!("FROM_FILE={SECRET_FILE}"),
        "TRICKY=it's \"q\" $HOME `x` \\n end",
    ] {
        assert!(env.lines().any(|l| l == line), "{line} missing in:\n{env}");
    }
    // The env file is in the release, 0600.
    assert_eq!(
        r.ssh(
            user,
            "stat -c %a ~/.local/share/ferry/svc/current/.ferry/env"
        )
        .trim(),
        "600"
    );
    let first = current(user);

    // A value change alone makes a new release the process starts with.
    let p2 = project(user, &ENV.replace("VERSION = \"1\"", "VERSION = \"2\""), "");
    let run = p2.ferry_env(&["deploy"], &[("SVC_TEST_SECRET", "env-s3cret-second")]);
    run.assert_code(0);
    let env = process_env(user, "VERSION=2");
    assert!(
        env.lines().any(|l| l == "FROM_ENV=env-s3cret-second"),
        "{env}"
    );
    assert_ne!(current(user), first);

    // A rollback brings the old environment back with the old release.
    let run = p2.ferry(&["rollback", "svc"]);
    run.assert_code(0);
    let env = process_env(user, "VERSION=1");
    assert!(
        env.lines().any(|l| l == format!("FROM_ENV={SECRET_ENV}")),
        "{env}"
    );
    assert_eq!(current(user), first);

    // A failing release that prints its secrets as it dies: the failure output (reasons,
    // journal, errors) shows its line with the values masked, in either output mode, and the
    // old environment is back.
    p2.write(
        "units/app.service",
        UNIT.replace(
            "exec sleep 600",
            "echo cannot connect with $$FROM_ENV, $$FROM_CMD and $$FROM_FILE; exit 3",
        ),
    );
    for mode in [&["deploy"][..], &["--output", "json", "deploy"][..]] {
        let run = p2.ferry_env(mode, &secret);
        run.assert_code(4);
        assert_no_secret(&run);
        assert!(
            run.stdout.contains("cannot connect with ***, *** and ***"),
            "the service's own line, masked, is in the failure journal:\n{run}"
        );
        assert_eq!(current(user), first);
    }
    process_env(user, "VERSION=1");
}

#[test]
fn unresolvable_env_values_stop_before_any_connection() {
    // It never connects: ferry37's host (another test's) only shows that nothing was made.
    let user = "ferry37";
    let r = remote();
    let unresolved = |p: Project| {
        let text = std::fs::read_to_string(p.path("deploy.toml")).unwrap();
        p.config(&text.replace("services.svc", "services.unresolved"));
        p
    };
    // Not set: exit 2, nothing on the host.
    let p = unresolved(project(user, ENV, ""));
    let run = p.ferry(&["deploy"]);
    run.assert_code(2);
    assert!(
        run.stderr.contains("env FROM_ENV") && run.stderr.contains("SVC_TEST_SECRET is not set"),
        "{run}"
    );
    // A failing command: exit 2, its value never used.
    let p = unresolved(project(
        user,
        "TOKEN = { command = \"cat dsn.txt; exit 3\" }",
        "",
    ));
    let run = p.ferry(&["deploy", "--dry-run"]);
    run.assert_code(2);
    assert!(
        run.stderr.contains("env TOKEN") && run.stderr.contains("exit status 3"),
        "{run}"
    );
    assert_no_secret(&run);
    assert_eq!(
        r.ssh(
            user,
            "test -e ~/.local/share/ferry/unresolved && echo touched; true"
        )
        .trim(),
        "",
        "the host was touched"
    );
}

/// Hooks on one user, one after the other: a failing before_switch, then a failing
/// after_switch.
#[test]
fn hooks_a_failing_before_switch_changes_nothing_a_failing_after_switch_rolls_back() {
    a_failing_before_switch_leaves_the_old_release_serving_untouched("ferry38");
    a_failing_after_switch_rolls_back("ferry38");
}

fn a_failing_before_switch_leaves_the_old_release_serving_untouched(user: &str) {
    let r = remote();
    r.reset(user);
    let record = "before_switch = \"echo \\\"$FERRY_SERVICE $FERRY_HOST $FERRY_RELEASE [$FERRY_PREVIOUS_RELEASE] $PWD $VERSION\\\" > \\\"$XDG_RUNTIME_DIR/before.txt\\\"; echo token=$FROM_ENV\"\nlocal_after = \"env | grep ^FERRY_ > after.txt\"";
    let p = project(user, ENV, record);
    let secret = [("SVC_TEST_SECRET", SECRET_ENV)];
    let run = p.ferry_env(&["--output", "json", "deploy"], &secret);
    run.assert_code(0);
    let first = run.events("result")[0]["release"]
        .as_str()
        .unwrap()
        .to_string();
    // The hook ran in the new release's directory, with its env and the FERRY_* variables.
    let seen = r.ssh(user, "cat \"$XDG_RUNTIME_DIR/before.txt\"");
    let home = r.ssh(user, "echo $HOME").trim().to_string();
    assert_eq!(
        seen.trim(),
        format!("svc web1 {first} [] {home}/.local/share/ferry/svc/releases/{first} 1")
    );
    // Its output is a hook event, with the secret masked.
    let lines: Vec<_> = run
        .events("hook")
        .into_iter()
        .filter(|e| e["hook"] == "before_switch" && e["line"].is_string())
        .collect();
    assert_eq!(lines.len(), 1, "{run}");
    assert_eq!(lines[0]["line"], "token=***");
    assert_eq!(lines[0]["host"], "web1");
    assert_no_secret(&run);
    let after = std::fs::read_to_string(p.path("after.txt")).unwrap();
    assert!(
        after.contains("FERRY_RESULT=ok\n") && after.contains(&format!("FERRY_RELEASE={first}\n")),
        "{after}"
    );
    process_env(user, "VERSION=1");
    let pid = main_pid(user);

    // Now the hook fails: the deploy stops before anything live changes.
    let failing = "before_switch = \"echo migrating; echo no database >&2; exit 3\"\nlocal_after = \"env | grep ^FERRY_ > after.txt\"";
    let p2 = project(
        user,
        &ENV.replace("VERSION = \"1\"", "VERSION = \"2\""),
        failing,
    );
    let run = p2.ferry_env(&["deploy"], &secret);
    run.assert_code(1);
    assert!(
        run.stdout.contains("web1 before_switch| migrating"),
        "{run}"
    );
    assert!(
        run.stdout.contains("web1 before_switch| no database"),
        "{run}"
    );
    assert!(run.stdout.contains("exit status 3"), "{run}");
    assert_eq!(current(user), format!("releases/{first}"));
    assert_eq!(main_pid(user), pid, "the running process was touched");
    let env = process_env(user, "VERSION=1");
    assert!(!env.contains("VERSION=2"));
    let installed = r.ssh(user, "cat ~/.config/systemd/user/app.service");
    assert!(installed.contains(".ferry/env"), "{installed}");
    let after = std::fs::read_to_string(p2.path("after.txt")).unwrap();
    assert!(
        after.contains("FERRY_RESULT=failed\n") && after.contains("FERRY_EXIT_CODE=1\n"),
        "{after}"
    );
    // The history says why.
    let history = r.ssh(user, "tail -n 1 ~/.local/share/ferry/svc/history.jsonl");
    assert!(
        history.contains("\"outcome\":\"failed\"") && history.contains("before_switch"),
        "{history}"
    );
}

fn a_failing_after_switch_rolls_back(user: &str) {
    let r = remote();
    r.reset(user);
    let hooks = "after_switch = \"test \\\"$VERSION\\\" = 1\"\nlocal_after = \"env | grep ^FERRY_ > after.txt\"";
    let p = project(user, ENV, hooks);
    let secret = [("SVC_TEST_SECRET", SECRET_ENV)];
    let run = p.ferry_env(&["--output", "json", "deploy"], &secret);
    run.assert_code(0);
    let first = current(user);
    process_env(user, "VERSION=1");

    // VERSION=2 fails the after_switch hook (it sees the new release's env).
    let p2 = project(
        user,
        &ENV.replace("VERSION = \"1\"", "VERSION = \"2\""),
        hooks,
    );
    let run = p2.ferry_env(&["--output", "json", "deploy"], &secret);
    run.assert_code(4);
    let steps: Vec<String> = run
        .events("step")
        .iter()
        .map(|s| s["step"].as_str().unwrap().to_string())
        .collect();
    // The hook ran after verification, and the deploy stopped there (never confirmed).
    assert_eq!(
        steps.last().map(String::as_str),
        Some("after-switch"),
        "{run}"
    );
    assert!(steps.contains(&"verify".to_string()), "{run}");
    let status: Vec<_> = run
        .events("hook")
        .into_iter()
        .filter(|e| e["hook"] == "after_switch" && e["ok"] == false)
        .collect();
    assert_eq!(status.len(), 1, "{run}");
    assert_eq!(status[0]["exit_code"], 1);
    // The old release serves again, with its own environment.
    assert_eq!(current(user), first);
    process_env(user, "VERSION=1");
    let after = std::fs::read_to_string(p2.path("after.txt")).unwrap();
    assert!(
        after.contains("FERRY_RESULT=rolled-back\n") && after.contains("FERRY_EXIT_CODE=4\n"),
        "{after}"
    );
    assert_no_secret(&run);
}

/// Two hosts, one unit template: each host's unit listens on the port of its own `vars`.
#[test]
fn unit_templates_use_each_hosts_vars_then_instances() {
    unit_templates_use_each_hosts_vars();
    instances_are_started_then_the_surplus_stopped_and_disabled("ferry39");
}

/// `"inst@.service" = "{{ host.vars.inst }}"`: 3 instances up, then 2 (the third stopped and
/// disabled).
fn instances_are_started_then_the_surplus_stopped_and_disabled(user: &str) {
    let r = remote();
    let p = Project::new();
    p.write(
        "units/inst@.service",
        "[Unit]\nDescription=instance %i\n\n[Service]\nExecStart=/bin/sleep 600\n\n[Install]\nWantedBy=default.target\n",
    );
    let config = |n: u32| {
        format!(
            "{}[hosts.web1.vars]\ninst = {n}\n\n[services.inst]\nunits = [\"units/inst@.service\"]\nstart_timeout = \"10s\"\nsettle_time = \"0.3s\"\n\n\
             [services.inst.instances]\n\"inst@.service\" = \"{{{{ host.vars.inst }}}}\"\n",
            host_table("web1", user)
        )
    };
    let state = |unit: &str| {
        r.ssh(
            user,
            &format!(
                "echo $(systemctl --user is-active {unit}) $(systemctl --user is-enabled {unit})"
            ),
        )
        .trim()
        .to_string()
    };
    p.config(&config(3));
    let run = p.ferry(&["--output", "json", "deploy"]);
    run.assert_code(0);
    let verified: Vec<_> = run
        .events("unit")
        .iter()
        .map(|u| u["unit"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        verified,
        ["inst@1.service", "inst@2.service", "inst@3.service"],
        "{run}"
    );
    for i in 1..=3 {
        assert_eq!(state(&format!("inst@{i}.service")), "active enabled");
    }
    p.config(&config(2));
    let run = p.ferry(&["deploy"]);
    run.assert_code(0);
    for i in 1..=2 {
        assert_eq!(state(&format!("inst@{i}.service")), "active enabled");
    }
    assert_eq!(state("inst@3.service"), "inactive disabled");
    // `ferry status` looks at the instances, not at the template.
    let status = p.ferry(&["--output", "json", "status"]);
    status.assert_code(0);
    assert!(
        status.stdout.contains("inst@2.service") && !status.stdout.contains("inst@.service"),
        "{status}"
    );
}

fn unit_templates_use_each_hosts_vars() {
    let r = remote();
    let hosts = [("web1", "ferry39", 19501), ("web2", "ferry40", 19502)];
    for (_, user, _) in hosts {
        r.reset(user);
    }
    let p = Project::new();
    p.write("share/hello.txt", "hello from a template\n");
    // A file with `template = true`, rendered per host (and a plain file, not rendered).
    p.write(
        "greeting.txt",
        "{# a comment #}greeting from {{ host.name }} on port {{ host.vars.port }}\n",
    );
    let unit = "[Unit]\nDescription=templated on {{ host.name }}\n# release {{ release.id }}\n\n[Service]\n\
                ExecStart=/usr/bin/python3 -m http.server {{ host.vars.port }} --bind 127.0.0.1 --directory %h/.local/share/ferry/{{ service.name }}/current/share\n";
    p.write("units/tpl-web.service", unit);
    let mut config = String::new();
    for (name, user, port) in hosts {
        config.push_str(&host_table(name, user));
        config.push_str(&format!("[hosts.{name}.vars]\nport = {port}\n\n"));
    }
    config.push_str(
        "[services.tpl]\ntemplates = true\nunits = [\"units/tpl-web.service\"]\nstart_timeout = \"10s\"\nsettle_time = \"0.3s\"\n\n\
         [[services.tpl.files]]\nsource = \"share/hello.txt\"\ndest = \"share/hello.txt\"\n\n\
         [[services.tpl.files]]\nsource = \"greeting.txt\"\ndest = \"share/greeting.txt\"\ntemplate = true\n",
    );
    p.config(&config);
    let run = p.ferry(&["--output", "json", "deploy"]);
    run.assert_code(0);
    for (name, user, port) in hosts {
        let installed = r.ssh(user, "cat ~/.config/systemd/user/tpl-web.service");
        let current = r.ssh(user, "readlink ~/.local/share/ferry/tpl/current");
        assert!(
            installed.contains(&format!("http.server {port} "))
                && installed.contains(&format!("templated on {name}"))
                && installed.contains(&format!(
                    "# release {}",
                    current.trim().trim_start_matches("releases/")
                )),
            "{installed}"
        );
        let mut body = None;
        for _ in 0..50 {
            body = r.http_get(port, "/hello.txt");
            if body.is_some() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        assert_eq!(body.as_deref(), Some("hello from a template\n"), "{name}");
        assert_eq!(
            r.http_get(port, "/greeting.txt").as_deref(),
            Some(format!("greeting from {name} on port {port}\n").as_str()),
            "{name}"
        );
    }

    // A dry run shows how the rendered unit differs from the installed one, per host.
    p.write(
        "units/tpl-web.service",
        unit.replace("templated on", "templated again on"),
    );
    let dry = p.ferry(&["--output", "json", "deploy", "--dry-run"]);
    dry.assert_code(0);
    let diffs = dry.events("unit-diff");
    assert_eq!(diffs.len(), 2, "{dry}");
    for d in &diffs {
        let host = d["host"].as_str().unwrap();
        let lines: Vec<&str> = d["diff"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l.as_str().unwrap())
            .collect();
        assert!(
            lines.contains(&format!("-Description=templated on {host}").as_str())
                && lines.contains(&format!("+Description=templated again on {host}").as_str()),
            "{dry}"
        );
    }

    // An undefined name is an error before any connection, naming the file and line.
    let before = r.ssh("ferry39", "readlink ~/.local/share/ferry/tpl/current");
    p.write(
        "units/tpl-web.service",
        unit.replace("{{ host.vars.port }}", "{{ host.vars.prot }}"),
    );
    let run = p.ferry(&["deploy"]);
    run.assert_code(2);
    assert!(
        run.stderr.contains("units/tpl-web.service:6:") && run.stderr.contains("undefined"),
        "{run}"
    );
    assert_eq!(
        r.ssh("ferry39", "readlink ~/.local/share/ferry/tpl/current"),
        before
    );
    // The same for a `template = true` file.
    p.write("units/tpl-web.service", unit);
    p.write("greeting.txt", "line one\n{{ host.vars.colour }}\n");
    let run = p.ferry(&["deploy"]);
    run.assert_code(2);
    assert!(
        run.stderr.contains("greeting.txt:2:")
            && run.stderr.contains("undefined")
            && run.stderr.contains("share/greeting.txt"),
        "{run}"
    );
    assert_eq!(
        r.ssh("ferry39", "readlink ~/.local/share/ferry/tpl/current"),
        before
    );
}
