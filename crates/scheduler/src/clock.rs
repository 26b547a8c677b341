//! Where the scheduler gets the time: the wall clock, or tokio's (pausable) clock in tests.

use std::{
    collections::BTreeMap,
    future::Future,
    pin::Pin,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Condvar, Mutex, OnceLock,
    },
    task::{Context, Poll, Waker},
    time::{Duration, Instant},
};

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

    /// Whether this clock's time passes as real time does (the system's clock, or it shifted by
    /// a constant), so that a thread can wait for a deadline by sleeping for the distance to it.
    ///
    /// The threads that start the shares of a large slot (see the crate's docs) then sleep so,
    /// each woken by the kernel on its own CPU; otherwise they wait on [`Clock::sleep_until`].
    /// Default `false`, right for clocks that do not move in real time (virtual clocks).
    fn in_real_time(&self) -> bool {
        false
    }
}

/// The system's wall clock, sleeping with [`precise_sleep`].
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }

    fn sleep_until(&self, deadline: Timestamp) -> Sleep {
        precise_sleep(to_std(deadline.duration_since(Timestamp::now())))
    }

    fn in_real_time(&self) -> bool {
        true
    }
}

/// A sleep that ends within about 0.1 ms of `wait` (tokio's timers have a resolution of 1 ms
/// and end up to 1 ms late).
///
/// One thread per process, started on first use, waits on a condition variable with a timeout
/// until the earliest deadline asked for, and wakes the sleeps that are due: nanosecond
/// timeouts, so a sleep ends as late as the kernel's timer slack (50 µs by default) plus the
/// time to wake a tokio worker. The thread makes no wakeups while no deadline is due.
/// Dropping the sleep withdraws its deadline.
///
/// # Example
/// ```
/// use std::time::{Duration, Instant};
///
/// # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
/// let start = Instant::now();
/// cronfleet_scheduler::precise_sleep(Duration::from_millis(3)).await;
/// assert!(start.elapsed() >= Duration::from_millis(3));
/// # });
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn precise_sleep(wait: Duration) -> Sleep {
    let now = Instant::now();
    let deadline = now.checked_add(wait).unwrap_or_else(|| now + Duration::from_secs(1 << 30));
    let state = Arc::new(SleepState { done: AtomicBool::new(false), waker: Mutex::new(None) });
    if wait.is_zero() {
        state.done.store(true, Ordering::Release);
        return Box::pin(PreciseSleep { key: None, state });
    }
    let timer = PreciseTimer::get();
    let mut waiting = timer.lock();
    waiting.next_key += 1;
    let key = (deadline, waiting.next_key);
    let earliest = waiting.sleeps.first_key_value().is_none_or(|(first, _)| key < *first);
    waiting.sleeps.insert(key, state.clone());
    drop(waiting);
    if earliest {
        timer.changed.notify_one();
    }
    Box::pin(PreciseSleep { key: Some(key), state })
}

struct SleepState {
    done: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

struct PreciseSleep {
    key: Option<(Instant, u64)>,
    state: Arc<SleepState>,
}

impl Future for PreciseSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.state.done.load(Ordering::Acquire) {
            return Poll::Ready(());
        }
        let mut waker = self.state.waker.lock().unwrap_or_else(|p| p.into_inner());
        match waker.as_mut() {
            Some(w) => w.clone_from(cx.waker()),
            None => *waker = Some(cx.waker().clone()),
        }
        drop(waker);
        // The timer may have fired between the first check and storing the waker.
        if self.state.done.load(Ordering::Acquire) {
            return Poll::Ready(());
        }
        Poll::Pending
    }
}

impl Drop for PreciseSleep {
    fn drop(&mut self) {
        if let Some(key) = self.key {
            if !self.state.done.load(Ordering::Acquire) {
                PreciseTimer::get().lock().sleeps.remove(&key);
            }
        }
    }
}

#[derive(Default)]
struct Waiting {
    sleeps: BTreeMap<(Instant, u64), Arc<SleepState>>,
    next_key: u64,
}

struct PreciseTimer {
    waiting: Mutex<Waiting>,
    /// Signalled when a new earliest deadline arrives.
    changed: Condvar,
}

impl PreciseTimer {
    fn get() -> &'static PreciseTimer {
        static TIMER: OnceLock<&'static PreciseTimer> = OnceLock::new();
        TIMER.get_or_init(|| {
            let timer: &'static PreciseTimer = Box::leak(Box::new(PreciseTimer {
                waiting: Mutex::new(Waiting::default()),
                changed: Condvar::new(),
            }));
            std::thread::Builder::new()
                .name("cronfleet-timer".into())
                .spawn(move || timer.run())
                .expect("cannot start the timer thread");
            timer
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Waiting> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn run(&self) {
        let mut due = Vec::new();
        let mut waiting = self.lock();
        loop {
            let now = Instant::now();
            while let Some(entry) = waiting.sleeps.first_entry() {
                if entry.key().0 > now {
                    break;
                }
                due.push(entry.remove());
            }
            if !due.is_empty() {
                drop(waiting);
                for state in due.drain(..) {
                    state.done.store(true, Ordering::Release);
                    let waker = state.waker.lock().unwrap_or_else(|p| p.into_inner()).take();
                    if let Some(waker) = waker {
                        waker.wake();
                    }
                }
                waiting = self.lock();
                continue;
            }
            waiting = match waiting.sleeps.first_key_value().map(|((at, _), _)| *at) {
                Some(at) => {
                    let wait = at.saturating_duration_since(now);
                    self.changed.wait_timeout(waiting, wait).unwrap_or_else(|p| p.into_inner()).0
                }
                None => self.changed.wait(waiting).unwrap_or_else(|p| p.into_inner()),
            };
        }
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
pub(crate) fn to_std(d: SignedDuration) -> Duration {
    Duration::try_from(d).unwrap_or(Duration::ZERO).min(Duration::from_secs(30 * 365 * 86_400))
}

fn far_future() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(30 * 365 * 86_400)
}
