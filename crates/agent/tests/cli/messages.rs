//! What the CLI says on a real agent when the agent says no, or did something: an invalid task
//! (422) once, a second kill of a run, `apply`'s summary.

use reqwest::Method;

use crate::agent::Agent;

const TASKS: &str = r#"
[[task]]
name = "long"
schedule = "@yearly"
command = "echo begun; sleep 60"

[[task]]
name = "quick"
schedule = "@yearly"
command = "true"
"#;

#[test]
fn an_invalid_task_is_said_once_without_the_status() {
    let agent = Agent::start("invalid", TASKS);
    let said = agent.cli(&["task", "create", "bad", "--schedule", "@every 5x", "--command", "x"]);
    assert_eq!((said.code, said.out.as_str()), (2, ""), "{said:?}");
    assert_eq!(
        said.err,
        "cronfleet: invalid task: field `schedule`: invalid interval: unknown unit 'x'; \
         expected w, d, h, m or s\n  @every 5x\n          ^\n"
    );
    let said = agent.cli(&[
        "task",
        "create",
        "bad",
        "--schedule",
        "0 0 * * FRI#6",
        "--command",
        "x",
        "--json",
        r#"{"retries": "x"}"#,
    ]);
    assert_eq!(said.code, 2, "{said:?}");
    assert_eq!(
        said.err,
        "cronfleet: invalid task (2 problems):\n\
         field `retries`: expected an integer 0-100\n\
         field `schedule`: invalid day-of-week: expected 1-5 after '#' (the k-th weekday), not \"6\"\n\
         \x20 0 0 * * FRI#6\n\
         \x20             ^\n"
    );
    // A task file's errors: the agent's message, then each error at its place.
    let bad = agent.dir.join("bad.toml");
    std::fs::write(&bad, "[[task]]\nname = \"x\"\nschedule = \"@sometimes\"\ncommand = \"true\"\n")
        .unwrap();
    let said = agent.cli(&["apply", bad.to_str().unwrap()]);
    assert_eq!(said.code, 2, "{said:?}");
    let lines: Vec<&str> = said.err.lines().collect();
    let file = bad.display().to_string();
    assert_eq!(lines[0], format!("cronfleet: {file} has 1 error(s); nothing was written"));
    assert!(
        lines[1].starts_with(&format!("{file}:3:13: task \"x\", field `schedule`: ")),
        "{said:?}"
    );
    assert!(!said.err.contains("HTTP"), "{said:?}");
}

#[test]
fn a_second_kill_says_how_the_run_ended() {
    let agent = Agent::start("kill", TASKS);
    let said = agent.cli(&["run", "long"]);
    let id = said.out.trim().strip_prefix("started ").expect("a run id").to_owned();
    let path = format!("/api/v1/runs/{}", id.replace('#', "%23"));
    agent.wait_for("the run to start", || {
        let (_, run) = agent.api(Method::GET, &path, None);
        (run["output"] == "begun\n").then_some(())
    });
    let said = agent.cli(&["kill", &id]);
    assert_eq!(said.code, 0, "{said:?}");
    assert!(said.out.starts_with(&format!("{id}: killed")), "{said:?}");
    let said = agent.cli(&["kill", &id]);
    assert_eq!((said.code, said.out.as_str()), (2, ""), "{said:?}");
    assert_eq!(said.err, format!("cronfleet: run \"{id}\" is not running (it ended: killed)\n"));
}

#[test]
fn apply_says_what_it_did_in_one_summary() {
    let agent = Agent::start("apply", TASKS);
    let file = agent.dir.join("new.toml");
    let apply = |text: &str| {
        std::fs::write(&file, text).unwrap();
        let said = agent.cli(&["apply", file.to_str().unwrap()]);
        assert_eq!(said.code, 0, "{said:?}");
        said.out
    };
    // Changes on this node and a task for other nodes: one line says both.
    let elsewhere = "\n[[task]]\nname = \"elsewhere\"\nschedule = \"@daily\"\ncommand = \"true\"\nhosts = [\"other-*\"]\n";
    let extra = "\n[[task]]\nname = \"extra\"\nschedule = \"@daily\"\ncommand = \"true\"\n";
    let changed = TASKS.replace("command = \"true\"", "command = \"true --changed\"");
    let out = apply(&format!("{changed}{elsewhere}{extra}"));
    assert_eq!(
        out,
        "+ elsewhere  (added)\n\
         + extra  (added)\n\
         ~ quick  (changed)\n    command: \"true\" -> \"true --changed\"\n\
         applied: 2 added, 1 changed, 0 removed, 1 unchanged; on this node: 1 added, 1 changed \
         (tasks of other nodes and disabled tasks do not run here)\n"
    );
    // Only the other nodes' task changes.
    let out = apply(&format!("{changed}{}{extra}", elsewhere.replace("@daily", "@hourly")));
    assert!(
        out.ends_with(
            "applied: 0 added, 1 changed, 0 removed, 3 unchanged; nothing changes on this node \
             (tasks of other nodes and disabled tasks do not run here)\n"
        ),
        "{out}"
    );
    // Everything on this node: the file's counts alone.
    let out = apply(&format!("{changed}{}", elsewhere.replace("@daily", "@hourly")));
    assert_eq!(out, "- extra  (removed)\napplied: 0 added, 0 changed, 1 removed, 3 unchanged\n");
    let out = apply(&format!("{changed}{}", elsewhere.replace("@daily", "@hourly")));
    assert_eq!(out, "applied: no changes (3 tasks unchanged)\n");
}

#[test]
fn killing_a_slot_that_never_ran_says_so() {
    let agent = Agent::start(
        "skipped",
        "[[task]]\nname = \"busy\"\nschedule = \"* * * * * *\"\ncommand = \"sleep 3\"\nconcurrency = \"forbid\"\n",
    );
    let skipped = agent.wait_for("a skipped slot", || {
        let (_, page) = agent.api(Method::GET, "/api/v1/runs?task=busy&outcome=skipped", None);
        page["runs"][0]["id"].as_str().map(str::to_owned)
    });
    let said = agent.cli(&["kill", &skipped]);
    assert_eq!((said.code, said.out.as_str()), (2, ""), "{said:?}");
    assert_eq!(
        said.err,
        format!("cronfleet: run \"{skipped}\" is not running (it never ran: skipped)\n")
    );
}
