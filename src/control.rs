//! The control socket: how `portal status` asks a running portal.
//!
//! A Unix stream socket (`[portal] control_socket`, default `portal.sock`
//! beside portal.conf) created with mode 0600, so only the user running the
//! portal can connect; connections from another uid are also refused by
//! their peer credentials. One small thread answers, one request at a
//! time: the client sends one line (`status`), the portal writes the answer
//! and closes. Everything in the answer comes from the registry, the
//! counters and the supervisor's record, so it works while the game is
//! down.
//!
//! Stopping and reloading do not go through here: `portal stop`, `reload`
//! and `reload-server` send SIGTERM, SIGHUP and SIGUSR1 to the pid in the
//! pid file, which end in the same `Control` requests as the game's own
//! `shutdown` and `reload`.
//!
//! The status answer is plain text, one line per topic, `topic:` then
//! space-separated words; a number always follows its label.
//! `addresses` counts the distinct client addresses (behind a trusted
//! proxy, the real client's), then lists the busiest
//! [`LISTED_ADDRESSES`] with their session counts. `restart_pending` lists the restart-only keys whose file value the
//! running portal has not applied; `last_reload_new` those the last reload
//! found newly changed (what `portal reload` prints):
//!
//! ```text
//! portal: running  version 0.1.0  pid 4242  uptime 1h2m3s  uptime_secs 3723
//! game: running  pid 4250  uptime 12m5s  uptime_secs 725  restarts 1  crashes 0  link ready
//! sessions: 3  telnet 3
//! addresses: 2  127.0.0.1 1  203.0.113.7 2
//! logged_in: 2
//! connections: accepted 10  throttled 2  refused 0  queued 0  tls_handshake_failures 0
//! traffic: bytes_in 1234  bytes_out 56789  commands 42  commands_refused 0
//! held_input: 0
//! config: reloads 1  failed_reloads 0
//! restart_pending: telnet.listen
//! last_reload_new: telnet.listen
//! limits: max_connection_rate 5  max_command_rate 80  max_char_limit 6000 ...
//! upgrades: 1  carried 65  not_carried 0  took_ms 120
//! upgrade_refused: ./portal-new refused: it does not speak the hand-over ...
//! ```
//!
//! `upgrades` counts the `portal upgrade`s this portal came through and
//! what the last one carried; `upgrade_refused` appears after an attempt
//! that did not happen. The socket also takes `upgrade [PATH]` (what
//! `portal upgrade` sends): the answer is `ok: ...` just before the exec,
//! or `refused: why`.

use crate::shared::Shared;
use crate::stats::{human_duration, GameState};
use std::fmt::{self, Write as _};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long either side waits on the other.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest request line accepted.
const MAX_REQUEST: u64 = 256;

/// The bound control socket; its file is removed when this is dropped.
pub struct ControlSocket {
    path: PathBuf,
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Why the control socket could not be served.
#[derive(Debug)]
#[non_exhaustive]
pub enum ControlError {
    /// The socket file could not be created at `path`.
    Bind { path: PathBuf, source: io::Error },
    /// The thread answering it could not be started.
    Thread(io::Error),
}

impl fmt::Display for ControlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ControlError::Bind { path, source } => write!(
                f,
                "cannot create the control socket {}: {source}",
                path.display()
            ),
            ControlError::Thread(source) => {
                write!(f, "cannot start the control thread: {source}")
            }
        }
    }
}

impl std::error::Error for ControlError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ControlError::Bind { source, .. } | ControlError::Thread(source) => Some(source),
        }
    }
}

/// Bind the socket at `path` (mode 0600) and start the thread answering
/// it. Call while holding the pid file: a leftover socket file at `path`
/// then belongs to a portal that is gone, and is replaced.
pub fn serve(path: &Path, shared: Arc<Shared>) -> Result<ControlSocket, ControlError> {
    let listener = bind_private(path).map_err(|source| ControlError::Bind {
        path: path.to_owned(),
        source,
    })?;
    let socket = ControlSocket {
        path: path.to_owned(),
    };
    std::thread::Builder::new()
        .name("control".into())
        .spawn(move || answer_forever(listener, shared))
        .map_err(ControlError::Thread)?;
    log::info!("control socket at {}", path.display());
    Ok(socket)
}

fn bind_private(path: &Path) -> io::Result<UnixListener> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if is_socket(&meta) => std::fs::remove_file(path)?,
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "a file that is not a socket is in the way",
            ))
        }
        Err(_) => {}
    }
    // Create the socket file unreadable to others from the start (umask),
    // then set the mode explicitly.
    // SAFETY: umask only swaps the process's file creation mask.
    let old = unsafe { libc::umask(0o177) };
    let bound = UnixListener::bind(path);
    // SAFETY: as above; restores the mask.
    unsafe { libc::umask(old) };
    let listener = bound?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

fn is_socket(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::FileTypeExt;
    meta.file_type().is_socket()
}

fn answer_forever(listener: UnixListener, shared: Arc<Shared>) {
    for stream in listener.incoming() {
        match stream {
            Ok(stream) => {
                if let Err(e) = answer(stream, &shared) {
                    log::debug!("control socket: {e}");
                }
            }
            Err(e) => {
                log::warn!("control socket: accept failed: {e}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

fn answer(stream: UnixStream, shared: &Shared) -> io::Result<()> {
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    if !same_user(&stream) {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "refused a peer running as another user",
        ));
    }
    let mut line = String::new();
    BufReader::new((&stream).take(MAX_REQUEST)).read_line(&mut line)?;
    let reply = match line.trim() {
        "status" => status_report(shared),
        "upgrade" => upgrade(shared, None),
        request if request.starts_with("upgrade ") => {
            let path = request["upgrade ".len()..].trim();
            upgrade(shared, Some(PathBuf::from(path)))
        }
        other => format!("error: unknown request `{other}` (known: status, upgrade [PATH])\n"),
    };
    (&stream).write_all(reply.as_bytes())
}

/// Whether the peer runs as our effective user (Linux peer credentials).
#[cfg(target_os = "linux")]
fn same_user(stream: &UnixStream) -> bool {
    use std::os::fd::AsRawFd;
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `cred`.
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    // SAFETY: geteuid cannot fail.
    rc == 0 && cred.uid == unsafe { libc::geteuid() }
}

/// Elsewhere the socket file's mode (0600) is the only guard.
#[cfg(not(target_os = "linux"))]
fn same_user(_stream: &UnixStream) -> bool {
    true
}

/// How long an upgrade request waits for the main loop's verdict.
const UPGRADE_WAIT: Duration = Duration::from_secs(60);

/// `upgrade [PATH]`: ask the main loop; its answer is `ok: ...` just
/// before the exec, or `refused: ...` (the portal carries on).
fn upgrade(shared: &Shared, binary: Option<PathBuf>) -> String {
    let (reply, answer) = crossbeam_channel::bounded(1);
    let ask = crate::upgrade::Ask {
        binary,
        reply: Some(reply),
    };
    if !shared.upgrades.ask(ask) {
        return "refused: an upgrade is already under way\n".into();
    }
    shared.request(crate::shared::Control::Upgrade);
    answer
        .recv_timeout(UPGRADE_WAIT)
        .unwrap_or_else(|_| "refused: the portal did not answer in time\n".into())
}

/// Ask the portal listening on `path`; returns its whole answer.
pub fn request(path: &Path, what: &str) -> io::Result<String> {
    let mut stream = UnixStream::connect(path)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    stream.write_all(format!("{what}\n").as_bytes())?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    Ok(answer)
}

/// The `status` answer (format in the module docs).
pub fn status_report(shared: &Shared) -> String {
    let mut out = String::new();
    let uptime = shared.uptime().as_secs();
    let _ = writeln!(
        out,
        "portal: running  version {}  pid {}  uptime {}  uptime_secs {uptime}",
        env!("CARGO_PKG_VERSION"),
        std::process::id(),
        human_duration(uptime),
    );
    let _ = writeln!(out, "game: {}", game_line(shared));
    let by_protocol = shared.registry.sessions_by_protocol();
    let total: usize = by_protocol.values().sum();
    let _ = write!(out, "sessions: {total}");
    for (key, count) in &by_protocol {
        let _ = write!(out, "  {key} {count}");
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "addresses: {}", addresses_line(shared));
    let _ = writeln!(out, "logged_in: {}", shared.registry.count_loggedin(false));
    let c = shared.stats.snapshot();
    let _ = writeln!(
        out,
        "connections: accepted {}  throttled {}  refused {}  queued {}  tls_handshake_failures {}",
        c.connections_accepted,
        c.connections_throttled,
        c.connections_refused,
        c.connections_queued_now,
        crate::tls::handshake_failures()
    );
    let _ = writeln!(
        out,
        "traffic: bytes_in {}  bytes_out {}  commands {}  commands_refused {}",
        c.bytes_in, c.bytes_out, c.commands, c.commands_refused
    );
    let _ = writeln!(out, "held_input: {}", shared.link.held());
    let _ = writeln!(
        out,
        "config: reloads {}  failed_reloads {}",
        c.config_reloads, c.config_reload_failures
    );
    let notes = shared.reload_notes();
    let _ = writeln!(out, "restart_pending: {}", notes.restart_pending.join(" "));
    let _ = writeln!(
        out,
        "last_reload_new: {}",
        notes.new_at_last_reload.join(" ")
    );
    let _ = writeln!(out, "limits: {}", limits_line(shared));
    let up = shared.upgrades.outcome();
    let _ = writeln!(
        out,
        "upgrades: {}  carried {}  not_carried {}  took_ms {}",
        up.upgrades,
        up.carried,
        up.dropped,
        up.took.as_millis()
    );
    if let Some(why) = &up.refused {
        let _ = writeln!(out, "upgrade_refused: {why}");
    }
    out
}

/// Most client addresses `portal status` lists.
pub const LISTED_ADDRESSES: usize = 20;

/// The distinct count, then the busiest addresses with their sessions.
fn addresses_line(shared: &Shared) -> String {
    let counts = shared.registry.sessions_by_address();
    let mut busiest: Vec<(&String, &usize)> = counts.iter().collect();
    busiest.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let mut line = counts.len().to_string();
    for (ip, n) in busiest.into_iter().take(LISTED_ADDRESSES) {
        let _ = write!(line, "  {ip} {n}");
    }
    line
}

fn game_line(shared: &Shared) -> String {
    let game = shared.stats.game();
    let link = shared.link.state().name();
    if game.state == GameState::External {
        // Not ours to run: "running" means a game is linked.
        let state = if link == "down" { "down" } else { "running" };
        return format!("{state}  supervised no  link {link}");
    }
    let mut line = game.state.name().to_owned();
    if let Some(pid) = game.pid {
        let _ = write!(line, "  pid {pid}");
    }
    if let Some(since) = game.since {
        let up = since.elapsed().as_secs();
        let _ = write!(line, "  uptime {}  uptime_secs {up}", human_duration(up));
    }
    let _ = write!(
        line,
        "  restarts {}  crashes {}",
        game.restarts, game.crashes
    );
    if let Some(at) = game.next_start {
        let wait = at.saturating_duration_since(Instant::now()).as_secs_f64();
        let _ = write!(line, "  next_start_in {wait:.1}s");
    }
    let _ = write!(line, "  link {link}");
    line
}

fn limits_line(shared: &Shared) -> String {
    let config = shared.config();
    let l = &config.limits;
    format!(
        "max_connection_rate {}  max_command_rate {}  max_char_limit {}  \
         idle_timeout_secs {}  output_buffer_bytes {}  held_input_commands {}  \
         data_in_queue {}  connection_queue {}",
        l.max_connection_rate,
        l.max_command_rate,
        l.max_char_limit,
        l.idle_timeout_secs,
        l.output_buffer_bytes,
        l.held_input_commands,
        l.data_in_queue,
        l.connection_queue,
    )
}
