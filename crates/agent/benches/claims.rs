//! Fleet claims for BENCHMARKS.md: `cargo bench -p cronfleet --bench claims`.
//!
//! 10, 50 and 200 simulated agents (each its own `Member` of the fleet, with its own connection pool to
//! one real PostgreSQL server, a server of the benchmark's own) and 1,000 `run_on = "one"`
//! tasks due every second, for a warm-up second and 5 measured ones. Each agent claims
//! through the agent's own code: `Member::claim_seat` (rendezvous rank, the slot's claim
//! made ahead taken from memory, backups after their grace, claims due together batched into
//! one statement per node) and `Ahead::ask` for the next slot on its preferred node. An agent
//! ranked beyond the backups for a slot asks nothing, so the benchmark does not start its
//! call at all (it would return at once).
//!
//! Reported: claim statements (round trips) per slot and per claiming node per slot, each
//! claim statement's latency (from sending it to its answer), how long the preferred node's
//! and the backups' jobs waited at the slot for their answer (less the backups' deliberate
//! grace), and slots claimed twice (must be 0) or by nobody.

use std::{
    sync::{atomic::Ordering, Arc},
    time::Duration,
};

use cronfleet::{
    agent::{fleet::rendezvous, Services},
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
    wait_p50_ms: f64,
    wait_p99_ms: f64,
    backup_p99_ms: f64,
    double: usize,
    nobody: usize,
}

async fn run(url: &str, agents: usize) -> Figures {
    let text: String = (0..TASKS)
        .map(|i| format!("[[task]]\nname = \"a{agents}-t{i}\"\nschedule = \"* * * * * *\"\nrun_on = \"one\"\ncommand = \"true\"\n\n"))
        .collect();
    let tasks: Vec<Arc<cronfleet::config::Task>> =
        cronfleet::config::parse(std::path::Path::new("bench.toml"), &text)
            .unwrap()
            .tasks
            .into_iter()
            .map(Arc::new)
            .collect();
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
        let services = Services::new(store, &node.name).fleet.clone().expect("a shared store");
        services.set_nodes(&nodes);
        *services.claim_times.lock().unwrap() = Some(Vec::new());
        fleet.push(services);
    }
    let mut waits = Vec::new();
    let mut backup_waits = Vec::new();
    let mut wins = std::collections::HashMap::<(usize, i64), usize>::new();
    let mut claiming = 0usize;
    // The first second has no claims made ahead (as after an agent's start): warm-up.
    // Consecutive seconds, as an agent's jobs fire them: who acts on each task's slot (ranks
    // 0-2), worked out before the first.
    let first = jiff::Timestamp::now().as_second() + 2;
    let plan: Vec<Vec<(usize, usize, usize)>> = (0..=SLOTS as i64)
        .map(|second| {
            let mut calls = Vec::new();
            for (t, task) in tasks.iter().enumerate() {
                let order = rendezvous::rendezvous(task, first + second, &nodes, "node-0");
                for (rank, name) in
                    order.iter().take(1 + rendezvous::CLAIM_BACKUPS as usize).enumerate()
                {
                    let i: usize = name.trim_start_matches("node-").parse().unwrap();
                    calls.push((t, rank, i));
                }
            }
            calls
        })
        .collect();
    let mut handles = Vec::new();
    for (second, calls) in plan.iter().enumerate() {
        let next_preferred: Vec<usize> = match plan.get(second + 1) {
            Some(next) => {
                next.iter().filter(|(_, rank, _)| *rank == 0).map(|(_, _, i)| *i).collect()
            }
            None => Vec::new(),
        };
        let calls = calls.clone();
        let slot_ts = first + second as i64;
        let slot = jiff::Timestamp::from_second(slot_ts).unwrap().to_zoned(jiff::tz::TimeZone::UTC);
        if second > 0 {
            claiming += calls.len();
        }
        let next_slot = slot.checked_add(jiff::SignedDuration::from_secs(1)).unwrap();
        let wait = jiff::Timestamp::now().duration_until(slot.timestamp()).unsigned_abs();
        tokio::time::sleep(wait).await;
        if second == 1 {
            // From here on, measured.
            for services in &fleet {
                services.claim_round_trips.store(0, Ordering::Relaxed);
                services.claim_times.lock().unwrap().as_mut().unwrap().clear();
            }
        }

        for (t, rank, i) in calls {
            let (services, task) = (fleet[i].clone(), tasks[t].clone());
            let slot = slot.clone();
            handles.push(tokio::spawn(async move {
                let won = services.claim_seat(&task, 1, &slot, None).await;
                // From the slot: how long the job waited for its answer, without the backups'
                // deliberate grace.
                let took = jiff::Timestamp::now().duration_since(slot.timestamp()).unsigned_abs();
                let grace = match rank {
                    0 => Duration::ZERO,
                    k => rendezvous::backup_wait(k as u32, &services.node),
                };
                (second, t, slot_ts, rank, won, took.saturating_sub(grace))
            }));
        }
        // Every node fires every task's slot and asks for the next one to be claimed ahead,
        // which only the next slot's preferred node does (`Member::claim_seat` with its
        // next slot); the others' asks end at once, so the benchmark makes only the one.
        for (t, i) in next_preferred.iter().enumerate() {
            fleet[*i].ahead.ask(&fleet[*i], &tasks[t], 1, &next_slot);
        }
    }
    for handle in handles {
        let (second, t, slot_ts, rank, won, took) = handle.await.unwrap();
        if second == 0 {
            continue;
        }
        match rank {
            0 => waits.push(took.as_secs_f64() * 1000.0),
            _ => backup_waits.push(took.as_secs_f64() * 1000.0),
        }
        if won {
            *wins.entry((t, slot_ts)).or_default() += 1;
        } else {
            wins.entry((t, slot_ts)).or_default();
        }
    }
    // The claims made ahead for the second after the last.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let statements: u64 = fleet.iter().map(|s| s.claim_round_trips.load(Ordering::Relaxed)).sum();
    let mut latencies: Vec<f64> = fleet
        .iter()
        .flat_map(|s| s.claim_times.lock().unwrap().take().unwrap_or_default())
        .map(|d| d.as_secs_f64() * 1000.0)
        .collect();
    let slots = (TASKS * SLOTS) as f64;
    Figures {
        agents,
        statements_per_slot: statements as f64 / slots,
        per_claiming_node_per_slot: statements as f64 / claiming as f64,
        p50_ms: percentile(&mut latencies, 0.5),
        p99_ms: percentile(&mut latencies, 0.99),
        max_ms: percentile(&mut latencies, 1.0),
        wait_p50_ms: percentile(&mut waits, 0.5),
        wait_p99_ms: percentile(&mut waits, 0.99),
        backup_p99_ms: percentile(&mut backup_waits, 0.99),
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
        "| agents | claim statements per slot | per claiming node per slot | claim p50 | claim p99 | max | preferred node's wait at the slot p50 | p99 | backups' wait p99 | slots claimed twice | slots claimed by nobody |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for agents in counts {
        let f = runtime.block_on(run(&server.url, agents));
        println!(
            "| {} | {:.3} | {:.3} | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms | {} | {} |",
            f.agents,
            f.statements_per_slot,
            f.per_claiming_node_per_slot,
            f.p50_ms,
            f.p99_ms,
            f.max_ms,
            f.wait_p50_ms,
            f.wait_p99_ms,
            f.backup_p99_ms,
            f.double,
            f.nobody
        );
        // Let the server settle between sizes.
        std::thread::sleep(Duration::from_secs(1));
    }
}
