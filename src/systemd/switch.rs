//! Blue/green without socket activation (`[services.NAME.switch]`), pure: the units that
//! keep a front listening across deploys, and the shell lines that move it.
//!
//! ```text
//! listen (TCP) -> NAME-front.socket -> NAME-front.service: systemd-socket-proxyd S/live.sock
//!                 S/live.sock -> blue.sock          (a symlink: the live colour)
//! S/blue.sock  -> NAME-blue-bridge.socket -> NAME-blue-bridge.service: proxyd 127.0.0.1:PORT_BLUE
//!                 NAME@blue.service: the release S/colors/blue -> ../releases/ID, PORT=PORT_BLUE
//! (and the same for green)
//! ```
//!
//! S is the service's directory (`~/.local/share/ferry/NAME`). The front never restarts, so no
//! connection is ever cut: systemd-socket-proxyd connects to its target path anew for every
//! connection, so replacing the `live.sock` symlink (new link, `mv -T` over it) moves the new
//! connections while those in flight carry on. A deploy starts the idle colour on the new
//! release, verifies and health-checks it on its own port, swaps the link and `current`, lets
//! the old colour drain, then stops it. The two colours run different releases at once, hence
//! a release link per colour (`colors/C`) beside `current` (the live one), and a small env
//! file per colour (`colors/C.env`: `PORT`, `FERRY_COLOR`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::units::{Generated, Run, SOCKET_PROXYD};
use crate::paths::Paths;
use crate::shell::quote;

/// `[services.NAME.switch]`, validated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Switch {
    /// The front's `ListenStream=` (a TCP address).
    pub listen: String,
    /// The ports of blue and green, in that order.
    pub ports: [u16; 2],
    /// How long the old colour may finish its requests once the front moved.
    #[serde(with = "crate::config::humantime_str")]
    pub drain: Duration,
}

/// One of the two instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Colour {
    Blue,
    Green,
}

impl Colour {
    pub const BOTH: [Colour; 2] = [Colour::Blue, Colour::Green];

    pub fn name(self) -> &'static str {
        match self {
            Colour::Blue => "blue",
            Colour::Green => "green",
        }
    }

    pub fn other(self) -> Colour {
        match self {
            Colour::Blue => Colour::Green,
            Colour::Green => Colour::Blue,
        }
    }

    /// `blue.sock` or `green.sock` (what `live.sock` points to), else None.
    pub fn of_link(target: &str) -> Option<Colour> {
        Colour::BOTH
            .into_iter()
            .find(|c| target.trim() == format!("{}.sock", c.name()))
    }

    pub fn parse(text: &str) -> Option<Colour> {
        Colour::BOTH.into_iter().find(|c| c.name() == text.trim())
    }
}

impl Switch {
    pub fn port(&self, c: Colour) -> u16 {
        match c {
            Colour::Blue => self.ports[0],
            Colour::Green => self.ports[1],
        }
    }
}

/// The template unit the colours are instances of.
pub fn template(service: &str) -> String {
    format!("{service}@.service")
}

/// The colour's instance, e.g. `web@blue.service`.
pub fn instance(service: &str, c: Colour) -> String {
    format!("{service}@{}.service", c.name())
}

/// The colour's release link, relative to the service's directory.
pub fn colour_link(c: Colour) -> String {
    format!("colors/{}", c.name())
}

fn dir_spec(service: &str) -> String {
    format!("%h/{}", Paths::new(service).dir())
}

/// `%h/.local/share/ferry/NAME/colors/%i`: a colour's release, as its unit names it.
pub fn instance_dir(service: &str) -> String {
    format!("{}/colors/%i", dir_spec(service))
}

/// Names of the units a switch adds (besides the template), in install order.
pub fn front_units(service: &str) -> Vec<String> {
    let mut v = vec![
        format!("{service}-front.socket"),
        format!("{service}-front.service"),
    ];
    for c in Colour::BOTH {
        v.push(format!("{service}-{}-bridge.socket", c.name()));
        v.push(format!("{service}-{}-bridge.service", c.name()));
    }
    v
}

/// Every unit a switch generates: the template from `run` (when given), then the front's.
pub fn names(service: &str, run: Option<&Run>) -> Vec<String> {
    let mut v = Vec::new();
    if run.is_some() {
        v.push(template(service));
    }
    v.extend(front_units(service));
    v
}

/// The template `run` becomes under a switch: like `NAME.service` (see `units::generate`),
/// but running the colour's release with its port.
fn generated_template(service: &str, run: &Run, head: &str) -> Generated {
    let dir = instance_dir(service);
    let command = run.command.trim();
    let (program, args) = command.split_once(' ').unwrap_or((command, ""));
    let program = if program.starts_with('/') || program.starts_with('%') {
        program.to_string()
    } else {
        format!("{dir}/{}", program.trim_start_matches("./"))
    };
    let exec = if args.is_empty() {
        program
    } else {
        format!("{program} {}", args.trim_start())
    };
    let mut s = head.to_string();
    s.push_str(&format!(
        "\n[Unit]\nDescription={service} %i (ferry blue/green)\n\n[Service]\nType=exec\nWorkingDirectory={dir}\n"
    ));
    if run.environment_file {
        s.push_str(&format!(
            "EnvironmentFile=-{dir}/{}\n",
            super::units::ENV_FILE
        ));
    }
    s.push_str(&format!(
        "ExecStart={exec}\nRestart={}\nRestartSec=1s\n\n[Install]\nWantedBy=default.target\n",
        run.restart
    ));
    Generated {
        name: template(service),
        content: s,
    }
}

/// The unit files of a switch: the template from `run` (if any), the front and the bridges.
pub fn generate(service: &str, switch: &Switch, run: Option<&Run>) -> Vec<Generated> {
    let head = format!(
        "# Generated by ferry from [services.{service}.switch] in deploy.toml; `ferry units {service}` prints it.\n"
    );
    let dir = dir_spec(service);
    let mut out = Vec::new();
    if let Some(run) = run {
        out.push(generated_template(service, run, &head));
    }
    out.push(Generated {
        name: format!("{service}-front.socket"),
        content: format!(
            "{head}\n[Unit]\nDescription={service} front (ferry blue/green)\n\n[Socket]\nListenStream={}\n\n[Install]\nWantedBy=sockets.target\n",
            switch.listen.trim()
        ),
    });
    out.push(Generated {
        name: format!("{service}-front.service"),
        content: format!(
            "{head}\n[Unit]\nDescription={service} front to the live colour (ferry blue/green)\nRequires={service}-front.socket\nAfter={service}-front.socket\n\n[Service]\nExecStart={SOCKET_PROXYD} {dir}/live.sock\nRestart=on-failure\n"
        ),
    });
    for c in Colour::BOTH {
        let (name, port) = (c.name(), switch.port(c));
        out.push(Generated {
            name: format!("{service}-{name}-bridge.socket"),
            content: format!(
                "{head}\n[Unit]\nDescription={service} {name} bridge socket (ferry blue/green)\n\n[Socket]\nListenStream={dir}/{name}.sock\nSocketMode=0600\n\n[Install]\nWantedBy=sockets.target\n"
            ),
        });
        out.push(Generated {
            name: format!("{service}-{name}-bridge.service"),
            content: format!(
                "{head}\n[Unit]\nDescription={service} {name} bridge to 127.0.0.1:{port} (ferry blue/green)\nRequires={service}-{name}-bridge.socket\nAfter={service}-{name}-bridge.socket\n\n[Service]\nExecStart={SOCKET_PROXYD} 127.0.0.1:{port}\nRestart=on-failure\n"
            ),
        });
    }
    out
}

/// `content` of the colours' template with the colour's env file (`PORT`, `FERRY_COLOR`)
/// and, with `release_env`, the colour's release env file as the first lines of `[Service]`
/// (the later file wins for a name set in both: the release's env).
pub fn template_with_env(content: &[u8], service: &str, release_env: bool) -> Vec<u8> {
    let text = String::from_utf8_lossy(content);
    let mut lines = format!("EnvironmentFile={}/colors/%i.env\n", dir_spec(service));
    if release_env {
        lines.push_str(&format!(
            "EnvironmentFile={}/{}\n",
            instance_dir(service),
            crate::paths::env_file_in_release()
        ));
    }
    let mut out = String::new();
    let mut done = false;
    for l in text.split_inclusive('\n') {
        out.push_str(l);
        if !done && l.trim() == "[Service]" {
            if !l.ends_with('\n') {
                out.push('\n');
            }
            out.push_str(&lines);
            done = true;
        }
    }
    if !done {
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str("[Service]\n");
        out.push_str(&lines);
    }
    out.into_bytes()
}

/// Check a switch against its `listen`, ports and the rest of the service; each problem as
/// (key, message with the fix).
pub fn validate(switch: &Switch) -> Vec<(&'static str, String)> {
    let mut errors = Vec::new();
    let listen_port = super::units::parse_tcp(&switch.listen);
    if listen_port.is_none() || switch.listen.trim().parse::<u16>().is_ok() {
        errors.push((
            "listen",
            format!(
                "`{}` is not a TCP address: write \"127.0.0.1:8080\" or \"[::1]:8080\" (the front: ferry keeps it listening across deploys)",
                switch.listen.escape_debug()
            ),
        ));
    }
    let [a, b] = switch.ports;
    if a == 0 || b == 0 {
        errors.push(("ports", "a port is between 1 and 65535".to_string()));
    } else if a == b {
        errors.push((
            "ports",
            format!(
                "lists {a} twice: blue and green need two different ports, e.g. [{a}, {}]",
                a.wrapping_add(1).max(1)
            ),
        ));
    }
    if let Some(p) = listen_port
        && (p == a || p == b)
    {
        errors.push((
            "ports",
            format!("{p} is the front's port (`listen`): the colours need two other ports"),
        ));
    }
    errors
}

/// Which colour brings release `to` back: one that runs it already (instant), else the one
/// not live (started next to the live one, so the front moves only once it is up).
pub fn back_colour(live: Option<Colour>, runs_to: impl Fn(Colour) -> bool) -> Colour {
    let order = match live {
        Some(l) => [l, l.other()],
        None => Colour::BOTH,
    };
    order
        .into_iter()
        .find(|c| runs_to(*c))
        .unwrap_or_else(|| live.map(Colour::other).unwrap_or(Colour::Blue))
}

/// Shell lines (with `S`, the service's directory, and `R`, `releases/ID`, set) that write
/// both colours' env files and point colour `c`'s link at `R`.
pub fn prepare_lines(switch: &Switch, c: Colour) -> String {
    let mut s = String::from("mkdir -p \"$S/colors\"\n");
    for k in Colour::BOTH {
        s.push_str(&format!(
            "printf 'PORT=%s\\nFERRY_COLOR=%s\\n' {p} {n} > \"$S/colors/.{n}.env.tmp\" && mv -f \"$S/colors/.{n}.env.tmp\" \"$S/colors/{n}.env\"\n",
            p = switch.port(k),
            n = k.name()
        ));
    }
    s.push_str(&format!(
        "ln -sfn \"../$R\" \"$S/colors/.{n}.tmp\"\nmv -fT \"$S/colors/.{n}.tmp\" \"$S/colors/{n}\"\n",
        n = c.name()
    ));
    s
}

/// Shell lines waiting (at most `timeout`) until the colour's port accepts a connection: the
/// front moves only to a colour that answers. With bash's `/dev/tcp`; a host without bash
/// relies on the verification alone.
pub fn wait_port_lines(service: &str, switch: &Switch, c: Colour, timeout: Duration) -> String {
    let port = switch.port(c);
    let tries = (timeout.as_millis() / 100).max(1);
    let unit = quote(&instance(service, c));
    format!(
        "if command -v bash >/dev/null 2>&1; then w=0; while ! bash -c ': </dev/tcp/127.0.0.1/{port}' 2>/dev/null; do w=$((w+1)); if [ $w -gt {tries} ]; then echo \"{unit} does not accept connections on 127.0.0.1:{port}: the front was not moved\" >&2; exit 1; fi; sleep 0.1; done; fi\n"
    )
}

/// Shell lines moving the front to colour `c` (its release is `R`): the `live.sock` link,
/// then `current`; `c` is enabled (started at boot), the other colour disabled.
pub fn swap_lines(service: &str, c: Colour) -> String {
    let (on, off) = (
        quote(&instance(service, c)),
        quote(&instance(service, c.other())),
    );
    format!(
        "ln -sfn {n}.sock \"$S/.live.tmp\"\nmv -fT \"$S/.live.tmp\" \"$S/live.sock\"\n\
         ln -sfn \"$R\" \"$S/.current.tmp\"\nmv -fT \"$S/.current.tmp\" \"$S/current\"\n\
         systemctl --user enable --no-reload {on} >/dev/null 2>&1 || true\n\
         systemctl --user disable --no-reload {off} >/dev/null 2>&1 || true\n",
        n = c.name()
    )
}

/// The command of a deploy's `switch` step: wait for the new colour's port, move the front
/// and `current` to it. Prints `switched`.
pub fn switch_command(
    service: &str,
    switch: &Switch,
    c: Colour,
    release: &str,
    timeout: Duration,
) -> String {
    format!(
        "set -e\ncd \"$HOME\"\nS={}\nR={}\n{}{}echo switched\n",
        quote(&Paths::new(service).dir()),
        quote(&format!("releases/{release}")),
        wait_port_lines(service, switch, c, timeout),
        swap_lines(service, c)
    )
}

/// The command stopping the colour that drained.
pub fn stop_command(service: &str, c: Colour) -> String {
    format!("systemctl --user stop -- {}", quote(&instance(service, c)))
}

/// Shell lines (after the units are installed and the sockets started, with `S` and `R` set)
/// that bring release `R` back on colour `c` and move the front there: nothing restarts when
/// `c` runs `R` already; else `c` is (re)started on it and waited for. Then the other colour
/// is stopped, after `drain` when it was the live one.
pub fn back_lines(service: &str, switch: &Switch, c: Colour, timeout: Duration) -> String {
    let unit = quote(&instance(service, c));
    let other = c.other();
    let mut s = format!(
        "if [ \"$(readlink \"$S/colors/{n}\")\" = \"../$R\" ] && systemctl --user is-active --quiet -- {unit}; then :; else\n",
        n = c.name()
    );
    s.push_str(&prepare_lines(switch, c));
    s.push_str(&format!(
        "systemctl --user reset-failed -- {unit} >/dev/null 2>&1 || true\nsystemctl --user restart -- {unit}\nfi\n"
    ));
    s.push_str(&wait_port_lines(service, switch, c, timeout));
    s.push_str("was=$(readlink \"$S/live.sock\" 2>/dev/null || true)\n");
    s.push_str(&swap_lines(service, c));
    s.push_str(&format!(
        "if [ \"$was\" = {o}.sock ]; then sleep {d:.3}; fi\nsystemctl --user stop -- {u} >/dev/null 2>&1 || true\n",
        o = other.name(),
        d = switch.drain.as_secs_f64(),
        u = quote(&instance(service, other)),
    ));
    s
}

#[cfg(test)]
mod tests;
