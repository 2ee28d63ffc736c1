//! Opening a session channel (a command or the SFTP subsystem) when sshd limits how many a
//! connection may have at once (`MaxSessions`, 10 by default): a refusal is asked again
//! while ferry's own sessions close, and after a bound said with the limit and its fix.

use super::*;

/// How long a session the server refuses (sshd's MaxSessions) is waited for.
pub const SESSION_WAIT: Duration = Duration::from_secs(30);

impl Connection {
    /// Open a session channel. A server that refuses it (sshd's `MaxSessions` reached: russh's
    /// channel open failure) is asked again, more slowly each time, while this connection's
    /// own sessions may still close, for up to [`SESSION_WAIT`]; then the error names
    /// MaxSessions and its fix.
    pub(super) async fn open_session(
        &self,
        during: impl Fn() -> String,
    ) -> Result<russh::Channel<client::Msg>> {
        let started = std::time::Instant::now();
        let mut pause = Duration::from_millis(10);
        loop {
            match self.handle.channel_open_session().await {
                Ok(channel) => return Ok(channel),
                Err(russh::Error::ChannelOpenFailure(reason)) => {
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
