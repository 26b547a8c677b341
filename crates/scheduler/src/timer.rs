//! The timer: one task that sleeps until the earliest deadline or a change, decides the runs
//! of what is due (next deadlines, late and missed slots) and starts them, or has them
//! started at their slot (`slot.rs`) when a slot is large.

use std::sync::{atomic::Ordering, Arc};

use jiff::{SignedDuration, Timestamp};

use crate::{
    clock::Sleep,
    entry::LatePolicy,
    event::Event,
    run::{Fire, Prepared},
    shared::Shared,
    slot::{start_on_thread, Shares, SPLIT_AT},
};

/// How many due entries the timer handles before launching their runs: the first runs of a
/// large second start while later entries are still being rescheduled.
const BATCH: usize = 256;

/// Below this lead the timer decides a slot's runs at the slot: it would save next to nothing.
const MIN_LEAD: SignedDuration = SignedDuration::from_millis(1);
/// Added to a lead: deciding 10,000 runs takes about 10 ms, and now and then a few more.
const LEAD_MARGIN: SignedDuration = SignedDuration::from_millis(5);
/// The timer decides a slot's runs at most this long before the slot.
const MAX_LEAD: SignedDuration = SignedDuration::from_millis(250);

/// The one timer: sleeps until the earliest deadline or a change, fires what is due.
///
/// With many entries, shortly before a deadline (the *lead*: twice the time to decide every
/// entry in the heap at the last measured cost per entry, at most [`MAX_LEAD`], plus
/// [`LEAD_MARGIN`]; none when under [`MIN_LEAD`]) it decides the slot's runs and builds their
/// contexts, then sleeps until the slot and only starts them: the work of rescheduling 10,000
/// entries is done before their slot, not after. Slots of [`SPLIT_AT`] runs or more are
/// started by one thread per runtime worker ([`start_on_thread`]), the others by the timer.
pub(crate) async fn timer(shared: Arc<Shared>) {
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

impl Shared {
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
}
