//! `portal upgrade`: replace the running portal's binary with a new one
//! while every player stays connected.
//!
//! The main loop ([`crate::acceptor`]) runs an upgrade when asked (`portal
//! upgrade [--binary PATH]` through the control socket, or SIGUSR2):
//!
//! ```text
//!  1. handshake: `NEW upgrade-check` must name our hand-over version   (check)
//!  2. freeze, in this order, each answering with its state:
//!       AMP reader  stops at a frame boundary (the rest stays in the socket)
//!       workers     flush, end MCCP2, freeze their core; TLS keeps its secrets
//!       AMP writer  takes every input already sent, writes what it can
//!       listeners, the connection queue, the game process (supervisor)
//!  3. encode (format), clear close-on-exec, execve the new binary        (exec)
//!     by the game's parent thread, so the game is not sent its
//!     parent-death signal
//!  4. the new portal reads the hand-over, checks every descriptor, and
//!     starts the same threads on the same sockets (main.rs, worker, amp)
//! ```
//!
//! Anything that fails before the exec (a refused binary, an encoding
//! error, execve itself) ends the freeze: every frozen thread carries on
//! where it stopped and nothing is lost. [`Upgrades`] (in
//! [`crate::shared::Shared`]) is where the threads meet: the freeze flag,
//! every worker's handle, and the outcome for `portal status`.

pub mod check;
pub mod exec;
pub mod format;
pub mod run;

use crate::session::handle::WorkerHandle;
use crate::upgrade::format::{AjaxState, Dropped, LinkState, SessionState};
use crossbeam_channel::Sender;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

/// The environment variable naming the hand-over file's descriptor.
pub const HANDOVER_ENV: &str = "PORTAL_HANDOVER_FD";
/// What a player whose session cannot be carried is told.
pub const NOT_CARRIED: &str =
    "The portal is being upgraded and cannot keep this connection; please reconnect.";

/// A worker's answer to a freeze.
pub enum Frozen {
    /// Its state: carry it.
    Session(Box<SessionState>),
    /// An AJAX session's state.
    Ajax(Box<AjaxState>),
    /// An IRC bot's config: it has left its network, and the new portal
    /// connects it again.
    Bot(Box<crate::session::irc::BotConfig>),
    /// It could not be carried; its player was told and it is closing.
    Dropped(Dropped),
    /// It was ending anyway.
    Ended(u64),
}

/// An upgrade someone asked for.
pub struct Ask {
    /// The new binary; `None`: the path the portal was started from.
    pub binary: Option<PathBuf>,
    /// Where to say how it went (the control socket's client).
    pub reply: Option<Sender<String>>,
}

/// The last upgrade, for `portal status`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    /// Upgrades this portal chain has done.
    pub upgrades: u32,
    /// Sessions the last one carried, dropped, and the time it took.
    pub carried: usize,
    pub dropped: usize,
    pub took: Duration,
    /// Why the last attempt was refused, if it was.
    pub refused: Option<String>,
}

/// Where the threads meet during an upgrade.
#[derive(Default)]
pub struct Upgrades {
    freezing: AtomicBool,
    /// How many upgrades were called off; a frozen thread waits for it to
    /// pass `round`.
    resumed: Mutex<u64>,
    /// `resumed` when the current upgrade began.
    round: AtomicU64,
    cv: Condvar,
    workers: Mutex<HashMap<u64, WorkerHandle>>,
    ask: Mutex<Option<Ask>>,
    reader: Mutex<Option<Option<LinkState>>>,
    /// The binary the portal was started from.
    pub exe: OnceLock<PathBuf>,
    /// Environment the new binary gets besides this process's own (the
    /// malloc tunables main.rs re-executed with, which it then removed
    /// from the environment so the game does not inherit them).
    pub exec_env: OnceLock<Vec<(String, String)>>,
    outcome: Mutex<Outcome>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Upgrades {
    /// A worker started: it is asked to freeze in an upgrade.
    pub fn add_worker(&self, sessid: u64, handle: WorkerHandle) {
        lock(&self.workers).insert(sessid, handle);
    }

    pub fn forget_worker(&self, sessid: u64) {
        lock(&self.workers).remove(&sessid);
    }

    /// Every live worker.
    pub fn workers(&self) -> Vec<(u64, WorkerHandle)> {
        lock(&self.workers)
            .iter()
            .map(|(id, h)| (*id, h.clone()))
            .collect()
    }

    /// An upgrade is under way: the reader parks, nothing new starts.
    pub fn freezing(&self) -> bool {
        self.freezing.load(Ordering::Acquire)
    }

    /// Start a freeze.
    pub fn begin(&self) {
        *lock(&self.reader) = None;
        self.round.store(*lock(&self.resumed), Ordering::Release);
        self.freezing.store(true, Ordering::Release);
    }

    /// Block a frozen thread until the upgrade is called off (then it
    /// carries on); if the exec happens, this never returns. Measured
    /// against the round the upgrade began in, not the moment this is
    /// called: a call-off that comes between a thread's report and its
    /// wait must not leave it waiting for the next upgrade.
    pub fn wait_until_called_off(&self) {
        let round = self.round.load(Ordering::Acquire);
        let mut resumed = lock(&self.resumed);
        while *resumed == round {
            resumed = self.cv.wait(resumed).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// The upgrade failed before the exec: every frozen thread carries on.
    pub fn call_off(&self) {
        self.freezing.store(false, Ordering::Release);
        *lock(&self.resumed) += 1;
        self.cv.notify_all();
    }

    /// The reader stopped (with the link it was reading, if any); it
    /// waits for the upgrade to be called off.
    pub fn park_reader(&self, link: Option<LinkState>) {
        *lock(&self.reader) = Some(link);
        self.cv.notify_all();
        self.wait_until_called_off();
    }

    /// The reader's report, waiting up to `limit` for it (`None`: it did
    /// not park in time).
    pub fn parked_reader(&self, limit: Duration) -> Option<Option<LinkState>> {
        let deadline = std::time::Instant::now() + limit;
        let mut slot = lock(&self.reader);
        loop {
            if let Some(link) = slot.take() {
                return Some(link);
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return None;
            }
            // The reader notifies the same condvar as the called-off wait.
            drop(slot);
            let resumed = lock(&self.resumed);
            let _ = self
                .cv
                .wait_timeout(resumed, left.min(Duration::from_millis(10)));
            slot = lock(&self.reader);
        }
    }

    /// Queue a request (the main loop is told with `Control::Upgrade`).
    pub fn ask(&self, ask: Ask) -> bool {
        let mut slot = lock(&self.ask);
        if slot.is_some() {
            return false;
        }
        *slot = Some(ask);
        true
    }

    pub fn take_ask(&self) -> Option<Ask> {
        lock(&self.ask).take()
    }

    pub fn outcome(&self) -> Outcome {
        lock(&self.outcome).clone()
    }

    pub fn set_outcome(&self, change: impl FnOnce(&mut Outcome)) {
        change(&mut lock(&self.outcome));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn frozen_threads_carry_on_when_the_upgrade_is_called_off() {
        let upgrades = Arc::new(Upgrades::default());
        upgrades.begin();
        let u = upgrades.clone();
        let reader = std::thread::spawn(move || u.park_reader(None));
        let parked = upgrades.parked_reader(Duration::from_secs(10));
        assert_eq!(parked, Some(None), "the reader reported");
        upgrades.call_off();
        reader.join().unwrap();
        assert!(!upgrades.freezing());
    }

    #[test]
    fn a_call_off_before_the_wait_is_not_missed() {
        // The order that hung: the upgrade reads a thread's report and
        // calls off before that thread has begun to wait.
        let upgrades = Upgrades::default();
        upgrades.begin();
        upgrades.call_off();
        upgrades.wait_until_called_off();
        upgrades.begin();
        upgrades.call_off();
        upgrades.park_reader(None);
        assert!(!upgrades.freezing());
    }

    #[test]
    fn a_reader_that_never_parks_is_reported_as_such() {
        let upgrades = Upgrades::default();
        upgrades.begin();
        assert_eq!(upgrades.parked_reader(Duration::from_millis(30)), None);
    }

    #[test]
    fn one_request_at_a_time() {
        let upgrades = Upgrades::default();
        let ask = || Ask {
            binary: None,
            reply: None,
        };
        assert!(upgrades.ask(ask()));
        assert!(!upgrades.ask(ask()));
        assert!(upgrades.take_ask().is_some());
        assert!(upgrades.ask(ask()));
    }
}
