//! The JSON routes under `/api/v1`.

use std::{collections::HashMap, convert::Infallible, sync::Arc, time::Duration};

use axum::{
    extract::State,
    http::{header, HeaderMap, StatusCode},
    response::{
        sse::{Event, KeepAlive, Sse},
        IntoResponse, Response,
    },
    Extension, Json,
};
use jiff::tz::TimeZone;
use serde::Deserialize;
use serde_json::Value;

use super::{
    auth::Role,
    error::ApiError,
    extract::{JsonBody, NoBody, NoParams, Params, Segment, TaskFileBody},
    model::{
        self, Counts, Killing, Missed, Node, NodeInfo, NodeList, PauseRequest, Plan, ResumeRequest,
        Run, RunPage, RunStarted, Task, TaskDetail, TaskFields, TaskList,
    },
    Api,
};
use crate::{
    config::Kind,
    store::{Outcome, RunFilter, RunRecord},
};

type Result<T> = std::result::Result<T, ApiError>;

/// Most runs in one page.
const MAX_LIMIT: u32 = 1000;

/// `GET /api/v1/tasks?origin=file|api&label=KEY=VALUE`: every task, in file order then API
/// tasks by creation.
pub async fn tasks(
    State(api): State<Arc<Api>>,
    Extension(role): Extension<Role>,
    Params(query): Params<Vec<(String, String)>>,
) -> Result<Json<TaskList>> {
    let mut origin = None;
    let mut labels: Vec<(String, String)> = Vec::new();
    for (key, value) in &query {
        match key.as_str() {
            "origin" if value == "file" || value == "api" => origin = Some(value.clone()),
            "origin" => return Err(ApiError::bad_request("origin: expected file or api")),
            "label" => match value.split_once('=') {
                Some((k, v)) => labels.push((k.to_owned(), v.to_owned())),
                None => return Err(ApiError::bad_request("label: expected KEY=VALUE")),
            },
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown parameter {other:?}: use origin, label"
                )))
            }
        }
    }
    let views = api.agent.tasks().await;
    let recent = api.agent.services.store.recent_by_task(1).await?;
    let last: HashMap<&str, &RunRecord> = recent.iter().map(|r| (r.task.as_str(), r)).collect();
    let tasks = views
        .iter()
        .filter(|v| origin.as_deref().is_none_or(|o| v.task.origin.as_str() == o))
        .filter(|v| labels.iter().all(|(k, val)| v.task.labels.get(k) == Some(val)))
        .map(|v| Task::of(v, last.get(v.task.name.as_str()).copied(), role == Role::Admin))
        .collect();
    Ok(Json(TaskList { tasks }))
}

/// The revision an `If-Match` header asks for: `"3"` (the task's ETag) or `3`, of at most 18
/// digits; `*` (or an empty header) asks for none in particular. A weak tag (`W/"3"`) never matches: `If-Match`
/// compares strongly (RFC 9110, 13.1.1), so the precondition fails (412) whatever the
/// revision. Anything else is a 400 (the OpenAPI document has the pattern).
fn if_match(headers: &HeaderMap) -> Result<Option<i64>> {
    let Some(value) = headers.get(header::IF_MATCH) else { return Ok(None) };
    let bad = || ApiError::bad_request("If-Match: expected a task revision, like \"3\"");
    let text = value.to_str().map_err(|_| bad())?.trim();
    if text == "*" || text.is_empty() {
        return Ok(None);
    }
    if let Some(tag) = text.strip_prefix("W/") {
        return Err(ApiError::new(
            StatusCode::PRECONDITION_FAILED,
            "precondition_failed",
            format!("If-Match: a weak ETag never matches; send the task's ETag as given, {tag}"),
        ));
    }
    let digits = text.strip_prefix('"').and_then(|t| t.strip_suffix('"')).unwrap_or(text);
    let revision = (1..=18).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit());
    match digits.parse::<i64>() {
        Ok(n) if revision => Ok(Some(n)),
        _ => Err(bad()),
    }
}

/// The ETag of a task created through the API: its revision.
fn etag(view: &crate::agent::TaskView) -> Option<String> {
    view.stored.as_ref().map(|s| format!("\"{}\"", s.revision))
}

/// A task (201 or 200) with its revision as the ETag.
fn stored_task(status: StatusCode, view: &crate::agent::TaskView, role: Role) -> Response {
    let body = Json(Task::of(view, None, role == Role::Admin));
    match etag(view) {
        Some(etag) => (status, [(header::ETAG, etag)], body).into_response(),
        None => (status, body).into_response(),
    }
}

/// `POST /api/v1/tasks`: a new task from a JSON object of task file fields (with `name`).
pub async fn create_task(
    State(api): State<Arc<Api>>,
    Extension(role): Extension<Role>,
    Params(NoParams {}): Params<NoParams>,
    JsonBody(mut fields): JsonBody<TaskFields>,
) -> Result<Response> {
    let name = match fields.remove("name") {
        Some(Value::String(n)) => n,
        _ => return Err(ApiError::bad_request("name: a task needs a name (a string)")),
    };
    let view = api.agent.create_task(&name, Value::Object(fields)).await?;
    Ok(stored_task(StatusCode::CREATED, &view, role))
}

/// `PUT /api/v1/tasks/{name}` (replace) and `PATCH` (merge), with an optional `If-Match`.
async fn change_task(
    api: &Api,
    role: Role,
    name: &str,
    headers: &HeaderMap,
    mut change: TaskFields,
    patch: bool,
) -> Result<Response> {
    let expected = if_match(headers)?;
    match change.remove("name") {
        None | Some(Value::Null) => {}
        Some(Value::String(n)) if n == name => {}
        Some(_) => {
            return Err(crate::agent::ControlError::Invalid(vec![crate::config::ConfigError {
                file: "api".into(),
                line: 0,
                column: 0,
                task: None,
                field: Some("name".into()),
                message: format!("a task cannot be renamed: name must be {name:?}, or left out"),
            }])
            .into())
        }
    }
    let view = api.agent.change_task(name, Value::Object(change), patch, expected).await?;
    Ok(stored_task(StatusCode::OK, &view, role))
}

/// `PUT /api/v1/tasks/{name}`.
pub async fn replace_task(
    State(api): State<Arc<Api>>,
    Extension(role): Extension<Role>,
    Segment(name): Segment,
    headers: HeaderMap,
    Params(NoParams {}): Params<NoParams>,
    JsonBody(change): JsonBody<TaskFields>,
) -> Result<Response> {
    change_task(&api, role, &name, &headers, change, false).await
}

/// `PATCH /api/v1/tasks/{name}`.
pub async fn patch_task(
    State(api): State<Arc<Api>>,
    Extension(role): Extension<Role>,
    Segment(name): Segment,
    headers: HeaderMap,
    Params(NoParams {}): Params<NoParams>,
    JsonBody(change): JsonBody<TaskFields>,
) -> Result<Response> {
    change_task(&api, role, &name, &headers, change, true).await
}

/// `DELETE /api/v1/tasks/{name}`.
pub async fn delete_task(
    State(api): State<Arc<Api>>,
    Segment(name): Segment,
    headers: HeaderMap,
    Params(NoParams {}): Params<NoParams>,
    JsonBody(NoBody {}): JsonBody<NoBody>,
) -> Result<Response> {
    api.agent.delete_task(&name, if_match(&headers)?).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /api/v1/tasks/{name}`: the task, its next 10 fire times and its last 20 runs.
pub async fn task(
    State(api): State<Arc<Api>>,
    Extension(role): Extension<Role>,
    Segment(name): Segment,
    Params(NoParams {}): Params<NoParams>,
) -> Result<Response> {
    let view = api.agent.task(&name).await.ok_or_else(|| no_task(&name))?;
    let filter =
        RunFilter { task: Some(name), limit: 20, without_output: true, ..RunFilter::default() };
    let runs = api.agent.services.store.runs(&filter).await?;
    let etag = etag(&view);
    let next_runs = match &view.task.kind {
        Kind::Cron(schedule) => schedule
            .iter_after(&crate::clock::zoned_now())
            .take(10)
            .map(|z| model::zoned(&z))
            .collect(),
        Kind::Daemon => Vec::new(),
    };
    let detail = TaskDetail {
        task: Task::of(&view, runs.first(), role == Role::Admin),
        next_runs,
        runs: runs.iter().map(Run::of).collect(),
    };
    Ok(match etag {
        Some(etag) => ([(header::ETAG, etag)], Json(detail)).into_response(),
        None => Json(detail).into_response(),
    })
}

/// A task the agent has (on this node or not), or one whose runs are still in the history (a
/// deleted task's, until retention prunes them); else 404.
async fn known_task(api: &Api, name: &str) -> Result<()> {
    if api.agent.task(name).await.is_some() {
        return Ok(());
    }
    let filter = RunFilter {
        task: Some(name.to_owned()),
        limit: 1,
        without_output: true,
        ..RunFilter::default()
    };
    if api.agent.services.store.runs(&filter).await?.is_empty() {
        return Err(no_task(name));
    }
    Ok(())
}

fn no_task(name: &str) -> ApiError {
    ApiError::not_found(format!("no task named {name:?}"))
}

/// `POST /api/v1/tasks/{name}/run`.
pub async fn run_task(
    State(api): State<Arc<Api>>,
    Segment(name): Segment,
    Params(NoParams {}): Params<NoParams>,
    JsonBody(NoBody {}): JsonBody<NoBody>,
) -> Result<Response> {
    let run_id = api.agent.run_now(&name).await?;
    Ok((StatusCode::ACCEPTED, Json(RunStarted { run_id, task: name })).into_response())
}

/// `POST /api/v1/tasks/{name}/pause`, with an optional body `{"until": INSTANT}`.
pub async fn pause_task(
    State(api): State<Arc<Api>>,
    Extension(role): Extension<Role>,
    Segment(name): Segment,
    Params(NoParams {}): Params<NoParams>,
    JsonBody(PauseRequest { until }): JsonBody<PauseRequest>,
) -> Result<Json<Task>> {
    let until = match until {
        None => None,
        Some(text) => {
            let at = crate::timearg::instant(&text, None, &TimeZone::system())
                .map_err(|e| ApiError::bad_request(format!("until: {e}")))?
                .timestamp();
            if at <= crate::clock::now() {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "unprocessable",
                    format!("until: {text} is not in the future"),
                ));
            }
            Some(at)
        }
    };
    api.agent.pause(&name, until).await?;
    task_state(&api, &name, role).await
}

/// `POST /api/v1/tasks/{name}/resume`, with an optional body `{"missed": "skip" | "once"}`:
/// slots passed while paused are skipped (the default), or the latest of them runs now.
pub async fn resume_task(
    State(api): State<Arc<Api>>,
    Extension(role): Extension<Role>,
    Segment(name): Segment,
    Params(NoParams {}): Params<NoParams>,
    JsonBody(ResumeRequest { missed }): JsonBody<ResumeRequest>,
) -> Result<Json<Task>> {
    api.agent.resume_with(&name, missed == Some(Missed::Once)).await?;
    task_state(&api, &name, role).await
}

async fn task_state(api: &Api, name: &str, role: Role) -> Result<Json<Task>> {
    let view = api.agent.task(name).await.ok_or_else(|| no_task(name))?;
    Ok(Json(Task::of(&view, None, role == Role::Admin)))
}

/// The query of `GET /api/v1/runs`, checked.
fn run_filter(query: &[(String, String)]) -> Result<RunFilter> {
    let mut filter = RunFilter { limit: 50, without_output: true, ..RunFilter::default() };
    let instant = |key: &str, text: &str| -> Result<i64> {
        crate::timearg::instant(text, None, &TimeZone::system())
            .map(|z| z.timestamp().as_second())
            .map_err(|e| ApiError::bad_request(format!("{key}: {e}")))
    };
    for (key, value) in query {
        match key.as_str() {
            "task" => filter.task = Some(value.clone()),
            "outcome" => {
                let outcome = value
                    .parse::<Outcome>()
                    .map_err(|e| ApiError::bad_request(format!("outcome: {e}")))?;
                filter.outcome = Some(outcome);
            }
            "since" => filter.since = Some(instant(key, value)?),
            "until" => filter.until = Some(instant(key, value)?),
            "limit" => {
                filter.limit =
                    value.parse::<u32>().ok().filter(|n| (1..=MAX_LIMIT).contains(n)).ok_or_else(
                        || ApiError::bad_request(format!("limit: expected 1-{MAX_LIMIT}")),
                    )?;
            }
            "cursor" => {
                if crate::store::parse_cursor(value).is_none() {
                    return Err(ApiError::bad_request("cursor: not a cursor this API gave"));
                }
                filter.cursor = Some(value.clone());
            }
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown parameter {other:?}: use task, outcome, since, until, limit, cursor"
                )))
            }
        }
    }
    Ok(filter)
}

/// `GET /api/v1/runs?task=&outcome=&since=&until=&limit=&cursor=`: newest first. A `task`
/// that is neither a task of the agent nor in the run history is a 404, not an empty page.
pub async fn runs(
    State(api): State<Arc<Api>>,
    Params(query): Params<Vec<(String, String)>>,
) -> Result<Json<RunPage>> {
    let filter = run_filter(&query)?;
    if let Some(task) = &filter.task {
        known_task(&api, task).await?;
    }
    let page = api.agent.services.store.page(&filter).await?;
    Ok(Json(RunPage { next_cursor: page.next, runs: page.runs.iter().map(Run::of).collect() }))
}

async fn find_run(api: &Api, id: &str) -> Result<RunRecord> {
    api.agent
        .services
        .store
        .run(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no run {id:?}")))
}

/// `GET /api/v1/runs/{id}`: the run with its output (as text; invalid UTF-8 replaced).
pub async fn run(
    State(api): State<Arc<Api>>,
    Segment(id): Segment,
    Params(NoParams {}): Params<NoParams>,
) -> Result<Json<Run>> {
    let live = api.agent.services.find(&id);
    let record = find_run(&api, &id).await?;
    let mut run = Run::of(&record);
    let output = match live {
        Some(live) => live.live.read_from(0).0,
        None => record.output,
    };
    run.output = Some(String::from_utf8_lossy(&output).into_owned());
    Ok(Json(run))
}

/// The query of `GET /api/v1/runs/{id}/output`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputQuery {
    /// `true`: stream the output as it comes.
    follow: Option<String>,
}

/// `GET /api/v1/runs/{id}/output`: the output as plain text; with `?follow=true`, a stream of
/// server-sent events: `output` events with the text as it comes, then one `end` event with
/// the finished run.
pub async fn output(
    State(api): State<Arc<Api>>,
    Segment(id): Segment,
    Params(query): Params<OutputQuery>,
) -> Result<Response> {
    let follow = match query.follow.as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "follow: expected true or false, not {other:?}"
            )))
        }
    };
    if follow {
        return follow_output(api, id).await;
    }
    // The run in flight first: when it is not (any more), its final record is in the store.
    let live = api.agent.services.find(&id);
    let record = find_run(&api, &id).await?;
    let bytes = live.map_or(record.output, |l| l.live.read_from(0).0);
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], bytes).into_response())
}

/// A run's output as server-sent events: `output` events with the text as it comes, then one
/// `end` event with the finished run (`?follow=true`, and the dashboard's live output).
pub(super) async fn follow_output(api: Arc<Api>, id: String) -> Result<Response> {
    let live = api.agent.services.find(&id);
    let record = find_run(&api, &id).await?;
    let stream = futures_util::stream::unfold(
        (api.clone(), id, live, Some(record), 0usize, false),
        |(api, id, live, record, seen, ended)| async move {
            if ended {
                return None;
            }
            // Finished runs: everything at once, then the end.
            let Some(l) = live.clone() else {
                let record = match record {
                    Some(r) => r,
                    None => api.agent.services.store.run(&id).await.ok().flatten()?,
                };
                if seen < record.output.len() {
                    let text = String::from_utf8_lossy(&record.output[seen..]).into_owned();
                    let event = Event::default().event("output").data(text);
                    let len = record.output.len();
                    return Some((
                        Ok::<_, Infallible>(event),
                        (api, id, None, Some(record), len, false),
                    ));
                }
                let event = Event::default().event("end").data(end(&record));
                return Some((Ok(event), (api, id, None, None, seen, true)));
            };
            l.live.changed(seen).await;
            let (chunk, done) = l.live.read_from(seen);
            let seen = seen + chunk.len();
            if chunk.is_empty() && done {
                // Over: the store has the final record (its output is what was streamed).
                let record = api.agent.services.store.run(&id).await.ok().flatten().map(|mut r| {
                    r.output.truncate(seen);
                    r
                });
                let event = match &record {
                    Some(r) => Event::default().event("end").data(end(r)),
                    None => Event::default().event("end").data("{}"),
                };
                return Some((Ok(event), (api, id, None, None, seen, true)));
            }
            let event = Event::default().event("output").data(String::from_utf8_lossy(&chunk));
            Some((Ok(event), (api, id, live, None, seen, false)))
        },
    );
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}

/// The data of the `end` event: the finished run.
fn end(record: &RunRecord) -> String {
    serde_json::to_string(&Run::of(record)).unwrap_or_else(|_| "{}".to_owned())
}

/// `POST /api/v1/runs/{id}/kill`.
pub async fn kill(
    State(api): State<Arc<Api>>,
    Segment(id): Segment,
    Params(NoParams {}): Params<NoParams>,
    JsonBody(NoBody {}): JsonBody<NoBody>,
) -> Result<Response> {
    match api.agent.kill(&id) {
        Ok(()) => {
            Ok((StatusCode::ACCEPTED, Json(Killing { killing: true, run_id: id })).into_response())
        }
        Err(e) => match api.agent.services.store.run(&id).await? {
            Some(r) => {
                Err(ApiError::new(StatusCode::CONFLICT, "not_running", not_running(&api, &r)))
            }
            None => Err(e.into()),
        },
    }
}

/// Why a run that is not in flight here cannot be killed: how it ended, or where it runs.
fn not_running(api: &Api, r: &RunRecord) -> String {
    let id = &r.id;
    match r.outcome {
        Outcome::Running if r.node != api.agent.services.node => format!(
            "run {id:?} is not running on this node: it runs on {:?}, kill it through that node's agent",
            r.node
        ),
        // Its end is being recorded.
        Outcome::Running => format!("run {id:?} is not running (it is ending)"),
        Outcome::Skipped | Outcome::Missed => {
            format!("run {id:?} is not running (it never ran: {})", r.outcome.as_str())
        }
        outcome => {
            format!("run {id:?} is not running (it ended: {})", outcome.as_str().replace('_', " "))
        }
    }
}

/// `POST /api/v1/reload`: re-reads the task file; an invalid one changes nothing (422 with
/// every error).
pub async fn reload(
    State(api): State<Arc<Api>>,
    Params(NoParams {}): Params<NoParams>,
    JsonBody(NoBody {}): JsonBody<NoBody>,
) -> Result<Json<Counts>> {
    match api.agent.reload().await {
        Ok(done) => Ok(Json(done.into())),
        Err(errors) => Err(ApiError::invalid_file(
            &errors,
            format!(
                "the task file has {} error(s); the previous tasks keep running",
                errors.0.len()
            ),
        )),
    }
}

/// `POST /api/v1/stop`: the agent stops as on SIGTERM (nothing new starts, runs in flight get
/// `--shutdown-grace`, then their groups are killed) after answering 202.
pub async fn stop(
    State(api): State<Arc<Api>>,
    Params(NoParams {}): Params<NoParams>,
    JsonBody(NoBody {}): JsonBody<NoBody>,
) -> (StatusCode, Json<model::Stopping>) {
    let pid = std::process::id();
    tracing::warn!("stop asked through the API");
    // The answer goes out first; then the same path as SIGTERM.
    tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let me = nix::unistd::Pid::from_raw(pid as i32);
        let _ = nix::sys::signal::kill(me, nix::sys::signal::Signal::SIGTERM);
    });
    let grace = api.agent.options.shutdown_grace.as_secs();
    (StatusCode::ACCEPTED, Json(model::Stopping { pid, shutdown_grace_s: grace }))
}

/// The query of `POST /api/v1/plan`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanQuery {
    /// The file's name, for messages [default: tasks.toml].
    file: Option<String>,
}

/// The query of `POST /api/v1/apply`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplyQuery {
    /// The file's name, for messages [default: tasks.toml].
    file: Option<String>,
    /// Apply a file that defines no task (removing every task of the task file).
    allow_empty: Option<bool>,
}

/// The name a task file is given in messages.
fn label(file: Option<String>) -> String {
    file.unwrap_or_else(|| "tasks.toml".to_owned())
}

/// `POST /api/v1/plan?file=NAME` with a task file as the body: what a reload of it would do.
pub async fn plan(
    State(api): State<Arc<Api>>,
    Params(query): Params<PlanQuery>,
    TaskFileBody(text): TaskFileBody,
) -> Result<Json<Plan>> {
    let label = label(query.file);
    match api.agent.plan(&text, &label).await {
        Ok(plan) => Ok(Json(Plan::from(&plan))),
        Err(errors) => {
            Err(ApiError::invalid_file(&errors, format!("{label} has {} error(s)", errors.0.len())))
        }
    }
}

/// `POST /api/v1/apply?file=NAME&allow_empty=true`: writes the body as the agent's task file
/// and reloads it. A file that defines no task is refused (409 `empty_task_file`) unless
/// `allow_empty=true`.
pub async fn apply(
    State(api): State<Arc<Api>>,
    Params(query): Params<ApplyQuery>,
    TaskFileBody(text): TaskFileBody,
) -> Result<Json<Plan>> {
    let label = label(query.file);
    let allow_empty = query.allow_empty.unwrap_or(false);
    match api.agent.apply(&text, &label, allow_empty).await {
        // Applied: what plan warned about was asked for.
        Ok((plan, done)) => {
            Ok(Json(Plan { applied: Some(done.into()), warnings: Vec::new(), ..Plan::from(&plan) }))
        }
        Err(crate::agent::ApplyError::Invalid(errors)) => Err(ApiError::invalid_file(
            &errors,
            format!("{label} has {} error(s); nothing was written", errors.0.len()),
        )),
        Err(e @ crate::agent::ApplyError::Empty { .. }) => {
            Err(ApiError::new(StatusCode::CONFLICT, "empty_task_file", e.to_string()))
        }
        Err(crate::agent::ApplyError::Write(message)) => Err(ApiError::internal(message)),
        Err(e @ crate::agent::ApplyError::ReadOnly(..)) => {
            Err(ApiError::new(StatusCode::CONFLICT, "task_file_read_only", e.to_string()))
        }
    }
}

/// `GET /api/v1/node`: this node, its host and its agent.
pub async fn node(
    State(api): State<Arc<Api>>,
    Params(NoParams {}): Params<NoParams>,
) -> Json<Node> {
    let agent = &api.agent;
    let host = &agent.options.host;
    let uptime = crate::clock::now().duration_since(agent.started).as_secs();
    let load: Vec<f64> = std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .filter_map(|x| x.parse().ok())
        .collect();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem = |key: &str| -> Option<u64> {
        let line = meminfo.lines().find(|l| l.starts_with(key))?;
        Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
    };
    let rss = std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map(|kb| kb * 1024);
    let tasks = agent.tasks().await;
    Json(Node {
        addresses: host.addresses.iter().map(ToString::to_string).collect(),
        agent_rss: rss,
        config: agent.options.config.clone(),
        task_file: model::TaskFileState::of(&agent.reload_state()),
        host: model::Machine {
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            load,
            memory_available: mem("MemAvailable:"),
            memory_total: mem("MemTotal:"),
        },
        name: host.name.clone(),
        pid: std::process::id(),
        runs_in_flight: agent.services.running().len(),
        started_at: agent.started.to_string(),
        tags: host.tags.clone(),
        tasks: tasks.iter().filter(|t| t.here).count(),
        uptime_s: uptime,
        version: env!("CARGO_PKG_VERSION").to_owned(),
    })
}

/// `GET /api/v1/nodes`: every node registered in the store (with a shared store, the fleet),
/// alive, stopped or lost.
pub async fn nodes(
    State(api): State<Arc<Api>>,
    Params(NoParams {}): Params<NoParams>,
) -> Result<Json<NodeList>> {
    let now = crate::clock::now();
    let mut nodes = Vec::new();
    for n in api.agent.nodes().await? {
        nodes.push(NodeInfo::of(&n, crate::agent::node_status(&n, now)));
    }
    Ok(Json(NodeList { nodes }))
}

/// `GET /api/v1/openapi.json`: the OpenAPI document.
pub async fn openapi(Params(NoParams {}): Params<NoParams>) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], super::OPENAPI).into_response()
}

/// `GET /metrics`.
pub async fn metrics(State(api): State<Arc<Api>>) -> Response {
    let agent = &api.agent;
    let mut present = crate::metrics::Present::default();
    let views = agent.tasks().await;
    // A run still going when its task was deleted ended after the task set changed: its
    // series go now.
    let names: std::collections::HashSet<&str> =
        views.iter().map(|v| v.task.name.as_str()).collect();
    agent.services.metrics.retain_tasks(|task| names.contains(task));
    for view in &views {
        if view.here {
            present.tasks += 1;
        }
        if view.running > 0 {
            present.running.insert(view.task.name.clone(), view.running as u64);
        }
        if let Some(next) = &view.next {
            present
                .next
                .insert(view.task.name.clone(), next.timestamp().as_millisecond() as f64 / 1000.0);
        }
    }
    let services = &agent.services;
    if let Some(member) = &services.fleet {
        let claims = member.claim_round_trips.load(std::sync::atomic::Ordering::Relaxed);
        present.fleet = Some((member.db.away(), claims));
    }
    let text = services.metrics.render(&present);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn run_filter_checks_every_parameter() {
        let f = run_filter(&q(&[
            ("task", "a"),
            ("outcome", "failed"),
            ("limit", "5"),
            ("since", "2026-01-01T00:00:00Z"),
        ]))
        .unwrap();
        assert_eq!(f.task.as_deref(), Some("a"));
        assert_eq!(f.outcome, Some(Outcome::Failed));
        assert_eq!(f.limit, 5);
        assert_eq!(f.since, Some(1_767_225_600));
        for bad in [
            ("limit", "0"),
            ("limit", "1001"),
            ("limit", "x"),
            ("outcome", "great"),
            ("since", "yesterday-ish"),
            ("cursor", "nope"),
            ("colour", "red"),
        ] {
            let e = run_filter(&q(&[bad])).unwrap_err();
            assert_eq!(e.status, StatusCode::BAD_REQUEST, "{bad:?}");
            assert!(!e.message.is_empty());
        }
    }
}
