//! What the deploy's first probe asks the host about a release's binaries, as shell text
//! run in the same command as the rest of the remote state, and the parsing of its lines.

use std::collections::BTreeSet;

use super::{Binary, HostFacts, Libc, Version};
use crate::shell::quote;

/// The host's architecture and C library: part of every probe (two small commands).
/// `getconf GNU_LIBC_VERSION` answers on glibc; on musl `ldd --version` names musl.
pub const FACTS_SCRIPT: &str = "echo \"arch=$(uname -m 2>/dev/null)\"\n\
     echo \"libc=$(getconf GNU_LIBC_VERSION 2>/dev/null || ldd --version 2>&1 | head -n 2 | tr '\\n' ' ')\"\n";

/// The paths and libraries the probe checks for a release's binaries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    /// Program interpreters: does each exist?
    pub interps: BTreeSet<String>,
    /// DT_NEEDED libraries the release does not ship: found on the host?
    pub libs: BTreeSet<String>,
    /// Absolute RUNPATH/RPATH directories of the binaries, searched too.
    pub dirs: BTreeSet<String>,
}

impl Query {
    /// What to ask about `binaries`; a library named like a file the release ships
    /// (`release_files`: their dests) is taken as provided by the release.
    pub fn of(binaries: &[Binary], release_files: &[String]) -> Query {
        let shipped: BTreeSet<&str> = release_files
            .iter()
            .map(|d| d.rsplit('/').next().unwrap_or(d))
            .collect();
        let mut q = Query::default();
        for b in binaries {
            q.interps.extend(b.needs.interp.iter().cloned());
            q.libs.extend(
                b.needs
                    .needed
                    .iter()
                    .filter(|n| !shipped.contains(n.as_str()) && !n.contains('/'))
                    .cloned(),
            );
            q.dirs.extend(
                b.needs
                    .runpath
                    .iter()
                    .filter(|d| d.starts_with('/'))
                    .cloned(),
            );
        }
        q
    }

    /// Shell text printing `elf.path=yes|no PATH`, `elf.lib=yes|no NAME` and, for a found
    /// libstdc++, `elf.glibcxx=VERSIONS`; empty when there is nothing to ask. Libraries are
    /// looked up as the dynamic loader would find them: ldconfig's cache, then the absolute
    /// RUNPATHs and the default directories.
    pub fn script(&self) -> String {
        if self.interps.is_empty() && self.libs.is_empty() {
            return String::new();
        }
        let words =
            |set: &BTreeSet<String>| set.iter().map(|s| quote(s)).collect::<Vec<_>>().join(" ");
        let mut s = String::new();
        if !self.interps.is_empty() {
            s.push_str(&format!(
                "for p in {}; do if [ -e \"$p\" ]; then echo \"elf.path=yes $p\"; else echo \"elf.path=no $p\"; fi; done\n",
                words(&self.interps)
            ));
        }
        if !self.libs.is_empty() {
            let mut dirs = words(&self.dirs);
            dirs.push_str(
                " \"/lib/$a-linux-gnu\" \"/usr/lib/$a-linux-gnu\" /lib64 /usr/lib64 /lib /usr/lib /usr/local/lib",
            );
            s.push_str(&format!(
                "a=$(uname -m)\n\
                 L=$({{ /sbin/ldconfig -p || ldconfig -p; }} 2>/dev/null | sed -n 's/^[[:space:]]*\\([^ ]*\\) .* => \\(.*\\)$/\\1 \\2/p')\n\
                 for n in {libs}; do\n\
                 p=$(printf '%s\\n' \"$L\" | awk -v n=\"$n\" '$1 == n {{ print $2; exit }}')\n\
                 if [ -z \"$p\" ]; then for d in {dirs}; do if [ -e \"$d/$n\" ]; then p=\"$d/$n\"; break; fi; done; fi\n\
                 if [ -n \"$p\" ]; then echo \"elf.lib=yes $n\"; else echo \"elf.lib=no $n\"; fi\n\
                 if [ \"$n\" = libstdc++.so.6 ] && [ -n \"$p\" ]; then echo \"elf.glibcxx=$(grep -ao 'GLIBCXX_[0-9][0-9.]*' \"$p\" 2>/dev/null | sort -u | tr '\\n' ' ')\"; fi\n\
                 done\n",
                libs = words(&self.libs),
            ));
        }
        s
    }
}

/// Read one `key=value` line of the probe into `facts`; false when the key is not one of
/// these.
pub fn parse_line(facts: &mut HostFacts, key: &str, value: &str) -> bool {
    let value = value.trim();
    match key {
        "arch" => facts.arch = Some(value.to_string()).filter(|a| !a.is_empty()),
        "libc" => facts.libc = parse_libc(value),
        "elf.path" | "elf.lib" => {
            let Some((found, what)) = value.split_once(' ') else {
                return true;
            };
            let map = if key == "elf.path" {
                &mut facts.paths
            } else {
                &mut facts.libs
            };
            map.insert(what.to_string(), found == "yes");
        }
        "elf.glibcxx" => {
            facts.glibcxx = value
                .split_whitespace()
                .filter_map(|v| v.strip_prefix("GLIBCXX_"))
                .filter_map(Version::parse)
                .max()
        }
        _ => return false,
    }
    true
}

/// `glibc 2.36` (getconf), or `ldd --version`'s first lines (musl names itself there).
pub fn parse_libc(text: &str) -> Option<Libc> {
    if let Some(v) = text.strip_prefix("glibc ") {
        return Version::parse(v.trim()).map(Libc::Glibc);
    }
    if text.contains("musl") {
        let version = text
            .split_whitespace()
            .skip_while(|w| *w != "Version")
            .nth(1)
            .unwrap_or("");
        return Some(Libc::Musl(version.to_string()));
    }
    None
}
