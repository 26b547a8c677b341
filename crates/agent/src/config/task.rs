//! What a task file means once validated: the task set, each task with its schedule, program
//! and policies. Built only by the reader (`read.rs`), so its invariants hold downstream.

use std::collections::BTreeMap;

use cronfleet_cron::Schedule;
use jiff::SignedDuration;

use super::{HostPattern, Notifier};

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
pub(super) const ALERT_KINDS: &[&str] = &["failed", "timed_out", "missed", "late", "too_long"];

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
    /// Which ends of a run are retried.
    pub retry_on: RetryOn,
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

/// Which ends of a run `retries` retry (`retry_on`). A run that was killed (by hand, by
/// `replace`, by a stop) is never retried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryOn {
    /// A non-zero exit, a signal, or a run that could not start (`failed`).
    pub failed: bool,
    /// A run stopped by its `timeout` (`timed_out`).
    pub timed_out: bool,
}

impl Default for RetryOn {
    /// Both: a run that hangs until its timeout is a failure too.
    fn default() -> RetryOn {
        RetryOn { failed: true, timed_out: true }
    }
}

impl RetryOn {
    /// The names, as written in a task file.
    pub fn names(self) -> Vec<String> {
        let mut names = Vec::new();
        if self.failed {
            names.push("failed".to_owned());
        }
        if self.timed_out {
            names.push("timed_out".to_owned());
        }
        names
    }
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
