//! Turning matching wall-clock times into instants in a time zone, with the DST policy.
//!
//! Two policies (see `docs/semantics.md`):
//!
//! * **Fixed-time** schedules (seconds, minute and hour fields do not start with `*`) fire once
//!   per matching local time: a time skipped by a gap fires at the first instant after the gap
//!   (the transition itself), a time shown twice by a fold fires at its first occurrence. Each
//!   local time maps to one instant by a non-decreasing function, so searching local times in
//!   order and dropping those that map to or before the asked instant finds the answer.
//! * **Real-time** schedules fire at every instant whose local time matches. Between two
//!   transitions the offset is constant, so local time runs in step with real time: the search
//!   walks these segments in order, and looks for matches only inside each one.

use jiff::{
    civil::DateTime,
    tz::{AmbiguousOffset, Offset, TimeZone},
    SignedDuration, Timestamp,
};

use crate::spec::CronSpec;

const ONE_NANO: SignedDuration = SignedDuration::from_nanos(1);

/// The first instant strictly after `t` at which `spec` fires in `tz`.
pub(crate) fn next_after(spec: &CronSpec, tz: &TimeZone, t: Timestamp) -> Option<Timestamp> {
    if spec.fixed_time {
        next_fixed(spec, tz, t)
    } else {
        next_real(spec, tz, t)
    }
}

/// The last instant strictly before `t` at which `spec` fires in `tz`.
pub(crate) fn prev_before(spec: &CronSpec, tz: &TimeZone, t: Timestamp) -> Option<Timestamp> {
    if spec.fixed_time {
        prev_fixed(spec, tz, t)
    } else {
        prev_real(spec, tz, t)
    }
}

/// The instant a fixed-time schedule fires for local time `dt`: the first occurrence in a fold,
/// the end of the gap in a gap.
fn resolve_first(tz: &TimeZone, dt: DateTime) -> Option<Timestamp> {
    match tz.to_ambiguous_timestamp(dt).offset() {
        AmbiguousOffset::Unambiguous { offset } => offset.to_timestamp(dt).ok(),
        AmbiguousOffset::Fold { before, .. } => before.to_timestamp(dt).ok(),
        AmbiguousOffset::Gap { after, .. } => {
            // Read with the offset after the gap, `dt` lies just before the transition that
            // opened the gap; that transition is the first instant after it.
            let probe = after.to_timestamp(dt).ok()?;
            Some(tz.following(probe).next()?.timestamp())
        }
    }
}

fn next_fixed(spec: &CronSpec, tz: &TimeZone, t: Timestamp) -> Option<Timestamp> {
    let mut from = tz.to_datetime(t);
    loop {
        let dt = spec.next_civil(from, false)?;
        let at = resolve_first(tz, dt)?;
        if at > t {
            return Some(at);
        }
        // `t` is in the second pass of a fold, or at the end of a gap: this local time fired
        // already.
        from = dt;
    }
}

fn prev_fixed(spec: &CronSpec, tz: &TimeZone, t: Timestamp) -> Option<Timestamp> {
    let offset = tz.to_offset(t);
    let local = offset.to_datetime(t);
    let mut from = local;
    // In the second pass of a fold, local times up to the fold's end fired (on their first
    // pass) before `t`: start looking from the fold's end.
    if let AmbiguousOffset::Fold { before, after } = tz.to_ambiguous_timestamp(local).offset() {
        if offset == after {
            let first_pass = before.to_timestamp(local).ok()?;
            let transition = tz.following(first_pass).next()?.timestamp();
            from = before.to_datetime(transition);
        }
    }
    loop {
        let dt = spec.prev_civil(from, false)?;
        let at = resolve_first(tz, dt)?;
        if at < t {
            return Some(at);
        }
        from = dt;
    }
}

fn next_real(spec: &CronSpec, tz: &TimeZone, t: Timestamp) -> Option<Timestamp> {
    // The segment [start, next transition) has one offset.
    let mut start = t;
    let mut offset = tz.to_offset(t);
    let mut from = offset.to_datetime(t);
    let mut inclusive = false;
    loop {
        let dt = spec.next_civil(from, inclusive)?;
        let at = offset.to_timestamp(dt).ok()?;
        match tz.following(start).next() {
            Some(tr) if at >= tr.timestamp() => {
                start = tr.timestamp();
                offset = tr.offset();
                from = offset.to_datetime(start);
                inclusive = true;
            }
            _ => return Some(at),
        }
    }
}

fn prev_real(spec: &CronSpec, tz: &TimeZone, t: Timestamp) -> Option<Timestamp> {
    // The segment [previous transition, end) has one offset.
    let mut end = t;
    let mut offset = offset_before(tz, t)?;
    loop {
        let dt = spec.prev_civil(offset.to_datetime(end), false)?;
        let at = offset.to_timestamp(dt).ok()?;
        match tz.preceding(end).next() {
            Some(tr) if at < tr.timestamp() => {
                end = tr.timestamp();
                offset = offset_before(tz, end)?;
            }
            _ => return Some(at),
        }
    }
}

/// The offset in force just before `t`.
fn offset_before(tz: &TimeZone, t: Timestamp) -> Option<Offset> {
    Some(tz.to_offset(t.checked_sub(ONE_NANO).ok()?))
}
