//! Cron expressions with seconds, time zones, DST rules and anchored intervals.
//!
//! `cronfleet-cron` is the schedule engine of [cronfleet]: it parses an expression into a
//! [`Schedule`] and answers one question, fast and exactly: *when does it fire next (or last)?*
//! It does no I/O and has no runtime; time comes from [`jiff`].
//!
//! ```
//! use cronfleet_cron::Schedule;
//! use jiff::Zoned;
//!
//! let schedule: Schedule = "CRON_TZ=America/New_York 0 30 9 * * MON-FRI".parse()?;
//! let now: Zoned = "2026-11-20T15:00:00+00:00[UTC]".parse()?; // Friday, 10:00 in New York
//! let next = schedule.next_after(&now).unwrap();
//! assert_eq!(next.to_string(), "2026-11-23T09:30:00-05:00[America/New_York]");
//! assert_eq!(schedule.describe(), "at 09:30, Monday through Friday (America/New_York)");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # The language
//!
//! * 5 fields (`minute hour day-of-month month day-of-week`) or 6 (seconds first).
//! * `*`, numbers, ranges `a-b`, steps `*/n`, `a-b/n`, `a/n` (any n from 1: a step past the
//!   range's end leaves its start alone), lists `a,b`; three-letter month names `JAN`-`DEC` and
//!   day names `SUN`-`SAT` in any case, mixed freely with numbers (`MON-5`); 0 and 7 are
//!   Sunday, and `SUN` ending a range is 7 (`FRI-SUN`); `?` is `*` in the day fields. No year
//!   field and no full names (`Monday`): both are errors that say so.
//! * Day-of-month `L` (last day), `LW` (last weekday), `nW` (weekday nearest day n, within the
//!   month); day-of-week `nL` (last weekday n of the month) and `n#k` (k-th weekday n).
//! * The Vixie cron rule for the two day fields: when both are restricted (neither starts with
//!   `*` or `?`) a day matching *either* fires; otherwise a day must match both.
//! * `@yearly`, `@annually`, `@monthly`, `@weekly`, `@daily`, `@midnight`, `@hourly`, and
//!   `@every DURATION` (units `w d h m s`, combinable: `1h30m`), optionally anchored with
//!   [`Schedule::with_anchor`].
//! * A `CRON_TZ=Zone` or `TZ=Zone` prefix fixes the zone (IANA names only); otherwise the zone
//!   of the instant asked about is used.
//! * An expression that can never fire (`0 0 30 2 *`) is an error.
//!
//! # DST
//!
//! A *fixed-time* schedule (its seconds, minute and hour fields do not start with `*`) fires
//! once per matching local time: a time skipped by a gap fires at the first instant after the
//! gap, a time repeated by a fold fires at its first occurrence. Other schedules follow real
//! time: they fire at every instant whose local time matches. This is Debian cron's rule.
//! `docs/semantics.md` in the repository has the whole story with examples.
//!
//! # Layout
//!
//! * `parse`: text to field bitmasks, with errors that point at the fault ([`Error`]).
//! * `spec`: the bitmasks and the search for the next/previous matching *local* time.
//! * `zone`: local times to instants in a zone, with the DST policy.
//! * `every`: `@every` intervals and their anchors.
//! * `describe`: English descriptions.
//!
//! [cronfleet]: https://example.invalid/cronfleet
#![warn(missing_docs)]

mod describe;
mod error;
mod every;
mod parse;
mod spec;
mod zone;

use std::{fmt, str::FromStr, sync::Arc};

use jiff::{tz::TimeZone, Timestamp, Zoned};

pub use error::{Error, ErrorKind};

use every::Interval;
use parse::Body;
use spec::CronSpec;

/// A parsed schedule: a cron expression, or an `@every` interval with an optional anchor.
///
/// Cheap to clone (the parsed form is shared), and `Send + Sync`.
///
/// # Example
/// ```
/// use cronfleet_cron::Schedule;
///
/// let s: Schedule = "*/15 9-17 * * mon-fri".parse()?;
/// assert_eq!(s.to_string(), "0 */15 9-17 * * 1-5");
/// # Ok::<(), cronfleet_cron::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Schedule {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    kind: Kind,
    tz: Option<TimeZone>,
    canonical: String,
    /// Present when the schedule owns its zone (`tz` is set): see `zone.rs`.
    segments: Option<zone::SegmentCache>,
}

impl Inner {
    fn new(kind: Kind, tz: Option<TimeZone>, canonical: String) -> Inner {
        let segments = tz.as_ref().map(|_| zone::SegmentCache::default());
        Inner { kind, tz, canonical, segments }
    }
}

impl PartialEq for Inner {
    fn eq(&self, other: &Inner) -> bool {
        self.kind == other.kind && self.tz == other.tz && self.canonical == other.canonical
    }
}

#[derive(Debug, PartialEq)]
enum Kind {
    Cron(CronSpec),
    Every { interval: Interval, anchor: Option<Zoned> },
}

impl FromStr for Schedule {
    type Err = Error;

    fn from_str(s: &str) -> Result<Schedule, Error> {
        let parsed = parse::parse(s)?;
        let kind = match parsed.body {
            Body::Cron(spec) => Kind::Cron(spec),
            Body::Every(interval) => Kind::Every { interval, anchor: None },
        };
        Ok(Schedule { inner: Arc::new(Inner::new(kind, parsed.tz, parsed.canonical)) })
    }
}

impl fmt::Display for Schedule {
    /// The canonical form: one space between fields, six fields, numbers instead of names,
    /// `?` as `*`. Parsing it gives back an equal schedule (the anchor is not part of it).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.inner.canonical)
    }
}

impl Schedule {
    /// Attaches an anchor to an `@every` schedule: it then fires at `anchor + k * interval` for
    /// every integer `k`, instead of counting from the instant asked about.
    ///
    /// # Errors
    /// An [`ErrorKind::Interval`] error when the schedule is not `@every`.
    ///
    /// # Example
    /// ```
    /// use cronfleet_cron::Schedule;
    /// use jiff::Zoned;
    ///
    /// // A rule created on May 1st and checked every 7 days.
    /// let created: Zoned = "2026-05-01T10:00:00+08:00[Asia/Shanghai]".parse()?;
    /// let s = "@every 7d".parse::<Schedule>()?.with_anchor(created)?;
    /// let restarted: Zoned = "2026-05-03T00:00:00+08:00[Asia/Shanghai]".parse()?;
    /// assert_eq!(
    ///     s.next_after(&restarted).unwrap().to_string(),
    ///     "2026-05-08T10:00:00+08:00[Asia/Shanghai]",
    /// );
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_anchor(self, anchor: Zoned) -> Result<Schedule, Error> {
        let inner = &self.inner;
        match inner.kind {
            Kind::Every { interval, .. } => Ok(Schedule {
                inner: Arc::new(Inner::new(
                    Kind::Every { interval, anchor: Some(anchor) },
                    inner.tz.clone(),
                    inner.canonical.clone(),
                )),
            }),
            Kind::Cron(_) => Err(Error::new(
                ErrorKind::Interval,
                &inner.canonical,
                0,
                inner.canonical.len(),
                "an anchor only applies to @every schedules",
            )),
        }
    }

    /// Gives the schedule a zone of its own, used when the expression has no `CRON_TZ=`/`TZ=`
    /// prefix (a prefix wins). Results are then always in this zone, whatever the zone of the
    /// instant asked about; this is also faster, since the schedule can remember the zone's
    /// transitions between calls.
    ///
    /// # Example
    /// ```
    /// use cronfleet_cron::Schedule;
    /// use jiff::{tz::TimeZone, Zoned};
    ///
    /// let s = "0 9 * * *".parse::<Schedule>()?.in_time_zone(TimeZone::get("Asia/Tokyo")?);
    /// let at: Zoned = "2026-11-23T12:00:00+00:00[UTC]".parse()?;
    /// assert_eq!(s.next_after(&at).unwrap().to_string(), "2026-11-24T09:00:00+09:00[Asia/Tokyo]");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn in_time_zone(self, tz: TimeZone) -> Schedule {
        if self.inner.tz.is_some() {
            return self;
        }
        let kind = match &self.inner.kind {
            Kind::Cron(spec) => Kind::Cron(spec.clone()),
            Kind::Every { interval, anchor } => {
                Kind::Every { interval: *interval, anchor: anchor.clone() }
            }
        };
        Schedule { inner: Arc::new(Inner::new(kind, Some(tz), self.inner.canonical.clone())) }
    }

    /// The anchor of an anchored `@every` schedule.
    ///
    /// # Example
    /// ```
    /// let s: cronfleet_cron::Schedule = "@every 1h".parse()?;
    /// assert!(s.anchor().is_none());
    /// # Ok::<(), cronfleet_cron::Error>(())
    /// ```
    pub fn anchor(&self) -> Option<&Zoned> {
        match &self.inner.kind {
            Kind::Every { anchor, .. } => anchor.as_ref(),
            Kind::Cron(_) => None,
        }
    }

    /// Whether this is an `@every` interval (anchored or not).
    ///
    /// # Example
    /// ```
    /// let s: cronfleet_cron::Schedule = "@every 90s".parse()?;
    /// assert!(s.is_interval());
    /// # Ok::<(), cronfleet_cron::Error>(())
    /// ```
    pub fn is_interval(&self) -> bool {
        matches!(self.inner.kind, Kind::Every { .. })
    }

    /// The schedule's own zone: its `CRON_TZ=`/`TZ=` prefix, or the one given to
    /// [`Schedule::in_time_zone`].
    ///
    /// # Example
    /// ```
    /// let s: cronfleet_cron::Schedule = "TZ=Europe/London 0 9 * * *".parse()?;
    /// assert_eq!(s.time_zone().and_then(|tz| tz.iana_name()), Some("Europe/London"));
    /// # Ok::<(), cronfleet_cron::Error>(())
    /// ```
    pub fn time_zone(&self) -> Option<&TimeZone> {
        self.inner.tz.as_ref()
    }

    /// Whether the schedule is *fixed-time* (seconds, minute and hour fields do not start with
    /// `*`): such schedules fire once per local time across DST changes. Intervals are not.
    ///
    /// # Example
    /// ```
    /// use cronfleet_cron::Schedule;
    /// assert!("30 2 * * *".parse::<Schedule>()?.is_fixed_time());
    /// assert!(!"*/5 * * * *".parse::<Schedule>()?.is_fixed_time());
    /// # Ok::<(), cronfleet_cron::Error>(())
    /// ```
    pub fn is_fixed_time(&self) -> bool {
        matches!(&self.inner.kind, Kind::Cron(spec) if spec.fixed_time)
    }

    fn zone_for<'a>(&'a self, at: &'a Zoned) -> &'a TimeZone {
        self.inner.tz.as_ref().unwrap_or_else(|| at.time_zone())
    }

    /// The first fire time strictly after `at`, in the schedule's zone (its prefix) or else
    /// `at`'s zone. `None` when there is none before the end of jiff's range (year 9999).
    ///
    /// # Example
    /// ```
    /// use cronfleet_cron::Schedule;
    /// use jiff::Zoned;
    ///
    /// // 02:30 does not exist on 2026-03-08 in New York: a fixed-time job runs at 03:00.
    /// let s: Schedule = "30 2 * * *".parse()?;
    /// let at: Zoned = "2026-03-07T12:00:00-05:00[America/New_York]".parse()?;
    /// let next = s.next_after(&at).unwrap();
    /// assert_eq!(next.to_string(), "2026-03-08T03:00:00-04:00[America/New_York]");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn next_after(&self, at: &Zoned) -> Option<Zoned> {
        let tz = self.zone_for(at);
        self.step(tz, at, true).map(|ts| ts.to_zoned(tz.clone()))
    }

    /// The last fire time strictly before `at`, in the same zone as [`Schedule::next_after`].
    ///
    /// # Example
    /// ```
    /// use cronfleet_cron::Schedule;
    /// use jiff::Zoned;
    ///
    /// let s: Schedule = "0 0 L * *".parse()?; // midnight on the last day of the month
    /// let at: Zoned = "2028-03-10T00:00:00+00:00[UTC]".parse()?;
    /// assert_eq!(s.prev_before(&at).unwrap().to_string(), "2028-02-29T00:00:00+00:00[UTC]");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn prev_before(&self, at: &Zoned) -> Option<Zoned> {
        let tz = self.zone_for(at);
        self.step(tz, at, false).map(|ts| ts.to_zoned(tz.clone()))
    }

    /// The instant-level step: the next (or previous) fire time as a timestamp in zone `tz`.
    fn step(&self, tz: &TimeZone, at: &Zoned, after: bool) -> Option<Timestamp> {
        let t = at.timestamp();
        let cache = self.inner.segments.as_ref();
        match &self.inner.kind {
            Kind::Cron(spec) if after => zone::next_after(spec, tz, cache, at),
            Kind::Cron(spec) => zone::prev_before(spec, tz, cache, at),
            Kind::Every { interval, anchor: Some(anchor) } => {
                let anchor = anchor.with_time_zone(tz.clone());
                interval.step(&anchor, t, after)
            }
            Kind::Every { interval, anchor: None } => interval.counted_from(tz, t, after),
        }
    }

    /// Whether the schedule fires at `at` exactly.
    ///
    /// For cron expressions this asks whether `at`'s local time (in the schedule's zone)
    /// matches the fields; a DST-shifted fire time (03:00 for a skipped 02:30) does not match,
    /// though [`Schedule::next_after`] returns it. An unanchored interval matches nothing.
    ///
    /// # Example
    /// ```
    /// use cronfleet_cron::Schedule;
    /// let s: Schedule = "0 9 * * MON".parse()?;
    /// assert!(s.matches(&"2026-11-23T09:00:00+00:00[UTC]".parse()?));
    /// assert!(!s.matches(&"2026-11-24T09:00:00+00:00[UTC]".parse()?));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn matches(&self, at: &Zoned) -> bool {
        let tz = self.zone_for(at);
        match &self.inner.kind {
            Kind::Cron(spec) => spec.matches(tz.to_datetime(at.timestamp())),
            Kind::Every { anchor: Some(_), .. } => {
                let t = at.timestamp();
                let Some(before) = t.checked_sub(jiff::SignedDuration::from_nanos(1)).ok() else {
                    return false;
                };
                self.step(tz, &before.to_zoned(tz.clone()), true) == Some(t)
            }
            Kind::Every { anchor: None, .. } => false,
        }
    }

    /// Fire times strictly after `at`, in increasing order.
    ///
    /// # Example
    /// ```
    /// use cronfleet_cron::Schedule;
    /// use jiff::Zoned;
    ///
    /// let s: Schedule = "0 0 9 * * FRI#3".parse()?; // the third Friday of each month
    /// let at: Zoned = "2026-01-01T00:00:00+00:00[UTC]".parse()?;
    /// let days: Vec<String> = s.iter_after(&at).take(3).map(|z| z.date().to_string()).collect();
    /// assert_eq!(days, ["2026-01-16", "2026-02-20", "2026-03-20"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn iter_after(&self, at: &Zoned) -> Iter<'_> {
        Iter { schedule: self, cur: Some(at.clone()), forward: true }
    }

    /// Fire times strictly before `at`, in decreasing order.
    ///
    /// # Example
    /// ```
    /// use cronfleet_cron::Schedule;
    /// use jiff::Zoned;
    ///
    /// let s: Schedule = "@hourly".parse()?;
    /// let at: Zoned = "2026-01-01T10:30:00+00:00[UTC]".parse()?;
    /// let hours: Vec<i8> = s.iter_before(&at).take(3).map(|z| z.hour()).collect();
    /// assert_eq!(hours, [10, 9, 8]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn iter_before(&self, at: &Zoned) -> Iter<'_> {
        Iter { schedule: self, cur: Some(at.clone()), forward: false }
    }

    /// A short English description of when the schedule fires.
    ///
    /// # Example
    /// ```
    /// use cronfleet_cron::Schedule;
    /// assert_eq!("30 9 * * 1-5".parse::<Schedule>()?.describe(), "at 09:30, Monday through Friday");
    /// assert_eq!("*/5 * * * *".parse::<Schedule>()?.describe(), "every 5 minutes");
    /// assert_eq!("@every 1h30m".parse::<Schedule>()?.describe(), "every 1 hour 30 minutes");
    /// # Ok::<(), cronfleet_cron::Error>(())
    /// ```
    pub fn describe(&self) -> String {
        let mut text = match &self.inner.kind {
            Kind::Cron(spec) => describe::cron(spec),
            Kind::Every { interval, anchor } => describe::every(interval, anchor.as_ref()),
        };
        if let Some(name) = self.inner.tz.as_ref().and_then(|tz| tz.iana_name()) {
            text.push_str(&format!(" ({name})"));
        }
        text
    }
}

/// An iterator over fire times, from [`Schedule::iter_after`] or [`Schedule::iter_before`].
///
/// It ends when there are no more fire times within jiff's range (years -9999 to 9999).
///
/// # Example
/// ```
/// use cronfleet_cron::Schedule;
/// use jiff::Zoned;
///
/// let s: Schedule = "0 0 0 1 1 *".parse()?;
/// let at: Zoned = "9997-06-01T00:00:00+00:00[UTC]".parse()?;
/// assert_eq!(s.iter_after(&at).count(), 2); // 9998-01-01 and 9999-01-01
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct Iter<'a> {
    schedule: &'a Schedule,
    cur: Option<Zoned>,
    forward: bool,
}

impl Iterator for Iter<'_> {
    type Item = Zoned;

    fn next(&mut self) -> Option<Zoned> {
        let cur = self.cur.take()?;
        let next = if self.forward {
            self.schedule.next_after(&cur)
        } else {
            self.schedule.prev_before(&cur)
        };
        self.cur.clone_from(&next);
        next
    }
}

impl std::iter::FusedIterator for Iter<'_> {}

/// `Schedule` is shared across threads and tasks: keep it `Send + Sync + 'static`.
const _: () = {
    const fn assert_bounds<T: Clone + Send + Sync + 'static>() {}
    assert_bounds::<Schedule>();
    assert_bounds::<Error>();
};
