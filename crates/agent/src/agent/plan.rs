//! `cronfleet plan`: what a new task file would change, task by task and field by field.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

use crate::config::{
    definition::{Definition, HIDDEN},
    Task,
};

/// A changed field: its old and new values (secret values shown as `(secret)`).
#[derive(Clone, Debug, PartialEq)]
pub struct FieldChange {
    /// The field.
    pub field: String,
    /// Before.
    pub old: Value,
    /// After.
    pub new: Value,
}

/// A task whose definition changes.
#[derive(Clone, Debug, PartialEq)]
pub struct Changed {
    /// Its name.
    pub name: String,
    /// What changes.
    pub fields: Vec<FieldChange>,
    /// Its runs in flight on this node (they finish; the new definition applies to new runs).
    pub running: usize,
}

/// What a task file would change.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    /// New tasks.
    pub added: Vec<String>,
    /// Changed tasks.
    pub changed: Vec<Changed>,
    /// Tasks that go away (with their runs in flight).
    pub removed: Vec<(String, usize)>,
    /// Tasks that stay as they are.
    pub unchanged: Vec<String>,
}

impl Plan {
    /// Whether it changes anything.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.changed.is_empty() && self.removed.is_empty()
    }

    /// Whether the new file defines no task at all: applying it removes every task of the
    /// task file (or writes a file without any), which `apply` does only when asked to.
    pub fn leaves_no_task(&self) -> bool {
        self.added.is_empty() && self.changed.is_empty() && self.unchanged.is_empty()
    }
}

/// Compares the file's tasks now (`old`) with a new file's (`new`).
pub fn compare(old: &[Task], new: &[Task], in_flight: &HashMap<String, usize>) -> Plan {
    let running = |name: &str| in_flight.get(name).copied().unwrap_or(0);
    let old_by_name: BTreeMap<&str, &Task> = old.iter().map(|t| (t.name.as_str(), t)).collect();
    let mut plan = Plan::default();
    for task in new {
        let Some(before) = old_by_name.get(task.name.as_str()) else {
            plan.added.push(task.name.clone());
            continue;
        };
        let fields = diff(before, task);
        if fields.is_empty() {
            plan.unchanged.push(task.name.clone());
        } else {
            plan.changed.push(Changed {
                name: task.name.clone(),
                fields,
                running: running(&task.name),
            });
        }
    }
    let new_names: Vec<&str> = new.iter().map(|t| t.name.as_str()).collect();
    for task in old.iter().filter(|t| !new_names.contains(&t.name.as_str())) {
        plan.removed.push((task.name.clone(), running(&task.name)));
    }
    plan
}

/// The fields that differ, by the task file's names.
fn diff(old: &Task, new: &Task) -> Vec<FieldChange> {
    let (a, b) = (Definition::of(old, true).fields(), Definition::of(new, true).fields());
    let (shown_a, shown_b) =
        (Definition::of(old, false).fields(), Definition::of(new, false).fields());
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut out = Vec::new();
    for key in keys {
        if key == "description" || a.get(key) == b.get(key) {
            continue;
        }
        let (mut old_v, mut new_v) = (
            shown_a.get(key).cloned().unwrap_or(Value::Null),
            shown_b.get(key).cloned().unwrap_or(Value::Null),
        );
        if old_v == new_v {
            // Only a secret changed.
            old_v = Value::String(HIDDEN.into());
            new_v = Value::String("(secret, changed)".into());
        }
        out.push(FieldChange { field: key.clone(), old: old_v, new: new_v });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tasks(text: &str) -> Vec<Task> {
        crate::config::parse(std::path::Path::new("t.toml"), text).unwrap().tasks
    }

    #[test]
    fn added_changed_removed_unchanged() {
        let old = tasks("[[task]]\nname = \"a\"\nschedule = \"@daily\"\ncommand = \"x\"\n[[task]]\nname = \"b\"\nschedule = \"@daily\"\ncommand = \"x\"\nenv = { P = \"1\" }\nsecret_env = [\"P\"]\n[[task]]\nname = \"c\"\nschedule = \"@daily\"\ncommand = \"x\"\n");
        let new = tasks("[[task]]\nname = \"b\"\nschedule = \"@hourly\"\ncommand = \"x\"\nenv = { P = \"2\" }\nsecret_env = [\"P\"]\n\n[[task]]\nname = \"c\"\nschedule = \"@daily\"\ncommand = \"x\"\n[[task]]\nname = \"d\"\nschedule = \"@daily\"\ncommand = \"x\"\n");
        let in_flight = HashMap::from([("b".to_owned(), 2)]);
        let plan = compare(&old, &new, &in_flight);
        assert_eq!(plan.added, ["d"]);
        assert_eq!(plan.removed, [("a".to_owned(), 0)]);
        assert_eq!(plan.unchanged, ["c"], "moving a task in the file is no change");
        let b = &plan.changed[0];
        assert_eq!((b.name.as_str(), b.running), ("b", 2));
        let fields: Vec<&str> = b.fields.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(fields, ["env", "schedule"]);
        assert_eq!(b.fields[1].old, "@daily");
        assert_eq!(b.fields[1].new, "@hourly");
        assert_eq!(b.fields[0].new, "(secret, changed)", "secret values are not shown");
        assert!(compare(&old, &old, &in_flight).is_empty());
    }
}
