//! What a connection asked of its host (commands, SFTP sessions and requests: each a round
//! trip at least) and the quickest channel open, for the step timeline and the results.

use std::time::Duration;

/// Remote operations of a connection: each costs at least one round trip to the host, which
/// is what makes a deploy slow on a distant link.
#[derive(Debug, Default)]
pub struct Counters {
    /// Commands run (a channel each: open, exec, output, exit).
    pub commands: std::sync::atomic::AtomicU64,
    /// SFTP sessions opened (a channel and a subsystem request each).
    pub sftp_sessions: std::sync::atomic::AtomicU64,
    /// SFTP requests other than the data writes and reads (open, close, fsync, setstat,
    /// rename, stat, ...): the ones a transfer waits for.
    pub sftp_requests: std::sync::atomic::AtomicU64,
    /// The quickest channel open so far, in microseconds plus one (0: none yet): one round
    /// trip and little else, so a better measure of the link than the key exchange, which
    /// also waits for the CPU of both sides.
    pub quickest_open_us: std::sync::atomic::AtomicU64,
}

impl Counters {
    /// Note a channel open that took `took`.
    pub fn opened(&self, took: Duration) {
        let us = took.as_micros().min(u64::MAX as u128 - 1) as u64 + 1;
        let _ = self.quickest_open_us.fetch_update(
            std::sync::atomic::Ordering::Relaxed,
            std::sync::atomic::Ordering::Relaxed,
            |q| (q == 0 || us < q).then_some(us),
        );
    }

    pub fn count(counter: &std::sync::atomic::AtomicU64) {
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// (commands, sftp sessions, sftp requests) so far.
    pub fn snapshot(&self) -> (u64, u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (
            self.commands.load(Relaxed),
            self.sftp_sessions.load(Relaxed),
            self.sftp_requests.load(Relaxed),
        )
    }
}
