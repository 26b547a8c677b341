//! `cronfleet runs` and `cronfleet logs` on a real agent (through its API) and on its state
//! directory once it has stopped: an unknown task is an error, not an empty list; a task
//! without runs is an empty list; a run id of another task is refused; a deleted task's runs
//! stay listed.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::agent::{Agent, Said};

const TASKS: &str = r#"
[[task]]
name = "flaky"
schedule = "@yearly"
command = "echo flaky-output"

[[task]]
name = "slow"
schedule = "@yearly"
command = "echo slow-output"

[[task]]
name = "never"
schedule = "@yearly"
command = "true"
"#;

/// A refusal: exit 2, nothing on stdout, `message` on stderr.
fn refused(said: &Said, message: &str) {
    assert_eq!(said.code, 2, "{said:?}");
    assert_eq!(said.out, "", "{said:?}");
    assert_eq!(said.err, format!("cronfleet: {message}\n"), "{said:?}");
}

/// Nothing to show, and that is not an error: exit 0, nothing on stdout, `note` on stderr.
fn nothing(said: &Said, note: &str) {
    assert_eq!((said.code, said.out.as_str()), (0, ""), "{said:?}");
    assert_eq!(said.err, format!("{note}\n"), "{said:?}");
}

#[test]
fn the_api_answers_404_for_an_unknown_task_on_every_route() {
    let agent = Agent::start("routes", TASKS);
    let not_found = json!({"error": {"code": "not_found", "message": "no task named \"nope\""}});
    assert_eq!(
        agent.api(Method::GET, "/api/v1/runs?task=nope", None),
        (StatusCode::NOT_FOUND, not_found.clone())
    );
    // Other filters do not hide it.
    let (status, _) = agent.api(Method::GET, "/api/v1/runs?task=nope&outcome=failed&limit=5", None);
    assert_eq!(status, StatusCode::NOT_FOUND);
    // A task without runs yet: an empty page.
    let (status, page) = agent.api(Method::GET, "/api/v1/runs?task=never", None);
    assert_eq!((status, &page["runs"]), (StatusCode::OK, &json!([])));
    for (method, path, body) in [
        (Method::GET, "/api/v1/tasks/nope", None),
        (Method::POST, "/api/v1/tasks/nope/run", None),
        (Method::POST, "/api/v1/tasks/nope/pause", None),
        (Method::POST, "/api/v1/tasks/nope/resume", None),
        (Method::PATCH, "/api/v1/tasks/nope", Some(json!({"schedule": "@daily"}))),
        (Method::PUT, "/api/v1/tasks/nope", Some(json!({"schedule": "@daily", "command": "true"}))),
        (Method::DELETE, "/api/v1/tasks/nope", None),
    ] {
        let (status, body) = agent.api(method.clone(), path, body);
        assert_eq!((status, body), (StatusCode::NOT_FOUND, not_found.clone()), "{method} {path}");
    }
}

#[test]
fn unknown_tasks_are_errors_and_tasks_without_runs_are_empty() {
    let mut agent = Agent::start("unknown", TASKS);
    let flaky = agent.run("flaky");
    let slow = agent.run("slow");
    for through in ["the API", "the state directory"] {
        if through == "the state directory" {
            agent.stop();
        }
        let cli = |args: &[&str]| agent.cli(args);
        refused(&cli(&["runs", "--task", "nope"]), "no task named `nope`");
        refused(
            &cli(&["runs", "--task", "flakey", "--json"]),
            "no task named `flakey`; did you mean `flaky`?",
        );
        refused(&cli(&["logs", "nope"]), "no task named `nope`");
        refused(&cli(&["logs", "slo"]), "no task named `slo`; did you mean `slow`?");

        nothing(&cli(&["runs", "--task", "never"]), "no runs of `never` yet");
        nothing(
            &cli(&["runs", "--task", "flaky", "--outcome", "failed"]),
            "no failed runs of `flaky`",
        );
        nothing(&cli(&["logs", "never"]), "no runs of `never` yet");
        let said = cli(&["runs", "--task", "never", "--json"]);
        assert_eq!((said.code, said.out.as_str()), (0, "[]\n"), "{through}: {said:?}");

        let said = cli(&["runs", "--task", "flaky"]);
        assert_eq!(said.code, 0, "{through}: {said:?}");
        assert!(said.out.starts_with("SLOT") && said.out.contains(&flaky), "{through}: {said:?}");
        assert!(!said.out.contains(&slow), "{through}: {said:?}");
        let said = cli(&["logs", "flaky"]);
        assert_eq!((said.code, said.out.as_str()), (0, "flaky-output\n"), "{through}: {said:?}");

        // A run id of another task: refused, and the other task's output is not printed.
        let other = format!("run `{slow}` is a run of `slow`, not of `flaky`");
        refused(&cli(&["logs", "flaky", &slow]), &other);
        let said = cli(&["logs", "slow", &slow]);
        assert_eq!((said.code, said.out.as_str()), (0, "slow-output\n"), "{through}: {said:?}");
        refused(&cli(&["logs", "flaky", "flaky@1#1"]), "no run `flaky@1#1` of `flaky`");
        refused(&cli(&["logs", "nope", "flaky@1#1"]), "no task named `nope`");
        if through == "the API" {
            refused(&cli(&["logs", "flaky", &slow, "-f"]), &other);
            refused(&cli(&["run", "flakey"]), "no task named `flakey`; did you mean `flaky`?");
            refused(&cli(&["pause", "nope"]), "no task named `nope`");
            refused(&cli(&["task", "show", "neve"]), "no task named `neve`; did you mean `never`?");
        }
    }
}

#[test]
fn a_deleted_tasks_runs_stay_listed() {
    let mut agent = Agent::start("deleted", TASKS);
    let said = agent.cli(&[
        "task",
        "create",
        "rule-1",
        "--schedule",
        "@yearly",
        "--command",
        "echo rule-output",
    ]);
    assert_eq!(said.code, 0, "{said:?}");
    let id = agent.run("rule-1");
    let said = agent.cli(&["task", "rm", "rule-1"]);
    assert_eq!(said.code, 0, "{said:?}");
    // No longer a task...
    let (status, _) = agent.api(Method::GET, "/api/v1/tasks/rule-1", None);
    assert_eq!(status, StatusCode::NOT_FOUND);
    refused(&agent.cli(&["run", "rule-1"]), "no task named `rule-1`");
    // ...but its history is still there, until retention prunes it.
    let (status, page) = agent.api(Method::GET, "/api/v1/runs?task=rule-1", None);
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<&Value> = page["runs"].as_array().unwrap().iter().map(|r| &r["id"]).collect();
    assert_eq!(ids, [&json!(id)]);
    for through in ["the API", "the state directory"] {
        if through == "the state directory" {
            agent.stop();
        }
        let said = agent.cli(&["runs", "--task", "rule-1"]);
        assert!(said.code == 0 && said.out.contains(&id), "{through}: {said:?}");
        let said = agent.cli(&["logs", "rule-1"]);
        assert_eq!((said.code, said.out.as_str()), (0, "rule-output\n"), "{through}: {said:?}");
        let said = agent.cli(&["logs", "rule-1", &id]);
        assert_eq!((said.code, said.out.as_str()), (0, "rule-output\n"), "{through}: {said:?}");
    }
}
