//! `[inventory] command`: a deploy to hosts that only the command lists, and a failing command
//! that stops ferry before any connection.

use crate::support::{Project, demo_bin, remote};

/// The command's JSON for one host of the test remote as `user`, in group `web`.
fn inventory_json(user: &str) -> String {
    let r = remote();
    format!(
        r#"{{"hosts": [{{"name": "inv1", "address": "{}", "port": {}, "user": "{user}", "groups": ["web"]}}]}}"#,
        r.host, r.port
    )
}

fn config(p: &Project, command: &str, listen: u16) -> String {
    std::fs::copy(demo_bin(), p.path("ferry-demo")).unwrap();
    let r = remote();
    format!(
        "[defaults]\nidentity = \"{}\"\nknown_hosts = \"{}\"\nconnect_timeout = \"30s\"\n\n\
         [inventory]\ncommand = \"{command}\"\n\n\
         [services.web]\nhosts = [\"web\"]\nstart_timeout = \"20s\"\nsettle_time = \"0.5s\"\n\n\
         [services.web.run]\ncommand = \"bin/ferry-demo --listen 127.0.0.1:{listen} --message message.txt\"\n\n\
         [[services.web.files]]\nsource = \"ferry-demo\"\ndest = \"bin/ferry-demo\"\nmode = \"0755\"\n\n\
         [[services.web.files]]\nsource = \"message.txt\"\ndest = \"message.txt\"\n",
        r.key.display(),
        r.known_hosts.display()
    )
}

/// deploy.toml has no [hosts]: the service's group comes from the command, which runs once,
/// in the config's directory.
#[test]
fn deploys_to_a_host_only_the_inventory_names() {
    let user = "ferry101";
    let r = remote();
    r.reset(user);
    let p = Project::new();
    p.write("hosts.json", inventory_json(user));
    p.config(&config(&p, "echo ran >> runs.txt; cat hosts.json", 19740));
    p.write("message.txt", "from the inventory\n");
    let run = p.ferry(&["deploy"]);
    run.assert_code(0);
    assert!(run.stderr.contains("inv1"), "{run}");
    let body = r.poll("the service answers", 100, || r.http_get(19740, "/"));
    assert_eq!(body, "from the inventory\n");
    assert_eq!(r.unit_prop(user, "web.service", "ActiveState"), "active");
    assert_eq!(
        std::fs::read_to_string(p.path("runs.txt")).unwrap(),
        "ran\n",
        "the command ran once in the run"
    );
}

/// A failing command: its exit status and stderr, exit 2, and the host untouched.
#[test]
fn a_failing_inventory_command_stops_before_any_connection() {
    let user = "ferry102";
    let r = remote();
    r.reset(user);
    let p = Project::new();
    p.config(&config(&p, "echo 'no state file' >&2; exit 3", 19741));
    p.write("message.txt", "never\n");
    let run = p.ferry(&["deploy"]);
    run.assert_code(2);
    assert!(run.stderr.contains("inventory.command"), "{run}");
    assert!(run.stderr.contains("exit status 3"), "{run}");
    assert!(run.stderr.contains("its stderr: no state file"), "{run}");
    assert_eq!(
        r.ssh(user, "ls -A ~/.local/share/ferry 2>/dev/null | wc -l")
            .trim(),
        "0",
        "nothing on the host"
    );
}
