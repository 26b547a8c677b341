//! Jobs, what a run knows (its context), and how a run ends.

use std::{
    any::Any,
    fmt,
    future::Future,
    panic::{catch_unwind, AssertUnwindSafe},
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use jiff::Zoned;
use tokio_util::sync::CancellationToken;

use crate::{EntryId, Scheduler};

/// A boxed, sendable future: what a [`Job`] returns.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// What a job's run returns.
pub type JobResult = Result<(), JobError>;

/// Something to run on a schedule.
///
/// Any `Fn(RunContext) -> impl Future` closure is a job; its future may output `()` or
/// `Result<(), E>` for any error `E`. Implement the trait for jobs with state of their own.
///
/// # Example
/// ```
/// use cronfleet_scheduler::{BoxFuture, Job, JobResult, RunContext};
///
/// struct Cleanup { dir: String }
///
/// impl Job for Cleanup {
///     fn run(&self, ctx: RunContext) -> BoxFuture<JobResult> {
///         let dir = self.dir.clone();
///         Box::pin(async move {
///             println!("cleaning {dir} for the slot {}", ctx.slot);
///             Ok(())
///         })
///     }
/// }
/// ```
pub trait Job: Send + Sync + 'static {
    /// Starts one run. The future should stop early when `ctx.cancel` is cancelled.
    fn run(&self, ctx: RunContext) -> BoxFuture<JobResult>;
}

impl<F, Fut> Job for F
where
    F: Fn(RunContext) -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: IntoJobResult,
{
    fn run(&self, ctx: RunContext) -> BoxFuture<JobResult> {
        let fut = self(ctx);
        Box::pin(async move { fut.await.into_job_result() })
    }
}

/// What a job's future may output: `()` or `Result<(), E>`.
pub trait IntoJobResult {
    /// The result as the scheduler sees it.
    fn into_job_result(self) -> JobResult;
}

impl IntoJobResult for () {
    fn into_job_result(self) -> JobResult {
        Ok(())
    }
}

impl<E: fmt::Display + 'static> IntoJobResult for Result<(), E> {
    /// A [`JobError`] passes through as it is (a wrapper's `Skipped` stays a skip); any other
    /// error becomes [`JobError::Failed`] with its message.
    fn into_job_result(self) -> JobResult {
        self.map_err(|e| match (&e as &dyn Any).downcast_ref::<JobError>() {
            Some(job_error) => job_error.clone(),
            None => JobError::failed(e.to_string()),
        })
    }
}

/// What a run knows about itself.
#[derive(Clone, Debug)]
pub struct RunContext {
    /// The entry that fired.
    pub entry: EntryId,
    /// The scheduled instant this run is for (its *slot*): the same for every attempt, and an
    /// idempotency key for the work it does.
    pub slot: Zoned,
    /// 1 for the first attempt; retries count up.
    pub attempt: u32,
    /// Cancelled when the run times out, is killed, or the scheduler shuts down past its grace.
    /// The scheduler's token is shared by the runs it started together: to cancel one run
    /// alone, give it a child token (as [`crate::wrap::timeout`] does), do not cancel this one.
    pub cancel: RunToken,
    /// Cancelled as soon as the scheduler starts shutting down: a run still waiting for its
    /// turn (a queue) should give up rather than start.
    pub stopping: RunToken,
    /// The scheduler, so a job can change entries (its own too) while it runs.
    pub scheduler: Scheduler,
}

/// A run's cancellation token: a [`CancellationToken`] (it derefs to one) that is cheap to
/// clone and drop.
///
/// Cloning a `CancellationToken` locks it; the runs of a slot share their scheduler's tokens,
/// and thousands of runs starting at once would queue on those locks. Make a token of a run's
/// own with [`CancellationToken::child_token`], and pass it on with `.into()`.
///
/// # Example
/// ```
/// use cronfleet_scheduler::RunToken;
/// use tokio_util::sync::CancellationToken;
///
/// let parent = CancellationToken::new();
/// let token: RunToken = parent.child_token().into();
/// let copy = token.clone();
/// parent.cancel();
/// assert!(copy.is_cancelled());
/// let plain: CancellationToken = token.token(); // for APIs that take one
/// assert!(plain.is_cancelled());
/// ```
#[derive(Clone, Debug, Default)]
pub struct RunToken(Arc<CancellationToken>);

impl RunToken {
    /// The token itself, for APIs that take a `CancellationToken`.
    pub fn token(&self) -> CancellationToken {
        (*self.0).clone()
    }
}

impl std::ops::Deref for RunToken {
    type Target = CancellationToken;

    fn deref(&self) -> &CancellationToken {
        &self.0
    }
}

impl From<CancellationToken> for RunToken {
    fn from(token: CancellationToken) -> RunToken {
        RunToken(Arc::new(token))
    }
}

/// Why a run did not succeed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobError {
    /// The job reported an error.
    Failed(String),
    /// A timeout wrapper stopped it.
    TimedOut,
    /// The job panicked; the entry stays scheduled.
    Panicked(String),
    /// Cancelled by shutdown.
    Cancelled,
    /// A wrapper chose not to run it (still running, too many runs).
    Skipped(String),
}

impl JobError {
    /// A failure with a message.
    ///
    /// # Example
    /// ```
    /// let e = cronfleet_scheduler::JobError::failed("disk full");
    /// assert_eq!(e.to_string(), "failed: disk full");
    /// ```
    pub fn failed(message: impl Into<String>) -> JobError {
        JobError::Failed(message.into())
    }
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JobError::Failed(m) => write!(f, "failed: {m}"),
            JobError::TimedOut => f.write_str("timed out"),
            JobError::Panicked(m) => write!(f, "panicked: {m}"),
            JobError::Cancelled => f.write_str("cancelled"),
            JobError::Skipped(why) => write!(f, "skipped: {why}"),
        }
    }
}

impl std::error::Error for JobError {}

/// A shared job, as the scheduler and wrappers hold it.
pub type SharedJob = Arc<dyn Job>;

/// Runs a future and turns a panic inside it into [`JobError::Panicked`], so that one bad job
/// never takes down the scheduler or leaves its entry unscheduled.
pub(crate) struct CatchPanic(pub BoxFuture<JobResult>);

impl Future for CatchPanic {
    type Output = JobResult;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<JobResult> {
        let fut = &mut self.0;
        match catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(cx))) {
            Ok(poll) => poll,
            Err(panic) => Poll::Ready(Err(JobError::Panicked(panic_message(panic)))),
        }
    }
}

/// What a panic said.
pub(crate) fn panic_message(panic: Box<dyn Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}
