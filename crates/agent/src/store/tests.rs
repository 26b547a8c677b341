//! The store's conformance suite: each test runs against a SQLite file and a fresh PostgreSQL
//! database, and both backends must behave the same. The fleet's part, which exists only on
//! PostgreSQL, has its suite in `fleet/tests.rs`.

use sqlx::Row;

use super::{migrate, *};
use crate::testing::TestDb;

pub(super) fn dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("cronfleet-store-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

pub(super) fn record(task: &str, slot_ts: i64, outcome: Outcome) -> RunRecord {
    RunRecord {
        id: format!("{task}@{slot_ts}#1"),
        task: task.into(),
        slot: jiff::Timestamp::from_second(slot_ts).unwrap().to_string(),
        slot_ts,
        attempt: 1,
        node: "n1".into(),
        started_at: "2026-11-23T10:00:00Z".into(),
        ended_at: None,
        duration_ms: Some(12),
        exit_code: Some(0),
        signal: None,
        cpu_ms: Some(3),
        max_rss: Some(4096),
        outcome,
        output: b"out\n".to_vec(),
        output_dropped: 0,
        reason: None,
    }
}

/// One conformance test, run against a SQLite file and against a fresh PostgreSQL
/// database: both backends must behave the same.
macro_rules! conformance {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;

            #[tokio::test]
            async fn sqlite() {
                let store = Store::open(&dir(stringify!($name))).await.unwrap();
                assert_eq!(store.backend(), Backend::Sqlite);
                ($body)(store).await;
            }

            #[tokio::test]
            async fn postgres() {
                let Some(db) = TestDb::create(stringify!($name)).await else { return };
                let store = Store::connect(&db.url).await.unwrap();
                assert_eq!(store.backend(), Backend::Postgres);
                ($body)(store.clone()).await;
                store.pool.close().await;
                db.drop_database().await;
            }
        }
    };
}

conformance!(records_round_trip_and_filter, |store: Store| async move {
    let a = record("a", 100, Outcome::Succeeded);
    store.put(&a).await.unwrap();
    store.put(&record("a", 200, Outcome::Failed)).await.unwrap();
    store.put(&record("b", 150, Outcome::Succeeded)).await.unwrap();
    assert_eq!(store.run(&a.id).await.unwrap(), Some(a.clone()));
    assert_eq!(store.run("nope").await.unwrap(), None);
    let all = store.runs(&RunFilter::default()).await.unwrap();
    assert_eq!(all.iter().map(|r| r.slot_ts).collect::<Vec<_>>(), [200, 150, 100]);
    let failed = RunFilter {
        task: Some("a".into()),
        outcome: Some(Outcome::Failed),
        ..RunFilter::default()
    };
    assert_eq!(store.runs(&failed).await.unwrap().len(), 1);
    let window = RunFilter { since: Some(120), until: Some(200), ..RunFilter::default() };
    assert_eq!(store.runs(&window).await.unwrap()[0].slot_ts, 150);
    let listing = RunFilter { without_output: true, ..RunFilter::default() };
    assert!(store.runs(&listing).await.unwrap().iter().all(|r| r.output.is_empty()));
    assert_eq!(store.last_slot("a", None).await.unwrap(), Some(200));
    assert_eq!(store.last_slot("a", Some("n1")).await.unwrap(), Some(200));
    assert_eq!(store.last_slot("a", Some("n2")).await.unwrap(), None);
    assert_eq!(store.last_slot("zzz", None).await.unwrap(), None);
    // Updating a run replaces its row.
    store.put(&RunRecord { outcome: Outcome::Killed, ..a.clone() }).await.unwrap();
    assert_eq!(store.run(&a.id).await.unwrap().unwrap().outcome, Outcome::Killed);
    let recent = store.recent_by_task(1).await.unwrap();
    let latest: Vec<(&str, i64)> = recent.iter().map(|r| (r.task.as_str(), r.slot_ts)).collect();
    assert_eq!(latest, [("a", 200), ("b", 150)]);
});

conformance!(pages_follow_the_cursor, |store: Store| async move {
    for ts in 1..=7 {
        store.put(&record("p", ts, Outcome::Succeeded)).await.unwrap();
    }
    let mut filter = RunFilter { limit: 3, ..RunFilter::default() };
    let mut seen = Vec::new();
    loop {
        let page = store.page(&filter).await.unwrap();
        seen.extend(page.runs.iter().map(|r| r.slot_ts));
        match page.next {
            Some(next) => filter.cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, [7, 6, 5, 4, 3, 2, 1]);
});

conformance!(retention_by_age_and_count_per_task, |store: Store| async move {
    for ts in 1..=10 {
        store.put(&record("a", ts * 100, Outcome::Succeeded)).await.unwrap();
    }
    store.put(&record("b", 150, Outcome::Succeeded)).await.unwrap();
    store.put(&record("b", 50, Outcome::Running)).await.unwrap();
    // Keep 3 per task, and nothing with a slot before 200.
    assert_eq!(store.prune(3, 200).await.unwrap(), 8);
    let left: Vec<(String, i64)> = store
        .runs(&RunFilter { limit: 100, ..RunFilter::default() })
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.task, r.slot_ts))
        .collect();
    // a: the newest 3; b: its old run is gone, but a running one is never pruned.
    assert_eq!(left, [("a".into(), 1000), ("a".into(), 900), ("a".into(), 800), ("b".into(), 50)]);
});

conformance!(running_runs_of_a_node_become_abandoned, |store: Store| async move {
    store.put(&record("a", 100, Outcome::Running)).await.unwrap();
    store.put(&record("a", 101, Outcome::Succeeded)).await.unwrap();
    assert_eq!(store.abandon_running("other-node", "2026-11-23T11:00:00Z").await.unwrap(), 0);
    assert_eq!(store.abandon_running("n1", "2026-11-23T11:00:00Z").await.unwrap(), 1);
    let r = store.run("a@100#1").await.unwrap().unwrap();
    assert_eq!(
        (r.outcome, r.ended_at.as_deref()),
        (Outcome::Abandoned, Some("2026-11-23T11:00:00Z"))
    );
});

conformance!(api_tasks_with_revisions_and_pauses, |store: Store| async move {
    let t = StoredTask {
        name: "rule".into(),
        definition: serde_json::json!({"schedule": "@every 7d"}),
        revision: 1,
        created_at: "2026-05-01T00:00:00Z".into(),
        updated_at: "2026-05-01T00:00:00Z".into(),
    };
    assert!(store.put_api_task(&t, None).await.unwrap());
    assert!(!store.put_api_task(&t, None).await.unwrap(), "a name is created once");
    let t2 = StoredTask { revision: 2, definition: serde_json::json!({"x": 1}), ..t.clone() };
    assert!(!store.put_api_task(&t2, Some(5)).await.unwrap(), "stale revision");
    assert!(store.put_api_task(&t2, Some(1)).await.unwrap());
    assert_eq!(store.api_tasks().await.unwrap(), std::slice::from_ref(&t2));
    store.set_paused("rule", Some(Some("2030-01-01T00:00:00Z"))).await.unwrap();
    store.set_paused("rule", Some(None)).await.unwrap();
    assert_eq!(store.paused().await.unwrap(), [("rule".to_owned(), None)]);
    assert!(!store.delete_api_task("rule", Some(1)).await.unwrap());
    assert!(store.delete_api_task("rule", Some(2)).await.unwrap());
    assert!(store.api_tasks().await.unwrap().is_empty());
    assert!(store.paused().await.unwrap().is_empty(), "its pause goes with it");
});

conformance!(nodes_register_and_heartbeat, |store: Store| async move {
    let node = NodeRecord {
        name: "web-1".into(),
        addresses: vec!["10.0.0.5".into()],
        tags: vec!["web".into()],
        version: "0.1.0".into(),
        api: Some("https://10.0.0.5:7070".into()),
        started_at: "2026-11-23T10:00:00Z".into(),
        last_seen: "2026-11-23T10:00:00Z".into(),
        stopped_at: None,
    };
    store.register_node(&node).await.unwrap();
    store.heartbeat("web-1", "2026-11-23T10:00:05Z", false).await.unwrap();
    let seen = store.nodes().await.unwrap();
    assert_eq!(seen, [NodeRecord { last_seen: "2026-11-23T10:00:05Z".into(), ..node.clone() }]);
    store.heartbeat("web-1", "2026-11-23T10:01:00Z", true).await.unwrap();
    assert_eq!(store.nodes().await.unwrap()[0].stopped_at.as_deref(), Some("2026-11-23T10:01:00Z"));
    // Started again: running again.
    store.register_node(&node).await.unwrap();
    assert_eq!(store.nodes().await.unwrap()[0].stopped_at, None);
});

conformance!(a_finished_run_is_never_rolled_back, |store: Store| async move {
    let running = record("a", 100, Outcome::Running);
    let done = RunRecord { outcome: Outcome::Succeeded, ..running.clone() };
    store.put(&running).await.unwrap();
    store.put(&done).await.unwrap();
    // A start record arriving late (flushed from a spool) leaves the end in place.
    store.put(&running).await.unwrap();
    assert_eq!(store.run(&done.id).await.unwrap().unwrap().outcome, Outcome::Succeeded);
    // A lost run that ended after all gets its real end.
    let lost = RunRecord { outcome: Outcome::Lost, ..record("b", 100, Outcome::Running) };
    store.put(&lost).await.unwrap();
    let failed = RunRecord { outcome: Outcome::Failed, ..lost.clone() };
    store.put(&failed).await.unwrap();
    assert_eq!(store.run(&lost.id).await.unwrap().unwrap().outcome, Outcome::Failed);
});

#[tokio::test]
async fn sqlite_migrations_run_once_and_a_newer_schema_is_refused() {
    let d = dir("migrate");
    let store = Store::open(&d).await.unwrap();
    store.put(&record("a", 1, Outcome::Succeeded)).await.unwrap();
    drop(store);
    // Reopening keeps the data (migrations are not applied twice).
    let store = Store::open(&d).await.unwrap();
    assert_eq!(store.runs(&RunFilter::default()).await.unwrap().len(), 1);
    sqlx::raw_sql("PRAGMA user_version = 99").execute(&store.pool).await.unwrap();
    store.pool.close().await;
    let err = Store::open(&d).await.unwrap_err();
    assert!(matches!(err, StoreError::TooNew { found: 99, .. }), "{err}");
    assert!(err.to_string().contains("refusing to use it"));
}

#[tokio::test]
async fn postgres_migrates_once_under_a_lock_and_refuses_a_newer_schema() {
    let Some(db) = TestDb::create("migrate").await else { return };
    // Agents starting together: one migrates, the others wait and find it done.
    let stores = futures_util::future::join_all((0..4).map(|_| Store::connect(&db.url))).await;
    let stores: Vec<Store> = stores.into_iter().map(Result::unwrap).collect();
    stores[0].put(&record("a", 1, Outcome::Succeeded)).await.unwrap();
    assert_eq!(stores[3].runs(&RunFilter::default()).await.unwrap().len(), 1);
    let version: i64 = sqlx::query("SELECT MAX(version) FROM cronfleet_schema")
        .fetch_one(&stores[0].pool)
        .await
        .unwrap()
        .get(0);
    assert_eq!(version, migrate::known(Backend::Postgres));
    sqlx::query("UPDATE cronfleet_schema SET version = 99").execute(&stores[0].pool).await.unwrap();
    for s in stores {
        s.pool.close().await;
    }
    let err = Store::connect(&db.url).await.unwrap_err();
    assert!(matches!(err, StoreError::TooNew { found: 99, .. }), "{err}");
    assert!(!err.to_string().contains("@127.0.0.1") || err.to_string().contains(":***@"), "{err}");
    db.drop_database().await;
}

#[tokio::test]
async fn postgres_over_tls() {
    let Some(db) = TestDb::create("tls").await else { return };
    let sep = if db.url.contains('?') { '&' } else { '?' };
    let url = format!("{}{sep}sslmode=require", db.url);
    let store = match Store::connect(&url).await {
        Ok(store) => store,
        Err(e) if e.to_string().contains("does not support SSL") => {
            eprintln!("skipped: this PostgreSQL server has ssl = off");
            db.drop_database().await;
            return;
        }
        Err(e) => panic!("{e}"),
    };
    let encrypted: bool = sqlx::query("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .fetch_one(&store.pool)
        .await
        .unwrap()
        .get(0);
    assert!(encrypted, "the connection is encrypted");
    store.put(&record("a", 1, Outcome::Succeeded)).await.unwrap();
    store.pool.close().await;
    db.drop_database().await;
}

/// A migration file changed after a release (even in its whitespace) would stop every
/// database that applied it from starting (sqlx compares checksums): these pin them. A change
/// of schema is a new file.
#[test]
fn migration_checksums_are_pinned() {
    let pinned = |list: &[(i64, &str)]| -> Vec<(i64, String)> {
        list.iter().map(|(v, c)| (*v, (*c).to_owned())).collect()
    };
    assert_eq!(
        migrate::checksums(Backend::Sqlite),
        pinned(&[
            (1, "77f8ea38488f2ad0"),
            (2, "c0b84071583c9ec8"),
            (3, "b27d0be96dc75591"),
            (4, "a1648b38aba73b85"),
            (5, "4e84cfc6fe47d03b"),
            (6, "4b98db541792feed"),
            (7, "ea51a7631449bc55"),
            (8, "c7e8effeabf5fb11"),
            (9, "bb95fbca06afeace"),
        ])
    );
    assert_eq!(
        migrate::checksums(Backend::Postgres),
        pinned(&[
            (1, "056c258382108b8e"),
            (2, "a1648b38aba73b85"),
            (3, "4e84cfc6fe47d03b"),
            (4, "4b98db541792feed"),
            (5, "ea51a7631449bc55"),
            (6, "c7e8effeabf5fb11"),
            (7, "bb95fbca06afeace"),
        ])
    );
}

/// A PostgreSQL database the hand-written runner migrated (its six migrations, counted in
/// `cronfleet_schema`, no `_sqlx_migrations`) is taken over in place: its data kept, the six
/// recorded as applied without running them again, the count still there for older binaries.
#[tokio::test]
async fn postgres_migrated_by_the_old_runner_is_upgraded_in_place() {
    let Some(db) = TestDb::create("bridge").await else { return };
    sqlx::any::install_default_drivers();
    let pool = sqlx::any::AnyPoolOptions::new().max_connections(1).connect(&db.url).await.unwrap();
    for sql in [
        include_str!("../../migrations/postgres/0001_runs_paused_api_tasks.sql"),
        include_str!("../../migrations/postgres/0002_nodes.sql"),
        include_str!("../../migrations/postgres/0003_claims.sql"),
        include_str!("../../migrations/postgres/0004_leases.sql"),
        include_str!("../../migrations/postgres/0005_handoffs.sql"),
        include_str!("../../migrations/postgres/0006_task_files.sql"),
        "CREATE TABLE cronfleet_schema (version BIGINT NOT NULL); \
         INSERT INTO cronfleet_schema (version) VALUES (6);",
        "INSERT INTO runs (id, task, slot, slot_ts, attempt, node, started_at, outcome) \
         VALUES ('kept@100#1', 'kept', '1970-01-01T00:01:40Z', 100, 1, 'n1', '', 'succeeded')",
    ] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&pool).await.unwrap();
    }
    pool.close().await;
    for _ in 0..2 {
        // Taken over, then opened again as usual.
        let store = Store::connect(&db.url).await.unwrap();
        let kept = store.run("kept@100#1").await.unwrap().expect("the old database's run");
        assert_eq!((kept.task.as_str(), kept.outcome), ("kept", Outcome::Succeeded));
        let recorded: i64 = sqlx::query("SELECT COUNT(*) FROM _sqlx_migrations WHERE success")
            .fetch_one(&store.pool)
            .await
            .unwrap()
            .get(0);
        assert_eq!(recorded, migrate::known(Backend::Postgres));
        let counted: i64 = sqlx::query("SELECT MAX(version) FROM cronfleet_schema")
            .fetch_one(&store.pool)
            .await
            .unwrap()
            .get(0);
        assert_eq!(counted, migrate::known(Backend::Postgres));
        store.pool.close().await;
    }
    db.drop_database().await;
}

#[test]
fn urls_are_shown_without_passwords() {
    assert_eq!(redact("postgres://cf:s3cret@db:5432/fleet"), "postgres://cf:***@db:5432/fleet");
    assert_eq!(redact("postgres://db/fleet"), "postgres://db/fleet");
}

#[test]
fn outcome_names_round_trip() {
    for o in [
        Outcome::Running,
        Outcome::Succeeded,
        Outcome::Failed,
        Outcome::TimedOut,
        Outcome::Killed,
        Outcome::Skipped,
        Outcome::Missed,
        Outcome::Abandoned,
        Outcome::Lost,
    ] {
        assert_eq!(o.as_str().parse::<Outcome>(), Ok(o));
    }
    assert!("weird".parse::<Outcome>().is_err());
}

/// The filters a list of runs can have (the API's and the CLI's), with and without a cursor.
fn list_filters() -> Vec<(RunFilter, Option<(i64, String)>)> {
    let task = || Some("t0500".to_owned());
    let failed = || Some(Outcome::Failed);
    let mut filters = Vec::new();
    for cursor in [None, Some((1_700_000_000, "t0500@1700000000#1".to_owned()))] {
        for (task, outcome, since, until) in [
            (None, None, None, None),
            (task(), None, None, None),
            (None, failed(), None, None),
            (task(), failed(), None, None),
            (None, None, Some(1_600_000_000), Some(1_800_000_000)),
            (task(), None, Some(1_600_000_000), None),
            (None, failed(), None, Some(1_800_000_000)),
        ] {
            let filter = RunFilter { task, outcome, since, until, ..RunFilter::default() };
            filters.push((filter, cursor.clone()));
        }
    }
    filters
}

/// The plan of `sql` (`EXPLAIN QUERY PLAN` on SQLite, `EXPLAIN` on PostgreSQL), one line each.
async fn explain(store: &Store, prefix: &str, sql: &str, binds: &[runs::Bind]) -> Vec<String> {
    let mut conn = store.pool.acquire().await.unwrap();
    if prefix == "EXPLAIN" {
        // Told not to scan or sort, the planner still does where no index serves.
        for set in ["SET enable_seqscan = off", "SET enable_sort = off"] {
            sqlx::query(set).execute(&mut *conn).await.unwrap();
        }
    }
    let sql = format!("{prefix} {sql}");
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for bind in binds {
        query = match bind {
            runs::Bind::Text(t) => query.bind(t.clone()),
            runs::Bind::Int(n) => query.bind(*n),
        };
    }
    let rows = query.fetch_all(&mut *conn).await.unwrap();
    let column = if prefix == "EXPLAIN" { 0 } else { 3 };
    rows.iter().map(|r| r.get::<String, _>(column)).collect()
}

/// Every list of runs reads an index, in the list's order: `EXPLAIN` on both backends shows
/// no scan of the whole table and no sort of it, for every filter a listing can have.
#[tokio::test]
async fn every_list_of_runs_reads_an_index_in_its_order() {
    let sqlite = Store::open(&dir("explain")).await.unwrap();
    for (filter, after) in list_filters() {
        let (sql, binds) = runs::list_statement(runs::WITHOUT_OUTPUT, &filter, after.as_ref(), 50);
        let plan = explain(&sqlite, "EXPLAIN QUERY PLAN", &sql, &binds).await;
        for line in &plan {
            let scan = line.starts_with("SCAN runs") && !line.contains("INDEX");
            assert!(
                !scan && !line.contains("TEMP B-TREE"),
                "{filter:?} {after:?}:\n{sql}\n{plan:?}"
            );
        }
    }
    let Some(db) = TestDb::create("explain").await else { return };
    let pg = Store::connect(&db.url).await.unwrap();
    for (filter, after) in list_filters() {
        let (sql, binds) = runs::list_statement(runs::WITHOUT_OUTPUT, &filter, after.as_ref(), 50);
        let plan = explain(&pg, "EXPLAIN", &sql, &binds).await;
        let text = plan.join("\n");
        assert!(
            !text.contains("Seq Scan") && !text.contains("Sort"),
            "{filter:?} {after:?}:\n{sql}\n{text}"
        );
    }
    pg.pool.close().await;
    db.drop_database().await;
}
