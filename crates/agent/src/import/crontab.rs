//! Crontab lines to tasks: user crontabs (`crontab -l`) and system ones (`/etc/crontab`,
//! `/etc/cron.d/*`, with a user field).
//!
//! What is carried over: the schedule (5 fields or a descriptor), the command, environment
//! lines (in effect for the entries after them, as cron does; `TZ=` too, which cron passes to
//! the job), `CRON_TZ=` as the task's zone (cronie's schedule zone), a `SHELL=` other than
//! `/bin/sh` (the command then runs through that shell), the system format's user, and `%` (the
//! first unescaped `%` starts the command's standard input, later ones are newlines, `\%` is a
//! literal `%`). What is not: `@reboot` (not a schedule), `@every` (not crontab syntax) and
//! `MAILTO` (use alerts); all are reported. Names come from the program or script each line
//! runs ([`super::program`], [`super::name`]).

use cronfleet_cron::Schedule;

use super::{name::Namer, program, Import, Imported};

/// Which crontab format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `MIN HOUR DOM MON DOW command`.
    User,
    /// `MIN HOUR DOM MON DOW user command`.
    System,
}

/// The descriptors cron knows (cronie, Vixie, Debian), `@reboot` aside.
const DESCRIPTORS: &[&str] =
    &["@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"];

/// Converts a crontab's text; `source` names it in the tasks' comments.
pub fn import(text: &str, format: Format, source: &str) -> Import {
    let mut out = Import::default();
    let mut namer = Namer::default();
    let mut env: Vec<(String, String)> = Vec::new();
    let mut timezone: Option<String> = None;
    let mut shell: Option<String> = None;
    let mut mailto_noted = false;
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let line = raw.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some((name, value)) = env_line(line) {
            match name.as_str() {
                // cronie: CRON_TZ is the schedule's zone; TZ is the job's (kept in `env`).
                "CRON_TZ" => timezone = (!value.is_empty()).then_some(value),
                "SHELL" => shell = (value != "/bin/sh").then_some(value),
                "MAILTO" => {
                    if !mailto_noted {
                        out.note(
                            n,
                            "MAILTO is not imported: cronfleet reports failures through alerts \
                             and keeps every run's output",
                        );
                        mailto_noted = true;
                    }
                }
                _ => {
                    env.retain(|(k, _)| *k != name);
                    env.push((name, value));
                }
            }
            continue;
        }
        let Entry { schedule, user, command } = match entry(line, format) {
            Ok(entry) => entry,
            Err(why) => {
                out.skip(n, format!("not imported: {why}"));
                continue;
            }
        };
        if let Some(why) = not_a_schedule(&schedule, &command, line) {
            out.skip(n, why);
            continue;
        }
        let (command, input) = percent(&command);
        let program = program::of_shell(&command);
        let command = with_input(command, input);
        let (command, argv) = match &shell {
            Some(sh) => (None, Some(vec![sh.clone(), "-c".into(), command])),
            None => (Some(command), None),
        };
        out.tasks.push(Imported {
            // Spacing is not part of the entry: re-indenting a line keeps its name.
            name: namer.name(&program, &line.split_whitespace().collect::<Vec<_>>().join(" ")),
            schedule: Some(schedule),
            command,
            argv,
            timezone: timezone.clone(),
            env: env.clone(),
            user,
            origin: format!("{source}:{n}: {}", raw.trim()),
            line: n,
            ..Imported::default()
        });
    }
    out
}

/// Why `schedule` is not imported, if it is not: `@reboot`, `@every` (robfig/cron's, not
/// cron's), another unknown descriptor, or what the schedule parser says.
fn not_a_schedule(schedule: &str, command: &str, line: &str) -> Option<String> {
    if schedule == "@reboot" {
        return Some(format!("@reboot is not a schedule; not imported: {command}"));
    }
    if let Some(descriptor) = schedule.strip_prefix('@') {
        if descriptor.eq_ignore_ascii_case("every") {
            let span = line.split_whitespace().nth(1).unwrap_or("DURATION");
            return Some(format!(
                "not imported: @every is not crontab syntax (cron would refuse this line); in \
                 the task file write schedule = \"@every {span}\" and the command"
            ));
        }
        if !DESCRIPTORS.contains(&schedule.to_ascii_lowercase().as_str()) {
            return Some(format!(
                "not imported: {schedule} is not a crontab descriptor (those are @reboot, {})",
                DESCRIPTORS.join(", ")
            ));
        }
    }
    schedule.parse::<Schedule>().err().map(|e| format!("not imported: {}", e.reason()))
}

/// `NAME=value` or `NAME = "value"`.
fn env_line(line: &str) -> Option<(String, String)> {
    let (name, value) = line.split_once('=')?;
    let name = name.trim();
    let ident = !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !ident {
        return None;
    }
    let value = value.trim();
    let unquoted = ['"', '\'']
        .iter()
        .find_map(|q| value.strip_prefix(*q).and_then(|v| v.strip_suffix(*q)))
        .unwrap_or(value);
    Some((name.to_owned(), unquoted.to_owned()))
}

struct Entry {
    schedule: String,
    user: Option<String>,
    command: String,
}

fn entry(line: &str, format: Format) -> Result<Entry, String> {
    let fields = if line.starts_with('@') { 1 } else { 5 };
    let wanted = fields + usize::from(format == Format::System);
    let mut rest = line;
    let mut words = Vec::with_capacity(wanted);
    for _ in 0..wanted {
        rest = rest.trim_start_matches([' ', '\t']);
        let end = rest.find([' ', '\t']).unwrap_or(rest.len());
        if end == 0 {
            break;
        }
        words.push(&rest[..end]);
        rest = &rest[end..];
    }
    let command = rest.trim_start_matches([' ', '\t']).trim_end();
    if words.len() < wanted || command.is_empty() {
        let what = if fields == 1 { "a descriptor" } else { "5 schedule fields" };
        let user = if format == Format::System { " and a user" } else { "" };
        return Err(format!("expected {what}{user}, then a command: {line:?}"));
    }
    let user = (format == Format::System).then(|| words[fields].to_owned());
    Ok(Entry { schedule: words[..fields].join(" "), user, command: command.to_owned() })
}

/// Cron's `%`: the first unescaped one starts standard input (later ones are newlines), `\%`
/// is a literal `%`. The command, and its standard input if any.
fn percent(command: &str) -> (String, Option<String>) {
    let mut cmd = String::new();
    let mut input: Option<String> = None;
    let mut chars = command.chars().peekable();
    while let Some(c) = chars.next() {
        let target = input.as_mut().unwrap_or(&mut cmd);
        match c {
            '\\' if chars.peek() == Some(&'%') => {
                target.push('%');
                chars.next();
            }
            '%' => match input.as_mut() {
                Some(text) => text.push('\n'),
                None => input = Some(String::new()),
            },
            c => target.push(c),
        }
    }
    (cmd, input)
}

/// The command with its standard input as a here-document.
fn with_input(command: String, input: Option<String>) -> String {
    match input {
        None => command,
        Some(text) => {
            format!("{} <<'CRONFLEET_STDIN'\n{text}\nCRONFLEET_STDIN", command.trim_end())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_signs() {
        let converted = |c: &str| {
            let (command, input) = percent(c);
            with_input(command, input)
        };
        assert_eq!(converted("date +\\%F"), "date +%F");
        assert_eq!(
            converted("mail -s hi root%line one%line two"),
            "mail -s hi root <<'CRONFLEET_STDIN'\nline one\nline two\nCRONFLEET_STDIN"
        );
        assert_eq!(converted("echo plain"), "echo plain");
    }

    #[test]
    fn env_lines() {
        assert_eq!(env_line("PATH=/usr/bin:/bin"), Some(("PATH".into(), "/usr/bin:/bin".into())));
        assert_eq!(
            env_line("GREETING = \"hello world\""),
            Some(("GREETING".into(), "hello world".into()))
        );
        assert_eq!(env_line("*/5 * * * * echo a=b"), None);
    }
}
