//! `cronfleet man`: the manual pages, generated from the clap definitions (so they never drift
//! from `--help`) with clap_mangen: `cronfleet(1)` and one page per command
//! (`cronfleet-runs(1)`, `cronfleet-task-ls(1)`, ...), each with its options, and sections of
//! our own: exit status, environment, files and see also. `dist/man/` holds these pages (a test
//! checks they are current).

use std::{collections::BTreeSet, path::PathBuf, process::ExitCode};

use clap::{Args, Command, CommandFactory};
use clap_mangen::{
    roff::{bold, italic, roman, Inline, Roff},
    Man,
};

use super::Cli;

/// `cronfleet man`.
#[derive(Debug, Args)]
pub struct ManArgs {
    /// The command whose page to print, e.g. `runs` or `task ls` [default: cronfleet(1)].
    #[arg(value_name = "COMMAND")]
    command: Vec<String>,
    /// Write every page (cronfleet.1 and one per command: cronfleet-agent.1, ...) into DIR
    /// instead, and print their names.
    #[arg(long, value_name = "DIR", conflicts_with = "command")]
    dir: Option<PathBuf>,
}

/// Runs `cronfleet man`.
pub fn run(args: ManArgs) -> Result<ExitCode, String> {
    let pages = pages();
    if let Some(dir) = &args.dir {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        for page in &pages {
            let file = dir.join(&page.file);
            std::fs::write(&file, &page.text)
                .map_err(|e| format!("cannot write {}: {e}", file.display()))?;
            println!("{}", file.display());
        }
        return Ok(ExitCode::SUCCESS);
    }
    let page = pages.iter().find(|p| p.path == args.command).ok_or_else(|| {
        format!("no command `{}` (cronfleet --help lists them)", args.command.join(" "))
    })?;
    use std::io::Write as _;
    std::io::stdout()
        .write_all(page.text.as_bytes())
        .map_err(|e| format!("cannot write the man page: {e}"))?;
    Ok(ExitCode::SUCCESS)
}

/// One manual page.
pub struct Page {
    /// The command's words after `cronfleet` (empty for cronfleet(1) itself).
    pub path: Vec<String>,
    /// `cronfleet-task-ls.1`.
    pub file: String,
    /// The page (roff).
    pub text: String,
}

/// Every page: cronfleet(1), then one per visible command, depth first.
pub fn pages() -> Vec<Page> {
    // The package version only (not the commit), so that the pages change with releases, not
    // with every commit. No `help` command: `cronfleet help X` is `cronfleet X --help`.
    let mut root = without_help(Cli::command().version(env!("CARGO_PKG_VERSION")));
    root.build();
    let mut pages = Vec::new();
    collect(&root, &mut Vec::new(), &mut pages);
    pages
}

fn without_help(cmd: Command) -> Command {
    cmd.disable_help_subcommand(true).mut_subcommands(without_help)
}

fn collect(cmd: &Command, path: &mut Vec<String>, pages: &mut Vec<Page>) {
    pages.push(page(cmd, path));
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        path.push(sub.get_name().to_owned());
        collect(sub, path, pages);
        path.pop();
    }
}

/// The page of `cmd` (`path`: its words after `cronfleet`): clap_mangen's sections, ours
/// before VERSION.
fn page(cmd: &Command, path: &[String]) -> Page {
    let version = env!("CARGO_PKG_VERSION");
    let man = Man::new(cmd.clone()).source(format!("cronfleet {version}")).manual("cronfleet");
    let file = man.get_filename();
    let mut text = Vec::new();
    man.render(&mut text).expect("rendering into memory");
    let text = String::from_utf8(text).expect("the page is UTF-8");
    let ours = sections(cmd, path).render();
    // Without the two lines of preamble `render` starts with (the page has them already).
    let ours = ours.splitn(3, '\n').nth(2).unwrap_or_default();
    let text = match text.find(".SH VERSION\n") {
        Some(at) => format!("{}{ours}{}", &text[..at], &text[at..]),
        None => format!("{text}{ours}"),
    };
    Page { path: path.to_vec(), file, text }
}

/// EXIT STATUS, ENVIRONMENT, FILES and SEE ALSO.
fn sections(cmd: &Command, path: &[String]) -> Roff {
    let mut roff = Roff::new();
    let key = path.join(" ");
    roff.control("SH", ["EXIT STATUS"]);
    for (code, meaning) in exit_status(&key) {
        roff.control("TP", []);
        roff.text([bold(*code)]);
        roff.text([roman(*meaning)]);
    }

    let environment = environment(cmd, &key);
    if !environment.is_empty() {
        roff.control("SH", ["ENVIRONMENT"]);
        for (name, meaning) in environment {
            roff.control("TP", []);
            roff.text([bold(name)]);
            roff.text([roman(meaning)]);
        }
    }

    let files = files(cmd, &key);
    if !files.is_empty() {
        roff.control("SH", ["FILES"]);
        for (file, meaning) in files {
            roff.control("TP", []);
            roff.text([italic(*file)]);
            roff.text([roman(*meaning)]);
        }
    }

    roff.control("SH", ["SEE ALSO"]);
    let mut see: Vec<String> = Vec::new();
    if !path.is_empty() {
        see.push("cronfleet".to_owned());
    }
    if path.len() > 1 {
        see.push(format!("cronfleet-{}", path[..path.len() - 1].join("-")));
    }
    for other in related(&key) {
        see.push(format!("cronfleet-{}", other.replace(' ', "-")));
    }
    let mut line: Vec<Inline> = Vec::new();
    for (i, name) in see.iter().enumerate() {
        if i > 0 {
            line.push(roman(", "));
        }
        line.push(bold(name.as_str()));
        line.push(roman("(1)"));
    }
    if !line.is_empty() {
        roff.text(line);
    }
    roff.text([roman(
        "README.md and docs/ (installed in /usr/share/doc/cronfleet/ by the Debian package): \
         getting-started.md, task-file.md, semantics.md, api.md, fleet.md, migrating.md.",
    )]);
    roff
}

/// Bad input or an error: what every command but a few says with exit 2.
const TWO: &str = "An error, with the reason on standard error after `cronfleet:`: an invalid \
                   option or argument, an unknown task, no agent to talk to, or a refusal of \
                   the agent.";

/// The exit codes of a command (`key`: its words after `cronfleet`, space-separated), as
/// README.md and docs/ say.
fn exit_status(key: &str) -> &'static [(&'static str, &'static str)] {
    match key {
        "" => &[
            ("0", "Success."),
            (
                "1",
                "Something ran but did not succeed: the run `cronfleet run -w` waited for, a \
                 check of `cronfleet doctor`, entries an import could not take, a detached agent \
                 that exited while starting.",
            ),
            (
                "2",
                "Bad input or an error (the reason on standard error): an invalid expression, \
                 zone, time, option or task file, an unknown task, no agent to talk to, a \
                 refusal of the agent.",
            ),
        ],
        "agent" => &[
            (
                "0",
                "Stopped by SIGTERM or SIGINT (runs in flight got --shutdown-grace); with \
                 --daemon, the detached agent has loaded its tasks.",
            ),
            (
                "1",
                "With --daemon: the detached agent exited while starting without saying why (its \
                 log file does).",
            ),
            (
                "2",
                "The agent refused to start, before any task started: an invalid task file (every \
                 error printed), option, API address, tokens file or TLS file, a store that \
                 cannot be opened, a live pid file.",
            ),
        ],
        "next" | "prev" => &[
            ("0", "The fire times were printed."),
            (
                "2",
                "An invalid expression, zone, time or option: the error on standard error, \
                 nothing on standard output.",
            ),
        ],
        "validate" => &[
            ("0", "The task file is valid (each task is listed with its next run)."),
            (
                "2",
                "The file has errors (every one printed, with file:line:column, task and field) \
                 or cannot be read.",
            ),
        ],
        "reload" => &[
            (
                "0",
                "Reloaded (through the API: what changed is printed), or SIGHUP was sent (the \
                 agent's log says how it went).",
            ),
            (
                "2",
                "The task file on disk is invalid (every error printed; the agent keeps the \
                 tasks it runs), or no running agent was found.",
            ),
        ],
        "stop" => &[
            ("0", "The agent has exited."),
            ("2", "No running agent was found, or it was still running after 10 minutes."),
        ],
        "status" | "nodes" => &[("0", "The status was printed."), ("2", TWO)],
        "runs" => &[
            (
                "0",
                "The runs were printed; also when there are none (`no runs of TASK yet` on \
                 standard error, `[]` with --json).",
            ),
            (
                "2",
                "An unknown --task (with the nearest name) or --outcome, no run history in the \
                 state directory, or another error.",
            ),
        ],
        "logs" => &[
            (
                "0",
                "The output was printed; also when the task has not run yet (`no runs of TASK \
                 yet` on standard error).",
            ),
            (
                "2",
                "An unknown TASK or RUN_ID, a RUN_ID of another task, -f without a running \
                 agent, or another error.",
            ),
        ],
        "run" => &[
            ("0", "The run was started; with -w, it succeeded."),
            ("1", "With -w: the run did not succeed (failed, timed out, was killed...)."),
            ("2", TWO),
        ],
        "kill" => &[
            ("0", "The run was killed (and, without --no-wait, has ended)."),
            (
                "2",
                "The run is not in flight (the message says how it ended), an unknown run id, \
                 or another error.",
            ),
        ],
        "plan" => &[("0", "The plan was printed."), ("2", "An invalid task file (every error printed), or another error.")],
        "apply" => &[
            ("0", "The file was applied (or stored, with --store)."),
            (
                "2",
                "Nothing was applied: an invalid task file (every error printed), a file without \
                 any task without --allow-empty, or another error.",
            ),
        ],
        "doctor" => &[
            ("0", "No check failed (warnings allowed)."),
            ("1", "A check failed (its line starts with FAIL)."),
        ],
        "import-crontab" | "import-gotorch" => &[
            ("0", "Every entry was imported."),
            ("1", "Some entries were not imported (each is reported on standard error, with its line)."),
            (
                "2",
                "The input cannot be read (import-gotorch: or is not a JSON array), or the \
                 imported tasks do not validate together (nothing is written).",
            ),
        ],
        "completions" | "man" => &[("0", "Success."), ("2", "An invalid argument, or the output cannot be written.")],
        _ => &[("0", "Success."), ("2", TWO)],
    }
}

/// The environment variables a command reads (its options' defaults, and a few more), and for
/// the agent those it gives each run.
fn environment(cmd: &Command, key: &str) -> Vec<(String, String)> {
    let mut options = BTreeSet::new();
    gather_env(cmd, &mut options);
    let mut vars: Vec<(String, String)> =
        options.into_iter().map(|(var, long)| (var, format!("The default of --{long}."))).collect();
    // cronfleet(1) names every variable.
    let has = |id: &str| key.is_empty() || has_arg(cmd, id);
    if has("token_file") {
        vars.push((
            "CRONFLEET_TOKEN".into(),
            "The API token itself, for --server without --token-file.".into(),
        ));
    }
    if has("state_dir") {
        vars.push((
            "XDG_STATE_HOME, HOME".into(),
            "The default state directory of users other than root: $XDG_STATE_HOME/cronfleet, \
             else $HOME/.local/state/cronfleet (root: /var/lib/cronfleet)."
                .into(),
        ));
    }
    if has("tz") || key == "agent" {
        let meaning = match key {
            "next" | "prev" => {
                "The system's zone (else /etc/localtime): the default of --tz, for expressions \
                 without CRON_TZ= and times without an offset."
            }
            "agent" => {
                "The agent's zone (else /etc/localtime): the zone of tasks without `timezone` \
                 and of local times given to the API."
            }
            "" => {
                "The local zone (else /etc/localtime): the agent's zone, and the zone the CLI \
                 shows times in unless --tz or --utc says otherwise."
            }
            _ => {
                "The local zone (else /etc/localtime): the zone this command shows times in \
                 unless --tz or --utc says otherwise."
            }
        };
        vars.push(("TZ".into(), meaning.into()));
    }
    if key == "agent" || key.is_empty() {
        vars.push((
            "NOTIFY_SOCKET".into(),
            "Set by systemd (Type=notify): the agent says READY=1 once its tasks are loaded."
                .into(),
        ));
        vars.push((
            "CRONFLEET_TASK, CRONFLEET_SCHEDULED_AT, CRONFLEET_RUN_ID, CRONFLEET_ATTEMPT, \
             CRONFLEET_NODE"
                .into(),
            "Given to every run by the agent: the task, the slot (RFC 3339; the run's \
             idempotency key), the run id, the attempt (1 for the first) and the node."
                .into(),
        ));
    }
    vars
}

/// `(variable, --long)` of every option of `cmd` and, for cronfleet(1), of every command.
fn gather_env(cmd: &Command, into: &mut BTreeSet<(String, String)>) {
    for arg in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
        if let (Some(var), Some(long)) = (arg.get_env(), arg.get_long()) {
            into.insert((var.to_string_lossy().into_owned(), long.to_owned()));
        }
    }
    if cmd.get_name() == "cronfleet" {
        for sub in cmd.get_subcommands() {
            gather_env_all(sub, into);
        }
    }
}

fn gather_env_all(cmd: &Command, into: &mut BTreeSet<(String, String)>) {
    for arg in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
        if let (Some(var), Some(long)) = (arg.get_env(), arg.get_long()) {
            into.insert((var.to_string_lossy().into_owned(), long.to_owned()));
        }
    }
    for sub in cmd.get_subcommands() {
        gather_env_all(sub, into);
    }
}

fn has_arg(cmd: &Command, id: &str) -> bool {
    cmd.get_arguments().any(|a| a.get_id() == id)
}

/// The state directory and what is in it.
const STATE_FILES: &[(&str, &str)] = &[
    (
        "/var/lib/cronfleet",
        "The state directory of an agent run as root (else $XDG_STATE_HOME/cronfleet; \
         --state-dir, CRONFLEET_STATE_DIR). Mode 0700, every file in it 0600.",
    ),
    (
        "STATE_DIR/state.db",
        "The run history (SQLite, with its -wal and -shm files): every run with its output, \
         API tasks, pauses. Read by status, runs and logs when no agent runs.",
    ),
    (
        "STATE_DIR/agent.json",
        "The agent that last ran with this directory: its pid, task file, node, tags, start \
         time. How the CLI finds it.",
    ),
    ("STATE_DIR/api-addr", "The URL of the agent's API, written once it listens."),
    (
        "STATE_DIR/api-token",
        "The agent's own admin token, created at its first start; the CLI uses it to talk to \
         the local agent.",
    ),
    (
        "STATE_DIR/children/",
        "The processes of runs in flight; those a crashed agent left are ended at its next \
         start and their runs recorded as abandoned.",
    ),
    ("STATE_DIR/spool/", "With --store: run records kept while the shared database is away."),
];

/// The files a command uses.
fn files(cmd: &Command, key: &str) -> Vec<&'static (&'static str, &'static str)> {
    let mut files = Vec::new();
    if key.is_empty() || key == "agent" {
        files.push(&(
            "/etc/cronfleet/tasks.toml",
            "The task file of the Debian package's service (cronfleet.service).",
        ));
    }
    if has_arg(cmd, "state_dir") || key.is_empty() {
        files.extend(STATE_FILES);
    }
    if key.is_empty() || ["agent", "reload", "stop"].contains(&key) {
        files.push(&(
            "/run/cronfleet.pid",
            "The pid file of `cronfleet agent --daemon` (its log: /run/cronfleet.pid.log); \
             reload and stop look there last.",
        ));
    }
    files
}

/// Pages worth a look from a command's.
fn related(key: &str) -> &'static [&'static str] {
    match key {
        "agent" => &["validate", "status", "reload", "stop", "doctor"],
        "next" => &["prev", "validate"],
        "prev" => &["next"],
        "reload" => &["stop", "agent"],
        "stop" => &["reload", "agent"],
        "status" => &["runs", "logs", "nodes"],
        "runs" => &["logs", "status", "kill"],
        "logs" => &["runs", "run"],
        "run" => &["logs", "kill"],
        "pause" => &["resume"],
        "resume" => &["pause"],
        "kill" => &["runs", "run"],
        "plan" => &["apply", "validate"],
        "apply" => &["plan", "validate"],
        "nodes" => &["status"],
        "doctor" => &["status", "agent"],
        "validate" => &["agent", "plan"],
        "import-crontab" => &["import-gotorch", "validate"],
        "import-gotorch" => &["import-crontab", "validate"],
        _ => &[],
    }
}
