//! Changing entries while the scheduler runs, also from inside a running job.

use std::time::Duration;

use cronfleet_scheduler::{EntryState, Error, Event, RunContext, Timing};

use crate::helpers::{advance, scheduler, short, Log};

#[tokio::test(start_paused = true)]
async fn remove_stops_firing() {
    let (s, _) = scheduler();
    let log = Log::default();
    let id = s.add(Timing::parse("*/10 * * * * *").unwrap(), log.job());
    s.start();
    advance(25).await;
    s.remove(id).unwrap();
    advance(60).await;
    assert_eq!(log.lines().len(), 2);
    assert_eq!(s.remove(id), Err(Error::UnknownEntry(id)));
    s.check_consistency().unwrap();
}

#[tokio::test(start_paused = true)]
async fn removing_an_entry_lets_its_run_in_flight_finish() {
    let (s, _) = scheduler();
    let mut events = s.subscribe();
    let log = Log::default();
    let inner = log.clone();
    let id = s.add(Timing::parse("*/10 * * * * *").unwrap(), move |_: RunContext| {
        let log = inner.clone();
        async move {
            tokio::time::sleep(Duration::from_secs(5)).await;
            log.push("finished".into());
        }
    });
    s.start();
    advance(11).await; // the 00:10 run is 1 s in
    s.remove(id).unwrap();
    advance(60).await;
    assert_eq!(log.lines(), ["finished"]);
    let finished = std::iter::from_fn(|| events.try_recv().ok())
        .filter(|e| matches!(e, Event::Finished { outcome: Ok(()), .. }))
        .count();
    assert_eq!(finished, 1);
}

#[tokio::test(start_paused = true)]
async fn changing_the_schedule_takes_effect_at_once() {
    let (s, _) = scheduler();
    let log = Log::default();
    let id = s.add(Timing::parse("*/10 * * * * *").unwrap(), log.job());
    s.start();
    advance(12).await;
    s.set_timing(id, Timing::parse("*/3 * * * * *").unwrap()).unwrap();
    advance(8).await;
    assert_eq!(log.lines(), ["2026-05-03T00:00:10", "2026-05-03T00:00:15", "2026-05-03T00:00:18"]);
}

#[tokio::test(start_paused = true)]
async fn pause_and_resume_skip_what_passed_meanwhile() {
    let (s, _) = scheduler();
    let log = Log::default();
    let id = s.add(Timing::parse("*/10 * * * * *").unwrap(), log.job());
    s.start();
    advance(15).await;
    s.pause(id).unwrap();
    assert_eq!(s.entry(id).unwrap().state, EntryState::Paused);
    assert_eq!(s.entry(id).unwrap().next, None);
    advance(30).await;
    s.resume(id).unwrap();
    advance(10).await;
    assert_eq!(log.lines(), ["2026-05-03T00:00:10", "2026-05-03T00:00:50"]);
}

#[tokio::test(start_paused = true)]
async fn run_now_runs_at_once_and_keeps_the_schedule() {
    let (s, _) = scheduler();
    let log = Log::default();
    let id = s.add(Timing::parse("@hourly").unwrap(), log.job());
    s.start();
    advance(5).await;
    s.run_now(id).unwrap();
    advance(1).await;
    assert_eq!(log.lines(), ["2026-05-03T00:00:05"]);
    assert_eq!(short(s.entry(id).unwrap().next.as_ref().unwrap()), "2026-05-03T01:00:00");
}

#[tokio::test(start_paused = true)]
async fn set_next_by_hand_then_the_schedule_continues_from_there() {
    let (s, _) = scheduler();
    let log = Log::default();
    let id = s.add(Timing::parse("0 0 * * * *").unwrap(), log.job());
    s.set_next(id, "2026-05-03T00:00:42+00:00[UTC]".parse().unwrap()).unwrap();
    s.start();
    advance(3601).await;
    assert_eq!(log.lines(), ["2026-05-03T00:00:42", "2026-05-03T01:00:00"]);
    s.pause(id).unwrap();
    assert_eq!(s.set_next(id, s.now()), Err(Error::Paused(id)));
}

#[tokio::test(start_paused = true)]
async fn snapshot_shows_schedule_times_state_and_running() {
    let (s, _) = scheduler();
    let id = s.add_with(
        Timing::parse("*/10 * * * * *").unwrap(),
        |_: RunContext| async { tokio::time::sleep(Duration::from_secs(4)).await },
        cronfleet_scheduler::EntryOptions::new().name("poll"),
    );
    s.start();
    advance(12).await;
    let e = s.entry(id).unwrap();
    assert_eq!(e.name.as_deref(), Some("poll"));
    assert_eq!(e.timing.to_string(), "*/10 * * * * *");
    assert_eq!(short(e.prev.as_ref().unwrap()), "2026-05-03T00:00:10");
    assert_eq!(short(e.next.as_ref().unwrap()), "2026-05-03T00:00:20");
    assert_eq!((e.state, e.running), (EntryState::Scheduled, 1));
    assert_eq!(s.entries().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn jobs_change_entries_from_inside_a_run() {
    let (s, _) = scheduler();
    let log = Log::default();
    let child_log = log.clone();
    // Runs three times, then replaces itself with a one-shot a minute later.
    s.add(Timing::parse("*/10 * * * * *").unwrap(), move |ctx: RunContext| {
        let log = child_log.clone();
        async move {
            log.push(format!("parent {}", short(&ctx.slot)));
            if ctx.scheduler.entry(ctx.entry).unwrap().prev.as_ref().map(short).as_deref()
                == Some("2026-05-03T00:00:30")
            {
                ctx.scheduler.remove(ctx.entry).unwrap();
                let when = ctx.slot.checked_add(jiff::SignedDuration::from_secs(60)).unwrap();
                let log = log.clone();
                ctx.scheduler.add(Timing::Once(when), move |ctx: RunContext| {
                    log.push(format!("child {}", short(&ctx.slot)));
                    async {}
                });
            }
        }
    });
    s.start();
    advance(600).await;
    assert_eq!(
        log.lines(),
        [
            "parent 2026-05-03T00:00:10",
            "parent 2026-05-03T00:00:20",
            "parent 2026-05-03T00:00:30",
            "child 2026-05-03T00:01:30",
        ]
    );
    assert!(s.is_empty());
}

#[tokio::test(start_paused = true)]
async fn run_for_a_missed_slot() {
    let (s, _) = scheduler();
    let log = Log::default();
    let id = s.add(Timing::parse("@hourly").unwrap(), log.job());
    s.start();
    s.run_for(id, "2026-05-02T23:00:00+00:00[UTC]".parse().unwrap()).unwrap();
    advance(1).await;
    assert_eq!(log.lines(), ["2026-05-02T23:00:00"]);
    assert_eq!(short(s.entry(id).unwrap().next.as_ref().unwrap()), "2026-05-03T01:00:00");
}
