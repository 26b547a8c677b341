//! The task file: one TOML file, kept in git, that says what runs, when, and on which machines.
//!
//! Two stages: the TOML document (with the position of every key and value) is walked field by
//! field into a validated [`TaskSet`]; every problem is collected with its file, line, column,
//! task and field, so a bad file gets all its errors at once. Nothing downstream re-validates.
//! The reference for every field is `docs/task-file.md`.

pub mod definition;
mod error;
mod hosts;
mod notify;
mod read;
pub mod reference;
mod task;
mod units;

use std::{collections::BTreeMap, path::Path};

use toml::de::{DeTable, DeValue};

use read::TaskReader;

pub use error::{ConfigError, ConfigErrors};
pub use hosts::HostPattern;
pub use notify::{Notifier, NotifierKind};
pub use task::{
    AlertRules, CatchUp, Concurrency, HttpCall, Kind, Origin, Program, RetryOn, Task, TaskSet,
};

/// Parses a duration as the task file does (`10s`, `5m`, `1h30m`).
///
/// # Errors
/// A message saying how to write one.
pub fn units_duration(text: &str) -> Result<std::time::Duration, units::UnitError> {
    let d = units::duration(text)?;
    std::time::Duration::try_from(d).map_err(|_| units::UnitError::TooLong(text.to_owned()))
}

use error::Reporter;

/// Every field a task (or `[defaults]`) may have.
pub const FIELDS: &[&str] = &[
    "name",
    "schedule",
    "anchor",
    "timezone",
    "command",
    "argv",
    "http",
    "labels",
    "hosts",
    "tags",
    "kind",
    "concurrency",
    "max_running",
    "timeout",
    "retries",
    "retry_on",
    "retry_backoff",
    "catch_up",
    "env",
    "secret_env",
    "workdir",
    "user",
    "output_limit",
    "enabled",
    "notify",
    "alert_on",
    "alert_after",
    "late_after",
    "too_long",
    "run_on",
    "retry_elsewhere",
];

pub(super) const DEFAULT_OUTPUT_LIMIT: u64 = 256 * 1024;
pub(super) const MAX_OUTPUT_LIMIT: u64 = 1024 * 1024 * 1024;

/// Reads and validates a task file.
///
/// # Errors
/// Every problem found, or the reason the file could not be read.
pub fn load(path: &Path) -> Result<TaskSet, ConfigErrors> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse(path, &text),
        // No line and column: the message names the file.
        Err(e) => Err(ConfigErrors(vec![ConfigError {
            file: path.display().to_string(),
            line: 0,
            column: 0,
            task: None,
            field: None,
            message: format!("cannot read {}: {}", path.display(), io_reason(&e)),
        }])),
    }
}

/// Why a file could not be read, for people: `No such file or directory`, without the
/// `(os error 2)` that `io::Error` adds.
pub fn io_reason(e: &std::io::Error) -> String {
    let text = e.to_string();
    match (e.raw_os_error(), text.rfind(" (os error ")) {
        (Some(_), Some(at)) => text[..at].to_owned(),
        _ => text,
    }
}

/// Validates the text of a task file; `path` is used in messages.
///
/// # Errors
/// Every problem found.
pub fn parse(path: &Path, text: &str) -> Result<TaskSet, ConfigErrors> {
    parse_with(path, text, &[])
}

/// [`parse`], where `notify` may also name the notifiers `known` (those of the task file, for
/// a task defined elsewhere).
///
/// # Errors
/// Every problem found.
pub fn parse_with(path: &Path, text: &str, known: &[String]) -> Result<TaskSet, ConfigErrors> {
    let mut rep = Reporter::new(path, text);
    let doc = match DeTable::parse(text) {
        Ok(doc) => doc,
        Err(e) => {
            let at = e.span().map_or(0, |s| s.start);
            rep.error(at, None, None, format!("invalid TOML: {}", e.message().trim_end()));
            return Err(ConfigErrors(rep.errors));
        }
    };
    let mut defaults: Option<&DeTable<'_>> = None;
    let mut defaults_span = 0..0;
    let mut tasks = Vec::new();
    let mut notifier_tables = Vec::new();
    for (key, value) in doc.get_ref().iter() {
        match (key.get_ref().as_ref(), value.get_ref()) {
            ("defaults", DeValue::Table(table)) => {
                defaults = Some(table);
                // The table's own span is its header: take the range its entries cover.
                let start = table.keys().map(|k| k.span().start).min().unwrap_or(0);
                let end = table.values().map(|v| v.span().end).max().unwrap_or(0);
                defaults_span = start..end;
                check_keys(&mut rep, None, table, &["name"]);
            }
            ("task", DeValue::Array(array)) => tasks.extend(array.iter()),
            ("notifier", DeValue::Array(array)) => notifier_tables.extend(array.iter()),
            ("notifier", _) => rep.error(
                value.span().start,
                None,
                Some("notifier"),
                "expected notifiers as [[notifier]] tables",
            ),
            ("defaults", _) => rep.error(
                value.span().start,
                None,
                Some("defaults"),
                "expected a table: [defaults]",
            ),
            ("task", _) => rep.error(
                value.span().start,
                None,
                Some("task"),
                "expected tasks as [[task]] tables",
            ),
            (other, _) => rep.error(
                key.span().start,
                None,
                None,
                format!(
                    "unknown section {other:?}: a task file has [defaults], [[task]] and [[notifier]]"
                ),
            ),
        }
    }
    let mut set = TaskSet { tasks: Vec::new(), notifiers: Vec::new() };
    let mut notifier_names: Vec<String> = known.to_vec();
    for item in notifier_tables {
        let DeValue::Table(table) = item.get_ref() else {
            rep.error(item.span().start, None, Some("notifier"), "expected a [[notifier]] table");
            continue;
        };
        // Its name counts even when another field is wrong: tasks naming it get no second error.
        if let Some(DeValue::String(name)) = table.get("name").map(|v| v.get_ref()) {
            if notifier_names.iter().any(|n| n == name.as_ref()) {
                let at = table.get("name").map_or(item.span().start, |v| v.span().start);
                rep.error(at, None, Some("name"), format!("duplicate notifier name {name:?}"));
                continue;
            }
            notifier_names.push(name.to_string());
        }
        if let Some(n) = notify::read(&mut rep, table, item.span().start) {
            set.notifiers.push(n);
        }
    }
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for item in tasks {
        let DeValue::Table(table) = item.get_ref() else {
            rep.error(item.span().start, None, Some("task"), "expected a [[task]] table");
            continue;
        };
        let mut reader = TaskReader {
            rep: &mut rep,
            table,
            defaults,
            defaults_span: defaults_span.clone(),
            header: item.span(),
            name: None,
            notifiers: &notifier_names,
        };
        let task = reader.read();
        let name = reader.name.take();
        let (line, _) = rep.position(item.span().start);
        if let Some(name) = name {
            if let Some(first) = seen.get(&name) {
                let message = format!("duplicate task name (first defined on line {first})");
                let at = table.get("name").map_or(item.span().start, |v| v.span().start);
                rep.error(at, Some(&name), Some("name"), message);
                continue;
            }
            seen.insert(name, line);
        }
        set.tasks.extend(task);
    }
    if rep.errors.is_empty() {
        Ok(set)
    } else {
        let mut errors = rep.errors;
        errors.sort_by_key(|e| (e.line, e.column));
        // A bad default is found once per task: say it once.
        errors.dedup_by(|a, b| (a.line, a.column, &a.message) == (b.line, b.column, &b.message));
        Err(ConfigErrors(errors))
    }
}

/// Reports keys that are not task fields (or are `forbidden` here), suggesting the nearest.
pub(super) fn check_keys(
    rep: &mut Reporter<'_>,
    task: Option<&str>,
    table: &DeTable<'_>,
    forbidden: &[&str],
) {
    for key in table.keys() {
        let k: &str = key.get_ref();
        if forbidden.contains(&k) {
            rep.error(key.span().start, task, Some(k), format!("`{k}` cannot have a default"));
        } else if !FIELDS.contains(&k) {
            rep.error(key.span().start, task, Some(k), unknown_field(k));
        }
    }
}

/// What is said of a key that is not a task's field: `unknown field; did you mean `timeout`?`.
pub fn unknown_field(key: &str) -> String {
    let hint = FIELDS
        .iter()
        .map(|f| (strsim::levenshtein(f, key), f))
        .min()
        .filter(|(d, _)| *d <= 2)
        .map(|(_, f)| format!("; did you mean `{f}`?"))
        .unwrap_or_default();
    format!("unknown field{hint}")
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use proptest::prelude::*;

    use super::*;

    /// The example's `[defaults] timeout = "1h"` is for its scheduled tasks: its daemon would
    /// otherwise be killed every hour.
    #[test]
    fn a_default_timeout_skips_daemons() {
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/tasks.toml");
        let set = load(&example).unwrap();
        let timeout = |name: &str| set.tasks.iter().find(|t| t.name == name).unwrap().timeout;
        assert_eq!(timeout("log-shipper"), None);
        assert_eq!(timeout("poll-queue"), Some(jiff::SignedDuration::from_hours(1)));
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        /// Bad input gets errors, never a panic.
        #[test]
        fn never_panics_on_any_text(text in "\\PC{0,200}") {
            let _ = parse(Path::new("t.toml"), &text);
        }

        /// Nor on task-shaped text with random keys and values.
        #[test]
        fn never_panics_on_task_shaped_text(
            fields in prop::collection::vec(
                (prop::sample::select(FIELDS.to_vec()), "(\"[^\"\\\\]{0,20}\"|[0-9]{1,3}|true|\\[\"a\"\\]|\\{ A = \"b\" \\})"),
                0..8,
            )
        ) {
            let mut text = String::from("[[task]]\n");
            for (k, v) in fields {
                text.push_str(&format!("{k} = {v}\n"));
            }
            let _ = parse(Path::new("t.toml"), &text);
        }
    }

    #[test]
    fn defaults_apply_and_env_merges() {
        let text = "[defaults]\ntimezone = \"Asia/Tokyo\"\nenv = { A = \"1\", B = \"1\" }\nretries = 3\n\n\
                    [[task]]\nname = \"t\"\nschedule = \"0 9 * * *\"\ncommand = \"true\"\nenv = { B = \"2\" }\n";
        let set = parse(Path::new("t.toml"), text).unwrap();
        let t = &set.tasks[0];
        assert_eq!(t.retries, 3);
        assert_eq!(t.env.get("A").map(String::as_str), Some("1"));
        assert_eq!(t.env.get("B").map(String::as_str), Some("2"));
        let Kind::Cron(s) = &t.kind else { panic!("not cron") };
        assert_eq!(s.time_zone().and_then(|z| z.iana_name()), Some("Asia/Tokyo"));
        assert_eq!(
            (t.concurrency, t.catch_up, t.output_limit),
            (Concurrency::Forbid, CatchUp::Skip, 256 * 1024)
        );
    }
}
