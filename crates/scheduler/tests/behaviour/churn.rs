//! A million entries added and removed: the timer heap stays consistent and fires in order.

use cronfleet_scheduler::{EntryId, RunContext, Timing};
use jiff::{SignedDuration, Zoned};

use crate::helpers::{advance, scheduler, Log};

/// A small deterministic generator (xorshift), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[tokio::test(start_paused = true)]
async fn million_entry_churn() {
    let (s, _) = scheduler();
    let origin: Zoned = crate::helpers::ORIGIN
        .parse::<jiff::Timestamp>()
        .unwrap()
        .to_zoned(jiff::tz::TimeZone::UTC);
    let at = |secs: u64| {
        Timing::Once(origin.checked_add(SignedDuration::from_secs(secs as i64)).unwrap())
    };
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let noop = |_: RunContext| async {};
    let mut ids: Vec<EntryId> = Vec::with_capacity(1_000_000);
    // One million one-shots between 1 day and 1 year ahead.
    for _ in 0..1_000_000 {
        ids.push(s.add(at(86_400 + rng.next() % (365 * 86_400)), noop));
    }
    s.check_consistency().unwrap();
    // Remove half of them at random, re-time a quarter.
    for i in (0..ids.len()).rev() {
        match rng.next() % 4 {
            0 | 1 => s.remove(ids.swap_remove(i)).unwrap(),
            2 => s.set_timing(ids[i], at(86_400 + rng.next() % (365 * 86_400))).unwrap(),
            _ => {}
        }
    }
    s.check_consistency().unwrap();
    assert_eq!(s.len(), ids.len());
    // Ten entries due within a minute fire first, in order, while the rest wait.
    let log = Log::default();
    for secs in (1..=10).rev() {
        s.add(at(secs * 5), log.job());
    }
    s.start();
    advance(60).await;
    let expected: Vec<String> =
        (1..=10).map(|k| format!("2026-05-03T00:00:{:02}", k * 5)).collect();
    assert_eq!(log.lines(), expected);
    s.check_consistency().unwrap();
    assert_eq!(s.len(), ids.len());
}
