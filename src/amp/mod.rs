//! The AMP link between the portal and the game server.
//!
//! ```text
//!   workers ─► registry ─► inbox (one channel) ─► writer thread ──frames──► game
//!              supervisor, reader ─┘                 (outbox: link state,
//!                                                     held + in-flight input,
//!                                                     heartbeat)
//!   workers ◄── registry lookup ◄── reader thread ◄──frames── game
//!                                   accept thread: listener + hello
//! ```
//!
//! - [`codec`]: pure framing, length prefix + postcard body, of the
//!   messages in [`crate::wire::message`] (the vocabulary both sides share);
//! - [`inbox`]: what the rest of the portal sends the writer, and the link
//!   status others may read;
//! - [`outbox`]: the writer's decisions, pure (held and in-flight input,
//!   link state, heartbeat, bytes waiting for the socket);
//! - [`writer`], [`reader`], [`accept`]: the three threads;
//! - [`error`]: why a link was refused or ended.
//!
//! The game side of the same link is [`crate::game`]. The wire format is
//! documented byte by byte in `docs/amp-protocol.md`.

pub mod accept;
pub mod codec;
pub mod error;
pub mod evennia;
pub mod inbox;
pub mod outbox;
pub mod reader;
pub mod writer;

use crate::amp::inbox::InboxReceiver;
use crate::shared::Shared;
use std::io;
use std::net::TcpListener;
use std::sync::Arc;

/// Start the accept, reader and writer threads on `listener`; the writer
/// takes `inbox`, the receiving end of [`Shared::amp`].
pub fn start(listener: TcpListener, shared: Arc<Shared>, inbox: InboxReceiver) -> io::Result<()> {
    let (reader_tx, reader_rx) = crossbeam_channel::unbounded();
    let s = shared.clone();
    std::thread::Builder::new()
        .name("amp-writer".into())
        .spawn(move || writer::run_writer(s, inbox))?;
    let s = shared.clone();
    std::thread::Builder::new()
        .name("amp-reader".into())
        .spawn(move || reader::run_reader(s, reader_rx))?;
    std::thread::Builder::new()
        .name("amp-accept".into())
        .spawn(move || accept::run_accept(listener, shared, reader_tx))?;
    Ok(())
}
