//! What is asked of a running agent by hand (the API, the CLI, the dashboard): run now,
//! pause and resume, tasks created, changed and deleted, a task file planned and applied, a
//! run killed.

use std::sync::Arc;

use jiff::Timestamp;

use super::{
    dynamic::{self, ApiTask},
    plan::{self, Plan},
    running::Running,
    Agent, Reloaded, TaskView,
};
use crate::{
    config::{self, Kind},
    store::StoredTask,
};

/// Why `apply` did nothing.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The text is not a valid task file (or clashes with API tasks).
    #[error("{0}")]
    Invalid(#[from] config::ConfigErrors),
    /// The file could not be written.
    #[error("{0}")]
    Write(String),
    /// The agent may not write the task file (a read-only file system or its mode, as under
    /// the packaged unit, where tasks must not be able to rewrite it through the API either).
    #[error(
        "the agent may not write its task file {0} ({1}): deploy the file itself (config \
         management, a package), or keep the fleet's task file in the database \
         (cronfleet apply FILE --store URL); nothing was written"
    )]
    ReadOnly(String, String),
    /// The file defines no task, and an empty task file was not asked for in so many words.
    #[error("{}", empty_refusal(.removed))]
    Empty {
        /// The tasks of the task file now, which it would remove.
        removed: Vec<String>,
    },
}

/// Why an apply of a file without tasks was refused, and how to do it anyway.
fn empty_refusal(removed: &[String]) -> String {
    let what = match removed.len() {
        0 => "write a task file without any task".to_owned(),
        n => format!("remove every task of the task file ({n}: {})", removed.join(", ")),
    };
    format!(
        "the file defines no task: applying it would {what}; nothing was written. To do that, \
         apply it with allow_empty=true (cronfleet apply --allow-empty)"
    )
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

impl Agent {
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

    pub(super) async fn resume_locked(
        running: &mut Running,
        name: &str,
    ) -> Result<(), ControlError> {
        if !running.paused.contains_key(name) {
            return Ok(());
        }
        running.services.store.set_paused(name, None).await?;
        running.release(name);
        tracing::info!(task = name, "task resumed");
        Ok(())
    }

    /// Resumes `name` at `until`, if it is then still paused until that instant.
    pub(super) fn resume_at(self: &Arc<Self>, name: &str, until: Timestamp) {
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
    /// nothing written, when the text is invalid, or when it defines no task and
    /// `allow_empty` is not given (it would remove every task, or write a file without any).
    ///
    /// # Errors
    /// The text's errors, a file without tasks, or why the file could not be written.
    pub async fn apply(
        self: &Arc<Self>,
        text: &str,
        label: &str,
        allow_empty: bool,
    ) -> Result<(Plan, Reloaded), ApplyError> {
        let plan = self.plan(text, label).await?;
        if plan.leaves_no_task() && !allow_empty {
            let removed = plan.removed.iter().map(|(name, _)| name.clone()).collect();
            return Err(ApplyError::Empty { removed });
        }
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
        // The new file keeps the old one's mode: the task file is the user's, not ours.
        let mode = std::fs::metadata(&path).map(|m| m.permissions());
        std::fs::write(&tmp, text)
            .and_then(|()| mode.map_or(Ok(()), |m| std::fs::set_permissions(&tmp, m)))
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::ReadOnlyFilesystem | std::io::ErrorKind::PermissionDenied => {
                    ApplyError::ReadOnly(path.display().to_string(), e.to_string())
                }
                _ => ApplyError::Write(format!("cannot write {}: {e}", path.display())),
            })?;
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
        // To the second, as the anchor made from it.
        let now = dynamic::to_the_second(crate::clock::now());
        let unknown = dynamic::unknown_nulls(&definition);
        let built = dynamic::build(name, &mut definition, now, &running.notifier_names());
        let task = dynamic::with_problems(built, unknown).map_err(ControlError::Invalid)?;
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
        // A replacement is taken as it is: a null inside it (an env value, say) is refused,
        // not read as a removal, which only a merge patch means.
        let mut definition = change.clone();
        if patch {
            definition = old.definition.clone();
            dynamic::merge_patch(&mut definition, &change);
        }
        dynamic::carry_anchor(&old.definition, &mut definition, &change);
        let created: Timestamp = old.created_at.parse().unwrap_or_else(|_| crate::clock::now());
        let unknown = dynamic::unknown_nulls(&change);
        let built = dynamic::build(name, &mut definition, created, &running.notifier_names());
        let task = dynamic::with_problems(built, unknown).map_err(ControlError::Invalid)?;
        let stored = StoredTask {
            definition,
            revision: old.revision + 1,
            updated_at: dynamic::to_the_second(crate::clock::now()).to_string(),
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
