//! AJAX long-poll sessions (`POST /webclientdata`, Evennia's wire format)
//! over real sockets: play beside a telnet player, parked receives woken by
//! output, a newer receive replacing a parked one, keepalive, close, the
//! idle ping and drop, the limits, a session outliving its connections,
//! and a game restart with held input.

mod support;
use std::io::ErrorKind;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};
use support::ajax::{browser_id, encode, AjaxClient, Conn};
use support::{wait_for, Portal};

/// Receive until a receive stays parked for `quiet`: the output so far is
/// read and the poll connection now holds a parked receive.
fn drain_until_parked(client: &mut AjaxClient, quiet: Duration) {
    let deadline = Instant::now() + support::WAIT;
    while Instant::now() < deadline {
        client.start_receive();
        if client.poll.answer_within(quiet).is_none() {
            return;
        }
    }
    panic!("the output never ran dry");
}

#[test]
fn an_ajax_player_and_a_telnet_player_hear_each_other() {
    let portal = Portal::start("");
    let mut web = AjaxClient::init(portal.web, &browser_id(1), "tab1");
    web.create("alma");
    let mut tom = portal.player("tom");

    web.send("say hello over ajax");
    web.expect("You say, \"hello over ajax\"");
    tom.expect("alma says, \"hello over ajax\"");
    tom.send("say hi <b>alma</b>");
    let heard = web.expect("tom says");
    assert!(heard.contains("hi <b>alma</b>"), "{heard}");
    web.send("echo ajax-token-1");
    web.expect("ajax-token-1");

    let status = portal.status_report();
    let line = status.words("sessions").join(" ");
    assert!(line.contains("webclient/ajax"), "status: {line}");
}

#[test]
fn a_parked_receive_is_answered_when_output_arrives() {
    let portal = Portal::start("");
    let mut web = AjaxClient::init(portal.web, &browser_id(2), "");
    web.create("pia");
    drain_until_parked(&mut web, Duration::from_millis(400));
    web.send("echo wake-up-token");
    let answer = web.poll.answer();
    assert_eq!(answer.status, 200);
    assert!(
        answer
            .header("content-type")
            .is_some_and(|t| t.starts_with("text/plain")),
        "{answer:?}"
    );
    let message: serde_json::Value = serde_json::from_str(&answer.body).expect("JSON");
    assert!(message.is_array(), "one [cmdname, args, kwargs]: {message}");
    let mut text = support::ajax::text_of(&message);
    if !text.contains("wake-up-token") {
        text = web.expect("wake-up-token");
    }
    assert!(text.contains("wake-up-token"), "{text}");
}

#[test]
fn a_newer_receive_replaces_a_parked_one_which_gets_an_empty_answer() {
    let portal = Portal::start("");
    let mut web = AjaxClient::init(portal.web, &browser_id(3), "");
    web.expect("create");
    drain_until_parked(&mut web, Duration::from_millis(400));
    let mut newer = Conn::open(portal.web);
    newer.post(&web.form("receive"), "");
    let old = web.poll.answer();
    assert_eq!((old.status, old.body.as_str()), (200, ""), "{old:?}");
    assert!(
        newer.answer_within(Duration::from_millis(300)).is_none(),
        "the newer one is parked now"
    );
    web.send("look");
    let answer = newer.answer();
    assert_eq!(answer.status, 200);
    assert!(answer.body.starts_with('['), "{answer:?}");
    // The old connection is kept alive and serves the next receive.
    web.send("look");
    web.expect("create");
}

#[test]
fn keepalive_and_close_answer_an_empty_string_and_close_ends_the_session() {
    let portal = Portal::start("");
    let mut web = AjaxClient::init(portal.web, &browser_id(4), "");
    web.expect("create");
    let answer = web.call("keepalive", "");
    assert_eq!((answer.status, answer.body.as_str()), (200, "\"\""));
    assert_eq!(portal.sessions(), 1);
    let answer = web.call("close", "");
    assert_eq!((answer.status, answer.body.as_str()), (200, "\"\""));
    wait_for("the session to end", || {
        (portal.sessions() == 0).then_some(())
    });
    let gone = web.receive();
    assert_eq!(gone[0], "connection_close", "{gone}");
    assert_eq!(gone[2]["code"], 1001, "a page would start over: {gone}");
}

#[test]
fn a_silent_client_is_pinged_and_then_dropped() {
    let portal = Portal::start_web("ajax_keepalive_secs = 1.0\najax_receive_timeout_secs = 30.0");
    let mut web = AjaxClient::init(portal.web, &browser_id(5), "");
    // A client that answers its pings stays.
    for _ in 0..2 {
        let deadline = Instant::now() + support::WAIT;
        while web.receive()[0] != "ajax_keepalive" {
            assert!(Instant::now() < deadline, "no ping: {:?}", web.seen);
        }
        let answer = web.call("keepalive", "");
        assert_eq!(answer.body, "\"\"");
    }
    assert_eq!(portal.sessions(), 1, "answered pings keep the session");
    // One that goes silent is pinged, then dropped a keepalive later.
    let silent_from = Instant::now();
    wait_for("the silent client to be dropped", || {
        (portal.sessions() == 0).then_some(())
    });
    assert!(
        silent_from.elapsed() >= Duration::from_millis(1500),
        "dropped after the ping and a second keepalive, not at once: {:?}",
        silent_from.elapsed()
    );
    portal.wait_log("AJAX client silent since its ping; dropped");
}

#[test]
fn a_parked_receive_is_answered_with_a_ping_after_the_receive_timeout() {
    let portal = Portal::start_web("ajax_receive_timeout_secs = 0.5");
    let mut web = AjaxClient::init(portal.web, &browser_id(6), "");
    web.expect("create");
    drain_until_parked(&mut web, Duration::from_millis(200));
    let answer = web.poll.answer();
    assert_eq!(answer.body, r#"["ajax_keepalive",[],{}]"#);
}

#[test]
fn oversized_chunked_foreign_and_malformed_requests_are_refused() {
    let portal = Portal::start_web("max_message_bytes = 4096\nmax_frame_bytes = 4096");
    let mut other = AjaxClient::init(portal.web, &browser_id(7), "");
    other.create("olive");

    let mut big = Conn::open(portal.web);
    let form = format!(
        "mode=input&csessid={}&data={}",
        other.csessid,
        "x".repeat(10_000)
    );
    big.post(&form, "");
    let answer = big.answer();
    assert_eq!(answer.status, 413, "{answer:?}");
    assert!(
        big.closed(),
        "the connection is closed after a refused body"
    );

    let mut chunked = Conn::open(portal.web);
    let request = "POST /webclientdata HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nmode=\r\n0\r\n\r\n";
    std::io::Write::write_all(&mut chunked.stream, request.as_bytes()).expect("write");
    assert_eq!(chunked.answer().status, 411);

    let mut foreign = Conn::open(portal.web);
    foreign.post(&other.form("keepalive"), "Origin: https://evil.example\r\n");
    assert_eq!(foreign.answer().status, 403);

    let mut own = Conn::open(portal.web);
    own.post(&other.form("keepalive"), "Origin: http://127.0.0.1\r\n");
    assert_eq!(own.answer().status, 200, "the page's own origin is fine");

    let mut bad = Conn::open(portal.web);
    bad.post("mode=launch", "");
    assert_eq!(bad.answer().status, 400);
    bad.post("mode=receive", "");
    assert_eq!(bad.answer().status, 400, "no browser id");
    bad.post("mode=input&csessid=abc%ZZ", "");
    assert_eq!(bad.answer().status, 400);

    let get = support::web::http_exchange(
        portal.web,
        b"GET /webclientdata HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    );
    assert!(get.starts_with("HTTP/1.1 405"), "{get}");

    other.send("echo still-fine");
    other.expect("still-fine");
}

#[test]
fn ajax_input_is_held_to_the_command_rate_as_any_other() {
    let portal = Portal::start("max_command_rate = 5.0\n");
    let mut web = AjaxClient::init(portal.web, &browser_id(12), "");
    web.create("flo");
    let mut tom = portal.player("tom");
    for n in 0..50 {
        web.send(&format!("echo flood-{n}"));
    }
    web.expect("too fast");
    tom.send("echo tom-answered");
    tom.expect("tom-answered");
    portal.wait_log("over max_command_rate");
}

#[test]
fn a_session_outlives_the_connections_its_requests_came_on() {
    let portal = Portal::start("");
    let csessid = browser_id(8);
    let cookie = format!("Cookie: portal_csessid={csessid}\r\n");
    // Our page names its browser by the cookie, not a form field.
    let fresh = |form: &str| {
        let mut conn = Conn::open(portal.web);
        conn.post(form, &cookie);
        conn.answer()
    };
    let init = fresh("mode=init&cuid=t1&browserstr=test");
    assert_eq!(init.status, 200, "{init:?}");
    let mut texts = String::new();
    let receive_until = |needle: &str, texts: &mut String| {
        let deadline = Instant::now() + support::WAIT;
        while !texts.contains(needle) {
            assert!(Instant::now() < deadline, "no {needle:?} in {texts}");
            let answer = fresh("mode=receive&cuid=t1");
            let message: serde_json::Value = serde_json::from_str(&answer.body).expect("JSON");
            texts.push_str(&support::ajax::text_of(&message));
        }
    };
    receive_until("create", &mut texts);
    let data = serde_json::json!(["text", ["create cora pw123"], {}]).to_string();
    let sent = fresh(&format!("mode=input&cuid=t1&data={}", encode(&data)));
    assert_eq!(sent.body, "\"\"");
    receive_until("The Portal Plaza", &mut texts);
    assert_eq!(portal.sessions(), 1, "one session through many connections");
    let data = serde_json::json!(["text", ["who"], {}]).to_string();
    fresh(&format!("mode=input&cuid=t1&data={}", encode(&data)));
    receive_until("cora", &mut texts);
    let record = portal.log();
    assert!(record.contains("AJAX session from"), "logged");
}

#[test]
fn tabs_of_one_browser_share_its_login() {
    let portal = Portal::start("");
    let csessid = browser_id(9);
    let mut first = AjaxClient::init(portal.web, &csessid, "tab-a");
    first.create("tabitha");
    let mut second = AjaxClient::init(portal.web, &csessid, "tab-b");
    second.expect("The Portal Plaza");
    second.send("who");
    second.expect("tabitha");
    assert_eq!(portal.sessions(), 2);
    first.send("echo first-tab-still-here");
    first.expect("first-tab-still-here");
}

#[test]
fn ajax_players_keep_their_input_through_a_game_restart() {
    let mut portal = Portal::start("");
    let mut web = AjaxClient::init(portal.web, &browser_id(10), "");
    web.create("rhea");
    let first = portal.game_pid_other_than(None);
    let reload = portal.cli(&["reload-server"]);
    assert_eq!(reload.code, 0, "{}{}", reload.stdout, reload.stderr);
    web.expect("The game is restarting");
    web.send("echo typed-during-restart");
    web.expect("The game is back");
    web.expect("typed-during-restart");
    assert_ne!(portal.game_pid_other_than(Some(first)), first);
    web.send("who");
    let who = web.expect("rhea");
    assert!(!who.contains("create"), "still logged in: {who}");
}

#[test]
fn quit_ends_the_session_with_connection_close() {
    let portal = Portal::start("");
    let mut web = AjaxClient::init(portal.web, &browser_id(11), "");
    web.create("quin");
    web.send("quit");
    let deadline = Instant::now() + support::WAIT;
    loop {
        let message = web.receive();
        if message[0] == "connection_close" {
            assert_eq!(message[2]["code"], 1000, "a deliberate close: {message}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no connection_close: {:?}",
            web.seen
        );
    }
    wait_for("the session to end", || {
        (portal.sessions() == 0).then_some(())
    });
}

/// Threads of process `pid`.
fn threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task")).map_or(0, |d| d.count())
}

/// How many sessions park a receive at once in the tests below.
const MANY: u32 = 1000;

/// Receive on every connection (`conns[n]` for session `ids[n]`) until
/// each holds a receive that stays parked for `quiet`: every session's
/// output is read. Answers are polled in 1 ms steps, one connection after
/// another.
fn park_all(conns: &mut [Conn], ids: &[String], quiet: Duration) {
    let form = |id: &str| format!("mode=receive&csessid={id}");
    let mut sent_at = Vec::new();
    for (conn, id) in conns.iter_mut().zip(ids) {
        conn.set_step(Duration::from_millis(1));
        conn.post(&form(id), "");
        sent_at.push(Instant::now());
    }
    let deadline = Instant::now() + support::WAIT * 3;
    loop {
        assert!(Instant::now() < deadline, "the receives never all parked");
        let mut all_parked = true;
        for (n, conn) in conns.iter_mut().enumerate() {
            if let Some(answer) = conn.answer_within(Duration::from_millis(1)) {
                assert_eq!(answer.status, 200, "{answer:?}");
                conn.post(&form(&ids[n]), "");
                sent_at[n] = Instant::now();
                all_parked = false;
            } else if sent_at[n].elapsed() < quiet {
                all_parked = false;
            }
        }
        if all_parked {
            return;
        }
    }
}

/// Requests one after another on kept-alive connections from `source`,
/// opening the next when the portal closes one (it serves a few dozen
/// requests per connection), waiting for a free slot if the address is at
/// its cap.
struct Requests {
    web: std::net::SocketAddr,
    source: Ipv4Addr,
    conn: Option<Conn>,
}

impl Requests {
    fn new(web: std::net::SocketAddr, source: Ipv4Addr) -> Requests {
        Requests {
            web,
            source,
            conn: None,
        }
    }

    fn ask(&mut self, form: &str) -> support::ajax::Answer {
        let answer = match self.conn.take() {
            Some(mut conn) => {
                conn.post(form, "");
                let answer = conn.answer();
                self.conn = Some(conn);
                answer
            }
            None => wait_for("a connection the portal takes", || {
                let mut conn = Conn::open_from(self.source, self.web);
                conn.post(form, "");
                let answer = conn.answer_within(support::WAIT)?;
                if answer.status == 503 {
                    return None;
                }
                self.conn = Some(conn);
                Some(answer)
            }),
        };
        if answer.header("connection") == Some("close") {
            self.conn = None;
        }
        answer
    }
}

/// A telnet player's echo round trip, which must stay quick.
fn assert_quick_echo(player: &mut support::Client, token: &str) {
    let started = Instant::now();
    player.send(&format!("echo {token}"));
    player.expect(token);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "a player beside the parked receives waited {:?}",
        started.elapsed()
    );
}

#[test]
fn a_thousand_parked_receives_cost_no_thread_of_their_own_and_others_play_on() {
    let portal = Portal::start("");
    let pid = portal.child.id();
    let mut tom = portal.player("tom");
    let mut control = Requests::new(portal.web, Ipv4Addr::LOCALHOST);
    let ids: Vec<String> = (0..MANY).map(|n| browser_id(1000 + n)).collect();
    let before = threads(pid) + 1;
    for id in &ids {
        let answer = control.ask(&format!("mode=init&csessid={id}"));
        assert_eq!(answer.status, 200, "{answer:?}");
    }
    let mut parked: Vec<Conn> = ids.iter().map(|_| Conn::open(portal.web)).collect();
    park_all(&mut parked, &ids, Duration::from_millis(500));
    // One worker per session; the receive connections' workers handed
    // their sockets over and ended.
    let bound = before + MANY as usize + 4;
    wait_for("one thread per session, none per parked receive", || {
        (threads(pid) <= bound).then_some(())
    });
    assert_eq!(portal.sessions(), u64::from(MANY) + 1);
    assert_quick_echo(&mut tom, "beside-a-thousand");

    // A thousand more: a newer receive for every session replaces its
    // parked one, which is answered (empty, unless output came first).
    let mut newer: Vec<Conn> = ids.iter().map(|_| Conn::open(portal.web)).collect();
    for (conn, id) in newer.iter_mut().zip(&ids) {
        conn.post(&format!("mode=receive&csessid={id}"), "");
    }
    for conn in &mut parked {
        let answer = conn.answer();
        assert_eq!(answer.status, 200, "{answer:?}");
    }
    // The answered connections are ordinary kept-alive ones now; closed,
    // their workers end and the count is back to one per session.
    drop(parked);
    wait_for("one thread per session again", || {
        (threads(pid) <= bound).then_some(())
    });
    assert_quick_echo(&mut tom, "beside-two-thousand");
    assert_eq!(portal.sessions(), u64::from(MANY) + 1);
}

#[test]
fn one_address_cannot_open_thousands_of_sessions_or_parked_receives() {
    let portal = Portal::start(
        "ip_allowlist = [\"127.0.0.1\"]\nmax_sessions_per_ip = 20\n\
         max_connections_per_ip_per_minute = 1000000.0\n",
    );
    let mut tom = portal.player("tom");
    let hostile = Ipv4Addr::new(127, 0, 0, 2);
    let mut control = Requests::new(portal.web, hostile);
    let too_many = "Too many connections from your address";
    // Thousands of inits: the address's cap (the connection they come by
    // and 19 sessions) lets 19 in, each other one is refused with the
    // cap's words and the connection stays usable.
    let mut opened = Vec::new();
    for n in 0..2 * MANY {
        let id = browser_id(5000 + n);
        let answer = control.ask(&format!("mode=init&csessid={id}"));
        match answer.status {
            200 => opened.push(id),
            429 => assert!(answer.body.contains(too_many), "{answer:?}"),
            _ => panic!("init {n}: {answer:?}"),
        }
    }
    assert_eq!(opened.len(), 19);
    // Thousands of receive connections for them, while the address holds
    // its cap: refused at the door.
    let keepalive = format!("mode=keepalive&csessid={}", opened[0]);
    while control.conn.is_none() {
        control.ask(&keepalive);
    }
    for n in 0..2 * MANY as usize {
        let mut conn = Conn::open_from(hostile, portal.web);
        conn.post(&format!("mode=receive&csessid={}", opened[n % 19]), "");
        let answer = conn.answer();
        assert_eq!(answer.status, 503, "{answer:?}");
        assert!(answer.body.contains(too_many), "{answer:?}");
    }
    assert_eq!(portal.sessions(), 20, "tom and the 19");
    assert_quick_echo(&mut tom, "beside-the-refused");
    // The 19 still answer.
    assert_eq!(control.ask(&keepalive).body, "\"\"");
}

#[test]
fn a_never_ending_post_body_is_cut_off_and_others_play_on() {
    let portal = Portal::start_web(
        "max_message_bytes = 4096\nmax_frame_bytes = 4096\nhttp_timeout_secs = 1.0",
    );
    let mut tom = portal.player("tom");
    let head = "POST /webclientdata HTTP/1.1\r\nHost: h\r\n\
                Content-Type: application/x-www-form-urlencoded\r\n";

    // A body that says it never ends: refused before any of it is read.
    let mut endless = Conn::open(portal.web);
    let declared = format!("{head}Content-Length: 1000000000000\r\n\r\nmode=input&data=");
    std::io::Write::write_all(&mut endless.stream, declared.as_bytes()).expect("write");
    let writer = endless.stream.try_clone().expect("clone");
    let pouring = std::thread::spawn(move || pour(writer));
    let answer = endless.answer();
    assert_eq!(answer.status, 413, "{answer:?}");
    assert!(endless.closed(), "closed after the refusal");
    let (poured, took) = pouring.join().expect("the writer");
    assert!(
        poured < 32 << 20 && took < Duration::from_secs(5),
        "the portal stopped taking bytes: {poured} in {took:?}"
    );

    // No length, and bytes that never stop: the empty form is refused,
    // then the bytes are a request head that never ends, cut at its cap.
    let mut unbounded = Conn::open(portal.web);
    let bare = format!("{head}\r\n");
    std::io::Write::write_all(&mut unbounded.stream, bare.as_bytes()).expect("write");
    let writer = unbounded.stream.try_clone().expect("clone");
    let pouring = std::thread::spawn(move || pour(writer));
    assert_eq!(unbounded.answer().status, 400);
    assert_eq!(unbounded.answer().status, 431);
    assert!(unbounded.closed(), "closed after the refusal");
    let (poured, took) = pouring.join().expect("the writer");
    assert!(
        poured < 32 << 20 && took < Duration::from_secs(5),
        "the portal stopped taking bytes: {poured} in {took:?}"
    );

    // A body that trickles in one byte at a time: cut at the deadline.
    let mut trickle = Conn::open(portal.web);
    let slow = format!("{head}Content-Length: 4000\r\n\r\nmode=input");
    std::io::Write::write_all(&mut trickle.stream, slow.as_bytes()).expect("write");
    let started = Instant::now();
    let answer = loop {
        if let Some(answer) = trickle.answer_within(Duration::from_millis(100)) {
            break answer;
        }
        assert!(started.elapsed() < support::WAIT, "no answer to a trickle");
        if std::io::Write::write_all(&mut trickle.stream, b"x").is_err() {
            break trickle.answer();
        }
    };
    assert_eq!(answer.status, 408, "{answer:?}");
    assert_quick_echo(&mut tom, "after-the-endless-bodies");
}

/// Write to `stream` until it fails (the portal closed it) or `WAIT`
/// passes; the bytes written and the time it took.
fn pour(mut stream: std::net::TcpStream) -> (usize, Duration) {
    let started = Instant::now();
    let chunk = vec![b'x'; 64 * 1024];
    let deadline = Instant::now() + support::WAIT;
    let step = Some(Duration::from_millis(50));
    stream.set_write_timeout(step).expect("write timeout");
    let mut written = 0;
    while Instant::now() < deadline {
        match std::io::Write::write(&mut stream, &chunk) {
            Ok(n) => written += n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
    }
    (written, started.elapsed())
}

/// The first answer on any of `conns` (within `WAIT`), and whose it is.
fn first_answer(conns: &mut [Conn]) -> (usize, support::ajax::Answer) {
    let deadline = Instant::now() + support::WAIT;
    while Instant::now() < deadline {
        for (n, conn) in conns.iter_mut().enumerate() {
            if let Some(answer) = conn.answer_within(Duration::from_millis(10)) {
                return (n, answer);
            }
        }
    }
    panic!("no answer on any connection");
}

#[test]
fn a_receive_storm_from_one_client_is_refused_and_others_play_on() {
    let portal = Portal::start_with("", false);
    let mut other = AjaxClient::init(portal.web, &browser_id(200), "");
    let storm = browser_id(201);
    let mut control = Conn::open(portal.web);
    control.post(&format!("mode=init&csessid={storm}"), "");
    assert_eq!(control.answer().status, 200);
    // Two connections replacing each other's parked receive in a loop.
    // Which of the first two parks first is a race (two workers hand
    // them over); after that each answer says which connection is free.
    let form = format!("mode=receive&csessid={storm}");
    let mut conns = [Conn::open(portal.web), Conn::open(portal.web)];
    conns[0].post(&form, "");
    let mut free = 1;
    let mut refused = None;
    for round in 0..40 {
        conns[free].post(&form, "");
        // Either the parked one gets an empty answer and the newer parks,
        // or the newer is refused and the parked one stays.
        let (answered, answer) = first_answer(&mut conns);
        if answer.status == 429 {
            assert!(conns[answered].closed(), "the refused connection is closed");
            refused = Some(round);
            break;
        }
        assert_eq!((answer.status, answer.body.as_str()), (200, ""));
        free = answered;
    }
    let round = refused.expect("the storm was refused");
    assert!(
        round >= 9,
        "a page reloading now and then is fine: refused at {round}"
    );
    portal.wait_log("replace each other too fast; refused");
    // The other session was never touched.
    other.control = Conn::open(portal.web);
    let answer = other.call("keepalive", "");
    assert_eq!(answer.body, "\"\"");
    assert_eq!(portal.sessions(), 2);
}
