//! The game server child process: start it, restart it when it dies (with
//! backoff; players are told), restart it on request keeping every player
//! connected, stop it on shutdown.
//!
//! One thread owns the `Child`. Requests arrive on a channel from the
//! acceptor (SIGUSR1, the game's own `reload`, shutdown).

use crate::amp::inbox::ToWriter;
use crate::config::Config;
use crate::shared::Shared;
use crate::stats::{GameState, GameStatus};
use crate::status::StatusFile;
use crate::wire::message::{PortalMsg, StartMode, StopMode};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Shortest pause before restarting a game that died.
const MIN_RESTART_DELAY: Duration = Duration::from_millis(500);
/// A game that ran this long before dying restarts at the shortest delay.
const STABLE_RUN: Duration = Duration::from_secs(30);
/// Longest wait, after a stopped game exited, for its AMP link to close.
const LINK_CLOSE_WAIT: Duration = Duration::from_secs(2);

/// What the supervisor can be asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// Restart the game, keeping players.
    Reload,
    /// Stop the game for good (portal shutdown).
    Stop,
    /// The game stopped answering heartbeats: kill it and start it again.
    KillHung,
}

/// A handle on the supervisor thread.
pub struct Supervisor {
    tx: Sender<Request>,
    thread: JoinHandle<()>,
}

impl Supervisor {
    /// Start the supervisor; it starts the game at once.
    pub fn start(
        shared: Arc<Shared>,
        amp_addr: SocketAddr,
        status: Arc<StatusFile>,
    ) -> std::io::Result<Supervisor> {
        let (tx, rx) = crossbeam_channel::unbounded();
        // Recorded before the thread runs, so a `portal status` right after
        // start already shows a supervised game.
        shared.stats.update_game(|g| g.state = GameState::Starting);
        let thread = std::thread::Builder::new()
            .name("supervisor".into())
            .spawn(move || {
                let mut game = Game::new(shared, amp_addr, status);
                game.run(rx);
            })?;
        Ok(Supervisor { tx, thread })
    }

    /// Ask for a game restart.
    pub fn reload(&self) {
        let _ = self.tx.send(Request::Reload);
    }

    /// The game is hung: kill it and start it again.
    pub fn kill_hung(&self) {
        let _ = self.tx.send(Request::KillHung);
    }

    /// Stop the game and wait for the supervisor to finish.
    pub fn stop(self) {
        let _ = self.tx.send(Request::Stop);
        if self.thread.join().is_err() {
            log::error!("supervisor thread panicked");
        }
    }
}

/// The supervised game and its restart bookkeeping.
struct Game {
    shared: Arc<Shared>,
    amp_addr: SocketAddr,
    status: Arc<StatusFile>,
    child: Option<(Child, Instant)>,
    restart_at: Option<Instant>,
    delay: Duration,
    /// Whether the game was ever started (later starts count as restarts).
    started_once: bool,
}

impl Game {
    fn new(shared: Arc<Shared>, amp_addr: SocketAddr, status: Arc<StatusFile>) -> Game {
        Game {
            shared,
            amp_addr,
            status,
            child: None,
            restart_at: Some(Instant::now()),
            delay: MIN_RESTART_DELAY,
            started_once: false,
        }
    }

    /// Record the game's state for `portal status`.
    fn record(&self, change: impl FnOnce(&mut GameStatus)) {
        self.shared.stats.update_game(change);
    }

    fn run(&mut self, rx: Receiver<Request>) {
        loop {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(Request::Reload) => self.reload(),
                Ok(Request::KillHung) => self.kill_hung(),
                Ok(Request::Stop) | Err(RecvTimeoutError::Disconnected) => {
                    return self.stop(StopMode::Shutdown)
                }
                Err(RecvTimeoutError::Timeout) => {}
            }
            self.check_exit();
            self.start_when_due();
        }
    }

    fn config(&self) -> Arc<Config> {
        self.shared.config()
    }

    /// Restart on request: players are told, input is held, the game is
    /// asked to stop (it finishes what it read first), then started again.
    fn reload(&mut self) {
        log::info!("restarting the game server (players stay connected)");
        self.shared
            .amp
            .send(ToWriter::BeginRestart(StartMode::Reload));
        self.record(|g| g.state = GameState::Restarting);
        self.stop(StopMode::Reload);
        self.record(|g| {
            g.pid = None;
            g.since = None;
        });
        self.wait_for_link_close();
        self.restart_at = Some(Instant::now());
        self.delay = MIN_RESTART_DELAY;
    }

    /// After the old game exited, wait (briefly) until the AMP reader has
    /// seen its link close: a new game linking before that would be
    /// refused as a second game and restarted only after the back-off.
    fn wait_for_link_close(&self) {
        let deadline = Instant::now() + LINK_CLOSE_WAIT;
        while self.shared.link.is_claimed() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        if self.shared.link.is_claimed() {
            log::warn!("the old game's link is still open; starting the new game anyway");
        }
    }

    /// Ask the game to stop, wait for it, kill it if it will not.
    fn stop(&mut self, mode: StopMode) {
        let Some((mut child, _)) = self.child.take() else {
            return;
        };
        if mode == StopMode::Shutdown {
            self.shared.amp.send(ToWriter::ExpectClose);
            self.record(|g| g.state = GameState::Stopped);
        }
        self.shared.amp.send_msg(PortalMsg::Stop { mode });
        let deadline =
            Instant::now() + Duration::from_secs_f64(self.config().game.stop_timeout_secs);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                log::info!("game server stopped ({status})");
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        log::warn!("game server did not stop in time; killing it");
        let _ = child.kill();
        let _ = child.wait();
    }

    /// A game that stopped answering (an endless loop, SIGSTOP, a deadlock)
    /// cannot be asked to stop: kill it; `check_exit` then restarts it like
    /// after a crash.
    fn kill_hung(&mut self) {
        if let Some((child, _)) = self.child.as_mut() {
            log::warn!("killing the unresponsive game server (pid {})", child.id());
            let _ = child.kill();
            let _ = child.wait();
            self.delay = MIN_RESTART_DELAY / 2;
        }
    }

    /// Notice a game that died on its own and schedule its restart.
    fn check_exit(&mut self) {
        let Some((child, started)) = self.child.as_mut() else {
            return;
        };
        let status = match child.try_wait() {
            Ok(Some(status)) => status,
            Ok(None) => return,
            Err(e) => {
                log::warn!("cannot check the game server: {e}");
                return;
            }
        };
        let ran = started.elapsed();
        self.child = None;
        log::warn!("game server exited unexpectedly ({status}) after {ran:.1?}");
        self.record(|g| {
            g.state = GameState::Down;
            g.pid = None;
            g.since = None;
            g.crashes += 1;
        });
        self.shared
            .amp
            .send(ToWriter::BeginRestart(StartMode::Crash));
        self.schedule_restart(ran);
    }

    fn schedule_restart(&mut self, ran: Duration) {
        let max = Duration::from_secs_f64(self.config().game.max_restart_delay_secs);
        self.delay = if ran >= STABLE_RUN {
            MIN_RESTART_DELAY
        } else {
            (self.delay * 2).min(max)
        };
        log::info!("restarting the game server in {:.1?}", self.delay);
        let at = Instant::now() + self.delay;
        self.restart_at = Some(at);
        self.record(|g| g.next_start = Some(at));
    }

    fn start_when_due(&mut self) {
        if self.child.is_some() || self.restart_at.is_none_or(|at| Instant::now() < at) {
            return;
        }
        self.restart_at = None;
        match self.spawn() {
            Ok(child) => {
                log::info!("game server started, pid {}", child.id());
                self.status.set("game_pid", &child.id().to_string());
                let (pid, now) = (child.id(), Instant::now());
                let restart = std::mem::replace(&mut self.started_once, true);
                self.record(|g| {
                    g.state = GameState::Running;
                    g.pid = Some(pid);
                    g.since = Some(now);
                    g.next_start = None;
                    g.restarts += u64::from(restart);
                });
                self.child = Some((child, now));
            }
            Err(e) => {
                log::error!("cannot start the game server: {e}");
                self.record(|g| g.state = GameState::Down);
                self.shared
                    .amp
                    .send(ToWriter::BeginRestart(StartMode::Crash));
                self.schedule_restart(Duration::ZERO);
            }
        }
    }

    fn spawn(&self) -> std::io::Result<Child> {
        let config = self.config();
        let argv = game_command(&config)?;
        let mut command = Command::new(&argv[0]);
        command
            .args(&argv[1..])
            .env("PORTAL_AMP_ADDR", self.amp_addr.to_string())
            .env("PORTAL_AMP_SECRET", &config.amp.secret);
        if !config.game.workdir.is_empty() {
            command.current_dir(&config.game.workdir);
        }
        die_with_parent(&mut command);
        command.spawn()
    }
}

/// The configured game command, or the demo game beside our executable.
fn game_command(config: &Config) -> std::io::Result<Vec<String>> {
    if !config.game.command.is_empty() {
        return Ok(config.game.command.clone());
    }
    let exe = std::env::current_exe()?;
    let dir = exe.parent().map(PathBuf::from).unwrap_or_default();
    let demo = dir.join("demo_game");
    Ok(vec![
        demo.to_string_lossy().into_owned(),
        "--db".into(),
        "demo_game.sqlite3".into(),
    ])
}

/// On Linux, have the kernel send the game SIGTERM if the portal dies
/// without stopping it, so no orphan game keeps the AMP port's peer busy.
#[cfg(target_os = "linux")]
fn die_with_parent(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe and touches no memory of ours.
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn die_with_parent(_command: &mut Command) {}
