//! One zone per view: every time `runs`, `status`, `task ls` and `nodes` print is shown in one
//! zone, named in the column's header (`SLOT (Europe/Berlin)`), to the second. `--tz ZONE` or
//! `--utc` choose it; by default it is the machine's local zone (`TZ`, else `/etc/localtime`),
//! as for `next` and `prev`. `--json` is left as the API gives it.

use clap::Args;
use jiff::{tz::TimeZone, RoundMode, Timestamp, TimestampRound, Unit};

use crate::timearg;

/// `--tz ZONE` and `--utc`.
#[derive(Clone, Debug, Default, Args)]
pub struct ZoneArgs {
    /// Show times in this zone, an IANA name like Europe/Berlin [default: the local zone: TZ,
    /// else /etc/localtime].
    #[arg(long, value_name = "ZONE")]
    tz: Option<String>,
    /// Show times in UTC (as --tz UTC).
    #[arg(long, conflicts_with = "tz")]
    utc: bool,
}

impl ZoneArgs {
    /// The view's zone.
    ///
    /// # Errors
    /// An unknown `--tz`.
    pub fn view(&self) -> Result<View, String> {
        if self.utc {
            return Ok(View::new(TimeZone::UTC));
        }
        match &self.tz {
            Some(name) => {
                let tz = timearg::zone(name).map_err(|e| format!("--tz: {e}"))?;
                let name = tz.iana_name().unwrap_or(name).to_owned();
                Ok(View { tz, name })
            }
            None => Ok(View::local()),
        }
    }
}

/// The zone a view shows its times in, and its name.
#[derive(Clone, Debug)]
pub struct View {
    tz: TimeZone,
    name: String,
}

impl View {
    /// The machine's local zone (`TZ`, else `/etc/localtime`).
    pub fn local() -> View {
        View::new(TimeZone::system())
    }

    fn new(tz: TimeZone) -> View {
        let name = match tz.iana_name() {
            Some(name) => name.to_owned(),
            // jiff's stand-in when there is no zone to find: it behaves as UTC.
            None if tz.is_unknown() => "UTC".to_owned(),
            // A POSIX TZ (`EST5EDT`), or a /etc/localtime that names no zone.
            None => match std::env::var("TZ") {
                Ok(tz) if !tz.trim_start_matches(':').is_empty() => {
                    tz.trim_start_matches(':').to_owned()
                }
                _ => {
                    let abbreviation =
                        tz.to_offset_info(Timestamp::now()).abbreviation().to_owned();
                    format!("local, {abbreviation}")
                }
            },
        };
        View { tz, name }
    }

    /// A column's header naming the zone: `SLOT (Europe/Berlin)`.
    pub fn heading(&self, column: &str) -> String {
        format!("{column} ({})", self.name)
    }

    /// An instant in this zone, RFC 3339 with its offset, to the second (a fraction is
    /// dropped): `2026-05-01T10:00:00+02:00`.
    pub fn at(&self, ts: Timestamp) -> String {
        let second = TimestampRound::new().smallest(Unit::Second).mode(RoundMode::Floor);
        let ts = ts.round(second).unwrap_or(ts);
        timearg::rfc3339(&ts.to_zoned(self.tz.clone()))
    }

    /// A time as the API or the store writes it (RFC 3339, in any offset, perhaps with a
    /// fraction) shown in this zone; text that is not a time is kept as it is.
    pub fn show(&self, text: &str) -> String {
        match text.parse::<Timestamp>() {
            Ok(ts) => self.at(ts),
            Err(_) => text.to_owned(),
        }
    }
}

/// The width of a column: its header's, or its widest value's.
pub fn width<'a>(heading: &str, values: impl IntoIterator<Item = &'a str>) -> usize {
    values.into_iter().map(|v| v.chars().count()).fold(heading.chars().count(), usize::max)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(name: &str) -> View {
        ZoneArgs { tz: Some(name.to_owned()), utc: false }.view().unwrap()
    }

    #[test]
    fn times_are_shown_in_the_views_zone_to_the_second() {
        let berlin = view("Europe/Berlin");
        assert_eq!(berlin.heading("SLOT"), "SLOT (Europe/Berlin)");
        assert_eq!(berlin.show("2026-07-01T08:00:00+00:00"), "2026-07-01T10:00:00+02:00");
        assert_eq!(berlin.show("2026-12-01T08:00:00-05:00"), "2026-12-01T14:00:00+01:00");
        // Fractions are dropped, not rounded up: the time shown has already come.
        assert_eq!(berlin.show("2026-07-01T08:00:59.999999999Z"), "2026-07-01T10:00:59+02:00");
        assert_eq!(berlin.show("2026-07-01T08:00:00.5+01:00"), "2026-07-01T09:00:00+02:00");
        assert_eq!(berlin.show("paused"), "paused");
        let utc = ZoneArgs { tz: None, utc: true }.view().unwrap();
        assert_eq!(utc.heading("NEXT"), "NEXT (UTC)");
        assert_eq!(utc.show("2026-07-01T10:00:00+02:00"), "2026-07-01T08:00:00+00:00");
        let err = ZoneArgs { tz: Some("Europe/Berln".into()), utc: false }.view().unwrap_err();
        assert!(err.starts_with("--tz: unknown time zone \"Europe/Berln\""), "{err}");
    }

    #[test]
    fn columns_are_as_wide_as_their_widest_value() {
        assert_eq!(width("NEXT (UTC)", ["2026-07-01T08:00:00+00:00", "-"]), 25);
        assert_eq!(width("NEXT (America/Argentina/Buenos_Aires)", ["-"]), 37);
    }
}
