//! How a deploy moves across a service's hosts (pure): the waves of a rollout (canary hosts
//! first, on their own, then batches), the failure budget that decides after each host whether
//! the rollout goes on, and the order in which outcomes are listed.
//!
//! Rules (documented in README.md and deploy.example.toml):
//! - Hosts are taken in the order the service's `hosts` lists them (groups expanded).
//! - The first `canary` hosts form the first wave; a canary that fails stops the rollout,
//!   whatever `max_fail` says.
//! - The other hosts go in batches of `batch` hosts (a percentage counts the hosts of this
//!   rollout, rounded up).
//! - Once more than `max_fail` hosts have failed, no further host is started, not even one of
//!   the current batch; hosts already under way finish. Hosts never started are "not reached".

use crate::config::Rollout;

/// A set of hosts deployed together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wave {
    /// Position in the rollout, from 0.
    pub index: usize,
    /// The canary wave (always the first, when there is one).
    pub canary: bool,
    pub hosts: Vec<String>,
}

/// Split `hosts` (in rollout order) into waves.
pub fn waves(hosts: &[String], rollout: &Rollout) -> Vec<Wave> {
    let mut out = Vec::new();
    if hosts.is_empty() {
        return out;
    }
    let canaries = rollout.canary.min(hosts.len());
    if canaries > 0 {
        out.push(Wave {
            index: 0,
            canary: true,
            hosts: hosts[..canaries].to_vec(),
        });
    }
    let size = rollout.batch.size(hosts.len());
    for chunk in hosts[canaries..].chunks(size) {
        out.push(Wave {
            index: out.len(),
            canary: false,
            hosts: chunk.to_vec(),
        });
    }
    out
}

/// The failure budget of a rollout: counts failed hosts and says when to stop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Budget {
    max_fail: usize,
    failed: Vec<String>,
    canary_failed: Option<String>,
    halted: Option<String>,
}

impl Budget {
    pub fn new(rollout: &Rollout) -> Budget {
        Budget {
            max_fail: rollout.max_fail,
            failed: Vec::new(),
            canary_failed: None,
            halted: None,
        }
    }

    /// Stop the rollout whatever the budget says (a failed migration), for this reason.
    pub fn halt(&mut self, why: String) {
        self.halted.get_or_insert(why);
    }

    /// Count the outcome of `host` (`ok`: it is on the new release and verified).
    pub fn record(&mut self, host: &str, canary: bool, ok: bool) {
        if ok {
            return;
        }
        self.failed.push(host.to_string());
        if canary && self.canary_failed.is_none() {
            self.canary_failed = Some(host.to_string());
        }
    }

    /// The hosts that failed so far, in the order they were counted.
    pub fn failed(&self) -> &[String] {
        &self.failed
    }

    /// Why the rollout must stop now, or None to go on.
    pub fn stop_reason(&self) -> Option<String> {
        if let Some(why) = &self.halted {
            return Some(why.clone());
        }
        if let Some(host) = &self.canary_failed {
            return Some(format!("the canary host {host} failed"));
        }
        if self.failed.len() > self.max_fail {
            return Some(format!(
                "{} host(s) failed ({}), more than max_fail = {}",
                self.failed.len(),
                self.failed.join(", "),
                self.max_fail
            ));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Batch;
    use std::time::Duration;

    fn hosts(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("h{i}")).collect()
    }

    fn rollout(canary: usize, batch: Batch, max_fail: usize) -> Rollout {
        Rollout {
            canary,
            batch,
            max_fail,
            pause: Duration::ZERO,
        }
    }

    fn names(w: &[Wave]) -> Vec<Vec<&str>> {
        w.iter()
            .map(|w| w.hosts.iter().map(String::as_str).collect())
            .collect()
    }

    #[test]
    fn default_is_one_wave_of_every_host() {
        let w = waves(&hosts(5), &Rollout::default());
        assert_eq!(names(&w), vec![vec!["h1", "h2", "h3", "h4", "h5"]]);
        assert!(!w[0].canary);
        assert!(waves(&[], &Rollout::default()).is_empty());
    }

    #[test]
    fn canary_then_batches() {
        let w = waves(&hosts(6), &rollout(1, Batch::Count(2), 0));
        assert_eq!(
            names(&w),
            vec![vec!["h1"], vec!["h2", "h3"], vec!["h4", "h5"], vec!["h6"]]
        );
        assert!(w[0].canary && !w[1].canary);
        assert_eq!(
            w.iter().map(|w| w.index).collect::<Vec<_>>(),
            vec![0, 1, 2, 3]
        );
        // More canaries than hosts: every host is a canary.
        let w = waves(&hosts(2), &rollout(5, Batch::Count(2), 0));
        assert_eq!(names(&w), vec![vec!["h1", "h2"]]);
        assert!(w[0].canary);
    }

    #[test]
    fn batches_by_count_and_percentage() {
        let w = waves(&hosts(6), &rollout(0, Batch::Count(2), 0));
        assert_eq!(
            names(&w),
            vec![vec!["h1", "h2"], vec!["h3", "h4"], vec!["h5", "h6"]]
        );
        // 25% of 10 hosts: 3 per batch (rounded up).
        let w = waves(&hosts(10), &rollout(0, Batch::Percent(25), 0));
        assert_eq!(
            w.iter().map(|w| w.hosts.len()).collect::<Vec<_>>(),
            vec![3, 3, 3, 1]
        );
        // 1% of 3 hosts is still one host per batch.
        let w = waves(&hosts(3), &rollout(0, Batch::Percent(1), 0));
        assert_eq!(w.len(), 3);
        // A percentage counts every host of the rollout, canaries included.
        let w = waves(&hosts(8), &rollout(2, Batch::Percent(50), 0));
        assert_eq!(
            w.iter().map(|w| w.hosts.len()).collect::<Vec<_>>(),
            vec![2, 4, 2]
        );
    }

    #[test]
    fn budget_stops_past_max_fail() {
        let mut b = Budget::new(&rollout(0, Batch::Count(2), 0));
        b.record("h1", false, true);
        assert_eq!(b.stop_reason(), None);
        b.record("h3", false, false);
        let r = b.stop_reason().unwrap();
        assert!(
            r.contains("1 host(s) failed (h3), more than max_fail = 0"),
            "{r}"
        );

        let mut b = Budget::new(&rollout(0, Batch::Count(2), 1));
        b.record("h1", false, false);
        assert_eq!(b.stop_reason(), None, "one failure is within max_fail = 1");
        b.record("h2", false, false);
        assert!(b.stop_reason().is_some());
        assert_eq!(b.failed(), ["h1", "h2"]);
    }

    #[test]
    fn a_halt_stops_whatever_max_fail_says() {
        let mut b = Budget::new(&rollout(0, Batch::Count(1), 10));
        b.record("h1", false, false);
        assert_eq!(b.stop_reason(), None);
        b.halt("the migration failed on h1".into());
        b.halt("a second reason".into());
        assert_eq!(
            b.stop_reason().as_deref(),
            Some("the migration failed on h1")
        );
    }

    #[test]
    fn a_failed_canary_stops_whatever_max_fail_says() {
        let mut b = Budget::new(&rollout(1, Batch::All, 10));
        b.record("h1", true, true);
        assert_eq!(b.stop_reason(), None);
        let mut b = Budget::new(&rollout(1, Batch::All, 10));
        b.record("h1", true, false);
        assert_eq!(
            b.stop_reason().as_deref(),
            Some("the canary host h1 failed")
        );
    }

    #[test]
    fn outcomes_sort_worst_last_and_stable() {
        use crate::outcome::HostOutcome::*;
        let mut v = vec![
            ("a", Failed),
            ("b", Ok),
            ("c", NotReached),
            ("d", RolledBack),
            ("e", Ok),
            ("f", RollbackFailed),
            ("g", Unreachable),
        ];
        crate::outcome::sort_by_outcome(&mut v, |x| x.1);
        let order: Vec<&str> = v.iter().map(|x| x.0).collect();
        assert_eq!(order, vec!["b", "e", "c", "d", "g", "a", "f"]);
    }
}
