//! Host certificates (sshd's `HostCertificate`), judged as OpenSSH judges them, pure (the
//! clock is a parameter): signed by a key that a known_hosts `@cert-authority` line trusts for
//! this host, a host (not user) certificate, valid now, the host's name among its principals
//! (wildcards allowed; none listed means any host), no critical options. A certificate whose
//! signer no `@cert-authority` line trusts is not an error: its plain key is then checked as
//! any host key is, as ssh does. Revocation (of the certificate's key or its CA) is checked by
//! the caller with the host keys' own rules.

use russh::keys::ssh_key::{Certificate, certificate::CertType};
use russh::keys::{HashAlg, PublicKey};

use super::known_hosts;

/// What the known_hosts files say of a host certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum CertVerdict {
    /// Signed by the CA on this 1-based `line` of file number `file`, and valid.
    Trusted {
        file: usize,
        line: usize,
        ca: PublicKey,
    },
    /// No `@cert-authority` line for this host holds its signer.
    NoAuthority,
    /// A trusted CA signed it, but it is not valid here and now: why.
    Invalid { ca: PublicKey, reason: String },
}

/// Judge `cert`, presented by `host:port` (the name keys are recorded under: HostKeyAlias or
/// the address), at `now` (seconds since the epoch), against the known_hosts files' contents.
pub(super) fn judge(
    cert: &Certificate,
    files: &[&str],
    host: &str,
    port: u16,
    now: u64,
) -> CertVerdict {
    let found = files.iter().enumerate().find_map(|(file, contents)| {
        known_hosts::cert_authorities(contents, host, port)
            .into_iter()
            .find(|(_, ca)| ca.key_data() == cert.signature_key())
            .map(|(line, ca)| (file, line, ca))
    });
    let Some((file, line, ca)) = found else {
        return CertVerdict::NoAuthority;
    };
    match invalid(cert, host, now) {
        Some(reason) => CertVerdict::Invalid { ca, reason },
        None => CertVerdict::Trusted { file, line, ca },
    }
}

/// Why a certificate signed by a trusted CA is still not valid for `host` at `now`.
fn invalid(cert: &Certificate, host: &str, now: u64) -> Option<String> {
    if cert.cert_type() != CertType::Host {
        return Some("it is a user certificate, not a host certificate".into());
    }
    if cert.verify_signature().is_err() {
        return Some("its CA signature does not verify".into());
    }
    let at = |t: u64| {
        humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(t))
    };
    if now < cert.valid_after() {
        return Some(format!("it is not valid before {}", at(cert.valid_after())));
    }
    if now >= cert.valid_before() {
        return Some(format!("it expired at {}", at(cert.valid_before())));
    }
    let principals = cert.valid_principals();
    if !principals.is_empty()
        && !principals
            .iter()
            .any(|p| known_hosts::glob(p.as_bytes(), host.as_bytes()))
    {
        return Some(format!(
            "its principals ({}) do not include {host}",
            principals.join(", ")
        ));
    }
    if !cert.critical_options().is_empty() {
        return Some("it carries critical options, which a host certificate may not".into());
    }
    None
}

/// `SHA256:...` of a CA key, for messages.
pub(super) fn ca_fingerprint(ca: &PublicKey) -> String {
    format!("{} {}", ca.algorithm(), ca.fingerprint(HashAlg::Sha256))
}

#[cfg(test)]
#[path = "host_cert_tests.rs"]
mod tests;
