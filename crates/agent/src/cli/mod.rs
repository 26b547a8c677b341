//! The command line: one module per command, dispatched from one `match`.

mod act;
mod agent;
mod control;
mod dist;
mod doctor;
mod history;
mod import;
mod man;
mod remote;
mod status;
mod task;
mod times;
mod validate;
mod zone;

use std::{io::Write as _, process::ExitCode};

use clap::{Parser, Subcommand};

/// The version and the commit it was built from.
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("CRONFLEET_COMMIT"), ")");

/// Exit code for bad input (expressions, zones, times, task files).
pub const EXIT_BAD_INPUT: u8 = 2;

/// Run and watch the scheduled tasks of a fleet of machines.
#[derive(Debug, Parser)]
#[command(name = "cronfleet", version = VERSION, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the task file's tasks meant for this machine (foreground; SIGHUP reloads).
    Agent(Box<agent::AgentArgs>),
    /// Print the next fire times of a schedule expression.
    Next(times::NextArgs),
    /// Print the previous fire times of a schedule expression.
    Prev(times::PrevArgs),
    /// Ask a running agent to reload its task file (through its API, else SIGHUP).
    Reload(control::ControlArgs),
    /// Stop a running agent (through its API, else SIGTERM) and wait until it has exited.
    Stop(control::ControlArgs),
    /// The tasks on this node: next run, last outcome, running runs.
    ///
    /// Every time (NEXT, the agent's start) is shown in one zone, named in the header: the
    /// local zone (TZ, else /etc/localtime), or --tz ZONE, or --utc; to the second.
    Status(status::StatusArgs),
    /// List recorded runs (newest first), from the agent's API or the state directory.
    ///
    /// Newest slot first (then the latest attempt). Every SLOT is shown in one zone, named in
    /// the header: the local zone (TZ, else /etc/localtime), or --tz ZONE, or --utc. --json is
    /// the API's form, each slot in its task's zone.
    ///
    /// A --task that is neither a task nor in the run history is an error (exit 2, with the
    /// nearest name); a task without runs yet prints `no runs of TASK yet` on stderr (exit 0).
    /// A deleted task's runs stay listed until they are pruned.
    Runs(history::RunsArgs),
    /// Print the captured output of a task's latest run (or of one run); -f follows it.
    ///
    /// An unknown TASK, or a RUN_ID of another task, is an error (exit 2); a task without runs
    /// yet prints `no runs of TASK yet` on stderr (exit 0).
    Logs(history::LogsArgs),
    /// Start a run of a task now, through the agent's API (-w: wait and show its output).
    Run(act::RunArgs),
    /// Pause a task (optionally --until an instant), through the agent's API.
    Pause(act::PauseArgs),
    /// Resume a paused task from its next slot, through the agent's API.
    Resume(act::ResumeArgs),
    /// Kill a run in flight (its whole process group), through the agent's API.
    ///
    /// Waits until the run has ended (unless --no-wait). A run that is not in flight is an
    /// error (exit 2) saying how it ended, e.g. `is not running (it ended: killed)`.
    Kill(act::KillArgs),
    /// Tasks created through the API: ls, show, create, edit, rm.
    Task(task::TaskArgs),
    /// Show what applying a task file would change (added, changed field by field, removed).
    Plan(task::PlanArgs),
    /// Write a task file to a running agent and reload it (after `plan`).
    ///
    /// Prints the changes as `plan` does, then one summary line: `applied: 1 added, 0 changed,
    /// 0 removed, 4 unchanged`, followed by this node's own changes when they differ (tasks
    /// of other nodes and disabled tasks are applied but do not run here). An invalid file is
    /// refused with its errors (exit 2) and nothing is written.
    Apply(task::ApplyArgs),
    /// The nodes registered in the agent's store (with a shared store: the fleet).
    ///
    /// LAST SEEN is shown in the local zone (TZ, else /etc/localtime), or --tz ZONE, or --utc,
    /// named in the header.
    Nodes(status::NodesArgs),
    /// Check this machine's setup: task file, state dir, store, API token, clock.
    Doctor(doctor::DoctorArgs),
    /// Print a shell completion script (bash, zsh or fish) to stdout.
    Completions(dist::CompletionsArgs),
    /// Print a man page (roff) to stdout: cronfleet(1), or a command's (`cronfleet man runs`).
    ///
    /// `cronfleet man --dir DIR` writes them all: cronfleet.1 and one page per command
    /// (cronfleet-agent.1, cronfleet-task-ls.1, ...), each with its options, exit status,
    /// environment and files. The Debian package installs them.
    Man(man::ManArgs),
    /// Print a generated part of the documentation.
    #[command(hide = true)]
    Docs(dist::DocsArgs),
    /// Check a task file without running anything (exit 0, or 2 with every error).
    ///
    /// `cronfleet validate -` reads the file from standard input (its errors then say
    /// `<stdin>:LINE:COLUMN`). A file that cannot be read is exit 2 too.
    Validate(validate::ValidateArgs),
    /// Turn crontab lines into [[task]] entries (user or system format).
    ///
    /// The tasks go to stdout, each under a comment naming its line; what was not imported,
    /// and what may run differently, goes to stderr with its line. Environment lines are kept
    /// in each task's env, TZ= too (cron passes it to the job); CRON_TZ= is the schedule's
    /// zone; a SHELL= other than /bin/sh runs the command through that shell; `%` becomes
    /// standard input. @reboot, @every (not crontab syntax: cron refuses it) and MAILTO are
    /// reported, not imported.
    ///
    /// Tasks are named after the program or script a line runs, past `cd DIR &&`, `test ...
    /// ||`, assignments, env, nice, ionice, flock, timeout, sudo, su -c and sh -c:
    /// `/usr/local/bin/backup.sh --full` is backup, `cd /srv && php artisan schedule:run` is
    /// artisan-schedule-run, `run-parts /etc/cron.daily` is cron-daily. A name an earlier line
    /// took gets the line's arguments (backup-full), else a short hash of the line: importing
    /// the same crontab gives the same names, and lines added below rename nothing.
    ///
    /// Each task is parsed back with the task file's parser, as `cronfleet validate` would on
    /// this machine (a `user` must exist here): one it refuses is reported and left out.
    /// Exit 0 when every entry was imported, 1 when some were not, 2 when the input cannot be
    /// read.
    ImportCrontab(import::CrontabArgs),
    /// Turn Gotorch's task.json into [[task]] entries.
    ///
    /// Command becomes argv (split on single spaces and run without a shell, as Gotorch did;
    /// Script, its name before October 2017, is read when there is no Command), Times is put
    /// in cron's field order, TaskType daemon becomes kind = "daemon", Max becomes
    /// max_running, Ips become hosts. Keys match in any case, as Go's decoder matched them.
    ///
    /// Gotorch's own code did not run a Times as cron reads it: a number or a range matched
    /// nothing (the task never ran), `*` stopped before a field's last value (no second or
    /// minute 59, hour 23, day 31, Sunday or December), and a digit in the day-of-month,
    /// day-of-week or month field made it refuse the whole file. The import keeps what was
    /// written, read as cron reads it, and says for every entry what changes, at the line of
    /// the key concerned (`task.json:12: entry 2: ...`). Also reported: a daemon's Max
    /// (Gotorch kept Max copies running; a daemon here is one process), Ips entries Gotorch
    /// could never match (left out; an entry with none left is not imported), unknown keys
    /// and TaskTypes, a Command given twice.
    ///
    /// Each task is parsed back with the task file's parser; one it refuses is reported and
    /// left out. Exit 0 when every entry was imported, 1 when some were not, 2 when the file
    /// cannot be read or is not a JSON array.
    ImportGotorch(import::GotorchArgs),
}

/// The message for a task name nobody knows: "no task named `nope`", and the nearest of
/// `known` when one is close (a typo, or the start of a longer name).
pub(crate) fn unknown_task(name: &str, known: &[String]) -> String {
    match did_you_mean(name, known) {
        Some(near) => format!("no task named `{name}`; did you mean `{near}`?"),
        None => format!("no task named `{name}`"),
    }
}

/// The name of `known` closest to `name`: at most a third of its letters (at least 2) apart,
/// or one that starts with it.
fn did_you_mean<'a>(name: &str, known: &'a [String]) -> Option<&'a str> {
    let most = (name.chars().count() / 3).max(2);
    known
        .iter()
        .filter(|k| k.as_str() != name)
        .map(|k| {
            let distance = strsim::levenshtein(k, name);
            let near = distance <= most || (name.len() >= 3 && k.starts_with(name));
            (near, distance, k)
        })
        .filter(|(near, _, _)| *near)
        .min_by(|a, b| (a.1, a.2).cmp(&(b.1, b.2)))
        .map(|(_, _, k)| k.as_str())
}

/// Parses the process arguments and runs the command.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Agent(args) => agent::run(*args),
        Command::Run(args) => act::run(args),
        Command::Pause(args) => act::pause(args),
        Command::Resume(args) => act::resume(args),
        Command::Kill(args) => act::kill(args),
        Command::Task(args) => task::run(args),
        Command::Plan(args) => task::plan(args),
        Command::Apply(args) => task::apply(args),
        Command::Doctor(args) => doctor::run(args),
        Command::Nodes(args) => status::nodes(args),
        Command::Completions(args) => dist::completions(args),
        Command::Man(args) => man::run(args),
        Command::Docs(args) => dist::docs(args),
        Command::Reload(args) => control::reload(args),
        Command::Status(args) => status::run(args),
        Command::Runs(args) => history::runs(args),
        Command::Logs(args) => history::logs(args),
        Command::Stop(args) => control::stop(args),
        Command::Next(args) => times::next(args),
        Command::Prev(args) => times::prev(args),
        Command::Validate(args) => validate::run(args),
        Command::ImportCrontab(args) => import::crontab(args),
        Command::ImportGotorch(args) => import::gotorch(args),
    };
    match result {
        Ok(code) => code,
        Err(message) => {
            // Not `eprintln!`: it panics when stderr is closed.
            let _ = writeln!(std::io::stderr(), "cronfleet: {message}");
            ExitCode::from(EXIT_BAD_INPUT)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_tasks_get_the_nearest_name() {
        let known: Vec<String> =
            ["backup-db", "flaky", "slow", "poll-queue"].iter().map(|s| (*s).to_owned()).collect();
        assert_eq!(unknown_task("flakey", &known), "no task named `flakey`; did you mean `flaky`?");
        assert_eq!(
            unknown_task("backup", &known),
            "no task named `backup`; did you mean `backup-db`?"
        );
        assert_eq!(
            unknown_task("pol-queue", &known),
            "no task named `pol-queue`; did you mean `poll-queue`?"
        );
        assert_eq!(unknown_task("nope", &known), "no task named `nope`");
        assert_eq!(unknown_task("x", &[]), "no task named `x`");
    }
}
