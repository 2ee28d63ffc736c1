//! The small value checks validation uses: names, users, dests, modes, URLs.

use std::collections::BTreeMap;

use super::*;

/// "no host or group `x`; defined hosts: a, b; groups: web".
pub(crate) fn unknown_host_or_group(
    name: &str,
    hosts: &BTreeMap<String, Host>,
    groups: &BTreeMap<String, Vec<String>>,
) -> String {
    let list = |names: Vec<&String>| {
        if names.is_empty() {
            "(none)".to_string()
        } else {
            names
                .into_iter()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    format!(
        "no host or group `{}`; defined hosts: {}; groups: {}",
        printable(name),
        list(hosts.keys().collect()),
        list(groups.keys().collect())
    )
}

/// An environment variable name a shell and systemd accept.
pub fn valid_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Names of hosts and services: used in remote paths, so kept plain.
pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

pub(crate) fn valid_user(user: &str) -> bool {
    !user.is_empty()
        && user.len() <= 32
        && !user.starts_with('-')
        && user
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '$'))
}

/// `bin/app` stays `bin/app`; absolute paths and paths that leave the release directory are refused.
/// Control characters and names of directories (`bin/`) are refused too.
pub(crate) fn normalize_dest(dest: &str) -> Result<String, String> {
    if let Some(c) = dest.chars().find(|c| c.is_control()) {
        return Err(format!(
            "contains the control character {}; remove it",
            c.escape_unicode()
        ));
    }
    if dest.starts_with('/') {
        return Err("must be relative to the release directory, not absolute".into());
    }
    let mut parts = Vec::new();
    for part in dest.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err("must stay inside the release directory (no `..`)".into()),
            p => parts.push(p),
        }
    }
    if parts.is_empty() {
        return Err("must name a file".into());
    }
    if dest.ends_with('/') || dest.ends_with("/.") {
        return Err("names a directory; give the file name (e.g. `bin/app`)".into());
    }
    if parts[0] == "units" || parts[0] == ".ferry" {
        return Err(format!("`{}/` is reserved for ferry's own files", parts[0]));
    }
    Ok(parts.join("/"))
}

/// `"0755"` / `"755"` / `"0o755"` -> 0o755.
pub(crate) fn parse_mode(mode: &str) -> Result<u32, String> {
    let digits = mode.trim_start_matches("0o");
    if digits.is_empty() || digits.len() > 4 || !digits.chars().all(|c| ('0'..='7').contains(&c)) {
        return Err("not an octal file mode; write e.g. \"0644\" or \"0755\"".into());
    }
    let m = u32::from_str_radix(digits, 8).map_err(|e| e.to_string())?;
    if m > 0o7777 {
        return Err("mode out of range".into());
    }
    if m & 0o400 == 0 {
        return Err("the owner must be able to read the file (e.g. \"0600\")".into());
    }
    Ok(m)
}

/// `http://HOST:PORT/path` (plain HTTP only: the check runs over the SSH connection).
pub(crate) fn parse_http_url(url: &str) -> Result<HttpCheck, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or("only http:// URLs are supported (the check is tunnelled over SSH)")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = if let Some(stripped) = authority.strip_prefix('[') {
        let end = stripped.find(']').ok_or("unclosed `[` in the host")?;
        let host = &stripped[..end];
        let port = match &stripped[end + 1..] {
            "" => 80,
            p => p
                .strip_prefix(':')
                .and_then(|p| p.parse().ok())
                .ok_or("bad port")?,
        };
        (host.to_string(), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (
                h.to_string(),
                p.parse().map_err(|_| format!("bad port `{p}`"))?,
            ),
            None => (authority.to_string(), 80),
        }
    };
    if host.is_empty() {
        return Err("no host in the URL".into());
    }
    Ok(HttpCheck {
        host,
        port,
        path: path.to_string(),
        url: url.to_string(),
    })
}
