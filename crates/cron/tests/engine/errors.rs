//! Every error kind, where it points, and how it reads.

use cronfleet_cron::{ErrorKind, Schedule};

fn err(expr: &str) -> cronfleet_cron::Error {
    match expr.parse::<Schedule>() {
        Ok(s) => panic!("{expr:?} parsed as {s}"),
        Err(e) => e,
    }
}

#[test]
fn kinds_and_offsets() {
    for (expr, kind, offset) in [
        ("61 * * * * *", ErrorKind::Second, 0),
        ("* 60 * * * *", ErrorKind::Minute, 2),
        ("0 24 * * *", ErrorKind::Hour, 2),
        ("0 0 32 * *", ErrorKind::DayOfMonth, 4),
        ("0 0 0 * *", ErrorKind::DayOfMonth, 4),
        ("0 0 * 13 *", ErrorKind::Month, 6),
        ("0 0 * FOO *", ErrorKind::Month, 6),
        ("0 0 * * 8", ErrorKind::DayOfWeek, 8),
        ("0 0 * * FRI#6", ErrorKind::DayOfWeek, 12),
        ("0 0 * * MON,", ErrorKind::DayOfWeek, 12),
        ("*/0 * * * *", ErrorKind::Step, 2),
        ("*/x * * * *", ErrorKind::Step, 2),
        ("0 */ * * *", ErrorKind::Step, 4),
        ("30-10 * * * *", ErrorKind::Range, 0),
        ("0 0 * * 5-1", ErrorKind::Range, 8),
        ("@fortnightly", ErrorKind::Descriptor, 0),
        ("@daily 0", ErrorKind::Descriptor, 7),
        ("@every", ErrorKind::Interval, 6),
        ("@every 0s", ErrorKind::Interval, 7),
        ("@every 5x", ErrorKind::Interval, 8),
        ("@every h", ErrorKind::Interval, 7),
        ("@every 1h1h", ErrorKind::Interval, 10),
        ("@every 1h 30m", ErrorKind::Interval, 10),
        ("@every 99999999999d", ErrorKind::Interval, 7),
        ("CRON_TZ=Mars/Olympus 0 9 * * *", ErrorKind::TimeZone, 8),
        ("TZ= 0 9 * * *", ErrorKind::TimeZone, 3),
        ("TZ=../../etc/passwd 0 9 * * *", ErrorKind::TimeZone, 3),
        ("* * * *", ErrorKind::FieldCount, 6),
        ("* * * * * * *", ErrorKind::FieldCount, 12),
        ("", ErrorKind::FieldCount, 0),
        ("0 0 30 2 *", ErrorKind::NeverFires, 4),
        ("0 0 31 4,6,9,11 *", ErrorKind::NeverFires, 4),
        ("0 0 30W 2 *", ErrorKind::NeverFires, 4),
        ("0 0 5L 2 *", ErrorKind::DayOfMonth, 4),
        ("0 0 * * 5W", ErrorKind::DayOfWeek, 8),
    ] {
        let e = err(expr);
        assert_eq!((e.kind(), e.offset()), (kind, offset), "{expr:?}: {e}");
    }
}

#[test]
fn rare_but_possible_days_are_accepted() {
    for expr in [
        "0 0 29 2 *",   // leap years
        "0 0 L 2 *",    // the last day of February
        "0 0 31 2 MON", // OR: Mondays in February
        "0 0 * 2 1#5",  // a leap February that starts on a Monday (2016, 2044)
        "0 0 */30 2 *", // day 1 of February (AND with `*` weekdays)
        "0 0 31 * *",
    ] {
        assert!(expr.parse::<Schedule>().is_ok(), "{expr}");
    }
    let s: Schedule = "0 0 * 2 1#5".parse().unwrap();
    let z: jiff::Zoned = "2017-01-01T00:00:00+00:00[UTC]".parse().unwrap();
    assert_eq!(s.next_after(&z).unwrap().date().to_string(), "2044-02-29");
}

#[test]
fn display_shows_the_caret_under_the_fault() {
    assert_eq!(
        err("0 0 * * FRI#6").to_string(),
        "invalid day-of-week: expected 1-5 after '#' (the k-th weekday), not \"6\"\n  0 0 * * FRI#6\n              ^"
    );
    assert_eq!(
        err("0 0 30 2 *").to_string(),
        "expression never fires: no date matches these day-of-month, month and day-of-week \
         fields in any year\n  0 0 30 2 *\n      ^^^^^^"
    );
    assert_eq!(
        err("30-10 * * * *").to_string(),
        "invalid range: range 30-10 in the minute field starts after it ends; write it as a \
         list, e.g. 30-59,0-10\n  30-10 * * * *\n  ^^^^^"
    );
    // Non-ASCII input: the caret counts characters.
    let e = err("é * * * *");
    assert_eq!(e.kind(), ErrorKind::Minute);
    assert!(e.to_string().ends_with("\n  é * * * *\n  ^"), "{e}");
}

/// Found by the fuzzer: a non-ASCII character where an `@every` unit belongs made the error
/// message slice inside that character and panic.
#[test]
fn regression_interval_unit_that_is_not_ascii() {
    let e = err("@every 1h688888888888\u{20a}288w");
    assert_eq!((e.kind(), e.offset()), (ErrorKind::Interval, 9));
    let e = err("@every 5é");
    assert_eq!((e.kind(), e.offset()), (ErrorKind::Interval, 7));
    assert!(e.to_string().ends_with("\n  @every 5é\n         ^"), "{e}");
}
