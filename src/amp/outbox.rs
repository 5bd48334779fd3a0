//! What the AMP writer knows and decides, with no I/O: the link's state,
//! every session's held and in-flight input, the heartbeat, and the bytes
//! waiting for the game's socket.
//!
//! The writer thread ([`crate::amp::writer`]) owns one [`Outbox`] as a
//! plain value. It feeds it the messages from its inbox and the clock,
//! writes [`Outbox::transmit`] to the socket, reports how much went with
//! [`Outbox::wrote`], and delivers what [`Outbox::poll_notice`] returns
//! (lines for players, a hung game for the supervisor).
//!
//! Input never skips the queue: a command is encoded for the game only when
//! the link is synced, nothing older from that session is held, and the
//! socket is keeping up (fewer than `[limits] data_in_queue` input frames
//! unwritten). Otherwise it is held, in order, up to `held_input_commands`
//! per session, and the player is told. Input encoded but not yet written
//! when a link fails goes back to the front of its session's queue; input
//! written but not confirmed by a heartbeat answer is reported to the player
//! as possibly not run. Every command keeps the time it reached the portal
//! (held ones too), so [`Outbox::take_written_input`] can tell the writer
//! how long each written frame waited.

use crate::amp::codec;
use crate::amp::evennia::boxes::AmpBox;
use crate::amp::evennia::mapping;
use crate::amp::inbox::LinkState;
use crate::config::{fill, Config, Dialect};
use crate::session::frozen::{instant, instant_at, offset_of, option_instant, with_reference};
use crate::wire::message::{Command, PortalMsg, StartMode};
use crate::wire::session::Session;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// At most this many unconfirmed commands are remembered per session.
const MAX_INFLIGHT: usize = 1000;

/// Something the writer must pass on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Notice {
    /// One line of text to one player.
    To(u64, String),
    /// One line of text to every player.
    All(String),
    /// A heartbeat went unanswered past `[game] unresponsive_secs`: the
    /// game must be restarted.
    Hung,
}

/// One session's input, as the writer keeps it.
#[derive(Default, Serialize, Deserialize)]
struct SessionInput {
    /// The game has this session (sent as PCONN or in a sync reply).
    known: bool,
    /// Some game has been told of this session (in a PCONN or a sync).
    announced: bool,
    /// Held commands and when each reached the portal.
    #[serde(with = "timed_commands")]
    held: VecDeque<(Instant, Command)>,
    /// Sent and not yet confirmed, tagged with the ping that confirms it.
    inflight: VecDeque<(u64, Command)>,
    /// The player was told the game is not keeping up.
    told_slow: bool,
}

/// An input frame in `out` not yet fully written.
#[derive(Serialize, Deserialize)]
struct Unwritten {
    /// Where the frame ends, counted from the start of `out`.
    end: usize,
    sessid: u64,
    commands: usize,
    /// When the oldest of its commands reached the portal.
    #[serde(with = "instant")]
    since: Instant,
}

/// The link's state, held and in-flight input and the heartbeat. All of
/// it but the config crosses `portal upgrade` ([`Outbox::freeze`]).
#[derive(Serialize, Deserialize)]
pub struct Outbox {
    #[serde(skip)]
    config: Arc<Config>,
    link: Link,
    sessions: HashMap<u64, SessionInput>,
    /// Told to the game in the next sync reply.
    next_mode: StartMode,
    /// Players were told the game is away; tell them when it is back.
    away: bool,
    /// The seq of the next heartbeat ping.
    ping_seq: u64,
    /// The ping waiting for its answer, and when it was sent.
    #[serde(with = "ping")]
    ping_out: Option<(u64, Instant)>,
    /// When the last ping was sent.
    #[serde(with = "option_instant")]
    last_ping: Option<Instant>,
    /// Encoded frames not yet written to the game.
    out: Vec<u8>,
    unwritten: VecDeque<Unwritten>,
    /// Input frames written whole since [`Outbox::take_written_input`]:
    /// when their oldest command arrived, and how many commands they held.
    #[serde(skip)]
    written_input: Vec<(Instant, usize)>,
    /// Where each box in `out` ends (evennia dialect: one box per write).
    box_ends: VecDeque<usize>,
    /// The portal's start (Unix seconds), told to an Evennia Server.
    started_unix: f64,
    /// Some session has held input.
    any_held: bool,
    notices: VecDeque<Notice>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum Link {
    Down,
    Linked(u64),
    Ready(u64),
}

/// Largest frozen outbox read back (held input of every session, frames
/// not yet written).
const MAX_FROZEN: usize = 256 * 1024 * 1024;

/// Why a frozen outbox was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThawError(pub String);

impl std::fmt::Display for ThawError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the AMP writer's state: {}", self.0)
    }
}

impl std::error::Error for ThawError {}

impl Outbox {
    /// `portal upgrade`: the whole state as bytes, times relative to `now`.
    pub fn freeze(&self, now: Instant) -> Vec<u8> {
        with_reference(now, || postcard::to_stdvec(self)).unwrap_or_else(|e| {
            log::error!("AMP: cannot encode the writer's state: {e}");
            Vec::new()
        })
    }

    /// The outbox [`Outbox::freeze`] made, in the new portal, checked
    /// against `config`'s limits (a corrupt state is refused, never
    /// believed).
    pub fn thaw(bytes: &[u8], config: Arc<Config>, now: Instant) -> Result<Outbox, ThawError> {
        if bytes.len() > MAX_FROZEN {
            return Err(ThawError(format!("{} bytes is too large", bytes.len())));
        }
        let mut outbox: Outbox = with_reference(now, || postcard::from_bytes(bytes))
            .map_err(|e| ThawError(e.to_string()))?;
        let held_max = config.limits.held_input_commands;
        for (sessid, entry) in &outbox.sessions {
            if entry.held.len() > held_max || entry.inflight.len() > MAX_INFLIGHT {
                return Err(ThawError(format!("session {sessid} holds too much input")));
            }
        }
        let last_end = outbox.unwritten.back().map_or(0, |u| u.end);
        let box_end = outbox.box_ends.back().copied().unwrap_or(0);
        if last_end > outbox.out.len() || box_end > outbox.out.len() {
            return Err(ThawError("frame ends past the bytes".into()));
        }
        outbox.config = config;
        Ok(outbox)
    }

    /// An outbox with no game linked.
    pub fn new(config: Arc<Config>) -> Outbox {
        Outbox {
            config,
            link: Link::Down,
            sessions: HashMap::new(),
            next_mode: StartMode::Start,
            away: false,
            ping_seq: 1,
            ping_out: None,
            last_ping: None,
            out: Vec::new(),
            unwritten: VecDeque::new(),
            written_input: Vec::new(),
            box_ends: VecDeque::new(),
            started_unix: crate::wire::session::unix_now(),
            any_held: false,
            notices: VecDeque::new(),
        }
    }

    /// A reloaded portal.conf (limits and messages apply at once).
    pub fn set_config(&mut self, config: Arc<Config>) {
        self.config = config;
    }

    // ---- sessions ----

    /// A new session; the game hears of it now if it is synced.
    pub fn connect(&mut self, session: Session) {
        let sessid = session.sessid;
        if self.away {
            let text = self.config.messages.game_restarting.clone();
            self.notices.push_back(Notice::To(sessid, text));
        }
        let entry = self.sessions.entry(sessid).or_default();
        if matches!(self.link, Link::Ready(_)) && !entry.known {
            entry.known = true;
            entry.announced = true;
            self.encode(&PortalMsg::Connect { session });
        }
    }

    /// A session's record changed.
    pub fn conn_sync(&mut self, session: Session) {
        let known = self.sessions.get(&session.sessid).is_some_and(|s| s.known);
        if known && matches!(self.link, Link::Ready(_)) {
            self.encode(&PortalMsg::ConnSync { session });
        }
    }

    /// The client closed: held input is dropped, the game is told.
    pub fn disconnect(&mut self, sessid: u64) {
        let known = self.sessions.remove(&sessid).is_some_and(|s| s.known);
        if known && matches!(self.link, Link::Ready(_)) {
            self.encode(&PortalMsg::Disconnect { sessid });
        }
    }

    /// The game closed a session: forget it without a word to the game.
    pub fn forget(&mut self, sessid: u64) {
        self.sessions.remove(&sessid);
    }

    /// Every session closed (portal shutdown).
    pub fn disconnect_all(&mut self) {
        self.sessions.clear();
        if matches!(self.link, Link::Ready(_)) {
            self.encode(&PortalMsg::DisconnectAll);
        }
    }

    /// Input from a session that reached the portal `at`: to the game, or
    /// held in order.
    pub fn input(&mut self, sessid: u64, commands: Vec<Command>, at: Instant) {
        let ready = matches!(self.link, Link::Ready(_));
        let keeping_up = self.keeping_up();
        let Some(entry) = self.sessions.get_mut(&sessid) else {
            return log::debug!("input for unknown session {sessid} dropped");
        };
        if ready && keeping_up && entry.held.is_empty() {
            entry.told_slow = false;
            return self.encode_input(sessid, commands, at);
        }
        self.hold(sessid, commands, at, !ready);
        if ready && !keeping_up {
            self.tell_slow(sessid);
        }
    }

    /// Any other message: written while a game is linked, else dropped
    /// (the next sync reply carries the state).
    pub fn send(&mut self, message: PortalMsg) {
        if self.link != Link::Down {
            self.encode(&message);
        } else {
            log::debug!("no game linked; not sent: {message:?}");
        }
    }

    // ---- the link ----

    /// A game passed the hello on link `id`.
    pub fn link_up(&mut self, id: u64) {
        self.link = Link::Linked(id);
        self.out.clear();
        self.unwritten.clear();
        self.box_ends.clear();
    }

    /// An answer to a request of the game on link `id` (evennia dialect).
    pub fn answer(&mut self, id: u64, answer: AmpBox) {
        if self.link_id() == Some(id) {
            self.push_box(&answer);
        }
    }

    /// The game asked for the sessions: answer with every record (taken
    /// from the registry by the caller) and the start mode, then let held
    /// input flow, oldest first.
    pub fn sync_request(&mut self, id: u64, sessions: Vec<Session>) {
        if self.link != Link::Linked(id) && self.link != Link::Ready(id) {
            return;
        }
        let mode = std::mem::replace(&mut self.next_mode, StartMode::Reconnect);
        log::info!("game synced ({}), {} sessions", mode.name(), sessions.len());
        // An Evennia Server shows its login screen only for a session that
        // connects (PCONN), never for one in a sync: one that arrived while
        // no game ever heard of it is announced after the sync instead.
        let evennia = self.config.amp.dialect == Dialect::Evennia;
        let (sessions, late): (Vec<Session>, Vec<Session>) =
            sessions.into_iter().partition(|session| {
                let entry = self.sessions.entry(session.sessid).or_default();
                entry.known = true;
                !evennia || std::mem::replace(&mut entry.announced, true)
            });
        self.encode(&PortalMsg::Sync { mode, sessions });
        for session in late {
            self.encode(&PortalMsg::Connect { session });
        }
        self.link = Link::Ready(id);
        if std::mem::replace(&mut self.away, false) {
            let text = self.config.messages.game_back.clone();
            self.notices.push_back(Notice::All(text));
        }
        self.ping_out = None;
        self.last_ping = None;
        self.flush_held();
    }

    /// Link `id` closed. Input not yet written goes back to be held; input
    /// written and not confirmed is reported to its player. If nobody
    /// expected it, players are told the game is down and the next start
    /// counts as a crash.
    pub fn link_down(&mut self, id: u64) {
        if !matches!(self.link, Link::Linked(i) | Link::Ready(i) if i == id) {
            return;
        }
        self.link = Link::Down;
        self.ping_out = None;
        self.requeue_unwritten();
        for entry in self.sessions.values_mut() {
            entry.known = false;
        }
        if !self.away {
            log::warn!("the game closed the link unexpectedly");
            let text = self.config.messages.game_down.clone();
            self.mark_away(StartMode::Crash, text);
        }
        self.report_unconfirmed();
    }

    /// A restart is starting: hold input from now on and tell players. The
    /// game answers the ping sent here before it handles the stop that
    /// follows, confirming every command sent so far.
    pub fn begin_restart(&mut self, mode: StartMode) {
        if let Link::Ready(id) = self.link {
            self.link = Link::Linked(id);
            let seq = self.take_ping_seq();
            self.ping_out = None;
            self.encode(&PortalMsg::Ping { seq });
        }
        if self.away {
            self.next_mode = mode;
            return;
        }
        let text = match mode {
            StartMode::Crash => self.config.messages.game_down.clone(),
            _ => self.config.messages.game_restarting.clone(),
        };
        self.mark_away(mode, text);
    }

    /// The game is being stopped for good: its link closing is expected.
    pub fn expect_close(&mut self) {
        self.away = true;
    }

    /// The game answered ping `seq`: everything sent before it was handled.
    pub fn pong(&mut self, seq: u64) {
        if self.ping_out.is_some_and(|(out, _)| out <= seq) {
            self.ping_out = None;
        }
        for entry in self.sessions.values_mut() {
            while entry
                .inflight
                .front()
                .is_some_and(|(epoch, _)| *epoch <= seq)
            {
                entry.inflight.pop_front();
            }
        }
    }

    // ---- time ----

    /// Ping the game every `[amp] heartbeat_secs`; once a ping has gone
    /// unanswered for `[game] unresponsive_secs`, tell players, hold input
    /// and report the game as hung.
    pub fn handle_timeout(&mut self, now: Instant) {
        if !matches!(self.link, Link::Ready(_)) {
            return;
        }
        if let Some((_, sent)) = self.ping_out {
            let limit = self.config.game.unresponsive_secs;
            if limit > 0.0 && now.saturating_duration_since(sent).as_secs_f64() >= limit {
                self.report_hung(limit);
            }
            return;
        }
        if self.last_ping.is_none_or(|at| now >= at + self.heartbeat()) {
            let seq = self.take_ping_seq();
            self.ping_out = Some((seq, now));
            self.last_ping = Some(now);
            self.encode(&PortalMsg::Ping { seq });
        }
    }

    /// When [`Outbox::handle_timeout`] next has something to do (`now` if
    /// a ping is due at once).
    pub fn poll_timeout(&self, now: Instant) -> Option<Instant> {
        if !matches!(self.link, Link::Ready(_)) {
            return None;
        }
        match self.ping_out {
            Some((_, sent)) => {
                let limit = self.config.game.unresponsive_secs;
                (limit > 0.0).then(|| sent + Duration::from_secs_f64(limit))
            }
            None => Some(self.last_ping.map_or(now, |at| at + self.heartbeat())),
        }
    }

    // ---- the socket ----

    /// The bytes waiting for the game's socket.
    pub fn transmit(&self) -> &[u8] {
        &self.out
    }

    /// The bytes to give the socket in one write once `from` bytes of
    /// [`Outbox::transmit`] went: all the rest, or for the evennia dialect
    /// the rest of the box `from` is in (Evennia takes a read that does not
    /// start a box for HTTP and drops the link).
    pub fn next_write(&self, from: usize) -> &[u8] {
        let from = from.min(self.out.len());
        let i = self.box_ends.partition_point(|&end| end <= from);
        let end = self
            .box_ends
            .get(i)
            .map_or(self.out.len(), |&e| e.min(self.out.len()));
        &self.out[from..end]
    }

    /// `n` bytes of [`Outbox::transmit`] were written.
    pub fn wrote(&mut self, n: usize) {
        let n = n.min(self.out.len());
        self.out.drain(..n);
        while let Some(frame) = self.unwritten.pop_front() {
            if frame.end > n {
                self.unwritten.push_front(frame);
                break;
            }
            self.written_input.push((frame.since, frame.commands));
        }
        for frame in &mut self.unwritten {
            frame.end -= n;
        }
        while self.box_ends.front().is_some_and(|&end| end <= n) {
            self.box_ends.pop_front();
        }
        for end in &mut self.box_ends {
            *end -= n;
        }
        if self.out.is_empty() && self.out.capacity() > 64 * 1024 {
            self.out = Vec::new();
        }
        if self.any_held && matches!(self.link, Link::Ready(_)) {
            self.flush_held();
        }
    }

    /// The next thing to pass on to players or the supervisor.
    pub fn poll_notice(&mut self) -> Option<Notice> {
        self.notices.pop_front()
    }

    /// Where the link stands.
    pub fn link_state(&self) -> LinkState {
        match self.link {
            Link::Down => LinkState::Down,
            Link::Linked(_) => LinkState::Linked,
            Link::Ready(_) => LinkState::Ready,
        }
    }

    /// The link the game is on, if any.
    pub fn link_id(&self) -> Option<u64> {
        match self.link {
            Link::Down => None,
            Link::Linked(id) | Link::Ready(id) => Some(id),
        }
    }

    /// Input frames written whole since the last call: when each one's
    /// oldest command reached the portal, and how many commands it held
    /// (the writer times them).
    pub fn take_written_input(&mut self) -> std::vec::Drain<'_, (Instant, usize)> {
        self.written_input.drain(..)
    }

    /// Input frames encoded and not yet written whole.
    pub fn queued_frames(&self) -> usize {
        self.unwritten.len()
    }

    /// Commands held, over all sessions.
    pub fn held(&self) -> usize {
        if !self.any_held {
            return 0;
        }
        self.sessions.values().map(|s| s.held.len()).sum()
    }

    // ---- inside ----

    fn heartbeat(&self) -> Duration {
        Duration::from_secs_f64(self.config.amp.heartbeat_secs)
    }

    fn take_ping_seq(&mut self) -> u64 {
        let seq = self.ping_seq;
        self.ping_seq += 1;
        seq
    }

    /// Fewer input frames wait for the socket than `data_in_queue`.
    fn keeping_up(&self) -> bool {
        self.unwritten.len() < self.config.limits.data_in_queue
    }

    fn encode(&mut self, message: &PortalMsg) {
        match self.config.amp.dialect {
            Dialect::Native => {
                if let Err(e) = codec::encode(message, &mut self.out) {
                    log::error!("AMP: {e}");
                }
            }
            Dialect::Evennia => {
                log::trace!("AMP: to the Evennia Server: {message:?}");
                for b in mapping::encode_portal(message, self.started_unix) {
                    self.push_box(&b);
                }
            }
        }
    }

    fn push_box(&mut self, b: &AmpBox) {
        b.encode_into(&mut self.out);
        self.box_ends.push_back(self.out.len());
    }

    /// Encode one session's input (its oldest command arrived at `since`)
    /// and remember it as in flight.
    fn encode_input(&mut self, sessid: u64, commands: Vec<Command>, since: Instant) {
        let count = commands.len();
        let message = PortalMsg::DataIn { sessid, commands };
        self.encode(&message);
        self.unwritten.push_back(Unwritten {
            end: self.out.len(),
            sessid,
            commands: count,
            since,
        });
        let PortalMsg::DataIn { commands, .. } = message else {
            return;
        };
        let epoch = self.ping_seq;
        if let Some(entry) = self.sessions.get_mut(&sessid) {
            for command in commands {
                if entry.inflight.len() >= MAX_INFLIGHT {
                    entry.inflight.pop_front();
                }
                entry.inflight.push_back((epoch, command));
            }
        }
    }

    /// Hold input for later, within the per-session cap; tell the player
    /// what was dropped, and (while the game is away) how much waits.
    fn hold(&mut self, sessid: u64, commands: Vec<Command>, at: Instant, game_away: bool) {
        let cap = self.config.limits.held_input_commands;
        let Some(entry) = self.sessions.get_mut(&sessid) else {
            return;
        };
        for command in commands {
            if entry.held.len() >= cap {
                let text = command.first_str().unwrap_or(&command.name).to_owned();
                log::warn!("session {sessid}: held input full, dropped {text:?}");
                let line = fill(&self.config.messages.input_dropped, "text", &text);
                self.notices.push_back(Notice::To(sessid, line));
                continue;
            }
            entry.held.push_back((at, command));
            self.any_held = true;
        }
        if game_away {
            let count = entry.held.len().to_string();
            let line = fill(&self.config.messages.input_held, "count", &count);
            self.notices.push_back(Notice::To(sessid, line));
        }
    }

    /// Tell a player (once per episode) that the game is not keeping up.
    fn tell_slow(&mut self, sessid: u64) {
        let Some(entry) = self.sessions.get_mut(&sessid) else {
            return;
        };
        if !std::mem::replace(&mut entry.told_slow, true) {
            log::warn!("session {sessid}: the game is not reading; input held");
            let text = self.config.messages.game_not_responding.clone();
            self.notices.push_back(Notice::To(sessid, text));
        }
    }

    /// Send held input on, oldest first, while the socket keeps up.
    fn flush_held(&mut self) {
        let waiting: Vec<u64> = self
            .sessions
            .iter()
            .filter(|(_, s)| !s.held.is_empty())
            .map(|(id, _)| *id)
            .collect();
        for sessid in waiting {
            if !self.keeping_up() {
                return;
            }
            let Some(entry) = self.sessions.get_mut(&sessid) else {
                continue;
            };
            let Some(&(since, _)) = entry.held.front() else {
                continue;
            };
            let commands: Vec<Command> = entry.held.drain(..).map(|(_, c)| c).collect();
            entry.told_slow = false;
            self.encode_input(sessid, commands, since);
        }
        self.any_held = false;
    }

    /// Input encoded but not written never reached the game: back to the
    /// front of its session's queue, oldest first, and out of flight.
    fn requeue_unwritten(&mut self) {
        self.out.clear();
        for frame in std::mem::take(&mut self.unwritten).into_iter().rev() {
            let Some(entry) = self.sessions.get_mut(&frame.sessid) else {
                continue;
            };
            let take = frame.commands.min(entry.inflight.len());
            let back = entry.inflight.split_off(entry.inflight.len() - take);
            for (_, command) in back.into_iter().rev() {
                entry.held.push_front((frame.since, command));
            }
            self.any_held = true;
        }
    }

    /// The game went away without confirming some input: tell each player
    /// which commands it may not have run.
    fn report_unconfirmed(&mut self) {
        for (sessid, entry) in &mut self.sessions {
            if entry.inflight.is_empty() {
                continue;
            }
            let lost: Vec<String> = entry
                .inflight
                .drain(..)
                .map(|(_, c)| c.first_str().unwrap_or(&c.name).to_owned())
                .collect();
            log::warn!(
                "session {sessid}: {} commands unconfirmed when the game went away",
                lost.len()
            );
            let text = fill(&self.config.messages.input_lost, "text", &lost.join(" | "));
            self.notices.push_back(Notice::To(*sessid, text));
        }
    }

    fn report_hung(&mut self, limit: f64) {
        log::error!("the game has not answered a heartbeat for {limit} s; restarting it");
        if let Link::Ready(id) = self.link {
            self.link = Link::Linked(id);
        }
        self.ping_out = None;
        let text = self.config.messages.game_not_responding.clone();
        self.mark_away(StartMode::Crash, text);
        self.notices.push_back(Notice::Hung);
    }

    /// Tell everyone the game is away and remember how it will come back.
    fn mark_away(&mut self, mode: StartMode, text: String) {
        self.away = true;
        self.next_mode = mode;
        self.notices.push_back(Notice::All(text));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::amp::codec::Decoded;

    fn outbox(config: Config) -> Outbox {
        Outbox::new(Arc::new(config))
    }

    fn record(sessid: u64) -> Session {
        Session::init_session(sessid, "telnet", "127.0.0.1:1")
    }

    /// Everything the outbox has for the socket, decoded; all of it written.
    fn sent(o: &mut Outbox) -> Vec<PortalMsg> {
        let mut messages = Vec::new();
        let mut used = 0;
        let bytes = o.transmit().to_vec();
        while let Decoded::Frame { message, used: n } =
            codec::decode::<PortalMsg>(&bytes[used..], usize::MAX)
        {
            messages.push(message);
            used += n;
        }
        o.wrote(bytes.len());
        messages
    }

    fn lines(messages: &[PortalMsg]) -> Vec<String> {
        messages
            .iter()
            .flat_map(|m| match m {
                PortalMsg::DataIn { commands, .. } => commands
                    .iter()
                    .filter_map(|c| c.first_str().map(str::to_owned))
                    .collect(),
                _ => vec![],
            })
            .collect()
    }

    fn notices(o: &mut Outbox) -> Vec<String> {
        std::iter::from_fn(|| o.poll_notice())
            .map(|n| match n {
                Notice::To(id, text) => format!("{id}: {text}"),
                Notice::All(text) => format!("all: {text}"),
                Notice::Hung => "hung".into(),
            })
            .collect()
    }

    fn ready(o: &mut Outbox, id: u64, sessions: Vec<Session>) -> Vec<PortalMsg> {
        o.link_up(id);
        o.sync_request(id, sessions);
        sent(o)
    }

    fn text(line: &str) -> Vec<Command> {
        vec![Command::text(line)]
    }

    #[test]
    fn written_input_is_timed_from_when_it_reached_the_portal_even_when_held() {
        let mut o = outbox(Config::default());
        o.connect(record(1));
        let early = Instant::now();
        o.input(1, text("held"), early);
        o.input(1, text("held too"), early + Duration::from_millis(5));
        assert_eq!(o.take_written_input().count(), 0, "nothing written yet");
        ready(&mut o, 7, vec![record(1)]);
        let held: Vec<(Instant, usize)> = o.take_written_input().collect();
        assert_eq!(held, [(early, 2)], "held input: its oldest command's time");
        let later = early + Duration::from_millis(50);
        o.input(1, text("direct"), later);
        assert_eq!(o.queued_frames(), 1);
        let bytes = o.transmit().len();
        o.wrote(bytes - 1);
        assert_eq!(o.take_written_input().count(), 0, "not written whole yet");
        assert_eq!(o.queued_frames(), 1);
        o.wrote(1);
        let direct: Vec<(Instant, usize)> = o.take_written_input().collect();
        assert_eq!(direct, [(later, 1)]);
        assert_eq!(o.queued_frames(), 0);
    }

    #[test]
    fn input_without_a_game_is_held_then_sent_in_order_after_sync() {
        let mut o = outbox(Config::default());
        o.connect(record(1));
        for line in ["one", "two", "three"] {
            o.input(1, text(line), Instant::now());
        }
        assert!(
            o.transmit().is_empty(),
            "nothing for a game that is not there"
        );
        assert_eq!(o.held(), 3);
        assert!(notices(&mut o).iter().any(|t| t.contains("3 waiting")));
        let got = ready(&mut o, 1, vec![record(1)]);
        let PortalMsg::Sync { mode, sessions } = &got[0] else {
            panic!("the sync reply goes first: {got:?}")
        };
        assert_eq!(*mode, StartMode::Start);
        assert_eq!(sessions.len(), 1);
        assert_eq!(lines(&got), ["one", "two", "three"]);
        assert_eq!(o.held(), 0);
    }

    #[test]
    fn overflowing_the_held_queue_tells_the_player_what_was_dropped() {
        let mut config = Config::default();
        config.limits.held_input_commands = 2;
        let mut o = outbox(config);
        o.connect(record(1));
        for line in ["a", "b", "lost line"] {
            o.input(1, text(line), Instant::now());
        }
        assert!(notices(&mut o)
            .iter()
            .any(|t| t.contains("dropped: lost line")));
        assert_eq!(lines(&ready(&mut o, 1, vec![record(1)])), ["a", "b"]);
    }

    #[test]
    fn a_session_connecting_while_synced_is_announced_once() {
        let mut o = outbox(Config::default());
        ready(&mut o, 1, vec![]);
        o.connect(record(7));
        o.connect(record(7));
        let got = sent(&mut o);
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(matches!(&got[0], PortalMsg::Connect { session } if session.sessid == 7));
    }

    #[test]
    fn a_session_in_the_sync_reply_is_not_announced_again() {
        let mut o = outbox(Config::default());
        o.link_up(1);
        o.sync_request(1, vec![record(3)]);
        o.connect(record(3));
        o.conn_sync(record(3));
        let got = sent(&mut o);
        assert!(matches!(got[0], PortalMsg::Sync { .. }));
        assert!(matches!(got[1], PortalMsg::ConnSync { .. }), "{got:?}");
        assert_eq!(got.len(), 2);
    }

    #[test]
    fn client_disconnect_is_reported_and_a_server_ordered_one_is_not() {
        let mut o = outbox(Config::default());
        o.connect(record(1));
        o.connect(record(2));
        ready(&mut o, 1, vec![record(1), record(2)]);
        o.disconnect(1);
        o.forget(2);
        o.disconnect(2);
        assert_eq!(sent(&mut o), [PortalMsg::Disconnect { sessid: 1 }]);
    }

    #[test]
    fn input_for_a_forgotten_session_is_dropped() {
        let mut o = outbox(Config::default());
        ready(&mut o, 1, vec![]);
        o.input(9, text("ghost"), Instant::now());
        assert!(sent(&mut o).is_empty());
    }

    #[test]
    fn unwritten_input_goes_back_before_newer_input_when_the_link_fails() {
        let mut o = outbox(Config::default());
        o.connect(record(1));
        ready(&mut o, 1, vec![record(1)]);
        o.input(1, text("old1"), Instant::now());
        o.input(1, text("old2"), Instant::now());
        o.link_down(1);
        o.input(1, text("new"), Instant::now());
        let got = ready(&mut o, 2, vec![record(1)]);
        let PortalMsg::Sync { mode, .. } = &got[0] else {
            panic!()
        };
        assert_eq!(
            *mode,
            StartMode::Crash,
            "an unexpected link loss is a crash"
        );
        assert_eq!(lines(&got), ["old1", "old2", "new"]);
        let told = notices(&mut o);
        assert!(
            !told.iter().any(|t| t.contains("may not have run")),
            "{told:?}"
        );
    }

    #[test]
    fn a_half_written_frame_is_sent_again_whole() {
        let mut o = outbox(Config::default());
        o.connect(record(1));
        ready(&mut o, 1, vec![record(1)]);
        o.input(1, text("first"), Instant::now());
        o.input(1, text("second"), Instant::now());
        let first_len = o.transmit().len() / 2;
        o.wrote(first_len + 1);
        o.link_down(1);
        let got = ready(&mut o, 2, vec![record(1)]);
        assert_eq!(lines(&got), ["second"]);
        let told = notices(&mut o);
        assert!(told.iter().any(|t| t.ends_with("run: first)")), "{told:?}");
    }

    #[test]
    fn a_restart_tells_players_and_the_return_too() {
        let mut o = outbox(Config::default());
        o.connect(record(1));
        ready(&mut o, 1, vec![record(1)]);
        o.begin_restart(StartMode::Reload);
        assert!(matches!(sent(&mut o)[..], [PortalMsg::Ping { .. }]));
        o.link_down(1);
        let got = ready(&mut o, 2, vec![record(1)]);
        assert!(matches!(
            &got[0],
            PortalMsg::Sync {
                mode: StartMode::Reload,
                ..
            }
        ));
        let told = notices(&mut o);
        assert_eq!(
            told.len(),
            2,
            "no crash message for a planned restart: {told:?}"
        );
        assert!(told[0].contains("restarting"));
        assert!(told[1].contains("back"));
    }

    #[test]
    fn a_player_connecting_during_a_restart_is_told() {
        let mut o = outbox(Config::default());
        ready(&mut o, 1, vec![]);
        o.begin_restart(StartMode::Reload);
        notices(&mut o);
        o.connect(record(5));
        assert!(notices(&mut o)[0].starts_with("5: "));
    }

    #[test]
    fn unconfirmed_input_is_reported_when_the_game_dies_and_confirmed_input_is_not() {
        let mut o = outbox(Config::default());
        o.connect(record(1));
        ready(&mut o, 1, vec![record(1)]);
        o.input(1, text("confirmed"), Instant::now());
        let t0 = Instant::now();
        o.handle_timeout(t0);
        let ping = sent(&mut o).iter().find_map(|m| match m {
            PortalMsg::Ping { seq } => Some(*seq),
            _ => None,
        });
        o.pong(ping.expect("a ping was sent"));
        o.input(1, text("in flight"), Instant::now());
        sent(&mut o);
        o.link_down(1);
        let told = notices(&mut o);
        let report = told
            .iter()
            .find(|t| t.contains("may not have run"))
            .unwrap();
        assert!(report.ends_with("run: in flight)"), "{report}");
    }

    #[test]
    fn heartbeats_follow_the_interval_and_wait_for_their_answer() {
        let mut o = outbox(Config::default());
        let t0 = Instant::now();
        assert_eq!(o.poll_timeout(t0), None, "no heartbeat without a game");
        ready(&mut o, 1, vec![]);
        assert_eq!(o.poll_timeout(t0), Some(t0), "first ping at once");
        o.handle_timeout(t0);
        let seq = match sent(&mut o)[..] {
            [PortalMsg::Ping { seq }] => seq,
            ref other => panic!("{other:?}"),
        };
        o.handle_timeout(t0 + Duration::from_secs(5));
        assert!(sent(&mut o).is_empty(), "one ping out at a time");
        o.pong(seq);
        let next = o.poll_timeout(t0 + Duration::from_secs(5));
        assert_eq!(next, Some(t0 + Duration::from_secs(1)));
    }

    #[test]
    fn an_unanswered_ping_past_the_limit_reports_a_hung_game() {
        let mut config = Config::default();
        config.game.unresponsive_secs = 2.0;
        let mut o = outbox(config);
        o.connect(record(1));
        ready(&mut o, 1, vec![record(1)]);
        let t0 = Instant::now();
        o.handle_timeout(t0);
        o.handle_timeout(t0 + Duration::from_secs(1));
        assert!(!notices(&mut o).contains(&"hung".to_owned()));
        assert_eq!(o.poll_timeout(t0), Some(t0 + Duration::from_secs(2)));
        o.handle_timeout(t0 + Duration::from_secs(3));
        let told = notices(&mut o);
        assert!(
            told.iter().any(|t| t.contains("not responding")),
            "{told:?}"
        );
        assert_eq!(told.last().map(String::as_str), Some("hung"));
        assert_eq!(
            o.link_state(),
            LinkState::Linked,
            "input is held from now on"
        );
    }

    #[test]
    fn a_game_that_does_not_read_gets_input_held_and_the_player_told_once() {
        let mut config = Config::default();
        config.limits.data_in_queue = 2;
        let mut o = outbox(config);
        o.connect(record(1));
        ready(&mut o, 1, vec![record(1)]);
        for line in ["a", "b", "c", "d"] {
            o.input(1, text(line), Instant::now());
        }
        assert_eq!(o.held(), 2);
        let told = notices(&mut o);
        assert_eq!(told.len(), 1, "{told:?}");
        assert!(told[0].contains("not responding"));
        assert_eq!(lines(&sent(&mut o)), ["a", "b"]);
        assert_eq!(
            lines(&sent(&mut o)),
            ["c", "d"],
            "held input goes once written"
        );
        assert_eq!(o.held(), 0);
    }

    #[test]
    fn messages_without_a_game_are_not_written() {
        let mut o = outbox(Config::default());
        o.send(PortalMsg::DisconnectAll);
        o.disconnect_all();
        assert!(o.transmit().is_empty());
    }

    /// The operations in the Evennia boxes waiting in `o`: (op, sessid,
    /// the sessids a PSYNC lists).
    fn evennia_ops(o: &Outbox) -> Vec<(u8, i64, Vec<i64>)> {
        use crate::amp::evennia::boxes::{self, Decoded as BoxDecoded};
        use crate::amp::evennia::mapping::get;
        use crate::amp::evennia::payload::unpack;
        use crate::amp::evennia::pickle::{decode, Py};
        let all = o.transmit();
        let mut ops = Vec::new();
        let mut used = 0;
        while let BoxDecoded::Box { amp_box, used: n } = boxes::decode(&all[used..], usize::MAX) {
            used += n;
            let raw = unpack(&amp_box, "packed_data", 1 << 20).unwrap();
            let Ok(Py::Tuple(items)) = decode(&raw, &Default::default()) else {
                panic!()
            };
            let (Py::Int(sessid), Py::Dict(kwargs)) = (&items[0], &items[1]) else {
                panic!()
            };
            let Some(Py::Str(op)) = get(kwargs, "operation") else {
                continue;
            };
            let listed = match get(kwargs, "sessiondata") {
                Some(Py::Dict(all)) if op == "\x03" => all
                    .iter()
                    .filter_map(|(k, _)| if let Py::Int(i) = k { Some(*i) } else { None })
                    .collect(),
                _ => Vec::new(),
            };
            ops.push((op.as_bytes()[0], *sessid, listed));
        }
        ops
    }

    #[test]
    fn an_evennia_server_hears_of_a_session_no_game_has_seen_as_a_connect() {
        let mut config = Config::default();
        config.amp.dialect = Dialect::Evennia;
        let mut o = outbox(config);
        o.link_up(1);
        o.sync_request(1, vec![]);
        o.connect(record(1)); // announced to the first game
        o.link_down(1);
        o.connect(record(2)); // arrives while no game is linked
        o.link_up(2);
        o.sync_request(2, vec![record(1), record(2)]);
        assert_eq!(evennia_ops(&o), vec![(3, 0, vec![1]), (1, 2, vec![])]);
        // A later sync lists it like any other.
        o.link_up(3);
        o.sync_request(3, vec![record(1), record(2)]);
        assert_eq!(evennia_ops(&o), vec![(3, 0, vec![1, 2])]);
    }

    #[test]
    fn the_evennia_dialect_writes_one_box_at_a_time_and_answers_on_its_link() {
        use crate::amp::evennia::boxes::{self, Decoded as BoxDecoded};
        let mut config = Config::default();
        config.amp.dialect = Dialect::Evennia;
        let mut o = outbox(config);
        o.link_up(4);
        o.sync_request(4, vec![record(1)]);
        o.input(
            1,
            vec![Command::text("look"), Command::text("say hi")],
            Instant::now(),
        );
        o.answer(9, AmpBox::answer(b"x"));
        o.answer(4, AmpBox::answer(b"a1"));
        let all = o.transmit().to_vec();
        let mut from = 0;
        let mut commands = Vec::new();
        while from < all.len() {
            let one = o.next_write(from).to_vec();
            let BoxDecoded::Box { amp_box, used } = boxes::decode(&one, usize::MAX) else {
                panic!("a write is not one whole box");
            };
            assert_eq!(used, one.len(), "exactly one box per write");
            commands.push(
                amp_box
                    .text("_command")
                    .or(amp_box.text("_answer"))
                    .unwrap(),
            );
            from += used;
        }
        assert_eq!(
            commands,
            [
                "AdminPortal2Server", // PSYNC
                "AdminPortal2Server", // PCONN: the session is new to every game
                "MsgPortal2Server",
                "MsgPortal2Server",
                "a1"
            ],
            "the answer for another link is not written"
        );
        // Half a box written: the rest of that box comes next, alone.
        o.wrote(3);
        let rest = o.next_write(0).len();
        o.wrote(rest);
        assert!(matches!(
            boxes::decode(o.next_write(0), usize::MAX),
            BoxDecoded::Box { .. }
        ));
    }
}

/// `#[serde(with)]` for held commands: each with its arrival as an offset.
mod timed_commands {
    use super::*;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(
        held: &VecDeque<(Instant, Command)>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let now = Instant::now();
        let reference = crate::session::frozen::reference_or(now);
        let items: Vec<(i64, &Command)> = held
            .iter()
            .map(|(at, c)| (offset_of(*at, reference), c))
            .collect();
        items.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<VecDeque<(Instant, Command)>, D::Error> {
        let items: Vec<(i64, Command)> = Vec::deserialize(d)?;
        let reference = crate::session::frozen::reference_or(Instant::now());
        items
            .into_iter()
            .map(|(offset, c)| {
                instant_at(reference, offset)
                    .map(|at| (at, c))
                    .ok_or_else(|| serde::de::Error::custom("instant out of range"))
            })
            .collect()
    }
}

/// `#[serde(with)]` for the ping in flight.
mod ping {
    use super::*;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(
        ping: &Option<(u64, Instant)>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let reference = crate::session::frozen::reference_or(Instant::now());
        ping.map(|(seq, at)| (seq, offset_of(at, reference)))
            .serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<(u64, Instant)>, D::Error> {
        let Some((seq, offset)) = Option::<(u64, i64)>::deserialize(d)? else {
            return Ok(None);
        };
        let reference = crate::session::frozen::reference_or(Instant::now());
        instant_at(reference, offset)
            .map(|at| Some((seq, at)))
            .ok_or_else(|| serde::de::Error::custom("instant out of range"))
    }
}
