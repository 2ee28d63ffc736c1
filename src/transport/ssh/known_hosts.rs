//! OpenSSH `known_hosts` files: matching a host and its key, pure.
//!
//! Supports plain and `[host]:port` patterns, comma lists, `*`/`?` wildcards, `!` negation,
//! hashed `|1|salt|hash` entries, `@revoked` markers and `@cert-authority` lines (the CAs
//! whose host certificates are trusted for the hosts they match; see `host_cert`). Line
//! numbers count every line of the file, so the line an error names is the line a user opens
//! in an editor.

use data_encoding::BASE64;
use hmac::{Hmac, KeyInit, Mac};
use russh::keys::ssh_key::{self, HashAlg, PublicKey};

/// What known_hosts says of a host's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The key is recorded for this host (on this 1-based line).
    Known { line: usize },
    /// The host is not in the file.
    Unknown,
    /// The host is recorded with another key of the same algorithm.
    Changed { line: usize },
    /// The host is recorded only with keys of other algorithms: treated as a changed key.
    OtherAlgorithm { line: usize, algorithm: String },
    /// The key is marked `@revoked`.
    Revoked { line: usize },
}

/// The host pattern OpenSSH writes: `host` for port 22, `[host]:port` otherwise.
pub fn host_pattern(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    }
}

/// The line to add to known_hosts for this host and key.
pub fn entry_line(host: &str, port: u16, key: &PublicKey) -> String {
    let openssh = key.to_openssh().unwrap_or_default();
    // to_openssh gives "ALG BASE64 [COMMENT]"; drop the comment.
    let mut parts = openssh.split_whitespace();
    let alg = parts.next().unwrap_or_default();
    let b64 = parts.next().unwrap_or_default();
    format!("{} {alg} {b64}", host_pattern(host, port))
}

/// The line to add with the host name hashed, as OpenSSH writes it under `HashKnownHosts yes`:
/// `|1|base64(salt)|base64(HMAC-SHA1(salt, name))` (the salt: 20 random bytes).
pub fn hashed_entry_line(host: &str, port: u16, key: &PublicKey, salt: &[u8; 20]) -> String {
    let plain = entry_line(host, port, key);
    let (name, rest) = plain.split_once(' ').unwrap_or((&plain, ""));
    let mut mac = <Hmac<sha1::Sha1> as KeyInit>::new_from_slice(salt).expect("any key length");
    mac.update(name.as_bytes());
    let hash = mac.finalize().into_bytes();
    format!(
        "|1|{}|{} {rest}",
        BASE64.encode(salt),
        BASE64.encode(hash.as_slice())
    )
}

/// `SHA256:...` fingerprint, as `ssh-keygen -l` prints it.
pub fn fingerprint(key: &PublicKey) -> String {
    format!("{} {}", key.algorithm(), key.fingerprint(HashAlg::Sha256))
}

struct Entry<'a> {
    line: usize,
    revoked: bool,
    /// `@cert-authority`: the key is a CA's, not the host's.
    authority: bool,
    patterns: &'a str,
    key: Option<PublicKey>,
}

/// The host-key entries: plain and `@revoked` lines.
fn entries(contents: &str) -> impl Iterator<Item = Entry<'_>> {
    all_entries(contents).filter(|e| !e.authority)
}

fn all_entries(contents: &str) -> impl Iterator<Item = Entry<'_>> {
    contents.lines().enumerate().filter_map(|(i, raw)| {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            return None;
        }
        let mut fields = line.split_whitespace();
        let mut first = fields.next()?;
        let (mut revoked, mut authority) = (false, false);
        if first.starts_with('@') {
            match first {
                "@revoked" => revoked = true,
                "@cert-authority" => authority = true,
                _ => return None, // unknown markers, as ssh skips them
            }
            first = fields.next()?;
        }
        let alg = fields.next()?;
        let b64 = fields.next()?;
        let key = PublicKey::from_openssh(&format!("{alg} {b64}")).ok();
        Some(Entry {
            line: i + 1,
            revoked,
            authority,
            patterns: first,
            key,
        })
    })
}

/// Does a glob (`*`, `?`) match the text?
pub(super) fn glob(pattern: &[u8], text: &[u8]) -> bool {
    match (pattern.first(), text.first()) {
        (None, None) => true,
        (Some(b'*'), _) => {
            glob(&pattern[1..], text) || (!text.is_empty() && glob(pattern, &text[1..]))
        }
        (Some(b'?'), Some(_)) => glob(&pattern[1..], &text[1..]),
        (Some(p), Some(t)) if p.eq_ignore_ascii_case(t) => glob(&pattern[1..], &text[1..]),
        _ => false,
    }
}

fn hashed_matches(entry: &str, name: &str) -> bool {
    let mut parts = entry.trim_start_matches("|1|").split('|');
    let (Some(salt), Some(hash)) = (parts.next(), parts.next()) else {
        return false;
    };
    let (Ok(salt), Ok(hash)) = (
        BASE64.decode(salt.as_bytes()),
        BASE64.decode(hash.as_bytes()),
    ) else {
        return false;
    };
    let Ok(mut mac) = <Hmac<sha1::Sha1> as KeyInit>::new_from_slice(&salt) else {
        return false;
    };
    mac.update(name.as_bytes());
    mac.verify_slice(&hash).is_ok()
}

/// Do the comma-separated patterns of a line match this host name (`host` or `[host]:port`)?
fn patterns_match(patterns: &str, name: &str) -> bool {
    let mut matched = false;
    for p in patterns.split(',') {
        if p.starts_with("|1|") {
            if hashed_matches(p, name) {
                matched = true;
            }
        } else if let Some(neg) = p.strip_prefix('!') {
            if glob(neg.as_bytes(), name.as_bytes()) {
                return false;
            }
        } else if glob(p.as_bytes(), name.as_bytes()) {
            matched = true;
        }
    }
    matched
}

/// Judge `key` presented by `host:port` against the file's contents.
pub fn check(contents: &str, host: &str, port: u16, key: &PublicKey) -> Verdict {
    let name = host_pattern(host, port);
    let mut changed = None;
    let mut other = None;
    let mut known = None;
    for e in entries(contents) {
        if !patterns_match(e.patterns, &name) {
            continue;
        }
        let Some(recorded) = &e.key else { continue };
        let same = recorded.key_data() == key.key_data();
        if e.revoked {
            if same {
                return Verdict::Revoked { line: e.line };
            }
            continue;
        }
        if same {
            known.get_or_insert(e.line);
        } else if recorded.algorithm() == key.algorithm() {
            changed.get_or_insert(e.line);
        } else {
            other.get_or_insert((e.line, recorded.algorithm().to_string()));
        }
    }
    match (known, changed, other) {
        (Some(line), _, _) => Verdict::Known { line },
        (None, Some(line), _) => Verdict::Changed { line },
        (None, None, Some((line, algorithm))) => Verdict::OtherAlgorithm { line, algorithm },
        (None, None, None) => Verdict::Unknown,
    }
}

/// [`check`] over several files (UserKnownHostsFile, then GlobalKnownHostsFile), as OpenSSH
/// reads them: a revoked key anywhere refuses, a match anywhere accepts, else the first
/// changed entry is reported. Returns the verdict and the index of the file it came from.
pub fn check_all(files: &[&str], host: &str, port: u16, key: &PublicKey) -> (Verdict, usize) {
    let verdicts: Vec<Verdict> = files.iter().map(|c| check(c, host, port, key)).collect();
    let find = |f: fn(&Verdict) -> bool| verdicts.iter().position(f);
    let pick = find(|v| matches!(v, Verdict::Revoked { .. }))
        .or_else(|| find(|v| matches!(v, Verdict::Known { .. })))
        .or_else(|| find(|v| matches!(v, Verdict::Changed { .. })))
        .or_else(|| find(|v| matches!(v, Verdict::OtherAlgorithm { .. })));
    match pick {
        Some(i) => (verdicts[i].clone(), i),
        None => (Verdict::Unknown, 0),
    }
}

/// The `@cert-authority` keys for `host:port`: (1-based line, CA key), in file order.
pub fn cert_authorities(contents: &str, host: &str, port: u16) -> Vec<(usize, PublicKey)> {
    let name = host_pattern(host, port);
    all_entries(contents)
        .filter(|e| e.authority && patterns_match(e.patterns, &name))
        .filter_map(|e| Some((e.line, e.key?)))
        .collect()
}

/// Is this key marked `@revoked` in the file, for any host? (A revoked CA key is refused
/// whatever host it signs for.) The 1-based line.
pub fn revoked_anywhere(contents: &str, key: &PublicKey) -> Option<usize> {
    entries(contents)
        .filter(|e| e.revoked)
        .find(|e| {
            e.key
                .as_ref()
                .is_some_and(|k| k.key_data() == key.key_data())
        })
        .map(|e| e.line)
}

/// The 1-based line of a RevokedHostKeys file (OpenSSH's text form: one public key per line,
/// `#` comments) that lists this key.
pub fn revoked_line(contents: &str, key: &PublicKey) -> Option<usize> {
    contents.lines().enumerate().find_map(|(i, l)| {
        let l = l.trim();
        if l.is_empty() || l.starts_with('#') {
            return None;
        }
        let listed = PublicKey::from_openssh(l).ok()?;
        (listed.key_data() == key.key_data()).then_some(i + 1)
    })
}

/// The key algorithms recorded for a host, in file order, so the client can ask the server for
/// a key it can verify (OpenSSH does the same).
pub fn known_algorithms(contents: &str, host: &str, port: u16) -> Vec<ssh_key::Algorithm> {
    let name = host_pattern(host, port);
    let mut algs = Vec::new();
    for e in entries(contents) {
        if e.revoked || !patterns_match(e.patterns, &name) {
            continue;
        }
        if let Some(k) = e.key {
            let alg = k.algorithm();
            if !algs.contains(&alg) {
                algs.push(alg);
            }
        }
    }
    algs
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED1: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINVsODFyfzr+SQd5MqMcY5tG9EjoapjNhk0qkhtZqDdu";
    const ED2: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIK0BG8XCxo5xiN26uIatvM0Q/ptL/0otfa/Iiwa7AhHG";
    const ECDSA: &str = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBB+/ueGPky2Vde9BMHyzqwNfbSkGs9LE7X9tI+YqsamX4ZFnvqAS1w1voQNFMVexhdfzvW1iC9vOS2WLcZqozu8=";

    fn key(s: &str) -> PublicKey {
        PublicKey::from_openssh(s).unwrap()
    }

    /// Several files: a match in a later file accepts, a revoked key anywhere refuses, a
    /// changed entry is reported with the file it is in, nothing anywhere is unknown.
    #[test]
    fn several_files_are_read_as_ssh_reads_them() {
        let user = format!("other.example {ED1}\n");
        let global = format!("h.example {ED1}\n");
        assert_eq!(
            check_all(&[&user, &global], "h.example", 22, &key(ED1)),
            (Verdict::Known { line: 1 }, 1)
        );
        let changed = format!("h.example {ED2}\n");
        assert_eq!(
            check_all(&[&user, &changed], "h.example", 22, &key(ED1)),
            (Verdict::Changed { line: 1 }, 1)
        );
        // Known in one file, changed in another: known wins (as ssh).
        assert_eq!(
            check_all(&[&changed, &global], "h.example", 22, &key(ED1)),
            (Verdict::Known { line: 1 }, 1)
        );
        let revoked = format!("# x\n@revoked * {ED1}\n");
        assert_eq!(
            check_all(&[&global, &revoked], "h.example", 22, &key(ED1)),
            (Verdict::Revoked { line: 2 }, 1)
        );
        assert_eq!(
            check_all(&[&user, ""], "h.example", 22, &key(ED1)),
            (Verdict::Unknown, 0)
        );
    }

    #[test]
    fn revoked_host_keys_lists_keys_one_per_line() {
        let file = format!("# revoked 2026-11\n\n{ED2} old-host\n{ED1}\n");
        assert_eq!(revoked_line(&file, &key(ED1)), Some(4));
        assert_eq!(revoked_line(&file, &key(ED2)), Some(3));
        assert_eq!(revoked_line(&file, &key(ECDSA)), None);
        assert_eq!(revoked_line("not a key\n", &key(ED1)), None);
    }

    /// A hashed line matches its host and port only, and does not show the name.
    #[test]
    fn hashed_entry_lines_match_their_host_only() {
        let line = hashed_entry_line("h.example", 2222, &key(ED1), &[7u8; 20]);
        assert!(
            line.starts_with("|1|") && !line.contains("h.example"),
            "{line}"
        );
        assert_eq!(
            check(&line, "h.example", 2222, &key(ED1)),
            Verdict::Known { line: 1 }
        );
        assert_eq!(check(&line, "h.example", 22, &key(ED1)), Verdict::Unknown);
        assert_eq!(check(&line, "other", 2222, &key(ED1)), Verdict::Unknown);
    }

    #[test]
    fn plain_and_port_entries() {
        let file = format!("# comment\n\nexample.com {ED1}\n[example.com]:2222 {ED2}\n");
        assert_eq!(
            check(&file, "example.com", 22, &key(ED1)),
            Verdict::Known { line: 3 }
        );
        assert_eq!(
            check(&file, "example.com", 2222, &key(ED2)),
            Verdict::Known { line: 4 }
        );
        assert_eq!(
            check(&file, "example.com", 2222, &key(ED1)),
            Verdict::Changed { line: 4 }
        );
        assert_eq!(check(&file, "other.com", 22, &key(ED1)), Verdict::Unknown);
    }

    #[test]
    fn comma_lists_wildcards_negation() {
        let file = format!("a.example,b.example {ED1}\n*.corp,!bad.corp {ED2}\n");
        assert_eq!(
            check(&file, "b.example", 22, &key(ED1)),
            Verdict::Known { line: 1 }
        );
        assert_eq!(
            check(&file, "x.corp", 22, &key(ED2)),
            Verdict::Known { line: 2 }
        );
        assert_eq!(check(&file, "bad.corp", 22, &key(ED2)), Verdict::Unknown);
    }

    #[test]
    fn hashed_entries() {
        // `ssh-keygen -H` style entry for "[127.0.0.1]:2222", computed with HMAC-SHA1.
        let salt = [7u8; 20];
        let mut mac = <Hmac<sha1::Sha1> as KeyInit>::new_from_slice(&salt).unwrap();
        mac.update(b"[127.0.0.1]:2222");
        let hash = mac.finalize().into_bytes();
        let line = format!(
            "|1|{}|{} {ED1}\n",
            BASE64.encode(&salt),
            BASE64.encode(&hash)
        );
        assert_eq!(
            check(&line, "127.0.0.1", 2222, &key(ED1)),
            Verdict::Known { line: 1 }
        );
        assert_eq!(check(&line, "127.0.0.1", 22, &key(ED1)), Verdict::Unknown);
        assert_eq!(
            check(&line, "127.0.0.1", 2222, &key(ED2)),
            Verdict::Changed { line: 1 }
        );
    }

    #[test]
    fn other_algorithm_and_revoked() {
        let file = format!("h {ECDSA}\n");
        assert_eq!(
            check(&file, "h", 22, &key(ED1)),
            Verdict::OtherAlgorithm {
                line: 1,
                algorithm: "ecdsa-sha2-nistp256".into()
            }
        );
        let file = format!("@revoked * {ED1}\nh {ED1}\n");
        assert_eq!(
            check(&file, "h", 22, &key(ED1)),
            Verdict::Revoked { line: 1 }
        );
        assert_eq!(
            check(&file, "h", 22, &key(ED2)),
            Verdict::Changed { line: 2 }
        );
    }

    #[test]
    fn any_matching_key_wins_over_a_changed_one() {
        let file = format!("h {ED2}\nh {ED1}\n");
        assert_eq!(check(&file, "h", 22, &key(ED1)), Verdict::Known { line: 2 });
    }

    #[test]
    fn known_algorithms_in_file_order() {
        let file = format!("h {ECDSA}\nh {ED1}\nother {ED2}\n");
        let algs: Vec<String> = known_algorithms(&file, "h", 22)
            .iter()
            .map(|a| a.to_string())
            .collect();
        assert_eq!(algs, vec!["ecdsa-sha2-nistp256", "ssh-ed25519"]);
    }

    #[test]
    fn entry_lines() {
        assert_eq!(entry_line("h", 22, &key(ED1)), format!("h {ED1}"));
        assert_eq!(entry_line("h", 2022, &key(ED1)), format!("[h]:2022 {ED1}"));
        assert!(fingerprint(&key(ED1)).starts_with("ssh-ed25519 SHA256:"));
    }
}
