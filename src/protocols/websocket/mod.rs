//! The web listener's protocol: HTTP/1.1 for the page, then RFC 6455
//! websockets for play (protocol key `webclient/websocket`), one sans-IO
//! engine per connection; also the engine of an AJAX long-poll session
//! (`webclient/ajax`, [`WebEngine::new_ajax`]).
//!
//! ```text
//!  socket bytes ─► handle_input ─► HTTP stage: request head (http.rs)
//!                                    ├─► GET /, /client.js, /style.css, /favicon.svg ─► page.rs answer (keep-alive)
//!                                    ├─► POST /webclientdata (Origin, body ≤ max_message_bytes) ─► Ajax event;
//!                                    │     reading waits for answer_ajax, or hand_over gives the socket away
//!                                    ├─► with `relay` (an upstream): any other plain request ─► Relay event;
//!                                    │     the worker takes the bytes (take_relay_input), relays, relay_done
//!                                    ├─► other ─► 404 / 405 / 400 / 431 / 408 and close
//!                                    └─► upgrade (handshake.rs: Origin, subprotocol) ─► 101
//!                                  websocket stage: tungstenite frames ─► format.rs decode
//!                                    ─► poll_event: Opened, Line, Command, FlagsChanged (screen.rs), Refused, Closed
//!  game output ─► send_text / send_prompt / send_oob / send_notice / set_echo ─► format.rs encode
//!  replies, pongs, close frames ───────────────────────────────────────────────► poll_transmit
//!  now ─► handle_timeout: HTTP deadline, ping every interval, pong deadline
//! ```
//!
//! Frames are tungstenite's (`WebSocketContext`, its sans-IO core, over an
//! in-memory pipe), so every size limit is tungstenite's: a frame or
//! message over `[web] max_frame_bytes` / `max_message_bytes` closes the
//! websocket with 1009 (too big). The engine reads no clock and touches no
//! socket; the browser id (`csessid`) it hands out is made by the caller.
//!
//! An AJAX session's engine has no connection: it takes one message's
//! JSON text per `handle_input` and gives its output in Evennia's format,
//! one message a line, which the AJAX session's worker
//! ([`crate::session::ajax`]) hands out one receive at a time.
//!
//! ```
//! use portal::protocols::websocket::{WebEngine, WebEvent, WebSettings};
//! use std::time::Instant;
//! let now = Instant::now();
//! let mut web = WebEngine::new(WebSettings::default(), now);
//! web.handle_input(b"GET /nope HTTP/1.1\r\nHost: h\r\n\r\n", now);
//! assert!(matches!(web.poll_event(), Some(WebEvent::Served { status: 404, .. })));
//! let answer = web.poll_transmit().unwrap();
//! assert!(answer.starts_with(b"HTTP/1.1 404 Not Found\r\n"));
//! ```

pub mod evennia;
pub mod format;
pub mod gate;
pub mod gmcp_standard;
pub mod handshake;
pub mod json_standard;
pub mod page;
pub mod screen;
pub mod terminal;

use crate::protocols::ajax;
use crate::protocols::http::{parse_request, Parsed, Request, Response};
use crate::wire::flags::ProtocolFlags;
use crate::wire::message::Command;
use format::{Format, Frame, Incoming};
use gate::Gate;
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::time::{Duration, Instant};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::{CloseFrame, Role, WebSocketConfig, WebSocketContext};
use tungstenite::{Error as WsError, Message};

/// The cookie that carries the browser id over plain http.
pub const CSESSID_COOKIE: &str = "portal_csessid";
/// Its name over https: the `__Host-` prefix makes browsers refuse it
/// unless it is `Secure`, for this host only (no `Domain`) and `Path=/`, so
/// a sibling subdomain cannot plant a browser id of its choosing.
pub const SECURE_CSESSID_COOKIE: &str = "__Host-portal_csessid";
/// Most requests served on one kept-alive connection.
const MAX_REQUESTS: usize = 50;

/// The engine's limits and choices, from `[web]` in portal.conf.
#[derive(Debug, Clone)]
pub struct WebSettings {
    /// Origins allowed to open a websocket; empty = the page's own.
    pub allowed_origins: Vec<String>,
    /// Out-of-band command names accepted from clients (Evennia format).
    pub commands: Vec<String>,
    pub max_request_bytes: usize,
    pub max_frame_bytes: usize,
    pub max_message_bytes: usize,
    /// A request head (and a kept-alive connection's next one) must arrive
    /// within this.
    pub http_timeout: Duration,
    /// A ping goes out after this much time since the last one.
    pub ping_interval: Duration,
    /// No pong within this after a ping: the client is gone.
    pub pong_timeout: Duration,
    /// A new random browser id, used when the request brings none.
    pub fresh_csessid: String,
    /// Lifetime of the browser id cookie.
    pub cookie_max_age_secs: u64,
    /// Served over TLS: the cookie is marked `Secure`.
    pub secure: bool,
    /// The game's name (`[portal] name`), shown on the page.
    pub game_name: String,
    /// `[web] upstream` is set: plain requests other than the AJAX
    /// transport's go to the game's web server ([`WebEvent::Relay`]), the
    /// portal's own page is not served, and a websocket may name its
    /// browser id in its URL as Evennia's page does (`/?csessid&cuid&browser`).
    pub relay: bool,
}

impl Default for WebSettings {
    fn default() -> Self {
        WebSettings {
            allowed_origins: Vec::new(),
            commands: Vec::new(),
            max_request_bytes: 8192,
            max_frame_bytes: 64 << 10,
            max_message_bytes: 64 << 10,
            http_timeout: Duration::from_secs(10),
            ping_interval: Duration::from_secs(20),
            pong_timeout: Duration::from_secs(20),
            fresh_csessid: String::new(),
            cookie_max_age_secs: 30 * 24 * 3600,
            secure: false,
            game_name: "Portal".into(),
            relay: false,
        }
    }
}

/// What the engine has to report.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum WebEvent {
    /// A plain HTTP request was answered (for the log).
    Served {
        status: u16,
        method: String,
        path: String,
    },
    /// The websocket is open: from now on this is a session. `forwarded`:
    /// the client chain the request's `Forwarded` (else `X-Forwarded-For`)
    /// headers name, client first; the worker believes it only from a
    /// trusted proxy.
    Opened {
        csessid: String,
        format: Format,
        forwarded: Vec<String>,
    },
    /// A line the player typed.
    Line(String),
    /// An out-of-band command from the client.
    Command(Command),
    /// The client reported a new window size: [`WebEngine::flags`]
    /// changed (sync the session, as after a NAWS resize).
    FlagsChanged,
    /// A message the format cannot use; the client has been told why.
    Refused(String),
    /// The connection is over: send what is queued, then close.
    Closed(String),
    /// An AJAX request (`POST /webclientdata`, Origin and size checked):
    /// answer it with [`WebEngine::answer_ajax`], or take the connection
    /// away with [`WebEngine::hand_over`]. No further request is read
    /// until then. (Not carried by `portal upgrade`: the session is then
    /// [`WebEngine::uncarriable`].)
    #[serde(skip)]
    Ajax(Box<AjaxPost>),
    /// A plain request for the game's web server (with
    /// [`WebSettings::relay`]): the worker takes what was read past its
    /// head with [`WebEngine::take_relay_input`], relays it, and gives
    /// the connection back with [`WebEngine::relay_done`]. No further
    /// request is read until then. (Not carried by `portal upgrade`.)
    #[serde(skip)]
    Relay(Box<Request>),
}

/// An AJAX request with its body.
#[derive(Debug, Clone, PartialEq)]
pub struct AjaxPost {
    pub request: Request,
    pub body: Vec<u8>,
    /// The browser id cookie, if the request brought a valid one.
    pub cookie: Option<String>,
    /// The listener's Host, for the `init` answer.
    pub host: String,
}

/// Whether a browser id looks like one we hand out (and so may be kept).
pub fn valid_csessid(id: &str) -> bool {
    (16..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// An in-memory byte pipe under tungstenite: what the socket delivered,
/// and what is to be sent.
#[derive(Default)]
struct Pipe {
    input: VecDeque<u8>,
    output: Vec<u8>,
}

impl Read for Pipe {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.input.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        self.input.read(buf)
    }
}

impl Write for Pipe {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.output.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// An open websocket.
struct Socket {
    context: WebSocketContext,
    pipe: Pipe,
    /// Client bytes short of a whole message (tungstenite gets only whole
    /// ones, so its context holds nothing a freeze would lose).
    gate: Gate,
    format: Format,
    /// When the last ping went out, and whether its pong is still due.
    pinged_at: Instant,
    awaiting_pong: bool,
}

/// What of a [`Socket`] is carried to a new process: all but the
/// tungstenite context, which holds nothing between calls (see
/// [`gate`]) and is made anew from the current settings.
#[derive(serde::Serialize, serde::Deserialize)]
struct SocketState {
    input: Vec<u8>,
    output: Vec<u8>,
    gate: Gate,
    format: Format,
    #[serde(with = "crate::session::frozen::instant")]
    pinged_at: Instant,
    awaiting_pong: bool,
}

/// [`SocketState`] borrowed from a live socket, for encoding.
#[derive(serde::Serialize)]
struct SocketStateRef<'a> {
    input: Vec<u8>,
    output: &'a [u8],
    gate: &'a Gate,
    format: Format,
    #[serde(with = "crate::session::frozen::instant")]
    pinged_at: Instant,
    awaiting_pong: bool,
}

impl serde::Serialize for Socket {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        SocketStateRef {
            input: self.pipe.input.iter().copied().collect(),
            output: &self.pipe.output,
            gate: &self.gate,
            format: self.format,
            pinged_at: self.pinged_at,
            awaiting_pong: self.awaiting_pong,
        }
        .serialize(s)
    }
}

impl<'de> serde::Deserialize<'de> for Socket {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Socket, D::Error> {
        let state = SocketState::deserialize(d)?;
        Ok(Socket {
            context: WebSocketContext::new(Role::Server, None),
            pipe: Pipe {
                input: state.input.into(),
                output: state.output,
            },
            gate: state.gate,
            format: state.format,
            pinged_at: state.pinged_at,
            awaiting_pong: state.awaiting_pong,
        })
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
enum Stage {
    /// Reading request heads.
    Http {
        buffer: Vec<u8>,
        #[serde(with = "crate::session::frozen::instant")]
        deadline: Instant,
        served: usize,
        waiting: Waiting,
    },
    Socket(Box<Socket>),
    /// One AJAX session's output (no connection of its own): each message
    /// is one line of [`WebEngine::poll_transmit`]'s bytes.
    Ajax,
    /// Nothing more is read.
    Done,
}

/// What the HTTP stage waits for. (Only `Head` is carried by `portal
/// upgrade`: the others make the session [`WebEngine::uncarriable`].)
#[derive(serde::Serialize, serde::Deserialize)]
enum Waiting {
    /// The next request head.
    Head,
    /// The rest of an AJAX request's body (`length` bytes).
    #[serde(skip)]
    Body(Box<Request>, usize),
    /// The answer to an AJAX request handed out as [`WebEvent::Ajax`].
    #[serde(skip)]
    Answer(Box<Request>),
    /// The end of a request handed out as [`WebEvent::Relay`].
    Relayed,
}

/// One web connection's protocol state.
///
/// Serde carries it to a new process (`portal upgrade`, see
/// [`crate::session::frozen`]): of the settings only the per-connection
/// ones (`secure`, `fresh_csessid`); the rest come from the new config
/// ([`WebEngine::thaw_settings`]).
#[derive(serde::Serialize, serde::Deserialize)]
pub struct WebEngine {
    #[serde(with = "carried_settings")]
    settings: WebSettings,
    stage: Stage,
    #[serde(deserialize_with = "crate::session::frozen::bounded_deque")]
    events: VecDeque<WebEvent>,
    transmit: Vec<u8>,
    flags: ProtocolFlags,
}

impl WebEngine {
    /// A fresh connection, waiting for its first request.
    pub fn new(settings: WebSettings, now: Instant) -> WebEngine {
        let deadline = now + settings.http_timeout;
        WebEngine {
            settings,
            stage: Stage::Http {
                buffer: Vec::new(),
                deadline,
                served: 0,
                waiting: Waiting::Head,
            },
            events: VecDeque::new(),
            transmit: Vec::new(),
            flags: WebEngine::flags_for(Format::Evennia),
        }
    }

    /// The engine of one AJAX session for browser `csessid`: Evennia's
    /// format, output as one JSON message per line of
    /// [`WebEngine::poll_transmit`]; [`WebEngine::handle_input`] takes one
    /// message's JSON text. Reports [`WebEvent::Opened`] at once.
    pub fn new_ajax(settings: WebSettings, csessid: String, browser: &str) -> WebEngine {
        let mut flags = WebEngine::flags_for(Format::Evennia);
        flags.clientname = Some(if browser.is_empty() {
            "Portal webclient (ajax)".into()
        } else {
            format!("Portal webclient (ajax:{browser})").into()
        });
        flags.websocket_format = None;
        let opened = WebEvent::Opened {
            csessid,
            format: Format::Evennia,
            // The session's address is its init's connection's.
            forwarded: Vec::new(),
        };
        WebEngine {
            settings,
            stage: Stage::Ajax,
            events: VecDeque::from([opened]),
            transmit: Vec::new(),
            flags,
        }
    }

    /// Bytes from the socket.
    pub fn handle_input(&mut self, input: &[u8], now: Instant) {
        match &mut self.stage {
            Stage::Http { buffer, .. } => {
                buffer.extend_from_slice(input);
                self.read_requests(now);
            }
            Stage::Socket(socket) => {
                let (frame, message) = (
                    self.settings.max_frame_bytes,
                    self.settings.max_message_bytes,
                );
                let mut whole = Vec::new();
                socket.gate.push(input, frame, message, &mut whole);
                socket.pipe.input.extend(whole);
                self.read_frames();
            }
            Stage::Ajax => match std::str::from_utf8(input) {
                Ok(text) => self.decode_message(&Frame::Text(text.to_owned())),
                Err(_) => self.decode_message(&Frame::Binary(Vec::new())),
            },
            Stage::Done => {}
        }
    }

    /// Answer the AJAX request handed out as [`WebEvent::Ajax`], then read
    /// the next request.
    pub fn answer_ajax(&mut self, response: Response, now: Instant) {
        let Stage::Http { waiting, .. } = &mut self.stage else {
            return;
        };
        let Waiting::Answer(request) = std::mem::replace(waiting, Waiting::Head) else {
            return;
        };
        self.respond_to(&request, response);
        self.next_request(now);
        self.read_requests(now);
    }

    /// The bytes read past a [`WebEvent::Relay`] request's head (the
    /// start of its body), for the relay.
    pub fn take_relay_input(&mut self) -> Vec<u8> {
        match &mut self.stage {
            Stage::Http { buffer, .. } => std::mem::take(buffer),
            _ => Vec::new(),
        }
    }

    /// Whether the connection may carry another request after the one
    /// being relayed (at most `MAX_REQUESTS` per connection): if not, the
    /// relayed answer must say `Connection: close`.
    pub fn relay_may_keep_alive(&self) -> bool {
        match &self.stage {
            Stage::Http { served, .. } => *served + 1 < MAX_REQUESTS,
            _ => false,
        }
    }

    /// A relayed request is over: with `keep_alive`, read the next request
    /// from `leftover` (what the relay read past the body) and the socket;
    /// else close.
    pub fn relay_done(&mut self, leftover: Vec<u8>, keep_alive: bool, now: Instant) {
        let Stage::Http {
            buffer,
            waiting,
            served,
            ..
        } = &mut self.stage
        else {
            return;
        };
        if !matches!(waiting, Waiting::Relayed) {
            return;
        }
        if !keep_alive || *served + 1 >= MAX_REQUESTS {
            self.stage = Stage::Done;
            self.events
                .push_back(WebEvent::Closed("relayed request answered".into()));
            return;
        }
        *buffer = leftover;
        *waiting = Waiting::Head;
        self.next_request(now);
        self.read_requests(now);
    }

    /// The connection is being handed to an AJAX session (a parked
    /// receive): the bytes read past the request, for whoever reads it
    /// next. Nothing more is read here.
    pub fn hand_over(&mut self) -> Vec<u8> {
        let leftover = match &mut self.stage {
            Stage::Http { buffer, .. } => std::mem::take(buffer),
            _ => Vec::new(),
        };
        self.stage = Stage::Done;
        leftover
    }

    // ---- carried to a new process (`portal upgrade`) ----

    /// Why this engine cannot be carried, if it cannot: an AJAX request
    /// out with the worker or half read, a websocket whose close has
    /// begun (tungstenite's close state is not carried), or one whose
    /// gate passed on part of a message ([`gate`]).
    pub fn uncarriable(&self) -> Option<&'static str> {
        if self.events.iter().any(|e| matches!(e, WebEvent::Ajax(_))) {
            return Some("an AJAX request is being answered");
        }
        if self.events.iter().any(|e| matches!(e, WebEvent::Relay(_))) {
            return Some("a request for the game's web server is being relayed");
        }
        match &self.stage {
            Stage::Http { waiting, .. } => match waiting {
                Waiting::Head => None,
                Waiting::Body(..) => Some("an AJAX request body is being read"),
                Waiting::Answer(_) => Some("an AJAX request is being answered"),
                Waiting::Relayed => Some("a request for the game's web server is being relayed"),
            },
            Stage::Socket(socket) if !socket.context.can_write() => {
                Some("the websocket is closing")
            }
            Stage::Socket(socket) if socket.gate.spilled() => {
                Some("an oversized websocket message is being refused")
            }
            Stage::Socket(_) | Stage::Ajax | Stage::Done => None,
        }
    }

    /// Whether the listener was TLS (a per-connection setting a thaw
    /// keeps; the rest come from the new config).
    pub fn secure(&self) -> bool {
        self.settings.secure
    }

    /// After a thaw: the settings from the current config (the browser id
    /// made for this connection is kept) and a websocket context made
    /// with them; refused if a carried buffer is past the config's caps.
    pub fn thaw_settings(&mut self, settings: WebSettings) -> Result<(), &'static str> {
        let fresh_csessid = std::mem::take(&mut self.settings.fresh_csessid);
        self.settings = WebSettings {
            fresh_csessid,
            ..settings
        };
        let (request, message) = (
            self.settings.max_request_bytes,
            self.settings.max_message_bytes,
        );
        match &self.stage {
            Stage::Http { buffer, .. } if buffer.len() > request.saturating_add(message) => {
                return Err("an HTTP request past web.max_request_bytes");
            }
            Stage::Http { served, .. } if *served >= MAX_REQUESTS => {
                return Err("more requests served than a connection may have");
            }
            Stage::Socket(socket) if !socket.gate.fits(message) => {
                return Err("a websocket message past web.max_message_bytes");
            }
            Stage::Socket(socket)
                if socket.pipe.input.len() > message.saturating_add(gate::SLACK) =>
            {
                return Err("websocket input past web.max_message_bytes");
            }
            _ => {}
        }
        if self.settings.fresh_csessid.len() > 64 {
            return Err("a browser id longer than any made");
        }
        let context = self.new_context();
        if let Stage::Socket(socket) = &mut self.stage {
            socket.context = context;
            // Whole messages left in the pipe (none, after a call).
            self.read_frames();
        }
        Ok(())
    }

    /// Bytes the engine holds for the socket.
    pub fn buffered_bytes(&self) -> usize {
        let pipe = match &self.stage {
            Stage::Socket(socket) => socket.pipe.output.len(),
            _ => 0,
        };
        self.transmit.len() + pipe
    }

    /// The next thing to report.
    pub fn poll_event(&mut self) -> Option<WebEvent> {
        self.events.pop_front()
    }

    /// Bytes to write to the socket.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        if let Stage::Socket(socket) = &mut self.stage {
            self.transmit.append(&mut socket.pipe.output);
        }
        (!self.transmit.is_empty()).then(|| std::mem::take(&mut self.transmit))
    }

    /// When [`WebEngine::handle_timeout`] wants to run next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.stage {
            Stage::Http { deadline, .. } => Some(*deadline),
            Stage::Socket(socket) if socket.awaiting_pong => {
                Some(socket.pinged_at + self.settings.pong_timeout)
            }
            Stage::Socket(socket) => Some(socket.pinged_at + self.settings.ping_interval),
            Stage::Ajax | Stage::Done => None,
        }
    }

    /// Act on the clock: the HTTP deadline, pings and the pong deadline.
    pub fn handle_timeout(&mut self, now: Instant) {
        match &mut self.stage {
            Stage::Http { deadline, .. } if now >= *deadline => {
                let response = Response::error(408, "The request took too long.");
                self.respond_and_close(response, "request timed out".into(), false);
            }
            Stage::Socket(socket)
                if socket.awaiting_pong && now >= socket.pinged_at + self.settings.pong_timeout =>
            {
                self.stage = Stage::Done;
                self.events
                    .push_back(WebEvent::Closed("no answer to a ping".into()));
            }
            Stage::Socket(socket) if socket.awaiting_pong => {}
            Stage::Socket(socket) if now >= socket.pinged_at + self.settings.ping_interval => {
                socket.pinged_at = now;
                socket.awaiting_pong = true;
                let _ = socket
                    .context
                    .write(&mut socket.pipe, Message::Ping(Vec::new().into()));
                let _ = socket.context.flush(&mut socket.pipe);
            }
            _ => {}
        }
    }

    /// Whether game text should be rendered as HTML (else ANSI).
    pub fn renders_html(&self) -> bool {
        self.format().is_some_and(Format::renders_html)
    }

    /// The wire format, once the websocket is open.
    pub fn format(&self) -> Option<Format> {
        match &self.stage {
            Stage::Socket(socket) => Some(socket.format),
            Stage::Ajax => Some(Format::Evennia),
            _ => None,
        }
    }

    /// What this client can do, in Evennia's flag names: the format
    /// decides them when the websocket opens, except the window size,
    /// which the client reports (and reports again on a resize).
    pub fn flags(&self) -> &ProtocolFlags {
        &self.flags
    }

    fn flags_for(format: Format) -> ProtocolFlags {
        ProtocolFlags {
            clientname: Some("Portal webclient".into()),
            websocket_format: Some(format.subprotocol().into()),
            ansi: Some(true),
            xterm256: Some(true),
            truecolor: Some(true),
            utf8: Some(true),
            encoding: Some("utf-8".into()),
            oob: Some(format.supports_oob()),
            gmcp: Some(format.speaks_gmcp()),
            mxp: Some(format.renders_html()),
            screenreader: Some(false),
            ..ProtocolFlags::default()
        }
    }

    /// Rendered game text.
    pub fn send_text(&mut self, text: &str) {
        let text = self.for_page(text);
        self.send_with(|f| Some(f.encode_text(&text, false)));
    }

    /// A rendered prompt.
    pub fn send_prompt(&mut self, text: &str) {
        let text = self.for_page(text);
        self.send_with(|f| Some(f.encode_text(&text, true)));
    }

    /// With an upstream the page is Evennia's own: its client wants
    /// Evennia's HTML (see [`evennia::for_evennia_page`]).
    fn for_page<'t>(&self, html: &'t str) -> std::borrow::Cow<'t, str> {
        if self.settings.relay && self.format() == Some(Format::Evennia) {
            std::borrow::Cow::Owned(evennia::for_evennia_page(html))
        } else {
            std::borrow::Cow::Borrowed(html)
        }
    }

    /// An out-of-band command; false if the format has no channel for it.
    pub fn send_oob(&mut self, command: &Command) -> bool {
        self.send_with(|f| f.encode_oob(command))
    }

    /// A plain line from the portal itself.
    pub fn send_notice(&mut self, text: &str, error: bool) {
        self.send_with(|f| Some(f.encode_notice(text, error)));
    }

    /// Show (`true`) or hide what the player types.
    pub fn set_echo(&mut self, on: bool) {
        self.send_with(|f| f.encode_echo(on));
    }

    /// Close: a close frame with `reason` (1000), or 1001 when the portal
    /// is going away, so the page knows whether to reconnect.
    pub fn close(&mut self, reason: &str, going_away: bool) {
        let code = if going_away {
            CloseCode::Away
        } else {
            CloseCode::Normal
        };
        self.close_with(code, reason);
    }

    fn close_with(&mut self, code: CloseCode, reason: &str) {
        if let Stage::Ajax = self.stage {
            // Evennia's word for it, which its client shows.
            let reason = if reason.trim().is_empty() {
                "closed by the server"
            } else {
                reason
            };
            let code = u16::from(code);
            self.transmit
                .extend_from_slice(ajax::gone_reply(reason, code).as_bytes());
            self.transmit.push(b'\n');
            self.stage = Stage::Done;
            return;
        }
        if let Stage::Socket(socket) = &mut self.stage {
            // The page tells a deliberate close (no reconnect) by its
            // reason, so a close frame always carries one.
            let reason = if reason.trim().is_empty() {
                "closed by the server"
            } else {
                reason
            };
            let reason: String = truncate_utf8(reason, 120).to_owned();
            let frame = CloseFrame {
                code,
                reason: reason.into(),
            };
            let _ = socket.context.close(&mut socket.pipe, Some(frame));
            let _ = socket.context.flush(&mut socket.pipe);
        }
    }

    fn send_with(&mut self, encode: impl FnOnce(Format) -> Option<Frame>) -> bool {
        if let Stage::Ajax = self.stage {
            // Evennia's JSON never holds a raw line end: one message a line.
            return match encode(Format::Evennia) {
                Some(Frame::Text(text)) => {
                    self.transmit.extend_from_slice(text.as_bytes());
                    self.transmit.push(b'\n');
                    true
                }
                _ => false,
            };
        }
        let Stage::Socket(socket) = &mut self.stage else {
            return false;
        };
        let Some(frame) = encode(socket.format) else {
            return false;
        };
        let message = match frame {
            Frame::Text(text) => Message::Text(text.into()),
            Frame::Binary(bytes) => Message::Binary(bytes.into()),
        };
        // Writing into memory cannot block; an error means the socket is
        // closing, and the output has nowhere to go.
        let sent = socket.context.write(&mut socket.pipe, message).is_ok();
        let _ = socket.context.flush(&mut socket.pipe);
        sent
    }

    // ---- the HTTP stage ----

    fn read_requests(&mut self, now: Instant) {
        loop {
            let Stage::Http {
                buffer, waiting, ..
            } = &mut self.stage
            else {
                return;
            };
            match waiting {
                Waiting::Answer(_) | Waiting::Relayed => return,
                Waiting::Body(_, length) if buffer.len() < *length => return,
                Waiting::Body(..) => {
                    let Waiting::Body(request, length) = std::mem::replace(waiting, Waiting::Head)
                    else {
                        return;
                    };
                    let body: Vec<u8> = buffer.drain(..length).collect();
                    self.hand_out_ajax(request, body);
                    continue;
                }
                Waiting::Head => {}
            }
            match parse_request(buffer, self.settings.max_request_bytes) {
                Parsed::Incomplete => return,
                Parsed::TooLarge => {
                    let response = Response::error(431, "The request head is too large.");
                    return self.respond_and_close(
                        response,
                        "request head too large".into(),
                        false,
                    );
                }
                Parsed::Bad(why) => {
                    let response = Response::error(400, "That was not an HTTP request.");
                    return self.respond_and_close(response, format!("not HTTP: {why}"), false);
                }
                Parsed::Request(request, used) => {
                    buffer.drain(..used);
                    self.handle_request(request, now);
                }
            }
        }
    }

    fn handle_request(&mut self, request: Request, now: Instant) {
        if request.path == ajax::PATH {
            return self.start_ajax(request);
        }
        if self.settings.relay && !handshake::is_upgrade(&request) {
            if let Stage::Http { waiting, .. } = &mut self.stage {
                *waiting = Waiting::Relayed;
            }
            return self.events.push_back(WebEvent::Relay(Box::new(request)));
        }
        if handshake::is_upgrade(&request) && request.path != "/" && request.path != "/ws" {
            let response = Response::error(404, "Websockets live at /ws.");
            return self.respond_to(&request, response);
        }
        if handshake::is_upgrade(&request) {
            let secure = self.settings.secure;
            return match handshake::accept(&request, &self.settings.allowed_origins, secure) {
                Ok(accepted) => self.open(&request, accepted, now),
                Err(refusal) => self.respond_to(&request, refusal),
            };
        }
        let mut response = page::answer(&request, &self.settings.game_name);
        if page::is_page(&request) && response.status == 200 && self.browser_id(&request).is_none()
        {
            response = response.with("Set-Cookie", &self.cookie());
        }
        self.respond_to(&request, response);
        self.next_request(now);
    }

    /// A request was answered: the next one has its own deadline.
    fn next_request(&mut self, now: Instant) {
        if let Stage::Http {
            deadline, served, ..
        } = &mut self.stage
        {
            *deadline = now + self.settings.http_timeout;
            *served += 1;
        }
    }

    /// An AJAX request head: checked as a websocket upgrade is (Origin),
    /// its body bounded by `max_message_bytes`, then read.
    fn start_ajax(&mut self, request: Request) {
        if request.method != "POST" {
            let response = Response::error(405, "Only POST is served here.").with("Allow", "POST");
            return self.respond_to(&request, response);
        }
        let secure = self.settings.secure;
        if let Err(refusal) =
            handshake::check_origin(&request, &self.settings.allowed_origins, secure)
        {
            return self.respond_to(&request, refusal);
        }
        if request.header("transfer-encoding").is_some() {
            let response = Response::error(411, "Send the form with a Content-Length.");
            return self.respond_to(&request, response);
        }
        let length = match request.header("content-length").map(str::parse::<usize>) {
            Some(Ok(length)) => length,
            None => 0,
            Some(Err(_)) => {
                let response = Response::error(400, "Content-Length is not a number.");
                return self.respond_to(&request, response);
            }
        };
        if length > self.settings.max_message_bytes {
            let response = Response::error(413, "The request body is too large.");
            return self.respond_to(&request, response);
        }
        if let Stage::Http { waiting, .. } = &mut self.stage {
            *waiting = Waiting::Body(Box::new(request), length);
        }
    }

    /// A whole AJAX request: handed out, and reading pauses for its answer.
    fn hand_out_ajax(&mut self, request: Box<Request>, body: Vec<u8>) {
        let post = AjaxPost {
            request: (*request).clone(),
            body,
            cookie: self.browser_id(&request).map(str::to_owned),
            host: request.header("host").unwrap_or("").to_owned(),
        };
        if let Stage::Http { waiting, .. } = &mut self.stage {
            *waiting = Waiting::Answer(request);
        }
        self.events.push_back(WebEvent::Ajax(Box::new(post)));
    }

    /// Answer one plain request; close after it if either side wants to.
    fn respond_to(&mut self, request: &Request, mut response: Response) {
        let served = match &self.stage {
            Stage::Http { served, .. } => *served,
            _ => 0,
        };
        if !request.keep_alive() || served + 1 >= MAX_REQUESTS {
            response.close = true;
        }
        self.events.push_back(WebEvent::Served {
            status: response.status,
            method: request.method.clone(),
            path: truncate_utf8(&request.path, 100).to_owned(),
        });
        let close = response.close;
        self.transmit
            .extend_from_slice(&response.to_bytes(request.method == "HEAD"));
        if close {
            self.stage = Stage::Done;
            self.events
                .push_back(WebEvent::Closed("request answered".into()));
        }
    }

    fn respond_and_close(&mut self, mut response: Response, why: String, head_only: bool) {
        response.close = true;
        self.events.push_back(WebEvent::Served {
            status: response.status,
            method: String::new(),
            path: String::new(),
        });
        self.transmit
            .extend_from_slice(&response.to_bytes(head_only));
        self.stage = Stage::Done;
        self.events.push_back(WebEvent::Closed(why));
    }

    fn open(&mut self, request: &Request, accepted: handshake::Accepted, now: Instant) {
        let leftover = match &mut self.stage {
            Stage::Http { buffer, .. } => std::mem::take(buffer),
            _ => Vec::new(),
        };
        self.transmit
            .extend_from_slice(&accepted.response.to_bytes(false));
        let mut socket = Box::new(Socket {
            context: self.new_context(),
            pipe: Pipe::default(),
            gate: Gate::default(),
            format: accepted.format,
            pinged_at: now,
            awaiting_pong: false,
        });
        let (frame, message) = (
            self.settings.max_frame_bytes,
            self.settings.max_message_bytes,
        );
        let mut whole = Vec::new();
        socket.gate.push(&leftover, frame, message, &mut whole);
        socket.pipe.input.extend(whole);
        let from_url = self.settings.relay.then(|| url_csessid(request)).flatten();
        let csessid = from_url
            .or_else(|| self.browser_id(request).map(str::to_owned))
            .unwrap_or_else(|| self.settings.fresh_csessid.clone());
        self.stage = Stage::Socket(socket);
        self.flags = WebEngine::flags_for(accepted.format);
        self.events.push_back(WebEvent::Opened {
            csessid,
            format: accepted.format,
            forwarded: forwarded_chain(request),
        });
        self.read_frames();
    }

    /// A server-side tungstenite context with the configured limits.
    fn new_context(&self) -> WebSocketContext {
        let config = WebSocketConfig::default()
            .read_buffer_size(4096)
            .write_buffer_size(0)
            .max_frame_size(Some(self.settings.max_frame_bytes))
            .max_message_size(Some(self.settings.max_message_bytes));
        WebSocketContext::new(Role::Server, Some(config))
    }

    /// The request's browser id, if it brought a valid one.
    fn browser_id<'r>(&self, request: &'r Request) -> Option<&'r str> {
        request
            .cookie(self.cookie_name())
            .filter(|id| valid_csessid(id))
    }

    /// `SameSite=Lax`, not `Strict`: a Strict cookie is left off a `GET /`
    /// reached from a link on another site, which would then hand the
    /// browser a new id and split it from its own tabs and login. A Lax
    /// cookie still never rides on a cross-site websocket, and the Origin
    /// check refuses those anyway.
    fn cookie_name(&self) -> &'static str {
        if self.settings.secure {
            SECURE_CSESSID_COOKIE
        } else {
            CSESSID_COOKIE
        }
    }

    fn cookie(&self) -> String {
        let secure = if self.settings.secure { "; Secure" } else { "" };
        format!(
            "{}={}; Path=/; Max-Age={}; HttpOnly; SameSite=Lax{secure}",
            self.cookie_name(),
            self.settings.fresh_csessid,
            self.settings.cookie_max_age_secs
        )
    }

    // ---- the websocket stage ----

    fn read_frames(&mut self) {
        loop {
            let Stage::Socket(socket) = &mut self.stage else {
                return;
            };
            match socket.context.read(&mut socket.pipe) {
                Ok(message) => self.handle_message(message),
                Err(WsError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                    // Pongs and close replies tungstenite queued.
                    let _ = socket.context.flush(&mut socket.pipe);
                    return;
                }
                Err(WsError::ConnectionClosed) | Err(WsError::AlreadyClosed) => {
                    return self.finish("the client closed the websocket".into());
                }
                Err(WsError::Capacity(e)) => {
                    let why = format!("message too big ({e})");
                    return self.fail(CloseCode::Size, why);
                }
                Err(WsError::Utf8(_)) => {
                    return self.fail(CloseCode::Invalid, "invalid UTF-8 in a text frame".into());
                }
                Err(e) => return self.fail(CloseCode::Protocol, format!("protocol error: {e}")),
            }
        }
    }

    fn handle_message(&mut self, message: Message) {
        let Stage::Socket(socket) = &mut self.stage else {
            return;
        };
        let frame = match message {
            Message::Text(text) => Frame::Text(text.as_str().to_owned()),
            Message::Binary(bytes) => Frame::Binary(bytes.to_vec()),
            Message::Pong(_) => {
                socket.awaiting_pong = false;
                return;
            }
            Message::Ping(_) | Message::Frame(_) => return,
            Message::Close(_) => {
                let _ = socket.context.flush(&mut socket.pipe);
                return self.finish("the client closed the websocket".into());
            }
        };
        self.decode_message(&frame);
    }

    /// One message from the client, in the session's format.
    fn decode_message(&mut self, frame: &Frame) {
        let Some(format) = self.format() else {
            return;
        };
        let commands = &self.settings.commands;
        let allowed = |name: &str| commands.iter().any(|c| c == name);
        for incoming in format.decode(frame, &allowed) {
            match incoming {
                Incoming::Line(line) => self.events.push_back(WebEvent::Line(line)),
                Incoming::Command(command) => self.events.push_back(WebEvent::Command(command)),
                Incoming::Size(size) => self.set_size(size),
                Incoming::Bad(why) => {
                    self.send_notice(&format!("Not understood: {why}."), true);
                    self.events.push_back(WebEvent::Refused(why));
                }
            }
        }
    }

    /// A reported window size into the flags (0 or missing: unchanged,
    /// as with NAWS); a change is reported.
    fn set_size(&mut self, size: screen::Size) {
        let before = (self.flags.screenwidth, self.flags.screenheight);
        if size.width.is_some() {
            self.flags.screenwidth = size.width;
        }
        if size.height.is_some() {
            self.flags.screenheight = size.height;
        }
        if (self.flags.screenwidth, self.flags.screenheight) != before {
            self.flags.autoresize = Some(true);
            self.events.push_back(WebEvent::FlagsChanged);
        }
    }

    /// Close with `code` after telling the client why.
    fn fail(&mut self, code: CloseCode, why: String) {
        self.events.push_back(WebEvent::Refused(why.clone()));
        self.close_with(code, &why);
        self.finish(why);
    }

    fn finish(&mut self, why: String) {
        if let Stage::Socket(socket) = &mut self.stage {
            self.transmit.append(&mut socket.pipe.output);
        }
        self.stage = Stage::Done;
        self.events.push_back(WebEvent::Closed(why));
    }
}

/// At most `max` bytes of `text`, cut at a character boundary.
/// `#[serde(with)]` for [`WebSettings`]: only the per-connection settings
/// travel; a thaw fills in the rest from the config.
mod carried_settings {
    use super::WebSettings;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(settings: &WebSettings, s: S) -> Result<S::Ok, S::Error> {
        (settings.secure, &settings.fresh_csessid).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<WebSettings, D::Error> {
        let (secure, fresh_csessid) = <(bool, String)>::deserialize(d)?;
        Ok(WebSettings {
            secure,
            fresh_csessid,
            ..WebSettings::default()
        })
    }
}

fn truncate_utf8(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The browser id Evennia's page puts first in its websocket URL
/// (`?csessid&cuid&browser`: its Django session key), if it looks like one.
fn url_csessid(request: &Request) -> Option<String> {
    let query = request.query.as_deref()?;
    let first = query.split('&').next()?;
    valid_csessid(first).then(|| first.to_owned())
}

/// The hops a request's proxy headers name, client first: every
/// `Forwarded` header's `for=` values, or without one every
/// `X-Forwarded-For` header's list.
pub(crate) fn forwarded_chain(request: &Request) -> Vec<String> {
    use crate::protocols::proxy::{forwarded_hops, x_forwarded_for_hops};
    let values = |name: &'static str| {
        let headers = request.headers.iter().filter(move |(key, _)| key == name);
        headers.map(|(_, value)| value.as_str())
    };
    let standard: Vec<String> = values("forwarded").flat_map(forwarded_hops).collect();
    if !standard.is_empty() {
        return standard;
    }
    values("x-forwarded-for")
        .flat_map(x_forwarded_for_hops)
        .collect()
}

#[cfg(test)]
mod tests;
