//! `ferry rollback` and `ferry releases`: going back to a release that is still on the host,
//! and listing releases with the deploy history kept on the host.

use std::sync::Arc;

use serde::Serialize;

use crate::config::{Config, Host, Service};
use crate::deploy::{self, HostResult, Job, Options};
use crate::error::{Error, Result, exit};
use crate::lock;
use crate::plan::{self, Activation};
use crate::release::{self, HistoryRecord, Manifest, Paths};
use crate::report::{Human, Reporter, Style, sanitize};
use crate::shell::quote;
use crate::ssh;

/// Script printing `manifest=ID JSON` for every release directory, plus the remote state.
fn manifests_script(paths: &Paths) -> String {
    format!(
        "cd \"$HOME\" || exit 1\nS={}\nfor d in \"$S\"/releases/*/; do d=${{d%/}}; id=${{d##*/}}; \
         if [ -f \"$d/{meta}/manifest.json\" ]; then echo \"manifest=$id $(tr -d '\\n' < \"$d/{meta}/manifest.json\")\"; \
         else echo \"manifest=$id\"; fi; \
         echo \"size=$id $(du -sk \"$d\" 2>/dev/null | cut -f1)\"; done; exit 0\n",
        quote(&paths.dir()),
        meta = release::META_DIR,
    )
}

/// Release ids with their manifest (None for a release without one).
pub type Manifests = Vec<(String, Option<Manifest>)>;

/// Manifests by release id, and sizes on disk in KiB.
pub fn parse_manifests(text: &str) -> (Manifests, Vec<(String, u64)>) {
    let mut manifests = Vec::new();
    let mut sizes = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("manifest=") {
            let (id, json) = rest.split_once(' ').unwrap_or((rest, ""));
            if release::is_release_id(id) {
                manifests.push((id.to_string(), serde_json::from_str(json).ok()));
            }
        } else if let Some(rest) = line.strip_prefix("size=")
            && let Some((id, kib)) = rest.split_once(' ')
            && let Ok(k) = kib.trim().parse()
        {
            sizes.push((id.to_string(), k));
        }
    }
    (manifests, sizes)
}

async fn rollback_host(
    host: &Host,
    service: &Service,
    to: Option<&str>,
    origin: &plan::Origin,
    opts: &Options,
    reporter: &Reporter,
) -> HostResult {
    let fail = |result: &str, reason: String, code: i32| HostResult {
        kind: "result",
        host: host.name.clone(),
        service: service.name.clone(),
        result: result.into(),
        release: None,
        previous: None,
        reason: Some(reason),
        code,
    };
    let conn = match ssh::connect(host).await {
        Ok(c) => c,
        Err(e) => {
            reporter.error(&e);
            return fail("unreachable", e.to_string(), e.exit_code());
        }
    };
    let job = Job::new(&conn, host, service, reporter);
    let result = async {
        let holder = format!(
            "{} (rollback, since {})",
            origin.by,
            release::now_rfc3339()
        );
        let lock = lock::acquire(&conn, &job.paths, opts.lock_wait, &holder, |h| {
            reporter.progress(Some(&host.name), &format!("waiting for the lock held by {h}"))
        })
        .await?;
        let r = async {
            let remote = job.remote_state(&[]).await?;
            let out = conn.run(&manifests_script(&job.paths)).await?;
            let (manifests, _) = parse_manifests(&out);
            let ids: Vec<String> = manifests.iter().map(|(id, _)| id.clone()).collect();
            let target = match to {
                Some(t) => {
                    if !ids.iter().any(|i| i == t) {
                        return Err(Error::Failed {
                            message: format!(
                                "{}: release {t} is not on the host; `ferry releases {}` lists them",
                                host.name, service.name
                            ),
                            code: exit::FAILED,
                        });
                    }
                    t.to_string()
                }
                None => release::rollback_target(&ids, remote.current.as_deref(), &remote.history)
                    .ok_or_else(|| Error::Failed {
                        message: format!(
                            "{}: no release to roll back to (only {} on the host)",
                            host.name,
                            remote.current.as_deref().unwrap_or("none")
                        ),
                        code: exit::FAILED,
                    })?,
            };
            if remote.current.as_deref() == Some(target.as_str()) {
                // Asking for the current release confirms it: a pending self-revert would
                // otherwise take the host away from it.
                let reason = if remote.revert_pending {
                    job.cancel_pending_revert().await?;
                    "already current; its pending self-revert is cancelled (confirmed)"
                } else {
                    "already current; nothing to do"
                };
                return Ok(HostResult {
                    kind: "result",
                    host: host.name.clone(),
                    service: service.name.clone(),
                    result: "ok".into(),
                    release: Some(target.clone()),
                    previous: remote.current.clone(),
                    reason: Some(reason.into()),
                    code: exit::OK,
                });
            }
            let Some(Some(manifest)) = manifests.into_iter().find(|(i, _)| *i == target).map(|(_, m)| m) else {
                return Err(Error::Failed {
                    message: format!("{}: release {target} has no readable manifest", host.name),
                    code: exit::FAILED,
                });
            };
            let activation = Activation::back_to(&manifest, remote.manifest.as_ref());
            let result = job
                .switch(&manifest, activation, &remote, "rollback", false, origin, opts)
                .await?;
            // A self-revert still pending for the release we left is moot now (its guard
            // sees `current` changed); clear it only once the rollback has succeeded, so that an
            // interrupted rollback still leaves the host protected.
            if remote.revert_pending && result.code == exit::OK {
                job.cancel_pending_revert().await?;
            }
            Ok(result)
        }
        .await;
        lock.release().await;
        r
    }
    .await;
    conn.close().await;
    match result {
        Ok(r) => r,
        Err(e) => {
            let code = e.exit_code();
            fail(
                if code == exit::LOCKED {
                    "locked"
                } else {
                    "failed"
                },
                e.to_string(),
                code.max(1),
            )
        }
    }
}

/// `ferry rollback SERVICE [--to ID]`.
pub async fn run_rollback(
    config: &Config,
    service: &Service,
    to: Option<&str>,
    hosts: Vec<Host>,
    opts: Options,
    reporter: Arc<Reporter>,
) -> Result<i32> {
    let origin = Arc::new(deploy::origin(config));
    let service = Arc::new(service.clone());
    let to = to.map(String::from);
    let opts = Arc::new(opts);
    let tasks: Vec<_> = hosts
        .into_iter()
        .map(|h| {
            let (service, origin, opts, reporter, to) = (
                service.clone(),
                origin.clone(),
                opts.clone(),
                reporter.clone(),
                to.clone(),
            );
            tokio::spawn(async move {
                rollback_host(&h, &service, to.as_deref(), &origin, &opts, &reporter).await
            })
        })
        .collect();
    let mut codes = Vec::new();
    for t in tasks {
        let r = t.await.map_err(|e| Error::Local(e.to_string()))?;
        codes.push(r.code);
        reporter.emit(&r);
    }
    // A rollback that ended on the release it was asked for is a success (not "rolled back").
    Ok(deploy::combine_codes(&codes))
}

/// One release on one host.
#[derive(Debug, Clone, Serialize)]
pub struct ReleaseEvent {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub host: String,
    pub service: String,
    pub id: String,
    pub current: bool,
    pub created: Option<String>,
    pub deployed_by: Option<String>,
    pub git_commit: Option<String>,
    /// Size on disk in bytes (files shared with other releases counted here too).
    pub size: Option<u64>,
    /// Outcome of the last deploy or rollback of this release, from the history.
    pub outcome: Option<String>,
}

impl Human for ReleaseEvent {
    fn human(&self, s: &Style) -> Option<String> {
        let mark = if self.current {
            s.green("*")
        } else {
            " ".into()
        };
        Some(format!(
            "{} {mark} {}  {:<20} {:<24} {:<14} {:>9}  {}",
            s.bold(&self.host),
            self.id,
            self.created.as_deref().unwrap_or("-"),
            sanitize(self.deployed_by.as_deref().unwrap_or("-")),
            sanitize(self.git_commit.as_deref().unwrap_or("-")),
            self.size
                .map(|b| format!("{} KiB", b / 1024))
                .unwrap_or_else(|| "-".into()),
            self.outcome.as_deref().unwrap_or("-"),
        ))
    }
}

/// One history record on one host.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryEvent {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub host: String,
    pub service: String,
    #[serde(flatten)]
    pub record: HistoryRecord,
}

impl Human for HistoryEvent {
    fn human(&self, s: &Style) -> Option<String> {
        let r = &self.record;
        let mut line = format!(
            "{}   {} {:<8} {} {:<15} by {}",
            s.bold(&self.host),
            r.time,
            r.action,
            r.release,
            r.outcome,
            sanitize(&r.by)
        );
        if let Some(reason) = &r.reason {
            line.push_str(&format!(": {}", sanitize(reason)));
        }
        Some(line)
    }
}

/// The releases and history of a service on one host, as events.
pub fn release_events(
    host: &str,
    service: &str,
    remote: &plan::RemoteState,
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
                        && (r.action == "deploy" || r.action == "rollback" || r.action == "revert")
                })
                .map(|r| format!("{} {}", r.action, r.outcome));
            ReleaseEvent {
                kind: "release",
                host: host.to_string(),
                service: service.to_string(),
                current: remote.current.as_deref() == Some(id.as_str()),
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

/// `ferry releases SERVICE`.
pub async fn run_releases(
    service: &Service,
    hosts: Vec<Host>,
    reporter: Arc<Reporter>,
) -> Result<i32> {
    let tasks: Vec<_> = hosts
        .into_iter()
        .map(|h| {
            let service = service.clone();
            tokio::spawn(async move {
                let conn = ssh::connect(&h).await?;
                let paths = Paths::new(&service.name);
                let remote = plan::parse_remote_state(
                    &conn.run(&plan::remote_state_script(&paths, &[])).await?,
                );
                let (manifests, sizes) =
                    parse_manifests(&conn.run(&manifests_script(&paths)).await?);
                conn.close().await;
                Ok::<_, Error>((h, remote, manifests, sizes))
            })
        })
        .collect();
    let mut code = exit::OK;
    for t in tasks {
        match t.await.map_err(|e| Error::Local(e.to_string()))? {
            Ok((h, remote, manifests, sizes)) => {
                if manifests.is_empty() {
                    reporter.warn(
                        Some(&h.name),
                        &format!("no releases of {} on this host", service.name),
                    );
                }
                for e in release_events(&h.name, &service.name, &remote, manifests, &sizes) {
                    reporter.emit(&e);
                }
                for r in remote.history {
                    reporter.emit(&HistoryEvent {
                        kind: "history",
                        host: h.name.clone(),
                        service: service.name.clone(),
                        record: r,
                    });
                }
            }
            Err(e) => {
                reporter.error(&e);
                code = deploy::combine_codes(&[code, e.exit_code()]);
            }
        }
    }
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_manifest_lines() {
        let m = Manifest {
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
        };
        let text = format!(
            "manifest=20261124T120000Z-00000001 {}\nsize=20261124T120000Z-00000001 12\nmanifest=20261124T130000Z-00000002\nmanifest=junk {{}}\n",
            serde_json::to_string(&m).unwrap()
        );
        let (ms, sizes) = parse_manifests(&text);
        assert_eq!(ms.len(), 2);
        assert_eq!(ms[0].1.as_ref(), Some(&m));
        assert_eq!(ms[1].1, None);
        assert_eq!(sizes, vec![("20261124T120000Z-00000001".to_string(), 12)]);
        let remote = plan::RemoteState {
            current: Some(m.id.clone()),
            ..Default::default()
        };
        let ev = release_events("h", "s", &remote, ms, &sizes);
        assert!(ev[0].current && !ev[1].current);
        assert_eq!(ev[0].size, Some(12 * 1024));
        assert_eq!(ev[0].git_commit.as_deref(), Some("abc"));
    }
}
