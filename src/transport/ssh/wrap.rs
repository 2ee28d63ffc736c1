//! Every remote command runs under `/bin/sh`, whatever the user's login shell is.
//!
//! sshd runs a command as `$SHELL -c COMMAND`, so the login shell and its startup files (bash
//! reads ~/.bashrc even for a non-interactive ssh command) see it first: `set -e` there, a line
//! printed by it, zsh's globbing or fish's syntax would change what ferry's command does. ferry
//! therefore sends `exec /bin/sh -c 'SCRIPT'`, quoted so that bash, zsh, dash and fish all pass
//! SCRIPT through unchanged, and SCRIPT first prints a random marker line on stdout and on
//! stderr: what arrives before the marker is the startup files' output, not the command's.

use std::collections::VecDeque;

/// A random marker, new for every command (so no startup file or earlier output can fake it).
pub fn nonce() -> String {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 12];
    if ring::rand::SystemRandom::new().fill(&mut bytes).is_err() {
        // No system randomness: a time-based marker still tells startup output apart.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        bytes.copy_from_slice(&t.to_le_bytes()[..12]);
    }
    format!("ferry-start-{}", data_encoding::HEXLOWER.encode(&bytes))
}

/// Quote `s` as one word that bash, zsh, dash and fish all read back as `s`: single-quoted
/// runs for everything except `'` and `\`, which go outside the quotes as `\'` and `\\` (fish
/// reads those two escapes even inside single quotes; the POSIX shells do not). No empty `''`
/// is ever written (zsh's RC_QUOTES would read `''` inside quotes as a quote).
pub fn quote_any_shell(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    let mut open = false;
    for c in s.chars() {
        if c == '\'' || c == '\\' {
            if open {
                out.push('\'');
                open = false;
            }
            out.push('\\');
            out.push(c);
        } else {
            if !open {
                out.push('\'');
                open = true;
            }
            out.push(c);
        }
    }
    if open {
        out.push('\'');
    }
    if out.is_empty() {
        // An empty word: `""` means the same in all four shells.
        out.push_str("\"\"");
    }
    out
}

/// The command sent to sshd for `command`: a fresh `/bin/sh` in the home directory (a `cd`
/// in a startup file does not move ferry), the marker on both streams, then `command`.
pub fn wrap(command: &str, nonce: &str) -> String {
    let script =
        format!("cd 2>/dev/null; printf '%s\\n' {nonce}; printf '%s\\n' {nonce} >&2\n{command}");
    format!("exec /bin/sh -c {}", quote_any_shell(&script))
}

/// The longest command line ferry sends (the whole `exec` request, wrapped). A longer command
/// goes over the channel's stdin instead (see [`bounded`]): the command line is one argument of
/// the login shell's exec, which Linux limits to 128 KiB (`Argument list too long`), and sshd
/// drops a connection whose packet exceeds 256 KiB (`Bad packet length`).
pub const MAX_INLINE: usize = 32 * 1024;

/// The command line for `command`, and the bytes to send on stdin before the command's own
/// input: `command` itself, when its wrapped form would be longer than [`MAX_INLINE`].
///
/// A long command's line is a short reader: `/bin/sh`, the marker, then `head -c N` reads the
/// script (N bytes; on a pipe `head -c` never reads past them, so the command's own input that
/// follows stays for it), checks that it ends with a line naming the nonce (a cut connection
/// must never run the start of a script), and `eval`s it.
pub fn bounded(command: &str, nonce: &str) -> (String, Option<Vec<u8>>) {
    let inline = wrap(command, nonce);
    if inline.len() <= MAX_INLINE {
        return (inline, None);
    }
    let end = format!(": {nonce}-end");
    let mut script = Vec::with_capacity(command.len() + end.len() + 1);
    script.extend_from_slice(command.as_bytes());
    script.push(b'\n');
    script.extend_from_slice(end.as_bytes());
    let reader = format!(
        "ferry_script=$(head -c {n}) && case $ferry_script in *'{end}') ;; *) false ;; esac || \
         {{ echo 'ferry: the command did not arrive whole on stdin' >&2; exit 255; }}\n\
         eval \"$ferry_script\"",
        n = script.len(),
    );
    (wrap(&reader, nonce), Some(script))
}

/// Splits one stream at the marker line: what precedes it is the startup files' output.
#[derive(Debug)]
pub struct MarkerFilter {
    marker: Vec<u8>,
    /// Bytes before the marker, while it has not been seen.
    before: Vec<u8>,
    seen: bool,
}

impl MarkerFilter {
    pub fn new(nonce: &str) -> Self {
        let mut marker = nonce.as_bytes().to_vec();
        marker.push(b'\n');
        MarkerFilter {
            marker,
            before: Vec::new(),
            seen: false,
        }
    }

    pub fn seen(&self) -> bool {
        self.seen
    }

    /// What was printed before the marker (all of it, while the marker has not come).
    pub fn before(&self) -> &[u8] {
        &self.before
    }

    /// Feed a chunk; returns the command's own bytes in it (empty before the marker).
    pub fn feed(&mut self, data: &[u8]) -> Vec<u8> {
        if self.seen {
            return data.to_vec();
        }
        self.before.extend_from_slice(data);
        let before = &self.before;
        let at = (0..before.len().saturating_sub(self.marker.len() - 1))
            .find(|&p| before[p..].starts_with(&self.marker) && (p == 0 || before[p - 1] == b'\n'));
        match at {
            Some(p) => {
                self.seen = true;
                let rest = self.before.split_off(p + self.marker.len());
                self.before.truncate(p);
                rest
            }
            None => Vec::new(),
        }
    }
}

/// Both streams' filters and the events that arrived while waiting for the marker.
#[derive(Debug)]
pub struct Preamble {
    pub stdout: MarkerFilter,
    pub stderr: MarkerFilter,
    pub pending: VecDeque<super::Event>,
    /// Logged once that startup files printed something.
    pub reported: bool,
    /// An exit status that came before the marker: OpenSSH may send `exit-status` before the
    /// last of the output, so it is held until the marker shows up or the channel closes.
    pub early_exit: Option<super::Exit>,
}

impl Preamble {
    pub fn new(nonce: &str) -> Self {
        Preamble {
            stdout: MarkerFilter::new(nonce),
            stderr: MarkerFilter::new(nonce),
            pending: VecDeque::new(),
            reported: false,
            early_exit: None,
        }
    }

    /// How many bytes the login shell printed before ferry's command (both streams).
    pub fn noise(&self) -> usize {
        self.stdout.before().len() + self.stderr.before().len()
    }
}

/// The error text when the login shell never started ferry's command.
pub fn not_started(host: &str, user: &str, printed: &[u8]) -> String {
    let mut msg = format!(
        "the login shell of `{user}` on {host} did not run ferry's command: a startup file \
         (~/.bashrc, ~/.profile, ~/.zshenv, ~/.config/fish/config.fish, ...) probably runs \
         `exec` of another shell, exits, or waits for input; run `ssh {user}@HOST true` and fix \
         the file so that a command given to ssh runs"
    );
    let text = String::from_utf8_lossy(printed);
    let text = text.trim();
    if !text.is_empty() {
        let short: String = text.chars().take(300).collect();
        msg.push_str(&format!("; it printed: {short}"));
    }
    msg
}

/// The error text when SFTP cannot start because a startup file prints on stdout.
pub fn breaks_sftp(user: &str, printed: &[u8]) -> String {
    let text = String::from_utf8_lossy(printed);
    let short: String = text.trim().chars().take(200).collect();
    format!(
        "cannot start an SFTP session: the login shell of `{user}` prints {} bytes before any \
         command ({short:?}), which breaks SFTP (OpenSSH's own sftp and scp too, unless sshd \
         uses `Subsystem sftp internal-sftp`): make the startup file that prints (for bash \
         ~/.bashrc, which bash reads for ssh commands; else ~/.profile, ~/.zshenv or \
         ~/.config/fish/config.fish) print nothing when not interactive, e.g. put \
         `[ -t 1 ] || return` or `case $- in *i*) ;; *) return;; esac` before the line",
        printed.len()
    )
}

#[cfg(test)]
#[path = "wrap_tests.rs"]
mod tests;
