//! The remote state: the probe script that reads a host in one command, and its parsing.

use crate::release::{self, Action, Manifest, Outcome, Paths};
use crate::shell::quote;
use crate::systemd::switch::{self, Colour};
use std::collections::BTreeMap;

/// What is on the host now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RemoteState {
    /// Release id `current` points to.
    pub current: Option<String>,
    /// Release directories present.
    pub releases: Vec<String>,
    pub manifest: Option<Manifest>,
    /// sha256 of the files of the current release, by dest (what is really on disk).
    pub current_files: BTreeMap<String, String>,
    /// sha256 of the installed unit files, by name.
    pub installed_units: BTreeMap<String, String>,
    /// Raw history.jsonl.
    pub history: Vec<release::HistoryRecord>,
    /// The self-revert timer of an earlier, unconfirmed deploy is still armed.
    pub revert_pending: bool,
    /// The release that timer was armed for (it reverts only while `current` is that one).
    pub revert_for: Option<String>,
    /// The deadline it was armed for (seconds since the epoch, the host's clock).
    pub revert_deadline: Option<u64>,
    /// A rollback to this release was cut off before it recorded how it ended: the probe
    /// (under the lock) has just appended its pending record to the history.
    pub interrupted_rollback: Option<String>,
    /// Staging directories left by interrupted deploys (`.ID.partial`).
    pub partial: Vec<String>,
    /// The files at the new release's dests in those directories (see
    /// [`crate::plan::resume`]).
    pub partial_files: Vec<crate::plan::resume::PartialFile>,
    /// The SHA-256 of the first bytes of the current release's copy of the big files whose
    /// size the new release's files have, by dest (see [`crate::plan::prefix`]).
    pub current_prefixes: BTreeMap<String, String>,
    /// Who holds the service's lock, when the probe was asked to look (dry run) and it is held.
    pub lock_holder: Option<String>,
    /// ActiveState of the release's units, by name (those the probe was asked about).
    pub unit_active: BTreeMap<String, String>,
    /// One of those units' files changed on disk since the user manager loaded it
    /// (`NeedDaemonReload=yes`).
    pub need_reload: bool,
    /// Free space for the user on the filesystem that holds the service's directory (or its
    /// nearest existing ancestor), when `df` could tell.
    pub free: Option<FreeSpace>,
    /// The host has `gzip` (compressed uploads are decompressed with it).
    pub gzip: bool,
    /// The host has `tar` (many small files go in one stream: [`crate::transport::bundle`]).
    pub tar: bool,
    /// The release `deploy --no-switch` staged (the `staged` link), for `ferry promote`.
    pub staged: Option<String>,
    /// Blue/green: the colour `live.sock` points to.
    pub live: Option<Colour>,
    /// Blue/green: the release each colour's link (`colors/C`) points to.
    pub colours: BTreeMap<Colour, String>,
    /// The host's architecture and libc, and what its binaries need that it has (see
    /// [`crate::elf`]).
    pub host: crate::elf::HostFacts,
    /// The login user lingers (`/var/lib/systemd/linger/USER`, else logind says so): its user
    /// manager, and so its services, outlive its sessions. None: the host did not say.
    pub linger: Option<bool>,
    /// The login user's name, as the host says it.
    pub user: Option<String>,
    /// The host's clock when it was read (seconds since the epoch).
    pub clock: Option<u64>,
    /// The same in milliseconds (GNU `date +%s.%N`; whole seconds from a `date` without `%N`).
    pub clock_ms: Option<u64>,
    /// The host's clock minus this machine's, in milliseconds, rounded so that a time made
    /// from it is never ahead of the host's (set by the session when it reads the host).
    pub clock_offset: Option<i64>,
}

/// Free bytes on a filesystem of the host, and the path (relative to the home directory,
/// `.` for the home directory itself) they were measured at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FreeSpace {
    pub bytes: u64,
    pub path: String,
}

impl FreeSpace {
    /// `free=` of the probe: KiB free (`df -Pk`), then the path it was asked about.
    fn parse(v: &str) -> Option<FreeSpace> {
        let (kib, path) = v.split_once(' ')?;
        let kib: u64 = kib.trim().parse().ok()?;
        Some(FreeSpace {
            bytes: kib.saturating_mul(1024),
            path: path.trim().to_string(),
        })
    }

    /// The path as a user would type it on the host (`~/...`).
    pub fn display_path(&self) -> String {
        match self.path.trim_start_matches("./") {
            "." | "" => "~".to_string(),
            p => format!("~/{p}"),
        }
    }
}

/// `SECONDS[.FRACTION]` (`date +%s.%N`) in milliseconds; a fraction that is not digits (a
/// `date` without `%N` prints it as it is) counts as none.
fn parse_clock_ms(v: &str) -> Option<u64> {
    let (secs, frac) = v.split_once('.').unwrap_or((v, ""));
    let secs: u64 = secs.parse().ok()?;
    let ms = match frac.get(..3) {
        Some(f) if f.bytes().all(|b| b.is_ascii_digit()) => f.parse().unwrap_or(0),
        _ => 0,
    };
    Some(secs * 1000 + ms)
}

impl RemoteState {
    /// `local` (this machine's clock) as the host's clock, when the host's is known.
    pub fn host_time(&self, local: std::time::SystemTime) -> std::time::SystemTime {
        let offset = self.clock_offset.unwrap_or(0);
        let by = std::time::Duration::from_millis(offset.unsigned_abs());
        if offset >= 0 { local + by } else { local - by }
    }

    /// Set [`RemoteState::clock_offset`] from the host's clock as read and this machine's
    /// (`local`) when the answer came (later than the host read its clock).
    pub fn set_clock_offset(&mut self, local: std::time::SystemTime) {
        let Some(host) = self.clock_ms else {
            return;
        };
        let local = local
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis() as i64;
        // The host's time is rounded down and the answer came after it: the offset is at
        // most the true one (by the answer's way back), so a release id made from it is never
        // ahead of the host. (Whole seconds left it up to 2 s behind: `logs --since-deploy`
        // then showed the lines of a deploy a second earlier.)
        self.clock_offset = Some(host as i64 - local);
    }

    /// Is `current` a release whose deploy was never confirmed (its self-revert still armed)?
    pub fn current_unconfirmed(&self) -> bool {
        self.revert_pending && self.revert_for.is_some() && self.revert_for == self.current
    }

    /// Is `current` a release whose deploy was never confirmed and whose self-revert timer is
    /// gone? The timer is transient: a restart of the user's manager (or a reboot) before its
    /// deadline drops it, and the unconfirmed release would then stay for good. Told by the
    /// record of the release the timer was armed for (`revert.target`, which the confirm
    /// removes; older versions kept it) being `current` with no timer armed and no history
    /// line about it: a confirm, a rollback to it and the revert itself all write one.
    pub fn revert_lost(&self) -> bool {
        let Some(current) = &self.current else {
            return false;
        };
        !self.revert_pending
            && self.revert_for.as_ref() == Some(current)
            && !self.history.iter().any(|r| {
                (&r.release == current && !matches!(r.action, Action::Stage | Action::Migrate))
                    || (r.action == Action::Revert && r.previous.as_ref() == Some(current))
            })
    }

    /// What to tell the user about the current release's self-revert: pending, or lost.
    pub fn revert_notice(&self, service: &str) -> Option<String> {
        let current = self.current.as_deref()?;
        let state = if self.current_unconfirmed() {
            crate::plan::revert::Notice::Pending {
                deadline: self.revert_deadline,
                now: self.clock,
            }
        } else if self.revert_lost() {
            crate::plan::revert::Notice::Lost
        } else {
            return None;
        };
        Some(crate::plan::revert::notice(service, current, state))
    }

    /// Was the current release verified when it went live? Its last history record says so;
    /// a release with no record at all (history lost) is taken as verified, unless its
    /// self-revert was lost ([`RemoteState::revert_lost`]).
    pub fn current_verified(&self) -> bool {
        let Some(current) = &self.current else {
            return false;
        };
        if self.revert_lost() {
            return false;
        }
        // A self-revert away from it means its deploy was never confirmed.
        match self.history.iter().rposition(|r| {
            &r.release == current
                || (r.action == Action::Revert && r.previous.as_ref() == Some(current))
        }) {
            Some(i) if &self.history[i].release == current => {
                crate::release::good_at(&self.history, i)
            }
            Some(_) => false,
            None => true,
        }
    }

    /// The staged release and the release that was current when it was staged (its `stage`
    /// record in the history; None inside when there was none).
    pub fn staged_on(&self) -> Option<(&str, Option<&str>)> {
        let staged = self.staged.as_deref()?;
        let base = self
            .history
            .iter()
            .rev()
            .find(|r| r.action == Action::Stage && r.release == staged)
            .and_then(|r| r.previous.as_deref());
        Some((staged, base))
    }

    /// Blue/green: the colour that brings back release `to` of `service` (one running it
    /// already, else the one not live); None when `to` is not a blue/green release.
    pub fn back_colour(&self, service: &str, to: &Manifest) -> Option<Colour> {
        to.switch.as_ref()?;
        Some(switch::back_colour(self.live, |c| {
            self.colours.get(&c) == Some(&to.id)
                && self
                    .unit_active
                    .get(&switch::instance(service, c))
                    .is_some_and(|s| s == "active")
        }))
    }

    /// The manifest of `current`, when it is readable.
    pub fn current_manifest(&self) -> Option<&Manifest> {
        self.manifest
            .as_ref()
            .filter(|m| Some(&m.id) == self.current.as_ref())
    }

    /// Where a failed deploy goes back to: `current` when it was verified, else the last
    /// verified release still on the host.
    pub fn fallback(&self) -> Option<String> {
        let current = self.current.as_ref()?;
        if self.current_verified() {
            return Some(current.clone());
        }
        self.history
            .iter()
            .rev()
            .filter(|r| r.outcome == Outcome::Ok && &r.release != current)
            .map(|r| &r.release)
            .find(|r| self.releases.contains(r))
            .cloned()
    }
}

/// Whether the probe runs under the service's lock, and what it does about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeLock {
    /// Under this session's lock: the probe may also finish what a session cut off left (the
    /// record of an interrupted rollback).
    Held,
    /// A dry run, which does not take the lock: say who holds it (a shared `flock` for an
    /// instant, so that two dry runs of the same user, two host names of one account, do not
    /// see each other as holders).
    Report,
    /// Only read (`ferry releases`).
    Ignore,
}

/// Shell script printing the remote state as `key=value` lines (see [`ProbeLock`] for `lock`).
pub fn remote_state_script(
    paths: &Paths,
    dests: &[String],
    units: &[String],
    lock: ProbeLock,
) -> String {
    let s = quote(&paths.dir());
    let mut script = format!(
        "cd \"$HOME\" || exit 1\n\
         S={s}\n\
         echo \"current=$(readlink \"$S/current\" 2>/dev/null)\"\n\
         echo \"staged=$(readlink \"$S/staged\" 2>/dev/null)\"\n\
         if [ -d \"$S/releases\" ]; then for d in \"$S\"/releases/*; do [ -d \"$d\" ] && echo \"release=${{d##*/}}\"; done; fi\n\
         if [ -f \"$S/current/{meta}/manifest.json\" ]; then echo \"manifest=$(tr -d '\\n' < \"$S/current/{meta}/manifest.json\")\"; fi\n\
         {fold}\
         if [ -f \"$S/history.jsonl\" ]; then sed 's/^/history=/' \"$S/history.jsonl\"; echo; fi\n\
         {show}\
         set -- {ud}/*; [ -e \"$1\" ] && sha256sum -- \"$@\" 2>/dev/null | sed -n 's|^\\([0-9a-f]\\{{64\\}}\\)  .*/|unit=\\1 |p'\n\
         echo \"revert_for=$(cat \"$S/revert.target\" 2>/dev/null)\"\n\
         echo \"revert_deadline=$(cat \"$S/revert.deadline\" 2>/dev/null)\"\n\
         for d in \"$S\"/releases/.*.partial; do [ -d \"$d\" ] && echo \"partial=${{d##*/}}\"; done\n\
         d=\"$S\"; while [ ! -e \"$d\" ] && [ \"$d\" != . ]; do d=$(dirname \"$d\"); done\n\
         echo \"live=$(readlink \"$S/live.sock\" 2>/dev/null)\"\n\
         for c in blue green; do echo \"colour.$c=$(readlink \"$S/colors/$c\" 2>/dev/null)\"; done\n\
         echo \"free=$(df -Pk -- \"$d\" 2>/dev/null | awk 'NR==2 {{print $4}}') $d\"\n\
         command -v gzip >/dev/null 2>&1 && echo gzip=yes\n\
         command -v tar >/dev/null 2>&1 && echo tar=yes\n\
         echo \"now=$(date +%s.%N)\"\n\
         {linger}",
        meta = release::META_DIR,
        ud = release::UNIT_DIR,
        linger = LINGER_SCRIPT,
        fold = if lock == ProbeLock::Held {
            pending_script(paths, true)
        } else {
            String::new()
        },
        show = if lock == ProbeLock::Held {
            String::new()
        } else {
            pending_script(paths, false)
        },
    );
    script.push_str(crate::elf::FACTS_SCRIPT);
    if lock == ProbeLock::Report {
        script.push_str(
            "if [ -e \"$S/lock\" ]; then flock -n -s -E 75 \"$S/lock\" true 2>/dev/null; [ $? -eq 75 ] && echo \"lock=$(head -c 300 \"$S/lock.info\" 2>/dev/null | tr -d '\\n')\"; fi\n",
        );
    }
    // The self-revert timer's state and the units', in one systemctl call.
    let mut list: Vec<String> = vec![quote(&format!("{}.timer", paths.revert_unit()))];
    list.extend(units.iter().map(|u| quote(u)));
    script.push_str(&format!(
        "systemctl --user show -p Id -p ActiveState -p NeedDaemonReload -- {} 2>/dev/null | sed -n 's/^\\(Id\\|ActiveState\\|NeedDaemonReload\\)=/unitstate.\\1=/p'\n",
        list.join(" ")
    ));
    if !dests.is_empty() {
        // The current release's files: the hash from its stat record when `stat` still says
        // the same of the file (awk prints those lines itself), else (no record, or the file
        // was touched) sha256sum on the host, one file at a time: awk lists those in a
        // temporary file for a shell loop. The shell reads byte by byte, so no line it does
        // not need goes through it (10,000 known files: 0.3 s through a `read` loop).
        // The list goes through `xargs -0` from the shell's builtins: no argument list
        // grows with the number of files, no loop is quadratic. Dests hold no control
        // characters (config validation), so a line is a name. Only regular files count
        // (not symlinks, directories or missing names): `stat`'s `%A` starts with `-` for
        // them whatever the locale (no shell test per file: 10,000 files, 40 ms less).
        let list: Vec<String> = dests.iter().map(|d| quote(d)).collect();
        script.push_str(&format!(
            "if cd \"$S/current\" 2>/dev/null && T=$(mktemp); then\n\
             printf '%s\\0' {list} | \
             xargs -0 -r stat -c {fmt} -- 2>/dev/null | \
             awk -v rec={meta}/{rec} -v t=\"$T\" 'BEGIN {{ while ((getline l < rec) > 0) {{ i = index(l, \" \"); if (i) known[substr(l, i + 1)] = substr(l, 1, i - 1) }} }} \
             substr($0, 1, 1) != \"-\" {{ next }} \
             {{ sub(/^[^ ]* /, \"\"); h = known[$0]; sub(/^[^ ]* [^ ]* [^ ]* /, \"\"); if (h != \"\") print \"file=\" h \" \" $0; else print > t }}'\n\
             while IFS= read -r f; do echo \"file=$(sha256sum < \"$f\" | cut -c1-64) $f\"; done < \"$T\"; rm -f \"$T\"\n\
             fi\n",
            list = list.join(" "),
            fmt = quote(&format!("%A {}", release::STAT_FORMAT)),
            meta = release::META_DIR,
            rec = release::STAT_RECORD,
        ));
    }
    script.push_str("exit 0\n");
    script
}

/// Shell lines for the record of a rollback that was cut off ([`Paths::pending_record`]):
/// under the lock (`locked`), append it to the history with where `current` points now, remove
/// it and print `interrupted=RELEASE`; else (a dry run) only show it as a history line.
fn pending_script(paths: &Paths, locked: bool) -> String {
    let p = quote(&paths.pending_record());
    if locked {
        format!(
            "if [ -f {p} ]; then c=$(readlink \"$S/current\" 2>/dev/null); \
             sed \"s|{cur}|${{c:-nothing}}|g\" {p} >> \"$S/history.jsonl\" && rm -f {p} && \
             sed -n 's/.*\"release\":\"\\([^\"]*\\)\".*/interrupted=\\1/p' \"$S/history.jsonl\" | tail -n 1; fi\n",
            cur = release::PENDING_CURRENT,
        )
    } else {
        format!(
            "if [ -f {p} ]; then c=$(readlink \"$S/current\" 2>/dev/null); sed \"s|{cur}|${{c:-nothing}}|g; s/^/history=/\" {p}; echo; fi\n",
            cur = release::PENDING_CURRENT,
        )
    }
}

/// Shell lines printing `user=NAME` and `linger=yes|no` for the login user: the linger file
/// (what `loginctl enable-linger` creates), else logind's word (only asked when the file is
/// absent, as on most hosts it is there).
pub const LINGER_SCRIPT: &str = "u=$(id -un 2>/dev/null); echo \"user=$u\"\n\
    if [ -e \"/var/lib/systemd/linger/$u\" ]; then echo linger=yes; \
    else echo \"linger=$(loginctl show-user \"$u\" --property=Linger --value 2>/dev/null || echo no)\"; fi\n";

/// Is this unit a service's self-revert timer (see [`release::Paths::revert_unit`])?
pub(crate) fn is_revert_timer(unit: &str) -> bool {
    unit.starts_with("ferry-revert-") && unit.ends_with(".timer")
}

/// `linger=` of [`LINGER_SCRIPT`]: yes, no (or nothing: no linger file, no logind answer),
/// else unknown.
fn parse_linger(v: &str) -> Option<bool> {
    match v.trim() {
        "yes" => Some(true),
        "no" | "" => Some(false),
        _ => None,
    }
}

/// `partial=` of the probe: a staging directory (`.ID.partial`) an interrupted deploy left.
fn parse_partial_dir(v: &str) -> Option<String> {
    let dir = v.trim();
    let id = dir.trim_start_matches('.').trim_end_matches(".partial");
    release::is_release_id(id).then(|| dir.to_string())
}

/// `lock=` of a dry run's probe: who holds the lock, as its holder wrote it.
fn lock_holder(v: &str) -> String {
    match v.trim() {
        "" => "another deploy".to_string(),
        holder => holder.to_string(),
    }
}

/// Parse the output of [`remote_state_script`].
pub fn parse_remote_state(text: &str) -> RemoteState {
    let mut st = RemoteState::default();
    let mut last_unit: Option<String> = None;
    for line in text.lines() {
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        match k {
            "current" => st.current = release::parse_current(v),
            "staged" => st.staged = release::parse_current(v),
            "live" => st.live = Colour::of_link(v),
            "colour.blue" | "colour.green" => {
                let id = v.trim().trim_start_matches("../releases/");
                if let Some(c) = Colour::parse(&k["colour.".len()..])
                    && release::is_release_id(id)
                {
                    st.colours.insert(c, id.to_string());
                }
            }
            "release" if release::is_release_id(v) => st.releases.push(v.to_string()),
            "revert_for" if release::is_release_id(v.trim()) => {
                st.revert_for = Some(v.trim().to_string())
            }
            "revert_deadline" => st.revert_deadline = v.trim().parse().ok(),
            "manifest" => st.manifest = serde_json::from_str(v).ok(),
            "unitstate.Id" => last_unit = Some(v.trim().to_string()),
            "unitstate.ActiveState" => match last_unit.clone() {
                Some(u) if is_revert_timer(&u) => st.revert_pending = v.trim() == "active",
                Some(u) => {
                    st.unit_active.insert(u, v.trim().to_string());
                }
                None => {}
            },
            "unitstate.NeedDaemonReload" => st.need_reload |= v.trim() == "yes",
            "gzip" => st.gzip = v.trim() == "yes",
            "tar" => st.tar = v.trim() == "yes",
            "interrupted" if release::is_release_id(v.trim()) => {
                st.interrupted_rollback = Some(v.trim().to_string())
            }
            "now" => {
                st.clock_ms = parse_clock_ms(v.trim());
                st.clock = st.clock_ms.map(|ms| ms / 1000);
            }
            "user" if !v.trim().is_empty() => st.user = Some(v.trim().to_string()),
            "linger" => st.linger = parse_linger(v),
            "partial" => st.partial.extend(parse_partial_dir(v)),
            "partial.file" => st
                .partial_files
                .extend(crate::plan::resume::parse_partial_file(v)),
            "prefix.file" => st
                .current_prefixes
                .extend(crate::plan::prefix::parse_prefix(v)),
            "free" => st.free = FreeSpace::parse(v).or(st.free.take()),
            "lock" => st.lock_holder = Some(lock_holder(v)),
            "history" => {
                if let Ok(r) = serde_json::from_str(v) {
                    st.history.push(r)
                }
            }
            "unit" | "file" => {
                if let Some((hash, name)) = v.split_once(' ') {
                    let map = if k == "unit" {
                        &mut st.installed_units
                    } else {
                        &mut st.current_files
                    };
                    map.insert(name.to_string(), hash.to_string());
                }
            }
            k => {
                crate::elf::parse_line(&mut st.host, k, v);
            }
        }
    }
    st.releases.sort();
    st
}
