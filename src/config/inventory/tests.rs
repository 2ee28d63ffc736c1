//! The inventory's output shapes, the checks of its entries and their merge with `[hosts]`.

use std::path::{Path, PathBuf};

use super::*;

fn env() -> Env {
    Env {
        home: Some(PathBuf::from("/home/me")),
        local_user: Some("me".into()),
        ssh_config: None,
    }
}

fn load(toml: &str, output: &str) -> Result<Config, ConfigErrors> {
    let path = Path::new("deploy.toml");
    let doc = Doc::parse(toml, path)?;
    super::super::validate(&doc, path, &env(), Source::Output(output.into()))
}

const INV: &str = "[inventory]\ncommand = \"./hosts\"\n";

#[test]
fn the_shapes_accepted_give_the_same_hosts() {
    let list = r#"[{"name": "a", "address": "10.0.0.1", "port": 2200, "groups": ["web"]}]"#;
    let wrapped =
        r#"{"hosts": [{"name": "a", "address": "10.0.0.1", "port": 2200, "groups": ["web"]}]}"#;
    let by_name = r#"{"hosts": {"a": {"address": "10.0.0.1", "port": "2200", "groups": ["web"]}}}"#;
    let terraform = r#"{"other": {"value": 1, "type": "number", "sensitive": false},
        "hosts": {"sensitive": false, "type": ["list", ["object", {}]],
                  "value": [{"name": "a", "address": "10.0.0.1", "port": 2200, "groups": ["web"], "user": null}]}}"#;
    let first = entries(list).unwrap();
    assert_eq!(first[0].name, "a");
    assert_eq!(first[0].port, Some(2200));
    for shape in [wrapped, by_name, terraform] {
        assert_eq!(entries(shape).unwrap(), first, "{shape}");
    }
}

#[test]
fn every_bad_entry_is_named_with_its_field() {
    let out = r#"[{"name": "ok", "address": "h1"},
        {"name": "bad name", "address": "h 2", "port": 70000, "user": "-x", "groups": ["g!"], "vars": 3, "colour": 1},
        {"address": "h3"},
        {"name": "ok", "address": "h4"}]"#;
    let errors = entries(out).unwrap_err();
    let all = errors.join("\n");
    for want in [
        "entry 2 (`bad name`): `name`: host names may use",
        "entry 2 (`bad name`): `address`: \"h 2\" is not a host name",
        "entry 2 (`bad name`): `port`: 70000 is not a port",
        "entry 2 (`bad name`): `user`: \"-x\" is not a valid user name",
        "entry 2 (`bad name`): `groups`: \"g!\" is not a group name",
        "entry 2 (`bad name`): `vars`: must be an object",
        "entry 2 (`bad name`): `colour`: unknown field",
        "entry 3: has no `name`",
        "lists host `ok` twice (again at entry 4)",
    ] {
        assert!(all.contains(want), "missing {want:?} in:\n{all}");
    }
}

#[test]
fn output_of_another_shape_says_which_shape_is_expected() {
    for (out, want) in [
        ("not json", "printed no valid JSON"),
        ("{\"host\": []}", "without `hosts`"),
        ("{\"hosts\": [], \"x\": 1}", "unknown top-level key `x`"),
        ("{\"hosts\": 3}", "neither an array nor an object"),
        ("3", "another shape"),
    ] {
        let e = entries(out).unwrap_err().join("\n");
        assert!(e.contains(want), "{out}: {e}");
    }
}

#[test]
fn inventory_hosts_join_hosts_groups_and_services() {
    let toml = format!(
        "[defaults]\nuser = \"deploy\"\n{INV}[hosts.own]\naddress = \"own.example\"\n[groups]\nweb = [\"own\"]\n\
         [services.s]\nhosts = [\"web\"]\n[services.t]\nhosts = [\"db\"]\n"
    );
    let out = r#"[{"name": "w1", "address": "10.0.0.1", "groups": ["web"], "vars": {"port": 8081}},
                  {"name": "d1", "address": "10.0.0.2", "user": "pg", "port": 2222, "groups": ["db"]}]"#;
    let c = load(&toml, out).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.hosts["w1"].user, "deploy", "[defaults] applies");
    assert_eq!(
        (c.hosts["d1"].user.as_str(), c.hosts["d1"].port),
        ("pg", 2222)
    );
    let mut web = c.services["s"].hosts.clone();
    web.sort();
    assert_eq!(web, ["own", "w1"]);
    assert_eq!(c.services["t"].hosts, ["d1"]);
    assert_eq!(c.services["s"].host_context["w1"]["vars"]["port"], 8081);
}

#[test]
fn a_host_in_both_is_refused_at_its_table() {
    let toml = format!("{INV}[hosts.a]\naddress = \"x\"\n");
    let e = load(&toml, r#"[{"name": "a", "address": "y"}]"#)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("deploy.toml:3: `hosts.a`: host `a` is also listed by the inventory command `./hosts` (entry 1)"),
        "{e}"
    );
}

#[test]
fn a_bad_entry_names_the_command_and_the_entry_at_its_line() {
    let toml = format!("[hosts.a]\naddress = \"x\"\n{INV}");
    let e = load(&toml, r#"[{"name": "b", "address": "y", "port": 0}]"#)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("deploy.toml:4: `inventory.command`: the inventory command `./hosts` entry 1 (`b`): `port`: 0 is not a port"),
        "{e}"
    );
}

#[test]
fn a_later_error_about_an_inventory_group_points_at_the_command() {
    // A group named like a host: found by the [groups] check, reported at the command.
    let toml = format!("{INV}[hosts.a]\naddress = \"x\"\n");
    let e = load(&toml, r#"[{"name": "b", "address": "y", "groups": ["a"]}]"#)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("deploy.toml:2: `inventory.command`: group `a` of the inventory command `./hosts` (`groups.a`): `a` is both a host and a group"),
        "{e}"
    );
}

#[test]
fn parse_does_not_run_the_command() {
    let e = parse(INV, Path::new("deploy.toml"), &env())
        .unwrap_err()
        .to_string();
    assert!(e.contains("is not run by config::parse"), "{e}");
}

#[test]
fn a_failing_command_shows_its_status_and_stderr() {
    let e = run("echo one >&2; echo two >&2; exit 3", Path::new(".")).unwrap_err();
    assert!(e.contains("failed (exit status 3"), "{e}");
    assert!(e.contains("its stderr: one | two"), "{e}");
    assert_eq!(run("printf '[]'", Path::new(".")).as_deref(), Ok("[]"));
}
