//! The store: run history, tasks and nodes, in an embedded SQLite file of the agent's or a
//! PostgreSQL database that a fleet shares.
//!
//! # Layout
//! - this module: opening a store, its errors, the few helpers every part uses;
//! - `migrate`: the schema, `.sql` files per backend run by sqlx's migrator;
//! - `runs`: one row per run (or skipped or missed slot), written when the run starts and
//!   updated when it ends, so a run that was going when the agent died is found at the next
//!   start and recorded as abandoned; listing, paging and retention;
//! - `tasks`: tasks created through the API, pauses, the fleet's task file;
//! - `nodes`: the agents that registered, with their heartbeats;
//! - [`fleet`]: what exists only when several agents share a PostgreSQL store (claims, leases,
//!   handoffs, the chores' leader lock, the change feed, the spool). [`Store::fleet`] is the
//!   only way to it, so single-node code cannot reach a fleet path by mistake.
//!
//! The SQL text is the same for both backends wherever it can be (sqlx's `Any` driver, `$N`
//! parameters, standard upserts); the conformance tests in `tests.rs` run each part against
//! both.

use std::{path::Path, sync::Arc, time::Duration};

use sqlx::{
    any::AnyPoolOptions,
    sqlite::{SqliteConnectOptions, SqlitePoolOptions},
    AnyPool, Row,
};

pub mod fleet;
mod migrate;
mod nodes;
mod runs;
mod tasks;
#[cfg(test)]
mod tests;

pub use fleet::{Claim, Fleet, Flushed, Handoff, Leader, Seat};
pub use nodes::{NodeRecord, NodeStatus};
pub use runs::{parse_cursor, run_id, Outcome, RunFilter, RunPage, RunRecord, UnknownOutcome};
pub use tasks::StoredTask;

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
    /// Where run records go while a shared database is away (see [`Store::with_spool`]).
    spool: Option<Arc<fleet::Spool>>,
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

/// A path as a `sqlite://` URL (what a URL would read otherwise, escaped).
fn sqlite_url(file: &Path) -> String {
    const SPECIAL: &percent_encoding::AsciiSet =
        &percent_encoding::CONTROLS.add(b'%').add(b' ').add(b'?').add(b'#');
    let path = file.display().to_string();
    format!("sqlite://{}?mode=rwc", percent_encoding::utf8_percent_encode(&path, SPECIAL))
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
        crate::private::dir(dir).map_err(|e| sql(sqlx::Error::Io(e)))?;
        // A database from a newer cronfleet is refused before anything touches it (switching to
        // WAL would already rewrite its header).
        if file.exists() {
            let (found, known, _) = Store::inspect(dir).await?;
            if found > known {
                return Err(StoreError::TooNew { path, found, known });
            }
        }
        // Made (or tightened to) 0600 before SQLite opens it: SQLite gives the `-wal` and
        // `-shm` files it creates the database's mode. Ones left by an older cronfleet are
        // tightened too.
        crate::private::file(&file).map_err(|e| sql(sqlx::Error::Io(e)))?;
        for suffix in ["-wal", "-shm"] {
            let mut side = file.clone().into_os_string();
            side.push(suffix);
            crate::private::tighten(Path::new(&side)).map_err(|e| sql(sqlx::Error::Io(e)))?;
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
        migrate::sqlite(&store).await?;
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
        migrate::postgres(&store).await?;
        Ok(store)
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The fleet's part of this store: `Some` only for PostgreSQL, which several agents may
    /// share (run ids then name the node; claims, leases and handoffs exist).
    pub fn fleet(&self) -> Option<Fleet> {
        (self.backend == Backend::Postgres).then(|| Fleet::new(self.clone()))
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
        let version = migrate::sqlite_version(&pool).await.map_err(sql)?;
        let runs: i64 = if version >= 1 {
            sqlx::query("SELECT COUNT(*) FROM runs").fetch_one(&pool).await.map_err(sql)?.get(0)
        } else {
            0
        };
        pool.close().await;
        Ok((version, migrate::known(Backend::Sqlite), runs))
    }

    /// Maps a database error to this store's error (naming the file or the redacted URL).
    fn sql(&self) -> impl Fn(sqlx::Error) -> StoreError + '_ {
        |source| StoreError::Sql { path: self.path.clone(), source }
    }
}
