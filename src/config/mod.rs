//! `deploy.toml`: the schema (serde, unknown keys refused), defaults, and validation.
//!
//! The file is parsed once into a spanned document (`Doc`); serde reads the schema from it,
//! and the spans give the line of every key an error names. Every problem is reported with the
//! file, line and key it concerns, and all problems are collected before returning (one per
//! key, in file order), so a user fixes their config in one pass. Nothing here touches the
//! network; the only I/O is reading the config file and checking that the local files it names
//! (unit files, release files, identity keys) exist.

use std::path::Path;

/// Default config file name, looked up in the current directory.
pub const DEFAULT_CONFIG: &str = "deploy.toml";

mod doc;
mod env;
mod inventory;
mod model;
mod names;
mod raw;
mod select;
pub mod ssh;
mod validate;

pub(crate) use doc::*;
pub use env::*;
pub use model::*;
pub use names::*;
pub use raw::*;
pub use select::*;
pub(crate) use validate::*;
/// Which local files [`load_checking`] requires to exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalFiles {
    /// Everything a deploy reads: unit files, release files and identity keys.
    All,
    /// Only what connecting needs (identity keys): for commands that talk to hosts without
    /// uploading a release (doctor, status, logs, releases, rollback, exec), so that they work
    /// before the program is built.
    KeysOnly,
}

/// Read and validate a config file, then check every local file it names.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    load_checking(path, LocalFiles::All)
}

/// Read and validate a config file for a command that only talks to hosts: the release's
/// files and unit files need not exist yet.
pub fn load_for_hosts(path: &Path) -> Result<Config, ConfigErrors> {
    load_checking(path, LocalFiles::KeysOnly)
}

/// Read and validate a config file, then check the local files `files` says.
pub fn load_checking(path: &Path, files: LocalFiles) -> Result<Config, ConfigErrors> {
    let whole_file = |message: String| {
        ConfigErrors(vec![ConfigError {
            file: path.to_path_buf(),
            line: None,
            key: String::new(),
            message,
        }])
    };
    let text = std::fs::read_to_string(path).map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::NotFound {
            "; create it (see deploy.example.toml) or pass --config PATH"
        } else {
            ""
        };
        whole_file(format!("cannot read the config file: {e}{hint}"))
    })?;
    let env = Env::current();
    load_text(&text, path, &env, files)
}

/// Validate config text, then check the local files it names.
fn load_text(
    text: &str,
    path: &Path,
    env: &Env,
    files: LocalFiles,
) -> Result<Config, ConfigErrors> {
    let doc = Doc::parse(text, path)?;
    let config = validate(&doc, path, env, inventory::Source::Run)?;
    check_local_files(&config, &doc, files)?;
    Ok(config)
}

/// Parse and validate config text. Pure: no file system access and no `[inventory] command`
/// run (a config with one is refused; see [`load`]).
pub fn parse(text: &str, path: &Path, env: &Env) -> Result<Config, ConfigErrors> {
    let doc = Doc::parse(text, path)?;
    validate(&doc, path, env, inventory::Source::NotRun)
}

fn validate(
    doc: &Doc,
    path: &Path,
    env: &Env,
    inventory: inventory::Source,
) -> Result<Config, ConfigErrors> {
    let mut raw = doc.raw(path)?;
    let base = path
        .parent()
        .map(|p| {
            if p.as_os_str().is_empty() {
                Path::new(".")
            } else {
                p
            }
        })
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let mut v = Validator::new(doc, path);
    v.control_characters();
    // Hosts of `[inventory] command` join `[hosts]` before anything is checked.
    let merged = inventory::merge(&mut v, &mut raw, &base, inventory);
    let config = v.config(raw, env, &base);
    merged.relocate(&mut v.errors);
    v.finish().map(|()| config)
}

/// Check that every local file the config names exists and is readable: unit files, release
/// files and the hosts' `identity` keys (deploy.toml's; the OpenSSH config's IdentityFiles
/// are tried when connecting, missing ones skipped, as ssh does).
fn check_local_files(config: &Config, doc: &Doc, files: LocalFiles) -> Result<(), ConfigErrors> {
    let mut v = Validator::new(doc, &config.path);
    for (name, host) in &config.hosts {
        let Some(identity) = &host.identity else {
            continue;
        };
        let Err(e) = readable_file(identity) else {
            continue;
        };
        let own = [Seg::Key("hosts"), Seg::Key(name), Seg::Key("identity")];
        let default = [Seg::Key("defaults"), Seg::Key("identity")];
        // `identity` is set in deploy.toml only: in the host's table or in [defaults].
        let at: &[Seg] = if doc.get(&own).is_some() {
            &own
        } else {
            &default
        };
        v.error(at, format!("identity key {}: {e}", identity.display()));
    }
    let services = match files {
        LocalFiles::All => config.services.iter().collect(),
        LocalFiles::KeysOnly => Vec::new(),
    };
    for (name, svc) in services {
        for (i, unit) in svc.units.iter().enumerate() {
            if let Err(e) = readable_file(&unit.source) {
                v.error(
                    &[
                        Seg::Key("services"),
                        Seg::Key(name),
                        Seg::Key("units"),
                        Seg::Index(i),
                    ],
                    format!("unit file {}: {e}", unit.source.display()),
                );
            }
        }
        for (i, file) in svc.files.iter().enumerate() {
            if let Err(e) = readable_file(&file.source) {
                v.error(
                    &[
                        Seg::Key("services"),
                        Seg::Key(name),
                        Seg::Key("files"),
                        Seg::Index(i),
                        Seg::Key("source"),
                    ],
                    format!("{}: {e}", file.source.display()),
                );
            }
        }
    }
    v.finish()
}

fn readable_file(path: &Path) -> Result<(), String> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => std::fs::File::open(path)
            .map(|_| ())
            .map_err(|e| format!("cannot be read: {e}")),
        Ok(_) => Err("is not a regular file".into()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err("does not exist (paths are relative to the config file's directory)".into())
        }
        Err(e) => Err(format!("cannot be read: {e}")),
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_order;
#[cfg(test)]
mod tests_ssh_jumps;
