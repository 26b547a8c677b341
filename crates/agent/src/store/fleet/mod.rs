//! What exists only when several agents share a PostgreSQL store: claims of `run_on` slots,
//! fleet-wide run leases, handoffs of failed or lost slots, the chores' leader lock, the
//! change feed and the spool that keeps run records while the database is away.
//!
//! A [`Fleet`] is had only from [`Store::fleet`], which gives none for SQLite: the single-node
//! path holds no fleet and so cannot take a fleet branch.

use std::time::Duration;

use sqlx::Row;

use super::{
    runs::{record, WITHOUT_OUTPUT},
    RunRecord, Store, StoreError,
};

mod changes;
mod claims;
mod handoffs;
mod leases;
mod spool;
#[cfg(test)]
mod tests;

pub use claims::{Claim, Seat};
pub use handoffs::Handoff;
pub use spool::Flushed;
pub(super) use spool::Spool;

/// The advisory lock the fleet's chores run under.
const CHORES_LOCK: i64 = 0x6372_6f6e_6368_6f72; // "cronchor"

/// How long one write to a shared database may take before the agent treats the database as
/// away (a partition can leave a connection hanging rather than failing).
const SHARED_WRITE_TIMEOUT: Duration = Duration::from_secs(2);

/// The fleet's part of a shared store (a cheap handle: clones share the pool and the spool).
#[derive(Clone, Debug)]
pub struct Fleet {
    store: Store,
}

/// Held by the node that does the fleet's chores (see [`Fleet::try_lead`]).
#[derive(Debug)]
pub struct Leader(sqlx::AnyConnection);

impl Leader {
    /// Whether it still leads: the connection holding the lock still answers (when it broke,
    /// the database released the lock, and another node may lead now). No answer soon (a
    /// partition) is not holding it either.
    pub async fn holds(&mut self) -> bool {
        let ping = sqlx::query("SELECT 1").execute(&mut self.0);
        matches!(tokio::time::timeout(SHARED_WRITE_TIMEOUT, ping).await, Ok(Ok(_)))
    }
}

impl Fleet {
    pub(super) fn new(store: Store) -> Fleet {
        Fleet { store }
    }

    /// The store this is the fleet's part of.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Whether this process should do the fleet's chores (retention, lost runs): whoever
    /// holds an advisory lock on a connection of its own, kept for as long as the returned
    /// guard lives (a dead leader's connection closes and frees it).
    ///
    /// # Errors
    /// When the database cannot be reached.
    pub async fn try_lead(&self) -> Result<Option<Leader>, StoreError> {
        let mut conn = self.store.pool.acquire().await.map_err(self.store.sql())?.detach();
        let got: bool = sqlx::query("SELECT pg_try_advisory_lock($1)")
            .bind(CHORES_LOCK)
            .fetch_one(&mut conn)
            .await
            .map_err(self.store.sql())?
            .get(0);
        if got {
            // A leader cut off from the database (a partition, no TCP reset) must not keep the
            // lock: the server ends the session when it stays silent for longer than the
            // leader's pings are apart (PostgreSQL 14 and later).
            let _ = sqlx::query("SET idle_session_timeout = '15s'").execute(&mut conn).await;
        }
        Ok(got.then(|| Leader(conn)))
    }

    /// Marks the runs still `running` on these nodes (silent for too long) as lost, frees
    /// their run leases, and returns them.
    ///
    /// # Errors
    /// When the database cannot be written.
    pub async fn lose_runs(
        &self,
        nodes: &[String],
        ended_at: &str,
    ) -> Result<Vec<RunRecord>, StoreError> {
        let mut lost = Vec::new();
        for node in nodes {
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE runs SET outcome = 'lost', ended_at = $1 WHERE outcome = 'running' \
                 AND node = $2 RETURNING {WITHOUT_OUTPUT}"
            )))
            .bind(ended_at)
            .bind(node)
            .fetch_all(&self.store.pool)
            .await
            .map_err(self.store.sql())?;
            lost.extend(rows.iter().map(record));
            // Their fleet-wide run leases go with them (a daemon's lease is not a run's: it
            // expires, so a node cut off has stopped its daemon before another starts it).
            sqlx::query(
                "DELETE FROM leases WHERE node = $1 AND run_id IN \
                 (SELECT id FROM runs WHERE node = $1 AND outcome = 'lost')",
            )
            .bind(node)
            .execute(&self.store.pool)
            .await
            .map_err(self.store.sql())?;
        }
        Ok(lost)
    }

    /// Retention in a shared store: [`Store::prune`], then the claims and handoffs of slots
    /// before `before` (not needed any more).
    ///
    /// # Errors
    /// When the database cannot be written.
    pub async fn prune(&self, keep_per_task: u32, before: i64) -> Result<u64, StoreError> {
        let pruned = self.store.prune(keep_per_task, before).await?;
        for table in ["claims", "handoffs"] {
            sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {table} WHERE slot_ts < $1")))
                .bind(before)
                .execute(&self.store.pool)
                .await
                .map_err(self.store.sql())?;
        }
        Ok(pruned)
    }
}
