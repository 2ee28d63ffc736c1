//! The local record of rollouts, for `ferry deploy --retry-failed`: `.ferry/state.json` in the
//! directory of the config file.
//!
//! For each service and host it keeps the outcome of the last deploy that reached, or was meant
//! to reach, that host. When a rollout starts, each of its hosts is marked `not-reached`; the
//! outcome of each batch replaces that mark as soon as the batch is done. A ferry killed in the
//! middle therefore leaves the hosts it did not finish marked `not-reached`. `--retry-failed`
//! deploys to the hosts whose mark is not `ok`.
//!
//! Written atomically (a temporary file, fsync, rename), under an exclusive lock on
//! `.ferry/state.lock`, so two ferry runs in the same directory do not lose each other's updates.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The directory, next to the config file, that holds ferry's local state.
pub const DIR: &str = ".ferry";
/// The state file in it.
pub const FILE: &str = "state.json";
const VERSION: u32 = 1;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub version: u32,
    #[serde(default)]
    pub services: BTreeMap<String, ServiceState>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceState {
    /// When the last rollout of the service started (RFC 3339, UTC).
    pub time: String,
    #[serde(default)]
    pub hosts: BTreeMap<String, HostState>,
    /// The last migration (`hooks.migrate`) that ran, or was found run, for the service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migrated: Option<Migrated>,
}

/// A migration that succeeded: for which release, on which host, when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Migrated {
    pub release: String,
    pub host: String,
    pub time: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostState {
    /// The host's result: ok, failed, rolled-back, rollback-failed, unreachable, locked,
    /// refused, not-reached.
    pub result: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
    /// When this result was recorded.
    pub time: String,
}

/// The state file that goes with the config file at `config`.
pub fn path(config: &Path) -> PathBuf {
    config
        .parent()
        .unwrap_or_else(|| Path::new(""))
        .join(DIR)
        .join(FILE)
}

impl State {
    /// The hosts of `service` whose last deploy did not end `ok` (None: no rollout recorded).
    pub fn retry_hosts(&self, service: &str) -> Option<Vec<String>> {
        self.services.get(service).map(|s| {
            s.hosts
                .iter()
                .filter(|(_, h)| h.result != "ok" && h.result != "unchanged")
                .map(|(name, _)| name.clone())
                .collect()
        })
    }

    /// A rollout of `service` starts on `hosts`: each is marked not reached until its result
    /// is known.
    pub fn start(&mut self, service: &str, hosts: &[String], time: &str) {
        let s = self.services.entry(service.to_string()).or_default();
        s.time = time.to_string();
        for h in hosts {
            s.hosts.insert(
                h.clone(),
                HostState {
                    result: "not-reached".into(),
                    release: None,
                    time: time.to_string(),
                },
            );
        }
    }

    /// The migration recorded for `service`.
    pub fn migrated(&self, service: &str) -> Option<&Migrated> {
        self.services.get(service)?.migrated.as_ref()
    }

    /// Record that the migration of `service` ran (or was found run).
    pub fn set_migrated(&mut self, service: &str, migrated: Migrated) {
        self.services
            .entry(service.to_string())
            .or_default()
            .migrated = Some(migrated);
    }

    /// Record a host's result.
    pub fn set(
        &mut self,
        service: &str,
        host: &str,
        result: &str,
        release: Option<&str>,
        time: &str,
    ) {
        self.services
            .entry(service.to_string())
            .or_default()
            .hosts
            .insert(
                host.to_string(),
                HostState {
                    result: result.to_string(),
                    release: release.map(String::from),
                    time: time.to_string(),
                },
            );
    }
}

/// Read the state; a missing file is an empty state.
pub fn load(file: &Path) -> Result<State> {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(State::default()),
        Err(e) => {
            return Err(Error::Local(format!("cannot read {}: {e}", file.display())));
        }
    };
    let state: State = serde_json::from_str(&text).map_err(|e| {
        Error::Local(format!(
            "{} is not a ferry state file ({e}); delete it to start afresh (only --retry-failed uses it)",
            file.display()
        ))
    })?;
    if state.version != VERSION {
        return Err(Error::Local(format!(
            "{} has version {}, this ferry reads version {VERSION}; delete it to start afresh",
            file.display(),
            state.version
        )));
    }
    Ok(state)
}

/// Write the state atomically: a temporary file in the same directory, fsync, rename, fsync of
/// the directory.
pub fn save(file: &Path, state: &State) -> Result<()> {
    let dir = file.parent().unwrap_or_else(|| Path::new("."));
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let fail = |what: &str, e: std::io::Error| {
        Error::Local(format!(
            "cannot write {} ({what}: {e}); --retry-failed will not know this rollout",
            file.display()
        ))
    };
    std::fs::create_dir_all(dir).map_err(|e| fail("creating the directory", e))?;
    let mut state = state.clone();
    state.version = VERSION;
    let mut text = serde_json::to_vec_pretty(&state).expect("state serialises");
    text.push(b'\n');
    let tmp = dir.join(format!(".{FILE}.{}.tmp", std::process::id()));
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&text)?;
        f.sync_all()
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(fail("writing", e));
    }
    if let Err(e) = std::fs::rename(&tmp, file) {
        let _ = std::fs::remove_file(&tmp);
        return Err(fail("renaming", e));
    }
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Read, change and write the state under an exclusive lock (`.ferry/state.lock`).
pub fn update(file: &Path, change: impl FnOnce(&mut State)) -> Result<()> {
    let dir = file.parent().unwrap_or_else(|| Path::new("."));
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::Local(format!("cannot create {}: {e}", dir.display())))?;
    let lock_path = dir.join("state.lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| Error::Local(format!("cannot open {}: {e}", lock_path.display())))?;
    lock.lock()
        .map_err(|e| Error::Local(format!("cannot lock {}: {e}", lock_path.display())))?;
    let mut state = load(file)?;
    change(&mut state);
    let r = save(file, &state);
    let _ = lock.unlock();
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_is_next_to_the_config() {
        assert_eq!(
            path(Path::new("/p/deploy.toml")),
            Path::new("/p/.ferry/state.json")
        );
        assert_eq!(
            path(Path::new("deploy.toml")),
            Path::new(".ferry/state.json")
        );
    }

    #[test]
    fn retry_hosts_are_those_not_ok() {
        let mut s = State::default();
        assert_eq!(s.retry_hosts("api"), None);
        let hosts: Vec<String> = ["a", "b", "c", "d"].iter().map(|h| h.to_string()).collect();
        s.start("api", &hosts, "t0");
        assert_eq!(s.retry_hosts("api").unwrap(), hosts, "all pending at start");
        s.set("api", "a", "ok", Some("r1"), "t1");
        s.set("api", "b", "ok", Some("r1"), "t1");
        s.set("api", "c", "rolled-back", Some("r1"), "t1");
        assert_eq!(s.retry_hosts("api").unwrap(), vec!["c", "d"]);
        // A later rollout on a subset keeps the other hosts' marks.
        s.start("api", &["c".to_string()], "t2");
        s.set("api", "c", "ok", Some("r2"), "t3");
        assert_eq!(s.retry_hosts("api").unwrap(), vec!["d"]);
        assert_eq!(s.retry_hosts("other"), None);
    }

    #[test]
    fn saves_atomically_and_loads_back() {
        let dir = tempfile::tempdir().unwrap();
        let file = path(&dir.path().join("deploy.toml"));
        assert_eq!(load(&file).unwrap(), State::default());
        update(&file, |s| s.start("api", &["a".into(), "b".into()], "t0")).unwrap();
        update(&file, |s| s.set("api", "a", "ok", Some("r1"), "t1")).unwrap();
        let s = load(&file).unwrap();
        assert_eq!(s.version, VERSION);
        assert_eq!(s.retry_hosts("api").unwrap(), vec!["b"]);
        assert_eq!(s.services["api"].hosts["a"].release.as_deref(), Some("r1"));
        // No temporary file is left behind.
        let mut names: Vec<String> = std::fs::read_dir(file.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, vec!["state.json", "state.lock"]);
    }

    #[test]
    fn a_damaged_file_says_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let file = path(&dir.path().join("deploy.toml"));
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, "{not json").unwrap();
        let e = load(&file).unwrap_err().to_string();
        assert!(e.contains("state.json") && e.contains("delete it"), "{e}");
    }
}
