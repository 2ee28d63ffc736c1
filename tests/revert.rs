//! The self-revert's deadline: no daemon-reload in the user's manager moves it.
//! Remote users: ferry81.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use crate::support::{Project, host_table, remote};

fn current(user: &str) -> String {
    remote()
        .ssh(user, "readlink ~/.local/share/ferry/app/current")
        .trim()
        .to_string()
}

/// The last line of service `app`'s history on the host.
pub(crate) fn last_history(user: &str) -> serde_json::Value {
    let h = remote().ssh(user, "tail -n 1 ~/.local/share/ferry/app/history.jsonl");
    serde_json::from_str(h.trim()).unwrap_or_else(|e| panic!("{e}: {h}"))
}

fn at(s: &str) -> SystemTime {
    humantime::parse_rfc3339(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

/// A deploy killed after its switch, while the user's manager is reloaded every 2 s: the host
/// reverts by itself at the deadline it armed (read from the history record the host wrote
/// when the revert really ran), not postponed by the reloads.
#[test]
fn the_self_revert_fires_at_its_deadline_while_the_manager_reloads() {
    let user = "ferry81";
    let r = remote();
    r.reset(user);
    let p = Project::new();
    p.write(
        "app.service",
        "[Service]\nExecStart=/bin/sh -c 'exec sleep 600'\n",
    );
    let config = |msg: &str| {
        p.write("msg", format!("{msg}\n"));
        format!(
            "{}[services.app]\nunits = [\"app.service\"]\nstart_timeout = \"3s\"\nsettle_time = \"0.3s\"\n\
             confirm_timeout = \"8s\"\n[[services.app.files]]\nsource = \"msg\"\ndest = \"msg\"\n",
            host_table("web1", user)
        )
    };
    p.config(&config("one"));
    p.ferry(&["deploy"]).assert_code(0);
    let good = current(user);

    p.config(&config("two"));
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let reloader = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                let _ = remote().ssh_raw(user, "systemctl --user daemon-reload");
                n += 1;
                std::thread::sleep(Duration::from_secs(2));
            }
            n
        })
    };
    let run = p.ferry_env(&["deploy"], &[("FERRY_FAULT_AT", "verify")]);
    assert!(
        run.stderr.contains("FERRY_FAULT_AT=verify: aborting"),
        "{run}"
    );
    assert_ne!(current(user), good, "not switched?");
    let mut reverted = false;
    for _ in 0..120 {
        if current(user) == good {
            reverted = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    stop.store(true, Ordering::SeqCst);
    let reloads = reloader.join().unwrap();
    assert!(reverted, "the host did not revert by itself");
    let rec = last_history(user);
    assert_eq!(rec["action"], "revert", "{rec}");
    assert_eq!(rec["outcome"], "reverted", "{rec}");
    let reason = rec["reason"].as_str().unwrap();
    let deadline = reason
        .split("deadline ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .unwrap_or_else(|| panic!("{reason}"));
    let fired = at(rec["time"].as_str().unwrap());
    let late = fired.duration_since(at(deadline)).unwrap_or(Duration::ZERO);
    println!("reverted {late:?} after its deadline, {reloads} reloads");
    assert!(late <= Duration::from_secs(2), "fired {late:?} late: {rec}");
    assert!(
        reloads >= 3,
        "the manager was reloaded only {reloads} times"
    );
}
