//! Gotorch's `task.json` to tasks, reporting every entry that will run differently here than
//! it did under Gotorch's own code (zhenbianshu/gotorch at its last commit, 1c77493:
//! `task/attr.go`, `task/task.go`, `task/loader.go`).
//!
//! Gotorch decodes a JSON array of `{"Command", "TaskType", "Times", "Max", "Ips"}` with Go's
//! `encoding/json` (keys match case-insensitively; a value of the wrong type makes it exit):
//! - `Command` is split on single spaces and run without a shell, output discarded: kept as
//!   `argv`. It is the task's identity (two entries with one `Command` are one task on a
//!   host). `Script`, its name before October 2017, is read when there is no `Command`.
//! - `TaskType` `daemon` keeps it running (`Times` unused, but checked); anything else is a
//!   common task.
//! - `Times`: second, minute, hour, day-of-month, **day-of-week, month**; swapped into cron's
//!   order and imported as cron reads it. Gotorch's own reading ([`times`]) differed for almost
//!   every `Times`, and refused many (exiting on load): each difference is reported.
//! - `Max`: the most concurrent runs, 0 for no limit: `concurrency = "allow"` with
//!   `max_running` (1000 for no limit). On a daemon Gotorch kept `Max` copies running (and
//!   with 0, started one more at every check); a daemon here is one process: reported.
//! - `Ips`: compared as text with one IPv4 address of the host; an entry that is not such an
//!   address never matched and is left out (the entry is not imported when none is left).

mod lines;
mod times;

use std::net::Ipv4Addr;

use cronfleet_cron::Schedule;
use serde_json::{Map, Value};

use self::{lines::Entry, times::Reading};
use super::{name::Namer, program, Import, Imported};

/// The keys Gotorch reads (`Script` in its early versions).
const KEYS: &[&str] = &["Command", "TaskType", "Times", "Max", "Ips", "Script"];

/// Converts the text of a `task.json`.
///
/// # Errors
/// When it is not a JSON array.
pub fn import(text: &str, source: &str) -> Result<Import, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
    let Value::Array(items) = value else {
        return Err("expected a JSON array of tasks".into());
    };
    let positions = lines::entries(text);
    let mut out = Import::default();
    let mut namer = Namer::default();
    let mut commands: Vec<(String, usize)> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let n = i + 1;
        let fallback = Entry::default();
        let pos = positions.get(i).unwrap_or(&fallback);
        let mut reader = Reader { n, pos, out: &mut out };
        let Some(mut task) = reader.task(item, source) else { continue };
        let command = task.argv.as_ref().map(|a| a.join(" ")).unwrap_or_default();
        if let Some((_, first)) = commands.iter().find(|(c, _)| *c == command) {
            reader.note(
                "Command",
                format!(
                    "the same Command as entry {first}: Gotorch ran one of them on each host \
                     (the last whose Ips include it); cronfleet runs both"
                ),
            );
        } else {
            commands.push((command.clone(), n));
        }
        let key = format!("{command}\n{}\n{}", task.schedule.as_deref().unwrap_or(""), task.daemon);
        task.name = namer.name(&program::of_argv(task.argv.as_deref().unwrap_or_default()), &key);
        out.tasks.push(task);
    }
    Ok(out)
}

/// One entry being read: notes go to the line of the key they are about.
struct Reader<'a> {
    n: usize,
    pos: &'a Entry,
    out: &'a mut Import,
}

/// A key as Go's `encoding/json` finds it: exactly, else ignoring case.
fn field<'v>(obj: &'v Map<String, Value>, name: &str) -> Option<(&'v str, &'v Value)> {
    obj.get_key_value(name)
        .or_else(|| obj.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)))
        .map(|(k, v)| (k.as_str(), v))
}

impl Reader<'_> {
    fn line(&self, key: &str) -> usize {
        self.pos.line_of(key)
    }

    fn note(&mut self, key: &str, message: impl AsRef<str>) {
        let line = self.line(key);
        self.out.note(line, format!("entry {}: {}", self.n, message.as_ref()));
    }

    fn skip<T>(&mut self, key: &str, why: impl AsRef<str>) -> Option<T> {
        let line = self.line(key);
        self.out.skip(line, format!("entry {} not imported: {}", self.n, why.as_ref()));
        None
    }

    /// A string field (absent or null: empty), or why Gotorch could not decode it.
    fn string<'v>(
        &self,
        obj: &'v Map<String, Value>,
        name: &str,
    ) -> Result<(&'v str, String), (String, String)> {
        match field(obj, name) {
            None => Ok(("", name.to_owned())),
            Some((key, Value::Null)) => Ok(("", key.to_owned())),
            Some((key, Value::String(s))) => Ok((s.as_str(), key.to_owned())),
            Some((key, _)) => Err((
                key.to_owned(),
                format!("{key} must be a string (Gotorch could not load this file)"),
            )),
        }
    }

    fn task(&mut self, item: &Value, source: &str) -> Option<Imported> {
        let Value::Object(obj) = item else {
            return self.skip("", "not an object (Gotorch could not load this file)");
        };
        for key in obj.keys() {
            if !KEYS.iter().any(|k| k.eq_ignore_ascii_case(key)) {
                let message = format!(
                    "key {key:?} is not one Gotorch reads (Command, TaskType, Times, Max, Ips); \
                     ignored"
                );
                self.note(key, message);
            }
        }
        let (command, command_key) = match self.string(obj, "Command") {
            Ok(found) => found,
            Err((key, why)) => return self.skip(&key, why),
        };
        let (script, script_key) = match self.string(obj, "Script") {
            Ok(found) => found,
            Err((key, why)) => return self.skip(&key, why),
        };
        let (command, command_key) = match (command.is_empty(), script.is_empty()) {
            (true, false) => {
                self.note(
                    &script_key,
                    format!(
                        "{script_key} is Gotorch's older name for Command (renamed in October \
                         2017; later versions ignore it): imported as the command"
                    ),
                );
                (script, script_key)
            }
            (false, false) => {
                self.note(&script_key, format!("{script_key} ignored: Command is given"));
                (command, command_key)
            }
            _ => (command, command_key),
        };
        if command.is_empty() {
            return self.skip(&command_key, "no Command");
        }
        // Gotorch split on single spaces, without a shell.
        let argv: Vec<String> = command.split(' ').map(str::to_owned).collect();
        if argv[0].is_empty() {
            return self.skip(
                &command_key,
                "Command starts with a space: Gotorch ran an empty program name, which fails",
            );
        }
        if argv.iter().any(String::is_empty) {
            self.note(
                &command_key,
                "Command has consecutive or trailing spaces: Gotorch passed empty arguments, kept \
                 as it did",
            );
        }
        let (task_type, type_key) = match self.string(obj, "TaskType") {
            Ok(found) => found,
            Err((key, why)) => return self.skip(&key, why),
        };
        let daemon = task_type == "daemon";
        if !daemon && !task_type.is_empty() && task_type != "common" {
            self.note(
                &type_key,
                format!(
                    "TaskType {task_type:?} is not \"daemon\": Gotorch ran it as a common task, \
                     as this import does"
                ),
            );
        }
        let (times, times_key) = match self.string(obj, "Times") {
            Ok(found) => found,
            Err((key, why)) => return self.skip(&key, why),
        };
        let schedule = if daemon {
            if let Reading::Refused(why) = times::read(times) {
                self.note(
                    &times_key,
                    format!(
                        "Times {times:?}: Gotorch refused it with {why}; it exited on loading \
                         this file, so none of its tasks ran (a daemon does not use Times, but \
                         Gotorch checks it). Imported as a daemon"
                    ),
                );
            }
            None
        } else {
            Some(self.schedule(times, &times_key)?)
        };
        let max = match field(obj, "Max") {
            None | Some((_, Value::Null)) => 0,
            Some((key, v)) => match v.as_i64() {
                Some(max) => max,
                None => {
                    let key = key.to_owned();
                    return self.skip(
                        &key,
                        format!("{key} must be a whole number (Gotorch could not load this file)"),
                    );
                }
            },
        };
        let max_key = field(obj, "Max").map_or("Max", |(k, _)| k).to_owned();
        let concurrency = if daemon {
            if max > 1 {
                self.note(
                    &max_key,
                    format!(
                        "Max {max}: Gotorch kept {max} copies of this daemon running; cronfleet \
                         keeps one (to run {max}, copy the task under other names)"
                    ),
                );
            } else if max <= 0 {
                self.note(
                    &max_key,
                    format!(
                        "Max {max} (no limit): Gotorch started another copy of this daemon at \
                         every check, without end; cronfleet keeps one running"
                    ),
                );
            }
            None
        } else if max <= 0 {
            Some(("allow", 1000))
        } else {
            if max > 1000 {
                self.note(
                    &max_key,
                    format!("Max {max}: cronfleet allows at most 1000 runs at once"),
                );
            }
            Some(("allow", max.min(1000) as u32))
        };
        let hosts = self.hosts(obj)?;
        Some(Imported {
            schedule,
            argv: Some(argv),
            daemon,
            hosts,
            concurrency,
            origin: format!("{source}:{}: entry {}: {command}", self.pos.line, self.n),
            line: self.pos.line,
            ..Imported::default()
        })
    }

    /// A common task's schedule: `Times` in cron's order, with what Gotorch did differently.
    fn schedule(&mut self, times: &str, key: &str) -> Option<String> {
        if times.is_empty() {
            return self.skip(key, "no Times");
        }
        let fields: Vec<&str> = times.split_whitespace().collect();
        let [s, m, h, dom, dow, month] = fields[..] else {
            return self.skip(key, format!("Times {times:?} must have 6 fields"));
        };
        let expr = format!("{s} {m} {h} {dom} {month} {dow}");
        let schedule = match expr.parse::<Schedule>() {
            Ok(schedule) => schedule,
            Err(e) => return self.skip(key, format!("Times {times:?}: {}", e.reason())),
        };
        let imported = format!("Imported as cron reads it: {expr:?}, {}", schedule.describe());
        match times::read(times) {
            Reading::Refused(why) => self.note(
                key,
                format!(
                    "Times {times:?}: Gotorch refused it with {why}; it exited on loading this \
                     file, so none of its tasks ran. {imported}"
                ),
            ),
            Reading::Matched(matched) => {
                if let Some(difference) = times::difference(times, &matched) {
                    self.note(key, format!("Times {times:?}: {difference}. {imported}"));
                }
            }
        }
        Some(expr)
    }

    /// `Ips`: those Gotorch could match (an IPv4 address, as Go prints it); the others are
    /// left out, and an entry with none left is not imported.
    fn hosts(&mut self, obj: &Map<String, Value>) -> Option<Vec<String>> {
        let (key, ips) = match field(obj, "Ips") {
            None | Some((_, Value::Null)) => return Some(Vec::new()),
            Some((key, Value::Array(ips))) => (key.to_owned(), ips),
            Some((key, _)) => {
                let key = key.to_owned();
                return self.skip(
                    &key,
                    format!(
                        "{key} must be an array of addresses (Gotorch could not load this file)"
                    ),
                );
            }
        };
        let mut hosts = Vec::new();
        let mut never = Vec::new();
        for ip in ips {
            let text = match ip {
                Value::String(s) => s.as_str(),
                Value::Null => "",
                _ => {
                    return self.skip(
                        &key,
                        format!("{key} must hold strings (Gotorch could not load this file)"),
                    )
                }
            };
            if text.parse::<Ipv4Addr>().is_ok_and(|a| a.to_string() == text) {
                hosts.push(text.to_owned());
            } else {
                never.push(format!("{text:?}"));
            }
        }
        if never.is_empty() {
            return Some(hosts);
        }
        let what = format!(
            "{key} {} never matched (Gotorch compared each entry, as text, with one IPv4 address \
             of its host, like 192.168.1.9)",
            never.join(", ")
        );
        if hosts.is_empty() {
            return self.skip(&key, format!("Gotorch ran it on no host: {what}"));
        }
        let kept: Vec<String> = hosts.iter().map(|h| format!("{h:?}")).collect();
        self.note(&key, format!("{what}: left out of hosts, which keeps {}", kept.join(", ")));
        Some(hosts)
    }
}
