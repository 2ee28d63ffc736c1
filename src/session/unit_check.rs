//! Checks of a service's unit files: ferry's lints before any connection ([`lint_local`]), and
//! on the host, in the deploy's `seal` step ([`script`], [`evaluate`]), `systemd-analyze --user verify`
//! of the sealed release's units plus the lints that need the host's facts (unprivileged port
//! start, delegated cgroup controllers). Both run before `current` moves: a refused unit leaves
//! the previous release serving.

use crate::config::Service;
use crate::error::{Error, Exit, Result};
use crate::plan::LocalRelease;
use crate::report::Reporter;
use crate::session::ServiceSession;
use crate::shell::quote;
use crate::systemd::lint::{self, Finding, Level};

/// The unit files of a service as ferry would install them: (name, content, where from), the
/// listed files first, then the generated ones. A listed file that cannot be read is left out
/// (deploy reports it when it reads the release).
pub fn unit_texts(service: &Service) -> Vec<(String, String, String)> {
    let mut v = Vec::new();
    for u in &service.units {
        if let Ok(text) = std::fs::read_to_string(&u.source) {
            v.push((u.name.clone(), text, u.source.display().to_string()));
        }
    }
    let table = if service.switch.is_some() {
        "switch"
    } else {
        "run"
    };
    for g in crate::prepare::local::generated(service) {
        v.push((
            g.name,
            g.content,
            format!("generated from [services.{}.{table}]", service.name),
        ));
    }
    v
}

/// The lints that need only the unit files, for these services: findings are warnings, or,
/// for a service with `lint = "deny"`, a usage error (exit 2) before any host is touched.
pub fn lint_local(services: &[&Service], reporter: &Reporter) -> Result<()> {
    let mut denied = Vec::new();
    for s in services {
        if s.lint == Level::Off {
            continue;
        }
        for (name, text, _) in unit_texts(s) {
            for f in lint::lint_unit(&name, &text) {
                match s.lint {
                    Level::Deny => denied.push(format!("service {}: {f}", s.name)),
                    _ => reporter.warn(None, &format!("service {}: {f}", s.name)),
                }
            }
        }
    }
    if denied.is_empty() {
        Ok(())
    } else {
        denied.push(
            "(lint = \"deny\": nothing was changed; fix the units, or set lint = \"warn\" to deploy anyway)"
                .into(),
        );
        Err(Error::Usage(denied.join("\n")))
    }
}

const MARK: &str = "@ferry-check";

/// The remote script: copy the sealed units into a temporary directory, with
/// `%h/.local/share/ferry/SERVICE/current` pointing into the new release (which `current`
/// does not point to yet), print the host's facts, then verify them.
pub fn script(service: &str, release_dir: &str, units: &[String]) -> String {
    let current = crate::systemd::units::current_dir(service);
    let mut s = format!(
        "LC_ALL=C; export LC_ALL; rel=\"$HOME\"/{}; d=$(mktemp -d) || exit 90; trap 'rm -rf \"$d\"' EXIT; ",
        quote(release_dir)
    );
    for u in units {
        s.push_str(&format!(
            "sed -e \"s|{}|$rel|g\" \"$rel\"/.ferry/units/{} > \"$d\"/{} || exit 91; ",
            current.replace('.', "\\."),
            quote(u),
            quote(u)
        ));
    }
    s.push_str(&format!(
        "echo \"{MARK} dir=$d\"; echo \"{MARK} port_start=$(cat /proc/sys/net/ipv4/ip_unprivileged_port_start 2>/dev/null)\"; \
         m=/sys/fs/cgroup/user.slice/user-$(id -u).slice/user@$(id -u).service; \
         if [ -r \"$m/cgroup.controllers\" ]; then echo \"{MARK} controllers=$(cat \"$m/cgroup.controllers\")\"; else echo \"{MARK} controllers=unknown\"; fi; \
         echo \"{MARK} verify\"; cd \"$d\" && systemd-analyze --user verify"
    ));
    for u in units {
        s.push(' ');
        s.push_str(&quote(u));
    }
    s.push_str(&format!(" 2>&1; echo \"{MARK} rc=$?\""));
    s
}

/// What the script found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Outcome {
    /// `net.ipv4.ip_unprivileged_port_start`, when the kernel has it.
    pub port_start: Option<u32>,
    /// Controllers of the user's manager; None when unknown (cgroup v1, no manager cgroup).
    pub controllers: Option<Vec<String>>,
    /// systemd-analyze's lines, the temporary directory taken out.
    pub messages: Vec<String>,
    /// Its exit status (127: not installed).
    pub rc: Option<i32>,
}

pub fn parse(out: &str) -> Outcome {
    let mut o = Outcome::default();
    let mut dir = String::new();
    let mut in_verify = false;
    for line in out.lines() {
        if let Some(rest) = line.strip_prefix(MARK).map(str::trim_start) {
            if let Some(d) = rest.strip_prefix("dir=") {
                dir = format!("{d}/");
            } else if let Some(p) = rest.strip_prefix("port_start=") {
                o.port_start = p.trim().parse().ok();
            } else if let Some(c) = rest.strip_prefix("controllers=") {
                o.controllers = (c.trim() != "unknown")
                    .then(|| c.split_whitespace().map(String::from).collect());
            } else if rest == "verify" {
                in_verify = true;
            } else if let Some(rc) = rest.strip_prefix("rc=") {
                o.rc = rc.trim().parse().ok();
                in_verify = false;
            }
        } else if in_verify && !line.trim().is_empty() {
            let l = if dir.len() > 1 {
                line.replace(&dir, "")
            } else {
                line.to_string()
            };
            o.messages.push(l);
        }
    }
    o
}

/// Does one of systemd-analyze's lines name one of the units checked?
pub fn names_a_unit(messages: &[String], units: &[String]) -> bool {
    messages
        .iter()
        .any(|m| units.iter().any(|u| m.contains(u.as_str())))
}

/// The lints that need the host's facts.
pub fn host_lints(o: &Outcome, units: &[(String, String)]) -> Vec<Finding> {
    let mut v = Vec::new();
    for (name, text) in units {
        if let Some(p) = o.port_start {
            v.extend(lint::lint_ports(name, text, p));
        }
        if let Some(c) = &o.controllers {
            let c: Vec<&str> = c.iter().map(String::as_str).collect();
            v.extend(lint::lint_controllers(name, text, &c));
        }
    }
    v
}

/// The check of a sealed release's unit files (run by the `seal` step, in its command: see
/// [`script`]): refuse the release (Error::Refused, exit 1) when systemd-analyze found an
/// error, or a host lint did under `lint = "deny"`; warn otherwise. `out` is the output of
/// the command that ran the script.
pub fn evaluate(
    ss: &ServiceSession<'_>,
    release: &str,
    units: &[String],
    local: &LocalRelease,
    out: &crate::transport::ssh::Output,
) -> Result<()> {
    let host = &ss.host.name;
    let service = &ss.service.name;
    let o = parse(&out.stdout_str());
    let refuse = |message: String| Error::Refused {
        host: host.clone(),
        message,
        code: Exit::Failed,
    };
    match o.rc {
        None => {
            return Err(refuse(format!(
                "could not check the unit files of release {release} in {}: {}",
                ss.paths.release(release),
                out.stderr_str().trim()
            )));
        }
        Some(127) => ss.warn(&format!(
            "{service}: systemd-analyze is not installed on the host: the unit files were not verified (install systemd's tools there)"
        )),
        Some(0) => {
            for m in &o.messages {
                match crate::systemd::versions::older_systemd_hint(m) {
                    Some(hint) => ss.warn(&format!("{service}: systemd-analyze: {m}\n  hint: {hint}")),
                    None => ss.warn(&format!("{service}: systemd-analyze: {m}")),
                }
            }
        }
        // A failure that names none of the units is the tool's (no user manager to ask, an
        // unusual host), not the units': say so, do not block every deploy of the host.
        Some(rc) if !names_a_unit(&o.messages, units) => ss.warn(&format!(
            "{service}: systemd-analyze --user verify failed (exit status {rc}) without naming a unit: the unit files were not verified: {}",
            o.messages.join("; ")
        )),
        Some(_) => {
            return Err(refuse(format!(
                "systemd-analyze --user verify refused the unit files of release {release}: {}; fix them and deploy again (nothing was switched: the current release keeps serving)",
                o.messages.join("; ")
            )));
        }
    }
    if ss.service.lint == Level::Off {
        return Ok(());
    }
    let texts: Vec<(String, String)> = local
        .units
        .iter()
        .map(|u| {
            (
                u.name.clone(),
                String::from_utf8_lossy(&u.content).into_owned(),
            )
        })
        .collect();
    let findings = host_lints(&o, &texts);
    if ss.service.lint == Level::Deny && !findings.is_empty() {
        let all: Vec<String> = findings.iter().map(|f| f.to_string()).collect();
        return Err(refuse(format!(
            "lint = \"deny\": {} (nothing was switched: the current release keeps serving)",
            all.join("; ")
        )));
    }
    for f in findings {
        ss.warn(&format!("{service}: {f}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_points_current_into_the_new_release() {
        let s = script(
            "web",
            ".local/share/ferry/web/releases/R1",
            &["web.service".into(), "w@.service".into()],
        );
        assert!(
            s.contains(r"s|%h/\.local/share/ferry/web/current|$rel|g"),
            "{s}"
        );
        assert!(s.contains("systemd-analyze --user verify web.service w@.service 2>&1"));
        let out = std::process::Command::new("sh")
            .args(["-n", "-c", &s])
            .status()
            .unwrap();
        assert!(out.success(), "the script parses in sh");
    }

    #[test]
    fn parse_and_host_lints() {
        let out = "@ferry-check dir=/tmp/tmp.abc\n@ferry-check port_start=1024\n@ferry-check controllers=memory pids\n@ferry-check verify\n/tmp/tmp.abc/a.service:6: Unknown key 'Foo' in section [Service], ignoring.\n@ferry-check rc=0\n";
        let o = parse(out);
        assert_eq!(o.port_start, Some(1024));
        assert_eq!(o.controllers, Some(vec!["memory".into(), "pids".into()]));
        assert_eq!(
            o.messages,
            ["a.service:6: Unknown key 'Foo' in section [Service], ignoring."]
        );
        assert_eq!(o.rc, Some(0));
        let units = vec![
            (
                "a.socket".to_string(),
                "[Socket]\nListenStream=80\n".to_string(),
            ),
            (
                "a.service".to_string(),
                "[Service]\nCPUQuota=10%\nMemoryMax=1G\n".to_string(),
            ),
        ];
        let f = host_lints(&o, &units);
        let d: Vec<&str> = f.iter().map(|f| f.directive.as_str()).collect();
        assert_eq!(d, ["ListenStream=80", "CPUQuota=10%"]);
        let units_checked = ["a.service".to_string()];
        assert!(names_a_unit(&o.messages, &units_checked));
        assert!(!names_a_unit(
            &["Failed to initialize manager: No such file or directory".into()],
            &units_checked
        ));
        let unknown = parse("@ferry-check controllers=unknown\n@ferry-check rc=1\n");
        assert_eq!(unknown.controllers, None);
        assert!(host_lints(&unknown, &units).is_empty());
    }
}
