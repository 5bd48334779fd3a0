//! How the rest of the portal reaches a session worker: a mailbox of
//! `ToWorker` messages and the worker's [`Wake`].
//!
//! The [`crate::registry::Registry`] keeps one [`WorkerHandle`] per
//! session; the AMP reader (game output) and writer (notices) send through
//! clones of it, taken out of the registry so no lock is held across the
//! send or the wake. The worker ([`crate::session::worker`]) owns the
//! receiving end, a [`Mail`].
//!
//! The mailbox is a mutex over a `VecDeque` rather than a channel: it costs
//! about a hundred bytes per session while empty (a channel's blocks and
//! padded ends cost over a kilobyte), and a worker drains it whole each
//! time it wakes, so the lock is never contended for long.

use crate::session::waiter::Wake;
use crate::wire::flags::ProtocolFlags;
use crate::wire::message::Command;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

/// What the rest of the portal sends to a worker.
#[derive(Debug)]
pub(crate) enum ToWorker {
    /// Commands to render: from the game (with when the AMP reader had
    /// them) or the portal's own text (no time).
    Out {
        commands: Vec<Command>,
        read_at: Option<Instant>,
    },
    /// Show the reason (if any), flush, close.
    Close(String),
    /// Protocol flags the game set for this session (e.g. SCREENREADER).
    Flags(Box<ProtocolFlags>),
    /// The game logged the player in (true) or out (false).
    LoggedIn(bool),
    /// A request for an AJAX session (only its worker gets these).
    Ajax(Box<crate::session::ajax::AjaxMail>),
    /// `portal upgrade`: answer with the session's state and wait
    /// ([`crate::upgrade`]).
    Freeze(crossbeam_channel::Sender<crate::upgrade::Frozen>),
}

/// What the handles and the worker share.
struct Mailbox {
    queue: Mutex<VecDeque<ToWorker>>,
    /// The worker has ended: nothing more is queued.
    closed: AtomicBool,
    waker: Wake,
}

impl Mailbox {
    fn lock(&self) -> MutexGuard<'_, VecDeque<ToWorker>> {
        // A push or a drain cannot leave the queue half-changed.
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The registry's way to reach a worker: its mailbox and its waker.
#[derive(Clone)]
pub struct WorkerHandle {
    mailbox: Arc<Mailbox>,
}

/// The worker's end of its mailbox. Dropping it closes the mailbox.
pub struct Mail {
    mailbox: Arc<Mailbox>,
}

impl Mail {
    /// The oldest message waiting, if any.
    pub(crate) fn try_recv(&self) -> Option<ToWorker> {
        let mut queue = self.mailbox.lock();
        let message = queue.pop_front();
        if queue.is_empty() && queue.capacity() > 8 {
            // A burst's large buffer goes back to the allocator.
            *queue = VecDeque::new();
        }
        message
    }

    /// Every message waiting, oldest first.
    #[cfg(test)]
    pub(crate) fn try_iter(&self) -> impl Iterator<Item = ToWorker> + '_ {
        std::iter::from_fn(|| self.try_recv())
    }
}

impl Drop for Mail {
    fn drop(&mut self) {
        self.mailbox.closed.store(true, Ordering::Release);
        self.mailbox.lock().clear();
    }
}

impl WorkerHandle {
    /// A handle for a worker sleeping on `waker`'s waiter, and the
    /// worker's end of the mailbox.
    pub(crate) fn new(waker: Wake) -> (WorkerHandle, Mail) {
        let mailbox = Arc::new(Mailbox {
            queue: Mutex::new(VecDeque::new()),
            closed: AtomicBool::new(false),
            waker,
        });
        let mail = Mail {
            mailbox: mailbox.clone(),
        };
        (WorkerHandle { mailbox }, mail)
    }

    fn send(&self, message: ToWorker) {
        let mailbox = &self.mailbox;
        if mailbox.closed.load(Ordering::Acquire) {
            return;
        }
        mailbox.lock().push_back(message);
        // A failed wake means the worker is gone; nothing to do.
        let _ = mailbox.waker.wake();
    }

    /// Output from the game, read off the link `read_at`.
    pub fn send_out(&self, commands: Vec<Command>, read_at: Instant) {
        self.send(ToWorker::Out {
            commands,
            read_at: Some(read_at),
        });
    }

    /// One line of text from the portal itself.
    pub fn text(&self, text: &str) {
        self.send(ToWorker::Out {
            commands: vec![Command::text(text)],
            read_at: None,
        });
    }

    /// Close the session after showing `reason`.
    pub fn close(&self, reason: &str) {
        self.send(ToWorker::Close(reason.to_owned()));
    }

    /// Flags the game changed; they take part in rendering from now on.
    pub fn set_flags(&self, flags: ProtocolFlags) {
        self.send(ToWorker::Flags(Box::new(flags)));
    }

    /// A request for the AJAX session this worker serves.
    pub(crate) fn ajax(&self, mail: crate::session::ajax::AjaxMail) {
        self.send(ToWorker::Ajax(Box::new(mail)));
    }

    /// Ask the worker to freeze for an upgrade; it answers on `reply`.
    pub fn freeze(&self, reply: crossbeam_channel::Sender<crate::upgrade::Frozen>) {
        self.send(ToWorker::Freeze(reply));
    }

    /// The game logged the player in or out (the login deadline).
    pub fn logged_in(&self, logged_in: bool) {
        self.send(ToWorker::LoggedIn(logged_in));
    }
}

/// A handle whose worker is the caller: for unit tests of the registry.
/// The `Waiter` must be kept alive as long as the handle is used.
#[cfg(test)]
pub(crate) fn test_handle() -> (WorkerHandle, Mail, crate::session::waiter::Waiter) {
    let waiter = crate::session::waiter::Waiter::new(0).expect("eventfd");
    let (handle, rx) = WorkerHandle::new(waiter.waker());
    (handle, rx, waiter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_arrive_in_order_and_wake_the_worker() {
        let (handle, mail, mut waiter) = test_handle();
        handle.text("one");
        handle.close("bye");
        let ready = waiter.wait(Some(std::time::Duration::ZERO)).unwrap();
        assert!(!ready.timed_out(), "woken");
        let got: Vec<String> = mail.try_iter().map(|m| format!("{m:?}")).collect();
        assert_eq!(got.len(), 2);
        assert!(got[0].contains("one") && got[1].contains("bye"), "{got:?}");
    }

    #[test]
    fn nothing_is_queued_for_a_worker_that_has_ended() {
        let (handle, mail, _waiter) = test_handle();
        let probe = handle.mailbox.clone();
        drop(mail);
        handle.text("late");
        assert!(probe.lock().is_empty());
    }
}
