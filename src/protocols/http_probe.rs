//! Spotting a web browser on a telnet port (pure).
//!
//! People paste a MUD's address into a browser. The session worker checks a
//! connection's first line with [`is_http_request`]; on a match it answers
//! with [`ANSWER`] (a short plain HTTP reply telling them to use a MUD
//! client) and closes, instead of feeding `GET / HTTP/1.1` to the game.

/// The reply to a browser: valid HTTP, readable as plain text too.
pub const ANSWER: &str = "HTTP/1.0 400 Bad Request\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Connection: close\r\n\
\r\n\
This is a MUD (telnet) port, not a web page.\r\n\
Connect with a MUD client such as Mudlet or TinTin++, or with telnet: telnet <host> <port>\r\n";

const METHODS: &[&str] = &[
    "GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "CONNECT", "PATCH", "TRACE",
];

/// Whether `line` is an HTTP request line (`METHOD target HTTP/x.y`).
///
/// ```
/// use portal::protocols::http_probe::is_http_request;
/// assert!(is_http_request(b"GET / HTTP/1.1"));
/// assert!(!is_http_request(b"get sword"));
/// ```
pub fn is_http_request(line: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(line) else {
        return false;
    };
    let mut parts = text.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    METHODS.contains(&method) && !target.is_empty() && version.starts_with("HTTP/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lines_are_recognised() {
        assert!(is_http_request(b"GET /index.html HTTP/1.0"));
        assert!(is_http_request(b"POST /api HTTP/2"));
    }

    #[test]
    fn game_commands_are_not_requests() {
        assert!(!is_http_request(b"GET sword"));
        assert!(!is_http_request(b"get / http/1.1"));
        assert!(!is_http_request(b"say GET / HTTP/1.1"));
        assert!(!is_http_request(b"\xff\xfe"));
        assert!(!is_http_request(b""));
    }
}
