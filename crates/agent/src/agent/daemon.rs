//! Daemon tasks: kept running, restarted with backoff when they exit.
//!
//! The backoff starts at 1 s and doubles up to 1 min; a run that stayed up for a minute resets
//! it. Stopping (the task removed or changed, or the agent stopping) cancels the run: SIGTERM
//! to its process group, SIGKILL after the grace.

use std::time::{Duration, Instant};

use jiff::Zoned;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::jobs;
use crate::{config::Task, runner, store::Store};

const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Up this long, a daemon is considered healthy again.
const HEALTHY_AFTER: Duration = Duration::from_secs(60);

/// A running daemon task's supervisor.
pub struct Supervisor {
    stop: CancellationToken,
    handle: JoinHandle<()>,
}

impl Supervisor {
    /// Starts supervising `task`.
    pub fn start(task: &Task, node: &str, store: Store) -> Supervisor {
        let stop = CancellationToken::new();
        let handle = tokio::spawn(supervise(task.clone(), node.to_owned(), store, stop.clone()));
        Supervisor { stop, handle }
    }

    /// Stops the daemon and waits until its process is gone.
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.handle.await;
    }
}

async fn supervise(task: Task, node: String, store: Store, stop: CancellationToken) {
    let base = jobs::spec(&task);
    let mut backoff = FIRST_BACKOFF;
    let mut attempt = 0u32;
    while !stop.is_cancelled() {
        attempt += 1;
        let mut spec = base.clone();
        // A daemon has no schedule: its "slot" is when this start began.
        // Whole seconds: a start time is the slot, and slots are seconds.
        let start = Zoned::now().round(jiff::Unit::Second).unwrap_or_else(|_| Zoned::now());
        let (slot, run_id) = jobs::identify(&mut spec, &task.name, &node, &start, attempt);
        tracing::info!(task = %task.name, run_id, "daemon starting");
        let mut record = jobs::started(&run_id, &task.name, &start, attempt, &node);
        let _ = store.put(&record).await;
        let began = Instant::now();
        let result = runner::run(&spec, stop.clone()).await;
        jobs::finish(&mut record, &result);
        let _ = store.put(&record).await;
        let _ = jobs::outcome(&task.name, &slot, &run_id, result);
        if stop.is_cancelled() {
            break;
        }
        if began.elapsed() >= HEALTHY_AFTER {
            backoff = FIRST_BACKOFF;
        }
        tracing::warn!(task = %task.name, restart_in_ms = backoff.as_millis() as u64, "daemon exited; restarting");
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stop.cancelled() => break,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}
