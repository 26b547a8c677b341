# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_cronfleet_global_optspecs
    string join \n h/help V/version
end

function __fish_cronfleet_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_cronfleet_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_cronfleet_using_subcommand
    set -l cmd (__fish_cronfleet_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c cronfleet -n "__fish_cronfleet_needs_command" -s h -l help -d 'Print help'
complete -c cronfleet -n "__fish_cronfleet_needs_command" -s V -l version -d 'Print version'
complete -c cronfleet -n "__fish_cronfleet_needs_command" -f -a "agent" -d 'Run the task file\'s tasks meant for this machine (foreground; SIGHUP reloads)'
complete -c cronfleet -n "__fish_cronfleet_needs_command" -f -a "next" -d 'Print the next fire times of a schedule expression'
complete -c cronfleet -n "__fish_cronfleet_needs_command" -f -a "prev" -d 'Print the previous fire times of a schedule expression'
complete -c cronfleet -n "__fish_cronfleet_needs_command" -f -a "reload" -d 'Ask a running agent to reload its task file (through its API, else SIGHUP)'
complete -c cronfleet -n "__fish_cronfleet_needs_command" -f -a "stop" -d 'Stop a running agent (through its API, else SIGTERM) and wait until it has exited'
complete -c cronfleet -n "__fish_cronfleet_needs_command" -f -a "status" -d 'The tasks on this node: next run, last outcome, running runs'
complete -c cronfleet -n "__fish_cronfleet_needs_command" -f -a "runs" -d 'List recorded runs (newest first), from the agent\'s API or the state directory'
complete -c cronfleet -n "__fish_cronfleet_needs_command" -f -a "logs" -d 'Print the captured output of a task\'s latest run (or of one run); -f follows it'
complete -c cronfleet -n "__fish_cronfleet_needs_command" -f -a "run" -d 'Start a run of a task now, through the agent\'s API (-w: wait and show its output)'
complete -c cronfleet -n "__fish_cronfleet_needs_command" -f -a "pause" -d 'Pause a task (optionally --until an instant), through the agent\'s API'
complete -c cronfleet -n "__fish_cronfleet_needs_command" -f -a "resume" -d 'Resume a paused task from its next slot, through the agent\'s API'
complete -c cronfleet -n "__fish_cronfleet_needs_command" -f -a "kill" -d 'Kill a run in flight (its whole process group), through the agent\'s API'
complete -c cronfleet -n "__fish_cronfleet_needs_command" -f -a "task" -d 'Tasks created through the API: ls, show, create, edit, rm'
complete -c cronfleet -n "__fish_cronfleet_needs_command" -f -a "plan" -d 'Show what applying a task file would change (added, changed field by field, removed)'
complete -c cronfleet -n "__fish_cronfleet_needs_command" -f -a "apply" -d 'Write a task file to a running agent and reload it (after `plan`)'
complete -c cronfleet -n "__fish_cronfleet_needs_command" -f -a "nodes" -d 'The nodes registered in the agent\'s store (with a shared store: the fleet)'
complete -c cronfleet -n "__fish_cronfleet_needs_command" -f -a "doctor" -d 'Check this machine\'s setup: task file, state dir, store, API token, clock'
complete -c cronfleet -n "__fish_cronfleet_needs_command" -f -a "completions" -d 'Print a shell completion script (bash, zsh or fish) to stdout'
complete -c cronfleet -n "__fish_cronfleet_needs_command" -f -a "man" -d 'Print a man page (roff) to stdout: cronfleet(1), or a command\'s (`cronfleet man runs`)'
complete -c cronfleet -n "__fish_cronfleet_needs_command" -f -a "docs" -d 'Print a generated part of the documentation'
complete -c cronfleet -n "__fish_cronfleet_needs_command" -f -a "validate" -d 'Check a task file without running anything (exit 0, or 2 with every error)'
complete -c cronfleet -n "__fish_cronfleet_needs_command" -f -a "import-crontab" -d 'Turn crontab lines into [[task]] entries (user or system format)'
complete -c cronfleet -n "__fish_cronfleet_needs_command" -f -a "import-gotorch" -d 'Turn Gotorch\'s task.json into [[task]] entries'
complete -c cronfleet -n "__fish_cronfleet_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand agent" -l config -d 'The task file. Without it, an agent with --store runs the fleet\'s task file, kept in the database by `cronfleet apply FILE --store URL`' -r -F
complete -c cronfleet -n "__fish_cronfleet_using_subcommand agent" -l node -d 'This machine\'s name for `hosts` patterns [default: the hostname]' -r
complete -c cronfleet -n "__fish_cronfleet_using_subcommand agent" -l tag -d 'A tag this machine carries (repeatable); tasks with `tags` need all of theirs' -r
complete -c cronfleet -n "__fish_cronfleet_using_subcommand agent" -l shutdown-grace -d 'How long runs get to finish on stop before their process groups are killed' -r
complete -c cronfleet -n "__fish_cronfleet_using_subcommand agent" -l pid-file -d 'Write the agent\'s pid here (a stale file is replaced; a live one is an error). With --daemon the default is /run/cronfleet.pid' -r -F
complete -c cronfleet -n "__fish_cronfleet_using_subcommand agent" -l log-file -d 'Where a detached agent writes its log [default: the pid file\'s path with .log]' -r -F
complete -c cronfleet -n "__fish_cronfleet_using_subcommand agent" -l log-format -d 'Log lines as text or as JSON objects' -r -f -a "text\t''
json\t''"
complete -c cronfleet -n "__fish_cronfleet_using_subcommand agent" -l state-dir -d 'Where the run history is kept [default: /var/lib/cronfleet for root, $XDG_STATE_HOME/cronfleet otherwise]' -r -F
complete -c cronfleet -n "__fish_cronfleet_using_subcommand agent" -l keep-runs -d 'Runs kept in the history per task (older ones are deleted, hourly)' -r
complete -c cronfleet -n "__fish_cronfleet_using_subcommand agent" -l keep-for -d 'Runs older than this are deleted from the history' -r
complete -c cronfleet -n "__fish_cronfleet_using_subcommand agent" -l listen -d 'Where the API and dashboard listen (port 0: any free port; the address is written to STATE_DIR/api-addr)' -r
complete -c cronfleet -n "__fish_cronfleet_using_subcommand agent" -l tokens -d 'More API tokens: lines of `read|admin TOKEN [NAME]` (the agent\'s own admin token is in STATE_DIR/api-token)' -r -F
complete -c cronfleet -n "__fish_cronfleet_using_subcommand agent" -l tls-cert -d 'Serve HTTPS with this certificate chain (PEM); needs --tls-key' -r -F
complete -c cronfleet -n "__fish_cronfleet_using_subcommand agent" -l tls-key -d 'The private key of --tls-cert (PEM)' -r -F
complete -c cronfleet -n "__fish_cronfleet_using_subcommand agent" -l store -d 'Keep the history in this database instead of SQLite in the state directory: postgres://USER:PASSWORD@HOST/DB (agents sharing one see each other\'s runs)' -r
complete -c cronfleet -n "__fish_cronfleet_using_subcommand agent" -l daemon -d 'Detach: return once the agent has loaded its tasks (exit 0), or failed (non-zero)'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand agent" -l no-watch -d 'Do not reload when the task file changes on disk (SIGHUP still does)'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand agent" -l no-api -d 'Serve no API, metrics or dashboard'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand agent" -l insecure-listen -d 'Allow --listen on a non-loopback address without TLS'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand agent" -l public-metrics -d 'Serve /metrics without a token (for a Prometheus on a trusted network)'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand agent" -s h -l help -d 'Print help'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand agent" -s V -l version -d 'Print version'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand next" -l after -d 'Print fire times strictly after TIME [default: now]' -r
complete -c cronfleet -n "__fish_cronfleet_using_subcommand next" -l tz -d 'Zone for the expression when it has no CRON_TZ= prefix, and for times written without an offset [default: the system\'s local zone]' -r
complete -c cronfleet -n "__fish_cronfleet_using_subcommand next" -l anchor -d 'Anchor an @every schedule: it fires at ANCHOR + k * interval' -r
complete -c cronfleet -n "__fish_cronfleet_using_subcommand next" -s n -l count -d 'How many fire times to print (1 or more)' -r
complete -c cronfleet -n "__fish_cronfleet_using_subcommand next" -s h -l help -d 'Print help'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand next" -s V -l version -d 'Print version'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand prev" -l before -d 'Print fire times strictly before TIME [default: now]' -r
complete -c cronfleet -n "__fish_cronfleet_using_subcommand prev" -l tz -d 'Zone for the expression when it has no CRON_TZ= prefix, and for times written without an offset [default: the system\'s local zone]' -r
complete -c cronfleet -n "__fish_cronfleet_using_subcommand prev" -l anchor -d 'Anchor an @every schedule: it fires at ANCHOR + k * interval' -r
complete -c cronfleet -n "__fish_cronfleet_using_subcommand prev" -s n -l count -d 'How many fire times to print (1 or more)' -r
complete -c cronfleet -n "__fish_cronfleet_using_subcommand prev" -s h -l help -d 'Print help'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand prev" -s V -l version -d 'Print version'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand reload" -l pid-file -d 'The agent\'s pid file (`cronfleet agent --daemon` writes /run/cronfleet.pid). Without it: the agent\'s API (`--server`, or the local agent of the state directory), else the pid the agent records in its state directory, else /run/cronfleet.pid' -r -F
complete -c cronfleet -n "__fish_cronfleet_using_subcommand reload" -l server -d 'An agent\'s API, like https://10.0.0.5:7070 [default: the local agent of --state-dir]' -r
complete -c cronfleet -n "__fish_cronfleet_using_subcommand reload" -l token-file -d 'A file holding the API token [default with --server: $CRONFLEET_TOKEN]' -r -F
complete -c cronfleet -n "__fish_cronfleet_using_subcommand reload" -l ca-cert -d 'A CA certificate (PEM) to trust for an agent\'s HTTPS (a self-signed one, say)' -r -F
complete -c cronfleet -n "__fish_cronfleet_using_subcommand reload" -l state-dir -d 'The local agent\'s state directory' -r -F
complete -c cronfleet -n "__fish_cronfleet_using_subcommand reload" -s h -l help -d 'Print help'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand reload" -s V -l version -d 'Print version'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand stop" -l pid-file -d 'The agent\'s pid file (`cronfleet agent --daemon` writes /run/cronfleet.pid). Without it: the agent\'s API (`--server`, or the local agent of the state directory), else the pid the agent records in its state directory, else /run/cronfleet.pid' -r -F
complete -c cronfleet -n "__fish_cronfleet_using_subcommand stop" -l server -d 'An agent\'s API, like https://10.0.0.5:7070 [default: the local agent of --state-dir]' -r
complete -c cronfleet -n "__fish_cronfleet_using_subcommand stop" -l token-file -d 'A file holding the API token [default with --server: $CRONFLEET_TOKEN]' -r -F
complete -c cronfleet -n "__fish_cronfleet_using_subcommand stop" -l ca-cert -d 'A CA certificate (PEM) to trust for an agent\'s HTTPS (a self-signed one, say)' -r -F
complete -c cronfleet -n "__fish_cronfleet_using_subcommand stop" -l state-dir -d 'The local agent\'s state directory' -r -F
complete -c cronfleet -n "__fish_cronfleet_using_subcommand stop" -s h -l help -d 'Print help'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand stop" -s V -l version -d 'Print version'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand status" -l config -d 'The task file [default: the one the agent of this state directory runs]' -r -F
complete -c cronfleet -n "__fish_cronfleet_using_subcommand status" -l tz -d 'Show times in this zone, an IANA name like Europe/Berlin [default: the local zone: TZ, else /etc/localtime]' -r
complete -c cronfleet -n "__fish_cronfleet_using_subcommand status" -l server -d 'An agent\'s API, like https://10.0.0.5:7070 [default: the local agent of --state-dir]' -r
complete -c cronfleet -n "__fish_cronfleet_using_subcommand status" -l token-file -d 'A file holding the API token [default with --server: $CRONFLEET_TOKEN]' -r -F
complete -c cronfleet -n "__fish_cronfleet_using_subcommand status" -l ca-cert -d 'A CA certificate (PEM) to trust for an agent\'s HTTPS (a self-signed one, say)' -r -F
complete -c cronfleet -n "__fish_cronfleet_using_subcommand status" -l state-dir -d 'The local agent\'s state directory' -r -F
complete -c cronfleet -n "__fish_cronfleet_using_subcommand status" -l json -d 'One JSON object, for scripts (times as the API gives them: each in its task\'s zone)'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand status" -l utc -d 'Show times in UTC (as --tz UTC)'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand status" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand status" -s V -l version -d 'Print version'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand runs" -l task -d 'Only this task (an unknown name is an error; a task deleted since keeps its runs until they are pruned)' -r
complete -c cronfleet -n "__fish_cronfleet_using_subcommand runs" -l outcome -d 'Only this outcome (succeeded, failed, timed_out, killed, skipped, missed, abandoned, lost, running)' -r
complete -c cronfleet -n "__fish_cronfleet_using_subcommand runs" -s n -l limit -d 'At most this many, newest first' -r
complete -c cronfleet -n "__fish_cronfleet_using_subcommand runs" -l tz -d 'Show times in this zone, an IANA name like Europe/Berlin [default: the local zone: TZ, else /etc/localtime]' -r
complete -c cronfleet -n "__fish_cronfleet_using_subcommand runs" -l server -d 'An agent\'s API, like https://10.0.0.5:7070 [default: the local agent of --state-dir]' -r
complete -c cronfleet -n "__fish_cronfleet_using_subcommand runs" -l token-file -d 'A file holding the API token [default with --server: $CRONFLEET_TOKEN]' -r -F
complete -c cronfleet -n "__fish_cronfleet_using_subcommand runs" -l ca-cert -d 'A CA certificate (PEM) to trust for an agent\'s HTTPS (a self-signed one, say)' -r -F
complete -c cronfleet -n "__fish_cronfleet_using_subcommand runs" -l state-dir -d 'The local agent\'s state directory' -r -F
complete -c cronfleet -n "__fish_cronfleet_using_subcommand runs" -l json -d 'One JSON array, for scripts (the API\'s form: each slot in its task\'s zone)'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand runs" -l utc -d 'Show times in UTC (as --tz UTC)'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand runs" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand runs" -s V -l version -d 'Print version'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand logs" -l server -d 'An agent\'s API, like https://10.0.0.5:7070 [default: the local agent of --state-dir]' -r
complete -c cronfleet -n "__fish_cronfleet_using_subcommand logs" -l token-file -d 'A file holding the API token [default with --server: $CRONFLEET_TOKEN]' -r -F
complete -c cronfleet -n "__fish_cronfleet_using_subcommand logs" -l ca-cert -d 'A CA certificate (PEM) to trust for an agent\'s HTTPS (a self-signed one, say)' -r -F
complete -c cronfleet -n "__fish_cronfleet_using_subcommand logs" -l state-dir -d 'The local agent\'s state directory' -r -F
complete -c cronfleet -n "__fish_cronfleet_using_subcommand logs" -s f -l follow -d 'Follow the run\'s output as it comes, until it ends (needs the agent\'s API)'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand logs" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand logs" -s V -l version -d 'Print version'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand run" -l server -d 'An agent\'s API, like https://10.0.0.5:7070 [default: the local agent of --state-dir]' -r
complete -c cronfleet -n "__fish_cronfleet_using_subcommand run" -l token-file -d 'A file holding the API token [default with --server: $CRONFLEET_TOKEN]' -r -F
complete -c cronfleet -n "__fish_cronfleet_using_subcommand run" -l ca-cert -d 'A CA certificate (PEM) to trust for an agent\'s HTTPS (a self-signed one, say)' -r -F
complete -c cronfleet -n "__fish_cronfleet_using_subcommand run" -l state-dir -d 'The local agent\'s state directory' -r -F
complete -c cronfleet -n "__fish_cronfleet_using_subcommand run" -s w -l wait -d 'Print the run\'s output as it comes and exit with 0 only if it succeeded'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand run" -s h -l help -d 'Print help'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand run" -s V -l version -d 'Print version'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand pause" -l until -d 'Resume by itself at this instant (RFC 3339, or a local date and time)' -r
complete -c cronfleet -n "__fish_cronfleet_using_subcommand pause" -l server -d 'An agent\'s API, like https://10.0.0.5:7070 [default: the local agent of --state-dir]' -r
complete -c cronfleet -n "__fish_cronfleet_using_subcommand pause" -l token-file -d 'A file holding the API token [default with --server: $CRONFLEET_TOKEN]' -r -F
complete -c cronfleet -n "__fish_cronfleet_using_subcommand pause" -l ca-cert -d 'A CA certificate (PEM) to trust for an agent\'s HTTPS (a self-signed one, say)' -r -F
complete -c cronfleet -n "__fish_cronfleet_using_subcommand pause" -l state-dir -d 'The local agent\'s state directory' -r -F
complete -c cronfleet -n "__fish_cronfleet_using_subcommand pause" -s h -l help -d 'Print help'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand pause" -s V -l version -d 'Print version'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand resume" -l missed -d 'Slots passed while paused: skip them, or run the latest of them once, now' -r -f -a "skip\t''
once\t''"
complete -c cronfleet -n "__fish_cronfleet_using_subcommand resume" -l server -d 'An agent\'s API, like https://10.0.0.5:7070 [default: the local agent of --state-dir]' -r
complete -c cronfleet -n "__fish_cronfleet_using_subcommand resume" -l token-file -d 'A file holding the API token [default with --server: $CRONFLEET_TOKEN]' -r -F
complete -c cronfleet -n "__fish_cronfleet_using_subcommand resume" -l ca-cert -d 'A CA certificate (PEM) to trust for an agent\'s HTTPS (a self-signed one, say)' -r -F
complete -c cronfleet -n "__fish_cronfleet_using_subcommand resume" -l state-dir -d 'The local agent\'s state directory' -r -F
complete -c cronfleet -n "__fish_cronfleet_using_subcommand resume" -s h -l help -d 'Print help'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand resume" -s V -l version -d 'Print version'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand kill" -l server -d 'An agent\'s API, like https://10.0.0.5:7070 [default: the local agent of --state-dir]' -r
complete -c cronfleet -n "__fish_cronfleet_using_subcommand kill" -l token-file -d 'A file holding the API token [default with --server: $CRONFLEET_TOKEN]' -r -F
complete -c cronfleet -n "__fish_cronfleet_using_subcommand kill" -l ca-cert -d 'A CA certificate (PEM) to trust for an agent\'s HTTPS (a self-signed one, say)' -r -F
complete -c cronfleet -n "__fish_cronfleet_using_subcommand kill" -l state-dir -d 'The local agent\'s state directory' -r -F
complete -c cronfleet -n "__fish_cronfleet_using_subcommand kill" -l no-wait -d 'Return at once instead of waiting until the run has ended'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand kill" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand kill" -s V -l version -d 'Print version'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand task; and not __fish_seen_subcommand_from ls show create edit rm help" -s h -l help -d 'Print help'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand task; and not __fish_seen_subcommand_from ls show create edit rm help" -s V -l version -d 'Print version'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand task; and not __fish_seen_subcommand_from ls show create edit rm help" -f -a "ls" -d 'List tasks (both origins, or --origin api|file), optionally by label'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand task; and not __fish_seen_subcommand_from ls show create edit rm help" -f -a "show" -d 'Print one task as JSON (its definition, state, revision, next runs, last runs)'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand task; and not __fish_seen_subcommand_from ls show create edit rm help" -f -a "create" -d 'Create a task through the API (the fields of the task file, as flags or --json)'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand task; and not __fish_seen_subcommand_from ls show create edit rm help" -f -a "edit" -d 'Change fields of an API task (only those given; --revision guards against lost updates)'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand task; and not __fish_seen_subcommand_from ls show create edit rm help" -f -a "rm" -d 'Delete an API task (its runs in flight finish)'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand task; and not __fish_seen_subcommand_from ls show create edit rm help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand task; and __fish_seen_subcommand_from ls" -l origin -d 'Only tasks from the task file (`file`) or created through the API (`api`)' -r -f -a "file\t''
api\t''"
complete -c cronfleet -n "__fish_cronfleet_using_subcommand task; and __fish_seen_subcommand_from ls" -l label -d 'Only tasks with this label (KEY=VALUE; repeatable)' -r
complete -c cronfleet -n "__fish_cronfleet_using_subcommand task; and __fish_seen_subcommand_from ls" -l tz -d 'Show times in this zone, an IANA name like Europe/Berlin [default: the local zone: TZ, else /etc/localtime]' -r
complete -c cronfleet -n "__fish_cronfleet_using_subcommand task; and __fish_seen_subcommand_from ls" -l server -d 'An agent\'s API, like https://10.0.0.5:7070 [default: the local agent of --state-dir]' -r
complete -c cronfleet -n "__fish_cronfleet_using_subcommand task; and __fish_seen_subcommand_from ls" -l token-file -d 'A file holding the API token [default with --server: $CRONFLEET_TOKEN]' -r -F
complete -c cronfleet -n "__fish_cronfleet_using_subcommand task; and __fish_seen_subcommand_from ls" -l ca-cert -d 'A CA certificate (PEM) to trust for an agent\'s HTTPS (a self-signed one, say)' -r -F
complete -c cronfleet -n "__fish_cronfleet_using_subcommand task; and __fish_seen_subcommand_from ls" -l state-dir -d 'The local agent\'s state directory' -r -F
complete -c cronfleet -n "__fish_cronfleet_using_subcommand task; and __fish_seen_subcommand_from ls" -l json -d 'One JSON object, for scripts (the API\'s form: each time in its task\'s zone)'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand task; and __fish_seen_subcommand_from ls" -l utc -d 'Show times in UTC (as --tz UTC)'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand task; and __fish_seen_subcommand_from ls" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand task; and __fish_seen_subcommand_from ls" -s V -l version -d 'Print version'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand task; and __fish_seen_subcommand_from show" -l server -d 'An agent\'s API, like https://10.0.0.5:7070 [default: the local agent of --state-dir]' -r
complete -c cronfleet -n "__fish_cronfleet_using_subcommand task; and __fish_seen_subcommand_from show" -l token-file -d 'A file holding the API token [default with --server: $CRONFLEET_TOKEN]' -r -F
complete -c cronfleet -n "__fish_cronfleet_using_subcommand task; and __fish_seen_subcommand_from show" -l ca-cert -d 'A CA certificate (PEM) to trust for an agent\'s HTTPS (a self-signed one, say)' -r -F
complete -c cronfleet -n "__fish_cronfleet_using_subcommand task; and __fish_seen_subcommand_from show" -l state-dir -d 'The local agent\'s state directory' -r -F
complete -c cronfleet -n "__fish_cronfleet_using_subcommand task; and __fish_seen_subcommand_from show" -s h -l help -d 'Print help'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand task; and __fish_seen_subcommand_from show" -s V -l version -d 'Print version'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand task; and __fish_seen_subcommand_from create" -l schedule -d 'Schedule expression (`@every 7d`, `0 9 * * MON-FRI`, ...)' -r
complete -c cronfleet -n "__fish_cronfleet_using_subcommand task; and __fish_seen_subcommand_from create" -l anchor -d 'Anchor of an `@every` schedule [default: when the task is created]' -r
complete -c cronfleet -n "__fish_cronfleet_using_subcommand task; and __fish_seen_subcommand_from create" -l timezone -d 'IANA zone of the schedule' -r
complete -c cronfleet -n "__fish_cronfleet_using_subcommand task; and __fish_seen_subcommand_from create" -l command -d 'Shell command to run' -r
complete -c cronfleet -n "__fish_cronfleet_using_subcommand task; and __fish_seen_subcommand_from create" -l url -d 'URL to call instead of a command (an http task)' -r
complete -c cronfleet -n "__fish_cronfleet_using_subcommand task; and __fish_seen_subcommand_from create" -l method -d 'HTTP method of --url [default: POST with --body, else GET]' -r
complete -c cronfleet -n "__fish_cronfleet_using_subcommand task; and __fish_seen_subcommand_from create" -l body -d 'HTTP body of --url ({{scheduled_at}}, {{run_id}}, {{task}} are filled in)' -r
complete -c cronfleet -n "__fish_cronfleet_using_subcommand task; and __fish_seen_subcommand_from create" -l header -d 'HTTP header of --url, `Name: value` (repeatable)' -r
complete -c cronfleet -n "__fish_cronfleet_using_subcommand task; and __fish_seen_subcommand_from create" -l label -d 'A label, KEY=VALUE (repeatable)' -r
complete -c cronfleet -n "__fish_cronfleet_using_subcommand task; and __fish_seen_subcommand_from create" -l enabled -d 'Enable or disable the task' -r -f -a "true\t''
false\t''"
complete -c cronfleet -n "__fish_cronfleet_using_subcommand task; and __fish_seen_subcommand_from create" -l json -d 'More fields as a JSON object (`-` reads it from stdin); flags win' -r
complete -c cronfleet -n "__fish_cronfleet_using_subcommand task; and __fish_seen_subcommand_from create" -l revision -d 'With edit: only if the task is still at this revision' -r
complete -c cronfleet -n "__fish_cronfleet_using_subcommand task; and __fish_seen_subcommand_from create" -l server -d 'An agent\'s API, like https://10.0.0.5:7070 [default: the local agent of --state-dir]' -r
complete -c cronfleet -n "__fish_cronfleet_using_subcommand task; and __fish_seen_subcommand_from create" -l token-file -d 'A file holding the API token [default with --server: $CRONFLEET_TOKEN]' -r -F
complete -c cronfleet -n "__fish_cronfleet_using_subcommand task; and __fish_seen_subcommand_from create" -l ca-cert -d 'A CA certificate (PEM) to trust for an agent\'s HTTPS (a self-signed one, say)' -r -F
complete -c cronfleet -n "__fish_cronfleet_using_subcommand task; and __fish_seen_subcommand_from create" -l state-dir -d 'The local agent\'s state directory' -r -F
complete -c cronfleet -n "__fish_cronfleet_using_subcommand task; and __fish_seen_subcommand_from create" -s h -l help -d 'Print help'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand task; and __fish_seen_subcommand_from create" -s V -l version -d 'Print version'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand task; and __fish_seen_subcommand_from edit" -l schedule -d 'Schedule expression (`@every 7d`, `0 9 * * MON-FRI`, ...)' -r
complete -c cronfleet -n "__fish_cronfleet_using_subcommand task; and __fish_seen_subcommand_from edit" -l anchor -d 'Anchor of an `@every` schedule [default: when the task is created]' -r
complete -c cronfleet -n "__fish_cronfleet_using_subcommand task; and __fish_seen_subcommand_from edit" -l timezone -d 'IANA zone of the schedule' -r
complete -c cronfleet -n "__fish_cronfleet_using_subcommand task; and __fish_seen_subcommand_from edit" -l command -d 'Shell command to run' -r
complete -c cronfleet -n "__fish_cronfleet_using_subcommand task; and __fish_seen_subcommand_from edit" -l url -d 'URL to call instead of a command (an http task)' -r
complete -c cronfleet -n "__fish_cronfleet_using_subcommand task; and __fish_seen_subcommand_from edit" -l method -d 'HTTP method of --url [default: POST with --body, else GET]' -r
complete -c cronfleet -n "__fish_cronfleet_using_subcommand task; and __fish_seen_subcommand_from edit" -l body -d 'HTTP body of --url ({{scheduled_at}}, {{run_id}}, {{task}} are filled in)' -r
complete -c cronfleet -n "__fish_cronfleet_using_subcommand task; and __fish_seen_subcommand_from edit" -l header -d 'HTTP header of --url, `Name: value` (repeatable)' -r
complete -c cronfleet -n "__fish_cronfleet_using_subcommand task; and __fish_seen_subcommand_from edit" -l label -d 'A label, KEY=VALUE (repeatable)' -r
complete -c cronfleet -n "__fish_cronfleet_using_subcommand task; and __fish_seen_subcommand_from edit" -l enabled -d 'Enable or disable the task' -r -f -a "true\t''
false\t''"
complete -c cronfleet -n "__fish_cronfleet_using_subcommand task; and __fish_seen_subcommand_from edit" -l json -d 'More fields as a JSON object (`-` reads it from stdin); flags win' -r
complete -c cronfleet -n "__fish_cronfleet_using_subcommand task; and __fish_seen_subcommand_from edit" -l revision -d 'With edit: only if the task is still at this revision' -r
complete -c cronfleet -n "__fish_cronfleet_using_subcommand task; and __fish_seen_subcommand_from edit" -l server -d 'An agent\'s API, like https://10.0.0.5:7070 [default: the local agent of --state-dir]' -r
complete -c cronfleet -n "__fish_cronfleet_using_subcommand task; and __fish_seen_subcommand_from edit" -l token-file -d 'A file holding the API token [default with --server: $CRONFLEET_TOKEN]' -r -F
complete -c cronfleet -n "__fish_cronfleet_using_subcommand task; and __fish_seen_subcommand_from edit" -l ca-cert -d 'A CA certificate (PEM) to trust for an agent\'s HTTPS (a self-signed one, say)' -r -F
complete -c cronfleet -n "__fish_cronfleet_using_subcommand task; and __fish_seen_subcommand_from edit" -l state-dir -d 'The local agent\'s state directory' -r -F
complete -c cronfleet -n "__fish_cronfleet_using_subcommand task; and __fish_seen_subcommand_from edit" -s h -l help -d 'Print help'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand task; and __fish_seen_subcommand_from edit" -s V -l version -d 'Print version'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand task; and __fish_seen_subcommand_from rm" -l revision -d 'Only if the task is still at this revision' -r
complete -c cronfleet -n "__fish_cronfleet_using_subcommand task; and __fish_seen_subcommand_from rm" -l server -d 'An agent\'s API, like https://10.0.0.5:7070 [default: the local agent of --state-dir]' -r
complete -c cronfleet -n "__fish_cronfleet_using_subcommand task; and __fish_seen_subcommand_from rm" -l token-file -d 'A file holding the API token [default with --server: $CRONFLEET_TOKEN]' -r -F
complete -c cronfleet -n "__fish_cronfleet_using_subcommand task; and __fish_seen_subcommand_from rm" -l ca-cert -d 'A CA certificate (PEM) to trust for an agent\'s HTTPS (a self-signed one, say)' -r -F
complete -c cronfleet -n "__fish_cronfleet_using_subcommand task; and __fish_seen_subcommand_from rm" -l state-dir -d 'The local agent\'s state directory' -r -F
complete -c cronfleet -n "__fish_cronfleet_using_subcommand task; and __fish_seen_subcommand_from rm" -s h -l help -d 'Print help'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand task; and __fish_seen_subcommand_from rm" -s V -l version -d 'Print version'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand task; and __fish_seen_subcommand_from help" -f -a "ls" -d 'List tasks (both origins, or --origin api|file), optionally by label'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand task; and __fish_seen_subcommand_from help" -f -a "show" -d 'Print one task as JSON (its definition, state, revision, next runs, last runs)'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand task; and __fish_seen_subcommand_from help" -f -a "create" -d 'Create a task through the API (the fields of the task file, as flags or --json)'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand task; and __fish_seen_subcommand_from help" -f -a "edit" -d 'Change fields of an API task (only those given; --revision guards against lost updates)'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand task; and __fish_seen_subcommand_from help" -f -a "rm" -d 'Delete an API task (its runs in flight finish)'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand task; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand plan" -l store -d 'The fleet\'s database (postgres://...): review against (or store as) the task file every agent started with this --store and without --config runs; they reload it within a second' -r
complete -c cronfleet -n "__fish_cronfleet_using_subcommand plan" -l server -d 'An agent\'s API, like https://10.0.0.5:7070 [default: the local agent of --state-dir]' -r
complete -c cronfleet -n "__fish_cronfleet_using_subcommand plan" -l token-file -d 'A file holding the API token [default with --server: $CRONFLEET_TOKEN]' -r -F
complete -c cronfleet -n "__fish_cronfleet_using_subcommand plan" -l ca-cert -d 'A CA certificate (PEM) to trust for an agent\'s HTTPS (a self-signed one, say)' -r -F
complete -c cronfleet -n "__fish_cronfleet_using_subcommand plan" -l state-dir -d 'The local agent\'s state directory' -r -F
complete -c cronfleet -n "__fish_cronfleet_using_subcommand plan" -l json -d 'One JSON object, for scripts'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand plan" -s h -l help -d 'Print help'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand plan" -s V -l version -d 'Print version'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand apply" -l store -d 'The fleet\'s database (postgres://...): review against (or store as) the task file every agent started with this --store and without --config runs; they reload it within a second' -r
complete -c cronfleet -n "__fish_cronfleet_using_subcommand apply" -l server -d 'An agent\'s API, like https://10.0.0.5:7070 [default: the local agent of --state-dir]' -r
complete -c cronfleet -n "__fish_cronfleet_using_subcommand apply" -l token-file -d 'A file holding the API token [default with --server: $CRONFLEET_TOKEN]' -r -F
complete -c cronfleet -n "__fish_cronfleet_using_subcommand apply" -l ca-cert -d 'A CA certificate (PEM) to trust for an agent\'s HTTPS (a self-signed one, say)' -r -F
complete -c cronfleet -n "__fish_cronfleet_using_subcommand apply" -l state-dir -d 'The local agent\'s state directory' -r -F
complete -c cronfleet -n "__fish_cronfleet_using_subcommand apply" -l json -d 'One JSON object, for scripts'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand apply" -l allow-empty -d 'Apply a file that defines no task, removing every task of the task file (refused without it)'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand apply" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand apply" -s V -l version -d 'Print version'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand nodes" -l tz -d 'Show times in this zone, an IANA name like Europe/Berlin [default: the local zone: TZ, else /etc/localtime]' -r
complete -c cronfleet -n "__fish_cronfleet_using_subcommand nodes" -l server -d 'An agent\'s API, like https://10.0.0.5:7070 [default: the local agent of --state-dir]' -r
complete -c cronfleet -n "__fish_cronfleet_using_subcommand nodes" -l token-file -d 'A file holding the API token [default with --server: $CRONFLEET_TOKEN]' -r -F
complete -c cronfleet -n "__fish_cronfleet_using_subcommand nodes" -l ca-cert -d 'A CA certificate (PEM) to trust for an agent\'s HTTPS (a self-signed one, say)' -r -F
complete -c cronfleet -n "__fish_cronfleet_using_subcommand nodes" -l state-dir -d 'The local agent\'s state directory' -r -F
complete -c cronfleet -n "__fish_cronfleet_using_subcommand nodes" -l json -d 'One JSON object, for scripts'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand nodes" -l utc -d 'Show times in UTC (as --tz UTC)'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand nodes" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand nodes" -s V -l version -d 'Print version'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand doctor" -l config -d 'The task file [default: the one the agent of the state directory runs]' -r -F
complete -c cronfleet -n "__fish_cronfleet_using_subcommand doctor" -l state-dir -d 'The agent\'s state directory' -r -F
complete -c cronfleet -n "__fish_cronfleet_using_subcommand doctor" -s h -l help -d 'Print help'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand doctor" -s V -l version -d 'Print version'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand completions" -s h -l help -d 'Print help'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand completions" -s V -l version -d 'Print version'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand man" -l dir -d 'Write every page (cronfleet.1 and one per command: cronfleet-agent.1, ...) into DIR instead, and print their names' -r -F
complete -c cronfleet -n "__fish_cronfleet_using_subcommand man" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand man" -s V -l version -d 'Print version'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand docs" -s h -l help -d 'Print help'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand docs" -s V -l version -d 'Print version'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand validate" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand validate" -s V -l version -d 'Print version'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand import-crontab" -l system -d 'System format (a user field after the schedule), as in /etc/crontab and /etc/cron.d; the default for files under /etc'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand import-crontab" -l user -d 'User format (no user field), as `crontab -l` prints'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand import-crontab" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand import-crontab" -s V -l version -d 'Print version'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand import-gotorch" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand import-gotorch" -s V -l version -d 'Print version'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand help; and not __fish_seen_subcommand_from agent next prev reload stop status runs logs run pause resume kill task plan apply nodes doctor completions man docs validate import-crontab import-gotorch help" -f -a "agent" -d 'Run the task file\'s tasks meant for this machine (foreground; SIGHUP reloads)'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand help; and not __fish_seen_subcommand_from agent next prev reload stop status runs logs run pause resume kill task plan apply nodes doctor completions man docs validate import-crontab import-gotorch help" -f -a "next" -d 'Print the next fire times of a schedule expression'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand help; and not __fish_seen_subcommand_from agent next prev reload stop status runs logs run pause resume kill task plan apply nodes doctor completions man docs validate import-crontab import-gotorch help" -f -a "prev" -d 'Print the previous fire times of a schedule expression'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand help; and not __fish_seen_subcommand_from agent next prev reload stop status runs logs run pause resume kill task plan apply nodes doctor completions man docs validate import-crontab import-gotorch help" -f -a "reload" -d 'Ask a running agent to reload its task file (through its API, else SIGHUP)'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand help; and not __fish_seen_subcommand_from agent next prev reload stop status runs logs run pause resume kill task plan apply nodes doctor completions man docs validate import-crontab import-gotorch help" -f -a "stop" -d 'Stop a running agent (through its API, else SIGTERM) and wait until it has exited'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand help; and not __fish_seen_subcommand_from agent next prev reload stop status runs logs run pause resume kill task plan apply nodes doctor completions man docs validate import-crontab import-gotorch help" -f -a "status" -d 'The tasks on this node: next run, last outcome, running runs'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand help; and not __fish_seen_subcommand_from agent next prev reload stop status runs logs run pause resume kill task plan apply nodes doctor completions man docs validate import-crontab import-gotorch help" -f -a "runs" -d 'List recorded runs (newest first), from the agent\'s API or the state directory'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand help; and not __fish_seen_subcommand_from agent next prev reload stop status runs logs run pause resume kill task plan apply nodes doctor completions man docs validate import-crontab import-gotorch help" -f -a "logs" -d 'Print the captured output of a task\'s latest run (or of one run); -f follows it'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand help; and not __fish_seen_subcommand_from agent next prev reload stop status runs logs run pause resume kill task plan apply nodes doctor completions man docs validate import-crontab import-gotorch help" -f -a "run" -d 'Start a run of a task now, through the agent\'s API (-w: wait and show its output)'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand help; and not __fish_seen_subcommand_from agent next prev reload stop status runs logs run pause resume kill task plan apply nodes doctor completions man docs validate import-crontab import-gotorch help" -f -a "pause" -d 'Pause a task (optionally --until an instant), through the agent\'s API'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand help; and not __fish_seen_subcommand_from agent next prev reload stop status runs logs run pause resume kill task plan apply nodes doctor completions man docs validate import-crontab import-gotorch help" -f -a "resume" -d 'Resume a paused task from its next slot, through the agent\'s API'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand help; and not __fish_seen_subcommand_from agent next prev reload stop status runs logs run pause resume kill task plan apply nodes doctor completions man docs validate import-crontab import-gotorch help" -f -a "kill" -d 'Kill a run in flight (its whole process group), through the agent\'s API'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand help; and not __fish_seen_subcommand_from agent next prev reload stop status runs logs run pause resume kill task plan apply nodes doctor completions man docs validate import-crontab import-gotorch help" -f -a "task" -d 'Tasks created through the API: ls, show, create, edit, rm'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand help; and not __fish_seen_subcommand_from agent next prev reload stop status runs logs run pause resume kill task plan apply nodes doctor completions man docs validate import-crontab import-gotorch help" -f -a "plan" -d 'Show what applying a task file would change (added, changed field by field, removed)'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand help; and not __fish_seen_subcommand_from agent next prev reload stop status runs logs run pause resume kill task plan apply nodes doctor completions man docs validate import-crontab import-gotorch help" -f -a "apply" -d 'Write a task file to a running agent and reload it (after `plan`)'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand help; and not __fish_seen_subcommand_from agent next prev reload stop status runs logs run pause resume kill task plan apply nodes doctor completions man docs validate import-crontab import-gotorch help" -f -a "nodes" -d 'The nodes registered in the agent\'s store (with a shared store: the fleet)'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand help; and not __fish_seen_subcommand_from agent next prev reload stop status runs logs run pause resume kill task plan apply nodes doctor completions man docs validate import-crontab import-gotorch help" -f -a "doctor" -d 'Check this machine\'s setup: task file, state dir, store, API token, clock'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand help; and not __fish_seen_subcommand_from agent next prev reload stop status runs logs run pause resume kill task plan apply nodes doctor completions man docs validate import-crontab import-gotorch help" -f -a "completions" -d 'Print a shell completion script (bash, zsh or fish) to stdout'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand help; and not __fish_seen_subcommand_from agent next prev reload stop status runs logs run pause resume kill task plan apply nodes doctor completions man docs validate import-crontab import-gotorch help" -f -a "man" -d 'Print a man page (roff) to stdout: cronfleet(1), or a command\'s (`cronfleet man runs`)'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand help; and not __fish_seen_subcommand_from agent next prev reload stop status runs logs run pause resume kill task plan apply nodes doctor completions man docs validate import-crontab import-gotorch help" -f -a "docs" -d 'Print a generated part of the documentation'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand help; and not __fish_seen_subcommand_from agent next prev reload stop status runs logs run pause resume kill task plan apply nodes doctor completions man docs validate import-crontab import-gotorch help" -f -a "validate" -d 'Check a task file without running anything (exit 0, or 2 with every error)'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand help; and not __fish_seen_subcommand_from agent next prev reload stop status runs logs run pause resume kill task plan apply nodes doctor completions man docs validate import-crontab import-gotorch help" -f -a "import-crontab" -d 'Turn crontab lines into [[task]] entries (user or system format)'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand help; and not __fish_seen_subcommand_from agent next prev reload stop status runs logs run pause resume kill task plan apply nodes doctor completions man docs validate import-crontab import-gotorch help" -f -a "import-gotorch" -d 'Turn Gotorch\'s task.json into [[task]] entries'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand help; and not __fish_seen_subcommand_from agent next prev reload stop status runs logs run pause resume kill task plan apply nodes doctor completions man docs validate import-crontab import-gotorch help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand help; and __fish_seen_subcommand_from task" -f -a "ls" -d 'List tasks (both origins, or --origin api|file), optionally by label'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand help; and __fish_seen_subcommand_from task" -f -a "show" -d 'Print one task as JSON (its definition, state, revision, next runs, last runs)'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand help; and __fish_seen_subcommand_from task" -f -a "create" -d 'Create a task through the API (the fields of the task file, as flags or --json)'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand help; and __fish_seen_subcommand_from task" -f -a "edit" -d 'Change fields of an API task (only those given; --revision guards against lost updates)'
complete -c cronfleet -n "__fish_cronfleet_using_subcommand help; and __fish_seen_subcommand_from task" -f -a "rm" -d 'Delete an API task (its runs in flight finish)'
