//! `cronfleet task ls|show|create|edit|rm` (tasks created through an agent's API) and
//! `cronfleet plan|apply FILE` (a task file, reviewed then applied).

use std::{collections::BTreeMap, io::Write, path::PathBuf, process::ExitCode};

use clap::{Args, Subcommand};
use reqwest::Method;
use serde::Serialize;
use serde_json::{json, Value};

use super::{
    remote::{segment, Body, Client, Remote},
    zone::{self, ZoneArgs},
};
use crate::api::model::{Counts, Plan, Task, TaskDetail, TaskFields, TaskList};

/// `cronfleet task`.
#[derive(Debug, Args)]
pub struct TaskArgs {
    #[command(subcommand)]
    command: TaskCommand,
}

#[derive(Debug, Subcommand)]
enum TaskCommand {
    /// List tasks (both origins, or --origin api|file), optionally by label.
    ///
    /// NEXT is shown in one zone, named in the header: the local zone (TZ, else
    /// /etc/localtime), or --tz ZONE, or --utc; to the second.
    Ls(LsArgs),
    /// Print one task as JSON (its definition, state, revision, next runs, last runs).
    Show(NameArgs),
    /// Create a task through the API (the fields of the task file, as flags or --json).
    Create(Box<DefineArgs>),
    /// Change fields of an API task (only those given; --revision guards against lost updates).
    Edit(Box<DefineArgs>),
    /// Delete an API task (its runs in flight finish).
    Rm(RmArgs),
}

#[derive(Debug, Args)]
struct LsArgs {
    /// Only tasks from the task file (`file`) or created through the API (`api`).
    #[arg(long, value_parser = ["file", "api"])]
    origin: Option<String>,
    /// Only tasks with this label (KEY=VALUE; repeatable).
    #[arg(long = "label", value_name = "KEY=VALUE")]
    labels: Vec<String>,
    /// One JSON object, for scripts (the API's form: each time in its task's zone).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    zone: ZoneArgs,
    #[command(flatten)]
    remote: Remote,
}

#[derive(Debug, Args)]
struct NameArgs {
    /// The task.
    name: String,
    #[command(flatten)]
    remote: Remote,
}

#[derive(Debug, Args)]
struct RmArgs {
    /// The task.
    name: String,
    /// Only if the task is still at this revision.
    #[arg(long, value_name = "N")]
    revision: Option<i64>,
    #[command(flatten)]
    remote: Remote,
}

#[derive(Debug, Args)]
struct DefineArgs {
    /// The task.
    name: String,
    /// Schedule expression (`@every 7d`, `0 9 * * MON-FRI`, ...).
    #[arg(long)]
    schedule: Option<String>,
    /// Anchor of an `@every` schedule [default: when the task is created].
    #[arg(long, value_name = "TIME")]
    anchor: Option<String>,
    /// IANA zone of the schedule.
    #[arg(long, value_name = "ZONE")]
    timezone: Option<String>,
    /// Shell command to run.
    #[arg(long, conflicts_with = "url")]
    command: Option<String>,
    /// URL to call instead of a command (an http task).
    #[arg(long)]
    url: Option<String>,
    /// HTTP method of --url [default: POST with --body, else GET].
    #[arg(long, requires = "url")]
    method: Option<String>,
    /// HTTP body of --url ({{scheduled_at}}, {{run_id}}, {{task}} are filled in).
    #[arg(long, requires = "url")]
    body: Option<String>,
    /// HTTP header of --url, `Name: value` (repeatable).
    #[arg(long = "header", value_name = "NAME: VALUE", requires = "url")]
    headers: Vec<String>,
    /// A label, KEY=VALUE (repeatable).
    #[arg(long = "label", value_name = "KEY=VALUE")]
    labels: Vec<String>,
    /// Enable or disable the task.
    #[arg(long, value_name = "BOOL")]
    enabled: Option<bool>,
    /// More fields as a JSON object (`-` reads it from stdin); flags win.
    #[arg(long, value_name = "JSON")]
    json: Option<String>,
    /// With edit: only if the task is still at this revision.
    #[arg(long, value_name = "N")]
    revision: Option<i64>,
    #[command(flatten)]
    remote: Remote,
}

/// The `http` table of `--url`, `--header`, `--method` and `--body` (what is left out, the
/// agent fills in).
#[derive(Serialize)]
struct HttpFlags<'a> {
    url: &'a str,
    headers: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    method: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    body: Option<&'a str>,
}

fn pair(text: &str, sep: char, what: &str) -> Result<(String, String), String> {
    text.split_once(sep)
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .ok_or_else(|| format!("{what} {text:?}: expected KEY{sep}VALUE"))
}

/// The task file fields the flags describe.
fn definition(args: &DefineArgs) -> Result<TaskFields, String> {
    let mut def = match args.json.as_deref() {
        None => TaskFields::new(),
        Some(text) => {
            let text = if text == "-" {
                std::io::read_to_string(std::io::stdin()).map_err(|e| e.to_string())?
            } else {
                text.to_owned()
            };
            match serde_json::from_str(&text) {
                Ok(Value::Object(m)) => m,
                _ => return Err("--json: expected a JSON object of task fields".into()),
            }
        }
    };
    for (key, value) in [
        ("schedule", &args.schedule),
        ("anchor", &args.anchor),
        ("timezone", &args.timezone),
        ("command", &args.command),
    ] {
        if let Some(v) = value {
            def.insert(key.into(), json!(v));
        }
    }
    if let Some(url) = &args.url {
        let headers =
            args.headers.iter().map(|h| pair(h, ':', "--header")).collect::<Result<_, _>>()?;
        let http =
            HttpFlags { url, headers, method: args.method.as_deref(), body: args.body.as_deref() };
        def.insert("http".into(), serde_json::to_value(http).map_err(|e| e.to_string())?);
    }
    if !args.labels.is_empty() {
        let labels: BTreeMap<String, String> =
            args.labels.iter().map(|l| pair(l, '=', "--label")).collect::<Result<_, _>>()?;
        def.insert("labels".into(), json!(labels));
    }
    if let Some(enabled) = args.enabled {
        def.insert("enabled".into(), json!(enabled));
    }
    Ok(def)
}

fn print_task(task: &Task) {
    let next = task.next_run.as_deref().unwrap_or("-");
    let paused = if task.paused { " (paused)" } else { "" };
    let revision =
        task.stored.as_ref().map_or_else(|| "null".to_owned(), |s| s.revision.to_string());
    println!(
        "{} revision {revision} · {}{paused} · next {next}",
        task.definition.name,
        task.definition.description().unwrap_or("daemon")
    );
}

/// Runs `cronfleet task ...`.
pub fn run(args: TaskArgs) -> Result<ExitCode, String> {
    match args.command {
        TaskCommand::Ls(a) => ls(&a),
        TaskCommand::Show(a) => {
            let path = format!("/api/v1/tasks/{}", segment(&a.name));
            let client = a.remote.client()?;
            let task: TaskDetail = client.about_task(&a.name, client.fetch(&path))?;
            println!("{}", serde_json::to_string_pretty(&task).unwrap_or_default());
            Ok(ExitCode::SUCCESS)
        }
        TaskCommand::Create(a) => {
            let mut def = definition(&a)?;
            def.insert("name".into(), json!(a.name));
            let task: Task = a.remote.client()?.request(
                Method::POST,
                "/api/v1/tasks",
                Body::Fields(&def),
                None,
            )?;
            print_task(&task);
            Ok(ExitCode::SUCCESS)
        }
        TaskCommand::Edit(a) => {
            let def = definition(&a)?;
            let path = format!("/api/v1/tasks/{}", segment(&a.name));
            let client = a.remote.client()?;
            let task: Task = client.about_task(
                &a.name,
                client.request(Method::PATCH, &path, Body::Fields(&def), a.revision),
            )?;
            print_task(&task);
            Ok(ExitCode::SUCCESS)
        }
        TaskCommand::Rm(a) => {
            let path = format!("/api/v1/tasks/{}", segment(&a.name));
            let client = a.remote.client()?;
            client.about_task(
                &a.name,
                client.request::<()>(Method::DELETE, &path, Body::None, a.revision),
            )?;
            println!("deleted {}", a.name);
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn ls(args: &LsArgs) -> Result<ExitCode, String> {
    let mut query = Vec::new();
    if let Some(o) = &args.origin {
        query.push(format!("origin={o}"));
    }
    for l in &args.labels {
        pair(l, '=', "--label")?;
        query.push(format!("label={}", segment(l)));
    }
    let view = args.zone.view()?;
    let path = format!("/api/v1/tasks?{}", query.join("&"));
    let tasks: TaskList = args.remote.client()?.get(&path)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        let _ = writeln!(out, "{}", serde_json::to_string(&tasks).map_err(|e| e.to_string())?);
        return Ok(ExitCode::SUCCESS);
    }
    let nexts: Vec<String> = tasks
        .tasks
        .iter()
        .map(|t| match (&t.next_run, t.paused) {
            (_, true) => "paused".to_owned(),
            (Some(next), false) => view.show(next),
            (None, false) => "-".to_owned(),
        })
        .collect();
    let heading = view.heading("NEXT");
    let w = zone::width(&heading, nexts.iter().map(String::as_str)).max(26);
    let _ = writeln!(
        out,
        "{:<24}  {:<6}  {:>4}  {heading:<w$}  {:<20}  SCHEDULE",
        "TASK", "ORIGIN", "REV", "LABELS"
    );
    for (t, next) in tasks.tasks.iter().zip(&nexts) {
        let d = &t.definition;
        let labels: Vec<String> = d.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let rev = t.stored.as_ref().map_or("-".to_owned(), |s| s.revision.to_string());
        let _ = writeln!(
            out,
            "{:<24}  {:<6}  {rev:>4}  {next:<w$}  {:<20}  {}",
            d.name,
            d.origin.as_str(),
            labels.join(","),
            d.description().unwrap_or("daemon")
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `cronfleet plan` and `cronfleet apply`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The task file to review (or apply).
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// One JSON object, for scripts.
    #[arg(long)]
    json: bool,
    /// The fleet's database (postgres://...): review against (or store as) the task file
    /// every agent started with this --store and without --config runs; they reload it
    /// within a second.
    #[arg(
        long,
        value_name = "URL",
        env = "CRONFLEET_STORE",
        hide_env_values = true,
        conflicts_with = "server"
    )]
    store: Option<String>,
    #[command(flatten)]
    remote: Remote,
}

fn cannot_read(file: &std::path::Path, e: &std::io::Error) -> String {
    format!("cannot read {}: {}", file.display(), crate::config::io_reason(e))
}

/// `cronfleet apply`.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    plan: PlanArgs,
    /// Apply a file that defines no task, removing every task of the task file (refused
    /// without it).
    #[arg(long)]
    allow_empty: bool,
}

/// `plan`/`apply --store`: the file compared with the fleet's stored one, and stored (a file
/// without tasks only with `allow_empty`).
fn with_store(
    args: &PlanArgs,
    url: &str,
    store_it: bool,
    allow_empty: bool,
) -> Result<Plan, String> {
    let text = std::fs::read_to_string(&args.file).map_err(|e| cannot_read(&args.file, &e))?;
    let set = crate::config::parse(&args.file, &text).map_err(|e| e.to_string())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let store = crate::store::Store::connect(url).await.map_err(|e| e.to_string())?;
        let old = match store.task_file().await.map_err(|e| e.to_string())? {
            Some((old, _)) => {
                let label = std::path::Path::new(crate::agent::STORE_FILE);
                crate::config::parse(label, &old).map(|s| s.tasks).unwrap_or_default()
            }
            None => Vec::new(),
        };
        let plan = crate::agent::plan::compare(&old, &set.tasks, &Default::default());
        let mut out = Plan::from(&plan);
        if store_it && plan.leaves_no_task() && !allow_empty {
            let removed: Vec<String> = plan.removed.iter().map(|(n, _)| n.clone()).collect();
            let what = match removed.len() {
                0 => "store a task file without any task".to_owned(),
                n => format!(
                    "remove every task of the fleet's task file ({n}: {})",
                    removed.join(", ")
                ),
            };
            return Err(format!(
                "{} defines no task: applying it would {what}; nothing was stored. To do that, \
                 give --allow-empty",
                args.file.display()
            ));
        }
        if store_it {
            let now = crate::clock::now().to_string();
            let revision = store.put_task_file(&text, &now).await.map_err(|e| e.to_string())?;
            out.revision = Some(revision);
            // Stored: what plan warned about was asked for.
            out.warnings.clear();
        }
        Ok(out)
    })
}

/// Sends the file to the agent's `plan` or `apply` (`query`: more parameters, `&`-joined).
fn send_file(args: &PlanArgs, client: &Client, route: &str, query: &str) -> Result<Plan, String> {
    let text = std::fs::read_to_string(&args.file).map_err(|e| cannot_read(&args.file, &e))?;
    let label = args.file.display().to_string();
    Ok(client.request(
        Method::POST,
        &format!("/api/v1/{route}?file={}{query}", segment(&label)),
        Body::Text(&text),
        None,
    )?)
}

/// The plan's tasks, one a line: added, changed (field by field), removed.
fn show_changes(plan: &Plan) {
    let in_flight = |n: usize| match n {
        0 => String::new(),
        1 => "; 1 run in flight finishes as it is".to_owned(),
        n => format!("; {n} runs in flight finish as they are"),
    };
    for name in &plan.added {
        println!("+ {name}  (added)");
    }
    for c in &plan.changed {
        println!("~ {}  (changed{})", c.name, in_flight(c.running));
        for f in &c.fields {
            println!("    {}: {} -> {}", f.field, f.old, f.new);
        }
    }
    for r in &plan.removed {
        println!("- {}  (removed{})", r.name, in_flight(r.running));
    }
}

fn show_plan(plan: &Plan) {
    show_changes(plan);
    let unchanged = plan.unchanged.len();
    let changes = plan.added.len() + plan.changed.len() + plan.removed.len();
    if changes == 0 {
        println!("no changes ({unchanged} tasks unchanged)");
    } else {
        println!("{changes} change(s), {unchanged} unchanged");
    }
    for w in &plan.warnings {
        println!("warning: {}", w.message);
    }
}

/// What `apply` did, in one line: the file's changes and, when they differ, what they changed
/// on this node (`here`, the reload's counts: tasks of other nodes and disabled tasks are in
/// the file's changes but not run here, which read like a partial failure when printed
/// apart).
fn applied(plan: &Plan, here: Option<Counts>) -> String {
    let unchanged = plan.unchanged.len();
    let (added, changed, removed) = (plan.added.len(), plan.changed.len(), plan.removed.len());
    if added + changed + removed == 0 {
        return format!("no changes ({unchanged} tasks unchanged)");
    }
    let file =
        format!("{added} added, {changed} changed, {removed} removed, {unchanged} unchanged");
    let Some(h) = here.filter(|h| (h.added, h.changed, h.removed) != (added, changed, removed))
    else {
        return file;
    };
    let why = "tasks of other nodes and disabled tasks do not run here";
    let parts: Vec<String> = [(h.added, "added"), (h.changed, "changed"), (h.removed, "removed")]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}"))
        .collect();
    if parts.is_empty() {
        format!("{file}; nothing changes on this node ({why})")
    } else {
        format!("{file}; on this node: {} ({why})", parts.join(", "))
    }
}

/// A plan as JSON, for scripts.
fn plan_json(plan: &Plan) -> Result<String, String> {
    serde_json::to_string(plan).map_err(|e| e.to_string())
}

/// Runs `cronfleet plan FILE`.
pub fn plan(args: PlanArgs) -> Result<ExitCode, String> {
    let plan = match &args.store {
        Some(url) => with_store(&args, url, false, false)?,
        None => send_file(&args, &args.remote.client()?, "plan", "")?,
    };
    if args.json {
        println!("{}", plan_json(&plan)?);
    } else {
        show_plan(&plan);
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `cronfleet apply FILE`: a file that defines no task only with `--allow-empty`.
pub fn apply(args: ApplyArgs) -> Result<ExitCode, String> {
    let ApplyArgs { plan: args, allow_empty } = args;
    let done = match &args.store {
        Some(url) => with_store(&args, url, true, allow_empty)?,
        None => {
            let query = if allow_empty { "&allow_empty=true" } else { "" };
            send_file(&args, &args.remote.client()?, "apply", query)?
        }
    };
    if args.json {
        println!("{}", plan_json(&done)?);
    } else if let Some(revision) = done.revision {
        show_changes(&done);
        let what = applied(&done, None);
        println!("stored as revision {revision}: {what}; the fleet's agents reload it now");
    } else {
        show_changes(&done);
        let here = done.applied.ok_or("the agent did not say what it applied")?;
        println!("applied: {}", applied(&done, Some(here)));
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(added: &[&str], unchanged: &[&str]) -> Plan {
        let names = |n: &[&str]| n.iter().map(|s| (*s).to_owned()).collect();
        Plan {
            added: names(added),
            applied: None,
            changed: Vec::new(),
            removed: Vec::new(),
            revision: None,
            unchanged: names(unchanged),
            warnings: Vec::new(),
        }
    }

    #[test]
    fn apply_says_what_it_did_in_one_line() {
        let counts = |added, changed, removed| Some(Counts { added, changed, removed });
        let p = plan(&["a", "b"], &["c"]);
        assert_eq!(applied(&p, counts(2, 0, 0)), "2 added, 0 changed, 0 removed, 1 unchanged");
        assert_eq!(
            applied(&p, counts(1, 0, 0)),
            "2 added, 0 changed, 0 removed, 1 unchanged; on this node: 1 added (tasks of \
             other nodes and disabled tasks do not run here)"
        );
        assert_eq!(
            applied(&p, counts(0, 0, 0)),
            "2 added, 0 changed, 0 removed, 1 unchanged; nothing changes on this node (tasks \
             of other nodes and disabled tasks do not run here)"
        );
        assert_eq!(applied(&p, None), "2 added, 0 changed, 0 removed, 1 unchanged");
        assert_eq!(
            applied(&plan(&[], &["c", "d"]), counts(0, 0, 0)),
            "no changes (2 tasks unchanged)"
        );
    }
}
