//! Run history: an embedded SQLite database in the state directory.
//!
//! One row per run (or skipped/missed slot), written when the run starts and updated when it
//! ends, so a run that was going when the agent died is found at the next start and recorded
//! as abandoned. The schema is created and upgraded by migrations built into the binary
//! (`PRAGMA user_version` counts them); a database from a newer cronfleet is refused rather
//! than corrupted.

use std::{path::Path, str::FromStr, time::Duration};

use sqlx::{
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow},
    Row,
};

/// How a run ended (or why a slot had no run).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
        }
    }
}

impl FromStr for Outcome {
    type Err = String;

    fn from_str(s: &str) -> Result<Outcome, String> {
        Ok(match s {
            "running" => Outcome::Running,
            "succeeded" => Outcome::Succeeded,
            "failed" => Outcome::Failed,
            "timed_out" => Outcome::TimedOut,
            "killed" => Outcome::Killed,
            "skipped" => Outcome::Skipped,
            "missed" => Outcome::Missed,
            "abandoned" => Outcome::Abandoned,
            other => return Err(format!("unknown outcome {other:?}")),
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
    ) -> RunRecord {
        let id = format!("{task}@{}#{}", slot_key(slot), outcome.as_str());
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

/// The id of a run: `TASK@SLOT#ATTEMPT`, unique per task, slot and attempt.
pub fn run_id(task: &str, slot: &jiff::Zoned, attempt: u32) -> String {
    format!("{task}@{}#{attempt}", slot_key(slot))
}

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened, read or written.
    #[error("state database {path}: {source}")]
    Sql {
        /// The file.
        path: String,
        /// Why.
        source: sqlx::Error,
    },
    /// The database was written by a newer cronfleet.
    #[error(
        "state database {path} has schema version {found}, newer than this cronfleet knows ({known}); \
         refusing to use it (upgrade cronfleet, or point --state-dir elsewhere)"
    )]
    TooNew {
        /// The file.
        path: String,
        /// Its version.
        found: i64,
        /// Ours.
        known: i64,
    },
}

/// The migrations, in order; `user_version` is how many have been applied.
const MIGRATIONS: &[&str] = &[
    r#"
    CREATE TABLE runs (
        id             TEXT PRIMARY KEY,
        task           TEXT NOT NULL,
        slot           TEXT NOT NULL,
        slot_ts        INTEGER NOT NULL,
        attempt        INTEGER NOT NULL,
        node           TEXT NOT NULL,
        started_at     TEXT NOT NULL,
        ended_at       TEXT,
        duration_ms    INTEGER,
        exit_code      INTEGER,
        signal         INTEGER,
        cpu_ms         INTEGER,
        max_rss        INTEGER,
        outcome        TEXT NOT NULL,
        output         BLOB NOT NULL DEFAULT x'',
        output_dropped INTEGER NOT NULL DEFAULT 0,
        reason         TEXT
    );
    CREATE INDEX runs_by_task_slot ON runs (task, slot_ts);
    CREATE INDEX runs_by_slot ON runs (slot_ts);
"#,
    r#"
    CREATE TABLE paused (
        task  TEXT PRIMARY KEY,
        until TEXT
    );
"#,
    r#"
    CREATE TABLE api_tasks (
        name       TEXT PRIMARY KEY,
        definition TEXT NOT NULL,
        revision   INTEGER NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
"#,
];

/// A task created through the API, as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredTask {
    /// Its name.
    pub name: String,
    /// Its fields (the task file's names), as a JSON object.
    pub definition: serde_json::Value,
    /// 1 when created; each change adds 1.
    pub revision: i64,
    /// When it was created (RFC 3339).
    pub created_at: String,
    /// When it last changed.
    pub updated_at: String,
}

/// The run history of one agent.
#[derive(Clone, Debug)]
pub struct Store {
    pool: SqlitePool,
    path: String,
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

/// The columns of `runs`, with the output replaced by an empty blob.
const WITHOUT_OUTPUT: &str = "id, task, slot, slot_ts, attempt, node, started_at, ended_at, \
    duration_ms, exit_code, signal, cpu_ms, max_rss, outcome, x'' AS output, output_dropped, reason";

/// A cursor is the last listed run's slot and id (hex, so the cursor is safe in a URL); it is
/// opaque to clients.
fn cursor(run: &RunRecord) -> String {
    let hex: String = run.id.bytes().map(|b| format!("{b:02x}")).collect();
    format!("{}.{hex}", run.slot_ts)
}

/// The slot and id of a cursor, or `None` when it is not one.
pub fn parse_cursor(cursor: &str) -> Option<(i64, String)> {
    let (ts, hex) = cursor.split_once('.')?;
    if hex.len() % 2 != 0 || !hex.is_ascii() {
        return None;
    }
    let bytes: Option<Vec<u8>> =
        (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok()).collect();
    Some((ts.parse().ok()?, String::from_utf8(bytes?).ok()?))
}

impl Store {
    /// Opens (creating if needed) `state.db` in `dir`, and applies pending migrations.
    ///
    /// # Errors
    /// When the directory or database cannot be used, or the schema is newer than ours.
    pub async fn open(dir: &Path) -> Result<Store, StoreError> {
        let file = dir.join("state.db");
        let path = file.display().to_string();
        let sql = |source| StoreError::Sql { path: path.clone(), source };
        std::fs::create_dir_all(dir).map_err(|e| sql(sqlx::Error::Io(e)))?;
        // A database from a newer cronfleet is refused before anything touches it (switching to
        // WAL would already rewrite its header).
        if file.exists() {
            let (found, known, _) = Store::inspect(dir).await?;
            if found > known {
                return Err(StoreError::TooNew { path, found, known });
            }
        }
        let options = SqliteConnectOptions::new()
            .filename(&file)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(Duration::from_secs(5));
        let pool =
            SqlitePoolOptions::new().max_connections(4).connect_with(options).await.map_err(sql)?;
        let store = Store { pool, path };
        store.migrate().await?;
        Ok(store)
    }

    /// Looks at `state.db` in `dir` without changing it: its schema version, the version this
    /// binary knows, and how many runs it holds.
    ///
    /// # Errors
    /// When it cannot be opened or read.
    pub async fn inspect(dir: &Path) -> Result<(i64, i64, i64), StoreError> {
        let file = dir.join("state.db");
        let path = file.display().to_string();
        let sql = |source| StoreError::Sql { path: path.clone(), source };
        let options = SqliteConnectOptions::new().filename(&file).read_only(true);
        let pool =
            SqlitePoolOptions::new().max_connections(1).connect_with(options).await.map_err(sql)?;
        let version: i64 =
            sqlx::query("PRAGMA user_version").fetch_one(&pool).await.map_err(sql)?.get(0);
        let runs: i64 = if version >= 1 {
            sqlx::query("SELECT COUNT(*) FROM runs").fetch_one(&pool).await.map_err(sql)?.get(0)
        } else {
            0
        };
        pool.close().await;
        Ok((version, MIGRATIONS.len() as i64, runs))
    }

    fn sql(&self) -> impl Fn(sqlx::Error) -> StoreError + '_ {
        |source| StoreError::Sql { path: self.path.clone(), source }
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let version: i64 = sqlx::query("PRAGMA user_version")
            .fetch_one(&self.pool)
            .await
            .map_err(self.sql())?
            .get(0);
        let known = MIGRATIONS.len() as i64;
        if version > known {
            return Err(StoreError::TooNew { path: self.path.clone(), found: version, known });
        }
        for (i, migration) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let mut tx = self.pool.begin().await.map_err(self.sql())?;
            sqlx::raw_sql(*migration).execute(&mut *tx).await.map_err(self.sql())?;
            // A number we count ourselves: PRAGMA takes no bind parameters.
            let version = sqlx::AssertSqlSafe(format!("PRAGMA user_version = {}", i + 1));
            sqlx::raw_sql(version).execute(&mut *tx).await.map_err(self.sql())?;
            tx.commit().await.map_err(self.sql())?;
        }
        Ok(())
    }

    /// Writes a run (insert, or replace the row with the same id).
    ///
    /// # Errors
    /// When the database cannot be written.
    pub async fn put(&self, r: &RunRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT OR REPLACE INTO runs (id, task, slot, slot_ts, attempt, node, started_at, ended_at, \
             duration_ms, exit_code, signal, cpu_ms, max_rss, outcome, output, output_dropped, reason) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&r.id)
        .bind(&r.task)
        .bind(&r.slot)
        .bind(r.slot_ts)
        .bind(r.attempt)
        .bind(&r.node)
        .bind(&r.started_at)
        .bind(&r.ended_at)
        .bind(r.duration_ms)
        .bind(r.exit_code)
        .bind(r.signal)
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
            "DELETE FROM runs WHERE outcome != 'running' AND (slot_ts < ?1 OR id IN ( \
                 SELECT id FROM (SELECT id, ROW_NUMBER() OVER ( \
                     PARTITION BY task ORDER BY slot_ts DESC, attempt DESC) AS n FROM runs) \
                 WHERE n > ?2))",
        )
        .bind(before)
        .bind(keep_per_task)
        .execute(&self.pool)
        .await
        .map_err(self.sql())?;
        Ok(done.rows_affected())
    }

    /// Marks runs still `running` (the agent died during them) as abandoned; how many.
    ///
    /// # Errors
    /// When the database cannot be written.
    pub async fn abandon_running(&self, ended_at: &str) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE runs SET outcome = 'abandoned', ended_at = ? WHERE outcome = 'running'",
        )
        .bind(ended_at)
        .execute(&self.pool)
        .await
        .map_err(self.sql())?;
        Ok(done.rows_affected())
    }

    /// The latest slot recorded for a task, in Unix seconds.
    ///
    /// # Errors
    /// When the database cannot be read.
    pub async fn last_slot(&self, task: &str) -> Result<Option<i64>, StoreError> {
        let row = sqlx::query("SELECT MAX(slot_ts) FROM runs WHERE task = ?")
            .bind(task)
            .fetch_one(&self.pool)
            .await
            .map_err(self.sql())?;
        Ok(row.get(0))
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
        let sql = format!(
            "SELECT {columns} FROM runs WHERE (?1 IS NULL OR task = ?1) \
             AND (?2 IS NULL OR outcome = ?2) AND (?3 IS NULL OR slot_ts >= ?3) \
             AND (?4 IS NULL OR slot_ts < ?4) \
             AND (?5 IS NULL OR slot_ts < ?5 OR (slot_ts = ?5 AND id < ?6)) \
             ORDER BY slot_ts DESC, id DESC LIMIT ?7"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&filter.task)
            .bind(filter.outcome.map(Outcome::as_str))
            .bind(filter.since)
            .bind(filter.until)
            .bind(after.as_ref().map(|c| c.0))
            .bind(after.as_ref().map(|c| c.1.clone()))
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(self.sql())?;
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
                 PARTITION BY task ORDER BY slot_ts DESC, id DESC) AS n FROM runs) \
             WHERE n <= ?1 ORDER BY task, slot_ts DESC, id DESC"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(n)
            .fetch_all(&self.pool)
            .await
            .map_err(self.sql())?;
        Ok(rows.iter().map(record).collect())
    }

    /// The tasks created through the API.
    ///
    /// # Errors
    /// When the database cannot be read.
    pub async fn api_tasks(&self) -> Result<Vec<StoredTask>, StoreError> {
        let rows = sqlx::query(
            "SELECT name, definition, revision, created_at, updated_at FROM api_tasks ORDER BY created_at, name",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(self.sql())?;
        Ok(rows
            .iter()
            .map(|r| StoredTask {
                name: r.get(0),
                definition: serde_json::from_str(r.get::<&str, _>(1)).unwrap_or_default(),
                revision: r.get(2),
                created_at: r.get(3),
                updated_at: r.get(4),
            })
            .collect())
    }

    /// Writes an API task: a new one when `expected` is `None`, else only if its revision is
    /// still `expected`. Returns whether it was written (one transaction).
    ///
    /// # Errors
    /// When the database cannot be written.
    pub async fn put_api_task(
        &self,
        task: &StoredTask,
        expected: Option<i64>,
    ) -> Result<bool, StoreError> {
        let definition = task.definition.to_string();
        let done = match expected {
            None => sqlx::query(
                "INSERT OR IGNORE INTO api_tasks (name, definition, revision, created_at, updated_at) \
                 VALUES (?, ?, ?, ?, ?)",
            )
            .bind(&task.name)
            .bind(&definition)
            .bind(task.revision)
            .bind(&task.created_at)
            .bind(&task.updated_at),
            Some(revision) => sqlx::query(
                "UPDATE api_tasks SET definition = ?, revision = ?, updated_at = ? \
                 WHERE name = ? AND revision = ?",
            )
            .bind(&definition)
            .bind(task.revision)
            .bind(&task.updated_at)
            .bind(&task.name)
            .bind(revision),
        };
        let done = done.execute(&self.pool).await.map_err(self.sql())?;
        Ok(done.rows_affected() == 1)
    }

    /// Deletes an API task (and its pause), if its revision is `expected` (or any, `None`).
    /// Returns whether it was deleted.
    ///
    /// # Errors
    /// When the database cannot be written.
    pub async fn delete_api_task(
        &self,
        name: &str,
        expected: Option<i64>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(self.sql())?;
        let done =
            sqlx::query("DELETE FROM api_tasks WHERE name = ?1 AND (?2 IS NULL OR revision = ?2)")
                .bind(name)
                .bind(expected)
                .execute(&mut *tx)
                .await
                .map_err(self.sql())?;
        sqlx::query("DELETE FROM paused WHERE task = ?")
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(self.sql())?;
        tx.commit().await.map_err(self.sql())?;
        Ok(done.rows_affected() == 1)
    }

    /// The tasks paused by hand, with the instant each resumes by itself, if any.
    ///
    /// # Errors
    /// When the database cannot be read.
    pub async fn paused(&self) -> Result<Vec<(String, Option<String>)>, StoreError> {
        let rows = sqlx::query("SELECT task, until FROM paused")
            .fetch_all(&self.pool)
            .await
            .map_err(self.sql())?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// Records a task as paused (until an instant, or until resumed), or resumed (`None`).
    ///
    /// # Errors
    /// When the database cannot be written.
    pub async fn set_paused(
        &self,
        task: &str,
        paused: Option<Option<&str>>,
    ) -> Result<(), StoreError> {
        let query = match paused {
            Some(until) => sqlx::query("INSERT OR REPLACE INTO paused (task, until) VALUES (?, ?)")
                .bind(task)
                .bind(until),
            None => sqlx::query("DELETE FROM paused WHERE task = ?").bind(task),
        };
        query.execute(&self.pool).await.map_err(self.sql())?;
        Ok(())
    }

    /// One run by id.
    ///
    /// # Errors
    /// When the database cannot be read.
    pub async fn run(&self, id: &str) -> Result<Option<RunRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM runs WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(self.sql())?;
        Ok(row.as_ref().map(record))
    }
}

fn record(row: &SqliteRow) -> RunRecord {
    RunRecord {
        id: row.get("id"),
        task: row.get("task"),
        slot: row.get("slot"),
        slot_ts: row.get("slot_ts"),
        attempt: row.get::<i64, _>("attempt") as u32,
        node: row.get("node"),
        started_at: row.get("started_at"),
        ended_at: row.get("ended_at"),
        duration_ms: row.get("duration_ms"),
        exit_code: row.get("exit_code"),
        signal: row.get("signal"),
        cpu_ms: row.get("cpu_ms"),
        max_rss: row.get("max_rss"),
        outcome: row.get::<String, _>("outcome").parse().unwrap_or(Outcome::Failed),
        output: row.get("output"),
        output_dropped: row.get("output_dropped"),
        reason: row.get("reason"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("cronfleet-store-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    fn record(task: &str, slot_ts: i64, outcome: Outcome) -> RunRecord {
        RunRecord {
            id: format!("{task}@{slot_ts}#1"),
            task: task.into(),
            slot: jiff::Timestamp::from_second(slot_ts).unwrap().to_string(),
            slot_ts,
            attempt: 1,
            node: "n1".into(),
            started_at: "2026-11-23T10:00:00Z".into(),
            ended_at: None,
            duration_ms: Some(12),
            exit_code: Some(0),
            signal: None,
            cpu_ms: Some(3),
            max_rss: Some(4096),
            outcome,
            output: b"out\n".to_vec(),
            output_dropped: 0,
            reason: None,
        }
    }

    #[tokio::test]
    async fn records_round_trip_and_filter() {
        let store = Store::open(&dir("roundtrip")).await.unwrap();
        let a = record("a", 100, Outcome::Succeeded);
        store.put(&a).await.unwrap();
        store.put(&record("a", 200, Outcome::Failed)).await.unwrap();
        store.put(&record("b", 150, Outcome::Succeeded)).await.unwrap();
        assert_eq!(store.run(&a.id).await.unwrap(), Some(a.clone()));
        let all = store.runs(&RunFilter::default()).await.unwrap();
        assert_eq!(all.iter().map(|r| r.slot_ts).collect::<Vec<_>>(), [200, 150, 100]);
        let failed = RunFilter {
            task: Some("a".into()),
            outcome: Some(Outcome::Failed),
            ..RunFilter::default()
        };
        assert_eq!(store.runs(&failed).await.unwrap().len(), 1);
        assert_eq!(store.last_slot("a").await.unwrap(), Some(200));
        assert_eq!(store.last_slot("zzz").await.unwrap(), None);
        // Updating a run replaces its row.
        store.put(&RunRecord { outcome: Outcome::Killed, ..a.clone() }).await.unwrap();
        assert_eq!(store.run(&a.id).await.unwrap().unwrap().outcome, Outcome::Killed);
    }

    #[tokio::test]
    async fn retention_by_age_and_count_per_task() {
        let store = Store::open(&dir("prune")).await.unwrap();
        for ts in 1..=10 {
            store.put(&record("a", ts * 100, Outcome::Succeeded)).await.unwrap();
        }
        store.put(&record("b", 150, Outcome::Succeeded)).await.unwrap();
        store.put(&record("b", 50, Outcome::Running)).await.unwrap();
        // Keep 3 per task, and nothing with a slot before 200.
        assert_eq!(store.prune(3, 200).await.unwrap(), 8);
        let left: Vec<(String, i64)> = store
            .runs(&RunFilter { limit: 100, ..RunFilter::default() })
            .await
            .unwrap()
            .into_iter()
            .map(|r| (r.task, r.slot_ts))
            .collect();
        // a: the newest 3; b: its old run is gone, but a running one is never pruned.
        assert_eq!(
            left,
            [("a".into(), 1000), ("a".into(), 900), ("a".into(), 800), ("b".into(), 50)]
        );
    }

    #[tokio::test]
    async fn running_runs_become_abandoned() {
        let store = Store::open(&dir("abandon")).await.unwrap();
        store.put(&record("a", 100, Outcome::Running)).await.unwrap();
        store.put(&record("a", 101, Outcome::Succeeded)).await.unwrap();
        assert_eq!(store.abandon_running("2026-11-23T11:00:00Z").await.unwrap(), 1);
        let r = store.run("a@100#1").await.unwrap().unwrap();
        assert_eq!(
            (r.outcome, r.ended_at.as_deref()),
            (Outcome::Abandoned, Some("2026-11-23T11:00:00Z"))
        );
    }

    #[tokio::test]
    async fn migrations_run_once_and_a_newer_schema_is_refused() {
        let d = dir("migrate");
        let store = Store::open(&d).await.unwrap();
        store.put(&record("a", 1, Outcome::Succeeded)).await.unwrap();
        drop(store);
        // Reopening keeps the data (migrations are not applied twice).
        let store = Store::open(&d).await.unwrap();
        assert_eq!(store.runs(&RunFilter::default()).await.unwrap().len(), 1);
        sqlx::raw_sql("PRAGMA user_version = 99").execute(&store.pool).await.unwrap();
        store.pool.close().await;
        let err = Store::open(&d).await.unwrap_err();
        assert!(matches!(err, StoreError::TooNew { found: 99, .. }), "{err}");
        assert!(err.to_string().contains("refusing to use it"));
    }

    #[test]
    fn outcome_names_round_trip() {
        for o in [
            Outcome::Running,
            Outcome::Succeeded,
            Outcome::Failed,
            Outcome::TimedOut,
            Outcome::Killed,
            Outcome::Skipped,
            Outcome::Missed,
            Outcome::Abandoned,
        ] {
            assert_eq!(o.as_str().parse::<Outcome>(), Ok(o));
        }
        assert!("weird".parse::<Outcome>().is_err());
    }
}
