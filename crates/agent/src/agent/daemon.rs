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

use super::{
    fleet::leases::LEASE_SECS,
    jobs::{self, Services},
};
use crate::{config::Task, store::Fleet};

const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Up this long, a daemon is considered healthy again.
const HEALTHY_AFTER: Duration = Duration::from_secs(60);

/// What a daemon is doing, as `status`, the API and the dashboard show it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DaemonState {
    /// Not started yet.
    Starting,
    /// Its process runs, since then.
    Up {
        /// When this process started.
        since: jiff::Timestamp,
    },
    /// Its process exited; it starts again then (the backoff).
    Restarting {
        /// When it starts again.
        at: jiff::Timestamp,
    },
    /// A `run_on` daemon that other nodes run: this one stands by to take over.
    Standby,
}

/// A daemon's state and how often it was restarted since this supervisor began (the agent
/// started, or the task was last changed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DaemonStatus {
    /// What it is doing.
    pub state: DaemonState,
    /// Restarts after an exit (not counting the first start).
    pub restarts: u32,
}

type Shared = Arc<std::sync::Mutex<DaemonStatus>>;

fn set(status: &Shared, change: impl FnOnce(&mut DaemonStatus)) {
    change(&mut status.lock().unwrap_or_else(|p| p.into_inner()));
}

/// A running daemon task's supervisor.
pub struct Supervisor {
    stop: CancellationToken,
    handle: JoinHandle<()>,
    status: Shared,
}

impl Supervisor {
    /// Starts supervising `task`.
    pub fn start(task: &Task, services: Arc<Services>) -> Supervisor {
        let stop = CancellationToken::new();
        let status = Arc::new(std::sync::Mutex::new(DaemonStatus {
            state: DaemonState::Starting,
            restarts: 0,
        }));
        let handle = tokio::spawn(supervise(task.clone(), services, stop.clone(), status.clone()));
        Supervisor { stop, handle, status }
    }

    /// What the daemon is doing.
    pub fn status(&self) -> DaemonStatus {
        self.status.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Stops the daemon and waits until its process is gone.
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.handle.await;
    }
}

/// How often a node that does not run a `run_on` daemon tries to take it over.
const TAKE_OVER_EVERY: Duration = Duration::from_secs(5);

async fn supervise(task: Task, services: Arc<Services>, stop: CancellationToken, status: Shared) {
    let (Some(seats), Some(fleet)) = (task.run_on, services.fleet.as_ref().map(|m| m.db.clone()))
    else {
        return keep_running(&task, &services, stop, &status).await;
    };
    // A `run_on` daemon runs on the nodes that hold one of its leases; the others wait to
    // take over one that was given back or expired (its node died or lost the database).
    let holder = format!("{}@daemon@{}", task.name, services.node);
    let mut waiting_said = false;
    while !stop.is_cancelled() {
        let now = crate::clock::now().as_second();
        let lease =
            fleet.lease(&task.name, seats, &services.node, &holder, now, now + LEASE_SECS).await;
        let seat = match lease {
            Ok(Some(seat)) => seat,
            other => {
                set(&status, |s| s.state = DaemonState::Standby);
                if let Err(e) = other {
                    tracing::warn!(task = %task.name, error = %e, "cannot take the daemon's lease");
                } else if !waiting_said {
                    tracing::info!(task = %task.name, "the daemon runs on other nodes; this one stands by");
                    waiting_said = true;
                }
                tokio::select! {
                    _ = tokio::time::sleep(TAKE_OVER_EVERY) => continue,
                    _ = stop.cancelled() => return,
                }
            }
        };
        waiting_said = false;
        tracing::info!(task = %task.name, seat, "daemon lease taken: this node runs it");
        let held = stop.child_token();
        let renew = tokio::spawn(renew(
            fleet.clone(),
            task.name.clone(),
            seat,
            holder.clone(),
            held.clone(),
        ));
        keep_running(&task, &services, held.clone(), &status).await;
        renew.abort();
        if stop.is_cancelled() {
            let _ = fleet.renew_lease(&task.name, seat, &holder, None).await;
            return;
        }
        tracing::warn!(task = %task.name, "daemon lease lost: stopped on this node, another may run it");
    }
}

/// Renews a daemon's lease while it runs; cancels `held` when the lease is someone else's,
/// or could not be renewed before it expires (so two nodes never run it at once).
async fn renew(fleet: Fleet, task: String, seat: u32, holder: String, held: CancellationToken) {
    let period = Duration::from_secs(LEASE_SECS as u64 / 3);
    let mut renewed = Instant::now();
    loop {
        tokio::time::sleep(period).await;
        let until = crate::clock::now().as_second() + LEASE_SECS;
        let attempt = fleet.renew_lease(&task, seat, &holder, Some(until));
        match tokio::time::timeout(Duration::from_secs(2), attempt).await {
            Ok(Ok(true)) => renewed = Instant::now(),
            Ok(Ok(false)) => {
                tracing::warn!(task, "the daemon's lease went to another node");
                held.cancel();
                return;
            }
            _ => {
                // Stop before the lease expires and another node starts it.
                if renewed.elapsed() + period >= Duration::from_secs(LEASE_SECS as u64 - 2) {
                    tracing::warn!(task, "cannot renew the daemon's lease (database away)");
                    held.cancel();
                    return;
                }
            }
        }
    }
}

/// Runs a daemon until `stop`, restarting it with backoff.
async fn keep_running(
    task: &Task,
    services: &Arc<Services>,
    stop: CancellationToken,
    status: &Shared,
) {
    let task = task.clone();
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
        let since = crate::clock::now();
        set(status, |s| s.state = DaemonState::Up { since });
        let began = Instant::now();
        let _ = services.execute(&task.name, &base, &start, attempt, stop.clone(), false).await;
        if stop.is_cancelled() {
            break;
        }
        if began.elapsed() >= HEALTHY_AFTER {
            backoff = FIRST_BACKOFF;
        }
        tracing::warn!(task = %task.name, restart_in_ms = backoff.as_millis() as u64, "daemon exited; restarting");
        let at = crate::clock::now()
            .checked_add(jiff::SignedDuration::try_from(backoff).unwrap_or_default())
            .unwrap_or_else(|_| crate::clock::now());
        set(status, |s| {
            s.state = DaemonState::Restarting { at };
            s.restarts += 1;
        });
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stop.cancelled() => break,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}
