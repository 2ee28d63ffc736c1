//! Differential suite: ferry's resolution of ssh_config files against OpenSSH's own
//! (`ssh -F FILE -G HOST`), for a corpus generated from a small seeded grammar plus hand-written
//! realistic configs. Needs the `ssh` client (tests/run installs it); no remote.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use ferry::config::ssh::{COMPARED, Context, System};

const ENV_VAR: &str = "FERRY_ORACLE_DIR";

/// The options ferry uses, grouped by key, values in the order printed.
type Lines = BTreeMap<String, Vec<String>>;

fn group(lines: impl IntoIterator<Item = String>) -> Lines {
    let mut m = Lines::new();
    for l in lines {
        let (k, v) = l.split_once(' ').unwrap_or((&l, ""));
        if COMPARED.contains(&k) {
            m.entry(k.to_string()).or_default().push(v.to_string());
        }
    }
    m
}

fn ssh_g(file: &Path, host: &str) -> Result<Lines, String> {
    ssh_g_with(file, host, &[])
}

/// `ssh -F FILE ARGS -G HOST`.
fn ssh_g_with(file: &Path, host: &str, args: &[&str]) -> Result<Lines, String> {
    let out = Command::new("ssh")
        .args(["-F"])
        .arg(file)
        .args(args)
        .args(["-G", host])
        .env(ENV_VAR, "/srv/oracle")
        .env("SHELL", "/bin/sh")
        .output()
        .expect("the `ssh` client must be installed for this test (tests/run installs it)");
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(group(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string),
    ))
}

fn context(file: &Path) -> Context {
    let mut ctx = Context::current().expect("the local user's passwd entry");
    ctx.files = vec![(file.to_path_buf(), ctx.home.join(".ssh"))];
    ctx.env = BTreeMap::from([(ENV_VAR.to_string(), "/srv/oracle".to_string())]);
    ctx
}

fn ferry(file: &Path, host: &str) -> Result<Lines, String> {
    context(file)
        .resolve(host, &System)
        .map(|r| group(r.g_lines()))
        .map_err(|e| e.to_string())
}

/// Compare both for each host; a readable diff per mismatch.
fn compare(file: &Path, text: &str, hosts: &[&str], failures: &mut Vec<String>) {
    for host in hosts {
        let want = ssh_g(file, host);
        let got = ferry(file, host);
        match (&want, &got) {
            (Ok(w), Ok(g)) if w == g => {}
            (Err(_), Err(_)) => {}
            (Ok(w), Ok(g)) => {
                let mut diff = String::new();
                for k in COMPARED {
                    let (a, b) = (w.get(*k), g.get(*k));
                    if a != b {
                        diff += &format!("    {k}: ssh {a:?}  ferry {b:?}\n");
                    }
                }
                failures.push(format!(
                    "{} host `{host}`:\n{diff}  config:\n{text}",
                    file.display()
                ));
            }
            _ => failures.push(format!(
                "{} host `{host}`: ssh {want:?} ferry {got:?}\n  config:\n{text}",
                file.display()
            )),
        }
    }
}

fn dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("ferry-ssh-oracle-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A tiny deterministic generator (xorshift).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[(self.next() % xs.len() as u64) as usize]
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const OPTIONS: &[(&str, &[&str])] = &[
    ("User", &["alice", "bob", "%L-x"]),
    (
        "HostName",
        &["%h.example", "real.example", "10.0.0.1", "%h"],
    ),
    ("Port", &["22", "2200", "2222"]),
    ("ConnectTimeout", &["5", "1m", "1h30s", "10S"]),
    ("ServerAliveInterval", &["15", "1m", "2m30s"]),
    ("ServerAliveCountMax", &["2", "5"]),
    ("ConnectionAttempts", &["1", "3"]),
    ("IdentitiesOnly", &["yes", "no", "true"]),
    (
        "StrictHostKeyChecking",
        &["yes", "accept-new", "no", "ask", "off"],
    ),
    ("AddressFamily", &["inet", "any", "inet6"]),
    (
        "IdentityFile",
        &[
            "~/.ssh/%r_key",
            "${FERRY_ORACLE_DIR}/k",
            "~/.ssh/id_a",
            "%d/id_%h",
        ],
    ),
    ("CertificateFile", &["~/.ssh/%h-cert.pub", "~/.ssh/c"]),
    (
        "UserKnownHostsFile",
        &[
            "~/.ssh/kh_%h ~/.ssh/kh2",
            "%d/kh_%C",
            "${FERRY_ORACLE_DIR}/kh_%r_%p",
        ],
    ),
    (
        "GlobalKnownHostsFile",
        &["/etc/ssh/k1 /etc/ssh/k2", "/etc/g_%h"],
    ),
    ("HostKeyAlias", &["alias1", "%h"]),
    (
        "IdentityAgent",
        &[
            "~/agent/%h",
            "none",
            "SSH_AUTH_SOCK",
            "${FERRY_ORACLE_DIR}/a.sock",
        ],
    ),
    (
        "RevokedHostKeys",
        &["~/.ssh/revoked", "/etc/ssh/revoked_%h"],
    ),
    (
        "ProxyJump",
        &["bastion", "u@b1:2200,b2", "none", "10.0.0.9:2022"],
    ),
    ("ProxyCommand", &["nc %h %p", "none"]),
    ("AddKeysToAgent", &["confirm", "1h", "yes", "confirm 5m"]),
    ("CanonicalizeHostname", &["yes", "no", "always", "true"]),
    (
        "CanonicalDomains",
        &["example.org", "lab.example none", "a.example b.example"],
    ),
    ("CanonicalizeMaxDots", &["0", "2"]),
    ("CanonicalizeFallbackLocal", &["yes", "no"]),
    ("ForwardAgent", &["yes", "/tmp/agent.sock"]),
];

const HOSTS: &[&str] = &["web", "web2", "db1", "x.example", "127.1"];

fn header(r: &mut Rng, local_user: &str) -> String {
    let pat = [
        "web",
        "web*",
        "*.example",
        "!web2",
        "*",
        "db?",
        "x",
        "real.example",
        "10.0.0.1",
    ];
    match r.below(10) {
        0..=4 => {
            let n = 1 + r.below(3);
            let ps: Vec<&str> = (0..n).map(|_| r.pick(&pat)).collect();
            format!("Host {}", ps.join(" "))
        }
        5 => "Match all".into(),
        6 => format!(
            "Match host {}",
            r.pick(&["web*", "*.example", "db1,!web2", "real.example"])
        ),
        7 => format!(
            "Match originalhost {} user {}",
            r.pick(&["web*", "x.example", "*"]),
            r.pick(&["alice", "bob", local_user, "*"])
        ),
        8 => format!(
            "Match {} localuser {}",
            r.pick(&["exec \"true\"", "exec \"false\"", "!exec \"false\""]),
            r.pick(&[local_user, "nobody", "*"])
        ),
        _ => format!(
            "Match final host {}",
            r.pick(&["*.example", "real.example", "10.0.0.1"])
        ),
    }
}

fn option(r: &mut Rng) -> String {
    let (k, vs) = OPTIONS[r.below(OPTIONS.len() as u64) as usize];
    let sep = r.pick(&[" ", " ", "=", " = "]);
    format!("    {k}{sep}{}", r.pick(vs))
}

fn generated(seed: u64, d: &Path, local_user: &str) -> String {
    let mut r = Rng(seed * 2654435761 + 1);
    let mut text = String::new();
    for _ in 0..r.below(3) {
        text += &format!("{}\n", option(&mut r));
    }
    for b in 0..1 + r.below(5) {
        text += &format!("{}\n", header(&mut r, local_user));
        for _ in 0..1 + r.below(4) {
            text += &format!("{}\n", option(&mut r));
        }
        if r.below(6) == 0 {
            let inc = d.join(format!("inc-{seed}-{b}.conf"));
            let mut body = String::new();
            if r.below(2) == 0 {
                body += &format!("{}\n", header(&mut r, local_user));
            }
            for _ in 0..1 + r.below(3) {
                body += &format!("{}\n", option(&mut r));
            }
            std::fs::write(&inc, &body).unwrap();
            text += &format!(
                "    Include {}\n",
                d.join(format!("inc-{seed}-{b}.c*")).display()
            );
        }
    }
    text
}

#[test]
fn generated_configs_resolve_as_ssh_does() {
    let d = dir();
    let ctx = Context::current().unwrap();
    let mut failures = Vec::new();
    for seed in 1..=150u64 {
        let text = generated(seed, &d, &ctx.local_user);
        let file = d.join(format!("gen-{seed}.conf"));
        std::fs::write(&file, &text).unwrap();
        compare(&file, &text, HOSTS, &mut failures);
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

const HAND: &[&str] = &[
    "Host github.com\n  User git\n  AddKeysToAgent confirm\n  IdentityFile ~/.ssh/github\n  IdentitiesOnly yes\n",
    "Host github.com\n  AddKeysToAgent 1h\n  UseKeychain yes\nHost *\n  User deploy\n",
    "Host bastion\n  HostName bastion.example.com\n  User jump\nHost web*\n  ProxyJump bastion\n  User app\nHost *\n  ServerAliveInterval 1m\n  ServerAliveCountMax 2\n",
    "Host web\n  User a\n  User b\n  Port 2200\n  Port 2300\n",
    "Match user nobody\n  Port 2359\nHost web\n  User app\n",
    "Match exec \"false\"\n  User x\nHost *\n  User y\n",
    "Host *\n  ConnectTimeout 1m\n  ForwardAgent /run/agent.sock\n  StrictHostKeyChecking accept-new\n",
    "Host web\n  HostName %h.internal.example\n  IdentityFile ~/.ssh/%r_key\n  User deployer\n",
    "Host web web2\n  ProxyJump j1.example,ops@j2.example:2222\nHost *\n  ProxyCommand nc %h %p\n",
    "Host db?\n  HostName 10.1.0.5\nMatch host 10.1.0.5\n  User dba\n",
    "Host web\n  HostName real.example\nMatch final host real.example\n  Port 2022\nHost real.example\n  User finaluser\n",
    "Host *\n  UserKnownHostsFile ~/.ssh/known_hosts ~/.ssh/known_hosts.d/%k\n  GlobalKnownHostsFile /etc/ssh/ssh_known_hosts\n  HashKnownHosts yes\n",
    "Host web\n  HostKeyAlias web-prod\n  RevokedHostKeys ~/.ssh/revoked_keys\n  CertificateFile ~/.ssh/id_ed25519-cert.pub\n  IdentityFile ~/.ssh/id_ed25519\n",
    "Host *\n  IdentityAgent ~/.1password/agent.sock\nHost web\n  IdentityAgent none\n",
    "IgnoreUnknown UseKeychain,Foo*\nHost *\n  UseKeychain yes\n  FooBar 1\n  AddressFamily inet\n",
    "Host !web2 web*\n  User notweb2\nHost *\n  User other\n",
    "Host = web\n  User = \"quoted user\"\n  SendEnv LANG LC_*\n  SetEnv A=1\n  ControlMaster auto\n  ControlPath ~/.ssh/cm-%C\n  ControlPersist 10m\n",
    "Host web\n  Port 22x\n",
    "Host web\n  NotAnOption yes\n",
    "Match originalhost web exec \"test %n = web\"\n  User execuser\n",
    "Host *\n  IdentityFile ${FERRY_ORACLE_DIR}/id\n  IdentityFile ${FERRY_ORACLE_DIR}/id\n  IdentityFile ~/.ssh/id_ecdsa\n",
];

#[test]
fn hand_written_configs_resolve_as_ssh_does() {
    let d = dir();
    let mut failures = Vec::new();
    for (i, text) in HAND.iter().enumerate() {
        let file = d.join(format!("hand-{i}.conf"));
        std::fs::write(&file, text).unwrap();
        compare(
            &file,
            text,
            &["web", "web2", "db1", "github.com", "bastion"],
            &mut failures,
        );
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Every keyword ferry accepts is one ssh accepts, and an unknown one is refused by both.
#[test]
fn unknown_keywords_are_refused_by_both() {
    let d = dir();
    let file = d.join("unknown.conf");
    std::fs::write(&file, "Host *\n  NoSuchOption 1\n").unwrap();
    assert!(ssh_g(&file, "web").is_err());
    let e = ferry(&file, "web").unwrap_err();
    assert!(
        e.contains("unknown.conf:2: nosuchoption: Bad configuration option"),
        "{e}"
    );
}

/// CanonicalizeHostname and its options, as far as this machine's resolver answers (no DNS is
/// assumed: names that do not resolve, addresses, `localhost` from /etc/hosts).
const CANONICAL: &[&str] = &[
    "CanonicalizeHostname yes\nCanonicalDomains example.invalid\nHost localhost\n  User canon\nMatch canonical host localhost\n  Port 2020\n",
    "CanonicalizeHostname yes\nCanonicalDomains example.invalid\nCanonicalizeFallbackLocal no\nHost *\n  User u\n",
    "CanonicalizeHostname yes\nCanonicalizeMaxDots 0\nCanonicalizeFallbackLocal no\nCanonicalDomains a.invalid\n",
    "CanonicalizeHostname yes\nCanonicalizeFallbackLocal no\nHost *\n  ProxyJump j\n",
    "CanonicalizeHostname always\nCanonicalizeFallbackLocal no\nHost *\n  ProxyJump j\n",
    "CanonicalizeHostname no\nCanonicalizeFallbackLocal no\nMatch canonical\n  User never\n",
    "CanonicalizeHostname yes\nMatch canonical\n  User canonical\nMatch final host 127.0.0.1\n  Port 2222\n",
    "Host web\n  HostName 127.1\nMatch final host 127.0.0.1\n  User addr\n",
    "Host web\n  HostName Real.Example\nMatch final host real.example\n  User lower\n",
    "Match !final\n  User notfinal\nHost *\n  Port 2201\n",
];

#[test]
fn canonical_names_resolve_as_ssh_does() {
    let d = dir();
    let mut failures = Vec::new();
    for (i, text) in CANONICAL.iter().enumerate() {
        let file = d.join(format!("canonical-{i}.conf"));
        std::fs::write(&file, text).unwrap();
        compare(
            &file,
            text,
            &[
                "web",
                "localhost",
                "LocalHost",
                "a.b.c",
                "vm.x",
                "127.1",
                "0x7f.1",
                "1234",
                "0:0::1",
                "::FFFF:1.2.3.4",
                "999.1.1.1",
                "Web.",
            ],
            &mut failures,
        );
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// A ProxyJump hop `[user@]host[:port]` resolves as the `ssh -l user -p port host` OpenSSH
/// runs for it.
#[test]
fn jump_hosts_resolve_as_the_ssh_run_for_them_does() {
    let d = dir();
    let mut failures = Vec::new();
    let text = "Host edge\n  HostName edge.example\n  User jumper\n  Port 2200\n  IdentityFile ~/.ssh/%r_%p\n\
                Match user ops\n  StrictHostKeyChecking accept-new\n  UserKnownHostsFile ~/.ssh/kh_%r_%p_%h\n\
                Host mid\n  ProxyJump ops@edge:2022\n  User m\n";
    let file = d.join("hops.conf");
    std::fs::write(&file, text).unwrap();
    for spec in [
        "edge",
        "ops@edge:2022",
        "ops@edge",
        "edge:2300",
        "mid",
        "x@mid:1",
    ] {
        let hop = &ferry::transport::ssh::config::jumps(spec).unwrap()[0];
        let mut args = Vec::new();
        let port = hop.port.map(|p| p.to_string());
        if let Some(u) = &hop.user {
            args.extend(["-l", u.as_str()]);
        }
        if let Some(p) = &port {
            args.extend(["-p", p.as_str()]);
        }
        let want = ssh_g_with(&file, &hop.host, &args);
        let got = context(&file)
            .resolve_hop(hop, &System)
            .map(|r| group(r.g_lines()))
            .map_err(|e| e.to_string());
        if want != got {
            failures.push(format!("hop `{spec}`: ssh {want:?}\n  ferry {got:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
