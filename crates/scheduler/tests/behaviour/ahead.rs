//! Large seconds: with thousands of entries due at once, the timer decides a slot's runs
//! shortly before the slot and only starts them at the slot. What is changed by hand in
//! between wins; nothing runs twice or is lost; several workers start a slot together.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicI64, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use cronfleet_scheduler::{Clock, EntryId, RunContext, Scheduler, Sleep, Timing, TokioClock};
use jiff::{tz::TimeZone, SignedDuration, Timestamp};

use crate::helpers::{scheduler, ORIGIN};

/// (entry, slot's time of day) of every run, and when (by the scheduler's clock) it started.
#[derive(Clone, Default)]
struct Runs(Arc<Mutex<Vec<(EntryId, String, Timestamp)>>>);

impl Runs {
    fn job(&self) -> impl Fn(RunContext) -> std::future::Ready<()> + Send + Sync + 'static {
        let runs = self.clone();
        move |ctx: RunContext| {
            let now = ctx.scheduler.now().timestamp();
            let slot = ctx.slot.time().to_string();
            runs.0.lock().unwrap().push((ctx.entry, slot, now));
            std::future::ready(())
        }
    }

    fn all(&self) -> Vec<(EntryId, String, Timestamp)> {
        self.0.lock().unwrap().clone()
    }

    /// How many runs each slot had, and whether any (entry, slot) ran twice.
    fn per_slot(&self) -> (HashMap<String, usize>, usize) {
        let mut slots = HashMap::new();
        let mut seen = std::collections::HashSet::new();
        let mut twice = 0;
        for (entry, slot, _) in self.all() {
            *slots.entry(slot.clone()).or_insert(0) += 1;
            if !seen.insert((entry, slot)) {
                twice += 1;
            }
        }
        (slots, twice)
    }
}

const MANY: usize = 2_000;

#[tokio::test(start_paused = true)]
async fn changes_made_after_a_slot_was_decided_still_win() {
    let (s, _) = scheduler();
    let runs = Runs::default();
    let every_second = Timing::parse("* * * * * *").unwrap();
    let ids: Vec<EntryId> = (0..MANY).map(|_| s.add(every_second.clone(), runs.job())).collect();
    s.start();
    // Just before 00:00:02: by now the timer has decided that slot's 2,000 runs.
    tokio::time::sleep(Duration::from_micros(1_999_900)).await;
    assert_eq!(runs.per_slot().0.get("00:00:02"), None, "nothing starts before its slot");
    let (paused, removed, moved, retimed) = (ids[0], ids[1], ids[2], ids[3]);
    s.pause(paused).unwrap();
    s.remove(removed).unwrap();
    s.set_next(moved, "2026-05-03T00:00:02.5Z[UTC]".parse().unwrap()).unwrap();
    s.set_timing(retimed, Timing::parse("*/10 * * * * *").unwrap()).unwrap();
    tokio::time::sleep(Duration::from_millis(3_000)).await;
    let (slots, twice) = runs.per_slot();
    assert_eq!(twice, 0);
    assert_eq!(slots["00:00:01"], MANY);
    // The four changed entries did not run at 00:00:02; the moved one ran half a second later.
    assert_eq!(slots["00:00:02"], MANY - 4);
    assert_eq!(slots["00:00:02.5"], 1);
    let of =
        |id| -> Vec<String> { runs.all().into_iter().filter(|r| r.0 == id).map(|r| r.1).collect() };
    assert_eq!(of(paused), ["00:00:01"]);
    assert_eq!(of(removed), ["00:00:01"]);
    assert_eq!(of(moved), ["00:00:01", "00:00:02.5", "00:00:03", "00:00:04"]);
    assert_eq!(of(retimed), ["00:00:01"]);
    assert_eq!(slots["00:00:04"], MANY - 3);
    // Every run started at its slot, not when it was decided.
    for (_, slot, started) in runs.all() {
        let slot: Timestamp = format!("2026-05-03T{slot}Z").parse().unwrap();
        assert_eq!(started, slot);
    }
    s.check_consistency().unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_job_that_panics_before_returning_its_future_does_not_stop_the_timer() {
    let s = Scheduler::builder()
        .clock(TokioClock::starting_at(ORIGIN.parse().unwrap()))
        .time_zone(TimeZone::UTC)
        .event_capacity(100_000)
        .build();
    let runs = Runs::default();
    let every_second = Timing::parse("* * * * * *").unwrap();
    for _ in 0..MANY {
        s.add(every_second.clone(), runs.job());
    }
    let mut events = s.subscribe();
    let bad = s
        .add(every_second.clone(), |_: RunContext| -> std::future::Ready<()> { panic!("bad job") });
    s.start();
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert_eq!(runs.per_slot().0["00:00:02"], MANY);
    let panics = std::iter::from_fn(|| events.try_recv().ok())
        .filter(|e| {
            matches!(e, cronfleet_scheduler::Event::Finished {
                entry,
                outcome: Err(cronfleet_scheduler::JobError::Panicked(m)),
                ..
            } if *entry == bad && m == "bad job")
        })
        .count();
    assert_eq!(panics, 2);
}

/// A clock that leaps to each deadline it is asked to sleep to: virtual time on a runtime with
/// several workers (tokio can only pause time on a single-threaded one).
#[derive(Clone)]
struct LeapClock(Arc<AtomicI64>);

impl Clock for LeapClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_nanosecond(self.0.load(Ordering::SeqCst).into()).unwrap()
    }

    fn sleep_until(&self, deadline: Timestamp) -> Sleep {
        let now = self.0.clone();
        Box::pin(async move {
            tokio::task::yield_now().await;
            now.fetch_max(deadline.as_nanosecond() as i64, Ordering::SeqCst);
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_workers_start_a_large_slot_each_run_once() {
    let origin: Timestamp = ORIGIN.parse().unwrap();
    let clock = LeapClock(Arc::new(AtomicI64::new(origin.as_nanosecond() as i64)));
    let s = Scheduler::builder().clock(clock.clone()).time_zone(TimeZone::UTC).build();
    let runs = Runs::default();
    let every_second = Timing::parse("* * * * * *").unwrap();
    for _ in 0..MANY {
        s.add(every_second.clone(), runs.job());
    }
    s.start();
    let five_seconds = origin.checked_add(SignedDuration::from_secs(5)).unwrap();
    let waited = std::time::Instant::now();
    while clock.now() < five_seconds && waited.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    s.shutdown(Duration::from_secs(5)).await;
    let (slots, twice) = runs.per_slot();
    assert_eq!(twice, 0);
    for second in 1..=4 {
        assert_eq!(slots[&format!("00:00:0{second}")], MANY, "second {second}");
    }
    for (_, slot, started) in runs.all() {
        let slot: Timestamp = format!("2026-05-03T{slot}Z").parse().unwrap();
        assert!(started >= slot, "a run started before its slot");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_with_a_heavy_start_are_started_on_every_worker() {
    // Each job blocks its thread for 2 ms before returning its future (think of a process
    // being spawned): started one after the other in place, 20 of them would take 40 ms on
    // one thread; past the first few, the scheduler hands them to tasks on both workers.
    let origin: Timestamp = ORIGIN.parse().unwrap();
    let clock = LeapClock(Arc::new(AtomicI64::new(origin.as_nanosecond() as i64)));
    let s = Scheduler::builder().clock(clock.clone()).time_zone(TimeZone::UTC).build();
    let threads: Arc<Mutex<Vec<(String, std::thread::ThreadId)>>> = Arc::default();
    for _ in 0..20 {
        let threads = threads.clone();
        s.add(Timing::parse("* * * * * *").unwrap(), move |ctx: RunContext| {
            std::thread::sleep(Duration::from_millis(2));
            let slot = ctx.slot.time().to_string();
            threads.lock().unwrap().push((slot, std::thread::current().id()));
            std::future::ready(())
        });
    }
    s.start();
    let waited = std::time::Instant::now();
    while threads.lock().unwrap().iter().filter(|(slot, _)| slot == "00:00:01").count() < 20
        && waited.elapsed() < Duration::from_secs(30)
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    s.shutdown(Duration::from_secs(5)).await;
    let first: Vec<_> =
        threads.lock().unwrap().iter().filter(|(slot, _)| slot == "00:00:01").cloned().collect();
    assert_eq!(first.len(), 20);
    let distinct: std::collections::HashSet<_> = first.iter().map(|(_, t)| *t).collect();
    assert!(distinct.len() >= 2, "all 20 heavy starts ran on one thread");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_the_system_clock_a_large_slot_runs_each_entry_once_never_early() {
    // The real clock: the threads starting a large slot's shares sleep in real time, pinned
    // one to each CPU, and spin to the slot. (That they start together is measured by the
    // lateness benchmark; a loaded machine may start a slot on one thread.)
    let s = Scheduler::builder().time_zone(TimeZone::UTC).build();
    /// (entry, slot, started) of every run.
    type Seen = Vec<(EntryId, Timestamp, Timestamp)>;
    let seen: Arc<Mutex<Seen>> = Arc::default();
    for _ in 0..MANY {
        let seen = seen.clone();
        s.add(Timing::parse("* * * * * *").unwrap(), move |ctx: RunContext| {
            let started = Timestamp::now();
            seen.lock().unwrap().push((ctx.entry, ctx.slot.timestamp(), started));
            std::future::ready(())
        });
    }
    s.start();
    let began = Timestamp::now();
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let stopping = Timestamp::now();
    s.shutdown(Duration::from_secs(5)).await;
    let seen = seen.lock().unwrap().clone();
    let mut per_slot: HashMap<Timestamp, (std::collections::HashSet<EntryId>, usize)> =
        HashMap::new();
    for (entry, slot, started) in &seen {
        assert!(started >= slot, "a run started before its slot");
        let (entries, runs) = per_slot.entry(*slot).or_default();
        entries.insert(*entry);
        *runs += 1;
    }
    // The slots wholly inside the test, well before the shutdown (which stops a slot that a
    // loaded machine has not started yet): every entry ran once in each.
    let settled = stopping.checked_sub(SignedDuration::from_secs(1)).unwrap();
    let whole: Vec<_> =
        per_slot.keys().filter(|slot| **slot > began && **slot < settled).copied().collect();
    assert!(whole.len() >= 2, "{} slots", whole.len());
    for slot in whole {
        let (entries, runs) = &per_slot[&slot];
        assert_eq!((entries.len(), *runs), (MANY, MANY), "slot {slot}");
    }
}
