//! `cronfleet runs` and `cronfleet logs`: the run history, from the agent's API (a local agent
//! found through its state directory, or `--server`), or read from the state directory when
//! no agent runs there.

use std::{io::Write, path::PathBuf, process::ExitCode};

use clap::Args;

use super::remote::{segment, Client, Remote};
use crate::{
    api::model::{Run, RunPage},
    store::{Outcome, RunFilter, Store},
};

/// `cronfleet runs`.
#[derive(Debug, Args)]
pub struct RunsArgs {
    /// Only this task.
    #[arg(long, value_name = "NAME")]
    task: Option<String>,
    /// Only this outcome (succeeded, failed, timed_out, killed, skipped, missed, abandoned, lost, running).
    #[arg(long, value_name = "OUTCOME")]
    outcome: Option<String>,
    /// At most this many, newest first.
    #[arg(long, short = 'n', value_name = "N", default_value_t = 20)]
    limit: u32,
    /// One JSON array, for scripts.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    remote: Remote,
}

/// `cronfleet logs`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The task.
    #[arg(value_name = "TASK")]
    task: String,
    /// A run id (`cronfleet runs` shows them) [default: the task's latest run].
    #[arg(value_name = "RUN_ID")]
    run: Option<String>,
    /// Follow the run's output as it comes, until it ends (needs the agent's API).
    #[arg(long, short = 'f')]
    follow: bool,
    #[command(flatten)]
    remote: Remote,
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())
}

async fn open(dir: Option<PathBuf>) -> Result<Store, String> {
    let dir = dir.unwrap_or_else(crate::agent::default_state_dir);
    if let Some(hint) = crate::agent::shared_store_hint(&dir) {
        return Err(hint);
    }
    if !dir.join("state.db").exists() {
        return Err(format!(
            "no run history in {} (has the agent run with this --state-dir?)",
            dir.display()
        ));
    }
    Store::open(&dir).await.map_err(|e| e.to_string())
}

/// Runs `cronfleet runs`.
pub fn runs(args: RunsArgs) -> Result<ExitCode, String> {
    let outcome = args
        .outcome
        .as_deref()
        .map(str::parse::<Outcome>)
        .transpose()
        .map_err(|e| e.to_string())?;
    let runs: Vec<Run> = match args.remote.find()? {
        Some(client) => {
            let mut query = format!("/api/v1/runs?limit={}", args.limit.clamp(1, 1000));
            if let Some(task) = &args.task {
                query.push_str(&format!("&task={}", segment(task)));
            }
            if let Some(outcome) = outcome {
                query.push_str(&format!("&outcome={}", outcome.as_str()));
            }
            client.get::<RunPage>(&query)?.runs
        }
        None => runtime()?.block_on(async {
            let store = open(Some(args.remote.dir())).await?;
            let filter = RunFilter {
                task: args.task,
                outcome,
                limit: args.limit,
                without_output: true,
                ..RunFilter::default()
            };
            let runs = store.runs(&filter).await.map_err(|e| e.to_string())?;
            Ok::<_, String>(runs.iter().map(Run::of).collect())
        })?,
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        let _ = writeln!(out, "{}", serde_json::to_string(&runs).map_err(|e| e.to_string())?);
        return Ok(ExitCode::SUCCESS);
    }
    let _ = writeln!(
        out,
        "{:<25}  {:<20}  {:<10}  {:>7}  {:>9}  RUN ID",
        "SLOT", "TASK", "OUTCOME", "EXIT", "DURATION"
    );
    for r in &runs {
        let exit = match (r.exit_code, r.signal) {
            (Some(c), _) => c.to_string(),
            (None, Some(s)) => format!("sig {s}"),
            _ => "-".into(),
        };
        let duration = r.duration_ms.map_or("-".into(), |ms| format!("{:.3}s", ms as f64 / 1000.0));
        let _ = writeln!(
            out,
            "{:<25}  {:<20}  {:<10}  {exit:>7}  {duration:>9}  {}",
            r.slot,
            r.task,
            r.outcome.as_str(),
            r.id
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `cronfleet logs`: the captured output of one run.
pub fn logs(args: LogsArgs) -> Result<ExitCode, String> {
    if let Some(client) = args.remote.find()? {
        return logs_from(&client, &args);
    }
    if args.follow {
        return Err(format!(
            "-f needs a running agent: none serves an API in {} (or give --server)",
            args.remote.dir().display()
        ));
    }
    let run = runtime()?.block_on(async {
        let store = open(Some(args.remote.dir())).await?;
        match &args.run {
            Some(id) => store.run(id).await.map_err(|e| e.to_string()),
            None => {
                let filter =
                    RunFilter { task: Some(args.task.clone()), limit: 20, ..RunFilter::default() };
                let runs = store.runs(&filter).await.map_err(|e| e.to_string())?;
                // The latest run that ran (not a skipped or missed slot).
                Ok(runs
                    .into_iter()
                    .find(|r| !matches!(r.outcome, Outcome::Skipped | Outcome::Missed)))
            }
        }
    })?;
    let run = run.filter(|r| r.task == args.task).ok_or_else(|| no_run(&args))?;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(&run.output);
    Ok(ExitCode::SUCCESS)
}

fn no_run(args: &LogsArgs) -> String {
    match &args.run {
        Some(id) => format!("no run {id} of task {}", args.task),
        None => format!("no runs of task {} yet", args.task),
    }
}

/// `cronfleet logs` through the API.
fn logs_from(client: &Client, args: &LogsArgs) -> Result<ExitCode, String> {
    let id = match &args.run {
        Some(id) => id.clone(),
        None => {
            let page: RunPage =
                client.get(&format!("/api/v1/runs?task={}&limit=20", segment(&args.task)))?;
            page.runs
                .into_iter()
                .find(|r| !matches!(r.outcome, Outcome::Skipped | Outcome::Missed))
                .map(|r| r.id)
                .ok_or_else(|| no_run(args))?
        }
    };
    if args.follow {
        let bar = indicatif::ProgressBar::hidden();
        let end = super::act::follow(client, &id, &bar)?;
        eprintln!("{id}: {}", end.map_or("?", |r| r.outcome.as_str()));
        return Ok(ExitCode::SUCCESS);
    }
    let output = client.output(&id)?;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(&output);
    Ok(ExitCode::SUCCESS)
}
