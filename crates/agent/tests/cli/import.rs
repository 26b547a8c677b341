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

/// The imported TOML passes `cronfleet validate`.
fn validates(toml: &str) -> String {
    let path = std::env::temp_dir().join(format!(
        "cronfleet-import-{}-{}.toml",
        std::process::id(),
        toml.len()
    ));
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
    assert!(toml.contains("name = \"cd\"\nschedule = \"17 * * * *\"\ncommand = \"cd / && run-parts --report /etc/cron.hourly\""), "{toml}");
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
    assert!(toml.contains("name = \"backup\"") && toml.contains("name = \"backup-2\""), "{toml}");
    validates(&toml);
}

#[test]
fn gotorch_task_json() {
    let out = cronfleet(&["import-gotorch", &sample("gotorch.json")]);
    assert_eq!(out.status.code(), Some(1));
    let toml = text(&out.stdout);
    // A daemon keeps its hosts; Times is ignored.
    assert!(toml.contains("name = \"php\"\nkind = \"daemon\"\nargv = [\"/usr/local/php5/bin/php\", \"/tmp/test.php\"]\nhosts = [\"192.168.1.9\", \"172.16.18.16\"]"), "{toml}");
    // Day-of-week and month swapped into cron's order; Max 0 is no limit.
    assert!(toml.contains("schedule = \"*/10 * 9-18 * * 1-5\""), "{toml}");
    assert!(toml.contains("concurrency = \"allow\"\nmax_running = 1000"));
    assert!(toml.contains("name = \"php-2\"\nschedule = \"0 30 2 * * *\""));
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
