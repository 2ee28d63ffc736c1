//! `ferry units [SERVICE]`: the unit files a deploy of the service installs, those of `units`
//! and those generated from its `run` and `switch` tables, as `unit-file` events (to read, or
//! to eject into files), then ferry's lints of them.

use crate::cli::UnitsArgs;
use crate::commands::Context;
use crate::commands::targets;
use crate::error::{Exit, Result};
use crate::report::units::UnitFile;
use crate::session::unit_check;

/// `ferry units`.
pub fn run(args: UnitsArgs, ctx: &Context) -> Result<Exit> {
    let config = ctx.config()?;
    let name = targets::the_service(&config, args.service.as_deref())?;
    let service = targets::services(&config, std::slice::from_ref(&name))?;
    let texts = unit_check::unit_texts(&service[0]);
    if texts.is_empty() {
        ctx.reporter.warn(
            None,
            &format!(
                "service {name} installs no unit files: list them in `units` or add a [services.{name}.run] table"
            ),
        );
    }
    for (unit, content, from) in texts {
        ctx.reporter.emit(&UnitFile {
            kind: "unit-file",
            service: name.clone(),
            name: unit,
            from,
            content,
        });
    }
    unit_check::lint_local(&[&service[0]], &ctx.reporter)?;
    Ok(Exit::Ok)
}
