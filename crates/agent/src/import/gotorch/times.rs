//! Gotorch's reading of `Times`, ported from its `task/attr.go` (`timeValid`,
//! `parseTimeRange`, `getRange`; the last version, commit 1c77493), and how it differs from
//! cron's reading of the same fields.
//!
//! What that code does, which the import reports:
//! - The fields are split on single spaces; six are required.
//! - `timeValid` checks the *positions* of the digits in a field against the field's range,
//!   not their values: a field starting at 1 (day-of-month, day-of-week, month) fails on its
//!   first digit, so any digit there made Gotorch refuse the entry, and exit on loading the
//!   file.
//! - `parseTimeRange` marks the values `for start < end; start += step`: the end is excluded.
//!   `*` is the field's range, so it never reaches the last value (second and minute 59, hour
//!   23, day 31, December; Sunday is 0 and the range starts at 1). A number `N` (or `N/S`) runs
//!   from N to N and marks nothing; a range takes both of its ends from its start (and splits
//!   the whole field, not the item), so it marks nothing either. A name reads as 0: nothing.
//!   Only `*/S` in the second, minute and hour fields matches what cron reads, but for those
//!   last values.

use std::fmt::Write as _;

use cronfleet_cron::Schedule;
use jiff::{civil, tz::TimeZone};

/// One of Gotorch's fields: its name, `getRange`, the values a time can have in it, and how
/// to name a value in a message.
pub(super) struct Field {
    pub name: &'static str,
    start: i64,
    end: i64,
    /// The values `time.Now()` gives for it (`Weekday()` is 0-6, Sunday 0).
    values: std::ops::RangeInclusive<i64>,
    /// Its position in cron's order (Gotorch swaps day-of-week and month).
    cron: usize,
}

/// Gotorch's order: second, minute, hour, day-of-month, day-of-week, month.
pub(super) const FIELDS: [Field; 6] = [
    Field { name: "second", start: 0, end: 59, values: 0..=59, cron: 0 },
    Field { name: "minute", start: 0, end: 59, values: 0..=59, cron: 1 },
    Field { name: "hour", start: 0, end: 23, values: 0..=23, cron: 2 },
    Field { name: "day-of-month", start: 1, end: 31, values: 1..=31, cron: 3 },
    Field { name: "day-of-week", start: 1, end: 7, values: 0..=6, cron: 5 },
    Field { name: "month", start: 1, end: 12, values: 1..=12, cron: 4 },
];

/// What Gotorch made of a `Times`.
pub(super) enum Reading {
    /// It refused it (its error, and why): Gotorch exited on loading such a file.
    Refused(String),
    /// The values each field matched (Gotorch's order).
    Matched([Vec<i64>; 6]),
}

/// Go's `strconv.Atoi` with the error ignored, as Gotorch calls it: 0 for anything else.
fn atoi(text: &str) -> i64 {
    text.parse().unwrap_or(0)
}

/// Gotorch's `buildTask` on `times`: `timeValid`, then `parseTimeRange` for each field.
pub(super) fn read(times: &str) -> Reading {
    let fields: Vec<&str> = times.split(' ').collect();
    if fields.len() != 6 {
        return Reading::Refused(
            "\"time format error\": Gotorch needs six fields separated by single spaces".into(),
        );
    }
    for (field, text) in FIELDS.iter().zip(&fields) {
        if *text == "*" {
            continue;
        }
        if text.chars().any(|c| !(c.is_ascii_alphanumeric() || "*|-,/".contains(c))) {
            return Reading::Refused(format!(
                "\"undefined character\": the {} field {text:?} has a character other than \
                 letters, digits, *, -, / and ,",
                field.name
            ));
        }
        // timeValid ranges over the digits' indexes, not their values.
        let digits = text.chars().filter(char::is_ascii_digit).count() as i64;
        if (0..digits).any(|index| index < field.start || index > field.end) {
            let why = if field.start > 0 {
                "Gotorch takes no digit in the day-of-month, day-of-week and month fields (its \
                 check compares the positions of the digits, counted from 0, with the field's \
                 range)"
            } else {
                "more digits than Gotorch's check allows"
            };
            return Reading::Refused(format!(
                "\"time num out of range\" for the {} field {text:?}: {why}",
                field.name
            ));
        }
    }
    let mut matched: [Vec<i64>; 6] = Default::default();
    for ((field, text), out) in FIELDS.iter().zip(&fields).zip(&mut matched) {
        let mut points = vec![false; field.end as usize + 1];
        for part in text.split(',') {
            let each: Vec<&str> = part.split('/').collect();
            if each.len() > 2 {
                return Reading::Refused(format!(
                    "\"time range parse error\": the {} field {text:?} has two `/` in an item",
                    field.name
                ));
            }
            let every = if each.len() == 1 { 1 } else { atoi(each[1]) };
            let (mut start, end) = if each[0].contains('-') {
                // The whole field is split, and both ends are read from the start.
                let range: Vec<&str> = text.split('-').collect();
                if range.len() != 2 {
                    return Reading::Refused(format!(
                        "\"time range parse error\": the {} field {text:?} has more than one `-`",
                        field.name
                    ));
                }
                (atoi(range[0]), atoi(range[0]))
            } else if each[0] == "*" {
                (field.start, field.end)
            } else {
                (atoi(each[0]), atoi(each[0]))
            };
            if start < end && every <= 0 {
                return Reading::Refused(format!(
                    "the {} field {text:?}, whose step is not a positive number: Gotorch's loop \
                     over it never ended (or crashed)",
                    field.name
                ));
            }
            while start < end {
                points[start as usize] = true;
                start += every;
            }
        }
        *out = field.values.clone().filter(|&v| points[v as usize]).collect();
    }
    Reading::Matched(matched)
}

/// The values of `field` that cron's reading of `text` matches (with every other field `*`),
/// or `None` when it does not parse.
fn cron_values(field: &Field, text: &str) -> Option<Vec<i64>> {
    let mut expr = ["*"; 6];
    expr[field.cron] = text;
    let schedule: Schedule = expr.join(" ").parse().ok()?;
    let at = |v: i64| -> Option<jiff::Zoned> {
        let v = i8::try_from(v).ok()?;
        let (date, time) = match field.name {
            "second" => (civil::date(2026, 1, 5), civil::time(0, 0, v, 0)),
            "minute" => (civil::date(2026, 1, 5), civil::time(0, v, 0, 0)),
            "hour" => (civil::date(2026, 1, 5), civil::time(v, 0, 0, 0)),
            "day-of-month" => (civil::date(2026, 1, v), civil::time(0, 0, 0, 0)),
            // 2026-01-04 is a Sunday (0).
            "day-of-week" => (civil::date(2026, 1, 4 + v), civil::time(0, 0, 0, 0)),
            _ => (civil::date(2026, v, 1), civil::time(0, 0, 0, 0)),
        };
        date.to_datetime(time).to_zoned(TimeZone::UTC).ok()
    };
    Some(field.values.clone().filter(|&v| at(v).is_some_and(|z| schedule.matches(&z))).collect())
}

/// How a time in a field's value is said: "at second 59", "on Sundays", "in December" (the
/// names from jiff's `%A` and `%B`).
fn value_name(field: &Field, v: i64) -> String {
    // 2023-01-01 was a Sunday: day `v` of that week has weekday `v` (0: Sunday).
    let named = |month: i64, day: i64, format: &str| {
        jiff::civil::Date::new(2023, month as i8, day as i8)
            .map_or_else(|_| v.to_string(), |d| d.strftime(format).to_string())
    };
    match field.name {
        "day-of-week" => format!("on {}s", named(1, 1 + v, "%A")),
        "month" => format!("in {}", named(v, 1, "%B")),
        "day-of-month" => format!("on day {v}"),
        name => format!("at {name} {v}"),
    }
}

/// Why Gotorch matched nothing with `text`.
fn why_nothing(text: &str) -> &'static str {
    if text.contains('-') {
        "Gotorch takes both ends of a range from its start, so a range matches nothing"
    } else if text
        .split(',')
        .all(|part| part.split('/').next().is_some_and(|n| n.parse::<i64>().is_ok()))
    {
        "Gotorch's loop for a number N runs from N up to N, the end excluded, so it matches nothing"
    } else {
        "Gotorch reads a name as 0, so it matches nothing"
    }
}

/// How Gotorch's matches differ from cron's reading of the same fields: `None` when they do
/// not, else a sentence starting "Gotorch never ran it".
pub(super) fn difference(times: &str, matched: &[Vec<i64>; 6]) -> Option<String> {
    let texts: Vec<&str> = times.split(' ').collect();
    let mut empty = Vec::new();
    let mut reasons: Vec<&str> = Vec::new();
    let mut missing = Vec::new();
    let mut extra = Vec::new();
    for ((field, text), got) in FIELDS.iter().zip(&texts).zip(matched) {
        let cron = cron_values(field, text)?;
        if got.is_empty() {
            empty.push(format!("the {} field {text:?}", field.name));
            let why = why_nothing(text);
            if !reasons.contains(&why) {
                reasons.push(why);
            }
            continue;
        }
        let lost: Vec<String> =
            cron.iter().filter(|v| !got.contains(v)).map(|&v| value_name(field, v)).collect();
        missing.extend(lost);
        let added: Vec<String> =
            got.iter().filter(|v| !cron.contains(v)).map(|&v| value_name(field, v)).collect();
        extra.extend(added);
    }
    if !empty.is_empty() {
        return Some(format!(
            "Gotorch never ran it: {} matched nothing there ({})",
            join(&empty, "and"),
            reasons.join("; ")
        ));
    }
    if missing.is_empty() && extra.is_empty() {
        return None;
    }
    let mut out = String::new();
    if !missing.is_empty() {
        out = format!(
            "Gotorch never ran it {} (its loop over a field stops before the field's last \
             value; Sunday is 0, before its start)",
            join(&missing, "or")
        );
    }
    if !extra.is_empty() {
        let sep = if out.is_empty() { "Gotorch" } else { "; and it" };
        let _ = write!(out, "{sep} ran it {}, which cron's reading does not", join(&extra, "and"));
    }
    Some(out)
}

/// "a", "a and b", "a, b and c".
fn join(items: &[String], last: &str) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., tail] => format!("{} {last} {tail}", init.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matched(times: &str) -> [Vec<i64>; 6] {
        match read(times) {
            Reading::Matched(m) => m,
            Reading::Refused(why) => panic!("{times}: refused: {why}"),
        }
    }

    #[test]
    fn star_stops_before_the_last_value() {
        let m = matched("* * * * * *");
        assert_eq!(m[0], (0..59).collect::<Vec<_>>());
        assert_eq!(m[2].last(), Some(&22));
        assert_eq!(m[3].last(), Some(&30));
        assert_eq!(m[4], [1, 2, 3, 4, 5, 6]); // no Sunday
        assert_eq!(m[5].last(), Some(&11)); // no December
        let m = matched("*/3 */20 * * * *");
        assert_eq!(m[0], (0..59).step_by(3).collect::<Vec<_>>());
        assert_eq!(m[1], [0, 20, 40]);
    }

    #[test]
    fn numbers_ranges_and_names_match_nothing() {
        let m = matched("3 2-4 5,7 * MON *");
        assert!(m[0].is_empty() && m[1].is_empty() && m[2].is_empty() && m[4].is_empty());
        let m = matched("*/10 1-30/2 * * * *");
        assert!(m[1].is_empty());
    }

    #[test]
    fn refusals() {
        for times in ["* * * 1 * *", "* * * * 1-5 *", "* * * * * */2", "0  * * * * *", "* * * * ?"]
        {
            assert!(matches!(read(times), Reading::Refused(_)), "{times}");
        }
        assert!(matches!(read("*/0 * * * * *"), Reading::Refused(_)));
        assert!(matches!(read("1-2-3 * * * * *"), Reading::Refused(_)));
    }

    #[test]
    fn differences_are_said() {
        let times = "*/3 * * * * *";
        let diff = difference(times, &matched(times)).unwrap();
        assert_eq!(
            diff,
            "Gotorch never ran it at minute 59, at hour 23, on day 31, on Sundays or in December \
             (its loop over a field stops before the field's last value; Sunday is 0, before \
             its start)"
        );
        let times = "0 30 2-4 * * *";
        let diff = difference(times, &matched(times)).unwrap();
        assert!(diff.starts_with("Gotorch never ran it: the second field \"0\", the minute field \"30\" and the hour field \"2-4\" matched nothing there (Gotorch's loop for a number N"), "{diff}");
        assert!(diff.contains("; Gotorch takes both ends of a range from its start"), "{diff}");
    }
}
