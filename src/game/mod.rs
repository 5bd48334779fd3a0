//! The game server's side of the AMP link.
//!
//! ```text
//!   portal ──PortalMsg frames──► GameLink::recv ──► your game loop
//!                                                    │ ServerSessions::apply
//!   portal ◄──ServerMsg frames── GameLink::send ◄───┘ (DataOut, Login, …)
//! ```
//!
//! This module is what a game written in Rust links against to sit behind
//! the portal; the bundled demo game (`src/bin/demo_game.rs`, logic in
//! [`demo`]) is its first user. It owns:
//!
//! - [`GameLink`]: a blocking, single-threaded TCP client for the link. It
//!   connects (retrying while the portal starts), says hello with the
//!   protocol version and shared secret, asks for the sync and hands back
//!   the portal's [`Synced`] reply: the start mode and every session record,
//!   so a restarted game knows who is logged in as whom;
//! - [`ServerSessions`]: the game's copy of the session records, kept in
//!   step by applying the portal's `Connect`/`ConnSync`/`Disconnect`/
//!   `DisconnectAll`/`Sync` messages;
//! - [`MsdpDefaults`]: the default answers to MSDP's `LIST`, `REPORT`,
//!   `UNREPORT`, `RESET` and `SEND` for the commands a game leaves
//!   unhandled (Evennia's default inputfuncs);
//! - [`LinkError`]: the one error type of this boundary.
//!
//! It owns no threads and no game logic. The wire format is in
//! [`crate::wire::message`] and [`crate::amp::codec`].
//!
//! ```no_run
//! use portal::wire::message::PortalMsg;
//! use portal::game::{GameLink, MsdpDefaults, ServerSessions};
//! use std::time::Duration;
//!
//! # fn main() -> Result<(), portal::game::LinkError> {
//! let (mut link, synced) = GameLink::connect("127.0.0.1:4006", "", "mygame", Duration::from_secs(30))?;
//! let mut sessions = ServerSessions::new();
//! sessions.sync(synced.sessions);
//! let mut msdp = MsdpDefaults::new();
//! loop {
//!     let msg = link.recv()?;
//!     if sessions.apply(&msg) {
//!         continue;
//!     }
//!     match msg {
//!         PortalMsg::DataIn { sessid, commands } => {
//!             for command in &commands {
//!                 // What the game does not handle itself: MSDP's LIST… defaults.
//!                 match msdp.answer(sessid, command, |_| None) {
//!                     Some(replies) if replies.is_empty() => {}
//!                     Some(replies) => link.data_out(sessid, replies)?,
//!                     None => link.text(sessid, "You said something.")?,
//!                 }
//!             }
//!         }
//!         PortalMsg::Stop { .. } => return link.session_sync(sessions.records(), false),
//!         _ => {}
//!     }
//! }
//! # }
//! ```

pub mod demo;
mod link;
pub mod msdp;
mod sessions;

pub use link::{GameLink, LinkError, Synced, MAX_FRAME};
pub use msdp::MsdpDefaults;
pub use sessions::ServerSessions;
