//! `cronfleet next` and `cronfleet prev`: fire times of an expression, one RFC 3339 line each.

use std::{io::Write, process::ExitCode};

use clap::Args;
use cronfleet_cron::Schedule;
use jiff::{tz::TimeZone, Zoned};

use crate::timearg;

/// Arguments shared by `next` and `prev`.
#[derive(Debug, Args)]
pub struct Common {
    /// Zone for the expression when it has no CRON_TZ= prefix, and for times written without
    /// an offset [default: the system's local zone].
    #[arg(long, value_name = "ZONE")]
    tz: Option<String>,
    /// Anchor an @every schedule: it fires at ANCHOR + k * interval.
    #[arg(long, value_name = "TIME")]
    anchor: Option<String>,
    /// How many fire times to print (1 or more).
    #[arg(short = 'n', long = "count", value_name = "N", default_value_t = 5, value_parser = count)]
    count: usize,
    /// The expression, e.g. '0 30 9 * * MON-FRI' (quoted, or as separate words); options may
    /// come before or after it.
    #[arg(value_name = "EXPR", required = true, num_args = 1..)]
    expr: Vec<String>,
}

/// `-n`: a count of fire times, at least one (`-n 0` would print nothing and succeed).
fn count(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("must be at least 1 (0 would print nothing)".to_owned()),
        Ok(n) => Ok(n),
        Err(_) => Err("expected a whole number, 1 or more".to_owned()),
    }
}

/// `cronfleet next`.
#[derive(Debug, Args)]
pub struct NextArgs {
    /// Print fire times strictly after TIME [default: now].
    #[arg(long, value_name = "TIME")]
    after: Option<String>,
    #[command(flatten)]
    common: Common,
}

/// `cronfleet prev`.
#[derive(Debug, Args)]
pub struct PrevArgs {
    /// Print fire times strictly before TIME [default: now].
    #[arg(long, value_name = "TIME")]
    before: Option<String>,
    #[command(flatten)]
    common: Common,
}

/// Runs `cronfleet next`.
pub fn next(args: NextArgs) -> Result<ExitCode, String> {
    print(args.common, args.after.as_deref(), true)
}

/// Runs `cronfleet prev`.
pub fn prev(args: PrevArgs) -> Result<ExitCode, String> {
    print(args.common, args.before.as_deref(), false)
}

fn print(args: Common, at: Option<&str>, forward: bool) -> Result<ExitCode, String> {
    let tz = args.tz.as_deref().map(timearg::zone).transpose().map_err(|e| e.to_string())?;
    let default = TimeZone::system();
    let expr = args.expr.join(" ");
    let mut schedule: Schedule = expr.parse().map_err(|e| format!("{e}"))?;
    if let Some(anchor) = &args.anchor {
        let anchor = timearg::instant(anchor, tz.as_ref(), &default).map_err(|e| e.to_string())?;
        schedule = schedule.with_anchor(anchor).map_err(|e| e.reason().to_owned())?;
    }
    let start: Zoned = match at {
        Some(text) => timearg::instant(text, tz.as_ref(), &default).map_err(|e| e.to_string())?,
        None => Zoned::now().with_time_zone(tz.unwrap_or(default)),
    };
    let times: Box<dyn Iterator<Item = Zoned>> = if forward {
        Box::new(schedule.iter_after(&start))
    } else {
        Box::new(schedule.iter_before(&start))
    };
    let mut out = std::io::stdout().lock();
    for z in times.take(args.count) {
        if writeln!(out, "{}", timearg::rfc3339(&z)).is_err() {
            break; // a closed pipe (`| head`) is not an error
        }
    }
    Ok(ExitCode::SUCCESS)
}
