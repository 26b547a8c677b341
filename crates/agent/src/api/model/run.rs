//! Runs: a run's record, pages of them, and the answers of the routes that start and stop
//! one.

use serde::{Deserialize, Serialize};

use crate::store::{Outcome, RunRecord};

/// A run, without its output except in `GET /api/v1/runs/{id}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct Run {
    /// 1 for the first attempt of a slot.
    pub attempt: u32,
    /// CPU time, user and system.
    pub cpu_ms: Option<i64>,
    /// Wall time.
    pub duration_ms: Option<i64>,
    /// When it ended (none while it runs, or for a slot not run).
    #[cfg_attr(test, schemars(extend("format" = "date-time")))]
    pub ended_at: Option<String>,
    /// The exit code, when it exited.
    pub exit_code: Option<i32>,
    /// `TASK@SLOT#ATTEMPT` (with `@NODE` in a shared store).
    pub id: String,
    /// Peak resident memory, bytes.
    pub max_rss: Option<i64>,
    /// The node it ran on.
    pub node: String,
    /// How it ended.
    pub outcome: Outcome,
    /// Its output as text (invalid UTF-8 replaced): only in `GET /api/v1/runs/{id}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// Bytes of output beyond the task's `output_limit`, not kept.
    pub output_dropped: i64,
    /// Why a slot was not run, or why a run failed to start.
    pub reason: Option<String>,
    /// The signal that ended it.
    pub signal: Option<i32>,
    /// The slot, RFC 3339 with its offset.
    #[cfg_attr(test, schemars(extend("format" = "date-time")))]
    pub slot: String,
    /// When it started (none for a slot not run).
    #[cfg_attr(test, schemars(extend("format" = "date-time")))]
    pub started_at: Option<String>,
    /// The task.
    pub task: String,
}

impl Run {
    /// A run record, without its output.
    pub fn of(r: &RunRecord) -> Run {
        Run {
            attempt: r.attempt,
            cpu_ms: r.cpu_ms,
            duration_ms: r.duration_ms,
            ended_at: r.ended_at.clone(),
            exit_code: r.exit_code,
            id: r.id.clone(),
            max_rss: r.max_rss,
            node: r.node.clone(),
            outcome: r.outcome,
            output: None,
            output_dropped: r.output_dropped,
            reason: r.reason.clone(),
            signal: r.signal,
            slot: r.slot.clone(),
            started_at: (!r.started_at.is_empty()).then(|| r.started_at.clone()),
            task: r.task.clone(),
        }
    }

    /// `succeeded, exit code 0, 0.012s`.
    pub fn describe(&self) -> String {
        let mut text = self.outcome.as_str().replace('_', " ");
        if let Some(code) = self.exit_code {
            text.push_str(&format!(", exit code {code}"));
        }
        if let Some(ms) = self.duration_ms {
            text.push_str(&format!(", {:.3}s", ms as f64 / 1000.0));
        }
        text
    }
}

/// `GET /api/v1/runs`: a page of runs, newest first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct RunPage {
    /// Where the next page starts (`?cursor=`); none after the last page.
    pub next_cursor: Option<String>,
    /// The runs.
    pub runs: Vec<Run>,
}

/// `POST /api/v1/tasks/{name}/run` (202).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct RunStarted {
    /// The new run's id.
    pub run_id: String,
    /// The task.
    pub task: String,
}

/// `POST /api/v1/runs/{id}/kill` (202).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct Killing {
    /// Always true: the run is being stopped.
    pub killing: bool,
    /// The run.
    pub run_id: String,
}
