//! `ferry releases [SERVICE...]`: the releases of each service on each host, with what the
//! history kept on the host says about them, and the history itself; a host that could not be
//! connected to is said once, with the way it failed, after them (a `host` event in JSON).

use std::sync::Arc;

use crate::cli::ReleasesArgs;
use crate::commands::targets::{self, Target};
use crate::commands::{Context, fanout};
use crate::error::{Error, Exit, Result};
use crate::plan::RemoteState;
use crate::release::{Action, Manifests};
use crate::report::releases::{HistoryEvent, ReleaseEvent, ReleasesTable};
use crate::report::status::HostError;
use crate::report::{Format, Reporter};
use crate::session::Session;

/// The releases and history of a service on one host, as events.
pub fn release_events(
    host: &str,
    service: &str,
    remote: &RemoteState,
    manifests: Manifests,
    sizes: &[(String, u64)],
) -> Vec<ReleaseEvent> {
    manifests
        .into_iter()
        .map(|(id, m)| {
            let outcome = remote
                .history
                .iter()
                .rev()
                .find(|r| {
                    r.release == id
                        || (r.action == Action::Revert
                            && r.previous.as_deref() == Some(id.as_str()))
                })
                .map(|r| {
                    if r.release == id {
                        format!("{} {}", r.action, r.outcome)
                    } else {
                        // The self-revert away from it: its deploy was never confirmed.
                        format!("unverified ({} {})", r.action, r.outcome)
                    }
                });
            ReleaseEvent {
                kind: "release",
                host: host.to_string(),
                service: service.to_string(),
                current: remote.current.as_deref() == Some(id.as_str()),
                staged: remote.staged.as_deref() == Some(id.as_str())
                    && remote.current.as_deref() != Some(id.as_str()),
                created: m.as_ref().map(|m| m.created.clone()),
                deployed_by: m.as_ref().map(|m| m.deployed_by.clone()),
                git_commit: m.as_ref().and_then(|m| m.git_commit.clone()),
                size: sizes.iter().find(|(i, _)| *i == id).map(|(_, k)| k * 1024),
                outcome,
                id,
            }
        })
        .collect()
}

/// What one host said (or why it could not).
type HostReleases = std::result::Result<Vec<(Vec<ReleaseEvent>, Vec<HistoryEvent>)>, Error>;

async fn host_releases(target: &Target, reporter: &Arc<Reporter>) -> HostReleases {
    let session = Session::open(&target.host, reporter).await?;
    let mut out = Vec::new();
    for service in &target.services {
        let ss = session.service(service);
        let remote = ss.probe(&[], crate::plan::ProbeLock::Ignore).await?;
        let (manifests, sizes) = ss.manifests().await?;
        if manifests.is_empty() {
            ss.warn(&format!("no releases of {} on this host", service.name));
        }
        if let Some(note) = remote.revert_notice(&service.name) {
            ss.warn(&note);
        }
        let history = remote
            .history
            .iter()
            .map(|r| HistoryEvent {
                kind: "history",
                host: target.host.name.clone(),
                service: service.name.clone(),
                record: r.clone(),
            })
            .collect();
        out.push((
            release_events(&target.host.name, &service.name, &remote, manifests, &sizes),
            history,
        ));
    }
    session.close().await;
    Ok(out)
}

/// `ferry releases`.
pub async fn run(args: ReleasesArgs, ctx: &Context) -> Result<Exit> {
    let targets = targets::resolve(&ctx.config_for_hosts()?, &args.services, &ctx.hosts)?;
    let reporter = &ctx.reporter;
    let parallel = targets.len();
    let names: Vec<String> = targets.iter().map(|t| t.host.name.clone()).collect();
    let r = reporter.clone();
    let results = fanout::each(targets, parallel, move |t| {
        let r = r.clone();
        async move { host_releases(&t, &r).await }
    })
    .await;
    let mut code = Exit::Ok;
    let mut table = ReleasesTable {
        releases: Vec::new(),
        history: Vec::new(),
    };
    // Hosts not connected to are said after the table, as `ferry status` does.
    let mut not_connected = Vec::new();
    for (result, host) in results.into_iter().zip(names) {
        match result {
            Ok(per_service) => {
                for (releases, history) in per_service {
                    table.releases.extend(releases);
                    table.history.extend(history);
                }
            }
            Err(e) => {
                code = Exit::combine([code, e.exit_code()]);
                match e.connect_failure() {
                    Some(_) => not_connected.push(HostError::new(&host, &e)),
                    None => reporter.error(&e),
                }
            }
        }
    }
    match reporter.format {
        Format::Json => {
            for e in &table.releases {
                reporter.emit(e);
            }
            for e in &table.history {
                reporter.emit(e);
            }
        }
        Format::Human => reporter.emit(&table),
    }
    for e in &not_connected {
        reporter.emit(e);
    }
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_manifest_lines() {
        let m = crate::release::Manifest {
            id: "20261124T120000Z-00000001".into(),
            service: "s".into(),
            created: "c".into(),
            deployed_by: "me@box".into(),
            git_commit: Some("abc".into()),
            files: vec![],
            units: vec![],
            restart: vec![],
            enable: vec![],
            start: vec![],
            judging: None,
            switch: None,
            migrate: None,
        };
        let text = format!(
            "manifest=20261124T120000Z-00000001 {}\nsize=20261124T120000Z-00000001 12\nmanifest=20261124T130000Z-00000002\nmanifest=junk {{}}\n",
            serde_json::to_string(&m).unwrap()
        );
        let (ms, sizes) = crate::release::parse_manifests(&text);
        assert_eq!(ms.len(), 2);
        assert_eq!(ms[0].1.as_ref(), Some(&m));
        assert_eq!(ms[1].1, None);
        assert_eq!(sizes, vec![("20261124T120000Z-00000001".to_string(), 12)]);
        let remote = RemoteState {
            current: Some(m.id.clone()),
            ..Default::default()
        };
        let ev = release_events("h", "s", &remote, ms, &sizes);
        assert!(ev[0].current && !ev[1].current);
        assert_eq!(ev[0].size, Some(12 * 1024));
        assert_eq!(ev[0].git_commit.as_deref(), Some("abc"));
    }
}
