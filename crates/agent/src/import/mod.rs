//! Turning other schedulers' files into `[[task]]` entries: crontabs and Gotorch's task.json.
//!
//! Each importer returns the tasks it could convert and a report of what it could not, or what
//! may mean something else here. The TOML written is checked by the task file validator in the
//! tests, so an import is always a valid starting point.

pub mod crontab;
pub mod gotorch;

use std::{collections::BTreeSet, fmt::Write as _};

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
    /// Zone from `CRON_TZ=`/`TZ=` lines.
    pub timezone: Option<String>,
    /// Environment from env lines.
    pub env: Vec<(String, String)>,
    /// `user`, from a system crontab.
    pub user: Option<String>,
    /// `concurrency` and `max_running`.
    pub concurrency: Option<(&'static str, u32)>,
    /// Where it came from, as a comment above the task.
    pub origin: String,
}

/// A note for the user: a line not imported, or imported with a caveat.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    /// 1-based line (or entry) number in the input.
    pub line: usize,
    /// What happened.
    pub message: String,
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

/// Names tasks after their program, unique within one import: `backup`, `backup-2`, ...
#[derive(Default)]
pub(crate) struct Namer(BTreeSet<String>);

impl Namer {
    pub fn name(&mut self, command: &str) -> String {
        let program = command
            .split_whitespace()
            .find(|w| !w.contains('=')) // skip `VAR=value` prefixes
            .unwrap_or("task");
        let base = program.rsplit('/').next().unwrap_or(program);
        let mut name: String = base
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' })
            .collect::<String>()
            .trim_matches('-')
            .chars()
            .take(50)
            .collect();
        if name.is_empty() {
            name = "task".into();
        }
        let mut candidate = name.clone();
        let mut n = 1;
        while self.0.contains(&candidate) {
            n += 1;
            candidate = format!("{name}-{n}");
        }
        self.0.insert(candidate.clone());
        candidate
    }
}
