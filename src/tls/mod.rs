//! TLS for `telnet/ssl` listeners: loading certificates and building the
//! rustls server configuration.
//!
//! `main.rs` loads every `[[tls]]` listener's certificate chain and key at
//! start (a missing, unreadable or mismatched file stops the portal with the
//! path and the reason); the acceptor loads them again on SIGHUP and, if
//! that works, gives new connections the new configuration while existing
//! sessions keep theirs. Each session worker owns its own
//! `rustls::ServerConnection` (see `session::transport`).
//!
//! [`carried`] continues a session's record layer without rustls after
//! `portal upgrade` has handed it to a new process.
//!
//! Provider: `ring`, which builds with only a C compiler on every host our
//! users run; protocol versions TLS 1.3 and 1.2, rustls' safe defaults.

pub mod carried;

use rustls::pki_types::pem::{Error as PemError, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Why a certificate/key pair could not be used. `Display` names the
/// file(s) and the reason in one line; `source()` is the PEM or rustls
/// error underneath.
#[derive(Debug)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read or holds malformed PEM. `context` says what
    /// was being looked for (may be empty).
    Pem {
        path: PathBuf,
        context: &'static str,
        source: PemError,
    },
    /// A certificate file with no certificate in it.
    NoCertificate { path: PathBuf },
    /// The key does not belong to the certificate, or rustls refused them.
    Pair {
        cert: PathBuf,
        key: PathBuf,
        source: rustls::Error,
    },
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::Pem {
                path,
                context: "",
                source,
            } => write!(f, "{}: {source}", path.display()),
            TlsError::Pem {
                path,
                context,
                source,
            } => write!(f, "{}: {context}: {source}", path.display()),
            TlsError::NoCertificate { path } => {
                write!(f, "{}: no certificate in the file", path.display())
            }
            TlsError::Pair { cert, key, source } => {
                write!(f, "{} with {}: {source}", cert.display(), key.display())
            }
        }
    }
}

impl std::error::Error for TlsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TlsError::Pem { source, .. } => Some(source),
            TlsError::NoCertificate { .. } => None,
            TlsError::Pair { source, .. } => Some(source),
        }
    }
}

/// Handshakes that failed or timed out since start (logged each time).
static HANDSHAKE_FAILURES: AtomicU64 = AtomicU64::new(0);

/// Count one failed or timed-out handshake.
pub fn count_handshake_failure() -> u64 {
    HANDSHAKE_FAILURES.fetch_add(1, Ordering::Relaxed) + 1
}

/// Failed or timed-out handshakes so far.
pub fn handshake_failures() -> u64 {
    HANDSHAKE_FAILURES.load(Ordering::Relaxed)
}

/// Build a server configuration from a PEM certificate chain and key.
pub fn load_server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let chain = load_chain(cert)?;
    let private_key =
        PrivateKeyDer::from_pem_file(key).map_err(pem_error(key, "no usable private key"))?;
    let pair_error = |source| TlsError::Pair {
        cert: cert.to_owned(),
        key: key.to_owned(),
        source,
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(pair_error)?
        .with_no_client_auth()
        .with_single_cert(chain, private_key)
        .map_err(pair_error)?;
    // `portal upgrade` carries each session's record keys to the new
    // process (see `carried`); rustls gives them out only when asked here.
    config.enable_secret_extraction = true;
    Ok(Arc::new(config))
}

fn load_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let iter = CertificateDer::pem_file_iter(path).map_err(pem_error(path, ""))?;
    let chain = iter
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem_error(path, "bad PEM"))?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(chain)
}

fn pem_error<'a>(path: &'a Path, context: &'static str) -> impl FnOnce(PemError) -> TlsError + 'a {
    move |source| TlsError::Pem {
        path: path.to_owned(),
        context,
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_pair(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let generated = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let cert = dir.join(format!("{name}.crt"));
        let key = dir.join(format!("{name}.key"));
        std::fs::write(&cert, generated.cert.pem()).unwrap();
        std::fs::write(&key, generated.key_pair.serialize_pem()).unwrap();
        (cert, key)
    }

    #[test]
    fn a_matching_pair_loads() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = write_pair(dir.path(), "a");
        assert!(load_server_config(&cert, &key).is_ok());
    }

    #[test]
    fn a_missing_file_names_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let (_, key) = write_pair(dir.path(), "a");
        let missing = dir.path().join("nope.crt");
        let err = load_server_config(&missing, &key).unwrap_err().to_string();
        assert!(err.contains("nope.crt"), "{err}");
    }

    #[test]
    fn a_key_from_another_certificate_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, _) = write_pair(dir.path(), "a");
        let (_, other_key) = write_pair(dir.path(), "b");
        let err = load_server_config(&cert, &other_key).unwrap_err();
        assert!(matches!(err, TlsError::Pair { .. }), "{err}");
        let cause = std::error::Error::source(&err);
        assert!(cause.is_some_and(|c| c.is::<rustls::Error>()), "{err}");
    }

    #[test]
    fn a_file_without_pem_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (_, key) = write_pair(dir.path(), "a");
        let junk = dir.path().join("junk.crt");
        std::fs::write(&junk, "not a certificate").unwrap();
        let err = load_server_config(&junk, &key).unwrap_err().to_string();
        assert!(
            err.contains("junk.crt") && err.contains("no certificate"),
            "{err}"
        );
    }
}
