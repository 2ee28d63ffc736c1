//! The values of the options ferry uses: their syntax (checked on every line, as ssh checks
//! them, active or not), the defaults OpenSSH fills in, and the form `ssh -G` prints them in.

use std::collections::BTreeMap;

use super::parse::Line;
use super::resolve::Options;
use super::tokens::{self, Tokens};
use super::{Context, Resolved, SshConfigError};

/// One ProxyJump hop: `[user@]host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Jump {
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
}

/// The default IdentityFiles, in OpenSSH 9.2's order (when no IdentityFile is set).
pub const DEFAULT_IDENTITIES: &[&str] = &[
    "~/.ssh/id_rsa",
    "~/.ssh/id_ecdsa",
    "~/.ssh/id_ecdsa_sk",
    "~/.ssh/id_ed25519",
    "~/.ssh/id_ed25519_sk",
    "~/.ssh/id_xmss",
    "~/.ssh/id_dsa",
];

/// A line's value is well-formed for the option (only the options ferry uses are checked).
pub(crate) fn check(line: &Line) -> Result<(), String> {
    let a = &line.args;
    let one = || match a.len() {
        0 => Err("missing value".to_string()),
        1 => Ok(a[0].as_str()),
        _ => Err(format!("takes one value, not {}", a.len())),
    };
    match line.keyword.as_str() {
        "port" => port(one()?).map(drop),
        "connecttimeout" => match one()? {
            "none" => Ok(()),
            v => seconds(v).map(drop),
        },
        "serveraliveinterval" => seconds(one()?).map(drop),
        "connectionattempts" | "serveralivecountmax" => one()?
            .parse::<u32>()
            .map(drop)
            .map_err(|_| format!("`{}` is not a number", a[0])),
        "identitiesonly" => choice(one()?, &["yes", "no", "true", "false"]),
        "stricthostkeychecking" => choice(
            one()?,
            &["yes", "no", "true", "false", "off", "ask", "accept-new"],
        ),
        "addressfamily" => choice(one()?, &["any", "inet", "inet6"]),
        "canonicalizehostname" => choice(one()?, &["yes", "no", "true", "false", "always"]),
        "canonicalizefallbacklocal" => choice(one()?, &["yes", "no", "true", "false"]),
        "canonicalizemaxdots" => one()?
            .parse::<u32>()
            .map(drop)
            .map_err(|_| format!("`{}` is not a number", a[0])),
        "canonicaldomains" if a.is_empty() => Err("missing value".into()),
        "canonicaldomains" if a.len() > 1 && a.iter().any(|d| d.eq_ignore_ascii_case("none")) => {
            Err("`none` must appear alone".into())
        }
        "hostname" | "user" | "hostkeyalias" | "identityagent" | "identityfile"
        | "certificatefile" | "revokedhostkeys" => one().map(drop),
        "proxyjump" => jumps(one()?).map(drop),
        "userknownhostsfile" | "globalknownhostsfile" | "proxycommand" if a.is_empty() => {
            Err("missing value".into())
        }
        _ => Ok(()),
    }
}

fn choice(v: &str, allowed: &[&str]) -> Result<(), String> {
    if allowed.contains(&v.to_ascii_lowercase().as_str()) {
        Ok(())
    } else {
        Err(format!("`{v}` is not one of {}", allowed.join(", ")))
    }
}

fn port(v: &str) -> Result<u16, String> {
    match v.parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(format!("`{v}` is not a port number (1-65535)")),
    }
}

/// OpenSSH's time format: `30`, `1m`, `1h30m`, `2d` (s m h d w, any case); in seconds.
pub fn seconds(v: &str) -> Result<u64, String> {
    let bad = || format!("`{v}` is not a time (e.g. 30, 30s, 1m, 1h30m)");
    if v.is_empty() {
        return Err(bad());
    }
    let (mut total, mut n, mut digits) = (0u64, 0u64, false);
    for c in v.chars() {
        if let Some(d) = c.to_digit(10) {
            n = n
                .checked_mul(10)
                .and_then(|n| n.checked_add(d.into()))
                .ok_or_else(bad)?;
            digits = true;
            continue;
        }
        let unit = match c.to_ascii_lowercase() {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86400,
            'w' => 604800,
            _ => return Err(bad()),
        };
        if !digits {
            return Err(bad());
        }
        total = total.checked_add(n * unit).ok_or_else(bad)?;
        (n, digits) = (0, false);
    }
    Ok(total + n)
}

/// A ProxyJump value: hops separated by commas, or `none`.
pub fn jumps(v: &str) -> Result<Vec<Jump>, String> {
    if v.eq_ignore_ascii_case("none") {
        return Ok(Vec::new());
    }
    v.split(',').map(hop).collect()
}

fn hop(s: &str) -> Result<Jump, String> {
    let s = s.strip_prefix("ssh://").unwrap_or(s);
    let (user, hp) = match s.rsplit_once('@') {
        Some((u, h)) => (Some(u.to_string()), h),
        None => (None, s),
    };
    let (host, port_s) = if let Some(rest) = hp.strip_prefix('[') {
        let (h, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("`{s}`: `[` without `]`"))?;
        (h, after.strip_prefix(':'))
    } else {
        match hp.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hp, None),
        }
    };
    if host.is_empty() {
        return Err(format!("`{s}` names no host"));
    }
    let port = port_s.map(port).transpose()?;
    Ok(Jump {
        user,
        host: host.to_string(),
        port,
    })
}

/// The last hop's host (%j, and part of %C), empty without ProxyJump.
pub(crate) fn jump_host(v: Option<&str>) -> String {
    v.and_then(|v| jumps(v).ok())
        .and_then(|j| j.last().map(|h| h.host.clone()))
        .unwrap_or_default()
}

/// ProxyJump as `ssh -G` prints it: the hops before the last as written, the last rebuilt.
fn jump_form(v: &str) -> String {
    let (extra, last) = match v.rsplit_once(',') {
        Some((e, l)) => (format!("{e},"), l),
        None => (String::new(), v),
    };
    let Ok(h) = hop(last) else {
        return v.to_string();
    };
    let numeric = h.host.contains(':') || h.host.chars().all(|c| c.is_ascii_digit() || c == '.');
    let host = if numeric {
        format!("[{}]", h.host)
    } else {
        h.host
    };
    let user = h.user.map(|u| format!("{u}@")).unwrap_or_default();
    let port = h.port.map(|p| format!(":{p}")).unwrap_or_default();
    format!("{extra}{user}{host}{port}")
}

/// The defaults filled in and the options ferry uses put in `ssh -G`'s form.
pub(crate) fn finish(
    ctx: &Context,
    opts: Options,
    original: &str,
    hostname: String,
) -> Result<Resolved, SshConfigError> {
    let Options {
        mut values,
        origins,
    } = opts;
    fill_defaults(&mut values, &ctx.local_user, &hostname);
    normalize(&mut values);
    let first = |k: &str| {
        values
            .get(k)
            .and_then(|v| v.first())
            .cloned()
            .unwrap_or_default()
    };
    let tokens = Tokens {
        host: hostname,
        original_host: original.to_string(),
        port: first("port"),
        remote_user: first("user"),
        host_key_alias: values
            .get("hostkeyalias")
            .and_then(|v| v.first().cloned())
            .unwrap_or_else(|| original.to_string()),
        jump_host: jump_host(
            values
                .get("proxyjump")
                .and_then(|v| v.first())
                .map(String::as_str),
        ),
        ..ctx.tokens()
    };
    let err = |k: &str, m: String| match origins.get(k) {
        Some((f, l)) => SshConfigError::at(f, *l, k, m),
        None => SshConfigError::at(&ctx.files[0].0, 0, k, m),
    };
    for k in ["userknownhostsfile", "identityagent"] {
        let Some(v) = values.get_mut(k) else { continue };
        if k == "identityagent" && matches!(v[0].as_str(), "none" | "SSH_AUTH_SOCK") {
            continue;
        }
        for x in v.iter_mut() {
            *x = tokens::path(x, &tokens, &ctx.env).map_err(|m| err(k, m))?;
        }
    }
    Ok(Resolved {
        values,
        origins,
        tokens,
        env: ctx.env.clone(),
    })
}

/// OpenSSH's defaults for the options not set, `hostname` as resolved, and a ProxyJump or
/// ProxyCommand of `none` taken for unset.
fn fill_defaults(values: &mut BTreeMap<String, Vec<String>>, local_user: &str, hostname: &str) {
    let mut put = |k: &str, v: &str| {
        values
            .entry(k.to_string())
            .or_insert_with(|| vec![v.to_string()]);
    };
    put("user", local_user);
    put("port", "22");
    put("addressfamily", "any");
    put("identitiesonly", "no");
    put("stricthostkeychecking", "ask");
    put("connectionattempts", "1");
    put("serveralivecountmax", "3");
    put("serveraliveinterval", "0");
    put("connecttimeout", "none");
    values.insert("hostname".into(), vec![hostname.to_string()]);
    values
        .entry("identityfile".into())
        .or_insert_with(|| DEFAULT_IDENTITIES.iter().map(|s| s.to_string()).collect());
    values
        .entry("globalknownhostsfile".into())
        .or_insert_with(|| {
            vec![
                "/etc/ssh/ssh_known_hosts".into(),
                "/etc/ssh/ssh_known_hosts2".into(),
            ]
        });
    values
        .entry("userknownhostsfile".into())
        .or_insert_with(|| vec!["~/.ssh/known_hosts".into(), "~/.ssh/known_hosts2".into()]);
    for k in ["proxyjump", "proxycommand"] {
        if values
            .get(k)
            .is_some_and(|v| v.len() == 1 && v[0].eq_ignore_ascii_case("none"))
        {
            values.remove(k);
        }
    }
}

/// The first value of the options ferry uses in the form `ssh -G` prints (flags, seconds,
/// lower case, ProxyJump rebuilt).
fn normalize(values: &mut BTreeMap<String, Vec<String>>) {
    let norm = |v: &mut Vec<String>, f: &dyn Fn(&str) -> String| {
        if let Some(x) = v.first_mut() {
            *x = f(x);
        }
    };
    for (k, v) in values.iter_mut() {
        match k.as_str() {
            "identitiesonly" => norm(v, &|x| flag(x, "yes", "no")),
            "stricthostkeychecking" => norm(v, &|x| match x.to_ascii_lowercase().as_str() {
                "yes" | "true" => "true".into(),
                "no" | "false" | "off" => "false".into(),
                o => o.into(),
            }),
            "addressfamily" => norm(v, &|x| x.to_ascii_lowercase()),
            "serveraliveinterval" | "connecttimeout" => norm(v, &|x| match seconds(x) {
                Ok(s) => s.to_string(),
                Err(_) => x.to_string(),
            }),
            "proxyjump" => norm(v, &jump_form),
            _ => {}
        }
    }
}

fn flag(x: &str, yes: &str, no: &str) -> String {
    match x.to_ascii_lowercase().as_str() {
        "yes" | "true" => yes.into(),
        _ => no.into(),
    }
}

/// The options compared with `ssh -G` (those ferry uses), one `key value` line each, in the
/// order ssh prints repeated keys (IdentityFile and CertificateFile one line per value).
pub const COMPARED: &[&str] = &[
    "user",
    "hostname",
    "port",
    "addressfamily",
    "identitiesonly",
    "stricthostkeychecking",
    "connectionattempts",
    "serveralivecountmax",
    "serveraliveinterval",
    "hostkeyalias",
    "identityagent",
    "revokedhostkeys",
    "identityfile",
    "certificatefile",
    "globalknownhostsfile",
    "userknownhostsfile",
    "connecttimeout",
    "proxyjump",
    "proxycommand",
];

pub(crate) fn g_lines(values: &BTreeMap<String, Vec<String>>) -> Vec<String> {
    let mut out = Vec::new();
    for k in COMPARED {
        let Some(v) = values.get(*k) else { continue };
        if matches!(*k, "identityfile" | "certificatefile") {
            out.extend(v.iter().map(|x| format!("{k} {x}")));
        } else {
            out.push(format!("{k} {}", v.join(" ")));
        }
    }
    out
}
