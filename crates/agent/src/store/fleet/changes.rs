//! The change feed: agents sharing the database hear of every change to definitions and
//! pauses (a PostgreSQL NOTIFY after each write to them), and a fingerprint catches notices
//! lost while a connection was down.

use std::time::Duration;

use sqlx::Row;

use super::{Fleet, StoreError};

/// The channel changes are announced on.
const CHANGES: &str = "cronfleet_changes";

impl Fleet {
    /// Tells the agents sharing this database that definitions or pauses changed. A lost
    /// notice is caught by [`Fleet::fingerprint`].
    pub(in crate::store) async fn notify_changed(&self) {
        let notify =
            sqlx::query("SELECT pg_notify($1, '')").bind(CHANGES).execute(&self.store.pool);
        if let Err(e) = notify.await {
            tracing::warn!(error = %e, "cannot tell the other agents of the change");
        }
    }

    /// What the agents' definitions and pauses depend on, in one text: it changes whenever
    /// the task file, an API task or a pause does.
    ///
    /// # Errors
    /// When the database cannot be read.
    pub async fn fingerprint(&self) -> Result<String, StoreError> {
        let file: Option<i64> = sqlx::query("SELECT MAX(revision) FROM task_files")
            .fetch_one(&self.store.pool)
            .await
            .map_err(self.store.sql())?
            .get(0);
        let api = sqlx::query("SELECT COUNT(*), COALESCE(SUM(revision), 0) FROM api_tasks")
            .fetch_one(&self.store.pool)
            .await
            .map_err(self.store.sql())?;
        let (count, sum): (i64, i64) = (api.get(0), api.get(1));
        let paused = self.store.paused().await?;
        Ok(format!("{file:?} {count} {sum} {paused:?}"))
    }

    /// Sends on `changed` when another agent changed definitions or pauses: at once on a
    /// PostgreSQL notice, and when [`Fleet::fingerprint`] differs from the last one seen
    /// (checked every `every`, for notices lost while the connection was down). Returns when
    /// `changed` is closed or `stop` is cancelled; the caller decides where it runs.
    pub async fn watch_changes(
        &self,
        changed: tokio::sync::mpsc::Sender<()>,
        every: Duration,
        stop: tokio_util::sync::CancellationToken,
    ) {
        let mut seen = self.fingerprint().await.ok();
        let mut listener: Option<sqlx::postgres::PgListener> = None;
        let mut poll = tokio::time::interval(every);
        loop {
            if listener.is_none() {
                match sqlx::postgres::PgListener::connect(&self.store.url.0).await {
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
                () = stop.cancelled() => return,
            };
            let now = self.fingerprint().await.ok();
            let moved = now.is_some() && now != seen;
            if now.is_some() {
                seen = now;
            }
            if (tell || moved) && changed.send(()).await.is_err() {
                return;
            }
        }
    }
}
