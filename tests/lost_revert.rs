//! What a cut-off session leaves is finished or refused at the next contact: a self-revert
//! timer lost with the user's manager, a rollback killed during its activation.
//! Remote users: ferry125, ferry126.

use crate::revert::last_history;
use crate::support::{Project, host_table, remote};

/// The release `current` points to (its id).
fn current(user: &str) -> String {
    remote()
        .ssh(user, "readlink ~/.local/share/ferry/app/current")
        .trim()
        .trim_start_matches("releases/")
        .to_string()
}

/// A service whose file `msg` says `msg`, checked for `confirm_timeout`.
fn config(p: &Project, user: &str, msg: &str) {
    p.write(
        "app.service",
        "[Service]\nExecStart=/bin/sh -c 'exec sleep 600'\n",
    );
    p.write("msg", format!("{msg}\n"));
    p.config(&format!(
        "{}[services.app]\nunits = [\"app.service\"]\nstart_timeout = \"3s\"\nsettle_time = \"0.3s\"\n\
         confirm_timeout = \"10m\"\n[[services.app.files]]\nsource = \"msg\"\ndest = \"msg\"\n",
        host_table("web1", user)
    ));
}

/// Kill a deploy after its switch, then restart the user's manager (as a reboot would): the
/// transient self-revert timer is gone, so the host would keep the unverified release for
/// good. `ferry status` says so, the next deploy refuses until a rollback, and
/// `rollback --to` the release keeps it and records it as confirmed.
#[test]
fn a_self_revert_lost_with_the_user_manager_is_refused_until_rolled_back() {
    let user = "ferry125";
    let r = remote();
    r.reset(user);
    let p = Project::new();
    config(&p, user, "one");
    p.ferry(&["deploy"]).assert_code(0);
    let good = current(user);

    let unconfirmed = lose_a_revert(&p, user, "two");
    assert_ne!(unconfirmed, good);
    for args in [&["status"][..], &["releases", "app"][..]] {
        let run = p.ferry(args);
        assert!(run.stderr.contains("self-revert timer is gone"), "{run}");
    }

    config(&p, user, "three");
    let refused = p.ferry(&["deploy"]);
    refused.assert_code(1);
    assert!(
        refused.stderr.contains("self-revert timer is gone")
            && refused.stderr.contains("ferry rollback app"),
        "{refused}"
    );
    assert_eq!(
        current(user),
        unconfirmed,
        "a refused deploy changed the host"
    );

    p.ferry(&["rollback", "app"]).assert_code(0);
    assert_eq!(current(user), good);
    p.ferry(&["deploy"]).assert_code(0);
    let three = current(user);
    assert_ne!(three, good);

    // Lost again; this time the user keeps the release.
    let kept = lose_a_revert(&p, user, "four");
    let keep = p.ferry(&["rollback", "app", "--to", &kept]);
    keep.assert_code(0);
    assert_eq!(current(user), kept);
    let rec = last_history(user);
    assert_eq!(
        (
            rec["action"].as_str(),
            rec["release"].as_str(),
            rec["outcome"].as_str()
        ),
        (Some("rollback"), Some(kept.as_str()), Some("ok")),
        "{rec}"
    );
    let status = p.ferry(&["status"]);
    assert!(!status.stderr.contains("self-revert"), "{status}");
    config(&p, user, "five");
    p.ferry(&["deploy"]).assert_code(0);
    assert_ne!(current(user), kept);
}

/// Deploy `msg`, killed after the switch (its self-revert armed), then restart the user's
/// manager and wait until it runs again without the timer. Returns the unconfirmed release.
fn lose_a_revert(p: &Project, user: &str, msg: &str) -> String {
    let r = remote();
    config(p, user, msg);
    let before = current(user);
    let run = p.ferry_env(&["deploy"], &[("FERRY_FAULT_AT", "verify")]);
    assert!(
        run.stderr.contains("FERRY_FAULT_AT=verify: aborting"),
        "{run}"
    );
    let unconfirmed = current(user);
    assert_ne!(unconfirmed, before, "not switched?");
    let timer = "systemctl --user is-active ferry-revert-app.timer";
    assert_eq!(r.ssh(user, timer).trim(), "active", "no self-revert armed");
    // While it is armed, status and releases say when it fires.
    for args in [&["status"][..], &["releases", "app"][..]] {
        let run = p.ferry(args);
        assert!(
            run.stderr
                .contains(&format!("the deploy of {unconfirmed} is not confirmed"))
                && run
                    .stderr
                    .contains("reverts it to the previous release by itself at "),
            "{run}"
        );
    }
    let uid = r.ssh(user, "id -u").trim().to_string();
    let out = r.root(&format!("systemctl restart user@{uid}.service"));
    assert!(out.status.success(), "{out:?}");
    r.poll("the user manager back, without the timer", 300, || {
        let o = r.ssh_raw(
            user,
            &format!("systemctl --user show -p Version --value && {timer}"),
        );
        let text = String::from_utf8_lossy(&o.stdout).to_string();
        (text.lines().count() == 2 && text.lines().nth(1) == Some("inactive")).then_some(())
    });
    assert_eq!(current(user), unconfirmed);
    unconfirmed
}

/// `ferry rollback` killed just after its activation (the host switched, nothing verified
/// or recorded yet): the next contact records the rollback as `interrupted`, with where
/// `current` was, and says so; the release it went back to stays a good rollback target.
#[test]
fn a_rollback_killed_after_its_activation_is_recorded_by_the_next_contact() {
    let user = "ferry126";
    let r = remote();
    r.reset(user);
    let p = Project::new();
    config(&p, user, "one");
    p.ferry(&["deploy"]).assert_code(0);
    let one = current(user);
    config(&p, user, "two");
    p.ferry(&["deploy"]).assert_code(0);
    let two = current(user);

    let run = p.ferry_env(&["rollback", "app"], &[("FERRY_FAULT_AT", "restored")]);
    assert!(
        run.stderr.contains("FERRY_FAULT_AT=restored: aborting"),
        "{run}"
    );
    assert_eq!(current(user), one, "the rollback did not switch");
    assert_eq!(last_history(user)["release"].as_str(), Some(two.as_str()));

    // A read-only look shows it (and changes nothing)...
    let releases = p.ferry(&["--output", "json", "releases", "app"]);
    releases.assert_code(0);
    let shown = releases.events("history");
    let last = shown.last().unwrap_or_else(|| panic!("{releases}"));
    assert_eq!(last["outcome"].as_str(), Some("interrupted"), "{releases}");
    assert_eq!(last_history(user)["release"].as_str(), Some(two.as_str()));

    // ...the next locked contact records it and says so.
    config(&p, user, "three");
    let next = p.ferry(&["deploy"]);
    next.assert_code(0);
    assert!(
        next.stderr
            .contains(&format!("an earlier `ferry rollback` to {one} was cut off")),
        "{next}"
    );
    let history = r.ssh(user, "cat ~/.local/share/ferry/app/history.jsonl");
    let recs: Vec<serde_json::Value> = history
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let cut = recs
        .iter()
        .find(|r| r["outcome"] == "interrupted")
        .unwrap_or_else(|| panic!("no interrupted record: {history}"));
    assert_eq!(cut["action"], "rollback");
    assert_eq!(cut["release"].as_str(), Some(one.as_str()));
    assert_eq!(cut["previous"].as_str(), Some(two.as_str()));
    assert!(
        cut["reason"]
            .as_str()
            .unwrap()
            .contains(&format!("pointed to releases/{one}")),
        "{cut}"
    );
    assert_eq!(
        recs.iter()
            .filter(|r| r["outcome"] == "interrupted")
            .count(),
        1,
        "{history}"
    );
    assert!(
        !r.ssh(user, "ls -a ~/.local/share/ferry/app")
            .contains("rollback.pending"),
        "the pending record was left"
    );
}
