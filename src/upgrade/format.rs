//! The hand-over file: what the old portal tells the new one, as bytes
//! (pure: no I/O; `docs/upgrade.md` describes it byte by byte).
//!
//! ```text
//!  "PORTALHO" (8 bytes)  version (u32, little-endian)  length (u64, LE)  body (postcard)
//! ```
//!
//! The body is a postcard-encoded [`Handover`]. Descriptors are carried as
//! numbers: the old portal clears their close-on-exec flag, so they are
//! open under the same numbers in the new one. Session cores and the AMP
//! writer's state are opaque byte strings their own modules encode and
//! check ([`crate::session::core::Core::thaw`], the outbox).
//!
//! Decoding is bounded: a body over [`MAX_BODY`] is refused before
//! anything is allocated, postcard never allocates more than the bytes it
//! reads, and [`Handover::check`] refuses numbers no live portal would
//! send (too many sessions, a descriptor twice, a negative one).

use crate::wire::session::Session;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;

/// The file's first bytes.
pub const MAGIC: &[u8; 8] = b"PORTALHO";
/// The hand-over format this portal writes.
pub const VERSION: u32 = 2;
/// The hand-over formats this portal reads: 1 is 2 without SSH sessions
/// ([`TransportState::Ssh`] is new in 2), so an older portal can still
/// hand over to this one, and this one never to a portal that reads only
/// 1.
pub const READS: &[u32] = &[1, 2];
/// Largest body read (a full portal's sessions with full output buffers
/// fit many times over).
pub const MAX_BODY: u64 = 512 * 1024 * 1024;
/// Most sessions, queued clients or listeners a hand-over may name.
pub const MAX_ITEMS: usize = 1_000_000;
const HEADER: usize = 8 + 4 + 8;

/// Everything the new portal takes over.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Handover {
    /// The first portal of this chain started then (unix seconds), so
    /// uptime and MSSP's UPTIME keep counting.
    pub started_unix: f64,
    /// Upgrades before this one in the chain.
    pub upgrades: u32,
    /// When the old portal began the hand-over (unix microseconds), for the
    /// time it took.
    pub began_unix_micros: u64,
    /// The next sessid to give: sessids are never reused.
    pub next_sessid: u64,
    pub listeners: Vec<ListenerState>,
    /// Accepted clients still waiting their turn in the connection queue.
    pub queued: Vec<QueuedState>,
    pub sessions: Vec<SessionState>,
    pub amp: AmpState,
    pub game: Option<GameState>,
    /// Sessions that could not be carried: sessid, what they were and what
    /// their player was told.
    pub dropped: Vec<Dropped>,
    /// With the evennia dialect: what the portal knows of the Server.
    pub evennia: Option<EvenniaState>,
    /// AJAX sessions (no socket of their own: a parked receive is answered
    /// before the freeze, so the browser asks again of the new portal).
    pub ajax: Vec<AjaxState>,
    /// IRC bots: each QUIT its network before the freeze; the new portal
    /// connects it again from its config.
    pub bots: Vec<crate::session::irc::BotConfig>,
}

/// One AJAX session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AjaxState {
    pub record: Session,
    pub registered: bool,
    /// The browser and tab ids requests name it by.
    pub csessid: String,
    pub cuid: String,
    /// `Core::freeze`'s bytes.
    pub core: Vec<u8>,
    /// The long-poll state (`LongPoll::freeze`).
    pub poll: Vec<u8>,
    /// The address counted against the per-address caps, if any.
    pub counted_ip: Option<std::net::IpAddr>,
}

/// What the portal knows of an Evennia Server (for its launcher).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct EvenniaState {
    pub pid: Option<i64>,
    /// Its info dict, as a pickle (protocol 4).
    pub info: Option<Vec<u8>>,
    /// The launcher's command for starting it.
    pub command: Vec<String>,
    /// Its connections so far, and which one is linked.
    pub epochs: u64,
    pub linked: Option<u64>,
}

/// One listening socket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListenerState {
    pub fd: i32,
    /// `telnet`, `telnet/ssl`, `webclient/websocket`, `ssh`.
    pub protocol_key: String,
    /// For TLS: the index of its `[[tls]]` entry.
    pub tls_index: Option<usize>,
    /// For SSH: the index of its `[[ssh]]` entry.
    pub ssh_index: Option<usize>,
}

/// An accepted client waiting in the connection queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueuedState {
    pub fd: i32,
    pub address: SocketAddr,
    /// Index into [`Handover::listeners`].
    pub listener: usize,
    pub counted: bool,
    pub proxied: bool,
}

/// One session: its socket, its sync record and its core.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionState {
    pub fd: i32,
    /// The sync record (for a session not yet registered: the one to
    /// register, and `registered` is false).
    pub record: Session,
    pub registered: bool,
    /// What the client's socket talks: see [`TransportState`].
    pub transport: TransportState,
    /// The address the connection came from (the peer, or the client a
    /// PROXY header named) and whether it counts against per-address caps.
    pub address: SocketAddr,
    pub counted_ip: Option<std::net::IpAddr>,
    /// Web: the listener asked a trusted proxy's forwarded header at
    /// registration (not yet done).
    pub recount_at_register: bool,
    /// `Core::freeze`'s bytes.
    pub core: Vec<u8>,
    /// Bytes for the socket that were not written (already encrypted for a
    /// TLS session): they go first.
    pub unsent: Vec<u8>,
}

/// How a carried socket is read and written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum TransportState {
    Plain,
    /// TLS continued from the old portal's traffic secrets
    /// ([`crate::tls::carried::CarriedTls`]'s encoding).
    Tls(Vec<u8>),
    /// An SSH connection continued from the old portal's keys, sequence
    /// numbers and channel ([`crate::ssh::SshTransport::freeze`]'s
    /// encoding, at most [`crate::ssh::MAX_CARRIED`] bytes).
    Ssh(Vec<u8>),
}

/// The game's AMP link.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct AmpState {
    pub listener_fd: i32,
    pub link: Option<LinkState>,
    /// The AMP writer's state (held and in-flight input, link state,
    /// heartbeat, frames not yet written): the outbox's encoding.
    pub outbox: Vec<u8>,
}

/// A linked game.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinkState {
    pub fd: i32,
    pub id: u64,
    /// Bytes the reader had read but not yet decoded (part of a frame).
    pub unread: Vec<u8>,
}

/// The supervised game process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GameState {
    pub pid: u32,
    /// How long it has been running (seconds).
    pub running_secs: f64,
    pub started_once: bool,
    /// The game's stdout and stderr pipes (copied to the game log).
    pub stdout_fd: Option<i32>,
    pub stderr_fd: Option<i32>,
    pub restarts: u64,
    pub crashes: u64,
}

/// A session the old portal could not carry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dropped {
    pub sessid: u64,
    pub protocol_key: String,
    pub why: String,
}

/// Why a hand-over file was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormatError {
    /// Shorter than its header or its stated length.
    Truncated,
    NotAHandover,
    /// Written by a portal speaking another version of this format.
    Version(u32),
    TooLarge(u64),
    Body(String),
    /// Decoded, but not something a live portal sends.
    Invalid(String),
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FormatError::Truncated => f.write_str("the hand-over is cut short"),
            FormatError::NotAHandover => f.write_str("not a portal hand-over (bad magic)"),
            FormatError::Version(v) => {
                write!(
                    f,
                    "hand-over format version {v}; this portal reads {READS:?}"
                )
            }
            FormatError::TooLarge(n) => {
                write!(
                    f,
                    "hand-over body of {n} bytes is over the {MAX_BODY} limit"
                )
            }
            FormatError::Body(e) => write!(f, "hand-over body does not decode: {e}"),
            FormatError::Invalid(e) => write!(f, "hand-over refused: {e}"),
        }
    }
}

impl std::error::Error for FormatError {}

impl Handover {
    /// The whole file.
    pub fn encode(&self) -> Result<Vec<u8>, FormatError> {
        let body = postcard::to_stdvec(self).map_err(|e| FormatError::Body(e.to_string()))?;
        let mut out = Vec::with_capacity(HEADER + body.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&(body.len() as u64).to_le_bytes());
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// The length a file with this header has in all, after checking the
    /// magic, version and bound: what to read before [`Handover::decode`].
    pub fn total_len(header: &[u8]) -> Result<usize, FormatError> {
        if header.len() < HEADER {
            return Err(FormatError::Truncated);
        }
        if &header[..8] != MAGIC {
            return Err(FormatError::NotAHandover);
        }
        let version = u32::from_le_bytes([header[8], header[9], header[10], header[11]]);
        if !READS.contains(&version) {
            return Err(FormatError::Version(version));
        }
        let mut len = [0u8; 8];
        len.copy_from_slice(&header[12..20]);
        let len = u64::from_le_bytes(len);
        if len > MAX_BODY {
            return Err(FormatError::TooLarge(len));
        }
        Ok(HEADER + len as usize)
    }

    /// Read a whole file and check it.
    pub fn decode(bytes: &[u8]) -> Result<Handover, FormatError> {
        let total = Handover::total_len(bytes)?;
        if bytes.len() < total {
            return Err(FormatError::Truncated);
        }
        let (handover, rest) = postcard::take_from_bytes::<Handover>(&bytes[HEADER..total])
            .map_err(|e| FormatError::Body(e.to_string()))?;
        if !rest.is_empty() {
            return Err(FormatError::Body(format!(
                "{} bytes after the body",
                rest.len()
            )));
        }
        handover.check()?;
        Ok(handover)
    }

    /// Every descriptor the hand-over names, in order.
    pub fn fds(&self) -> Vec<i32> {
        let mut fds: Vec<i32> = self.listeners.iter().map(|l| l.fd).collect();
        fds.extend(self.queued.iter().map(|q| q.fd));
        fds.extend(self.sessions.iter().map(|s| s.fd));
        fds.push(self.amp.listener_fd);
        fds.extend(self.amp.link.iter().map(|l| l.fd));
        if let Some(game) = &self.game {
            fds.extend(game.stdout_fd.iter().chain(game.stderr_fd.iter()));
        }
        fds
    }

    /// Refuse what no live portal sends: a descriptor below 3 or twice, a
    /// queued client of a listener that is not there, two sessions with
    /// one sessid or one at or past `next_sessid`.
    pub fn check(&self) -> Result<(), FormatError> {
        let invalid = |what: String| Err(FormatError::Invalid(what));
        let items =
            self.listeners.len() + self.queued.len() + self.sessions.len() + self.ajax.len();
        if items > MAX_ITEMS || self.dropped.len() > MAX_ITEMS || self.bots.len() > MAX_ITEMS {
            return invalid(format!("{items} items (at most {MAX_ITEMS})"));
        }
        let mut seen = HashSet::new();
        for fd in self.fds() {
            if fd < 3 {
                return invalid(format!("descriptor {fd}"));
            }
            if !seen.insert(fd) {
                return invalid(format!("descriptor {fd} named twice"));
            }
        }
        if let Some(q) = self
            .queued
            .iter()
            .find(|q| q.listener >= self.listeners.len())
        {
            return invalid(format!("a queued client of listener {}", q.listener));
        }
        let mut sessids = HashSet::new();
        let records = self.sessions.iter().map(|s| &s.record);
        for sessid in records
            .chain(self.ajax.iter().map(|a| &a.record))
            .map(|r| r.sessid)
        {
            if sessid >= self.next_sessid || !sessids.insert(sessid) {
                return invalid(format!("session {sessid} (twice, or not yet given)"));
            }
        }
        let max_ssh = crate::ssh::MAX_CARRIED;
        for s in &self.sessions {
            if let TransportState::Ssh(bytes) = &s.transport {
                if bytes.len() > max_ssh {
                    return invalid(format!(
                        "session {}: an SSH state of {} bytes (at most {max_ssh})",
                        s.record.sessid,
                        bytes.len()
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Handover {
        let mut record = Session::init_session(7, "telnet", "127.0.0.1:5000");
        record.uname = Some("alice".into());
        Handover {
            started_unix: 1_700_000_000.5,
            upgrades: 1,
            began_unix_micros: 42,
            next_sessid: 8,
            listeners: vec![ListenerState {
                fd: 5,
                protocol_key: "telnet".into(),
                tls_index: None,
                ssh_index: None,
            }],
            queued: vec![QueuedState {
                fd: 6,
                address: "127.0.0.1:6000".parse().unwrap(),
                listener: 0,
                counted: true,
                proxied: false,
            }],
            sessions: vec![SessionState {
                fd: 9,
                record,
                registered: true,
                transport: TransportState::Tls(vec![1, 2, 3]),
                address: "127.0.0.1:5000".parse().unwrap(),
                counted_ip: Some("127.0.0.1".parse().unwrap()),
                recount_at_register: false,
                core: vec![0xAB; 100],
                unsent: b"hello".to_vec(),
            }],
            amp: AmpState {
                listener_fd: 10,
                link: Some(LinkState {
                    fd: 11,
                    id: 3,
                    unread: vec![0, 0],
                }),
                outbox: vec![4, 5],
            },
            game: Some(GameState {
                pid: 1234,
                running_secs: 12.5,
                started_once: true,
                stdout_fd: Some(12),
                stderr_fd: None,
                restarts: 2,
                crashes: 1,
            }),
            dropped: vec![Dropped {
                sessid: 3,
                protocol_key: "ssh".into(),
                why: "SSH sessions cannot be carried".into(),
            }],
            evennia: Some(EvenniaState {
                pid: Some(99),
                info: Some(vec![0x80, 4]),
                command: vec!["evennia".into()],
                epochs: 2,
                linked: Some(2),
            }),
            ajax: vec![AjaxState {
                record: Session::init_session(5, "webclient/ajax", "127.0.0.1:7000"),
                registered: true,
                csessid: "ab".repeat(16),
                cuid: "tab1".into(),
                core: vec![1, 2],
                poll: vec![3],
                counted_ip: None,
            }],
            bots: vec![crate::session::irc::BotConfig {
                network: "127.0.0.1".into(),
                port: 6667,
                channel: "#plaza".into(),
                nick: "portalbot".into(),
                uid: Some(3),
                tls: false,
                password: None,
            }],
        }
    }

    #[test]
    fn a_handover_comes_back_as_it_went() {
        // One sample: its session records carry the time they were made.
        let sample = sample();
        let bytes = sample.encode().unwrap();
        assert_eq!(&bytes[..8], MAGIC);
        assert_eq!(Handover::decode(&bytes).unwrap(), sample);
        assert_eq!(Handover::total_len(&bytes).unwrap(), bytes.len());
    }

    #[test]
    fn an_ssh_session_is_carried_and_an_oversized_ssh_state_refused() {
        let mut h = sample();
        h.sessions[0].transport = TransportState::Ssh(vec![1, 2, 3]);
        let bytes = h.encode().unwrap();
        assert_eq!(Handover::decode(&bytes).unwrap(), h);
        h.sessions[0].transport = TransportState::Ssh(vec![0; crate::ssh::MAX_CARRIED + 1]);
        let bytes = h.encode().unwrap();
        assert!(matches!(
            Handover::decode(&bytes),
            Err(FormatError::Invalid(_))
        ));
    }

    #[test]
    fn a_version_1_file_from_an_older_portal_is_read() {
        // Version 1 is version 2 without SSH sessions.
        let sample = sample();
        let mut bytes = sample.encode().unwrap();
        bytes[8..12].copy_from_slice(&1u32.to_le_bytes());
        assert_eq!(Handover::decode(&bytes).unwrap(), sample);
    }

    #[test]
    fn every_truncation_is_refused_without_panic() {
        let bytes = sample().encode().unwrap();
        for cut in 0..bytes.len() {
            assert!(Handover::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn another_version_or_magic_or_a_huge_length_is_refused() {
        let mut bytes = sample().encode().unwrap();
        bytes[8] = 3;
        assert_eq!(Handover::decode(&bytes), Err(FormatError::Version(3)));
        let mut bytes = sample().encode().unwrap();
        bytes[0] = b'X';
        assert_eq!(Handover::decode(&bytes), Err(FormatError::NotAHandover));
        let mut bytes = sample().encode().unwrap();
        bytes[12..20].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(
            Handover::decode(&bytes),
            Err(FormatError::TooLarge(_))
        ));
    }

    #[test]
    fn corrupt_bodies_never_panic() {
        let bytes = sample().encode().unwrap();
        for i in HEADER..bytes.len() {
            for flip in [0x01u8, 0x80, 0xFF] {
                let mut corrupt = bytes.clone();
                corrupt[i] ^= flip;
                let _ = Handover::decode(&corrupt);
            }
        }
    }

    #[test]
    fn a_huge_count_in_a_small_body_allocates_nothing_big() {
        // A Vec length of 2^60 with no elements behind it.
        let mut body = postcard::to_stdvec(&1.0f64).unwrap();
        body.extend_from_slice(&[0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F]);
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&VERSION.to_le_bytes());
        bytes.extend_from_slice(&(body.len() as u64).to_le_bytes());
        bytes.extend_from_slice(&body);
        assert!(matches!(
            Handover::decode(&bytes),
            Err(FormatError::Body(_))
        ));
    }

    #[test]
    fn numbers_no_live_portal_sends_are_refused() {
        let mut twice = sample();
        twice.sessions[0].fd = 5;
        assert!(matches!(twice.check(), Err(FormatError::Invalid(_))));
        let mut stdin = sample();
        stdin.amp.listener_fd = 0;
        assert!(matches!(stdin.check(), Err(FormatError::Invalid(_))));
        let mut twice_ajax = sample();
        twice_ajax.ajax[0].record.sessid = 7;
        assert!(matches!(twice_ajax.check(), Err(FormatError::Invalid(_))));
        let mut future = sample();
        future.next_sessid = 7;
        assert!(matches!(future.check(), Err(FormatError::Invalid(_))));
        let mut orphan = sample();
        orphan.queued[0].listener = 4;
        assert!(matches!(orphan.check(), Err(FormatError::Invalid(_))));
        let bytes = future.encode().unwrap();
        assert!(Handover::decode(&bytes).is_err());
    }
}
