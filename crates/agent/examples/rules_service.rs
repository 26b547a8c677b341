//! A backend service that keeps business rules in its own table ("stop this ad if it spent
//! under 1,000 in two days; check every 7 days") and has each rule checked on its own cadence,
//! counted from when the rule was created. Two ways:
//!
//! 1. Through a cronfleet agent's API: the service reconciles its rules table into API tasks
//!    (create what is new, patch what changed with `If-Match`, pause what is inactive, delete
//!    what is gone), each an `http` task that calls the service back:
//!
//!    ```console
//!    $ cargo run -p cronfleet --example rules_service -- --server http://127.0.0.1:7070 \
//!          --token-file STATE_DIR/api-token
//!    ```
//!
//! 2. In-process with `cronfleet-scheduler`, the same reconciliation against a `Scheduler`:
//!
//!    ```console
//!    $ cargo run -p cronfleet --example rules_service
//!    ```
//!
//! Either way, re-running the sync with an unchanged table changes nothing, and a rule's
//! cadence never restarts from "now".

use std::{collections::HashMap, time::Duration};

use cronfleet_scheduler::{EntryId, RunContext, Scheduler, Timing};
use serde_json::{json, Value};

/// A row of the service's rules table.
#[derive(Clone, Debug)]
struct Rule {
    id: u32,
    /// `7d`, `3d`, ...
    every: &'static str,
    /// When the rule was created: its cadence counts from here.
    created_at: &'static str,
    active: bool,
}

fn table() -> Vec<Rule> {
    vec![
        Rule { id: 41, every: "7d", created_at: "2026-05-01T10:00:00+08:00", active: true },
        Rule { id: 42, every: "3d", created_at: "2026-05-03T09:30:00+08:00", active: true },
        Rule { id: 43, every: "1d", created_at: "2026-05-04T00:00:00+08:00", active: false },
    ]
}

/// The task a rule wants: an http task calling the service back, labelled with the rule.
fn desired(rule: &Rule, callback: &str) -> Value {
    json!({
        "schedule": format!("@every {}", rule.every),
        "anchor": rule.created_at,
        // Days are counted in the service's zone (the check stays at the same wall-clock time
        // across DST changes).
        "timezone": "Asia/Shanghai",
        "http": {
            "url": format!("{callback}/rules/{}/check", rule.id),
            "method": "POST",
            "headers": {"Content-Type": "application/json"},
            "body": "{\"slot\": \"{{scheduled_at}}\", \"run\": \"{{run_id}}\"}",
        },
        "timeout": "1m",
        "labels": {"service": "ads-rules", "rule": rule.id.to_string()},
    })
}

/// The agent's API.
struct Api {
    base: String,
    token: String,
    http: reqwest::blocking::Client,
}

impl Api {
    fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        rev: Option<i64>,
    ) -> Result<Value, String> {
        let mut r =
            self.http.request(method, format!("{}{path}", self.base)).bearer_auth(&self.token);
        if let Some(body) = body {
            r = r.json(body);
        }
        if let Some(rev) = rev {
            r = r.header("if-match", format!("\"{rev}\""));
        }
        let r = r.send().map_err(|e| e.to_string())?;
        let status = r.status();
        let body: Value = r.json().unwrap_or(Value::Null);
        if status.is_success() {
            Ok(body)
        } else {
            Err(format!("{status}: {}", body["error"]["message"]))
        }
    }
}

/// Reconciles the rules table into the agent's API tasks labelled `service=ads-rules`.
fn sync_api(api: &Api, rules: &[Rule], callback: &str) -> Result<(), String> {
    use reqwest::Method;
    let existing =
        api.call(Method::GET, "/api/v1/tasks?origin=api&label=service=ads-rules", None, None)?;
    let mut existing: HashMap<String, Value> = existing["tasks"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| (t["name"].as_str().unwrap_or_default().to_owned(), t.clone()))
        .collect();
    for rule in rules {
        let name = format!("ads-rule-{}", rule.id);
        let want = desired(rule, callback);
        let paused = match existing.remove(&name) {
            None => {
                let mut body = want.clone();
                body["name"] = json!(name);
                api.call(Method::POST, "/api/v1/tasks", Some(&body), None)?;
                println!("created {name} (every {} from {})", rule.every, rule.created_at);
                false
            }
            Some(task) => {
                let same = task["schedule"] == want["schedule"]
                    && task["http"]["url"] == want["http"]["url"]
                    && task["anchor"].as_str().and_then(|a| a.parse::<jiff::Timestamp>().ok())
                        == rule.created_at.parse::<jiff::Timestamp>().ok();
                if !same {
                    // If-Match: a concurrent change elsewhere makes this fail, not get lost.
                    let rev = task["revision"].as_i64();
                    api.call(Method::PATCH, &format!("/api/v1/tasks/{name}"), Some(&want), rev)?;
                    println!("updated {name}");
                }
                if task["paused"] == true && rule.active {
                    api.call(Method::POST, &format!("/api/v1/tasks/{name}/resume"), None, None)?;
                    println!("resumed {name}");
                }
                task["paused"] == true
            }
        };
        if !rule.active && !paused {
            api.call(Method::POST, &format!("/api/v1/tasks/{name}/pause"), None, None)?;
            println!("paused {name} (inactive)");
        }
    }
    for (name, task) in existing {
        api.call(
            Method::DELETE,
            &format!("/api/v1/tasks/{name}"),
            None,
            task["revision"].as_i64(),
        )?;
        println!("deleted {name} (no such rule any more)");
    }
    Ok(())
}

/// The same reconciliation in-process: one scheduler entry per rule.
struct InProcess {
    scheduler: Scheduler,
    entries: HashMap<u32, (EntryId, String)>,
}

impl InProcess {
    fn sync(&mut self, rules: &[Rule]) {
        let mut gone: Vec<u32> = self.entries.keys().copied().collect();
        for rule in rules {
            gone.retain(|id| *id != rule.id);
            let created: jiff::Zoned = rule
                .created_at
                .parse::<jiff::Timestamp>()
                .expect("an instant")
                .to_zoned(jiff::tz::TimeZone::UTC);
            let timing = Timing::parse(&format!("@every {}", rule.every))
                .and_then(|t| t.anchored(created))
                .expect("an interval");
            let id = match self.entries.get(&rule.id) {
                Some((id, every)) if every == rule.every => *id,
                Some((id, _)) => {
                    let _ = self.scheduler.set_timing(*id, timing);
                    *id
                }
                None => {
                    let rule_id = rule.id;
                    self.scheduler.add(timing, move |ctx: RunContext| async move {
                        println!("check rule {rule_id} for slot {}", ctx.slot);
                    })
                }
            };
            self.entries.insert(rule.id, (id, rule.every.to_owned()));
            let _ = if rule.active { self.scheduler.resume(id) } else { self.scheduler.pause(id) };
        }
        for id in gone {
            if let Some((entry, _)) = self.entries.remove(&id) {
                let _ = self.scheduler.remove(entry);
            }
        }
    }
}

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    let arg =
        |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    if let Some(server) = arg("--server") {
        let token_file = arg("--token-file").ok_or("--server needs --token-file")?;
        let token =
            std::fs::read_to_string(&token_file).map_err(|e| format!("{token_file}: {e}"))?;
        let callback = arg("--callback").unwrap_or_else(|| "http://127.0.0.1:8080".to_owned());
        let api = Api {
            base: server.trim_end_matches('/').to_owned(),
            token: token.trim().to_owned(),
            http: reqwest::blocking::Client::new(),
        };
        println!("first sync:");
        sync_api(&api, &table(), &callback)?;
        println!("second sync, table unchanged (nothing to do).");
        sync_api(&api, &table(), &callback)?;
        println!("rule 42 now every 2 days, rule 41 deleted:");
        let mut rules = table();
        rules.retain(|r| r.id != 41);
        rules[0].every = "2d";
        sync_api(&api, &rules, &callback)?;
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let scheduler = Scheduler::new();
        let mut service = InProcess { scheduler: scheduler.clone(), entries: HashMap::new() };
        service.sync(&table());
        scheduler.start();
        for entry in scheduler.entries() {
            let next = entry.next.map_or_else(|| "paused".to_owned(), |n| n.to_string());
            println!("  next {next}");
        }
        let mut rules = table();
        rules[1].every = "2d";
        service.sync(&rules);
        println!("after rule 42 changed to every 2 days:");
        for entry in scheduler.entries() {
            let next = entry.next.map_or_else(|| "paused".to_owned(), |n| n.to_string());
            println!("  next {next}");
        }
        scheduler.shutdown(Duration::from_secs(1)).await;
    });
    Ok(())
}
