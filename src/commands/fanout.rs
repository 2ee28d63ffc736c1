//! Host fan-out: one job per host, at most `parallel` at once, results in the order of the
//! hosts given (`Exit::combine` sums up their exits). Every command that talks to several
//! hosts goes through here.

use std::future::Future;
use std::sync::Arc;

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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

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
