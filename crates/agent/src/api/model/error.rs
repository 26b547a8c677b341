//! Every error's body: `{"error": {"code", "details"?, "message"}}`.

use serde::{Deserialize, Serialize};

/// Every error's body.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorInfo,
}

/// An error: a stable code, a message for people, and details for some.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct ErrorInfo {
    /// A stable machine-readable code (`not_found`, `invalid_task_file`, ...).
    pub code: String,
    /// More, for some errors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<ErrorDetails>,
    /// What went wrong.
    pub message: String,
}

/// The details of an error.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(untagged)]
pub enum ErrorDetails {
    /// `revision_conflict`: the task's revision now.
    Revision {
        /// The revision.
        revision: i64,
    },
    /// `invalid_task_file`: every error of the file.
    File(Vec<FileProblem>),
    /// `invalid_task`: every error of the definition.
    Fields(Vec<FieldProblem>),
}

/// An error of a task file, where it is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct FileProblem {
    /// 1-based column.
    pub column: usize,
    /// The field, when the error is one field's.
    pub field: Option<String>,
    /// The file.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// What is wrong.
    pub message: String,
    /// The task, when the error is in one.
    pub task: Option<String>,
}

/// An error of a task's definition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct FieldProblem {
    /// The field, when the error is one field's.
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}
