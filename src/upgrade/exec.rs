//! The two ends of the exec: the old portal writes the hand-over into an
//! anonymous memory file, lets the descriptors it names survive `execve`
//! and replaces itself with the new binary (same pid, so the game stays
//! its child and the pid file stays true); the new portal finds the file
//! through [`HANDOVER_ENV`], reads it (bounded), and checks that every
//! descriptor it names is open and of the right kind before using any.

use crate::upgrade::format::{FormatError, Handover};
use crate::upgrade::HANDOVER_ENV;
use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::{FromRawFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Set or clear close-on-exec on `fd`.
pub fn set_cloexec(fd: RawFd, on: bool) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor number only reads/sets its flags.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    let flags = if on {
        flags | libc::FD_CLOEXEC
    } else {
        flags & !libc::FD_CLOEXEC
    };
    // SAFETY: as above.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, flags) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The signals the portal handles: blocked across the exec (a blocked
/// signal stays pending through execve), so one that arrives before the
/// new portal has installed its handlers is not fatal; the new portal
/// unblocks them ([`unblock_signals`]) once its handlers are in.
const HANDLED: [libc::c_int; 5] = [
    libc::SIGHUP,
    libc::SIGINT,
    libc::SIGTERM,
    libc::SIGUSR1,
    libc::SIGUSR2,
];

fn signal_mask(how: libc::c_int) {
    // SAFETY: a sigset built with the libc calls, then applied to this
    // thread's mask.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for signal in HANDLED {
            libc::sigaddset(&mut set, signal);
        }
        libc::pthread_sigmask(how, &set, std::ptr::null_mut());
    }
}

/// Let the handled signals in (after an upgrade: they were blocked across
/// the exec; pending ones are delivered now).
pub fn unblock_signals() {
    signal_mask(libc::SIG_UNBLOCK);
}

/// Replace this process with `binary`, handing it `bytes` (the encoded
/// hand-over) and the descriptors `fds`, with `extra_env` added to the
/// environment. Returns only on failure, with every descriptor's
/// close-on-exec flag set again.
pub fn exec(
    binary: &Path,
    args: &[String],
    extra_env: &[(String, String)],
    bytes: &[u8],
    fds: &[RawFd],
) -> io::Error {
    let file = match memory_file(bytes) {
        Ok(file) => file,
        Err(e) => return e,
    };
    use std::os::fd::AsRawFd;
    let file_fd = file.as_raw_fd();
    let mut cleared = Vec::new();
    for &fd in fds.iter().chain(std::iter::once(&file_fd)) {
        if let Err(e) = set_cloexec(fd, false) {
            restore(&cleared);
            return io::Error::new(e.kind(), format!("descriptor {fd}: {e}"));
        }
        cleared.push(fd);
    }
    signal_mask(libc::SIG_BLOCK);
    let error = execve(binary, args, extra_env, file_fd);
    signal_mask(libc::SIG_UNBLOCK);
    restore(&cleared);
    drop(file);
    error
}

fn restore(fds: &[RawFd]) {
    for &fd in fds {
        let _ = set_cloexec(fd, true);
    }
}

/// An anonymous file holding `bytes`, at offset 0.
fn memory_file(bytes: &[u8]) -> io::Result<File> {
    let name = c"portal-handover";
    // SAFETY: memfd_create takes a valid C string and flags; the result is
    // a new descriptor we own (or -1).
    let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor nobody else owns.
    let mut file = unsafe { File::from_raw_fd(fd) };
    file.write_all(bytes)?;
    file.seek(SeekFrom::Start(0))?;
    Ok(file)
}

/// execve with the environment plus `extra_env` and `HANDOVER_ENV=fd`.
fn execve(
    binary: &Path,
    args: &[String],
    extra_env: &[(String, String)],
    file_fd: RawFd,
) -> io::Error {
    let Ok(path) = CString::new(binary.as_os_str().as_bytes()) else {
        return io::Error::new(io::ErrorKind::InvalidInput, "binary path has a NUL byte");
    };
    let mut argv: Vec<CString> = vec![path.clone()];
    for arg in args {
        match CString::new(arg.as_bytes()) {
            Ok(arg) => argv.push(arg),
            Err(_) => return io::Error::new(io::ErrorKind::InvalidInput, "argument has a NUL"),
        }
    }
    let replaced = |key: &[u8]| {
        key == HANDOVER_ENV.as_bytes() || extra_env.iter().any(|(k, _)| k.as_bytes() == key)
    };
    let mut env: Vec<CString> = std::env::vars_os()
        .filter(|(key, _)| !replaced(key.as_bytes()))
        .filter_map(|(key, value)| {
            let mut pair = key.as_bytes().to_vec();
            pair.push(b'=');
            pair.extend_from_slice(value.as_bytes());
            CString::new(pair).ok()
        })
        .collect();
    let added = extra_env
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .chain(std::iter::once(format!("{HANDOVER_ENV}={file_fd}")));
    env.extend(added.filter_map(|pair| CString::new(pair).ok()));
    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let mut env_ptrs: Vec<*const libc::c_char> = env.iter().map(|e| e.as_ptr()).collect();
    env_ptrs.push(std::ptr::null());
    log::logger().flush();
    // SAFETY: every pointer is a NUL-terminated string kept alive above,
    // and both arrays end with a null pointer.
    unsafe { libc::execve(path.as_ptr(), argv_ptrs.as_ptr(), env_ptrs.as_ptr()) };
    io::Error::last_os_error()
}

/// Why the new portal could not take over.
#[derive(Debug)]
pub enum TakeOverError {
    Env(String),
    Read(io::Error),
    Format(FormatError),
    /// A descriptor it names is not open, or not what it says.
    Descriptor {
        fd: RawFd,
        why: String,
    },
}

impl std::fmt::Display for TakeOverError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TakeOverError::Env(text) => write!(f, "{HANDOVER_ENV}={text:?} is not a descriptor"),
            TakeOverError::Read(e) => write!(f, "cannot read the hand-over: {e}"),
            TakeOverError::Format(e) => e.fmt(f),
            TakeOverError::Descriptor { fd, why } => write!(f, "descriptor {fd}: {why}"),
        }
    }
}

impl std::error::Error for TakeOverError {}

/// In the new portal: the hand-over, if this process was started by an
/// upgrade. Every descriptor it names is checked (a socket, or a pipe for
/// the game's output) and made close-on-exec again.
pub fn take_over() -> Option<Result<Handover, TakeOverError>> {
    let text = std::env::var(HANDOVER_ENV).ok()?;
    std::env::remove_var(HANDOVER_ENV);
    Some(read_handover(&text))
}

fn read_handover(text: &str) -> Result<Handover, TakeOverError> {
    let fd: RawFd = text
        .parse()
        .ok()
        .filter(|fd| *fd > 2)
        .ok_or_else(|| TakeOverError::Env(text.to_owned()))?;
    check_kind(fd, libc::S_IFREG)?;
    // SAFETY: checked open above; nothing else in this process owns it.
    let mut file = unsafe { File::from_raw_fd(fd) };
    let mut header = [0u8; 20];
    file.read_exact(&mut header).map_err(TakeOverError::Read)?;
    let total = Handover::total_len(&header).map_err(TakeOverError::Format)?;
    let mut bytes = header.to_vec();
    (&mut file)
        .take((total - header.len()) as u64)
        .read_to_end(&mut bytes)
        .map_err(TakeOverError::Read)?;
    let handover = Handover::decode(&bytes).map_err(TakeOverError::Format)?;
    for fd in handover.fds() {
        let kind = if game_pipe(&handover, fd) {
            libc::S_IFIFO
        } else {
            libc::S_IFSOCK
        };
        check_kind(fd, kind)?;
        set_cloexec(fd, true).map_err(|e| TakeOverError::Descriptor {
            fd,
            why: e.to_string(),
        })?;
    }
    Ok(handover)
}

fn game_pipe(handover: &Handover, fd: RawFd) -> bool {
    handover
        .game
        .as_ref()
        .is_some_and(|g| g.stdout_fd == Some(fd) || g.stderr_fd == Some(fd))
}

/// `fd` is open and of file type `kind` (`S_IFSOCK`, `S_IFIFO`, ...).
fn check_kind(fd: RawFd, kind: libc::mode_t) -> Result<(), TakeOverError> {
    // SAFETY: fstat writes into the zeroed struct we own.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(fd, &mut stat) } != 0 {
        return Err(TakeOverError::Descriptor {
            fd,
            why: io::Error::last_os_error().to_string(),
        });
    }
    if stat.st_mode & libc::S_IFMT != kind {
        return Err(TakeOverError::Descriptor {
            fd,
            why: format!("not the expected kind of file (mode {:o})", stat.st_mode),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn a_handover_in_a_memory_file_is_read_back_and_its_sockets_checked() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let handover = Handover {
            next_sessid: 1,
            amp: crate::upgrade::format::AmpState {
                listener_fd: listener.as_raw_fd(),
                ..Default::default()
            },
            ..Default::default()
        };
        let file = memory_file(&handover.encode().unwrap()).unwrap();
        let fd = file.as_raw_fd();
        std::mem::forget(file);
        assert_eq!(read_handover(&fd.to_string()).unwrap(), handover);
    }

    #[test]
    fn a_descriptor_that_is_not_a_socket_is_refused() {
        let not_a_socket = memory_file(b"x").unwrap();
        let handover = Handover {
            next_sessid: 1,
            amp: crate::upgrade::format::AmpState {
                listener_fd: not_a_socket.as_raw_fd(),
                ..Default::default()
            },
            ..Default::default()
        };
        let file = memory_file(&handover.encode().unwrap()).unwrap();
        let fd = file.as_raw_fd();
        std::mem::forget(file);
        let err = read_handover(&fd.to_string()).unwrap_err();
        assert!(matches!(err, TakeOverError::Descriptor { .. }), "{err}");
        assert!(matches!(read_handover("2"), Err(TakeOverError::Env(_))));
    }
}
