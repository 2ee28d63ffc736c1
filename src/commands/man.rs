//! `ferry man [COMMAND] [--out-dir DIR]`: a man page in roff on stdout, or every page written
//! into a directory (generated in `cli::completions`).

use crate::cli::ManArgs;
use crate::cli::completions;
use crate::commands::Context;
use crate::error::{Exit, Result};
use crate::report;

/// `ferry man`.
pub fn run(args: ManArgs, ctx: &Context) -> Result<Exit> {
    match &args.out_dir {
        Some(dir) => {
            for file in completions::write_man_pages(dir)? {
                ctx.reporter
                    .progress(None, &format!("wrote {}", file.display()));
            }
        }
        None => report::print_raw(&completions::man(args.command.as_deref())?),
    }
    Ok(Exit::Ok)
}
