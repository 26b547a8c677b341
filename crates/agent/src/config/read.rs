//! Reading one `[[task]]` table (with `[defaults]` under it) field by field into a [`Task`]:
//! every problem is reported with its position, and nothing invalid gets through.

use std::{collections::BTreeMap, ops::Range};

use cronfleet_cron::Schedule;
use jiff::{tz::TimeZone, SignedDuration, Timestamp, Zoned};
use toml::{
    de::{DeTable, DeValue},
    Spanned,
};

use super::{
    check_keys, error::Reporter, task::ALERT_KINDS, units, AlertRules, CatchUp, Concurrency,
    HostPattern, HttpCall, Kind, Origin, Program, RetryOn, Task, DEFAULT_OUTPUT_LIMIT,
    MAX_OUTPUT_LIMIT,
};

type Value<'i> = Spanned<DeValue<'i>>;

/// Reads one `[[task]]` table (with `[defaults]` under it) field by field.
pub(super) struct TaskReader<'r, 'a, 'i> {
    pub(super) rep: &'r mut Reporter<'a>,
    pub(super) table: &'r DeTable<'i>,
    pub(super) defaults: Option<&'r DeTable<'i>>,
    /// Where `[defaults]` is: errors there belong to no task.
    pub(super) defaults_span: Range<usize>,
    pub(super) header: Range<usize>,
    pub(super) name: Option<String>,
    /// The names of the file's notifiers.
    pub(super) notifiers: &'r [String],
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

    /// `retry_on`: `failed`, `timed_out` or both (the default).
    fn retry_on(&mut self) -> RetryOn {
        let Some(at) = self.get("retry_on").map(|v| v.span().start) else {
            return RetryOn::default();
        };
        let names = self.strings("retry_on");
        let mut on = RetryOn { failed: false, timed_out: false };
        for (name, at) in &names {
            match name.as_str() {
                "failed" => on.failed = true,
                "timed_out" => on.timed_out = true,
                other => self.err(
                    *at,
                    "retry_on",
                    format!("{other:?}: retry_on takes \"failed\" and \"timed_out\""),
                ),
            }
        }
        if names.is_empty() {
            self.err(at, "retry_on", "an empty retry_on retries nothing: give \"failed\", \"timed_out\" or both, or set retries = 0");
        }
        on
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

    pub(super) fn read(&mut self) -> Option<Task> {
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
        // A daemon runs until stopped: a timeout would kill it every period. `[defaults]`
        // timeout is for the scheduled tasks; on the daemon itself it is an error.
        let timeout = match &kind {
            Some(Kind::Daemon) => {
                if let Some(v) = self.table.get("timeout") {
                    let at = v.span().start;
                    self.err(at, "timeout", "a daemon runs until stopped and has no timeout: remove it (`[defaults] timeout` does not apply to daemons)");
                }
                None
            }
            _ => self.duration("timeout"),
        };
        let retries = self.integer("retries", 0, 100).unwrap_or(0) as u32;
        let retry_backoff = self.duration("retry_backoff").unwrap_or(SignedDuration::from_secs(10));
        let retry_on = self.retry_on();
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
            retry_on,
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
