use super::*;

#[test]
fn quoting_keeps_quotes_and_backslashes_outside_single_quotes() {
    assert_eq!(quote_any_shell("abc"), "'abc'");
    assert_eq!(quote_any_shell("it's"), "'it'\\''s'");
    assert_eq!(quote_any_shell("a\\b"), "'a'\\\\'b'");
    assert_eq!(quote_any_shell("'x'"), "\\''x'\\'");
    assert_eq!(quote_any_shell(""), "\"\"");
    assert!(!quote_any_shell("''").contains("''"));
}

/// Each shell that is installed here reads the quoted word back unchanged (the integration
/// tests check the same through real login shells on the remote).
#[test]
fn every_installed_shell_reads_the_word_back() {
    let word = "a'b\\c \"$HOME\" `x` $(y) *.partial\n\\\\'' !x %s ~ {a,b} ; & |";
    let mut tried = 0;
    for shell in [
        "/bin/sh",
        "/bin/bash",
        "/bin/dash",
        "/usr/bin/zsh",
        "/usr/bin/fish",
    ] {
        if !std::path::Path::new(shell).exists() {
            continue;
        }
        tried += 1;
        let out = std::process::Command::new(shell)
            .arg("-c")
            .arg(format!("printf '%s' {}", quote_any_shell(word)))
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), word, "{shell}");
    }
    assert!(tried >= 2, "no shells to try");
}

#[test]
fn the_marker_splits_startup_output_from_the_command() {
    let n = nonce();
    let mut f = MarkerFilter::new(&n);
    assert!(f.feed(b"hello from bashrc\n").is_empty());
    let half = n.len() / 2;
    assert!(f.feed(&n.as_bytes()[..half]).is_empty());
    let mut rest = n.as_bytes()[half..].to_vec();
    rest.extend_from_slice(b"\nout");
    assert_eq!(f.feed(&rest), b"out");
    assert!(f.seen());
    assert_eq!(f.before(), b"hello from bashrc\n");
    assert_eq!(f.feed(b"more"), b"more");
}

#[test]
fn the_marker_counts_only_at_a_line_start() {
    let mut f = MarkerFilter::new("m1");
    assert!(f.feed(b"xm1\n").is_empty());
    assert!(!f.seen());
    assert_eq!(f.feed(b"m1\nok"), b"ok");
}

#[test]
fn nonces_differ() {
    assert_ne!(nonce(), nonce());
}

#[test]
fn the_wrapped_command_runs_under_sh_with_the_marker() {
    let out = std::process::Command::new("/bin/bash")
        .arg("-c")
        .arg(wrap("echo \"it's $0\"; exit 3", "N1"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "N1\nit's /bin/sh\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "N1\n");
    assert_eq!(out.status.code(), Some(3));
}

/// Run `line` under bash (as sshd would through a login shell) with `stdin`.
fn run_line(line: &str, stdin: &[u8]) -> std::process::Output {
    use std::io::Write;
    let mut child = std::process::Command::new("/bin/bash")
        .arg("-c")
        .arg(line)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    // A reader that exits early closes the pipe: what it did not read is not an error here.
    let _ = input.write_all(stdin);
    drop(input);
    child.wait_with_output().unwrap()
}

#[test]
fn a_short_command_stays_on_the_command_line() {
    let (line, script) = bounded("echo hi", "N1");
    assert_eq!(line, wrap("echo hi", "N1"));
    assert!(script.is_none());
}

/// A command far longer than the bound: the line stays short, the script comes on stdin, and
/// the command's own input that follows it reaches the command whole.
#[test]
fn a_long_command_goes_over_stdin_ahead_of_its_input() {
    let words: Vec<String> = (0..20_000).map(|i| format!("'f {i}'")).collect();
    let command = format!(
        "set -- {}\necho \"args=$#\"\nprintf '%s\\n' \"$1\"\nshift 19999\nprintf '%s\\n' \"$1\"\necho \"it's $0\"\ncat",
        words.join(" ")
    );
    assert!(command.len() > 5 * MAX_INLINE);
    let (line, script) = bounded(&command, "N2");
    assert!(line.len() < 1024, "{} bytes", line.len());
    let mut stdin = script.unwrap();
    stdin.extend_from_slice(b"the command's own input\nsecond line\n");
    let out = run_line(&line, &stdin);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "N2\nargs=20000\nf 0\nf 19999\nit's /bin/sh\nthe command's own input\nsecond line\n"
    );
    assert_eq!(String::from_utf8_lossy(&out.stderr), "N2\n");
    assert_eq!(out.status.code(), Some(0));
}

/// A script cut short (a connection lost while it was sent) never runs, not even its start.
#[test]
fn a_long_command_cut_short_runs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let flag = dir.path().join("ran");
    let command = format!(
        "touch {}\n: {}\necho end",
        flag.display(),
        "x".repeat(2 * MAX_INLINE)
    );
    let (line, script) = bounded(&command, "N3");
    let script = script.unwrap();
    let out = run_line(&line, &script[..script.len() - 10]);
    assert_eq!(out.status.code(), Some(255));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("did not arrive whole"),
        "{out:?}"
    );
    assert!(!flag.exists());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "N3\n");
}

/// The exit status of a long command is its script's.
#[test]
fn a_long_command_exits_with_its_status() {
    let command = format!(": {}\nexit 7", "y".repeat(MAX_INLINE));
    let (line, script) = bounded(&command, "N4");
    let out = run_line(&line, &script.unwrap());
    assert_eq!(out.status.code(), Some(7));
}
