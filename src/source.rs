//! The experiment file's text, kept so that every later error can point at
//! the exact `file:line:col` it is about.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use miette::NamedSource;

use crate::error::Error;

#[derive(Debug, Clone)]
pub struct Source {
    pub path: PathBuf,
    pub text: Arc<str>,
}

impl Source {
    pub fn new(path: &Path, text: String) -> Self {
        Source {
            path: path.to_path_buf(),
            text: text.into(),
        }
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
        let col = self.text[line_start..offset].chars().count() + 1;
        (line, col)
    }

    pub fn location(&self, offset: usize) -> String {
        let (line, col) = self.line_col(offset);
        format!("{}:{line}:{col}", self.path.display())
    }

    /// The dotted key path (`table.key`) whose line contains `offset`: toml's
    /// error type does not expose the key, so it is recovered from the text.
    pub fn key_at(&self, offset: usize) -> Option<String> {
        let offset = offset.min(self.text.len());
        let line_start = self.text[..offset].rfind('\n').map(|i| i + 1).unwrap_or(0);
        let line = self.text[line_start..].lines().next().unwrap_or("");
        let key = line
            .split_once('=')
            .map(|(k, _)| k.trim().trim_matches('"').to_string())
            .filter(|k| !k.is_empty() && !k.starts_with('['));
        // An error on a table header (a missing field) is about that table,
        // not the one before it.
        let header = |l: &str| {
            let l = l.split('#').next().unwrap_or("").trim();
            l.starts_with('[')
                .then(|| l.trim_matches(|c| c == '[' || c == ']').trim().to_string())
        };
        let table = header(line).or_else(|| self.text[..line_start].lines().rev().find_map(header));
        match (table, key) {
            (Some(t), Some(k)) => Some(format!("{t}.{k}")),
            (None, Some(k)) => Some(k),
            (Some(t), None) if line.trim_start().starts_with('[') => Some(t),
            _ => None,
        }
    }

    pub fn error(&self, span: Range<usize>, message: impl Into<String>) -> Error {
        self.error_labeled(span, message, "here")
    }

    pub fn error_labeled(
        &self,
        span: Range<usize>,
        message: impl Into<String>,
        label: impl Into<String>,
    ) -> Error {
        let start = span.start.min(self.text.len());
        let len = span.end.saturating_sub(span.start).max(1);
        let len = len.min(self.text.len().saturating_sub(start));
        Error::Config {
            location: self.location(start),
            message: message.into(),
            src: NamedSource::new(self.path.display().to_string(), self.text.clone()),
            span: (start, len).into(),
            label: label.into(),
            help: None,
        }
    }

    /// Turns toml's parse/type error into ours, naming the key when we can.
    pub fn from_toml(&self, err: toml::de::Error) -> Error {
        let span = err.span().unwrap_or(0..0);
        let msg = err.message().trim().to_string();
        let msg = match self.key_at(span.start) {
            Some(key) if msg.starts_with("missing field") => format!("{msg} in table [{key}]"),
            Some(key) if !msg.contains(&format!("`{key}`")) => format!("{msg} (key `{key}`)"),
            _ => msg,
        };
        let help = unknown_field_help(&msg);
        let e = self.error(span, msg);
        match help {
            Some(h) => e.with_help(h),
            None => e,
        }
    }
}

fn unknown_field_help(msg: &str) -> Option<String> {
    msg.starts_with("unknown field")
        .then(|| "remove the key or fix its spelling; see the TOML reference in README.md".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_and_key() {
        let s = Source::new(
            Path::new("x.toml"),
            "[experiment]\nname = \"a\"\n\n[fit]\nalpha_grid = 3\n".into(),
        );
        let off = s.text.find("3").unwrap();
        assert_eq!(s.line_col(off), (5, 14));
        assert_eq!(s.location(off), "x.toml:5:14");
        assert_eq!(s.key_at(off).as_deref(), Some("fit.alpha_grid"));
    }

    #[test]
    fn error_on_a_header_names_that_table() {
        let s = Source::new(
            Path::new("x.toml"),
            "[features.random]\nkind = \"npy\"\n\n[rois.V1]  # V1\ncolumn = \"c\"\n".into(),
        );
        let off = s.text.find("[rois.V1]").unwrap();
        assert_eq!(s.key_at(off).as_deref(), Some("rois.V1"));
        let off = s.text.find("\"c\"").unwrap();
        assert_eq!(s.key_at(off).as_deref(), Some("rois.V1.column"));
    }
}
