//! `ferry exec SERVICE [-H NAME]... [--parallel N] -- COMMAND...`: run a command on the
//! service's hosts as the deploy user, in the current release's directory
//! (`~/.local/share/ferry/SERVICE/current`) with the release's `bin/` first on PATH (as health
//! commands run) and `FERRY_SERVICE`, `FERRY_RELEASE` set.
//!
//! The command's words are quoted one by one (src/shell.rs): the host runs exactly these
//! arguments, without a shell interpreting them (`-- sh -c 'a | b'` for a pipeline). Output is
//! printed line by line as it comes, prefixed by the host; `--output json` gives one `exec`
//! object per host instead. Exit: 0 when the command exited 0 everywhere, 1 when it exited
//! non-zero (or could not run) on a host, 3 when a host could not be reached (said once per
//! host with the way it failed, as `ferry status` says it).

use std::sync::Arc;

use crate::cli::ExecArgs;
use crate::commands::{Context, fanout, targets};
use crate::config::{Host, Service};
use crate::error::{Exit, Result};
use crate::release::Paths;
use crate::report::fleet::{ExecEvent, ExecSummary};
use crate::report::{Format, Reporter, sanitize_bytes};
use crate::shell::{self, quote};
use crate::transport::ssh::{self, Stdin, Stream};

#[derive(Debug, Clone)]
pub struct Options {
    pub service: String,
    pub hosts: Vec<String>,
    pub parallel: usize,
    pub command: Vec<String>,
}

/// Exit status with which the wrapper says the service has no current release on the host,
/// together with [`NO_CURRENT`] on stderr.
const NO_CURRENT_STATUS: u32 = 97;
const NO_CURRENT: &str = "ferry-exec: no current release";

/// The remote command line: go to the current release, set the environment, run `command`,
/// bounded by ferry's channel: it ends when ferry does (see [`shell::bounded`]).
pub fn script(service: &str, command: &[String]) -> String {
    shell::bounded(&unbounded(service, command), &shell::Bounds::default())
}

/// What [`script`] bounds.
fn unbounded(service: &str, command: &[String]) -> String {
    let paths = Paths::new(service);
    format!(
        "D=\"$HOME\"/{dir}; if [ ! -d \"$D\" ]; then printf '%s\\n' {marker} >&2; exit {NO_CURRENT_STATUS}; fi; \
         cd \"$D\" && PATH=\"$D/bin:$PATH\" FERRY_SERVICE={svc} FERRY_RELEASE=\"$(basename \"$(readlink \"$D\")\")\" && \
         export PATH FERRY_SERVICE FERRY_RELEASE && {cmd}",
        dir = quote(&paths.current()),
        marker = quote(NO_CURRENT),
        svc = quote(service),
        cmd = shell::command(command),
    )
}

/// `ferry exec`.
pub async fn run(args: ExecArgs, ctx: &Context) -> Result<Exit> {
    let config = ctx.config_for_hosts()?;
    let opts = Options {
        service: targets::the_service(&config, args.service.as_deref())?,
        hosts: ctx.hosts.clone(),
        parallel: args.parallel as usize,
        command: args.command,
    };
    let reporter = &ctx.reporter;
    let (service, hosts) = targets::service_hosts(&config, &opts.service, &opts.hosts)?;
    let script = Arc::new(script(&service.name, &opts.command));
    let service = Arc::new(service);
    let r = reporter.clone();
    let events: Vec<ExecEvent> = fanout::each(hosts, opts.parallel, move |host: Host| {
        let (r, service, script) = (r.clone(), service.clone(), script.clone());
        async move { exec_host(&host, &service, &script, &r).await }
    })
    .await;
    let code = Exit::combine(events.iter().map(|e| e.code));
    let ok = events.iter().filter(|e| e.code.is_ok()).count();
    let summary = ExecSummary {
        kind: "summary",
        service: opts.service.clone(),
        ok,
        failed: events.len() - ok,
        exit_code: code,
    };
    if reporter.format == Format::Json {
        for e in &events {
            reporter.emit(e);
        }
        reporter.emit(&summary);
    } else {
        reporter.progress(None, &summary.text());
    }
    Ok(code)
}

/// Splits a stream into lines and prints each, prefixed by the host.
struct LinePrinter<'a> {
    host: &'a str,
    reporter: &'a Reporter,
    stream: Stream,
    partial: Vec<u8>,
}

impl LinePrinter<'_> {
    fn feed(&mut self, data: &[u8]) {
        self.partial.extend_from_slice(data);
        while let Some(i) = self.partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=i).collect();
            self.print(&line[..line.len() - 1]);
        }
    }

    fn finish(&mut self) {
        if !self.partial.is_empty() {
            let line = std::mem::take(&mut self.partial);
            self.print(&line);
        }
    }

    fn print(&self, line: &[u8]) {
        let line = sanitize_bytes(line.strip_suffix(b"\r").unwrap_or(line));
        match self.stream {
            Stream::Stdout => {
                let host = self.reporter.style().bold(&format!("{}:", self.host));
                self.reporter.heading(&format!("{host} {line}"));
            }
            Stream::Stderr => {
                let host = self.reporter.err_style().bold(&format!("{}:", self.host));
                self.reporter.stderr_line(&format!("{host} {line}"));
            }
        }
    }
}

async fn exec_host(host: &Host, service: &Service, script: &str, reporter: &Reporter) -> ExecEvent {
    let mut event = ExecEvent {
        kind: "exec",
        host: host.name.clone(),
        service: service.name.clone(),
        stdout: String::new(),
        stderr: String::new(),
        exit_status: None,
        signal: None,
        error: None,
        connection: None,
        hint: None,
        code: Exit::Ok,
    };
    // No "connecting" progress line: the command's output is what people read here.
    let conn = match ssh::connect(host).await {
        Ok(c) => c,
        Err(e) => {
            match e.connect_failure() {
                // Said once, by this event.
                Some(_) if reporter.format == Format::Json => {}
                _ => reporter.host_error(&host.name, &e),
            }
            event.error = Some(e.to_string());
            event.connection = e.connect_failure();
            event.hint = e.connect_failure().and_then(|_| e.hint());
            event.code = e.exit_code();
            return event;
        }
    };
    let stream_lines = reporter.format == Format::Human;
    let mut out = LinePrinter {
        host: &host.name,
        reporter,
        stream: Stream::Stdout,
        partial: Vec::new(),
    };
    let mut err = LinePrinter {
        host: &host.name,
        reporter,
        stream: Stream::Stderr,
        partial: Vec::new(),
    };
    // The channel's stdin stays open while ferry waits: when ferry ends (Ctrl-C, killed), the
    // command ends too (see `shell::bounded`).
    let result = match conn.spawn(script, Stdin::Open).await {
        Ok(process) => {
            process
                .output(|stream, data| {
                    if stream_lines {
                        match stream {
                            Stream::Stdout => out.feed(data),
                            Stream::Stderr => err.feed(data),
                        }
                    }
                })
                .await
        }
        Err(e) => Err(e),
    };
    conn.close().await;
    match result {
        Err(e) => {
            out.finish();
            err.finish();
            reporter.error(&e);
            event.error = Some(e.to_string());
            event.code = e.exit_code().or_failed();
        }
        Ok(o) if o.status == Some(NO_CURRENT_STATUS) && o.stderr_str().trim() == NO_CURRENT => {
            let message = format!(
                "{}: {} has no current release here (~/{}); deploy it first: ferry deploy {} -H {}",
                host.name,
                service.name,
                Paths::new(&service.name).current(),
                service.name,
                host.name
            );
            reporter.warn(None, &message);
            event.error = Some(message);
            event.code = Exit::Failed;
        }
        Ok(o) => {
            out.finish();
            err.finish();
            event.stdout = o.stdout_str();
            event.stderr = o.stderr_str();
            event.exit_status = o.status;
            event.signal = o.signal.clone();
            if !o.success() {
                event.code = Exit::Failed;
                reporter.warn(
                    Some(&host.name),
                    &format!("the command ended with {}", o.status_text()),
                );
            }
        }
    }
    event
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_quotes_every_word_and_runs_in_current() {
        let s = unbounded(
            "api",
            &["echo".into(), "a b".into(), "$HOME".into(), "it's".into()],
        );
        let bounded = script("api", &["true".into()]);
        assert!(
            bounded.starts_with("exec 3<&0 </dev/null\nsetsid sh -c 'D="),
            "{bounded}"
        );
        assert!(
            s.starts_with("D=\"$HOME\"/.local/share/ferry/api/current; "),
            "{s}"
        );
        assert!(s.ends_with("&& echo 'a b' '$HOME' 'it'\\''s'"), "{s}");
        assert!(s.contains("PATH=\"$D/bin:$PATH\""), "{s}");
    }

    /// The script runs through a real local `sh`: in the release dir, with its bin/ on PATH,
    /// the arguments intact, the exit status kept, and the marker when there is no release.
    /// (Unbounded: `output()` gives it no stdin to hold open; `shell::bounded` has its own
    /// tests.)
    #[test]
    fn script_runs_through_sh() {
        let home = tempfile::tempdir().unwrap();
        let sh = |cmd: &[&str]| {
            let cmd: Vec<String> = cmd.iter().map(|s| s.to_string()).collect();
            std::process::Command::new("sh")
                .arg("-c")
                .arg(unbounded("api", &cmd))
                .env("HOME", home.path())
                .output()
                .unwrap()
        };
        let out = sh(&["true"]);
        assert_eq!(out.status.code(), Some(NO_CURRENT_STATUS as i32));
        assert_eq!(String::from_utf8_lossy(&out.stderr).trim(), NO_CURRENT);

        let base = home.path().join(".local/share/ferry/api");
        std::fs::create_dir_all(base.join("releases/R1/bin")).unwrap();
        std::os::unix::fs::symlink("releases/R1", base.join("current")).unwrap();
        let tool = base.join("releases/R1/bin/tool");
        std::fs::write(&tool, "#!/bin/sh\necho tool \"$@\"\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();

        let out = sh(&[
            "sh",
            "-c",
            "pwd -P; echo \"$FERRY_SERVICE $FERRY_RELEASE\"; tool 'x y'; exit 3",
        ]);
        assert_eq!(out.status.code(), Some(3));
        let text = String::from_utf8_lossy(&out.stdout);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].ends_with("/releases/R1"), "{text}");
        assert_eq!(lines[1..], ["api R1", "tool x y"]);
        let out = sh(&["printf", "%s|", "a b", "$x", "semi;colon"]);
        assert_eq!(String::from_utf8_lossy(&out.stdout), "a b|$x|semi;colon|");
    }
}
