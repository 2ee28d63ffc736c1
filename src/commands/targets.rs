//! Which hosts a command acts on, resolved once from the command line and the config:
//! `--host/-H NAME` (repeatable) narrows the hosts, service names narrow the services, and each
//! selected host gets the selected services that run there. Every command uses this.

use std::sync::Arc;

use crate::config::{Config, Host, Service};
use crate::error::{Error, Result};

/// One host and the selected services that run on it (in config order). The services are
/// shared between the targets, not copied per host (a service knows every host's variables:
/// a copy per host would grow with the square of the host count).
#[derive(Debug, Clone)]
pub struct Target {
    pub host: Host,
    pub services: Vec<Arc<Service>>,
}

/// The hosts named by `--host` (every host when none is given).
pub fn hosts(config: &Config, names: &[String]) -> Result<Vec<Host>> {
    if config.hosts.is_empty() && names.is_empty() {
        return Err(Error::Usage(format!(
            "no hosts in {}: add a [hosts.NAME] table",
            config.path.display()
        )));
    }
    Ok(config
        .select_hosts(names)
        .map_err(|e| Error::Usage(e.to_string()))?
        .into_iter()
        .cloned()
        .collect())
}

/// The services named (every service when none is given).
pub fn services(config: &Config, names: &[String]) -> Result<Vec<Service>> {
    if config.services.is_empty() && names.is_empty() {
        return Err(Error::Usage(format!(
            "no services in {}: add a [services.NAME] table",
            config.path.display()
        )));
    }
    Ok(config
        .select_services(names)
        .map_err(|e| Error::Usage(e.to_string()))?
        .into_iter()
        .cloned()
        .collect())
}

/// Selected hosts with the selected services that run on them; hosts that run none are left
/// out. An empty result is a usage error naming what was asked.
pub fn resolve(
    config: &Config,
    service_names: &[String],
    host_names: &[String],
) -> Result<Vec<Target>> {
    let services: Vec<Arc<Service>> = services(config, service_names)?
        .into_iter()
        .map(Arc::new)
        .collect();
    let hosts = hosts(config, host_names)?;
    // A host named by itself (not through a group) must run one of the services: a typo or a
    // wrong host is an error, not a silent no-op. Hosts of a group are narrowed silently.
    for name in host_names {
        if config.hosts.contains_key(name) && !services.iter().any(|s| s.hosts.contains(name)) {
            let names: Vec<&str> = services.iter().map(|s| s.name.as_str()).collect();
            return Err(Error::Usage(format!(
                "--host {name}: not a host of {} (the services there: {})",
                names.join(", "),
                {
                    let there: Vec<&str> = config
                        .services
                        .values()
                        .filter(|s| s.hosts.contains(name))
                        .map(|s| s.name.as_str())
                        .collect();
                    if there.is_empty() {
                        "none".to_string()
                    } else {
                        there.join(", ")
                    }
                }
            )));
        }
    }
    let targets: Vec<Target> = hosts
        .into_iter()
        .filter_map(|host| {
            let here: Vec<Arc<Service>> = services
                .iter()
                .filter(|s| s.hosts.contains(&host.name))
                .cloned()
                .collect();
            (!here.is_empty()).then_some(Target {
                host,
                services: here,
            })
        })
        .collect();
    if targets.is_empty() {
        let names: Vec<&str> = services.iter().map(|s| s.name.as_str()).collect();
        return Err(Error::Usage(format!(
            "nothing to do: {} run{} on none of the selected hosts ({})",
            names.join(", "),
            if names.len() == 1 { "s" } else { "" },
            if host_names.is_empty() {
                "every host".to_string()
            } else {
                format!("--host {}", host_names.join(", "))
            }
        )));
    }
    Ok(targets)
}

/// One service by name, and the selected hosts it runs on.
/// The service a single-service command acts on: the one named, or the config's only service.
pub fn the_service(config: &Config, named: Option<&str>) -> Result<String> {
    if let Some(n) = named {
        return Ok(n.to_string());
    }
    let names: Vec<&str> = config.services.keys().map(String::as_str).collect();
    match names.as_slice() {
        [one] => Ok(one.to_string()),
        [] => Err(Error::Usage(format!(
            "no services in {}: add a [services.NAME] table",
            config.path.display()
        ))),
        several => Err(Error::Usage(format!(
            "{} has {} services: name one ({})",
            config.path.display(),
            several.len(),
            several.join(", ")
        ))),
    }
}

pub fn service_hosts(
    config: &Config,
    service: &str,
    host_names: &[String],
) -> Result<(Service, Vec<Host>)> {
    let targets = resolve(config, &[service.to_string()], host_names)?;
    let service = Service::clone(&targets[0].services[0]);
    Ok((service, targets.into_iter().map(|t| t.host).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        let text = "[hosts.a]\naddress = \"a\"\n[hosts.b]\naddress = \"b\"\n[hosts.c]\naddress = \"c\"\n\
                    [services.x]\nhosts = [\"a\", \"b\"]\n[services.y]\nhosts = [\"b\"]\n";
        let env = crate::config::Env {
            home: Some("/home/u".into()),
            local_user: Some("u".into()),
            ssh_config: None,
        };
        crate::config::parse(text, std::path::Path::new("deploy.toml"), &env).unwrap()
    }

    #[test]
    fn hosts_get_the_services_that_run_there() {
        let c = config();
        let t = resolve(&c, &[], &[]).unwrap();
        let got: Vec<(String, Vec<String>)> = t
            .iter()
            .map(|t| {
                (
                    t.host.name.clone(),
                    t.services.iter().map(|s| s.name.clone()).collect(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("a".to_string(), vec!["x".to_string()]),
                ("b".to_string(), vec!["x".to_string(), "y".to_string()]),
            ]
        );
        let t = resolve(&c, &["y".into()], &["b".into()]).unwrap();
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].host.name, "b");
    }

    #[test]
    fn errors_name_what_to_fix() {
        let c = config();
        let e = resolve(&c, &["y".into()], &["a".into()]).unwrap_err();
        assert_eq!(e.exit_code(), crate::exit::Exit::Usage);
        assert!(
            e.to_string()
                .contains("--host a: not a host of y (the services there: x)"),
            "{e}"
        );
        let e = resolve(&c, &[], &["c".into()]).unwrap_err();
        assert!(
            e.to_string()
                .contains("--host c: not a host of x, y (the services there: none)"),
            "{e}"
        );
        let e = resolve(&c, &[], &["zz".into()]).unwrap_err();
        assert!(e.to_string().contains("zz"), "{e}");
        let e = resolve(&c, &["nope".into()], &[]).unwrap_err();
        assert!(e.to_string().contains("nope"), "{e}");
        let (s, hosts) = service_hosts(&c, "x", &[]).unwrap();
        assert_eq!(s.name, "x");
        assert_eq!(hosts.len(), 2);
    }
}
