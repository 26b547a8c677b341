//! `cronfleet runs` and `cronfleet logs`: the run history, from the agent's API (a local agent
//! found through its state directory, or `--server`), or read from the state directory when
//! no agent runs there.

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::ExitCode,
};

use clap::Args;

use super::{
    remote::{segment, Client, Remote},
    zone::{self, ZoneArgs},
};
use crate::{
    api::model::{Run, RunPage},
    store::{Outcome, RunFilter, Store},
};

/// `cronfleet runs`.
#[derive(Debug, Args)]
pub struct RunsArgs {
    /// Only this task (an unknown name is an error; a task deleted since keeps its runs
    /// until they are pruned).
    #[arg(long, value_name = "NAME")]
    task: Option<String>,
    /// Only this outcome (succeeded, failed, timed_out, killed, skipped, missed, abandoned, lost, running).
    #[arg(long, value_name = "OUTCOME")]
    outcome: Option<String>,
    /// At most this many, newest first.
    #[arg(long, short = 'n', value_name = "N", default_value_t = 20)]
    limit: u32,
    /// One JSON array, for scripts (the API's form: each slot in its task's zone).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    zone: ZoneArgs,
    #[command(flatten)]
    remote: Remote,
}

/// `cronfleet logs`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The task.
    #[arg(value_name = "TASK")]
    task: String,
    /// A run id of TASK (`cronfleet runs` shows them) [default: the task's latest run].
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
    let view = args.zone.view()?;
    let mut runs: Vec<Run> = match args.remote.find()? {
        Some(client) => {
            let mut query = format!("/api/v1/runs?limit={}", args.limit.clamp(1, 1000));
            if let Some(task) = &args.task {
                query.push_str(&format!("&task={}", segment(task)));
            }
            if let Some(outcome) = outcome {
                query.push_str(&format!("&outcome={}", outcome.as_str()));
            }
            match &args.task {
                Some(task) => client.about_task(task, client.fetch::<RunPage>(&query))?.runs,
                None => client.get::<RunPage>(&query)?.runs,
            }
        }
        None => runtime()?.block_on(async {
            let dir = args.remote.dir();
            let store = open(Some(dir.clone())).await?;
            if let Some(task) = &args.task {
                known_here(&store, &dir, task).await?;
            }
            let filter = RunFilter {
                task: args.task.clone(),
                outcome,
                limit: args.limit,
                without_output: true,
                ..RunFilter::default()
            };
            let runs = store.runs(&filter).await.map_err(|e| e.to_string())?;
            Ok::<_, String>(runs.iter().map(Run::of).collect())
        })?,
    };
    newest_first(&mut runs);
    let mut out = std::io::stdout().lock();
    if args.json {
        let _ = writeln!(out, "{}", serde_json::to_string(&runs).map_err(|e| e.to_string())?);
        return Ok(ExitCode::SUCCESS);
    }
    if runs.is_empty() {
        // Not an error: the task (if one was named) exists, it has not run (that way) yet.
        let which = outcome.map(|o| format!("{} ", o.as_str())).unwrap_or_default();
        match &args.task {
            Some(task) if outcome.is_some() => eprintln!("no {which}runs of `{task}`"),
            Some(task) => eprintln!("no runs of `{task}` yet"),
            None if outcome.is_some() => eprintln!("no {which}runs"),
            None => eprintln!("no runs yet"),
        }
        return Ok(ExitCode::SUCCESS);
    }
    let heading = view.heading("SLOT");
    let slots: Vec<String> = runs.iter().map(|r| view.show(&r.slot)).collect();
    let w = zone::width(&heading, slots.iter().map(String::as_str));
    let _ = writeln!(
        out,
        "{heading:<w$}  {:<20}  {:<10}  {:>7}  {:>9}  RUN ID",
        "TASK", "OUTCOME", "EXIT", "DURATION"
    );
    for (r, slot) in runs.iter().zip(&slots) {
        let exit = match (r.exit_code, r.signal) {
            (Some(c), _) => c.to_string(),
            (None, Some(s)) => format!("sig {s}"),
            _ => "-".into(),
        };
        let duration = r.duration_ms.map_or("-".into(), |ms| format!("{:.3}s", ms as f64 / 1000.0));
        let _ = writeln!(
            out,
            "{slot:<w$}  {:<20}  {:<10}  {exit:>7}  {duration:>9}  {}",
            r.task,
            r.outcome.as_str(),
            r.id
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Newest slot first, by the instant (whatever zone each slot is written in), then the latest
/// attempt first; what cannot be read as an instant last.
fn newest_first(runs: &mut [Run]) {
    runs.sort_by_cached_key(|r| {
        std::cmp::Reverse((r.slot.parse::<jiff::Timestamp>().ok(), r.attempt))
    });
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
    let dir = args.remote.dir();
    let run = runtime()?.block_on(async {
        let store = open(Some(dir.clone())).await?;
        match &args.run {
            Some(id) => match store.run(id).await.map_err(|e| e.to_string())? {
                Some(run) => Ok(Ok(run)),
                None => {
                    known_here(&store, &dir, &args.task).await?;
                    Err(format!("no run `{id}` of `{}`", args.task))
                }
            },
            None => {
                known_here(&store, &dir, &args.task).await?;
                let filter =
                    RunFilter { task: Some(args.task.clone()), limit: 20, ..RunFilter::default() };
                let runs = store.runs(&filter).await.map_err(|e| e.to_string())?;
                Ok(latest_that_ran(&args.task, runs, |r| r.outcome))
            }
        }
    })?;
    let run = match run {
        Ok(run) => run,
        Err(note) => {
            eprintln!("{note}");
            return Ok(ExitCode::SUCCESS);
        }
    };
    if run.task != args.task {
        return Err(other_task(&run.id, &run.task, &args.task));
    }
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(&run.output);
    Ok(ExitCode::SUCCESS)
}

/// The latest of a task's recent runs (newest first) that ran, not a skipped or missed slot;
/// else a note saying why there is none (not an error: the task exists).
fn latest_that_ran<R>(
    task: &str,
    runs: Vec<R>,
    outcome: impl Fn(&R) -> Outcome,
) -> Result<R, String> {
    let n = runs.len();
    match runs.into_iter().find(|r| !matches!(outcome(r), Outcome::Skipped | Outcome::Missed)) {
        Some(run) => Ok(run),
        None if n == 0 => Err(format!("no runs of `{task}` yet")),
        None => Err(format!("none of the latest {n} slots of `{task}` ran (skipped or missed)")),
    }
}

/// A run id given with another task's name.
fn other_task(id: &str, owner: &str, task: &str) -> String {
    format!("run `{id}` is a run of `{owner}`, not of `{task}`")
}

/// Without an agent: a task of the task file the agent of `dir` ran, an API task in its
/// store, or one with runs in its history; else "no task named" with the nearest of them.
async fn known_here(store: &Store, dir: &Path, task: &str) -> Result<(), String> {
    let filter = RunFilter {
        task: Some(task.to_owned()),
        limit: 1,
        without_output: true,
        ..RunFilter::default()
    };
    if !store.runs(&filter).await.map_err(|e| e.to_string())?.is_empty() {
        return Ok(());
    }
    let mut names: Vec<String> = crate::agent::Identity::read(dir)
        .and_then(|i| crate::config::load(&i.config).ok())
        .map(|set| set.tasks.into_iter().map(|t| t.name).collect())
        .unwrap_or_default();
    let api = store.api_tasks().await.map_err(|e| e.to_string())?;
    names.extend(api.into_iter().map(|t| t.name));
    if names.iter().any(|n| n == task) {
        return Ok(());
    }
    let recent = store.recent_by_task(1).await.map_err(|e| e.to_string())?;
    names.extend(recent.into_iter().map(|r| r.task));
    Err(super::unknown_task(task, &names))
}

/// `cronfleet logs` through the API.
fn logs_from(client: &Client, args: &LogsArgs) -> Result<ExitCode, String> {
    let task = &args.task;
    let id = match &args.run {
        Some(id) => match client.fetch::<Run>(&format!("/api/v1/runs/{}", segment(id))) {
            Ok(run) if run.task == *task => id.clone(),
            Ok(run) => return Err(other_task(id, &run.task, task)),
            Err(f) if f.is_not_found() => {
                // No such run; perhaps no such task either, which says more.
                let query = format!("/api/v1/runs?task={}&limit=1", segment(task));
                client.about_task(task, client.fetch::<RunPage>(&query))?;
                return Err(format!("no run `{id}` of `{task}`"));
            }
            Err(f) => return Err(f.into()),
        },
        None => {
            let query = format!("/api/v1/runs?task={}&limit=20", segment(task));
            let page = client.about_task(task, client.fetch::<RunPage>(&query))?;
            match latest_that_ran(task, page.runs, |r| r.outcome) {
                Ok(run) => run.id,
                Err(note) => {
                    eprintln!("{note}");
                    return Ok(ExitCode::SUCCESS);
                }
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn run(task: &str, slot: &str, attempt: u32) -> Run {
        Run {
            attempt,
            cpu_ms: None,
            duration_ms: None,
            ended_at: None,
            exit_code: None,
            id: format!("{task}@{slot}#{attempt}"),
            max_rss: None,
            node: "n".into(),
            outcome: Outcome::Succeeded,
            output: None,
            output_dropped: 0,
            reason: None,
            signal: None,
            slot: slot.into(),
            started_at: None,
            task: task.into(),
        }
    }

    #[test]
    fn runs_are_newest_first_whatever_zone_their_slots_are_written_in() {
        let mut runs = vec![
            run("london", "2026-07-01T10:00:00+01:00", 1), // 09:00Z
            run("berlin", "2026-07-01T10:30:00+02:00", 1), // 08:30Z
            run("ny", "2026-07-01T05:15:00-04:00", 1),     // 09:15Z
            run("ny", "2026-07-01T05:15:00-04:00", 10),
            run("ny", "2026-07-01T05:15:00-04:00", 2),
            run("tokyo", "2026-07-01T17:45:00.250+09:00", 1), // 08:45:00.25Z
        ];
        newest_first(&mut runs);
        let order: Vec<(&str, u32)> = runs.iter().map(|r| (r.task.as_str(), r.attempt)).collect();
        assert_eq!(
            order,
            [("ny", 10), ("ny", 2), ("ny", 1), ("london", 1), ("tokyo", 1), ("berlin", 1)]
        );
    }

    #[test]
    fn the_latest_run_that_ran_or_why_none() {
        let runs = vec![Outcome::Skipped, Outcome::Failed, Outcome::Succeeded];
        assert_eq!(latest_that_ran("t", runs, |o| *o), Ok(Outcome::Failed));
        assert_eq!(
            latest_that_ran("t", Vec::new(), |o: &Outcome| *o),
            Err("no runs of `t` yet".into())
        );
        assert_eq!(
            latest_that_ran("t", vec![Outcome::Missed, Outcome::Skipped], |o| *o),
            Err("none of the latest 2 slots of `t` ran (skipped or missed)".into())
        );
    }
}
