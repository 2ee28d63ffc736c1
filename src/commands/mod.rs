//! The subcommands, one file (or folder) each, every one `run(args, &Context) -> Result<Exit>`,
//! and what several of them share: the [`Context`], which hosts a command acts on (`targets`)
//! and the fan-out over them (`fanout`).

pub mod completions;
mod context;
pub mod deploy;
pub mod doctor;
pub mod exec;
pub mod fanout;
pub mod init;
pub mod interrupt;
pub mod logs;
pub mod man;
pub mod releases;
pub mod rollback;
pub mod status;
pub mod targets;
pub mod units;

pub use context::Context;
