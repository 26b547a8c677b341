//! The dashboard's pages that show things: the tasks, the last 24 hours, the nodes, one task
//! (with its buttons) and one run (with its output, followed live while it runs).

use std::{collections::BTreeMap, sync::Arc};

use axum::{
    extract::{Path, Request, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use jiff::{SignedDuration, Timestamp, Zoned};
use maud::{html, Markup};

use super::{csrf_field, page, permille, to_login, visitor};
use crate::{
    agent::TaskView,
    api::{auth::Role, model, segment, Api},
    config::definition::Definition,
    config::Kind,
    store::{RunFilter, RunRecord},
};

/// The zone every time of the dashboard is shown in (the agent's), by name: one zone per
/// view, always named (in the header of every page).
pub(super) fn zone_name() -> String {
    let zone = jiff::tz::TimeZone::system();
    match zone.iana_name() {
        Some(name) => name.to_owned(),
        None => {
            let now = crate::clock::now();
            format!("UTC{}", zone.to_offset(now))
        }
    }
}

/// A run's slot, short: date and time in the dashboard's zone ([`zone_name`]).
fn short(ts: &str) -> String {
    match ts.parse::<Timestamp>() {
        Ok(t) => t.to_zoned(jiff::tz::TimeZone::system()).strftime("%Y-%m-%d %H:%M:%S").to_string(),
        Err(_) => ts.to_owned(),
    }
}

fn outcome_tag(outcome: &str) -> Markup {
    html! { span class={ "tag " (outcome) } { (outcome.replace('_', " ")) } }
}

/// Runs as small squares, oldest first, left to right.
fn strip(runs: &[&RunRecord]) -> Markup {
    html! {
        span class="strip" {
            @for r in runs.iter().rev() {
                a href={ "/runs/" (segment(&r.id)) } title={ (short(&r.slot)) " " (r.outcome.as_str()) } {
                    i class=(r.outcome.as_str()) {}
                }
            }
        }
    }
}

fn target(view: &TaskView) -> String {
    let mut parts: Vec<String> = view.task.hosts.iter().map(ToString::to_string).collect();
    parts.extend(view.task.tags.iter().map(|t| format!("tag:{t}")));
    if parts.is_empty() {
        "every host".to_owned()
    } else {
        parts.join(", ")
    }
}

fn schedule_words(view: &TaskView) -> String {
    match &view.task.kind {
        Kind::Cron(s) => s.describe(),
        Kind::Daemon => "daemon: kept running".to_owned(),
    }
}

fn next_cell(view: &TaskView) -> String {
    if !view.task.enabled {
        return "disabled".to_owned();
    }
    if !view.here {
        return "not on this node".to_owned();
    }
    match (view.paused, &view.next) {
        (Some(Some(until)), _) => format!("paused until {}", short(&until.to_string())),
        (Some(None), _) => "paused".to_owned(),
        (None, Some(next)) => short(&next.timestamp().to_string()),
        (None, None) if view.daemon.is_some() => view
            .daemon
            .as_ref()
            .map(|d| crate::api::model::Daemon::of(d, crate::clock::now()).describe())
            .unwrap_or_default(),
        (None, None) if view.running > 0 => "running".to_owned(),
        (None, None) => "-".to_owned(),
    }
}

pub(super) async fn overview(State(api): State<Arc<Api>>, headers: HeaderMap) -> Response {
    let Some(visitor) = visitor(&api, &headers) else {
        return to_login(&api, &headers, "/");
    };
    let views = api.agent.tasks().await;
    let recent = api.agent.services.store.recent_by_task(30).await.unwrap_or_default();
    let mut by_task: BTreeMap<&str, Vec<&RunRecord>> = BTreeMap::new();
    for r in &recent {
        by_task.entry(r.task.as_str()).or_default().push(r);
    }
    let host = &api.agent.options.host;
    let reload = api.agent.reload_state();
    let body = html! {
        h1 { "Tasks on " (host.name) }
        @if !reload.in_effect() {
            div class="note err" id="not-in-effect" role="alert" {
                strong { "The task file on disk is not in effect." }
                " Its reload at " (short(&reload.last_attempt.to_string())) " failed; the tasks below are those read at "
                (short(&reload.last_success.to_string())) ". Fix the file, then reload."
                pre { @for e in &reload.errors { (e) "\n" } }
            }
        }
        p {
            (views.len()) " tasks in " (api.agent.options.config.display().to_string()) ", "
            (views.iter().filter(|v| v.here).count()) " run here; "
            (api.agent.services.running().len()) " runs in flight."
        }
        div class="scroll" {
            table id="tasks" {
                thead {
                    tr {
                        th { "Task" } th { "Schedule" } th { "Hosts" } th { "Next run" }
                        th { "Last" } th { "Last 30 runs" } th { "Success" }
                    }
                }
                tbody {
                    @for view in &views {
                        @let runs = by_task.get(view.task.name.as_str()).cloned().unwrap_or_default();
                        tr data-task=(view.task.name) {
                            td { a href={ "/tasks/" (segment(&view.task.name)) } { (view.task.name) } }
                            td class="wrap" { (schedule_words(view)) }
                            td class="wrap" { (target(view)) }
                            td { (next_cell(view)) }
                            td {
                                @match runs.first() {
                                    Some(r) => (outcome_tag(r.outcome.as_str())),
                                    None => "-",
                                }
                            }
                            td { (strip(&runs)) }
                            td { (success_rate(&runs)) }
                        }
                    }
                }
            }
        }
    };
    page("Tasks", Some(&visitor), body).into_response()
}

/// The share of finished runs that succeeded, as a whole percentage.
fn success_rate(runs: &[&RunRecord]) -> String {
    let finished: Vec<&&RunRecord> =
        runs.iter().filter(|r| !matches!(r.outcome.as_str(), "running" | "skipped")).collect();
    let ok = finished.iter().filter(|r| r.outcome.as_str() == "succeeded").count();
    if finished.is_empty() {
        "-".to_owned()
    } else {
        format!("{:.0}%", 100.0 * ok as f64 / finished.len() as f64)
    }
}

pub(super) async fn timeline(State(api): State<Arc<Api>>, headers: HeaderMap) -> Response {
    let Some(visitor) = visitor(&api, &headers) else {
        return to_login(&api, &headers, "/timeline");
    };
    let now = crate::clock::now();
    let day = SignedDuration::from_hours(24);
    let start = now - day;
    let filter = RunFilter {
        since: Some(start.as_second() - 3600),
        limit: 20_000,
        without_output: true,
        ..RunFilter::default()
    };
    let runs = api.agent.services.store.runs(&filter).await.unwrap_or_default();
    let mut rows: BTreeMap<String, Vec<&RunRecord>> = BTreeMap::new();
    for view in api.agent.tasks().await.into_iter().filter(|v| v.here) {
        rows.entry(view.task.name).or_default();
    }
    for r in &runs {
        rows.entry(r.task.clone()).or_default().push(r);
    }
    let total = day.as_secs_f64();
    let pos =
        |t: Timestamp| (t.duration_since(start).as_secs_f64() / total * 100.0).clamp(0.0, 100.0);
    let zone = now.to_zoned(jiff::tz::TimeZone::system()).time_zone().clone();
    // A run's bar: from its start (or the window's) to its end (or now), in percent.
    let bar = |r: &RunRecord| {
        let began = r.started_at.parse::<Timestamp>().ok()?;
        let ended = r.ended_at.as_deref().and_then(|e| e.parse::<Timestamp>().ok()).unwrap_or(now);
        if ended < start {
            return None;
        }
        let left = pos(began.max(start));
        Some((left, (pos(ended) - left).max(0.0)))
    };
    let body = html! {
        h1 { "Last 24 hours" }
        p { "One row per task; each bar is a run from its start to its end (running runs reach now)." }
        div class="scroll" {
            table id="timeline" {
                tbody {
                    tr {
                        th {}
                        td {
                            div class="axis" {
                                @for h in (0..=24).step_by(3) {
                                    @let t = start + SignedDuration::from_hours(h);
                                    span class={ "x" (permille(pos(t))) } {
                                        (t.to_zoned(zone.clone()).strftime("%H:%M").to_string())
                                    }
                                }
                            }
                        }
                    }
                    @for (task, runs) in &rows {
                        tr data-task=(task) {
                            td { a href={ "/tasks/" (segment(task)) } { (task) } }
                            td {
                                div class="tl" {
                                    @for r in runs {
                                        @if let Some((left, width)) = bar(r) {
                                            a href={ "/runs/" (segment(&r.id)) }
                                                title={ (r.task) " " (short(&r.started_at)) " " (r.outcome.as_str()) } {
                                                i class={ (r.outcome.as_str()) " x" (permille(left)) " w" (permille(width)) } {}
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    page("Timeline", Some(&visitor), body).into_response()
}

pub(super) async fn nodes_page(State(api): State<Arc<Api>>, headers: HeaderMap) -> Response {
    let Some(visitor) = visitor(&api, &headers) else {
        return to_login(&api, &headers, "/nodes");
    };
    let now = crate::clock::now();
    let nodes = api.agent.nodes().await.unwrap_or_default();
    let body = html! {
        h1 { "Nodes" }
        p { "The agents registered in this store (a shared PostgreSQL store holds the whole fleet)." }
        div class="scroll" {
            table id="nodes" {
                thead {
                    tr {
                        th { "Node" } th { "Status" } th { "Version" } th { "Last seen" }
                        th { "Addresses" } th { "Tags" } th { "API" }
                    }
                }
                tbody {
                    @for n in &nodes {
                        @let status = crate::agent::node_status(n, now);
                        @let class = match status {
                            crate::store::NodeStatus::Alive => "succeeded",
                            crate::store::NodeStatus::Lost => "failed",
                            crate::store::NodeStatus::Stopped => "skipped",
                        };
                        tr data-node=(n.name) {
                            td { (n.name) }
                            td { span class={ "tag " (class) } { (status.as_str()) } }
                            td { (n.version) }
                            td { (short(&n.last_seen)) }
                            td class="wrap" { (n.addresses.join(", ")) }
                            td { (n.tags.join(", ")) }
                            td {
                                @if let Some(url) = &n.api {
                                    a href=(url) { (url) }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    page("Nodes", Some(&visitor), body).into_response()
}

/// The next fire times, marking those whose UTC offset differs from the one before (a DST
/// change between them).
fn next_times(view: &TaskView, now: &Zoned) -> Markup {
    let Kind::Cron(schedule) = &view.task.kind else {
        return html! { p { "A daemon task runs all the time." } };
    };
    let times: Vec<Zoned> = schedule.iter_after(now).take(10).collect();
    if times.is_empty() {
        return html! { p { "This schedule never fires again." } };
    }
    html! {
        ol id="next" {
            @for (i, t) in times.iter().enumerate() {
                li {
                    (model::zoned(t))
                    @if i > 0 && times[i - 1].offset() != t.offset() {
                        " " span class="dst" { "offset changes to " (maud::display(t.offset())) " (DST)" }
                    }
                }
            }
        }
    }
}

/// Keys and values as a definition list, leaving out nulls; strings as they are, other values
/// as JSON.
fn definition_list<'a>(
    pairs: impl IntoIterator<Item = (&'a str, &'a serde_json::Value)>,
) -> Markup {
    html! {
        dl {
            @for (key, value) in pairs {
                @match value {
                    serde_json::Value::Null => {}
                    serde_json::Value::String(s) => { dt { (key) } dd { (s) } }
                    other => { dt { (key) } dd { (other.to_string()) } }
                }
            }
        }
    }
}

/// The note a button's redirect asks for (`?note=`), if any.
fn flash(uri_query: Option<&str>) -> Markup {
    let note =
        uri_query.and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("note="))).unwrap_or("");
    let text = match note {
        "started" => "Run started.",
        "paused" => "Task paused.",
        "resumed" => "Task resumed.",
        "killing" => "Killing the run.",
        "refused" => "Refused: this needs an admin token.",
        "failed" => "That did not work; see the agent's log.",
        _ => return html! {},
    };
    html! { p class="note" id="note" { (text) } }
}

pub(super) async fn task_page(
    State(api): State<Arc<Api>>,
    Path(name): Path<String>,
    request: Request,
) -> Response {
    let headers = request.headers();
    let Some(visitor) = visitor(&api, headers) else {
        return to_login(&api, headers, &format!("/tasks/{}", segment(&name)));
    };
    let role = visitor.role;
    let Some(view) = api.agent.task(&name).await else {
        let body = html! { h1 { "No task named " (name) } p { a href="/" { "All tasks" } } };
        return (StatusCode::NOT_FOUND, page("Not found", Some(&visitor), body)).into_response();
    };
    let filter = RunFilter {
        task: Some(name.clone()),
        limit: 50,
        without_output: true,
        ..RunFilter::default()
    };
    let runs = api.agent.services.store.runs(&filter).await.unwrap_or_default();
    // Durations, oldest left; a bar's height is its share of the longest.
    let longest = runs.iter().filter_map(|r| r.duration_ms).max().unwrap_or(0).max(1) as f64;
    let (action, label) =
        if view.paused.is_some() { ("resume", "Resume") } else { ("pause", "Pause") };
    let definition = Definition::of(&view.task, role == Role::Admin).fields();
    let body = html! {
        h1 { (name) }
        (flash(request.uri().query()))
        p { (schedule_words(&view)) " · next: " (next_cell(&view)) }
        @if role == Role::Admin && view.here {
            div class="actions" {
                @if matches!(view.task.kind, Kind::Cron(_)) {
                    form method="post" action={ "/tasks/" (segment(&name)) "/run" } {
                        (csrf_field(&visitor))
                        button class="btn main" id="run-now" { "Run now" }
                    }
                }
                form method="post" action={ "/tasks/" (segment(&name)) "/" (action) } {
                    (csrf_field(&visitor))
                    button class="btn" id=(action) { (label) }
                }
            }
        }
        h2 { "Runs" }
        div class="bars" id="durations" {
            @for r in runs.iter().rev() {
                @let ms = r.duration_ms.unwrap_or(0);
                @let height = (ms as f64 / longest * 100.0).max(2.0).round() as u32;
                a href={ "/runs/" (segment(&r.id)) } class={ (r.outcome.as_str()) " h" (height.min(100)) }
                    title=(format_args!("{} {:.3}s", short(&r.slot), ms as f64 / 1000.0)) {}
            }
        }
        div class="scroll" {
            table id="runs" {
                thead {
                    tr {
                        th { "Slot" } th { "Outcome" } th { "Exit" } th { "Duration" } th { "Node" }
                        th {}
                    }
                }
                tbody {
                    @for r in &runs {
                        tr data-run=(r.id) {
                            td { a href={ "/runs/" (segment(&r.id)) } { (short(&r.slot)) } }
                            td { (outcome_tag(r.outcome.as_str())) }
                            td {
                                @match (r.exit_code, r.signal) {
                                    (Some(c), _) => (c),
                                    (None, Some(s)) => { "signal " (s) }
                                    _ => "-",
                                }
                            }
                            td {
                                @match r.duration_ms {
                                    Some(ms) => (format_args!("{:.3}s", ms as f64 / 1000.0)),
                                    None => "-",
                                }
                            }
                            td { (r.node) }
                            td {
                                @if role == Role::Admin && r.outcome.as_str() == "running" {
                                    form method="post" action={ "/runs/" (segment(&r.id)) "/kill" } {
                                        (csrf_field(&visitor))
                                        button class="btn" { "Kill" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Next fire times" }
        (next_times(&view, &crate::clock::zoned_now()))
        h2 { "Definition" }
        (definition_list(definition.iter().map(|(k, v)| (k.as_str(), v))))
    };
    page(&name, Some(&visitor), body).into_response()
}

pub(super) async fn run_page(
    State(api): State<Arc<Api>>,
    Path(id): Path<String>,
    request: Request,
) -> Response {
    let headers = request.headers();
    let Some(visitor) = visitor(&api, headers) else {
        return to_login(&api, headers, &format!("/runs/{}", segment(&id)));
    };
    let role = visitor.role;
    // The run in flight first: when it is not (any more), its final record is in the store.
    let live = api.agent.services.find(&id);
    let Ok(Some(record)) = api.agent.services.store.run(&id).await else {
        let body = html! { h1 { "No run " (id) } };
        return (StatusCode::NOT_FOUND, page("Not found", Some(&visitor), body)).into_response();
    };
    let output = live.as_ref().map_or_else(|| record.output.clone(), |l| l.live.read_from(0).0);
    let fields = serde_json::to_value(model::Run::of(&record)).unwrap_or_default();
    let follow = live.is_some().then(|| format!("/runs/{}/output", segment(&id)));
    let body = html! {
        h1 { "Run " (id) }
        (flash(request.uri().query()))
        p {
            a href={ "/tasks/" (segment(&record.task)) } { (record.task) }
            " · " (outcome_tag(record.outcome.as_str()))
        }
        (definition_list(fields.as_object().into_iter().flatten().map(|(k, v)| (k.as_str(), v))))
        @if live.is_some() && role == Role::Admin {
            div class="actions" {
                form method="post" action={ "/runs/" (segment(&id)) "/kill" } {
                    (csrf_field(&visitor))
                    button class="btn main" id="kill" { "Kill" }
                }
            }
        }
        h2 { "Output" }
        pre id="output" data-follow=[follow] { (String::from_utf8_lossy(&output)) }
        @if live.is_some() {
            script src="/static/live.js" {}
        }
    };
    page(&id, Some(&visitor), body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_times_mark_dst_shifts() {
        let text = "[[task]]\nname = \"t\"\nschedule = \"0 9 * * *\"\ntimezone = \"America/New_York\"\ncommand = \"true\"\n";
        let task =
            crate::config::parse(std::path::Path::new("t.toml"), text).unwrap().tasks.remove(0);
        let view = TaskView {
            task,
            here: true,
            paused: None,
            next: None,
            running: 0,
            stored: None,
            daemon: None,
        };
        let now: Zoned = "2026-03-03T12:00:00-05:00[America/New_York]".parse().unwrap();
        let html = next_times(&view, &now).into_string();
        assert_eq!(html.matches("<li>").count(), 10);
        // 2026-03-08 is the first day in EDT: its 09:00 is marked, and only it.
        assert_eq!(html.matches("class=\"dst\"").count(), 1, "{html}");
        assert!(html.contains("<li>2026-03-08T09:00:00-04:00 <span class=\"dst\">offset changes to -04 (DST)</span></li>"), "{html}");
    }
}
