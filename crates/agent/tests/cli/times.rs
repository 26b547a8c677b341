//! Times on a real agent: one zone per view, always named; anchors to the second.
//!
//! `runs`, `status`, `task ls` and `nodes` show every time in one zone, named in the column's
//! header (the local zone by default, `--tz ZONE`, `--utc`), to the second, newest run first;
//! through the API and from the state directory alike. An `@every` task created through the
//! API is anchored to the second, and an anchor with nanoseconds (as agents made them before)
//! no longer breaks the columns.

use jiff::{RoundMode, Timestamp, TimestampRound, Unit};
use reqwest::Method;
use serde_json::Value;

use crate::agent::{Agent, Said};

/// Tasks in three zones: `tick-*` every second (their slots are written with three offsets),
/// the others daily.
const TASKS: &str = r#"
[[task]]
name = "berlin"
schedule = "0 9 * * *"
timezone = "Europe/Berlin"
command = "true"

[[task]]
name = "new-york"
schedule = "0 9 * * *"
timezone = "America/New_York"
command = "true"

[[task]]
name = "tokyo"
schedule = "0 9 * * *"
timezone = "Asia/Tokyo"
command = "true"

[[task]]
name = "tick-berlin"
schedule = "* * * * * *"
timezone = "Europe/Berlin"
command = "true"

[[task]]
name = "tick-new-york"
schedule = "* * * * * *"
timezone = "America/New_York"
command = "true"

[[task]]
name = "tick-tokyo"
schedule = "* * * * * *"
timezone = "Asia/Tokyo"
command = "true"
"#;

const TICKS: [&str; 3] = ["tick-berlin", "tick-new-york", "tick-tokyo"];

fn ok(said: &Said) -> Vec<&str> {
    assert_eq!(said.code, 0, "{said:?}");
    said.out.lines().collect()
}

/// An instant to the second, as a view shows it.
fn to_the_second(text: &str) -> Timestamp {
    let ts: Timestamp = text.parse().unwrap_or_else(|e| panic!("{text:?}: {e}"));
    ts.round(TimestampRound::new().smallest(Unit::Second).mode(RoundMode::Floor)).unwrap()
}

/// The column of `heading` in a table: each row's value there (up to the next two spaces).
fn column(lines: &[&str], heading: &str) -> Vec<String> {
    let at = lines[0].find(heading).unwrap_or_else(|| panic!("no {heading:?} in {lines:?}"));
    lines[1..].iter().map(|l| l[at..].split("  ").next().unwrap().trim().to_owned()).collect()
}

/// The rows of a table (from its header line on).
fn table<'a>(lines: &[&'a str]) -> Vec<&'a str> {
    lines.iter().skip_while(|l| !l.starts_with("TASK")).copied().collect()
}

/// Every slot `runs` printed is in the zone the header names (with the offset `offset`: a
/// zone without DST), to the second, and is the slot the API recorded; newest first.
fn runs_are_shown_in(lines: &[&str], heading: &str, offset: &str, api: &[Value]) {
    assert!(lines[0].starts_with(heading), "{lines:?}");
    let ids = column(lines, "RUN ID");
    let slots = column(lines, heading);
    assert_eq!(ids.len(), api.len(), "{lines:?}");
    let mut previous: Option<Timestamp> = None;
    for (id, slot) in ids.iter().zip(&slots) {
        assert!(slot.ends_with(offset) && !slot.contains('.'), "{slot} in {lines:?}");
        let run = api.iter().find(|r| r["id"] == **id).unwrap();
        let shown: Timestamp = slot.parse().unwrap();
        assert_eq!(shown, to_the_second(run["slot"].as_str().unwrap()), "{id}");
        assert!(previous.is_none_or(|p| p >= shown), "not newest first: {lines:?}");
        previous = Some(shown);
    }
}

#[test]
fn one_zone_per_view_named_in_the_header() {
    let mut agent = Agent::start("zones", TASKS);
    // Two runs of each ticking task, then they are paused: the history holds still.
    for task in TICKS {
        agent.wait_for(&format!("two runs of {task}"), || {
            let (_, page) = agent.api(
                Method::GET,
                &format!("/api/v1/runs?task={task}&outcome=succeeded"),
                None,
            );
            (page["runs"].as_array().unwrap().len() >= 2).then_some(())
        });
    }
    for task in TICKS {
        assert_eq!(agent.cli(&["pause", task]).code, 0);
    }
    let api: Vec<Value> = agent.wait_for("the runs in flight to end", || {
        let (_, page) = agent.api(Method::GET, "/api/v1/runs?limit=1000", None);
        let runs = page["runs"].as_array().unwrap().clone();
        runs.iter().all(|r| r["outcome"] != "running").then_some(runs)
    });
    // What the issue saw: one table, three offsets.
    let offsets: std::collections::BTreeSet<String> =
        api.iter().map(|r| r["slot"].as_str().unwrap().chars().rev().take(6).collect()).collect();
    assert_eq!(offsets.len(), 3, "{api:?}");
    let (_, tasks) = agent.api(Method::GET, "/api/v1/tasks", None);
    let n = "1000";

    for through in ["the API", "the state directory"] {
        if through == "the state directory" {
            agent.stop();
        }
        // The local zone by default, named.
        let said = agent.cli_in(Some("Asia/Kolkata"), &["runs", "-n", n]);
        runs_are_shown_in(&ok(&said), "SLOT (Asia/Kolkata)", "+05:30", &api);
        // --utc and --tz.
        let said = agent.cli_in(Some("Asia/Kolkata"), &["runs", "-n", n, "--utc"]);
        runs_are_shown_in(&ok(&said), "SLOT (UTC)", "+00:00", &api);
        let said = agent.cli_in(Some("UTC"), &["runs", "-n", n, "--tz", "Asia/Kathmandu"]);
        runs_are_shown_in(&ok(&said), "SLOT (Asia/Kathmandu)", "+05:45", &api);
        // One task's runs too.
        let said = agent.cli_in(None, &["runs", "--task", "tick-tokyo", "--tz", "America/Bogota"]);
        let lines = ok(&said);
        assert!(lines[0].starts_with("SLOT (America/Bogota)"), "{lines:?}");
        let slots = column(&lines, "SLOT (America/Bogota)");
        assert!(slots.len() >= 2 && slots.iter().all(|s| s.ends_with("-05:00")), "{lines:?}");
        // --json is the API's (each slot in its task's zone), newest first.
        let said = agent.cli_in(Some("Asia/Kolkata"), &["runs", "-n", n, "--json", "--utc"]);
        let json: Vec<Value> = serde_json::from_str(&said.out).unwrap();
        assert_eq!(json.len(), api.len(), "{said:?}");
        let slots: Vec<Timestamp> =
            json.iter().map(|r| r["slot"].as_str().unwrap().parse().unwrap()).collect();
        assert!(slots.windows(2).all(|w| w[0] >= w[1]), "{said:?}");
        assert!(json.iter().any(|r| r["slot"].as_str().unwrap().ends_with("+09:00")));

        // status: NEXT in one zone, named; the same instants as the API's.
        let said = agent.cli_in(Some("Asia/Kolkata"), &["status", "--tz", "Asia/Tokyo"]);
        let lines = ok(&said);
        let rows = table(&lines);
        assert!(rows[0].contains("  NEXT (Asia/Tokyo)  "), "{lines:?}");
        let names = column(&rows, "TASK");
        let nexts = column(&rows, "NEXT (Asia/Tokyo)");
        assert_eq!(names.len(), 6, "{lines:?}");
        for (name, next) in names.iter().zip(&nexts) {
            if name.starts_with("tick-") && through == "the API" {
                assert_eq!(next, "paused");
                continue;
            }
            assert!(next.ends_with("+09:00") && !next.contains('.'), "{next}");
            if !name.starts_with("tick-") {
                let task = tasks["tasks"].as_array().unwrap().iter();
                let task = task.clone().find(|t| t["name"] == **name).unwrap();
                let api_next = to_the_second(task["next_run"].as_str().unwrap());
                assert_eq!(next.parse::<Timestamp>().unwrap(), api_next, "{name}");
            }
        }
        if through == "the API" {
            // The agent's start is in the view's zone too.
            let since = lines[0].split("since ").nth(1).unwrap().split(',').next().unwrap();
            assert!(since.ends_with("+09:00") && !since.contains('.'), "{}", lines[0]);
            let said = agent.cli_in(Some("UTC"), &["status"]);
            assert!(ok(&said).iter().any(|l| l.contains("  NEXT (UTC)  ")), "{said:?}");
            // task ls and nodes.
            let said = agent.cli_in(Some("Asia/Kolkata"), &["task", "ls"]);
            let lines = ok(&said);
            let nexts = column(&lines, "NEXT (Asia/Kolkata)");
            assert!(nexts.iter().all(|n| n == "paused" || n.ends_with("+05:30")), "{lines:?}");
            let said = agent.cli_in(None, &["nodes", "--utc"]);
            let lines = ok(&said);
            assert!(column(&lines, "LAST SEEN (UTC)").iter().all(|n| n.ends_with("+00:00")));
        }
        // A zone nobody knows, or two of them: refused.
        let said = agent.cli_in(None, &["runs", "--tz", "Europe/Berln"]);
        assert_eq!(said.code, 2, "{said:?}");
        let refusal = "cronfleet: --tz: unknown time zone \"Europe/Berln\"";
        assert!(said.err.starts_with(refusal), "{said:?}");
        let said = agent.cli_in(None, &["status", "--tz", "UTC", "--utc"]);
        assert_eq!(said.code, 2, "{said:?}");
    }
}

/// Where the SCHEDULE column starts in the header and in each row (`describe`: each row's
/// schedule in words).
fn aligned(lines: &[&str], describe: &[&str]) {
    let at = lines[0].find("SCHEDULE").unwrap();
    for (line, words) in lines[1..].iter().zip(describe) {
        assert_eq!(line.find(words), Some(at), "misaligned:\n{}", lines.join("\n"));
    }
}

#[test]
fn api_intervals_are_anchored_to_the_second() {
    let agent = Agent::start("anchors", "");
    let said =
        agent.cli(&["task", "create", "rule", "--schedule", "@every 1h", "--command", "true"]);
    assert_eq!(said.code, 0, "{said:?}");
    let (_, rule) = agent.api(Method::GET, "/api/v1/tasks/rule", None);
    let anchor: Timestamp = rule["anchor"].as_str().unwrap().parse().unwrap();
    let created: Timestamp = rule["created_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(anchor.subsec_nanosecond(), 0, "{rule}");
    assert_eq!(anchor, created, "{rule}");
    assert!(!rule["next_run"].as_str().unwrap().contains('.'), "{rule}");
    assert!(said.out.contains(&format!("next {}", rule["next_run"].as_str().unwrap())), "{said:?}");
    // A change keeps it.
    let said = agent.cli(&["task", "edit", "rule", "--schedule", "@every 2h"]);
    assert_eq!(said.code, 0, "{said:?}");
    let (_, rule) = agent.api(Method::GET, "/api/v1/tasks/rule", None);
    assert_eq!(rule["anchor"].as_str().unwrap().parse::<Timestamp>().unwrap(), anchor);
    assert_eq!(
        rule["updated_at"].as_str().unwrap().parse::<Timestamp>().unwrap().subsec_nanosecond(),
        0
    );

    // An anchor with nanoseconds, as agents made them before: shown to the second, in line.
    let said = agent.cli(&[
        "task",
        "create",
        "legacy",
        "--schedule",
        "@every 1h",
        "--anchor",
        "2026-01-01T00:00:00.123456789Z",
        "--command",
        "true",
    ]);
    assert_eq!(said.code, 0, "{said:?}");
    let (_, legacy) = agent.api(Method::GET, "/api/v1/tasks/legacy", None);
    let next = legacy["next_run"].as_str().unwrap();
    assert!(next.contains(".123456789"), "{legacy}");
    let (_, tasks) = agent.api(Method::GET, "/api/v1/tasks", None);
    let describe: Vec<&str> = tasks["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["description"].as_str().unwrap())
        .collect();
    for args in [&["task", "ls", "--utc"][..], &["status", "--utc"][..]] {
        let said = agent.cli(args);
        let lines = ok(&said);
        let table: Vec<&str> =
            lines.iter().skip_while(|l| !l.starts_with("TASK")).copied().collect();
        let nexts = column(&table, "NEXT (UTC)");
        assert_eq!(nexts.len(), 2, "{args:?}: {table:?}");
        for next in &nexts {
            assert!(!next.contains('.') && next.ends_with("+00:00"), "{args:?}: {next}");
        }
        assert!(nexts.contains(&timestamp_utc(&to_the_second(next))), "{args:?}: {nexts:?}");
        aligned(&table, &describe);
    }
}

fn timestamp_utc(ts: &Timestamp) -> String {
    let z = ts.to_zoned(jiff::tz::TimeZone::UTC);
    z.timestamp().display_with_offset(z.offset()).to_string()
}
