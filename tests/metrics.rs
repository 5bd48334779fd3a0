//! `[metrics] listen`: `/metrics` scraped over a real socket while real
//! players connect and type; every answer must pass the strict format
//! check, and the counters must move with what the players do.

mod support;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};
use support::prometheus::{self, Family};
use support::Portal;

const METRICS_ON: &str = "[metrics]\nlisten = \"127.0.0.1:0\"\n";

/// One HTTP request to `addr`; the status line, the head and the body.
fn http(addr: SocketAddr, request: &str) -> (String, String, String) {
    let mut stream = TcpStream::connect(addr).expect("connect to /metrics");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read the answer");
    let (head, body) = answer.split_once("\r\n\r\n").expect("a head and a body");
    let status = head.lines().next().unwrap_or("").to_owned();
    (status, head.to_owned(), body.to_owned())
}

/// Scrape, check the format strictly, return the families.
fn scrape(addr: SocketAddr) -> Vec<Family> {
    let (status, head, body) = http(addr, "GET /metrics HTTP/1.1\r\nHost: portal\r\n\r\n");
    assert_eq!(status, "HTTP/1.1 200 OK", "{head}");
    assert!(
        head.contains("Content-Type: text/plain; version=0.0.4"),
        "{head}"
    );
    prometheus::parse(&body).unwrap_or_else(|e| panic!("{e}\n{body}"))
}

fn get(families: &[Family], name: &str, labels: &[(&str, &str)]) -> f64 {
    prometheus::value(families, name, labels)
        .unwrap_or_else(|| panic!("no {name} {labels:?} in the scrape"))
}

/// Scrape until `check` holds (the writer and workers publish as they go).
fn scrape_until(addr: SocketAddr, what: &str, check: impl Fn(&[Family]) -> bool) -> Vec<Family> {
    support::wait_for(what, || {
        let families = scrape(addr);
        check(&families).then_some(families)
    })
}

fn metrics_addr(portal: &mut Portal) -> SocketAddr {
    portal.status("metrics").parse().expect("metrics address")
}

#[test]
fn counters_move_as_players_connect_and_type() {
    let mut portal =
        Portal::start_tables("ip_allowlist = []\nmax_sessions_per_ip = 2\n", METRICS_ON);
    let addr = metrics_addr(&mut portal);
    let running = [("state", "running")];
    let before = scrape_until(addr, "the game running and linked", |f| {
        get(f, "portal_game_state", &running) == 1.0
            && get(f, "portal_amp_link_state", &[("state", "ready")]) == 1.0
    });
    assert_eq!(
        get(&before, "portal_sessions", &[("protocol", "telnet")]),
        0.0
    );
    assert_eq!(get(&before, "portal_sessions_logged_in", &[]), 0.0);
    let typed_before = get(&before, "portal_commands_received_total", &[]);

    let mut anna = portal.player("anna");
    let mut bob = portal.player("bob");
    for i in 0..5 {
        anna.send(&format!("echo anna-{i}"));
        anna.expect(&format!("anna-{i}"));
        bob.send(&format!("say hello {i}"));
        bob.expect(&format!("hello {i}"));
    }
    let after = scrape_until(addr, "both players counted", |f| {
        get(f, "portal_sessions_logged_in", &[]) == 2.0
    });
    assert_eq!(
        get(&after, "portal_sessions", &[("protocol", "telnet")]),
        2.0
    );
    assert!(get(&after, "portal_connections_accepted_total", &[]) >= 2.0);
    let typed = get(&after, "portal_commands_received_total", &[]) - typed_before;
    assert!(
        typed >= 12.0,
        "two logins and ten commands, counted {typed}"
    );
    for name in [
        "portal_bytes_received_total",
        "portal_bytes_sent_total",
        "portal_commands_sent_total",
    ] {
        assert!(get(&after, name, &[]) > get(&before, name, &[]), "{name}");
    }
    let to_game = get(&after, "portal_input_to_game_seconds_count", &[]);
    assert!(
        to_game >= typed,
        "every command timed to the game: {to_game} < {typed}"
    );
    let to_client = get(&after, "portal_game_to_client_seconds_count", &[]);
    assert!(
        to_client >= 10.0,
        "answers timed to the socket: {to_client}"
    );
    let inf = [("le", "+Inf")];
    let bucket = get(&after, "portal_game_to_client_seconds_bucket", &inf);
    assert_eq!(bucket, to_client);

    // A third connection from the same address is over the cap.
    let mut third = portal.client();
    third.expect("Too many");
    let refused = scrape_until(addr, "the refusal counted", |f| {
        get(
            f,
            "portal_connections_refused_total",
            &[("reason", "address_sessions")],
        ) == 1.0
    });
    assert_eq!(
        get(
            &refused,
            "portal_connections_refused_total",
            &[("reason", "queue_full")]
        ),
        0.0
    );

    // Leaving shows at once in the gauges.
    bob.send("quit");
    bob.expect("Goodbye");
    scrape_until(addr, "bob gone", |f| {
        get(f, "portal_sessions", &[("protocol", "telnet")]) == 1.0
            && get(f, "portal_sessions_logged_in", &[]) == 1.0
    });
    drop(anna);
}

#[test]
fn restarts_crashes_and_held_input_show_in_the_game_and_link_metrics() {
    let mut portal = Portal::start_tables("", METRICS_ON);
    let addr = metrics_addr(&mut portal);
    let mut anna = portal.player("anna");
    let pid = portal.game_pid_other_than(None);
    portal.signal(libc::SIGUSR1);
    let restarted = scrape_until(addr, "a counted restart, running again", |f| {
        get(f, "portal_game_restarts_total", &[]) == 1.0
            && get(f, "portal_game_state", &[("state", "running")]) == 1.0
    });
    assert_eq!(get(&restarted, "portal_game_crashes_total", &[]), 0.0);
    let pid = portal.game_pid_other_than(Some(pid));
    anna.expect("back");
    // SAFETY: kill(2) on the game child the portal started.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    scrape_until(addr, "a counted crash", |f| {
        get(f, "portal_game_crashes_total", &[]) == 1.0
    });
    portal.game_pid_other_than(Some(pid));
    scrape_until(addr, "the link ready again", |f| {
        get(f, "portal_amp_link_state", &[("state", "ready")]) == 1.0
            && get(f, "portal_held_input_commands", &[]) == 0.0
            && get(f, "portal_amp_queue_frames", &[]) == 0.0
    });
}

#[test]
fn only_get_metrics_is_answered_and_a_stalled_scraper_holds_up_no_player() {
    let mut portal = Portal::start_tables("", METRICS_ON);
    let addr = metrics_addr(&mut portal);
    let (status, _, _) = http(addr, "GET / HTTP/1.1\r\n\r\n");
    assert!(status.starts_with("HTTP/1.1 404"), "{status}");
    let (status, head, _) = http(addr, "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    assert!(status.starts_with("HTTP/1.1 405"), "{head}");

    // A scraper that connects and says nothing.
    let mut stalled = TcpStream::connect(addr).unwrap();
    stalled.write_all(b"GET /metr").unwrap();
    let mut anna = portal.player("anna");
    anna.send("echo still-playing");
    anna.expect("still-playing");
    // It is cut off after its deadline, and the next scrape is answered.
    let started = Instant::now();
    scrape(addr);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "scrape answered"
    );
    stalled
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut rest = Vec::new();
    let closed = stalled.read_to_end(&mut rest);
    assert!(
        matches!(closed, Ok(0)) || closed.is_err(),
        "the stalled scraper was closed without an answer: {rest:?}"
    );
}

#[test]
fn metrics_are_off_by_default() {
    let mut portal = Portal::start("");
    portal.status("amp");
    assert_eq!(portal.try_status("metrics"), None);
    assert!(!portal.log().contains("metrics on"), "{}", portal.log());
}

#[test]
fn queued_connections_and_failed_tls_handshakes_are_counted() {
    let cert_dir = tempfile::tempdir().unwrap();
    let (cert, key, _) = support::tls::make_cert(cert_dir.path(), "portal");
    let tables = format!(
        "{METRICS_ON}[[tls]]\nlisten = \"127.0.0.1:0\"\ncert = \"{}\"\nkey = \"{}\"\n",
        cert.display(),
        key.display()
    );
    let mut portal = Portal::start_tables("max_connection_rate = 2.0\n", &tables);
    let addr = metrics_addr(&mut portal);
    let tls: SocketAddr = portal.status("tls").parse().expect("tls address");

    let mut clients: Vec<support::Client> = (0..5).map(|_| portal.client()).collect();
    clients[4].expect("you are queued");
    scrape_until(addr, "a queued connection counted", |f| {
        get(f, "portal_connections_queued_total", &[]) >= 1.0
    });
    for client in clients.iter_mut() {
        client.expect("create <name>");
    }
    scrape_until(addr, "the queue empty again", |f| {
        get(f, "portal_connection_queue_length", &[]) == 0.0
    });

    // Plain text on the TLS port is no handshake.
    let mut plain = TcpStream::connect(tls).expect("connect to tls");
    plain.write_all(b"look\r\n").expect("write plain text");
    scrape_until(addr, "the failed handshake counted", |f| {
        get(f, "portal_tls_handshake_failures_total", &[]) == 1.0
    });
}

#[test]
fn input_held_while_no_game_is_linked_shows_then_drains() {
    let mut portal = Portal::start_with(METRICS_ON, false);
    let addr = metrics_addr(&mut portal);
    let mut player = portal.client();
    for i in 0..3 {
        player.send(&format!("line {i}"));
    }
    player.expect("3 waiting");
    scrape_until(addr, "three commands held, no link", |f| {
        get(f, "portal_held_input_commands", &[]) == 3.0
            && get(f, "portal_amp_link_state", &[("state", "down")]) == 1.0
    });
    let (mut game, _sync) = support::RawGame::link(portal.amp);
    let mut delivered = 0;
    while delivered < 3 {
        if let portal::wire::message::PortalMsg::DataIn { commands, .. } = game.recv() {
            delivered += commands.len();
        }
    }
    let drained = scrape_until(addr, "the held input written", |f| {
        get(f, "portal_held_input_commands", &[]) == 0.0
            && get(f, "portal_input_to_game_seconds_count", &[]) >= 3.0
    });
    assert_eq!(get(&drained, "portal_amp_queue_frames", &[]), 0.0);
}
