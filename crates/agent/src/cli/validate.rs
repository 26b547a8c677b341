//! `cronfleet validate FILE`: check a task file without running anything.

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::ExitCode,
};

use clap::Args;
use jiff::Zoned;

use crate::{
    config::{self, Kind},
    timearg,
};

/// `cronfleet validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// The task file; `-` reads it from standard input (its errors then say
    /// `<stdin>:LINE:COLUMN`).
    #[arg(value_name = "FILE")]
    file: PathBuf,
}

/// The name standard input goes by in messages.
const STDIN: &str = "<stdin>";

/// The task file's text and the name to give it in messages, or why it cannot be read.
fn read(file: &Path) -> Result<(PathBuf, String), String> {
    if file == Path::new("-") {
        let text = std::io::read_to_string(std::io::stdin())
            .map_err(|e| format!("cannot read standard input: {}", config::io_reason(&e)))?;
        return Ok((PathBuf::from(STDIN), text));
    }
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("cannot read {}: {}", file.display(), config::io_reason(&e)))?;
    Ok((file.to_owned(), text))
}

/// Prints the tasks and their next run (exit 0), or every error (exit 2; a file that cannot
/// be read, too).
pub fn run(args: ValidateArgs) -> Result<ExitCode, String> {
    let (label, text) = read(&args.file)?;
    let set = match config::parse(&label, &text) {
        Ok(set) => set,
        Err(errors) => {
            eprintln!("{errors}");
            let n = errors.0.len();
            eprintln!("{}: {n} error{}", label.display(), if n == 1 { "" } else { "s" });
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
        label.display(),
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
