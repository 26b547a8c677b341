//! The agent's Prometheus metrics, kept in memory and written in the text exposition format
//! (version 0.0.4) at `/metrics`, by `prometheus-client`.
//!
//! Counters and histograms are fed as runs end, slots are skipped and reloads happen; gauges
//! that describe the present (runs in flight, next fire times) are read at scrape time by the
//! caller and passed to [`Metrics::render`].
//!
//! Each scrape registers the metrics in a fresh `Registry`, in a fixed order: the metrics that
//! describe the present are made for that scrape, and the fleet's only with a shared store.

use std::{
    collections::BTreeMap,
    sync::{atomic::AtomicU64, Arc, Mutex},
};

use prometheus_client::{
    encoding::{prometheus_text, EncodeLabelSet, EncodeMetric, MetricEncoder},
    metrics::{
        counter::{ConstCounter, Counter},
        gauge::{ConstGauge, Gauge},
        histogram::Histogram,
        MetricType, TypedMetric,
    },
    registry::Registry,
};

/// Upper bounds of the run duration buckets, in seconds.
const DURATION_BUCKETS: &[f64] =
    &[0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 4.0 * 3600.0];
/// Upper bounds of the claim statement buckets, in seconds.
const CLAIM_BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 2.0];
/// Upper bounds of the launch lateness buckets, in seconds.
const LATENESS_BUCKETS: &[f64] = &[0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0];

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
struct TaskLabels {
    task: String,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
struct OutcomeLabels {
    task: String,
    outcome: String,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
    commit: &'static str,
}

/// Label sets that name a task: their series go when the task does.
trait OfTask {
    fn task(&self) -> &str;
}

impl OfTask for TaskLabels {
    fn task(&self) -> &str {
        &self.task
    }
}

impl OfTask for OutcomeLabels {
    fn task(&self) -> &str {
        &self.task
    }
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
struct DeliveryLabels {
    channel: String,
    result: &'static str,
}

/// A metric per label set, like `prometheus_client`'s `Family`, but written in the order of
/// the label sets (a `Family` is a hash map) and with its `HELP` and `TYPE` lines also when it
/// has no label set yet: what scrapes showed before the crate, kept.
#[derive(Debug)]
struct Labelled<L, M> {
    metrics: Arc<Mutex<BTreeMap<L, M>>>,
    new: fn() -> M,
}

impl<L, M> Clone for Labelled<L, M> {
    fn clone(&self) -> Self {
        Labelled { metrics: self.metrics.clone(), new: self.new }
    }
}

impl<L: Ord, M: Default> Default for Labelled<L, M> {
    fn default() -> Self {
        Labelled::new(M::default)
    }
}

impl<L: Ord, M> Labelled<L, M> {
    fn new(new: fn() -> M) -> Self {
        Labelled { metrics: Arc::default(), new }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<L, M>> {
        self.metrics.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The metric of `labels` (a handle sharing its value), made when it is new.
    fn get(&self, labels: L) -> M
    where
        M: Clone,
    {
        self.lock().entry(labels).or_insert_with(self.new).clone()
    }

    fn insert(&self, labels: L, metric: M) {
        self.lock().insert(labels, metric);
    }

    /// Drops the series of the tasks `keep` says no.
    fn retain_tasks(&self, keep: &dyn Fn(&str) -> bool)
    where
        L: OfTask,
    {
        self.lock().retain(|labels, _| keep(labels.task()));
    }
}

impl<L, M> EncodeMetric for Labelled<L, M>
where
    L: Ord + EncodeLabelSet,
    M: EncodeMetric + TypedMetric,
{
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let metrics = self.metrics.lock().unwrap_or_else(|p| p.into_inner());
        for (labels, metric) in metrics.iter() {
            metric.encode(encoder.encode_family(labels)?)?;
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        M::TYPE
    }
}

/// What a scrape reads from the agent at that moment.
#[derive(Debug, Default)]
pub struct Present {
    /// Runs in flight, by task.
    pub running: BTreeMap<String, u64>,
    /// Next fire time of each scheduled task, Unix seconds.
    pub next: BTreeMap<String, f64>,
    /// Tasks this node runs.
    pub tasks: usize,
    /// With a shared store: whether its database is away (runs are being spooled), and how
    /// many claim statements this node has sent.
    pub fleet: Option<(bool, u64)>,
}

/// The agent's metrics.
#[derive(Debug)]
pub struct Metrics {
    /// Runs ended, by task and outcome.
    runs: Labelled<OutcomeLabels, Counter>,
    durations: Labelled<TaskLabels, Histogram>,
    lateness: Histogram,
    /// How long claim statements took (shared store).
    claims: Histogram,
    /// Slots not run, by task and outcome (skipped or missed).
    not_run: Labelled<OutcomeLabels, Counter>,
    last_success: Labelled<TaskLabels, Gauge<f64, AtomicU64>>,
    reloads: Labelled<ResultLabels, Counter>,
    /// 1 when the task file on disk is in effect, 0 when its last reload failed.
    config_ok: Gauge,
    /// When the task file was last read without error (Unix seconds).
    config_success: Gauge,
    /// Alert deliveries, by channel and result.
    alerts: Labelled<DeliveryLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let reloads = Labelled::default();
        // Both results are shown from the start, at 0.
        for result in ["ok", "error"] {
            reloads.get(ResultLabels { result });
        }
        Metrics {
            runs: Labelled::default(),
            durations: Labelled::new(|| Histogram::new(DURATION_BUCKETS.iter().copied())),
            lateness: Histogram::new(LATENESS_BUCKETS.iter().copied()),
            claims: Histogram::new(CLAIM_BUCKETS.iter().copied()),
            not_run: Labelled::default(),
            last_success: Labelled::default(),
            reloads,
            config_ok: Gauge::default(),
            config_success: Gauge::default(),
            alerts: Labelled::default(),
        }
    }
}

fn task(task: &str) -> TaskLabels {
    TaskLabels { task: task.to_owned() }
}

fn outcome(task: &str, outcome: &str) -> OutcomeLabels {
    OutcomeLabels { task: task.to_owned(), outcome: outcome.to_owned() }
}

impl Metrics {
    /// A run ended: its outcome, how long it took, and when it ended (Unix seconds).
    pub fn run_ended(&self, task_name: &str, outcome_name: &str, seconds: Option<f64>, ended: f64) {
        self.runs.get(outcome(task_name, outcome_name)).inc();
        if let Some(s) = seconds {
            self.durations.get(task(task_name)).observe(s);
        }
        if outcome_name == "succeeded" {
            self.last_success.get(task(task_name)).set(ended);
        }
    }

    /// A run started this long after its slot.
    pub fn launched(&self, late_seconds: f64) {
        self.lateness.observe(late_seconds.max(0.0));
    }

    /// A claim statement took this long (from sending it to its answer).
    pub fn claimed(&self, seconds: f64) {
        self.claims.observe(seconds.max(0.0));
    }

    /// A slot was not run (`skipped` or `missed`).
    pub fn not_run(&self, task_name: &str, outcome_name: &str) {
        self.not_run.get(outcome(task_name, outcome_name)).inc();
    }

    /// A reload happened (`ok`) or was refused (`error`).
    pub fn reloaded(&self, ok: bool) {
        self.reloads.get(ResultLabels { result: if ok { "ok" } else { "error" } }).inc();
    }

    /// The task file was read (at start or a reload): whether it is in effect, and when it
    /// last was read without error (Unix seconds).
    pub fn config_read(&self, ok: bool, last_success: i64) {
        self.config_ok.set(i64::from(ok));
        self.config_success.set(last_success);
    }

    /// An alert was delivered to a channel (`ok`) or given up on (`error`).
    pub fn alert_delivery(&self, channel: &str, ok: bool) {
        let result = if ok { "ok" } else { "error" };
        self.alerts.get(DeliveryLabels { channel: channel.to_owned(), result }).inc();
    }

    /// Drops the series of every task `exists` says no to (deleted through the API, gone
    /// from the task file): a task's counters, durations and last success go with it, and a
    /// task made again under the same name starts from nothing. Called on every change of
    /// the task set and before every scrape (a run still going when its task was deleted
    /// ends after that change).
    pub fn retain_tasks(&self, exists: impl Fn(&str) -> bool) {
        self.runs.retain_tasks(&exists);
        self.durations.retain_tasks(&exists);
        self.not_run.retain_tasks(&exists);
        self.last_success.retain_tasks(&exists);
    }

    /// The metrics in Prometheus text format.
    pub fn render(&self, present: &Present) -> String {
        let mut registry = Registry::default();
        // `prometheus-client` ends each help text with a full stop, and names a counter's
        // lines `<name>_total`.
        registry.register("cronfleet_runs", "Runs ended, by task and outcome", self.runs.clone());
        registry.register(
            "cronfleet_run_duration_seconds",
            "How long runs took",
            self.durations.clone(),
        );
        registry.register(
            "cronfleet_launch_lateness_seconds",
            "How long after its slot each run started",
            self.lateness.clone(),
        );
        let running = Labelled::<_, ConstGauge<u64>>::default();
        for (name, n) in &present.running {
            running.insert(task(name), ConstGauge::new(*n));
        }
        registry.register("cronfleet_runs_running", "Runs in flight, by task", running);
        let next = Labelled::<_, ConstGauge<f64>>::default();
        for (name, at) in &present.next {
            next.insert(task(name), ConstGauge::new(*at));
        }
        registry.register(
            "cronfleet_task_next_run_timestamp_seconds",
            "When each task fires next",
            next,
        );
        registry.register(
            "cronfleet_task_last_success_timestamp_seconds",
            "When each task last succeeded (since the agent started)",
            self.last_success.clone(),
        );
        registry.register(
            "cronfleet_slots_not_run",
            "Slots not run: skipped by a policy or missed",
            self.not_run.clone(),
        );
        registry.register(
            "cronfleet_reloads",
            "Reloads of the task file, by result",
            self.reloads.clone(),
        );
        registry.register(
            "cronfleet_config_last_reload_successful",
            "Whether the task file on disk is in effect (0: its last reload failed, the previous tasks run)",
            self.config_ok.clone(),
        );
        registry.register(
            "cronfleet_config_last_reload_success_timestamp_seconds",
            "When the task file was last read without error",
            self.config_success.clone(),
        );
        registry.register(
            "cronfleet_alert_deliveries",
            "Alert deliveries, by channel and result",
            self.alerts.clone(),
        );
        registry.register(
            "cronfleet_tasks",
            "Tasks this node runs",
            ConstGauge::new(present.tasks as u64),
        );
        let build = Labelled::<_, ConstGauge<u64>>::default();
        let labels =
            BuildLabels { version: env!("CARGO_PKG_VERSION"), commit: env!("CRONFLEET_COMMIT") };
        build.insert(labels, ConstGauge::new(1));
        registry.register(
            "cronfleet_build_info",
            "The agent's version and the commit it was built from, as labels (always 1)",
            build,
        );
        if let Some((away, claims)) = present.fleet {
            registry.register(
                "cronfleet_database_away",
                "1 while the shared database is away (run records are spooled locally)",
                ConstGauge::new(u64::from(away)),
            );
            registry.register(
                "cronfleet_claim_statements",
                "Claim statements sent to the shared database (each carries many claims)",
                ConstCounter::new(claims),
            );
            registry.register(
                "cronfleet_claim_statement_seconds",
                "How long claim statements took, from sending to answer",
                self.claims.clone(),
            );
        }
        let mut out = String::new();
        // Writing to a `String` does not fail.
        let _ = prometheus_text::encode(&mut out, &registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let m = Metrics::default();
        m.run_ended("a\"b", "succeeded", Some(0.3), 100.0);
        m.run_ended("a\"b", "failed", Some(20.0), 200.0);
        let text = m.render(&Present::default());
        assert!(text.contains("cronfleet_runs_total{task=\"a\\\"b\",outcome=\"failed\"} 1"));
        assert!(
            text.contains("cronfleet_run_duration_seconds_bucket{task=\"a\\\"b\",le=\"0.1\"} 0")
        );
        assert!(
            text.contains("cronfleet_run_duration_seconds_bucket{task=\"a\\\"b\",le=\"0.5\"} 1")
        );
        assert!(text.contains("cronfleet_run_duration_seconds_bucket{task=\"a\\\"b\",le=\"60\"} 2"));
        assert!(text.contains("cronfleet_run_duration_seconds_count{task=\"a\\\"b\"} 2"));
        assert!(text.contains("cronfleet_task_last_success_timestamp_seconds{task=\"a\\\"b\"} 100"));
        assert!(text.contains("cronfleet_reloads_total{result=\"error\"} 0"));
        let build = format!(
            "cronfleet_build_info{{version=\"{}\",commit=\"{}\"}} 1\n",
            env!("CARGO_PKG_VERSION"),
            env!("CRONFLEET_COMMIT")
        );
        assert!(text.contains(&build), "{text}");
        // A task gone: all its series go; the others' stay.
        m.run_ended("b", "succeeded", Some(1.0), 300.0);
        m.not_run("a\"b", "missed");
        m.retain_tasks(|t| t == "b");
        let text = m.render(&Present::default());
        assert!(!text.contains("task=\"a\\\"b\""), "{text}");
        assert!(text.contains("cronfleet_runs_total{task=\"b\",outcome=\"succeeded\"} 1"));
        assert!(text.contains("cronfleet_task_last_success_timestamp_seconds{task=\"b\"} 300"));
        assert!(!text.contains("cronfleet_database_away"), "only with a shared store");
        m.claimed(0.003);
        m.claimed(0.03);
        let fleet = m.render(&Present { fleet: Some((true, 7)), ..Present::default() });
        assert!(fleet.contains("cronfleet_database_away 1\n"));
        assert!(fleet.contains("cronfleet_claim_statement_seconds_bucket{le=\"0.0025\"} 0\n"));
        assert!(fleet.contains("cronfleet_claim_statement_seconds_bucket{le=\"0.005\"} 1\n"));
        assert!(fleet.contains("cronfleet_claim_statement_seconds_bucket{le=\"+Inf\"} 2\n"));
        assert!(!text.contains("cronfleet_claim_statement_seconds"), "only with a shared store");
        assert!(fleet.contains("cronfleet_claim_statements_total 7\n"));
    }

    #[test]
    fn names_types_and_help_as_before() {
        // The `# HELP` and `# TYPE` lines as the hand-written exposition wrote them.
        let text =
            Metrics::default().render(&Present { fleet: Some((false, 0)), ..Present::default() });
        let heads: Vec<&str> = text.lines().filter(|l| l.starts_with('#')).collect();
        let expected = [
            ("cronfleet_runs_total", "counter", "Runs ended, by task and outcome."),
            ("cronfleet_run_duration_seconds", "histogram", "How long runs took."),
            (
                "cronfleet_launch_lateness_seconds",
                "histogram",
                "How long after its slot each run started.",
            ),
            ("cronfleet_runs_running", "gauge", "Runs in flight, by task."),
            ("cronfleet_task_next_run_timestamp_seconds", "gauge", "When each task fires next."),
            (
                "cronfleet_task_last_success_timestamp_seconds",
                "gauge",
                "When each task last succeeded (since the agent started).",
            ),
            (
                "cronfleet_slots_not_run_total",
                "counter",
                "Slots not run: skipped by a policy or missed.",
            ),
            ("cronfleet_reloads_total", "counter", "Reloads of the task file, by result."),
            (
                "cronfleet_config_last_reload_successful",
                "gauge",
                "Whether the task file on disk is in effect (0: its last reload failed, the previous tasks run).",
            ),
            (
                "cronfleet_config_last_reload_success_timestamp_seconds",
                "gauge",
                "When the task file was last read without error.",
            ),
            (
                "cronfleet_alert_deliveries_total",
                "counter",
                "Alert deliveries, by channel and result.",
            ),
            ("cronfleet_tasks", "gauge", "Tasks this node runs."),
            (
                "cronfleet_build_info",
                "gauge",
                "The agent's version and the commit it was built from, as labels (always 1).",
            ),
            (
                "cronfleet_database_away",
                "gauge",
                "1 while the shared database is away (run records are spooled locally).",
            ),
            (
                "cronfleet_claim_statements_total",
                "counter",
                "Claim statements sent to the shared database (each carries many claims).",
            ),
            (
                "cronfleet_claim_statement_seconds",
                "histogram",
                "How long claim statements took, from sending to answer.",
            ),
        ];
        let want: Vec<String> = expected
            .iter()
            .flat_map(|(name, kind, help)| {
                [format!("# HELP {name} {help}"), format!("# TYPE {name} {kind}")]
            })
            .collect();
        assert_eq!(heads, want);
        assert!(text.contains("cronfleet_reloads_total{result=\"ok\"} 0\n"));
        assert!(text.contains("cronfleet_launch_lateness_seconds_bucket{le=\"1\"} 0\n"));
        assert!(text.ends_with("cronfleet_claim_statement_seconds_count 0\n"), "no # EOF");
    }
}
