//! The portal's side of one connection: the per-connection worker thread
//! and what it drives.
//!
//! The sync record both sides keep for every connection (the seed's
//! `Session`) is in [`crate::wire::session`]; the portal's registry
//! ([`crate::registry`]) holds one per connected client.
//!
//! The connection itself is here: its rules (telnet state, line buffer,
//! limits, timeouts) are the sans-IO session core ([`core`]), and its I/O
//! (socket, TLS) belongs to the session worker thread ([`worker`]). An
//! AJAX session has no connection of its own: its worker ([`ajax`]) owns
//! the session core and at most one parked request. A web request for
//! the game's own web server is relayed by the connection's worker
//! ([`relay`]).

pub mod ajax;
pub mod core;
pub mod framer;
pub mod frozen;
pub mod handle;
pub mod irc;
pub mod outbound;
pub mod protocol;
pub mod relay;
pub mod render;
pub mod stack;
pub mod transport;
pub mod waiter;
pub mod worker;
