//! The user's login shell and its startup files do not change what ferry's commands do: every
//! remote command runs under /bin/sh, and what a startup file prints is not read as ferry's output.
//! Users: ferry88 (`set -e` in ~/.bashrc), ferry89 (~/.bashrc prints), ferry90 (zsh),
//! ferry91 (fish), ferry92 (`exec fish` in ~/.bashrc),
//! ferry93 (~/.bashrc prints on stdout).

use crate::support::{Project, host_table, remote};

fn app(p: &Project, user: &str, msg: &str) {
    p.write(
        "app.service",
        "[Service]\nExecStart=/bin/sh -c 'exec sleep 600'\n",
    );
    p.write("msg", msg);
    p.config(&format!(
        "{}[services.app]\nunits = [\"app.service\"]\nstart_timeout = \"3s\"\nsettle_time = \"0.3s\"\n\
         [[services.app.files]]\nsource = \"msg\"\ndest = \"msg\"\n",
        host_table("web1", user)
    ));
}

/// Prepend `lines` to the user's ~/.bashrc (as root, so the user's own shell is not needed).
fn bashrc(user: &str, lines: &str) {
    let out = remote().root(&format!(
        "f=/home/{user}/.bashrc; {{ printf '%s\\n' '{lines}'; cat /etc/skel/.bashrc; }} > $f && chown {user}: $f"
    ));
    assert!(out.status.success(), "{out:?}");
}

fn login_shell(user: &str, shell: &str) {
    let out = remote().root(&format!("usermod -s {shell} {user}"));
    assert!(out.status.success(), "{out:?}");
}

/// The host's state, read as root (never through the user's login shell).
fn root(cmd: &str) -> String {
    String::from_utf8_lossy(&remote().root(cmd).stdout).into_owned()
}

fn current(user: &str) -> String {
    root(&format!(
        "readlink /home/{user}/.local/share/ferry/app/current"
    ))
    .trim()
    .to_string()
}

fn history(user: &str) -> Vec<String> {
    root(&format!(
        "cat /home/{user}/.local/share/ferry/app/history.jsonl 2>/dev/null; true"
    ))
    .lines()
    .map(String::from)
    .collect()
}

/// Two deploys in a row: both exit 0, `current` is the second release, history has both.
fn deploys_twice(user: &str) {
    let p = Project::new();
    app(&p, user, "one\n");
    let first = p.ferry(&["deploy"]);
    first.assert_code(0);
    app(&p, user, "two\n");
    let second = p.ferry(&["deploy"]);
    second.assert_code(0);
    let cur = current(user);
    assert!(cur.contains("releases/"), "{cur}");
    assert_eq!(
        root(&format!(
            "cat /home/{user}/.local/share/ferry/app/current/msg"
        )),
        "two\n"
    );
    let h = history(user);
    assert_eq!(
        h.iter()
            .filter(|l| l.contains("\"deploy\"") && l.contains("ok"))
            .count(),
        2,
        "{h:?}"
    );
    let status = p.ferry(&["status"]);
    status.assert_code(0);
}

#[test]
fn set_e_in_bashrc_does_not_stop_ferrys_commands() {
    let user = "ferry88";
    remote().reset(user);
    bashrc(user, "set -e");
    deploys_twice(user);
}

#[test]
fn a_bashrc_that_prints_is_not_read_as_output() {
    let user = "ferry89";
    remote().reset(user);
    // On stderr: it does not disturb SFTP; ferry ignores it (and says so at -v).
    bashrc(user, "echo noise from bashrc >&2");
    deploys_twice(user);
    let v = Project::new();
    app(&v, user, "two\n");
    let run = v.ferry(&["-v", "status"]);
    run.assert_code(0);
    assert!(
        format!("{run}").contains("the login shell of `ferry89` printed"),
        "{run}"
    );
}

/// On stdout, a startup file breaks the SFTP server that sshd starts through the login shell
/// (OpenSSH's sftp too): the error says so and names the file to fix.
#[test]
fn a_bashrc_that_prints_on_stdout_is_named_when_sftp_breaks() {
    let user = "ferry93";
    remote().reset(user);
    bashrc(user, "echo hello from bashrc");
    let p = Project::new();
    app(&p, user, "one\n");
    let run = p.ferry(&["deploy"]);
    run.assert_code(1);
    let text = format!("{run}");
    assert!(
        text.contains("the login shell of `ferry93` prints 18 bytes")
            && text.contains("~/.bashrc")
            && !text.contains("sender dropped"),
        "{run}"
    );
    // Nothing was switched: the host has no current release.
    assert_eq!(current(user), "");
}

#[test]
fn zsh_login_shell_releases_and_rollback() {
    let user = "ferry90";
    remote().reset(user);
    login_shell(user, "/usr/bin/zsh");
    deploys_twice(user);
    let p = Project::new();
    app(&p, user, "two\n");
    let releases = p.ferry(&["releases"]);
    releases.assert_code(0);
    let before = current(user);
    p.ferry(&["rollback", "app"]).assert_code(0);
    let after = current(user);
    assert_ne!(before, after);
    assert_eq!(
        root(&format!(
            "cat /home/{user}/.local/share/ferry/app/current/msg"
        )),
        "one\n"
    );
}

#[test]
fn fish_login_shell_exec_and_releases() {
    let user = "ferry91";
    remote().reset(user);
    login_shell(user, "/usr/bin/fish");
    let p = Project::new();
    app(&p, user, "one\n");
    p.ferry(&["deploy"]).assert_code(0);
    let release = current(user);
    let id = release.rsplit('/').next().unwrap().to_string();
    let releases = p.ferry(&["releases"]);
    releases.assert_code(0);
    assert!(format!("{releases}").contains(&id), "{releases}");
    let run = p.ferry(&["exec", "app", "--", "false"]);
    assert_ne!(run.code, 0, "{run}");
    p.ferry(&["exec", "app", "--", "true"]).assert_code(0);
}

#[test]
fn exec_fish_in_bashrc_is_named_not_hung() {
    let user = "ferry92";
    remote().reset(user);
    bashrc(user, "exec fish");
    let p = Project::new();
    app(&p, user, "one\n");
    let run = p.ferry(&["deploy"]);
    assert_ne!(run.code, 0, "{run}");
    assert!(
        format!("{run}").contains("did not run ferry's command"),
        "{run}"
    );
}
