//! ferry's lints of user units: settings that are wrong, inert or refused in a systemd *user*
//! manager, each reported with the fix.                                                     pure
//!
//! [`lint_unit`] needs only the unit file and runs before any connection (`lint = "deny"`
//! stops a deploy there, exit 2). [`lint_ports`] and [`lint_controllers`] need facts of the
//! host (`net.ipv4.ip_unprivileged_port_start`, the cgroup controllers delegated to the user's
//! manager); the deploy's `check-units` step reads them and runs these two.

use serde::Serialize;

/// `lint = "deny" | "warn" | "off"` of a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// A finding stops the deploy (before any connection for local lints).
    Deny,
    /// Findings are printed as warnings.
    #[default]
    Warn,
    /// No lints.
    Off,
}

impl Level {
    pub fn parse(text: &str) -> Option<Level> {
        match text {
            "deny" => Some(Level::Deny),
            "warn" => Some(Level::Warn),
            "off" => Some(Level::Off),
            _ => None,
        }
    }
}

/// One problem of a unit file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub unit: String,
    /// 1-based line of the directive.
    pub line: usize,
    /// The directive, e.g. `WantedBy=multi-user.target`.
    pub directive: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}: `{}`: {}",
            self.unit, self.line, self.directive, self.message
        )
    }
}

/// A directive of a unit file: (line, section, key, value).
struct Directive<'a> {
    line: usize,
    section: &'a str,
    key: &'a str,
    value: &'a str,
}

fn directives(content: &str) -> Vec<Directive<'_>> {
    let mut out = Vec::new();
    let mut section = "";
    for (i, raw) in content.lines().enumerate() {
        let l = raw.trim();
        if l.is_empty() || l.starts_with('#') || l.starts_with(';') {
            continue;
        }
        if l.starts_with('[') && l.ends_with(']') {
            section = &l[1..l.len() - 1];
            continue;
        }
        if let Some((k, v)) = l.split_once('=') {
            out.push(Directive {
                line: i + 1,
                section,
                key: k.trim(),
                value: v.trim(),
            });
        }
    }
    out
}

fn truthy(v: &str) -> bool {
    !matches!(
        v.to_ascii_lowercase().as_str(),
        "" | "no" | "false" | "0" | "off"
    )
}

/// Targets that do not exist in the user manager: a unit wanted by them never starts.
const SYSTEM_TARGETS: &[&str] = &[
    "multi-user.target",
    "graphical.target",
    "network-online.target",
    "network.target",
];

/// Sandboxing options that need a user namespace (PrivateUsers=) in a user unit.
const SANDBOXING: &[&str] = &[
    "PrivateTmp",
    "PrivateDevices",
    "ProtectSystem",
    "ProtectHome",
    "ProtectKernelTunables",
    "ProtectKernelModules",
    "ProtectKernelLogs",
    "ProtectControlGroups",
    "ProtectClock",
    "ProtectHostname",
    "ReadOnlyPaths",
    "ReadWritePaths",
    "InaccessiblePaths",
    "TemporaryFileSystem",
    "BindPaths",
    "BindReadOnlyPaths",
    "MountAPIVFS",
];

/// The lints that need only the unit file.
pub fn lint_unit(unit: &str, content: &str) -> Vec<Finding> {
    let ds = directives(content);
    let private_users = ds
        .iter()
        .any(|d| d.section == "Service" && d.key == "PrivateUsers" && truthy(d.value));
    let mut out = Vec::new();
    let mut push = |d: &Directive, message: String| {
        out.push(Finding {
            unit: unit.to_string(),
            line: d.line,
            directive: format!("{}={}", d.key, d.value),
            message,
        })
    };
    for d in &ds {
        match (d.section, d.key) {
            ("Install", "WantedBy" | "RequiredBy" | "UpheldBy") => {
                for t in d.value.split_whitespace() {
                    if SYSTEM_TARGETS.contains(&t) {
                        push(
                            d,
                            format!(
                                "{t} does not exist in the user manager, so `enable` links the unit to nothing and it never starts at boot; use {}={} ",
                                d.key,
                                if unit.ends_with(".socket") {
                                    "sockets.target"
                                } else if unit.ends_with(".timer") {
                                    "timers.target"
                                } else {
                                    "default.target"
                                }
                            )
                            .trim_end()
                            .to_string(),
                        );
                    }
                }
            }
            ("Unit", "After" | "Wants" | "Requires" | "BindsTo" | "Requisite") => {
                for t in d.value.split_whitespace() {
                    if t == "network-online.target" || t == "network.target" {
                        push(
                            d,
                            format!(
                                "{t} is inert in the user manager: it does not wait for the network (and nothing warns); remove it, and let the service retry its connections (Restart=on-failure) or wait for the network itself"
                            ),
                        );
                    }
                }
            }
            ("Service", "User" | "Group" | "SupplementaryGroups" | "DynamicUser") => push(
                d,
                format!(
                    "a user manager cannot change the user or group: the unit runs as the login user of the host, and the start fails (216/GROUP or 217/USER); remove {}= and set `user` of the host in deploy.toml",
                    d.key
                ),
            ),
            ("Service", "AmbientCapabilities" | "CapabilityBoundingSet") => push(
                d,
                format!(
                    "a user manager has no capabilities to give (`{}=` fails with EPERM or does nothing); remove it. To listen on a port below 1024, lower net.ipv4.ip_unprivileged_port_start (as root) or listen on a higher port behind a proxy",
                    d.key
                ),
            ),
            ("Service", key) if SANDBOXING.contains(&key) && !private_users && truthy(d.value) => {
                push(
                    d,
                    format!(
                        "{key}= needs a user namespace in a user unit: add PrivateUsers=yes to [Service] (without it systemd before v254 silently ignores {key}= or the start fails)"
                    ),
                )
            }
            _ => {}
        }
    }
    out
}

/// The port of a `ListenStream=`/`ListenDatagram=` value that is a TCP/UDP address.
fn listen_port(value: &str) -> Option<u16> {
    if value.starts_with('/') || value.starts_with('@') || value.starts_with('%') {
        return None;
    }
    if let Ok(p) = value.parse::<u16>() {
        return Some(p);
    }
    value
        .parse::<std::net::SocketAddr>()
        .ok()
        .map(|a| a.port())
        .or_else(|| {
            // `name:port` (e.g. localhost:80).
            value.rsplit_once(':').and_then(|(_, p)| p.parse().ok())
        })
}

/// `ListenStream=` on a port below the host's `net.ipv4.ip_unprivileged_port_start`: the
/// user manager cannot bind it, the socket fails.
pub fn lint_ports(unit: &str, content: &str, port_start: u32) -> Vec<Finding> {
    directives(content)
        .into_iter()
        .filter(|d| d.section == "Socket" && matches!(d.key, "ListenStream" | "ListenDatagram" | "ListenSequentialPacket"))
        .filter_map(|d| {
            let port = listen_port(d.value)?;
            (u32::from(port) < port_start && port != 0).then(|| Finding {
                unit: unit.to_string(),
                line: d.line,
                directive: format!("{}={}", d.key, d.value),
                message: format!(
                    "port {port} is below this host's net.ipv4.ip_unprivileged_port_start ({port_start}): a user manager cannot bind it and the socket fails; listen on a port >= {port_start}, or as root: sysctl -w net.ipv4.ip_unprivileged_port_start={port} (and put it in /etc/sysctl.d/)"
                ),
            })
        })
        .collect()
}

/// The cgroup controller a resource-control directive needs.
pub fn controller_of(key: &str) -> Option<&'static str> {
    Some(match key {
        "CPUQuota" | "CPUWeight" | "StartupCPUWeight" | "CPUQuotaPeriodSec" | "CPUShares" => "cpu",
        "AllowedCPUs"
        | "StartupAllowedCPUs"
        | "AllowedMemoryNodes"
        | "StartupAllowedMemoryNodes" => "cpuset",
        "MemoryMax" | "MemoryHigh" | "MemoryLow" | "MemoryMin" | "MemorySwapMax"
        | "MemoryLimit" => "memory",
        "TasksMax" => "pids",
        k if k.starts_with("IO") || k.starts_with("StartupIO") || k.starts_with("BlockIO") => "io",
        _ => return None,
    })
}

/// Resource controls whose controller is not delegated to the user's manager: systemd
/// accepts them and they do nothing.
pub fn lint_controllers(unit: &str, content: &str, delegated: &[&str]) -> Vec<Finding> {
    directives(content)
        .into_iter()
        .filter(|d| matches!(d.section, "Service" | "Slice" | "Socket" | "Scope"))
        .filter_map(|d| {
            let c = controller_of(d.key)?;
            (!delegated.contains(&c)).then(|| Finding {
                unit: unit.to_string(),
                line: d.line,
                directive: format!("{}={}", d.key, d.value),
                message: format!(
                    "the `{c}` cgroup controller is not delegated to this user's manager (it has: {}), so {}= is accepted and not enforced; as root: mkdir -p /etc/systemd/system/user@.service.d && printf '[Service]\\nDelegate=cpu cpuset io memory pids\\n' > /etc/systemd/system/user@.service.d/delegate.conf && systemctl daemon-reload, then restart the user's manager (or reboot)",
                    if delegated.is_empty() { "none".to_string() } else { delegated.join(" ") },
                    d.key
                ),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(unit: &str, content: &str) -> Finding {
        let f = lint_unit(unit, content);
        assert_eq!(f.len(), 1, "{f:?}");
        f.into_iter().next().unwrap()
    }

    #[test]
    fn wanted_by_a_system_target() {
        let f = one(
            "app.service",
            "[Service]\nExecStart=/bin/true\n\n[Install]\nWantedBy=multi-user.target\n",
        );
        assert_eq!(
            (f.line, f.directive.as_str()),
            (5, "WantedBy=multi-user.target")
        );
        assert!(f.message.contains("use WantedBy=default.target"), "{f}");
        let f = one("app.socket", "[Install]\nWantedBy=network-online.target\n");
        assert!(f.message.contains("sockets.target"), "{f}");
        assert!(lint_unit("a.service", "[Install]\nWantedBy=default.target\n").is_empty());
    }

    #[test]
    fn network_online_is_inert() {
        let f = lint_unit(
            "app.service",
            "[Unit]\nAfter=network-online.target\nWants=network-online.target\n[Service]\nExecStart=/bin/true\n",
        );
        assert_eq!(f.len(), 2);
        assert!(f[0].message.contains("inert in the user manager"));
        assert!(f[1].message.contains("remove it"));
    }

    #[test]
    fn user_and_group() {
        let f = lint_unit("a.service", "[Service]\nUser=www-data\nGroup=www-data\n");
        assert_eq!(f.len(), 2);
        assert!(f[0].message.contains("remove User="), "{}", f[0]);
        assert!(f[1].message.contains("remove Group="));
    }

    #[test]
    fn capabilities() {
        let f = lint_unit(
            "a.service",
            "[Service]\nAmbientCapabilities=CAP_NET_BIND_SERVICE\nCapabilityBoundingSet=CAP_NET_BIND_SERVICE\n",
        );
        assert_eq!(f.len(), 2);
        assert!(f[0].message.contains("ip_unprivileged_port_start"));
    }

    #[test]
    fn sandboxing_needs_private_users() {
        let f = one("a.service", "[Service]\nPrivateTmp=yes\nProtectSystem=no\n");
        assert!(f.message.contains("add PrivateUsers=yes"), "{f}");
        assert!(lint_unit("a.service", "[Service]\nPrivateTmp=yes\nPrivateUsers=yes\n").is_empty());
        assert_eq!(
            lint_unit(
                "a.service",
                "[Service]\nProtectSystem=strict\nProtectHome=read-only\n"
            )
            .len(),
            2
        );
    }

    #[test]
    fn low_ports_against_the_host_sysctl() {
        let unit = "[Socket]\nListenStream=127.0.0.1:80\nListenStream=%t/a.sock\nListenStream=8080\nListenStream=[::]:443\n";
        let f = lint_ports("a.socket", unit, 1024);
        let lines: Vec<usize> = f.iter().map(|f| f.line).collect();
        assert_eq!(lines, [2, 5]);
        assert!(
            f[0].message.contains("ip_unprivileged_port_start (1024)"),
            "{}",
            f[0]
        );
        assert!(
            f[0].message
                .contains("sysctl -w net.ipv4.ip_unprivileged_port_start=80")
        );
        assert!(lint_ports("a.socket", unit, 0).is_empty());
        assert_eq!(lint_ports("a.socket", unit, 443).len(), 1);
    }

    #[test]
    fn resource_controls_without_their_controller() {
        let unit =
            "[Service]\nCPUQuota=50%\nMemoryMax=100M\nIOWeight=10\nTasksMax=20\nAllowedCPUs=0\n";
        let f = lint_controllers("a.service", unit, &["memory", "pids"]);
        let d: Vec<&str> = f.iter().map(|f| f.directive.as_str()).collect();
        assert_eq!(d, ["CPUQuota=50%", "IOWeight=10", "AllowedCPUs=0"]);
        assert!(f[0].message.contains("`cpu` cgroup controller"));
        assert!(f[0].message.contains("Delegate="));
        assert_eq!(lint_controllers("a.service", unit, &[]).len(), 5);
    }

    #[test]
    fn levels() {
        assert_eq!(Level::parse("deny"), Some(Level::Deny));
        assert_eq!(Level::parse("Deny"), None);
        assert_eq!(Level::default(), Level::Warn);
    }
}
