//! Tests of the session's pure parts: parsing what the host's commands print.

use super::*;

/// The activation's output, as its command prints it (`enable` and the restart may print
/// lines of their own between the reads before and the states after).
#[test]
fn the_activation_output_gives_the_clock_invocations_and_states() {
    let out = format!(
        "since=@1764000000.123456789\nId=app.service\nInvocationID=aaa\n\n{BEFORE_END}\n\
         Created symlink /home/u/.config/systemd/user/sockets.target.wants/app.socket.\nId=not-a-read\nactivated\n\
         {STATES}\nId=app.service\nActiveState=active\n"
    );
    let b = ServiceSession::parse_activation(&out);
    assert_eq!(b.since.as_deref(), Some("@1764000000.123456789"));
    assert_eq!(
        b.invocations,
        BTreeMap::from([("app.service".to_string(), "aaa".to_string())])
    );
    let states = b.states.unwrap();
    assert_eq!(states, "Id=app.service\nActiveState=active\n");
    assert_eq!(systemd::parse_show(&states)[0].active_state, "active");
    // A failed activation prints no states: the verification asks the host itself.
    let failed = format!("since=@1\n{BEFORE_END}\n");
    assert_eq!(ServiceSession::parse_activation(&failed).states, None);
}

#[test]
fn the_states_are_read_once_the_units_jobs_are_done() {
    let c = ServiceSession::states_command(&["a b.service".to_string()]);
    assert!(c.contains("list-jobs --no-legend -- 'a b.service'"), "{c}");
    assert!(c.contains(&format!("echo {STATES}\n")), "{c}");
    assert_eq!(ServiceSession::states_command(&[]), "");
}
