//! One owner of the agent's background work: every long-lived loop (claims in batches, the
//! heartbeat, the chores, the spool's flush, the change feed, resumes at a time, records of
//! slots not run) starts here, and all of them end when the agent stops.
//!
//! A loop ends when its work returns, or when the agent stops: [`Background::spawn`]'s are
//! cancelled at their next `.await`, [`Background::spawn_until`]'s end by themselves on
//! [`Background::stopping`] (after finishing what they hold), and [`Background::stop`] waits
//! for all of them, within a bound. Loops that hold a `Weak` of the agent also end when it is
//! gone. Work scoped to one run, daemon, lease or API connection is spawned by its owner and
//! ends with it (joined, aborted or cancelled there); the store spawns nothing.

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

    /// Runs `work` in the background; it ends by itself once [`Background::stopping`] is
    /// cancelled (it may first finish what it holds), and [`Background::stop`] waits for it.
    pub fn spawn_until<F>(&self, work: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.tracker.spawn(work);
    }

    /// A token cancelled when the agent stops, for work that ends by itself on it.
    pub fn stopping(&self) -> CancellationToken {
        self.stop.child_token()
    }

    /// Stops every loop and waits for them, at most `grace`; whether all ended in time.
    pub async fn stop(&self, grace: Duration) -> bool {
        self.stop.cancel();
        self.tracker.close();
        tokio::time::timeout(grace, self.tracker.wait()).await.is_ok()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    };

    use super::*;

    #[tokio::test]
    async fn every_loop_ends_when_the_agent_stops() {
        let background = Background::default();
        for _ in 0..3 {
            background.spawn(std::future::pending());
        }
        // One that finishes what it holds once told to stop.
        let (token, done) = (background.stopping(), Arc::new(AtomicBool::new(false)));
        let finished = done.clone();
        background.spawn_until(async move {
            token.cancelled().await;
            tokio::task::yield_now().await;
            finished.store(true, Ordering::SeqCst);
        });
        assert_eq!(background.tracker.len(), 4);
        assert!(background.stop(Duration::from_secs(5)).await, "all ended within the grace");
        assert!(background.tracker.is_empty());
        assert!(done.load(Ordering::SeqCst), "it finished its work");
    }
}
