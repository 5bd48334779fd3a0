//! `portal`: args → config → logging → listeners → AMP link → game
//! supervisor → signals → the acceptor's loop → graceful shutdown.

use portal::acceptor::{self, Acceptor, Listener};
use portal::amp;
use portal::config::{parse_addr, parse_level, Config};
use portal::handler::{Control, ControlSender, Handler};
use portal::status::StatusFile;
use portal::supervisor::Supervisor;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

const USAGE: &str = "usage: portal [start] [--config PATH]\n\
\n\
Runs the MUD portal in the foreground with the given config file\n\
(default: portal.conf in the current directory).\n\
Signals: SIGINT/SIGTERM shut down gracefully, SIGHUP re-reads the config,\n\
SIGUSR1 restarts the game server keeping every player connected.";

/// How long shutdown waits for sessions to flush their last output.
const SHUTDOWN_FLUSH: Duration = Duration::from_secs(3);

fn main() -> ExitCode {
    let config_path = match parse_args(std::env::args().skip(1).collect()) {
        Ok(Some(path)) => path,
        Ok(None) => return ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("portal: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let config = match Config::load(&config_path) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("portal: bad configuration: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = init_logging(&config) {
        eprintln!("portal: cannot start logging: {e}");
        return ExitCode::from(2);
    }
    match run(config, config_path) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            eprintln!("portal: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `Ok(None)` when the arguments asked only for help or the version.
fn parse_args(args: Vec<String>) -> Result<Option<PathBuf>, String> {
    let mut path = PathBuf::from("portal.conf");
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "start" => {}
            "--config" | "-c" => {
                path = args.next().ok_or("--config needs a path")?.into();
            }
            "--help" | "-h" => {
                println!("{USAGE}");
                return Ok(None);
            }
            "--version" | "-V" => {
                println!("portal {}", env!("CARGO_PKG_VERSION"));
                return Ok(None);
            }
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    Ok(Some(path))
}

fn init_logging(config: &Config) -> Result<(), String> {
    use simplelog::{CombinedLogger, SharedLogger, WriteLogger};
    let level = parse_level(&config.log.level)?;
    let log_config = simplelog::ConfigBuilder::new()
        .set_time_format_rfc3339()
        .set_thread_level(log::LevelFilter::Off)
        .set_target_level(log::LevelFilter::Off)
        .build();
    let mut loggers: Vec<Box<dyn SharedLogger>> = vec![WriteLogger::new(
        level,
        log_config.clone(),
        std::io::stderr(),
    )];
    if !config.log.file.is_empty() {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&config.log.file)
            .map_err(|e| format!("cannot open log file {}: {e}", config.log.file))?;
        loggers.push(WriteLogger::new(level, log_config, file));
    }
    CombinedLogger::init(loggers).map_err(|e| e.to_string())
}

fn run(config: Config, config_path: PathBuf) -> Result<(), String> {
    raise_file_limit();
    let config = Arc::new(config);
    let status = Arc::new(StatusFile::new(config.portal.status_file.clone()));
    let listeners = bind_listeners(&config, &status)?;
    let amp_listener = bind_amp(&config, &status)?;
    let amp_addr = amp_listener.local_addr().map_err(|e| e.to_string())?;

    let (poll, control, control_rx) = acceptor::control_queue().map_err(|e| e.to_string())?;
    let (amp_tx, amp_rx) = crossbeam_channel::bounded(config.limits.data_in_queue);
    let to_main = control.clone();
    let control_sender: ControlSender = Arc::new(move |c| to_main.send(c));
    let handler = Arc::new(Handler::new(config.clone(), amp_tx, control_sender));
    amp::link::start(amp_listener, handler.clone(), amp_rx)
        .map_err(|e| format!("cannot start the AMP link: {e}"))?;

    let on_signal = control.clone();
    // SIGINT here; SIGTERM, SIGHUP and SIGUSR1 are read by the acceptor.
    ctrlc::set_handler(move || on_signal.send(Control::Shutdown))
        .map_err(|e| format!("cannot install the SIGINT handler: {e}"))?;

    let mut acceptor = Acceptor::new(poll, listeners, control_rx, handler.clone(), config_path)
        .map_err(|e| format!("cannot start the acceptor: {e}"))?;
    let supervisor = if config.game.autostart {
        let s = Supervisor::start(handler.clone(), amp_addr, status.clone())
            .map_err(|e| format!("cannot start the supervisor: {e}"))?;
        Some(s)
    } else {
        log::info!("game autostart is off; waiting for a game to link on {amp_addr}");
        None
    };
    acceptor.set_supervisor(supervisor);
    let supervisor = acceptor
        .run()
        .map_err(|e| format!("acceptor failed: {e}"))?;
    shut_down(&handler, supervisor, &status);
    Ok(())
}

/// Tell players, close their sessions, stop the game, wait for output to
/// flush.
fn shut_down(handler: &Handler, supervisor: Option<Supervisor>, status: &StatusFile) {
    handler.shutdown();
    if let Some(supervisor) = supervisor {
        supervisor.stop();
    }
    let deadline = Instant::now() + SHUTDOWN_FLUSH;
    while handler.live_workers() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    status.remove();
    log::info!("portal stopped");
    log::logger().flush();
}

fn bind_listeners(config: &Config, status: &StatusFile) -> Result<Vec<Listener>, String> {
    let mut listeners = Vec::new();
    for (i, text) in config.telnet.listen.iter().enumerate() {
        let addr = parse_addr(text)?;
        let socket = mio::net::TcpListener::bind(addr)
            .map_err(|e| format!("cannot listen for telnet on {addr}: {e}"))?;
        let bound = socket.local_addr().map_err(|e| e.to_string())?;
        log::info!("telnet listening on {bound}");
        let key = if i == 0 {
            "telnet".to_owned()
        } else {
            format!("telnet{i}")
        };
        status.set(&key, &bound.to_string());
        listeners.push(Listener {
            socket,
            protocol_key: "telnet",
            tls: None,
        });
    }
    for (i, entry) in config.tls.iter().enumerate() {
        let tls = portal::tls::load_server_config(&entry.cert, &entry.key)
            .map_err(|e| format!("bad TLS listener {}: {e}", entry.listen))?;
        let addr = parse_addr(&entry.listen)?;
        let socket = mio::net::TcpListener::bind(addr)
            .map_err(|e| format!("cannot listen for telnet/ssl on {addr}: {e}"))?;
        let bound = socket.local_addr().map_err(|e| e.to_string())?;
        log::info!("telnet/ssl listening on {bound}");
        let key = if i == 0 {
            "tls".to_owned()
        } else {
            format!("tls{i}")
        };
        status.set(&key, &bound.to_string());
        listeners.push(Listener {
            socket,
            protocol_key: "telnet/ssl",
            tls: Some((i, tls)),
        });
    }
    Ok(listeners)
}

fn bind_amp(config: &Config, status: &StatusFile) -> Result<std::net::TcpListener, String> {
    let addr = config.amp_addr()?;
    let listener = std::net::TcpListener::bind(addr)
        .map_err(|e| format!("cannot listen for the game (AMP) on {addr}: {e}"))?;
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    log::info!("AMP listening on {bound}");
    status.set("amp", &bound.to_string());
    status.set("pid", &std::process::id().to_string());
    Ok(listener)
}

/// Raise the open-file soft limit to the hard limit and log the session
/// ceiling that follows (a socket, an epoll and an eventfd per session).
fn raise_file_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read/write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return log::warn!("cannot read the open-file limit");
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    let files = limit.rlim_cur;
    log::info!(
        "open-file limit {files}: room for about {} sessions",
        files.saturating_sub(32) / 3
    );
}
