//! The CLI, run as a real process: `next` and `prev` here; `validate`, the importers, upgrades,
//! and the commands on a real agent (`history`, `messages`, `times`) in their modules.

mod agent;
mod history;
mod import;
mod messages;
mod times;
mod upgrade;
mod validate;

use std::process::{Command, Output};

/// The binary, with the API (of agents a test starts) on a free port.
fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cronfleet"));
    c.env("CRONFLEET_LISTEN", "127.0.0.1:0");
    c
}

pub fn cronfleet(args: &[&str]) -> Output {
    bin().args(args).env("TZ", "America/New_York").output().expect("run cronfleet")
}

pub fn lines(out: &Output) -> Vec<String> {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap().lines().map(str::to_owned).collect()
}

/// Bad input: exit code 2, nothing on stdout, the reason on stderr.
fn rejected(args: &[&str]) -> String {
    let out = cronfleet(args);
    assert_eq!(out.status.code(), Some(2), "{args:?}");
    assert!(out.stdout.is_empty(), "{args:?} printed {:?}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8(out.stderr).unwrap()
}

#[test]
fn next_prints_n_rfc3339_lines_and_nothing_else() {
    let out = cronfleet(&[
        "next",
        "--tz",
        "Europe/Berlin",
        "--after",
        "2026-11-23T10:00:00",
        "-n",
        "3",
        "0 30 9 * * MON-FRI",
    ]);
    assert_eq!(
        lines(&out),
        ["2026-11-24T09:30:00+01:00", "2026-11-25T09:30:00+01:00", "2026-11-26T09:30:00+01:00"]
    );
    assert!(out.stderr.is_empty());
}

#[test]
fn prev_goes_backwards() {
    let out = cronfleet(&[
        "prev",
        "--tz",
        "UTC",
        "--before",
        "2026-11-23T10:00:00Z",
        "-n",
        "2",
        "@hourly",
    ]);
    // Strictly before 10:00.
    assert_eq!(lines(&out), ["2026-11-23T09:00:00+00:00", "2026-11-23T08:00:00+00:00"]);
}

#[test]
fn the_expression_may_be_given_as_separate_words() {
    let out = cronfleet(&[
        "next",
        "--tz",
        "UTC",
        "--after",
        "2026-01-01T00:00:00Z",
        "-n",
        "1",
        "*/5",
        "*",
        "*",
        "*",
        "*",
    ]);
    assert_eq!(lines(&out), ["2026-01-01T00:05:00+00:00"]);
}

#[test]
fn options_may_follow_the_expression() {
    // Quoted, with the options after it (they were read as fields: "found 9 fields").
    let out = cronfleet(&["next", "0 0 29 2 *", "--tz", "UTC", "-n", "3", "--after", "2026-01-01"]);
    assert_eq!(
        lines(&out),
        ["2028-02-29T00:00:00+00:00", "2032-02-29T00:00:00+00:00", "2036-02-29T00:00:00+00:00"]
    );
    // As separate words, options before, between and after them.
    let words: Vec<&str> = "next --tz UTC 0 0 -n 2 * * 1-5 --after 2026-01-01".split(' ').collect();
    let out = cronfleet(&words);
    assert_eq!(lines(&out), ["2026-01-02T00:00:00+00:00", "2026-01-05T00:00:00+00:00"]);
    let out = cronfleet(&["prev", "@hourly", "--before", "2026-11-23T10:00:00Z", "-n", "1"]);
    assert_eq!(lines(&out), ["2026-11-23T04:00:00-05:00"]);
    // A word after `--` is the expression's even when it looks like an option.
    let out =
        cronfleet(&["next", "--tz", "UTC", "-n", "1", "--after", "2026-01-01", "--", "@daily"]);
    assert_eq!(lines(&out), ["2026-01-02T00:00:00+00:00"]);
}

#[test]
fn a_count_below_one_is_refused() {
    for command in ["next", "prev"] {
        let err = rejected(&[command, "-n", "0", "* * * * *"]);
        assert!(err.contains("invalid value '0' for '--count <N>': must be at least 1"), "{err}");
        let err = rejected(&[command, "* * * * *", "--count=-1"]);
        assert!(err.contains("expected a whole number, 1 or more"), "{err}");
    }
}

#[test]
fn zone_defaults_to_the_systems_and_time_to_now() {
    // TZ=America/New_York is set for the child: a local time without offset is read there.
    let out = cronfleet(&["next", "--after", "2026-07-01T08:00", "-n", "1", "0 9 * * *"]);
    assert_eq!(lines(&out), ["2026-07-01T09:00:00-04:00"]);
    // Without --after, the answer is in the future.
    let out = cronfleet(&["next", "-n", "1", "* * * * * *"]);
    let first: jiff::Timestamp = lines(&out)[0].parse().unwrap();
    assert!(first > jiff::Timestamp::now() - jiff::SignedDuration::from_secs(1));
}

#[test]
fn time_zone_prefix_wins_over_tz() {
    let out = cronfleet(&[
        "next",
        "--tz",
        "UTC",
        "--after",
        "2026-11-23T00:00:00Z",
        "-n",
        "1",
        "CRON_TZ=Asia/Tokyo 0 10 * * *",
    ]);
    assert_eq!(lines(&out), ["2026-11-23T10:00:00+09:00"]);
}

#[test]
fn the_examples_in_docs_semantics() {
    let out = cronfleet(&[
        "next",
        "--tz",
        "America/New_York",
        "--after",
        "2026-03-07T12:00",
        "-n",
        "2",
        "30 2 * * *",
    ]);
    assert_eq!(lines(&out), ["2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00"]);
    let out = cronfleet(&[
        "next",
        "--anchor",
        "2026-05-01T10:00:00+08:00",
        "--tz",
        "Asia/Shanghai",
        "--after",
        "2026-05-03T00:00",
        "-n",
        "2",
        "@every 7d",
    ]);
    assert_eq!(lines(&out), ["2026-05-08T10:00:00+08:00", "2026-05-15T10:00:00+08:00"]);
    let out = cronfleet(&[
        "next",
        "--tz",
        "America/New_York",
        "--after",
        "2026-10-31T23:45",
        "-n",
        "5",
        "*/30 * * * *",
    ]);
    assert_eq!(
        lines(&out),
        [
            "2026-11-01T00:00:00-04:00",
            "2026-11-01T00:30:00-04:00",
            "2026-11-01T01:00:00-04:00",
            "2026-11-01T01:30:00-04:00",
            "2026-11-01T01:00:00-05:00",
        ]
    );
}

#[test]
fn bad_expression_exits_2_with_the_caret() {
    let err = rejected(&["next", "0 60 * * *"]);
    assert_eq!(err, "cronfleet: invalid hour: 60 is out of range 0-23\n  0 60 * * *\n    ^^\n");
    let err = rejected(&["next", "0 0 30 2 *"]);
    assert!(err.contains("never fires"), "{err}");
}

#[test]
fn bad_zone_time_or_anchor_exits_2() {
    assert!(rejected(&["next", "--tz", "Mars/Olympus", "* * * * *"]).contains("unknown time zone"));
    assert!(rejected(&["next", "--after", "yesterday", "* * * * *"]).contains("invalid time"));
    assert!(rejected(&["prev", "--before", "2026-13-01", "* * * * *"]).contains("invalid time"));
    assert!(rejected(&["next", "--anchor", "2026-01-01T00:00:00Z", "0 9 * * *"]).contains("anchor"));
    assert!(rejected(&["next", "-n", "many", "* * * * *"]).contains("invalid value"));
    assert!(rejected(&["next"]).contains("EXPR"));
}
