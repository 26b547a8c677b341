//! `cronfleet agent`: run the task file's tasks for this machine, in the foreground or detached
//! (`--daemon`, like nginx: the parent returns once the child has loaded its tasks).

use std::{
    fs::OpenOptions,
    io::{Read, Write},
    os::{fd::AsRawFd, unix::fs::OpenOptionsExt},
    path::PathBuf,
    process::ExitCode,
};

use clap::Args;
use tokio::signal::unix::{signal, SignalKind};

use crate::{
    agent::{self, Host, Options},
    api,
    config::units_duration,
    pidfile::PidFile,
};

/// `cronfleet agent`.
#[derive(Debug, Args)]
pub struct AgentArgs {
    /// The task file. Without it, an agent with --store runs the fleet's task file, kept in
    /// the database by `cronfleet apply FILE --store URL`.
    #[arg(long, value_name = "FILE", required_unless_present = "store")]
    config: Option<PathBuf>,
    /// This machine's name for `hosts` patterns [default: the hostname].
    #[arg(long, value_name = "NAME")]
    node: Option<String>,
    /// A tag this machine carries (repeatable); tasks with `tags` need all of theirs.
    #[arg(long = "tag", value_name = "TAG")]
    tags: Vec<String>,
    /// How long runs get to finish on stop before their process groups are killed.
    #[arg(long, value_name = "DURATION", default_value = "30s")]
    shutdown_grace: String,
    /// Write the agent's pid here (a stale file is replaced; a live one is an error).
    /// With --daemon the default is /run/cronfleet.pid.
    #[arg(long, value_name = "FILE")]
    pid_file: Option<PathBuf>,
    /// Detach: return once the agent has loaded its tasks (exit 0), or failed (non-zero).
    #[arg(long)]
    daemon: bool,
    /// Where a detached agent writes its log [default: the pid file's path with .log].
    #[arg(long, value_name = "FILE")]
    log_file: Option<PathBuf>,
    /// Log lines as text or as JSON objects.
    #[arg(long, value_name = "FORMAT", default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    /// Do not reload when the task file changes on disk (SIGHUP still does).
    #[arg(long)]
    no_watch: bool,
    /// Where the run history is kept [default: /var/lib/cronfleet for root,
    /// $XDG_STATE_HOME/cronfleet otherwise].
    #[arg(long, value_name = "DIR", env = "CRONFLEET_STATE_DIR")]
    state_dir: Option<PathBuf>,
    /// Runs kept in the history per task (older ones are deleted, hourly).
    #[arg(long, value_name = "N", default_value_t = 1000)]
    keep_runs: u32,
    /// Runs older than this are deleted from the history.
    #[arg(long, value_name = "DURATION", default_value = "30d")]
    keep_for: String,
    /// Where the API and dashboard listen (port 0: any free port; the address is written to
    /// STATE_DIR/api-addr).
    #[arg(long, value_name = "ADDR", env = "CRONFLEET_LISTEN", default_value = "127.0.0.1:7070")]
    listen: std::net::SocketAddr,
    /// Serve no API, metrics or dashboard.
    #[arg(long, conflicts_with_all = ["tokens", "tls_cert", "insecure_listen", "public_metrics"])]
    no_api: bool,
    /// More API tokens: lines of `read|admin TOKEN [NAME]` (the agent's own admin token is
    /// in STATE_DIR/api-token).
    #[arg(long, value_name = "FILE")]
    tokens: Option<PathBuf>,
    /// Serve HTTPS with this certificate chain (PEM); needs --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Allow --listen on a non-loopback address without TLS.
    #[arg(long)]
    insecure_listen: bool,
    /// Serve /metrics without a token (for a Prometheus on a trusted network).
    #[arg(long)]
    public_metrics: bool,
    /// Keep the history in this database instead of SQLite in the state directory:
    /// postgres://USER:PASSWORD@HOST/DB (agents sharing one see each other's runs).
    #[arg(long, value_name = "URL", env = "CRONFLEET_STORE", hide_env_values = true)]
    store: Option<String>,
}

/// Runs the agent until SIGTERM or SIGINT; SIGHUP or SIGUSR2 reloads the task file.
pub fn run(args: AgentArgs) -> Result<ExitCode, String> {
    let grace =
        units_duration(&args.shutdown_grace).map_err(|e| format!("--shutdown-grace: {e}"))?;
    let keep_for = units_duration(&args.keep_for).map_err(|e| format!("--keep-for: {e}"))?;
    let pid_path = match (&args.pid_file, args.daemon) {
        (Some(p), _) => Some(p.clone()),
        (None, true) => Some(PathBuf::from(super::control::DEFAULT_PID_FILE)),
        (None, false) => None,
    };
    // With --daemon, from here on we are the detached child; `ready` tells the parent.
    let mut ready = if args.daemon {
        let log = args.log_file.clone().unwrap_or_else(|| {
            let mut p = pid_path.clone().unwrap_or_default().into_os_string();
            p.push(".log");
            PathBuf::from(p)
        });
        match detach(&log)? {
            Detached::Parent(code) => return Ok(code),
            Detached::Child(pipe) => Some(Ready(pipe)),
        }
    } else {
        None
    };
    let logs = tracing_subscriber::fmt().with_writer(|| LogOut).with_target(false);
    let _ = if args.log_format == "json" { logs.json().try_init() } else { logs.try_init() };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let result = runtime.block_on(async {
        let _pid_file = match &pid_path {
            Some(p) => Some(PidFile::create(p).map_err(|e| e.to_string())?),
            None => None,
        };
        let (reload_tx, reload_rx) = tokio::sync::mpsc::channel(4);
        let watch_tx = reload_tx.clone();
        let mut hup = signal(SignalKind::hangup()).map_err(|e| e.to_string())?;
        let mut usr2 = signal(SignalKind::user_defined2()).map_err(|e| e.to_string())?;
        let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
        let mut int = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = hup.recv() => {}
                    _ = usr2.recv() => {}
                }
                if reload_tx.send(()).await.is_err() {
                    return;
                }
            }
        });
        let shutdown = async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        };
        let options = Options {
            tasks_from_store: args.config.is_none(),
            config: args.config.unwrap_or_else(|| PathBuf::from(agent::STORE_FILE)),
            host: Host::detect(args.node, args.tags),
            shutdown_grace: grace,
            watch: !args.no_watch,
            state_dir: args.state_dir.unwrap_or_else(agent::default_state_dir),
            keep_runs: args.keep_runs.max(1),
            keep_for,
            store: args.store,
        };
        let api = (!args.no_api).then(|| api::Config {
            listen: args.listen,
            tokens_file: args.tokens,
            tls: args.tls_cert.zip(args.tls_key),
            insecure_listen: args.insecure_listen,
            public_metrics: args.public_metrics,
        });
        // Everything that can refuse the start is checked before any task starts: the API's
        // address, tokens and TLS files, then the task file and the store.
        let bound = match api {
            Some(config) => Some(
                api::bind(config, &options.state_dir)
                    .await
                    .map_err(|e| format!("cronfleet: {e}"))?,
            ),
            None => None,
        };
        let agent = agent::start(options).await.map_err(|e| match e {
            agent::StartError::Config(errors) => errors.to_string(),
            other => format!("cronfleet: {other}"),
        })?;
        match bound {
            Some(bound) => {
                api::serve_bound(agent.clone(), bound)
                    .await
                    .map_err(|e| format!("cronfleet: {e}"))?;
            }
            None => agent.register(None).await,
        }
        if let Some(r) = ready.take() {
            r.ok();
        }
        crate::sd_notify::notify("READY=1\nSTATUS=tasks loaded");
        agent::serve(agent, watch_tx, reload_rx, shutdown).await;
        Ok::<_, String>(ExitCode::SUCCESS)
    });
    // Processes of runs that outlived a failed start are not waited for.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(code) => Ok(code),
        Err(message) => {
            let _ = writeln!(std::io::stderr(), "{message}");
            if let Some(r) = ready.take() {
                r.failed(&message);
            }
            Ok(ExitCode::from(super::EXIT_BAD_INPUT))
        }
    }
}

/// The agent's log: standard error, where a write that fails (the pipe or terminal it went
/// to is closed) is dropped. The agent goes on running its tasks; its runs are recorded in the
/// store all the same. (`tracing-subscriber` reports a failed write with `eprintln!`, which
/// panics on a closed stderr: so a failure never reaches it.)
struct LogOut;

impl std::io::Write for LogOut {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = std::io::stderr().write_all(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let _ = std::io::stderr().flush();
        Ok(())
    }
}

/// The write end of the pipe a detached child reports its start on. Reporting closes it,
/// which ends the parent's wait.
struct Ready(std::io::PipeWriter);

impl Ready {
    fn ok(mut self) {
        let _ = self.0.write_all(b"ok\n");
    }

    fn failed(mut self, message: &str) {
        let _ = self.0.write_all(format!("failed\n{message}\n").as_bytes());
    }
}

/// Which side of the fork we are on.
enum Detached {
    /// The parent, with its exit code.
    Parent(ExitCode),
    /// The detached child, with the pipe to report on.
    Child(std::io::PipeWriter),
}

/// Forks. The parent waits for the child's report and returns its exit code; the child
/// becomes a session leader with stdin on /dev/null and stdout/stderr on `log`, and returns
/// `None`. Called before any thread exists.
fn detach(log: &std::path::Path) -> Result<Detached, String> {
    let (mut reader, writer) = std::io::pipe().map_err(|e| e.to_string())?;
    // The agent's log names tasks, commands and errors: private, as its state is.
    let log_file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(crate::private::FILE_MODE)
        .open(log)
        .map_err(|e| format!("cannot open the log file {}: {e}", log.display()))?;
    // SAFETY: no other thread exists yet (the runtime starts after this), so the child may
    // run arbitrary code.
    match unsafe { nix::unistd::fork() }.map_err(|e| format!("cannot fork: {e}"))? {
        nix::unistd::ForkResult::Parent { child } => {
            drop(writer);
            let mut report = String::new();
            let _ = reader.read_to_string(&mut report);
            match report.split_once('\n') {
                Some(("ok", _)) => {
                    println!("cronfleet agent started, pid {child}; log: {}", log.display());
                    Ok(Detached::Parent(ExitCode::SUCCESS))
                }
                Some(("failed", why)) => {
                    eprint!("{why}");
                    Ok(Detached::Parent(ExitCode::from(super::EXIT_BAD_INPUT)))
                }
                _ => {
                    eprintln!("the agent exited while starting; see {}", log.display());
                    Ok(Detached::Parent(ExitCode::FAILURE))
                }
            }
        }
        nix::unistd::ForkResult::Child => {
            drop(reader);
            let _ = nix::unistd::setsid();
            let devnull = std::fs::File::open("/dev/null").map_err(|e| e.to_string())?;
            // SAFETY: dup2 on descriptors we own; 0, 1 and 2 are the standard streams.
            unsafe {
                libc::dup2(devnull.as_raw_fd(), 0);
                libc::dup2(log_file.as_raw_fd(), 1);
                libc::dup2(log_file.as_raw_fd(), 2);
            }
            Ok(Detached::Child(writer))
        }
    }
}
