//! Tasks kept in the store: tasks created through the API (with revisions), pauses, and the
//! fleet's task file (`cronfleet apply --store`). In a shared store, every change here is
//! announced to the other agents (the change feed, see `Fleet::watch_changes`).

use sqlx::Row;

use super::{Store, StoreError};

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

/// The name of the fleet's task file in `task_files`.
const FLEET_FILE: &str = "fleet";

impl Store {
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
        self.changed().await;
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
        self.changed().await;
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
            Some(until) => sqlx::query(
                "INSERT INTO paused (task, until) VALUES ($1, $2) \
                 ON CONFLICT (task) DO UPDATE SET until = excluded.until",
            )
            .bind(task)
            .bind(until),
            None => sqlx::query("DELETE FROM paused WHERE task = $1").bind(task),
        };
        query.execute(&self.pool).await.map_err(self.sql())?;
        self.changed().await;
        Ok(())
    }

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
        self.changed().await;
        Ok(row.get(0))
    }

    /// Tells the agents sharing this database that definitions or pauses changed (nothing
    /// with a store of its own).
    async fn changed(&self) {
        if let Some(fleet) = self.fleet() {
            fleet.notify_changed().await;
        }
    }
}
