//! Plans of `deploy --no-switch`: staging stops before anything live changes (blue/green:
//! after the idle colour is checked), arms no self-revert, and a staged release is never pruned.

use super::tests::{deployed, local, names, origin, service};
use super::*;
use crate::systemd::switch::Switch;

const ID: &str = "20261124T120000Z-bbbbbbbb";

fn staging() -> Options {
    Options {
        no_switch: true,
        ..Options::default()
    }
}

#[test]
fn staging_stops_after_the_seal_and_arms_no_self_revert() {
    let remote = deployed();
    let p = make(&service(), &local(), &remote, ID, &origin(), staging());
    assert_eq!(
        names(&p),
        ["lock", "stage", "reuse", "upload", "seal", "staged"]
    );
    assert!(p.steps.iter().all(|s| !matches!(
        s,
        Step::Seal {
            arm_revert: Some(_),
            ..
        }
    )));
    // A before_switch hook still runs (before anything live changes); no arm-revert step.
    let mut hooked = service();
    hooked.hooks.before_switch = Some("true".into());
    let p = make(&hooked, &local(), &remote, ID, &origin(), staging());
    assert_eq!(
        names(&p),
        [
            "lock",
            "stage",
            "reuse",
            "upload",
            "seal",
            "before-switch",
            "staged"
        ]
    );
}

#[test]
fn blue_green_staging_starts_and_checks_the_idle_colour_then_stops() {
    let mut s = service();
    s.switch = Some(Switch {
        listen: "127.0.0.1:8080".into(),
        ports: [8081, 8082],
        drain: std::time::Duration::from_secs(1),
    });
    s.health = Some(crate::config::Health {
        http: None,
        unix_http: None,
        command: Some("true".into()),
        timeout: std::time::Duration::from_secs(5),
        interval: std::time::Duration::from_secs(1),
    });
    let p = make(&s, &local(), &deployed(), ID, &origin(), staging());
    let n = names(&p);
    assert_eq!(n.last(), Some(&"staged"));
    assert!(n.contains(&"activate") && n.contains(&"health"), "{n:?}");
    assert!(
        !n.contains(&"switch") && !n.contains(&"confirm") && !n.contains(&"arm-revert"),
        "{n:?}"
    );
    // Cut off after its activation: the front did not move.
    let at = n.iter().position(|s| *s == "health").unwrap();
    let said = p.state_if_lost(Some(at), std::time::Duration::from_secs(60));
    assert!(said.contains("the front did not move"), "{said}");
}

#[test]
fn a_staged_release_is_not_pruned_and_the_probe_reads_the_link() {
    let mut remote = deployed();
    let staged = "20261124T115000Z-ssssssss";
    remote
        .releases
        .insert(0, "20261124T090000Z-99999999".into());
    remote.releases.insert(0, staged.into());
    remote.releases.sort();
    remote.staged = Some(staged.into());
    let mut s = service();
    s.keep_releases = 1;
    let p = make(&s, &local(), &remote, ID, &origin(), Options::default());
    let prune = p.steps.iter().find_map(|st| match st {
        Step::Confirm { prune, .. } => Some(prune.clone()),
        _ => None,
    });
    let prune = prune.unwrap();
    assert!(
        prune.contains(&"20261124T090000Z-99999999".to_string()),
        "{prune:?}"
    );
    assert!(!prune.contains(&staged.to_string()), "{prune:?}");

    let st = parse_remote_state(&format!(
        "current=releases/{ID}\nstaged=releases/{staged}\nrelease={staged}\n"
    ));
    assert_eq!(st.staged.as_deref(), Some(staged));
    assert_eq!(parse_remote_state("staged=\n").staged, None);
    let script = remote_state_script(
        &crate::release::Paths::new("app"),
        &[],
        &[],
        ProbeLock::Ignore,
    );
    assert!(script.contains("readlink \"$S/staged\""), "{script}");
}
