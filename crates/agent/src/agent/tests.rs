//! Unit tests of the agent: a reload under a due slot, node status, the reload's difference.

use std::path::Path;

use super::running::diff;
use super::*;

fn tasks(text: &str) -> Vec<Task> {
    config::parse(Path::new("t.toml"), text).unwrap().tasks
}

const V1: &str = "[[task]]\nname = \"same\"\nschedule = \"@daily\"\ncommand = \"true\"\n\n\
                  [[task]]\nname = \"edited\"\nschedule = \"@daily\"\ncommand = \"v1\"\n\n\
                  [[task]]\nname = \"dropped\"\nschedule = \"@daily\"\ncommand = \"true\"\n";

/// A reload that lands when a changed task's slot is due, before the timer has fired it:
/// the new entry continues from the old one's last slot, so the due slot runs, once.
#[tokio::test(flavor = "current_thread")]
async fn a_slot_due_during_a_reload_is_not_lost() {
    use cronfleet_scheduler::{Event, TokioClock};
    let dir = std::env::temp_dir().join(format!("cronfleet-reload-race-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = Store::open(&dir).await.unwrap();
    // Virtual time from here on (the runs' records may fail to be written: not looked at).
    tokio::time::pause();
    let start: jiff::Zoned = "2026-01-01T00:00:00+00:00[UTC]".parse().unwrap();
    let scheduler = Scheduler::builder()
        .time_zone(TimeZone::UTC)
        .clock(TokioClock::starting_at(start.timestamp()))
        .build();
    let mut events = scheduler.subscribe();
    let mut running = Running {
        scheduler: scheduler.clone(),
        services: Arc::new(Services::new(store, "n1")),
        file: Vec::new(),
        notifiers: Vec::new(),
        api: BTreeMap::new(),
        tasks: HashMap::new(),
        daemons: HashMap::new(),
        paused: HashMap::new(),
    };
    let host = Host { name: "n1".into(), addresses: Vec::new(), tags: Vec::new() };
    let v1 = "[[task]]\nname = \"t\"\nschedule = \"*/10 * * * * *\"\ncommand = \"true\"\n";
    running.file = tasks(v1);
    running.apply(&host).await;
    scheduler.start();
    tokio::time::sleep(std::time::Duration::from_millis(10_500)).await; // the 00:10 slot fires
                                                                        // 00:20 comes due; before the timer task gets to run, the task is changed.
    tokio::time::advance(std::time::Duration::from_millis(9_500)).await;
    running.file = tasks(&v1.replace("true", "echo changed"));
    running.apply(&host).await;
    let id = running.tasks["t"].1;
    assert_eq!(scheduler.entry(id).unwrap().next.unwrap().time().second(), 20);
    tokio::time::sleep(std::time::Duration::from_secs(15)).await;
    let mut slots = Vec::new();
    while let Ok(event) = events.try_recv() {
        if let Event::Started { slot, .. } = event {
            slots.push(slot.time().second());
        }
    }
    assert_eq!(slots, [10, 20, 30], "each slot once, none lost");
    scheduler.shutdown(std::time::Duration::from_secs(1)).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn nodes_are_alive_stopped_or_lost() {
    let now: Timestamp = "2026-11-23T10:00:20Z".parse().unwrap();
    let node = |last_seen: &str, stopped: Option<&str>| crate::store::NodeRecord {
        name: "n".into(),
        addresses: Vec::new(),
        tags: Vec::new(),
        version: "0".into(),
        api: None,
        started_at: "2026-11-23T09:00:00Z".into(),
        last_seen: last_seen.into(),
        stopped_at: stopped.map(Into::into),
    };
    assert_eq!(node_status(&node("2026-11-23T10:00:10Z", None), now).as_str(), "alive");
    assert_eq!(node_status(&node("2026-11-23T10:00:04Z", None), now).as_str(), "lost");
    let stopped = node("2026-11-23T10:00:19Z", Some("2026-11-23T10:00:19Z"));
    assert_eq!(node_status(&stopped, now).as_str(), "stopped");
}

#[test]
fn diff_by_name_and_definition() {
    let running: HashMap<String, (Task, ())> =
        tasks(V1).into_iter().map(|t| (t.name.clone(), (t, ()))).collect();
    // `same` moved down a line (its position does not count), `edited` changed, `dropped`
    // removed, `new` added.
    let v2 = "\n[[task]]\nname = \"edited\"\nschedule = \"@daily\"\ncommand = \"v2\"\n\n\
              [[task]]\nname = \"same\"\nschedule = \"@daily\"\ncommand = \"true\"\n\n\
              [[task]]\nname = \"new\"\nschedule = \"@hourly\"\ncommand = \"true\"\n";
    let d = diff(&running, tasks(v2));
    assert_eq!((d.added, d.changed, d.removed), (1, 1, 1));
    let mut stale = d.stale.clone();
    stale.sort();
    assert_eq!(stale, ["dropped", "edited"]);
    let fresh: Vec<&str> = d.fresh.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(fresh, ["edited", "new"]);
    // Nothing changed: nothing to do.
    let d = diff(&running, tasks(V1));
    assert!(d.stale.is_empty() && d.fresh.is_empty());
}
