//! A task becomes a scheduler entry: its policies as wrappers, its run as a child process.

use std::{collections::HashMap, sync::Arc, time::Duration};

use cronfleet_scheduler::{
    wrap, EntryOptions, JobError, LatePolicy, RunContext, SharedJob, Wrapper,
};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use super::{
    fleet::{claims::Claim, Member},
    Background,
};
use crate::{
    alerts::Alerts,
    children::Children,
    config::{CatchUp, Concurrency, RetryOn, Task},
    mask::Secrets,
    metrics::Metrics,
    runner::{self, Exit, Live, RunSpec},
    store::{self, Outcome, RunRecord, Store},
};

/// How long a run gets between SIGTERM and SIGKILL.
pub const KILL_GRACE: Duration = Duration::from_secs(10);

/// Whether a task's slots are claimed in a fleet: a `run_on` task in a shared store. Its runs
/// then take fleet-wide run leases.
pub fn in_fleet<'a>(task: &Task, services: &'a Services) -> Option<&'a Arc<Member>> {
    services.fleet.as_ref().filter(|_| task.run_on.is_some())
}

/// The entry options of a task: concurrency policy and retries as wrappers, catch-up as the
/// late policy.
///
/// A task whose slots are claimed in a fleet ([`in_fleet`]) gets the claim as its outermost
/// wrapper: a node applies its concurrency policy only to the slots it claimed (a busy node
/// does not queue, replace or skip for a slot that another node runs). With `forbid` or
/// `allow` it gets no local concurrency wrapper: the node that claims a slot takes a
/// fleet-wide run lease ([`max_running`](Task::max_running) of them, one for `forbid`) and
/// skips the slot, recording it, when it finds none.
pub fn options(task: &Task, services: &Arc<Services>) -> EntryOptions {
    let member = in_fleet(task, services);
    let fleet = member.is_some();
    let mut options = EntryOptions::new().name(task.name.clone());
    if let Some(member) = member {
        options = options.wrap(Arc::new(Claim::new(task, member)));
    }
    options = match task.concurrency {
        Concurrency::Forbid | Concurrency::Allow if fleet => options,
        Concurrency::Forbid => options.wrap(wrap::skip_if_running()),
        Concurrency::Queue => options.wrap(wrap::queue_up_to(task.max_running as usize)),
        Concurrency::Allow => options.wrap(wrap::max_concurrent(task.max_running as usize)),
        Concurrency::Replace => options.wrap(Arc::new(Replace)),
    };
    if task.retries > 0 {
        let backoff = Duration::try_from(task.retry_backoff).unwrap_or(Duration::from_secs(10));
        let on = task.retry_on;
        options = options.wrap(wrap::retry_if(task.retries, backoff, move |e| retried(on, e)));
    }
    // Missed slots while the agent was running but stalled; catch-up after downtime needs the
    // run history (not kept yet).
    options.on_late(match task.catch_up {
        CatchUp::Skip => LatePolicy::Skip,
        CatchUp::Once | CatchUp::All => LatePolicy::RunOnce,
    })
}

/// Whether a run that ended with `e` is retried (`retries`, `retry_elsewhere`), as the task's
/// `retry_on` says.
fn retried(on: RetryOn, e: &JobError) -> bool {
    match e {
        JobError::Failed(_) => on.failed,
        JobError::TimedOut => on.timed_out,
        _ => false,
    }
}

/// How a task's process is started, without the per-run environment.
pub fn spec(task: &Task) -> RunSpec {
    RunSpec {
        program: task.program.clone(),
        env: task.env.clone(),
        workdir: task.workdir.clone(),
        user: task.user.clone(),
        timeout: task.timeout.and_then(|t| Duration::try_from(t).ok()),
        kill_grace: KILL_GRACE,
        output_limit: task.output_limit,
        secrets: Secrets::new(secret_values(task)),
        children: None,
    }
}

/// The values of a task's `secret_env`, masked in its output with the notifiers' secrets.
pub fn secret_values(task: &Task) -> impl Iterator<Item = &str> {
    task.secret_env.iter().filter_map(|key| task.env.get(key)).map(String::as_str)
}

/// Adds the `CRONFLEET_*` variables of one run; returns its slot (RFC 3339) and run id.
pub fn identify(
    spec: &mut RunSpec,
    task: &str,
    node: &str,
    slot: &jiff::Zoned,
    attempt: u32,
    shared: bool,
) -> (String, String) {
    let slot_text = slot.timestamp().display_with_offset(slot.offset()).to_string();
    let run_id = store::run_id(task, slot, attempt, shared.then_some(node));
    for (k, v) in [
        ("CRONFLEET_TASK", task.to_owned()),
        ("CRONFLEET_SCHEDULED_AT", slot_text.clone()),
        ("CRONFLEET_RUN_ID", run_id.clone()),
        ("CRONFLEET_ATTEMPT", attempt.to_string()),
        ("CRONFLEET_NODE", node.to_owned()),
    ] {
        spec.env.insert(k.to_owned(), v);
    }
    (slot_text, run_id)
}

/// What every run needs from the agent: where to record it, where to count it, and where
/// others can find it while it runs.
#[derive(Debug)]
pub struct Services {
    /// The run history.
    pub store: Store,
    /// This agent as a member of its fleet: `Some` only when agents share a PostgreSQL store.
    pub fleet: Option<Arc<Member>>,
    /// This node's name.
    pub node: String,
    /// Counters for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// Alerts on the tasks' channels.
    pub alerts: Arc<Alerts>,
    /// Runs in flight, by run id.
    pub in_flight: std::sync::Mutex<HashMap<String, Arc<InFlight>>>,
    /// The agent's background loops.
    pub background: Background,
    /// Where the runs' processes are noted for crash recovery (`None`: not noted).
    pub children: Option<Arc<Children>>,
}

/// A run in flight.
#[derive(Debug)]
pub struct InFlight {
    /// Run id.
    pub id: String,
    /// Its task.
    pub task: String,
    /// Its slot, RFC 3339.
    pub slot: String,
    /// Its attempt.
    pub attempt: u32,
    /// When it started.
    pub started_at: jiff::Timestamp,
    /// Kills it.
    pub kill: CancellationToken,
    /// Its output so far.
    pub live: Arc<Live>,
}

impl Services {
    /// Services for `node` recording into `store`.
    pub fn new(store: Store, node: &str) -> Services {
        let metrics = Arc::new(Metrics::default());
        let background = Background::default();
        let fleet = store
            .fleet()
            .map(|db| Arc::new(Member::new(db, node, metrics.clone(), background.clone())));
        Services {
            fleet,
            store,
            node: node.to_owned(),
            alerts: Arc::new(Alerts::new(node, metrics.clone(), background.clone())),
            metrics,
            in_flight: std::sync::Mutex::default(),
            background,
            children: None,
        }
    }

    /// The runs in flight.
    pub fn running(&self) -> Vec<Arc<InFlight>> {
        let map = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        map.values().cloned().collect()
    }

    /// How many runs of each task are in flight.
    pub fn running_by_task(&self) -> HashMap<String, usize> {
        let map = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        let mut counts = HashMap::new();
        for run in map.values() {
            *counts.entry(run.task.clone()).or_default() += 1;
        }
        counts
    }

    /// A run in flight, by id.
    pub fn find(&self, id: &str) -> Option<Arc<InFlight>> {
        self.in_flight.lock().unwrap_or_else(|p| p.into_inner()).get(id).cloned()
    }

    fn track(&self, run: Option<Arc<InFlight>>, id: &str) {
        let mut map = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        match run {
            Some(run) => map.insert(id.to_owned(), run),
            None => map.remove(id),
        };
    }

    /// Runs one attempt of a task as a child process, from start to end: sets its
    /// `CRONFLEET_*` environment, records it when it starts and ends, makes it visible (and
    /// killable) while it runs, counts it, and logs how it ended. `scheduled` runs count
    /// towards launch lateness (a daemon's start does not).
    pub async fn execute(
        &self,
        task: &str,
        base: &RunSpec,
        slot: &jiff::Zoned,
        attempt: u32,
        cancel: CancellationToken,
        scheduled: bool,
    ) -> (RunRecord, Result<(), JobError>) {
        let mut spec = base.clone();
        spec.secrets = spec.secrets.with(self.alerts.secret_values());
        spec.children.clone_from(&self.children);
        let (slot_text, run_id) =
            identify(&mut spec, task, &self.node, slot, attempt, self.fleet.is_some());
        let mut record = started(&run_id, task, slot, attempt, &self.node);
        if let Err(e) = self.store.put(&record).await {
            tracing::error!(task, error = %e, "cannot record the run's start");
        }
        if scheduled {
            let late = crate::clock::now().duration_since(slot.timestamp());
            self.metrics.launched(late.as_secs_f64());
            self.alerts.started(&record, Duration::try_from(late).unwrap_or_default());
        }
        let too_long = self.alerts.too_long(task).map(|limit| {
            let alerts = self.alerts.clone();
            let record = record.clone();
            tokio::spawn(async move {
                tokio::time::sleep(limit).await;
                alerts.running_long(&record, limit);
            })
        });
        let run = Arc::new(InFlight {
            id: run_id.clone(),
            task: task.to_owned(),
            slot: slot_text.clone(),
            attempt,
            started_at: crate::clock::now(),
            kill: cancel.child_token(),
            live: Arc::default(),
        });
        self.track(Some(run.clone()), &run_id);
        let result = runner::run_live(&spec, run.kill.clone(), Some(run.live.clone())).await;
        finish(&mut record, &result);
        if let Err(e) = self.store.put(&record).await {
            tracing::error!(task, error = %e, "cannot record the run's end");
        }
        run.live.finish();
        self.track(None, &run_id);
        if let Some(watch) = too_long {
            watch.abort();
        }
        self.alerts.ended(&record);
        let ended = crate::clock::now().as_millisecond() as f64 / 1000.0;
        let seconds = record.duration_ms.map(|ms| ms as f64 / 1000.0);
        self.metrics.run_ended(task, record.outcome.as_str(), seconds, ended);
        let result = outcome(task, &slot_text, &run_id, result);
        (record, result)
    }
}

/// The job of a task: one child process per run (see [`Services::execute`]); for a `run_on`
/// task in a shared store, only on the nodes that claim the slot.
pub fn job(
    task: &Task,
    services: Arc<Services>,
) -> impl Fn(RunContext) -> cronfleet_scheduler::BoxFuture<Result<(), JobError>> + Send + Sync + 'static
{
    let spec = spec(task);
    let task = Arc::new(task.clone());
    move |ctx: RunContext| {
        let spec = spec.clone();
        let task = task.clone();
        let services = services.clone();
        Box::pin(async move {
            let Some(member) = in_fleet(&task, &services).cloned() else {
                let (_, result) = services
                    .execute(&task.name, &spec, &ctx.slot, ctx.attempt, ctx.cancel.token(), true)
                    .await;
                return result;
            };
            // A slot another node handed over (its run failed or was lost): no claim; the
            // attempts go on from where it stopped.
            let handed = member.handed(&task.name, ctx.slot.timestamp().as_second());
            let ctx = match handed {
                Some(from) => RunContext { attempt: from + ctx.attempt - 1, ..ctx },
                None => ctx,
            };
            // max_running across the fleet (`forbid`, `allow`): a lease per run, renewed while
            // it runs. `queue` and `replace` act on the node's own runs, through their wrappers
            // (inside the claim).
            let lease = match task.concurrency {
                Concurrency::Forbid => Some(1),
                Concurrency::Allow => Some(task.max_running),
                Concurrency::Queue | Concurrency::Replace => None,
            };
            let lease = match lease {
                Some(seats) => Some(member.take_lease(&task, seats, &ctx).await?),
                None => None,
            };
            let (record, result) = services
                .execute(&task.name, &spec, &ctx.slot, ctx.attempt, ctx.cancel.token(), true)
                .await;
            if let Some(lease) = lease {
                member.give_back(&task.name, lease).await;
            }
            // The last local attempt failed: another node runs the slot once more.
            let last = ctx.attempt > task.retries && handed.is_none();
            let failed = result.as_ref().err().is_some_and(|e| retried(task.retry_on, e));
            if task.retry_elsewhere && last && failed {
                let now = crate::clock::now().to_string();
                let reason = format!("{} on node {}", record.outcome.as_str(), services.node);
                match member.db.hand_off(&record, &reason, &now).await {
                    Ok(_) => {
                        tracing::info!(task = %task.name, slot = %ctx.slot, "failed run handed over to another node")
                    }
                    Err(e) => {
                        tracing::error!(task = %task.name, error = %e, "cannot hand the failed run over")
                    }
                }
            }
            result
        })
    }
}

/// The record of a run that is starting.
pub fn started(
    run_id: &str,
    task: &str,
    slot: &jiff::Zoned,
    attempt: u32,
    node: &str,
) -> RunRecord {
    let record = RunRecord::new(run_id.to_owned(), task, slot, attempt, node, Outcome::Running);
    RunRecord { started_at: crate::clock::now().to_string(), ..record }
}

/// Fills in how a run ended.
pub fn finish(record: &mut RunRecord, result: &Result<runner::RunResult, runner::RunError>) {
    match result {
        Ok(r) => {
            record.started_at = r.started.to_string();
            record.ended_at = Some(r.ended.to_string());
            record.duration_ms = Some(r.ended.duration_since(r.started).as_millis() as i64);
            (record.exit_code, record.signal) = match r.exit {
                Exit::Code(c) => (Some(c), None),
                Exit::Signal(s) => (None, Some(s)),
            };
            record.cpu_ms = Some((r.user_cpu + r.system_cpu).as_millis() as i64);
            record.max_rss = r.max_rss.map(|b| b as i64);
            record.outcome = match (r.exit, r.timed_out, r.killed) {
                (_, true, _) => Outcome::TimedOut,
                (_, _, true) => Outcome::Killed,
                (Exit::Code(0), _, _) => Outcome::Succeeded,
                _ => Outcome::Failed,
            };
            record.output.clone_from(&r.output);
            record.output_dropped = r.dropped as i64;
        }
        Err(e) => {
            record.ended_at = Some(crate::clock::now().to_string());
            record.outcome = Outcome::Failed;
            record.reason = Some(e.to_string());
        }
    }
}

/// Logs how a run ended and turns it into the scheduler's result.
pub fn outcome(
    task: &str,
    slot: &str,
    run_id: &str,
    result: Result<runner::RunResult, runner::RunError>,
) -> Result<(), JobError> {
    let r = match result {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(task, slot, run_id, error = %e, "run could not start");
            return Err(JobError::failed(e.to_string()));
        }
    };
    let duration_ms = r.ended.duration_since(r.started).as_millis();
    let output = String::from_utf8_lossy(&r.output);
    let (outcome, result) = match (r.exit, r.timed_out, r.killed) {
        (_, true, _) => ("timed out", Err(JobError::TimedOut)),
        (_, _, true) => ("killed", Err(JobError::Cancelled)),
        (Exit::Code(0), _, _) => ("succeeded", Ok(())),
        (Exit::Code(c), _, _) => ("failed", Err(JobError::failed(format!("exit code {c}")))),
        (Exit::Signal(s), _, _) => {
            ("failed", Err(JobError::failed(format!("killed by signal {s}"))))
        }
    };
    let exit = match r.exit {
        Exit::Code(c) => format!("code {c}"),
        Exit::Signal(s) => format!("signal {s}"),
    };
    tracing::info!(
        task,
        slot,
        run_id,
        outcome,
        exit,
        duration_ms,
        pid = r.pid,
        cpu_ms = (r.user_cpu + r.system_cpu).as_millis(),
        max_rss = r.max_rss.map_or_else(|| "unknown".to_owned(), |b| b.to_string()),
        output = output.trim_end(),
        "run finished"
    );
    result
}

/// `concurrency = "replace"`: a new run stops the one still running, then starts.
struct Replace;

impl Wrapper for Replace {
    fn wrap(&self, job: SharedJob) -> SharedJob {
        let current: Arc<std::sync::Mutex<Option<CancellationToken>>> = Arc::default();
        let turn = Arc::new(Mutex::new(()));
        Arc::new(move |ctx: RunContext| {
            let job = job.clone();
            let current = current.clone();
            let turn = turn.clone();
            async move {
                let mine = ctx.cancel.child_token();
                let previous =
                    current.lock().unwrap_or_else(|p| p.into_inner()).replace(mine.clone());
                if let Some(previous) = previous {
                    previous.cancel();
                }
                // Wait for the stopped run to end, then go (unless the agent is stopping).
                let _turn = tokio::select! {
                    turn = turn.lock() => turn,
                    _ = ctx.stopping.cancelled() => {
                        return Err(JobError::Skipped("the agent is stopping".into()));
                    }
                };
                job.run(RunContext { cancel: mine.into(), ..ctx }).await
            }
        })
    }
}
