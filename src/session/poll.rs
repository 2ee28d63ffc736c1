//! One look at the units under verification, judged (pure): each unit's verdict, the sockets
//! that trigger them (the next look asks for those too), and the reason a verification fails.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::systemd::{self, UnitState, Verdict};

/// The verdict on each of `units` from `states` (one `systemctl show` of `query`), and the
/// units that trigger them and are not in `query` yet. `before`: their invocations before
/// the activation; `seen`: the invocation each had when first seen up, kept across looks.
pub(super) fn judge(
    units: &[String],
    states: &[UnitState],
    query: &[String],
    before: &BTreeMap<String, String>,
    seen: &mut BTreeMap<String, String>,
) -> (Vec<(String, Verdict)>, Vec<String>) {
    let by_id: BTreeMap<&str, &UnitState> = states.iter().map(|s| (s.id.as_str(), s)).collect();
    let mut extra = Vec::new();
    let mut verdicts = Vec::new();
    for u in units {
        let Some(st) = by_id.get(u.as_str()) else {
            verdicts.push((u.clone(), Verdict::Pending("no state yet".into())));
            continue;
        };
        for t in &st.triggered_by {
            if !query.contains(t) {
                extra.push(t.clone());
            }
        }
        let listening = st
            .triggered_by
            .iter()
            .any(|t| by_id.get(t.as_str()).is_some_and(|s| s.is_listening()));
        let mut v = systemd::assess(st, before.get(u).map(String::as_str), listening);
        // Active and up, but another invocation than when first seen active: it
        // restarted behind our back (a crash loop with a long RestartSec).
        if matches!(v, Verdict::Up(_)) && st.is_active() && !st.invocation_id.is_empty() {
            match seen.get(u) {
                Some(prev) if *prev != st.invocation_id => {
                    v = Verdict::Failed("restarted while being verified (crash loop?)".into());
                }
                _ => {
                    seen.insert(u.clone(), st.invocation_id.clone());
                }
            }
        }
        verdicts.push((u.clone(), v));
    }
    (verdicts, extra)
}

/// The first unit that failed, and why.
pub(super) fn failed(verdicts: &[(String, Verdict)]) -> Option<String> {
    verdicts.iter().find_map(|(u, v)| match v {
        Verdict::Failed(why) => Some(format!("{u}: {why}")),
        _ => None,
    })
}

/// Why the units still pending after `timeout` fail the verification.
pub(super) fn not_up(verdicts: &[(String, Verdict)], timeout: Duration) -> String {
    let pending: Vec<String> = verdicts
        .iter()
        .filter_map(|(u, v)| match v {
            Verdict::Pending(w) => Some(format!("{u}: {w}")),
            _ => None,
        })
        .collect();
    format!(
        "not up within start_timeout ({}): {}",
        humantime::format_duration(timeout),
        pending.join("; ")
    )
}
