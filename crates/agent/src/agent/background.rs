//! One owner of the agent's background work: every long-lived loop (claims in batches, the
//! heartbeat, the chores, the spool's flush, the change feed, resumes at a time, records of
//! slots not run) starts here, and all of them end when the agent stops.
//!
//! A loop ends when its work returns or when [`Background::stop`] cancels it at its next
//! `.await`; no loop is left waiting for a `Weak` upgrade to fail. Work scoped to one run,
//! daemon, lease or API connection is spawned by its owner and ends with it (joined, aborted
//! or cancelled there); the store spawns nothing.

use std::{future::Future, time::Duration};

use tokio_util::{sync::CancellationToken, task::TaskTracker};

/// The agent's background loops (a cheap handle: clones share them).
#[derive(Clone, Debug, Default)]
pub struct Background {
    tracker: TaskTracker,
    stop: CancellationToken,
}

impl Background {
    /// Runs `work` in the background until it returns or the agent stops.
    pub fn spawn<F>(&self, work: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let stop = self.stop.clone();
        self.tracker.spawn(async move {
            tokio::select! {
                () = stop.cancelled() => {}
                () = work => {}
            }
        });
    }

    /// A token cancelled when the agent stops, for work that ends by itself on it.
    pub fn stopping(&self) -> CancellationToken {
        self.stop.child_token()
    }

    /// Whether the agent is stopping.
    pub fn stopped(&self) -> bool {
        self.stop.is_cancelled()
    }

    /// Stops every loop and waits for them, at most `grace`; whether all ended in time.
    pub async fn stop(&self, grace: Duration) -> bool {
        self.stop.cancel();
        self.tracker.close();
        tokio::time::timeout(grace, self.tracker.wait()).await.is_ok()
    }

    /// How many loops are running.
    pub fn len(&self) -> usize {
        self.tracker.len()
    }

    /// Whether none is running.
    pub fn is_empty(&self) -> bool {
        self.tracker.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_loop_ends_when_the_agent_stops() {
        let background = Background::default();
        for _ in 0..3 {
            background.spawn(std::future::pending());
        }
        let token = background.stopping();
        background.spawn(async move { token.cancelled().await });
        assert_eq!(background.len(), 4);
        assert!(background.stop(Duration::from_secs(5)).await, "all ended within the grace");
        assert!(background.is_empty());
        assert!(background.stopped());
    }
}
