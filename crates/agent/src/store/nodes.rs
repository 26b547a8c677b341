//! Nodes: the agents that registered in the store, with their heartbeats.

use sqlx::Row;

use super::{Store, StoreError};

/// Whether a node runs, stopped cleanly, or went silent (judged from its record and the time,
/// by `agent::node_status`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum NodeStatus {
    /// Heard from lately.
    Alive,
    /// Stopped cleanly.
    Stopped,
    /// Silent for too long.
    Lost,
}

impl NodeStatus {
    /// Its name, as the API and the dashboard show it.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeStatus::Alive => "alive",
            NodeStatus::Stopped => "stopped",
            NodeStatus::Lost => "lost",
        }
    }
}

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

impl Store {
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
}
