//! Bad input on the web listener gets a clear answer and touches nobody
//! else: bad JSON, unknown commands, oversized frames, a foreign Origin,
//! unknown paths, non-HTTP bytes, a silent HTTP client, a client that
//! stops answering pings.

mod support;
use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};
use support::web::{self, http_exchange, read_to_close, Options};
use support::{wait_for, Portal};
use tungstenite::Message;

#[test]
fn bad_json_and_unknown_commands_are_explained_to_that_client_only() {
    let portal = Portal::start("");
    let mut bad = web::connect(portal.web, &Options::default());
    let mut good = web::connect(portal.web, &Options::default());
    bad.create("bea");
    good.create("gus");

    bad.ws
        .send(Message::text("[\"text\", [\"look\""))
        .expect("send");
    let told = bad.expect("Not understood");
    assert!(told.contains("not valid JSON"), "{told}");
    bad.send_json(serde_json::json!(["launch_missiles", [], {}]));
    bad.expect("unknown command `launch_missiles`");

    bad.send("echo still-playing");
    bad.expect("still-playing");
    good.send("echo unaffected");
    good.expect("unaffected");
    assert!(
        !good
            .seen
            .iter()
            .any(|m| web::message_text(m).contains("Not understood")),
        "the other player saw nothing"
    );
}

#[test]
fn an_oversized_frame_closes_that_websocket_with_1009() {
    let portal = Portal::start_web("max_frame_bytes = 4096\nmax_message_bytes = 4096");
    let mut big = web::connect(portal.web, &Options::default());
    let mut other = web::connect(portal.web, &Options::default());
    other.create("olga");
    big.expect("create");
    let line = "x".repeat(10_000);
    big.send(&line);
    let (code, reason) = big.expect_close();
    assert_eq!(code, 1009, "{reason}");
    other.send("echo after-the-big-one");
    other.expect("after-the-big-one");
}

#[test]
fn a_foreign_origin_is_refused_and_the_page_origin_accepted() {
    let portal = Portal::start("");
    let evil = Options {
        origin: Some("https://evil.example".into()),
        ..Options::default()
    };
    let refused = web::try_connect(portal.web, &evil)
        .err()
        .map(|e| e.to_string());
    assert!(
        refused.is_some_and(|e| e.contains("403")),
        "refused with 403"
    );
    let own = Options {
        origin: Some(format!("http://{}", portal.web)),
        ..Options::default()
    };
    let mut player = web::connect(portal.web, &own);
    player.create("orla");
}

#[test]
fn the_page_is_served_with_a_browser_id_and_other_paths_get_404() {
    let portal = Portal::start("");
    let page = http_exchange(
        portal.web,
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(page.starts_with("HTTP/1.1 200 OK\r\n"), "{page}");
    assert!(page.contains("Set-Cookie: portal_csessid="), "{page}");
    assert!(page.contains("HttpOnly; SameSite=Lax"), "{page}");
    assert!(
        page.contains("Content-Security-Policy: default-src 'self'"),
        "{page}"
    );
    assert!(
        page.contains("<script src=\"client.js\""),
        "the page: {page}"
    );
    let js = http_exchange(
        portal.web,
        b"GET /client.js HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(js.contains("Content-Type: text/javascript"), "{js}");
    let missing = http_exchange(portal.web, b"GET /secret HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(
        missing.starts_with("HTTP/1.1 404 Not Found\r\n"),
        "{missing}"
    );
    let telnet = http_exchange(portal.web, b"\xff\xfb\x18look\r\n\r\n");
    assert!(
        telnet.starts_with("HTTP/1.1 400 Bad Request\r\n"),
        "{telnet}"
    );
    // None of these became a session.
    assert_eq!(portal.sessions(), 0);
}

#[test]
fn a_kept_alive_connection_serves_several_requests() {
    let portal = Portal::start("");
    let answers = http_exchange(
        portal.web,
        b"GET /style.css HTTP/1.1\r\nHost: x\r\n\r\nGET /client.js HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(answers.matches("HTTP/1.1 200 OK").count(), 2, "{answers}");
}

#[test]
fn a_silent_http_client_is_dropped_after_the_deadline() {
    let portal = Portal::start_web("http_timeout_secs = 0.5");
    let mut slow = TcpStream::connect(portal.web).expect("connect");
    slow.write_all(b"GET / HT").expect("write");
    let started = Instant::now();
    let answer = read_to_close(&mut slow);
    assert!(answer.starts_with("HTTP/1.1 408 "), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(5));
    let mut player = web::connect(portal.web, &Options::default());
    player.create("patty");
}

#[test]
fn a_client_that_stops_answering_pings_is_dropped() {
    let portal = Portal::start_web("ping_interval_secs = 0.3\npong_timeout_secs = 1.5");
    // A websocket client that never reads again: it never answers a ping,
    // like a laptop whose lid was closed.
    let gone = web::connect(portal.web, &Options::default());
    let mut alive = web::connect(portal.web, &Options::default());
    alive.create("alma");
    wait_for("two sessions", || (portal.sessions() == 2).then_some(()));
    let started = Instant::now();
    // The live client keeps reading (and so answering pings).
    wait_for("the silent one to be dropped", || {
        let _ = alive.read_one();
        (portal.sessions() == 1).then_some(())
    });
    assert!(started.elapsed() < Duration::from_secs(10));
    portal.wait_log("no answer to a ping");
    alive.send("echo still-here");
    alive.expect("still-here");
    drop(gone);
}

#[test]
fn pongs_do_not_keep_an_idle_web_player() {
    let portal = Portal::start_edited("idle_timeout_secs = 1\n", |text| {
        text.replacen(
            "[web]\n",
            "[web]\nping_interval_secs = 0.2\npong_timeout_secs = 5\n",
            1,
        )
    });
    let mut idle = web::connect(portal.web, &Options::default());
    idle.create("ida");
    let started = Instant::now();
    idle.expect("idle too long");
    assert!(started.elapsed() >= Duration::from_millis(900));
    let (code, _) = idle.expect_close();
    assert_eq!(code, 1000);
}
