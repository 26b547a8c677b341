//! What a command runs, for its task's name: the program or script, past the wrappers
//! around it.
//!
//! `/usr/local/bin/backup.sh --full` runs `backup`; `cd /srv && php artisan schedule:run`
//! runs `artisan-schedule-run`; `flock -n /tmp/l nice -n 10 /opt/sync.py` runs `sync`;
//! `run-parts /etc/cron.daily` runs `cron-daily`. Setup commands (`cd`, `test`, `sleep`,
//! `source`...) count only when nothing else runs.

use super::{name::sanitize, shell};

/// What a command runs, for its task's name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Program {
    /// The program or script (with a subcommand where that says what runs), sanitized.
    pub base: String,
    /// Its other arguments, sanitized: to tell apart two entries of the same `base`.
    pub rest: String,
}

/// The program a shell command line runs (a crontab entry's command).
pub fn of_shell(text: &str) -> Program {
    of_commands(shell::commands(text), 0)
}

/// The program argv words run (Gotorch's space-split `Command`).
pub fn of_argv(words: &[String]) -> Program {
    of_commands(vec![words.iter().filter(|w| !w.is_empty()).cloned().collect()], 0)
}

/// Commands that prepare the run rather than being it.
const SETUP: &[&str] = &[
    "cd", "test", "[", "[[", "sleep", "source", ".", "export", "umask", "true", "false", ":",
    "set", "ulimit", "unset", "trap", "wait", "exit", "}",
];

/// Words that open a compound command.
const KEYWORDS: &[&str] = &["{", "!", "if", "then", "else", "elif", "do", "while", "until"];

/// Wrappers that run the rest of their words as a command: their options that take a value,
/// and how many words (a lock file, a duration) come before the command.
const WRAPPERS: &[(&str, &[&str], usize)] = &[
    ("env", &["-u", "--unset", "-C", "--chdir"], 0),
    ("nice", &["-n", "--adjustment"], 0),
    ("ionice", &["-c", "--class", "-n", "--classdata", "-p", "--pid", "-P", "--pgid"], 0),
    ("flock", &["-w", "--wait", "--timeout", "-E", "--conflict-exit-code"], 1),
    ("setlock", &[], 1),
    ("lockrun", &["-L", "--lockfile", "-W", "--wait"], 0),
    ("timeout", &["-s", "--signal", "-k", "--kill-after"], 1),
    ("time", &["-f", "--format", "-o", "--output"], 0),
    ("stdbuf", &["-i", "-o", "-e"], 0),
    (
        "sudo",
        &["-u", "--user", "-g", "--group", "-C", "--close-from", "-D", "--chdir", "-h", "--host"],
        0,
    ),
    ("runuser", &["-u", "--user", "-g", "--group", "-G", "--supp-group", "-s", "--shell"], 0),
    ("nohup", &[], 0),
    ("exec", &["-a"], 0),
    ("command", &[], 0),
    ("chronic", &[], 0),
    ("cronic", &[], 0),
    ("setsid", &[], 0),
    ("run-one", &[], 0),
    ("run-this-one", &[], 0),
    ("unbuffer", &[], 0),
    ("ifne", &[], 0),
    ("npx", &["-p", "--package"], 0),
    ("xvfb-run", &["-n", "--server-num", "-s", "--server-args", "-e", "--error-file"], 0),
];

/// Tools that run a command in an environment of theirs: `bundle exec rake`, `poetry run`.
const RUNNERS: &[(&str, &str)] =
    &[("bundle", "exec"), ("poetry", "run"), ("pipenv", "run"), ("uv", "run"), ("pdm", "run")];

/// Shells: `-c TEXT` runs TEXT, else the first word is a script.
const SHELLS: &[&str] = &["sh", "bash", "dash", "zsh", "ksh", "ash", "mksh", "fish"];

/// Interpreters: their options that take a value, the option that names a module (Python's
/// `-m`) or a script (PHP's `-f`, Java's `-jar`), and those that give the code itself.
struct Interpreter {
    name: &'static str,
    with_value: &'static [&'static str],
    script: &'static [&'static str],
    code: &'static [&'static str],
}

const INTERPRETERS: &[Interpreter] = &[
    Interpreter { name: "php", with_value: &["-d", "-c", "-z"], script: &["-f"], code: &["-r"] },
    Interpreter { name: "python", with_value: &["-W", "-X", "-Q"], script: &["-m"], code: &["-c"] },
    Interpreter { name: "pypy", with_value: &["-W", "-X"], script: &["-m"], code: &["-c"] },
    Interpreter { name: "ruby", with_value: &["-I", "-r", "-C", "-E"], script: &[], code: &["-e"] },
    Interpreter { name: "perl", with_value: &["-I", "-M"], script: &[], code: &["-e", "-E"] },
    Interpreter {
        name: "node",
        with_value: &["-r", "--require", "--import", "--loader"],
        script: &[],
        code: &["-e", "--eval", "-p", "--print"],
    },
    Interpreter {
        name: "nodejs",
        with_value: &["-r", "--require"],
        script: &[],
        code: &["-e", "--eval", "-p", "--print"],
    },
    Interpreter { name: "deno", with_value: &[], script: &[], code: &["eval"] },
    Interpreter { name: "lua", with_value: &["-l"], script: &[], code: &["-e"] },
    Interpreter { name: "rscript", with_value: &[], script: &[], code: &["-e"] },
    Interpreter { name: "tclsh", with_value: &[], script: &[], code: &[] },
    Interpreter {
        name: "pwsh",
        with_value: &[],
        script: &["-File", "-f"],
        code: &["-Command", "-c"],
    },
    Interpreter {
        name: "java",
        with_value: &["-cp", "-classpath", "--class-path", "-p", "--module-path"],
        script: &["-jar"],
        code: &[],
    },
];

/// Programs whose first word says what runs: `git pull`, `certbot renew`, `artisan
/// schedule:run`, `manage.py clearsessions`.
const SUBCOMMANDS: &[&str] = &[
    "git",
    "docker",
    "docker-compose",
    "podman",
    "kubectl",
    "helm",
    "systemctl",
    "service",
    "certbot",
    "wp",
    "drush",
    "composer",
    "npm",
    "yarn",
    "pnpm",
    "rake",
    "make",
    "artisan",
    "console",
    "occ",
    "manage",
    "apt",
    "apt-get",
    "snap",
    "flatpak",
    "restic",
    "borg",
    "rclone",
    "aws",
    "gcloud",
    "gh",
    "terraform",
    "cargo",
];

/// Options of [`SUBCOMMANDS`] programs that take a value, before the subcommand.
const SUBCOMMAND_OPTIONS: &[&str] =
    &["-C", "-c", "-f", "--file", "-p", "--project-name", "-H", "--host", "--context"];

/// Script extensions left out of names (`backup.sh` is `backup`).
const SCRIPT_EXTENSIONS: &[&str] = &[
    "sh", "bash", "zsh", "ksh", "py", "php", "phar", "rb", "pl", "pm", "js", "mjs", "cjs", "ts",
    "jar", "lua", "r", "tcl", "ps1", "groovy", "exs",
];

/// What one simple command says about the program.
enum Found {
    Program(Program),
    /// A setup command: the name only when nothing else runs.
    Setup(Program),
    Nothing,
}

fn of_commands(commands: Vec<Vec<String>>, depth: usize) -> Program {
    let mut setup = None;
    for words in &commands {
        match of_command(words, depth) {
            Found::Program(p) => return p,
            Found::Setup(p) => {
                setup.get_or_insert(p);
            }
            Found::Nothing => {}
        }
    }
    setup.unwrap_or_default()
}

fn basename(word: &str) -> &str {
    let word = word.trim_end_matches('/');
    word.rsplit('/').next().unwrap_or(word)
}

/// The name of a script or program: its file name without a script extension.
fn stem(word: &str) -> String {
    let base = basename(word);
    let base = match base.rsplit_once('.') {
        Some((stem, ext))
            if !stem.is_empty()
                && SCRIPT_EXTENSIONS.contains(&ext.to_ascii_lowercase().as_str()) =>
        {
            stem
        }
        _ => base,
    };
    sanitize(base)
}

fn is_assignment(word: &str) -> bool {
    word.split_once('=').is_some_and(|(name, _)| {
        !name.is_empty()
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    })
}

/// A word that names a subcommand: `schedule:run`, `renew`, `clearsessions`.
fn is_subcommand(word: &str) -> bool {
    word.len() <= 40
        && word.starts_with(|c: char| c.is_ascii_alphabetic())
        && word.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '_' | '-'))
}

/// Skips options (`-x`, `--long`, `--long=value`, and the values of `with_value`) and a `--`.
fn skip_options<'a>(mut words: &'a [String], with_value: &[&str]) -> &'a [String] {
    while let Some(first) = words.first() {
        if first == "--" {
            return &words[1..];
        }
        if !first.starts_with('-') || first == "-" {
            break;
        }
        let takes_value = with_value.contains(&first.as_str());
        words = &words[(if takes_value { 2 } else { 1 }).min(words.len())..];
    }
    words
}

/// The sanitized words of `rest`, paths by their last part.
fn rest_of(words: &[String]) -> String {
    let parts: Vec<String> =
        words.iter().map(|w| sanitize(basename(w))).filter(|w| !w.is_empty()).collect();
    parts.join("-")
}

/// `base` plus the subcommand that follows it, if any; the rest of the words.
fn with_subcommand(base: String, words: &[String]) -> Program {
    match words.first() {
        Some(sub) if is_subcommand(sub) => {
            Program { base: format!("{base}-{}", sanitize(sub)), rest: rest_of(&words[1..]) }
        }
        _ => Program { base, rest: rest_of(words) },
    }
}

/// The interpreter `program` is (`python3.11` is `python`, `php-cli` is `php`).
fn interpreter(program: &str) -> Option<&'static Interpreter> {
    let lower = program.to_ascii_lowercase();
    let name =
        lower.trim_end_matches("-cli").trim_end_matches(|c: char| c.is_ascii_digit() || c == '.');
    INTERPRETERS.iter().find(|i| i.name == name)
}

fn of_command(words: &[String], depth: usize) -> Found {
    let mut words = words;
    loop {
        while words.first().is_some_and(|w| is_assignment(w) || KEYWORDS.contains(&w.as_str())) {
            words = &words[1..];
        }
        let Some(first) = words.first() else { return Found::Nothing };
        let program = basename(first);
        let args = &words[1..];
        if SETUP.contains(&program) {
            return Found::Setup(Program { base: sanitize(program), rest: rest_of(args) });
        }
        if let Some((_, with_value, skip)) = WRAPPERS.iter().find(|(w, _, _)| *w == program) {
            if program == "flock" {
                match flock(args, with_value, depth) {
                    Ok(rest) => words = rest,
                    Err(found) => return found,
                }
                continue;
            }
            let rest = skip_options(args, with_value);
            words = &rest[(*skip).min(rest.len())..];
            continue;
        }
        if RUNNERS.iter().any(|(r, verb)| *r == program && args.first().is_some_and(|a| a == verb))
        {
            words = &args[1..];
            continue;
        }
        if program == "su" || program == "runuser" {
            if let Some(text) = option_value(args, &["-c", "--command"]) {
                return recurse(text, depth);
            }
            if program == "su" {
                return Found::Program(Program { base: "su".into(), rest: rest_of(args) });
            }
        }
        if SHELLS.contains(&program) {
            let with_value = ["-o", "-O", "+o", "+O", "--rcfile", "--init-file"];
            let mut rest = args;
            let mut dash_c = false;
            while let Some(w) = rest.first().filter(|w| w.starts_with(['-', '+']) && *w != "--") {
                dash_c |= w.starts_with('-') && !w.starts_with("--") && w.contains('c');
                let n = if with_value.contains(&w.as_str()) { 2 } else { 1 };
                rest = &rest[n.min(rest.len())..];
            }
            if dash_c {
                if let Some(text) = rest.first() {
                    return recurse(text, depth);
                }
            }
            return match rest.first() {
                Some(script) => Found::Program(with_subcommand(stem(script), &rest[1..])),
                None => Found::Program(Program { base: sanitize(program), rest: String::new() }),
            };
        }
        if let Some(interp) = interpreter(program) {
            return Found::Program(interpreted(program, interp, args));
        }
        if program == "run-parts" {
            let dir = args.iter().rev().find(|w| !w.starts_with('-'));
            let base = dir.map_or_else(|| "run-parts".to_owned(), |d| sanitize(basename(d)));
            return Found::Program(Program { base, rest: String::new() });
        }
        let base = stem(program);
        if SUBCOMMANDS.contains(&base.as_str()) {
            return Found::Program(with_subcommand(base, skip_options(args, SUBCOMMAND_OPTIONS)));
        }
        return Found::Program(Program { base, rest: rest_of(args) });
    }
}

/// `flock [OPTIONS] FILE COMMAND...` (the words of COMMAND), or `flock [OPTIONS] FILE -c TEXT`
/// (TEXT's program).
fn flock<'a>(args: &'a [String], with_value: &[&str], depth: usize) -> Result<&'a [String], Found> {
    let mut rest = args;
    while let Some(w) = rest.first().filter(|w| w.starts_with('-') && *w != "-") {
        if w == "-c" || w == "--command" {
            return Err(rest.get(1).map_or(Found::Nothing, |text| recurse(text, depth)));
        }
        if w == "--" {
            rest = &rest[1..];
            break;
        }
        let n = if with_value.contains(&w.as_str()) { 2 } else { 1 };
        rest = &rest[n.min(rest.len())..];
    }
    // The lock file.
    rest = &rest[1.min(rest.len())..];
    match rest.first().map(String::as_str) {
        Some("-c" | "--command") => {
            Err(rest.get(1).map_or(Found::Nothing, |text| recurse(text, depth)))
        }
        _ => Ok(rest),
    }
}

/// The word after the first of `options` in `words` (or `--option=VALUE`'s value).
fn option_value<'a>(words: &'a [String], options: &[&str]) -> Option<&'a str> {
    for (i, w) in words.iter().enumerate() {
        if w == "--" {
            return None;
        }
        if options.contains(&w.as_str()) {
            return words.get(i + 1).map(String::as_str);
        }
        if let Some((name, value)) = w.split_once('=') {
            if options.contains(&name) {
                return Some(value);
            }
        }
    }
    None
}

/// A command given as shell text (`sh -c`, `su -c`, `flock -c`).
fn recurse(text: &str, depth: usize) -> Found {
    if depth >= 4 {
        return Found::Nothing;
    }
    let program = of_commands(shell::commands(text), depth + 1);
    if program.base.is_empty() {
        Found::Nothing
    } else {
        Found::Program(program)
    }
}

fn interpreted(program: &str, interp: &Interpreter, args: &[String]) -> Program {
    let mut words = args;
    // `deno run [options] script`.
    if interp.name == "deno" && words.first().is_some_and(|w| w == "run") {
        words = &words[1..];
    }
    while let Some(first) = words.first() {
        if interp.code.contains(&first.as_str()) {
            return Program { base: sanitize(program), rest: String::new() };
        }
        if interp.script.contains(&first.as_str()) {
            // Python's `-m pkg.module`: dots are part of the name.
            return match words.get(1) {
                Some(script) if first == "-m" => with_subcommand(sanitize(script), &words[2..]),
                Some(script) => with_subcommand(stem(script), &words[2..]),
                None => Program { base: sanitize(program), rest: String::new() },
            };
        }
        if first == "--" {
            words = &words[1..];
            break;
        }
        if !first.starts_with('-') {
            break;
        }
        let takes_value = interp.with_value.contains(&first.as_str());
        words = &words[(if takes_value { 2 } else { 1 }).min(words.len())..];
    }
    match words.first() {
        Some(script) => with_subcommand(stem(script), &words[1..]),
        None => Program { base: sanitize(program), rest: String::new() },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(command: &str) -> String {
        of_shell(command).base
    }

    #[test]
    fn programs_and_scripts() {
        assert_eq!(base("/usr/local/bin/backup.sh --full"), "backup");
        assert_eq!(base("php /var/www/artisan schedule:run"), "artisan-schedule-run");
        assert_eq!(
            base("cd /var/www && php artisan schedule:run >> /dev/null 2>&1"),
            "artisan-schedule-run"
        );
        assert_eq!(
            base("/usr/bin/python3.11 -u /opt/app/manage.py clearsessions"),
            "manage-clearsessions"
        );
        assert_eq!(base("python3 -m app.jobs.nightly --dry-run"), "app-jobs-nightly");
        assert_eq!(base("java -Xmx1g -jar /opt/report/report-1.2.jar"), "report-1-2");
        assert_eq!(base("/usr/bin/find /tmp -mtime +7 -delete"), "find");
        assert_eq!(base("tar -zcf /var/backups/home.tgz /home/"), "tar");
        assert_eq!(base("/usr/bin/certbot renew --quiet"), "certbot-renew");
        assert_eq!(base("php -r 'echo 1;'"), "php");
    }

    #[test]
    fn wrappers_are_skipped() {
        assert_eq!(base("flock -n /tmp/sync.lock /opt/bin/sync.py"), "sync");
        assert_eq!(base("flock -w 10 /tmp/x.lock -c 'cd /srv && ./deploy.sh'"), "deploy");
        assert_eq!(base("nice -n 19 ionice -c3 /usr/local/bin/reindex"), "reindex");
        assert_eq!(
            base("LANG=C HOME=/root env -i PATH=/bin timeout -s KILL 1h rsync -a /a /b"),
            "rsync"
        );
        assert_eq!(base("sh -c 'sleep 30; exec /opt/poll.sh'"), "poll");
        assert_eq!(base("/bin/bash -lc \"source ~/.profile && node /srv/worker.js\""), "worker");
        assert_eq!(base("su - www -c 'php /srv/cron.php'"), "cron");
        assert_eq!(base("sudo -u postgres pg_dumpall"), "pg-dumpall");
        assert_eq!(base("cd /srv/app && bundle exec rake reports:daily"), "rake-reports-daily");
        assert_eq!(base("bash -o pipefail -c 'mysqldump db | gzip > /b/db.gz'"), "mysqldump");
        assert_eq!(
            base("test -x /usr/sbin/anacron || { cd / && run-parts --report /etc/cron.daily; }"),
            "cron-daily"
        );
        assert_eq!(base("cd /tmp"), "cd");
        assert_eq!(base(""), "");
    }
}
