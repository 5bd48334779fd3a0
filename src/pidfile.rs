//! The pid file: written at start, removed at a clean exit, read by
//! `portal stop`, `portal reload` and `portal reload-server`.
//!
//! At start an existing file is checked: if its process is gone (or is now
//! some other program that got the same pid), the file is stale and is
//! replaced with a log line; if a portal still runs under that pid, this
//! portal refuses to start and names the pid.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// A pid file this process wrote; removed when dropped (if it still holds
/// our pid), so every way out of `run` cleans it up.
#[derive(Debug)]
pub struct PidFile {
    path: PathBuf,
}

/// What an existing pid file says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holder {
    /// No pid file.
    Missing,
    /// A portal runs under this pid.
    Running(u32),
    /// The file is stale: why, for the log.
    Stale(String),
}

/// Why the pid file could not be claimed.
#[derive(Debug)]
#[non_exhaustive]
pub enum PidFileError {
    /// A portal already runs under the pid the file holds.
    Running { path: PathBuf, pid: u32 },
    /// The file could not be written.
    Write { path: PathBuf, source: io::Error },
}

impl fmt::Display for PidFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PidFileError::Running { path, pid } => write!(
                f,
                "another portal is already running with pid {pid} (pid file {}); \
                 stop it first (`portal stop`)",
                path.display()
            ),
            PidFileError::Write { path, source } => {
                write!(f, "cannot write the pid file {}: {source}", path.display())
            }
        }
    }
}

impl std::error::Error for PidFileError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PidFileError::Running { .. } => None,
            PidFileError::Write { source, .. } => Some(source),
        }
    }
}

impl PidFile {
    /// Claim `path` for this process. Errors name the pid already running
    /// or the I/O problem.
    pub fn create(path: &Path) -> Result<PidFile, PidFileError> {
        match holder(path) {
            Holder::Running(pid) => {
                return Err(PidFileError::Running {
                    path: path.to_owned(),
                    pid,
                })
            }
            Holder::Stale(why) => {
                log::warn!("stale pid file {} ({why}); replacing it", path.display())
            }
            Holder::Missing => {}
        }
        write_pid(path, std::process::id()).map_err(|source| PidFileError::Write {
            path: path.to_owned(),
            source,
        })?;
        Ok(PidFile {
            path: path.to_owned(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        if read_pid(&self.path).ok().flatten() == Some(std::process::id()) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Who holds the pid file at `path`.
pub fn holder(path: &Path) -> Holder {
    let pid = match read_pid(path) {
        Ok(None) => return Holder::Missing,
        Ok(Some(pid)) => pid,
        Err(e) => return Holder::Stale(format!("unreadable: {e}")),
    };
    if pid == std::process::id() {
        return Holder::Stale("it holds our own pid".into());
    }
    if !is_alive(pid) {
        return Holder::Stale(format!("no process with pid {pid}"));
    }
    match program_of(pid) {
        Some(name) if Some(&name) != program_of(std::process::id()).as_ref() => {
            Holder::Stale(format!("pid {pid} is now `{name}`, not a portal"))
        }
        _ => Holder::Running(pid),
    }
}

/// The pid in the file; `Ok(None)` when there is no file.
pub fn read_pid(path: &Path) -> io::Result<Option<u32>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    text.trim()
        .parse::<u32>()
        .ok()
        .filter(|&pid| pid > 0 && pid <= i32::MAX as u32)
        .map(Some)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "not a pid"))
}

/// Whether a process with this pid exists (ours to signal or not). A
/// zombie (exited, not yet reaped by its parent) counts as gone.
pub fn is_alive(pid: u32) -> bool {
    let Ok(raw) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 sends nothing; it only checks the pid.
    let rc = unsafe { libc::kill(raw, 0) };
    let exists = rc == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
    exists && !is_zombie(pid)
}

/// Linux: the state letter after the command name in `/proc/PID/stat`.
fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let (_, rest) = stat.rsplit_once(')')?;
            rest.trim_start().chars().next()
        })
        .is_some_and(|state| state == 'Z')
}

/// Send `signal` to `pid`.
pub fn send_signal(pid: u32, signal: i32) -> io::Result<()> {
    let pid = libc::pid_t::try_from(pid)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "pid out of range"))?;
    // SAFETY: kill(2) with a checked pid; no memory is involved.
    if unsafe { libc::kill(pid, signal) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The program name of a process (Linux `/proc/PID/comm`), if known. A
/// zombie still shows its name; that is fine, it is about to be gone.
fn program_of(pid: u32) -> Option<String> {
    let name = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    Some(name.trim_end().to_owned())
}

fn write_pid(path: &Path, pid: u32) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, format!("{pid}\n"))?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pid that is certainly not running: a child we started and reaped.
    fn dead_pid() -> u32 {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        pid
    }

    #[test]
    fn a_missing_file_is_claimed_and_removed_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("portal.pid");
        let file = PidFile::create(&path).unwrap();
        assert_eq!(read_pid(&path).unwrap(), Some(std::process::id()));
        drop(file);
        assert!(!path.exists());
    }

    #[test]
    fn a_dead_pid_is_stale() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("portal.pid");
        std::fs::write(&path, format!("{}\n", dead_pid())).unwrap();
        assert!(matches!(holder(&path), Holder::Stale(_)));
        let _file = PidFile::create(&path).unwrap();
        assert_eq!(read_pid(&path).unwrap(), Some(std::process::id()));
    }

    #[test]
    fn garbage_is_stale_and_another_program_is_not_a_portal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("portal.pid");
        std::fs::write(&path, "hello\n").unwrap();
        assert!(matches!(holder(&path), Holder::Stale(_)));
        let mut sleeper = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        std::fs::write(&path, format!("{}\n", sleeper.id())).unwrap();
        let found = holder(&path);
        sleeper.kill().unwrap();
        sleeper.wait().unwrap();
        match found {
            Holder::Stale(why) => assert!(why.contains("not a portal"), "{why}"),
            other => panic!("{other:?}"),
        }
    }
}
