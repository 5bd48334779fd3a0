//! Freeze and thaw: a core driven through negotiation is carried, and the
//! thawed core must act exactly like the original (which carries on after
//! an aborted freeze) on the same input and output afterwards.

use super::*;
use crate::protocols::telnet::mccp::COMPRESS2;
use crate::protocols::telnet::{Telnet, DO, DONT, IAC, SB, SE, WILL, WONT};
use crate::protocols::websocket::WebEngine;
use crate::session::handle::ToWorker;
use crate::session::protocol::Protocol;
use crate::wire::flags::ProtocolFlags;
use flate2::{Decompress, FlushDecompress, Status};
use proptest::prelude::*;
use std::time::Duration;

fn config() -> Arc<Config> {
    Arc::new(Config::default())
}

fn telnet_core(config: Arc<Config>, now: Instant) -> Core {
    let telnet = Telnet::new(telnet_settings(&config, Direction::Inbound), now);
    Core::new(
        7,
        config,
        Direction::Inbound,
        Protocol::Telnet(Box::new(telnet)),
        now,
    )
}

fn web_core(config: Arc<Config>, now: Instant) -> Core {
    let settings = web_settings(&config, false).expect("randomness for a browser id");
    let protocol = Protocol::Web(Box::new(WebEngine::new(settings, now)));
    Core::new(8, config, Direction::Web, protocol, now)
}

fn events(core: &mut Core) -> Vec<CoreEvent> {
    std::iter::from_fn(|| core.poll_event()).collect()
}

fn sent(core: &mut Core) -> Vec<u8> {
    std::mem::take(core.transmit())
}

fn sub(option: u8, body: &[u8]) -> Vec<u8> {
    let mut bytes = vec![IAC, SB, option];
    bytes.extend_from_slice(body);
    bytes.extend_from_slice(&[IAC, SE]);
    bytes
}

fn say(core: &mut Core, text: &str, now: Instant) {
    let commands = vec![Command::text(text)];
    core.handle_message(
        ToWorker::Out {
            commands,
            read_at: None,
        },
        now,
    );
}

/// What a telnet client gets from `wire`: plain bytes until IAC SB
/// COMPRESS2 IAC SE, then a zlib stream to its end, plain again, and so
/// on. Also how many streams began and how many ended properly.
fn client_view(wire: &[u8]) -> (Vec<u8>, usize, usize) {
    let start = [IAC, SB, COMPRESS2, IAC, SE];
    let (mut plain, mut begun, mut ended) = (Vec::new(), 0, 0);
    let mut rest = wire;
    loop {
        let Some(at) = rest.windows(5).position(|w| w == start) else {
            plain.extend_from_slice(rest);
            return (plain, begun, ended);
        };
        plain.extend_from_slice(&rest[..at]);
        rest = &rest[at + 5..];
        begun += 1;
        let mut zlib = Decompress::new(true);
        let mut out = Vec::with_capacity(1 << 20);
        let status = zlib
            .decompress_vec(rest, &mut out, FlushDecompress::Sync)
            .expect("one valid zlib stream");
        plain.extend_from_slice(&out);
        rest = &rest[zlib.total_in() as usize..];
        if status == Status::StreamEnd {
            ended += 1;
        } else {
            assert!(rest.is_empty(), "bytes after an unfinished stream");
        }
    }
}

/// The client's answers to every default offer: TTYPE, NAWS, GMCP and
/// MCCP2 agreed, the rest refused.
fn negotiate() -> Vec<u8> {
    let mut bytes = vec![];
    for (verb, option) in [
        (DO, 3),
        (WILL, 24),
        (WILL, 31),
        (DONT, 25),
        (DONT, 42),
        (WONT, 39),
        (DONT, 69),
        (DO, 201),
        (DONT, 70),
        (DONT, 91),
        (DO, COMPRESS2),
        (DONT, 87),
    ] {
        bytes.extend_from_slice(&[IAC, verb, option]);
    }
    bytes.extend(sub(31, &[0, 120, 0, 40]));
    bytes.extend(sub(24, b"\x00MUDLET"));
    bytes.extend(sub(24, b"\x00XTERM-256COLOR"));
    bytes.extend(sub(24, b"\x00MTTS 2319"));
    bytes
}

fn flags(core: &Core) -> ProtocolFlags {
    core.protocol().flags().clone()
}

/// Feed both cores the same and compare what comes out.
fn same(a: &mut Core, b: &mut Core, wire_a: &mut Vec<u8>, wire_b: &mut Vec<u8>) {
    assert_eq!(events(a), events(b));
    assert_eq!(flags(a), flags(b));
    assert_eq!(a.poll_timeout(), b.poll_timeout());
    assert_eq!(a.is_closing(), b.is_closing());
    let (out_a, out_b) = (sent(a), sent(b));
    assert_eq!(out_a, out_b);
    wire_a.extend(out_a);
    wire_b.extend(out_b);
}

#[test]
fn a_negotiated_telnet_session_with_mccp2_thaws_to_the_same_session() {
    let t0 = Instant::now();
    let mut core = telnet_core(config(), t0);
    let mut wire = sent(&mut core);
    core.handle_input(&negotiate(), t0);
    let got = events(&mut core);
    assert!(got.contains(&CoreEvent::Sync), "{got:?}");
    assert!(matches!(core.protocol(), Protocol::Telnet(t) if t.compressing()));
    let t1 = t0 + Duration::from_millis(300);
    say(&mut core, "Welcome before the upgrade.", t1);
    wire.extend(sent(&mut core));
    // Unsent output, a partial line and half a GMCP message.
    say(&mut core, "Unsent when frozen.", t1);
    let mut partial = b"say hel".to_vec();
    partial.extend_from_slice(&[IAC, SB, 201]);
    partial.extend_from_slice(b"Core.Hello {\"cl");
    core.handle_input(&partial, t1);
    assert!(events(&mut core).is_empty());

    core.prepare_freeze(t1);
    let frozen = core.freeze(t1).expect("carriable");
    assert_eq!(frozen[0], CORE_STATE_VERSION);
    let mut thawed = Core::thaw(&frozen, config(), t1).expect("thaws");
    core.abort_freeze(t1);
    assert_eq!(thawed.sessid(), 7);
    assert_eq!(thawed.started(), t0);

    let mut wire_thawed = wire.clone();
    same(&mut core, &mut thawed, &mut wire, &mut wire_thawed);
    let mut rest = b"ient\":\"x\"}".to_vec();
    rest.extend_from_slice(&[IAC, SE]);
    rest.extend_from_slice(b"lo\r\nlook\r\n");
    rest.extend(sub(31, &[0, 90, 0, 30]));
    let t2 = t1 + Duration::from_millis(500);
    core.handle_input(&rest, t2);
    thawed.handle_input(&rest, t2);
    let (a, b) = (events(&mut core), events(&mut thawed));
    assert_eq!(a, b);
    let names: Vec<_> = a
        .iter()
        .filter_map(|e| match e {
            CoreEvent::Input { command, .. } => Some(command.name.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(names, ["hello", "text", "text"], "{a:?}");
    let lines: Vec<_> = a
        .iter()
        .filter_map(|e| match e {
            CoreEvent::Input { command, .. } if command.name == "text" => {
                command.first_str().map(str::to_owned)
            }
            _ => None,
        })
        .collect();
    assert_eq!(lines, ["say hello", "look"]);
    assert_eq!(thawed.protocol().flags().screenwidth, Some(90));
    say(&mut core, "After the upgrade.", t2);
    say(&mut thawed, "After the upgrade.", t2);
    same(&mut core, &mut thawed, &mut wire, &mut wire_thawed);
    let later = t2 + Duration::from_secs(31);
    core.handle_timeout(later);
    thawed.handle_timeout(later);
    same(&mut core, &mut thawed, &mut wire, &mut wire_thawed);

    let (plain, begun, ended) = client_view(&wire_thawed);
    assert_eq!(
        (begun, ended),
        (2, 1),
        "one stream ended, a fresh one began"
    );
    let text = String::from_utf8_lossy(&plain);
    let order = [
        "Welcome before",
        "Unsent when frozen.",
        "After the upgrade.",
    ];
    let places: Vec<_> = order.iter().map(|t| text.find(t).expect(t)).collect();
    assert!(places.windows(2).all(|w| w[0] < w[1]), "{text}");
}

#[test]
fn instants_are_carried_relative_to_now() {
    let t0 = Instant::now();
    let mut core = telnet_core(config(), t0);
    core.handle_input(b"x", t0);
    let t1 = t0 + Duration::from_secs(1);
    let deadline = core.poll_timeout().expect("a deadline");
    core.prepare_freeze(t1);
    let frozen = core.freeze(t1).expect("carriable");
    let elsewhere = t1 + Duration::from_secs(3600);
    let thawed = Core::thaw(&frozen, config(), elsewhere).expect("thaws");
    let moved = thawed.poll_timeout().expect("a deadline");
    assert_eq!(moved, deadline + Duration::from_secs(3600));
    assert_eq!(thawed.started(), t0 + Duration::from_secs(3600));
}

#[test]
fn abort_freeze_carries_on_with_a_fresh_mccp2_stream() {
    let t0 = Instant::now();
    let mut core = telnet_core(config(), t0);
    let mut wire = sent(&mut core);
    core.handle_input(&negotiate(), t0);
    say(&mut core, "one", t0);
    core.prepare_freeze(t0);
    say(&mut core, "between", t0);
    core.abort_freeze(t0);
    say(&mut core, "two", t0);
    wire.extend(sent(&mut core));
    let (plain, begun, ended) = client_view(&wire);
    assert_eq!((begun, ended), (2, 1));
    let text = String::from_utf8_lossy(&plain);
    assert!(text.contains("one\r\nbetween\r\ntwo\r\n"), "{text}");
}

const UPGRADE: &[u8] = b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:4001\r\nConnection: Upgrade\r\n\
    Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
    Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";

fn frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() < 126);
    let mut bytes = vec![
        u8::from(fin) << 7 | opcode,
        0x80 | payload.len() as u8,
        0,
        0,
        0,
        0,
    ];
    bytes.extend_from_slice(payload);
    bytes
}

/// A web session in `protocol` (a subprotocol header line, or none for
/// Evennia's), carried mid-frame and mid-fragmented-message.
fn web_round_trip(protocol: &str, opcode: u8, line: &[u8]) {
    let t0 = Instant::now();
    let mut core = web_core(config(), t0);
    let mut request = UPGRADE.to_vec();
    if !protocol.is_empty() {
        request.extend_from_slice(protocol.as_bytes());
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"\r\n");
    core.handle_input(&request, t0);
    let answer = sent(&mut core);
    assert!(
        answer.starts_with(b"HTTP/1.1 101 "),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    let opened = events(&mut core);
    assert!(
        matches!(opened.first(), Some(CoreEvent::Register { .. })),
        "{opened:?}"
    );
    say(&mut core, "unsent", t0);
    // One whole line, the first fragment of another and half a frame.
    let whole = frame(true, opcode, line);
    let (head, tail) = line.split_at(line.len() / 2);
    let first = frame(false, opcode, head);
    let last = frame(true, 0, tail);
    let mut input = whole.clone();
    input.extend_from_slice(&first);
    input.extend_from_slice(&last[..3]);
    core.handle_input(&input, t0);
    core.prepare_freeze(t0);
    let frozen = core.freeze(t0).expect("carriable");
    let mut thawed = Core::thaw(&frozen, config(), t0).expect("thaws");
    core.abort_freeze(t0);
    let (mut wire_a, mut wire_b) = (Vec::new(), Vec::new());
    same(&mut core, &mut thawed, &mut wire_a, &mut wire_b);
    let mut rest = last[3..].to_vec();
    rest.extend(frame(true, 9, b"ping"));
    core.handle_input(&rest, t0);
    thawed.handle_input(&rest, t0);
    let (a, b) = (events(&mut core), events(&mut thawed));
    assert_eq!(a, b);
    let typed = |e: &CoreEvent| matches!(e, CoreEvent::Input { command, .. } if command.first_str() == Some("look around"));
    assert_eq!(
        a.iter().filter(|e| typed(e)).count(),
        1,
        "the fragmented line, once: {a:?}"
    );
    say(&mut core, "after", t0);
    say(&mut thawed, "after", t0);
    same(&mut core, &mut thawed, &mut wire_a, &mut wire_b);
    let ping_due = t0 + Duration::from_secs(3600);
    core.handle_timeout(ping_due);
    thawed.handle_timeout(ping_due);
    same(&mut core, &mut thawed, &mut wire_a, &mut wire_b);
    assert!(wire_a.windows(5).any(|w| w == b"after"));
}

#[test]
fn an_evennia_websocket_session_thaws_mid_frame() {
    web_round_trip("", 1, br#"["text", ["look around"], {}]"#);
}

#[test]
fn a_json_standard_websocket_session_thaws_mid_frame() {
    web_round_trip(
        "Sec-WebSocket-Protocol: json.mudstandards.org",
        2,
        b"look around",
    );
}

#[test]
fn an_uncarriable_session_says_why_and_freeze_refuses() {
    let t0 = Instant::now();
    let mut core = telnet_core(config(), t0);
    let mut bytes = vec![IAC, DO, 87];
    bytes.extend(sub(87, b""));
    core.handle_input(&bytes, t0);
    assert_eq!(core.uncarriable(), Some("MCCP3 input compression is on"));
    assert!(core.freeze(t0).is_err());
}

fn frozen_telnet() -> Vec<u8> {
    let t0 = Instant::now();
    let mut core = telnet_core(config(), t0);
    core.handle_input(&negotiate(), t0);
    core.handle_input(b"partial", t0);
    say(&mut core, "pending output", t0);
    core.prepare_freeze(t0);
    core.freeze(t0).expect("carriable")
}

#[test]
fn wrong_version_empty_oversized_and_trailing_bytes_are_refused() {
    let now = Instant::now();
    let mut bytes = frozen_telnet();
    assert!(Core::thaw(&bytes, config(), now).is_ok());
    let thaw = |bytes: &[u8]| Core::thaw(bytes, config(), now).err();
    assert_eq!(thaw(&[]), Some(ThawError::Empty));
    bytes[0] = CORE_STATE_VERSION + 1;
    let err = thaw(&bytes).expect("refused");
    assert_eq!(err, ThawError::Version(CORE_STATE_VERSION + 1));
    assert!(err.to_string().contains("version"), "{err}");
    bytes[0] = CORE_STATE_VERSION;
    bytes.push(0);
    assert!(matches!(thaw(&bytes), Some(ThawError::Decode(_))));
    let big = vec![CORE_STATE_VERSION; MAX_STATE_BYTES + 1];
    assert_eq!(
        thaw(&big),
        Some(ThawError::TooLarge(MAX_STATE_BYTES + 1, MAX_STATE_BYTES))
    );
    assert_eq!(max_state_bytes(&config()), MAX_STATE_BYTES);
}

#[test]
fn a_state_past_the_current_limits_is_refused() {
    let t0 = Instant::now();
    let mut core = telnet_core(config(), t0);
    core.handle_input(&negotiate(), t0);
    core.handle_input(&[b'x'; 500], t0);
    say(&mut core, &"y".repeat(5000), t0);
    core.prepare_freeze(t0);
    let bytes = core.freeze(t0).expect("carriable");
    let small_line = Arc::new({
        let mut c = Config::default();
        c.limits.max_char_limit = 100;
        c
    });
    let err = Core::thaw(&bytes, small_line, t0).err().expect("refused");
    assert!(err.to_string().contains("max_char_limit"), "{err}");
    let small_out = Arc::new({
        let mut c = Config::default();
        c.limits.output_buffer_bytes = 10;
        c
    });
    let err = Core::thaw(&bytes, small_out, t0).err().expect("refused");
    assert!(err.to_string().contains("output_buffer_bytes"), "{err}");
}

fn frozen_web() -> Vec<u8> {
    let t0 = Instant::now();
    let mut core = web_core(config(), t0);
    let mut request = UPGRADE.to_vec();
    request.extend_from_slice(b"\r\n");
    core.handle_input(&request, t0);
    core.handle_input(&frame(false, 1, b"[\"text\", [\"lo")[..], t0);
    say(&mut core, "pending output", t0);
    core.freeze(t0).expect("carriable")
}

/// A thawed core (from corrupt bytes) must take input, time and output
/// without a panic.
fn exercise(mut core: Core, now: Instant) {
    core.handle_input(b"x\r\n\xff\xfa\x18\x00A\xff\xf0\x81\x80\0\0\0\0", now);
    say(&mut core, "text", now);
    let later = now + Duration::from_secs(7200);
    core.handle_timeout(later);
    let _ = core.poll_timeout();
    let _ = core.is_finished(later, true);
    events(&mut core);
    sent(&mut core);
}

proptest! {
    #[test]
    fn random_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let mut bytes = vec![CORE_STATE_VERSION];
        bytes.extend(body);
        let now = Instant::now();
        if let Ok(core) = Core::thaw(&bytes, config(), now) {
            exercise(core, now);
        }
    }

    #[test]
    fn truncated_or_flipped_states_never_panic(
        web in any::<bool>(),
        cut in 0usize..8192,
        flip in 0usize..8192,
        bit in 0u8..8,
    ) {
        let bytes = if web { frozen_web() } else { frozen_telnet() };
        let now = Instant::now();
        let cut = cut % bytes.len();
        prop_assert!(Core::thaw(&bytes[..cut], config(), now).is_err());
        let mut flipped = bytes.clone();
        let at = 1 + flip % (flipped.len() - 1);
        flipped[at] ^= 1 << bit;
        if let Ok(core) = Core::thaw(&flipped, config(), now) {
            exercise(core, now);
        }
    }
}

/// Pieces a telnet client may send, hostile ones included.
fn telnet_piece() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(negotiate()),
        Just(b"look\r\n".to_vec()),
        Just(b"say h\xc3\xa9\x08llo\r".to_vec()),
        Just(vec![IAC]),
        Just(vec![IAC, IAC]),
        Just(vec![IAC, SB, 201]),
        Just(b"Core.Ping {}".to_vec()),
        Just(vec![IAC, SE]),
        Just(vec![IAC, WILL, 31]),
        Just(sub(31, &[0, 80, 0, 24])),
        Just(sub(24, b"\x00TINTIN")),
        Just(vec![IAC, DO, 1]),
        Just(vec![IAC, DONT, COMPRESS2]),
        Just(vec![IAC, 241]),
        proptest::collection::vec(any::<u8>(), 0..16),
    ]
}

proptest! {
    /// Frozen after any prefix of any client's bytes, the thawed core
    /// goes on exactly as the original does (which carried on after an
    /// aborted freeze).
    #[test]
    fn a_telnet_core_frozen_anywhere_goes_on_the_same(
        pieces in proptest::collection::vec(telnet_piece(), 1..12),
        cut in any::<prop::sample::Index>(),
    ) {
        let wire: Vec<u8> = pieces.concat();
        let cut = cut.index(wire.len() + 1);
        let t0 = Instant::now();
        goes_on_the_same(telnet_core(config(), t0), &wire, cut, t0, Duration::from_millis(2500));
    }
}

/// Feed `wire[..cut]`, freeze and thaw `core`, then feed both the rest
/// `later`: the thawed core must write what the original does, at every
/// step. A core that cannot be carried at the cut is skipped.
fn goes_on_the_same(mut core: Core, wire: &[u8], cut: usize, t0: Instant, later: Duration) {
    core.handle_input(&wire[..cut], t0);
    say(&mut core, "before", t0);
    if core.uncarriable().is_some() {
        return;
    }
    core.prepare_freeze(t0);
    let frozen = core.freeze(t0).expect("carriable");
    let mut thawed = Core::thaw(&frozen, config(), t0).expect("thaws");
    core.abort_freeze(t0);
    let (mut a, mut b) = (Vec::new(), Vec::new());
    same(&mut core, &mut thawed, &mut a, &mut b);
    let t1 = t0 + later;
    core.handle_input(&wire[cut..], t1);
    thawed.handle_input(&wire[cut..], t1);
    say(&mut core, "after", t1);
    say(&mut thawed, "after", t1);
    same(&mut core, &mut thawed, &mut a, &mut b);
    core.handle_timeout(t1);
    thawed.handle_timeout(t1);
    same(&mut core, &mut thawed, &mut a, &mut b);
}

/// Frames a browser may send after the upgrade (lines, fragments of one,
/// pings, pongs, junk).
fn web_piece() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(frame(true, 1, br#"["text", ["look"], {}]"#)),
        Just(frame(false, 1, br#"["text", ["sa"#)),
        Just(frame(true, 0, br#"y hi"], {}]"#)),
        Just(frame(true, 9, b"ping")),
        Just(frame(true, 10, b"")),
        Just(frame(
            true,
            1,
            br#"["client_options", [], {"screenwidth": 100}]"#
        )),
        Just(frame(true, 1, b"not json")),
        proptest::collection::vec(any::<u8>(), 0..8),
    ]
}

proptest! {
    #[test]
    fn a_web_core_frozen_anywhere_goes_on_the_same(
        pieces in proptest::collection::vec(web_piece(), 1..10),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut wire = UPGRADE.to_vec();
        wire.extend_from_slice(b"\r\n");
        wire.extend(pieces.concat());
        let cut = cut.index(wire.len() + 1);
        let t0 = Instant::now();
        goes_on_the_same(web_core(config(), t0), &wire, cut, t0, Duration::from_secs(25));
    }
}
