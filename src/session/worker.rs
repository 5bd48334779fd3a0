//! The session worker: one thread per connection.
//!
//! The worker owns its connection's whole stack (socket, telnet state, line
//! framer, command rate limiter, output buffer), so no lock guards protocol
//! state. It waits on two things at once with a [`Waiter`] (`ppoll` on its
//! socket and an eventfd): the socket, and a [`Wake`] that the AMP reader
//! (through the [`Handler`]) pokes after pushing output into the worker's
//! channel.
//!
//! ```text
//!  socket ──► telnet engine ──► line framer ──► size/rate checks ──► Handler::data_in
//!                 │ GMCP/MSDP commands ──────────► rate check ────────┘
//!                 │ Ready / resize ──► Handler::sync (PCONNSYNC)
//!  socket ◄── output buffer ◄── telnet engine (MCCP2) ◄── markup render ◄── channel
//!                                                        ◄── Handler::data_out
//! ```
//!
//! Started by the acceptor ([`spawn_inbound`]) and by `server_connect`
//! ([`spawn_outbound`]).

use crate::amp::message::{Command, PortalMsg};
use crate::config::{fill, Config};
use crate::handler::Handler;
use crate::protocols::http_probe;
use crate::protocols::telnet::{Telnet, TelnetEvent, TelnetSettings};
use crate::protocols::websocket::{WebEngine, WebEvent, WebSettings};
use crate::session::framer::{Framed, LineFramer};
use crate::session::protocol::Protocol;
use crate::session::transport::{ReadEnd, Transport};
use crate::session::waiter::{Waiter, Wake};
use crate::session::Session;
use crate::stats::Stats;
use crate::throttle::RateLimiter;
use crate::value::Map;
use crossbeam_channel::{Receiver, Sender};
use mio::net::TcpStream;
use std::io::{self, Read};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a closing session may take to flush its last output.
const CLOSE_LINGER: Duration = Duration::from_secs(2);
/// Shortest gap between two "too fast" notices to one player.
const RATE_NOTICE_GAP: Duration = Duration::from_secs(1);

/// What the rest of the portal sends to a worker.
#[derive(Debug)]
pub(crate) enum ToWorker {
    /// Commands from the game to render.
    Out(Vec<Command>),
    /// Show the reason (if any), flush, close.
    Close(String),
    /// Protocol flags the game set for this session (e.g. SCREENREADER).
    Flags(Map),
}

/// The registry's way to reach a worker: a channel and the worker's waker.
#[derive(Clone)]
pub struct WorkerHandle {
    tx: Sender<ToWorker>,
    waker: Wake,
}

impl WorkerHandle {
    fn send(&self, message: ToWorker) {
        if self.tx.send(message).is_ok() {
            // A failed wake means the worker is gone; nothing to do.
            let _ = self.waker.wake();
        }
    }

    /// Output from the game.
    pub fn send_out(&self, commands: Vec<Command>) {
        self.send(ToWorker::Out(commands));
    }

    /// One line of text from the portal itself.
    pub fn text(&self, text: &str) {
        self.send_out(vec![Command::text(text)]);
    }

    /// Close the session after showing `reason`.
    pub fn close(&self, reason: &str) {
        self.send(ToWorker::Close(reason.to_owned()));
    }

    /// Flags the game changed; they take part in rendering from now on.
    pub fn set_flags(&self, flags: Map) {
        self.send(ToWorker::Flags(flags));
    }
}

/// A handle whose worker is the caller: for unit tests of the registry.
/// The `Waiter` must be kept alive as long as the handle is used.
#[cfg(test)]
pub(crate) fn test_handle() -> (WorkerHandle, Receiver<ToWorker>, Waiter) {
    let waiter = Waiter::new(0).expect("eventfd");
    let waker = waiter.waker();
    let (tx, rx) = crossbeam_channel::unbounded();
    (WorkerHandle { tx, waker }, rx, waiter)
}

/// Why a worker ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Closing {
    /// The peer closed or the socket failed.
    PeerGone,
    /// Someone asked (game, shutdown, idle timeout, overflow).
    Asked,
}

/// A connection handed over by the acceptor.
pub struct Inbound {
    pub sessid: u64,
    pub stream: std::net::TcpStream,
    pub address: SocketAddr,
    pub protocol_key: &'static str,
    /// The listener's TLS configuration, for `telnet/ssl`.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Counted against the per-address caps: released when the worker ends.
    pub counted_ip: bool,
}

/// Start a worker thread for an accepted connection. On failure the stream
/// is handed back so the caller can tell the client.
pub fn spawn_inbound(handler: Arc<Handler>, inbound: Inbound) -> Result<(), (Inbound, io::Error)> {
    let (tx, rx) = crossbeam_channel::bounded::<Inbound>(1);
    let name = format!("session-{}", inbound.sessid);
    let spawned = thread_builder(&handler, name).spawn(move || {
        let received = rx.recv();
        drop(rx); // not kept for the session's life
        if let Ok(inbound) = received {
            let release = inbound.counted_ip.then(|| inbound.address.ip());
            let h = handler.clone();
            run_guarded(handler, inbound.sessid, move |h| serve_inbound(h, inbound));
            if let Some(ip) = release {
                h.release_ip(ip);
            }
        }
    });
    match spawned {
        Ok(_) => tx.send(inbound).map_err(|e| {
            let error = io::Error::other("worker thread ended before its start");
            (e.into_inner(), error)
        }),
        Err(e) => Err((inbound, e)),
    }
}

/// Start a worker that connects out to `target` and then behaves as a
/// session (the seed's `server_connect`).
pub fn spawn_outbound(handler: Arc<Handler>, target: String) -> io::Result<()> {
    let sessid = handler.generate_sessid();
    thread_builder(&handler, format!("session-{sessid}"))
        .spawn(move || run_guarded(handler, sessid, move |h| serve_outbound(h, sessid, target)))
        .map(|_| ())
}

fn thread_builder(handler: &Handler, name: String) -> std::thread::Builder {
    let stack = handler.config().limits.worker_stack_kib * 1024;
    std::thread::Builder::new().name(name).stack_size(stack)
}

/// Run a worker body, turning a panic into a logged, reported disconnect so
/// one broken session never takes the portal down.
fn run_guarded(handler: Arc<Handler>, sessid: u64, body: impl FnOnce(&Arc<Handler>)) {
    handler.worker_started(true);
    if catch_unwind(AssertUnwindSafe(|| body(&handler))).is_err() {
        log::error!("session {sessid}: worker panicked; session closed");
    }
    handler.disconnect(sessid);
    handler.worker_started(false);
}

fn serve_inbound(handler: &Arc<Handler>, inbound: Inbound) {
    if let Some(mut worker) = start_inbound(handler, inbound) {
        worker.run();
    }
}

/// Set up an inbound worker. Not inlined: its large temporaries (the TLS
/// connection before boxing, the session record) then live in a frame that
/// is gone while the worker runs (see `session::stack`).
#[inline(never)]
fn start_inbound(handler: &Arc<Handler>, inbound: Inbound) -> Option<Box<Worker>> {
    let Inbound {
        sessid,
        stream,
        address,
        protocol_key,
        tls,
        counted_ip: _,
    } = inbound;
    let transport = match tls.map(rustls::ServerConnection::new).transpose() {
        Ok(Some(conn)) => Transport::Tls(Box::new(conn)),
        Ok(None) => Transport::Plain,
        Err(e) => {
            log::warn!("session {sessid}: cannot start TLS: {e}");
            return None;
        }
    };
    let session = Session::init_session(sessid, protocol_key, &address.to_string());
    let direction = if protocol_key == WEB_PROTOCOL_KEY {
        Direction::Web
    } else {
        Direction::Inbound
    };
    match Worker::new(handler.clone(), stream, transport, session, direction) {
        Ok(worker) => Some(worker),
        Err((e, stream)) => {
            log::warn!("session {sessid}: cannot set up its worker ({e}); client refused");
            if let Some(mut stream) = stream {
                use std::io::Write;
                let text = handler.config().messages.connection_refused.clone();
                let _ = stream.write_all(format!("{text}\r\n").as_bytes());
            }
            None
        }
    }
}

fn serve_outbound(handler: &Arc<Handler>, sessid: u64, target: String) {
    if let Some(mut worker) = start_outbound(handler, sessid, target) {
        worker.run();
    }
}

/// Set up an outbound worker (not inlined, as [`start_inbound`]).
#[inline(never)]
fn start_outbound(handler: &Arc<Handler>, sessid: u64, target: String) -> Option<Box<Worker>> {
    let stream = match connect_out(&target) {
        Ok(stream) => stream,
        Err(e) => {
            let message = format!("cannot connect to {target}: {e}");
            log::warn!("server_connect: {message}");
            handler.send_amp(PortalMsg::Error {
                request: "ServerConnect".into(),
                message,
            });
            return None;
        }
    };
    log::info!("session {sessid}: outbound telnet connection to {target}");
    let session = Session::init_session(sessid, "telnet", &target);
    match Worker::new(
        handler.clone(),
        stream,
        Transport::Plain,
        session,
        Direction::Outbound,
    ) {
        Ok(worker) => Some(worker),
        Err((e, _)) => {
            log::warn!("session {sessid}: cannot set up its worker: {e}");
            None
        }
    }
}

fn connect_out(target: &str) -> io::Result<std::net::TcpStream> {
    use std::net::ToSocketAddrs;
    let mut last = io::Error::new(io::ErrorKind::NotFound, "no address found");
    for addr in target.to_socket_addrs()? {
        match std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(10)) {
            Ok(stream) => return Ok(stream),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// The protocol key of web listener sessions.
pub const WEB_PROTOCOL_KEY: &str = "webclient/websocket";

/// Who opened the connection, and how it speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    /// A player connected to us: full telnet offers, idle timeout.
    Inbound,
    /// A browser on the web listener: HTTP, then a websocket session.
    Web,
    /// We connected out for the game: no offers, no idle timeout.
    Outbound,
}

/// The telnet engine's settings from portal.conf.
fn telnet_settings(config: &Config, direction: Direction) -> TelnetSettings {
    let t = &config.telnet;
    let passive = direction == Direction::Outbound;
    TelnetSettings {
        options: if passive {
            crate::protocols::telnet::TelnetOptions::none()
        } else {
            t.options.clone()
        },
        negotiation_timeout: Duration::from_secs_f64(t.negotiation_timeout_secs),
        max_subnegotiation: t.max_subnegotiation,
        fallback_encoding: t.fallback_encoding.clone(),
        nop_interval: Duration::from_secs(t.keepalive_secs),
        passive,
    }
}

/// The web engine's settings from portal.conf; `secure` for a TLS
/// listener.
fn web_settings(config: &Config, secure: bool) -> io::Result<WebSettings> {
    let w = &config.web;
    Ok(WebSettings {
        allowed_origins: w.allowed_origins.clone(),
        commands: w.commands.clone(),
        max_request_bytes: w.max_request_bytes,
        max_frame_bytes: w.max_frame_bytes,
        max_message_bytes: w.max_message_bytes,
        http_timeout: Duration::from_secs_f64(w.http_timeout_secs),
        ping_interval: Duration::from_secs_f64(w.ping_interval_secs),
        pong_timeout: Duration::from_secs_f64(w.pong_timeout_secs),
        fresh_csessid: random_token()?,
        cookie_max_age_secs: w.cookie_max_age_days * 24 * 3600,
        secure,
    })
}

/// 128 random bits from the kernel as 32 hex digits (a browser id):
/// getrandom(2), or `/dev/urandom` where that call is missing. Never a
/// guessable fallback: without randomness the client is refused.
fn random_token() -> io::Result<String> {
    let mut bytes = [0u8; 16];
    let mut filled = 0;
    while filled < bytes.len() {
        // SAFETY: the pointer and length describe the unfilled part of
        // `bytes`, which getrandom(2) writes at most that much of.
        let n = unsafe {
            libc::getrandom(bytes[filled..].as_mut_ptr().cast(), bytes.len() - filled, 0)
        };
        if n > 0 {
            filled += n as usize;
            continue;
        }
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::Interrupted {
            std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
            break;
        }
    }
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Why a worker could not start, with the client's stream when it can
/// still be told.
type SetupError = (io::Error, Option<std::net::TcpStream>);

/// One connection's state, owned by its thread.
struct Worker {
    sessid: u64,
    handler: Arc<Handler>,
    config: Arc<Config>,
    config_generation: u64,
    waiter: Waiter,
    stream: TcpStream,
    transport: Transport,
    started: Instant,
    rx: Receiver<ToWorker>,
    protocol: Protocol,
    /// For web sessions: the record and handle to register once the
    /// websocket is open (a page fetch never becomes a session).
    unregistered: Option<(Session, WorkerHandle)>,
    /// Flags the game set (they win over the negotiated ones when rendering).
    game_flags: Map,
    framer: LineFramer,
    limiter: RateLimiter,
    rate_notice_at: Option<Instant>,
    dropped_subnegotiations: u64,
    out: Vec<u8>,
    last_input: Instant,
    lines_seen: u64,
    direction: Direction,
    closing: Option<(Closing, Instant)>,
}

impl Worker {
    /// Register the socket and waker and the session with the handler.
    fn new(
        handler: Arc<Handler>,
        stream: std::net::TcpStream,
        transport: Transport,
        session: Session,
        direction: Direction,
    ) -> Result<Box<Worker>, SetupError> {
        // The waiter first: if descriptors have run out, the stream is
        // still ours to tell the client why.
        let waiter = match Waiter::new(stream.as_raw_fd()) {
            Ok(waiter) => waiter,
            Err(e) => return Err((e, Some(stream))),
        };
        let web = if direction == Direction::Web {
            let secure = matches!(transport, Transport::Tls(_));
            match web_settings(&handler.config(), secure) {
                Ok(settings) => Some(settings),
                Err(e) => return Err((e, Some(stream))),
            }
        } else {
            None
        };
        let no_stream = |e: io::Error| (e, None);
        stream.set_nonblocking(true).map_err(no_stream)?;
        stream.set_nodelay(true).map_err(no_stream)?;
        let stream = TcpStream::from_std(stream);
        let (tx, rx) = crossbeam_channel::unbounded();
        let config_generation = handler.config_generation();
        let config = handler.config();
        let now = Instant::now();
        let sessid = session.sessid;
        let protocol = if let Some(settings) = web {
            Protocol::Web(Box::new(WebEngine::new(settings, now)))
        } else {
            let telnet = Telnet::new(telnet_settings(&config, direction), now);
            Protocol::Telnet(Box::new(telnet))
        };
        let mut session = session;
        let handle = WorkerHandle {
            tx,
            waker: waiter.waker(),
        };
        let mut unregistered = None;
        if direction == Direction::Web {
            unregistered = Some((session, handle));
        } else {
            protocol.merge_flags_into(&mut session.protocol_flags);
            handler.connect(session, handle, direction == Direction::Inbound);
        }
        // Boxed: the worker thread's frames stay small (see `session::stack`).
        let mut worker = Box::new(Worker {
            sessid,
            framer: LineFramer::new(config.limits.max_char_limit),
            limiter: RateLimiter::new(config.limits.max_command_rate, now),
            handler,
            config,
            config_generation,
            waiter,
            stream,
            transport,
            started: now,
            rx,
            protocol,
            unregistered,
            game_flags: Map::new(),
            rate_notice_at: None,
            dropped_subnegotiations: 0,
            out: Vec::new(),
            last_input: now,
            lines_seen: 0,
            direction,
            closing: None,
        });
        worker.take_transmit();
        Ok(worker)
    }

    /// The event loop: until the peer leaves or a close has flushed.
    fn run(&mut self) {
        loop {
            let timeout = self.next_timeout(Instant::now());
            let ready = match self.waiter.wait(timeout) {
                Ok(ready) => ready,
                Err(e) => return log::warn!("session {}: poll failed: {e}", self.sessid),
            };
            self.refresh_config();
            if ready.readable {
                self.read_socket();
            }
            let now = Instant::now();
            self.protocol.handle_timeout(now);
            self.pump();
            self.drain_channel();
            self.check_idle(now);
            self.check_handshake(now);
            self.flush();
            if self.finished(Instant::now()) {
                return self.finish_close();
            }
        }
    }

    /// After a requested close: send FIN, then read and discard what the
    /// client still sends for a moment, so the kernel does not answer unread
    /// input with a reset that could destroy our last message in flight.
    fn finish_close(&mut self) {
        if !matches!(self.closing, Some((Closing::Asked, _))) {
            return;
        }
        self.transport.close_notify();
        let _ = self.transport.write(&mut self.stream, &mut self.out);
        let _ = self.stream.shutdown(std::net::Shutdown::Write);
        // Only input matters now (a level-triggered write interest would spin).
        self.waiter.set_write_interest(false);
        let deadline = Instant::now() + Duration::from_millis(500);
        let mut buf = vec![0u8; 4096];
        while Instant::now() < deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            if self.waiter.wait(Some(left)).is_err() {
                return;
            }
            loop {
                match self.stream.read(&mut buf) {
                    Ok(0) => return,
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(_) => return,
                }
            }
        }
    }

    /// Pick up a reloaded portal.conf (SIGHUP): limits and messages apply
    /// to sessions already connected.
    fn refresh_config(&mut self) {
        let generation = self.handler.config_generation();
        if generation == self.config_generation {
            return;
        }
        self.config_generation = generation;
        self.config = self.handler.config();
        self.limiter.set_rate(self.config.limits.max_command_rate);
        self.framer.set_max(self.config.limits.max_char_limit);
    }

    fn next_timeout(&self, now: Instant) -> Option<Duration> {
        if let Some((_, since)) = &self.closing {
            return Some((*since + CLOSE_LINGER).saturating_duration_since(now));
        }
        let idle = self.config.limits.idle_timeout_secs;
        let idle_deadline = (self.direction != Direction::Outbound && idle > 0)
            .then(|| self.last_input + Duration::from_secs(idle) + Duration::from_millis(10));
        let handshake = self.transport.is_handshaking().then(|| {
            self.started + Duration::from_secs_f64(self.config.limits.tls_handshake_timeout_secs)
        });
        let deadline = [idle_deadline, self.protocol.poll_timeout(), handshake]
            .into_iter()
            .flatten()
            .min();
        deadline.map(|at| at.saturating_duration_since(now))
    }

    fn finished(&self, now: Instant) -> bool {
        match &self.closing {
            None => false,
            Some((Closing::PeerGone, _)) => true,
            Some((Closing::Asked, since)) => {
                !self.transport.wants_write(&self.out) || now >= *since + CLOSE_LINGER
            }
        }
    }

    fn close(&mut self, why: Closing) {
        if self.closing.is_none() || why == Closing::PeerGone {
            self.closing = Some((why, Instant::now()));
        }
    }

    // ---- input ----

    fn read_socket(&mut self) {
        let mut data = Vec::new();
        let end = self.transport.read(&mut self.stream, &mut data);
        if !data.is_empty() {
            Stats::add(&self.handler.stats().bytes_in, data.len() as u64);
            self.handle_bytes(&data);
        }
        match end {
            ReadEnd::WouldBlock => {}
            ReadEnd::Closed => self.close(Closing::PeerGone),
            ReadEnd::Failed(reason) => self.transport_failed(&reason),
        }
    }

    /// A broken connection: for TLS, a bad handshake (a plain-text client,
    /// garbage) or record. What rustls queued (an alert) is flushed first.
    fn transport_failed(&mut self, reason: &str) {
        if self.transport.is_handshaking() {
            let count = crate::tls::count_handshake_failure();
            log::info!(
                "session {}: TLS handshake failed ({count} so far): {reason}",
                self.sessid
            );
        } else {
            log::info!("session {}: connection failed: {reason}", self.sessid);
        }
        self.out.clear();
        let _ = self.transport.write(&mut self.stream, &mut self.out);
        self.close(Closing::PeerGone);
    }

    /// Drop a TLS client that has not finished its handshake in time.
    fn check_handshake(&mut self, now: Instant) {
        if !self.transport.is_handshaking() || self.closing.is_some() {
            return;
        }
        let limit = Duration::from_secs_f64(self.config.limits.tls_handshake_timeout_secs);
        if now.saturating_duration_since(self.started) >= limit {
            let count = crate::tls::count_handshake_failure();
            log::info!(
                "session {}: TLS handshake not finished in {limit:?}; dropped ({count} so far)",
                self.sessid
            );
            self.close(Closing::PeerGone);
        }
    }

    fn handle_bytes(&mut self, bytes: &[u8]) {
        if self.closing.is_some() {
            return;
        }
        let now = Instant::now();
        if let Protocol::Telnet(_) = self.protocol {
            self.last_input = now;
        }
        // Web sessions count only what the player sends as input: pongs
        // arrive every ping interval and must not keep an idle player.
        self.protocol.handle_input(bytes, now);
        self.pump();
        if matches!(&self.protocol, Protocol::Telnet(t) if t.input_failed()) {
            log::warn!("session {}: corrupt MCCP3 input; closing", self.sessid);
            self.close(Closing::PeerGone);
        }
    }

    /// Act on everything the protocol engine has to report, then queue
    /// what it has to send.
    fn pump(&mut self) {
        match &self.protocol {
            Protocol::Telnet(_) => self.pump_telnet(),
            Protocol::Web(_) => self.pump_web(),
        }
        self.take_transmit();
    }

    fn pump_telnet(&mut self) {
        loop {
            let Protocol::Telnet(telnet) = &mut self.protocol else {
                return;
            };
            let Some(event) = telnet.poll_event() else {
                break;
            };
            match event {
                TelnetEvent::Data(data) => self.handle_data(&data),
                TelnetEvent::Command(command) => self.handle_oob(command),
                TelnetEvent::Ready | TelnetEvent::FlagsChanged => {
                    if let Protocol::Telnet(telnet) = &self.protocol {
                        self.handler.sync_flags(self.sessid, telnet.flags_iter());
                    }
                }
                TelnetEvent::MsspRequest => {
                    let table = self.mssp_table();
                    if let Protocol::Telnet(telnet) = &mut self.protocol {
                        telnet.send_mssp(&table);
                    }
                }
            }
        }
        self.note_dropped_subnegotiations();
    }

    fn pump_web(&mut self) {
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
                WebEvent::Opened { csessid, format } => self.open_web_session(csessid, format),
                WebEvent::Line(line) => {
                    self.last_input = Instant::now();
                    self.handle_web_line(line);
                }
                WebEvent::Command(command) => {
                    self.last_input = Instant::now();
                    self.handle_oob(command);
                }
                WebEvent::Refused(why) => {
                    log::info!("session {}: web client message refused: {why}", self.sessid)
                }
                WebEvent::Closed(why) => {
                    log::debug!("session {}: web connection ends: {why}", self.sessid);
                    self.close(Closing::Asked);
                }
            }
        }
    }

    /// The websocket is open: register the session and sync its flags.
    fn open_web_session(
        &mut self,
        csessid: String,
        format: crate::protocols::websocket::format::Format,
    ) {
        let Some((mut session, handle)) = self.unregistered.take() else {
            return;
        };
        log::info!(
            "session {}: websocket from {} ({})",
            self.sessid,
            session.address,
            format.subprotocol()
        );
        session.csessid = Some(csessid);
        self.protocol.merge_flags_into(&mut session.protocol_flags);
        self.last_input = Instant::now();
        self.handler.connect(session, handle, true);
        // Nothing is left to negotiate: the session is synced at once.
        if let Protocol::Web(web) = &self.protocol {
            self.handler.sync_flags(self.sessid, web.flags());
        }
    }

    /// A line from a web client: same limits as a telnet line.
    fn handle_web_line(&mut self, line: String) {
        if line.chars().count() > self.config.limits.max_char_limit {
            return self.refuse_long_line();
        }
        self.forward(Command::text(line));
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

    fn handle_data(&mut self, data: &[u8]) {
        let mut framed = Vec::new();
        self.framer.push(data, &mut framed);
        for item in framed {
            if self.closing.is_some() {
                return;
            }
            match item {
                Framed::Line(line) => self.handle_line(line),
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

    fn handle_line(&mut self, line: Vec<u8>) {
        self.lines_seen += 1;
        if self.lines_seen == 1 && http_probe::is_http_request(&line) {
            return self.answer_browser();
        }
        if !line.is_empty() && line.iter().all(|&b| b == 0) {
            let idle = Command::text("idle");
            return self.handler.data_in(self.sessid, vec![idle], false);
        }
        let Protocol::Telnet(telnet) = &self.protocol else {
            return;
        };
        let (text, replaced) = telnet.decode_line(&line);
        if replaced {
            let encoding = telnet.flag("ENCODING").cloned();
            let encoding = encoding
                .as_ref()
                .and_then(|v| v.as_str())
                .unwrap_or("utf-8");
            log::info!(
                "session {}: invalid {} in input replaced",
                self.sessid,
                encoding.to_uppercase()
            );
            let notice = self.config.messages.invalid_utf8.clone();
            self.say(&notice);
        }
        self.forward(Command::text(text));
    }

    /// An out-of-band (GMCP/MSDP) command: same rate limit as typed lines.
    fn handle_oob(&mut self, command: Command) {
        self.forward(command);
    }

    fn forward(&mut self, command: Command) {
        let now = Instant::now();
        if !self.limiter.try_take(now) {
            Stats::add(&self.handler.stats().commands_refused, 1);
            return self.refuse_fast_command(now);
        }
        Stats::add(&self.handler.stats().commands, 1);
        self.handler.data_in(self.sessid, vec![command], true);
    }

    /// A browser on the telnet port: a short plain answer, then close.
    fn answer_browser(&mut self) {
        log::info!(
            "session {}: HTTP request on a telnet port; answered and closed",
            self.sessid
        );
        self.queue_bytes(http_probe::ANSWER.as_bytes());
        self.close(Closing::Asked);
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
        let waiting = self.unregistered.is_some();
        if self.direction == Direction::Outbound || idle == 0 || self.closing.is_some() || waiting {
            return;
        }
        if now.saturating_duration_since(self.last_input) >= Duration::from_secs(idle) {
            log::info!("session {}: idle timeout", self.sessid);
            let text = self.config.messages.idle_timeout.clone();
            self.say(&text);
            self.protocol.close(&text, false);
            self.close(Closing::Asked);
        }
    }

    /// The MSSP table: name, players, uptime, plus `[mssp]` keys.
    fn mssp_table(&self) -> Vec<(String, Vec<String>)> {
        let mut table = vec![
            ("NAME".to_owned(), vec![self.config.portal.name.clone()]),
            (
                "PLAYERS".to_owned(),
                vec![self.handler.count_loggedin(false).to_string()],
            ),
            (
                "UPTIME".to_owned(),
                vec![format!("{}", self.handler.started_unix() as u64)],
            ),
        ];
        for (key, value) in &self.config.mssp {
            table.push((key.clone(), vec![value.clone()]));
        }
        table
    }

    // ---- output ----

    fn drain_channel(&mut self) {
        while let Ok(message) = self.rx.try_recv() {
            match message {
                ToWorker::Out(commands) => self.render(commands),
                ToWorker::Close(reason) => {
                    log::debug!("session {}: closing: {reason}", self.sessid);
                    if !reason.is_empty() {
                        self.say(&reason);
                    }
                    let going_away = reason == self.config.messages.shutdown;
                    self.protocol.close(&reason, going_away);
                    self.close(Closing::Asked);
                }
                ToWorker::Flags(flags) => self.game_flags.extend(flags),
            }
        }
        self.take_transmit();
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
        if self.out.len() + bytes.len() > self.config.limits.output_buffer_bytes {
            log::warn!(
                "session {}: client is not reading; output buffer full ({} bytes), closing",
                self.sessid,
                self.out.len()
            );
            self.out.clear();
            self.close(Closing::PeerGone);
            return;
        }
        self.out.extend_from_slice(bytes);
    }

    /// Write what the socket takes; ask for writability if some is left.
    fn flush(&mut self) {
        self.take_transmit();
        let before = self.out.len();
        if let Err(e) = self.transport.write(&mut self.stream, &mut self.out) {
            log::debug!("session {}: write failed: {e}", self.sessid);
            self.out.clear();
            return self.close(Closing::PeerGone);
        }
        if self.out.is_empty() && self.out.capacity() > 4096 {
            // A burst's large buffer goes back to the allocator.
            self.out = Vec::new();
        }
        let written = before.saturating_sub(self.out.len());
        if written > 0 {
            Stats::add(&self.handler.stats().bytes_out, written as u64);
        }
        let wanted = self.transport.wants_write(&self.out);
        self.waiter.set_write_interest(wanted);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::amp::message::PortalMsg;
    use crate::handler::ControlSender;

    #[test]
    fn browser_ids_are_32_hex_digits_and_never_repeat() {
        let ids: std::collections::HashSet<String> =
            (0..100).filter_map(|_| random_token().ok()).collect();
        assert_eq!(ids.len(), 100);
        assert!(ids
            .iter()
            .all(|id| id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())));
    }

    #[test]
    fn a_panicking_worker_is_caught_and_its_session_reported_closed() {
        let (tx, amp) = crossbeam_channel::bounded(16);
        let control: ControlSender = Arc::new(|_| {});
        let handler = Arc::new(Handler::new(Arc::new(Config::default()), tx, control));
        handler.link_up(1);
        handler.sync_request(1);
        let (handle, _rx, _poll) = test_handle();
        let sessid = handler.generate_sessid();
        handler.connect(
            Session::init_session(sessid, "telnet", "127.0.0.1:9"),
            handle,
            true,
        );
        run_guarded(handler.clone(), sessid, |_| panic!("a bug in one session"));
        assert!(handler.session(sessid).is_none(), "the session is gone");
        assert_eq!(handler.live_workers(), 0);
        let reported = amp
            .try_iter()
            .any(|m| m == PortalMsg::Disconnect { sessid });
        assert!(reported, "the game was told");
    }
}
