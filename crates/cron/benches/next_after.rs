//! `next_after` beside the `cron` (0.17, chrono-tz) and `croner` (4, jiff) crates, in
//! America/New_York, from the same instant; and parsing. Figures go into BENCHMARKS.md
//! (`scripts/bench-table` prints the medians as a table).

use std::{hint::black_box, str::FromStr};

use criterion::{criterion_group, criterion_main, Criterion};
use croner::parser::{CronParser, Seconds};
use jiff::Zoned;

/// (name, expression in 6 fields, seconds first).
const CASES: [(&str, &str); 6] = [
    ("every_second", "* * * * * *"),
    ("every_5_minutes", "0 */5 * * * *"),
    ("weekdays_0930", "0 30 9 * * MON-FRI"),
    ("feb29_midnight", "0 0 0 29 FEB *"),
    ("every_15s_9to17_weekdays", "*/15 * 9-17 * * MON-FRI"),
    ("0600_days_28_31", "0 0 6 28-31 * *"),
];

/// A Monday morning, mid-minute, in New York.
const START: &str = "2026-11-23T10:00:07-05:00[America/New_York]";

fn next_after(c: &mut Criterion) {
    let start: Zoned = START.parse().unwrap();
    let chrono_start = chrono::DateTime::parse_from_rfc3339("2026-11-23T10:00:07-05:00")
        .unwrap()
        .with_timezone(&chrono_tz::America::New_York);
    let croner_parser = CronParser::builder().seconds(Seconds::Required).build();
    for (name, expr) in CASES {
        let ours_arg = cronfleet_cron::Schedule::from_str(expr).unwrap();
        // How the scheduler and the agent hold a schedule: with its zone attached.
        let ours = ours_arg.clone().in_time_zone(start.time_zone().clone());
        let theirs_croner = croner_parser.parse(expr).unwrap();
        let theirs_cron = cron::Schedule::from_str(expr).unwrap();
        // Same answer from all three, or the comparison means nothing.
        let a = ours.next_after(&start).unwrap().timestamp();
        let b = theirs_croner.find_next_occurrence(&start, false).unwrap().timestamp();
        let c_ = theirs_cron.after(&chrono_start).next().unwrap().timestamp();
        let d = ours_arg.next_after(&start).unwrap().timestamp();
        assert_eq!((a, a.as_second(), a), (b, c_, d), "{name}");

        let mut group = c.benchmark_group(format!("next_after/{name}"));
        group.bench_function("cronfleet", |b| {
            b.iter(|| black_box(&ours).next_after(black_box(&start)))
        });
        group.bench_function("cronfleet_zone_from_instant", |b| {
            b.iter(|| black_box(&ours_arg).next_after(black_box(&start)))
        });
        group.bench_function("croner", |b| {
            b.iter(|| black_box(&theirs_croner).find_next_occurrence(black_box(&start), false))
        });
        group.bench_function("cron", |b| {
            b.iter(|| black_box(&theirs_cron).after(black_box(&chrono_start)).next())
        });
        group.finish();
    }
}

fn parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse");
    for (name, expr) in CASES {
        group.bench_function(name, |b| {
            b.iter(|| cronfleet_cron::Schedule::from_str(black_box(expr)).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, next_after, parse);
criterion_main!(benches);
