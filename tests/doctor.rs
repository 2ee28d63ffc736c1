//! `ferry doctor`'s systemd checks against the real test remote: each verdict is compared with
//! what the host really has, read over plain ssh. Users: ferry1 (read-only checks) and the
//! system user (uid < 1000).

use serde_json::Value;

use crate::support::{Project, host_table, remote};

fn check<'a>(events: &'a [Value], name: &str) -> &'a Value {
    events
        .iter()
        .find(|e| e["type"] == "check" && e["check"] == name)
        .unwrap_or_else(|| panic!("no `{name}` check in {events:#?}"))
}

/// A ready host: the new checks read the real systemd version, bus, journal storage, cgroup
/// controllers and port sysctl; a warning does not change the exit code.
#[test]
fn doctor_reads_the_host_s_systemd_setup() {
    let r = remote();
    let p = Project::new();
    p.config(&host_table("web1", "ferry1"));
    let run = p.ferry(&["--output", "json", "doctor"]);
    let events = run.json();

    let version = r.ssh("ferry1", "systemctl --version | head -n 1");
    let major = version.split_whitespace().nth(1).unwrap();
    let c = check(&events, "systemd version");
    assert_eq!(c["status"], "pass", "{c:#}");
    assert_eq!(c["detail"], format!("systemd {major}"));

    let uid = r.ssh("ferry1", "id -u").trim().to_string();
    let c = check(&events, "user bus");
    assert_eq!(c["status"], "pass", "{c:#}");
    assert_eq!(
        c["detail"],
        format!("XDG_RUNTIME_DIR=/run/user/{uid}, /run/user/{uid}/bus")
    );

    // The remote's journald has a Storage=persistent drop-in and uid 1001 is a regular user.
    let c = check(&events, "journal storage");
    assert_eq!(c["status"], "pass", "{c:#}");
    assert_eq!(
        c["detail"],
        format!("Storage=persistent, /var/log/journal in use; uid {uid} gets its own journal")
    );

    let controllers = r.ssh(
        "ferry1",
        &format!(
            "cat /sys/fs/cgroup/user.slice/user-{uid}.slice/user@{uid}.service/cgroup.controllers"
        ),
    );
    let have: Vec<&str> = controllers.split_whitespace().collect();
    let c = check(&events, "cgroup delegation");
    if ["cpu", "memory", "pids"].iter().all(|n| have.contains(n)) {
        assert_eq!(c["status"], "pass", "{c:#}");
    } else {
        assert_eq!(c["status"], "warn", "{c:#}");
        assert!(
            c["detail"]
                .as_str()
                .unwrap()
                .contains("are accepted but not enforced"),
            "{c:#}"
        );
        assert!(
            c["hint"]
                .as_str()
                .unwrap()
                .contains("Delegate=cpu memory pids"),
            "{c:#}"
        );
    }

    let start = r.ssh(
        "ferry1",
        "cat /proc/sys/net/ipv4/ip_unprivileged_port_start",
    );
    let c = check(&events, "unprivileged ports");
    assert!(
        c["detail"]
            .as_str()
            .unwrap()
            .contains(&format!("ip_unprivileged_port_start={}", start.trim())),
        "{c:#}"
    );

    let summary = events.iter().find(|e| e["type"] == "summary").unwrap();
    let warned = events.iter().filter(|e| e["status"] == "warn").count();
    assert_eq!(summary["warnings"], warned, "{summary:#}");
    assert_eq!(summary["failed"], 0, "{events:#?}");
    assert_eq!(run.code, 0, "warnings do not fail doctor: {run}");
}

/// A system user: `journal storage` fails with the fix `ferry logs` prints when it shows
/// nothing for that user, word for word.
#[test]
fn doctor_and_logs_give_a_system_user_the_same_fix() {
    let r = remote();
    let p = Project::new();
    p.write("app.service", "[Service]\nExecStart=/bin/true\n");
    p.config(&format!(
        "{}[services.app]\nhosts = [\"box\"]\nunits = [\"app.service\"]\n",
        host_table("box", &r.system_user)
    ));
    let run = p.ferry(&["--output", "json", "doctor"]);
    let events = run.json();
    let storage = check(&events, "journal storage");
    assert_eq!(storage["status"], "fail", "{storage:#}");
    assert!(
        storage["detail"]
            .as_str()
            .unwrap()
            .ends_with("is below 1000: no per-user journal"),
        "{storage:#}"
    );
    let journal = check(&events, "journal");
    assert_eq!(journal["hint"], storage["hint"]);
    assert_eq!(run.code, 1);

    let logs = p.ferry(&["logs", "app"]);
    let hint = storage["hint"].as_str().unwrap();
    assert!(logs.stderr.contains(hint), "logs says:\n{logs}");
    assert!(
        logs.stderr.contains(journal["detail"].as_str().unwrap()),
        "logs says:\n{logs}"
    );
}
