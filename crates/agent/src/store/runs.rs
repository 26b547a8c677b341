//! Runs: one row per run, or per slot that had none (skipped, missed); listing, paging,
//! retention.

use std::str::FromStr;

use sqlx::{any::AnyRow, Row};

use super::{Store, StoreError};

/// How a run ended (or why a slot had no run). Its serde names, which are
/// [`Outcome::as_str`]'s, are what the store keeps and the API shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Still going.
    Running,
    /// Exit code 0.
    Succeeded,
    /// Non-zero exit, killed by a signal, or could not start.
    Failed,
    /// Stopped by its timeout.
    TimedOut,
    /// Stopped on request (stop, replace, kill).
    Killed,
    /// Not run by policy (the previous run was still going).
    Skipped,
    /// Not run: the agent could not fire it in time.
    Missed,
    /// Was running when the agent died.
    Abandoned,
    /// Was running on a node that went silent (shared store).
    Lost,
}

impl Outcome {
    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Running => "running",
            Outcome::Succeeded => "succeeded",
            Outcome::Failed => "failed",
            Outcome::TimedOut => "timed_out",
            Outcome::Killed => "killed",
            Outcome::Skipped => "skipped",
            Outcome::Missed => "missed",
            Outcome::Abandoned => "abandoned",
            Outcome::Lost => "lost",
        }
    }
}

/// A name that is no [`Outcome`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown outcome {0:?}")]
pub struct UnknownOutcome(pub String);

impl FromStr for Outcome {
    type Err = UnknownOutcome;

    fn from_str(s: &str) -> Result<Outcome, UnknownOutcome> {
        Ok(match s {
            "running" => Outcome::Running,
            "succeeded" => Outcome::Succeeded,
            "failed" => Outcome::Failed,
            "timed_out" => Outcome::TimedOut,
            "killed" => Outcome::Killed,
            "skipped" => Outcome::Skipped,
            "missed" => Outcome::Missed,
            "abandoned" => Outcome::Abandoned,
            "lost" => Outcome::Lost,
            other => return Err(UnknownOutcome(other.to_owned())),
        })
    }
}

/// One run (or a slot without one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunRecord {
    /// Unique: `task@slot#attempt`.
    pub id: String,
    /// The task.
    pub task: String,
    /// The slot, RFC 3339 with offset.
    pub slot: String,
    /// The slot in Unix seconds (for ordering and catch-up).
    pub slot_ts: i64,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// The node that ran it.
    pub node: String,
    /// RFC 3339, when it started (empty for skipped and missed slots).
    pub started_at: String,
    /// RFC 3339, when it ended.
    pub ended_at: Option<String>,
    /// Milliseconds.
    pub duration_ms: Option<i64>,
    /// Exit code, when it exited.
    pub exit_code: Option<i32>,
    /// The signal that ended it.
    pub signal: Option<i32>,
    /// User plus system CPU, milliseconds.
    pub cpu_ms: Option<i64>,
    /// Peak resident memory, bytes.
    pub max_rss: Option<i64>,
    /// How it ended.
    pub outcome: Outcome,
    /// Captured output (capped by the task's `output_limit`).
    pub output: Vec<u8>,
    /// Bytes of output dropped.
    pub output_dropped: i64,
    /// Why, for skipped, missed, failed-to-start.
    pub reason: Option<String>,
}

impl RunRecord {
    /// A record with no result yet: what a run starting, or a slot not run, begins as.
    pub fn new(
        id: String,
        task: &str,
        slot: &jiff::Zoned,
        attempt: u32,
        node: &str,
        outcome: Outcome,
    ) -> RunRecord {
        RunRecord {
            id,
            task: task.to_owned(),
            slot: slot.timestamp().display_with_offset(slot.offset()).to_string(),
            slot_ts: slot.timestamp().as_second(),
            attempt,
            node: node.to_owned(),
            started_at: String::new(),
            ended_at: None,
            duration_ms: None,
            exit_code: None,
            signal: None,
            cpu_ms: None,
            max_rss: None,
            outcome,
            output: Vec::new(),
            output_dropped: 0,
            reason: None,
        }
    }

    /// A slot that had no run: skipped by a policy, or missed.
    pub fn not_run(
        task: &str,
        slot: &jiff::Zoned,
        outcome: Outcome,
        reason: String,
        node: &str,
        shared: bool,
    ) -> RunRecord {
        let id = match shared {
            true => format!("{task}@{}#{}@{node}", slot_key(slot), outcome.as_str()),
            false => format!("{task}@{}#{}", slot_key(slot), outcome.as_str()),
        };
        RunRecord { reason: Some(reason), ..RunRecord::new(id, task, slot, 0, node, outcome) }
    }
}

/// A slot in run ids: Unix seconds, with milliseconds when it has any (a run started by hand).
fn slot_key(slot: &jiff::Zoned) -> String {
    let t = slot.timestamp();
    match t.subsec_millisecond() {
        0 => t.as_second().to_string(),
        ms => format!("{}.{ms:03}", t.as_second()),
    }
}

/// The id of a run: `TASK@SLOT#ATTEMPT`, unique per task, slot and attempt on one node; in a
/// store shared by several nodes, `TASK@SLOT#ATTEMPT@NODE`.
pub fn run_id(task: &str, slot: &jiff::Zoned, attempt: u32, shared_by: Option<&str>) -> String {
    match shared_by {
        Some(node) => format!("{task}@{}#{attempt}@{node}", slot_key(slot)),
        None => format!("{task}@{}#{attempt}", slot_key(slot)),
    }
}

/// Which runs to list.
#[derive(Clone, Debug, Default)]
pub struct RunFilter {
    /// Only this task.
    pub task: Option<String>,
    /// Only this outcome.
    pub outcome: Option<Outcome>,
    /// Only slots at or after this (Unix seconds).
    pub since: Option<i64>,
    /// Only slots before this (Unix seconds).
    pub until: Option<i64>,
    /// Only runs after this one in the listing's order (a [`RunPage::next`] cursor).
    pub cursor: Option<String>,
    /// At most this many, newest first (0: 50).
    pub limit: u32,
    /// Leave the output out (listings).
    pub without_output: bool,
}

/// One page of runs.
#[derive(Clone, Debug)]
pub struct RunPage {
    /// The runs, newest slot first.
    pub runs: Vec<RunRecord>,
    /// Where the next page starts, when there may be one.
    pub next: Option<String>,
}

/// The columns of `runs`, with the output left out (NULL).
pub(crate) const WITHOUT_OUTPUT: &str = "id, task, slot, slot_ts, attempt, node, started_at, ended_at, \
    duration_ms, exit_code, signal, cpu_ms, max_rss, outcome, NULL AS output, output_dropped, reason";

/// A cursor is the last listed run's slot and id (hex, so the cursor is safe in a URL); it is
/// opaque to clients.
fn cursor(run: &RunRecord) -> String {
    format!("{}.{}", run.slot_ts, hex::encode(&run.id))
}

/// The slot and id of a cursor, or `None` when it is not one: exactly what the API documents
/// (`^-?[0-9]{1,18}\.([0-9a-fA-F]{2})*$`), an id that is not UTF-8 read lossily (it matches
/// no run, and the page starts where it would be).
pub fn parse_cursor(cursor: &str) -> Option<(i64, String)> {
    let (ts, id) = cursor.split_once('.')?;
    let digits = ts.strip_prefix('-').unwrap_or(ts);
    if digits.is_empty() || digits.len() > 18 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((ts.parse().ok()?, String::from_utf8_lossy(&hex::decode(id).ok()?).into_owned()))
}

impl Store {
    /// Writes a run (insert, or replace the row with the same id); in a shared store with a
    /// spool, to the spool while the database is away.
    ///
    /// # Errors
    /// When the database cannot be written.
    pub async fn put(&self, r: &RunRecord) -> Result<(), StoreError> {
        match &self.spool {
            Some(spool) => spool.put(self, r).await,
            None => self.put_here(r).await,
        }
    }

    /// Writes a run here (never to the spool). A finished run's record is never replaced by
    /// a `running` one (a spooled start arriving after the end).
    pub(super) async fn put_here(&self, r: &RunRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO runs (id, task, slot, slot_ts, attempt, node, started_at, ended_at, \
             duration_ms, exit_code, signal, cpu_ms, max_rss, outcome, output, output_dropped, reason) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17) \
             ON CONFLICT (id) DO UPDATE SET task = excluded.task, slot = excluded.slot, \
             slot_ts = excluded.slot_ts, attempt = excluded.attempt, node = excluded.node, \
             started_at = excluded.started_at, ended_at = excluded.ended_at, \
             duration_ms = excluded.duration_ms, exit_code = excluded.exit_code, \
             signal = excluded.signal, cpu_ms = excluded.cpu_ms, max_rss = excluded.max_rss, \
             outcome = excluded.outcome, output = excluded.output, \
             output_dropped = excluded.output_dropped, reason = excluded.reason \
             WHERE runs.outcome = 'running' OR excluded.outcome <> 'running'",
        )
        .bind(&r.id)
        .bind(&r.task)
        .bind(&r.slot)
        .bind(r.slot_ts)
        .bind(i64::from(r.attempt))
        .bind(&r.node)
        .bind(&r.started_at)
        .bind(&r.ended_at)
        .bind(r.duration_ms)
        .bind(r.exit_code.map(i64::from))
        .bind(r.signal.map(i64::from))
        .bind(r.cpu_ms)
        .bind(r.max_rss)
        .bind(r.outcome.as_str())
        .bind(&r.output)
        .bind(r.output_dropped)
        .bind(&r.reason)
        .execute(&self.pool)
        .await
        .map_err(self.sql())?;
        Ok(())
    }

    /// Deletes finished runs older than `before` (Unix seconds of their slot) and, per task,
    /// all but the newest `keep_per_task`; returns how many were deleted.
    ///
    /// # Errors
    /// When the database cannot be written.
    pub async fn prune(&self, keep_per_task: u32, before: i64) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "DELETE FROM runs WHERE outcome <> 'running' AND (slot_ts < $1 OR id IN ( \
                 SELECT id FROM (SELECT id, ROW_NUMBER() OVER ( \
                     PARTITION BY task ORDER BY slot_ts DESC, attempt DESC) AS n FROM runs) AS ranked \
                 WHERE n > $2))",
        )
        .bind(before)
        .bind(i64::from(keep_per_task))
        .execute(&self.pool)
        .await
        .map_err(self.sql())?;
        Ok(done.rows_affected())
    }

    /// Marks run `id`, if still `running`, as abandoned for `reason` (its agent died and the
    /// next one ended what it left running); whether it was.
    ///
    /// # Errors
    /// When the database cannot be written.
    pub async fn abandon_run(
        &self,
        id: &str,
        ended_at: &str,
        reason: &str,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE runs SET outcome = 'abandoned', ended_at = $1, reason = $2 \
             WHERE id = $3 AND outcome = 'running'",
        )
        .bind(ended_at)
        .bind(reason)
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(self.sql())?;
        Ok(done.rows_affected() == 1)
    }

    /// Marks runs of `node` still `running` (it died during them) as abandoned; how many.
    ///
    /// # Errors
    /// When the database cannot be written.
    pub async fn abandon_running(&self, node: &str, ended_at: &str) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE runs SET outcome = 'abandoned', ended_at = $1, \
             reason = COALESCE(reason, 'the agent stopped during the run') \
             WHERE outcome = 'running' AND node = $2",
        )
        .bind(ended_at)
        .bind(node)
        .execute(&self.pool)
        .await
        .map_err(self.sql())?;
        Ok(done.rows_affected())
    }

    /// The latest slot recorded for a task, in Unix seconds: on `node` only, or (`None`) on
    /// any node.
    ///
    /// # Errors
    /// When the database cannot be read.
    pub async fn last_slot(
        &self,
        task: &str,
        node: Option<&str>,
    ) -> Result<Option<i64>, StoreError> {
        // One statement per case: each reads the (task, slot) index from its end.
        let row = match node {
            Some(node) => {
                sqlx::query("SELECT MAX(slot_ts) FROM runs WHERE task = $1 AND node = $2")
                    .bind(task)
                    .bind(node)
                    .fetch_one(&self.pool)
                    .await
            }
            None => {
                sqlx::query("SELECT MAX(slot_ts) FROM runs WHERE task = $1")
                    .bind(task)
                    .fetch_one(&self.pool)
                    .await
            }
        }
        .map_err(self.sql())?;
        Ok(row.try_get::<Option<i64>, _>(0).ok().flatten())
    }

    /// The latest slot recorded for each task (any node, any outcome), among slots at or
    /// after `since` (Unix seconds).
    ///
    /// # Errors
    /// When the database cannot be read.
    pub async fn latest_slots(
        &self,
        since: i64,
    ) -> Result<std::collections::HashMap<String, i64>, StoreError> {
        let rows =
            sqlx::query("SELECT task, MAX(slot_ts) FROM runs WHERE slot_ts >= $1 GROUP BY task")
                .bind(since)
                .fetch_all(&self.pool)
                .await
                .map_err(self.sql())?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// Runs, newest slot first: at most `filter.limit` of them.
    ///
    /// # Errors
    /// When the database cannot be read.
    pub async fn runs(&self, filter: &RunFilter) -> Result<Vec<RunRecord>, StoreError> {
        Ok(self.page(filter).await?.runs)
    }

    /// A page of runs, newest slot first, and the cursor of the next page.
    ///
    /// # Errors
    /// When the database cannot be read.
    pub async fn page(&self, filter: &RunFilter) -> Result<RunPage, StoreError> {
        let limit = if filter.limit == 0 { 50 } else { filter.limit };
        let columns = if filter.without_output { WITHOUT_OUTPUT } else { "*" };
        let after = filter.cursor.as_deref().and_then(parse_cursor);
        let (sql, binds) = list_statement(columns, filter, after.as_ref(), limit);
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for bind in binds {
            query = match bind {
                Bind::Text(text) => query.bind(text),
                Bind::Int(n) => query.bind(n),
            };
        }
        let rows = query.fetch_all(&self.pool).await.map_err(self.sql())?;
        let runs: Vec<RunRecord> = rows.iter().map(record).collect();
        let next = (runs.len() == limit as usize).then(|| runs.last().map(cursor)).flatten();
        Ok(RunPage { runs, next })
    }

    /// The newest `n` runs of every task, without output, newest first within each task.
    ///
    /// # Errors
    /// When the database cannot be read.
    pub async fn recent_by_task(&self, n: u32) -> Result<Vec<RunRecord>, StoreError> {
        let sql = format!(
            "SELECT {WITHOUT_OUTPUT} FROM (SELECT *, ROW_NUMBER() OVER ( \
                 PARTITION BY task ORDER BY slot_ts DESC, id DESC) AS n FROM runs) AS ranked \
             WHERE n <= $1 ORDER BY task, slot_ts DESC, id DESC"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(i64::from(n))
            .fetch_all(&self.pool)
            .await
            .map_err(self.sql())?;
        Ok(rows.iter().map(record).collect())
    }

    /// One run by id.
    ///
    /// # Errors
    /// When the database cannot be read.
    pub async fn run(&self, id: &str) -> Result<Option<RunRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM runs WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(self.sql())?;
        Ok(row.as_ref().map(record))
    }
}

/// A run from its row.
pub(super) fn record(row: &AnyRow) -> RunRecord {
    let int = |name: &str| row.try_get::<Option<i64>, _>(name).ok().flatten();
    RunRecord {
        id: row.get("id"),
        task: row.get("task"),
        slot: row.get("slot"),
        slot_ts: int("slot_ts").unwrap_or(0),
        attempt: int("attempt").unwrap_or(0) as u32,
        node: row.get("node"),
        started_at: row.get("started_at"),
        ended_at: row.get("ended_at"),
        duration_ms: int("duration_ms"),
        exit_code: int("exit_code").map(|c| c as i32),
        signal: int("signal").map(|s| s as i32),
        cpu_ms: int("cpu_ms"),
        max_rss: int("max_rss"),
        outcome: row.get::<String, _>("outcome").parse().unwrap_or(Outcome::Failed),
        output: row.try_get::<Option<Vec<u8>>, _>("output").ok().flatten().unwrap_or_default(),
        output_dropped: int("output_dropped").unwrap_or(0),
        reason: row.get("reason"),
    }
}

/// A value bound to a list statement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Bind {
    Text(String),
    Int(i64),
}

/// The statement of a page of runs for `filter`, and its values in order: only the conditions
/// the filter has (no catch-all `$1 IS NULL OR ...`, which keeps the planner off the indexes),
/// so that each reads an index on (task | outcome, slot, id) or (slot, id) in its own order.
pub(crate) fn list_statement(
    columns: &str,
    filter: &RunFilter,
    after: Option<&(i64, String)>,
    limit: u32,
) -> (String, Vec<Bind>) {
    let mut conditions = Vec::new();
    let mut binds = Vec::new();
    let next = |bind: Bind, binds: &mut Vec<Bind>| {
        binds.push(bind);
        format!("${}", binds.len())
    };
    if let Some(task) = &filter.task {
        let p = next(Bind::Text(task.clone()), &mut binds);
        conditions.push(format!("task = {p}"));
    }
    if let Some(outcome) = filter.outcome {
        let p = next(Bind::Text(outcome.as_str().to_owned()), &mut binds);
        conditions.push(format!("outcome = {p}"));
    }
    if let Some(since) = filter.since {
        let p = next(Bind::Int(since), &mut binds);
        conditions.push(format!("slot_ts >= {p}"));
    }
    if let Some(until) = filter.until {
        let p = next(Bind::Int(until), &mut binds);
        conditions.push(format!("slot_ts < {p}"));
    }
    if let Some((slot, id)) = after {
        let s = next(Bind::Int(*slot), &mut binds);
        let i = next(Bind::Text(id.clone()), &mut binds);
        // A row value: one range on the index (slot, id), where an OR would not be.
        conditions.push(format!("(slot_ts, id) < ({s}, {i})"));
    }
    let limit = next(Bind::Int(i64::from(limit)), &mut binds);
    let filter = if conditions.is_empty() {
        String::new()
    } else {
        format!("WHERE {} ", conditions.join(" AND "))
    };
    let sql =
        format!("SELECT {columns} FROM runs {filter}ORDER BY slot_ts DESC, id DESC LIMIT {limit}");
    (sql, binds)
}
