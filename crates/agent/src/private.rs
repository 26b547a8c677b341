//! The agent's own files are private: its state directory is mode 0700 and every file it
//! writes there (`state.db` and its `-wal`/`-shm`, the spool, `api-token`, `api-addr`,
//! `agent.json`) mode 0600.
//!
//! Why explicit modes rather than a umask? The umask is process-wide: the task processes the
//! agent starts would inherit it, and a task's own files are the task's business. So the
//! agent's umask is never changed; each file is created with its mode (`open(2)` with
//! `O_CREAT`, which the umask can only make stricter), and SQLite gives `-wal` and `-shm` the
//! mode of the database file they belong to.
//!
//! Files and directories already there with looser modes (from an older cronfleet, or made
//! by hand) are tightened when they are this user's, and the agent says so in its log: they
//! are its own. A directory that is not this user's, or is sticky (`/tmp`, shared with
//! others), is left as it is, with a warning.

use std::{
    fs, io,
    io::Write,
    os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
};

/// The mode of the state directory.
pub const DIR_MODE: u32 = 0o700;
/// The mode of the files the agent writes in it.
pub const FILE_MODE: u32 = 0o600;

/// Whether `mode` gives its group or others any access.
pub fn looser(mode: u32) -> bool {
    mode & 0o077 != 0
}

/// Creates the directory `dir` with mode 0700 (its missing parents as the umask says), or
/// tightens it to 0700 when it exists with a looser mode and is this user's.
///
/// # Errors
/// When it cannot be created or its mode cannot be read or changed.
pub fn dir(dir: &Path) -> io::Result<()> {
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent)?;
    }
    match fs::DirBuilder::new().mode(DIR_MODE).create(dir) {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let meta = fs::metadata(dir)?;
    let mode = meta.permissions().mode() & 0o7777;
    if !looser(mode) {
        return Ok(());
    }
    let shown = format!("{mode:o}");
    if meta.uid() != nix::unistd::geteuid().as_raw() || mode & 0o1000 != 0 {
        tracing::warn!(
            dir = %dir.display(),
            mode = shown,
            "the state directory is open to others and not this agent's own to change: \
             give the agent a directory of its own (--state-dir)"
        );
        return Ok(());
    }
    fs::set_permissions(dir, fs::Permissions::from_mode(DIR_MODE))?;
    tracing::warn!(dir = %dir.display(), was = shown, "the state directory was open to others: its mode is now 700");
    Ok(())
}

/// Makes `path` mode 0600 when it exists with a looser mode (logged); a missing file is fine.
///
/// # Errors
/// When the mode cannot be read or changed.
pub fn tighten(path: &Path) -> io::Result<()> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_file() => meta,
        Ok(_) => return Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let mode = meta.permissions().mode() & 0o777;
    if looser(mode) {
        fs::set_permissions(path, fs::Permissions::from_mode(FILE_MODE))?;
        tracing::warn!(file = %path.display(), was = format!("{mode:o}"), "the file was readable by others: its mode is now 600");
    }
    Ok(())
}

/// Creates `path` empty with mode 0600 when it does not exist (before SQLite opens it, so
/// that the database, and the `-wal` and `-shm` files SQLite makes with its mode, are
/// private), else tightens it.
///
/// # Errors
/// When it can be neither created nor tightened.
pub fn file(path: &Path) -> io::Result<()> {
    match fs::OpenOptions::new().write(true).create_new(true).mode(FILE_MODE).open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => tighten(path),
        Err(e) => Err(e),
    }
}

/// Writes `contents` to `path` whole or not at all (a new file, mode 0600, renamed into
/// place): a reader never sees a half-written file, nor one open to others.
///
/// # Errors
/// When the file cannot be written or renamed.
pub fn write(path: &Path, contents: &[u8]) -> io::Result<()> {
    let partial = partial(path);
    let _ = fs::remove_file(&partial);
    let mut file =
        fs::OpenOptions::new().write(true).create_new(true).mode(FILE_MODE).open(&partial)?;
    file.write_all(contents)?;
    drop(file);
    fs::rename(&partial, path)
}

/// `FILE.partial`, beside `path`.
fn partial(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(".partial");
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn made_private_and_tightened() {
        let base = std::env::temp_dir().join(format!("cronfleet-private-{}", std::process::id()));
        let _ = fs::remove_dir_all(&base);
        let state = base.join("a/state");
        dir(&state).unwrap();
        assert_eq!(mode(&state), 0o700);
        fs::set_permissions(&state, fs::Permissions::from_mode(0o755)).unwrap();
        dir(&state).unwrap();
        assert_eq!(mode(&state), 0o700, "tightened");

        let f = state.join("agent.json");
        write(&f, b"{}").unwrap();
        assert_eq!((mode(&f), fs::read(&f).unwrap()), (0o600, b"{}".to_vec()));
        fs::set_permissions(&f, fs::Permissions::from_mode(0o644)).unwrap();
        write(&f, b"{1}").unwrap();
        assert_eq!(mode(&f), 0o600, "replaced by a private file");
        assert!(!state.join("agent.json.partial").exists());

        let db = state.join("state.db");
        file(&db).unwrap();
        assert_eq!(mode(&db), 0o600);
        fs::set_permissions(&db, fs::Permissions::from_mode(0o640)).unwrap();
        file(&db).unwrap();
        assert_eq!(mode(&db), 0o600, "tightened");
        tighten(&state.join("missing")).unwrap();
        fs::remove_dir_all(&base).unwrap();
    }
}
