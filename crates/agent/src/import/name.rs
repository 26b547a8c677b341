//! Task names for imported entries: unique within one import, and stable across re-imports.
//!
//! The name starts from what the entry runs ([`super::program`]). It depends on its own entry
//! and on the names taken before it, never on entries after it: the first entry with a name
//! gets it plain; a later one with the same name gets its arguments added (`backup-fast`),
//! else a short hash of its whole entry (`backup-3f9a`). So an import of the same file gives
//! the same names, and adding entries does not rename the others (unless one is added above
//! an entry of the same name, which then takes the suffix).

use std::collections::BTreeSet;

use super::program::Program;

/// Names tasks: unique within one import, each independent of the entries after it.
#[derive(Default)]
pub(crate) struct Namer(BTreeSet<String>);

impl Namer {
    /// The name for an entry running `program`; `key` is the entry's own text (its schedule
    /// and command), for the last-resort suffix.
    pub fn name(&mut self, program: &Program, key: &str) -> String {
        let base = if program.base.is_empty() { "task".to_owned() } else { cut(&program.base, 32) };
        let mut candidates = vec![base.clone()];
        if !program.rest.is_empty() {
            candidates.push(format!("{base}-{}", cut(&program.rest, 20)));
        }
        let hash = format!("{base}-{:04x}", fnv1a(key) & 0xffff);
        candidates.push(hash.clone());
        // Identical entries are interchangeable: any order of their numbers is the same.
        candidates.extend((2..).map(|n| format!("{hash}-{n}")).take(1000));
        let name = candidates.into_iter().find(|c| !self.0.contains(c)).unwrap_or(hash);
        self.0.insert(name.clone());
        name
    }
}

fn fnv1a(text: &str) -> u32 {
    text.bytes().fold(0x811c_9dc5, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193))
}

/// At most `max` characters, cut at a `-` when one is near the end.
fn cut(name: &str, max: usize) -> String {
    if name.len() <= max {
        return name.to_owned();
    }
    let head = &name[..max];
    let head = match head.rfind('-') {
        Some(at) if at >= max / 2 => &head[..at],
        _ => head,
    };
    head.trim_matches('-').to_owned()
}

/// Lowercase letters and digits, anything else one `-`.
pub fn sanitize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::program::of_shell;

    #[test]
    fn names_are_unique_and_do_not_depend_on_later_entries() {
        let mut namer = Namer::default();
        let fast = of_shell("/usr/bin/backup --fast");
        let full = of_shell("/usr/bin/backup --full");
        assert_eq!(namer.name(&fast, "a"), "backup");
        assert_eq!(namer.name(&full, "b"), "backup-full");
        // Same command, other schedule: a hash of the entry, the same on every import.
        let name = namer.name(&full, "0 3 * * * /usr/bin/backup --full");
        assert_eq!(
            name,
            format!("backup-{:04x}", fnv1a("0 3 * * * /usr/bin/backup --full") & 0xffff)
        );
        // Identical entries: numbered.
        assert_eq!(namer.name(&full, "0 3 * * * /usr/bin/backup --full"), format!("{name}-2"));
        assert_eq!(namer.name(&Program::default(), "x"), "task");
    }
}
