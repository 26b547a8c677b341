//! Test support: a fresh PostgreSQL database per test.
//!
//! The server is `CRONFLEET_TEST_DATABASE_URL` (any database on it; the tests create their
//! own), else `postgres://postgres@127.0.0.1:5432/postgres`. Without a reachable server the
//! PostgreSQL tests are skipped, except under CI (`CI` set), where they fail: `.ci/run`
//! installs and starts PostgreSQL when the machine has none.

use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::{any::AnyPoolOptions, Executor};

/// A database made for one test, dropped by [`TestDb::drop_database`].
#[derive(Debug)]
pub struct TestDb {
    /// Its URL.
    pub url: String,
    server: String,
    name: String,
}

/// The server's URL with `database` instead of its own.
fn with_database(server: &str, database: &str) -> String {
    let (base, query) = match server.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (server, String::new()),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[scheme_end..].find('/').map_or(base.len(), |i| scheme_end + i);
    format!("{}/{database}{query}", &base[..host_end])
}

impl TestDb {
    /// A fresh, empty database, or `None` (with a message) when no server can be reached
    /// outside CI.
    ///
    /// # Panics
    /// Under CI, when no server can be reached.
    pub async fn create(label: &str) -> Option<TestDb> {
        static N: AtomicU32 = AtomicU32::new(0);
        sqlx::any::install_default_drivers();
        let server = std::env::var("CRONFLEET_TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
        let admin = match AnyPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(std::time::Duration::from_secs(5))
            .connect(&server)
            .await
        {
            Ok(pool) => pool,
            Err(e) => {
                assert!(
                    std::env::var_os("CI").is_none(),
                    "CI needs PostgreSQL at {server}: {e} (.ci/run installs and starts it)"
                );
                eprintln!(
                    "skipped: no PostgreSQL at {server} ({e}); set CRONFLEET_TEST_DATABASE_URL"
                );
                return None;
            }
        };
        let name = format!(
            "cronfleet_test_{}_{}_{}",
            label,
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        admin
            .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await
            .expect("CREATE DATABASE");
        admin.close().await;
        Some(TestDb { url: with_database(&server, &name), server, name })
    }

    /// Drops the database (connections to it are closed first).
    pub async fn drop_database(self) {
        let Ok(admin) = AnyPoolOptions::new().max_connections(1).connect(&self.server).await else {
            return;
        };
        let _ = admin
            .execute(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            )))
            .await;
        admin.close().await;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn database_urls() {
        assert_eq!(
            super::with_database("postgres://u:p@h:5432/postgres?sslmode=disable", "t1"),
            "postgres://u:p@h:5432/t1?sslmode=disable"
        );
        assert_eq!(super::with_database("postgres://h", "t1"), "postgres://h/t1");
    }
}
