//! This node, its host, and the nodes of the fleet.

use serde::{Deserialize, Serialize};

use crate::store::{NodeRecord, NodeStatus};

/// `GET /api/v1/node`: this node, its host and its agent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct Node {
    /// The host's addresses.
    pub addresses: Vec<String>,
    /// The agent's resident memory, bytes.
    pub agent_rss: Option<u64>,
    /// The task file.
    pub config: std::path::PathBuf,
    /// Whether the task file on disk is in effect.
    pub task_file: TaskFileState,
    /// The machine.
    pub host: Machine,
    /// The node's name.
    pub name: String,
    /// The agent's process id.
    pub pid: u32,
    /// Runs in flight on this node.
    pub runs_in_flight: usize,
    /// When the agent started.
    #[cfg_attr(test, schemars(extend("format" = "date-time")))]
    pub started_at: String,
    /// The node's tags (`--tag`).
    pub tags: Vec<String>,
    /// The tasks this node runs.
    pub tasks: usize,
    /// Seconds since the agent started.
    pub uptime_s: i64,
    /// The agent's version.
    pub version: String,
}

/// The task file as the agent last read it: a reload that fails keeps the tasks of the last
/// good file, and this says so.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct TaskFileState {
    /// False when the last reload failed: the file on disk is not in effect.
    pub in_effect: bool,
    /// When the file was last read (at start or a reload).
    #[cfg_attr(test, schemars(extend("format" = "date-time")))]
    pub last_reload_at: String,
    /// When it was last read without error: the tasks in effect are from that read.
    #[cfg_attr(test, schemars(extend("format" = "date-time")))]
    pub last_success_at: String,
    /// Why the last reload failed (`file:line:column: ...` each); empty when it did not.
    pub errors: Vec<String>,
}

impl TaskFileState {
    /// The agent's [`crate::agent::ReloadState`] as the API shows it.
    pub fn of(state: &crate::agent::ReloadState) -> TaskFileState {
        TaskFileState {
            in_effect: state.in_effect(),
            last_reload_at: state.last_attempt.to_string(),
            last_success_at: state.last_success.to_string(),
            errors: state.errors.clone(),
        }
    }
}

/// The machine a node runs on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct Machine {
    /// CPUs the agent may use.
    pub cpus: usize,
    /// Load averages over 1, 5 and 15 minutes (Linux).
    pub load: Vec<f64>,
    /// Bytes of memory available (Linux).
    pub memory_available: Option<u64>,
    /// Bytes of memory (Linux).
    pub memory_total: Option<u64>,
}

/// `GET /api/v1/nodes`: every node registered in the store.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct NodeList {
    /// The nodes.
    pub nodes: Vec<NodeInfo>,
}

/// A node of the fleet, as registered in the store.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct NodeInfo {
    /// Its addresses.
    pub addresses: Vec<String>,
    /// Its API's URL, when it serves one.
    pub api: Option<String>,
    /// When it was last heard from.
    #[cfg_attr(test, schemars(extend("format" = "date-time")))]
    pub last_seen: String,
    /// Its name.
    pub name: String,
    /// When its agent started.
    #[cfg_attr(test, schemars(extend("format" = "date-time")))]
    pub started_at: String,
    /// Alive, stopped or lost.
    pub status: NodeStatus,
    /// When it stopped cleanly.
    #[cfg_attr(test, schemars(extend("format" = "date-time")))]
    pub stopped_at: Option<String>,
    /// Its tags.
    pub tags: Vec<String>,
    /// Its agent's version.
    pub version: String,
}

impl NodeInfo {
    /// A node's record and status.
    pub fn of(n: &NodeRecord, status: NodeStatus) -> NodeInfo {
        NodeInfo {
            addresses: n.addresses.clone(),
            api: n.api.clone(),
            last_seen: n.last_seen.clone(),
            name: n.name.clone(),
            started_at: n.started_at.clone(),
            status,
            stopped_at: n.stopped_at.clone(),
            tags: n.tags.clone(),
            version: n.version.clone(),
        }
    }
}

/// `POST /api/v1/stop`: the agent is stopping.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct Stopping {
    /// The agent's process id (gone once it stopped).
    pub pid: u32,
    /// How long runs in flight are given before their groups are killed (seconds).
    pub shutdown_grace_s: u64,
}
