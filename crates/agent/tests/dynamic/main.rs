//! Dynamic tasks through the API of a real agent: create, change, pause and delete at runtime;
//! anchors counted from creation across restarts (days passing by restarting the agent with a
//! later clock, `CRONFLEET_TEST_CLOCK_OFFSET`); revisions; crashes during writes; name clashes
//! with the task file; HTTP tasks.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use jiff::{SignedDuration, Timestamp};
use reqwest::{blocking::Client, Method, StatusCode};
use serde_json::{json, Value};

struct Agent {
    child: Child,
    dir: PathBuf,
    url: String,
    token: String,
    http: Client,
}

const FILE: &str = r#"
[[task]]
name = "from-file"
schedule = "@daily"
command = "true"
"#;

fn setup(name: &str, file: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cronfleet-dynamic-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("tasks.toml"), file).unwrap();
    dir
}

impl Agent {
    /// Starts an agent on `dir` whose clock is `offset` ahead (e.g. "2d").
    fn start(dir: &Path, offset: &str) -> Agent {
        let state = dir.join("state");
        let _ = std::fs::remove_file(state.join("api-addr"));
        let child = Command::new(env!("CARGO_BIN_EXE_cronfleet"))
            .args(["agent", "--config", dir.join("tasks.toml").to_str().unwrap(), "--no-watch"])
            .args(["--listen", "127.0.0.1:0", "--state-dir", state.to_str().unwrap()])
            .env("CRONFLEET_TEST_CLOCK_OFFSET", offset)
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(dir.join("agent.log"))
                    .unwrap(),
            )
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let began = Instant::now();
        let url = loop {
            if let Ok(url) = std::fs::read_to_string(state.join("api-addr")) {
                break url.trim().to_owned();
            }
            assert!(
                began.elapsed() < Duration::from_secs(20),
                "no api-addr:\n{}",
                std::fs::read_to_string(dir.join("agent.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(30));
        };
        let token = std::fs::read_to_string(state.join("api-token")).unwrap().trim().to_owned();
        Agent { child, dir: dir.to_owned(), url, token, http: Client::new() }
    }

    fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        if_match: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut r =
            self.http.request(method, format!("{}{path}", self.url)).bearer_auth(&self.token);
        if let Some(body) = body {
            r = r.json(&body);
        }
        if let Some(rev) = if_match {
            r = r.header("if-match", rev);
        }
        let r = r.send().unwrap();
        let status = r.status();
        (status, r.json().unwrap_or(Value::Null))
    }

    fn task(&self, name: &str) -> Value {
        let (status, task) = self.call(Method::GET, &format!("/api/v1/tasks/{name}"), None, None);
        assert_eq!(status, StatusCode::OK, "{task}");
        task
    }

    fn stop(mut self) {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        self.child.wait().unwrap();
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("agent.log")).unwrap_or_default()
    }
}

fn ts(v: &Value) -> Timestamp {
    v.as_str().unwrap_or_else(|| panic!("not an instant: {v}")).parse().unwrap()
}

fn days(n: i64) -> SignedDuration {
    SignedDuration::from_hours(24 * n)
}

#[test]
fn a_rule_keeps_its_own_cadence_across_restarts_changes_and_pauses() {
    let dir = setup("cadence", FILE);
    // Day 0: the rule is created; its 7-day cadence counts from now.
    let agent = Agent::start(&dir, "0s");
    let (status, rule) = agent.call(
        Method::POST,
        "/api/v1/tasks",
        Some(json!({"name": "rule-42", "schedule": "@every 7d", "command": "echo checking rule 42", "labels": {"rule": "42"}})),
        None,
    );
    assert_eq!(status, StatusCode::CREATED, "{rule}");
    let t = ts(&rule["anchor"]);
    assert_eq!(ts(&rule["created_at"]), t, "the anchor is the creation time");
    assert_eq!(ts(&rule["next_run"]), t + days(7));
    assert_eq!(rule["origin"], "api");
    assert_eq!(rule["revision"], 1);
    // A second rule, every 3 days: it will be resumed with its missed slot run once.
    let (status, other) = agent.call(
        Method::POST,
        "/api/v1/tasks",
        Some(json!({"name": "rule-43", "schedule": "@every 3d", "command": "echo rule 43"})),
        None,
    );
    assert_eq!(status, StatusCode::CREATED, "{other}");
    let t43 = ts(&other["anchor"]);
    agent.stop();

    // Day 2: restarted; the next run is still day 7, not day 9.
    let agent = Agent::start(&dir, "2d");
    assert_eq!(ts(&agent.task("rule-42")["next_run"]), t + days(7));
    agent.stop();

    // Day 4: every 3 days instead, counted from the same anchor: day 6.
    let agent = Agent::start(&dir, "4d");
    let (status, rule) = agent.call(
        Method::PATCH,
        "/api/v1/tasks/rule-42",
        Some(json!({"schedule": "@every 3d"})),
        Some("\"1\""),
    );
    assert_eq!(status, StatusCode::OK, "{rule}");
    assert_eq!(ts(&rule["anchor"]), t);
    assert_eq!(ts(&rule["next_run"]), t + days(6));
    assert_eq!(rule["revision"], 2);
    agent.stop();

    // Day 5: paused.
    let agent = Agent::start(&dir, "5d");
    let (status, _) = agent.call(Method::POST, "/api/v1/tasks/rule-42/pause", None, None);
    assert_eq!(status, StatusCode::OK);
    let (status, _) = agent.call(Method::POST, "/api/v1/tasks/rule-43/pause", None, None);
    assert_eq!(status, StatusCode::OK);
    agent.stop();

    // Day 8: still paused (the day-6 slot passed); resumed, the missed slot is skipped and the
    // next run is day 9.
    let agent = Agent::start(&dir, "8d");
    let rule = agent.task("rule-42");
    assert_eq!(rule["paused"], true);
    let (status, rule) = agent.call(Method::POST, "/api/v1/tasks/rule-42/resume", None, None);
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ts(&rule["next_run"]), t + days(9));
    std::thread::sleep(Duration::from_millis(500));
    let (_, runs) = agent.call(Method::GET, "/api/v1/runs?task=rule-42", None, None);
    assert_eq!(
        runs["runs"],
        json!([]),
        "no run, no missed record for the day-6 slot: {}",
        agent.log()
    );
    // Resumed with missed = once: the day-6 slot runs now, then the cadence goes on.
    let (status, other) = agent.call(
        Method::POST,
        "/api/v1/tasks/rule-43/resume",
        Some(json!({"missed": "once"})),
        None,
    );
    assert_eq!(status, StatusCode::OK, "{other}");
    assert_eq!(ts(&other["next_run"]), t43 + days(9));
    let began = Instant::now();
    let run = loop {
        let (_, runs) = agent.call(Method::GET, "/api/v1/runs?task=rule-43", None, None);
        let first = runs["runs"].as_array().and_then(|r| r.first()).cloned();
        if let Some(run) = first.filter(|r| r["outcome"] == "succeeded") {
            break run;
        }
        assert!(began.elapsed() < Duration::from_secs(10), "no run of the missed slot: {runs}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let slot = ts(&run["slot"]);
    let off = slot.duration_since(t43 + days(6)).abs();
    assert!(off < SignedDuration::from_secs(1), "{slot} is the day-6 slot");
    let (status, _) = agent.call(
        Method::POST,
        "/api/v1/tasks/rule-43/resume",
        Some(json!({"missed": "always"})),
        None,
    );
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // Filters by origin and label.
    let (_, api) = agent.call(Method::GET, "/api/v1/tasks?origin=api", None, None);
    let names: Vec<&str> =
        api["tasks"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["rule-42", "rule-43"]);
    let (_, file) = agent.call(Method::GET, "/api/v1/tasks?origin=file", None, None);
    assert_eq!(file["tasks"][0]["name"], "from-file");
    let (_, by_label) = agent.call(Method::GET, "/api/v1/tasks?label=rule=42", None, None);
    assert_eq!(by_label["tasks"].as_array().unwrap().len(), 1);
    let (_, none) = agent.call(Method::GET, "/api/v1/tasks?label=rule=43", None, None);
    assert_eq!(none["tasks"], json!([]));
    agent.stop();
}

#[test]
fn revisions_guard_against_lost_updates() {
    let dir = setup("revisions", FILE);
    let agent = Arc::new(Agent::start(&dir, "0s"));
    let (status, _) = agent.call(
        Method::POST,
        "/api/v1/tasks",
        Some(json!({"name": "r", "schedule": "@hourly", "command": "true"})),
        None,
    );
    assert_eq!(status, StatusCode::CREATED);
    // Ten writers all based on revision 1: exactly one wins.
    let handles: Vec<_> = (0..10)
        .map(|i| {
            let agent = agent.clone();
            std::thread::spawn(move || {
                agent
                    .call(
                        Method::PATCH,
                        "/api/v1/tasks/r",
                        Some(json!({"command": format!("echo {i}")})),
                        Some("\"1\""),
                    )
                    .0
            })
        })
        .collect();
    let statuses: Vec<StatusCode> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::OK).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::CONFLICT).count(), 9, "{statuses:?}");
    let (status, body) = agent.call(
        Method::PUT,
        "/api/v1/tasks/r",
        Some(json!({"schedule": "@daily", "command": "true"})),
        Some("\"1\""),
    );
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"]["code"], "revision_conflict");
    assert_eq!(body["error"]["details"]["revision"], 2);
    let (status, body) = agent.call(
        Method::PUT,
        "/api/v1/tasks/r",
        Some(json!({"schedule": "@daily", "command": "true"})),
        Some("\"2\""),
    );
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["schedule"], "@daily");
    assert_eq!(body["revision"], 3);
    // Bad input: 4xx with a message.
    for (method, path, body, code) in [
        (Method::POST, "/api/v1/tasks", json!({"schedule": "@daily"}), StatusCode::BAD_REQUEST),
        (
            Method::POST,
            "/api/v1/tasks",
            json!({"name": "Bad Name", "schedule": "@daily", "command": "x"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            Method::POST,
            "/api/v1/tasks",
            json!({"name": "x", "schedule": "@every 0s", "command": "x"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            Method::POST,
            "/api/v1/tasks",
            json!({"name": "r", "schedule": "@daily", "command": "x"}),
            StatusCode::CONFLICT,
        ),
        (
            Method::PATCH,
            "/api/v1/tasks/r",
            json!({"schedule": 5}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            Method::PATCH,
            "/api/v1/tasks/r",
            json!({"name": "other"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        // A typo is refused, also when it removes nothing.
        (
            Method::PATCH,
            "/api/v1/tasks/r",
            json!({"timout": null}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (Method::PATCH, "/api/v1/tasks/nope", json!({}), StatusCode::NOT_FOUND),
    ] {
        let (status, reply) = agent.call(method, path, Some(body.clone()), None);
        assert_eq!(status, code, "{body}: {reply}");
        assert!(reply["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{reply}");
    }
    let (status, reply) = agent.call(
        Method::PATCH,
        "/api/v1/tasks/r",
        Some(json!({"colour": "red", "timeout": "soon"})),
        None,
    );
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let fields: Vec<&str> = reply["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap())
        .collect();
    assert!(fields.contains(&"colour") && fields.contains(&"timeout"), "{reply}");
    assert_eq!(agent.task("r")["revision"], 3, "a refused change changes nothing");
    let (status, _) =
        agent.call(Method::PATCH, "/api/v1/tasks/r", Some(json!({})), Some("nonsense"));
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // Delete: stale revision refused, then gone.
    assert_eq!(
        agent.call(Method::DELETE, "/api/v1/tasks/r", None, Some("\"2\"")).0,
        StatusCode::CONFLICT
    );
    assert_eq!(
        agent.call(Method::DELETE, "/api/v1/tasks/r", None, Some("\"3\"")).0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(agent.call(Method::GET, "/api/v1/tasks/r", None, None).0, StatusCode::NOT_FOUND);
    Arc::try_unwrap(agent).ok().unwrap().stop();
}

#[test]
fn every_acknowledged_create_survives_kill_9() {
    let dir = setup("crash", FILE);
    let agent = Agent::start(&dir, "0s");
    let (url, token) = (agent.url.clone(), agent.token.clone());
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (url, token, acked) = (url.clone(), token.clone(), acked.clone());
            std::thread::spawn(move || {
                let http = Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
                for i in 0..500 {
                    let name = format!("burst-{w}-{i}");
                    let body = json!({"name": name, "schedule": "@every 1h", "command": "true"});
                    match http
                        .post(format!("{url}/api/v1/tasks"))
                        .bearer_auth(&token)
                        .json(&body)
                        .send()
                    {
                        Ok(r) if r.status() == StatusCode::CREATED => {
                            acked.lock().unwrap().push(name)
                        }
                        Ok(r) => panic!("{name}: {}", r.status()),
                        Err(_) => return,
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(700));
    let mut agent = agent;
    agent.child.kill().unwrap();
    agent.child.wait().unwrap();
    for w in writers {
        w.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > 10 && acked.len() < 2000,
        "killed during the burst: {} acknowledged",
        acked.len()
    );
    eprintln!("{} creates acknowledged before kill -9", acked.len());
    let agent = Agent::start(&dir, "0s");
    let (_, tasks) = agent.call(Method::GET, "/api/v1/tasks?origin=api", None, None);
    let stored: std::collections::HashSet<String> = tasks["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect();
    let lost: Vec<&String> = acked.iter().filter(|n| !stored.contains(*n)).collect();
    assert!(lost.is_empty(), "acknowledged but lost: {lost:?}");
    assert!(stored.len() <= acked.len() + 4, "at most one unacknowledged write per writer");
    agent.stop();
}

#[test]
fn file_and_api_never_override_each_other() {
    let dir = setup("clash", FILE);
    let agent = Agent::start(&dir, "0s");
    let (status, body) = agent.call(
        Method::POST,
        "/api/v1/tasks",
        Some(json!({"name": "from-file", "schedule": "@hourly", "command": "x"})),
        None,
    );
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("task file"));
    // The file's tasks are read-only through the API, but can be paused and run.
    for method in [Method::PUT, Method::PATCH, Method::DELETE] {
        // (DELETE takes no body: one with fields would be a 422.)
        let body = (method != Method::DELETE).then(|| json!({"command": "x"}));
        let (status, body) = agent.call(method.clone(), "/api/v1/tasks/from-file", body, None);
        assert_eq!(status, StatusCode::CONFLICT, "{method}");
        assert_eq!(body["error"]["code"], "file_task");
    }
    assert_eq!(
        agent.call(Method::POST, "/api/v1/tasks/from-file/pause", None, None).0,
        StatusCode::OK
    );
    assert_eq!(
        agent.call(Method::POST, "/api/v1/tasks/from-file/resume", None, None).0,
        StatusCode::OK
    );
    let (status, _) = agent.call(
        Method::POST,
        "/api/v1/tasks",
        Some(json!({"name": "api-one", "schedule": "@hourly", "command": "echo api"})),
        None,
    );
    assert_eq!(status, StatusCode::CREATED);
    // The file now also defines api-one: the reload is refused, neither task changes.
    std::fs::write(dir.join("tasks.toml"), format!("{FILE}\n[[task]]\nname = \"api-one\"\nschedule = \"@daily\"\ncommand = \"echo file\"\n")).unwrap();
    let (status, body) = agent.call(Method::POST, "/api/v1/reload", None, None);
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let detail = &body["error"]["details"][0];
    assert_eq!(detail["task"], "api-one");
    assert_eq!(detail["line"], 7);
    assert!(detail["message"].as_str().unwrap().contains("created through the API"), "{detail}");
    let api_one = agent.task("api-one");
    assert_eq!(
        (api_one["command"].as_str(), api_one["origin"].as_str(), api_one["revision"].as_i64()),
        (Some("echo api"), Some("api"), Some(1))
    );
    let (_, all) = agent.call(Method::GET, "/api/v1/tasks", None, None);
    assert_eq!(all["tasks"].as_array().unwrap().len(), 2);
    agent.stop();
    // And at start: the agent refuses the clashing file, saying why.
    let out = Command::new(env!("CARGO_BIN_EXE_cronfleet"))
        .args([
            "agent",
            "--config",
            dir.join("tasks.toml").to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ])
        .args(["--state-dir", dir.join("state").to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("tasks.toml:7:1: task \"api-one\", field `name`"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

// Each test binary uses its own part of the support module.
#[allow(dead_code)]
#[path = "../support/http.rs"]
mod http;

#[test]
fn http_tasks_call_a_url_on_their_cadence() {
    let ok = http::Receiver::start(|_| ("200 OK", "hello".into()));
    let down = http::Receiver::start(|_| ("503 Service Unavailable", "hello".into()));
    let (ok_port, bad_port) = (ok.port, down.port);
    let dir = setup("http", FILE);
    let agent = Agent::start(&dir, "0s");
    let (status, body) = agent.call(
        Method::POST,
        "/api/v1/tasks",
        Some(json!({
            "name": "check-rule-7",
            "schedule": "@every 1s",
            "http": {
                "url": format!("http://127.0.0.1:{ok_port}/rules/7/check?task={{{{task}}}}"),
                "method": "POST",
                "headers": {"Content-Type": "application/json"},
                "body": "{\"slot\": \"{{scheduled_at}}\", \"run\": \"{{run_id}}\"}",
            },
        })),
        None,
    );
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, _) = agent.call(
        Method::POST,
        "/api/v1/tasks",
        Some(json!({"name": "down", "schedule": "@every 1s", "http": {"url": format!("http://127.0.0.1:{bad_port}/")}})),
        None,
    );
    assert_eq!(status, StatusCode::CREATED);
    let began = Instant::now();
    while ok.all().len() < 2 {
        assert!(began.elapsed() < Duration::from_secs(10), "no calls; {}", agent.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    let first = ok.all().remove(0);
    let (method, target, body) = (first.method, first.target, first.body);
    assert_eq!(method, "POST");
    assert_eq!(target, "/rules/7/check?task=check-rule-7");
    let sent: Value = serde_json::from_str(&body).unwrap();
    assert!(sent["run"].as_str().unwrap().starts_with("check-rule-7@"));
    assert!(sent["slot"].as_str().unwrap().parse::<Timestamp>().is_ok());
    std::thread::sleep(Duration::from_millis(1500));
    let (_, runs) =
        agent.call(Method::GET, "/api/v1/runs?task=check-rule-7&outcome=succeeded", None, None);
    let run = &runs["runs"][0];
    let (_, full) = agent.call(
        Method::GET,
        &format!("/api/v1/runs/{}", run["id"].as_str().unwrap().replace('#', "%23")),
        None,
        None,
    );
    assert_eq!(full["output"], "HTTP 200 OK\nhello");
    let (_, runs) = agent.call(Method::GET, "/api/v1/runs?task=down", None, None);
    let run = &runs["runs"][0];
    assert_eq!(run["outcome"], "failed");
    assert_eq!(run["exit_code"], 503);
    agent.stop();
}

fn cli(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_cronfleet")).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_cli_manages_api_tasks_and_plans_and_applies_files() {
    let dir = setup("cli", FILE);
    let agent = Agent::start(&dir, "0s");
    let state = dir.join("state");
    let sd = ["--state-dir", state.to_str().unwrap()];
    let run = |args: &[&str]| cli(&[args, &sd[..]].concat());

    let (code, out, err) = run(&[
        "task",
        "create",
        "rule-1",
        "--schedule",
        "@every 7d",
        "--command",
        "echo hi",
        "--label",
        "rule=1",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("rule-1 revision 1 · every 1 week from "), "{out}");
    let (_, out, _) = run(&["task", "ls", "--origin", "api"]);
    assert!(out.lines().nth(1).unwrap().starts_with("rule-1") && out.contains("rule=1"), "{out}");
    assert!(!out.contains("from-file"));
    let (code, out, err) =
        run(&["task", "edit", "rule-1", "--schedule", "@every 3d", "--revision", "1"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("rule-1 revision 2 · every 3 days"), "{out}");
    let (code, _, err) = run(&["task", "edit", "rule-1", "--enabled", "false", "--revision", "1"]);
    assert_eq!(code, 2);
    assert!(err.contains("is at revision 2, not 1"), "{err}");
    let (code, _, err) =
        run(&["task", "create", "bad", "--schedule", "@every 5x", "--command", "x"]);
    assert_eq!(code, 2);
    assert!(err.contains("field `schedule`"), "{err}");
    let (_, out, _) = run(&["task", "show", "rule-1"]);
    let shown: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(shown["schedule"], "@every 3d");
    let (code, out, _) = run(&["task", "rm", "rule-1"]);
    assert_eq!((code, out.as_str()), (0, "deleted rule-1\n"));

    // plan, then apply, a new version of the file.
    let new = dir.join("new.toml");
    std::fs::write(&new, "[[task]]\nname = \"from-file\"\nschedule = \"@hourly\"\ncommand = \"true\"\n\n[[task]]\nname = \"extra\"\nschedule = \"@daily\"\ncommand = \"true\"\n").unwrap();
    let (code, out, err) = run(&["plan", new.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("+ extra  (added)"), "{out}");
    assert!(
        out.contains("~ from-file  (changed)\n    schedule: \"@daily\" -> \"@hourly\""),
        "{out}"
    );
    assert!(out.ends_with("2 change(s), 0 unchanged\n"), "{out}");
    assert_eq!(
        std::fs::read_to_string(dir.join("tasks.toml")).unwrap(),
        FILE,
        "plan changes nothing"
    );
    let (code, out, err) = run(&["apply", new.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.ends_with("applied: 1 added, 1 changed, 0 removed, 0 unchanged\n"), "{out}");
    assert_eq!(
        std::fs::read_to_string(dir.join("tasks.toml")).unwrap(),
        std::fs::read_to_string(&new).unwrap()
    );
    assert_eq!(agent.task("from-file")["schedule"], "@hourly");
    let (_, out, _) = run(&["plan", new.to_str().unwrap()]);
    assert_eq!(out, "no changes (2 tasks unchanged)\n");
    // An invalid file: its errors, nothing written.
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[[task]]\nname = \"x\"\nschedule = \"@sometimes\"\ncommand = \"true\"\n")
        .unwrap();
    let (code, _, err) = run(&["apply", bad.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("bad.toml:3:"), "{err}");
    assert!(err.contains("nothing was written"), "{err}");
    assert_eq!(
        std::fs::read_to_string(dir.join("tasks.toml")).unwrap(),
        std::fs::read_to_string(&new).unwrap()
    );
    agent.stop();
}
