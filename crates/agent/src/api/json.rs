//! Tasks and runs as JSON values, field by field: what the dashboard's pages list. The API's
//! routes send the types of [`super::model`].

use serde_json::{Map, Value};

pub use super::model::zoned;
pub use crate::config::definition::HIDDEN;
use crate::{api::model::Run, config::definition::Definition, config::Task, store::RunRecord};

/// A task's definition, with the task file's field names (in alphabetical order); secret env
/// values hidden unless `secrets`.
pub fn definition(task: &Task, secrets: bool) -> Map<String, Value> {
    Definition::of(task, secrets).fields()
}

/// A run, without its output.
pub fn run(r: &RunRecord) -> Value {
    serde_json::to_value(Run::of(r)).unwrap_or(Value::Null)
}
