//! The resolver on its own: splitting, first value, Match, relative Include, tokens, times,
//! hops, canonical names.

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
    /// `web.corp.example.` and `db.corp.example.` resolve, `v6.corp.example.` to IPv6 only.
    fn lookup(&self, name: &str) -> Vec<std::net::IpAddr> {
        match name {
            "web.corp.example." | "db.corp.example." => vec![[10, 0, 0, 1].into()],
            "v6.corp.example." => vec![std::net::Ipv6Addr::LOCALHOST.into()],
            _ => Vec::new(),
        }
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

/// A jump host written `ops@edge:2022` resolves as `ssh -l ops -p 2022 edge`: its own User and
/// Port lines lose to the hop's, and `Match user`, `%r` and `%p` see the hop's.
#[test]
fn a_hop_resolves_under_its_own_name_with_its_user_and_port_first() {
    let text = "Host edge\n  HostName edge.example\n  User jumper\n  Port 2200\n  IdentityFile ~/.ssh/%r_%p\n\
                Match user ops\n  StrictHostKeyChecking accept-new\n";
    let ctx = Context {
        files: vec![("/home/me/.ssh/config".into(), "/home/me/.ssh".into())],
        home: "/home/me".into(),
        local_user: "me".into(),
        local_host: "box.lan".into(),
        uid: 1000,
        env: BTreeMap::new(),
    };
    let world = Memory(BTreeMap::from([(PathBuf::from(MAIN), text.to_string())]));
    let hop = |s: &str| ctx.resolve_hop(&jumps(s).unwrap()[0], &world).unwrap();
    let r = hop("ops@edge:2022");
    assert_eq!(
        (r.get("hostname"), r.get("user"), r.get("port")),
        (Some("edge.example"), Some("ops"), Some("2022"))
    );
    assert_eq!(r.get("stricthostkeychecking"), Some("accept-new"));
    assert_eq!(
        r.paths("identityfile").unwrap(),
        vec![PathBuf::from("/home/me/.ssh/ops_2022")]
    );
    let r = hop("edge");
    assert_eq!(
        (r.get("user"), r.get("port")),
        (Some("jumper"), Some("2200"))
    );
    assert_eq!(r.get("stricthostkeychecking"), Some("ask"));
    assert_eq!(
        r.paths("identityfile").unwrap(),
        vec![PathBuf::from("/home/me/.ssh/jumper_2200")]
    );
}

/// CanonicalizeHostname yes: the first of CanonicalDomains that resolves gives the name, the
/// files are read again with it (`Host` of the canonical name, `Match canonical`); names with
/// too many dots, names a proxy resolves and addresses are left alone (addresses put in
/// numeric form); nothing resolving falls back to the name or, with
/// CanonicalizeFallbackLocal no, is an error at that line.
#[test]
fn canonical_names_as_ssh_makes_them() {
    let conf = |extra: &str| {
        format!(
            "CanonicalizeHostname yes\nCanonicalDomains lab.example corp.example\n{extra}\
             Host web.corp.example\n  User canon\nMatch canonical host *.corp.example\n  Port 2020\n"
        )
    };
    let r = resolve(&[(MAIN, &conf(""))], "WEB").unwrap();
    assert_eq!(
        (r.get("hostname"), r.get("user"), r.get("port")),
        (Some("web.corp.example"), Some("canon"), Some("2020"))
    );
    assert!(r.is_set("hostname"));
    let hostname = |extra: &str, host: &str| {
        resolve(&[(MAIN, &conf(extra))], host).map(|r| r.get("hostname").unwrap().to_string())
    };
    assert_eq!(
        hostname("", "web.corp.example.").unwrap(),
        "web.corp.example"
    );
    assert_eq!(hostname("", "web.x").unwrap(), "web.x");
    assert_eq!(
        hostname("CanonicalizeMaxDots 0\n", "web").unwrap(),
        "web.corp.example"
    );
    assert_eq!(hostname("", "nowhere").unwrap(), "nowhere");
    assert_eq!(hostname("AddressFamily inet\n", "v6").unwrap(), "v6");
    assert_eq!(hostname("", "v6").unwrap(), "v6.corp.example");
    assert_eq!(hostname("ProxyJump j\n", "web").unwrap(), "web");
    let always = conf("ProxyJump j\n").replace("yes", "always");
    let r = resolve(&[(MAIN, &always)], "db").unwrap();
    assert_eq!(r.get("hostname"), Some("db.corp.example"));
    assert_eq!(hostname("", "127.1").unwrap(), "127.0.0.1");
    assert_eq!(hostname("", "0x7f.0.1").unwrap(), "127.0.0.1");
    assert_eq!(hostname("", "::FFFF:1.2.3.4").unwrap(), "::FFFF:1.2.3.4");
    assert_eq!(hostname("", "0:0::1").unwrap(), "::1");
    assert_eq!(hostname("", "999.1.1.1").unwrap(), "999.1.1.1");
    let e = hostname("CanonicalizeFallbackLocal no\n", "nowhere").unwrap_err();
    assert_eq!(
        e.to_string(),
        "/home/me/.ssh/config:3: canonicalizefallbacklocal: could not resolve host \"nowhere\" \
         in any of CanonicalDomains (lab.example corp.example), and CanonicalizeFallbackLocal is \
         no (as ssh: \"Could not resolve host\")"
    );
    let e = hostname("CanonicalizePermittedCNAMEs *.a:*.b\n", "web").unwrap_err();
    assert!(
        e.to_string()
            .starts_with("/home/me/.ssh/config:3: canonicalizepermittedcnames: is not supported"),
        "{e}"
    );
    let e = hostname("CanonicalizeHostname maybe\n", "web").unwrap_err();
    assert!(
        e.to_string().contains("config:3: canonicalizehostname:"),
        "{e}"
    );
}
