//! `@every SPAN` intervals, optionally anchored to an instant.
//!
//! An anchored interval fires at `anchor + k * SPAN` for every integer `k`. The calendar part
//! (days, weeks) is added to the anchor's wall-clock date in the schedule's zone, so the time
//! of day stays put across DST changes (a wall time that falls in a gap moves forward by the
//! gap's length, as RFC 5545 says; jiff's "compatible" disambiguation). The clock part (hours,
//! minutes, seconds) is an exact duration added after that.

use std::fmt;

use jiff::{tz::TimeZone, SignedDuration, Span, Timestamp, Zoned};

/// Intervals longer than this are refused: they would leave jiff's range of instants anyway.
pub(crate) const MAX_DAYS: i64 = 3_000_000;

/// The length of an `@every` interval: whole calendar days plus an exact clock duration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Interval {
    /// Calendar days (`d`, and `w` as 7 days).
    pub days: i64,
    /// Exact seconds (`h`, `m`, `s`).
    pub seconds: i64,
}

impl Interval {
    fn approx(self) -> SignedDuration {
        SignedDuration::from_secs(self.days * 86_400 + self.seconds)
    }

    /// The `k`-th fire time counted from `anchor` (which is in the schedule's zone).
    fn nth(self, anchor: &Zoned, k: i64) -> Option<Timestamp> {
        let mut at = anchor.clone();
        if self.days != 0 {
            at = at.checked_add(Span::new().try_days(self.days.checked_mul(k)?).ok()?).ok()?;
        }
        let clock = SignedDuration::from_secs(self.seconds.checked_mul(k)?);
        at.timestamp().checked_add(clock).ok()
    }

    /// The first `anchor + k * self` strictly after `t`, or when `after` is false, the last one
    /// strictly before `t`.
    pub(crate) fn step(self, anchor: &Zoned, t: Timestamp, after: bool) -> Option<Timestamp> {
        let period = self.approx().as_nanos();
        let elapsed = t.as_nanosecond() - anchor.timestamp().as_nanosecond();
        // An estimate of k that DST shifts can be off by a little; walk to the exact one.
        let mut k = i64::try_from(elapsed.div_euclid(period)).ok()?;
        if after {
            while self.nth(anchor, k)? > t {
                k = k.checked_sub(1)?;
            }
            loop {
                k = k.checked_add(1)?;
                let at = self.nth(anchor, k)?;
                if at > t {
                    return Some(at);
                }
            }
        } else {
            k = k.checked_add(1)?;
            while self.nth(anchor, k)? < t {
                k = k.checked_add(1)?;
            }
            loop {
                k = k.checked_sub(1)?;
                let at = self.nth(anchor, k)?;
                if at < t {
                    return Some(at);
                }
            }
        }
    }

    /// Unanchored intervals count from the asked instant: `t + self` (or `t - self`).
    pub(crate) fn counted_from(
        self,
        tz: &TimeZone,
        t: Timestamp,
        after: bool,
    ) -> Option<Timestamp> {
        let anchor = t.to_zoned(tz.clone());
        self.nth(&anchor, if after { 1 } else { -1 })
    }
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.days != 0 {
            write!(f, "{}d", self.days)?;
        }
        let (h, m, s) = (self.seconds / 3600, self.seconds / 60 % 60, self.seconds % 60);
        for (value, unit) in [(h, "h"), (m, "m"), (s, "s")] {
            if value != 0 {
                write!(f, "{value}{unit}")?;
            }
        }
        Ok(())
    }
}
