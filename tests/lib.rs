//! ferry's integration tests: one test binary, against the real test remote.
//!
//! Remote users, one per test that changes a user's state (tests run in parallel):
//! - ferry1: doctor / transport (read-only checks)
//! - ferry2: deploy of the example (unix socket + proxy), redeploy, dry run
//! - ferry3: failing service, crash loop
//! - ferry4 + ferry5: two hosts in parallel
//! - ferry6: killed deploy (SIGKILL during upload)
//! - ferry7: rollback, health checks, history, pruning
//! - ferry8: crash loop rolled back
//! - ferry13: locks, self-arming revert
//! - ferry9..ferry11: logs and status
//! - ferry12: rollback of added/changed/removed units (deploy.rs); benchmarks and manual experiments
//! - ferry15: the demo (examples/demo/run)
//! - ferry14, ferry16: the plan (dry run = executed steps, refusals)
//! - ferry17, ferry18: faults (tests/faults.rs)
//! - ferry19: deploy to a group (config_errors)
//! - ferry20..ferry24: faults
//! - ferry25..ferry32: fleets
//! - ferry33..ferry36: systemd (generated units, unit checks, lints, doctor --fix)
//! - ferry37..ferry40: services (env, hooks)
//! - ferry42: plan (a redeploy of what is current and up is a no-op)
//! - ferry45..ferry60: fleets (sixteen hosts, one user each)
//! - ferry43: ecosystem (the events of batches, hooks, unit diffs, exec, units)
//! - ferry44: faults (a file hashed while it is uploaded)
//! - ferry75..ferry79, ferry120: the first hour (tests/first_hour.rs)
//! - ferry81: the self-revert's deadline (tests/revert.rs)
//! - ferry82, ferry83: blue/green under load (tests/switch.rs); ferry84: bench/switch.sh
//! - ferry71..ferry74: a migration run once per rollout (tests/migrate.rs)
//! - ferry80: services in order, `after` (tests/migrate.rs)
//! - ferry88..ferry93: login shells and startup files (tests/shell.rs)
//! - ferry85..ferry87, ferry111: compressed and delta uploads (tests/upload.rs)
//! - ferry69, ferry70: binaries checked against the host (tests/binaries.rs)
//! - ferry97, ferry98: staged releases, `deploy --no-switch` and `promote` (tests/staged.rs)
//! - ferry104..ferry109: signals, messages, linger, the client's clock (tests/faults24.rs),
//!   which also deploys to the nolinger user (the only test that changes it)
//! - ferry99: connection failures said once, with their class (tests/first_hour_cli.rs)
//! - ferry100: completion of service and host names (tests/first_hour_cli.rs)
//! - ferry110: exec, logs and releases beside hosts that cannot be connected to
//!   (tests/first_hour_cli.rs)
//! - ferry101, ferry102: hosts from a command (tests/inventory.rs)
//! - ferry112..ferry115: certificates, agents, a binary KRL (tests/ssh_certs.rs)
//! - ferry118, ferry119: promote killed, failed, rolled back everywhere, masked (tests/promote.rs)
//! - ferry116, ferry117: jump hosts from ~/.ssh/config, ssh_config paths in messages (tests/ssh_hops.rs)
//! - ferry94: doctor's login checks; ferry96: deploys under MaxSessions, a jump host that
//!   forbids forwarding (tests/sshd_limits.rs)
//! - ferry103: uploads cut off and resumed (tests/upload_resume.rs)
//! - ferry121, ferry122: releases of many files (tests/many_files.rs)
//! - ferry123, ferry124: remote commands end with ferry and with their timeout (tests/bounded.rs)
//! - ferry125, ferry126: a lost self-revert timer, a rollback killed mid-activation (tests/lost_revert.rs)
//! - ferry127: an http health check through an sshd that forbids forwarding (tests/sshd_limits.rs)
//! - ferry128: a same-size file that begins otherwise (tests/upload.rs)
//! - no user is free after ferry128: add users (tests/remote/ferry-remote's count) for new tests
//! - ferry41: ecosystem (init, events schema, CI script; tests/eco.rs, one at a time)

// Tests print what they measure: the print rule (clippy.toml) is for src/.
#![allow(clippy::disallowed_macros)]
mod support;

mod binaries;
mod bounded;
mod config_errors;
mod deploy;
mod doctor;
mod eco;
mod faults;
mod faults24;
mod first_hour;
mod first_hour_cli;
mod fleets;
mod inventory;
mod logs_status;
mod lost_revert;
mod many_files;
mod migrate;
mod plan;
mod promote;
mod props;
mod revert;
mod safety;
mod services;
mod shell;
mod ssh_certs;
mod ssh_config_oracle;
mod ssh_hops;
mod sshd_limits;
mod staged;
mod switch;
mod systemd;
mod transport;
mod upload;
mod upload_resume;
