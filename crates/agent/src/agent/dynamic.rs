//! Tasks created through the API: JSON definitions with the task file's field names, checked by
//! the task file's own validation (so both kinds of task mean exactly the same), kept in the
//! store with a revision.
//!
//! An `@every` schedule without an anchor is anchored at the task's creation (to the second), and
//! the anchor is written into the definition: the cadence counts from when the rule was made, whenever the
//! agent (re)started. A change of schedule keeps the anchor unless a new one is given.

use jiff::{RoundMode, Timestamp, TimestampRound, Unit};
use serde_json::{Map, Value};

use crate::{
    config::{self, ConfigError, Origin, Task},
    store::StoredTask,
};

/// A task created through the API, with its stored form.
#[derive(Clone, Debug)]
pub struct ApiTask {
    /// The validated task.
    pub task: Task,
    /// Its definition, revision and times.
    pub stored: StoredTask,
}

/// Applies a JSON merge patch (RFC 7386): `null` removes a field, objects merge, anything else
/// replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(fields) = target else { return };
    for (key, value) in patch {
        if value.is_null() {
            fields.remove(key);
        } else {
            merge_patch(fields.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

/// An instant to the second (its fraction dropped): what the agent makes an anchor and a
/// task's `created_at` from, so that they, and the fire times counted from them, print as
/// `2026-05-01T10:00:00Z`, not with nanoseconds.
pub fn to_the_second(ts: Timestamp) -> Timestamp {
    let second = TimestampRound::new().smallest(Unit::Second).mode(RoundMode::Floor);
    ts.round(second).unwrap_or(ts)
}

/// Whether a schedule expression is an interval (`@every`, after an optional zone prefix).
fn is_every(schedule: &str) -> bool {
    let s = schedule.trim_start();
    let s = match s.split_once(char::is_whitespace) {
        Some((prefix, rest)) if prefix.starts_with("CRON_TZ=") || prefix.starts_with("TZ=") => {
            rest.trim_start()
        }
        _ => s,
    };
    s.starts_with("@every")
}

/// One problem with a definition, for a 422.
fn problem(field: Option<&str>, message: impl Into<String>) -> ConfigError {
    ConfigError {
        file: "api".into(),
        line: 0,
        column: 0,
        task: None,
        field: field.map(str::to_owned),
        message: message.into(),
    }
}

/// The fields set to `null` in a definition or a change that are no task's fields. `null` is a
/// field's default (in a merge patch: remove the field), so these never reach the task file's
/// parser, which names every other unknown field: without this, `{"timout": null}` would be
/// taken without a word.
pub fn unknown_nulls(change: &Value) -> Vec<ConfigError> {
    let Value::Object(fields) = change else { return Vec::new() };
    let mut problems: Vec<ConfigError> = fields
        .iter()
        .filter(|(key, value)| {
            value.is_null()
                && !config::FIELDS.contains(&key.as_str())
                && !SERVER_SIDE.contains(&key.as_str())
        })
        .map(|(key, _)| problem(Some(key), config::unknown_field(key)))
        .collect();
    // The keys of `http` too (those of `env`, `labels` and `headers` are names of their own).
    if let Some(Value::Object(http)) = fields.get("http") {
        const HTTP: [&str; 5] = ["url", "method", "headers", "body", "expect_status"];
        for (key, value) in http {
            if value.is_null() && !HTTP.contains(&key.as_str()) {
                let message = format!("unknown key {key:?}: http has {}", HTTP.join(", "));
                problems.push(problem(Some("http"), message));
            }
        }
    }
    problems
}

/// Fields of a task as the API shows it that the agent sets: taken in a definition, and
/// ignored.
const SERVER_SIDE: [&str; 4] = ["origin", "revision", "created_at", "updated_at"];

/// [`build`]'s result, with the problems found before it (`unknown_nulls`).
pub fn with_problems(
    built: Result<Task, Vec<ConfigError>>,
    mut before: Vec<ConfigError>,
) -> Result<Task, Vec<ConfigError>> {
    match built {
        Ok(task) if before.is_empty() => Ok(task),
        Ok(_) => Err(before),
        Err(errors) => {
            before.splice(0..0, errors);
            Err(before)
        }
    }
}

/// Keeps (or drops) the anchor across a change of schedule: a new `@every` schedule keeps the
/// old anchor unless the change gives one; a schedule that is no longer `@every` loses it.
pub fn carry_anchor(old: &Value, new: &mut Value, change: &Value) {
    let Value::Object(fields) = new else { return };
    if change.get("anchor").is_some() {
        return;
    }
    let every = fields.get("schedule").and_then(Value::as_str).is_some_and(is_every);
    match (every, old.get("anchor")) {
        (true, Some(anchor)) => {
            fields.insert("anchor".into(), anchor.clone());
        }
        (false, _) => {
            fields.remove("anchor");
        }
        (true, None) => {}
    }
}

/// Checks a definition and makes it a task named `name`. An `@every` schedule without an anchor
/// gets `created_at`, to the second, as its anchor, written into `definition`. `notifiers` are the names a
/// task's `notify` may use (the task file's).
///
/// # Errors
/// Every problem, with its field.
pub fn build(
    name: &str,
    definition: &mut Value,
    created_at: Timestamp,
    notifiers: &[String],
) -> Result<Task, Vec<ConfigError>> {
    let Value::Object(fields) = definition else {
        return Err(vec![problem(None, "a task is a JSON object of task file fields")]);
    };
    fields.retain(|_, v| !v.is_null());
    fields.insert("name".into(), Value::String(name.to_owned()));
    for server_side in SERVER_SIDE {
        fields.remove(server_side);
    }
    let every = fields.get("schedule").and_then(Value::as_str).is_some_and(is_every);
    if every && !fields.contains_key("anchor") {
        let anchor = to_the_second(created_at);
        fields.insert("anchor".into(), Value::String(anchor.to_string()));
    }
    let doc = serde_json::json!({ "task": [Value::Object(fields.clone())] });
    let text = match toml::Table::try_from(&doc).map(|t| toml::to_string(&t)) {
        Ok(Ok(text)) => text,
        Ok(Err(e)) | Err(e) => {
            return Err(vec![problem(None, format!("not a task definition: {e}"))]);
        }
    };
    let mut set =
        config::parse_with(std::path::Path::new("api"), &text, notifiers).map_err(|errors| {
            errors.0.into_iter().map(|e| problem(e.field.as_deref(), e.message)).collect::<Vec<_>>()
        })?;
    let mut task = set.tasks.pop().ok_or_else(|| vec![problem(None, "no task")])?;
    task.origin = Origin::Api;
    task.line = 0;
    Ok(task)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::config::Kind;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    /// A field set to null is taken only if it is a task's field (or one the agent sets).
    #[test]
    fn unknown_nulls_are_named() {
        let change = json!({"timout": null, "timeout": null, "revision": null, "colour": "red"});
        let errors = unknown_nulls(&change);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].field.as_deref(), Some("timout"));
        assert_eq!(errors[0].message, "unknown field; did you mean `timeout`?");
        assert!(unknown_nulls(&json!({"user": null})).is_empty());
        let errors =
            unknown_nulls(&json!({"http": {"body": null, "bdy": null}, "env": {"A": null}}));
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].field.as_deref(), Some("http"));
        // A null inside a definition is no field's default: refused.
        let mut definition = json!({"schedule": "@daily", "command": "x", "env": {"A": null}});
        assert!(build("n", &mut definition, at("2026-05-01T00:00:00Z"), &[]).is_err());
    }

    #[test]
    fn intervals_are_anchored_at_creation() {
        let mut def =
            json!({"schedule": "@every 7d", "command": "check 42", "labels": {"rule": "42"}});
        let task = build("rule-42", &mut def, at("2026-05-01T02:00:00Z"), &[]).unwrap();
        assert_eq!(def["anchor"], "2026-05-01T02:00:00Z");
        assert_eq!(task.labels["rule"], "42");
        assert_eq!(task.origin, Origin::Api);
        let Kind::Cron(s) = &task.kind else { panic!() };
        let after: jiff::Zoned = "2026-05-03T09:00:00Z[UTC]".parse().unwrap();
        assert_eq!(s.next_after(&after).unwrap().timestamp(), at("2026-05-08T02:00:00Z"));
        // Made to the second: no nanoseconds in the anchor or the fire times.
        let mut def = json!({"schedule": "@every 1h", "command": "x"});
        let task = build("hourly", &mut def, at("2026-05-01T02:00:07.123456789Z"), &[]).unwrap();
        assert_eq!(def["anchor"], "2026-05-01T02:00:07Z");
        let Kind::Cron(s) = &task.kind else { panic!() };
        let next = s.next_after(&after).unwrap().timestamp();
        assert_eq!(next, at("2026-05-03T09:00:07Z"));
        // A cron expression gets no anchor.
        let mut def = json!({"schedule": "0 9 * * *", "command": "x"});
        build("daily", &mut def, at("2026-05-01T02:00:00Z"), &[]).unwrap();
        assert!(def.get("anchor").is_none());
    }

    #[test]
    fn changes_keep_the_anchor_and_patches_merge() {
        let old = json!({"schedule": "@every 7d", "anchor": "2026-05-01T02:00:00Z", "command": "c", "env": {"A": "1", "B": "2"}});
        let patch = json!({"schedule": "@every 3d", "env": {"B": null, "C": "3"}});
        let mut new = old.clone();
        merge_patch(&mut new, &patch);
        carry_anchor(&old, &mut new, &patch);
        assert_eq!(new["anchor"], "2026-05-01T02:00:00Z");
        assert_eq!(new["env"], json!({"A": "1", "C": "3"}));
        // To a cron expression: the anchor goes.
        let patch = json!({"schedule": "CRON_TZ=UTC 0 9 * * *"});
        let mut new = old.clone();
        merge_patch(&mut new, &patch);
        carry_anchor(&old, &mut new, &patch);
        assert!(new.get("anchor").is_none());
        build("t", &mut new, at("2026-05-01T02:00:00Z"), &[]).unwrap();
    }

    #[test]
    fn bad_definitions_say_which_field() {
        let errors = build(
            "t",
            &mut json!({"schedule": "61 * * * *", "command": "x", "colour": "red"}),
            Timestamp::now(),
            &[],
        )
        .unwrap_err();
        let fields: Vec<Option<&str>> = errors.iter().map(|e| e.field.as_deref()).collect();
        assert!(
            fields.contains(&Some("schedule")) && fields.contains(&Some("colour")),
            "{errors:?}"
        );
        let errors = build("t", &mut json!([1]), Timestamp::now(), &[]).unwrap_err();
        assert!(errors[0].message.contains("JSON object"));
        let errors = build(
            "t",
            &mut json!({"schedule": "@daily", "command": "x", "notify": ["ops"]}),
            Timestamp::now(),
            &["ops".into()],
        );
        assert!(errors.is_ok(), "notifiers of the file may be named");
        let mut http = json!({"schedule": "@hourly", "http": {"url": "http://localhost:1/x", "method": "POST", "body": "{\"slot\": \"{{scheduled_at}}\"}", "expect_status": [200, 204]}});
        let task = build("h", &mut http, Timestamp::now(), &[]).unwrap();
        let config::Program::Http(call) = &task.program else { panic!() };
        assert_eq!(call.expect_status, [200, 204]);
    }
}
