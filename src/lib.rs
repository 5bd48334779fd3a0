//! Portal: a MUD connection portal.
//!
//! The portal owns every player connection and relays player input to a
//! separate game server over one internal link (AMP), so the game can
//! restart while every player stays connected.
//!
//! ```text
//! client ──TCP/TLS──► acceptor (mio Poll over all listeners: telnet,
//!                   │   telnet/ssl, web; throttle; sessid)
//!                   │ spawns
//!                   ▼
//!             session worker thread (one per connection; owns the socket,
//!             TLS and its waiter) driving its session core (sans-IO: the
//!             protocol engine — telnet, or HTTP + websocket for the web
//!             page — line framer, limits, timeouts, output buffer)
//!                   │   └─ web requests for the game's own web server
//!                   │      (`[web] upstream`): relayed by this same thread
//!                   │      (session::relay) ──HTTP/1.1──► e.g. Evennia's Django
//!                   │ data_in                               ▲ data_out
//!                   ▼                                       │ (mailbox + waker)
//!   registry ──► inbox (crossbeam) ──► AMP writer thread ──frames──► game server
//!   (sessid → record       (held/in-flight input, link state, heartbeat)
//!    + worker handle)
//!       ▲ lookup ◄──────────────────── AMP reader thread ◄──frames── game server
//! ```
//!
//! Module map, following the picture:
//! - [`config`]: `portal.conf` (TOML) and its limits;
//! - [`acceptor`]: the listeners' poll loop, connection throttle, signals;
//! - [`session::worker`]: the per-connection thread, a thin I/O loop: it
//!   sleeps in [`session::waiter`] (`ppoll` on its socket and an eventfd),
//!   reads and writes through [`session::transport`], gives back idle stack
//!   pages with [`session::stack`], and is the one place a session calls the
//!   registry;
//! - [`session::core`]: one session's rules as a sans-IO state machine
//!   (framing, size and rate limits, idle and login deadlines, keepalive,
//!   HTTP probe, output cap, close linger), driven by the worker with bytes,
//!   messages and `now`; [`session::framer`] splits its input into lines;
//! - [`shared`]: the owners every thread reaches, wired together once;
//! - [`registry`]: the session registry (the seed's `PortalSessionHandler`);
//!   sessid → record and [`session::handle`] (how a worker is reached);
//! - [`wire`]: the vocabulary both sides share: the sync record (the
//!   seed's `Session`), the messages, the dynamic [`wire::value::Value`]
//!   and the typed protocol flags ([`wire::flags::ProtocolFlags`]); used
//!   by the portal and by [`game`];
//! - [`session`]: the portal's per-connection side (worker, engines, render);
//! - [`amp`]: the link to the game: the native codec, the accept, reader and
//!   writer threads; the writer owns held and in-flight input, the link's
//!   state and the heartbeat ([`amp::outbox`], pure);
//! - [`protocols`]: the client protocols (telnet; HTTP and websockets for
//!   the web client, with its wire formats; spotting HTTP on telnet; what
//!   a relayed request and answer say, [`protocols::http_relay`]);
//! - [`session::protocol`]: which engine a session core drives, and
//!   rendering for it;
//! - [`tls`] and [`session::transport`]: telnet over TLS (rustls);
//! - [`throttle`]: rate limits and per-address caps;
//! - [`markup`]: Evennia colour markup rendered for each client (ANSI for
//!   telnet, HTML for the web client in [`markup::html`]);
//! - [`supervisor`]: the game server child process; [`gamelog`]: where
//!   its output goes;
//! - [`cli`], [`pidfile`], [`control`], [`stats`], [`logfile`], [`status`]:
//!   operating the portal (subcommands, pid file, the `portal status`
//!   socket, counters, reopenable log, status file); [`limits`]: the
//!   open-file limit every binary raises at start; [`metrics`]: the
//!   Prometheus `/metrics` endpoint;
//! - [`dummyrunner`]: the load tester's simulated players (`src/bin/dummyrunner.rs`);
//! - [`game`]: the game's side of the link, used by the demo game.

pub mod acceptor;
pub mod amp;
pub mod cli;
pub mod config;
pub mod control;
pub mod dummyrunner;
pub mod game;
pub mod gamelog;
pub mod limits;
pub mod logfile;
pub mod markup;
pub mod metrics;
pub mod pidfile;
pub mod protocols;
pub mod registry;
pub mod session;
pub mod shared;
pub mod ssh;
pub mod stats;
pub mod status;
pub mod supervisor;
pub mod throttle;
pub mod tls;
pub mod upgrade;
pub mod wire;
