//! Property tests over random expressions, zones and instants (many near DST transitions).

use cronfleet_cron::Schedule;
use jiff::{
    tz::{AmbiguousOffset, TimeZone},
    SignedDuration, Timestamp, Zoned,
};
use proptest::{prelude::*, test_runner::TestCaseError};

use crate::helpers::tz;

const ZONES: [&str; 8] = [
    "UTC",
    "America/New_York",
    "Europe/London",
    "Australia/Lord_Howe",
    "America/Santiago",
    "Pacific/Chatham",
    "Asia/Kolkata",
    "Pacific/Apia",
];

fn field(min: u32, max: u32, names: &'static [&'static str]) -> impl Strategy<Value = String> {
    let value = move || {
        prop_oneof![
            4 => (min..=max).prop_map(|v| v.to_string()),
            1 => (0..names.len().max(1)).prop_map(move |i| names.get(i).map_or(min.to_string(), |n| n.to_string())),
        ]
    };
    let item = prop_oneof![
        3 => Just("*".to_string()),
        2 => (1..=max.min(20)).prop_map(|n| format!("*/{n}")),
        // Steps beyond the field leave the start alone (`*/100`), as in Vixie cron.
        1 => (min..=max, max..=3 * max).prop_map(|(a, n)| format!("{a}/{n}")),
        3 => value(),
        2 => (min..=max, min..=max).prop_map(|(a, b)| format!("{}-{}", a.min(b), a.max(b))),
        1 => (min..=max, min..=max, 1..=max.clamp(1, 10)).prop_map(|(a, b, n)| format!("{}-{}/{n}", a.min(b), a.max(b))),
    ];
    prop::collection::vec(item, 1..=3).prop_map(|items| items.join(","))
}

fn dom() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => field(1, 31, &[]),
        1 => Just("L".to_string()),
        1 => Just("LW".to_string()),
        1 => (1u32..=31).prop_map(|n| format!("{n}W")),
        1 => Just("?".to_string()),
    ]
}

const DAYS: &[&str] = &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
const MONTHS: &[&str] =
    &["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"];

/// Names mixed with numbers, stepped, or a range ending on SUN (issue #20's forms).
fn written_dow() -> impl Strategy<Value = String> {
    prop_oneof![
        (0..7usize, 0..7usize).prop_map(|(a, b)| format!("{}-{}", DAYS[a.min(b)], a.max(b))),
        (0..7usize, 0..7usize).prop_map(|(a, b)| format!("{}-{}", a.min(b), DAYS[a.max(b)])),
        (0..7usize, 1..=9u32).prop_map(|(a, n)| format!("{}/{n}", DAYS[a])),
        (1..7usize).prop_map(|a| format!("{}-SUN", DAYS[a])),
    ]
}

fn written_month() -> impl Strategy<Value = String> {
    prop_oneof![
        (0..12usize, 0..12usize).prop_map(|(a, b)| format!(
            "{}-{}",
            MONTHS[a.min(b)],
            a.max(b) + 1
        )),
        (0..12usize, 1..=14u32).prop_map(|(a, n)| format!("{}/{n}", MONTHS[a].to_lowercase())),
    ]
}

fn dow() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => field(0, 7, DAYS),
        1 => written_dow(),
        1 => (0u32..=6).prop_map(|n| format!("{n}L")),
        1 => (0u32..=6, 1u32..=5).prop_map(|(n, k)| format!("{n}#{k}")),
    ]
}

/// Six-field expressions, biased towards frequent ones so brute force can check them.
fn expression() -> impl Strategy<Value = String> {
    let month = prop_oneof![6 => field(1, 12, MONTHS), 1 => written_month()];
    (field(0, 59, &[]), field(0, 59, &[]), field(0, 23, &[]), dom(), month, dow())
        .prop_map(|(s, m, h, d, mo, w)| format!("{s} {m} {h} {d} {mo} {w}"))
}

/// An instant in 1990-2040, half of the time within hours of a DST transition of the zone.
fn instant() -> impl Strategy<Value = (usize, Timestamp)> {
    (0..ZONES.len(), 631_152_000i64..2_208_988_800, any::<bool>(), -10_800i64..10_800).prop_map(
        |(z, secs, near, delta)| {
            let t = Timestamp::from_second(secs).unwrap();
            let zone = tz(ZONES[z]);
            let t = match zone.following(t).next() {
                Some(tr) if near => {
                    tr.timestamp().checked_add(SignedDuration::from_secs(delta)).unwrap()
                }
                _ => t,
            };
            (z, t)
        },
    )
}

/// Whether `t` is a first occurrence of a local time whose fields match, i.e. an instant a
/// fixed-time schedule would have to fire at.
fn fixed_time_due(s: &Schedule, z: &Zoned) -> bool {
    if !s.matches(z) {
        return false;
    }
    match z.time_zone().to_ambiguous_timestamp(z.datetime()).offset() {
        AmbiguousOffset::Fold { before, .. } => z.offset() == before,
        _ => true,
    }
}

/// A fixed-time schedule may fire at a transition instant that ends a gap in which a matching
/// local time was skipped.
fn is_gap_end(z: &Zoned) -> bool {
    let tz = z.time_zone();
    let just_before = z.timestamp().checked_sub(SignedDuration::from_nanos(1)).unwrap();
    tz.to_offset(just_before) < z.offset()
}

/// The schedule and the instant to ask about. With `own`, the schedule owns its zone (the
/// cached path) and is asked with an instant in UTC; otherwise the instant carries the zone.
fn setup(expr: &str, zi: usize, t: Timestamp, own: bool) -> Option<(Schedule, Zoned)> {
    let s = expr.parse::<Schedule>().ok()?;
    Some(if own {
        (s.in_time_zone(tz(ZONES[zi])), t.to_zoned(TimeZone::UTC))
    } else {
        (s, t.to_zoned(tz(ZONES[zi])))
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 384, ..ProptestConfig::default() })]

    #[test]
    fn results_increase_match_and_agree(expr in expression(), (zi, t) in instant(), own in any::<bool>()) {
        let Some((s, start)) = setup(&expr, zi, t, own) else { return Ok(()) };
        let mut last = start.clone();
        for z in s.iter_after(&start).take(12) {
            prop_assert!(z > last, "{expr}: {z} not after {last}");
            let ok = s.matches(&z) || (s.is_fixed_time() && is_gap_end(&z));
            prop_assert!(ok, "{expr}: {z} does not match");
            // prev and next agree: nothing fires between two neighbours.
            let back = s.prev_before(&z).unwrap();
            if last.timestamp() == start.timestamp() {
                prop_assert!(back <= start, "{expr}: prev_before({z}) = {back}, after {start}");
            } else {
                prop_assert_eq!(&back, &last, "{}: prev_before({})", expr, z);
            }
            last = z;
        }
        let mut later = start.clone();
        for z in s.iter_before(&start).take(12) {
            prop_assert!(z < later, "{expr}: {z} not before {later}");
            let fwd = s.next_after(&z).unwrap();
            if later.timestamp() == start.timestamp() {
                prop_assert!(fwd >= start, "{expr}: next_after({z}) = {fwd}, before {start}");
            } else {
                prop_assert_eq!(&fwd, &later, "{}: next_after({})", expr, z);
            }
            later = z;
        }
    }

    #[test]
    fn no_matching_instant_is_skipped(expr in expression(), (zi, t) in instant(), own in any::<bool>()) {
        let Some((s, start)) = setup(&expr, zi, t, own) else { return Ok(()) };
        let Some(next) = s.next_after(&start) else { return Ok(()) };
        // Walk every second between `start` and `next` (at most 3 hours of them).
        let mut cur = start.timestamp().checked_add(SignedDuration::from_secs(1)).unwrap();
        let until = next.timestamp().min(start.timestamp().checked_add(SignedDuration::from_hours(3)).unwrap());
        while cur < until {
            let z = cur.to_zoned(tz(ZONES[zi]));
            let due = if s.is_fixed_time() { fixed_time_due(&s, &z) } else { s.matches(&z) };
            prop_assert!(!due, "{}: {} matches but next_after({}) = {}", expr, z, start, next);
            cur = cur.checked_add(SignedDuration::from_secs(1)).unwrap();
        }
    }

    #[test]
    fn written_forms_parse_and_round_trip(w in written_dow(), mo in written_month(), d in 1u32..=31, n in 1u32..=200) {
        let expr = format!("0 0 */{n},{d} {mo} {w}");
        let s = expr.parse::<Schedule>().map_err(|e| TestCaseError::fail(format!("{e}")))?;
        prop_assert_eq!(s.to_string().parse::<Schedule>().unwrap(), s);
    }

    #[test]
    fn parser_never_panics(text in "\\PC{0,40}") {
        let _ = text.parse::<Schedule>();
    }

    #[test]
    fn parser_never_panics_on_near_misses(text in "(CRON_TZ=[A-Za-z/_]{0,12} )?([0-9*/,LW#?A-Za-z@-]{0,6} ){0,7}") {
        if let Ok(s) = text.parse::<Schedule>() {
            // Whatever parses, round-trips through its canonical form.
            prop_assert_eq!(s.to_string().parse::<Schedule>().unwrap(), s);
        }
    }
}
