//! A service that checks business rules on their own cadence, changing entries at runtime.
//!
//! Each rule is "check every N days, counted from when the rule was created". Rules appear,
//! change frequency, pause and disappear while the scheduler runs. To keep the demo short it
//! runs in virtual time: a simulated month passes in a moment.
//!
//! Run it with `cargo run -p cronfleet-scheduler --example rules`.

use std::time::Duration;

use cronfleet_scheduler::{wrap, EntryOptions, Event, RunContext, Scheduler, Timing, TokioClock};
use jiff::{tz::TimeZone, Zoned};

/// A rule row, as a service would keep it in its own database.
struct Rule {
    id: u32,
    created: &'static str,
    every: &'static str,
}

fn timing(rule: &Rule) -> Timing {
    let created: Zoned = rule.created.parse().expect("a valid creation time");
    Timing::parse(&format!("@every {}", rule.every))
        .and_then(|t| t.anchored(created))
        .expect("a valid interval")
}

fn check(rule_id: u32) -> impl Fn(RunContext) -> std::future::Ready<()> + Send + Sync {
    move |ctx: RunContext| {
        println!(
            "  {}  check rule {rule_id} (slot {})",
            ctx.scheduler.now().datetime(),
            ctx.slot.date()
        );
        std::future::ready(())
    }
}

#[tokio::main(flavor = "current_thread", start_paused = true)]
async fn main() {
    let clock = TokioClock::starting_at("2026-05-03T04:00:00Z".parse().unwrap()); // noon in Shanghai
    let scheduler = Scheduler::builder()
        .clock(clock)
        .time_zone(TimeZone::get("Asia/Shanghai").unwrap())
        .wrap(wrap::skip_if_running())
        .wrap(wrap::timeout(Duration::from_secs(60)))
        .build();

    let rules = [
        Rule { id: 1, created: "2026-05-01T10:00:00+08:00[Asia/Shanghai]", every: "7d" },
        Rule { id: 2, created: "2026-05-02T09:00:00+08:00[Asia/Shanghai]", every: "2d" },
    ];
    let mut ids = Vec::new();
    for rule in &rules {
        let options = EntryOptions::new().name(format!("rule-{}", rule.id));
        ids.push(scheduler.add_with(timing(rule), check(rule.id), options));
    }
    let mut events = scheduler.subscribe();
    tokio::spawn(async move {
        while let Ok(event) = events.recv().await {
            if let Event::Finished { entry, outcome: Err(e), .. } = event {
                println!("  entry {entry} failed: {e}");
            }
        }
    });
    scheduler.start();

    println!("service started on 2026-05-03; rule 1 was created on May 1st, every 7 days:");
    days(6).await;

    println!("May 9: rule 2 now every 3 days (still counted from its creation)");
    let rule2 = Rule { id: 2, created: rules[1].created, every: "3d" };
    scheduler.set_timing(ids[1], timing(&rule2)).unwrap();
    days(5).await;

    println!("May 14: rule 1 paused, rule 3 created (every day)");
    scheduler.pause(ids[0]).unwrap();
    let rule3 = Rule { id: 3, created: "2026-05-14T08:00:00+08:00[Asia/Shanghai]", every: "1d" };
    let id3 = scheduler.add(timing(&rule3), check(3));
    days(3).await;

    println!("May 17: rule 1 resumed, rule 2 deleted, rule 3 checked right now");
    scheduler.resume(ids[0]).unwrap();
    scheduler.remove(ids[1]).unwrap();
    scheduler.run_now(id3).unwrap();
    days(8).await;

    println!("entries at the end:");
    for e in scheduler.entries() {
        let next = e.next.map(|n| n.datetime().to_string()).unwrap_or_default();
        println!("  {} {:?} {} next {next}", e.id, e.name.unwrap_or_default(), e.timing);
    }
    scheduler.shutdown(Duration::from_secs(5)).await;
}

async fn days(n: u64) {
    tokio::time::sleep(Duration::from_secs(n * 86_400)).await;
}
