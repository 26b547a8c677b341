//! `@every` with and without anchors; calendar units keep the wall clock, clock units are exact.

use crate::helpers::{at, fmt, schedule};
use cronfleet_cron::{ErrorKind, Schedule};

fn anchored(expr: &str, anchor: &str, zone: &str) -> Schedule {
    schedule(expr).with_anchor(at(anchor, zone)).unwrap()
}

fn after(s: &Schedule, when: &str, zone: &str, n: usize) -> Vec<String> {
    s.iter_after(&at(when, zone)).take(n).map(|z| fmt(&z)).collect()
}

#[test]
fn unanchored_counts_from_the_asked_instant() {
    let s = schedule("@every 1h30m");
    assert_eq!(
        after(&s, "2026-01-01T00:00:10", "UTC", 2),
        ["2026-01-01T01:30:10+00:00", "2026-01-01T03:00:10+00:00"]
    );
    let back: Vec<String> =
        s.iter_before(&at("2026-01-01T03:00:00", "UTC")).take(1).map(|z| fmt(&z)).collect();
    assert_eq!(back, ["2026-01-01T01:30:00+00:00"]);
}

#[test]
fn a_rule_checked_every_7_days_from_its_creation() {
    // Created on May 1st at 10:00; the service restarted on May 3rd.
    let s = anchored("@every 7d", "2026-05-01T10:00:00", "Asia/Shanghai");
    assert_eq!(
        after(&s, "2026-05-03T00:00:00", "Asia/Shanghai", 2),
        ["2026-05-08T10:00:00+08:00", "2026-05-15T10:00:00+08:00"]
    );
    // Frequency changed to 3 days on May 5th, anchor kept: slots May 4, 7, 10...
    let s = anchored("@every 3d", "2026-05-01T10:00:00", "Asia/Shanghai");
    assert_eq!(after(&s, "2026-05-05T00:00:00", "Asia/Shanghai", 1), ["2026-05-07T10:00:00+08:00"]);
}

#[test]
fn anchored_fires_on_every_k_including_before_the_anchor() {
    let s = anchored("@every 1d", "2026-05-10T10:00:00", "UTC");
    assert_eq!(after(&s, "2026-05-01T12:00:00", "UTC", 1), ["2026-05-02T10:00:00+00:00"]);
    assert_eq!(after(&s, "2026-05-10T10:00:00", "UTC", 1), ["2026-05-11T10:00:00+00:00"]);
    let back: Vec<String> =
        s.iter_before(&at("2026-05-10T10:00:00", "UTC")).take(1).map(|z| fmt(&z)).collect();
    assert_eq!(back, ["2026-05-09T10:00:00+00:00"]);
}

#[test]
fn calendar_days_keep_the_wall_clock_across_dst() {
    let ny = "America/New_York";
    let s = anchored("@every 7d", "2026-10-30T09:00:00", ny);
    assert_eq!(after(&s, "2026-11-01T00:00:00", ny, 1), ["2026-11-06T09:00:00-05:00"]);
    // A wall time in the gap moves forward by the gap's length (RFC 5545), and the next day
    // is back at 02:30: no drift.
    let s = anchored("@every 1d", "2026-03-07T02:30:00", ny);
    assert_eq!(
        after(&s, "2026-03-07T12:00:00", ny, 2),
        ["2026-03-08T03:30:00-04:00", "2026-03-09T02:30:00-04:00"]
    );
}

#[test]
fn clock_units_are_exact_durations() {
    let ny = "America/New_York";
    let s = anchored("@every 1h", "2026-03-08T00:00:00", ny);
    assert_eq!(
        after(&s, "2026-03-08T01:30:00", ny, 2),
        ["2026-03-08T03:00:00-04:00", "2026-03-08T04:00:00-04:00"]
    );
    let s = anchored("@every 24h", "2026-03-07T09:00:00", ny);
    assert_eq!(after(&s, "2026-03-07T12:00:00", ny, 1), ["2026-03-08T10:00:00-04:00"]);
}

#[test]
fn anchor_zone_and_prefix() {
    // The schedule's prefix zone decides what a calendar day is.
    let s = schedule("CRON_TZ=America/New_York @every 1d")
        .with_anchor(at("2026-03-07T14:30:00Z", "UTC"))
        .unwrap();
    assert_eq!(
        after(&s, "2026-03-07T20:00:00Z", "UTC", 2),
        ["2026-03-08T09:30:00-04:00", "2026-03-09T09:30:00-04:00"]
    );
    assert_eq!(s.describe(), "every 1 day from 2026-03-07 14:30:00 +00:00 (America/New_York)");
}

#[test]
fn anchors_only_for_intervals() {
    let err = schedule("0 9 * * *").with_anchor(at("2026-01-01T00:00:00", "UTC")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Interval);
    assert!(schedule("@every 5m")
        .with_anchor(at("2026-01-01T00:00:00", "UTC"))
        .unwrap()
        .anchor()
        .is_some());
}

#[test]
fn anchored_matches() {
    let s = anchored("@every 15m", "2026-01-01T00:05:00", "UTC");
    assert!(s.matches(&at("2026-06-01T10:50:00", "UTC")));
    assert!(!s.matches(&at("2026-06-01T10:51:00", "UTC")));
}
