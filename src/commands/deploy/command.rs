//! `ferry deploy` from its command line: the options, ferry's lints of the units before any
//! connection (lint = "deny": exit 2), then the rollout of each service.

use crate::cli::{DeployArgs, PromoteArgs};
use crate::commands::Context;
use crate::config;
use crate::error::{Exit, Result};
use crate::session::unit_check;

use super::{Options, deploy_services};

/// `ferry deploy`.
pub async fn run(args: DeployArgs, ctx: &Context) -> Result<Exit> {
    let config = ctx.config()?;
    let opts = Options {
        dry_run: args.dry_run,
        no_rollback: args.no_rollback,
        lock_wait: args.lock_wait,
        parallel: args.parallel as usize,
        retry_failed: args.retry_failed,
        rollback_all_on_failure: args.rollback_all_on_failure,
        force: args.force,
        no_switch: args.no_switch,
        allow_no_linger: args.allow_no_linger,
    };
    let named: Vec<&config::Service> = config
        .services
        .values()
        .filter(|s| args.services.is_empty() || args.services.contains(&s.name))
        .collect();
    unit_check::lint_local(&named, &ctx.reporter)?;
    deploy_services(
        &config,
        &args.services,
        &ctx.hosts,
        opts,
        ctx.reporter.clone(),
    )
    .await
}

/// `ferry promote`.
pub async fn promote(args: PromoteArgs, ctx: &Context) -> Result<Exit> {
    let config = ctx.config_for_hosts()?;
    let opts = Options {
        dry_run: args.dry_run,
        no_rollback: false,
        lock_wait: args.lock_wait,
        parallel: args.parallel as usize,
        retry_failed: false,
        rollback_all_on_failure: args.rollback_all_on_failure,
        force: false,
        no_switch: false,
        allow_no_linger: false,
    };
    let service = crate::commands::targets::the_service(&config, args.service.as_deref())?;
    super::promote::run(&config, &service, &ctx.hosts, opts, ctx.reporter.clone()).await
}
