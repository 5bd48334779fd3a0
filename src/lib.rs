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
//!             TLS, the protocol engine — telnet, or HTTP + websocket for
//!             the web page — line framer, rate limits, output buffer)
//!                   │ data_in                               ▲ data_out
//!                   ▼                                       │ (channel + waker)
//!       crossbeam channel ──► AMP writer thread ──frames──► game server
//!                             AMP reader thread ◄──frames── game server
//!                   registry: sessid → session handle ◄── lookup
//! ```
//!
//! Module map, following the picture:
//! - [`config`]: `portal.conf` (TOML) and its limits;
//! - [`acceptor`]: the listeners' poll loop, connection throttle, signals;
//! - [`session::worker`]: the per-connection thread; it sleeps in
//!   [`session::waiter`] (`ppoll` on its socket and an eventfd) and gives
//!   back idle stack pages with [`session::stack`];
//! - [`handler`]: the session registry (the seed's `PortalSessionHandler`);
//! - [`session`]: the sync record both sides keep (the seed's `Session`);
//! - [`amp`]: the link to the game: messages, codec, reader and writer;
//! - [`protocols`]: the client protocols (telnet; HTTP and websockets for
//!   the web client, with its wire formats; spotting HTTP on telnet);
//! - [`session::protocol`]: which engine a worker drives, and rendering for it;
//! - [`tls`] and [`session::transport`]: telnet over TLS (rustls);
//! - [`throttle`]: rate limits and per-address caps;
//! - [`markup`]: Evennia colour markup rendered for each client (ANSI for
//!   telnet, HTML for the web client in [`markup::html`]);
//! - [`supervisor`]: the game server child process;
//! - [`cli`], [`pidfile`], [`control`], [`stats`], [`logfile`], [`status`]:
//!   operating the portal (subcommands, pid file, the `portal status`
//!   socket, counters, reopenable log, status file); [`limits`]: the
//!   open-file limit every binary raises at start;
//! - [`value`]: the dynamic value type carried over AMP;
//! - [`dummyrunner`]: the load tester's simulated players (`src/bin/dummyrunner.rs`);
//! - [`game`]: the game's side of the link, used by the demo game.

pub mod acceptor;
pub mod amp;
pub mod cli;
pub mod config;
pub mod control;
pub mod dummyrunner;
pub mod game;
pub mod handler;
pub mod limits;
pub mod logfile;
pub mod markup;
pub mod pidfile;
pub mod protocols;
pub mod session;
pub mod stats;
pub mod status;
pub mod supervisor;
pub mod throttle;
pub mod tls;
pub mod value;
