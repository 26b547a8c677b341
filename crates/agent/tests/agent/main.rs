//! The agent as a real process: slots, reloads, targeting and stopping, observed through what
//! its tasks write. These wait in real time (a few seconds each): the agent runs real processes
//! on the wall clock.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use nix::{
    sys::signal::{kill, Signal},
    unistd::Pid,
};

struct Agent {
    child: Child,
    dir: PathBuf,
}

/// An empty directory for agent `name`.
fn agent_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cronfleet-agent-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

impl Agent {
    /// Runs `command` (an agent) with its log in `dir`.
    fn spawn(dir: PathBuf, mut command: Command) -> Agent {
        let child = command
            .stderr(std::fs::File::create(dir.join("agent.log")).unwrap())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        Agent { child, dir }
    }

    fn start(name: &str, tasks: &str, extra: &[&str]) -> Agent {
        let dir = agent_dir(name);
        std::fs::write(dir.join("tasks.toml"), tasks.replace("DIR", dir.to_str().unwrap()))
            .unwrap();
        let mut command = bin();
        command
            .args(["agent", "--config", dir.join("tasks.toml").to_str().unwrap()])
            .args(if extra.contains(&"--node") { &[][..] } else { &["--node", "test-node"][..] })
            .args(extra)
            // Each agent its own history, unless the test shares one.
            .args(if extra.contains(&"--state-dir") {
                vec![]
            } else {
                vec!["--state-dir".to_owned(), dir.join("state").display().to_string()]
            });
        Agent::spawn(dir, command)
    }

    fn signal(&self, sig: Signal) {
        kill(Pid::from_raw(self.child.id() as i32), sig).unwrap();
    }

    fn rewrite(&self, tasks: &str) {
        std::fs::write(
            self.dir.join("tasks.toml"),
            tasks.replace("DIR", self.dir.to_str().unwrap()),
        )
        .unwrap();
        self.signal(Signal::SIGHUP);
    }

    fn lines(&self, file: &str) -> Vec<String> {
        std::fs::read_to_string(self.dir.join(file))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("agent.log")).unwrap_or_default()
    }

    /// SIGTERM, then the exit code and how long stopping took.
    fn stop(self) -> (Option<i32>, Duration, String) {
        self.signal(Signal::SIGTERM);
        self.stop_after_signal()
    }

    /// Waits for the agent to exit (after a signal sent already).
    fn stop_after_signal(mut self) -> (Option<i32>, Duration, String) {
        let began = Instant::now();
        let status = self.child.wait().unwrap();
        (status.code(), began.elapsed(), self.log())
    }
}

/// A test that fails midway leaves no agent running.
impl Drop for Agent {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The binary, with the API on a free port (agents of parallel tests must not share 7070).
fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cronfleet"));
    c.env("CRONFLEET_LISTEN", "127.0.0.1:0");
    c
}

/// The process no longer runs: no such pid, or a zombie waiting to be reaped.
fn gone(pid: &str) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.is_empty() || stat.rsplit(") ").next().is_some_and(|state| state.starts_with('Z'))
}

fn sleep(secs: f64) {
    std::thread::sleep(Duration::from_secs_f64(secs));
}

/// Waits until `done` holds, checking every 100 ms; panics naming `what` after `limit`.
fn wait_for(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let began = Instant::now();
    while !done() {
        assert!(began.elapsed() < limit, "no {what} within {limit:?}");
        sleep(0.1);
    }
}

const TICK: &str = r#"
[[task]]
name = "tick"
schedule = "* * * * * *"
command = "echo \"VERSION $CRONFLEET_SCHEDULED_AT $CRONFLEET_TASK $CRONFLEET_NODE\" >> DIR/out"
"#;

#[test]
fn each_slot_runs_once_across_reloads() {
    let agent = Agent::start("slots", &TICK.replace("VERSION", "v1"), &[]);
    sleep(2.6);
    agent.rewrite(&TICK.replace("VERSION", "v2"));
    sleep(2.0);
    agent.rewrite("this is not TOML");
    sleep(2.0);
    let lines = agent.lines("out");
    let (code, _, log) = agent.stop();
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("reload failed; keeping the previous tasks"), "{log}");
    assert!(log.contains("tasks.toml:1:6: invalid TOML"), "{log}");
    // Consecutive seconds, none twice, none missing; v1 before v2; v2 after the bad reload.
    let slots: Vec<jiff::Timestamp> =
        lines.iter().map(|l| l.split(' ').nth(1).unwrap().parse().unwrap()).collect();
    assert!(slots.len() >= 5, "{lines:?}");
    for w in slots.windows(2) {
        assert_eq!(w[1].as_second() - w[0].as_second(), 1, "{lines:?}");
    }
    let versions: Vec<&str> = lines.iter().map(|l| &l[..2]).collect();
    let first_v2 = versions.iter().position(|v| *v == "v2").expect("v2 ran");
    assert!(
        versions[..first_v2].iter().all(|v| *v == "v1")
            && versions[first_v2..].iter().all(|v| *v == "v2"),
        "{lines:?}"
    );
    assert!(lines.len() - first_v2 >= 3, "v2 kept running after the bad reload: {lines:?}");
    assert!(lines.iter().all(|l| l.ends_with(" tick test-node")), "{lines:?}");
}

#[test]
fn only_tasks_meant_for_this_host_run() {
    let tasks = r#"
[[task]]
name = "mine-by-glob"
schedule = "* * * * * *"
command = "echo glob >> DIR/out"
hosts = ["test-*"]

[[task]]
name = "other-host"
schedule = "* * * * * *"
command = "echo other >> DIR/out"
hosts = ["db-*", "10.255.255.0/24"]

[[task]]
name = "needs-tag"
schedule = "* * * * * *"
command = "echo tagged >> DIR/out"
tags = ["db"]

[[task]]
name = "needs-missing-tag"
schedule = "* * * * * *"
command = "echo missing >> DIR/out"
tags = ["db", "gpu"]

[[task]]
name = "disabled"
schedule = "* * * * * *"
command = "echo disabled >> DIR/out"
enabled = false
"#;
    let agent = Agent::start("targeting", tasks, &["--tag", "db"]);
    sleep(2.5);
    let mut seen = agent.lines("out");
    let (code, _, log) = agent.stop();
    assert_eq!(code, Some(0), "{log}");
    seen.sort();
    seen.dedup();
    assert_eq!(seen, ["glob", "tagged"], "{log}");
}

#[test]
fn stop_waits_for_runs_then_kills_their_groups() {
    let tasks = r#"
[[task]]
name = "long"
schedule = "* * * * * *"
command = "echo $$ >> DIR/pids; sleep 100"
"#;
    let agent = Agent::start("stop", tasks, &["--shutdown-grace", "1s"]);
    sleep(1.6);
    let pids = agent.lines("pids");
    let (code, took, log) = agent.stop();
    assert_eq!(code, Some(0), "{log}");
    assert!(took < Duration::from_secs(5), "stopping took {took:?}");
    assert!(log.contains("outcome=\"killed\""), "{log}");
    assert!(!pids.is_empty());
    for pid in pids {
        assert!(gone(&pid), "run {pid} survived");
    }
}

#[test]
fn an_invalid_file_at_start_is_exit_2_with_the_errors() {
    let dir = std::env::temp_dir().join(format!("cronfleet-agent-{}-invalid", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("tasks.toml");
    std::fs::write(&file, "[[task]]\nname = \"x\"\nschedule = \"* * *\"\ncommand = \"true\"\n")
        .unwrap();
    let out = bin().args(["agent", "--config"]).arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("tasks.toml:3:")
            && err.contains("field `schedule`")
            && err.contains("expected 5 fields"),
        "{err}"
    );
    let _ = Path::new(&dir);
}

#[test]
fn a_daemon_is_restarted_after_kill_9_and_stopped_with_the_agent() {
    let tasks = r#"
[[task]]
name = "keeper"
kind = "daemon"
command = "echo $$ >> DIR/pids; exec sleep 100"
"#;
    let agent = Agent::start("daemon", tasks, &[]);
    wait_for(Duration::from_secs(30), "the daemon", || agent.lines("pids").len() == 1);
    let first = agent.lines("pids");
    kill(Pid::from_raw(first[0].parse().unwrap()), Signal::SIGKILL).unwrap();
    // Restarted after the first backoff (1 s).
    wait_for(Duration::from_secs(30), "the daemon restarted", || agent.lines("pids").len() >= 2);
    let pids = agent.lines("pids");
    assert_eq!(pids.len(), 2, "{}", agent.log());
    let (code, took, log) = agent.stop();
    assert_eq!(code, Some(0), "{log}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert!(log.contains("daemon exited; restarting"), "{log}");
    assert!(gone(&pids[1]), "daemon {} survived", pids[1]);
    // Both runs are in the history: the one killed by hand, the one stopped with the agent.
    let state =
        std::env::temp_dir().join(format!("cronfleet-agent-{}-daemon/state", std::process::id()));
    let out =
        cronfleet(&["runs", "--state-dir", state.to_str().unwrap(), "--task", "keeper", "--json"]);
    let runs: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let seen: Vec<(&str, Option<i64>)> =
        runs.iter().map(|r| (r["outcome"].as_str().unwrap(), r["signal"].as_i64())).collect();
    assert_eq!(seen, [("killed", Some(15)), ("failed", Some(9))], "{runs:?}");
}

fn cronfleet(args: &[&str]) -> std::process::Output {
    bin().args(args).output().unwrap()
}

/// `kill -9` of the agent, then a restart: its daemon and its `forbid` task's run (a process
/// group with a child of its own) are ended before anything starts again, so there is never
/// a second copy; a process that ignores SIGTERM gets SIGKILL after its grace.
#[test]
fn an_agent_restarted_after_kill_9_ends_what_it_left_running_first() {
    let tasks = r#"
[[task]]
name = "keeper"
kind = "daemon"
command = "echo $$ >> DIR/keeper; exec sleep 1000"

[[task]]
name = "slow"
schedule = "* * * * * *"
command = "echo $$ >> DIR/slow; sleep 1000 & sleep 1000 & wait"

[[task]]
name = "stubborn"
schedule = "@every 1h"
command = "trap '' TERM; echo $$ >> DIR/stubborn; sleep 1000"
"#;
    let mut agent = Agent::start("orphans", tasks, &[]);
    let state = agent.dir.join("state");
    let dir = agent.dir.clone();
    let state_arg = state.to_str().unwrap().to_owned();
    wait_for(Duration::from_secs(30), "the API", || state.join("api-addr").exists());
    let run = cronfleet(&["run", "stubborn", "--state-dir", &state_arg]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let lines = |file: &str| -> Vec<String> {
        std::fs::read_to_string(dir.join(file))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    };
    wait_for(Duration::from_secs(30), "the three runs", || {
        ["keeper", "slow", "stubborn"].iter().all(|f| !lines(f).is_empty())
    });
    agent.child.kill().unwrap();
    agent.child.wait().unwrap();
    let before: Vec<String> =
        ["keeper", "slow", "stubborn"].iter().flat_map(|f| lines(f)).collect();
    for pid in &before {
        assert!(!gone(pid), "{pid} should outlive a kill -9 of its agent");
    }
    // The group of `slow` has two `sleep` children besides its shell.
    let group = |pgid: &str| -> usize {
        let Ok(procs) = std::fs::read_dir("/proc") else { return 0 };
        procs
            .flatten()
            .filter_map(|p| std::fs::read_to_string(p.path().join("stat")).ok())
            .filter(|stat| {
                let rest = stat.rsplit_once(") ").map_or("", |(_, r)| r);
                let mut f = rest.split(' ');
                f.next() != Some("Z") && f.nth(1) == Some(pgid)
            })
            .count()
    };
    let slow = lines("slow")[0].clone();
    assert_eq!(group(&slow), 3, "the shell and its two sleeps");

    let agent = Agent::start(
        "orphans-2",
        tasks.replace("DIR", dir.to_str().unwrap()).as_str(),
        &["--state-dir", &state_arg],
    );
    // The daemon runs again: only once the old copy is gone (the stubborn one took its grace).
    wait_for(Duration::from_secs(60), "the daemon again", || lines("keeper").len() == 2);
    for pid in &before {
        assert!(gone(pid), "{pid} still runs after the restart:\n{}", agent.log());
    }
    assert_eq!(group(&slow), 0, "the children of slow's run are gone too");
    let (code, _, log) = agent.stop();
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("was ended (SIGKILL after its grace)"), "{log}");
    let out = cronfleet(&["runs", "--state-dir", &state_arg, "--outcome", "abandoned", "--json"]);
    let runs: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let tasks: std::collections::BTreeSet<&str> =
        runs.iter().filter_map(|r| r["task"].as_str()).collect();
    assert!(tasks.is_superset(&["keeper", "slow", "stubborn"].into()), "{runs:?}");
}

#[test]
fn daemon_mode_with_pid_file_reload_and_stop() {
    let dir =
        std::env::temp_dir().join(format!("cronfleet-agent-{}-daemonize", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let tasks = dir.join("tasks.toml");
    std::fs::write(&tasks, TICK.replace("VERSION", "d").replace("DIR", dir.to_str().unwrap()))
        .unwrap();
    let pid_file = dir.join("agent.pid");
    let (tasks, pid) = (tasks.to_str().unwrap(), pid_file.to_str().unwrap());

    let state = dir.join("state");
    let state = state.to_str().unwrap();
    let out = cronfleet(&[
        "agent",
        "--daemon",
        "--pid-file",
        pid,
        "--config",
        tasks,
        "--state-dir",
        state,
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let daemon_pid: i32 = std::fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("started, pid {daemon_pid}")));

    // A second agent on the same pid file is refused.
    let out = cronfleet(&["agent", "--pid-file", pid, "--config", tasks, "--state-dir", state]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains(&format!("already running, pid {daemon_pid}")));

    sleep(1.5);
    assert!(cronfleet(&["reload", "--pid-file", pid]).status.success());
    sleep(0.5);
    let out = cronfleet(&["stop", "--pid-file", pid]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!pid_file.exists(), "the pid file is removed on exit");
    let log = std::fs::read_to_string(dir.join("agent.pid.log")).unwrap();
    assert!(
        log.contains("agent started") && log.contains("reloaded") && log.contains("stopped"),
        "{log}"
    );
    assert!(!std::fs::read_to_string(dir.join("out")).unwrap_or_default().is_empty());
    // Stopping again: nothing runs.
    let out = cronfleet(&["stop", "--pid-file", pid]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not running"));
}

#[test]
fn a_stale_pid_file_is_replaced_and_a_bad_file_fails_the_daemon_start() {
    let dir = std::env::temp_dir().join(format!("cronfleet-agent-{}-stale", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // The pid of a process that has exited.
    let mut gone = Command::new("true").spawn().unwrap();
    let dead = gone.id();
    gone.wait().unwrap();
    let pid_file = dir.join("agent.pid");
    std::fs::write(&pid_file, format!("{dead}\n")).unwrap();
    let tasks = dir.join("tasks.toml");
    std::fs::write(
        &tasks,
        "[[task]]\nname = \"idle\"\nschedule = \"@yearly\"\ncommand = \"true\"\n",
    )
    .unwrap();
    let mut child = bin()
        .args([
            "agent",
            "--pid-file",
            pid_file.to_str().unwrap(),
            "--config",
            tasks.to_str().unwrap(),
        ])
        .args(["--state-dir", dir.join("state").to_str().unwrap()])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut written = String::new();
    for _ in 0..50 {
        sleep(0.05);
        written = std::fs::read_to_string(&pid_file).unwrap_or_default();
        if written.trim() == child.id().to_string() {
            break;
        }
    }
    assert_eq!(written.trim(), child.id().to_string());
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
    assert!(child.wait().unwrap().success());

    std::fs::write(
        &tasks,
        "[[task]]\nname = \"broken\"\nschedule = \"61 * * * *\"\ncommand = \"true\"\n",
    )
    .unwrap();
    let out = cronfleet(&[
        "agent",
        "--daemon",
        "--pid-file",
        pid_file.to_str().unwrap(),
        "--config",
        tasks.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("61 is out of range"));
}

#[test]
fn saving_the_file_reloads_it_and_logs_can_be_json() {
    let agent = Agent::start("watch", &TICK.replace("VERSION", "w1"), &["--log-format", "json"]);
    sleep(1.6);
    // An editor's atomic save: a new file renamed over the old one; no signal.
    let tmp = agent.dir.join(".tasks.toml.swp");
    std::fs::write(&tmp, TICK.replace("VERSION", "w2").replace("DIR", agent.dir.to_str().unwrap()))
        .unwrap();
    std::fs::rename(&tmp, agent.dir.join("tasks.toml")).unwrap();
    sleep(2.2);
    let lines = agent.lines("out");
    let (code, _, log) = agent.stop();
    assert_eq!(code, Some(0), "{log}");
    assert!(
        lines.iter().any(|l| l.starts_with("w1")) && lines.last().unwrap().starts_with("w2"),
        "{lines:?}"
    );
    for line in log.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(v.get("level").is_some() && v.get("fields").is_some(), "{line}");
    }
    assert!(log.contains("\"message\":\"reloaded\""), "{log}");
}

#[test]
fn runs_are_recorded_and_an_agent_killed_mid_run_leaves_them_abandoned() {
    let tasks = r#"
[[task]]
name = "hello"
schedule = "* * * * * *"
command = "echo hello from $CRONFLEET_SCHEDULED_AT; exit 3"

[[task]]
name = "slow"
schedule = "* * * * * *"
command = "sleep 100"
"#;
    let mut agent = Agent::start("history", tasks, &[]);
    let state = agent.dir.join("state");
    let state = state.to_str().unwrap();
    // Until `hello` ended twice and `slow` skipped a slot (its first run still going).
    let recorded = |task: &str, outcome: &str| {
        let out = cronfleet(&["runs", "--state-dir", state, "--task", task, "--json"]);
        let runs: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap_or_default();
        runs.iter().filter(|r| r["outcome"] == outcome).count()
    };
    wait_for(Duration::from_secs(60), "two runs of hello and a skipped slot of slow", || {
        recorded("hello", "failed") >= 2 && recorded("slow", "skipped") >= 1
    });
    // The agent dies without stopping its runs.
    agent.child.kill().unwrap();
    agent.child.wait().unwrap();

    let out = cronfleet(&["runs", "--state-dir", state, "--task", "hello", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let runs: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert!(runs.len() >= 2, "{runs:?}");
    // (The newest may have been going when the agent was killed, on a busy machine.)
    let latest = runs.iter().find(|r| r["outcome"] != "running").unwrap();
    assert_eq!(latest["outcome"], "failed");
    assert_eq!(latest["exit_code"], 3);
    assert_eq!(latest["node"], "test-node");
    assert!(latest.get("output").is_none(), "listings leave the output out");
    let out = cronfleet(&["logs", "hello", "--state-dir", state]);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("hello from "));
    let id = latest["id"].as_str().unwrap();
    let out = cronfleet(&["logs", "hello", id, "--state-dir", state]);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("hello from "));

    // The orphans: `slow`'s `sleep 100` (and perhaps a `hello`) run on without their agent.
    let orphans: Vec<String> = std::fs::read_dir(agent.dir.join("state/children"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(!orphans.is_empty() && orphans.iter().any(|pid| !gone(pid)), "{orphans:?}");

    // Restarted: the orphans are ended first, the runs that were going recorded as abandoned.
    let agent2 = Agent::start("history-2", "", &["--state-dir", state]);
    wait_for(Duration::from_secs(30), "abandoned runs", || {
        agent2.log().contains("recorded as abandoned") || agent2.log().contains("agent started")
    });
    for pid in &orphans {
        assert!(gone(pid), "orphan {pid} still runs:\n{}", agent2.log());
    }
    let (code, _, log) = agent2.stop();
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("was ended (SIGTERM) when the agent started again"), "{log}");
    let out = cronfleet(&[
        "runs",
        "--state-dir",
        state,
        "--task",
        "slow",
        "--outcome",
        "abandoned",
        "--json",
    ]);
    let abandoned: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert!(!abandoned.is_empty(), "{}", String::from_utf8_lossy(&out.stdout));
    let reason = abandoned[0]["reason"].as_str().unwrap_or_default();
    assert!(reason.starts_with("the agent died during the run; its process group"), "{reason}");
    // The skipped slots of `slow` (forbid: its run was still going) are there too.
    let out = cronfleet(&[
        "runs",
        "--state-dir",
        state,
        "--task",
        "slow",
        "--outcome",
        "skipped",
        "--json",
    ]);
    let skipped: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert!(!skipped.is_empty());
    assert_eq!(skipped[0]["reason"], "the previous run is still running");
    // And as a table.
    let out = cronfleet(&["runs", "--state-dir", state, "-n", "3"]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.starts_with("SLOT"), "{table}");
    assert_eq!(table.lines().count(), 4, "{table}");
}

#[test]
fn catch_up_after_downtime() {
    let tasks = r#"
[[task]]
name = "skip"
schedule = "* * * * * *"
command = "echo $CRONFLEET_SCHEDULED_AT >> DIR/skip"

[[task]]
name = "once"
schedule = "* * * * * *"
catch_up = "once"
command = "echo $CRONFLEET_SCHEDULED_AT >> DIR/once"

[[task]]
name = "all"
schedule = "* * * * * *"
catch_up = "all"
concurrency = "queue"
command = "echo $CRONFLEET_SCHEDULED_AT >> DIR/all"
"#;
    let agent = Agent::start("catchup", tasks, &[]);
    sleep(1.5);
    let dir = agent.dir.clone();
    let (code, _, log) = agent.stop();
    assert_eq!(code, Some(0), "{log}");
    let stopped = jiff::Timestamp::now();
    sleep(3.2);
    // The same tasks and history, three or so slots later.
    let state = dir.join("state");
    let mut again = bin()
        .args(["agent", "--config", dir.join("tasks.toml").to_str().unwrap()])
        .args(["--state-dir", state.to_str().unwrap()])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let restarted = jiff::Timestamp::now();
    let during_downtime = |file: &str| -> usize {
        std::fs::read_to_string(dir.join(file))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.parse::<jiff::Timestamp>().ok())
            .filter(|t| *t > stopped && *t < restarted)
            .count()
    };
    // Catch-up comes first after a start, but a loaded machine may take a
    // while to start the binary: wait for it (bounded) rather than guess.
    let deadline = Instant::now() + Duration::from_secs(20);
    while (during_downtime("once") == 0 || during_downtime("all") < 2) && Instant::now() < deadline
    {
        sleep(0.1);
    }
    // A little longer, so that a second catch-up run of "once" or one of
    // "skip" would show.
    sleep(0.5);
    kill(Pid::from_raw(again.id() as i32), Signal::SIGTERM).unwrap();
    assert!(again.wait().unwrap().success());
    assert_eq!(during_downtime("skip"), 0);
    assert_eq!(during_downtime("once"), 1);
    assert!(during_downtime("all") >= 2, "{}", std::fs::read_to_string(dir.join("all")).unwrap());
    let out = cronfleet(&[
        "runs",
        "--state-dir",
        state.to_str().unwrap(),
        "--task",
        "skip",
        "--outcome",
        "missed",
        "--json",
    ]);
    let missed: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(missed.len(), 1, "{missed:?}");
    assert!(missed[0]["reason"]
        .as_str()
        .unwrap()
        .contains("passed while the agent was down; catch_up = skip"));
}

#[test]
fn replace_kills_the_running_run_and_queue_waits_for_it() {
    let tasks = r#"
[[task]]
name = "replacing"
schedule = "* * * * * *"
concurrency = "replace"
command = "echo start $CRONFLEET_SCHEDULED_AT >> DIR/replace; sleep 100"

[[task]]
name = "queueing"
schedule = "* * * * * *"
concurrency = "queue"
command = "echo start >> DIR/queue; sleep 1.5; echo end >> DIR/queue"
"#;
    let agent = Agent::start("replace", tasks, &["--shutdown-grace", "1s"]);
    sleep(3.3);
    let replaced = agent.lines("replace");
    let queued = agent.lines("queue");
    let state = agent.dir.join("state");
    let (code, _, log) = agent.stop();
    assert_eq!(code, Some(0), "{log}");
    // A new run every second, each stopping the one before.
    assert!(replaced.len() >= 3, "{replaced:?}");
    let out = cronfleet(&[
        "runs",
        "--state-dir",
        state.to_str().unwrap(),
        "--task",
        "replacing",
        "--outcome",
        "killed",
        "--json",
    ]);
    let killed: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert!(killed.len() >= 2, "{killed:?}");
    // Queued runs never overlap: starts and ends alternate.
    for pair in queued.chunks(2) {
        if pair.len() == 2 {
            assert_eq!(pair, ["start", "end"], "{queued:?}");
        }
    }
}

#[test]
fn status_shows_the_agent_and_its_tasks() {
    let tasks = r#"
[[task]]
name = "tick"
schedule = "* * * * * *"
command = "exit 1"

[[task]]
name = "elsewhere"
schedule = "@daily"
command = "true"
hosts = ["db-*"]
"#;
    let agent = Agent::start("status", tasks, &[]);
    sleep(1.6);
    let state = agent.dir.join("state");
    let out = cronfleet(&["status", "--state-dir", state.to_str().unwrap(), "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["agent"]["running"], true);
    assert_eq!(status["agent"]["pid"], agent.child.id());
    assert_eq!(status["agent"]["node"], "test-node");
    let names: Vec<&str> =
        status["tasks"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["tick"], "only the tasks for this node");
    assert_eq!(status["tasks"][0]["last_outcome"], "failed");
    let (code, _, log) = agent.stop();
    assert_eq!(code, Some(0), "{log}");
    let out = cronfleet(&["status", "--state-dir", state.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("agent: not running (node test-node)"), "{text}");
    assert!(text.contains("tick") && text.contains("failed"), "{text}");
    // The state directory from the environment, for every command (`--state-dir` not repeated).
    let with_env =
        |args: &[&str]| bin().args(args).env("CRONFLEET_STATE_DIR", &state).output().unwrap();
    let out = with_env(&["status"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), text, "the same view");
    let out = with_env(&["runs", "--task", "tick"]);
    let runs = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && runs.contains("failed"), "{runs}");
    let out = with_env(&["doctor"]);
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(report.contains(state.to_str().unwrap()), "{report}");
}

#[test]
fn systemd_hears_ready_reloading_and_stopping() {
    let dir = std::env::temp_dir().join(format!("cronfleet-agent-{}-notify", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("tasks.toml"),
        "[[task]]\nname = \"a\"\nschedule = \"@daily\"\ncommand = \"true\"\n",
    )
    .unwrap();
    let socket = std::os::unix::net::UnixDatagram::bind(dir.join("notify.sock")).unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let child = bin()
        .args(["agent", "--config", dir.join("tasks.toml").to_str().unwrap()])
        .args(["--state-dir", dir.join("state").to_str().unwrap()])
        .env("NOTIFY_SOCKET", dir.join("notify.sock"))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let agent = Agent { child, dir: dir.clone() };
    let mut buf = [0u8; 512];
    let mut next = || {
        let n = socket.recv(&mut buf).expect("a notification");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let ready = next();
    assert!(ready.starts_with("READY=1"), "{ready}");
    // The tasks are loaded by then.
    assert!(dir.join("state/agent.json").exists());
    agent.signal(Signal::SIGHUP);
    let reloading = next();
    assert!(reloading.starts_with("RELOADING=1\nMONOTONIC_USEC="), "{reloading}");
    assert_eq!(next(), "READY=1");
    agent.signal(Signal::SIGTERM);
    assert_eq!(next(), "STOPPING=1");
    let (code, _, _) = agent.stop_after_signal();
    assert_eq!(code, Some(0));
}

#[test]
fn a_task_runs_as_its_user() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: running tasks as another user needs the agent to run as root");
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let out = std::env::temp_dir().join(format!("cronfleet-user-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).unwrap();
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o777)).unwrap();
    let tasks = format!(
        "[[task]]\nname = \"as-nobody\"\nschedule = \"* * * * * *\"\nuser = \"nobody\"\n\
         command = \"echo $(id -un) $USER $HOME >> {0}/who\"\n",
        out.display()
    );
    let agent = Agent::start("user", &tasks, &[]);
    let began = Instant::now();
    while std::fs::read_to_string(out.join("who")).unwrap_or_default().is_empty() {
        assert!(began.elapsed() < Duration::from_secs(10), "no run: {}", agent.log());
        sleep(0.1);
    }
    let who = std::fs::read_to_string(out.join("who")).unwrap();
    let first = who.lines().next().unwrap();
    let home = nix::unistd::User::from_name("nobody").unwrap().unwrap().dir;
    assert_eq!(first, format!("nobody nobody {}", home.display()));
    let (code, _, _) = agent.stop();
    assert_eq!(code, Some(0));
    let _ = std::fs::remove_dir_all(&out);
}

/// (name, status) of every node, as `cronfleet nodes --json` shows them through the agent of
/// this state directory.
fn nodes_seen(state: &std::path::Path) -> Vec<(String, String)> {
    let out = cronfleet(&["nodes", "--state-dir", state.to_str().unwrap(), "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["name"].as_str().unwrap().to_owned(), n["status"].as_str().unwrap().to_owned()))
        .collect()
}

/// Stops every agent; each must exit 0.
fn stop_all(agents: impl IntoIterator<Item = Agent>) {
    for agent in agents {
        let (code, _, log) = agent.stop();
        assert_eq!(code, Some(0), "{log}");
    }
}

#[test]
fn an_agent_on_its_own_store_is_alive_without_heartbeats() {
    // An agent on SQLite makes no heartbeats (an idle agent never wakes up), yet it is never
    // shown as lost: its record is brought up to date when the nodes are asked for.
    let agent = Agent::start(
        "own-store-node",
        "[[task]]\nname = \"t\"\nschedule = \"@yearly\"\ncommand = \"true\"\n",
        &[],
    );
    sleep(16.0); // longer than a node may stay silent in a fleet (15 s)
    let nodes = nodes_seen(&agent.dir.join("state"));
    assert_eq!(nodes, [("test-node".to_string(), "alive".to_string())], "{}", agent.log());
    let (code, _, log) = agent.stop();
    assert_eq!(code, Some(0), "{log}");
}

#[test]
fn two_agents_share_a_postgres_store() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let Some(db) = runtime.block_on(cronfleet::testing::TestDb::create("agents")) else { return };
    let tasks = "[[task]]\nname = \"hello\"\nschedule = \"* * * * * *\"\ncommand = \"echo hi from $CRONFLEET_NODE\"\n";
    let a = Agent::start("pg-a", tasks, &["--store", &db.url, "--node", "node-a"]);
    let b = Agent::start("pg-b", tasks, &["--store", &db.url, "--node", "node-b"]);
    sleep(2.5);
    // Each node sees the other: `cronfleet nodes` through node a's API.
    let state_a = a.dir.join("state");
    let nodes = || nodes_seen(&state_a);
    assert_eq!(nodes(), [("node-a".into(), "alive".into()), ("node-b".into(), "alive".into())]);
    let (code_b, _, log_b) = b.stop();
    assert_eq!(nodes(), [("node-a".into(), "alive".into()), ("node-b".into(), "stopped".into())]);
    let out = cronfleet(&["nodes", "--state-dir", state_a.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("NODE"), "a table");
    let (code_a, _, log_a) = a.stop();
    assert_eq!((code_a, code_b), (Some(0), Some(0)), "{log_a}\n{log_b}");
    // The shared database has both nodes' runs, each slot once per node.
    let nodes: Vec<String> = runtime.block_on(async {
        let store = cronfleet::store::Store::connect(&db.url).await.unwrap();
        let runs = store
            .runs(&cronfleet::store::RunFilter { limit: 100, ..Default::default() })
            .await
            .unwrap();
        assert!(
            runs.iter().all(|r| r.id.ends_with(&format!("@{}", r.node))),
            "ids name their node"
        );
        let mut nodes: Vec<String> = runs.iter().map(|r| r.node.clone()).collect();
        nodes.sort();
        nodes.dedup();
        nodes
    });
    assert_eq!(nodes, ["node-a", "node-b"]);
    runtime.block_on(db.drop_database());
}

#[test]
fn a_run_on_task_has_its_first_slot_claimed_ahead_too() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let Some(db) = runtime.block_on(cronfleet::testing::TestDb::create("first")) else { return };
    // Started just after a multiple of 5 s plus one, the task's first slot is about 4 s on.
    while jiff::Timestamp::now().as_second() % 5 != 1 {
        sleep(0.05);
    }
    let tasks = "[[task]]\nname = \"first\"\nschedule = \"*/5 * * * * *\"\nrun_on = \"one\"\ncommand = \"true\"\n";
    let a = Agent::start("first-ahead", tasks, &["--store", &db.url, "--node", "f1"]);
    sleep(6.0);
    let (code, _, log) = a.stop();
    assert_eq!(code, Some(0), "{log}");
    let (claims, runs) = runtime.block_on(async {
        let store = cronfleet::store::Store::connect(&db.url).await.unwrap();
        let runs = store
            .runs(&cronfleet::store::RunFilter { limit: 10, ..Default::default() })
            .await
            .unwrap();
        (store.fleet().unwrap().claims("first").await.unwrap(), runs)
    });
    let first = claims.iter().min_by_key(|c| c.slot_ts).expect("the first slot was claimed");
    let at: jiff::Timestamp = first.claimed_at.parse().unwrap();
    assert!(at.as_second() < first.slot_ts, "claimed at {at}, not ahead: {claims:?}\n{log}");
    assert!(runs.iter().any(|r| r.slot_ts == first.slot_ts), "and run: {runs:?}");
    runtime.block_on(db.drop_database());
}

#[test]
fn run_on_one_runs_each_slot_exactly_once_for_a_minute_across_three_agents() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let Some(db) = runtime.block_on(cronfleet::testing::TestDb::create("claims")) else { return };
    let tasks = "[[task]]\nname = \"solo\"\nschedule = \"* * * * * *\"\nrun_on = \"one\"\ncommand = \"true\"\n\n\
                 [[task]]\nname = \"pair\"\nschedule = \"* * * * * *\"\nrun_on = 2\ncommand = \"true\"\n\n\
                 [[task]]\nname = \"everyone\"\nschedule = \"* * * * * *\"\ncommand = \"true\"\n";
    let agents: Vec<Agent> = ["c1", "c2", "c3"]
        .iter()
        .map(|n| Agent::start(&format!("claims-{n}"), tasks, &["--store", &db.url, "--node", n]))
        .collect();
    // A minute of slots.
    sleep(62.0);
    stop_all(agents);
    let (runs, claims) = runtime.block_on(async {
        let store = cronfleet::store::Store::connect(&db.url).await.unwrap();
        let runs = store
            .runs(&cronfleet::store::RunFilter { limit: 1000, ..Default::default() })
            .await
            .unwrap();
        (runs, store.fleet().unwrap().claims("solo").await.unwrap())
    });
    // Slots are claimed ahead of their time by their preferred node (all but the first few,
    // which come before the claims ahead begin), so the run does not wait for the database.
    let ahead = claims
        .iter()
        .filter(|c| c.claimed_at.parse::<jiff::Timestamp>().unwrap().as_second() < c.slot_ts)
        .count();
    assert!(
        ahead * 10 >= claims.len() * 8,
        "{ahead} of {} claimed ahead: {claims:?}",
        claims.len()
    );
    // A stopped node left no slot claimed that it would not run.
    for claim in &claims {
        assert!(
            runs.iter().any(|r| r.task == "solo" && r.slot_ts == claim.slot_ts),
            "slot {} claimed by {} and not run",
            claim.slot_ts,
            claim.node
        );
    }
    let per_slot = |task: &str| {
        let mut slots: std::collections::BTreeMap<i64, Vec<String>> = Default::default();
        for r in runs.iter().filter(|r| r.task == task) {
            slots.entry(r.slot_ts).or_default().push(r.node.clone());
        }
        slots
    };
    // Slots when all three agents ran (the first and last are partial for `everyone`).
    let everyone = per_slot("everyone");
    let full: Vec<i64> = everyone.iter().filter(|(_, n)| n.len() == 3).map(|(s, _)| *s).collect();
    assert!(full.len() >= 58, "{everyone:?}");
    let solo = per_slot("solo");
    let pair = per_slot("pair");
    for slot in &full {
        assert_eq!(solo.get(slot).map(Vec::len), Some(1), "solo at {slot}: {solo:?}");
        let mut nodes = pair.get(slot).cloned().unwrap_or_default();
        nodes.sort();
        nodes.dedup();
        assert_eq!(nodes.len(), 2, "pair at {slot}: {pair:?}");
    }
    assert!(solo.values().all(|n| n.len() == 1), "never twice: {solo:?}");
    assert!(pair.values().all(|n| n.len() <= 2), "never thrice: {pair:?}");
    runtime.block_on(db.drop_database());
}

#[test]
fn runs_of_a_node_killed_9_become_lost() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let Some(db) = runtime.block_on(cronfleet::testing::TestDb::create("lost")) else { return };
    let tasks = "[[task]]\nname = \"long\"\nschedule = \"* * * * * *\"\ncommand = \"sleep 25\"\n";
    let a = Agent::start("lost-a", tasks, &["--store", &db.url, "--node", "la"]);
    let mut b = Agent::start("lost-b", tasks, &["--store", &db.url, "--node", "lb"]);
    sleep(2.0);
    b.child.kill().unwrap(); // kill -9: no goodbye, its run stays `running`
    b.child.wait().unwrap();
    let store = runtime.block_on(cronfleet::store::Store::connect(&db.url)).unwrap();
    let filter =
        cronfleet::store::RunFilter { task: Some("long".into()), limit: 100, ..Default::default() };
    let began = Instant::now();
    loop {
        let runs = runtime.block_on(store.runs(&filter)).unwrap();
        let b_runs: Vec<&str> =
            runs.iter().filter(|r| r.node == "lb").map(|r| r.outcome.as_str()).collect();
        if b_runs.contains(&"lost") && !b_runs.contains(&"running") {
            // The live node's run goes on.
            assert!(runs.iter().any(|r| r.node == "la" && r.outcome.as_str() == "running"));
            break;
        }
        assert!(began.elapsed() < Duration::from_secs(40), "lb's runs: {b_runs:?}\n{}", a.log());
        sleep(0.5);
    }
    let (code, _, log) = a.stop();
    assert_eq!(code, Some(0), "{log}");
    runtime.block_on(db.drop_database());
}

#[test]
fn max_running_holds_across_the_fleet() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let Some(db) = runtime.block_on(cronfleet::testing::TestDb::create("leases")) else { return };
    // One slot a second, each run 2.5 s, at most one at a time in the whole fleet.
    let tasks = "[[task]]\nname = \"slow\"\nschedule = \"* * * * * *\"\nrun_on = \"one\"\ncommand = \"sleep 2.5\"\n";
    let agents: Vec<Agent> = ["m1", "m2", "m3"]
        .iter()
        .map(|n| Agent::start(&format!("leases-{n}"), tasks, &["--store", &db.url, "--node", n]))
        .collect();
    sleep(7.0);
    stop_all(agents);
    let runs = runtime.block_on(async {
        let store = cronfleet::store::Store::connect(&db.url).await.unwrap();
        store
            .runs(&cronfleet::store::RunFilter { limit: 1000, ..Default::default() })
            .await
            .unwrap()
    });
    let mut ran: Vec<(jiff::Timestamp, jiff::Timestamp, String)> = runs
        .iter()
        .filter(|r| r.outcome.as_str() == "succeeded")
        .map(|r| {
            (
                r.started_at.parse().unwrap(),
                r.ended_at.as_deref().unwrap().parse().unwrap(),
                r.node.clone(),
            )
        })
        .collect();
    ran.sort();
    assert!(ran.len() >= 2, "{ran:?}");
    for pair in ran.windows(2) {
        assert!(pair[1].0 >= pair[0].1, "runs overlap across the fleet: {pair:?}");
    }
    let skipped = runs
        .iter()
        .filter(|r| r.reason.as_deref().is_some_and(|r| r.contains("across the fleet")))
        .count();
    assert!(skipped >= 1, "slots that found a run going were skipped: {runs:?}");
    // Each slot is recorded once in the fleet, by the node that claimed it: a busy node that
    // was not the slot's records nothing for it.
    let mut per_slot = std::collections::HashMap::<i64, Vec<&str>>::new();
    for r in &runs {
        per_slot.entry(r.slot_ts).or_default().push(r.node.as_str());
    }
    let twice: Vec<_> = per_slot.iter().filter(|(_, nodes)| nodes.len() > 1).collect();
    assert!(twice.is_empty(), "slots recorded more than once: {twice:?}\n{runs:?}");
    runtime.block_on(db.drop_database());
}

#[test]
fn in_a_fleet_replace_stops_only_a_run_the_node_itself_replaces() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let Some(db) = runtime.block_on(cronfleet::testing::TestDb::create("replace")) else { return };
    // A slot a second, each run 10 s unless replaced, one of three nodes claims each slot.
    let tasks = "[[task]]\nname = \"newest\"\nschedule = \"* * * * * *\"\nrun_on = \"one\"\nconcurrency = \"replace\"\ncommand = \"sleep 10\"\n";
    let agents: Vec<Agent> = ["r1", "r2", "r3"]
        .iter()
        .map(|n| Agent::start(&format!("replace-{n}"), tasks, &["--store", &db.url, "--node", n]))
        .collect();
    sleep(9.0);
    stop_all(agents);
    let runs = all_runs(&runtime, &db.url);
    // A node's run is replaced when that node claims the next slot, not whenever a slot comes
    // (another node's slot): with three nodes a run often outlives the next slot or two.
    let replaced: Vec<i64> = runs
        .iter()
        .filter(|r| r.task == "newest" && r.outcome.as_str() == "killed")
        .filter_map(|r| r.duration_ms)
        .collect();
    assert!(replaced.len() >= 3, "{runs:?}");
    assert!(replaced.iter().any(|ms| *ms >= 1900), "every run lasted under 2 s: {replaced:?}");
    // `replace` limits a node's own runs; no fleet-wide lease skips a slot.
    let lease_skips =
        runs.iter().filter(|r| r.reason.as_deref().is_some_and(|r| r.contains("max_running")));
    assert_eq!(lease_skips.count(), 0, "{runs:?}");
    // And each slot ran once.
    let mut slots: Vec<i64> =
        runs.iter().filter(|r| r.outcome.as_str() != "skipped").map(|r| r.slot_ts).collect();
    let all = slots.len();
    slots.sort_unstable();
    slots.dedup();
    assert_eq!(slots.len(), all, "{runs:?}");
    runtime.block_on(db.drop_database());
}

#[test]
fn in_a_shared_store_each_node_catches_up_on_its_own_slots() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let Some(db) = runtime.block_on(cronfleet::testing::TestDb::create("catchup")) else { return };
    let tasks = "[[task]]\nname = \"every\"\nschedule = \"* * * * * *\"\ncatch_up = \"once\"\ncommand = \"true\"\n";
    let a = Agent::start("cu-a", tasks, &["--store", &db.url, "--node", "ca"]);
    let b = Agent::start("cu-b", tasks, &["--store", &db.url, "--node", "cb"]);
    sleep(1.5);
    let (code, _, _) = b.stop();
    assert_eq!(code, Some(0));
    let stopped = jiff::Timestamp::now().as_second();
    sleep(3.0); // node a runs these slots; node b misses them
    let b = Agent::start("cu-b2", tasks, &["--store", &db.url, "--node", "cb"]);
    sleep(1.0);
    let (_, _, log) = b.stop();
    let (_, _, _) = a.stop();
    assert!(
        log.contains("catch_up = once: running the latest"),
        "b caught up on its own slots:\n{log}"
    );
    let runs = runtime.block_on(async {
        let store = cronfleet::store::Store::connect(&db.url).await.unwrap();
        store
            .runs(&cronfleet::store::RunFilter { limit: 1000, ..Default::default() })
            .await
            .unwrap()
    });
    assert!(
        runs.iter()
            .any(|r| r.node == "cb" && r.slot_ts > stopped && r.outcome.as_str() == "succeeded"),
        "node b ran a missed slot"
    );
    runtime.block_on(db.drop_database());
}

/// Runs by (task, slot): the node and outcome of each.
type BySlot<'a> = std::collections::BTreeMap<(&'a str, i64), Vec<(&'a str, &'a str)>>;

fn by_slot(runs: &[cronfleet::store::RunRecord]) -> BySlot<'_> {
    let mut slots = BySlot::new();
    for r in runs {
        slots.entry((&r.task, r.slot_ts)).or_default().push((&r.node, r.outcome.as_str()));
    }
    slots
}

/// The first and the last slot at which `nodes` nodes all recorded `task`.
fn window(slots: &BySlot, task: &str, nodes: usize) -> (i64, i64) {
    let full: Vec<i64> = slots
        .iter()
        .filter(|((t, _), n)| *t == task && n.len() == nodes)
        .map(|((_, slot), _)| *slot)
        .collect();
    (full[0], *full.last().unwrap())
}

/// The runs of the store, newest first.
fn all_runs(runtime: &tokio::runtime::Runtime, url: &str) -> Vec<cronfleet::store::RunRecord> {
    runtime.block_on(async {
        let store = cronfleet::store::Store::connect(url).await.unwrap();
        store
            .runs(&cronfleet::store::RunFilter { limit: 10_000, ..Default::default() })
            .await
            .unwrap()
    })
}

#[test]
fn the_database_restarted_under_three_agents_loses_nothing() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let Some(mut server) = cronfleet::testing::PgServer::start("restart") else { return };
    let tasks = "[[task]]\nname = \"everyone\"\nschedule = \"* * * * * *\"\ncommand = \"true\"\n\n\
                 [[task]]\nname = \"solo\"\nschedule = \"* * * * * *\"\nrun_on = \"one\"\ncommand = \"true\"\n\n\
                 [[task]]\nname = \"long\"\nschedule = \"* * * * * *\"\ncommand = \"sleep 5; echo done\"\n";
    let agents: Vec<Agent> = ["r1", "r2", "r3"]
        .iter()
        .map(|n| {
            Agent::start(&format!("restart-{n}"), tasks, &["--store", &server.url, "--node", n])
        })
        .collect();
    sleep(3.0);
    // The database goes away for 6 s, during the `long` runs, and comes back.
    server.stop();
    sleep(6.0);
    server.start_again();
    sleep(8.0);
    for agent in &agents {
        assert!(agent.log().contains("the database is away"), "{}", agent.log());
        assert!(agent.log().contains("the database is back"), "{}", agent.log());
    }
    let spools: Vec<PathBuf> = agents.iter().map(|a| a.dir.join("state/spool")).collect();
    stop_all(agents);
    let runs = all_runs(&runtime, &server.url);
    let by_slot = by_slot(&runs);
    // The slots when every agent was up: from the first slot all three ran to the last.
    let (first, last) = window(&by_slot, "everyone", 3);
    assert!(last - first >= 14, "{by_slot:?}");
    for slot in first..=last {
        // Every node has exactly one record of every slot of `everyone`, outage or not.
        let mut nodes: Vec<&str> =
            by_slot.get(&("everyone", slot)).into_iter().flatten().map(|(n, _)| *n).collect();
        nodes.sort_unstable();
        assert_eq!(nodes, ["r1", "r2", "r3"], "everyone at {slot}: {by_slot:?}");
        // `solo`: each slot recorded, and run by one node or missed, never both nor twice
        // (never run unclaimed). A node still waiting on its previous claim when the database
        // went away skips the next slot (`concurrency = "forbid"`), and says so.
        let solo = by_slot.get(&("solo", slot)).cloned().unwrap_or_default();
        let taken = solo.iter().filter(|(_, o)| *o != "skipped").count();
        assert!(!solo.is_empty() && taken <= 1, "solo at {slot}: {solo:?}");
    }
    let missed = (first..=last)
        .filter(|s| by_slot.get(&("solo", *s)).is_some_and(|v| v.iter().any(|r| r.1 == "missed")))
        .count();
    assert!((3..=10).contains(&missed), "the outage's solo slots are missed: {missed}");
    let everyone_ok = runs
        .iter()
        .filter(|r| r.task == "everyone" && (first..=last).contains(&r.slot_ts))
        .filter(|r| r.outcome.as_str() == "succeeded")
        .count();
    assert!(everyone_ok >= 3 * (last - first + 1) as usize - 12, "`all` tasks kept firing");
    // The `long` runs that ended while the database was away were written when it came back.
    let long_ended = runs
        .iter()
        .filter(|r| r.task == "long" && r.outcome.as_str() == "succeeded" && r.output == b"done\n")
        .count();
    assert!(long_ended >= 6, "{long_ended} long runs recorded as succeeded");
    assert!(runs.iter().all(|r| r.outcome.as_str() != "running"), "nothing left running");
    for spool in spools {
        let local = runtime.block_on(cronfleet::store::Store::open(&spool)).unwrap();
        let left = runtime.block_on(local.runs(&Default::default())).unwrap();
        assert!(left.is_empty(), "spool flushed: {left:?}");
    }
}

/// A TCP proxy to the database that can be cut (a partition: bytes stop flowing both ways,
/// connections stay open, nothing is refused or reset) and healed.
struct Partition {
    port: u16,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Partition {
    fn to(upstream: String) -> Partition {
        Partition::on("127.0.0.1:0", upstream)
    }

    /// A proxy listening on `listen` (`0.0.0.0:0`: reachable from network namespaces too).
    fn on(listen: &str, upstream: String) -> Partition {
        use std::sync::atomic::Ordering;
        let cut = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let listener = std::net::TcpListener::bind(listen).unwrap();
        let port = listener.local_addr().unwrap().port();
        let flag = cut.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Runtime::new().unwrap();
            runtime.block_on(async move {
                listener.set_nonblocking(true).unwrap();
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                loop {
                    let Ok((client, _)) = listener.accept().await else { return };
                    let (flag, upstream) = (flag.clone(), upstream.clone());
                    tokio::spawn(async move {
                        while flag.load(Ordering::SeqCst) {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                        let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else {
                            return;
                        };
                        let (cr, cw) = client.into_split();
                        let (sr, sw) = server.into_split();
                        tokio::join!(pipe(cr, sw, flag.clone()), pipe(sr, cw, flag));
                    });
                }
            });
        });
        Partition { port, cut }
    }

    fn set(&self, cut: bool) {
        self.cut.store(cut, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Copies one direction; while cut, holds what it read until healed.
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        while cut.load(std::sync::atomic::Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

#[test]
fn an_agent_cut_off_from_the_database_and_healed() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let Some(db) = runtime.block_on(cronfleet::testing::TestDb::create("partition")) else {
        return;
    };
    let (host_port, rest) = db.url.split_once('@').unwrap().1.split_once('/').unwrap();
    let partition = Partition::to(host_port.to_owned());
    let cut_url = db.url.replace(host_port, &format!("127.0.0.1:{}", partition.port));
    assert_ne!(cut_url, db.url, "{rest}");
    let tasks = "[[task]]\nname = \"everyone\"\nschedule = \"* * * * * *\"\ncommand = \"true\"\n\n\
                 [[task]]\nname = \"solo\"\nschedule = \"* * * * * *\"\nrun_on = \"one\"\nconcurrency = \"queue\"\ncommand = \"true\"\n\n\
                 [[task]]\nname = \"guarded\"\nschedule = \"* * * * * *\"\nrun_on = \"one\"\ncommand = \"true\"\n\n\
                 [[task]]\nname = \"long\"\nschedule = \"@every 1h\"\ncommand = \"sleep 22; echo done\"\n";
    // `solo` is about claims alone (`queue` takes no fleet-wide lease). `guarded` (`forbid`,
    // the default) also takes a lease per run: a run that pc began just before the cut holds
    // its lease until the lease expires, and a slot pc claimed ahead cannot get one while cut
    // off; such slots are skipped, as documented, and recorded by the node that held them.
    let a = Agent::start("partition-a", tasks, &["--store", &db.url, "--node", "pa"]);
    let b = Agent::start("partition-b", tasks, &["--store", &db.url, "--node", "pb"]);
    let c = Agent::start("partition-c", tasks, &["--store", &cut_url, "--node", "pc"]);
    sleep(2.5);
    // `long` runs now on each node (`@every` from the start: started by hand here).
    let run_long = |agent: &Agent| {
        let out =
            cronfleet(&["run", "long", "--state-dir", agent.dir.join("state").to_str().unwrap()]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    run_long(&c);
    sleep(0.5);
    partition.set(true);
    // Cut off for 20 s: the others see pc lost after 15 s, and its running `long` with it.
    let store = runtime.block_on(cronfleet::store::Store::connect(&db.url)).unwrap();
    let began = Instant::now();
    let long_of_c = || {
        runtime
            .block_on(store.runs(&cronfleet::store::RunFilter {
                task: Some("long".into()),
                limit: 10,
                ..Default::default()
            }))
            .unwrap()
            .into_iter()
            .find(|r| r.node == "pc")
    };
    loop {
        if long_of_c().is_some_and(|r| r.outcome.as_str() == "lost") {
            break;
        }
        assert!(
            began.elapsed() < Duration::from_secs(30),
            "pc's run never lost: {:?}\n{}",
            long_of_c(),
            a.log()
        );
        sleep(0.5);
    }
    sleep(20.0 - began.elapsed().as_secs_f64().min(20.0));
    partition.set(false);
    sleep(6.0);
    let pc_log = c.log();
    for agent in [a, b, c] {
        let (code, _, log) = agent.stop();
        assert_eq!(code, Some(0), "{log}");
    }
    assert!(pc_log.contains("the database is away"), "{pc_log}");
    assert!(pc_log.contains("the database is back"), "{pc_log}");
    // pc's run ended during the partition: its real end replaced `lost`.
    let long = long_of_c().unwrap();
    assert_eq!((long.outcome.as_str(), long.output.as_slice()), ("succeeded", &b"done\n"[..]));
    let runs = all_runs(&runtime, &db.url);
    let by_slot = by_slot(&runs);
    let (first, last) = window(&by_slot, "everyone", 3);
    assert!(last - first >= 25, "{first}..{last}");
    for slot in first..=last {
        // pc went on running `everyone` through the partition; all of it reached the database.
        let mut nodes: Vec<&str> =
            by_slot.get(&("everyone", slot)).into_iter().flatten().map(|(n, _)| *n).collect();
        nodes.sort_unstable();
        assert_eq!(nodes, ["pa", "pb", "pc"], "everyone at {slot}");
        // `solo` ran every slot exactly once: pa or pb took the slots pc could not claim.
        let solo = by_slot.get(&("solo", slot)).cloned().unwrap_or_default();
        let ran: Vec<_> = solo.iter().filter(|(_, o)| *o == "succeeded").collect();
        let why = || {
            let reasons: Vec<_> = runs
                .iter()
                .filter(|r| r.task == "solo" && r.slot_ts == slot)
                .map(|r| (&r.node, &r.reason, &r.started_at))
                .collect();
            let fleet = store.fleet().unwrap();
            let holder = runtime.block_on(fleet.claim_holder("solo", slot, 0));
            format!("{reasons:?}, claimed by {holder:?}\n{pc_log}")
        };
        assert_eq!(ran.len(), 1, "solo at {slot}: {solo:?}: {}", why());
        // `guarded`: never run twice, never lost without a record.
        let guarded = by_slot.get(&("guarded", slot)).cloned().unwrap_or_default();
        let ran = guarded.iter().filter(|(_, o)| *o == "succeeded").count();
        assert!(ran <= 1 && !guarded.is_empty(), "guarded at {slot}: {guarded:?}");
    }
    runtime.block_on(db.drop_database());
}

/// The pid a task wrote into `file`, if it did.
fn pid_in(file: &Path) -> Option<i32> {
    std::fs::read_to_string(file).ok()?.trim().parse().ok()
}

#[test]
fn a_node_killed_9_hands_its_daemon_and_its_lost_run_to_another() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let Some(db) = runtime.block_on(cronfleet::testing::TestDb::create("takeover")) else {
        return;
    };
    let pids = std::env::temp_dir().join(format!("cronfleet-takeover-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&pids);
    std::fs::create_dir_all(&pids).unwrap();
    let tasks = format!(
        "[[task]]\nname = \"keeper\"\nkind = \"daemon\"\nrun_on = \"one\"\n\
         command = \"echo $$ > {p}/keeper-$CRONFLEET_NODE; exec sleep 1000\"\n\n\
         [[task]]\nname = \"long\"\nschedule = \"0 0 0 1 1 *\"\nrun_on = \"one\"\nretry_elsewhere = true\n\
         command = \"echo $$ > {p}/long-$CRONFLEET_NODE; sleep 60\"\n",
        p = pids.display()
    );
    let mut agents: Vec<(String, Agent)> = ["t1", "t2", "t3"]
        .iter()
        .map(|n| {
            let agent =
                Agent::start(&format!("takeover-{n}"), &tasks, &["--store", &db.url, "--node", n]);
            ((*n).to_owned(), agent)
        })
        .collect();
    let store = runtime.block_on(cronfleet::store::Store::connect(&db.url)).unwrap();
    let running = |task: &str| -> Vec<cronfleet::store::RunRecord> {
        let filter = cronfleet::store::RunFilter {
            task: Some(task.into()),
            limit: 100,
            ..Default::default()
        };
        let runs = runtime.block_on(store.runs(&filter)).unwrap();
        runs.into_iter().filter(|r| r.outcome.as_str() == "running").collect()
    };
    let began = Instant::now();
    while running("keeper").is_empty() {
        assert!(began.elapsed() < Duration::from_secs(15), "no node runs the daemon");
        sleep(0.2);
    }
    sleep(2.0);
    let keepers = running("keeper");
    assert_eq!(keepers.len(), 1, "exactly one node runs a run_on = \"one\" daemon: {keepers:?}");
    let victim = keepers[0].node.clone();
    // The same node runs `long` (by hand), then dies with both: the agent and its children.
    let at = agents.iter().position(|(n, _)| *n == victim).unwrap();
    let (_, mut dead) = agents.remove(at);
    let out = cronfleet(&["run", "long", "--state-dir", dead.dir.join("state").to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let began = Instant::now();
    while pid_in(&pids.join(format!("long-{victim}"))).is_none() {
        assert!(began.elapsed() < Duration::from_secs(10), "long did not start");
        sleep(0.2);
    }
    dead.child.kill().unwrap();
    dead.child.wait().unwrap();
    for child in ["keeper", "long"] {
        let pid = pid_in(&pids.join(format!("{child}-{victim}"))).unwrap();
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
    // Another node takes the daemon over once the dead node's lease expires (30 s), and runs
    // the lost `long` run again, as attempt 2, once it is found lost (15 s).
    let began = Instant::now();
    let (keeper, long) = loop {
        let keeper: Vec<_> = running("keeper").into_iter().filter(|r| r.node != victim).collect();
        let long: Vec<_> = running("long").into_iter().filter(|r| r.node != victim).collect();
        if !keeper.is_empty() && !long.is_empty() {
            break (keeper, long);
        }
        let logs: Vec<String> = agents.iter().map(|(_, a)| a.log()).collect();
        assert!(
            began.elapsed() < Duration::from_secs(60),
            "no takeover: {keeper:?} {long:?}\n{}",
            logs.join("\n")
        );
        sleep(0.5);
    };
    assert_eq!(keeper.len(), 1, "{keeper:?}");
    assert_eq!((long.len(), long[0].attempt), (1, 2), "{long:?}");
    let filter = cronfleet::store::RunFilter { task: Some("long".into()), ..Default::default() };
    let all = runtime.block_on(store.runs(&filter)).unwrap();
    assert!(all.iter().any(|r| r.node == victim && r.outcome.as_str() == "lost"), "{all:?}");
    assert_eq!(all.len(), 2, "run once more, not more: {all:?}");
    for (_, agent) in agents {
        let (code, _, log) = agent.stop();
        assert_eq!(code, Some(0), "{log}");
    }
    let _ = std::fs::remove_dir_all(&pids);
    runtime.block_on(db.drop_database());
}

#[test]
fn a_failed_run_is_retried_on_another_node() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let Some(db) = runtime.block_on(cronfleet::testing::TestDb::create("elsewhere")) else {
        return;
    };
    // Every slot runs on one node and fails there (attempt 1), then once more elsewhere.
    let tasks = "[[task]]\nname = \"picky\"\nschedule = \"*/2 * * * * *\"\nrun_on = \"one\"\n\
                 retry_elsewhere = true\ncommand = \"test $CRONFLEET_ATTEMPT -ge 2\"\n";
    let agents: Vec<Agent> = ["f1", "f2", "f3"]
        .iter()
        .map(|n| Agent::start(&format!("elsewhere-{n}"), tasks, &["--store", &db.url, "--node", n]))
        .collect();
    sleep(16.0);
    stop_all(agents);
    let runs = all_runs(&runtime, &db.url);
    let failed: Vec<_> = runs.iter().filter(|r| r.outcome.as_str() == "failed").collect();
    assert!(failed.iter().all(|r| r.attempt == 1), "{failed:?}");
    let last = runs.iter().map(|r| r.slot_ts).max().unwrap();
    // Every failure at least 4 s before the end was retried once, on another node.
    let old: Vec<_> = failed.iter().filter(|r| r.slot_ts <= last - 4).collect();
    assert!(old.len() >= 4, "{runs:?}");
    for f in old {
        let retries: Vec<_> =
            runs.iter().filter(|r| r.slot_ts == f.slot_ts && r.attempt == 2).collect();
        assert_eq!(retries.len(), 1, "slot {}: {runs:?}", f.slot_ts);
        assert!(
            retries[0].node != f.node && retries[0].outcome.as_str() == "succeeded",
            "{retries:?}"
        );
    }
    runtime.block_on(db.drop_database());
}

/// An agent with a shared store and no task file of its own: it runs the fleet's.
fn fleet_agent(name: &str, url: &str) -> Agent {
    let dir = agent_dir(name);
    let mut command = bin();
    command
        .args(["agent", "--store", url, "--node", name])
        .args(["--state-dir", dir.join("state").to_str().unwrap()]);
    Agent::spawn(dir, command)
}

#[test]
fn a_task_file_applied_to_the_store_reaches_every_agent_at_once() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let Some(db) = runtime.block_on(cronfleet::testing::TestDb::create("fleetfile")) else {
        return;
    };
    let agents: Vec<Agent> = ["d1", "d2", "d3"].iter().map(|n| fleet_agent(n, &db.url)).collect();
    let store = runtime.block_on(cronfleet::store::Store::connect(&db.url)).unwrap();
    // Which nodes ran `task` at a slot after `after` (Unix seconds).
    let ran = |task: &str, after: i64| -> std::collections::BTreeSet<String> {
        let filter = cronfleet::store::RunFilter {
            task: Some(task.into()),
            since: Some(after),
            limit: 1000,
            ..Default::default()
        };
        runtime.block_on(store.runs(&filter)).unwrap().into_iter().map(|r| r.node).collect()
    };
    let now = || jiff::Timestamp::now().as_second();
    let wait_for = |what: &str, check: &dyn Fn() -> bool| {
        let began = Instant::now();
        while !check() {
            let logs: Vec<String> = agents.iter().map(Agent::log).collect();
            assert!(began.elapsed() < Duration::from_secs(8), "{what}\n{}", logs.join("\n"));
            sleep(0.1);
        }
        began.elapsed()
    };
    sleep(1.5);
    let file = agents[0].dir.join("fleet.toml");
    let apply = |text: &str| {
        std::fs::write(&file, text).unwrap();
        cronfleet(&["apply", file.to_str().unwrap(), "--store", &db.url])
    };

    let v1 = "[[task]]\nname = \"hello\"\nschedule = \"* * * * * *\"\ncommand = \"true\"\n";
    let out = apply(v1);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("+ hello  (added)"));
    let t1 = now();
    let took = wait_for("every agent runs hello", &|| ran("hello", t1).len() == 3);
    assert!(took < Duration::from_secs(3), "{took:?}");

    // An invalid file is refused with its errors, and stored nowhere.
    let out = apply("[[task]]\nname = \"bad\"\nschedule = \"61 * * * *\"\ncommand = \"true\"\n");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("fleet.toml:3:") && err.contains("`schedule`"), "{err}");
    assert_eq!(runtime.block_on(store.task_file()).unwrap().unwrap().1, 1, "revision 1 kept");
    // A file without tasks is refused (it would remove every task everywhere); plan warns.
    let out = apply("# the tasks moved elsewhere\n");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "fleet.toml defines no task: applying it would remove every task of the fleet's \
             task file (1: hello); nothing was stored. To do that, give --allow-empty"
        ),
        "{err}"
    );
    assert_eq!(runtime.block_on(store.task_file()).unwrap().unwrap().1, 1, "revision 1 kept");
    let out = cronfleet(&["plan", file.to_str().unwrap(), "--store", &db.url]);
    let plan = String::from_utf8_lossy(&out.stdout);
    assert!(plan.contains("- hello  (removed)\n1 change(s), 0 unchanged\nwarning: the file defines no task: applying it removes every task of the task file (1); apply refuses it unless asked with allow_empty=true (cronfleet apply --allow-empty)\n"), "{plan}");

    // Plan against the stored file, then apply: `hello` goes, `bye` runs on d1 only.
    let v2 = "[[task]]\nname = \"bye\"\nschedule = \"* * * * * *\"\nhosts = [\"d1\"]\ncommand = \"true\"\n";
    std::fs::write(&file, v2).unwrap();
    let out = cronfleet(&["plan", file.to_str().unwrap(), "--store", &db.url]);
    let plan = String::from_utf8_lossy(&out.stdout);
    assert!(plan.contains("+ bye") && plan.contains("- hello"), "{plan}");
    let out = apply(v2);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let t2 = now();
    wait_for("d1 runs bye", &|| ran("bye", t2).len() == 1);
    sleep(1.5);
    assert!(ran("hello", now() - 1).is_empty(), "hello stopped everywhere");
    assert_eq!(ran("bye", t2).into_iter().collect::<Vec<_>>(), ["d1"]);

    // A task created through one agent's API runs on all; a pause through another holds on all.
    let state = |i: usize| agents[i].dir.join("state").display().to_string();
    let out = cronfleet(&[
        "task",
        "create",
        "api-made",
        "--schedule",
        "* * * * * *",
        "--command",
        "true",
        "--state-dir",
        &state(1),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let t3 = now();
    let took = wait_for("every agent runs api-made", &|| ran("api-made", t3).len() == 3);
    assert!(took < Duration::from_secs(3), "{took:?}");
    let out = cronfleet(&["pause", "api-made", "--state-dir", &state(2)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    sleep(2.0);
    assert!(ran("api-made", now() - 1).is_empty(), "paused on every node");
    let out = cronfleet(&["resume", "api-made", "--state-dir", &state(0)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let t4 = now();
    wait_for("api-made resumed everywhere", &|| ran("api-made", t4).len() == 3);
    // `apply` through an agent's API stores the fleet's file too (one without tasks only
    // when asked for).
    std::fs::write(&file, "").unwrap();
    let out = cronfleet(&["apply", file.to_str().unwrap(), "--state-dir", &state(1)]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("would remove every task of the task file (1: bye)"), "{err}");
    assert!(err.ends_with("(cronfleet apply --allow-empty)\n"), "{err}");
    assert_eq!(runtime.block_on(store.task_file()).unwrap().unwrap().1, 2, "nothing stored");
    std::fs::write(&file, v1).unwrap();
    let out = cronfleet(&["apply", file.to_str().unwrap(), "--state-dir", &state(1)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(runtime.block_on(store.task_file()).unwrap().unwrap().1, 3);
    let t5 = now();
    wait_for("every agent runs hello again", &|| ran("hello", t5).len() == 3);
    let dirs: Vec<String> = (0..3).map(state).collect();
    stop_all(agents);
    // With the agent stopped, its state directory says where to ask instead.
    for command in ["status", "runs"] {
        let out = cronfleet(&[command, "--state-dir", &dirs[0]]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains("keeps its tasks and history in postgres://"),
            "{err}"
        );
        assert!(err.contains("--server"), "{err}");
    }
    let out = cronfleet(&["doctor", "--state-dir", &dirs[0]]);
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(report.contains("the fleet's, kept in postgres://"), "{report}");
    assert!(report.contains("nothing spooled here"), "{report}");
    runtime.block_on(db.drop_database());
}

/// Network namespaces, each with its own address on a veth pair to this one; deleted when
/// dropped.
struct Namespaces(Vec<String>);

impl Namespaces {
    /// `ns` with address 10.77.`subnet`.2/24 (this side: .1), or `None` when the machine does
    /// not allow it (not root, no `ip`, no namespaces).
    fn make(names: &[(&str, u8)]) -> Option<Namespaces> {
        if !nix::unistd::geteuid().is_root() {
            return None;
        }
        let ip = |args: &[&str]| {
            Command::new("ip").args(args).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
        };
        let mut made = Namespaces(Vec::new());
        for (ns, subnet) in names {
            if !ip(&["netns", "add", ns]) {
                return None;
            }
            made.0.push((*ns).to_owned());
            let (outer, inner) = (format!("{ns}o"), format!("{ns}i"));
            let ok = ip(&["link", "add", &outer, "type", "veth", "peer", "name", &inner])
                && ip(&["link", "set", &inner, "netns", ns])
                && ip(&["addr", "add", &format!("10.77.{subnet}.1/24"), "dev", &outer])
                && ip(&["link", "set", &outer, "up"])
                && ip(&["-n", ns, "addr", "add", &format!("10.77.{subnet}.2/24"), "dev", &inner])
                && ip(&["-n", ns, "link", "set", &inner, "up"])
                && ip(&["-n", ns, "link", "set", "lo", "up"]);
            if !ok {
                return None;
            }
        }
        Some(made)
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for ns in &self.0 {
            let _ = Command::new("ip").args(["link", "del", &format!("{ns}o")]).status();
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

#[test]
fn hosts_by_address_with_agents_in_network_namespaces() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let tag = std::process::id() % 100_000;
    let (a, b) = (format!("cf{tag}a"), format!("cf{tag}b"));
    let Some(_namespaces) = Namespaces::make(&[(&a, 91), (&b, 92)]) else {
        eprintln!("skipped: this machine does not let the test make network namespaces");
        return;
    };
    let Some(db) = runtime.block_on(cronfleet::testing::TestDb::create("netns")) else { return };
    // The agents reach the database through a proxy on this side's addresses.
    let (host_port, _) = db.url.split_once('@').unwrap().1.split_once('/').unwrap();
    let proxy = Partition::on("0.0.0.0:0", host_port.to_owned());
    let url_from =
        |subnet: u8| db.url.replace(host_port, &format!("10.77.{subnet}.1:{}", proxy.port));
    let tasks = "[[task]]\nname = \"only-a\"\nschedule = \"* * * * * *\"\nhosts = [\"10.77.91.0/24\"]\ncommand = \"true\"\n\n\
                 [[task]]\nname = \"only-b\"\nschedule = \"* * * * * *\"\nhosts = [\"10.77.92.2\"]\ncommand = \"true\"\n\n\
                 [[task]]\nname = \"both\"\nschedule = \"* * * * * *\"\nhosts = [\"10.77.0.0/16\"]\ncommand = \"true\"\n\n\
                 [[task]]\nname = \"neither\"\nschedule = \"* * * * * *\"\nhosts = [\"10.78.0.0/16\"]\ncommand = \"true\"\n";
    let file = std::env::temp_dir().join(format!("cronfleet-netns-{tag}.toml"));
    std::fs::write(&file, tasks).unwrap();
    let out = cronfleet(&["apply", file.to_str().unwrap(), "--store", &db.url]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let start = |ns: &str, subnet: u8, node: &str| {
        let dir = agent_dir(&format!("netns-{node}"));
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", ns, env!("CARGO_BIN_EXE_cronfleet"), "agent"])
            .args(["--store", &url_from(subnet), "--node", node])
            .args(["--state-dir", dir.join("state").to_str().unwrap()])
            .env("CRONFLEET_LISTEN", "127.0.0.1:0");
        Agent::spawn(dir, command)
    };
    let agents = [start(&a, 91, "na"), start(&b, 92, "nb")];
    sleep(4.0);
    let logs: Vec<String> = agents.iter().map(Agent::log).collect();
    stop_all(agents);
    let runs = all_runs(&runtime, &db.url);
    let nodes_of = |task: &str| {
        let mut nodes: Vec<String> =
            runs.iter().filter(|r| r.task == task).map(|r| r.node.clone()).collect();
        nodes.sort();
        nodes.dedup();
        nodes
    };
    assert_eq!(nodes_of("only-a"), ["na"], "{}", logs.join("\n"));
    assert_eq!(nodes_of("only-b"), ["nb"]);
    assert_eq!(nodes_of("both"), ["na", "nb"]);
    assert!(nodes_of("neither").is_empty());
    // Each node registered the address of its own namespace.
    let nodes = runtime.block_on(async {
        cronfleet::store::Store::connect(&db.url).await.unwrap().nodes().await.unwrap()
    });
    let addresses = |name: &str| -> Vec<String> {
        let node = nodes.iter().find(|n| n.name == name).unwrap();
        // (The veth's IPv6 link-local address is there too.)
        node.addresses.iter().filter(|a| !a.contains(':')).cloned().collect()
    };
    assert_eq!(addresses("na"), ["10.77.91.2"]);
    assert_eq!(addresses("nb"), ["10.77.92.2"]);
    let _ = std::fs::remove_file(&file);
    runtime.block_on(db.drop_database());
}

/// Two agents sharing the store at `url` run `tasks` for 23 s (the leader's dead man's switch
/// looks every 5 s for slots at least 10 s old, from when it knew the task). Checks that the
/// records of `task` are all missed, and each slot once; returns every record and those.
fn missed_by_the_leader(
    runtime: &tokio::runtime::Runtime,
    url: &str,
    prefix: &str,
    tasks: &str,
    task: &str,
) -> (Vec<cronfleet::store::RunRecord>, Vec<cronfleet::store::RunRecord>) {
    let agents: Vec<Agent> = ["m1", "m2"]
        .iter()
        .map(|n| Agent::start(&format!("{prefix}-{n}"), tasks, &["--store", url, "--node", n]))
        .collect();
    sleep(23.0);
    stop_all(agents);
    let runs = all_runs(runtime, url);
    let missed: Vec<_> = runs.iter().filter(|r| r.task == task).cloned().collect();
    assert!(!missed.is_empty(), "{runs:?}");
    assert!(missed.iter().all(|r| r.outcome.as_str() == "missed"), "{missed:?}");
    let mut slots: Vec<i64> = missed.iter().map(|r| r.slot_ts).collect();
    slots.dedup();
    assert_eq!(slots.len(), missed.len(), "once each: {missed:?}");
    (runs, missed)
}

#[test]
fn a_slot_claimed_by_a_node_that_went_silent_before_running_it_is_recorded_missed() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let Some(db) = runtime.block_on(cronfleet::testing::TestDb::create("deadclaim")) else {
        return;
    };
    // A node that claimed the task's slots of the coming minute, then went silent (its last
    // heartbeat a minute ago) before it recorded any of them.
    runtime.block_on(async {
        let store = cronfleet::store::Store::connect(&db.url).await.unwrap();
        let long_ago = (jiff::Timestamp::now() - jiff::SignedDuration::from_secs(60)).to_string();
        store
            .register_node(&cronfleet::store::NodeRecord {
                name: "ghost".into(),
                addresses: Vec::new(),
                tags: Vec::new(),
                version: "test".into(),
                api: None,
                started_at: long_ago.clone(),
                last_seen: long_ago.clone(),
                stopped_at: None,
            })
            .await
            .unwrap();
        let now = jiff::Timestamp::now().as_second();
        for slot_ts in (now - 10..now + 60).filter(|s| s % 2 == 0) {
            assert!(store
                .fleet()
                .unwrap()
                .claim("claimed", slot_ts, 0, "ghost", &long_ago)
                .await
                .unwrap());
        }
    });
    let tasks = "[[task]]\nname = \"claimed\"\nschedule = \"*/2 * * * * *\"\nhosts = [\"ghost\"]\ncommand = \"true\"\n";
    let (_, claimed) = missed_by_the_leader(&runtime, &db.url, "deadclaim", tasks, "claimed");
    for r in &claimed {
        let reason = r.reason.as_deref().unwrap_or("");
        assert!(reason.contains("node ghost claimed this slot and went silent"), "{reason}");
    }
    runtime.block_on(db.drop_database());
}

#[test]
fn the_leader_records_slots_nobody_ran_as_missed() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let Some(db) = runtime.block_on(cronfleet::testing::TestDb::create("deadman")) else {
        return;
    };
    let tasks = "[[task]]\nname = \"orphan\"\nschedule = \"*/2 * * * * *\"\nhosts = [\"no-such-host\"]\ncommand = \"true\"\n\n\
                 [[task]]\nname = \"fine\"\nschedule = \"* * * * * *\"\nrun_on = \"one\"\ncommand = \"true\"\n";
    // No node runs `orphan`: its slots from 10 s after the start on are missed, once each.
    let (runs, orphan) = missed_by_the_leader(&runtime, &db.url, "deadman", tasks, "orphan");
    assert!(orphan[0].reason.as_deref().unwrap_or("").contains("no node ran this slot"));
    // A task that runs is never missed.
    assert!(runs.iter().filter(|r| r.task == "fine").all(|r| r.outcome.as_str() == "succeeded"));
    runtime.block_on(db.drop_database());
}

/// A start that is refused (the API's address taken, a bad tokens file) exits non-zero at
/// once with a `cronfleet:` message, before any task or daemon started.
#[test]
fn a_refused_start_runs_nothing() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = agent_dir("refused");
    let tasks = "[[task]]\nname = \"tick\"\nschedule = \"* * * * * *\"\ncommand = \"echo tick >> DIR/ran\"\n\n\
                 [[task]]\nname = \"keeper\"\nkind = \"daemon\"\ncommand = \"echo up >> DIR/ran; exec sleep 1000\"\n"
        .replace("DIR", dir.to_str().unwrap());
    std::fs::write(dir.join("tasks.toml"), tasks).unwrap();
    std::fs::write(dir.join("tokens"), "admin short\n").unwrap();
    let state = dir.join("state");
    for (why, option, value) in [
        ("cannot listen on", "--listen", addr.as_str()),
        ("tokens", "--tokens", dir.join("tokens").to_str().unwrap()),
    ] {
        let began = Instant::now();
        let mut command = Command::new(env!("CARGO_BIN_EXE_cronfleet"));
        command.args(["agent", "--config", dir.join("tasks.toml").to_str().unwrap()]);
        command.args(["--state-dir", state.to_str().unwrap(), option, value]);
        if option != "--listen" {
            command.args(["--listen", "127.0.0.1:0"]);
        }
        let out = command.output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        let last = err.lines().last().unwrap_or_default();
        assert!(last.starts_with("cronfleet: ") && last.contains(why), "{err}");
        assert!(!err.contains("task scheduled"), "{err}");
        assert!(began.elapsed() < Duration::from_secs(20), "{:?}", began.elapsed());
    }
    assert!(!dir.join("ran").exists(), "a task ran before the start was refused");
    drop(taken);
}

/// The agent's stderr closed under it (`cronfleet agent | head`, a terminal gone): it goes on
/// running and recording its tasks, and stops cleanly on SIGTERM.
#[test]
fn a_closed_stderr_does_not_stop_the_agent() {
    let dir = agent_dir("closed-stderr");
    std::fs::write(
        dir.join("tasks.toml"),
        "[[task]]\nname = \"tick\"\nschedule = \"* * * * * *\"\ncommand = \"echo tick\"\n",
    )
    .unwrap();
    let state = dir.join("state");
    let mut child = bin()
        .args(["agent", "--config", dir.join("tasks.toml").to_str().unwrap()])
        .args(["--state-dir", state.to_str().unwrap()])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stderr.take().unwrap()),
        &mut first,
    )
    .unwrap();
    // The reader is gone: every later log line meets a closed pipe.
    let runs = || {
        let out = cronfleet(&["runs", "--state-dir", state.to_str().unwrap(), "--json"]);
        serde_json::from_slice::<Vec<serde_json::Value>>(&out.stdout).map_or(0, |r| r.len())
    };
    wait_for(Duration::from_secs(30), "three runs after stderr closed", || runs() >= 3);
    assert!(matches!(child.try_wait(), Ok(None)), "the agent exited: {:?}", child.try_wait());
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0));
}

/// The foreground agent of getting-started is reached by `reload` and `stop` through its
/// state directory: its API when it serves one (the reload's answer says what changed, or
/// every error), else the pid it records there; and a remote one with `--server`.
#[test]
fn reload_and_stop_find_the_agent_by_its_state_directory() {
    let one = "[[task]]\nname = \"a\"\nschedule = \"@daily\"\ncommand = \"true\"\n";
    let two = format!("{one}\n[[task]]\nname = \"b\"\nschedule = \"@daily\"\ncommand = \"true\"\n");
    let mut agent = Agent::start("control-api", one, &[]);
    let state = agent.dir.join("state");
    let state_arg = state.to_str().unwrap().to_owned();
    wait_for(Duration::from_secs(30), "the API", || state.join("api-addr").exists());
    std::fs::write(agent.dir.join("tasks.toml"), &two).unwrap();
    let out = cronfleet(&["reload", "--state-dir", &state_arg]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "reloaded: 1 added, 0 changed, 0 removed\n");
    std::fs::write(agent.dir.join("tasks.toml"), "[[task]]\nname = \"a\"\n").unwrap();
    let out = cronfleet(&["reload", "--state-dir", &state_arg]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("tasks.toml:1:1:") && err.contains("previous tasks keep running"),
        "{err}"
    );
    // Remotely: --server and --token-file.
    let url = std::fs::read_to_string(state.join("api-addr")).unwrap();
    let token = state.join("api-token");
    let out = Command::new(env!("CARGO_BIN_EXE_cronfleet"))
        .args(["stop", "--server", url.trim(), "--token-file", token.to_str().unwrap()])
        .env_remove("CRONFLEET_STATE_DIR")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).ends_with("stopped\n"));
    assert_eq!(agent.child.wait().unwrap().code(), Some(0));

    // Without an API: the pid in the state directory.
    let agent = Agent::start("control-pid", one, &["--no-api"]);
    let state = agent.dir.join("state");
    let state_arg = state.to_str().unwrap().to_owned();
    wait_for(Duration::from_secs(30), "agent.json", || state.join("agent.json").exists());
    std::fs::write(agent.dir.join("tasks.toml"), &two).unwrap();
    let out = cronfleet(&["reload", "--state-dir", &state_arg]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("asked the agent (pid "));
    wait_for(Duration::from_secs(30), "the reload", || agent.log().contains("reloaded"));
    let out = cronfleet(&["stop", "--state-dir", &state_arg]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (code, _, log) = agent.stop_after_signal();
    assert_eq!(code, Some(0), "{log}");
    // Nothing running there: a clear error.
    let out = cronfleet(&["stop", "--state-dir", &state_arg]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no running agent found"));
}

/// A stop fires nothing new: a failed run waiting for its retry is not retried once the agent
/// is stopping, and the stop does not wait out the backoff.
#[test]
fn no_retry_starts_once_a_stop_began() {
    let tasks = "[[task]]\nname = \"fails\"\nschedule = \"@yearly\"\ncommand = \"exit 3\"\n\
                 retries = 3\nretry_backoff = \"20s\"\n";
    let agent = Agent::start("stop-retry", tasks, &[]);
    let state = agent.dir.join("state");
    let state_arg = state.to_str().unwrap().to_owned();
    wait_for(Duration::from_secs(30), "the API", || state.join("api-addr").exists());
    let out = cronfleet(&["run", "fails", "--state-dir", &state_arg]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let attempts = || {
        let out = cronfleet(&["runs", "--state-dir", &state_arg, "--task", "fails", "--json"]);
        serde_json::from_slice::<Vec<serde_json::Value>>(&out.stdout).unwrap_or_default()
    };
    wait_for(Duration::from_secs(30), "the first attempt's failure", || {
        attempts().iter().any(|r| r["outcome"] == "failed")
    });
    let (code, took, log) = agent.stop();
    assert_eq!(code, Some(0), "{log}");
    assert!(took < Duration::from_secs(15), "the stop waited out the backoff: {took:?}");
    let runs = attempts();
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0]["attempt"], 1);
}
