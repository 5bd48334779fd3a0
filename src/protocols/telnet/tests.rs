//! Engine tests: scripted byte exchanges with exact reply bytes.

use super::*;
use crate::wire::flags::window_map;
use crate::wire::value::Value;
use proptest::prelude::*;
use std::io::Read;

fn t0() -> Instant {
    Instant::now()
}

/// Only the options a test names, no MCCP unless asked.
fn only(f: impl FnOnce(&mut TelnetSettings)) -> TelnetSettings {
    let mut s = TelnetSettings {
        options: TelnetOptions::none(),
        ..TelnetSettings::default()
    };
    f(&mut s);
    s
}

/// An engine with its offers already taken off the wire.
fn engine(settings: TelnetSettings) -> (Telnet, Instant) {
    let now = t0();
    let mut telnet = Telnet::new(settings, now);
    drain(&mut telnet);
    (telnet, now)
}

fn drain(telnet: &mut Telnet) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(bytes) = telnet.poll_transmit() {
        out.extend(bytes);
    }
    out
}

fn events(telnet: &mut Telnet) -> Vec<TelnetEvent> {
    std::iter::from_fn(|| telnet.poll_event()).collect()
}

/// Feed bytes, return what the engine sends back.
fn exchange(telnet: &mut Telnet, now: Instant, input: &[u8]) -> Vec<u8> {
    telnet.handle_input(input, now);
    drain(telnet)
}

fn sub(option: u8, body: &[u8]) -> Vec<u8> {
    [&[IAC, SB, option][..], &escape_iac(body), &[IAC, SE]].concat()
}

fn flag(telnet: &Telnet, name: &str) -> Value {
    telnet
        .protocol_flags()
        .get(name)
        .cloned()
        .unwrap_or_default()
}

// ---- offers and the Q method ----

#[test]
fn default_offers_put_ttype_before_mccp() {
    let mut telnet = Telnet::new(TelnetSettings::default(), t0());
    let offers = drain(&mut telnet);
    let want: Vec<u8> = [
        [IAC, WILL, SGA],
        [IAC, DO, 24],
        [IAC, DO, 31],
        [IAC, WILL, EOR],
        [IAC, WILL, 42],
        [IAC, DO, 39],
        [IAC, WILL, 69],
        [IAC, WILL, 201],
        [IAC, WILL, 70],
        [IAC, WILL, MXP],
        [IAC, WILL, 86],
        [IAC, WILL, 87],
    ]
    .concat();
    assert_eq!(offers, want);
}

#[test]
fn answers_to_our_offers_get_no_reply() {
    let (mut telnet, now) = engine(only(|s| s.options.gmcp = true));
    assert_eq!(exchange(&mut telnet, now, &[IAC, DO, 201]), b"");
    assert_eq!(
        exchange(&mut telnet, now, &[IAC, DO, 201]),
        b"",
        "already on"
    );
    assert_eq!(flag(&telnet, "GMCP"), Value::Bool(true));
}

#[test]
fn unknown_options_are_refused_once() {
    let (mut telnet, now) = engine(only(|_| {}));
    let replies = exchange(
        &mut telnet,
        now,
        &[IAC, WILL, 200, IAC, DO, 200, IAC, WONT, 200],
    );
    assert_eq!(replies, [IAC, DONT, 200, IAC, WONT, 200]);
}

#[test]
fn unasked_do_echo_is_refused() {
    let (mut telnet, now) = engine(only(|_| {}));
    assert_eq!(
        exchange(&mut telnet, now, &[IAC, DO, ECHO]),
        [IAC, WONT, ECHO]
    );
}

#[test]
fn set_echo_sends_will_and_wont_once_each() {
    let (mut telnet, now) = engine(only(|_| {}));
    telnet.set_echo(true);
    assert_eq!(drain(&mut telnet), [IAC, WILL, ECHO]);
    telnet.set_echo(true);
    assert_eq!(drain(&mut telnet), b"", "a pending request is not repeated");
    assert_eq!(exchange(&mut telnet, now, &[IAC, DO, ECHO]), b"");
    telnet.set_echo(false);
    assert_eq!(drain(&mut telnet), [IAC, WONT, ECHO]);
    assert_eq!(exchange(&mut telnet, now, &[IAC, DONT, ECHO]), b"");
}

/// Two portals wired to each other, both offering everything they can
/// without compression: the exchange must die out.
#[test]
fn two_engines_negotiating_with_each_other_stop() {
    let settings = TelnetSettings {
        options: TelnetOptions {
            mccp: false,
            ..TelnetOptions::default()
        },
        ..TelnetSettings::default()
    };
    let now = t0();
    let mut a = Telnet::new(settings.clone(), now);
    let mut b = Telnet::new(settings, now);
    let mut rounds = 0;
    loop {
        let to_b = drain(&mut a);
        let to_a = drain(&mut b);
        if to_a.is_empty() && to_b.is_empty() {
            break;
        }
        rounds += 1;
        assert!(rounds < 20, "negotiation does not settle");
        b.handle_input(&to_b, now);
        a.handle_input(&to_a, now);
    }
    // Each accepts what a client would do only where a server may too.
    assert!(a.options.enabled(Side::Us, SGA) && a.options.enabled(Side::Him, SGA));
    assert!(
        !a.options.enabled(Side::Us, 201),
        "a server does not accept GMCP"
    );
    assert!(!a.options.pending(Side::Us, 201));
}

// ---- Ready and the deadline ----

#[test]
fn ready_fires_once_at_the_deadline_without_answers() {
    let (mut telnet, now) = engine(TelnetSettings::default());
    let deadline = now + Duration::from_secs(2);
    assert_eq!(telnet.poll_timeout(), Some(deadline));
    telnet.handle_timeout(now + Duration::from_millis(1999));
    assert!(events(&mut telnet).is_empty());
    telnet.handle_timeout(deadline);
    assert_eq!(events(&mut telnet), [TelnetEvent::Ready]);
    telnet.handle_timeout(deadline + Duration::from_secs(1));
    assert!(events(&mut telnet).is_empty());
    assert_eq!(
        telnet.poll_timeout(),
        Some(now + Duration::from_secs(30)),
        "only the keepalive is left"
    );
}

#[test]
fn ready_fires_when_every_answer_is_in() {
    let (mut telnet, now) = engine(only(|s| {
        s.options.naws = true;
        s.options.ttype = true;
    }));
    let mut input = vec![IAC, DO, SGA, IAC, WILL, 31, IAC, WONT, 24];
    telnet.handle_input(&input, now);
    assert!(events(&mut telnet).is_empty(), "NAWS size not yet reported");
    input = sub(31, &[0, 80, 0, 24]);
    telnet.handle_input(&input, now);
    assert_eq!(events(&mut telnet), [TelnetEvent::Ready]);
    assert_eq!(telnet.poll_timeout(), Some(now + Duration::from_secs(30)));
}

#[test]
fn nop_keepalive_repeats() {
    let (mut telnet, now) = engine(only(|_| {}));
    telnet.handle_timeout(now + Duration::from_secs(30));
    assert_eq!(drain(&mut telnet), [IAC, NOP]);
    assert_eq!(telnet.poll_timeout(), Some(now + Duration::from_secs(60)));
}

// ---- NAWS ----

#[test]
fn naws_sets_the_size_and_a_resize_after_ready_is_flags_changed() {
    let (mut telnet, now) = engine(only(|s| s.options.naws = true));
    let mut input = vec![IAC, DO, SGA, IAC, WILL, 31];
    input.extend(sub(31, &[0, 120, 0, 50]));
    assert_eq!(exchange(&mut telnet, now, &input), b"");
    assert_eq!(events(&mut telnet), [TelnetEvent::Ready]);
    assert_eq!(flag(&telnet, "SCREENWIDTH"), window_map(120));
    assert_eq!(flag(&telnet, "SCREENHEIGHT"), window_map(50));
    assert_eq!(flag(&telnet, "AUTORESIZE"), Value::Bool(true));
    telnet.handle_input(&sub(31, &[1, 0, 0, 255]), now);
    assert_eq!(events(&mut telnet), [TelnetEvent::FlagsChanged]);
    assert_eq!(flag(&telnet, "SCREENWIDTH"), window_map(256));
    assert_eq!(flag(&telnet, "SCREENHEIGHT"), window_map(255));
    telnet.handle_input(&sub(31, &[1, 0, 0, 255]), now);
    assert!(events(&mut telnet).is_empty(), "the same size is no change");
}

// ---- TTYPE / MTTS ----

#[test]
fn ttype_cycle_asks_three_times_and_sets_flags() {
    let (mut telnet, now) = engine(only(|s| s.options.ttype = true));
    let send = [IAC, SB, 24, 1, IAC, SE];
    assert_eq!(exchange(&mut telnet, now, &[IAC, WILL, 24]), send);
    assert_eq!(exchange(&mut telnet, now, &sub(24, b"\x00MUDLET")), send);
    assert_eq!(
        exchange(&mut telnet, now, &sub(24, b"\x00XTERM-256COLOR")),
        send
    );
    assert_eq!(exchange(&mut telnet, now, &sub(24, b"\x00MTTS 2319")), b"");
    for name in [
        "ANSI",
        "VT100",
        "UTF-8",
        "XTERM256",
        "TRUECOLOR",
        "SSL",
        "TTYPE",
    ] {
        assert_eq!(flag(&telnet, name), Value::Bool(true), "{name}");
    }
    assert_eq!(flag(&telnet, "SCREENREADER"), Value::Bool(false));
    assert_eq!(flag(&telnet, "CLIENTNAME"), Value::from("MUDLET"));
    assert_eq!(flag(&telnet, "TERM"), Value::from("XTERM-256COLOR"));
}

// ---- SGA, EOR, prompts, text ----

#[test]
fn prompt_ends_with_ga_until_sga_then_eor_when_agreed() {
    let (mut telnet, now) = engine(only(|s| s.options.eor = true));
    telnet.send_prompt("> ");
    assert_eq!(drain(&mut telnet), b"> \xff\xf9");
    exchange(&mut telnet, now, &[IAC, DO, SGA]);
    assert_eq!(flag(&telnet, "NOGOAHEAD"), Value::Bool(true));
    telnet.send_prompt("> ");
    assert_eq!(drain(&mut telnet), b"> ");
    exchange(&mut telnet, now, &[IAC, DO, EOR]);
    telnet.send_prompt("> ");
    assert_eq!(drain(&mut telnet), b"> \xff\xef");
}

#[test]
fn mudlet_gets_ga_after_prompts_even_with_sga() {
    let (mut telnet, now) = engine(only(|s| s.options.ttype = true));
    exchange(&mut telnet, now, &[IAC, DO, SGA, IAC, WILL, 24]);
    exchange(&mut telnet, now, &sub(24, b"\x00Mudlet"));
    telnet.send_prompt(">");
    assert_eq!(drain(&mut telnet), b">\xff\xf9");
}

#[test]
fn send_text_uses_crlf_and_ends_the_line() {
    let (mut telnet, _) = engine(only(|_| {}));
    telnet.send_text("a\nb\r\nc");
    assert_eq!(drain(&mut telnet), b"a\r\nb\r\nc\r\n");
    telnet.send_text("done\n");
    assert_eq!(drain(&mut telnet), b"done\r\n");
}

// ---- CHARSET ----

#[test]
fn charset_accepted_switches_the_encoding() {
    let (mut telnet, now) = engine(only(|s| s.options.charset = true));
    let request = exchange(&mut telnet, now, &[IAC, DO, 42]);
    assert_eq!(request, sub(42, b"\x01;UTF-8;ISO-8859-1;US-ASCII"));
    exchange(&mut telnet, now, &sub(42, b"\x02ISO-8859-1"));
    assert_eq!(flag(&telnet, "ENCODING"), Value::from("latin-1"));
    telnet.send_text("caf\u{e9} \u{ff}");
    assert_eq!(drain(&mut telnet), b"caf\xe9 \xff\xff\r\n", "0xFF doubled");
    assert_eq!(telnet.decode_line(b"caf\xe9"), ("café".to_string(), false));
}

#[test]
fn charset_rejected_keeps_utf8() {
    let (mut telnet, now) = engine(only(|s| s.options.charset = true));
    exchange(&mut telnet, now, &[IAC, DO, 42]);
    exchange(&mut telnet, now, &sub(42, b"\x03"));
    assert_eq!(flag(&telnet, "ENCODING"), Value::from("utf-8"));
    assert!(!telnet.charset_pending);
}

#[test]
fn a_client_charset_request_is_answered() {
    let (mut telnet, now) = engine(only(|s| s.options.charset = true));
    exchange(&mut telnet, now, &[IAC, WILL, 42]);
    let reply = exchange(&mut telnet, now, &sub(42, b"\x01 KOI8-R UTF-8"));
    assert_eq!(reply, sub(42, b"\x02UTF-8"));
}

#[test]
fn decode_line_replaces_invalid_bytes_in_the_session_encoding() {
    let (telnet, _) = engine(only(|_| {}));
    assert_eq!(telnet.decode_line("é".as_bytes()), ("é".to_string(), false));
    assert_eq!(
        telnet.decode_line(b"caf\xe9"),
        ("caf\u{fffd}".to_string(), true)
    );
}

#[test]
fn mtts_without_utf8_switches_to_the_fallback_encoding() {
    let (mut telnet, now) = engine(only(|s| s.options.ttype = true));
    exchange(&mut telnet, now, &[IAC, WILL, 24]);
    for answer in [&b"\x00OLDCLIENT"[..], b"\x00ANSI", b"\x00MTTS 1"] {
        exchange(&mut telnet, now, &sub(24, answer));
    }
    assert_eq!(telnet.protocol_flags()["ENCODING"], Value::from("latin-1"));
    assert_eq!(telnet.decode_line(b"caf\xe9"), ("café".to_string(), false));
}

// ---- NEW-ENVIRON ----

#[test]
fn new_environ_request_and_mnes_flags() {
    let (mut telnet, now) = engine(only(|s| s.options.environ = true));
    let request = exchange(&mut telnet, now, &[IAC, WILL, 39]);
    assert_eq!(request, sub(39, &environ::request()));
    telnet.handle_input(
        &sub(
            39,
            b"\x00\x00CLIENT_NAME\x01TinTin++\x00CLIENT_VERSION\x012.02",
        ),
        now,
    );
    assert_eq!(flag(&telnet, "CLIENTNAME"), Value::from("TINTIN++"));
    assert_eq!(flag(&telnet, "CLIENTVERSION"), Value::from("2.02"));
}

// ---- MSSP, MXP ----

#[test]
fn mssp_request_is_an_event_and_the_table_goes_out() {
    let (mut telnet, now) = engine(only(|s| s.options.mssp = true));
    exchange(&mut telnet, now, &[IAC, DO, 70]);
    assert!(events(&mut telnet).contains(&TelnetEvent::MsspRequest));
    telnet.send_mssp(&[("PLAYERS".into(), vec!["3".into()])]);
    assert_eq!(drain(&mut telnet), b"\xff\xfa\x46\x01PLAYERS\x023\xff\xf0");
}

#[test]
fn mxp_is_started_with_an_empty_subnegotiation() {
    let (mut telnet, now) = engine(only(|s| s.options.mxp = true));
    assert!(!telnet.mxp_enabled());
    assert_eq!(
        exchange(&mut telnet, now, &[IAC, DO, MXP]),
        [IAC, SB, MXP, IAC, SE]
    );
    assert!(telnet.mxp_enabled());
    assert_eq!(flag(&telnet, "MXP"), Value::Bool(true));
}

// ---- GMCP and MSDP ----

#[test]
fn gmcp_in_is_a_command_and_out_is_a_subnegotiation() {
    let (mut telnet, now) = engine(only(|s| s.options.gmcp = true));
    telnet.handle_input(&[IAC, DO, 201], now);
    telnet.handle_input(
        &sub(201, br#"Core.Hello {"client":"Mudlet","version":"4"}"#),
        now,
    );
    let got = events(&mut telnet);
    let Some(TelnetEvent::Command(command)) = got.last() else {
        panic!("no command in {got:?}");
    };
    assert_eq!(command.name, "hello");
    assert_eq!(command.kwargs["client"], Value::from("Mudlet"));
    assert_eq!(command.kwargs["version"], Value::from("4"));
    let out = Command {
        name: "char_vitals".into(),
        args: vec![],
        kwargs: [("hp".to_string(), Value::Int(9))].into_iter().collect(),
    };
    assert!(telnet.send_oob(&out));
    assert_eq!(drain(&mut telnet), sub(201, br#"Char.Vitals {"hp": 9}"#));
}

#[test]
fn oob_falls_back_to_msdp_then_to_nothing() {
    let (mut telnet, now) = engine(only(|s| {
        s.options.gmcp = true;
        s.options.msdp = true;
    }));
    let command = Command::text("hi");
    assert!(!telnet.send_oob(&command), "nothing agreed yet");
    telnet.handle_input(&[IAC, DONT, 201, IAC, DO, 69], now);
    assert!(telnet.send_oob(&command));
    assert_eq!(drain(&mut telnet), sub(69, b"\x01text\x02hi"));
    telnet.handle_input(&sub(69, b"\x01SEND\x02\x05\x02HP\x02MANA\x06"), now);
    let got: Vec<Command> = events(&mut telnet)
        .into_iter()
        .filter_map(|e| match e {
            TelnetEvent::Command(c) => Some(c),
            _ => None,
        })
        .collect();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].name, "msdp_send");
    assert_eq!(got[0].args, [Value::from("HP"), Value::from("MANA")]);
}

#[test]
fn gmcp_before_it_is_agreed_is_ignored() {
    let (mut telnet, now) = engine(only(|s| s.options.gmcp = true));
    telnet.handle_input(&sub(201, b"Core.Ping"), now);
    assert!(events(&mut telnet).is_empty());
}

#[test]
fn oversized_subnegotiation_is_dropped_and_text_after_it_survives() {
    let (mut telnet, now) = engine(only(|s| {
        s.options.gmcp = true;
        s.max_subnegotiation = 64;
    }));
    telnet.handle_input(&[IAC, DO, 201], now);
    let mut body = b"Big.Thing ".to_vec();
    body.extend(std::iter::repeat_n(b'x', 300));
    let mut input = sub(201, &body);
    input.extend_from_slice(b"look\r\n");
    telnet.handle_input(&input, now);
    assert_eq!(
        events(&mut telnet),
        [TelnetEvent::Data(b"look\r\n".to_vec())]
    );
    assert_eq!(telnet.dropped_subnegotiations(), 1);
    assert!(telnet.parser_body_capacity() <= 64);
}

// ---- MCCP2 ----

fn inflate_all(bytes: &[u8]) -> Vec<u8> {
    let mut decoder = flate2::Decompress::new(true);
    let mut out = Vec::with_capacity(bytes.len() * 20 + 1024);
    decoder
        .decompress_vec(bytes, &mut out, flate2::FlushDecompress::Sync)
        .unwrap();
    out
}

#[test]
fn mccp2_waits_for_ttype_then_compresses_every_write() {
    let (mut telnet, now) = engine(only(|s| {
        s.options.mccp = true;
        s.options.ttype = true;
    }));
    let send = [IAC, SB, 24, 1, IAC, SE];
    assert_eq!(
        exchange(&mut telnet, now, &[IAC, DO, 86, IAC, WILL, 24]),
        send
    );
    // TTYPE still running: no compression yet.
    assert_eq!(exchange(&mut telnet, now, &sub(24, b"\x00X")), send);
    let start = exchange(&mut telnet, now, &sub(24, b"\x00X"));
    assert_eq!(
        start,
        [IAC, SB, 86, IAC, SE],
        "TTYPE done: compression starts"
    );
    assert_eq!(flag(&telnet, "MCCP"), Value::Bool(true));
    telnet.send_text("hello");
    let first = drain(&mut telnet);
    assert_eq!(
        inflate_all(&first),
        b"hello\r\n",
        "sync-flushed, readable at once"
    );
    telnet.send_text("again");
    let second = drain(&mut telnet);
    let mut whole = first.clone();
    whole.extend(&second);
    assert_eq!(inflate_all(&whole), b"hello\r\nagain\r\n");
    // The client turns it off: the stream ends, then a plain WONT.
    let off = exchange(&mut telnet, now, &[IAC, DONT, 86]);
    let mut stream = whole;
    stream.extend(&off);
    let mut decoder = flate2::read::ZlibDecoder::new(&stream[..]);
    let mut plain = Vec::new();
    decoder.read_to_end(&mut plain).unwrap();
    assert_eq!(plain, b"hello\r\nagain\r\n");
    assert!(off.ends_with(&[IAC, WONT, 86]));
    telnet.send_text("plain");
    assert_eq!(drain(&mut telnet), b"plain\r\n");
    assert_eq!(flag(&telnet, "MCCP"), Value::Bool(false));
}

#[test]
fn mccp2_starts_at_the_deadline_when_ttype_never_answers() {
    let (mut telnet, now) = engine(only(|s| {
        s.options.mccp = true;
        s.options.ttype = true;
    }));
    assert_eq!(
        exchange(&mut telnet, now, &[IAC, DO, 86, IAC, WILL, 24]).len(),
        6
    );
    telnet.handle_timeout(now + Duration::from_secs(2));
    assert_eq!(drain(&mut telnet), [IAC, SB, 86, IAC, SE]);
}

// ---- MCCP3 ----

fn zlib(bytes: &[u8], finish: bool) -> Vec<u8> {
    let mut deflater = Deflater::new();
    let mut out = Vec::new();
    if finish {
        deflater.finish(bytes, &mut out);
    } else {
        deflater.compress(bytes, &mut out);
    }
    out
}

#[test]
fn mccp3_input_is_decompressed_from_the_byte_after_its_start() {
    let (mut telnet, now) = engine(only(|s| {
        s.options.mccp = true;
        s.options.naws = true;
    }));
    telnet.handle_input(&[IAC, DO, 87], now);
    let mut input = b"plain ".to_vec();
    input.extend(sub(87, &[]));
    let mut inner = b"zipped\r\n".to_vec();
    inner.extend([IAC, WILL, 31]);
    inner.extend(sub(31, &[0, 90, 0, 30]));
    input.extend(zlib(&inner, true));
    input.extend(b"after\r\n");
    telnet.handle_input(&input, now);
    let data: Vec<u8> = events(&mut telnet)
        .into_iter()
        .filter_map(|e| match e {
            TelnetEvent::Data(d) => Some(d),
            _ => None,
        })
        .flatten()
        .collect();
    assert_eq!(data, b"plain zipped\r\nafter\r\n");
    assert_eq!(flag(&telnet, "SCREENWIDTH"), window_map(90));
}

#[test]
fn mccp3_split_at_every_byte_gives_the_same_data() {
    let mut input = sub(87, &[]);
    input.extend(zlib(b"north\r\nsouth\r\n", false));
    let mut want = None;
    for cut in 0..=input.len() {
        let (mut telnet, now) = engine(only(|s| s.options.mccp = true));
        telnet.handle_input(&[IAC, DO, 87], now);
        events(&mut telnet);
        telnet.handle_input(&input[..cut], now);
        telnet.handle_input(&input[cut..], now);
        let got = merged(events(&mut telnet));
        assert_eq!(
            *want.get_or_insert_with(|| got.clone()),
            got,
            "cut at {cut}"
        );
    }
    assert_eq!(
        want.unwrap(),
        [TelnetEvent::Data(b"north\r\nsouth\r\n".to_vec())]
    );
}

#[test]
fn an_mccp3_start_inside_compressed_input_is_ignored() {
    // Found by fuzzing: a second start inside the stream began a second
    // inflater, and the bytes after it were lost or kept by where reads cut.
    let mut inner = b"look\r\n".to_vec();
    inner.extend(sub(87, &[]));
    inner.extend(b"north\r\n");
    let mut input = sub(87, &[]);
    input.extend(zlib(&inner, true));
    input.extend(b"after\r\n");
    for cut in 0..=input.len() {
        let (mut telnet, now) = engine(only(|s| s.options.mccp = true));
        telnet.handle_input(&[IAC, DO, 87], now);
        events(&mut telnet);
        telnet.handle_input(&input[..cut], now);
        telnet.handle_input(&input[cut..], now);
        assert_eq!(
            merged(events(&mut telnet)),
            [TelnetEvent::Data(b"look\r\nnorth\r\nafter\r\n".to_vec())],
            "cut at {cut}"
        );
    }
}

#[test]
fn corrupt_mccp3_stops_input() {
    let (mut telnet, now) = engine(only(|s| s.options.mccp = true));
    telnet.handle_input(&[IAC, DO, 87], now);
    let mut input = sub(87, &[]);
    input.extend(b"\x00\x01 definitely not zlib");
    telnet.handle_input(&input, now);
    telnet.handle_input(b"look\r\n", now);
    assert!(telnet.input_failed());
    assert!(events(&mut telnet).is_empty());
}

fn data_len(events: &[TelnetEvent]) -> usize {
    let data = events.iter().map(|event| match event {
        TelnetEvent::Data(bytes) => bytes.len(),
        _ => 0,
    });
    data.sum()
}

#[test]
fn an_mccp3_bomb_is_cut_off_at_the_inflate_cap() {
    let cap = 64 * 1024;
    let (mut telnet, now) = engine(only(|s| {
        s.options.mccp = true;
        s.max_inflated_input = cap;
    }));
    telnet.handle_input(&[IAC, DO, 87], now);
    let mut input = sub(87, &[]);
    let bomb = zlib(&vec![0u8; 8 << 20], true);
    assert!(bomb.len() < 16 * 1024, "{}", bomb.len());
    input.extend(&bomb);
    telnet.handle_input(&input, now);
    telnet.handle_input(b"look\r\n", now);
    assert_eq!(telnet.input_failure(), Some(InputFailure::TooLarge));
    assert!(telnet.input_failed());
    assert!(data_len(&events(&mut telnet)) <= cap);
}

#[test]
fn mccp3_input_under_the_cap_in_each_call_is_all_read() {
    let cap = 64 * 1024;
    let (mut telnet, now) = engine(only(|s| {
        s.options.mccp = true;
        s.max_inflated_input = cap;
    }));
    telnet.handle_input(&[IAC, DO, 87], now);
    telnet.handle_input(&sub(87, &[]), now);
    let mut deflater = mccp::Deflater::new();
    let mut sent = 0;
    for _ in 0..4 {
        let mut wire = Vec::new();
        deflater.compress(&vec![b'x'; cap - 100], &mut wire);
        telnet.handle_input(&wire, now);
        sent += cap - 100;
    }
    assert_eq!(telnet.input_failure(), None);
    assert_eq!(data_len(&events(&mut telnet)), sent);
}

// ---- properties ----

/// Adjacent Data events joined, so different chunkings compare equal.
fn merged(events: Vec<TelnetEvent>) -> Vec<TelnetEvent> {
    let mut out: Vec<TelnetEvent> = Vec::new();
    for event in events {
        match (out.last_mut(), event) {
            (Some(TelnetEvent::Data(a)), TelnetEvent::Data(b)) => a.extend(b),
            (_, event) => out.push(event),
        }
    }
    out
}

/// Bytes that look like a client: text, negotiations of options we know,
/// subnegotiations (some oversized or unterminated), and noise.
fn client_bytes() -> impl Strategy<Value = Vec<u8>> {
    let known = prop::sample::select(vec![1u8, 3, 24, 25, 31, 39, 42, 69, 70, 86, 87, 91, 201, 7]);
    let piece = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..12),
        prop::collection::vec(b'a'..=b'z', 0..12),
        (
            prop::sample::select(vec![WILL, WONT, DO, DONT]),
            known.clone()
        )
            .prop_map(|(v, o)| vec![IAC, v, o]),
        (known, prop::collection::vec(any::<u8>(), 0..100)).prop_map(|(o, b)| sub(o, &b)),
        Just(vec![IAC]),
        Just(vec![IAC, SB]),
    ];
    prop::collection::vec(piece, 0..24).prop_map(|pieces| pieces.concat())
}

fn run(settings: &TelnetSettings, chunks: &[&[u8]]) -> (Vec<TelnetEvent>, Vec<u8>) {
    let now = t0();
    let mut telnet = Telnet::new(settings.clone(), now);
    for chunk in chunks {
        telnet.handle_input(chunk, now);
    }
    telnet.handle_timeout(now + Duration::from_secs(3));
    telnet.send_text("bye");
    (merged(events(&mut telnet)), drain(&mut telnet))
}

/// `settings` with MCCP switched off.
fn no_mccp(mut settings: TelnetSettings) -> TelnetSettings {
    settings.options.mccp = false;
    settings
}

fn small_cap() -> TelnetSettings {
    TelnetSettings {
        max_subnegotiation: 48,
        ..TelnetSettings::default()
    }
}

proptest! {
    #[test]
    fn random_bytes_never_panic(input in prop::collection::vec(any::<u8>(), 0..600)) {
        run(&small_cap(), &[&input]);
    }

    #[test]
    fn data_never_holds_an_iac_that_was_not_escaped(input in client_bytes()) {
        let settings = no_mccp(small_cap());
        let (events, _) = run(&settings, &[&input]);
        let data: Vec<u8> = events
            .into_iter()
            .filter_map(|e| match e { TelnetEvent::Data(d) => Some(d), _ => None })
            .flatten()
            .collect();
        let escaped = input.windows(2).filter(|w| w == &[IAC, IAC]).count();
        prop_assert!(data.iter().filter(|&&b| b == IAC).count() <= escaped);
    }

    #[test]
    fn well_formed_subnegotiations_never_reach_data(
        text in prop::collection::vec(b'a'..=b'z', 0..20),
        body in prop::collection::vec(any::<u8>(), 0..40),
        option in any::<u8>(),
    ) {
        let settings = no_mccp(small_cap());
        let input = [text.clone(), sub(option, &body), text.clone()].concat();
        let (events, _) = run(&settings, &[&input]);
        let data: Vec<u8> = events
            .into_iter()
            .filter_map(|e| match e { TelnetEvent::Data(d) => Some(d), _ => None })
            .flatten()
            .collect();
        prop_assert_eq!(data, [text.clone(), text].concat());
    }

    #[test]
    fn splitting_input_anywhere_changes_nothing(
        input in client_bytes(),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
    ) {
        // MCCP3 is left off: a random "compressed" stream is corrupt, and
        // where corruption is noticed may depend on the chunking.
        let settings = no_mccp(small_cap());
        let whole = run(&settings, &[&input]);
        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(input.len() + 1)).collect();
        points.sort_unstable();
        let mut chunks: Vec<&[u8]> = Vec::new();
        let mut start = 0;
        for point in points {
            chunks.push(&input[start..point]);
            start = point;
        }
        chunks.push(&input[start..]);
        prop_assert_eq!(run(&settings, &chunks), whole);
    }

    #[test]
    fn with_mccp_on_splitting_still_changes_nothing(
        input in client_bytes(),
        cut in any::<prop::sample::Index>(),
    ) {
        let settings = small_cap();
        let whole = run(&settings, &[&input]);
        let cut = cut.index(input.len() + 1);
        prop_assert_eq!(run(&settings, &[&input[..cut], &input[cut..]]), whole);
    }
}
