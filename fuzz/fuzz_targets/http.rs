//! The web listener before a websocket opens: the HTTP request parser and
//! the engine answering requests. Input: `[seed, bytes]`. Invariants: a
//! parsed head never claims more bytes than it had or than the limit; the
//! engine answers the same whether the bytes come at once or cut anywhere;
//! what it writes is a sequence of well-formed HTTP/1.1 responses (no
//! header a request could inject), each with the body its length says.
#![no_main]

use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use portal::protocols::http::{parse_request, Parsed};
use portal::protocols::websocket::{WebEngine, WebEvent, WebSettings};
use portal_fuzz::{chunks, contains};

const MAX: usize = 8192;

fuzz_target!(|data: &[u8]| {
    let [seed, input @ ..] = data else {
        return;
    };
    match parse_request(input, MAX) {
        Parsed::Request(request, used) => {
            assert!(used <= input.len() && used <= MAX);
            let _ = request.cookie("csessid");
            let _ = request.header_has_token("connection", "upgrade");
            let _ = (request.keep_alive(), request.has_body());
            assert!(request
                .headers
                .iter()
                .all(|(n, _)| *n == n.to_ascii_lowercase()));
        }
        Parsed::TooLarge | Parsed::Incomplete => {}
        Parsed::Bad(reason) => assert!(!reason.is_empty()),
    }
    let (whole_events, whole_wire) = serve(&[input]);
    let (cut_events, cut_wire) = serve(&chunks(input, *seed));
    assert_eq!(whole_events, cut_events, "events differ when cut");
    assert_eq!(whole_wire, cut_wire, "answers differ when cut");
    check_responses(&whole_wire, contains(input, b"HEAD"));
});

fn serve(reads: &[&[u8]]) -> (Vec<WebEvent>, Vec<u8>) {
    let now = Instant::now();
    let settings = WebSettings {
        fresh_csessid: "Fresh0000000000000000000".into(),
        ..WebSettings::default()
    };
    let mut web = WebEngine::new(settings, now);
    let mut events = Vec::new();
    let mut wire = Vec::new();
    for read in reads {
        web.handle_input(read, now);
        events.extend(std::iter::from_fn(|| web.poll_event()));
        while let Some(bytes) = web.poll_transmit() {
            wire.extend_from_slice(&bytes);
        }
    }
    (events, wire)
}

/// Reads `wire` as a client would: responses one after another, up to a
/// `101` (a websocket follows) or the end. With `heads`, a response may
/// come without its body (the answer to a HEAD).
fn check_responses(mut wire: &[u8], heads: bool) {
    while !wire.is_empty() {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut response = httparse::Response::new(&mut headers);
        let used = match response.parse(wire) {
            Ok(httparse::Status::Complete(used)) => used,
            other => panic!(
                "not an HTTP response: {other:?} in {:?}",
                String::from_utf8_lossy(wire)
            ),
        };
        assert_eq!(response.version, Some(1));
        let code = response.code.unwrap_or(0);
        if code == 101 {
            return;
        }
        let length = response
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("content-length"))
            .and_then(|h| std::str::from_utf8(h.value).ok()?.parse::<usize>().ok())
            .unwrap_or_else(|| panic!("a {code} without Content-Length"));
        let names: Vec<String> = response
            .headers
            .iter()
            .map(|h| h.name.to_ascii_lowercase())
            .collect();
        for (i, name) in names.iter().enumerate() {
            assert!(
                !names[..i].contains(name) || name == "set-cookie",
                "header {name} twice"
            );
        }
        let rest = &wire[used..];
        if heads && (rest.is_empty() || rest.starts_with(b"HTTP/1.1 ")) {
            wire = rest;
            continue;
        }
        assert!(rest.len() >= length, "body shorter than its length");
        wire = &rest[length..];
    }
}
