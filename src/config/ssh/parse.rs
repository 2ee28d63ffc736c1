//! One ssh_config file's lines, split as OpenSSH splits them: a keyword (case-insensitive,
//! separated from its arguments by whitespace or one `=`), then arguments split on whitespace,
//! with double or single quotes grouping and a `#` at the start of an argument ending the line.

use std::path::Path;

use super::SshConfigError;

/// One line that is not blank or a comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Line {
    pub(crate) line: usize,
    /// Lowercase.
    pub(crate) keyword: String,
    pub(crate) args: Vec<String>,
    /// The text after the keyword, as written (ProxyCommand and the other commands keep it).
    pub(crate) rest: String,
}

/// The lines of one file, `file` naming it in errors.
pub(crate) fn parse(text: &str, file: &Path) -> Result<Vec<Line>, SshConfigError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let s = raw.trim_start_matches([' ', '\t', '\r']);
        let s = s.trim_end_matches([' ', '\t', '\r', '\n']);
        if s.is_empty() || s.starts_with('#') {
            continue;
        }
        let end = s.find([' ', '\t', '=']).unwrap_or(s.len());
        let keyword = s[..end].to_ascii_lowercase();
        let mut rest = s[end..].trim_start_matches([' ', '\t']);
        if let Some(r) = rest.strip_prefix('=') {
            rest = r.trim_start_matches([' ', '\t']);
        }
        let args = split_args(rest).map_err(|m| SshConfigError::at(file, n, &keyword, m))?;
        out.push(Line {
            line: n,
            keyword,
            args,
            rest: rest.to_string(),
        });
    }
    Ok(out)
}

/// Arguments: whitespace-separated, quotes group (and are removed), a backslash escapes a quote,
/// a space or a backslash; an argument starting with `#` ends the line.
fn split_args(s: &str) -> Result<Vec<String>, String> {
    let mut args = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while matches!(chars.peek(), Some(' ' | '\t')) {
            chars.next();
        }
        match chars.peek() {
            None | Some('#') => break,
            _ => {}
        }
        let mut arg = String::new();
        let mut quote: Option<char> = None;
        while let Some(&c) = chars.peek() {
            match (c, quote) {
                (' ' | '\t', None) => break,
                ('\\', _) => {
                    chars.next();
                    match chars.peek() {
                        Some(&n @ ('"' | '\'' | ' ' | '\\')) => {
                            arg.push(n);
                            chars.next();
                        }
                        _ => arg.push('\\'),
                    }
                    continue;
                }
                ('"' | '\'', None) => quote = Some(c),
                (q, Some(open)) if q == open => quote = None,
                _ => arg.push(c),
            }
            chars.next();
        }
        if quote.is_some() {
            return Err("unterminated quote".into());
        }
        args.push(arg);
    }
    Ok(args)
}
