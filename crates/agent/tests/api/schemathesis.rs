//! schemathesis against a live agent: every check (server errors, status codes, content types,
//! headers and bodies against the OpenAPI document, schema-valid requests accepted and invalid
//! ones refused, auth, methods, use after delete...) over requests generated from the document,
//! then its stateful phase, which follows the document's links (create -> run -> output ->
//! delete). Zero failures.
//!
//! schemathesis is a Python program: `.ci/run` installs the pinned one
//! (`schemathesis-requirements.txt`) in a virtualenv, `~/.cache/cronfleet/schemathesis-VERSION`
//! (`$XDG_CACHE_HOME` if set), where this test finds it; `CRONFLEET_SCHEMATHESIS` names another
//! `st`. Without it the test is skipped, except under CI (`CI` set), where it fails. The run is
//! bounded (`MAX_EXAMPLES` per operation, and a deadline); its configuration, what a JSON
//! schema cannot say, is `schemathesis.toml`. `POST /api/v1/stop` is left out (it stops the
//! agent); the other tests cover it.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use super::Agent;

/// The pinned schemathesis and what it pulls in.
const REQUIREMENTS: &str = include_str!("schemathesis-requirements.txt");

/// The configuration.
const CONFIG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/api/schemathesis.toml");

/// Cases per operation and phase: about a minute on two cores (4,000 cases or so).
const MAX_EXAMPLES: &str = "100";

/// The run is a failure past this.
const DEADLINE: Duration = Duration::from_secs(600);

/// A fixed seed: a failure reproduces (`CRONFLEET_SCHEMATHESIS_SEED` tries others).
const SEED: &str = "1";

const TASKS: &str = r#"
[[task]]
name = "hello"
schedule = "@hourly"
command = "echo hello"

[[task]]
name = "slow"
schedule = "@yearly"
command = "echo started; sleep 5"
concurrency = "allow"
max_running = 3
"#;

/// The pinned version (`schemathesis==VERSION`).
fn version() -> &'static str {
    REQUIREMENTS
        .lines()
        .find_map(|l| l.strip_prefix("schemathesis=="))
        .expect("schemathesis is pinned")
        .trim()
}

/// Where `.ci/run` installs it.
fn installed() -> Option<PathBuf> {
    let cache = match std::env::var_os("XDG_CACHE_HOME") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(std::env::var_os("HOME")?).join(".cache"),
    };
    Some(cache.join(format!("cronfleet/schemathesis-{}/bin/st", version())))
}

fn schemathesis() -> Option<PathBuf> {
    if let Some(st) = std::env::var_os("CRONFLEET_SCHEMATHESIS") {
        return Some(st.into());
    }
    installed().filter(|st| st.exists())
}

/// The run's output from its first `from` (its errors and failures), else whole, up to
/// `limit` characters.
fn part(text: &str, from: &str, limit: usize) -> String {
    let start = text.find(from).or_else(|| text.find("= FAILURES =")).unwrap_or(0);
    text[start..].chars().take(limit).collect()
}

#[test]
fn schemathesis_finds_no_failure() {
    let Some(st) = schemathesis() else {
        let want = installed().map_or_else(String::new, |p| p.display().to_string());
        assert!(
            std::env::var_os("CI").is_none(),
            "schemathesis {} is missing ({want}): .ci/run installs it",
            version()
        );
        eprintln!("schemathesis {} is not installed ({want}): skipped", version());
        return;
    };
    let out = Command::new(&st).arg("--version").output().expect("schemathesis runs");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains(version()), "{}: {said} (the tests pin {})", st.display(), version());

    let agent = Agent::start("schemathesis", TASKS, &[]);
    let dir: &Path = &agent.dir;
    let scratch = dir.join("scratch");
    std::fs::create_dir_all(&scratch).unwrap();
    let report = dir.join("report.json");
    let seed = std::env::var("CRONFLEET_SCHEMATHESIS_SEED").unwrap_or_else(|_| SEED.to_owned());
    let log = dir.join("schemathesis.log");
    let mut child = Command::new(&st)
        .args(["--no-color", "--config-file", CONFIG, "run"])
        .arg(format!("{}/api/v1/openapi.json", agent.url))
        .args(["--header", &format!("Authorization: Bearer {}", agent.admin)])
        .args(["--checks", "all", "--max-examples", MAX_EXAMPLES, "--seed", &seed])
        .args(["--request-timeout", "30", "--report", "json", "--report-json-path"])
        .arg(&report)
        .env("CRONFLEET_SCRATCH", &scratch)
        .current_dir(&scratch)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::create(dir.join("schemathesis.err")).unwrap())
        .spawn()
        .expect("schemathesis starts");
    let began = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if began.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let errors = std::fs::read_to_string(dir.join("schemathesis.err")).unwrap_or_default();
    let agent_log = agent.stop();
    let Some(status) = status else {
        panic!("schemathesis ran over {DEADLINE:?}:\n{}", part(&text, "", 20_000));
    };
    assert!(
        status.success(),
        "schemathesis (seed {seed}) failed:\n{}\n{errors}",
        part(&text, "= ERRORS =", 60_000)
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(report["failures"], serde_json::json!([]), "{report}");
    assert_eq!(report["errors"], serde_json::json!([]), "{report}");
    // Every operation but stop was tested, in every phase; the stateful phase followed links.
    assert_eq!(report["operations"]["tested"], 18, "{}", report["operations"]);
    for phase in ["examples", "coverage", "fuzzing", "stateful"] {
        assert_eq!(report["phases"][phase]["status"], "success", "{phase}: {}", report["phases"]);
    }
    let generated = report["test_cases"]["generated"].as_u64().unwrap();
    assert!(generated > 1000, "only {generated} cases");
    let links: u64 = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("API Links:"))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    assert!(links >= 5, "the stateful phase followed {links} links:\n{}", part(&text, "", 3000));
    assert!(!agent_log.contains("panicked"), "{agent_log}");
    eprintln!("schemathesis {}: {generated} cases, {links} links followed, no failure", version());
}
