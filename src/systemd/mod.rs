//! systemd knowledge, pure: unit name rules, `systemctl --user` / `journalctl --user` command
//! lines, and parsing of `systemctl show` output. Nothing here runs anything.

pub mod journal;
pub mod lint;
pub mod switch;
pub mod units;
pub mod versions;

use std::collections::BTreeMap;

use crate::shell;

/// Unit suffixes systemd knows.
pub const UNIT_SUFFIXES: &[&str] = &[
    "service",
    "socket",
    "timer",
    "path",
    "target",
    "slice",
    "scope",
    "mount",
    "automount",
    "swap",
    "device",
];

/// Check a unit name the way systemd does (`unit_name_is_valid`): `prefix[@instance].suffix`,
/// at most 255 bytes, characters `[A-Za-z0-9:_.\-]` (and `@` once), a known suffix.
pub fn validate_unit_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("empty unit name".into());
    }
    if name.len() > 255 {
        return Err("unit names are at most 255 bytes".into());
    }
    let Some((stem, suffix)) = name.rsplit_once('.') else {
        return Err(format!(
            "a unit name needs a type suffix: one of .{}",
            UNIT_SUFFIXES.join(" .")
        ));
    };
    if !UNIT_SUFFIXES.contains(&suffix) {
        return Err(format!(
            "`.{suffix}` is not a unit type systemd knows; use one of .{}",
            UNIT_SUFFIXES.join(" .")
        ));
    }
    if stem.is_empty() {
        return Err("the unit name before the suffix is empty".into());
    }
    let (prefix, instance) = match stem.split_once('@') {
        Some((p, i)) => (p, Some(i)),
        None => (stem, None),
    };
    if prefix.is_empty() {
        return Err("nothing before `@`".into());
    }
    let ok = |s: &str| {
        s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '_' | '.' | '-' | '\\'))
    };
    if !ok(prefix) || instance.is_some_and(|i| !ok(i) || i.contains('@')) {
        return Err(
            "systemd allows only letters, digits and `:_.-\\` in unit names (and one `@` for templates)"
                .into(),
        );
    }
    Ok(())
}

/// The unit's type suffix (`service`, `socket`, ...).
pub fn unit_type(name: &str) -> &str {
    name.rsplit_once('.').map(|(_, s)| s).unwrap_or("")
}

/// Properties read from `systemctl --user show`, enough to judge whether a unit is up.
pub const STATE_PROPERTIES: &[&str] = &[
    "Id",
    "LoadState",
    "ActiveState",
    "SubState",
    "Result",
    "NRestarts",
    "ExecMainStatus",
    "ExecMainCode",
    "ExecMainPID",
    "MainPID",
    "InvocationID",
    "ActiveEnterTimestamp",
    "StateChangeTimestamp",
    "UnitFileState",
    "MemoryCurrent",
    "Triggers",
    "TriggeredBy",
    "Listen",
    "NeedDaemonReload",
];

/// `systemctl --user ARGS...` with every argument quoted.
pub fn systemctl<S: AsRef<str>>(args: &[S]) -> String {
    let mut all = vec!["systemctl".to_string(), "--user".to_string()];
    all.extend(args.iter().map(|a| a.as_ref().to_string()));
    shell::command(all)
}

/// `systemctl --user show UNIT... -p P1,P2,...` (one block of `Key=value` lines per unit).
pub fn show_command(units: &[String]) -> String {
    let mut args: Vec<String> = vec!["show".into()];
    args.extend(units.iter().cloned());
    args.push(format!("--property={}", STATE_PROPERTIES.join(",")));
    systemctl(&args)
}

/// The state of one unit as `systemctl show` reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct UnitState {
    pub id: String,
    pub load_state: String,
    pub active_state: String,
    pub sub_state: String,
    pub result: String,
    pub n_restarts: u64,
    pub exec_main_status: i64,
    pub main_pid: u32,
    pub invocation_id: String,
    pub active_enter_timestamp: String,
    pub state_change_timestamp: String,
    pub unit_file_state: String,
    /// Bytes, when systemd tracks it (`[not set]` otherwise).
    pub memory_current: Option<u64>,
    pub triggered_by: Vec<String>,
    pub triggers: Vec<String>,
    pub listen: Vec<String>,
    pub need_daemon_reload: bool,
}

impl UnitState {
    /// Build from the `Key=value` lines of one unit.
    pub fn from_properties(props: &BTreeMap<String, String>) -> UnitState {
        let get = |k: &str| props.get(k).cloned().unwrap_or_default();
        let num = |k: &str| {
            props
                .get(k)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        let list = |k: &str| {
            props
                .get(k)
                .map(|v| v.split_whitespace().map(String::from).collect())
                .unwrap_or_default()
        };
        let main_pid = props
            .get("MainPID")
            .and_then(|v| v.parse().ok())
            .filter(|p| *p != 0)
            .or_else(|| props.get("ExecMainPID").and_then(|v| v.parse().ok()))
            .unwrap_or(0);
        UnitState {
            id: get("Id"),
            load_state: get("LoadState"),
            active_state: get("ActiveState"),
            sub_state: get("SubState"),
            result: get("Result"),
            n_restarts: num("NRestarts"),
            exec_main_status: props
                .get("ExecMainStatus")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
            main_pid,
            invocation_id: get("InvocationID"),
            active_enter_timestamp: get("ActiveEnterTimestamp"),
            state_change_timestamp: get("StateChangeTimestamp"),
            unit_file_state: get("UnitFileState"),
            memory_current: props
                .get("MemoryCurrent")
                .and_then(|v| v.parse().ok())
                .filter(|m| *m != u64::MAX),
            triggered_by: list("TriggeredBy"),
            triggers: list("Triggers"),
            listen: props
                .get("Listen")
                .map(|v| v.lines().map(String::from).collect())
                .unwrap_or_default(),
            need_daemon_reload: get("NeedDaemonReload") == "yes",
        }
    }

    pub fn is_active(&self) -> bool {
        self.active_state == "active"
    }

    pub fn is_failed(&self) -> bool {
        self.active_state == "failed"
    }

    /// A socket unit that is listening (`running` once its service has taken the socket over).
    pub fn is_listening(&self) -> bool {
        unit_type(&self.id) == "socket"
            && self.active_state == "active"
            && matches!(self.sub_state.as_str(), "listening" | "running")
    }

    /// `active (running)`, `failed (Result: exit-code)` ...
    pub fn summary(&self) -> String {
        let mut s = format!("{} ({})", self.active_state, self.sub_state);
        if self.result != "success" && !self.result.is_empty() {
            s.push_str(&format!(", result: {}", self.result));
        }
        if self.n_restarts > 0 {
            s.push_str(&format!(", restarted {} times", self.n_restarts));
        }
        s
    }
}

/// Parse `systemctl show` output for several units: blocks separated by empty lines, in the
/// order the units were asked for. Values may contain `=`.
pub fn parse_show(output: &str) -> Vec<UnitState> {
    let mut states = Vec::new();
    let mut props = BTreeMap::new();
    for line in output.lines() {
        if line.is_empty() {
            if !props.is_empty() {
                states.push(UnitState::from_properties(&props));
                props.clear();
            }
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            // A property listed several times (Listen=) keeps every value, one per line.
            props
                .entry(k.to_string())
                .and_modify(|old: &mut String| {
                    old.push('\n');
                    old.push_str(v);
                })
                .or_insert_with(|| v.to_string());
        }
    }
    if !props.is_empty() {
        states.push(UnitState::from_properties(&props));
    }
    states
}

/// How a unit looks while ferry waits for it to come up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Up(String),
    Pending(String),
    Failed(String),
}

/// Judge one unit after a restart. `before` is its InvocationID before the restart (a service
/// still showing it has not been restarted yet); `socket_listening` tells whether a socket
/// that triggers it is listening (a socket-activated service may rightly be inactive).
pub fn assess(st: &UnitState, before: Option<&str>, socket_listening: bool) -> Verdict {
    if st.load_state != "loaded" && !st.load_state.is_empty() {
        return Verdict::Failed(format!(
            "not loaded ({}): check the unit file with `systemd-analyze --user verify`",
            st.load_state
        ));
    }
    let failed = || Verdict::Failed(format!("failed (result: {})", st.result));
    match unit_type(&st.id) {
        "service" => {
            let restarted = before.is_none_or(|b| b.is_empty() || b != st.invocation_id);
            // Still the invocation from before the restart (the restart job has not run yet):
            // its crashes are the old release's (a crash loop being replaced), not the new one's.
            if !restarted {
                return Verdict::Pending("waiting for the restart".into());
            }
            if st.is_failed() {
                return failed();
            }
            if st.n_restarts > 0 {
                // ExecMainStatus is the current process's: 0 while a restarted process runs.
                let status = if st.exec_main_status != 0 {
                    format!(" (last exit status {})", st.exec_main_status)
                } else {
                    String::new()
                };
                return Verdict::Failed(format!(
                    "crash loop: restarted {} times since the deploy{status}",
                    st.n_restarts
                ));
            }
            if st.sub_state == "auto-restart" {
                return Verdict::Failed(format!(
                    "crashed and is being restarted (exit status {})",
                    st.exec_main_status
                ));
            }
            match (st.active_state.as_str(), st.sub_state.as_str()) {
                ("active", sub) => Verdict::Up(format!("active ({sub})")),
                ("inactive", _) if socket_listening && st.result == "success" => {
                    Verdict::Up("inactive, its socket is listening (socket-activated)".into())
                }
                (a, sub) => Verdict::Pending(format!("{a} ({sub})")),
            }
        }
        _ if st.is_failed() => failed(),
        "socket" => {
            if st.is_listening() {
                Verdict::Up(format!("active ({})", st.sub_state))
            } else {
                Verdict::Pending(format!("{} ({})", st.active_state, st.sub_state))
            }
        }
        _ => {
            if st.is_active() {
                Verdict::Up(format!("active ({})", st.sub_state))
            } else {
                Verdict::Pending(format!("{} ({})", st.active_state, st.sub_state))
            }
        }
    }
}

/// The template unit of an instance: `app@1.service` -> `app@.service` (others unchanged).
pub fn template_of(instance: &str) -> String {
    match (instance.find('@'), instance.rfind('.')) {
        (Some(at), Some(dot)) if at < dot => format!("{}@{}", &instance[..at], &instance[dot..]),
        _ => instance.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_names() {
        for ok in [
            "a.service",
            "statifier.socket",
            "foo@.service",
            "foo@bar.service",
            "a-b_c:d.timer",
            "x\\x2dy.path",
        ] {
            assert!(validate_unit_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "noext",
            "a.conf",
            ".service",
            "@x.service",
            "a b.service",
            "a/b.service",
            "a@b@c.service",
            "ünï.service",
        ] {
            assert!(validate_unit_name(bad).is_err(), "{bad}");
        }
        assert!(validate_unit_name(&format!("{}.service", "a".repeat(250))).is_err());
    }

    #[test]
    fn show_command_quotes() {
        let c = show_command(&["a.service".into(), "b c.service".into()]);
        assert!(c.starts_with("systemctl --user show a.service 'b c.service' --property=Id,"));
    }

    const SHOW: &str = "Id=app.service
LoadState=loaded
ActiveState=active
SubState=running
Result=success
NRestarts=0
ExecMainStatus=0
ExecMainPID=4242
MainPID=4242
InvocationID=abc
ActiveEnterTimestamp=Tue 2026-11-24 12:00:00 UTC
UnitFileState=enabled
MemoryCurrent=1234567
TriggeredBy=app.socket
NeedDaemonReload=no

Id=app.socket
LoadState=loaded
ActiveState=active
SubState=listening
Result=success
NRestarts=0
MemoryCurrent=[not set]
Triggers=app.service
Listen=/run/user/1000/app.sock (Stream)
Listen=[::]:8080 (Stream)
UnitFileState=enabled

Id=bad.service
ActiveState=failed
SubState=failed
Result=exit-code
NRestarts=3
ExecMainStatus=1
ExecMainPID=99
MainPID=0
";

    #[test]
    fn parses_show_blocks() {
        let s = parse_show(SHOW);
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].id, "app.service");
        assert!(s[0].is_active());
        assert_eq!(s[0].main_pid, 4242);
        assert_eq!(s[0].memory_current, Some(1234567));
        assert_eq!(s[0].triggered_by, vec!["app.socket"]);
        assert!(s[1].is_listening());
        assert_eq!(s[1].memory_current, None);
        assert_eq!(
            s[1].listen,
            vec!["/run/user/1000/app.sock (Stream)", "[::]:8080 (Stream)"]
        );
        assert!(s[2].is_failed());
        assert_eq!(s[2].n_restarts, 3);
        assert_eq!(s[2].exec_main_status, 1);
        assert_eq!(s[2].main_pid, 99);
        assert_eq!(
            s[2].summary(),
            "failed (failed), result: exit-code, restarted 3 times"
        );
    }

    fn st(id: &str, active: &str, sub: &str) -> UnitState {
        UnitState {
            id: id.into(),
            load_state: "loaded".into(),
            active_state: active.into(),
            sub_state: sub.into(),
            result: "success".into(),
            invocation_id: "new".into(),
            ..Default::default()
        }
    }

    #[test]
    fn assess_services() {
        let up = st("a.service", "active", "running");
        assert!(matches!(assess(&up, Some("old"), false), Verdict::Up(_)));
        assert!(matches!(
            assess(&up, Some("new"), false),
            Verdict::Pending(_)
        ));
        assert!(matches!(assess(&up, Some(""), false), Verdict::Up(_)));
        let mut looping = up.clone();
        looping.n_restarts = 2;
        assert!(
            matches!(assess(&looping, None, false), Verdict::Failed(m) if m.contains("crash loop"))
        );
        // While the restarted process runs, ExecMainStatus is 0: no "last exit status 0".
        looping.exec_main_status = 0;
        assert_eq!(
            assess(&looping, None, false),
            Verdict::Failed("crash loop: restarted 2 times since the deploy".into())
        );
        looping.exec_main_status = 3;
        assert_eq!(
            assess(&looping, None, false),
            Verdict::Failed(
                "crash loop: restarted 2 times since the deploy (last exit status 3)".into()
            )
        );
        let auto = st("a.service", "activating", "auto-restart");
        assert!(matches!(assess(&auto, None, false), Verdict::Failed(_)));
        let mut failed = st("a.service", "failed", "failed");
        failed.result = "exit-code".into();
        assert!(
            matches!(assess(&failed, None, false), Verdict::Failed(m) if m.contains("exit-code"))
        );
        // A fix deployed over a crash loop: until the restart job has run, the unit still
        // shows the old invocation crashing, restarted or failed. That is the old release's
        // doing: wait for the restart (a test caught the deploy misjudging this).
        let mut old_crash = auto.clone();
        old_crash.exec_main_status = 4;
        old_crash.n_restarts = 3;
        assert_eq!(
            assess(&old_crash, Some("new"), false),
            Verdict::Pending("waiting for the restart".into())
        );
        assert_eq!(
            assess(&failed, Some("new"), false),
            Verdict::Pending("waiting for the restart".into())
        );
        assert!(matches!(
            assess(&old_crash, Some("old"), false),
            Verdict::Failed(_)
        ));
        let idle = st("a.service", "inactive", "dead");
        assert!(matches!(assess(&idle, None, true), Verdict::Up(_)));
        // Stopped for the restart, not started again yet: still the old invocation.
        assert!(matches!(
            assess(&idle, Some("new"), true),
            Verdict::Pending(_)
        ));
        assert!(matches!(assess(&idle, None, false), Verdict::Pending(_)));
        let mut missing = st("a.service", "inactive", "dead");
        missing.load_state = "not-found".into();
        assert!(matches!(assess(&missing, None, false), Verdict::Failed(_)));
    }

    #[test]
    fn assess_sockets_and_timers() {
        assert!(matches!(
            assess(&st("a.socket", "active", "listening"), None, false),
            Verdict::Up(_)
        ));
        assert!(matches!(
            assess(&st("a.socket", "inactive", "dead"), None, false),
            Verdict::Pending(_)
        ));
        assert!(matches!(
            assess(&st("a.timer", "active", "waiting"), None, false),
            Verdict::Up(_)
        ));
    }
}
