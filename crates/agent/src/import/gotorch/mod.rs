//! Gotorch's `task.json` to tasks.
//!
//! Gotorch reads a JSON array of `{"Command", "TaskType", "Times", "Max", "Ips"}`:
//! - `Times` has six fields in a non-standard order: second, minute, hour, day-of-month,
//!   **day-of-week, month**. We swap the last two into cron's order.
//! - `Command` was split on single spaces and run without a shell, output discarded: we keep
//!   that as `argv` (so quoting means the same as before).
//! - `TaskType` `daemon` means keep it running (`Times` ignored); `common` is a cron task.
//! - `Max` is the most concurrent runs, 0 for no limit: `concurrency = "allow"` with
//!   `max_running` (1000 for "no limit").
//! - `Ips` are the hosts that run it.
//!
//! Gotorch itself only honoured `*` and `*/n` correctly; we import what the file says, as cron
//! reads it, and note each entry whose `Times` uses anything else.

use cronfleet_cron::Schedule;
use serde_json::Value;

use super::{name::Namer, program, Import, Imported, Note};

/// Converts the text of a `task.json`.
///
/// # Errors
/// When it is not a JSON array.
pub fn import(text: &str, source: &str) -> Result<Import, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
    let Value::Array(items) = value else {
        return Err("expected a JSON array of tasks".into());
    };
    let mut out = Import::default();
    let mut namer = Namer::default();
    for (i, item) in items.iter().enumerate() {
        let n = i + 1;
        match task(item, &mut namer, source, n, &mut out.notes) {
            Ok(t) => out.tasks.push(t),
            Err(why) => out.skip(n, format!("entry {n} not imported: {why}")),
        }
    }
    Ok(out)
}

fn task(
    item: &Value,
    namer: &mut Namer,
    source: &str,
    n: usize,
    notes: &mut Vec<Note>,
) -> Result<Imported, String> {
    let command = item.get("Command").and_then(Value::as_str).filter(|c| !c.trim().is_empty());
    let command = command.ok_or("no Command")?;
    let daemon = match item.get("TaskType").and_then(Value::as_str).unwrap_or("common") {
        "daemon" => true,
        "common" => false,
        other => return Err(format!("TaskType {other:?} is neither common nor daemon")),
    };
    // Gotorch split on single spaces, without a shell.
    let argv: Vec<String> = command.split(' ').map(str::to_owned).collect();
    if argv.iter().any(String::is_empty) {
        notes.push(Note {
            line: n,
            message: format!("entry {n}: Command has double spaces; Gotorch passed empty arguments, kept as it did"),
        });
    }
    let schedule = if daemon {
        None
    } else {
        let times = item.get("Times").and_then(Value::as_str).ok_or("no Times")?;
        let fields: Vec<&str> = times.split_whitespace().collect();
        let [s, m, h, dom, dow, month] = fields[..] else {
            return Err(format!("Times {times:?} must have 6 fields"));
        };
        let expr = format!("{s} {m} {h} {dom} {month} {dow}");
        expr.parse::<Schedule>().map_err(|e| format!("Times {times:?}: {}", e.reason()))?;
        let simple = |f: &str| {
            f == "*"
                || f.strip_prefix("*/").is_some_and(|n| n.parse::<u32>().is_ok())
                || f.parse::<u32>().is_ok()
        };
        if !fields.iter().all(|f| simple(f)) {
            notes.push(Note {
                line: n,
                message: format!(
                    "entry {n}: Times {times:?} imported as cron reads it ({expr}); Gotorch only \
                     honoured * and */n, so it may have run at other times"
                ),
            });
        }
        Some(expr)
    };
    let max = item.get("Max").and_then(Value::as_u64).unwrap_or(0);
    let concurrency = if daemon {
        None
    } else if max == 0 {
        Some(("allow", 1000))
    } else {
        Some(("allow", max.min(1000) as u32))
    };
    let hosts = match item.get("Ips") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(ips)) => {
            ips.iter().filter_map(Value::as_str).map(str::to_owned).collect()
        }
        Some(_) => return Err("Ips must be an array of addresses".into()),
    };
    Ok(Imported {
        name: namer.name(&program::of_argv(&argv), command),
        schedule,
        argv: Some(argv),
        daemon,
        hosts,
        concurrency,
        origin: format!("{source} entry {n}: {command}"),
        line: n,
        ..Imported::default()
    })
}
