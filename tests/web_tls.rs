//! The web client over TLS (`[[tls]] serve = "web"`): the page over https
//! with a `Secure` browser-id cookie, and a wss session that plays.

mod support;
use rustls::pki_types::CertificateDer;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::web::{plain, read_all};
use support::{Portal, WAIT};
use tungstenite::handshake::client::generate_key;
use tungstenite::Message;

type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

fn start() -> (Portal, SocketAddr, Vec<u8>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("dir");
    let generated =
        rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("certificate");
    let cert = dir.path().join("web.crt");
    let key = dir.path().join("web.key");
    std::fs::write(&cert, generated.cert.pem()).expect("write");
    std::fs::write(&key, generated.key_pair.serialize_pem()).expect("write");
    let tables = format!(
        "[[tls]]\nlisten = \"127.0.0.1:0\"\ncert = \"{}\"\nkey = \"{}\"\nserve = \"web\"\n",
        cert.display(),
        key.display()
    );
    let mut portal = Portal::start_tables("", &tables);
    let addr = portal.status("wss").parse().expect("wss address");
    (portal, addr, generated.cert.der().to_vec(), dir)
}

fn tls_connect(addr: SocketAddr, trusted: &[u8]) -> Tls {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from(trusted.to_vec()))
        .expect("root");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = "localhost".try_into().expect("name");
    let conn = rustls::ClientConnection::new(Arc::new(config), name).expect("client");
    let sock = TcpStream::connect(addr).expect("connect");
    sock.set_read_timeout(Some(Duration::from_millis(50)))
        .expect("timeout");
    rustls::StreamOwned::new(conn, sock)
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
