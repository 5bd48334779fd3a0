//! The session worker: one thread per connection, the I/O loop around
//! its [`Core`].
//!
//! The worker owns its connection's I/O: the socket, the TLS state
//! ([`Transport`]), the mailbox the registry's handle fills ([`Mail`]),
//! and a [`Waiter`] (`ppoll` on the socket and an eventfd) that the AMP
//! reader and writer (through [`WorkerHandle`]) wake after posting. Every session rule —
//! framing, limits, timeouts, rendering, the close — is in the sans-IO
//! [`Core`]; the worker feeds it, writes what it has for the socket,
//! carries out its [`CoreEvent`]s and sleeps until its next deadline. It
//! keeps one rule of its own: the TLS handshake deadline, because the
//! transport is what knows whether a handshake is still going on.
//!
//! ```text
//!  socket ─► Transport::read ─► Core::handle_input ─┐
//!  mailbox (ToWorker) ───────► Core::handle_message ├─► Core::poll_event ─► Worker::apply ─► registry
//!  clock ────────────────────► Core::handle_timeout ┘
//!  socket ◄─ Transport::write ◄─ Core::transmit        sleep until Core::poll_timeout
//! ```
//!
//! `Worker::apply` is the only place the loop calls the
//! [`crate::registry::Registry`] and the counters, besides
//! `Worker::refresh_config` reading a reloaded config and the output
//! timing (`Worker::note_game_output` counts game output and notes when
//! the AMP reader had it; `Worker::flush` records the wait once the socket
//! has taken all of it); setup and teardown (registering the thread, the
//! refusal text, `disconnect`) are in the spawn functions.
//!
//! Started by the acceptor ([`spawn_inbound`]) and by `server_connect`
//! ([`spawn_outbound`]). A web connection's worker also serves AJAX
//! requests (`POST /webclientdata`, see [`crate::session::ajax`]): it
//! answers most itself, but a `receive` takes its socket to the AJAX
//! session's worker, and this one ends; the session starts a fresh
//! connection worker for the socket ([`Resume`]) once it has answered.

use crate::config::Config;
use crate::protocols::proxy;
use crate::protocols::telnet::mssp;
use crate::protocols::telnet::{Telnet, TelnetSettings};
use crate::protocols::terminal::Terminal;
use crate::protocols::websocket::{WebEngine, WebSettings};
use crate::session::core::Direction;
use crate::session::core::{Closing, Core, CoreEvent};
use crate::session::handle::{Mail, ToWorker, WorkerHandle};
use crate::session::protocol::Protocol;
use crate::session::relay;
use crate::session::transport::{ReadEnd, TlsSession, Transport};
use crate::session::waiter::Waiter;
use crate::shared::Shared;
use crate::stats::{RefuseReason, Stats};
use crate::wire::message::PortalMsg;
use crate::wire::session::Session;
use mio::net::TcpStream;
use std::io::{self, Read};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod carry;
pub use carry::spawn_thawed;

/// A connection handed over by the acceptor.
pub struct Inbound {
    pub sessid: u64,
    pub stream: std::net::TcpStream,
    pub address: SocketAddr,
    pub protocol_key: &'static str,
    /// The listener's TLS configuration, for `telnet/ssl`.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// The listener's host key, for `ssh`.
    pub ssh: Option<(Arc<crate::ssh::HostKey>, crate::ssh::AuthPolicy)>,
    /// Counted against the per-address caps: released when the worker ends.
    pub counted_ip: bool,
    /// The listener requires a PROXY header (the acceptor has checked the
    /// peer is a trusted proxy): the worker reads it first.
    pub proxied: bool,
    /// A connection an AJAX session gives back after answering a receive
    /// on it (the transport already set up); `None` for a new one.
    pub resume: Option<Box<Resume>>,
    /// The worker's waiter, made by the acceptor for a new connection so
    /// that every descriptor a connection costs is taken on the acceptor's
    /// thread (see `Acceptor::out_of_descriptors`); `None`: the worker
    /// makes its own.
    pub waiter: Option<Waiter>,
}

/// A web connection coming back from an AJAX session (see
/// [`crate::session::ajax`]): its transport, the input read past the
/// receive, the answer to write, and whether to close once it is written.
pub struct Resume {
    pub transport: Transport,
    pub leftover: Vec<u8>,
    pub output: Vec<u8>,
    pub end: bool,
}

/// A web connection's socket taken away by an AJAX session (a receive it
/// parks), with what the connection's worker still held.
pub struct Taken {
    pub stream: TcpStream,
    pub transport: Transport,
    pub address: SocketAddr,
    pub leftover: Vec<u8>,
    pub output: Vec<u8>,
    /// Counted against the per-address caps (whoever ends the connection
    /// releases it).
    pub counted: Option<AddressCount>,
    /// The client wants the connection kept open after the answer.
    pub keep_alive: bool,
}

/// One session's place in the per-address caps: the address counted (if
/// any), given back when this is dropped, however the worker ends, unless
/// handed on with [`AddressCount::hand_on`] (an AJAX receive's socket).
pub struct AddressCount {
    shared: Arc<Shared>,
    ip: Option<IpAddr>,
}

impl AddressCount {
    /// Count `ip` instead of what was counted; `Err` (over a cap) keeps
    /// the old count.
    fn move_to(&mut self, ip: IpAddr) -> Result<(), crate::throttle::IpRefusal> {
        let config = self.shared.config();
        let counted = self
            .shared
            .addresses
            .reserve(ip, Instant::now(), &config.limits)?;
        if let Some(old) = self.ip.take() {
            self.shared.addresses.release(old);
        }
        self.ip = counted.then_some(ip);
        Ok(())
    }

    /// The address counted, if any.
    pub fn counted_ip(&self) -> Option<IpAddr> {
        self.ip
    }

    /// A count the previous portal made (`portal upgrade`), counted again
    /// here whatever the caps say now.
    pub(crate) fn adopted(shared: Arc<Shared>, ip: Option<IpAddr>) -> AddressCount {
        if let Some(ip) = ip {
            shared.addresses.adopt(ip);
        }
        AddressCount { shared, ip }
    }

    /// The count now belongs to whoever is given the connection; whether
    /// there was one.
    pub fn hand_on(mut self) -> bool {
        self.ip.take().is_some()
    }
}

impl Drop for AddressCount {
    fn drop(&mut self) {
        if let Some(ip) = self.ip.take() {
            self.shared.addresses.release(ip);
        }
    }
}

/// A connection whose worker could not start, and why.
pub type NotSpawned = (Inbound, io::Error);

/// Start a worker thread for an accepted connection. On failure the stream
/// is handed back so the caller can tell the client.
pub fn spawn_inbound(shared: Arc<Shared>, inbound: Inbound) -> Result<(), Box<NotSpawned>> {
    let (tx, rx) = crossbeam_channel::bounded::<Inbound>(1);
    let name = format!("session-{}", inbound.sessid);
    let spawned = thread_builder(&shared, name).spawn(move || {
        let received = rx.recv();
        drop(rx); // not kept for the session's life
        if let Ok(inbound) = received {
            let count = AddressCount {
                shared: shared.clone(),
                ip: inbound.counted_ip.then(|| inbound.address.ip()),
            };
            run_guarded(shared, inbound.sessid, move |h| {
                serve_inbound(h, inbound, count)
            });
        }
    });
    match spawned {
        Ok(_) => tx.send(inbound).map_err(|e| {
            let error = io::Error::other("worker thread ended before its start");
            Box::new((e.into_inner(), error))
        }),
        Err(e) => Err(Box::new((inbound, e))),
    }
}

/// Start a worker that connects out to `target` and then behaves as a
/// session (the seed's `server_connect`).
pub fn spawn_outbound(shared: Arc<Shared>, target: String) -> io::Result<()> {
    let sessid = shared.registry.generate_sessid();
    thread_builder(&shared, format!("session-{sessid}"))
        .spawn(move || run_guarded(shared, sessid, move |h| serve_outbound(h, sessid, target)))
        .map(|_| ())
}

pub(crate) fn thread_builder(shared: &Shared, name: String) -> std::thread::Builder {
    let stack = shared.config().limits.worker_stack_kib * 1024;
    std::thread::Builder::new().name(name).stack_size(stack)
}

/// Run a worker body, turning a panic into a logged, reported disconnect so
/// one broken session never takes the portal down.
pub(crate) fn run_guarded(shared: Arc<Shared>, sessid: u64, body: impl FnOnce(&Arc<Shared>)) {
    shared.stats.worker_started(true);
    if catch_unwind(AssertUnwindSafe(|| body(&shared))).is_err() {
        log::error!("session {sessid}: worker panicked; session closed");
    }
    shared.upgrades.forget_worker(sessid);
    shared.shared_login.forget(sessid);
    shared.registry.disconnect(sessid);
    shared.stats.worker_started(false);
}

fn serve_inbound(shared: &Arc<Shared>, inbound: Inbound, count: AddressCount) {
    let Some(worker) = start_inbound(shared, inbound, count) else {
        return;
    };
    run_connection(worker);
}

/// Run a connection's worker to its end; a socket an AJAX receive takes
/// goes to its session.
fn run_connection(mut worker: Box<Worker>) {
    if let Some((session, keep_alive)) = worker.run() {
        let Worker {
            stream,
            transport,
            mut core,
            admission,
            ..
        } = *worker;
        let (leftover, output) = core.hand_over();
        let taken = Taken {
            stream,
            transport,
            address: admission.address,
            leftover,
            output,
            counted: Some(admission.count),
            keep_alive,
        };
        crate::session::ajax::park(&session, taken);
    }
}

/// The client's address: for a proxied listener, the one its PROXY header
/// gives (`None`: the header failed, logged, and the connection is to be
/// closed); otherwise the connection's own.
fn client_address(
    shared: &Shared,
    sessid: u64,
    stream: &mut std::net::TcpStream,
    peer: SocketAddr,
) -> Option<SocketAddr> {
    let limit = Duration::from_secs_f64(shared.config().proxy.header_timeout_secs);
    match read_proxy_header(stream, limit) {
        Ok(header) => {
            let client = header.source.unwrap_or(peer);
            log::info!(
                "session {sessid}: client {client} via proxy {peer} (PROXY v{})",
                header.version
            );
            Some(client)
        }
        Err(e) => {
            log::warn!("session {sessid}: connection from proxy {peer} closed: {e}");
            shared.stats.refuse(RefuseReason::ProxyHeader);
            let _ = stream.shutdown(std::net::Shutdown::Both);
            None
        }
    }
}

/// Read a PROXY header, exactly: what follows it (a TLS ClientHello,
/// telnet input) stays in the socket for the session.
fn read_proxy_header(
    stream: &mut std::net::TcpStream,
    limit: Duration,
) -> Result<proxy::Header, proxy::ProxyError> {
    let closed = |_| proxy::ProxyError::Closed;
    stream.set_nonblocking(false).map_err(closed)?;
    let mut reader = proxy::HeaderReader::new(Instant::now(), limit);
    let mut buf = [0u8; 512];
    loop {
        let now = Instant::now();
        let want = match reader.handle_timeout(now).clone() {
            proxy::Step::Done(header) => return Ok(header),
            proxy::Step::Failed(e) => return Err(e),
            proxy::Step::Read(n) => n.min(buf.len()),
        };
        let left = reader.deadline().saturating_duration_since(now);
        stream
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .map_err(closed)?;
        match stream.read(&mut buf[..want]) {
            Ok(n) => {
                reader.push(&buf[..n]);
            }
            Err(e) if is_retry(&e) => {}
            Err(_) => return Err(proxy::ProxyError::Closed),
        }
    }
}

fn is_retry(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Set up an inbound worker. Not inlined: its large temporaries (the TLS
/// connection before boxing, the session record) then live in a frame that
/// is gone while the worker runs (see `session::stack`).
#[inline(never)]
fn start_inbound(
    shared: &Arc<Shared>,
    inbound: Inbound,
    mut count: AddressCount,
) -> Option<Box<Worker>> {
    let Inbound {
        sessid,
        mut stream,
        address: peer,
        protocol_key,
        tls,
        ssh,
        counted_ip: _,
        proxied,
        mut resume,
        waiter,
    } = inbound;
    let web = protocol_key == WEB_PROTOCOL_KEY;
    // A connection coming back from an AJAX session had its header read.
    let address = if proxied && resume.is_none() {
        client_address(shared, sessid, &mut stream, peer)?
    } else {
        peer
    };
    // The acceptor does not count a trusted proxy's connections: the
    // client is counted here once known (for the web, when its websocket
    // opens and its proxy headers are read).
    let trusted_peer = shared.config().proxy.trusts(peer.ip());
    if trusted_peer && !web {
        if let Err(why) = count.move_to(address.ip()) {
            log::warn!("session {sessid}: refused {address}: over the per-address cap ({why:?})");
            shared.stats.refuse(why.into());
            let text = shared.config().messages.too_many_from_address.clone();
            crate::acceptor::refuse(stream, &text, false);
            return None;
        }
    }
    let transport = match (
        resume.as_mut(),
        tls.map(rustls::ServerConnection::new).transpose(),
    ) {
        (Some(resume), _) => std::mem::replace(&mut resume.transport, Transport::Plain),
        (None, Ok(Some(conn))) => Transport::Tls(Box::new(TlsSession::new(conn))),
        (None, Ok(None)) => match ssh {
            Some((host_key, policy)) => Transport::Ssh(Box::new(
                crate::ssh::SshTransport::with_policy(host_key, policy),
            )),
            None => Transport::Plain,
        },
        (None, Err(e)) => {
            log::warn!("session {sessid}: cannot start TLS: {e}");
            return None;
        }
    };
    let session = Session::init_session(sessid, protocol_key, &address.to_string());
    let direction = if web {
        Direction::Web
    } else {
        Direction::Inbound
    };
    let admission = Admission {
        count,
        address,
        recount_at_register: trusted_peer && web,
    };
    match Worker::new(
        shared.clone(),
        Connection { stream, waiter },
        transport,
        session,
        direction,
        admission,
    ) {
        Ok(mut worker) => {
            worker.address = Some(address);
            if let Some(resume) = resume {
                worker.resume(*resume);
            }
            Some(worker)
        }
        Err((e, stream)) => {
            log::warn!("session {sessid}: cannot set up its worker ({e}); client refused");
            shared.stats.refuse(RefuseReason::WorkerSetup);
            if let Some(mut stream) = stream {
                use std::io::Write;
                let text = shared.config().messages.connection_refused.clone();
                let _ = stream.write_all(format!("{text}\r\n").as_bytes());
            }
            None
        }
    }
}

fn serve_outbound(shared: &Arc<Shared>, sessid: u64, target: String) {
    if let Some(mut worker) = start_outbound(shared, sessid, target) {
        worker.run();
    }
}

/// Set up an outbound worker (not inlined, as [`start_inbound`]).
#[inline(never)]
fn start_outbound(shared: &Arc<Shared>, sessid: u64, target: String) -> Option<Box<Worker>> {
    let stream = match connect_out(&target) {
        Ok(stream) => stream,
        Err(e) => {
            let message = format!("cannot connect to {target}: {e}");
            log::warn!("server_connect: {message}");
            shared.amp.send_msg(PortalMsg::Error {
                request: "ServerConnect".into(),
                message,
            });
            return None;
        }
    };
    log::info!("session {sessid}: outbound telnet connection to {target}");
    let session = Session::init_session(sessid, "telnet", &target);
    let admission = Admission {
        count: AddressCount {
            shared: shared.clone(),
            ip: None,
        },
        address: stream.peer_addr().ok()?,
        recount_at_register: false,
    };
    let connection = Connection {
        stream,
        waiter: None,
    };
    match Worker::new(
        shared.clone(),
        connection,
        Transport::Plain,
        session,
        Direction::Outbound,
        admission,
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
/// How long, and for how many bytes, a closing connection's late input is
/// read and discarded.
const LINGER: Duration = Duration::from_millis(500);
const LINGER_BYTES: usize = 256 * 1024;

/// Read and drop what `stream` has ready, at most `most` bytes: the bytes
/// read, or `None` when the client is gone (end of stream, an error).
fn discard_available(stream: &mut impl Read, most: usize) -> Option<usize> {
    let mut buf = [0u8; 4096];
    let mut read = 0;
    while read < most {
        match stream.read(&mut buf) {
            Ok(0) => return None,
            Ok(n) => read += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(_) => return None,
        }
    }
    Some(read)
}

/// The telnet engine's settings from portal.conf.
pub(crate) fn telnet_settings(config: &Config, direction: Direction) -> TelnetSettings {
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
        max_inflated_input: t.max_inflated_input,
        fallback_encoding: t.fallback_encoding.clone(),
        nop_interval: Duration::from_secs(t.keepalive_secs),
        passive,
    }
}

/// The web engine's settings from portal.conf; `secure` for a TLS
/// listener.
pub(crate) fn web_settings(config: &Config, secure: bool) -> io::Result<WebSettings> {
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
        game_name: config.portal.name.clone(),
        relay: !w.upstream.is_empty(),
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

/// A worker's socket, with its waiter when one was made for it.
struct Connection {
    stream: std::net::TcpStream,
    waiter: Option<Waiter>,
}

/// Why a worker could not start, with the client's stream when it can
/// still be told.
type SetupError = (io::Error, Option<std::net::TcpStream>);

/// Who the session's client is, and its place in the per-address caps.
struct Admission {
    count: AddressCount,
    /// The client's address (after any PROXY header).
    address: SocketAddr,
    /// The connection came from a trusted proxy to the web listener: when
    /// the websocket opens, the request's `Forwarded` / `X-Forwarded-For`
    /// chain names the client, and that address is counted.
    recount_at_register: bool,
}

/// One connection's I/O, owned by its thread; its rules are in `core`.
struct Worker {
    admission: Admission,
    shared: Arc<Shared>,
    config_generation: u64,
    waiter: Waiter,
    stream: TcpStream,
    transport: Transport,
    rx: Mail,
    /// The record and handle to register when the core asks (for the web,
    /// once the websocket is open: a page fetch never becomes a session).
    unregistered: Option<(Session, WorkerHandle)>,
    core: Core,
    /// The client's address (inbound connections).
    address: Option<SocketAddr>,
    /// An AJAX session this connection's socket goes to (a receive), and
    /// whether the client wants the connection kept open after its answer.
    hand_to: Option<(WorkerHandle, bool)>,
    /// When the oldest game output not yet all written was read off the
    /// link (timed into `game_to_client` once the socket has it all).
    game_output_since: Option<Instant>,
}

impl Worker {
    /// Set up the socket, waker and protocol engine; the session is
    /// registered with the registry as soon as the core asks.
    fn new(
        shared: Arc<Shared>,
        connection: Connection,
        transport: Transport,
        session: Session,
        direction: Direction,
        admission: Admission,
    ) -> Result<Box<Worker>, SetupError> {
        let Connection { stream, waiter } = connection;
        // The waiter first: if descriptors have run out, the stream is
        // still ours to tell the client why.
        let waiter = match waiter.map_or_else(|| Waiter::new(stream.as_raw_fd()), Ok) {
            Ok(waiter) => waiter,
            Err(e) => return Err((e, Some(stream))),
        };
        let web = if direction == Direction::Web {
            let secure = transport.is_tls();
            match web_settings(&shared.config(), secure) {
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
        let config_generation = shared.config.generation();
        let config = shared.config();
        let now = Instant::now();
        let sessid = session.sessid;
        let protocol = if let Some(settings) = web {
            Protocol::Web(Box::new(WebEngine::new(settings, now)))
        } else if let Transport::Ssh(_) = transport {
            let terminal = Terminal::new(config.limits.max_char_limit, "ssh");
            Protocol::Terminal(Box::new(terminal))
        } else {
            let telnet = Telnet::new(telnet_settings(&config, direction), now);
            Protocol::Telnet(Box::new(telnet))
        };
        let (handle, rx) = WorkerHandle::new(waiter.waker());
        shared.upgrades.add_worker(sessid, handle.clone());
        // Boxed: the worker thread's frames stay small (see `session::stack`).
        let mut worker = Box::new(Worker {
            admission,
            shared,
            config_generation,
            waiter,
            stream,
            transport,
            rx,
            unregistered: Some((session, handle)),
            core: Core::new(sessid, config, direction, protocol, now),
            address: None,
            hand_to: None,
            game_output_since: None,
        });
        worker.apply_events();
        if let Transport::Ssh(_) = worker.transport {
            // The server speaks first in SSH: its version line.
            worker.flush();
        }
        Ok(worker)
    }

    /// A connection given back by an AJAX session: read what it had read,
    /// write its answer.
    fn resume(&mut self, resume: Resume) {
        let now = Instant::now();
        self.core.resume_with(&resume.output, resume.end, now);
        // The answer goes out before anything else is read.
        self.flush();
        if !resume.leftover.is_empty() {
            self.core.handle_input(&resume.leftover, now);
        }
        self.apply_events();
    }

    /// The event loop: until the peer leaves or a close has flushed, or
    /// an AJAX receive takes the socket to its session (returned).
    fn run(&mut self) -> Option<(WorkerHandle, bool)> {
        loop {
            if let Some(session) = self.hand_to.take() {
                // What the socket takes now goes before the hand-over.
                self.flush();
                return Some(session);
            }
            let timeout = self.next_timeout(Instant::now());
            let ready = match self.waiter.wait(timeout) {
                Ok(ready) => ready,
                Err(e) => {
                    log::warn!("session {}: poll failed: {e}", self.core.sessid());
                    return None;
                }
            };
            self.refresh_config();
            if ready.readable {
                self.read_socket();
            }
            let now = Instant::now();
            self.core.handle_timeout(now);
            self.drain_channel(now);
            self.check_handshake(now);
            self.apply_events();
            if self.hand_to.is_some() {
                continue;
            }
            self.flush();
            let flushed = !self.transport.wants_write(self.core.transmit());
            if self.core.is_finished(Instant::now(), flushed) {
                self.finish_close();
                return None;
            }
        }
    }

    /// After a requested close: send FIN, then read and discard what the
    /// client still sends for a moment, so the kernel does not answer unread
    /// input with a reset that could destroy our last message in flight.
    /// Bounded in time and bytes: a client that never stops sending (a
    /// never-ending body) is not read forever.
    fn finish_close(&mut self) {
        if self.core.closing() != Some(Closing::Asked) {
            return;
        }
        // What is left goes before the end marker (for SSH, data after
        // the channel close would be refused).
        let _ = self.transport.write(&mut self.stream, self.core.transmit());
        self.transport.close_notify();
        let _ = self.transport.write(&mut self.stream, self.core.transmit());
        let _ = self.stream.shutdown(std::net::Shutdown::Write);
        // Only input matters now (a level-triggered write interest would spin).
        self.waiter.set_write_interest(false);
        let deadline = Instant::now() + LINGER;
        let mut left_to_read = LINGER_BYTES;
        while Instant::now() < deadline && left_to_read > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if self.waiter.wait(Some(left)).is_err() {
                return;
            }
            match discard_available(&mut self.stream, left_to_read) {
                Some(read) => left_to_read = left_to_read.saturating_sub(read),
                None => return,
            }
        }
    }

    /// Pick up a reloaded portal.conf (SIGHUP): limits and messages apply
    /// to sessions already connected.
    fn refresh_config(&mut self) {
        let generation = self.shared.config.generation();
        if generation != self.config_generation {
            self.config_generation = generation;
            self.core.set_config(self.shared.config());
        }
    }

    /// The core's next deadline, or the TLS handshake's if sooner.
    fn next_timeout(&self, now: Instant) -> Option<Duration> {
        let handshake = (self.transport.is_handshaking() && !self.core.is_closing())
            .then(|| self.core.started() + self.handshake_limit());
        let deadline = [self.core.poll_timeout(), handshake]
            .into_iter()
            .flatten()
            .min();
        deadline.map(|at| at.saturating_duration_since(now))
    }

    fn handshake_limit(&self) -> Duration {
        Duration::from_secs_f64(self.core.config().limits.tls_handshake_timeout_secs)
    }

    // ---- input ----

    fn read_socket(&mut self) {
        let mut data = Vec::new();
        let end = self.transport.read(&mut self.stream, &mut data);
        if !data.is_empty() {
            self.apply(CoreEvent::BytesIn(data.len()));
            self.core.handle_input(&data, Instant::now());
        }
        if let Transport::Ssh(ssh) = &mut self.transport {
            if let Some(term) = ssh.take_term() {
                self.core.set_term(&term);
            }
        }
        match end {
            ReadEnd::WouldBlock => {}
            ReadEnd::Closed => self.core.handle_peer_gone(),
            ReadEnd::Failed(reason) => self.transport_failed(&reason),
        }
    }

    /// A broken connection: for TLS, a bad handshake (a plain-text client,
    /// garbage) or record. What rustls queued (an alert) is flushed first.
    fn transport_failed(&mut self, reason: &str) {
        if self.transport.is_handshaking() {
            let count = crate::tls::count_handshake_failure();
            log::info!(
                "session {}: {} handshake failed ({count} so far): {reason}",
                self.core.sessid(),
                self.transport.handshake_name()
            );
        } else {
            log::info!(
                "session {}: connection failed: {reason}",
                self.core.sessid()
            );
        }
        self.core.handle_peer_gone();
        let _ = self.transport.write(&mut self.stream, self.core.transmit());
    }

    /// Drop a TLS client that has not finished its handshake in time.
    fn check_handshake(&mut self, now: Instant) {
        if !self.transport.is_handshaking() || self.core.is_closing() {
            return;
        }
        let limit = self.handshake_limit();
        if now.saturating_duration_since(self.core.started()) >= limit {
            let count = crate::tls::count_handshake_failure();
            log::info!(
                "session {}: {} handshake not finished in {limit:?}; dropped ({count} so far)",
                self.core.sessid(),
                self.transport.handshake_name()
            );
            self.core.handle_peer_gone();
        }
    }

    fn drain_channel(&mut self, now: Instant) {
        while let Some(message) = self.rx.try_recv() {
            if let ToWorker::Freeze(reply) = message {
                self.freeze(reply);
                continue;
            }
            if let ToWorker::Out {
                commands,
                read_at: Some(at),
            } = &message
            {
                self.note_game_output(*at, commands.len());
            }
            self.core.handle_message(message, now);
        }
    }

    /// Game output read off the link `at`: counted, and timed from the
    /// oldest not yet all written.
    fn note_game_output(&mut self, at: Instant, commands: usize) {
        self.game_output_since.get_or_insert(at);
        Stats::add(&self.shared.stats.commands_out, commands as u64);
    }

    // ---- the rest of the portal ----

    fn apply_events(&mut self) {
        while let Some(event) = self.core.poll_event() {
            self.apply(event);
        }
    }

    /// Carry out one core event: with `refresh_config`, the only place
    /// the loop calls the registry.
    fn apply(&mut self, event: CoreEvent) {
        match event {
            CoreEvent::Ajax(post) => self.serve_ajax(&post),
            CoreEvent::Relay(request) => self.relay(&request),
            CoreEvent::Register {
                csessid,
                subprotocol,
                forwarded,
            } => self.register(csessid, subprotocol, &forwarded),
            event => apply_event(&self.shared, &mut self.core, &mut self.unregistered, event),
        }
    }

    /// An AJAX request: answered here, or (a receive) its socket goes to
    /// the session once the loop has applied this round's events.
    fn serve_ajax(&mut self, post: &crate::protocols::websocket::AjaxPost) {
        let Some(address) = self.address else {
            return;
        };
        let secure = self.transport.is_tls();
        match crate::session::ajax::serve(&self.shared, post, address, secure) {
            crate::session::ajax::Served::Answer(response) => {
                self.core.answer_ajax(response, Instant::now());
            }
            crate::session::ajax::Served::HandOver(session) => {
                self.hand_to = Some((session, post.request.keep_alive()));
            }
        }
    }

    /// A request for the game's web server: relayed here, blocking this
    /// connection's thread only, every wait bounded (see `session::relay`).
    fn relay(&mut self, request: &crate::protocols::http::Request) {
        let config = self.core.config().clone();
        let Ok(upstream) = crate::config::parse_addr(&config.web.upstream) else {
            // Checked when the config was read; a reload cleared it.
            self.core.relay_done(Vec::new(), false, Instant::now());
            return;
        };
        let w = &config.web;
        let settings = relay::RelaySettings {
            upstream,
            connect_timeout: Duration::from_secs_f64(w.upstream_connect_timeout_secs),
            timeout: Duration::from_secs_f64(w.upstream_timeout_secs),
            body_timeout: Duration::from_secs_f64(w.upstream_body_timeout_secs),
            max_body_bytes: w.upstream_max_body_bytes as u64,
            may_keep_alive: self.core.relay_may_keep_alive(),
        };
        let peer = self.admission.address.ip();
        let hops = crate::protocols::websocket::forwarded_chain(request);
        let client = proxy::forwarded_client(peer, &hops, &config.proxy.trusted_proxies);
        let from = crate::protocols::http_relay::Forwarding {
            peer,
            client: client.unwrap_or(peer),
            peer_trusted: config.proxy.trusts(peer),
            secure: matches!(self.transport, Transport::Tls(_)),
        };
        // What is queued (an earlier answer) goes first.
        self.flush();
        let input = self.core.take_relay_input();
        let started = Instant::now();
        let mut client = RelayClient {
            stream: &mut self.stream,
            transport: &mut self.transport,
            waiter: &mut self.waiter,
            pending: std::mem::take(self.core.transmit()),
            bytes_in: 0,
            bytes_out: 0,
        };
        let outcome = relay::relay(&mut client, request, input, &settings, &from);
        let (bytes_in, bytes_out) = (client.bytes_in, client.bytes_out);
        self.waiter.set_write_interest(false);
        self.waiter.set_read_interest(true);
        self.apply(CoreEvent::BytesIn(bytes_in));
        self.apply(CoreEvent::BytesOut(bytes_out));
        let sessid = self.core.sessid();
        log::debug!(
            "session {sessid}: relayed {} {} → {} ({} body bytes, {:?})",
            request.method,
            request.path,
            outcome.status,
            outcome.bytes_out,
            started.elapsed()
        );
        if outcome.client_gone {
            return self.core.handle_peer_gone();
        }
        self.core
            .relay_done(outcome.leftover, outcome.keep_alive, Instant::now());
    }

    /// Register the session (see [`CoreEvent::Register`]).
    fn register(
        &mut self,
        csessid: Option<String>,
        subprotocol: Option<&'static str>,
        forwarded: &[String],
    ) {
        let Some((mut session, handle)) = self.unregistered.take() else {
            return;
        };
        if self.admission.recount_at_register && !self.forwarded_admit(&mut session, forwarded) {
            return;
        }
        if let Some(subprotocol) = subprotocol {
            let from = &session.address;
            let sessid = self.core.sessid();
            log::info!("session {sessid}: websocket from {from} ({subprotocol})");
        }
        session.csessid = csessid;
        self.shared
            .shared_login
            .opened(&self.shared.config(), &mut session);
        self.core.merge_flags_into(&mut session.protocol_flags);
        self.shared.registry.connect(session, handle);
    }

    /// A web session from a trusted proxy: the client its `Forwarded` /
    /// `X-Forwarded-For` chain names becomes the session's address and is
    /// counted. `false`: over a cap, and the session is closing.
    fn forwarded_admit(&mut self, session: &mut Session, forwarded: &[String]) -> bool {
        let config = self.shared.config();
        let peer = self.admission.address;
        let trusted = &config.proxy.trusted_proxies;
        let client = proxy::forwarded_client(peer.ip(), forwarded, trusted)
            .map(|ip| SocketAddr::new(ip, 0))
            .unwrap_or(peer);
        let sessid = self.core.sessid();
        if let Err(why) = self.admission.count.move_to(client.ip()) {
            log::warn!("session {sessid}: refused {client}: over the per-address cap ({why:?})");
            self.shared.stats.refuse(why.into());
            let text = config.messages.too_many_from_address.clone();
            self.core
                .handle_message(ToWorker::Close(text), Instant::now());
            return false;
        }
        if client != peer {
            log::info!("session {sessid}: web client {client} (forwarded by {peer})");
            session.address = client.to_string();
        }
        true
    }

    // ---- output ----

    /// Write what the socket takes; ask for writability if some is left.
    fn flush(&mut self) {
        let out = self.core.transmit();
        let before = out.len();
        if let Err(e) = self.transport.write(&mut self.stream, out) {
            log::debug!("session {}: write failed: {e}", self.core.sessid());
            return self.core.handle_peer_gone();
        }
        let written = before.saturating_sub(out.len());
        self.core.trim_transmit();
        if written > 0 {
            self.apply(CoreEvent::BytesOut(written));
        }
        let wanted = self.transport.wants_write(self.core.transmit());
        self.waiter.set_write_interest(wanted);
        if !wanted {
            if let Some(since) = self.game_output_since.take() {
                let timing = &self.shared.stats.game_to_client;
                timing.observe(since.elapsed());
            }
        }
    }
}

/// The client's side of a relayed request: the worker's socket and
/// transport, waited on with its waiter.
struct RelayClient<'w> {
    stream: &'w mut TcpStream,
    transport: &'w mut Transport,
    waiter: &'w mut Waiter,
    /// Output not yet written (it goes before the relay's).
    pending: Vec<u8>,
    bytes_in: usize,
    bytes_out: usize,
}

impl RelayClient<'_> {
    /// Wait for the socket until `deadline`; false when it passed.
    fn wait(&mut self, deadline: Instant, write: bool) -> Result<(), relay::ClientEnd> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(relay::ClientEnd::TimedOut);
        }
        self.waiter.set_write_interest(write);
        self.waiter.set_read_interest(!write);
        match self.waiter.wait(Some(left)) {
            Ok(_) => Ok(()),
            Err(e) => Err(relay::ClientEnd::Gone(format!("poll failed: {e}"))),
        }
    }
}

impl relay::Client for RelayClient<'_> {
    fn read_some(&mut self, buf: &mut Vec<u8>, deadline: Instant) -> Result<(), relay::ClientEnd> {
        loop {
            let before = buf.len();
            let end = self.transport.read(self.stream, buf);
            self.bytes_in += buf.len() - before;
            // TLS may have handshake or alert bytes to send.
            let mut none = Vec::new();
            let _ = self.transport.write(self.stream, &mut none);
            match end {
                ReadEnd::Closed if buf.len() == before => {
                    return Err(relay::ClientEnd::Gone("the client closed".into()))
                }
                ReadEnd::Failed(why) => return Err(relay::ClientEnd::Gone(why)),
                _ if buf.len() > before => return Ok(()),
                _ => {}
            }
            self.wait(deadline, false)?;
        }
    }

    fn write_all(&mut self, bytes: &[u8], deadline: Instant) -> Result<(), relay::ClientEnd> {
        self.pending.extend_from_slice(bytes);
        loop {
            let before = self.pending.len();
            if let Err(e) = self.transport.write(self.stream, &mut self.pending) {
                return Err(relay::ClientEnd::Gone(format!("write failed: {e}")));
            }
            self.bytes_out += before - self.pending.len();
            if !self.transport.wants_write(&self.pending) {
                return Ok(());
            }
            self.wait(deadline, true)?;
        }
    }
}

/// Carry out one core event that is not an AJAX request, for a
/// connection's worker or an AJAX session's (`session::ajax`).
pub(crate) fn apply_event(
    shared: &Shared,
    core: &mut Core,
    unregistered: &mut Option<(Session, WorkerHandle)>,
    event: CoreEvent,
) {
    let sessid = core.sessid();
    match event {
        // An AJAX session's (a connection's worker registers its own).
        CoreEvent::Register {
            csessid,
            subprotocol,
            forwarded: _,
        } => {
            let Some((mut session, handle)) = unregistered.take() else {
                return;
            };
            let from = &session.address;
            if session.protocol_key == crate::protocols::ajax::PROTOCOL_KEY {
                log::info!("session {sessid}: AJAX session from {from}");
            } else if let Some(subprotocol) = subprotocol {
                log::info!("session {sessid}: websocket from {from} ({subprotocol})");
            }
            session.csessid = csessid;
            shared.shared_login.opened(&shared.config(), &mut session);
            core.merge_flags_into(&mut session.protocol_flags);
            shared.registry.connect(session, handle);
        }
        CoreEvent::Sync => match core.protocol() {
            Protocol::Telnet(t) => shared.registry.sync_flags(sessid, t.flags()),
            Protocol::Web(w) => shared.registry.sync_flags(sessid, w.flags()),
            Protocol::Terminal(t) => shared.registry.sync_flags(sessid, t.flags()),
        },
        CoreEvent::Input { command, visible } => {
            if visible {
                Stats::add(&shared.stats.commands, 1);
            }
            shared.registry.data_in(sessid, vec![command], visible);
        }
        CoreEvent::Refused => Stats::add(&shared.stats.commands_refused, 1),
        CoreEvent::MsspRequest => {
            let config = core.config();
            let ports = shared.ports.get().cloned().unwrap_or_default();
            let facts = mssp::Facts {
                name: config.portal.name.clone(),
                players: shared.registry.count_loggedin(false),
                started_unix: shared.started_unix() as u64,
                telnet_ports: ports.telnet,
                tls_ports: ports.telnet_tls,
            };
            let table = mssp::table(&facts, &config.mssp);
            core.send_mssp(&table);
        }
        CoreEvent::BytesIn(n) => Stats::add(&shared.stats.bytes_in, n as u64),
        CoreEvent::BytesOut(n) => Stats::add(&shared.stats.bytes_out, n as u64),
        // Only a web connection's worker serves these.
        CoreEvent::Ajax(_) | CoreEvent::Relay(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::amp::inbox::ToWriter;
    use crate::session::handle::test_handle;

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
    fn late_input_is_discarded_up_to_a_bound_even_if_it_never_ends() {
        assert_eq!(
            discard_available(&mut std::io::repeat(b'x'), 10_000),
            Some(12_288),
            "whole reads until the bound is passed"
        );
        assert_eq!(discard_available(&mut &b"bye"[..], 10_000), None, "gone");
    }

    #[test]
    fn a_panicking_worker_is_caught_and_its_session_reported_closed() {
        let (shared, amp) = Shared::new(Arc::new(Config::default()), Arc::new(|_| {}));
        let (handle, _rx, _poll) = test_handle();
        let sessid = shared.registry.generate_sessid();
        let record = Session::init_session(sessid, "telnet", "127.0.0.1:9");
        shared.registry.connect(record, handle);
        run_guarded(shared.clone(), sessid, |_| panic!("a bug in one session"));
        assert!(
            shared.registry.session(sessid).is_none(),
            "the session is gone"
        );
        assert_eq!(shared.stats.live_workers(), 0);
        let reported = amp
            .try_iter()
            .any(|m| matches!(m, ToWriter::Disconnect(id) if id == sessid));
        assert!(reported, "the writer was told");
    }
}
