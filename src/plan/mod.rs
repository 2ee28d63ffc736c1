//! Planning, pure: local release + remote state -> what a deploy does on one host.
//!
//! The plan is what `--dry-run` prints and what `deploy` executes: which files are uploaded or
//! reused from the current release, which units are new, changed or removed, what is enabled,
//! restarted and started. The remote-state probe and the activation script are generated here
//! too, as text, so they can be read and tested without a host.

pub mod revert;

pub mod encoding;

pub mod prefix;
pub mod resume;

mod activation;
mod local;
mod make;
mod remote;
mod step;

pub use crate::digest::hex;
pub use activation::*;
pub use local::*;
pub use make::*;
pub use remote::*;
pub use step::*;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_many;
#[cfg(test)]
mod tests_staged;
