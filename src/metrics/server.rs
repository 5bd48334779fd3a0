//! The `metrics` thread: answers `GET /metrics` on `[metrics] listen`.
//!
//! One thread accepts and answers one scrape at a time, apart from the
//! acceptor's poll loop and every player's session, so a scraper can slow
//! down nothing but other scrapes. Each connection gets [`DEADLINE`] in
//! all to send its request head (at most [`MAX_REQUEST`] bytes) and take
//! the answer, then is closed: a scraper that stalls holds the thread for
//! at most that long. Prometheus scrapes one target with one request at a
//! time, so a queue of scrapers does not build up.
//!
//! [`answer_request`] (request bytes → response bytes) is pure; the
//! snapshot is taken only for a request that wants it.

use super::render::{render, CONTENT_TYPE};
use crate::protocols::http::{parse_request, Parsed, Response};
use crate::shared::Shared;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The longest one connection may take, request and answer together.
pub const DEADLINE: Duration = Duration::from_secs(2);
/// The longest request head read.
pub const MAX_REQUEST: usize = 8 * 1024;

/// Start the thread answering scrapes on `listener`.
pub fn serve(listener: TcpListener, shared: Arc<Shared>) -> io::Result<()> {
    let bound = listener.local_addr()?;
    if !bound.ip().is_loopback() {
        log::warn!(
            "metrics listen on {bound}, not loopback: anyone who reaches it can read the portal's counters; keep it behind a firewall"
        );
    }
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || answer_forever(listener, shared))?;
    log::info!("metrics on http://{bound}/metrics");
    Ok(())
}

fn answer_forever(listener: TcpListener, shared: Arc<Shared>) {
    for stream in listener.incoming() {
        match stream {
            Ok(stream) => {
                let peer = stream.peer_addr().ok();
                if let Err(e) = answer(stream, &shared) {
                    log::debug!("metrics: scrape from {}: {e}", shown(peer));
                }
            }
            Err(e) => {
                log::warn!("metrics: accept failed: {e}");
                // Out of descriptors: do not spin on a listener that stays
                // readable (players come first).
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

fn shown(peer: Option<SocketAddr>) -> String {
    peer.map_or_else(|| "?".into(), |p| p.to_string())
}

/// Read one request head within the deadline, write the answer, close.
fn answer(mut stream: TcpStream, shared: &Shared) -> io::Result<()> {
    let deadline = Instant::now() + DEADLINE;
    let mut head = Vec::new();
    let mut chunk = [0u8; 1024];
    let reply = loop {
        stream.set_read_timeout(Some(left(deadline)?))?;
        let n = match stream.read(&mut chunk) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        head.extend_from_slice(&chunk[..n]);
        if let Some(reply) = answer_request(&head, || render(&super::collect(shared))) {
            break reply;
        }
    };
    stream.set_write_timeout(Some(left(deadline)?))?;
    stream.write_all(&reply)?;
    let _ = stream.shutdown(std::net::Shutdown::Write);
    Ok(())
}

/// Time left before `deadline`, or a timeout error once it has passed.
fn left(deadline: Instant) -> io::Result<Duration> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(io::Error::new(io::ErrorKind::TimedOut, "deadline passed"));
    }
    Ok(left)
}

/// The answer to the request head in `head`, or `None` while it is not
/// complete. `body` makes the metrics text, called only for a scrape.
pub fn answer_request(head: &[u8], body: impl FnOnce() -> String) -> Option<Vec<u8>> {
    let request = match parse_request(head, MAX_REQUEST) {
        Parsed::Incomplete => return None,
        Parsed::Request(request, _) => request,
        Parsed::TooLarge => return Some(Response::error(431, "request too large").to_bytes(false)),
        Parsed::Bad(_) => return Some(Response::error(400, "bad request").to_bytes(false)),
    };
    let head_only = request.method == "HEAD";
    let response = if request.method != "GET" && !head_only {
        Response::error(405, "only GET").with("Allow", "GET, HEAD")
    } else if request.path != "/metrics" {
        Response::error(404, "not found; metrics are at /metrics")
    } else {
        let mut response = Response::new(200, CONTENT_TYPE, body());
        response.close = true;
        response.with("Cache-Control", "no-store")
    };
    Some(response.to_bytes(head_only))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(bytes: Option<Vec<u8>>) -> String {
        String::from_utf8(bytes.expect("an answer")).unwrap()
    }

    #[test]
    fn a_scrape_gets_the_text_with_its_content_type_and_length() {
        let reply = text(answer_request(
            b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
            || "a 1\n".into(),
        ));
        assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "{reply}");
        assert!(reply.contains(&format!("Content-Type: {CONTENT_TYPE}\r\n")));
        assert!(reply.contains("Content-Length: 4\r\n"));
        assert!(reply.contains("Connection: close\r\n"));
        assert!(reply.ends_with("\r\n\r\na 1\n"));
    }

    #[test]
    fn a_query_string_is_ignored_and_head_gets_no_body() {
        let get = text(answer_request(b"GET /metrics?x=1 HTTP/1.0\r\n\r\n", || {
            "a 1\n".into()
        }));
        assert!(get.starts_with("HTTP/1.1 200"));
        let head = text(answer_request(b"HEAD /metrics HTTP/1.1\r\n\r\n", || {
            "a 1\n".into()
        }));
        assert!(head.contains("Content-Length: 4\r\n"));
        assert!(head.ends_with("\r\n\r\n"));
    }

    #[test]
    fn other_paths_methods_and_garbage_are_answered_without_a_snapshot() {
        let never = || -> String { panic!("no snapshot for this request") };
        let cases: [(&[u8], &str); 4] = [
            (b"GET / HTTP/1.1\r\n\r\n", "404"),
            (b"POST /metrics HTTP/1.1\r\n\r\n", "405"),
            (b"\x16\x03\x01\x02\x00\r\n\r\n", "400"),
            (b"GET /metrics HTTP/1.1\r\nX: 1\r\n", ""),
        ];
        for (request, status) in cases {
            let reply = answer_request(request, never);
            if status.is_empty() {
                assert!(reply.is_none(), "incomplete head: wait for more");
            } else {
                assert!(text(reply).starts_with(&format!("HTTP/1.1 {status}")));
            }
        }
        let huge = format!(
            "GET /metrics HTTP/1.1\r\nX: {}\r\n",
            "y".repeat(MAX_REQUEST)
        );
        assert!(text(answer_request(huge.as_bytes(), never)).starts_with("HTTP/1.1 431"));
    }
}
