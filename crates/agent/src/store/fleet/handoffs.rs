//! Handoffs: a slot whose run failed or was lost, offered to the other nodes once
//! (`retry_elsewhere`), taken by exactly one.

use sqlx::Row;

use super::{claims::seat_of, Fleet, RunRecord, StoreError};

/// A slot handed over by another node, to be run here as its next attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Handoff {
    /// The task.
    pub task: String,
    /// The slot, in Unix seconds.
    pub slot_ts: i64,
    /// The attempt to run (one more than the one that failed or was lost).
    pub attempt: u32,
}

impl Fleet {
    /// Hands a slot whose run failed or was lost over to another node (`retry_elsewhere`):
    /// false when the slot was handed over already (once per slot).
    ///
    /// # Errors
    /// When the database cannot be written.
    pub async fn hand_off(
        &self,
        run: &RunRecord,
        reason: &str,
        at: &str,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO handoffs (task, slot_ts, attempt, from_node, reason, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (task, slot_ts) DO NOTHING",
        )
        .bind(&run.task)
        .bind(run.slot_ts)
        .bind(i64::from(run.attempt) + 1)
        .bind(&run.node)
        .bind(reason)
        .bind(at)
        .execute(&self.store.pool)
        .await
        .map_err(self.store.sql())?;
        Ok(done.rows_affected() == 1)
    }

    /// Slots handed over by other nodes and not taken yet, oldest first.
    ///
    /// # Errors
    /// When the database cannot be read.
    pub async fn handoffs(&self, node: &str) -> Result<Vec<Handoff>, StoreError> {
        let rows = sqlx::query(
            "SELECT task, slot_ts, attempt FROM handoffs WHERE taken_by IS NULL AND from_node <> $1 \
             ORDER BY slot_ts",
        )
        .bind(node)
        .fetch_all(&self.store.pool)
        .await
        .map_err(self.store.sql())?;
        Ok(rows
            .iter()
            .map(|r| Handoff { task: r.get(0), slot_ts: r.get(1), attempt: seat_of(r.get(2)) })
            .collect())
    }

    /// Offers a taken slot again (its taker could not run it).
    ///
    /// # Errors
    /// When the database cannot be written.
    pub async fn release_handoff(&self, task: &str, slot_ts: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE handoffs SET taken_by = NULL WHERE task = $1 AND slot_ts = $2")
            .bind(task)
            .bind(slot_ts)
            .execute(&self.store.pool)
            .await
            .map_err(self.store.sql())?;
        Ok(())
    }

    /// Takes a handed-over slot: true for exactly one node.
    ///
    /// # Errors
    /// When the database cannot be written.
    pub async fn take_handoff(
        &self,
        task: &str,
        slot_ts: i64,
        node: &str,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE handoffs SET taken_by = $1 WHERE task = $2 AND slot_ts = $3 \
             AND taken_by IS NULL AND from_node <> $1",
        )
        .bind(node)
        .bind(task)
        .bind(slot_ts)
        .execute(&self.store.pool)
        .await
        .map_err(self.store.sql())?;
        Ok(done.rows_affected() == 1)
    }
}
