//! The agent: runs the tasks of a task file meant for this machine, on their schedules.
//!
//! [`start`] loads the file, keeps the tasks this host should run (by `hosts`, `tags` and
//! `enabled`), and gives each cron task a `cronfleet-scheduler` entry whose job starts a child
//! process (`jobs.rs`, `runner`); daemon tasks get a supervisor that keeps them running
//! (`daemon.rs`). Every run is recorded in the store; slots missed while the agent was down
//! are caught up at start (`catchup.rs`). [`serve`] runs it until shutdown.
//!
//! A reload (signal, or the file saved: `watch.rs`) parses and validates first: an invalid file
//! is logged and the old tasks keep running; a valid one is applied as a difference
//! (`running.rs`), so unchanged tasks keep their timers and running processes, changed ones
//! continue from their last slot, and removed ones stop being scheduled while their running
//! processes finish.
//!
//! # Layout
//! - `options.rs`: how the agent is started; `running.rs`: the tasks it runs and a reload's
//!   difference; `control.rs`: what is asked of it by hand (run, pause, resume, tasks through
//!   the API, apply, kill); `jobs.rs`: a task as a scheduler entry and its run;
//!   `background.rs`: the one owner of every background loop;
//! - [`fleet`]: only with a shared store, beside all of the above: the agent as a member of a
//!   fleet (claims, leases, handoffs, chores, the dead man's switch). The single-node path
//!   reads without it: `Services::fleet` is `None` there.

mod background;
mod catchup;
mod control;
mod daemon;
pub mod dynamic;
pub mod fleet;
mod host;
pub mod jobs;
mod options;
pub mod plan;
mod running;
mod watch;

use std::{
    collections::{BTreeMap, HashMap},
    future::Future,
    sync::Arc,
    time::Duration,
};

use cronfleet_scheduler::Scheduler;
use jiff::{tz::TimeZone, Timestamp};
use tokio::sync::mpsc;

pub use background::Background;
pub use control::{ApplyError, ControlError};
pub use daemon::{DaemonState, DaemonStatus};
pub use fleet::{ahead, node_status, HEARTBEAT, LOST_AFTER};
pub use host::Host;
pub use jobs::{InFlight, Services};
pub use options::{
    default_state_dir, shared_store_hint, Identity, Options, StartError, STORE_FILE,
};
pub use plan::Plan;
pub use running::Reloaded;

use self::{
    options::{read_task_file, write_identity},
    running::Running,
};

use self::dynamic::ApiTask;
use crate::{
    config::{self, Task},
    store::{Outcome, RunRecord, Store, StoredTask},
};

/// How often old runs are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// How long the background loops get to end once the scheduler and daemons have stopped
/// (each ends at its next `.await`).
const BACKGROUND_GRACE: Duration = Duration::from_secs(5);

/// Retention with a store of its own: old runs pruned at start and then hourly (the agent
/// sleeps until then).
async fn prune(store: Store, keep_runs: u32, keep_for: Duration) {
    loop {
        pruned(store.prune(keep_runs, prune_before(keep_for)).await);
        tokio::time::sleep(PRUNE_EVERY).await;
    }
}

/// The slot (Unix seconds) before which finished runs are pruned: `keep_for` ago.
fn prune_before(keep_for: Duration) -> i64 {
    crate::clock::now().as_second() - keep_for.as_secs() as i64
}

/// Says what a retention pass did (on a node's own store, or as the fleet's chore).
fn pruned(result: Result<u64, crate::store::StoreError>) {
    match result {
        Ok(0) => {}
        Ok(n) => tracing::info!(deleted = n, "old runs pruned"),
        Err(e) => tracing::error!(error = %e, "cannot prune old runs"),
    }
}

/// How long a reload waits for a burst of file changes (an editor saving) to settle.
const SETTLE: Duration = Duration::from_millis(200);

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
    /// For a daemon this node runs: what it is doing.
    pub daemon: Option<daemon::DaemonStatus>,
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
    /// Whether the task file on disk is the one in effect (a failed reload keeps the last
    /// good one).
    reload: std::sync::Mutex<ReloadState>,
}

/// The last reads of the task file: whether what is on disk is in effect, and why not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReloadState {
    /// When the file was last read (at start or a reload).
    pub last_attempt: Timestamp,
    /// When it was last read without error: the tasks in effect are that file's.
    pub last_success: Timestamp,
    /// Why the last read failed (`file:line:column: ...` each); empty when it did not.
    pub errors: Vec<String>,
}

impl ReloadState {
    /// The file on disk is the one in effect.
    pub fn in_effect(&self) -> bool {
        self.errors.is_empty()
    }
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
                    daemon: running
                        .daemons
                        .get(&task.name)
                        .and_then(|(_, s)| s.as_ref())
                        .map(daemon::Supervisor::status),
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
        let now = crate::clock::now();
        let mut state = self.reload.lock().unwrap_or_else(|p| p.into_inner());
        state.last_attempt = now;
        match &result {
            Ok(_) => {
                state.last_success = now;
                state.errors.clear();
            }
            Err(errors) => state.errors = errors.0.iter().map(ToString::to_string).collect(),
        }
        self.services.metrics.reloaded(result.is_ok());
        self.services.metrics.config_read(result.is_ok(), state.last_success.as_second());
        drop(state);
        result
    }

    /// The last reads of the task file (see [`ReloadState`]).
    pub fn reload_state(&self) -> ReloadState {
        self.reload.lock().unwrap_or_else(|p| p.into_inner()).clone()
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
}

/// Records the slots the scheduler did not run (skipped by policy, missed while stalled),
/// until the agent stops; then those still queued (what the shutdown itself skipped).
fn record_skips(scheduler: &Scheduler, services: Arc<Services>) {
    let mut events = scheduler.subscribe();
    let scheduler = scheduler.clone();
    let stop = services.background.stopping();
    services.background.clone().spawn_until(async move {
        loop {
            let event = tokio::select! {
                biased;
                event = events.recv() => match event {
                    Ok(e) => e,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(_) => return,
                },
                () = stop.cancelled() => break,
            };
            record_not_run(&scheduler, &services, event).await;
        }
        while let Ok(event) = events.try_recv() {
            record_not_run(&scheduler, &services, event).await;
        }
    });
}

/// Records a slot not run, if `event` is one.
async fn record_not_run(
    scheduler: &Scheduler,
    services: &Services,
    event: cronfleet_scheduler::Event,
) {
    let (entry, slot, outcome, reason) = match event {
        cronfleet_scheduler::Event::Skipped { entry, slot, reason, .. } => {
            (entry, slot, Outcome::Skipped, reason)
        }
        cronfleet_scheduler::Event::Missed { entry, first, last, .. } => {
            let reason =
                format!("slots from {first} to {last} passed while the agent could not run them");
            (entry, last, Outcome::Missed, reason)
        }
        _ => return,
    };
    let Some(task) = scheduler.entry(entry).and_then(|e| e.name) else { return };
    if let (Some(member), Outcome::Skipped) = (&services.fleet, outcome) {
        member.skipped(&task, slot.timestamp().as_second()).await;
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

/// Waits for a burst of reload requests to end.
async fn settle(reload: &mut mpsc::Receiver<()>) {
    tokio::time::sleep(SETTLE).await;
    while reload.try_recv().is_ok() {}
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
        if let Some(member) = &self.services.fleet {
            fleet::start_membership(self, member);
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
    crate::private::dir(&options.state_dir).map_err(|e| crate::store::StoreError::Sql {
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
    // What a crashed predecessor left running ends before anything starts.
    let children =
        crate::children::Children::open(&options.state_dir.join("children")).map_err(|e| {
            crate::store::StoreError::Sql {
                path: options.state_dir.display().to_string(),
                source: sqlx::Error::Io(e),
            }
        })?;
    for orphan in children.end_orphans().await {
        let how = if orphan.killed { "SIGKILL after its grace" } else { "SIGTERM" };
        let reason = format!(
            "the agent died during the run; its process group (pid {}) was still running and \
             was ended ({how}) when the agent started again",
            orphan.pid
        );
        tracing::warn!(run_id = %orphan.run_id, pid = orphan.pid, "{reason}");
        let at = crate::clock::now().to_string();
        store.abandon_run(&orphan.run_id, &at, &reason).await?;
    }
    let abandoned =
        store.abandon_running(&options.host.name, &crate::clock::now().to_string()).await?;
    if abandoned > 0 {
        tracing::warn!(
            runs = abandoned,
            "runs going when the agent last stopped are recorded as abandoned"
        );
    }
    let mut services = Services::new(store.clone(), &options.host.name);
    services.children = Some(Arc::new(children));
    let services = Arc::new(services);
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
    let started = crate::clock::now();
    services.metrics.config_read(true, started.as_second());
    let agent = Arc::new(Agent {
        options,
        started,
        scheduler,
        services,
        running: tokio::sync::Mutex::new(running),
        reload: std::sync::Mutex::new(ReloadState {
            last_attempt: started,
            last_success: started,
            errors: Vec::new(),
        }),
    });
    for (name, until) in timed {
        agent.resume_at(&name, until);
    }
    match &agent.services.fleet {
        // Retention is then the leader's chore.
        Some(member) => fleet::start_chores(&agent, member),
        None => {
            let (keep_runs, keep_for) = (agent.options.keep_runs, agent.options.keep_for);
            agent.services.background.spawn(prune(store, keep_runs, keep_for));
        }
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
        agent.services.background.spawn_until(async move {
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
    if let Some(member) = &agent.services.fleet {
        member.stop_heartbeat();
    }
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
    // Then the loops: none outlives the agent (the slots the shutdown skipped are recorded
    // first).
    if !agent.services.background.stop(BACKGROUND_GRACE).await {
        tracing::warn!("background work still going after {BACKGROUND_GRACE:?}; left behind");
    }
    // Said again once no heartbeat can be in flight: a clean stop is recorded as stopped.
    let at = crate::clock::now().to_string();
    let _ = agent.services.store.heartbeat(&agent.options.host.name, &at, true).await;
    tracing::info!("stopped");
}

#[cfg(test)]
mod tests;
