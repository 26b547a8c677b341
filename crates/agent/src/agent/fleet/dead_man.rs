//! The dead man's switch: slots nobody recorded anything for are recorded as missed, once in
//! the fleet, and alerted.

use std::{collections::HashMap, sync::Arc, time::Duration};

use jiff::Timestamp;

use super::{node_status, Agent};
use crate::{
    agent::TaskView,
    config::Kind,
    store::{Fleet, NodeStatus, Outcome, RunRecord},
};

/// A slot with no record this long after it is missed (claims and starts take a second).
pub(super) const DEAD_MAN_AFTER: Duration = Duration::from_secs(10);

/// The dead man's switch of a shared store: each task's latest slot (at least
/// [`DEAD_MAN_AFTER`] old, and from after this node began to lead) that no node recorded
/// anything for (no run, skip or miss: its nodes are all down, or none matches) is recorded
/// as missed, once in the fleet (claimed as seat 0 of the slot), and alerted. So is a slot
/// whose seat 0 a node claimed and recorded nothing for, when that node is no longer alive
/// (it went between its claim and its run's record; then [`DEAD_MAN_SEAT`] makes it once).
///
/// `known` remembers since when the leader has known each task with its schedule (a task
/// added or rescheduled later is not missed for slots before then).
pub(super) async fn dead_man(
    agent: &Arc<Agent>,
    fleet: &Fleet,
    since: Timestamp,
    known: &mut HashMap<String, Timestamp>,
) {
    let services = &agent.services;
    let latest = match services.store.latest_slots(since.as_second()).await {
        Ok(latest) => latest,
        Err(e) => {
            tracing::warn!(error = %e, "cannot look for missed slots");
            return;
        }
    };
    let now = crate::clock::zoned_now();
    let Ok(horizon) =
        now.checked_sub(jiff::SignedDuration::try_from(DEAD_MAN_AFTER).unwrap_or_default())
    else {
        return;
    };
    // Each cron task with its key in `known`: its name and schedule.
    let views: Vec<(TaskView, String)> = agent
        .tasks()
        .await
        .into_iter()
        .filter_map(|v| match &v.task.kind {
            Kind::Cron(schedule) => {
                let key = format!("{}\n{schedule}", v.task.name);
                Some((v, key))
            }
            Kind::Daemon => None,
        })
        .collect();
    let current: std::collections::HashSet<&str> = views.iter().map(|(_, k)| k.as_str()).collect();
    known.retain(|k, _| current.contains(k.as_str()));
    // The store's nodes, read when a claimed slot with no record needs them.
    let mut nodes = None;
    for (view, key) in views {
        let task = &view.task;
        let Kind::Cron(schedule) = &task.kind else { continue };
        if !task.enabled || view.paused.is_some() {
            // Slots of a paused task are not missed, nor those before it resumes.
            known.insert(key, crate::clock::now());
            continue;
        }
        let first = *known.entry(key).or_insert_with(crate::clock::now);
        let Some(slot) = schedule.prev_before(&horizon) else { continue };
        let slot_ts = slot.timestamp().as_second();
        if slot.timestamp() < since.max(first)
            || latest.get(&task.name).is_some_and(|l| *l >= slot_ts)
        {
            continue;
        }
        let at = crate::clock::now().to_string();
        let claimed = |seat| fleet.claim(&task.name, slot_ts, seat, &services.node, &at);
        let reason = match claimed(0).await {
            Ok(true) => {
                "no node ran this slot (none of the task's nodes is alive, or none matches it)"
                    .to_owned()
            }
            Ok(false) => {
                // A node claimed the slot and recorded nothing: if it is gone, it went before
                // it could run the slot (or record it). Recorded once, by a seat of its own.
                let Some(gone) = gone_holder(agent, fleet, &task.name, slot_ts, &mut nodes).await
                else {
                    continue;
                };
                match claimed(DEAD_MAN_SEAT).await {
                    Ok(true) => format!(
                        "node {gone} claimed this slot and went silent before it recorded a run"
                    ),
                    Ok(false) => continue,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot claim a missed slot");
                        continue;
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot claim a missed slot");
                continue;
            }
        };
        tracing::warn!(task = %task.name, slot = %slot, "{reason}");
        let record =
            RunRecord::not_run(&task.name, &slot, Outcome::Missed, reason, &services.node, true);
        services.metrics.not_run(&task.name, Outcome::Missed.as_str());
        if let Err(e) = services.store.put(&record).await {
            tracing::error!(error = %e, "cannot record a missed slot");
        }
        services.alerts.missed(&record);
    }
}

/// The seat the dead man's switch claims to record a slot missed whose seat 0 a node took
/// and never recorded (so that the fleet records it once); no task has this many seats.
const DEAD_MAN_SEAT: u32 = u32::MAX;

/// The node holding seat 0 of a task's slot, when it is no longer alive (lost or stopped).
/// `nodes` caches the store's nodes for one pass of the dead man's switch.
async fn gone_holder(
    agent: &Arc<Agent>,
    fleet: &Fleet,
    task: &str,
    slot_ts: i64,
    nodes: &mut Option<Vec<crate::store::NodeRecord>>,
) -> Option<String> {
    let store = &agent.services.store;
    let holder = match fleet.claim_holder(task, slot_ts, 0).await {
        Ok(holder) => holder?,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read a slot's claim");
            return None;
        }
    };
    if nodes.is_none() {
        *nodes = Some(store.nodes().await.ok()?);
    }
    let now = crate::clock::now();
    let alive = nodes
        .as_ref()?
        .iter()
        .any(|n| n.name == holder && node_status(n, now) == NodeStatus::Alive);
    (!alive).then_some(holder)
}
