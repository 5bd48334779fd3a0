//! The game server's copy of every session record.
//!
//! The portal is the authority on connections (who is connected, from where,
//! with which client abilities); the game is the authority on who is logged
//! in as whom. [`ServerSessions`] applies the portal's session messages to a
//! map of [`Session`] records so a game can look sessions up by sessid and
//! send them back in a `SessionSync` before it stops.

use crate::wire::message::PortalMsg;
use crate::wire::session::Session;
use std::collections::HashMap;

/// sessid → [`Session`], kept in step with the portal's registry.
#[derive(Debug, Default, Clone)]
pub struct ServerSessions {
    map: HashMap<u64, Session>,
}

impl ServerSessions {
    /// An empty registry.
    pub fn new() -> ServerSessions {
        ServerSessions::default()
    }

    /// Apply one portal message if it is about sessions (`Connect`,
    /// `ConnSync`, `Disconnect`, `DisconnectAll`, `Sync`). Returns whether it
    /// was one; other messages are left to the caller.
    pub fn apply(&mut self, msg: &PortalMsg) -> bool {
        match msg {
            PortalMsg::Connect { session } => self.connect(session.clone()),
            PortalMsg::ConnSync { session } => self.conn_sync(session),
            PortalMsg::Disconnect { sessid } => {
                self.disconnect(*sessid);
            }
            PortalMsg::DisconnectAll => self.disconnect_all(),
            PortalMsg::Sync { sessions, .. } => self.sync(sessions.clone()),
            _ => return false,
        }
        true
    }

    /// (PCONN) A new session: insert it, replacing any stale record.
    pub fn connect(&mut self, session: Session) {
        self.map.insert(session.sessid, session);
    }

    /// (PCONNSYNC) The portal's view of a session changed (negotiation
    /// finished, window resized). The connection data is loaded with
    /// [`Session::load_sync_data`]; the fields the game owns (`uid`,
    /// `uname`, `logged_in`, `puid`, `server_data`) are kept, so a ConnSync
    /// crossing a `Login` on the wire cannot log the player out again.
    /// An unknown sessid is inserted as it is.
    pub fn conn_sync(&mut self, session: &Session) {
        let Some(ours) = self.map.get_mut(&session.sessid) else {
            self.map.insert(session.sessid, session.clone());
            return;
        };
        let owned = GameOwned::take(ours);
        ours.load_sync_data(session);
        owned.restore(ours);
    }

    /// (PDISCONN) A session closed; returns its last record.
    pub fn disconnect(&mut self, sessid: u64) -> Option<Session> {
        self.map.remove(&sessid)
    }

    /// (PDISCONNALL) Every session closed.
    pub fn disconnect_all(&mut self) {
        self.map.clear();
    }

    /// (PSYNC reply) Replace every record with the portal's list.
    pub fn sync(&mut self, sessions: Vec<Session>) {
        self.map = sessions.into_iter().map(|s| (s.sessid, s)).collect();
    }

    /// The record of one session.
    pub fn get(&self, sessid: u64) -> Option<&Session> {
        self.map.get(&sessid)
    }

    /// The record of one session, to change it.
    pub fn get_mut(&mut self, sessid: u64) -> Option<&mut Session> {
        self.map.get_mut(&sessid)
    }

    /// Every record, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Session> {
        self.map.values()
    }

    /// Every session of one browser (the seed's `sessions_from_csessid`):
    /// the records whose `csessid` is exactly `csessid`, ordered by sessid.
    /// An empty `csessid` names no browser and finds nothing.
    pub fn from_csessid(&self, csessid: &str) -> Vec<&Session> {
        if csessid.is_empty() {
            return Vec::new();
        }
        let mut found: Vec<&Session> = self
            .map
            .values()
            .filter(|s| s.csessid.as_deref() == Some(csessid))
            .collect();
        found.sort_by_key(|s| s.sessid);
        found
    }

    /// Every logged-in record, in no particular order.
    pub fn logged_in(&self) -> impl Iterator<Item = &Session> {
        self.map.values().filter(|s| s.logged_in)
    }

    /// How many sessions are logged in.
    pub fn count_logged_in(&self) -> usize {
        self.logged_in().count()
    }

    /// How many sessions there are.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether there are no sessions.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Every record as sync data, ordered by sessid (for `SessionSync`).
    pub fn records(&self) -> Vec<Session> {
        let mut all: Vec<Session> = self.map.values().map(Session::get_sync_data).collect();
        all.sort_by_key(|s| s.sessid);
        all
    }
}

/// The fields of a record that only the game changes.
struct GameOwned {
    uid: Option<i64>,
    uname: Option<String>,
    logged_in: bool,
    puid: Option<i64>,
    server_data: crate::wire::value::Map,
}

impl GameOwned {
    fn take(session: &mut Session) -> GameOwned {
        GameOwned {
            uid: session.uid,
            uname: session.uname.take(),
            logged_in: session.logged_in,
            puid: session.puid,
            server_data: std::mem::take(&mut session.server_data),
        }
    }

    fn restore(self, session: &mut Session) {
        session.uid = self.uid;
        session.uname = self.uname;
        session.logged_in = self.logged_in;
        session.puid = self.puid;
        session.server_data = self.server_data;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::message::{Command, StartMode};
    use crate::wire::value::Value;

    fn record(sessid: u64) -> Session {
        Session::init_session(sessid, "telnet", "127.0.0.1:1")
    }

    fn logged_in(sessid: u64, name: &str) -> Session {
        let mut s = record(sessid);
        s.uid = Some(1);
        s.uname = Some(name.into());
        s.logged_in = true;
        s
    }

    #[test]
    fn connect_then_disconnect_forgets_the_session() {
        let mut reg = ServerSessions::new();
        assert!(reg.apply(&PortalMsg::Connect { session: record(1) }));
        assert_eq!(reg.len(), 1);
        assert!(reg.apply(&PortalMsg::Disconnect { sessid: 1 }));
        assert!(reg.is_empty());
    }

    #[test]
    fn conn_sync_updates_flags_but_keeps_the_login() {
        let mut reg = ServerSessions::new();
        reg.connect(logged_in(1, "anna"));
        let mut update = record(1);
        update
            .protocol_flags
            .insert("ANSI".into(), Value::Bool(true));
        reg.apply(&PortalMsg::ConnSync { session: update });
        let s = reg.get(1).unwrap();
        assert!(s.logged_in);
        assert_eq!(s.uname.as_deref(), Some("anna"));
        assert_eq!(s.protocol_flags.get("ANSI"), Some(Value::Bool(true)));
    }

    #[test]
    fn conn_sync_for_an_unknown_session_inserts_it() {
        let mut reg = ServerSessions::new();
        reg.apply(&PortalMsg::ConnSync { session: record(4) });
        assert!(reg.get(4).is_some());
    }

    #[test]
    fn sync_replaces_everything() {
        let mut reg = ServerSessions::new();
        reg.connect(record(1));
        reg.connect(record(2));
        reg.apply(&PortalMsg::Sync {
            mode: StartMode::Reload,
            sessions: vec![logged_in(3, "bob")],
        });
        assert_eq!(reg.len(), 1);
        assert_eq!(reg.count_logged_in(), 1);
        assert!(reg.get(1).is_none());
    }

    #[test]
    fn disconnect_all_clears_and_other_messages_are_not_applied() {
        let mut reg = ServerSessions::new();
        reg.connect(record(1));
        let data = PortalMsg::DataIn {
            sessid: 1,
            commands: vec![Command::text("look")],
        };
        assert!(!reg.apply(&data));
        assert!(reg.apply(&PortalMsg::DisconnectAll));
        assert!(reg.is_empty());
    }

    fn tab(sessid: u64, csessid: Option<&str>) -> Session {
        let mut s = Session::init_session(sessid, "webclient/websocket", "127.0.0.1:1");
        s.csessid = csessid.map(str::to_owned);
        s
    }

    #[test]
    fn from_csessid_finds_every_tab_of_one_browser_only() {
        let mut reg = ServerSessions::new();
        reg.connect(tab(4, Some("browser-a")));
        reg.connect(tab(2, Some("browser-a")));
        reg.connect(tab(3, Some("browser-b")));
        reg.connect(tab(5, Some("")));
        reg.connect(record(1));
        let ids = |found: Vec<&Session>| found.iter().map(|s| s.sessid).collect::<Vec<u64>>();
        assert_eq!(ids(reg.from_csessid("browser-a")), [2, 4]);
        assert_eq!(ids(reg.from_csessid("browser-b")), [3]);
        assert!(reg.from_csessid("browser-c").is_empty());
        assert!(reg.from_csessid("").is_empty(), "empty names no browser");
    }

    #[test]
    fn records_are_ordered_by_sessid() {
        let mut reg = ServerSessions::new();
        for id in [5, 1, 3] {
            reg.connect(record(id));
        }
        let ids: Vec<u64> = reg.records().iter().map(|s| s.sessid).collect();
        assert_eq!(ids, [1, 3, 5]);
    }
}
