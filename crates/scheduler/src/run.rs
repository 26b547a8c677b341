//! Runs: what the timer decides ([`Fire`]), what is built for it before its slot
//! ([`Prepared`]), and how it starts and ends.
//!
//! A run's start is its job's first poll, right where it was prepared; only a job that does
//! not finish there goes on in a tokio task of its own. A large slot's runs are started the
//! same way, a chunk at a time, by the threads of `slot.rs`.

use std::{
    fmt,
    future::Future,
    panic::{catch_unwind, AssertUnwindSafe},
    pin::Pin,
    sync::{atomic::Ordering, Arc},
    task::Poll,
    time::Duration,
};

use jiff::{SignedDuration, Timestamp, Zoned};

use crate::{
    entry::{EntryId, EntryRuns},
    event::Event,
    job::{panic_message, CatchPanic, JobError, JobResult, RunContext, RunToken},
    shared::{Handle, Shared},
    Scheduler,
};
// For the doc links.
#[cfg(doc)]
use crate::wrap;

/// Identifies one run of an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RunId(pub(crate) u64);

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "run-{}", self.0)
    }
}

/// A run to start, decided by the timer.
pub(crate) struct Fire {
    pub(crate) entry: EntryId,
    pub(crate) runs: Arc<EntryRuns>,
    pub(crate) slot: Zoned,
    /// The scheduler's change count when the run was decided (`None` for runs started by
    /// hand).
    pub(crate) decided: Option<u64>,
}

/// A run with its id and its context, waiting for its slot; once started, what it leaves.
///
/// A slot's runs are prepared before it (the timer's lead), started at it in place, and what
/// the ones that ended at once leave (their futures, their fires) is dropped with the whole
/// batch after all of them started: no memory is allocated, moved or freed between two starts.
pub(crate) struct Prepared {
    pub(crate) run: RunId,
    /// Taken by a run that goes on in a task of its own.
    pub(crate) fire: Option<Fire>,
    /// Built before the slot; taken by the start.
    pub(crate) ctx: Option<RunContext>,
    /// The future of a run that ended in its first poll.
    pub(crate) ended: Option<CatchPanic>,
}

/// What starting runs in place may cost on average: past it, the rest of a slot's runs start
/// in tasks of their own.
const IN_PLACE_BUDGET: Duration = Duration::from_micros(20);

impl Shared {
    /// Gives a run its id.
    pub(crate) fn prepare(&self, fire: Fire) -> Prepared {
        let run = RunId(self.next_run.fetch_add(1, Ordering::Relaxed));
        Prepared { run, fire: Some(fire), ctx: None, ended: None }
    }

    /// Starts one run now.
    pub(crate) fn launch(self: &Arc<Self>, fire: Fire) -> RunId {
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
    pub(crate) fn contexts(self: &Arc<Self>, runs: &mut [Prepared]) {
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
    pub(crate) fn start_all(self: &Arc<Self>, mut runs: Vec<Prepared>) {
        self.contexts(&mut runs);
        drop(self.start_prepared(runs));
    }

    /// Starts runs whose contexts are built, except those whose entry was changed by hand
    /// since they were decided. Each job's first poll happens here, at once, one after the
    /// other; a job that does not finish there goes on in a tokio task of its own (which polls
    /// it again, with its own waker). What the finished ones leave behind is given back, to be
    /// dropped after all runs of the slot have started: freeing it costs about as much as
    /// starting them.
    pub(crate) fn start_prepared(self: &Arc<Self>, mut runs: Vec<Prepared>) -> Vec<Prepared> {
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

    pub(crate) async fn until_idle(&self) {
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
