//! `ferry status`: the state of each service's units on each host, and the release `current`
//! points to. One connection and one remote script per host, hosts in parallel. Building the
//! script, parsing its output and judging each unit are pure and unit-tested; only [`show`] and
//! [`query_host`] do I/O. The table and the other events are drawn by `report::status`.

use std::time::{Duration, UNIX_EPOCH};

use crate::cli::StatusArgs;
use crate::commands::targets::{self, Target};
use crate::commands::{Context, fanout};
use crate::config::Host;
use crate::error::{Error, Exit};
use crate::plan::revert::Notice;
use crate::report::status::{HostError, UnitStatus};
use crate::report::{self, Reporter};
use crate::shell;
use crate::systemd::switch::Colour;
use crate::systemd::{self, UnitState};
use crate::transport::ssh;

/// What to show on one host: each service with its unit names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPlan {
    pub host: Host,
    pub services: Vec<(String, Vec<String>)>,
}

impl HostPlan {
    /// The services of a selected host, with their unit names.
    pub fn of(target: &Target) -> HostPlan {
        HostPlan {
            host: target.host.clone(),
            services: target
                .services
                .iter()
                .map(|s| {
                    (
                        s.name.clone(),
                        crate::prepare::template::status_units(s, &target.host.name),
                    )
                })
                .collect(),
        }
    }
}

/// Marker lines that split the script's output into sections.
const MARK: &str = "@ferry";

/// The one script a host runs: the time, and for each service the target of `current`, the
/// units' properties and the state of the units that trigger them. Timestamps in UTC so they
/// can be parsed whatever the host's time zone.
pub fn script(services: &[(String, Vec<String>)]) -> String {
    let mut s = String::from("TZ=UTC; export TZ; LC_ALL=C; export LC_ALL; set -f; ");
    s.push_str(&format!("echo \"{MARK} now $(date +%s)\"; "));
    s.push_str(&format!(
        "{{ {}}} | sed 's/^/{MARK} host /'; ",
        crate::plan::LINGER_SCRIPT
    ));
    for (name, units) in services {
        s.push_str(&format!(
            "printf '%s\\n' {}; ",
            shell::quote(&format!("{MARK} service {name}"))
        ));
        let current = shell::home_path(&crate::release::Paths::new(name).current());
        s.push_str(&format!(
            "printf '{MARK} current %s\\n' \"$(readlink {current} 2>/dev/null)\"; "
        ));
        let live = shell::home_path(&format!(
            "{}/live.sock",
            crate::release::Paths::new(name).dir()
        ));
        s.push_str(&format!(
            "printf '{MARK} live %s\\n' \"$(readlink {live} 2>/dev/null)\"; "
        ));
        s.push_str(&revert_script(name));
        if units.is_empty() {
            continue;
        }
        s.push_str(&format!(
            "echo '{MARK} show'; {}; ",
            systemd::show_command(units)
        ));
        // Units that trigger ours (a socket, a timer), for judging an idle service.
        let trig = systemd::systemctl(
            &[
                vec!["show".to_string()],
                units.clone(),
                vec!["--property=TriggeredBy".into(), "--value".into()],
            ]
            .concat(),
        );
        s.push_str(&format!(
            "echo '{MARK} triggers'; t=$({trig}); if [ -n \"$(echo $t)\" ]; then systemctl --user show $t --property=Id,LoadState,ActiveState,SubState,Result; fi; "
        ));
    }
    s.push_str(&format!("echo '{MARK} end'"));
    s
}

/// One service's self-revert as the host reports it: the release it was last armed for, its
/// deadline, whether its timer is armed, and whether the history mentions that release.
fn revert_script(service: &str) -> String {
    let paths = crate::release::Paths::new(service);
    let dir = shell::home_path(&paths.dir());
    let timer = shell::quote(&format!("{}.timer", paths.revert_unit()));
    format!(
        "t=$(cat {dir}/revert.target 2>/dev/null); d=$(cat {dir}/revert.deadline 2>/dev/null); \
         a=$(systemctl --user is-active {timer} 2>/dev/null); k=0; \
         [ -n \"$t\" ] && k=$(grep -F \"\\\"$t\\\"\" {dir}/history.jsonl 2>/dev/null | grep -cvE '\"action\":\"(stage|migrate)\"'); \
         printf '{MARK} revert %s %s %s %s\\n' \"${{t:--}}\" \"${{d:--}}\" \"${{a:--}}\" \"${{k:-0}}\"; "
    )
}

/// The self-revert of a service, as the status script's `revert` line reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RevertReport {
    /// The release the timer was last armed for.
    pub target: String,
    /// Its deadline (seconds since the epoch, the host's clock).
    pub deadline: Option<u64>,
    /// The timer is armed (`active`).
    pub armed: bool,
    /// The history has a line about that release (a confirm, a rollback, the revert).
    pub recorded: bool,
}

impl RevertReport {
    fn parse(arg: &str) -> Option<RevertReport> {
        let w: Vec<&str> = arg.split_whitespace().collect();
        let [target, deadline, active, known] = w.as_slice() else {
            return None;
        };
        crate::release::is_release_id(target).then(|| RevertReport {
            target: target.to_string(),
            deadline: deadline.parse().ok(),
            armed: *active == "active",
            recorded: known.parse::<u64>().is_ok_and(|n| n > 0),
        })
    }
}

/// What to tell about a service's self-revert: pending (with its deadline, on the host's
/// clock `now`), or lost (the release is unconfirmed and nothing will revert it).
pub fn revert_note(svc: &ServiceReport, now: Option<u64>) -> Option<String> {
    let r = svc.revert.as_ref()?;
    let current = release_id(&svc.current)?;
    if r.target != current {
        return None;
    }
    let state = if r.armed {
        Notice::Pending {
            deadline: r.deadline,
            now,
        }
    } else if !r.recorded {
        Notice::Lost
    } else {
        return None;
    };
    Some(crate::plan::revert::notice(&svc.service, &current, state))
}

/// What one host reported for one service.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceReport {
    pub service: String,
    /// The target of `current` (empty when there is none).
    pub current: String,
    /// Blue/green: the colour the front sends connections to.
    pub live: Option<Colour>,
    /// The service's self-revert, when one was ever armed.
    pub revert: Option<RevertReport>,
    pub units: Vec<UnitState>,
    pub triggers: Vec<UnitState>,
}

/// Parsed script output of one host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostReport {
    /// The host's clock (seconds since the epoch), for "since" durations without clock skew.
    pub now: Option<u64>,
    pub services: Vec<ServiceReport>,
    /// The script ran to its end.
    pub complete: bool,
    /// The login user lingers (None: the host did not say).
    pub linger: Option<bool>,
    /// The login user's name.
    pub user: Option<String>,
}

/// Parse the output of [`script`].
pub fn parse_output(out: &str) -> HostReport {
    let mut report = HostReport::default();
    let mut section = "";
    let mut buf = String::new();
    fn flush(report: &mut HostReport, section: &str, buf: &mut String) {
        if let Some(svc) = report.services.last_mut() {
            match section {
                "show" => svc.units = systemd::parse_show(buf),
                "triggers" => svc.triggers = systemd::parse_show(buf),
                _ => {}
            }
        }
        buf.clear();
    }
    for line in out.lines() {
        if let Some(rest) = line.strip_prefix(MARK).and_then(|r| r.strip_prefix(' ')) {
            flush(&mut report, section, &mut buf);
            let (word, arg) = rest.split_once(' ').unwrap_or((rest, ""));
            match word {
                "now" => report.now = arg.trim().parse().ok(),
                "host" => match arg.trim().split_once('=') {
                    Some(("linger", v)) => report.linger = Some(v == "yes"),
                    Some(("user", v)) if !v.is_empty() => report.user = Some(v.to_string()),
                    _ => {}
                },
                "service" => report.services.push(ServiceReport {
                    service: arg.to_string(),
                    ..Default::default()
                }),
                "current" => {
                    if let Some(svc) = report.services.last_mut() {
                        svc.current = arg.trim().to_string();
                    }
                }
                "live" => {
                    if let Some(svc) = report.services.last_mut() {
                        svc.live = Colour::of_link(arg);
                    }
                }
                "revert" => {
                    if let Some(svc) = report.services.last_mut() {
                        svc.revert = RevertReport::parse(arg);
                    }
                }
                "end" => report.complete = true,
                _ => {}
            }
            section = match word {
                "show" => "show",
                "triggers" => "triggers",
                _ => "",
            };
            continue;
        }
        if !section.is_empty() {
            buf.push_str(line);
            buf.push('\n');
        }
    }
    flush(&mut report, section, &mut buf);
    report
}

/// The release id from the target of `current` (`releases/ID`): its last component, or None.
pub fn release_id(target: &str) -> Option<String> {
    crate::release::parse_current(target)
}

/// A `systemctl show` timestamp printed with TZ=UTC (`Tue 2026-11-24 12:00:00 UTC`) as
/// seconds since the epoch.
pub fn parse_timestamp(s: &str) -> Option<u64> {
    let parts: Vec<&str> = s.split_whitespace().collect();
    let (date, time) = match parts.as_slice() {
        [_dow, date, time, "UTC"] => (*date, *time),
        [date, time, "UTC"] => (*date, *time),
        _ => return None,
    };
    let t = humantime::parse_rfc3339_weak(&format!("{date} {time}")).ok()?;
    t.duration_since(UNIX_EPOCH).ok().map(|d| d.as_secs())
}

/// Whether a unit counts as up, and why not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Up,
    /// Not running, but started on demand by a listening socket or an active timer.
    OnDemand(String),
    Down(String),
}

impl Verdict {
    pub fn ok(&self) -> bool {
        !matches!(self, Verdict::Down(_))
    }
}

/// Judge one unit; `others` are the service's other units and the units that trigger it.
pub fn judge(unit: &UnitState, others: &[&UnitState]) -> Verdict {
    if unit.load_state == "not-found" {
        return Verdict::Down("not installed".into());
    }
    if unit.load_state == "masked" {
        return Verdict::Down("masked".into());
    }
    if unit.active_state == "active" || unit.active_state == "reloading" {
        return Verdict::Up;
    }
    if systemd::unit_type(&unit.id) == "service" && unit.active_state == "inactive" {
        for t in &unit.triggered_by {
            let Some(trigger) = others.iter().find(|o| &o.id == t) else {
                continue;
            };
            if trigger.is_listening() {
                return Verdict::OnDemand(format!("socket-activated: {t} is listening"));
            }
            if systemd::unit_type(t) == "timer"
                && trigger.is_active()
                && (unit.result == "success" || unit.result.is_empty())
            {
                return Verdict::OnDemand(format!("started by {t}"));
            }
        }
    }
    let mut why = match unit.active_state.as_str() {
        "failed" => format!("failed (result: {})", unit.result),
        "inactive" => "stopped".to_string(),
        "activating" => format!("not up yet ({})", unit.sub_state),
        "" => "no state reported".to_string(),
        s => s.to_string(),
    };
    if unit.n_restarts > 0 {
        why.push_str(&format!(", restarted {} times", unit.n_restarts));
    }
    Verdict::Down(why)
}

/// The rows of one host's report.
pub fn unit_statuses(host: &str, report: &HostReport) -> Vec<UnitStatus> {
    let mut rows = Vec::new();
    for svc in &report.services {
        let release = release_id(&svc.current);
        let others: Vec<&UnitState> = svc.units.iter().chain(svc.triggers.iter()).collect();
        for u in &svc.units {
            // Blue/green: the colour not live is stopped by design; only the live one counts.
            if let Some((_, colour)) = u.id.rsplit_once('@')
                && let Some(c) = Colour::parse(colour.trim_end_matches(".service"))
                && u.id == crate::systemd::switch::instance(&svc.service, c)
                && svc.live.is_some_and(|l| l != c)
            {
                continue;
            }
            let verdict = judge(u, &others);
            let raw_since = if u.is_active() && !u.active_enter_timestamp.is_empty() {
                &u.active_enter_timestamp
            } else {
                &u.state_change_timestamp
            };
            let since = parse_timestamp(raw_since);
            let is_socket = systemd::unit_type(&u.id) == "socket";
            let mut note = match &verdict {
                Verdict::Up => None,
                Verdict::OnDemand(s) | Verdict::Down(s) => Some(s.clone()),
            };
            if is_socket && u.is_listening() && !u.listen.is_empty() {
                let addrs: Vec<&str> = u
                    .listen
                    .iter()
                    .map(|l| l.rsplit_once(" (").map(|(a, _)| a).unwrap_or(l))
                    .collect();
                note = Some(format!("listening on {}", addrs.join(", ")));
            }
            rows.push(UnitStatus {
                kind: "unit",
                host: host.to_string(),
                service: svc.service.clone(),
                unit: u.id.clone(),
                load_state: u.load_state.clone(),
                active_state: u.active_state.clone(),
                sub_state: u.sub_state.clone(),
                result: u.result.clone(),
                since: since.map(|s| {
                    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(s))
                        .to_string()
                }),
                since_seconds: match (since, report.now) {
                    (Some(s), Some(now)) => Some(now.saturating_sub(s)),
                    _ => None,
                },
                main_pid: Some(u.main_pid).filter(|p| *p != 0 && u.is_active()),
                memory_bytes: u.memory_current,
                restarts: u.n_restarts,
                enabled: u.unit_file_state.clone(),
                release: release.clone(),
                live: svc.live.map(|c| c.name().to_string()),
                listening: is_socket.then(|| u.is_listening()),
                listen: u.listen.clone(),
                triggered_by: u.triggered_by.clone(),
                ok: verdict.ok(),
                note,
                linger: report.linger.filter(|l| !l),
            });
        }
    }
    rows
}

/// The exit code: 0 only when every unit is up and every host answered; 3 when a host could not
/// be reached; else 1.
pub fn exit_code(rows: &[UnitStatus], unreachable: usize, failed: usize) -> Exit {
    if unreachable > 0 {
        Exit::Connection
    } else if failed == 0 && rows.iter().all(|r| r.ok) {
        Exit::Ok
    } else {
        Exit::Failed
    }
}

/// Connect to one host and run its script.
pub async fn query_host(plan: &HostPlan) -> Result<HostReport, Error> {
    let conn = ssh::connect(&plan.host).await?;
    let cmd = script(&plan.services);
    let out = conn.exec(&cmd).await;
    conn.close().await;
    let out = out?;
    let report = parse_output(&out.stdout_str());
    if !report.complete {
        return Err(Error::Command {
            host: plan.host.name.clone(),
            command: "systemctl --user show ...".into(),
            status: out.status_text(),
            stderr: out.stderr_str(),
        });
    }
    // systemctl said nothing about the units: the user manager is not reachable.
    let expected: usize = plan.services.iter().map(|(_, u)| u.len()).sum();
    let got: usize = report.services.iter().map(|s| s.units.len()).sum();
    if got < expected {
        return Err(Error::Command {
            host: plan.host.name.clone(),
            command: "systemctl --user show".into(),
            status: format!("reported {got} of {expected} units"),
            stderr: out.stderr_str(),
        });
    }
    Ok(report)
}

/// `ferry status [SERVICE...] [--host NAME...]`.
pub async fn run(args: StatusArgs, ctx: &Context) -> Result<Exit, Error> {
    let config = ctx.config_for_hosts()?;
    let reporter = &ctx.reporter;
    let targets = targets::resolve(&config, &args.services, &ctx.hosts)?;
    for svc in config.services.values() {
        if svc.units.is_empty()
            && targets
                .iter()
                .any(|t| t.services.iter().any(|s| s.name == svc.name))
        {
            reporter.warn(
                None,
                &format!("service `{}` has no units in the config", svc.name),
            );
        }
    }
    Ok(show(targets.iter().map(HostPlan::of).collect(), reporter).await)
}

/// How many hosts are queried at once.
const PARALLEL: usize = 64;

/// Query the hosts in parallel, print in host order, return the exit code.
pub async fn show(plans: Vec<HostPlan>, reporter: &Reporter) -> Exit {
    let hosts = plans.len();
    let results = fanout::each(plans, PARALLEL, |p: HostPlan| async move {
        let r = query_host(&p).await;
        (p, r)
    })
    .await;
    let mut rows = Vec::new();
    let mut errors = Vec::new();
    for (plan, result) in results {
        match result {
            Ok(report) => {
                if report.linger == Some(false) {
                    let user = report.user.as_deref().unwrap_or("the login user");
                    reporter.warn(
                        Some(&plan.host.name),
                        &format!(
                            "{user} has no linger: its services live only while someone is logged in as {user} (this check's own login started its user manager; it stops when the last session ends); as root on the host: loginctl enable-linger {user}"
                        ),
                    );
                }
                for svc in &report.services {
                    if let Some(note) = revert_note(svc, report.now) {
                        reporter.warn(Some(&plan.host.name), &note);
                    }
                }
                rows.extend(unit_statuses(&plan.host.name, &report))
            }
            Err(e) => errors.push(HostError::new(&plan.host.name, &e)),
        }
    }
    let summary = report::status::emit(reporter, hosts, &rows, &errors);
    exit_code(&rows, summary.unreachable, summary.failed)
}

#[cfg(test)]
pub(crate) mod tests;
