//! The web client over TLS (`[[tls]] serve = "web"`): the page over https
//! with a `Secure` browser-id cookie, and a wss session that plays.

mod support;
use std::io::Write;
use std::net::SocketAddr;
use std::time::Instant;
use support::web::{plain, read_all};
use support::{Portal, WAIT};
use tungstenite::handshake::client::generate_key;
use tungstenite::Message;

type Tls = support::tls::TlsStream;

fn start() -> (Portal, SocketAddr, Vec<u8>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("dir");
    let (cert, key, der) = support::tls::make_cert(dir.path(), "web");
    let tables = format!(
        "[[tls]]\nlisten = \"127.0.0.1:0\"\ncert = \"{}\"\nkey = \"{}\"\nserve = \"web\"\n",
        cert.display(),
        key.display()
    );
    let mut portal = Portal::start_tables("", &tables);
    let addr = portal.status("wss").parse().expect("wss address");
    (portal, addr, der, dir)
}

fn tls_connect(addr: SocketAddr, trusted: &[u8]) -> Tls {
    support::tls::connect(addr, trusted)
}

#[test]
fn the_page_is_served_over_https_with_a_secure_cookie() {
    let (_portal, addr, der, _dir) = start();
    let mut tls = tls_connect(addr, &der);
    tls.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .expect("write");
    let answer = read_all(&mut tls);
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(
        answer.contains("Set-Cookie: __Host-portal_csessid="),
        "{answer}"
    );
    assert!(answer.contains("SameSite=Lax; Secure\r\n"), "{answer}");
}

#[test]
fn a_wss_player_logs_in_and_plays() {
    let (portal, addr, der, _dir) = start();
    let tls = tls_connect(addr, &der);
    let request = tungstenite::http::Request::builder()
        .uri("wss://localhost/ws")
        .header("Host", "localhost")
        .header("Connection", "Upgrade")
        .header("Upgrade", "websocket")
        .header("Sec-WebSocket-Version", "13")
        .header("Sec-WebSocket-Key", generate_key())
        .body(())
        .expect("request");
    let (mut ws, _) =
        tungstenite::client(request, tls).unwrap_or_else(|e| panic!("wss upgrade: {e}"));
    let expect = |ws: &mut tungstenite::WebSocket<Tls>, needle: &str| {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if let Ok(Message::Text(text)) = ws.read() {
                if plain(text.as_str()).contains(needle) {
                    return;
                }
            }
        }
        panic!("no {needle:?} over wss");
    };
    expect(&mut ws, "create");
    ws.send(Message::text(r#"["text", ["create sally pw123"], {}]"#))
        .expect("send");
    expect(&mut ws, "The Portal Plaza");
    let mut telnet = portal.player("tina");
    ws.send(Message::text(r#"["text", ["say over wss"], {}]"#))
        .expect("send");
    telnet.expect("sally says, \"over wss\"");
}

/// One AJAX request on a kept-alive TLS connection, and its answer.
fn tls_call(tls: &mut Tls, buf: &mut Vec<u8>, form: &str) -> support::ajax::Answer {
    tls.write_all(&support::ajax::post_bytes(form, ""))
        .expect("write");
    support::ajax::read_answer(tls, buf, WAIT).expect("an answer on the same connection")
}

#[test]
fn an_ajax_player_plays_over_one_kept_alive_https_connection() {
    use support::ajax::{browser_id, encode, text_of};
    let (_portal, addr, der, _dir) = start();
    let mut tls = tls_connect(addr, &der);
    let mut buf = Vec::new();
    let ids = format!("csessid={}&cuid=t", browser_id(1));
    let init = tls_call(&mut tls, &mut buf, &format!("mode=init&{ids}"));
    assert_eq!(init.status, 200, "{init:?}");
    let mut seen = String::new();
    for (input, needle) in [
        (None, "create"),
        (Some("create tess pw123"), "The Portal Plaza"),
    ] {
        if let Some(line) = input {
            let data = serde_json::json!(["text", [line], {}]).to_string();
            let form = format!("mode=input&{ids}&data={}", encode(&data));
            let sent = tls_call(&mut tls, &mut buf, &form);
            assert_eq!(sent.body, "\"\"");
        }
        let deadline = Instant::now() + WAIT;
        while !seen.contains(needle) {
            assert!(Instant::now() < deadline, "no {needle:?} in {seen}");
            // Each receive is parked in the session and answered by a
            // fresh worker, over the same TLS connection.
            let form = format!("mode=receive&{ids}");
            let answer = tls_call(&mut tls, &mut buf, &form);
            let message: serde_json::Value = serde_json::from_str(&answer.body).expect("JSON");
            seen.push_str(&text_of(&message));
        }
    }
}
