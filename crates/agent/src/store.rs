//! Run history: an embedded SQLite database in the state directory.
//!
//! One row per run (or skipped/missed slot), written when the run starts and updated when it
//! ends, so a run that was going when the agent died is found at the next start and recorded
//! as abandoned. The schema is created and upgraded by migrations built into the binary
//! (`PRAGMA user_version` counts them); a database from a newer cronfleet is refused rather
//! than corrupted.

use std::{
    path::Path,
    str::FromStr,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use sqlx::{
    any::{AnyPoolOptions, AnyRow},
    sqlite::{SqliteConnectOptions, SqlitePoolOptions},
    AnyPool, Row,
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
            "lost" => Outcome::Lost,
            other => return Err(format!("unknown outcome {other:?}")),
        })
    }
}

/// A seat of a `run_on` task's slot, claimed by a node (see [`Store::claim`]).
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

/// A seat number as the database holds it (BIGINT), back to a seat.
fn seat_of(seat: i64) -> u32 {
    seat.clamp(0, i64::from(u32::MAX)) as u32
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
    r#"
    CREATE TABLE nodes (
        name       TEXT PRIMARY KEY,
        addresses  TEXT NOT NULL,
        tags       TEXT NOT NULL,
        version    TEXT NOT NULL,
        api        TEXT,
        started_at TEXT NOT NULL,
        last_seen  TEXT NOT NULL,
        stopped_at TEXT
    );
"#,
    r#"
    CREATE TABLE claims (
        task       TEXT NOT NULL,
        slot_ts    BIGINT NOT NULL,
        seat       BIGINT NOT NULL,
        node       TEXT NOT NULL,
        claimed_at TEXT NOT NULL,
        PRIMARY KEY (task, slot_ts, seat)
    );
"#,
    r#"
    CREATE TABLE leases (
        task       TEXT NOT NULL,
        seat       BIGINT NOT NULL,
        node       TEXT NOT NULL,
        run_id     TEXT NOT NULL,
        expires_at BIGINT NOT NULL,
        PRIMARY KEY (task, seat)
    );
"#,
    r#"
    CREATE TABLE handoffs (
        task       TEXT NOT NULL,
        slot_ts    BIGINT NOT NULL,
        attempt    BIGINT NOT NULL,
        from_node  TEXT NOT NULL,
        reason     TEXT NOT NULL,
        taken_by   TEXT,
        created_at TEXT NOT NULL,
        PRIMARY KEY (task, slot_ts)
    );
"#,
    r#"
    CREATE TABLE task_files (
        name       TEXT PRIMARY KEY,
        text       TEXT NOT NULL,
        revision   BIGINT NOT NULL,
        updated_at TEXT NOT NULL
    );
"#,
];

/// A node (an agent) as it registered in the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeRecord {
    /// Its name (`--node`, or the hostname).
    pub name: String,
    /// Its addresses.
    pub addresses: Vec<String>,
    /// Its tags.
    pub tags: Vec<String>,
    /// Its cronfleet version.
    pub version: String,
    /// Its API's URL, if it serves one.
    pub api: Option<String>,
    /// When it started.
    pub started_at: String,
    /// Its latest heartbeat.
    pub last_seen: String,
    /// When it stopped (cleanly); `None` while it runs (or if it died).
    pub stopped_at: Option<String>,
}

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

/// The PostgreSQL schema, in order; the `cronfleet_schema` table holds how many have been
/// applied. (The same tables as SQLite's migrations, in PostgreSQL's types.)
const PG_MIGRATIONS: &[&str] = &[
    r#"
    CREATE TABLE runs (
        id             TEXT PRIMARY KEY,
        task           TEXT NOT NULL,
        slot           TEXT NOT NULL,
        slot_ts        BIGINT NOT NULL,
        attempt        BIGINT NOT NULL,
        node           TEXT NOT NULL,
        started_at     TEXT NOT NULL,
        ended_at       TEXT,
        duration_ms    BIGINT,
        exit_code      BIGINT,
        signal         BIGINT,
        cpu_ms         BIGINT,
        max_rss        BIGINT,
        outcome        TEXT NOT NULL,
        output         BYTEA NOT NULL DEFAULT ''::bytea,
        output_dropped BIGINT NOT NULL DEFAULT 0,
        reason         TEXT
    );
    CREATE INDEX runs_by_task_slot ON runs (task, slot_ts);
    CREATE INDEX runs_by_slot ON runs (slot_ts);
    CREATE TABLE paused (
        task  TEXT PRIMARY KEY,
        until TEXT
    );
    CREATE TABLE api_tasks (
        name       TEXT PRIMARY KEY,
        definition TEXT NOT NULL,
        revision   BIGINT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
"#,
    r#"
    CREATE TABLE nodes (
        name       TEXT PRIMARY KEY,
        addresses  TEXT NOT NULL,
        tags       TEXT NOT NULL,
        version    TEXT NOT NULL,
        api        TEXT,
        started_at TEXT NOT NULL,
        last_seen  TEXT NOT NULL,
        stopped_at TEXT
    );
"#,
    r#"
    CREATE TABLE claims (
        task       TEXT NOT NULL,
        slot_ts    BIGINT NOT NULL,
        seat       BIGINT NOT NULL,
        node       TEXT NOT NULL,
        claimed_at TEXT NOT NULL,
        PRIMARY KEY (task, slot_ts, seat)
    );
"#,
    r#"
    CREATE TABLE leases (
        task       TEXT NOT NULL,
        seat       BIGINT NOT NULL,
        node       TEXT NOT NULL,
        run_id     TEXT NOT NULL,
        expires_at BIGINT NOT NULL,
        PRIMARY KEY (task, seat)
    );
"#,
    r#"
    CREATE TABLE handoffs (
        task       TEXT NOT NULL,
        slot_ts    BIGINT NOT NULL,
        attempt    BIGINT NOT NULL,
        from_node  TEXT NOT NULL,
        reason     TEXT NOT NULL,
        taken_by   TEXT,
        created_at TEXT NOT NULL,
        PRIMARY KEY (task, slot_ts)
    );
"#,
    r#"
    CREATE TABLE task_files (
        name       TEXT PRIMARY KEY,
        text       TEXT NOT NULL,
        revision   BIGINT NOT NULL,
        updated_at TEXT NOT NULL
    );
"#,
];

/// The key of the advisory lock PostgreSQL migrations run under (one agent migrates; the
/// others wait).
const MIGRATION_LOCK: i64 = 0x6372_6f6e_666c_6565; // "cronflee"

/// The advisory lock the fleet's chores run under.
const CHORES_LOCK: i64 = 0x6372_6f6e_6368_6f72; // "cronchor"

/// Held by the node that does the fleet's chores (see [`Store::try_lead`]).
#[derive(Debug)]
pub struct Leader(Option<sqlx::AnyConnection>);

impl Leader {
    /// Whether it still leads: the connection holding the lock still answers (when it broke,
    /// the database released the lock, and another node may lead now).
    pub async fn holds(&mut self) -> bool {
        match &mut self.0 {
            None => true,
            // No answer soon (a partition) is not holding it either.
            Some(conn) => {
                let ping = sqlx::query("SELECT 1").execute(&mut *conn);
                matches!(tokio::time::timeout(SHARED_WRITE_TIMEOUT, ping).await, Ok(Ok(_)))
            }
        }
    }
}

/// Which database a store is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file of this agent's.
    Sqlite,
    /// A PostgreSQL database, possibly shared.
    Postgres,
}

/// The run history (and API tasks, and pauses): a SQLite file in the state directory, or a
/// PostgreSQL database. The queries are the same for both (sqlx's `Any` driver; `$N`
/// parameters, standard upserts).
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    path: String,
    backend: Backend,
    spool: Option<Arc<Spool>>,
    url: Secret,
}

/// A database URL with its password: never shown (`Debug` hides it).
#[derive(Clone, Default)]
struct Secret(Arc<str>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// The channel agents sharing a database are told of changes on (task file, API tasks,
/// pauses).
const CHANGES: &str = "cronfleet_changes";

/// The name of the fleet's task file in `task_files`.
const FLEET_FILE: &str = "fleet";

/// How long one write to a shared database may take before the agent treats the database as
/// away (a partition can leave a connection hanging rather than failing).
const SHARED_WRITE_TIMEOUT: Duration = Duration::from_secs(2);

/// Where an agent keeps what it could not write to a shared database while the database was
/// away: run records in a SQLite file of its own, and the slots of `run_on` tasks it could not
/// claim (never run; recorded as missed when the database is back, unless another node ran
/// them).
#[derive(Debug)]
struct Spool {
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

/// What [`Store::flush`] did.
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
const WITHOUT_OUTPUT: &str = "id, task, slot, slot_ts, attempt, node, started_at, ended_at, \
    duration_ms, exit_code, signal, cpu_ms, max_rss, outcome, NULL AS output, output_dropped, reason";

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

/// A path as a `sqlite://` URL.
fn sqlite_url(file: &Path) -> String {
    let mut url = String::from("sqlite://");
    for c in file.display().to_string().chars() {
        match c {
            '%' => url.push_str("%25"),
            ' ' => url.push_str("%20"),
            '?' => url.push_str("%3F"),
            '#' => url.push_str("%23"),
            c => url.push(c),
        }
    }
    url.push_str("?mode=rwc");
    url
}

/// A database URL with its password hidden, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
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
        sqlx::any::install_default_drivers();
        let pool = AnyPoolOptions::new()
            .max_connections(4)
            .after_connect(|conn, _| {
                Box::pin(async move {
                    sqlx::raw_sql("PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 5000;")
                        .execute(conn)
                        .await
                        .map(|_| ())
                })
            })
            .connect(&sqlite_url(&file))
            .await
            .map_err(sql)?;
        let store =
            Store { pool, path, backend: Backend::Sqlite, spool: None, url: Secret::default() };
        store.migrate_sqlite().await?;
        Ok(store)
    }

    /// Opens a store by URL: `postgres://user:pass@host/db` (migrated under an advisory lock,
    /// so agents starting together migrate once), or `sqlite://PATH`.
    ///
    /// # Errors
    /// When the database cannot be reached or used, or its schema is newer than ours.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        Store::connect_with(url, 8).await
    }

    /// [`Store::connect`] with at most `connections` connections to PostgreSQL (an agent
    /// uses 8).
    ///
    /// # Errors
    /// When the database cannot be reached or used, or its schema is newer than ours.
    pub async fn connect_with(url: &str, connections: u32) -> Result<Store, StoreError> {
        if let Some(path) = url.strip_prefix("sqlite://") {
            let path = Path::new(path.split('?').next().unwrap_or(path));
            return Store::open(path.parent().unwrap_or(Path::new("."))).await;
        }
        let path = redact(url);
        let sql = |source| StoreError::Sql { path: path.clone(), source };
        if !url.starts_with("postgres://") && !url.starts_with("postgresql://") {
            let message = format!("{path}: expected a postgres:// or sqlite:// URL");
            return Err(sql(sqlx::Error::Configuration(message.into())));
        }
        sqlx::any::install_default_drivers();
        let pool = AnyPoolOptions::new()
            .max_connections(connections.max(1))
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await
            .map_err(sql)?;
        let store =
            Store { pool, path, backend: Backend::Postgres, spool: None, url: Secret(url.into()) };
        store.migrate_postgres().await?;
        Ok(store)
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Whether several nodes may share it (run ids then name the node).
    pub fn shared(&self) -> bool {
        self.backend == Backend::Postgres
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

    async fn migrate_sqlite(&self) -> Result<(), StoreError> {
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

    async fn migrate_postgres(&self) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await.map_err(self.sql())?;
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut *conn)
            .await
            .map_err(self.sql())?;
        let result = async {
            // (Not `IF NOT EXISTS`: PostgreSQL would log a notice on every start.)
            let exists: bool = sqlx::query(
                "SELECT COUNT(*) > 0 FROM information_schema.tables WHERE table_name = 'cronfleet_schema' \
                 AND table_schema = current_schema()",
            )
            .fetch_one(&mut *conn)
            .await?
            .get(0);
            if !exists {
                sqlx::raw_sql("CREATE TABLE cronfleet_schema (version BIGINT NOT NULL)")
                    .execute(&mut *conn)
                    .await?;
            }
            let version: Option<i64> = sqlx::query("SELECT MAX(version) FROM cronfleet_schema")
                .fetch_one(&mut *conn)
                .await?
                .get(0);
            Ok::<_, sqlx::Error>(version.unwrap_or(0))
        }
        .await;
        let outcome = match result {
            Err(e) => Err(self.sql()(e)),
            Ok(version) if version > PG_MIGRATIONS.len() as i64 => Err(StoreError::TooNew {
                path: self.path.clone(),
                found: version,
                known: PG_MIGRATIONS.len() as i64,
            }),
            Ok(version) => {
                let mut applied = Ok(());
                for (i, migration) in PG_MIGRATIONS.iter().enumerate().skip(version as usize) {
                    let step = async {
                        let mut tx = sqlx::Connection::begin(&mut *conn).await?;
                        sqlx::raw_sql(*migration).execute(&mut *tx).await?;
                        sqlx::query("DELETE FROM cronfleet_schema").execute(&mut *tx).await?;
                        sqlx::query("INSERT INTO cronfleet_schema (version) VALUES ($1)")
                            .bind(i as i64 + 1)
                            .execute(&mut *tx)
                            .await?;
                        tx.commit().await
                    };
                    if let Err(e) = step.await {
                        applied = Err(self.sql()(e));
                        break;
                    }
                }
                applied
            }
        };
        let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut *conn)
            .await;
        outcome
    }

    /// Writes a run (insert, or replace the row with the same id).
    ///
    /// # Errors
    /// When the database cannot be written.
    pub async fn put(&self, r: &RunRecord) -> Result<(), StoreError> {
        let Some(spool) = &self.spool else { return self.put_here(r).await };
        if !spool.away.load(Ordering::SeqCst) {
            let error = match tokio::time::timeout(SHARED_WRITE_TIMEOUT, self.put_here(r)).await {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(e)) if !unreachable(&e) => return Err(e),
                Ok(Err(e)) => e.to_string(),
                Err(_) => format!("no answer within {}s", SHARED_WRITE_TIMEOUT.as_secs()),
            };
            if !spool.away.swap(true, Ordering::SeqCst) {
                tracing::warn!(
                    database = %self.path,
                    error,
                    "the database is away: runs are kept in the local spool until it is back"
                );
            }
        }
        spool.local.put_here(r).await
    }

    /// Writes a run here (never to the spool). A finished run's record is never replaced by
    /// a `running` one (a spooled start arriving after the end).
    async fn put_here(&self, r: &RunRecord) -> Result<(), StoreError> {
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
        // Claims and handoffs of old slots are not needed any more.
        for table in ["claims", "handoffs"] {
            sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {table} WHERE slot_ts < $1")))
                .bind(before)
                .execute(&self.pool)
                .await
                .map_err(self.sql())?;
        }
        Ok(done.rows_affected())
    }

    /// Marks runs of `node` still `running` (it died during them) as abandoned; how many.
    ///
    /// # Errors
    /// When the database cannot be written.
    pub async fn abandon_running(&self, node: &str, ended_at: &str) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE runs SET outcome = 'abandoned', ended_at = $1 WHERE outcome = 'running' AND node = $2",
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
        let row = sqlx::query(
            "SELECT MAX(slot_ts) FROM runs WHERE task = $1 AND ($2 IS NULL OR node = $2)",
        )
        .bind(task)
        .bind(node)
        .fetch_one(&self.pool)
        .await
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
        let sql = format!(
            "SELECT {columns} FROM runs WHERE ($1 IS NULL OR task = $1) \
             AND ($2 IS NULL OR outcome = $2) AND ($3 IS NULL OR slot_ts >= $3) \
             AND ($4 IS NULL OR slot_ts < $4) \
             AND ($5 IS NULL OR slot_ts < $5 OR (slot_ts = $5 AND id < $6)) \
             ORDER BY slot_ts DESC, id DESC LIMIT $7"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&filter.task)
            .bind(filter.outcome.map(Outcome::as_str))
            .bind(filter.since)
            .bind(filter.until)
            .bind(after.as_ref().map(|c| c.0))
            .bind(after.as_ref().map(|c| c.1.clone()))
            .bind(i64::from(limit))
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

    /// The tasks created through the API.
    ///
    /// # Errors
    /// When the database cannot be read.
    pub async fn api_tasks(&self) -> Result<Vec<StoredTask>, StoreError> {
        let rows = sqlx::query(
            "SELECT name, definition, revision, created_at, updated_at FROM api_tasks \
             ORDER BY created_at, name",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(self.sql())?;
        Ok(rows
            .iter()
            .map(|r| StoredTask {
                name: r.get(0),
                definition: serde_json::from_str(&r.get::<String, _>(1)).unwrap_or_default(),
                revision: r.get(2),
                created_at: r.get(3),
                updated_at: r.get(4),
            })
            .collect())
    }

    /// Writes an API task: a new one when `expected` is `None`, else only if its revision is
    /// still `expected`. Returns whether it was written (one statement, so one transaction).
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
                "INSERT INTO api_tasks (name, definition, revision, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO NOTHING",
            )
            .bind(&task.name)
            .bind(definition)
            .bind(task.revision)
            .bind(&task.created_at)
            .bind(&task.updated_at),
            Some(revision) => sqlx::query(
                "UPDATE api_tasks SET definition = $1, revision = $2, updated_at = $3 \
                 WHERE name = $4 AND revision = $5",
            )
            .bind(definition)
            .bind(task.revision)
            .bind(&task.updated_at)
            .bind(&task.name)
            .bind(revision),
        };
        let done = done.execute(&self.pool).await.map_err(self.sql())?;
        self.notify_changed().await;
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
            sqlx::query("DELETE FROM api_tasks WHERE name = $1 AND ($2 IS NULL OR revision = $2)")
                .bind(name)
                .bind(expected)
                .execute(&mut *tx)
                .await
                .map_err(self.sql())?;
        sqlx::query("DELETE FROM paused WHERE task = $1")
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(self.sql())?;
        tx.commit().await.map_err(self.sql())?;
        self.notify_changed().await;
        Ok(done.rows_affected() == 1)
    }

    /// Registers a node (or registers it again, as started now).
    ///
    /// # Errors
    /// When the database cannot be written.
    pub async fn register_node(&self, node: &NodeRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO nodes (name, addresses, tags, version, api, started_at, last_seen, stopped_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, NULL) ON CONFLICT (name) DO UPDATE SET \
             addresses = excluded.addresses, tags = excluded.tags, version = excluded.version, \
             api = excluded.api, started_at = excluded.started_at, last_seen = excluded.last_seen, \
             stopped_at = NULL",
        )
        .bind(&node.name)
        .bind(serde_json::to_string(&node.addresses).unwrap_or_default())
        .bind(serde_json::to_string(&node.tags).unwrap_or_default())
        .bind(&node.version)
        .bind(&node.api)
        .bind(&node.started_at)
        .bind(&node.last_seen)
        .execute(&self.pool)
        .await
        .map_err(self.sql())?;
        Ok(())
    }

    /// A node's heartbeat (`stopped` when it stops cleanly).
    ///
    /// # Errors
    /// When the database cannot be written.
    pub async fn heartbeat(&self, node: &str, at: &str, stopped: bool) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE nodes SET last_seen = $1, stopped_at = CASE WHEN $2 = 1 THEN $1 ELSE NULL END \
             WHERE name = $3",
        )
        .bind(at)
        .bind(i64::from(stopped))
        .bind(node)
        .execute(&self.pool)
        .await
        .map_err(self.sql())?;
        Ok(())
    }

    /// Every registered node, by name.
    ///
    /// # Errors
    /// When the database cannot be read.
    pub async fn nodes(&self) -> Result<Vec<NodeRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT name, addresses, tags, version, api, started_at, last_seen, stopped_at \
             FROM nodes ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(self.sql())?;
        let list = |text: String| serde_json::from_str::<Vec<String>>(&text).unwrap_or_default();
        Ok(rows
            .iter()
            .map(|r| NodeRecord {
                name: r.get(0),
                addresses: list(r.get(1)),
                tags: list(r.get(2)),
                version: r.get(3),
                api: r.get(4),
                started_at: r.get(5),
                last_seen: r.get(6),
                stopped_at: r.get(7),
            })
            .collect())
    }

    /// Whether this process should do the fleet's chores (retention, lost runs): with
    /// PostgreSQL, whoever holds an advisory lock on a connection of its own, kept for as long
    /// as the returned guard lives (a dead leader's connection closes and frees it); with
    /// SQLite, always.
    ///
    /// # Errors
    /// When the database cannot be reached.
    pub async fn try_lead(&self) -> Result<Option<Leader>, StoreError> {
        if self.backend == Backend::Sqlite {
            return Ok(Some(Leader(None)));
        }
        let mut conn = self.pool.acquire().await.map_err(self.sql())?.detach();
        let got: bool = sqlx::query("SELECT pg_try_advisory_lock($1)")
            .bind(CHORES_LOCK)
            .fetch_one(&mut conn)
            .await
            .map_err(self.sql())?
            .get(0);
        if got {
            // A leader cut off from the database (a partition, no TCP reset) must not keep the
            // lock: the server ends the session when it stays silent for longer than the
            // leader's pings are apart (PostgreSQL 14 and later).
            let _ = sqlx::query("SET idle_session_timeout = '15s'").execute(&mut conn).await;
        }
        Ok(got.then(|| Leader(Some(conn))))
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
            .fetch_all(&self.pool)
            .await
            .map_err(self.sql())?;
            lost.extend(rows.iter().map(record));
            // Their fleet-wide run leases go with them (a daemon's lease is not a run's: it
            // expires, so a node cut off has stopped its daemon before another starts it).
            sqlx::query(
                "DELETE FROM leases WHERE node = $1 AND run_id IN \
                 (SELECT id FROM runs WHERE node = $1 AND outcome = 'lost')",
            )
            .bind(node)
            .execute(&self.pool)
            .await
            .map_err(self.sql())?;
        }
        Ok(lost)
    }

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
        .execute(&self.pool)
        .await
        .map_err(self.sql())?;
        Ok(done.rows_affected() == 1)
    }

    /// Slots handed over by other nodes and not taken yet: (task, slot, attempt).
    ///
    /// # Errors
    /// When the database cannot be read.
    pub async fn handoffs(&self, node: &str) -> Result<Vec<(String, i64, u32)>, StoreError> {
        let rows = sqlx::query(
            "SELECT task, slot_ts, attempt FROM handoffs WHERE taken_by IS NULL AND from_node <> $1 \
             ORDER BY slot_ts",
        )
        .bind(node)
        .fetch_all(&self.pool)
        .await
        .map_err(self.sql())?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1), seat_of(r.get(2)))).collect())
    }

    /// Offers a taken slot again (its taker could not run it).
    ///
    /// # Errors
    /// When the database cannot be written.
    pub async fn release_handoff(&self, task: &str, slot_ts: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE handoffs SET taken_by = NULL WHERE task = $1 AND slot_ts = $2")
            .bind(task)
            .bind(slot_ts)
            .execute(&self.pool)
            .await
            .map_err(self.sql())?;
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
        .execute(&self.pool)
        .await
        .map_err(self.sql())?;
        Ok(done.rows_affected() == 1)
    }

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
            .execute(&self.pool)
            .await
            .map_err(self.sql())?;
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
            .execute(&self.pool)
            .await
            .map_err(self.sql())?;
        Ok(done.rows_affected() == 1)
    }

    /// [`Store::claim`] for many seats at once, in one statement (one round trip): the seats
    /// among `wanted` (task, slot, seat) that are now `node`'s.
    ///
    /// # Errors
    /// When the database cannot be written (or, spooled, does not answer within 2 s).
    pub async fn claim_many(
        &self,
        wanted: &[(String, i64, u32)],
        node: &str,
        at: &str,
    ) -> Result<std::collections::HashSet<(String, i64, u32)>, StoreError> {
        // Every node inserts in the same order (no deadlock between batches that overlap).
        let mut wanted = wanted.to_vec();
        wanted.sort();
        wanted.dedup();
        if self.backend == Backend::Postgres {
            return self.claim_many_pg(&wanted, node, at).await;
        }
        let mut got = std::collections::HashSet::new();
        // 5 parameters a row; SQLite takes at most 32,766 in a statement.
        for chunk in wanted.chunks(1000) {
            let rows: Vec<String> = (0..chunk.len())
                .map(|i| {
                    let p = i * 5;
                    format!("(${}, ${}, ${}, ${}, ${})", p + 1, p + 2, p + 3, p + 4, p + 5)
                })
                .collect();
            // SQLite writes lock the whole file anyway: an upsert that touches only this node's
            // own seats returns them along with the new ones, in one statement.
            let sql = format!(
                "INSERT INTO claims (task, slot_ts, seat, node, claimed_at) VALUES {} \
                 ON CONFLICT (task, slot_ts, seat) DO UPDATE SET claimed_at = claims.claimed_at \
                 WHERE claims.node = excluded.node RETURNING task, slot_ts, seat",
                rows.join(", ")
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (task, slot_ts, seat) in chunk {
                query = query.bind(task).bind(*slot_ts).bind(i64::from(*seat)).bind(node).bind(at);
            }
            self.claimed(query.fetch_all(&self.pool), &mut got).await?;
        }
        Ok(got)
    }

    /// [`Store::claim_many`] on PostgreSQL: the seats go as one JSON parameter, so that the
    /// statement's text is the same for every batch (prepared once per connection, planned
    /// once) instead of a `VALUES` list of five parameters a row that the server parses and
    /// plans anew for every batch size. `wanted` is sorted.
    async fn claim_many_pg(
        &self,
        wanted: &[(String, i64, u32)],
        node: &str,
        at: &str,
    ) -> Result<std::collections::HashSet<(String, i64, u32)>, StoreError> {
        let seats: Vec<serde_json::Value> = wanted
            .iter()
            .map(|(task, slot_ts, seat)| serde_json::json!([task, slot_ts, seat]))
            .collect();
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
            .fetch_all(&self.pool);
        let mut got = std::collections::HashSet::new();
        self.claimed(fetch, &mut got).await?;
        Ok(got)
    }

    /// Waits for a claim statement's rows (no longer than [`SHARED_WRITE_TIMEOUT`] when the
    /// store spools: an unreachable database is not waited for) and adds the (task, slot,
    /// seat) each names to `got`.
    async fn claimed(
        &self,
        fetch: impl std::future::Future<Output = Result<Vec<AnyRow>, sqlx::Error>>,
        got: &mut std::collections::HashSet<(String, i64, u32)>,
    ) -> Result<(), StoreError> {
        let rows = match self.spool {
            None => fetch.await,
            Some(_) => tokio::time::timeout(SHARED_WRITE_TIMEOUT, fetch)
                .await
                .unwrap_or_else(|_| Err(sqlx::Error::PoolTimedOut)),
        }
        .map_err(self.sql())?;
        for row in rows {
            got.insert((row.get(0), row.get(1), seat_of(row.get(2))));
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
        .fetch_all(&self.pool)
        .await
        .map_err(self.sql())?;
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
                .fetch_optional(&self.pool)
                .await
                .map_err(self.sql())?;
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
        .execute(&self.pool)
        .await
        .map_err(self.sql())?;
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
        let wanted = [(task.to_owned(), slot_ts, seat)];
        Ok(!self.claim_many(&wanted, node, at).await?.is_empty())
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
            Some(until) => sqlx::query(
                "INSERT INTO paused (task, until) VALUES ($1, $2) \
                 ON CONFLICT (task) DO UPDATE SET until = excluded.until",
            )
            .bind(task)
            .bind(until),
            None => sqlx::query("DELETE FROM paused WHERE task = $1").bind(task),
        };
        query.execute(&self.pool).await.map_err(self.sql())?;
        self.notify_changed().await;
        Ok(())
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

impl Store {
    /// Gives a shared store a spool in `dir` (a SQLite file of this node's): from then on, a
    /// run record the database cannot take (it is away, or does not answer within 2 s) goes
    /// to the spool, and [`Store::flush`] moves it to the database when it is back. Runs of
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

    /// Whether the shared database was away at the last write (runs are being spooled).
    pub fn away(&self) -> bool {
        self.spool.as_ref().is_some_and(|s| s.away.load(Ordering::SeqCst))
    }

    /// Remembers a slot of a `run_on` task that could not be claimed (and so was not run):
    /// when the database is back, [`Store::flush`] records it as missed unless a node claimed
    /// it.
    pub fn unclaimed(&self, task: &str, slot: &jiff::Zoned, seats: u32) {
        let Some(spool) = &self.spool else { return };
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
        let Some(spool) = &self.spool else { return Ok(Flushed::default()) };
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
        let probe = sqlx::query("SELECT 1").execute(&self.pool);
        match tokio::time::timeout(SHARED_WRITE_TIMEOUT, probe).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(self.sql()(e)),
            Err(_) => {
                let message = "no answer".to_owned();
                return Err(self.sql()(sqlx::Error::Protocol(message)));
            }
        }
        let mut flushed = Flushed::default();
        loop {
            let batch = spool.local.runs(&RunFilter { limit: 500, ..RunFilter::default() }).await?;
            if batch.is_empty() {
                break;
            }
            for run in &batch {
                self.put_here(run).await?;
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
                self.put_here(&record).await?;
                flushed.missed += 1;
            }
        }
        spool.away.store(false, Ordering::SeqCst);
        Ok(flushed)
    }
}

impl Store {
    /// The fleet's task file (`cronfleet apply --store`) and its revision, if one was applied.
    ///
    /// # Errors
    /// When the database cannot be read.
    pub async fn task_file(&self) -> Result<Option<(String, i64)>, StoreError> {
        let row = sqlx::query("SELECT text, revision FROM task_files WHERE name = $1")
            .bind(FLEET_FILE)
            .fetch_optional(&self.pool)
            .await
            .map_err(self.sql())?;
        Ok(row.map(|r| (r.get(0), r.get(1))))
    }

    /// Stores the fleet's task file (validated by the caller) as its next revision, and tells
    /// every agent; returns the revision.
    ///
    /// # Errors
    /// When the database cannot be written.
    pub async fn put_task_file(&self, text: &str, at: &str) -> Result<i64, StoreError> {
        let row = sqlx::query(
            "INSERT INTO task_files (name, text, revision, updated_at) VALUES ($1, $2, 1, $3) \
             ON CONFLICT (name) DO UPDATE SET text = excluded.text, \
             revision = task_files.revision + 1, updated_at = excluded.updated_at \
             RETURNING revision",
        )
        .bind(FLEET_FILE)
        .bind(text)
        .bind(at)
        .fetch_one(&self.pool)
        .await
        .map_err(self.sql())?;
        self.notify_changed().await;
        Ok(row.get(0))
    }

    /// Tells the agents sharing this database that definitions or pauses changed (PostgreSQL
    /// NOTIFY; nothing with SQLite). A lost notice is caught by [`Store::fingerprint`].
    pub async fn notify_changed(&self) {
        if self.backend == Backend::Postgres {
            let notify = sqlx::query("SELECT pg_notify($1, '')").bind(CHANGES).execute(&self.pool);
            if let Err(e) = notify.await {
                tracing::warn!(error = %e, "cannot tell the other agents of the change");
            }
        }
    }

    /// What the agents' definitions and pauses depend on, in one text: it changes whenever
    /// the task file, an API task or a pause does.
    ///
    /// # Errors
    /// When the database cannot be read.
    pub async fn fingerprint(&self) -> Result<String, StoreError> {
        let file: Option<i64> = sqlx::query("SELECT MAX(revision) FROM task_files")
            .fetch_one(&self.pool)
            .await
            .map_err(self.sql())?
            .get(0);
        let api = sqlx::query("SELECT COUNT(*), COALESCE(SUM(revision), 0) FROM api_tasks")
            .fetch_one(&self.pool)
            .await
            .map_err(self.sql())?;
        let (count, sum): (i64, i64) = (api.get(0), api.get(1));
        let paused = self.paused().await?;
        Ok(format!("{file:?} {count} {sum} {paused:?}"))
    }

    /// Sends on `changed` when another agent changed definitions or pauses: at once on a
    /// PostgreSQL notice, and when [`Store::fingerprint`] differs from the last one seen
    /// (checked every `every`, for notices lost while the connection was down). Runs until
    /// `changed` is closed. Nothing with SQLite.
    pub fn watch_changes(&self, changed: tokio::sync::mpsc::Sender<()>, every: Duration) {
        if self.backend != Backend::Postgres {
            return;
        }
        let store = self.clone();
        tokio::spawn(async move {
            let mut seen = store.fingerprint().await.ok();
            let mut listener: Option<sqlx::postgres::PgListener> = None;
            let mut poll = tokio::time::interval(every);
            loop {
                if listener.is_none() {
                    match sqlx::postgres::PgListener::connect(&store.url.0).await {
                        Ok(mut l) => match l.listen(CHANGES).await {
                            Ok(()) => listener = Some(l),
                            Err(e) => tracing::debug!(error = %e, "cannot listen for changes"),
                        },
                        Err(e) => tracing::debug!(error = %e, "cannot listen for changes"),
                    }
                }
                let notice = async {
                    match listener.as_mut() {
                        Some(l) => l.try_recv().await,
                        None => std::future::pending().await,
                    }
                };
                let tell = tokio::select! {
                    got = notice => match got {
                        Ok(Some(_)) => true,
                        // The connection broke (notices may be lost): the fingerprint tells.
                        Ok(None) | Err(_) => {
                            listener = None;
                            false
                        }
                    },
                    _ = poll.tick() => false,
                };
                let now = store.fingerprint().await.ok();
                let moved = now.is_some() && now != seen;
                if now.is_some() {
                    seen = now;
                }
                if (tell || moved) && changed.send(()).await.is_err() {
                    return;
                }
            }
        });
    }
}

fn record(row: &AnyRow) -> RunRecord {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestDb;

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

    /// One conformance test, run against a SQLite file and against a fresh PostgreSQL
    /// database: both backends must behave the same.
    macro_rules! conformance {
        ($name:ident, $body:expr) => {
            mod $name {
                use super::*;

                #[tokio::test]
                async fn sqlite() {
                    let store = Store::open(&dir(stringify!($name))).await.unwrap();
                    assert_eq!(store.backend(), Backend::Sqlite);
                    ($body)(store).await;
                }

                #[tokio::test]
                async fn postgres() {
                    let Some(db) = TestDb::create(stringify!($name)).await else { return };
                    let store = Store::connect(&db.url).await.unwrap();
                    assert_eq!(store.backend(), Backend::Postgres);
                    ($body)(store.clone()).await;
                    store.pool.close().await;
                    db.drop_database().await;
                }
            }
        };
    }

    conformance!(records_round_trip_and_filter, |store: Store| async move {
        let a = record("a", 100, Outcome::Succeeded);
        store.put(&a).await.unwrap();
        store.put(&record("a", 200, Outcome::Failed)).await.unwrap();
        store.put(&record("b", 150, Outcome::Succeeded)).await.unwrap();
        assert_eq!(store.run(&a.id).await.unwrap(), Some(a.clone()));
        assert_eq!(store.run("nope").await.unwrap(), None);
        let all = store.runs(&RunFilter::default()).await.unwrap();
        assert_eq!(all.iter().map(|r| r.slot_ts).collect::<Vec<_>>(), [200, 150, 100]);
        let failed = RunFilter {
            task: Some("a".into()),
            outcome: Some(Outcome::Failed),
            ..RunFilter::default()
        };
        assert_eq!(store.runs(&failed).await.unwrap().len(), 1);
        let window = RunFilter { since: Some(120), until: Some(200), ..RunFilter::default() };
        assert_eq!(store.runs(&window).await.unwrap()[0].slot_ts, 150);
        let listing = RunFilter { without_output: true, ..RunFilter::default() };
        assert!(store.runs(&listing).await.unwrap().iter().all(|r| r.output.is_empty()));
        assert_eq!(store.last_slot("a", None).await.unwrap(), Some(200));
        assert_eq!(store.last_slot("a", Some("n1")).await.unwrap(), Some(200));
        assert_eq!(store.last_slot("a", Some("n2")).await.unwrap(), None);
        assert_eq!(store.last_slot("zzz", None).await.unwrap(), None);
        // Updating a run replaces its row.
        store.put(&RunRecord { outcome: Outcome::Killed, ..a.clone() }).await.unwrap();
        assert_eq!(store.run(&a.id).await.unwrap().unwrap().outcome, Outcome::Killed);
        let recent = store.recent_by_task(1).await.unwrap();
        let latest: Vec<(&str, i64)> =
            recent.iter().map(|r| (r.task.as_str(), r.slot_ts)).collect();
        assert_eq!(latest, [("a", 200), ("b", 150)]);
    });

    conformance!(pages_follow_the_cursor, |store: Store| async move {
        for ts in 1..=7 {
            store.put(&record("p", ts, Outcome::Succeeded)).await.unwrap();
        }
        let mut filter = RunFilter { limit: 3, ..RunFilter::default() };
        let mut seen = Vec::new();
        loop {
            let page = store.page(&filter).await.unwrap();
            seen.extend(page.runs.iter().map(|r| r.slot_ts));
            match page.next {
                Some(next) => filter.cursor = Some(next),
                None => break,
            }
        }
        assert_eq!(seen, [7, 6, 5, 4, 3, 2, 1]);
    });

    conformance!(retention_by_age_and_count_per_task, |store: Store| async move {
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
    });

    conformance!(running_runs_of_a_node_become_abandoned, |store: Store| async move {
        store.put(&record("a", 100, Outcome::Running)).await.unwrap();
        store.put(&record("a", 101, Outcome::Succeeded)).await.unwrap();
        assert_eq!(store.abandon_running("other-node", "2026-11-23T11:00:00Z").await.unwrap(), 0);
        assert_eq!(store.abandon_running("n1", "2026-11-23T11:00:00Z").await.unwrap(), 1);
        let r = store.run("a@100#1").await.unwrap().unwrap();
        assert_eq!(
            (r.outcome, r.ended_at.as_deref()),
            (Outcome::Abandoned, Some("2026-11-23T11:00:00Z"))
        );
    });

    conformance!(api_tasks_with_revisions_and_pauses, |store: Store| async move {
        let t = StoredTask {
            name: "rule".into(),
            definition: serde_json::json!({"schedule": "@every 7d"}),
            revision: 1,
            created_at: "2026-05-01T00:00:00Z".into(),
            updated_at: "2026-05-01T00:00:00Z".into(),
        };
        assert!(store.put_api_task(&t, None).await.unwrap());
        assert!(!store.put_api_task(&t, None).await.unwrap(), "a name is created once");
        let t2 = StoredTask { revision: 2, definition: serde_json::json!({"x": 1}), ..t.clone() };
        assert!(!store.put_api_task(&t2, Some(5)).await.unwrap(), "stale revision");
        assert!(store.put_api_task(&t2, Some(1)).await.unwrap());
        assert_eq!(store.api_tasks().await.unwrap(), std::slice::from_ref(&t2));
        store.set_paused("rule", Some(Some("2030-01-01T00:00:00Z"))).await.unwrap();
        store.set_paused("rule", Some(None)).await.unwrap();
        assert_eq!(store.paused().await.unwrap(), [("rule".to_owned(), None)]);
        assert!(!store.delete_api_task("rule", Some(1)).await.unwrap());
        assert!(store.delete_api_task("rule", Some(2)).await.unwrap());
        assert!(store.api_tasks().await.unwrap().is_empty());
        assert!(store.paused().await.unwrap().is_empty(), "its pause goes with it");
    });

    conformance!(nodes_register_and_heartbeat, |store: Store| async move {
        let node = NodeRecord {
            name: "web-1".into(),
            addresses: vec!["10.0.0.5".into()],
            tags: vec!["web".into()],
            version: "0.1.0".into(),
            api: Some("https://10.0.0.5:7070".into()),
            started_at: "2026-11-23T10:00:00Z".into(),
            last_seen: "2026-11-23T10:00:00Z".into(),
            stopped_at: None,
        };
        store.register_node(&node).await.unwrap();
        store.heartbeat("web-1", "2026-11-23T10:00:05Z", false).await.unwrap();
        let seen = store.nodes().await.unwrap();
        assert_eq!(seen, [NodeRecord { last_seen: "2026-11-23T10:00:05Z".into(), ..node.clone() }]);
        store.heartbeat("web-1", "2026-11-23T10:01:00Z", true).await.unwrap();
        assert_eq!(
            store.nodes().await.unwrap()[0].stopped_at.as_deref(),
            Some("2026-11-23T10:01:00Z")
        );
        // Started again: running again.
        store.register_node(&node).await.unwrap();
        assert_eq!(store.nodes().await.unwrap()[0].stopped_at, None);
    });

    conformance!(leases_limit_runs_and_expire, |store: Store| async move {
        assert_eq!(store.lease("t", 2, "a", "r1", 100, 130).await.unwrap(), Some(0));
        assert_eq!(store.lease("t", 2, "b", "r2", 100, 130).await.unwrap(), Some(1));
        assert_eq!(store.lease("t", 2, "c", "r3", 100, 130).await.unwrap(), None, "both held");
        store.renew_lease("t", 0, "r1", None).await.unwrap();
        assert_eq!(store.lease("t", 2, "c", "r3", 101, 131).await.unwrap(), Some(0), "given back");
        store.renew_lease("t", 1, "r2", Some(200)).await.unwrap();
        // r3's lease expires at 131; at 140 another run may take its seat, not r2's (renewed).
        assert_eq!(store.lease("t", 2, "d", "r4", 140, 170).await.unwrap(), Some(0));
        assert_eq!(store.lease("t", 2, "e", "r5", 140, 170).await.unwrap(), None);
    });

    conformance!(a_finished_run_is_never_rolled_back, |store: Store| async move {
        let running = record("a", 100, Outcome::Running);
        let done = RunRecord { outcome: Outcome::Succeeded, ..running.clone() };
        store.put(&running).await.unwrap();
        store.put(&done).await.unwrap();
        // A start record arriving late (flushed from a spool) leaves the end in place.
        store.put(&running).await.unwrap();
        assert_eq!(store.run(&done.id).await.unwrap().unwrap().outcome, Outcome::Succeeded);
        // A lost run that ended after all gets its real end.
        let lost = RunRecord { outcome: Outcome::Lost, ..record("b", 100, Outcome::Running) };
        store.put(&lost).await.unwrap();
        let failed = RunRecord { outcome: Outcome::Failed, ..lost.clone() };
        store.put(&failed).await.unwrap();
        assert_eq!(store.run(&lost.id).await.unwrap().unwrap().outcome, Outcome::Failed);
    });

    conformance!(lost_runs_are_handed_over_once, |store: Store| async move {
        let mut run = RunRecord { node: "a".into(), ..record("t", 100, Outcome::Running) };
        store.put(&run).await.unwrap();
        assert_eq!(store.lease("t", 1, "a", &run.id, 100, 130).await.unwrap(), Some(0));
        let lost = store.lose_runs(&["a".into()], "later").await.unwrap();
        assert_eq!(lost.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), [run.id.as_str()]);
        // The lost run's lease is free at once.
        assert_eq!(store.lease("t", 1, "b", "t-retry", 101, 131).await.unwrap(), Some(0));
        run.outcome = Outcome::Lost;
        assert!(store.hand_off(&run, "lost with node a", "now").await.unwrap());
        assert!(!store.hand_off(&run, "again", "now").await.unwrap(), "once per slot");
        assert!(store.handoffs("a").await.unwrap().is_empty(), "not to the node it came from");
        assert_eq!(store.handoffs("b").await.unwrap(), [("t".to_owned(), 100, 2)]);
        assert!(!store.take_handoff("t", 100, "a").await.unwrap());
        assert!(store.take_handoff("t", 100, "b").await.unwrap());
        assert!(!store.take_handoff("t", 100, "c").await.unwrap(), "taken once");
        assert!(store.handoffs("c").await.unwrap().is_empty());
        // b could not run it after all: offered again.
        store.release_handoff("t", 100).await.unwrap();
        assert!(store.take_handoff("t", 100, "c").await.unwrap());
    });

    conformance!(a_seat_is_claimed_once, |store: Store| async move {
        assert!(store.claim("t", 100, 0, "a", "now").await.unwrap());
        assert!(!store.claim("t", 100, 0, "b", "now").await.unwrap());
        assert!(store.claim("t", 100, 1, "b", "now").await.unwrap());
        assert!(store.claim("t", 101, 0, "b", "now").await.unwrap());
        // Asking again for a seat it holds (its first answer was lost) is not a second claim
        // by another node.
        assert!(store.claim("t", 100, 0, "a", "later").await.unwrap());
        assert!(!store.claim("t", 100, 0, "b", "later").await.unwrap());
        // Pruning forgets the claims of old slots.
        store.prune(1000, 101).await.unwrap();
        assert!(store.claim("t", 100, 0, "c", "now").await.unwrap());
        assert!(!store.claim("t", 101, 0, "c", "now").await.unwrap());
        // Many at once: only the free ones (and those it holds) are its own.
        let wanted: Vec<(String, i64, u32)> = vec![
            ("t".into(), 101, 0),
            ("t".into(), 102, 0),
            ("u".into(), 101, 0),
            ("t".into(), 100, 0),
        ];
        let got = store.claim_many(&wanted, "c", "now").await.unwrap();
        let mut got: Vec<_> = got.into_iter().collect();
        got.sort();
        assert_eq!(got, [("t".into(), 100, 0), ("t".into(), 102, 0), ("u".into(), 101, 0)]);
        assert!(store.claim_many(&wanted[1..3], "d", "now").await.unwrap().is_empty());
        // Names travel intact, whatever they hold (PostgreSQL gets the seats as JSON).
        let odd: Vec<(String, i64, u32)> = vec![("we\"ird, [name] ✓".into(), 7, 2)];
        assert_eq!(store.claim_many(&odd, "c", "now").await.unwrap().len(), 1);
        assert_eq!(store.claim_many(&odd, "c", "again").await.unwrap().len(), 1, "its own");
        assert!(store.claim_many(&odd, "d", "now").await.unwrap().is_empty());
        assert_eq!(store.claim_holder(&odd[0].0, 7, 2).await.unwrap().as_deref(), Some("c"));
        assert_eq!(store.claim_holder(&odd[0].0, 7, 3).await.unwrap(), None);
        // A seat given back is free again; only its holder can give it back.
        assert!(!store.unclaim("t", 102, 0, "d").await.unwrap());
        assert!(store.unclaim("t", 102, 0, "c").await.unwrap());
        assert!(store.claim("t", 102, 0, "d", "then").await.unwrap());
        let claims = store.claims("t").await.unwrap();
        let held: Vec<(i64, u32, &str, &str)> = claims
            .iter()
            .map(|c| (c.slot_ts, c.seat, c.node.as_str(), c.claimed_at.as_str()))
            .collect();
        assert_eq!(held, [(100, 0, "c", "now"), (101, 0, "b", "now"), (102, 0, "d", "then")]);
    });

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn runs_are_spooled_while_the_database_is_away_and_flushed_when_it_is_back() {
        let Some(mut server) = crate::testing::PgServer::start("spool") else { return };
        let spool_dir = dir("spool");
        let store =
            Store::connect(&server.url).await.unwrap().with_spool(&spool_dir, "n1").await.unwrap();
        let before = RunRecord { node: "n1".into(), ..record("a", 100, Outcome::Succeeded) };
        store.put(&before).await.unwrap();
        assert!(!store.away());

        server.stop();
        // A run starts and ends while the database is away; another is still going.
        let started = RunRecord { node: "n1".into(), ..record("a", 200, Outcome::Running) };
        store.put(&started).await.expect("spooled, not an error");
        assert!(store.away());
        let ended = RunRecord { outcome: Outcome::Failed, ..started.clone() };
        store.put(&ended).await.unwrap();
        let going = RunRecord { node: "n1".into(), ..record("a", 300, Outcome::Running) };
        store.put(&going).await.unwrap();
        // A slot of a `run_on` task nobody could claim, and one another node will have claimed.
        let slot =
            |ts: i64| jiff::Timestamp::from_second(ts).unwrap().to_zoned(jiff::tz::TimeZone::UTC);
        store.unclaimed("solo", &slot(400), 1);
        store.unclaimed("solo", &slot(401), 1);
        assert!(store.flush("n1").await.is_err(), "still away");

        server.start_again();
        store.claim("solo", 401, 0, "n2", "now").await.unwrap();
        let flushed = store.flush("n1").await.unwrap();
        assert_eq!(flushed, Flushed { runs: 2, missed: 1 });
        assert!(!store.away());
        let runs = store.runs(&RunFilter::default()).await.unwrap();
        let outcomes: Vec<(i64, Outcome)> = runs.iter().map(|r| (r.slot_ts, r.outcome)).collect();
        assert_eq!(
            outcomes,
            [
                (400, Outcome::Missed),
                (300, Outcome::Running),
                (200, Outcome::Failed),
                (100, Outcome::Succeeded)
            ]
        );
        // The run still going ends with the database back: written there directly.
        store.put(&RunRecord { outcome: Outcome::Succeeded, ..going.clone() }).await.unwrap();
        assert_eq!(store.run(&going.id).await.unwrap().unwrap().outcome, Outcome::Succeeded);
        // Nothing left in the spool; flushing again does nothing.
        assert_eq!(store.flush("n1").await.unwrap(), Flushed::default());
        let local = Store::open(&spool_dir).await.unwrap();
        assert!(local.runs(&RunFilter::default()).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn sqlite_migrations_run_once_and_a_newer_schema_is_refused() {
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

    #[tokio::test]
    async fn postgres_migrates_once_under_a_lock_and_refuses_a_newer_schema() {
        let Some(db) = TestDb::create("migrate").await else { return };
        // Agents starting together: one migrates, the others wait and find it done.
        let stores = futures_util::future::join_all((0..4).map(|_| Store::connect(&db.url))).await;
        let stores: Vec<Store> = stores.into_iter().map(Result::unwrap).collect();
        stores[0].put(&record("a", 1, Outcome::Succeeded)).await.unwrap();
        assert_eq!(stores[3].runs(&RunFilter::default()).await.unwrap().len(), 1);
        let version: i64 = sqlx::query("SELECT MAX(version) FROM cronfleet_schema")
            .fetch_one(&stores[0].pool)
            .await
            .unwrap()
            .get(0);
        assert_eq!(version, PG_MIGRATIONS.len() as i64);
        sqlx::query("UPDATE cronfleet_schema SET version = 99")
            .execute(&stores[0].pool)
            .await
            .unwrap();
        for s in stores {
            s.pool.close().await;
        }
        let err = Store::connect(&db.url).await.unwrap_err();
        assert!(matches!(err, StoreError::TooNew { found: 99, .. }), "{err}");
        assert!(
            !err.to_string().contains("@127.0.0.1") || err.to_string().contains(":***@"),
            "{err}"
        );
        db.drop_database().await;
    }

    #[tokio::test]
    async fn postgres_over_tls() {
        let Some(db) = TestDb::create("tls").await else { return };
        let sep = if db.url.contains('?') { '&' } else { '?' };
        let url = format!("{}{sep}sslmode=require", db.url);
        let store = match Store::connect(&url).await {
            Ok(store) => store,
            Err(e) if e.to_string().contains("does not support SSL") => {
                eprintln!("skipped: this PostgreSQL server has ssl = off");
                db.drop_database().await;
                return;
            }
            Err(e) => panic!("{e}"),
        };
        let encrypted: bool =
            sqlx::query("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
                .fetch_one(&store.pool)
                .await
                .unwrap()
                .get(0);
        assert!(encrypted, "the connection is encrypted");
        store.put(&record("a", 1, Outcome::Succeeded)).await.unwrap();
        store.pool.close().await;
        db.drop_database().await;
    }

    #[test]
    fn urls_are_shown_without_passwords() {
        assert_eq!(redact("postgres://cf:s3cret@db:5432/fleet"), "postgres://cf:***@db:5432/fleet");
        assert_eq!(redact("postgres://db/fleet"), "postgres://db/fleet");
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
            Outcome::Lost,
        ] {
            assert_eq!(o.as_str().parse::<Outcome>(), Ok(o));
        }
        assert!("weird".parse::<Outcome>().is_err());
    }
}
