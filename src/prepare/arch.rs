//! The binaries of a release against the `arch` deploy.toml gives its hosts: a file built for
//! another architecture is a config error, found before any connection (exit 2). Only the
//! ELF headers of the files are read. Hosts without `arch` are judged once connected, by the
//! probe's `uname -m` (see [`crate::elf`]).

use crate::config::{ConfigError, ConfigErrors, Host, Service};
use crate::error::{Error, Result};

/// Every binary of `service` that cannot run on the `arch` of one of `hosts`, as config errors
/// located at that `arch` key.
pub fn check(service: &Service, hosts: &[Host]) -> Result<()> {
    let with_arch: Vec<(&Host, &crate::config::HostArch)> = hosts
        .iter()
        .filter_map(|h| h.arch.as_ref().map(|a| (h, a)))
        .collect();
    if with_arch.is_empty() {
        return Ok(());
    }
    let mut errors = Vec::new();
    for (i, f) in service.files.iter().enumerate() {
        if f.template {
            continue;
        }
        let needs = crate::elf::read(&f.source).map_err(|e| {
            Error::Usage(format!(
                "service {}: cannot read {}: {e}",
                service.name,
                f.source.display()
            ))
        })?;
        let Some(needs) = needs else { continue };
        for (host, arch) in &with_arch {
            if needs.machine.runs_on(&arch.name) != Some(false) {
                continue;
            }
            let target = crate::elf::rust_target(&arch.name)
                .map(|t| format!(" (e.g. `cargo build --release --target {t}`)"))
                .unwrap_or_default();
            errors.push(ConfigError {
                file: arch.file.clone(),
                line: arch.line,
                key: format!("hosts.{}.arch", host.name),
                message: format!(
                    "host {} is {}, and services.{}.files[{i}] ({} -> {}) is an ELF {} for {}: build it for that target{target}, or correct `arch`",
                    host.name,
                    arch.name,
                    service.name,
                    f.source.display(),
                    f.dest,
                    needs.kind,
                    needs.machine
                ),
            });
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Error::Config(ConfigErrors(errors)))
    }
}
