//! The AMP writer's inbox: everything the rest of the portal tells the one
//! writer thread, and the little it publishes back.
//!
//! Workers (through the [`crate::registry::Registry`]), the AMP accept and
//! reader threads and the supervisor each hold an [`Inbox`] and send
//! [`ToWriter`] messages on it. The writer ([`crate::amp::writer`]) is the
//! only reader of the channel and the only owner of the link's state, held
//! and in-flight input and the heartbeat; nothing here is locked.
//!
//! [`LinkStatus`] is what other threads may read about the link: whether a
//! game holds it (claimed by the accept thread at the hello, released by the
//! reader when the link ends) and, for `portal status`, the state and the
//! held-input count the writer last published.

use crate::wire::message::{Command, PortalMsg, StartMode};
use crate::wire::session::Session;
use crossbeam_channel::{Receiver, Sender};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};

/// A message to the AMP writer.
#[derive(Debug)]
pub enum ToWriter {
    /// A new session (PCONN once the game is synced).
    Connect(Session),
    /// A session's record changed (PCONNSYNC).
    ConnSync(Session),
    /// The client closed: forget it and tell the game (PDISCONN).
    Disconnect(u64),
    /// The game closed it: forget it without telling the game.
    Forget(u64),
    /// Every session closed (PDISCONNALL).
    DisconnectAll,
    /// Player input, already through the session's limits.
    Input { sessid: u64, commands: Vec<Command> },
    /// Any other message for a linked game (Stop, Error).
    Send(PortalMsg),
    /// A game passed the hello on link `id`; the writer writes to `stream`.
    LinkUp(u64, TcpStream),
    /// Link `id` closed (its reader saw the end).
    LinkDown(u64),
    /// The game on link `id` asked for the sessions (PSYNC).
    SyncRequest(u64),
    /// The game answered heartbeat `seq`.
    Pong(u64),
    /// A restart is starting: hold input, tell players.
    BeginRestart(StartMode),
    /// The game is being stopped for good: its link closing is no outage.
    ExpectClose,
}

/// The sending side of the writer's channel. Cheap to clone.
#[derive(Clone)]
pub struct Inbox {
    tx: Sender<ToWriter>,
}

impl Inbox {
    /// A new inbox and the receiver the writer thread takes.
    pub fn new() -> (Inbox, Receiver<ToWriter>) {
        let (tx, rx) = crossbeam_channel::unbounded();
        (Inbox { tx }, rx)
    }

    /// Deliver a message. The writer only goes away at exit, when nothing
    /// is left to tell the game.
    pub fn send(&self, message: ToWriter) {
        if self.tx.send(message).is_err() {
            log::debug!("AMP writer gone; message dropped");
        }
    }

    /// A message for a linked game.
    pub fn send_msg(&self, message: PortalMsg) {
        self.send(ToWriter::Send(message));
    }
}

/// Where the link to the game stands, as `portal status` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    /// No game linked.
    Down,
    /// A game passed the hello (or is being stopped): input is held.
    Linked,
    /// The game has the sessions; input flows.
    Ready,
}

impl LinkState {
    /// The name `portal status` prints.
    pub fn name(self) -> &'static str {
        match self {
            LinkState::Down => "down",
            LinkState::Linked => "linked",
            LinkState::Ready => "ready",
        }
    }
}

/// What other threads may read about the link.
#[derive(Default)]
pub struct LinkStatus {
    claimed: AtomicBool,
    state: AtomicU8,
    held: AtomicUsize,
}

impl LinkStatus {
    /// Claim the link for a game that passed its hello; false if another
    /// game holds it. Called by the accept thread only.
    pub fn claim(&self) -> bool {
        self.claimed
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// The linked game's link ended. Called by the reader only, after it
    /// told the writer.
    pub fn release(&self) {
        self.claimed.store(false, Ordering::Release);
    }

    /// Whether a game holds the link.
    pub fn is_claimed(&self) -> bool {
        self.claimed.load(Ordering::Acquire)
    }

    /// Published by the writer after each batch.
    pub fn publish(&self, state: LinkState, held: usize) {
        let code = match state {
            LinkState::Down => 0,
            LinkState::Linked => 1,
            LinkState::Ready => 2,
        };
        self.state.store(code, Ordering::Relaxed);
        self.held.store(held, Ordering::Relaxed);
    }

    /// The state the writer last published.
    pub fn state(&self) -> LinkState {
        match self.state.load(Ordering::Relaxed) {
            2 => LinkState::Ready,
            1 => LinkState::Linked,
            _ => LinkState::Down,
        }
    }

    /// Commands held (game away or not keeping up), over all sessions.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }
}
