//! Crontab lines to tasks: user crontabs (`crontab -l`) and system ones (`/etc/crontab`,
//! `/etc/cron.d/*`, with a user field).
//!
//! What is carried over: the schedule (5 fields or a descriptor), the command, environment
//! lines (in effect for the entries after them, as cron does), `CRON_TZ=`/`TZ=` as the task's
//! zone, a `SHELL=` other than `/bin/sh` (the command then runs through that shell), the
//! system format's user, and `%` (the first unescaped `%` starts the command's standard input,
//! later ones are newlines, `\%` is a literal `%`). What is not: `@reboot` (not a schedule) and
//! `MAILTO` (use alerts); both are reported.

use cronfleet_cron::Schedule;

use super::{Imported, Namer, Note};

/// Which crontab format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `MIN HOUR DOM MON DOW command`.
    User,
    /// `MIN HOUR DOM MON DOW user command`.
    System,
}

/// What an import produced.
#[derive(Clone, Debug, Default)]
pub struct Import {
    /// The tasks, in file order.
    pub tasks: Vec<Imported>,
    /// Lines not imported, and caveats.
    pub notes: Vec<Note>,
    /// Entries that could not be imported.
    pub skipped: usize,
}

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
                "CRON_TZ" | "TZ" => timezone = Some(value),
                "SHELL" => shell = (value != "/bin/sh").then_some(value),
                "MAILTO" => {
                    if !mailto_noted {
                        out.notes.push(Note {
                            line: n,
                            message: "MAILTO is not imported: cronfleet reports failures through \
                                      alerts and keeps every run's output"
                                .into(),
                        });
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
        match entry(line, format) {
            Ok(Entry { schedule, user, command }) => {
                if schedule == "@reboot" {
                    out.skipped += 1;
                    out.notes.push(Note {
                        line: n,
                        message: format!("@reboot is not a schedule; not imported: {command}"),
                    });
                    continue;
                }
                if let Err(e) = schedule.parse::<Schedule>() {
                    out.skipped += 1;
                    out.notes
                        .push(Note { line: n, message: format!("not imported: {}", e.reason()) });
                    continue;
                }
                let command = percent(&command);
                let (command, argv) = match &shell {
                    Some(sh) => (None, Some(vec![sh.clone(), "-c".into(), command.clone()])),
                    None => (Some(command.clone()), None),
                };
                let shown = command
                    .clone()
                    .or_else(|| argv.as_ref().map(|a| a[2].clone()))
                    .unwrap_or_default();
                out.tasks.push(Imported {
                    name: namer.name(&shown),
                    schedule: Some(schedule),
                    command,
                    argv,
                    timezone: timezone.clone(),
                    env: env.clone(),
                    user,
                    origin: format!("{source}:{n}: {}", raw.trim()),
                    ..Imported::default()
                });
            }
            Err(why) => {
                out.skipped += 1;
                out.notes.push(Note { line: n, message: format!("not imported: {why}") });
            }
        }
    }
    out
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
/// is a literal `%`. Standard input becomes a here-document.
fn percent(command: &str) -> String {
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
    match input {
        None => cmd,
        Some(text) => format!("{} <<'CRONFLEET_STDIN'\n{text}\nCRONFLEET_STDIN", cmd.trim_end()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_signs() {
        assert_eq!(percent("date +\\%F"), "date +%F");
        assert_eq!(
            percent("mail -s hi root%line one%line two"),
            "mail -s hi root <<'CRONFLEET_STDIN'\nline one\nline two\nCRONFLEET_STDIN"
        );
        assert_eq!(percent("echo plain"), "echo plain");
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
