//! The session rules, driven by a fake clock: a base `Instant` plus
//! durations. No sockets, threads or registry.

use super::*;
use crate::protocols::telnet::Telnet;
use crate::protocols::websocket::WebEngine;
use crate::session::worker::{telnet_settings, web_settings};

fn config(edit: impl FnOnce(&mut Config)) -> Arc<Config> {
    let mut config = Config::default();
    edit(&mut config);
    Arc::new(config)
}

fn telnet_core(config: Arc<Config>) -> (Core, Instant) {
    let now = Instant::now();
    let telnet = Telnet::new(telnet_settings(&config, Direction::Inbound), now);
    let protocol = Protocol::Telnet(Box::new(telnet));
    let core = Core::new(1, config, Direction::Inbound, protocol, now);
    (core, now)
}

fn web_core(config: Arc<Config>) -> (Core, Instant) {
    let now = Instant::now();
    let settings = web_settings(&config, false).expect("randomness for a browser id");
    let protocol = Protocol::Web(Box::new(WebEngine::new(settings, now)));
    let core = Core::new(2, config, Direction::Web, protocol, now);
    (core, now)
}

const UPGRADE: &[u8] = b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:4001\r\nConnection: Upgrade\r\n\
    Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
    Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";

/// A client frame (clients must mask; a zero key leaves the payload as is).
fn frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() < 126);
    let mut bytes = vec![0x80 | opcode, 0x80 | payload.len() as u8, 0, 0, 0, 0];
    bytes.extend_from_slice(payload);
    bytes
}

fn web_line(text: &str) -> Vec<u8> {
    frame(0x1, format!(r#"["text", ["{text}"], {{}}]"#).as_bytes())
}

fn pong() -> Vec<u8> {
    frame(0xA, b"")
}

/// A web core whose websocket is open, its events and 101 consumed.
fn opened_web(config: Arc<Config>) -> (Core, Instant) {
    let (mut core, now) = web_core(config);
    core.handle_input(UPGRADE, now);
    assert!(shown(&mut core).starts_with("HTTP/1.1 101 "));
    events(&mut core);
    (core, now)
}

fn events(core: &mut Core) -> Vec<CoreEvent> {
    std::iter::from_fn(|| core.poll_event()).collect()
}

/// The commands that went to the game, as `(text, visible)`.
fn inputs(core: &mut Core) -> Vec<(String, bool)> {
    events(core)
        .into_iter()
        .filter_map(|event| match event {
            CoreEvent::Input { command, visible } => {
                Some((command.first_str().unwrap_or_default().to_owned(), visible))
            }
            _ => None,
        })
        .collect()
}

fn texts(core: &mut Core) -> Vec<String> {
    inputs(core).into_iter().map(|(text, _)| text).collect()
}

/// Everything queued for the socket, taken (as the worker would write it).
fn shown(core: &mut Core) -> String {
    String::from_utf8_lossy(&std::mem::take(core.transmit())).into_owned()
}

fn secs_f(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

#[test]
fn lines_are_framed_across_chunk_boundaries() {
    let (mut core, now) = telnet_core(config(|_| {}));
    for chunk in [&b"lo"[..], b"ok\r", b"\nsay h", b"i\n"] {
        core.handle_input(chunk, now);
    }
    assert_eq!(texts(&mut core), ["look", "say hi"]);
}

#[test]
fn a_long_line_is_refused_with_the_message() {
    let (mut core, now) = telnet_core(config(|c| c.limits.max_char_limit = 10));
    shown(&mut core);
    core.handle_input(b"xxxxxxxxxxxxxxxxxxxx\r\nok\r\n", now);
    assert_eq!(texts(&mut core), ["ok"]);
    assert!(shown(&mut core).contains("too long (10 characters at most)"));
}

#[test]
fn commands_over_the_rate_are_refused_with_one_notice_a_second() {
    let (mut core, t0) = telnet_core(config(|c| c.limits.max_command_rate = 1.0));
    shown(&mut core);
    let notice = "sending commands too fast";
    core.handle_input(b"a\nb\nc\n", t0);
    let got = events(&mut core);
    let refused = got.iter().filter(|e| **e == CoreEvent::Refused).count();
    assert_eq!(refused, 2);
    assert_eq!(shown(&mut core).matches(notice).count(), 1);

    core.handle_input(b"d\n", t0 + secs_f(0.5));
    assert!(texts(&mut core).is_empty(), "still over the rate");
    assert!(
        !shown(&mut core).contains(notice),
        "no second notice within 1 s"
    );

    core.handle_input(b"e\nf\n", t0 + secs_f(1.1));
    assert_eq!(texts(&mut core), ["e"]);
    assert_eq!(shown(&mut core).matches(notice).count(), 1, "a new notice");
}

#[test]
fn an_idle_player_is_told_and_closed() {
    let (mut core, t0) = telnet_core(config(|c| {
        c.limits.idle_timeout_secs = 10;
        c.limits.login_timeout_secs = 0;
    }));
    core.handle_input(b"look\n", t0 + secs_f(5.0));
    core.handle_timeout(t0 + secs_f(10.5));
    assert!(!core.is_closing(), "input at 5 s moved the deadline");
    let due = core.poll_timeout().expect("an idle deadline");
    assert!(
        due >= t0 + secs_f(15.0) && due <= t0 + secs_f(15.1),
        "{due:?}"
    );
    shown(&mut core);
    core.handle_timeout(due);
    assert!(shown(&mut core).contains("idle too long"));
    assert_eq!(core.closing(), Some(Closing::Asked));
}

#[test]
fn web_pongs_do_not_keep_an_idle_player() {
    let (mut core, t0) = opened_web(config(|c| {
        c.limits.idle_timeout_secs = 10;
        c.limits.login_timeout_secs = 0;
        c.web.ping_interval_secs = 1000.0;
    }));
    for s in [3.0, 6.0, 9.0] {
        core.handle_input(&pong(), t0 + secs_f(s));
    }
    core.handle_timeout(t0 + secs_f(10.1));
    assert!(core.is_closing(), "pongs are not player input");

    let (mut core, t0) = opened_web(config(|c| {
        c.limits.idle_timeout_secs = 10;
        c.web.ping_interval_secs = 1000.0;
    }));
    core.handle_input(&web_line("look"), t0 + secs_f(9.0));
    assert_eq!(texts(&mut core), ["look"]);
    core.handle_timeout(t0 + secs_f(10.1));
    assert!(!core.is_closing(), "a typed line is");
}

#[test]
fn a_player_not_logged_in_by_the_deadline_is_closed() {
    let quiet = |c: &mut Config| {
        c.limits.login_timeout_secs = 5;
        c.limits.idle_timeout_secs = 0;
        c.telnet.negotiation_timeout_secs = 1.0;
    };
    let (mut core, t0) = telnet_core(config(quiet));
    core.handle_timeout(t0 + secs_f(4.9));
    assert!(!core.is_closing());
    assert_eq!(core.poll_timeout(), Some(t0 + secs_f(5.0)));
    shown(&mut core);
    core.handle_timeout(t0 + secs_f(5.0));
    assert!(shown(&mut core).contains("took too long to log in"));
    assert_eq!(core.closing(), Some(Closing::Asked));

    let (mut core, t0) = telnet_core(config(quiet));
    core.handle_message(ToWorker::LoggedIn(true), t0 + secs_f(1.0));
    core.handle_timeout(t0 + secs_f(1.0));
    let keepalive = core.poll_timeout();
    assert!(
        keepalive > Some(t0 + secs_f(5.0)),
        "no login deadline once logged in"
    );
    core.handle_timeout(t0 + secs_f(60.0));
    assert!(!core.is_closing());
}

#[test]
fn an_http_request_on_telnet_is_answered_and_closed() {
    let (mut core, now) = telnet_core(config(|_| {}));
    shown(&mut core);
    core.handle_input(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", now);
    assert!(texts(&mut core).is_empty(), "nothing reaches the game");
    assert!(shown(&mut core).contains(&http_probe::answer(Some(4001))));
    assert_eq!(core.closing(), Some(Closing::Asked));
}

#[test]
fn nothing_follows_the_answer_to_a_browser_on_telnet() {
    let (mut core, now) = telnet_core(config(|_| {}));
    core.handle_input(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", now);
    let answer = shown(&mut core);
    assert!(
        answer.ends_with(&http_probe::answer(Some(4001))),
        "{answer:?}"
    );
    let login_screen = Command::text("Welcome! create <name> <password>");
    let out = ToWorker::Out {
        commands: vec![login_screen],
        read_at: None,
    };
    core.handle_message(out, now);
    core.handle_message(ToWorker::Close("Goodbye.".into()), now);
    assert_eq!(
        shown(&mut core),
        "",
        "the game's text is not in the HTTP body"
    );
}

#[test]
fn a_nul_only_line_is_an_idle_marker() {
    let (mut core, now) = telnet_core(config(|_| {}));
    core.handle_input(b"\0\0\nlook\n", now);
    assert_eq!(
        inputs(&mut core),
        [("idle".to_owned(), false), ("look".to_owned(), true)]
    );
}

#[test]
fn invalid_utf8_is_replaced_with_a_notice() {
    let (mut core, now) = telnet_core(config(|_| {}));
    shown(&mut core);
    core.handle_input(b"caf\xe9\r\n", now);
    assert_eq!(texts(&mut core), ["caf\u{fffd}"]);
    assert!(shown(&mut core).contains("not valid UTF-8"));
}

#[test]
fn output_past_the_buffer_cap_closes_at_once() {
    let (mut core, now) = telnet_core(config(|c| c.limits.output_buffer_bytes = 4096));
    let text = "x".repeat(5000);
    let out = ToWorker::Out {
        commands: vec![Command::text(text)],
        read_at: None,
    };
    core.handle_message(out, now);
    assert_eq!(core.closing(), Some(Closing::PeerGone));
    assert!(core.transmit().is_empty(), "nothing more is sent");
    assert!(core.is_finished(now, false));
}

#[test]
fn a_close_shows_the_reason_then_ends_once_flushed_or_after_the_linger() {
    let (mut core, now) = telnet_core(config(|_| {}));
    shown(&mut core);
    core.handle_message(ToWorker::Close("Goodbye for now.".into()), now);
    assert!(shown(&mut core).contains("Goodbye for now."));
    assert!(!core.is_finished(now, false), "still flushing");
    assert!(core.is_finished(now, true), "flushed");
    assert_eq!(core.poll_timeout(), Some(now + CLOSE_LINGER));
    assert!(core.is_finished(now + CLOSE_LINGER, false), "linger over");
    core.handle_input(b"look\n", now);
    assert!(texts(&mut core).is_empty(), "no input once closing");
}

#[test]
fn telnet_registers_at_once_and_syncs_when_negotiation_settles() {
    let (mut core, now) = telnet_core(config(|c| c.telnet.negotiation_timeout_secs = 2.0));
    let registered = CoreEvent::Register {
        csessid: None,
        subprotocol: None,
        forwarded: Vec::new(),
    };
    assert_eq!(events(&mut core), [registered]);
    core.handle_timeout(now + secs_f(2.0));
    assert!(events(&mut core).contains(&CoreEvent::Sync));
}

#[test]
fn a_web_session_registers_only_when_the_websocket_opens() {
    let (mut core, now) = web_core(config(|_| {}));
    assert!(events(&mut core).is_empty());
    core.handle_input(b"GET / HTTP/1.1\r\nHost: 127.0.0.1:4001\r\n\r\n", now);
    assert!(shown(&mut core).starts_with("HTTP/1.1 200 "));
    assert!(events(&mut core).is_empty(), "a page fetch is no session");

    let (mut core, now) = web_core(config(|_| {}));
    core.handle_input(UPGRADE, now);
    match &events(&mut core)[..] {
        [CoreEvent::Register {
            csessid: Some(id),
            subprotocol: Some(_),
            forwarded,
        }, CoreEvent::Sync] => {
            assert_eq!(id.len(), 32);
            assert!(forwarded.is_empty());
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_unopened_web_connection_has_no_login_or_idle_deadline() {
    let (mut core, now) = web_core(config(|c| {
        c.limits.login_timeout_secs = 1;
        c.limits.idle_timeout_secs = 1;
        c.web.http_timeout_secs = 1000.0;
    }));
    core.handle_timeout(now + secs_f(5.0));
    assert!(!core.is_closing(), "the HTTP timeout is the web engine's");
}

#[test]
fn a_config_reload_applies_new_limits() {
    let (mut core, now) = telnet_core(config(|_| {}));
    core.handle_input(b"12345678\n", now);
    assert_eq!(texts(&mut core), ["12345678"]);
    core.set_config(config(|c| c.limits.max_char_limit = 5));
    shown(&mut core);
    core.handle_input(b"12345678\n", now);
    assert!(texts(&mut core).is_empty());
    assert!(shown(&mut core).contains("5 characters at most"));
}

#[test]
fn an_mssp_request_is_passed_on_and_the_table_sent() {
    let (mut core, now) = telnet_core(config(|_| {}));
    events(&mut core);
    shown(&mut core);
    // IAC DO MSSP: the client accepts our offer, then asks.
    core.handle_input(&[255, 253, 70], now);
    assert!(events(&mut core).contains(&CoreEvent::MsspRequest));
    core.send_mssp(&[("NAME".into(), vec!["Portal".into()])]);
    assert!(shown(&mut core).contains("NAME"));
}

#[test]
fn the_opening_negotiation_waits_for_the_first_bytes_or_the_hold() {
    let (mut core, now) = telnet_core(config(|c| c.telnet.negotiation_hold_ms = 150));
    assert!(core.transmit().is_empty(), "held while it may be a browser");
    assert_eq!(core.poll_timeout(), Some(now + Duration::from_millis(150)));
    core.handle_timeout(now + Duration::from_millis(150));
    assert!(
        core.transmit().starts_with(&[255]),
        "negotiation after the hold"
    );

    let (mut core, now) = telnet_core(config(|c| c.telnet.negotiation_hold_ms = 150));
    core.handle_input(b"l", now);
    assert!(
        core.transmit().starts_with(&[255]),
        "not a browser: at once"
    );
}

#[test]
fn a_browser_gets_http_with_no_telnet_bytes_before_it() {
    let (mut core, now) = telnet_core(config(|c| c.telnet.negotiation_hold_ms = 150));
    core.handle_input(b"GET / HT", now);
    assert!(core.transmit().is_empty(), "still may be a browser");
    core.handle_input(b"TP/1.1\r\nHost: x\r\n\r\n", now);
    assert!(
        core.transmit().starts_with(b"HTTP/1."),
        "{:?}",
        core.transmit()
    );
    assert!(!core.transmit().contains(&255));
}

/// The session fields the worker held before the core took them over
/// (and the registry's login deadline, now kept here).
#[allow(dead_code)]
struct TakenOver {
    config: Arc<Config>,
    started: Instant,
    protocol: Protocol,
    game_flags: crate::wire::flags::ProtocolFlags,
    framer: LineFramer,
    limiter: RateLimiter,
    rate_notice_at: Option<Instant>,
    dropped_subnegotiations: u64,
    out: Vec<u8>,
    last_input: Instant,
    lines_seen: u64,
    direction: Direction,
    closing: Option<(Closing, Instant)>,
    sessid: u64,
    login_deadline: Option<f64>,
    /// Not taken over but new since: the opening negotiation held while a
    /// client may be a browser (one pointer; the rest is boxed).
    hold: Option<Box<u8>>,
}

#[test]
fn the_core_is_no_bigger_than_the_fields_it_took_over() {
    let core = std::mem::size_of::<Core>();
    let fields = std::mem::size_of::<TakenOver>();
    eprintln!("size_of Core {core}, fields taken over {fields}");
    assert!(core <= fields, "{core} > {fields}");
}
