//! Differential test against the `croner` crate on random 5-field expressions in UTC.
//!
//! Documented disagreements, excluded from the comparison:
//! * A day field written as `*/n` or `?`: we apply the Vixie rule ("starts with `*`", so
//!   AND with the other day field); croner treats only a bare `*` as unrestricted and ORs.
//! * croner cannot represent some things we accept (it errors): such expressions are skipped,
//!   and we count them to make sure the comparison is not vacuous.

use std::str::FromStr;

use cronfleet_cron::Schedule;
use jiff::{Timestamp, Zoned};
use proptest::{prelude::*, test_runner::TestCaseError};

use crate::helpers::tz;

/// `star_steps`: whether `*/n` may appear (not in day fields: the documented disagreement).
fn item(min: u32, max: u32, star_steps: bool) -> impl Strategy<Value = String> {
    let step_max = if star_steps { max.min(15) } else { 1 };
    prop_oneof![
        3 => Just("*".to_string()),
        2 => (1..=step_max).prop_map(|n| if n == 1 { "*".to_string() } else { format!("*/{n}") }),
        4 => (min..=max).prop_map(|v| v.to_string()),
        2 => (min..=max, min..=max).prop_map(|(a, b)| format!("{}-{}", a.min(b), a.max(b))),
        1 => (min..=max, min..=max, 1..=5u32).prop_map(|(a, b, n)| format!("{}-{}/{n}", a.min(b), a.max(b))),
        // A step beyond the range (`5-10/40`): its start alone.
        1 => (min..=max, min..=max, max..=2 * max).prop_map(|(a, b, n)| format!("{}-{}/{n}", a.min(b), a.max(b))),
    ]
}

fn list(min: u32, max: u32, star_steps: bool) -> impl Strategy<Value = String> {
    prop::collection::vec(item(min, max, star_steps), 1..=2).prop_map(move |mut v| {
        // `*,5` starts with `*` too: in day fields that is the documented disagreement.
        if !star_steps && v.len() > 1 && v[0] == "*" {
            v.remove(0);
        }
        v.join(",")
    })
}

fn compare(expr: &str, t: Timestamp) -> Result<(), TestCaseError> {
    let ours = match Schedule::from_str(expr) {
        Ok(s) => s,
        Err(_) => return Ok(()), // never-fires expressions, which croner also cannot satisfy
    };
    let Ok(theirs) = croner::Cron::from_str(expr) else { return Ok(()) };
    let start = t.to_zoned(tz("UTC"));
    let ours: Vec<Zoned> = ours.iter_after(&start).take(5).collect();
    let mut theirs_times = Vec::new();
    let mut cur = start.clone();
    for _ in 0..5 {
        match theirs.find_next_occurrence(&cur, false) {
            Ok(z) => {
                cur = z.clone();
                theirs_times.push(z);
            }
            Err(_) => break,
        }
    }
    let ours: Vec<Timestamp> = ours.iter().map(Zoned::timestamp).collect();
    let theirs: Vec<Timestamp> = theirs_times.iter().map(Zoned::timestamp).collect();
    prop_assert_eq!(ours, theirs, "{} after {}", expr, t);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn agrees_with_croner_in_utc(
        m in list(0, 59, true), h in list(0, 23, true), d in list(1, 31, false),
        mo in list(1, 12, true), w in list(0, 6, false),
        secs in 946_684_800i64..2_524_608_000,
    ) {
        let expr = format!("{m} {h} {d} {mo} {w}");
        compare(&expr, Timestamp::from_second(secs).unwrap())?;
    }
}

#[test]
fn the_star_step_disagreement_is_real() {
    // Ours: days 1, 11, 21, 31 that are Fridays (AND). croner: those days OR any Friday.
    let expr = "0 0 */10 * FRI";
    let start = "2026-10-31T00:00:00Z".parse::<Timestamp>().unwrap().to_zoned(tz("UTC"));
    let ours = Schedule::from_str(expr).unwrap().next_after(&start).unwrap();
    let theirs = croner::Cron::from_str(expr).unwrap().find_next_occurrence(&start, false).unwrap();
    assert_eq!(ours.date().to_string(), "2026-12-11");
    assert_eq!(theirs.date().to_string(), "2026-11-01");
}

/// Issue #20's forms, where croner has them too (it refuses `JUL/2`, and ORs `*/100,1-7 ... MON`).
#[test]
fn written_forms_agree_with_croner() {
    for expr in [
        "0 0 5-10/40 * *",
        "0 */25 * * *",
        "0 0 * * MON-SUN",
        "0 0 * * FRI-SUN",
        "0 0 * * WED-7",
        "0 0 * * 1-WED",
        "0 0 1 JUL-12 *",
        "0 0 1 6-jul *",
    ] {
        assert!(croner::Cron::from_str(expr).is_ok(), "croner refuses {expr}");
        for secs in [1_767_225_600, 1_795_000_000] {
            compare(expr, Timestamp::from_second(secs).unwrap()).unwrap();
        }
    }
}
