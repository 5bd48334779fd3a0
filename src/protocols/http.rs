//! HTTP/1.1 request heads and responses for the web listener (RFC 9112),
//! sans-IO: bytes in, a parsed request or a reason out; a response value
//! in, bytes out.
//!
//! The web engine ([`crate::protocols::websocket`]) feeds [`parse_request`]
//! the bytes a browser sent and decides what to answer: the page, a
//! websocket upgrade, or an error. Only request heads are read; a request
//! with a body is refused, except the AJAX transport's form POSTs, whose
//! bodies the web engine reads itself.
//! Header parsing is `httparse`'s, the standard Rust HTTP/1 parser.
//!
//! ```
//! use portal::protocols::http::{parse_request, Parsed};
//! let bytes = b"GET /ws?x=1 HTTP/1.1\r\nHost: mud.example\r\nUpgrade: websocket\r\n\r\n";
//! let Parsed::Request(request, used) = parse_request(bytes, 8192) else { panic!() };
//! assert_eq!(used, bytes.len());
//! assert_eq!((request.method.as_str(), request.path.as_str()), ("GET", "/ws"));
//! assert_eq!(request.header("upgrade"), Some("websocket"));
//! ```

/// Most headers one request may carry.
const MAX_HEADERS: usize = 48;

/// One request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// The path without the query.
    pub path: String,
    /// What followed `?`, if anything.
    pub query: Option<String>,
    /// `1` for HTTP/1.1, `0` for HTTP/1.0.
    pub minor_version: u8,
    /// Header names lower-cased, values as sent (non-UTF-8 values dropped).
    pub headers: Vec<(String, String)>,
}

impl Request {
    /// The first value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// Whether header `name` lists `token` (comma-separated, any case).
    pub fn header_has_token(&self, name: &str, token: &str) -> bool {
        self.headers
            .iter()
            .filter(|(key, _)| key == name)
            .flat_map(|(_, value)| value.split(','))
            .any(|item| item.trim().eq_ignore_ascii_case(token))
    }

    /// The value of cookie `name`, from every `Cookie` header.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .filter(|(key, _)| key == "cookie")
            .flat_map(|(_, value)| value.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.trim())
    }

    /// Whether the client wants the connection kept open after the answer.
    pub fn keep_alive(&self) -> bool {
        if self.header_has_token("connection", "close") {
            return false;
        }
        self.minor_version >= 1 || self.header_has_token("connection", "keep-alive")
    }

    /// Whether the request announces a body.
    pub fn has_body(&self) -> bool {
        let length = self
            .header("content-length")
            .is_some_and(|v| v.trim() != "0");
        length || self.header("transfer-encoding").is_some()
    }
}

/// What [`parse_request`] made of the bytes so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// The head is not complete yet: read more (nothing was used).
    Incomplete,
    /// A complete head, and how many bytes it took.
    Request(Request, usize),
    /// The head is longer than allowed (or has too many headers).
    TooLarge,
    /// Not HTTP; the reason, for the log.
    Bad(String),
}

/// Parse one request head from the start of `input`, refusing heads over
/// `max_bytes`.
pub fn parse_request(input: &[u8], max_bytes: usize) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(input) {
        Ok(httparse::Status::Partial) if input.len() >= max_bytes => Parsed::TooLarge,
        Ok(httparse::Status::Partial) => Parsed::Incomplete,
        Ok(httparse::Status::Complete(used)) if used > max_bytes => Parsed::TooLarge,
        Ok(httparse::Status::Complete(used)) => Parsed::Request(from_httparse(&request), used),
        Err(httparse::Error::TooManyHeaders) => Parsed::TooLarge,
        Err(e) => Parsed::Bad(e.to_string()),
    }
}

fn from_httparse(request: &httparse::Request) -> Request {
    let target = request.path.unwrap_or("/");
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path, Some(query.to_owned())),
        None => (target, None),
    };
    let headers = request
        .headers
        .iter()
        .filter_map(|h| {
            let value = std::str::from_utf8(h.value).ok()?;
            Some((h.name.to_ascii_lowercase(), value.trim().to_owned()))
        })
        .collect();
    Request {
        method: request.method.unwrap_or("").to_owned(),
        path: path.to_owned(),
        query,
        minor_version: request.version.unwrap_or(0),
        headers,
    }
}

/// A response to write back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Close the connection after this response.
    pub close: bool,
}

impl Response {
    /// A response with a body of `content_type`.
    pub fn new(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Response {
        Response {
            status,
            headers: vec![("Content-Type".into(), content_type.into())],
            body: body.into(),
            close: false,
        }
    }

    /// A short plain-text error page; the connection is closed after it.
    pub fn error(status: u16, text: &str) -> Response {
        let mut response = Response::new(status, "text/plain; charset=utf-8", format!("{text}\n"));
        response.close = true;
        response
    }

    /// Add a header.
    pub fn with(mut self, name: &str, value: &str) -> Response {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The bytes on the wire. `head_only` leaves the body out (for HEAD)
    /// but keeps its length.
    pub fn to_bytes(&self, head_only: bool) -> Vec<u8> {
        let mut head = format!("HTTP/1.1 {} {}\r\n", self.status, reason(self.status));
        for (name, value) in &self.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        if self.status != 101 {
            head.push_str(&format!("Content-Length: {}\r\n", self.body.len()));
            let connection = if self.close { "close" } else { "keep-alive" };
            head.push_str(&format!("Connection: {connection}\r\n"));
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        if !head_only {
            bytes.extend_from_slice(&self.body);
        }
        bytes
    }
}

/// The reason phrase for the status codes the portal sends.
fn reason(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const UPGRADE: &[u8] = b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:4001\r\n\
Connection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\
Cookie: a=1; portal_csessid=abc ; b=2\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";

    #[test]
    fn a_complete_head_is_parsed_with_lower_case_names() {
        let Parsed::Request(request, used) = parse_request(UPGRADE, 8192) else {
            panic!("not parsed")
        };
        assert_eq!(used, UPGRADE.len());
        assert_eq!(request.header("host"), Some("127.0.0.1:4001"));
        assert!(request.header_has_token("connection", "upgrade"));
        assert_eq!(request.cookie("portal_csessid"), Some("abc"));
        assert_eq!(request.cookie("missing"), None);
        assert!(request.keep_alive());
        assert!(!request.has_body());
    }

    #[test]
    fn a_head_split_anywhere_is_incomplete_until_its_end() {
        for cut in 0..UPGRADE.len() {
            assert_eq!(
                parse_request(&UPGRADE[..cut], 8192),
                Parsed::Incomplete,
                "cut {cut}"
            );
        }
    }

    #[test]
    fn an_oversized_head_is_refused_before_it_ends() {
        let mut big = b"GET / HTTP/1.1\r\nX: ".to_vec();
        big.extend(std::iter::repeat_n(b'a', 9000));
        assert_eq!(parse_request(&big, 8192), Parsed::TooLarge);
        assert_eq!(parse_request(UPGRADE, 40), Parsed::TooLarge);
    }

    #[test]
    fn telnet_bytes_are_not_http() {
        assert!(matches!(
            parse_request(b"\xff\xfb\x01look\r\n", 8192),
            Parsed::Bad(_)
        ));
    }

    #[test]
    fn http_1_0_closes_unless_asked_and_connection_close_wins() {
        let Parsed::Request(old, _) = parse_request(b"GET / HTTP/1.0\r\n\r\n", 100) else {
            panic!()
        };
        assert!(!old.keep_alive());
        let Parsed::Request(close, _) =
            parse_request(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n", 100)
        else {
            panic!()
        };
        assert!(!close.keep_alive());
    }

    #[test]
    fn responses_carry_length_and_connection() {
        let bytes = Response::error(404, "Not found").to_bytes(false);
        let text = String::from_utf8(bytes).unwrap_or_default();
        assert!(text.starts_with("HTTP/1.1 404 Not Found\r\n"));
        assert!(text.contains("Content-Length: 10\r\n"));
        assert!(text.contains("Connection: close\r\n"));
        assert!(text.ends_with("\r\n\r\nNot found\n"));
        let head = Response::new(200, "text/plain", "body").to_bytes(true);
        assert!(String::from_utf8_lossy(&head)
            .ends_with("Content-Length: 4\r\nConnection: keep-alive\r\n\r\n"));
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = parse_request(&bytes, 512);
        }
    }
}
