//! The PROXY protocol (versions 1 and 2): how a load balancer such as
//! HAProxy tells the portal the real client address at the start of a
//! connection it forwards. Pure: bytes in, [`Parsed`] out.
//!
//! Version 1 is one text line, `PROXY TCP4 <src> <dst> <sport> <dport>\r\n`
//! (at most 107 bytes); version 2 is a 16-byte binary head (a 12-byte
//! signature, version and command, family, length) followed by the
//! addresses and optional TLVs. [`parse`] never looks past the end of the
//! header, and while the header is incomplete it says how many more bytes
//! are needed at least, so the worker can read exactly that and leave
//! what follows (a TLS ClientHello, telnet input) unread in the socket.
//!
//! Also here, as pure functions for the worker: [`HeaderReader`] (the
//! header's deadline, with the clock passed in), [`in_networks`] (the
//! `proxy.trusted_proxies` check) and [`forwarded_client`] (the client
//! behind `X-Forwarded-For` / `Forwarded` from trusted proxies).
//!
//! Written here rather than taken from a crate: the crates at hand parse a
//! complete buffer and report "incomplete" without saying how much more is
//! needed, which would force reading past the header; this parser is small
//! and tested against the specification's examples.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

/// The version 2 signature.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// The version 1 signature.
const V1_SIGNATURE: &[u8] = b"PROXY ";
/// The longest version 1 line, CR LF included.
const V1_MAX: usize = 107;
/// The shortest version 1 line (`PROXY UNKNOWN\r\n`).
const V1_MIN: usize = 15;
/// The version 2 fixed head.
const V2_HEAD: usize = 16;

/// What [`parse`] made of the bytes so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// Not a whole header yet: at least `need` more bytes are needed, and
    /// reading exactly `need` never reads past the header.
    Incomplete { need: usize },
    /// A whole header, the first `len` bytes of the input.
    Header(Header),
    /// Not a valid PROXY header.
    Invalid(ProxyError),
}

/// A parsed header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Its length in bytes.
    pub len: usize,
    /// 1 or 2.
    pub version: u8,
    /// The client's address; `None` for `UNKNOWN` (v1), a `LOCAL` command
    /// or an unspecified or Unix family (v2): the connection's own address
    /// stands (a proxy's health check).
    pub source: Option<SocketAddr>,
}

/// Why a header was refused, or never came.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxyError {
    /// The first bytes are neither signature.
    NoSignature,
    /// A version 1 line longer than 107 bytes.
    TooLong,
    /// A version 1 line that does not follow the format.
    BadLine(&'static str),
    /// A version 2 head with a bad version, command, family or length.
    BadBinary(&'static str),
    /// The connection closed before the header was whole.
    Closed,
    /// The header did not arrive before its deadline.
    TimedOut(Duration),
}

impl fmt::Display for ProxyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProxyError::NoSignature => write!(f, "no PROXY header (the first bytes are not one)"),
            ProxyError::TooLong => write!(f, "PROXY v1 line longer than {V1_MAX} bytes"),
            ProxyError::BadLine(why) => write!(f, "malformed PROXY v1 line: {why}"),
            ProxyError::BadBinary(why) => write!(f, "malformed PROXY v2 header: {why}"),
            ProxyError::Closed => write!(f, "closed before its PROXY header was complete"),
            ProxyError::TimedOut(limit) => {
                write!(f, "no complete PROXY header within {limit:?}")
            }
        }
    }
}

/// Parse a PROXY header at the start of `bytes`.
pub fn parse(bytes: &[u8]) -> Parsed {
    let Some(&first) = bytes.first() else {
        return Parsed::Incomplete { need: 1 };
    };
    let signature: &[u8] = if first == b'P' {
        V1_SIGNATURE
    } else {
        &V2_SIGNATURE
    };
    let seen = bytes.len().min(signature.len());
    if bytes[..seen] != signature[..seen] {
        return Parsed::Invalid(ProxyError::NoSignature);
    }
    if first == b'P' {
        parse_v1(bytes)
    } else {
        parse_v2(bytes)
    }
}

fn parse_v1(bytes: &[u8]) -> Parsed {
    let window = &bytes[..bytes.len().min(V1_MAX)];
    // The first CR or LF ends the line: an LF first is refused at once,
    // whatever follows, so a prefix and the whole input agree.
    let Some(cr) = window.iter().position(|&b| b == b'\r' || b == b'\n') else {
        if window.len() >= V1_MAX {
            return Parsed::Invalid(ProxyError::TooLong);
        }
        let need = V1_MIN.saturating_sub(window.len()).max(1);
        return Parsed::Incomplete { need };
    };
    if window[cr] == b'\n' {
        return Parsed::Invalid(ProxyError::BadLine("LF without CR"));
    }
    match window.get(cr + 1) {
        None if cr + 1 >= V1_MAX => return Parsed::Invalid(ProxyError::TooLong),
        None => return Parsed::Incomplete { need: 1 },
        Some(b'\n') => {}
        Some(_) => return Parsed::Invalid(ProxyError::BadLine("CR not followed by LF")),
    }
    match v1_source(&window[..cr]) {
        Ok(source) => Parsed::Header(Header {
            len: cr + 2,
            version: 1,
            source,
        }),
        Err(why) => Parsed::Invalid(ProxyError::BadLine(why)),
    }
}

/// The source address of a v1 line (without its CR LF).
fn v1_source(line: &[u8]) -> Result<Option<SocketAddr>, &'static str> {
    if !line.iter().all(|b| (0x20..0x7f).contains(b)) {
        return Err("not printable ASCII");
    }
    let text = std::str::from_utf8(line).map_err(|_| "not ASCII")?;
    let mut fields = text.split(' ');
    fields.next(); // "PROXY", checked with the signature
    let protocol = fields.next().ok_or("no protocol")?;
    if protocol == "UNKNOWN" {
        return Ok(None);
    }
    let words: Vec<&str> = fields.collect();
    let [src, dst, sport, dport] = words[..] else {
        return Err("needs protocol, two addresses and two ports");
    };
    let (src, _dst): (IpAddr, IpAddr) = match protocol {
        "TCP4" => (
            IpAddr::V4(src.parse::<Ipv4Addr>().map_err(|_| "bad IPv4 source")?),
            IpAddr::V4(
                dst.parse::<Ipv4Addr>()
                    .map_err(|_| "bad IPv4 destination")?,
            ),
        ),
        "TCP6" => (
            IpAddr::V6(src.parse::<Ipv6Addr>().map_err(|_| "bad IPv6 source")?),
            IpAddr::V6(
                dst.parse::<Ipv6Addr>()
                    .map_err(|_| "bad IPv6 destination")?,
            ),
        ),
        _ => return Err("protocol is not TCP4, TCP6 or UNKNOWN"),
    };
    let sport = v1_port(sport)?;
    v1_port(dport)?;
    Ok(Some(SocketAddr::new(src, sport)))
}

fn v1_port(text: &str) -> Result<u16, &'static str> {
    let digits = !text.is_empty() && text.len() <= 5 && text.bytes().all(|b| b.is_ascii_digit());
    let leading_zero = text.len() > 1 && text.starts_with('0');
    if !digits || leading_zero {
        return Err("bad port");
    }
    text.parse().map_err(|_| "bad port")
}

fn parse_v2(bytes: &[u8]) -> Parsed {
    if bytes.len() < V2_HEAD {
        return Parsed::Incomplete {
            need: V2_HEAD - bytes.len(),
        };
    }
    let version_command = bytes[12];
    if version_command >> 4 != 2 {
        return Parsed::Invalid(ProxyError::BadBinary("version is not 2"));
    }
    let local = match version_command & 0x0f {
        0 => true,
        1 => false,
        _ => return Parsed::Invalid(ProxyError::BadBinary("command is not LOCAL or PROXY")),
    };
    let family = bytes[13];
    let len = V2_HEAD + usize::from(u16::from_be_bytes([bytes[14], bytes[15]]));
    let needed = match family >> 4 {
        0 => 0,
        1 => 12,
        2 => 36,
        3 => 216,
        _ => return Parsed::Invalid(ProxyError::BadBinary("unknown address family")),
    };
    if !matches!(family & 0x0f, 0 | 1) {
        return Parsed::Invalid(ProxyError::BadBinary("transport is not a stream"));
    }
    if len - V2_HEAD < needed {
        return Parsed::Invalid(ProxyError::BadBinary("too short for its addresses"));
    }
    if bytes.len() < len {
        return Parsed::Incomplete {
            need: len - bytes.len(),
        };
    }
    let body = &bytes[V2_HEAD..len];
    let source = if local { None } else { v2_source(family, body) };
    Parsed::Header(Header {
        len,
        version: 2,
        source,
    })
}

/// The source address in a v2 body whose length was checked.
fn v2_source(family: u8, body: &[u8]) -> Option<SocketAddr> {
    match family >> 4 {
        1 => {
            let ip: [u8; 4] = body.get(0..4)?.try_into().ok()?;
            let port = u16::from_be_bytes(body.get(8..10)?.try_into().ok()?);
            Some(SocketAddr::new(IpAddr::from(ip), port))
        }
        2 => {
            let ip: [u8; 16] = body.get(0..16)?.try_into().ok()?;
            let port = u16::from_be_bytes(body.get(32..34)?.try_into().ok()?);
            Some(SocketAddr::new(IpAddr::from(ip), port))
        }
        _ => None,
    }
}

/// What to do next while reading a header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Read at most this many bytes, waiting no later than the deadline.
    Read(usize),
    /// The header is whole; what followed it was never read.
    Done(Header),
    /// Give up: log this and close.
    Failed(ProxyError),
}

/// One connection's header as it arrives, with its deadline. The worker
/// reads [`Step::Read`] bytes at a time and pushes them; the clock is
/// passed in, so tests use a fake one.
#[derive(Debug)]
pub struct HeaderReader {
    bytes: Vec<u8>,
    started: Instant,
    limit: Duration,
    step: Step,
}

impl HeaderReader {
    /// A header expected within `limit` of `now`.
    pub fn new(now: Instant, limit: Duration) -> HeaderReader {
        HeaderReader {
            bytes: Vec::new(),
            started: now,
            limit,
            step: Step::Read(1),
        }
    }

    /// What to do now.
    pub fn step(&self) -> &Step {
        &self.step
    }

    /// When the header must be whole.
    pub fn deadline(&self) -> Instant {
        self.started + self.limit
    }

    /// Bytes read from the socket (`[]`: the peer closed).
    pub fn push(&mut self, bytes: &[u8]) -> &Step {
        if !matches!(self.step, Step::Read(_)) {
            return &self.step;
        }
        if bytes.is_empty() {
            self.step = Step::Failed(ProxyError::Closed);
            return &self.step;
        }
        self.bytes.extend_from_slice(bytes);
        self.step = match parse(&self.bytes) {
            Parsed::Incomplete { need } => Step::Read(need),
            Parsed::Header(header) => Step::Done(header),
            Parsed::Invalid(error) => Step::Failed(error),
        };
        &self.step
    }

    /// The clock: past the deadline, a header still incomplete fails.
    pub fn handle_timeout(&mut self, now: Instant) -> &Step {
        if matches!(self.step, Step::Read(_)) && now >= self.deadline() {
            self.step = Step::Failed(ProxyError::TimedOut(self.limit));
        }
        &self.step
    }
}

/// Whether `ip` is in one of `networks` (`10.0.0.0/8`, `::1`, a plain
/// address meaning a /32 or /128). Entries that do not parse match
/// nothing ([`parse_network`] checks them when the config is loaded). An
/// IPv4 address mapped into IPv6 counts as the IPv4 address.
pub fn in_networks(ip: IpAddr, networks: &[String]) -> bool {
    let ip = ip.to_canonical();
    networks
        .iter()
        .filter_map(|text| parse_network(text).ok())
        .any(|(net, prefix)| contains(net, prefix, ip))
}

/// A network as `address/prefix` or a plain address.
pub fn parse_network(text: &str) -> Result<(IpAddr, u8), String> {
    let (address, prefix) = match text.split_once('/') {
        Some((address, prefix)) => (address, Some(prefix)),
        None => (text, None),
    };
    let ip: IpAddr = address
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not an address or network (like 10.0.0.0/8)"))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        None => max,
        Some(p) => p
            .trim()
            .parse::<u8>()
            .ok()
            .filter(|p| *p <= max)
            .ok_or_else(|| format!("`{text}`: the prefix length must be 0 to {max}"))?,
    };
    Ok((ip.to_canonical(), prefix))
}

fn contains(net: IpAddr, prefix: u8, ip: IpAddr) -> bool {
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(i)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            u32::from(n) & mask == u32::from(i) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(i)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            u128::from(n) & mask == u128::from(i) & mask
        }
        _ => false,
    }
}

/// The client behind a chain of proxies: `hops` are the addresses from
/// `X-Forwarded-For` / `Forwarded: for=` headers, in order (the client
/// first, each proxy appending the one it heard from), and `peer` is the
/// address the connection came from. Walking from the right, each trusted
/// address is a proxy whose word is taken; the first untrusted one is the
/// client. An unparsable hop ends the walk (it cannot be trusted past).
/// `None`: the peer itself is the client.
pub fn forwarded_client(peer: IpAddr, hops: &[String], trusted: &[String]) -> Option<IpAddr> {
    if !in_networks(peer, trusted) {
        return None;
    }
    let mut client = None;
    for hop in hops.iter().rev() {
        let Some(ip) = hop_address(hop) else {
            break;
        };
        client = Some(ip);
        if !in_networks(ip, trusted) {
            break;
        }
    }
    client
}

/// One hop as written in a header: `203.0.113.7`, `203.0.113.7:4000`,
/// `[2001:db8::1]:4000`, `"[2001:db8::1]"`.
fn hop_address(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim().trim_matches('"');
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(addr) = hop.parse::<SocketAddr>() {
        return Some(addr.ip());
    }
    let inner = hop.strip_prefix('[')?.split(']').next()?;
    inner.parse().ok()
}

/// The hops named by one `X-Forwarded-For` header value.
pub fn x_forwarded_for_hops(value: &str) -> Vec<String> {
    value.split(',').map(|h| h.trim().to_owned()).collect()
}

/// The `for=` hops of one `Forwarded` header value (RFC 7239).
pub fn forwarded_hops(value: &str) -> Vec<String> {
    let mut hops = Vec::new();
    for element in value.split(',') {
        for pair in element.split(';') {
            if let Some((name, v)) = pair.split_once('=') {
                if name.trim().eq_ignore_ascii_case("for") {
                    hops.push(v.trim().to_owned());
                }
            }
        }
    }
    hops
}

#[cfg(test)]
mod tests;
