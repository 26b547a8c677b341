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

// This file is the public API (the handle, its builder, the errors of its operations), so that
// it reads on its own; the machinery behind it is in modules of its own:
// - `entry`: entries, their ids and options, what they share with their runs;
// - `shared`: the state every handle, the timer and the runs share;
// - `timer`: the one timer task, deciding what is due and when to start it;
// - `run`: starting a run (its job's first poll, in place) and recording its end;
// - `slot`: starting a large slot's runs on pinned threads, in shares of chunks;
// - `heap`: the timer queue; `pin`: pinning a thread to a CPU; `clock`: where time comes from.
mod clock;
mod entry;
mod event;
mod heap;
mod job;
mod pin;
mod run;
mod shared;
mod slot;
mod timer;
mod timing;
pub mod wrap;

use std::{
    fmt,
    sync::{atomic::Ordering, Arc},
    time::Duration,
};

use jiff::{tz::TimeZone, SignedDuration, Zoned};
use tokio::sync::broadcast;

pub use clock::{precise_sleep, Clock, Sleep, SystemClock, TokioClock};
pub use entry::{EntryId, EntryOptions, EntrySnapshot, EntryState, LatePolicy};
pub use event::Event;
pub use job::{
    BoxFuture, IntoJobResult, Job, JobError, JobResult, RunContext, RunToken, SharedJob,
};
pub use run::RunId;
pub use timing::Timing;
pub use wrap::Wrapper;

use entry::{Entry, EntryRuns};
use run::Fire;
use shared::{Handle, Shared};
use timer::timer;

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
        let shared = Shared::new(self.tz, self.clock, self.wrappers, self.capacity);
        Scheduler { shared: Arc::new(Handle(Arc::new(shared))) }
    }
}

/// A handle to a scheduler; clones share it. See the [crate docs](crate) for a guide.
#[derive(Clone)]
pub struct Scheduler {
    shared: Arc<Handle>,
}

impl fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scheduler").field("entries", &self.shared.lock().entries.len()).finish()
    }
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
        st.entries.get(&id).map(|e| e.snapshot(id))
    }

    /// Every entry as it is now, ordered by id.
    pub fn entries(&self) -> Vec<EntrySnapshot> {
        let st = self.shared.lock();
        let mut all: Vec<EntrySnapshot> =
            st.entries.iter().map(|(id, e)| e.snapshot(*id)).collect();
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
