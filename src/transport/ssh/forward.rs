//! Connections the host opens for ferry (`direct-tcpip`, `direct-streamlocal`): what an HTTP
//! health check talks through. The host's sshd may forbid them: that refusal is its own error.

use russh::client;

use super::Connection;
use crate::error::{Error, Result};

impl Connection {
    /// [`Connection::failed`] for a connection the host was asked to open to `to`: its sshd's
    /// refusal ("administratively prohibited") is [`Error::ForwardingForbidden`].
    fn open_failed(
        &self,
        e: russh::Error,
        to: String,
        what: &str,
        during: impl FnOnce() -> String,
    ) -> Error {
        if let russh::Error::ChannelOpenFailure(
            russh::ChannelOpenFailure::AdministrativelyProhibited,
        ) = e
        {
            return Error::ForwardingForbidden {
                host: self.host.clone(),
                to,
            };
        }
        self.failed(e, what, during)
    }

    /// A TCP connection made by the host to `host:port` (direct-tcpip).
    pub async fn connect_tcp(
        &self,
        host: &str,
        port: u16,
    ) -> Result<russh::ChannelStream<client::Msg>> {
        let channel = self
            .handle
            .channel_open_direct_tcpip(host, port as u32, "127.0.0.1", 0)
            .await
            .map_err(|e| {
                self.open_failed(
                    e,
                    format!("{host}:{port}"),
                    &format!("cannot open {host}:{port} from the host"),
                    || format!("opening {host}:{port} from the host"),
                )
            })?;
        Ok(channel.into_stream())
    }

    /// A connection made by the host to a unix socket (direct-streamlocal).
    pub async fn connect_unix(&self, path: &str) -> Result<russh::ChannelStream<client::Msg>> {
        let channel = self
            .handle
            .channel_open_direct_streamlocal(path)
            .await
            .map_err(|e| {
                self.open_failed(
                    e,
                    format!("unix socket {path}"),
                    &format!("cannot open unix socket {path} on the host"),
                    || format!("opening unix socket {path} on the host"),
                )
            })?;
        Ok(channel.into_stream())
    }
}
