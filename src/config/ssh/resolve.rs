//! Which options apply to one host: the files in order, `Host` and `Match` deciding which lines
//! count, the first value of each option winning, `Include` read in place, and a second pass
//! when a `Match final` or CanonicalizeHostname asked for one (Host patterns then match the
//! expanded, canonicalized HostName).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::canonical;
use super::parse::{Line, parse};
use super::tokens::{self, Tokens};
use super::{Context, Resolved, SshConfigError, World, keywords, values};

/// OpenSSH's limit on nested Includes.
const MAX_DEPTH: usize = 16;

/// The options set so far: the first value of each, and where it came from.
#[derive(Debug, Default)]
pub(crate) struct Options {
    pub(crate) values: BTreeMap<String, Vec<String>>,
    pub(crate) origins: BTreeMap<String, (PathBuf, usize)>,
}

impl Options {
    pub(crate) fn first(&self, key: &str) -> Option<&str> {
        self.values
            .get(key)
            .and_then(|v| v.first())
            .map(String::as_str)
    }
}

struct Pass<'a> {
    ctx: &'a Context,
    world: &'a dyn World,
    /// What `Host` patterns match: the name given (lowercase), or in the final pass HostName.
    host: String,
    original: String,
    final_pass: bool,
    want_final: bool,
    opts: Options,
}

/// Resolve `host` (the name as given) against the context's files; `user` and `port`, when
/// given, are set before the files are read (as ssh's `-l` and `-p`).
pub(crate) fn resolve(
    ctx: &Context,
    world: &dyn World,
    host: &str,
    user: Option<&str>,
    port: Option<u16>,
) -> Result<Resolved, SshConfigError> {
    let given = host;
    let host = host.to_ascii_lowercase();
    let mut opts = Options::default();
    if let Some(u) = user {
        opts.values.insert("user".into(), vec![u.to_string()]);
    }
    if let Some(p) = port {
        opts.values.insert("port".into(), vec![p.to_string()]);
    }
    let mut pass = Pass {
        ctx,
        world,
        host: host.clone(),
        original: host.clone(),
        final_pass: false,
        want_final: false,
        opts,
    };
    pass.files()?;
    // An address keeps its case as given (ssh lowercases names only).
    let named = match pass.opts.first("hostname") {
        Some(_) => pass.hostname(),
        None => given.to_string(),
    };
    let hostname = canonical::canonicalize(&named, &pass.opts, world)?;
    let mode = canonical::Mode::of(&pass.opts);
    if !hostname.eq_ignore_ascii_case(&named) && !pass.opts.origins.contains_key("hostname") {
        // The canonical name (or address) is where ssh connects: it counts as set, where it
        // was asked for.
        let origin = match pass.opts.origins.get("canonicalizehostname") {
            Some(o) => o.clone(),
            None => (
                ctx.files.first().map(|f| f.0.clone()).unwrap_or_default(),
                0,
            ),
        };
        pass.opts.origins.insert("hostname".into(), origin);
    }
    if pass.want_final || mode != canonical::Mode::No {
        pass.final_pass = true;
        pass.host = hostname.clone();
        pass.opts
            .values
            .insert("hostname".into(), vec![hostname.clone()]);
        pass.files()?;
    }
    values::finish(ctx, pass.opts, &host, hostname)
}

impl Pass<'_> {
    fn files(&mut self) -> Result<(), SshConfigError> {
        for (file, base) in &self.ctx.files {
            match self.world.read(file) {
                Ok(text) => {
                    let mut active = true;
                    self.file(file, &text, base, &mut active, false, 0)?;
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(SshConfigError::read(file, e)),
            }
        }
        Ok(())
    }

    /// HostName with %h expanded (or the name given).
    fn hostname(&self) -> String {
        match self.opts.first("hostname") {
            Some(h) => h
                .replace("%%", "\u{0}")
                .replace("%h", &self.host)
                .replace('\u{0}', "%"),
            None => self.host.clone(),
        }
    }

    fn file(
        &mut self,
        path: &Path,
        text: &str,
        base: &Path,
        active: &mut bool,
        never_match: bool,
        depth: usize,
    ) -> Result<(), SshConfigError> {
        for line in parse(text, path)? {
            let at = |m: String| SshConfigError::at(path, line.line, &line.keyword, m);
            match line.keyword.as_str() {
                "host" => *active = !never_match && self.host_line(&line.args).map_err(at)?,
                "match" => {
                    let m = self.match_line(&line.args).map_err(at)?;
                    *active = !never_match && m;
                }
                "include" => {
                    if depth >= MAX_DEPTH {
                        return Err(at("Include nested too deeply".into()));
                    }
                    let outer = *active;
                    for pattern in &line.args {
                        let pattern = include_path(pattern, base, &self.ctx.home);
                        for f in self.world.glob(&pattern) {
                            let text = match self.world.read(&f) {
                                Ok(t) => t,
                                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                                Err(e) => return Err(SshConfigError::read(&f, e)),
                            };
                            self.file(&f, &text, base, active, never_match || !outer, depth + 1)?;
                            *active = outer;
                        }
                    }
                }
                k if !keywords::known(k) => {
                    let ignored = self
                        .opts
                        .first("ignoreunknown")
                        .is_some_and(|p| match_list(k, &p.to_ascii_lowercase()) == Some(true));
                    if !ignored {
                        return Err(at(
                            "Bad configuration option: not an OpenSSH client option".into()
                        ));
                    }
                }
                _ => {
                    values::check(&line).map_err(at)?;
                    if *active {
                        self.set(&line, path);
                    }
                }
            }
        }
        Ok(())
    }

    fn set(&mut self, line: &Line, path: &Path) {
        let key = line.keyword.as_str();
        let opts = &mut self.opts;
        let origin = (path.to_path_buf(), line.line);
        if keywords::ACCUMULATE.contains(&key) {
            let values = opts.values.entry(key.to_string()).or_default();
            let new: Vec<String> = if matches!(key, "identityfile" | "certificatefile") {
                line.args.iter().take(1).cloned().collect()
            } else {
                line.args.clone()
            };
            for v in new {
                if !values.contains(&v) || !matches!(key, "identityfile" | "certificatefile") {
                    values.push(v);
                }
            }
            opts.origins.entry(key.to_string()).or_insert(origin);
            return;
        }
        // ProxyCommand and ProxyJump: whichever comes first.
        if matches!(key, "proxycommand" | "proxyjump")
            && (opts.values.contains_key("proxycommand") || opts.values.contains_key("proxyjump"))
        {
            return;
        }
        if opts.values.contains_key(key) {
            return;
        }
        let value = if matches!(
            key,
            "proxycommand" | "localcommand" | "remotecommand" | "knownhostscommand"
        ) {
            vec![line.rest.clone()]
        } else {
            line.args.clone()
        };
        opts.values.insert(key.to_string(), value);
        opts.origins.insert(key.to_string(), origin);
    }

    fn host_line(&self, args: &[String]) -> Result<bool, String> {
        if args.is_empty() {
            return Err("Host needs at least one pattern".into());
        }
        let mut matched = false;
        for a in args {
            let (neg, pat) = match a.strip_prefix('!') {
                Some(p) => (true, p),
                None => (false, a.as_str()),
            };
            if wildcard(&self.host, pat) {
                if neg {
                    return Ok(false);
                }
                matched = true;
            }
        }
        Ok(matched)
    }

    fn match_line(&mut self, args: &[String]) -> Result<bool, String> {
        if args.is_empty() {
            return Err("Match needs criteria (e.g. `Match host NAME`, `Match all`)".into());
        }
        let mut result = true;
        let mut it = args.iter();
        let count = args.len();
        while let Some(a) = it.next() {
            let (neg, attr) = match a.strip_prefix('!') {
                Some(p) => (true, p.to_ascii_lowercase()),
                None => (false, a.to_ascii_lowercase()),
            };
            let r = match attr.as_str() {
                "all" => {
                    let others = args
                        .iter()
                        .filter(|x| {
                            !matches!(
                                x.to_ascii_lowercase().as_str(),
                                "all" | "canonical" | "final"
                            )
                        })
                        .count();
                    if others > 0 || count > 2 {
                        return Err("`all` cannot be combined with other Match criteria".into());
                    }
                    true
                }
                "canonical" | "final" => {
                    if attr == "final" && !neg {
                        self.want_final = true;
                    }
                    self.final_pass
                }
                "host" | "originalhost" | "user" | "localuser" | "exec" => {
                    let arg = it
                        .next()
                        .ok_or_else(|| format!("Match {attr} needs an argument"))?;
                    self.criterion(&attr, arg, result)?
                }
                other => return Err(format!("unsupported Match criterion `{other}`")),
            };
            if r == neg {
                result = false;
            }
        }
        Ok(result)
    }

    fn criterion(&self, attr: &str, arg: &str, so_far: bool) -> Result<bool, String> {
        let user = self
            .opts
            .first("user")
            .unwrap_or(&self.ctx.local_user)
            .to_string();
        Ok(match attr {
            "host" => {
                let host = if self.final_pass {
                    self.host.clone()
                } else {
                    self.hostname()
                };
                match_list(&host.to_ascii_lowercase(), &arg.to_ascii_lowercase()) == Some(true)
            }
            "originalhost" => match_list(&self.original, &arg.to_ascii_lowercase()) == Some(true),
            "user" => match_list(&user, arg) == Some(true),
            "localuser" => match_list(&self.ctx.local_user, arg) == Some(true),
            _ => {
                if !so_far {
                    return Ok(false);
                }
                let port = self.opts.first("port").unwrap_or("22");
                let t = Tokens {
                    host: if self.final_pass {
                        self.host.clone()
                    } else {
                        self.hostname()
                    },
                    original_host: self.original.clone(),
                    port: port.to_string(),
                    remote_user: user,
                    jump_host: values::jump_host(self.opts.first("proxyjump")),
                    ..self.ctx.tokens()
                };
                let cmd = tokens::expand(arg, &t, "CdhLlnpru", &self.ctx.env)?;
                self.world.exec(&cmd)
            }
        })
    }
}

/// An Include argument as a glob pattern: `~` expanded, relative to ~/.ssh or /etc/ssh.
fn include_path(pattern: &str, base: &Path, home: &Path) -> String {
    let p = tokens::tilde(pattern, &home.to_string_lossy());
    if p.starts_with('/') {
        p
    } else {
        base.join(p).to_string_lossy().into_owned()
    }
}

/// `*` and `?` wildcards, the whole string.
pub(crate) fn wildcard(s: &str, pattern: &str) -> bool {
    fn go(s: &[char], p: &[char]) -> bool {
        match p.split_first() {
            None => s.is_empty(),
            Some(('*', rest)) => (0..=s.len()).any(|i| go(&s[i..], rest)),
            Some(('?', rest)) => !s.is_empty() && go(&s[1..], rest),
            Some((c, rest)) => s.first() == Some(c) && go(&s[1..], rest),
        }
    }
    let s: Vec<char> = s.chars().collect();
    let p: Vec<char> = pattern.chars().collect();
    go(&s, &p)
}

/// A comma-separated pattern list: Some(true) on a positive match, Some(false) when a `!`
/// pattern matches (which wins), None when nothing matches.
pub(crate) fn match_list(s: &str, list: &str) -> Option<bool> {
    let mut positive = None;
    for p in list.split(',') {
        match p.strip_prefix('!') {
            Some(n) if wildcard(s, n) => return Some(false),
            Some(_) => {}
            None if wildcard(s, p) => positive = Some(true),
            None => {}
        }
    }
    positive
}
