//! Where the scheduler gets the time: the wall clock, or tokio's (pausable) clock in tests.

use std::{future::Future, pin::Pin, time::Duration};

use jiff::{SignedDuration, Timestamp};

/// A sleep returned by [`Clock::sleep_until`].
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A source of time for the scheduler.
///
/// The scheduler asks `now()` when it wakes, and sleeps with `sleep_until` until the earliest
/// deadline. A sleep may end early or late (the wall clock was set, the machine was suspended):
/// the scheduler looks at `now()` again when it wakes, so it never fires early and reports
/// slots it fires late.
///
/// # Example
/// ```
/// use cronfleet_scheduler::{Clock, SystemClock};
/// let now = SystemClock.now();
/// assert!(now > "2020-01-01T00:00:00Z".parse()?);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait Clock: Send + Sync + 'static {
    /// The current instant.
    fn now(&self) -> Timestamp;
    /// A future that completes at (or after) `deadline`.
    fn sleep_until(&self, deadline: Timestamp) -> Sleep;
}

/// The system's wall clock, with tokio timers for sleeping.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }

    fn sleep_until(&self, deadline: Timestamp) -> Sleep {
        let wait = deadline.duration_since(Timestamp::now());
        Box::pin(tokio::time::sleep(to_std(wait)))
    }
}

/// A clock that starts at a chosen instant and advances with tokio's clock.
///
/// Under `tokio::time::pause()` (or `#[tokio::test(start_paused = true)]`) time only moves when
/// the test advances it or the runtime is idle, so tests of schedules that span days run in
/// milliseconds and never depend on real waiting.
///
/// # Example
/// ```
/// use cronfleet_scheduler::{Clock, TokioClock};
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build()?.block_on(async {
/// let clock = TokioClock::starting_at("2026-05-01T00:00:00Z".parse()?);
/// tokio::time::sleep(std::time::Duration::from_secs(3600)).await; // instant: time is paused
/// assert_eq!(clock.now().to_string(), "2026-05-01T01:00:00Z");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug)]
pub struct TokioClock {
    origin: Timestamp,
    start: tokio::time::Instant,
}

impl TokioClock {
    /// A clock reading `origin` now. Must be called inside a tokio runtime with time enabled.
    pub fn starting_at(origin: Timestamp) -> TokioClock {
        TokioClock { origin, start: tokio::time::Instant::now() }
    }
}

impl Clock for TokioClock {
    fn now(&self) -> Timestamp {
        let elapsed = SignedDuration::try_from(self.start.elapsed()).unwrap_or(SignedDuration::MAX);
        self.origin.checked_add(elapsed).unwrap_or(Timestamp::MAX)
    }

    fn sleep_until(&self, deadline: Timestamp) -> Sleep {
        let offset = to_std(deadline.duration_since(self.origin));
        let at = self.start.checked_add(offset).unwrap_or_else(far_future);
        Box::pin(tokio::time::sleep_until(at))
    }
}

/// Negative durations become zero; huge ones are capped at about 30 years (tokio's limit).
fn to_std(d: SignedDuration) -> Duration {
    Duration::try_from(d).unwrap_or(Duration::ZERO).min(Duration::from_secs(30 * 365 * 86_400))
}

fn far_future() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(30 * 365 * 86_400)
}
