//! ProxyJump hops of the OpenSSH client config as ssh goes through them: each hop resolved
//! under its own name (its `user@`/`:port` first), the first hop's own ProxyJump followed as a
//! chain, the later hops' replaced, a circle refused with the ssh_config line.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::tests::ssh_env;
use super::*;

fn hop(h: &Host) -> (&str, &str, &str, u16) {
    (h.name.as_str(), h.address.as_str(), h.user.as_str(), h.port)
}

#[test]
fn first_hop_follows_its_own_proxy_jump_resolved_under_its_own_name() {
    let env = ssh_env(
        "Host far\n  HostName 10.9.9.9\n  ProxyJump mid\n\
         Host mid\n  HostName 10.0.0.2\n  ProxyJump ops@edge:2022\n  ConnectTimeout 7\n\
         Match user ops\n  StrictHostKeyChecking accept-new\n\
         Host edge\n  HostName edge.example\n  User jumper\n  Port 2200\n  IdentityFile ~/.ssh/%r_%p\n\
         Host far2\n  HostName 10.9.9.8\n  ProxyJump edge,mid\n",
    );
    let c = parse(
        "[hosts.t]\naddress = \"far\"\n[hosts.t2]\naddress = \"far2\"\n",
        Path::new("deploy.toml"),
        &env,
    )
    .unwrap();
    let mid = c.hosts["t"].proxy_jump.as_ref().unwrap();
    assert_eq!(hop(mid), ("mid", "10.0.0.2", "me", 22));
    assert_eq!(mid.connect_timeout, Duration::from_secs(7));
    assert_eq!(mid.host_key_policy, HostKeyPolicy::Strict);
    // mid's own ProxyJump: `ops@edge:2022`, the user and port given there beating edge's
    // User and Port lines, and seen by `Match user` and `%r`/`%p` (as `ssh -l ops -p 2022`).
    let edge = mid.proxy_jump.as_ref().unwrap();
    assert_eq!(hop(edge), ("edge", "edge.example", "ops", 2022));
    assert_eq!(edge.host_key_policy, HostKeyPolicy::AcceptNew);
    assert_eq!(
        edge.identities,
        vec![PathBuf::from("/home/me/.ssh/ops_2022")]
    );
    assert!(edge.proxy_jump.is_none());
    // `ProxyJump edge,mid`: mid is reached through edge, its own ProxyJump replaced (as -J).
    let mid = c.hosts["t2"].proxy_jump.as_ref().unwrap();
    assert_eq!(hop(mid), ("mid", "10.0.0.2", "me", 22));
    let edge = mid.proxy_jump.as_ref().unwrap();
    assert_eq!(hop(edge), ("edge", "edge.example", "jumper", 2200));
    assert!(edge.proxy_jump.is_none());
    assert!(!c.hosts.contains_key("mid") && !c.hosts.contains_key("edge"));
}

#[test]
fn a_proxy_jump_circle_is_refused_with_its_line() {
    let env = ssh_env("Host a\n  ProxyJump b\nHost b\n  User x\n  ProxyJump a\n");
    let e = parse(
        "[hosts.t]\naddress = \"a\"\n",
        Path::new("deploy.toml"),
        &env,
    )
    .expect_err("a circle of jumps");
    let text = e.to_string();
    assert!(
        text.contains("config:5: proxyjump: ProxyJump goes round in a circle: a -> b -> a"),
        "{text}"
    );
    assert_eq!(e.0[0].key, "hosts.t.address");
}
