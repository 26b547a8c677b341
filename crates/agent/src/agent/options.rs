//! How an agent is started: its options, where its state lives, and why it could not start.

use std::{path::PathBuf, time::Duration};

use super::Host;
use crate::{config, store::Store};

/// How the agent runs.
#[derive(Clone, Debug)]
pub struct Options {
    /// The task file.
    pub config: PathBuf,
    /// This machine's identity.
    pub host: Host,
    /// How long runs get to finish when the agent stops, before their groups are killed.
    pub shutdown_grace: Duration,
    /// Reload when the task file changes on disk.
    pub watch: bool,
    /// Where the run history lives.
    pub state_dir: PathBuf,
    /// Runs kept per task.
    pub keep_runs: u32,
    /// Runs older than this are deleted.
    pub keep_for: Duration,
    /// The store: `None` for SQLite in the state directory, else a `postgres://` URL.
    pub store: Option<String>,
    /// The task file is the fleet's, in the store (`cronfleet apply --store`), not `config`
    /// (which is then only its name in messages, [`STORE_FILE`]).
    pub tasks_from_store: bool,
}

/// How the fleet's task file in the store is named in messages.
pub const STORE_FILE: &str = "store:tasks.toml";

/// Reads and validates the agent's task file: from disk, or the fleet's from the store (no
/// file applied yet: no tasks).
pub(super) async fn read_task_file(
    options: &Options,
    store: &Store,
) -> Result<config::TaskSet, config::ConfigErrors> {
    if !options.tasks_from_store {
        return config::load(&options.config);
    }
    match store.task_file().await {
        Ok(Some((text, _))) => config::parse(&options.config, &text),
        Ok(None) => config::parse(&options.config, ""),
        Err(e) => Err(config::ConfigErrors(vec![config::ConfigError {
            file: options.config.display().to_string(),
            line: 0,
            column: 0,
            task: None,
            field: None,
            message: format!("cannot read the task file from the database: {e}"),
        }])),
    }
}

/// Why the agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The task file is invalid.
    #[error("{0}")]
    Config(#[from] config::ConfigErrors),
    /// The state database cannot be used.
    #[error("{0}")]
    Store(#[from] crate::store::StoreError),
}

/// The default state directory: `/var/lib/cronfleet` for root, else
/// `$XDG_STATE_HOME/cronfleet` (or `~/.local/state/cronfleet`).
pub fn default_state_dir() -> PathBuf {
    if nix::unistd::geteuid().is_root() {
        return PathBuf::from("/var/lib/cronfleet");
    }
    let base = std::env::var_os("XDG_STATE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("cronfleet")
}

/// What `cronfleet status` needs to know about a running agent, in `STATE_DIR/agent.json`.
pub(super) fn write_identity(options: &Options) {
    let config = std::fs::canonicalize(&options.config).unwrap_or_else(|_| options.config.clone());
    let identity = Identity {
        pid: std::process::id(),
        config,
        node: options.host.name.clone(),
        tags: options.host.tags.clone(),
        started_at: crate::clock::now().to_string(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        store: options.store.as_deref().map(crate::store::redact),
    };
    let file = options.state_dir.join("agent.json");
    let text = serde_json::to_string(&identity).unwrap_or_default();
    if let Err(e) = crate::private::write(&file, text.as_bytes()) {
        tracing::warn!(error = %e, "cannot write agent.json in the state directory");
    }
}

/// What `STATE_DIR/agent.json` says of the agent that last ran with that state directory:
/// written at its start, read by `status`, `doctor` and the CLI's client.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Identity {
    // (Fields in alphabetical order: the file's keys keep the order they always had.)
    /// Its task file (absolute).
    pub config: PathBuf,
    /// Its node name.
    pub node: String,
    /// Its process.
    pub pid: u32,
    /// When it started.
    pub started_at: String,
    /// Where its tasks and history are (a shared store; password hidden).
    pub store: Option<String>,
    /// Its tags.
    pub tags: Vec<String>,
    /// Its version.
    pub version: String,
}

impl Identity {
    /// The identity in `dir`, if an agent wrote one that can be read.
    pub fn read(dir: &std::path::Path) -> Option<Identity> {
        let text = std::fs::read_to_string(dir.join("agent.json")).ok()?;
        serde_json::from_str(&text).ok()
    }
}

/// When the agent of `dir` keeps its history in a shared database: why the state directory
/// alone cannot answer (for `status`, `runs` and `logs` while that agent is stopped).
pub fn shared_store_hint(dir: &std::path::Path) -> Option<String> {
    let identity = Identity::read(dir)?;
    let store = identity.store?;
    Some(format!(
        "the agent of {} keeps its tasks and history in {store}, and is not running: ask \
         another agent of the fleet (--server URL --token-file FILE)",
        dir.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What an agent of the previous version wrote is read, and written back the same.
    #[test]
    fn an_identity_reads_and_writes_the_file_it_always_had() {
        let before = r#"{"config":"/etc/cronfleet/tasks.toml","node":"web-1","pid":42,"started_at":"2026-12-07T10:00:00Z","store":null,"tags":["web"],"version":"0.1.0"}"#;
        let identity: Identity = serde_json::from_str(before).unwrap();
        assert_eq!((identity.pid, identity.node.as_str()), (42, "web-1"));
        assert_eq!(identity.tags, ["web"]);
        assert_eq!(serde_json::to_string(&identity).unwrap(), before);
    }
}
