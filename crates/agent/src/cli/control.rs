//! `cronfleet reload` and `cronfleet stop`: signal a running agent through its pid file.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use clap::Args;
use nix::sys::signal::Signal;

use crate::pidfile;

/// The default pid file, when `--pid-file` is not given.
pub const DEFAULT_PID_FILE: &str = "/run/cronfleet.pid";

/// `cronfleet reload` / `cronfleet stop`.
#[derive(Debug, Args)]
pub struct ControlArgs {
    /// The agent's pid file.
    #[arg(long, value_name = "FILE", default_value = DEFAULT_PID_FILE)]
    pid_file: PathBuf,
}

/// SIGHUP: re-read the task file.
pub fn reload(args: ControlArgs) -> Result<ExitCode, String> {
    let pid = pidfile::signal(&args.pid_file, Signal::SIGHUP).map_err(|e| e.to_string())?;
    println!("asked the agent (pid {pid}) to reload");
    Ok(ExitCode::SUCCESS)
}

/// SIGTERM, then wait until the agent has exited (it removes its pid file).
pub fn stop(args: ControlArgs) -> Result<ExitCode, String> {
    let pid = pidfile::signal(&args.pid_file, Signal::SIGTERM).map_err(|e| e.to_string())?;
    // The agent gives runs their grace, then exits; wait for that (up to 10 minutes).
    for _ in 0..6000 {
        if pidfile::read(&args.pid_file).map_err(|e| e.to_string())? != Some(pid) {
            println!("agent (pid {pid}) stopped");
            return Ok(ExitCode::SUCCESS);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(format!("agent (pid {pid}) is still running"))
}
