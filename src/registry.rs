//! The session registry: the seed's `PortalSessionHandler`.
//!
//! It maps sessid → the session's sync record and the [`WorkerHandle`]
//! that reaches its worker thread, and it is the one place that adds,
//! changes and removes sessions. Every change it makes is also sent to the
//! AMP writer's [`Inbox`] (PCONN, PCONNSYNC, PDISCONN, input), which alone
//! decides what the game hears and when (see [`crate::amp::outbox`]).
//!
//! Lock discipline: one mutex over the map, held only to read or update
//! it. Lookups clone the handles they need and release the lock before
//! sending to a worker or waking it; sends to the writer happen after the
//! lock is released too.
//!
//! Who calls what:
//! - workers: [`Registry::connect`], [`Registry::sync_flags`],
//!   [`Registry::data_in`], [`Registry::disconnect`];
//! - the AMP reader (messages from the game): `server_*` and
//!   [`Registry::data_out`];
//! - the AMP writer: [`Registry::snapshot`] for a sync reply,
//!   [`Registry::tell`] and [`Registry::announce_all`] for notices;
//! - the acceptor and `portal status`: counts, [`Registry::disconnect_all`].

use crate::amp::inbox::{Inbox, ToWriter};
use crate::session::handle::WorkerHandle;
use crate::wire::flags::ProtocolFlags;
use crate::wire::message::Command;
use crate::wire::session::Session;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

/// One registered session.
struct Entry {
    session: Session,
    worker: WorkerHandle,
}

/// The portal's sessions.
pub struct Registry {
    sessions: Mutex<HashMap<u64, Entry>>,
    amp: Inbox,
    next_sessid: AtomicU64,
}

impl Registry {
    /// An empty registry that reports to the AMP writer through `amp`.
    pub fn new(amp: Inbox) -> Registry {
        Registry {
            sessions: Mutex::new(HashMap::new()),
            amp,
            next_sessid: AtomicU64::new(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Entry>> {
        // Every update is a single insert, remove or field write, so the
        // map is consistent even after a panic elsewhere: carry on.
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    // ---- the seed's methods, called from the client side ----

    /// A sessid unique for this portal run; never reused.
    pub fn generate_sessid(&self) -> u64 {
        self.next_sessid.fetch_add(1, Ordering::Relaxed)
    }

    /// Register a new session and tell the game (PCONN).
    pub fn connect(&self, session: Session, worker: WorkerHandle) {
        let record = session.clone();
        let entry = Entry { session, worker };
        self.lock().insert(record.sessid, entry);
        self.amp.send(ToWriter::Connect(record));
    }

    /// Register a session the previous portal carried over (`portal
    /// upgrade`): the game knows it already, so nothing is sent.
    pub fn adopt(&self, session: Session, worker: WorkerHandle) {
        let sessid = session.sessid;
        self.lock().insert(sessid, Entry { session, worker });
    }

    /// Give sessids from `next` on (after an upgrade: never reuse one).
    pub fn continue_sessids_from(&self, next: u64) {
        self.next_sessid.fetch_max(next, Ordering::Relaxed);
    }

    /// The next sessid that would be given (for the hand-over).
    pub fn next_sessid(&self) -> u64 {
        self.next_sessid.load(Ordering::Relaxed)
    }

    /// Update a session's protocol flags from borrowed ones (only those
    /// that changed are copied) and tell the game (PCONNSYNC).
    pub fn sync_flags(&self, sessid: u64, protocol_flags: &ProtocolFlags) {
        let record = {
            let mut sessions = self.lock();
            let Some(entry) = sessions.get_mut(&sessid) else {
                return;
            };
            entry.session.protocol_flags.merge(protocol_flags);
            entry.session.clone()
        };
        self.amp.send(ToWriter::ConnSync(record));
    }

    /// The client closed (or was closed by the portal): forget it and tell
    /// the game (PDISCONN).
    pub fn disconnect(&self, sessid: u64) {
        if self.lock().remove(&sessid).is_some() {
            self.amp.send(ToWriter::Disconnect(sessid));
        }
    }

    /// Close every session with `reason` and tell the game (PDISCONNALL).
    pub fn disconnect_all(&self, reason: &str) {
        let entries: Vec<Entry> = self.lock().drain().map(|(_, e)| e).collect();
        for entry in entries {
            entry.worker.close(reason);
        }
        self.amp.send(ToWriter::DisconnectAll);
    }

    /// Input from a client, already through its worker's size and rate
    /// limits: counted in the record, then to the AMP writer, which sends
    /// it or holds it in order.
    pub fn data_in(&self, sessid: u64, commands: Vec<Command>, visible: bool) {
        let at = std::time::Instant::now();
        let now = crate::wire::session::unix_now();
        {
            let mut sessions = self.lock();
            let Some(entry) = sessions.get_mut(&sessid) else {
                return;
            };
            for _ in &commands {
                entry.session.note_command(now, visible);
            }
        }
        self.amp.send(ToWriter::Input {
            sessid,
            commands,
            at,
        });
    }

    // ---- the seed's methods, called on behalf of the game ----

    /// Output from the game for one session (timed from here, just read
    /// off the link, to its write to the player's socket).
    pub fn data_out(&self, sessid: u64, commands: Vec<Command>) {
        let read_at = std::time::Instant::now();
        match self.handle(sessid) {
            Some(worker) => worker.send_out(commands, read_at),
            None => log::debug!("data_out for unknown session {sessid}"),
        }
    }

    /// The game closes one session, showing `reason` first (SDISCONN).
    pub fn server_disconnect(&self, sessid: u64, reason: &str) {
        let removed = self.lock().remove(&sessid);
        if let Some(entry) = removed {
            entry.worker.close(reason);
            self.amp.send(ToWriter::Forget(sessid));
        }
    }

    /// The game closes every session (SDISCONNALL).
    pub fn server_disconnect_all(&self, reason: &str) {
        let entries: Vec<(u64, Entry)> = self.lock().drain().collect();
        for (sessid, entry) in entries {
            entry.worker.close(reason);
            self.amp.send(ToWriter::Forget(sessid));
        }
    }

    /// The game says a session logged in (SLOGIN): load its record (the
    /// game's fields; see [`Session::load_game_data`]).
    pub fn server_logged_in(&self, data: &Session) {
        let changed = {
            let mut sessions = self.lock();
            sessions
                .get_mut(&data.sessid)
                .and_then(|entry| load_from_game(entry, data))
        };
        if let Some(changes) = changed {
            changes.deliver();
        }
    }

    /// The game pushes session records (SSYNC); with `clean`, sessions it
    /// does not list are closed.
    pub fn server_session_sync(&self, sessions: &[Session], clean: bool) {
        let mut flag_changes = Vec::new();
        let mut dropped = Vec::new();
        {
            let mut map = self.lock();
            for data in sessions {
                if let Some(entry) = map.get_mut(&data.sessid) {
                    flag_changes.extend(load_from_game(entry, data));
                }
            }
            if clean {
                let known: std::collections::HashSet<u64> =
                    sessions.iter().map(|s| s.sessid).collect();
                let gone: Vec<u64> = map
                    .keys()
                    .filter(|id| !known.contains(id))
                    .copied()
                    .collect();
                dropped.extend(
                    gone.into_iter()
                        .filter_map(|id| map.remove(&id).map(|e| (id, e))),
                );
            }
        }
        for changes in flag_changes {
            changes.deliver();
        }
        for (sessid, entry) in dropped {
            entry
                .worker
                .close("Your session is no longer known to the game.");
            self.amp.send(ToWriter::Forget(sessid));
        }
    }

    // ---- lookups ----

    /// Sessions logged in, or all sessions with `include_unloggedin`.
    pub fn count_loggedin(&self, include_unloggedin: bool) -> usize {
        self.lock()
            .values()
            .filter(|e| include_unloggedin || e.session.logged_in)
            .count()
    }

    /// Every session of one browser (web clients share a `csessid`).
    pub fn sessions_from_csessid(&self, csessid: &str) -> Vec<Session> {
        self.lock()
            .values()
            .filter(|e| e.session.csessid.as_deref() == Some(csessid))
            .map(|e| e.session.clone())
            .collect()
    }

    /// Sessions per protocol key.
    pub fn sessions_by_protocol(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for entry in self.lock().values() {
            *counts
                .entry(entry.session.protocol_key.clone())
                .or_insert(0) += 1;
        }
        counts
    }

    /// How many sessions each client address (IP, without the port) has.
    pub fn sessions_by_address(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for entry in self.lock().values() {
            let address = &entry.session.address;
            let ip = match address.parse::<std::net::SocketAddr>() {
                Ok(addr) => addr.ip().to_string(),
                Err(_) => address.clone(),
            };
            *counts.entry(ip).or_insert(0) += 1;
        }
        counts
    }

    /// A copy of one session's record.
    pub fn session(&self, sessid: u64) -> Option<Session> {
        self.lock().get(&sessid).map(|e| e.session.clone())
    }

    /// A copy of every record (the sync reply).
    pub fn snapshot(&self) -> Vec<Session> {
        self.lock().values().map(|e| e.session.clone()).collect()
    }

    /// The handle of one session's worker.
    pub fn handle(&self, sessid: u64) -> Option<WorkerHandle> {
        self.lock().get(&sessid).map(|e| e.worker.clone())
    }

    /// A line of text to one session.
    pub fn tell(&self, sessid: u64, text: &str) {
        if let Some(worker) = self.handle(sessid) {
            worker.text(text);
        }
    }

    /// A line of text to every session.
    pub fn announce_all(&self, message: &str) {
        let workers: Vec<WorkerHandle> = self.lock().values().map(|e| e.worker.clone()).collect();
        for worker in workers {
            worker.text(message);
        }
    }

    #[cfg(test)]
    fn set_csessid(&self, sessid: u64, csessid: &str) {
        if let Some(entry) = self.lock().get_mut(&sessid) {
            entry.session.csessid = Some(csessid.into());
        }
    }
}

/// What a record from the game changed that its worker must hear: the
/// protocol flags the game set (say, a screen reader toggle; the worker
/// renders with them) and whether the player is now logged in (the
/// worker's login deadline).
struct Changes {
    worker: WorkerHandle,
    flags: Option<ProtocolFlags>,
    logged_in: Option<bool>,
}

impl Changes {
    /// Tell the worker (after the registry's lock is released).
    fn deliver(self) {
        if let Some(flags) = self.flags {
            self.worker.set_flags(flags);
        }
        if let Some(logged_in) = self.logged_in {
            self.worker.logged_in(logged_in);
        }
    }
}

/// Load a record from the game (the game's fields; see
/// [`Session::load_game_data`]) and say what its worker must hear.
fn load_from_game(entry: &mut Entry, data: &Session) -> Option<Changes> {
    let was_logged_in = entry.session.logged_in;
    let flags = data
        .protocol_flags
        .changed_from(&entry.session.protocol_flags);
    entry.session.load_game_data(data);
    let logged_in = entry.session.logged_in;
    let changes = Changes {
        worker: entry.worker.clone(),
        flags: (!flags.is_empty()).then_some(flags),
        logged_in: (logged_in != was_logged_in).then_some(logged_in),
    };
    (changes.flags.is_some() || changes.logged_in.is_some()).then_some(changes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::handle::{test_handle, Mail, ToWorker};

    struct Fixture {
        registry: Registry,
        amp: crate::amp::inbox::InboxReceiver,
    }

    fn fixture() -> Fixture {
        let (inbox, amp) = Inbox::new();
        Fixture {
            registry: Registry::new(inbox),
            amp,
        }
    }

    type Worker = (u64, Mail, crate::session::waiter::Waiter);

    fn session(f: &Fixture) -> Worker {
        let (handle, rx, waiter) = test_handle();
        let sessid = f.registry.generate_sessid();
        let record = Session::init_session(sessid, "telnet", "127.0.0.1:1");
        f.registry.connect(record, handle);
        (sessid, rx, waiter)
    }

    fn texts(rx: &Mail) -> Vec<String> {
        rx.try_iter()
            .flat_map(|m| match m {
                ToWorker::Out { commands, .. } => commands
                    .iter()
                    .filter_map(|c| c.first_str().map(str::to_owned))
                    .collect(),
                ToWorker::Close(reason) => vec![format!("CLOSE {reason}")],
                ToWorker::Flags(flags) => vec![format!("FLAGS {flags:?}")],
                ToWorker::LoggedIn(on) => vec![format!("LOGGED IN {on}")],
                ToWorker::Ajax(mail) => vec![format!("AJAX {mail:?}")],
                ToWorker::Freeze(_) => vec!["FREEZE".into()],
            })
            .collect()
    }

    #[test]
    fn sessids_are_never_reused() {
        let f = fixture();
        let ids: Vec<u64> = (0..100).map(|_| f.registry.generate_sessid()).collect();
        let mut unique = ids.clone();
        unique.dedup();
        assert_eq!(ids, unique);
    }

    #[test]
    fn every_change_reaches_the_writer_in_order() {
        let f = fixture();
        let (sessid, _rx, _w) = session(&f);
        f.registry
            .data_in(sessid, vec![Command::text("look")], true);
        f.registry.disconnect(sessid);
        f.registry
            .data_in(sessid, vec![Command::text("late")], true);
        let got: Vec<String> = f
            .amp
            .try_iter()
            .map(|m| match m {
                ToWriter::Connect(s) => format!("connect {}", s.sessid),
                ToWriter::Input { commands, .. } => commands[0].first_str().unwrap_or("").into(),
                ToWriter::Disconnect(id) => format!("disconnect {id}"),
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(
            got,
            [
                format!("connect {sessid}"),
                "look".into(),
                format!("disconnect {sessid}")
            ]
        );
        assert_eq!(f.registry.count_loggedin(true), 0);
    }

    #[test]
    fn input_is_counted_in_the_record() {
        let f = fixture();
        let (sessid, _rx, _w) = session(&f);
        f.registry.data_in(sessid, vec![Command::text("a")], true);
        f.registry
            .data_in(sessid, vec![Command::text("idle")], false);
        let record = f.registry.session(sessid).unwrap();
        assert_eq!(record.cmd_total, 2);
    }

    #[test]
    fn session_sync_merges_and_clean_closes_unknown_sessions() {
        let f = fixture();
        let (a, _rx_a, _pa) = session(&f);
        let (b, rx_b, _pb) = session(&f);
        let mut record = f.registry.session(a).unwrap();
        record.logged_in = true;
        record.uname = Some("anna".into());
        f.registry.server_session_sync(&[record], true);
        f.registry.set_csessid(a, "browser-1");
        assert_eq!(f.registry.count_loggedin(false), 1);
        assert_eq!(f.registry.count_loggedin(true), 1, "b was dropped");
        assert!(texts(&rx_b)[0].starts_with("CLOSE"));
        assert!(f
            .amp
            .try_iter()
            .any(|m| matches!(m, ToWriter::Forget(id) if id == b)));
        let found = f.registry.sessions_from_csessid("browser-1");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].uname.as_deref(), Some("anna"));
    }

    #[test]
    fn server_disconnect_shows_the_reason_and_does_not_report_back() {
        let f = fixture();
        let (sessid, rx, _w) = session(&f);
        f.registry.server_disconnect(sessid, "Bye now");
        assert_eq!(texts(&rx), ["CLOSE Bye now"]);
        assert!(f.registry.session(sessid).is_none());
        f.registry.disconnect(sessid);
        let last = f.amp.try_iter().last();
        assert!(
            matches!(last, Some(ToWriter::Forget(id)) if id == sessid),
            "{last:?}"
        );
    }

    #[test]
    fn flags_the_game_changes_go_to_the_worker() {
        let f = fixture();
        let (sessid, rx, _w) = session(&f);
        let mut record = f.registry.session(sessid).unwrap();
        record
            .protocol_flags
            .insert("SCREENREADER".into(), crate::wire::value::Value::Bool(true));
        f.registry.server_logged_in(&record);
        let told = texts(&rx);
        assert!(told[0].contains("screenreader: Some(true)"), "{told:?}");
        f.registry.server_logged_in(&record);
        assert!(texts(&rx).is_empty(), "unchanged flags are not sent again");
    }

    #[test]
    fn announce_all_reaches_every_session() {
        let f = fixture();
        let (_a, rx_a, _pa) = session(&f);
        let (_b, rx_b, _pb) = session(&f);
        f.registry.announce_all("hear ye");
        assert_eq!(texts(&rx_a), ["hear ye"]);
        assert_eq!(texts(&rx_b), ["hear ye"]);
    }
}
