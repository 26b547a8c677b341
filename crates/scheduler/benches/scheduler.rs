//! Adding entries: time for 100,000 (criterion), and memory per entry (a counting allocator,
//! printed before the criterion run).

use std::{
    alloc::{GlobalAlloc, Layout, System},
    hint::black_box,
    sync::atomic::{AtomicIsize, Ordering},
};

use criterion::{criterion_group, criterion_main, Criterion};
use cronfleet_scheduler::{RunContext, Scheduler, Timing};

/// Counts live heap bytes.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size as isize - layout.size() as isize, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const N: usize = 100_000;

fn fill(s: &Scheduler, timing: &Timing) {
    for _ in 0..N {
        s.add(timing.clone(), |_: RunContext| async {});
    }
}

fn add(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let _guard = rt.enter();
    let timing = Timing::parse("*/5 * * * * *").unwrap();
    {
        let s = Scheduler::builder().time_zone(jiff::tz::TimeZone::UTC).build();
        let before = LIVE.load(Ordering::Relaxed);
        fill(&s, &timing);
        let bytes = LIVE.load(Ordering::Relaxed) - before;
        println!("memory: {} bytes per entry ({N} cron entries)", bytes / N as isize);
    }
    let mut group = c.benchmark_group("scheduler");
    group.sample_size(10);
    group.bench_function("add_100k_entries", |b| {
        b.iter(|| {
            let s = Scheduler::builder().time_zone(jiff::tz::TimeZone::UTC).build();
            fill(&s, &timing);
            black_box(s)
        })
    });
    group.finish();
}

criterion_group!(benches, add);
criterion_main!(benches);
