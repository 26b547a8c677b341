//! Tasks and runs as JSON. A task's fields are named as in the task file.

use serde_json::{json, Map, Value};

use crate::{
    agent::TaskView,
    config::{CatchUp, Concurrency, Kind, Program, Task},
    store::RunRecord,
};

/// What secret env values are shown as to those who may not see them.
pub const HIDDEN: &str = "(secret)";

/// A task's definition, with the task file's field names; secret env values hidden unless
/// `secrets`.
pub fn definition(task: &Task, secrets: bool) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("name".into(), json!(task.name));
    match &task.kind {
        Kind::Cron(schedule) => {
            m.insert("kind".into(), json!("cron"));
            m.insert("schedule".into(), json!(schedule.to_string()));
            m.insert("timezone".into(), json!(schedule.time_zone().and_then(|z| z.iana_name())));
            if let Some(anchor) = schedule.anchor() {
                m.insert(
                    "anchor".into(),
                    json!(anchor.timestamp().display_with_offset(anchor.offset()).to_string()),
                );
            }
            m.insert("description".into(), json!(schedule.describe()));
        }
        Kind::Daemon => {
            m.insert("kind".into(), json!("daemon"));
        }
    }
    match &task.program {
        Program::Shell(command) => m.insert("command".into(), json!(command)),
        Program::Argv(argv) => m.insert("argv".into(), json!(argv)),
        Program::Http(call) => {
            // Header values often carry credentials: hidden like secret env values.
            let headers: Map<String, Value> = call
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), json!(if secrets { v.as_str() } else { HIDDEN })))
                .collect();
            m.insert(
                "http".into(),
                json!({
                    "url": call.url, "method": call.method, "headers": headers,
                    "body": call.body, "expect_status": call.expect_status,
                }),
            )
        }
    };
    let hosts: Vec<String> = task.hosts.iter().map(ToString::to_string).collect();
    m.insert("hosts".into(), json!(hosts));
    m.insert("tags".into(), json!(task.tags));
    let concurrency = match task.concurrency {
        Concurrency::Allow => "allow",
        Concurrency::Forbid => "forbid",
        Concurrency::Queue => "queue",
        Concurrency::Replace => "replace",
    };
    m.insert("concurrency".into(), json!(concurrency));
    m.insert("max_running".into(), json!(task.max_running));
    m.insert("timeout".into(), json!(task.timeout.map(|t| format!("{t:#}"))));
    m.insert("retries".into(), json!(task.retries));
    m.insert("retry_backoff".into(), json!(format!("{:#}", task.retry_backoff)));
    let catch_up = match task.catch_up {
        CatchUp::Skip => "skip",
        CatchUp::Once => "once",
        CatchUp::All => "all",
    };
    m.insert("catch_up".into(), json!(catch_up));
    let env: Map<String, Value> = task
        .env
        .iter()
        .map(|(k, v)| {
            let hide = !secrets && task.secret_env.contains(k);
            (k.clone(), json!(if hide { HIDDEN } else { v.as_str() }))
        })
        .collect();
    m.insert("env".into(), Value::Object(env));
    m.insert("secret_env".into(), json!(task.secret_env));
    m.insert("workdir".into(), json!(task.workdir));
    m.insert("user".into(), json!(task.user));
    m.insert("output_limit".into(), json!(task.output_limit));
    m.insert("enabled".into(), json!(task.enabled));
    m.insert("labels".into(), json!(task.labels));
    m.insert("origin".into(), json!(task.origin.as_str()));
    m
}

/// A task with its state on this node and, when known, its latest run.
pub fn task(view: &TaskView, last: Option<&RunRecord>, secrets: bool) -> Value {
    let mut m = definition(&view.task, secrets);
    m.insert("runs_here".into(), json!(view.here));
    m.insert("paused".into(), json!(view.paused.is_some()));
    m.insert("paused_until".into(), json!(view.paused.flatten().map(|t| t.to_string())));
    m.insert("next_run".into(), json!(view.next.as_ref().map(zoned)));
    m.insert("running".into(), json!(view.running));
    m.insert("last_run".into(), last.map_or(Value::Null, run));
    if let Some(stored) = &view.stored {
        m.insert("revision".into(), json!(stored.revision));
        m.insert("created_at".into(), json!(stored.created_at));
        m.insert("updated_at".into(), json!(stored.updated_at));
    }
    Value::Object(m)
}

/// An instant with its offset, RFC 3339.
pub fn zoned(z: &jiff::Zoned) -> String {
    z.timestamp().display_with_offset(z.offset()).to_string()
}

/// A run, without its output.
pub fn run(r: &RunRecord) -> Value {
    json!({
        "id": r.id,
        "task": r.task,
        "slot": r.slot,
        "attempt": r.attempt,
        "node": r.node,
        "started_at": (!r.started_at.is_empty()).then_some(&r.started_at),
        "ended_at": r.ended_at,
        "duration_ms": r.duration_ms,
        "exit_code": r.exit_code,
        "signal": r.signal,
        "cpu_ms": r.cpu_ms,
        "max_rss": r.max_rss,
        "outcome": r.outcome.as_str(),
        "output_dropped": r.output_dropped,
        "reason": r.reason,
    })
}
