//! Unit files generated from a `[services.NAME.run]` table: the common case (one program,
//! optionally socket-activated on a unix socket, optionally bridged to TCP by
//! systemd-socket-proxyd) without writing unit files.                                      pure
//!
//! ```toml
//! [services.aptly.run]
//! command = "bin/aptly api serve -no-lock"   # relative to the release directory
//! socket = "%t/aptly.sock"                   # aptly.socket, socket-activated aptly.service
//! tcp_proxy = "127.0.0.1:8080"               # aptly-proxy.socket + aptly-proxy.service
//! restart = "on-failure"
//! environment_file = true
//! ```
//!
//! The generated units, and their names:
//! - `NAME.service`: `ExecStart=` the command (a relative program is looked up in the release:
//!   `%h/.local/share/ferry/NAME/current/PROGRAM`), `WorkingDirectory=` the current release.
//!   Without a socket it is enabled into `default.target`; with one, the socket starts it.
//! - `NAME.socket` (with `socket`): `ListenStream=` the socket, enabled into `sockets.target`.
//! - `NAME-proxy.socket` + `NAME-proxy.service` (with `tcp_proxy`): a TCP socket whose
//!   connections systemd-socket-proxyd forwards to `socket`.
//!
//! `ferry units NAME` prints them (to eject them into files and list them in `units`).

use crate::paths::Paths;

/// Where systemd-socket-proxyd lives: `/usr/lib/systemd` on every merged-/usr distribution
/// (Debian 12, Ubuntu, Fedora, Arch; Debian's `/lib/systemd` is the same directory). The
/// `check-units` step of a deploy (`systemd-analyze verify`) refuses the release on a host
/// where it is missing.
pub const SOCKET_PROXYD: &str = "/usr/lib/systemd/systemd-socket-proxyd";

/// The service's environment file, relative to the release directory, read by the generated
/// service when `environment_file = true` (`EnvironmentFile=-`: a missing file is no error).
/// It takes effect once ferry writes the service's env file there (the `env` feature).
pub const ENV_FILE: &str = ".ferry/env";

/// `[services.NAME.run]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    /// The command line: its program relative to the release directory, or absolute.
    pub command: String,
    /// `ListenStream=` of a socket unit that starts the service (unix path or address).
    pub socket: Option<String>,
    /// A TCP address (`127.0.0.1:8080`, `[::1]:8080`, `8080`) bridged to `socket`.
    pub tcp_proxy: Option<String>,
    /// `Restart=` of the service. Default `on-failure`.
    pub restart: String,
    /// Read the service's environment file ([`ENV_FILE`]).
    pub environment_file: bool,
}

/// Values systemd accepts for `Restart=`.
pub const RESTART_VALUES: &[&str] = &[
    "no",
    "always",
    "on-success",
    "on-failure",
    "on-abnormal",
    "on-abort",
    "on-watchdog",
];

/// A unit file made by ferry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generated {
    pub name: String,
    pub content: String,
}

/// Names of the units `run` generates for `service`, in install order.
pub fn names(service: &str, run: &Run) -> Vec<String> {
    let mut v = vec![format!("{service}.service")];
    if run.socket.is_some() {
        v.push(format!("{service}.socket"));
    }
    if run.tcp_proxy.is_some() {
        v.push(format!("{service}-proxy.socket"));
        v.push(format!("{service}-proxy.service"));
    }
    v
}

/// The generated services, restarted by a deploy (the default of `restart`).
pub fn restarted(service: &str, run: &Run) -> Vec<String> {
    names(service, run)
        .into_iter()
        .filter(|n| n.ends_with(".service"))
        .collect()
}

/// Check a `run` table; each problem as (key, message with the fix).
pub fn validate(run: &Run) -> Vec<(&'static str, String)> {
    let mut errors = Vec::new();
    let program = run.command.split_whitespace().next().unwrap_or("");
    if program.is_empty() {
        errors.push((
            "command",
            "is empty: write the program (relative to the release directory, e.g. \"bin/app --flag\") and its arguments".to_string(),
        ));
    } else if program.starts_with("..") || program.contains("/../") {
        errors.push((
            "command",
            format!("`{program}` leaves the release directory: name a file of the release (a `dest` of `files`) or an absolute path"),
        ));
    }
    if run.command.chars().any(|c| c.is_control()) {
        errors.push((
            "command",
            "holds a control character (newline, tab, escape): write the command on one line"
                .to_string(),
        ));
    }
    if let Some(s) = &run.socket
        && (s.trim().is_empty() || s.chars().any(|c| c.is_control() || c == ' '))
    {
        errors.push((
            "socket",
            format!("`{}` is not a socket: write a unix socket path such as \"%t/app.sock\" (%t is $XDG_RUNTIME_DIR) or an address such as \"127.0.0.1:8080\"", s.escape_debug()),
        ));
    }
    if let Some(t) = &run.tcp_proxy {
        if parse_tcp(t).is_none() {
            errors.push((
                "tcp_proxy",
                format!("`{}` is not a TCP address: write \"127.0.0.1:8080\", \"[::1]:8080\" or a port such as \"8080\"", t.escape_debug()),
            ));
        }
        if run.socket.is_none() {
            errors.push((
                "tcp_proxy",
                "forwards TCP connections to the service's `socket`, which is not set: add `socket = \"%t/NAME.sock\"` (the service must accept socket activation)".to_string(),
            ));
        }
    }
    if !RESTART_VALUES.contains(&run.restart.as_str()) {
        errors.push((
            "restart",
            format!(
                "`{}` is not a Restart= value: use one of {}",
                run.restart.escape_debug(),
                RESTART_VALUES.join(", ")
            ),
        ));
    }
    errors
}

/// The port of a TCP address (`ADDR:PORT`, `[V6]:PORT` or `PORT`).
pub fn parse_tcp(text: &str) -> Option<u16> {
    let t = text.trim();
    if let Ok(p) = t.parse::<u16>() {
        return (p > 0).then_some(p);
    }
    t.parse::<std::net::SocketAddr>()
        .ok()
        .map(|a| a.port())
        .filter(|p| *p > 0)
}

/// A unix socket path (not an address).
fn is_path(listen: &str) -> bool {
    listen.starts_with('/') || listen.starts_with('%')
}

/// `%h/.local/share/ferry/SERVICE/current`: the live release, as unit files name it.
pub fn current_dir(service: &str) -> String {
    format!("%h/{}", Paths::new(service).current())
}

/// The command with its program resolved against the release directory.
fn exec_start(service: &str, command: &str) -> String {
    let command = command.trim();
    let (program, args) = command.split_once(' ').unwrap_or((command, ""));
    let program = if program.starts_with('/') || program.starts_with('%') {
        program.to_string()
    } else {
        format!(
            "{}/{}",
            current_dir(service),
            program.trim_start_matches("./")
        )
    };
    if args.is_empty() {
        program
    } else {
        format!("{program} {}", args.trim_start())
    }
}

/// The unit files `run` makes for `service`, in install order.
pub fn generate(service: &str, run: &Run) -> Vec<Generated> {
    let head = format!(
        "# Generated by ferry from [services.{service}.run] in deploy.toml; `ferry units {service}` prints it.\n"
    );
    let mut out = Vec::new();
    // The service.
    let mut s = head.clone();
    s.push_str(&format!("\n[Unit]\nDescription={service} (ferry)\n"));
    if run.socket.is_some() {
        // Requires=: restarting the service also starts its socket (a first deploy).
        s.push_str(&format!(
            "Requires={service}.socket\nAfter={service}.socket\n"
        ));
    }
    s.push_str("\n[Service]\nType=exec\n");
    s.push_str(&format!("WorkingDirectory={}\n", current_dir(service)));
    if run.environment_file {
        s.push_str(&format!(
            "EnvironmentFile=-{}/{ENV_FILE}\n",
            current_dir(service)
        ));
    }
    s.push_str(&format!(
        "ExecStart={}\n",
        exec_start(service, &run.command)
    ));
    s.push_str(&format!("Restart={}\nRestartSec=1s\n", run.restart));
    if run.socket.is_none() {
        s.push_str("\n[Install]\nWantedBy=default.target\n");
    }
    out.push(Generated {
        name: format!("{service}.service"),
        content: s,
    });
    if let Some(listen) = &run.socket {
        let mut k = head.clone();
        k.push_str(&format!(
            "\n[Unit]\nDescription={service} socket (ferry)\n\n[Socket]\nListenStream={listen}\n"
        ));
        if is_path(listen) {
            k.push_str("SocketMode=0600\n");
        }
        k.push_str("\n[Install]\nWantedBy=sockets.target\n");
        out.push(Generated {
            name: format!("{service}.socket"),
            content: k,
        });
    }
    if let (Some(tcp), Some(listen)) = (&run.tcp_proxy, &run.socket) {
        let mut k = head.clone();
        k.push_str(&format!(
            "\n[Unit]\nDescription={service} TCP proxy socket (ferry)\n\n[Socket]\nListenStream={}\n\n[Install]\nWantedBy=sockets.target\n",
            tcp.trim()
        ));
        out.push(Generated {
            name: format!("{service}-proxy.socket"),
            content: k,
        });
        let mut p = head;
        p.push_str(&format!(
            "\n[Unit]\nDescription={service} TCP proxy to {listen} (ferry)\nRequires={service}-proxy.socket {service}.socket\nAfter={service}-proxy.socket {service}.socket\n\n[Service]\nExecStart={SOCKET_PROXYD} {listen}\nRestart=on-failure\n"
        ));
        out.push(Generated {
            name: format!("{service}-proxy.service"),
            content: p,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aptly() -> Run {
        Run {
            command: "bin/aptly api serve -no-lock".into(),
            socket: Some("%t/aptly.sock".into()),
            tcp_proxy: Some("127.0.0.1:8080".into()),
            restart: "on-failure".into(),
            environment_file: true,
        }
    }

    #[test]
    fn the_aptly_setup_in_four_units() {
        let g = generate("aptly", &aptly());
        let names: Vec<&str> = g.iter().map(|u| u.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "aptly.service",
                "aptly.socket",
                "aptly-proxy.socket",
                "aptly-proxy.service"
            ]
        );
        assert_eq!(names, names_of(&aptly()));
        let svc = &g[0].content;
        assert!(
            svc.contains(
                "ExecStart=%h/.local/share/ferry/aptly/current/bin/aptly api serve -no-lock\n"
            ),
            "{svc}"
        );
        assert!(svc.contains("WorkingDirectory=%h/.local/share/ferry/aptly/current\n"));
        assert!(svc.contains("EnvironmentFile=-%h/.local/share/ferry/aptly/current/.ferry/env\n"));
        assert!(svc.contains("Requires=aptly.socket\n"));
        assert!(svc.contains("Restart=on-failure\n"));
        assert!(
            !svc.contains("[Install]"),
            "socket-activated: the socket is enabled"
        );
        assert!(
            g[1].content
                .contains("ListenStream=%t/aptly.sock\nSocketMode=0600\n")
        );
        assert!(g[1].content.contains("WantedBy=sockets.target"));
        assert!(g[2].content.contains("ListenStream=127.0.0.1:8080\n"));
        assert!(
            g[3].content
                .contains(&format!("ExecStart={SOCKET_PROXYD} %t/aptly.sock\n"))
        );
        assert_eq!(
            restarted("aptly", &aptly()),
            ["aptly.service", "aptly-proxy.service"]
        );
        for u in &g {
            assert!(crate::systemd::validate_unit_name(&u.name).is_ok());
            assert!(
                crate::systemd::lint::lint_unit(&u.name, &u.content).is_empty(),
                "generated units pass ferry's own lints: {}",
                u.name
            );
        }
    }

    fn names_of(run: &Run) -> Vec<String> {
        names("aptly", run)
    }

    #[test]
    fn a_plain_service_starts_at_boot() {
        let run = Run {
            command: "/usr/bin/python3 -m http.server".into(),
            socket: None,
            tcp_proxy: None,
            restart: "always".into(),
            environment_file: false,
        };
        let g = generate("web", &run);
        assert_eq!(g.len(), 1);
        let c = &g[0].content;
        assert!(
            c.contains("ExecStart=/usr/bin/python3 -m http.server\n"),
            "{c}"
        );
        assert!(c.contains("[Install]\nWantedBy=default.target\n"));
        assert!(!c.contains("EnvironmentFile"));
        assert!(!c.contains("Requires="));
    }

    #[test]
    fn validation_names_the_key_and_the_fix() {
        let bad = Run {
            command: "  ".into(),
            socket: None,
            tcp_proxy: Some("localhost:http".into()),
            restart: "sometimes".into(),
            environment_file: false,
        };
        let e = validate(&bad);
        let keys: Vec<&str> = e.iter().map(|(k, _)| *k).collect();
        assert_eq!(keys, ["command", "tcp_proxy", "tcp_proxy", "restart"]);
        assert!(e[2].1.contains("add `socket"));
        assert!(e[3].1.contains("on-failure"));
        assert!(validate(&aptly()).is_empty());
        let up = Run {
            command: "../other/bin/x".into(),
            ..aptly()
        };
        assert!(validate(&up)[0].1.contains("leaves the release"));
        assert_eq!(parse_tcp("8080"), Some(8080));
        assert_eq!(parse_tcp("[::1]:80"), Some(80));
        assert_eq!(parse_tcp("0"), None);
    }
}
