//! `cronfleet runs` and `cronfleet logs`: the run history, read from the state directory,
//! whether the agent runs or not.

use std::{io::Write, path::PathBuf, process::ExitCode};

use clap::Args;
use serde_json::json;

use crate::{
    agent::default_state_dir,
    store::{Outcome, RunFilter, RunRecord, Store},
};

/// `cronfleet runs`.
#[derive(Debug, Args)]
pub struct RunsArgs {
    /// Only this task.
    #[arg(long, value_name = "NAME")]
    task: Option<String>,
    /// Only this outcome (succeeded, failed, timed_out, killed, skipped, missed, abandoned, running).
    #[arg(long, value_name = "OUTCOME")]
    outcome: Option<String>,
    /// At most this many, newest first.
    #[arg(long, short = 'n', value_name = "N", default_value_t = 20)]
    limit: u32,
    /// One JSON array, for scripts.
    #[arg(long)]
    json: bool,
    /// The agent's state directory.
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
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
    /// The agent's state directory.
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())
}

async fn open(dir: Option<PathBuf>) -> Result<Store, String> {
    let dir = dir.unwrap_or_else(default_state_dir);
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
    let outcome = args.outcome.as_deref().map(str::parse::<Outcome>).transpose()?;
    let runs = runtime()?.block_on(async {
        let store = open(args.state_dir).await?;
        let filter =
            RunFilter { task: args.task, outcome, limit: args.limit, ..RunFilter::default() };
        store.runs(&filter).await.map_err(|e| e.to_string())
    })?;
    let mut out = std::io::stdout().lock();
    if args.json {
        let list: Vec<serde_json::Value> = runs.iter().map(to_json).collect();
        let _ = writeln!(out, "{}", serde_json::Value::Array(list));
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
    let run = runtime()?.block_on(async {
        let store = open(args.state_dir).await?;
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
    let run = run.filter(|r| r.task == args.task).ok_or_else(|| match &args.run {
        Some(id) => format!("no run {id} of task {}", args.task),
        None => format!("no runs of task {} yet", args.task),
    })?;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(&run.output);
    Ok(ExitCode::SUCCESS)
}

fn to_json(r: &RunRecord) -> serde_json::Value {
    json!({
        "id": r.id, "task": r.task, "slot": r.slot, "attempt": r.attempt, "node": r.node,
        "started_at": r.started_at, "ended_at": r.ended_at, "duration_ms": r.duration_ms,
        "exit_code": r.exit_code, "signal": r.signal, "cpu_ms": r.cpu_ms, "max_rss": r.max_rss,
        "outcome": r.outcome.as_str(), "output": String::from_utf8_lossy(&r.output),
        "output_dropped": r.output_dropped, "reason": r.reason,
    })
}
