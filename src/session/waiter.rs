//! How a session worker sleeps: `ppoll(2)` on its socket and one eventfd.
//!
//! A worker waits for two things at once: its socket, and output pushed
//! into its channel by another thread (which then calls [`Wake::wake`]).
//! A `mio::Poll` per worker would do, but costs an epoll instance (a third
//! descriptor per session, and `epoll_create1` + two `epoll_ctl` at every
//! connect); `ppoll` on two descriptors needs neither.
//!
//! ```text
//!  AMP reader ── channel push ── Wake::wake ──► eventfd ─┐
//!  client ─────────────────────────────────────► socket ─┴─► Waiter::wait ──► Readiness
//! ```
//!
//! The poll is level-triggered, so a wake is consumed (the eventfd read)
//! by the `wait` that reports it, and a socket that still holds unread bytes
//! is reported again.
//!
//! `wait` also gives back stack pages the worker no longer uses (see
//! [`crate::session::stack`]) once a session falls idle: a long sleep is
//! cut into [`IDLE_TRIM`] and the rest, and if the first part passes with
//! nothing to do, the pages the last burst of work touched are released
//! before the rest of the sleep. A busy session (news within two seconds)
//! never pays for it (a trim and the page faults after it cost about 12 µs
//! of CPU; at one second it hit players typing once a second); an idle one pays one wake and one system call per
//! idle spell, and keeps only the pages its waiting frames need.

use crate::session::stack;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a session must sleep without news before its stack is trimmed.
pub const IDLE_TRIM: Duration = Duration::from_secs(2);

/// What woke a [`Waiter::wait`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Readiness {
    /// The socket has bytes, an end of stream or an error to read.
    pub readable: bool,
    /// The socket takes more bytes (only asked for with write interest).
    pub writable: bool,
    /// Someone called [`Wake::wake`].
    pub woken: bool,
}

impl Readiness {
    /// Nothing happened: the timeout passed.
    pub fn timed_out(&self) -> bool {
        *self == Readiness::default()
    }
}

/// Wakes a [`Waiter`] from another thread; cheap to clone.
#[derive(Debug, Clone)]
pub struct Wake {
    event: Arc<OwnedFd>,
}

impl Wake {
    /// Make the waiter's current or next `wait` return with `woken`.
    pub fn wake(&self) -> io::Result<()> {
        let one: u64 = 1;
        loop {
            // SAFETY: writes 8 bytes from a live u64 to an eventfd we own.
            let n = unsafe {
                libc::write(
                    self.event.as_raw_fd(),
                    (&one as *const u64).cast(),
                    std::mem::size_of::<u64>(),
                )
            };
            if n >= 0 {
                return Ok(());
            }
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::Interrupted => continue,
                // The counter is near overflow: a wake is pending anyway.
                io::ErrorKind::WouldBlock => return Ok(()),
                _ => return Err(e),
            }
        }
    }
}

/// One worker's sleep: its socket plus an eventfd.
#[derive(Debug)]
pub struct Waiter {
    socket: RawFd,
    event: Arc<OwnedFd>,
    write_interest: bool,
    /// Off while only writability matters (a relay writing to a client
    /// that keeps sending): readable input would end every wait at once.
    read_interest: bool,
    /// The stack was trimmed and nothing has happened since.
    trimmed: bool,
    /// [`IDLE_TRIM`], shorter in tests.
    idle_trim: Duration,
}

impl Waiter {
    /// A waiter for `socket` (which the caller keeps open for as long as the
    /// waiter is used). Fails only when no descriptor is left.
    pub fn new(socket: RawFd) -> io::Result<Waiter> {
        // SAFETY: eventfd has no pointer arguments; the result is checked.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just created and is owned by nobody else.
        let event = Arc::new(unsafe { OwnedFd::from_raw_fd(fd) });
        Ok(Waiter {
            socket,
            event,
            write_interest: false,
            read_interest: true,
            trimmed: false,
            idle_trim: IDLE_TRIM,
        })
    }

    /// Watch another socket from now on (`-1`: none, only wakes and the
    /// timeout), for a worker whose socket comes and goes (an AJAX
    /// session's parked request).
    pub fn set_socket(&mut self, socket: RawFd) {
        self.socket = socket;
    }

    /// A handle other threads use to wake this waiter.
    pub fn waker(&self) -> Wake {
        Wake {
            event: self.event.clone(),
        }
    }

    /// Also wake when the socket becomes writable (output is waiting).
    pub fn set_write_interest(&mut self, wanted: bool) {
        self.write_interest = wanted;
    }

    /// Whether waits report the socket readable (on unless turned off).
    pub fn set_read_interest(&mut self, wanted: bool) {
        self.read_interest = wanted;
    }

    /// Sleep until the socket is ready, a wake comes, or `timeout` passes
    /// (`None`: no timeout). A signal ends the wait early with nothing set.
    /// A sleep longer than [`IDLE_TRIM`] that passes that long with nothing
    /// to do trims the stack first (see the module doc).
    pub fn wait(&mut self, timeout: Option<Duration>) -> io::Result<Readiness> {
        let idle_trim = self.idle_trim;
        let long = timeout.is_none_or(|t| t > idle_trim);
        if self.trimmed || !long {
            return self.wait_noting(timeout);
        }
        let start = Instant::now();
        let ready = self.poll_once(Some(idle_trim))?;
        if !ready.timed_out() {
            return Ok(ready);
        }
        stack::trim();
        self.trimmed = true;
        let rest = timeout.map(|t| t.saturating_sub(start.elapsed()));
        self.wait_noting(rest)
    }

    /// One sleep; news of any kind means the stack may have grown again.
    fn wait_noting(&mut self, timeout: Option<Duration>) -> io::Result<Readiness> {
        let ready = self.poll_once(timeout)?;
        if !ready.timed_out() {
            self.trimmed = false;
        }
        Ok(ready)
    }

    /// One `ppoll` on the socket and the eventfd.
    fn poll_once(&mut self, timeout: Option<Duration>) -> io::Result<Readiness> {
        let mut socket_events = if self.read_interest {
            libc::POLLIN | libc::POLLRDHUP
        } else {
            0
        };
        if self.write_interest {
            socket_events |= libc::POLLOUT;
        }
        let mut fds = [
            libc::pollfd {
                fd: self.socket,
                events: socket_events,
                revents: 0,
            },
            libc::pollfd {
                fd: self.event.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        let spec = timeout.map(|t| libc::timespec {
            tv_sec: t.as_secs().min(i64::MAX as u64) as libc::time_t,
            tv_nsec: t.subsec_nanos() as libc::c_long,
        });
        let spec_ptr = spec
            .as_ref()
            .map_or(std::ptr::null(), |s| s as *const libc::timespec);
        // SAFETY: `fds` is a live array of two pollfds; `spec_ptr` is null
        // or points at a live timespec; no signal mask is passed.
        let n = unsafe { libc::ppoll(fds.as_mut_ptr(), 2, spec_ptr, std::ptr::null()) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                return Ok(Readiness::default());
            }
            return Err(e);
        }
        let socket = fds[0].revents;
        let failed = libc::POLLERR | libc::POLLHUP | libc::POLLNVAL;
        let ready = Readiness {
            readable: socket & (libc::POLLIN | libc::POLLRDHUP | failed) != 0,
            writable: socket & (libc::POLLOUT | failed) != 0,
            woken: fds[1].revents & libc::POLLIN != 0,
        };
        if ready.woken {
            self.consume_wake();
        }
        Ok(ready)
    }

    /// Reset the eventfd so the next wait sleeps again.
    fn consume_wake(&self) {
        let mut count: u64 = 0;
        // SAFETY: reads 8 bytes into a live u64 from our nonblocking eventfd;
        // an error (already reset) leaves nothing to do.
        unsafe {
            libc::read(
                self.event.as_raw_fd(),
                (&mut count as *mut u64).cast(),
                std::mem::size_of::<u64>(),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::{TcpListener, TcpStream};
    use std::time::Instant;

    #[test]
    fn an_idle_spell_trims_once_and_news_rearms_it() {
        let (quiet, _peer) = std::os::unix::net::UnixStream::pair().unwrap();
        let mut waiter = Waiter::new(quiet.as_raw_fd()).unwrap();
        waiter.idle_trim = Duration::from_millis(5);
        let ready = waiter.wait(Some(Duration::from_millis(30))).unwrap();
        assert!(ready.timed_out());
        assert!(waiter.trimmed, "trimmed after the idle part");
        waiter.waker().wake().unwrap();
        let ready = waiter.wait(Some(Duration::from_secs(5))).unwrap();
        assert!(ready.woken);
        assert!(!waiter.trimmed, "news: the next idle spell trims again");
    }

    #[test]
    fn a_short_sleep_does_not_trim() {
        let (quiet, _peer) = std::os::unix::net::UnixStream::pair().unwrap();
        let mut waiter = Waiter::new(quiet.as_raw_fd()).unwrap();
        waiter.idle_trim = Duration::from_millis(50);
        let ready = waiter.wait(Some(Duration::from_millis(5))).unwrap();
        assert!(ready.timed_out());
        assert!(!waiter.trimmed);
    }

    fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        (client, server)
    }

    #[test]
    fn a_quiet_socket_times_out_with_nothing_ready() {
        let (_client, server) = pair();
        let mut waiter = Waiter::new(server.as_raw_fd()).unwrap();
        let ready = waiter.wait(Some(Duration::from_millis(20))).unwrap();
        assert!(ready.timed_out());
    }

    #[test]
    fn input_makes_the_socket_readable_until_it_is_read() {
        let (mut client, server) = pair();
        let mut waiter = Waiter::new(server.as_raw_fd()).unwrap();
        client.write_all(b"hi").unwrap();
        let ready = waiter.wait(Some(Duration::from_secs(5))).unwrap();
        assert!(ready.readable && !ready.woken);
        // Level-triggered: unread input is reported again.
        assert!(waiter.wait(Some(Duration::ZERO)).unwrap().readable);
    }

    #[test]
    fn a_wake_from_another_thread_ends_the_wait_once() {
        let (_client, server) = pair();
        let mut waiter = Waiter::new(server.as_raw_fd()).unwrap();
        let wake = waiter.waker();
        let started = Instant::now();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            wake.wake().unwrap();
        });
        let ready = waiter.wait(Some(Duration::from_secs(5))).unwrap();
        t.join().unwrap();
        assert!(ready.woken && started.elapsed() < Duration::from_secs(5));
        let again = waiter.wait(Some(Duration::from_millis(10))).unwrap();
        assert!(again.timed_out(), "the wake was consumed");
    }

    #[test]
    fn write_interest_reports_a_writable_socket() {
        let (_client, server) = pair();
        let mut waiter = Waiter::new(server.as_raw_fd()).unwrap();
        waiter.set_write_interest(true);
        assert!(waiter.wait(Some(Duration::from_secs(5))).unwrap().writable);
        waiter.set_write_interest(false);
        assert!(!waiter.wait(Some(Duration::ZERO)).unwrap().writable);
    }

    #[test]
    fn a_closed_peer_reads_as_readable() {
        let (client, server) = pair();
        let mut waiter = Waiter::new(server.as_raw_fd()).unwrap();
        drop(client);
        assert!(waiter.wait(Some(Duration::from_secs(5))).unwrap().readable);
    }
}
