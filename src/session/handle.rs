//! How the rest of the portal reaches a session worker: a channel of
//! [`ToWorker`] messages and the worker's [`Wake`].
//!
//! The [`crate::registry::Registry`] keeps one [`WorkerHandle`] per
//! session; the AMP reader (game output) and writer (notices) send through
//! clones of it, taken out of the registry so no lock is held across the
//! send or the wake. The worker ([`crate::session::worker`]) owns the
//! receiving end.

use crate::amp::message::Command;
use crate::session::waiter::Wake;
use crate::value::Map;
use crossbeam_channel::{Receiver, Sender};

/// What the rest of the portal sends to a worker.
#[derive(Debug)]
pub(crate) enum ToWorker {
    /// Commands from the game to render.
    Out(Vec<Command>),
    /// Show the reason (if any), flush, close.
    Close(String),
    /// Protocol flags the game set for this session (e.g. SCREENREADER).
    Flags(Map),
}

/// The registry's way to reach a worker: a channel and the worker's waker.
#[derive(Clone)]
pub struct WorkerHandle {
    tx: Sender<ToWorker>,
    waker: Wake,
}

impl WorkerHandle {
    /// A handle for the worker that owns `rx` and waits on `waker`'s
    /// waiter.
    pub(crate) fn new(waker: Wake) -> (WorkerHandle, Receiver<ToWorker>) {
        let (tx, rx) = crossbeam_channel::unbounded();
        (WorkerHandle { tx, waker }, rx)
    }

    fn send(&self, message: ToWorker) {
        if self.tx.send(message).is_ok() {
            // A failed wake means the worker is gone; nothing to do.
            let _ = self.waker.wake();
        }
    }

    /// Output from the game.
    pub fn send_out(&self, commands: Vec<Command>) {
        self.send(ToWorker::Out(commands));
    }

    /// One line of text from the portal itself.
    pub fn text(&self, text: &str) {
        self.send_out(vec![Command::text(text)]);
    }

    /// Close the session after showing `reason`.
    pub fn close(&self, reason: &str) {
        self.send(ToWorker::Close(reason.to_owned()));
    }

    /// Flags the game changed; they take part in rendering from now on.
    pub fn set_flags(&self, flags: Map) {
        self.send(ToWorker::Flags(flags));
    }
}

/// A handle whose worker is the caller: for unit tests of the registry.
/// The `Waiter` must be kept alive as long as the handle is used.
#[cfg(test)]
pub(crate) fn test_handle() -> (
    WorkerHandle,
    Receiver<ToWorker>,
    crate::session::waiter::Waiter,
) {
    let waiter = crate::session::waiter::Waiter::new(0).expect("eventfd");
    let (handle, rx) = WorkerHandle::new(waiter.waker());
    (handle, rx, waiter)
}
