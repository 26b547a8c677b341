//! Catch-up after downtime: slots that passed while the agent was not running.
//!
//! At start, each cron task's latest recorded slot is looked up in the run history; the slots
//! of its schedule after that one and up to now were missed. The task's `catch_up` decides:
//! `skip` records them as missed, `once` runs the latest of them now (and records the others),
//! `all` runs each of them now, oldest first (at most [`MAX_CATCH_UP`]), through the task's
//! concurrency policy. A task never run before has nothing to catch up.

use std::collections::HashMap;

use cronfleet_scheduler::{EntryId, Scheduler};
use jiff::{Timestamp, Zoned};

use crate::{
    config::{CatchUp, Kind, Task},
    store::{Outcome, RunRecord, Store},
};

/// At most this many missed slots of one task are run (or counted).
pub const MAX_CATCH_UP: usize = 100;

/// Deals with each task's missed slots.
pub async fn catch_up(
    scheduler: &Scheduler,
    store: &Store,
    tasks: &HashMap<String, (Task, EntryId)>,
    node: &str,
) {
    let now = Zoned::now();
    for (name, (task, id)) in tasks {
        let Kind::Cron(schedule) = &task.kind else { continue };
        let Ok(Some(last)) = store.last_slot(name).await else { continue };
        let Ok(last) = Timestamp::from_second(last) else { continue };
        let last = last.to_zoned(now.time_zone().clone());
        let missed: Vec<Zoned> = schedule
            .iter_after(&last)
            .take_while(|slot| *slot <= now)
            .take(MAX_CATCH_UP + 1)
            .collect();
        let Some(latest) = missed.last().cloned() else { continue };
        let count = if missed.len() > MAX_CATCH_UP {
            format!("more than {MAX_CATCH_UP}")
        } else {
            missed.len().to_string()
        };
        let span =
            format!("{count} slots from {} to {latest} passed while the agent was down", missed[0]);
        let record = |slot: &Zoned, reason: String| {
            RunRecord::not_run(name, slot, Outcome::Missed, reason, node)
        };
        match task.catch_up {
            CatchUp::Skip => {
                tracing::warn!(task = %name, "{span}; catch_up = skip: not run");
                let _ = store.put(&record(&latest, format!("{span}; catch_up = skip"))).await;
            }
            CatchUp::Once => {
                tracing::warn!(task = %name, slot = %latest, "{span}; catch_up = once: running the latest");
                if missed.len() > 1 {
                    let before = &missed[missed.len() - 2];
                    let _ = store
                        .put(&record(
                            before,
                            format!("{span}; catch_up = once ran only the latest"),
                        ))
                        .await;
                }
                let _ = scheduler.run_for(*id, latest);
            }
            CatchUp::All => {
                tracing::warn!(task = %name, "{span}; catch_up = all: running them");
                for slot in missed.into_iter().take(MAX_CATCH_UP) {
                    let _ = scheduler.run_for(*id, slot);
                }
            }
        }
    }
}
