//! The expression parser: text to [`Parsed`], with errors that point at the fault.

use std::fmt::Write as _;

use jiff::tz::TimeZone;

use crate::{
    error::{Error, ErrorKind},
    every::{Interval, MAX_DAYS},
    spec::{CronSpec, DaySpec},
};

/// What an expression says, before it becomes a `Schedule`.
pub(crate) struct Parsed {
    pub tz: Option<TimeZone>,
    pub body: Body,
    /// The canonical text: one space between parts, names as numbers, always six fields.
    pub canonical: String,
}

pub(crate) enum Body {
    Cron(CronSpec),
    Every(Interval),
}

/// One field's rules.
struct FieldDef {
    kind: ErrorKind,
    min: u32,
    max: u32,
    /// Names accepted for values, starting at `names_from`.
    names: &'static [&'static str],
    names_from: u32,
}

const SECOND: FieldDef =
    FieldDef { kind: ErrorKind::Second, min: 0, max: 59, names: &[], names_from: 0 };
const MINUTE: FieldDef =
    FieldDef { kind: ErrorKind::Minute, min: 0, max: 59, names: &[], names_from: 0 };
const HOUR: FieldDef =
    FieldDef { kind: ErrorKind::Hour, min: 0, max: 23, names: &[], names_from: 0 };
const DOM: FieldDef =
    FieldDef { kind: ErrorKind::DayOfMonth, min: 1, max: 31, names: &[], names_from: 0 };
const MONTH: FieldDef = FieldDef {
    kind: ErrorKind::Month,
    min: 1,
    max: 12,
    names: &["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"],
    names_from: 1,
};
/// 7 is accepted as Sunday and folded onto 0.
const DOW: FieldDef = FieldDef {
    kind: ErrorKind::DayOfWeek,
    min: 0,
    max: 7,
    names: &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"],
    names_from: 0,
};

/// A token and its byte offset in the whole expression.
#[derive(Clone, Copy)]
struct Tok<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Tok<'a> {
    fn slice(self, from: usize, to: usize) -> Tok<'a> {
        Tok { text: &self.text[from..to], at: self.at + from }
    }

    fn split_once(self, c: char) -> Option<(Tok<'a>, Tok<'a>)> {
        let i = self.text.find(c)?;
        Some((self.slice(0, i), self.slice(i + 1, self.text.len())))
    }
}

struct Parser<'a> {
    expr: &'a str,
    canonical: String,
}

impl<'a> Parser<'a> {
    fn err(&self, kind: ErrorKind, tok: Tok<'_>, reason: impl Into<String>) -> Error {
        Error::new(kind, self.expr, tok.at, tok.text.len(), reason)
    }

    /// A number or a name within `def`'s range.
    fn value(&self, def: &FieldDef, tok: Tok<'_>) -> Result<u32, Error> {
        let t = tok.text;
        let what = || {
            let names = if def.names.is_empty() {
                String::new()
            } else {
                format!(" or a name {}-{}", def.names[0], def.names[def.names.len() - 1])
            };
            format!("expected a number {}-{}{names}", def.min, def.max)
        };
        if t.is_empty() {
            return Err(self.err(def.kind, tok, format!("{} here", what())));
        }
        if t.bytes().all(|b| b.is_ascii_digit()) {
            let n = if t.len() > 4 { u32::MAX } else { t.parse::<u32>().unwrap_or(u32::MAX) };
            if n < def.min || n > def.max {
                return Err(self.err(
                    def.kind,
                    tok,
                    format!("{t} is out of range {}-{}", def.min, def.max),
                ));
            }
            return Ok(n);
        }
        if let Some(i) = name_index(def, t) {
            return Ok(def.names_from + i as u32);
        }
        // Full names ("Wednesday", "July") are refused as Vixie cron and cronie refuse them,
        // so that a schedule stays portable; the message names the short form.
        let short = t.get(..3).filter(|_| t.bytes().all(|b| b.is_ascii_alphabetic()));
        if let Some(i) = short.and_then(|s| name_index(def, s)) {
            return Err(self.err(
                def.kind,
                tok,
                format!("{}, not {t:?}; names are three letters: write {}", what(), def.names[i]),
            ));
        }
        Err(self.err(def.kind, tok, format!("{}, not {t:?}", what())))
    }

    /// A step of 1 or more. Any size is accepted, as in Vixie cron, cronie and Debian: a step
    /// beyond the range leaves its start alone (`*/100,1-7` in days is the "first week" idiom).
    fn step(&self, tok: Tok<'_>) -> Result<u32, Error> {
        let t = tok.text;
        if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
            return Err(self.err(
                ErrorKind::Step,
                tok,
                format!("a step after '/' must be a number, not {t:?}"),
            ));
        }
        // Saturates: every step above 64 means the same for fields of at most 60 values.
        let n = t.parse::<u32>().unwrap_or(u32::MAX);
        if n == 0 {
            return Err(self.err(ErrorKind::Step, tok, "a step must be 1 or more, not 0"));
        }
        Ok(n)
    }

    /// One field: bits of plain values, with the day-field extras filled into `days`.
    fn field(&mut self, def: &FieldDef, tok: Tok<'_>, days: &mut DaySpec) -> Result<u64, Error> {
        let mut mask = 0u64;
        let mut rest = Some(tok);
        let mut first = true;
        while let Some(cur) = rest {
            let (item, tail) = match cur.split_once(',') {
                Some((item, tail)) => (item, Some(tail)),
                None => (cur, None),
            };
            rest = tail;
            if !first {
                self.canonical.push(',');
            }
            first = false;
            if item.text.is_empty() {
                return Err(self.err(def.kind, item, "empty list item"));
            }
            mask |= self.item(def, item, days)?;
        }
        if def.kind == ErrorKind::DayOfWeek && mask & (1 << 7) != 0 {
            mask = (mask | 1) & !(1 << 7);
        }
        Ok(mask)
    }

    fn item(&mut self, def: &FieldDef, item: Tok<'_>, days: &mut DaySpec) -> Result<u64, Error> {
        let text = item.text;
        let ends_with =
            |c: u8| text.len() > 1 && text.as_bytes()[text.len() - 1].eq_ignore_ascii_case(&c);
        let dom = def.kind == ErrorKind::DayOfMonth;
        let dow = def.kind == ErrorKind::DayOfWeek;
        if item.text == "?" {
            if !(dom || dow) {
                return Err(self.err(
                    def.kind,
                    item,
                    "'?' is only allowed in the day-of-month and day-of-week fields",
                ));
            }
            self.canonical.push('*');
            return Ok(range_bits(def.min, if dow { 6 } else { def.max }, 1));
        }
        if dom && text.eq_ignore_ascii_case("L") {
            days.last_day = true;
            self.canonical.push('L');
            return Ok(0);
        }
        if dom && text.eq_ignore_ascii_case("LW") {
            days.last_weekday = true;
            self.canonical.push_str("LW");
            return Ok(0);
        }
        if dom && ends_with(b'W') {
            let n = self.value(def, item.slice(0, text.len() - 1))?;
            days.nearest_weekday |= 1 << n;
            let _ = write!(self.canonical, "{n}W");
            return Ok(0);
        }
        if dow && ends_with(b'L') {
            let wd = self.value(def, item.slice(0, text.len() - 1))? % 7;
            days.last_dow |= 1 << wd;
            let _ = write!(self.canonical, "{wd}L");
            return Ok(0);
        }
        if dow {
            if let Some((wd, k)) = item.split_once('#') {
                let wd = self.value(def, wd)? % 7;
                let n = match k.text {
                    "1" | "2" | "3" | "4" | "5" => u32::from(k.text.as_bytes()[0] - b'0'),
                    _ => {
                        return Err(self.err(
                            def.kind,
                            k,
                            format!("expected 1-5 after '#' (the k-th weekday), not {:?}", k.text),
                        ))
                    }
                };
                days.nth_dow[wd as usize] |= 1 << n;
                let _ = write!(self.canonical, "{wd}#{n}");
                return Ok(0);
            }
        }
        if has_modifier(text) && text.bytes().any(|b| b.is_ascii_digit()) {
            return Err(self.err(
                def.kind,
                item,
                format!("{:?} is not allowed in the {} field", item.text, def.kind.name()),
            ));
        }

        let (range, step) = match item.split_once('/') {
            Some((range, step)) => (range, Some(self.step(step)?)),
            None => (item, None),
        };
        let (lo, hi) = if range.text == "*" {
            // Day-of-week `*` is 0-6: 7 is only another name for Sunday.
            (def.min, if dow { 6 } else { def.max })
        } else if let Some((a, b)) = range.split_once('-') {
            let lo = self.value(def, a)?;
            let mut hi = self.value(def, b)?;
            // `MON-SUN`, `FRI-SUN`: SUN ending a range that starts after Sunday is day 7.
            if dow && hi == 0 && lo > 0 && b.text.eq_ignore_ascii_case("SUN") {
                hi = 7;
            }
            if lo > hi {
                return Err(self.backward(def, range, (a, b), (lo, hi)));
            }
            (lo, hi)
        } else {
            let lo = self.value(def, range)?;
            // `a/n` runs from a to the field's end.
            (lo, if step.is_some() { def.max } else { lo })
        };
        let step = step.unwrap_or(1);
        let c = &mut self.canonical;
        let _ = match (range.text == "*", lo == hi, step) {
            (true, _, 1) => write!(c, "*"),
            (true, _, n) => write!(c, "*/{n}"),
            (false, true, _) => write!(c, "{}", if dow { lo % 7 } else { lo }),
            (false, false, 1) => write!(c, "{lo}-{hi}"),
            (false, false, n) => write!(c, "{lo}-{hi}/{n}"),
        };
        Ok(range_bits(lo, hi, step))
    }

    /// A range that runs backwards, with a hint that splits it in two. Names stay names; in
    /// the day-of-week field the pieces meet at Saturday and Sunday (`FRI-SAT,SUN-MON`).
    fn backward(
        &self,
        def: &FieldDef,
        range: Tok<'_>,
        ends: (Tok<'_>, Tok<'_>),
        (lo, hi): (u32, u32),
    ) -> Error {
        let dow = def.kind == ErrorKind::DayOfWeek;
        let named = |t: Tok<'_>| !def.names.is_empty() && name_index(def, t.text).is_some();
        let by_name = named(ends.0) || named(ends.1);
        // Day-of-week 7 shows as SUN.
        let show = |v: u32| {
            if by_name {
                def.names[((v - def.names_from) % def.names.len() as u32) as usize].to_owned()
            } else {
                v.to_string()
            }
        };
        let piece = |a: u32, b: u32| {
            if a == b {
                show(a)
            } else {
                format!("{}-{}", show(a), show(b))
            }
        };
        let (a, b) = (ends.0.text, ends.1.text);
        let head = format!("range {a}-{b} in the {} field starts after it ends", def.kind.name());
        let hint = match (dow, lo, hi) {
            // 7 is Sunday only where a range ends.
            (true, 7, _) => {
                format!("; 7 is Sunday only at the end of a range: write {}", piece(0, hi))
            }
            (true, _, 0) => format!("; write it as {}", piece(lo, 7)),
            (true, _, _) => format!("; write it as a list, e.g. {},{}", piece(lo, 6), piece(0, hi)),
            _ => {
                format!("; write it as a list, e.g. {},{}", piece(lo, def.max), piece(def.min, hi))
            }
        };
        self.err(ErrorKind::Range, range, head + &hint)
    }
}

fn range_bits(lo: u32, hi: u32, step: u32) -> u64 {
    let mut mask = 0u64;
    let mut v = lo;
    while v <= hi {
        mask |= 1 << v;
        // A step beyond the field's end stops here, without overflowing.
        v = v.saturating_add(step);
    }
    mask
}

/// The position of name `t` (any case) in `def`'s names.
fn name_index(def: &FieldDef, t: &str) -> Option<usize> {
    def.names.iter().position(|n| n.eq_ignore_ascii_case(t))
}

/// Whether `text` holds an `L`, `W` or `#` modifier (`5W`, `L-2`, `1#2`) in an item that cannot
/// take one. Only the words `L`, `W` and `LW` are modifiers: the letters of `WED-7`, `JUL/2` and
/// `6-jul` belong to names, and `Wednesday` is a misspelt name, reported as such.
fn has_modifier(text: &str) -> bool {
    // Most items have none of these bytes: keep the common case to one pass.
    if !text.bytes().any(|b| matches!(b.to_ascii_uppercase(), b'L' | b'W' | b'#')) {
        return false;
    }
    text.contains('#')
        || text
            .split(|c: char| !c.is_ascii_alphabetic())
            .any(|word| ["L", "W", "LW"].iter().any(|m| m.eq_ignore_ascii_case(word)))
}

/// Splits on ASCII whitespace, keeping byte offsets.
fn tokens(expr: &str) -> impl Iterator<Item = Tok<'_>> {
    let mut at = 0;
    expr.split(|c: char| c.is_ascii_whitespace()).filter_map(move |part| {
        let tok = Tok { text: part, at };
        at += part.len() + 1;
        (!part.is_empty()).then_some(tok)
    })
}

/// At most this many tokens are kept: a prefix, six fields and one too many.
const MAX_TOKENS: usize = 8;

pub(crate) fn parse(expr: &str) -> Result<Parsed, Error> {
    let mut buf = [Tok { text: "", at: 0 }; MAX_TOKENS];
    let mut count = 0;
    for tok in tokens(expr) {
        if count < MAX_TOKENS {
            buf[count] = tok;
        }
        count += 1;
    }
    let kept = count.min(MAX_TOKENS);
    let mut toks: &[Tok<'_>] = &buf[..kept];
    let mut p = Parser { expr, canonical: String::with_capacity(expr.len() + 8) };
    let mut tz = None;
    if let Some(first) = toks.first().copied() {
        let name = first.text.strip_prefix("CRON_TZ=").or_else(|| first.text.strip_prefix("TZ="));
        if let Some(name) = name {
            let ztok = first.slice(first.text.len() - name.len(), first.text.len());
            tz = Some(zone(expr, ztok)?);
            p.canonical.push_str(&first.text[..first.text.len() - name.len()]);
            p.canonical.push_str(name);
            p.canonical.push(' ');
            toks = &toks[1..];
        }
    }
    let Some(first) = toks.first().copied() else {
        let at = expr.len();
        return Err(Error::new(
            ErrorKind::FieldCount,
            expr,
            at,
            1,
            "empty expression: expected 5 or 6 fields or an @descriptor",
        ));
    };
    if first.text.starts_with('@') {
        let body = descriptor(&mut p, toks)?;
        return Ok(Parsed { tz, body, canonical: p.canonical });
    }
    if toks.len() != 5 && toks.len() != 6 {
        let extra = toks.get(6).copied().unwrap_or(toks[toks.len() - 1]);
        let found = count - (kept - toks.len());
        // Quartz and some libraries put a year last; a schedule here repeats every year.
        let year = if found == 7 { "; a 7th field (a year) is not supported" } else { "" };
        return Err(p.err(
            ErrorKind::FieldCount,
            extra,
            format!(
                "expected 5 fields (minute hour day-of-month month day-of-week) or 6 (seconds \
                 first), found {found}{year}"
            ),
        ));
    }
    let has_seconds = toks.len() == 6;
    let mut days = DaySpec::default();
    let seconds = if has_seconds {
        let s = p.field(&SECOND, toks[0], &mut days)?;
        p.canonical.push(' ');
        s
    } else {
        p.canonical.push_str("0 ");
        1
    };
    let f = &toks[usize::from(has_seconds)..];
    let minutes = p.field(&MINUTE, f[0], &mut days)?;
    p.canonical.push(' ');
    let hours = p.field(&HOUR, f[1], &mut days)?;
    p.canonical.push(' ');
    days.dom = p.field(&DOM, f[2], &mut days)? as u32;
    p.canonical.push(' ');
    let months = p.field(&MONTH, f[3], &mut days)? as u16;
    p.canonical.push(' ');
    days.dow = p.field(&DOW, f[4], &mut days)? as u8;

    let starts_star = |t: Tok<'_>| t.text.starts_with(['*', '?']);
    days.dom_star = starts_star(f[2]);
    days.dow_star = starts_star(f[4]);
    let fixed_time =
        !((has_seconds && starts_star(toks[0])) || starts_star(f[0]) || starts_star(f[1]));
    let spec = CronSpec::new(
        seconds,
        minutes,
        u32::try_from(hours).unwrap_or(0),
        months,
        days,
        fixed_time,
    );
    if !spec.can_fire() {
        let from = f[2].at;
        let to = f[4].at + f[4].text.len();
        return Err(Error::new(
            ErrorKind::NeverFires,
            expr,
            from,
            to - from,
            "no date matches these day-of-month, month and day-of-week fields in any year",
        ));
    }
    Ok(Parsed { tz, body: Body::Cron(spec), canonical: p.canonical })
}

fn zone(expr: &str, tok: Tok<'_>) -> Result<TimeZone, Error> {
    if tok.text.is_empty() {
        return Err(Error::new(ErrorKind::TimeZone, expr, tok.at, 1, "missing time zone name"));
    }
    // IANA names only: a POSIX TZ string like "EST5EDT,M3.2.0,M11.1.0" is not a name.
    if tok.text.starts_with(['/', '.']) || tok.text.contains("..") {
        return Err(Error::new(
            ErrorKind::TimeZone,
            expr,
            tok.at,
            tok.text.len(),
            format!("{:?} is not an IANA time zone name", tok.text),
        ));
    }
    jiff::tz::db().get(tok.text).map_err(|_| {
        Error::new(
            ErrorKind::TimeZone,
            expr,
            tok.at,
            tok.text.len(),
            format!("unknown time zone {:?} (IANA names like Europe/Berlin)", tok.text),
        )
    })
}

fn descriptor(p: &mut Parser<'_>, toks: &[Tok<'_>]) -> Result<Body, Error> {
    let head = toks[0];
    let name = head.text.to_ascii_lowercase();
    let fields = match name.as_str() {
        "@yearly" | "@annually" => Some(("@yearly", "0 0 0 1 1 *")),
        "@monthly" => Some(("@monthly", "0 0 0 1 * *")),
        "@weekly" => Some(("@weekly", "0 0 0 * * 0")),
        "@daily" | "@midnight" => Some(("@daily", "0 0 0 * * *")),
        "@hourly" => Some(("@hourly", "0 0 * * * *")),
        "@every" => None,
        _ => {
            return Err(p.err(
                ErrorKind::Descriptor,
                head,
                format!(
                    "unknown descriptor {:?}; expected @yearly, @annually, @monthly, @weekly, \
                     @daily, @midnight, @hourly or @every DURATION",
                    head.text
                ),
            ))
        }
    };
    if let Some((canonical, fields)) = fields {
        if let Some(extra) = toks.get(1) {
            return Err(p.err(
                ErrorKind::Descriptor,
                *extra,
                format!("{canonical} takes nothing after it"),
            ));
        }
        p.canonical.push_str(canonical);
        return Ok(parse(fields)?.body);
    }
    let Some(dur) = toks.get(1).copied() else {
        let at = head.at + head.text.len();
        return Err(Error::new(
            ErrorKind::Interval,
            p.expr,
            at,
            1,
            "@every needs a duration, e.g. @every 1h30m",
        ));
    };
    if let Some(extra) = toks.get(2) {
        return Err(p.err(
            ErrorKind::Interval,
            *extra,
            "@every takes one duration with no spaces, e.g. @every 1h30m",
        ));
    }
    let interval = interval(p, dur)?;
    p.canonical.push_str("@every ");
    p.canonical.push_str(&interval.to_string());
    Ok(Body::Every(interval))
}

/// `1h30m`, `7d`, `2w`, `90s`: units w d h m s, each at most once, total above zero.
fn interval(p: &Parser<'_>, tok: Tok<'_>) -> Result<Interval, Error> {
    let bad = |at: Tok<'_>, why: String| p.err(ErrorKind::Interval, at, why);
    let mut days: i64 = 0;
    let mut seconds: i64 = 0;
    let mut seen = String::new();
    let bytes = tok.text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return Err(bad(
                tok.slice(start, tok.text.len()),
                format!(
                    "expected a number in duration {:?} (units w d h m s, e.g. 1h30m)",
                    tok.text
                ),
            ));
        }
        let num_tok = tok.slice(start, i);
        let n: i64 =
            if i - start > 9 { i64::MAX } else { num_tok.text.parse().unwrap_or(i64::MAX) };
        let unit_at = i;
        // A unit is one ASCII letter; anything else (including non-ASCII) is refused here.
        let unit = bytes.get(i).copied().filter(u8::is_ascii_alphabetic);
        // Whole characters only: the byte after a number may start a multi-byte one.
        let unit_len = tok.text[unit_at..].chars().next().map_or(0, char::len_utf8);
        let unit_tok = tok.slice(unit_at, unit_at + unit_len);
        let Some(unit) = unit else {
            return Err(bad(num_tok, format!("{n} needs a unit: w, d, h, m or s")));
        };
        i += 1;
        if seen.contains(unit as char) {
            return Err(bad(unit_tok, format!("unit '{}' appears twice", unit as char)));
        }
        seen.push(unit as char);
        let (d, s) = match unit {
            b'w' => (n.saturating_mul(7), 0),
            b'd' => (n, 0),
            b'h' => (0, n.saturating_mul(3600)),
            b'm' => (0, n.saturating_mul(60)),
            b's' => (0, n),
            _ => {
                return Err(bad(
                    unit_tok,
                    format!("unknown unit '{}'; expected w, d, h, m or s", unit as char),
                ))
            }
        };
        days = days.saturating_add(d);
        seconds = seconds.saturating_add(s);
    }
    if days == 0 && seconds == 0 {
        return Err(bad(tok, "the interval must be longer than zero".into()));
    }
    if days > MAX_DAYS || seconds > MAX_DAYS * 86_400 {
        return Err(bad(tok, format!("the interval must be at most {MAX_DAYS} days")));
    }
    Ok(Interval { days, seconds })
}
