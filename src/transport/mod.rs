//! Talking to a host: the SSH connection (host keys, authentication, remote processes) and
//! uploads over SFTP (as they are, or gzip-compressed for a slow link) or, for many small
//! files, as one tar stream. Nothing here knows what a release or a service is.

pub mod bundle;
pub mod delta;
pub mod gzip;
pub mod sftp;
pub mod ssh;
