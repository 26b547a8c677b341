//! The one error type of this crate: what part of an expression is wrong, where, and why.

use std::fmt;

/// Which part of an expression an [`Error`] is about.
///
/// # Example
/// ```
/// use cronfleet_cron::{ErrorKind, Schedule};
///
/// let err = "0 60 * * *".parse::<Schedule>().unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::Hour);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The seconds field (first of six).
    Second,
    /// The minute field.
    Minute,
    /// The hour field.
    Hour,
    /// The day-of-month field.
    DayOfMonth,
    /// The month field.
    Month,
    /// The day-of-week field.
    DayOfWeek,
    /// A step (`/n`) that is zero or not a number. (Any larger step is accepted.)
    Step,
    /// A range (`a-b`) whose start is after its end, or that is malformed.
    Range,
    /// An unknown `@descriptor`.
    Descriptor,
    /// A bad `@every` interval, or an anchor given to a schedule that is not `@every`.
    Interval,
    /// An unknown or malformed time zone in a `CRON_TZ=`/`TZ=` prefix.
    TimeZone,
    /// Not 5 or 6 fields.
    FieldCount,
    /// A well-formed expression that can never fire, such as `0 0 30 2 *`.
    NeverFires,
}

impl ErrorKind {
    /// A short lowercase name of the part, as used in messages ("day-of-month").
    ///
    /// # Example
    /// ```
    /// assert_eq!(cronfleet_cron::ErrorKind::DayOfWeek.name(), "day-of-week");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Second => "second",
            ErrorKind::Minute => "minute",
            ErrorKind::Hour => "hour",
            ErrorKind::DayOfMonth => "day-of-month",
            ErrorKind::Month => "month",
            ErrorKind::DayOfWeek => "day-of-week",
            ErrorKind::Step => "step",
            ErrorKind::Range => "range",
            ErrorKind::Descriptor => "descriptor",
            ErrorKind::Interval => "interval",
            ErrorKind::TimeZone => "time zone",
            ErrorKind::FieldCount => "field count",
            ErrorKind::NeverFires => "never fires",
        }
    }
}

/// An expression that could not be parsed, or a schedule that cannot be built.
///
/// `Display` prints the reason, then the expression with a caret under the fault:
///
/// ```
/// let err = "0 60 * * *".parse::<cronfleet_cron::Schedule>().unwrap_err();
/// assert_eq!(
///     err.to_string(),
///     "invalid hour: 60 is out of range 0-23\n  0 60 * * *\n    ^^"
/// );
/// assert_eq!(err.offset(), 2);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    expr: String,
    offset: usize,
    len: usize,
    reason: String,
}

impl Error {
    pub(crate) fn new(
        kind: ErrorKind,
        expr: &str,
        offset: usize,
        len: usize,
        reason: impl Into<String>,
    ) -> Error {
        let offset = offset.min(expr.len());
        Error { kind, expr: expr.to_owned(), offset, len: len.max(1), reason: reason.into() }
    }

    /// Which part of the expression is wrong.
    ///
    /// # Example
    /// ```
    /// use cronfleet_cron::{ErrorKind, Schedule};
    /// let err = "*/0 * * * *".parse::<Schedule>().unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::Step);
    /// ```
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The byte offset of the fault in the expression.
    ///
    /// # Example
    /// ```
    /// let err = "0 0 * * FOO".parse::<cronfleet_cron::Schedule>().unwrap_err();
    /// assert_eq!(err.offset(), 8);
    /// ```
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// Why it is wrong, without the expression and caret.
    ///
    /// # Example
    /// ```
    /// let err = "0 0 * 13 *".parse::<cronfleet_cron::Schedule>().unwrap_err();
    /// assert_eq!(err.reason(), "13 is out of range 1-12");
    /// ```
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// The expression the error is about.
    ///
    /// # Example
    /// ```
    /// let err = "@bogus".parse::<cronfleet_cron::Schedule>().unwrap_err();
    /// assert_eq!(err.expression(), "@bogus");
    /// ```
    pub fn expression(&self) -> &str {
        &self.expr
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let head = match self.kind {
            ErrorKind::NeverFires => "expression never fires".to_owned(),
            kind => format!("invalid {}", kind.name()),
        };
        write!(f, "{head}: {}", self.reason)?;
        if self.expr.is_empty() {
            return Ok(());
        }
        // Count characters, not bytes, so the caret lands under the fault for non-ASCII input.
        let col = self.expr.get(..self.offset).map_or(self.offset, |s| s.chars().count());
        let width = self
            .expr
            .get(self.offset..(self.offset + self.len).min(self.expr.len()))
            .map_or(1, |fault| fault.chars().count().max(1));
        write!(f, "\n  {}\n  {}{}", self.expr, " ".repeat(col), "^".repeat(width))
    }
}

impl std::error::Error for Error {}
