//! Binaries checked against the host: what an ELF executable or shared object of a release
//! needs (its machine, program interpreter, GLIBC_/GLIBCXX_ symbol versions and DT_NEEDED
//! libraries, read from its headers by [`read`]), what the host has (its `uname -m`, libc,
//! and whether those paths and libraries exist: [`HostFacts`], read by the deploy's first
//! probe), and the pure [`judge`] of one against the other. A release with a binary that
//! cannot run on a host is refused there before anything is uploaded or switched.

mod probe;
mod read;

pub use probe::*;
pub use read::read;

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

/// A version such as `2.34` or `3.4.30`, compared number by number.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(pub Vec<u32>);

impl Version {
    /// `2.34` -> [2, 34]; None unless every part is a number.
    pub fn parse(text: &str) -> Option<Version> {
        let parts: Option<Vec<u32>> = text.split('.').map(|p| p.parse().ok()).collect();
        parts.filter(|p| !p.is_empty()).map(Version)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(u32::to_string).collect();
        f.write_str(&parts.join("."))
    }
}

/// An ELF file's machine: `e_machine`, its class (64-bit or not) and byte order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Machine {
    pub e_machine: u16,
    pub bits64: bool,
    pub big_endian: bool,
}

const EM_386: u16 = 3;
const EM_ARM: u16 = 40;
const EM_PPC64: u16 = 21;
const EM_S390: u16 = 22;
const EM_X86_64: u16 = 62;
const EM_AARCH64: u16 = 183;
const EM_RISCV: u16 = 243;
const EM_LOONGARCH: u16 = 258;

impl Machine {
    /// The `uname -m` of the machines it is built for, when ferry knows them.
    pub fn name(&self) -> Option<&'static str> {
        Some(match (self.e_machine, self.bits64, self.big_endian) {
            (EM_X86_64, true, false) => "x86_64",
            (EM_386, false, false) => "i686",
            (EM_AARCH64, true, false) => "aarch64",
            (EM_AARCH64, true, true) => "aarch64_be",
            (EM_ARM, false, false) => "arm (32-bit)",
            (EM_RISCV, true, false) => "riscv64",
            (EM_PPC64, true, false) => "ppc64le",
            (EM_PPC64, true, true) => "ppc64",
            (EM_S390, true, true) => "s390x",
            (EM_LOONGARCH, true, false) => "loongarch64",
            _ => return None,
        })
    }

    /// Does it run on a host whose `uname -m` is `arch`? None when ferry does not know this
    /// machine (it is not judged). 32-bit x86 and ARM binaries count as running on their
    /// 64-bit hosts; whether their loader is there is the interpreter check's.
    pub fn runs_on(&self, arch: &str) -> Option<bool> {
        let name = self.name()?;
        Some(match name {
            "i686" => matches!(arch, "i386" | "i486" | "i586" | "i686" | "x86_64"),
            "aarch64" => matches!(arch, "aarch64" | "arm64"),
            "arm (32-bit)" => {
                (arch.starts_with("arm") && !arch.ends_with('b') && arch != "arm64")
                    || arch == "aarch64"
            }
            _ => arch == name,
        })
    }
}

impl fmt::Display for Machine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(
                f,
                "e_machine {} ({}-bit, {})",
                self.e_machine,
                if self.bits64 { 64 } else { 32 },
                if self.big_endian {
                    "big-endian"
                } else {
                    "little-endian"
                }
            ),
        }
    }
}

/// The Rust target that builds for a host of this `uname -m` (glibc), when there is one.
pub fn rust_target(arch: &str) -> Option<&'static str> {
    Some(match arch {
        "x86_64" => "x86_64-unknown-linux-gnu",
        "aarch64" | "arm64" => "aarch64-unknown-linux-gnu",
        "armv7l" | "armv8l" => "armv7-unknown-linux-gnueabihf",
        "armv6l" => "arm-unknown-linux-gnueabihf",
        "i386" | "i486" | "i586" | "i686" => "i686-unknown-linux-gnu",
        "riscv64" => "riscv64gc-unknown-linux-gnu",
        "ppc64le" => "powerpc64le-unknown-linux-gnu",
        "s390x" => "s390x-unknown-linux-gnu",
        "loongarch64" => "loongarch64-unknown-linux-gnu",
        _ => return None,
    })
}

/// The static (musl) Rust target for a host of this `uname -m`, when there is one.
fn musl_target(arch: &str) -> Option<String> {
    rust_target(arch)
        .filter(|t| !t.starts_with("s390x") && !t.starts_with("loongarch"))
        .map(|t| t.replace("-gnu", "-musl"))
}

/// An executable (with a program interpreter, or `ET_EXEC`) or a shared object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Executable,
    SharedObject,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Executable => "executable",
            Kind::SharedObject => "shared object",
        })
    }
}

/// What an ELF file needs of the host it runs on, from its headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElfNeeds {
    pub kind: Kind,
    pub machine: Machine,
    /// The program interpreter (`PT_INTERP`); None for a static binary or a shared object.
    pub interp: Option<String>,
    /// The highest `GLIBC_x.y` symbol version it needs (`.gnu.version_r`).
    pub glibc: Option<Version>,
    /// The highest `GLIBCXX_x.y.z` (libstdc++) symbol version it needs.
    pub glibcxx: Option<Version>,
    /// Its `DT_NEEDED` libraries, in order.
    pub needed: Vec<String>,
    /// Its `DT_RUNPATH` / `DT_RPATH` directories, as written (`$ORIGIN` unexpanded).
    pub runpath: Vec<String>,
}

/// One ELF file of a release: where it goes, where it comes from, what it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binary {
    pub dest: String,
    pub source: PathBuf,
    pub needs: ElfNeeds,
}

/// The C library of a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Libc {
    Glibc(Version),
    /// musl, with what `ldd --version` said.
    Musl(String),
}

impl fmt::Display for Libc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Libc::Glibc(v) => write!(f, "glibc {v}"),
            Libc::Musl(v) if v.is_empty() => f.write_str("musl"),
            Libc::Musl(v) => write!(f, "musl {v}"),
        }
    }
}

/// What the deploy's first probe learned of the host for its binaries. What it was not asked
/// about (or could not tell) is absent, and not judged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostFacts {
    /// `uname -m`.
    pub arch: Option<String>,
    pub libc: Option<Libc>,
    /// The highest GLIBCXX_ version of the host's libstdc++.so.6, when a binary needs one.
    pub glibcxx: Option<Version>,
    /// Does each program interpreter asked about exist?
    pub paths: BTreeMap<String, bool>,
    /// Is each library asked about found (ldconfig's cache, default directories, RUNPATH)?
    pub libs: BTreeMap<String, bool>,
}

/// Why a binary cannot run on a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    Arch {
        binary: Machine,
        host: String,
    },
    Interp {
        path: String,
    },
    Glibc {
        needs: Version,
        host: Version,
    },
    NotGlibc {
        needs: Version,
        host: Libc,
    },
    Glibcxx {
        needs: Version,
        host: Option<Version>,
    },
    Library {
        name: String,
    },
}

/// Why `needs` cannot run on a host with these facts (empty: nothing against it). A binary of
/// another architecture gets that problem alone (the rest would follow from it).
pub fn judge(needs: &ElfNeeds, host: &HostFacts) -> Vec<Problem> {
    if let Some(arch) = &host.arch
        && needs.machine.runs_on(arch) == Some(false)
    {
        return vec![Problem::Arch {
            binary: needs.machine,
            host: arch.clone(),
        }];
    }
    let mut problems = Vec::new();
    if let Some(path) = &needs.interp
        && host.paths.get(path) == Some(&false)
    {
        problems.push(Problem::Interp { path: path.clone() });
    }
    match (&needs.glibc, &host.libc) {
        (Some(n), Some(Libc::Glibc(h))) if n > h => problems.push(Problem::Glibc {
            needs: n.clone(),
            host: h.clone(),
        }),
        (Some(n), Some(other @ Libc::Musl(_))) => problems.push(Problem::NotGlibc {
            needs: n.clone(),
            host: other.clone(),
        }),
        _ => {}
    }
    if let Some(n) = &needs.glibcxx {
        match &host.glibcxx {
            Some(h) if n > h => problems.push(Problem::Glibcxx {
                needs: n.clone(),
                host: Some(h.clone()),
            }),
            _ => {}
        }
    }
    for name in &needs.needed {
        if host.libs.get(name) == Some(&false) {
            problems.push(Problem::Library { name: name.clone() });
        }
    }
    problems
}

impl Problem {
    /// The problem and what to do, for a host whose `uname -m` is `arch` (when known).
    pub fn describe(&self, kind: Kind, arch: Option<&str>) -> String {
        let target = |arch: Option<&str>| {
            arch.and_then(rust_target)
                .map(|t| format!(" (e.g. `cargo build --release --target {t}`)"))
                .unwrap_or_default()
        };
        let musl = arch
            .and_then(musl_target)
            .map(|t| format!(" (`--target {t}`)"))
            .unwrap_or_default();
        match self {
            Problem::Arch { binary, host } => format!(
                "it is an ELF {kind} for {binary}, and the host is {host} (uname -m): build it for that target{}",
                target(Some(host))
            ),
            Problem::Interp { path } => format!(
                "its program interpreter {path} does not exist on the host: build it for the host's libc, or link it statically with musl{musl}"
            ),
            Problem::Glibc { needs, host } => format!(
                "it needs GLIBC_{needs} and the host has glibc {host}: build it on an older base (a distribution with glibc {host} or older, e.g. in a container of the host's release), or with musl{musl}"
            ),
            Problem::NotGlibc { needs, host } => format!(
                "it is linked against glibc (GLIBC_{needs}) and the host's libc is {host}: build it with musl{musl}"
            ),
            Problem::Glibcxx { needs, host } => format!(
                "it needs GLIBCXX_{needs} (libstdc++) and the host's libstdc++ has at most GLIBCXX_{}: build it on an older base, or link libstdc++ statically (-static-libstdc++)",
                host.as_ref().map_or("?".to_string(), Version::to_string)
            ),
            Problem::Library { name } => format!(
                "it needs {name}, which the host does not have (not in ldconfig's cache, the default library directories or its RUNPATH) and the release does not ship: install it on the host, ship it in the release, or link it statically"
            ),
        }
    }
}

/// The refusal of a host for the binaries that cannot run there (None: all can). `host` is
/// the host's name, as deploy.toml says.
pub fn refusal(binaries: &[Binary], facts: &HostFacts, host: &str) -> Option<String> {
    let mut lines = Vec::new();
    for b in binaries {
        let problems = judge(&b.needs, facts);
        if problems.is_empty() {
            continue;
        }
        let what: Vec<String> = problems
            .iter()
            .map(|p| p.describe(b.needs.kind, facts.arch.as_deref()))
            .collect();
        lines.push(format!(
            "{} (from {}) cannot run on {host}: {}",
            b.dest,
            b.source.display(),
            what.join("; ")
        ));
    }
    if lines.is_empty() {
        return None;
    }
    Some(format!(
        "{}; nothing was uploaded or switched, the current release keeps serving",
        lines.join("; ")
    ))
}

#[cfg(test)]
mod tests;
