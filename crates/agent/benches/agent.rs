//! The agent's figures for BENCHMARKS.md: `cargo bench -p cronfleet --bench agent`.
//!
//! - launch lateness (slot to the moment the child is spawned) for 200 tasks due in the same
//!   second, through the scheduler and the runner;
//! - sustained launches per second (spawn + wait of /bin/true through the runner), beside this
//!   machine's raw spawn + wait rate (std's `Command`, which uses posix_spawn) in the same run;
//! - an idle agent (the real binary) with 1,000 tasks not due: resident memory and wakeups;
//! - validating a 10,000-task file (what a reload does before applying the difference).

use std::{
    collections::BTreeMap,
    path::Path,
    process::{Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use cronfleet::{
    config::{self, Program},
    runner::{self, RunSpec},
};
use cronfleet_scheduler::{RunContext, Scheduler, Timing};
use jiff::Timestamp;
use tokio_util::sync::CancellationToken;

fn spec() -> RunSpec {
    RunSpec {
        program: Program::Argv(vec!["/bin/true".into()]),
        env: BTreeMap::new(),
        workdir: None,
        user: None,
        timeout: None,
        kill_grace: Duration::from_secs(5),
        output_limit: 64 * 1024,
        secrets: cronfleet::mask::Secrets::default(),
        children: None,
    }
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p) as usize]
}

fn raw_spawn_rate(n: usize) -> f64 {
    let began = Instant::now();
    for _ in 0..n {
        Command::new("/bin/true").stdout(Stdio::null()).stderr(Stdio::null()).status().unwrap();
    }
    n as f64 / began.elapsed().as_secs_f64()
}

fn runner_rate(rt: &tokio::runtime::Runtime, n: usize) -> f64 {
    rt.block_on(async {
        let began = Instant::now();
        for _ in 0..n {
            runner::run(&spec(), CancellationToken::new()).await.unwrap();
        }
        n as f64 / began.elapsed().as_secs_f64()
    })
}

fn launch_lateness(rt: &tokio::runtime::Runtime, tasks: usize) -> Vec<f64> {
    rt.block_on(async {
        let s = Scheduler::builder().time_zone(jiff::tz::TimeZone::UTC).build();
        let late: Arc<Mutex<Vec<f64>>> = Arc::default();
        let timing = Timing::parse("* * * * * *").unwrap();
        for _ in 0..tasks {
            let late = late.clone();
            s.add(timing.clone(), move |ctx: RunContext| {
                let late = late.clone();
                async move {
                    let ms = Timestamp::now().duration_since(ctx.slot.timestamp()).as_secs_f64()
                        * 1000.0;
                    late.lock().unwrap().push(ms);
                    let _ = runner::run(&spec(), ctx.cancel.token()).await;
                }
            });
        }
        s.start();
        // Three seconds of 200 launches each.
        tokio::time::sleep(Duration::from_millis(3200)).await;
        s.shutdown(Duration::from_secs(10)).await;
        let v = late.lock().unwrap().clone();
        v
    })
}

fn idle_agent(tasks: usize) -> (u64, u64, f64) {
    let dir = std::env::temp_dir().join(format!("cronfleet-bench-idle-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut toml = String::new();
    for i in 0..tasks {
        toml.push_str(&format!(
            "[[task]]\nname = \"t{i}\"\nschedule = \"@yearly\"\ncommand = \"true\"\n\n"
        ));
    }
    std::fs::write(dir.join("tasks.toml"), toml).unwrap();
    let bin = env!("CARGO_BIN_EXE_cronfleet");
    let mut child = Command::new(bin)
        .args(["agent", "--no-watch", "--config"])
        .arg(dir.join("tasks.toml"))
        .arg("--state-dir")
        .arg(dir.join("state"))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let status = |field: &str| -> u64 {
        let text = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
        text.lines()
            .find(|l| l.starts_with(field))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    // Wakeups: context switches of all the agent's threads over a quiet window.
    let switches = || -> u64 {
        let mut total = 0;
        for task in std::fs::read_dir(format!("/proc/{}/task", child.id())).unwrap().flatten() {
            let text = std::fs::read_to_string(task.path().join("status")).unwrap_or_default();
            for l in text.lines().filter(|l| l.contains("ctxt_switches")) {
                total +=
                    l.split_whitespace().nth(1).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            }
        }
        total
    };
    let before = switches();
    let window = 10.0;
    std::thread::sleep(Duration::from_secs_f64(window));
    let wakeups = switches() - before;
    let rss_kib = status("VmRSS:");
    let _ = child.kill();
    let _ = child.wait();
    (rss_kib, wakeups, window)
}

fn parse_big_file(tasks: usize) -> f64 {
    let mut toml = String::from("[defaults]\ntimezone = \"Europe/Berlin\"\ntimeout = \"10m\"\n\n");
    for i in 0..tasks {
        toml.push_str(&format!(
            "[[task]]\nname = \"task-{i}\"\nschedule = \"0 {} {} * * MON-FRI\"\ncommand = \"/usr/local/bin/job --id {i}\"\nhosts = [\"web-*\", \"10.0.{}.0/24\"]\n\n",
            i % 60,
            i % 24,
            i % 256
        ));
    }
    let mut times: Vec<f64> = (0..5)
        .map(|_| {
            let began = Instant::now();
            let set = config::parse(Path::new("big.toml"), &toml).unwrap();
            assert_eq!(set.tasks.len(), tasks);
            began.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    percentile(&mut times, 0.5)
}

fn main() {
    // `cargo test --benches` runs bench targets without `--bench`: do nothing then.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let raw = raw_spawn_rate(500);
    let ours = runner_rate(&rt, 500);
    let mut late = launch_lateness(&rt, 200);
    let (p50, p99, max) =
        (percentile(&mut late, 0.5), percentile(&mut late, 0.99), percentile(&mut late, 1.0));
    let (rss, wakeups, window) = idle_agent(1000);
    let parse_ms = parse_big_file(10_000);
    println!("| measure | figure | target |");
    println!("|---|---|---|");
    println!("| launch lateness, 200 tasks due in the same second ({} launches) | p50 {p50:.2} ms, p99 {p99:.2} ms, max {max:.2} ms | p99 < 5 ms |", late.len());
    println!("| sustained launches (spawn + wait of /bin/true through the runner) | {ours:.0}/s | ≥ 50% of raw |");
    println!("| raw spawn + wait, same machine, same run (std Command) | {raw:.0}/s | |");
    println!("| ratio | {:.0}% | ≥ 50% |", ours / raw * 100.0);
    println!(
        "| idle agent, 1,000 tasks not due: resident memory | {:.1} MB | < 20 MB |",
        rss as f64 / 1024.0
    );
    println!("| idle agent, 1,000 tasks not due: context switches in {window:.0} s (all threads) | {wakeups} | no wakeups between slots |");
    println!(
        "| validating a 10,000-task file (median of 5) | {parse_ms:.1} ms | reload < 100 ms |"
    );
}
