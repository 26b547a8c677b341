//! The JSON of every `/api/v1` route, byte for byte, against checked-in transcripts in
//! `golden/`: status, the headers a client reads, and the body. What differs from one run to
//! the next (the clock's instants, run ids and cursors, durations, sizes, pids, the port, the
//! temp directory) is
//! replaced by a placeholder that keeps its place and its type (`"<time>"`, `<int>`,
//! `"<string>"`); key order, spacing and everything else are compared exactly.
//!
//! `CRONFLEET_BLESS=1 cargo test -p cronfleet --test api golden` rewrites the transcripts.

use std::{fmt::Write as _, path::PathBuf};

use reqwest::{blocking::RequestBuilder, Method, StatusCode};
use serde_json::{json, Value};

use super::{enc, Agent, READ};

const TASKS: &str = r#"
[[task]]
name = "hello"
schedule = "@yearly"
command = "echo hello"
env = { PLAIN = "visible", DB_PASSWORD = "hunter2" }
secret_env = ["DB_PASSWORD"]
labels = { team = "ops" }

[[task]]
name = "slow"
schedule = "@yearly"
command = "echo started; sleep 60"
concurrency = "allow"
max_running = 3

[[task]]
name = "nightly"
schedule = "30 2 * * *"
timezone = "Europe/Berlin"
argv = ["/bin/true", "--quiet"]
timeout = "5m"
retries = 2
retry_backoff = "30s"
catch_up = "once"
concurrency = "queue"
max_running = 2
workdir = "/tmp"
output_limit = "64KiB"
enabled = false

[[task]]
name = "every"
schedule = "@every 1000h"
anchor = "2010-01-01T00:00:00+01:00"
timezone = "UTC"
command = "true"
enabled = false

[[task]]
name = "hook"
schedule = "@yearly"
http = { url = "http://127.0.0.1:9/check", method = "PUT", headers = { Authorization = "Bearer s3cret" }, body = "{}", expect_status = [200, 204] }
hosts = ["other-*"]
tags = ["gpu"]
concurrency = "replace"

[[task]]
name = "keeper"
kind = "daemon"
command = "sleep 1000"
enabled = false
"#;

/// The task file `plan` and `apply` are given: `hello` changed, `slow` gone, `fresh` new.
const NEW_TASKS: &str = r#"
[[task]]
name = "hello"
schedule = "@monthly"
command = "echo hello"
env = { PLAIN = "visible", DB_PASSWORD = "changed" }
secret_env = ["DB_PASSWORD"]
labels = { team = "ops" }

[[task]]
name = "nightly"
schedule = "30 2 * * *"
timezone = "Europe/Berlin"
argv = ["/bin/true", "--quiet"]
timeout = "5m"
retries = 2
retry_backoff = "30s"
catch_up = "once"
concurrency = "queue"
max_running = 2
workdir = "/tmp"
output_limit = "64KiB"
enabled = false

[[task]]
name = "every"
schedule = "@every 1000h"
anchor = "2010-01-01T00:00:00+01:00"
timezone = "UTC"
command = "true"
enabled = false

[[task]]
name = "hook"
schedule = "@yearly"
http = { url = "http://127.0.0.1:9/check", method = "PUT", headers = { Authorization = "Bearer s3cret" }, body = "{}", expect_status = [200, 204] }
hosts = ["other-*"]
tags = ["gpu"]
concurrency = "replace"

[[task]]
name = "keeper"
kind = "daemon"
command = "sleep 1000"
enabled = false

[[task]]
name = "fresh"
schedule = "@yearly"
command = "true"
enabled = false
"#;

/// A form's content type (curl -d sends it).
const FORM: &str = "application/x-www-form-urlencoded";

/// Keys whose values change from run to run whatever their text.
const VOLATILE: &[&str] = &[
    "duration_ms",
    "cpu_ms",
    "max_rss",
    "pid",
    "uptime_s",
    "agent_rss",
    "load",
    "memory_total",
    "memory_available",
    "cpus",
    "addresses",
    "version",
    "next_cursor",
];

/// A request body.
enum Body {
    None,
    Json(Value),
    /// Text without a content type.
    Text(&'static str),
    /// Text with a content type.
    Typed(&'static str, &'static str),
    Bytes(Vec<u8>),
}

/// The transcripts of one run, checked (or written) at the end.
struct Golden<'a> {
    agent: &'a Agent,
    transcripts: Vec<(String, String)>,
    /// Text replaced in the whole transcript at the end (run ids, whose slot is the time they
    /// were asked for; cursors).
    aliases: Vec<(String, String)>,
}

impl Golden<'_> {
    /// One exchange, recorded as `name`; gives the status and the body.
    fn exchange(
        &mut self,
        name: &str,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Body,
        with: impl FnOnce(RequestBuilder) -> RequestBuilder,
    ) -> (StatusCode, String) {
        let agent = self.agent;
        let mut request = agent.client.request(method.clone(), format!("{}{path}", agent.url));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request = match body {
            Body::None => request,
            Body::Json(v) => request.json(&v),
            Body::Text(t) => request.body(t),
            Body::Typed(content_type, t) => request.header("content-type", content_type).body(t),
            Body::Bytes(b) => request.body(b),
        };
        let response = with(request).send().unwrap();
        let status = response.status();
        let mut text = format!("{method} {path}\n{status}\n");
        for header in ["content-type", "etag", "www-authenticate", "allow"] {
            if let Some(value) = response.headers().get(header) {
                let _ = writeln!(text, "{header}: {}", value.to_str().unwrap());
            }
        }
        let body = String::from_utf8(response.bytes().unwrap().to_vec()).unwrap();
        text.push('\n');
        text.push_str(&self.normalize(&body));
        self.transcripts.push((name.to_owned(), text));
        (status, body)
    }

    fn call(&mut self, name: &str, method: Method, path: &str, body: Body) -> (StatusCode, Value) {
        let admin = self.agent.admin.clone();
        let (status, body) = self.exchange(name, method, path, Some(&admin), body, |r| r);
        (status, serde_json::from_str(&body).unwrap_or(Value::Null))
    }

    fn get(&mut self, name: &str, path: &str) -> Value {
        let (status, body) = self.call(name, Method::GET, path, Body::None);
        assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
        body
    }

    /// A run's id (as given and as in a path) shown with its slot as `<slot>`.
    fn run_id(&mut self, id: &str) {
        let (task, rest) = id.split_once('@').unwrap();
        let attempt = rest.split_once('#').unwrap().1;
        self.aliases.push((id.to_owned(), format!("{task}@<slot>#{attempt}")));
        self.aliases.push((enc(id), format!("{task}@<slot>%23{attempt}")));
    }

    fn alias(&self, text: &str) -> String {
        let mut text = text.to_owned();
        for (from, to) in &self.aliases {
            text = text.replace(from, to);
        }
        text
    }

    /// A body with what varies replaced: JSON by key, server-sent events line by line.
    fn normalize(&self, body: &str) -> String {
        let dir = self.agent.dir.to_str().unwrap();
        let body = body.replace(dir, "<dir>").replace(&self.agent.url, "<url>");
        let body = if body.starts_with('{') || body.starts_with('[') {
            normalize_json(&body)
        } else if body.starts_with("event:") || body.starts_with("data:") {
            body.split('\n')
                .map(|line| match line.strip_prefix("data: ") {
                    Some(data) if data.starts_with('{') => {
                        format!("data: {}", normalize_json(data))
                    }
                    _ => line.to_owned(),
                })
                .collect::<Vec<_>>()
                .join("\n")
        } else {
            body
        };
        normalize_times(&body)
    }
}

/// Compares the transcripts with their files (or writes them all with `CRONFLEET_BLESS=1`).
fn check(transcripts: Vec<(String, String)>) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/api/golden");
    let bless = std::env::var_os("CRONFLEET_BLESS").is_some_and(|v| v == "1");
    let mut files: Vec<(String, String)> = Vec::new();
    for (name, text) in transcripts {
        let file = name.split('/').next().unwrap().to_owned();
        match files.iter_mut().find(|(f, _)| *f == file) {
            Some((_, all)) => {
                all.push_str("\n#### ");
                all.push_str(&name);
                all.push('\n');
                all.push_str(&text);
                all.push('\n');
            }
            None => files.push((file, format!("#### {name}\n{text}\n"))),
        }
    }
    if bless {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
    }
    let mut wrong = Vec::new();
    for (file, text) in &files {
        let path = dir.join(format!("{file}.txt"));
        if bless {
            std::fs::write(&path, text).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&path).unwrap_or_default();
        if want != *text {
            let line = want.lines().zip(text.lines()).position(|(a, b)| a != b);
            let at = line.unwrap_or(want.lines().count().min(text.lines().count()));
            wrong.push(format!(
                "{}: line {}\n  want: {}\n  got:  {}",
                path.display(),
                at + 1,
                want.lines().nth(at).unwrap_or("<end>"),
                text.lines().nth(at).unwrap_or("<end>"),
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "the API's JSON changed (CRONFLEET_BLESS=1 rewrites the goldens):\n{}",
        wrong.join("\n")
    );
}

/// JSON text with the values of `VOLATILE` keys replaced, in place: nothing is parsed into
/// a map, so the key order and the spacing stay as they were sent.
fn normalize_json(text: &str) -> String {
    // For each open container: the key its values belong to (an array's: its own key).
    let mut stack: Vec<(bool, Option<String>)> = Vec::new();
    let mut key: Option<String> = None;
    let mut expect_key = false;
    let bytes = text.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        match c {
            b'{' | b'[' => {
                let owner = if stack.last().is_some_and(|(object, _)| *object) {
                    key.clone()
                } else {
                    stack.last().and_then(|(_, k)| k.clone())
                };
                stack.push((c == b'{', owner));
                expect_key = c == b'{';
                out.push(c as char);
                i += 1;
            }
            b'}' | b']' => {
                stack.pop();
                expect_key = false;
                out.push(c as char);
                i += 1;
            }
            b',' => {
                expect_key = stack.last().is_some_and(|(object, _)| *object);
                out.push(',');
                i += 1;
            }
            b':' | b' ' | b'\n' | b'\t' | b'\r' => {
                out.push(c as char);
                i += 1;
            }
            _ => {
                let end = scalar_end(bytes, i);
                let token = &text[i..end];
                if expect_key {
                    key = Some(serde_json::from_str::<String>(token).unwrap());
                    expect_key = false;
                    out.push_str(token);
                } else {
                    let owner = match stack.last() {
                        Some((true, _)) => key.as_deref(),
                        Some((false, k)) => k.as_deref(),
                        None => None,
                    };
                    if owner.is_some_and(|k| VOLATILE.contains(&k)) {
                        out.push_str(placeholder(token));
                    } else if owner != Some("message") {
                        // Messages are fixed text (with the examples of a time format).
                        out.push_str(&normalize_times(token));
                    } else {
                        out.push_str(token);
                    }
                }
                i = end;
            }
        }
    }
    out
}

/// Where the string, number or literal starting at `i` ends.
fn scalar_end(bytes: &[u8], i: usize) -> usize {
    if bytes[i] == b'"' {
        let mut j = i + 1;
        while bytes[j] != b'"' {
            j += if bytes[j] == b'\\' { 2 } else { 1 };
        }
        return j + 1;
    }
    let mut j = i;
    while j < bytes.len() && !b",}] \n\r\t:".contains(&bytes[j]) {
        j += 1;
    }
    j
}

/// What a volatile value is shown as: its type.
fn placeholder(token: &str) -> &'static str {
    match token.as_bytes()[0] {
        b'"' => "\"<string>\"",
        b'n' => "null",
        b't' | b'f' => "<bool>",
        _ if token.contains(['.', 'e', 'E']) => "<float>",
        _ => "<int>",
    }
}

/// Text with each RFC 3339 instant of 2020-2089 (the clock's; the test's own are earlier or
/// later) replaced by `<time>`.
fn normalize_times(text: &str) -> String {
    let b = text.as_bytes();
    let digits = |from: usize, n: usize| {
        from + n <= b.len() && b[from..from + n].iter().all(u8::is_ascii_digit)
    };
    let mut out = String::new();
    let mut i = 0;
    let mut copied = 0;
    while i < b.len() {
        let stamp = digits(i, 4)
            && b.get(i + 4) == Some(&b'-')
            && digits(i + 5, 2)
            && b.get(i + 7) == Some(&b'-')
            && digits(i + 8, 2)
            && b.get(i + 10) == Some(&b'T')
            && digits(i + 11, 2)
            && b.get(i + 13) == Some(&b':')
            && digits(i + 14, 2)
            && b.get(i + 16) == Some(&b':')
            && digits(i + 17, 2)
            && (i == 0 || !b[i - 1].is_ascii_digit());
        if !stamp || !("2020".."2090").contains(&&text[i..i + 4]) {
            i += 1;
            continue;
        }
        let mut end = i + 19;
        if b.get(end) == Some(&b'.') {
            end += 1;
            while end < b.len() && b[end].is_ascii_digit() {
                end += 1;
            }
        }
        if b.get(end) == Some(&b'Z') {
            end += 1;
        } else if matches!(b.get(end), Some(b'+' | b'-')) && digits(end + 1, 2) {
            end += 3;
            if b.get(end) == Some(&b':') && digits(end + 1, 2) {
                end += 3;
            }
        }
        if b.get(end) == Some(&b'[') {
            end += text[end..].find(']').map_or(0, |j| j + 1);
        }
        out.push_str(&text[copied..i]);
        out.push_str("<time>");
        i = end;
        copied = end;
    }
    out.push_str(&text[copied..]);
    out
}

/// A run's outcome, once it is recorded.
fn outcome(agent: &Agent, id: &str) -> Value {
    let r = agent.call(Method::GET, &format!("/api/v1/runs/{}", enc(id)), Some(&agent.admin), None);
    r.json::<Value>().map(|run| run["outcome"].clone()).unwrap_or(Value::Null)
}

/// Every route of `/api/v1` and its errors.
#[test]
fn every_route_answers_as_recorded() {
    let agent = Agent::start("golden", TASKS, &[]);
    let mut g = Golden { agent: &agent, transcripts: Vec::new(), aliases: Vec::new() };
    let admin = agent.admin.clone();

    // Auth and routing errors.
    let none = |r| r;
    g.exchange("auth/no-token", Method::GET, "/api/v1/tasks", None, Body::None, none);
    g.exchange(
        "auth/wrong-token",
        Method::GET,
        "/api/v1/tasks",
        Some("wrong-token-0123456789"),
        Body::None,
        none,
    );
    g.exchange(
        "auth/read-token-acts",
        Method::POST,
        "/api/v1/reload",
        Some(READ),
        Body::None,
        none,
    );
    g.exchange("auth/no-route", Method::GET, "/api/v1/nope", Some(&admin), Body::None, none);
    g.exchange("auth/token-cookie", Method::POST, "/api/v1/reload", None, Body::None, |r| {
        r.header("cookie", format!("cronfleet_token={admin}"))
    });

    // Tasks.
    g.get("tasks/all", "/api/v1/tasks");
    g.exchange("tasks/read-token", Method::GET, "/api/v1/tasks", Some(READ), Body::None, none);
    g.get("tasks/origin-file", "/api/v1/tasks?origin=file");
    g.get("tasks/origin-api", "/api/v1/tasks?origin=api");
    g.get("tasks/label", "/api/v1/tasks?label=team=ops");
    for (name, query) in
        [("bad-origin", "origin=git"), ("bad-label", "label=team"), ("bad-parameter", "colour=red")]
    {
        g.call(
            &format!("tasks/{name}"),
            Method::GET,
            &format!("/api/v1/tasks?{query}"),
            Body::None,
        );
    }
    g.get("task/cron", "/api/v1/tasks/hello");
    g.get("task/argv-timezone", "/api/v1/tasks/nightly");
    g.get("task/anchor", "/api/v1/tasks/every");
    g.get("task/http", "/api/v1/tasks/hook");
    g.get("task/daemon", "/api/v1/tasks/keeper");
    g.exchange("task/read-token", Method::GET, "/api/v1/tasks/hook", Some(READ), Body::None, none);
    g.call("task/unknown", Method::GET, "/api/v1/tasks/nope", Body::None);

    // A run, its record and its output.
    let (status, started) =
        g.call("run/start", Method::POST, "/api/v1/tasks/hello/run", Body::None);
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    let id = started["run_id"].as_str().unwrap().to_owned();
    g.run_id(&id);
    agent.wait_for("the run to succeed", 20, || {
        let run = outcome(&agent, &id);
        (run == "succeeded").then_some(())
    });
    g.call("run/unknown-task", Method::POST, "/api/v1/tasks/nope/run", Body::None);
    g.call("run/not-here", Method::POST, "/api/v1/tasks/hook/run", Body::None);
    g.get("run/record", &format!("/api/v1/runs/{}", enc(&id)));
    g.call("run/output", Method::GET, &format!("/api/v1/runs/{}/output", enc(&id)), Body::None);
    g.call(
        "run/follow-finished",
        Method::GET,
        &format!("/api/v1/runs/{}/output?follow=true", enc(&id)),
        Body::None,
    );
    g.call("run/follow-bad", Method::GET, "/api/v1/runs/nope/output?follow=maybe", Body::None);
    g.call("run/unknown", Method::GET, "/api/v1/runs/nope", Body::None);
    g.call("run/unknown-output", Method::GET, "/api/v1/runs/nope/output", Body::None);
    g.get("task/with-runs", "/api/v1/tasks/hello");

    // Kill.
    let (_, started) = g.call("kill/start", Method::POST, "/api/v1/tasks/slow/run", Body::None);
    let slow = started["run_id"].as_str().unwrap().to_owned();
    g.run_id(&slow);
    agent.wait_for("the slow run's output", 20, || {
        let r = agent.call(
            Method::GET,
            &format!("/api/v1/runs/{}/output", enc(&slow)),
            Some(&admin),
            None,
        );
        (r.text().unwrap() == "started\n").then_some(())
    });
    g.call("kill/running", Method::POST, &format!("/api/v1/runs/{}/kill", enc(&slow)), Body::None);
    agent.wait_for("the slow run to be killed", 20, || {
        let run = outcome(&agent, &slow);
        (run == "killed").then_some(())
    });
    g.get("kill/record", &format!("/api/v1/runs/{}", enc(&slow)));
    g.call("kill/finished", Method::POST, &format!("/api/v1/runs/{}/kill", enc(&slow)), Body::None);
    g.call("kill/unknown", Method::POST, "/api/v1/runs/nope/kill", Body::None);

    // Run listings.
    g.get("runs/all", "/api/v1/runs");
    g.get("runs/task", "/api/v1/runs?task=hello");
    let page = g.get("runs/page", "/api/v1/runs?limit=1");
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    g.aliases.push((cursor.clone(), "<cursor>".to_owned()));
    g.get("runs/next-page", &format!("/api/v1/runs?limit=1&cursor={cursor}"));
    g.get("runs/outcome", "/api/v1/runs?outcome=killed");
    g.get("runs/since", "/api/v1/runs?since=2001-01-01T00:00:00Z&until=2001-01-02T00:00:00Z");
    for (name, query) in [
        ("limit-0", "limit=0"),
        ("bad-outcome", "outcome=great"),
        ("bad-since", "since=tomorrow-ish"),
        ("bad-cursor", "cursor=%00"),
        ("bad-parameter", "colour=red"),
    ] {
        g.call(&format!("runs/{name}"), Method::GET, &format!("/api/v1/runs?{query}"), Body::None);
    }

    // Pause and resume.
    let pause = "/api/v1/tasks/hello/pause";
    let resume = "/api/v1/tasks/hello/resume";
    g.call(
        "pause/until",
        Method::POST,
        pause,
        Body::Json(json!({"until": "2099-01-01T00:00:00Z"})),
    );
    g.call("pause/resume", Method::POST, resume, Body::None);
    g.call("pause/no-body", Method::POST, pause, Body::None);
    g.call("pause/resume-once", Method::POST, resume, Body::Json(json!({"missed": "once"})));
    g.call("pause/bad-until", Method::POST, pause, Body::Json(json!({"until": "not a time"})));
    g.call("pause/past", Method::POST, pause, Body::Json(json!({"until": "2001-01-01T00:00:00Z"})));
    g.call("pause/until-number", Method::POST, pause, Body::Json(json!({"until": 5})));
    g.call("pause/not-object", Method::POST, pause, Body::Json(json!([1, 2])));
    g.call("pause/not-json", Method::POST, pause, Body::Typed("application/json", "{not json"));
    g.call("pause/unknown", Method::POST, "/api/v1/tasks/nope/pause", Body::None);
    g.call("pause/bad-missed", Method::POST, resume, Body::Json(json!({"missed": "all"})));

    // Tasks through the API.
    let dynamic = json!({
        "name": "dyn", "schedule": "@every 1000h", "anchor": "2010-01-01T00:00:00Z", "timezone": "UTC",
        "argv": ["echo", "dyn"], "labels": {"rule": "42"}, "env": {"K": "v", "S": "s"},
        "secret_env": ["S"], "enabled": false,
    });
    let tasks = "/api/v1/tasks";
    let (status, _) = g.call("api-tasks/create", Method::POST, tasks, Body::Json(dynamic.clone()));
    assert_eq!(status, StatusCode::CREATED);
    g.call("api-tasks/create-again", Method::POST, tasks, Body::Json(dynamic));
    g.call("api-tasks/create-unnamed", Method::POST, tasks, Body::Json(json!({"command": "x"})));
    g.call(
        "api-tasks/create-invalid",
        Method::POST,
        tasks,
        Body::Json(json!({"name": "bad", "schedule": "nope", "command": "x", "retries": -1})),
    );
    g.call("api-tasks/create-not-object", Method::POST, tasks, Body::Json(json!("x")));
    g.get("api-tasks/listed", "/api/v1/tasks?origin=api");
    g.get("api-tasks/show", "/api/v1/tasks/dyn");
    g.exchange(
        "api-tasks/show-read",
        Method::GET,
        "/api/v1/tasks/dyn",
        Some(READ),
        Body::None,
        none,
    );
    let dyn_path = "/api/v1/tasks/dyn";
    let admin_token = Some(admin.as_str());
    g.exchange(
        "api-tasks/replace",
        Method::PUT,
        dyn_path,
        admin_token,
        Body::Json(json!({"schedule": "@daily", "command": "echo replaced", "enabled": false})),
        |r| r.header("if-match", "\"1\""),
    );
    g.exchange(
        "api-tasks/patch",
        Method::PATCH,
        dyn_path,
        admin_token,
        Body::Json(json!({"timeout": "1m", "labels": {"rule": "43"}})),
        |r| r.header("if-match", "\"2\""),
    );
    // A weak ETag never satisfies If-Match, even of the current revision: 412.
    g.exchange(
        "api-tasks/patch-weak-if-match",
        Method::PATCH,
        dyn_path,
        admin_token,
        Body::Json(json!({"retries": 1})),
        |r| r.header("if-match", "W/\"3\""),
    );
    g.exchange(
        "api-tasks/patch-stale",
        Method::PATCH,
        dyn_path,
        admin_token,
        Body::Json(json!({"retries": 1})),
        |r| r.header("if-match", "\"1\""),
    );
    g.exchange(
        "api-tasks/patch-bad-if-match",
        Method::PATCH,
        dyn_path,
        admin_token,
        Body::Json(json!({"retries": 1})),
        |r| r.header("if-match", "yesterday"),
    );
    g.call("api-tasks/rename", Method::PATCH, dyn_path, Body::Json(json!({"name": "other"})));
    g.call(
        "api-tasks/patch-invalid",
        Method::PATCH,
        dyn_path,
        Body::Json(json!({"concurrency": "sometimes"})),
    );
    g.call("api-tasks/file-task", Method::PATCH, "/api/v1/tasks/hello", Body::Json(json!({})));
    g.call("api-tasks/replace-unknown", Method::PUT, "/api/v1/tasks/nope", Body::Json(json!({})));
    g.exchange("api-tasks/delete-stale", Method::DELETE, dyn_path, admin_token, Body::None, |r| {
        r.header("if-match", "\"1\"")
    });
    g.call("api-tasks/delete", Method::DELETE, dyn_path, Body::None);
    g.call("api-tasks/delete-again", Method::DELETE, dyn_path, Body::None);
    g.call("api-tasks/delete-file-task", Method::DELETE, "/api/v1/tasks/hello", Body::None);

    // Plan, apply, reload.
    g.call(
        "plan/changes",
        Method::POST,
        "/api/v1/plan?file=new.toml",
        Body::Typed("application/toml", NEW_TASKS),
    );
    g.call("plan/nothing", Method::POST, "/api/v1/plan", Body::Text(TASKS));
    let broken = "[[task]]\nname = \"x\"\nschedule = \"nope\"\ncommand = 1\n";
    g.call("plan/invalid", Method::POST, "/api/v1/plan", Body::Text(broken));
    g.call("plan/not-utf8", Method::POST, "/api/v1/plan", Body::Bytes(vec![0xff, 0xfe]));
    g.call("plan/json", Method::POST, "/api/v1/plan", Body::Typed("application/json", "{}"));
    g.call("plan/no-task", Method::POST, "/api/v1/plan", Body::Text("# nothing yet\n"));
    g.call("reload/unchanged", Method::POST, "/api/v1/reload", Body::None);
    // The task file is the user's: written through the API, it keeps its mode.
    use std::os::unix::fs::PermissionsExt;
    let file = agent.dir.join("tasks.toml");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
    g.call(
        "apply/changes",
        Method::POST,
        "/api/v1/apply?file=new.toml",
        Body::Typed("text/plain; charset=utf-8", NEW_TASKS),
    );
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o640);
    g.call("apply/invalid", Method::POST, "/api/v1/apply", Body::Text(broken));
    // A file without tasks is applied only when asked in so many words.
    g.call("apply/no-task", Method::POST, "/api/v1/apply?file=empty.toml", Body::Text(""));
    g.call("apply/bad-allow-empty", Method::POST, "/api/v1/apply?allow_empty=yes", Body::Text(""));
    g.call("apply/form", Method::POST, "/api/v1/apply", Body::Typed(FORM, NEW_TASKS));
    std::fs::write(agent.dir.join("tasks.toml"), TASKS).unwrap();
    g.call("reload/changes", Method::POST, "/api/v1/reload", Body::None);
    std::fs::write(agent.dir.join("tasks.toml"), broken).unwrap();
    g.call("reload/invalid", Method::POST, "/api/v1/reload", Body::None);

    // Strict requests: a JSON body needs a JSON content type; unknown fields and parameters
    // are refused; the errors of the server stack (405, 413, a bad path) are JSON too.
    g.call("strict/pause-typo", Method::POST, pause, Body::Json(json!({"untill": "2099-01-01"})));
    g.call("strict/resume-typo", Method::POST, resume, Body::Json(json!({"mised": "once"})));
    g.call(
        "strict/run-with-body",
        Method::POST,
        "/api/v1/tasks/hello/run",
        Body::Json(json!({"now": true})),
    );
    g.call(
        "strict/create-typo",
        Method::POST,
        tasks,
        Body::Json(json!({"name": "t", "schedule": "@daily", "comand": "true"})),
    );
    let until = r#"{"until": "2099-01-01T00:00:00Z"}"#;
    g.call("strict/pause-text", Method::POST, pause, Body::Typed("text/plain", until));
    g.call("strict/pause-form", Method::POST, pause, Body::Typed(FORM, until));
    g.call("strict/pause-no-type", Method::POST, pause, Body::Text(until));
    g.call(
        "strict/pause-charset",
        Method::POST,
        pause,
        Body::Typed("application/json; charset=latin1", until),
    );
    g.call(
        "strict/create-text",
        Method::POST,
        tasks,
        Body::Typed("text/plain", r#"{"name": "t"}"#),
    );
    g.call(
        "strict/patch-merge-patch",
        Method::PATCH,
        "/api/v1/tasks/hello",
        Body::Typed("application/merge-patch+json", "{}"),
    );
    g.call("strict/node-parameter", Method::GET, "/api/v1/node?verbose=1", Body::None);
    g.call("strict/task-parameter", Method::GET, "/api/v1/tasks/hello?fields=name", Body::None);
    g.call(
        "strict/output-follow-null",
        Method::GET,
        &format!("/api/v1/runs/{}/output?follow=null", enc(&id)),
        Body::None,
    );
    g.call(
        "strict/output-parameter",
        Method::GET,
        &format!("/api/v1/runs/{}/output?tail=5", enc(&id)),
        Body::None,
    );
    g.call("strict/plan-parameter", Method::POST, "/api/v1/plan?dry=1", Body::Text(TASKS));
    g.call("strict/method", Method::DELETE, "/api/v1/tasks", Body::None);
    g.call("strict/method-run", Method::GET, "/api/v1/tasks/hello/run", Body::None);
    g.call("strict/bad-path", Method::GET, "/api/v1/tasks/%FF", Body::None);
    g.call("strict/too-large", Method::POST, tasks, Body::Bytes(vec![b' '; 3 << 20]));
    g.call("strict/no-route", Method::POST, "/api/v1/tasks/hello/stop", Body::None);

    // This node and the fleet.
    agent.wait_for("no run in flight", 20, || {
        (agent.get("/api/v1/node")["runs_in_flight"] == 0).then_some(())
    });
    g.get("node/this", "/api/v1/node");
    g.get("node/all", "/api/v1/nodes");

    let (status, doc) =
        g.exchange("openapi", Method::GET, "/api/v1/openapi.json", Some(READ), Body::None, none);
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc, include_str!("../../src/api/openapi.json"));
    g.transcripts.retain(|(name, _)| name != "openapi");

    let transcripts =
        g.transcripts.iter().map(|(name, text)| (name.clone(), g.alias(text))).collect();
    agent.stop();
    check(transcripts);
}
