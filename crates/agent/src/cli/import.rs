//! `cronfleet import-crontab` and `cronfleet import-gotorch`: `[[task]]` entries on stdout,
//! what was not imported (and caveats) on stderr. Exit 0 when every entry was imported, 1 when
//! some were not, 2 when the input cannot be read.

use std::{io::Read, path::PathBuf, process::ExitCode};

use clap::Args;

use crate::import::{crontab, gotorch, to_toml, Imported, Note};

/// `cronfleet import-crontab`.
#[derive(Debug, Args)]
pub struct CrontabArgs {
    /// The crontab; `-` or nothing reads standard input.
    #[arg(value_name = "FILE")]
    file: Option<PathBuf>,
    /// System format (a user field after the schedule), as in /etc/crontab and /etc/cron.d;
    /// the default for files under /etc.
    #[arg(long, conflicts_with = "user")]
    system: bool,
    /// User format (no user field), as `crontab -l` prints.
    #[arg(long)]
    user: bool,
}

/// `cronfleet import-gotorch`.
#[derive(Debug, Args)]
pub struct GotorchArgs {
    /// Gotorch's task.json.
    #[arg(value_name = "FILE")]
    file: PathBuf,
}

fn read(file: Option<&PathBuf>) -> Result<(String, String), String> {
    match file.filter(|f| f.as_os_str() != "-") {
        Some(path) => std::fs::read_to_string(path)
            .map(|text| (text, path.display().to_string()))
            .map_err(|e| format!("cannot read {}: {e}", path.display())),
        None => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| format!("cannot read standard input: {e}"))?;
            Ok((text, "stdin".into()))
        }
    }
}

fn finish(source: &str, tasks: &[Imported], notes: &[Note], skipped: usize) -> ExitCode {
    print!("{}", to_toml(tasks));
    for note in notes {
        eprintln!("{source}:{}: {}", note.line, note.message);
    }
    eprintln!("{source}: {} tasks imported, {skipped} entries not imported", tasks.len());
    if skipped == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Runs `cronfleet import-crontab`.
pub fn crontab(args: CrontabArgs) -> Result<ExitCode, String> {
    let (text, source) = read(args.file.as_ref())?;
    let under_etc = args.file.as_ref().is_some_and(|f| f.starts_with("/etc"));
    let format = if args.system || (under_etc && !args.user) {
        crontab::Format::System
    } else {
        crontab::Format::User
    };
    let import = crontab::import(&text, format, &source);
    Ok(finish(&source, &import.tasks, &import.notes, import.skipped))
}

/// Runs `cronfleet import-gotorch`.
pub fn gotorch(args: GotorchArgs) -> Result<ExitCode, String> {
    let (text, source) = read(Some(&args.file))?;
    let import = gotorch::import(&text, &source).map_err(|e| format!("{source}: {e}"))?;
    Ok(finish(&source, &import.tasks, &import.notes, import.skipped))
}
