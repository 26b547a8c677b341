//! `cronfleet completions SHELL` and `cronfleet man`: generated from the clap definitions, so
//! they never drift from `--help`. The files under `dist/` are these outputs (a test checks).

use std::process::ExitCode;

use clap::{Args, CommandFactory};
use clap_complete::Shell;

use super::Cli;

/// `cronfleet completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// bash, zsh or fish.
    #[arg(value_name = "SHELL", value_parser = ["bash", "zsh", "fish"])]
    shell: String,
}

/// Prints the completion script.
pub fn completions(args: CompletionsArgs) -> Result<ExitCode, String> {
    let shell = match args.shell.as_str() {
        "bash" => Shell::Bash,
        "zsh" => Shell::Zsh,
        _ => Shell::Fish,
    };
    clap_complete::generate(shell, &mut Cli::command(), "cronfleet", &mut std::io::stdout());
    Ok(ExitCode::SUCCESS)
}

/// Prints the man page. It carries the package version only (not the commit), so the copy in
/// `dist/` changes with releases, not with every commit.
pub fn man() -> Result<ExitCode, String> {
    let command = Cli::command().version(env!("CARGO_PKG_VERSION"));
    clap_mangen::Man::new(command)
        .render(&mut std::io::stdout())
        .map_err(|e| format!("cannot write the man page: {e}"))?;
    Ok(ExitCode::SUCCESS)
}
