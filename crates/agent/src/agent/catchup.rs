//! Catch-up after downtime: slots that passed while the agent was not running.
//!
//! At start, each cron task's latest recorded slot is looked up in the run history; the slots
//! of its schedule after that one and up to now were missed. The task's `catch_up` decides:
//! `skip` records them as missed, `once` runs the latest of them now (and records the others),
//! `all` runs each of them now, oldest first (the most recent [`MAX_CATCH_UP`] when there were
//! more), through the task's concurrency policy. A task never run before has nothing to catch up.

use std::collections::HashMap;

use cronfleet_scheduler::{EntryId, Scheduler};
use jiff::{Timestamp, Zoned};

use cronfleet_cron::Schedule;

use super::Services;
use crate::{
    config::{CatchUp, Kind, Task},
    store::{Outcome, RunRecord},
};

/// At most this many missed slots of one task are run (or counted).
pub const MAX_CATCH_UP: usize = 100;

/// Deals with each task's missed slots.
pub async fn catch_up(
    scheduler: &Scheduler,
    services: &Services,
    tasks: &HashMap<String, (Task, EntryId)>,
    paused: &HashMap<String, Option<jiff::Timestamp>>,
) {
    let (store, node) = (&services.store, services.node.as_str());
    let now = crate::clock::zoned_now();
    // A paused task catches nothing up: slots passed while paused are not run.
    for (name, (task, id)) in tasks.iter().filter(|(name, _)| !paused.contains_key(*name)) {
        let Kind::Cron(schedule) = &task.kind else { continue };
        // In a shared store, a task every node runs catches up on this node's own slots; a
        // `run_on` task on the fleet's.
        let own = (services.fleet.is_some() && task.run_on.is_none()).then_some(node);
        let Ok(Some(last)) = store.last_slot(name, own).await else { continue };
        let Ok(last) = Timestamp::from_second(last) else { continue };
        let last = last.to_zoned(now.time_zone().clone());
        let Some(Missed { first, recent: missed, more }) = missed(schedule, &last, &now) else {
            continue;
        };
        let Some(latest) = missed.last().cloned() else { continue };
        let count =
            if more { format!("more than {MAX_CATCH_UP}") } else { missed.len().to_string() };
        let span =
            format!("{count} slots from {first} to {latest} passed while the agent was down");
        let record = |slot: &Zoned, reason: String| {
            RunRecord::not_run(name, slot, Outcome::Missed, reason, node, services.fleet.is_some())
        };
        match task.catch_up {
            CatchUp::Skip => {
                tracing::warn!(task = %name, "{span}; catch_up = skip: not run");
                let missed = record(&latest, format!("{span}; catch_up = skip"));
                let _ = store.put(&missed).await;
                services.alerts.missed(&missed);
            }
            CatchUp::Once => {
                tracing::warn!(task = %name, slot = %latest, "{span}; catch_up = once: running the latest");
                if missed.len() > 1 {
                    let before = &missed[missed.len() - 2];
                    let not_run =
                        record(before, format!("{span}; catch_up = once ran only the latest"));
                    let _ = store.put(&not_run).await;
                    services.alerts.missed(&not_run);
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

/// The slots of `schedule` after `last` and up to `now`.
struct Missed {
    /// The first one.
    first: Zoned,
    /// The most recent ones (at most [`MAX_CATCH_UP`]), oldest first.
    recent: Vec<Zoned>,
    /// There were more than [`MAX_CATCH_UP`].
    more: bool,
}

/// Finds them backwards from now, so the latest is right however many there were.
fn missed(schedule: &Schedule, last: &Zoned, now: &Zoned) -> Option<Missed> {
    let just_after_now = now.checked_add(jiff::SignedDuration::from_nanos(1)).ok()?;
    let mut recent: Vec<Zoned> = schedule
        .iter_before(&just_after_now)
        .take_while(|slot| slot > last)
        .take(MAX_CATCH_UP + 1)
        .collect();
    if recent.is_empty() {
        return None;
    }
    let more = recent.len() > MAX_CATCH_UP;
    recent.truncate(MAX_CATCH_UP);
    recent.reverse();
    Some(Missed { first: schedule.next_after(last)?, recent, more })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Zoned {
        s.parse().unwrap()
    }

    #[test]
    fn a_day_of_minutes_keeps_the_latest_hundred() {
        let s: Schedule = "* * * * *".parse().unwrap();
        let m = missed(
            &s,
            &at("2026-11-22T10:00:00+00:00[UTC]"),
            &at("2026-11-23T10:00:30+00:00[UTC]"),
        )
        .unwrap();
        assert!(m.more);
        assert_eq!(m.first.to_string(), "2026-11-22T10:01:00+00:00[UTC]");
        assert_eq!(m.recent.len(), MAX_CATCH_UP);
        assert_eq!(m.recent.last().unwrap().to_string(), "2026-11-23T10:00:00+00:00[UTC]");
        assert_eq!(m.recent[0].to_string(), "2026-11-23T08:21:00+00:00[UTC]");
    }

    #[test]
    fn a_few_or_none() {
        let s: Schedule = "0 * * * *".parse().unwrap();
        let m = missed(
            &s,
            &at("2026-11-23T07:00:00+00:00[UTC]"),
            &at("2026-11-23T10:00:00+00:00[UTC]"),
        )
        .unwrap();
        assert!(!m.more);
        let hours: Vec<i8> = m.recent.iter().map(|z| z.hour()).collect();
        assert_eq!(hours, [8, 9, 10]);
        assert!(missed(
            &s,
            &at("2026-11-23T10:00:00+00:00[UTC]"),
            &at("2026-11-23T10:59:59+00:00[UTC]")
        )
        .is_none());
    }
}
