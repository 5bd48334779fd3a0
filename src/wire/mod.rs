//! The shared wire vocabulary: what the portal and the game say to each
//! other over the AMP link.
//!
//! Both sides use these types: the portal (its registry, session workers
//! and AMP threads) and the game-side library ([`crate::game`]), so neither
//! imports the other's internals. Nothing here does I/O.
//!
//! - [`value`]: the dynamic value type (`Value`, `Map`);
//! - [`message`]: the messages in both directions, [`message::Command`],
//!   the start and stop modes and the protocol version;
//! - [`session`]: the sync record ([`session::Session`]) and its merge rules;
//! - [`flags`]: the typed protocol flags ([`flags::ProtocolFlags`]), sent
//!   as the map Evennia's names describe.
//!
//! The framing (length prefix + postcard) is the native dialect's codec,
//! [`crate::amp::codec`]; `docs/amp-protocol.md` documents the bytes.

pub mod flags;
pub mod message;
pub mod session;
pub mod value;
