//! Wrappers: skip or queue overlapping runs, limit concurrency, time out, retry.

use std::{
    sync::{
        atomic::{AtomicU32, Ordering},
        Arc,
    },
    time::Duration,
};

use cronfleet_scheduler::{wrap, EntryOptions, Event, JobError, RunContext, Scheduler, Timing};

use crate::helpers::{advance, scheduler, short, Log};

/// A job that logs "start SLOT" and "end SLOT" around `secs` of work.
fn slow_job(
    log: &Log,
    secs: u64,
) -> impl Fn(RunContext) -> cronfleet_scheduler::BoxFuture<()> + Send + Sync {
    let log = log.clone();
    move |ctx: RunContext| {
        let log = log.clone();
        Box::pin(async move {
            log.push(format!("start {}", &short(&ctx.slot)[17..]));
            tokio::time::sleep(Duration::from_secs(secs)).await;
            log.push(format!("end {}", &short(&ctx.slot)[17..]));
        })
    }
}

fn skipped(events: &mut tokio::sync::broadcast::Receiver<Event>) -> Vec<String> {
    std::iter::from_fn(|| events.try_recv().ok())
        .filter_map(|e| match e {
            Event::Skipped { slot, reason, .. } => {
                Some(format!("{} {reason}", &short(&slot)[17..]))
            }
            _ => None,
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn skip_if_running() {
    let (s, _) = scheduler();
    let mut events = s.subscribe();
    let log = Log::default();
    let opts = EntryOptions::new().wrap(wrap::skip_if_running());
    s.add_with(Timing::parse("*/10 * * * * *").unwrap(), slow_job(&log, 15), opts);
    s.start();
    advance(48).await;
    assert_eq!(log.lines(), ["start 10", "end 10", "start 30", "end 30"]);
    assert_eq!(
        skipped(&mut events),
        ["20 the previous run is still running", "40 the previous run is still running"]
    );
}

#[tokio::test(start_paused = true)]
async fn queue_if_running() {
    let (s, _) = scheduler();
    let log = Log::default();
    let opts = EntryOptions::new().wrap(wrap::queue_if_running());
    s.add_with(Timing::parse("*/10 * * * * *").unwrap(), slow_job(&log, 15), opts);
    s.start();
    advance(42).await;
    // Runs never overlap and none is lost: the 20 run waits for the 10 run.
    assert_eq!(log.lines(), ["start 10", "end 10", "start 20", "end 20", "start 30"]);
}

#[tokio::test(start_paused = true)]
async fn queue_up_to_two() {
    let (s, _) = scheduler();
    let log = Log::default();
    let opts = EntryOptions::new().wrap(wrap::queue_up_to(2));
    s.add_with(Timing::parse("*/10 * * * * *").unwrap(), slow_job(&log, 25), opts);
    s.start();
    advance(62).await;
    // Two at once: the 30 run waits for the 10 run's end (35), the 40 run for the 20 run's
    // (45); none is lost, and they start in order.
    assert_eq!(
        log.lines(),
        ["start 10", "start 20", "end 10", "start 30", "end 20", "start 40", "end 30", "start 50",]
    );
}

#[tokio::test(start_paused = true)]
async fn max_concurrent() {
    let (s, _) = scheduler();
    let mut events = s.subscribe();
    let log = Log::default();
    let opts = EntryOptions::new().wrap(wrap::max_concurrent(2));
    s.add_with(Timing::parse("*/10 * * * * *").unwrap(), slow_job(&log, 25), opts);
    s.start();
    advance(32).await;
    assert_eq!(log.lines(), ["start 10", "start 20"]);
    assert_eq!(skipped(&mut events), ["30 2 runs are already running"]);
}

#[tokio::test(start_paused = true)]
async fn timeout_cancels_the_attempt() {
    let (s, _) = scheduler();
    let mut events = s.subscribe();
    let saw_cancel = Arc::new(AtomicU32::new(0));
    let seen = saw_cancel.clone();
    let opts = EntryOptions::new().wrap(wrap::timeout(Duration::from_secs(2)));
    s.add_with(
        Timing::parse("10 0 0 * * *").unwrap(),
        move |ctx: RunContext| {
            let seen = seen.clone();
            async move {
                // A well-behaved job stops when told; this one notices its token.
                let token = ctx.cancel.clone();
                tokio::spawn(async move {
                    token.cancelled().await;
                    seen.fetch_add(1, Ordering::SeqCst);
                });
                tokio::time::sleep(Duration::from_secs(60)).await;
            }
        },
        opts,
    );
    s.start();
    advance(15).await;
    let outcome = std::iter::from_fn(|| events.try_recv().ok()).find_map(|e| match e {
        Event::Finished { outcome, duration, .. } => Some((outcome, duration)),
        _ => None,
    });
    assert_eq!(outcome, Some((Err(JobError::TimedOut), Duration::from_secs(2))));
    assert_eq!(saw_cancel.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn retry_with_doubling_backoff() {
    let (s, _) = scheduler();
    let log = Log::default();
    let attempts = log.clone();
    let opts = EntryOptions::new().wrap(wrap::retry(3, Duration::from_secs(1)));
    s.add_with(
        Timing::parse("10 0 0 * * *").unwrap(),
        move |ctx: RunContext| {
            let log = attempts.clone();
            async move {
                let now = ctx.scheduler.now();
                log.push(format!(
                    "attempt {} at {} for {}",
                    ctx.attempt,
                    &short(&now)[17..],
                    &short(&ctx.slot)[17..]
                ));
                if ctx.attempt < 3 {
                    Err("not yet")
                } else {
                    Ok(())
                }
            }
        },
        opts,
    );
    s.start();
    advance(30).await;
    // Waits of 1 s then 2 s; every attempt is for the same slot.
    assert_eq!(
        log.lines(),
        ["attempt 1 at 10 for 10", "attempt 2 at 11 for 10", "attempt 3 at 13 for 10"]
    );
}

#[tokio::test(start_paused = true)]
async fn default_wrappers_go_around_the_entries_own() {
    let clock =
        cronfleet_scheduler::TokioClock::starting_at(crate::helpers::ORIGIN.parse().unwrap());
    let s = Scheduler::builder()
        .clock(clock)
        .time_zone(jiff::tz::TimeZone::UTC)
        .wrap(wrap::skip_if_running())
        .build();
    let mut events = s.subscribe();
    let log = Log::default();
    // Each attempt times out after 12 s, retried once after 1 s: 25 s in all, so the runs at
    // 20 and 30 are skipped by the default wrapper outside.
    let opts = EntryOptions::new()
        .wrap(wrap::retry(1, Duration::from_secs(1)))
        .wrap(wrap::timeout(Duration::from_secs(12)));
    s.add_with(Timing::parse("*/10 * * * * *").unwrap(), slow_job(&log, 100), opts);
    s.start();
    advance(41).await;
    assert_eq!(log.lines(), ["start 10", "start 10", "start 40"]);
    assert_eq!(skipped(&mut events).len(), 2);
}

#[tokio::test(start_paused = true)]
async fn queued_runs_give_up_when_the_scheduler_stops() {
    let (s, _) = scheduler();
    let mut events = s.subscribe();
    let log = Log::default();
    let opts = EntryOptions::new().wrap(wrap::queue_if_running());
    s.add_with(Timing::parse("*/10 * * * * *").unwrap(), slow_job(&log, 25), opts);
    s.start();
    advance(32).await; // the 10 run goes on; 20 and 30 wait in the queue
    let began = tokio::time::Instant::now();
    s.shutdown(Duration::from_secs(60)).await;
    // Only the run that had started is waited for (it ends at 35).
    assert_eq!(began.elapsed(), Duration::from_secs(3));
    assert_eq!(log.lines(), ["start 10", "end 10"]);
    let mut gave_up = skipped(&mut events);
    gave_up.sort();
    assert_eq!(gave_up, ["20 the scheduler is stopping", "30 the scheduler is stopping"]);
}
