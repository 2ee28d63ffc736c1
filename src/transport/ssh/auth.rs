//! Public-key authentication as OpenSSH orders it: deploy.toml's `identity` alone when set;
//! else the agent's keys that match an IdentityFile (in IdentityFile order), the agent's other
//! keys (unless IdentitiesOnly), then the IdentityFiles the agent does not hold. Missing files
//! are skipped, an `IdentityFile x.pub` selects the agent's key, and an encrypted file whose
//! key the agent holds needs no passphrase. The agent is IdentityAgent's (a path, `$VAR`,
//! `SSH_AUTH_SOCK`, or `none`), else `$SSH_AUTH_SOCK`. User certificates (CertificateFile,
//! `FILE-cert.pub` beside an identity file, and those the agent holds) are offered just before
//! the plain key they certify, signed by the file's key or by the agent.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use russh::client::Handle;
use russh::keys::agent::AgentIdentity;
use russh::keys::agent::client::AgentClient;
use russh::keys::ssh_key::Certificate;
use russh::keys::{HashAlg, PrivateKey, PrivateKeyWithHashAlg, PublicKey};

use super::known_hosts::fingerprint;
use super::{Handler, PASSPHRASE_ENV, ssh_err};
use crate::config::Host;
use crate::error::{Error, Result};

type Agent = AgentClient<tokio::net::UnixStream>;

/// The key files OpenSSH tries when no IdentityFile is set (those ferry can use).
const DEFAULT_IDENTITIES: [&str; 3] = ["id_rsa", "id_ecdsa", "id_ed25519"];

/// Where the agent is for this host; None: no agent.
pub(crate) fn agent_socket(host: &Host) -> Option<PathBuf> {
    let env = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    match host.ssh.identity_agent.as_deref() {
        Some("none") => None,
        None | Some("SSH_AUTH_SOCK") => env("SSH_AUTH_SOCK").map(PathBuf::from),
        Some(v) if v.starts_with('$') => env(&v[1..]).map(PathBuf::from),
        Some(path) => Some(PathBuf::from(path)),
    }
}

/// The identity files to try, in order: the host's (IdentityFile of the OpenSSH config, or
/// its defaults as resolved) or, when nothing was resolved, OpenSSH's default names.
fn identity_files(host: &Host) -> Vec<PathBuf> {
    if !host.identities.is_empty() {
        return host.identities.clone();
    }
    let Some(home) = std::env::var_os("HOME").map(PathBuf::from) else {
        return Vec::new();
    };
    DEFAULT_IDENTITIES
        .iter()
        .map(|n| home.join(".ssh").join(n))
        .collect()
}

/// The public half of an identity file: the file itself when it is a public key (`x.pub`),
/// else `FILE.pub` beside it.
fn public_half(path: &Path) -> Option<PublicKey> {
    if let Ok(k) = russh::keys::load_public_key(path) {
        return Some(k);
    }
    let mut pub_path = path.as_os_str().to_owned();
    pub_path.push(".pub");
    russh::keys::load_public_key(PathBuf::from(pub_path)).ok()
}

/// Display a path with the home directory written as `~`.
pub(crate) fn tilde(path: &Path) -> String {
    if let Some(home) = std::env::var_os("HOME")
        && let Ok(rest) = path.strip_prefix(&home)
    {
        return format!("~/{}", rest.display());
    }
    path.display().to_string()
}

/// Load a private key; an encrypted key's passphrase comes from FERRY_KEY_PASSPHRASE or a
/// prompt on the terminal, never from the config.
fn load_key(path: &Path) -> Result<PrivateKey> {
    let key_err = |message: String| Error::Key {
        path: path.to_path_buf(),
        message,
    };
    match russh::keys::load_secret_key(path, None) {
        Ok(k) => Ok(k),
        Err(russh::keys::Error::KeyIsEncrypted) => {
            let passphrase = match std::env::var(PASSPHRASE_ENV) {
                Ok(p) => p,
                Err(_) if std::io::IsTerminal::is_terminal(&std::io::stdin()) => {
                    rpassword::prompt_password(format!("Passphrase for {}: ", tilde(path)))
                        .map_err(|e| key_err(format!("cannot read the passphrase: {e}")))?
                }
                Err(_) => {
                    return Err(key_err(format!(
                        "the key is encrypted; set {PASSPHRASE_ENV}, run on a terminal to be asked, or use ssh-agent"
                    )));
                }
            };
            russh::keys::load_secret_key(path, Some(&passphrase))
                .map_err(|e| key_err(format!("cannot decrypt it ({e}); is the passphrase right?")))
        }
        Err(e) => Err(key_err(e.to_string())),
    }
}

async fn rsa_hash(handle: &Handle<Handler>, key: &PublicKey) -> Option<HashAlg> {
    if !key.algorithm().is_rsa() {
        return None;
    }
    match handle.best_supported_rsa_hash().await {
        Ok(Some(h)) => h,
        // The server did not say: rsa-sha2-256 is what every current OpenSSH accepts.
        _ => Some(HashAlg::Sha256),
    }
}

/// One authentication session: what was offered so far, for the error.
struct Attempt<'a> {
    handle: &'a mut Handle<Handler>,
    host: &'a Host,
    tried: Vec<String>,
}

impl Attempt<'_> {
    /// The server closed the connection in the middle: after keys it refused, that is sshd's
    /// MaxAuthTries ("Too many authentication failures" in ssh); before any, a plain SSH error.
    fn lost(&mut self, e: impl std::fmt::Display) -> Error {
        if self.tried.is_empty() {
            return ssh_err(&self.host.name, e);
        }
        self.tried.push(
            "then the server closed the connection: too many authentication failures (sshd's \
             MaxAuthTries; offer fewer keys: IdentitiesOnly yes with the IdentityFile that \
             works, or `identity` in deploy.toml)"
                .to_string(),
        );
        self.rejected()
    }

    fn rejected(&mut self) -> Error {
        Error::Auth {
            host: self.host.name.clone(),
            user: self.host.user.clone(),
            tried: std::mem::take(&mut self.tried),
        }
    }

    /// A key file: the certificates of its key first, then the key.
    async fn with_file(
        &mut self,
        path: &Path,
        key: PrivateKey,
        certs: &[(PathBuf, Certificate)],
    ) -> Result<Option<String>> {
        let key = Arc::new(key);
        for (cert_path, cert) in certs_of(certs, key.public_key()) {
            let label = cert_label(cert_path, cert);
            let result = self
                .handle
                .authenticate_openssh_cert(&self.host.user, key.clone(), cert.clone())
                .await;
            if let Some(done) = self.judged(result, label)? {
                return Ok(Some(done));
            }
        }
        let label = format!(
            "publickey {} ({})",
            tilde(path),
            fingerprint(key.public_key())
        );
        let hash = rsa_hash(self.handle, key.public_key()).await;
        let result = self
            .handle
            .authenticate_publickey(&self.host.user, PrivateKeyWithHashAlg::new(key, hash))
            .await;
        self.judged(result, label)
    }

    /// The server's answer to one offer: Some(label) when it accepted.
    fn judged(
        &mut self,
        result: std::result::Result<russh::client::AuthResult, russh::Error>,
        label: String,
    ) -> Result<Option<String>> {
        match result {
            Ok(r) if r.success() => Ok(Some(label)),
            Ok(_) => {
                self.tried.push(label);
                Ok(None)
            }
            Err(e) => Err(self.lost(e)),
        }
    }

    /// A certificate whose key the agent holds (from a file, or the agent's own), signed by
    /// the agent.
    async fn with_agent_cert(
        &mut self,
        agent: &mut Agent,
        cert: &Certificate,
        label: String,
    ) -> Result<Option<String>> {
        let key = PublicKey::new(cert.public_key().clone(), "");
        let hash = rsa_hash(self.handle, &key).await;
        let result = self
            .handle
            .authenticate_certificate_with(&self.host.user, cert.clone(), hash, agent)
            .await;
        self.agent_judged(result, label)
    }

    /// An agent key: the certificates of it (files', then the agent's), then the key.
    async fn with_agent_key(
        &mut self,
        agent: &mut Agent,
        ids: &AgentIds,
        key: &PublicKey,
        file: Option<&Path>,
        certs: &[(PathBuf, Certificate)],
    ) -> Result<Option<String>> {
        for (path, cert) in certs_of(certs, key) {
            if let Some(m) = self
                .with_agent_cert(agent, cert, cert_label(path, cert))
                .await?
            {
                return Ok(Some(m));
            }
        }
        for cert in ids
            .certs
            .iter()
            .filter(|c| c.public_key() == key.key_data())
        {
            let label = format!("ssh-agent {}", cert_label(Path::new(""), cert));
            if let Some(m) = self.with_agent_cert(agent, cert, label).await? {
                return Ok(Some(m));
            }
        }
        self.with_agent(agent, key, file).await
    }

    async fn with_agent(
        &mut self,
        agent: &mut Agent,
        key: &PublicKey,
        file: Option<&Path>,
    ) -> Result<Option<String>> {
        let label = match file {
            Some(f) => format!("ssh-agent key {} ({})", fingerprint(key), tilde(f)),
            None => format!("ssh-agent key {}", fingerprint(key)),
        };
        let hash = rsa_hash(self.handle, key).await;
        let result = self
            .handle
            .authenticate_publickey_with(&self.host.user, key.clone(), hash, agent)
            .await;
        self.agent_judged(result, label)
    }

    /// The server's answer to an offer the agent signs: [`Self::judged`], and an agent that
    /// refused to sign (locked, or confirming) is noted and passed over.
    fn agent_judged(
        &mut self,
        result: std::result::Result<russh::client::AuthResult, russh::AgentAuthError>,
        label: String,
    ) -> Result<Option<String>> {
        match result {
            Err(russh::AgentAuthError::Key(e)) => {
                self.tried
                    .push(format!("{label}: the agent did not sign: {e}"));
                Ok(None)
            }
            // The session is gone (the server hung up).
            Err(russh::AgentAuthError::Send(e)) => Err(self.lost(e)),
            Ok(r) => self.judged(Ok(r), label),
        }
    }
}

/// The agent's identities: plain keys and certificates, in the agent's order.
#[derive(Default)]
struct AgentIds {
    keys: Vec<PublicKey>,
    certs: Vec<Certificate>,
}

/// The certificates among `certs` that certify `key`.
fn certs_of<'c>(
    certs: &'c [(PathBuf, Certificate)],
    key: &'c PublicKey,
) -> impl Iterator<Item = &'c (PathBuf, Certificate)> {
    certs
        .iter()
        .filter(move |(_, c)| c.public_key() == key.key_data())
}

fn cert_label(path: &Path, cert: &Certificate) -> String {
    let key = PublicKey::new(cert.public_key().clone(), "");
    let from = match path.as_os_str().is_empty() {
        true => String::new(),
        false => format!(" {}", tilde(path)),
    };
    format!(
        "certificate{from} (ID {:?}, {})",
        cert.key_id(),
        fingerprint(&key)
    )
}

/// The user certificates to offer: CertificateFile (in order), and `FILE-cert.pub` beside each
/// identity file, as ssh loads them. Missing or unreadable ones are skipped, as ssh does.
fn certificate_files(host: &Host, identities: &[PathBuf]) -> Vec<(PathBuf, Certificate)> {
    let beside = identities.iter().map(|p| {
        let mut c = p.as_os_str().to_owned();
        c.push("-cert.pub");
        PathBuf::from(c)
    });
    let mut all: Vec<(PathBuf, Certificate)> = Vec::new();
    for path in host.ssh.certificates.iter().cloned().chain(beside) {
        if all.iter().any(|(p, _)| *p == path) {
            continue;
        }
        match std::fs::read_to_string(&path).map(|t| Certificate::from_openssh(t.trim())) {
            Ok(Ok(cert)) => all.push((path, cert)),
            Ok(Err(e)) => tracing::debug!("{}: not a certificate: {e}", tilde(&path)),
            Err(_) => {}
        }
    }
    all
}

async fn agent_ids(host: &Host, tried: &mut Vec<String>) -> Option<(Agent, AgentIds)> {
    let sock = agent_socket(host)?;
    let mut client = match AgentClient::connect_uds(&sock).await {
        Ok(c) => c,
        Err(e) => {
            tried.push(format!("ssh-agent {}: cannot connect: {e}", tilde(&sock)));
            return None;
        }
    };
    match client.request_identities().await {
        Ok(list) => {
            let mut ids = AgentIds::default();
            for id in list {
                match id {
                    AgentIdentity::PublicKey { key, .. } => ids.keys.push(key),
                    AgentIdentity::Certificate { certificate, .. } => ids.certs.push(certificate),
                }
            }
            Some((client, ids))
        }
        Err(e) => {
            tried.push(format!("ssh-agent {}: cannot list keys: {e}", tilde(&sock)));
            None
        }
    }
}

/// Authenticate as `host.user`; Ok: how (for `ferry doctor` and debug logs).
pub(crate) async fn authenticate(handle: &mut Handle<Handler>, host: &Host) -> Result<String> {
    let mut a = Attempt {
        handle,
        host,
        tried: Vec::new(),
    };
    // deploy.toml's `identity`: that key alone (as `ssh -i KEY -o IdentitiesOnly=yes`), and
    // its certificates.
    if let Some(identity) = &host.identity {
        let key = load_key(identity)?;
        let certs = certificate_files(host, std::slice::from_ref(identity));
        return match a.with_file(identity, key, &certs).await? {
            Some(m) => Ok(m),
            None => Err(a.rejected()),
        };
    }
    let paths: Vec<PathBuf> = identity_files(host)
        .into_iter()
        .filter(|p| p.exists())
        .collect();
    let certs = certificate_files(host, &paths);
    let files: Vec<(PathBuf, Option<PublicKey>)> = paths
        .into_iter()
        .map(|p| {
            let public = public_half(&p);
            (p, public)
        })
        .collect();
    let (mut agent, ids) = match agent_ids(host, &mut a.tried).await {
        Some((agent, ids)) => (Some(agent), ids),
        None => (None, AgentIds::default()),
    };
    let in_agent = |public: &Option<PublicKey>| {
        public
            .as_ref()
            .and_then(|p| ids.keys.iter().position(|k| k.key_data() == p.key_data()))
    };
    if let Some(agent) = agent.as_mut() {
        let mut used = vec![false; ids.keys.len()];
        // The agent's keys that match an IdentityFile, in IdentityFile order.
        for (path, public) in &files {
            if let Some(i) = in_agent(public)
                && !used[i]
            {
                used[i] = true;
                let key = &ids.keys[i];
                if let Some(m) = a
                    .with_agent_key(agent, &ids, key, Some(path), &certs)
                    .await?
                {
                    return Ok(m);
                }
            }
        }
        if !host.ssh.identities_only {
            for (i, key) in ids.keys.iter().enumerate() {
                if !used[i]
                    && let Some(m) = a.with_agent_key(agent, &ids, key, None, &certs).await?
                {
                    return Ok(m);
                }
            }
        }
    }
    // The files the agent does not hold.
    for (path, public) in &files {
        if in_agent(public).is_some() {
            continue;
        }
        if russh::keys::load_public_key(path).is_ok() {
            a.tried.push(format!(
                "{}: a public key whose private half is not in the agent",
                tilde(path)
            ));
            continue;
        }
        match load_key(path) {
            Ok(key) => {
                if let Some(m) = a.with_file(path, key, &certs).await? {
                    return Ok(m);
                }
            }
            // A key that cannot be loaded is skipped, as OpenSSH does.
            Err(e) => a.tried.push(e.to_string()),
        }
    }
    Err(a.rejected())
}
