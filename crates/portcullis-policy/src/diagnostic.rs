//! Diagnostics: every problem found while loading a policy, with its key path and position.
//!
//! Loading never stops at the first problem: the loader collects every diagnostic it can and
//! returns them together, so one `portcullis check` run shows the whole list.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use codespan_reporting::diagnostic::{Diagnostic as Report, Label};
use codespan_reporting::files::SimpleFile;
use codespan_reporting::term::{self, Config};

use crate::key_path::KeyPath;

/// How bad a diagnostic is. Errors stop a policy from loading; warnings are lints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Warning,
    Error,
}

/// One problem in a policy file.
#[derive(Debug, Clone)]
pub struct Diagnostic {
    pub severity: Severity,
    /// The key the problem is about (`route[2].cache-control`).
    pub path: KeyPath,
    pub message: String,
    /// Optional advice on how to fix it.
    pub help: Option<String>,
    /// Byte range in the source, filled in once the key path has been located.
    pub span: Option<Range<usize>>,
    /// 1-based line and column of `span`'s start.
    pub line_col: Option<(usize, usize)>,
}

impl Diagnostic {
    pub fn error(path: KeyPath, message: impl Into<String>) -> Self {
        Self::new(Severity::Error, path, message)
    }

    pub fn warning(path: KeyPath, message: impl Into<String>) -> Self {
        Self::new(Severity::Warning, path, message)
    }

    fn new(severity: Severity, path: KeyPath, message: impl Into<String>) -> Self {
        Self {
            severity,
            path,
            message: message.into(),
            help: None,
            span: None,
            line_col: None,
        }
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// The diagnostics of one policy source, with the source kept for rendering.
#[derive(Debug, Clone)]
pub struct Diagnostics {
    origin: PathBuf,
    source: String,
    items: Vec<Diagnostic>,
}

impl Diagnostics {
    pub(crate) fn new(origin: &Path, source: &str, mut items: Vec<Diagnostic>) -> Self {
        for item in &mut items {
            if let Some(span) = &item.span {
                item.line_col = Some(line_col(source, span.start));
            }
        }
        items.sort_by_key(|d| (d.span.as_ref().map_or(usize::MAX, |s| s.start), d.severity));
        Self {
            origin: origin.to_owned(),
            source: source.to_owned(),
            items,
        }
    }

    /// The file (or label) the policy was read from.
    pub fn origin(&self) -> &Path {
        &self.origin
    }

    pub fn iter(&self) -> impl Iterator<Item = &Diagnostic> {
        self.items.iter()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn error_count(&self) -> usize {
        self.items.iter().filter(|d| d.is_error()).count()
    }

    pub fn has_errors(&self) -> bool {
        self.error_count() > 0
    }

    /// Renders every diagnostic the way a compiler does: `file:line:col`, the key, the source
    /// line with the key underlined, and any help.
    pub fn render(&self) -> String {
        let file = SimpleFile::new(self.origin.display().to_string(), self.source.as_str());
        let config = Config::default();
        let mut out = String::new();
        for item in &self.items {
            let report = match item.severity {
                Severity::Error => Report::error(),
                Severity::Warning => Report::warning(),
            }
            .with_message(format!("{}: {}", item.path, item.message));
            let report = match &item.span {
                Some(span) => report.with_labels(vec![
                    Label::primary((), span.clone()).with_message(item.path.to_string()),
                ]),
                None => report,
            };
            let report = match &item.help {
                Some(help) => report.with_notes(vec![format!("help: {help}")]),
                None => report,
            };
            match term::emit_into_string(&config, &file, &report) {
                Ok(text) => out.push_str(&text),
                // The renderer only fails on a span outside the source; fall back to one line.
                Err(_) => out.push_str(&format!("{item}\n")),
            }
        }
        out
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let severity = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        if let Some((line, col)) = self.line_col {
            write!(f, "{line}:{col}: ")?;
        }
        write!(f, "{severity}: {}: {}", self.path, self.message)?;
        if let Some(help) = &self.help {
            write!(f, " (help: {help})")?;
        }
        Ok(())
    }
}

impl fmt::Display for Diagnostics {
    /// One line per diagnostic, `file:line:col: severity: key: message`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for item in &self.items {
            writeln!(f, "{}:{item}", self.origin.display())?;
        }
        Ok(())
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(source.len());
    let before = source.get(..offset).unwrap_or(source);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_are_one_based() {
        assert_eq!(line_col("a = 1\nbb = 2\n", 6), (2, 1));
        assert_eq!(line_col("a = 1\nbb = 2\n", 8), (2, 3));
        assert_eq!(line_col("", 0), (1, 1));
    }
}
