//! telnet/ssl end to end, with certificates the test makes: a TLS player
//! logs in and plays; openssl s_client and Python's ssl module connect; a
//! plain-text client and a truncated handshake are dropped while the TLS
//! player carries on; SIGHUP swaps the certificate for new connections; a
//! game restart keeps TLS players.

mod support;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;
use support::{wait_for, Portal};

/// A certificate for `localhost` as `portal.crt`/`portal.key`; returns its
/// DER too.
fn make_cert(dir: &Path) -> (PathBuf, PathBuf, Vec<u8>) {
    support::tls::make_cert(dir, "portal")
}

struct TlsPortal {
    portal: Portal,
    tls: SocketAddr,
    cert_dir: tempfile::TempDir,
    cert_der: Vec<u8>,
}

fn start(limits: &str) -> TlsPortal {
    let cert_dir = tempfile::tempdir().unwrap();
    let (cert, key, cert_der) = make_cert(cert_dir.path());
    let tables = format!(
        "[[tls]]\nlisten = \"127.0.0.1:0\"\ncert = \"{}\"\nkey = \"{}\"\n",
        cert.display(),
        key.display()
    );
    let mut portal = Portal::start_tables(limits, &tables);
    let tls = portal.status("tls").parse().unwrap();
    TlsPortal {
        portal,
        tls,
        cert_dir,
        cert_der,
    }
}

/// A telnet-over-TLS player trusting exactly `trusted`.
struct TlsClient {
    stream: support::tls::TlsStream,
    seen: Vec<u8>,
}

impl TlsClient {
    fn connect(addr: SocketAddr, trusted: &[u8]) -> TlsClient {
        TlsClient {
            stream: support::tls::connect(addr, trusted),
            seen: Vec::new(),
        }
    }

    fn send(&mut self, line: &str) {
        self.stream
            .write_all(format!("{line}\r\n").as_bytes())
            .unwrap();
        self.stream.flush().unwrap();
    }

    fn pump(&mut self) -> bool {
        let mut buf = [0u8; 16384];
        match self.stream.read(&mut buf) {
            Ok(0) => false,
            Ok(n) => {
                self.seen.extend_from_slice(&buf[..n]);
                true
            }
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                true
            }
            Err(_) => false,
        }
    }

    fn expect(&mut self, text: &str) -> String {
        let needle = text.as_bytes();
        wait_for(&format!("{text:?} over TLS"), || {
            let found = self.seen.windows(needle.len()).position(|w| w == needle);
            if let Some(at) = found {
                let got: Vec<u8> = self.seen.drain(..at + needle.len()).collect();
                return Some(String::from_utf8_lossy(&got).into_owned());
            }
            self.pump();
            None
        })
    }

    fn peer_cert(&self) -> Vec<u8> {
        let certs = self.stream.conn.peer_certificates().unwrap();
        certs[0].to_vec()
    }

    fn login(&mut self, name: &str) {
        self.expect("create <name>");
        self.send(&format!("create {name} pw123"));
        self.expect("Plaza");
    }
}

#[test]
fn a_tls_player_logs_in_and_plays_with_a_telnet_player() {
    let tp = start("");
    let mut secure = TlsClient::connect(tp.tls, &tp.cert_der);
    secure.login("sslanna");
    let mut plain = tp.portal.player("plainbob");
    secure.send("say over tls");
    plain.expect("sslanna says, \"over tls\"");
    plain.send("say in the clear");
    secure.expect("plainbob says, \"in the clear\"");
    secure.send("client");
    let report = secure.expect("Protocol: telnet/ssl");
    assert!(report.contains("telnet/ssl"));
}

#[test]
fn openssl_s_client_connects_and_verifies() {
    let tp = start("");
    let ca = tp.cert_dir.path().join("portal.crt");
    let out = std::process::Command::new("openssl")
        .args(["s_client", "-connect", &tp.tls.to_string()])
        .args(["-servername", "localhost", "-verify_return_error", "-brief"])
        .arg("-CAfile")
        .arg(&ca)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("openssl runs");
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(all.contains("Verification: OK"), "{all}");
    assert!(all.contains("TLSv1.3"), "{all}");
}

#[test]
fn python_ssl_connects_and_reads_the_login_screen() {
    let tp = start("");
    let ca = tp.cert_dir.path().join("portal.crt");
    let script = "import socket, ssl, sys\n\
        ctx = ssl.create_default_context(cafile=sys.argv[3])\n\
        s = ctx.wrap_socket(socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10), server_hostname='localhost')\n\
        data = b''\n\
        while b'create <name>' not in data:\n\
        \x20   chunk = s.recv(4096)\n\
        \x20   if not chunk: break\n\
        \x20   data += chunk\n\
        print(s.version(), b'create <name>' in data)\n";
    let out = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(tp.tls.ip().to_string())
        .arg(tp.tls.port().to_string())
        .arg(&ca)
        .output()
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("TLSv1.3 True"),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn plain_text_and_truncated_handshakes_are_dropped_while_tls_play_goes_on() {
    let tp = start("tls_handshake_timeout_secs = 1.0\n");
    let mut secure = TlsClient::connect(tp.tls, &tp.cert_der);
    secure.login("steady");

    let mut plain = TcpStream::connect(tp.tls).unwrap();
    plain.write_all(b"look\r\n").unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut rest = Vec::new();
    let _ = plain.read_to_end(&mut rest);
    tp.portal.wait_log("TLS handshake failed");

    let mut truncated = TcpStream::connect(tp.tls).unwrap();
    truncated
        .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .unwrap();
    truncated
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut rest = Vec::new();
    let _ = truncated.read_to_end(&mut rest);
    tp.portal.wait_log("TLS handshake not finished");

    secure.send("echo still-secure");
    secure.expect("still-secure");
}

#[test]
fn sighup_swaps_the_certificate_for_new_connections_only() {
    let tp = start("");
    let mut old = TlsClient::connect(tp.tls, &tp.cert_der);
    old.login("veteran");
    assert_eq!(old.peer_cert(), tp.cert_der);

    let (_, _, new_der) = make_cert(tp.cert_dir.path());
    tp.portal.signal(libc::SIGHUP);
    tp.portal.wait_log("TLS certificate reloaded");

    let mut fresh = TlsClient::connect(tp.tls, &new_der);
    fresh.expect("create <name>");
    assert_eq!(fresh.peer_cert(), new_der);
    old.send("echo old-session-alive");
    old.expect("old-session-alive");
}

#[test]
fn a_game_restart_keeps_tls_players_connected() {
    let tp = start("");
    let mut secure = TlsClient::connect(tp.tls, &tp.cert_der);
    secure.login("survivor");
    tp.portal.signal(libc::SIGUSR1);
    secure.expect("The game is restarting");
    secure.send("echo during-restart");
    secure.expect("The game is back");
    secure.expect("during-restart");
}

#[test]
fn a_mismatched_key_stops_the_portal_at_start_naming_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, _, _) = make_cert(dir.path());
    let other = dir.path().join("other");
    std::fs::create_dir(&other).unwrap();
    let (_, other_key, _) = make_cert(&other);
    let conf = dir.path().join("portal.conf");
    std::fs::write(
        &conf,
        format!(
            "[telnet]\nlisten = [\"127.0.0.1:0\"]\n[web]\nlisten = []\n[amp]\nlisten = \"127.0.0.1:0\"\n\
             [log]\nfile = \"\"\n[game]\nautostart = false\n\
             [[tls]]\nlisten = \"127.0.0.1:0\"\ncert = \"{}\"\nkey = \"{}\"\n",
            cert.display(),
            other_key.display()
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_portal"))
        .arg("--config")
        .arg(&conf)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("portal.crt") && stderr.contains("other/portal.key"),
        "{stderr}"
    );
}

#[test]
fn the_make_cert_script_makes_a_pair_the_portal_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/make-cert"))
        .arg(dir.path())
        .arg("mud.example")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("[[tls]]"));
    let loaded = portal::tls::load_server_config(
        &dir.path().join("portal.crt"),
        &dir.path().join("portal.key"),
    );
    assert!(loaded.is_ok(), "{:?}", loaded.err());
}
