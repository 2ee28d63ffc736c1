//! CanonicalizeHostname as OpenSSH 9.2 does it after the first pass over the files: an
//! address is put in its numeric form (always, as ssh does); a name, when canonicalization is
//! on and the connection is direct (or `always`), with no more dots than CanonicalizeMaxDots,
//! is tried with each of CanonicalDomains (`NAME.DOMAIN.`) and the first that resolves is
//! taken; a name ending in `.` is resolved as it is; none resolving keeps the name
//! (CanonicalizeFallbackLocal yes) or is an error. The files are then read again with the
//! canonical name, so `Match canonical` and `Match final` apply.
//!
//! Not done: CanonicalizePermittedCNAMEs (which needs the CNAME a name resolved through) is
//! refused with its line, while canonicalization is on.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::resolve::Options;
use super::{SshConfigError, World};

/// CanonicalizeHostname.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    No,
    Yes,
    Always,
}

impl Mode {
    pub(crate) fn of(opts: &Options) -> Mode {
        match opts
            .first("canonicalizehostname")
            .map(str::to_ascii_lowercase)
        {
            Some(v) if v == "yes" || v == "true" => Mode::Yes,
            Some(v) if v == "always" => Mode::Always,
            _ => Mode::No,
        }
    }
}

/// The host name after canonicalization (`host`: HostName expanded, or the name given).
pub(crate) fn canonicalize(
    host: &str,
    opts: &Options,
    world: &dyn World,
) -> Result<String, SshConfigError> {
    let mode = Mode::of(opts);
    let family = opts
        .first("addressfamily")
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    let of_family = |a: &IpAddr| match family.as_str() {
        "inet" => a.is_ipv4(),
        "inet6" => a.is_ipv6(),
        _ => true,
    };
    if let Some(a) = address(host) {
        // ssh keeps the address as written when only its case differs, or when it is not of
        // AddressFamily (its numeric lookup fails then).
        if !of_family(&a) {
            return Ok(host.to_string());
        }
        let a = a.to_string();
        return Ok(if a.eq_ignore_ascii_case(host) {
            host.to_string()
        } else {
            a
        });
    }
    let host = host.to_ascii_lowercase();
    if mode == Mode::No {
        return Ok(host);
    }
    if let Some(v) = opts.first("canonicalizepermittedcnames")
        && !v.eq_ignore_ascii_case("none")
    {
        return Err(at(
            opts,
            "canonicalizepermittedcnames",
            "is not supported by ferry (it cannot see the CNAME a name resolves through): \
             remove it, or write the canonical name as HostName"
                .into(),
        ));
    }
    // Names that look like addresses and names a proxy will resolve are left alone.
    let looks_like_address =
        host.contains([':', '%']) || host.chars().all(|c| c.is_ascii_digit() || c == '.');
    let direct = ["proxycommand", "proxyjump"]
        .iter()
        .all(|k| opts.first(k).is_none_or(|v| v.eq_ignore_ascii_case("none")));
    if looks_like_address || (!direct && mode != Mode::Always) {
        return Ok(host);
    }
    let resolves = |name: &str| world.lookup(name).iter().any(of_family);
    looked_up(&host, opts, &resolves)
}

/// A name as CanonicalDomains make it: anchored, or tried with each domain; else the
/// fallback.
fn looked_up(
    host: &str,
    opts: &Options,
    resolves: &dyn Fn(&str) -> bool,
) -> Result<String, SshConfigError> {
    if let Some(bare) = host.strip_suffix('.') {
        if resolves(host) {
            return Ok(bare.to_string());
        }
    } else {
        let max_dots = opts
            .first("canonicalizemaxdots")
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(1);
        if host.matches('.').count() > max_dots {
            return Ok(host.to_string());
        }
        for domain in opts.values.get("canonicaldomains").into_iter().flatten() {
            if domain.eq_ignore_ascii_case("none") {
                break;
            }
            let full = format!("{host}.{domain}.");
            if resolves(&full) {
                return Ok(full.trim_end_matches('.').to_string());
            }
        }
    }
    let fallback = opts
        .first("canonicalizefallbacklocal")
        .is_none_or(|v| matches!(v.to_ascii_lowercase().as_str(), "yes" | "true"));
    if fallback {
        return Ok(host.to_string());
    }
    let domains = opts
        .values
        .get("canonicaldomains")
        .map(|d| d.join(" "))
        .unwrap_or_else(|| "none set".into());
    Err(at(
        opts,
        "canonicalizefallbacklocal",
        format!(
            "could not resolve host \"{host}\" in any of CanonicalDomains ({domains}), and \
             CanonicalizeFallbackLocal is no (as ssh: \"Could not resolve host\")"
        ),
    ))
}

fn at(opts: &Options, key: &str, message: String) -> SshConfigError {
    match opts.origins.get(key) {
        Some((f, l)) => SshConfigError::at(f, *l, key, message),
        None => SshConfigError::at(std::path::Path::new("ssh_config"), 0, key, message),
    }
}

/// A numeric address as the C library reads one: IPv6, or IPv4 in `inet_aton`'s forms
/// (`127.1`, `0x7f.0.0.1`, octal `0177.0.0.1`).
pub(crate) fn address(s: &str) -> Option<IpAddr> {
    if let Ok(a) = s.parse::<Ipv6Addr>() {
        return Some(IpAddr::V6(a));
    }
    let parts: Vec<u32> = s.split('.').map(number).collect::<Option<_>>()?;
    let (last, head) = parts.split_last()?;
    if head.len() > 3 || head.iter().any(|p| *p > 255) {
        return None;
    }
    let room = 32 - 8 * head.len() as u32;
    if room < 32 && *last >> room != 0 {
        return None;
    }
    let mut v: u32 = 0;
    for (i, p) in head.iter().enumerate() {
        v |= p << (24 - 8 * i as u32);
    }
    Some(IpAddr::V4(Ipv4Addr::from(v | last)))
}

/// One part of an `inet_aton` address: decimal, `0x` hex or `0` octal.
fn number(p: &str) -> Option<u32> {
    if p.is_empty() {
        return None;
    }
    let (digits, radix) = if let Some(h) = p.strip_prefix("0x").or(p.strip_prefix("0X")) {
        (h, 16)
    } else if p.len() > 1 && p.starts_with('0') {
        (&p[1..], 8)
    } else {
        (p, 10)
    };
    if digits.is_empty() && radix == 16 {
        return Some(0);
    }
    if !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    u32::from_str_radix(digits, radix).ok()
}
