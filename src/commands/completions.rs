//! `ferry completions SHELL`: the shell's completion script on stdout (generated in
//! `cli::completions` from the same definitions as `--help`).

use crate::cli::CompletionsArgs;
use crate::cli::completions::completions;
use crate::commands::Context;
use crate::error::{Exit, Result};
use crate::report;

/// `ferry completions`.
pub fn run(args: CompletionsArgs, _: &Context) -> Result<Exit> {
    report::print_raw(&completions(args.shell));
    Ok(Exit::Ok)
}
