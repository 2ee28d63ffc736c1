//! Planning, pure: local release + remote state -> what a deploy does on one host.
//!
//! The plan is what `--dry-run` prints and what `deploy` executes: which files are uploaded or
//! reused from the current release, which units are new, changed or removed, what is enabled,
//! restarted and started. The remote-state probe and the activation script are generated here
//! too, as text, so they can be read and tested without a host.

pub mod revert;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::config::Service;
use crate::human::human_bytes;
use crate::release::{self, Manifest, ManifestFile, ManifestUnit, Paths};
use crate::shell::quote;
use crate::systemd;

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
}

/// An instance of a template unit (`app@1.service`, not `app@.service`).
fn is_instance(unit: &str) -> bool {
    unit.contains('@') && !unit.contains("@.")
}

impl LocalRelease {
    /// Hash of everything that makes up the release (files, modes, units), hex.
    pub fn content_hash(&self) -> String {
        let mut h = Sha256::new();
        for f in &self.files {
            h.update(format!("f {} {:o} {}\n", f.dest, f.mode, f.sha256));
        }
        for u in &self.units {
            h.update(format!("u {} {}\n", u.name, u.sha256));
        }
        if let Some(env) = &self.env {
            h.update(format!("e {}\n", env.sha256()));
        }
        hex(&h.finalize())
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

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
    /// Staging directories left by interrupted deploys (`.ID.partial`).
    pub partial: Vec<String>,
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
}

/// Free bytes on a filesystem of the host, and the path (relative to the home directory,
/// `.` for the home directory itself) they were measured at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FreeSpace {
    pub bytes: u64,
    pub path: String,
}

impl FreeSpace {
    /// The path as a user would type it on the host (`~/...`).
    pub fn display_path(&self) -> String {
        match self.path.trim_start_matches("./") {
            "." | "" => "~".to_string(),
            p => format!("~/{p}"),
        }
    }
}

impl RemoteState {
    /// Is `current` a release whose deploy was never confirmed (its self-revert still armed)?
    pub fn current_unconfirmed(&self) -> bool {
        self.revert_pending && self.revert_for.is_some() && self.revert_for == self.current
    }

    /// Was the current release verified when it went live? Its last history record says so;
    /// a release with no record at all (history lost) is taken as verified.
    pub fn current_verified(&self) -> bool {
        let Some(current) = &self.current else {
            return false;
        };
        // A self-revert away from it means its deploy was never confirmed.
        match self.history.iter().rev().find(|r| {
            &r.release == current || (r.action == "revert" && r.previous.as_ref() == Some(current))
        }) {
            Some(r) if &r.release == current => r.outcome == "ok",
            Some(_) => false,
            None => true,
        }
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
            .filter(|r| r.outcome == "ok" && &r.release != current)
            .map(|r| &r.release)
            .find(|r| self.releases.contains(r))
            .cloned()
    }
}

/// Shell script printing the remote state as `key=value` lines. With `check_lock` (a dry run,
/// which does not take the lock) it also says who holds the lock.
pub fn remote_state_script(
    paths: &Paths,
    dests: &[String],
    units: &[String],
    check_lock: bool,
) -> String {
    let s = quote(&paths.dir());
    let mut script = format!(
        "cd \"$HOME\" || exit 1\n\
         S={s}\n\
         echo \"current=$(readlink \"$S/current\" 2>/dev/null)\"\n\
         if [ -d \"$S/releases\" ]; then for d in \"$S\"/releases/*; do [ -d \"$d\" ] && echo \"release=${{d##*/}}\"; done; fi\n\
         if [ -f \"$S/current/{meta}/manifest.json\" ]; then echo \"manifest=$(tr -d '\\n' < \"$S/current/{meta}/manifest.json\")\"; fi\n\
         if [ -f \"$S/history.jsonl\" ]; then sed 's/^/history=/' \"$S/history.jsonl\"; echo; fi\n\
         set -- {ud}/*; [ -e \"$1\" ] && sha256sum -- \"$@\" 2>/dev/null | sed -n 's|^\\([0-9a-f]\\{{64\\}}\\)  .*/|unit=\\1 |p'\n\
         echo \"revert_for=$(cat \"$S/revert.target\" 2>/dev/null)\"\n\
         for d in \"$S\"/releases/.*.partial; do [ -d \"$d\" ] && echo \"partial=${{d##*/}}\"; done\n\
         d=\"$S\"; while [ ! -e \"$d\" ] && [ \"$d\" != . ]; do d=$(dirname \"$d\"); done\n\
         echo \"free=$(df -Pk -- \"$d\" 2>/dev/null | awk 'NR==2 {{print $4}}') $d\"\n",
        meta = release::META_DIR,
        ud = release::UNIT_DIR,
    );
    if check_lock {
        script.push_str(
            "if [ -e \"$S/lock\" ]; then flock -n -E 75 \"$S/lock\" true 2>/dev/null; [ $? -eq 75 ] && echo \"lock=$(head -c 300 \"$S/lock.info\" 2>/dev/null | tr -d '\\n')\"; fi\n",
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
        // the same of the file, else (no record, or the file was touched) sha256sum on the host.
        let list: Vec<String> = dests.iter().map(|d| quote(d)).collect();
        script.push_str(&format!(
            "if cd \"$S/current\" 2>/dev/null; then\n\
             set --; for f in {list}; do [ -f \"$f\" ] && [ ! -L \"$f\" ] && set -- \"$@\" \"$f\"; done\n\
             if [ $# -gt 0 ]; then stat -c {fmt} -- \"$@\" 2>/dev/null | \
             awk -v rec={meta}/{rec} 'BEGIN {{ while ((getline l < rec) > 0) {{ i = index(l, \" \"); if (i) known[substr(l, i + 1)] = substr(l, 1, i - 1) }} }} \
             {{ h = known[$0]; sub(/^[^ ]* [^ ]* [^ ]* /, \"\"); if (h != \"\") print \"file=\" h \" \" $0; else print \"rehash \" $0 }}' | \
             while IFS= read -r l; do case \"$l\" in \"rehash \"*) f=${{l#rehash }}; echo \"file=$(sha256sum < \"$f\" | cut -c1-64) $f\" ;; *) printf '%s\\n' \"$l\" ;; esac; done; fi\n\
             fi\n",
            list = list.join(" "),
            fmt = quote(release::STAT_FORMAT),
            meta = release::META_DIR,
            rec = release::STAT_RECORD,
        ));
    }
    script.push_str("exit 0\n");
    script
}

/// Is this unit a service's self-revert timer (see [`release::Paths::revert_unit`])?
fn is_revert_timer(unit: &str) -> bool {
    unit.starts_with("ferry-revert-") && unit.ends_with(".timer")
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
            "release" if release::is_release_id(v) => st.releases.push(v.to_string()),
            "revert_for" if release::is_release_id(v.trim()) => {
                st.revert_for = Some(v.trim().to_string())
            }
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
            "partial" => {
                let id = v
                    .trim()
                    .trim_start_matches('.')
                    .trim_end_matches(".partial");
                if release::is_release_id(id) {
                    st.partial.push(v.trim().to_string());
                }
            }
            "free" => {
                if let Some((kib, path)) = v.split_once(' ')
                    && let Ok(kib) = kib.trim().parse::<u64>()
                {
                    st.free = Some(FreeSpace {
                        bytes: kib.saturating_mul(1024),
                        path: path.trim().to_string(),
                    });
                }
            }
            "lock" => {
                let holder = v.trim();
                st.lock_holder = Some(if holder.is_empty() {
                    "another deploy".to_string()
                } else {
                    holder.to_string()
                });
            }
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
            _ => {}
        }
    }
    st.releases.sort();
    st
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    New,
    Changed,
    Unchanged,
    Removed,
}

/// How a file gets into the new release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transfer {
    /// Sent over SFTP.
    Upload,
    /// Identical to the current release's file: copied on the host, not sent.
    Reuse,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FilePlan {
    pub dest: String,
    #[serde(skip)]
    pub source: PathBuf,
    /// In JSON an octal string like `"0755"`, as in deploy.toml.
    #[serde(serialize_with = "octal_mode")]
    pub mode: u32,
    pub size: u64,
    /// Not printed: a hash of a short secret could be guessed.
    #[serde(skip)]
    pub sha256: String,
    /// A rendered `template = true` file: uploaded from memory instead of `source`.
    #[serde(skip)]
    pub content: Option<Vec<u8>>,
    pub change: Change,
    pub transfer: Transfer,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnitPlan {
    pub name: String,
    pub change: Change,
}

/// One step of a deploy on one host. A plan lists them in the order `deploy` executes them;
/// `--dry-run` prints the same list. After a failed step the plan's [`OnFailure`] applies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "step", rename_all = "kebab-case")]
pub enum Step {
    /// Hold the service's lock on the host (taken before the host is read, so the plan is
    /// made under it).
    Lock,
    /// Nothing to do: this release (same files, units, modes, env and checks) is the current
    /// one, verified, and its units are up. No new release, no restart (`--force` deploys).
    Unchanged { current: String },
    /// Do nothing on this host, for this reason.
    Refuse {
        reason: String,
        /// `locked` or `pending-revert`.
        why: Refusal,
    },
    /// Remove staging directories left by interrupted deploys.
    CleanStaging { dirs: Vec<String> },
    /// Stop a self-revert timer left for a release that is no longer current.
    ClearStaleRevert,
    /// Create the staging directory `releases/.ID.partial` and its subdirectories.
    Stage { release: String },
    /// Copy files identical to the current release's on the host instead of sending them.
    Reuse { files: Vec<String> },
    /// Send files over SFTP.
    Upload { files: Vec<String>, bytes: u64 },
    /// Give the staged files their modes, fsync them, write the stat record and rename the
    /// staging directory to `releases/ID`: the release is complete on the host. Then, in the
    /// same command, check its unit files `units` (`systemd-analyze --user verify` with the
    /// lints that need the host's facts), before anything is switched: an error stops the
    /// deploy here (outcome `refused`).
    /// With `arm_revert` (when no `before_switch` hook runs before the switch), the same
    /// command then arms the self-revert (see [`Step::ArmRevert`]); a refused release's timer
    /// is stopped at once.
    Seal {
        release: String,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        units: Vec<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        arm_revert: Option<RevertArm>,
    },
    /// Run the `before_switch` hook in the new release's directory, with its env. Failure
    /// stops the deploy on this host before anything live changes.
    BeforeSwitch { command: String },
    /// Arm a timer on the host that goes back to `to` unless the deploy is confirmed in time.
    ArmRevert { to: String, after_ms: u64 },
    /// Install the units, switch `current`, daemon-reload, enable, stop, restart, start.
    Activate { release: String },
    /// Wait until these units are up and have stayed up for the settle time.
    Verify { units: Vec<String> },
    /// Run the health checks.
    Health { checks: Vec<String> },
    /// Run the `after_switch` hook in the new (now current) release's directory. Failure fails
    /// the deploy (the plan's `on_failure` applies).
    AfterSwitch { command: String },
    /// Disarm the self-revert and record the release as deployed; then, in the same command,
    /// delete the old releases `prune` (never `current`, never the last verified one).
    Confirm {
        release: String,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        prune: Vec<String>,
    },
}

/// A self-revert to arm: back to release `to` unless confirmed within `after_ms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RevertArm {
    pub to: String,
    pub after_ms: u64,
}

/// Why a host is not deployed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Refusal {
    /// Another deploy or rollback holds the lock.
    Locked,
    /// The current release's self-revert is still armed.
    PendingRevert,
    /// The release does not fit in the free space of the host's filesystem.
    DiskFull,
}

impl Step {
    /// The step's name, as in JSON (`"step"` field).
    pub fn name(&self) -> &'static str {
        match self {
            Step::Lock => "lock",
            Step::Unchanged { .. } => "unchanged",
            Step::Refuse { .. } => "refuse",
            Step::CleanStaging { .. } => "clean-staging",
            Step::ClearStaleRevert => "clear-stale-revert",
            Step::Stage { .. } => "stage",
            Step::Reuse { .. } => "reuse",
            Step::Upload { .. } => "upload",
            Step::Seal { .. } => "seal",
            Step::BeforeSwitch { .. } => "before-switch",
            Step::ArmRevert { .. } => "arm-revert",
            Step::Activate { .. } => "activate",
            Step::Verify { .. } => "verify",
            Step::Health { .. } => "health",
            Step::AfterSwitch { .. } => "after-switch",
            Step::Confirm { .. } => "confirm",
        }
    }
}

/// What happens when activation, verification or a health check fails.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "then", rename_all = "kebab-case")]
pub enum OnFailure {
    /// Go back to this release (verified before) and verify it.
    RollBack { to: String },
    /// Leave the failed release in place, for this reason.
    Stay { reason: String },
}

fn octal_mode<S: serde::Serializer>(mode: &u32, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{mode:04o}"))
}

/// What a deploy does on one host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub service: String,
    pub release: String,
    /// The name of the staging directory (`releases/.STAGING.partial`): the release id, or the
    /// pending id the release was staged under when its id waited for the upload's hashes.
    #[serde(skip)]
    pub staging: String,
    pub previous: Option<String>,
    /// Was `previous` verified when it went live? (A release whose self-revert failed was not.)
    pub previous_verified: bool,
    pub files: Vec<FilePlan>,
    pub units: Vec<UnitPlan>,
    /// Names of the variables of the release's env file (never their values).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    pub enable: Vec<String>,
    /// Changed socket units (not restarted by the list) stopped before the restart.
    pub stop_first: Vec<String>,
    pub restart: Vec<String>,
    /// Sockets, timers, paths and targets started (a no-op when already active).
    pub start: Vec<String>,
    /// Does the activation run `systemctl --user daemon-reload`? Only when a unit file is new,
    /// changed or removed, or the manager has not loaded one as it is on disk.
    pub daemon_reload: bool,
    /// Every step, in order.
    pub steps: Vec<Step>,
    pub on_failure: OnFailure,
    #[serde(skip)]
    pub manifest: Manifest,
}

impl Plan {
    /// The current release, when there is nothing to do.
    pub fn unchanged(&self) -> Option<&str> {
        self.steps.iter().find_map(|s| match s {
            Step::Unchanged { current } => Some(current.as_str()),
            _ => None,
        })
    }

    /// The refusal, when the plan is one.
    pub fn refusal(&self) -> Option<(&str, Refusal)> {
        self.steps.iter().find_map(|s| match s {
            Step::Refuse { reason, why } => Some((reason.as_str(), *why)),
            _ => None,
        })
    }

    pub fn upload_bytes(&self) -> u64 {
        self.files
            .iter()
            .filter(|f| f.transfer == Transfer::Upload)
            .map(|f| f.size)
            .sum()
    }

    /// Bytes the new release takes on the host: every file (uploaded or copied from the
    /// current release), rounded up to whole 4 KiB blocks, its unit files and manifest, and
    /// [`SPACE_MARGIN`] for directories, temporary names and the history.
    pub fn space_needed(&self) -> u64 {
        let block = |n: u64| n.div_ceil(BLOCK).max(1) * BLOCK;
        let files: u64 = self.files.iter().map(|f| block(f.size)).sum();
        let meta = (self.units.len() as u64 + 1) * BLOCK;
        files + meta + SPACE_MARGIN
    }

    /// What a user must know when the connection to the host is lost during step `index`
    /// (or during the rollback after a failure, `index` = None): the state the host is in.
    pub fn state_if_lost(&self, index: Option<usize>, confirm_timeout: Duration) -> String {
        let armed = self.steps.iter().find_map(|s| match s {
            Step::ArmRevert { to, .. } => Some(to.clone()),
            Step::Seal {
                arm_revert: Some(a),
                ..
            } => Some(a.to.clone()),
            _ => None,
        });
        let position = |name: &str| self.steps.iter().position(|s| s.name() == name);
        let (activate, confirm) = (position("activate"), position("confirm"));
        let previous = match &self.previous {
            Some(p) => format!("release {p}"),
            None => "no release of this service (first deploy)".to_string(),
        };
        let revert = |to: &str| {
            format!(
                "the self-revert armed on the host brings release {to} back within confirm_timeout ({}) unless this deploy was confirmed",
                humantime::format_duration(confirm_timeout)
            )
        };
        let partial = format!(
            "a partial upload (releases/.{}.partial) may be left: the next deploy removes it",
            self.staging
        );
        match index {
            None => match &armed {
                Some(to) => format!("during the rollback: {}", revert(to)),
                None => format!(
                    "during the rollback: the host may run release {} or {previous}, unverified; run `ferry status` and `ferry rollback {}`",
                    self.release, self.service
                ),
            },
            // Up to activation (a self-revert armed by then does nothing while `current` is
            // unchanged, and the next deploy clears it).
            Some(i) if activate.is_none_or(|a| i < a) => format!(
                "before activation: the host still runs {previous}, nothing it uses was changed; {partial}"
            ),
            Some(i) if confirm == Some(i) => match &armed {
                Some(to) => format!(
                    "while confirming release {}: if the confirmation reached the host it stays, else {}; `ferry releases {}` shows which",
                    self.release,
                    revert(to),
                    self.service
                ),
                None => format!(
                    "while confirming release {}: the host runs it, verified, but its history record may be missing",
                    self.release
                ),
            },
            Some(i) if activate == Some(i) => match &armed {
                Some(to) => format!(
                    "during the activation of {}: if it reached the host, {}; else the host still runs {previous}",
                    self.release,
                    revert(to)
                ),
                None => format!(
                    "during the activation of {}: the host runs it or {previous}, unverified, with no self-revert (first deploy or --no-rollback); run `ferry status {}`",
                    self.release, self.service
                ),
            },
            Some(_) => match &armed {
                Some(to) => format!("after activation of {}: {}", self.release, revert(to)),
                None => format!(
                    "after activation: the host runs release {}, not verified and with no self-revert (first deploy or --no-rollback); run `ferry status {}`",
                    self.release, self.service
                ),
            },
        }
    }

    pub fn removed_units(&self) -> Vec<String> {
        self.units
            .iter()
            .filter(|u| u.change == Change::Removed)
            .map(|u| u.name.clone())
            .collect()
    }
}

/// The block size space is counted in.
const BLOCK: u64 = 4096;

/// Room kept free beyond the release itself (directories, temporary names, history, logs).
pub const SPACE_MARGIN: u64 = 1024 * 1024;

/// Who deploys, for manifests and history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub by: String,
    pub git_commit: Option<String>,
    pub created: String,
}

/// Options of a deploy that change its plan.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    /// Leave a failed release in place instead of going back.
    pub no_rollback: bool,
    /// Deploy even when the release is the one already current and up (`--force`).
    pub force: bool,
}

/// Does a host whose state is `remote` get the local file of `size` bytes at `dest` uploaded,
/// whatever its content? Yes when the current release has no file there, or one of another
/// size (its manifest says): only an identical file is reused. Then the plan needs no hash of
/// it before the upload, which can learn it.
pub fn upload_certain(remote: &RemoteState, dest: &str, size: u64) -> bool {
    if !remote.current_files.contains_key(dest) {
        return true;
    }
    remote
        .current_manifest()
        .and_then(|m| m.files.iter().find(|f| f.dest == dest))
        .is_some_and(|f| f.size != size)
}

/// Build the plan for one host.
pub fn make(
    service: &Service,
    local: &LocalRelease,
    remote: &RemoteState,
    release_id: &str,
    origin: &Origin,
    opts: Options,
) -> Plan {
    let previous_units: BTreeSet<String> = remote
        .manifest
        .as_ref()
        .map(|m| m.units.iter().map(|u| u.name.clone()).collect())
        .unwrap_or_default();
    let files = local
        .files
        .iter()
        .map(|f| {
            let remote_hash = remote.current_files.get(&f.dest);
            let (change, transfer) = match remote_hash {
                None => (Change::New, Transfer::Upload),
                Some(h) if *h == f.sha256 => (Change::Unchanged, Transfer::Reuse),
                Some(_) => (Change::Changed, Transfer::Upload),
            };
            FilePlan {
                dest: f.dest.clone(),
                source: f.source.clone(),
                mode: f.mode,
                size: f.size,
                sha256: f.sha256.clone(),
                content: f.content.clone(),
                change,
                transfer,
            }
        })
        .collect();
    let mut units: Vec<UnitPlan> = local
        .units
        .iter()
        .map(|u| UnitPlan {
            name: u.name.clone(),
            change: match remote.installed_units.get(&u.name) {
                None => Change::New,
                Some(h) if *h == u.sha256 => Change::Unchanged,
                Some(_) => Change::Changed,
            },
        })
        .collect();
    // Instances the current release runs and this one does not: stopped and disabled.
    for gone in remote
        .manifest
        .iter()
        .flat_map(|m| m.restart.iter())
        .filter(|u| is_instance(u) && !local.instances.contains(u))
    {
        units.push(UnitPlan {
            name: gone.clone(),
            change: Change::Removed,
        });
    }
    let local_names: BTreeSet<&str> = local.units.iter().map(|u| u.name.as_str()).collect();
    for gone in previous_units
        .iter()
        .filter(|n| !local_names.contains(n.as_str()))
    {
        units.push(UnitPlan {
            name: gone.clone(),
            change: Change::Removed,
        });
    }
    let mut enable: Vec<String> = if service.enable {
        local
            .units
            .iter()
            .filter(|u| u.has_install_section() && !u.name.contains("@."))
            .map(|u| u.name.clone())
            .collect()
    } else {
        Vec::new()
    };
    let mut restart = service.restart.clone();
    for i in &local.instances {
        let template = local
            .units
            .iter()
            .find(|u| crate::systemd::template_of(i) == u.name);
        if service.enable && template.is_some_and(|u| u.has_install_section()) {
            enable.push(i.clone());
        }
        if !restart.contains(i) {
            restart.push(i.clone());
        }
    }
    let startable = |n: &str| {
        matches!(
            systemd::unit_type(n),
            "socket" | "timer" | "path" | "target"
        )
    };
    let start: Vec<String> = local
        .units
        .iter()
        .map(|u| u.name.clone())
        .filter(|n| startable(n) && !restart.contains(n) && !n.contains("@."))
        .collect();
    let stop_first: Vec<String> = units
        .iter()
        .filter(|u| {
            u.change == Change::Changed
                && systemd::unit_type(&u.name) == "socket"
                && !restart.contains(&u.name)
        })
        .map(|u| u.name.clone())
        .collect();
    let manifest = Manifest {
        id: release_id.to_string(),
        service: service.name.clone(),
        created: origin.created.clone(),
        deployed_by: origin.by.clone(),
        git_commit: origin.git_commit.clone(),
        files: local
            .files
            .iter()
            .map(|f| ManifestFile {
                dest: f.dest.clone(),
                mode: f.mode,
                size: f.size,
                sha256: f.sha256.clone(),
            })
            .chain(local.env.iter().map(|e| ManifestFile {
                dest: crate::release::env::file_in_release(),
                mode: 0o600,
                size: e.size(),
                sha256: e.sha256(),
            }))
            .collect(),
        units: local
            .units
            .iter()
            .map(|u| ManifestUnit {
                name: u.name.clone(),
                sha256: u.sha256.clone(),
            })
            .collect(),
        restart: restart.clone(),
        enable: enable.clone(),
        start: start.clone(),
        judging: Some(release::StoredJudging::of(service)),
    };
    let daemon_reload = remote.need_reload || units.iter().any(|u| u.change != Change::Unchanged);
    let mut plan = Plan {
        service: service.name.clone(),
        release: release_id.to_string(),
        staging: release_id.to_string(),
        previous: remote.current.clone(),
        previous_verified: remote.current_verified(),
        files,
        units,
        env: local
            .env
            .as_ref()
            .map(|e| e.names.clone())
            .unwrap_or_default(),
        daemon_reload,
        enable,
        stop_first,
        restart,
        start,
        steps: Vec::new(),
        on_failure: OnFailure::Stay {
            reason: String::new(),
        },
        manifest,
    };
    plan.on_failure = on_failure(remote, opts);
    plan.steps = steps(service, remote, &plan, opts);
    plan
}

fn on_failure(remote: &RemoteState, opts: Options) -> OnFailure {
    let stay = |reason: &str| OnFailure::Stay {
        reason: reason.to_string(),
    };
    let Some(current) = &remote.current else {
        return stay("first deploy of this service: nothing to roll back to");
    };
    if opts.no_rollback {
        return stay("--no-rollback: the failed release stays in place");
    }
    match remote.fallback() {
        Some(to) if &to != current || remote.current_manifest().is_some() => {
            OnFailure::RollBack { to }
        }
        Some(_) => stay("the previous release has no manifest: cannot roll back"),
        None => stay(&format!(
            "the current release {current} was never verified and no verified release is on the host: nothing to roll back to"
        )),
    }
}

/// Is the plan's release what is current and up on the host already?
pub fn already_deployed(remote: &RemoteState, plan: &Plan) -> bool {
    let Some(current) = remote.current_manifest() else {
        return false;
    };
    if !remote.current_verified() || remote.revert_pending {
        return false;
    }
    let same_files = plan.files.iter().all(|f| f.change == Change::Unchanged);
    let same_units = plan.units.iter().all(|u| u.change == Change::Unchanged);
    if !(same_files && same_units && release::same_content(current, &plan.manifest)) {
        return false;
    }
    // Up: every unit the deploy would verify is active; an idle socket-activated service
    // counts when a socket of the release is active.
    let active = |u: &str| remote.unit_active.get(u).is_some_and(|s| s == "active");
    let socket_up = plan
        .start
        .iter()
        .any(|u| systemd::unit_type(u) == "socket" && active(u));
    Activation::for_plan(plan)
        .verify_units()
        .iter()
        .all(|u| active(u) || (systemd::unit_type(u) == "service" && socket_up))
}

fn steps(service: &Service, remote: &RemoteState, plan: &Plan, opts: Options) -> Vec<Step> {
    if let Some(holder) = &remote.lock_holder {
        return vec![Step::Refuse {
            reason: format!(
                "service `{}` is locked by {holder}; wait for it to finish, or pass --lock-wait DURATION",
                service.name
            ),
            why: Refusal::Locked,
        }];
    }
    let mut steps = vec![Step::Lock];
    if remote.current_unconfirmed() {
        steps.push(Step::Refuse {
            reason: format!(
                "the deploy of {} was never confirmed (ferry stopped before the end) and the host will revert it to the previous release by itself within confirm_timeout ({}); wait for that, or run `ferry rollback {}` now",
                remote.current.as_deref().unwrap_or("the current release"),
                humantime::format_duration(service.confirm_timeout),
                service.name
            ),
            why: Refusal::PendingRevert,
        });
        return steps;
    }
    if !opts.force
        && let Some(current) = &remote.current
        && already_deployed(remote, plan)
    {
        steps.push(Step::Unchanged {
            current: current.clone(),
        });
        return steps;
    }
    // Leftover staging directories hold space the check cannot count: then the cleanup runs
    // first and a full disk is caught by the upload itself.
    if remote.partial.is_empty()
        && let Some(free) = &remote.free
    {
        let needed = plan.space_needed();
        if needed > free.bytes {
            steps.push(Step::Refuse {
                reason: format!(
                    "the host's disk is full: {} free on the filesystem of {}, the release needs {} ({} file(s), {} to upload, and a margin of {}); make room there (or lower keep_releases) and deploy again",
                    human_bytes(free.bytes),
                    free.display_path(),
                    human_bytes(needed),
                    plan.files.len(),
                    human_bytes(plan.upload_bytes()),
                    human_bytes(SPACE_MARGIN),
                ),
                why: Refusal::DiskFull,
            });
            return steps;
        }
    }
    if !remote.partial.is_empty() {
        steps.push(Step::CleanStaging {
            dirs: remote.partial.clone(),
        });
    }
    if remote.revert_pending {
        steps.push(Step::ClearStaleRevert);
    }
    steps.push(Step::Stage {
        release: plan.release.clone(),
    });
    let reuse: Vec<String> = plan
        .files
        .iter()
        .filter(|f| f.transfer == Transfer::Reuse)
        .map(|f| f.dest.clone())
        .collect();
    if !reuse.is_empty() {
        steps.push(Step::Reuse { files: reuse });
    }
    let upload: Vec<String> = plan
        .files
        .iter()
        .filter(|f| f.transfer == Transfer::Upload)
        .map(|f| f.dest.clone())
        .collect();
    if !upload.is_empty() {
        steps.push(Step::Upload {
            files: upload,
            bytes: plan.upload_bytes(),
        });
    }
    let arm = match &plan.on_failure {
        OnFailure::RollBack { to } => Some(RevertArm {
            to: to.clone(),
            after_ms: service.confirm_timeout.as_millis() as u64,
        }),
        OnFailure::Stay { .. } => None,
    };
    // The release's own unit files are checked (not units it removes, not instances of its
    // templates). The self-revert is armed by the seal's command too, unless a before_switch
    // hook runs first (it may fail, and the timer would then guard a release never switched to).
    let hook = service.hooks.before_switch.as_ref();
    steps.push(Step::Seal {
        release: plan.release.clone(),
        units: if units_checked_before(plan, remote) {
            Vec::new()
        } else {
            plan.manifest.units.iter().map(|u| u.name.clone()).collect()
        },
        arm_revert: arm.clone().filter(|_| hook.is_none()),
    });
    if let Some(command) = hook {
        steps.push(Step::BeforeSwitch {
            command: command.clone(),
        });
        if let Some(RevertArm { to, after_ms }) = arm {
            steps.push(Step::ArmRevert { to, after_ms });
        }
    }
    steps.push(Step::Activate {
        release: plan.release.clone(),
    });
    let verify = Activation::for_plan(plan).verify_units();
    if !verify.is_empty() {
        steps.push(Step::Verify { units: verify });
    }
    if let Some(h) = &service.health {
        steps.push(Step::Health {
            checks: health_names(h),
        });
    }
    if let Some(command) = &service.hooks.after_switch {
        steps.push(Step::AfterSwitch {
            command: command.clone(),
        });
    }
    let mut all = remote.releases.clone();
    all.push(plan.release.clone());
    let protect = release::last_good(&remote.history, Some(&plan.release))
        .map(String::from)
        .or_else(|| remote.current.clone());
    let prune = release::to_prune(
        &all,
        Some(&plan.release),
        protect.as_deref(),
        service.keep_releases,
    );
    steps.push(Step::Confirm {
        release: plan.release.clone(),
        prune,
    });
    steps
}

/// Were these unit files checked already? They are those of the current release, verified
/// when it went live, with the same file paths and modes (what `systemd-analyze verify` looks
/// at besides the units: the commands they run): the check would say the same again.
fn units_checked_before(plan: &Plan, remote: &RemoteState) -> bool {
    let Some(current) = remote.current_manifest() else {
        return false;
    };
    let layout = |files: &[release::ManifestFile]| -> Vec<(String, u32)> {
        files.iter().map(|f| (f.dest.clone(), f.mode)).collect()
    };
    remote.current_verified()
        && current.units == plan.manifest.units
        && layout(&current.files) == layout(&plan.manifest.files)
}

/// The health checks set, by name (`http`, `unix_http`, `command`).
pub fn health_names(h: &crate::config::Health) -> Vec<String> {
    let mut v = Vec::new();
    if h.http.is_some() {
        v.push("http".to_string());
    }
    if h.unix_http.is_some() {
        v.push("unix_http".to_string());
    }
    if h.command.is_some() {
        v.push("command".to_string());
    }
    v
}

/// What an activation does: make `release` live with its units.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Activation {
    pub release: String,
    /// Unit files copied into the unit directory (those that differ from what is there).
    pub install: Vec<String>,
    /// Run `daemon-reload` (see [`Plan::daemon_reload`]).
    pub reload: bool,
    pub remove: Vec<String>,
    pub enable: Vec<String>,
    pub stop_first: Vec<String>,
    pub restart: Vec<String>,
    pub start: Vec<String>,
}

impl Activation {
    pub fn for_plan(plan: &Plan) -> Activation {
        // An unchanged unit file is left alone: copying it would give it a new mtime, which
        // the manager would take for a change (NeedDaemonReload) without a reload.
        let changed: BTreeSet<&str> = plan
            .units
            .iter()
            .filter(|u| u.change != Change::Unchanged)
            .map(|u| u.name.as_str())
            .collect();
        Activation {
            release: plan.release.clone(),
            install: plan
                .manifest
                .units
                .iter()
                .map(|u| u.name.clone())
                .filter(|n| changed.contains(n.as_str()))
                .collect(),
            reload: plan.daemon_reload,
            remove: plan.removed_units(),
            enable: plan.enable.clone(),
            stop_first: plan.stop_first.clone(),
            restart: plan.restart.clone(),
            start: plan.start.clone(),
        }
    }

    /// Going back from `from` (the failed or current release) to the release described by
    /// `to`: install `to`'s units, remove units only `from` had, restart `to`'s restart list.
    pub fn back_to(to: &Manifest, from: Option<&Manifest>) -> Activation {
        let keep: BTreeSet<&str> = to.units.iter().map(|u| u.name.as_str()).collect();
        let remove = from
            .map(|m| {
                m.units
                    .iter()
                    .filter(|u| !keep.contains(u.name.as_str()))
                    .map(|u| u.name.clone())
                    .chain(
                        m.restart
                            .iter()
                            .filter(|u| is_instance(u) && !to.restart.contains(u))
                            .cloned(),
                    )
                    .collect()
            })
            .unwrap_or_default();
        // Sockets whose unit file differs between the two releases need a restart too.
        let changed_sockets = from
            .map(|m| {
                to.units
                    .iter()
                    .filter(|u| {
                        systemd::unit_type(&u.name) == "socket"
                            && !to.restart.contains(&u.name)
                            && m.units
                                .iter()
                                .any(|o| o.name == u.name && o.sha256 != u.sha256)
                    })
                    .map(|u| u.name.clone())
                    .collect()
            })
            .unwrap_or_default();
        Activation {
            release: to.id.clone(),
            install: to.units.iter().map(|u| u.name.clone()).collect(),
            reload: true,
            remove,
            enable: to.enable.clone(),
            stop_first: changed_sockets,
            restart: to.restart.clone(),
            start: to.start.clone(),
        }
    }

    /// The shell script that performs the activation on the host. Steps: install the unit
    /// files atomically (copy to a temp name, rename), disable and remove units the release
    /// no longer has, switch `current` atomically (new symlink, rename over), daemon-reload,
    /// enable, stop changed sockets, restart and start (without waiting: ferry verifies).
    pub fn script(&self, paths: &Paths) -> String {
        let words = |v: &[String]| v.iter().map(|s| quote(s)).collect::<Vec<_>>().join(" ");
        let mut s = String::new();
        s.push_str("set -e\ncd \"$HOME\"\n");
        s.push_str(&format!("S={}\n", quote(&paths.dir())));
        s.push_str(&format!(
            "R={}\n",
            quote(&format!("releases/{}", self.release))
        ));
        s.push_str(&format!("UD={}\n", quote(release::UNIT_DIR)));
        s.push_str(
            "[ -d \"$S/$R\" ] || { echo \"release $R is missing on the host\" >&2; exit 3; }\n",
        );
        s.push_str("mkdir -p \"$UD\"\n");
        for u in &self.install {
            let u = quote(u);
            s.push_str(&format!(
                "cp -f \"$S/$R/{meta}/units/\"{u} \"$UD/.ferry-tmp.\"{u}\nmv -f \"$UD/.ferry-tmp.\"{u} \"$UD/\"{u}\n",
                meta = release::META_DIR
            ));
        }
        if !self.remove.is_empty() {
            let r = words(&self.remove);
            s.push_str(&format!(
                "systemctl --user disable --now {r} >/dev/null 2>&1 || true\nfor u in {r}; do rm -f \"$UD/$u\"; done\n"
            ));
        }
        s.push_str(
            "ln -sfn \"$R\" \"$S/.current.tmp\"\nmv -fT \"$S/.current.tmp\" \"$S/current\"\n",
        );
        // Enabled first without a reload of its own (`enable` reloads the manager, which
        // takes as long as the daemon-reload), then one reload when a unit file changed.
        if !self.enable.is_empty() {
            s.push_str(&format!(
                "systemctl --user enable --no-reload {} 2>&1\n",
                words(&self.enable)
            ));
        }
        if self.reload {
            s.push_str("systemctl --user daemon-reload\n");
        }
        if !self.stop_first.is_empty() {
            s.push_str(&format!(
                "systemctl --user stop {}\n",
                words(&self.stop_first)
            ));
        }
        // A service in a crash loop (waiting to be restarted by systemd) is stopped first, and
        // waited for: a restart job merged with its pending automatic restart would count as
        // one of its restarts, and its old crashes would pass for the new release's.
        for u in &self.restart {
            let q = quote(u);
            s.push_str(&format!(
                "[ \"$(systemctl --user show -p SubState --value -- {q})\" = auto-restart ] && systemctl --user stop -- {q} || true\n"
            ));
        }
        // A unit that failed or hit its start limit (quick successive deploys) would refuse to
        // start: clear that first.
        let mut all: Vec<String> = self.restart.clone();
        all.extend(self.start.iter().cloned());
        all.extend(self.stop_first.iter().cloned());
        if !all.is_empty() {
            s.push_str(&format!(
                "systemctl --user reset-failed {} >/dev/null 2>&1 || true\n",
                words(&all)
            ));
        }
        // Sockets (and timers, paths) first, and waited for: a service restarted before its
        // socket listens would take the port itself and the socket would then be refused.
        if !self.start.is_empty() {
            s.push_str(&format!("systemctl --user start {}\n", words(&self.start)));
        }
        if !self.restart.is_empty() {
            s.push_str(&format!(
                "systemctl --user restart --no-block {}\n",
                words(&self.restart)
            ));
        }
        s.push_str("echo activated\n");
        s
    }

    /// Units whose state proves the activation worked.
    pub fn verify_units(&self) -> Vec<String> {
        let mut v = self.restart.clone();
        for u in &self.start {
            if !v.contains(u) {
                v.push(u.clone());
            }
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;
    use std::path::Path;

    fn service() -> Service {
        let c = config::parse(
            r#"
[hosts.h]
address = "x"
[services.app]
units = ["app.service", "app.socket"]
[[services.app.files]]
source = "app"
dest = "bin/app"
mode = "0755"
[[services.app.files]]
source = "msg"
dest = "share/msg"
"#,
            Path::new("deploy.toml"),
            &config::Env {
                home: Some("/home/me".into()),
                local_user: Some("me".into()),
                ssh_config: None,
            },
        )
        .unwrap();
        c.services["app"].clone()
    }

    fn local() -> LocalRelease {
        LocalRelease {
            files: vec![
                LocalFile {
                    source: "app".into(),
                    dest: "bin/app".into(),
                    mode: 0o755,
                    size: 10,
                    sha256: "aa".repeat(32),
                    content: None,
                },
                LocalFile {
                    source: "msg".into(),
                    dest: "share/msg".into(),
                    mode: 0o644,
                    size: 3,
                    sha256: "bb".repeat(32),
                    content: None,
                },
            ],
            units: vec![
                LocalUnit {
                    name: "app.service".into(),
                    content: b"[Service]\nExecStart=x\n".to_vec(),
                    sha256: "11".repeat(32),
                },
                LocalUnit {
                    name: "app.socket".into(),
                    content: b"[Socket]\nListenStream=%t/a\n[Install]\nWantedBy=sockets.target\n"
                        .to_vec(),
                    sha256: "22".repeat(32),
                },
            ],
            env: None,
            instances: Vec::new(),
        }
    }

    /// The plan of the test release, [`ID`], for a host in state `remote`.
    fn plan_on(remote: &RemoteState) -> Plan {
        make(
            &service(),
            &local(),
            remote,
            ID,
            &origin(),
            Options::default(),
        )
    }

    fn origin() -> Origin {
        Origin {
            by: "me@box".into(),
            git_commit: None,
            created: "2026-11-24T12:00:00Z".into(),
        }
    }

    const ID: &str = "20261124T120000Z-abcdef01";
    const OLD: &str = "20261123T120000Z-00000001";

    #[test]
    fn an_upload_is_certain_where_the_current_release_has_no_file_of_that_size() {
        let mut remote = deployed();
        let current = local().files[0].clone();
        // Same dest, same size: it may be identical (reused), so its hash is needed first.
        assert!(!upload_certain(&remote, &current.dest, current.size));
        assert!(upload_certain(&remote, &current.dest, current.size + 1));
        assert!(upload_certain(&remote, "bin/other", current.size));
        // A current release without a readable manifest: sizes unknown, hash first.
        remote.manifest = None;
        assert!(!upload_certain(&remote, &current.dest, current.size + 1));
        assert!(upload_certain(&remote, "bin/other", current.size));
        // First deploy.
        assert!(upload_certain(
            &RemoteState::default(),
            &current.dest,
            current.size
        ));
    }

    #[test]
    fn first_deploy_uploads_everything() {
        let p = make(
            &service(),
            &local(),
            &RemoteState::default(),
            ID,
            &origin(),
            Options::default(),
        );
        assert!(
            p.files
                .iter()
                .all(|f| f.transfer == Transfer::Upload && f.change == Change::New)
        );
        assert!(p.units.iter().all(|u| u.change == Change::New));
        assert_eq!(p.enable, vec!["app.socket"]);
        assert_eq!(p.restart, vec!["app.service"]);
        assert_eq!(p.start, vec!["app.socket"]);
        assert_eq!(p.upload_bytes(), 13);
        assert_eq!(p.previous, None);
    }

    #[test]
    fn unchanged_files_are_reused_changed_ones_uploaded() {
        let mut remote = RemoteState {
            current: Some(OLD.into()),
            ..Default::default()
        };
        remote
            .current_files
            .insert("bin/app".into(), "aa".repeat(32));
        remote
            .current_files
            .insert("share/msg".into(), "cc".repeat(32));
        remote
            .installed_units
            .insert("app.service".into(), "11".repeat(32));
        remote
            .installed_units
            .insert("app.socket".into(), "99".repeat(32));
        remote.manifest = Some(Manifest {
            id: OLD.into(),
            service: "app".into(),
            created: "x".into(),
            deployed_by: "x".into(),
            git_commit: None,
            files: vec![],
            units: vec![
                ManifestUnit {
                    name: "app.service".into(),
                    sha256: "11".repeat(32),
                },
                ManifestUnit {
                    name: "old.timer".into(),
                    sha256: "33".repeat(32),
                },
            ],
            restart: vec![],
            enable: vec![],
            start: vec![],
            judging: None,
        });
        let p = plan_on(&remote);
        assert_eq!(p.files[0].transfer, Transfer::Reuse);
        assert_eq!(p.files[1].change, Change::Changed);
        assert_eq!(p.upload_bytes(), 3);
        assert_eq!(p.units[0].change, Change::Unchanged);
        assert_eq!(p.units[1].change, Change::Changed);
        assert_eq!(p.removed_units(), vec!["old.timer"]);
        assert_eq!(p.stop_first, vec!["app.socket"]);
        assert_eq!(p.previous.as_deref(), Some(OLD));
    }

    #[test]
    fn parses_remote_state() {
        let m = Manifest {
            id: OLD.into(),
            service: "app".into(),
            created: "c".into(),
            deployed_by: "me@box".into(),
            git_commit: None,
            files: vec![],
            units: vec![],
            restart: vec![],
            enable: vec![],
            start: vec![],
            judging: None,
        };
        let text = format!(
            "current=releases/{OLD}\nrelease={OLD}\nrelease=garbage\nrelease={ID}\nmanifest={}\nunit={} app.service\nfile={} bin/app\nhistory={{\"bad\nfile=x\nunitstate.Id=ferry-revert-app.timer\nunitstate.ActiveState=active\nunitstate.NeedDaemonReload=no\nrevert_for={OLD}\n",
            serde_json::to_string(&m).unwrap(),
            "11".repeat(32),
            "aa".repeat(32)
        );
        let st = parse_remote_state(&text);
        assert_eq!(st.current.as_deref(), Some(OLD));
        assert_eq!(st.releases, vec![OLD.to_string(), ID.to_string()]);
        assert_eq!(st.manifest, Some(m));
        assert_eq!(st.installed_units["app.service"], "11".repeat(32));
        assert_eq!(st.current_files["bin/app"], "aa".repeat(32));
        assert!(st.history.is_empty());
        assert!(st.revert_pending);
        assert!(st.current_unconfirmed());
    }

    #[test]
    fn probe_script_quotes_dests() {
        let s = remote_state_script(&Paths::new("app"), &["bin/my app".into()], &[], false);
        assert!(s.contains("for f in 'bin/my app'; do"), "{s}");
        assert!(s.contains("S=.local/share/ferry/app\n"), "{s}");
    }

    /// Run with sh in a scratch home: the seal writes the stat record and renames the release;
    /// the probe then takes each file's hash from the record (no sha256sum: a made-up hash in
    /// the record is what it reports) until the file is touched, then hashes it for real.
    #[test]
    fn the_probe_trusts_the_stat_record_until_a_file_changes() {
        let home = tempfile::tempdir().unwrap();
        let paths = Paths::new("app");
        let id = "20261124T000000Z-00000001";
        // Staged under a pending id (its hashes were learned during the upload), sealed as `id`.
        let pending = release::pending_id(std::time::SystemTime::now());
        assert!(release::is_pending(&pending) && !release::is_pending(id));
        let staging = home.path().join(paths.staging(&pending));
        std::fs::create_dir_all(staging.join("bin")).unwrap();
        std::fs::create_dir_all(staging.join(release::META_DIR)).unwrap();
        std::fs::write(staging.join("bin/my app"), b"binary").unwrap();
        std::fs::write(staging.join("share"), b"data").unwrap();
        let sh = |script: &str, input: &[u8]| {
            use std::io::Write;
            let mut child = std::process::Command::new("sh")
                .arg("-c")
                .arg(script)
                .env("HOME", home.path())
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            child.stdin.take().unwrap().write_all(input).unwrap();
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success(), "{script}: {out:?}");
            String::from_utf8(out.stdout).unwrap()
        };
        let dests = vec!["bin/my app".to_string(), "share".to_string()];
        let fake = ["ab".repeat(32), "cd".repeat(32)];
        sh(
            &release::seal_command(
                &paths,
                &pending,
                id,
                &[("bin/my app".into(), 0o750), ("share".into(), 0o640)],
                &[],
            ),
            &release::seal_input(&[&fake[0], &fake[1]]),
        );
        let dir = home.path().join(paths.dir());
        assert!(!staging.exists());
        assert!(home.path().join(paths.release(id)).is_dir());
        // Each file has its mode (they were written 0600).
        let mode = |f: &str| {
            use std::os::unix::fs::PermissionsExt;
            let p = home.path().join(paths.release(id)).join(f);
            std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
        };
        assert_eq!((mode("bin/my app"), mode("share")), (0o750, 0o640));
        std::os::unix::fs::symlink(format!("releases/{id}"), dir.join("current")).unwrap();
        let probe = || {
            parse_remote_state(&sh(
                &remote_state_script(
                    &paths,
                    &[dests.clone(), vec!["absent".into()]].concat(),
                    &[],
                    false,
                ),
                b"",
            ))
            .current_files
        };
        let files = probe();
        assert_eq!(files.len(), 2, "{files:?}");
        // The installed unit files are hashed (one sha256sum for all), the history read whole.
        let ud = home.path().join(release::UNIT_DIR);
        std::fs::create_dir_all(&ud).unwrap();
        std::fs::write(ud.join("a-b.service"), b"[Service]\n").unwrap();
        std::fs::write(ud.join("c.socket"), b"[Socket]\n").unwrap();
        std::fs::create_dir_all(ud.join("default.target.wants")).unwrap();
        std::fs::write(
            dir.join("history.jsonl"),
            format!(
                "{}\n{}",
                serde_json::to_string(&rec("R1", "deploy", "ok", None)).unwrap(),
                serde_json::to_string(&rec("R2", "deploy", "failed", Some("R1"))).unwrap()
            ),
        )
        .unwrap();
        let out = sh(&remote_state_script(&paths, &dests, &[], false), b"");
        let st = parse_remote_state(&out);
        assert_eq!(
            st.installed_units,
            BTreeMap::from([
                (
                    "a-b.service".to_string(),
                    hex(&Sha256::digest(b"[Service]\n"))
                ),
                ("c.socket".to_string(), hex(&Sha256::digest(b"[Socket]\n"))),
            ]),
            "{out}"
        );
        let read: Vec<&str> = st.history.iter().map(|r| r.release.as_str()).collect();
        assert_eq!(read, vec!["R1", "R2"], "the last line has no newline");
        assert_eq!(files["bin/my app"], fake[0]);
        assert_eq!(files["share"], fake[1]);
        // Touched (same size, new content): hashed on the host.
        std::fs::write(dir.join("current/share"), b"DATA").unwrap();
        let files = probe();
        assert_eq!(files["bin/my app"], fake[0]);
        assert_eq!(files["share"], hex(&Sha256::digest(b"DATA")));
        // No record (a release sealed by an older ferry): every file is hashed.
        std::fs::remove_file(dir.join(format!(
            "current/{}/{}",
            release::META_DIR,
            release::STAT_RECORD
        )))
        .unwrap();
        assert_eq!(probe()["bin/my app"], hex(&Sha256::digest(b"binary")));
    }

    #[test]
    fn activation_script_order() {
        let p = make(
            &service(),
            &local(),
            &RemoteState::default(),
            ID,
            &origin(),
            Options::default(),
        );
        let s = Activation::for_plan(&p).script(&Paths::new("app"));
        let pos = |needle: &str| s.find(needle).unwrap_or_else(|| panic!("{needle} in {s}"));
        assert!(pos("mv -f \"$UD/.ferry-tmp.\"app.service") < pos("mv -fT"));
        assert!(pos("mv -fT") < pos("enable --no-reload app.socket"));
        assert!(pos("enable --no-reload app.socket") < pos("daemon-reload"));
        assert!(pos("daemon-reload") < pos("start app.socket"));
        assert!(pos("start app.socket") < pos("restart --no-block app.service"));
        // A crash-looping service is stopped (and waited for) before the restart.
        assert!(
            pos("= auto-restart ] && systemctl --user stop -- app.service")
                < pos("restart --no-block app.service")
        );
        assert_eq!(
            Activation::for_plan(&p).verify_units(),
            vec!["app.service", "app.socket"]
        );

        // The same unit files as installed, loaded as they are: none copied, no reload.
        let mut remote = RemoteState::default();
        for u in &local().units {
            remote
                .installed_units
                .insert(u.name.clone(), u.sha256.clone());
        }
        let p = plan_on(&remote);
        assert!(!p.daemon_reload);
        let a = Activation::for_plan(&p);
        assert!(a.install.is_empty(), "{a:?}");
        let s = a.script(&Paths::new("app"));
        assert!(
            !s.contains("daemon-reload") && !s.contains(".ferry-tmp."),
            "{s}"
        );
        assert!(s.contains("restart --no-block app.service"), "{s}");
        // One changed: it alone is copied, and the manager reloads.
        let first = local().units[0].name.clone();
        remote
            .installed_units
            .insert(first.clone(), "00".repeat(32));
        let p = plan_on(&remote);
        let a = Activation::for_plan(&p);
        assert!(p.daemon_reload);
        assert_eq!(a.install, vec![first]);
        // Unchanged files the manager has not loaded as they are (edited by hand): reload.
        remote.installed_units.insert(
            local().units[0].name.clone(),
            local().units[0].sha256.clone(),
        );
        remote.need_reload = true;
        let p = plan_on(&remote);
        assert!(p.daemon_reload);
    }

    #[test]
    fn back_to_removes_units_the_failed_release_added() {
        let to = Manifest {
            id: OLD.into(),
            service: "app".into(),
            created: "c".into(),
            deployed_by: "x".into(),
            git_commit: None,
            files: vec![],
            units: vec![ManifestUnit {
                name: "app.service".into(),
                sha256: "1".into(),
            }],
            restart: vec!["app.service".into()],
            enable: vec![],
            start: vec![],
            judging: None,
        };
        let mut from = to.clone();
        from.id = ID.into();
        from.units.push(ManifestUnit {
            name: "extra.timer".into(),
            sha256: "2".into(),
        });
        let a = Activation::back_to(&to, Some(&from));
        assert_eq!(a.release, OLD);
        assert_eq!(a.remove, vec!["extra.timer"]);
        assert_eq!(a.restart, vec!["app.service"]);
    }

    #[test]
    fn instances_are_restarted_and_the_surplus_removed() {
        let mut remote = deployed();
        remote.manifest.as_mut().unwrap().restart =
            vec!["app@1.service".into(), "app@3.service".into()];
        let mut l = local();
        l.instances = vec!["app@1.service".into(), "app@2.service".into()];
        let p = make(&service(), &l, &remote, ID, &origin(), Options::default());
        assert_eq!(
            p.restart,
            vec!["app.service", "app@1.service", "app@2.service"]
        );
        assert_eq!(p.removed_units(), vec!["app@3.service"]);
        // Going back to the release with 3 instances removes none; going from it to one with
        // 2 removes the third.
        let back = Activation::back_to(&p.manifest, remote.manifest.as_ref());
        assert_eq!(back.remove, vec!["app@3.service"]);
    }

    #[test]
    fn content_hash_changes_with_mode() {
        let a = local();
        let mut b = local();
        b.files[0].mode = 0o700;
        assert_ne!(a.content_hash(), b.content_hash());
        assert_eq!(a.content_hash(), local().content_hash());
    }

    fn names(p: &Plan) -> Vec<&'static str> {
        p.steps.iter().map(Step::name).collect()
    }

    fn rec(
        release: &str,
        action: &str,
        outcome: &str,
        previous: Option<&str>,
    ) -> release::HistoryRecord {
        release::HistoryRecord {
            time: "t".into(),
            action: action.into(),
            release: release.into(),
            previous: previous.map(String::from),
            outcome: outcome.into(),
            by: "me".into(),
            git_commit: None,
            reason: None,
        }
    }

    /// A host where release A was deployed and verified, and is current.
    fn deployed() -> RemoteState {
        let a = "20261124T110000Z-aaaaaaaa";
        let first = make(
            &service(),
            &local(),
            &RemoteState::default(),
            a,
            &origin(),
            Options::default(),
        );
        RemoteState {
            current: Some(a.into()),
            releases: vec![a.into()],
            manifest: Some(first.manifest),
            current_files: [("bin/app".to_string(), local().files[0].sha256.clone())].into(),
            history: vec![rec(a, "deploy", "ok", None)],
            ..Default::default()
        }
    }

    #[test]
    fn steps_of_a_first_deploy_and_a_redeploy() {
        let p = make(
            &service(),
            &local(),
            &RemoteState::default(),
            ID,
            &origin(),
            Options::default(),
        );
        assert_eq!(
            names(&p),
            vec![
                "lock", "stage", "upload", "seal", "activate", "verify", "confirm"
            ]
        );
        assert!(
            matches!(&p.on_failure, OnFailure::Stay { reason } if reason.contains("first deploy"))
        );

        let remote = deployed();
        let p = plan_on(&remote);
        assert_eq!(
            names(&p),
            vec![
                "lock", "stage", "reuse", "upload", "seal", "activate", "verify", "confirm"
            ]
        );
        assert_eq!(
            p.on_failure,
            OnFailure::RollBack {
                to: remote.current.clone().unwrap()
            }
        );
        // The seal's command arms the self-revert...
        let seal_arms = |p: &Plan| {
            p.steps.iter().find_map(|st| match st {
                Step::Seal { arm_revert, .. } => Some(arm_revert.clone()),
                _ => None,
            })
        };
        assert_eq!(
            seal_arms(&p),
            Some(Some(RevertArm {
                to: remote.current.clone().unwrap(),
                after_ms: service().confirm_timeout.as_millis() as u64
            }))
        );
        // ... unless a before_switch hook runs first: then it is a step of its own, after it.
        let mut hooked = service();
        hooked.hooks.before_switch = Some("true".into());
        let h = make(
            &hooked,
            &local(),
            &remote,
            ID,
            &origin(),
            Options::default(),
        );
        assert_eq!(seal_arms(&h), Some(None));
        let n = names(&h);
        assert_eq!(
            &n[n.len() - 5..],
            &[
                "before-switch",
                "arm-revert",
                "activate",
                "verify",
                "confirm"
            ]
        );
        let p = make(
            &service(),
            &local(),
            &remote,
            ID,
            &origin(),
            Options {
                no_rollback: true,
                ..Default::default()
            },
        );
        assert!(!names(&p).contains(&"arm-revert"));
        assert_eq!(seal_arms(&p), Some(None));
        assert!(
            matches!(&p.on_failure, OnFailure::Stay { reason } if reason.contains("--no-rollback"))
        );
    }

    #[test]
    fn leftovers_stale_timers_and_pruning_are_steps() {
        let mut remote = deployed();
        remote.partial = vec![".20261124T100000Z-00000000.partial".into()];
        remote.revert_pending = true;
        remote.revert_for = Some("20261124T100000Z-00000000".into());
        let mut s = service();
        s.keep_releases = 2;
        remote
            .releases
            .insert(0, "20261124T090000Z-99999999".into());
        let p = make(&s, &local(), &remote, ID, &origin(), Options::default());
        let n = names(&p);
        assert_eq!(&n[..3], &["lock", "clean-staging", "clear-stale-revert"]);
        assert_eq!(
            p.steps.last(),
            Some(&Step::Confirm {
                release: ID.into(),
                prune: vec!["20261124T090000Z-99999999".into()]
            })
        );
        let sealed_units = |p: &Plan| {
            p.steps
                .iter()
                .find_map(|st| match st {
                    Step::Seal { units, .. } => Some(units.clone()),
                    _ => None,
                })
                .unwrap()
        };
        // The same unit files and file layout as the current, verified release: checked then,
        // not again.
        assert_eq!(sealed_units(&p), Vec::<String>::new());
        // A changed unit file: the release's unit files are checked.
        let mut changed = local();
        changed.units[0].sha256 = "99".repeat(32);
        let p = make(&s, &changed, &remote, ID, &origin(), Options::default());
        assert_eq!(sealed_units(&p), vec!["app.service", "app.socket"]);
        // A file's mode changed (an ExecStart= target may no longer be executable): checked.
        let mut moded = local();
        moded.files[0].mode = 0o644;
        let p = make(&s, &moded, &remote, ID, &origin(), Options::default());
        assert_eq!(sealed_units(&p).len(), 2);
        // The current release was never verified (its self-revert failed): checked.
        remote.history = vec![rec(
            remote.current.as_deref().unwrap(),
            "deploy",
            "revert-failed",
            None,
        )];
        let p = make(&s, &local(), &remote, ID, &origin(), Options::default());
        assert_eq!(sealed_units(&p).len(), 2);
    }

    #[test]
    fn refusals() {
        let mut remote = deployed();
        remote.lock_holder = Some("ci@runner (deploy, since t)".into());
        let p = plan_on(&remote);
        assert_eq!(names(&p), vec!["refuse"]);
        let (reason, why) = p.refusal().unwrap();
        assert_eq!(why, Refusal::Locked);
        assert!(reason.contains("ci@runner"), "{reason}");

        let mut remote = deployed();
        remote.revert_pending = true;
        remote.revert_for = remote.current.clone();
        let p = plan_on(&remote);
        assert_eq!(names(&p), vec!["lock", "refuse"]);
        assert_eq!(p.refusal().unwrap().1, Refusal::PendingRevert);
    }

    #[test]
    fn an_unverified_current_release_is_not_a_rollback_target() {
        let b = "20261124T120000Z-bbbbbbbb";
        let mut remote = deployed();
        let a = remote.current.clone().unwrap();
        remote.releases.push(b.into());
        remote.current = Some(b.into());
        remote
            .history
            .push(rec(&a, "revert", "revert-failed", Some(b)));
        assert!(!remote.current_verified());
        assert_eq!(remote.fallback(), Some(a.clone()));
        let p = plan_on(&remote);
        assert!(!p.previous_verified);
        assert_eq!(p.on_failure, OnFailure::RollBack { to: a.clone() });
        // Gone from the host: nothing to go back to.
        remote.releases.retain(|r| *r != a);
        let p = plan_on(&remote);
        assert!(
            matches!(&p.on_failure, OnFailure::Stay { reason } if reason.contains("never verified"))
        );
    }

    #[test]
    fn the_probe_reports_leftovers_and_the_lock_holder() {
        let st = parse_remote_state(
            "current=releases/20261124T120000Z-abcdef01\npartial=.20261124T130000Z-00000001.partial\npartial=.junk\nlock=ci@runner (deploy, since t)\n",
        );
        assert_eq!(st.partial, vec![".20261124T130000Z-00000001.partial"]);
        assert_eq!(
            st.lock_holder.as_deref(),
            Some("ci@runner (deploy, since t)")
        );
        let s = remote_state_script(&Paths::new("app"), &[], &[], true);
        assert!(s.contains("flock -n -E 75"), "{s}");
        assert!(!remote_state_script(&Paths::new("app"), &[], &[], false).contains("flock"));
    }

    #[test]
    fn the_probe_reports_free_space_and_a_release_that_does_not_fit_is_refused() {
        let s = remote_state_script(&Paths::new("app"), &[], &[], false);
        assert!(s.contains("df -Pk"), "{s}");
        let st = parse_remote_state("free=2048 .local/share/ferry\nfree=junk x\n");
        let free = st.free.clone().unwrap();
        assert_eq!(free.bytes, 2048 * 1024);
        assert_eq!(free.display_path(), "~/.local/share/ferry");
        assert_eq!(
            FreeSpace {
                bytes: 0,
                path: ".".into()
            }
            .display_path(),
            "~"
        );

        let mut remote = deployed();
        let fits = plan_on(&remote);
        let needed = fits.space_needed();
        // Both files (one reused: it is copied on the host), the units, the margin.
        assert_eq!(needed, 2 * 4096 + 3 * 4096 + SPACE_MARGIN);
        remote.free = Some(FreeSpace {
            bytes: needed,
            path: ".local/share/ferry".into(),
        });
        let p = plan_on(&remote);
        assert!(p.refusal().is_none(), "{:?}", names(&p));
        remote.free.as_mut().unwrap().bytes = needed - 1;
        let p = plan_on(&remote);
        assert_eq!(names(&p), vec!["lock", "refuse"]);
        let (reason, why) = p.refusal().unwrap();
        assert_eq!(why, Refusal::DiskFull);
        assert!(
            reason.starts_with("the host's disk is full: ")
                && reason
                    .contains("free on the filesystem of ~/.local/share/ferry, the release needs"),
            "{reason}"
        );
        // Leftover staging directories hold space the probe cannot count: clean, then try.
        remote.partial = vec![".20261124T100000Z-00000000.partial".into()];
        let p = plan_on(&remote);
        assert!(p.refusal().is_none());
    }

    #[test]
    fn a_lost_connection_says_what_state_the_host_is_in() {
        let remote = deployed();
        let a = remote.current.clone().unwrap();
        let p = plan_on(&remote);
        let t = Duration::from_secs(60);
        let at = |name: &str| p.steps.iter().position(|s| s.name() == name).unwrap();
        let s = p.state_if_lost(Some(at("upload")), t);
        assert!(
            s.starts_with(&format!(
                "before activation: the host still runs release {a}"
            )),
            "{s}"
        );
        assert!(s.contains(&format!(".{ID}.partial")), "{s}");
        assert!(
            p.state_if_lost(Some(at("seal")), t)
                .starts_with("before activation")
        );
        assert!(
            p.state_if_lost(Some(at("activate")), t)
                .starts_with("during the activation")
        );
        for step in ["activate", "verify"] {
            let s = p.state_if_lost(Some(at(step)), t);
            assert!(
                s.contains(&format!("self-revert armed on the host brings release {a} back within confirm_timeout (1m)")),
                "{s}"
            );
        }
        assert!(
            p.state_if_lost(Some(at("confirm")), t)
                .contains("if the confirmation reached the host it stays")
        );
        assert!(
            p.state_if_lost(None, t)
                .starts_with("during the rollback: the self-revert")
        );
        // A first deploy has no self-revert.
        let p = make(
            &service(),
            &local(),
            &RemoteState::default(),
            ID,
            &origin(),
            Options::default(),
        );
        let act = p.steps.iter().position(|s| s.name() == "activate").unwrap();
        assert!(
            p.state_if_lost(Some(act - 1), t)
                .contains("no release of this service (first deploy)")
        );
        assert!(
            p.state_if_lost(Some(act), t)
                .contains("unverified, with no self-revert")
        );
        assert!(
            p.state_if_lost(Some(act + 1), t)
                .contains("not verified and with no self-revert")
        );
    }

    #[test]
    fn json_modes_are_octal_strings() {
        let p = make(
            &service(),
            &local(),
            &RemoteState::default(),
            ID,
            &origin(),
            Options::default(),
        );
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(v["files"][0]["mode"], "0755");
        assert_eq!(v["files"][1]["mode"], "0644");
        // Hashes of files are never printed (a short secret's hash could be guessed).
        assert!(v["files"][0].get("sha256").is_none());
    }

    /// `deployed()` with every file and unit of `local()` in place and the units active.
    fn deployed_and_up() -> RemoteState {
        let mut remote = deployed();
        for f in &local().files {
            remote
                .current_files
                .insert(f.dest.clone(), f.sha256.clone());
        }
        for u in &local().units {
            remote
                .installed_units
                .insert(u.name.clone(), u.sha256.clone());
            remote.unit_active.insert(u.name.clone(), "active".into());
        }
        remote
    }

    #[test]
    fn redeploying_the_current_release_is_a_no_op() {
        let remote = deployed_and_up();
        let p = plan_on(&remote);
        assert_eq!(names(&p), vec!["lock", "unchanged"]);
        assert_eq!(p.unchanged(), remote.current.as_deref());
        // --force deploys anyway.
        let p = make(
            &service(),
            &local(),
            &remote,
            ID,
            &origin(),
            Options {
                force: true,
                ..Default::default()
            },
        );
        assert!(names(&p).contains(&"activate"));
        // An idle socket-activated service counts as up when its socket is active.
        let mut idle = deployed_and_up();
        idle.unit_active
            .insert("app.service".into(), "inactive".into());
        let p = plan_on(&idle);
        assert_eq!(names(&p), vec!["lock", "unchanged"]);
        // Not when a unit is down, a file differs on disk, a mode changed, or the current
        // release was never verified.
        let mut down = deployed_and_up();
        down.unit_active
            .insert("app.socket".into(), "failed".into());
        down.unit_active
            .insert("app.service".into(), "inactive".into());
        assert!(plan_on(&down).unchanged().is_none());
        let mut edited = deployed_and_up();
        edited
            .current_files
            .insert("share/msg".into(), "cc".repeat(32));
        assert!(plan_on(&edited).unchanged().is_none());
        let mut l = local();
        l.files[1].mode = 0o600;
        assert!(
            make(
                &service(),
                &l,
                &deployed_and_up(),
                ID,
                &origin(),
                Options::default()
            )
            .unchanged()
            .is_none()
        );
        let mut unverified = deployed_and_up();
        let cur = unverified.current.clone().unwrap();
        unverified.history.push(rec(&cur, "deploy", "failed", None));
        assert!(plan_on(&unverified).unchanged().is_none());
    }

    #[test]
    fn the_probe_reads_unit_states() {
        let st = parse_remote_state(
            "unitstate.Id=a.service\nunitstate.ActiveState=active\nunitstate.NeedDaemonReload=no\nunitstate.Id=a.socket\nunitstate.ActiveState=failed\nunitstate.NeedDaemonReload=no\n",
        );
        assert!(!st.need_reload);
        assert!(
            parse_remote_state("unitstate.Id=a.service\nunitstate.NeedDaemonReload=yes\n")
                .need_reload
        );
        assert_eq!(
            st.unit_active.get("a.service").map(String::as_str),
            Some("active")
        );
        assert_eq!(
            st.unit_active.get("a.socket").map(String::as_str),
            Some("failed")
        );
        let s = remote_state_script(&Paths::new("app"), &[], &["a b.service".into()], false);
        assert!(
            s.contains(
                "systemctl --user show -p Id -p ActiveState -p NeedDaemonReload -- ferry-revert-app.timer 'a b.service'"
            ),
            "{s}"
        );
    }
}
