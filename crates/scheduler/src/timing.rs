//! When an entry fires: a schedule from `cronfleet-cron`, or one instant.

use std::fmt;

use cronfleet_cron::Schedule;
use jiff::{tz::TimeZone, SignedDuration, Zoned};

/// When an entry fires.
///
/// # Example
/// ```
/// use cronfleet_scheduler::Timing;
///
/// let every_minute: Timing = "0 * * * * *".parse::<cronfleet_cron::Schedule>()?.into();
/// let once: Timing = "2026-12-24T18:00:00+01:00[Europe/Berlin]".parse::<jiff::Zoned>()?.into();
/// assert_eq!(once.to_string(), "once at 2026-12-24T18:00:00+01:00[Europe/Berlin]");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub enum Timing {
    /// A cron expression or an `@every` interval (anchored or not).
    Schedule(Schedule),
    /// A single instant (a one-shot entry, removed after it fires).
    Once(Zoned),
}

impl Timing {
    /// Parses a schedule expression (anything `cronfleet-cron` accepts).
    ///
    /// # Errors
    /// The expression's parse error.
    ///
    /// # Example
    /// ```
    /// let t = cronfleet_scheduler::Timing::parse("*/10 * * * * *")?;
    /// # Ok::<(), cronfleet_cron::Error>(())
    /// ```
    pub fn parse(expr: &str) -> Result<Timing, cronfleet_cron::Error> {
        Ok(Timing::Schedule(expr.parse()?))
    }

    /// Anchors an `@every` schedule to `anchor` (see [`cronfleet_cron::Schedule::with_anchor`]).
    ///
    /// # Errors
    /// When this is not an `@every` schedule.
    pub fn anchored(self, anchor: Zoned) -> Result<Timing, cronfleet_cron::Error> {
        match self {
            Timing::Schedule(s) => Ok(Timing::Schedule(s.with_anchor(anchor)?)),
            once @ Timing::Once(_) => Ok(once),
        }
    }

    /// The latest fire time strictly before `at`.
    pub(crate) fn latest_before(&self, at: &Zoned) -> Option<Zoned> {
        match self {
            Timing::Schedule(s) => s.prev_before(at),
            Timing::Once(_) => None,
        }
    }

    /// Gives a schedule without a zone of its own the scheduler's default zone.
    pub(crate) fn in_zone(self, tz: &TimeZone) -> Timing {
        match self {
            Timing::Schedule(s) if s.time_zone().is_none() => {
                Timing::Schedule(s.in_time_zone(tz.clone()))
            }
            other => other,
        }
    }

    pub(crate) fn next_after(&self, at: &Zoned) -> Option<Zoned> {
        match self {
            Timing::Schedule(s) => s.next_after(at),
            Timing::Once(when) => (when > at).then(|| when.clone()),
        }
    }

    /// The latest fire time at or before `at`.
    pub(crate) fn latest_up_to(&self, at: &Zoned) -> Option<Zoned> {
        match self {
            Timing::Schedule(s) => {
                s.prev_before(&at.checked_add(SignedDuration::from_nanos(1)).ok()?)
            }
            Timing::Once(when) => (when <= at).then(|| when.clone()),
        }
    }

    pub(crate) fn is_once(&self) -> bool {
        matches!(self, Timing::Once(_))
    }
}

impl From<Schedule> for Timing {
    fn from(s: Schedule) -> Timing {
        Timing::Schedule(s)
    }
}

impl From<Zoned> for Timing {
    fn from(at: Zoned) -> Timing {
        Timing::Once(at)
    }
}

impl fmt::Display for Timing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Timing::Schedule(s) => write!(f, "{s}"),
            Timing::Once(at) => write!(f, "once at {at}"),
        }
    }
}
