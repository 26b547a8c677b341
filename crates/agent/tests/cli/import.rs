//! `cronfleet import-crontab` and `import-gotorch` on real samples; every import validates.

use std::process::{Output, Stdio};

use super::bin;

use crate::cronfleet;

const SAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/cli/samples");

fn sample(name: &str) -> String {
    format!("{SAMPLES}/{name}")
}

fn text(out: &[u8]) -> String {
    String::from_utf8(out.to_vec()).unwrap()
}

/// The names of the tasks in an import's TOML, in order.
fn names(toml: &str) -> Vec<&str> {
    toml.lines().filter_map(|l| l.strip_prefix("name = \"")?.strip_suffix('"')).collect()
}

/// Each task's name by the input line it came from (its comment: `# FILE:N: LINE`).
fn names_by_line(toml: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut origin = None;
    for line in toml.lines() {
        if let Some(comment) = line.strip_prefix("# ") {
            // `FILE:N: LINE`: the line's text after the second `: `-separated part.
            origin = comment.splitn(3, ':').nth(2).map(|l| l.trim().to_owned());
        } else if let Some(name) = line.strip_prefix("name = \"").and_then(|n| n.strip_suffix('"'))
        {
            out.push((origin.take().unwrap(), name.to_owned()));
        }
    }
    out
}

/// The imported TOML passes `cronfleet validate`.
fn validates(toml: &str) -> String {
    static COUNT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path =
        std::env::temp_dir().join(format!("cronfleet-import-{}-{n}.toml", std::process::id()));
    std::fs::write(&path, toml).unwrap();
    let out = cronfleet(&["validate", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}\n{toml}", text(&out.stderr));
    text(&out.stdout)
}

#[test]
fn debian_system_crontab() {
    let out = cronfleet(&["import-crontab", "--system", &sample("debian.crontab")]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let toml = text(&out.stdout);
    // Named after what runs (run-parts' directory), not the first word (`cd`, `test`).
    assert!(toml.contains("name = \"cron-hourly\"\nschedule = \"17 * * * *\"\ncommand = \"cd / && run-parts --report /etc/cron.hourly\""), "{toml}");
    assert_eq!(names(&toml), ["cron-hourly", "cron-daily", "cron-weekly", "cron-monthly"]);
    assert!(toml.contains("schedule = \"47 6 * * 7\""));
    assert!(toml.contains("user = \"root\""));
    assert!(toml.contains(
        "env = { PATH = \"/usr/local/sbin:/usr/local/bin:/sbin:/bin:/usr/sbin:/usr/bin\" }"
    ));
    let listing = validates(&toml);
    assert!(listing.contains("4 tasks (4 cron, 0 daemon, 0 disabled)"), "{listing}");
    assert!(text(&out.stderr).ends_with("4 tasks imported, 0 entries not imported\n"));
}

#[test]
fn user_crontab_with_env_shell_percent_reboot_and_a_bad_line() {
    let out = cronfleet(&["import-crontab", &sample("user.crontab")]);
    assert_eq!(out.status.code(), Some(1));
    let toml = text(&out.stdout);
    // SHELL=/bin/bash: through bash. CRON_TZ: the task's zone. `%`: standard input.
    assert!(
        toml.contains("argv = [\"/bin/bash\", \"-c\", \"tar -zcf /var/backups/home.tgz /home/\"]"),
        "{toml}"
    );
    assert!(toml.contains("timezone = \"Europe/London\""));
    assert!(toml.contains("<<'CRONFLEET_STDIN'\\nReport for %date\\ndone\\nCRONFLEET_STDIN"));
    validates(&toml);
    let report: Vec<String> = text(&out.stderr).lines().map(|l| l.replace(SAMPLES, "S")).collect();
    assert_eq!(
        report,
        [
            "S/user.crontab:4: MAILTO is not imported: cronfleet reports failures through alerts and keeps every run's output",
            "S/user.crontab:8: @reboot is not a schedule; not imported: /usr/local/bin/start-tunnel",
            "S/user.crontab:11: not imported: 61 is out of range 0-59",
            "S/user.crontab: 4 tasks imported, 2 entries not imported",
        ]
    );
}

#[test]
fn crontab_from_standard_input() {
    let mut child = bin()
        .args(["import-crontab", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"*/5 * * * * /usr/bin/backup --fast\n0 0 * * * /usr/bin/backup --full\n")
        .unwrap();
    let out: Output = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let toml = text(&out.stdout);
    // The second `backup` is told apart by its own arguments, not by its position.
    assert_eq!(names(&toml), ["backup", "backup-full"]);
    validates(&toml);
}

#[test]
fn gotorch_task_json() {
    let out = cronfleet(&["import-gotorch", &sample("gotorch.json")]);
    assert_eq!(out.status.code(), Some(1));
    let toml = text(&out.stdout);
    // A daemon keeps its hosts; Times is ignored. Named after the script PHP runs.
    assert!(toml.contains("name = \"test\"\nkind = \"daemon\"\nargv = [\"/usr/local/php5/bin/php\", \"/tmp/test.php\"]\nhosts = [\"192.168.1.9\", \"172.16.18.16\"]"), "{toml}");
    // Day-of-week and month swapped into cron's order; Max 0 is no limit.
    assert!(toml.contains("schedule = \"*/10 * 9-18 * * 1-5\""), "{toml}");
    assert!(toml.contains("concurrency = \"allow\"\nmax_running = 1000"));
    assert!(toml.contains("name = \"report\"\nschedule = \"0 30 2 * * *\""), "{toml}");
    let listing = validates(&toml);
    assert!(listing.contains("3 tasks (2 cron, 1 daemon, 0 disabled)"), "{listing}");
    // Each note at the entry's line (the entries start on line 2), saying what Gotorch did.
    let report: Vec<String> = text(&out.stderr).lines().map(|l| l.replace(SAMPLES, "S")).collect();
    assert_eq!(
        report,
        [
            "S/gotorch.json:2: entry 1: Max 3: Gotorch kept 3 copies of this daemon running; cronfleet keeps one (to run 3, copy the task under other names)",
            "S/gotorch.json:3: entry 2: Times \"0 30 2 * * *\": Gotorch never ran it: the second field \"0\", the minute field \"30\" and the hour field \"2\" matched nothing there (Gotorch's loop for a number N runs from N up to N, the end excluded, so it matches nothing). Imported as cron reads it: \"0 30 2 * * *\", at 02:30",
            "S/gotorch.json:4: entry 3: Times \"*/10 * 9-18 * 1-5 *\": Gotorch refused it with \"time num out of range\" for the day-of-week field \"1-5\": Gotorch takes no digit in the day-of-month, day-of-week and month fields (its check compares the positions of the digits, counted from 0, with the field's range); it exited on loading this file, so none of its tasks ran. Imported as cron reads it: \"*/10 * 9-18 * * 1-5\", every 10 seconds, between 09:00 and 18:59, Monday through Friday",
            "S/gotorch.json:5: entry 4 not imported: no Command",
            "S/gotorch.json: 3 tasks imported, 1 entries not imported",
        ]
    );
}

#[test]
fn unreadable_or_malformed_input_exits_2() {
    let out = cronfleet(&["import-crontab", "/nonexistent/crontab"]);
    assert_eq!(out.status.code(), Some(2));
    let path = std::env::temp_dir().join(format!("cronfleet-bad-{}.json", std::process::id()));
    std::fs::write(&path, "{\"not\": \"an array\"}").unwrap();
    let out = cronfleet(&["import-gotorch", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("expected a JSON array"));
}

#[test]
fn crontab_tz_stays_in_the_jobs_env_and_cron_tz_sets_the_zone() {
    let out = cronfleet(&["import-crontab", &sample("names.crontab")]);
    let toml = text(&out.stdout);
    // TZ=Europe/London is the jobs' environment (cronie passes it on), on every task.
    assert_eq!(toml.matches("env = { TZ = \"Europe/London\" }").count(), 7, "{toml}");
    // CRON_TZ is the schedules' zone, until `CRON_TZ=` (empty) turns it off.
    assert_eq!(toml.matches("timezone = \"America/New_York\"").count(), 6, "{toml}");
    assert!(
        toml.ends_with(
            "name = \"artisan-queue-restart\"\nschedule = \"45 23 * * *\"\ncommand = \"php /var/www/artisan queue:restart\"\nenv = { TZ = \"Europe/London\" }\n\n"
        ),
        "{toml}"
    );
    let listing = validates(&toml);
    assert!(listing.contains("7 tasks (7 cron, 0 daemon, 0 disabled)"), "{listing}");
}

#[test]
fn crontab_every_is_not_crontab_syntax() {
    let out = cronfleet(&["import-crontab", &sample("names.crontab")]);
    assert_eq!(out.status.code(), Some(1));
    let report: Vec<String> = text(&out.stderr).lines().map(|l| l.replace(SAMPLES, "S")).collect();
    assert_eq!(
        report,
        [
            "S/names.crontab:11: not imported: @every is not crontab syntax (cron would refuse this line); in the task file write schedule = \"@every 5m\" and the command",
            "S/names.crontab: 7 tasks imported, 1 entries not imported",
        ]
    );
    // In a system crontab the interval is still the word after @every, not the user.
    let path = std::env::temp_dir().join(format!("cronfleet-every-{}.cron", std::process::id()));
    std::fs::write(&path, "@every 90s root /usr/local/bin/heartbeat\n").unwrap();
    let out = cronfleet(&["import-crontab", "--system", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("write schedule = \"@every 90s\""), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty());
}

#[test]
fn crontab_tasks_are_named_after_what_they_run() {
    let out = cronfleet(&["import-crontab", &sample("names.crontab")]);
    let toml = text(&out.stdout);
    assert_eq!(
        names_by_line(&toml),
        [
            // A script, without its extension.
            ("0 3 * * * /usr/local/bin/backup.sh --full", "backup"),
            // Past `cd X &&`; PHP's script and its subcommand.
            ("*/5 * * * * cd /var/www/app && php artisan schedule:run >> /dev/null 2>&1", "artisan-schedule-run"),
            // The same script: told apart by its own arguments.
            ("0 4 * * * /usr/local/bin/backup.sh --quick", "backup-quick"),
            // Past flock and its lock file, nice and its value.
            ("15 * * * * flock -n /tmp/sync.lock nice -n 10 /opt/bin/sync.py", "sync"),
            // Past an assignment, into `sh -c`, past `sleep` and `exec`.
            ("30 1 * * * LANG=C sh -c 'sleep 5; exec /usr/bin/python3 /opt/jobs/report.py daily'", "report-daily"),
            // The first line's twin: `backup` is taken, `backup-full` is not.
            ("0 5 * * * /usr/local/bin/backup.sh --full", "backup-full"),
            ("45 23 * * * php /var/www/artisan queue:restart", "artisan-queue-restart"),
        ]
        .map(|(l, n)| (l.to_owned(), n.to_owned()))
    );
}

#[test]
fn crontab_names_are_stable_across_reimports() {
    let original = std::fs::read_to_string(sample("names.crontab")).unwrap();
    let first = cronfleet(&["import-crontab", &sample("names.crontab")]);
    let again = cronfleet(&["import-crontab", &sample("names.crontab")]);
    assert_eq!(first.stdout, again.stdout, "the same crontab gives the same tasks");
    let before = names_by_line(&text(&first.stdout));

    // The crontab grows: a line in the middle, and lines at the end that share a program
    // with existing ones.
    let mut lines: Vec<&str> = original.lines().collect();
    lines.insert(7, "0 6 * * * /usr/bin/certbot renew --quiet");
    lines.push("0 7 * * * /usr/local/bin/backup.sh --full");
    lines.push("0  7 * * *\t/usr/local/bin/backup.sh  --full");
    lines.push("0 8 * * * /opt/bin/sync.py --weekly");
    let path = std::env::temp_dir().join(format!("cronfleet-grown-{}.crontab", std::process::id()));
    std::fs::write(&path, lines.join("\n")).unwrap();
    let grown = cronfleet(&["import-crontab", path.to_str().unwrap()]);
    let after = names_by_line(&text(&grown.stdout));
    for (line, name) in &before {
        let now = after.iter().find(|(l, _)| l == line).map(|(_, n)| n);
        assert_eq!(now, Some(name), "{line}: renamed by adding lines");
    }
    let added: Vec<&str> =
        after.iter().filter(|a| !before.contains(a)).map(|(_, n)| n.as_str()).collect();
    // A third `backup.sh --full`: a short hash of its own line, the same on every import
    // (its spacing aside: the same line spaced otherwise is a twin, numbered).
    assert_eq!(added.len(), 4, "{added:?}");
    assert_eq!(added[0], "certbot-renew");
    assert!(added[1].starts_with("backup-") && added[1].len() == "backup-".len() + 4, "{added:?}");
    assert_eq!(added[2], format!("{}-2", added[1]));
    assert_eq!(added[3], "sync-weekly");
    validates(&text(&grown.stdout));
}

#[test]
fn crontab_tasks_the_task_file_would_refuse_are_not_written() {
    // A user unknown here, a zone unknown anywhere: reported at their lines, left out, exit 1.
    let out = cronfleet(&["import-crontab", "--system", &sample("refused.cron.d")]);
    assert_eq!(out.status.code(), Some(1));
    let toml = text(&out.stdout);
    assert_eq!(names(&toml), ["rotate-logs"]);
    let listing = validates(&toml);
    assert!(listing.contains("1 tasks (1 cron, 0 daemon, 0 disabled)"), "{listing}");
    let report: Vec<String> = text(&out.stderr).lines().map(|l| l.replace(SAMPLES, "S")).collect();
    assert_eq!(
        report,
        [
            "S/refused.cron.d:3: not imported: the task file would refuse it: `user`: unknown user \"cronfleet-no-such-user\" on this machine",
            "S/refused.cron.d:5: not imported: the task file would refuse it: `timezone`: unknown time zone \"Mars/Olympus_Mons\" (IANA names like Europe/Berlin)",
            "S/refused.cron.d: 1 tasks imported, 2 entries not imported",
        ]
    );
}

#[test]
fn gotorch_times_are_compared_with_what_gotorch_did() {
    let out = cronfleet(&["import-gotorch", &sample("gotorch-semantics.json")]);
    let report: Vec<String> = text(&out.stderr).lines().map(|l| l.replace(SAMPLES, "S")).collect();
    let times: Vec<&str> =
        report.iter().filter(|l| l.contains(": Times ")).map(String::as_str).collect();
    // Line numbers are the `Times` keys' lines in the pretty-printed file.
    assert_eq!(
        times[..3],
        [
            // A plain number and a range both matched nothing in Gotorch: both say so.
            "S/gotorch-semantics.json:5: entry 1: Times \"3 * * * * *\": Gotorch never ran it: the second field \"3\" matched nothing there (Gotorch's loop for a number N runs from N up to N, the end excluded, so it matches nothing). Imported as cron reads it: \"3 * * * * *\", at second 3",
            "S/gotorch-semantics.json:12: entry 2: Times \"* 2-4 * * * *\": Gotorch never ran it: the minute field \"2-4\" matched nothing there (Gotorch takes both ends of a range from its start, so a range matches nothing). Imported as cron reads it: \"* 2-4 * * * *\", every second, at minute 2 through 4",
            // `*` never reached a field's last value.
            "S/gotorch-semantics.json:19: entry 3: Times \"*/5 * * * * *\": Gotorch never ran it at minute 59, at hour 23, on day 31, on Sundays or in December (its loop over a field stops before the field's last value; Sunday is 0, before its start). Imported as cron reads it: \"*/5 * * * * *\", every 5 seconds",
        ]
    );
    // Every common task imported carries its note: none runs as it did.
    assert_eq!(times.len(), 7, "{report:#?}");
}

#[test]
fn gotorch_max_ips_script_keys_and_task_type() {
    let out = cronfleet(&["import-gotorch", &sample("gotorch-semantics.json")]);
    assert_eq!(out.status.code(), Some(1));
    let report: Vec<String> = text(&out.stderr)
        .lines()
        .map(|l| l.replace(SAMPLES, "S"))
        .filter(|l| !l.contains(": Times "))
        .collect();
    assert_eq!(
        report,
        [
            "S/gotorch-semantics.json:27: entry 4: Max 3: Gotorch kept 3 copies of this daemon running; cronfleet keeps one (to run 3, copy the task under other names)",
            "S/gotorch-semantics.json:35: entry 5: Ips \"10.0.0.300\", \"web-1\" never matched (Gotorch compared each entry, as text, with one IPv4 address of its host, like 192.168.1.9): left out of hosts, which keeps \"10.0.0.5\"",
            "S/gotorch-semantics.json:42: entry 6 not imported: Gotorch ran it on no host: Ips \"10.0.0.0/8\" never matched (Gotorch compared each entry, as text, with one IPv4 address of its host, like 192.168.1.9)",
            "S/gotorch-semantics.json:45: entry 7: Script is Gotorch's older name for Command (renamed in October 2017; later versions ignore it): imported as the command",
            "S/gotorch-semantics.json:54: entry 9 not imported: no Times",
            "S/gotorch-semantics.json:56: entry 9: TaskType \"cron\" is not \"daemon\": Gotorch ran it as a common task, as this import does",
            "S/gotorch-semantics.json:57: entry 9: key \"Time\" is not one Gotorch reads (Command, TaskType, Times, Max, Ips); ignored",
            "S/gotorch-semantics.json: 7 tasks imported, 2 entries not imported",
        ]
    );
    let toml = text(&out.stdout);
    assert_eq!(
        names(&toml),
        ["at-three", "range", "every-five", "worker", "some-hosts", "old", "lowercase"]
    );
    // The address Gotorch could match is kept, the others are not (and the file validates).
    assert!(
        toml.contains(
            "argv = [\"/usr/bin/php\", \"/srv/jobs/some-hosts.php\"]\nhosts = [\"10.0.0.5\"]\n"
        ),
        "{toml}"
    );
    // `Script`, and keys in any case (Go's decoder ignores case).
    assert!(toml.contains("argv = [\"/usr/bin/php\", \"/srv/jobs/old.php\"]"), "{toml}");
    assert!(
        toml.contains(
            "schedule = \"*/20 * * * * *\"\nargv = [\"/usr/bin/php\", \"/srv/jobs/lowercase.php\"]"
        ),
        "{toml}"
    );
    let listing = validates(&toml);
    assert!(listing.contains("7 tasks (6 cron, 1 daemon, 0 disabled)"), "{listing}");
}

#[test]
fn gotorch_daemon_without_a_limit_and_refused_times() {
    let path = std::env::temp_dir().join(format!("cronfleet-daemon-{}.json", std::process::id()));
    std::fs::write(
        &path,
        r#"[{"Command": "/usr/bin/php /srv/queue.php", "TaskType": "daemon", "Times": "* * * * * 1", "Max": 0}]"#,
    )
    .unwrap();
    let out = cronfleet(&["import-gotorch", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    let report = text(&out.stderr);
    assert!(report.contains(":1: entry 1: Max 0 (no limit): Gotorch started another copy of this daemon at every check, without end; cronfleet keeps one running"), "{report}");
    assert!(report.contains(":1: entry 1: Times \"* * * * * 1\": Gotorch refused it with \"time num out of range\" for the month field \"1\""), "{report}");
    assert_eq!(names(&text(&out.stdout)), ["queue"]);
    validates(&text(&out.stdout));
}

#[test]
fn gotorch_duplicates_limits_and_values_gotorch_could_not_decode() {
    let path = std::env::temp_dir().join(format!("cronfleet-odd-{}.json", std::process::id()));
    std::fs::write(
        &path,
        r#"[
  {"Command": "/usr/bin/php /srv/sync.php", "Times": "*/10 * * * * *", "Ips": ["10.0.0.1"]},
  {"Command": "/usr/bin/php /srv/sync.php", "Times": "*/30 * * * * *", "Ips": ["10.0.0.2"]},
  {"Command": "/usr/bin/php /srv/burst.php", "Times": "*/10 * * * * *", "Max": 5000},
  {"Command": " /usr/bin/php /srv/space.php", "Times": "*/10 * * * * *"},
  {"Command": "/usr/bin/php /srv/ips.php", "Times": "*/10 * * * * *", "Ips": [10]},
  {"Command": "/usr/bin/php /srv/max.php", "Times": "*/10 * * * * *", "Max": "3"},
  "/usr/bin/php /srv/not-an-object.php"
]"#,
    )
    .unwrap();
    let out = cronfleet(&["import-gotorch", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let report: Vec<String> = text(&out.stderr)
        .lines()
        .filter(|l| !l.contains(": Times "))
        .map(|l| l.split_once(".json").unwrap().1.to_owned())
        .collect();
    assert_eq!(
        report,
        [
            ":3: entry 2: the same Command as entry 1: Gotorch ran one of them on each host (the last whose Ips include it); cronfleet runs both",
            ":4: entry 3: Max 5000: cronfleet allows at most 1000 runs at once",
            ":5: entry 4 not imported: Command starts with a space: Gotorch ran an empty program name, which fails",
            ":6: entry 5 not imported: Ips must hold strings (Gotorch could not load this file)",
            ":7: entry 6 not imported: Max must be a whole number (Gotorch could not load this file)",
            ":8: entry 7 not imported: not an object (Gotorch could not load this file)",
            ": 3 tasks imported, 4 entries not imported",
        ]
    );
    let toml = text(&out.stdout);
    // The second `sync` has the same arguments as the first: a hash of its own entry.
    let names = names(&toml);
    assert_eq!((names.len(), names[0], names[2]), (3, "sync", "burst"), "{names:?}");
    assert!(names[1].starts_with("sync-") && names[1].len() == "sync-".len() + 4, "{names:?}");
    assert!(toml.contains("max_running = 1000"));
    validates(&toml);
}

#[test]
fn help_says_how_the_importers_read_their_input() {
    let help = text(&cronfleet(&["import-crontab", "--help"]).stdout);
    for said in [
        "TZ= too (cron passes it to the job); CRON_TZ= is the schedule's zone",
        "@every (not crontab syntax",
        "`cd /srv && php artisan schedule:run` is artisan-schedule-run",
        "lines added below rename nothing",
        "one it refuses is reported and left out",
    ] {
        assert!(help.contains(said), "{said:?} not in:\n{help}");
    }
    let help = text(&cronfleet(&["import-gotorch", "--help"]).stdout);
    for said in [
        "Script, its name before October 2017",
        "a number or a range matched nothing (the task never ran)",
        "a daemon's Max",
        "at the line of the key concerned",
    ] {
        assert!(help.contains(said), "{said:?} not in:\n{help}");
    }
}
