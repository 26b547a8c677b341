//! Claims: a node runs a `run_on` slot only with a seat of it claimed in the store. The
//! claims of the jobs due together go in one statement; the preferred nodes claim at once
//! (or ahead, see [`super::ahead`]), the backups after a grace each.

use std::{collections::HashSet, sync::Arc, time::Duration};

use cronfleet_scheduler::{RunContext, SharedJob, Wrapper};

use super::{
    rendezvous::{backup_wait, rank_among, CLAIM_BACKUPS},
    Member,
};
use crate::{
    config::Task,
    store::{Seat, StoreError},
};

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
    /// Claims one seat of a slot. The claims of the jobs due together go to the database in
    /// one statement: while one batch is on its way, the next ones queue up (so a node with
    /// many tasks due in the same second makes one or two round trips for all of them).
    async fn claim(
        self: &Arc<Self>,
        task: &str,
        slot_ts: i64,
        seat: u32,
    ) -> Result<bool, ClaimError> {
        let sender = self.claims.get_or_init(|| {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            self.background.spawn(claim_batches(Arc::downgrade(self), rx));
            tx
        });
        let (answer, reply) = tokio::sync::oneshot::channel();
        let seat = Seat { task: task.to_owned(), slot_ts, seat };
        sender.send(ClaimRequest { seat, answer }).map_err(|_| ClaimError::Stopping)?;
        reply.await.unwrap_or(Err(ClaimError::Stopping))
    }

    /// Claims seats now, in one statement: those of `wanted` this node holds.
    ///
    /// # Errors
    /// The database refused the statement or did not answer.
    pub async fn claim_now(&self, wanted: &[Seat]) -> Result<HashSet<Seat>, ClaimError> {
        let now = crate::clock::now().to_string();
        self.claim_round_trips.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let began = std::time::Instant::now();
        let result = self.db.claim_many(wanted, &self.node, &now).await;
        self.metrics.claimed(began.elapsed().as_secs_f64());
        if let Some(times) = self.claim_times.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
            times.push(began.elapsed());
        }
        result.map_err(|e| ClaimError::Store(Arc::new(e)))
    }
}

/// Sends the queued claims in batches, one statement each, and answers them.
async fn claim_batches(
    member: std::sync::Weak<Member>,
    mut queue: tokio::sync::mpsc::UnboundedReceiver<ClaimRequest>,
) {
    while let Some(first) = queue.recv().await {
        // The jobs woken together (by the same slot, or the same grace) send their claims one
        // after the other, and the first wakes this task at once: letting the other woken
        // tasks run first puts their claims in this batch rather than in many small ones.
        tokio::task::yield_now().await;
        let mut batch = vec![first];
        while batch.len() < 1000 {
            match queue.try_recv() {
                Ok(more) => batch.push(more),
                Err(_) => break,
            }
        }
        let Some(member) = member.upgrade() else { return };
        let wanted: Vec<Seat> = batch.iter().map(|r| r.seat.clone()).collect();
        let result = member.claim_now(&wanted).await;
        for request in batch {
            let answer = match &result {
                Ok(got) => Ok(got.contains(&request.seat)),
                Err(e) => Err(e.clone()),
            };
            let _ = request.answer.send(answer);
        }
    }
}

impl Member {
    /// For a `run_on = N` task in a shared store: whether this node gets one of the slot's N
    /// seats. The top N nodes of the slot's rendezvous order claim at once; the next
    /// [`CLAIM_BACKUPS`] wait their turn, so they take a seat only when a preferred node did
    /// not; the others leave the slot to them.
    ///
    /// `next`: the task's next slot, claimed ahead of its time when this node is its
    /// preferred node (see [`super::ahead`]); a slot claimed so is this node's at once.
    pub async fn claim_seat(
        self: &Arc<Self>,
        task: &Arc<Task>,
        seats: u32,
        slot: &jiff::Zoned,
        next: Option<&jiff::Zoned>,
    ) -> bool {
        if let Some(next) = next {
            self.ahead.ask(self, task, seats, next);
        }
        let slot_ts = slot.timestamp().as_second();
        if let Some(Ok(true)) = self.ahead.take(&task.name, slot_ts).await {
            return true;
        }
        let rank = rank_among(task, slot_ts, &self.candidates(), &self.node) as u32;
        if rank >= seats + CLAIM_BACKUPS {
            return false;
        }
        if rank >= seats {
            // Counted from the slot, so that the backups of a slot on this node wake together
            // (one claim statement for all of them).
            let wait = backup_wait(rank - seats + 1, &self.node);
            let wake = slot.timestamp().checked_add(wait).unwrap_or(slot.timestamp());
            let left = crate::clock::now().duration_until(wake);
            tokio::time::sleep(Duration::try_from(left).unwrap_or_default()).await;
        }
        let fleet = &self.db;
        if fleet.away() {
            // Never run a slot without a claim; it is recorded as missed once the database is
            // back (unless another node claimed it).
            tracing::warn!(task = %task.name, slot = %slot, "the database is away: slot not claimed, not run");
            fleet.unclaimed(&task.name, slot, seats);
            return false;
        }
        let first = rank.min(seats - 1);
        for seat in (first..seats).chain(0..first) {
            match self.claim(&task.name, slot_ts, seat).await {
                Ok(true) => return true,
                Ok(false) => {}
                Err(e) => {
                    // A slot it could not claim is never run.
                    tracing::error!(task = %task.name, error = %e, "cannot claim the slot: not run");
                    fleet.unclaimed(&task.name, slot, seats);
                    return false;
                }
            }
        }
        false
    }
}

/// The claim of a `run_on` task's slot in a fleet, around everything else: a node that does
/// not get a seat of the slot leaves it (to the node that does), before any policy of its own
/// sees it. A slot handed over by another node (`retry_elsewhere`) is this node's already.
pub(in crate::agent) struct Claim {
    task: Arc<Task>,
    member: Arc<Member>,
}

impl Claim {
    /// The claim of `task`'s slots by this node.
    pub(in crate::agent) fn new(task: &Task, member: &Arc<Member>) -> Claim {
        Claim { task: Arc::new(task.clone()), member: member.clone() }
    }
}

impl Wrapper for Claim {
    fn wrap(&self, job: SharedJob) -> SharedJob {
        let (task, member) = (self.task.clone(), self.member.clone());
        Arc::new(move |ctx: RunContext| {
            let (job, task, member) = (job.clone(), task.clone(), member.clone());
            async move {
                let slot_ts = ctx.slot.timestamp().as_second();
                if let (Some(seats), None) = (task.run_on, member.handed(&task.name, slot_ts)) {
                    let next = match &task.kind {
                        crate::config::Kind::Cron(schedule) => schedule.next_after(&ctx.slot),
                        crate::config::Kind::Daemon => None,
                    };
                    if !member.claim_seat(&task, seats, &ctx.slot, next.as_ref()).await {
                        tracing::debug!(task = %task.name, slot = %ctx.slot, "slot taken by other nodes");
                        return Ok(());
                    }
                }
                job.run(ctx).await
            }
        })
    }
}
