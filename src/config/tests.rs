//! Tests of config loading and validation: the model built from deploy.toml, and each
//! error with its file, line and key.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;

fn env() -> Env {
    Env {
        home: Some(PathBuf::from("/home/me")),
        local_user: Some("me".into()),
        ssh_config: None,
    }
}

/// An Env whose OpenSSH client config is `text` (home /home/me, local user me).
pub(super) fn ssh_env(text: &str) -> Env {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "ferry-config-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config"), text).unwrap();
    Env {
        ssh_config: Some(crate::config::ssh::Context {
            files: vec![(dir.join("config"), dir.clone())],
            home: "/home/me".into(),
            local_user: "me".into(),
            local_host: "local".into(),
            uid: 1000,
            env: Default::default(),
        }),
        ..env()
    }
}

fn parse_ok(text: &str) -> Config {
    parse(text, Path::new("conf/deploy.toml"), &env()).unwrap_or_else(|e| panic!("{e}"))
}

fn parse_err(text: &str) -> ConfigErrors {
    parse(text, Path::new("conf/deploy.toml"), &env()).expect_err("config should be refused")
}

#[test]
fn env_values_and_hooks() {
    let c = parse_ok(
        r#"
[hosts.a]
address = "a"
[services.api.env]
LOG_LEVEL = "info"
PORT = 8080
DATABASE_URL = { env = "API_DATABASE_URL" }
API_TOKEN = { command = "pass show api/token" }
SENTRY_DSN = { file = "secrets/sentry.dsn" }
[services.api.hooks]
before_switch = "bin/api migrate"
after_switch = "bin/api warm"
local_after = "scripts/notify.sh"
timeout = "2m"
"#,
    );
    let s = &c.services["api"];
    assert_eq!(s.env["LOG_LEVEL"], EnvValue::Literal("info".into()));
    assert_eq!(s.env["PORT"], EnvValue::Literal("8080".into()));
    assert_eq!(
        s.env["DATABASE_URL"],
        EnvValue::Env("API_DATABASE_URL".into())
    );
    assert_eq!(
        s.env["API_TOKEN"],
        EnvValue::Command {
            command: "pass show api/token".into(),
            dir: "conf".into()
        }
    );
    assert_eq!(
        s.env["SENTRY_DSN"],
        EnvValue::File("conf/secrets/sentry.dsn".into())
    );
    assert_eq!(s.hooks.before_switch.as_deref(), Some("bin/api migrate"));
    assert_eq!(s.hooks.timeout, Duration::from_secs(120));
    // The after_switch hook runs while the self-revert is armed.
    assert_eq!(
        s.confirm_timeout,
        Duration::from_secs(30 + 120 + 10) + Duration::from_millis(1500)
    );
    assert_eq!(c.services["api"].hooks.dir, PathBuf::from("conf"));
}

#[test]
fn bad_env_and_hooks_name_line_and_key() {
    let e = parse_err(
        "[hosts.a]\naddress = \"a\"\n[services.api.env]\n\"1X\" = \"v\"\nA = { vault = \"x\" }\nB = { env = \"X\", file = \"y\" }\nFERRY_HOST = \"x\"\nC = [1]\n[services.api.hooks]\nbefore_switch = \" \"\ntimeout = \"soon\"\n",
    );
    let text = e.to_string();
    for (line, key) in [
        (4, "services.api.env.1X"),
        (5, "services.api.env.A"),
        (6, "services.api.env.B"),
        (7, "services.api.env.FERRY_HOST"),
        (8, "services.api.env.C"),
        (10, "services.api.hooks.before_switch"),
        (11, "services.api.hooks.timeout"),
    ] {
        assert!(
            text.contains(&format!("conf/deploy.toml:{line}: `{key}`")),
            "{key} at line {line}:\n{text}"
        );
    }
    // A multi-line value is fine (a PEM key); an escape character is not.
    parse_ok(
        "[hosts.a]\naddress = \"a\"\n[services.api.env]\nKEY = \"\"\"\nline1\nline2\n\"\"\"\n",
    );
}

#[test]
fn vars_templates_and_instances() {
    let c = parse_ok(
        "[hosts.a]\naddress = \"a\"\n[hosts.a.vars]\nport = 8081\n[services.api]\ntemplates = true\nunits = [\"api@.service\"]\n[services.api.instances]\n\"api@.service\" = 3\n",
    );
    let s = &c.services["api"];
    assert!(s.templates);
    assert_eq!(s.instances["api@.service"], InstanceCount::Fixed(3));
    assert_eq!(s.host_context["a"]["vars"]["port"], 8081);
    assert_eq!(s.host_context["a"]["user"], "me");
    let e = parse_err(
        "[hosts.a]\naddress = \"a\"\n[services.api]\nunits = [\"api@.service\", \"b.service\"]\n[services.api.instances]\n\"b.service\" = 2\n\"api@.service\" = -1\n",
    );
    let text = e.to_string();
    assert!(
        text.contains(":6: `services.api.instances.b.service`")
            && text.contains(":7: `services.api.instances.api@.service`"),
        "{text}"
    );
}

#[test]
fn defaults_apply_and_hosts_override() {
    let c = parse_ok(
        r#"
[defaults]
user = "deploy"
port = 2222
connect_timeout = "3s"
host_key_policy = "accept-new"

[hosts.a]
address = "a.example"

[hosts.b]
address = "b.example"
user = "other"
port = 22
identity = "~/.ssh/id_b"
known_hosts = "kh"
host_key_policy = "strict"
"#,
    );
    let a = &c.hosts["a"];
    assert_eq!(a.user, "deploy");
    assert_eq!(a.port, 2222);
    assert_eq!(a.connect_timeout, Duration::from_secs(3));
    assert_eq!(a.host_key_policy, HostKeyPolicy::AcceptNew);
    assert_eq!(a.identity, None);
    assert_eq!(a.known_hosts, PathBuf::from("/home/me/.ssh/known_hosts"));
    let b = &c.hosts["b"];
    assert_eq!(b.user, "other");
    assert_eq!(b.port, 22);
    assert_eq!(b.identity, Some(PathBuf::from("/home/me/.ssh/id_b")));
    assert_eq!(b.known_hosts, PathBuf::from("conf/kh"));
    assert_eq!(b.host_key_policy, HostKeyPolicy::Strict);
}

#[test]
fn a_jump_host_is_a_hop_not_a_default_deploy_target() {
    let base = "[hosts.bastion]\naddress = \"b\"\n[hosts.web]\naddress = \"10.0.0.5\"\nproxy_jump = \"bastion\"\n";
    let c = parse_ok(&format!("{base}[services.app]\nunits = []\n"));
    assert_eq!(c.services["app"].hosts, vec!["web"]);
    // Named explicitly, a bastion is a target like any host.
    let c = parse_ok(&format!(
        "{base}[services.app]\nhosts = [\"bastion\", \"web\"]\nunits = []\n"
    ));
    assert_eq!(c.services["app"].hosts, vec!["bastion", "web"]);
}

#[test]
fn proxy_jump_resolves_one_level() {
    let c = parse_ok(
        "[hosts.bastion]\naddress = \"b\"\n[hosts.web]\naddress = \"10.0.0.5\"\nproxy_jump = \"bastion\"\n",
    );
    assert_eq!(c.hosts["web"].proxy_jump.as_ref().unwrap().address, "b");
    assert!(c.hosts["bastion"].proxy_jump.is_none());
    let e = parse_err("[hosts.web]\naddress = \"x\"\nproxy_jump = \"nope\"\n");
    assert_eq!(e.0[0].key, "hosts.web.proxy_jump");
    let e = parse_err("[hosts.web]\naddress = \"x\"\nproxy_jump = \"web\"\n");
    assert!(e.0[0].message.contains("itself"));
    // Two hops: a through b, b through c.
    let c = parse_ok(
        "[hosts.a]\naddress = \"x\"\nproxy_jump = \"b\"\n[hosts.b]\naddress = \"y\"\nproxy_jump = \"c\"\n[hosts.c]\naddress = \"z\"\n",
    );
    let b = c.hosts["a"].proxy_jump.as_ref().unwrap();
    assert_eq!(b.name, "b");
    assert_eq!(b.proxy_jump.as_ref().unwrap().name, "c");
    assert!(b.proxy_jump.as_ref().unwrap().proxy_jump.is_none());
    let e = parse_err(
        "[hosts.a]\naddress = \"x\"\nproxy_jump = \"b\"\n[hosts.b]\naddress = \"y\"\nproxy_jump = \"a\"\n",
    );
    assert!(e.0[0].message.contains("circle: a -> b -> a"), "{e}");
}

/// `ProxyJump a,b` of the OpenSSH config: the target goes through b, b through a; each hop
/// resolved under its own name; deploy.toml's `proxy_jump` replaces it.
#[test]
fn ssh_config_proxy_jump_chain() {
    let env = ssh_env(
        "Host far\n  HostName 10.9.9.9\n  ProxyJump first,ops@second:2022\nHost first\n  HostName 192.0.2.1\n  User jumper\n  Port 2200\n",
    );
    let c = parse(
        "[hosts.t]\naddress = \"far\"\n[hosts.u]\naddress = \"far\"\nproxy_jump = \"v\"\n[hosts.v]\naddress = \"v.example\"\n",
        Path::new("deploy.toml"),
        &env,
    )
    .unwrap();
    let second = c.hosts["t"].proxy_jump.as_ref().unwrap();
    assert_eq!(
        (
            second.name.as_str(),
            second.address.as_str(),
            second.user.as_str(),
            second.port
        ),
        ("second", "second", "ops", 2022)
    );
    let first = second.proxy_jump.as_ref().unwrap();
    assert_eq!(
        (
            first.name.as_str(),
            first.address.as_str(),
            first.user.as_str(),
            first.port
        ),
        ("first", "192.0.2.1", "jumper", 2200)
    );
    assert!(first.proxy_jump.is_none());
    assert_eq!(c.hosts["u"].proxy_jump.as_ref().unwrap().name, "v");
    // Jump hosts are hops, not deploy targets.
    assert!(!c.hosts.contains_key("first") && !c.hosts.contains_key("second"));
}

/// ProxyCommand: %h %p %r %n expanded, `${VAR}` left to the shell, `none` is no command.
#[test]
fn ssh_config_proxy_command_tokens() {
    let env = ssh_env(
        "Host px\n  HostName 10.0.0.7\n  User ops\n  ProxyCommand ssh -W %h:%p ${JUMP} -l %r # %n %%\nHost none\n  ProxyCommand none\n",
    );
    let c = parse(
        "[hosts.a]\naddress = \"px\"\n[hosts.b]\naddress = \"none\"\n",
        Path::new("deploy.toml"),
        &env,
    )
    .unwrap();
    assert_eq!(
        c.hosts["a"].ssh.proxy_command.as_deref(),
        Some("ssh -W 10.0.0.7:22 ${JUMP} -l ops # px %")
    );
    assert_eq!(c.hosts["b"].ssh.proxy_command, None);
}

#[test]
fn ssh_config_applies_under_deploy_toml() {
    let env = ssh_env(
        "Host web\n  HostName 10.1.2.3\n  User alice\n  User later\n  Port 2200\n  IdentityFile ~/.ssh/web_key\n  IdentityFile ~/.ssh/%r_key\n  ConnectTimeout 4\n  AddKeysToAgent confirm\n  ServerAliveInterval 1m\n",
    );
    let c = parse(
        "[hosts.a]\naddress = \"web\"\n[hosts.b]\naddress = \"web\"\nuser = \"bob\"\nport = 22\n[hosts.c]\naddress = \"other\"\n",
        Path::new("deploy.toml"),
        &env,
    )
    .unwrap();
    let a = &c.hosts["a"];
    assert_eq!(a.address, "10.1.2.3");
    assert_eq!(a.user, "alice");
    assert_eq!(a.port, 2200);
    // Neither file exists: no `identity`, both kept in order (tokens expanded).
    assert_eq!(a.identity, None);
    assert_eq!(
        a.identities,
        [
            PathBuf::from("/home/me/.ssh/web_key"),
            PathBuf::from("/home/me/.ssh/alice_key")
        ]
    );
    assert_eq!(a.connect_timeout, Duration::from_secs(4));
    assert_eq!(a.ssh.server_alive_interval, Some(Duration::from_secs(60)));
    let b = &c.hosts["b"];
    assert_eq!((b.user.as_str(), b.port), ("bob", 22));
    assert_eq!(c.hosts["c"].address, "other");
    assert_eq!(c.hosts["c"].user, "me");
}

#[test]
fn local_user_is_the_default_user() {
    let c = parse_ok("[hosts.a]\naddress = \"x\"\n");
    assert_eq!(c.hosts["a"].user, "me");
    assert_eq!(c.hosts["a"].port, 22);
    assert_eq!(c.hosts["a"].connect_timeout, Duration::from_secs(10));
}

#[test]
fn unknown_key_names_line_and_key() {
    let e = parse_err("[hosts.a]\naddress = \"x\"\nprot = 22\n");
    let text = e.to_string();
    assert!(text.starts_with("conf/deploy.toml:3"), "{text}");
    assert!(text.contains("prot"), "{text}");
}

#[test]
fn wrong_type_names_line() {
    let e = parse_err("[defaults]\nport = \"22\"\n[hosts.a]\naddress = \"x\"\n");
    assert_eq!(e.0[0].line, Some(2), "{e}");
    assert_eq!(e.0[0].key, "defaults.port", "{e}");
    let e = parse_err("[hosts.a]\naddress = \"x\"\n[services.s]\nunits = [\"a.service\", 3]\n");
    assert_eq!(e.0[0].key, "services.s.units[1]", "{e}");
    let e =
        parse_err("[hosts.a]\naddress = \"x\"\n[[services.s.files]]\nsource = 1\ndest = \"d\"\n");
    assert_eq!(e.0[0].key, "services.s.files[0].source", "{e}");
}

#[test]
fn bad_duration_and_policy() {
    let e = parse_err("[defaults]\nconnect_timeout = \"soon\"\n[hosts.a]\naddress = \"x\"\n");
    assert_eq!(e.0[0].line, Some(2), "{e}");
    assert_eq!(e.0[0].key, "defaults.connect_timeout");
    let e = parse_err("[hosts.a]\naddress = \"x\"\nhost_key_policy = \"yolo\"\n");
    assert_eq!(e.0[0].line, Some(3), "{e}");
    assert!(e.to_string().contains("strict"), "{e}");
}

const SERVICE_OK: &str = r#"
[hosts.web1]
address = "w1"
[hosts.web2]
address = "w2"

[services.app]
units = ["deploy/app.service", "deploy/app.socket"]

[[services.app.files]]
source = "target/app"
dest = "bin/app"
mode = "0755"
"#;

#[test]
fn service_defaults() {
    let c = parse_ok(SERVICE_OK);
    let s = &c.services["app"];
    assert_eq!(s.hosts, vec!["web1", "web2"]);
    assert_eq!(s.restart, vec!["app.service"]);
    assert!(s.enable);
    assert_eq!(s.start_timeout, Duration::from_secs(30));
    assert_eq!(s.settle_time, Duration::from_millis(1500));
    assert_eq!(s.keep_releases, 5);
    assert_eq!(s.confirm_timeout, Duration::from_secs(60));
    let c = parse_ok("[hosts.h]\naddress = \"x\"\n[services.s]\nstart_timeout = \"5m\"\n");
    assert_eq!(
        c.services["s"].confirm_timeout,
        Duration::from_secs(300) + Duration::from_millis(1500) + Duration::from_secs(10)
    );
    assert_eq!(s.units[0].name, "app.service");
    assert_eq!(s.units[0].source, PathBuf::from("conf/deploy/app.service"));
    assert_eq!(s.files[0].mode, 0o755);
    assert_eq!(s.files[0].dest, "bin/app");
}

fn service_err(extra_service: &str, extra_file: &str) -> ConfigErrors {
    let text = format!(
        "[hosts.web1]\naddress = \"w1\"\n[services.app]\nunits = [\"app.service\"]\n{extra_service}\n[[services.app.files]]\nsource = \"a\"\ndest = \"bin/a\"\n{extra_file}\n"
    );
    parse_err(&text)
}

#[test]
fn service_errors_name_key_and_line() {
    let e = service_err("hosts = [\"web9\"]", "");
    assert_eq!(e.0[0].key, "services.app.hosts[0]");
    assert_eq!(e.0[0].line, Some(5));
    assert!(e.0[0].message.contains("web9"));

    let e = service_err("", "mode = \"rwx\"");
    assert_eq!(e.0[0].key, "services.app.files[0].mode");
    assert_eq!(e.0[0].line, Some(9));

    let e = service_err("start_timeout = \"fast\"", "");
    assert_eq!(e.0[0].key, "services.app.start_timeout");

    let e = service_err("restart = [\"other.service\"]", "");
    assert_eq!(e.0[0].key, "services.app.restart[0]");
}

#[test]
fn dest_rules() {
    assert_eq!(normalize_dest("bin//./app").unwrap(), "bin/app");
    assert!(normalize_dest("/etc/passwd").is_err());
    assert!(normalize_dest("../x").is_err());
    assert!(normalize_dest("a/../../x").is_err());
    assert!(normalize_dest("").is_err());
    assert!(normalize_dest("units/x").is_err());
    let e = parse_err(
        "[hosts.h]\naddress = \"x\"\n[services.s]\n[[services.s.files]]\nsource = \"a\"\ndest = \"bin/a\"\n[[services.s.files]]\nsource = \"b\"\ndest = \"bin//a\"\n",
    );
    assert_eq!(e.0[0].key, "services.s.files[1].dest");
    assert_eq!(e.0[0].line, Some(9));
    assert!(e.0[0].message.contains("files[0]"));
}

#[test]
fn bad_unit_names_are_refused() {
    let e = parse_err(
        "[hosts.h]\naddress = \"x\"\n[services.s]\nunits = [\"ok.service\", \"bad name.service\", \"x.conf\"]\n",
    );
    assert_eq!(e.0.len(), 2, "{e}");
    assert_eq!(e.0[0].key, "services.s.units[1]");
    assert_eq!(e.0[1].key, "services.s.units[2]");
}

#[test]
fn secret_files_default_to_0600_and_refuse_loose_modes() {
    let c = parse_ok(
        "[hosts.h]\naddress = \"x\"\n[services.s]\n[[services.s.files]]\nsource = \"k\"\ndest = \"etc/key\"\nsecret = true\n",
    );
    assert_eq!(c.services["s"].files[0].mode, 0o600);
    assert!(c.services["s"].files[0].secret);
    let e = parse_err(
        "[hosts.h]\naddress = \"x\"\n[services.s]\n[[services.s.files]]\nsource = \"k\"\ndest = \"etc/key\"\nsecret = true\nmode = \"0644\"\n",
    );
    assert_eq!(e.0[0].key, "services.s.files[0].mode");
    assert!(e.0[0].message.contains("secret"));
}

#[test]
fn modes() {
    assert_eq!(parse_mode("0755").unwrap(), 0o755);
    assert_eq!(parse_mode("600").unwrap(), 0o600);
    assert_eq!(parse_mode("0o640").unwrap(), 0o640);
    assert!(parse_mode("0855").is_err());
    assert!(parse_mode("0044").is_err());
    assert!(parse_mode("77777").is_err());
}

#[test]
fn one_error_per_mistake_in_octal_and_https() {
    let e = parse_err(
        "[hosts.h]\naddress = \"x\"\nuser = \"u\"\n[services.s]\n[[services.s.files]]\nsource = \"a\"\ndest = \"a\"\nsecret = true\nmode = \"0644\"\n[services.s.health]\nhttp = \"https://h/x\"\n",
    );
    let text = e.to_string();
    assert!(text.contains("`0644`: a secret file"), "{text}");
    assert!(!text.contains("`420`"), "{text}");
    assert!(text.contains("only http:// URLs"), "{text}");
    assert!(!text.contains("no check set"), "{text}");
}

#[test]
fn http_urls() {
    let c = parse_http_url("http://127.0.0.1:8080/healthz?x=1").unwrap();
    assert_eq!(
        (c.host.as_str(), c.port, c.path.as_str()),
        ("127.0.0.1", 8080, "/healthz?x=1")
    );
    let c = parse_http_url("http://localhost").unwrap();
    assert_eq!((c.port, c.path.as_str()), (80, "/"));
    let c = parse_http_url("http://[::1]:81/x").unwrap();
    assert_eq!((c.host.as_str(), c.port), ("::1", 81));
    assert!(parse_http_url("https://x/").is_err());
    assert!(parse_http_url("http://x:port/").is_err());
}

#[test]
fn confirm_timeout_must_cover_verification() {
    let e = parse_err(
        "[hosts.h]\naddress = \"x\"\n[services.s]\nstart_timeout = \"30s\"\nconfirm_timeout = \"20s\"\n",
    );
    assert_eq!(e.0[0].key, "services.s.confirm_timeout");
}

#[test]
fn several_errors_are_all_reported() {
    let e = parse_err(
        "[hosts.h]\naddress = \"x\"\nconnect_timeout = \"x\"\n[services.s]\nhosts = [\"nope\"]\nkeep_releases = 1\n",
    );
    assert_eq!(e.0.len(), 3, "{e}");
}

// --- refused values that used to pass ------------------------------------------------------

fn files_err(dests: &[&str]) -> ConfigErrors {
    let mut text = String::from("[hosts.h]\naddress = \"x\"\n[services.s]\n");
    for d in dests {
        text.push_str(&format!(
            "[[services.s.files]]\nsource = \"a\"\ndest = \"{d}\"\n"
        ));
    }
    parse_err(&text)
}

#[test]
fn dest_with_control_characters_is_refused() {
    for dest in [r"bin/\u001b[31mapp", r"bin/a\nb", r"bin/a\tb"] {
        let e = files_err(&[dest]);
        assert_eq!(e.0.len(), 1, "{e}");
        assert_eq!(e.0[0].key, "services.s.files[0].dest", "{e}");
        assert_eq!(e.0[0].line, Some(6), "{e}");
        assert!(e.0[0].message.contains("control character"), "{e}");
        // What reaches the terminal is escaped.
        assert!(!e.to_string().contains(['\u{1b}', '\t']), "{e:?}");
        assert_eq!(e.to_string().lines().count(), 1, "{e}");
    }
    assert!(normalize_dest("bin/\u{1b}[31mx").is_err());
    assert!(normalize_dest("bin/a\nb").is_err());
    assert!(normalize_dest("a\0b").is_err());
}

#[test]
fn dest_naming_a_directory_is_refused() {
    let e = files_err(&["bin/"]);
    assert_eq!(e.0[0].key, "services.s.files[0].dest");
    assert_eq!(e.0[0].line, Some(6));
    assert!(
        e.0[0]
            .message
            .contains("names a directory; give the file name"),
        "{e}"
    );
    assert!(normalize_dest("bin/.").is_err());
    assert_eq!(normalize_dest("bin/app").unwrap(), "bin/app");
}

#[test]
fn a_dest_cannot_be_a_file_and_a_directory() {
    let e = files_err(&["bin", "share/x", "bin/x"]);
    assert_eq!(e.0.len(), 1, "{e}");
    assert_eq!(e.0[0].key, "services.s.files[2].dest");
    assert_eq!(e.0[0].line, Some(12));
    let m = &e.0[0].message;
    assert!(
        m.contains("`bin/x`") && m.contains("`bin`") && m.contains("files[0]"),
        "{e}"
    );
    // The other order: the directory comes first.
    let e = files_err(&["bin/x/y", "bin"]);
    assert_eq!(e.0[0].key, "services.s.files[1].dest");
    assert_eq!(e.0[0].line, Some(9));
    let m = &e.0[0].message;
    assert!(m.contains("`bin/x/y`") && m.contains("files[0]"), "{e}");
    // Siblings sharing a directory are fine.
    parse_ok(
        "[hosts.h]\naddress = \"x\"\n[services.s]\n[[services.s.files]]\nsource = \"a\"\ndest = \"bin/a\"\n[[services.s.files]]\nsource = \"a\"\ndest = \"bin/ab\"\n",
    );
}

#[test]
fn durations_are_capped_at_a_day() {
    let e = parse_err("[hosts.h]\naddress = \"x\"\n[services.s]\nconfirm_timeout = \"25h\"\n");
    assert_eq!(e.0[0].key, "services.s.confirm_timeout");
    assert_eq!(e.0[0].line, Some(4));
    assert!(e.0[0].message.contains("longer than 24h"), "{e}");
    for key in ["start_timeout", "settle_time"] {
        let e = parse_err(&format!(
            "[hosts.h]\naddress = \"x\"\n[services.s]\n{key} = \"2days\"\n"
        ));
        assert_eq!(e.0[0].key, format!("services.s.{key}"), "{e}");
        assert_eq!(e.0[0].line, Some(4), "{e}");
    }
    let e = parse_err(
        "[hosts.h]\naddress = \"x\"\n[services.s]\n[services.s.health]\ncommand = \"true\"\ntimeout = \"100000h\"\n",
    );
    assert_eq!(e.0[0].key, "services.s.health.timeout");
    assert_eq!(e.0[0].line, Some(6));
    let e = parse_err("[defaults]\nconnect_timeout = \"48h\"\n[hosts.h]\naddress = \"x\"\n");
    assert_eq!(e.0[0].key, "defaults.connect_timeout");
    // Each within the cap, but together they leave the rollback timer no room.
    let e = parse_err(
        "[hosts.h]\naddress = \"x\"\n[services.s]\nstart_timeout = \"20h\"\n[services.s.health]\ncommand = \"true\"\ntimeout = \"20h\"\n",
    );
    assert_eq!(e.0[0].key, "services.s.confirm_timeout", "{e}");
    assert_eq!(e.0[0].line, Some(3), "{e}");
    assert!(e.0[0].message.contains("shorten them"), "{e}");
    let c = parse_ok("[hosts.h]\naddress = \"x\"\n[services.s]\nconfirm_timeout = \"24h\"\n");
    assert_eq!(c.services["s"].confirm_timeout, MAX_DURATION);
}

#[test]
fn control_characters_in_names_and_values_are_refused() {
    let e = parse_err("[hosts.a]\naddress = \"x\"\nuser = \"bob\\u001b[2J\"\n");
    assert_eq!(
        (e.0[0].key.as_str(), e.0[0].line),
        ("hosts.a.user", Some(3))
    );
    assert_eq!(e.0.len(), 1, "one error per key: {e}");
    let e = parse_err("[hosts.a]\naddress = \"x\\r\"\n");
    assert_eq!(
        (e.0[0].key.as_str(), e.0[0].line),
        ("hosts.a.address", Some(2))
    );
    let e = parse_err("[defaults]\nuser = \"a\\u0007\"\n[hosts.a]\naddress = \"x\"\n");
    assert_eq!(e.0[0].key, "defaults.user", "{e}");
    let e = parse_err(
        "[hosts.h]\naddress = \"x\"\n[services.s]\nunits = [\"ok.service\", \"a\\u001b.service\"]\nrestart = [\"ok.service\\n\"]\n",
    );
    let keys: Vec<&str> = e.0.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(
        keys,
        ["services.s.units[1]", "services.s.restart[0]"],
        "{e}"
    );
    assert_eq!(e.0[1].line, Some(5));
    let e = parse_err("[hosts.\"a\\u001b\"]\naddress = \"x\"\n");
    assert_eq!(e.0[0].line, Some(1), "{e}");
    assert!(!e.to_string().contains('\u{1b}'), "{e:?}");
    // A health command may span lines.
    let c = parse_ok(
        "[hosts.h]\naddress = \"x\"\n[services.s.health]\ncommand = \"\"\"\ntest -e /a\n\\ttest -e /b\n\"\"\"\n",
    );
    assert!(
        c.services["s"]
            .health
            .as_ref()
            .unwrap()
            .command
            .as_ref()
            .unwrap()
            .contains('\n')
    );
}

// --- local files --------------------------------------------------------------------------

#[test]
fn missing_or_unusable_identity_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("deploy.toml");
    std::fs::write(dir.path().join("key"), "k").unwrap();
    let load = |text: &str, env: &Env| load_text(text, &path, env, LocalFiles::All);
    load("[hosts.a]\naddress = \"x\"\nidentity = \"key\"\n", &env()).unwrap();

    let e = load("[hosts.a]\naddress = \"x\"\nidentity = \"nope\"\n", &env()).unwrap_err();
    assert_eq!(
        (e.0[0].key.as_str(), e.0[0].line),
        ("hosts.a.identity", Some(3))
    );
    assert!(e.0[0].message.contains("does not exist"), "{e}");
    assert!(
        e.0[0]
            .message
            .contains(&dir.path().join("nope").display().to_string()),
        "{e}"
    );

    // From [defaults]: reported once, where it is written.
    let e = load(
        "[defaults]\nidentity = \"~/.ssh/none\"\n[hosts.a]\naddress = \"x\"\n[hosts.b]\naddress = \"y\"\n",
        &env(),
    )
    .unwrap_err();
    assert_eq!(e.0.len(), 1, "{e}");
    assert_eq!(
        (e.0[0].key.as_str(), e.0[0].line),
        ("defaults.identity", Some(2))
    );
    assert!(e.0[0].message.contains("/home/me/.ssh/none"), "{e}");

    // A directory is no key.
    let e = load("[hosts.a]\naddress = \"x\"\nidentity = \".\"\n", &env()).unwrap_err();
    assert!(e.0[0].message.contains("not a regular file"), "{e}");

    // From ~/.ssh/config: a missing IdentityFile is skipped, as ssh skips it.
    let env = ssh_env("Host web\n  IdentityFile ~/.ssh/missing\n");
    let c = load("[hosts.a]\n\naddress = \"web\"\n", &env).unwrap();
    assert_eq!(c.hosts["a"].identity, None);

    // A malformed option: located at the address it applies to, naming file, line, option.
    let env = ssh_env("Host github.com\n  Port 22x\n");
    let e = load("[hosts.a]\n\naddress = \"web\"\n", &env).unwrap_err();
    assert_eq!(
        (e.0[0].key.as_str(), e.0[0].line),
        ("hosts.a.address", Some(3))
    );
    assert!(e.0[0].message.contains("config:2: port:"), "{e}");
}

// --- groups --------------------------------------------------------------------------------

const GROUPS: &str = r#"
[hosts.web1]
address = "w1"
[hosts.web2]
address = "w2"
[hosts.web3]
address = "w3"
[hosts.db]
address = "d"

[groups]
eu = ["web2", "web1"]
web = ["eu", "web3", "web1"]
all = ["web", "db"]
"#;

#[test]
fn groups_expand_nested_deduplicated_in_first_seen_order() {
    let c = parse_ok(&format!(
        "{GROUPS}[services.api]\nhosts = [\"db\", \"web\", \"web2\"]\n[services.all]\nhosts = [\"all\"]\n[services.default]\n"
    ));
    assert_eq!(c.services["api"].hosts, ["db", "web2", "web1", "web3"]);
    assert_eq!(c.services["all"].hosts, ["web2", "web1", "web3", "db"]);
    assert_eq!(c.services["default"].hosts, ["db", "web1", "web2", "web3"]);
    assert_eq!(c.groups["web"], ["eu", "web3", "web1"], "kept as written");
    assert_eq!(c.group_hosts("web"), ["web2", "web1", "web3"]);
}

#[test]
fn select_hosts_takes_hosts_and_groups() {
    let c = parse_ok(GROUPS);
    let names = |sel: &[&str]| -> Vec<String> {
        let sel: Vec<String> = sel.iter().map(|s| s.to_string()).collect();
        c.select_hosts(&sel)
            .unwrap()
            .into_iter()
            .map(|h| h.name.clone())
            .collect()
    };
    assert_eq!(names(&[]), ["db", "web1", "web2", "web3"]);
    assert_eq!(names(&["eu"]), ["web1", "web2"], "config order");
    assert_eq!(names(&["web3", "eu", "web1"]), ["web1", "web2", "web3"]);
    assert_eq!(names(&["db"]), ["db"]);
    let e = c.select_hosts(&["nope".to_string()]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "--host nope: no such host or group in conf/deploy.toml; hosts: db, web1, web2, web3; groups: all, eu, web"
    );
}

#[test]
fn selection_errors_say_what_is_defined() {
    let c = parse_ok("");
    let e = c.select_hosts(&["x".into()]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "--host x: no such host or group in conf/deploy.toml; no hosts are defined: add a [hosts.NAME] table"
    );
    let e = c.select_services(&["x".into()]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "no service `x` in conf/deploy.toml; no services are defined: add a [services.NAME] table"
    );
    let c = parse_ok("[hosts.h]\naddress = \"x\"\n[services.a]\n[services.b]\n");
    let e = c.select_services(&["x".into()]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "no service `x` in conf/deploy.toml; defined: a, b"
    );
    assert_eq!(c.select_services(&["b".into()]).unwrap()[0].name, "b");
    let e = c.select_hosts(&["x".into()]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "--host x: no such host or group in conf/deploy.toml; hosts: h"
    );
    let c = parse_ok("[hosts.h]\naddress = \"x\"\n[groups]\nnone = []\n");
    let e = c.select_hosts(&["none".into()]).unwrap_err();
    assert!(matches!(e, SelectError::EmptyGroup { .. }), "{e}");
    assert!(e.to_string().contains("has no hosts"), "{e}");
}

#[test]
fn group_errors_name_line_and_key() {
    let hosts = "[hosts.a]\naddress = \"x\"\n[hosts.b]\naddress = \"y\"\n[groups]\n";
    // An unknown member.
    let e = parse_err(&format!("{hosts}g = [\"a\", \"c\"]\n"));
    assert_eq!((e.0[0].key.as_str(), e.0[0].line), ("groups.g[1]", Some(6)));
    assert_eq!(
        e.0[0].message,
        "no host or group `c`; defined hosts: a, b; groups: g"
    );
    // A cycle, named in full.
    let e = parse_err(&format!("{hosts}x = [\"a\", \"y\"]\ny = [\"x\"]\n"));
    assert_eq!(e.0.len(), 1, "{e}");
    assert_eq!((e.0[0].key.as_str(), e.0[0].line), ("groups.y[0]", Some(7)));
    assert!(e.0[0].message.contains("x -> y -> x"), "{e}");
    let e = parse_err(&format!("{hosts}x = [\"x\"]\n"));
    assert!(e.0[0].message.contains("x -> x"), "{e}");
    // A group named like a host.
    let e = parse_err(&format!("{hosts}a = [\"b\"]\n"));
    assert_eq!((e.0[0].key.as_str(), e.0[0].line), ("groups.a", Some(6)));
    assert!(e.0[0].message.contains("both a host and a group"), "{e}");
    // An unknown name in a service's hosts.
    let e = parse_err(&format!(
        "{hosts}g = [\"a\"]\n[services.s]\nhosts = [\"g\", \"zz\"]\n"
    ));
    assert_eq!(
        (e.0[0].key.as_str(), e.0[0].line),
        ("services.s.hosts[1]", Some(8))
    );
    assert_eq!(
        e.0[0].message,
        "no host or group `zz`; defined hosts: a, b; groups: g"
    );
    // An empty group used by a service (also through a group of empty groups).
    let e = parse_err(&format!(
        "{hosts}none = []\nnested = [\"none\"]\n[services.s]\nhosts = [\"a\", \"nested\"]\n"
    ));
    assert_eq!(e.0.len(), 1, "{e}");
    assert_eq!(
        (e.0[0].key.as_str(), e.0[0].line),
        ("services.s.hosts[1]", Some(9))
    );
    assert!(e.0[0].message.contains("`nested` has no hosts"), "{e}");
    // An empty list.
    let e = parse_err(&format!("{hosts}[services.s]\nhosts = []\n"));
    assert_eq!(e.0[0].key, "services.s.hosts");
    // Bad group names.
    let e = parse_err(&format!("{hosts}\"a b\" = [\"a\"]\n"));
    assert_eq!(e.0[0].key, "groups.a b");
}

// --- rollout -------------------------------------------------------------------------------

fn rollout(table: &str) -> Result<Rollout, ConfigErrors> {
    parse(
        &format!("[hosts.h]\naddress = \"x\"\n[services.s.rollout]\n{table}"),
        Path::new("conf/deploy.toml"),
        &env(),
    )
    .map(|c| c.services["s"].rollout.clone())
}

#[test]
fn rollout_defaults_and_values() {
    let d = parse_ok(SERVICE_OK).services["app"].rollout.clone();
    assert_eq!(d, Rollout::default());
    assert_eq!(
        (d.canary, d.batch, d.max_fail, d.pause),
        (0, Batch::All, 0, Duration::ZERO)
    );
    let r = rollout("canary = 1\nbatch = 2\nmax_fail = 1\npause = \"30s\"\n").unwrap();
    assert_eq!(
        r,
        Rollout {
            canary: 1,
            batch: Batch::Count(2),
            max_fail: 1,
            pause: Duration::from_secs(30)
        }
    );
    assert_eq!(
        rollout("batch = \"25%\"\n").unwrap().batch,
        Batch::Percent(25)
    );
    assert_eq!(
        rollout("batch = \"100%\"\n").unwrap().batch,
        Batch::Percent(100)
    );
    assert_eq!(rollout("pause = \"0s\"\n").unwrap().pause, Duration::ZERO);
}

#[test]
fn rollout_errors_name_line_and_key() {
    for (batch, says) in [
        ("0", "at least 1 host"),
        ("-2", "at least 1 host"),
        ("\"0%\"", "at least 1 host"),
        ("\"101%\"", "at most 100%"),
        ("\"half\"", "not a count or a percentage"),
        ("\"x%\"", "not a percentage"),
        ("true", "not a batch size"),
    ] {
        let e = rollout(&format!("canary = 1\nbatch = {batch}\n")).unwrap_err();
        assert_eq!(e.0[0].key, "services.s.rollout.batch", "{batch}: {e}");
        assert_eq!(e.0[0].line, Some(5), "{batch}: {e}");
        assert!(e.0[0].message.contains(says), "{batch}: {e}");
    }
    let e = rollout("pause = \"soon\"\n").unwrap_err();
    assert_eq!(
        (e.0[0].key.as_str(), e.0[0].line),
        ("services.s.rollout.pause", Some(4))
    );
    let e = rollout("canary = -1\n").unwrap_err();
    assert_eq!(
        (e.0[0].key.as_str(), e.0[0].line),
        ("services.s.rollout.canary", Some(4))
    );
    let e = rollout("batches = 2\n").unwrap_err();
    assert_eq!(e.0[0].line, Some(4), "{e}");
    assert!(e.to_string().contains("batches"), "{e}");
}

#[test]
fn batch_sizes() {
    assert_eq!(Batch::All.size(7), 7);
    assert_eq!(Batch::All.size(0), 1);
    assert_eq!(Batch::Count(2).size(7), 2);
    assert_eq!(Batch::Count(9).size(7), 7);
    assert_eq!(Batch::Percent(25).size(8), 2);
    assert_eq!(Batch::Percent(25).size(7), 2, "rounded up");
    assert_eq!(Batch::Percent(10).size(3), 1);
    assert_eq!(Batch::Percent(1).size(1), 1);
    assert_eq!(Batch::Percent(100).size(5), 5);
}

// --- health in release manifests ---------------------------------------------------------

#[test]
fn the_example_config_is_valid() {
    let c = parse(
        include_str!("../../deploy.example.toml"),
        Path::new("deploy.example.toml"),
        &env(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.services["demo"].hosts, ["local"]);
    assert_eq!(c.services["demo"].rollout, Rollout::default());
}

#[test]
fn health_round_trips_through_json() {
    let c = parse_ok(
        "[hosts.h]\naddress = \"x\"\n[services.s.health]\nhttp = \"http://127.0.0.1:8080/healthz\"\nunix_http = { socket = \"%t/s.sock\" }\ncommand = \"true\"\ntimeout = \"1m 30s\"\ninterval = \"250ms\"\n",
    );
    let health = c.services["s"].health.clone().unwrap();
    let json = serde_json::to_string(&health).unwrap();
    assert!(json.contains(r#""timeout":"1m 30s""#), "{json}");
    assert!(json.contains(r#""interval":"250ms""#), "{json}");
    let back: Health = serde_json::from_str(&json).unwrap();
    assert_eq!(back, health);
    let none = Health {
        http: None,
        unix_http: None,
        command: Some("x".into()),
        timeout: Duration::from_millis(1500),
        interval: Duration::from_secs(1),
    };
    let back: Health = serde_json::from_str(&serde_json::to_string(&none).unwrap()).unwrap();
    assert_eq!(back, none);
}

// --- `run` and `lint` ---

#[test]
fn run_table_generates_units_that_restart_and_may_be_named() {
    let c = parse_ok(
        "[hosts.h]\naddress = \"x\"\n[services.aptly]\nunits = [\"extra.service\"]\n[services.aptly.run]\ncommand = \"bin/aptly api serve\"\nsocket = \"%t/aptly.sock\"\ntcp_proxy = \"127.0.0.1:8080\"\n",
    );
    let s = &c.services["aptly"];
    assert_eq!(
        s.restart,
        ["extra.service", "aptly.service", "aptly-proxy.service"]
    );
    let run = s.run.as_ref().unwrap();
    assert_eq!(run.restart, "on-failure");
    assert!(!run.environment_file);
    assert_eq!(s.lint, crate::systemd::lint::Level::Warn);
    let c = parse_ok(
        "[hosts.h]\naddress = \"x\"\n[services.a]\nrestart = [\"a.service\"]\nlint = \"deny\"\n[services.a.run]\ncommand = \"/bin/sleep 100\"\n",
    );
    assert_eq!(c.services["a"].restart, ["a.service"]);
    assert_eq!(c.services["a"].lint, crate::systemd::lint::Level::Deny);
}

#[test]
fn run_table_errors_name_their_key() {
    let e = parse_err(
        "[hosts.h]\naddress = \"x\"\n[services.a]\nlint = \"strict\"\nunits = [\"a.service\"]\n[services.a.run]\ncommand = \"bin/a\"\ntcp_proxy = \"8080\"\nrestart = \"sometimes\"\n",
    );
    let keys: Vec<&str> = e.0.iter().map(|e| e.key.as_str()).collect();
    assert!(keys.contains(&"services.a.run.tcp_proxy"), "{e}");
    assert!(keys.contains(&"services.a.run.restart"), "{e}");
    assert!(keys.contains(&"services.a.lint"), "{e}");
    assert!(e.to_string().contains("also listed in `units`"), "{e}");
    let e = parse_err(
        "[hosts.h]\naddress = \"x\"\n[services.a.run]\ncommand = \"bin/a\"\nuser = \"root\"\n",
    );
    assert!(e.to_string().contains("user"), "{e}");
}
