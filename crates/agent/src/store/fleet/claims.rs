//! Claims: each seat of a `run_on` task's slot is held by exactly one node (the primary key
//! decides, whoever asks and whenever).

use std::collections::HashSet;

use sqlx::{any::AnyRow, Row};

use super::{Fleet, StoreError, SHARED_WRITE_TIMEOUT};

/// A seat of a `run_on` task's slot, claimed by a node (see [`Fleet::claim`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    /// The slot, in Unix seconds.
    pub slot_ts: i64,
    /// The seat (0 for `run_on = "one"`).
    pub seat: u32,
    /// The node that holds it.
    pub node: String,
    /// When it was claimed (RFC 3339).
    pub claimed_at: String,
}

/// One seat of one slot of a `run_on` task: what a node claims (seat 0 for `run_on =
/// "one"`; `run_on = N` has N seats).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Seat {
    /// The task.
    pub task: String,
    /// The slot, in Unix seconds.
    pub slot_ts: i64,
    /// The seat.
    pub seat: u32,
}

/// A seat number as the database holds it (BIGINT), back to a seat.
pub(super) fn seat_of(seat: i64) -> u32 {
    seat.clamp(0, i64::from(u32::MAX)) as u32
}

impl Fleet {
    /// [`Fleet::claim`] for many seats at once, in one statement (one round trip): the seats
    /// among `wanted` that are now `node`'s.
    ///
    /// The seats go as one JSON parameter, so that the statement's text is the same for
    /// every batch (prepared once per connection, planned once) instead of a `VALUES` list of
    /// five parameters a row that the server parses and plans anew for every batch size.
    ///
    /// # Errors
    /// When the database cannot be written (or, spooled, does not answer within 2 s).
    pub async fn claim_many(
        &self,
        wanted: &[Seat],
        node: &str,
        at: &str,
    ) -> Result<HashSet<Seat>, StoreError> {
        // Every node inserts in the same order (no deadlock between batches that overlap).
        let mut wanted = wanted.to_vec();
        wanted.sort();
        wanted.dedup();
        let seats: Vec<serde_json::Value> =
            wanted.iter().map(|s| serde_json::json!([s.task, s.slot_ts, s.seat])).collect();
        // Seats taken by others are left alone (not locked): new ones are inserted, and of
        // the others, those this node held already (from before this statement) are read,
        // each by its key (a lateral lookup: the planner cannot know how many seats the array
        // holds, and a join it planned for a guess could scan the whole table; for a seat
        // just inserted the lookup does not even run, a one-time filter, so the preferred
        // node's batch at the slot costs the server no lookups). Rows go in the array's
        // (sorted) order, so batches that overlap cannot deadlock.
        let sql = "WITH wanted AS (\
                 SELECT s->>0 AS task, (s->>1)::BIGINT AS slot_ts, (s->>2)::BIGINT AS seat \
                 FROM json_array_elements($1::json) AS s), \
             inserted AS (INSERT INTO claims (task, slot_ts, seat, node, claimed_at) \
                 SELECT task, slot_ts, seat, $2, $3 FROM wanted \
                 ON CONFLICT (task, slot_ts, seat) DO NOTHING RETURNING task, slot_ts, seat) \
             SELECT task, slot_ts, seat FROM inserted UNION ALL \
             SELECT w.task, w.slot_ts, w.seat FROM wanted w \
                 LEFT JOIN inserted i ON i.task = w.task AND i.slot_ts = w.slot_ts \
                     AND i.seat = w.seat \
                 CROSS JOIN LATERAL \
                 (SELECT 1 FROM claims c WHERE i.task IS NULL AND c.task = w.task \
                     AND c.slot_ts = w.slot_ts AND c.seat = w.seat AND c.node = $2 LIMIT 1) AS own";
        let fetch = sqlx::query(sql)
            .bind(serde_json::Value::Array(seats).to_string())
            .bind(node)
            .bind(at)
            .fetch_all(&self.store.pool);
        let mut got = HashSet::new();
        self.claimed(fetch, &mut got).await?;
        Ok(got)
    }

    /// Waits for a claim statement's rows (no longer than [`SHARED_WRITE_TIMEOUT`] when the
    /// store spools: an unreachable database is not waited for) and adds the (task, slot,
    /// seat) each names to `got`.
    async fn claimed(
        &self,
        fetch: impl std::future::Future<Output = Result<Vec<AnyRow>, sqlx::Error>>,
        got: &mut HashSet<Seat>,
    ) -> Result<(), StoreError> {
        let rows = match self.store.spool {
            None => fetch.await,
            Some(_) => tokio::time::timeout(SHARED_WRITE_TIMEOUT, fetch)
                .await
                .unwrap_or_else(|_| Err(sqlx::Error::PoolTimedOut)),
        }
        .map_err(self.store.sql())?;
        for row in rows {
            got.insert(Seat { task: row.get(0), slot_ts: row.get(1), seat: seat_of(row.get(2)) });
        }
        Ok(())
    }

    /// The claims of a task's slots, oldest slot first: who holds which seat, since when.
    ///
    /// # Errors
    /// When the database cannot be read.
    pub async fn claims(&self, task: &str) -> Result<Vec<Claim>, StoreError> {
        let rows = sqlx::query(
            "SELECT slot_ts, seat, node, claimed_at FROM claims WHERE task = $1 \
             ORDER BY slot_ts, seat",
        )
        .bind(task)
        .fetch_all(&self.store.pool)
        .await
        .map_err(self.store.sql())?;
        Ok(rows
            .iter()
            .map(|r| Claim {
                slot_ts: r.get(0),
                seat: seat_of(r.get(1)),
                node: r.get(2),
                claimed_at: r.get(3),
            })
            .collect())
    }

    /// The node holding seat `seat` of a task's slot, if any node claimed it.
    ///
    /// # Errors
    /// When the database cannot be read.
    pub async fn claim_holder(
        &self,
        task: &str,
        slot_ts: i64,
        seat: u32,
    ) -> Result<Option<String>, StoreError> {
        let row =
            sqlx::query("SELECT node FROM claims WHERE task = $1 AND slot_ts = $2 AND seat = $3")
                .bind(task)
                .bind(slot_ts)
                .bind(i64::from(seat))
                .fetch_optional(&self.store.pool)
                .await
                .map_err(self.store.sql())?;
        Ok(row.map(|r| r.get(0)))
    }

    /// Gives back seat `seat` of a task's slot, if `node` holds it: another node may claim it.
    ///
    /// # Errors
    /// When the database cannot be written.
    pub async fn unclaim(
        &self,
        task: &str,
        slot_ts: i64,
        seat: u32,
        node: &str,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "DELETE FROM claims WHERE task = $1 AND slot_ts = $2 AND seat = $3 AND node = $4",
        )
        .bind(task)
        .bind(slot_ts)
        .bind(i64::from(seat))
        .bind(node)
        .execute(&self.store.pool)
        .await
        .map_err(self.store.sql())?;
        Ok(done.rows_affected() == 1)
    }

    /// Claims seat `seat` of a task's slot for `node`: true for exactly one claimant per
    /// (task, slot, seat), whoever asks and whenever (the primary key decides). Asking again
    /// for a seat it holds answers true (a claim whose answer was lost is not lost). In a
    /// spooled store, a claim without an answer within 2 s is an error.
    ///
    /// # Errors
    /// When the database cannot be written.
    pub async fn claim(
        &self,
        task: &str,
        slot_ts: i64,
        seat: u32,
        node: &str,
        at: &str,
    ) -> Result<bool, StoreError> {
        let wanted = [Seat { task: task.to_owned(), slot_ts, seat }];
        Ok(!self.claim_many(&wanted, node, at).await?.is_empty())
    }
}
