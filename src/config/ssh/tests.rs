//! The resolver on its own: splitting, first value, Match, relative Include, tokens, times.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::*;

/// Files in memory; `Match exec` runs nothing (`true` matches).
struct Memory(BTreeMap<PathBuf, String>);

impl World for Memory {
    fn read(&self, path: &Path) -> std::io::Result<String> {
        self.0
            .get(path)
            .cloned()
            .ok_or_else(|| std::io::ErrorKind::NotFound.into())
    }
    fn glob(&self, pattern: &str) -> Vec<PathBuf> {
        self.0
            .keys()
            .filter(|p| resolve::wildcard(&p.to_string_lossy(), pattern))
            .cloned()
            .collect()
    }
    fn exec(&self, command: &str) -> bool {
        command == "true"
    }
}

fn resolve(files: &[(&str, &str)], host: &str) -> Result<Resolved, SshConfigError> {
    let ctx = Context {
        files: vec![("/home/me/.ssh/config".into(), "/home/me/.ssh".into())],
        home: "/home/me".into(),
        local_user: "me".into(),
        local_host: "box.lan".into(),
        uid: 1000,
        env: BTreeMap::from([("D".to_string(), "/d".to_string())]),
    };
    let world = Memory(
        files
            .iter()
            .map(|(p, t)| (p.into(), t.to_string()))
            .collect(),
    );
    ctx.resolve(host, &world)
}

const MAIN: &str = "/home/me/.ssh/config";

#[test]
fn first_value_wins_and_match_blocks_apply_only_when_they_match() {
    let r = resolve(
        &[(MAIN, "Match user nobody\n Port 2359\nMatch exec \"false\"\n User x\nHost web\n User a\n User b\n")],
        "web",
    )
    .unwrap();
    assert_eq!((r.get("user"), r.get("port")), (Some("a"), Some("22")));
}

#[test]
fn include_is_relative_to_dot_ssh_and_read_in_place() {
    let r = resolve(
        &[
            (MAIN, "Host web\n Include conf.d/*\nHost *\n User other\n"),
            ("/home/me/.ssh/conf.d/a", "Port 2200\nUser inc\n"),
        ],
        "web",
    )
    .unwrap();
    assert_eq!((r.get("user"), r.get("port")), (Some("inc"), Some("2200")));
}

#[test]
fn tokens_and_env_expand_in_paths() {
    let r = resolve(
        &[(MAIN, "Host web\n HostName %h.example\n User u\n IdentityFile ~/.ssh/%r_%h\n IdentityFile ${D}/k\n")],
        "web",
    )
    .unwrap();
    assert_eq!(
        r.paths("identityfile").unwrap(),
        [
            PathBuf::from("/home/me/.ssh/u_web.example"),
            PathBuf::from("/d/k")
        ]
    );
}

#[test]
fn valid_values_are_accepted_and_bad_ones_located() {
    let ok = "Host github.com\n AddKeysToAgent confirm\n AddKeysToAgent 1h\n ForwardAgent /path\n ConnectTimeout 1m\n ServerAliveInterval 1m\n";
    let r = resolve(&[(MAIN, ok)], "github.com").unwrap();
    assert_eq!(r.get("connecttimeout"), Some("60"));
    let e = resolve(&[(MAIN, "Host x\n ConnectTimeout soon\n")], "web").unwrap_err();
    assert!(
        e.to_string()
            .starts_with("/home/me/.ssh/config:2: connecttimeout:"),
        "{e}"
    );
    let e = resolve(&[(MAIN, "Bogus 1\n")], "web").unwrap_err();
    assert!(
        e.to_string()
            .contains("config:1: bogus: Bad configuration option"),
        "{e}"
    );
}

#[test]
fn times_as_openssh_reads_them() {
    assert_eq!(seconds("90"), Ok(90));
    assert_eq!(seconds("1h30s"), Ok(3630));
    assert_eq!(seconds("2W"), Ok(1209600));
    assert!(seconds("m").is_err() && seconds("1x").is_err() && seconds("").is_err());
}

#[test]
fn proxy_jump_keeps_every_hop() {
    let j = jumps("a,u@b:2200,[::1]:22").unwrap();
    assert_eq!(j.len(), 3);
    assert_eq!((j[1].user.as_deref(), j[1].port), (Some("u"), Some(2200)));
    assert_eq!(j[2].host, "::1");
    assert!(jumps("none").unwrap().is_empty());
}
