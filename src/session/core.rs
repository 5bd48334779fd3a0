//! The session core: one connection's rules as a sans-IO state machine.
//!
//! Everything a session decides lives here; nothing here touches a socket,
//! a thread, a channel, the clock or the registry. Time comes in as a
//! `now: Instant` argument, bytes and messages come in through calls, and
//! what the rest of the portal must do comes out as [`CoreEvent`]s, bytes
//! for the socket and the next deadline. The session worker
//! ([`super::worker`]) is the only caller: it feeds the socket's plaintext
//! and the registry's messages in, writes [`Core::transmit`] out, applies
//! the events and sleeps until [`Core::poll_timeout`].
//!
//! ```text
//!  handle_input ──► protocol engine ──► line framer ──► size/rate checks ──► Input
//!                      │ GMCP/MSDP commands ────────────► rate check ───────┘
//!                      │ Ready / resize ──► Sync      MSSP request ──► MsspRequest
//!                      │ websocket opened ──► Register
//!  transmit ◄── output buffer (capped) ◄── engine (MCCP2, frames) ◄── render ◄── handle_message
//!  handle_timeout ──► engine timers, idle timeout, login deadline, close linger
//! ```
//!
//! The rules it owns: line framing (backspace editing included), control
//! characters stripped from every protocol's lines, `max_char_limit`, `max_command_rate`
//! (with at most one notice a second), the NUL-only keepalive line (sent
//! on as an `idle` marker), the idle timeout (web: only player input
//! counts, not pongs), the login deadline, the HTTP probe on a telnet
//! port's first line, the invalid-encoding notice, the output buffer cap,
//! the close (reason shown, then an end once flushed or after a linger),
//! web registration only once the websocket opens, and config reloads.
//! The TLS handshake deadline stays with the worker, which owns the
//! transport that knows whether a handshake is still going on.
//!
//! Output for the socket is a buffer rather than owned chunks
//! ([`Core::transmit`]): bytes the socket has not taken yet must stay
//! counted against `output_buffer_bytes`, and the worker writes straight
//! from it without a copy. Messages from the rest of the portal (`ToWorker`)
//! are defined with the handle that sends them ([`crate::session::handle`]).

use crate::config::{fill, Config};
use crate::protocols::http::{Request, Response};
use crate::protocols::http_probe;
use crate::protocols::telnet::{InputFailure, TelnetEvent};
use crate::protocols::terminal::TerminalEvent;
use crate::protocols::websocket::{AjaxPost, WebEvent};
use crate::session::framer::{strip_controls, Framed, LineFramer};
use crate::session::frozen;
use crate::session::handle::ToWorker;
use crate::session::protocol::Protocol;
use crate::throttle::RateLimiter;
use crate::wire::flags::ProtocolFlags;
use crate::wire::message::Command;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a closing session may take to flush its last output.
pub const CLOSE_LINGER: Duration = Duration::from_secs(2);
/// Shortest gap between two "too fast" notices to one player.
const RATE_NOTICE_GAP: Duration = Duration::from_secs(1);
/// The idle timer fires this much after the deadline (a wake-up a hair
/// early would otherwise sleep again for nothing).
const IDLE_SLACK: Duration = Duration::from_millis(10);

/// Who opened the connection, and how it speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Direction {
    /// A player connected to us: full telnet offers, idle and login timeouts.
    Inbound,
    /// A browser on the web listener: HTTP, then a websocket session.
    Web,
    /// We connected out for the game: no offers, no timeouts.
    Outbound,
}

/// Why a session is ending.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Closing {
    /// The peer closed or the socket failed: end at once.
    PeerGone,
    /// Someone asked (game, shutdown, idle or login timeout, HTTP probe):
    /// flush what is queued first.
    Asked,
}

/// What the worker must do for the core, in order.
#[derive(Debug, PartialEq)]
pub enum CoreEvent {
    /// Register the session with the registry (at once for telnet, when
    /// the websocket opens for the web). For the web, the browser id and
    /// the chosen subprotocol.
    Register {
        csessid: Option<String>,
        subprotocol: Option<&'static str>,
        /// For the web: the chain of `Forwarded` / `X-Forwarded-For` hops
        /// the request named (believed only from a trusted proxy).
        forwarded: Vec<String>,
    },
    /// The negotiated flags changed (or negotiation settled): sync them
    /// (read them with [`Core::protocol`]).
    Sync,
    /// One command for the game. `visible` is false for the keepalive's
    /// `idle` marker, which is not counted as a command.
    Input { command: Command, visible: bool },
    /// A command was refused by `max_command_rate` (a counter).
    Refused,
    /// The client asked for the MSSP table: answer with [`Core::send_mssp`].
    MsspRequest,
    /// Bytes read from the socket (raised by the worker, a counter).
    BytesIn(usize),
    /// Bytes written to the socket (raised by the worker, a counter).
    BytesOut(usize),
    /// An AJAX request for the worker to carry out: answer it with
    /// [`Core::answer_ajax`] or take the connection with
    /// [`Core::hand_over`].
    Ajax(Box<AjaxPost>),
    /// A plain request for the game's web server (`[web] upstream`): the
    /// worker relays it ([`crate::session::relay`]), taking the body's
    /// first bytes with [`Core::take_relay_input`], and ends it with
    /// [`Core::relay_done`].
    Relay(Box<Request>),
}

/// Output held back from a new telnet client until its first bytes show
/// it is not a browser, or `telnet.negotiation_hold_ms` passes.
#[derive(Serialize, Deserialize)]
struct Hold {
    #[serde(with = "frozen::instant")]
    until: Instant,
    /// The output so far (counted against `output_buffer_bytes`).
    bytes: Vec<u8>,
    /// The client's first bytes, as many as the HTTP check needs.
    start: Vec<u8>,
}

/// One session's rules and state.
///
/// Serde carries all of it but the config to a new process (`portal
/// upgrade`): see [`Core::freeze`] and [`Core::thaw`] (in `core/freeze.rs`).
#[derive(Serialize, Deserialize)]
pub struct Core {
    sessid: u64,
    #[serde(skip, default = "freeze::placeholder_config")]
    config: Arc<Config>,
    direction: Direction,
    protocol: Protocol,
    framer: LineFramer,
    limiter: RateLimiter,
    #[serde(with = "frozen::instant")]
    started: Instant,
    /// Last player input: any bytes for telnet, lines and commands for web.
    #[serde(with = "frozen::instant")]
    last_input: Instant,
    #[serde(with = "frozen::option_instant")]
    rate_notice_at: Option<Instant>,
    /// The login deadline (`login_timeout_secs` after the start) still
    /// holds: a player session not yet closed for it.
    login_armed: bool,
    logged_in: bool,
    /// Known to the registry (a web page fetch never is).
    registered: bool,
    /// Flags the game set (they win over the negotiated ones when rendering).
    game_flags: ProtocolFlags,
    dropped_subnegotiations: u64,
    /// A first line arrived (only it is checked for HTTP).
    seen_line: bool,
    /// A browser on the telnet port was answered: nothing more is sent
    /// (the game's login screen would land in the HTTP body).
    answered_http: bool,
    /// Plaintext waiting for the socket, at most `output_buffer_bytes`.
    out: Vec<u8>,
    /// While a new telnet client may be a browser: output held back.
    hold: Option<Box<Hold>>,
    closing: Option<Closing>,
    /// When a requested close began: the linger runs from it.
    #[serde(with = "frozen::instant")]
    close_asked_at: Instant,
    #[serde(with = "freeze::events")]
    events: VecDeque<CoreEvent>,
}

impl Core {
    /// A session starting at `now` over `protocol`. A telnet session asks
    /// to be registered at once; a web one when its websocket opens.
    pub fn new(
        sessid: u64,
        config: Arc<Config>,
        direction: Direction,
        protocol: Protocol,
        now: Instant,
    ) -> Core {
        let mut core = Core {
            sessid,
            framer: LineFramer::new(config.limits.max_char_limit),
            limiter: RateLimiter::new(config.limits.max_command_rate, now),
            config,
            direction,
            protocol,
            started: now,
            last_input: now,
            rate_notice_at: None,
            login_armed: direction != Direction::Outbound,
            logged_in: false,
            registered: false,
            game_flags: ProtocolFlags::default(),
            dropped_subnegotiations: 0,
            seen_line: false,
            answered_http: false,
            out: Vec::new(),
            hold: None,
            closing: None,
            close_asked_at: now,
            events: VecDeque::new(),
        };
        if direction != Direction::Web {
            core.register(None, None, Vec::new());
        }
        let hold_ms = core.config.telnet.negotiation_hold_ms;
        if direction == Direction::Inbound && matches!(core.protocol, Protocol::Telnet(_)) {
            core.hold = (hold_ms > 0).then(|| {
                Box::new(Hold {
                    until: now + Duration::from_millis(hold_ms),
                    bytes: Vec::new(),
                    start: Vec::new(),
                })
            });
        }
        core.take_transmit();
        core
    }

    /// Send what was held: the client is not a browser (or the wait is
    /// over).
    fn release_hold(&mut self) {
        if let Some(hold) = self.hold.take() {
            self.queue_bytes(&hold.bytes);
        }
    }

    /// A new client's first bytes: release the held output unless they
    /// may still be an HTTP request.
    fn check_hold(&mut self, bytes: &[u8]) {
        let Some(hold) = &mut self.hold else {
            return;
        };
        let room = 8usize.saturating_sub(hold.start.len());
        hold.start
            .extend_from_slice(&bytes[..bytes.len().min(room)]);
        if !http_probe::may_be_request(&hold.start) {
            self.release_hold();
        }
    }

    pub fn sessid(&self) -> u64 {
        self.sessid
    }

    /// When the connection was made.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// The config in force.
    pub fn config(&self) -> &Arc<Config> {
        &self.config
    }

    /// Who opened the connection.
    pub fn direction(&self) -> Direction {
        self.direction
    }

    /// The protocol engine (for its negotiated flags).
    pub fn protocol(&self) -> &Protocol {
        &self.protocol
    }

    /// A reloaded portal.conf (SIGHUP): limits and messages apply from now.
    pub fn set_config(&mut self, config: Arc<Config>) {
        self.limiter.set_rate(config.limits.max_command_rate);
        self.framer.set_max(config.limits.max_char_limit);
        if let Protocol::Terminal(terminal) = &mut self.protocol {
            terminal.set_max_chars(config.limits.max_char_limit);
        }
        self.config = config;
    }

    /// What an SSH client said about its terminal: `TERM` and `COLORTERM`
    /// (the colour depth) and its size in columns and rows (pty-req,
    /// window-change; the flags NAWS sets for telnet). Synced to the game
    /// when the flags change.
    pub fn set_term(&mut self, term: &crate::ssh::TermInfo) {
        if let Protocol::Terminal(terminal) = &mut self.protocol {
            let before = terminal.flags().clone();
            terminal.set_term(&term.term, &term.colorterm);
            terminal.set_size(term.width, term.height);
            if self.registered && terminal.flags() != &before {
                self.events.push_back(CoreEvent::Sync);
            }
        }
    }

    // ---- input ----

    /// Plaintext bytes from the socket.
    pub fn handle_input(&mut self, bytes: &[u8], now: Instant) {
        if self.closing.is_some() {
            return;
        }
        // Web sessions count only what the player sends as input: pongs
        // arrive every ping interval and must not keep an idle player.
        if let Protocol::Telnet(_) | Protocol::Terminal(_) = self.protocol {
            self.last_input = now;
        }
        self.check_hold(bytes);
        self.protocol.handle_input(bytes, now);
        self.pump(now);
        if self.seen_line {
            // A first line that was not a request.
            self.release_hold();
        }
        let failure = match &self.protocol {
            Protocol::Telnet(telnet) => telnet.input_failure(),
            Protocol::Web(_) | Protocol::Terminal(_) => None,
        };
        match failure {
            None => {}
            Some(InputFailure::Corrupt) => {
                log::warn!("session {}: corrupt MCCP3 input; closing", self.sessid);
                self.end_now();
            }
            Some(InputFailure::TooLarge) => {
                log::warn!(
                    "session {}: MCCP3 input inflated past telnet.max_inflated_input; closing",
                    self.sessid
                );
                let text = self.config.messages.input_too_large.clone();
                self.close_with(&text, now);
            }
        }
    }

    /// The socket is gone (closed, failed, or a TLS handshake ran late):
    /// end without flushing.
    pub fn handle_peer_gone(&mut self) {
        self.out.clear();
        self.end_now();
    }

    /// A message from the rest of the portal.
    pub(crate) fn handle_message(&mut self, message: ToWorker, now: Instant) {
        match message {
            ToWorker::Out { commands, .. } => self.render(commands),
            ToWorker::Close(reason) => {
                log::debug!("session {}: closing: {reason}", self.sessid);
                self.close_with(&reason, now);
            }
            ToWorker::Flags(flags) => self.game_flags.merge(&flags),
            ToWorker::LoggedIn(logged_in) => self.logged_in = logged_in,
            // Only an AJAX session's worker takes these (before its core),
            // and the worker freezes itself.
            ToWorker::Ajax(_) | ToWorker::Freeze(_) => {}
        }
        self.take_transmit();
    }

    /// Run whatever timers are due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.hold.as_ref().is_some_and(|hold| now >= hold.until) {
            self.release_hold();
        }
        self.protocol.handle_timeout(now);
        self.pump(now);
        self.check_idle(now);
        self.check_login(now);
        self.take_transmit();
    }

    /// The MSSP table the worker built for a [`CoreEvent::MsspRequest`].
    pub fn send_mssp(&mut self, table: &[(String, Vec<String>)]) {
        if let Protocol::Telnet(telnet) = &mut self.protocol {
            telnet.send_mssp(table);
        }
        self.take_transmit();
    }

    /// Answer the AJAX request of a [`CoreEvent::Ajax`]; the next request
    /// is read.
    pub fn answer_ajax(&mut self, response: Response, now: Instant) {
        if let Protocol::Web(web) = &mut self.protocol {
            web.answer_ajax(response, now);
        }
        self.pump(now);
    }

    /// What was read past a [`CoreEvent::Relay`] request's head.
    pub fn take_relay_input(&mut self) -> Vec<u8> {
        match &mut self.protocol {
            Protocol::Web(web) => web.take_relay_input(),
            Protocol::Telnet(_) | Protocol::Terminal(_) => Vec::new(),
        }
    }

    /// Whether the connection may carry a request after the relayed one.
    pub fn relay_may_keep_alive(&self) -> bool {
        match &self.protocol {
            Protocol::Web(web) => web.relay_may_keep_alive(),
            Protocol::Telnet(_) | Protocol::Terminal(_) => false,
        }
    }

    /// A relayed request is over (see [`crate::protocols::websocket::WebEngine::relay_done`]).
    pub fn relay_done(&mut self, leftover: Vec<u8>, keep_alive: bool, now: Instant) {
        if let Protocol::Web(web) = &mut self.protocol {
            web.relay_done(leftover, keep_alive, now);
        }
        self.pump(now);
    }

    /// The connection goes to an AJAX session (a parked receive): the
    /// input read past the request and the output not yet written, for
    /// whoever serves it next. This core reads nothing more.
    pub fn hand_over(&mut self) -> (Vec<u8>, Vec<u8>) {
        let leftover = match &mut self.protocol {
            Protocol::Web(web) => web.hand_over(),
            Protocol::Telnet(_) | Protocol::Terminal(_) => Vec::new(),
        };
        (leftover, std::mem::take(&mut self.out))
    }

    /// A connection taken back from an AJAX session: its output so far
    /// (the answer), and, with `end`, a close once it is written.
    pub fn resume_with(&mut self, output: &[u8], end: bool, now: Instant) {
        self.queue_bytes(output);
        if end {
            if let Protocol::Web(web) = &mut self.protocol {
                web.hand_over();
            }
            self.close_asked(now);
        }
    }

    /// An AJAX session's next output message (one JSON text), if any.
    pub fn next_message(&mut self) -> Option<String> {
        let end = self.out.iter().position(|&b| b == b'\n')?;
        let line: Vec<u8> = self.out.drain(..=end).collect();
        self.trim_transmit();
        Some(String::from_utf8_lossy(&line[..end]).into_owned())
    }

    /// Whether an AJAX session has output waiting.
    pub fn has_message(&self) -> bool {
        self.out.contains(&b'\n')
    }

    /// Copy the negotiated flags into a session record being registered.
    pub fn merge_flags_into(&self, record: &mut ProtocolFlags) {
        self.protocol.merge_flags_into(record);
    }

    // ---- output ----

    /// The next thing for the worker to do.
    pub fn poll_event(&mut self) -> Option<CoreEvent> {
        let event = self.events.pop_front();
        if event.is_none() && self.events.capacity() > 0 {
            // An idle session keeps no event storage.
            self.events = VecDeque::new();
        }
        event
    }

    /// The plaintext waiting for the socket. The worker writes from the
    /// front and removes what was written (as [`super::transport`] does);
    /// unwritten bytes stay counted against the output cap.
    pub fn transmit(&mut self) -> &mut Vec<u8> {
        &mut self.out
    }

    /// After a write: give a burst's large, now empty buffer back.
    pub fn trim_transmit(&mut self) {
        // Output comes in bursts (a room, a login screen) between long
        // idle spells: holding the burst's buffer would cost an idle
        // session its size, and a new one costs one allocation per burst.
        if self.out.is_empty() && self.out.capacity() > 0 {
            self.out = Vec::new();
        }
    }

    /// When [`Core::handle_timeout`] next has something to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.closing.is_some() {
            return Some(self.close_asked_at + CLOSE_LINGER);
        }
        let idle = self.config.limits.idle_timeout_secs;
        let idle_deadline = (self.direction != Direction::Outbound && idle > 0)
            .then(|| self.last_input + secs(idle) + IDLE_SLACK);
        let login = self.login_deadline().filter(|_| self.login_pending());
        let hold = self.hold.as_ref().map(|hold| hold.until);
        [idle_deadline, self.protocol.poll_timeout(), login, hold]
            .into_iter()
            .flatten()
            .min()
    }

    /// Whether the session is ending.
    pub fn is_closing(&self) -> bool {
        self.closing.is_some()
    }

    /// Whether the session has ended: at once when the peer is gone, for
    /// a requested close once `flushed` (nothing left for the socket,
    /// TLS included) or when the linger is over.
    pub fn is_finished(&self, now: Instant, flushed: bool) -> bool {
        match self.closing {
            None => false,
            Some(Closing::PeerGone) => true,
            Some(Closing::Asked) => flushed || now >= self.close_asked_at + CLOSE_LINGER,
        }
    }

    /// How the session ends, once it does.
    pub fn closing(&self) -> Option<Closing> {
        self.closing
    }

    // ---- the rules ----

    fn register(
        &mut self,
        csessid: Option<String>,
        subprotocol: Option<&'static str>,
        forwarded: Vec<String>,
    ) {
        self.registered = true;
        self.events.push_back(CoreEvent::Register {
            csessid,
            subprotocol,
            forwarded,
        });
    }

    /// A requested close: the first one counts.
    fn close_asked(&mut self, now: Instant) {
        if self.closing.is_none() {
            self.closing = Some(Closing::Asked);
            self.close_asked_at = now;
        }
    }

    /// End at once, whatever close was under way (no linger).
    fn end_now(&mut self) {
        self.closing = Some(Closing::PeerGone);
    }

    /// Show `reason` (if any), tell a websocket why, then end once flushed.
    fn close_with(&mut self, reason: &str, now: Instant) {
        self.release_hold();
        if !reason.is_empty() {
            self.say(reason);
        }
        let going_away = reason == self.config.messages.shutdown;
        self.protocol.close(reason, going_away);
        self.close_asked(now);
    }

    /// Act on everything the protocol engine has to report, then queue
    /// what it has to send.
    fn pump(&mut self, now: Instant) {
        match &self.protocol {
            Protocol::Telnet(_) => self.pump_telnet(now),
            Protocol::Web(_) => self.pump_web(now),
            Protocol::Terminal(_) => self.pump_terminal(now),
        }
        self.take_transmit();
    }

    fn pump_telnet(&mut self, now: Instant) {
        loop {
            let Protocol::Telnet(telnet) = &mut self.protocol else {
                return;
            };
            let Some(event) = telnet.poll_event() else {
                break;
            };
            match event {
                TelnetEvent::Data(data) => self.handle_data(&data, now),
                TelnetEvent::Command(command) => self.forward(command, now),
                TelnetEvent::Ready | TelnetEvent::FlagsChanged => {
                    self.events.push_back(CoreEvent::Sync)
                }
                TelnetEvent::MsspRequest => self.events.push_back(CoreEvent::MsspRequest),
            }
        }
        self.note_dropped_subnegotiations();
    }

    fn pump_web(&mut self, now: Instant) {
        loop {
            let Protocol::Web(web) = &mut self.protocol else {
                return;
            };
            let Some(event) = web.poll_event() else {
                return;
            };
            match event {
                WebEvent::Served {
                    status,
                    method,
                    path,
                } => log::debug!("session {}: HTTP {method} {path} → {status}", self.sessid),
                WebEvent::Opened {
                    csessid,
                    format,
                    forwarded,
                } => {
                    if !self.registered {
                        self.last_input = now;
                        self.register(Some(csessid), Some(format.subprotocol()), forwarded);
                        // Nothing is left to negotiate: synced at once.
                        self.events.push_back(CoreEvent::Sync);
                    }
                }
                WebEvent::Line(line) => {
                    self.last_input = now;
                    self.handle_web_line(line, now);
                }
                WebEvent::Command(command) => {
                    self.last_input = now;
                    self.forward(command, now);
                }
                WebEvent::FlagsChanged => {
                    if self.registered {
                        self.events.push_back(CoreEvent::Sync);
                    }
                }
                WebEvent::Refused(why) => {
                    log::info!("session {}: web client message refused: {why}", self.sessid)
                }
                WebEvent::Closed(why) => {
                    log::debug!("session {}: web connection ends: {why}", self.sessid);
                    self.close_asked(now);
                }
                WebEvent::Ajax(post) => self.events.push_back(CoreEvent::Ajax(post)),
                WebEvent::Relay(request) => self.events.push_back(CoreEvent::Relay(request)),
            }
        }
    }

    /// Lines the terminal engine's editor finished; Ctrl-D on an empty
    /// line closes the session.
    fn pump_terminal(&mut self, now: Instant) {
        loop {
            let Protocol::Terminal(terminal) = &mut self.protocol else {
                return;
            };
            let Some(event) = terminal.poll_event() else {
                return;
            };
            if self.closing.is_some() {
                continue;
            }
            match event {
                TerminalEvent::Line(line) => self.handle_web_line(line, now),
                TerminalEvent::Quit => {
                    log::info!(
                        "session {}: the player pressed Ctrl-D; closing",
                        self.sessid
                    );
                    self.close_asked(now);
                }
            }
        }
    }

    /// A line from a web client or terminal: same limits as a telnet line.
    fn handle_web_line(&mut self, line: String, now: Instant) {
        if line.chars().count() > self.config.limits.max_char_limit {
            return self.refuse_long_line();
        }
        self.forward(Command::text(without_controls(line)), now);
    }

    fn note_dropped_subnegotiations(&mut self) {
        let Protocol::Telnet(telnet) = &self.protocol else {
            return;
        };
        let dropped = telnet.dropped_subnegotiations();
        if dropped > self.dropped_subnegotiations {
            self.dropped_subnegotiations = dropped;
            log::info!(
                "session {}: subnegotiation over max_subnegotiation dropped ({dropped} so far)",
                self.sessid
            );
        }
    }

    fn handle_data(&mut self, data: &[u8], now: Instant) {
        let mut framed = Vec::new();
        self.framer.push(data, &mut framed);
        for item in framed {
            if self.closing.is_some() {
                return;
            }
            match item {
                Framed::Line(line) => self.handle_line(line, now),
                Framed::TooLong => self.refuse_long_line(),
            }
        }
    }

    fn refuse_long_line(&mut self) {
        log::info!(
            "session {}: input line over max_char_limit refused",
            self.sessid
        );
        let limit = self.config.limits.max_char_limit.to_string();
        let text = fill(&self.config.messages.char_limit, "limit", &limit);
        self.say(&text);
    }

    fn handle_line(&mut self, line: Vec<u8>, now: Instant) {
        let first = !std::mem::replace(&mut self.seen_line, true);
        if first && http_probe::is_http_request(&line) {
            return self.answer_browser(now);
        }
        if !line.is_empty() && line.iter().all(|&b| b == 0) {
            let command = Command::text("idle");
            let visible = false;
            return self.events.push_back(CoreEvent::Input { command, visible });
        }
        let Protocol::Telnet(telnet) = &self.protocol else {
            return;
        };
        let (text, replaced) = telnet.decode_line(&line);
        if replaced {
            let encoding = telnet.flags().encoding.as_deref().unwrap_or("utf-8");
            log::info!(
                "session {}: invalid {} in input replaced",
                self.sessid,
                encoding.to_uppercase()
            );
            let notice = self.config.messages.invalid_utf8.clone();
            self.say(&notice);
        }
        self.forward(Command::text(without_controls(text)), now);
    }

    /// A command (typed line or GMCP/MSDP) past the rate limit goes on.
    fn forward(&mut self, command: Command, now: Instant) {
        if !self.limiter.try_take(now) {
            self.events.push_back(CoreEvent::Refused);
            return self.refuse_fast_command(now);
        }
        let visible = true;
        self.events.push_back(CoreEvent::Input { command, visible });
    }

    /// A browser on the telnet port: a short plain answer, then close.
    fn answer_browser(&mut self, now: Instant) {
        log::info!(
            "session {}: HTTP request on a telnet port; answered and closed",
            self.sessid
        );
        // What the telnet engine said so far is not for a browser.
        self.hold = None;
        let web_port = (self.config.web.listen.first())
            .and_then(|addr| crate::config::parse_addr(addr).ok())
            .map(|addr| addr.port())
            .filter(|port| *port != 0);
        self.queue_bytes(http_probe::answer(web_port).as_bytes());
        self.answered_http = true;
        self.close_asked(now);
    }

    fn refuse_fast_command(&mut self, now: Instant) {
        let recent = self
            .rate_notice_at
            .is_some_and(|at| now.saturating_duration_since(at) < RATE_NOTICE_GAP);
        if !recent {
            log::info!("session {}: over max_command_rate", self.sessid);
            self.rate_notice_at = Some(now);
            let text = self.config.messages.command_rate.clone();
            self.say(&text);
        }
    }

    fn check_idle(&mut self, now: Instant) {
        let idle = self.config.limits.idle_timeout_secs;
        let outbound = self.direction == Direction::Outbound;
        if outbound || idle == 0 || self.closing.is_some() || !self.registered {
            return;
        }
        if now.saturating_duration_since(self.last_input) >= secs(idle) {
            log::info!("session {}: idle timeout", self.sessid);
            let text = self.config.messages.idle_timeout.clone();
            self.say(&text);
            self.protocol.close(&text, false);
            self.close_asked(now);
        }
    }

    /// When a player who has not logged in is closed; `None` with the
    /// timeout off.
    fn login_deadline(&self) -> Option<Instant> {
        let login = self.config.limits.login_timeout_secs;
        (login > 0).then(|| self.started + secs(login))
    }

    /// A registered player who has not logged in (the deadline is armed).
    fn login_pending(&self) -> bool {
        self.login_armed && self.registered && !self.logged_in && self.closing.is_none()
    }

    /// Close a player who has not logged in by the deadline (slow or
    /// silent clients, slowloris).
    fn check_login(&mut self, now: Instant) {
        let due = self.login_deadline().is_some_and(|at| now >= at);
        if !due || !self.login_pending() {
            return;
        }
        log::info!("session {}: not logged in in time; closed", self.sessid);
        self.login_armed = false;
        let text = self.config.messages.login_timeout.clone();
        self.close_with(&text, now);
    }

    fn render(&mut self, commands: Vec<Command>) {
        for command in commands {
            match command.name.as_str() {
                "text" | "prompt" => self.protocol.show_text(&command, &self.game_flags),
                _ => {
                    if !self.protocol.send_oob(&command) {
                        log::debug!(
                            "session {}: `{}` dropped: the client has no out-of-band channel",
                            self.sessid,
                            command.name
                        );
                    }
                }
            }
        }
    }

    /// A line from the portal itself (limits, notices), shown as is.
    fn say(&mut self, text: &str) {
        self.protocol.notice(text, &self.game_flags);
        self.take_transmit();
    }

    /// Move the protocol engine's output into the socket buffer.
    fn take_transmit(&mut self) {
        while let Some(bytes) = self.protocol.poll_transmit() {
            self.queue_bytes(&bytes);
        }
    }

    fn queue_bytes(&mut self, bytes: &[u8]) {
        if self.answered_http {
            return;
        }
        let held = self.hold.as_ref().map_or(0, |hold| hold.bytes.len());
        if self.out.len() + held + bytes.len() > self.config.limits.output_buffer_bytes {
            log::warn!(
                "session {}: client is not reading; output buffer full ({} bytes), closing",
                self.sessid,
                self.out.len()
            );
            self.out.clear();
            self.end_now();
            return;
        }
        match &mut self.hold {
            Some(hold) => hold.bytes.extend_from_slice(bytes),
            None => self.out.extend_from_slice(bytes),
        }
    }
}

/// A player's line with the control characters removed (see
/// [`strip_controls`]); no copy when there are none.
fn without_controls(line: String) -> String {
    match strip_controls(&line) {
        std::borrow::Cow::Borrowed(_) => line,
        std::borrow::Cow::Owned(clean) => clean,
    }
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

mod freeze;
pub use freeze::{max_state_bytes, FreezeError, ThawError, CORE_STATE_VERSION, MAX_STATE_BYTES};

#[cfg(test)]
mod tests;
