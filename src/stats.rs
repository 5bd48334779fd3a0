//! Counters for `portal status` and the periodic stats log line.
//!
//! One [`Stats`] lives in the [`crate::shared::Shared`] owners. Each counter is an
//! atomic bumped where the thing happens: the acceptor counts accepted,
//! throttled (queued) and refused connections (with the reason), workers
//! count bytes and commands, the supervisor records the game's state, and
//! the AMP writer and workers time input and output in two histograms (for
//! `/metrics`, [`crate::metrics`]). Readers take a [`Counters`] snapshot;
//! nothing here blocks a hot path for long.

use crate::metrics::histogram::Histogram;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// Every counter the portal keeps.
#[derive(Default)]
pub struct Stats {
    pub connections_accepted: AtomicU64,
    /// Connections that had to wait in the connection queue.
    pub connections_throttled: AtomicU64,
    /// Connections turned away (queue full, no descriptors, no thread).
    pub connections_refused: AtomicU64,
    /// Clients waiting in the connection queue right now.
    pub connections_queued_now: AtomicU64,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    /// Commands (lines and out-of-band) passed on towards the game.
    pub commands: AtomicU64,
    /// Commands refused by `max_command_rate`.
    pub commands_refused: AtomicU64,
    /// Output commands from the game handed to a session's worker.
    pub commands_out: AtomicU64,
    pub config_reloads: AtomicU64,
    pub config_reload_failures: AtomicU64,
    /// Session worker threads running now.
    workers: AtomicU64,
    game: Mutex<GameStatus>,
    /// Refused connections by reason (indexed by [`RefuseReason`]).
    refused_by: [AtomicU64; RefuseReason::ALL.len()],
    /// From a player's command reaching the portal to its last byte
    /// written to the game (the AMP writer records it).
    pub input_to_game: Histogram,
    /// From game output read off the link to its last byte written to the
    /// player's socket (the session worker records it).
    pub game_to_client: Histogram,
}

/// Why a connection was turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefuseReason {
    /// The address already has `max_sessions_per_ip` sessions.
    AddressSessions,
    /// The address connected more than `max_connections_per_ip_per_minute`.
    AddressRate,
    /// The connection queue was full.
    QueueFull,
    /// The process ran out of file descriptors.
    NoDescriptors,
    /// No thread could be started for the session.
    NoThread,
    /// The session's worker could not be set up.
    WorkerSetup,
    /// A listener that requires a PROXY header was reached from an
    /// address not in `proxy.trusted_proxies`.
    UntrustedProxy,
    /// A trusted proxy's PROXY header was missing, malformed or slow.
    ProxyHeader,
}

impl RefuseReason {
    /// Every reason, in index order.
    pub const ALL: [RefuseReason; 8] = [
        RefuseReason::AddressSessions,
        RefuseReason::AddressRate,
        RefuseReason::QueueFull,
        RefuseReason::NoDescriptors,
        RefuseReason::NoThread,
        RefuseReason::WorkerSetup,
        RefuseReason::UntrustedProxy,
        RefuseReason::ProxyHeader,
    ];

    /// The `reason` label `/metrics` gives it.
    pub fn name(self) -> &'static str {
        match self {
            RefuseReason::AddressSessions => "address_sessions",
            RefuseReason::AddressRate => "address_rate",
            RefuseReason::QueueFull => "queue_full",
            RefuseReason::NoDescriptors => "no_descriptors",
            RefuseReason::NoThread => "no_thread",
            RefuseReason::WorkerSetup => "worker_setup",
            RefuseReason::UntrustedProxy => "untrusted_proxy",
            RefuseReason::ProxyHeader => "proxy_header",
        }
    }
}

impl From<crate::throttle::IpRefusal> for RefuseReason {
    fn from(why: crate::throttle::IpRefusal) -> RefuseReason {
        match why {
            crate::throttle::IpRefusal::TooManySessions => RefuseReason::AddressSessions,
            crate::throttle::IpRefusal::TooFast => RefuseReason::AddressRate,
        }
    }
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub connections_accepted: u64,
    pub connections_throttled: u64,
    pub connections_refused: u64,
    pub connections_queued_now: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub commands: u64,
    pub commands_refused: u64,
    pub commands_out: u64,
    pub config_reloads: u64,
    pub config_reload_failures: u64,
}

/// What the supervisor knows about the game process.
#[derive(Debug, Clone, Default)]
pub struct GameStatus {
    pub state: GameState,
    pub pid: Option<u32>,
    /// When the running process started.
    pub since: Option<Instant>,
    /// Starts after the first one (reloads and crash restarts).
    pub restarts: u64,
    /// Times the game exited without being asked.
    pub crashes: u64,
    /// When a game that died will be started again.
    pub next_start: Option<Instant>,
}

/// The game process's state as the supervisor sees it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum GameState {
    /// The portal does not start the game (`[game] autostart = false`).
    #[default]
    External,
    /// Started, not yet running.
    Starting,
    Running,
    /// A planned restart (SIGUSR1, `reload`) is under way.
    Restarting,
    /// The game exited on its own or could not start; a restart is due.
    Down,
    /// Stopped for good (portal shutting down).
    Stopped,
}

impl GameState {
    pub fn name(self) -> &'static str {
        match self {
            GameState::External => "external",
            GameState::Starting => "starting",
            GameState::Running => "running",
            GameState::Restarting => "restarting",
            GameState::Down => "down",
            GameState::Stopped => "stopped",
        }
    }
}

impl Stats {
    /// Count a worker thread in (true) or out (false).
    pub fn worker_started(&self, started: bool) {
        if started {
            self.workers.fetch_add(1, Ordering::SeqCst);
        } else {
            self.workers.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Worker threads still running.
    pub fn live_workers(&self) -> u64 {
        self.workers.load(Ordering::SeqCst)
    }

    /// Count a refused connection, in the total and under its reason.
    pub fn refuse(&self, reason: RefuseReason) {
        Stats::add(&self.connections_refused, 1);
        if let Some(counter) = self.refused_by.get(reason as usize) {
            Stats::add(counter, 1);
        }
    }

    /// Refused connections by reason, in [`RefuseReason::ALL`]'s order.
    pub fn refused_by_reason(&self) -> [u64; RefuseReason::ALL.len()] {
        let mut counts = [0; RefuseReason::ALL.len()];
        for (count, counter) in counts.iter_mut().zip(&self.refused_by) {
            *count = counter.load(Ordering::Relaxed);
        }
        counts
    }

    /// Add `n` to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> Counters {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Counters {
            connections_accepted: get(&self.connections_accepted),
            connections_throttled: get(&self.connections_throttled),
            connections_refused: get(&self.connections_refused),
            connections_queued_now: get(&self.connections_queued_now),
            bytes_in: get(&self.bytes_in),
            bytes_out: get(&self.bytes_out),
            commands: get(&self.commands),
            commands_refused: get(&self.commands_refused),
            commands_out: get(&self.commands_out),
            config_reloads: get(&self.config_reloads),
            config_reload_failures: get(&self.config_reload_failures),
        }
    }

    /// The game's status.
    pub fn game(&self) -> GameStatus {
        self.game.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Change the game's status (the supervisor).
    pub fn update_game(&self, change: impl FnOnce(&mut GameStatus)) {
        change(&mut self.game.lock().unwrap_or_else(|p| p.into_inner()));
    }
}

/// Per-second rates between two snapshots, for the stats log line.
pub fn rate(before: u64, after: u64, seconds: f64) -> f64 {
    if seconds <= 0.0 {
        return 0.0;
    }
    after.saturating_sub(before) as f64 / seconds
}

/// `3723` → `1h2m3s` (one word, so status lines split on spaces).
pub fn human_duration(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m{s}s"),
        (0, _, _) => format!("{h}h{m}m{s}s"),
        _ => format!("{d}d{h}h{m}m{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_a_person_would_say_them() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(65), "1m5s");
        assert_eq!(human_duration(3723), "1h2m3s");
        assert_eq!(human_duration(90_061), "1d1h1m1s");
    }

    #[test]
    fn a_refusal_counts_in_the_total_and_under_its_reason() {
        let stats = Stats::default();
        stats.refuse(RefuseReason::QueueFull);
        stats.refuse(RefuseReason::QueueFull);
        stats.refuse(crate::throttle::IpRefusal::TooFast.into());
        assert_eq!(stats.snapshot().connections_refused, 3);
        let by = stats.refused_by_reason();
        assert_eq!(by[RefuseReason::QueueFull as usize], 2);
        assert_eq!(by[RefuseReason::AddressRate as usize], 1);
        assert_eq!(by.iter().sum::<u64>(), 3);
        for (i, reason) in RefuseReason::ALL.iter().enumerate() {
            assert_eq!(*reason as usize, i, "ALL is in index order");
        }
    }

    #[test]
    fn rates_never_go_negative_or_divide_by_zero() {
        assert_eq!(rate(10, 30, 2.0), 10.0);
        assert_eq!(rate(30, 10, 2.0), 0.0);
        assert_eq!(rate(0, 10, 0.0), 0.0);
    }
}
