//! The `%` tokens and `${ENV}` references of ssh_config values, and `~` at the start of a
//! path, expanded as OpenSSH expands them. An unknown token or an unset variable is an error.

use std::collections::BTreeMap;

use sha1::{Digest, Sha1};

/// The values the tokens stand for, for one host.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    /// %h: the remote host name (HostName, expanded).
    pub host: String,
    /// %n: the name as given (deploy.toml's address).
    pub original_host: String,
    /// %p
    pub port: String,
    /// %r: the remote user.
    pub remote_user: String,
    /// %u: the local user.
    pub local_user: String,
    /// %d: the local user's home directory.
    pub home: String,
    /// %l: the local host name; %L its first component.
    pub local_host: String,
    /// %i: the local uid.
    pub uid: u32,
    /// %k: HostKeyAlias, else the name as given.
    pub host_key_alias: String,
    /// %j: the last ProxyJump hop's host, empty without one.
    pub jump_host: String,
}

impl Tokens {
    /// %C: the hex SHA-1 of %l%h%p%r, as OpenSSH 9.2 hashes it (`ssh -G` shows that its
    /// hash leaves the jump host out, in paths and in `Match exec` alike).
    pub fn connection_hash(&self) -> String {
        let mut h = Sha1::new();
        for part in [&self.local_host, &self.host, &self.port, &self.remote_user] {
            h.update(part.as_bytes());
        }
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }

    fn short_local_host(&self) -> &str {
        self.local_host.split('.').next().unwrap_or("")
    }

    fn value(&self, c: char) -> Option<String> {
        Some(match c {
            '%' => "%".into(),
            'h' => self.host.clone(),
            'n' => self.original_host.clone(),
            'p' => self.port.clone(),
            'r' => self.remote_user.clone(),
            'u' => self.local_user.clone(),
            'd' => self.home.clone(),
            'l' => self.local_host.clone(),
            'L' => self.short_local_host().into(),
            'i' => self.uid.to_string(),
            'k' => self.host_key_alias.clone(),
            'j' => self.jump_host.clone(),
            'C' => self.connection_hash(),
            'T' => "NONE".into(),
            _ => return None,
        })
    }
}

/// `%x` tokens (those of `allowed`, plus `%%`) and `${NAME}` from `env`, in one pass.
pub fn expand(
    s: &str,
    tokens: &Tokens,
    allowed: &str,
    env: &BTreeMap<String, String>,
) -> Result<String, String> {
    expand_with(s, tokens, allowed, Some(env))
}

/// The tokens of ProxyCommand (`%h %n %p %r`, and `%%`); `${...}` is left as written (ssh does
/// not expand environment variables there: the shell that runs the command does).
pub fn proxy_command(s: &str, tokens: &Tokens) -> Result<String, String> {
    expand_with(s, tokens, "hnpr", None)
}

fn expand_with(
    s: &str,
    tokens: &Tokens,
    allowed: &str,
    env: Option<&BTreeMap<String, String>>,
) -> Result<String, String> {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '%' => {
                let t = chars
                    .next()
                    .ok_or("`%` at the end: write `%%` for a percent sign")?;
                match tokens.value(t) {
                    Some(v) if t == '%' || allowed.contains(t) => out.push_str(&v),
                    _ => return Err(format!("unknown token `%{t}`")),
                }
            }
            '$' if env.is_some() && chars.as_str().starts_with('{') => {
                let env = env.expect("checked");
                let rest = &chars.as_str()[1..];
                let end = rest.find('}').ok_or("`${` without a closing `}`")?;
                let name = &rest[..end];
                let v = env
                    .get(name)
                    .ok_or_else(|| format!("environment variable `{name}` is not set"))?;
                out.push_str(v);
                chars = rest[end + 1..].chars();
            }
            _ => out.push(c),
        }
    }
    Ok(out)
}

/// The tokens paths take (IdentityFile, CertificateFile, UserKnownHostsFile, IdentityAgent...).
pub const PATH_TOKENS: &str = "CdhijkLlnpru";

/// `~` or `~/...` at the start, against `home`.
pub fn tilde(s: &str, home: &str) -> String {
    if s == "~" {
        home.to_string()
    } else if let Some(rest) = s.strip_prefix("~/") {
        format!("{}/{rest}", home.trim_end_matches('/'))
    } else {
        s.to_string()
    }
}

/// A path option as ssh uses it: `~`, then tokens and environment variables.
pub fn path(s: &str, tokens: &Tokens, env: &BTreeMap<String, String>) -> Result<String, String> {
    expand(&tilde(s, &tokens.home), tokens, PATH_TOKENS, env)
}
