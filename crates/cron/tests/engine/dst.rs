//! DST tables: fixed-time schedules fire once per local time (a skipped time at the end of
//! the gap, a repeated time at its first occurrence); other schedules follow real time.
//!
//! Transitions used (jiff's bundled tzdb, 2026):
//! * America/New_York: gap 03-08 [02:00, 03:00), fold 11-01 [01:00, 02:00).
//! * Europe/London: gap 03-29 [01:00, 02:00), fold 10-25 [01:00, 02:00).
//! * Australia/Lord_Howe (30-minute shift): gap 10-04 [02:00, 02:30), fold 04-05 [01:30, 02:00).
//! * America/Santiago (shifts at midnight): fold 04-04 [23:00, 24:00), gap 09-06 [00:00, 01:00).
//! * Pacific/Chatham (+12:45/+13:45): fold 04-05 [02:45, 03:45), gap 09-27 [02:45, 03:45).

use crate::helpers::{next, prev};

const NY: &str = "America/New_York";
const LON: &str = "Europe/London";
const LHI: &str = "Australia/Lord_Howe";
const SCL: &str = "America/Santiago";
const CHA: &str = "Pacific/Chatham";

#[test]
fn new_york_spring_gap() {
    // Fixed time in the gap: once, at the first instant after the gap; the next day as usual.
    assert_eq!(
        next("30 2 * * *", NY, "2026-03-07T12:00", 2),
        ["2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00"]
    );
    assert_eq!(next("0 2 * * *", NY, "2026-03-07T12:00", 1), ["2026-03-08T03:00:00-04:00"]);
    // 02:00 (skipped) and 03:00 land on the same instant: it fires once.
    assert_eq!(
        next("0 0 2,3 * * *", NY, "2026-03-08T00:00", 3),
        ["2026-03-08T03:00:00-04:00", "2026-03-09T02:00:00-04:00", "2026-03-09T03:00:00-04:00"]
    );
    // Real time: what the gap skips is skipped.
    assert_eq!(
        next("0 */30 * * * *", NY, "2026-03-08T01:00", 3),
        ["2026-03-08T01:30:00-05:00", "2026-03-08T03:00:00-04:00", "2026-03-08T03:30:00-04:00"]
    );
    assert_eq!(
        next("0 30 * * * *", NY, "2026-03-08T01:00", 2),
        ["2026-03-08T01:30:00-05:00", "2026-03-08T03:30:00-04:00"]
    );
    // Backwards agrees.
    assert_eq!(
        prev("30 2 * * *", NY, "2026-03-08T04:00", 2),
        ["2026-03-08T03:00:00-04:00", "2026-03-07T02:30:00-05:00"]
    );
    assert_eq!(
        prev("0 */30 * * * *", NY, "2026-03-08T03:30", 3),
        ["2026-03-08T03:00:00-04:00", "2026-03-08T01:30:00-05:00", "2026-03-08T01:00:00-05:00"]
    );
}

#[test]
fn new_york_fall_fold() {
    // Fixed time in the repeated hour: once, at its first occurrence.
    assert_eq!(
        next("0 30 1 * * *", NY, "2026-10-31T12:00", 2),
        ["2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"]
    );
    // Real time: both halves of the repeated hour.
    assert_eq!(
        next("0 */30 * * * *", NY, "2026-11-01T00:45:00-04:00", 5),
        [
            "2026-11-01T01:00:00-04:00",
            "2026-11-01T01:30:00-04:00",
            "2026-11-01T01:00:00-05:00",
            "2026-11-01T01:30:00-05:00",
            "2026-11-01T02:00:00-05:00",
        ]
    );
    assert_eq!(
        prev("0 */30 * * * *", NY, "2026-11-01T02:00:00-05:00", 5),
        [
            "2026-11-01T01:30:00-05:00",
            "2026-11-01T01:00:00-05:00",
            "2026-11-01T01:30:00-04:00",
            "2026-11-01T01:00:00-04:00",
            "2026-11-01T00:30:00-04:00",
        ]
    );
}

#[test]
fn asking_from_inside_the_repeated_hour() {
    // From the first pass, a real-time schedule's next match may be a smaller wall time in the
    // second pass: 01:15 EST comes after 01:30 EDT.
    assert_eq!(
        next("0 15 * * * *", NY, "2026-11-01T01:30:00-04:00", 2),
        ["2026-11-01T01:15:00-05:00", "2026-11-01T02:15:00-05:00"]
    );
    // From the second pass, a fixed time of the repeated hour already fired on the first pass.
    assert_eq!(
        next("0 30 1 * * *", NY, "2026-11-01T01:15:00-05:00", 1),
        ["2026-11-02T01:30:00-05:00"]
    );
    assert_eq!(
        next("0 45 1 * * *", NY, "2026-11-01T01:15:00-05:00", 1),
        ["2026-11-02T01:45:00-05:00"]
    );
    // ...and going back from the second pass finds that first-pass run, though its wall time
    // (01:45) is later than the asked one (01:30).
    assert_eq!(
        prev("0 45 1 * * *", NY, "2026-11-01T01:30:00-05:00", 2),
        ["2026-11-01T01:45:00-04:00", "2026-10-31T01:45:00-04:00"]
    );
    // next_after is strictly after the asked instant, also inside the fold.
    assert_eq!(
        next("0 * * * * *", NY, "2026-11-01T01:59:30-04:00", 2),
        ["2026-11-01T01:00:00-05:00", "2026-11-01T01:01:00-05:00"]
    );
}

#[test]
fn london() {
    assert_eq!(
        next("30 1 * * *", LON, "2026-03-28T12:00", 2),
        ["2026-03-29T02:00:00+01:00", "2026-03-30T01:30:00+01:00"]
    );
    assert_eq!(
        next("0 30 1 * * *", LON, "2026-10-24T12:00", 2),
        ["2026-10-25T01:30:00+01:00", "2026-10-26T01:30:00+00:00"]
    );
    assert_eq!(
        next("0 0 * * * *", LON, "2026-10-25T00:30:00+01:00", 3),
        ["2026-10-25T01:00:00+01:00", "2026-10-25T01:00:00+00:00", "2026-10-25T02:00:00+00:00"]
    );
    assert_eq!(
        next("0 0 * * * *", LON, "2026-03-29T00:30:00+00:00", 2),
        ["2026-03-29T02:00:00+01:00", "2026-03-29T03:00:00+01:00"]
    );
}

#[test]
fn lord_howe_half_hour_shift() {
    assert_eq!(
        next("15 2 * * *", LHI, "2026-10-03T12:00", 2),
        ["2026-10-04T02:30:00+11:00", "2026-10-05T02:15:00+11:00"]
    );
    assert_eq!(
        next("*/10 * * * *", LHI, "2026-10-04T01:55", 2),
        ["2026-10-04T02:30:00+11:00", "2026-10-04T02:40:00+11:00"]
    );
    assert_eq!(
        next("*/15 * * * *", LHI, "2026-04-05T01:20:00+11:00", 5),
        [
            "2026-04-05T01:30:00+11:00",
            "2026-04-05T01:45:00+11:00",
            "2026-04-05T01:30:00+10:30",
            "2026-04-05T01:45:00+10:30",
            "2026-04-05T02:00:00+10:30"
        ]
    );
    assert_eq!(
        next("0 45 1 * * *", LHI, "2026-04-04T12:00", 2),
        ["2026-04-05T01:45:00+11:00", "2026-04-06T01:45:00+10:30"]
    );
}

#[test]
fn santiago_shifts_at_midnight() {
    // Midnight of 2026-09-06 does not exist: @daily runs at 01:00.
    assert_eq!(
        next("@daily", SCL, "2026-09-05T12:00", 2),
        ["2026-09-06T01:00:00-03:00", "2026-09-07T00:00:00-03:00"]
    );
    // 23:00-24:00 on 2026-04-04 happens twice.
    assert_eq!(
        next("0 30 23 * * *", SCL, "2026-04-04T12:00", 2),
        ["2026-04-04T23:30:00-03:00", "2026-04-05T23:30:00-04:00"]
    );
    assert_eq!(next("@daily", SCL, "2026-04-04T12:00", 1), ["2026-04-05T00:00:00-04:00"]);
    assert_eq!(
        next("0 * * * *", SCL, "2026-04-04T22:30", 3),
        ["2026-04-04T23:00:00-03:00", "2026-04-04T23:00:00-04:00", "2026-04-05T00:00:00-04:00"]
    );
    assert_eq!(
        prev("@daily", SCL, "2026-09-06T12:00", 2),
        ["2026-09-06T01:00:00-03:00", "2026-09-05T00:00:00-04:00"]
    );
}

#[test]
fn chatham_quarter_hour_offsets() {
    assert_eq!(
        next("0 3 * * *", CHA, "2026-09-26T12:00", 2),
        ["2026-09-27T03:45:00+13:45", "2026-09-28T03:00:00+13:45"]
    );
    assert_eq!(
        next("0 * * * *", CHA, "2026-09-27T01:30", 2),
        ["2026-09-27T02:00:00+12:45", "2026-09-27T04:00:00+13:45"]
    );
    assert_eq!(
        next("0 3 * * *", CHA, "2026-04-04T12:00", 2),
        ["2026-04-05T03:00:00+13:45", "2026-04-06T03:00:00+12:45"]
    );
    assert_eq!(
        next("0 * * * *", CHA, "2026-04-05T02:30:00+13:45", 3),
        ["2026-04-05T03:00:00+13:45", "2026-04-05T03:00:00+12:45", "2026-04-05T04:00:00+12:45"]
    );
}
