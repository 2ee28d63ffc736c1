//! Config tests of `after` (services in order) and of the migration's host (`migrate_on`).

use std::path::Path;

use super::*;

fn env() -> Env {
    Env {
        home: Some("/home/me".into()),
        local_user: Some("me".into()),
        ssh_config: None,
    }
}

fn parse_ok(text: &str) -> Config {
    parse(text, Path::new("conf/deploy.toml"), &env()).unwrap_or_else(|e| panic!("{e}"))
}

fn parse_err(text: &str) -> ConfigErrors {
    parse(text, Path::new("conf/deploy.toml"), &env()).expect_err("config should be refused")
}

/// The one error at `key`: its line and message.
fn error_at(e: &ConfigErrors, key: &str) -> (Option<usize>, String) {
    let found =
        e.0.iter()
            .find(|x| x.key == key)
            .unwrap_or_else(|| panic!("no error at {key} in:\n{e}"));
    (found.line, found.message.clone())
}

const HOSTS: &str =
    "[hosts.a]\naddress = \"a\"\n[hosts.b]\naddress = \"b\"\n[hosts.c]\naddress = \"c\"\n";

#[test]
fn after_orders_the_services_of_a_deploy() {
    let c = parse_ok(&format!(
        "{HOSTS}[services.web]\nafter = [\"api\"]\n[services.api]\nafter = [\"db\"]\n[services.db]\n[services.cache]\n"
    ));
    assert_eq!(c.services["web"].after, ["api"]);
    let all: Vec<String> = ["api", "cache", "db", "web"].map(String::from).into();
    assert_eq!(c.in_order(&all), ["cache", "db", "api", "web"]);
    // Only among the services deployed: web alone is just web.
    assert_eq!(c.in_order(&["web".to_string()]), ["web"]);
    assert!(c.comes_after("web", "db"));
    assert!(!c.comes_after("db", "web"));
    assert!(!c.comes_after("cache", "db"));
}

#[test]
fn after_naming_an_unknown_service_or_itself_is_refused_with_its_line() {
    let e = parse_err(&format!(
        "{HOSTS}[services.api]\nafter = [\"db\", \"dbb\"]\n[services.db]\n[services.solo]\nafter = [\"solo\"]\n"
    ));
    let (line, message) = error_at(&e, "services.api.after[1]");
    assert_eq!(line, Some(8));
    assert!(
        message.contains("no service `dbb`") && message.contains("api, db, solo"),
        "{message}"
    );
    let (line, message) = error_at(&e, "services.solo.after[0]");
    assert_eq!(line, Some(11));
    assert!(message.contains("cannot come after itself"), "{message}");
    assert!(e.to_string().contains("conf/deploy.toml:8"), "{e}");
}

#[test]
fn after_going_round_in_a_circle_is_refused_once_naming_it() {
    let e = parse_err(&format!(
        "{HOSTS}[services.a]\nafter = [\"b\"]\n[services.b]\nafter = [\"c\"]\n[services.c]\nafter = [\"a\"]\n[services.d]\nafter = [\"a\"]\n"
    ));
    let (line, message) = error_at(&e, "services.a.after");
    assert_eq!(line, Some(8));
    assert!(
        message.contains("after goes round in a circle: a -> b -> c -> a"),
        "{message}"
    );
    // The same circle is not reported again from b or c; d only leads into it.
    assert_eq!(e.0.len(), 1, "{e}");
    let e = parse_err(&format!(
        "{HOSTS}[services.x]\nafter = [\"y\"]\n[services.y]\nafter = [\"x\"]\n"
    ));
    let (_, message) = error_at(&e, "services.x.after");
    assert!(message.contains("x -> y -> x"), "{message}");
}

#[test]
fn migrate_on_names_one_of_the_services_hosts() {
    let c = parse_ok(&format!(
        "{HOSTS}[services.api]\nhosts = [\"a\", \"b\"]\n[services.api.hooks]\nmigrate = \"bin/api migrate\"\nmigrate_on = \"b\"\n"
    ));
    let h = &c.services["api"].hooks;
    assert_eq!(h.migrate.as_deref(), Some("bin/api migrate"));
    assert_eq!(h.migrate_on.as_deref(), Some("b"));

    let e = parse_err(&format!(
        "{HOSTS}[services.api]\nhosts = [\"a\", \"b\"]\n[services.api.hooks]\nmigrate = \"m\"\nmigrate_on = \"nope\"\n"
    ));
    let (line, message) = error_at(&e, "services.api.hooks.migrate_on");
    assert_eq!(line, Some(11));
    assert!(message.contains("host `nope` is not defined"), "{message}");

    let e = parse_err(&format!(
        "{HOSTS}[services.api]\nhosts = [\"a\", \"b\"]\n[services.api.hooks]\nmigrate = \"m\"\nmigrate_on = \"c\"\n"
    ));
    let (line, message) = error_at(&e, "services.api.hooks.migrate_on");
    assert_eq!(line, Some(11));
    assert!(
        message.contains("`c` is not one of the hosts of api (a, b)"),
        "{message}"
    );

    let e = parse_err(&format!(
        "{HOSTS}[services.api.hooks]\nmigrate_on = \"a\"\n"
    ));
    let (_, message) = error_at(&e, "services.api.hooks.migrate_on");
    assert!(message.contains("no `migrate` command"), "{message}");
    let e = parse_err(&format!("{HOSTS}[services.api.hooks]\nmigrate = \" \"\n"));
    let (_, message) = error_at(&e, "services.api.hooks.migrate");
    assert!(message.contains("must not be empty"), "{message}");
}
