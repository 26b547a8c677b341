//! Turning other schedulers' files into `[[task]]` entries: crontabs and Gotorch's task.json.
//!
//! Each importer returns the tasks it could convert and a report of what it could not, or what
//! will run differently here. [`Import::check`] then parses each task back with the task
//! file's own parser: a task it refuses is reported and left out, so what is written always
//! validates.

pub mod crontab;
pub mod gotorch;
mod name;
mod program;
mod shell;

use std::{fmt::Write as _, path::Path};

use crate::config;

/// One task produced by an importer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Imported {
    /// A unique name derived from the command.
    pub name: String,
    /// The schedule, when not a daemon.
    pub schedule: Option<String>,
    /// `command` (shell) or `argv`.
    pub command: Option<String>,
    /// Program and arguments, run without a shell.
    pub argv: Option<Vec<String>>,
    /// `kind = "daemon"`.
    pub daemon: bool,
    /// Target hosts.
    pub hosts: Vec<String>,
    /// Zone from `CRON_TZ=` lines.
    pub timezone: Option<String>,
    /// Environment from env lines.
    pub env: Vec<(String, String)>,
    /// `user`, from a system crontab.
    pub user: Option<String>,
    /// `concurrency` and `max_running`.
    pub concurrency: Option<(&'static str, u32)>,
    /// Where it came from, as a comment above the task.
    pub origin: String,
    /// The line of the input it came from (the start of a Gotorch entry).
    pub line: usize,
}

/// A note for the user: a line not imported, or imported with a caveat.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    /// 1-based line in the input.
    pub line: usize,
    /// What happened.
    pub message: String,
}

/// What an import produced.
#[derive(Clone, Debug, Default)]
pub struct Import {
    /// The tasks, in input order.
    pub tasks: Vec<Imported>,
    /// Entries not imported, and what will run differently, in input order.
    pub notes: Vec<Note>,
    /// Entries that could not be imported.
    pub skipped: usize,
}

impl Import {
    /// A caveat about an entry that was imported.
    pub(crate) fn note(&mut self, line: usize, message: impl Into<String>) {
        self.notes.push(Note { line, message: message.into() });
    }

    /// An entry that was not imported, and why.
    pub(crate) fn skip(&mut self, line: usize, message: impl Into<String>) {
        self.skipped += 1;
        self.note(line, message);
    }

    /// Parses each task back with the task file's parser (as `cronfleet validate` would, on
    /// this machine: a `user` must exist here): a task it refuses is not imported, and its
    /// errors are reported at the task's line. The notes are then put in line order.
    pub fn check(&mut self, source: &str) {
        let tasks = std::mem::take(&mut self.tasks);
        for task in tasks {
            match config::parse(Path::new(source), &to_toml(std::slice::from_ref(&task))) {
                Ok(_) => self.tasks.push(task),
                Err(errors) => {
                    let why: Vec<String> = errors
                        .0
                        .iter()
                        .map(|e| match &e.field {
                            Some(field) => format!("`{field}`: {}", e.message),
                            None => e.message.clone(),
                        })
                        .collect();
                    self.skip(
                        task.line,
                        format!("not imported: the task file would refuse it: {}", why.join("; ")),
                    );
                }
            }
        }
        self.notes.sort_by_key(|n| n.line);
    }
}

/// A TOML basic string.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The `[[task]]` tables for `tasks`, in order.
pub fn to_toml(tasks: &[Imported]) -> String {
    let mut out = String::new();
    for t in tasks {
        let _ = writeln!(out, "# {}", t.origin.replace('\n', " "));
        let _ = writeln!(out, "[[task]]\nname = {}", quote(&t.name));
        if t.daemon {
            out.push_str("kind = \"daemon\"\n");
        }
        if let Some(s) = &t.schedule {
            let _ = writeln!(out, "schedule = {}", quote(s));
        }
        if let Some(tz) = &t.timezone {
            let _ = writeln!(out, "timezone = {}", quote(tz));
        }
        if let Some(c) = &t.command {
            let _ = writeln!(out, "command = {}", quote(c));
        }
        if let Some(argv) = &t.argv {
            let items: Vec<String> = argv.iter().map(|a| quote(a)).collect();
            let _ = writeln!(out, "argv = [{}]", items.join(", "));
        }
        if !t.hosts.is_empty() {
            let items: Vec<String> = t.hosts.iter().map(|h| quote(h)).collect();
            let _ = writeln!(out, "hosts = [{}]", items.join(", "));
        }
        if let Some(u) = &t.user {
            let _ = writeln!(out, "user = {}", quote(u));
        }
        if let Some((policy, max)) = t.concurrency {
            let _ = writeln!(out, "concurrency = {}\nmax_running = {max}", quote(policy));
        }
        if !t.env.is_empty() {
            let items: Vec<String> =
                t.env.iter().map(|(k, v)| format!("{k} = {}", quote(v))).collect();
            let _ = writeln!(out, "env = {{ {} }}", items.join(", "));
        }
        out.push('\n');
    }
    out
}
