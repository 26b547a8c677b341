//! `cronfleet import-crontab` and `cronfleet import-gotorch`: `[[task]]` entries on stdout,
//! what was not imported (and what will run differently) on stderr. Every task is parsed back
//! with the task file's parser before anything is written. Exit 0 when every entry was
//! imported, 1 when some were not, 2 when the input cannot be read (or, which would be a bug,
//! when the tasks written together do not validate: then nothing is written).

use std::{io::Read, path::PathBuf, process::ExitCode};

use clap::Args;

use crate::{
    config,
    import::{crontab, gotorch, to_toml, Import},
};

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

fn finish(source: &str, mut import: Import) -> ExitCode {
    import.check(source);
    let toml = to_toml(&import.tasks);
    // Each task validated on its own; together they must too (names are unique by design).
    if let Err(errors) = config::parse(std::path::Path::new(source), &toml) {
        eprintln!("{errors}");
        eprintln!("{source}: the imported tasks do not validate together; nothing written");
        return ExitCode::from(super::EXIT_BAD_INPUT);
    }
    print!("{toml}");
    for note in &import.notes {
        eprintln!("{source}:{}: {}", note.line, note.message);
    }
    let skipped = import.skipped;
    eprintln!("{source}: {} tasks imported, {skipped} entries not imported", import.tasks.len());
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
    Ok(finish(&source, crontab::import(&text, format, &source)))
}

/// Runs `cronfleet import-gotorch`.
pub fn gotorch(args: GotorchArgs) -> Result<ExitCode, String> {
    let (text, source) = read(Some(&args.file))?;
    let import = gotorch::import(&text, &source).map_err(|e| format!("{source}: {e}"))?;
    Ok(finish(&source, import))
}
