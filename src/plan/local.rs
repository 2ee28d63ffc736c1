//! The local release as the plan sees it: its files and units, hashed.

use std::path::PathBuf;

use super::*;

/// A file of the local release, hashed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalFile {
    pub source: PathBuf,
    pub dest: String,
    pub mode: u32,
    pub size: u64,
    pub sha256: String,
    /// A `template = true` file, held in memory: its source text, rendered for each host by
    /// `crate::prepare::template::for_host` (size and sha256 are then the rendered content's).
    pub content: Option<Vec<u8>>,
}

/// A local unit file, read into memory (unit files are small).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalUnit {
    pub name: String,
    pub content: Vec<u8>,
    pub sha256: String,
}

impl LocalUnit {
    /// Units with an `[Install]` section can be enabled.
    pub fn has_install_section(&self) -> bool {
        String::from_utf8_lossy(&self.content)
            .lines()
            .any(|l| l.trim() == "[Install]")
    }
}

/// The local side of a release, prepared once per service.
#[derive(Debug, Clone)]
pub struct LocalRelease {
    pub files: Vec<LocalFile>,
    pub units: Vec<LocalUnit>,
    /// The service's env file (`.ferry/env`), when it has `[env]`.
    pub env: Option<crate::release::env::EnvFile>,
    /// Instances of template units (`app@1.service`, ...) run on this host (`[instances]`).
    pub instances: Vec<String>,
    /// The files that are ELF executables or shared objects, with what they need of a host.
    pub binaries: Vec<crate::elf::Binary>,
}

/// An instance of a template unit (`app@1.service`, not `app@.service`).
pub(crate) fn is_instance(unit: &str) -> bool {
    unit.contains('@') && !unit.contains("@.")
}

impl LocalRelease {
    /// Hash of everything that makes up the release (files, modes, units), hex.
    pub fn content_hash(&self) -> String {
        let mut h = ring::digest::Context::new(&ring::digest::SHA256);
        for f in &self.files {
            h.update(format!("f {} {:o} {}\n", f.dest, f.mode, f.sha256).as_bytes());
        }
        for u in &self.units {
            h.update(format!("u {} {}\n", u.name, u.sha256).as_bytes());
        }
        if let Some(env) = &self.env {
            h.update(format!("e {}\n", env.sha256()).as_bytes());
        }
        hex(h.finish().as_ref())
    }
}
