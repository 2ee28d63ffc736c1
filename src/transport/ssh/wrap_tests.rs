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
