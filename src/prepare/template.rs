//! Unit templates (`templates = true`): unit files rendered per host with minijinja.
//!
//! Variables: `host` (`name`, `address`, `user`, `vars` from `[hosts.NAME.vars]`), `service`
//! (`name`), `release` (`id`, `dir`: the release directory relative to the home directory) and
//! `env` (the names of the service's env variables, never their values). Undefined names are
//! errors (strict), found before any connection: every unit is rendered for every host of the
//! service when the release is prepared, and an error names the unit file, its line and the
//! host. The rendered units are what the plan compares with the installed ones, what the
//! release keeps and what is installed.

use minijinja::{Environment, UndefinedBehavior};

use crate::config::{InstanceCount, Service};
use crate::error::{Error, Result};
use crate::plan::LocalRelease;
use crate::release::Paths;

/// A release id used to check templates before the real one is known.
const CHECK_ID: &str = "00000000T000000Z-00000000";

fn context(
    service: &Service,
    host: &serde_json::Value,
    release: &str,
    env: &[String],
) -> serde_json::Value {
    serde_json::json!({
        "host": host,
        "service": { "name": service.name },
        "release": { "id": release, "dir": Paths::new(&service.name).release(release) },
        "env": env,
    })
}

/// Render one template text. Err: `LINE: message`.
pub fn render_text(
    name: &str,
    source: &str,
    context: &serde_json::Value,
) -> std::result::Result<String, (Option<usize>, String)> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_keep_trailing_newline(true);
    let t = env
        .template_from_named_str(name, source)
        .map_err(|e| (e.line(), describe(&e)))?;
    t.render(context).map_err(|e| (e.line(), describe(&e)))
}

fn describe(e: &minijinja::Error) -> String {
    match e.detail() {
        Some(d) => format!("{} ({d})", e.kind()),
        None => e.kind().to_string(),
    }
}

pub use crate::systemd::template_of;

/// The instances of template units `host` runs: `app@1.service` .. `app@N.service`.
pub fn instances(service: &Service, host: &str) -> Result<Vec<String>> {
    let host_context = service.host_context.get(host).cloned().unwrap_or_default();
    let mut out = Vec::new();
    for (unit, count) in &service.instances {
        let n = match count {
            InstanceCount::Fixed(n) => *n,
            InstanceCount::PerHost(t) => {
                let ctx = context(service, &host_context, CHECK_ID, &[]);
                let text = render_text(unit, t, &ctx).map_err(|(_, message)| {
                    Error::Usage(format!(
                        "service {}: instances.\"{unit}\" for host {host}: {message}",
                        service.name
                    ))
                })?;
                match text.trim().parse::<u32>() {
                    Ok(n) if n <= 100 => n,
                    _ => {
                        return Err(Error::Usage(format!(
                            "service {}: instances.\"{unit}\" for host {host} gives `{}`, not a number of instances (0 to 100)",
                            service.name,
                            crate::human::sanitize(text.trim())
                        )));
                    }
                }
            }
        };
        let (prefix, suffix) = unit.split_once("@.").expect("validated template unit");
        out.extend((1..=n).map(|i| format!("{prefix}@{i}.{suffix}")));
    }
    Ok(out)
}

/// The units `ferry status` looks at on `host`: a template unit with `[instances]` is
/// replaced by its instances there.
pub fn status_units(service: &Service, host: &str) -> Vec<String> {
    let all = instances(service, host).unwrap_or_default();
    let mut out = Vec::new();
    // Blue/green: the front and both colours (status shows the live one).
    let switch_units = service.switch.as_ref().map(|_| {
        let name = &service.name;
        let mut v = vec![format!("{name}-front.socket")];
        v.extend(
            crate::systemd::switch::Colour::BOTH.map(|c| crate::systemd::switch::instance(name, c)),
        );
        v
    });
    let template = crate::systemd::switch::template(&service.name);
    for u in &service.units {
        if switch_units.is_some() && u.name == template {
            continue;
        }
        if service.instances.contains_key(&u.name) {
            out.extend(all.iter().filter(|i| template_of(i) == u.name).cloned());
        } else {
            out.push(u.name.clone());
        }
    }
    out.extend(switch_units.unwrap_or_default());
    out
}

/// The error of a template that does not render: where, for which host, and what it may use.
fn render_error(
    source: &str,
    line: Option<usize>,
    what: &str,
    service: &Service,
    host: &str,
    message: &str,
) -> Error {
    let at = line.map(|l| format!(":{l}")).unwrap_or_default();
    Error::Usage(format!(
        "{source}{at}: {what} of service {} for host {host}: {message}; the variables are host.name, host.address, host.user, host.vars.*, service.name, release.id, release.dir, env",
        service.name
    ))
}

/// The release rendered for `host`: its units when the service has `templates = true`, and
/// its `template = true` files (whose content is the template text until then). Hashes and
/// sizes follow the rendered content.
fn render(
    service: &Service,
    local: &LocalRelease,
    host: &str,
    release: &str,
) -> Result<LocalRelease> {
    let host_context = service.host_context.get(host).cloned().unwrap_or_default();
    let names = local
        .env
        .as_ref()
        .map(|e| e.names.clone())
        .unwrap_or_default();
    let ctx = context(service, &host_context, release, &names);
    let mut out = local.clone();
    if service.templates {
        for u in &mut out.units {
            let text = String::from_utf8_lossy(&u.content).into_owned();
            let rendered = render_text(&u.name, &text, &ctx).map_err(|(line, message)| {
                let source = service
                    .units
                    .iter()
                    .find(|f| f.name == u.name)
                    .map(|f| f.source.display().to_string())
                    .unwrap_or_else(|| u.name.clone());
                render_error(&source, line, "unit template", service, host, &message)
            })?;
            u.sha256 = crate::digest::sha256_hex(rendered.as_bytes());
            u.content = rendered.into_bytes();
        }
    }
    for f in &mut out.files {
        let Some(text) = &f.content else { continue };
        let text = String::from_utf8_lossy(text).into_owned();
        let rendered = render_text(&f.dest, &text, &ctx).map_err(|(line, message)| {
            let what = format!("file template (dest {})", f.dest);
            render_error(
                &f.source.display().to_string(),
                line,
                &what,
                service,
                host,
                &message,
            )
        })?;
        f.sha256 = crate::digest::sha256_hex(rendered.as_bytes());
        f.size = rendered.len() as u64;
        f.content = Some(rendered.into_bytes());
    }
    Ok(out)
}

/// Render every unit, `template = true` file and instance count for every host of the service
/// (a check before any connection).
pub fn check(service: &Service, local: &LocalRelease) -> Result<()> {
    for host in service.host_context.keys() {
        instances(service, host)?;
        render(service, local, host, CHECK_ID)?;
    }
    Ok(())
}

/// Do the units or `template = true` files rendered for `host` depend on the release's id
/// (`release.id`, `release.dir`)? Rendered with two ids and compared.
pub fn uses_release_id(service: &Service, local: &LocalRelease, host: &str) -> Result<bool> {
    if !service.templates && local.files.iter().all(|f| f.content.is_none()) {
        return Ok(false);
    }
    let a = render(service, local, host, CHECK_ID)?;
    let b = render(service, local, host, "99991231T235959Z-ffffffff")?;
    Ok(a.units
        .iter()
        .zip(&b.units)
        .any(|(x, y)| x.content != y.content)
        || a.files
            .iter()
            .zip(&b.files)
            .any(|(x, y)| x.content != y.content))
}

/// The release as it is for `host`: units and `template = true` files rendered, and the
/// instances it runs there.
pub fn for_host(
    service: &Service,
    local: &LocalRelease,
    host: &str,
    release: &str,
) -> Result<LocalRelease> {
    let mut out = render(service, local, host, release)?;
    out.instances = instances(service, host)?;
    Ok(out)
}

/// The changed lines between two texts (`-old`, `+new`), in order: a line diff by longest
/// common subsequence (unit files are short).
pub fn diff(old: &str, new: &str) -> Vec<String> {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    let (n, m) = (a.len(), b.len());
    let mut lcs = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            i += 1;
            j += 1;
        } else if i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1]) {
            out.push(format!("-{}", a[i]));
            i += 1;
        } else {
            out.push(format!("+{}", b[j]));
            j += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `template = true` file is rendered per host (size and hash follow the rendered
    /// content); a plain file is left alone; an undefined name names the file, line and host.
    #[test]
    fn template_files_are_rendered_per_host() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("deploy.toml");
        std::fs::write(dir.path().join("conf.txt"), "port = {{ host.vars.port }}\n").unwrap();
        std::fs::write(dir.path().join("plain.txt"), "{{ not rendered }}\n").unwrap();
        std::fs::write(
            &path,
            "[hosts.a]\naddress = \"a\"\nuser = \"u\"\n[hosts.a.vars]\nport = 8081\n\
             [hosts.b]\naddress = \"b\"\nuser = \"u\"\n[hosts.b.vars]\nport = 8082\n\
             [services.s]\nhosts = [\"a\", \"b\"]\n\
             [[services.s.files]]\nsource = \"conf.txt\"\ndest = \"etc/conf\"\ntemplate = true\n\
             [[services.s.files]]\nsource = \"plain.txt\"\ndest = \"plain\"\n",
        )
        .unwrap();
        let config = crate::config::load(&path).unwrap_or_else(|e| panic!("{e}"));
        let service = &config.services["s"];
        assert!(service.files[0].template && !service.files[1].template);
        let file = |dest: &str, content: Option<&str>| crate::plan::LocalFile {
            source: dir.path().join(dest),
            dest: dest.into(),
            mode: 0o644,
            size: 0,
            sha256: String::new(),
            content: content.map(|c| c.as_bytes().to_vec()),
        };
        let local = LocalRelease {
            files: vec![
                file("etc/conf", Some("port = {{ host.vars.port }}\n")),
                file("plain", None),
            ],
            units: vec![],
            env: None,
            instances: vec![],
            binaries: vec![],
        };
        check(service, &local).unwrap();
        for (host, want) in [("a", "port = 8081\n"), ("b", "port = 8082\n")] {
            let r = for_host(service, &local, host, "R").unwrap();
            let f = &r.files[0];
            assert_eq!(f.content.as_deref(), Some(want.as_bytes()));
            assert_eq!(f.size, want.len() as u64);
            assert_eq!(f.sha256, crate::digest::sha256_hex(want.as_bytes()));
            assert_eq!(r.files[1], local.files[1]);
        }
        let bad = LocalRelease {
            files: vec![file("etc/conf", Some("x\n{{ host.vars.nope }}\n"))],
            ..local.clone()
        };
        let e = check(service, &bad).unwrap_err().to_string();
        assert!(
            e.contains("etc/conf:2:") && e.contains("undefined") && e.contains("for host a"),
            "{e}"
        );
    }

    #[test]
    fn renders_variables_and_refuses_undefined_names() {
        let ctx = serde_json::json!({
            "host": { "name": "web1", "vars": { "port": 8081 } },
            "service": { "name": "api" },
            "release": { "id": "R", "dir": "d" },
            "env": ["A"],
        });
        let out = render_text(
            "a.service",
            "[Service]\nExecStart=x --port {{ host.vars.port }} {{ service.name }}\n",
            &ctx,
        )
        .unwrap();
        assert_eq!(out, "[Service]\nExecStart=x --port 8081 api\n");
        let (line, message) = render_text(
            "a.service",
            "[Unit]\n\nExecStart=x {{ host.vars.nope }}\n",
            &ctx,
        )
        .unwrap_err();
        assert_eq!(line, Some(3));
        assert!(message.contains("undefined"), "{message}");
        assert_eq!(
            diff("a\nport 1\nc\n", "a\nport 2\nc\nd\n"),
            vec!["-port 1", "+port 2", "+d"]
        );
        // systemd's own specifiers pass through.
        assert_eq!(
            render_text("a", "%h/%t {{ env[0] }}", &ctx).unwrap(),
            "%h/%t A"
        );
    }
}
