//! `ferry doctor`: is each host ready for ferry? One verdict per check, with a hint (the exact
//! fix) per failure or warning.
//!
//! After the connection checks, every probe runs in one remote script (one round trip per
//! host); judging each section of its output is pure and unit-tested. The events are drawn by
//! `report::doctor`.

use std::collections::BTreeMap;

use crate::cli::DoctorArgs;
use crate::commands::{Context, fanout, targets};
use crate::config::Host;
use crate::error::{Error, Exit};
use crate::report::doctor::{Check, CheckId, FixEvent, RootFix, Status, Summary};
use crate::systemd::journal::{self, Diagnosis, JournalFacts, kv};
use crate::transport::ssh::{self, Connection};

mod login;
mod tools;
pub use login::connection_checks;

impl Check {
    fn new(host: &str, check: CheckId, status: Status, detail: impl Into<String>) -> Check {
        Check {
            kind: "check",
            host: host.to_string(),
            check,
            status,
            detail: detail.into(),
            hint: None,
            fix: None,
        }
    }
    /// The same verdict, with the root fix for its cause when it failed or warned.
    fn fixed_by(mut self, fix: RootFix) -> Check {
        if matches!(self.status, Status::Fail | Status::Warn) {
            self.fix = Some(fix);
        }
        self
    }
    fn pass(host: &str, check: CheckId, detail: impl Into<String>) -> Check {
        Check::new(host, check, Status::Pass, detail)
    }
    fn fail(
        host: &str,
        check: CheckId,
        detail: impl Into<String>,
        hint: impl Into<String>,
    ) -> Check {
        Check {
            hint: Some(hint.into()),
            ..Check::new(host, check, Status::Fail, detail)
        }
    }
    fn warn(
        host: &str,
        check: CheckId,
        detail: impl Into<String>,
        hint: impl Into<String>,
    ) -> Check {
        Check {
            hint: Some(hint.into()),
            ..Check::new(host, check, Status::Warn, detail)
        }
    }
}

/// The marker lines that split the doctor script's output into sections.
const MARK: &str = "@ferry-doctor";

/// Probes, each printing `KEY=value` lines (or, for the user manager, systemctl's words) and
/// each judged by a function below. They run in one script: see [`script`].
pub const SYSTEMD_PROBE: &str = "systemctl --version 2>/dev/null | head -n 2";
pub const BUS_PROBE: &str = "u=$(id -u); echo \"uid=$u\"; echo \"user=$(id -un)\"; \
    echo \"xdg=$XDG_RUNTIME_DIR\"; \
    if [ -d \"/run/user/$u\" ]; then echo run_dir=yes; else echo run_dir=no; fi; \
    if [ -S \"/run/user/$u/bus\" ]; then echo bus=yes; else echo bus=no; fi";
pub const USER_MANAGER_PROBE: &str = "systemctl --user is-system-running 2>&1; echo \"rc=$?\"; \
    systemctl --user list-units --state=failed --plain --no-legend --no-pager 2>/dev/null | cut -d' ' -f1";
pub const LINGER_PROBE: &str = "u=$(id -un); echo \"user=$u\"; \
    v=$(loginctl show-user \"$u\" --property=Linger --value 2>/dev/null); \
    if [ -z \"$v\" ]; then if [ -e \"/var/lib/systemd/linger/$u\" ]; then v=yes; else v=no; fi; fi; echo \"linger=$v\"";
/// Written after [`journal::FACTS_PROBE`]: a message of the user's own, read back with
/// `journalctl --user` (polled for up to 4 s: journald writes asynchronously).
pub const JOURNAL_READ_PROBE: &str = "m=\"ferry-doctor-$$-$(date +%s%N)\"; \
    if ! command -v systemd-cat >/dev/null; then echo readable=unknown; exit 0; fi; \
    echo \"$m\" | systemd-cat -t ferry-doctor; i=0; \
    while [ $i -lt 40 ]; do \
      if journalctl --user -q -o cat \"MESSAGE=$m\" 2>/dev/null | grep -q .; then echo readable=yes; exit 0; fi; \
      sleep 0.1; i=$((i+1)); done; echo readable=no";
pub const UNIT_DIR_PROBE: &str = "d=\"$HOME/.config/systemd/user\"; \
    if [ -d \"$d\" ]; then s=exists; else s=created; fi; \
    if e=$(mkdir -p \"$d\" 2>&1) && [ -w \"$d\" ]; then echo \"unit_dir=$s\"; \
    else echo unit_dir=unwritable; echo \"error=$e\"; fi";
pub const CGROUP_PROBE: &str = "u=$(id -u); echo \"uid=$u\"; echo \"user=$(id -un)\"; \
    if [ -f /sys/fs/cgroup/cgroup.controllers ]; then echo v2=yes; else echo v2=no; fi; \
    echo \"root=$(cat /sys/fs/cgroup/cgroup.controllers 2>/dev/null)\"; \
    m=\"/sys/fs/cgroup/user.slice/user-$u.slice/user@$u.service\"; \
    if [ -r \"$m/cgroup.controllers\" ]; then echo \"controllers=$(cat \"$m/cgroup.controllers\")\"; \
    echo \"subtree=$(cat \"$m/cgroup.subtree_control\" 2>/dev/null)\"; else echo controllers=missing; fi";
pub const PORTS_PROBE: &str =
    "echo \"port_start=$(cat /proc/sys/net/ipv4/ip_unprivileged_port_start 2>/dev/null)\"";

/// The sections of the doctor script, in order: (section, probe).
fn probes() -> Vec<(&'static str, String)> {
    vec![
        ("systemd", SYSTEMD_PROBE.to_string()),
        ("bus", BUS_PROBE.to_string()),
        ("user-manager", USER_MANAGER_PROBE.to_string()),
        ("linger", LINGER_PROBE.to_string()),
        (
            "journal",
            format!("{}; {JOURNAL_READ_PROBE}", journal::FACTS_PROBE),
        ),
        ("unit-dir", UNIT_DIR_PROBE.to_string()),
        ("cgroup", CGROUP_PROBE.to_string()),
        ("ports", PORTS_PROBE.to_string()),
        ("tools", tools::probe()),
    ]
}

/// The one script doctor runs on a host (one round trip): each probe in its own subshell (an
/// `exit` ends only that probe), after a `@ferry-doctor SECTION` line; `@ferry-doctor end` last.
pub fn script() -> String {
    let mut s = String::from("LC_ALL=C; export LC_ALL; ");
    for (section, probe) in probes() {
        s.push_str(&format!("echo '{MARK} {section}'; ( {probe} ); "));
    }
    s.push_str(&format!("echo '{MARK} end'"));
    s
}

/// The script's output by section (a section that did not run is absent).
pub fn parse_sections(out: &str) -> BTreeMap<String, String> {
    let mut sections = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in out.lines() {
        if let Some(name) = line.strip_prefix(MARK).and_then(|r| r.strip_prefix(' ')) {
            current = Some(name.trim().to_string());
            sections
                .entry(name.trim().to_string())
                .or_insert_with(String::new);
            continue;
        }
        if let Some(text) = current.as_ref().and_then(|c| sections.get_mut(c)) {
            text.push_str(line);
            text.push('\n');
        }
    }
    sections
}

/// The oldest systemd ferry works with: `journalctl --output-fields` (ferry logs --follow)
/// came with 236.
pub const MIN_SYSTEMD: u32 = 236;

pub fn judge_systemd_version(host: &str, text: &str) -> Check {
    let c = CheckId::SystemdVersion;
    let mut lines = text.lines();
    let first = lines.next().unwrap_or("").trim();
    let version: Option<u32> = first
        .strip_prefix("systemd ")
        .and_then(|r| r.split_whitespace().next())
        .and_then(|v| v.split(['.', '~', '-']).next())
        .and_then(|v| v.parse().ok());
    let features = lines.next().unwrap_or("");
    match version {
        None => Check::fail(
            host,
            c,
            if first.is_empty() {
                "`systemctl --version` printed nothing: is systemd installed?".to_string()
            } else {
                format!("cannot read the version from `{first}`")
            },
            format!(
                "ferry needs systemd {MIN_SYSTEMD} or newer as the host's init and user manager: install it"
            ),
        ),
        Some(v) if v < MIN_SYSTEMD => Check::fail(
            host,
            c,
            format!(
                "systemd {v} is too old: ferry needs {MIN_SYSTEMD} or newer (journalctl --output-fields)"
            ),
            format!("upgrade systemd on the host to {MIN_SYSTEMD} or newer"),
        ),
        Some(v) if features.split_whitespace().any(|f| f == "-PCRE2") => Check::warn(
            host,
            c,
            format!("systemd {v}, built without PCRE2: `ferry logs --grep` fails on this host"),
            "leave out --grep for this host, or install a systemd built with PCRE2",
        ),
        Some(v) => Check::pass(host, c, format!("systemd {v}")),
    }
}

/// The fix when the login has no user runtime directory or bus.
const PAM_FIX: &str = "pam_systemd sets it up at login: install libpam-systemd (Debian/Ubuntu; systemd's pam module elsewhere), make sure UsePAM yes is in /etc/ssh/sshd_config, then reconnect";

pub fn judge_user_bus(host: &str, text: &str) -> Check {
    judge_user_bus_verdict(host, text).fixed_by(RootFix::StartUserManager)
}

fn judge_user_bus_verdict(host: &str, text: &str) -> Check {
    let c = CheckId::UserBus;
    let uid = kv(text, "uid").unwrap_or("UID");
    let user = kv(text, "user").filter(|u| !u.is_empty()).unwrap_or("USER");
    let runtime = format!("/run/user/{uid}");
    let xdg = kv(text, "xdg").unwrap_or("");
    if xdg.is_empty() {
        return Check::fail(
            host,
            c,
            "XDG_RUNTIME_DIR is not set for the login: `systemctl --user` cannot find the user manager",
            PAM_FIX,
        );
    }
    if xdg.trim_end_matches('/') != runtime {
        return Check::fail(
            host,
            c,
            format!(
                "XDG_RUNTIME_DIR is {xdg}, not {runtime}: commands would talk to another user's manager or none"
            ),
            format!("do not set XDG_RUNTIME_DIR in {user}'s shell files; {PAM_FIX}"),
        );
    }
    if kv(text, "run_dir") != Some("yes") {
        return Check::fail(
            host,
            c,
            format!("{runtime} does not exist: the user has no running user manager"),
            format!(
                "as root on the host: loginctl enable-linger {user}; if it still does not appear, {PAM_FIX}"
            ),
        );
    }
    if kv(text, "bus") != Some("yes") {
        return Check::fail(
            host,
            c,
            format!(
                "{runtime}/bus does not exist: `systemd-run --user` (ferry's self-revert timer) cannot reach the user manager"
            ),
            "as root on the host: install dbus-user-session (Debian/Ubuntu; the dbus user units elsewhere), then restart the user manager (systemctl restart user@UID.service) or log in again",
        );
    }
    Check::pass(host, c, format!("XDG_RUNTIME_DIR={runtime}, {runtime}/bus"))
}

pub fn judge_user_manager(host: &str, text: &str) -> Check {
    judge_user_manager_verdict(host, text).fixed_by(RootFix::StartUserManager)
}

fn judge_user_manager_verdict(host: &str, text: &str) -> Check {
    let mut lines = text.lines();
    let state = lines.next().unwrap_or("").trim().to_string();
    let failed: Vec<&str> = lines
        .filter(|l| !l.starts_with("rc=") && !l.trim().is_empty())
        .map(str::trim)
        .collect();
    let c = CheckId::UserManager;
    match state.as_str() {
        "running" => Check::pass(host, c, "running"),
        "degraded" => Check::fail(
            host,
            c,
            format!("degraded: failed units: {}", failed.join(", ")),
            "inspect with `journalctl --user -u UNIT`; clear with `systemctl --user reset-failed`",
        ),
        "starting" | "initializing" => Check::fail(
            host,
            c,
            state.clone(),
            "the user manager is still starting; run doctor again in a moment",
        ),
        s if s.contains("Failed to connect to bus") || s.contains("No such file") => Check::fail(
            host,
            c,
            format!("not reachable: {s}"),
            "the login did not get XDG_RUNTIME_DIR/DBUS_SESSION_BUS_ADDRESS: is libpam-systemd installed and UsePAM yes in sshd_config? is lingering on?",
        ),
        s => Check::fail(
            host,
            c,
            if s.is_empty() {
                "no answer".to_string()
            } else {
                s.to_string()
            },
            "check `systemctl --user status` on the host",
        ),
    }
}

pub fn judge_linger(host: &str, text: &str) -> Check {
    judge_linger_verdict(host, text).fixed_by(RootFix::EnableLinger)
}

fn judge_linger_verdict(host: &str, text: &str) -> Check {
    let user = kv(text, "user").unwrap_or("USER").to_string();
    match kv(text, "linger") {
        Some("yes") => Check::pass(host, CheckId::Lingering, "on"),
        _ => Check::fail(
            host,
            CheckId::Lingering,
            format!("off for {user}: its services stop at logout and do not start at boot"),
            format!("as root on the host: loginctl enable-linger {user}"),
        ),
    }
}

pub fn judge_journal(host: &str, text: &str) -> Check {
    let facts = JournalFacts::parse(text);
    let readable = kv(text, "readable");
    let c = CheckId::Journal;
    if readable == Some("no") || !facts.persistent() {
        // The same words as `ferry logs` when the journal shows nothing.
        let d = journal::diagnose(&facts).unwrap_or_else(|| Diagnosis {
            message: format!(
                "`journalctl --user` does not show the own messages of {} (uid {})",
                facts.user_name(),
                facts.uid.map_or("?".to_string(), |u| u.to_string())
            ),
            hint: "as root on the host: check that journald's SplitMode is uid (the default) and that /var/log/journal/MACHINE-ID/user-UID.journal belongs to the user".to_string(),
        });
        return Check::fail(host, c, d.message, d.hint);
    }
    match readable {
        Some("yes") => Check::pass(host, c, "persistent, readable by the user"),
        _ => Check::fail(
            host,
            c,
            "persistent, but could not test reading it (systemd-cat missing)",
            "install systemd on the host",
        ),
    }
}

/// journald's storage and the uid range, from the journal section's facts: the configuration
/// behind what the `journal` check sees (the same fix as `ferry logs`).
pub fn judge_journal_storage(host: &str, text: &str) -> Check {
    let c = CheckId::JournalStorage;
    let f = JournalFacts::parse(text);
    let uid = f.uid.map_or("?".to_string(), |u| u.to_string());
    let place = if f.persistent() {
        "/var/log/journal in use".to_string()
    } else if f.var_log_journal {
        "/var/log/journal exists but is not used".to_string()
    } else {
        "no /var/log/journal".to_string()
    };
    let users = if f.system_user() {
        format!(
            "uid {uid} is below {}: no per-user journal",
            journal::FIRST_REGULAR_UID
        )
    } else {
        format!("uid {uid} gets its own journal")
    };
    let detail = format!("Storage={}, {place}; {users}", f.storage);
    match journal::diagnose(&f) {
        // A system uid gets no per-user journal whatever the storage: no command fixes that.
        Some(d) if f.system_user() => Check::fail(host, c, detail, d.hint),
        Some(d) => Check::fail(host, c, detail, d.hint).fixed_by(RootFix::PersistentJournal),
        None => Check::pass(host, c, detail),
    }
}

pub fn judge_unit_dir(host: &str, text: &str) -> Check {
    let c = CheckId::UnitDirectory;
    match kv(text, "unit_dir") {
        Some("exists") => Check::pass(host, c, "~/.config/systemd/user exists"),
        Some("created") => Check::pass(host, c, "~/.config/systemd/user created"),
        _ => Check::fail(
            host,
            c,
            format!(
                "~/.config/systemd/user cannot be created: {}",
                kv(text, "error")
                    .filter(|e| !e.is_empty())
                    .unwrap_or("not writable")
            ),
            "check the ownership and permissions of the home directory",
        ),
    }
}

/// The controllers resource settings of user units need: memory (MemoryMax=, MemoryHigh=),
/// pids (TasksMax=), cpu (CPUQuota=, CPUWeight=).
const NEEDED_CONTROLLERS: [&str; 3] = ["cpu", "memory", "pids"];

pub fn judge_cgroups(host: &str, text: &str) -> Check {
    let c = CheckId::CgroupDelegation;
    let uid = kv(text, "uid").unwrap_or("UID");
    let user = kv(text, "user").filter(|u| !u.is_empty()).unwrap_or("USER");
    if kv(text, "v2") != Some("yes") {
        return Check::warn(
            host,
            c,
            "cgroup v1 (or no cgroup filesystem): MemoryMax=, CPUQuota=, TasksMax= in user units are not enforced",
            "boot the host with cgroup v2: add systemd.unified_cgroup_hierarchy=1 to the kernel command line",
        );
    }
    let manager = format!("/sys/fs/cgroup/user.slice/user-{uid}.slice/user@{uid}.service");
    let Some(delegated) = kv(text, "controllers").filter(|c| *c != "missing") else {
        return Check::warn(
            host,
            c,
            format!("{manager} does not exist: cannot tell which controllers the user manager has"),
            format!("as root on the host: loginctl enable-linger {user}, then run doctor again"),
        );
    };
    let delegated: Vec<&str> = delegated.split_whitespace().collect();
    let root: Vec<&str> = kv(text, "root").unwrap_or("").split_whitespace().collect();
    let missing: Vec<&str> = NEEDED_CONTROLLERS
        .into_iter()
        .filter(|n| !delegated.contains(n))
        .collect();
    let shown = if delegated.is_empty() {
        "none".to_string()
    } else {
        delegated.join(" ")
    };
    if missing.is_empty() {
        return Check::pass(host, c, format!("delegated to user@{uid}.service: {shown}"));
    }
    let settings: Vec<&str> = missing
        .iter()
        .map(|m| match *m {
            "cpu" => "CPUQuota=/CPUWeight=",
            "memory" => "MemoryMax=/MemoryHigh=",
            _ => "TasksMax=",
        })
        .collect();
    let detail = format!(
        "delegated to user@{uid}.service: {shown} (missing: {}): {} in user units are accepted but not enforced",
        missing.join(" "),
        settings.join(", ")
    );
    let kernel_lacks = missing.iter().any(|m| !root.contains(m));
    let hint = if kernel_lacks {
        format!(
            "the kernel offers no {} controller at /sys/fs/cgroup (a container whose host delegates none?): enable them where this system runs, then delegate them as below; as root: mkdir -p /etc/systemd/system/user@.service.d; printf '[Service]\\nDelegate=cpu memory pids\\n' > /etc/systemd/system/user@.service.d/delegate.conf; systemctl daemon-reload; systemctl restart user@{uid}.service",
            missing.join("/")
        )
    } else {
        format!(
            "as root on the host: mkdir -p /etc/systemd/system/user@.service.d; printf '[Service]\\nDelegate=cpu memory pids\\n' > /etc/systemd/system/user@.service.d/delegate.conf; systemctl daemon-reload; systemctl restart user@{uid}.service (it stops {user}'s services for a moment)"
        )
    };
    let check = Check::warn(host, c, detail, hint);
    if kernel_lacks {
        check
    } else {
        check.fixed_by(RootFix::DelegateControllers)
    }
}

pub fn judge_ports(host: &str, text: &str) -> Check {
    let c = CheckId::UnprivilegedPorts;
    let sysctl = "net.ipv4.ip_unprivileged_port_start";
    match kv(text, "port_start").and_then(|p| p.parse::<u32>().ok()) {
        None => Check::pass(
            host,
            c,
            format!("user services can listen on ports 1024 and up (no {sysctl} in this kernel)"),
        ),
        Some(0) => Check::pass(
            host,
            c,
            format!("user services can listen on any port ({sysctl}=0)"),
        ),
        Some(p) if p <= 1024 => Check::pass(
            host,
            c,
            format!(
                "user services can listen on ports {p} and up ({sysctl}={p}); a lower port needs that sysctl lowered as root"
            ),
        ),
        Some(p) => Check::warn(
            host,
            c,
            format!(
                "user services can listen only on ports {p} and up ({sysctl}={p}, above the usual 1024)"
            ),
            format!(
                "as root on the host: sysctl -w {sysctl}=1024 and put `{sysctl} = 1024` in /etc/sysctl.d/50-ferry-ports.conf"
            ),
        )
        .fixed_by(RootFix::UnprivilegedPorts),
    }
}

/// Run every check on one host: one connection, one script.
pub async fn check_host(host: &Host) -> Vec<Check> {
    let conn: Connection = match ssh::connect(host).await {
        Ok(c) => c,
        Err(e) => return connection_checks(host, &e),
    };
    let n = &host.name;
    let mut checks = vec![
        Check::pass(
            n,
            CheckId::Reachable,
            match conn.via() {
                Some(j) => format!("{}:{} through {j}", host.address, host.port),
                None => format!("{}:{}", host.address, host.port),
            },
        ),
        Check::pass(
            n,
            CheckId::HostKey,
            if conn.host_key_learned {
                format!(
                    "{} (new: recorded in {})",
                    conn.host_key,
                    host.known_hosts.display()
                )
            } else {
                format!("{} (known_hosts)", conn.host_key)
            },
        ),
        Check::pass(
            n,
            CheckId::Authenticated,
            format!("as {} with {}", host.user, conn.auth_method),
        ),
    ];
    let (login, runs) = login::checks(n, &conn).await;
    checks.extend(login);
    if !runs {
        conn.close().await;
        checks.extend(login::skipped(n));
        return checks;
    }
    let result = conn.exec(&script()).await;
    conn.close().await;
    checks.extend(match result {
        Ok(out) => judge_all(n, &out.stdout_str()),
        Err(e) => CheckId::ALL
            .iter()
            .filter(|c| !c.is_connection() && !c.is_login())
            .map(|&name| {
                Check::fail(
                    n,
                    name,
                    e.to_string(),
                    "the connection failed during the check: run doctor again",
                )
            })
            .collect(),
    });
    checks
}

/// Judge the output of [`script`]: every check after `authenticated`, in `CheckId` order.
pub fn judge_all(host: &str, out: &str) -> Vec<Check> {
    let sections = parse_sections(out);
    let complete = sections.contains_key("end");
    type Judge = fn(&str, &str) -> Check;
    let judges: [(&str, Judge); 10] = [
        ("systemd", judge_systemd_version),
        ("bus", judge_user_bus),
        ("user-manager", judge_user_manager),
        ("linger", judge_linger),
        ("journal", judge_journal),
        ("journal", judge_journal_storage),
        ("unit-dir", judge_unit_dir),
        ("cgroup", judge_cgroups),
        ("ports", judge_ports),
        ("tools", tools::judge_tools),
    ];
    judges
        .iter()
        .map(|(section, judge)| {
            let mut c = judge(host, sections.get(*section).map_or("", String::as_str));
            if !complete && c.status != Status::Pass {
                c.detail
                    .push_str(" (the check script did not run to its end)");
            }
            c
        })
        .collect()
}

/// How many hosts are checked at once.
const PARALLEL: usize = 64;

/// `--fix`: print the root commands that fix what failed, or run them with `sudo -n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fix {
    No,
    Print,
    Sudo,
}

/// The journald drop-in that makes the journal persistent (per-user journals need it).
pub const JOURNAL_DROPIN: &str = "/etc/systemd/journald.conf.d/99-ferry-persistent.conf";
/// The user@.service drop-in that delegates the cgroup controllers to user managers.
pub const DELEGATE_DROPIN: &str = "/etc/systemd/system/user@.service.d/delegate.conf";
/// The sysctl file that keeps the unprivileged port start at 1024.
pub const PORTS_SYSCTL: &str = "/etc/sysctl.d/50-ferry-ports.conf";

/// The exact commands root runs on the host to fix a check that did not pass, for the login
/// `user`; None when there is no command to run (the hint says what to do).
pub fn fix_commands(c: &Check, user: &str) -> Option<Vec<String>> {
    if c.status == Status::Pass || c.status == Status::Skip {
        return None;
    }
    let u = crate::shell::quote(user);
    Some(match c.fix? {
        RootFix::EnableLinger => vec![format!("loginctl enable-linger {u}")],
        RootFix::StartUserManager => vec![
            format!("loginctl enable-linger {u}"),
            format!("systemctl start user@$(id -u {u}).service"),
        ],
        RootFix::PersistentJournal => vec![
            "mkdir -p /etc/systemd/journald.conf.d".into(),
            format!("printf '[Journal]\\nStorage=persistent\\n' > {JOURNAL_DROPIN}"),
            "mkdir -p /var/log/journal".into(),
            "systemd-tmpfiles --create --prefix /var/log/journal".into(),
            "systemctl restart systemd-journald".into(),
        ],
        RootFix::DelegateControllers => vec![
            "mkdir -p /etc/systemd/system/user@.service.d".into(),
            format!(
                "printf '[Service]\\nDelegate=cpu cpuset io memory pids\\n' > {DELEGATE_DROPIN}"
            ),
            "systemctl daemon-reload".into(),
            format!("systemctl restart user@$(id -u {u}).service"),
        ],
        f @ (RootFix::SftpSubsystem | RootFix::MaxSessions) => login::sshd_fix(f),
        RootFix::UnprivilegedPorts => vec![
            "sysctl -w net.ipv4.ip_unprivileged_port_start=1024".into(),
            format!("echo 'net.ipv4.ip_unprivileged_port_start = 1024' > {PORTS_SYSCTL}"),
        ],
    })
}

/// Run the fixes of one host through `sudo -n`, one check's commands at a time.
async fn apply_fixes(host: &Host, fixes: Vec<(CheckId, Vec<String>)>) -> Vec<FixEvent> {
    let event = |check, commands, result, error| FixEvent {
        kind: "fix",
        host: host.name.clone(),
        check,
        commands,
        result,
        error,
    };
    let conn = match ssh::connect(host).await {
        Ok(c) => c,
        Err(e) => {
            return fixes
                .into_iter()
                .map(|(check, cmds)| event(check, cmds, "failed", Some(e.to_string())))
                .collect();
        }
    };
    let mut out = Vec::new();
    for (check, cmds) in fixes {
        let script = format!("set -e; {}", cmds.join("; "));
        let line = format!("sudo -n sh -c {}", crate::shell::quote(&script));
        match conn.exec(&line).await {
            Ok(o) if o.success() => out.push(event(check, cmds, "done", None)),
            Ok(o) => {
                let err = o.stderr_str();
                let err = err.trim();
                let why = if o.status_text().contains("127")
                    || err.contains("sudo: not found")
                    || err.contains("command not found")
                {
                    format!("sudo is not installed on the host ({err}); run the commands as root")
                } else if err.contains("password is required")
                    || err.contains("not in the sudoers")
                    || err.contains("not allowed")
                {
                    format!(
                        "{} may not run them with `sudo -n` ({err}); run the commands as root",
                        host.user
                    )
                } else {
                    format!("{} ({err})", o.status_text())
                };
                out.push(event(check, cmds, "failed", Some(why)));
            }
            Err(e) => out.push(event(check, cmds, "failed", Some(e.to_string()))),
        }
    }
    conn.close().await;
    out
}

/// `ferry doctor`: check hosts in parallel, print in config order. Exit code: 0 when every
/// check passed, 3 when a host could not be reached or logged in to, else 1. With `--fix`,
/// each host's failing checks are followed by the root commands that fix them (run with
/// `sudo -n` under `--sudo`; a fix that could not be run makes the exit code 1).
pub async fn run(args: DoctorArgs, ctx: &Context) -> Result<Exit, Error> {
    let hosts = targets::hosts(&ctx.config_for_hosts()?, &ctx.hosts)?;
    let fix = match (args.fix, args.sudo) {
        (false, _) => Fix::No,
        (true, false) => Fix::Print,
        (true, true) => Fix::Sudo,
    };
    let reporter = &ctx.reporter;
    let n = hosts.len();
    let results = fanout::each(hosts, PARALLEL, move |h: Host| async move {
        let checks = check_host(&h).await;
        let fixes: Vec<(CheckId, Vec<String>)> = if fix == Fix::No {
            Vec::new()
        } else {
            checks
                .iter()
                .filter_map(|c| fix_commands(c, &h.user).map(|cmds| (c.check, cmds)))
                .collect()
        };
        let events = match fix {
            Fix::Sudo if !fixes.is_empty() => apply_fixes(&h, fixes).await,
            _ => fixes
                .into_iter()
                .map(|(check, commands)| FixEvent {
                    kind: "fix",
                    host: h.name.clone(),
                    check,
                    commands,
                    result: "print",
                    error: None,
                })
                .collect(),
        };
        (checks, events)
    })
    .await;
    let mut passed = 0;
    let mut failed = 0;
    let mut warnings = 0;
    let mut unconnected = false;
    let mut fix_failed = false;
    for (checks, fixes) in results {
        for c in &checks {
            match c.status {
                Status::Pass => passed += 1,
                Status::Fail => {
                    failed += 1;
                    unconnected |= c.check.is_connection();
                }
                Status::Warn => warnings += 1,
                Status::Skip => {}
            }
            reporter.emit(c);
        }
        for f in &fixes {
            fix_failed |= f.result == "failed";
            reporter.emit(f);
        }
    }
    reporter.emit(&Summary {
        kind: "summary",
        hosts: n,
        passed,
        failed,
        warnings,
    });
    Ok(if unconnected {
        Exit::Connection
    } else if failed > 0 || fix_failed {
        Exit::Failed
    } else {
        Exit::Ok
    })
}

#[cfg(test)]
mod tests;
