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
    let report = text(&out.stderr);
    assert!(
        report.contains("entry 3: Times \"*/10 * 9-18 * 1-5 *\" imported as cron reads it"),
        "{report}"
    );
    assert!(report.contains("entry 4 not imported: no Command"), "{report}");
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
    // A third `backup.sh --full`: a short hash of its own line, the same on every import.
    assert_eq!(added.len(), 3, "{added:?}");
    assert_eq!(added[0], "certbot-renew");
    assert!(added[1].starts_with("backup-") && added[1].len() == "backup-".len() + 4, "{added:?}");
    assert_eq!(added[2], "sync-weekly");
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
