//! The command-line controls of a running portal: `portal stop`, `reload`,
//! `reload-server`, `upgrade` and `status`.
//!
//! `stop`, `reload` and `reload-server` read the pid file and send SIGTERM,
//! SIGHUP and SIGUSR1 — exactly what an admin's `kill` would do, and the
//! same path as the game's own `shutdown` and `reload` once the portal's
//! main loop has the request. `status` asks the control socket
//! ([`crate::control`]). Both files are found through portal.conf
//! (`--config PATH`), relative paths being taken from its directory.
//!
//! Exit codes: 0 done, 1 failed, 2 bad usage or configuration, 3 the portal
//! is not running.

use crate::config::Config;
use crate::control;
use crate::pidfile::{self, Holder};
use std::path::Path;
use std::time::{Duration, Instant};

/// Done.
pub const OK: u8 = 0;
/// The portal did not do what was asked (in time).
pub const FAILED: u8 = 1;
/// Bad usage or configuration.
pub const BAD_CONFIG: u8 = 2;
/// No portal is running (as for LSB `status`).
pub const NOT_RUNNING: u8 = 3;

/// How long `reload` waits to see the portal's verdict on the new file.
const RELOAD_VERDICT_WAIT: Duration = Duration::from_secs(5);

/// The config for a control command. A file the portal would refuse is
/// still searched for `[portal] pidfile` and `control_socket`, so a broken
/// edit does not stop `portal stop` or `status` from finding the portal.
pub fn load_for_control(path: &Path) -> Config {
    match Config::load(path) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("portal: warning: {e}; finding the portal anyway");
            lenient_config(path)
        }
    }
}

fn lenient_config(path: &Path) -> Config {
    let mut config = Config::default();
    let table = std::fs::read_to_string(path)
        .ok()
        .and_then(|text| text.parse::<toml::Table>().ok());
    let portal = table
        .as_ref()
        .and_then(|t| t.get("portal"))
        .and_then(|v| v.as_table());
    if let Some(portal) = portal {
        if let Some(p) = portal.get("pidfile").and_then(|v| v.as_str()) {
            config.portal.pidfile = p.into();
        }
        if let Some(p) = portal.get("control_socket").and_then(|v| v.as_str()) {
            config.portal.control_socket = p.into();
        }
    }
    config
}

/// The pid of the running portal, or the exit code and message why not.
fn running_pid(config: &Config, config_path: &Path) -> Result<u32, u8> {
    let Some(path) = config.pidfile_path(config_path) else {
        eprintln!("portal: `[portal] pidfile` is empty in {}, so the running portal cannot be found; use kill(1)", config_path.display());
        return Err(BAD_CONFIG);
    };
    match pidfile::holder(&path) {
        Holder::Running(pid) => Ok(pid),
        Holder::Missing => {
            eprintln!("portal is not running (no pid file {})", path.display());
            Err(NOT_RUNNING)
        }
        Holder::Stale(why) => {
            eprintln!(
                "portal is not running (stale pid file {}: {why})",
                path.display()
            );
            Err(NOT_RUNNING)
        }
    }
}

fn signal(pid: u32, signal: i32, name: &str) -> Result<(), u8> {
    pidfile::send_signal(pid, signal).map_err(|e| {
        eprintln!("portal: cannot send {name} to pid {pid}: {e}");
        FAILED
    })
}

/// `portal stop`: SIGTERM, then wait up to `timeout` for the process to end.
pub fn stop(config_path: &Path, timeout: Option<Duration>) -> u8 {
    let config = load_for_control(config_path);
    let pid = match running_pid(&config, config_path) {
        Ok(pid) => pid,
        Err(code) => return code,
    };
    if let Err(code) = signal(pid, libc::SIGTERM, "SIGTERM") {
        return code;
    }
    // The portal gives the game stop_timeout_secs, then flushes players.
    let timeout =
        timeout.unwrap_or_else(|| Duration::from_secs_f64(config.game.stop_timeout_secs + 20.0));
    println!("portal (pid {pid}): stopping (players are told)...");
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if !pidfile::is_alive(pid) {
            println!("portal (pid {pid}) stopped");
            return OK;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!(
        "portal (pid {pid}) is still running after {:.0} s; see its log",
        timeout.as_secs_f64()
    );
    FAILED
}

/// `portal reload`: check the file, SIGHUP, and report the portal's verdict
/// when the control socket can tell it, with the changed keys that take
/// effect only at a restart (each new value named once).
pub fn reload(config_path: &Path) -> u8 {
    let config = match Config::load(config_path) {
        Ok(config) => config,
        Err(e) => {
            eprintln!(
                "portal: not reloading: {e}\n\
                 (the running portal would refuse this file and keep its configuration)"
            );
            return BAD_CONFIG;
        }
    };
    let pid = match running_pid(&config, config_path) {
        Ok(pid) => pid,
        Err(code) => return code,
    };
    let socket = config.control_socket_path(config_path);
    let before = socket.as_deref().and_then(reload_counts);
    if let Err(code) = signal(pid, libc::SIGHUP, "SIGHUP") {
        return code;
    }
    let (Some(socket), Some(before)) = (socket, before) else {
        println!("portal (pid {pid}): sent SIGHUP; its log tells whether the file was taken");
        return OK;
    };
    let deadline = Instant::now() + RELOAD_VERDICT_WAIT;
    while Instant::now() < deadline {
        match reload_counts(&socket) {
            Some((ok, _)) if ok > before.0 => {
                println!("portal (pid {pid}): configuration reloaded, log file reopened");
                print_restart_notes(&socket);
                return OK;
            }
            Some((_, failed)) if failed > before.1 => {
                eprintln!(
                    "portal (pid {pid}): reload refused, old configuration kept; see its log"
                );
                return FAILED;
            }
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    }
    eprintln!("portal (pid {pid}): sent SIGHUP, but saw no answer in time; see its log");
    FAILED
}

/// Tell the operator which changed keys the reload could not apply: they
/// wait for a restart. Only keys newly changed are named, so the next
/// reload of the same file stays quiet.
fn print_restart_notes(socket: &Path) {
    let Ok(status) = control::request(socket, "status") else {
        return;
    };
    let keys: Vec<&str> = status
        .lines()
        .find_map(|l| l.strip_prefix("last_reload_new:"))
        .map(|l| l.split_whitespace().collect())
        .unwrap_or_default();
    let (game, portal): (Vec<&str>, Vec<&str>) = keys.into_iter().partition(|k| *k == "game");
    if !portal.is_empty() {
        println!(
            "NOT APPLIED until the portal restarts (portal stop, then start): {}",
            portal.join(", ")
        );
    }
    if !game.is_empty() {
        println!(
            "[game] changed: it takes effect when the game next starts (portal reload-server)"
        );
    }
}

/// `(reloads, failed_reloads)` from the status answer.
fn reload_counts(socket: &Path) -> Option<(u64, u64)> {
    let status = control::request(socket, "status").ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("config:"))?;
    let words: Vec<&str> = line.split_whitespace().collect();
    let number = |label: &str| -> Option<u64> {
        let at = words.iter().position(|w| *w == label)?;
        words.get(at + 1)?.parse().ok()
    };
    Some((number("reloads")?, number("failed_reloads")?))
}

/// `portal reload-server`: SIGUSR1 (the game restarts, players stay).
pub fn reload_server(config_path: &Path) -> u8 {
    let config = load_for_control(config_path);
    let pid = match running_pid(&config, config_path) {
        Ok(pid) => pid,
        Err(code) => return code,
    };
    match signal(pid, libc::SIGUSR1, "SIGUSR1") {
        Ok(()) => {
            println!("portal (pid {pid}): restarting the game server; players stay connected");
            OK
        }
        Err(code) => code,
    }
}

/// How long `upgrade` waits for the new portal to answer.
const UPGRADE_WAIT: Duration = Duration::from_secs(60);

/// `portal upgrade [--binary PATH]`: ask the running portal (control
/// socket) to hand over to the binary, then wait for the new portal to
/// answer `status` and print what it carried.
pub fn upgrade(config_path: &Path, binary: Option<&Path>) -> u8 {
    let config = load_for_control(config_path);
    let Some(socket) = config.control_socket_path(config_path) else {
        eprintln!(
            "portal: `[portal] control_socket` is empty in {}, so an upgrade cannot be asked",
            config_path.display()
        );
        return BAD_CONFIG;
    };
    let request = match binary {
        Some(path) => match std::fs::canonicalize(path) {
            Ok(path) => format!("upgrade {}", path.display()),
            Err(e) => {
                eprintln!("portal: {}: {e}", path.display());
                return BAD_CONFIG;
            }
        },
        None => "upgrade".to_owned(),
    };
    let before = match control::request(&socket, "status") {
        Ok(answer) => upgrade_count(&answer).unwrap_or(0),
        Err(e) => return not_answering(&config, config_path, &socket, e),
    };
    // The exec closes the connection: the portal may have answered
    // nothing before it did.
    let answer = control::request(&socket, &request).unwrap_or_default();
    if let Some(why) = answer.trim().strip_prefix("refused: ") {
        eprintln!("portal: upgrade refused, the running portal carries on: {why}");
        return FAILED;
    }
    let deadline = Instant::now() + UPGRADE_WAIT;
    while Instant::now() < deadline {
        if let Ok(status) = control::request(&socket, "status") {
            if upgrade_count(&status).is_some_and(|n| n > before) {
                let line = status.lines().find(|l| l.starts_with("upgrades:"));
                println!("portal upgraded: {}", line.unwrap_or_default());
                return OK;
            }
            if let Some(why) = status
                .lines()
                .find_map(|l| l.strip_prefix("upgrade_refused: "))
            {
                eprintln!("portal: upgrade refused, the running portal carries on: {why}");
                return FAILED;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("portal: the upgraded portal did not answer within {UPGRADE_WAIT:?}");
    FAILED
}

/// The `upgrades:` count of a status answer.
fn upgrade_count(status: &str) -> Option<u32> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("upgrades: "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// `portal status`: print the running portal's answer.
pub fn status(config_path: &Path) -> u8 {
    let config = load_for_control(config_path);
    let Some(socket) = config.control_socket_path(config_path) else {
        eprintln!(
            "portal: `[portal] control_socket` is empty in {}, so status cannot be asked",
            config_path.display()
        );
        return BAD_CONFIG;
    };
    match control::request(&socket, "status") {
        Ok(answer) => {
            print!("{answer}");
            OK
        }
        Err(e) => not_answering(&config, config_path, &socket, e),
    }
}

fn not_answering(config: &Config, config_path: &Path, socket: &Path, e: std::io::Error) -> u8 {
    match running_pid(config, config_path) {
        Ok(pid) => {
            eprintln!(
                "portal is running (pid {pid}) but its control socket {} does not answer: {e}",
                socket.display()
            );
            FAILED
        }
        Err(code) => {
            println!("portal: not running");
            code
        }
    }
}
