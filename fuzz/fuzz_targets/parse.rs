//! The parser must not panic on any input; whatever parses must round-trip through its
//! canonical form, describe itself and answer next/prev without panicking.
#![no_main]

use cronfleet_cron::Schedule;
use jiff::{tz::TimeZone, Timestamp};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(schedule) = text.parse::<Schedule>() else { return };
    let again: Schedule = schedule.to_string().parse().expect("canonical form parses");
    assert_eq!(again, schedule, "canonical form of {text:?}");
    let _ = schedule.describe();
    let tz = TimeZone::get("America/New_York").unwrap_or(TimeZone::UTC);
    for secs in [0, 1_772_953_199, 1_793_512_800, -62_135_596_800] {
        let at = Timestamp::from_second(secs).unwrap().to_zoned(tz.clone());
        if let Some(next) = schedule.next_after(&at) {
            assert!(next > at, "{text:?}: next_after went backwards");
        }
        if let Some(prev) = schedule.prev_before(&at) {
            assert!(prev < at, "{text:?}: prev_before went forwards");
        }
    }
});
