//! The AMP writer's inbox: everything the rest of the portal tells the one
//! writer thread, and the little it publishes back.
//!
//! Workers (through the [`crate::registry::Registry`]), the AMP accept and
//! reader threads and the supervisor each hold an [`Inbox`] and send
//! [`ToWriter`] messages on it. The writer ([`crate::amp::writer`]) is the
//! only reader of the channel and the only owner of the link's state, held
//! and in-flight input and the heartbeat.
//!
//! The channel is a mutex over a queue and a condition variable rather
//! than a crossbeam channel: the writer takes every waiting message in one
//! lock, a sender wakes it only when it is asleep, and a writer with
//! nothing to do sleeps at once (a channel's receiver spins and yields
//! first, which at a thousand commands a second costs more CPU than the
//! commands).
//!
//! [`LinkStatus`] is what other threads may read about the link: whether a
//! game holds it (claimed by the accept thread at the hello, released by the
//! reader when the link ends) and, for `portal status` and `/metrics`, the
//! state, the held-input count and the queue towards the game's socket the
//! writer last published.

use crate::amp::evennia::boxes::AmpBox;
use crate::wire::message::{Command, PortalMsg, StartMode};
use crate::wire::session::Session;
use std::collections::VecDeque;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

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
    /// Player input, already through the session's limits, and when it
    /// reached the portal.
    Input {
        sessid: u64,
        commands: Vec<Command>,
        at: Instant,
    },
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
    /// An answer to one of the game's requests (evennia dialect: every
    /// `_ask` is answered), written on link `id`.
    Answer(u64, AmpBox),
    /// `portal upgrade`: write what the game takes, answer with the
    /// writer's state, wait ([`crate::upgrade`]).
    Freeze(crossbeam_channel::Sender<WriterFrozen>),
}

/// The AMP writer's state for an upgrade.
#[derive(Debug)]
pub struct WriterFrozen {
    /// [`crate::amp::outbox::Outbox::freeze`]'s bytes.
    pub outbox: Vec<u8>,
    /// The link it writes to, if a game is linked.
    pub link: Option<u64>,
}

/// The queue the inbox and the writer share.
struct Queue {
    state: Mutex<QueueState>,
    ready: Condvar,
}

struct QueueState {
    messages: VecDeque<ToWriter>,
    /// The writer is asleep on `ready`.
    sleeping: bool,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, QueueState> {
        // A push or a take cannot leave the queue half-changed.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The sending side of the writer's channel. Cheap to clone.
#[derive(Clone)]
pub struct Inbox {
    queue: Arc<Queue>,
}

/// The writer's side of its channel.
pub struct InboxReceiver {
    queue: Arc<Queue>,
}

impl Inbox {
    /// A new inbox and the receiver the writer thread takes.
    pub fn new() -> (Inbox, InboxReceiver) {
        let queue = Arc::new(Queue {
            state: Mutex::new(QueueState {
                messages: VecDeque::new(),
                sleeping: false,
            }),
            ready: Condvar::new(),
        });
        let receiver = InboxReceiver {
            queue: queue.clone(),
        };
        (Inbox { queue }, receiver)
    }

    /// Deliver a message; wakes the writer if it sleeps.
    pub fn send(&self, message: ToWriter) {
        let wake = {
            let mut state = self.queue.lock();
            state.messages.push_back(message);
            std::mem::replace(&mut state.sleeping, false)
        };
        if wake {
            self.queue.ready.notify_one();
        }
    }

    /// A message for a linked game.
    pub fn send_msg(&self, message: PortalMsg) {
        self.send(ToWriter::Send(message));
    }
}

impl InboxReceiver {
    /// Move every waiting message into `into`, sleeping up to `timeout`
    /// for the first one. Returns false if the time ran out with none.
    pub fn take_all(&self, timeout: Duration, into: &mut VecDeque<ToWriter>) -> bool {
        let mut state = self.queue.lock();
        if state.messages.is_empty() {
            state.sleeping = true;
            let waited = self
                .queue
                .ready
                .wait_timeout_while(state, timeout, |s| s.messages.is_empty());
            state = match waited {
                Ok((state, _)) => state,
                Err(poisoned) => poisoned.into_inner().0,
            };
            state.sleeping = false;
        }
        if state.messages.is_empty() {
            return false;
        }
        if into.is_empty() {
            std::mem::swap(&mut state.messages, into);
        } else {
            into.extend(state.messages.drain(..));
        }
        true
    }

    /// Every waiting message, oldest first, without sleeping (tests).
    #[cfg(test)]
    pub fn try_iter(&self) -> impl Iterator<Item = ToWriter> {
        std::mem::take(&mut self.queue.lock().messages).into_iter()
    }
}

/// Where the link to the game stands, as `portal status` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LinkState {
    /// No game linked.
    #[default]
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
    queued_frames: AtomicUsize,
    queued_bytes: AtomicUsize,
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

    /// Published by the writer after each batch: input frames and bytes
    /// waiting for the game's socket.
    pub fn publish_queue(&self, frames: usize, bytes: usize) {
        self.queued_frames.store(frames, Ordering::Relaxed);
        self.queued_bytes.store(bytes, Ordering::Relaxed);
    }

    /// Input frames and bytes waiting for the game's socket, as last
    /// published.
    pub fn queued(&self) -> (usize, usize) {
        let frames = self.queued_frames.load(Ordering::Relaxed);
        (frames, self.queued_bytes.load(Ordering::Relaxed))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_inbox_times_out_and_a_send_wakes_the_writer() {
        let (inbox, receiver) = Inbox::new();
        let mut batch = VecDeque::new();
        assert!(!receiver.take_all(Duration::from_millis(5), &mut batch));
        let sender = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            inbox.send(ToWriter::Pong(1));
            inbox.send(ToWriter::Pong(2));
        });
        let start = Instant::now();
        assert!(receiver.take_all(Duration::from_secs(10), &mut batch));
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "woken, not timed out"
        );
        sender.join().unwrap();
        while batch.len() < 2 {
            receiver.take_all(Duration::from_secs(1), &mut batch);
        }
        let seqs: Vec<u64> = batch
            .iter()
            .map(|m| match m {
                ToWriter::Pong(seq) => *seq,
                _ => 0,
            })
            .collect();
        assert_eq!(seqs, [1, 2], "in order");
    }
}
