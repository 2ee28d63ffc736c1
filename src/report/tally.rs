//! What a deploy or rollback has got to on each host, so that a ferry stopped by SIGINT or
//! SIGTERM still prints a `result` for every host, a `rollout` per service and the `summary`,
//! each interrupted host's result saying what state it was left in. Once interrupted, the
//! tally is frozen: no step starts after the signal (see [`Tally::interrupted`]).

use crate::exit::Exit;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::outcome::HostOutcome;
use crate::report::deploy::HostResult;
use crate::report::fleet::RolloutEvent;

/// The hosts of the command and how far each got.
#[derive(Debug, Default)]
pub struct Tally {
    services: Mutex<Vec<ServiceTally>>,
    interrupted: AtomicBool,
}

#[derive(Debug)]
struct ServiceTally {
    service: String,
    /// A deploy's rollout (its batches): a `rollout` event is printed for it.
    batches: Option<usize>,
    hosts: Vec<HostTally>,
}

#[derive(Debug)]
struct HostTally {
    host: String,
    /// What stopping now leaves on the host (set as each step starts).
    at: Option<String>,
    /// Its result, once it has one.
    result: Option<HostResult>,
}

/// What the tally says when ferry is interrupted: a result per host, and a rollout event per
/// deploy rollout.
#[derive(Debug)]
pub struct Interrupted {
    pub results: Vec<HostResult>,
    pub rollouts: Vec<RolloutEvent>,
}

impl Tally {
    /// `hosts` of `service` will be worked on (`batches`: a deploy's rollout; None for a
    /// rollback or a dry run, which print no `rollout`).
    pub fn expect(&self, service: &str, hosts: &[String], batches: Option<usize>) {
        self.services.lock().unwrap().push(ServiceTally {
            service: service.to_string(),
            batches,
            hosts: hosts
                .iter()
                .map(|h| HostTally {
                    host: h.clone(),
                    at: None,
                    result: None,
                })
                .collect(),
        });
    }

    /// `host` is at a point where stopping leaves it as `state` says. False once interrupted:
    /// the caller must not start anything more.
    pub fn at(&self, host: &str, service: &str, state: String) -> bool {
        if self.is_interrupted() {
            return false;
        }
        self.host(host, service, |h| h.at = Some(state));
        true
    }

    /// A host has its result (a later one for the same host replaces it).
    pub fn done(&self, result: &HostResult) {
        if self.is_interrupted() {
            return;
        }
        self.host(&result.host, &result.service, |h| {
            h.result = Some(result.clone())
        });
    }

    fn host(&self, host: &str, service: &str, f: impl FnOnce(&mut HostTally)) {
        let mut services = self.services.lock().unwrap();
        if let Some(h) = services
            .iter_mut()
            .filter(|s| s.service == service)
            .flat_map(|s| s.hosts.iter_mut())
            .find(|h| h.host == host)
        {
            f(h);
        }
    }

    /// Does every host expected have its result? (False when none is expected yet.)
    pub fn all_done(&self) -> bool {
        let services = self.services.lock().unwrap();
        services.iter().any(|s| !s.hosts.is_empty())
            && services
                .iter()
                .all(|s| s.hosts.iter().all(|h| h.result.is_some()))
    }

    pub fn is_interrupted(&self) -> bool {
        self.interrupted.load(Ordering::SeqCst)
    }

    /// ferry was interrupted by `signal` (`SIGINT`, `SIGTERM`; exit `code`): freeze the tally
    /// and say where every host was.
    pub fn interrupted(&self, signal: &str, code: Exit) -> Interrupted {
        self.interrupted.store(true, Ordering::SeqCst);
        let services = self.services.lock().unwrap();
        let mut out = Interrupted {
            results: Vec::new(),
            rollouts: Vec::new(),
        };
        for s in services.iter() {
            let results: Vec<HostResult> = s
                .hosts
                .iter()
                .map(|h| host_result(h, &s.service, signal, code))
                .collect();
            if let Some(batches) = s.batches {
                out.rollouts.push(rollout(s, batches, &results, signal));
            }
            out.results.extend(results);
        }
        out
    }
}

fn host_result(h: &HostTally, service: &str, signal: &str, code: Exit) -> HostResult {
    if let Some(r) = &h.result {
        return r.clone();
    }
    match &h.at {
        Some(state) => HostResult::new(
            &h.host,
            service,
            HostOutcome::Interrupted,
            None,
            None,
            Some(format!("interrupted by {signal} {state}")),
            code,
        ),
        None => HostResult::new(
            &h.host,
            service,
            HostOutcome::NotReached,
            None,
            None,
            Some(format!(
                "not reached, keeps its current release: ferry was interrupted by {signal} before it started here"
            )),
            Exit::Ok,
        ),
    }
}

fn rollout(s: &ServiceTally, batches: usize, results: &[HostResult], signal: &str) -> RolloutEvent {
    let count = |f: &dyn Fn(HostOutcome) -> bool| results.iter().filter(|r| f(r.result)).count();
    RolloutEvent {
        kind: "rollout",
        service: s.service.clone(),
        hosts: s.hosts.len(),
        batches,
        deployed: count(&|o| o == HostOutcome::Ok),
        failed: count(&|o| !o.is_success() && o != HostOutcome::NotReached),
        put_back: 0,
        not_reached: count(&|o| o == HostOutcome::NotReached),
        stopped: Some(format!("interrupted by {signal}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(host: &str) -> HostResult {
        HostResult::new(
            host,
            "web",
            HostOutcome::Ok,
            Some("R"),
            None,
            None,
            Exit::Ok,
        )
    }

    #[test]
    fn an_interrupt_gives_every_host_a_result_and_freezes_the_tally() {
        let t = Tally::default();
        assert!(!t.all_done(), "nothing expected yet is not done");
        let hosts: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        t.expect("web", &hosts, Some(2));
        t.done(&ok("a"));
        assert!(t.at(
            "b",
            "web",
            "during step `upload`: old release serving".into()
        ));
        assert!(!t.all_done());
        let i = t.interrupted("SIGTERM", Exit::Terminated);
        let by = |h: &str| i.results.iter().find(|r| r.host == h).unwrap().clone();
        assert_eq!(by("a").result, HostOutcome::Ok);
        assert_eq!(by("b").result, HostOutcome::Interrupted);
        assert_eq!(
            by("b").reason.as_deref(),
            Some("interrupted by SIGTERM during step `upload`: old release serving")
        );
        assert_eq!(by("b").code, Exit::Terminated);
        assert_eq!(by("c").result, HostOutcome::NotReached);
        let r = &i.rollouts[0];
        assert_eq!(
            (r.hosts, r.batches, r.deployed, r.failed, r.not_reached),
            (3, 2, 1, 1, 1)
        );
        assert_eq!(r.stopped.as_deref(), Some("interrupted by SIGTERM"));
        // Frozen: no step may start, nothing changes.
        assert!(!t.at("c", "web", "x".into()));
        t.done(&ok("c"));
        assert_eq!(
            t.interrupted("SIGTERM", Exit::Terminated).results[2].result,
            HostOutcome::NotReached
        );
    }

    #[test]
    fn every_host_with_a_result_is_all_done() {
        let t = Tally::default();
        t.expect("web", &["a".to_string()], None);
        t.done(&ok("a"));
        assert!(t.all_done());
        assert!(
            t.interrupted("SIGINT", Exit::Interrupted)
                .rollouts
                .is_empty()
        );
    }
}
