//! `cronfleet agent`: run the task file's tasks for this machine, in the foreground.

use std::{path::PathBuf, process::ExitCode};

use clap::Args;
use tokio::signal::unix::{signal, SignalKind};

use crate::{
    agent::{self, Host, Options},
    config::units_duration,
};

/// `cronfleet agent`.
#[derive(Debug, Args)]
pub struct AgentArgs {
    /// The task file.
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// This machine's name for `hosts` patterns [default: the hostname].
    #[arg(long, value_name = "NAME")]
    node: Option<String>,
    /// A tag this machine carries (repeatable); tasks with `tags` need all of theirs.
    #[arg(long = "tag", value_name = "TAG")]
    tags: Vec<String>,
    /// How long runs get to finish on stop before their process groups are killed.
    #[arg(long, value_name = "DURATION", default_value = "30s")]
    shutdown_grace: String,
}

/// Runs the agent until SIGTERM or SIGINT; SIGHUP or SIGUSR2 reloads the task file.
pub fn run(args: AgentArgs) -> Result<ExitCode, String> {
    let grace =
        units_duration(&args.shutdown_grace).map_err(|e| format!("--shutdown-grace: {e}"))?;
    let _ = tracing_subscriber::fmt().with_writer(std::io::stderr).with_target(false).try_init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(async move {
        let (reload_tx, reload_rx) = tokio::sync::mpsc::channel(4);
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
            config: args.config,
            host: Host::detect(args.node, args.tags),
            shutdown_grace: grace,
        };
        match agent::run(options, reload_rx, shutdown).await {
            Ok(()) => Ok(ExitCode::SUCCESS),
            Err(errors) => {
                eprintln!("{errors}");
                Ok(ExitCode::from(super::EXIT_BAD_INPUT))
            }
        }
    })
}
