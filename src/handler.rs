//! The session registry: the seed's `PortalSessionHandler`.
//!
//! One `Handler` is shared (in an `Arc`) by the acceptor, every session
//! worker, the AMP reader and writer threads and the supervisor. It maps
//! sessid → an entry (the session's sync record, the handle that reaches
//! its worker thread, and input held while the game is away) and knows the
//! state of the link to the game.
//!
//! Who calls what:
//! - workers: [`Handler::connect`], [`Handler::sync`], [`Handler::data_in`],
//!   [`Handler::disconnect`];
//! - the AMP reader (messages from the game): `server_*`, [`Handler::data_out`],
//!   and the link events [`Handler::link_up`], [`Handler::sync_request`],
//!   [`Handler::link_down`];
//! - the supervisor: [`Handler::begin_restart`], [`Handler::game_exited`];
//! - the acceptor: [`Handler::generate_sessid`], [`Handler::flush_held`],
//!   [`Handler::shutdown`].
//!
//! Input never skips the queue: a command goes to the AMP writer only when
//! the link is synced and nothing older from that session is held, so a
//! session's input always reaches the game in the order it was typed.

use crate::amp::message::{Command, PortalMsg, StartMode};
use crate::config::{fill, Config};
use crate::session::worker::{self, WorkerHandle};
use crate::session::Session;
use crate::stats::Stats;
use crate::throttle::{IpRefusal, PerIpLimits};
use crate::value::{Map, Value};
use crossbeam_channel::{Sender, TrySendError};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

/// Requests to the portal's main loop (the acceptor) and the supervisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Shut the portal down gracefully.
    Shutdown,
    /// Restart the game server, keeping players connected.
    ReloadGame,
    /// Re-read portal.conf.
    ReloadConfig,
}

/// Something that delivers [`Control`] requests to the main loop.
pub type ControlSender = Arc<dyn Fn(Control) + Send + Sync>;

/// Where the link to the game stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    /// No game linked.
    Down,
    /// A game passed the hello (or is being stopped): input is held.
    Linked(u64),
    /// The game has the sessions; input flows.
    Ready(u64),
}

/// One registered session.
struct Entry {
    session: Session,
    worker: WorkerHandle,
    held: VecDeque<Command>,
    /// Input sent to the game and not yet confirmed by a heartbeat answer,
    /// tagged with the ping that will confirm it. If the game dies first,
    /// the player is told which commands it may not have run.
    inflight: VecDeque<(u64, Command)>,
    /// The player was told the game is not keeping up; reset when input
    /// flows again.
    told_slow: bool,
}

/// At most this many unconfirmed commands are remembered per session.
const MAX_INFLIGHT: usize = 1000;

struct Registry {
    sessions: HashMap<u64, Entry>,
    link: Link,
    /// Told to the game in the next sync reply.
    next_mode: StartMode,
    /// Players were told the game is away; tell them when it is back.
    away: bool,
    /// The seq of the next heartbeat ping.
    ping_seq: u64,
    /// The ping waiting for its answer, and when it was sent.
    ping_out: Option<(u64, Instant)>,
    /// When the last ping was sent.
    last_ping: Option<Instant>,
}

/// The portal's session registry.
pub struct Handler {
    config: RwLock<Arc<Config>>,
    config_generation: AtomicU64,
    next_sessid: AtomicU64,
    registry: Mutex<Registry>,
    amp_tx: Sender<PortalMsg>,
    control: ControlSender,
    any_held: AtomicBool,
    live_workers: AtomicUsize,
    started_unix: f64,
    started: std::time::Instant,
    stats: Stats,
    ip_limits: Mutex<PerIpLimits>,
}

impl Handler {
    /// A handler sending to the AMP writer through `amp_tx` and asking the
    /// main loop for shutdown/reloads through `control`.
    pub fn new(config: Arc<Config>, amp_tx: Sender<PortalMsg>, control: ControlSender) -> Handler {
        Handler {
            config: RwLock::new(config),
            config_generation: AtomicU64::new(0),
            next_sessid: AtomicU64::new(1),
            registry: Mutex::new(Registry {
                sessions: HashMap::new(),
                link: Link::Down,
                next_mode: StartMode::Start,
                away: false,
                ping_seq: 1,
                ping_out: None,
                last_ping: None,
            }),
            amp_tx,
            control,
            any_held: AtomicBool::new(false),
            live_workers: AtomicUsize::new(0),
            started_unix: crate::session::unix_now(),
            started: std::time::Instant::now(),
            stats: Stats::default(),
            ip_limits: Mutex::new(PerIpLimits::default()),
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> Arc<Config> {
        match self.config.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Put a new configuration in force (SIGHUP).
    pub fn set_config(&self, config: Arc<Config>) {
        match self.config.write() {
            Ok(mut guard) => *guard = config,
            Err(poisoned) => *poisoned.into_inner() = config,
        }
        self.config_generation.fetch_add(1, Ordering::Release);
    }

    /// Bumped by every [`Handler::set_config`], so workers can notice a
    /// reload with one atomic load.
    pub fn config_generation(&self) -> u64 {
        self.config_generation.load(Ordering::Acquire)
    }

    /// When the portal started (Unix seconds; MSSP's UPTIME).
    pub fn started_unix(&self) -> f64 {
        self.started_unix
    }

    /// How long the portal has been up.
    pub fn uptime(&self) -> std::time::Duration {
        self.started.elapsed()
    }

    /// The portal's counters (see [`crate::stats`]).
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Ask the main loop for something.
    pub fn request(&self, control: Control) {
        (self.control)(control);
    }

    fn lock(&self) -> MutexGuard<'_, Registry> {
        // A panic while holding the lock leaves the map consistent (every
        // update is a single insert/remove), so carry on with it.
        self.registry.lock().unwrap_or_else(|p| p.into_inner())
    }

    // ---- the seed's methods, called from the client side ----

    /// A sessid unique for this portal run; never reused.
    pub fn generate_sessid(&self) -> u64 {
        self.next_sessid.fetch_add(1, Ordering::Relaxed)
    }

    /// Register a new session and tell the game (PCONN).
    /// `inbound` is true for players, false for sessions opened for the
    /// game (the login deadline itself is kept by the session's worker).
    pub fn connect(&self, session: Session, worker: WorkerHandle, _inbound: bool) {
        let config = self.config();
        let mut reg = self.lock();
        if reg.away {
            worker.text(&config.messages.game_restarting);
        }
        let linked = matches!(reg.link, Link::Ready(_));
        let record = session.clone();
        reg.sessions.insert(
            session.sessid,
            Entry {
                session,
                worker,
                held: VecDeque::new(),
                inflight: VecDeque::new(),
                told_slow: false,
            },
        );
        if linked {
            self.send_amp(PortalMsg::Connect { session: record });
        }
    }

    /// Update a session's protocol flags and tell the game (PCONNSYNC).
    pub fn sync(&self, sessid: u64, protocol_flags: Map) {
        self.sync_flags(sessid, &protocol_flags);
    }

    /// [`Handler::sync`] from borrowed flags: only the ones that changed
    /// are copied into the record.
    pub fn sync_flags<'a>(
        &self,
        sessid: u64,
        protocol_flags: impl IntoIterator<Item = (&'a String, &'a Value)>,
    ) {
        let mut reg = self.lock();
        let linked = matches!(reg.link, Link::Ready(_));
        let Some(entry) = reg.sessions.get_mut(&sessid) else {
            return;
        };
        crate::session::merge_flags(&mut entry.session.protocol_flags, protocol_flags);
        if linked {
            let session = entry.session.clone();
            self.send_amp(PortalMsg::ConnSync { session });
        }
    }

    /// The client closed (or was closed by the portal): forget it and tell
    /// the game (PDISCONN).
    pub fn disconnect(&self, sessid: u64) {
        let mut reg = self.lock();
        if reg.sessions.remove(&sessid).is_some() && matches!(reg.link, Link::Ready(_)) {
            self.send_amp(PortalMsg::Disconnect { sessid });
        }
    }

    /// Close every session with `reason` and tell the game (PDISCONNALL).
    pub fn disconnect_all(&self, reason: &str) {
        let mut reg = self.lock();
        for (_, entry) in reg.sessions.drain() {
            entry.worker.close(reason);
        }
        if matches!(reg.link, Link::Ready(_)) {
            self.send_amp(PortalMsg::DisconnectAll);
        }
    }

    /// Input from a client, already checked against the size and rate
    /// limits by its worker. Goes to the game, or is held in order while
    /// the game is away or not keeping up.
    pub fn data_in(&self, sessid: u64, commands: Vec<Command>, visible: bool) {
        let now = crate::session::unix_now();
        let config = self.config();
        let mut reg = self.lock();
        let ready = matches!(reg.link, Link::Ready(_));
        let epoch = reg.ping_seq;
        let Some(entry) = reg.sessions.get_mut(&sessid) else {
            return;
        };
        for _ in &commands {
            entry.session.note_command(now, visible);
        }
        if ready && entry.held.is_empty() {
            let sent = commands.clone();
            match self.amp_tx.try_send(PortalMsg::DataIn { sessid, commands }) {
                Ok(()) => {
                    note_inflight(entry, epoch, sent);
                    entry.told_slow = false;
                }
                Err(TrySendError::Full(PortalMsg::DataIn { commands, .. })) => {
                    hold(entry, commands, &config, false);
                    tell_slow(entry, &config);
                    self.any_held.store(true, Ordering::Relaxed);
                }
                Err(_) => {}
            }
            return;
        }
        hold(entry, commands, &config, !ready);
        self.any_held.store(true, Ordering::Relaxed);
    }

    /// Put commands the AMP writer could not deliver back at the front of
    /// their session's held queue.
    pub fn requeue(&self, sessid: u64, commands: Vec<Command>) {
        let mut reg = self.lock();
        if let Some(entry) = reg.sessions.get_mut(&sessid) {
            // They never reached the game: not in flight any more.
            let keep = entry.inflight.len().saturating_sub(commands.len());
            entry.inflight.truncate(keep);
            for command in commands.into_iter().rev() {
                entry.held.push_front(command);
            }
            self.any_held.store(true, Ordering::Relaxed);
        }
    }

    /// Send held input on, oldest first, while the link is ready and the
    /// AMP queue has room. Called periodically by the acceptor.
    pub fn flush_held(&self) {
        if !self.any_held.load(Ordering::Relaxed) {
            return;
        }
        let mut reg = self.lock();
        if matches!(reg.link, Link::Ready(_)) {
            let epoch = reg.ping_seq;
            let all_sent = flush_entries(&mut reg.sessions, &self.amp_tx, epoch);
            self.any_held.store(!all_sent, Ordering::Relaxed);
        }
    }

    // ---- the seed's methods, called on behalf of the game ----

    /// Output from the game for one session.
    pub fn data_out(&self, sessid: u64, commands: Vec<Command>) {
        let reg = self.lock();
        match reg.sessions.get(&sessid) {
            Some(entry) => entry.worker.send_out(commands),
            None => log::debug!("data_out for unknown session {sessid}"),
        }
    }

    /// The game closes one session, showing `reason` first (SDISCONN).
    pub fn server_disconnect(&self, sessid: u64, reason: &str) {
        if let Some(entry) = self.lock().sessions.remove(&sessid) {
            entry.worker.close(reason);
        }
    }

    /// The game closes every session (SDISCONNALL).
    pub fn server_disconnect_all(&self, reason: &str) {
        for (_, entry) in self.lock().sessions.drain() {
            entry.worker.close(reason);
        }
    }

    /// The game says a session logged in (SLOGIN): load its record (the
    /// game's fields; see [`Session::load_game_data`]).
    pub fn server_logged_in(&self, data: &Session) {
        if let Some(entry) = self.lock().sessions.get_mut(&data.sessid) {
            load_from_game(entry, data);
        }
    }

    /// The game pushes session records (SSYNC); with `clean`, sessions it
    /// does not list are closed.
    pub fn server_session_sync(&self, sessions: &[Session], clean: bool) {
        let mut reg = self.lock();
        for data in sessions {
            if let Some(entry) = reg.sessions.get_mut(&data.sessid) {
                load_from_game(entry, data);
            }
        }
        if clean {
            let known: Vec<u64> = sessions.iter().map(|s| s.sessid).collect();
            reg.sessions.retain(|sessid, entry| {
                let keep = known.contains(sessid);
                if !keep {
                    entry
                        .worker
                        .close("Your session is no longer known to the game.");
                }
                keep
            });
        }
    }

    /// The game asks for an outbound connection that behaves as a session
    /// (SCONN). The protocol is looked up by key; an unknown key or bad
    /// config is an error for the game, never a crash.
    pub fn server_connect(
        self: &Arc<Self>,
        protocol_key: &str,
        config: &Map,
    ) -> Result<(), String> {
        match protocol_key {
            "telnet" => {
                let target = outbound_target(config)?;
                worker::spawn_outbound(self.clone(), target)
                    .map_err(|e| format!("cannot start an outbound session: {e}"))
            }
            other => Err(format!(
                "unknown protocol key `{other}` (known: {})",
                OUTBOUND_PROTOCOLS.join(", ")
            )),
        }
    }

    /// Count a new connection from `ip` against the per-address caps, unless
    /// the address is allowlisted. `Ok(true)`: counted, release it with
    /// [`Handler::release_ip`] when the session ends.
    pub fn reserve_ip(&self, ip: IpAddr, now: Instant) -> Result<bool, IpRefusal> {
        let config = self.config();
        let limits = &config.limits;
        if limits.allowlisted(ip) {
            return Ok(false);
        }
        let mut ip_limits = self.ip_limits.lock().unwrap_or_else(|p| p.into_inner());
        ip_limits.prune(now);
        ip_limits
            .reserve(
                ip,
                now,
                limits.max_sessions_per_ip,
                limits.max_connections_per_ip_per_minute,
            )
            .map(|()| true)
    }

    /// A session counted by [`Handler::reserve_ip`] ended.
    pub fn release_ip(&self, ip: IpAddr) {
        let mut ip_limits = self.ip_limits.lock().unwrap_or_else(|p| p.into_inner());
        ip_limits.release(ip);
    }

    /// Sessions logged in, or all sessions with `include_unloggedin`.
    pub fn count_loggedin(&self, include_unloggedin: bool) -> usize {
        let reg = self.lock();
        reg.sessions
            .values()
            .filter(|e| include_unloggedin || e.session.logged_in)
            .count()
    }

    /// Every session of one browser (web clients share a `csessid`).
    pub fn sessions_from_csessid(&self, csessid: &str) -> Vec<Session> {
        let reg = self.lock();
        reg.sessions
            .values()
            .filter(|e| e.session.csessid.as_deref() == Some(csessid))
            .map(|e| e.session.clone())
            .collect()
    }

    /// Sessions per protocol key.
    pub fn sessions_by_protocol(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for entry in self.lock().sessions.values() {
            *counts
                .entry(entry.session.protocol_key.clone())
                .or_insert(0) += 1;
        }
        counts
    }

    /// Commands held (game away or not keeping up), over all sessions.
    pub fn held_input(&self) -> usize {
        self.lock().sessions.values().map(|e| e.held.len()).sum()
    }

    /// The link to the game: `down`, `linked` (hello done, sessions not yet
    /// synced, or being stopped) or `ready`.
    pub fn link_state(&self) -> &'static str {
        match self.lock().link {
            Link::Down => "down",
            Link::Linked(_) => "linked",
            Link::Ready(_) => "ready",
        }
    }

    /// A line of text to every session.
    pub fn announce_all(&self, message: &str) {
        for entry in self.lock().sessions.values() {
            entry.worker.text(message);
        }
    }

    /// A copy of one session's record.
    pub fn session(&self, sessid: u64) -> Option<Session> {
        self.lock().sessions.get(&sessid).map(|e| e.session.clone())
    }

    // ---- the link to the game ----

    /// Whether a game is linked (a second one is refused).
    pub fn is_linked(&self) -> bool {
        !matches!(self.lock().link, Link::Down)
    }

    /// A game passed the hello on link `id`.
    pub fn link_up(&self, id: u64) {
        self.lock().link = Link::Linked(id);
    }

    /// The game asked for the sessions (PSYNC): answer with every record and
    /// the start mode, then let held input flow, oldest first.
    pub fn sync_request(&self, id: u64) {
        let messages = self.config().messages.clone();
        let mut reg = self.lock();
        if reg.link == Link::Down {
            return;
        }
        let sessions = reg.sessions.values().map(|e| e.session.clone()).collect();
        let mode = std::mem::replace(&mut reg.next_mode, StartMode::Reconnect);
        log::info!(
            "game synced ({}), {} sessions",
            mode.name(),
            reg.sessions.len()
        );
        self.send_amp(PortalMsg::Sync { mode, sessions });
        reg.link = Link::Ready(id);
        if std::mem::replace(&mut reg.away, false) {
            for entry in reg.sessions.values() {
                entry.worker.text(&messages.game_back);
            }
        }
        reg.ping_out = None;
        reg.last_ping = None;
        let epoch = reg.ping_seq;
        let all_sent = flush_entries(&mut reg.sessions, &self.amp_tx, epoch);
        self.any_held.store(!all_sent, Ordering::Relaxed);
    }

    // ---- the heartbeat ----

    /// Called by the acceptor on every tick: ping the game every
    /// `[amp] heartbeat_secs`. Returns true once a ping has gone unanswered
    /// for `[game] unresponsive_secs`: players are then told, input is
    /// held, and the caller has the game restarted.
    pub fn heartbeat(&self, now: Instant) -> bool {
        let config = self.config();
        let mut reg = self.lock();
        if !matches!(reg.link, Link::Ready(_)) {
            return false;
        }
        if let Some((_, sent)) = reg.ping_out {
            let limit = config.game.unresponsive_secs;
            if limit > 0.0 && now.saturating_duration_since(sent).as_secs_f64() >= limit {
                log::error!("the game has not answered a heartbeat for {limit} s; restarting it");
                if let Link::Ready(id) = reg.link {
                    reg.link = Link::Linked(id);
                }
                reg.ping_out = None;
                mark_away(
                    &mut reg,
                    StartMode::Crash,
                    &config.messages.game_not_responding,
                );
                return true;
            }
            return false;
        }
        let interval = Duration::from_secs_f64(config.amp.heartbeat_secs);
        if reg
            .last_ping
            .is_none_or(|at| now.saturating_duration_since(at) >= interval)
        {
            let seq = reg.ping_seq;
            reg.ping_seq += 1;
            reg.ping_out = Some((seq, now));
            reg.last_ping = Some(now);
            self.send_amp(PortalMsg::Ping { seq });
        }
        false
    }

    /// The game answered ping `seq`: everything sent before it was handled.
    pub fn pong(&self, seq: u64) {
        let mut reg = self.lock();
        if reg.ping_out.is_some_and(|(out, _)| out <= seq) {
            reg.ping_out = None;
        }
        for entry in reg.sessions.values_mut() {
            while entry
                .inflight
                .front()
                .is_some_and(|(epoch, _)| *epoch <= seq)
            {
                entry.inflight.pop_front();
            }
        }
    }

    /// Link `id` closed. If nobody expected it, players are told the game is
    /// down and the next start counts as a crash.
    pub fn link_down(&self, id: u64) {
        let messages = self.config().messages.clone();
        let mut reg = self.lock();
        if !matches!(reg.link, Link::Linked(i) | Link::Ready(i) if i == id) {
            return;
        }
        reg.link = Link::Down;
        reg.ping_out = None;
        if !reg.away {
            log::warn!("the game closed the link unexpectedly");
            mark_away(&mut reg, StartMode::Crash, &messages.game_down);
        }
        report_unconfirmed(&mut reg, &messages.input_lost);
    }

    /// A restart is starting (`Reload`) : hold input from now on and tell
    /// players. The caller then asks the game to stop.
    pub fn begin_restart(&self, mode: StartMode) {
        let messages = self.config().messages.clone();
        let mut reg = self.lock();
        if let Link::Ready(id) = reg.link {
            reg.link = Link::Linked(id);
            // The game answers this before it handles the stop that
            // follows, confirming every command sent so far.
            let seq = reg.ping_seq;
            reg.ping_seq += 1;
            reg.ping_out = None;
            self.send_amp(PortalMsg::Ping { seq });
        }
        let text = match mode {
            StartMode::Crash => &messages.game_down,
            _ => &messages.game_restarting,
        };
        if reg.away {
            reg.next_mode = mode;
        } else {
            mark_away(&mut reg, mode, text);
        }
    }

    /// The game is being stopped for good (portal shutdown): its link
    /// closing is expected, not an outage to announce.
    pub fn expect_link_close(&self) {
        self.lock().away = true;
    }

    /// The supervisor saw the game process exit on its own.
    pub fn game_exited(&self) {
        self.begin_restart(StartMode::Crash);
    }

    /// Send a message to the game if the writer can take it. Messages other
    /// than input are not held: the next sync reply carries the state.
    pub fn send_amp(&self, message: PortalMsg) {
        if let Err(e) = self.amp_tx.try_send(message) {
            log::warn!("AMP queue full or closed; a message to the game was not sent: {e}");
        }
    }

    // ---- shutdown ----

    /// Tell every player, close every session, tell the game.
    pub fn shutdown(&self) {
        let reason = self.config().messages.shutdown.clone();
        self.disconnect_all(&reason);
    }

    /// Count a worker thread in (true) or out (false).
    pub fn worker_started(&self, started: bool) {
        if started {
            self.live_workers.fetch_add(1, Ordering::SeqCst);
        } else {
            self.live_workers.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Worker threads still running.
    pub fn live_workers(&self) -> usize {
        self.live_workers.load(Ordering::SeqCst)
    }
}

/// Protocol keys `server_connect` can open.
pub const OUTBOUND_PROTOCOLS: &[&str] = &["telnet"];

/// `host` and `port` out of a `server_connect` config.
fn outbound_target(config: &Map) -> Result<String, String> {
    let host = config
        .get("host")
        .and_then(Value::as_str)
        .ok_or("config needs a string `host`")?;
    let port = config
        .get("port")
        .and_then(Value::as_int)
        .filter(|p| (1..=65535).contains(p))
        .ok_or("config needs an integer `port` between 1 and 65535")?;
    Ok(format!("{host}:{port}"))
}

/// Load a record from the game; protocol flags the game changed (say, a
/// screen reader toggle) are passed on to the worker, which renders with
/// them, and so is a login or logout (the worker keeps the login deadline).
fn load_from_game(entry: &mut Entry, data: &Session) {
    let was_logged_in = entry.session.logged_in;
    let changed: Map = data
        .protocol_flags
        .iter()
        .filter(|(k, v)| entry.session.protocol_flags.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    entry.session.load_game_data(data);
    if !changed.is_empty() {
        entry.worker.set_flags(changed);
    }
    if entry.session.logged_in != was_logged_in {
        entry.worker.logged_in(entry.session.logged_in);
    }
}

/// Remember commands sent to the game until a heartbeat confirms them.
fn note_inflight(entry: &mut Entry, epoch: u64, commands: Vec<Command>) {
    for command in commands {
        if entry.inflight.len() >= MAX_INFLIGHT {
            entry.inflight.pop_front();
        }
        entry.inflight.push_back((epoch, command));
    }
}

/// Tell a player (once per episode) that the game is not keeping up and
/// their input is being held.
fn tell_slow(entry: &mut Entry, config: &Config) {
    if !std::mem::replace(&mut entry.told_slow, true) {
        log::warn!(
            "session {}: AMP queue full; input held",
            entry.session.sessid
        );
        entry.worker.text(&config.messages.game_not_responding);
    }
}

/// The game went away without confirming some input: tell each player
/// which commands it may not have run, so nothing is lost silently.
fn report_unconfirmed(reg: &mut Registry, template: &str) {
    for entry in reg.sessions.values_mut() {
        if entry.inflight.is_empty() {
            continue;
        }
        let lost: Vec<String> = entry
            .inflight
            .drain(..)
            .map(|(_, c)| c.first_str().unwrap_or(&c.name).to_owned())
            .collect();
        log::warn!(
            "session {}: {} commands unconfirmed when the game went away",
            entry.session.sessid,
            lost.len()
        );
        entry
            .worker
            .text(&fill(template, "text", &lost.join(" | ")));
    }
}

/// Tell everyone the game is away and remember how it will come back.
fn mark_away(reg: &mut Registry, mode: StartMode, text: &str) {
    reg.away = true;
    reg.next_mode = mode;
    for entry in reg.sessions.values() {
        entry.worker.text(text);
    }
}

/// Hold input for later, within the per-session cap; tell the player.
fn hold(entry: &mut Entry, commands: Vec<Command>, config: &Config, game_away: bool) {
    let cap = config.limits.held_input_commands;
    for command in commands {
        if entry.held.len() >= cap {
            let text = command.first_str().unwrap_or(&command.name).to_owned();
            log::warn!(
                "session {}: held input full, dropped {text:?}",
                entry.session.sessid
            );
            entry
                .worker
                .text(&fill(&config.messages.input_dropped, "text", &text));
            continue;
        }
        entry.held.push_back(command);
    }
    if game_away {
        let count = entry.held.len().to_string();
        entry
            .worker
            .text(&fill(&config.messages.input_held, "count", &count));
    }
}

/// Send every session's held input; false if some is still held.
fn flush_entries(
    sessions: &mut HashMap<u64, Entry>,
    amp_tx: &Sender<PortalMsg>,
    epoch: u64,
) -> bool {
    for (sessid, entry) in sessions.iter_mut() {
        if entry.held.is_empty() {
            continue;
        }
        let commands: Vec<Command> = entry.held.drain(..).collect();
        let sent = commands.clone();
        let message = PortalMsg::DataIn {
            sessid: *sessid,
            commands,
        };
        match amp_tx.try_send(message) {
            Ok(()) => {
                note_inflight(entry, epoch, sent);
                entry.told_slow = false;
            }
            Err(TrySendError::Full(PortalMsg::DataIn { commands, .. })) => {
                entry.held.extend(commands);
                return false;
            }
            Err(_) => {}
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::worker::{test_handle, ToWorker};
    use crossbeam_channel::Receiver;

    struct Fixture {
        handler: Arc<Handler>,
        amp: Receiver<PortalMsg>,
        controls: Arc<Mutex<Vec<Control>>>,
    }

    fn fixture(config: Config) -> Fixture {
        let (tx, amp) = crossbeam_channel::bounded(16);
        let controls = Arc::new(Mutex::new(Vec::new()));
        let seen = controls.clone();
        let control: ControlSender = Arc::new(move |c| seen.lock().unwrap().push(c));
        let handler = Arc::new(Handler::new(Arc::new(config), tx, control));
        Fixture {
            handler,
            amp,
            controls,
        }
    }

    /// Register a session; returns what its worker would receive.
    fn session(f: &Fixture) -> (u64, Receiver<ToWorker>, crate::session::waiter::Waiter) {
        let (handle, rx, poll) = test_handle();
        let sessid = f.handler.generate_sessid();
        f.handler.connect(
            Session::init_session(sessid, "telnet", "127.0.0.1:1"),
            handle,
            true,
        );
        (sessid, rx, poll)
    }

    fn texts(rx: &Receiver<ToWorker>) -> Vec<String> {
        rx.try_iter()
            .flat_map(|m| match m {
                ToWorker::Out(commands) => commands
                    .iter()
                    .filter_map(|c| c.first_str().map(str::to_owned))
                    .collect(),
                ToWorker::Close(reason) => vec![format!("CLOSE {reason}")],
                ToWorker::Flags(flags) => vec![format!("FLAGS {flags:?}")],
                ToWorker::LoggedIn(_) => vec![],
            })
            .collect()
    }

    fn lines(messages: Vec<PortalMsg>) -> Vec<String> {
        messages
            .into_iter()
            .flat_map(|m| match m {
                PortalMsg::DataIn { commands, .. } => commands
                    .iter()
                    .filter_map(|c| c.first_str().map(str::to_owned))
                    .collect(),
                _ => vec![],
            })
            .collect()
    }

    fn link(f: &Fixture, id: u64) -> PortalMsg {
        f.handler.link_up(id);
        f.handler.sync_request(id);
        f.amp
            .try_iter()
            .find(|m| matches!(m, PortalMsg::Sync { .. }))
            .expect("sync reply")
    }

    #[test]
    fn sessids_are_never_reused() {
        let f = fixture(Config::default());
        let ids: Vec<u64> = (0..100).map(|_| f.handler.generate_sessid()).collect();
        let mut unique = ids.clone();
        unique.dedup();
        assert_eq!(ids, unique);
    }

    #[test]
    fn input_without_a_game_is_held_then_sent_in_order_after_sync() {
        let f = fixture(Config::default());
        let (sessid, rx, _poll) = session(&f);
        for line in ["one", "two", "three"] {
            f.handler.data_in(sessid, vec![Command::text(line)], true);
        }
        assert!(
            f.amp.try_recv().is_err(),
            "nothing reaches a game that is not there"
        );
        assert!(texts(&rx).iter().any(|t| t.contains("3 waiting")));
        let PortalMsg::Sync { mode, sessions } = link(&f, 1) else {
            panic!("expected the sync reply first")
        };
        assert_eq!(mode, StartMode::Start);
        assert_eq!(sessions[0].cmd_total, 3);
        assert_eq!(lines(f.amp.try_iter().collect()), ["one", "two", "three"]);
    }

    #[test]
    fn overflowing_the_held_queue_tells_the_player_what_was_dropped() {
        let mut config = Config::default();
        config.limits.held_input_commands = 2;
        let f = fixture(config);
        let (sessid, rx, _poll) = session(&f);
        for line in ["a", "b", "lost line"] {
            f.handler.data_in(sessid, vec![Command::text(line)], true);
        }
        assert!(texts(&rx).iter().any(|t| t.contains("dropped: lost line")));
        link(&f, 1);
        assert_eq!(lines(f.amp.try_iter().collect()), ["a", "b"]);
    }

    #[test]
    fn requeued_input_goes_out_before_newer_input() {
        let f = fixture(Config::default());
        let (sessid, _rx, _poll) = session(&f);
        link(&f, 1);
        f.handler.link_down(1);
        f.handler
            .requeue(sessid, vec![Command::text("old1"), Command::text("old2")]);
        f.handler.data_in(sessid, vec![Command::text("new")], true);
        let PortalMsg::Sync { mode, .. } = link(&f, 2) else {
            panic!()
        };
        assert_eq!(
            mode,
            StartMode::Crash,
            "an unexpected link loss counts as a crash"
        );
        assert_eq!(lines(f.amp.try_iter().collect()), ["old1", "old2", "new"]);
    }

    #[test]
    fn a_restart_tells_players_and_the_return_too() {
        let f = fixture(Config::default());
        let (_sessid, rx, _poll) = session(&f);
        link(&f, 1);
        f.handler.begin_restart(StartMode::Reload);
        f.handler.link_down(1);
        let PortalMsg::Sync { mode, .. } = link(&f, 2) else {
            panic!()
        };
        assert_eq!(mode, StartMode::Reload);
        let told = texts(&rx);
        assert!(told[0].contains("restarting"), "{told:?}");
        assert_eq!(
            told.len(),
            2,
            "no crash message for a planned restart: {told:?}"
        );
        assert!(told[1].contains("back"));
    }

    #[test]
    fn session_sync_merges_and_clean_closes_unknown_sessions() {
        let f = fixture(Config::default());
        let (a, _rx_a, _pa) = session(&f);
        let (_b, rx_b, _pb) = session(&f);
        let mut record = f.handler.session(a).unwrap();
        record.logged_in = true;
        record.uname = Some("anna".into());
        f.handler.server_session_sync(&[record], true);
        if let Some(entry) = f.handler.lock().sessions.get_mut(&a) {
            entry.session.csessid = Some("browser-1".into());
        }
        assert_eq!(f.handler.count_loggedin(false), 1);
        assert_eq!(f.handler.count_loggedin(true), 1, "b was dropped");
        assert!(texts(&rx_b)[0].starts_with("CLOSE"));
        let found = f.handler.sessions_from_csessid("browser-1");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].uname.as_deref(), Some("anna"));
    }

    #[test]
    fn server_disconnect_shows_the_reason_and_forgets_the_session() {
        let f = fixture(Config::default());
        let (sessid, rx, _poll) = session(&f);
        link(&f, 1);
        f.handler.server_disconnect(sessid, "Bye now");
        assert_eq!(texts(&rx), ["CLOSE Bye now"]);
        assert!(f.handler.session(sessid).is_none());
        f.handler.disconnect(sessid);
        assert!(
            f.amp.try_recv().is_err(),
            "no PDISCONN for a server-ordered close"
        );
    }

    #[test]
    fn client_disconnect_is_reported_to_the_game() {
        let f = fixture(Config::default());
        let (sessid, _rx, _poll) = session(&f);
        link(&f, 1);
        f.handler.disconnect(sessid);
        assert_eq!(
            f.amp.try_recv().ok(),
            Some(PortalMsg::Disconnect { sessid })
        );
    }

    #[test]
    fn server_connect_with_unknown_key_or_bad_config_is_an_error() {
        let f = fixture(Config::default());
        let err = f.handler.server_connect("irc", &Map::new()).unwrap_err();
        assert!(err.contains("unknown protocol key `irc`"), "{err}");
        let err = f.handler.server_connect("telnet", &Map::new()).unwrap_err();
        assert!(err.contains("host"), "{err}");
    }

    #[test]
    fn unconfirmed_input_is_reported_when_the_game_dies_and_confirmed_input_is_not() {
        let f = fixture(Config::default());
        let (sessid, rx, _poll) = session(&f);
        link(&f, 1);
        f.handler
            .data_in(sessid, vec![Command::text("confirmed")], true);
        let now = Instant::now();
        assert!(!f.handler.heartbeat(now));
        let ping = f.amp.try_iter().find_map(|m| match m {
            PortalMsg::Ping { seq } => Some(seq),
            _ => None,
        });
        f.handler.pong(ping.expect("a ping was sent"));
        f.handler
            .data_in(sessid, vec![Command::text("in flight")], true);
        f.handler.link_down(1);
        let told = texts(&rx);
        let report = told
            .iter()
            .find(|t| t.contains("may not have run"))
            .unwrap();
        assert!(report.ends_with("run: in flight)"), "{report}");
    }

    #[test]
    fn an_unanswered_ping_past_the_limit_reports_a_hung_game() {
        let mut config = Config::default();
        config.game.unresponsive_secs = 2.0;
        let f = fixture(config);
        let (_sessid, rx, _poll) = session(&f);
        link(&f, 1);
        let t0 = Instant::now();
        assert!(!f.handler.heartbeat(t0));
        assert!(!f.handler.heartbeat(t0 + Duration::from_secs(1)));
        assert!(f.handler.heartbeat(t0 + Duration::from_secs(3)));
        assert!(texts(&rx).iter().any(|t| t.contains("not responding")));
    }

    #[test]
    fn announce_all_reaches_every_session() {
        let f = fixture(Config::default());
        let (_a, rx_a, _pa) = session(&f);
        let (_b, rx_b, _pb) = session(&f);
        f.handler.announce_all("hear ye");
        assert_eq!(texts(&rx_a), ["hear ye"]);
        assert_eq!(texts(&rx_b), ["hear ye"]);
    }

    #[test]
    fn game_requests_reach_the_main_loop() {
        let f = fixture(Config::default());
        f.handler.request(Control::ReloadGame);
        assert_eq!(*f.controls.lock().unwrap(), [Control::ReloadGame]);
    }
}
