//! Firing lateness against the wall clock: 10,000 entries due every second, for a few seconds,
//! on a 2-worker tokio runtime. Lateness is the job's start time minus its slot. Measured side
//! by side for cronfleet-scheduler, tokio-cron-scheduler, and a bare tokio timer (the
//! machine's own lateness, one task sleeping to each whole second).
//!
//! `cargo bench -p cronfleet-scheduler --bench lateness` (env LATENESS_SECONDS, default 10).

use std::{
    sync::{
        atomic::{AtomicI64, AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use cronfleet_scheduler::{RunContext, Scheduler, Timing};
use jiff::{SignedDuration, Timestamp};

const ENTRIES: usize = 10_000;

fn seconds() -> u64 {
    std::env::var("LATENESS_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(10)
}

/// Lateness samples in nanoseconds, recorded without a lock, in one shard per thread (a
/// shared mutex, or one counter bouncing between the workers' caches, would add its own
/// contention to what is measured).
struct Recorder {
    shards: Vec<Shard>,
}

/// One thread's samples, on cache lines of its own.
#[repr(align(128))]
struct Shard {
    count: AtomicUsize,
    slots: Vec<AtomicI64>,
}

const SHARDS: usize = 8;

thread_local! {
    static SHARD: usize = {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS
    };
}

impl Recorder {
    fn new(capacity: usize) -> Samples {
        let shard = || Shard {
            count: AtomicUsize::new(0),
            slots: (0..capacity).map(|_| AtomicI64::new(0)).collect(),
        };
        Arc::new(Recorder { shards: (0..SHARDS).map(|_| shard()).collect() })
    }

    fn push(&self, nanos: i64) {
        let shard = &self.shards[SHARD.with(|s| *s)];
        let i = shard.count.fetch_add(1, Ordering::Relaxed);
        if let Some(slot) = shard.slots.get(i) {
            slot.store(nanos, Ordering::Relaxed);
        }
    }

    fn values(&self) -> Vec<i64> {
        let mut all = Vec::new();
        for shard in &self.shards {
            let n = shard.count.load(Ordering::Relaxed).min(shard.slots.len());
            all.extend(shard.slots[..n].iter().map(|a| a.load(Ordering::Relaxed)));
        }
        all
    }
}

type Samples = Arc<Recorder>;

fn report(name: &str, samples: &Samples) {
    let mut v: Vec<i64> = samples.values().into_iter().map(untagged).collect();
    v.sort_unstable();
    if v.is_empty() {
        println!("{name}: no samples");
        return;
    }
    let pct = |p: f64| v[((v.len() - 1) as f64 * p) as usize] as f64 / 1e6;
    println!(
        "| {name} | {} | {:.3} ms | {:.3} ms | {:.3} ms |",
        v.len(),
        pct(0.5),
        pct(0.99),
        *v.last().unwrap() as f64 / 1e6
    );
}

/// Lateness samples carry their slot's second in their upper bits (lateness stays under
/// 2^40 ns, 18 minutes), so that `LATENESS_DETAIL=1` can show each second on its own.
const TAG_SHIFT: u32 = 40;

fn tagged(slot: Timestamp, nanos: i64) -> i64 {
    ((slot.as_second() % (1 << 20)) << TAG_SHIFT) | nanos.clamp(0, (1 << TAG_SHIFT) - 1)
}

fn untagged(v: i64) -> i64 {
    v & ((1 << TAG_SHIFT) - 1)
}

/// Per-second p50 / p99 / max of tagged samples.
fn detail(samples: &Samples) {
    let mut by_second = std::collections::BTreeMap::<i64, Vec<i64>>::new();
    for v in samples.values() {
        by_second.entry(v >> TAG_SHIFT).or_default().push(untagged(v));
    }
    for (second, mut v) in by_second {
        v.sort_unstable();
        let pct = |p: f64| v[((v.len() - 1) as f64 * p) as usize] as f64 / 1e6;
        println!(
            "  second {second}: {} runs, first {:.3} ms, p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
            v.len(),
            pct(0.0),
            pct(0.5),
            pct(0.99),
            pct(1.0)
        );
    }
}

/// Lateness of "now" behind the whole second it belongs to.
fn behind_second(now: Timestamp) -> i64 {
    now.as_nanosecond() as i64 % 1_000_000_000
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

fn ours(secs: u64) -> Samples {
    let samples = Recorder::new(ENTRIES * (secs as usize + 2));
    runtime().block_on(async {
        let s = Scheduler::builder().time_zone(jiff::tz::TimeZone::UTC).build();
        let timing = Timing::parse("* * * * * *").unwrap();
        for _ in 0..ENTRIES {
            let samples = samples.clone();
            s.add(timing.clone(), move |ctx: RunContext| {
                let late = Timestamp::now().duration_since(ctx.slot.timestamp());
                samples.push(tagged(ctx.slot.timestamp(), late.as_nanos() as i64));
                std::future::ready(())
            });
        }
        s.start();
        tokio::time::sleep(Duration::from_secs(secs)).await;
        s.shutdown(Duration::from_secs(5)).await;
    });
    samples
}

fn theirs(secs: u64) -> Samples {
    use tokio_cron_scheduler::{Job, JobScheduler};
    let samples = Recorder::new(ENTRIES * (secs as usize + 2));
    runtime().block_on(async {
        let mut sched = JobScheduler::new().await.unwrap();
        for _ in 0..ENTRIES {
            let samples = samples.clone();
            let job = Job::new_async("* * * * * *", move |_id, _lock| {
                let samples = samples.clone();
                Box::pin(async move {
                    samples.push(behind_second(Timestamp::now()));
                })
            })
            .unwrap();
            sched.add(job).await.unwrap();
        }
        sched.start().await.unwrap();
        tokio::time::sleep(Duration::from_secs(secs)).await;
        sched.shutdown().await.unwrap();
    });
    samples
}

fn baseline(secs: u64) -> Samples {
    let samples = Recorder::new(secs as usize + 1);
    runtime().block_on(async {
        for _ in 0..secs {
            let now = Timestamp::now();
            let next_second = Timestamp::from_second(now.as_second() + 1).unwrap();
            let wait = Duration::try_from(next_second.duration_since(now)).unwrap();
            tokio::time::sleep(wait).await;
            let late: SignedDuration = Timestamp::now().duration_since(next_second);
            samples.push(late.as_nanos() as i64);
        }
    });
    samples
}

fn main() {
    // `cargo test --benches` runs bench targets with `--bench`-less args: do nothing then.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let secs = seconds();
    println!("{ENTRIES} entries due every second, {secs} s, 2 tokio workers\n");
    println!("| scheduler | samples | p50 | p99 | max |");
    println!("|---|---|---|---|---|");
    let only = std::env::var("LATENESS_ONLY").unwrap_or_default();
    let run = |name: &str| only.is_empty() || only == name;
    if run("baseline") {
        report("tokio timer alone (1 task)", &baseline(secs));
    }
    if run("ours") {
        let samples = ours(secs);
        report("cronfleet-scheduler", &samples);
        if std::env::var_os("LATENESS_DETAIL").is_some() {
            detail(&samples);
        }
    }
    if run("theirs") {
        report("tokio-cron-scheduler 0.15", &theirs(secs));
    }
}
