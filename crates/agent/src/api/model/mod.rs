//! The API's JSON, as types: every request and response body of `/api/v1`, built and sent by
//! the server, read back by the CLI. One module per concept: `task` (tasks, their definitions
//! and the bodies that change them), `run` (runs and acting on them), `plan` (plan, apply,
//! reload), `node` (this node and the fleet), `error` (every error's body).
//!
//! # Key order
//!
//! The API has always sent each object's keys in alphabetical order (it built them as
//! `serde_json` maps, which keep their keys sorted), and clients may have come to rely on the
//! exact text: the golden test (`tests/api/golden.rs`) pins it. So the fields of every type
//! here are declared in alphabetical order, which is the order serde writes them in. The two
//! types that merge a task's definition with more fields ([`Task`], [`TaskDetail`]) cannot
//! interleave a flattened struct's fields with their own: they are written through a
//! [`serde_json::Value`], whose objects sort their keys.

mod error;
mod node;
mod plan;
mod run;
mod task;

use serde::{
    de::{DeserializeOwned, IntoDeserializer},
    ser::Error as _,
    Serialize, Serializer,
};
use serde_json::Value;

pub use self::{
    error::{ErrorBody, ErrorDetails, ErrorInfo, FieldProblem, FileProblem},
    node::{Machine, Node, NodeInfo, NodeList, Stopping, TaskFileState},
    plan::{Changed, Counts, FieldChange, Plan, Removed, Warning},
    run::{Killing, Run, RunPage, RunStarted},
    task::{
        zoned, Daemon, DaemonStateName, Missed, PauseRequest, ResumeRequest, Revision, Task,
        TaskDetail, TaskFields, TaskList,
    },
};
pub use crate::config::definition::{Definition, HttpFields, KindFields, ProgramFields};
pub use crate::store::{NodeStatus, Outcome};

/// An enum's value from its serde name (`"timed_out"`), so that the names are written once,
/// in the enum's serde attributes.
pub fn from_name<T: DeserializeOwned>(name: &str) -> Option<T> {
    let de: serde::de::value::StrDeserializer<'_, serde::de::value::Error> =
        name.into_deserializer();
    T::deserialize(de).ok()
}

/// An enum value's serde name (`"timed_out"`); empty for a value that is not a name.
pub fn name_of<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(Value::String(name)) => name,
        _ => String::new(),
    }
}

/// Serializes `value` through a [`Value`], so that its object's keys come out sorted.
fn sorted<T: Serialize, S: Serializer>(value: &T, serializer: S) -> Result<S::Ok, S::Error> {
    serde_json::to_value(value).map_err(S::Error::custom)?.serialize(serializer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Outcome;

    /// What the CLI reads it writes back the same, byte for byte (`task show`, `--json`).
    fn round_trip<T: Serialize + DeserializeOwned>(json: &str) {
        let value: T = serde_json::from_str(json).unwrap();
        assert_eq!(serde_json::to_string(&value).unwrap(), json);
    }

    #[test]
    fn bodies_read_back_as_sent() {
        let run = r#"{"attempt":1,"cpu_ms":3,"duration_ms":12,"ended_at":"2026-12-07T20:38:08.437Z","exit_code":null,"id":"slow@1796675865.860#1","max_rss":4096,"node":"n","outcome":"timed_out","output_dropped":0,"reason":null,"signal":15,"slot":"2026-12-07T20:38:08+00:00","started_at":"2026-12-07T20:38:08.400Z","task":"slow"}"#;
        round_trip::<Run>(run);
        round_trip::<Run>(
            &run.replace(r#""outcome":"timed_out","#, r#""outcome":"lost","output":"x\n","#),
        );
        let detail = format!(
            r#"{{"anchor":"2010-01-01T00:00:00+00:00","argv":["echo","dyn"],"catch_up":"skip","concurrency":"forbid","created_at":"2026-12-07T20:38:08Z","daemon":null,"description":"every 1000 hours","enabled":false,"env":{{"K":"v","S":"(secret)"}},"hosts":[],"kind":"cron","labels":{{"rule":"42"}},"last_run":{run},"max_running":1,"name":"dyn","next_run":null,"next_runs":["2027-01-01T00:00:00+00:00"],"origin":"api","output_limit":262144,"paused":true,"paused_until":null,"retries":0,"retry_backoff":"10s","retry_on":["failed","timed_out"],"revision":3,"running":0,"runs":[{run}],"runs_here":false,"schedule":"@every 1000h","secret_env":["S"],"tags":[],"timeout":"1m","timezone":"UTC","updated_at":"2026-12-07T20:38:09Z","user":null,"workdir":null}}"#
        );
        round_trip::<TaskDetail>(&detail);
        let daemon = r#"{"tasks":[{"catch_up":"all","concurrency":"replace","daemon":null,"enabled":true,"env":{},"hosts":["web-*"],"http":{"body":null,"expect_status":[],"headers":{"A":"b"},"method":"GET","url":"http://h/"},"kind":"daemon","labels":{},"last_run":null,"max_running":1,"name":"d","next_run":null,"origin":"file","output_limit":1,"paused":false,"paused_until":null,"retries":0,"retry_backoff":"10s","retry_on":["failed","timed_out"],"running":1,"runs_here":true,"secret_env":[],"tags":[],"timeout":null,"user":"u","workdir":"/"}]}"#;
        round_trip::<TaskList>(daemon);
        round_trip::<Plan>(
            r#"{"added":["a"],"applied":{"added":1,"changed":0,"removed":0},"changed":[{"fields":[{"field":"retries","new":2,"old":0}],"name":"b","running":1}],"removed":[{"name":"c","running":0}],"unchanged":[]}"#,
        );
        round_trip::<Plan>(
            r#"{"added":[],"changed":[],"removed":[{"name":"c","running":0}],"unchanged":[],"warnings":[{"code":"empty_task_file","message":"m"}]}"#,
        );
        round_trip::<NodeList>(
            r#"{"nodes":[{"addresses":["10.0.0.1"],"api":null,"last_seen":"t","name":"n","started_at":"t","status":"lost","stopped_at":null,"tags":["gpu"],"version":"0.1.0"}]}"#,
        );
        for error in [
            r#"{"error":{"code":"not_found","message":"no run \"x\""}}"#,
            r#"{"error":{"code":"revision_conflict","details":{"revision":4},"message":"m"}}"#,
            r#"{"error":{"code":"invalid_task","details":[{"field":null,"message":"m"}],"message":"m"}}"#,
            r#"{"error":{"code":"invalid_task_file","details":[{"column":1,"field":"f","file":"t.toml","line":2,"message":"m","task":null}],"message":"m"}}"#,
        ] {
            round_trip::<ErrorBody>(error);
        }
    }

    #[test]
    fn enum_names() {
        assert_eq!(from_name::<NodeStatus>("alive"), Some(NodeStatus::Alive));
        assert_eq!(from_name::<NodeStatus>("gone"), None);
        assert_eq!(name_of(&NodeStatus::Stopped), "stopped");
        assert_eq!(from_name::<Missed>("once"), Some(Missed::Once));
        for outcome in [Outcome::TimedOut, Outcome::Abandoned, Outcome::Succeeded] {
            assert_eq!(name_of(&outcome), outcome.as_str());
        }
    }
}
