//! The agent: runs the tasks of a task file meant for this machine, on their schedules.
//!
//! `run` loads the file, keeps the tasks this host should run (by `hosts`, `tags` and
//! `enabled`), and gives each cron task a `cronfleet-scheduler` entry whose job starts a child
//! process (`jobs.rs`, `runner`); daemon tasks get a supervisor that keeps them running
//! (`daemon.rs`). Every run is recorded in the store; slots missed while the agent was down
//! are caught up at start (`catchup.rs`).
//!
//! A reload (signal, or the file saved: `watch.rs`) parses and validates first: an invalid file
//! is logged and the old tasks keep running; a valid one is applied as a [`diff`], so unchanged
//! tasks keep their timers and running processes, changed ones continue from their last slot,
//! and removed ones stop being scheduled while their running processes finish.

mod background;
mod catchup;
mod daemon;
pub mod dynamic;
pub mod fleet;
mod host;
pub mod jobs;
pub mod plan;
mod watch;

use std::{
    collections::{BTreeMap, HashMap},
    future::Future,
    path::PathBuf,
    sync::Arc,
    time::Duration,
};

use cronfleet_scheduler::{EntryId, Scheduler, Timing};
use jiff::{tz::TimeZone, Timestamp};
use tokio::sync::mpsc;

pub use background::Background;
pub use fleet::{ahead, node_status, HEARTBEAT, LOST_AFTER};
pub use host::Host;
pub use jobs::{InFlight, Services};
pub use plan::Plan;

use self::dynamic::ApiTask;
use crate::{
    config::{self, Kind, Task, TaskSet},
    store::{Outcome, RunRecord, Store, StoredTask},
};

/// How the agent runs.
#[derive(Clone, Debug)]
pub struct Options {
    /// The task file.
    pub config: PathBuf,
    /// This machine's identity.
    pub host: Host,
    /// How long runs get to finish when the agent stops, before their groups are killed.
    pub shutdown_grace: Duration,
    /// Reload when the task file changes on disk.
    pub watch: bool,
    /// Where the run history lives.
    pub state_dir: PathBuf,
    /// Runs kept per task.
    pub keep_runs: u32,
    /// Runs older than this are deleted.
    pub keep_for: Duration,
    /// The store: `None` for SQLite in the state directory, else a `postgres://` URL.
    pub store: Option<String>,
    /// The task file is the fleet's, in the store (`cronfleet apply --store`), not `config`
    /// (which is then only its name in messages, [`STORE_FILE`]).
    pub tasks_from_store: bool,
}

/// How the fleet's task file in the store is named in messages.
pub const STORE_FILE: &str = "store:tasks.toml";

/// Reads and validates the agent's task file: from disk, or the fleet's from the store (no
/// file applied yet: no tasks).
async fn read_task_file(
    options: &Options,
    store: &Store,
) -> Result<config::TaskSet, config::ConfigErrors> {
    if !options.tasks_from_store {
        return config::load(&options.config);
    }
    match store.task_file().await {
        Ok(Some((text, _))) => config::parse(&options.config, &text),
        Ok(None) => config::parse(&options.config, ""),
        Err(e) => Err(config::ConfigErrors(vec![config::ConfigError {
            file: options.config.display().to_string(),
            line: 0,
            column: 0,
            task: None,
            field: None,
            message: format!("cannot read the task file from the database: {e}"),
        }])),
    }
}

/// How often old runs are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// How long the background loops get to end once the scheduler and daemons have stopped
/// (each ends at its next `.await`).
const BACKGROUND_GRACE: Duration = Duration::from_secs(5);

/// Retention with a store of its own: old runs pruned at start and then hourly (the agent
/// sleeps until then).
async fn prune(store: Store, keep_runs: u32, keep_for: Duration) {
    loop {
        let cutoff = crate::clock::now().as_second() - keep_for.as_secs() as i64;
        match store.prune(keep_runs, cutoff).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "old runs pruned"),
            Err(e) => tracing::error!(error = %e, "cannot prune old runs"),
        }
        tokio::time::sleep(PRUNE_EVERY).await;
    }
}

/// Why the agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The task file is invalid.
    #[error("{0}")]
    Config(#[from] config::ConfigErrors),
    /// The state database cannot be used.
    #[error("{0}")]
    Store(#[from] crate::store::StoreError),
}

/// The default state directory: `/var/lib/cronfleet` for root, else
/// `$XDG_STATE_HOME/cronfleet` (or `~/.local/state/cronfleet`).
pub fn default_state_dir() -> PathBuf {
    if nix::unistd::geteuid().is_root() {
        return PathBuf::from("/var/lib/cronfleet");
    }
    let base = std::env::var_os("XDG_STATE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("cronfleet")
}

/// How long a reload waits for a burst of file changes (an editor saving) to settle.
const SETTLE: Duration = Duration::from_millis(200);

/// The tasks being run, by name, and what was asked of them by hand.
struct Running {
    scheduler: Scheduler,
    services: Arc<Services>,
    /// Every task of the file, in file order (also those for other nodes).
    file: Vec<Task>,
    /// The file's alert channels.
    notifiers: Vec<config::Notifier>,
    /// Tasks created through the API, by name.
    api: BTreeMap<String, ApiTask>,
    tasks: HashMap<String, (Task, EntryId)>,
    /// Daemon tasks; no supervisor while paused.
    daemons: HashMap<String, (Task, Option<daemon::Supervisor>)>,
    /// Tasks paused by hand, and when each resumes by itself.
    paused: HashMap<String, Option<Timestamp>>,
}

/// What a reload changes in one kind of task (cron or daemon).
#[derive(Debug, Default)]
struct Diff {
    /// Running tasks to stop: changed or removed.
    stale: Vec<String>,
    /// Tasks to start: new or changed.
    fresh: Vec<Task>,
    added: usize,
    changed: usize,
    removed: usize,
}

/// What a reload did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reloaded {
    /// Tasks new to this node.
    pub added: usize,
    /// Tasks whose definition changed.
    pub changed: usize,
    /// Tasks this node no longer runs.
    pub removed: usize,
}

/// Compares the running tasks with the wanted ones, by name and definition.
fn diff<T>(running: &HashMap<String, (Task, T)>, wanted: Vec<Task>) -> Diff {
    let mut d = Diff::default();
    let wanted_names: std::collections::HashSet<&str> =
        wanted.iter().map(|t| t.name.as_str()).collect();
    for name in running.keys() {
        if !wanted_names.contains(name.as_str()) {
            d.stale.push(name.clone());
            d.removed += 1;
        }
    }
    for task in wanted {
        match running.get(&task.name) {
            Some((old, _)) if same_definition(old, &task) => {}
            Some(_) => {
                d.stale.push(task.name.clone());
                d.changed += 1;
                d.fresh.push(task);
            }
            None => {
                d.added += 1;
                d.fresh.push(task);
            }
        }
    }
    d
}

impl Running {
    /// Makes the running tasks those of `set` meant for `host`, touching only what changed.
    async fn apply(&mut self, host: &Host) -> Reloaded {
        let all: Vec<Task> =
            self.file.iter().cloned().chain(self.api.values().map(|a| a.task.clone())).collect();
        self.services.alerts.configure(&self.notifiers, &all);
        let (daemons, crons): (Vec<Task>, Vec<Task>) = all
            .into_iter()
            .filter(|t| t.enabled && host.runs(t))
            .partition(|t| matches!(t.kind, Kind::Daemon));
        let crons = diff(&self.tasks, crons);
        let daemons = diff(&self.daemons, daemons);

        // The last slot of each stopped cron task: a changed one continues from there, so a
        // slot that comes due while the file is reloaded is not lost.
        let mut last_slot: HashMap<String, jiff::Zoned> = HashMap::new();
        for name in &crons.stale {
            if let Some((_, id)) = self.tasks.remove(name) {
                if let Some(prev) = self.scheduler.entry(id).and_then(|e| e.prev) {
                    last_slot.insert(name.clone(), prev);
                }
                let _ = self.scheduler.remove(id);
                tracing::info!(task = %name, "task unscheduled; a run in progress finishes");
            }
            // Its next slot, if claimed ahead under the old definition, goes back to the fleet.
            if let Some(member) = &self.services.fleet {
                member.ahead.give_back(member, Some(name)).await;
            }
        }
        for task in crons.fresh {
            let Kind::Cron(schedule) = &task.kind else { continue };
            let id = self.scheduler.add_with(
                Timing::Schedule(schedule.clone()),
                jobs::job(&task, self.services.clone()),
                jobs::options(&task, &self.services),
            );
            if self.paused.contains_key(&task.name) {
                let _ = self.scheduler.pause(id);
            } else if let Some(next) =
                last_slot.get(&task.name).and_then(|prev| schedule.next_after(prev))
            {
                let _ = self.scheduler.set_next(id, next);
            }
            self.claim_first_ahead(&task, id);
            let next = self.scheduler.entry(id).and_then(|e| e.next);
            let next = next.map_or_else(|| "never".to_owned(), |n| n.to_string());
            tracing::info!(task = %task.name, schedule = %schedule, %next, "task scheduled");
            self.tasks.insert(task.name.clone(), (task, id));
        }

        for name in &daemons.stale {
            if let Some((_, Some(supervisor))) = self.daemons.remove(name) {
                supervisor.stop().await;
                tracing::info!(task = %name, "daemon task stopped");
            }
        }
        for task in daemons.fresh {
            let supervisor = (!self.paused.contains_key(&task.name))
                .then(|| daemon::Supervisor::start(&task, self.services.clone()));
            self.daemons.insert(task.name.clone(), (task, supervisor));
        }

        Reloaded {
            added: crons.added + daemons.added,
            changed: crons.changed + daemons.changed,
            removed: crons.removed + daemons.removed,
        }
    }

    fn notifier_names(&self) -> Vec<String> {
        self.notifiers.iter().map(|n| n.name.clone()).collect()
    }

    /// Whether a task file fits the API tasks: refused when a task name is also an API task's,
    /// or when an API task names a notifier the file does not have.
    fn check_file(
        &self,
        set: &TaskSet,
        path: &std::path::Path,
    ) -> Result<(), config::ConfigErrors> {
        let mut errors = Vec::new();
        for task in set.tasks.iter().filter(|t| self.api.contains_key(&t.name)) {
            errors.push(config::ConfigError {
                file: path.display().to_string(),
                line: task.line,
                column: 1,
                task: Some(task.name.clone()),
                field: Some("name".into()),
                message: "a task created through the API has this name: rename one of them".into(),
            });
        }
        let names: Vec<String> = set.notifiers.iter().map(|n| n.name.clone()).collect();
        for api in self.api.values() {
            for missing in api.task.notify.iter().filter(|n| !names.contains(n)) {
                errors.push(config::ConfigError {
                    file: path.display().to_string(),
                    line: 0,
                    column: 0,
                    task: Some(api.task.name.clone()),
                    field: Some("notify".into()),
                    message: format!(
                        "the API task notifies {missing:?}, which this file no longer has"
                    ),
                });
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(config::ConfigErrors(errors))
        }
    }

    /// Takes a (re)loaded task file, if it passes [`Running::check_file`].
    fn take_file(
        &mut self,
        set: TaskSet,
        path: &std::path::Path,
    ) -> Result<(), config::ConfigErrors> {
        self.check_file(&set, path)?;
        self.file = set.tasks;
        self.notifiers = set.notifiers;
        Ok(())
    }

    /// The file's task of this name, if any.
    fn in_file(&self, name: &str) -> bool {
        self.file.iter().any(|t| t.name == name)
    }

    /// Stops every daemon.
    async fn stop_daemons(&mut self) {
        for (_, (_, supervisor)) in self.daemons.drain() {
            if let Some(supervisor) = supervisor {
                supervisor.stop().await;
            }
        }
    }

    /// Pauses a task here (until `until`): no more slots, its daemon stopped.
    async fn hold(&mut self, name: &str, until: Option<Timestamp>) {
        self.paused.insert(name.to_owned(), until);
        if let Some((_, id)) = self.tasks.get(name) {
            let _ = self.scheduler.pause(*id);
            if let Some(member) = &self.services.fleet {
                member.ahead.give_back(member, Some(name)).await;
            }
        }
        if let Some((_, supervisor)) = self.daemons.get_mut(name) {
            if let Some(supervisor) = supervisor.take() {
                supervisor.stop().await;
            }
        }
    }

    /// Asks for the next slot of a newly scheduled (or resumed) `run_on` task in a fleet to be
    /// claimed ahead, as the run of each slot does for the one after it: else every node
    /// would claim that first slot at once, at the slot.
    fn claim_first_ahead(&self, task: &Task, id: EntryId) {
        let Some(seats) = task.run_on else { return };
        let Some(member) = jobs::in_fleet(task, &self.services) else { return };
        if self.paused.contains_key(&task.name) {
            return;
        }
        if let Some(first) = self.scheduler.entry(id).and_then(|e| e.next) {
            member.ahead.ask(member, &Arc::new(task.clone()), seats, &first);
        }
    }

    /// Lets a paused task run here again (a daemon is started); false when it was not paused.
    fn release(&mut self, name: &str) -> bool {
        if self.paused.remove(name).is_none() {
            return false;
        }
        if let Some((task, id)) = self.tasks.get(name) {
            let _ = self.scheduler.resume(*id);
            self.claim_first_ahead(task, *id);
        }
        let services = self.services.clone();
        if let Some((task, supervisor @ None)) = self.daemons.get_mut(name) {
            *supervisor = Some(daemon::Supervisor::start(task, services));
        }
        true
    }

    /// A task of this node by name, or why not.
    fn here(&self, name: &str) -> Result<(), ControlError> {
        if self.tasks.contains_key(name) || self.daemons.contains_key(name) {
            Ok(())
        } else if self.file.iter().any(|t| t.name == name) || self.api.contains_key(name) {
            Err(ControlError::NotHere(name.to_owned()))
        } else {
            Err(ControlError::NotFound(name.to_owned()))
        }
    }
}

/// Why `apply` did nothing.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The text is not a valid task file (or clashes with API tasks).
    #[error("{0}")]
    Invalid(#[from] config::ConfigErrors),
    /// The file could not be written.
    #[error("{0}")]
    Write(String),
}

/// Why a request about a task or run was refused.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// No such task in the task file.
    #[error("no task named {0:?}")]
    NotFound(String),
    /// The task is for other nodes (or disabled).
    #[error("task {0:?} does not run on this node (hosts, tags or enabled = false)")]
    NotHere(String),
    /// No such run in flight.
    #[error("no run {0:?} is in flight")]
    NoSuchRun(String),
    /// The request does not fit the task.
    #[error("{0}")]
    Conflict(String),
    /// A task definition is invalid.
    #[error("invalid task: {}", .0.iter().map(|e| e.message.as_str()).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<config::ConfigError>),
    /// The task's revision is not the one the change was based on.
    #[error(
        "task {name:?} is at revision {current}, not {expected}: read it again and redo the change"
    )]
    Revision {
        /// The task.
        name: String,
        /// Its revision.
        current: i64,
        /// The one the request named.
        expected: i64,
    },
    /// The task belongs to the task file.
    #[error("task {0:?} is defined in the task file: change it there (the API can only run, pause and resume it)")]
    FileOwned(String),
    /// The state database failed.
    #[error("{0}")]
    Store(#[from] crate::store::StoreError),
}

/// A task as the API and dashboard show it.
#[derive(Clone, Debug)]
pub struct TaskView {
    /// Its definition.
    pub task: Task,
    /// This node runs it (it matches `hosts` and `tags`, and is enabled).
    pub here: bool,
    /// Paused by hand: `Some(until)`, where `until` is when it resumes by itself.
    pub paused: Option<Option<Timestamp>>,
    /// When it fires next (cron tasks of this node, not paused).
    pub next: Option<jiff::Zoned>,
    /// Its runs in flight.
    pub running: usize,
    /// For a task created through the API: its revision and times.
    pub stored: Option<StoredTask>,
}

/// A running agent, shared by its main loop, its API and its timers.
pub struct Agent {
    /// How it was started.
    pub options: Options,
    /// When it started.
    pub started: Timestamp,
    /// Its scheduler.
    pub scheduler: Scheduler,
    /// Store, metrics and runs in flight.
    pub services: Arc<Services>,
    running: tokio::sync::Mutex<Running>,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent").field("node", &self.options.host.name).finish_non_exhaustive()
    }
}

impl Agent {
    /// Every task of the task file, in file order, with its state on this node.
    pub async fn tasks(&self) -> Vec<TaskView> {
        let running = self.running.lock().await;
        let in_flight = self.services.running_by_task();
        let api = running.api.values().map(|a| &a.task);
        running
            .file
            .iter()
            .chain(api)
            .map(|task| {
                let entry = running.tasks.get(&task.name).map(|(_, id)| *id);
                TaskView {
                    task: task.clone(),
                    here: entry.is_some() || running.daemons.contains_key(&task.name),
                    paused: running.paused.get(&task.name).copied(),
                    next: entry.and_then(|id| self.scheduler.entry(id)).and_then(|e| e.next),
                    running: in_flight.get(&task.name).copied().unwrap_or(0),
                    stored: running.api.get(&task.name).map(|a| a.stored.clone()),
                }
            })
            .collect()
    }

    /// One task, as in [`Agent::tasks`].
    pub async fn task(&self, name: &str) -> Option<TaskView> {
        self.tasks().await.into_iter().find(|t| t.task.name == name)
    }

    /// Reloads the task file now. An invalid file changes nothing.
    ///
    /// # Errors
    /// The file's errors.
    pub async fn reload(self: &Arc<Self>) -> Result<Reloaded, config::ConfigErrors> {
        crate::sd_notify::reloading();
        let result = self.reload_file().await;
        crate::sd_notify::notify("READY=1");
        result
    }

    async fn reload_file(self: &Arc<Self>) -> Result<Reloaded, config::ConfigErrors> {
        let read = read_task_file(&self.options, &self.services.store).await;
        let mut running = self.running.lock().await;
        if self.services.fleet.is_some() {
            // Other agents may have changed API tasks and pauses.
            let names: Vec<String> = running.notifiers.iter().map(|n| n.name.clone()).collect();
            match load_api_tasks(&self.services.store, &names).await {
                Ok(api) => running.api = api,
                Err(e) => tracing::warn!(error = %e, "cannot read the API tasks; keeping them"),
            }
        }
        let result = match read.and_then(|set| running.take_file(set, &self.options.config)) {
            Ok(()) => {
                let done = running.apply(&self.options.host).await;
                if self.services.fleet.is_some() {
                    self.sync_pauses(&mut running).await;
                }
                tracing::info!(
                    added = done.added,
                    changed = done.changed,
                    removed = done.removed,
                    tasks = running.tasks.len() + running.daemons.len(),
                    "reloaded"
                );
                Ok(done)
            }
            Err(errors) => {
                for e in &errors.0 {
                    tracing::error!("{e}");
                }
                tracing::error!(
                    errors = errors.0.len(),
                    "reload failed; keeping the previous tasks"
                );
                if self.services.fleet.is_some() {
                    // The file's tasks stay as they were; API tasks and pauses changed by
                    // other agents still apply.
                    running.apply(&self.options.host).await;
                    self.sync_pauses(&mut running).await;
                }
                Err(errors)
            }
        };
        self.services.metrics.reloaded(result.is_ok());
        result
    }

    /// Takes the pauses in the store (set through another agent) as this node's own.
    async fn sync_pauses(self: &Arc<Self>, running: &mut Running) {
        let stored: HashMap<String, Option<Timestamp>> = match self.services.store.paused().await {
            Ok(rows) => rows
                .into_iter()
                .map(|(task, until)| (task, until.and_then(|u| u.parse::<Timestamp>().ok())))
                .collect(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the pauses");
                return;
            }
        };
        let resumed: Vec<String> =
            running.paused.keys().filter(|t| !stored.contains_key(*t)).cloned().collect();
        for name in resumed {
            running.release(&name);
            tracing::info!(task = %name, "task resumed (by another agent)");
        }
        for (name, until) in stored {
            if running.paused.get(&name) == Some(&until) {
                continue;
            }
            running.hold(&name, until).await;
            tracing::info!(task = %name, until = ?until, "task paused (by another agent)");
            if let Some(until) = until {
                self.resume_at(&name, until);
            }
        }
    }

    /// Starts a run of a cron task now, whatever its schedule (also when paused), through its
    /// concurrency policy; returns the run's id.
    ///
    /// # Errors
    /// Unknown task, a task of other nodes, or a daemon task.
    pub async fn run_now(&self, name: &str) -> Result<String, ControlError> {
        let running = self.running.lock().await;
        running.here(name)?;
        let Some((_, id)) = running.tasks.get(name) else {
            return Err(ControlError::Conflict(format!(
                "{name:?} is a daemon task: it runs all the time"
            )));
        };
        // Milliseconds make the slot (and the run id) of a run by hand its own.
        let now = self.scheduler.now();
        let slot = now.round(jiff::Unit::Millisecond).unwrap_or(now);
        self.scheduler
            .run_for(*id, slot.clone())
            .map_err(|e| ControlError::Conflict(e.to_string()))?;
        tracing::info!(task = name, slot = %slot, "run started by hand");
        let node = self.services.fleet.is_some().then_some(self.services.node.as_str());
        Ok(crate::store::run_id(name, &slot, 1, node))
    }

    /// Pauses a task: no more slots (a daemon is stopped) until resumed, or until `until`.
    /// Runs in flight go on. Kept across reloads and restarts.
    ///
    /// # Errors
    /// Unknown task, a task of other nodes, or the state database failing.
    pub async fn pause(
        self: &Arc<Self>,
        name: &str,
        until: Option<Timestamp>,
    ) -> Result<(), ControlError> {
        let mut running = self.running.lock().await;
        running.here(name)?;
        let until_text = until.map(|u| u.to_string());
        self.services.store.set_paused(name, Some(until_text.as_deref())).await?;
        running.hold(name, until).await;
        tracing::info!(task = name, until = ?until_text, "task paused");
        if let Some(until) = until {
            self.resume_at(name, until);
        }
        Ok(())
    }

    /// Resumes a paused task from its next slot after now: slots passed while paused are
    /// not run. Resuming a task that is not paused does nothing.
    ///
    /// # Errors
    /// Unknown task, a task of other nodes, or the state database failing.
    pub async fn resume(&self, name: &str) -> Result<(), ControlError> {
        self.resume_with(name, false).await
    }

    /// [`Agent::resume`]; with `run_missed`, the latest slot that passed while it was paused
    /// (later than its latest recorded run) is run now, once.
    ///
    /// # Errors
    /// Unknown task, a task of other nodes, or the state database failing.
    pub async fn resume_with(&self, name: &str, run_missed: bool) -> Result<(), ControlError> {
        let mut running = self.running.lock().await;
        running.here(name)?;
        let was_paused = running.paused.contains_key(name);
        Self::resume_locked(&mut running, name).await?;
        let Some((task, id)) = running.tasks.get(name).filter(|_| run_missed && was_paused) else {
            return Ok(());
        };
        let Kind::Cron(schedule) = &task.kind else { return Ok(()) };
        let now = crate::clock::zoned_now();
        let Some(latest) = schedule.prev_before(&now) else { return Ok(()) };
        let own = (self.services.fleet.is_some() && task.run_on.is_none())
            .then_some(self.services.node.as_str());
        let last = self.services.store.last_slot(name, own).await?;
        if last.is_none_or(|last| latest.timestamp().as_second() > last) {
            tracing::info!(task = name, slot = %latest, "running the latest slot missed while paused");
            let _ = self.scheduler.run_for(*id, latest);
        }
        Ok(())
    }

    async fn resume_locked(running: &mut Running, name: &str) -> Result<(), ControlError> {
        if !running.paused.contains_key(name) {
            return Ok(());
        }
        running.services.store.set_paused(name, None).await?;
        running.release(name);
        tracing::info!(task = name, "task resumed");
        Ok(())
    }

    /// Resumes `name` at `until`, if it is then still paused until that instant.
    fn resume_at(self: &Arc<Self>, name: &str, until: Timestamp) {
        let agent = Arc::downgrade(self);
        let name = name.to_owned();
        self.services.background.spawn(async move {
            let wait = crate::clock::now().duration_until(until).unsigned_abs();
            if until > crate::clock::now() {
                tokio::time::sleep(wait).await;
            }
            let Some(agent) = agent.upgrade() else { return };
            let mut running = agent.running.lock().await;
            if running.paused.get(&name) == Some(&Some(until)) {
                if let Err(e) = Self::resume_locked(&mut running, &name).await {
                    tracing::error!(task = %name, error = %e, "cannot resume the task");
                }
            }
        });
    }

    /// What a reload of a task file with `text` would do (to the file's tasks, on every node).
    ///
    /// # Errors
    /// The text's errors, as a reload would report them (`label` names it in messages).
    pub async fn plan(&self, text: &str, label: &str) -> Result<Plan, config::ConfigErrors> {
        let set = config::parse(std::path::Path::new(label), text)?;
        let running = self.running.lock().await;
        running.check_file(&set, std::path::Path::new(label))?;
        let in_flight = self.services.running_by_task();
        Ok(plan::compare(&running.file, &set.tasks, &in_flight))
    }

    /// Writes `text` as the agent's task file (atomically) and reloads it; refused, with
    /// nothing written, when the text is invalid.
    ///
    /// # Errors
    /// The text's errors, or why the file could not be written.
    pub async fn apply(
        self: &Arc<Self>,
        text: &str,
        label: &str,
    ) -> Result<(Plan, Reloaded), ApplyError> {
        let plan = self.plan(text, label).await?;
        if self.options.tasks_from_store {
            // The fleet's file: every agent of the store reloads it (told by NOTIFY).
            let now = crate::clock::now().to_string();
            let revision = self
                .services
                .store
                .put_task_file(text, &now)
                .await
                .map_err(|e| ApplyError::Write(format!("cannot store the task file: {e}")))?;
            tracing::info!(revision, "the fleet's task file stored through the API");
            let done = self.reload().await?;
            return Ok((plan, done));
        }
        let path = std::fs::canonicalize(&self.options.config)
            .unwrap_or_else(|_| self.options.config.clone());
        let tmp = path.with_extension("cronfleet-apply.tmp");
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| ApplyError::Write(format!("cannot write {}: {e}", path.display())))?;
        tracing::info!(file = %path.display(), "task file written through the API");
        let done = self.reload().await?;
        Ok((plan, done))
    }

    /// Creates a task from its JSON definition (the task file's fields), stored before it is
    /// scheduled.
    ///
    /// # Errors
    /// An invalid definition, a name already used (by the file or the API), the store failing.
    pub async fn create_task(
        &self,
        name: &str,
        mut definition: serde_json::Value,
    ) -> Result<TaskView, ControlError> {
        let mut running = self.running.lock().await;
        if running.in_file(name) {
            return Err(ControlError::Conflict(format!(
                "task {name:?} is defined in the task file: pick another name"
            )));
        }
        if running.api.contains_key(name) {
            return Err(ControlError::Conflict(format!("task {name:?} already exists")));
        }
        let now = crate::clock::now();
        let task = dynamic::build(name, &mut definition, now, &running.notifier_names())
            .map_err(ControlError::Invalid)?;
        let stored = StoredTask {
            name: name.to_owned(),
            definition,
            revision: 1,
            created_at: now.to_string(),
            updated_at: now.to_string(),
        };
        if !self.services.store.put_api_task(&stored, None).await? {
            return Err(ControlError::Conflict(format!("task {name:?} already exists")));
        }
        tracing::info!(task = name, "task created through the API");
        running.api.insert(name.to_owned(), ApiTask { task, stored });
        running.apply(&self.options.host).await;
        drop(running);
        self.task(name).await.ok_or_else(|| ControlError::NotFound(name.to_owned()))
    }

    /// Changes a task created through the API: `change` replaces its definition, or with
    /// `patch` is merged into it (JSON merge patch). With `if_match`, only if the task is still
    /// at that revision. The anchor stays unless the change gives one.
    ///
    /// # Errors
    /// Unknown task, a file task, a stale revision, an invalid result, the store failing.
    pub async fn change_task(
        &self,
        name: &str,
        change: serde_json::Value,
        patch: bool,
        if_match: Option<i64>,
    ) -> Result<TaskView, ControlError> {
        let mut running = self.running.lock().await;
        if running.in_file(name) {
            return Err(ControlError::FileOwned(name.to_owned()));
        }
        let Some(old) = running.api.get(name).map(|a| a.stored.clone()) else {
            return Err(ControlError::NotFound(name.to_owned()));
        };
        if let Some(expected) = if_match.filter(|e| *e != old.revision) {
            return Err(ControlError::Revision {
                name: name.to_owned(),
                current: old.revision,
                expected,
            });
        }
        let mut definition = if patch { old.definition.clone() } else { serde_json::json!({}) };
        dynamic::merge_patch(&mut definition, &change);
        dynamic::carry_anchor(&old.definition, &mut definition, &change);
        let created: Timestamp = old.created_at.parse().unwrap_or_else(|_| crate::clock::now());
        let task = dynamic::build(name, &mut definition, created, &running.notifier_names())
            .map_err(ControlError::Invalid)?;
        let stored = StoredTask {
            definition,
            revision: old.revision + 1,
            updated_at: crate::clock::now().to_string(),
            ..old.clone()
        };
        if !self.services.store.put_api_task(&stored, Some(old.revision)).await? {
            return Err(ControlError::Conflict(format!("task {name:?} changed meanwhile")));
        }
        tracing::info!(task = name, revision = stored.revision, "task changed through the API");
        running.api.insert(name.to_owned(), ApiTask { task, stored });
        running.apply(&self.options.host).await;
        drop(running);
        self.task(name).await.ok_or_else(|| ControlError::NotFound(name.to_owned()))
    }

    /// Deletes a task created through the API (with `if_match`, only at that revision). Its
    /// runs in flight finish.
    ///
    /// # Errors
    /// Unknown task, a file task, a stale revision, the store failing.
    pub async fn delete_task(&self, name: &str, if_match: Option<i64>) -> Result<(), ControlError> {
        let mut running = self.running.lock().await;
        if running.in_file(name) {
            return Err(ControlError::FileOwned(name.to_owned()));
        }
        let Some(current) = running.api.get(name).map(|a| a.stored.revision) else {
            return Err(ControlError::NotFound(name.to_owned()));
        };
        if let Some(expected) = if_match.filter(|e| *e != current) {
            return Err(ControlError::Revision { name: name.to_owned(), current, expected });
        }
        self.services.store.delete_api_task(name, if_match).await?;
        running.api.remove(name);
        running.paused.remove(name);
        running.apply(&self.options.host).await;
        tracing::info!(task = name, "task deleted through the API");
        Ok(())
    }

    /// Kills a run in flight: SIGTERM to its process group, SIGKILL after the grace.
    ///
    /// # Errors
    /// No such run in flight.
    pub fn kill(&self, run_id: &str) -> Result<(), ControlError> {
        let run =
            self.services.find(run_id).ok_or_else(|| ControlError::NoSuchRun(run_id.to_owned()))?;
        tracing::info!(task = %run.task, run_id, "run killed by hand");
        run.kill.cancel();
        Ok(())
    }
}

/// What `cronfleet status` needs to know about a running agent, in `STATE_DIR/agent.json`.
fn write_identity(options: &Options) {
    let config = std::fs::canonicalize(&options.config).unwrap_or_else(|_| options.config.clone());
    let identity = serde_json::json!({
        "pid": std::process::id(),
        "config": config,
        "node": options.host.name,
        "tags": options.host.tags,
        "started_at": crate::clock::now().to_string(),
        "version": env!("CARGO_PKG_VERSION"),
        // Where its tasks and history are, password hidden.
        "store": options.store.as_deref().map(crate::store::redact),
    });
    if let Err(e) = std::fs::write(options.state_dir.join("agent.json"), identity.to_string()) {
        tracing::warn!(error = %e, "cannot write agent.json in the state directory");
    }
}

/// When the agent of `dir` keeps its history in a shared database: why the state directory
/// alone cannot answer (for `status`, `runs` and `logs` while that agent is stopped).
pub fn shared_store_hint(dir: &std::path::Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join("agent.json")).ok()?;
    let identity: serde_json::Value = serde_json::from_str(&text).ok()?;
    let store = identity["store"].as_str()?;
    Some(format!(
        "the agent of {} keeps its tasks and history in {store}, and is not running: ask \
         another agent of the fleet (--server URL --token-file FILE)",
        dir.display()
    ))
}

/// Records the slots the scheduler did not run (skipped by policy, missed while stalled).
fn record_skips(scheduler: &Scheduler, services: Arc<Services>) {
    let mut events = scheduler.subscribe();
    let scheduler = scheduler.clone();
    let background = services.background.clone();
    background.spawn(async move {
        loop {
            let event = match events.recv().await {
                Ok(e) => e,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(_) => return,
            };
            let (entry, slot, outcome, reason) = match event {
                cronfleet_scheduler::Event::Skipped { entry, slot, reason, .. } => {
                    (entry, slot, Outcome::Skipped, reason)
                }
                cronfleet_scheduler::Event::Missed { entry, first, last, .. } => {
                    let reason = format!(
                        "slots from {first} to {last} passed while the agent could not run them"
                    );
                    (entry, last, Outcome::Missed, reason)
                }
                _ => continue,
            };
            let Some(task) = scheduler.entry(entry).and_then(|e| e.name) else { continue };
            let member = services.fleet.as_ref();
            let slot_ts = slot.timestamp().as_second();
            if let Some(member) = member.filter(|m| outcome == Outcome::Skipped && m.unhand(&task, slot_ts)) {
                // A slot taken over from another node, skipped here after all: offered again.
                let _ = member.db.release_handoff(&task, slot_ts).await;
            }
            tracing::warn!(task = %task, slot = %slot, outcome = outcome.as_str(), reason = %reason, "slot not run");
            services.metrics.not_run(&task, outcome.as_str());
            let shared = services.fleet.is_some();
            let record = RunRecord::not_run(&task, &slot, outcome, reason, &services.node, shared);
            if let Err(e) = services.store.put(&record).await {
                tracing::error!(error = %e, "cannot record a slot not run");
            }
            if outcome == Outcome::Missed {
                services.alerts.missed(&record);
            }
        }
    });
}

/// Waits for a burst of reload requests to end.
async fn settle(reload: &mut mpsc::Receiver<()>) {
    tokio::time::sleep(SETTLE).await;
    while reload.try_recv().is_ok() {}
}

/// Whether two tasks mean the same (where they sit in the file does not count).
fn same_definition(a: &Task, b: &Task) -> bool {
    Task { line: 0, ..a.clone() } == Task { line: 0, ..b.clone() }
}

impl Agent {
    /// Reads the store's nodes into the cache claims use.
    async fn refresh_nodes(&self) {
        match self.services.store.nodes().await {
            Ok(nodes) => {
                if let Some(member) = &self.services.fleet {
                    member.set_nodes(&nodes);
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the nodes"),
        }
    }

    /// The nodes registered in the store. With a store of its own (SQLite) this agent is the
    /// only node and makes no heartbeats (an idle agent wakes for nothing): its record is
    /// brought up to date when asked for.
    pub async fn nodes(&self) -> Result<Vec<crate::store::NodeRecord>, crate::store::StoreError> {
        let store = &self.services.store;
        if self.services.fleet.is_none() {
            let at = crate::clock::now().to_string();
            store.heartbeat(&self.options.host.name, &at, false).await?;
        }
        store.nodes().await
    }

    /// Registers this node in the store (with its API's URL). With a shared store it then says
    /// it is alive every [`HEARTBEAT`] until the agent stops, and takes the slots other nodes
    /// hand over; a store of its own needs neither.
    pub async fn register(self: &Arc<Self>, api: Option<String>) {
        let host = &self.options.host;
        let now = crate::clock::now().to_string();
        let record = crate::store::NodeRecord {
            name: host.name.clone(),
            addresses: host.addresses.iter().map(ToString::to_string).collect(),
            tags: host.tags.clone(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            api,
            started_at: self.started.to_string(),
            last_seen: now,
            stopped_at: None,
        };
        if let Err(e) = self.services.store.register_node(&record).await {
            tracing::error!(error = %e, "cannot register this node");
        }
        self.refresh_nodes().await;
        if let Some(fleet) = &self.services.fleet {
            fleet::start(self, fleet);
        }
    }
}

/// The API tasks in the store (an invalid one is logged and left out).
async fn load_api_tasks(
    store: &Store,
    notifiers: &[String],
) -> Result<BTreeMap<String, ApiTask>, crate::store::StoreError> {
    let mut api = BTreeMap::new();
    for stored in store.api_tasks().await? {
        let created = stored.created_at.parse().unwrap_or_else(|_| crate::clock::now());
        let mut definition = stored.definition.clone();
        match dynamic::build(&stored.name, &mut definition, created, notifiers) {
            Ok(task) => {
                api.insert(stored.name.clone(), ApiTask { task, stored });
            }
            Err(errors) => {
                for e in errors {
                    tracing::error!(task = %stored.name, field = ?e.field, "stored API task is invalid: {}", e.message);
                }
            }
        }
    }
    Ok(api)
}

/// Loads the task file, opens the store, schedules the tasks of this node and catches up on
/// slots missed while the agent was down; the scheduler is started.
///
/// # Errors
/// The task file's errors when it is invalid, or the store's.
pub async fn start(options: Options) -> Result<Arc<Agent>, StartError> {
    let set = match options.tasks_from_store {
        false => Some(config::load(&options.config)?),
        true => None,
    };
    std::fs::create_dir_all(&options.state_dir).map_err(|e| crate::store::StoreError::Sql {
        path: options.state_dir.display().to_string(),
        source: sqlx::Error::Io(e),
    })?;
    let store = match &options.store {
        Some(url) => {
            let spool = options.state_dir.join("spool");
            Store::connect(url).await?.with_spool(&spool, &options.host.name).await?
        }
        None => Store::open(&options.state_dir).await?,
    };
    let set = match set {
        Some(set) => set,
        None => read_task_file(&options, &store).await?,
    };
    let abandoned =
        store.abandon_running(&options.host.name, &crate::clock::now().to_string()).await?;
    if abandoned > 0 {
        tracing::warn!(
            runs = abandoned,
            "runs going when the agent last stopped are recorded as abandoned"
        );
    }
    let services = Arc::new(Services::new(store.clone(), &options.host.name));
    let scheduler =
        Scheduler::builder().time_zone(TimeZone::system()).clock(crate::clock::AgentClock).build();
    record_skips(&scheduler, services.clone());
    let mut paused = HashMap::new();
    for (task, until) in store.paused().await? {
        paused.insert(task, until.and_then(|u| u.parse::<Timestamp>().ok()));
    }
    let mut running = Running {
        scheduler: scheduler.clone(),
        services: services.clone(),
        file: Vec::new(),
        notifiers: Vec::new(),
        api: BTreeMap::new(),
        tasks: HashMap::new(),
        daemons: HashMap::new(),
        paused,
    };
    let names: Vec<String> = set.notifiers.iter().map(|n| n.name.clone()).collect();
    running.api = load_api_tasks(&store, &names).await?;
    running.take_file(set, &options.config)?;
    let added = running.apply(&options.host).await.added;
    catchup::catch_up(&scheduler, &services, &running.tasks, &running.paused).await;
    scheduler.start();
    write_identity(&options);
    tracing::info!(
        node = %options.host.name,
        addresses = ?options.host.addresses,
        config = %options.config.display(),
        tasks = added,
        "agent started"
    );
    let timed: Vec<(String, Timestamp)> =
        running.paused.iter().filter_map(|(n, u)| u.map(|u| (n.clone(), u))).collect();
    let agent = Arc::new(Agent {
        options,
        started: crate::clock::now(),
        scheduler,
        services,
        running: tokio::sync::Mutex::new(running),
    });
    for (name, until) in timed {
        agent.resume_at(&name, until);
    }
    if agent.services.fleet.is_none() {
        // A fleet's retention is its leader's chore (see `fleet::start`).
        agent.services.background.spawn(prune(
            store,
            agent.options.keep_runs,
            agent.options.keep_for,
        ));
    }
    Ok(agent)
}

/// Runs a started agent until `shutdown` resolves; a message on `reload` re-reads the task
/// file (a burst of them, once).
pub async fn serve(
    agent: Arc<Agent>,
    reload_tx: mpsc::Sender<()>,
    mut reload: mpsc::Receiver<()>,
    shutdown: impl Future<Output = ()>,
) {
    if let Some(fleet) = agent.services.fleet.as_ref().map(|m| m.db.clone()) {
        // Definitions and pauses changed by other agents (or `apply --store`): told by NOTIFY,
        // checked every heartbeat.
        let (changed, stop) = (reload_tx.clone(), agent.services.background.stopping());
        agent.services.background.spawn(async move {
            fleet.watch_changes(changed, HEARTBEAT, stop).await;
        });
    }
    let _watcher = if agent.options.watch && !agent.options.tasks_from_store {
        match watch::watch(&agent.options.config, reload_tx) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch the task file; reload with SIGHUP");
                None
            }
        }
    } else {
        None
    };
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            Some(()) = reload.recv() => {
                settle(&mut reload).await;
                let _ = agent.reload().await;
            }
        }
    }
    crate::sd_notify::notify("STOPPING=1");
    let at = crate::clock::now().to_string();
    let _ = agent.services.store.heartbeat(&agent.options.host.name, &at, true).await;
    // Slots claimed ahead that this node will not run go back to the fleet.
    if let Some(member) = &agent.services.fleet {
        member.ahead.give_back(member, None).await;
    }
    let grace = agent.options.shutdown_grace;
    tracing::info!(grace_s = grace.as_secs(), running = agent.scheduler.running(), "stopping");
    // Daemons never finish on their own: they are stopped at once, while scheduled runs get
    // the grace.
    let mut running = agent.running.lock().await;
    tokio::join!(agent.scheduler.shutdown(grace), running.stop_daemons());
    drop(running);
    // Then the loops (the heartbeat among them): none outlives the agent.
    if !agent.services.background.stop(BACKGROUND_GRACE).await {
        tracing::warn!("background work still going after {BACKGROUND_GRACE:?}; left behind");
    }
    // Said again now that no heartbeat can follow it: a clean stop is recorded as stopped.
    let at = crate::clock::now().to_string();
    let _ = agent.services.store.heartbeat(&agent.options.host.name, &at, true).await;
    tracing::info!("stopped");
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn tasks(text: &str) -> Vec<Task> {
        config::parse(Path::new("t.toml"), text).unwrap().tasks
    }

    const V1: &str = "[[task]]\nname = \"same\"\nschedule = \"@daily\"\ncommand = \"true\"\n\n\
                      [[task]]\nname = \"edited\"\nschedule = \"@daily\"\ncommand = \"v1\"\n\n\
                      [[task]]\nname = \"dropped\"\nschedule = \"@daily\"\ncommand = \"true\"\n";

    /// A reload that lands when a changed task's slot is due, before the timer has fired it:
    /// the new entry continues from the old one's last slot, so the due slot runs, once.
    #[tokio::test(flavor = "current_thread")]
    async fn a_slot_due_during_a_reload_is_not_lost() {
        use cronfleet_scheduler::{Event, TokioClock};
        let dir =
            std::env::temp_dir().join(format!("cronfleet-reload-race-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(&dir).await.unwrap();
        // Virtual time from here on (the runs' records may fail to be written: not looked at).
        tokio::time::pause();
        let start: jiff::Zoned = "2026-01-01T00:00:00+00:00[UTC]".parse().unwrap();
        let scheduler = Scheduler::builder()
            .time_zone(TimeZone::UTC)
            .clock(TokioClock::starting_at(start.timestamp()))
            .build();
        let mut events = scheduler.subscribe();
        let mut running = Running {
            scheduler: scheduler.clone(),
            services: Arc::new(Services::new(store, "n1")),
            file: Vec::new(),
            notifiers: Vec::new(),
            api: BTreeMap::new(),
            tasks: HashMap::new(),
            daemons: HashMap::new(),
            paused: HashMap::new(),
        };
        let host = Host { name: "n1".into(), addresses: Vec::new(), tags: Vec::new() };
        let v1 = "[[task]]\nname = \"t\"\nschedule = \"*/10 * * * * *\"\ncommand = \"true\"\n";
        running.file = tasks(v1);
        running.apply(&host).await;
        scheduler.start();
        tokio::time::sleep(std::time::Duration::from_millis(10_500)).await; // the 00:10 slot fires
                                                                            // 00:20 comes due; before the timer task gets to run, the task is changed.
        tokio::time::advance(std::time::Duration::from_millis(9_500)).await;
        running.file = tasks(&v1.replace("true", "echo changed"));
        running.apply(&host).await;
        let id = running.tasks["t"].1;
        assert_eq!(scheduler.entry(id).unwrap().next.unwrap().time().second(), 20);
        tokio::time::sleep(std::time::Duration::from_secs(15)).await;
        let mut slots = Vec::new();
        while let Ok(event) = events.try_recv() {
            if let Event::Started { slot, .. } = event {
                slots.push(slot.time().second());
            }
        }
        assert_eq!(slots, [10, 20, 30], "each slot once, none lost");
        scheduler.shutdown(std::time::Duration::from_secs(1)).await;
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn nodes_are_alive_stopped_or_lost() {
        let now: Timestamp = "2026-11-23T10:00:20Z".parse().unwrap();
        let node = |last_seen: &str, stopped: Option<&str>| crate::store::NodeRecord {
            name: "n".into(),
            addresses: Vec::new(),
            tags: Vec::new(),
            version: "0".into(),
            api: None,
            started_at: "2026-11-23T09:00:00Z".into(),
            last_seen: last_seen.into(),
            stopped_at: stopped.map(Into::into),
        };
        assert_eq!(node_status(&node("2026-11-23T10:00:10Z", None), now), "alive");
        assert_eq!(node_status(&node("2026-11-23T10:00:04Z", None), now), "lost");
        let stopped = node("2026-11-23T10:00:19Z", Some("2026-11-23T10:00:19Z"));
        assert_eq!(node_status(&stopped, now), "stopped");
    }

    #[test]
    fn diff_by_name_and_definition() {
        let running: HashMap<String, (Task, ())> =
            tasks(V1).into_iter().map(|t| (t.name.clone(), (t, ()))).collect();
        // `same` moved down a line (its position does not count), `edited` changed, `dropped`
        // removed, `new` added.
        let v2 = "\n[[task]]\nname = \"edited\"\nschedule = \"@daily\"\ncommand = \"v2\"\n\n\
                  [[task]]\nname = \"same\"\nschedule = \"@daily\"\ncommand = \"true\"\n\n\
                  [[task]]\nname = \"new\"\nschedule = \"@hourly\"\ncommand = \"true\"\n";
        let d = diff(&running, tasks(v2));
        assert_eq!((d.added, d.changed, d.removed), (1, 1, 1));
        let mut stale = d.stale.clone();
        stale.sort();
        assert_eq!(stale, ["dropped", "edited"]);
        let fresh: Vec<&str> = d.fresh.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(fresh, ["edited", "new"]);
        // Nothing changed: nothing to do.
        let d = diff(&running, tasks(V1));
        assert!(d.stale.is_empty() && d.fresh.is_empty());
    }
}
