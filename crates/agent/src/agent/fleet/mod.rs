//! The fleet beside the single-node agent: what an agent does only when it shares a
//! PostgreSQL store with others. Nothing here runs with a store of its own.
//!
//! - `ahead`: claims made ahead of their slots, so a slot's preferred node runs it on time;
//! - `member`: this agent in its fleet (`Services::fleet`): the nodes as last read, claims in
//!   batches, slots taken over;
//! - `rendezvous`: which nodes run a `run_on` slot; `claims`: the claim around a `run_on`
//!   task's job; `leases`: fleet-wide run leases (`max_running`);
//! - the loops started by `start`: the heartbeat, taking slots handed over
//!   (`retry_elsewhere`), the chores of the node holding the leader lock (runs of silent
//!   nodes become lost and are handed over, the dead man's switch in `dead_man`, retention),
//!   and the spool's flush when the database is back.

pub mod ahead;
pub mod claims;
mod dead_man;
pub mod leases;
mod member;
pub mod rendezvous;

use std::{
    collections::HashMap,
    sync::{atomic::AtomicU64, Arc, Mutex, OnceLock, RwLock},
    time::{Duration, Instant},
};

use cronfleet_scheduler::EntryId;
use jiff::Timestamp;
use tokio_util::sync::CancellationToken;

pub use claims::ClaimError;

use self::{ahead::Ahead, claims::ClaimRequest, rendezvous::Candidate};
use super::{Agent, Background, PRUNE_EVERY};
use crate::metrics::Metrics;

use crate::store::{Fleet, Flushed, Handoff, Leader, NodeRecord, NodeStatus};

/// This agent in its fleet (only with a shared store; see `Services::fleet`).
#[derive(Debug)]
pub struct Member {
    /// The store's fleet part: claims, leases, handoffs, the spool.
    pub db: Fleet,
    /// This node's name.
    pub node: String,
    metrics: Arc<Metrics>,
    background: Background,
    /// The nodes of the store as last read (every heartbeat), ready for claims (see
    /// [`Member::set_nodes`]).
    nodes: RwLock<Arc<Vec<Candidate>>>,
    /// Slots taken over from other nodes (`retry_elsewhere`): (task, slot) → the attempt they
    /// go on from, and when they were taken.
    handed: Mutex<HashMap<(String, i64), (u32, Instant)>>,
    /// Claims waiting to go to the database together (see `Member::claim`).
    claims: OnceLock<tokio::sync::mpsc::UnboundedSender<ClaimRequest>>,
    /// Claim statements sent to the database (round trips), for metrics.
    pub claim_round_trips: AtomicU64,
    /// How long each claim statement took, kept only when set to `Some` (the claims
    /// benchmark measures through it).
    pub claim_times: Mutex<Option<Vec<Duration>>>,
    /// Slots claimed ahead of their time.
    pub ahead: Ahead,
    /// Ends the heartbeat (before the stop is recorded, so that no heartbeat undoes it).
    beating: CancellationToken,
}

/// How often a node says it is alive.
pub const HEARTBEAT: Duration = Duration::from_secs(5);

/// A node not heard from for this long (three heartbeats) is lost.
pub const LOST_AFTER: Duration = Duration::from_secs(15);

/// How often a node with `retry_elsewhere` tasks looks for slots handed over to it.
const HANDOFFS_EVERY: Duration = Duration::from_secs(1);

/// How often a node checks whether it does the fleet's chores, and does them.
const CHORES_EVERY: Duration = Duration::from_secs(5);

/// How often a node whose database was away checks whether it is back.
const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// Whether a node runs, stopped cleanly, or went silent (for [`LOST_AFTER`]) at `now`.
pub fn node_status(node: &NodeRecord, now: Timestamp) -> NodeStatus {
    if node.stopped_at.is_some() {
        return NodeStatus::Stopped;
    }
    let seen = node.last_seen.parse::<Timestamp>().unwrap_or(Timestamp::UNIX_EPOCH);
    let silent = now.duration_since(seen);
    if silent > jiff::SignedDuration::try_from(LOST_AFTER).unwrap_or_default() {
        NodeStatus::Lost
    } else {
        NodeStatus::Alive
    }
}

/// Starts the fleet's chores and the spool's flush, as the agent starts (before any slot).
pub(super) fn start_chores(agent: &Arc<Agent>, member: &Member) {
    let background = &agent.services.background;
    background.spawn(chores(Arc::downgrade(agent), member.db.clone()));
    background.spawn(flush_spool(member.db.clone(), member.node.clone()));
}

/// Starts the heartbeat and taking handoffs of a registered agent.
pub(super) fn start_membership(agent: &Arc<Agent>, member: &Arc<Member>) {
    let background = &agent.services.background;
    let (weak, beating) = (Arc::downgrade(agent), member.beating.clone());
    background.spawn(async move {
        loop {
            tokio::select! {
                () = tokio::time::sleep(HEARTBEAT) => {}
                () = beating.cancelled() => return,
            }
            let Some(agent) = weak.upgrade() else { return };
            let at = crate::clock::now().to_string();
            if let Err(e) =
                agent.services.store.heartbeat(&agent.options.host.name, &at, false).await
            {
                tracing::warn!(error = %e, "heartbeat not recorded");
            }
            agent.refresh_nodes().await;
        }
    });
    let (weak, handoffs) = (Arc::downgrade(agent), member.clone());
    background.spawn(async move {
        loop {
            tokio::time::sleep(HANDOFFS_EVERY).await;
            let Some(agent) = weak.upgrade() else { return };
            agent.take_handoffs(&handoffs).await;
        }
    });
}

/// The fleet's chores, done by one node at a time (the holder of the leader lock): runs of
/// nodes silent for [`LOST_AFTER`] become `lost` and are offered to the other nodes, slots
/// nobody ran are recorded as missed and alerted (the dead man's switch), and old runs are
/// pruned hourly.
async fn chores(agent: std::sync::Weak<Agent>, fleet: Fleet) {
    let mut leader: Option<Leader> = None;
    let mut last_prune: Option<std::time::Instant> = None;
    let mut leading_since = crate::clock::now();
    let mut known = HashMap::new();
    loop {
        if let Some(lead) = leader.as_mut() {
            if !lead.holds().await {
                tracing::warn!("lost the database connection that held the chores lock");
                leader = None;
            }
        }
        if leader.is_none() {
            leader = fleet.try_lead().await.unwrap_or_else(|e| {
                tracing::warn!(error = %e, "cannot tell who does the chores");
                None
            });
            if leader.is_some() {
                tracing::info!("this node does the fleet's chores");
                leading_since = crate::clock::now();
            }
        }
        if leader.is_some() {
            lose_silent_nodes(&fleet).await;
            let Some(agent) = agent.upgrade() else { return };
            dead_man::dead_man(&agent, &fleet, leading_since, &mut known).await;
            if last_prune.is_none_or(|t| t.elapsed() >= PRUNE_EVERY) {
                last_prune = Some(std::time::Instant::now());
                let (keep_runs, keep_for) = (agent.options.keep_runs, agent.options.keep_for);
                super::pruned(fleet.prune(keep_runs, super::prune_before(keep_for)).await);
            }
        }
        tokio::time::sleep(CHORES_EVERY).await;
    }
}

/// Runs of nodes silent for [`LOST_AFTER`] become `lost`, and are offered to the other nodes;
/// those with the task and `retry_elsewhere` take them (see `Agent::take_handoffs`).
async fn lose_silent_nodes(fleet: &Fleet) {
    let now = crate::clock::now();
    let silent: Vec<String> = fleet
        .store()
        .nodes()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|n| node_status(n, now) == NodeStatus::Lost)
        .map(|n| n.name.clone())
        .collect();
    match fleet.lose_runs(&silent, &now.to_string()).await {
        Ok(lost) if lost.is_empty() => {}
        Ok(lost) => {
            tracing::warn!(runs = lost.len(), nodes = ?silent, "runs of silent nodes are lost");
            for run in &lost {
                let reason = format!("lost with node {}", run.node);
                if let Err(e) = fleet.hand_off(run, &reason, &now.to_string()).await {
                    tracing::error!(error = %e, "cannot hand a lost run over");
                }
            }
        }
        Err(e) => tracing::error!(error = %e, "cannot mark lost runs"),
    }
}

/// Moves what was spooled while the database was away into it once it is back (see
/// [`Fleet::flush`]).
async fn flush_spool(fleet: Fleet, node: String) {
    loop {
        tokio::time::sleep(FLUSH_EVERY).await;
        match fleet.flush(&node).await {
            Ok(f) if f == Flushed::default() => {}
            Ok(f) => tracing::info!(
                runs = f.runs,
                missed = f.missed,
                "the database is back: spooled runs written, unclaimed slots recorded as missed"
            ),
            Err(e) => tracing::debug!(error = %e, "the database is still away"),
        }
    }
}

impl Agent {
    /// Takes the slots other nodes handed over (`retry_elsewhere`) for this node's tasks, and
    /// runs them: one per task at a time, and only while no run of it is going here (so its
    /// concurrency policy does not skip it).
    async fn take_handoffs(&self, member: &Member) {
        let fleet = &member.db;
        let ours: HashMap<String, EntryId> = {
            let running = self.running.lock().await;
            running
                .tasks
                .iter()
                .filter(|(name, (task, _))| {
                    task.retry_elsewhere && !running.paused.contains_key(*name)
                })
                .map(|(name, (_, id))| (name.clone(), *id))
                .collect()
        };
        if ours.is_empty() {
            return;
        }
        let node = &self.services.node;
        let offered = match fleet.handoffs(node).await {
            Ok(offered) => offered,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the slots handed over");
                return;
            }
        };
        let mut started = std::collections::HashSet::new();
        for Handoff { task, slot_ts, attempt } in offered {
            let Some(id) = ours.get(&task) else { continue };
            // A job of the task going (a run, or a claim being decided) would make its
            // concurrency policy skip the slot.
            let busy = self.scheduler.entry(*id).is_none_or(|e| e.running > 0);
            if busy || !started.insert(task.clone()) {
                continue;
            }
            match fleet.take_handoff(&task, slot_ts, node).await {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot take a slot handed over");
                    continue;
                }
            }
            let Ok(at) = Timestamp::from_second(slot_ts) else { continue };
            let slot = at.to_zoned(self.scheduler.now().time_zone().clone());
            member.hand(&task, slot_ts, attempt);
            tracing::info!(task = %task, slot = %slot, attempt, "running a slot handed over by another node");
            if let Err(e) = self.scheduler.run_for(*id, slot) {
                tracing::error!(task = %task, error = %e, "cannot run the slot handed over");
            }
        }
    }
}
