//! `cronfleet validate FILE`: check a task file without running anything.

use std::{io::Write, path::PathBuf, process::ExitCode};

use clap::Args;
use jiff::Zoned;

use crate::{
    config::{self, Kind},
    timearg,
};

/// `cronfleet validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// The task file.
    #[arg(value_name = "FILE")]
    file: PathBuf,
}

/// Prints the tasks and their next run (exit 0), or every error (exit 2).
pub fn run(args: ValidateArgs) -> Result<ExitCode, String> {
    let set = match config::load(&args.file) {
        Ok(set) => set,
        Err(errors) => {
            eprintln!("{errors}");
            let n = errors.0.len();
            eprintln!("{}: {n} error{}", args.file.display(), if n == 1 { "" } else { "s" });
            return Ok(ExitCode::from(super::EXIT_BAD_INPUT));
        }
    };
    let now = Zoned::now();
    let daemons = set.tasks.iter().filter(|t| matches!(t.kind, Kind::Daemon)).count();
    let disabled = set.tasks.iter().filter(|t| !t.enabled).count();
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "{}: {} tasks ({} cron, {daemons} daemon, {disabled} disabled)",
        args.file.display(),
        set.tasks.len(),
        set.tasks.len() - daemons,
    );
    let width = set.tasks.iter().map(|t| t.name.len()).max().unwrap_or(0);
    for task in &set.tasks {
        let what = match &task.kind {
            Kind::Daemon => "daemon: kept running".to_owned(),
            Kind::Cron(s) => match s.next_after(&now) {
                Some(next) => format!("{}; next {}", s.describe(), timearg::rfc3339(&next)),
                None => format!("{}; no next run", s.describe()),
            },
        };
        let off = if task.enabled { "" } else { " (disabled)" };
        let _ = writeln!(out, "  {:width$}  {what}{off}", task.name);
    }
    Ok(ExitCode::SUCCESS)
}
