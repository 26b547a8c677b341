//! Shared helpers: zones from jiff's bundled database (so results do not depend on the
//! machine's tzdata), instants from text, and fire times as RFC 3339 strings.

use std::sync::OnceLock;

use cronfleet_cron::Schedule;
use jiff::{civil, tz::TimeZone, tz::TimeZoneDatabase, Timestamp, Zoned};

pub fn tz(name: &str) -> TimeZone {
    static DB: OnceLock<TimeZoneDatabase> = OnceLock::new();
    DB.get_or_init(TimeZoneDatabase::bundled).get(name).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// An instant: RFC 3339 with an offset is exact; a civil time is read in `zone`.
pub fn at(text: &str, zone: &str) -> Zoned {
    let zone = tz(zone);
    match text.parse::<Timestamp>() {
        Ok(ts) => ts.to_zoned(zone),
        Err(_) => text.parse::<civil::DateTime>().unwrap().to_zoned(zone).unwrap(),
    }
}

pub fn fmt(z: &Zoned) -> String {
    z.timestamp().display_with_offset(z.offset()).to_string()
}

pub fn schedule(expr: &str) -> Schedule {
    expr.parse().unwrap_or_else(|e| panic!("{expr}: {e}"))
}

/// Fire times of `expr` from `from` (read in `zone`), forwards or backwards. Computed twice:
/// with the zone carried by the instant, and with the zone owned by the schedule (its cached
/// path) and the instant in UTC; the two must agree.
fn walk(expr: &str, zone: &str, from: &str, n: usize, forward: bool) -> Vec<String> {
    let start = at(from, zone);
    let run = |s: &Schedule, start: &Zoned| -> Vec<String> {
        let it = if forward { s.iter_after(start) } else { s.iter_before(start) };
        it.take(n).map(|z| fmt(&z)).collect()
    };
    let plain = run(&schedule(expr), &start);
    let owned = run(&schedule(expr).in_time_zone(tz(zone)), &start.with_time_zone(TimeZone::UTC));
    assert_eq!(
        plain, owned,
        "{expr} in {zone} from {from}: zone on the instant vs on the schedule"
    );
    plain
}

/// The next `n` fire times of `expr` after `after` (read in `zone`).
pub fn next(expr: &str, zone: &str, after: &str, n: usize) -> Vec<String> {
    walk(expr, zone, after, n, true)
}

/// The previous `n` fire times of `expr` before `before` (read in `zone`).
pub fn prev(expr: &str, zone: &str, before: &str, n: usize) -> Vec<String> {
    walk(expr, zone, before, n, false)
}

/// Next fire times in UTC, as `YYYY-MM-DDTHH:MM:SS` without the offset, for brevity.
pub fn utc(expr: &str, after: &str, n: usize) -> Vec<String> {
    schedule(expr).iter_after(&at(after, "UTC")).take(n).map(|z| z.datetime().to_string()).collect()
}
