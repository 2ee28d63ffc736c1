//! ProxyCommand: SSH spoken over a local command's stdin and stdout, as ssh does
//! (`ProxyCommand ssh -W %h:%p bastion`, `cloudflared access ssh`, `aws ssm start-session`).
//! The command runs under `sh -c` (ssh uses the user's shell with `exec`); its stderr goes to
//! ferry's stderr as with ssh; it is killed when the connection is dropped.

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, Join, ReadBuf};
use tokio::process::{Child, ChildStdin, ChildStdout};

/// The command's stdout (what the server says) and stdin (what we say), and the command.
pub(crate) struct ProxyStream {
    io: Join<ChildStdout, ChildStdin>,
    _child: Child,
}

/// Start the command; an error says it could not be started.
pub(crate) fn spawn(command: &str) -> std::io::Result<ProxyStream> {
    let mut child = tokio::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(format!("exec {command}"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true)
        .spawn()?;
    let stdout = child.stdout.take().expect("piped");
    let stdin = child.stdin.take().expect("piped");
    Ok(ProxyStream {
        io: tokio::io::join(stdout, stdin),
        _child: child,
    })
}

impl AsyncRead for ProxyStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for ProxyStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
