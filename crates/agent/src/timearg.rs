//! Instants and zones given on the command line.

use jiff::{civil, tz::TimeZone, Timestamp, Zoned};

/// Why a zone or an instant given on the command line (or in a request) is not one.
#[derive(Debug, thiserror::Error)]
pub enum TimeArgError {
    /// A zone name the time zone database does not know.
    #[error("unknown time zone {0:?} (IANA names like Europe/Berlin)")]
    UnknownZone(String),
    /// A local time that does not exist in the zone (jiff says why).
    #[error("invalid time {text:?}: {source}")]
    Invalid {
        /// The text.
        text: String,
        /// Why.
        source: jiff::Error,
    },
    /// None of the accepted forms.
    #[error(
        "invalid time {0:?}: expected RFC 3339 (2026-03-08T01:30:00-05:00), \
         with a zone (2026-03-08T01:30:00-05:00[America/New_York]), \
         or a local date and time (2026-03-08T01:30:00)"
    )]
    Form(String),
}

/// Looks up an IANA time zone name such as `Europe/Berlin`.
///
/// # Errors
/// A message naming the zone when it is unknown.
pub fn zone(name: &str) -> Result<TimeZone, TimeArgError> {
    jiff::tz::db().get(name).map_err(|_| TimeArgError::UnknownZone(name.to_owned()))
}

/// Parses an instant: RFC 9557 (`2026-03-08T01:30:00-05:00[America/New_York]`), RFC 3339
/// (`2026-03-08T06:30:00Z`, `...-05:00`), or a civil date and time without offset
/// (`2026-03-08T01:30`, `2026-03-08 01:30:00`, `2026-03-08`) read in `tz`.
///
/// Returns the instant in `tz`, or in the zone written in the text when `tz` is `None` and the
/// text names one; otherwise in `default`.
///
/// # Errors
/// A message saying which forms are accepted.
pub fn instant(
    text: &str,
    tz: Option<&TimeZone>,
    default: &TimeZone,
) -> Result<Zoned, TimeArgError> {
    if let Ok(z) = text.parse::<Zoned>() {
        return Ok(match tz {
            Some(tz) => z.with_time_zone(tz.clone()),
            None => z,
        });
    }
    let tz = tz.unwrap_or(default);
    if let Ok(ts) = text.parse::<Timestamp>() {
        return Ok(ts.to_zoned(tz.clone()));
    }
    let civil = text
        .parse::<civil::DateTime>()
        .or_else(|_| text.parse::<civil::Date>().map(|d| d.to_datetime(civil::Time::midnight())));
    match civil {
        Ok(dt) => dt
            .to_zoned(tz.clone())
            .map_err(|source| TimeArgError::Invalid { text: text.to_owned(), source }),
        Err(_) => Err(TimeArgError::Form(text.to_owned())),
    }
}

/// RFC 3339 with the offset, seconds always shown, fractions only when present.
pub fn rfc3339(z: &Zoned) -> String {
    z.timestamp().display_with_offset(z.offset()).to_string()
}
