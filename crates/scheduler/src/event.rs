//! What happens in a scheduler, for observers (history, metrics, alerts).

use std::time::Duration;

use jiff::{SignedDuration, Zoned};

use crate::{job::JobError, EntryId, RunId};

/// Something that happened to an entry. Subscribe with
/// [`Scheduler::subscribe`](crate::Scheduler::subscribe).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// The entry's next fire time was set (added, fired, rescheduled, resumed).
    Scheduled {
        /// The entry.
        entry: EntryId,
        /// When it fires next.
        next: Zoned,
    },
    /// A run started.
    Started {
        /// The entry.
        entry: EntryId,
        /// The run.
        run: RunId,
        /// The scheduled instant the run is for.
        slot: Zoned,
        /// How long after its slot it started (zero for runs started by hand).
        late_by: SignedDuration,
    },
    /// A run ended.
    Finished {
        /// The entry.
        entry: EntryId,
        /// The run.
        run: RunId,
        /// The scheduled instant the run was for.
        slot: Zoned,
        /// How it ended.
        outcome: Result<(), JobError>,
        /// How long it ran.
        duration: Duration,
    },
    /// A wrapper skipped the run (the previous one is still running, ...).
    Skipped {
        /// The entry.
        entry: EntryId,
        /// The slot not run.
        slot: Zoned,
        /// Why.
        reason: String,
    },
    /// Slots passed without a run: the scheduler (or the process) was stalled or suspended
    /// past the entry's lateness tolerance. With [`LatePolicy::RunOnce`](crate::LatePolicy)
    /// the latest of them runs late and the earlier ones are reported here.
    Missed {
        /// The entry.
        entry: EntryId,
        /// The first slot missed.
        first: Zoned,
        /// The last slot missed.
        last: Zoned,
        /// How late the scheduler noticed, counted from the first missed slot.
        late_by: SignedDuration,
    },
}
