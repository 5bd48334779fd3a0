//! The game server child process: start it, restart it when it dies (with
//! backoff; players are told), restart it on request keeping every player
//! connected, stop it on shutdown.
//!
//! One thread owns the `Child`. Requests arrive on a channel from the
//! acceptor (SIGUSR1, the game's own `reload`, shutdown). The game's stdout
//! and stderr are pipes that [`crate::gamelog`] copies to the game log.

use crate::amp::inbox::ToWriter;
use crate::config::{Config, Dialect};
use crate::shared::Shared;
use crate::stats::{GameState, GameStatus};
use crate::status::StatusFile;
use crate::wire::message::{PortalMsg, StartMode, StopMode};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use crate::upgrade::format::GameState as GameCarried;

/// The game process: started by this supervisor, or by the portal this
/// one was upgraded from (then known by its pid; it is still this
/// process's child, as the exec kept the pid).
enum GameProcess {
    Spawned(Child),
    Adopted(u32),
}

impl GameProcess {
    fn id(&self) -> u32 {
        match self {
            GameProcess::Spawned(child) => child.id(),
            GameProcess::Adopted(pid) => *pid,
        }
    }

    fn try_wait(&mut self) -> std::io::Result<Option<ExitStatus>> {
        match self {
            GameProcess::Spawned(child) => child.try_wait(),
            GameProcess::Adopted(pid) => wait_pid(*pid, libc::WNOHANG),
        }
    }

    fn kill(&mut self) -> std::io::Result<()> {
        match self {
            GameProcess::Spawned(child) => child.kill(),
            GameProcess::Adopted(pid) => {
                // SAFETY: kill(2) with our own child's pid.
                if unsafe { libc::kill(*pid as libc::pid_t, libc::SIGKILL) } == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            }
        }
    }

    fn wait(&mut self) -> std::io::Result<ExitStatus> {
        match self {
            GameProcess::Spawned(child) => child.wait(),
            GameProcess::Adopted(pid) => loop {
                if let Some(status) = wait_pid(*pid, 0)? {
                    return Ok(status);
                }
            },
        }
    }
}

/// waitpid(2) for a child known by pid.
fn wait_pid(pid: u32, flags: libc::c_int) -> std::io::Result<Option<ExitStatus>> {
    let mut status = 0;
    // SAFETY: waitpid writes the status into our local.
    let rc = unsafe { libc::waitpid(pid as libc::pid_t, &mut status, flags) };
    match rc {
        0 => Ok(None),
        rc if rc > 0 => Ok(Some(ExitStatus::from_raw(status))),
        _ => Err(std::io::Error::last_os_error()),
    }
}

/// Shortest pause before restarting a game that died.
const MIN_RESTART_DELAY: Duration = Duration::from_millis(500);
/// A game that ran this long before dying restarts at the shortest delay.
const STABLE_RUN: Duration = Duration::from_secs(30);
/// Longest wait, after a stopped game exited, for its AMP link to close.
const LINK_CLOSE_WAIT: Duration = Duration::from_secs(2);
/// Longest wait, after a stopped game exited, for its last output lines
/// to be written (a process it started may hold its pipes open).
const OUTPUT_DRAIN_WAIT: Duration = Duration::from_secs(1);

/// What the supervisor can be asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// Restart the game, keeping players.
    Reload,
    /// Stop the game for good (portal shutdown).
    Stop,
    /// The game stopped answering heartbeats: kill it and start it again.
    KillHung,
    /// Restart the game in Evennia's reset mode, keeping players.
    Reset,
    /// Stop the game and keep it stopped until `Start`.
    StopGame,
    /// Start the game if it is neither running nor about to start.
    Start,
}

/// What the supervisor thread takes besides [`Request`]s.
enum Message {
    Request(Request),
    /// `portal upgrade`: answer with the game's state, then wait for the
    /// exec (done here when this thread is the game's parent) or for the
    /// upgrade to be called off.
    Freeze(Sender<Frozen>),
    /// Replace the process (see [`crate::upgrade::exec`]); the error goes
    /// back on the sender if it fails.
    Exec(Box<ExecJob>),
    /// The upgrade was called off.
    CarryOn,
}

/// The supervisor's answer to a freeze.
pub struct Frozen {
    pub game: Option<GameCarried>,
    /// The exec must be done by the supervisor's thread: it started the
    /// game, and the kernel sends a child its parent-death signal when the
    /// thread that started it ends (as every other thread does in execve).
    pub exec_here: bool,
}

/// An exec for the supervisor's thread to do.
pub struct ExecJob {
    pub binary: PathBuf,
    pub args: Vec<String>,
    pub bytes: Vec<u8>,
    pub fds: Vec<i32>,
    pub failed: Sender<std::io::Error>,
}

/// A handle on the supervisor thread.
pub struct Supervisor {
    tx: Sender<Message>,
    thread: JoinHandle<()>,
}

impl Supervisor {
    /// Start the supervisor; it starts the game at once when `start_now`,
    /// else when asked (Evennia's launcher sends SSTART).
    pub fn start(
        shared: Arc<Shared>,
        amp_addr: SocketAddr,
        status: Arc<StatusFile>,
        start_now: bool,
    ) -> std::io::Result<Supervisor> {
        Supervisor::start_with(shared, amp_addr, status, start_now, None)
    }

    /// Start the supervisor of a game the previous portal started
    /// (`portal upgrade`), or of none.
    pub fn adopt(
        shared: Arc<Shared>,
        amp_addr: SocketAddr,
        status: Arc<StatusFile>,
        game: Option<GameCarried>,
        autostart: bool,
    ) -> std::io::Result<Supervisor> {
        let start_now = game.is_none() && autostart;
        Supervisor::start_with(shared, amp_addr, status, start_now, game)
    }

    fn start_with(
        shared: Arc<Shared>,
        amp_addr: SocketAddr,
        status: Arc<StatusFile>,
        start_now: bool,
        adopted: Option<GameCarried>,
    ) -> std::io::Result<Supervisor> {
        let (tx, rx) = crossbeam_channel::unbounded();
        // Recorded before the thread runs, so a `portal status` right after
        // start already shows a supervised game.
        let state = if adopted.is_some() {
            GameState::Running
        } else if start_now {
            GameState::Starting
        } else {
            GameState::Stopped
        };
        shared.stats.update_game(|g| g.state = state);
        let thread = std::thread::Builder::new()
            .name("supervisor".into())
            .spawn(move || {
                let mut game = Game::new(shared, amp_addr, status);
                if !start_now {
                    game.restart_at = None;
                }
                if let Some(carried) = adopted {
                    game.adopt(carried);
                }
                game.run(rx);
            })?;
        Ok(Supervisor { tx, thread })
    }

    /// Ask for a game restart in reset mode.
    pub fn reset(&self) {
        let _ = self.tx.send(Message::Request(Request::Reset));
    }

    /// Stop the game, leaving the portal up.
    pub fn stop_game(&self) {
        let _ = self.tx.send(Message::Request(Request::StopGame));
    }

    /// Start the game unless it runs or is about to.
    pub fn start_game(&self) {
        let _ = self.tx.send(Message::Request(Request::Start));
    }

    /// Ask for a game restart.
    pub fn reload(&self) {
        let _ = self.tx.send(Message::Request(Request::Reload));
    }

    /// The game is hung: kill it and start it again.
    pub fn kill_hung(&self) {
        let _ = self.tx.send(Message::Request(Request::KillHung));
    }

    /// `portal upgrade`: the game's state, and whether this thread must
    /// do the exec; `None` if the supervisor did not answer in `limit`.
    pub fn freeze(&self, limit: Duration) -> Option<Frozen> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.tx.send(Message::Freeze(tx)).ok()?;
        rx.recv_timeout(limit).ok()
    }

    /// Exec on the supervisor's thread (after [`Supervisor::freeze`] said
    /// so); returns only if it failed.
    pub fn exec(&self, job: ExecJob) -> std::io::Error {
        let (failed, rx) = crossbeam_channel::bounded(1);
        let job = ExecJob { failed, ..job };
        if self.tx.send(Message::Exec(Box::new(job))).is_err() {
            return std::io::Error::other("the supervisor has stopped");
        }
        rx.recv()
            .unwrap_or_else(|_| std::io::Error::other("the supervisor has stopped"))
    }

    /// The upgrade was called off.
    pub fn carry_on(&self) {
        let _ = self.tx.send(Message::CarryOn);
    }

    /// Stop the game and wait for the supervisor to finish.
    pub fn stop(self) {
        let _ = self.tx.send(Message::Request(Request::Stop));
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
    child: Option<(GameProcess, Instant)>,
    /// The game's stdout and stderr pipes (carried over an upgrade).
    pipes: (Option<i32>, Option<i32>),
    /// Disconnect when the threads copying the game's output are done.
    output: Vec<Receiver<()>>,
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
            pipes: (None, None),
            output: Vec::new(),
            restart_at: Some(Instant::now()),
            delay: MIN_RESTART_DELAY,
            started_once: false,
        }
    }

    /// Record the game's state for `portal status`.
    fn record(&self, change: impl FnOnce(&mut GameStatus)) {
        self.shared.stats.update_game(change);
    }

    fn run(&mut self, rx: Receiver<Message>) {
        loop {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(Message::Request(Request::Reload)) => self.reload(StartMode::Reload),
                Ok(Message::Request(Request::Reset)) => self.reload(StartMode::Reset),
                Ok(Message::Request(Request::KillHung)) => self.kill_hung(),
                Ok(Message::Request(Request::StopGame)) => self.stop_game(),
                Ok(Message::Request(Request::Start)) => self.start_on_request(),
                Ok(Message::Freeze(reply)) => self.freeze(&rx, &reply),
                Ok(Message::Exec(job)) => {
                    let _ = job
                        .failed
                        .send(std::io::Error::other("exec asked without a freeze"));
                }
                Ok(Message::CarryOn) => {}
                Ok(Message::Request(Request::Stop)) | Err(RecvTimeoutError::Disconnected) => {
                    return self.stop(StopMode::Shutdown)
                }
                Err(RecvTimeoutError::Timeout) => {}
            }
            self.check_exit();
            self.start_when_due();
        }
    }

    /// `portal upgrade`: say what the game is, then do nothing else (no
    /// restart, no stop) until the exec or until the upgrade is called off.
    /// Requests that arrive meanwhile are handled afterwards.
    fn freeze(&mut self, rx: &Receiver<Message>, reply: &Sender<Frozen>) {
        let counts = self.shared.stats.game();
        let game = self.child.as_ref().map(|(process, started)| GameCarried {
            pid: process.id(),
            running_secs: started.elapsed().as_secs_f64(),
            started_once: self.started_once,
            stdout_fd: self.pipes.0,
            stderr_fd: self.pipes.1,
            restarts: counts.restarts,
            crashes: counts.crashes,
        });
        let exec_here = self
            .child
            .as_ref()
            .is_some_and(|(process, _)| matches!(process, GameProcess::Spawned(_)));
        if reply.send(Frozen { game, exec_here }).is_err() {
            return;
        }
        let mut later = Vec::new();
        loop {
            match rx.recv() {
                Ok(Message::Exec(job)) => {
                    let env = self
                        .shared
                        .upgrades
                        .exec_env
                        .get()
                        .cloned()
                        .unwrap_or_default();
                    let error = crate::upgrade::exec::exec(
                        &job.binary,
                        &job.args,
                        &env,
                        &job.bytes,
                        &job.fds,
                    );
                    let _ = job.failed.send(error);
                }
                Ok(Message::CarryOn) | Err(_) => break,
                Ok(Message::Freeze(again)) => drop(again),
                Ok(Message::Request(request)) => later.push(request),
            }
        }
        for request in later {
            match request {
                Request::Reload => self.reload(StartMode::Reload),
                Request::Reset => self.reload(StartMode::Reset),
                Request::KillHung => self.kill_hung(),
                Request::StopGame => self.stop_game(),
                Request::Start => self.start_on_request(),
                Request::Stop => self.stop(StopMode::Shutdown),
            }
        }
    }

    /// Take on the game the previous portal started.
    fn adopt(&mut self, carried: GameCarried) {
        let started = Instant::now()
            .checked_sub(Duration::from_secs_f64(carried.running_secs.max(0.0)))
            .unwrap_or_else(Instant::now);
        log::info!("game server pid {} carried over the upgrade", carried.pid);
        if let Err(e) = self.open_game_log(&self.config()) {
            log::error!("{e}; the game's output goes unlogged");
        }
        self.status.set("game_pid", &carried.pid.to_string());
        self.child = Some((GameProcess::Adopted(carried.pid), started));
        self.restart_at = None;
        self.started_once = carried.started_once;
        self.pipes = (carried.stdout_fd, carried.stderr_fd);
        self.output.clear();
        let log = &self.shared.game_log;
        for (fd, name) in [
            (carried.stdout_fd, "game-stdout"),
            (carried.stderr_fd, "game-stderr"),
        ] {
            let Some(fd) = fd else { continue };
            // SAFETY: the take-over checked this descriptor is an open pipe
            // named once in the hand-over: the game's output, ours alone.
            let pipe = unsafe { std::fs::File::from_raw_fd(fd) };
            match log.follow(pipe, name) {
                Ok(done) => self.output.push(done),
                Err(e) => log::error!("cannot copy the game's output: {e}"),
            }
        }
        let pid = carried.pid;
        self.record(|g| {
            g.state = GameState::Running;
            g.pid = Some(pid);
            g.since = Some(started);
            g.restarts = carried.restarts;
            g.crashes = carried.crashes;
        });
    }

    fn config(&self) -> Arc<Config> {
        self.shared.config()
    }

    /// Restart on request: players are told, input is held, the game is
    /// asked to stop (it finishes what it read first), then started again.
    fn reload(&mut self, mode: StartMode) {
        if self.child.is_none() {
            log::info!(
                "game {} asked while it is not running: starting it",
                mode.name()
            );
            return self.start_on_request();
        }
        log::info!("restarting the game server (players stay connected)");
        self.shared.amp.send(ToWriter::BeginRestart(mode));
        self.record(|g| g.state = GameState::Restarting);
        let stop = if mode == StartMode::Reset {
            StopMode::Reset
        } else {
            StopMode::Reload
        };
        self.stop(stop);
        self.record(|g| {
            g.pid = None;
            g.since = None;
        });
        self.wait_for_link_close();
        self.restart_at = Some(Instant::now());
        self.delay = MIN_RESTART_DELAY;
    }

    /// Stop the game and start it again only when asked (Evennia's `sstop`).
    fn stop_game(&mut self) {
        log::info!("stopping the game server (players stay connected)");
        self.restart_at = None;
        self.stop(StopMode::Shutdown);
        self.record(|g| {
            g.state = GameState::Stopped;
            g.pid = None;
            g.since = None;
            g.next_start = None;
        });
        self.wait_for_link_close();
    }

    /// Start the game now unless it runs or a start is scheduled.
    fn start_on_request(&mut self) {
        if self.child.is_none() && self.restart_at.is_none() {
            self.restart_at = Some(Instant::now());
            self.delay = MIN_RESTART_DELAY;
        }
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
                return self.wait_for_output();
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        log::warn!("game server did not stop in time; killing it");
        let _ = child.kill();
        let _ = child.wait();
        self.wait_for_output();
    }

    /// Let the threads copying the stopped game's output write its last
    /// lines (briefly).
    fn wait_for_output(&mut self) {
        let deadline = Instant::now() + OUTPUT_DRAIN_WAIT;
        for done in self.output.drain(..) {
            let _ = done.recv_deadline(deadline);
        }
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
                self.child = Some((GameProcess::Spawned(child), now));
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

    fn spawn(&mut self) -> std::io::Result<Child> {
        let config = self.config();
        let mut command = match config.amp.dialect {
            Dialect::Native => {
                let argv = game_command(&config)?;
                let mut command = Command::new(&argv[0]);
                command
                    .args(&argv[1..])
                    .env("PORTAL_AMP_ADDR", self.amp_addr.to_string())
                    .env("PORTAL_AMP_SECRET", &config.amp.secret);
                if !config.game.workdir.is_empty() {
                    command.current_dir(&config.game.workdir);
                }
                command
            }
            Dialect::Evennia => evennia_server::command(&config, self.shared.evennia.command())?,
        };
        self.open_game_log(&config)?;
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        die_with_parent(&mut command);
        let program = command.get_program().to_string_lossy().into_owned();
        let mut child = command
            .spawn()
            .map_err(|e| std::io::Error::new(e.kind(), format!("{program}: {e}")))?;
        self.follow_output(&mut child);
        Ok(child)
    }

    /// Point the game log at the file `[game] log` names now.
    fn open_game_log(&self, config: &Config) -> std::io::Result<()> {
        let game_dir = match config.amp.dialect {
            Dialect::Native => None,
            Dialect::Evennia => Some(evennia_server::game_dir(config)?),
        };
        let path = config.game_log_path(game_dir.as_deref());
        self.shared.game_log.point_at(path.as_deref()).map_err(|e| {
            let path = path.unwrap_or_default();
            std::io::Error::new(
                e.kind(),
                format!("cannot open the game log {}: {e}", path.display()),
            )
        })
    }

    /// Start copying the new child's stdout and stderr to the game log.
    fn follow_output(&mut self, child: &mut Child) {
        self.output.clear();
        self.pipes = (
            child.stdout.as_ref().map(|p| p.as_raw_fd()),
            child.stderr.as_ref().map(|p| p.as_raw_fd()),
        );
        let log = &self.shared.game_log;
        let followed = [
            child
                .stdout
                .take()
                .map(|out| log.follow(out, "game-stdout")),
            child
                .stderr
                .take()
                .map(|err| log.follow(err, "game-stderr")),
        ];
        for result in followed.into_iter().flatten() {
            match result {
                Ok(done) => self.output.push(done),
                // The pipe closes: the game's writes to it fail (or SIGPIPE it).
                Err(e) => log::error!("cannot start copying the game's output: {e}"),
            }
        }
    }
}

/// How an Evennia Server is started under the supervisor.
pub mod evennia_server {
    use crate::config::Config;
    use std::path::{Path, PathBuf};
    use std::process::{Command, Stdio};

    /// The Server's command in the foreground (`twistd -n`, so it stays
    /// the supervisor's child and crashes are seen), run in the game
    /// directory with the environment Evennia's launcher gives it. Evennia
    /// writes its own log, `server/logs/server.log`; the supervisor sends
    /// its stdout and stderr to the game log (by default
    /// `server/logs/server-output.log`). `launcher` is the command SSTART
    /// gave (empty: `[game] command`, else found from the `evennia` on
    /// PATH).
    pub fn command(config: &Config, launcher: Vec<String>) -> std::io::Result<Command> {
        let game_dir = game_dir(config)?;
        let mut argv = if !launcher.is_empty() {
            launcher
        } else if !config.game.command.is_empty() {
            config.game.command.clone()
        } else {
            default_argv(&game_dir)?
        };
        // `-n`, not `--nodaemon`: Evennia's server.py opens its log file
        // only when "--nodaemon" is not in its arguments, and twistd's own
        // logger with Evennia's observer writes nothing to stdout.
        if !argv.iter().any(|a| a == "--nodaemon" || a == "-n") {
            argv.insert(1.min(argv.len()), "-n".into());
        }
        // Where Evennia's logger writes.
        std::fs::create_dir_all(game_dir.join("server").join("logs"))?;
        let mut command = Command::new(&argv[0]);
        let python_path = match std::env::var_os("PYTHONPATH") {
            Some(old) if !old.is_empty() => {
                let mut p = game_dir.clone().into_os_string();
                p.push(":");
                p.push(old);
                p
            }
            _ => game_dir.clone().into_os_string(),
        };
        command
            .args(&argv[1..])
            .current_dir(&game_dir)
            .env("DJANGO_SETTINGS_MODULE", "server.conf.settings")
            // Its output reaches the game log as it is written.
            .env("PYTHONUNBUFFERED", "1")
            .env("PYTHONPATH", python_path)
            .stdin(Stdio::null());
        Ok(command)
    }

    /// `[game] workdir`, the game directory (the portal's own when empty).
    pub fn game_dir(config: &Config) -> std::io::Result<PathBuf> {
        let dir = if config.game.workdir.is_empty() {
            std::env::current_dir()?
        } else {
            std::fs::canonicalize(&config.game.workdir)?
        };
        if !dir
            .join("server")
            .join("conf")
            .join("settings.py")
            .is_file()
        {
            return Err(std::io::Error::other(format!(
                "{} is not an Evennia game directory (no server/conf/settings.py)",
                dir.display()
            )));
        }
        Ok(dir)
    }

    /// `twistd --python=<evennia>/server/server.py …` from the virtual
    /// environment of the `evennia` command on PATH.
    fn default_argv(game_dir: &Path) -> std::io::Result<Vec<String>> {
        let evennia = find_on_path("evennia").ok_or_else(|| {
            std::io::Error::other("no `evennia` command on PATH (activate the game's virtualenv)")
        })?;
        let bin = evennia.parent().map(Path::to_path_buf).unwrap_or_default();
        let python = bin.join("python");
        let out = Command::new(&python)
            .args([
                "-c",
                "import evennia, os; print(os.path.dirname(evennia.__file__))",
            ])
            .output()?;
        if !out.status.success() {
            return Err(std::io::Error::other(format!(
                "{} cannot import evennia",
                python.display()
            )));
        }
        let lib = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        let server_py = Path::new(&lib).join("server").join("server.py");
        let pidfile = game_dir.join("server").join("server.pid");
        Ok(vec![
            bin.join("twistd").to_string_lossy().into_owned(),
            format!("--python={}", server_py.display()),
            "--logger=evennia.utils.logger.GetServerLogObserver".into(),
            format!("--pidfile={}", pidfile.display()),
        ])
    }

    fn find_on_path(name: &str) -> Option<PathBuf> {
        let path = std::env::var_os("PATH")?;
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
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
