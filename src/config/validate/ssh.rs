//! What the OpenSSH client config resolved for a host means for its `Host`: ssh's values
//! converted to ferry's types. deploy.toml's explicit settings are applied over these in
//! `Validator::host` (as `-o` on ssh's command line).

use std::path::PathBuf;
use std::time::Duration;

use crate::config::ssh::{Resolved, SshConfigError, jumps, seconds};
use crate::config::{AddressFamily, HostKeyPolicy, SshOptions};

/// The options of `r` as ferry's types.
pub(crate) fn options(r: &Resolved) -> Result<SshOptions, SshConfigError> {
    let num = |k: &str, default: u32| r.get(k).and_then(|v| v.parse().ok()).unwrap_or(default);
    let one_path =
        |k: &str| -> Result<Option<PathBuf>, SshConfigError> { Ok(r.paths(k)?.into_iter().next()) };
    let interval = r
        .get("serveraliveinterval")
        .and_then(|v| seconds(v).ok())
        .filter(|s| *s > 0)
        .map(Duration::from_secs);
    let identity_agent = match r.get("identityagent") {
        None => None,
        Some(v @ ("none" | "SSH_AUTH_SOCK")) => Some(v.to_string()),
        // `$NAME`: the socket path is in that environment variable (read when connecting).
        Some(v) if v.starts_with('$') => Some(v.to_string()),
        // A path: `~`, tokens and `${ENV}` expanded as for the other paths.
        Some(_) => one_path("identityagent")?.map(|p| p.display().to_string()),
    };
    Ok(SshOptions {
        identities_only: r.get("identitiesonly") == Some("yes"),
        identity_agent,
        certificates: r.paths("certificatefile")?,
        user_known_hosts: r.paths("userknownhostsfile")?,
        global_known_hosts: r.paths("globalknownhostsfile")?,
        host_key_alias: r.get("hostkeyalias").map(str::to_string),
        hash_known_hosts: r.get("hashknownhosts") == Some("yes"),
        revoked_host_keys: one_path("revokedhostkeys")?.filter(|p| p.as_os_str() != "none"),
        server_alive_interval: interval,
        server_alive_count_max: num("serveralivecountmax", 3),
        connection_attempts: num("connectionattempts", 1),
        address_family: match r.get("addressfamily") {
            Some("inet") => AddressFamily::Inet,
            Some("inet6") => AddressFamily::Inet6,
            _ => AddressFamily::Any,
        },
        proxy_jumps: r
            .get("proxyjump")
            .map(jumps)
            .transpose()
            .map_err(|m| r.error("proxyjump", m))?
            .unwrap_or_default(),
        proxy_command: r.proxy_command()?,
    })
}

/// StrictHostKeyChecking as ferry's policy: `accept-new` (and `no`/`off`, which ferry narrows
/// to accept-new: a changed key is always refused) record unknown hosts; others refuse them.
pub(crate) fn host_key_policy(r: &Resolved) -> Option<HostKeyPolicy> {
    r.is_set("stricthostkeychecking")
        .then(|| match r.get("stricthostkeychecking") {
            Some("accept-new" | "false") => HostKeyPolicy::AcceptNew,
            _ => HostKeyPolicy::Strict,
        })
}

/// ConnectTimeout when set and not `none`/0.
pub(crate) fn connect_timeout(r: &Resolved) -> Option<Duration> {
    r.get("connecttimeout")
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|s| *s > 0)
        .map(Duration::from_secs)
}
