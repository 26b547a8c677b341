//! Daemon tasks: kept running, restarted with backoff when they exit.
//!
//! The backoff starts at 1 s and doubles up to 1 min; a run that stayed up for a minute resets
//! it. Stopping (the task removed or changed, or the agent stopping) cancels the run: SIGTERM
//! to its process group, SIGKILL after the grace.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::jobs::{self, Services};
use crate::config::Task;

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
    pub fn start(task: &Task, services: Arc<Services>) -> Supervisor {
        let stop = CancellationToken::new();
        let handle = tokio::spawn(supervise(task.clone(), services, stop.clone()));
        Supervisor { stop, handle }
    }

    /// Stops the daemon and waits until its process is gone.
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.handle.await;
    }
}

async fn supervise(task: Task, services: Arc<Services>, stop: CancellationToken) {
    let base = jobs::spec(&task);
    let mut backoff = FIRST_BACKOFF;
    let mut attempt = 0u32;
    while !stop.is_cancelled() {
        attempt += 1;
        // A daemon has no schedule: its "slot" is when this start began, in whole seconds.
        let start = crate::clock::zoned_now()
            .round(jiff::Unit::Second)
            .unwrap_or_else(|_| crate::clock::zoned_now());
        tracing::info!(task = %task.name, attempt, "daemon starting");
        let began = Instant::now();
        let _ = services.execute(&task.name, &base, &start, attempt, stop.clone(), false).await;
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
