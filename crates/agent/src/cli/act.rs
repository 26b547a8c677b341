//! `cronfleet run|pause|resume|kill`: act on an agent's tasks and runs through its API.

use std::{io::Write, process::ExitCode, time::Duration};

use super::remote::{segment, Client, Remote};
use crate::{
    api::model::{self, Killing, Missed, PauseRequest, ResumeRequest, Run, RunStarted, Task},
    store::Outcome,
};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

/// `cronfleet run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The task.
    #[arg(value_name = "TASK")]
    task: String,
    /// Print the run's output as it comes and exit with 0 only if it succeeded.
    #[arg(long, short = 'w')]
    wait: bool,
    #[command(flatten)]
    remote: Remote,
}

/// `cronfleet pause`.
#[derive(Debug, Args)]
pub struct PauseArgs {
    /// The task.
    #[arg(value_name = "TASK")]
    task: String,
    /// Resume by itself at this instant (RFC 3339, or a local date and time).
    #[arg(long, value_name = "WHEN")]
    until: Option<String>,
    #[command(flatten)]
    remote: Remote,
}

/// `cronfleet resume`.
#[derive(Debug, Args)]
pub struct ResumeArgs {
    /// The task.
    #[arg(value_name = "TASK")]
    task: String,
    /// Slots passed while paused: skip them, or run the latest of them once, now.
    #[arg(long, value_name = "WHAT", default_value = "skip", value_parser = ["skip", "once"])]
    missed: String,
    #[command(flatten)]
    remote: Remote,
}

/// `cronfleet kill`.
#[derive(Debug, Args)]
pub struct KillArgs {
    /// The run id (`cronfleet runs` shows them).
    #[arg(value_name = "RUN_ID")]
    run: String,
    /// Return at once instead of waiting until the run has ended.
    #[arg(long)]
    no_wait: bool,
    #[command(flatten)]
    remote: Remote,
}

fn spinner(message: String) -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_message(message);
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// Exit code of a finished run: 0 when it succeeded, 1 otherwise.
fn exit_of(run: Option<&Run>) -> ExitCode {
    if run.is_some_and(|r| r.outcome == Outcome::Succeeded) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Runs `cronfleet run`.
pub fn run(args: RunArgs) -> Result<ExitCode, String> {
    let client = args.remote.client()?;
    let path = format!("/api/v1/tasks/{}/run", segment(&args.task));
    let started: RunStarted = client.about_task(&args.task, client.post(&path, None::<&()>))?;
    let id = started.run_id;
    if !args.wait {
        println!("started {id}");
        return Ok(ExitCode::SUCCESS);
    }
    let bar = spinner(id.clone());
    // The run appears once its concurrency policy lets it start.
    let end = loop {
        match client.get::<Run>(&format!("/api/v1/runs/{}", segment(&id))) {
            Ok(_) => break follow(&client, &id, &bar)?,
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    };
    bar.finish_and_clear();
    eprintln!("{id}: {}", describe(end.as_ref()));
    Ok(exit_of(end.as_ref()))
}

/// Prints a run's output as it comes (above the spinner); returns the finished run (none when
/// the agent no longer has its record).
pub fn follow(client: &Client, id: &str, bar: &ProgressBar) -> Result<Option<Run>, String> {
    client.follow(id, |text| {
        bar.suspend(|| {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(text.as_bytes());
            let _ = out.flush();
        });
    })
}

fn describe(run: Option<&Run>) -> String {
    run.map_or_else(|| "?".to_owned(), Run::describe)
}

/// Runs `cronfleet pause`.
pub fn pause(args: PauseArgs) -> Result<ExitCode, String> {
    let client = args.remote.client()?;
    let body = args.until.map(|until| PauseRequest { until: Some(until) });
    let path = format!("/api/v1/tasks/{}/pause", segment(&args.task));
    let task: Task = client.about_task(&args.task, client.post(&path, body.as_ref()))?;
    match task.paused_until {
        Some(until) => println!("paused {} until {until}", args.task),
        None => println!("paused {} (until resumed)", args.task),
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `cronfleet resume`.
pub fn resume(args: ResumeArgs) -> Result<ExitCode, String> {
    let client = args.remote.client()?;
    let missed = model::from_name::<Missed>(&args.missed)
        .ok_or_else(|| format!("--missed {}: expected skip or once", args.missed))?;
    let body = ResumeRequest { missed: Some(missed) };
    let path = format!("/api/v1/tasks/{}/resume", segment(&args.task));
    let task: Task = client.about_task(&args.task, client.post(&path, Some(&body)))?;
    let next = task.next_run.as_deref().unwrap_or("-");
    println!("resumed {}; next run {next}", args.task);
    Ok(ExitCode::SUCCESS)
}

/// Runs `cronfleet kill`.
pub fn kill(args: KillArgs) -> Result<ExitCode, String> {
    let client = args.remote.client()?;
    let path = format!("/api/v1/runs/{}", segment(&args.run));
    let _: Killing = client.post(&format!("{path}/kill"), None::<&()>)?;
    if args.no_wait {
        println!("killing {}", args.run);
        return Ok(ExitCode::SUCCESS);
    }
    let bar = spinner(format!("killing {}", args.run));
    let run = loop {
        let run: Run = client.get(&path)?;
        if run.outcome != Outcome::Running {
            break run;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    bar.finish_and_clear();
    println!("{}: {}", args.run, run.describe());
    Ok(ExitCode::SUCCESS)
}
