//! Tests of blue/green switches: config keys, the generated units and the switch's lines.

use std::path::Path;

use super::*;
use crate::config::health_on;
use crate::plan::{Activation, SwitchMode};

fn sw() -> Switch {
    Switch {
        listen: "127.0.0.1:8080".into(),
        ports: [8081, 8082],
        drain: Duration::from_secs(10),
    }
}

fn run() -> Run {
    Run {
        command: "bin/web --listen 127.0.0.1:${PORT}".into(),
        socket: None,
        tcp_proxy: None,
        restart: "on-failure".into(),
        environment_file: false,
    }
}

#[test]
fn the_front_the_bridges_and_the_colours_template() {
    let g = generate("web", &sw(), Some(&run()));
    let names: Vec<&str> = g.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "web@.service",
            "web-front.socket",
            "web-front.service",
            "web-blue-bridge.socket",
            "web-blue-bridge.service",
            "web-green-bridge.socket",
            "web-green-bridge.service",
        ]
    );
    assert_eq!(names, names_of());
    let t = &g[0].content;
    assert!(
        t.contains(
            "ExecStart=%h/.local/share/ferry/web/colors/%i/bin/web --listen 127.0.0.1:${PORT}\n"
        ),
        "{t}"
    );
    assert!(t.contains("WorkingDirectory=%h/.local/share/ferry/web/colors/%i\n"));
    assert!(t.contains("[Install]\nWantedBy=default.target\n"));
    assert!(g[1].content.contains("ListenStream=127.0.0.1:8080\n"));
    assert!(g[2].content.contains(&format!(
        "ExecStart={SOCKET_PROXYD} %h/.local/share/ferry/web/live.sock\n"
    )));
    assert!(!g[2].content.contains("[Install]"), "the socket starts it");
    assert!(
        g[3].content
            .contains("ListenStream=%h/.local/share/ferry/web/blue.sock\nSocketMode=0600\n")
    );
    assert!(
        g[4].content
            .contains(&format!("ExecStart={SOCKET_PROXYD} 127.0.0.1:8081\n"))
    );
    assert!(
        g[6].content
            .contains(&format!("ExecStart={SOCKET_PROXYD} 127.0.0.1:8082\n"))
    );
    for u in &g {
        assert!(crate::systemd::validate_unit_name(&u.name).is_ok());
        assert!(
            crate::systemd::lint::lint_unit(&u.name, &u.content).is_empty(),
            "generated units pass ferry's own lints: {}",
            u.name
        );
    }
    // A user's template: only the front is generated.
    assert_eq!(generate("web", &sw(), None).len(), 6);
}

fn names_of() -> Vec<String> {
    names("web", Some(&run()))
}

#[test]
fn the_colour_template_reads_its_port_and_its_release_env() {
    let t = template_with_env(
        b"[Unit]\nDescription=x\n[Service]\nExecStart=/bin/x\n",
        "web",
        true,
    );
    assert_eq!(
        String::from_utf8(t).unwrap(),
        "[Unit]\nDescription=x\n[Service]\nEnvironmentFile=%h/.local/share/ferry/web/colors/%i.env\nEnvironmentFile=%h/.local/share/ferry/web/colors/%i/.ferry/env\nExecStart=/bin/x\n"
    );
    let t = template_with_env(b"[Unit]\n", "web", false);
    assert!(
        String::from_utf8(t)
            .unwrap()
            .ends_with("[Service]\nEnvironmentFile=%h/.local/share/ferry/web/colors/%i.env\n")
    );
}

#[test]
fn validation_names_the_key_and_the_fix() {
    assert!(validate(&sw()).is_empty());
    let same = Switch {
        ports: [8081, 8081],
        ..sw()
    };
    assert_eq!(validate(&same)[0].0, "ports");
    assert!(validate(&same)[0].1.contains("twice"));
    let front = Switch {
        ports: [8080, 8082],
        ..sw()
    };
    assert!(validate(&front)[0].1.contains("front's port"));
    let bad = Switch {
        listen: "localhost:http".into(),
        ..sw()
    };
    assert_eq!(validate(&bad)[0].0, "listen");
    let bare = Switch {
        listen: "8080".into(),
        ..sw()
    };
    assert_eq!(
        validate(&bare)[0].0,
        "listen",
        "a bare port is not an address here"
    );
}

#[test]
fn a_release_comes_back_on_the_colour_that_runs_it_else_next_to_the_live_one() {
    use Colour::*;
    assert_eq!(back_colour(Some(Blue), |c| c == Blue), Blue);
    assert_eq!(back_colour(Some(Blue), |c| c == Green), Green);
    assert_eq!(back_colour(Some(Blue), |_| false), Green);
    assert_eq!(back_colour(Some(Green), |_| true), Green);
    assert_eq!(back_colour(None, |_| false), Blue);
    assert_eq!(Colour::of_link("green.sock\n"), Some(Green));
    assert_eq!(Colour::of_link("other.sock"), None);
}

#[test]
fn health_checks_of_the_front_go_to_the_colours_port() {
    let h = crate::config::Health {
        http: Some(crate::config::HttpCheck {
            host: "127.0.0.1".into(),
            port: 8080,
            path: "/healthz".into(),
            url: "http://127.0.0.1:8080/healthz".into(),
        }),
        unix_http: None,
        command: None,
        timeout: Duration::from_secs(5),
        interval: Duration::from_secs(1),
    };
    assert_eq!(health_on(&h, &sw(), 8082).http.unwrap().port, 8082);
    let mut other = h.clone();
    other.http.as_mut().unwrap().port = 9000;
    assert_eq!(health_on(&other, &sw(), 8082).http.unwrap().port, 9000);
}

fn activation(mode: SwitchMode) -> Activation {
    Activation {
        release: "R1".into(),
        install: vec![],
        reload: false,
        remove: vec![],
        enable: vec![],
        stop_first: vec![],
        restart: vec![],
        start: vec!["web-front.socket".into()],
        switch: Some(mode),
    }
}

/// A deploy starts the idle colour and moves neither `current` nor the front; a rollback
/// brings the release back on a colour and moves both.
#[test]
fn the_activation_scripts_of_a_deploy_and_of_a_rollback() {
    let paths = crate::release::Paths::new("web");
    let prepare = activation(SwitchMode::Prepare {
        service: "web".into(),
        switch: sw(),
        colour: Colour::Green,
    });
    let s = prepare.script(&paths);
    assert!(!s.contains("\"$S/current\""), "{s}");
    assert!(!s.contains("live.sock"), "{s}");
    assert!(s.contains("ln -sfn \"../$R\" \"$S/colors/.green.tmp\"\nmv -fT \"$S/colors/.green.tmp\" \"$S/colors/green\"\n"), "{s}");
    assert!(
        s.contains("printf 'PORT=%s\\nFERRY_COLOR=%s\\n' 8082 green"),
        "{s}"
    );
    assert!(
        s.contains("systemctl --user restart --no-block web@green.service\n"),
        "{s}"
    );
    let start = s.find("systemctl --user start web-front.socket").unwrap();
    assert!(
        start < s.find("restart --no-block").unwrap(),
        "sockets first"
    );
    assert_eq!(
        prepare.verify_units(),
        ["web@green.service", "web-front.socket"]
    );

    let back = activation(SwitchMode::Back {
        service: "web".into(),
        switch: sw(),
        colour: Colour::Blue,
    });
    let s = back.script(&paths);
    assert!(
        s.contains("mv -fT \"$S/.live.tmp\" \"$S/live.sock\""),
        "{s}"
    );
    assert!(
        s.contains("mv -fT \"$S/.current.tmp\" \"$S/current\""),
        "{s}"
    );
    assert!(s.contains("if [ \"$was\" = green.sock ]; then sleep 10.000; fi\nsystemctl --user stop -- web@green.service"), "{s}");
    let wait = s.find("/dev/tcp/127.0.0.1/8081").unwrap();
    assert!(
        wait < s.find("live.sock\"\n").unwrap(),
        "the front moves once blue answers"
    );
    assert_eq!(
        back.verify_units(),
        ["web@blue.service", "web-front.socket"]
    );
}

/// The `switch` step's command runs in a real `sh`: it refuses to move the front to a colour
/// that does not accept connections, and moves link and `current` together.
#[test]
fn the_switch_command_moves_the_front_only_to_a_colour_that_answers() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let s = home.join(crate::paths::ROOT).join("web");
    std::fs::create_dir_all(s.join("releases/R2")).unwrap();
    std::os::unix::fs::symlink("blue.sock", s.join("live.sock")).unwrap();
    let bin = home.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    // systemctl is not the host's here.
    std::fs::write(bin.join("systemctl"), "#!/bin/sh\nexit 0\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        bin.join("systemctl"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let open = listener.local_addr().unwrap().port();
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let run = |port: u16| {
        let sw = Switch {
            ports: [1, port],
            ..sw()
        };
        let cmd = switch_command("web", &sw, Colour::Green, "R2", Duration::from_millis(300));
        std::process::Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .env("HOME", home)
            .env(
                "PATH",
                format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()),
            )
            .output()
            .unwrap()
    };
    let link = |p: &Path| std::fs::read_link(p).ok();
    let out = run(closed);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("the front was not moved"));
    assert_eq!(link(&s.join("live.sock")), Some("blue.sock".into()));
    assert_eq!(link(&s.join("current")), None);
    let out = run(open);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "switched");
    assert_eq!(link(&s.join("live.sock")), Some("green.sock".into()));
    assert_eq!(link(&s.join("current")), Some("releases/R2".into()));
    drop(listener);
}

fn load(text: &str) -> Result<crate::config::Config, crate::config::ConfigErrors> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("deploy.toml");
    std::fs::write(&path, text).unwrap();
    crate::config::load_for_hosts(&path)
}

const HOST: &str = "[hosts.h]\naddress = \"x\"\nuser = \"u\"\n";

#[test]
fn config_keys_and_what_a_switch_cannot_work_with() {
    let c = load(&format!(
        "{HOST}[services.web]\n[services.web.run]\ncommand = \"bin/web\"\n[services.web.switch]\nlisten = \"127.0.0.1:8080\"\nports = [8081, 8082]\n"
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    let s = &c.services["web"];
    assert_eq!(
        s.switch.as_ref().unwrap().drain,
        Duration::from_secs(10),
        "default drain"
    );
    assert!(
        s.restart.is_empty(),
        "the colours are started by the switch: {:?}",
        s.restart
    );
    let errors = |text: &str| load(&format!("{HOST}{text}")).unwrap_err().to_string();
    let e = errors(
        "[services.web]\n[services.web.run]\ncommand = \"bin/web\"\n[services.web.switch]\nlisten = \"127.0.0.1:8080\"\nports = [8081, 8081]\ndrain = \"soon\"\n",
    );
    assert!(
        e.contains(":9: `services.web.switch.ports`") && e.contains("twice"),
        "{e}"
    );
    assert!(e.contains(":10: `services.web.switch.drain`"), "{e}");
    let e = errors(
        "[services.web]\n[services.web.switch]\nlisten = \"127.0.0.1:8080\"\nports = [8081, 8082]\n",
    );
    assert!(
        e.contains("`services.web.switch`") && e.contains("web@.service"),
        "{e}"
    );
    let e = errors(
        "[services.web]\n[services.web.run]\ncommand = \"bin/web\"\nsocket = \"%t/w.sock\"\n[services.web.switch]\nlisten = \"127.0.0.1:8080\"\nports = [8081, 8082]\n",
    );
    assert!(e.contains("cannot work with `run.socket`"), "{e}");
    let e = errors(
        "[services.web]\n[services.web.run]\ncommand = \"bin/web\"\n[services.web.health]\nunix_http = { socket = \"%t/w.sock\", path = \"/\" }\n[services.web.switch]\nlisten = \"127.0.0.1:8080\"\nports = [8081]\n",
    );
    assert!(e.contains("health.unix_http"), "{e}");
    assert!(e.contains("lists 1 port(s)"), "{e}");
}
