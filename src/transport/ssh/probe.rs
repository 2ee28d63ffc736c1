//! Probes of what a login gets from the server, for `ferry doctor`: does the login shell run
//! a command given to ssh, does the SFTP subsystem answer, and how many sessions (channels
//! that run a command or a subsystem) sshd grants at once (its `MaxSessions`). Each returns
//! what it saw; judging it is doctor's.

use super::*;

/// What the login shell did with a command given to ssh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginShell {
    /// It ran ferry's command: the login shell (`$SHELL`) and what its startup files printed
    /// before the command on stdout and on stderr.
    Ran {
        shell: String,
        stdout: Vec<u8>,
        stderr: Vec<u8>,
    },
    /// It never ran the command: why, in words (names the startup files to look at).
    NotRun(String),
}

/// How the SFTP subsystem answered an SFTP `init`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SftpAnswer {
    /// An SFTP server answered with this protocol version.
    Version(u32),
    /// sshd refused the subsystem request: no `Subsystem sftp` in its config.
    NoSubsystem,
    /// Bytes that are not an SFTP answer came first (a startup file printing, for a
    /// subsystem sshd starts through the login shell).
    Garbage(Vec<u8>),
    /// The subsystem ended without answering: its exit status and what it said on stderr.
    Ended { status: Option<u32>, stderr: String },
    /// Nothing came within the time given.
    NoAnswer,
}

/// How many sessions at once the server granted on one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sessions {
    pub granted: usize,
    /// The server refused one more (so `granted` is its limit for this connection).
    pub refused: bool,
}

/// How long each probe may wait for the server.
const PROBE_WAIT: Duration = Duration::from_secs(15);

impl Connection {
    /// Run a command through the login shell and see whether it ran and what was printed
    /// before it.
    pub async fn login_shell_probe(&self) -> Result<LoginShell> {
        let mut p = self
            .spawn("printf 'shell=%s\\n' \"$SHELL\"", Stdin::Closed)
            .await?;
        let mut out = Vec::new();
        let read = async {
            while let Some(event) = p.next().await {
                if let Event::Stdout(data) = event {
                    out.extend_from_slice(&data);
                }
            }
        };
        if tokio::time::timeout(PROBE_WAIT, read).await.is_err() || !p.preamble.stdout.seen() {
            let mut why = wrap::not_started(&self.host, &self.user, &p.noise_text());
            if !p.closed {
                why.push_str(&format!(" (nothing came within {}s)", PROBE_WAIT.as_secs()));
            }
            p.close().await;
            return Ok(LoginShell::NotRun(why));
        }
        let text = String::from_utf8_lossy(&out);
        let shell = text
            .lines()
            .find_map(|l| l.strip_prefix("shell="))
            .unwrap_or_default()
            .to_string();
        Ok(LoginShell::Ran {
            shell,
            stdout: p.preamble.stdout.before().to_vec(),
            stderr: p.preamble.stderr.before().to_vec(),
        })
    }

    /// Ask for the SFTP subsystem and send an SFTP `init` (version 3), as an SFTP client does
    /// first, and read what comes back.
    pub async fn sftp_probe(&self) -> Result<SftpAnswer> {
        let starting = || "starting the SFTP subsystem".to_string();
        let mut channel = self.open_session(starting).await?;
        let answer = tokio::time::timeout(PROBE_WAIT, sftp_answer(&mut channel)).await;
        let _ = channel.close().await;
        match answer {
            Ok(Ok(a)) => Ok(a),
            Ok(Err(e)) => Err(self.failed(e, "cannot start the sftp subsystem", starting)),
            Err(_) => Ok(SftpAnswer::NoAnswer),
        }
    }

    /// Open sessions on this connection until the server refuses one (at most `up_to`),
    /// then close them all and wait for the server to have closed them.
    pub async fn max_sessions_probe(&self, up_to: usize) -> Result<Sessions> {
        let mut held = Vec::new();
        let mut refused = false;
        let mut error = None;
        while held.len() < up_to {
            match self.handle.channel_open_session().await {
                Ok(c) => held.push(c),
                Err(russh::Error::ChannelOpenFailure(_)) => {
                    refused = true;
                    break;
                }
                Err(e) => {
                    error = Some(e);
                    break;
                }
            }
        }
        let granted = held.len();
        // Closed, not waited for: a session opened next waits for the server to free one
        // (see `Connection::open_session`).
        for c in held {
            let _ = c.close().await;
        }
        match error {
            Some(e) => Err(self.failed(e, "cannot open a channel", || {
                "counting the sessions the server allows".to_string()
            })),
            None => Ok(Sessions { granted, refused }),
        }
    }
}

/// The subsystem request's reply, then the answer to an SFTP `init`.
async fn sftp_answer(
    channel: &mut russh::Channel<client::Msg>,
) -> std::result::Result<SftpAnswer, russh::Error> {
    channel.request_subsystem(true, "sftp").await?;
    loop {
        match channel.wait().await {
            Some(ChannelMsg::Success) => break,
            Some(ChannelMsg::Failure) => return Ok(SftpAnswer::NoSubsystem),
            Some(_) => {}
            None => {
                return Ok(SftpAnswer::Ended {
                    status: None,
                    stderr: String::new(),
                });
            }
        }
    }
    // SSH_FXP_INIT, version 3: length 5, type 1, version.
    channel.data(&[0u8, 0, 0, 5, 1, 0, 0, 0, 3][..]).await?;
    let (mut out, mut err, mut status) = (Vec::new(), Vec::new(), None);
    loop {
        match channel.wait().await {
            Some(ChannelMsg::Data { data }) => {
                out.extend_from_slice(&data);
                if let Some(a) = judge_sftp_bytes(&out) {
                    return Ok(a);
                }
            }
            Some(ChannelMsg::ExtendedData { data, .. }) => err.extend_from_slice(&data),
            Some(ChannelMsg::ExitStatus { exit_status }) => status = Some(exit_status),
            Some(_) => {}
            None => break,
        }
    }
    if !out.is_empty() {
        return Ok(SftpAnswer::Garbage(out));
    }
    Ok(SftpAnswer::Ended {
        status,
        stderr: String::from_utf8_lossy(&err).trim().to_string(),
    })
}

/// The answer in the first bytes an SFTP server sent, once there are enough to tell: an
/// SSH_FXP_VERSION packet (length, type 2, version), or anything else.
pub fn judge_sftp_bytes(out: &[u8]) -> Option<SftpAnswer> {
    if out.len() < 9 {
        return None;
    }
    let len = u32::from_be_bytes([out[0], out[1], out[2], out[3]]);
    if out[4] == 2 && (5..=64 * 1024).contains(&len) {
        let v = u32::from_be_bytes([out[5], out[6], out[7], out[8]]);
        return Some(SftpAnswer::Version(v));
    }
    Some(SftpAnswer::Garbage(out.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sftp_version_and_garbage() {
        assert_eq!(judge_sftp_bytes(&[0, 0, 0, 5, 2]), None);
        assert_eq!(
            judge_sftp_bytes(&[0, 0, 0, 5, 2, 0, 0, 0, 3]),
            Some(SftpAnswer::Version(3))
        );
        // OpenSSH's sftp-server sends extensions after the version: a longer packet.
        assert_eq!(
            judge_sftp_bytes(&[0, 0, 1, 0, 2, 0, 0, 0, 3, b'x']),
            Some(SftpAnswer::Version(3))
        );
        let printed = b"hello from bashrc\n".to_vec();
        assert_eq!(
            judge_sftp_bytes(&printed),
            Some(SftpAnswer::Garbage(printed.clone()))
        );
    }
}
