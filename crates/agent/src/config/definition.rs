//! A task turned back into its definition: the inverse of the parser. Its fields carry the
//! task file's names and values (`schedule = "@daily"`, `timeout = "5m"`), as the API shows a
//! task and `plan` compares two.
//!
//! Only what the API shows: the alert and fleet fields (`notify`, `alert_on`, `run_on`, ...)
//! are not part of it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{CatchUp, Concurrency, Kind, Origin, Program, Task};

/// What secret env values (and HTTP header values) are shown as to those who may not see
/// them.
pub const HIDDEN: &str = "(secret)";

/// A task's definition, by the task file's field names.
///
/// As JSON its fields are those of the task file, `kind`, `schedule` and `command` (or `argv`,
/// or `http`) at the top level beside the others.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct Definition {
    /// `name`.
    pub name: String,
    /// `kind` and, for cron tasks, the schedule's fields.
    #[serde(flatten)]
    pub kind: KindFields,
    /// `command`, `argv` or `http`.
    #[serde(flatten)]
    pub program: ProgramFields,
    /// `hosts`, as written.
    pub hosts: Vec<String>,
    /// `tags`.
    pub tags: Vec<String>,
    /// `concurrency`.
    #[serde(with = "ConcurrencyName")]
    pub concurrency: Concurrency,
    /// `max_running`.
    pub max_running: u32,
    /// `timeout` (`"5m"`).
    pub timeout: Option<String>,
    /// `retries`.
    pub retries: u32,
    /// `retry_on`: `failed`, `timed_out` (both when an older agent does not say).
    #[serde(default = "both_retried")]
    pub retry_on: Vec<String>,
    /// `retry_backoff` (`"10s"`).
    pub retry_backoff: String,
    /// `catch_up`.
    #[serde(with = "CatchUpName")]
    pub catch_up: CatchUp,
    /// `env` (secret values maybe hidden).
    pub env: BTreeMap<String, String>,
    /// `secret_env`.
    pub secret_env: Vec<String>,
    /// `workdir`.
    pub workdir: Option<String>,
    /// `user`.
    pub user: Option<String>,
    /// `output_limit`, in bytes.
    pub output_limit: u64,
    /// `enabled`.
    pub enabled: bool,
    /// `labels`.
    pub labels: BTreeMap<String, String>,
    /// Where the task was defined.
    #[serde(with = "OriginName")]
    pub origin: Origin,
}

/// A task's `kind`, with the fields of a cron task's schedule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum KindFields {
    /// Runs on a schedule.
    Cron {
        /// The expression, canonical (`0 30 2 * * *`, `@every 1000h`).
        schedule: String,
        /// The IANA zone of the schedule; none: the agent's.
        timezone: Option<String>,
        /// The anchor of an `@every` schedule, RFC 3339 with its offset.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[cfg_attr(test, schemars(extend("format" = "date-time")))]
        anchor: Option<String>,
        /// The schedule in English (not a task file field: shown, never compared).
        description: String,
    },
    /// Kept running.
    Daemon,
}

/// What a run does: exactly one of `command`, `argv` and `http`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum ProgramFields {
    /// A shell command.
    Command(String),
    /// A program and its arguments.
    Argv(Vec<String>),
    /// An HTTP request.
    Http(HttpFields),
}

/// The `http` table. Fields in alphabetical order, the order they are sent in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct HttpFields {
    /// `body`.
    pub body: Option<String>,
    /// `expect_status`.
    pub expect_status: Vec<u16>,
    /// `headers` (values maybe hidden: they often carry credentials).
    pub headers: BTreeMap<String, String>,
    /// `method`.
    pub method: String,
    /// `url`.
    pub url: String,
}

/// The names of [`Concurrency`]'s values, as in the task file.
#[derive(Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[cfg_attr(test, schemars(description = "`concurrency`: what a slot does while a run is going."))]
#[serde(remote = "Concurrency", rename_all = "snake_case")]
enum ConcurrencyName {
    /// Start another run (up to `max_running`).
    Allow,
    /// Skip the slot.
    Forbid,
    /// Wait for the running one to end (up to `max_running` at once).
    Queue,
    /// Kill the running one and start.
    Replace,
}

/// The names of [`CatchUp`]'s values, as in the task file.
#[derive(Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[cfg_attr(test, schemars(description = "`catch_up`: the slots missed while the agent was down."))]
#[serde(remote = "CatchUp", rename_all = "snake_case")]
enum CatchUpName {
    /// Record them as missed.
    Skip,
    /// Run the latest of them now.
    Once,
    /// Run each of them now, oldest first.
    All,
}

/// The names of [`Origin`]'s values.
#[derive(Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[cfg_attr(test, schemars(description = "Where a task was defined."))]
#[serde(remote = "Origin", rename_all = "snake_case")]
enum OriginName {
    /// The task file (read-only through the API, but for run now, pause and resume).
    File,
    /// The API (`POST /api/v1/tasks`).
    Api,
}

impl Definition {
    /// The definition of `task`; secret env values and HTTP header values are shown as
    /// [`HIDDEN`] unless `secrets`.
    pub fn of(task: &Task, secrets: bool) -> Definition {
        let kind = match &task.kind {
            Kind::Cron(schedule) => KindFields::Cron {
                schedule: schedule.to_string(),
                timezone: schedule.time_zone().and_then(|z| z.iana_name()).map(str::to_owned),
                anchor: schedule
                    .anchor()
                    .map(|a| a.timestamp().display_with_offset(a.offset()).to_string()),
                description: schedule.describe(),
            },
            Kind::Daemon => KindFields::Daemon,
        };
        let program = match &task.program {
            Program::Shell(command) => ProgramFields::Command(command.clone()),
            Program::Argv(argv) => ProgramFields::Argv(argv.clone()),
            Program::Http(call) => ProgramFields::Http(HttpFields {
                body: call.body.clone(),
                expect_status: call.expect_status.clone(),
                headers: call
                    .headers
                    .iter()
                    .map(|(k, v)| (k.clone(), if secrets { v.clone() } else { HIDDEN.into() }))
                    .collect(),
                method: call.method.clone(),
                url: call.url.clone(),
            }),
        };
        let env = task
            .env
            .iter()
            .map(|(k, v)| {
                let hide = !secrets && task.secret_env.contains(k);
                (k.clone(), if hide { HIDDEN.to_owned() } else { v.clone() })
            })
            .collect();
        Definition {
            name: task.name.clone(),
            kind,
            program,
            hosts: task.hosts.iter().map(ToString::to_string).collect(),
            tags: task.tags.clone(),
            concurrency: task.concurrency,
            max_running: task.max_running,
            timeout: task.timeout.map(|t| format!("{t:#}")),
            retries: task.retries,
            retry_on: task.retry_on.names(),
            retry_backoff: format!("{:#}", task.retry_backoff),
            catch_up: task.catch_up,
            env,
            secret_env: task.secret_env.clone(),
            workdir: task.workdir.clone(),
            user: task.user.clone(),
            output_limit: task.output_limit,
            enabled: task.enabled,
            labels: task.labels.clone(),
            origin: task.origin,
        }
    }

    /// The schedule in English; none for a daemon.
    pub fn description(&self) -> Option<&str> {
        match &self.kind {
            KindFields::Cron { description, .. } => Some(description),
            KindFields::Daemon => None,
        }
    }

    /// Field by field, by name (in alphabetical order): what `plan` compares.
    pub fn fields(&self) -> Map<String, Value> {
        match serde_json::to_value(self) {
            Ok(Value::Object(fields)) => fields,
            // A struct of strings, numbers, lists and string maps is always an object.
            _ => unreachable!("a definition is a JSON object"),
        }
    }
}

/// `retry_on`'s default, by name.
fn both_retried() -> Vec<String> {
    crate::config::RetryOn::default().names()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(text: &str) -> Task {
        let set = crate::config::parse(std::path::Path::new("t.toml"), text).unwrap();
        set.tasks.into_iter().next().unwrap()
    }

    /// A definition read back from its JSON is the same definition, whatever the kind and
    /// program.
    #[test]
    fn round_trips_through_json() {
        for text in [
            "[[task]]\nname = \"a\"\nschedule = \"@every 2h\"\nanchor = \"2010-01-01T00:00:00Z\"\ncommand = \"x\"\nenv = { S = \"1\" }\nsecret_env = [\"S\"]\n",
            "[[task]]\nname = \"b\"\nschedule = \"30 2 * * *\"\ntimezone = \"Europe/Berlin\"\nargv = [\"/bin/true\"]\nconcurrency = \"queue\"\ncatch_up = \"all\"\n",
            "[[task]]\nname = \"c\"\nschedule = \"@daily\"\nhttp = { url = \"http://h/x\", headers = { A = \"b\" } }\n",
            "[[task]]\nname = \"d\"\nkind = \"daemon\"\ncommand = \"sleep 9\"\nhosts = [\"web-*\"]\n",
        ] {
            let definition = Definition::of(&task(text), false);
            let json = serde_json::to_string(&definition).unwrap();
            assert_eq!(serde_json::from_str::<Definition>(&json).unwrap(), definition, "{json}");
        }
    }

    #[test]
    fn secrets_hidden_unless_asked() {
        let t = task("[[task]]\nname = \"a\"\nschedule = \"@daily\"\ncommand = \"x\"\nenv = { S = \"1\", P = \"2\" }\nsecret_env = [\"S\"]\n");
        assert_eq!(Definition::of(&t, false).env["S"], HIDDEN);
        assert_eq!(Definition::of(&t, false).env["P"], "2");
        assert_eq!(Definition::of(&t, true).env["S"], "1");
        let fields = Definition::of(&t, true).fields();
        assert_eq!(fields["kind"], "cron");
        assert_eq!(fields["concurrency"], "forbid");
        assert!(fields["timezone"].is_null() && !fields.contains_key("anchor"));
    }
}
