//! Relaying HTTP/1.1 to the game's own web server (RFC 9110 section 7.6,
//! RFC 9112 sections 6-7), sans-IO: the request head the upstream gets,
//! the response head the client gets, and where a message body ends.
//!
//! With `[web] upstream` set (an Evennia game's Django site), the web
//! engine hands every plain request it does not serve itself to the
//! session worker ([`crate::session::relay`]), which connects to the
//! upstream and moves the bytes; this file decides what they say:
//!
//! - [`upstream_head`]: the client's request head with its hop-by-hop
//!   headers dropped (`Connection` and the headers it names, `Keep-Alive`,
//!   `TE`, `Upgrade`, `Expect`, ...), `X-Forwarded-For` / `-Proto` /
//!   `-Host` set to what the portal saw: the client first (as Evennia's
//!   web server reads it), which is the peer itself unless the peer is a
//!   trusted proxy (then the client its chain names, by the rule of
//!   [`crate::protocols::proxy::forwarded_client`]), and
//!   `Connection: close` (one upstream connection per request);
//! - [`parse_response`] and [`client_head`]: the upstream's answer head,
//!   its hop-by-hop headers dropped, and the portal's own `Connection`;
//! - [`BodyReader`]: where a body framed by `Content-Length`, chunked
//!   coding or the end of the connection stops, without copying it (the
//!   bytes are relayed as they came).
//!
//! ```
//! use portal::protocols::http::{parse_request, Parsed};
//! use portal::protocols::http_relay::{upstream_head, Forwarding};
//! let bytes = b"GET /webclient HTTP/1.1\r\nHost: mud.example\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n";
//! let Parsed::Request(request, _) = parse_request(bytes, 8192) else { panic!() };
//! let peer = "203.0.113.9".parse().unwrap();
//! let forwarding = Forwarding { peer, client: peer, peer_trusted: false, secure: false };
//! let head = String::from_utf8(upstream_head(&request, &forwarding)).unwrap();
//! assert!(head.starts_with("GET /webclient HTTP/1.1\r\nHost: mud.example\r\n"));
//! assert!(head.contains("X-Forwarded-For: 203.0.113.9\r\n"));
//! assert!(!head.contains("6.6.6.6"));
//! ```

use crate::protocols::http::Request;
use std::net::IpAddr;

/// Most headers an upstream answer may carry.
const MAX_RESPONSE_HEADERS: usize = 96;
/// Longest chunk-size line (with extensions) or trailer line.
const MAX_CHUNK_LINE: usize = 4096;

/// Headers that belong to one hop, never relayed (RFC 9110 section 7.6.1;
/// `Expect` is answered by the portal itself, `Proxy-*` are the client's
/// business with the portal).
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "upgrade",
    "expect",
];

/// Who sent a request, as the portal saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forwarding {
    /// The connection's peer (after any PROXY header).
    pub peer: IpAddr,
    /// The client: the peer, or from a trusted peer the client its
    /// `Forwarded` / `X-Forwarded-For` chain names.
    pub client: IpAddr,
    /// The peer is a `[proxy] trusted_proxies` address: its own
    /// `X-Forwarded-*` headers are kept, the peer appended.
    pub peer_trusted: bool,
    /// The request came over TLS.
    pub secure: bool,
}

/// How a request's body is framed, or why it cannot be relayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestBody {
    None,
    Length(u64),
    Chunked,
    /// A `Content-Length` that is not one number (400).
    BadLength,
    /// A transfer coding other than chunked last (501).
    UnknownCoding,
}

/// Read the request's body framing (RFC 9112 section 6.3).
pub fn request_body(request: &Request) -> RequestBody {
    let codings: Vec<&str> = request
        .headers
        .iter()
        .filter(|(k, _)| k == "transfer-encoding")
        .flat_map(|(_, v)| v.split(','))
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    if let Some(last) = codings.last() {
        // chunked must be the final coding; and alone: a coded body the
        // upstream would have to decode twice is not worth relaying.
        return if codings.len() == 1 && last.eq_ignore_ascii_case("chunked") {
            RequestBody::Chunked
        } else {
            RequestBody::UnknownCoding
        };
    }
    let lengths: Vec<&str> = request
        .headers
        .iter()
        .filter(|(k, _)| k == "content-length")
        .flat_map(|(_, v)| v.split(','))
        .map(str::trim)
        .collect();
    let Some(first) = lengths.first() else {
        return RequestBody::None;
    };
    // Repeated lengths must agree (RFC 9110 section 8.6).
    if lengths.iter().any(|l| l != first) {
        return RequestBody::BadLength;
    }
    match parse_length(first) {
        Some(0) => RequestBody::None,
        Some(n) => RequestBody::Length(n),
        None => RequestBody::BadLength,
    }
}

/// Digits only (no sign, no spaces), as RFC 9110 has it.
fn parse_length(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Whether the client asked for `100 Continue` before sending its body.
pub fn expects_continue(request: &Request) -> bool {
    request.header_has_token("expect", "100-continue")
}

/// The tokens a `Connection` header lists (names of more hop-by-hop
/// headers), lower case.
fn connection_tokens<'h>(headers: impl Iterator<Item = (&'h str, &'h str)>) -> Vec<String> {
    headers
        .filter(|(name, _)| name.eq_ignore_ascii_case("connection"))
        .flat_map(|(_, value)| value.split(','))
        .map(|token| token.trim().to_ascii_lowercase())
        .filter(|token| !token.is_empty())
        .collect()
}

fn is_hop_by_hop(name: &str, named: &[String]) -> bool {
    let lower = name.to_ascii_lowercase();
    HOP_BY_HOP.contains(&lower.as_str()) || named.contains(&lower)
}

/// The head to send the upstream for `request`.
pub fn upstream_head(request: &Request, from: &Forwarding) -> Vec<u8> {
    let pairs = request
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()));
    let named = connection_tokens(pairs);
    let forwarded_names = [
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
        "forwarded",
    ];
    let target = match &request.query {
        Some(query) => format!("{}?{query}", request.path),
        None => request.path.clone(),
    };
    let mut head = format!("{} {target} HTTP/1.1\r\n", request.method);
    for (name, value) in &request.headers {
        if is_hop_by_hop(name, &named) || forwarded_names.contains(&name.as_str()) {
            continue;
        }
        head.push_str(&format!("{}: {value}\r\n", header_case(name)));
    }
    for (name, value) in forwarded_headers(request, from) {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("Connection: close\r\n\r\n");
    head.into_bytes()
}

/// `X-Forwarded-For`, `-Proto`, `-Host` as the upstream should see them
/// (a client's own `Forwarded` is never relayed).
fn forwarded_headers(request: &Request, from: &Forwarding) -> Vec<(&'static str, String)> {
    let peer = from.peer.to_canonical();
    let client = from.client.to_canonical();
    let scheme = if from.secure { "https" } else { "http" };
    let mut out = Vec::new();
    if from.peer_trusted && client != peer {
        out.push(("X-Forwarded-For", format!("{client}, {peer}")));
    } else {
        out.push(("X-Forwarded-For", peer.to_string()));
    }
    let proto = request
        .header("x-forwarded-proto")
        .filter(|_| from.peer_trusted);
    out.push(("X-Forwarded-Proto", proto.unwrap_or(scheme).to_owned()));
    let host = request
        .header("x-forwarded-host")
        .filter(|_| from.peer_trusted);
    if let Some(host) = host.or(request.header("host")) {
        out.push(("X-Forwarded-Host", host.to_owned()));
    }
    out
}

/// `x-forwarded-for` → `X-Forwarded-For` (names are case-insensitive;
/// this is only for people reading a capture).
fn header_case(name: &str) -> String {
    name.split('-')
        .map(|part| {
            let mut chars = part.chars();
            match chars.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}

/// An upstream answer's head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    pub status: u16,
    pub reason: String,
    /// Names as sent (their case kept), values as bytes.
    pub headers: Vec<(String, Vec<u8>)>,
}

impl ResponseHead {
    fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.headers
            .iter()
            .filter(move |(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    /// How the body that follows is framed, for a request made with
    /// `method` (RFC 9112 section 6.3).
    pub fn body(&self, method: &str) -> ResponseBody {
        if method == "HEAD" || self.status < 200 || self.status == 204 || self.status == 304 {
            return ResponseBody::Length(0);
        }
        let chunked = self
            .values("transfer-encoding")
            .flat_map(|v| v.split(|&b| b == b','))
            .map(|c| String::from_utf8_lossy(c).trim().to_ascii_lowercase())
            .last()
            .is_some_and(|last| last == "chunked");
        if chunked {
            return ResponseBody::Chunked;
        }
        if self.values("transfer-encoding").next().is_some() {
            return ResponseBody::UntilClose;
        }
        let length = self
            .values("content-length")
            .next()
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(|v| parse_length(v.trim()));
        match length {
            Some(n) => ResponseBody::Length(n),
            None => ResponseBody::UntilClose,
        }
    }
}

/// How an answer's body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseBody {
    Length(u64),
    Chunked,
    /// It ends when the upstream closes: the client's connection closes
    /// after it too.
    UntilClose,
}

/// What [`parse_response`] made of the upstream's bytes so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParsedResponse {
    Incomplete,
    /// A head, and how many bytes it took.
    Head(ResponseHead, usize),
    /// Longer than `max_bytes`, or not HTTP: the reason, for the log.
    Bad(String),
}

/// Parse the upstream answer head at the start of `input`.
pub fn parse_response(input: &[u8], max_bytes: usize) -> ParsedResponse {
    let mut headers = [httparse::EMPTY_HEADER; MAX_RESPONSE_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    match response.parse(input) {
        Ok(httparse::Status::Partial) if input.len() >= max_bytes => {
            ParsedResponse::Bad("answer head too large".into())
        }
        Ok(httparse::Status::Partial) => ParsedResponse::Incomplete,
        Ok(httparse::Status::Complete(used)) => {
            let head = ResponseHead {
                status: response.code.unwrap_or(502),
                reason: response.reason.unwrap_or("").to_owned(),
                headers: response
                    .headers
                    .iter()
                    .map(|h| (h.name.to_owned(), h.value.to_vec()))
                    .collect(),
            };
            ParsedResponse::Head(head, used)
        }
        Err(e) => ParsedResponse::Bad(format!("not an HTTP answer: {e}")),
    }
}

/// The head to send the client for `head`: the upstream's hop-by-hop
/// headers dropped, the portal's `Connection` added.
pub fn client_head(head: &ResponseHead, keep_alive: bool) -> Vec<u8> {
    let pairs = head.headers.iter().filter_map(|(k, v)| {
        let value = std::str::from_utf8(v).ok()?;
        Some((k.as_str(), value))
    });
    let named = connection_tokens(pairs);
    let mut bytes = format!("HTTP/1.1 {} {}\r\n", head.status, head.reason).into_bytes();
    for (name, value) in &head.headers {
        if is_hop_by_hop(name, &named) {
            continue;
        }
        bytes.extend_from_slice(name.as_bytes());
        bytes.extend_from_slice(b": ");
        bytes.extend_from_slice(value);
        bytes.extend_from_slice(b"\r\n");
    }
    let connection = if keep_alive { "keep-alive" } else { "close" };
    bytes.extend_from_slice(format!("Connection: {connection}\r\n\r\n").as_bytes());
    bytes
}

/// Why a body reader stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyState {
    /// More of the body is to come.
    More,
    /// The body is complete.
    Done,
    /// The chunked coding is broken; the reason.
    Bad(&'static str),
}

/// Where a body stops, fed the bytes as they come: each
/// [`BodyReader::advance`] says how many of the given bytes belong to the
/// body (to be relayed as they are); an incomplete chunk-size or trailer
/// line uses nothing, so the caller keeps it and feeds it again with more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyReader {
    state: Chunk,
    /// Body bytes seen (the framing included).
    seen: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// `Content-Length`: this many bytes left.
    Length(u64),
    /// Until the connection ends.
    UntilClose,
    /// Chunked: at a chunk-size line.
    Size,
    /// Chunked: this many data bytes left, then CRLF.
    Data(u64),
    /// Chunked: the CRLF after a chunk's data (bytes of it left).
    DataEnd(u8),
    /// Chunked: trailer lines, until an empty one.
    Trailer,
    Done,
}

impl BodyReader {
    pub fn length(n: u64) -> BodyReader {
        let state = if n == 0 {
            Chunk::Done
        } else {
            Chunk::Length(n)
        };
        BodyReader { state, seen: 0 }
    }

    pub fn chunked() -> BodyReader {
        BodyReader {
            state: Chunk::Size,
            seen: 0,
        }
    }

    pub fn until_close() -> BodyReader {
        BodyReader {
            state: Chunk::UntilClose,
            seen: 0,
        }
    }

    /// A reader for a response body framed as `body`.
    pub fn for_response(body: ResponseBody) -> BodyReader {
        match body {
            ResponseBody::Length(n) => BodyReader::length(n),
            ResponseBody::Chunked => BodyReader::chunked(),
            ResponseBody::UntilClose => BodyReader::until_close(),
        }
    }

    /// Body bytes seen so far (chunk framing included).
    pub fn seen(&self) -> u64 {
        self.seen
    }

    /// Whether the body ends when the connection does.
    pub fn ends_at_close(&self) -> bool {
        self.state == Chunk::UntilClose
    }

    /// Whether the body is complete.
    pub fn is_done(&self) -> bool {
        self.state == Chunk::Done
    }

    /// How many bytes at the start of `input` belong to the body, and
    /// whether it goes on.
    pub fn advance(&mut self, input: &[u8]) -> (usize, BodyState) {
        let mut used = 0;
        loop {
            let rest = &input[used..];
            let step = match self.state {
                Chunk::Done => break,
                Chunk::UntilClose => {
                    self.seen += rest.len() as u64;
                    used = input.len();
                    break;
                }
                _ if rest.is_empty() => break,
                Chunk::Length(left) => {
                    let take = left.min(rest.len() as u64);
                    self.state = if take == left {
                        Chunk::Done
                    } else {
                        Chunk::Length(left - take)
                    };
                    take as usize
                }
                Chunk::Size => match httparse::parse_chunk_size(rest) {
                    Ok(httparse::Status::Complete((line, 0))) => {
                        self.state = Chunk::Trailer;
                        line
                    }
                    Ok(httparse::Status::Complete((line, size))) => {
                        self.state = Chunk::Data(size);
                        line
                    }
                    Ok(httparse::Status::Partial) if rest.len() > MAX_CHUNK_LINE => {
                        return self.bad(used, "chunk-size line too long");
                    }
                    Ok(httparse::Status::Partial) => break,
                    Err(_) => return self.bad(used, "bad chunk-size line"),
                },
                Chunk::Data(left) => {
                    let take = left.min(rest.len() as u64);
                    self.state = if take == left {
                        Chunk::DataEnd(2)
                    } else {
                        Chunk::Data(left - take)
                    };
                    take as usize
                }
                Chunk::DataEnd(left) => {
                    let expected: &[u8] = if left == 2 { b"\r\n" } else { b"\n" };
                    if rest[0] != expected[0] {
                        return self.bad(used, "chunk data not followed by CRLF");
                    }
                    self.state = if left == 2 {
                        Chunk::DataEnd(1)
                    } else {
                        Chunk::Size
                    };
                    1
                }
                Chunk::Trailer => match rest.iter().position(|&b| b == b'\n') {
                    Some(end) => {
                        let line = &rest[..end];
                        if line.is_empty() || line == b"\r" {
                            self.state = Chunk::Done;
                        }
                        end + 1
                    }
                    None if rest.len() > MAX_CHUNK_LINE => {
                        return self.bad(used, "trailer line too long");
                    }
                    None => break,
                },
            };
            used += step;
            self.seen += step as u64;
        }
        let state = if self.state == Chunk::Done {
            BodyState::Done
        } else {
            BodyState::More
        };
        (used, state)
    }

    fn bad(&mut self, used: usize, why: &'static str) -> (usize, BodyState) {
        self.state = Chunk::Done;
        (used, BodyState::Bad(why))
    }
}

#[cfg(test)]
mod tests;
