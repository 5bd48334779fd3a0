//! The PROXY protocol on the telnet, telnet/ssl and web listeners, and
//! `X-Forwarded-For` on the web, with raw clients writing the headers a
//! load balancer would: the client's address reaches the game, `portal
//! status` and the per-address caps; untrusted, malformed, missing and
//! slow headers are logged and closed. (`tests/haproxy.rs` puts a real
//! HAProxy in front.)

mod support;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use support::web::{self, Options};
use support::{tls, wait_for, Client, Portal};

/// A portal with `telnet` and `web` lines added to those sections and
/// `tail` (whole tables, `[limits]` lines first) at the end.
fn portal(telnet: &str, web: &str, tail: &str) -> Portal {
    let (telnet, web, tail) = (telnet.to_owned(), web.to_owned(), tail.to_owned());
    Portal::start_edited("", move |text| {
        let text = text.replacen("[telnet]\n", &format!("[telnet]\n{telnet}\n"), 1);
        let text = text.replacen("[web]\n", &format!("[web]\n{web}\n"), 1);
        format!("{text}\n{tail}\n")
    })
}

const REQUIRED: &str = "proxy_protocol = \"required\"";

/// A PROXY v2 header for a TCP over IPv4 client `src`.
fn v2(src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
    let (SocketAddr::V4(src), SocketAddr::V4(dst)) = (src, dst) else {
        panic!("IPv4 only");
    };
    let mut out = b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c".to_vec();
    out.extend_from_slice(&src.ip().octets());
    out.extend_from_slice(&dst.ip().octets());
    out.extend_from_slice(&src.port().to_be_bytes());
    out.extend_from_slice(&dst.port().to_be_bytes());
    out
}

fn v1(src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
    let (s, d) = (src.ip(), dst.ip());
    format!("PROXY TCP4 {s} {d} {} {}\r\n", src.port(), dst.port()).into_bytes()
}

/// A connection that starts with `header`.
fn with_header(addr: SocketAddr, header: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.write_all(header).expect("write header");
    stream
}

fn addr(text: &str) -> SocketAddr {
    text.parse().expect("address")
}

/// Wait until `portal status` lists `ip` among the client addresses.
fn wait_status_lists(portal: &Portal, ip: &str) -> Vec<String> {
    wait_for(&format!("`portal status` to list {ip}"), || {
        let status = portal.status_report();
        let words = status.words("addresses").to_vec();
        words.iter().any(|w| w == ip).then_some(words)
    })
}

/// Whether a client gets the game's banner (true) or is closed first.
fn banner_or_close(mut client: Client) -> bool {
    let deadline = std::time::Instant::now() + support::WAIT;
    while std::time::Instant::now() < deadline {
        let open = client.pump();
        if client.text().contains("create <name>") {
            return true;
        }
        if !open {
            return false;
        }
    }
    panic!("neither a banner nor a close: {:?}", client.text());
}

#[test]
fn a_trusted_proxys_v1_and_v2_headers_give_the_client_address_to_the_game_and_status() {
    let portal = portal(REQUIRED, "", "[proxy]\ntrusted_proxies = [\"127.0.0.0/8\"]");
    let header = v2(addr("203.0.113.7:5555"), portal.telnet);
    let mut anna = Client::over(with_header(portal.telnet, &header));
    anna.expect("create <name>");
    anna.send("create anna pw123");
    anna.expect("The Portal Plaza");
    let header = v1(addr("198.51.100.20:6000"), portal.telnet);
    let mut bob = Client::over(with_header(portal.telnet, &header));
    bob.expect("create <name>");
    bob.send("create bob pw123");
    bob.expect("The Portal Plaza");

    let words = wait_status_lists(&portal, "203.0.113.7");
    assert!(words.contains(&"198.51.100.20".to_owned()), "{words:?}");
    assert!(!words.contains(&"127.0.0.1".to_owned()), "{words:?}");
    wait_for("the game to log the real addresses", || {
        let log = portal.game_log();
        (log.contains("from 203.0.113.7:5555 created account anna")
            && log.contains("from 198.51.100.20:6000 created account bob"))
        .then_some(())
    });
    portal.wait_log("client 203.0.113.7:5555 via proxy 127.0.0.1:");
    portal.wait_log("(PROXY v2)");
}

#[test]
fn the_per_address_cap_counts_the_client_behind_the_proxy_not_the_proxy() {
    let portal = portal(
        REQUIRED,
        "",
        "max_sessions_per_ip = 1\n[proxy]\ntrusted_proxies = [\"127.0.0.1\"]",
    );
    let first = v2(addr("203.0.113.7:1000"), portal.telnet);
    let mut first = Client::over(with_header(portal.telnet, &first));
    first.expect("create <name>");
    let again = v2(addr("203.0.113.7:1001"), portal.telnet);
    let mut again = Client::over(with_header(portal.telnet, &again));
    let text = again.expect_closed();
    let refusal = portal::config::Config::default()
        .messages
        .too_many_from_address;
    assert!(text.contains(&refusal), "{text:?}");
    assert!(!text.contains("create <name>"), "{text:?}");
    portal.wait_log("refused 203.0.113.7:1001: over the per-address cap");
    // Another client behind the same proxy is not held back.
    let other = v2(addr("203.0.113.8:1000"), portal.telnet);
    let mut other = Client::over(with_header(portal.telnet, &other));
    other.expect("create <name>");
    // The first client leaving gives its place back.
    drop(first);
    wait_for("the first client's place to free", || {
        let retry = v2(addr("203.0.113.7:1002"), portal.telnet);
        let retry = Client::over(with_header(portal.telnet, &retry));
        banner_or_close(retry).then_some(())
    });
}

#[test]
fn malformed_missing_and_slow_headers_are_logged_and_closed() {
    let portal = portal(
        REQUIRED,
        "",
        "[proxy]\ntrusted_proxies = [\"127.0.0.1\"]\nheader_timeout_secs = 0.5",
    );
    let mut malformed = Client::over(with_header(portal.telnet, b"PROXY TCP4 1.2.3.4\r\n"));
    let text = malformed.expect_closed();
    assert!(!text.contains("create <name>"), "{text:?}");
    portal.wait_log("malformed PROXY v1 line");

    let mut missing = Client::over(with_header(portal.telnet, b"look\r\n"));
    missing.expect_closed();
    portal.wait_log("no PROXY header (the first bytes are not one)");

    let started = std::time::Instant::now();
    let mut slow = Client::over(with_header(portal.telnet, b"PROXY TCP4 "));
    slow.expect_closed();
    assert!(started.elapsed() >= std::time::Duration::from_millis(450));
    portal.wait_log("no complete PROXY header within 500ms");
    assert_eq!(portal.sessions(), 0);
}

#[test]
fn a_proxy_header_from_an_untrusted_address_is_refused() {
    let portal = portal(REQUIRED, "", "[proxy]\ntrusted_proxies = [\"10.9.9.0/24\"]");
    let header = v2(addr("203.0.113.7:5555"), portal.telnet);
    let mut stranger = Client::over(with_header(portal.telnet, &header));
    let text = stranger.expect_closed();
    assert!(!text.contains("create <name>"), "{text:?}");
    portal.wait_log(
        "this listener requires a PROXY header and 127.0.0.1 is not in proxy.trusted_proxies",
    );
}

#[test]
fn telnet_ssl_reads_the_proxy_header_before_the_client_hello() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (cert, key, der) = tls::make_cert(dir.path(), "proxy");
    let tables = format!(
        "[proxy]\ntrusted_proxies = [\"127.0.0.1\"]\n\n[[tls]]\nlisten = \"127.0.0.1:0\"\n\
         cert = \"{}\"\nkey = \"{}\"\n{REQUIRED}\n",
        cert.display(),
        key.display()
    );
    let mut portal = portal("", "", &tables);
    let tls_addr: SocketAddr = portal.status("tls").parse().expect("tls address");
    let sock = with_header(tls_addr, &v1(addr("192.0.2.44:7000"), tls_addr));
    sock.set_read_timeout(Some(std::time::Duration::from_millis(50)))
        .expect("timeout");
    let name = "localhost".try_into().expect("name");
    let conn = rustls::ClientConnection::new(tls::client_config(&der), name).expect("client");
    let mut stream = rustls::StreamOwned::new(conn, sock);
    let text = tls::read_until(&mut stream, "create <name>");
    assert!(text.contains("create <name>"), "{text:?}");
    wait_status_lists(&portal, "192.0.2.44");
}

#[test]
fn the_web_listener_reads_proxy_headers_too() {
    let portal = portal("", REQUIRED, "[proxy]\ntrusted_proxies = [\"127.0.0.1\"]");
    let stream = with_header(portal.web, &v1(addr("192.0.2.50:8000"), portal.web));
    let mut client = web::try_connect_on(stream, portal.web, &Options::default()).expect("ws");
    client.expect("create");
    wait_status_lists(&portal, "192.0.2.50");
    portal.wait_log("session");
    portal.wait_log("websocket from 192.0.2.50:8000");
}

#[test]
fn forwarded_for_is_believed_from_trusted_proxies_only() {
    let forwarded = Options {
        headers: vec![(
            "X-Forwarded-For".to_owned(),
            "6.6.6.6, 198.51.100.9".to_owned(),
        )],
        ..Options::default()
    };
    let trusting = portal("", "", "[proxy]\ntrusted_proxies = [\"127.0.0.1\"]");
    let mut client = web::connect(trusting.web, &forwarded);
    client.expect("create");
    let words = wait_status_lists(&trusting, "198.51.100.9");
    assert!(!words.contains(&"6.6.6.6".to_owned()), "{words:?}");
    trusting.wait_log("web client 198.51.100.9:0 (forwarded by 127.0.0.1:");

    let wary = portal("", "", "[proxy]\ntrusted_proxies = [\"10.0.0.0/8\"]");
    let mut client = web::connect(wary.web, &forwarded);
    client.expect("create");
    let words = wait_status_lists(&wary, "127.0.0.1");
    assert!(!words.contains(&"198.51.100.9".to_owned()), "{words:?}");
}
