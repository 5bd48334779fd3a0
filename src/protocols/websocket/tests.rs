//! The web engine against tungstenite's client side, all in memory.

use super::*;
use proptest::prelude::*;

const ID: &str = "Abcdefghijklmnop0123456789";

fn settings() -> WebSettings {
    WebSettings {
        fresh_csessid: "Fresh0000000000000000000".into(),
        commands: vec!["ping".into()],
        max_frame_bytes: 1024,
        max_message_bytes: 1024,
        ..WebSettings::default()
    }
}

fn upgrade(extra: &str) -> Vec<u8> {
    format!(
        "GET /ws HTTP/1.1\r\nHost: 127.0.0.1:4001\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extra}\r\n"
    )
    .into_bytes()
}

fn events(web: &mut WebEngine) -> Vec<WebEvent> {
    std::iter::from_fn(|| web.poll_event()).collect()
}

/// A client end: tungstenite's client context over its own pipe.
struct Client {
    context: WebSocketContext,
    pipe: Pipe,
}

impl Client {
    fn new() -> Client {
        Client {
            context: WebSocketContext::new(Role::Client, None),
            pipe: Pipe::default(),
        }
    }

    fn send(&mut self, web: &mut WebEngine, message: Message, now: Instant) {
        self.context
            .write(&mut self.pipe, message)
            .expect("client write");
        self.context.flush(&mut self.pipe).expect("client flush");
        let bytes = std::mem::take(&mut self.pipe.output);
        web.handle_input(&bytes, now);
    }

    /// Everything the engine sent, as messages.
    fn receive(&mut self, bytes: &[u8]) -> Vec<Message> {
        self.pipe.input.extend(bytes);
        let mut out = Vec::new();
        while let Ok(message) = self.context.read(&mut self.pipe) {
            out.push(message);
        }
        out
    }
}

/// An engine with an open Evennia-format websocket, its 101 consumed.
fn opened(extra: &str) -> (WebEngine, Client, Instant) {
    let now = Instant::now();
    let mut web = WebEngine::new(settings(), now);
    web.handle_input(&upgrade(extra), now);
    let answer = web.poll_transmit().expect("101");
    assert!(
        answer.starts_with(b"HTTP/1.1 101 "),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    (web, Client::new(), now)
}

#[test]
fn the_page_is_served_with_a_browser_id_cookie_and_the_connection_kept() {
    let now = Instant::now();
    let mut web = WebEngine::new(settings(), now);
    web.handle_input(
        b"GET / HTTP/1.1\r\nHost: h\r\n\r\nGET /style.css HTTP/1.1\r\nHost: h\r\n\r\n",
        now,
    );
    let sent = String::from_utf8(web.poll_transmit().unwrap_or_default()).unwrap_or_default();
    assert!(sent.starts_with("HTTP/1.1 200 OK\r\n"));
    assert!(sent.contains(
        "Set-Cookie: portal_csessid=Fresh0000000000000000000; Path=/; Max-Age=2592000; HttpOnly; SameSite=Lax\r\n"
    ));
    assert_eq!(sent.matches("HTTP/1.1 200 OK").count(), 2, "both answered");
    assert!(!events(&mut web)
        .iter()
        .any(|e| matches!(e, WebEvent::Closed(_))));
}

#[test]
fn a_page_request_with_a_cookie_gets_no_new_one() {
    let now = Instant::now();
    let mut web = WebEngine::new(settings(), now);
    let request = format!("GET / HTTP/1.1\r\nHost: h\r\nCookie: portal_csessid={ID}\r\n\r\n");
    web.handle_input(request.as_bytes(), now);
    let sent = String::from_utf8(web.poll_transmit().unwrap_or_default()).unwrap_or_default();
    assert!(!sent.contains("Set-Cookie"));
}

#[test]
fn an_upgrade_opens_a_session_with_the_cookie_browser_id() {
    let (mut web, _, _) = opened(&format!("Cookie: portal_csessid={ID}\r\n"));
    assert_eq!(
        events(&mut web),
        vec![WebEvent::Opened {
            csessid: ID.into(),
            format: Format::Evennia,
            forwarded: Vec::new(),
        }]
    );
    let (mut web, _, _) = opened("Cookie: portal_csessid=short\r\n");
    assert!(
        matches!(&events(&mut web)[0], WebEvent::Opened { csessid, .. } if csessid.starts_with("Fresh"))
    );
}

#[test]
fn lines_come_in_and_text_goes_out_as_evennia_arrays() {
    let (mut web, mut client, now) = opened("");
    events(&mut web);
    client.send(&mut web, Message::text(r#"["text", ["look"], {}]"#), now);
    assert_eq!(events(&mut web), vec![WebEvent::Line("look".into())]);
    web.send_text("<span class=\"fg-9\">Hi</span>");
    let got = client.receive(&web.poll_transmit().unwrap_or_default());
    assert_eq!(
        got,
        vec![Message::text(
            r#"["text",["<span class=\"fg-9\">Hi</span>"],{}]"#
        )]
    );
}

#[test]
fn bad_json_is_refused_with_a_message_and_the_session_goes_on() {
    let (mut web, mut client, now) = opened("");
    events(&mut web);
    client.send(&mut web, Message::text("{oops"), now);
    assert!(matches!(&events(&mut web)[..], [WebEvent::Refused(_)]));
    let got = client.receive(&web.poll_transmit().unwrap_or_default());
    let Some(Message::Text(text)) = got.first() else {
        panic!("{got:?}")
    };
    assert!(
        text.starts_with(r#"["portal",["Not understood: not valid JSON"#),
        "{text}"
    );
    client.send(
        &mut web,
        Message::text(r#"["text", ["still here"], {}]"#),
        now,
    );
    assert_eq!(events(&mut web), vec![WebEvent::Line("still here".into())]);
}

#[test]
fn an_oversized_message_closes_with_1009() {
    let (mut web, mut client, now) = opened("");
    events(&mut web);
    let big = format!(r#"["text", ["{}"], {{}}]"#, "x".repeat(2000));
    client.send(&mut web, Message::text(big), now);
    let got = events(&mut web);
    assert!(
        matches!(&got[0], WebEvent::Refused(why) if why.contains("too big")),
        "{got:?}"
    );
    assert!(matches!(got.last(), Some(WebEvent::Closed(_))));
    let frames = client.receive(&web.poll_transmit().unwrap_or_default());
    let Some(Message::Close(Some(frame))) = frames.last() else {
        panic!("{frames:?}")
    };
    assert_eq!(frame.code, CloseCode::Size);
}

#[test]
fn a_client_that_answers_pings_stays_and_a_silent_one_is_dropped() {
    let (mut web, mut client, start) = opened("");
    events(&mut web);
    let ping_at = web.poll_timeout().expect("a ping is scheduled");
    web.handle_timeout(ping_at);
    let got = client.receive(&web.poll_transmit().unwrap_or_default());
    assert!(matches!(got[..], [Message::Ping(_)]));
    // tungstenite's client queued the pong; deliver it.
    client.context.flush(&mut client.pipe).ok();
    web.handle_input(&std::mem::take(&mut client.pipe.output), ping_at);
    let later = ping_at + Duration::from_secs(5);
    web.handle_timeout(later);
    assert!(events(&mut web).is_empty(), "answered: still open");
    assert_eq!(
        web.poll_timeout(),
        Some(ping_at + Duration::from_secs(20)),
        "next ping"
    );

    // The next ping goes unanswered.
    let next = ping_at + Duration::from_secs(20);
    web.handle_timeout(next);
    assert!(web.poll_transmit().is_some(), "ping sent");
    let deadline = web.poll_timeout().expect("pong deadline");
    assert!(deadline > next && deadline > start);
    web.handle_timeout(deadline - Duration::from_millis(1));
    assert!(events(&mut web).is_empty());
    web.handle_timeout(deadline);
    assert_eq!(
        events(&mut web),
        vec![WebEvent::Closed("no answer to a ping".into())]
    );
}

#[test]
fn a_silent_http_client_gets_408() {
    let now = Instant::now();
    let mut web = WebEngine::new(settings(), now);
    web.handle_input(b"GET / HT", now);
    let deadline = web.poll_timeout().expect("deadline");
    web.handle_timeout(deadline);
    let sent = web.poll_transmit().unwrap_or_default();
    assert!(sent.starts_with(b"HTTP/1.1 408 "));
    assert!(matches!(events(&mut web).last(), Some(WebEvent::Closed(_))));
}

#[test]
fn a_foreign_origin_gets_403_and_no_session() {
    let now = Instant::now();
    let mut web = WebEngine::new(settings(), now);
    web.handle_input(&upgrade("Origin: https://evil.example\r\n"), now);
    assert!(web
        .poll_transmit()
        .unwrap_or_default()
        .starts_with(b"HTTP/1.1 403 "));
    let got = events(&mut web);
    assert!(
        !got.iter().any(|e| matches!(e, WebEvent::Opened { .. })),
        "{got:?}"
    );
}

#[test]
fn gmcp_subprotocol_sends_ansi_in_binary_and_gmcp_in_text() {
    let (mut web, mut client, now) = opened("Sec-WebSocket-Protocol: gmcp.mudstandards.org\r\n");
    events(&mut web);
    web.send_text("\x1b[31mred\x1b[0m");
    let sent = Command {
        name: "char_vitals".into(),
        ..Command::default()
    };
    assert!(web.send_oob(&sent));
    let got = client.receive(&web.poll_transmit().unwrap_or_default());
    assert_eq!(got[0], Message::binary(b"\x1b[31mred\x1b[0m\r\n".to_vec()));
    assert_eq!(got[1], Message::text("Char.Vitals"));
    client.send(&mut web, Message::text("Core.Ping"), now);
    assert!(matches!(&events(&mut web)[..], [WebEvent::Command(c)] if c.name == "ping"));
}

/// Sends `frame` on a websocket opened with `subprotocol` and returns the
/// events and the flags after it.
fn size_report(subprotocol: &str, frame: Message) -> (Vec<WebEvent>, ProtocolFlags) {
    let header = format!("Sec-WebSocket-Protocol: {subprotocol}\r\n");
    let (mut web, mut client, now) = opened(&header);
    events(&mut web);
    client.send(&mut web, frame, now);
    (events(&mut web), web.flags().clone())
}

#[test]
fn each_format_reports_the_window_size_into_the_flags() {
    let evennia = r#"["client_options", [], {"screenwidth": 131, "screenheight": 42}]"#;
    let gmcp = r#"Core.Hello {"screenwidth": 131, "screenheight": 42}"#;
    let envelope = serde_json::json!({"proto": "gmcp", "id": "Core.Hello", "data": r#"{"screenwidth": 131, "screenheight": 42}"#});
    for (subprotocol, frame) in [
        ("v1.evennia.com", evennia.to_owned()),
        ("gmcp.mudstandards.org", gmcp.to_owned()),
        ("json.mudstandards.org", envelope.to_string()),
    ] {
        let (got, flags) = size_report(subprotocol, Message::text(frame));
        assert_eq!(got, [WebEvent::FlagsChanged], "{subprotocol}");
        assert_eq!(flags.screenwidth, Some(131), "{subprotocol}");
        assert_eq!(flags.screenheight, Some(42), "{subprotocol}");
        assert_eq!(flags.autoresize, Some(true), "{subprotocol}");
    }
}

#[test]
fn an_unchanged_size_is_not_reported_again_and_a_new_one_is() {
    let (mut web, mut client, now) = opened("");
    events(&mut web);
    let report =
        |w: u16| Message::text(format!(r#"["client_options", [], {{"screenwidth": {w}}}]"#));
    client.send(&mut web, report(90), now);
    assert_eq!(events(&mut web), [WebEvent::FlagsChanged]);
    client.send(&mut web, report(90), now);
    assert_eq!(events(&mut web), []);
    client.send(&mut web, report(45), now);
    assert_eq!(events(&mut web), [WebEvent::FlagsChanged]);
    assert_eq!(web.flags().screenwidth, Some(45));
    assert_eq!(web.flags().screenheight, None);
}

#[test]
fn the_size_is_taken_even_when_client_options_is_not_a_game_command() {
    // settings() lets only `ping` through to the game.
    let both = r#"["client_options", [], {"screenwidth": 100, "nocolor": true}]"#;
    let (got, flags) = size_report("v1.evennia.com", Message::text(both));
    assert_eq!(got[0], WebEvent::FlagsChanged);
    assert!(matches!(&got[1..], [WebEvent::Refused(why)] if why.contains("client_options")));
    assert_eq!(flags.screenwidth, Some(100));
    let bad = r#"["client_options", [], {"screenwidth": "wide"}]"#;
    let (got, flags) = size_report("v1.evennia.com", Message::text(bad));
    assert!(matches!(&got[..], [WebEvent::Refused(why)] if why.contains("screenwidth")));
    assert_eq!(flags.screenwidth, None);
}

#[test]
fn close_sends_a_close_frame_with_the_reason() {
    let (mut web, mut client, _) = opened("");
    web.close("Goodbye!", false);
    let got = client.receive(&web.poll_transmit().unwrap_or_default());
    let Some(Message::Close(Some(frame))) = got.last() else {
        panic!("{got:?}")
    };
    assert_eq!(
        (frame.code, frame.reason.as_str()),
        (CloseCode::Normal, "Goodbye!")
    );
}

fn run_split(bytes: &[u8], cuts: &[usize]) -> (Vec<WebEvent>, Vec<u8>) {
    let now = Instant::now();
    let mut web = WebEngine::new(settings(), now);
    let mut start = 0;
    for &cut in cuts.iter().chain(std::iter::once(&bytes.len())) {
        let cut = cut.clamp(start, bytes.len());
        web.handle_input(&bytes[start..cut], now);
        start = cut;
    }
    let mut sent = Vec::new();
    while let Some(bytes) = web.poll_transmit() {
        sent.extend(bytes);
    }
    (events(&mut web), sent)
}

fn handshake_and_frames() -> Vec<u8> {
    let mut client = Client::new();
    for text in [r#"["text", ["look"], {}]"#, r#"["ping", [], {}]"#, "{bad"] {
        client
            .context
            .write(&mut client.pipe, Message::text(text))
            .ok();
    }
    client.context.flush(&mut client.pipe).ok();
    let mut bytes = upgrade("");
    bytes.extend(std::mem::take(&mut client.pipe.output));
    bytes
}

#[test]
fn input_split_at_every_byte_gives_the_same_events() {
    let bytes = handshake_and_frames();
    let (whole, sent) = run_split(&bytes, &[]);
    assert_eq!(whole.len(), 4, "{whole:?}");
    for cut in 1..bytes.len() {
        assert_eq!(
            run_split(&bytes, &[cut]),
            (whole.clone(), sent.clone()),
            "cut {cut}"
        );
    }
}

proptest! {
    #[test]
    fn random_chunking_gives_the_same_events(cuts in proptest::collection::vec(0usize..400, 0..8)) {
        let bytes = handshake_and_frames();
        let mut cuts = cuts;
        cuts.sort_unstable();
        prop_assert_eq!(run_split(&bytes, &cuts), run_split(&bytes, &[]));
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..800)) {
        let mut input = upgrade("");
        input.extend(bytes);
        let _ = run_split(&input, &[]);
        let _ = run_split(&input[100..], &[]);
    }
}

#[test]
fn over_tls_the_cookie_is_host_prefixed_and_secure() {
    let now = Instant::now();
    let secure = WebSettings {
        secure: true,
        ..settings()
    };
    let mut web = WebEngine::new(secure.clone(), now);
    web.handle_input(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", now);
    let sent = String::from_utf8(web.poll_transmit().unwrap_or_default()).unwrap_or_default();
    assert!(
        sent.contains("Set-Cookie: __Host-portal_csessid=Fresh"),
        "{sent}"
    );
    assert!(sent.contains("; Secure\r\n"), "{sent}");
    // The plain-http name is not taken over https.
    let mut web = WebEngine::new(secure, now);
    let planted = format!("Cookie: portal_csessid={ID}\r\n");
    web.handle_input(&upgrade(&planted), now);
    assert!(
        matches!(&events(&mut web)[0], WebEvent::Opened { csessid, .. } if csessid.starts_with("Fresh"))
    );
}

#[test]
fn a_close_without_a_reason_still_carries_one() {
    let (mut web, mut client, _) = opened("");
    web.close("", false);
    let got = client.receive(&web.poll_transmit().unwrap_or_default());
    let Some(Message::Close(Some(frame))) = got.last() else {
        panic!("{got:?}")
    };
    assert_eq!(frame.code, CloseCode::Normal);
    assert_eq!(
        frame.reason.as_str(),
        "closed by the server",
        "the page needs a reason to stay closed"
    );
}

// ---- AJAX requests and sessions ----

fn post(body: &str, extra: &str) -> Vec<u8> {
    format!(
        "POST /webclientdata HTTP/1.1\r\nHost: 127.0.0.1:4001\r\nCookie: portal_csessid={ID}\r\n\
         Content-Length: {}\r\n{extra}\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn transmitted(web: &mut WebEngine) -> String {
    let bytes: Vec<u8> = std::iter::from_fn(|| web.poll_transmit())
        .flatten()
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

#[test]
fn an_ajax_post_split_anywhere_is_handed_out_whole_with_its_cookie() {
    let body = "mode=receive&cuid=t1";
    let bytes = post(body, "");
    for cut in [1, 20, bytes.len() - body.len(), bytes.len() - 1] {
        let now = Instant::now();
        let mut web = WebEngine::new(settings(), now);
        web.handle_input(&bytes[..cut], now);
        assert!(events(&mut web).is_empty(), "cut {cut}: not yet");
        web.handle_input(&bytes[cut..], now);
        let got = events(&mut web);
        let [WebEvent::Ajax(ajax)] = got.as_slice() else {
            panic!("cut {cut}: {got:?}")
        };
        assert_eq!(ajax.body, body.as_bytes());
        assert_eq!(ajax.cookie.as_deref(), Some(ID));
        assert_eq!(ajax.host, "127.0.0.1:4001");
    }
}

#[test]
fn requests_after_an_ajax_post_wait_for_its_answer_and_stay_in_order() {
    let now = Instant::now();
    let mut web = WebEngine::new(settings(), now);
    let mut bytes = post("mode=input&data=1", "");
    bytes.extend_from_slice(b"GET /nope HTTP/1.1\r\nHost: h\r\n\r\n");
    web.handle_input(&bytes, now);
    assert!(matches!(events(&mut web).as_slice(), [WebEvent::Ajax(_)]));
    assert_eq!(transmitted(&mut web), "", "the 404 waits");
    web.answer_ajax(crate::protocols::ajax::answer("\"\""), now);
    let sent = transmitted(&mut web);
    let ok = sent.find("200 OK").unwrap_or(usize::MAX);
    let missing = sent.find("404 Not Found").unwrap_or(0);
    assert!(ok < missing, "{sent}");
}

#[test]
fn a_handed_over_connection_gives_back_what_was_read_past_the_request() {
    let now = Instant::now();
    let mut web = WebEngine::new(settings(), now);
    let mut bytes = post("mode=receive", "");
    bytes.extend_from_slice(b"POST /webcl");
    web.handle_input(&bytes, now);
    assert!(matches!(events(&mut web).as_slice(), [WebEvent::Ajax(_)]));
    assert_eq!(web.hand_over(), b"POST /webcl");
    web.handle_input(b"ientdata", now);
    assert!(events(&mut web).is_empty(), "nothing more is read here");
}

#[test]
fn ajax_posts_that_are_too_big_chunked_foreign_or_not_posts_are_refused() {
    let cases: [(Vec<u8>, &str); 4] = [
        (post(&"x".repeat(2000), ""), "413"),
        (
            b"POST /webclientdata HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                .to_vec(),
            "411",
        ),
        (post("mode=init", "Origin: https://evil.example\r\n"), "403"),
        (
            b"GET /webclientdata HTTP/1.1\r\nHost: h\r\n\r\n".to_vec(),
            "405",
        ),
    ];
    for (bytes, status) in cases {
        let now = Instant::now();
        let mut web = WebEngine::new(settings(), now);
        web.handle_input(&bytes, now);
        let got = events(&mut web);
        assert!(
            !got.iter().any(|e| matches!(e, WebEvent::Ajax(_))),
            "{status}: {got:?}"
        );
        let sent = transmitted(&mut web);
        assert!(sent.starts_with(&format!("HTTP/1.1 {status} ")), "{sent}");
    }
    let now = Instant::now();
    let mut web = WebEngine::new(settings(), now);
    web.handle_input(&post("mode=init", "Origin: http://127.0.0.1:4001\r\n"), now);
    assert!(
        matches!(events(&mut web).as_slice(), [WebEvent::Ajax(_)]),
        "the page's own origin"
    );
}

#[test]
fn a_slow_ajax_body_runs_into_the_request_deadline() {
    let now = Instant::now();
    let mut web = WebEngine::new(settings(), now);
    let bytes = post("mode=receive", "");
    web.handle_input(&bytes[..bytes.len() - 3], now);
    web.handle_timeout(now + Duration::from_secs(11));
    assert!(transmitted(&mut web).starts_with("HTTP/1.1 408 "));
}

#[test]
fn an_ajax_session_engine_speaks_evennia_one_message_a_line() {
    let mut web = WebEngine::new_ajax(settings(), ID.into(), "chrome");
    let got = events(&mut web);
    assert!(
        matches!(got.as_slice(), [WebEvent::Opened { csessid, format: Format::Evennia, .. }] if csessid == ID),
        "{got:?}"
    );
    assert_eq!(
        web.flags().clientname.as_deref(),
        Some("Portal webclient (ajax:chrome)")
    );
    assert!(web.renders_html());
    web.send_text("<b>hi</b>\nthere");
    web.set_echo(false);
    assert_eq!(
        transmitted(&mut web),
        "[\"text\",[\"<b>hi</b>\\nthere\"],{}]\n[\"echo\",[false],{}]\n"
    );
    let now = Instant::now();
    web.handle_input(br#"["text", ["look"], {}]"#, now);
    web.handle_input(br#"["ping", [], {}]"#, now);
    web.handle_input(b"[not json", now);
    let got = events(&mut web);
    assert_eq!(got[0], WebEvent::Line("look".into()));
    assert!(matches!(&got[1], WebEvent::Command(c) if c.name == "ping"));
    assert!(matches!(&got[2], WebEvent::Refused(_)), "{got:?}");
    assert!(transmitted(&mut web).contains("Not understood"));
    web.close("Goodbye.", false);
    assert_eq!(
        transmitted(&mut web),
        "[\"connection_close\",[\"Goodbye.\"],{\"code\":1000}]\n"
    );
    assert!(
        !web.send_oob(&Command::text("late")),
        "nothing after the close"
    );
}

#[test]
fn an_upgrade_reports_the_proxy_headers_chain() {
    let (mut web, _, _) =
        opened("X-Forwarded-For: 6.6.6.6, 203.0.113.7\r\nX-Forwarded-For: 10.0.0.1\r\n");
    let chain = match &events(&mut web)[0] {
        WebEvent::Opened { forwarded, .. } => forwarded.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(chain, ["6.6.6.6", "203.0.113.7", "10.0.0.1"]);
    // `Forwarded` wins over `X-Forwarded-For` when both are sent.
    let (mut web, _, _) =
        opened("X-Forwarded-For: 6.6.6.6\r\nForwarded: for=192.0.2.43;proto=https\r\n");
    let chain = match &events(&mut web)[0] {
        WebEvent::Opened { forwarded, .. } => forwarded.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(chain, ["192.0.2.43"]);
}

// ---- relaying to the game's web server ----

fn relaying() -> WebEngine {
    let settings = WebSettings {
        relay: true,
        ..settings()
    };
    WebEngine::new(settings, Instant::now())
}

#[test]
fn with_an_upstream_plain_requests_are_handed_out_for_the_relay_with_their_body_start() {
    let now = Instant::now();
    let mut web = relaying();
    web.handle_input(
        b"POST /accounts/login/ HTTP/1.1\r\nHost: h\r\nContent-Length: 9\r\n\r\nuser=al",
        now,
    );
    let request = match events(&mut web).as_slice() {
        [WebEvent::Relay(request)] => request.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(request.path, "/accounts/login/");
    // The page is not served here: nothing was answered.
    assert_eq!(web.poll_transmit(), None);
    assert_eq!(web.take_relay_input(), b"user=al");
    // Nothing more is read until the relay is done.
    web.handle_input(b"ic", now);
    assert!(events(&mut web).is_empty());
}

#[test]
fn after_a_kept_alive_relay_the_next_request_is_read_from_what_it_left() {
    let now = Instant::now();
    let mut web = relaying();
    web.handle_input(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", now);
    assert!(matches!(events(&mut web).as_slice(), [WebEvent::Relay(_)]));
    web.relay_done(
        b"GET /webclient/ HTTP/1.1\r\nHost: h\r\n\r\n".to_vec(),
        true,
        now,
    );
    match events(&mut web).as_slice() {
        [WebEvent::Relay(request)] => assert_eq!(request.path, "/webclient/"),
        other => panic!("{other:?}"),
    }
    web.relay_done(Vec::new(), false, now);
    assert!(matches!(events(&mut web).as_slice(), [WebEvent::Closed(_)]));
}

#[test]
fn the_last_request_a_connection_may_carry_is_relayed_as_its_last() {
    let now = Instant::now();
    let mut web = relaying();
    let get = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n";
    web.handle_input(get, now);
    for n in 1..MAX_REQUESTS {
        assert!(web.relay_may_keep_alive(), "request {n}");
        assert!(matches!(events(&mut web).as_slice(), [WebEvent::Relay(_)]));
        web.relay_done(get.to_vec(), true, now);
    }
    assert!(!web.relay_may_keep_alive());
    assert!(matches!(events(&mut web).as_slice(), [WebEvent::Relay(_)]));
    web.relay_done(get.to_vec(), true, now);
    assert!(matches!(events(&mut web).as_slice(), [WebEvent::Closed(_)]));
}

#[test]
fn with_an_upstream_ajax_posts_and_upgrades_stay_the_portal_s() {
    let now = Instant::now();
    let mut web = relaying();
    web.handle_input(&post("mode=init", ""), now);
    assert!(matches!(events(&mut web).as_slice(), [WebEvent::Ajax(_)]));
    let mut web = relaying();
    web.handle_input(&upgrade(""), now);
    assert!(matches!(
        events(&mut web).as_slice(),
        [WebEvent::Opened { .. }]
    ));
}

#[test]
fn evennia_s_page_names_its_browser_id_first_in_the_websocket_url() {
    let now = Instant::now();
    let session_key = "k2m1x9q7w3e5r8t0y6u4i2o1p3a5s7d9";
    let bytes = String::from_utf8(upgrade("")).unwrap().replacen(
        "GET /ws ",
        &format!("GET /?{session_key}&tab1&chrome "),
        1,
    );
    let mut web = relaying();
    web.handle_input(bytes.as_bytes(), now);
    match events(&mut web).as_slice() {
        [WebEvent::Opened { csessid, .. }] => assert_eq!(csessid, session_key),
        other => panic!("{other:?}"),
    }
    // Without an upstream, a URL cannot choose the browser id.
    let mut web = WebEngine::new(settings(), now);
    web.handle_input(bytes.as_bytes(), now);
    match events(&mut web).as_slice() {
        [WebEvent::Opened { csessid, .. }] => assert_eq!(csessid, "Fresh0000000000000000000"),
        other => panic!("{other:?}"),
    }
    // Evennia's page without a session (`false`) gets a fresh one.
    let bytes = bytes.replacen(session_key, "false", 1);
    let mut web = relaying();
    web.handle_input(bytes.as_bytes(), now);
    match events(&mut web).as_slice() {
        [WebEvent::Opened { csessid, .. }] => assert_eq!(csessid, "Fresh0000000000000000000"),
        other => panic!("{other:?}"),
    }
}
