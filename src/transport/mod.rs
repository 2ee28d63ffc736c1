//! Talking to a host: the SSH connection (host keys, authentication, remote processes) and
//! uploads over SFTP. Nothing here knows what a release or a service is.

pub mod sftp;
pub mod ssh;
