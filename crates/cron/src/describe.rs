//! Short English descriptions of schedules ("at 09:30, Monday through Friday").

use jiff::Zoned;

use crate::{every::Interval, spec::CronSpec};

const DAYS: [&str; 7] =
    ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];
const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const ORDINALS: [&str; 5] = ["first", "second", "third", "fourth", "fifth"];

/// Values set in `mask` within `lo..=hi`.
fn values(mask: u64, lo: u32, hi: u32) -> Vec<u32> {
    (lo..=hi).filter(|v| mask & (1 << v) != 0).collect()
}

/// `n` when every value is `lo + k*n` up to the end of the field with at least 3 of them.
fn step_of(vals: &[u32], lo: u32, hi: u32) -> Option<u32> {
    if vals.len() < 3 || vals[0] != lo {
        return None;
    }
    let n = vals[1] - vals[0];
    let regular = vals.windows(2).all(|w| w[1] - w[0] == n);
    (regular && vals[vals.len() - 1] + n > hi).then_some(n)
}

/// [`step_of`] for a field of the time of day, which wraps: only when `n` divides it, so that
/// the gap across its end is `n` too (`*/7` minutes fire at :56 and then :00, four minutes
/// later: not "every 7 minutes").
fn cyclic_step(vals: &[u32], lo: u32, hi: u32) -> Option<u32> {
    step_of(vals, lo, hi).filter(|n| (hi - lo + 1).is_multiple_of(*n))
}

/// "a, b and c"
fn join(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// Runs of consecutive values as "a through b" (or `range` for a custom wording), singles alone.
fn runs(vals: &[u32], name: impl Fn(u32) -> String, through: &str) -> String {
    let mut parts = Vec::new();
    let mut i = 0;
    while i < vals.len() {
        let mut j = i;
        while j + 1 < vals.len() && vals[j + 1] == vals[j] + 1 {
            j += 1;
        }
        if j >= i + 2 {
            parts.push(format!("{} {through} {}", name(vals[i]), name(vals[j])));
        } else {
            parts.extend(vals[i..=j].iter().map(|&v| name(v)));
        }
        i = j + 1;
    }
    join(&parts)
}

/// "2nd", "3rd", "11th": only small steps reach here.
fn ordinal(n: u32) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

fn plural(n: u32, unit: &str) -> String {
    if n == 1 {
        format!("every {unit}")
    } else {
        format!("every {n} {unit}s")
    }
}

pub(crate) fn cron(spec: &CronSpec) -> String {
    let mut parts = vec![time_of_day(spec)];
    if let Some(days) = days(spec) {
        parts.push(days);
    }
    let months = values(spec.months.into(), 1, 12);
    if months.len() < 12 {
        parts.push(format!("in {}", runs(&months, |m| MONTHS[m as usize - 1].into(), "through")));
    }
    parts.join(", ")
}

fn time_of_day(spec: &CronSpec) -> String {
    let secs = values(spec.seconds, 0, 59);
    let mins = values(spec.minutes, 0, 59);
    let hours = values(spec.hours.into(), 0, 23);
    // A handful of exact times: "at 09:00 and 17:30".
    if secs.len() == 1 && mins.len() * hours.len() <= 4 {
        let s = secs[0];
        let mut times = Vec::new();
        for &h in &hours {
            for &m in &mins {
                times.push(if s == 0 {
                    format!("{h:02}:{m:02}")
                } else {
                    format!("{h:02}:{m:02}:{s:02}")
                });
            }
        }
        return format!("at {}", join(&times));
    }
    let mut out = Vec::new();
    let full_secs = secs.len() == 60;
    let full_mins = mins.len() == 60;
    match (secs.as_slice(), cyclic_step(&secs, 0, 59)) {
        (_, _) if full_secs => out.push("every second".to_owned()),
        ([0], _) => {}
        (_, Some(n)) => out.push(plural(n, "second")),
        (list, _) => out.push(format!("at second {}", runs(list, |v| v.to_string(), "through"))),
    }
    match (mins.as_slice(), cyclic_step(&mins, 0, 59)) {
        (_, _) if full_mins && !out.is_empty() => {}
        (_, _) if full_mins => out.push("every minute".to_owned()),
        (_, Some(n)) if out.is_empty() => out.push(plural(n, "minute")),
        (_, Some(n)) => out.push(format!("every {n} minutes")),
        ([0], _) if out.is_empty() && hours.len() == 24 => out.push("every hour".to_owned()),
        (list, _) => out.push(format!("at minute {}", runs(list, |v| v.to_string(), "through"))),
    }
    if hours.len() < 24 {
        match cyclic_step(&hours, 0, 23) {
            Some(n) => out.push(format!("of every {n} hours")),
            None if is_run(&hours) => {
                out.push(format!("between {:02}:00 and {:02}:59", hours[0], hours[hours.len() - 1]))
            }
            None => {
                out.push(format!("during hour {}", runs(&hours, |h| format!("{h:02}"), "through")))
            }
        }
    }
    out.join(", ")
}

fn is_run(vals: &[u32]) -> bool {
    vals.len() > 1 && vals.windows(2).all(|w| w[1] == w[0] + 1)
}

fn days(spec: &CronSpec) -> Option<String> {
    let d = &spec.days;
    let dom_all = d.dom_star && d.dom & 0xffff_fffe == 0xffff_fffe;
    let dow_all = d.dow_star && d.dow == 0x7f;
    let mut dom_parts = Vec::new();
    let doms = values(d.dom.into(), 1, 31);
    if !doms.is_empty() && !dom_all {
        // A step restarts at day 1 each month (`*/7` is 1, 8, 15, 22, 29, then 1 again), so it
        // is never "every n days": name the days, or the step within the month when many.
        let list = match step_of(&doms, 1, 31) {
            Some(n) if doms.len() > 8 => format!(
                "on every {} day of the month from day 1 to {}",
                ordinal(n),
                doms[doms.len() - 1]
            ),
            _ => format!("on day {} of the month", runs(&doms, |v| v.to_string(), "through")),
        };
        dom_parts.push(list);
    }
    if d.last_day {
        dom_parts.push("on the last day of the month".into());
    }
    if d.last_weekday {
        dom_parts.push("on the last weekday of the month".into());
    }
    for n in values(d.nearest_weekday.into(), 1, 31) {
        dom_parts.push(format!("on the weekday nearest day {n} of the month"));
    }
    let mut dow_parts = Vec::new();
    let dows = values(d.dow.into(), 0, 6);
    if !dows.is_empty() && !dow_all {
        dow_parts.push(runs(&dows, |v| DAYS[v as usize].into(), "through"));
    }
    for wd in values(d.last_dow.into(), 0, 6) {
        dow_parts.push(format!("on the last {} of the month", DAYS[wd as usize]));
    }
    for (wd, ks) in d.nth_dow.iter().enumerate() {
        for k in values((*ks).into(), 1, 5) {
            dow_parts.push(format!(
                "on the {} {} of the month",
                ORDINALS[k as usize - 1],
                DAYS[wd]
            ));
        }
    }
    let dom = (!dom_parts.is_empty()).then(|| join(&dom_parts));
    let dow = (!dow_parts.is_empty()).then(|| join(&dow_parts));
    match (dom, dow) {
        (None, None) => None,
        (Some(one), None) | (None, Some(one)) => Some(one),
        // Vixie: both restricted means either may match.
        (Some(a), Some(b)) if !(d.dom_star || d.dow_star) => Some(format!("{a}, or {b}")),
        (Some(a), Some(b)) => Some(format!("{a}, if it is {b}")),
    }
}

pub(crate) fn every(interval: &Interval, anchor: Option<&Zoned>) -> String {
    let mut parts = Vec::new();
    let weeks = if interval.days % 7 == 0 { interval.days / 7 } else { 0 };
    let mut unit = |n: i64, name: &str| {
        if n != 0 {
            parts.push(format!("{n} {name}{}", if n == 1 { "" } else { "s" }));
        }
    };
    if weeks != 0 {
        unit(weeks, "week");
    } else {
        unit(interval.days, "day");
    }
    unit(interval.seconds / 3600, "hour");
    unit(interval.seconds / 60 % 60, "minute");
    unit(interval.seconds % 60, "second");
    let mut text = format!("every {}", parts.join(" "));
    if let Some(anchor) = anchor {
        text.push_str(&format!(" from {}", anchor.strftime("%Y-%m-%d %H:%M:%S %:z")));
    }
    text
}
