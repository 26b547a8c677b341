//! What a task file changes (`plan`, `apply`) and what a reload did.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::agent::{plan, Reloaded};

/// `POST /api/v1/reload`, and `applied` of `POST /api/v1/apply`: how many tasks changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct Counts {
    /// New tasks.
    pub added: usize,
    /// Changed tasks.
    pub changed: usize,
    /// Tasks gone.
    pub removed: usize,
}

impl From<Reloaded> for Counts {
    fn from(r: Reloaded) -> Counts {
        Counts { added: r.added, changed: r.changed, removed: r.removed }
    }
}

/// `POST /api/v1/plan` and `/apply`: what a task file changes (and, after `apply`, what
/// was done; after `apply --store`, the stored revision).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct Plan {
    /// New tasks.
    pub added: Vec<String>,
    /// `apply`: what the reload did on this node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied: Option<Counts>,
    /// Changed tasks.
    pub changed: Vec<Changed>,
    /// Tasks that go away.
    pub removed: Vec<Removed>,
    /// `apply --store`: the task file's revision in the store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<i64>,
    /// Tasks that stay as they are.
    pub unchanged: Vec<String>,
    /// What to know before applying it (none: nothing to know).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<Warning>,
}

/// Something to know before applying a task file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct Warning {
    /// A stable code: `empty_task_file` (the file defines no task; `apply` refuses it unless
    /// asked with `allow_empty=true`).
    pub code: String,
    /// What it means, for people.
    pub message: String,
}

impl Warning {
    /// The warnings of a plan.
    fn of(p: &plan::Plan) -> Vec<Warning> {
        if !p.leaves_no_task() {
            return Vec::new();
        }
        let what = match p.removed.len() {
            0 => "writes a task file without any task".to_owned(),
            n => format!("removes every task of the task file ({n})"),
        };
        vec![Warning {
            code: "empty_task_file".to_owned(),
            message: format!(
                "the file defines no task: applying it {what}; apply refuses it unless asked \
                 with allow_empty=true (cronfleet apply --allow-empty)"
            ),
        }]
    }
}

impl From<&plan::Plan> for Plan {
    fn from(p: &plan::Plan) -> Plan {
        Plan {
            added: p.added.clone(),
            applied: None,
            changed: p
                .changed
                .iter()
                .map(|c| Changed {
                    fields: c
                        .fields
                        .iter()
                        .map(|f| FieldChange {
                            field: f.field.clone(),
                            new: f.new.clone(),
                            old: f.old.clone(),
                        })
                        .collect(),
                    name: c.name.clone(),
                    running: c.running,
                })
                .collect(),
            removed: p
                .removed
                .iter()
                .map(|(name, running)| Removed { name: name.clone(), running: *running })
                .collect(),
            revision: None,
            unchanged: p.unchanged.clone(),
            warnings: Warning::of(p),
        }
    }
}

/// A task whose definition changes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct Changed {
    /// What changes.
    pub fields: Vec<FieldChange>,
    /// The task.
    pub name: String,
    /// Its runs in flight (they finish as they are).
    pub running: usize,
}

/// A changed field, by its task file name (secret values shown as `(secret)`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct FieldChange {
    /// The field.
    pub field: String,
    /// After.
    pub new: Value,
    /// Before.
    pub old: Value,
}

/// A task that goes away.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct Removed {
    /// The task.
    pub name: String,
    /// Its runs in flight (they finish).
    pub running: usize,
}
