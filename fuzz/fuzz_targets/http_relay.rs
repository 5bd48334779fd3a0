//! The web relay's pure parts (`protocols::http_relay`): where a body
//! ends, the upstream's answer head, and the rewritten request head.
//! Input: `[seed, bytes]`. Invariants: a chunked body ends in the same
//! place however its bytes are cut, never using more than it was given; a
//! parsed answer head never claims more bytes than it had; a request head
//! that parsed is rewritten into one that parses again to the same method
//! and target, with exactly one `Connection` and one `X-Forwarded-For`
//! header (nothing the client sent can add a header line).
#![no_main]

use libfuzzer_sys::fuzz_target;
use portal::protocols::http::{parse_request, Parsed};
use portal::protocols::http_relay::{
    parse_response, upstream_head, BodyReader, BodyState, Forwarding, ParsedResponse,
};
use portal_fuzz::chunks;

fuzz_target!(|data: &[u8]| {
    let [seed, input @ ..] = data else {
        return;
    };
    let whole = BodyReader::chunked().advance(input);
    assert!(whole.0 <= input.len());
    let mut reader = BodyReader::chunked();
    let mut pending = Vec::new();
    let mut used = 0;
    let mut end = None;
    for piece in chunks(input, *seed) {
        pending.extend_from_slice(piece);
        let (n, state) = reader.advance(&pending);
        assert!(n <= pending.len());
        pending.drain(..n);
        used += n;
        if state != BodyState::More {
            end = Some((used, state));
            break;
        }
    }
    if let (Some(cut), (n, state)) = (end, whole) {
        if matches!(state, BodyState::Done) {
            assert_eq!(cut, (n, state));
        }
    }
    if let ParsedResponse::Head(_, n) = parse_response(input, 4096) {
        assert!(n <= input.len());
    }
    if let Parsed::Request(request, _) = parse_request(input, 8192) {
        let peer = "192.0.2.1".parse().expect("literal");
        let from = Forwarding {
            peer,
            client: peer,
            peer_trusted: seed & 1 == 1,
            secure: false,
        };
        let head = upstream_head(&request, &from);
        // Read back with room for the headers the relay adds: a request at
        // our own header limit is relayed whole, so its head may hold more
        // than `parse_request` takes in.
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut again = httparse::Request::new(&mut headers);
        let Ok(httparse::Status::Complete(n)) = again.parse(&head) else {
            panic!("the rewritten head does not parse: {head:?}");
        };
        assert_eq!(n, head.len());
        let target = match &request.query {
            Some(query) => format!("{}?{query}", request.path),
            None => request.path.clone(),
        };
        assert_eq!(again.method, Some(request.method.as_str()));
        assert_eq!(again.path, Some(target.as_str()));
        let count = |name: &str| {
            let named = |h: &&httparse::Header| h.name.eq_ignore_ascii_case(name);
            again.headers.iter().filter(named).count()
        };
        assert_eq!(count("connection"), 1);
        assert_eq!(count("x-forwarded-for"), 1);
    }
});
