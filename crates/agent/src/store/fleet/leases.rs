//! Fleet-wide run leases: at most N runs of a task at once across the fleet (`forbid`,
//! `max_running`); a lease expires, so a dead holder's seat comes free.

use super::{Fleet, StoreError};

impl Fleet {
    /// Takes one of a task's `seats` fleet-wide run leases for `run_id` until `expires_at`
    /// (Unix seconds): a free seat, or one whose lease expired (its holder died). Returns the
    /// seat, or `None` when all are held.
    ///
    /// # Errors
    /// When the database cannot be written.
    pub async fn lease(
        &self,
        task: &str,
        seats: u32,
        node: &str,
        run_id: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<Option<u32>, StoreError> {
        for seat in 0..seats {
            let done = sqlx::query(
                "INSERT INTO leases (task, seat, node, run_id, expires_at) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (task, seat) DO UPDATE SET node = excluded.node, \
                 run_id = excluded.run_id, expires_at = excluded.expires_at \
                 WHERE leases.expires_at < $6",
            )
            .bind(task)
            .bind(i64::from(seat))
            .bind(node)
            .bind(run_id)
            .bind(expires_at)
            .bind(now)
            .execute(&self.store.pool)
            .await
            .map_err(self.store.sql())?;
            if done.rows_affected() == 1 {
                return Ok(Some(seat));
            }
        }
        Ok(None)
    }

    /// Extends a lease (`expires_at`), or gives it back (`None`); false when `run_id` does
    /// not hold it (any more).
    ///
    /// # Errors
    /// When the database cannot be written.
    pub async fn renew_lease(
        &self,
        task: &str,
        seat: u32,
        run_id: &str,
        expires_at: Option<i64>,
    ) -> Result<bool, StoreError> {
        let query = match expires_at {
            Some(at) => sqlx::query(
                "UPDATE leases SET expires_at = $1 WHERE task = $2 AND seat = $3 AND run_id = $4",
            )
            .bind(at),
            None => sqlx::query("DELETE FROM leases WHERE task = $1 AND seat = $2 AND run_id = $3"),
        };
        let done = query
            .bind(task)
            .bind(i64::from(seat))
            .bind(run_id)
            .execute(&self.store.pool)
            .await
            .map_err(self.store.sql())?;
        Ok(done.rows_affected() == 1)
    }
}
