//! Making the plan for one host from the local release and the remote state.

use crate::config::Service;
use crate::human::human_bytes;
use crate::release::{self, Manifest, ManifestFile, ManifestUnit};
use crate::systemd;
use crate::systemd::switch::{self, Colour};
use std::collections::BTreeSet;

use super::*;

/// The block size space is counted in.
pub(crate) const BLOCK: u64 = 4096;

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
    /// This host runs the service's `migrate` hook (once per rollout), after its seal.
    pub migrate: bool,
    /// `--no-switch`: stage the release (sealed, unit files checked; blue/green: the idle
    /// colour started, verified and health-checked) and stop before anything live changes.
    pub no_switch: bool,
    /// Deploy to a login user without linger (`--allow-no-linger`): its services then live
    /// only while it has a session.
    pub allow_no_linger: bool,
}

/// Does a host whose state is `remote` get the local file of `size` bytes at `dest` uploaded,
/// whatever its content? Yes when the current release has no file there, or one of another
/// size (its manifest says): only an identical file is reused. Then the plan needs no hash of
/// it before the upload, which can learn it.
pub fn upload_certain(remote: &RemoteState, dest: &str, size: u64) -> bool {
    UploadCertain::of(remote).certain(dest, size)
}

/// [`upload_certain`] for many files of one host: the current manifest's sizes by dest, looked
/// up once (a release of many files must not search the manifest for each).
pub struct UploadCertain<'a> {
    remote: &'a RemoteState,
    sizes: std::collections::HashMap<&'a str, u64>,
}

impl<'a> UploadCertain<'a> {
    /// The sizes of the current release's files, from its manifest.
    pub fn of(remote: &'a RemoteState) -> Self {
        let sizes = remote
            .current_manifest()
            .map(|m| m.files.iter().map(|f| (f.dest.as_str(), f.size)).collect())
            .unwrap_or_default();
        UploadCertain { remote, sizes }
    }

    /// See [`upload_certain`].
    pub fn certain(&self, dest: &str, size: u64) -> bool {
        if !self.remote.current_files.contains_key(dest) {
            return true;
        }
        self.sizes.get(dest).is_some_and(|s| *s != size)
    }
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
    let files = file_plans(local, remote);
    let units = unit_plans(local, remote);
    let (enable, restart) = enable_and_restart(service, local);
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
        restart: restart.clone(),
        enable: enable.clone(),
        start: start.clone(),
        ..manifest(service, local, release_id, origin)
    };
    // Blue/green: the idle colour gets the release.
    let switch = service.switch.as_ref().map(|sw| {
        let to = remote.live.map(Colour::other).unwrap_or(Colour::Blue);
        SwitchPlan {
            from: remote.live,
            to,
            port: sw.port(to),
        }
    });
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
        switch,
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

/// Each local file: new, changed or unchanged against the current release; an unchanged one
/// is reused from it, the others are uploaded.
fn file_plans(local: &LocalRelease, remote: &RemoteState) -> Vec<FilePlan> {
    local
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
        .collect()
}

/// Each local unit against what is installed, then the units the current release has and this
/// one does not (removed).
fn unit_plans(local: &LocalRelease, remote: &RemoteState) -> Vec<UnitPlan> {
    let previous_units: BTreeSet<String> = remote
        .manifest
        .as_ref()
        .map(|m| m.units.iter().map(|u| u.name.clone()).collect())
        .unwrap_or_default();
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
    units
}

/// The units enabled (with an `[Install]` section, when the service enables) and restarted
/// (the service's `restart`), each with the instances of its templates.
fn enable_and_restart(service: &Service, local: &LocalRelease) -> (Vec<String>, Vec<String>) {
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
    (enable, restart)
}

/// The release's manifest, its unit lists (restart, enable, start) left empty.
fn manifest(
    service: &Service,
    local: &LocalRelease,
    release_id: &str,
    origin: &Origin,
) -> Manifest {
    Manifest {
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
                dest: crate::paths::env_file_in_release(),
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
        restart: Vec::new(),
        enable: Vec::new(),
        start: Vec::new(),
        judging: Some(release::StoredJudging::of(service)),
        switch: service.switch.clone(),
        migrate: service.hooks.migrate.clone(),
    }
}

pub(crate) fn on_failure(remote: &RemoteState, opts: Options) -> OnFailure {
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
    // Blue/green: the live colour runs the current release.
    if let Some(sp) = &plan.switch {
        let Some(live) = sp.from else { return false };
        if remote.colours.get(&live) != remote.current.as_ref()
            || !active(&switch::instance(&plan.service, live))
        {
            return false;
        }
    }
    let socket_up = plan
        .start
        .iter()
        .any(|u| systemd::unit_type(u) == "socket" && active(u));
    Activation::for_plan(plan)
        .verify_units()
        .iter()
        .all(|u| active(u) || (systemd::unit_type(u) == "service" && socket_up))
}

pub(crate) fn steps(
    service: &Service,
    remote: &RemoteState,
    plan: &Plan,
    opts: Options,
) -> Vec<Step> {
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
    if let Some(stop) = stop_before_staging(service, remote, plan, opts) {
        steps.push(stop);
        return steps;
    }
    staging_steps(remote, plan, &mut steps);
    switch_steps(service, remote, plan, opts, &mut steps);
    steps
}

/// What to do about a current release whose self-revert was lost (see
/// [`RemoteState::revert_lost`]).
pub fn lost_revert_message(remote: &RemoteState, service: &str) -> String {
    let current = remote.current.as_deref().unwrap_or("the current release");
    format!(
        "the deploy of {current} was never confirmed (ferry stopped before the end) and its self-revert timer is gone (the user manager restarted or the host rebooted before the deadline), so the host will not revert it by itself: `ferry rollback {service}` goes back to the last verified release, `ferry rollback {service} --to {current}` keeps {current} (and records it as confirmed)"
    )
}

/// The step that ends the deploy once locked, before anything is staged: a refusal (a revert
/// pending, a full disk) or nothing to do.
fn stop_before_staging(
    service: &Service,
    remote: &RemoteState,
    plan: &Plan,
    opts: Options,
) -> Option<Step> {
    if remote.current_unconfirmed() {
        return Some(Step::Refuse {
            reason: format!(
                "the deploy of {} was never confirmed (ferry stopped before the end) and the host will revert it to the previous release by itself within confirm_timeout ({}); wait for that, or run `ferry rollback {}` now",
                remote.current.as_deref().unwrap_or("the current release"),
                humantime::format_duration(service.confirm_timeout),
                service.name
            ),
            why: Refusal::PendingRevert,
        });
    }
    if remote.revert_lost() {
        return Some(Step::Refuse {
            reason: lost_revert_message(remote, &service.name),
            why: Refusal::LostRevert,
        });
    }
    if remote.linger == Some(false) && !opts.allow_no_linger {
        let user = remote.user.as_deref().unwrap_or("the login user");
        return Some(Step::Refuse {
            reason: format!(
                "{user} has no linger on this host: its user manager, and the services and self-revert timer ferry would start there, stop when its last session ends (ferry's own included); as root on the host: loginctl enable-linger {user} (or pass --allow-no-linger to deploy anyway)"
            ),
            why: Refusal::NoLinger,
        });
    }
    if !opts.force
        && let Some(current) = &remote.current
        && already_deployed(remote, plan)
    {
        return Some(Step::Unchanged {
            current: current.clone(),
        });
    }
    // Leftover staging directories hold space the check cannot count: then the cleanup runs
    // first and a full disk is caught by the upload itself.
    if remote.partial.is_empty()
        && let Some(free) = &remote.free
    {
        let needed = plan.space_needed();
        if needed > free.bytes {
            return Some(Step::Refuse {
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
        }
    }
    None
}

/// Cleaning up, then the staging of the release: its directory, the files reused from the
/// current release and those uploaded.
fn staging_steps(remote: &RemoteState, plan: &Plan, steps: &mut Vec<Step>) {
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
}

/// From the seal to the activation: the seal, the migration and the before_switch hook, the
/// self-revert armed, the release made live.
fn switch_steps(
    service: &Service,
    remote: &RemoteState,
    plan: &Plan,
    opts: Options,
    steps: &mut Vec<Step>,
) {
    let arm = match &plan.on_failure {
        // Staging switches nothing: there is nothing for a timer to revert.
        _ if opts.no_switch => None,
        OnFailure::RollBack { to } => Some(RevertArm {
            to: to.clone(),
            after_ms: service.confirm_timeout.as_millis() as u64,
        }),
        OnFailure::Stay { .. } => None,
    };
    // The release's own unit files are checked (not units it removes, not instances of its
    // templates). The self-revert is armed by the seal's command too, unless a before_switch
    // hook runs first (it may fail, and the timer would then guard a release never switched to),
    // or the service has a migration (every host waits for it before the switch, which may take
    // longer than the timer).
    let hook = service.hooks.before_switch.as_ref();
    let migrate = service.hooks.migrate.as_ref();
    steps.push(Step::Seal {
        release: plan.release.clone(),
        units: if units_checked_before(plan, remote) {
            Vec::new()
        } else {
            plan.manifest.units.iter().map(|u| u.name.clone()).collect()
        },
        arm_revert: arm.clone().filter(|_| hook.is_none() && migrate.is_none()),
    });
    if let Some(command) = migrate.filter(|_| opts.migrate) {
        steps.push(Step::Migrate {
            command: command.clone(),
        });
    }
    if let Some(command) = hook {
        steps.push(Step::BeforeSwitch {
            command: command.clone(),
        });
    }
    if (hook.is_some() || migrate.is_some())
        && let Some(RevertArm { to, after_ms }) = arm
    {
        steps.push(Step::ArmRevert { to, after_ms });
    }
    steps.extend(live_steps(service, remote, plan, opts));
}

/// The steps from the activation on: for `--no-switch`, only those that change nothing live
/// (a blue/green idle colour is started and checked), then `staged`.
fn live_steps(service: &Service, remote: &RemoteState, plan: &Plan, opts: Options) -> Vec<Step> {
    let mut steps = Vec::new();
    if opts.no_switch && plan.switch.is_none() {
        steps.push(Step::Staged {
            release: plan.release.clone(),
        });
        return steps;
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
    if opts.no_switch {
        steps.push(Step::Staged {
            release: plan.release.clone(),
        });
        return steps;
    }
    if let (Some(sp), Some(sw)) = (&plan.switch, &service.switch) {
        steps.push(Step::Switch {
            from: sp.from,
            to: sp.to,
            drain_ms: sw.drain.as_millis() as u64,
        });
    }
    if let Some(command) = &service.hooks.after_switch {
        steps.push(Step::AfterSwitch {
            command: command.clone(),
        });
    }
    // A staged release waits for `ferry promote`: it is kept.
    let mut all: Vec<String> = remote
        .releases
        .iter()
        .filter(|r| remote.staged.as_ref() != Some(*r))
        .cloned()
        .collect();
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
pub(crate) fn units_checked_before(plan: &Plan, remote: &RemoteState) -> bool {
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
