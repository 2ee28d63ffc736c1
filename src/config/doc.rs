//! The spanned TOML document: key paths, and the file line each key is on, for error locations.

use serde::Deserialize;
use std::path::Path;
use toml::de::{DeTable, DeValue};

use super::*;

/// A step of a key path.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

pub(crate) fn key_string(path: &[Seg]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            Seg::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

/// `s` with control characters escaped (`\u{1b}`, `\n`), so a value never drives the terminal.
pub(crate) fn printable(s: &str) -> std::borrow::Cow<'_, str> {
    if s.chars().any(char::is_control) {
        s.chars()
            .map(|c| {
                if c.is_control() {
                    c.escape_default().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect::<String>()
            .into()
    } else {
        s.into()
    }
}

/// The document, parsed once: serde reads the schema from it, and its spans give the line of
/// every key and value an error names.
pub(crate) struct Doc<'a> {
    pub(crate) text: &'a str,
    pub(crate) root: toml::Spanned<DeTable<'a>>,
}

impl<'a> Doc<'a> {
    /// A TOML syntax error, located.
    pub(crate) fn parse(text: &'a str, path: &Path) -> Result<Doc<'a>, ConfigErrors> {
        let root = DeTable::parse(text).map_err(|e| {
            ConfigErrors(vec![ConfigError {
                file: path.to_path_buf(),
                line: e.span().map(|s| line_of(text, s.start)),
                key: String::new(),
                message: e.message().trim().to_string(),
            }])
        })?;
        Ok(Doc { text, root })
    }

    /// The raw schema (unknown keys and wrong types refused, with the key they concern).
    pub(crate) fn raw(&self, path: &Path) -> Result<RawConfig, ConfigErrors> {
        RawConfig::deserialize(toml::de::Deserializer::from(self.root.clone())).map_err(|e| {
            ConfigErrors(vec![ConfigError {
                file: path.to_path_buf(),
                line: e.span().map(|s| line_of(self.text, s.start)),
                key: e
                    .span()
                    .and_then(|s| self.key_at(s.start))
                    .unwrap_or_default(),
                message: e.message().trim().to_string(),
            }])
        })
    }

    /// The value at `path`, when it is written in the file.
    pub(crate) fn get(&self, path: &[Seg]) -> Option<&toml::Spanned<DeValue<'a>>> {
        let mut found = None;
        let mut table = Some(self.root.get_ref());
        let mut array: Option<&toml::de::DeArray<'a>> = None;
        for seg in path {
            let next = match (seg, table, array) {
                (Seg::Key(k), Some(t), _) => t.get(*k),
                (Seg::Index(i), _, Some(a)) => a.get(*i),
                _ => None,
            }?;
            (table, array) = match next.get_ref() {
                DeValue::Table(t) => (Some(t), None),
                DeValue::Array(a) => (None, Some(a)),
                _ => (None, None),
            };
            found = Some(next);
        }
        found
    }

    /// The line of the value at `path`, or of its nearest ancestor that is written.
    pub(crate) fn locate(&self, path: &[Seg]) -> Option<usize> {
        (1..=path.len())
            .rev()
            .find_map(|n| self.get(&path[..n]))
            .map(|v| line_of(self.text, v.span().start))
    }

    /// The dotted key whose value (or key) covers a byte offset, e.g. `defaults.port`.
    /// (Table spans cover only their headers, so every entry is searched.)
    pub(crate) fn key_at(&self, offset: usize) -> Option<String> {
        fn covers(r: std::ops::Range<usize>, offset: usize) -> bool {
            r.start <= offset && offset < r.end.max(r.start + 1)
        }
        fn is_leaf(v: &DeValue) -> bool {
            !matches!(v, DeValue::Table(_) | DeValue::Array(_))
        }
        fn walk(value: &DeValue, offset: usize, path: &mut Vec<String>) -> bool {
            match value {
                DeValue::Table(t) => walk_table(t, offset, path),
                DeValue::Array(a) => {
                    for (i, v) in a.iter().enumerate() {
                        let last = path.last().cloned().unwrap_or_default();
                        if let Some(l) = path.last_mut() {
                            l.push_str(&format!("[{i}]"));
                        }
                        if (is_leaf(v.get_ref()) && covers(v.span(), offset))
                            || walk(v.get_ref(), offset, path)
                        {
                            return true;
                        }
                        if let Some(l) = path.last_mut() {
                            *l = last;
                        }
                    }
                    false
                }
                _ => false,
            }
        }
        fn walk_table(t: &DeTable, offset: usize, path: &mut Vec<String>) -> bool {
            for (k, v) in t.iter() {
                path.push(k.get_ref().to_string());
                if (is_leaf(v.get_ref()) && covers(v.span(), offset))
                    || covers(k.span(), offset)
                    || walk(v.get_ref(), offset, path)
                {
                    return true;
                }
                path.pop();
            }
            false
        }
        let mut path = Vec::new();
        walk_table(self.root.get_ref(), offset, &mut path).then(|| path.join("."))
    }
}

/// 1-based line of a byte offset.
pub(crate) fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}
