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
//!
//! # Why a segment cache?
//!
//! Asking jiff for the offset, the ambiguity of a local time or the next transition costs
//! 15-35 ns each, more than the search itself. A schedule that owns its zone remembers the
//! last segment between two transitions it saw (in a few atomics, so `Schedule` stays `Sync`).
//! An answer inside that segment, and more than [`MARGIN`] away from both of its ends, cannot
//! be in a gap or a fold, so it needs no question to jiff at all.

use std::sync::atomic::{fence, AtomicI32, AtomicI64, AtomicU64, Ordering};

use jiff::{
    civil::DateTime,
    tz::{AmbiguousOffset, Offset, TimeZone},
    SignedDuration, Timestamp, Zoned,
};

use crate::spec::CronSpec;

const ONE_NANO: SignedDuration = SignedDuration::from_nanos(1);

/// No gap or fold reaches further than the largest difference of two offsets (jiff bounds
/// offsets to ±25:59:59) from its transition, in seconds.
const MARGIN: i64 = 52 * 3600;

/// Whether `t` is at or after the whole second `secs` (without 128-bit nanoseconds: the
/// second and its fraction have the same sign in jiff).
#[inline]
fn at_or_after(t: Timestamp, secs: i64) -> bool {
    let s = t.as_second();
    s > secs || (s == secs && t.subsec_nanosecond() >= 0)
}

/// A stretch of time with one offset: from one transition (or the beginning of time) to the
/// next, in seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Segment {
    start: i64,
    end: i64,
    offset: Offset,
}

impl Segment {
    fn at(tz: &TimeZone, t: Timestamp) -> Segment {
        let start = t
            .checked_add(ONE_NANO)
            .ok()
            .and_then(|after| tz.preceding(after).next())
            .map_or(i64::MIN, |tr| tr.timestamp().as_second());
        let end = tz.following(t).next().map_or(i64::MAX, |tr| tr.timestamp().as_second());
        Segment { start, end, offset: tz.to_offset(t) }
    }

    fn contains(&self, t: Timestamp) -> bool {
        at_or_after(t, self.start) && !at_or_after(t, self.end)
    }

    /// Far enough inside that no local time mapping here is ambiguous.
    fn deep_inside(&self, t: Timestamp) -> bool {
        at_or_after(t, self.start.saturating_add(MARGIN))
            && !at_or_after(t, self.end.saturating_sub(MARGIN))
    }
}

/// One remembered [`Segment`], shared between threads by a sequence lock.
#[derive(Debug, Default)]
struct Slot {
    /// Even: the fields are consistent; odd: a writer is at work; 0: empty.
    seq: AtomicU64,
    start: AtomicI64,
    end: AtomicI64,
    offset: AtomicI32,
}

impl Slot {
    fn get(&self) -> Option<Segment> {
        let before = self.seq.load(Ordering::Acquire);
        if before == 0 || before & 1 == 1 {
            return None;
        }
        let start = self.start.load(Ordering::Relaxed);
        let end = self.end.load(Ordering::Relaxed);
        let offset = self.offset.load(Ordering::Relaxed);
        fence(Ordering::Acquire);
        if self.seq.load(Ordering::Relaxed) != before {
            return None;
        }
        Some(Segment { start, end, offset: Offset::from_seconds(offset).ok()? })
    }

    fn put(&self, seg: Segment) {
        let seq = self.seq.load(Ordering::Relaxed);
        // Another writer is at work: its segment is as good as ours.
        if seq & 1 == 1
            || self
                .seq
                .compare_exchange(seq, seq + 1, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        fence(Ordering::Release);
        self.start.store(seg.start, Ordering::Relaxed);
        self.end.store(seg.end, Ordering::Relaxed);
        self.offset.store(seg.offset.seconds(), Ordering::Relaxed);
        self.seq.store(seq + 2, Ordering::Release);
    }
}

/// The last two [`Segment`]s a schedule saw: the one of the asked instant and, when the answer
/// lies beyond it (a yearly job), the answer's.
#[derive(Debug, Default)]
pub(crate) struct SegmentCache {
    slots: [Slot; 2],
    /// Which slot the next new segment replaces.
    victim: AtomicU64,
}

impl SegmentCache {
    /// The segment containing `t`, from the cache or from jiff (then remembered).
    fn segment(&self, tz: &TimeZone, t: Timestamp) -> Segment {
        for slot in &self.slots {
            if let Some(seg) = slot.get().filter(|seg| seg.contains(t)) {
                return seg;
            }
        }
        let seg = Segment::at(tz, t);
        let victim = self.victim.fetch_add(1, Ordering::Relaxed) as usize % self.slots.len();
        self.slots[victim].put(seg);
        seg
    }
}

impl Clone for SegmentCache {
    /// A clone starts empty: it is only a cache.
    fn clone(&self) -> SegmentCache {
        SegmentCache::default()
    }
}

/// The asked instant with its offset and local time in the zone of the search.
struct Local {
    t: Timestamp,
    offset: Offset,
    dt: DateTime,
}

impl Local {
    /// `at` read in a zone whose offset at that instant is `offset`, reusing what `at` already
    /// knows when the offsets agree (a local time depends only on the instant and the offset).
    fn new(at: &Zoned, offset: Offset) -> Local {
        let t = at.timestamp();
        let dt = if at.offset() == offset { at.datetime() } else { offset.to_datetime(t) };
        Local { t, offset, dt }
    }
}

/// The first instant strictly after `at` at which `spec` fires in `tz`. `cache` is given when
/// `tz` is the schedule's own zone; without it, `tz` is `at`'s zone.
pub(crate) fn next_after(
    spec: &CronSpec,
    tz: &TimeZone,
    cache: Option<&SegmentCache>,
    at: &Zoned,
) -> Option<Timestamp> {
    let local = match cache {
        Some(cache) => {
            let seg = cache.segment(tz, at.timestamp());
            let local = Local::new(at, seg.offset);
            let dt = spec.next_civil(local.dt, false)?;
            let found = seg.offset.to_timestamp(dt).ok()?;
            let sure = if spec.fixed_time { seg.deep_inside(found) } else { seg.contains(found) };
            if sure {
                return Some(found);
            }
            if spec.fixed_time {
                // The local time may lie in a later segment (a yearly job, say): it is the
                // answer if it is unambiguous there. Remember that segment for the next call.
                let there = cache.segment(tz, found);
                // `dt` read with the other offset: the same civil time, the offsets apart.
                // (`found` is a whole second: integer seconds suffice.)
                let apart = i64::from(seg.offset.seconds() - there.offset.seconds());
                let found = Timestamp::from_second(found.as_second() + apart).ok()?;
                if there.deep_inside(found) && found > local.t {
                    return Some(found);
                }
            }
            local
        }
        None => Local { t: at.timestamp(), offset: at.offset(), dt: at.datetime() },
    };
    if spec.fixed_time {
        next_fixed(spec, tz, &local)
    } else {
        next_real(spec, tz, &local)
    }
}

/// The last instant strictly before `at` at which `spec` fires in `tz`.
pub(crate) fn prev_before(
    spec: &CronSpec,
    tz: &TimeZone,
    cache: Option<&SegmentCache>,
    at: &Zoned,
) -> Option<Timestamp> {
    let t = at.timestamp();
    let offset = match cache {
        Some(cache) => {
            let seg = cache.segment(tz, t);
            // Instants just before `t` are in this segment only if it started before `t`.
            if t > Timestamp::from_second(seg.start).unwrap_or(Timestamp::MIN) {
                let local = Local::new(at, seg.offset);
                let dt = spec.prev_civil(local.dt, false)?;
                let found = seg.offset.to_timestamp(dt).ok()?;
                let sure =
                    if spec.fixed_time { seg.deep_inside(found) } else { seg.contains(found) };
                if sure {
                    return Some(found);
                }
            }
            seg.offset
        }
        None => at.offset(),
    };
    if spec.fixed_time {
        prev_fixed(spec, tz, &Local::new(at, offset))
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

fn next_fixed(spec: &CronSpec, tz: &TimeZone, local: &Local) -> Option<Timestamp> {
    let mut from = local.dt;
    loop {
        let dt = spec.next_civil(from, false)?;
        let at = resolve_first(tz, dt)?;
        if at > local.t {
            return Some(at);
        }
        // `t` is in the second pass of a fold, or at the end of a gap: this local time fired
        // already.
        from = dt;
    }
}

fn prev_fixed(spec: &CronSpec, tz: &TimeZone, local: &Local) -> Option<Timestamp> {
    let mut from = local.dt;
    // In the second pass of a fold, local times up to the fold's end fired (on their first
    // pass) before `t`: start looking from the fold's end.
    if let AmbiguousOffset::Fold { before, after } = tz.to_ambiguous_timestamp(local.dt).offset() {
        if local.offset == after {
            let first_pass = before.to_timestamp(local.dt).ok()?;
            let transition = tz.following(first_pass).next()?.timestamp();
            from = before.to_datetime(transition);
        }
    }
    loop {
        let dt = spec.prev_civil(from, false)?;
        let at = resolve_first(tz, dt)?;
        if at < local.t {
            return Some(at);
        }
        from = dt;
    }
}

fn next_real(spec: &CronSpec, tz: &TimeZone, local: &Local) -> Option<Timestamp> {
    // The segment [start, next transition) has one offset.
    let mut start = local.t;
    let mut offset = local.offset;
    let mut from = local.dt;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_round_trip_and_clone_is_empty() {
        let slot = Slot::default();
        assert_eq!(slot.get(), None);
        let seg = Segment { start: -5, end: 1_000, offset: Offset::from_seconds(-18_000).unwrap() };
        slot.put(seg);
        assert_eq!(slot.get(), Some(seg));
        let cache = SegmentCache::default();
        let tz = TimeZone::get("America/New_York").unwrap();
        let summer: Timestamp = "2026-07-01T00:00:00Z".parse().unwrap();
        let winter: Timestamp = "2027-01-01T00:00:00Z".parse().unwrap();
        assert_eq!(cache.segment(&tz, summer), Segment::at(&tz, summer));
        assert_eq!(cache.segment(&tz, winter), Segment::at(&tz, winter));
        // Both are remembered, and a clone remembers nothing.
        assert!(cache.slots.iter().all(|s| s.get().is_some()));
        assert!(cache.clone().slots.iter().all(|s| s.get().is_none()));
        assert!(seg.contains(Timestamp::from_second(-5).unwrap()));
        assert!(!seg.contains(Timestamp::from_second(1_000).unwrap()));
    }

    #[test]
    fn at_or_after_whole_seconds_also_before_1970() {
        let t = |s: &str| s.parse::<Timestamp>().unwrap();
        assert!(at_or_after(t("1970-01-01T00:00:05Z"), 5));
        assert!(at_or_after(t("1970-01-01T00:00:05.5Z"), 5));
        assert!(!at_or_after(t("1970-01-01T00:00:04.999Z"), 5));
        // -1.5 s: second -1, fraction -0.5.
        assert!(!at_or_after(t("1969-12-31T23:59:58.5Z"), -1));
        assert!(at_or_after(t("1969-12-31T23:59:58.5Z"), -2));
        assert!(at_or_after(t("1969-12-31T23:59:59Z"), -1));
        assert!(!at_or_after(t("1969-12-31T23:59:59.999Z"), 0));
    }

    #[test]
    fn segments_end_at_transitions() {
        let tz = TimeZone::get("America/New_York").unwrap();
        let t: Timestamp = "2026-07-01T00:00:00Z".parse().unwrap();
        let seg = Segment::at(&tz, t);
        assert_eq!(Timestamp::from_second(seg.start).unwrap().to_string(), "2026-03-08T07:00:00Z");
        assert_eq!(Timestamp::from_second(seg.end).unwrap().to_string(), "2026-11-01T06:00:00Z");
        // At a transition instant exactly, the segment starts there.
        let at_transition: Timestamp = "2026-11-01T06:00:00Z".parse().unwrap();
        assert_eq!(Segment::at(&tz, at_transition).start, at_transition.as_second());
        assert_eq!(Segment::at(&TimeZone::UTC, t).start, i64::MIN);
    }
}
