//! The session record both sides keep for every connection (the seed's
//! `Session`).
//!
//! The portal's registry ([`crate::registry`]) holds one [`Session`] per
//! connected client; the game keeps its own copy through the game-side
//! library ([`crate::game`]). The two are kept equal by the sync messages
//! of the AMP link: `get_sync_data` produces the record sent over the link
//! and `load_sync_data` applies one received from the other side.

use crate::wire::flags::ProtocolFlags;
use crate::wire::value::Map;
use serde::{Deserialize, Serialize};
use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch, as a float (the unit of every time field).
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// One connection's sync record.
///
/// Field order is part of the AMP wire format: only append new fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Session {
    /// Portal-wide unique id, never reused during one portal run.
    pub sessid: u64,
    /// `telnet`, `telnet/ssl`, `webclient/websocket`, …
    pub protocol_key: String,
    /// The client's address, `ip:port`.
    pub address: String,
    /// Browser session id for web clients (all tabs of one browser share it).
    pub csessid: Option<String>,
    /// The game's account id once logged in.
    pub uid: Option<i64>,
    /// The account name once logged in.
    pub uname: Option<String>,
    pub logged_in: bool,
    /// The game's puppet (character) id, if any.
    pub puid: Option<i64>,
    /// When the connection was made (Unix seconds).
    pub conn_time: f64,
    /// When the last command arrived, idle markers included.
    pub cmd_last: f64,
    /// When the last visible (non-idle) command arrived.
    pub cmd_last_visible: f64,
    /// Commands received on this session.
    pub cmd_total: u64,
    /// What the client can do (screen size, colours, encoding, …). Merged,
    /// never replaced, by [`Session::load_sync_data`]. Boxed so the record,
    /// and every message and queue slot that carries one, stays small.
    pub protocol_flags: Box<ProtocolFlags>,
    /// Free-form data the game keeps on the session.
    pub server_data: Map,
}

impl Session {
    /// Start a fresh record for a new connection.
    pub fn init_session(sessid: u64, protocol_key: &str, address: &str) -> Session {
        let now = unix_now();
        let mut session = Session {
            sessid,
            protocol_key: protocol_key.to_owned(),
            address: address.to_owned(),
            conn_time: now,
            cmd_last: now,
            cmd_last_visible: now,
            ..Session::default()
        };
        session.protocol_flags = default_protocol_flags();
        session
    }

    /// The record to send to the other side.
    pub fn get_sync_data(&self) -> Session {
        self.clone()
    }

    /// Apply a record from the other side: `protocol_flags` are merged key by
    /// key, every other field is replaced. The sessid never changes.
    pub fn load_sync_data(&mut self, data: &Session) {
        let flags = std::mem::take(&mut self.protocol_flags);
        let sessid = self.sessid;
        *self = data.clone();
        self.sessid = sessid;
        let incoming = std::mem::replace(&mut self.protocol_flags, flags);
        self.protocol_flags.merge(&incoming);
    }

    /// Apply a record from the game on the portal side: the game owns who
    /// is logged in (uid, uname, logged_in, puid) and `server_data`;
    /// `protocol_flags` merge; the connection facts and counters the portal
    /// keeps (address, browser id, times, cmd_total) stay ours, so an older
    /// record from the game never rolls them back.
    pub fn load_game_data(&mut self, data: &Session) {
        self.uid = data.uid;
        self.uname = data.uname.clone();
        self.logged_in = data.logged_in;
        self.puid = data.puid;
        self.server_data = data.server_data.clone();
        self.protocol_flags.merge(&data.protocol_flags);
    }

    /// Record one command from the client; `visible` is false for idle
    /// markers (NUL-only lines, sent to the game as `idle`).
    pub fn note_command(&mut self, now: f64, visible: bool) {
        self.cmd_last = now;
        self.cmd_total += 1;
        if visible {
            self.cmd_last_visible = now;
        }
    }
}

/// The flags every session starts with, before any negotiation.
fn default_protocol_flags() -> Box<ProtocolFlags> {
    Box::new(ProtocolFlags {
        encoding: Some("utf-8".into()),
        screenwidth: Some(78),
        screenheight: Some(45),
        ansi: Some(false),
        xterm256: Some(false),
        utf8: Some(true),
        ..ProtocolFlags::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::value::Value;

    #[test]
    fn load_sync_data_merges_flags_and_replaces_the_rest() {
        let mut ours = Session::init_session(7, "telnet", "127.0.0.1:5000");
        ours.protocol_flags.insert("NAWS".into(), Value::Bool(true));
        let mut theirs = Session::init_session(99, "telnet", "127.0.0.1:5000");
        theirs.uname = Some("anna".into());
        theirs.logged_in = true;
        theirs.uid = Some(3);
        *theirs.protocol_flags = ProtocolFlags::default();
        theirs
            .protocol_flags
            .insert("ANSI".into(), Value::Bool(true));
        ours.load_sync_data(&theirs);
        assert_eq!(ours.sessid, 7, "sessid is never replaced");
        assert_eq!(ours.uname.as_deref(), Some("anna"));
        assert!(ours.logged_in);
        assert_eq!(ours.protocol_flags.get("NAWS"), Some(Value::Bool(true)));
        assert_eq!(ours.protocol_flags.get("ANSI"), Some(Value::Bool(true)));
        assert_eq!(
            ours.protocol_flags.get("ENCODING"),
            Some(Value::from("utf-8"))
        );
    }

    #[test]
    fn load_game_data_keeps_the_portals_counters() {
        let mut ours = Session::init_session(7, "telnet", "127.0.0.1:5000");
        ours.note_command(500.0, true);
        let mut theirs = Session::init_session(7, "telnet", "elsewhere");
        theirs.logged_in = true;
        theirs.uname = Some("anna".into());
        theirs.server_data.insert("hp".into(), Value::Int(3));
        ours.load_game_data(&theirs);
        assert!(ours.logged_in);
        assert_eq!(ours.uname.as_deref(), Some("anna"));
        assert_eq!(ours.cmd_total, 1);
        assert_eq!(ours.cmd_last, 500.0);
        assert_eq!(ours.address, "127.0.0.1:5000");
        assert_eq!(ours.server_data.get("hp"), Some(&Value::Int(3)));
    }

    #[test]
    fn note_command_counts_and_separates_idle_markers() {
        let mut s = Session::init_session(1, "telnet", "a");
        s.note_command(100.0, true);
        s.note_command(200.0, false);
        assert_eq!(s.cmd_total, 2);
        assert_eq!(s.cmd_last, 200.0);
        assert_eq!(s.cmd_last_visible, 100.0);
    }
}
