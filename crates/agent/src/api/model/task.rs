//! Tasks: a task with its state, the detail of one, the listing, and the bodies of the routes
//! that change one.

use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

use super::{sorted, Definition, Run};
use crate::{
    agent::TaskView,
    store::{RunRecord, StoredTask},
};

/// A task with its state on the node asked (`GET /api/v1/tasks`, and the answers of the
/// routes that change a task).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct Task {
    /// Its definition, by the task file's field names.
    #[serde(flatten)]
    pub definition: Definition,
    /// Its latest run, in the listing (elsewhere: none).
    pub last_run: Option<Run>,
    /// When it fires next on this node (cron tasks of this node, not paused), RFC 3339.
    #[cfg_attr(test, schemars(extend("format" = "date-time")))]
    pub next_run: Option<String>,
    /// Paused by hand.
    pub paused: bool,
    /// When a pause ends by itself.
    #[cfg_attr(test, schemars(extend("format" = "date-time")))]
    pub paused_until: Option<String>,
    /// Its runs in flight on this node.
    pub running: usize,
    /// This node runs it (it matches `hosts` and `tags`, and is enabled).
    pub runs_here: bool,
    /// For a task created through the API: its revision and times.
    #[serde(flatten)]
    pub stored: Option<Revision>,
    /// For a daemon this node runs: up or restarting, since when, how often restarted.
    #[serde(default)]
    pub daemon: Option<Daemon>,
}

/// What a daemon is doing on this node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct Daemon {
    /// `starting`, `up`, `restarting`, or `standby` (a `run_on` daemon other nodes run).
    pub state: DaemonStateName,
    /// Since when its process runs (when `up`), RFC 3339.
    #[cfg_attr(test, schemars(extend("format" = "date-time")))]
    pub up_since: Option<String>,
    /// How long its process has run (when `up`), seconds.
    pub uptime_s: Option<i64>,
    /// When it starts again (when `restarting`), RFC 3339.
    #[cfg_attr(test, schemars(extend("format" = "date-time")))]
    pub restart_at: Option<String>,
    /// Restarts after an exit since the agent started (or the task last changed).
    pub restarts: u32,
}

/// The states of a daemon, by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum DaemonStateName {
    /// Not started yet.
    Starting,
    /// Its process runs.
    Up,
    /// It exited and starts again after its backoff.
    Restarting,
    /// Other nodes run it; this one stands by.
    Standby,
}

impl Daemon {
    /// A daemon's status as the API shows it, at `now`.
    pub fn of(status: &crate::agent::DaemonStatus, now: jiff::Timestamp) -> Daemon {
        use crate::agent::DaemonState;
        let (state, up_since, restart_at) = match &status.state {
            DaemonState::Starting => (DaemonStateName::Starting, None, None),
            DaemonState::Up { since } => (DaemonStateName::Up, Some(*since), None),
            DaemonState::Restarting { at } => (DaemonStateName::Restarting, None, Some(*at)),
            DaemonState::Standby => (DaemonStateName::Standby, None, None),
        };
        Daemon {
            state,
            up_since: up_since.map(|t| t.round(jiff::Unit::Second).unwrap_or(t).to_string()),
            uptime_s: up_since.map(|t| now.duration_since(t).as_secs()),
            restart_at: restart_at.map(|t| t.round(jiff::Unit::Second).unwrap_or(t).to_string()),
            restarts: status.restarts,
        }
    }

    /// In a few words, for `status` and the dashboard: `up 3m 12s (2 restarts)`.
    pub fn describe(&self) -> String {
        let restarts = match self.restarts {
            0 => String::new(),
            1 => " (1 restart)".to_owned(),
            n => format!(" ({n} restarts)"),
        };
        let state = match (self.state, self.uptime_s) {
            (DaemonStateName::Up, Some(s)) => {
                format!("up {:#}", jiff::SignedDuration::from_secs(s.max(0)))
            }
            (DaemonStateName::Up, None) => "up".to_owned(),
            (DaemonStateName::Starting, _) => "starting".to_owned(),
            (DaemonStateName::Restarting, _) => "restarting".to_owned(),
            (DaemonStateName::Standby, _) => "standby (runs on another node)".to_owned(),
        };
        format!("{state}{restarts}")
    }
}

impl Serialize for Task {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Fields<'a> {
            #[serde(flatten)]
            definition: &'a Definition,
            last_run: &'a Option<Run>,
            next_run: &'a Option<String>,
            paused: bool,
            paused_until: &'a Option<String>,
            running: usize,
            runs_here: bool,
            #[serde(flatten)]
            stored: &'a Option<Revision>,
            daemon: &'a Option<Daemon>,
        }
        let fields = Fields {
            definition: &self.definition,
            last_run: &self.last_run,
            next_run: &self.next_run,
            paused: self.paused,
            paused_until: &self.paused_until,
            running: self.running,
            runs_here: self.runs_here,
            stored: &self.stored,
            daemon: &self.daemon,
        };
        sorted(&fields, serializer)
    }
}

impl Task {
    /// A task as this node sees it, with its latest run when known; secrets shown only when
    /// `secrets`.
    pub fn of(view: &TaskView, last: Option<&RunRecord>, secrets: bool) -> Task {
        Task {
            definition: Definition::of(&view.task, secrets),
            last_run: last.map(Run::of),
            next_run: view.next.as_ref().map(zoned),
            paused: view.paused.is_some(),
            paused_until: view.paused.flatten().map(|t| t.to_string()),
            running: view.running,
            runs_here: view.here,
            stored: view.stored.as_ref().map(Revision::of),
            daemon: view.daemon.as_ref().map(|d| Daemon::of(d, crate::clock::now())),
        }
    }
}

/// The revision of a task created through the API, and when it was created and changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct Revision {
    /// When it was created.
    #[cfg_attr(test, schemars(extend("format" = "date-time")))]
    pub created_at: String,
    /// 1, then one more at each change (the ETag; `If-Match` asks for it).
    pub revision: i64,
    /// When it last changed.
    #[cfg_attr(test, schemars(extend("format" = "date-time")))]
    pub updated_at: String,
}

impl Revision {
    fn of(stored: &StoredTask) -> Revision {
        Revision {
            created_at: stored.created_at.clone(),
            revision: stored.revision,
            updated_at: stored.updated_at.clone(),
        }
    }
}

/// `GET /api/v1/tasks/{name}`: the task, its next 10 fire times and its last 20 runs.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct TaskDetail {
    /// The task (its `last_run` is the first of `runs`).
    #[serde(flatten)]
    pub task: Task,
    /// Its next fire times, RFC 3339 (none for a daemon).
    pub next_runs: Vec<String>,
    /// Its last runs, newest first.
    pub runs: Vec<Run>,
}

impl Serialize for TaskDetail {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Fields<'a> {
            #[serde(flatten)]
            task: &'a Task,
            next_runs: &'a [String],
            runs: &'a [Run],
        }
        sorted(
            &Fields { task: &self.task, next_runs: &self.next_runs, runs: &self.runs },
            serializer,
        )
    }
}

/// `GET /api/v1/tasks`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct TaskList {
    /// In file order, then the API's tasks by creation.
    pub tasks: Vec<Task>,
}

/// An instant with its offset, RFC 3339.
pub fn zoned(z: &jiff::Zoned) -> String {
    z.timestamp().display_with_offset(z.offset()).to_string()
}

/// The body of `POST /api/v1/tasks/{name}/pause` (optional).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct PauseRequest {
    /// Resume by itself at this instant (RFC 3339, or a local date and time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, schemars(extend("format" = "date-time")))]
    pub until: Option<String>,
}

/// The body of `POST /api/v1/tasks/{name}/resume` (optional).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ResumeRequest {
    /// What to do with the slots passed while paused [default: skip].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missed: Option<Missed>,
}

/// The slots a paused task passed: skipped, or the latest of them run once, now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum Missed {
    /// Skip them.
    Skip,
    /// Run the latest of them, now.
    Once,
}

/// The body of `POST /api/v1/tasks` (with `name`), `PUT` and `PATCH /api/v1/tasks/{name}`: task
/// file fields as JSON. Kept as an object, not a [`Definition`]: the task file's own parser
/// checks it, and names every field it does not know.
pub type TaskFields = serde_json::Map<String, Value>;
