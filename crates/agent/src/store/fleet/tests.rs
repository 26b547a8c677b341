//! The fleet's part of the store (PostgreSQL only): claims, leases, handoffs and the spool.

use super::*;
use crate::{
    store::{
        tests::{dir, record},
        Outcome, RunFilter,
    },
    testing::TestDb,
};

/// One test of the fleet's part, against a fresh PostgreSQL database (skipped without one
/// outside CI).
macro_rules! fleet_test {
    ($name:ident, $body:expr) => {
        #[tokio::test]
        async fn $name() {
            let Some(db) = TestDb::create(stringify!($name)).await else { return };
            let store = Store::connect(&db.url).await.unwrap();
            let fleet = store.fleet().expect("PostgreSQL has a fleet part");
            ($body)(store.clone(), fleet).await;
            store.pool.close().await;
            db.drop_database().await;
        }
    };
}

#[tokio::test]
async fn sqlite_has_no_fleet_part() {
    let store = Store::open(&dir("no-fleet")).await.unwrap();
    assert!(store.fleet().is_none());
}

fleet_test!(leases_limit_runs_and_expire, |_store: Store, fleet: Fleet| async move {
    assert_eq!(fleet.lease("t", 2, "a", "r1", 100, 130).await.unwrap(), Some(0));
    assert_eq!(fleet.lease("t", 2, "b", "r2", 100, 130).await.unwrap(), Some(1));
    assert_eq!(fleet.lease("t", 2, "c", "r3", 100, 130).await.unwrap(), None, "both held");
    fleet.renew_lease("t", 0, "r1", None).await.unwrap();
    assert_eq!(fleet.lease("t", 2, "c", "r3", 101, 131).await.unwrap(), Some(0), "given back");
    fleet.renew_lease("t", 1, "r2", Some(200)).await.unwrap();
    // r3's lease expires at 131; at 140 another run may take its seat, not r2's (renewed).
    assert_eq!(fleet.lease("t", 2, "d", "r4", 140, 170).await.unwrap(), Some(0));
    assert_eq!(fleet.lease("t", 2, "e", "r5", 140, 170).await.unwrap(), None);
});

fleet_test!(lost_runs_are_handed_over_once, |store: Store, fleet: Fleet| async move {
    let mut run = RunRecord { node: "a".into(), ..record("t", 100, Outcome::Running) };
    store.put(&run).await.unwrap();
    assert_eq!(fleet.lease("t", 1, "a", &run.id, 100, 130).await.unwrap(), Some(0));
    let lost = fleet.lose_runs(&["a".into()], "later").await.unwrap();
    assert_eq!(lost.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), [run.id.as_str()]);
    // The lost run's lease is free at once.
    assert_eq!(fleet.lease("t", 1, "b", "t-retry", 101, 131).await.unwrap(), Some(0));
    run.outcome = Outcome::Lost;
    assert!(fleet.hand_off(&run, "lost with node a", "now").await.unwrap());
    assert!(!fleet.hand_off(&run, "again", "now").await.unwrap(), "once per slot");
    assert!(fleet.handoffs("a").await.unwrap().is_empty(), "not to the node it came from");
    assert_eq!(
        fleet.handoffs("b").await.unwrap(),
        [Handoff { task: "t".to_owned(), slot_ts: 100, attempt: 2 }]
    );
    assert!(!fleet.take_handoff("t", 100, "a").await.unwrap());
    assert!(fleet.take_handoff("t", 100, "b").await.unwrap());
    assert!(!fleet.take_handoff("t", 100, "c").await.unwrap(), "taken once");
    assert!(fleet.handoffs("c").await.unwrap().is_empty());
    // b could not run it after all: offered again.
    fleet.release_handoff("t", 100).await.unwrap();
    assert!(fleet.take_handoff("t", 100, "c").await.unwrap());
});

fleet_test!(a_seat_is_claimed_once, |_store: Store, fleet: Fleet| async move {
    assert!(fleet.claim("t", 100, 0, "a", "now").await.unwrap());
    assert!(!fleet.claim("t", 100, 0, "b", "now").await.unwrap());
    assert!(fleet.claim("t", 100, 1, "b", "now").await.unwrap());
    assert!(fleet.claim("t", 101, 0, "b", "now").await.unwrap());
    // Asking again for a seat it holds (its first answer was lost) is not a second claim
    // by another node.
    assert!(fleet.claim("t", 100, 0, "a", "later").await.unwrap());
    assert!(!fleet.claim("t", 100, 0, "b", "later").await.unwrap());
    // Pruning forgets the claims of old slots.
    fleet.prune(1000, 101).await.unwrap();
    assert!(fleet.claim("t", 100, 0, "c", "now").await.unwrap());
    assert!(!fleet.claim("t", 101, 0, "c", "now").await.unwrap());
    // Many at once: only the free ones (and those it holds) are its own.
    let seat = |task: &str, slot_ts, seat| Seat { task: task.into(), slot_ts, seat };
    let wanted: Vec<Seat> =
        vec![seat("t", 101, 0), seat("t", 102, 0), seat("u", 101, 0), seat("t", 100, 0)];
    let got = fleet.claim_many(&wanted, "c", "now").await.unwrap();
    let mut got: Vec<_> = got.into_iter().collect();
    got.sort();
    assert_eq!(got, [seat("t", 100, 0), seat("t", 102, 0), seat("u", 101, 0)]);
    assert!(fleet.claim_many(&wanted[1..3], "d", "now").await.unwrap().is_empty());
    // Names travel intact, whatever they hold (PostgreSQL gets the seats as JSON).
    let odd: Vec<Seat> = vec![seat("we\"ird, [name] ✓", 7, 2)];
    assert_eq!(fleet.claim_many(&odd, "c", "now").await.unwrap().len(), 1);
    assert_eq!(fleet.claim_many(&odd, "c", "again").await.unwrap().len(), 1, "its own");
    assert!(fleet.claim_many(&odd, "d", "now").await.unwrap().is_empty());
    assert_eq!(fleet.claim_holder(&odd[0].task, 7, 2).await.unwrap().as_deref(), Some("c"));
    assert_eq!(fleet.claim_holder(&odd[0].task, 7, 3).await.unwrap(), None);
    // A seat given back is free again; only its holder can give it back.
    assert!(!fleet.unclaim("t", 102, 0, "d").await.unwrap());
    assert!(fleet.unclaim("t", 102, 0, "c").await.unwrap());
    assert!(fleet.claim("t", 102, 0, "d", "then").await.unwrap());
    let claims = fleet.claims("t").await.unwrap();
    let held: Vec<(i64, u32, &str, &str)> = claims
        .iter()
        .map(|c| (c.slot_ts, c.seat, c.node.as_str(), c.claimed_at.as_str()))
        .collect();
    assert_eq!(held, [(100, 0, "c", "now"), (101, 0, "b", "now"), (102, 0, "d", "then")]);
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_are_spooled_while_the_database_is_away_and_flushed_when_it_is_back() {
    let Some(mut server) = crate::testing::PgServer::start("spool") else { return };
    let spool_dir = dir("spool");
    let store =
        Store::connect(&server.url).await.unwrap().with_spool(&spool_dir, "n1").await.unwrap();
    let fleet = store.fleet().unwrap();
    let before = RunRecord { node: "n1".into(), ..record("a", 100, Outcome::Succeeded) };
    store.put(&before).await.unwrap();
    assert!(!fleet.away());

    server.stop();
    // A run starts and ends while the database is away; another is still going.
    let started = RunRecord { node: "n1".into(), ..record("a", 200, Outcome::Running) };
    store.put(&started).await.expect("spooled, not an error");
    assert!(fleet.away());
    let ended = RunRecord { outcome: Outcome::Failed, ..started.clone() };
    store.put(&ended).await.unwrap();
    let going = RunRecord { node: "n1".into(), ..record("a", 300, Outcome::Running) };
    store.put(&going).await.unwrap();
    // A slot of a `run_on` task nobody could claim, and one another node will have claimed.
    let slot =
        |ts: i64| jiff::Timestamp::from_second(ts).unwrap().to_zoned(jiff::tz::TimeZone::UTC);
    fleet.unclaimed("solo", &slot(400), 1);
    fleet.unclaimed("solo", &slot(401), 1);
    assert!(fleet.flush("n1").await.is_err(), "still away");

    server.start_again();
    fleet.claim("solo", 401, 0, "n2", "now").await.unwrap();
    let flushed = fleet.flush("n1").await.unwrap();
    assert_eq!(flushed, Flushed { runs: 2, missed: 1 });
    assert!(!fleet.away());
    let runs = store.runs(&RunFilter::default()).await.unwrap();
    let outcomes: Vec<(i64, Outcome)> = runs.iter().map(|r| (r.slot_ts, r.outcome)).collect();
    assert_eq!(
        outcomes,
        [
            (400, Outcome::Missed),
            (300, Outcome::Running),
            (200, Outcome::Failed),
            (100, Outcome::Succeeded)
        ]
    );
    // The run still going ends with the database back: written there directly.
    store.put(&RunRecord { outcome: Outcome::Succeeded, ..going.clone() }).await.unwrap();
    assert_eq!(store.run(&going.id).await.unwrap().unwrap().outcome, Outcome::Succeeded);
    // Nothing left in the spool; flushing again does nothing.
    assert_eq!(fleet.flush("n1").await.unwrap(), Flushed::default());
    let local = Store::open(&spool_dir).await.unwrap();
    assert!(local.runs(&RunFilter::default()).await.unwrap().is_empty());
}
