//! Property tests, no remote needed, a few seconds in the normal test command: the config
//! parser and the journal JSON parser on generated and mutated input never panic; every
//! config error names the file and, where it is about text in the file, its line; a journal
//! message is never printed with raw control characters (a tab is kept as it is).
//!
//! A small deterministic generator (xorshift, fixed seeds) instead of a fuzzing crate: a
//! failure prints the seed and the input, and reruns the same.

use std::path::Path;

use ferry::config;
use ferry::systemd::journal::{self, Line};

/// xorshift64*: deterministic, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
    fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len())]
    }
}

/// Pieces that mean something to TOML, to ferry's validation, or to a terminal.
const TOKENS: &[&str] = &[
    "[",
    "]",
    "[[",
    "]]",
    "=",
    "\"",
    "'",
    "\"\"\"",
    "'''",
    "\n",
    "#",
    "{",
    "}",
    ",",
    ".",
    "-",
    "\\",
    "\\u0000",
    "\\u001b[31m",
    "\u{1b}",
    "\u{0}",
    "\u{7f}",
    "é",
    "🦀",
    "0",
    "-1",
    "1e999",
    "inf",
    "nan",
    "0o777",
    "0x10",
    "true",
    "\"\"",
    "\"0755\"",
    "\"4777\"",
    "\"9s\"",
    "\"25h\"",
    "\"1y\"",
    "\"0s\"",
    "\"-1s\"",
    "\"../x\"",
    "\"/abs\"",
    "\"bin/\"",
    "\"a\\nb\"",
    "\"%t/s\"",
    "\"x.service\"",
    "\"x.socket\"",
    "\"@.service\"",
    "\"web1\"",
    "[hosts.h]",
    "[services.s]",
    "[[services.s.files]]",
    "[groups]",
    "[defaults]",
    "[services.s.rollout]",
    "[services.s.health]",
    "address",
    "hosts",
    "units",
    "dest",
    "source",
    "mode",
    "secret",
    "keep_releases",
    "confirm_timeout",
    "start_timeout",
    "settle_time",
    "proxy_jump",
    "identity",
    "port",
    "65536",
    "99999999999999999999",
    "user",
    "restart",
    "enable",
];

const SEED_CONFIG: &str = r#"
[defaults]
user = "deploy"
port = 22
connect_timeout = "10s"

[hosts.web1]
address = "web1.example.com"

[hosts.web2]
address = "web2.example.com"
proxy_jump = "web1"

[groups]
web = ["web1", "web2"]

[services.app]
hosts = ["web"]
units = ["app.service", "app.socket"]
restart = ["app.service"]
keep_releases = 3
confirm_timeout = "90s"
settle_time = "1.5s"

[services.app.rollout]
batch = 1

[[services.app.files]]
source = "Cargo.toml"
dest = "bin/app"
mode = "0755"

[[services.app.files]]
source = "Cargo.toml"
dest = "etc/app.env"
secret = true

[services.app.health]
http = "http://127.0.0.1:8080/healthz"
command = "app --check"
timeout = "30s"
interval = "1s"
"#;

fn mutate(rng: &mut Rng, text: &str) -> String {
    let mut s: Vec<char> = text.chars().collect();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(s.len() + 1);
        match rng.below(6) {
            // Insert a token.
            0 | 1 => {
                let t: Vec<char> = rng.pick(TOKENS).chars().collect();
                s.splice(at..at, t);
            }
            // Delete a range.
            2 => {
                let end = (at + 1 + rng.below(12)).min(s.len());
                if at < end {
                    s.drain(at..end);
                }
            }
            // Replace a range by a token.
            3 => {
                let end = (at + rng.below(8)).min(s.len());
                let t: Vec<char> = rng.pick(TOKENS).chars().collect();
                if at <= end {
                    s.splice(at..end, t);
                }
            }
            // Duplicate a line (duplicate keys and tables).
            4 => {
                let text: String = s.iter().collect();
                let lines: Vec<&str> = text.lines().collect();
                if !lines.is_empty() {
                    let l = rng.below(lines.len());
                    let mut v: Vec<String> = lines.iter().map(|x| x.to_string()).collect();
                    v.insert(rng.below(v.len() + 1), lines[l].to_string());
                    s = v.join("\n").chars().collect();
                }
            }
            // A random byte as a char (control characters included).
            _ => s.insert(at, char::from(rng.below(128) as u8)),
        }
    }
    s.into_iter().collect()
}

fn env() -> config::Env {
    config::Env {
        home: Some("/home/me".into()),
        local_user: Some("me".into()),
        ssh_config: None,
    }
}

#[test]
fn the_config_parser_never_panics_and_every_error_is_located() {
    // The manifest directory: `source = "Cargo.toml"` exists there.
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy.toml");
    let example =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy.example.toml"))
            .unwrap();
    let seeds = [SEED_CONFIG, example.as_str(), ""];
    assert!(
        config::parse(SEED_CONFIG, &path, &env()).is_ok(),
        "the seed config is valid"
    );
    let mut rng = Rng(0x5eed_f00d_1234_5678);
    let (mut ok, mut errors) = (0, 0);
    for case in 0..3000 {
        let seed = *rng.pick(&seeds);
        let mut text = mutate(&mut rng, seed);
        // Now and then, mutate the mutant again.
        if rng.below(4) == 0 {
            text = mutate(&mut rng, &text);
        }
        let parsed = std::panic::catch_unwind(|| config::parse(&text, &path, &env()));
        let Ok(parsed) = parsed else {
            panic!("config::parse panicked on case {case}:\n{text}");
        };
        match parsed {
            Ok(_) => ok += 1,
            Err(e) => {
                errors += 1;
                assert!(
                    !e.0.is_empty(),
                    "an error with no detail, case {case}:\n{text}"
                );
                for err in &e.0 {
                    assert_eq!(err.file, path, "case {case}: {err}");
                    let shown = err.to_string();
                    assert!(shown.contains("deploy.toml"), "case {case}: {shown}");
                    assert!(
                        err.line
                            .is_some_and(|l| l >= 1 && l <= text.lines().count().max(1) + 1),
                        "case {case}: error without a (valid) line: {shown}\n---\n{text}"
                    );
                    // A control character in the input is never printed raw.
                    assert!(
                        !shown
                            .chars()
                            .any(|c| c.is_control() && c != '\n' && c != '\t'),
                        "case {case}: raw control character in {shown:?}"
                    );
                }
            }
        }
    }
    // The mutations reach both sides.
    assert!(ok > 50 && errors > 1000, "ok {ok}, errors {errors}");
}

/// A valid journal line in `journalctl -o json` form.
const JOURNAL_LINE: &str = r#"{"__CURSOR":"s=1;i=a","__REALTIME_TIMESTAMP":"1764000000123456","PRIORITY":"3","_PID":"4242","_SYSTEMD_USER_UNIT":"app.service","SYSLOG_IDENTIFIER":"app","MESSAGE":"line 7"}"#;
const JOURNAL_BYTES: &str = r#"{"__CURSOR":"c","__REALTIME_TIMESTAMP":"1","MESSAGE":[98,97,100,32,255,32,27,91,51,49,109],"SYSLOG_IDENTIFIER":"x"}"#;

#[test]
fn the_journal_parser_never_panics_and_never_prints_control_characters() {
    let mut rng = Rng(0x10_9e57_ab1e);
    let seeds = [JOURNAL_LINE, JOURNAL_BYTES, "", "{}", "-- cursor: x"];
    let mut entries = 0;
    for case in 0..20000 {
        let line: Vec<u8> = if case % 3 == 0 {
            // Arbitrary bytes.
            (0..rng.below(200)).map(|_| rng.next() as u8).collect()
        } else {
            let seed = *rng.pick(&seeds);
            mutate(&mut rng, seed).into_bytes()
        };
        let parsed = std::panic::catch_unwind(|| journal::parse_line(&line));
        let Ok(parsed) = parsed else {
            panic!(
                "journal::parse_line panicked on case {case}: {:?}",
                String::from_utf8_lossy(&line)
            );
        };
        if let Line::Entry(e) = parsed {
            entries += 1;
            let shown = ferry::report::logs::message_display(&e.message);
            assert!(
                !shown.chars().any(|c| c.is_control() && c != '\t'),
                "case {case}: control character printed raw: {shown:?}"
            );
        }
    }
    assert!(entries > 300, "only {entries} lines parsed as entries");
}
