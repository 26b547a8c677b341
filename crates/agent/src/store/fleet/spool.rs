//! The spool: where an agent keeps what it could not write to a shared database while the
//! database was away, and moves it there when it is back.

use std::{
    path::Path,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
};

use sqlx::Row;

use super::{Fleet, Store, StoreError, SHARED_WRITE_TIMEOUT};
use crate::store::{Outcome, RunFilter, RunRecord};

/// Where an agent keeps what it could not write to a shared database while the database was
/// away: run records in a SQLite file of its own, and the slots of `run_on` tasks it could not
/// claim (never run; recorded as missed when the database is back, unless another node ran
/// them).
#[derive(Debug)]
pub(in crate::store) struct Spool {
    local: Store,
    away: AtomicBool,
    unclaimed: std::sync::Mutex<Vec<Unclaimed>>,
    flushing: tokio::sync::Mutex<()>,
}

/// A slot of a `run_on` task that could not be claimed.
#[derive(Clone, Debug)]
struct Unclaimed {
    task: String,
    slot: jiff::Zoned,
    seats: u32,
}

/// At most this many unclaimed slots are remembered (the oldest are forgotten first).
const UNCLAIMED_MAX: usize = 100_000;

/// What [`Fleet::flush`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flushed {
    /// Run records moved from the spool to the database.
    pub runs: u64,
    /// Slots nobody could claim, now recorded as missed.
    pub missed: u64,
}

/// Whether an error means the database could not be reached (rather than refusing the query).
fn unreachable(e: &StoreError) -> bool {
    let StoreError::Sql { source, .. } = e else { return false };
    match source {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => true,
        // Connection exceptions, the server shutting down or starting, out of resources.
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|c| c.starts_with("08") || c.starts_with("57") || c.starts_with("53")),
        _ => false,
    }
}

impl Spool {
    /// Writes a run to the shared database, or here while it is away (no answer within
    /// [`SHARED_WRITE_TIMEOUT`] is away too: a partition can leave a connection hanging).
    pub(in crate::store) async fn put(
        &self,
        store: &Store,
        r: &RunRecord,
    ) -> Result<(), StoreError> {
        if !self.away.load(Ordering::SeqCst) {
            let error = match tokio::time::timeout(SHARED_WRITE_TIMEOUT, store.put_here(r)).await {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(e)) if !unreachable(&e) => return Err(e),
                Ok(Err(e)) => e.to_string(),
                Err(_) => format!("no answer within {}s", SHARED_WRITE_TIMEOUT.as_secs()),
            };
            if !self.away.swap(true, Ordering::SeqCst) {
                tracing::warn!(
                    database = %store.path,
                    error,
                    "the database is away: runs are kept in the local spool until it is back"
                );
            }
        }
        self.local.put_here(r).await
    }
}

impl Store {
    /// Gives a shared store a spool in `dir` (a SQLite file of this node's): from then on, a
    /// run record the database cannot take (it is away, or does not answer within 2 s) goes
    /// to the spool, and [`Fleet::flush`] moves it to the database when it is back. Runs of
    /// `node` left `running` in the spool (the agent died) are marked abandoned.
    ///
    /// # Errors
    /// When the spool cannot be opened.
    pub async fn with_spool(mut self, dir: &Path, node: &str) -> Result<Store, StoreError> {
        let local = Store::open(dir).await?;
        local.abandon_running(node, &crate::clock::now().to_string()).await?;
        self.spool = Some(Arc::new(Spool {
            local,
            away: AtomicBool::new(false),
            unclaimed: std::sync::Mutex::default(),
            flushing: tokio::sync::Mutex::default(),
        }));
        Ok(self)
    }
}

impl Fleet {
    /// Whether the shared database was away at the last write (runs are being spooled).
    pub fn away(&self) -> bool {
        self.store.spool.as_ref().is_some_and(|s| s.away.load(Ordering::SeqCst))
    }

    /// Remembers a slot of a `run_on` task that could not be claimed (and so was not run):
    /// when the database is back, [`Fleet::flush`] records it as missed unless a node claimed
    /// it.
    pub fn unclaimed(&self, task: &str, slot: &jiff::Zoned, seats: u32) {
        let Some(spool) = &self.store.spool else { return };
        let mut list = spool.unclaimed.lock().unwrap_or_else(|p| p.into_inner());
        if list.len() >= UNCLAIMED_MAX {
            list.remove(0);
        }
        list.push(Unclaimed { task: task.to_owned(), slot: slot.clone(), seats });
    }

    /// When the database answers again: moves the spooled run records into it (a record the
    /// database already has in a later state is left alone, so nothing is duplicated or
    /// rolled back) and records the slots nobody could claim as missed (once in the fleet:
    /// the node that claims the free seats records it). Does nothing while it is still away.
    ///
    /// # Errors
    /// When the database fails midway (what was not moved stays spooled).
    pub async fn flush(&self, node: &str) -> Result<Flushed, StoreError> {
        let Some(spool) = &self.store.spool else { return Ok(Flushed::default()) };
        let _one = spool.flushing.lock().await;
        let pending = !spool.unclaimed.lock().unwrap_or_else(|p| p.into_inner()).is_empty();
        let spooled: bool = sqlx::query("SELECT EXISTS (SELECT 1 FROM runs)")
            .fetch_one(&spool.local.pool)
            .await
            .map_err(spool.local.sql())?
            .try_get::<i64, _>(0)
            .is_ok_and(|n| n != 0);
        if !spool.away.load(Ordering::SeqCst) && !pending && !spooled {
            return Ok(Flushed::default());
        }
        let probe = sqlx::query("SELECT 1").execute(&self.store.pool);
        match tokio::time::timeout(SHARED_WRITE_TIMEOUT, probe).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(self.store.sql()(e)),
            Err(_) => {
                let message = "no answer".to_owned();
                return Err(self.store.sql()(sqlx::Error::Protocol(message)));
            }
        }
        let mut flushed = Flushed::default();
        loop {
            let batch = spool.local.runs(&RunFilter { limit: 500, ..RunFilter::default() }).await?;
            if batch.is_empty() {
                break;
            }
            for run in &batch {
                self.store.put_here(run).await?;
                // Only if the spool still holds this state of the run (it may have ended
                // meanwhile, spooled again).
                sqlx::query("DELETE FROM runs WHERE id = $1 AND outcome = $2")
                    .bind(&run.id)
                    .bind(run.outcome.as_str())
                    .execute(&spool.local.pool)
                    .await
                    .map_err(spool.local.sql())?;
                flushed.runs += 1;
            }
        }
        let unclaimed =
            std::mem::take(&mut *spool.unclaimed.lock().unwrap_or_else(|p| p.into_inner()));
        let now = crate::clock::now().to_string();
        for (i, slot) in unclaimed.iter().enumerate() {
            let slot_ts = slot.slot.timestamp().as_second();
            let mut took = false;
            for seat in 0..slot.seats {
                match self.claim(&slot.task, slot_ts, seat, node, &now).await {
                    Ok(got) => took |= got,
                    Err(e) => {
                        // Keep the rest for the next flush.
                        let mut list = spool.unclaimed.lock().unwrap_or_else(|p| p.into_inner());
                        list.extend(unclaimed[i..].iter().cloned());
                        return Err(e);
                    }
                }
            }
            if took {
                let reason = "the slot could not be claimed: the database was away".to_owned();
                let record =
                    RunRecord::not_run(&slot.task, &slot.slot, Outcome::Missed, reason, node, true);
                self.store.put_here(&record).await?;
                flushed.missed += 1;
            }
        }
        spool.away.store(false, Ordering::SeqCst);
        Ok(flushed)
    }
}
