//! A node's place in a slot's rendezvous order (`fleet::rendezvous::rank_among`), which every node works
//! out for each `run_on` task at each of its slots: `cargo bench -p cronfleet --bench rank`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use cronfleet::{agent::fleet::rendezvous, store::NodeRecord};

fn rank(c: &mut Criterion) {
    let text = "[[task]]\nname = \"billing-reconcile\"\nschedule = \"* * * * * *\"\nrun_on = \"one\"\ncommand = \"true\"\n";
    let task =
        cronfleet::config::parse(std::path::Path::new("bench.toml"), text).unwrap().tasks.remove(0);
    let now = jiff::Timestamp::now();
    let mut group = c.benchmark_group("rank_among");
    for fleet in [10, 200] {
        let nodes: Vec<NodeRecord> = (0..fleet)
            .map(|i| NodeRecord {
                name: format!("node-{i}.example.internal"),
                addresses: vec![format!("10.0.{}.{}", i / 250, i % 250 + 1)],
                tags: vec!["web".into()],
                version: "bench".into(),
                api: None,
                started_at: now.to_string(),
                last_seen: now.to_string(),
                stopped_at: None,
            })
            .collect();
        let candidates = rendezvous::candidates(&nodes, now);
        let me = "node-7.example.internal";
        let mut slot = 1_796_000_000i64;
        group.bench_function(format!("{fleet}_nodes"), |b| {
            b.iter(|| {
                slot += 1;
                rendezvous::rank_among(black_box(&task), slot, black_box(&candidates), me)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, rank);
criterion_main!(benches);
