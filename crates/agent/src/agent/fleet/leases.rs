//! Fleet-wide run leases: at most `max_running` runs of a task at once across the fleet
//! (one for `forbid`), each run holding a lease renewed while it runs.

use std::{sync::Arc, time::Duration};

use cronfleet_scheduler::{JobError, RunContext};

use super::Member;
use crate::{config::Task, store};

/// How long a fleet-wide run lease lasts without renewal (a dead holder's seat frees then).
pub const LEASE_SECS: i64 = 30;

/// A run's lease, renewed in the background until it is given back.
#[derive(Debug)]
pub struct Lease {
    seat: u32,
    run_id: String,
    renew: tokio::task::JoinHandle<()>,
}

impl Member {
    /// Takes one of a task's `seats` fleet-wide run leases for this run, renewed until the
    /// run gives it back ([`Member::give_back`]). A slot that finds every seat held is
    /// skipped.
    ///
    /// # Errors
    /// [`JobError::Skipped`] when every seat is held, or the database cannot be asked.
    pub async fn take_lease(
        &self,
        task: &Task,
        seats: u32,
        ctx: &RunContext,
    ) -> Result<Lease, JobError> {
        let run_id = store::run_id(&task.name, &ctx.slot, ctx.attempt, Some(&self.node));
        let now = crate::clock::now().as_second();
        let lease = self.db.lease(&task.name, seats, &self.node, &run_id, now, now + LEASE_SECS);
        let seat = match lease.await {
            Ok(Some(seat)) => seat,
            Ok(None) => {
                return Err(JobError::Skipped(format!(
                    "{seats} run(s) of the task are already running across the fleet (max_running)"
                )));
            }
            Err(e) => {
                tracing::error!(task = %task.name, error = %e, "cannot take a run lease");
                return Err(JobError::Skipped("no fleet-wide run lease (database)".into()));
            }
        };
        // The renewal lives exactly as long as the run (aborted when it gives the lease back).
        let renew = {
            let (fleet, name, run_id) = (self.db.clone(), task.name.clone(), run_id.clone());
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_secs(LEASE_SECS as u64 / 3)).await;
                    let until = crate::clock::now().as_second() + LEASE_SECS;
                    let _ = fleet.renew_lease(&name, seat, &run_id, Some(until)).await;
                }
            })
        };
        Ok(Lease { seat, run_id, renew })
    }

    /// Gives a run's lease back, once the run ended.
    pub async fn give_back(self: &Arc<Self>, task: &str, lease: Lease) {
        lease.renew.abort();
        if let Err(e) = self.db.renew_lease(task, lease.seat, &lease.run_id, None).await {
            tracing::warn!(task, error = %e, "cannot give the run lease back");
        }
    }
}
