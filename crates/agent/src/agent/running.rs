//! The tasks an agent runs: the task file's and the API's, each a scheduler entry or a
//! daemon's supervisor, and the difference a reload applies (unchanged tasks keep their
//! timers and processes).

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
};

use cronfleet_scheduler::{EntryId, Scheduler, Timing};
use jiff::Timestamp;

use super::{daemon, dynamic::ApiTask, jobs, ControlError, Host, Services};
use crate::config::{self, Kind, Task, TaskSet};

/// The tasks being run, by name, and what was asked of them by hand.
pub(super) struct Running {
    pub(super) scheduler: Scheduler,
    pub(super) services: Arc<Services>,
    /// Every task of the file, in file order (also those for other nodes).
    pub(super) file: Vec<Task>,
    /// The file's alert channels.
    pub(super) notifiers: Vec<config::Notifier>,
    /// Tasks created through the API, by name.
    pub(super) api: BTreeMap<String, ApiTask>,
    pub(super) tasks: HashMap<String, (Task, EntryId)>,
    /// Daemon tasks; no supervisor while paused.
    pub(super) daemons: HashMap<String, (Task, Option<daemon::Supervisor>)>,
    /// Tasks paused by hand, and when each resumes by itself.
    pub(super) paused: HashMap<String, Option<Timestamp>>,
}

/// What a reload changes in one kind of task (cron or daemon).
#[derive(Debug, Default)]
pub(super) struct Diff {
    /// Running tasks to stop: changed or removed.
    pub(super) stale: Vec<String>,
    /// Tasks to start: new or changed.
    pub(super) fresh: Vec<Task>,
    pub(super) added: usize,
    pub(super) changed: usize,
    pub(super) removed: usize,
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
pub(super) fn diff<T>(running: &HashMap<String, (Task, T)>, wanted: Vec<Task>) -> Diff {
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
    pub(super) async fn apply(&mut self, host: &Host) -> Reloaded {
        let all: Vec<Task> =
            self.file.iter().cloned().chain(self.api.values().map(|a| a.task.clone())).collect();
        self.services.alerts.configure(&self.notifiers, &all);
        // Deleted tasks' metric series go with them.
        let names: std::collections::HashSet<&str> = all.iter().map(|t| t.name.as_str()).collect();
        self.services.metrics.retain_tasks(|task| names.contains(task));
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

    pub(super) fn notifier_names(&self) -> Vec<String> {
        self.notifiers.iter().map(|n| n.name.clone()).collect()
    }

    /// Whether a task file fits the API tasks: refused when a task name is also an API task's,
    /// or when an API task names a notifier the file does not have.
    pub(super) fn check_file(
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
                        "the API task notifies {missing:?}, which {} no longer has",
                        path.display()
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
    pub(super) fn take_file(
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
    pub(super) fn in_file(&self, name: &str) -> bool {
        self.file.iter().any(|t| t.name == name)
    }

    /// Stops every daemon.
    pub(super) async fn stop_daemons(&mut self) {
        for (_, (_, supervisor)) in self.daemons.drain() {
            if let Some(supervisor) = supervisor {
                supervisor.stop().await;
            }
        }
    }

    /// Pauses a task here (until `until`): no more slots, its daemon stopped.
    pub(super) async fn hold(&mut self, name: &str, until: Option<Timestamp>) {
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
    pub(super) fn claim_first_ahead(&self, task: &Task, id: EntryId) {
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
    pub(super) fn release(&mut self, name: &str) -> bool {
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
    pub(super) fn here(&self, name: &str) -> Result<(), ControlError> {
        if self.tasks.contains_key(name) || self.daemons.contains_key(name) {
            Ok(())
        } else if self.file.iter().any(|t| t.name == name) || self.api.contains_key(name) {
            Err(ControlError::NotHere(name.to_owned()))
        } else {
            Err(ControlError::NotFound(name.to_owned()))
        }
    }
}

/// Whether two tasks mean the same (where they sit in the file does not count).
pub(super) fn same_definition(a: &Task, b: &Task) -> bool {
    Task { line: 0, ..a.clone() } == Task { line: 0, ..b.clone() }
}
