//! Certificates and TLS clients for the `[[tls]]` listener tests: a fresh
//! self-signed `localhost` certificate on disk, and a rustls client that
//! trusts exactly that certificate.

use rustls::pki_types::CertificateDer;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// A TLS client stream over a real socket.
pub type TlsStream = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// A new certificate for `localhost` written as `STEM.crt` and `STEM.key`
/// (PEM) in `dir`; returns both paths and the certificate's DER.
pub fn make_cert(dir: &Path, stem: &str) -> (PathBuf, PathBuf, Vec<u8>) {
    let generated =
        rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("certificate");
    let cert = dir.join(format!("{stem}.crt"));
    let key = dir.join(format!("{stem}.key"));
    std::fs::write(&cert, generated.cert.pem()).expect("write the certificate");
    std::fs::write(&key, generated.key_pair.serialize_pem()).expect("write the key");
    (cert, key, generated.cert.der().to_vec())
}

/// A client configuration trusting only the certificate `trusted` (DER).
pub fn client_config(trusted: &[u8]) -> Arc<rustls::ClientConfig> {
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
    Arc::new(config)
}

/// Connect to `addr` as `localhost`, trusting only `trusted`; reads time
/// out after 50 ms so callers can poll. The handshake runs on first use.
pub fn connect(addr: SocketAddr, trusted: &[u8]) -> TlsStream {
    let name = "localhost".try_into().expect("name");
    let conn = rustls::ClientConnection::new(client_config(trusted), name).expect("client");
    let sock = TcpStream::connect(addr).expect("connect");
    sock.set_read_timeout(Some(Duration::from_millis(50)))
        .expect("timeout");
    rustls::StreamOwned::new(conn, sock)
}

/// Read from `stream` until the text so far holds `needle` (or
/// [`super::WAIT`] passes, or the stream ends); returns the text.
pub fn read_until(stream: &mut TlsStream, needle: &str) -> String {
    use std::io::Read;
    let deadline = std::time::Instant::now() + super::WAIT;
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while std::time::Instant::now() < deadline {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break,
        }
        if String::from_utf8_lossy(&seen).contains(needle) {
            break;
        }
    }
    String::from_utf8_lossy(&seen).into_owned()
}
