//! Entries: their ids, their options and late policy, what a snapshot shows of them, and what
//! an entry shares with its runs.
//!
//! The operations on entries are [`Scheduler`]'s methods; the entries themselves live in the
//! scheduler's state (`shared.rs`), under its lock.

use std::{
    fmt,
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use jiff::{SignedDuration, Zoned};

use crate::{job::SharedJob, timing::Timing, wrap::Wrapper};
// For the doc links.
#[cfg(doc)]
use crate::{shared::Shared, Scheduler};

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
    pub(crate) name: Option<String>,
    pub(crate) wrappers: Vec<Arc<dyn Wrapper>>,
    pub(crate) late: LatePolicy,
    pub(crate) tolerance: Duration,
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

/// An entry in the scheduler's state.
pub(crate) struct Entry {
    pub(crate) name: Option<String>,
    pub(crate) timing: Timing,
    pub(crate) prev: Option<Zoned>,
    pub(crate) next: Option<Zoned>,
    pub(crate) paused: bool,
    pub(crate) late: LatePolicy,
    pub(crate) tolerance: SignedDuration,
    pub(crate) runs: Arc<EntryRuns>,
}

impl Entry {
    /// The entry as it is now, for [`Scheduler::entries`].
    pub(crate) fn snapshot(&self, id: EntryId) -> EntrySnapshot {
        let state = match (self.paused, &self.next) {
            (true, _) => EntryState::Paused,
            (false, Some(_)) => EntryState::Scheduled,
            (false, None) => EntryState::Done,
        };
        EntrySnapshot {
            id,
            name: self.name.clone(),
            timing: self.timing.clone(),
            prev: self.prev.clone(),
            next: self.next.clone(),
            state,
            running: self.runs.running.load(Ordering::Acquire),
        }
    }
}

/// What an entry shares with its runs: its job, when it was last changed by hand, how many
/// of its runs are going. One `Arc` per run instead of two, and small: at the slot, the starts
/// of 10,000 runs read 10,000 of these (aligning it to a cache line of its own, apart from its
/// reference counts, made that slower: three times the memory to go through).
pub(crate) struct EntryRuns {
    pub(crate) job: SharedJob,
    /// The scheduler's change count ([`Shared::changes`]) after the entry's last change by
    /// hand (new schedule or next time, pause, removal): a run decided before does not start.
    pub(crate) changed_at: AtomicU64,
    /// Runs going.
    pub(crate) running: AtomicUsize,
}

impl EntryRuns {
    pub(crate) fn new(job: SharedJob) -> Arc<EntryRuns> {
        Arc::new(EntryRuns { job, changed_at: AtomicU64::new(0), running: AtomicUsize::new(0) })
    }
}
