//! `[web] upstream`: plain HTTP the portal does not serve itself is relayed
//! to the game's web server (here a small fake one on loopback, written
//! below), with the client's address; a hostile or slow client and an
//! upstream that is down or never answers get clear errors, and a player
//! on the same web listener plays on throughout.

mod support;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::ajax::Conn;
use support::web::{self, read_to_close, Options};
use support::Portal;

/// A fake game web server: answers by path, and keeps every request it
/// got (head and body) for the test to look at.
struct Upstream {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Upstream {
    fn start() -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let log = log.clone();
                std::thread::spawn(move || serve(stream, &log));
            }
        });
        Upstream { addr, seen }
    }

    fn requests(&self) -> Vec<String> {
        self.seen.lock().expect("lock").clone()
    }
}

/// One request (the relay sends one per connection), answered by path.
fn serve(mut stream: TcpStream, log: &Mutex<Vec<String>>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let lower = head.to_ascii_lowercase();
    let length: usize = lower
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let chunked = lower.contains("transfer-encoding: chunked");
    // The rest of the body: by length, or to the chunked coding's end.
    loop {
        let body = &buf[head_end..];
        let done = if chunked {
            body.ends_with(b"0\r\n\r\n")
        } else {
            body.len() >= length
        };
        if done {
            break;
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let body = String::from_utf8_lossy(&buf[head_end..]).into_owned();
    log.lock().expect("lock").push(format!("{head}{body}"));
    let path = head.split(' ').nth(1).unwrap_or("");
    let answer: Vec<u8> = match path {
        "/hang" => {
            // Never answers; holds the connection until the relay gives up.
            let _ = stream.read(&mut chunk);
            return;
        }
        "/chunked" => b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n"
            .to_vec(),
        "/big" => {
            let body = vec![b'x'; 1 << 20];
            let mut answer = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            )
            .into_bytes();
            answer.extend_from_slice(&body);
            answer
        }
        _ => {
            let text = format!("upstream got {} body bytes", body.len());
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
Connection: close\r\nKeep-Alive: timeout=5\r\nSet-Cookie: sessionid=s1\r\n\r\n{text}",
                text.len()
            )
            .into_bytes()
        }
    };
    let _ = stream.write_all(&answer);
}

fn relaying_portal(upstream: SocketAddr) -> Portal {
    Portal::start_web(&format!(
        "upstream = \"{upstream}\"\nupstream_timeout_secs = 1.0\n\
upstream_body_timeout_secs = 2.0\nupstream_max_body_bytes = 65536"
    ))
}

/// A logged-in web player, to show nobody else is touched.
fn player(portal: &Portal) -> web::WebClient {
    let mut player = web::connect(portal.web, &Options::default());
    player.create("pia");
    player
}

fn still_plays(player: &mut web::WebClient, tag: &str) {
    player.send(&format!("echo {tag}"));
    player.expect(tag);
}

#[test]
fn pages_are_relayed_with_the_client_address_on_a_kept_alive_connection() {
    let upstream = Upstream::start();
    let portal = relaying_portal(upstream.addr);
    let mut conn = Conn::open(portal.web);
    let get =
        "GET /webclient/?x=1 HTTP/1.1\r\nHost: mud.example\r\nConnection: keep-alive, X-Hop\r\n\
X-Hop: 1\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n";
    conn.stream.write_all(get.as_bytes()).expect("write");
    let first = conn.answer();
    assert_eq!(first.status, 200, "{first:?}");
    assert_eq!(first.body, "upstream got 0 body bytes");
    assert_eq!(first.header("set-cookie"), Some("sessionid=s1"));
    assert_eq!(first.header("connection"), Some("keep-alive"));
    assert_eq!(first.header("keep-alive"), None, "hop-by-hop: {first:?}");
    // The same connection carries a POST with a body.
    let post = "POST /accounts/login/ HTTP/1.1\r\nHost: mud.example\r\nContent-Length: 11\r\n\r\nhello world";
    conn.stream.write_all(post.as_bytes()).expect("write");
    let second = conn.answer();
    assert_eq!(second.body, "upstream got 11 body bytes");

    let requests = upstream.requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    let head = &requests[0];
    assert!(
        head.starts_with("GET /webclient/?x=1 HTTP/1.1\r\n"),
        "{head}"
    );
    assert!(head.contains("Host: mud.example\r\n"), "{head}");
    assert!(head.contains("X-Forwarded-For: 127.0.0.1\r\n"), "{head}");
    assert!(head.contains("X-Forwarded-Proto: http\r\n"), "{head}");
    assert!(
        !head.contains("6.6.6.6") && !head.contains("X-Hop"),
        "{head}"
    );
    assert!(head.contains("Connection: close\r\n"), "{head}");
    assert!(
        requests[1].ends_with("\r\n\r\nhello world"),
        "{}",
        requests[1]
    );
}

#[test]
fn chunked_bodies_go_both_ways_and_a_large_answer_arrives_whole() {
    let upstream = Upstream::start();
    let portal = relaying_portal(upstream.addr);
    let chunked = "POST /upload HTTP/1.1\r\nHost: h\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n\
4\r\nabcd\r\n3\r\nefg\r\n0\r\n\r\n";
    let answer = web::http_exchange(portal.web, chunked.as_bytes());
    assert!(answer.contains("upstream got 22 body bytes"), "{answer}");

    let answer = web::http_exchange(
        portal.web,
        b"GET /chunked HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(
        answer.contains("Transfer-Encoding: chunked\r\n"),
        "{answer}"
    );
    assert!(answer.contains("Connection: close\r\n"), "{answer}");
    assert!(
        answer.ends_with("5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n"),
        "{answer}"
    );

    let mut stream = TcpStream::connect(portal.web).expect("connect");
    stream
        .write_all(b"GET /big HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        .expect("write");
    let answer = read_to_close(&mut stream);
    let body = answer.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    assert_eq!(body.len(), 1 << 20);
}

#[test]
fn a_never_ending_or_huge_or_slow_post_body_is_refused_and_others_play_on() {
    let upstream = Upstream::start();
    let portal = relaying_portal(upstream.addr);
    let mut pia = player(&portal);

    // A chunked body that never ends: 413 once past the limit, then closed.
    let mut endless = TcpStream::connect(portal.web).expect("connect");
    endless
        .write_all(b"POST /upload HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n")
        .expect("write");
    let mut writer = endless.try_clone().expect("clone");
    let feeder = std::thread::spawn(move || {
        let chunk = format!("1000\r\n{}\r\n", "y".repeat(0x1000));
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline && writer.write_all(chunk.as_bytes()).is_ok() {}
    });
    let answer = read_to_close(&mut endless);
    assert!(answer.starts_with("HTTP/1.1 413 "), "{answer}");
    assert!(answer.contains("too large"), "{answer}");
    drop(endless);
    let _ = feeder.join();
    still_plays(&mut pia, "after-endless");

    // A length past the limit is refused before any of it is read.
    let huge = b"POST /upload HTTP/1.1\r\nHost: h\r\nContent-Length: 10000000000\r\n\r\n";
    let answer = web::http_exchange(portal.web, huge);
    assert!(answer.starts_with("HTTP/1.1 413 "), "{answer}");

    // A body that stops coming: 408 after upstream_body_timeout_secs.
    let started = Instant::now();
    let slow = b"POST /upload HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\nonly ten b";
    let answer = web::http_exchange(portal.web, slow);
    assert!(answer.starts_with("HTTP/1.1 408 "), "{answer}");
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(1900), "{waited:?}");
    still_plays(&mut pia, "after-slow");
    // None of the refused bodies reached the upstream whole.
    assert!(upstream
        .requests()
        .iter()
        .all(|r| !r.starts_with("POST /upload")));
}

#[test]
fn an_upstream_that_never_answers_gets_504_and_one_that_is_down_502() {
    let upstream = Upstream::start();
    let portal = relaying_portal(upstream.addr);
    let mut pia = player(&portal);
    let started = Instant::now();
    let answer = web::http_exchange(portal.web, b"GET /hang HTTP/1.1\r\nHost: h\r\n\r\n");
    assert!(
        answer.starts_with("HTTP/1.1 504 Gateway Timeout\r\n"),
        "{answer}"
    );
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(900), "{waited:?}");
    still_plays(&mut pia, "after-hang");

    // Nothing listens on the upstream's port: 502 at once.
    let down = TcpListener::bind("127.0.0.1:0").expect("bind");
    let down_addr = down.local_addr().expect("addr");
    drop(down);
    let portal = relaying_portal(down_addr);
    let mut pia = player(&portal);
    let answer = web::http_exchange(portal.web, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    assert!(
        answer.starts_with("HTTP/1.1 502 Bad Gateway\r\n"),
        "{answer}"
    );
    assert!(answer.contains("not running"), "{answer}");
    still_plays(&mut pia, "after-down");
    let log = std::fs::read_to_string(portal.path("portal.log")).unwrap_or_default();
    assert!(log.contains("web relay: cannot reach"), "{log}");
}

#[test]
fn behind_a_trusted_proxy_the_upstream_is_told_the_client_it_names() {
    let upstream = Upstream::start();
    let relay = format!("[web]\nupstream = \"{}\"\n", upstream.addr);
    let portal = Portal::start_edited("", move |text| {
        let text = text.replacen("[web]\n", &relay, 1);
        format!("{text}\n[proxy]\ntrusted_proxies = [\"127.0.0.1\"]\n")
    });
    let request = "GET / HTTP/1.1\r\nHost: mud.example\r\nConnection: close\r\n\
X-Forwarded-For: 6.6.6.6, 203.0.113.7\r\nX-Forwarded-Proto: https\r\n\r\n";
    let answer = web::http_exchange(portal.web, request.as_bytes());
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    let requests = upstream.requests();
    let head = &requests[0];
    assert!(
        head.contains("X-Forwarded-For: 203.0.113.7, 127.0.0.1\r\n"),
        "{head}"
    );
    assert!(head.contains("X-Forwarded-Proto: https\r\n"), "{head}");
    assert!(!head.contains("6.6.6.6"), "{head}");
}

#[test]
fn a_kept_alive_connection_s_last_relayed_answer_says_it_closes() {
    let upstream = Upstream::start();
    let portal = relaying_portal(upstream.addr);
    let mut conn = Conn::open(portal.web);
    let get = b"GET /page HTTP/1.1\r\nHost: h\r\n\r\n";
    let mut answered = 0;
    loop {
        conn.stream.write_all(get).expect("write");
        let answer = conn.answer();
        assert_eq!(answer.status, 200, "{answer:?}");
        answered += 1;
        if answer.header("connection") == Some("close") {
            break;
        }
        assert!(answered < 100, "never closed");
    }
    assert!(conn.closed(), "closed after saying so");
    assert!(answered >= 10, "{answered}");
}
