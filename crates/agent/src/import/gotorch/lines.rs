//! The line where each entry of a JSON array starts, and where each key of an entry is, for
//! the report (serde_json's values carry no position). Runs on text serde_json has already
//! accepted, so it only needs to skip values, not to check them.

/// One element of the top-level array.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Entry {
    /// The 1-based line of its first character.
    pub line: usize,
    /// Its keys (for an object) and the line of each, in order.
    pub keys: Vec<(String, usize)>,
}

impl Entry {
    /// The line of `key` (its last occurrence, the one JSON decoders keep), else the entry's.
    pub fn line_of(&self, key: &str) -> usize {
        self.keys.iter().rev().find(|(k, _)| k == key).map_or(self.line, |(_, line)| *line)
    }
}

/// The elements of the array `text` holds (empty when it holds something else).
pub(super) fn entries(text: &str) -> Vec<Entry> {
    let mut scan = Scan { bytes: text.as_bytes(), at: 0, line: 1 };
    let mut out = Vec::new();
    scan.space();
    if scan.peek() != Some(b'[') {
        return out;
    }
    scan.at += 1;
    loop {
        scan.space();
        match scan.peek() {
            None | Some(b']') => return out,
            Some(b',') => {
                scan.at += 1;
                continue;
            }
            Some(b'{') => {
                let mut entry = Entry { line: scan.line, keys: Vec::new() };
                scan.object(Some(&mut entry.keys));
                out.push(entry);
            }
            Some(_) => {
                out.push(Entry { line: scan.line, keys: Vec::new() });
                scan.value();
            }
        }
    }
}

struct Scan<'a> {
    bytes: &'a [u8],
    at: usize,
    line: usize,
}

impl Scan<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn space(&mut self) {
        while let Some(b) = self.peek().filter(u8::is_ascii_whitespace) {
            if b == b'\n' {
                self.line += 1;
            }
            self.at += 1;
        }
    }

    /// A string, from its opening quote; its text with the quotes (JSON strings hold no raw
    /// newline).
    fn string(&mut self) -> &str {
        let start = self.at;
        self.at += 1;
        while let Some(b) = self.peek() {
            self.at += 1;
            match b {
                b'\\' => self.at += 1,
                b'"' => break,
                _ => {}
            }
        }
        std::str::from_utf8(&self.bytes[start..self.at.min(self.bytes.len())]).unwrap_or("\"\"")
    }

    fn value(&mut self) {
        self.space();
        match self.peek() {
            Some(b'"') => {
                self.string();
            }
            Some(b'{') => self.object(None),
            Some(b'[') => {
                self.at += 1;
                loop {
                    self.space();
                    match self.peek() {
                        None => return,
                        Some(b']') => {
                            self.at += 1;
                            return;
                        }
                        Some(b',') => self.at += 1,
                        Some(_) => self.value(),
                    }
                }
            }
            _ => {
                while self.peek().is_some_and(|b| !b",]} \t\r\n".contains(&b)) {
                    self.at += 1;
                }
            }
        }
    }

    /// An object, from its `{`; its keys and their lines into `keys`.
    fn object(&mut self, mut keys: Option<&mut Vec<(String, usize)>>) {
        self.at += 1;
        loop {
            self.space();
            match self.peek() {
                None => return,
                Some(b'}') => {
                    self.at += 1;
                    return;
                }
                Some(b',') => self.at += 1,
                Some(b'"') => {
                    let line = self.line;
                    let raw = self.string();
                    let key = serde_json::from_str::<String>(raw).unwrap_or_default();
                    if let Some(keys) = keys.as_mut() {
                        keys.push((key, line));
                    }
                    self.space();
                    if self.peek() == Some(b':') {
                        self.at += 1;
                    }
                    self.value();
                }
                Some(_) => self.at += 1,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_of_entries_and_keys() {
        let text = "[\n  {\"Command\": \"a \\\"b\\\"\", \"Ips\": [\"x\", {\"y\": [1]}],\n   \"Times\":\n \"* * * * * *\"},\n\n  {\"Command\": \"c\"}, 3\n]";
        let entries = entries(text);
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[0].line, 2);
        assert_eq!(entries[0].line_of("Times"), 3);
        assert_eq!(entries[0].line_of("Ips"), 2);
        assert_eq!(entries[0].line_of("Max"), 2);
        assert_eq!(entries[1].line, 6);
        assert_eq!(entries[2], Entry { line: 6, keys: Vec::new() });
    }
}
