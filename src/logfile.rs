//! The log file, reopenable so logrotate works.
//!
//! simplelog's `WriteLogger` keeps the writer it was given for the life of
//! the process. If that writer were a plain `File`, a rotated (renamed) log
//! would keep receiving every line. [`LogFile`] is a cheap handle on one
//! shared, lockable file: the logger writes through one clone, and the
//! acceptor calls [`LogFile::reopen`] on another when SIGHUP arrives, so the
//! next line goes to a fresh file at the configured path.
//!
//! The portal's stderr also carries the game's lines when `[game] log` is
//! `""`, so every line there starts with the name of its writer:
//! [`StderrLines`] gives the logger whole `portal: ` lines, and
//! [`write_stderr_line`] is the one way a line reaches stderr, so lines of
//! the two never interleave.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// A log file opened for appending, shared between the logger and whoever
/// reopens it.
#[derive(Clone)]
pub struct LogFile {
    path: PathBuf,
    file: Arc<Mutex<File>>,
}

impl LogFile {
    /// Open (or create) `path` for appending.
    pub fn open(path: &Path) -> io::Result<LogFile> {
        Ok(LogFile {
            path: path.to_owned(),
            file: Arc::new(Mutex::new(open_append(path)?)),
        })
    }

    /// The path the file is (re)opened at.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Open the path again and write there from now on. On failure the old
    /// file stays in use.
    pub fn reopen(&self) -> io::Result<()> {
        let fresh = open_append(&self.path)?;
        let mut file = self.lock();
        let _ = file.flush();
        *file = fresh;
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, File> {
        // A panic while writing leaves at worst a partial line; keep going.
        self.file.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Write for LogFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.lock().write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.lock().write_all(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.lock().flush()
    }
}

/// A writer for the logger: what it writes goes to stderr one whole line
/// at a time, each line prefixed.
pub struct StderrLines {
    prefix: &'static str,
    pending: Vec<u8>,
}

impl StderrLines {
    pub fn new(prefix: &'static str) -> StderrLines {
        StderrLines {
            prefix,
            pending: Vec::new(),
        }
    }
}

impl Write for StderrLines {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.pending.extend_from_slice(buf);
        while let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            write_stderr_line(self.prefix, &line[..end]);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.pending.is_empty() {
            let rest = std::mem::take(&mut self.pending);
            write_stderr_line(self.prefix, &rest);
        }
        Ok(())
    }
}

/// Write `prefix`, `line` (invalid UTF-8 replaced) and a newline to stderr
/// in one locked write. Errors are dropped: there is nowhere to report them.
pub fn write_stderr_line(prefix: &str, line: &[u8]) {
    let text = format!("{prefix}{}\n", String::from_utf8_lossy(line));
    let _ = io::stderr().lock().write_all(text.as_bytes());
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reopen_after_a_rename_writes_to_a_new_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("portal.log");
        let mut log = LogFile::open(&path).unwrap();
        log.write_all(b"before\n").unwrap();
        let rotated = dir.path().join("portal.log.1");
        std::fs::rename(&path, &rotated).unwrap();
        log.write_all(b"still old\n").unwrap();
        log.clone().reopen().unwrap();
        log.write_all(b"after\n").unwrap();
        assert_eq!(
            std::fs::read_to_string(&rotated).unwrap(),
            "before\nstill old\n"
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "after\n");
    }

    #[test]
    fn a_failed_reopen_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("logs");
        std::fs::create_dir(&sub).unwrap();
        let path = sub.join("portal.log");
        let mut log = LogFile::open(&path).unwrap();
        std::fs::rename(&path, dir.path().join("moved.log")).unwrap();
        std::fs::remove_dir(&sub).unwrap();
        assert!(log.reopen().is_err());
        log.write_all(b"kept\n").unwrap();
        let moved = std::fs::read_to_string(dir.path().join("moved.log")).unwrap();
        assert_eq!(moved, "kept\n");
    }
}
