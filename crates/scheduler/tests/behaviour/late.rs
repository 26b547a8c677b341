//! Late and missed slots: the process was suspended or the clock jumped.

use std::time::Duration;

use cronfleet_scheduler::{EntryOptions, Event, LatePolicy, Timing};

use crate::helpers::{advance, scheduler, short, Log};

fn missed(events: &mut tokio::sync::broadcast::Receiver<Event>) -> Vec<String> {
    std::iter::from_fn(|| events.try_recv().ok())
        .filter_map(|e| match e {
            Event::Missed { first, last, late_by, .. } => {
                Some(format!("{} .. {} late {}s", short(&first), short(&last), late_by.as_secs()))
            }
            _ => None,
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn run_once_runs_the_latest_missed_slot() {
    let (s, clock) = scheduler();
    let mut events = s.subscribe();
    let log = Log::default();
    s.add(Timing::parse("0 * * * * *").unwrap(), log.job());
    s.start();
    advance(61).await;
    // Suspended for an hour: the wall clock jumps while the timer sleeps.
    clock.jump(Duration::from_secs(3600));
    advance(120).await;
    assert_eq!(log.lines(), ["2026-05-03T00:01:00", "2026-05-03T01:02:00", "2026-05-03T01:03:00"]);
    assert_eq!(missed(&mut events), ["2026-05-03T00:02:00 .. 2026-05-03T01:01:00 late 3600s"]);
}

#[tokio::test(start_paused = true)]
async fn skip_runs_none_of_them() {
    let (s, clock) = scheduler();
    let mut events = s.subscribe();
    let log = Log::default();
    s.add_with(
        Timing::parse("0 * * * * *").unwrap(),
        log.job(),
        EntryOptions::new().on_late(LatePolicy::Skip),
    );
    s.start();
    advance(61).await;
    clock.jump(Duration::from_secs(3600));
    advance(120).await;
    assert_eq!(log.lines(), ["2026-05-03T00:01:00", "2026-05-03T01:03:00"]);
    assert_eq!(missed(&mut events), ["2026-05-03T00:02:00 .. 2026-05-03T01:02:00 late 3600s"]);
}

#[tokio::test(start_paused = true)]
async fn late_within_tolerance_runs_and_says_how_late() {
    let (s, clock) = scheduler();
    let mut events = s.subscribe();
    let log = Log::default();
    let opts = EntryOptions::new().late_tolerance(Duration::from_secs(5));
    s.add_with(Timing::parse("0 * * * * *").unwrap(), log.job(), opts);
    s.start();
    advance(30).await;
    clock.jump(Duration::from_secs(3));
    advance(40).await;
    assert_eq!(log.lines(), ["2026-05-03T00:01:00"]);
    let late = std::iter::from_fn(|| events.try_recv().ok()).find_map(|e| match e {
        Event::Started { late_by, .. } => Some(late_by.as_secs()),
        _ => None,
    });
    assert_eq!(late, Some(3));
    assert!(missed(&mut events).is_empty());
}
