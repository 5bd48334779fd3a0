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
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;

/// A link and writer state carried over `portal upgrade`.
pub struct Carried {
    /// The linked game: link id, socket, bytes read but not yet decoded.
    pub link: Option<(u64, TcpStream, Vec<u8>)>,
    pub outbox: outbox::Outbox,
}

/// Start the accept, reader and writer threads on `listener`; the writer
/// takes `inbox`, the receiving end of [`Shared::amp`]. After an upgrade,
/// `carried` is the old portal's link, which the threads go on with.
pub fn start(
    listener: TcpListener,
    shared: Arc<Shared>,
    inbox: InboxReceiver,
    carried: Option<Carried>,
) -> io::Result<()> {
    let (reader_tx, reader_rx) = crossbeam_channel::unbounded();
    let (outbox, link) = match carried {
        Some(carried) => (carried.outbox, carried.link),
        None => (outbox::Outbox::new(shared.config()), None),
    };
    let mut first_id = 1;
    let mut for_writer = None;
    if let Some((id, stream, leftover)) = link {
        shared.link.claim();
        for_writer = Some((id, stream.try_clone()?));
        first_id = id + 1;
        let _ = reader_tx.send(reader::NewLink {
            id,
            stream,
            leftover,
        });
    }
    let s = shared.clone();
    std::thread::Builder::new()
        .name("amp-writer".into())
        .spawn(move || writer::run_writer(s, inbox, outbox, for_writer))?;
    let s = shared.clone();
    std::thread::Builder::new()
        .name("amp-reader".into())
        .spawn(move || reader::run_reader(s, reader_rx))?;
    std::thread::Builder::new()
        .name("amp-accept".into())
        .spawn(move || accept::run_accept(listener, shared, reader_tx, first_id))?;
    Ok(())
}
