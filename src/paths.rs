//! The remote layout, pure: where ferry keeps a service's releases, history, lock and units on a
//! host (paths relative to the remote user's home directory). See `release` for the layout
//! drawn out.

/// Root of ferry's files on a host, relative to the home directory.
pub const ROOT: &str = ".local/share/ferry";
/// The user's systemd unit directory, relative to the home directory.
pub const UNIT_DIR: &str = ".config/systemd/user";

/// Paths of one service on a host, relative to the home directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    pub service: String,
}

impl Paths {
    pub fn new(service: &str) -> Paths {
        Paths {
            service: service.to_string(),
        }
    }
    pub fn dir(&self) -> String {
        format!("{ROOT}/{}", self.service)
    }
    pub fn releases(&self) -> String {
        format!("{}/releases", self.dir())
    }
    pub fn release(&self, id: &str) -> String {
        format!("{}/{id}", self.releases())
    }
    /// Where a release is assembled before it is complete.
    pub fn staging(&self, id: &str) -> String {
        format!("{}/.{id}.partial", self.releases())
    }
    pub fn current(&self) -> String {
        format!("{}/current", self.dir())
    }
    /// The release `deploy --no-switch` staged, for `ferry promote` (a symlink, as `current`).
    pub fn staged(&self) -> String {
        format!("{}/staged", self.dir())
    }
    pub fn history(&self) -> String {
        format!("{}/history.jsonl", self.dir())
    }
    /// The history line of a rollback under way, written before it switches: the next
    /// locked contact appends it to the history when that rollback was cut off before it
    /// recorded how it ended.
    pub fn pending_record(&self) -> String {
        format!("{}/rollback.pending", self.dir())
    }
    pub fn lock(&self) -> String {
        format!("{}/lock", self.dir())
    }
    /// Held (flock) by the processes of a hook, migration or health command of a deploy while
    /// any of them lives: a deploy taking `lock` waits for it (see `crate::shell::bounded`).
    pub fn run_lock(&self) -> String {
        format!("{}/lock.run", self.dir())
    }
    pub fn unit(&self, name: &str) -> String {
        format!("{UNIT_DIR}/{name}")
    }
    /// The transient unit of the self-arming revert (`.timer` and `.service`).
    pub fn revert_unit(&self) -> String {
        format!("ferry-revert-{}", self.service)
    }
}

/// `ferry` directory inside a release.
pub const META_DIR: &str = ".ferry";

/// The env file's path inside a release directory.
pub fn env_file_in_release() -> String {
    format!("{META_DIR}/env")
}
