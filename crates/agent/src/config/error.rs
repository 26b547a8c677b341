//! Task file errors: file, line, column, task and field, and why.

use std::{fmt, path::Path};

/// One problem in a task file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The file, as given.
    pub file: String,
    /// 1-based line; 0 for a problem with no place in the file (it cannot be read, say),
    /// which is shown without a position: its message names the file when that helps.
    pub line: usize,
    /// 1-based column (in characters).
    pub column: usize,
    /// The task's name, when the problem is inside a `[[task]]` that has one.
    pub task: Option<String>,
    /// The field, when the problem is about one.
    pub field: Option<String>,
    /// Why, possibly on several lines (a schedule error draws a caret).
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "{}:{}:{}: ", self.file, self.line, self.column)?;
        }
        match (&self.task, &self.field) {
            (Some(task), Some(field)) => write!(f, "task {task:?}, field `{field}`: ")?,
            (Some(task), None) => write!(f, "task {task:?}: ")?,
            (None, Some(field)) => write!(f, "field `{field}`: ")?,
            (None, None) => {}
        }
        f.write_str(&self.message)
    }
}

/// Every problem found in a task file (never empty).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Turns byte offsets of one file into line and column, and collects errors.
pub(crate) struct Reporter<'a> {
    file: String,
    text: &'a str,
    /// Byte offset where each line starts: positions are a binary search, not a scan (a
    /// 10,000-task file asks for one per task).
    line_starts: Vec<usize>,
    pub errors: Vec<ConfigError>,
}

impl<'a> Reporter<'a> {
    pub fn new(path: &Path, text: &'a str) -> Reporter<'a> {
        let line_starts =
            std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i + 1)).collect();
        Reporter { file: path.display().to_string(), text, line_starts, errors: Vec::new() }
    }

    /// 1-based line and column of a byte offset.
    pub fn position(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = self.line_starts.partition_point(|&start| start <= offset).max(1);
        let line_start = self.line_starts[line - 1];
        let column = self.text.get(line_start..offset).map_or(1, |s| s.chars().count() + 1);
        (line, column)
    }

    pub fn error(
        &mut self,
        offset: usize,
        task: Option<&str>,
        field: Option<&str>,
        message: impl std::fmt::Display,
    ) {
        let (line, column) = self.position(offset);
        self.errors.push(ConfigError {
            file: self.file.clone(),
            line,
            column,
            task: task.map(str::to_owned),
            field: field.map(str::to_owned),
            message: message.to_string(),
        });
    }
}
