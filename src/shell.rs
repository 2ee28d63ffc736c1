//! Quoting of remote command lines for a POSIX shell.
//!
//! SSH runs every command through the remote user's login shell, so each argument is quoted here
//! and a command line is only ever built with [`command`]. Never concatenate unquoted arguments.

/// Quote one argument so that a POSIX shell reads it back as exactly these bytes.
///
/// Plain words (letters, digits and `-_./=:@%+,`) are left as they are; everything else is put in
/// single quotes, with each `'` written as `'\''`.
pub fn quote(arg: &str) -> String {
    if !arg.is_empty()
        && arg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:@%+,".contains(&b))
    {
        return arg.to_string();
    }
    let mut out = String::with_capacity(arg.len() + 2);
    out.push('\'');
    for c in arg.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

/// A command line from a program and its arguments, each quoted.
pub fn command<I, S>(args: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    args.into_iter()
        .map(|a| quote(a.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Shell text printing `items`, each followed by a NUL byte, with the shell's own `printf` (a
/// builtin: no argument list of an executed program, however many items), for `xargs -0`.
/// With no items it prints nothing.
pub fn nul_list<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    let mut out = String::from("printf '%s\\0'");
    let mut any = false;
    for item in items {
        out.push(' ');
        out.push_str(&quote(item));
        any = true;
    }
    if !any {
        return "true".to_string();
    }
    out
}

/// A path under the remote user's home directory, as a shell word: `"$HOME"/'rel path'`.
/// `rel` must be relative.
pub fn home_path(rel: &str) -> String {
    debug_assert!(!rel.starts_with('/'));
    if rel.is_empty() {
        "\"$HOME\"".to_string()
    } else {
        format!("\"$HOME\"/{}", quote(rel))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The list comes back whole through `xargs -0`, from the shell's builtin: 50,000 items
    /// (far more than an argument list of 128 KiB holds), odd names included.
    #[test]
    fn nul_lists_feed_xargs_whatever_their_length() {
        let mut items: Vec<String> = (0..50_000).map(|i| format!("dir/file {i}")).collect();
        items.push("it's \"odd\"\nname $x `y`".into());
        let script = format!(
            "{} | xargs -0 -r sh -c 'for a; do printf \"%s|\" \"$a\"; done' x",
            nul_list(items.iter().map(|s| s.as_str()))
        );
        for shell in ["/bin/sh", "/bin/dash", "/bin/bash"] {
            if !std::path::Path::new(shell).exists() {
                continue;
            }
            let mut child = std::process::Command::new(shell)
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            std::io::Write::write_all(&mut child.stdin.take().unwrap(), script.as_bytes()).unwrap();
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success(), "{shell}");
            let got: Vec<&str> = std::str::from_utf8(&out.stdout)
                .unwrap()
                .strip_suffix('|')
                .unwrap()
                .split('|')
                .collect();
            assert_eq!(got, items, "{shell}");
        }
        assert_eq!(nul_list([]), "true");
    }

    #[test]
    fn plain_words_stay_plain() {
        assert_eq!(quote("systemctl"), "systemctl");
        assert_eq!(quote("--user"), "--user");
        assert_eq!(quote("a/b.c@d:e=f%g+h,i"), "a/b.c@d:e=f%g+h,i");
    }

    #[test]
    fn everything_else_is_single_quoted() {
        assert_eq!(quote(""), "''");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), "'it'\\''s'");
        assert_eq!(quote("$HOME"), "'$HOME'");
        assert_eq!(quote("a;b"), "'a;b'");
        assert_eq!(quote("a\nb"), "'a\nb'");
        assert_eq!(quote("~"), "'~'");
        assert_eq!(quote("*"), "'*'");
    }

    #[test]
    fn command_joins_quoted_args() {
        assert_eq!(
            command(["echo", "a b", "$x", "it's"]),
            "echo 'a b' '$x' 'it'\\''s'"
        );
    }

    #[test]
    fn home_paths() {
        assert_eq!(
            home_path(".config/systemd/user"),
            "\"$HOME\"/.config/systemd/user"
        );
        assert_eq!(home_path("a b"), "\"$HOME\"/'a b'");
    }

    /// The quoting round-trips through a real local `sh` for awkward bytes.
    #[test]
    fn round_trip_through_sh() {
        let args = [
            "plain",
            "with space",
            "quote'single",
            "quote\"double",
            "$HOME and `date`",
            "semi;colon && rm -rf /",
            "new\nline",
            "back\\slash",
            "",
            "glob * ?",
            "unicode ✓",
        ];
        let line = format!("printf '%s\\0' {}", command(args));
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&line)
            .output()
            .expect("sh runs");
        let got: Vec<String> = out
            .stdout
            .split(|b| *b == 0)
            .map(|s| String::from_utf8(s.to_vec()).unwrap())
            .collect();
        let mut want: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        want.push(String::new()); // after the last NUL
        assert_eq!(got, want);
    }
}
