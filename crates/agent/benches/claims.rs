//! Fleet claims for BENCHMARKS.md: `cargo bench -p cronfleet --bench claims`.
//!
//! 10, 50 and 200 simulated agents (each its own `Services`, with its own connection pool to
//! one real PostgreSQL server, a server of the benchmark's own) and 1,000 `run_on = "one"`
//! tasks due every second, for 5 seconds. Each agent claims through the agent's own code
//! (`Services::claim_seat`: rendezvous order, preferred node at once, backups after a grace,
//! claims of a second batched into one statement per node). An agent ranked beyond the
//! backups for a slot asks nothing, so the benchmark does not start its call at all (it
//! would return at once).
//!
//! Reported: claim statements (round trips) per slot and per claiming node per slot, claim
//! latency (from the node's claim to its answer, not counting the backups' deliberate grace),
//! and slots claimed twice (must be 0) or by nobody.

use std::{
    sync::{atomic::Ordering, Arc},
    time::{Duration, Instant},
};

use cronfleet::{
    agent::{jobs, Services},
    store::{NodeRecord, Store},
};

const TASKS: usize = 1000;
const SLOTS: usize = 5;

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p) as usize]
}

struct Figures {
    agents: usize,
    statements_per_slot: f64,
    per_claiming_node_per_slot: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    double: usize,
    nobody: usize,
}

async fn run(url: &str, agents: usize) -> Figures {
    let text: String = (0..TASKS)
        .map(|i| format!("[[task]]\nname = \"a{agents}-t{i}\"\nschedule = \"* * * * * *\"\nrun_on = \"one\"\ncommand = \"true\"\n\n"))
        .collect();
    let tasks = cronfleet::config::parse(std::path::Path::new("bench.toml"), &text).unwrap().tasks;
    let now = jiff::Timestamp::now().to_string();
    let nodes: Vec<NodeRecord> = (0..agents)
        .map(|i| NodeRecord {
            name: format!("node-{i}"),
            addresses: Vec::new(),
            tags: Vec::new(),
            version: "bench".into(),
            api: None,
            started_at: now.clone(),
            last_seen: now.clone(),
            stopped_at: None,
        })
        .collect();
    let mut fleet = Vec::new();
    for node in &nodes {
        // Claims are all a simulated agent does: one connection each.
        let store = Store::connect_with(url, 1).await.unwrap();
        let services = Arc::new(Services::new(store, &node.name));
        services.set_nodes(&nodes);
        fleet.push(services);
    }
    let mut latencies = Vec::new();
    let mut wins = std::collections::HashMap::<(usize, i64), usize>::new();
    let mut claiming = 0usize;
    for _ in 0..SLOTS {
        // The next whole second, and who would act on each task's slot (ranks 0-2).
        let next = jiff::Timestamp::now().as_second() + 1;
        let slot = jiff::Timestamp::from_second(next).unwrap().to_zoned(jiff::tz::TimeZone::UTC);
        let mut calls = Vec::new();
        for (t, task) in tasks.iter().enumerate() {
            let order = jobs::rendezvous(task, next, &nodes, "node-0");
            for (rank, name) in order.iter().take(1 + jobs::CLAIM_BACKUPS as usize).enumerate() {
                let i: usize = name.trim_start_matches("node-").parse().unwrap();
                calls.push((t, rank, i));
            }
        }
        claiming += calls.len();
        let wait = jiff::Timestamp::now().duration_until(slot.timestamp()).unsigned_abs();
        tokio::time::sleep(wait).await;
        let mut handles = Vec::new();
        for (t, rank, i) in calls {
            let (services, task, slot) = (fleet[i].clone(), tasks[t].clone(), slot.clone());
            handles.push(tokio::spawn(async move {
                let began = Instant::now();
                let won = services.claim_seat(&task, 1, &slot).await;
                let grace = jobs::CLAIM_GRACE * rank as u32;
                (t, won, began.elapsed().saturating_sub(grace))
            }));
        }
        for handle in handles {
            let (t, won, took) = handle.await.unwrap();
            latencies.push(took.as_secs_f64() * 1000.0);
            if won {
                *wins.entry((t, next)).or_default() += 1;
            } else {
                wins.entry((t, next)).or_default();
            }
        }
    }
    let statements: u64 = fleet.iter().map(|s| s.claim_round_trips.load(Ordering::Relaxed)).sum();
    let slots = (TASKS * SLOTS) as f64;
    Figures {
        agents,
        statements_per_slot: statements as f64 / slots,
        per_claiming_node_per_slot: statements as f64 / claiming as f64,
        p50_ms: percentile(&mut latencies, 0.5),
        p99_ms: percentile(&mut latencies, 0.99),
        max_ms: percentile(&mut latencies, 1.0),
        double: wins.values().filter(|n| **n > 1).count(),
        nobody: wins.values().filter(|n| **n == 0).count(),
    }
}

fn main() {
    let _ = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_writer(std::io::stderr)
        .try_init();
    let server = cronfleet::testing::PgServer::start("claims-bench")
        .expect("the claims benchmark needs PostgreSQL's server programs (initdb)");
    eprintln!("server: {}", server.url);
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let counts: Vec<usize> = std::env::var("CLAIMS_AGENTS")
        .map(|v| v.split(',').filter_map(|n| n.parse().ok()).collect())
        .unwrap_or_else(|_| vec![10, 50, 200]);
    println!(
        "| agents | claim statements per slot | per claiming node per slot | claim p50 | claim p99 | max | slots claimed twice | slots claimed by nobody |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for agents in counts {
        let f = runtime.block_on(run(&server.url, agents));
        println!(
            "| {} | {:.3} | {:.3} | {:.2} ms | {:.2} ms | {:.2} ms | {} | {} |",
            f.agents,
            f.statements_per_slot,
            f.per_claiming_node_per_slot,
            f.p50_ms,
            f.p99_ms,
            f.max_ms,
            f.double,
            f.nobody
        );
        // Let the server settle between sizes.
        std::thread::sleep(Duration::from_secs(1));
    }
}
