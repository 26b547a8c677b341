//! What an agent holds as a member of a fleet, beside its single-node services: the store's
//! fleet part, the nodes as last read, its claims (batched, and made ahead) and the slots it
//! took over from other nodes.

use std::{
    sync::{atomic::AtomicU64, Arc, Mutex, OnceLock, RwLock},
    time::{Duration, Instant},
};

use super::{
    ahead::Ahead,
    rendezvous::{candidates, Candidate},
    Member,
};
use crate::{
    agent::Background,
    metrics::Metrics,
    store::{Fleet, NodeRecord},
};

impl Member {
    /// `node` in the fleet of `db`; its loops run on `background`.
    pub fn new(db: Fleet, node: &str, metrics: Arc<Metrics>, background: Background) -> Member {
        Member {
            db,
            node: node.to_owned(),
            metrics,
            nodes: RwLock::default(),
            handed: Mutex::default(),
            claims: OnceLock::new(),
            claim_round_trips: AtomicU64::new(0),
            claim_times: Mutex::default(),
            ahead: Ahead::default(),
            beating: background.stopping(),
            background,
        }
    }

    /// The nodes claims choose from, as last read.
    pub fn candidates(&self) -> Arc<Vec<Candidate>> {
        self.nodes.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Takes the store's nodes (read every heartbeat) as the candidates of claims: their
    /// identities parsed and their liveness judged once, not at every claim.
    pub fn set_nodes(&self, nodes: &[NodeRecord]) {
        let ready = Arc::new(candidates(nodes, crate::clock::now()));
        *self.nodes.write().unwrap_or_else(|p| p.into_inner()) = ready;
    }

    /// Remembers a slot taken over from another node, to run from `attempt` on.
    pub fn hand(&self, task: &str, slot_ts: i64, attempt: u32) {
        let mut map = self.handed.lock().unwrap_or_else(|p| p.into_inner());
        // Retries of a taken slot are over within the hour.
        map.retain(|_, (_, at)| at.elapsed() < Duration::from_secs(3600));
        map.insert((task.to_owned(), slot_ts), (attempt, Instant::now()));
    }

    /// Forgets a slot taken over from another node; whether it was one.
    pub fn unhand(&self, task: &str, slot_ts: i64) -> bool {
        let mut map = self.handed.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(&(task.to_owned(), slot_ts)).is_some()
    }

    /// Ends the heartbeat: the agent is stopping, and says so.
    pub fn stop_heartbeat(&self) {
        self.beating.cancel();
    }

    /// A slot skipped here by policy: if it was taken over from another node, it is offered
    /// again.
    pub async fn skipped(&self, task: &str, slot_ts: i64) {
        if self.unhand(task, slot_ts) {
            let _ = self.db.release_handoff(task, slot_ts).await;
        }
    }

    /// The attempt a slot taken over from another node goes on from.
    pub fn handed(&self, task: &str, slot_ts: i64) -> Option<u32> {
        let map = self.handed.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&(task.to_owned(), slot_ts)).map(|(attempt, _)| *attempt)
    }
}
