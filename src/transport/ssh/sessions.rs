//! Opening a session channel (a command or the SFTP subsystem) when sshd limits how many a
//! connection may have at once (`MaxSessions`, 10 by default): a refusal is asked again
//! while ferry's own sessions close, and after a bound said with the limit and its fix.

use super::*;

/// How long a session the server refuses (sshd's MaxSessions) is waited for.
pub const SESSION_WAIT: Duration = Duration::from_secs(30);

type Opening =
    tokio::task::JoinHandle<std::result::Result<russh::Channel<client::Msg>, russh::Error>>;

/// A session channel opened ahead of the next command (see
/// [`Connection::keep_a_spare_session`]).
#[derive(Default)]
pub(super) struct Spare {
    /// Spares are wanted (and the server has not refused a session yet).
    wanted: std::sync::atomic::AtomicBool,
    /// The spare being opened, or opened and not yet taken.
    opening: Mutex<Option<Opening>>,
}

impl Connection {
    /// From now on keep one session channel opened ahead of need: each command then finds its
    /// channel open instead of waiting a round trip for it (the channel open is one of the
    /// two round trips a command costs: on a 40 ms link, three commands after the upload
    /// gained 0.13 s). For operations that run commands one after the other (a deploy);
    /// not for `doctor`, which counts the sessions the server allows. The spare holds one of
    /// sshd's MaxSessions: the first session the server refuses ends the spares (the one
    /// held is used for it).
    pub fn keep_a_spare_session(&self) {
        self.spare
            .wanted
            .store(true, std::sync::atomic::Ordering::Relaxed);
        self.open_spare();
    }

    /// Start opening a spare session, if spares are wanted and none is open or opening.
    fn open_spare(&self) {
        if !self.spare.wanted.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        let mut opening = self.spare.opening.lock().unwrap_or_else(|e| e.into_inner());
        if opening.is_some() {
            return;
        }
        let (handle, counters) = (self.handle.clone(), self.counters.clone());
        *opening = Some(tokio::spawn(async move {
            let began = std::time::Instant::now();
            let channel = handle.channel_open_session().await;
            if channel.is_ok() {
                counters.opened(began.elapsed());
            }
            channel
        }));
    }

    /// The spare session, if one was opened (waiting for it if it is still opening).
    async fn take_spare(&self) -> Option<russh::Channel<client::Msg>> {
        let opening = self
            .spare
            .opening
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()?;
        match opening.await {
            Ok(Ok(channel)) => Some(channel),
            Ok(Err(russh::Error::ChannelOpenFailure(reason))) => {
                tracing::debug!(
                    "{}: the server refused a spare session ({reason:?})",
                    self.host
                );
                self.spare
                    .wanted
                    .store(false, std::sync::atomic::Ordering::Relaxed);
                None
            }
            _ => None,
        }
    }

    /// Open a session channel: the spare if one is kept (see
    /// [`Self::keep_a_spare_session`]; another is then opened for the next), else a new one
    /// (see [`Self::open_new_session`]).
    pub(super) async fn open_session(
        &self,
        during: impl Fn() -> String,
    ) -> Result<russh::Channel<client::Msg>> {
        let channel = match self.take_spare().await {
            Some(channel) => channel,
            None => self.open_new_session(during).await?,
        };
        self.open_spare();
        Ok(channel)
    }

    /// Open a session channel. A server that refuses it (sshd's `MaxSessions` reached: russh's
    /// channel open failure) is asked again, more slowly each time, while this connection's
    /// own sessions may still close, for up to [`SESSION_WAIT`]; then the error names
    /// MaxSessions and its fix.
    async fn open_new_session(
        &self,
        during: impl Fn() -> String,
    ) -> Result<russh::Channel<client::Msg>> {
        let started = std::time::Instant::now();
        let mut pause = Duration::from_millis(10);
        loop {
            let opening = std::time::Instant::now();
            match self.handle.channel_open_session().await {
                Ok(channel) => {
                    self.counters.opened(opening.elapsed());
                    return Ok(channel);
                }
                Err(russh::Error::ChannelOpenFailure(reason)) => {
                    // A spare opened meanwhile holds one of the sessions the server allows:
                    // this is what it was kept for. No more spares.
                    self.spare
                        .wanted
                        .store(false, std::sync::atomic::Ordering::Relaxed);
                    if let Some(channel) = self.take_spare().await {
                        return Ok(channel);
                    }
                    if started.elapsed() >= SESSION_WAIT {
                        return Err(self.err(format!(
                            "the server refused another session on this connection ({reason:?}) for {}s while {}: sshd's MaxSessions is lower than the sessions ferry holds at once (a deploy: its lock, the SFTP session and a command); as root on the host: set `MaxSessions 10` (OpenSSH's default) in /etc/ssh/sshd_config, then `systemctl reload ssh` (`ferry doctor` shows the limit)",
                            SESSION_WAIT.as_secs(),
                            during()
                        )));
                    }
                    if pause == Duration::from_millis(10) {
                        tracing::info!(
                            "{}: the server refused a session ({reason:?}; sshd's MaxSessions?): waiting for one of ferry's own to close",
                            self.host
                        );
                    }
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(500));
                }
                Err(e) => return Err(self.failed(e, "cannot open a channel", during)),
            }
        }
    }
}
