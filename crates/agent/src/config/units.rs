//! Durations (`10m`, `1h30m`, `90s`) and sizes (`256KiB`) written in a task file.

use jiff::SignedDuration;

/// Why a duration or size is not one.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    /// Zero or negative.
    #[error("{0:?} must be longer than zero")]
    NotPositive(String),
    /// Not a duration at all.
    #[error("{0:?} is not a duration; write it like 30s, 10m, 1h30m or 7d")]
    NotADuration(String),
    /// Longer than a duration can be.
    #[error("{0:?} is too long")]
    TooLong(String),
    /// Not a size, or too large.
    #[error("{0:?} is not a size; write it like 512B, 64KiB or 1MiB")]
    NotASize(String),
}

/// A positive duration in jiff's friendly format: `10s`, `10m`, `1h30m`, `2 hours`, `30d`
/// (a day here is 24 hours: these are waits and windows, not times of day).
pub fn duration(text: &str) -> Result<SignedDuration, UnitError> {
    let parsed = text.parse::<SignedDuration>().ok().or_else(|| {
        let span = text.parse::<jiff::Span>().ok()?;
        span.to_duration(jiff::SpanRelativeTo::days_are_24_hours()).ok()
    });
    match parsed {
        Some(d) if d.is_positive() => Ok(d),
        Some(_) => Err(UnitError::NotPositive(text.to_owned())),
        None => Err(UnitError::NotADuration(text.to_owned())),
    }
}

/// A size in bytes: `512`, `512B`, `64KB`, `256KiB`, `1MiB`, `1GB` (KB = 1000, KiB = 1024).
pub fn size(text: &str) -> Result<u64, UnitError> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let bad = || UnitError::NotASize(text.to_owned());
    let n: u64 = num.parse().map_err(|_| bad())?;
    let factor: u64 = match unit.trim() {
        "" | "B" => 1,
        "KB" | "kB" => 1000,
        "KiB" => 1024,
        "MB" => 1000 * 1000,
        "MiB" => 1024 * 1024,
        "GB" => 1000 * 1000 * 1000,
        "GiB" => 1024 * 1024 * 1024,
        _ => return Err(bad()),
    };
    n.checked_mul(factor).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(duration("10m").unwrap(), SignedDuration::from_mins(10));
        assert_eq!(duration("1h30m").unwrap(), SignedDuration::from_mins(90));
        assert_eq!(duration("90s").unwrap(), SignedDuration::from_secs(90));
        assert_eq!(duration("30d").unwrap(), SignedDuration::from_hours(30 * 24));
        assert_eq!(duration("1d12h").unwrap(), SignedDuration::from_hours(36));
        assert!(duration("0s").is_err());
        assert!(duration("ten minutes").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(size("256KiB"), Ok(256 * 1024));
        assert_eq!(size("1MB"), Ok(1_000_000));
        assert_eq!(size("512"), Ok(512));
        assert!(size("12 parsecs").is_err());
        assert!(size("99999999999999GiB").is_err());
    }
}
