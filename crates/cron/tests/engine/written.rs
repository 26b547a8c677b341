//! Schedules people really write (issue #20): forms taken from real crontabs and from peer
//! libraries' test suites that the engine once refused or described wrongly.

use cronfleet_cron::{ErrorKind, Schedule};

use crate::helpers::{schedule, utc};

fn err(expr: &str) -> cronfleet_cron::Error {
    match expr.parse::<Schedule>() {
        Ok(s) => panic!("{expr:?} parsed as {s}"),
        Err(e) => e,
    }
}

/// `WED` and `JUL` hold a W and an L, which were read as the `W` and `L` modifiers whenever a
/// digit stood in the same item ("not allowed in the day-of-week field").
#[test]
fn regression_names_with_w_or_l_beside_a_digit() {
    for (expr, canonical) in [
        ("0 0 * * WED-7", "0 0 0 * * 3-7"),
        ("0 0 * * 1-WED", "0 0 0 * * 1-3"),
        ("0 0 * * WED/2", "0 0 0 * * 3-7/2"),
        ("0 0 1 JUL/2 *", "0 0 0 1 7-12/2 *"),
        ("0 0 1 JUL-12 *", "0 0 0 1 7-12 *"),
        ("0 0 1 6-jul *", "0 0 0 1 6-7 *"),
        ("0 0 * * MON-5", "0 0 0 * * 1-5"),
        ("0 0 * * 1-FRI", "0 0 0 * * 1-5"),
        ("0 0 * * wed,5", "0 0 0 * * 3,5"),
    ] {
        assert_eq!(schedule(expr).to_string(), canonical, "{expr}");
    }
    // Wednesday, Friday and Sunday: 2026-11-25 is a Wednesday.
    assert_eq!(
        utc("0 0 * * WED/2", "2026-11-24T00:00:00", 4),
        [
            "2026-11-25T00:00:00",
            "2026-11-27T00:00:00",
            "2026-11-29T00:00:00",
            "2026-12-02T00:00:00"
        ]
    );
    // The modifiers themselves are still refused where they do not belong.
    for (expr, kind, offset) in [
        ("0 0 5L 2 *", ErrorKind::DayOfMonth, 4),
        ("0 0 * * 5W", ErrorKind::DayOfWeek, 8),
        ("0 0 L-2 * *", ErrorKind::DayOfMonth, 4),
        ("0 0 1 JUL#2 *", ErrorKind::Month, 6),
        ("0 0 * * WED-5W", ErrorKind::DayOfWeek, 8),
    ] {
        let e = err(expr);
        assert_eq!((e.kind(), e.offset()), (kind, offset), "{expr}: {e}");
    }
}

/// `7-wed` got the W message too; it is a backward range (7 is Sunday only where a range ends).
#[test]
fn regression_seven_to_wednesday_is_a_backward_range() {
    let e = err("0 0 * * 7-wed");
    assert_eq!((e.kind(), e.offset()), (ErrorKind::Range, 8));
    assert_eq!(
        e.reason(),
        "range 7-wed in the day-of-week field starts after it ends; 7 is Sunday only at the end \
         of a range: write SUN-WED"
    );
}

/// `*/100` in the day-of-month field was "step 100 must be 1-31"; Vixie cron, cronie and
/// Debian accept any step, and `*/100,1-7 ... MON` is the well-known "first Monday" idiom:
/// `*/100` is day 1 alone, and the field starts with `*`, so the Vixie rule ANDs the days.
#[test]
fn regression_step_larger_than_the_field() {
    let s = schedule("1 1 */100,1-7 * MON");
    assert_eq!(s.to_string(), "0 1 1 */100,1-7 * 1");
    assert_eq!(
        utc("1 1 */100,1-7 * MON", "2026-11-01T00:00:00", 3),
        ["2026-11-02T01:01:00", "2026-12-07T01:01:00", "2027-01-04T01:01:00"]
    );
    for (expr, first) in [
        ("*/60 * * * *", "2026-01-01T01:00:00"),
        ("0 */25 * * *", "2026-01-02T00:00:00"),
        ("0 0 5/99 * *", "2026-01-05T00:00:00"),
        ("0 0 1 */13 *", "2027-01-01T00:00:00"),
        ("0 0 * * */8", "2026-01-04T00:00:00"),
        ("0 0 1 1 * ", "2027-01-01T00:00:00"),
        ("0 0 1 1/99999999999999999999 *", "2027-01-01T00:00:00"),
    ] {
        assert_eq!(utc(expr, "2026-01-01T00:00:00", 1), [first], "{expr}");
        let s = schedule(expr);
        assert_eq!(schedule(&s.to_string()), s, "{expr} round-trips");
    }
    assert_eq!(schedule("0 0 */100 * *").describe(), "at 00:00, on day 1 of the month");
    for (expr, offset) in [("*/0 * * * *", 2), ("1/ * * * *", 2), ("*/-1 * * * *", 2)] {
        let e = err(expr);
        assert_eq!((e.kind(), e.offset()), (ErrorKind::Step, offset), "{expr}: {e}");
    }
}

/// `MON-SUN` and `FRI-SUN` were backward ranges with the hint `1-7,0-0`.
#[test]
fn regression_sunday_ends_a_range_as_seven() {
    for (expr, canonical) in [
        ("0 0 * * MON-SUN", "0 0 0 * * 1-7"),
        ("0 0 * * FRI-SUN", "0 0 0 * * 5-7"),
        ("0 0 * * sat-sun", "0 0 0 * * 6-7"),
        ("0 0 * * MON-SUN/2", "0 0 0 * * 1-7/2"),
        // A range starting on Sunday keeps it 0: SUN-SUN is Sunday, not the whole week.
        ("0 0 * * SUN-SUN", "0 0 0 * * 0"),
        ("0 0 * * SUN-SAT", "0 0 0 * * 0-6"),
    ] {
        assert_eq!(schedule(expr).to_string(), canonical, "{expr}");
    }
    let every_day = utc("0 0 * * *", "2026-11-23T00:00:00", 7);
    assert_eq!(utc("0 0 * * MON-SUN", "2026-11-23T00:00:00", 7), every_day);
    // 2026-11-27 is a Friday.
    assert_eq!(
        utc("0 0 * * FRI-SUN", "2026-11-26T00:00:00", 4),
        [
            "2026-11-27T00:00:00",
            "2026-11-28T00:00:00",
            "2026-11-29T00:00:00",
            "2026-12-04T00:00:00"
        ]
    );
    assert_eq!(schedule("0 0 * * FRI-SUN").describe(), "at 00:00, Sunday, Friday and Saturday");
}

#[test]
fn backward_ranges_have_a_hint_that_reads_well() {
    for (expr, offset, reason) in [
        (
            "0 0 * * FRI-MON",
            8,
            "range FRI-MON in the day-of-week field starts after it ends; write it as a list, \
             e.g. FRI-SAT,SUN-MON",
        ),
        (
            "0 0 * * SAT-TUE",
            8,
            "range SAT-TUE in the day-of-week field starts after it ends; write it as a list, \
             e.g. SAT,SUN-TUE",
        ),
        (
            "0 0 * * 5-1",
            8,
            "range 5-1 in the day-of-week field starts after it ends; write it as a list, e.g. \
             5-6,0-1",
        ),
        (
            "0 0 * * 5-0",
            8,
            "range 5-0 in the day-of-week field starts after it ends; write it as 5-7",
        ),
        (
            "0 0 1 nov-feb *",
            6,
            "range nov-feb in the month field starts after it ends; write it as a list, e.g. \
             NOV-DEC,JAN-FEB",
        ),
        (
            "0 22-2 * * *",
            2,
            "range 22-2 in the hour field starts after it ends; write it as a list, e.g. \
             22-23,0-2",
        ),
        (
            "59-0 * * * *",
            0,
            "range 59-0 in the minute field starts after it ends; write it as a list, e.g. 59,0",
        ),
    ] {
        let e = err(expr);
        assert_eq!(
            (e.kind(), e.offset(), e.reason()),
            (ErrorKind::Range, offset, reason),
            "{expr}"
        );
    }
}

/// Vixie cron and cronie compare names with the three-letter ones only: full names are refused
/// (a schedule stays portable), with the short name in the message.
#[test]
fn full_names_are_refused_with_the_short_name() {
    for (expr, kind, offset, short) in [
        ("0 0 * * Wednesday", ErrorKind::DayOfWeek, 8, "WED"),
        ("0 0 * * MONDAY-FRIDAY", ErrorKind::DayOfWeek, 8, "MON"),
        ("0 0 * * MON-Friday", ErrorKind::DayOfWeek, 12, "FRI"),
        ("0 0 1 July *", ErrorKind::Month, 6, "JUL"),
        ("0 0 1 january,JUL *", ErrorKind::Month, 6, "JAN"),
        // Not taken for a `W` modifier beside a digit.
        ("0 0 * * Wednesday-5", ErrorKind::DayOfWeek, 8, "WED"),
        ("0 0 1 1-July *", ErrorKind::Month, 8, "JUL"),
    ] {
        let e = err(expr);
        assert_eq!((e.kind(), e.offset()), (kind, offset), "{expr}: {e}");
        assert!(e.reason().ends_with(&format!("names are three letters: write {short}")), "{e}");
    }
    assert_eq!(
        err("0 0 1 July *").to_string(),
        "invalid month: expected a number 1-12 or a name JAN-DEC, not \"July\"; names are three \
         letters: write JUL\n  0 0 1 July *\n        ^^^^"
    );
}

/// Quartz and some libraries put a year seventh; cronfleet has no year field and says so.
#[test]
fn a_year_field_is_refused_by_name() {
    let e = err("0 0 12 * * ? 2027");
    assert_eq!((e.kind(), e.offset()), (ErrorKind::FieldCount, 13));
    assert_eq!(
        e.to_string(),
        "invalid field count: expected 5 fields (minute hour day-of-month month day-of-week) or \
         6 (seconds first), found 7; a 7th field (a year) is not supported\n  \
         0 0 12 * * ? 2027\n               ^^^^"
    );
    let e = err("CRON_TZ=UTC 0 0 12 * * * *");
    assert_eq!((e.kind(), e.offset()), (ErrorKind::FieldCount, 25));
    assert!(e.reason().ends_with("a year) is not supported"), "{e}");
    // Eight fields are just too many.
    assert!(!err("0 0 12 * * * * *").reason().contains("year"));
}

/// `*/7` in the day-of-month field fires on 1, 8, 15, 22 and 29, then on the 1st again: three
/// days later at the end of a 31-day month. It was described as "every 7 days".
#[test]
fn regression_day_of_month_steps_are_not_every_n_days() {
    for (expr, text) in [
        ("0 0 */7 * *", "at 00:00, on day 1, 8, 15, 22 and 29 of the month"),
        ("0 0 1-31/7 * *", "at 00:00, on day 1, 8, 15, 22 and 29 of the month"),
        ("0 0 */10 * *", "at 00:00, on day 1, 11, 21 and 31 of the month"),
        ("0 0 */2 * *", "at 00:00, on every 2nd day of the month from day 1 to 31"),
        ("0 0 */3 * *", "at 00:00, on every 3rd day of the month from day 1 to 31"),
        ("0 0 */4 * *", "at 00:00, on day 1, 5, 9, 13, 17, 21, 25 and 29 of the month"),
    ] {
        assert_eq!(schedule(expr).describe(), text, "{expr}");
    }
}

/// The same for the time of day: a step that does not divide the hour (or the day) leaves a
/// shorter gap across its end, so it is not "every n minutes"; one that does still is.
#[test]
fn regression_minute_and_hour_steps_that_wrap_short_are_listed() {
    for (expr, text) in [
        ("*/7 * * * *", "at minute 0, 7, 14, 21, 28, 35, 42, 49 and 56"),
        ("*/15 * * * *", "every 15 minutes"),
        ("0 */5 * * *", "at minute 0, during hour 00, 05, 10, 15 and 20"),
        ("0 */2 * * *", "at minute 0, of every 2 hours"),
        ("*/7 * * * * *", "at second 0, 7, 14, 21, 28, 35, 42, 49 and 56"),
    ] {
        assert_eq!(schedule(expr).describe(), text, "{expr}");
    }
}
