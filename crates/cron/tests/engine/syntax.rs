//! Every construct of the language, in UTC.

use crate::helpers::{at, schedule, utc};

#[test]
fn every_second_and_second_steps() {
    assert_eq!(
        utc("* * * * * *", "2026-01-01T00:00:00", 3),
        ["2026-01-01T00:00:01", "2026-01-01T00:00:02", "2026-01-01T00:00:03"]
    );
    assert_eq!(
        utc("*/15 * * * * *", "2026-01-01T00:00:00", 4),
        [
            "2026-01-01T00:00:15",
            "2026-01-01T00:00:30",
            "2026-01-01T00:00:45",
            "2026-01-01T00:01:00"
        ]
    );
}

#[test]
fn five_fields_have_second_zero() {
    assert_eq!(
        utc("5 4 * * *", "2026-01-01T04:05:00", 2),
        ["2026-01-02T04:05:00", "2026-01-03T04:05:00"]
    );
    assert_eq!(utc("5 4 * * *", "2026-01-01T04:04:59.5", 1), ["2026-01-01T04:05:00"]);
}

#[test]
fn ranges_steps_and_lists() {
    assert_eq!(
        utc("10-30/10 * * * *", "2026-01-01T00:00:00", 4),
        [
            "2026-01-01T00:10:00",
            "2026-01-01T00:20:00",
            "2026-01-01T00:30:00",
            "2026-01-01T01:10:00"
        ]
    );
    // a/n runs from a to the end of the field.
    assert_eq!(
        utc("5/20 * * * *", "2026-01-01T00:00:00", 4),
        [
            "2026-01-01T00:05:00",
            "2026-01-01T00:25:00",
            "2026-01-01T00:45:00",
            "2026-01-01T01:05:00"
        ]
    );
    assert_eq!(
        utc("0 0 1,15,20-21 * *", "2026-01-01T00:00:00", 4),
        [
            "2026-01-15T00:00:00",
            "2026-01-20T00:00:00",
            "2026-01-21T00:00:00",
            "2026-02-01T00:00:00"
        ]
    );
}

#[test]
fn month_and_day_names_in_any_case() {
    assert_eq!(
        utc("0 0 1 JAN,jul *", "2026-01-01T00:00:00", 2),
        ["2026-07-01T00:00:00", "2027-01-01T00:00:00"]
    );
    assert_eq!(schedule("0 0 * * mon-Fri"), schedule("0 0 * * 1-5"));
    assert_eq!(schedule("0 0 1 Feb-Apr *"), schedule("0 0 1 2-4 *"));
}

#[test]
fn sunday_is_zero_and_seven() {
    assert_eq!(schedule("0 0 * * 7"), schedule("0 0 * * 0"));
    assert_eq!(
        utc("0 0 * * 7", "2026-11-23T00:00:00", 1),
        utc("0 0 * * 0", "2026-11-23T00:00:00", 1)
    );
    // Friday through Sunday: 2026-11-27 is a Friday.
    assert_eq!(
        utc("0 0 * * 5-7", "2026-11-26T00:00:00", 4),
        [
            "2026-11-27T00:00:00",
            "2026-11-28T00:00:00",
            "2026-11-29T00:00:00",
            "2026-12-04T00:00:00"
        ]
    );
    assert_eq!(utc("0 0 * * SUN", "2026-11-23T00:00:00", 1), ["2026-11-29T00:00:00"]);
}

#[test]
fn question_mark_is_star_in_day_fields() {
    assert_eq!(utc("0 0 ? * MON", "2026-11-23T00:00:00", 1), ["2026-11-30T00:00:00"]);
    assert_eq!(utc("0 0 1 * ?", "2026-11-23T00:00:00", 1), ["2026-12-01T00:00:00"]);
    assert!("? * * * *".parse::<cronfleet_cron::Schedule>().is_err());
}

#[test]
fn last_day_of_month() {
    assert_eq!(
        utc("0 0 L * *", "2028-02-01T00:00:00", 2),
        ["2028-02-29T00:00:00", "2028-03-31T00:00:00"]
    );
    assert_eq!(
        utc("0 0 L 2 *", "2027-01-01T00:00:00", 2),
        ["2027-02-28T00:00:00", "2028-02-29T00:00:00"]
    );
}

#[test]
fn last_weekday_of_month() {
    // 2026-01-31 is a Saturday, 2026-05-31 a Sunday.
    assert_eq!(utc("0 0 LW 1 *", "2026-01-01T00:00:00", 1), ["2026-01-30T00:00:00"]);
    assert_eq!(utc("0 0 LW 5 *", "2026-01-01T00:00:00", 1), ["2026-05-29T00:00:00"]);
    assert_eq!(utc("0 0 LW 6 *", "2026-01-01T00:00:00", 1), ["2026-06-30T00:00:00"]);
}

#[test]
fn nearest_weekday_never_leaves_the_month() {
    // 2026-08-01 is a Saturday: the nearest weekday in August is Monday the 3rd.
    assert_eq!(utc("0 0 1W 8 *", "2026-01-01T00:00:00", 1), ["2026-08-03T00:00:00"]);
    // 2026-08-15 is a Saturday: Friday the 14th.
    assert_eq!(utc("0 0 15W 8 *", "2026-01-01T00:00:00", 1), ["2026-08-14T00:00:00"]);
    // 2026-03-15 is a Sunday: Monday the 16th.
    assert_eq!(utc("0 0 15W 3 *", "2026-01-01T00:00:00", 1), ["2026-03-16T00:00:00"]);
    // 2026-05-31 is a Sunday: back to Friday the 29th, not forward into June.
    assert_eq!(utc("0 0 31W 5 *", "2026-01-01T00:00:00", 1), ["2026-05-29T00:00:00"]);
    // A month without a 31st has no 31W.
    assert_eq!(utc("0 0 31W * *", "2026-04-01T00:00:00", 1), ["2026-05-29T00:00:00"]);
}

#[test]
fn last_weekday_n_of_month() {
    assert_eq!(
        utc("0 0 * * 5L", "2026-11-01T00:00:00", 2),
        ["2026-11-27T00:00:00", "2026-12-25T00:00:00"]
    );
    assert_eq!(schedule("0 0 * * FRIL").to_string(), schedule("0 0 * * 5L").to_string());
    assert_eq!(utc("0 0 * * 0L", "2026-03-01T00:00:00", 1), ["2026-03-29T00:00:00"]);
}

#[test]
fn kth_weekday_of_month() {
    assert_eq!(
        utc("0 0 * * FRI#3", "2026-01-01T00:00:00", 2),
        ["2026-01-16T00:00:00", "2026-02-20T00:00:00"]
    );
    // The first month of 2026 with five Mondays is March.
    assert_eq!(utc("0 0 * * 1#5", "2026-01-01T00:00:00", 1), ["2026-03-30T00:00:00"]);
    assert_eq!(
        utc("0 0 * * 1#1,1#3", "2026-11-01T00:00:00", 2),
        ["2026-11-02T00:00:00", "2026-11-16T00:00:00"]
    );
}

#[test]
fn vixie_rule_or_when_both_restricted() {
    // The 13th, or any Friday. 2026-11-13 is a Friday; the next are 20 and 27, then Dec 4.
    assert_eq!(
        utc("0 0 13 * FRI", "2026-11-01T00:00:00", 4),
        [
            "2026-11-06T00:00:00",
            "2026-11-13T00:00:00",
            "2026-11-20T00:00:00",
            "2026-11-27T00:00:00"
        ]
    );
    assert_eq!(
        utc("0 0 1 * MON", "2026-11-24T00:00:00", 2),
        ["2026-11-30T00:00:00", "2026-12-01T00:00:00"]
    );
}

#[test]
fn vixie_rule_and_when_either_starts_with_star() {
    // `*/10` starts with `*`: days 1, 11, 21, 31 that are also Fridays. 2027-01-01 is a Friday.
    assert_eq!(
        utc("0 0 */10 * FRI", "2026-11-01T00:00:00", 2),
        ["2026-12-11T00:00:00", "2027-01-01T00:00:00"]
    );
    // Weekday field `*/2` (Sun, Tue, Thu, Sat) with days 1-7: AND. 2026-11-01 is a Sunday.
    assert_eq!(
        utc("0 0 1-7 * */2", "2026-11-01T00:00:00", 4),
        [
            "2026-11-03T00:00:00",
            "2026-11-05T00:00:00",
            "2026-11-07T00:00:00",
            "2026-12-01T00:00:00"
        ]
    );
}

#[test]
fn descriptors() {
    let from = "2026-11-23T10:30:00";
    assert_eq!(utc("@yearly", from, 1), ["2027-01-01T00:00:00"]);
    assert_eq!(utc("@annually", from, 1), ["2027-01-01T00:00:00"]);
    assert_eq!(utc("@monthly", from, 1), ["2026-12-01T00:00:00"]);
    assert_eq!(utc("@weekly", from, 1), ["2026-11-29T00:00:00"]);
    assert_eq!(utc("@daily", from, 1), ["2026-11-24T00:00:00"]);
    assert_eq!(utc("@midnight", from, 1), ["2026-11-24T00:00:00"]);
    assert_eq!(utc("@hourly", from, 1), ["2026-11-23T11:00:00"]);
    assert_eq!(utc("@DAILY", from, 1), ["2026-11-24T00:00:00"]);
}

#[test]
fn time_zone_prefix_wins_over_the_callers_zone() {
    let s = schedule("CRON_TZ=Asia/Tokyo 0 9 * * *");
    let next = s.next_after(&at("2026-11-22T23:00:00Z", "UTC")).unwrap();
    assert_eq!(crate::helpers::fmt(&next), "2026-11-23T09:00:00+09:00");
    assert_eq!(next.time_zone().iana_name(), Some("Asia/Tokyo"));
    let s = schedule("TZ=Europe/London 0 9 * * *");
    let next = s.next_after(&at("2026-07-01T12:00:00", "Asia/Tokyo")).unwrap();
    assert_eq!(crate::helpers::fmt(&next), "2026-07-01T09:00:00+01:00");
    // Without a prefix, the caller's zone is used.
    let next = schedule("0 9 * * *").next_after(&at("2026-07-01T12:00:00", "Asia/Tokyo")).unwrap();
    assert_eq!(crate::helpers::fmt(&next), "2026-07-02T09:00:00+09:00");
}

#[test]
fn canonical_display_round_trips() {
    for (expr, canonical) in [
        ("*/15 9-17 * * mon-fri", "0 */15 9-17 * * 1-5"),
        ("  0   0  ?  jan,JUL  * ", "0 0 0 * 1,7 *"),
        ("5/20 * * * *", "0 5-59/20 * * * *"),
        ("0 0 L,15W * FRIL,MON#2", "0 0 0 L,15W * 5L,1#2"),
        ("0 0 * * 7", "0 0 0 * * 0"),
        ("@midnight", "@daily"),
        ("@every 90m", "@every 1h30m"),
        ("@every 2w", "@every 14d"),
        ("CRON_TZ=Europe/Paris 0 8 * * *", "CRON_TZ=Europe/Paris 0 0 8 * * *"),
    ] {
        let s = schedule(expr);
        assert_eq!(s.to_string(), canonical, "{expr}");
        assert_eq!(schedule(canonical), s, "{canonical} re-parsed");
    }
}

#[test]
fn describe_in_english() {
    for (expr, text) in [
        ("30 9 * * 1-5", "at 09:30, Monday through Friday"),
        ("*/5 * * * *", "every 5 minutes"),
        ("* * * * * *", "every second"),
        (
            "*/15 * 9-17 * * MON-FRI",
            "every 15 seconds, between 09:00 and 17:59, Monday through Friday",
        ),
        ("0 0 29 2 *", "at 00:00, on day 29 of the month, in February"),
        ("0 0 6 28-31 * *", "at 06:00, on day 28 through 31 of the month"),
        ("@hourly", "every hour"),
        ("0 0 9,17 * * *", "at 09:00 and 17:00"),
        ("0 0 * * FRI#3", "at 00:00, on the third Friday of the month"),
        ("0 0 L * *", "at 00:00, on the last day of the month"),
        ("0 0 13 * FRI", "at 00:00, on day 13 of the month, or Friday"),
        ("@every 7d", "every 1 week"),
        ("CRON_TZ=Asia/Tokyo 0 9 * * *", "at 09:00 (Asia/Tokyo)"),
    ] {
        assert_eq!(schedule(expr).describe(), text, "{expr}");
    }
}

#[test]
fn fixed_time_classification() {
    for (expr, fixed) in [
        ("30 2 * * *", true),
        ("0 30 2 * * *", true),
        ("0-59 30 2 * * *", true),
        ("* 30 2 * * *", false),
        ("0 * 2 * * *", false),
        ("0 30 * * * *", false),
        ("*/5 * * * *", false),
        ("@daily", true),
        ("@hourly", false),
        ("@every 1d", false),
    ] {
        assert_eq!(schedule(expr).is_fixed_time(), fixed, "{expr}");
    }
}

#[test]
fn year_9999_ends_the_search() {
    let s = schedule("0 0 1 1 *");
    assert!(s.next_after(&at("9999-06-01T00:00:00", "UTC")).is_none());
    assert!(s.prev_before(&at("-009999-01-03T00:00:00", "UTC")).is_none());
}
