//! An in-process async scheduler for tokio services: robfig/cron for Rust, with entries that
//! change at runtime and intervals anchored to their own start.
//!
//! Schedules come from [`cronfleet_cron`]: cron expressions with seconds, time zones and exact
//! DST rules, `@every` intervals, and intervals anchored to a chosen instant ("every 7 days,
//! counted from when the rule was created"). Nothing here does calendar arithmetic.
//!
//! # Usage
//!
//! ```
//! use std::time::Duration;
//! use cronfleet_scheduler::{wrap, RunContext, Scheduler, Timing};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let scheduler = Scheduler::builder()
//!     .time_zone(jiff::tz::TimeZone::get("Europe/Berlin")?)
//!     .wrap(wrap::skip_if_running()) // for every entry
//!     .build();
//!
//! // Every 30 seconds; at 09:30 on weekdays; every hour on the half hour.
//! let report = scheduler.add(Timing::parse("*/30 * * * * *")?, |ctx: RunContext| async move {
//!     println!("tick for {}", ctx.slot);
//! });
//! scheduler.add(Timing::parse("30 9 * * MON-FRI")?, |_ctx: RunContext| async {
//!     Ok::<(), std::io::Error>(())
//! });
//! scheduler.add(Timing::parse("@every 1h30m")?, |_ctx: RunContext| async {});
//!
//! scheduler.start();
//! // ... entries change while it runs:
//! scheduler.set_timing(report, Timing::parse("0 * * * * *")?)?;
//! scheduler.pause(report)?;
//! for entry in scheduler.entries() {
//!     println!("{} {} next: {:?}", entry.id, entry.timing, entry.next);
//! }
//! scheduler.remove(report)?;
//!
//! // Stop firing; wait up to 10 s for running jobs, then cancel them.
//! scheduler.shutdown(Duration::from_secs(10)).await;
//! # Ok(())
//! # }
//! ```
//!
//! # Anchored intervals
//!
//! A rule created on May 1st and checked every 7 days runs on May 8th, whenever the service
//! started: anchor the interval to the rule's creation time.
//!
//! ```
//! # use cronfleet_scheduler::Timing;
//! let created: jiff::Zoned = "2026-05-01T10:00:00+08:00[Asia/Shanghai]".parse()?;
//! let every_week = Timing::parse("@every 7d")?.anchored(created)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Wrappers
//!
//! [`wrap`] has robfig/cron's chain: [`wrap::skip_if_running`], [`wrap::queue_if_running`],
//! [`wrap::max_concurrent`], [`wrap::timeout`] and [`wrap::retry`]; give them to the builder
//! for every entry, or to [`EntryOptions::wrap`] for one. Panics are always contained: the run
//! ends with [`JobError::Panicked`] and the entry stays scheduled.
//!
//! # Late and missed slots
//!
//! When the process was suspended, the clock jumped or the runtime stalled, slots may be due
//! by the time the scheduler wakes. Within an entry's tolerance (default 1 s) they run, late;
//! beyond it the entry's [`LatePolicy`] decides: run the latest missed slot once now
//! (default), or skip them. Either way an [`Event::Missed`] reports them.
//!
//! # Events
//!
//! [`Scheduler::subscribe`] gives every [`Event`]: scheduled, started (with lateness),
//! finished (with outcome and duration), skipped, missed.
//!
//! # Testing in virtual time
//!
//! Give the builder a [`TokioClock`] and run under `tokio::time::pause()`: a schedule that
//! spans days is tested in milliseconds, with no real waiting.
//!
//! # Theory of operation
//!
//! One timer task owns nothing but a sleep: entries live in a map under a mutex, their next
//! deadlines in a timer queue (`heap.rs`: an ordered map of deadlines, each a bucket of the
//! entries due then; O(log b) add, remove and fire, `b` the number of distinct deadlines).
//! The task sleeps until the earliest deadline or until an entry changes (a `Notify`), pops
//! what is due, computes each entry's next deadline, and starts the runs. There is no polling
//! interval: an idle scheduler makes no wakeups.
//!
//! Starting a run is its job's first poll, right there; a job that does not finish in it goes
//! on in a tokio task of its own. When many entries share a deadline, the timer decides their
//! runs a little before it (the *lead*: twice the measured time to decide the whole heap, at
//! most 250 ms, plus 5 ms; none when under 1 ms), builds their contexts, sleeps precisely to
//! the deadline ([`precise_sleep`]: tokio's timers end up to 1 ms late) and only starts them
//! then. Slots of 512 runs or more are split into one share per runtime worker, each started
//! by a thread of tokio's blocking pool pinned to a CPU of its own while it sleeps to 1 ms
//! before the slot (in real time when [`Clock::in_real_time`]), reads its share's entries into
//! its CPU's cache and spins to it. A thread done with its share starts what is left of the
//! others' (in chunks of up to 1,024 runs, at least four a thread), so one thread held up by
//! the kernel does not hold up its share. A snapshot taken during the lead already shows such
//! a slot as the entry's previous fire time; a change made to an entry during the lead (pause,
//! remove, new schedule or next time) still wins: its decided run does not start. The runs
//! started together share their `cancel` and `stopping` tokens ([`RunToken`]), which the
//! scheduler only cancels all at once, at shutdown.
#![warn(missing_docs)]

mod clock;
mod event;
mod heap;
mod job;
mod pin;
mod timing;
pub mod wrap;

use std::{
    collections::HashMap,
    fmt,
    future::Future,
    panic::{catch_unwind, AssertUnwindSafe},
    pin::Pin,
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        Arc, Mutex, MutexGuard,
    },
    task::Poll,
    time::Duration,
};

use jiff::{tz::TimeZone, SignedDuration, Timestamp, Zoned};
use tokio::sync::{broadcast, Notify};
use tokio_util::sync::CancellationToken;

pub use clock::{precise_sleep, Clock, Sleep, SystemClock, TokioClock};
pub use event::Event;
pub use job::{
    BoxFuture, IntoJobResult, Job, JobError, JobResult, RunContext, RunToken, SharedJob,
};
pub use timing::Timing;
pub use wrap::Wrapper;

use heap::TimerHeap;
use job::{panic_message, CatchPanic};

/// Hashes entry ids (sequential `u64`s) with one multiplication: the timer heap updates its
/// index on every swap, and SipHash there costs more than the rest of a fire.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn write_u64(&mut self, n: u64) {
        // Fibonacci hashing: spreads sequential ids over the high bits hashbrown uses.
        self.0 = n.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

impl std::hash::BuildHasher for IdHasher {
    type Hasher = IdHasher;

    fn build_hasher(&self) -> IdHasher {
        IdHasher(0)
    }
}

/// Identifies an entry of a [`Scheduler`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntryId(pub(crate) u64);

impl fmt::Display for EntryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// Identifies one run of an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RunId(pub(crate) u64);

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "run-{}", self.0)
    }
}

/// What to do with slots that passed while the scheduler could not fire them (beyond the
/// entry's lateness tolerance).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LatePolicy {
    /// Run the latest missed slot once, now; report the earlier ones as missed.
    #[default]
    RunOnce,
    /// Run none of them; report them as missed and wait for the next slot.
    Skip,
}

/// The state of an entry in a snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryState {
    /// Waiting for its next fire time.
    Scheduled,
    /// Paused: it fires again after [`Scheduler::resume`].
    Paused,
    /// It has no more fire times (a one-shot that fired, or a schedule past year 9999).
    Done,
}

/// An entry as seen at one moment, from [`Scheduler::entries`] or [`Scheduler::entry`].
#[derive(Clone, Debug)]
pub struct EntrySnapshot {
    /// The entry.
    pub id: EntryId,
    /// Its name, if given.
    pub name: Option<String>,
    /// When it fires.
    pub timing: Timing,
    /// The slot it last fired for.
    pub prev: Option<Zoned>,
    /// When it fires next.
    pub next: Option<Zoned>,
    /// Scheduled, paused or done.
    pub state: EntryState,
    /// Runs going now.
    pub running: usize,
}

/// Errors of the operations on entries.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// No entry with this id (never added, or removed).
    UnknownEntry(EntryId),
    /// The entry is paused: resume it first.
    Paused(EntryId),
    /// A schedule could not be built.
    Schedule(cronfleet_cron::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::UnknownEntry(id) => write!(f, "no entry {id}"),
            Error::Paused(id) => write!(f, "entry {id} is paused"),
            Error::Schedule(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<cronfleet_cron::Error> for Error {
    fn from(e: cronfleet_cron::Error) -> Error {
        Error::Schedule(e)
    }
}

/// Options of one entry, for [`Scheduler::add_with`].
///
/// # Example
/// ```
/// use std::time::Duration;
/// use cronfleet_scheduler::{wrap, EntryOptions, LatePolicy};
///
/// let options = EntryOptions::new()
///     .name("check-ad-rule-42")
///     .wrap(wrap::timeout(Duration::from_secs(30)))
///     .on_late(LatePolicy::Skip)
///     .late_tolerance(Duration::from_secs(5));
/// ```
#[derive(Clone)]
pub struct EntryOptions {
    name: Option<String>,
    wrappers: Vec<Arc<dyn Wrapper>>,
    late: LatePolicy,
    tolerance: Duration,
}

impl Default for EntryOptions {
    fn default() -> EntryOptions {
        EntryOptions {
            name: None,
            wrappers: Vec::new(),
            late: LatePolicy::RunOnce,
            tolerance: Duration::from_secs(1),
        }
    }
}

impl fmt::Debug for EntryOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EntryOptions")
            .field("name", &self.name)
            .field("wrappers", &self.wrappers.len())
            .field("late", &self.late)
            .field("tolerance", &self.tolerance)
            .finish()
    }
}

impl EntryOptions {
    /// Default options: no name, no wrappers of its own, run a missed slot once, 1 s tolerance.
    pub fn new() -> EntryOptions {
        EntryOptions::default()
    }

    /// A name shown in snapshots.
    pub fn name(mut self, name: impl Into<String>) -> EntryOptions {
        self.name = Some(name.into());
        self
    }

    /// Adds a wrapper (inside the scheduler's default wrappers, after those added before).
    pub fn wrap(mut self, wrapper: Arc<dyn Wrapper>) -> EntryOptions {
        self.wrappers.push(wrapper);
        self
    }

    /// What to do with slots missed beyond the tolerance.
    pub fn on_late(mut self, policy: LatePolicy) -> EntryOptions {
        self.late = policy;
        self
    }

    /// How late a slot may fire and still count as on time (default 1 s).
    pub fn late_tolerance(mut self, tolerance: Duration) -> EntryOptions {
        self.tolerance = tolerance;
        self
    }
}

/// Builds a [`Scheduler`].
pub struct Builder {
    tz: TimeZone,
    clock: Arc<dyn Clock>,
    wrappers: Vec<Arc<dyn Wrapper>>,
    capacity: usize,
}

impl Builder {
    /// The zone of schedules that have no `CRON_TZ=` prefix (default: the system's zone).
    pub fn time_zone(mut self, tz: TimeZone) -> Builder {
        self.tz = tz;
        self
    }

    /// Where time comes from (default: [`SystemClock`]; [`TokioClock`] for tests).
    pub fn clock(mut self, clock: impl Clock) -> Builder {
        self.clock = Arc::new(clock);
        self
    }

    /// A wrapper for every entry, outside the entry's own (robfig's `cron.WithChain`).
    pub fn wrap(mut self, wrapper: Arc<dyn Wrapper>) -> Builder {
        self.wrappers.push(wrapper);
        self
    }

    /// How many events a slow subscriber may fall behind before it loses some (default 1024).
    pub fn event_capacity(mut self, capacity: usize) -> Builder {
        self.capacity = capacity.max(1);
        self
    }

    /// The scheduler, not started yet: add entries, then [`Scheduler::start`].
    pub fn build(self) -> Scheduler {
        let (events, _) = broadcast::channel(self.capacity);
        Scheduler {
            shared: Arc::new(Handle(Arc::new(Shared {
                tz: self.tz,
                clock: self.clock,
                wrappers: self.wrappers,
                events,
                state: Mutex::new(State::default()),
                wake: Notify::new(),
                stop: CancellationToken::new(),
                cancel_runs: CancellationToken::new(),
                abort_runs: CancellationToken::new(),
                running: AtomicUsize::new(0),
                idle: Notify::new(),
                next_run: AtomicU64::new(1),
                changes: AtomicU64::new(0),
            }))),
        }
    }
}

/// A handle to a scheduler; clones share it. See the [crate docs](crate) for a guide.
#[derive(Clone)]
pub struct Scheduler {
    shared: Arc<Handle>,
}

/// What a [`Scheduler`] points to: the shared state, behind a reference count of its own, so
/// that the runs of one slot clone and drop their handle without touching the count that
/// every other worker's runs touch too.
struct Handle(Arc<Shared>);

impl std::ops::Deref for Handle {
    type Target = Arc<Shared>;

    fn deref(&self) -> &Arc<Shared> {
        &self.0
    }
}

impl fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scheduler").field("entries", &self.shared.lock().entries.len()).finish()
    }
}

struct Shared {
    tz: TimeZone,
    clock: Arc<dyn Clock>,
    wrappers: Vec<Arc<dyn Wrapper>>,
    events: broadcast::Sender<Event>,
    state: Mutex<State>,
    /// Wakes the timer when entries change.
    wake: Notify,
    /// Stops the timer.
    stop: CancellationToken,
    /// The parent of every run's token: cancelling asks runs to stop.
    cancel_runs: CancellationToken,
    /// Drops the futures of runs that did not stop when asked.
    abort_runs: CancellationToken,
    running: AtomicUsize,
    /// Notified when the last running run ends.
    idle: Notify,
    next_run: AtomicU64,
    /// Counts changes made to entries by hand (see [`Shared::changed`]); changed only under
    /// the state lock.
    changes: AtomicU64,
}

#[derive(Default)]
struct State {
    entries: HashMap<EntryId, Entry, IdHasher>,
    heap: TimerHeap,
    next_id: u64,
    started: bool,
}

struct Entry {
    name: Option<String>,
    timing: Timing,
    prev: Option<Zoned>,
    next: Option<Zoned>,
    paused: bool,
    late: LatePolicy,
    tolerance: SignedDuration,
    runs: Arc<EntryRuns>,
}

/// What an entry shares with its runs: its job, when it was last changed by hand, how many
/// of its runs are going. One `Arc` per run instead of two, and small: at the slot, the starts
/// of 10,000 runs read 10,000 of these (aligning it to a cache line of its own, apart from its
/// reference counts, made that slower: three times the memory to go through).
struct EntryRuns {
    job: SharedJob,
    /// The scheduler's change count ([`Shared::changes`]) after the entry's last change by
    /// hand (new schedule or next time, pause, removal): a run decided before does not start.
    changed_at: AtomicU64,
    /// Runs going.
    running: AtomicUsize,
}

impl EntryRuns {
    fn new(job: SharedJob) -> Arc<EntryRuns> {
        Arc::new(EntryRuns { job, changed_at: AtomicU64::new(0), running: AtomicUsize::new(0) })
    }
}

/// A run to start, decided by the timer.
struct Fire {
    entry: EntryId,
    runs: Arc<EntryRuns>,
    slot: Zoned,
    /// The scheduler's change count when the run was decided (`None` for runs started by
    /// hand).
    decided: Option<u64>,
}

/// A run with its id and its context, waiting for its slot; once started, what it leaves.
///
/// A slot's runs are prepared before it (the timer's lead), started at it in place, and what
/// the ones that ended at once leave (their futures, their fires) is dropped with the whole
/// batch after all of them started: no memory is allocated, moved or freed between two starts.
struct Prepared {
    run: RunId,
    /// Taken by a run that goes on in a task of its own.
    fire: Option<Fire>,
    /// Built before the slot; taken by the start.
    ctx: Option<RunContext>,
    /// The future of a run that ended in its first poll.
    ended: Option<CatchPanic>,
}

impl Scheduler {
    /// A builder with the defaults: system zone and clock, no wrappers, 1024 events.
    pub fn builder() -> Builder {
        Builder {
            tz: TimeZone::system(),
            clock: Arc::new(SystemClock),
            wrappers: Vec::new(),
            capacity: 1024,
        }
    }

    /// A scheduler with the defaults.
    pub fn new() -> Scheduler {
        Scheduler::builder().build()
    }

    /// The current instant, from the scheduler's clock, in its zone.
    pub fn now(&self) -> Zoned {
        self.shared.now()
    }

    /// Adds an entry; it fires from its next fire time after now.
    pub fn add(&self, timing: impl Into<Timing>, job: impl Job) -> EntryId {
        self.add_with(timing, job, EntryOptions::default())
    }

    /// Adds an entry with options (a name, wrappers, a late policy).
    pub fn add_with(
        &self,
        timing: impl Into<Timing>,
        job: impl Job,
        options: EntryOptions,
    ) -> EntryId {
        let shared = &self.shared;
        let mut job: SharedJob = Arc::new(job);
        // Innermost first: the entry's own wrappers, then the defaults around them.
        for w in options.wrappers.iter().rev().chain(shared.wrappers.iter().rev()) {
            job = w.wrap(job);
        }
        let timing = timing.into().in_zone(&shared.tz);
        let now = shared.now();
        let next = timing.next_after(&now);
        let mut st = shared.lock();
        st.next_id += 1;
        let id = EntryId(st.next_id);
        st.entries.insert(
            id,
            Entry {
                name: options.name,
                timing,
                prev: None,
                next: None,
                paused: false,
                late: options.late,
                tolerance: SignedDuration::try_from(options.tolerance)
                    .unwrap_or(SignedDuration::MAX),
                runs: EntryRuns::new(job),
            },
        );
        shared.set_next(&mut st, id, next);
        id
    }

    /// Removes an entry. A run in flight finishes; no new run starts.
    ///
    /// # Errors
    /// [`Error::UnknownEntry`].
    pub fn remove(&self, id: EntryId) -> Result<(), Error> {
        let mut st = self.shared.lock();
        let entry = st.entries.remove(&id).ok_or(Error::UnknownEntry(id))?;
        self.shared.changed(&entry);
        st.heap.remove(id);
        if st.started {
            self.shared.wake.notify_one();
        }
        Ok(())
    }

    /// Replaces an entry's schedule; the next fire time is computed from now (for an anchored
    /// interval: from its anchor). A paused entry stays paused.
    ///
    /// # Errors
    /// [`Error::UnknownEntry`].
    pub fn set_timing(&self, id: EntryId, timing: impl Into<Timing>) -> Result<(), Error> {
        let shared = &self.shared;
        let timing = timing.into().in_zone(&shared.tz);
        let next = timing.next_after(&shared.now());
        let mut st = shared.lock();
        let entry = st.entries.get_mut(&id).ok_or(Error::UnknownEntry(id))?;
        entry.timing = timing;
        if !entry.paused {
            shared.set_next(&mut st, id, next);
        }
        Ok(())
    }

    /// Pauses an entry: it does not fire until resumed. Runs in flight go on.
    ///
    /// # Errors
    /// [`Error::UnknownEntry`].
    pub fn pause(&self, id: EntryId) -> Result<(), Error> {
        let mut st = self.shared.lock();
        let entry = st.entries.get_mut(&id).ok_or(Error::UnknownEntry(id))?;
        entry.paused = true;
        entry.next = None;
        self.shared.changed(entry);
        st.heap.remove(id);
        Ok(())
    }

    /// Resumes a paused entry from its next fire time after now: slots passed while paused
    /// are skipped.
    ///
    /// # Errors
    /// [`Error::UnknownEntry`].
    pub fn resume(&self, id: EntryId) -> Result<(), Error> {
        let shared = &self.shared;
        let now = shared.now();
        let mut st = shared.lock();
        let entry = st.entries.get_mut(&id).ok_or(Error::UnknownEntry(id))?;
        if entry.paused {
            entry.paused = false;
            let next = entry.timing.next_after(&now);
            shared.set_next(&mut st, id, next);
        }
        Ok(())
    }

    /// Starts a run of the entry now (its slot is now), through its wrappers; the schedule is
    /// unchanged. Works for paused entries too.
    ///
    /// # Errors
    /// [`Error::UnknownEntry`].
    pub fn run_now(&self, id: EntryId) -> Result<RunId, Error> {
        self.run_for(id, self.shared.now())
    }

    /// Starts a run of the entry now, for the given slot (a slot missed while the process was
    /// down, say), through its wrappers; the schedule is unchanged.
    ///
    /// # Errors
    /// [`Error::UnknownEntry`].
    pub fn run_for(&self, id: EntryId, slot: Zoned) -> Result<RunId, Error> {
        let shared = &self.shared;
        let st = shared.lock();
        let entry = st.entries.get(&id).ok_or(Error::UnknownEntry(id))?;
        let fire = Fire { entry: id, runs: entry.runs.clone(), slot, decided: None };
        drop(st);
        Ok(shared.launch(fire))
    }

    /// Sets an entry's next fire time by hand; after it fires, the schedule continues from
    /// there. (Go services patch robfig/cron for this.)
    ///
    /// # Errors
    /// [`Error::UnknownEntry`], or [`Error::Paused`] for a paused entry.
    pub fn set_next(&self, id: EntryId, at: Zoned) -> Result<(), Error> {
        let shared = &self.shared;
        let mut st = shared.lock();
        let entry = st.entries.get(&id).ok_or(Error::UnknownEntry(id))?;
        if entry.paused {
            return Err(Error::Paused(id));
        }
        shared.set_next(&mut st, id, Some(at));
        Ok(())
    }

    /// One entry as it is now.
    pub fn entry(&self, id: EntryId) -> Option<EntrySnapshot> {
        let st = self.shared.lock();
        st.entries.get(&id).map(|e| snapshot(id, e))
    }

    /// Every entry as it is now, ordered by id.
    pub fn entries(&self) -> Vec<EntrySnapshot> {
        let st = self.shared.lock();
        let mut all: Vec<EntrySnapshot> =
            st.entries.iter().map(|(id, e)| snapshot(*id, e)).collect();
        all.sort_by_key(|e| e.id);
        all
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.shared.lock().entries.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Runs going now, across all entries.
    pub fn running(&self) -> usize {
        self.shared.running.load(Ordering::Acquire)
    }

    /// Events from now on. A subscriber that falls more than the event capacity behind loses
    /// the oldest (`RecvError::Lagged`).
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.shared.events.subscribe()
    }

    /// Starts firing, on the current tokio runtime. Calling it again does nothing.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn start(&self) {
        let mut st = self.shared.lock();
        if st.started {
            return;
        }
        st.started = true;
        drop(st);
        tokio::spawn(timer(self.shared.0.clone()));
    }

    /// Stops firing, then waits up to `grace` for running jobs to finish. Then it cancels the
    /// ones still running (their `ctx.cancel` fires, so a job can stop cleanly: kill its child
    /// processes, write its result) and waits up to `grace` again; jobs that still have not
    /// ended are dropped and finish with [`JobError::Cancelled`]. Resolves when no run is left.
    pub async fn shutdown(&self, grace: Duration) {
        let shared = &self.shared;
        shared.stop.cancel();
        if tokio::time::timeout(grace, shared.until_idle()).await.is_ok() {
            return;
        }
        shared.cancel_runs.cancel();
        if tokio::time::timeout(grace, shared.until_idle()).await.is_err() {
            shared.abort_runs.cancel();
            shared.until_idle().await;
        }
    }

    /// Checks the timer heap against the entries (for tests of heavy churn).
    #[doc(hidden)]
    pub fn check_consistency(&self) -> Result<(), String> {
        let st = self.shared.lock();
        st.heap.check()?;
        let scheduled = st.entries.values().filter(|e| e.next.is_some()).count();
        if scheduled != st.heap.len() {
            return Err(format!(
                "{scheduled} entries have a next time, {} in the heap",
                st.heap.len()
            ));
        }
        Ok(())
    }
}

impl Default for Scheduler {
    fn default() -> Scheduler {
        Scheduler::new()
    }
}

fn snapshot(id: EntryId, e: &Entry) -> EntrySnapshot {
    let state = match (e.paused, &e.next) {
        (true, _) => EntryState::Paused,
        (false, Some(_)) => EntryState::Scheduled,
        (false, None) => EntryState::Done,
    };
    EntrySnapshot {
        id,
        name: e.name.clone(),
        timing: e.timing.clone(),
        prev: e.prev.clone(),
        next: e.next.clone(),
        state,
        running: e.runs.running.load(Ordering::Acquire),
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the state half-changed in a way that
        // matters more than stopping would: keep going.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn now(&self) -> Zoned {
        self.clock.now().to_zoned(self.tz.clone())
    }

    fn emit(&self, event: Event) {
        // No subscriber is fine.
        let _ = self.events.send(event);
    }

    /// Whether anyone listens: events are not even built otherwise.
    fn observed(&self) -> bool {
        self.events.receiver_count() > 0
    }

    /// Marks an entry changed by hand (the caller holds the state lock): its runs decided
    /// before do not start.
    fn changed(&self, entry: &Entry) {
        let count = self.changes.fetch_add(1, Ordering::AcqRel) + 1;
        entry.runs.changed_at.store(count, Ordering::Release);
    }

    /// Whether the fire's entry was changed by hand since the run was decided. Only an entry
    /// changed after the last look at the scheduler's count needs a look at its own (so that
    /// a slot's starts do not read 10,000 entries' lines for nothing).
    fn overtaken(&self, fire: &Fire) -> bool {
        fire.decided.is_some_and(|decided| {
            self.changes.load(Ordering::Acquire) != decided
                && fire.runs.changed_at.load(Ordering::Acquire) > decided
        })
    }

    /// Sets (or clears) an entry's next deadline, tells observers and wakes the timer.
    fn set_next(&self, st: &mut State, id: EntryId, next: Option<Zoned>) {
        let Some(entry) = st.entries.get_mut(&id) else { return };
        self.changed(entry);
        entry.next.clone_from(&next);
        match next {
            Some(next) => {
                st.heap.set(id, next.timestamp());
                self.emit(Event::Scheduled { entry: id, next });
            }
            None => {
                st.heap.remove(id);
            }
        }
        // Before `start` there is no timer to wake; it reads the heap when it starts.
        if st.started {
            self.wake.notify_one();
        }
    }

    /// Takes up to `BATCH` entries due by `due_by`, decides their runs and their next
    /// deadlines. Returns the runs and whether more entries are due by then. `due_by` is later
    /// than `now` when the timer decides a slot's runs ahead of it.
    fn collect_due(&self, due_by: Timestamp, now: Timestamp) -> (Vec<Fire>, bool) {
        let now_z = now.to_zoned(self.tz.clone());
        let observed = self.observed();
        let mut fires = Vec::new();
        let mut events = Vec::new();
        let mut st = self.lock();
        // Changes by hand happen under the lock: none can come between this and the runs.
        let decided = Some(self.changes.load(Ordering::Acquire));
        while let Some((at, id)) = st.heap.peek() {
            if at > due_by || fires.len() == BATCH {
                break;
            }
            let st = &mut *st;
            let Some(entry) = st.entries.get_mut(&id) else {
                st.heap.remove(id);
                continue;
            };
            let Some(slot) = entry.next.take() else {
                st.heap.remove(id);
                continue;
            };
            let late_by = now.duration_since(slot.timestamp());
            let mut run_slot = Some(slot.clone());
            let mut last = slot.clone();
            if late_by > entry.tolerance {
                let latest = entry.timing.latest_up_to(&now_z).filter(|l| *l >= slot);
                let latest = latest.unwrap_or_else(|| slot.clone());
                last = latest.clone();
                match entry.late {
                    LatePolicy::RunOnce => {
                        if latest > slot {
                            let before =
                                entry.timing.latest_before(&latest).unwrap_or_else(|| slot.clone());
                            events.push(Event::Missed {
                                entry: id,
                                first: slot.clone(),
                                last: before,
                                late_by,
                            });
                        }
                        run_slot = Some(latest);
                    }
                    LatePolicy::Skip => {
                        events.push(Event::Missed {
                            entry: id,
                            first: slot.clone(),
                            last: latest,
                            late_by,
                        });
                        run_slot = None;
                    }
                }
            }
            entry.prev = Some(last.clone());
            let next = entry.timing.next_after(&last);
            if let Some(slot) = run_slot {
                fires.push(Fire { entry: id, runs: entry.runs.clone(), slot, decided });
            }
            let once = entry.timing.is_once();
            entry.next.clone_from(&next);
            match next {
                // Still the heap's top: update its deadline in place.
                Some(next) => {
                    st.heap.set(id, next.timestamp());
                    if observed {
                        events.push(Event::Scheduled { entry: id, next });
                    }
                }
                None => {
                    st.heap.remove(id);
                    if once {
                        // A one-shot that fired is done: forget it (its run goes on).
                        st.entries.remove(&id);
                    }
                }
            }
        }
        let more = st.heap.peek().is_some_and(|(at, _)| at <= due_by);
        drop(st);
        for e in events {
            self.emit(e);
        }
        (fires, more)
    }

    /// Gives a run its id.
    fn prepare(&self, fire: Fire) -> Prepared {
        let run = RunId(self.next_run.fetch_add(1, Ordering::Relaxed));
        Prepared { run, fire: Some(fire), ctx: None, ended: None }
    }

    /// Starts one run now.
    fn launch(self: &Arc<Self>, fire: Fire) -> RunId {
        let prepared = self.prepare(fire);
        let run = prepared.run;
        self.start_all(vec![prepared]);
        run
    }

    /// Builds the contexts of runs that will start together.
    ///
    /// They share their `cancel` and `stopping` tokens: the scheduler cancels these only for
    /// all runs at once (at shutdown), and a token per run would cost each run two locks of
    /// the scheduler's own tokens (a wrapper that cancels one run, like [`wrap::timeout`],
    /// gives it a child token of its own). They share one `Scheduler` handle too, so the runs
    /// started on one CPU do not bounce a reference count with those started on another.
    fn contexts(self: &Arc<Self>, runs: &mut [Prepared]) {
        let cancel: RunToken = self.cancel_runs.child_token().into();
        let stopping: RunToken = self.stop.child_token().into();
        let handle = Arc::new(Handle(self.clone()));
        for prepared in runs {
            let Some(fire) = &prepared.fire else { continue };
            prepared.ctx = Some(RunContext {
                entry: fire.entry,
                slot: fire.slot.clone(),
                attempt: 1,
                cancel: cancel.clone(),
                stopping: stopping.clone(),
                scheduler: Scheduler { shared: handle.clone() },
            });
        }
    }

    /// Builds the runs' contexts and starts them ([`Shared::start_prepared`]).
    fn start_all(self: &Arc<Self>, mut runs: Vec<Prepared>) {
        self.contexts(&mut runs);
        drop(self.start_prepared(runs));
    }

    /// Starts runs whose contexts are built, except those whose entry was changed by hand
    /// since they were decided. Each job's first poll happens here, at once, one after the
    /// other; a job that does not finish there goes on in a tokio task of its own (which polls
    /// it again, with its own waker). What the finished ones leave behind is given back, to be
    /// dropped after all runs of the slot have started: freeing it costs about as much as
    /// starting them.
    fn start_prepared(self: &Arc<Self>, mut runs: Vec<Prepared>) -> Vec<Prepared> {
        let observed = self.observed();
        // Counted as running from the start, so that the count never touches zero midway.
        self.running.fetch_add(runs.len(), Ordering::AcqRel);
        let mut ended = 0;
        let began = std::time::Instant::now();
        let mut in_place = true;
        for (i, prepared) in runs.iter_mut().enumerate() {
            // Jobs whose first poll is heavy (one that spawns a process, say) would start one
            // after the other here: past a budget, the rest start in tasks of their own, on
            // every worker. Checked after 4, 8, 16... runs, to keep the clock out of the loop.
            if in_place && i >= 4 && i.is_power_of_two() {
                in_place = began.elapsed() < IN_PLACE_BUDGET * i as u32;
            }
            if self.start(prepared, observed, in_place) {
                ended += 1;
            }
        }
        if ended > 0 && self.running.fetch_sub(ended, Ordering::AcqRel) == ended {
            self.idle.notify_waiters();
        }
        runs
    }

    /// Starts one run; true if it ended (or never started) at once.
    /// A run that ended at once leaves its fire and future in `prepared`, freed with the batch;
    /// only a run that goes on in a task takes its fire out (moving a run's parts about at
    /// the slot costs more than the rest of a start).
    fn start(self: &Arc<Self>, prepared: &mut Prepared, observed: bool, in_place: bool) -> bool {
        let Prepared { run, fire: fire_slot, ctx, ended } = prepared;
        let run = *run;
        let Some(fire) = fire_slot.as_ref() else {
            return true;
        };
        if self.overtaken(fire) {
            return true;
        }
        let Some(ctx) = ctx.take() else {
            return true;
        };
        fire.runs.running.fetch_add(1, Ordering::AcqRel);
        let began = observed.then(|| self.clock.now());
        if let Some(began) = began {
            let late_by = began.duration_since(fire.slot.timestamp()).max(SignedDuration::ZERO);
            self.emit(Event::Started { entry: fire.entry, run, slot: fire.slot.clone(), late_by });
        }
        if !in_place {
            // A run that goes on in a task may outlast a subscriber's arrival: it always knows
            // when it began, so its `Finished` event has its real duration.
            let began = began.or_else(|| Some(self.clock.now()));
            let shared = self.clone();
            let fire = fire_slot.take().expect("checked above");
            tokio::spawn(async move {
                let outcome = match catch_unwind(AssertUnwindSafe(|| fire.runs.job.run(ctx))) {
                    Ok(fut) => shared.run_to_end(CatchPanic(fut)).await,
                    Err(panic) => Err(JobError::Panicked(panic_message(panic))),
                };
                shared.ended_in_task(run, fire, began, outcome);
            });
            return false;
        }
        let mut fut = match catch_unwind(AssertUnwindSafe(|| fire.runs.job.run(ctx))) {
            Ok(fut) => CatchPanic(fut),
            Err(panic) => {
                self.ended(run, fire, began, Err(JobError::Panicked(panic_message(panic))));
                return true;
            }
        };
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        if let Poll::Ready(outcome) = Pin::new(&mut fut).poll(&mut cx) {
            self.ended(run, fire, began, outcome);
            *ended = Some(fut);
            return true;
        }
        let began = began.or_else(|| Some(self.clock.now()));
        let shared = self.clone();
        let fire = fire_slot.take().expect("checked above");
        tokio::spawn(async move {
            let outcome = shared.run_to_end(fut).await;
            shared.ended_in_task(run, fire, began, outcome);
        });
        false
    }

    /// Polls a run's future to its end, unless the shutdown drops it.
    async fn run_to_end(&self, mut fut: CatchPanic) -> JobResult {
        tokio::select! {
            outcome = &mut fut => outcome,
            // Shutdown past both graces: the job ignored its cancellation; drop it.
            _ = self.abort_runs.cancelled() => Err(JobError::Cancelled),
        }
    }

    /// Records the end of a run that went on in a task of its own.
    fn ended_in_task(&self, run: RunId, fire: Fire, began: Option<Timestamp>, outcome: JobResult) {
        self.ended(run, &fire, began, outcome);
        if self.running.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.idle.notify_waiters();
        }
    }

    /// Records the end of a run (the caller counts it out of `running`). `began` is known
    /// when someone listened to events at its start, and for every run that went on in a
    /// task of its own.
    fn ended(&self, run: RunId, fire: &Fire, began: Option<Timestamp>, outcome: JobResult) {
        let (entry, slot) = (fire.entry, &fire.slot);
        match outcome {
            Err(JobError::Skipped(reason)) => {
                self.emit(Event::Skipped { entry, slot: slot.clone(), reason })
            }
            outcome => {
                if let Err(JobError::Panicked(message)) = &outcome {
                    tracing::error!(%entry, %run, %message, "job panicked; the entry stays scheduled");
                }
                if let Some(began) = began.filter(|_| self.observed()) {
                    let elapsed = self.clock.now().duration_since(began);
                    let duration = Duration::try_from(elapsed).unwrap_or_default();
                    self.emit(Event::Finished {
                        entry,
                        run,
                        slot: slot.clone(),
                        outcome,
                        duration,
                    });
                }
            }
        }
        fire.runs.running.fetch_sub(1, Ordering::AcqRel);
    }

    async fn until_idle(&self) {
        loop {
            let idle = self.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            if self.running.load(Ordering::Acquire) == 0 {
                return;
            }
            idle.await;
        }
    }
}

/// How many due entries the timer handles before launching their runs: the first runs of a
/// large second start while later entries are still being rescheduled.
const BATCH: usize = 256;

/// Below this lead the timer decides a slot's runs at the slot: it would save next to nothing.
const MIN_LEAD: SignedDuration = SignedDuration::from_millis(1);
/// Added to a lead: deciding 10,000 runs takes about 10 ms, and now and then a few more.
const LEAD_MARGIN: SignedDuration = SignedDuration::from_millis(5);
/// The timer decides a slot's runs at most this long before the slot.
const MAX_LEAD: SignedDuration = SignedDuration::from_millis(250);
/// A slot with at least this many runs is started by several tasks, one per runtime worker.
const SPLIT_AT: usize = 512;
/// What starting runs in place may cost on average: past it, the rest of a slot's runs start
/// in tasks of their own.
const IN_PLACE_BUDGET: Duration = Duration::from_micros(20);
/// How often a thread waiting for a large slot looks whether the scheduler stops.
const STOP_CHECK: Duration = Duration::from_millis(20);
/// How long before a large slot the threads starting its shares wake: they warm their CPU's
/// cache for their share ([`Shares::warm`], 0.1-0.2 ms for 5,000 runs here), then spin to
/// the slot.
const SPIN: SignedDuration = SignedDuration::from_micros(1000);

/// The one timer: sleeps until the earliest deadline or a change, fires what is due.
///
/// With many entries, shortly before a deadline (the *lead*: twice the time to decide every
/// entry in the heap at the last measured cost per entry, at most [`MAX_LEAD`], plus
/// [`LEAD_MARGIN`]; none when under [`MIN_LEAD`]) it decides the slot's runs and builds their
/// contexts, then sleeps until the slot and only starts them: the work of rescheduling 10,000
/// entries is done before their slot, not after. Slots of [`SPLIT_AT`] runs or more are
/// started by one thread per runtime worker ([`start_on_thread`]), the others by the timer.
async fn timer(shared: Arc<Shared>) {
    let workers = tokio::runtime::Handle::current().metrics().num_workers().max(1);
    // Deciding one entry costs about a microsecond; measured on every slot from then on.
    let mut per_entry = SignedDuration::from_micros(1);
    let mut pending: Option<(Timestamp, Vec<Prepared>)> = None;
    loop {
        let now = shared.clock.now();
        if let Some((_, runs)) = pending.take_if(|(at, _)| *at <= now) {
            shared.start_all(runs);
        }
        // Whatever is due and not prepared (late, or added since the last look).
        loop {
            let (fires, more) = shared.collect_due(now, now);
            shared.start_all(fires.into_iter().map(|fire| shared.prepare(fire)).collect());
            if !more {
                break;
            }
        }
        let (next, entries) = {
            let mut st = shared.lock();
            (st.heap.peek().map(|(at, _)| at), st.heap.len())
        };
        let lead = per_entry
            .checked_mul(i32::try_from(entries).unwrap_or(i32::MAX))
            .and_then(|d| d.checked_mul(2))
            .unwrap_or(MAX_LEAD)
            .min(MAX_LEAD);
        // A margin for a timer thread the kernel (or a virtual machine's host) sets aside.
        let lead = if lead < MIN_LEAD { SignedDuration::ZERO } else { lead + LEAD_MARGIN };
        if pending.is_none() {
            if let Some(at) = next.filter(|at| !lead.is_zero() && at.duration_since(now) <= lead) {
                let began = std::time::Instant::now();
                let mut runs = Vec::new();
                loop {
                    let (fires, more) = shared.collect_due(at, now);
                    runs.extend(fires.into_iter().map(|fire| shared.prepare(fire)));
                    // Out of time: what is left is launched when due, without preparation.
                    if !more || shared.clock.now() >= at {
                        break;
                    }
                }
                if !runs.is_empty() {
                    let spent = SignedDuration::try_from(began.elapsed()).unwrap_or(MAX_LEAD);
                    per_entry = spent / i32::try_from(runs.len()).unwrap_or(i32::MAX);
                }
                if workers > 1 && runs.len() >= SPLIT_AT {
                    // One thread per worker starts a share, each spinning to the slot.
                    let shares = Arc::new(Shares::new(&shared, runs, workers));
                    for nth in 0..workers {
                        start_on_thread(shared.clone(), at, shares.clone(), nth);
                    }
                    continue;
                }
                pending = Some((at, runs));
                continue;
            }
        }
        let wake_at = match (&pending, next) {
            (Some((at, _)), next) => Some(next.map_or(*at, |n| n.min(*at))),
            (None, next) => next.map(|n| n.checked_sub(lead).unwrap_or(n)),
        };
        let sleep: Sleep = match wake_at {
            Some(at) => shared.clock.sleep_until(at),
            None => Box::pin(std::future::pending()),
        };
        tokio::select! {
            _ = sleep => {}
            _ = shared.wake.notified() => {}
            _ = shared.stop.cancelled() => return,
        }
    }
}

/// A large slot's prepared runs, in chunks of at most [`CHUNK`], for the threads that start
/// them at the slot. Each thread has a share (a range of chunks) that it warms before the slot and
/// starts first, front to back; then it takes what is left of the others' shares, so a thread
/// the kernel holds up (another process on its CPU) does not hold up its share's runs.
struct Shares {
    chunks: Vec<Mutex<Vec<Prepared>>>,
    /// Per thread: the next chunk of its share not yet taken, and the end of its share.
    cursors: Vec<(AtomicUsize, usize)>,
}

/// Runs per chunk of a [`Shares`]: the last chunk bounds how long one thread works on alone
/// (about 0.1 ms), and each chunk has a cost of its own (its contexts' shared tokens and
/// handle, a few clock reads; 256-run chunks put 0.05 ms on the median lateness of 10,000
/// runs here).
const CHUNK: usize = 1024;
/// The fewest runs per chunk, when a slot has too few runs for four [`CHUNK`]s a thread.
const MIN_CHUNK: usize = 64;

impl Shares {
    /// Splits `runs` into chunks (each with contexts of its own, see [`Shared::contexts`])
    /// and the chunks into `threads` shares.
    fn new(shared: &Arc<Shared>, runs: Vec<Prepared>, threads: usize) -> Shares {
        // At least four chunks a thread, so that a smaller slot is shared out too.
        let size = (runs.len() / (threads.max(1) * 4)).clamp(MIN_CHUNK, CHUNK);
        let mut chunks = Vec::with_capacity(runs.len().div_ceil(size));
        let mut runs = runs.into_iter();
        loop {
            let mut chunk: Vec<Prepared> = runs.by_ref().take(size).collect();
            if chunk.is_empty() {
                break;
            }
            shared.contexts(&mut chunk);
            chunks.push(Mutex::new(chunk));
        }
        let per = chunks.len().div_ceil(threads.max(1));
        let bound = |i: usize| (i * per).min(chunks.len());
        let cursors = (0..threads).map(|t| (AtomicUsize::new(bound(t)), bound(t + 1))).collect();
        Shares { chunks, cursors }
    }

    /// The next chunk for thread `nth`: from its own share, else from another's.
    fn take(&self, nth: usize) -> Option<Vec<Prepared>> {
        let threads = self.cursors.len();
        for t in (0..threads).map(|i| (nth + i) % threads) {
            let (next, end) = &self.cursors[t];
            // Looked at first, so that the cursors of finished shares stop growing.
            if next.load(Ordering::Relaxed) >= *end {
                continue;
            }
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i < *end {
                let mut chunk = self.chunks[i].lock().unwrap_or_else(|p| p.into_inner());
                return Some(std::mem::take(&mut *chunk));
            }
        }
        None
    }

    /// Reads what starting each run of thread `nth`'s share will read first (its entry's
    /// shared part and its job's reference count, in the same allocation as the job's own
    /// data), so that the starts at the slot find it in this CPU's cache instead of waiting
    /// for memory once per run: 10,000 entries are spread over more memory than a CPU's own
    /// cache keeps between two slots. Stops early when `due` says the slot has come.
    fn warm(&self, nth: usize, due: impl Fn() -> bool) {
        let (next, end) = &self.cursors[nth];
        let mut sum = 0usize;
        for chunk in &self.chunks[next.load(Ordering::Relaxed)..*end] {
            if due() {
                break;
            }
            for prepared in chunk.lock().unwrap_or_else(|p| p.into_inner()).iter() {
                if let Some(fire) = &prepared.fire {
                    sum = sum
                        .wrapping_add(fire.runs.changed_at.load(Ordering::Relaxed) as usize)
                        .wrapping_add(Arc::strong_count(&fire.runs.job));
                }
            }
        }
        std::hint::black_box(sum);
    }
}

/// Starts a share of a large slot's prepared runs at the slot, on a thread of tokio's
/// blocking pool (with the runtime entered, so jobs can spawn tasks and use timers), pinned
/// to the `nth` CPU the process may use while it waits and starts them ([`pin`]).
///
/// Why not a task: a tokio worker parked until the slot can take a millisecond to get going
/// on a virtual machine, and tasks woken together can end up queued behind each other on one
/// worker. A thread of its own sleeps (with the scheduler's clock) to just before the slot and
/// spins to it.
fn start_on_thread(shared: Arc<Shared>, at: Timestamp, shares: Arc<Shares>, nth: usize) {
    let runtime = tokio::runtime::Handle::current();
    drop(tokio::task::spawn_blocking(move || {
        let _pinned = pin::Pinned::nth_cpu(nth);
        let until = |at: Timestamp| {
            if shared.clock.in_real_time() {
                // Each thread sleeps on its own: woken by one sleeper thread one after the
                // other, the second waits while the first spins on the waker's CPU.
                loop {
                    let now = shared.clock.now();
                    if shared.stop.is_cancelled() {
                        return false;
                    }
                    if now >= at {
                        return true;
                    }
                    // In steps, so that a shutdown is not kept waiting for the whole lead.
                    let step = clock::to_std(at.duration_since(now)).min(STOP_CHECK);
                    std::thread::sleep(step);
                }
            }
            runtime.block_on(async {
                while shared.clock.now() < at {
                    tokio::select! {
                        _ = shared.clock.sleep_until(at) => {}
                        _ = shared.stop.cancelled() => return false,
                    }
                }
                true
            })
        };
        if !until(at.checked_sub(SPIN).unwrap_or(at)) {
            return;
        }
        shares.warm(nth, || shared.clock.now() >= at);
        // Bounded in real time: a virtual clock does not move while this spins.
        let spun = std::time::Instant::now();
        while shared.clock.now() < at && spun.elapsed() < SPIN.unsigned_abs() * 2 {
            std::hint::spin_loop();
        }
        if until(at) {
            let mut started = Vec::new();
            while let Some(chunk) = shares.take(nth) {
                started.push(shared.start_prepared(chunk));
            }
            drop(started);
        }
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runs(n: u64) -> Vec<Prepared> {
        (0..n).map(|i| Prepared { run: RunId(i), fire: None, ctx: None, ended: None }).collect()
    }

    fn ids(chunk: &[Prepared]) -> Vec<u64> {
        chunk.iter().map(|p| p.run.0).collect()
    }

    #[test]
    fn a_thread_starts_its_own_share_then_takes_what_is_left_of_the_others() {
        let scheduler = Scheduler::new();
        let n = 10 * CHUNK as u64 + 7;
        let shares = Shares::new(&scheduler.shared, runs(n), 2);
        // Eleven chunks (the last of 7 runs): thread 0's share is the first six, thread 1's
        // the last five.
        assert_eq!(shares.chunks.len(), 11);
        let first = shares.take(1).unwrap();
        assert_eq!(ids(&first)[0], 6 * CHUNK as u64);
        // Thread 1 is held up: thread 0 starts its own share, then the rest of thread 1's.
        let mut taken = vec![first];
        while let Some(chunk) = shares.take(0) {
            taken.push(chunk);
        }
        assert!(shares.take(1).is_none());
        let mut all: Vec<u64> = taken.iter().flat_map(|c| ids(c)).collect();
        assert_eq!(all.len() as u64, n);
        assert_eq!(ids(&taken[1])[0], 0, "its own share first");
        assert_eq!(ids(&taken[7])[0], 7 * CHUNK as u64, "then the other's, in order");
        all.sort_unstable();
        assert_eq!(all, (0..n).collect::<Vec<_>>(), "each run exactly once");
    }

    #[test]
    fn a_smaller_slot_is_shared_out_in_smaller_chunks() {
        let scheduler = Scheduler::new();
        let shares = Shares::new(&scheduler.shared, runs(600), 2);
        // 600 runs: eight chunks of 75, four for each thread.
        assert_eq!(shares.chunks.len(), 8);
        assert_eq!(ids(&shares.take(1).unwrap())[0], 300);
    }

    #[test]
    fn with_more_threads_than_chunks_every_run_is_still_taken_once() {
        let scheduler = Scheduler::new();
        let shares = Shares::new(&scheduler.shared, runs(10), 4);
        assert_eq!(shares.chunks.len(), 1);
        let mut all = Vec::new();
        for nth in [2, 0, 1, 3] {
            while let Some(chunk) = shares.take(nth) {
                all.extend(ids(&chunk));
            }
        }
        assert_eq!(all, (0..10).collect::<Vec<_>>());
    }
}
