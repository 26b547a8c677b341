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

mod catchup;
mod daemon;
mod host;
mod jobs;
mod watch;

use std::{collections::HashMap, future::Future, path::PathBuf, time::Duration};

use cronfleet_scheduler::{EntryId, Scheduler, Timing};
use jiff::tz::TimeZone;
use tokio::sync::mpsc;

pub use host::Host;

use crate::{
    config::{self, Kind, Task, TaskSet},
    store::{Outcome, RunRecord, Store},
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
}

/// How often old runs are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

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

/// The tasks being run, by name.
struct Running {
    scheduler: Scheduler,
    store: Store,
    node: String,
    tasks: HashMap<String, (Task, EntryId)>,
    daemons: HashMap<String, (Task, daemon::Supervisor)>,
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
    /// Returns how many were added, changed and removed.
    async fn apply(&mut self, set: TaskSet, host: &Host) -> (usize, usize, usize) {
        let (daemons, crons): (Vec<Task>, Vec<Task>) = set
            .tasks
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
        }
        for task in crons.fresh {
            let Kind::Cron(schedule) = &task.kind else { continue };
            let id = self.scheduler.add_with(
                Timing::Schedule(schedule.clone()),
                jobs::job(&task, &self.node, self.store.clone()),
                jobs::options(&task),
            );
            if let Some(next) = last_slot.get(&task.name).and_then(|prev| schedule.next_after(prev))
            {
                let _ = self.scheduler.set_next(id, next);
            }
            let next = self.scheduler.entry(id).and_then(|e| e.next);
            let next = next.map_or_else(|| "never".to_owned(), |n| n.to_string());
            tracing::info!(task = %task.name, schedule = %schedule, %next, "task scheduled");
            self.tasks.insert(task.name.clone(), (task, id));
        }

        for name in &daemons.stale {
            if let Some((_, supervisor)) = self.daemons.remove(name) {
                supervisor.stop().await;
                tracing::info!(task = %name, "daemon task stopped");
            }
        }
        for task in daemons.fresh {
            let supervisor = daemon::Supervisor::start(&task, &self.node, self.store.clone());
            self.daemons.insert(task.name.clone(), (task, supervisor));
        }

        (
            crons.added + daemons.added,
            crons.changed + daemons.changed,
            crons.removed + daemons.removed,
        )
    }

    /// Stops every daemon.
    async fn stop_daemons(&mut self) {
        for (_, (_, supervisor)) in self.daemons.drain() {
            supervisor.stop().await;
        }
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
        "started_at": jiff::Timestamp::now().to_string(),
        "version": env!("CARGO_PKG_VERSION"),
    });
    if let Err(e) = std::fs::write(options.state_dir.join("agent.json"), identity.to_string()) {
        tracing::warn!(error = %e, "cannot write agent.json in the state directory");
    }
}

/// Deletes old runs now and every hour, in the background.
fn prune_history(store: Store, keep_runs: u32, keep_for: Duration) {
    tokio::spawn(async move {
        loop {
            let cutoff = jiff::Timestamp::now().as_second() - keep_for.as_secs() as i64;
            match store.prune(keep_runs, cutoff).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(deleted = n, "old runs pruned"),
                Err(e) => tracing::error!(error = %e, "cannot prune old runs"),
            }
            tokio::time::sleep(PRUNE_EVERY).await;
        }
    });
}

/// Records the slots the scheduler did not run (skipped by policy, missed while stalled).
fn record_skips(scheduler: &Scheduler, store: Store, node: String) {
    let mut events = scheduler.subscribe();
    let scheduler = scheduler.clone();
    tokio::spawn(async move {
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
            tracing::warn!(task = %task, slot = %slot, outcome = outcome.as_str(), reason = %reason, "slot not run");
            let record = RunRecord::not_run(&task, &slot, outcome, reason, &node);
            if let Err(e) = store.put(&record).await {
                tracing::error!(error = %e, "cannot record a slot not run");
            }
        }
    });
}

/// Waits for a burst of reload requests to end, then loads the file once.
async fn settle_then_load(
    path: &std::path::Path,
    reload: &mut mpsc::Receiver<()>,
) -> Result<TaskSet, config::ConfigErrors> {
    tokio::time::sleep(SETTLE).await;
    while reload.try_recv().is_ok() {}
    config::load(path)
}

/// Whether two tasks mean the same (where they sit in the file does not count).
fn same_definition(a: &Task, b: &Task) -> bool {
    Task { line: 0, ..a.clone() } == Task { line: 0, ..b.clone() }
}

/// Runs the agent until `shutdown` resolves; a message on `reload` re-reads the task file.
/// `on_ready` is called once the tasks are loaded and scheduled.
///
/// # Errors
/// The task file's errors when it is invalid at start.
pub async fn run(
    options: Options,
    reload_tx: mpsc::Sender<()>,
    mut reload: mpsc::Receiver<()>,
    shutdown: impl Future<Output = ()>,
    on_ready: impl FnOnce(),
) -> Result<(), StartError> {
    let set = config::load(&options.config)?;
    let store = Store::open(&options.state_dir).await?;
    let abandoned = store.abandon_running(&jiff::Timestamp::now().to_string()).await?;
    if abandoned > 0 {
        tracing::warn!(
            runs = abandoned,
            "runs going when the agent last stopped are recorded as abandoned"
        );
    }
    let scheduler = Scheduler::builder().time_zone(TimeZone::system()).build();
    record_skips(&scheduler, store.clone(), options.host.name.clone());
    prune_history(store.clone(), options.keep_runs, options.keep_for);
    let mut running = Running {
        scheduler: scheduler.clone(),
        store: store.clone(),
        node: options.host.name.clone(),
        tasks: HashMap::new(),
        daemons: HashMap::new(),
    };
    let (added, _, _) = running.apply(set, &options.host).await;
    let _watcher = if options.watch {
        match watch::watch(&options.config, reload_tx) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch the task file; reload with SIGHUP");
                None
            }
        }
    } else {
        None
    };
    write_identity(&options);
    catchup::catch_up(&running.scheduler, &store, &running.tasks, &running.node).await;
    scheduler.start();
    on_ready();
    tracing::info!(
        node = %options.host.name,
        addresses = ?options.host.addresses,
        config = %options.config.display(),
        tasks = added,
        "agent started"
    );
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            Some(()) = reload.recv() => match settle_then_load(&options.config, &mut reload).await {
                Ok(set) => {
                    let (added, changed, removed) = running.apply(set, &options.host).await;
                    tracing::info!(added, changed, removed, tasks = running.tasks.len(), "reloaded");
                }
                Err(errors) => {
                    for e in &errors.0 {
                        tracing::error!("{e}");
                    }
                    tracing::error!(errors = errors.0.len(), "reload failed; keeping the previous tasks");
                }
            },
        }
    }
    tracing::info!(
        grace_s = options.shutdown_grace.as_secs(),
        running = scheduler.running(),
        "stopping"
    );
    // Daemons never finish on their own: they are stopped at once, while scheduled runs get
    // the grace.
    tokio::join!(scheduler.shutdown(options.shutdown_grace), running.stop_daemons());
    tracing::info!("stopped");
    Ok(())
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
