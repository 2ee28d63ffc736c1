//! The subcommands, one file (or folder) each, and what several of them share: which hosts a
//! command acts on (`targets`) and the fan-out over them (`fanout`).

pub mod deploy;
pub mod doctor;
pub mod exec;
pub mod fanout;
pub mod init;
pub mod interrupt;
pub mod logs;
pub mod releases;
pub mod rollback;
pub mod status;
pub mod targets;
