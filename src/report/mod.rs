//! The reporting layer: the only code that prints.
//!
//! stdout carries data: human text, or JSON Lines with `--output json` (one object per line, with
//! a `type` field). stderr carries progress, warnings and errors. Colour only on a terminal and
//! never with NO_COLOR. Progress bars only on a terminal and never when quiet.

// The one place that prints (clippy.toml forbids the print macros elsewhere).
#![allow(clippy::disallowed_macros)]

pub mod diff;
pub mod doctor;
pub mod hooks;
pub mod logs;
pub mod status;
pub mod table;
pub mod tally;
pub mod units;

use std::io::{IsTerminal, Write};
use std::sync::Mutex;

use serde::Serialize;

use crate::error::Error;
pub use crate::human::{sanitize, sanitize_lines};

pub mod deploy;
pub mod fleet;
pub mod releases;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Human,
    Json,
}

/// ANSI styling, active only when the stream is a terminal and NO_COLOR is unset.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    pub color: bool,
}

impl Style {
    fn paint(&self, code: &str, s: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
    pub fn red(&self, s: &str) -> String {
        self.paint("31", s)
    }
    pub fn green(&self, s: &str) -> String {
        self.paint("32", s)
    }
    pub fn yellow(&self, s: &str) -> String {
        self.paint("33", s)
    }
    pub fn bold(&self, s: &str) -> String {
        self.paint("1", s)
    }
    pub fn dim(&self, s: &str) -> String {
        self.paint("2", s)
    }
}

/// An event that can be shown to people as well as serialised.
pub trait Human {
    /// Lines for stdout (no trailing newline), or None to print nothing in human mode.
    fn human(&self, style: &Style) -> Option<String>;
}

/// Plain text for people (see [`Reporter::heading`]).
#[derive(Debug, Clone, Serialize)]
struct Text(String);

impl Human for Text {
    fn human(&self, _: &Style) -> Option<String> {
        Some(self.0.clone())
    }
}

/// Prints events, progress and errors.
pub struct Reporter {
    pub format: Format,
    pub quiet: bool,
    out_style: Style,
    err_style: Style,
    pub progress_bars: bool,
    lock: Mutex<()>,
    multi: indicatif::MultiProgress,
    /// Live per-host lines of a rollout (see [`fleet::Lines`]).
    fleet: fleet::Lines,
    /// How far a deploy or rollback got on each host, for what an interrupt prints.
    tally: tally::Tally,
}

fn color_allowed(is_tty: bool) -> bool {
    is_tty && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

impl Reporter {
    pub fn new(format: Format, quiet: bool, verbose: bool) -> Reporter {
        crate::fault::notices_to(fault_notice);
        let stderr_tty = std::io::stderr().is_terminal();
        let multi = indicatif::MultiProgress::new();
        let progress_bars = stderr_tty && !quiet && !verbose;
        if !progress_bars {
            multi.set_draw_target(indicatif::ProgressDrawTarget::hidden());
        }
        Reporter {
            format,
            quiet,
            out_style: Style {
                color: color_allowed(std::io::stdout().is_terminal()) && format == Format::Human,
            },
            err_style: Style {
                color: color_allowed(stderr_tty),
            },
            progress_bars,
            lock: Mutex::new(()),
            multi,
            fleet: fleet::Lines::default(),
            tally: tally::Tally::default(),
        }
    }

    /// How far the deploy or rollback under way got on each host.
    pub fn tally(&self) -> &tally::Tally {
        &self.tally
    }

    pub fn style(&self) -> Style {
        self.out_style
    }

    pub fn err_style(&self) -> Style {
        self.err_style
    }

    /// Print a data event on stdout, as JSON or as text.
    pub fn emit<E: Serialize + Human>(&self, event: &E) {
        let line = match self.format {
            Format::Json => Some(serde_json::to_string(event).expect("events serialise")),
            Format::Human => event.human(&self.out_style),
        };
        if let Some(line) = line {
            let _g = self.lock.lock().unwrap();
            self.multi.suspend(|| {
                let mut out = std::io::stdout().lock();
                // A closed pipe (ferry ... | head) is not an error worth a panic.
                let _ = writeln!(out, "{line}");
                let _ = out.flush();
            });
        }
    }

    /// A progress message on stderr (hidden with --quiet).
    pub fn progress(&self, host: Option<&str>, message: &str) {
        if self.quiet {
            return;
        }
        if let Some(h) = host
            && self.fleet_update(h, message)
        {
            return;
        }
        // Fitted to the terminal (a one-host deploy's lines would wrap at 80 columns).
        let width = table::stderr_width();
        let line = match host {
            Some(h) => format!(
                "{} {}",
                self.err_style.bold(&format!("{h}:")),
                table::fit(message, h.chars().count() + 2, width)
            ),
            None => table::fit(message, 0, width),
        };
        self.stderr_line(&line);
    }

    /// A warning on stderr (shown even with --quiet).
    pub fn warn(&self, host: Option<&str>, message: &str) {
        let message = &sanitize_lines(message);
        let prefix = self.err_style.yellow("warning:");
        let line = match host {
            Some(h) => format!("{prefix} {h}: {message}"),
            None => format!("{prefix} {message}"),
        };
        self.stderr_line(&line);
    }

    /// An error with its hint on stderr.
    pub fn error(&self, err: &Error) {
        // Errors carry remote text (stderr of commands): never let it drive the terminal.
        let mut text = format!(
            "{} {}",
            self.err_style.red("error:"),
            sanitize_lines(&err.to_string())
        );
        if let Some(hint) = err.hint() {
            text.push_str(&format!(
                "\n{} {}",
                self.err_style.bold("hint:"),
                sanitize_lines(&hint)
            ));
        }
        self.stderr_line(&text);
    }

    /// A host that could not be connected to, said once: for people one line on stderr with
    /// the way it failed (`UNREACHABLE`, `HOST KEY REFUSED`, `AUTHENTICATION FAILED`), the
    /// reason and the hint, as `ferry status` says it; with `--output json` a `host` event.
    pub fn not_connected(&self, host: &str, err: &Error) {
        let event = status::HostError::new(host, err);
        match self.format {
            Format::Json => self.emit(&event),
            Format::Human => {
                if let Some(text) = event.human(&self.err_style) {
                    self.stderr_line(&text);
                }
            }
        }
    }

    /// A host's failure: [`Reporter::not_connected`] when it could not be connected to,
    /// else an [`Reporter::error`].
    pub fn host_error(&self, host: &str, err: &Error) {
        if err.connect_failure().is_some() {
            self.not_connected(host, err);
        } else {
            self.error(err);
        }
    }

    /// A line of data for people only (a heading): nothing in JSON mode.
    pub fn heading(&self, line: &str) {
        if self.format == Format::Human {
            self.emit(&Text(line.to_string()));
        }
    }

    pub fn stderr_line(&self, line: &str) {
        let _g = self.lock.lock().unwrap();
        self.multi.suspend(|| {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "{line}");
        });
    }

    /// A byte progress bar for one host's upload (hidden when not on a terminal).
    pub fn bytes_bar(&self, host: &str, total: u64) -> indicatif::ProgressBar {
        if self.fleet.is_active() {
            // A fleet shows one line per host, not a bar per upload.
            return indicatif::ProgressBar::hidden();
        }
        let bar = self.multi.add(indicatif::ProgressBar::new(total));
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{prefix:.bold} {bar:30} {bytes}/{total_bytes} {bytes_per_sec} {msg}",
            )
            .expect("valid template"),
        );
        bar.set_prefix(host.to_string());
        bar
    }
}

/// Bytes as text: valid UTF-8 as is, invalid bytes as `\xNN`, control characters escaped.
pub fn sanitize_bytes(b: &[u8]) -> String {
    let mut out = String::with_capacity(b.len());
    for chunk in b.utf8_chunks() {
        out.push_str(&sanitize(chunk.valid()));
        for byte in chunk.invalid() {
            out.push_str(&format!("\\x{byte:02x}"));
        }
    }
    out
}

/// Write generated text (completions, man pages) to stdout as it is (a closed pipe is not an
/// error).
pub fn print_raw(bytes: &[u8]) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(bytes);
    let _ = out.flush();
}

/// A line for the test suite's fault injection (see `crate::fault`), on stderr whatever the
/// output format: a test waits for it to act at a known point.
pub fn fault_notice(line: &str) {
    eprintln!("{line}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitizes_control_and_invalid_bytes() {
        assert_eq!(sanitize("a\x1b[31mred"), "a\\u{1b}[31mred");
        assert_eq!(sanitize("tab\tok"), "tab\tok");
        assert_eq!(sanitize_bytes(b"ok \xff\xfe end\n"), "ok \\xff\\xfe end\\n");
        assert_eq!(sanitize_bytes("ünï".as_bytes()), "ünï");
        assert_eq!(sanitize_lines("a\x1b]0;x\x07\nb"), "a\\u{1b}]0;x\\u{7}\nb");
    }

    #[test]
    fn style_without_color_is_plain() {
        let s = Style { color: false };
        assert_eq!(s.red("x"), "x");
        let s = Style { color: true };
        assert_eq!(s.red("x"), "\x1b[31mx\x1b[0m");
    }
}
