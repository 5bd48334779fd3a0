//! Spotting a web browser on a telnet port (pure).
//!
//! People paste a MUD's address into a browser. The session worker checks a
//! connection's first line with [`is_http_request`]; on a match it answers
//! with [`answer`] (a short plain HTTP reply telling them to use a MUD
//! client) and closes, instead of feeding `GET / HTTP/1.1` to the game.
//! Until the first bytes show the connection is not a browser (or
//! `telnet.negotiation_hold_ms` passes), the session core holds its opening
//! telnet negotiation ([`may_be_request`]), so the answer starts the
//! stream as HTTP must.

/// The reply to a browser: valid HTTP, readable as plain text too; names
/// the web client's port when `web_port` is known.
pub fn answer(web_port: Option<u16>) -> String {
    let web = match web_port {
        Some(port) => format!("The web client is on port {port}: http://<host>:{port}/\r\n"),
        None => String::new(),
    };
    format!(
        "HTTP/1.1 400 Bad Request\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         Connection: close\r\n\
         \r\n\
         This is a MUD (telnet) port, not a web page.\r\n\
         {web}\
         Connect with a MUD client such as Mudlet or TinTin++, or with telnet: telnet <host> <port>\r\n"
    )
}

const METHODS: &[&str] = &[
    "GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "CONNECT", "PATCH", "TRACE",
];

/// Whether a connection whose first bytes are `start` may be sending an
/// HTTP request (its method and a space, as far as it has come). The
/// session holds its telnet negotiation while this is true, so a browser
/// gets a clean HTTP answer with no telnet bytes before it.
///
/// ```
/// use portal::protocols::http_probe::may_be_request;
/// assert!(may_be_request(b"GE"));
/// assert!(may_be_request(b"GET / HT"));
/// assert!(!may_be_request(b"look"));
/// ```
pub fn may_be_request(start: &[u8]) -> bool {
    METHODS.iter().any(|method| {
        let opening = [method.as_bytes(), b" "].concat();
        let n = start.len().min(opening.len());
        start[..n] == opening[..n]
    })
}

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
    fn the_answer_is_http_and_names_the_web_port() {
        assert!(answer(None).starts_with("HTTP/1.1 400"));
        assert!(answer(Some(4001)).contains("port 4001"));
    }

    #[test]
    fn request_lines_are_recognised() {
        assert!(is_http_request(b"GET /index.html HTTP/1.0"));
        assert!(is_http_request(b"POST /api HTTP/2"));
    }

    #[test]
    fn the_start_of_a_request_may_be_one() {
        assert!(may_be_request(b""));
        assert!(may_be_request(b"P"));
        assert!(may_be_request(b"POST /x"));
        assert!(!may_be_request(b"GETS"));
        assert!(!may_be_request(b"\xff\xfd\x03"));
        assert!(!may_be_request(b"connect anna"));
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
