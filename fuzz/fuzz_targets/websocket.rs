//! The websocket engine in each wire format. Input: `[mode, seed, bytes]`:
//! the harness opens a websocket asking for format `mode % 5` (4: none
//! named), then sends the bytes as client frames (`[head, len, payload]`
//! records, masked as a browser does) or, with mode bit 3, raw. Invariants:
//! the same bytes at once or cut anywhere give the same events and the
//! same bytes back; nothing is read after the engine closed; the reply is
//! bounded by the input; every format's decoder takes any frame.
#![no_main]

use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use portal::protocols::websocket::format::{Format, Frame};
use portal::protocols::websocket::{WebEngine, WebEvent, WebSettings};
use portal_fuzz::chunks;

fuzz_target!(|data: &[u8]| {
    let [mode, seed, bytes @ ..] = data else {
        return;
    };
    let format = Format::ALL.get(usize::from(mode % 5)).copied();
    let mut input = upgrade(format);
    if mode & 8 != 0 {
        input.extend_from_slice(bytes);
    } else {
        input.extend_from_slice(&frames(bytes));
    }
    let (whole, whole_wire) = run(&[&input]);
    let (cut, cut_wire) = run(&chunks(&input, *seed));
    assert_eq!(whole, cut, "events differ when cut");
    assert_eq!(whole_wire, cut_wire, "replies differ when cut");
    if let Some(at) = whole.iter().position(|e| matches!(e, WebEvent::Closed(_))) {
        assert_eq!(at + 1, whole.len(), "events after the close: {whole:?}");
    }
    assert!(
        whole_wire.len() <= 4096 + 4 * input.len(),
        "reply of {} bytes",
        whole_wire.len()
    );

    let allowed = |name: &str| name == "ping" || name == "logged_in";
    let text = String::from_utf8_lossy(bytes).into_owned();
    for format in Format::ALL {
        let _ = format.decode(&Frame::Text(text.clone()), &allowed);
        let _ = format.decode(&Frame::Binary(bytes.to_vec()), &allowed);
    }
});

fn upgrade(format: Option<Format>) -> Vec<u8> {
    let protocol = format
        .map(|f| format!("Sec-WebSocket-Protocol: {}\r\n", f.subprotocol()))
        .unwrap_or_default();
    format!(
        "GET /ws HTTP/1.1\r\nHost: 127.0.0.1:4001\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{protocol}\r\n"
    )
    .into_bytes()
}

/// `[head, len, payload]` records as masked client frames: `head`'s low
/// nibble is the opcode, its top bit FIN, bit 6 a reserved bit.
fn frames(mut bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let [head, len, rest @ ..] = bytes {
        let len = usize::from(*len).min(rest.len());
        let (payload, tail) = rest.split_at(len);
        out.push((head & 0x8f) | (head & 0x40));
        if len < 126 {
            out.push(0x80 | len as u8);
        } else {
            out.push(0x80 | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        let mask = [0x37, 0xfa, 0x21, 0x3d];
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        bytes = tail;
    }
    out
}

fn run(reads: &[&[u8]]) -> (Vec<WebEvent>, Vec<u8>) {
    let now = Instant::now();
    let settings = WebSettings {
        fresh_csessid: "Fresh0000000000000000000".into(),
        commands: vec!["ping".into()],
        max_frame_bytes: 1024,
        max_message_bytes: 2048,
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
