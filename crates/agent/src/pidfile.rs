//! The agent's pid file, and finding the agent through it.

use std::{
    fs,
    io::{self, Write},
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
};

use nix::{
    errno::Errno,
    sys::signal::{kill, Signal},
    unistd::Pid,
};

/// A pid file this process wrote; removed when dropped.
#[derive(Debug)]
pub struct PidFile {
    path: PathBuf,
}

/// Why a pid file could not be taken or used.
#[derive(Debug, thiserror::Error)]
pub enum PidFileError {
    /// Another agent runs.
    #[error("already running, pid {pid} (pid file {path})")]
    Running {
        /// Its pid.
        pid: i32,
        /// The file.
        path: String,
    },
    /// No agent runs for this pid file.
    #[error("not running (no live process in {0})")]
    NotRunning(String),
    /// The file could not be read or written.
    #[error("pid file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: io::Error,
    },
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> PidFileError + '_ {
    move |source| PidFileError::Io { path: path.display().to_string(), source }
}

/// The live process a pid file names, if any.
pub fn read(path: &Path) -> Result<Option<i32>, PidFileError> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error(path)(e)),
    };
    let Ok(pid) = text.trim().parse::<i32>() else { return Ok(None) };
    Ok(alive(pid).then_some(pid))
}

/// Whether a process with this pid exists.
pub fn alive(pid: i32) -> bool {
    pid > 0 && !matches!(kill(Pid::from_raw(pid), None), Err(Errno::ESRCH))
}

impl PidFile {
    /// Writes this process's pid to `path`, replacing a stale file; a live one is an error.
    pub fn create(path: &Path) -> Result<PidFile, PidFileError> {
        if let Some(pid) = read(path)? {
            if pid != std::process::id() as i32 {
                return Err(PidFileError::Running { pid, path: path.display().to_string() });
            }
        }
        let tmp = path.with_extension("tmp");
        let _ = fs::remove_file(&tmp);
        // 0644, as Debian's daemons leave theirs: it holds only the pid (which `ps` shows
        // anyway), and tools run as other users read it; only the agent may write it.
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&tmp)
            .map_err(io_error(path))?;
        writeln!(f, "{}", std::process::id()).map_err(io_error(path))?;
        fs::rename(&tmp, path).map_err(io_error(path))?;
        Ok(PidFile { path: path.to_owned() })
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// Sends `signal` to the agent of a pid file.
pub fn signal(path: &Path, signal: Signal) -> Result<i32, PidFileError> {
    let pid = read(path)?.ok_or_else(|| PidFileError::NotRunning(path.display().to_string()))?;
    kill(Pid::from_raw(pid), signal)
        .map_err(|e| io_error(path)(io::Error::from_raw_os_error(e as i32)))?;
    Ok(pid)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn the_pid_file_is_readable_and_only_the_agent_writes_it() {
        let path = std::env::temp_dir().join(format!("cronfleet-pid-{}.pid", std::process::id()));
        let _ = fs::remove_file(&path);
        let pid = PidFile::create(&path).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o644);
        assert_eq!(read(&path).unwrap(), Some(std::process::id() as i32));
        drop(pid);
        assert!(!path.exists());
    }
}
