//! `cronfleet validate`: every error at once, with file, line, column, task and field.

use std::path::PathBuf;

use crate::{cronfleet, lines};

fn write(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cronfleet-validate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs validate on a bad file: exit 2, nothing on stdout, the errors on stderr.
fn errors(name: &str, text: &str) -> Vec<String> {
    let path = write(name, text);
    let out = cronfleet(&["validate", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(out.stdout.is_empty());
    let file = path.display().to_string();
    String::from_utf8(out.stderr).unwrap().lines().map(|l| l.replace(&file, "FILE")).collect()
}

#[test]
fn the_example_file_is_valid() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/tasks.toml");
    let out = lines(&cronfleet(&["validate", example]));
    assert!(out[0].ends_with("6 tasks (5 cron, 1 daemon, 1 disabled)"), "{out:?}");
    assert!(out
        .iter()
        .any(|l| l.contains("backup-db") && l.contains("at 03:30 (Europe/Berlin); next ")));
    assert!(out.iter().any(|l| l.contains("log-shipper") && l.contains("daemon")));
    assert!(out.iter().any(|l| l.contains("old-cleanup") && l.ends_with("(disabled)")));
}

#[test]
fn every_error_at_once_with_position_task_and_field() {
    let got = errors(
        "bad.toml",
        r#"[defaults]
timezone = "Europe/Berln"

[[task]]
name = "backup"
schedule = "0 30 3 * * MON-FRY"
command = "pg_dump app"
timout = "10m"

[[task]]
name = "backup"
schedule = "@hourly"
argv = ["true"]
retries = "two"
timeout = "ten minutes"
output_limit = "12 parsecs"
user = "nobody-by-this-name"
hosts = ["10.0.0.0/33"]
"#,
    );
    assert_eq!(
        got,
        [
            r#"FILE:2:12: field `timezone`: unknown time zone "Europe/Berln" (IANA names like Europe/Berlin)"#,
            r#"FILE:6:28: task "backup", field `schedule`: invalid day-of-week: expected a number 0-7 or a name SUN-SAT, not "FRY""#,
            "  0 30 3 * * MON-FRY",
            "                 ^^^",
            "FILE:8:1: task \"backup\", field `timout`: unknown field; did you mean `timeout`?",
            "FILE:11:8: task \"backup\", field `name`: duplicate task name (first defined on line 4)",
            "FILE:14:11: task \"backup\", field `retries`: expected an integer 0-100",
            r#"FILE:15:11: task "backup", field `timeout`: "ten minutes" is not a duration; write it like 30s, 10m, 1h30m or 7d"#,
            r#"FILE:16:16: task "backup", field `output_limit`: "12 parsecs" is not a size; write it like 512B, 64KiB or 1MiB"#,
            r#"FILE:17:8: task "backup", field `user`: unknown user "nobody-by-this-name" on this machine"#,
            r#"FILE:18:10: task "backup", field `hosts`: the prefix length in "10.0.0.0/33" must be 0-32"#,
            "FILE: 9 errors",
        ]
    );
}

#[test]
fn missing_and_conflicting_fields() {
    let got = errors(
        "missing.toml",
        r#"[[task]]
schedule = "@daily"
command = "true"

[[task]]
name = "Bad Name"
command = "true"

[[task]]
name = "both"
schedule = "@daily"
command = "true"
argv = ["true"]

[[task]]
name = "daemon-with-schedule"
kind = "daemon"
schedule = "@daily"
command = "sleep infinity"

[[task]]
name = "anchored-cron"
schedule = "0 9 * * *"
anchor = 2026-05-01T10:00:00+08:00
command = "true"

[[task]]
name = "everywhere"
schedule = "@daily"
retry_elsewhere = true
command = "true"

[[task]]
name = "daemon-with-timeout"
kind = "daemon"
timeout = "1h"
command = "sleep infinity"

[[task]]
name = "retry-nothing"
schedule = "@daily"
command = "true"
retries = 2
retry_on = []

[[task]]
name = "retry-oops"
schedule = "@daily"
command = "true"
retry_on = ["failed", "oops"]
"#,
    );
    assert_eq!(
        got,
        [
            "FILE:1:1: field `name`: a task needs a name",
            // An invalid name does not name the task in messages.
            "FILE:5:1: field `schedule`: a cron task needs a schedule (or kind = \"daemon\")",
            r#"FILE:6:8: field `name`: "Bad Name": use 1-64 of a-z, 0-9, _ and -"#,
            "FILE:12:11: task \"both\", field `command`: give one of command, argv and http, not several",
            "FILE:18:12: task \"daemon-with-schedule\", field `schedule`: a daemon task runs all the time: remove its schedule",
            "FILE:24:10: task \"anchored-cron\", field `anchor`: an anchor needs an @every schedule",
            "FILE:30:19: task \"everywhere\", field `retry_elsewhere`: retry_elsewhere needs run_on = \"one\" or a number: a task every node runs has no other node to retry on",
            "FILE:36:11: task \"daemon-with-timeout\", field `timeout`: a daemon runs until stopped and has no timeout: remove it (`[defaults] timeout` does not apply to daemons)",
            "FILE:44:12: task \"retry-nothing\", field `retry_on`: an empty retry_on retries nothing: give \"failed\", \"timed_out\" or both, or set retries = 0",
            "FILE:50:23: task \"retry-oops\", field `retry_on`: \"oops\": retry_on takes \"failed\" and \"timed_out\"",
            "FILE: 10 errors",
        ]
    );
}

#[test]
fn toml_syntax_errors_and_unreadable_files() {
    let got = errors("syntax.toml", "[[task]]\nname = \"x\nschedule = \"@daily\"\n");
    assert_eq!(
        got,
        ["FILE:2:10: invalid TOML: invalid basic string, expected `\"`", "FILE: 1 error"]
    );
    let out = cronfleet(&["validate", "/nonexistent/tasks.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "cronfleet: cannot read /nonexistent/tasks.toml: No such file or directory\n"
    );
    let out = cronfleet(&["validate", "nonexistent.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "cronfleet: cannot read nonexistent.toml: No such file or directory\n"
    );
    let dir = std::env::temp_dir();
    let out = cronfleet(&["validate", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("cronfleet: cannot read ") && err.ends_with(": Is a directory\n"),
        "{err}"
    );
}

/// `validate -`, with `text` on its standard input.
fn from_stdin(text: &str) -> std::process::Output {
    use std::io::Write;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_cronfleet"))
        .args(["validate", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn a_dash_reads_the_file_from_standard_input() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/tasks.toml");
    let out = from_stdin(&std::fs::read_to_string(example).unwrap());
    let out = lines(&out);
    assert_eq!(out[0], "<stdin>: 6 tasks (5 cron, 1 daemon, 1 disabled)", "{out:?}");
    assert!(out.iter().any(|l| l.contains("backup-db")));

    let out = from_stdin("[[task]]\nname = \"x\"\nschedule = \"@sometimes\"\ncommand = \"true\"\n");
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8(out.stderr).unwrap();
    let err: Vec<&str> = err.lines().collect();
    assert!(
        err[0].starts_with("<stdin>:3:13: task \"x\", field `schedule`: invalid descriptor"),
        "{err:?}"
    );
    assert_eq!(err.last(), Some(&"<stdin>: 1 error"));
    // Nothing at all is an empty task file, which is valid.
    assert_eq!(lines(&from_stdin("")), ["<stdin>: 0 tasks (0 cron, 0 daemon, 0 disabled)"]);
}
