//! A task becomes a scheduler entry: its policies as wrappers, its run as a child process.

use std::{collections::HashMap, sync::Arc, time::Duration};

use cronfleet_scheduler::{
    wrap, EntryOptions, JobError, LatePolicy, RunContext, SharedJob, Wrapper,
};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use crate::{
    alerts::Alerts,
    config::{CatchUp, Concurrency, Task},
    metrics::Metrics,
    runner::{self, Exit, Live, RunSpec},
    store::{self, Fleet, Outcome, RunRecord, Seat, Store},
};

/// How long a run gets between SIGTERM and SIGKILL.
pub const KILL_GRACE: Duration = Duration::from_secs(10);

/// Whether a task's slots are claimed in a fleet: a `run_on` task in a shared store. Its runs
/// then take fleet-wide run leases.
pub fn in_fleet(task: &Task, services: &Services) -> bool {
    task.run_on.is_some() && services.fleet.is_some()
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
    let fleet = in_fleet(task, services);
    let mut options = EntryOptions::new().name(task.name.clone());
    if fleet {
        options = options
            .wrap(Arc::new(Claim { task: Arc::new(task.clone()), services: services.clone() }));
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
        options = options.wrap(wrap::retry(task.retries, backoff));
    }
    // Missed slots while the agent was running but stalled; catch-up after downtime needs the
    // run history (not kept yet).
    options.on_late(match task.catch_up {
        CatchUp::Skip => LatePolicy::Skip,
        CatchUp::Once | CatchUp::All => LatePolicy::RunOnce,
    })
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
    }
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
    /// The fleet's part of the store: `Some` only when agents share a PostgreSQL store.
    pub fleet: Option<Fleet>,
    /// This node's name.
    pub node: String,
    /// Counters for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// Alerts on the tasks' channels.
    pub alerts: Arc<Alerts>,
    /// Runs in flight, by run id.
    pub in_flight: std::sync::Mutex<HashMap<String, Arc<InFlight>>>,
    /// The nodes of the store as last read (every heartbeat), ready for claims (see
    /// [`Services::set_nodes`]).
    nodes: std::sync::RwLock<Arc<Vec<Candidate>>>,
    /// Slots taken over from other nodes (`retry_elsewhere`): (task, slot) → the attempt they
    /// go on from, and when they were taken.
    pub handed: std::sync::Mutex<HashMap<(String, i64), (u32, std::time::Instant)>>,
    /// Claims waiting to go to the database together (see [`Services::claim`]).
    claims: std::sync::OnceLock<tokio::sync::mpsc::UnboundedSender<ClaimRequest>>,
    /// Claim statements sent to the database (round trips), for the benchmark and metrics.
    pub claim_round_trips: std::sync::atomic::AtomicU64,
    /// How long each claim statement took, kept only when set to `Some` (by the benchmark).
    pub claim_times: std::sync::Mutex<Option<Vec<Duration>>>,
    /// Slots claimed ahead of their time.
    pub ahead: super::ahead::Ahead,
    /// The agent's background loops.
    pub background: super::Background,
}

/// One seat a job wants, and where its answer goes.
#[derive(Debug)]
struct ClaimRequest {
    seat: Seat,
    answer: tokio::sync::oneshot::Sender<Result<bool, String>>,
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
        Services {
            fleet: store.fleet(),
            store,
            node: node.to_owned(),
            alerts: Arc::new(Alerts::new(node, metrics.clone())),
            metrics,
            in_flight: std::sync::Mutex::default(),
            nodes: std::sync::RwLock::default(),
            handed: std::sync::Mutex::default(),
            claims: std::sync::OnceLock::new(),
            claim_round_trips: std::sync::atomic::AtomicU64::new(0),
            claim_times: std::sync::Mutex::default(),
            ahead: super::ahead::Ahead::default(),
            background: super::Background::default(),
        }
    }

    /// Claims one seat of a slot. The claims of the jobs due together go to the database in
    /// one statement: while one batch is on its way, the next ones queue up (so a node with
    /// many tasks due in the same second makes one or two round trips for all of them).
    async fn claim(self: &Arc<Self>, task: &str, slot_ts: i64, seat: u32) -> Result<bool, String> {
        let sender = self.claims.get_or_init(|| {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            self.background.spawn(claim_batches(Arc::downgrade(self), rx));
            tx
        });
        let (answer, reply) = tokio::sync::oneshot::channel();
        let seat = Seat { task: task.to_owned(), slot_ts, seat };
        sender
            .send(ClaimRequest { seat, answer })
            .map_err(|_| "the agent is stopping".to_owned())?;
        reply.await.unwrap_or_else(|_| Err("the agent is stopping".to_owned()))
    }

    /// Claims seats now, in one statement: those of `wanted` this node holds.
    pub async fn claim_now(
        &self,
        wanted: &[Seat],
    ) -> Result<std::collections::HashSet<Seat>, String> {
        let Some(fleet) = &self.fleet else { return Err("not in a fleet".to_owned()) };
        let now = crate::clock::now().to_string();
        self.claim_round_trips.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let began = std::time::Instant::now();
        let result = fleet.claim_many(wanted, &self.node, &now).await;
        self.metrics.claimed(began.elapsed().as_secs_f64());
        if let Some(times) = self.claim_times.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
            times.push(began.elapsed());
        }
        result.map_err(|e| e.to_string())
    }

    /// The nodes claims choose from, as last read.
    pub fn candidates(&self) -> Arc<Vec<Candidate>> {
        self.nodes.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Remembers a slot taken over from another node, to run from `attempt` on.
    pub fn hand(&self, task: &str, slot_ts: i64, attempt: u32) {
        let mut map = self.handed.lock().unwrap_or_else(|p| p.into_inner());
        // Retries of a taken slot are over within the hour.
        map.retain(|_, (_, at)| at.elapsed() < Duration::from_secs(3600));
        map.insert((task.to_owned(), slot_ts), (attempt, std::time::Instant::now()));
    }

    /// Takes the store's nodes (read every heartbeat) as the candidates of claims: their
    /// identities parsed and their liveness judged once, not at every claim.
    pub fn set_nodes(&self, nodes: &[crate::store::NodeRecord]) {
        let ready = Arc::new(candidates(nodes, crate::clock::now()));
        *self.nodes.write().unwrap_or_else(|p| p.into_inner()) = ready;
    }

    /// Forgets a slot taken over from another node; whether it was one.
    pub fn unhand(&self, task: &str, slot_ts: i64) -> bool {
        let mut map = self.handed.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(&(task.to_owned(), slot_ts)).is_some()
    }

    /// The attempt a slot taken over from another node goes on from.
    fn handed(&self, task: &str, slot_ts: i64) -> Option<u32> {
        let map = self.handed.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&(task.to_owned(), slot_ts)).map(|(attempt, _)| *attempt)
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

/// How long a fleet-wide run lease lasts without renewal (a dead holder's seat frees then).
pub const LEASE_SECS: i64 = 30;

/// How long a node waits per rank behind the preferred ones before it tries to take a slot
/// of a `run_on` task itself.
pub const CLAIM_GRACE: Duration = Duration::from_millis(300);

/// How long the `k`-th backup node (1: the first after the preferred ones) waits after a
/// slot before it claims a seat left free: a grace for each node before it, and a spread of
/// its own (the backups of many slots, on many nodes, do not all ask at the same instant).
pub fn backup_wait(k: u32, node: &str) -> Duration {
    CLAIM_GRACE * k + super::ahead::spread(node)
}

/// FNV-1a with a finalizer: a hash every node computes the same.
pub(super) fn fnv1a(parts: &[&[u8]]) -> u64 {
    parts.iter().fold(Fnv::new(), |h, part| h.part(part)).finish()
}

/// [`fnv1a`] part by part, so that parts shared by many hashes (a task and a slot, before
/// each node's name) are hashed once.
#[derive(Clone, Copy)]
pub(super) struct Fnv(u64);

impl Fnv {
    const PRIME: u64 = 0x0000_0100_0000_01b3;

    pub(super) const fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    /// Adds a part (its bytes, then a separator).
    pub(super) fn part(self, bytes: &[u8]) -> Fnv {
        let mut h = self.0;
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(Self::PRIME);
        }
        h ^= 0xff;
        Fnv(h.wrapping_mul(Self::PRIME))
    }

    /// MurmurHash3's finalizer: every input bit reaches the high bits the ranking compares.
    pub(super) fn finish(self) -> u64 {
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

/// The hash of a task's slot that every node's rendezvous hash for it starts with: hashed
/// once per slot, then continued with each node's name.
fn slot_prefix(task: &Task, slot_ts: i64) -> Fnv {
    Fnv::new().part(task.name.as_bytes()).part(&slot_ts.to_be_bytes())
}

/// A node as claims see it.
#[derive(Clone, Debug)]
pub struct Candidate {
    host: super::Host,
    alive: bool,
}

/// The nodes of the store as claims see them, judged alive or not at `now`.
pub fn candidates(nodes: &[crate::store::NodeRecord], now: jiff::Timestamp) -> Vec<Candidate> {
    nodes
        .iter()
        .map(|n| Candidate {
            host: super::Host {
                name: n.name.clone(),
                addresses: n.addresses.iter().filter_map(|a| a.parse().ok()).collect(),
                tags: n.tags.clone(),
            },
            alive: super::node_status(n, now) == "alive",
        })
        .collect()
}

/// The live nodes that may run `task`, most preferred first for `slot_ts` (rendezvous
/// hashing: each slot has its own order, so the load spreads, and every node computes the same
/// order from the same list).
pub fn rendezvous(
    task: &Task,
    slot_ts: i64,
    nodes: &[crate::store::NodeRecord],
    me: &str,
) -> Vec<String> {
    rendezvous_among(task, slot_ts, &candidates(nodes, crate::clock::now()), me)
}

/// [`rendezvous`] over nodes made ready by [`candidates`].
pub fn rendezvous_among(task: &Task, slot_ts: i64, nodes: &[Candidate], me: &str) -> Vec<String> {
    let prefix = slot_prefix(task, slot_ts);
    let hash = |name: &str| prefix.part(name.as_bytes()).finish();
    let mut ranked: Vec<(u64, &str)> = nodes
        .iter()
        .filter(|n| n.host.name == me || n.alive)
        .filter(|n| n.host.runs(task))
        .map(|n| (hash(&n.host.name), n.host.name.as_str()))
        .collect();
    if !ranked.iter().any(|(_, n)| *n == me) {
        ranked.push((hash(me), me));
    }
    ranked.sort_unstable_by(|a, b| b.cmp(a));
    ranked.into_iter().map(|(_, n)| n.to_owned()).collect()
}

/// This node's place in [`rendezvous_among`]'s order (0: preferred), without building the
/// order: what a claim needs, at every slot of every `run_on` task.
pub fn rank_among(task: &Task, slot_ts: i64, nodes: &[Candidate], me: &str) -> usize {
    let prefix = slot_prefix(task, slot_ts);
    let mine = prefix.part(me.as_bytes()).finish();
    nodes
        .iter()
        .filter(|n| n.alive && n.host.name != me)
        .filter(|n| {
            let theirs = prefix.part(n.host.name.as_bytes()).finish();
            // The order sorts (hash, name) pairs, greatest first.
            (theirs, n.host.name.as_str()) > (mine, me)
        })
        // Whether a node may run the task (addresses, names, tags) costs more than its hash:
        // asked only of the nodes ahead of this one.
        .filter(|n| n.host.runs(task))
        .count()
}

/// Sends the queued claims in batches, one statement each, and answers them.
async fn claim_batches(
    services: std::sync::Weak<Services>,
    mut queue: tokio::sync::mpsc::UnboundedReceiver<ClaimRequest>,
) {
    while let Some(first) = queue.recv().await {
        // The jobs woken together (by the same slot, or the same grace) send their claims one
        // after the other, and the first wakes this task at once: letting the other woken
        // tasks run first puts their claims in this batch rather than in many small ones.
        tokio::task::yield_now().await;
        let mut batch = vec![first];
        while batch.len() < 1000 {
            match queue.try_recv() {
                Ok(more) => batch.push(more),
                Err(_) => break,
            }
        }
        let Some(services) = services.upgrade() else { return };
        let wanted: Vec<Seat> = batch.iter().map(|r| r.seat.clone()).collect();
        let result = services.claim_now(&wanted).await;
        for request in batch {
            let answer = match &result {
                Ok(got) => Ok(got.contains(&request.seat)),
                Err(e) => Err(e.clone()),
            };
            let _ = request.answer.send(answer);
        }
    }
}

/// How many nodes after the preferred ones may take a slot they left (after a grace each);
/// the rest of the fleet never asks, so the database sees a few claims per slot, however
/// many nodes there are.
pub const CLAIM_BACKUPS: u32 = 2;

impl Services {
    /// For a `run_on = N` task in a shared store: whether this node gets one of the slot's N
    /// seats. The top N nodes of the slot's rendezvous order claim at once; the next
    /// [`CLAIM_BACKUPS`] wait their turn, so they take a seat only when a preferred node did
    /// not; the others leave the slot to them.
    ///
    /// `next`: the task's next slot, claimed ahead of its time when this node is its
    /// preferred node (see [`super::ahead`]); a slot claimed so is this node's at once.
    pub async fn claim_seat(
        self: &Arc<Self>,
        task: &Arc<Task>,
        seats: u32,
        slot: &jiff::Zoned,
        next: Option<&jiff::Zoned>,
    ) -> bool {
        if let Some(next) = next {
            self.ahead.ask(self, task, seats, next);
        }
        let slot_ts = slot.timestamp().as_second();
        if let Some(Ok(true)) = self.ahead.take(&task.name, slot_ts).await {
            return true;
        }
        let rank = rank_among(task, slot_ts, &self.candidates(), &self.node) as u32;
        if rank >= seats + CLAIM_BACKUPS {
            return false;
        }
        if rank >= seats {
            // Counted from the slot, so that the backups of a slot on this node wake together
            // (one claim statement for all of them).
            let wait = backup_wait(rank - seats + 1, &self.node);
            let wake = slot.timestamp().checked_add(wait).unwrap_or(slot.timestamp());
            let left = crate::clock::now().duration_until(wake);
            tokio::time::sleep(Duration::try_from(left).unwrap_or_default()).await;
        }
        let Some(fleet) = &self.fleet else { return true };
        if fleet.away() {
            // Never run a slot without a claim; it is recorded as missed once the database is
            // back (unless another node claimed it).
            tracing::warn!(task = %task.name, slot = %slot, "the database is away: slot not claimed, not run");
            fleet.unclaimed(&task.name, slot, seats);
            return false;
        }
        let first = rank.min(seats - 1);
        for seat in (first..seats).chain(0..first) {
            match self.claim(&task.name, slot_ts, seat).await {
                Ok(true) => return true,
                Ok(false) => {}
                Err(e) => {
                    // A slot it could not claim is never run.
                    tracing::error!(task = %task.name, error = %e, "cannot claim the slot: not run");
                    fleet.unclaimed(&task.name, slot, seats);
                    return false;
                }
            }
        }
        false
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
            let fleet = in_fleet(&task, &services);
            // A slot another node handed over (its run failed or was lost): no claim; the
            // attempts go on from where it stopped.
            let handed = if fleet {
                services.handed(&task.name, ctx.slot.timestamp().as_second())
            } else {
                None
            };
            let ctx = match handed {
                Some(from) => RunContext { attempt: from + ctx.attempt - 1, ..ctx },
                None => ctx,
            };
            if !fleet {
                let (_, result) = services
                    .execute(&task.name, &spec, &ctx.slot, ctx.attempt, ctx.cancel.token(), true)
                    .await;
                return result;
            }
            // max_running across the fleet (`forbid`, `allow`): a lease per run, renewed while
            // it runs. `queue` and `replace` act on the node's own runs, through their wrappers
            // (inside the claim).
            let lease = match task.concurrency {
                Concurrency::Forbid => Some(1),
                Concurrency::Allow => Some(task.max_running),
                Concurrency::Queue | Concurrency::Replace => None,
            };
            let lease = match lease {
                Some(seats) => Some(take_lease(&services, &task, seats, &ctx).await?),
                None => None,
            };
            let (record, result) = services
                .execute(&task.name, &spec, &ctx.slot, ctx.attempt, ctx.cancel.token(), true)
                .await;
            if let Some((seat, run_id, renew)) = lease {
                renew.abort();
                if let Some(fleet) = &services.fleet {
                    if let Err(e) = fleet.renew_lease(&task.name, seat, &run_id, None).await {
                        tracing::warn!(task = %task.name, error = %e, "cannot give the run lease back");
                    }
                }
            }
            // The last local attempt failed: another node runs the slot once more.
            let last = ctx.attempt > task.retries && handed.is_none();
            let failed = matches!(result, Err(JobError::Failed(_) | JobError::TimedOut));
            if let Some(fleet) =
                services.fleet.as_ref().filter(|_| task.retry_elsewhere && last && failed)
            {
                let now = crate::clock::now().to_string();
                let reason = format!("{} on node {}", record.outcome.as_str(), services.node);
                match fleet.hand_off(&record, &reason, &now).await {
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

/// Takes one of a task's `seats` fleet-wide run leases for this run, renewed (by the task
/// returned) until the run gives it back: the seat, the run id and the renewal. A slot that
/// finds every seat held is skipped.
async fn take_lease(
    services: &Arc<Services>,
    task: &Task,
    seats: u32,
    ctx: &RunContext,
) -> Result<(u32, String, tokio::task::JoinHandle<()>), JobError> {
    let run_id = store::run_id(&task.name, &ctx.slot, ctx.attempt, Some(&services.node));
    let now = crate::clock::now().as_second();
    let Some(fleet) = services.fleet.clone() else {
        return Err(JobError::Skipped("no fleet-wide run lease (not in a fleet)".into()));
    };
    let lease =
        fleet.lease(&task.name, seats, &services.node, &run_id, now, now + LEASE_SECS).await;
    let seat = match lease {
        Ok(Some(seat)) => seat,
        Ok(None) => {
            return Err(JobError::Skipped(format!(
                "{seats} run(s) of the task are already running across the fleet (max_running)"
            )));
        }
        Err(e) => {
            tracing::error!(task = %task.name, error = %e, "cannot take a run lease");
            return Err(JobError::Skipped("no fleet-wide run lease (database)".into()));
        }
    };
    let renew = {
        let (name, run_id) = (task.name.clone(), run_id.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(LEASE_SECS as u64 / 3)).await;
                let until = crate::clock::now().as_second() + LEASE_SECS;
                let _ = fleet.renew_lease(&name, seat, &run_id, Some(until)).await;
            }
        })
    };
    Ok((seat, run_id, renew))
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
            record.max_rss = Some(r.max_rss as i64);
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
        max_rss = r.max_rss,
        output = output.trim_end(),
        "run finished"
    );
    result
}

/// The claim of a `run_on` task's slot in a fleet, around everything else: a node that does
/// not get a seat of the slot leaves it (to the node that does), before any policy of its own
/// sees it. A slot handed over by another node (`retry_elsewhere`) is this node's already.
struct Claim {
    task: Arc<Task>,
    services: Arc<Services>,
}

impl Wrapper for Claim {
    fn wrap(&self, job: SharedJob) -> SharedJob {
        let (task, services) = (self.task.clone(), self.services.clone());
        Arc::new(move |ctx: RunContext| {
            let (job, task, services) = (job.clone(), task.clone(), services.clone());
            async move {
                let slot_ts = ctx.slot.timestamp().as_second();
                if let (Some(seats), None) = (task.run_on, services.handed(&task.name, slot_ts)) {
                    let next = match &task.kind {
                        crate::config::Kind::Cron(schedule) => schedule.next_after(&ctx.slot),
                        crate::config::Kind::Daemon => None,
                    };
                    if !services.claim_seat(&task, seats, &ctx.slot, next.as_ref()).await {
                        tracing::debug!(task = %task.name, slot = %ctx.slot, "slot taken by other nodes");
                        return Ok(());
                    }
                }
                job.run(ctx).await
            }
        })
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::NodeRecord;

    #[test]
    fn the_node_hash_is_the_same_in_every_version() {
        // Nodes of different versions in one fleet must agree on each slot's preferred node:
        // these values were computed apart from this code (FNV-1a, 0xff after each part,
        // MurmurHash3's finalizer).
        let slot = 1_796_000_000i64.to_be_bytes();
        assert_eq!(fnv1a(&[b"billing", &slot, b"node-1"]), 0x86ff_ef43_3832_1a50);
        assert_eq!(fnv1a(&[b"node-1"]), 0xe554_35ae_2194_ce5d);
        let prefix = Fnv::new().part(b"billing").part(&slot);
        assert_eq!(prefix.part(b"node-1").finish(), 0x86ff_ef43_3832_1a50);
    }

    #[test]
    fn rendezvous_spreads_slots_and_agrees_everywhere() {
        let text = "[[task]]\nname = \"solo\"\nschedule = \"@hourly\"\nrun_on = \"one\"\ncommand = \"x\"\n";
        let task =
            crate::config::parse(std::path::Path::new("t.toml"), text).unwrap().tasks.remove(0);
        let now = crate::clock::now().to_string();
        let nodes: Vec<NodeRecord> = ["a", "b", "c"]
            .iter()
            .map(|n| NodeRecord {
                name: (*n).into(),
                addresses: Vec::new(),
                tags: Vec::new(),
                version: "0".into(),
                api: None,
                started_at: now.clone(),
                last_seen: now.clone(),
                stopped_at: None,
            })
            .collect();
        let mut first = HashMap::new();
        for slot in 0..3000 {
            let order = rendezvous(&task, slot, &nodes, "a");
            assert_eq!(order, rendezvous(&task, slot, &nodes, "c"), "every node agrees");
            assert_eq!(order.len(), 3);
            let ready = candidates(&nodes, crate::clock::now());
            for (place, node) in order.iter().enumerate() {
                assert_eq!(rank_among(&task, slot, &ready, node), place, "a node knows its place");
            }
            *first.entry(order[0].clone()).or_insert(0) += 1;
        }
        for node in ["a", "b", "c"] {
            let n = first[node];
            assert!((800..1200).contains(&n), "{node} preferred {n} times of 3000");
        }
        // A lost node is not preferred; a node that does not match the task is left out.
        let mut lost = nodes.clone();
        lost[1].last_seen = "2000-01-01T00:00:00Z".into();
        assert!(rendezvous(&task, 7, &lost, "a").iter().all(|n| n != "b"));
        let ready = candidates(&lost, crate::clock::now());
        for slot in 0..100 {
            let order = rendezvous(&task, slot, &lost, "a");
            let place = order.iter().position(|n| n == "a").unwrap();
            assert_eq!(rank_among(&task, slot, &ready, "a"), place);
            // A lost node still knows its place among the live (it may run what it fires).
            let place = rendezvous(&task, slot, &lost, "b").iter().position(|n| n == "b");
            assert_eq!(Some(rank_among(&task, slot, &ready, "b")), place);
        }
    }
}
