//! The game's output: where the supervised game's stdout and stderr go.
//!
//! The supervisor gives the game pipes for both and calls
//! [`GameLog::follow`] on each: a small thread reads the pipe, cuts it into
//! lines ([`Lines`], pure) and writes every line to the game log file
//! (`[game] log`, see [`crate::config::Config::game_log_path`]) or, when
//! there is none, to the portal's stderr prefixed `game: `. The acceptor
//! calls [`GameLog::reopen`] on SIGHUP, beside the portal's own log, so
//! logrotate can move the file. The thread ends when the pipe closes (the
//! game exited), after writing a last line that had no newline.

use crate::logfile::{write_stderr_line, LogFile};
use crossbeam_channel::Receiver;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// Longest line written as one; longer ones are cut into pieces this long.
pub const MAX_LINE: usize = 8192;
/// What the game's lines start with on the portal's stderr.
pub const STDERR_PREFIX: &str = "game: ";

/// Where game lines go now: a file, or the portal's stderr (`None`).
#[derive(Clone, Default)]
pub struct GameLog {
    file: Arc<Mutex<Option<LogFile>>>,
}

impl GameLog {
    /// Send game lines to `path` from now on (`None`: the portal's stderr).
    /// The file already open at that path is kept; on failure the old
    /// target stays.
    pub fn point_at(&self, path: Option<&Path>) -> io::Result<()> {
        let mut file = self.lock();
        if file.as_ref().map(LogFile::path) == path {
            return Ok(());
        }
        *file = path.map(LogFile::open).transpose()?;
        Ok(())
    }

    /// The file game lines go to, if not stderr.
    pub fn path(&self) -> Option<PathBuf> {
        self.lock().as_ref().map(|f| f.path().to_owned())
    }

    /// Reopen the file at its path (SIGHUP); `None` when lines go to stderr.
    pub fn reopen(&self) -> Option<(PathBuf, io::Result<()>)> {
        let file = self.lock().clone()?;
        Some((file.path().to_owned(), file.reopen()))
    }

    /// Write one line (without its newline) where game lines go now.
    pub fn write_line(&self, line: &[u8]) {
        let file = self.lock().clone();
        match file {
            Some(mut file) => {
                let mut text = String::from_utf8_lossy(line).into_owned();
                text.push('\n');
                // A full disk must not stop the game: drop the line.
                let _ = file.write_all(text.as_bytes());
            }
            None => write_stderr_line(STDERR_PREFIX, line),
        }
    }

    /// Copy `pipe` line by line to the game log on a thread of its own.
    /// The returned receiver disconnects when the thread has written the
    /// last line (the pipe closed or failed).
    pub fn follow(&self, pipe: impl Read + Send + 'static, name: &str) -> io::Result<Receiver<()>> {
        let (done, finished) = crossbeam_channel::bounded::<()>(0);
        let log = self.clone();
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                copy_lines(pipe, &log);
                drop(done);
            })?;
        Ok(finished)
    }

    fn lock(&self) -> MutexGuard<'_, Option<LogFile>> {
        self.file.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Read `pipe` to its end, writing each line to `log`.
fn copy_lines(mut pipe: impl Read, log: &GameLog) {
    let mut lines = Lines::new(MAX_LINE);
    let mut buf = vec![0; 8192];
    loop {
        match pipe.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => lines.push(&buf[..n], |line| log.write_line(line)),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                log::warn!("cannot read the game's output: {e}");
                break;
            }
        }
    }
    lines.finish(|line| log.write_line(line));
}

/// Cuts a byte stream into lines of at most `max` bytes: `\n` ends a line
/// (a `\r` before it is dropped), a longer line is cut into pieces, before
/// a UTF-8 character rather than inside it when one straddles the cut.
pub struct Lines {
    pending: Vec<u8>,
    max: usize,
}

impl Lines {
    pub fn new(max: usize) -> Lines {
        Lines {
            pending: Vec::new(),
            max: max.max(1),
        }
    }

    /// Take the next bytes; `emit` gets each line they complete or cut.
    pub fn push(&mut self, mut bytes: &[u8], mut emit: impl FnMut(&[u8])) {
        while let Some(end) = bytes.iter().position(|&b| b == b'\n') {
            self.add(&bytes[..end], &mut emit);
            let line = self.pending.strip_suffix(b"\r").unwrap_or(&self.pending);
            emit(line);
            self.pending.clear();
            bytes = &bytes[end + 1..];
        }
        self.add(bytes, &mut emit);
    }

    /// The stream ended: `emit` gets a last line that had no newline.
    pub fn finish(&mut self, mut emit: impl FnMut(&[u8])) {
        if !self.pending.is_empty() {
            emit(&self.pending);
            self.pending.clear();
        }
    }

    /// Append to the pending line, emitting pieces while it is too long.
    fn add(&mut self, bytes: &[u8], emit: &mut impl FnMut(&[u8])) {
        self.pending.extend_from_slice(bytes);
        while self.pending.len() > self.max {
            let cut = cut_before_char(&self.pending, self.max);
            emit(&self.pending[..cut]);
            self.pending.drain(..cut);
        }
    }
}

/// Where to cut `bytes` (longer than `at`) near `at`: before the UTF-8
/// character that straddles `at`, if one does (a character has at most 3
/// continuation bytes), else at `at`.
fn cut_before_char(bytes: &[u8], at: usize) -> usize {
    let continuation = |b: u8| b & 0xC0 == 0x80;
    (at.saturating_sub(3)..=at)
        .rev()
        .find(|&i| i > 0 && !continuation(bytes[i]))
        .unwrap_or(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(chunks: &[&[u8]], max: usize) -> Vec<Vec<u8>> {
        let mut lines = Lines::new(max);
        let mut out = Vec::new();
        for chunk in chunks {
            lines.push(chunk, |l| out.push(l.to_vec()));
        }
        lines.finish(|l| out.push(l.to_vec()));
        out
    }

    #[test]
    fn lines_split_anywhere_come_out_whole() {
        let text = b"one\r\ntwo\n\nthree";
        let whole = split(&[text], 100);
        assert_eq!(whole, [&b"one"[..], b"two", b"", b"three"]);
        for at in 0..text.len() {
            let (a, b) = text.split_at(at);
            assert_eq!(split(&[a, b], 100), whole, "split at {at}");
        }
    }

    #[test]
    fn a_partial_last_line_is_given_at_the_end() {
        let mut lines = Lines::new(100);
        let mut out = Vec::new();
        lines.push(b"done\nhalf", |l| out.push(l.to_vec()));
        assert_eq!(out, [b"done".to_vec()]);
        lines.finish(|l| out.push(l.to_vec()));
        assert_eq!(out, [b"done".to_vec(), b"half".to_vec()]);
        lines.finish(|l| out.push(l.to_vec()));
        assert_eq!(out.len(), 2, "nothing more after the end");
    }

    #[test]
    fn a_huge_line_without_newline_is_cut_and_never_held_whole() {
        let mut lines = Lines::new(10);
        let mut out = Vec::new();
        for _ in 0..1000 {
            lines.push(&[b'x'; 7], |l| out.push(l.len()));
            assert!(lines.pending.len() <= 10);
        }
        lines.finish(|l| out.push(l.len()));
        assert!(out.iter().all(|&n| n == 10), "{out:?}");
        assert_eq!(out.iter().sum::<usize>(), 7000);
    }

    #[test]
    fn a_line_of_exactly_the_bound_is_not_cut() {
        assert_eq!(split(&[b"0123456789\n"], 10), [b"0123456789".to_vec()]);
        assert_eq!(
            split(&[b"0123456789a\n"], 10),
            [b"0123456789".to_vec(), b"a".to_vec()]
        );
    }

    #[test]
    fn a_cut_keeps_a_utf8_character_whole() {
        // "aaaaaaaaé": the two bytes of é straddle the bound of 9.
        let line = "aaaaaaaaé€z".as_bytes();
        let pieces = split(&[line], 9);
        for piece in &pieces {
            assert!(std::str::from_utf8(piece).is_ok(), "{pieces:?}");
        }
        assert_eq!(pieces.concat(), line);
    }

    #[test]
    fn invalid_utf8_passes_as_bytes() {
        let pieces = split(&[b"\xff\xfe\x80\x80\x80\x80ok\n"], 4);
        assert_eq!(pieces.concat(), b"\xff\xfe\x80\x80\x80\x80ok");
        assert!(pieces.iter().all(|p| p.len() <= 4 && !p.is_empty()));
    }

    #[test]
    fn the_reader_writes_every_line_then_ends() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("game.log");
        let log = GameLog::default();
        log.point_at(Some(&path)).unwrap();
        let input: &[u8] = b"first\n\xffbad\nlast";
        let done = log.follow(input, "test-reader").unwrap();
        let ended = done.recv_timeout(std::time::Duration::from_secs(10));
        assert_eq!(
            ended,
            Err(crossbeam_channel::RecvTimeoutError::Disconnected)
        );
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, "first\n\u{fffd}bad\nlast\n");
    }

    #[test]
    fn pointing_at_the_same_path_keeps_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("game.log");
        let log = GameLog::default();
        log.point_at(Some(&path)).unwrap();
        std::fs::rename(&path, dir.path().join("game.log.1")).unwrap();
        log.point_at(Some(&path)).unwrap();
        log.write_line(b"to the moved file");
        assert!(!path.exists());
        let (reopened, result) = log.reopen().unwrap();
        assert_eq!(reopened, path);
        result.unwrap();
        log.write_line(b"to the new file");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "to the new file\n");
        log.point_at(None).unwrap();
        assert_eq!(log.path(), None);
        assert!(log.reopen().is_none());
    }
}
