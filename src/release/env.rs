//! A service's environment (`[services.NAME.env]`): its values resolved on the machine running
//! ferry, and the env file that carries them to the host.
//!
//! Values come from deploy.toml, from ferry's own environment (`{ env = "VAR" }`, e.g. a CI
//! secret), from a local command's stdout (`{ command = "pass show api/token" }`, run once per
//! deploy) or from a local file (`{ file = "secrets/dsn" }`). They are resolved before any
//! connection: a missing variable, a failing command or an unreadable file is a usage error
//! (exit 2) and no host changes.
//!
//! The env file is part of the release: `releases/ID/.ferry/env`, mode 0600, in the syntax that
//! both systemd's `EnvironmentFile=` and `sh`'s `.` read the same way. Every `.service` unit
//! of the service gets, as the first line of its `[Service]` section,
//! `EnvironmentFile=%h/.local/share/ferry/NAME/current/.ferry/env`, so a unit always reads
//! the env of the release `current` points to, and a rollback brings the old environment back
//! with the old files. Values are never printed: not in `--dry-run` (names only), `-vv`,
//! JSON events or errors; [`EnvFile`]'s `Debug` shows names only, and hook output has the
//! values of secrets masked.

use std::fmt;
use std::time::Duration;

use crate::config::{EnvValue, Service};
use crate::error::{Error, Result};
use crate::release;

/// The env file's path inside a release directory.
pub fn file_in_release() -> String {
    format!("{}/env", release::META_DIR)
}

/// The path units read the env file from: the release `current` points to.
pub fn unit_path(service: &str) -> String {
    format!(
        "%h/{}/{service}/current/{}",
        release::ROOT,
        file_in_release()
    )
}

pub use crate::config::valid_env_name as valid_name;

/// The resolved environment of a service: the env file's content, never shown.
#[derive(Clone, PartialEq, Eq)]
pub struct EnvFile {
    /// Variable names, sorted.
    pub names: Vec<String>,
    content: Vec<u8>,
    vars: Vec<(String, String)>,
    /// Values that did not come from deploy.toml (env, command, file): masked in hook output
    /// and in the journal lines of a failed deploy.
    secrets: Vec<String>,
}

impl fmt::Debug for EnvFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnvFile")
            .field("names", &self.names)
            .field("content", &"<not shown>")
            .finish()
    }
}

impl EnvFile {
    /// Build from resolved `(name, value)` pairs (sorted by name).
    pub fn new(vars: &[(String, String)], secrets: Vec<String>) -> EnvFile {
        EnvFile {
            names: vars.iter().map(|(n, _)| n.clone()).collect(),
            content: render(vars).into_bytes(),
            vars: vars.to_vec(),
            secrets,
        }
    }

    /// The (name, value) pairs (for `local_after`, which runs with them).
    pub fn vars(&self) -> &[(String, String)] {
        &self.vars
    }

    /// What is written to the host (mode 0600).
    pub fn content(&self) -> &[u8] {
        &self.content
    }

    pub fn size(&self) -> u64 {
        self.content.len() as u64
    }

    pub fn sha256(&self) -> String {
        crate::digest::sha256_hex(&self.content)
    }

    /// `text` with every secret value replaced by `***` (for hook output).
    pub fn mask(&self, text: &str) -> String {
        let mut out = text.to_string();
        // Longest first, so a secret containing another is masked whole.
        let mut secrets: Vec<&String> = self.secrets.iter().filter(|s| s.len() >= 3).collect();
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        for s in secrets {
            out = out.replace(s.as_str(), "***");
            // A multi-line secret may be printed a line at a time.
            for line in s.lines().filter(|l| l.trim().len() >= 6) {
                out = out.replace(line, "***");
            }
        }
        out
    }
}

/// The env file's text: one `NAME=VALUE` line per variable. A value is written bare when it is
/// made of characters neither systemd nor sh treat specially, in single quotes when it holds no
/// `'`, else in double quotes with `\`, `"`, `$` and `` ` `` escaped: systemd's
/// `EnvironmentFile=` and `sh`'s `.` read all three forms to the same value (newlines included).
pub fn render(vars: &[(String, String)]) -> String {
    let mut s = String::from("# written by ferry: the service's [env]; mode 0600\n");
    for (name, value) in vars {
        s.push_str(name);
        s.push('=');
        s.push_str(&quote_value(value));
        s.push('\n');
    }
    s
}

fn quote_value(v: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "_-.,:/@%+=".contains(c);
    if !v.is_empty() && v.chars().all(plain) {
        v.to_string()
    } else if !v.contains('\'') {
        format!("'{v}'")
    } else {
        let mut q = String::from("\"");
        for c in v.chars() {
            if matches!(c, '\\' | '"' | '$' | '`') {
                q.push('\\');
            }
            q.push(c);
        }
        q.push('"');
        q
    }
}

/// `content` of a `.service` unit with `EnvironmentFile=` for the service's env file as the
/// first line of its `[Service]` section (a section is added when there is none). The unit's
/// own `Environment=`/`EnvironmentFile=` lines keep working; for a name set in both,
/// `EnvironmentFile=` wins (systemd's rule), and among files the later one.
pub fn unit_with_env_file(content: &[u8], service: &str) -> Vec<u8> {
    let text = String::from_utf8_lossy(content);
    let line = format!("EnvironmentFile={}", unit_path(service));
    let mut out = String::with_capacity(text.len() + line.len() + 16);
    let mut done = false;
    for l in text.split_inclusive('\n') {
        out.push_str(l);
        if !done && l.trim() == "[Service]" {
            if !l.ends_with('\n') {
                out.push('\n');
            }
            out.push_str(&line);
            out.push('\n');
            done = true;
        }
    }
    if !done {
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str("[Service]\n");
        out.push_str(&line);
        out.push('\n');
    }
    out.into_bytes()
}

/// Resolve a service's env values locally. None when the service has no `[env]`. Errors
/// (exit 2) name the service, the variable and the source, never a value.
pub async fn resolve(service: &Service) -> Result<Option<EnvFile>> {
    if service.env.is_empty() {
        return Ok(None);
    }
    let mut vars = Vec::new();
    let mut secrets = Vec::new();
    for (name, source) in &service.env {
        let what = |m: String| {
            Error::Usage(format!(
                "service {}: env {name}: {m}",
                crate::human::sanitize(&service.name)
            ))
        };
        let value = match source {
            EnvValue::Literal(v) => v.clone(),
            EnvValue::Env(var) => match std::env::var(var) {
                Ok(v) => v,
                Err(std::env::VarError::NotPresent) => {
                    return Err(what(format!(
                        "the environment variable {var} is not set; export it (e.g. from your CI's secrets) and run ferry again"
                    )));
                }
                Err(std::env::VarError::NotUnicode(_)) => {
                    return Err(what(format!(
                        "the environment variable {var} is not valid UTF-8"
                    )));
                }
            },
            EnvValue::Command { command, dir } => run_command(command, dir, service.hooks.timeout)
                .await
                .map_err(what)?,
            EnvValue::File(path) => {
                let bytes = tokio::fs::read(path)
                    .await
                    .map_err(|e| what(format!("cannot read {}: {e}", path.display())))?;
                let mut v = String::from_utf8(bytes).map_err(|_| {
                    what(format!(
                        "{} is not UTF-8 text (systemd accepts only UTF-8 values)",
                        path.display()
                    ))
                })?;
                if v.ends_with('\n') {
                    v.pop();
                }
                v
            }
        };
        if value.contains('\0') {
            return Err(what(
                "the value contains a NUL byte, which no environment can hold".into(),
            ));
        }
        if !matches!(source, EnvValue::Literal(_)) {
            secrets.push(value.clone());
        }
        vars.push((name.clone(), value));
    }
    Ok(Some(EnvFile::new(&vars, secrets)))
}

/// stdout of `sh -c COMMAND` in `dir`, one trailing newline removed. Its stderr goes to
/// ferry's stderr (a password manager may prompt there); only its exit status is reported.
async fn run_command(
    command: &str,
    dir: &std::path::Path,
    timeout: Duration,
) -> std::result::Result<String, String> {
    let shown = crate::human::sanitize(command);
    let child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .current_dir(dir)
        .stdin(std::process::Stdio::inherit())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run `{shown}`: {e}"))?;
    let out = match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(Ok(out)) => out,
        Ok(Err(e)) => return Err(format!("`{shown}` failed: {e}")),
        Err(_) => {
            return Err(format!(
                "`{shown}` did not finish within {} (hooks.timeout); it was stopped",
                humantime::format_duration(timeout)
            ));
        }
    };
    if !out.status.success() {
        let status = match out.status.code() {
            Some(c) => format!("exit status {c}"),
            None => "killed by a signal".to_string(),
        };
        return Err(format!(
            "the command `{shown}` failed ({status}); its value was not used. Run it by hand to see why"
        ));
    }
    let mut v = String::from_utf8(out.stdout)
        .map_err(|_| format!("the output of `{shown}` is not UTF-8 text"))?;
    if v.ends_with('\n') {
        v.pop();
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(valid_name("DATABASE_URL"));
        assert!(valid_name("_x1"));
        assert!(!valid_name("1X"));
        assert!(!valid_name("A-B"));
        assert!(!valid_name(""));
        assert!(!valid_name("A B"));
    }

    #[test]
    fn values_are_quoted_for_systemd_and_sh() {
        let vars = vec![
            ("A".to_string(), "plain-value_1.2:3/4@x%y+z=w".to_string()),
            ("B".to_string(), "has space $HOME `x`".to_string()),
            ("C".to_string(), "it's \"q\" $X \\ `y`".to_string()),
            ("D".to_string(), String::new()),
            ("E".to_string(), "two\nlines".to_string()),
        ];
        let text = render(&vars);
        assert!(text.contains("\nA=plain-value_1.2:3/4@x%y+z=w\n"), "{text}");
        assert!(text.contains("\nB='has space $HOME `x`'\n"), "{text}");
        assert!(
            text.contains("\nC=\"it's \\\"q\\\" \\$X \\\\ \\`y\\`\"\n"),
            "{text}"
        );
        assert!(text.contains("\nD=''\n"), "{text}");
        assert!(text.contains("\nE='two\nlines'\n"), "{text}");
    }

    /// sh reads the file back to the very same values.
    #[test]
    fn sh_reads_the_values_back() {
        let vars = vec![
            ("A".to_string(), "it's \"q\" $X \\ `y` \\n".to_string()),
            ("B".to_string(), "multi\nline 'x'".to_string()),
            ("C".to_string(), "  spaces  ".to_string()),
        ];
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("env");
        std::fs::write(&f, render(&vars)).unwrap();
        for (name, value) in &vars {
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!(". \"$1\"; printf %s \"${name}\""))
                .arg("sh")
                .arg(&f)
                .output()
                .unwrap();
            assert_eq!(&String::from_utf8(out.stdout).unwrap(), value);
        }
    }

    #[test]
    fn debug_hides_values() {
        let e = EnvFile::new(
            &[("TOKEN".into(), "hunter2-secret".into())],
            vec!["hunter2-secret".into()],
        );
        let d = format!("{e:?}");
        assert!(d.contains("TOKEN") && !d.contains("hunter2"), "{d}");
        assert_eq!(
            e.mask("token is hunter2-secret, ok"),
            "token is ***, ok".to_string()
        );
    }

    #[test]
    fn units_get_the_env_file() {
        let u = unit_with_env_file(
            b"[Unit]\nDescription=x\n\n[Service]\nExecStart=/bin/true\n",
            "api",
        );
        assert_eq!(
            String::from_utf8(u).unwrap(),
            "[Unit]\nDescription=x\n\n[Service]\nEnvironmentFile=%h/.local/share/ferry/api/current/.ferry/env\nExecStart=/bin/true\n"
        );
        let u = unit_with_env_file(b"[Unit]\nDescription=x", "api");
        assert_eq!(
            String::from_utf8(u).unwrap(),
            "[Unit]\nDescription=x\n[Service]\nEnvironmentFile=%h/.local/share/ferry/api/current/.ferry/env\n"
        );
    }
}
