//! Alerts delivered to a real local HTTP receiver, in each format: generic webhook (signed),
//! Slack, DingTalk (signed): from a real agent (failures, recovery, runs too long, retries),
//! and from the alert engine directly (late starts, missed slots, the rate limit).

use std::{
    process::{Child, Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use base64::Engine;
use cronfleet::{
    alerts::Alerts,
    config,
    metrics::{Metrics, Present},
    store::{Outcome, RunRecord},
};

// Each test binary uses its own part of the support module.
#[allow(dead_code)]
#[path = "../support/http.rs"]
mod http;

use http::{Received, Receiver};

/// A receiver for the alert channels: the first `fail_first` requests to `/webhook...` get a
/// 500; DingTalk gets its JSON answer.
fn channels(fail_first: usize) -> Receiver {
    let mut failures = 0;
    Receiver::start(move |r| {
        if r.target.starts_with("/webhook") && failures < fail_first {
            failures += 1;
            ("500 Internal Server Error", "oops".into())
        } else if r.target.starts_with("/ding") {
            ("200 OK", r#"{"errcode":0,"errmsg":"ok"}"#.into())
        } else {
            ("200 OK", "ok".into())
        }
    })
}

fn hmac(key: &[u8], message: &[u8]) -> Vec<u8> {
    ring::hmac::sign(&ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key), message).as_ref().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_real_agent_alerts_on_every_channel_once_per_incident() {
    let receiver = channels(1);
    let dir = std::env::temp_dir().join(format!("cronfleet-alerts-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let port = receiver.port;
    let tasks = format!(
        r#"
[defaults]
notify = ["hook", "slack", "ding"]

[[notifier]]
name = "hook"
kind = "webhook"
url = "http://127.0.0.1:{port}/webhook"
secret = "${{CRONFLEET_TEST_HOOK_SECRET}}"

[[notifier]]
name = "slack"
kind = "slack"
url = "http://127.0.0.1:{port}/slack/T000/B000"

[[notifier]]
name = "ding"
kind = "dingtalk"
url = "http://127.0.0.1:{port}/ding/robot/send?access_token=tok"
secret = "SECtest"

[[task]]
name = "flaky"
schedule = "* * * * * *"
command = "test -f {dir}/ok || exit 3"
alert_after = 2

[[task]]
name = "slowpoke"
schedule = "@yearly"
command = "sleep 2.5"
notify = ["hook"]
too_long = "1s"
"#,
        dir = dir.display()
    );
    std::fs::write(dir.join("tasks.toml"), tasks).unwrap();
    let state = dir.join("state");
    let _agent = Agent(
        Command::new(env!("CARGO_BIN_EXE_cronfleet"))
            .args([
                "agent",
                "--config",
                dir.join("tasks.toml").to_str().unwrap(),
                "--node",
                "alert-node",
            ])
            .args(["--listen", "127.0.0.1:0", "--state-dir", state.to_str().unwrap()])
            .env("CRONFLEET_TEST_HOOK_SECRET", "whsec-123")
            .stderr(std::fs::File::create(dir.join("agent.log")).unwrap())
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );

    // Failing: one alert per channel after 2 failures in a row; the webhook's first delivery
    // got a 500 and was retried.
    let hook = receiver.wait("/webhook", "a firing alert, retried", 20, |got| {
        got.iter().filter(|r| r.json()["status"] == "firing").count() >= 2
    });
    let firing: Vec<&Received> = hook.iter().filter(|r| r.json()["status"] == "firing").collect();
    let alert = firing.last().unwrap().json();
    assert_eq!(alert["kind"], "failing");
    assert_eq!(alert["task"], "flaky");
    assert_eq!(alert["node"], "alert-node");
    assert_eq!(alert["outcome"], "failed");
    let summary = alert["summary"].as_str().unwrap();
    assert!(summary.contains("failed with exit code 3 (2 in a row)"), "{summary}");
    assert_eq!(firing.len(), 2, "one 500, then one retry: {hook:#?}");
    assert_eq!(firing[0].body, firing[1].body, "the retry sends the same alert");
    let signature = firing[1].header("x-cronfleet-signature").unwrap();
    assert_eq!(
        signature,
        format!("sha256={}", hex(&hmac(b"whsec-123", firing[1].body.as_bytes())))
    );

    let slack = receiver.wait("/slack", "a slack message", 10, |got| !got.is_empty());
    let text = slack[0].json()["text"].as_str().unwrap().to_owned();
    assert!(
        text.starts_with("[FIRING] cronfleet: task flaky on alert-node failed with exit code 3"),
        "{text}"
    );

    let ding = receiver.wait("/ding", "a dingtalk message", 10, |got| !got.is_empty());
    let msg = ding[0].json();
    assert_eq!(msg["msgtype"], "text");
    assert!(msg["text"]["content"].as_str().unwrap().starts_with("[FIRING] cronfleet: task flaky"));
    let query = ding[0].target.split_once('?').unwrap().1;
    let param = |k: &str| {
        query.split('&').find_map(|kv| kv.strip_prefix(&format!("{k}="))).unwrap().to_owned()
    };
    assert_eq!(param("access_token"), "tok");
    let ts = param("timestamp");
    let expected = base64::engine::general_purpose::STANDARD
        .encode(hmac(b"SECtest", format!("{ts}\nSECtest").as_bytes()));
    let sign = param("sign").replace("%2B", "+").replace("%2F", "/").replace("%3D", "=");
    assert_eq!(sign, expected);
    let age = jiff::Timestamp::now().as_millisecond() - ts.parse::<i64>().unwrap();
    assert!((0..60_000).contains(&age), "DingTalk wants a fresh timestamp");

    // Still failing: no second alert. Then it recovers: one resolve message per channel.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(receiver.at("/slack").len(), 1, "one alert per incident");
    std::fs::write(dir.join("ok"), "").unwrap();
    let hook = receiver.wait("/webhook", "a resolve message", 10, |got| {
        got.iter().any(|r| r.json()["status"] == "resolved")
    });
    let resolved = hook.iter().find(|r| r.json()["status"] == "resolved").unwrap().json();
    assert_eq!(resolved["kind"], "failing");
    assert!(resolved["summary"].as_str().unwrap().contains("recovered"), "{resolved}");
    receiver.wait("/slack", "slack resolve", 10, |got| got.len() == 2);
    receiver.wait("/ding", "dingtalk resolve", 10, |got| got.len() == 2);

    // Running too long: an alert while it runs, resolved when it ends.
    let url = std::fs::read_to_string(state.join("api-addr")).unwrap();
    let token = std::fs::read_to_string(state.join("api-token")).unwrap();
    let r = reqwest::blocking::Client::new()
        .post(format!("{}/api/v1/tasks/slowpoke/run", url.trim()))
        .bearer_auth(token.trim())
        .send()
        .unwrap();
    assert_eq!(r.status(), 202);
    let began = Instant::now();
    let hook = receiver.wait("/webhook", "a too_long alert", 10, |got| {
        got.iter().any(|r| r.json()["kind"] == "too_long")
    });
    assert!(began.elapsed() < Duration::from_millis(2400), "fired while the run still ran");
    let long = hook.iter().find(|r| r.json()["kind"] == "too_long").unwrap().json();
    assert_eq!(long["status"], "firing");
    assert!(long["summary"].as_str().unwrap().contains("still running after 1s"), "{long}");
    let hook = receiver.wait("/webhook", "too_long resolved", 10, |got| {
        got.iter().any(|r| r.json()["kind"] == "too_long" && r.json()["status"] == "resolved")
    });
    assert_eq!(hook.iter().filter(|r| r.json()["kind"] == "too_long").count(), 2);
    // slowpoke notifies only `hook`.
    assert!(receiver.at("/slack").iter().all(|r| !r.body.contains("slowpoke")));

    let metrics = reqwest::blocking::Client::new()
        .get(format!("{}/metrics", url.trim()))
        .bearer_auth(token.trim())
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        metrics.contains("cronfleet_alert_deliveries_total{channel=\"slack\",result=\"ok\"} 2"),
        "{metrics}"
    );
}

fn record(task: &str, id: &str, outcome: Outcome) -> RunRecord {
    let slot = jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC);
    RunRecord::new(id.to_owned(), task, &slot, 1, "n1", outcome)
}

#[tokio::test]
async fn late_starts_missed_slots_and_the_rate_limit() {
    let receiver = channels(0);
    let text = format!(
        r#"
[[notifier]]
name = "hook"
kind = "webhook"
url = "http://127.0.0.1:{}/webhook"
max_per_minute = 3

[[task]]
name = "t"
schedule = "@hourly"
command = "true"
notify = ["hook"]
late_after = "30s"
alert_on = ["missed", "late"]
"#,
        receiver.port
    );
    let set = config::parse(std::path::Path::new("t.toml"), &text).unwrap();
    let metrics = Arc::new(Metrics::default());
    let alerts = Alerts::new("n1", metrics.clone(), cronfleet::agent::Background::default());
    alerts.configure(&set.notifiers, &set.tasks);

    // Late by 45 s: an alert; on time again: resolved. A second late start in the same incident
    // says nothing.
    alerts.started(&record("t", "t@1#1", Outcome::Running), Duration::from_secs(45));
    alerts.started(&record("t", "t@2#1", Outcome::Running), Duration::from_secs(50));
    alerts.started(&record("t", "t@3#1", Outcome::Running), Duration::from_millis(3));
    // Failures are not in alert_on: nothing.
    alerts.ended(&record("t", "t@3#1", Outcome::Failed));
    let got = tokio::task::spawn_blocking(move || {
        let got = receiver.wait("/webhook", "late and resolved", 10, |got| got.len() >= 2);
        (receiver, got)
    })
    .await
    .unwrap();
    let (receiver, got) = got;
    let a = got[0].json();
    assert_eq!((a["kind"].as_str(), a["status"].as_str()), (Some("late"), Some("firing")));
    assert!(a["summary"].as_str().unwrap().contains("started 45.0s after its slot"), "{a}");
    let b = got[1].json();
    assert_eq!((b["kind"].as_str(), b["status"].as_str()), (Some("late"), Some("resolved")));

    // A missed slot: an alert, resolved by the next run. That is 4 messages in a minute: the
    // rate limit (3) drops the 4th.
    let mut missed = RunRecord::not_run(
        "t",
        &jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC),
        Outcome::Missed,
        "slots passed while the agent was down".into(),
        "n1",
        false,
    );
    missed.task = "t".into();
    alerts.missed(&missed);
    alerts.started(&record("t", "t@4#1", Outcome::Running), Duration::from_millis(1));
    let receiver = tokio::task::spawn_blocking(move || {
        receiver.wait("/webhook", "the missed alert", 10, |got| got.len() >= 3);
        std::thread::sleep(Duration::from_millis(500));
        receiver
    })
    .await
    .unwrap();
    let got = receiver.at("/webhook");
    assert_eq!(got.len(), 3, "{got:#?}");
    let c = got[2].json();
    assert_eq!((c["kind"].as_str(), c["status"].as_str()), (Some("missed"), Some("firing")));
    assert!(c["summary"].as_str().unwrap().contains("missed its slot"));
    let text = metrics.render(&Present::default());
    assert!(
        text.contains("cronfleet_alert_deliveries_total{channel=\"hook\",result=\"ok\"} 3"),
        "{text}"
    );
    assert!(
        text.contains("cronfleet_alert_deliveries_total{channel=\"hook\",result=\"error\"} 1"),
        "{text}"
    );
}

#[test]
fn notifier_errors_name_file_line_and_field() {
    let text = r#"
[[notifier]]
name = "ops"
kind = "teams"
url = "ftp://x"

[[notifier]]
name = "ding"
kind = "dingtalk"
url = "https://oapi.dingtalk.com/robot/send?access_token=${CRONFLEET_TEST_SURELY_UNSET}"

[[notifier]]
name = "s"
kind = "slack"
url = "https://hooks.slack.com/x"
secret = "abc"

[[task]]
name = "t"
schedule = "@daily"
command = "true"
notify = ["ops", "pagerduty"]
alert_on = ["late", "exploded"]
"#;
    let errors = config::parse(std::path::Path::new("tasks.toml"), text).unwrap_err().to_string();
    for expected in [
        "tasks.toml:4:8: field `kind`: expected one of webhook, slack, dingtalk, not \"teams\"",
        "tasks.toml:5:7: field `url`: expected an http:// or https:// URL",
        "tasks.toml:10:7: field `url`: environment variable CRONFLEET_TEST_SURELY_UNSET is not set on this machine",
        "tasks.toml:16:10: field `secret`: Slack incoming webhooks are not signed: remove the secret",
        "tasks.toml:22:18: task \"t\", field `notify`: no notifier named \"pagerduty\" (notifiers: ops, ding, s)",
        "tasks.toml:23:12: task \"t\", field `alert_on`: \"late\" needs late_after: how late is late",
        "tasks.toml:23:21: task \"t\", field `alert_on`: \"exploded\": expected some of failed, timed_out, missed, late, too_long",
    ] {
        assert!(errors.contains(expected), "missing {expected:?} in:\n{errors}");
    }
}
