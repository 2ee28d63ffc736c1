//! A migration run once per rollout (`hooks.migrate`) over four hosts (users ferry71..ferry74),
//! and services deployed in order (`after`, user ferry80).

use crate::support::{Project, Run, host_table, remote};

const USERS: [&str; 4] = ["ferry71", "ferry72", "ferry73", "ferry74"];

/// A service that sleeps; each run of the migration appends a line to `~/migrations.log` on
/// the host it runs on. Release 2's health check fails on a host where `~/break` exists.
fn project(version: &str, migrate: &str) -> Project {
    let p = Project::new();
    p.write(
        "units/app.service",
        "[Unit]\nDescription=ferry migrate test\n\n[Service]\nExecStart=/bin/sleep 600\n",
    );
    p.write("payload.txt", format!("{version}\n"));
    let hosts: String = USERS
        .iter()
        .enumerate()
        .map(|(i, u)| host_table(&format!("h{}", i + 1), u))
        .collect();
    p.config(&format!(
        "{hosts}[services.svc]\nhosts = [\"h1\", \"h2\", \"h3\", \"h4\"]\nunits = [\"units/app.service\"]\n\
         start_timeout = \"10s\"\nsettle_time = \"0.2s\"\n\n\
         [[services.svc.files]]\nsource = \"payload.txt\"\ndest = \"share/payload.txt\"\n\n\
         [services.svc.env]\nVERSION = \"{version}\"\n\n\
         [services.svc.health]\ncommand = \"! grep -qx 2 share/payload.txt || test ! -e \\\"$HOME/break\\\"\"\ntimeout = \"2s\"\n\n\
         [services.svc.rollout]\nbatch = 2\n\n\
         [services.svc.hooks]\n{migrate}\n"
    ));
    p
}

const MIGRATE: &str = "migrate = \"echo \\\"$FERRY_HOST $FERRY_RELEASE $PWD $VERSION\\\" >> \\\"$HOME/migrations.log\\\"; echo migrated\"\nmigrate_on = \"h3\"";

/// The lines of `~/migrations.log` of each user.
fn migration_logs() -> Vec<Vec<String>> {
    USERS
        .iter()
        .map(|u| {
            remote()
                .ssh(u, "cat ~/migrations.log 2>/dev/null; true")
                .lines()
                .map(String::from)
                .collect()
        })
        .collect()
}

fn currents() -> Vec<String> {
    USERS
        .iter()
        .map(|u| {
            remote()
                .ssh(u, "readlink ~/.local/share/ferry/svc/current; true")
                .trim()
                .to_string()
        })
        .collect()
}

fn pids() -> Vec<String> {
    USERS
        .iter()
        .map(|u| remote().unit_prop(u, "app.service", "MainPID"))
        .collect()
}

fn migrate_events(run: &Run) -> Vec<serde_json::Value> {
    run.events("migrate")
}

/// The release h3 (the migrate host) got, as its result names it.
fn release_of(run: &Run) -> String {
    let results = run.events("result");
    assert_eq!(results.len(), 4, "{run}");
    let h3 = results.iter().find(|r| r["host"] == "h3").unwrap();
    h3["release"].as_str().unwrap().to_string()
}

/// What a release id says of its content (hosts' ids differ in their time).
fn content(id: &str) -> &str {
    id.rsplit('-').next().unwrap()
}

/// One test owns the four users: the migration runs once (on migrate_on's host, before any host
/// switches), is not run again by --retry-failed nor by a redeploy of the same content, and a
/// failing migration switches nothing anywhere.
#[test]
fn a_migration_runs_once_per_rollout_before_any_switch_and_never_twice() {
    let r = remote();
    for u in USERS {
        r.reset(u);
        r.ssh(u, "rm -f ~/migrations.log ~/break");
    }

    // The dry run shows the migrate step on h3's plan only.
    let p = project("1", MIGRATE);
    let dry = p.ferry(&["--output", "json", "deploy", "--dry-run"]);
    dry.assert_code(0);
    for plan in dry.events("plan") {
        let steps: Vec<&str> = plan["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["step"].as_str().unwrap())
            .collect();
        let migrates = steps.contains(&"migrate");
        assert_eq!(migrates, plan["host"] == "h3", "{dry}");
        if migrates {
            let at = |n: &str| steps.iter().position(|s| *s == n).unwrap();
            assert!(at("seal") < at("migrate") && at("migrate") < at("activate"));
        }
    }
    assert!(
        migration_logs().iter().all(Vec::is_empty),
        "a dry run ran it"
    );

    // First rollout: once, on h3 (ferry73), in its new release with the env.
    let run = p.ferry(&["--output", "json", "deploy"]);
    run.assert_code(0);
    let first = release_of(&run);
    let home = r.home("ferry73");
    assert_eq!(
        migration_logs(),
        vec![
            vec![],
            vec![],
            vec![format!(
                "h3 {first} {home}/.local/share/ferry/svc/releases/{first} 1"
            )],
            vec![]
        ]
    );
    let m = migrate_events(&run);
    assert_eq!(m.len(), 1, "{run}");
    assert_eq!(
        (&m[0]["host"], &m[0]["result"]),
        (&"h3".into(), &"ran".into())
    );
    // Before any host switched: the migration's end comes before every activation.
    let events = run.json();
    let pos = |f: &dyn Fn(&serde_json::Value) -> bool| events.iter().position(f);
    let migrated = pos(&|e| e["type"] == "migrate").unwrap();
    let first_activate = pos(&|e| e["type"] == "step" && e["step"] == "activate").unwrap();
    assert!(migrated < first_activate, "{run}");
    assert!(
        currents().iter().all(|c| c.ends_with(content(&first))),
        "{:?}",
        currents()
    );

    // Second release; h2 fails its health check: rolled back there, the migration ran once.
    r.ssh("ferry72", "touch ~/break");
    let p = project("2", MIGRATE);
    let run = p.ferry(&["--output", "json", "deploy"]);
    run.assert_code(4);
    let second = run.events("migrate")[0]["release"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(migration_logs()[2].len(), 2, "{run}");
    assert!(currents()[1].ends_with(content(&first)), "{run}");

    // --retry-failed deploys h2 (and what was not reached), and says the migration is skipped.
    r.ssh("ferry72", "rm ~/break");
    let retry = p.ferry(&["deploy", "--retry-failed"]);
    retry.assert_code(0);
    assert!(
        retry.stdout.contains(&format!(
            "migration of svc for release {} skipped: it already ran for release {second} (same content) on h3",
            currents()[1].trim_start_matches("releases/")
        )) && currents()[1].ends_with(content(&second)),
        "{retry}"
    );
    assert_eq!(migration_logs()[2].len(), 2, "rerun by --retry-failed");
    assert!(migration_logs()[1].is_empty());

    // A redeploy of the same content (forced) finds h3's own record, without the local state.
    std::fs::remove_dir_all(p.path(".ferry")).unwrap();
    let again = p.ferry(&["--output", "json", "deploy", "--force"]);
    again.assert_code(0);
    let m = migrate_events(&again);
    assert_eq!(m[0]["result"], "skipped", "{again}");
    assert!(
        m[0]["reason"].as_str().unwrap().contains(&second),
        "{again}"
    );
    assert_eq!(migration_logs()[2].len(), 2, "rerun by a redeploy");

    // A failing migration: nothing switched on any host, exit 1 as a failed before_switch.
    let before = (currents(), pids());
    let p = project(
        "3",
        "migrate = \"echo no database >&2; exit 7\"\nmigrate_on = \"h3\"",
    );
    let run = p.ferry(&["deploy"]);
    run.assert_code(1);
    assert!(run.stdout.contains("h3 migrate| no database"), "{run}");
    assert!(run.stdout.contains("exit status 7"), "{run}");
    assert!(run.stdout.contains("nothing switched on any host"), "{run}");
    assert_eq!((currents(), pids()), before, "a host switched:\n{run}");

    // Rolling back past a release that ran a migration says it is not undone.
    let was = currents()[2].trim_start_matches("releases/").to_string();
    let back = p.ferry(&["rollback", "svc", "-H", "h3"]);
    back.assert_code(0);
    assert!(
        back.stderr
            .contains(&format!("the migration of release {was} is not undone")),
        "{back}"
    );
    assert_ne!(currents()[2], format!("releases/{was}"));
}

/// `after`: db before api (not the file's order), and a failing db stops api.
#[test]
fn services_deploy_in_the_order_of_after_and_a_failed_one_stops_those_after_it() {
    let user = "ferry80";
    let r = remote();
    r.reset(user);
    r.ssh(user, "rm -f ~/order.log");
    let config = |version: &str, db_hook: &str| {
        let p = Project::new();
        p.write("units/api.service", "[Service]\nExecStart=/bin/sleep 600\n");
        p.write("units/db.service", "[Service]\nExecStart=/bin/sleep 600\n");
        p.write("payload.txt", format!("{version}\n"));
        let service = |name: &str, extra: &str, hook: &str| {
            format!(
                "[services.{name}]\n{extra}units = [\"units/{name}.service\"]\nsettle_time = \"0.2s\"\n\n\
                 [[services.{name}.files]]\nsource = \"payload.txt\"\ndest = \"payload.txt\"\n\n\
                 [services.{name}.hooks]\nbefore_switch = \"{hook}\"\n\n"
            )
        };
        p.config(&format!(
            "{}{}{}",
            host_table("web", user),
            service(
                "api",
                "after = [\"db\"]\n",
                "echo api >> \\\"$HOME/order.log\\\""
            ),
            service("db", "", db_hook)
        ));
        p
    };
    let db_ok = "echo db >> \\\"$HOME/order.log\\\"";
    let run = config("1", db_ok).ferry(&["--output", "json", "deploy"]);
    run.assert_code(0);
    assert_eq!(r.ssh(user, "cat ~/order.log"), "db\napi\n");
    let rollouts: Vec<_> = run
        .events("rollout")
        .iter()
        .map(|e| e["service"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(rollouts, ["db", "api"], "{run}");
    let api_before = r.ssh(user, "readlink ~/.local/share/ferry/api/current");

    // db fails: api is not deployed, said with the reason, in one summary.
    let run = config("2", "exit 1").ferry(&["deploy"]);
    run.assert_code(1);
    assert_eq!(r.ssh(user, "cat ~/order.log"), "db\napi\n");
    assert_eq!(
        r.ssh(user, "readlink ~/.local/share/ferry/api/current"),
        api_before
    );
    assert!(
        run.stderr
            .contains("api: not deployed: it comes after db, which did not deploy everywhere"),
        "{run}"
    );
    let json = config("2", "exit 1").ferry(&["--output", "json", "deploy"]);
    json.assert_code(1);
    let api: Vec<_> = json
        .events("result")
        .into_iter()
        .filter(|e| e["service"] == "api")
        .collect();
    assert_eq!(api.len(), 1, "{json}");
    assert_eq!(api[0]["result"], "not-reached");
    assert!(
        api[0]["reason"]
            .as_str()
            .unwrap()
            .contains("comes after db"),
        "{json}"
    );
    assert_eq!(json.events("summary").len(), 1);
}
