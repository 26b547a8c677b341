//! The schema: `.sql` files per backend under `crates/agent/migrations/`, embedded in the
//! binary by `sqlx::migrate!` and applied by sqlx's migrator, which records each one (with a
//! checksum) in `_sqlx_migrations`.
//!
//! # The bridge from the hand-written runner
//! Before the migrator, cronfleet counted its applied migrations itself: `PRAGMA user_version`
//! in SQLite, the `cronfleet_schema` table in PostgreSQL. The first files here hold exactly
//! those migrations, in the same order, so a database with a count and no `_sqlx_migrations`
//! has its first `count` files marked as applied (`Migrator::skip`, which runs no SQL) and is
//! then upgraded in place like any other.
//!
//! After every upgrade the count is written too. An older cronfleet reads only the count, so
//! it still refuses a schema newer than it knows; and this one refuses a database whose count
//! or migrator records go past its own files before it changes anything there. A database
//! already up to date is not handed to the migrator at all (on PostgreSQL its
//! `CREATE TABLE IF NOT EXISTS` would log a notice on every start).

use sqlx::{migrate::Migrator, AnyConnection, Row};

use super::{Backend, Store, StoreError};

/// The SQLite schema.
static SQLITE: Migrator = sqlx::migrate!("migrations/sqlite");

/// The PostgreSQL schema (the same tables in PostgreSQL's types, and the change feed's
/// triggers).
static POSTGRES: Migrator = sqlx::migrate!("migrations/postgres");

/// The key of the advisory lock the whole upgrade of a PostgreSQL store runs under (agents
/// starting together: one migrates, the others wait and find it done).
const MIGRATION_LOCK: i64 = 0x6372_6f6e_666c_6565; // "cronflee"

/// How many migrations this binary knows for a backend: the schema version it writes.
pub(super) fn known(backend: Backend) -> i64 {
    let migrator = match backend {
        Backend::Sqlite => &SQLITE,
        Backend::Postgres => &POSTGRES,
    };
    migrator.iter().filter(|m| m.migration_type.is_up_migration()).count() as i64
}

/// The schema version of a SQLite database: its count, or its newest recorded migration if
/// that is newer. Only reads.
pub(super) async fn sqlite_version<'e, E>(db: E) -> Result<i64, sqlx::Error>
where
    E: sqlx::Executor<'e, Database = sqlx::Sqlite> + Copy,
{
    let counted: i64 = sqlx::query("PRAGMA user_version").fetch_one(db).await?.get(0);
    let has_records: bool = sqlx::query(
        "SELECT COUNT(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
    )
    .fetch_one(db)
    .await?
    .get(0);
    let recorded: Option<i64> = if has_records {
        sqlx::query("SELECT MAX(version) FROM _sqlx_migrations").fetch_one(db).await?.get(0)
    } else {
        None
    };
    Ok(counted.max(recorded.unwrap_or(0)))
}

/// Brings a SQLite store's schema up to date (one writer: the agent owns its file).
pub(super) async fn sqlite(store: &Store) -> Result<(), StoreError> {
    let mut conn = store.pool.acquire().await.map_err(store.sql())?;
    let conn: &mut AnyConnection = &mut conn;
    let counted: i64 =
        sqlx::query("PRAGMA user_version").fetch_one(&mut *conn).await.map_err(store.sql())?.get(0);
    let exists = "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' \
                  AND name = '_sqlx_migrations'";
    upgrade(store, conn, Backend::Sqlite, counted, exists).await?;
    // A number we count ourselves: PRAGMA takes no bind parameters.
    let count = format!("PRAGMA user_version = {}", known(Backend::Sqlite));
    sqlx::raw_sql(sqlx::AssertSqlSafe(count)).execute(&mut *conn).await.map_err(store.sql())?;
    Ok(())
}

/// Brings a PostgreSQL store's schema up to date, under an advisory lock.
pub(super) async fn postgres(store: &Store) -> Result<(), StoreError> {
    let mut conn = store.pool.acquire().await.map_err(store.sql())?;
    let conn: &mut AnyConnection = &mut conn;
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut *conn)
        .await
        .map_err(store.sql())?;
    let result = postgres_locked(store, conn).await;
    let _ =
        sqlx::query("SELECT pg_advisory_unlock($1)").bind(MIGRATION_LOCK).execute(&mut *conn).await;
    result
}

async fn postgres_locked(store: &Store, conn: &mut AnyConnection) -> Result<(), StoreError> {
    let table = |name: &str| {
        format!(
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_name = '{name}' \
             AND table_schema = current_schema()"
        )
    };
    // (Not `CREATE TABLE IF NOT EXISTS`: PostgreSQL would log a notice on every start.)
    let has_count = sqlx::query(sqlx::AssertSqlSafe(table("cronfleet_schema")))
        .fetch_one(&mut *conn)
        .await
        .map_err(store.sql())?
        .get::<i64, _>(0)
        > 0;
    if !has_count {
        sqlx::raw_sql("CREATE TABLE cronfleet_schema (version BIGINT NOT NULL)")
            .execute(&mut *conn)
            .await
            .map_err(store.sql())?;
    }
    let counted: Option<i64> = sqlx::query("SELECT MAX(version) FROM cronfleet_schema")
        .fetch_one(&mut *conn)
        .await
        .map_err(store.sql())?
        .get(0);
    let exists = table("_sqlx_migrations");
    upgrade(store, conn, Backend::Postgres, counted.unwrap_or(0), &exists).await?;
    let mut tx = sqlx::Connection::begin(&mut *conn).await.map_err(store.sql())?;
    sqlx::query("DELETE FROM cronfleet_schema").execute(&mut *tx).await.map_err(store.sql())?;
    sqlx::query("INSERT INTO cronfleet_schema (version) VALUES ($1)")
        .bind(known(Backend::Postgres))
        .execute(&mut *tx)
        .await
        .map_err(store.sql())?;
    tx.commit().await.map_err(store.sql())
}

/// Refuses a newer schema, bridges a counted one to the migrator's records, then applies
/// what is missing. `exists` counts the tables named `_sqlx_migrations`.
async fn upgrade(
    store: &Store,
    conn: &mut AnyConnection,
    backend: Backend,
    counted: i64,
    exists: &str,
) -> Result<(), StoreError> {
    let known = known(backend);
    // (A count, not a boolean: SQLite has no boolean type for the `Any` driver to decode.)
    let has_records = sqlx::query(sqlx::AssertSqlSafe(exists.to_owned()))
        .fetch_one(&mut *conn)
        .await
        .map_err(store.sql())?
        .get::<i64, _>(0)
        > 0;
    let recorded: Option<i64> = if has_records {
        sqlx::query("SELECT MAX(version) FROM _sqlx_migrations")
            .fetch_one(&mut *conn)
            .await
            .map_err(store.sql())?
            .get(0)
    } else {
        None
    };
    let found = counted.max(recorded.unwrap_or(0));
    if found > known {
        return Err(StoreError::TooNew { path: store.path.clone(), found, known });
    }
    if recorded == Some(known) && counted >= known {
        return Ok(());
    }
    let migrator = match backend {
        Backend::Sqlite => &SQLITE,
        Backend::Postgres => &POSTGRES,
    };
    let migrate = |e: sqlx::migrate::MigrateError| store.sql()(e.into());
    if counted > 0 && !has_records {
        migrator.skip(&mut *conn, Some(counted)).await.map_err(migrate)?;
    }
    migrator.run(&mut *conn).await.map_err(migrate)
}

/// The checksum (its first 8 bytes, in hex) of every migration a backend has, by version: what
/// `_sqlx_migrations` records of each.
#[cfg(test)]
pub(super) fn checksums(backend: Backend) -> Vec<(i64, String)> {
    let migrator = match backend {
        Backend::Sqlite => &SQLITE,
        Backend::Postgres => &POSTGRES,
    };
    migrator.iter().map(|m| (m.version, hex::encode(&m.checksum[..8]))).collect()
}
