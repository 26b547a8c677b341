//! What every [`Scheduler`] handle, the timer and the runs share: the entries and the timer
//! queue under one lock, the tokens that stop the timer and the runs, the counts of runs and
//! of changes made by hand.
//!
//! The methods here are the ones all of them use; the timer adds its own (`timer.rs`:
//! deciding what is due), and so does starting runs (`run.rs`).

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        Arc, Mutex, MutexGuard,
    },
};

use jiff::{tz::TimeZone, Zoned};
use tokio::sync::{broadcast, Notify};
use tokio_util::sync::CancellationToken;

use crate::{
    clock::Clock,
    entry::{Entry, EntryId, IdHasher},
    event::Event,
    heap::TimerHeap,
    run::Fire,
    wrap::Wrapper,
};
// For the doc links.
#[cfg(doc)]
use crate::Scheduler;

/// What a [`Scheduler`] points to: the shared state, behind a reference count of its own, so
/// that the runs of one slot clone and drop their handle without touching the count that
/// every other worker's runs touch too.
pub(crate) struct Handle(pub(crate) Arc<Shared>);

impl std::ops::Deref for Handle {
    type Target = Arc<Shared>;

    fn deref(&self) -> &Arc<Shared> {
        &self.0
    }
}

pub(crate) struct Shared {
    pub(crate) tz: TimeZone,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) wrappers: Vec<Arc<dyn Wrapper>>,
    pub(crate) events: broadcast::Sender<Event>,
    pub(crate) state: Mutex<State>,
    /// Wakes the timer when entries change.
    pub(crate) wake: Notify,
    /// Stops the timer.
    pub(crate) stop: CancellationToken,
    /// The parent of every run's token: cancelling asks runs to stop.
    pub(crate) cancel_runs: CancellationToken,
    /// Drops the futures of runs that did not stop when asked.
    pub(crate) abort_runs: CancellationToken,
    pub(crate) running: AtomicUsize,
    /// Notified when the last running run ends.
    pub(crate) idle: Notify,
    pub(crate) next_run: AtomicU64,
    /// Counts changes made to entries by hand (see [`Shared::changed`]); changed only under
    /// the state lock.
    pub(crate) changes: AtomicU64,
}

#[derive(Default)]
pub(crate) struct State {
    pub(crate) entries: HashMap<EntryId, Entry, IdHasher>,
    pub(crate) heap: TimerHeap,
    pub(crate) next_id: u64,
    pub(crate) started: bool,
}

impl Shared {
    /// The state of a scheduler with no entries, not started, for
    /// [`Builder::build`](crate::Builder::build).
    pub(crate) fn new(
        tz: TimeZone,
        clock: Arc<dyn Clock>,
        wrappers: Vec<Arc<dyn Wrapper>>,
        capacity: usize,
    ) -> Shared {
        let (events, _) = broadcast::channel(capacity);
        Shared {
            tz,
            clock,
            wrappers,
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
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the state half-changed in a way that
        // matters more than stopping would: keep going.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn now(&self) -> Zoned {
        self.clock.now().to_zoned(self.tz.clone())
    }

    pub(crate) fn emit(&self, event: Event) {
        // No subscriber is fine.
        let _ = self.events.send(event);
    }

    /// Whether anyone listens: events are not even built otherwise.
    pub(crate) fn observed(&self) -> bool {
        self.events.receiver_count() > 0
    }

    /// Marks an entry changed by hand (the caller holds the state lock): its runs decided
    /// before do not start.
    pub(crate) fn changed(&self, entry: &Entry) {
        let count = self.changes.fetch_add(1, Ordering::AcqRel) + 1;
        entry.runs.changed_at.store(count, Ordering::Release);
    }

    /// Whether the fire's entry was changed by hand since the run was decided. Only an entry
    /// changed after the last look at the scheduler's count needs a look at its own (so that
    /// a slot's starts do not read 10,000 entries' lines for nothing).
    pub(crate) fn overtaken(&self, fire: &Fire) -> bool {
        fire.decided.is_some_and(|decided| {
            self.changes.load(Ordering::Acquire) != decided
                && fire.runs.changed_at.load(Ordering::Acquire) > decided
        })
    }

    /// Sets (or clears) an entry's next deadline, tells observers and wakes the timer.
    pub(crate) fn set_next(&self, st: &mut State, id: EntryId, next: Option<Zoned>) {
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
}
