//! `portal`: args → config → logging → pid file → listeners → control
//! socket → AMP link → metrics → game supervisor → signals → the
//! acceptor's loop → graceful shutdown. `portal
//! stop|reload|reload-server|status` control a running portal instead (see
//! [`portal::cli`]).

use portal::acceptor::{self, Acceptor, Listener};
use portal::amp;
use portal::cli;
use portal::config::{parse_addr, parse_level, AddrError, Config, LevelError, Serve};
use portal::control::ControlError;
use portal::logfile::{LogFile, StderrLines};
use portal::pidfile::{PidFile, PidFileError};
use portal::session::worker::WEB_PROTOCOL_KEY;
use portal::shared::{Control, ControlSender, Shared};
use portal::status::StatusFile;
use portal::supervisor::Supervisor;
use portal::tls::TlsError;
use portal::upgrade::format::Handover;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

const USAGE: &str = "usage: portal [COMMAND] [--config PATH]

commands:
  start            run the portal in the foreground (the default)
  stop [--timeout SECS]
                   shut the running portal down gracefully (SIGTERM) and wait
                   (default: [game] stop_timeout_secs + 20 s)
  reload           re-read portal.conf and reopen the log (SIGHUP); prints
                   the changed keys that take effect only at a restart.
                   This does NOT restart the game: Evennia's `evennia reload`
                   is `portal reload-server` here
  reload-server    restart the game server keeping every player (SIGUSR1);
                   what `evennia reload` does
  upgrade [--binary PATH]
                   replace the running portal with a new binary (default:
                   the path it was started from) keeping every player and
                   the game (SIGUSR2 does the same with the default path);
                   a binary that fails the hand-over check is refused and
                   the running portal carries on
  status           show the running portal's state, game, sessions, counters
  help             this text (also -h, --help)
  version          the portal's version (also -V, --version)

options:
  -c, --config PATH  the portal's config file (default: portal.conf in the
                     current directory); the commands find the running
                     portal through its pidfile and control_socket
  --timeout SECS     with `stop` only: how long to wait (see above)
  --binary PATH      with `upgrade` only: the new portal binary

Exit codes: 0 done, 1 failed, 2 usage or config error, 3 the portal is not
running.";

/// What the command line asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Subcommand {
    Start,
    Stop,
    Reload,
    ReloadServer,
    Status,
    Upgrade,
    /// The hand-over check a running portal asks a new binary (hidden).
    UpgradeCheck,
}

struct Args {
    command: Subcommand,
    config_path: PathBuf,
    timeout: Option<Duration>,
    binary: Option<PathBuf>,
}

/// How long shutdown waits for sessions to flush their last output.
const SHUTDOWN_FLUSH: Duration = Duration::from_secs(3);

/// glibc tunables the portal runs with: no per-thread malloc cache.
const TUNABLES: &str = "glibc.malloc.tcache_count=0";
/// Set (to "1") on the re-executed portal, so it knows the tunables are its
/// own and keeps them from the game it starts.
const TUNED_MARK: &str = "PORTAL_MALLOC_TUNED";

/// This process runs with [`TUNABLES`] it set itself.
static TUNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// glibc gives every thread a cache of freed chunks (tcache) that only that
/// thread reuses; with a thread per session that held about 5 KiB per idle
/// session (1,000 sessions: 23.8 KiB each with it, 18.5 KiB without). glibc
/// reads tunables only when a program starts, so the portal re-executes
/// itself once with the cache off (same pid, same arguments). An operator's
/// own GLIBC_TUNABLES is respected: then nothing happens.
fn exec_without_thread_caches() {
    if std::env::var_os(TUNED_MARK).is_some() {
        // `portal upgrade` gives the new binary the same.
        TUNED.store(true, std::sync::atomic::Ordering::Relaxed);
        // Ours, not the game's: the supervisor's child starts with glibc's
        // defaults. Still single-threaded here.
        std::env::remove_var(TUNED_MARK);
        std::env::remove_var("GLIBC_TUNABLES");
        return;
    }
    if std::env::var_os("GLIBC_TUNABLES").is_some() || !cfg!(target_env = "gnu") {
        return;
    }
    use std::os::unix::process::CommandExt;
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let error = std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .env("GLIBC_TUNABLES", TUNABLES)
        .env(TUNED_MARK, "1")
        .exec();
    eprintln!("portal: could not re-execute with {TUNABLES} ({error}); running without it");
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1).collect()) {
        Ok(Some(args)) => args,
        Ok(None) => return ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("portal: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let config_path = args.config_path;
    match args.command {
        Subcommand::Start => {}
        Subcommand::Stop => return ExitCode::from(cli::stop(&config_path, args.timeout)),
        Subcommand::Reload => return ExitCode::from(cli::reload(&config_path)),
        Subcommand::ReloadServer => return ExitCode::from(cli::reload_server(&config_path)),
        Subcommand::Status => return ExitCode::from(cli::status(&config_path)),
        Subcommand::Upgrade => {
            return ExitCode::from(cli::upgrade(&config_path, args.binary.as_deref()))
        }
        Subcommand::UpgradeCheck => {
            // The config too: a new binary that cannot read it would stop
            // right after taking over.
            if let Err(e) = Config::load(&config_path) {
                println!("bad configuration: {e}");
                return ExitCode::from(2);
            }
            println!("{}", portal::upgrade::check::answer());
            return ExitCode::SUCCESS;
        }
    }
    exec_without_thread_caches();
    let handover = match portal::upgrade::exec::take_over() {
        None => None,
        Some(Ok(handover)) => Some(handover),
        Some(Err(e)) => {
            // Nothing was started: the old process is gone, so the game,
            // the players and the sockets go with this exit.
            eprintln!("portal: cannot take over from the old portal: {e}");
            return ExitCode::FAILURE;
        }
    };
    let config = match Config::load(&config_path) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("portal: bad configuration: {e}");
            return ExitCode::from(2);
        }
    };
    let log_file = match init_logging(&config) {
        Ok(log_file) => log_file,
        Err(e) => {
            eprintln!("portal: cannot start logging: {e}");
            return ExitCode::from(2);
        }
    };
    match run(config, config_path, log_file, handover) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            eprintln!("portal: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Why the portal could not start, or stopped on an error. `main` prints
/// and logs it as one line; `source()` keeps the cause.
#[derive(Debug)]
enum RunError {
    /// The log level or log file of `[log]`.
    Level(LevelError),
    LogFile {
        path: String,
        source: io::Error,
    },
    /// The logger could not be installed.
    Logger(log::SetLoggerError),
    /// A start step (or the acceptor's loop) failed at the OS; `step` says
    /// which, empty when the cause says enough.
    Step {
        step: &'static str,
        source: io::Error,
    },
    SigInt(ctrlc::Error),
    PidFile(PidFileError),
    Control(ControlError),
    Address(AddrError),
    Listen {
        what: String,
        addr: SocketAddr,
        source: io::Error,
    },
    Tls {
        listen: String,
        source: Box<TlsError>,
    },
    Ssh {
        listen: String,
        source: portal::ssh::HostKeyError,
    },
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::Level(e) => e.fmt(f),
            RunError::LogFile { path, source } => {
                write!(f, "cannot open log file {path}: {source}")
            }
            RunError::Logger(e) => e.fmt(f),
            RunError::Step { step: "", source } => source.fmt(f),
            RunError::Step { step, source } => write!(f, "{step}: {source}"),
            RunError::SigInt(e) => write!(f, "cannot install the SIGINT handler: {e}"),
            RunError::PidFile(e) => e.fmt(f),
            RunError::Control(e) => e.fmt(f),
            RunError::Address(e) => e.fmt(f),
            RunError::Listen { what, addr, source } => {
                write!(f, "cannot listen for {what} on {addr}: {source}")
            }
            RunError::Tls { listen, source } => write!(f, "bad TLS listener {listen}: {source}"),
            RunError::Ssh { listen, source } => write!(f, "bad SSH listener {listen}: {source}"),
        }
    }
}

impl std::error::Error for RunError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RunError::Level(e) => Some(e),
            RunError::LogFile { source, .. }
            | RunError::Step { source, .. }
            | RunError::Listen { source, .. } => Some(source),
            RunError::Logger(e) => Some(e),
            RunError::SigInt(e) => Some(e),
            RunError::PidFile(e) => Some(e),
            RunError::Control(e) => Some(e),
            RunError::Address(e) => Some(e),
            RunError::Tls { source, .. } => Some(source.as_ref()),
            RunError::Ssh { source, .. } => Some(source),
        }
    }
}

/// `map_err` for a start step that failed at the OS.
fn step(step: &'static str) -> impl FnOnce(io::Error) -> RunError {
    move |source| RunError::Step { step, source }
}

/// Why the command line was refused; printed above the usage.
#[derive(Debug)]
enum UsageError {
    TwoCommands(String),
    /// A flag without its value: what it needs.
    MissingValue(&'static str),
    BadTimeout(String),
    Unknown(String),
    TimeoutWithoutStop,
    BinaryWithoutUpgrade,
}

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UsageError::TwoCommands(arg) => write!(f, "`{arg}`: only one command at a time"),
            UsageError::MissingValue(need) => f.write_str(need),
            UsageError::BadTimeout(text) => {
                write!(f, "--timeout: `{text}` is not a number of seconds")
            }
            UsageError::Unknown(arg) => write!(f, "unknown argument `{arg}`"),
            UsageError::TimeoutWithoutStop => f.write_str("--timeout only goes with `stop`"),
            UsageError::BinaryWithoutUpgrade => f.write_str("--binary only goes with `upgrade`"),
        }
    }
}

impl std::error::Error for UsageError {}

/// `Ok(None)` when the arguments asked only for help or the version.
fn parse_args(args: Vec<String>) -> Result<Option<Args>, UsageError> {
    let mut path = PathBuf::from("portal.conf");
    let mut command = None;
    let mut timeout = None;
    let mut binary = None;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let named = match arg.as_str() {
            "start" => Some(Subcommand::Start),
            "stop" => Some(Subcommand::Stop),
            "reload" => Some(Subcommand::Reload),
            "reload-server" => Some(Subcommand::ReloadServer),
            "status" => Some(Subcommand::Status),
            "upgrade" => Some(Subcommand::Upgrade),
            "upgrade-check" => Some(Subcommand::UpgradeCheck),
            "help" => {
                println!("{USAGE}");
                return Ok(None);
            }
            "version" => {
                println!("portal {}", env!("CARGO_PKG_VERSION"));
                return Ok(None);
            }
            _ => None,
        };
        if let Some(named) = named {
            if command.replace(named).is_some() {
                return Err(UsageError::TwoCommands(arg));
            }
            continue;
        }
        match arg.as_str() {
            "--config" | "-c" => {
                let missing = UsageError::MissingValue("--config needs a path");
                path = args.next().ok_or(missing)?.into();
            }
            "--binary" => {
                let missing = UsageError::MissingValue("--binary needs a path");
                binary = Some(PathBuf::from(args.next().ok_or(missing)?));
            }
            "--timeout" => {
                let missing = UsageError::MissingValue("--timeout needs a number of seconds");
                let text = args.next().ok_or(missing)?;
                let secs: f64 = text
                    .parse()
                    .ok()
                    .filter(|s: &f64| s.is_finite() && *s >= 0.0)
                    .ok_or_else(|| UsageError::BadTimeout(text.clone()))?;
                timeout = Some(Duration::from_secs_f64(secs));
            }
            "--help" | "-h" => {
                println!("{USAGE}");
                return Ok(None);
            }
            "--version" | "-V" => {
                println!("portal {}", env!("CARGO_PKG_VERSION"));
                return Ok(None);
            }
            other => return Err(UsageError::Unknown(other.to_owned())),
        }
    }
    let command = command.unwrap_or(Subcommand::Start);
    if timeout.is_some() && command != Subcommand::Stop {
        return Err(UsageError::TimeoutWithoutStop);
    }
    if binary.is_some() && command != Subcommand::Upgrade {
        return Err(UsageError::BinaryWithoutUpgrade);
    }
    Ok(Some(Args {
        command,
        config_path: path,
        timeout,
        binary,
    }))
}

/// Log to stderr (each line prefixed `portal: `) and, if configured, to a file SIGHUP can reopen (returned).
/// The loggers pass everything; `log::set_max_level` is the one filter, so
/// a reload can raise the level as well as lower it.
fn init_logging(config: &Config) -> Result<Option<LogFile>, RunError> {
    use simplelog::{CombinedLogger, SharedLogger, WriteLogger};
    let level = parse_level(&config.log.level).map_err(RunError::Level)?;
    let all = log::LevelFilter::Trace;
    let log_config = simplelog::ConfigBuilder::new()
        .set_time_format_rfc3339()
        .set_thread_level(log::LevelFilter::Off)
        .set_target_level(log::LevelFilter::Off)
        .build();
    // The game's lines may share stderr (`[game] log = ""`): name ours.
    let stderr = StderrLines::new("portal: ");
    let mut loggers: Vec<Box<dyn SharedLogger>> =
        vec![WriteLogger::new(all, log_config.clone(), stderr)];
    let mut log_file = None;
    if !config.log.file.is_empty() {
        let file = LogFile::open(config.log.file.as_ref()).map_err(|source| RunError::LogFile {
            path: config.log.file.clone(),
            source,
        })?;
        loggers.push(WriteLogger::new(all, log_config, file.clone()));
        log_file = Some(file);
    }
    CombinedLogger::init(loggers).map_err(RunError::Logger)?;
    log::set_max_level(level);
    Ok(log_file)
}

fn run(
    config: Config,
    config_path: PathBuf,
    log_file: Option<LogFile>,
    mut handover: Option<Handover>,
) -> Result<(), RunError> {
    log::info!(
        "portal {} starting (pid {}){}",
        env!("CARGO_PKG_VERSION"),
        std::process::id(),
        if handover.is_some() {
            ", taking over from the previous portal"
        } else {
            ""
        }
    );
    let signals = acceptor::catch_signals().map_err(step("cannot install the signal handlers"))?;
    let (poll, control, control_rx) = acceptor::control_queue().map_err(step(""))?;
    let on_signal = control.clone();
    ctrlc::set_handler(move || on_signal.send(Control::Shutdown)).map_err(RunError::SigInt)?;
    if handover.is_some() {
        // Blocked by the old portal across the exec; handled from here on.
        portal::upgrade::exec::unblock_signals();
    }
    // Held to the end of `run`: dropping it removes the file.
    let _pidfile = match config.pidfile_path(&config_path) {
        Some(path) => Some(PidFile::create(&path).map_err(RunError::PidFile)?),
        None => None,
    };
    raise_file_limit();
    let config = Arc::new(config);
    let status = Arc::new(StatusFile::new(config.portal.status_file.clone()));
    let to_main = control.clone();
    let control_sender: ControlSender = Arc::new(move |c| to_main.send(c));
    let (shared, amp_rx) = Shared::new(config.clone(), control_sender);
    record_exe(&shared);
    if TUNED.load(std::sync::atomic::Ordering::Relaxed) {
        let env = vec![
            ("GLIBC_TUNABLES".to_owned(), TUNABLES.to_owned()),
            (TUNED_MARK.to_owned(), "1".to_owned()),
        ];
        let _ = shared.upgrades.exec_env.set(env);
    }
    // Before the threads that create files start (binding the socket sets
    // the umask for a moment), and before the status file names the
    // listeners, so a script that saw them can ask `portal status` at once.
    let _control_socket = match config.control_socket_path(&config_path) {
        Some(path) => {
            Some(portal::control::serve(&path, shared.clone()).map_err(RunError::Control)?)
        }
        None => None,
    };
    let listeners = match &handover {
        Some(h) => adopt_listeners(&config, &status, &h.listeners)?,
        None => bind_listeners(&config, &status)?,
    };
    let _ = shared.ports.set(bound_ports(&listeners));
    let amp_listener = match &handover {
        Some(h) => adopt_amp(&status, h.amp.listener_fd)?,
        None => bind_amp(&config, &status)?,
    };
    let amp_addr = amp_listener.local_addr().map_err(step(""))?;
    let amp_fd = amp_listener.as_raw_fd();
    let carried = match handover.as_mut() {
        Some(h) => Some(take_over_sessions(&shared, h)?),
        None => None,
    };
    amp::start(amp_listener, shared.clone(), amp_rx, carried)
        .map_err(step("cannot start the AMP link"))?;
    if let Some(listener) = bind_metrics(&config, &status)? {
        portal::metrics::server::serve(listener, shared.clone())
            .map_err(step("cannot start the metrics thread"))?;
    }

    let mut acceptor = Acceptor::new(
        poll,
        signals,
        listeners,
        control_rx,
        shared.clone(),
        config_path,
    )
    .map_err(step("cannot start the acceptor"))?;
    acceptor.set_amp_listener(amp_fd);
    // Evennia's launcher starts the Server through the portal (SSTART), so
    // with that dialect there is always a supervisor, idle until asked
    // when autostart is off.
    let evennia = config.amp.dialect == portal::config::Dialect::Evennia;
    let carried_game = handover.as_mut().and_then(|h| h.game.take());
    let supervisor = if config.game.autostart || evennia || carried_game.is_some() {
        let s = Supervisor::adopt(
            shared.clone(),
            amp_addr,
            status.clone(),
            carried_game,
            config.game.autostart,
        )
        .map_err(step("cannot start the supervisor"))?;
        Some(s)
    } else {
        log::info!("game autostart is off; waiting for a game to link on {amp_addr}");
        None
    };
    acceptor.set_supervisor(supervisor);
    acceptor.set_log_file(log_file);
    if let Some(h) = handover {
        acceptor.adopt_queue(h.queued.clone());
        report_take_over(&shared, &h);
    }
    let supervisor = acceptor.run().map_err(step("acceptor failed"))?;
    shut_down(&shared, supervisor, &status);
    Ok(())
}

/// The binary `portal upgrade` restarts by default: the one running now,
/// by the path it was started from (a file replaced there since is the
/// new version).
fn record_exe(shared: &Shared) {
    let exe = std::env::args_os()
        .next()
        .map(PathBuf::from)
        .filter(|p| p.components().count() > 1)
        .and_then(|p| std::fs::canonicalize(p).ok())
        .or_else(|| std::env::current_exe().ok());
    if let Some(exe) = exe {
        let _ = shared.upgrades.exe.set(exe);
    }
}

/// The listeners the previous portal handed over, with their TLS and SSH
/// settings from the config read now.
fn adopt_listeners(
    config: &Config,
    status: &StatusFile,
    carried: &[portal::upgrade::format::ListenerState],
) -> Result<Vec<Listener>, RunError> {
    use std::collections::HashMap;
    use std::os::fd::FromRawFd;
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let mut listeners = Vec::new();
    for state in carried {
        // SAFETY: the take-over checked that the descriptor is an open
        // socket named once in the hand-over.
        let std_listener = unsafe { std::net::TcpListener::from_raw_fd(state.fd) };
        std_listener
            .set_nonblocking(true)
            .map_err(step("a carried listener"))?;
        let socket = mio::net::TcpListener::from_std(std_listener);
        let bound = socket.local_addr().map_err(step("a carried listener"))?;
        let (protocol_key, name) = match (state.protocol_key.as_str(), state.tls_index) {
            ("telnet", _) => ("telnet", "telnet"),
            ("telnet/ssl", _) => ("telnet/ssl", "tls"),
            (WEB_PROTOCOL_KEY, None) => (WEB_PROTOCOL_KEY, "web"),
            (WEB_PROTOCOL_KEY, Some(_)) => (WEB_PROTOCOL_KEY, "wss"),
            ("ssh", _) => ("ssh", "ssh"),
            (other, _) => {
                log::error!("upgrade: a listener of unknown kind `{other}` on {bound} closed");
                continue;
            }
        };
        let count = seen.entry(name).or_insert(0);
        status.set(&numbered(name, *count), &bound.to_string());
        *count += 1;
        let tls = match state
            .tls_index
            .and_then(|i| config.tls.get(i).map(|e| (i, e)))
        {
            Some((i, entry)) => Some((
                i,
                portal::tls::load_server_config(&entry.cert, &entry.key).map_err(|source| {
                    RunError::Tls {
                        listen: entry.listen.clone(),
                        source: Box::new(source),
                    }
                })?,
            )),
            None => None,
        };
        let ssh =
            match state.ssh_index.and_then(|i| config.ssh.get(i)) {
                Some(entry) => {
                    let (host_key, _) = portal::ssh::load_or_create_host_key(&entry.host_key)
                        .map_err(|source| RunError::Ssh {
                            listen: entry.listen.clone(),
                            source,
                        })?;
                    Some((host_key, portal::ssh::AuthPolicy::of(entry)))
                }
                None => None,
            };
        log::info!("{protocol_key} listening on {bound} (carried over the upgrade)");
        listeners.push(Listener {
            socket,
            protocol_key,
            tls,
            ssh,
        });
    }
    Ok(listeners)
}

fn adopt_amp(status: &StatusFile, fd: i32) -> Result<std::net::TcpListener, RunError> {
    use std::os::fd::FromRawFd;
    // SAFETY: as for the listeners above.
    let listener = unsafe { std::net::TcpListener::from_raw_fd(fd) };
    let bound = listener
        .local_addr()
        .map_err(step("the carried AMP listener"))?;
    log::info!("AMP listening on {bound} (carried over the upgrade)");
    status.set("amp", &bound.to_string());
    status.set("pid", &std::process::id().to_string());
    Ok(listener)
}

/// Start every carried session's worker (registered before the AMP
/// reader runs, so no game output finds a session missing) and build
/// the AMP writer's carried state.
fn take_over_sessions(shared: &Arc<Shared>, h: &mut Handover) -> Result<amp::Carried, RunError> {
    use std::os::fd::FromRawFd;
    shared.carry_start(h.started_unix);
    shared.registry.continue_sessids_from(h.next_sessid);
    if let Some(evennia) = h.evennia.take() {
        shared.evennia.adopt(evennia);
    }
    let outbox = match amp::outbox::Outbox::thaw(&h.amp.outbox, shared.config(), Instant::now()) {
        Ok(outbox) => outbox,
        Err(e) => {
            log::error!("upgrade: {e}; the game will be asked to sync again");
            amp::outbox::Outbox::new(shared.config())
        }
    };
    let link = h.amp.link.take().map(|link| {
        // SAFETY: as for the listeners above.
        let stream = unsafe { std::net::TcpStream::from_raw_fd(link.fd) };
        (link.id, stream, link.unread)
    });
    for state in std::mem::take(&mut h.sessions) {
        let sessid = state.record.sessid;
        if let Err(e) = portal::session::worker::spawn_thawed(shared.clone(), state) {
            log::error!("upgrade: session {sessid} could not be started: {e}");
        }
    }
    for state in std::mem::take(&mut h.ajax) {
        let sessid = state.record.sessid;
        if let Err(e) = portal::session::ajax::spawn_thawed(shared, state) {
            log::error!("upgrade: AJAX session {sessid} could not be started: {e}");
        }
    }
    for bot in std::mem::take(&mut h.bots) {
        let nick = bot.nick.clone();
        if let Err(e) = portal::session::irc::spawn(shared.clone(), bot) {
            log::error!("upgrade: IRC bot {nick} could not be started again: {e}");
        }
    }
    for dropped in &h.dropped {
        shared
            .amp
            .send(portal::amp::inbox::ToWriter::Disconnect(dropped.sessid));
    }
    Ok(amp::Carried { link, outbox })
}

/// Log and record what the upgrade carried.
fn report_take_over(shared: &Shared, h: &Handover) {
    let took_micros =
        ((portal::wire::session::unix_now() * 1e6) as u64).saturating_sub(h.began_unix_micros);
    let took = Duration::from_micros(took_micros);
    let carried = shared.upgrades.workers().len();
    log::info!(
        "upgrade {} done: {carried} sessions carried, {} not carried, {} queued clients, in {took:.0?}",
        h.upgrades,
        h.dropped.len(),
        h.queued.len()
    );
    for d in &h.dropped {
        log::info!(
            "upgrade: session {} ({}) not carried: {}; its player was told: {}",
            d.sessid,
            d.protocol_key,
            d.why,
            portal::upgrade::NOT_CARRIED
        );
    }
    shared.upgrades.set_outcome(|o| {
        o.upgrades = h.upgrades;
        o.carried = carried;
        o.dropped = h.dropped.len();
        o.took = took;
        o.refused = None;
    });
}

fn shut_down(shared: &Shared, supervisor: Option<Supervisor>, status: &StatusFile) {
    shared.shutdown();
    if let Some(supervisor) = supervisor {
        supervisor.stop();
    }
    let deadline = Instant::now() + SHUTDOWN_FLUSH;
    while shared.stats.live_workers() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    status.remove();
    log::info!("portal stopped");
    log::logger().flush();
}

/// The telnet and telnet/ssl ports, for MSSP.
fn bound_ports(listeners: &[Listener]) -> portal::shared::Ports {
    let mut ports = portal::shared::Ports::default();
    for listener in listeners {
        let Ok(addr) = listener.socket.local_addr() else {
            continue;
        };
        match listener.protocol_key {
            "telnet" => ports.telnet.push(addr.port()),
            "telnet/ssl" => ports.telnet_tls.push(addr.port()),
            _ => {}
        }
    }
    ports
}

fn bind_listeners(config: &Config, status: &StatusFile) -> Result<Vec<Listener>, RunError> {
    let mut listeners = Vec::new();
    for (i, text) in config.telnet.listen.iter().enumerate() {
        let (socket, bound) = bind(text, "telnet")?;
        status.set(&numbered("telnet", i), &bound.to_string());
        listeners.push(Listener {
            socket,
            protocol_key: "telnet",
            tls: None,
            ssh: None,
        });
    }
    for (i, text) in config.web.listen.iter().enumerate() {
        let (socket, bound) = bind(text, "the web client (http)")?;
        status.set(&numbered("web", i), &bound.to_string());
        listeners.push(Listener {
            socket,
            protocol_key: WEB_PROTOCOL_KEY,
            tls: None,
            ssh: None,
        });
    }
    for (i, entry) in config.tls.iter().enumerate() {
        let tls = portal::tls::load_server_config(&entry.cert, &entry.key).map_err(|source| {
            RunError::Tls {
                listen: entry.listen.clone(),
                source: Box::new(source),
            }
        })?;
        let (what, protocol_key, key) = match entry.serve {
            Serve::Telnet => ("telnet/ssl", "telnet/ssl", numbered("tls", i)),
            Serve::Web => (
                "the web client (https)",
                WEB_PROTOCOL_KEY,
                numbered("wss", i),
            ),
        };
        let (socket, bound) = bind(&entry.listen, what)?;
        status.set(&key, &bound.to_string());
        listeners.push(Listener {
            socket,
            protocol_key,
            tls: Some((i, tls)),
            ssh: None,
        });
    }
    for (i, entry) in config.ssh.iter().enumerate() {
        let (host_key, made) =
            portal::ssh::load_or_create_host_key(&entry.host_key).map_err(|source| {
                RunError::Ssh {
                    listen: entry.listen.clone(),
                    source,
                }
            })?;
        let path = entry.host_key.display();
        if made {
            log::info!("SSH host key made at {path}");
        }
        log::info!("SSH host key {path}: ED25519 {}", host_key.fingerprint);
        let (socket, bound) = bind(&entry.listen, "ssh")?;
        status.set(&numbered("ssh", i), &bound.to_string());
        listeners.push(Listener {
            socket,
            protocol_key: "ssh",
            tls: None,
            ssh: Some((host_key, portal::ssh::AuthPolicy::of(entry))),
        });
    }
    Ok(listeners)
}

/// Bind one listener and log where it listens.
fn bind(text: &str, what: &str) -> Result<(mio::net::TcpListener, SocketAddr), RunError> {
    let addr = parse_addr(text).map_err(RunError::Address)?;
    let socket = mio::net::TcpListener::bind(addr).map_err(listen_error(what, addr))?;
    deepen_backlog(&socket);
    let bound = socket.local_addr().map_err(step(""))?;
    log::info!("{what} listening on {bound}");
    Ok((socket, bound))
}

fn listen_error(what: &str, addr: SocketAddr) -> impl FnOnce(io::Error) -> RunError {
    let what = what.to_owned();
    move |source| RunError::Listen { what, addr, source }
}

/// Connections the kernel queues for a listener before the acceptor takes
/// them (std's and mio's 128 overflowed at bursts of 5,000 connects/s in
/// the benchmark, leaving clients the portal never saw). The kernel caps it
/// at `net.core.somaxconn`.
const LISTEN_BACKLOG: libc::c_int = 4096;

/// Raise a bound listener's accept queue to [`LISTEN_BACKLOG`]; calling
/// listen(2) again on a listening socket only changes its backlog.
fn deepen_backlog(socket: &mio::net::TcpListener) {
    use std::os::fd::AsRawFd;
    // SAFETY: listen(2) on a descriptor we own; it reads no memory of ours.
    if unsafe { libc::listen(socket.as_raw_fd(), LISTEN_BACKLOG) } != 0 {
        log::warn!(
            "cannot raise the accept queue: {}",
            std::io::Error::last_os_error()
        );
    }
}

/// `name` for the first listener of a kind, `name1`, `name2`… after it.
fn numbered(name: &str, i: usize) -> String {
    if i == 0 {
        name.to_owned()
    } else {
        format!("{name}{i}")
    }
}

fn bind_amp(config: &Config, status: &StatusFile) -> Result<std::net::TcpListener, RunError> {
    let addr = config.amp_addr().map_err(RunError::Address)?;
    let listener =
        std::net::TcpListener::bind(addr).map_err(listen_error("the game (AMP)", addr))?;
    let bound = listener.local_addr().map_err(step(""))?;
    log::info!("AMP listening on {bound}");
    status.set("amp", &bound.to_string());
    status.set("pid", &std::process::id().to_string());
    Ok(listener)
}

/// Bind `[metrics] listen`, if set.
fn bind_metrics(
    config: &Config,
    status: &StatusFile,
) -> Result<Option<std::net::TcpListener>, RunError> {
    let Some(addr) = config.metrics_addr().map_err(RunError::Address)? else {
        return Ok(None);
    };
    let listener = std::net::TcpListener::bind(addr).map_err(listen_error("metrics", addr))?;
    let bound = listener.local_addr().map_err(step(""))?;
    status.set("metrics", &bound.to_string());
    Ok(Some(listener))
}

/// Raise the open-file soft limit to the hard limit and log the session
/// ceiling that follows (a socket and an eventfd per session).
fn raise_file_limit() {
    let Ok(files) = portal::limits::raise_file_limit() else {
        return log::warn!("cannot read the open-file limit");
    };
    // A session holds its socket and its worker's eventfd.
    log::info!(
        "open-file limit {files}: room for about {} sessions",
        files.saturating_sub(32) / 2
    );
}
