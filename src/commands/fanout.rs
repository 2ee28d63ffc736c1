//! Host fan-out: one job per host, at most `parallel` at once, results in the order of the
//! hosts given, and the exit code that sums them up. Every command that talks to several
//! hosts goes through here.

use std::future::Future;
use std::sync::Arc;

use crate::error::exit;

/// Run `job` for each item (one per host), at most `parallel` at a time (at least one).
/// Results come back in the order of `items`, whatever order the jobs finish in. A job that
/// panics panics here too: a bug must not pass for a host's result.
pub async fn each<I, T, F, Fut>(items: Vec<I>, parallel: usize, job: F) -> Vec<T>
where
    I: Send + 'static,
    T: Send + 'static,
    F: Fn(I) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = T> + Send + 'static,
{
    let sem = Arc::new(tokio::sync::Semaphore::new(parallel.max(1)));
    let job = Arc::new(job);
    // A job is created only once a slot is free: at most `parallel` jobs (each a connection's
    // future and buffers) exist at once, so memory follows --parallel, not the host count.
    let mut tasks = Vec::with_capacity(items.len());
    for item in items {
        let permit = sem
            .clone()
            .acquire_owned()
            .await
            .expect("semaphore is never closed");
        let job = job.clone();
        tasks.push(tokio::spawn(async move {
            let _permit = permit;
            job(item).await
        }));
    }
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        match t.await {
            Ok(v) => out.push(v),
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => panic!("a host task was cancelled: {e}"),
        }
    }
    out
}

/// Which exit code wins when hosts end differently: a failed host first, then unreachable,
/// locked, rolled back; otherwise the first non-zero code, else 0.
pub fn combine_codes(codes: &[i32]) -> i32 {
    for c in [
        exit::FAILED,
        exit::CONNECTION,
        exit::LOCKED,
        exit::ROLLED_BACK,
    ] {
        if codes.contains(&c) {
            return c;
        }
    }
    codes
        .iter()
        .copied()
        .find(|c| *c != exit::OK)
        .unwrap_or(exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[test]
    fn exit_code_precedence() {
        assert_eq!(combine_codes(&[]), 0);
        assert_eq!(combine_codes(&[0, 0]), 0);
        assert_eq!(combine_codes(&[0, 4]), 4);
        assert_eq!(combine_codes(&[4, 5]), 5);
        assert_eq!(combine_codes(&[5, 3, 4]), 3);
        assert_eq!(combine_codes(&[3, 1, 0]), 1);
        assert_eq!(combine_codes(&[0, 130]), 130);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn keeps_order_and_bounds_parallelism() {
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let (r, p) = (running.clone(), peak.clone());
        let out = each((0..12u64).collect(), 3, move |i| {
            let (r, p) = (r.clone(), p.clone());
            async move {
                let now = r.fetch_add(1, Ordering::SeqCst) + 1;
                p.fetch_max(now, Ordering::SeqCst);
                // Later items finish first: order must still be the items' order.
                tokio::time::sleep(Duration::from_millis(12 - i)).await;
                r.fetch_sub(1, Ordering::SeqCst);
                i * 10
            }
        })
        .await;
        assert_eq!(out, (0..12).map(|i| i * 10).collect::<Vec<_>>());
        assert!(peak.load(Ordering::SeqCst) <= 3);
        assert!(peak.load(Ordering::SeqCst) >= 1);
    }
}
