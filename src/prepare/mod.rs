//! The local side of a deploy, before any connection: the release's files read and hashed (with
//! a cache of hashes), unit templates rendered.

pub mod arch;
pub mod blobs;
pub mod hash_cache;
pub mod local;
pub mod template;
