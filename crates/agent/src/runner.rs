//! Running one task run as a real child process.
//!
//! Every run starts in a process group of its own, so a timeout or a kill reaches everything
//! it started (a shell's children and their children): SIGTERM to the group, SIGKILL after a
//! grace. Standard output and standard error share one pipe, so the captured output keeps
//! their order; at most `output_limit` bytes are kept in memory and the rest is read and
//! counted, so a task printing 100 MB neither blocks nor bloats the agent. The leader is
//! reaped with `wait4`, which also gives its CPU time and peak memory.

use std::{
    collections::BTreeMap,
    io,
    os::{fd::OwnedFd, unix::process::CommandExt},
    process::{Command, Stdio},
    time::Duration,
};

use jiff::Timestamp;
use nix::{
    sys::signal::{killpg, Signal},
    unistd::Pid,
};
use tokio::io::AsyncReadExt;
use tokio_util::sync::CancellationToken;

use crate::{children::Children, config::Program, mask::Secrets};

/// What to run and how.
#[derive(Clone, Debug)]
pub struct RunSpec {
    /// The program.
    pub program: Program,
    /// Environment added to the agent's own.
    pub env: BTreeMap<String, String>,
    /// Working directory.
    pub workdir: Option<String>,
    /// User to run as (needs the agent to run as root).
    pub user: Option<String>,
    /// Then SIGTERM to the group.
    pub timeout: Option<Duration>,
    /// Between SIGTERM and SIGKILL.
    pub kill_grace: Duration,
    /// Output bytes kept.
    pub output_limit: u64,
    /// Values replaced by `***` in the output (see [`crate::mask`]).
    pub secrets: Secrets,
    /// Where the process is noted while it runs, under its `CRONFLEET_RUN_ID`, so that an
    /// agent restarted after a crash ends it (see [`crate::children`]).
    pub children: Option<std::sync::Arc<Children>>,
}

/// How the run's process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// It exited with this code.
    Code(i32),
    /// A signal ended it.
    Signal(i32),
}

/// What happened to a run.
#[derive(Clone, Debug)]
pub struct RunResult {
    /// The process id (and process group id).
    pub pid: u32,
    /// How it ended.
    pub exit: Exit,
    /// It ran past its timeout and was stopped.
    pub timed_out: bool,
    /// It was stopped on request (shutdown, replace, kill).
    pub killed: bool,
    /// When it started and ended.
    pub started: Timestamp,
    /// When it ended.
    pub ended: Timestamp,
    /// CPU time in user mode.
    pub user_cpu: Duration,
    /// CPU time in the kernel.
    pub system_cpu: Duration,
    /// Peak resident memory of the run's process, bytes, when known: Linux counts the agent's
    /// own pages for the child until it starts its program (a fork copies them), so a peak no
    /// larger than the agent's own is not the task's and is left out (see [`own_peak`]).
    pub max_rss: Option<u64>,
    /// Captured output (stdout and stderr interleaved), at most the limit plus a marker line.
    pub output: Vec<u8>,
    /// Bytes of output dropped beyond the limit.
    pub dropped: u64,
}

/// A run that could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The process could not be started.
    #[error("cannot start {program:?}: {source}")]
    Spawn {
        /// What was to be started.
        program: String,
        /// Why not.
        source: io::Error,
    },
    /// The user to run as does not exist.
    #[error("unknown user {0:?}")]
    UnknownUser(String),
    /// An HTTP call got no response.
    #[error("{0}")]
    Http(String),
}

/// How long output is still read after the process exits, for children it left behind that
/// hold the pipe open.
const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(2);

/// Output of a run as it is produced, for those who follow it live (`cronfleet logs -f`, the
/// API's stream). Holds what the run's record will hold: at most the task's output limit.
#[derive(Debug)]
pub struct Live {
    bytes: std::sync::Mutex<Vec<u8>>,
    /// Bytes so far, and whether the run is over.
    progress: tokio::sync::watch::Sender<(usize, bool)>,
}

impl Default for Live {
    fn default() -> Live {
        Live {
            bytes: std::sync::Mutex::default(),
            progress: tokio::sync::watch::Sender::new((0, false)),
        }
    }
}

impl Live {
    fn push(&self, chunk: &[u8]) {
        let mut bytes = self.bytes.lock().unwrap_or_else(|p| p.into_inner());
        bytes.extend_from_slice(chunk);
        let len = bytes.len();
        drop(bytes);
        self.progress.send_modify(|p| p.0 = len);
    }

    /// Marks the run over: followers get the rest and stop.
    pub fn finish(&self) {
        self.progress.send_modify(|p| p.1 = true);
    }

    /// The output from byte `from` on, and whether the run is over.
    pub fn read_from(&self, from: usize) -> (Vec<u8>, bool) {
        let done = self.progress.borrow().1;
        let bytes = self.bytes.lock().unwrap_or_else(|p| p.into_inner());
        (bytes.get(from..).unwrap_or_default().to_vec(), done)
    }

    /// Waits until there is more output or the run is over.
    pub async fn changed(&self, seen: usize) {
        let mut rx = self.progress.subscribe();
        let _ = rx.wait_for(|&(len, done)| len > seen || done).await;
    }
}

/// Runs one process to its end, a timeout, or `cancel`.
///
/// # Errors
/// [`RunError`] when it cannot start; everything after that is in the [`RunResult`].
pub async fn run(spec: &RunSpec, cancel: CancellationToken) -> Result<RunResult, RunError> {
    run_live(spec, cancel, None).await
}

/// [`run`], also feeding the output to `live` as it comes.
///
/// # Errors
/// [`RunError`] when it cannot start; everything after that is in the [`RunResult`].
pub async fn run_live(
    spec: &RunSpec,
    cancel: CancellationToken,
    live: Option<std::sync::Arc<Live>>,
) -> Result<RunResult, RunError> {
    if let Program::Http(call) = &spec.program {
        return run_http(spec, call, cancel, live).await;
    }
    let (reader, writer) = io::pipe().map_err(|e| spawn_error(spec, e))?;
    let mut cmd = command(spec, writer)?;
    let started = crate::clock::now();
    let child = cmd.spawn().map_err(|e| spawn_error(spec, e))?;
    // The command holds copies of the pipe's write end: close them, or the reader never ends.
    drop(cmd);
    let pid = child.id();
    // We reap the child ourselves with wait4; std's handle must not try.
    drop(child);
    if let Some(children) = &spec.children {
        let run_id = spec.env.get("CRONFLEET_RUN_ID").map_or("", String::as_str);
        children.add(pid, spec.kill_grace, run_id);
    }

    let limit = spec.output_limit;
    let capture = tokio::spawn(capture(OwnedFd::from(reader), limit, spec.secrets.clone(), live));
    let mut waiter = tokio::task::spawn_blocking(move || wait4(pid));

    let mut timed_out = false;
    let mut killed = false;
    let deadline = async {
        match spec.timeout {
            Some(t) => tokio::time::sleep(t).await,
            None => std::future::pending().await,
        }
    };
    let waited = tokio::select! {
        w = &mut waiter => Some(w),
        _ = deadline => { timed_out = true; None }
        _ = cancel.cancelled() => { killed = true; None }
    };
    let (status, usage) = match waited {
        Some(w) => w.unwrap_or_else(|_| (Exit::Code(-1), Usage::default())),
        None => {
            let group = Pid::from_raw(pid as i32);
            let _ = killpg(group, Signal::SIGTERM);
            let w = tokio::select! {
                w = &mut waiter => w,
                _ = tokio::time::sleep(spec.kill_grace) => {
                    let _ = killpg(group, Signal::SIGKILL);
                    waiter.await
                }
            };
            // Whatever the leader left in its group goes too.
            let _ = killpg(group, Signal::SIGKILL);
            w.unwrap_or_else(|_| (Exit::Code(-1), Usage::default()))
        }
    };
    let ended = crate::clock::now();
    if let Some(children) = &spec.children {
        children.remove(pid);
    }
    let (mut output, dropped) = match tokio::time::timeout(DRAIN_AFTER_EXIT, capture).await {
        Ok(Ok(captured)) => captured,
        _ => (Vec::new(), 0),
    };
    if dropped > 0 {
        output.extend_from_slice(
            format!("\n[cronfleet: {dropped} more bytes of output dropped]\n").as_bytes(),
        );
    }
    Ok(RunResult {
        pid,
        exit: status,
        timed_out,
        killed,
        started,
        ended,
        user_cpu: usage.user,
        system_cpu: usage.system,
        max_rss: own_peak(usage.max_rss),
        output,
        dropped,
    })
}

/// `{{task}}`, `{{run_id}}`, `{{scheduled_at}}`, `{{attempt}}` and `{{node}}` replaced by the
/// run's values (from its `CRONFLEET_*` environment).
pub fn fill(template: &str, env: &BTreeMap<String, String>) -> String {
    let mut out = template.to_owned();
    for (name, var) in [
        ("task", "CRONFLEET_TASK"),
        ("run_id", "CRONFLEET_RUN_ID"),
        ("scheduled_at", "CRONFLEET_SCHEDULED_AT"),
        ("attempt", "CRONFLEET_ATTEMPT"),
        ("node", "CRONFLEET_NODE"),
    ] {
        if let Some(value) = env.get(var) {
            out = out.replace(&format!("{{{{{name}}}}}"), value);
        }
    }
    out
}

/// The client every HTTP task shares (connection pooling).
fn http_client() -> &'static reqwest::Client {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("cronfleet/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default()
    })
}

/// One run of an `http` task: the request, its timeout or cancellation, the response status
/// (success: an expected status) and body as output.
async fn run_http(
    spec: &RunSpec,
    call: &crate::config::HttpCall,
    cancel: CancellationToken,
    live: Option<std::sync::Arc<Live>>,
) -> Result<RunResult, RunError> {
    let started = crate::clock::now();
    let method = reqwest::Method::from_bytes(call.method.as_bytes())
        .map_err(|e| RunError::Http(e.to_string()))?;
    let mut request = http_client().request(method, fill(&call.url, &spec.env));
    for (name, value) in &call.headers {
        request = request.header(name.as_str(), fill(value, &spec.env));
    }
    if let Some(body) = &call.body {
        request = request.body(fill(body, &spec.env));
    }
    let limit = spec.output_limit as usize;
    let exchange = async {
        let response =
            request.send().await.map_err(|e| RunError::Http(e.without_url().to_string()))?;
        let status = response.status();
        let mut kept = Kept { limit, ..Kept::default() };
        kept.add(format!("HTTP {status}\n").as_bytes(), None);
        let mut masker = spec.secrets.masker();
        let mut response = response;
        while let Ok(Some(chunk)) = response.chunk().await {
            kept.add(&masker.push(&chunk), None);
        }
        kept.add(&masker.finish(), None);
        if let Some(live) = &live {
            live.push(&kept.bytes);
        }
        Ok::<_, RunError>((status.as_u16(), kept.bytes, kept.dropped))
    };
    let deadline = async {
        match spec.timeout {
            Some(t) => tokio::time::sleep(t).await,
            None => std::future::pending().await,
        }
    };
    let (mut timed_out, mut killed) = (false, false);
    let answer = tokio::select! {
        a = exchange => Some(a?),
        _ = deadline => { timed_out = true; None }
        _ = cancel.cancelled() => { killed = true; None }
    };
    let (exit, output, dropped) = match answer {
        Some((status, output, dropped)) => {
            let ok = if call.expect_status.is_empty() {
                (200..300).contains(&status)
            } else {
                call.expect_status.contains(&status)
            };
            (Exit::Code(if ok { 0 } else { i32::from(status) }), output, dropped)
        }
        None => (Exit::Code(-1), Vec::new(), 0),
    };
    Ok(RunResult {
        pid: 0,
        exit,
        timed_out,
        killed,
        started,
        ended: crate::clock::now(),
        user_cpu: Duration::ZERO,
        system_cpu: Duration::ZERO,
        max_rss: None,
        output,
        dropped,
    })
}

fn spawn_error(spec: &RunSpec, source: io::Error) -> RunError {
    let program = match &spec.program {
        Program::Shell(cmd) => cmd.clone(),
        Program::Argv(argv) => argv.join(" "),
        Program::Http(call) => call.url.clone(),
    };
    RunError::Spawn { program, source }
}

fn command(spec: &RunSpec, writer: io::PipeWriter) -> Result<Command, RunError> {
    let mut cmd = match &spec.program {
        Program::Shell(line) => {
            let mut c = Command::new("/bin/sh");
            c.arg("-c").arg(line);
            c
        }
        Program::Argv(argv) => {
            let mut c = Command::new(&argv[0]);
            c.args(&argv[1..]);
            c
        }
        Program::Http(_) => return Err(RunError::Http("an http task starts no process".into())),
    };
    let err_writer = writer.try_clone().map_err(|e| spawn_error(spec, e))?;
    cmd.stdin(Stdio::null()).stdout(writer).stderr(err_writer).process_group(0).envs(&spec.env);
    if let Some(dir) = &spec.workdir {
        cmd.current_dir(dir);
    }
    if let Some(name) = &spec.user {
        let user = nix::unistd::User::from_name(name)
            .ok()
            .flatten()
            .ok_or_else(|| RunError::UnknownUser(name.clone()))?;
        cmd.uid(user.uid.as_raw()).gid(user.gid.as_raw());
        cmd.env("USER", &user.name).env("LOGNAME", &user.name).env("HOME", &user.dir);
    }
    Ok(cmd)
}

/// Reads everything, masked, keeping the first `limit` bytes; returns them and the count
/// dropped.
async fn capture(
    fd: OwnedFd,
    limit: u64,
    secrets: Secrets,
    live: Option<std::sync::Arc<Live>>,
) -> (Vec<u8>, u64) {
    let Ok(mut rx) = tokio::net::unix::pipe::Receiver::from_owned_fd(fd) else {
        return (Vec::new(), 0);
    };
    let mut kept = Kept { limit: limit as usize, ..Kept::default() };
    let mut masker = secrets.masker();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match rx.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) if secrets.is_empty() => kept.add(&buf[..n], live.as_deref()),
            Ok(n) => kept.add(&masker.push(&buf[..n]), live.as_deref()),
        }
    }
    kept.add(&masker.finish(), live.as_deref());
    (kept.bytes, kept.dropped)
}

/// The output kept (the first `limit` bytes, masked already) and the count dropped.
#[derive(Default)]
struct Kept {
    limit: usize,
    bytes: Vec<u8>,
    dropped: u64,
}

impl Kept {
    /// Keeps what fits of `piece`, and shows it to `live`.
    fn add(&mut self, piece: &[u8], live: Option<&Live>) {
        let room = self.limit.saturating_sub(self.bytes.len()).min(piece.len());
        self.bytes.extend_from_slice(&piece[..room]);
        if let (Some(live), true) = (live, room > 0) {
            live.push(&piece[..room]);
        }
        self.dropped += (piece.len() - room) as u64;
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct Usage {
    user: Duration,
    system: Duration,
    max_rss: u64,
}

/// The peak a child's `wait4` reports, if it is the child's own: above this process's own peak
/// (`VmHWM`), which is all a fork's copy of it can have reached before the child's program
/// started.
fn own_peak(max_rss: u64) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let agent = line.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024;
    (max_rss > agent).then_some(max_rss)
}

/// Waits for `pid` and returns how it ended and what it used.
fn wait4(pid: u32) -> (Exit, Usage) {
    let mut status: libc::c_int = 0;
    // SAFETY: `rusage` is plain data that wait4 fills in; zeroed is a valid value for it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: both pointers are to live locals of the right types.
        let r = unsafe { libc::wait4(pid as libc::pid_t, &mut status, 0, &mut usage) };
        if r >= 0 {
            break;
        }
        if io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            return (Exit::Code(-1), Usage::default());
        }
    }
    let exit = if libc::WIFSIGNALED(status) {
        Exit::Signal(libc::WTERMSIG(status))
    } else {
        Exit::Code(libc::WEXITSTATUS(status))
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, (t.tv_usec as u32) * 1000);
    let usage = Usage {
        user: tv(usage.ru_utime),
        system: tv(usage.ru_stime),
        // Linux reports kilobytes.
        max_rss: (usage.ru_maxrss as u64) * 1024,
    };
    (exit, usage)
}
