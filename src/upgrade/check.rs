//! The version handshake with a new portal binary, before anything is
//! handed to it: the binary is run as `BINARY upgrade-check`, must answer
//! within a few seconds with one line `portal-handover V1 [V2 ...]` naming
//! the hand-over format versions it reads, and exit 0. A binary that does
//! not start, hangs, answers something else or does not read our version
//! is refused, and the old portal keeps serving.

use crate::upgrade::format::{READS, VERSION};
use std::fmt;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The hidden command a portal answers the handshake on.
pub const CHECK_COMMAND: &str = "upgrade-check";
/// The first word of the answer.
pub const ANSWER_WORD: &str = "portal-handover";
/// Longest answer read.
const MAX_ANSWER: u64 = 4096;

/// Why a binary was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckError {
    Start(String),
    TimedOut(Duration),
    Failed(String),
    Answer(String),
    Version { theirs: Vec<u32> },
}

impl fmt::Display for CheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckError::Start(e) => write!(f, "it does not start: {e}"),
            CheckError::TimedOut(limit) => {
                write!(f, "it did not answer the hand-over check in {limit:?}")
            }
            CheckError::Failed(status) => write!(f, "its hand-over check failed: {status}"),
            CheckError::Answer(text) => write!(
                f,
                "it does not speak the hand-over (answered {text:?}, expected `{ANSWER_WORD} ...`)"
            ),
            CheckError::Version { theirs } => write!(
                f,
                "it reads hand-over versions {theirs:?}, not this portal's {VERSION}"
            ),
        }
    }
}

impl std::error::Error for CheckError {}

/// What this portal answers to `upgrade-check`.
pub fn answer() -> String {
    let versions: Vec<String> = READS.iter().map(u32::to_string).collect();
    format!("{ANSWER_WORD} {}", versions.join(" "))
}

/// Parse an answer: the versions it names (pure).
pub fn parse_answer(text: &str) -> Result<Vec<u32>, CheckError> {
    let line = text.lines().next().unwrap_or("").trim();
    let mut words = line.split_whitespace();
    if words.next() != Some(ANSWER_WORD) {
        return Err(CheckError::Answer(line.chars().take(80).collect()));
    }
    let versions: Result<Vec<u32>, _> = words.map(str::parse).collect();
    match versions {
        Ok(v) if !v.is_empty() => Ok(v),
        _ => Err(CheckError::Answer(line.chars().take(80).collect())),
    }
}

/// Run the handshake with `binary`, giving it `args` (`--config PATH`: it
/// must read the config it will run with).
pub fn handshake(binary: &Path, args: &[String], limit: Duration) -> Result<(), CheckError> {
    let mut child = Command::new(binary)
        .arg(CHECK_COMMAND)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .env_remove(crate::upgrade::HANDOVER_ENV)
        .spawn()
        .map_err(|e| CheckError::Start(format!("{}: {e}", binary.display())))?;
    let deadline = Instant::now() + limit;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(CheckError::TimedOut(limit));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(CheckError::Start(e.to_string())),
        }
    };
    let mut text = String::new();
    if let Some(out) = child.stdout.take() {
        let _ = out.take(MAX_ANSWER).read_to_string(&mut text);
    }
    if !status.success() {
        let said = text.lines().next().unwrap_or("").trim();
        return Err(CheckError::Failed(
            format!("{status} {said}").trim().to_owned(),
        ));
    }
    let theirs = parse_answer(&text)?;
    if theirs.contains(&VERSION) {
        Ok(())
    } else {
        Err(CheckError::Version { theirs })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_answer_parses_to_our_version() {
        assert_eq!(parse_answer(&answer()), Ok(READS.to_vec()));
        assert!(READS.contains(&VERSION));
        assert_eq!(parse_answer("portal-handover 1 2\n"), Ok(vec![1, 2]));
    }

    #[test]
    fn other_answers_are_refused() {
        for text in ["", "portal 0.1.0", "portal-handover", "portal-handover x"] {
            assert!(parse_answer(text).is_err(), "{text:?}");
        }
    }

    #[test]
    fn a_program_that_is_not_a_portal_is_refused() {
        let err = handshake(Path::new("/bin/true"), &[], Duration::from_secs(5)).unwrap_err();
        assert!(matches!(err, CheckError::Answer(_)), "{err}");
        let err = handshake(Path::new("/bin/false"), &[], Duration::from_secs(5)).unwrap_err();
        assert!(matches!(err, CheckError::Failed(_)), "{err}");
        let err = handshake(Path::new("/no/such/portal"), &[], Duration::from_secs(5)).unwrap_err();
        assert!(matches!(err, CheckError::Start(_)), "{err}");
    }
}
