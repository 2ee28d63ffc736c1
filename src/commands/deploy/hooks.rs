//! Deploy hooks (`[services.NAME.hooks]`): commands run around the switch.
//!
//! - `before_switch` runs on each host in the new release's directory, under the service's
//!   lock, after the release is sealed and before anything live changes: a failure stops that
//!   host's deploy and the old release keeps serving, untouched.
//! - `after_switch` runs on each host in the new (now current) release's directory, once the
//!   units are verified up and healthy: a failure is a failed deploy (rolled back as planned).
//! - `migrate` runs once per rollout, on one host, after its seal and before any host
//!   switches (see `super::migrate`).
//! - `local_after` runs once per deploy on the machine running ferry, in the config's
//!   directory, after every host, with `FERRY_RESULT` (`ok`, `rolled-back`, `failed`).
//!
//! Remote hooks get `FERRY_SERVICE`, `FERRY_HOST`, `FERRY_RELEASE`, `FERRY_PREVIOUS_RELEASE`,
//! `FERRY_RELEASE_DIR` and the service's env (the release's env file); `local_after` gets the
//! service's env and `FERRY_SERVICE`, `FERRY_RESULT`, `FERRY_EXIT_CODE`, `FERRY_HOSTS`,
//! `FERRY_RELEASE`, `FERRY_PREVIOUS_RELEASE`, `FERRY_RESULTS` (one `HOST RESULT` line per
//! host). Every hook is bounded by `hooks.timeout` (default 5m). Their output is shown line by
//! line, prefixed by host (a `hook` event in JSON), with the values of secrets masked.
//!
//! A remote hook ends with its deploy: it runs in a process group of its own, ended (TERM,
//! then KILL) past its timeout or when ferry's channel closes (ferry exited, was killed, lost
//! the connection or gave up on the host), and holds the service's run lock while any of its
//! processes lives, which the next deploy waits for (see [`crate::shell::bounded`]).

use std::time::Duration;

use crate::config::Service;
use crate::error::{Exit, Result};
use crate::outcome::HostOutcome;
use crate::release::Paths;
use crate::release::env::EnvFile;
use crate::report::Reporter;
use crate::report::deploy::HostResult;
use crate::report::hooks::HookEvent;
use crate::session::ServiceSession;
use crate::shell::{Bounds, quote};
use crate::transport::ssh::{Stdin, Stream};

/// Which hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    Migrate,
    BeforeSwitch,
    AfterSwitch,
    LocalAfter,
}

impl Hook {
    pub fn name(self) -> &'static str {
        match self {
            Hook::Migrate => "migrate",
            Hook::BeforeSwitch => "before_switch",
            Hook::AfterSwitch => "after_switch",
            Hook::LocalAfter => "local_after",
        }
    }
}

/// Exit status of `timeout` when the time ran out (and when it had to KILL).
const TIMED_OUT: [u32; 2] = [124, 137];

/// The remote script of a hook: enter the release directory, export the FERRY_* variables and
/// the release's env, run the command bounded by `timeout` and by ferry's channel, holding the
/// service's run lock (see [`crate::shell::bounded`]).
pub fn remote_script(
    paths: &Paths,
    release: &str,
    vars: &[(&str, &str)],
    command: &str,
    timeout: Duration,
) -> String {
    let mut s = format!(
        "cd \"$HOME\" && cd {} || exit 1\n",
        quote(&paths.release(release))
    );
    for (k, v) in vars {
        s.push_str(&format!("export {k}={}\n", quote(v)));
    }
    s.push_str("export FERRY_RELEASE_DIR=\"$PWD\"\n");
    s.push_str(&format!(
        "if [ -f {f} ]; then set -a; . ./{f} || exit 1; set +a; fi\n",
        f = crate::paths::env_file_in_release()
    ));
    s.push_str(&crate::shell::bounded(
        command,
        &Bounds {
            timeout: Some(timeout),
            lock: Some(paths.run_lock()),
        },
    ));
    s
}

/// Splits streamed output into lines and emits each as a `hook` event.
struct Lines<'a> {
    reporter: &'a Reporter,
    host: &'a str,
    service: &'a str,
    hook: Hook,
    env: Option<&'a EnvFile>,
    out: Vec<u8>,
    err: Vec<u8>,
}

impl Lines<'_> {
    fn push(&mut self, stream: Stream, chunk: &[u8]) {
        let buf = match stream {
            Stream::Stdout => &mut self.out,
            Stream::Stderr => &mut self.err,
        };
        buf.extend_from_slice(chunk);
        let mut lines = Vec::new();
        while let Some(i) = buf.iter().position(|&b| b == b'\n') {
            let mut line: Vec<u8> = buf.drain(..=i).collect();
            line.pop();
            lines.push(line);
        }
        for line in lines {
            self.emit(stream, &line);
        }
    }

    fn emit(&self, stream: Stream, line: &[u8]) {
        let text = String::from_utf8_lossy(line);
        let text = match self.env {
            Some(env) => env.mask(&text),
            None => text.into_owned(),
        };
        self.reporter.emit(&HookEvent::line(
            self.host,
            self.service,
            self.hook.name(),
            match stream {
                Stream::Stdout => "stdout",
                Stream::Stderr => "stderr",
            },
            text.trim_end_matches('\r'),
        ));
    }

    fn finish(mut self) {
        for stream in [Stream::Stdout, Stream::Stderr] {
            let rest = match stream {
                Stream::Stdout => std::mem::take(&mut self.out),
                Stream::Stderr => std::mem::take(&mut self.err),
            };
            if !rest.is_empty() {
                self.emit(stream, &rest);
            }
        }
    }
}

/// Run a remote hook of the plan on this host. Ok(None) when it succeeded, Ok(Some(reason))
/// when it failed or timed out.
pub async fn run_remote(
    ss: &ServiceSession<'_>,
    hook: Hook,
    command: &str,
    release: &str,
    previous: Option<&str>,
    env: Option<&EnvFile>,
) -> Result<Option<String>> {
    let timeout = ss.service.hooks.timeout;
    let vars = [
        ("FERRY_SERVICE", ss.service.name.as_str()),
        ("FERRY_HOST", ss.host.name.as_str()),
        ("FERRY_RELEASE", release),
        ("FERRY_PREVIOUS_RELEASE", previous.unwrap_or("")),
    ];
    let script = remote_script(&ss.paths, release, &vars, command, timeout);
    ss.phase(
        "hook",
        format!(
            "running the {} hook: {}",
            hook.name(),
            crate::report::sanitize(command)
        ),
    );
    let mut lines = Lines {
        reporter: ss.reporter,
        host: &ss.host.name,
        service: &ss.service.name,
        hook,
        env,
        out: Vec::new(),
        err: Vec::new(),
    };
    // `timeout` on the host bounds the hook (once it has the run lock); this bounds a host
    // that stops answering. The channel's stdin stays open: when ferry ends or gives up on
    // it, the hook ends too.
    let limit = timeout + Duration::from_secs(30 + crate::shell::RUN_LOCK_WAIT_SECS);
    let process = ss.conn.spawn(&script, Stdin::Open).await?;
    let out = process
        .output_within(limit, |stream, chunk| lines.push(stream, chunk))
        .await?;
    let out = match out {
        Some(out) => out,
        None => {
            lines.finish();
            let reason = format!(
                "the {} hook did not finish within hooks.timeout ({}) and the host did not answer; ferry closed its channel, which ends the hook there",
                hook.name(),
                humantime::format_duration(timeout)
            );
            emit_status(
                ss.reporter,
                &ss.host.name,
                &ss.service.name,
                hook,
                false,
                None,
            );
            return Ok(Some(reason));
        }
    };
    lines.finish();
    let ok = out.success();
    emit_status(
        ss.reporter,
        &ss.host.name,
        &ss.service.name,
        hook,
        ok,
        out.status,
    );
    if ok {
        return Ok(None);
    }
    let why = match out.status {
        Some(s) if TIMED_OUT.contains(&s) => format!(
            "timed out after hooks.timeout ({})",
            humantime::format_duration(timeout)
        ),
        _ => out.status_text(),
    };
    Ok(Some(format!(
        "the {} hook `{}` failed ({why})",
        hook.name(),
        crate::report::sanitize(command)
    )))
}

fn emit_status(
    reporter: &Reporter,
    host: &str,
    service: &str,
    hook: Hook,
    ok: bool,
    status: Option<u32>,
) {
    reporter.emit(&HookEvent::status(host, service, hook.name(), ok, status));
}

/// What `local_after` is told about the deploy of a service: ok when every host is ok,
/// rolled-back when every other host was rolled back, else failed.
pub fn overall(results: &[&HostResult]) -> HostOutcome {
    if results.iter().all(|r| r.code == Exit::Ok) {
        HostOutcome::Ok
    } else if results
        .iter()
        .all(|r| r.code == Exit::Ok || r.result == HostOutcome::RolledBack)
    {
        HostOutcome::RolledBack
    } else {
        HostOutcome::Failed
    }
}

/// The FERRY_* variables of `local_after`.
pub fn local_vars(service: &str, results: &[&HostResult]) -> Vec<(String, String)> {
    let uniq = |f: &dyn Fn(&HostResult) -> Option<String>| {
        let mut v: Vec<String> = Vec::new();
        for r in results {
            if let Some(x) = f(r)
                && !v.contains(&x)
            {
                v.push(x);
            }
        }
        v.join(" ")
    };
    vec![
        ("FERRY_SERVICE".into(), service.to_string()),
        ("FERRY_RESULT".into(), overall(results).to_string()),
        (
            "FERRY_EXIT_CODE".into(),
            Exit::combine(results.iter().map(|r| r.code)).to_string(),
        ),
        ("FERRY_HOSTS".into(), uniq(&|r| Some(r.host.clone()))),
        ("FERRY_RELEASE".into(), uniq(&|r| r.release.clone())),
        (
            "FERRY_PREVIOUS_RELEASE".into(),
            uniq(&|r| r.previous.clone()),
        ),
        (
            "FERRY_RESULTS".into(),
            results
                .iter()
                .map(|r| format!("{} {}", r.host, r.result))
                .collect::<Vec<_>>()
                .join("\n"),
        ),
    ]
}

/// Run `local_after` of `service` (when set) with the results of its hosts. A failure is a
/// warning: the hosts' results stand.
pub async fn run_local(
    service: &Service,
    results: &[&HostResult],
    env: Option<&EnvFile>,
    reporter: &Reporter,
) {
    let Some(command) = &service.hooks.local_after else {
        return;
    };
    let timeout = service.hooks.timeout;
    let mut cmd = tokio::process::Command::new("sh");
    cmd.arg("-c")
        .arg(command)
        .current_dir(&service.hooks.dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let own = env.map(|e| e.vars().to_vec()).unwrap_or_default();
    for (k, v) in own.into_iter().chain(local_vars(&service.name, results)) {
        cmd.env(k, v);
    }
    let host = "local";
    let failed = |why: String| {
        reporter.emit(&HookEvent::status(
            host,
            &service.name,
            Hook::LocalAfter.name(),
            false,
            None,
        ));
        reporter.warn(
            None,
            &format!(
                "{}: the local_after hook `{}` {why}; the deploy's result stands",
                service.name,
                crate::report::sanitize(command)
            ),
        );
    };
    let child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return failed(format!("could not start: {e}")),
    };
    let out = match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(Ok(out)) => out,
        Ok(Err(e)) => return failed(format!("failed: {e}")),
        Err(_) => {
            return failed(format!(
                "did not finish within hooks.timeout ({}) and was stopped",
                humantime::format_duration(timeout)
            ));
        }
    };
    let mut lines = Lines {
        reporter,
        host,
        service: &service.name,
        hook: Hook::LocalAfter,
        env,
        out: Vec::new(),
        err: Vec::new(),
    };
    lines.push(Stream::Stdout, &out.stdout);
    lines.push(Stream::Stderr, &out.stderr);
    lines.finish();
    if out.status.success() {
        reporter.emit(&HookEvent::status(
            host,
            &service.name,
            Hook::LocalAfter.name(),
            true,
            Some(0),
        ));
    } else {
        failed(match out.status.code() {
            Some(c) => format!("failed (exit status {c})"),
            None => "was killed by a signal".to_string(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_enters_the_release_exports_and_bounds_the_hook() {
        let s = remote_script(
            &Paths::new("api"),
            "20261124T120000Z-abcdef01",
            &[("FERRY_HOST", "web 1"), ("FERRY_PREVIOUS_RELEASE", "")],
            "bin/api migrate 'x'",
            Duration::from_secs(300),
        );
        let pos = |n: &str| s.find(n).unwrap_or_else(|| panic!("{n} in {s}"));
        assert!(
            pos("cd .local/share/ferry/api/releases/20261124T120000Z-abcdef01")
                < pos("export FERRY_HOST='web 1'")
        );
        assert!(pos("export FERRY_PREVIOUS_RELEASE=''") < pos(". ./.ferry/env"));
        assert!(pos(". ./.ferry/env") < pos("flock -w 30 9"));
        assert!(
            pos("exec 9>>\"$HOME\"/.local/share/ferry/api/lock.run")
                < pos("setsid timeout -k 5s 300s sh -c 'bin/api migrate '\\''x'\\''' 3<&- &")
        );
    }

    fn result(host: &str, result: HostOutcome, code: Exit) -> HostResult {
        HostResult::new(host, "api", result, Some("R2"), Some("R1"), None, code)
    }

    #[test]
    fn local_after_is_told_the_overall_result() {
        let ok = result("a", HostOutcome::Ok, Exit::Ok);
        let rb = result("b", HostOutcome::RolledBack, Exit::RolledBack);
        let failed = result("c", HostOutcome::Failed, Exit::Failed);
        assert_eq!(overall(&[&ok]), HostOutcome::Ok);
        assert_eq!(overall(&[&ok, &rb]), HostOutcome::RolledBack);
        assert_eq!(overall(&[&ok, &rb, &failed]), HostOutcome::Failed);
        let vars = local_vars("api", &[&ok, &rb]);
        let get = |k: &str| vars.iter().find(|(n, _)| n == k).unwrap().1.clone();
        assert_eq!(get("FERRY_RESULT"), "rolled-back");
        assert_eq!(get("FERRY_EXIT_CODE"), "4");
        assert_eq!(get("FERRY_HOSTS"), "a b");
        assert_eq!(get("FERRY_RELEASE"), "R2");
        assert_eq!(get("FERRY_RESULTS"), "a ok\nb rolled-back");
    }
}
