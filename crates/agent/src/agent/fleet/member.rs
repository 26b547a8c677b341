//! What an agent holds as a member of a fleet, beside its single-node services: the store's
//! fleet part, the nodes as last read, its claims (batched, and made ahead) and the slots it
//! took over from other nodes.

use std::{
    collections::HashMap,
    sync::{atomic::AtomicU64, Arc, Mutex, OnceLock, RwLock},
    time::{Duration, Instant},
};

use super::{
    ahead::Ahead,
    rendezvous::{candidates, Candidate},
};
use crate::{
    agent::Background,
    metrics::Metrics,
    store::{Fleet, NodeRecord, Seat, StoreError},
};

/// This agent in its fleet (only with a shared store; see `Services::fleet`).
#[derive(Debug)]
pub struct Member {
    /// The store's fleet part: claims, leases, handoffs, the spool.
    pub db: Fleet,
    /// This node's name.
    pub node: String,
    pub(super) metrics: Arc<Metrics>,
    pub(super) background: Background,
    /// The nodes of the store as last read (every heartbeat), ready for claims (see
    /// [`Member::set_nodes`]).
    nodes: RwLock<Arc<Vec<Candidate>>>,
    /// Slots taken over from other nodes (`retry_elsewhere`): (task, slot) → the attempt they
    /// go on from, and when they were taken.
    handed: Mutex<HashMap<(String, i64), (u32, Instant)>>,
    /// Claims waiting to go to the database together (see `Member::claim`).
    pub(super) claims: OnceLock<tokio::sync::mpsc::UnboundedSender<ClaimRequest>>,
    /// Claim statements sent to the database (round trips), for metrics.
    pub claim_round_trips: AtomicU64,
    /// How long each claim statement took, kept only when set to `Some` (the claims
    /// benchmark measures through it).
    pub claim_times: Mutex<Option<Vec<Duration>>>,
    /// Slots claimed ahead of their time.
    pub ahead: Ahead,
}

/// Why a claim has no answer (the slot is then not run here: never a slot without a claim).
#[derive(Clone, Debug, thiserror::Error)]
pub enum ClaimError {
    /// The agent stopped before the claim was answered.
    #[error("the agent is stopping")]
    Stopping,
    /// The database refused the claim or did not answer (one error for every claim of the
    /// statement, hence shared).
    #[error(transparent)]
    Store(Arc<StoreError>),
}

/// The same answer: every claim of one statement shares its error.
impl PartialEq for ClaimError {
    fn eq(&self, other: &ClaimError) -> bool {
        match (self, other) {
            (ClaimError::Stopping, ClaimError::Stopping) => true,
            (ClaimError::Store(a), ClaimError::Store(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

/// One seat a job wants, and where its answer goes.
#[derive(Debug)]
pub(super) struct ClaimRequest {
    pub(super) seat: Seat,
    pub(super) answer: tokio::sync::oneshot::Sender<Result<bool, ClaimError>>,
}

impl Member {
    /// `node` in the fleet of `db`; its loops run on `background`.
    pub fn new(db: Fleet, node: &str, metrics: Arc<Metrics>, background: Background) -> Member {
        Member {
            db,
            node: node.to_owned(),
            metrics,
            background,
            nodes: RwLock::default(),
            handed: Mutex::default(),
            claims: OnceLock::new(),
            claim_round_trips: AtomicU64::new(0),
            claim_times: Mutex::default(),
            ahead: Ahead::default(),
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

    /// The attempt a slot taken over from another node goes on from.
    pub fn handed(&self, task: &str, slot_ts: i64) -> Option<u32> {
        let map = self.handed.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&(task.to_owned(), slot_ts)).map(|(attempt, _)| *attempt)
    }
}
