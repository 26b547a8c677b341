//! The agent's Prometheus metrics, kept in memory and written in the text exposition format
//! (version 0.0.4) at `/metrics`.
//!
//! Counters and histograms are fed as runs end, slots are skipped and reloads happen; gauges
//! that describe the present (runs in flight, next fire times) are read at scrape time by the
//! caller and passed to [`Metrics::render`].

use std::{collections::BTreeMap, fmt::Write, sync::Mutex};

/// Upper bounds of the run duration buckets, in seconds.
const DURATION_BUCKETS: &[f64] =
    &[0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 4.0 * 3600.0];
/// Upper bounds of the claim statement buckets, in seconds.
const CLAIM_BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 2.0];
/// Upper bounds of the launch lateness buckets, in seconds.
const LATENESS_BUCKETS: &[f64] = &[0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0];

#[derive(Clone, Debug, Default)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, bounds: &[f64], value: f64) {
        if self.counts.is_empty() {
            self.counts = vec![0; bounds.len()];
        }
        for (i, bound) in bounds.iter().enumerate() {
            if value <= *bound {
                self.counts[i] += 1;
            }
        }
        self.sum += value;
        self.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str, bounds: &[f64]) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (i, bound) in bounds.iter().enumerate() {
            let n = self.counts.get(i).copied().unwrap_or(0);
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {n}");
        }
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}", self.count);
        let braces = if labels.is_empty() { String::new() } else { format!("{{{labels}}}") };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum);
        let _ = writeln!(out, "{name}_count{braces} {}", self.count);
    }
}

#[derive(Debug, Default)]
struct Inner {
    /// (task, outcome) → runs.
    runs: BTreeMap<(String, String), u64>,
    durations: BTreeMap<String, Histogram>,
    lateness: Histogram,
    /// How long claim statements took (shared store).
    claims: Histogram,
    /// (task, outcome: skipped or missed) → slots.
    not_run: BTreeMap<(String, String), u64>,
    last_success: BTreeMap<String, f64>,
    /// result → reloads.
    reloads: BTreeMap<&'static str, u64>,
    /// (channel, result) → alert deliveries.
    alerts: BTreeMap<(String, &'static str), u64>,
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
#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

/// Escapes a label value.
fn label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

impl Metrics {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A run ended: its outcome, how long it took, and when it ended (Unix seconds).
    pub fn run_ended(&self, task: &str, outcome: &str, seconds: Option<f64>, ended: f64) {
        let mut m = self.lock();
        *m.runs.entry((task.to_owned(), outcome.to_owned())).or_default() += 1;
        if let Some(s) = seconds {
            m.durations.entry(task.to_owned()).or_default().observe(DURATION_BUCKETS, s);
        }
        if outcome == "succeeded" {
            m.last_success.insert(task.to_owned(), ended);
        }
    }

    /// A run started this long after its slot.
    pub fn launched(&self, late_seconds: f64) {
        self.lock().lateness.observe(LATENESS_BUCKETS, late_seconds.max(0.0));
    }

    /// A claim statement took this long (from sending it to its answer).
    pub fn claimed(&self, seconds: f64) {
        self.lock().claims.observe(CLAIM_BUCKETS, seconds.max(0.0));
    }

    /// A slot was not run (`skipped` or `missed`).
    pub fn not_run(&self, task: &str, outcome: &str) {
        *self.lock().not_run.entry((task.to_owned(), outcome.to_owned())).or_default() += 1;
    }

    /// A reload happened (`ok`) or was refused (`error`).
    pub fn reloaded(&self, ok: bool) {
        *self.lock().reloads.entry(if ok { "ok" } else { "error" }).or_default() += 1;
    }

    /// An alert was delivered to a channel (`ok`) or given up on (`error`).
    pub fn alert_delivery(&self, channel: &str, ok: bool) {
        let result = if ok { "ok" } else { "error" };
        *self.lock().alerts.entry((channel.to_owned(), result)).or_default() += 1;
    }

    /// The metrics in Prometheus text format.
    pub fn render(&self, present: &Present) -> String {
        let m = self.lock();
        let mut out = String::new();
        let head = |out: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };
        head(&mut out, "cronfleet_runs_total", "counter", "Runs ended, by task and outcome.");
        for ((task, outcome), n) in &m.runs {
            let _ = writeln!(
                out,
                "cronfleet_runs_total{{task=\"{}\",outcome=\"{outcome}\"}} {n}",
                label(task)
            );
        }
        head(&mut out, "cronfleet_run_duration_seconds", "histogram", "How long runs took.");
        for (task, h) in &m.durations {
            let labels = format!("task=\"{}\"", label(task));
            h.render(&mut out, "cronfleet_run_duration_seconds", &labels, DURATION_BUCKETS);
        }
        head(
            &mut out,
            "cronfleet_launch_lateness_seconds",
            "histogram",
            "How long after its slot each run started.",
        );
        m.lateness.render(&mut out, "cronfleet_launch_lateness_seconds", "", LATENESS_BUCKETS);
        head(&mut out, "cronfleet_runs_running", "gauge", "Runs in flight, by task.");
        for (task, n) in &present.running {
            let _ = writeln!(out, "cronfleet_runs_running{{task=\"{}\"}} {n}", label(task));
        }
        head(
            &mut out,
            "cronfleet_task_next_run_timestamp_seconds",
            "gauge",
            "When each task fires next.",
        );
        for (task, at) in &present.next {
            let _ = writeln!(
                out,
                "cronfleet_task_next_run_timestamp_seconds{{task=\"{}\"}} {at}",
                label(task)
            );
        }
        head(
            &mut out,
            "cronfleet_task_last_success_timestamp_seconds",
            "gauge",
            "When each task last succeeded (since the agent started).",
        );
        for (task, at) in &m.last_success {
            let _ = writeln!(
                out,
                "cronfleet_task_last_success_timestamp_seconds{{task=\"{}\"}} {at}",
                label(task)
            );
        }
        head(
            &mut out,
            "cronfleet_slots_not_run_total",
            "counter",
            "Slots not run: skipped by a policy or missed.",
        );
        for ((task, outcome), n) in &m.not_run {
            let _ = writeln!(
                out,
                "cronfleet_slots_not_run_total{{task=\"{}\",outcome=\"{outcome}\"}} {n}",
                label(task)
            );
        }
        head(
            &mut out,
            "cronfleet_reloads_total",
            "counter",
            "Reloads of the task file, by result.",
        );
        for result in ["ok", "error"] {
            let n = m.reloads.get(result).copied().unwrap_or(0);
            let _ = writeln!(out, "cronfleet_reloads_total{{result=\"{result}\"}} {n}");
        }
        head(
            &mut out,
            "cronfleet_alert_deliveries_total",
            "counter",
            "Alert deliveries, by channel and result.",
        );
        for ((channel, result), n) in &m.alerts {
            let _ = writeln!(
                out,
                "cronfleet_alert_deliveries_total{{channel=\"{}\",result=\"{result}\"}} {n}",
                label(channel)
            );
        }
        head(&mut out, "cronfleet_tasks", "gauge", "Tasks this node runs.");
        let _ = writeln!(out, "cronfleet_tasks {}", present.tasks);
        if let Some((away, claims)) = present.fleet {
            head(
                &mut out,
                "cronfleet_database_away",
                "gauge",
                "1 while the shared database is away (run records are spooled locally).",
            );
            let _ = writeln!(out, "cronfleet_database_away {}", u8::from(away));
            head(
                &mut out,
                "cronfleet_claim_statements_total",
                "counter",
                "Claim statements sent to the shared database (each carries many claims).",
            );
            let _ = writeln!(out, "cronfleet_claim_statements_total {claims}");
            head(
                &mut out,
                "cronfleet_claim_statement_seconds",
                "histogram",
                "How long claim statements took, from sending to answer.",
            );
            m.claims.render(&mut out, "cronfleet_claim_statement_seconds", "", CLAIM_BUCKETS);
        }
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
}
