//! The game server's end of the AMP link: a blocking TCP client.

use crate::amp::codec::{decode, encode, Decoded};
use crate::wire::message::{Command, PortalMsg, ServerMsg, StartMode, PROTOCOL_VERSION};
use crate::wire::session::Session;
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// The largest frame body either side accepts (16 MiB).
pub const MAX_FRAME: usize = 16 << 20;

/// Bytes asked of the socket per read.
const READ_CHUNK: usize = 64 * 1024;

/// Pause between connection attempts while the portal is starting.
const RETRY_PAUSE: Duration = Duration::from_millis(100);

/// Why the link failed. Every variant means the link is unusable, except
/// that a game may retry [`GameLink::connect`] after `Connect` or `Timeout`.
#[derive(Debug)]
#[non_exhaustive]
pub enum LinkError {
    /// No TCP connection to `addr` could be made before the timeout.
    Connect { addr: String, source: io::Error },
    /// A read or write on the established link failed.
    Io(io::Error),
    /// The portal refused our hello (wrong version, bad secret, another game
    /// already linked); the portal's reason is inside.
    Refused(String),
    /// The portal closed the link.
    Closed,
    /// A frame was too large or not a valid message; the stream cannot be
    /// trusted after it.
    BadFrame(String),
    /// The portal said something that does not fit the handshake.
    Unexpected(String),
    /// A handshake step got no answer in time (names the step).
    Timeout(&'static str),
    /// A message could not be encoded.
    Encode(String),
}

impl std::fmt::Display for LinkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LinkError::Connect { addr, source } => {
                write!(f, "cannot connect to the portal at {addr}: {source}")
            }
            LinkError::Io(e) => write!(f, "AMP link I/O error: {e}"),
            LinkError::Refused(reason) => write!(f, "the portal refused the link: {reason}"),
            LinkError::Closed => write!(f, "the portal closed the AMP link"),
            LinkError::BadFrame(why) => write!(f, "bad AMP frame from the portal: {why}"),
            LinkError::Unexpected(what) => write!(f, "unexpected AMP message: {what}"),
            LinkError::Timeout(step) => write!(f, "no answer from the portal while {step}"),
            LinkError::Encode(why) => write!(f, "cannot encode AMP message: {why}"),
        }
    }
}

impl std::error::Error for LinkError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LinkError::Connect { source, .. } => Some(source),
            LinkError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for LinkError {
    fn from(e: io::Error) -> Self {
        LinkError::Io(e)
    }
}

/// What the portal said in its sync reply.
#[derive(Debug, Clone, PartialEq)]
pub struct Synced {
    /// Why the game is starting (first start, reload, after a crash).
    pub mode: StartMode,
    /// Every session the portal holds, with login state as last synced.
    pub sessions: Vec<Session>,
}

/// A linked, synced connection to the portal.
///
/// Blocking and single-threaded: one game loop calls [`GameLink::recv`] (or
/// [`GameLink::recv_timeout`] to tick) and [`GameLink::send`].
#[derive(Debug)]
pub struct GameLink {
    stream: TcpStream,
    /// Bytes read but not yet decoded start at `buf[start..]`.
    buf: Vec<u8>,
    start: usize,
    /// Messages read during the handshake that were not its answer.
    pending: VecDeque<PortalMsg>,
    /// The read timeout currently set on the socket.
    read_timeout: Option<Duration>,
    out: Vec<u8>,
}

impl GameLink {
    /// Connect to the portal at `addr`, retrying until `timeout` (the portal
    /// may still be starting), say hello with `secret` and `name`, and ask
    /// for the sync. `timeout` also bounds the wait for each reply.
    pub fn connect(
        addr: &str,
        secret: &str,
        name: &str,
        timeout: Duration,
    ) -> Result<(GameLink, Synced), LinkError> {
        let stream = connect_with_retry(addr, timeout)?;
        stream.set_nodelay(true)?;
        let mut link = GameLink::from_stream(stream);
        link.hello(secret, name, timeout)?;
        let synced = link.sync(timeout)?;
        Ok((link, synced))
    }

    /// Wrap an already connected stream (no handshake is done).
    fn from_stream(stream: TcpStream) -> GameLink {
        GameLink {
            stream,
            buf: Vec::new(),
            start: 0,
            pending: VecDeque::new(),
            read_timeout: None,
            out: Vec::new(),
        }
    }

    /// Send the hello and wait for `Welcome` or `Refused`.
    fn hello(&mut self, secret: &str, name: &str, timeout: Duration) -> Result<(), LinkError> {
        self.send(&ServerMsg::Hello {
            version: PROTOCOL_VERSION,
            secret: secret.to_owned(),
            name: name.to_owned(),
        })?;
        match self.read_message(Some(timeout))? {
            Some(PortalMsg::Welcome { .. }) => Ok(()),
            Some(PortalMsg::Refused { reason }) => Err(LinkError::Refused(reason)),
            Some(other) => Err(LinkError::Unexpected(format!("{other:?} before Welcome"))),
            None => Err(LinkError::Timeout("waiting for Welcome")),
        }
    }

    /// Ask for every session's record and wait for the `Sync` reply. Other
    /// messages arriving first are kept for [`GameLink::recv`].
    pub fn sync(&mut self, timeout: Duration) -> Result<Synced, LinkError> {
        self.send(&ServerMsg::SyncRequest)?;
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(LinkError::Timeout("waiting for Sync"));
            }
            match self.read_message(Some(left))? {
                Some(PortalMsg::Sync { mode, sessions }) => return Ok(Synced { mode, sessions }),
                Some(other) => self.pending.push_back(other),
                None => return Err(LinkError::Timeout("waiting for Sync")),
            }
        }
    }

    /// Send one message.
    pub fn send(&mut self, msg: &ServerMsg) -> Result<(), LinkError> {
        self.send_all(std::slice::from_ref(msg))
    }

    /// Send several messages in one write.
    pub fn send_all(&mut self, msgs: &[ServerMsg]) -> Result<(), LinkError> {
        self.out.clear();
        for msg in msgs {
            encode(msg, &mut self.out).map_err(|e| LinkError::Encode(e.0))?;
        }
        let result = self.stream.write_all(&self.out);
        self.out.clear();
        result.map_err(LinkError::Io)
    }

    /// Wait for the next message from the portal.
    pub fn recv(&mut self) -> Result<PortalMsg, LinkError> {
        if let Some(msg) = self.pending.pop_front() {
            return Ok(msg);
        }
        match self.read_message(None)? {
            Some(msg) => Ok(msg),
            None => Err(LinkError::Timeout("waiting without a timeout")),
        }
    }

    /// Wait at most `timeout` for the next message; `Ok(None)` when none
    /// came (a partial frame stays buffered for the next call).
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Option<PortalMsg>, LinkError> {
        if let Some(msg) = self.pending.pop_front() {
            return Ok(Some(msg));
        }
        // A zero read timeout is an error for the socket: wait a tick instead.
        self.read_message(Some(timeout.max(Duration::from_millis(1))))
    }

    /// Send output to one session.
    pub fn data_out(&mut self, sessid: u64, commands: Vec<Command>) -> Result<(), LinkError> {
        self.send(&ServerMsg::DataOut { sessid, commands })
    }

    /// Send one `text` command to one session.
    pub fn text(&mut self, sessid: u64, text: &str) -> Result<(), LinkError> {
        self.data_out(sessid, vec![Command::text(text)])
    }

    /// (SLOGIN) Tell the portal a session logged in.
    pub fn login(&mut self, session: &Session) -> Result<(), LinkError> {
        self.send(&ServerMsg::Login {
            session: session.get_sync_data(),
        })
    }

    /// (SDISCONN) Close one session, showing `reason` first.
    pub fn disconnect(&mut self, sessid: u64, reason: &str) -> Result<(), LinkError> {
        self.send(&ServerMsg::Disconnect {
            sessid,
            reason: reason.to_owned(),
        })
    }

    /// (SSYNC) Push session records; with `clean`, the portal closes
    /// sessions missing from the list.
    pub fn session_sync(&mut self, sessions: Vec<Session>, clean: bool) -> Result<(), LinkError> {
        self.send(&ServerMsg::SessionSync { sessions, clean })
    }

    /// Ask the portal to restart the game, keeping players connected.
    pub fn request_reload(&mut self) -> Result<(), LinkError> {
        self.send(&ServerMsg::Reload)
    }

    /// Ask the portal to shut everything down.
    pub fn request_shutdown(&mut self) -> Result<(), LinkError> {
        self.send(&ServerMsg::Shutdown)
    }

    /// Decode the next buffered frame, reading from the socket as needed.
    /// `timeout` of `None` blocks; `Ok(None)` means the timeout passed.
    fn read_message(&mut self, timeout: Option<Duration>) -> Result<Option<PortalMsg>, LinkError> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            match self.decode_buffered()? {
                // The heartbeat is answered here, for every game: frames are
                // handled in order, so everything before the ping is done.
                Some(PortalMsg::Ping { seq }) => {
                    self.send(&ServerMsg::Pong { seq })?;
                    continue;
                }
                Some(msg) => return Ok(Some(msg)),
                None => {}
            }
            let left = match deadline {
                None => None,
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => Some(left),
                    _ => return Ok(None),
                },
            };
            if !self.fill(left)? {
                return Ok(None);
            }
        }
    }

    /// One frame out of the buffer, if a whole one is there.
    fn decode_buffered(&mut self) -> Result<Option<PortalMsg>, LinkError> {
        match decode::<PortalMsg>(&self.buf[self.start..], MAX_FRAME) {
            Decoded::NeedMore => Ok(None),
            Decoded::Frame { message, used } => {
                self.start += used;
                if self.start == self.buf.len() {
                    self.buf.clear();
                    self.start = 0;
                }
                Ok(Some(message))
            }
            Decoded::TooLarge { len } => Err(LinkError::BadFrame(format!(
                "frame of {len} bytes is over the {MAX_FRAME} byte limit"
            ))),
            Decoded::Invalid { reason, .. } => Err(LinkError::BadFrame(reason)),
        }
    }

    /// Read once from the socket into the buffer. Returns false when the
    /// read timed out.
    fn fill(&mut self, timeout: Option<Duration>) -> Result<bool, LinkError> {
        if self.read_timeout != timeout {
            self.stream.set_read_timeout(timeout)?;
            self.read_timeout = timeout;
        }
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        let old_len = self.buf.len();
        self.buf.resize(old_len + READ_CHUNK, 0);
        let result = self.stream.read(&mut self.buf[old_len..]);
        let n = match result {
            Ok(n) => n,
            Err(e) => {
                self.buf.truncate(old_len);
                return match e.kind() {
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Ok(false),
                    io::ErrorKind::Interrupted => Ok(true),
                    _ => Err(LinkError::Io(e)),
                };
            }
        };
        self.buf.truncate(old_len + n);
        if n == 0 {
            return Err(LinkError::Closed);
        }
        Ok(true)
    }
}

/// TCP connect to `addr`, retrying until `timeout` has passed.
fn connect_with_retry(addr: &str, timeout: Duration) -> Result<TcpStream, LinkError> {
    let deadline = Instant::now() + timeout;
    loop {
        let error = match try_connect(addr, deadline) {
            Ok(stream) => return Ok(stream),
            Err(e) => e,
        };
        if Instant::now() + RETRY_PAUSE >= deadline {
            return Err(LinkError::Connect {
                addr: addr.to_owned(),
                source: error,
            });
        }
        std::thread::sleep(RETRY_PAUSE);
    }
}

/// One attempt over every address `addr` resolves to.
fn try_connect(addr: &str, deadline: Instant) -> io::Result<TcpStream> {
    let addrs: Vec<SocketAddr> = addr.to_socket_addrs()?.collect();
    let mut last = io::Error::new(io::ErrorKind::InvalidInput, "address resolves to nothing");
    for sock in addrs {
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(10));
        match TcpStream::connect_timeout(&sock, left) {
            Ok(stream) => return Ok(stream),
            Err(e) => last = e,
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::thread;

    const WAIT: Duration = Duration::from_secs(5);

    /// Read one whole frame's bytes (header included) from the fake portal's socket.
    fn read_frame(stream: &mut TcpStream) -> Vec<u8> {
        let mut header = [0u8; 4];
        stream.read_exact(&mut header).unwrap();
        let len = u32::from_be_bytes(header) as usize;
        let mut frame = header.to_vec();
        frame.resize(4 + len, 0);
        stream.read_exact(&mut frame[4..]).unwrap();
        frame
    }

    fn write_msg(stream: &mut TcpStream, msg: &PortalMsg) {
        let mut bytes = Vec::new();
        encode(msg, &mut bytes).unwrap();
        stream.write_all(&bytes).unwrap();
    }

    fn server_msg(frame: &[u8]) -> ServerMsg {
        match decode::<ServerMsg>(frame, MAX_FRAME) {
            Decoded::Frame { message, .. } => message,
            other => panic!("not a server message: {other:?}"),
        }
    }

    /// A fake portal that accepts one link and runs `script` on it.
    fn fake_portal<F>(script: F) -> (String, thread::JoinHandle<()>)
    where
        F: FnOnce(TcpStream) + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let handle = thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            stream.set_read_timeout(Some(WAIT)).unwrap();
            script(stream);
        });
        (addr, handle)
    }

    fn welcome() -> PortalMsg {
        PortalMsg::Welcome {
            version: PROTOCOL_VERSION,
            portal: "test".into(),
        }
    }

    #[test]
    fn handshake_sends_hello_bytes_then_sync_request_and_returns_the_sync() {
        let (addr, portal) = fake_portal(|mut s| {
            let hello = read_frame(&mut s);
            let mut expected = Vec::new();
            encode(
                &ServerMsg::Hello {
                    version: PROTOCOL_VERSION,
                    secret: "pw".into(),
                    name: "demo".into(),
                },
                &mut expected,
            )
            .unwrap();
            assert_eq!(hello, expected);
            write_msg(&mut s, &welcome());
            assert_eq!(server_msg(&read_frame(&mut s)), ServerMsg::SyncRequest);
            // A Connect racing ahead of the Sync reply must not be lost.
            let early = Session::init_session(9, "telnet", "x");
            write_msg(&mut s, &PortalMsg::Connect { session: early });
            let mut anna = Session::init_session(7, "telnet", "x");
            anna.logged_in = true;
            write_msg(
                &mut s,
                &PortalMsg::Sync {
                    mode: StartMode::Reload,
                    sessions: vec![anna],
                },
            );
            let got = server_msg(&read_frame(&mut s));
            assert_eq!(
                got,
                ServerMsg::DataOut {
                    sessid: 7,
                    commands: vec![Command::text("hi")]
                }
            );
            write_msg(&mut s, &PortalMsg::DisconnectAll);
        });
        let (mut link, synced) = GameLink::connect(&addr, "pw", "demo", WAIT).unwrap();
        assert_eq!(synced.mode, StartMode::Reload);
        assert_eq!(synced.sessions.len(), 1);
        assert!(synced.sessions[0].logged_in);
        link.text(7, "hi").unwrap();
        assert!(matches!(link.recv().unwrap(), PortalMsg::Connect { .. }));
        assert_eq!(link.recv().unwrap(), PortalMsg::DisconnectAll);
        portal.join().unwrap();
        assert!(matches!(link.recv(), Err(LinkError::Closed)));
    }

    #[test]
    fn refused_hello_is_a_refused_error_with_the_reason() {
        let (addr, portal) = fake_portal(|mut s| {
            read_frame(&mut s);
            write_msg(
                &mut s,
                &PortalMsg::Refused {
                    reason: "bad secret".into(),
                },
            );
        });
        match GameLink::connect(&addr, "wrong", "demo", WAIT) {
            Err(LinkError::Refused(reason)) => assert_eq!(reason, "bad secret"),
            other => panic!("expected Refused, got {other:?}"),
        }
        portal.join().unwrap();
    }

    #[test]
    fn recv_timeout_returns_none_then_the_frame_split_across_writes() {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let (addr, portal) = fake_portal(move |mut s| {
            read_frame(&mut s);
            write_msg(&mut s, &welcome());
            read_frame(&mut s);
            write_msg(
                &mut s,
                &PortalMsg::Sync {
                    mode: StartMode::Start,
                    sessions: vec![],
                },
            );
            let mut bytes = Vec::new();
            encode(&PortalMsg::Disconnect { sessid: 3 }, &mut bytes).unwrap();
            s.write_all(&bytes[..3]).unwrap();
            rx.recv().unwrap();
            s.write_all(&bytes[3..]).unwrap();
            rx.recv().unwrap();
        });
        let (mut link, synced) = GameLink::connect(&addr, "", "demo", WAIT).unwrap();
        assert_eq!(synced.mode, StartMode::Start);
        let none = link.recv_timeout(Duration::from_millis(50)).unwrap();
        assert_eq!(none, None);
        tx.send(()).unwrap();
        let got = link.recv_timeout(WAIT).unwrap();
        assert_eq!(got, Some(PortalMsg::Disconnect { sessid: 3 }));
        tx.send(()).unwrap();
        portal.join().unwrap();
    }

    #[test]
    fn oversized_frame_is_a_bad_frame_error() {
        let (addr, portal) = fake_portal(|mut s| {
            read_frame(&mut s);
            s.write_all(&[0x7f, 0xff, 0xff, 0xff]).unwrap();
        });
        let err = GameLink::connect(&addr, "", "demo", WAIT).unwrap_err();
        assert!(matches!(err, LinkError::BadFrame(_)), "{err}");
        portal.join().unwrap();
    }

    #[test]
    fn nobody_listening_is_a_connect_error_after_the_timeout() {
        let addr = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().to_string()
        };
        let err = GameLink::connect(&addr, "", "demo", Duration::from_millis(250)).unwrap_err();
        assert!(matches!(err, LinkError::Connect { .. }), "{err}");
        assert!(err.to_string().contains(&addr));
    }
}
