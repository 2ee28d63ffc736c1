//! The server's host key, checked as OpenSSH checks it: against every known_hosts file of the
//! host (UserKnownHostsFile, GlobalKnownHostsFile, under HostKeyAlias), RevokedHostKeys, and the
//! host key policy (strict, or accept-new recording the key, hashed under HashKnownHosts); a
//! host certificate through `@cert-authority` (see `host_cert`).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use russh::client;
use russh::keys::PublicKey;
use russh::keys::ssh_key::Certificate;

use crate::config::{Host, HostKeyPolicy};
use crate::error::{Error, Result};
use crate::transport::ssh::host_cert::{self, CertVerdict};
use crate::transport::ssh::known_hosts::{self, Verdict};

/// What happened when the server's host key was checked.
#[derive(Debug)]
pub(super) enum KeyOutcome {
    Accepted { fingerprint: String, learned: bool },
    Refused(Box<Error>),
}

pub(super) struct Handler {
    pub(super) host: Host,
    /// The known_hosts files (path, contents), read before connecting: the one ferry records
    /// in first, then the OpenSSH config's other UserKnownHostsFiles and GlobalKnownHostsFiles.
    pub(super) known: Vec<(PathBuf, String)>,
    /// RevokedHostKeys (path, contents).
    pub(super) revoked: Option<(PathBuf, String)>,
    pub(super) outcome: Arc<Mutex<Option<KeyOutcome>>>,
}

/// The known_hosts files of a host, in the order they are read: `known_hosts` (deploy.toml's,
/// or the first UserKnownHostsFile; new keys are recorded there), the other UserKnownHostsFiles,
/// then the GlobalKnownHostsFiles (/etc/ssh/ssh_known_hosts by default).
pub(super) fn known_files(host: &Host) -> Vec<PathBuf> {
    let mut files = vec![host.known_hosts.clone()];
    for p in host
        .ssh
        .user_known_hosts
        .iter()
        .chain(&host.ssh.global_known_hosts)
    {
        if !files.contains(p) && p.as_os_str() != "none" {
            files.push(p.clone());
        }
    }
    files
}

/// The name and port a host's key is recorded under: HostKeyAlias (without a port, as ssh
/// does) or the address.
pub(super) fn key_name(host: &Host) -> (&str, u16) {
    match &host.ssh.host_key_alias {
        Some(alias) => (alias.as_str(), 22),
        None => (host.address.as_str(), host.port),
    }
}

/// Read a known_hosts (or RevokedHostKeys) file; a missing one is empty. Only a regular file
/// (or a symlink to one) is read: a FIFO would block forever, a device could be endless, a
/// directory is a mistake.
pub(super) fn read_known_hosts(host: &Host, path: &Path) -> Result<String> {
    let refuse = |message: String| Error::KnownHosts {
        host: host.name.clone(),
        path: path.to_path_buf(),
        message,
    };
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(String::new()),
        Err(e) => return Err(refuse(e.to_string())),
    };
    if let Some(kind) = not_a_regular_file(&meta.file_type()) {
        return Err(refuse(format!(
            "it is {kind}, not a regular file; ferry reads known_hosts only from a regular file"
        )));
    }
    std::fs::read_to_string(path).map_err(|e| refuse(e.to_string()))
}

/// The magic a binary key revocation list (`ssh-keygen -k`) starts with.
const KRL_MAGIC: &[u8] = b"SSHKRL\n\0";

/// Read a RevokedHostKeys file: OpenSSH's text form. A binary KRL is refused (not ignored: the
/// keys it revokes would be accepted), saying so.
pub(super) fn read_revoked(host: &Host, path: &Path) -> Result<String> {
    if is_krl(&std::fs::read(path).unwrap_or_default()) {
        return Err(Error::KnownHosts {
            host: host.name.clone(),
            path: path.to_path_buf(),
            message:
                "it is a binary key revocation list (ssh-keygen -k), which ferry does not read; \
                      point RevokedHostKeys at a text file of the revoked public keys, one per line"
                    .into(),
        });
    }
    read_known_hosts(host, path)
}

fn is_krl(bytes: &[u8]) -> bool {
    bytes.starts_with(KRL_MAGIC)
}

/// What kind of file this is when it is not a regular file (`a directory`, `a FIFO ...`).
fn not_a_regular_file(t: &std::fs::FileType) -> Option<&'static str> {
    use std::os::unix::fs::FileTypeExt;
    if t.is_file() {
        None
    } else if t.is_dir() {
        Some("a directory")
    } else if t.is_fifo() {
        Some("a FIFO (named pipe)")
    } else if t.is_socket() {
        Some("a socket")
    } else if t.is_char_device() {
        Some("a character device")
    } else if t.is_block_device() {
        Some("a block device")
    } else {
        Some("a special file")
    }
}

impl Handler {
    fn judge(&self, key: &PublicKey) -> KeyOutcome {
        let h = &self.host;
        let fingerprint = known_hosts::fingerprint(key);
        let addr = format!("{}:{}", h.address, h.port);
        let refuse = |e: Error| KeyOutcome::Refused(Box::new(e));
        if let Some((path, contents)) = &self.revoked
            && let Some(line) = known_hosts::revoked_line(contents, key)
        {
            return refuse(Error::HostKeyRevoked {
                host: h.name.clone(),
                addr,
                fingerprint,
                known_hosts: path.clone(),
                line,
            });
        }
        let (name, port) = key_name(h);
        let contents: Vec<&str> = self.known.iter().map(|(_, c)| c.as_str()).collect();
        let (verdict, file) = known_hosts::check_all(&contents, name, port, key);
        let found_in = self.known[file].0.clone();
        match verdict {
            Verdict::Known { .. } => KeyOutcome::Accepted {
                fingerprint,
                learned: false,
            },
            Verdict::Changed { line } | Verdict::OtherAlgorithm { line, .. } => {
                refuse(Error::HostKeyChanged {
                    host: h.name.clone(),
                    addr,
                    fingerprint,
                    known_hosts: found_in,
                    line,
                })
            }
            Verdict::Revoked { line } => refuse(Error::HostKeyRevoked {
                host: h.name.clone(),
                addr,
                fingerprint,
                known_hosts: found_in,
                line,
            }),
            Verdict::Unknown => {
                let line_to_add = known_hosts::entry_line(name, port, key);
                // HashKnownHosts: what is recorded hides the name (the hint shows it plain).
                let line_to_record = if h.ssh.hash_known_hosts {
                    let mut salt = [0u8; 20];
                    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut salt)
                        .map(|()| known_hosts::hashed_entry_line(name, port, key, &salt))
                        .unwrap_or_else(|_| line_to_add.clone())
                } else {
                    line_to_add.clone()
                };
                match h.host_key_policy {
                    HostKeyPolicy::Strict => refuse(Error::HostKeyUnknown {
                        host: h.name.clone(),
                        addr,
                        fingerprint,
                        known_hosts: h.known_hosts.clone(),
                        line_to_add,
                    }),
                    HostKeyPolicy::AcceptNew => {
                        match append_line(&h.known_hosts, &line_to_record) {
                            Ok(()) => {
                                tracing::warn!(
                                    "{}: recorded new host key {fingerprint} in {}",
                                    h.name,
                                    h.known_hosts.display()
                                );
                                KeyOutcome::Accepted {
                                    fingerprint,
                                    learned: true,
                                }
                            }
                            Err(e) => refuse(Error::KnownHosts {
                                host: h.name.clone(),
                                path: h.known_hosts.clone(),
                                message: format!("cannot record the new host key: {e}"),
                            }),
                        }
                    }
                }
            }
        }
    }
}

impl Handler {
    /// A host certificate: trusted through a `@cert-authority` line, refused when that CA
    /// signed it but it is not valid, else its plain key is judged as any host key (as ssh
    /// does when no CA line holds the signer).
    fn judge_certificate(&self, cert: &Certificate) -> KeyOutcome {
        let h = &self.host;
        let key = PublicKey::new(cert.public_key().clone(), "");
        let (name, port) = key_name(h);
        let contents: Vec<&str> = self.known.iter().map(|(_, c)| c.as_str()).collect();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let addr = format!("{}:{}", h.address, h.port);
        let refuse = |e: Error| KeyOutcome::Refused(Box::new(e));
        match host_cert::judge(cert, &contents, name, port, now) {
            CertVerdict::NoAuthority => self.judge(&key),
            CertVerdict::Invalid { ca, reason } => refuse(Error::HostCertInvalid {
                host: h.name.clone(),
                addr,
                fingerprint: known_hosts::fingerprint(&key),
                ca: host_cert::ca_fingerprint(&ca),
                reason,
            }),
            CertVerdict::Trusted { file, line, ca } => {
                for k in [&key, &ca] {
                    if let Some(e) = self.revoked(k) {
                        return refuse(e);
                    }
                }
                tracing::debug!(
                    "{}: host certificate {} signed by CA {} ({}:{line})",
                    h.name,
                    cert.key_id(),
                    host_cert::ca_fingerprint(&ca),
                    self.known[file].0.display()
                );
                KeyOutcome::Accepted {
                    fingerprint: format!(
                        "{} (certificate signed by CA {})",
                        known_hosts::fingerprint(&key),
                        host_cert::ca_fingerprint(&ca)
                    ),
                    learned: false,
                }
            }
        }
    }

    /// Is this key (a host's, or a CA's) revoked: by RevokedHostKeys, or `@revoked` in any
    /// known_hosts file?
    fn revoked(&self, key: &PublicKey) -> Option<Error> {
        let h = &self.host;
        let found = self
            .revoked
            .iter()
            .find_map(|(path, c)| Some((path, known_hosts::revoked_line(c, key)?)))
            .or_else(|| {
                self.known
                    .iter()
                    .find_map(|(path, c)| Some((path, known_hosts::revoked_anywhere(c, key)?)))
            });
        found.map(|(path, line)| Error::HostKeyRevoked {
            host: h.name.clone(),
            addr: format!("{}:{}", h.address, h.port),
            fingerprint: known_hosts::fingerprint(key),
            known_hosts: path.clone(),
            line,
        })
    }
}

/// Append a line to known_hosts (creating the file 0600 and its directory 0700 if needed).
fn append_line(path: &Path, line: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
        && !dir.exists()
    {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    let existing = std::fs::read(path).unwrap_or_default();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)?;
    if !existing.is_empty() && !existing.ends_with(b"\n") {
        f.write_all(b"\n")?;
    }
    f.write_all(format!("{line}\n").as_bytes())?;
    f.sync_all()
}

impl client::Handler for Handler {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        server_public_key: &russh::keys::PublicKeyOrCertificate,
    ) -> std::result::Result<bool, Self::Error> {
        let outcome = match server_public_key {
            russh::keys::PublicKeyOrCertificate::PublicKey { key, .. } => self.judge(key),
            russh::keys::PublicKeyOrCertificate::Certificate(cert) => self.judge_certificate(cert),
        };
        let ok = matches!(outcome, KeyOutcome::Accepted { .. });
        *self.outcome.lock().unwrap() = Some(outcome);
        Ok(ok)
    }
}

#[cfg(test)]
mod krl_tests {
    #[test]
    fn a_binary_krl_is_told_from_a_text_list() {
        assert!(super::is_krl(b"SSHKRL\n\0\0\0\0\x01rest"));
        assert!(!super::is_krl(b"ssh-ed25519 AAAAC3Nza... revoked\n"));
        assert!(!super::is_krl(b""));
    }
}
