//! SIGINT and SIGTERM during `deploy` and `rollback`: the work stops where it is (no step
//! starts after the signal; the connections and the locks they hold end with ferry), and
//! ferry still prints what docs/events.md promises: a `result` per host saying what state
//! it was left in, a `rollout` per service, the `summary` last; exit 130 (SIGINT) or 143
//! (SIGTERM). A signal that comes once every host has its result interrupts nothing: ferry
//! finishes (local hooks, output) with the deploy's own exit code; a second signal stops it.

use crate::exit::Exit;
use std::future::Future;

use tokio::signal::unix::{SignalKind, signal};

use crate::error::{Error, Result};
use crate::report::Reporter;
use crate::report::deploy::Summary;

/// The command being guarded, for what an interrupt says.
#[derive(Debug, Clone, Copy)]
pub enum Guarded {
    Deploy,
    Promote,
    Rollback,
}

impl Guarded {
    fn note(self) -> &'static str {
        match self {
            Guarded::Deploy => {
                "interrupted: hosts not yet switched keep their current release; a host already switched reverts to its previous release by itself within confirm_timeout; each host's line says where it was; `ferry deploy --retry-failed` deploys to the hosts that were not done"
            }
            Guarded::Promote => {
                "interrupted: hosts not yet switched keep their current release and their staged one; a host already switched reverts to its previous release by itself within confirm_timeout; each host's line says where it was"
            }
            Guarded::Rollback => {
                "interrupted: a host may be left between releases; check with `ferry status` and run the rollback again"
            }
        }
    }

    fn action(self) -> &'static str {
        match self {
            Guarded::Deploy => "deployed",
            Guarded::Promote => "promoted",
            Guarded::Rollback => "rolled back",
        }
    }
}

/// Run `work`, stopping it on SIGINT or SIGTERM as the module says. Ok(code) is the exit code.
pub async fn guard(
    work: impl Future<Output = Result<Exit>>,
    what: Guarded,
    dry_run: bool,
    reporter: &Reporter,
) -> Result<Exit> {
    let mut sigint = signal(SignalKind::interrupt())
        .map_err(|e| Error::Local(format!("cannot handle SIGINT: {e}")))?;
    let mut sigterm = signal(SignalKind::terminate())
        .map_err(|e| Error::Local(format!("cannot handle SIGTERM: {e}")))?;
    let mut work = Box::pin(work);
    let mut finishing = false;
    let (name, code) = loop {
        let (name, code) = tokio::select! {
            r = &mut work => return r,
            _ = sigint.recv() => ("SIGINT", Exit::Interrupted),
            _ = sigterm.recv() => ("SIGTERM", Exit::Terminated),
        };
        if !finishing && reporter.tally().all_done() {
            finishing = true;
            reporter.warn(
                None,
                &format!(
                    "{name} received after every host was done: nothing is interrupted; finishing the output (a second signal stops now)"
                ),
            );
            continue;
        }
        break (name, code);
    };
    if finishing {
        // The second signal after the end: stop at once, the hosts are done.
        drop(work);
        return Ok(code);
    }
    let tally = reporter.tally().interrupted(name, code);
    // The work stops here (its host tasks start no further step, see `Tally::at`).
    drop(work);
    reporter.fleet_end();
    reporter.warn(None, &format!("{} ({name})", what.note()));
    reporter.results(&tally.results);
    for r in &tally.rollouts {
        reporter.emit(r);
    }
    let ok = tally
        .results
        .iter()
        .filter(|r| r.result.is_success())
        .count();
    reporter.emit(&Summary {
        kind: "summary",
        ok,
        failed: tally.results.len() - ok,
        exit_code: code,
        dry_run,
        action: what.action(),
    });
    Ok(code)
}
