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
pub mod reference;
mod units;

use std::{collections::BTreeMap, ops::Range, path::Path};

use cronfleet_cron::Schedule;
use jiff::{tz::TimeZone, SignedDuration, Timestamp, Zoned};
use toml::{
    de::{DeTable, DeValue},
    Spanned,
};

pub use error::{ConfigError, ConfigErrors};
pub use hosts::HostPattern;
pub use notify::{Notifier, NotifierKind};

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

/// The validated tasks of a file, in file order.
#[derive(Clone, Debug)]
pub struct TaskSet {
    /// The tasks.
    pub tasks: Vec<Task>,
    /// The alert channels.
    pub notifiers: Vec<Notifier>,
}

/// When a task raises an alert (on its `notify` channels).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlertRules {
    /// A run failed (non-zero exit, killed by a signal, or could not start).
    pub failed: bool,
    /// A run ran past its timeout.
    pub timed_out: bool,
    /// A slot was missed (the agent was down or stalled).
    pub missed: bool,
    /// A run started later than this after its slot.
    pub late: Option<SignedDuration>,
    /// A run is still running after this.
    pub too_long: Option<SignedDuration>,
    /// Failures in a row before a failure alert.
    pub after: u32,
}

/// What `alert_on` may list.
const ALERT_KINDS: &[&str] = &["failed", "timed_out", "missed", "late", "too_long"];

/// One validated task.
#[derive(Clone, Debug, PartialEq)]
pub struct Task {
    /// Unique name, `[a-z0-9_-]`, at most 64 characters.
    pub name: String,
    /// Cron (with its schedule) or daemon.
    pub kind: Kind,
    /// What to run.
    pub program: Program,
    /// Where: empty means every host.
    pub hosts: Vec<HostPattern>,
    /// Tags the agent must all carry.
    pub tags: Vec<String>,
    /// What a slot does while a run of the task is still going.
    pub concurrency: Concurrency,
    /// With `allow` or `queue`: at most this many runs at once.
    pub max_running: u32,
    /// After this, the run's process group gets SIGTERM, then SIGKILL.
    pub timeout: Option<SignedDuration>,
    /// Retries after a failed run.
    pub retries: u32,
    /// The wait before the first retry, doubling after each.
    pub retry_backoff: SignedDuration,
    /// What to do with slots missed while the agent was down.
    pub catch_up: CatchUp,
    /// Extra environment.
    pub env: BTreeMap<String, String>,
    /// Keys of `env` whose values are secret: never logged, hidden from `read` API tokens.
    pub secret_env: Vec<String>,
    /// Working directory (absolute).
    pub workdir: Option<String>,
    /// User to run as (when the agent runs as root).
    pub user: Option<String>,
    /// Output kept per run, in bytes.
    pub output_limit: u64,
    /// Disabled tasks are validated but not scheduled.
    pub enabled: bool,
    /// Alert channels (names of `[[notifier]]`s).
    pub notify: Vec<String>,
    /// When to alert.
    pub alerts: AlertRules,
    /// Key/value labels (a service's own rule ids, say).
    pub labels: BTreeMap<String, String>,
    /// With a shared store: how many matching nodes run each slot (`None`: all of them).
    pub run_on: Option<u32>,
    /// With `run_on`: a slot whose run failed (after its retries) or was lost runs once more,
    /// on another node.
    pub retry_elsewhere: bool,
    /// Where it was defined.
    pub origin: Origin,
    /// Line of the task's `[[task]]` header, for messages.
    pub line: usize,
}

/// How a task runs.
#[derive(Clone, Debug, PartialEq)]
pub enum Kind {
    /// On a schedule (with the task's zone attached).
    Cron(Schedule),
    /// Kept running; restarted with backoff when it exits.
    Daemon,
}

/// What a run does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Program {
    /// Run by `/bin/sh -c`.
    Shell(String),
    /// Run directly.
    Argv(Vec<String>),
    /// Call a URL.
    Http(HttpCall),
}

/// An HTTP request made by a run. `{{task}}`, `{{run_id}}`, `{{scheduled_at}}`, `{{attempt}}`
/// and `{{node}}` in the URL, header values and body are replaced by the run's values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpCall {
    /// `http://` or `https://`.
    pub url: String,
    /// GET, POST, PUT, PATCH, DELETE or HEAD.
    pub method: String,
    /// Request headers.
    pub headers: BTreeMap<String, String>,
    /// Request body.
    pub body: Option<String>,
    /// The statuses that mean success; empty: any 2xx.
    pub expect_status: Vec<u16>,
}

/// Where a task was defined.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// In the task file.
    File,
    /// Through the API (kept in the state store).
    Api,
}

impl Origin {
    /// `file` or `api`.
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::File => "file",
            Origin::Api => "api",
        }
    }
}

/// What a slot does while a run of the same task is still going.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Concurrency {
    /// Start another run (up to `max_running`).
    Allow,
    /// Skip the slot (logged and recorded).
    Forbid,
    /// Wait for the running one, then run (up to `max_running` waiting or running).
    Queue,
    /// Kill the running one, then run.
    Replace,
}

/// What to do with slots missed while the agent was down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CatchUp {
    /// Nothing: wait for the next slot.
    Skip,
    /// Run the latest missed slot once.
    Once,
    /// Run every missed slot (at most 100).
    All,
}

const DEFAULT_OUTPUT_LIMIT: u64 = 256 * 1024;
const MAX_OUTPUT_LIMIT: u64 = 1024 * 1024 * 1024;

/// Reads and validates a task file.
///
/// # Errors
/// Every problem found, or the reason the file could not be read.
pub fn load(path: &Path) -> Result<TaskSet, ConfigErrors> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse(path, &text),
        Err(e) => Err(ConfigErrors(vec![ConfigError {
            file: path.display().to_string(),
            line: 0,
            column: 0,
            task: None,
            field: None,
            message: format!("cannot read the file: {e}"),
        }])),
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
fn check_keys(rep: &mut Reporter<'_>, task: Option<&str>, table: &DeTable<'_>, forbidden: &[&str]) {
    for key in table.keys() {
        let k: &str = key.get_ref();
        if forbidden.contains(&k) {
            rep.error(key.span().start, task, Some(k), format!("`{k}` cannot have a default"));
        } else if !FIELDS.contains(&k) {
            let hint = FIELDS
                .iter()
                .map(|f| (strsim::levenshtein(f, k), f))
                .min()
                .filter(|(d, _)| *d <= 2)
                .map(|(_, f)| format!("; did you mean `{f}`?"))
                .unwrap_or_default();
            rep.error(key.span().start, task, Some(k), format!("unknown field{hint}"));
        }
    }
}

type Value<'i> = Spanned<DeValue<'i>>;

/// Reads one `[[task]]` table (with `[defaults]` under it) field by field.
struct TaskReader<'r, 'a, 'i> {
    rep: &'r mut Reporter<'a>,
    table: &'r DeTable<'i>,
    defaults: Option<&'r DeTable<'i>>,
    /// Where `[defaults]` is: errors there belong to no task.
    defaults_span: Range<usize>,
    header: Range<usize>,
    name: Option<String>,
    /// The names of the file's notifiers.
    notifiers: &'r [String],
}

impl<'r, 'i> TaskReader<'r, '_, 'i> {
    fn err(&mut self, at: usize, field: &str, message: impl std::fmt::Display) {
        let in_defaults = self.defaults_span.contains(&at);
        let task = if in_defaults { None } else { self.name.clone() };
        self.rep.error(at, task.as_deref(), Some(field), message);
    }

    /// The task's own value of a field, or the default.
    fn get(&self, field: &str) -> Option<&'r Value<'i>> {
        self.table.get(field).or_else(|| self.defaults.and_then(|d| d.get(field)))
    }

    fn string(&mut self, field: &str) -> Option<(String, usize)> {
        let v = self.get(field)?;
        let at = v.span().start;
        match v.get_ref() {
            DeValue::String(s) => Some((s.to_string(), at)),
            _ => {
                self.err(at, field, "expected a string");
                None
            }
        }
    }

    fn strings(&mut self, field: &str) -> Vec<(String, usize)> {
        let Some(v) = self.get(field) else { return Vec::new() };
        let at = v.span().start;
        let DeValue::Array(items) = v.get_ref() else {
            self.err(at, field, "expected an array of strings");
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut bad = Vec::new();
        for item in items.iter() {
            match item.get_ref() {
                DeValue::String(s) => out.push((s.to_string(), item.span().start)),
                _ => bad.push(item.span().start),
            }
        }
        for at in bad {
            self.err(at, field, "expected a string");
        }
        out
    }

    fn integer(&mut self, field: &str, min: i64, max: i64) -> Option<i64> {
        let v = self.get(field)?;
        let at = v.span().start;
        let n = match v.get_ref() {
            DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix()).ok(),
            _ => None,
        };
        match n.filter(|n| (min..=max).contains(n)) {
            Some(n) => Some(n),
            None => {
                self.err(at, field, format!("expected an integer {min}-{max}"));
                None
            }
        }
    }

    fn boolean(&mut self, field: &str) -> Option<bool> {
        let v = self.get(field)?;
        match v.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            _ => {
                let at = v.span().start;
                self.err(at, field, "expected true or false");
                None
            }
        }
    }

    /// One of `options`; `None` (with an error) when something else.
    fn choice(&mut self, field: &str, options: &[&str]) -> Option<Option<usize>> {
        let (text, at) = self.string(field)?;
        let found = options.iter().position(|o| *o == text);
        if found.is_none() {
            self.err(at, field, format!("expected one of {}, not {text:?}", options.join(", ")));
        }
        Some(found)
    }

    fn duration(&mut self, field: &str) -> Option<SignedDuration> {
        let (text, at) = self.string(field)?;
        match units::duration(&text) {
            Ok(d) => Some(d),
            Err(why) => {
                self.err(at, field, why);
                None
            }
        }
    }

    fn read(&mut self) -> Option<Task> {
        let table = self.table;
        let (line, _) = self.rep.position(self.header.start);
        // The name first, so that every later message can name the task.
        let name = match self.table.get("name") {
            None => {
                let at = self.header.start;
                self.rep.error(at, None, Some("name"), "a task needs a name");
                None
            }
            Some(_) => self.string("name").and_then(|(name, at)| {
                let valid = !name.is_empty()
                    && name.len() <= 64
                    && name.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'
                    });
                if !valid {
                    self.err(at, "name", format!("{name:?}: use 1-64 of a-z, 0-9, _ and -"));
                }
                valid.then_some(name)
            }),
        };
        self.name.clone_from(&name);
        let errors_before = self.rep.errors.len();
        check_keys(self.rep, name.as_deref(), table, &[]);

        let timezone = self.string("timezone").and_then(|(tz, at)| match jiff::tz::db().get(&tz) {
            Ok(zone) => Some(zone),
            Err(_) => {
                self.err(
                    at,
                    "timezone",
                    format!("unknown time zone {tz:?} (IANA names like Europe/Berlin)"),
                );
                None
            }
        });
        let kind = self.kind(timezone.as_ref());
        let program = self.program();
        let hosts = self
            .strings("hosts")
            .into_iter()
            .filter_map(|(h, at)| match HostPattern::parse(&h) {
                Ok(p) => Some(p),
                Err(why) => {
                    self.err(at, "hosts", why);
                    None
                }
            })
            .collect();
        let tags = self
            .strings("tags")
            .into_iter()
            .filter_map(|(t, at)| {
                let ok = !t.is_empty()
                    && t.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
                if !ok {
                    self.err(at, "tags", format!("{t:?}: use letters, digits, - _ and ."));
                }
                ok.then_some(t)
            })
            .collect();
        let concurrency = match self.choice("concurrency", &["allow", "forbid", "queue", "replace"])
        {
            Some(Some(0)) => Concurrency::Allow,
            Some(Some(2)) => Concurrency::Queue,
            Some(Some(3)) => Concurrency::Replace,
            _ => Concurrency::Forbid,
        };
        let max_running = self.integer("max_running", 1, 1000).unwrap_or(1) as u32;
        let timeout = self.duration("timeout");
        let retries = self.integer("retries", 0, 100).unwrap_or(0) as u32;
        let retry_backoff = self.duration("retry_backoff").unwrap_or(SignedDuration::from_secs(10));
        let catch_up = match self.choice("catch_up", &["skip", "once", "all"]) {
            Some(Some(1)) => CatchUp::Once,
            Some(Some(2)) => CatchUp::All,
            _ => CatchUp::Skip,
        };
        let env = self.env();
        let secret_env = self
            .strings("secret_env")
            .into_iter()
            .filter_map(|(key, at)| {
                let known = env.contains_key(&key);
                if !known {
                    self.err(at, "secret_env", format!("{key:?} is not a key of this task's env"));
                }
                known.then_some(key)
            })
            .collect();
        let workdir = self.string("workdir").and_then(|(dir, at)| {
            let ok = dir.starts_with('/');
            if !ok {
                self.err(at, "workdir", format!("{dir:?} must be an absolute path"));
            }
            ok.then_some(dir)
        });
        let user =
            self.string("user").and_then(|(user, at)| match nix::unistd::User::from_name(&user) {
                Ok(Some(_)) => Some(user),
                _ => {
                    self.err(at, "user", format!("unknown user {user:?} on this machine"));
                    None
                }
            });
        let output_limit =
            self.string("output_limit").map_or(Some(DEFAULT_OUTPUT_LIMIT), |(text, at)| {
                match units::size(&text) {
                    Ok(n) if (1..=MAX_OUTPUT_LIMIT).contains(&n) => Some(n),
                    Ok(_) => {
                        self.err(at, "output_limit", "must be between 1B and 1GiB");
                        None
                    }
                    Err(why) => {
                        self.err(at, "output_limit", why);
                        None
                    }
                }
            });
        let enabled = self.boolean("enabled").unwrap_or(true);
        let (notify, alerts) = self.alerts();
        let run_on = self.run_on();
        let retry_elsewhere = self.boolean("retry_elsewhere").unwrap_or(false);
        if retry_elsewhere && run_on.is_none() {
            let at =
                self.table.get("retry_elsewhere").map_or(self.header.start, |v| v.span().start);
            self.err(
                at,
                "retry_elsewhere",
                "retry_elsewhere needs run_on = \"one\" or a number: a task every node runs has no other node to retry on",
            );
        }
        let labels = self.labels();
        if matches!(program, Some(Program::Http(_))) {
            for field in ["user", "workdir"] {
                if let Some(v) = self.table.get(field) {
                    let at = v.span().start;
                    self.err(at, field, "an http task starts no process: remove it");
                }
            }
            if matches!(kind, Some(Kind::Daemon)) {
                let at = self.table.get("http").map_or(self.header.start, |v| v.span().start);
                self.err(at, "http", "a daemon task runs a process: use command or argv");
            }
        }

        if self.rep.errors.len() > errors_before {
            return None;
        }
        Some(Task {
            name: name?,
            kind: kind?,
            program: program?,
            hosts,
            tags,
            concurrency,
            max_running,
            timeout,
            retries,
            retry_backoff,
            catch_up,
            env,
            secret_env,
            workdir,
            user,
            output_limit: output_limit?,
            enabled,
            notify,
            alerts,
            labels,
            run_on,
            retry_elsewhere,
            origin: Origin::File,
            line,
        })
    }

    /// `notify`, `alert_on`, `alert_after`, `late_after` and `too_long`.
    fn alerts(&mut self) -> (Vec<String>, AlertRules) {
        let mut notify = Vec::new();
        for (name, at) in self.strings("notify") {
            if self.notifiers.contains(&name) {
                notify.push(name);
            } else {
                let known = if self.notifiers.is_empty() {
                    "this file has no [[notifier]]".to_owned()
                } else {
                    format!("notifiers: {}", self.notifiers.join(", "))
                };
                self.err(at, "notify", format!("no notifier named {name:?} ({known})"));
            }
        }
        let listed = self.get("alert_on").is_some();
        let mut on: Vec<String> = Vec::new();
        for (kind, at) in self.strings("alert_on") {
            if ALERT_KINDS.contains(&kind.as_str()) {
                on.push(kind);
            } else {
                let message = format!("{kind:?}: expected some of {}", ALERT_KINDS.join(", "));
                self.err(at, "alert_on", message);
            }
        }
        let late = self.duration("late_after");
        let too_long = self.duration("too_long");
        let at = self.get("alert_on").map_or(self.header.start, |v| v.span().start);
        if listed && on.iter().any(|k| k == "late") && late.is_none() {
            self.err(at, "alert_on", "\"late\" needs late_after: how late is late");
        }
        if listed && on.iter().any(|k| k == "too_long") && too_long.is_none() {
            self.err(at, "alert_on", "\"too_long\" needs too_long: how long is too long");
        }
        let wants = |kind: &str| !listed || on.iter().any(|k| k == kind);
        let rules = AlertRules {
            failed: wants("failed"),
            timed_out: wants("timed_out"),
            missed: wants("missed"),
            late: late.filter(|_| wants("late")),
            too_long: too_long.filter(|_| wants("too_long")),
            after: self.integer("alert_after", 1, 1000).unwrap_or(1) as u32,
        };
        (notify, rules)
    }

    fn kind(&mut self, tz: Option<&TimeZone>) -> Option<Kind> {
        let daemon = matches!(self.choice("kind", &["cron", "daemon"]), Some(Some(1)));
        let schedule = self.get("schedule").map(|v| v.span().start);
        if daemon {
            if let Some(at) = schedule {
                self.err(at, "schedule", "a daemon task runs all the time: remove its schedule");
            }
            if let Some(v) = self.get("anchor") {
                let at = v.span().start;
                self.err(at, "anchor", "a daemon task has no schedule to anchor");
            }
            return Some(Kind::Daemon);
        }
        let Some((expr, at)) = self.string("schedule") else {
            if schedule.is_none() {
                let at = self.header.start;
                self.err(at, "schedule", "a cron task needs a schedule (or kind = \"daemon\")");
            }
            return None;
        };
        let mut schedule: Schedule = match expr.parse() {
            Ok(s) => s,
            Err(e) => {
                // Point at the fault inside the string (after its opening quote).
                let fault = at + 1 + e.offset().min(expr.len());
                self.err(fault, "schedule", e.to_string());
                return None;
            }
        };
        if let Some(tz) = tz {
            schedule = schedule.in_time_zone(tz.clone());
        }
        if let Some(v) = self.get("anchor") {
            let at = v.span().start;
            let text = match v.get_ref() {
                DeValue::String(s) => s.to_string(),
                DeValue::Datetime(d) => d.to_string(),
                _ => {
                    self.err(at, "anchor", "expected a date and time with offset");
                    return None;
                }
            };
            let zone = tz.cloned().unwrap_or(TimeZone::UTC);
            let anchor = text
                .parse::<Zoned>()
                .or_else(|_| text.parse::<Timestamp>().map(|t| t.to_zoned(zone)));
            let Ok(anchor) = anchor else {
                self.err(
                    at,
                    "anchor",
                    format!(
                        "{text:?}: expected a time with offset, like 2026-05-01T10:00:00+08:00"
                    ),
                );
                return None;
            };
            match schedule.with_anchor(anchor) {
                Ok(s) => schedule = s,
                Err(_) => {
                    self.err(at, "anchor", "an anchor needs an @every schedule");
                    return None;
                }
            }
        }
        Some(Kind::Cron(schedule))
    }

    fn program(&mut self) -> Option<Program> {
        let command = self.string("command");
        let argv = self.get("argv").is_some().then(|| self.strings("argv"));
        let http = self.get("http").map(|v| v.span().start);
        let given = usize::from(command.is_some() || self.get("command").is_some())
            + usize::from(argv.is_some())
            + usize::from(http.is_some());
        if given > 1 {
            // At the first of them, as written.
            let at = [self.get("command"), self.get("argv"), self.get("http")]
                .into_iter()
                .flatten()
                .map(|v| v.span().start)
                .min()
                .unwrap_or(self.header.start);
            self.err(at, "command", "give one of command, argv and http, not several");
            return None;
        }
        if http.is_some() {
            return self.http().map(Program::Http);
        }
        match (command, argv) {
            (Some((cmd, at)), None) => {
                if cmd.trim().is_empty() {
                    self.err(at, "command", "the command is empty");
                    return None;
                }
                Some(Program::Shell(cmd))
            }
            (None, Some(argv)) if !argv.is_empty() => {
                Some(Program::Argv(argv.into_iter().map(|(a, _)| a).collect()))
            }
            (None, Some(_)) => {
                let at = self.get("argv").map_or(self.header.start, |v| v.span().start);
                self.err(at, "argv", "argv needs at least the program");
                None
            }
            (Some(_), Some(_)) => None,
            (None, None) => {
                if self.get("command").is_none() {
                    let at = self.header.start;
                    self.err(
                        at,
                        "command",
                        "a task needs a command (run by /bin/sh -c), an argv, or an http call",
                    );
                }
                None
            }
        }
    }

    /// The `http` table.
    fn http(&mut self) -> Option<HttpCall> {
        let v = self.get("http")?;
        let at = v.span().start;
        let DeValue::Table(t) = v.get_ref() else {
            self.err(
                at,
                "http",
                "expected a table, like { url = \"https://...\", method = \"POST\" }",
            );
            return None;
        };
        let before = self.rep.errors.len();
        let mut call = HttpCall {
            url: String::new(),
            method: String::new(),
            headers: BTreeMap::new(),
            body: None,
            expect_status: Vec::new(),
        };
        let mut method = None;
        for (key, value) in t.iter() {
            let k: &str = key.get_ref();
            let vat = value.span().start;
            match (k, value.get_ref()) {
                ("url", DeValue::String(u)) => {
                    if u.starts_with("http://") || u.starts_with("https://") {
                        call.url = u.to_string();
                    } else {
                        self.err(vat, "http", format!("url {u:?}: expected http:// or https://"));
                    }
                }
                ("method", DeValue::String(m)) => {
                    const METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"];
                    if METHODS.contains(&m.as_ref()) {
                        method = Some(m.to_string());
                    } else {
                        self.err(
                            vat,
                            "http",
                            format!("method {m:?}: expected one of {}", METHODS.join(", ")),
                        );
                    }
                }
                ("body", DeValue::String(b)) => call.body = Some(b.to_string()),
                ("headers", DeValue::Table(h)) => {
                    for (name, value) in h.iter() {
                        let n: &str = name.get_ref();
                        let valid = !n.is_empty()
                            && n.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b));
                        match value.get_ref() {
                            DeValue::String(text) if valid => {
                                call.headers.insert(n.to_owned(), text.to_string());
                            }
                            _ => self.err(
                                value.span().start,
                                "http",
                                format!("header {n:?}: expected a header name with a string value"),
                            ),
                        }
                    }
                }
                ("expect_status", DeValue::Array(codes)) => {
                    for code in codes.iter() {
                        let n = match code.get_ref() {
                            DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix()).ok(),
                            _ => None,
                        };
                        match n.filter(|n| (100..=599).contains(n)) {
                            Some(n) => call.expect_status.push(n as u16),
                            None => self.err(
                                code.span().start,
                                "http",
                                "expect_status: expected status codes 100-599",
                            ),
                        }
                    }
                }
                ("url" | "method" | "body", _) => {
                    self.err(vat, "http", format!("{k}: expected a string"))
                }
                ("headers", _) => self.err(vat, "http", "headers: expected a table of strings"),
                ("expect_status", _) => {
                    self.err(vat, "http", "expect_status: expected an array of status codes")
                }
                (other, _) => self.err(
                    key.span().start,
                    "http",
                    format!(
                        "unknown key {other:?}: http has url, method, headers, body, expect_status"
                    ),
                ),
            }
        }
        if call.url.is_empty() && !t.contains_key("url") {
            self.err(at, "http", "an http call needs a url");
        }
        if self.rep.errors.len() > before {
            return None;
        }
        call.method =
            method.unwrap_or_else(|| if call.body.is_some() { "POST" } else { "GET" }.to_owned());
        Some(call)
    }

    /// `run_on`: `"all"`, `"one"`, or a number of nodes.
    fn run_on(&mut self) -> Option<u32> {
        let v = self.get("run_on")?;
        let at = v.span().start;
        let n = match v.get_ref() {
            DeValue::String(s) if s.as_ref() == "all" => return None,
            DeValue::String(s) if s.as_ref() == "one" => Some(1),
            DeValue::Integer(i) => {
                i64::from_str_radix(i.as_str(), i.radix()).ok().filter(|n| (1..=1000).contains(n))
            }
            _ => None,
        };
        if n.is_none() {
            self.err(at, "run_on", "expected \"all\", \"one\" or a number of nodes 1-1000");
        }
        n.map(|n| n as u32)
    }

    /// `labels`: a table of strings.
    fn labels(&mut self) -> BTreeMap<String, String> {
        let mut labels = BTreeMap::new();
        let Some(v) = self.get("labels") else { return labels };
        let DeValue::Table(t) = v.get_ref() else {
            let at = v.span().start;
            self.err(at, "labels", "expected a table of strings, like { rule = \"42\" }");
            return labels;
        };
        for (key, value) in t.iter() {
            let k: &str = key.get_ref();
            let valid = !k.is_empty()
                && k.len() <= 63
                && k.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./".contains(&b));
            match value.get_ref() {
                DeValue::String(text) if valid && text.len() <= 256 => {
                    labels.insert(k.to_owned(), text.to_string());
                }
                _ if !valid => self.err(
                    key.span().start,
                    "labels",
                    format!("{k:?}: use 1-63 of letters, digits, - _ . /"),
                ),
                _ => self.err(
                    value.span().start,
                    "labels",
                    format!("{k}: expected a string of at most 256 bytes"),
                ),
            }
        }
        labels
    }

    /// `[defaults]` env and the task's env, merged (the task wins).
    fn env(&mut self) -> BTreeMap<String, String> {
        let mut env = BTreeMap::new();
        let tables: Vec<&Value<'i>> =
            [self.defaults.and_then(|d| d.get("env")), self.table.get("env")]
                .into_iter()
                .flatten()
                .collect();
        for v in tables {
            let DeValue::Table(t) = v.get_ref() else {
                let at = v.span().start;
                self.err(at, "env", "expected a table of strings, like { LANG = \"C\" }");
                continue;
            };
            for (key, value) in t.iter() {
                let k: &str = key.get_ref();
                let valid_key = !k.is_empty()
                    && !k.starts_with(|c: char| c.is_ascii_digit())
                    && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
                if !valid_key {
                    self.err(
                        key.span().start,
                        "env",
                        format!("{k:?} is not a valid variable name"),
                    );
                    continue;
                }
                match value.get_ref() {
                    DeValue::String(s) => {
                        env.insert(k.to_owned(), s.to_string());
                    }
                    _ => self.err(
                        value.span().start,
                        "env",
                        format!("the value of {k} must be a string"),
                    ),
                }
            }
        }
        env
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use proptest::prelude::*;

    use super::*;

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
