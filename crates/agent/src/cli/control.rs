//! `cronfleet reload` and `cronfleet stop`: a running agent, found through its API (`--server`,
//! or the local agent of the state directory), the pid it records in its state directory, or
//! a pid file.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use clap::Args;
use nix::sys::signal::Signal;

use super::remote::{Client, Remote};
use crate::{
    api::model::{Counts, Stopping},
    pidfile,
};

/// The default pid file, when `--pid-file` is not given.
pub const DEFAULT_PID_FILE: &str = "/run/cronfleet.pid";

/// `cronfleet reload` / `cronfleet stop`.
#[derive(Debug, Args)]
pub struct ControlArgs {
    /// The agent's pid file (`cronfleet agent --daemon` writes /run/cronfleet.pid). Without
    /// it: the agent's API (`--server`, or the local agent of the state directory), else the
    /// pid the agent records in its state directory, else /run/cronfleet.pid.
    #[arg(long, value_name = "FILE")]
    pid_file: Option<PathBuf>,
    #[command(flatten)]
    remote: Remote,
}

/// How the agent was reached.
enum Target {
    /// Its API.
    Api(Client),
    /// Its process, by pid.
    Process(i32),
}

impl ControlArgs {
    /// The agent: through `--pid-file`, `--server`, the state directory (its API, else its
    /// recorded pid), else the default pid file.
    fn target(&self) -> Result<Target, String> {
        if let Some(file) = &self.pid_file {
            let pid = pidfile::read(file).map_err(|e| e.to_string())?;
            let pid = pid.ok_or_else(|| {
                pidfile::PidFileError::NotRunning(file.display().to_string()).to_string()
            })?;
            return Ok(Target::Process(pid));
        }
        if let Some(client) = self.remote.find()? {
            return Ok(Target::Api(client));
        }
        let dir = self.remote.dir();
        if let Some(identity) = crate::agent::Identity::read(&dir) {
            if pidfile::alive(identity.pid as i32) {
                return Ok(Target::Process(identity.pid as i32));
            }
        }
        let default = PathBuf::from(DEFAULT_PID_FILE);
        match pidfile::read(&default) {
            Ok(Some(pid)) => Ok(Target::Process(pid)),
            _ => Err(format!(
                "no running agent found: none in the state directory {} and none in {DEFAULT_PID_FILE} \
                 (give --state-dir, --server with --token-file, or --pid-file)",
                dir.display()
            )),
        }
    }
}

fn signal(pid: i32, signal: Signal) -> Result<(), String> {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal)
        .map_err(|e| format!("cannot signal the agent (pid {pid}): {e}"))
}

/// Re-read the task file: through the API (its answer says what changed, or every error of an
/// invalid file: exit 2), else SIGHUP.
pub fn reload(args: ControlArgs) -> Result<ExitCode, String> {
    match args.target()? {
        Target::Api(client) => {
            let done: Counts = client.post("/api/v1/reload", None::<&()>).map_err(String::from)?;
            println!(
                "reloaded: {} added, {} changed, {} removed",
                done.added, done.changed, done.removed
            );
        }
        Target::Process(pid) => {
            signal(pid, Signal::SIGHUP)?;
            println!("asked the agent (pid {pid}) to reload (its log says how it went)");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Stop the agent (as SIGTERM: runs in flight get the shutdown grace), then wait until it has
/// exited.
pub fn stop(args: ControlArgs) -> Result<ExitCode, String> {
    let pid = match args.target()? {
        Target::Api(client) => {
            let stopping: Stopping =
                client.post("/api/v1/stop", None::<&()>).map_err(String::from)?;
            let pid = stopping.pid as i32;
            if args.remote.server.is_some() {
                // A remote agent's pid means nothing here: its API no longer answering does.
                let tries = stopping.shutdown_grace_s * 10 + 600;
                for _ in 0..tries {
                    if client.get::<crate::api::model::Node>("/api/v1/node").is_err() {
                        println!("agent (pid {pid}) stopped");
                        return Ok(ExitCode::SUCCESS);
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                return Err(format!("agent (pid {pid}) still answers"));
            }
            pid
        }
        Target::Process(pid) => {
            signal(pid, Signal::SIGTERM)?;
            pid
        }
    };
    // The agent gives runs their grace, then exits; wait for that (up to 10 minutes).
    for _ in 0..6000 {
        if !pidfile::alive(pid) || zombie(pid) {
            println!("agent (pid {pid}) stopped");
            return Ok(ExitCode::SUCCESS);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(format!("agent (pid {pid}) is still running"))
}

/// An exited process its parent has not reaped yet.
fn zombie(pid: i32) -> bool {
    crate::children::ProcStat::of(pid).is_some_and(|s| s.zombie)
}
