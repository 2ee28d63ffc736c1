//! The plan as data: its steps, what each file and unit goes through, and what happens on failure.
//! `--dry-run` prints these values and `deploy` executes them.

use crate::release::Manifest;
use crate::systemd::switch::Colour;
use serde::Serialize;
use std::path::PathBuf;
use std::time::Duration;

use super::*;

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
        /// `locked`, `pending-revert`, `disk-full` or `binary`.
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
    /// Run the service's `migrate` hook, once per rollout, on this host only, in the new
    /// release's directory with its env; every host of the rollout waits for it before it
    /// switches, and its failure stops the rollout with nothing switched. Skipped (and said
    /// so) when it already ran for a release of the same content.
    Migrate { command: String },
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
    /// Blue/green: once the new colour `to` is verified and healthy, move the front (and
    /// `current`) to it, let the old colour `from` finish its requests for `drain_ms`, then
    /// stop it.
    Switch {
        #[serde(rename = "old_colour", skip_serializing_if = "Option::is_none")]
        from: Option<Colour>,
        #[serde(rename = "colour")]
        to: Colour,
        drain_ms: u64,
    },
    /// Run the `after_switch` hook in the new (now current) release's directory. Failure fails
    /// the deploy (the plan's `on_failure` applies).
    AfterSwitch { command: String },
    /// `deploy --no-switch`: mark the release staged (the `staged` link next to `current`,
    /// and a `stage` record in the history naming the release `current` was then); nothing
    /// live changed (for blue/green, the idle colour runs it, verified and healthy, behind a
    /// front that did not move). `ferry promote` switches to it later.
    Staged { release: String },
    /// Disarm the self-revert and record the release as deployed; then, in the same command,
    /// delete the old releases `prune` (never `current`, never the last verified one).
    Confirm {
        release: String,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        prune: Vec<String>,
    },
}

/// The colours of a blue/green deploy: `to` (idle until now) gets the new release, `from`
/// (live now; none on the first deploy) is stopped once the front moved and it drained.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SwitchPlan {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<Colour>,
    pub to: Colour,
    /// The port `to` listens on (its health checks go there).
    pub port: u16,
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
    /// The current release was never confirmed and its self-revert timer is gone.
    LostRevert,
    /// The release does not fit in the free space of the host's filesystem.
    DiskFull,
    /// The login user has no linger and `--allow-no-linger` was not given.
    NoLinger,
    /// A binary of the release cannot run on the host (architecture, program interpreter,
    /// glibc or libstdc++ version, library), see [`crate::elf`].
    Binary,
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
            Step::Migrate { .. } => "migrate",
            Step::BeforeSwitch { .. } => "before-switch",
            Step::ArmRevert { .. } => "arm-revert",
            Step::Activate { .. } => "activate",
            Step::Verify { .. } => "verify",
            Step::Health { .. } => "health",
            Step::Switch { .. } => "switch",
            Step::AfterSwitch { .. } => "after-switch",
            Step::Staged { .. } => "staged",
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

pub(crate) fn octal_mode<S: serde::Serializer>(mode: &u32, s: S) -> Result<S::Ok, S::Error> {
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
    /// Blue/green: the colours of this deploy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub switch: Option<SwitchPlan>,
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

    /// Refuse the host for `reason` instead of deploying to it, unless the plan does nothing
    /// there anyway (another refusal, or the release is current and up already).
    pub fn refuse(&mut self, reason: String, why: Refusal) {
        if self.refusal().is_some() || self.unchanged().is_some() {
            return;
        }
        self.steps = vec![Step::Lock, Step::Refuse { reason, why }];
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
        // Staged: the front never moves and `current` stays, whatever step was cut off.
        if position("staged").is_some() && activate.is_some_and(|a| index.is_some_and(|i| i >= a)) {
            return format!(
                "while staging {} (--no-switch): the front did not move, the host still serves {}; the idle colour may run the new release, unmarked: deploy --no-switch again",
                self.release,
                self.previous.as_deref().unwrap_or("nothing")
            );
        }
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
                    "while confirming release {}: if the confirmation reached the host it stays (the host runs the confirmation to its end: disarmed, recorded, pruned), else {}; `ferry releases {}` shows which",
                    self.release,
                    revert(to),
                    self.service
                ),
                None => format!(
                    "while confirming release {}: the host runs it, verified; its history record is written if the confirmation reached the host (it then runs to its end)",
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
