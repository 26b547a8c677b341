//! The agent's HTTP API, against a real agent process on a free port: auth on every route,
//! tasks, runs, output (also streamed), run now, pause/resume, kill, reload, node, metrics,
//! TLS and the refusal to listen openly, strict requests (content types, unknown fields and
//! parameters, every error JSON), apply's refusal of a file without tasks. `golden` pins the
//! JSON of every route; `sessions` tests the dashboard's sessions and CSRF protection;
//! `schemathesis` runs schemathesis against an agent, with the OpenAPI document as the contract.

mod golden;
mod schemathesis;
mod sessions;

use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use reqwest::{
    blocking::{Client, Response},
    Method, StatusCode,
};
use serde_json::{json, Value};

/// A read token given in a tokens file.
const READ: &str = "read-token-0123456789";

struct Agent {
    child: Child,
    dir: PathBuf,
    url: String,
    admin: String,
    client: Client,
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cronfleet"))
}

impl Agent {
    fn start(name: &str, tasks: &str, extra: &[&str]) -> Agent {
        Agent::start_env(name, tasks, extra, &[])
    }

    /// An agent started with more environment variables.
    fn start_env(name: &str, tasks: &str, extra: &[&str], env: &[(&str, &str)]) -> Agent {
        let dir = std::env::temp_dir().join(format!("cronfleet-api-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("tasks.toml"), tasks.replace("DIR", dir.to_str().unwrap()))
            .unwrap();
        tokens_file(&dir, &format!("read {READ} dashboards\n"));
        Agent::spawn_env(dir, extra, env, Client::new(), "http")
    }

    fn spawn(dir: PathBuf, extra: &[&str], client: Client, scheme: &str) -> Agent {
        Agent::spawn_env(dir, extra, &[], client, scheme)
    }

    fn spawn_env(
        dir: PathBuf,
        extra: &[&str],
        env: &[(&str, &str)],
        client: Client,
        scheme: &str,
    ) -> Agent {
        let state = dir.join("state");
        let _ = std::fs::remove_file(state.join("api-addr"));
        let child = bin()
            .args(["agent", "--config", dir.join("tasks.toml").to_str().unwrap()])
            .args(["--node", "api-node", "--no-watch"])
            .args(if extra.contains(&"--listen") {
                &[][..]
            } else {
                &["--listen", "127.0.0.1:0"][..]
            })
            .args(["--tokens", dir.join("tokens").to_str().unwrap()])
            .args(["--state-dir", state.to_str().unwrap()])
            .args(extra)
            .envs(env.iter().copied())
            // Its tasks run in the test's directory, not in the crate's.
            .current_dir(&dir)
            .stderr(std::fs::File::create(dir.join("agent.log")).unwrap())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let began = Instant::now();
        let url = loop {
            if let Ok(url) = std::fs::read_to_string(state.join("api-addr")) {
                break url.trim().to_owned();
            }
            assert!(began.elapsed() < Duration::from_secs(20), "no api-addr; log:\n{}", log(&dir));
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(url.starts_with(&format!("{scheme}://127.0.0.1:")), "{url}");
        let admin = std::fs::read_to_string(state.join("api-token")).unwrap().trim().to_owned();
        Agent { child, dir, url, admin, client }
    }

    fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Response {
        let mut request = self.client.request(method, format!("{}{path}", self.url));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().unwrap()
    }

    fn get(&self, path: &str) -> Value {
        let r = self.call(Method::GET, path, Some(&self.admin), None);
        assert_eq!(r.status(), StatusCode::OK, "GET {path}");
        r.json().unwrap()
    }

    fn post(&self, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let r = self.call(Method::POST, path, Some(&self.admin), body);
        let status = r.status();
        (status, r.json().unwrap_or(Value::Null))
    }

    /// Waits until `f` gives a value.
    fn wait_for<T>(&self, what: &str, secs: u64, mut f: impl FnMut() -> Option<T>) -> T {
        let began = Instant::now();
        loop {
            if let Some(v) = f() {
                return v;
            }
            assert!(
                began.elapsed() < Duration::from_secs(secs),
                "timed out waiting for {what}; log:\n{}",
                log(&self.dir)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn runs(&self, task: &str) -> Vec<Value> {
        self.get(&format!("/api/v1/runs?task={task}&limit=1000"))["runs"]
            .as_array()
            .unwrap()
            .clone()
    }

    fn stop(mut self) -> String {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        self.child.wait().unwrap();
        log(&self.dir)
    }
}

/// Writes `DIR/tokens`, readable by its owner only (the agent refuses it otherwise).
fn tokens_file(dir: &std::path::Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    let file = dir.join("tokens");
    std::fs::write(&file, text).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
}

fn log(dir: &std::path::Path) -> String {
    std::fs::read_to_string(dir.join("agent.log")).unwrap_or_default()
}

/// A run id in a path: `#` must be escaped.
fn enc(id: &str) -> String {
    id.replace('#', "%23")
}

const TASKS: &str = r#"
[[task]]
name = "tick"
schedule = "* * * * * *"
command = "echo tick-$CRONFLEET_RUN_ID"
env = { PLAIN = "visible", DB_PASSWORD = "hunter2" }
secret_env = ["DB_PASSWORD"]

[[task]]
name = "slow"
schedule = "@yearly"
command = "echo started; sleep 60"
concurrency = "allow"
max_running = 3

[[task]]
name = "elsewhere"
schedule = "@daily"
command = "true"
hosts = ["other-*"]
"#;

#[test]
fn every_route_needs_the_right_token() {
    let agent = Agent::start("auth", TASKS, &[]);
    let doc: Value = agent.get("/api/v1/openapi.json");
    let mut documented = Vec::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            let admin = op["responses"].get("403").is_some();
            documented.push((method.to_uppercase(), path.clone(), admin));
        }
    }
    assert_eq!(documented.len(), 20, "{documented:?}");
    for (method, path, admin) in &documented {
        let path = path.replace("{name}", "tick").replace("{id}", "tick%400%231");
        let method: Method = method.parse().unwrap();
        let r = agent.call(method.clone(), &path, None, None);
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{method} {path} without a token");
        assert_eq!(r.headers()["www-authenticate"], "Bearer");
        let body: Value = r.json().unwrap();
        assert_eq!(body["error"]["code"], "unauthorized");
        let r = agent.call(method.clone(), &path, Some("wrong-token-0123456789"), None);
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{method} {path} with a wrong token");
        let r = agent.call(method.clone(), &path, Some(READ), None);
        if *admin {
            assert_eq!(r.status(), StatusCode::FORBIDDEN, "{method} {path} with a read token");
        } else {
            assert!(
                r.status() != StatusCode::UNAUTHORIZED && r.status() != StatusCode::FORBIDDEN,
                "{method} {path}: {}",
                r.status()
            );
        }
    }
    // The dashboard's pages: 401 with the login form; its buttons: 401, or 403 for read tokens.
    for page in ["/", "/timeline", "/tasks/tick", "/runs/tick%400%231"] {
        let r = agent.call(Method::GET, page, None, None);
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{page}");
        assert!(r.text().unwrap().contains("id=\"token\""), "{page}: the login form");
        let r = agent.call(Method::GET, page, Some("wrong-token-0123456789"), None);
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{page}");
    }
    for button in ["/tasks/tick/run", "/tasks/tick/pause", "/tasks/tick/resume", "/runs/x/kill"] {
        assert_eq!(
            agent.call(Method::POST, button, None, None).status(),
            StatusCode::UNAUTHORIZED,
            "{button}"
        );
        assert_eq!(
            agent.call(Method::POST, button, Some(READ), None).status(),
            StatusCode::FORBIDDEN,
            "{button}"
        );
    }
    assert_eq!(agent.call(Method::GET, "/login", None, None).status(), StatusCode::OK);
    // Every page (and the API) carries the security headers; the dashboard's script and
    // style sheet are static routes with their content types.
    for (path, token) in
        [("/login", None), ("/", Some(READ)), ("/nope", None), ("/api/v1/tasks", Some(READ))]
    {
        let r = agent.call(Method::GET, path, token, None);
        let h = r.headers();
        let csp = h["content-security-policy"].to_str().unwrap();
        for directive in [
            "default-src 'none'",
            "script-src 'self';",
            "style-src 'self';",
            "frame-ancestors 'none'",
        ] {
            assert!(csp.contains(directive), "{path}: {csp}");
        }
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["referrer-policy"], "same-origin", "{path}");
    }
    let page = agent.call(Method::GET, "/login", None, None).text().unwrap();
    assert!(
        !page.contains("<script") && !page.contains("<style") && !page.contains("style="),
        "{page}"
    );
    for (path, kind) in [("/static/live.js", "text/javascript"), ("/static/style.css", "text/css")]
    {
        let r = agent.call(Method::GET, path, None, None);
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        assert_eq!(r.headers()["content-type"], format!("{kind}; charset=utf-8"));
    }
    // The scheme's name is case-insensitive; another scheme is no token.
    for (value, status) in [
        (format!("bearer {READ}"), StatusCode::OK),
        (format!("BEARER  {READ}"), StatusCode::OK),
        (format!("Bearer {READ}"), StatusCode::OK),
        (format!("Basic {READ}"), StatusCode::UNAUTHORIZED),
        (format!("Bearer{READ}"), StatusCode::UNAUTHORIZED),
    ] {
        let r = agent
            .client
            .get(format!("{}/api/v1/tasks", agent.url))
            .header("authorization", &value)
            .send()
            .unwrap();
        assert_eq!(r.status(), status, "Authorization: {value}");
    }
    // Open: health; closed without a token: metrics (unless --public-metrics).
    assert_eq!(agent.call(Method::GET, "/healthz", None, None).status(), StatusCode::OK);
    assert_eq!(agent.call(Method::GET, "/metrics", None, None).status(), StatusCode::UNAUTHORIZED);
    assert_eq!(agent.call(Method::GET, "/metrics", Some(READ), None).status(), StatusCode::OK);
    // Unknown routes are JSON 404s.
    let r = agent.call(Method::GET, "/api/v1/nope", Some(&agent.admin), None);
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // A cookie is no token: the old dashboard cookie (the raw token) opens nothing.
    for (method, path) in
        [(Method::POST, "/api/v1/reload"), (Method::GET, "/api/v1/tasks"), (Method::GET, "/")]
    {
        let r = agent
            .client
            .request(method, format!("{}{path}", agent.url))
            .header("cookie", format!("cronfleet_token={}", agent.admin))
            .send()
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{path}");
    }
    agent.stop();
}

#[test]
fn tasks_runs_output_and_metrics() {
    let agent = Agent::start("tasks", TASKS, &[]);
    let tasks = agent.get("/api/v1/tasks");
    let tasks = tasks["tasks"].as_array().unwrap();
    let names: Vec<&str> = tasks.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["tick", "slow", "elsewhere"]);
    let tick = &tasks[0];
    assert_eq!(tick["schedule"], "* * * * * *");
    assert_eq!(tick["runs_here"], true);
    assert!(tick["next_run"].is_string());
    assert_eq!(tick["env"]["DB_PASSWORD"], "hunter2", "admin sees secrets");
    assert_eq!(tasks[2]["runs_here"], false);
    assert_eq!(tasks[2]["hosts"], json!(["other-*"]));
    // A read token sees the task but not its secret.
    let r = agent.call(Method::GET, "/api/v1/tasks/tick", Some(READ), None);
    let read: Value = r.json().unwrap();
    assert_eq!(read["env"]["DB_PASSWORD"], "(secret)");
    assert_eq!(read["env"]["PLAIN"], "visible");
    assert_eq!(read["next_runs"].as_array().unwrap().len(), 10);
    assert!(!agent
        .call(Method::GET, "/api/v1/tasks", Some(READ), None)
        .text()
        .unwrap()
        .contains("hunter2"));

    let runs = agent.wait_for("4 finished runs", 15, || {
        let runs: Vec<Value> =
            agent.runs("tick").into_iter().filter(|r| r["outcome"] == "succeeded").collect();
        (runs.len() >= 4).then_some(runs)
    });
    let id = runs[0]["id"].as_str().unwrap();
    let run = agent.get(&format!("/api/v1/runs/{}", enc(id)));
    assert_eq!(run["output"], format!("tick-{id}\n"));
    assert_eq!(run["node"], "api-node");
    let text = agent
        .call(Method::GET, &format!("/api/v1/runs/{}/output", enc(id)), Some(READ), None)
        .text()
        .unwrap();
    assert_eq!(text, format!("tick-{id}\n"));

    // Pages: newest first, no run twice, the cursor goes on where the last page ended.
    let first = agent.get("/api/v1/runs?task=tick&limit=2");
    assert_eq!(first["runs"].as_array().unwrap().len(), 2);
    let cursor = first["next_cursor"].as_str().unwrap();
    let second = agent.get(&format!("/api/v1/runs?task=tick&limit=2&cursor={cursor}"));
    let ids: Vec<&str> = first["runs"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second["runs"].as_array().unwrap())
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    let slots: Vec<&str> = first["runs"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second["runs"].as_array().unwrap())
        .map(|r| r["slot"].as_str().unwrap())
        .collect();
    let mut sorted = slots.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(slots, sorted, "newest first");
    let mut unique = ids.clone();
    unique.dedup();
    assert_eq!(unique.len(), 4, "{ids:?} {cursor}");
    let failed = agent.get("/api/v1/runs?task=tick&outcome=failed");
    assert_eq!(failed["runs"], json!([]));
    let since = agent.get(&format!(
        "/api/v1/runs?task=tick&since={}",
        runs[0]["slot"].as_str().unwrap().replace('+', "%2B")
    ));
    assert!(since["runs"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["slot"].as_str() >= runs[0]["slot"].as_str()));

    // Bad input: 4xx with a JSON message, never a 500.
    for (path, status) in [
        ("/api/v1/runs?limit=0", StatusCode::BAD_REQUEST),
        ("/api/v1/runs?outcome=great", StatusCode::BAD_REQUEST),
        ("/api/v1/runs?since=tomorrow-ish", StatusCode::BAD_REQUEST),
        ("/api/v1/runs?cursor=%00", StatusCode::BAD_REQUEST),
        ("/api/v1/tasks/nope", StatusCode::NOT_FOUND),
        ("/api/v1/runs/nope", StatusCode::NOT_FOUND),
        ("/api/v1/runs/nope/output?follow=maybe", StatusCode::BAD_REQUEST),
    ] {
        let r = agent.call(Method::GET, path, Some(&agent.admin), None);
        assert_eq!(r.status(), status, "{path}");
        let body: Value = r.json().unwrap();
        assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{path}: {body}");
    }
    for (path, body, status) in [
        ("/api/v1/tasks/nope/run", None, StatusCode::NOT_FOUND),
        ("/api/v1/tasks/elsewhere/run", None, StatusCode::CONFLICT),
        ("/api/v1/tasks/tick/pause", Some(json!({"until": "not a time"})), StatusCode::BAD_REQUEST),
        (
            "/api/v1/tasks/tick/pause",
            Some(json!({"until": "2001-01-01T00:00:00Z"})),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        ("/api/v1/tasks/tick/pause", Some(json!([1, 2])), StatusCode::BAD_REQUEST),
        ("/api/v1/runs/nope/kill", None, StatusCode::NOT_FOUND),
    ] {
        let (got, body) = agent.post(path, body);
        assert_eq!(got, status, "{path}: {body}");
        assert!(body["error"]["code"].is_string(), "{path}: {body}");
    }
    let r = agent
        .client
        .post(format!("{}/api/v1/tasks/tick/pause", agent.url))
        .bearer_auth(&agent.admin)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let (status, _) = agent.post(&format!("/api/v1/runs/{}/kill", enc(id)), None);
    assert_eq!(status, StatusCode::CONFLICT, "a finished run cannot be killed");

    let node = agent.get("/api/v1/node");
    assert_eq!(node["name"], "api-node");
    assert_eq!(node["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(node["tasks"], 2);
    assert!(node["host"]["cpus"].as_u64().unwrap() >= 1);
    assert!(node["host"]["memory_total"].as_u64().unwrap() > 0);

    let metrics = agent.call(Method::GET, "/metrics", Some(READ), None).text().unwrap();
    assert!(
        metrics.contains("cronfleet_runs_total{task=\"tick\",outcome=\"succeeded\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("cronfleet_run_duration_seconds_bucket{task=\"tick\",le=\"+Inf\"}"));
    assert!(metrics.contains("cronfleet_launch_lateness_seconds_count"));
    assert!(metrics.contains("cronfleet_task_next_run_timestamp_seconds{task=\"tick\"}"));
    assert!(metrics.contains("cronfleet_task_last_success_timestamp_seconds{task=\"tick\"}"));
    assert!(metrics.contains("cronfleet_tasks 2"));
    agent.stop();
}

#[test]
fn run_now_follow_output_kill_pause_resume_and_reload() {
    let agent = Agent::start("control", TASKS, &[]);
    // Run now, follow its output as it comes, kill it: the stream ends with the outcome.
    let (status, started) = agent.post("/api/v1/tasks/slow/run", None);
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    let id = started["run_id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("slow@"), "{id}");
    agent.wait_for("the run to be in flight", 10, || {
        let r = agent.call(Method::GET, &format!("/api/v1/runs/{}", enc(&id)), Some(READ), None);
        (r.status() == StatusCode::OK).then_some(())
    });
    let stream = agent
        .client
        .get(format!("{}/api/v1/runs/{}/output?follow=true", agent.url, enc(&id)))
        .bearer_auth(READ)
        .send()
        .unwrap();
    assert_eq!(stream.headers()["content-type"], "text/event-stream");
    let mut lines = BufReader::new(stream).lines();
    let mut seen = String::new();
    while !seen.contains("data: started") {
        seen.push_str(&lines.next().unwrap().unwrap());
        seen.push('\n');
    }
    let (status, _) = agent.post(&format!("/api/v1/runs/{}/kill", enc(&id)), None);
    assert_eq!(status, StatusCode::ACCEPTED);
    let mut end = None;
    for line in lines.by_ref() {
        let line = line.unwrap();
        if line == "event: end" {
            let data = lines.next().unwrap().unwrap();
            end =
                Some(serde_json::from_str::<Value>(data.strip_prefix("data: ").unwrap()).unwrap());
            break;
        }
    }
    let end = end.expect("an end event");
    assert_eq!(end["outcome"], "killed");
    assert_eq!(end["id"], id.as_str());
    let run = agent.get(&format!("/api/v1/runs/{}", enc(&id)));
    assert_eq!(run["outcome"], "killed");
    assert_eq!(run["output"], "started\n");

    // Pause: no new slots; resume: slots again (from now on).
    let (status, paused) = agent.post("/api/v1/tasks/tick/pause", None);
    assert_eq!(status, StatusCode::OK, "{paused}");
    assert_eq!(paused["paused"], true);
    assert_eq!(paused["next_run"], Value::Null);
    std::thread::sleep(Duration::from_millis(1200));
    let before = agent.runs("tick").len();
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(agent.runs("tick").len(), before, "no runs while paused");
    let (status, resumed) = agent.post("/api/v1/tasks/tick/resume", None);
    assert_eq!(status, StatusCode::OK);
    assert_eq!(resumed["paused"], false);
    agent.wait_for("runs after resume", 10, || (agent.runs("tick").len() > before).then_some(()));

    // Pause until an instant: it resumes by itself.
    let until = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(2);
    let (_, paused) =
        agent.post("/api/v1/tasks/tick/pause", Some(json!({"until": until.to_string()})));
    assert_eq!(paused["paused_until"], until.to_string());
    agent.wait_for("the pause to end", 10, || {
        (agent.get("/api/v1/tasks/tick")["paused"] == false).then_some(())
    });

    // Reload: an invalid file changes nothing and says why; a valid one is applied.
    let file = agent.dir.join("tasks.toml");
    let good = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        format!(
            "{good}\n[[task]]\nname = \"bad\"\nschedule = \"61 * * * *\"\ncommand = \"true\"\n"
        ),
    )
    .unwrap();
    let (status, body) = agent.post("/api/v1/reload", None);
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["code"], "invalid_task_file");
    let detail = &body["error"]["details"][0];
    assert_eq!(detail["task"], "bad");
    assert_eq!(detail["field"], "schedule");
    assert!(detail["line"].as_u64().unwrap() > 20);
    assert_eq!(agent.get("/api/v1/tasks")["tasks"].as_array().unwrap().len(), 3);
    // ... and says so where an operator looks: the node, the metrics, status and doctor.
    let node = agent.get("/api/v1/node");
    let file_state = &node["task_file"];
    assert_eq!(file_state["in_effect"], false, "{node}");
    let error = file_state["errors"][0].as_str().unwrap();
    assert!(error.contains("task \"bad\", field `schedule`"), "{error}");
    assert!(file_state["last_success_at"].as_str() < file_state["last_reload_at"].as_str());
    let metrics = agent.call(Method::GET, "/metrics", Some(READ), None).text().unwrap();
    assert!(metrics.contains("cronfleet_config_last_reload_successful 0"), "{metrics}");
    let state = agent.dir.join("state");
    let (code, status_out, _) = cli(&["status", "--state-dir", state.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert!(status_out.contains("NOT IN EFFECT: the reload at "), "{status_out}");
    assert!(status_out.contains("field `schedule`"), "{status_out}");
    let (code, doctor, _) = cli(&["doctor", "--state-dir", state.to_str().unwrap()]);
    assert_eq!(code, 1, "{doctor}");
    assert!(
        doctor.lines().any(|l| l.contains("reload") && l.contains("NOT IN EFFECT")),
        "{doctor}"
    );
    let home = agent.call(Method::GET, "/", Some(READ), None).text().unwrap();
    assert!(home.contains("id=\"not-in-effect\""), "{home}");
    assert!(home.contains("task &quot;bad&quot;, field `schedule`"), "{home}");
    std::fs::write(
        &file,
        format!("{good}\n[[task]]\nname = \"new\"\nschedule = \"@daily\"\ncommand = \"true\"\n"),
    )
    .unwrap();
    let (status, body) = agent.post("/api/v1/reload", None);
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"added": 1, "changed": 0, "removed": 0}));
    let metrics = agent.call(Method::GET, "/metrics", Some(READ), None).text().unwrap();
    assert!(metrics.contains("cronfleet_reloads_total{result=\"ok\"} 1"));
    assert!(metrics.contains("cronfleet_reloads_total{result=\"error\"} 1"));
    assert!(metrics.contains("cronfleet_config_last_reload_successful 1"), "{metrics}");
    assert!(metrics.contains("cronfleet_config_last_reload_success_timestamp_seconds 1"));
    let node = agent.get("/api/v1/node");
    assert_eq!(node["task_file"]["in_effect"], true, "{node}");
    assert_eq!(node["task_file"]["errors"], json!([]), "{node}");
    let (_, status_out, _) = cli(&["status", "--state-dir", state.to_str().unwrap()]);
    assert!(!status_out.contains("NOT IN EFFECT"), "{status_out}");
    let home = agent.call(Method::GET, "/", Some(READ), None).text().unwrap();
    assert!(home.contains("id=\"tasks\"") && !home.contains("not-in-effect"), "{home}");

    // A pause outlives a restart.
    let (status, _) = agent.post("/api/v1/tasks/tick/pause", None);
    assert_eq!(status, StatusCode::OK);
    let dir = agent.dir.clone();
    agent.stop();
    let agent = Agent::spawn(dir, &[], Client::new(), "http");
    let tick = agent.get("/api/v1/tasks/tick");
    assert_eq!(tick["paused"], true);
    assert_eq!(tick["next_run"], Value::Null);
    agent.stop();
}

#[test]
fn the_agents_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let dir = std::env::temp_dir().join(format!("cronfleet-api-{}-private", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("tasks.toml"),
        "[[task]]\nname = \"tick\"\nschedule = \"* * * * * *\"\ncommand = \"true\"\n",
    )
    .unwrap();
    // A tokens file others can read is refused at start, saying how to fix it.
    let tokens = dir.join("tokens");
    std::fs::write(&tokens, format!("read {READ}\n")).unwrap();
    std::fs::set_permissions(&tokens, std::fs::Permissions::from_mode(0o644)).unwrap();
    let state = dir.join("state");
    let out = bin()
        .args(["agent", "--config", dir.join("tasks.toml").to_str().unwrap()])
        .args(["--listen", "127.0.0.1:0", "--tokens", tokens.to_str().unwrap()])
        .args(["--state-dir", state.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let fix = format!("open to others (mode 644): chmod 600 {}", tokens.display());
    assert!(stderr.contains(&fix), "{stderr}");

    // A state directory open to others is tightened; every file the agent writes is 0600,
    // the database's -wal and -shm too.
    std::fs::create_dir_all(&state).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o755)).unwrap();
    tokens_file(&dir, &format!("read {READ}\n"));
    let agent = Agent::spawn(dir.clone(), &[], Client::new(), "http");
    agent.wait_for("a run", 15, || {
        agent.runs("tick").iter().any(|r| r["outcome"] == "succeeded").then_some(())
    });
    assert_eq!(mode(&state), 0o700);
    for file in ["state.db", "state.db-wal", "state.db-shm", "api-token", "api-addr", "agent.json"]
    {
        assert_eq!(mode(&state.join(file)), 0o600, "{file}");
    }
    let log = agent.stop();
    assert!(log.contains("the state directory was open to others: its mode is now 700"), "{log}");
}

#[test]
fn build_info_and_a_deleted_tasks_series_go() {
    let agent = Agent::start("metrics", TASKS, &[]);
    let metrics = || {
        let r = agent.call(Method::GET, "/metrics", Some(READ), None);
        assert_eq!(r.status(), StatusCode::OK);
        r.text().unwrap()
    };
    let text = metrics();
    let version = env!("CARGO_PKG_VERSION");
    let line = text.lines().find(|l| l.starts_with("cronfleet_build_info{")).unwrap_or_default();
    assert!(line.starts_with(&format!("cronfleet_build_info{{version=\"{version}\",commit=\"")));
    assert!(line.ends_with("\"} 1") && !line.contains("commit=\"\""), "{line}");

    // A task made through the API, run: its series are there; deleted: they are gone.
    let task = json!({"name": "gone", "schedule": "@yearly", "command": "echo bye"});
    assert_eq!(agent.post("/api/v1/tasks", Some(task)).0, StatusCode::CREATED);
    assert_eq!(agent.post("/api/v1/tasks/gone/run", None).0, StatusCode::ACCEPTED);
    for task in ["gone", "tick"] {
        agent.wait_for(task, 15, || {
            agent.runs(task).iter().any(|r| r["outcome"] == "succeeded").then_some(())
        });
    }
    let text = metrics();
    for series in [
        "cronfleet_runs_total{task=\"gone\",outcome=\"succeeded\"} 1",
        "cronfleet_run_duration_seconds_count{task=\"gone\"} 1",
        "cronfleet_task_last_success_timestamp_seconds{task=\"gone\"}",
        "cronfleet_task_next_run_timestamp_seconds{task=\"gone\"}",
    ] {
        assert!(text.contains(series), "{series} in:\n{text}");
    }
    let r = agent.call(Method::DELETE, "/api/v1/tasks/gone", Some(&agent.admin), None);
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let text = metrics();
    assert!(!text.contains("task=\"gone\""), "{text}");
    assert!(text.contains("cronfleet_runs_total{task=\"tick\",outcome=\"succeeded\"}"), "{text}");
    agent.stop();
}

#[test]
fn tokens_given_twice_are_refused() {
    let dir = std::env::temp_dir().join(format!("cronfleet-api-{}-twice", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let state = dir.join("state");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(dir.join("tasks.toml"), "").unwrap();
    let own = "own-admin-token-0123456789";
    std::fs::write(state.join("api-token"), format!("{own}\n")).unwrap();
    let refused = |tokens: &str| {
        tokens_file(&dir, tokens);
        let out = bin()
            .args(["agent", "--config", dir.join("tasks.toml").to_str().unwrap()])
            .args(["--listen", "127.0.0.1:0", "--tokens", dir.join("tokens").to_str().unwrap()])
            .args(["--state-dir", state.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let file = dir.join("tokens").display().to_string();
    let err = refused(&format!("read {READ} a\n\nadmin {READ} b\n"));
    assert!(err.contains(&format!("{file}:3: the same token as line 1")), "{err}");
    let err = refused(&format!("read {READ}\nread {own} mine\n"));
    assert!(err.contains(&format!("{file}:2: the same token as the \"agent\" token")), "{err}");
}

#[test]
fn open_addresses_need_tls_and_tls_works() {
    let dir = std::env::temp_dir().join(format!("cronfleet-api-{}-tls", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("tasks.toml"),
        "[[task]]\nname = \"a\"\nschedule = \"@daily\"\ncommand = \"true\"\n",
    )
    .unwrap();
    tokens_file(&dir, &format!("read {READ}\n"));
    let out = bin()
        .args([
            "agent",
            "--config",
            dir.join("tasks.toml").to_str().unwrap(),
            "--listen",
            "0.0.0.0:0",
        ])
        .args(["--state-dir", dir.join("state").to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("refusing to serve the API on 0.0.0.0 without TLS"), "{stderr}");

    // --insecure-listen: served openly, as asked; --public-metrics: /metrics without a token.
    let open = Agent::spawn(
        dir.clone(),
        &["--listen", "0.0.0.0:0", "--insecure-listen", "--public-metrics"],
        Client::new(),
        "http",
    );
    assert_eq!(open.call(Method::GET, "/metrics", None, None).status(), StatusCode::OK);
    assert_eq!(
        open.call(Method::GET, "/api/v1/tasks", None, None).status(),
        StatusCode::UNAUTHORIZED
    );
    open.stop();

    let key = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    std::fs::write(dir.join("cert.pem"), key.cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), key.signing_key.serialize_pem()).unwrap();
    let client = Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(key.cert.pem().as_bytes()).unwrap())
        .build()
        .unwrap();
    let cert = dir.join("cert.pem");
    let pem = dir.join("key.pem");
    let agent = Agent::spawn(
        dir.clone(),
        &["--tls-cert", cert.to_str().unwrap(), "--tls-key", pem.to_str().unwrap()],
        client,
        "https",
    );
    assert_eq!(agent.get("/api/v1/tasks")["tasks"][0]["name"], "a");
    let browser = Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(key.cert.pem().as_bytes()).unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    sessions::over_tls(&agent, browser);
    // Plain HTTP to the TLS port gets nothing.
    let plain = Client::new().get(agent.url.replace("https", "http") + "/healthz").send();
    assert!(plain.is_err() || !plain.unwrap().status().is_success());
    agent.stop();
}

/// The CLI, with its output.
fn cli(args: &[&str]) -> (i32, String, String) {
    let out = bin().args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_cli_works_through_the_api() {
    let tasks = r#"
[[task]]
name = "hello"
schedule = "@yearly"
command = "echo line-one; sleep 0.3; echo line-two"

[[task]]
name = "fails"
schedule = "@yearly"
command = "echo oops; exit 4"

[[task]]
name = "long"
schedule = "@yearly"
command = "echo begun; sleep 60"
"#;
    let agent = Agent::start("cli", tasks, &[]);
    let state = agent.dir.join("state");
    let state = state.to_str().unwrap();
    // Found through the state directory.
    let (code, out, err) = cli(&["run", "hello", "-w", "--state-dir", state]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "line-one\nline-two\n");
    assert!(err.contains("succeeded, exit code 0"), "{err}");
    let (code, out, _) = cli(&["run", "fails", "--wait", "--state-dir", state]);
    assert_eq!(code, 1);
    assert!(out.starts_with("oops"), "{out}");
    let (code, out, _) = cli(&["logs", "fails", "--state-dir", state]);
    assert_eq!((code, out.as_str()), (0, "oops\n"));

    // Through --server and --token-file, as from another machine.
    let token = agent.dir.join("state/api-token");
    let remote = ["--server", agent.url.as_str(), "--token-file", token.to_str().unwrap()];
    let (code, out, err) = cli(&[&["runs", "--json"][..], &remote].concat());
    assert_eq!(code, 0, "{err}");
    let runs: Vec<Value> = serde_json::from_str(&out).unwrap();
    let outcomes: Vec<&str> = runs.iter().map(|r| r["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes.len(), 2);
    assert!(outcomes.contains(&"failed") && outcomes.contains(&"succeeded"));
    let (code, out, _) = cli(&[&["runs", "--task", "hello"][..], &remote].concat());
    assert_eq!(code, 0);
    assert!(out.starts_with("SLOT") && out.contains("hello@") && !out.contains("fails@"), "{out}");

    let (code, out, err) =
        cli(&[&["pause", "hello", "--until", "2099-01-01T00:00:00Z"][..], &remote].concat());
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "paused hello until 2099-01-01T00:00:00Z\n");
    let (_, out, _) = cli(&["status", "--state-dir", state, "--utc"]);
    assert!(out.contains("paused until 2099-01-01T00:00:00+00:00"), "{out}");
    assert!(out.starts_with("agent: running, pid "), "{out}");
    let (code, out, _) = cli(&[&["resume", "hello"][..], &remote].concat());
    assert_eq!(code, 0);
    assert!(out.starts_with("resumed hello; next run "), "{out}");

    // Kill waits until the run is over; logs -f follows a run to its end.
    let (_, out, _) = cli(&["run", "long", "--state-dir", state]);
    let id = out.trim().strip_prefix("started ").unwrap().to_owned();
    let follower = bin()
        .args(["logs", "long", &id, "-f", "--state-dir", state])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    agent.wait_for("the run's output", 10, || {
        let text = cli(&["logs", "long", &id, "--state-dir", state]).1;
        (text == "begun\n").then_some(())
    });
    let (code, out, err) = cli(&[&["kill", &id][..], &remote].concat());
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("killed"), "{out}");
    let followed = follower.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&followed.stdout), "begun\n");
    assert!(String::from_utf8_lossy(&followed.stderr).contains("killed"));

    // Errors: the agent's message, exit 2.
    let (code, _, err) = cli(&[&["run", "nope"][..], &remote].concat());
    assert_eq!(code, 2);
    assert_eq!(err, "cronfleet: no task named `nope`\n");
    let (code, _, err) = cli(&["run", "hello", "--server", agent.url.as_str()]);
    assert_eq!(code, 2);
    assert!(err.contains("--token-file"), "{err}");
    agent.stop();
    let (code, _, err) = cli(&["run", "hello", "--state-dir", state]);
    assert_eq!(code, 2);
    assert!(err.contains("no running agent"), "{err}");
}

/// The example's `poll-queue` echoes its secret `QUEUE_URL`; a task echoes a notifier's URL
/// and signing secret, slowly and in pieces. Nobody sees those values: not a read token, not
/// an admin, not the live stream, the agent's log, `cronfleet logs` or the database file.
#[test]
fn secrets_are_masked_wherever_output_appears() {
    let example = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/tasks.toml"),
    )
    .unwrap();
    let tasks = format!(
        "{example}\n[[notifier]]\nname = \"ops\"\nkind = \"webhook\"\n\
         url = \"http://127.0.0.1:9/hook/T0KEN-abc\"\nsecret = \"sign-me-please\"\n\n\
         [[task]]\nname = \"leaky\"\nschedule = \"@yearly\"\n\
         command = \"printf 'hook http://127.0.0.1:9/hook/'; sleep 0.5; echo 'T0KEN-abc'; \
         sleep 0.5; printf 'sign-me'; sleep 0.5; echo '-please; done'\"\n"
    );
    let agent = Agent::start("masking", &tasks, &[]);
    let output = |id: &str, token: &str| {
        let path = format!("/api/v1/runs/{}/output", enc(id));
        agent.call(Method::GET, &path, Some(token), None).text().unwrap()
    };
    let (status, started) = agent.post("/api/v1/tasks/poll-queue/run", None);
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    let poll = started["run_id"].as_str().unwrap().to_owned();
    let (status, started) = agent.post("/api/v1/tasks/leaky/run", None);
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    let leaky = started["run_id"].as_str().unwrap().to_owned();
    // Followed live while it writes.
    agent.wait_for("the run to be in flight", 10, || {
        let r = agent.call(Method::GET, &format!("/api/v1/runs/{}", enc(&leaky)), Some(READ), None);
        (r.status() == StatusCode::OK).then_some(())
    });
    let stream = agent
        .client
        .get(format!("{}/api/v1/runs/{}/output?follow=true", agent.url, enc(&leaky)))
        .bearer_auth(READ)
        .send()
        .unwrap();
    let live = stream.text().unwrap();
    assert!(live.contains("event: end"), "{live}");
    for id in [&poll, &leaky] {
        agent.wait_for("the run's end", 20, || {
            let run = agent.get(&format!("/api/v1/runs/{}", enc(id)));
            (run["outcome"] == "succeeded").then_some(())
        });
    }
    assert_eq!(output(&poll, READ), "polling *** from /tmp\n");
    assert_eq!(output(&poll, &agent.admin), "polling *** from /tmp\n");
    assert_eq!(output(&leaky, READ), "hook ***\n***; done\n");
    let state = agent.dir.join("state");
    let (code, logs, _) = cli(&["logs", "leaky", "--state-dir", state.to_str().unwrap()]);
    assert_eq!((code, logs.as_str()), (0, "hook ***\n***; done\n"));
    let log = agent.stop();
    let mut database = Vec::new();
    for file in ["state.db", "state.db-wal"] {
        database.extend(std::fs::read(state.join(file)).unwrap_or_default());
    }
    let database = String::from_utf8_lossy(&database).into_owned();
    for (what, text) in [("live stream", &live), ("agent log", &log), ("database", &database)] {
        for secret in ["polling amqp://localhost", "T0KEN-abc", "sign-me-please"] {
            assert!(!text.contains(secret), "{secret} in the {what}:\n{text}");
        }
    }
    assert!(live.contains("***"), "{live}");
}

/// An error answer's status, `code` and message, checking it is the JSON error body.
fn error_of(r: Response) -> (StatusCode, String, String) {
    let status = r.status();
    let kind = r.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(kind.as_deref(), Some("application/json"), "{status}");
    let body: Value = r.json().unwrap();
    let code = body["error"]["code"].as_str().unwrap_or_else(|| panic!("{body}")).to_owned();
    let message = body["error"]["message"].as_str().unwrap_or_else(|| panic!("{body}")).to_owned();
    assert!(!message.is_empty(), "{body}");
    (status, code, message)
}

/// Sends `request` as it is on a new connection; the whole answer as text.
fn raw(agent: &Agent, request: &[u8]) -> String {
    use std::io::{Read, Write};
    let addr = agent.url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = stream.write_all(request);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

#[test]
fn requests_are_strict_and_every_error_is_json() {
    let agent = Agent::start("strict", TASKS, &[]);
    let admin = agent.admin.clone();
    let send = |method: Method, path: &str, kind: Option<&str>, body: &str| {
        let mut r =
            agent.client.request(method, format!("{}{path}", agent.url)).bearer_auth(&admin);
        if let Some(kind) = kind {
            r = r.header("content-type", kind);
        }
        r.body(body.to_owned()).send().unwrap()
    };
    let doc = agent.get("/api/v1/openapi.json");
    let mut operations = Vec::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            let path = path.replace("{name}", "slow").replace("{id}", "slow%400%231");
            operations.push((method.to_uppercase().parse::<Method>().unwrap(), path, op.clone()));
        }
    }
    assert_eq!(operations.len(), 20);

    // An unknown query parameter is a 400 on every route, naming it (and nothing is done).
    for (method, path, op) in &operations {
        assert!(op["responses"].get("400").is_some(), "{method} {path} documents its 400");
        let r = send(method.clone(), &format!("{path}?colour=red"), None, "");
        let (status, code, message) = error_of(r);
        assert_eq!((status, code.as_str()), (StatusCode::BAD_REQUEST, "bad_request"), "{path}");
        assert!(message.starts_with("unknown parameter \"colour\""), "{method} {path}: {message}");
    }
    let (status, _, message) = error_of(send(Method::GET, "/api/v1/node?verbose=1", None, ""));
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(message, "unknown parameter \"verbose\": this route takes no parameters");
    let r = send(Method::GET, "/api/v1/runs/slow%400%231/output?follow=null", None, "");
    let (status, _, message) = error_of(r);
    assert_eq!(
        (status, message.as_str()),
        (StatusCode::BAD_REQUEST, "follow: expected true or false, not \"null\"")
    );
    let r = send(Method::POST, "/api/v1/apply?allow_empty=yes", None, "");
    assert_eq!(error_of(r).0, StatusCode::BAD_REQUEST);

    // A body of the wrong media type is a 415 on every route that takes one (JSON routes:
    // JSON only; plan and apply: a task file, not JSON), before anything is done.
    for (method, path, op) in &operations {
        if op["responses"].get("415").is_none() {
            continue;
        }
        let toml = op["requestBody"]["content"].get("text/plain").is_some();
        let refused: &[Option<&str>] = if toml {
            &[Some("application/json"), Some("application/x-www-form-urlencoded")]
        } else {
            &[
                Some("text/plain"),
                Some("application/x-www-form-urlencoded"),
                None,
                Some("application/json; charset=latin1"),
            ]
        };
        for kind in refused {
            let r = send(method.clone(), path, *kind, "{}");
            let (status, code, message) = error_of(r);
            assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{method} {path} {kind:?}");
            assert_eq!(code, "unsupported_media_type");
            let how = if toml { "application/toml" } else { "Content-Type: application/json" };
            assert!(message.contains(how) || message.contains("UTF-8"), "{message}");
        }
    }
    let slow = agent.get("/api/v1/tasks/slow");
    assert_eq!((slow["paused"].clone(), slow["running"].clone()), (json!(false), json!(0)));

    // Unknown body fields are a 422 naming the field: a typo never pauses for ever.
    let future = "2099-01-01T00:00:00Z";
    let json = Some("application/json");
    for (path, body, want) in [
        (
            "/api/v1/tasks/slow/pause",
            format!(r#"{{"untill": "{future}"}}"#),
            "unknown field \"untill\": did you mean \"until\"? (this route takes until)",
        ),
        (
            "/api/v1/tasks/slow/resume",
            r#"{"missed": "skip", "mised": "once"}"#.to_owned(),
            "unknown field \"mised\": did you mean \"missed\"? (this route takes missed)",
        ),
        (
            "/api/v1/tasks/slow/run",
            r#"{"now": true}"#.to_owned(),
            "unknown field \"now\": this route takes no body",
        ),
        (
            "/api/v1/reload",
            r#"{"force": 1}"#.to_owned(),
            "unknown field \"force\": this route takes no body",
        ),
    ] {
        let (status, code, message) = error_of(send(Method::POST, path, json, &body));
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, "unknown_field"),
            "{path}"
        );
        assert_eq!(message, want);
    }
    let slow = agent.get("/api/v1/tasks/slow");
    assert_eq!(slow["paused"], false, "the typo paused nothing");
    assert!(agent.runs("slow").is_empty(), "nor ran anything");
    let task = r#"{"name": "typo", "schedule": "@daily", "command": "true", "retrys": 2}"#;
    let (status, code, message) = error_of(send(Method::POST, "/api/v1/tasks", json, task));
    assert_eq!((status, code.as_str()), (StatusCode::UNPROCESSABLE_ENTITY, "invalid_task"));
    assert!(message.contains("unknown field; did you mean `retries`?"), "{message}");
    assert_eq!(agent.call(Method::GET, "/api/v1/tasks/typo", Some(&admin), None).status(), 404);

    // JSON content types: with parameters, or a +json type; an empty body needs none.
    let until = format!(r#"{{"until": "{future}"}}"#);
    let r = send(
        Method::POST,
        "/api/v1/tasks/slow/pause",
        Some("Application/JSON; charset=UTF-8"),
        &until,
    );
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().unwrap()["paused_until"], future);
    let r = send(
        Method::POST,
        "/api/v1/tasks/slow/resume",
        Some("application/vnd.example+json"),
        r#"{"missed": "skip"}"#,
    );
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(send(Method::POST, "/api/v1/tasks/slow/pause", None, "").status(), StatusCode::OK);
    // Whitespace alone is no JSON (and no empty body): refused, and nothing is done.
    let r = send(Method::POST, "/api/v1/tasks/slow/resume", json, "\r\n");
    assert_eq!(error_of(r).0, StatusCode::BAD_REQUEST);
    assert_eq!(agent.get("/api/v1/tasks/slow")["paused"], true);
    assert_eq!(
        send(Method::POST, "/api/v1/tasks/slow/resume", json, "{}").status(),
        StatusCode::OK
    );
    // Task files: text/plain, application/toml or no content type.
    let file = std::fs::read_to_string(agent.dir.join("tasks.toml")).unwrap();
    for kind in [Some("text/plain; charset=utf-8"), Some("application/toml"), None] {
        let r = send(Method::POST, "/api/v1/plan", kind, &file);
        assert_eq!(r.status(), StatusCode::OK, "{kind:?}");
        assert_eq!(r.json::<Value>().unwrap()["unchanged"].as_array().unwrap().len(), 3);
    }

    // What the server stack answers by itself is the same JSON: 405 with Allow, 413, a bad
    // path, an unknown route; and what hyper answers before any route (400, 414, 431).
    let r = send(Method::DELETE, "/api/v1/tasks", None, "");
    assert_eq!(r.headers()["allow"], "GET,HEAD,POST");
    assert!(r.headers().contains_key("content-security-policy"));
    let (status, code, message) = error_of(r);
    assert_eq!((status, code.as_str()), (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"));
    assert_eq!(
        message,
        "/api/v1/tasks does not take DELETE: its Allow header lists the methods it takes"
    );
    let r = send(Method::GET, "/api/v1/tasks/slow/run", None, "");
    assert_eq!(r.headers()["allow"], "POST");
    assert_eq!(error_of(r).0, StatusCode::METHOD_NOT_ALLOWED);
    let big = "x".repeat(3 << 20);
    let (status, code, message) = error_of(send(Method::POST, "/api/v1/plan", None, &big));
    assert_eq!((status, code.as_str()), (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"));
    assert_eq!(message, "the body is larger than 2097152 bytes");
    let (status, _, message) = error_of(send(Method::GET, "/api/v1/tasks/%FF", None, ""));
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(message, "name: the path segment is not UTF-8 once percent-decoded");
    let (status, code, _) = error_of(send(Method::GET, "/api/v1/tasks/slow/stop", None, ""));
    assert_eq!((status, code.as_str()), (StatusCode::NOT_FOUND, "not_found"));

    // hyper's own answers (a URI over 64 KiB, which reqwest cannot even send).
    let long =
        format!("GET /api/v1/tasks?label={} HTTP/1.1\r\nHost: x\r\n\r\n", "x".repeat(70_000));
    for (request, status, code) in [
        (long.into_bytes(), "414 URI Too Long", "uri_too_long"),
        (
            b"BAD\x01REQUEST / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            "400 Bad Request",
            "bad_request",
        ),
        (
            format!("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "y".repeat(500_000))
                .into_bytes(),
            "431 Request Header Fields Too Large",
            "headers_too_large",
        ),
    ] {
        let answer = raw(&agent, &request);
        let (head, body) = answer.split_once("\r\n\r\n").unwrap_or_else(|| panic!("{answer}"));
        assert!(head.starts_with(&format!("HTTP/1.1 {status}\r\n")), "{head}");
        assert!(head.contains("\r\ncontent-type: application/json\r\n"), "{head}");
        assert!(head.contains(&format!("\r\ncontent-length: {}\r\n", body.len())), "{head}");
        assert!(head.contains("\r\nx-content-type-options: nosniff\r\n"), "{head}");
        let body: Value = serde_json::from_str(body).unwrap();
        assert_eq!(body["error"]["code"], code, "{body}");
    }
    // The agent is none the worse.
    assert_eq!(agent.get("/api/v1/tasks")["tasks"].as_array().unwrap().len(), 3);
    agent.stop();
}

#[test]
fn apply_refuses_to_empty_the_task_file_unless_asked() {
    let agent = Agent::start("empty", TASKS, &[]);
    let file = agent.dir.join("tasks.toml");
    let before = std::fs::read_to_string(&file).unwrap();
    let send = |path: &str, body: &str| {
        agent
            .client
            .post(format!("{}{path}", agent.url))
            .bearer_auth(&agent.admin)
            .header("content-type", "application/toml")
            .body(body.to_owned())
            .send()
            .unwrap()
    };
    // Through the API: refused, saying how to proceed; nothing written, every task kept.
    for body in ["", "\n# moved to another machine\n", "[defaults]\ntimeout = \"1m\"\n"] {
        let (status, code, message) = error_of(send("/api/v1/apply", body));
        assert_eq!((status, code.as_str()), (StatusCode::CONFLICT, "empty_task_file"), "{body:?}");
        assert_eq!(
            message,
            "the file defines no task: applying it would remove every task of the task file \
             (3: tick, slow, elsewhere); nothing was written. To do that, apply it with \
             allow_empty=true (cronfleet apply --allow-empty)"
        );
    }
    assert_eq!(std::fs::read_to_string(&file).unwrap(), before);
    assert_eq!(agent.get("/api/v1/tasks")["tasks"].as_array().unwrap().len(), 3);
    // plan says so.
    let plan: Value = send("/api/v1/plan", "").json().unwrap();
    assert_eq!(plan["removed"].as_array().unwrap().len(), 3);
    assert_eq!(plan["warnings"][0]["code"], "empty_task_file");
    let plan: Value = send("/api/v1/plan", &before).json().unwrap();
    assert!(plan.get("warnings").is_none(), "{plan}");

    // Through the CLI: plan warns; apply refuses (exit 2) unless --allow-empty.
    let state = agent.dir.join("state");
    let state = state.to_str().unwrap();
    let empty = agent.dir.join("empty.toml");
    std::fs::write(&empty, "# nothing here\n").unwrap();
    let empty = empty.to_str().unwrap();
    let (code, out, err) = cli(&["plan", empty, "--state-dir", state]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "- tick  (removed)\n- slow  (removed)\n- elsewhere  (removed)\n3 change(s), 0 unchanged\n\
         warning: the file defines no task: applying it removes every task of the task file (3); \
         apply refuses it unless asked with allow_empty=true (cronfleet apply --allow-empty)\n"
    );
    let (code, out, err) = cli(&["plan", empty, "--json", "--state-dir", state]);
    assert_eq!(code, 0, "{err}");
    let plan: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(plan["warnings"][0]["code"], "empty_task_file");
    let (code, out, err) = cli(&["apply", empty, "--state-dir", state]);
    assert_eq!((code, out.as_str()), (2, ""));
    assert_eq!(
        err,
        "cronfleet: the file defines no task: applying it would remove every task of the task \
         file (3: tick, slow, elsewhere); nothing was written. To do that, apply it with \
         allow_empty=true (cronfleet apply --allow-empty)\n"
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), before);
    let (code, out, err) = cli(&["apply", empty, "--allow-empty", "--state-dir", state]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "- tick  (removed)\n- slow  (removed)\n- elsewhere  (removed)\n\
         applied: 0 added, 0 changed, 3 removed, 0 unchanged; on this node: 2 removed (tasks of \
         other nodes and disabled tasks do not run here)\n"
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "# nothing here\n");
    assert_eq!(agent.get("/api/v1/tasks")["tasks"], json!([]));

    // With no task left, writing an empty file is still asked for in so many words.
    let (status, _, message) = error_of(send("/api/v1/apply", ""));
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(message.contains("would write a task file without any task"), "{message}");
    let r = send("/api/v1/apply?allow_empty=true", "");
    assert_eq!(r.status(), StatusCode::OK);
    let done: Value = r.json().unwrap();
    assert_eq!(done["applied"], json!({"added": 0, "changed": 0, "removed": 0}));
    assert!(done.get("warnings").is_none(), "{done}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "");
    // And a file with tasks goes back as ever.
    let r = send("/api/v1/apply", &before);
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(agent.get("/api/v1/tasks")["tasks"].as_array().unwrap().len(), 3);
    agent.stop();
}

/// `retry_on` decides which ends `retries` retry: by default a timeout is retried like a
/// failure; `["failed"]` leaves a run that hung until its timeout alone, `["timed_out"]` a
/// failed one.
#[test]
fn retry_on_chooses_what_is_retried() {
    let task = |name: &str, command: &str, retry_on: &str| {
        format!(
            "[[task]]\nname = \"{name}\"\nschedule = \"@yearly\"\ncommand = \"{command}\"\n\
             timeout = \"1s\"\nretries = 1\nretry_backoff = \"1s\"\n{retry_on}\n"
        )
    };
    let tasks = [
        task("hangs-default", "sleep 30", ""),
        task("hangs-failed-only", "sleep 30", "retry_on = [\"failed\"]"),
        task("fails-timeout-only", "exit 3", "retry_on = [\"timed_out\"]"),
        task("fails-default", "exit 3", ""),
    ]
    .join("\n");
    let agent = Agent::start("retry-on", &tasks, &[]);
    for name in ["hangs-default", "hangs-failed-only", "fails-timeout-only", "fails-default"] {
        let (status, body) = agent.post(&format!("/api/v1/tasks/{name}/run"), None);
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    }
    let ended = |name: &str| -> Vec<(String, u64)> {
        let mut runs: Vec<(String, u64)> = agent
            .runs(name)
            .iter()
            .filter(|r| r["outcome"] != "running")
            .map(|r| (r["outcome"].as_str().unwrap().to_owned(), r["attempt"].as_u64().unwrap()))
            .collect();
        runs.sort_by_key(|r| r.1);
        runs
    };
    // The retried ones end twice; by then the others would have been retried too.
    agent.wait_for("the retries", 30, || {
        (ended("hangs-default").len() == 2 && ended("fails-default").len() == 2).then_some(())
    });
    let timed_out = |n| ("timed_out".to_owned(), n);
    let failed = |n| ("failed".to_owned(), n);
    assert_eq!(ended("hangs-default"), [timed_out(1), timed_out(2)]);
    assert_eq!(ended("fails-default"), [failed(1), failed(2)]);
    assert_eq!(ended("hangs-failed-only"), [timed_out(1)]);
    assert_eq!(ended("fails-timeout-only"), [failed(1)]);
    let definition = agent.get("/api/v1/tasks/hangs-failed-only");
    assert_eq!(definition["retry_on"], json!(["failed"]), "{definition}");
    agent.stop();
}

/// A daemon shows as up (since when, for how long) or restarting, with its restart count, in
/// the API, `status` and the dashboard, and has no next run.
#[test]
fn daemons_show_up_or_restarting_with_their_restarts() {
    let tasks = r#"
[[task]]
name = "flaky"
kind = "daemon"
command = "n=$(cat DIR/count 2>/dev/null || echo 0); n=$((n+1)); echo $n > DIR/count; [ $n -ge 3 ] && exec sleep 1000; exit 1"

[[task]]
name = "broken"
kind = "daemon"
command = "exit 1"
"#;
    let agent = Agent::start("daemons", tasks, &[]);
    let daemon = |name: &str| agent.get(&format!("/api/v1/tasks/{name}"))["daemon"].clone();
    let up = agent.wait_for("flaky up after two restarts", 30, || {
        let d = daemon("flaky");
        (d["state"] == "up" && d["restarts"] == 2).then_some(d)
    });
    assert!(up["uptime_s"].as_i64().unwrap() >= 0, "{up}");
    assert!(up["up_since"].as_str().unwrap().ends_with('Z'), "{up}");
    assert_eq!(up["restart_at"], Value::Null);
    let broken = agent.wait_for("broken restarting", 30, || {
        let d = daemon("broken");
        (d["state"] == "restarting").then_some(d)
    });
    assert!(broken["restarts"].as_u64().unwrap() >= 1, "{broken}");
    assert!(broken["restart_at"].is_string(), "{broken}");
    let listed = agent.get("/api/v1/tasks");
    let flaky = listed["tasks"].as_array().unwrap().iter().find(|t| t["name"] == "flaky").unwrap();
    assert_eq!(flaky["daemon"]["state"], "up", "{flaky}");
    assert_eq!(flaky["next_run"], Value::Null);

    let state = agent.dir.join("state");
    let (code, out, err) = cli(&["status", "--state-dir", state.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let line = out.lines().find(|l| l.starts_with("flaky")).unwrap_or_default();
    assert!(line.contains("  up ") && line.contains("(2 restarts)"), "{out}");
    let line = out.lines().find(|l| l.starts_with("broken")).unwrap_or_default();
    assert!(line.contains("restarting") || line.contains("  up "), "{out}");
    let home = agent.call(Method::GET, "/", Some(READ), None).text().unwrap();
    assert!(home.contains("(2 restarts)"), "{home}");
    // Every time on the page is in one zone, and the page names it.
    let zone = home.split("times: ").nth(1).and_then(|rest| rest.split('<').next()).unwrap_or("");
    assert!(!zone.is_empty() && !zone.contains(' '), "{home}");
    agent.stop();
}
