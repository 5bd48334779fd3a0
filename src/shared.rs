//! The portal's owners, wired together once by `main` and shared (in one
//! `Arc`) by the acceptor, every session worker, the AMP threads, the
//! supervisor and the control socket.
//!
//! Each field owns its own piece of state behind its own lock or atomics:
//! nothing here is one lock over everything.
//! - `config`: the configuration in force ([`ConfigCell`]);
//! - `registry`: sessid → session record and worker handle;
//! - `ajax`: AJAX sessions by browser and tab id → their worker's handle;
//! - `amp`: the AMP writer's inbox (the writer owns the link's
//!   state, held and in-flight input and the heartbeat);
//! - `link`: what others may read about the link;
//! - `stats`: counters;
//! - `addresses`: per-address connection caps;
//! - `evennia`: what the launcher's status reports of an Evennia Server;
//! - `game_log`: where the supervised game's output goes.

use crate::amp::evennia::ServerInfo;
use crate::amp::inbox::{Inbox, InboxReceiver, LinkStatus};
use crate::config::{Config, ConfigCell};
use crate::registry::Registry;
use crate::stats::Stats;
use crate::throttle::AddressCaps;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Requests to the portal's main loop (the acceptor) and the supervisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Shut the portal down gracefully.
    Shutdown,
    /// Restart the game server, keeping players connected.
    ReloadGame,
    /// Re-read portal.conf.
    ReloadConfig,
    /// The game stopped answering heartbeats: kill it so it is restarted.
    KillHungGame,
    /// Restart the game in Evennia's reset mode, keeping players connected.
    ResetGame,
    /// Stop the game and keep it stopped (players stay connected).
    StopGame,
    /// Start the game if it is not running (Evennia's launcher, SSTART).
    StartGame,
    /// Replace the portal's binary keeping every player (`portal
    /// upgrade`, SIGUSR2); the request itself waits in
    /// [`crate::upgrade::Upgrades`].
    Upgrade,
}

/// Something that delivers [`Control`] requests to the main loop.
pub type ControlSender = Arc<dyn Fn(Control) + Send + Sync>;

/// The restart-only keys a config reload saw, for `portal reload` to print
/// (through the control socket's status answer).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadNotes {
    /// Keys whose file value differs from the one the running portal
    /// applied at start: they wait for a portal restart.
    pub restart_pending: Vec<&'static str>,
    /// Keys the last reload found newly changed (a value not warned about
    /// before): portal-restart keys, and `game` (next game start).
    pub new_at_last_reload: Vec<&'static str>,
}

/// The ports the portal's listeners are bound to.
#[derive(Debug, Clone, Default)]
pub struct Ports {
    pub telnet: Vec<u16>,
    /// telnet/ssl listeners.
    pub telnet_tls: Vec<u16>,
}

/// The owners every thread reaches.
pub struct Shared {
    pub config: ConfigCell,
    pub registry: Registry,
    /// AJAX sessions by browser and tab id.
    pub ajax: crate::session::ajax::AjaxTable,
    pub amp: Inbox,
    pub link: LinkStatus,
    pub stats: Stats,
    pub addresses: AddressCaps,
    /// The Evennia Server's pid, info and start command (evennia dialect).
    pub evennia: ServerInfo,
    /// Web sessions whose browser's Django session is followed (evennia
    /// dialect: the website's login shared with the web client).
    pub shared_login: crate::amp::evennia::shared_login::SharedLogin,
    /// Where the supervised game's output goes (SIGHUP reopens it).
    pub game_log: crate::gamelog::GameLog,
    /// What the last config reload changed that it could not apply live.
    pub reload_notes: std::sync::Mutex<ReloadNotes>,
    /// The ports the listeners bound (set once at start), for MSSP.
    pub ports: std::sync::OnceLock<Ports>,
    /// Where the threads meet during `portal upgrade`.
    pub upgrades: crate::upgrade::Upgrades,
    /// IRC bots (`server_connect` with key `irc`), signed on or not.
    pub bots: crate::session::irc::Bots,
    control: ControlSender,
    /// When the portal started (f64 bits; an upgrade carries the first
    /// portal's start on).
    started_unix: std::sync::atomic::AtomicU64,
    started: Instant,
}

impl Shared {
    /// The owners for `config`, asking the main loop for shutdown and
    /// reloads through `control`; also the receiver the AMP writer takes.
    pub fn new(config: Arc<Config>, control: ControlSender) -> (Arc<Shared>, InboxReceiver) {
        let (amp, amp_rx) = Inbox::new();
        let shared = Shared {
            config: ConfigCell::new(config),
            registry: Registry::new(amp.clone()),
            ajax: Default::default(),
            amp,
            link: LinkStatus::default(),
            stats: Stats::default(),
            addresses: AddressCaps::default(),
            evennia: ServerInfo::default(),
            shared_login: Default::default(),
            game_log: Default::default(),
            reload_notes: std::sync::Mutex::new(ReloadNotes::default()),
            ports: std::sync::OnceLock::new(),
            upgrades: Default::default(),
            bots: Default::default(),
            control,
            started_unix: crate::wire::session::unix_now().to_bits().into(),
            started: Instant::now(),
        };
        (Arc::new(shared), amp_rx)
    }

    /// What the last config reload could not apply live.
    pub fn reload_notes(&self) -> ReloadNotes {
        match self.reload_notes.lock() {
            Ok(notes) => notes.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Record what a config reload could not apply live.
    pub fn set_reload_notes(&self, notes: ReloadNotes) {
        match self.reload_notes.lock() {
            Ok(mut held) => *held = notes,
            Err(poisoned) => *poisoned.into_inner() = notes,
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> Arc<Config> {
        self.config.get()
    }

    /// Ask the main loop for something.
    pub fn request(&self, control: Control) {
        (self.control)(control);
    }

    /// When the portal started (Unix seconds; MSSP's UPTIME).
    pub fn started_unix(&self) -> f64 {
        f64::from_bits(self.started_unix.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// After `portal upgrade`: the portal has been up since `unix`.
    pub fn carry_start(&self, unix: f64) {
        let bits = unix.to_bits();
        self.started_unix
            .store(bits, std::sync::atomic::Ordering::Relaxed);
    }

    /// How long the portal has been up.
    pub fn uptime(&self) -> Duration {
        let since = crate::wire::session::unix_now() - self.started_unix();
        if since.is_finite() && since > 0.0 {
            Duration::from_secs_f64(since)
        } else {
            self.started.elapsed()
        }
    }

    /// Tell every player, close every session, tell the game; IRC bots
    /// QUIT with the same reason, connected or not.
    pub fn shutdown(&self) {
        let reason = self.config().messages.shutdown.clone();
        self.registry.disconnect_all(&reason);
        self.bots.close_all(&reason);
    }
}
