//! Upgrades keep state: a state database written by the first released schema (version 1,
//! checked in as a fixture) is read intact by this binary, and migrated; a database from a
//! newer cronfleet is refused with a clear message and left untouched.

use std::path::PathBuf;

use serde_json::Value;

use crate::cronfleet;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/state-v1.db");

fn state_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cronfleet-upgrade-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(FIXTURE, dir.join("state.db")).unwrap();
    dir
}

#[test]
fn the_first_schema_is_read_intact_and_migrated() {
    let dir = state_dir("v1");
    let state = dir.to_str().unwrap();
    let out = cronfleet(&["doctor", "--state-dir", state]);
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(report.contains("3 runs; schema version 1, migrated to"), "{report}");
    let out = cronfleet(&["runs", "--state-dir", state, "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let runs: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let ids: Vec<&str> = runs.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        ["poll-queue@1795392010#skipped", "backup-db@1795392000#1", "backup-db@1795305600#1"]
    );
    let failed = &runs[2];
    assert_eq!(failed["outcome"], "failed");
    assert_eq!(failed["exit_code"], 3);
    assert_eq!(failed["duration_ms"], 1991);
    assert_eq!(failed["max_rss"], 1_048_576);
    assert_eq!(runs[0]["reason"], "the previous run was still running (concurrency = forbid)");
    let out = cronfleet(&["logs", "backup-db", "backup-db@1795305600#1", "--state-dir", state]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "pg_dumpall: connection refused\n");
    // Opened once: migrated to the current schema, still all there.
    let report =
        String::from_utf8_lossy(&cronfleet(&["doctor", "--state-dir", state]).stdout).into_owned();
    assert!(
        report.contains("3 runs; schema version ") && !report.contains("migrated to"),
        "{report}"
    );
}

#[test]
fn a_newer_schema_is_refused_and_left_alone() {
    let dir = state_dir("newer");
    // As a future cronfleet would leave it.
    let db = dir.join("state.db");
    let mut bytes = std::fs::read(&db).unwrap();
    // SQLite keeps user_version as a big-endian u32 at offset 60 of the header.
    bytes[60..64].copy_from_slice(&99u32.to_be_bytes());
    std::fs::write(&db, &bytes).unwrap();
    let out = cronfleet(&["runs", "--state-dir", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("has schema version 99, newer than this cronfleet knows"), "{err}");
    assert!(err.contains("refusing to use it"), "{err}");
    assert!(std::fs::read(&db).unwrap() == bytes, "the database is untouched");
    let out = cronfleet(&["doctor", "--state-dir", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout)
        .contains("FAIL  store      schema version 99 is newer"));
}

#[test]
fn doctor_reports_what_it_finds() {
    use std::os::unix::fs::PermissionsExt;
    let dir = state_dir("doctor");
    let tasks = dir.join("tasks.toml");
    std::fs::write(&tasks, "[[task]]\nname = \"a\"\nschedule = \"@daily\"\ncommand = \"true\"\n")
        .unwrap();
    let token = dir.join("api-token");
    std::fs::write(&token, "0123456789abcdef0123456789abcdef\n").unwrap();
    let mode = |path: &std::path::Path, mode| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    mode(&token, 0o600);
    mode(&dir, 0o700);
    mode(&dir.join("state.db"), 0o600);
    let args =
        ["doctor", "--state-dir", dir.to_str().unwrap(), "--config", tasks.to_str().unwrap()];
    let out = cronfleet(&args);
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{report}");
    for line in [
        "ok    task file",
        "ok    state dir",
        "ok    store      3 runs",
        "ok    files      the agent's files are private",
        "ok    api token",
        "warn  agent      not running",
    ] {
        assert!(report.contains(line), "{line:?} in:\n{report}");
    }
    // A state directory and database others can read: warnings (the agent tightens them).
    mode(&dir, 0o755);
    mode(&dir.join("state.db"), 0o644);
    let out = cronfleet(&args);
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{report}");
    assert!(report.contains("warn  state dir  ") && report.contains("(mode 755)"), "{report}");
    let db = dir.join("state.db");
    let line =
        format!("warn  files      readable by others: {} (mode 644); chmod 600", db.display());
    assert!(report.contains(&line), "{report}");
    assert!(report.lines().any(|l| l.contains("  clock ")), "{report}");
    // A token others can read, a broken task file: failures, exit 1.
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::write(
        &tasks,
        "[[task]]\nname = \"a\"\nschedule = \"@sometimes\"\ncommand = \"true\"\n",
    )
    .unwrap();
    let out = cronfleet(&args);
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(
        report.contains("FAIL  task file  ") && report.contains("field `schedule`"),
        "{report}"
    );
    assert!(
        report.contains("FAIL  api token  ") && report.contains("readable by others (mode 644)"),
        "{report}"
    );
}
