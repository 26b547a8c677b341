//! Alerts: a task that fails, times out, misses a slot, starts late or runs too long raises an
//! alert on its `notify` channels, once per incident, and a resolve message when it is over.
//!
//! Incidents are per task and kind: `failing` (failed or timed out, after `alert_after` in a
//! row; resolved by a success), `missed` (resolved by the next run), `late` (resolved by a
//! run on time) and `too_long` (resolved when that run ends). Each channel has a queue and a
//! worker that delivers with retries and backoff, so alerts never hold up scheduling; a channel
//! sends at most `max_per_minute` messages, drops the rest, and counts both in the metrics.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use base64::Engine;
use jiff::Timestamp;
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use serde_json::json;
use tokio::sync::mpsc;

use crate::{
    agent::Background,
    config::{AlertRules, Notifier, NotifierKind, Task},
    metrics::Metrics,
    store::{Outcome, RunRecord},
};

/// Messages waiting per channel; more are dropped (and counted).
const QUEUE: usize = 1000;
/// Delivery attempts per message.
const ATTEMPTS: u32 = 5;
/// The wait after the first failed attempt; it doubles.
const FIRST_RETRY: Duration = Duration::from_secs(1);

/// Whether an incident starts or ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// It starts.
    Firing,
    /// It is over.
    Resolved,
}

/// What an incident is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Runs fail or time out.
    Failing,
    /// Slots were missed.
    Missed,
    /// A run started late.
    Late,
    /// A run runs too long.
    TooLong,
}

impl Kind {
    /// The name in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Failing => "failing",
            Kind::Missed => "missed",
            Kind::Late => "late",
            Kind::TooLong => "too_long",
        }
    }
}

/// One message about an incident.
#[derive(Clone, Debug)]
pub struct Alert {
    /// Starts or ends.
    pub status: Status,
    /// About what.
    pub kind: Kind,
    /// The task.
    pub task: String,
    /// The node.
    pub node: String,
    /// The run it is about, if one.
    pub run_id: Option<String>,
    /// The slot it is about, if one.
    pub slot: Option<String>,
    /// The run's outcome, if it ended.
    pub outcome: Option<String>,
    /// One line for people.
    pub summary: String,
    /// When.
    pub at: Timestamp,
}

struct Channel {
    notifier: Notifier,
    queue: mpsc::Sender<Alert>,
}

#[derive(Default)]
struct State {
    channels: HashMap<String, Channel>,
    /// Task → its channels and rules.
    rules: HashMap<String, (Vec<String>, AlertRules)>,
    /// Failures in a row, per task.
    failures: HashMap<String, u32>,
    /// Open incidents: (task, kind) → the run that raised it.
    open: HashMap<(String, Kind), Option<String>>,
}

/// The alert engine of one agent.
pub struct Alerts {
    node: String,
    metrics: Arc<Metrics>,
    http: reqwest::Client,
    state: Mutex<State>,
    /// Where each channel's worker runs (it ends when its channel goes, or the agent stops).
    background: Background,
}

impl std::fmt::Debug for Alerts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Alerts").field("node", &self.node).finish_non_exhaustive()
    }
}

impl Alerts {
    /// An engine with no channels yet; its channels' workers run on `background`.
    pub fn new(node: &str, metrics: Arc<Metrics>, background: Background) -> Alerts {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Alerts { node: node.to_owned(), metrics, http, state: Mutex::default(), background }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes the channels and the tasks' rules of a (re)loaded task file. Channels that did not
    /// change keep their queue; open incidents of tasks still there stay open.
    pub fn configure(&self, notifiers: &[Notifier], tasks: &[Task]) {
        let mut st = self.lock();
        let mut channels = HashMap::new();
        for n in notifiers {
            let channel = match st.channels.remove(&n.name) {
                Some(c) if c.notifier == *n => c,
                _ => {
                    let (tx, rx) = mpsc::channel(QUEUE);
                    let worker = Worker {
                        notifier: n.clone(),
                        http: self.http.clone(),
                        metrics: self.metrics.clone(),
                        sent: VecDeque::new(),
                    };
                    self.background.spawn(worker.run(rx));
                    Channel { notifier: n.clone(), queue: tx }
                }
            };
            channels.insert(n.name.clone(), channel);
        }
        st.channels = channels;
        st.rules = tasks
            .iter()
            .filter(|t| !t.notify.is_empty())
            .map(|t| (t.name.clone(), (t.notify.clone(), t.alerts.clone())))
            .collect();
        let State { rules, open, failures, .. } = &mut *st;
        open.retain(|(task, _), _| rules.contains_key(task));
        failures.retain(|task, _| rules.contains_key(task));
    }

    /// The notifiers' URLs and signing secrets: masked in every run's output.
    pub fn secret_values(&self) -> Vec<String> {
        let st = self.lock();
        let notifiers = st.channels.values().map(|c| &c.notifier);
        notifiers.flat_map(|n| std::iter::once(n.url.clone()).chain(n.secret.clone())).collect()
    }

    fn rules(&self, task: &str) -> Option<AlertRules> {
        self.lock().rules.get(task).map(|(_, r)| r.clone())
    }

    /// Opens an incident (and sends its alert) unless one of this kind is open.
    fn fire(&self, task: &str, kind: Kind, run: Option<&RunRecord>, summary: String) {
        let mut st = self.lock();
        let key = (task.to_owned(), kind);
        if st.open.contains_key(&key) {
            return;
        }
        st.open.insert(key, run.map(|r| r.id.clone()));
        self.send(&st, task, Status::Firing, kind, run, summary);
    }

    /// Closes an incident (and sends its resolve message) if one is open.
    fn resolve(&self, task: &str, kind: Kind, run: Option<&RunRecord>, summary: String) {
        let mut st = self.lock();
        if st.open.remove(&(task.to_owned(), kind)).is_none() {
            return;
        }
        self.send(&st, task, Status::Resolved, kind, run, summary);
    }

    fn send(
        &self,
        st: &State,
        task: &str,
        status: Status,
        kind: Kind,
        run: Option<&RunRecord>,
        summary: String,
    ) {
        let Some((notify, _)) = st.rules.get(task) else { return };
        let alert = Alert {
            status,
            kind,
            task: task.to_owned(),
            node: self.node.clone(),
            run_id: run.map(|r| r.id.clone()),
            slot: run.map(|r| r.slot.clone()),
            outcome: run.map(|r| r.outcome.as_str().to_owned()),
            summary,
            at: crate::clock::now(),
        };
        tracing::warn!(task, kind = kind.as_str(), status = ?status, summary = %alert.summary, "alert");
        for name in notify {
            let Some(channel) = st.channels.get(name) else { continue };
            if channel.queue.try_send(alert.clone()).is_err() {
                tracing::error!(channel = %name, "alert queue full: alert dropped");
                self.metrics.alert_delivery(name, false);
            }
        }
    }

    /// A run started `late` after its slot.
    pub fn started(&self, record: &RunRecord, late: Duration) {
        let Some(rules) = self.rules(&record.task) else { return };
        let task = &record.task;
        self.resolve(
            task,
            Kind::Missed,
            Some(record),
            format!("task {task} runs again: {}", record.id),
        );
        let Some(limit) = rules.late.and_then(|l| Duration::try_from(l).ok()) else { return };
        if late > limit {
            let summary = format!(
                "task {task} on {} started {:.1}s after its slot {} (more than {limit:?})",
                self.node,
                late.as_secs_f64(),
                record.slot
            );
            self.fire(task, Kind::Late, Some(record), summary);
        } else {
            let summary = format!("task {task} on {} starts on time again", self.node);
            self.resolve(task, Kind::Late, Some(record), summary);
        }
    }

    /// How long a run of `task` may run before a `too_long` alert.
    pub fn too_long(&self, task: &str) -> Option<Duration> {
        self.rules(task)?.too_long.and_then(|d| Duration::try_from(d).ok())
    }

    /// A run is still running after its task's `too_long`.
    pub fn running_long(&self, record: &RunRecord, limit: Duration) {
        let summary = format!(
            "task {} on {}: run {} is still running after {limit:?}",
            record.task, self.node, record.id
        );
        self.fire(&record.task, Kind::TooLong, Some(record), summary);
    }

    /// A run ended.
    pub fn ended(&self, record: &RunRecord) {
        let Some(rules) = self.rules(&record.task) else { return };
        let task = &record.task;
        let long = self.lock().open.get(&(task.clone(), Kind::TooLong)).cloned();
        if long == Some(Some(record.id.clone())) {
            let took = record
                .duration_ms
                .map_or(String::new(), |ms| format!(" after {:.1}s", ms as f64 / 1000.0));
            let summary = format!("task {task} on {}: run {} ended{took}", self.node, record.id);
            self.resolve(task, Kind::TooLong, Some(record), summary);
        }
        match record.outcome {
            Outcome::Succeeded => {
                self.lock().failures.remove(task);
                let summary =
                    format!("task {task} on {} recovered: run {} succeeded", self.node, record.id);
                self.resolve(task, Kind::Failing, Some(record), summary);
            }
            Outcome::Failed | Outcome::TimedOut => {
                let in_a_row = {
                    let mut st = self.lock();
                    let n = st.failures.entry(task.clone()).or_default();
                    *n += 1;
                    *n
                };
                let wanted = match record.outcome {
                    Outcome::TimedOut => rules.timed_out,
                    _ => rules.failed,
                };
                if wanted && in_a_row >= rules.after {
                    let how = match (record.outcome, record.exit_code, record.signal) {
                        (Outcome::TimedOut, _, _) => "timed out".to_owned(),
                        (_, Some(code), _) => format!("failed with exit code {code}"),
                        (_, None, Some(sig)) => format!("failed: killed by signal {sig}"),
                        _ => format!(
                            "failed: {}",
                            record.reason.as_deref().unwrap_or("could not start")
                        ),
                    };
                    let times = if in_a_row > 1 {
                        format!(" ({in_a_row} in a row)")
                    } else {
                        String::new()
                    };
                    let summary =
                        format!("task {task} on {} {how}{times}: run {}", self.node, record.id);
                    self.fire(task, Kind::Failing, Some(record), summary);
                }
            }
            _ => {}
        }
    }

    /// A slot was not run because the agent was down or stalled.
    pub fn missed(&self, record: &RunRecord) {
        let Some(rules) = self.rules(&record.task) else { return };
        if rules.missed {
            let reason = record.reason.as_deref().unwrap_or("the agent could not run it");
            let summary = format!(
                "task {} on {} missed its slot {}: {reason}",
                record.task, self.node, record.slot
            );
            self.fire(&record.task, Kind::Missed, Some(record), summary);
        }
    }
}

/// Delivers one channel's alerts, in order.
struct Worker {
    notifier: Notifier,
    http: reqwest::Client,
    metrics: Arc<Metrics>,
    /// When the messages of the last minute were sent.
    sent: VecDeque<Instant>,
}

impl Worker {
    async fn run(mut self, mut queue: mpsc::Receiver<Alert>) {
        while let Some(alert) = queue.recv().await {
            let now = Instant::now();
            while self
                .sent
                .front()
                .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(60))
            {
                self.sent.pop_front();
            }
            let name = &self.notifier.name;
            if self.sent.len() >= self.notifier.max_per_minute as usize {
                tracing::warn!(channel = %name, task = %alert.task, "alert rate limit reached: dropped");
                self.metrics.alert_delivery(name, false);
                continue;
            }
            self.sent.push_back(now);
            let ok = self.deliver(&alert).await;
            self.metrics.alert_delivery(name, ok);
        }
    }

    async fn deliver(&self, alert: &Alert) -> bool {
        let name = &self.notifier.name;
        let mut wait = FIRST_RETRY;
        for attempt in 1..=ATTEMPTS {
            match self.post(alert).await {
                Ok(()) => return true,
                Err(why) if attempt == ATTEMPTS => {
                    tracing::error!(channel = %name, task = %alert.task, attempts = ATTEMPTS, error = %why, "alert not delivered");
                }
                Err(why) => {
                    tracing::warn!(channel = %name, attempt, error = %why, "alert delivery failed; retrying");
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                }
            }
        }
        false
    }

    async fn post(&self, alert: &Alert) -> Result<(), DeliveryError> {
        let (url, body, signature) = render(&self.notifier, alert, Timestamp::now());
        let mut request = self.http.post(url).header("content-type", "application/json");
        if let Some(signature) = signature {
            request = request.header("x-cronfleet-signature", signature);
        }
        // The URL may hold a credential (Slack, DingTalk): errors are reported without it.
        let response =
            request.body(body).send().await.map_err(|e| DeliveryError::Send(e.without_url()))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if !status.is_success() {
            let text = text.chars().take(200).collect();
            return Err(DeliveryError::Status { status: status.as_u16(), text });
        }
        // DingTalk answers 200 with an error code in the body.
        if self.notifier.kind == NotifierKind::DingTalk {
            let code = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v["errcode"].as_i64());
            if code.is_some_and(|c| c != 0) {
                return Err(DeliveryError::Refused { text });
            }
        }
        Ok(())
    }
}

/// Why a channel did not take an alert.
#[derive(Debug, thiserror::Error)]
enum DeliveryError {
    /// No answer (the URL, which may hold a credential, left out).
    #[error("{0}")]
    Send(reqwest::Error),
    /// An answer other than success (its body's start).
    #[error("HTTP {}: {text}", display_status(*status))]
    Status {
        /// The HTTP status.
        status: u16,
        /// The start of the answer's body.
        text: String,
    },
    /// DingTalk answers 200 with an error code in the body.
    #[error("DingTalk refused the message: {text}")]
    Refused {
        /// The answer's body.
        text: String,
    },
}

/// A status as reqwest shows it (`404 Not Found`).
fn display_status(status: u16) -> String {
    reqwest::StatusCode::from_u16(status).map_or_else(|_| status.to_string(), |s| s.to_string())
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    ring::hmac::sign(&key, message).as_ref().to_vec()
}

/// The text of an alert for people.
fn headline(alert: &Alert) -> String {
    let status = match alert.status {
        Status::Firing => "FIRING",
        Status::Resolved => "RESOLVED",
    };
    format!("[{status}] cronfleet: {}", alert.summary)
}

/// The URL, body and signature header of an alert for a channel, at `now` (DingTalk signs the
/// time).
pub fn render(
    notifier: &Notifier,
    alert: &Alert,
    now: Timestamp,
) -> (String, String, Option<String>) {
    match notifier.kind {
        NotifierKind::Webhook => {
            let body = json!({
                "status": match alert.status { Status::Firing => "firing", Status::Resolved => "resolved" },
                "kind": alert.kind.as_str(),
                "task": alert.task,
                "node": alert.node,
                "run_id": alert.run_id,
                "slot": alert.slot,
                "outcome": alert.outcome,
                "summary": alert.summary,
                "text": headline(alert),
                "at": alert.at.to_string(),
            })
            .to_string();
            let signature = notifier.secret.as_ref().map(|secret| {
                let mac = hmac_sha256(secret.as_bytes(), body.as_bytes());
                format!("sha256={}", hex::encode(mac))
            });
            (notifier.url.clone(), body, signature)
        }
        NotifierKind::Slack => {
            (notifier.url.clone(), json!({ "text": headline(alert) }).to_string(), None)
        }
        NotifierKind::DingTalk => {
            let body =
                json!({ "msgtype": "text", "text": { "content": headline(alert) } }).to_string();
            let url = match &notifier.secret {
                // https://open.dingtalk.com/document/robots/customize-robot-security-settings
                Some(secret) => {
                    let ms = now.as_millisecond();
                    let mac = hmac_sha256(secret.as_bytes(), format!("{ms}\n{secret}").as_bytes());
                    let sign = base64::engine::general_purpose::STANDARD.encode(mac);
                    // Of base64's characters, `+`, `/` and `=` are the ones to encode.
                    let sign = utf8_percent_encode(&sign, NON_ALPHANUMERIC);
                    let sep = if notifier.url.contains('?') { '&' } else { '?' };
                    format!("{}{sep}timestamp={ms}&sign={sign}", notifier.url)
                }
                None => notifier.url.clone(),
            };
            (url, body, None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert() -> Alert {
        Alert {
            status: Status::Firing,
            kind: Kind::Failing,
            task: "backup".into(),
            node: "web-1".into(),
            run_id: Some("backup@1#1".into()),
            slot: Some("2026-11-23T00:00:00Z".into()),
            outcome: Some("failed".into()),
            summary: "task backup on web-1 failed with exit code 3: run backup@1#1".into(),
            at: Timestamp::from_second(1_795_000_000).unwrap(),
        }
    }

    fn notifier(kind: NotifierKind, secret: Option<&str>) -> Notifier {
        Notifier {
            name: "ops".into(),
            kind,
            url: "https://example.com/hook?access_token=abc".into(),
            secret: secret.map(str::to_owned),
            max_per_minute: 20,
        }
    }

    #[test]
    fn formats_and_signatures() {
        let (url, body, sig) =
            render(&notifier(NotifierKind::Webhook, Some("s3cret")), &alert(), Timestamp::now());
        assert_eq!(url, "https://example.com/hook?access_token=abc");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["status"], "firing");
        assert_eq!(v["task"], "backup");
        // The body is fixed (the alert's time is), so is its signature: worked out with
        // Python's hmac module, not with the code under test.
        assert_eq!(
            sig.unwrap(),
            "sha256=5f514fbbbd70541649f6e82df5c94bfbcd5f21ff746910419bd812ed515ac14c"
        );

        let (_, body, sig) =
            render(&notifier(NotifierKind::Slack, None), &alert(), Timestamp::now());
        assert_eq!(
            body,
            r#"{"text":"[FIRING] cronfleet: task backup on web-1 failed with exit code 3: run backup@1#1"}"#
        );
        assert!(sig.is_none());

        // DingTalk's own example shape: timestamp in ms, sign = base64(HMAC-SHA256), URL-encoded.
        let now = Timestamp::from_millisecond(1_700_000_000_123).unwrap();
        let (url, body, _) =
            render(&notifier(NotifierKind::DingTalk, Some("SECabc")), &alert(), now);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["msgtype"], "text");
        assert!(v["text"]["content"]
            .as_str()
            .unwrap()
            .starts_with("[FIRING] cronfleet: task backup"));
        let mac = hmac_sha256(b"SECabc", b"1700000000123\nSECabc");
        let sign = base64::engine::general_purpose::STANDARD.encode(mac);
        let sign = sign.replace('+', "%2B").replace('/', "%2F").replace('=', "%3D");
        // Also worked out with Python (hmac, base64, urllib.parse.quote).
        assert_eq!(sign, "IqXBU%2FaLfwMA3S%2FtDcfRmHx5vWHw9Y1aOgFLBr1Ti9w%3D");
        assert_eq!(
            url,
            format!(
                "https://example.com/hook?access_token=abc&timestamp=1700000000123&sign={sign}"
            )
        );
    }
}
