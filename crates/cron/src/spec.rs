//! A parsed cron expression as bitmasks, and the search for matching civil (wall-clock) times.
//!
//! Everything here works on wall-clock components; time zones and DST are `zone.rs`'s job.

use std::sync::atomic::{AtomicU64, Ordering};

use jiff::civil::{Date, DateTime};

/// The earliest and latest years searched (jiff's civil range).
const MIN_YEAR: i32 = -9999;
const MAX_YEAR: i32 = 9999;

/// The day fields of an expression, beyond plain day numbers and weekdays.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct DaySpec {
    /// Bits 1..=31: plain days of the month.
    pub dom: u32,
    /// `L`: the last day of the month.
    pub last_day: bool,
    /// `LW`: the last weekday (Mon-Fri) of the month.
    pub last_weekday: bool,
    /// Bits 1..=31: `nW`, the weekday nearest day n within the same month.
    pub nearest_weekday: u32,
    /// Bits 0..=6 (Sunday = 0): plain weekdays.
    pub dow: u8,
    /// Bits 0..=6: `nL`, the last such weekday of the month.
    pub last_dow: u8,
    /// Per weekday (Sunday = 0), bits 1..=5: `n#k`, the k-th such weekday of the month.
    pub nth_dow: [u8; 7],
    /// The day-of-month field starts with `*` or `?` (the Vixie rule: then both must match).
    pub dom_star: bool,
    /// The day-of-week field starts with `*` or `?`.
    pub dow_star: bool,
}

/// A cron expression reduced to sets. Bit `n` set means value `n` matches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CronSpec {
    pub seconds: u64,
    pub minutes: u64,
    pub hours: u32,
    /// Bits 1..=12.
    pub months: u16,
    pub days: DaySpec,
    /// Seconds, minute and hour fields all start with something other than `*`: fire once per
    /// local time across DST changes (see `docs/semantics.md`).
    pub fixed_time: bool,
    /// For each weekday of the 1st of a month (Sunday = 0), bits 1..=31 of the days whose
    /// weekday is in `days.dow`. Precomputed so a month's mask is a few bit operations.
    dow_by_first: [u32; 7],
    /// The last month whose mask a search computed: schedulers ask about the same month
    /// again and again.
    memo: MonthMemo,
}

/// The last two months' days masks, each packed in an atomic: bit 63 set when valid, bits
/// 36..52 the year (offset by 10 000), bits 32..36 the month, bits 0..32 the mask. Two, because
/// a search often looks at a month that does not match before one that does (February 2027,
/// then February 2028, for `0 0 29 2 *`).
#[derive(Debug, Default)]
struct MonthMemo([AtomicU64; 2]);

impl MonthMemo {
    fn pack(e: MonthEntry) -> u64 {
        if !(-9999..=9999).contains(&e.key.0) {
            return 0;
        }
        let year = (e.key.0 + 10_000) as u64;
        1 << 63 | year << 36 | (e.key.1 as u64) << 32 | u64::from(e.mask)
    }

    fn unpack(v: u64) -> MonthEntry {
        if v >> 63 == 0 {
            return MonthEntry::EMPTY;
        }
        let year = ((v >> 36) & 0x7fff) as i32 - 10_000;
        MonthEntry { key: (year, ((v >> 32) & 0xf) as i32), mask: v as u32 }
    }

    fn load(&self) -> MonthCache {
        let [a, b] = &self.0;
        MonthCache {
            entries: [
                Self::unpack(a.load(Ordering::Relaxed)),
                Self::unpack(b.load(Ordering::Relaxed)),
            ],
            next: 0,
            changed: false,
        }
    }

    fn store(&self, c: &MonthCache) {
        if c.changed {
            for (slot, entry) in self.0.iter().zip(c.entries) {
                slot.store(Self::pack(entry), Ordering::Relaxed);
            }
        }
    }
}

impl Clone for MonthMemo {
    fn clone(&self) -> MonthMemo {
        let [a, b] = &self.0;
        MonthMemo([
            AtomicU64::new(a.load(Ordering::Relaxed)),
            AtomicU64::new(b.load(Ordering::Relaxed)),
        ])
    }
}

/// Only a cache: never part of what a spec means.
impl PartialEq for MonthMemo {
    fn eq(&self, _: &MonthMemo) -> bool {
        true
    }
}

impl Eq for MonthMemo {}

/// Bits 1..=n.
fn days_upto(n: i8) -> u32 {
    (((1u64 << (n as u32 + 1)) - 1) as u32) & !1
}

/// The smallest set bit at or above `from`.
#[inline]
fn next_bit(mask: u64, from: i32) -> Option<i32> {
    if !(0..64).contains(&from) {
        return None;
    }
    let m = mask >> from;
    (m != 0).then(|| from + m.trailing_zeros() as i32)
}

/// The largest set bit at or below `from`.
#[inline]
fn prev_bit(mask: u64, from: i32) -> Option<i32> {
    if from < 0 {
        return None;
    }
    let m = if from >= 63 { mask } else { mask & ((1u64 << (from + 1)) - 1) };
    (m != 0).then(|| 63 - m.leading_zeros() as i32)
}

impl DaySpec {
    /// Bits 1..=31 of the matching days of a month with `len` days whose 1st is weekday `first`
    /// (Sunday = 0). `dow_by_first` is `CronSpec::dow_by_first`.
    pub fn month_mask(&self, len: i8, first: i8, dow_by_first: &[u32; 7]) -> u32 {
        let valid = days_upto(len);
        let weekday_of = |day: i8| (first as i32 + day as i32 - 1).rem_euclid(7) as i8;
        let is_workday = |day: i8| (1..=5).contains(&weekday_of(day));

        let mut dom = self.dom & valid;
        if self.last_day {
            dom |= 1 << len;
        }
        if self.last_weekday {
            let mut d = len;
            while !is_workday(d) {
                d -= 1;
            }
            dom |= 1 << d;
        }
        let mut nw = self.nearest_weekday & valid;
        while nw != 0 {
            let n = nw.trailing_zeros() as i8;
            nw &= nw - 1;
            dom |= 1 << nearest_workday(n, len, weekday_of(n));
        }

        let mut dow = dow_by_first[first as usize] & valid;
        let has_extras = self.last_dow != 0 || self.nth_dow != [0; 7];
        for wd in (0..7i8).filter(|_| has_extras) {
            let offset = (wd - first).rem_euclid(7); // first day of the month with weekday wd, minus 1
            if self.last_dow & (1 << wd) != 0 {
                let last = offset + 1 + 7 * ((len - 1 - offset) / 7);
                dow |= 1 << last;
            }
            let mut ks = self.nth_dow[wd as usize];
            while ks != 0 {
                let k = ks.trailing_zeros() as i8;
                ks &= ks - 1;
                let day = offset + 1 + 7 * (k - 1);
                if day <= len {
                    dow |= 1 << day;
                }
            }
        }

        if self.dom_star || self.dow_star {
            // Vixie cron: when either field starts with `*`, a day must match both.
            dom & dow
        } else {
            dom | dow
        }
    }
}

/// The weekday nearest day `n` of a month of `len` days, never leaving the month.
fn nearest_workday(n: i8, len: i8, weekday: i8) -> i8 {
    match weekday {
        6 if n == 1 => 3,       // Saturday the 1st: Monday the 3rd
        6 => n - 1,             // Saturday: Friday before
        0 if n == len => n - 2, // Sunday the last: Friday before
        0 => n + 1,             // Sunday: Monday after
        _ => n,
    }
}

/// Components of a civil second, allowed to run past their range during a search.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Parts {
    year: i32,
    month: i32,
    day: i32,
    hour: i32,
    minute: i32,
    second: i32,
}

impl Parts {
    fn of(dt: DateTime) -> Parts {
        Parts {
            year: dt.year().into(),
            month: dt.month().into(),
            day: dt.day().into(),
            hour: dt.hour().into(),
            minute: dt.minute().into(),
            second: dt.second().into(),
        }
    }

    fn to_datetime(self) -> Option<DateTime> {
        DateTime::new(
            i16::try_from(self.year).ok()?,
            self.month as i8,
            self.day as i8,
            self.hour as i8,
            self.minute as i8,
            self.second as i8,
            0,
        )
        .ok()
    }
}

/// One month's days mask.
#[derive(Clone, Copy, Debug)]
struct MonthEntry {
    key: (i32, i32),
    mask: u32,
}

impl MonthEntry {
    const EMPTY: MonthEntry = MonthEntry { key: (i32::MIN, 0), mask: 0 };
}

/// Days masks remembered across the search loop's restarts (and, through `MonthMemo`, calls).
struct MonthCache {
    entries: [MonthEntry; 2],
    /// Which entry a new month replaces.
    next: usize,
    changed: bool,
}

impl MonthCache {
    fn empty() -> MonthCache {
        MonthCache { entries: [MonthEntry::EMPTY; 2], next: 0, changed: false }
    }
}

impl CronSpec {
    pub fn new(
        seconds: u64,
        minutes: u64,
        hours: u32,
        months: u16,
        days: DaySpec,
        fixed_time: bool,
    ) -> CronSpec {
        // Day d of a month whose 1st is weekday f has weekday (f + d - 1) % 7: rotate the
        // weekday bits by f, repeat them every 7 days, and start at day 1.
        let dow = u64::from(days.dow & 0x7f);
        let mut dow_by_first = [0u32; 7];
        for (first, mask) in dow_by_first.iter_mut().enumerate() {
            let r = ((dow >> first) | (dow << (7 - first))) & 0x7f;
            let repeated = r | r << 7 | r << 14 | r << 21 | r << 28;
            *mask = ((repeated << 1) & 0xffff_fffe) as u32;
        }
        let memo = MonthMemo::default();
        CronSpec { seconds, minutes, hours, months, days, fixed_time, dow_by_first, memo }
    }

    /// The matching days of a month with `len` days whose 1st is weekday `first`.
    pub fn month_mask_for(&self, len: i8, first: i8) -> u32 {
        self.days.month_mask(len, first, &self.dow_by_first)
    }

    fn month_mask(&self, cache: &mut MonthCache, year: i32, month: i32) -> u32 {
        if let Some(e) = cache.entries.iter().find(|e| e.key == (year, month)) {
            return e.mask;
        }
        let mask = i16::try_from(year).ok().and_then(|y| Date::new(y, month as i8, 1).ok()).map_or(
            0,
            |first| {
                let wd = first.weekday().to_sunday_zero_offset();
                self.month_mask_for(first.days_in_month(), wd)
            },
        );
        cache.entries[cache.next] = MonthEntry { key: (year, month), mask };
        cache.next ^= 1;
        cache.changed = true;
        mask
    }

    /// Whether a civil datetime matches (whole seconds only).
    pub fn matches(&self, dt: DateTime) -> bool {
        if dt.subsec_nanosecond() != 0 {
            return false;
        }
        let p = Parts::of(dt);
        let mut cache = MonthCache::empty();
        self.seconds & (1 << p.second) != 0
            && self.minutes & (1 << p.minute) != 0
            && self.hours & (1 << p.hour) != 0
            && self.months & (1 << p.month) != 0
            && self.month_mask(&mut cache, p.year, p.month) & (1 << p.day) != 0
    }

    /// The first matching whole second after `from` (or at it, when `inclusive`).
    pub fn next_civil(&self, from: DateTime, inclusive: bool) -> Option<DateTime> {
        let mut p = Parts::of(from);
        if !inclusive || from.subsec_nanosecond() != 0 {
            p.second += 1; // may be 60: the search carries it
        }
        let mut cache = self.memo.load();
        let found = self.search_forward(p, &mut cache);
        self.memo.store(&cache);
        found
    }

    fn search_forward(&self, mut p: Parts, cache: &mut MonthCache) -> Option<DateTime> {
        while p.year <= MAX_YEAR {
            let Some(month) = next_bit(self.months.into(), p.month) else {
                p = Parts { year: p.year + 1, month: 1, day: 1, hour: 0, minute: 0, second: 0 };
                continue;
            };
            if month != p.month {
                p = Parts { month, day: 1, hour: 0, minute: 0, second: 0, ..p };
            }
            let days = self.month_mask(cache, p.year, p.month);
            let Some(day) = next_bit(days.into(), p.day) else {
                p = Parts { month: p.month + 1, day: 1, hour: 0, minute: 0, second: 0, ..p };
                continue;
            };
            if day != p.day {
                p = Parts { day, hour: 0, minute: 0, second: 0, ..p };
            }
            let Some(hour) = next_bit(self.hours.into(), p.hour) else {
                p = Parts { day: p.day + 1, hour: 0, minute: 0, second: 0, ..p };
                continue;
            };
            if hour != p.hour {
                p = Parts { hour, minute: 0, second: 0, ..p };
            }
            let Some(minute) = next_bit(self.minutes, p.minute) else {
                p = Parts { hour: p.hour + 1, minute: 0, second: 0, ..p };
                continue;
            };
            if minute != p.minute {
                p = Parts { minute, second: 0, ..p };
            }
            let Some(second) = next_bit(self.seconds, p.second) else {
                p = Parts { minute: p.minute + 1, second: 0, ..p };
                continue;
            };
            return Parts { second, ..p }.to_datetime();
        }
        None
    }

    /// The last matching whole second before `from` (or at it, when `inclusive`).
    pub fn prev_civil(&self, from: DateTime, inclusive: bool) -> Option<DateTime> {
        let mut p = Parts::of(from);
        // A fractional `from` lies after its whole second, so that second is a candidate.
        if !inclusive && from.subsec_nanosecond() == 0 {
            p.second -= 1;
        }
        let mut cache = self.memo.load();
        let found = self.search_backward(p, &mut cache);
        self.memo.store(&cache);
        found
    }

    fn search_backward(&self, mut p: Parts, cache: &mut MonthCache) -> Option<DateTime> {
        while p.year >= MIN_YEAR {
            let Some(month) = prev_bit(self.months.into(), p.month) else {
                p = Parts {
                    year: p.year - 1,
                    month: 12,
                    day: 31,
                    hour: 23,
                    minute: 59,
                    second: 59,
                };
                continue;
            };
            if month != p.month {
                p = Parts { month, day: 31, hour: 23, minute: 59, second: 59, ..p };
            }
            let days = self.month_mask(cache, p.year, p.month);
            let Some(day) = prev_bit(days.into(), p.day) else {
                p = Parts { month: p.month - 1, day: 31, hour: 23, minute: 59, second: 59, ..p };
                continue;
            };
            if day != p.day {
                p = Parts { day, hour: 23, minute: 59, second: 59, ..p };
            }
            let Some(hour) = prev_bit(self.hours.into(), p.hour) else {
                p = Parts { day: p.day - 1, hour: 23, minute: 59, second: 59, ..p };
                continue;
            };
            if hour != p.hour {
                p = Parts { hour, minute: 59, second: 59, ..p };
            }
            let Some(minute) = prev_bit(self.minutes, p.minute) else {
                p = Parts { hour: p.hour - 1, minute: 59, second: 59, ..p };
                continue;
            };
            if minute != p.minute {
                p = Parts { minute, second: 59, ..p };
            }
            let Some(second) = prev_bit(self.seconds, p.second) else {
                p = Parts { minute: p.minute - 1, second: 59, ..p };
                continue;
            };
            return Parts { second, ..p }.to_datetime();
        }
        None
    }

    /// Whether some day of some year matches: a proof by cases over what decides a month's
    /// days (its length and the weekday of its 1st), not a search through years.
    ///
    /// Every month starts on every weekday in some year, for each length it can have (February
    /// has 28 days in common years and 29 in leap years, and both kinds start on every weekday
    /// within the 400-year Gregorian cycle), so checking those at most 12 x 2 x 7 cases is exact.
    pub fn can_fire(&self) -> bool {
        // Fast path for the usual case: a plain day-of-month or plain weekday that every month
        // of the year has.
        let d = &self.days;
        let every_month_has = d.dom & days_upto(28) != 0 || d.last_day || d.last_weekday;
        if (d.dom_star || d.dow_star) && d.dow == 0x7f && every_month_has {
            return true;
        }
        for month in 1..=12i32 {
            if self.months & (1 << month) == 0 {
                continue;
            }
            let lengths: &[i8] = match month {
                2 => &[28, 29],
                4 | 6 | 9 | 11 => &[30],
                _ => &[31],
            };
            for &len in lengths {
                if (0..7).any(|first| self.month_mask_for(len, first) != 0) {
                    return true;
                }
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_workday_stays_in_month() {
        // Saturday the 1st goes forward to Monday the 3rd, not back into the previous month.
        assert_eq!(nearest_workday(1, 30, 6), 3);
        // Sunday the 31st goes back to Friday the 29th.
        assert_eq!(nearest_workday(31, 31, 0), 29);
        assert_eq!(nearest_workday(15, 30, 6), 14);
        assert_eq!(nearest_workday(15, 30, 0), 16);
        assert_eq!(nearest_workday(15, 30, 3), 15);
    }

    #[test]
    fn bits() {
        assert_eq!(next_bit(0b1010, 0), Some(1));
        assert_eq!(next_bit(0b1010, 2), Some(3));
        assert_eq!(next_bit(0b1010, 4), None);
        assert_eq!(next_bit(u64::MAX, 63), Some(63));
        assert_eq!(next_bit(u64::MAX, 64), None);
        assert_eq!(prev_bit(0b1010, 2), Some(1));
        assert_eq!(prev_bit(0b1010, 0), None);
        assert_eq!(prev_bit(u64::MAX, 63), Some(63));
        assert_eq!(prev_bit(1 << 63, 100), Some(63));
        assert_eq!(days_upto(31), 0xffff_fffe);
        assert_eq!(days_upto(28), 0x1fff_fffe);
    }
}
