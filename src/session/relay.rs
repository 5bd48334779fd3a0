//! The blocking HTTP/1.1 relay to the game's own web server (`[web]
//! upstream`, e.g. Evennia's Django site on its internal port), run in the
//! web connection's worker thread when the web engine hands out a
//! [`crate::protocols::websocket::WebEvent::Relay`].
//!
//! ```text
//!  client ─► request head (already parsed) ─► http_relay::upstream_head ─► upstream (new TCP connection)
//!         ─► body, as it arrives (BodyReader finds its end; ≤ upstream_max_body_bytes,
//!            whole within upstream_body_timeout_secs) ───────────────────► upstream
//!  client ◄─ http_relay::client_head ◄─ answer head (within upstream_timeout_secs)
//!         ◄─ body, READ_CHUNK at a time (written to the client before more is read)
//! ```
//!
//! What the bytes say is decided in [`crate::protocols::http_relay`]; this
//! file only moves them: one upstream connection per request
//! (`Connection: close`), the client's connection kept alive when the
//! answer's end can be told. The upstream refusing or breaking is a 502;
//! not answering in time a 504; a body too large 413, too slow 408. No
//! other session is touched: each relay runs in its own connection's
//! worker, with every wait bounded.

use crate::protocols::http::{Request, Response};
use crate::protocols::http_relay::{
    client_head, expects_continue, parse_response, request_body, upstream_head, BodyReader,
    BodyState, Forwarding, ParsedResponse, RequestBody, ResponseBody,
};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Bytes read from the upstream at a time (the relay's whole buffer).
const READ_CHUNK: usize = 16 << 10;
/// Longest answer head accepted from the upstream.
const MAX_ANSWER_HEAD: usize = 64 << 10;

/// How a wait on the client ended badly.
#[derive(Debug)]
pub enum ClientEnd {
    TimedOut,
    /// The client closed or broke its connection.
    Gone(String),
}

/// The client's side of the connection, as the worker drives it.
pub trait Client {
    /// Append more of the client's bytes to `buf`, waiting until
    /// `deadline` for some.
    fn read_some(&mut self, buf: &mut Vec<u8>, deadline: Instant) -> Result<(), ClientEnd>;
    /// Write all of `bytes`, waiting until `deadline` for the socket.
    fn write_all(&mut self, bytes: &[u8], deadline: Instant) -> Result<(), ClientEnd>;
}

/// `[web]`'s relay settings.
#[derive(Debug, Clone)]
pub struct RelaySettings {
    pub upstream: SocketAddr,
    pub connect_timeout: Duration,
    pub timeout: Duration,
    pub body_timeout: Duration,
    pub max_body_bytes: u64,
    /// The connection may carry another request after this one.
    pub may_keep_alive: bool,
}

/// How a relay ended.
#[derive(Debug)]
pub struct Outcome {
    /// The status the client got (0: none, the client left).
    pub status: u16,
    /// The connection may carry another request.
    pub keep_alive: bool,
    /// What the client sent past this request (the next one's start).
    pub leftover: Vec<u8>,
    /// The client is gone: close without writing more.
    pub client_gone: bool,
    /// Body bytes relayed to the client.
    pub bytes_out: u64,
}

/// Relay one request; `input` holds what was read past its head.
pub fn relay(
    client: &mut dyn Client,
    request: &Request,
    input: Vec<u8>,
    settings: &RelaySettings,
    from: &Forwarding,
) -> Outcome {
    let mut relay = Relay {
        client,
        request,
        settings,
        input,
        started: Instant::now(),
    };
    match relay.run(from) {
        Ok(outcome) => outcome,
        Err(Failure::Answer(status, text)) => relay.refuse(status, text),
        Err(Failure::ClientGone(why)) => {
            log::debug!("web relay: {} {}: {why}", request.method, request.path);
            Outcome {
                status: 0,
                keep_alive: false,
                leftover: Vec::new(),
                client_gone: true,
                bytes_out: 0,
            }
        }
        Err(Failure::Cut(status, bytes_out)) => Outcome {
            status,
            keep_alive: false,
            leftover: Vec::new(),
            client_gone: false,
            bytes_out,
        },
    }
}

/// Why a relay stopped early.
enum Failure {
    /// Answer the client with this status and text, then close.
    Answer(u16, &'static str),
    ClientGone(String),
    /// The answer had started (with this status) and broke off: close.
    Cut(u16, u64),
}

impl From<ClientEnd> for Failure {
    fn from(end: ClientEnd) -> Failure {
        match end {
            ClientEnd::TimedOut => Failure::ClientGone("client too slow to read".into()),
            ClientEnd::Gone(why) => Failure::ClientGone(why),
        }
    }
}

struct Relay<'a> {
    client: &'a mut dyn Client,
    request: &'a Request,
    settings: &'a RelaySettings,
    /// Client bytes not yet relayed.
    input: Vec<u8>,
    started: Instant,
}

impl Relay<'_> {
    fn run(&mut self, from: &Forwarding) -> Result<Outcome, Failure> {
        let mut body = self.body_reader()?;
        if expects_continue(self.request) && !body.is_done() {
            // Answered here: the upstream never sees the Expect.
            let deadline = Instant::now() + self.settings.timeout;
            self.client
                .write_all(b"HTTP/1.1 100 Continue\r\n\r\n", deadline)?;
        }
        let mut upstream = self.connect()?;
        let head = upstream_head(self.request, from);
        write_upstream(&mut upstream, &head, self.settings.timeout)?;
        self.send_body(&mut body, &mut upstream)?;
        let (answer, rest) = self.read_answer_head(&mut upstream)?;
        let framing = answer.body(&self.request.method);
        let keep_alive = self.settings.may_keep_alive
            && self.request.keep_alive()
            && framing != ResponseBody::UntilClose;
        let deadline = Instant::now() + self.settings.timeout;
        self.client
            .write_all(&client_head(&answer, keep_alive), deadline)?;
        let reader = BodyReader::for_response(framing);
        let bytes_out = self.send_answer(answer.status, reader, rest, &mut upstream)?;
        Ok(Outcome {
            status: answer.status,
            keep_alive,
            leftover: std::mem::take(&mut self.input),
            client_gone: false,
            bytes_out,
        })
    }

    /// The request body's reader, or why it cannot be relayed.
    fn body_reader(&self) -> Result<BodyReader, Failure> {
        match request_body(self.request) {
            RequestBody::None => Ok(BodyReader::length(0)),
            RequestBody::Length(n) if n > self.settings.max_body_bytes => {
                Err(Failure::Answer(413, "The request body is too large."))
            }
            RequestBody::Length(n) => Ok(BodyReader::length(n)),
            RequestBody::Chunked => Ok(BodyReader::chunked()),
            RequestBody::BadLength => Err(Failure::Answer(400, "Content-Length is not a number.")),
            RequestBody::UnknownCoding => Err(Failure::Answer(
                501,
                "Only a chunked or Content-Length body is relayed.",
            )),
        }
    }

    fn connect(&self) -> Result<TcpStream, Failure> {
        let addr = self.settings.upstream;
        match TcpStream::connect_timeout(&addr, self.settings.connect_timeout) {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                Ok(stream)
            }
            Err(e) if is_timeout(&e) => {
                log::warn!("web relay: {addr} did not accept a connection in time");
                Err(Failure::Answer(
                    504,
                    "The game's web server is not answering.",
                ))
            }
            Err(e) => {
                log::warn!("web relay: cannot reach {addr}: {e}");
                Err(Failure::Answer(
                    502,
                    "The game's web server is not running.",
                ))
            }
        }
    }

    /// The body, relayed as it arrives, bounded in size and time.
    fn send_body(
        &mut self,
        body: &mut BodyReader,
        upstream: &mut TcpStream,
    ) -> Result<(), Failure> {
        let deadline = self.started + self.settings.body_timeout;
        loop {
            let (used, state) = body.advance(&self.input);
            if body.seen() > self.settings.max_body_bytes {
                return Err(Failure::Answer(413, "The request body is too large."));
            }
            if used > 0 {
                write_upstream(upstream, &self.input[..used], self.settings.timeout)?;
                self.input.drain(..used);
            }
            match state {
                BodyState::Done => return Ok(()),
                BodyState::Bad(why) => {
                    log::info!("web relay: bad request body: {why}");
                    return Err(Failure::Answer(
                        400,
                        "The request body's chunked coding is broken.",
                    ));
                }
                BodyState::More => {}
            }
            match self.client.read_some(&mut self.input, deadline) {
                Ok(()) => {}
                Err(ClientEnd::TimedOut) => {
                    return Err(Failure::Answer(408, "The request body took too long."));
                }
                Err(ClientEnd::Gone(why)) => return Err(Failure::ClientGone(why)),
            }
        }
    }

    /// The upstream's answer head (interim 1xx answers skipped), and the
    /// bytes read past it.
    fn read_answer_head(
        &mut self,
        upstream: &mut TcpStream,
    ) -> Result<(crate::protocols::http_relay::ResponseHead, Vec<u8>), Failure> {
        let deadline = Instant::now() + self.settings.timeout;
        let mut answer = Vec::new();
        loop {
            match parse_response(&answer, MAX_ANSWER_HEAD) {
                ParsedResponse::Head(head, used) if (100..200).contains(&head.status) => {
                    if head.status == 101 {
                        log::warn!("web relay: the upstream switched protocols; not relayed");
                        return Err(Failure::Answer(
                            502,
                            "The game's web server answered badly.",
                        ));
                    }
                    answer.drain(..used);
                }
                ParsedResponse::Head(head, used) => {
                    answer.drain(..used);
                    return Ok((head, answer));
                }
                ParsedResponse::Bad(why) => {
                    log::warn!("web relay: {why}");
                    return Err(Failure::Answer(
                        502,
                        "The game's web server answered badly.",
                    ));
                }
                ParsedResponse::Incomplete => {}
            }
            match read_upstream(upstream, &mut answer, deadline) {
                Ok(0) => {
                    log::warn!("web relay: the upstream closed before answering");
                    return Err(Failure::Answer(502, "The game's web server broke off."));
                }
                Ok(_) => {}
                Err(e) if is_timeout(&e) => {
                    let path = &self.request.path;
                    log::warn!(
                        "web relay: no answer for {path} in {:?}",
                        self.settings.timeout
                    );
                    return Err(Failure::Answer(
                        504,
                        "The game's web server is not answering.",
                    ));
                }
                Err(e) => {
                    log::warn!("web relay: reading the answer failed: {e}");
                    return Err(Failure::Answer(502, "The game's web server broke off."));
                }
            }
        }
    }

    /// The answer's body, READ_CHUNK at a time; the body bytes relayed.
    fn send_answer(
        &mut self,
        status: u16,
        mut reader: BodyReader,
        mut pending: Vec<u8>,
        upstream: &mut TcpStream,
    ) -> Result<u64, Failure> {
        loop {
            let (used, state) = reader.advance(&pending);
            if used > 0 {
                let deadline = Instant::now() + self.settings.timeout;
                self.client.write_all(&pending[..used], deadline)?;
                pending.drain(..used);
            }
            match state {
                BodyState::Done => return Ok(reader.seen()),
                BodyState::Bad(why) => {
                    log::warn!("web relay: the answer's body is broken ({why}); closing");
                    return Err(Failure::Cut(status, reader.seen()));
                }
                BodyState::More => {}
            }
            let deadline = Instant::now() + self.settings.timeout;
            match read_upstream(upstream, &mut pending, deadline) {
                Ok(0) if reader.ends_at_close() => {
                    return Ok(reader.seen());
                }
                Ok(0) => {
                    log::warn!("web relay: the upstream cut its answer short; closing");
                    return Err(Failure::Cut(status, reader.seen()));
                }
                Ok(_) => {}
                Err(e) => {
                    log::warn!("web relay: the answer stalled or broke ({e}); closing");
                    return Err(Failure::Cut(status, reader.seen()));
                }
            }
        }
    }

    /// Answer the client with an error page and close.
    fn refuse(&mut self, status: u16, text: &str) -> Outcome {
        let response = Response::error(status, text);
        let bytes = response.to_bytes(self.request.method == "HEAD");
        let deadline = Instant::now() + self.settings.timeout;
        let sent = self.client.write_all(&bytes, deadline).is_ok();
        let path = &self.request.path;
        log::info!("web relay: {} {path} → {status}", self.request.method);
        Outcome {
            status,
            keep_alive: false,
            leftover: Vec::new(),
            client_gone: !sent,
            bytes_out: 0,
        }
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
    )
}

fn write_upstream(
    upstream: &mut TcpStream,
    bytes: &[u8],
    timeout: Duration,
) -> Result<(), Failure> {
    let _ = upstream.set_write_timeout(Some(timeout));
    upstream.write_all(bytes).map_err(|e| {
        if is_timeout(&e) {
            log::warn!("web relay: the upstream stopped taking the request");
            Failure::Answer(504, "The game's web server is not answering.")
        } else {
            log::warn!("web relay: sending the request failed: {e}");
            Failure::Answer(502, "The game's web server broke off.")
        }
    })
}

/// One read of at most READ_CHUNK bytes, appended to `buf`, by `deadline`.
fn read_upstream(
    upstream: &mut TcpStream,
    buf: &mut Vec<u8>,
    deadline: Instant,
) -> io::Result<usize> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        upstream.set_read_timeout(Some(left))?;
        let start = buf.len();
        buf.resize(start + READ_CHUNK, 0);
        let read = upstream.read(&mut buf[start..]);
        buf.truncate(start + *read.as_ref().unwrap_or(&0));
        match read {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            other => return other,
        }
    }
}
