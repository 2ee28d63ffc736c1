//! Tests of the login checks' judges, without a host.

use super::*;

fn ran(shell: &str, stdout: &str, stderr: &str) -> LoginShell {
    LoginShell::Ran {
        shell: shell.into(),
        stdout: stdout.as_bytes().to_vec(),
        stderr: stderr.as_bytes().to_vec(),
    }
}

#[test]
fn login_shell_verdicts() {
    let c = judge_login_shell("h", "u", &ran("/bin/bash", "", ""));
    assert_eq!(c.status, Status::Pass);
    assert_eq!(
        c.detail,
        "`/bin/bash` runs ferry's commands; its startup files print nothing"
    );
    let c = judge_login_shell("h", "u", &ran("/bin/bash", "", "noise\n"));
    assert_eq!(c.status, Status::Pass);
    assert!(c.detail.contains("6 bytes on stderr: ignored"), "{c:?}");
    let c = judge_login_shell("h", "u", &ran("/usr/bin/zsh", "hello\n", ""));
    assert_eq!(c.status, Status::Warn);
    assert!(c.detail.contains("6 bytes on stdout"), "{c:?}");
    assert!(c.hint.unwrap().contains("~/.zshenv"));
    let c = judge_login_shell("h", "u", &LoginShell::NotRun("it exited".into()));
    assert_eq!(c.status, Status::Fail);
    assert_eq!(c.detail, "it exited");
    assert!(c.hint.unwrap().contains("ssh u@HOST true"));
    assert_eq!(startup_file("/bin/bash"), "~/.bashrc");
    assert_eq!(startup_file("/usr/bin/fish"), "~/.config/fish/config.fish");
}

#[test]
fn sftp_verdicts_and_their_fix() {
    assert_eq!(
        judge_sftp("h", "u", &SftpAnswer::Version(3)).status,
        Status::Pass
    );
    let c = judge_sftp("h", "u", &SftpAnswer::NoSubsystem);
    assert_eq!(c.status, Status::Fail);
    assert!(c.detail.contains("no `Subsystem sftp` line"), "{c:?}");
    assert_eq!(c.fix, Some(RootFix::SftpSubsystem));
    let c = judge_sftp(
        "h",
        "u",
        &SftpAnswer::Ended {
            status: Some(127),
            stderr: "sh: 1: /nope: not found".into(),
        },
    );
    assert!(
        c.detail
            .contains("(exit status 127: sh: 1: /nope: not found)"),
        "{c:?}"
    );
    let c = judge_sftp("h", "u", &SftpAnswer::Garbage(b"hi\nthere!\n".to_vec()));
    assert_eq!(c.status, Status::Fail);
    assert_eq!(c.fix, None, "the user's startup file, not root's to fix");
    let cmds = sshd_fix(RootFix::SftpSubsystem);
    assert!(cmds[1].contains("Subsystem sftp internal-sftp"), "{cmds:?}");
    assert!(cmds[2].starts_with("sshd -t"));
}

#[test]
fn max_sessions_verdicts() {
    let s = |granted, refused| Sessions { granted, refused };
    assert_eq!(judge_max_sessions("h", s(10, false)).status, Status::Pass);
    assert_eq!(judge_max_sessions("h", s(4, true)).status, Status::Pass);
    let c = judge_max_sessions("h", s(2, true));
    assert_eq!(c.status, Status::Warn);
    assert!(c.detail.contains("MaxSessions 2"), "{c:?}");
    assert_eq!(c.fix, Some(RootFix::MaxSessions));
    let c = judge_max_sessions("h", s(1, true));
    assert_eq!(c.status, Status::Fail);
    assert!(c.hint.unwrap().contains("MaxSessions 10"));
    assert!(sshd_fix(RootFix::MaxSessions)[1].contains("MaxSessions 10"));
}

#[test]
fn skipped_checks_are_those_of_the_script() {
    let ids: Vec<CheckId> = skipped("h").iter().map(|c| c.check).collect();
    assert_eq!(ids, CheckId::ALL[6..].to_vec());
}
