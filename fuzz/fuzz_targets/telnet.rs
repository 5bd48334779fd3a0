//! The telnet engine with every option agreed, MCCP3 input included.
//!
//! Input: `[mode, seed, n, game text (n bytes), client bytes]`. Mode bit 0
//! sends the client's agreement to every option first; bit 1 compresses the
//! second half of the client bytes as MCCP3 (bit 2 ends that stream and
//! sends the first half again, plain). Invariants:
//! - the same bytes read in one piece or cut anywhere give the same events
//!   (data merged), flags and failure;
//! - with no IAC in the plain input, the game receives exactly that input;
//! - one read never yields more data than it holds plus the inflate cap;
//! - what the portal writes is a valid telnet stream (MCCP2 included) that
//!   carries the game's text intact, and is bounded by the input.
#![no_main]

use std::io::Write;
use std::time::Instant;

use flate2::{write::ZlibEncoder, Compression};
use libfuzzer_sys::fuzz_target;
use portal::protocols::telnet::{Telnet, TelnetEvent, TelnetSettings};
use portal_fuzz::{chunks, client_view, contains, data_of};

const IAC: u8 = 255;
const WILL: u8 = 251;
const DO: u8 = 253;
const SB: u8 = 250;
const SE: u8 = 240;

/// A client agreeing to everything the portal offers.
const AGREE: &[u8] = &[
    IAC, DO, 3, IAC, WILL, 24, IAC, WILL, 31, IAC, DO, 25, IAC, DO, 42, IAC, WILL, 39, IAC, DO, 69,
    IAC, DO, 201, IAC, DO, 70, IAC, DO, 91, IAC, DO, 86, IAC, DO, 87,
];

fuzz_target!(|data: &[u8]| {
    let [mode, seed, n, rest @ ..] = data else {
        return;
    };
    let n = usize::from(*n).min(rest.len());
    let (text, client) = rest.split_at(n);
    let text = String::from_utf8_lossy(text);
    let (input, plain_known) = client_input(*mode, client);

    let big = TelnetSettings {
        max_inflated_input: 1 << 24,
        ..TelnetSettings::default()
    };
    let whole = run(&big, &[&input]);
    let cut = run(&big, &chunks(&input, *seed));
    assert_eq!(whole.events, cut.events, "events differ when cut");
    assert_eq!(whole.flags, cut.flags, "flags differ when cut");
    assert_eq!(whole.failed, cut.failed);

    if let Some(plain) = plain_known {
        if !plain.contains(&IAC) {
            assert_eq!(data_events(&whole.events), plain, "plain input changed");
        }
    }

    // The default cap, read by read.
    let settings = TelnetSettings::default();
    let now = Instant::now();
    let mut telnet = Telnet::new(settings.clone(), now);
    for read in chunks(&input, *seed) {
        telnet.handle_input(read, now);
        let got: usize = drain(&mut telnet)
            .iter()
            .map(|e| match e {
                TelnetEvent::Data(d) => d.len(),
                _ => 0,
            })
            .sum();
        assert!(
            got <= read.len() + settings.max_inflated_input,
            "one read gave {got} bytes"
        );
    }

    // The game's text reaches the client intact.
    let mut wire = whole.wire;
    let mut telnet = whole.telnet;
    telnet.send_text(&text);
    telnet.send_prompt(&text);
    while let Some(bytes) = telnet.poll_transmit() {
        wire.extend_from_slice(&bytes);
    }
    let seen = match client_view(&wire) {
        Ok(seen) => seen,
        Err(e) => panic!("invalid telnet stream from the portal: {e:?}"),
    };
    let shown = data_of(&seen);
    let utf8 = telnet
        .flags()
        .encoding
        .as_deref()
        .is_none_or(|e| e.eq_ignore_ascii_case("utf-8"));
    if utf8 {
        let expected = crlf(&text);
        assert!(contains(&shown, expected.as_bytes()), "game text lost");
    }
    let bound = 64 * 1024 + 64 * (input.len() + 2 * text.len());
    assert!(
        shown.len() <= bound,
        "{} bytes shown for {} in",
        shown.len(),
        input.len()
    );
});

/// The bytes the client sends, and the plain input the game should see
/// when the harness knows it (every byte after the preamble).
fn client_input(mode: u8, client: &[u8]) -> (Vec<u8>, Option<Vec<u8>>) {
    let mut input = Vec::new();
    if mode & 1 != 0 {
        input.extend_from_slice(AGREE);
    }
    if mode & 2 == 0 {
        input.extend_from_slice(client);
        let known = (mode & 1 != 0).then(|| client.to_vec());
        return (input, known);
    }
    let (plain, packed) = client.split_at(client.len() / 2);
    input.extend_from_slice(plain);
    input.extend_from_slice(&[IAC, SB, 87, IAC, SE]);
    let mut encoder = ZlibEncoder::new(Vec::new(), Compression::fast());
    let _ = encoder.write_all(packed);
    if mode & 4 != 0 {
        input.extend_from_slice(&encoder.finish().unwrap_or_default());
        input.extend_from_slice(plain);
    } else {
        let _ = encoder.flush();
        input.extend_from_slice(encoder.get_ref());
    }
    (input, None)
}

struct Run {
    events: Vec<TelnetEvent>,
    flags: String,
    failed: Option<portal::protocols::telnet::InputFailure>,
    wire: Vec<u8>,
    telnet: Telnet,
}

fn run(settings: &TelnetSettings, reads: &[&[u8]]) -> Run {
    let now = Instant::now();
    let mut telnet = Telnet::new(settings.clone(), now);
    let mut events = Vec::new();
    let mut wire = Vec::new();
    for read in reads {
        telnet.handle_input(read, now);
        events.extend(drain(&mut telnet));
        while let Some(bytes) = telnet.poll_transmit() {
            wire.extend_from_slice(&bytes);
        }
    }
    Run {
        events: merge(events),
        flags: format!("{:?}", telnet.flags()),
        failed: telnet.input_failure(),
        wire,
        telnet,
    }
}

fn drain(telnet: &mut Telnet) -> Vec<TelnetEvent> {
    std::iter::from_fn(|| telnet.poll_event()).collect()
}

/// Consecutive data events as one.
fn merge(events: Vec<TelnetEvent>) -> Vec<TelnetEvent> {
    let mut out: Vec<TelnetEvent> = Vec::new();
    for event in events {
        match (out.last_mut(), event) {
            (Some(TelnetEvent::Data(a)), TelnetEvent::Data(b)) => a.extend_from_slice(&b),
            (_, event) => out.push(event),
        }
    }
    out
}

fn data_events(events: &[TelnetEvent]) -> Vec<u8> {
    let mut out = Vec::new();
    for event in events {
        if let TelnetEvent::Data(d) = event {
            out.extend_from_slice(d);
        }
    }
    out
}

/// `\n` → CR LF as the portal writes game text (a CR LF stays).
fn crlf(text: &str) -> String {
    let mut out = String::new();
    let mut previous = '\0';
    for c in text.chars() {
        if c == '\n' && previous != '\r' {
            out.push('\r');
        }
        out.push(c);
        previous = c;
    }
    out
}
