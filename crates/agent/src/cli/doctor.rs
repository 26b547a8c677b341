//! `cronfleet doctor`: checks what an agent on this machine depends on, and says what it found.

use std::{os::unix::fs::PermissionsExt, path::PathBuf, process::ExitCode};

use clap::Args;

use crate::{config, pidfile, private, store::Store};

/// `cronfleet doctor`.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// The task file [default: the one the agent of the state directory runs].
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The agent's state directory.
    #[arg(long, value_name = "DIR", env = "CRONFLEET_STATE_DIR")]
    state_dir: Option<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Level {
    Ok,
    Warn,
    Fail,
}

struct Report(Vec<(Level, &'static str, String)>);

impl Report {
    fn add(&mut self, level: Level, what: &'static str, text: impl Into<String>) {
        self.0.push((level, what, text.into()));
    }
}

/// Whether the kernel says the system clock is synchronized (NTP), by `adjtimex`.
fn clock_synchronized() -> Option<bool> {
    // SAFETY: `timex` is plain data; with `modes` 0, adjtimex only reads.
    let mut tx: libc::timex = unsafe { std::mem::zeroed() };
    // SAFETY: a valid pointer to a local.
    let state = unsafe { libc::adjtimex(&mut tx) };
    if state == -1 {
        return None;
    }
    Some(state != libc::TIME_ERROR && tx.status & libc::STA_UNSYNC == 0)
}

/// The files the agent writes in its state directory, all mode 0600 (`api-token` has a check
/// of its own).
const PRIVATE_FILES: &[&str] = &[
    "state.db",
    "state.db-wal",
    "state.db-shm",
    "spool/state.db",
    "spool/state.db-wal",
    "spool/state.db-shm",
    "api-addr",
    "agent.json",
];

/// Runs `cronfleet doctor`: exit 0 when nothing failed (warnings allowed), 1 otherwise.
pub fn run(args: DoctorArgs) -> Result<ExitCode, String> {
    let dir = args.state_dir.unwrap_or_else(crate::agent::default_state_dir);
    let mut report = Report(Vec::new());
    let identity = crate::agent::Identity::read(&dir);

    // The task file.
    let config = args.config.or_else(|| identity.as_ref().map(|i| i.config.clone()));
    match &config {
        None => report.add(
            Level::Warn,
            "task file",
            "none given (--config) and no agent has run with this state directory",
        ),
        Some(path) if path == std::path::Path::new(crate::agent::STORE_FILE) => report.add(
            Level::Ok,
            "task file",
            format!(
                "the fleet's, kept in {} (cronfleet plan/apply FILE --store URL)",
                identity.as_ref().and_then(|i| i.store.as_deref()).unwrap_or("the database")
            ),
        ),
        Some(path) => match config::load(path) {
            Ok(set) => report.add(
                Level::Ok,
                "task file",
                format!(
                    "{}: {} tasks, {} notifiers",
                    path.display(),
                    set.tasks.len(),
                    set.notifiers.len()
                ),
            ),
            Err(errors) => report.add(Level::Fail, "task file", errors.to_string()),
        },
    }

    // The running agent: is the file on disk the one in effect?
    let remote = super::remote::Remote {
        server: None,
        token_file: None,
        ca_cert: None,
        state_dir: Some(dir.clone()),
    };
    if let Ok(Some(client)) = remote.find() {
        match client.get::<crate::api::model::Node>("/api/v1/node") {
            Ok(node) => {
                // Times in the local zone, to the second, as `status` shows them.
                let local = super::zone::View::local();
                match super::status::not_in_effect(&node.task_file, &local) {
                    Some(warning) => report.add(Level::Fail, "reload", warning),
                    None => report.add(
                        Level::Ok,
                        "reload",
                        format!(
                            "the running agent runs the file as read at {}",
                            local.show(&node.task_file.last_success_at)
                        ),
                    ),
                }
            }
            Err(e) => report.add(Level::Warn, "reload", format!("cannot ask the agent: {e}")),
        }
    }

    // The state directory.
    match std::fs::metadata(&dir) {
        Err(_) => report.add(
            Level::Warn,
            "state dir",
            format!("{} does not exist yet (the agent creates it)", dir.display()),
        ),
        Ok(meta) => {
            let mode = meta.permissions().mode() & 0o777;
            let probe = dir.join(".cronfleet-doctor");
            let writable = std::fs::write(&probe, b"").is_ok();
            let _ = std::fs::remove_file(&probe);
            if !writable {
                report.add(
                    Level::Fail,
                    "state dir",
                    format!("{} is not writable by this user", dir.display()),
                );
            } else if mode & 0o002 != 0 {
                report.add(
                    Level::Fail,
                    "state dir",
                    format!("{} is writable by everyone (mode {mode:o})", dir.display()),
                );
            } else if private::looser(mode) {
                report.add(
                    Level::Warn,
                    "state dir",
                    format!(
                        "{} is open to others (mode {mode:o}): the agent makes it 700 when it \
                         starts, or chmod 700 it",
                        dir.display()
                    ),
                );
            } else {
                report.add(Level::Ok, "state dir", format!("{} (mode {mode:o})", dir.display()));
            }
        }
    }

    // The store, read without changing it.
    let shared = identity.as_ref().and_then(|i| i.store.clone());
    if let Some(url) = shared {
        let spool = dir.join("spool");
        let spooled = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(rt) if spool.join("state.db").exists() => {
                rt.block_on(Store::inspect(&spool)).map(|(_, _, runs)| runs).unwrap_or(0)
            }
            _ => 0,
        };
        match spooled {
            0 => report.add(Level::Ok, "store", format!("{url} (shared; nothing spooled here)")),
            n => report.add(
                Level::Warn,
                "store",
                format!("{url} (shared); {n} run records spooled here, written when the agent reaches it"),
            ),
        }
    } else if dir.join("state.db").exists() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        match runtime.block_on(Store::inspect(&dir)) {
            Ok((version, known, _)) if version > known => report.add(
                Level::Fail,
                "store",
                format!("schema version {version} is newer than this cronfleet's ({known}): upgrade cronfleet"),
            ),
            Ok((version, known, runs)) if version < known => report.add(
                Level::Ok,
                "store",
                format!("{runs} runs; schema version {version}, migrated to {known} when the agent starts"),
            ),
            Ok((version, _, runs)) => report.add(Level::Ok, "store", format!("{runs} runs; schema version {version}")),
            Err(e) => report.add(Level::Fail, "store", e.to_string()),
        }
    } else {
        report.add(Level::Ok, "store", "no run history yet (state.db is created on first start)");
    }

    // The agent's other files: 0600 when it wrote them.
    let open: Vec<String> = PRIVATE_FILES
        .iter()
        .map(|name| dir.join(name))
        .filter_map(|path| {
            let mode = std::fs::symlink_metadata(&path).ok()?.permissions().mode() & 0o777;
            private::looser(mode).then(|| format!("{} (mode {mode:o})", path.display()))
        })
        .collect();
    match open.as_slice() {
        [] => report.add(Level::Ok, "files", "the agent's files are private (mode 600)"),
        open => report.add(
            Level::Warn,
            "files",
            format!(
                "readable by others: {}; chmod 600 them (the agent tightens its database's at start)",
                open.join(", ")
            ),
        ),
    }

    // The API token.
    let token = dir.join("api-token");
    match std::fs::metadata(&token) {
        Ok(meta) if meta.permissions().mode() & 0o077 != 0 => report.add(
            Level::Fail,
            "api token",
            format!(
                "{} is readable by others (mode {:o}): chmod 600 it",
                token.display(),
                meta.permissions().mode() & 0o777
            ),
        ),
        Ok(_) => report.add(Level::Ok, "api token", format!("{} (mode 600)", token.display())),
        Err(_) => {
            report.add(Level::Ok, "api token", "none yet (created on the agent's first start)")
        }
    }

    // The agent.
    let pid = identity.as_ref().map(|i| i64::from(i.pid));
    match pid.filter(|p| pidfile::alive(*p as i32)) {
        Some(pid) => {
            let url =
                std::fs::read_to_string(dir.join("api-addr")).ok().map(|u| u.trim().to_owned());
            let healthy = url.as_ref().map(|u| {
                reqwest::blocking::Client::builder()
                    .danger_accept_invalid_certs(true)
                    .timeout(std::time::Duration::from_secs(3))
                    .build()
                    .ok()
                    .and_then(|c| c.get(format!("{u}/healthz")).send().ok())
                    .is_some_and(|r| r.status().is_success())
            });
            match (url, healthy) {
                (Some(url), Some(true)) => {
                    report.add(Level::Ok, "agent", format!("running, pid {pid}, API {url}"))
                }
                (Some(url), _) => report.add(
                    Level::Fail,
                    "agent",
                    format!("running, pid {pid}, but its API {url} does not answer"),
                ),
                (None, _) => report.add(Level::Ok, "agent", format!("running, pid {pid}, no API")),
            }
        }
        None => report.add(Level::Warn, "agent", "not running"),
    }

    // The clock.
    match clock_synchronized() {
        Some(true) => report.add(Level::Ok, "clock", "synchronized (NTP)"),
        Some(false) => report.add(
            Level::Warn,
            "clock",
            "the system clock is not synchronized: schedules are only as right as the clock (enable NTP, e.g. systemd-timesyncd or chrony)",
        ),
        None => report.add(Level::Warn, "clock", "cannot tell whether the clock is synchronized"),
    }

    let worst = report.0.iter().map(|(l, _, _)| *l).max().unwrap_or(Level::Ok);
    for (level, what, text) in &report.0 {
        let tag = match level {
            Level::Ok => "ok  ",
            Level::Warn => "warn",
            Level::Fail => "FAIL",
        };
        println!("{tag}  {what:<10} {text}");
    }
    Ok(if worst == Level::Fail { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}
