//! Firing: schedules, anchors, one-shots, DST, events, panics, shutdown.

use std::time::Duration;

use cronfleet_scheduler::{Event, JobError, RunContext, Timing};

use crate::helpers::{advance, scheduler, scheduler_at, short, Log};

#[tokio::test(start_paused = true)]
async fn fires_each_slot_once_in_order() {
    let (s, _) = scheduler();
    let log = Log::default();
    s.add(Timing::parse("*/10 * * * * *").unwrap(), log.job());
    s.start();
    advance(35).await;
    assert_eq!(log.lines(), ["2026-05-03T00:00:10", "2026-05-03T00:00:20", "2026-05-03T00:00:30"]);
}

#[tokio::test(start_paused = true)]
async fn anchored_interval_counts_from_its_anchor_not_from_start() {
    // The service starts on May 3rd; the rule was created on May 1st at 10:00, every 7 days.
    let (s, _) = scheduler();
    let log = Log::default();
    let anchor = "2026-05-01T10:00:00+00:00[UTC]".parse().unwrap();
    s.add(Timing::parse("@every 7d").unwrap().anchored(anchor).unwrap(), log.job());
    s.start();
    advance(14 * 86_400).await;
    assert_eq!(log.lines(), ["2026-05-08T10:00:00", "2026-05-15T10:00:00"]);
}

#[tokio::test(start_paused = true)]
async fn one_shot_fires_once_and_leaves() {
    let (s, _) = scheduler();
    let log = Log::default();
    let id = s.add(Timing::Once("2026-05-03T00:01:00+00:00[UTC]".parse().unwrap()), log.job());
    s.start();
    advance(3600).await;
    assert_eq!(log.lines(), ["2026-05-03T00:01:00"]);
    assert!(s.entry(id).is_none());
}

#[tokio::test(start_paused = true)]
async fn dst_comes_from_the_engine() {
    // New York, 2026-03-08: 02:30 does not exist; the nightly job runs at 03:00 EDT once.
    let (s, _) = scheduler_at("2026-03-07T12:00:00Z", "America/New_York");
    let log = Log::default();
    let seen = log.clone();
    s.add(Timing::parse("30 2 * * *").unwrap(), move |ctx: RunContext| {
        seen.push(ctx.slot.to_string());
        async {}
    });
    s.start();
    advance(2 * 86_400).await;
    assert_eq!(
        log.lines(),
        [
            "2026-03-08T03:00:00-04:00[America/New_York]",
            "2026-03-09T02:30:00-04:00[America/New_York]"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn events_tell_the_whole_story() {
    let (s, _) = scheduler();
    let mut events = s.subscribe();
    let id = s.add(Timing::parse("*/10 * * * * *").unwrap(), |_: RunContext| async {
        tokio::time::sleep(Duration::from_secs(3)).await;
        Err::<(), _>("boom")
    });
    s.start();
    advance(15).await;
    let mut seen = Vec::new();
    while let Ok(e) = events.try_recv() {
        seen.push(e);
    }
    let [Event::Scheduled { entry, next }, Event::Scheduled { .. }, Event::Started { run, slot, late_by, .. }, Event::Finished { outcome, duration, .. }] =
        seen.as_slice()
    else {
        panic!("unexpected events: {seen:#?}");
    };
    assert_eq!(*entry, id);
    assert_eq!(short(next), "2026-05-03T00:00:10");
    assert_eq!(short(slot), "2026-05-03T00:00:10");
    assert!(late_by.is_zero(), "{late_by}");
    assert_eq!(outcome, &Err(JobError::failed("boom")));
    assert_eq!(*duration, Duration::from_secs(3));
    assert_eq!(run.to_string(), "run-1");
}

#[tokio::test(start_paused = true)]
async fn a_panicking_job_stays_scheduled() {
    let (s, _) = scheduler();
    let mut events = s.subscribe();
    let id = s.add(Timing::parse("*/10 * * * * *").unwrap(), |_: RunContext| async {
        if true {
            panic!("job exploded");
        }
    });
    s.start();
    advance(25).await;
    let mut panics = 0;
    while let Ok(e) = events.try_recv() {
        if let Event::Finished { outcome: Err(JobError::Panicked(m)), .. } = e {
            assert_eq!(m, "job exploded");
            panics += 1;
        }
    }
    assert_eq!(panics, 2);
    assert!(s.entry(id).unwrap().next.is_some());
}

#[tokio::test(start_paused = true)]
async fn shutdown_waits_for_runs_then_cancels_them() {
    let (s, _) = scheduler();
    let mut events = s.subscribe();
    let log = Log::default();
    let quick = log.clone();
    s.add(Timing::parse("10 0 0 * * *").unwrap(), move |_: RunContext| {
        let quick = quick.clone();
        async move {
            tokio::time::sleep(Duration::from_secs(2)).await;
            quick.push("quick done".into());
        }
    });
    // Ignores its cancellation token: only dropping its future stops it.
    s.add(Timing::parse("10 0 0 * * *").unwrap(), |_: RunContext| async {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    });
    s.start();
    advance(11).await;
    assert_eq!(s.running(), 2);
    let began = tokio::time::Instant::now();
    s.shutdown(Duration::from_secs(5)).await;
    // 5 s for runs to finish; then cancelled, 5 s more to stop; this one ignores it: dropped.
    assert_eq!(began.elapsed(), Duration::from_secs(10));
    assert_eq!(s.running(), 0);
    assert_eq!(log.lines(), ["quick done"]);
    let mut outcomes = Vec::new();
    while let Ok(e) = events.try_recv() {
        if let Event::Finished { outcome, .. } = e {
            outcomes.push(outcome);
        }
    }
    assert_eq!(outcomes, [Ok(()), Err(JobError::Cancelled)]);
    // Nothing fires after shutdown.
    advance(86_400).await;
    assert_eq!(log.lines(), ["quick done"]);
}

#[tokio::test(start_paused = true)]
async fn shutdown_with_nothing_running_is_immediate() {
    let (s, _) = scheduler();
    s.add(Timing::parse("@hourly").unwrap(), |_: RunContext| async {});
    s.start();
    let began = tokio::time::Instant::now();
    s.shutdown(Duration::from_secs(30)).await;
    assert_eq!(began.elapsed(), Duration::ZERO);
}

/// Counts how often the scheduler goes to sleep: once per deadline, never on a poll interval.
#[derive(Clone)]
struct CountingClock {
    inner: cronfleet_scheduler::TokioClock,
    sleeps: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl cronfleet_scheduler::Clock for CountingClock {
    fn now(&self) -> jiff::Timestamp {
        self.inner.now()
    }

    fn sleep_until(&self, deadline: jiff::Timestamp) -> cronfleet_scheduler::Sleep {
        self.sleeps.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.sleep_until(deadline)
    }
}

#[tokio::test(start_paused = true)]
async fn an_idle_scheduler_does_not_wake_up() {
    let clock = CountingClock {
        inner: cronfleet_scheduler::TokioClock::starting_at(
            crate::helpers::ORIGIN.parse().unwrap(),
        ),
        sleeps: Default::default(),
    };
    let sleeps = clock.sleeps.clone();
    let s = cronfleet_scheduler::Scheduler::builder()
        .clock(clock)
        .time_zone(jiff::tz::TimeZone::UTC)
        .build();
    let log = Log::default();
    s.add(Timing::parse("@hourly").unwrap(), log.job());
    s.start();
    advance(10 * 3600 + 1).await;
    assert_eq!(log.lines().len(), 10);
    // One sleep to each of the ten deadlines, plus the one towards the eleventh.
    assert_eq!(sleeps.load(std::sync::atomic::Ordering::SeqCst), 11);
    // With no entries at all, it sleeps with no deadline: no timer, no wakeups.
    let s = cronfleet_scheduler::Scheduler::builder()
        .clock(cronfleet_scheduler::TokioClock::starting_at(
            crate::helpers::ORIGIN.parse().unwrap(),
        ))
        .build();
    s.start();
    advance(86_400).await;
    assert!(s.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_slow_subscriber_lags_by_the_event_capacity() {
    let clock =
        cronfleet_scheduler::TokioClock::starting_at(crate::helpers::ORIGIN.parse().unwrap());
    let s = cronfleet_scheduler::Scheduler::builder()
        .clock(clock)
        .time_zone(jiff::tz::TimeZone::UTC)
        .event_capacity(4)
        .build();
    let mut events = s.subscribe();
    s.add(Timing::parse("* * * * * *").unwrap(), |_: RunContext| async {});
    s.start();
    advance(10).await;
    // Far more than 4 events were sent; the subscriber hears it lost some, then the last 4.
    assert!(matches!(
        events.try_recv(),
        Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_))
    ));
    assert_eq!(std::iter::from_fn(|| events.try_recv().ok()).count(), 4);
}

#[tokio::test(start_paused = true)]
async fn shutdown_lets_a_cancelled_job_clean_up() {
    let (s, _) = scheduler();
    let log = Log::default();
    let cleanup = log.clone();
    s.add(Timing::parse("10 0 0 * * *").unwrap(), move |ctx: RunContext| {
        let log = cleanup.clone();
        async move {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(3600)) => log.push("finished".into()),
                _ = ctx.cancel.cancelled() => {
                    // Like the agent killing its child's process group.
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    log.push("cleaned up".into());
                }
            }
        }
    });
    s.start();
    advance(11).await;
    let began = tokio::time::Instant::now();
    s.shutdown(Duration::from_secs(5)).await;
    assert_eq!(began.elapsed(), Duration::from_secs(6));
    assert_eq!(log.lines(), ["cleaned up"]);
}
