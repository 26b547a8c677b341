//! Wrappers: behaviour added around a job, per entry or as the scheduler's defaults.
//!
//! Like robfig/cron's `JobWrapper`, a [`Wrapper`] turns a job into another job. Wrappers listed
//! first are outermost: with `[skip_if_running(), retry(3, 1s), timeout(10s)]`, a run is
//! skipped while the previous one is still going, and otherwise tried up to 3 times, each
//! attempt limited to 10 seconds. The scheduler's default wrappers go outside an entry's own.
//!
//! Panics need no wrapper: every run is guarded, a panic ends that run with
//! [`JobError::Panicked`](crate::JobError::Panicked) (and a log line), and the entry stays
//! scheduled.

use std::{sync::Arc, time::Duration};

use tokio::sync::Semaphore;

use crate::job::{BoxFuture, Job, JobError, JobResult, RunContext, SharedJob};

/// Turns a job into a job with more behaviour.
pub trait Wrapper: Send + Sync + 'static {
    /// Wraps `job`. Called once per entry, so a wrapper may keep per-entry state.
    fn wrap(&self, job: SharedJob) -> SharedJob;
}

/// Skips a run while the entry's previous run is still going ([`JobError::Skipped`]).
///
/// # Example
/// ```
/// use cronfleet_scheduler::{wrap, Scheduler};
/// let scheduler = Scheduler::builder().wrap(wrap::skip_if_running()).build();
/// ```
pub fn skip_if_running() -> Arc<dyn Wrapper> {
    Arc::new(MaxConcurrent(1))
}

/// Delays a run until the entry's previous run has finished (runs never overlap, none is lost).
///
/// # Example
/// ```
/// let w = cronfleet_scheduler::wrap::queue_if_running();
/// ```
pub fn queue_if_running() -> Arc<dyn Wrapper> {
    queue_up_to(1)
}

/// Lets at most `n` runs of the entry go at once; further runs wait for a turn, first come
/// first served (none is lost). A waiting run gives up when the scheduler stops.
///
/// # Example
/// ```
/// let w = cronfleet_scheduler::wrap::queue_up_to(2);
/// ```
pub fn queue_up_to(n: usize) -> Arc<dyn Wrapper> {
    Arc::new(QueueUpTo(n.max(1)))
}

/// Allows at most `n` runs of the entry at once; further runs are skipped.
///
/// # Example
/// ```
/// let w = cronfleet_scheduler::wrap::max_concurrent(3);
/// ```
pub fn max_concurrent(n: usize) -> Arc<dyn Wrapper> {
    Arc::new(MaxConcurrent(n.max(1)))
}

/// Cancels an attempt that takes longer than `limit` ([`JobError::TimedOut`]): its
/// `ctx.cancel` is cancelled and its future dropped.
///
/// # Example
/// ```
/// let w = cronfleet_scheduler::wrap::timeout(std::time::Duration::from_secs(30));
/// ```
pub fn timeout(limit: Duration) -> Arc<dyn Wrapper> {
    Arc::new(Timeout(limit))
}

/// Retries a failed or timed-out attempt up to `retries` more times, waiting `backoff` before
/// the first retry and doubling it each time (at most 1 hour). `ctx.attempt` counts attempts.
/// Once the scheduler is shutting down no retry starts: the last attempt's error is returned.
///
/// # Example
/// ```
/// let w = cronfleet_scheduler::wrap::retry(2, std::time::Duration::from_secs(10));
/// ```
pub fn retry(retries: u32, backoff: Duration) -> Arc<dyn Wrapper> {
    retry_if(retries, backoff, |e| matches!(e, JobError::Failed(_) | JobError::TimedOut))
}

/// [`retry`] for the errors `retryable` chooses only (say, failures but not timeouts).
///
/// # Example
/// ```
/// use cronfleet_scheduler::JobError;
/// // A job that hangs until its timeout is not started again.
/// let w = cronfleet_scheduler::wrap::retry_if(2, std::time::Duration::from_secs(10), |e| {
///     matches!(e, JobError::Failed(_))
/// });
/// ```
pub fn retry_if(
    retries: u32,
    backoff: Duration,
    retryable: impl Fn(&JobError) -> bool + Send + Sync + 'static,
) -> Arc<dyn Wrapper> {
    Arc::new(Retry { retries, backoff, retryable: Arc::new(retryable) })
}

struct MaxConcurrent(usize);

impl Wrapper for MaxConcurrent {
    fn wrap(&self, job: SharedJob) -> SharedJob {
        let n = self.0;
        let permits = Arc::new(Semaphore::new(n));
        Arc::new(move |ctx: RunContext| {
            let job = job.clone();
            let permit = permits.clone().try_acquire_owned();
            async move {
                let Ok(_permit) = permit else {
                    let why = if n == 1 {
                        "the previous run is still running".to_string()
                    } else {
                        format!("{n} runs are already running")
                    };
                    return Err(JobError::Skipped(why));
                };
                job.run(ctx).await
            }
        })
    }
}

struct QueueUpTo(usize);

impl Wrapper for QueueUpTo {
    fn wrap(&self, job: SharedJob) -> SharedJob {
        // Tokio's semaphore is fair: waiting runs start in the order they came.
        let turns = Arc::new(Semaphore::new(self.0));
        Arc::new(move |ctx: RunContext| {
            let job = job.clone();
            let turns = turns.clone();
            async move {
                let _turn = tokio::select! {
                    turn = turns.acquire_owned() => turn,
                    _ = ctx.stopping.cancelled() => {
                        return Err(JobError::Skipped("the scheduler is stopping".into()));
                    }
                };
                job.run(ctx).await
            }
        })
    }
}

struct Timeout(Duration);

impl Wrapper for Timeout {
    fn wrap(&self, job: SharedJob) -> SharedJob {
        Arc::new(Timed { job, limit: self.0 })
    }
}

struct Timed {
    job: SharedJob,
    limit: Duration,
}

impl Job for Timed {
    fn run(&self, ctx: RunContext) -> BoxFuture<JobResult> {
        let limit = self.limit;
        // A child token: a timed-out attempt is cancelled without cancelling the whole run.
        let token = ctx.cancel.child_token();
        let fut = self.job.run(RunContext { cancel: token.clone().into(), ..ctx });
        Box::pin(async move {
            match tokio::time::timeout(limit, fut).await {
                Ok(result) => result,
                Err(_) => {
                    token.cancel();
                    Err(JobError::TimedOut)
                }
            }
        })
    }
}

struct Retry {
    retries: u32,
    backoff: Duration,
    retryable: Arc<dyn Fn(&JobError) -> bool + Send + Sync>,
}

impl Wrapper for Retry {
    fn wrap(&self, job: SharedJob) -> SharedJob {
        let (retries, backoff) = (self.retries, self.backoff);
        let retryable = self.retryable.clone();
        Arc::new(move |ctx: RunContext| {
            let job = job.clone();
            let retryable = retryable.clone();
            async move {
                let mut wait = backoff;
                let mut attempt = ctx.attempt;
                loop {
                    let result = job.run(RunContext { attempt, ..ctx.clone() }).await;
                    let again = result.as_ref().err().is_some_and(|e| retryable(e));
                    // A stop fires nothing new: no retry once the scheduler is stopping.
                    let stopping = ctx.stopping.is_cancelled();
                    if !again || attempt > retries || ctx.cancel.is_cancelled() || stopping {
                        return result;
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = ctx.stopping.cancelled() => return result,
                        _ = ctx.cancel.cancelled() => return Err(JobError::Cancelled),
                    }
                    wait = (wait * 2).min(Duration::from_secs(3600));
                    attempt += 1;
                }
            }
        })
    }
}
