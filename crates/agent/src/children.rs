//! The runs' processes, noted on disk while they run, so that an agent restarted after a
//! crash (`kill -9`, an OOM kill, a power cut of the agent alone) finds what its predecessor
//! left running and ends it before it starts anything: never two copies of a daemon, and
//! `forbid` and `max_running` hold across the crash.
//!
//! Each run's process is the leader of a process group of its own. While it runs, the state
//! directory's `children/` holds a file named after its pid, with the process's start time
//! (field 22 of `/proc/PID/stat`, in clock ticks since boot), the grace between SIGTERM and
//! SIGKILL and the run id. At start, for each file left over:
//! - the leader still runs with that start time: the group is ours (a reused pid has another
//!   start time, and is left alone);
//! - the leader is gone but its group still has members: they are ours too (Linux does not
//!   give a new process a pid that is still some group's id);
//! - otherwise nothing is left.
//!
//! The groups found get SIGTERM, then SIGKILL after their grace; their runs are recorded
//! `abandoned` with the reason. Processes that left their group (`setsid`) are not found this
//! way: see docs/semantics.md.

use std::{
    collections::BTreeMap,
    io,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use nix::{
    errno::Errno,
    sys::signal::{killpg, Signal},
    unistd::Pid,
};

/// The runs' processes of one agent (its state directory's `children/`).
#[derive(Debug)]
pub struct Children {
    dir: PathBuf,
}

/// A run's process group left by an agent that died, and what became of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Orphan {
    /// The run it belonged to.
    pub run_id: String,
    /// The process group (the pid of its leader).
    pub pid: i32,
    /// It did not end on SIGTERM within its grace: SIGKILL ended it.
    pub killed: bool,
}

impl Children {
    /// The directory `dir` (created, private).
    ///
    /// # Errors
    /// When it cannot be created.
    pub fn open(dir: &Path) -> io::Result<Children> {
        crate::private::dir(dir)?;
        Ok(Children { dir: dir.to_owned() })
    }

    /// Notes a run's process (right after it started). A failure only costs the crash
    /// recovery of this run; it is logged.
    pub fn add(&self, pid: u32, grace: Duration, run_id: &str) {
        let Some(started) = start_time(pid as i32) else { return };
        let line = format!("{started} {} {run_id}\n", grace.as_millis());
        if let Err(e) = crate::private::write(&self.dir.join(pid.to_string()), line.as_bytes()) {
            tracing::warn!(pid, error = %e, "cannot note the run's process for crash recovery");
        }
    }

    /// Forgets a run's process (it ended).
    pub fn remove(&self, pid: u32) {
        let _ = std::fs::remove_file(self.dir.join(pid.to_string()));
    }

    /// Ends the process groups a crashed predecessor left running (SIGTERM, then SIGKILL
    /// after their grace), waiting until they are gone; forgets every note. Returns what was
    /// ended.
    pub async fn end_orphans(&self) -> Vec<Orphan> {
        let mut left: BTreeMap<i32, (String, Duration)> = BTreeMap::new();
        let Ok(entries) = std::fs::read_dir(&self.dir) else { return Vec::new() };
        for entry in entries.flatten() {
            let path = entry.path();
            let note = std::fs::read_to_string(&path).unwrap_or_default();
            let _ = std::fs::remove_file(&path);
            let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
                continue;
            };
            let mut fields = note.trim_end().splitn(3, ' ');
            let (Some(started), Some(grace), Some(run_id)) =
                (fields.next(), fields.next(), fields.next())
            else {
                continue;
            };
            let ours = match start_time(pid) {
                Some(now) => now.to_string() == started,
                None => group_alive(pid),
            };
            if pid > 1 && ours {
                let grace = Duration::from_millis(grace.parse().unwrap_or(10_000));
                left.insert(pid, (run_id.to_owned(), grace));
            }
        }
        if left.is_empty() {
            return Vec::new();
        }
        for pid in left.keys() {
            let _ = killpg(Pid::from_raw(*pid), Signal::SIGTERM);
        }
        let began = Instant::now();
        let mut ended = Vec::new();
        while !left.is_empty() {
            let elapsed = began.elapsed();
            left.retain(|pid, (run_id, grace)| {
                if !group_alive(*pid) {
                    ended.push(Orphan { run_id: run_id.clone(), pid: *pid, killed: false });
                    return false;
                }
                if elapsed >= *grace {
                    let _ = killpg(Pid::from_raw(*pid), Signal::SIGKILL);
                    ended.push(Orphan { run_id: run_id.clone(), pid: *pid, killed: true });
                    return false;
                }
                true
            });
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        ended
    }
}

/// What `/proc/PID/stat` says of a process that exists (a zombie included).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcStat {
    /// It exited and waits for its parent to reap it.
    pub zombie: bool,
    /// Its process group.
    pub group: i32,
    /// When it started, in clock ticks since boot.
    pub started: u64,
}

impl ProcStat {
    /// Reads `stat` (the contents of `/proc/PID/stat`).
    fn parse(stat: &str) -> Option<ProcStat> {
        // The command name (field 2) may hold spaces and parentheses: count from its end.
        let fields: Vec<&str> = stat.rsplit_once(") ")?.1.split(' ').collect();
        // Fields 3 (state), 5 (process group) and 22 (start time).
        Some(ProcStat {
            zombie: *fields.first()? == "Z",
            group: fields.get(2)?.parse().ok()?,
            started: fields.get(19)?.parse().ok()?,
        })
    }

    /// Process `pid`, if it exists.
    pub fn of(pid: i32) -> Option<ProcStat> {
        ProcStat::parse(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
    }
}

/// When process `pid` started (clock ticks since boot), if it runs (a zombie does not).
fn start_time(pid: i32) -> Option<u64> {
    ProcStat::of(pid).filter(|s| !s.zombie).map(|s| s.started)
}

/// Whether process group `pgid` still has a member that runs (zombies waiting for a parent
/// that does not reap them, as some containers' init, do not count: they hold nothing).
fn group_alive(pgid: i32) -> bool {
    if matches!(killpg(Pid::from_raw(pgid), None), Err(Errno::ESRCH)) {
        return false;
    }
    let Ok(procs) = std::fs::read_dir("/proc") else { return true };
    procs.flatten().any(|entry| {
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        ProcStat::parse(&stat).is_some_and(|s| !s.zombie && s.group == pgid)
    })
}
