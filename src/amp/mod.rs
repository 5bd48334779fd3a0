//! The AMP link between the portal and the game server.
//!
//! ```text
//!   session workers ──data_in──► crossbeam channel ──► writer thread ──frames──► game
//!   session workers ◄─data_out── registry lookup ◄──── reader thread ◄─frames─── game
//! ```
//!
//! - [`codec`]: pure framing, length prefix + postcard body, of the
//!   messages in [`crate::wire::message`] (the vocabulary both sides share);
//! - [`link`]: the portal side: the listener, the hello handshake, the one
//!   reader thread and the one writer thread.
//!
//! The game side of the same link is [`crate::game`]. The wire format is
//! documented byte by byte in `docs/amp-protocol.md`.

pub mod codec;
pub mod link;
