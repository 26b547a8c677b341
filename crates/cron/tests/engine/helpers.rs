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

/// The next `n` fire times of `expr` after `after` (read in `zone`).
pub fn next(expr: &str, zone: &str, after: &str, n: usize) -> Vec<String> {
    schedule(expr).iter_after(&at(after, zone)).take(n).map(|z| fmt(&z)).collect()
}

/// The previous `n` fire times of `expr` before `before` (read in `zone`).
pub fn prev(expr: &str, zone: &str, before: &str, n: usize) -> Vec<String> {
    schedule(expr).iter_before(&at(before, zone)).take(n).map(|z| fmt(&z)).collect()
}

/// Next fire times in UTC, as `YYYY-MM-DDTHH:MM:SS` without the offset, for brevity.
pub fn utc(expr: &str, after: &str, n: usize) -> Vec<String> {
    schedule(expr).iter_after(&at(after, "UTC")).take(n).map(|z| z.datetime().to_string()).collect()
}
