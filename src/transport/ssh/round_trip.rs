//! The round trip to a host: what the key exchange and the channel opens suggest, and SSH
//! pings when a decision depends on it (plain or compressed uploads, `plan::encoding`).
//!
//! A ping only ever overestimates the link (a busy client or host answers late: two pings on a
//! loaded 2-core machine were both near 10 ms on loopback), so the quickest stands for the
//! link. The channel opens and the key exchange overestimate it more on a near host: the key
//! exchange waits for sshd's fork and re-exec, and the first channel opens of a connection
//! wait for its PAM session (pam_systemd asks logind), several milliseconds even on loopback.

use super::*;

/// The most pings one measure sends (on a distant link each costs a round trip).
const PINGS: usize = 8;

/// Pings stop once this long has passed and [`MIN_PINGS`] were answered: on a 40 ms link five
/// pings, where a near host under load (pings of 10 ms) still gets all eight.
const BUDGET: Duration = Duration::from_millis(200);
const MIN_PINGS: usize = 4;

/// The pause between two pings when the last was slow: spreads the pings over a few tens of
/// milliseconds, so that a moment of load on a near host does not slow them all.
const SPREAD: Duration = Duration::from_millis(5);

impl Connection {
    /// The round trip to the host as best measured so far: the quickest channel open, else
    /// the key exchange's estimate (whichever is smaller: both only ever overestimate it).
    pub fn round_trip_so_far(&self) -> Duration {
        let us = self
            .counters
            .quickest_open_us
            .load(std::sync::atomic::Ordering::Relaxed);
        match us {
            0 => self.rtt,
            us => self.rtt.min(Duration::from_micros(us - 1)),
        }
    }

    /// Start measuring the round trip with SSH pings in the background (see
    /// [`Self::round_trip`]), so that the pings' round trips overlap the lock and the probe of
    /// the host instead of following them (on a 40 ms link eight pings took 0.32 s of a
    /// 1.4 s deploy). A second call while one runs does nothing.
    pub fn start_round_trip(&self, enough: Duration) {
        let mut pinging = self.pinging.lock().unwrap_or_else(|e| e.into_inner());
        if pinging.is_some() {
            return;
        }
        let handle = self.handle.clone();
        let so_far = self.round_trip_so_far();
        *pinging = Some(tokio::spawn(
            async move { ping(&handle, so_far, enough).await },
        ));
    }

    /// The round trip to the host: the quickest of up to eight SSH pings (a
    /// `keepalive@openssh.com` request the server answers), stopping at the first quicker than
    /// `enough`, else what [`Self::round_trip_so_far`] knows. Waits for the pings started by
    /// [`Self::start_round_trip`] if any, else sends them now. Costs at most eight round trips:
    /// a fraction of a second next to an upload worth deciding on a slow link.
    pub async fn round_trip(&self, enough: Duration) -> Duration {
        let started = self
            .pinging
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let measured = match started {
            Some(task) => task.await.unwrap_or(self.rtt),
            None => ping(&self.handle, self.round_trip_so_far(), enough).await,
        };
        // A channel opened meanwhile may have measured the link better.
        let best = measured.min(self.round_trip_so_far());
        tracing::debug!("{}: round trip {best:?}", self.host);
        best
    }
}

/// Up to [`PINGS`] pings, stopping at the first quicker than `enough` (or past [`BUDGET`]);
/// the quickest of them and `so_far`.
async fn ping(handle: &Handle<Handler>, so_far: Duration, enough: Duration) -> Duration {
    let mut best = so_far;
    let began = std::time::Instant::now();
    for i in 0..PINGS {
        if best < enough || (i >= MIN_PINGS && began.elapsed() >= BUDGET) {
            break;
        }
        if i > 0 {
            tokio::time::sleep(SPREAD).await;
        }
        let sent = std::time::Instant::now();
        if handle.send_ping().await.is_ok() {
            best = best.min(sent.elapsed());
        }
    }
    best
}
