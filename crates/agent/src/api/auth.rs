//! Bearer tokens: the agent's own admin token (created on first start, kept in the state
//! directory, readable only by the agent's user) and more from a tokens file.
//!
//! A tokens file has one token per line: `ROLE TOKEN [NAME]`, where ROLE is `read` or `admin`;
//! `#` starts a comment. Tokens are compared in constant time.

use std::{
    io::Write,
    os::unix::fs::{OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
};

use ring::rand::SecureRandom;
use subtle::ConstantTimeEq;

/// What a token may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// See tasks, runs and output (not secret env values).
    Read,
    /// Also change things: run, pause, resume, kill, reload; and see secrets.
    Admin,
}

/// The tokens the API accepts.
#[derive(Clone, Debug, Default)]
pub struct Tokens {
    /// Role, SHA-256 of the token, name.
    tokens: Vec<(Role, [u8; 32], String)>,
}

/// Shortest token accepted from a tokens file.
const MIN_TOKEN_LEN: usize = 16;

impl Tokens {
    /// Adds a token.
    pub fn add(&mut self, role: Role, token: &str, name: &str) {
        self.tokens.push((role, digest(token), name.to_owned()));
    }

    /// The role of `token` (and the token's name), comparing against every token in constant
    /// time.
    pub fn check(&self, token: &str) -> Option<(Role, &str)> {
        // Digests of equal length are compared, so neither the content nor the length of a
        // known token shows in the time taken (`subtle` returns early on unequal lengths).
        let token = digest(token);
        let mut found = None;
        for (role, known, name) in &self.tokens {
            if bool::from(token.ct_eq(known)) && found.is_none() {
                found = Some((*role, name.as_str()));
            }
        }
        found
    }

    /// Reads a tokens file, adding its tokens. The file must be readable by its owner only.
    ///
    /// # Errors
    /// The file, line and reason of the first bad line, a file open to its group or others, or
    /// why it cannot be read.
    pub fn load(&mut self, path: &Path) -> Result<(), TokensError> {
        let read = |source| TokensError::Read { path: path.to_owned(), source };
        let mode = std::fs::metadata(path).map_err(read)?.permissions().mode() & 0o777;
        if crate::private::looser(mode) {
            return Err(TokensError::Open { path: path.to_owned(), mode });
        }
        let text = std::fs::read_to_string(path).map_err(read)?;
        // Tokens known before this file (the agent's own), and this file's by line: a token
        // given twice would have two roles or names, and which one wins would be an accident.
        let known = self.tokens.len();
        let mut lines = std::collections::HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let at = |reason| TokensError::Line { path: path.to_owned(), line: i + 1, reason };
            let mut words = line.split_whitespace();
            let role = match words.next() {
                Some("read") => Role::Read,
                Some("admin") => Role::Admin,
                Some(other) => return Err(at(LineError::Role(other.to_owned()))),
                None => continue,
            };
            let Some(token) = words.next() else {
                return Err(at(LineError::Shape));
            };
            if token.len() < MIN_TOKEN_LEN || !token.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(at(LineError::Short));
            }
            let hash = digest(token);
            if let Some((_, _, name)) = self.tokens[..known].iter().find(|(_, d, _)| *d == hash) {
                return Err(at(LineError::Known(name.clone())));
            }
            if let Some(first) = lines.insert(hash, i + 1) {
                return Err(at(LineError::Twice(first)));
            }
            let name = words.next().map_or_else(|| format!("line {}", i + 1), str::to_owned);
            self.add(role, token, &name);
        }
        Ok(())
    }
}

/// Why tokens could not be had.
#[derive(Debug, thiserror::Error)]
pub enum TokensError {
    /// The tokens file cannot be read.
    #[error("{}: cannot read the tokens file: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The tokens file can be read (or written) by others than its owner.
    #[error(
        "{}: the tokens file is open to others (mode {mode:o}): chmod 600 {}",
        path.display(),
        path.display()
    )]
    Open {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A line of the tokens file is wrong.
    #[error("{}:{line}: {reason}", path.display())]
    Line {
        /// The file.
        path: PathBuf,
        /// The line, from 1.
        line: usize,
        /// What is wrong.
        reason: LineError,
    },
    /// The system gave no random bytes for a new token.
    #[error("cannot read random bytes from the system")]
    Random,
    /// The agent's own token file cannot be created.
    #[error("cannot create {}: {source}", path.display())]
    Create {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The agent's own token cannot be written.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// What is wrong with a line of a tokens file.
#[derive(Debug, thiserror::Error)]
pub enum LineError {
    /// Not a role we know.
    #[error("role {0:?}: expected read or admin")]
    Role(String),
    /// A role without a token.
    #[error("expected `ROLE TOKEN [NAME]`")]
    Shape,
    /// A token too short, or with characters that cannot be sent in a header.
    #[error("a token needs at least {MIN_TOKEN_LEN} printable characters")]
    Short,
    /// The same token as an earlier line (the line, from 1).
    #[error("the same token as line {0}: give each token once")]
    Twice(usize),
    /// The same token as one the agent has already (by its name: `agent` for its own).
    #[error(
        "the same token as the {0:?} token (the agent's own, in STATE_DIR/api-token): use another"
    )]
    Known(String),
}

/// The SHA-256 digest of a token.
fn digest(token: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, token.as_bytes()).as_ref());
    out
}

/// The agent's own admin token, in `path`: read when it exists, else created (mode 0600)
/// with 32 random bytes, hex-encoded.
///
/// # Errors
/// When the file can be neither read nor created.
pub fn own_token(path: &Path) -> Result<String, TokensError> {
    if let Ok(token) = std::fs::read_to_string(path) {
        let token = token.trim().to_owned();
        if token.len() >= MIN_TOKEN_LEN {
            return Ok(token);
        }
    }
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new().fill(&mut bytes).map_err(|_| TokensError::Random)?;
    let token = hex::encode(bytes);
    let _ = std::fs::remove_file(path);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|source| TokensError::Create { path: path.to_owned(), source })?;
    writeln!(file, "{token}")
        .map_err(|source| TokensError::Write { path: path.to_owned(), source })?;
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_file_roles_and_errors() {
        let dir = std::env::temp_dir().join(format!("cronfleet-tokens-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("tokens");
        std::fs::write(
            &file,
            "# team tokens\nread 0123456789abcdef grafana\n\nadmin fedcba9876543210fedcba # ci\n",
        )
        .unwrap();
        // Open to the group or others: refused, saying how to fix it.
        for mode in [0o644, 0o640, 0o604, 0o620] {
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
            let e = Tokens::default().load(&file).unwrap_err().to_string();
            let want = format!("open to others (mode {mode:o}): chmod 600 {}", file.display());
            assert!(e.ends_with(&want), "{e}");
        }
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let mut tokens = Tokens::default();
        tokens.load(&file).unwrap();
        assert_eq!(tokens.check("0123456789abcdef"), Some((Role::Read, "grafana")));
        assert_eq!(tokens.check("fedcba9876543210fedcba"), Some((Role::Admin, "line 4")));
        assert_eq!(tokens.check("0123456789abcdeF"), None);
        assert_eq!(tokens.check("0123456789abcde"), None);
        assert_eq!(tokens.check(""), None);

        std::fs::write(&file, "read short\n").unwrap();
        let e = Tokens::default().load(&file).unwrap_err().to_string();
        assert!(e.ends_with(":1: a token needs at least 16 printable characters"), "{e}");
        std::fs::write(&file, "\nwrite 0123456789abcdef\n").unwrap();
        let e = Tokens::default().load(&file).unwrap_err().to_string();
        assert!(e.contains(":2: role \"write\""), "{e}");

        // A token twice (whatever the roles), or the agent's own: the lines are named.
        std::fs::write(&file, "read 0123456789abcdef a\n# x\nadmin 0123456789abcdef b\n").unwrap();
        let e = Tokens::default().load(&file).unwrap_err().to_string();
        assert!(e.ends_with(":3: the same token as line 1: give each token once"), "{e}");
        let mut with_own = Tokens::default();
        with_own.add(Role::Admin, "fedcba9876543210fedcba", "agent");
        std::fs::write(&file, "read 0123456789abcdef\nread fedcba9876543210fedcba\n").unwrap();
        let e = with_own.load(&file).unwrap_err().to_string();
        assert!(e.ends_with(":2: the same token as the \"agent\" token (the agent's own, in STATE_DIR/api-token): use another"), "{e}");

        let own = dir.join("api-token");
        let _ = std::fs::remove_file(&own);
        let t = own_token(&own).unwrap();
        assert_eq!(t.len(), 64);
        assert_eq!(own_token(&own).unwrap(), t, "kept across restarts");
        assert_eq!(std::fs::metadata(&own).unwrap().permissions().mode() & 0o777, 0o600);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
