//! `cronfleet status`: the tasks on this node, their next run, last outcome and running runs:
//! from the agent's API when one runs (locally, or `--server`), else from the task file and
//! the run history.

use std::{io::Write, path::PathBuf, process::ExitCode};

use clap::Args;
use serde_json::json;

use super::{
    remote::{Client, Remote},
    zone::{self, View, ZoneArgs},
};
use crate::{
    agent::Host,
    api::model::{self, Node, NodeList, Task, TaskList},
    config::{self, Kind},
    pidfile,
    store::{Outcome, RunFilter, Store},
};

/// `cronfleet status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The task file [default: the one the agent of this state directory runs].
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// One JSON object, for scripts (times as the API gives them: each in its task's zone).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    zone: ZoneArgs,
    #[command(flatten)]
    remote: Remote,
}

/// Runs `cronfleet status`.
pub fn run(args: StatusArgs) -> Result<ExitCode, String> {
    let view = args.zone.view()?;
    if args.config.is_none() {
        if let Some(client) = args.remote.find()? {
            return from_api(&client, args.json, &view);
        }
    }
    let dir = args.remote.dir();
    if args.config.is_none() {
        if let Some(hint) = crate::agent::shared_store_hint(&dir) {
            return Err(hint);
        }
    }
    let identity = crate::agent::Identity::read(&dir);
    let pid = identity.as_ref().map(|i| i.pid as i32);
    let alive = pid.filter(|p| pidfile::alive(*p));
    let config = args
        .config
        .or_else(|| identity.as_ref().map(|i| i.config.clone()))
        .ok_or("no task file: give --config (no agent has run with this --state-dir)")?;
    let set = config::load(&config).map_err(|e| e.to_string())?;
    let node = identity.as_ref().map(|i| i.node.clone());
    let tags: Vec<String> = identity.as_ref().map(|i| i.tags.clone()).unwrap_or_default();
    let host = Host::detect(node, tags);
    let now = crate::clock::zoned_now();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let store = if dir.join("state.db").exists() {
        Some(runtime.block_on(Store::open(&dir)).map_err(|e| e.to_string())?)
    } else {
        None
    };
    let mut rows = Vec::new();
    for task in set.tasks.iter().filter(|t| host.runs(t)) {
        let (schedule, next) = match &task.kind {
            Kind::Daemon => ("daemon: kept running".to_owned(), None),
            Kind::Cron(s) => (
                s.describe(),
                s.next_after(&now)
                    .map(|n| n.timestamp().display_with_offset(n.offset()).to_string()),
            ),
        };
        let (last, running) = match &store {
            Some(store) => runtime.block_on(async {
                let recent = store
                    .runs(&RunFilter {
                        task: Some(task.name.clone()),
                        limit: 50,
                        ..RunFilter::default()
                    })
                    .await
                    .unwrap_or_default();
                let last = recent
                    .iter()
                    .find(|r| r.outcome != Outcome::Running)
                    .map(|r| (r.outcome.as_str(), r.slot.clone()));
                let running = if alive.is_some() {
                    recent.iter().filter(|r| r.outcome == Outcome::Running).count()
                } else {
                    0
                };
                (last, running)
            }),
            None => (None, 0),
        };
        rows.push((task, schedule, next, last, running));
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        let tasks: Vec<serde_json::Value> = rows
            .iter()
            .map(|(t, schedule, next, last, running)| {
                json!({
                    "name": t.name, "enabled": t.enabled, "schedule": schedule, "next": next,
                    "last_outcome": last.as_ref().map(|l| l.0), "last_slot": last.as_ref().map(|l| &l.1),
                    "running": running,
                })
            })
            .collect();
        let status = json!({ "agent": { "running": alive.is_some(), "pid": alive, "node": host.name }, "tasks": tasks });
        let _ = writeln!(out, "{status}");
        return Ok(ExitCode::SUCCESS);
    }
    match alive {
        Some(pid) => {
            let since = identity.as_ref().map_or("?".to_owned(), |i| view.show(&i.started_at));
            let _ = writeln!(out, "agent: running, pid {pid}, node {}, since {since}", host.name);
        }
        None => {
            let _ = writeln!(out, "agent: not running (node {})", host.name);
        }
    }
    let _ = writeln!(out, "config: {}\n", config.display());
    let nexts: Vec<String> = rows
        .iter()
        .map(|(task, _, next, _, _)| match next {
            _ if !task.enabled => "disabled".to_owned(),
            Some(next) => view.show(next),
            None => "-".to_owned(),
        })
        .collect();
    let heading = view.heading("NEXT");
    let w = zone::width(&heading, nexts.iter().map(String::as_str)).max(26);
    let _ =
        writeln!(out, "{:<20}  {heading:<w$}  {:<20}  {:>7}  SCHEDULE", "TASK", "LAST", "RUNNING");
    for ((task, schedule, _, last, running), next) in rows.into_iter().zip(nexts) {
        let last = last.map_or("-".into(), |l| l.0.to_owned());
        let _ =
            writeln!(out, "{:<20}  {next:<w$}  {last:<20}  {running:>7}  {schedule}", task.name);
    }
    Ok(ExitCode::SUCCESS)
}

/// `cronfleet status` from a running agent's API.
fn from_api(client: &Client, as_json: bool, view: &View) -> Result<ExitCode, String> {
    let node: Node = client.get("/api/v1/node")?;
    let tasks: TaskList = client.get("/api/v1/tasks")?;
    let here: Vec<&Task> =
        tasks.tasks.iter().filter(|t| t.runs_here || !t.definition.enabled).collect();
    let schedule =
        |t: &Task| t.definition.description().unwrap_or("daemon: kept running").to_owned();
    let mut out = std::io::stdout().lock();
    if as_json {
        let rows: Vec<serde_json::Value> = here
            .iter()
            .map(|t| {
                let last = t.last_run.as_ref();
                json!({
                    "name": t.definition.name, "enabled": t.definition.enabled,
                    "paused": t.paused, "paused_until": t.paused_until,
                    "schedule": schedule(t), "next": t.next_run,
                    "last_outcome": last.map(|r| r.outcome.as_str()),
                    "last_slot": last.map(|r| &r.slot), "running": t.running,
                    "daemon": t.daemon,
                })
            })
            .collect();
        let agent = json!({
            "running": true, "pid": node.pid, "node": node.name,
            "version": node.version, "started_at": node.started_at,
            "task_file": node.task_file,
        });
        let _ = writeln!(out, "{}", json!({ "agent": agent, "tasks": rows }));
        return Ok(ExitCode::SUCCESS);
    }
    let _ = writeln!(
        out,
        "agent: running, pid {}, node {}, since {}, version {}",
        node.pid,
        node.name,
        view.show(&node.started_at),
        node.version
    );
    let _ = writeln!(out, "config: {}", node.config.display());
    if let Some(warning) = not_in_effect(&node.task_file, view) {
        let _ = writeln!(out, "{warning}");
    }
    let _ = writeln!(out);
    let nexts: Vec<String> = here
        .iter()
        .map(|t| {
            if !t.definition.enabled {
                "disabled".to_owned()
            } else if t.paused {
                match &t.paused_until {
                    Some(until) => format!("paused until {}", view.show(until)),
                    None => "paused".to_owned(),
                }
            } else if let Some(daemon) = &t.daemon {
                daemon.describe()
            } else {
                t.next_run.as_deref().map_or_else(|| "-".to_owned(), |n| view.show(n))
            }
        })
        .collect();
    let heading = view.heading("NEXT");
    let w = zone::width(&heading, nexts.iter().map(String::as_str)).max(26);
    let _ =
        writeln!(out, "{:<20}  {heading:<w$}  {:<20}  {:>7}  SCHEDULE", "TASK", "LAST", "RUNNING");
    for (t, next) in here.into_iter().zip(nexts) {
        let last = t.last_run.as_ref().map_or("-", |r| r.outcome.as_str());
        let _ = writeln!(
            out,
            "{:<20}  {next:<w$}  {last:<20}  {:>7}  {}",
            t.definition.name,
            t.running,
            schedule(t)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `cronfleet nodes`.
#[derive(Debug, Args)]
pub struct NodesArgs {
    /// One JSON object, for scripts.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    zone: ZoneArgs,
    #[command(flatten)]
    remote: Remote,
}

/// Runs `cronfleet nodes`: the nodes registered in the agent's store (with a shared store,
/// the whole fleet), alive, stopped or lost.
pub fn nodes(args: NodesArgs) -> Result<ExitCode, String> {
    let view = args.zone.view()?;
    let nodes: NodeList = args.remote.client()?.get("/api/v1/nodes")?;
    let mut out = std::io::stdout().lock();
    if args.json {
        let _ = writeln!(out, "{}", serde_json::to_string(&nodes).map_err(|e| e.to_string())?);
        return Ok(ExitCode::SUCCESS);
    }
    let heading = view.heading("LAST SEEN");
    let seen: Vec<String> = nodes.nodes.iter().map(|n| view.show(&n.last_seen)).collect();
    let w = zone::width(&heading, seen.iter().map(String::as_str));
    let _ = writeln!(
        out,
        "{:<20}  {:<8}  {:<8}  {heading:<w$}  {:<20}  API",
        "NODE", "STATUS", "VERSION", "TAGS"
    );
    for (n, seen) in nodes.nodes.iter().zip(&seen) {
        let _ = writeln!(
            out,
            "{:<20}  {:<8}  {:<8}  {seen:<w$}  {:<20}  {}",
            n.name,
            model::name_of(&n.status),
            n.version,
            n.tags.join(","),
            n.api.as_deref().unwrap_or("-")
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// What to say when the task file on disk is not in effect (its last reload failed): the
/// time (in `view`'s zone), the errors (at most 5 lines), and that the previous tasks run.
pub(super) fn not_in_effect(
    file: &crate::api::model::TaskFileState,
    view: &View,
) -> Option<String> {
    if file.in_effect {
        return None;
    }
    let mut text = format!(
        "NOT IN EFFECT: the reload at {} failed ({} error{}); the agent runs the tasks it read \
         at {}. Fix the file, then `cronfleet reload`.",
        view.show(&file.last_reload_at),
        file.errors.len(),
        if file.errors.len() == 1 { "" } else { "s" },
        view.show(&file.last_success_at)
    );
    for line in file.errors.iter().flat_map(|e| e.lines()).take(5) {
        text.push_str("\n  ");
        text.push_str(line);
    }
    Some(text)
}
