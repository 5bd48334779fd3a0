//! A TLS session's record layer carried across `portal upgrade`, without
//! rustls (RFC 8446 §5 for TLS 1.3, RFC 5246 §6.2 with RFC 5288 and RFC 7905
//! for TLS 1.2 AEAD records).
//!
//! rustls' state cannot be serialised and this kernel has no kernel TLS, so
//! the old process asks rustls for the session's traffic keys
//! ([`CarriedTls::from_rustls`]), writes them to the hand-over file
//! ([`CarriedTls::encode`]), and the new process ([`CarriedTls::decode`])
//! goes on opening the client's records and sealing its own:
//!
//! ```text
//! old process                                 new process
//! ServerConnection ─dangerous_extract_secrets─► CarriedTls ─encode─► file
//!   + ciphertext read but not given to rustls                          │
//!     (see split_whole_records)                                        ▼
//! socket bytes ──► open() ──► Opened { data, closed }   CarriedTls::decode
//! seal(data) / close_notify() ──► bytes for the socket
//! ```
//!
//! Pure: bytes in, bytes out, no I/O. The session worker owns one per
//! carried session. Only application data, alerts and the two directions'
//! sequence numbers can be followed: a TLS 1.3 KeyUpdate or any other
//! handshake message from the client (a TLS 1.2 renegotiation) needs the
//! traffic secret or the handshake state, which rustls does not give out,
//! so it ends the session with a clear [`CarryError`]. Nor can a carried
//! session rekey itself: after 2^24 records sealed under AES-GCM it
//! refuses to seal more ([`CarryError::LimitReached`]). Ciphers: AES-128-GCM, AES-256-GCM and
//! ChaCha20-Poly1305 (`ring::aead`, the same code rustls' provider uses).
//!
//! ```
//! use portal::tls::carried::split_whole_records;
//! // One whole record (type 23, version 3.3, 2 bytes) and 3 bytes of the next.
//! let buf = [23, 3, 3, 0, 2, 0xaa, 0xbb, 23, 3, 3];
//! assert_eq!(split_whole_records(&buf), 7);
//! ```

use ring::aead;
use rustls::{ConnectionTrafficSecrets, ExtractedSecrets, ProtocolVersion, ServerConnection};
use std::fmt;
use std::io::Read;

/// The most ciphertext (read from the socket but not opened yet) and
/// plaintext (opened by rustls but not read yet) a carried session holds.
pub const MAX_CARRIED: usize = 64 * 1024;

const HEADER_LEN: usize = 5;
const MAX_PLAINTEXT: usize = 16 * 1024;
/// RFC 8446 §5.2: at most 2^14 + 256 bytes of ciphertext.
const MAX_CIPHERTEXT_13: usize = MAX_PLAINTEXT + 256;
/// RFC 5246 §6.2.3: at most 2^14 + 2048 bytes of ciphertext.
const MAX_CIPHERTEXT_12: usize = MAX_PLAINTEXT + 2048;
const TAG_LEN: usize = 16;
const NONCE_LEN: usize = 12;
const GCM_EXPLICIT_LEN: usize = 8;
const RECORD_VERSION: [u8; 2] = [3, 3];

const CHANGE_CIPHER_SPEC: u8 = 20;
const ALERT: u8 = 21;
const HANDSHAKE: u8 = 22;
const APPLICATION_DATA: u8 = 23;

const CLOSE_NOTIFY: u8 = 0;
const USER_CANCELED: u8 = 90;
const ALERT_WARNING: u8 = 1;
const KEY_UPDATE: u8 = 24;

const MAGIC: &[u8; 4] = b"PTLS";
const FORMAT: u8 = 1;

/// The protocol version of a carried session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    Tls12,
    Tls13,
}

/// The AEAD cipher of a carried session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Suite {
    Aes128Gcm,
    Aes256Gcm,
    Chacha20Poly1305,
}

impl Suite {
    fn algorithm(self) -> &'static aead::Algorithm {
        match self {
            Suite::Aes128Gcm => &aead::AES_128_GCM,
            Suite::Aes256Gcm => &aead::AES_256_GCM,
            Suite::Chacha20Poly1305 => &aead::CHACHA20_POLY1305,
        }
    }

    fn key_len(self) -> usize {
        self.algorithm().key_len()
    }

    /// Records one key may seal: where rustls' `ring` provider would
    /// rekey (TLS 1.3) or stop (TLS 1.2). We cannot rekey.
    fn record_limit(self) -> u64 {
        match self {
            Suite::Aes128Gcm | Suite::Aes256Gcm => 1 << 24,
            Suite::Chacha20Poly1305 => u64::MAX,
        }
    }

    fn code(self) -> u8 {
        match self {
            Suite::Aes128Gcm => 1,
            Suite::Aes256Gcm => 2,
            Suite::Chacha20Poly1305 => 3,
        }
    }

    fn from_code(code: u8) -> Option<Suite> {
        match code {
            1 => Some(Suite::Aes128Gcm),
            2 => Some(Suite::Aes256Gcm),
            3 => Some(Suite::Chacha20Poly1305),
            _ => None,
        }
    }
}

/// How the peer ended the session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerClosed {
    /// A close_notify alert: a clean close.
    CloseNotify,
    /// A fatal alert, with its description code (RFC 8446 §6).
    Alert(u8),
}

/// What [`CarriedTls::open`] got out of the bytes it was given.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Opened {
    /// Application data, in order.
    pub data: Vec<u8>,
    /// Set once the peer has closed; every later `open` says so again and
    /// ignores its input.
    pub closed: Option<PeerClosed>,
}

/// Why a session could not be carried, or a carried session cannot go on.
#[derive(Debug)]
#[non_exhaustive]
pub enum CarryError {
    /// rustls would not give out the keys: secret extraction is not
    /// enabled in its config, the handshake is not finished, or records
    /// are still waiting to be written to the socket.
    Extract(rustls::Error),
    /// The session's protocol version cannot be carried.
    Version(String),
    /// The session's cipher cannot be carried.
    Suite(String),
    /// More pending bytes than [`MAX_CARRIED`] (`what` says which).
    TooMuchPending { what: &'static str, len: usize },
    /// The hand-over bytes are not a carried session this build reads.
    Corrupt(&'static str),
    /// A record header or body that is not TLS after the handshake.
    BadRecord(&'static str),
    /// A record failed authentication: tampered, or keys out of step.
    Decrypt,
    /// The peer sent a TLS 1.3 KeyUpdate: the new keys need the traffic
    /// secret, which is not carried.
    KeyUpdate,
    /// The peer sent a handshake message of this type (a TLS 1.2
    /// renegotiation, say), which only the lost handshake state could answer.
    Handshake { msg_type: Option<u8> },
    /// A record of a content type that must not arrive now.
    Unexpected { content_type: u8 },
    /// The key has sealed or opened as many records as is safe; rustls
    /// would rekey, we cannot, so the session must end.
    LimitReached,
    /// close_notify was sent: nothing more can be sealed.
    Closed,
    /// An earlier `open` failed; the session cannot go on.
    Failed,
}

impl fmt::Display for CarryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CarryError::Extract(e) => write!(f, "rustls gave no session keys: {e}"),
            CarryError::Version(v) => write!(f, "cannot carry a {v} session"),
            CarryError::Suite(s) => write!(f, "cannot carry a session with cipher {s}"),
            CarryError::TooMuchPending { what, len } => {
                write!(
                    f,
                    "{len} bytes of {what} (at most {MAX_CARRIED} can be carried)"
                )
            }
            CarryError::Corrupt(why) => write!(f, "bad carried TLS session: {why}"),
            CarryError::BadRecord(why) => write!(f, "bad TLS record: {why}"),
            CarryError::Decrypt => write!(f, "a TLS record failed authentication"),
            CarryError::KeyUpdate => write!(
                f,
                "the client sent a TLS 1.3 KeyUpdate, which a carried session cannot follow"
            ),
            CarryError::Handshake { msg_type } => {
                write!(f, "the client sent a handshake message (type ")?;
                match msg_type {
                    Some(t) => write!(f, "{t}")?,
                    None => write!(f, "none")?,
                }
                write!(
                    f,
                    ") after the handshake, which a carried session cannot answer"
                )
            }
            CarryError::Unexpected { content_type } => {
                write!(f, "unexpected TLS record of content type {content_type}")
            }
            CarryError::LimitReached => {
                write!(
                    f,
                    "the session's key is worn out (a carried session cannot rekey)"
                )
            }
            CarryError::Closed => write!(f, "the session was closed (close_notify sent)"),
            CarryError::Failed => write!(f, "the session failed earlier"),
        }
    }
}

impl std::error::Error for CarryError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CarryError::Extract(e) => Some(e),
            _ => None,
        }
    }
}

/// The length of the whole TLS records at the start of `buf`: the worker
/// gives rustls only these and keeps the rest as the pending ciphertext of
/// a session about to be carried. A header rustls will refuse (a length
/// over the TLS 1.2 maximum) counts as whole up to the end of `buf`, so
/// that rustls sees it and reports the error.
pub fn split_whole_records(buf: &[u8]) -> usize {
    let mut at = 0;
    while let Some(header) = buf.get(at..at + HEADER_LEN) {
        let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
        if len > MAX_CIPHERTEXT_12 {
            return buf.len();
        }
        let end = at + HEADER_LEN + len;
        if end > buf.len() {
            break;
        }
        at = end;
    }
    at
}

/// One direction's key, nonce base and record sequence number.
struct Keys {
    key: aead::LessSafeKey,
    /// The key's bytes, kept for `encode`; cleared on drop.
    raw: [u8; 32],
    iv: [u8; NONCE_LEN],
    seq: u64,
}

impl Keys {
    fn new(
        suite: Suite,
        raw_key: &[u8],
        iv: [u8; NONCE_LEN],
        seq: u64,
    ) -> Result<Keys, CarryError> {
        let unbound = aead::UnboundKey::new(suite.algorithm(), raw_key)
            .map_err(|_| CarryError::Corrupt("a key of the wrong length"))?;
        let mut raw = [0; 32];
        raw.get_mut(..raw_key.len())
            .ok_or(CarryError::Corrupt("a key of the wrong length"))?
            .copy_from_slice(raw_key);
        Ok(Keys {
            key: aead::LessSafeKey::new(unbound),
            raw,
            iv,
            seq,
        })
    }

    /// The per-record nonce: the IV XOR the sequence number (RFC 8446
    /// §5.3; the same for TLS 1.2 ChaCha20, and rustls' choice for the
    /// TLS 1.2 GCM nonce it sends).
    fn nonce(&self) -> [u8; NONCE_LEN] {
        let mut nonce = self.iv;
        for (n, s) in nonce[4..].iter_mut().zip(self.seq.to_be_bytes()) {
            *n ^= s;
        }
        nonce
    }

    fn advance(&mut self) -> Result<(), CarryError> {
        self.seq = self.seq.checked_add(1).ok_or(CarryError::LimitReached)?;
        Ok(())
    }
}

impl Drop for Keys {
    fn drop(&mut self) {
        // Best effort without unsafe code: black_box keeps the writes.
        self.raw.fill(0);
        self.iv.fill(0);
        std::hint::black_box(&mut self.raw);
        std::hint::black_box(&mut self.iv);
    }
}

/// A TLS session's record layer, carried out of rustls. See the module
/// docs. `Debug` shows the version, cipher, sequence numbers and buffer
/// sizes, never the keys.
pub struct CarriedTls {
    version: Version,
    suite: Suite,
    tx: Keys,
    rx: Keys,
    /// Ciphertext not opened yet: at most one partial record after `open`.
    incoming: Vec<u8>,
    /// Plaintext rustls had opened but nobody had read; `open` gives it first.
    unread: Vec<u8>,
    peer_closed: Option<PeerClosed>,
    sent_close: bool,
    failed: bool,
}

impl fmt::Debug for CarriedTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CarriedTls")
            .field("version", &self.version)
            .field("suite", &self.suite)
            .field("tx_seq", &self.tx.seq)
            .field("rx_seq", &self.rx.seq)
            .field("incoming", &self.incoming.len())
            .field("unread", &self.unread.len())
            .field("peer_closed", &self.peer_closed)
            .field("sent_close", &self.sent_close)
            .finish_non_exhaustive()
    }
}

impl CarriedTls {
    /// Take over `conn`, whose handshake is finished and whose outgoing
    /// records have all been written (`wants_write()` false; rustls
    /// refuses otherwise), and which was given only whole records, each
    /// followed by `process_new_packets` (a partial record inside rustls
    /// would be lost). `pending` is ciphertext read from the socket but
    /// not given to rustls (see [`split_whole_records`]). Plaintext rustls
    /// has opened but not handed out comes out of the first
    /// [`open`](Self::open), and a close_notify it saw is kept.
    pub fn from_rustls(
        mut conn: ServerConnection,
        pending: Vec<u8>,
    ) -> Result<CarriedTls, CarryError> {
        let version = match conn.protocol_version() {
            Some(ProtocolVersion::TLSv1_3) => Version::Tls13,
            Some(ProtocolVersion::TLSv1_2) => Version::Tls12,
            other => return Err(CarryError::Version(format!("{other:?}"))),
        };
        let (unread, peer_closed) = drain_plaintext(&mut conn)?;
        let secrets = conn
            .dangerous_extract_secrets()
            .map_err(CarryError::Extract)?;
        let mut carried = CarriedTls::from_secrets(version, secrets)?;
        carried.unread = unread;
        carried.peer_closed = peer_closed;
        carried.incoming = pending;
        carried.check_sizes()?;
        Ok(carried)
    }

    /// A carried session from extracted secrets (either side's: the tests
    /// also carry a client, to send what rustls clients never send).
    fn from_secrets(version: Version, secrets: ExtractedSecrets) -> Result<CarriedTls, CarryError> {
        let (tx_seq, tx) = secrets.tx;
        let (rx_seq, rx) = secrets.rx;
        let (suite, tx) = keys_from(tx, tx_seq)?;
        let (rx_suite, rx) = keys_from(rx, rx_seq)?;
        if rx_suite != suite {
            return Err(CarryError::Suite("different ciphers each way".into()));
        }
        Ok(CarriedTls {
            version,
            suite,
            tx,
            rx,
            incoming: Vec::new(),
            unread: Vec::new(),
            peer_closed: None,
            sent_close: false,
            failed: false,
        })
    }

    fn check_sizes(&self) -> Result<(), CarryError> {
        if self.incoming.len() > MAX_CARRIED {
            return Err(CarryError::TooMuchPending {
                what: "pending ciphertext",
                len: self.incoming.len(),
            });
        }
        if self.unread.len() > MAX_CARRIED {
            return Err(CarryError::TooMuchPending {
                what: "unread plaintext",
                len: self.unread.len(),
            });
        }
        Ok(())
    }

    pub fn version(&self) -> Version {
        self.version
    }

    pub fn suite(&self) -> Suite {
        self.suite
    }

    /// Open the records in `incoming` (after any partial record kept from
    /// before) and return their application data, and whether the peer
    /// closed. A partial record at the end is kept for the next call. An
    /// error leaves the session unusable: close the socket.
    pub fn open(&mut self, incoming: &[u8]) -> Result<Opened, CarryError> {
        if self.failed {
            return Err(CarryError::Failed);
        }
        let mut opened = Opened {
            data: std::mem::take(&mut self.unread),
            closed: self.peer_closed,
        };
        if self.peer_closed.is_some() {
            self.incoming.clear();
            return Ok(opened);
        }
        let mut buf = std::mem::take(&mut self.incoming);
        buf.extend_from_slice(incoming);
        match self.open_records(&buf, &mut opened) {
            Ok(used) => {
                buf.drain(..used);
                self.incoming = buf;
                Ok(opened)
            }
            Err(e) => {
                self.failed = true;
                Err(e)
            }
        }
    }

    /// Open the whole records at the start of `buf` into `opened`; return
    /// the bytes used.
    fn open_records(&mut self, buf: &[u8], opened: &mut Opened) -> Result<usize, CarryError> {
        let mut at = 0;
        while let Some(header) = buf.get(at..at + HEADER_LEN) {
            let len = self.check_header(header)?;
            let Some(body) = buf.get(at + HEADER_LEN..at + HEADER_LEN + len) else {
                break;
            };
            let (content_type, content) = self.open_record(header, body)?;
            at += HEADER_LEN + len;
            if let Some(closed) = self.take_content(content_type, &content, &mut opened.data)? {
                self.peer_closed = Some(closed);
                opened.closed = Some(closed);
                return Ok(buf.len());
            }
        }
        Ok(at)
    }

    /// Check a record header; return the body's length.
    fn check_header(&self, header: &[u8]) -> Result<usize, CarryError> {
        if !matches!(header[0], CHANGE_CIPHER_SPEC..=APPLICATION_DATA) {
            return Err(CarryError::BadRecord("not a TLS content type"));
        }
        if header[1..3] != RECORD_VERSION {
            return Err(CarryError::BadRecord("not record version 3.3"));
        }
        let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
        let max = match self.version {
            Version::Tls13 => MAX_CIPHERTEXT_13,
            Version::Tls12 => MAX_CIPHERTEXT_12,
        };
        if len > max {
            return Err(CarryError::BadRecord("longer than TLS allows"));
        }
        Ok(len)
    }

    /// Decrypt one record; return its (inner) content type and content.
    fn open_record(&mut self, header: &[u8], body: &[u8]) -> Result<(u8, Vec<u8>), CarryError> {
        let (content_type, content) = match self.version {
            Version::Tls13 => self.open_tls13(header, body)?,
            Version::Tls12 => self.open_tls12(header[0], body)?,
        };
        if content.len() > MAX_PLAINTEXT {
            return Err(CarryError::BadRecord("more plaintext than TLS allows"));
        }
        self.rx.advance()?;
        Ok((content_type, content))
    }

    fn open_tls13(&self, header: &[u8], body: &[u8]) -> Result<(u8, Vec<u8>), CarryError> {
        if header[0] != APPLICATION_DATA {
            return Err(CarryError::Unexpected {
                content_type: header[0],
            });
        }
        let nonce = aead::Nonce::assume_unique_for_key(self.rx.nonce());
        let mut plain = body.to_vec();
        let len = self
            .rx
            .key
            .open_in_place(nonce, aead::Aad::from(header), &mut plain)
            .map_err(|_| CarryError::Decrypt)?
            .len();
        plain.truncate(len);
        // RFC 8446 §5.4: the inner content type is the last non-zero byte.
        let end = plain
            .iter()
            .rposition(|&b| b != 0)
            .ok_or(CarryError::BadRecord("no inner content type"))?;
        let content_type = plain[end];
        plain.truncate(end);
        Ok((content_type, plain))
    }

    fn open_tls12(&self, content_type: u8, body: &[u8]) -> Result<(u8, Vec<u8>), CarryError> {
        let (nonce, sealed) = match self.suite {
            Suite::Aes128Gcm | Suite::Aes256Gcm => {
                // RFC 5288 §3: the nonce is the 4-byte salt and the 8 bytes
                // sent before the ciphertext.
                let explicit = body
                    .get(..GCM_EXPLICIT_LEN)
                    .ok_or(CarryError::BadRecord("shorter than its nonce"))?;
                let mut nonce = self.rx.iv;
                nonce[4..].copy_from_slice(explicit);
                (nonce, &body[GCM_EXPLICIT_LEN..])
            }
            Suite::Chacha20Poly1305 => (self.rx.nonce(), body),
        };
        let plain_len = sealed
            .len()
            .checked_sub(TAG_LEN)
            .ok_or(CarryError::BadRecord("shorter than its tag"))?;
        let aad = aead::Aad::from(tls12_aad(self.rx.seq, content_type, plain_len));
        let mut plain = sealed.to_vec();
        let len = self
            .rx
            .key
            .open_in_place(aead::Nonce::assume_unique_for_key(nonce), aad, &mut plain)
            .map_err(|_| CarryError::Decrypt)?
            .len();
        plain.truncate(len);
        Ok((content_type, plain))
    }

    /// Act on one record's content: data goes to `data`; an alert may
    /// close the session.
    fn take_content(
        &self,
        content_type: u8,
        content: &[u8],
        data: &mut Vec<u8>,
    ) -> Result<Option<PeerClosed>, CarryError> {
        match content_type {
            APPLICATION_DATA => {
                data.extend_from_slice(content);
                Ok(None)
            }
            ALERT => self.take_alert(content),
            HANDSHAKE => match (self.version, content.first()) {
                (Version::Tls13, Some(&KEY_UPDATE)) => Err(CarryError::KeyUpdate),
                (_, first) => Err(CarryError::Handshake {
                    msg_type: first.copied(),
                }),
            },
            other => Err(CarryError::Unexpected {
                content_type: other,
            }),
        }
    }

    fn take_alert(&self, content: &[u8]) -> Result<Option<PeerClosed>, CarryError> {
        let &[level, description] = content else {
            return Err(CarryError::BadRecord("an alert that is not two bytes"));
        };
        let ignored = match self.version {
            // RFC 8446 §6.1: user_canceled is followed by close_notify.
            Version::Tls13 => description == USER_CANCELED,
            Version::Tls12 => level == ALERT_WARNING,
        };
        Ok(match description {
            CLOSE_NOTIFY => Some(PeerClosed::CloseNotify),
            _ if ignored => None,
            _ => Some(PeerClosed::Alert(description)),
        })
    }

    /// Seal `plaintext` into records of at most 16 KiB of plaintext each,
    /// ready for the socket. Nothing for nothing.
    pub fn seal(&mut self, plaintext: &[u8]) -> Result<Vec<u8>, CarryError> {
        if self.sent_close {
            return Err(CarryError::Closed);
        }
        let records = plaintext.len().div_ceil(MAX_PLAINTEXT) as u64;
        if self.tx.seq.saturating_add(records) > self.suite.record_limit() {
            return Err(CarryError::LimitReached);
        }
        let mut out = Vec::with_capacity(plaintext.len() + records as usize * 64);
        for chunk in plaintext.chunks(MAX_PLAINTEXT) {
            self.seal_record(APPLICATION_DATA, chunk, &mut out)?;
        }
        Ok(out)
    }

    /// A close_notify alert for the socket; after it `seal` refuses.
    /// Empty if it was sent already or the sequence numbers are spent.
    pub fn close_notify(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        if self.sent_close {
            return out;
        }
        self.sent_close = true;
        match self.seal_record(ALERT, &[ALERT_WARNING, CLOSE_NOTIFY], &mut out) {
            Ok(()) => out,
            Err(_) => Vec::new(),
        }
    }

    /// Append one record of `content_type` holding `content` to `out`.
    fn seal_record(
        &mut self,
        content_type: u8,
        content: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), CarryError> {
        let nonce = self.tx.nonce();
        let (outer_type, overhead) = match (self.version, self.suite) {
            (Version::Tls13, _) => (APPLICATION_DATA, 1 + TAG_LEN),
            (Version::Tls12, Suite::Chacha20Poly1305) => (content_type, TAG_LEN),
            (Version::Tls12, _) => (content_type, GCM_EXPLICIT_LEN + TAG_LEN),
        };
        // Callers seal at most 2^14 bytes: the length fits.
        let len = u16::try_from(content.len() + overhead)
            .map_err(|_| CarryError::BadRecord("too long to seal"))?;
        let [len_hi, len_lo] = len.to_be_bytes();
        let header = [
            outer_type,
            RECORD_VERSION[0],
            RECORD_VERSION[1],
            len_hi,
            len_lo,
        ];
        out.extend_from_slice(&header);
        let aad = match self.version {
            Version::Tls13 => header.to_vec(),
            Version::Tls12 => tls12_aad(self.tx.seq, content_type, content.len()).to_vec(),
        };
        if self.version == Version::Tls12 && self.suite != Suite::Chacha20Poly1305 {
            out.extend_from_slice(&nonce[4..]);
        }
        let sealed_from = out.len();
        out.extend_from_slice(content);
        if self.version == Version::Tls13 {
            out.push(content_type);
        }
        let tag = self
            .tx
            .key
            .seal_in_place_separate_tag(
                aead::Nonce::assume_unique_for_key(nonce),
                aead::Aad::from(aad),
                &mut out[sealed_from..],
            )
            .map_err(|_| CarryError::BadRecord("too long to seal"))?;
        out.extend_from_slice(tag.as_ref());
        self.tx.advance()
    }

    /// The compact, versioned form for the hand-over file. It holds the
    /// keys: write it only where the portal's own secrets go.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128 + self.incoming.len() + self.unread.len());
        out.extend_from_slice(MAGIC);
        out.push(FORMAT);
        out.push(match self.version {
            Version::Tls12 => 0x12,
            Version::Tls13 => 0x13,
        });
        out.push(self.suite.code());
        out.push(u8::from(self.sent_close));
        match self.peer_closed {
            None => out.extend_from_slice(&[0, 0]),
            Some(PeerClosed::CloseNotify) => out.extend_from_slice(&[1, 0]),
            Some(PeerClosed::Alert(code)) => out.extend_from_slice(&[2, code]),
        }
        for keys in [&self.tx, &self.rx] {
            out.extend_from_slice(&keys.seq.to_be_bytes());
            out.extend_from_slice(&keys.raw[..self.suite.key_len()]);
            out.extend_from_slice(&keys.iv);
        }
        for bytes in [&self.unread, &self.incoming] {
            // Both at most MAX_CARRIED (checked on the way in; `open`
            // keeps less than one record).
            out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
            out.extend_from_slice(bytes);
        }
        out
    }

    /// Read back what [`encode`](Self::encode) wrote. Any other bytes give
    /// [`CarryError::Corrupt`]; nothing beyond [`MAX_CARRIED`] twice is
    /// allocated.
    pub fn decode(bytes: &[u8]) -> Result<CarriedTls, CarryError> {
        let mut r = Reader(bytes);
        if r.take(MAGIC.len())? != MAGIC {
            return Err(CarryError::Corrupt("not a carried TLS session"));
        }
        if r.byte()? != FORMAT {
            return Err(CarryError::Corrupt("an unknown format version"));
        }
        let version = match r.byte()? {
            0x12 => Version::Tls12,
            0x13 => Version::Tls13,
            _ => return Err(CarryError::Corrupt("an unknown TLS version")),
        };
        let suite = Suite::from_code(r.byte()?).ok_or(CarryError::Corrupt("an unknown cipher"))?;
        let sent_close = match r.byte()? {
            0 => false,
            1 => true,
            _ => return Err(CarryError::Corrupt("a bad close flag")),
        };
        let peer_closed = match (r.byte()?, r.byte()?) {
            (0, 0) => None,
            (1, 0) => Some(PeerClosed::CloseNotify),
            (2, code) => Some(PeerClosed::Alert(code)),
            _ => return Err(CarryError::Corrupt("a bad peer-closed field")),
        };
        let tx = r.keys(suite)?;
        let rx = r.keys(suite)?;
        let unread = r.bytes()?;
        let incoming = r.bytes()?;
        if !r.0.is_empty() {
            return Err(CarryError::Corrupt("bytes after the end"));
        }
        Ok(CarriedTls {
            version,
            suite,
            tx,
            rx,
            incoming,
            unread,
            peer_closed,
            sent_close,
            failed: false,
        })
    }
}

/// RFC 5246 §6.2.3.3: seq_num || type || version || length.
fn tls12_aad(seq: u64, content_type: u8, plain_len: usize) -> [u8; 13] {
    let mut aad = [0; 13];
    aad[..8].copy_from_slice(&seq.to_be_bytes());
    aad[8] = content_type;
    aad[9..11].copy_from_slice(&RECORD_VERSION);
    // Callers check plain_len <= 2^14 + 2048 first.
    aad[11..].copy_from_slice(&(plain_len as u16).to_be_bytes());
    aad
}

fn keys_from(secrets: ConnectionTrafficSecrets, seq: u64) -> Result<(Suite, Keys), CarryError> {
    let (suite, key, iv) = match secrets {
        ConnectionTrafficSecrets::Aes128Gcm { key, iv } => (Suite::Aes128Gcm, key, iv),
        ConnectionTrafficSecrets::Aes256Gcm { key, iv } => (Suite::Aes256Gcm, key, iv),
        ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv } => {
            (Suite::Chacha20Poly1305, key, iv)
        }
        _ => return Err(CarryError::Suite("one rustls added after this code".into())),
    };
    let iv: [u8; NONCE_LEN] = iv
        .as_ref()
        .try_into()
        .map_err(|_| CarryError::Suite("an IV that is not 12 bytes".into()))?;
    Ok((suite, Keys::new(suite, key.as_ref(), iv, seq)?))
}

/// Plaintext rustls has opened but not handed out, and whether it saw the
/// peer's close_notify.
fn drain_plaintext(
    conn: &mut ServerConnection,
) -> Result<(Vec<u8>, Option<PeerClosed>), CarryError> {
    let mut unread = Vec::new();
    let mut chunk = [0; 4096];
    loop {
        match conn.reader().read(&mut chunk) {
            Ok(0) => return Ok((unread, Some(PeerClosed::CloseNotify))),
            Ok(n) => unread.extend_from_slice(&chunk[..n]),
            // WouldBlock: no more for now. Others (the peer closed without
            // close_notify) leave the rest to the socket.
            Err(_) => return Ok((unread, None)),
        }
        if unread.len() > MAX_CARRIED {
            return Err(CarryError::TooMuchPending {
                what: "unread plaintext",
                len: unread.len(),
            });
        }
    }
}

/// A cursor over hand-over bytes that fails instead of reading past them.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], CarryError> {
        if self.0.len() < n {
            return Err(CarryError::Corrupt("cut short"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn byte(&mut self) -> Result<u8, CarryError> {
        Ok(self.take(1)?[0])
    }

    fn keys(&mut self, suite: Suite) -> Result<Keys, CarryError> {
        let seq = u64::from_be_bytes(self.array()?);
        let key = self.take(suite.key_len())?;
        let iv = self.array()?;
        Keys::new(suite, key, iv, seq)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], CarryError> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn bytes(&mut self) -> Result<Vec<u8>, CarryError> {
        let len = u32::from_be_bytes(self.array()?) as usize;
        if len > MAX_CARRIED {
            return Err(CarryError::Corrupt("a buffer longer than can be carried"));
        }
        Ok(self.take(len)?.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::crypto::{ring as provider, CryptoProvider};
    use rustls::pki_types::CertificateDer;
    use rustls::{ClientConfig, ClientConnection, ConnectionCommon, SupportedCipherSuite};
    use std::io::Write;
    use std::sync::Arc;

    /// A test-only RSA key (rcgen's ring backend cannot make RSA keys).
    const RSA_KEY: &str = include_str!("testdata/rsa-test-only.key");

    #[derive(Clone, Copy, Debug)]
    enum Cert {
        Ecdsa,
        Rsa,
    }

    /// A certificate for "localhost" and a server config from the
    /// portal's own loader, which allows secret extraction.
    fn server_config(cert: Cert) -> (Arc<rustls::ServerConfig>, CertificateDer<'static>) {
        let key = match cert {
            Cert::Ecdsa => rcgen::KeyPair::generate().unwrap(),
            Cert::Rsa => rcgen::KeyPair::from_pem(RSA_KEY).unwrap(),
        };
        let params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        let made = params.self_signed(&key).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let cert_path = dir.path().join("test.crt");
        let key_path = dir.path().join("test.key");
        std::fs::write(&cert_path, made.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        let config = super::super::load_server_config(&cert_path, &key_path).unwrap();
        (config, made.der().clone())
    }

    fn client(
        cert: CertificateDer<'static>,
        suite: SupportedCipherSuite,
        extract: bool,
    ) -> ClientConnection {
        let provider = CryptoProvider {
            cipher_suites: vec![suite],
            ..provider::default_provider()
        };
        let version = match suite {
            SupportedCipherSuite::Tls13(_) => &rustls::version::TLS13,
            SupportedCipherSuite::Tls12(_) => &rustls::version::TLS12,
        };
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert).unwrap();
        let mut config = ClientConfig::builder_with_provider(Arc::new(provider))
            .with_protocol_versions(&[version])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.enable_secret_extraction = extract;
        ClientConnection::new(Arc::new(config), "localhost".try_into().unwrap()).unwrap()
    }

    /// Every record `from` has to send.
    fn records<D>(from: &mut ConnectionCommon<D>) -> Vec<u8> {
        let mut out = Vec::new();
        while from.wants_write() {
            from.write_tls(&mut out).unwrap();
        }
        out
    }

    /// Give `bytes` to `to`; return the plaintext it read from them.
    fn deliver<D>(mut bytes: &[u8], to: &mut ConnectionCommon<D>) -> Vec<u8> {
        let mut got = Vec::new();
        while !bytes.is_empty() {
            to.read_tls(&mut bytes).unwrap();
            to.process_new_packets().unwrap();
            got.extend(plaintext(to));
        }
        got
    }

    fn plaintext<D>(conn: &mut ConnectionCommon<D>) -> Vec<u8> {
        let mut out = Vec::new();
        let mut chunk = [0; 4096];
        while let Ok(n @ 1..) = conn.reader().read(&mut chunk) {
            out.extend_from_slice(&chunk[..n]);
        }
        out
    }

    /// A client and server that have finished their handshake (tickets
    /// delivered too) and exchanged a line each way.
    fn session(cert: Cert, suite: SupportedCipherSuite) -> (ClientConnection, ServerConnection) {
        let (config, der) = server_config(cert);
        let mut client = client(der, suite, true);
        let mut server = ServerConnection::new(config).unwrap();
        while client.is_handshaking() || server.is_handshaking() || server.wants_write() {
            let to_server = records(&mut client);
            deliver(&to_server, &mut server);
            let to_client = records(&mut server);
            deliver(&to_client, &mut client);
        }
        client.writer().write_all(b"connect alice\r\n").unwrap();
        let bytes = records(&mut client);
        assert_eq!(deliver(&bytes, &mut server), b"connect alice\r\n");
        server.writer().write_all(b"Welcome, alice.\r\n").unwrap();
        let bytes = records(&mut server);
        assert_eq!(deliver(&bytes, &mut client), b"Welcome, alice.\r\n");
        (client, server)
    }

    /// `from_rustls` and across the exec: encode, decode.
    fn carry(server: ServerConnection, pending: Vec<u8>) -> CarriedTls {
        let carried = CarriedTls::from_rustls(server, pending).unwrap();
        CarriedTls::decode(&carried.encode()).unwrap()
    }

    fn client_sends(client: &mut ClientConnection, data: &[u8]) -> Vec<u8> {
        client.writer().write_all(data).unwrap();
        records(client)
    }

    /// The whole conversation after the carry, for one version and cipher.
    fn keeps_talking(cert: Cert, suite: SupportedCipherSuite, version: Version, expect: Suite) {
        let (mut client, server) = session(cert, suite);
        let mut carried = carry(server, Vec::new());
        assert_eq!((carried.version(), carried.suite()), (version, expect));

        // Client to portal: several records, one of them fed a byte at a time.
        let first = client_sends(&mut client, b"look\r\n");
        let second = client_sends(&mut client, b"say hi\r\n");
        let mut all = carried.open(&first).unwrap().data;
        for byte in &second {
            all.extend(carried.open(std::slice::from_ref(byte)).unwrap().data);
        }
        assert_eq!(all, b"look\r\nsay hi\r\n");
        let big: Vec<u8> = (0..40_000u32).map(|i| (i % 251) as u8).collect();
        let bytes = client_sends(&mut client, &big);
        let (head, tail) = bytes.split_at(bytes.len() / 2 + 3);
        let mut got = carried.open(head).unwrap().data;
        got.extend(carried.open(tail).unwrap().data);
        assert_eq!(got, big);

        // Portal to client: a short line, then more than one record's worth.
        let sealed = carried.seal(b"You see a room.\r\n").unwrap();
        assert_eq!(deliver(&sealed, &mut client), b"You see a room.\r\n");
        let sealed = carried.seal(&big).unwrap();
        assert!(split_whole_records(&sealed) == sealed.len());
        assert_eq!(deliver(&sealed, &mut client), big);

        // Still good after a second carry (a second upgrade).
        let mut carried = CarriedTls::decode(&carried.encode()).unwrap();
        let sealed = carried.seal(b"again\r\n").unwrap();
        assert_eq!(deliver(&sealed, &mut client), b"again\r\n");

        // The client closes, then the portal does.
        client.send_close_notify();
        let bytes = records(&mut client);
        let opened = carried.open(&bytes).unwrap();
        assert_eq!(opened.closed, Some(PeerClosed::CloseNotify));
        assert_eq!(
            carried.open(b"ignored").unwrap().closed,
            Some(PeerClosed::CloseNotify)
        );
        let close = carried.close_notify();
        deliver(&close, &mut client);
        assert!(client.process_new_packets().unwrap().peer_has_closed());
        assert!(matches!(carried.seal(b"late"), Err(CarryError::Closed)));
    }

    use provider::cipher_suite as cs;

    #[test]
    fn tls13_aes128_gcm_keeps_talking() {
        keeps_talking(
            Cert::Ecdsa,
            cs::TLS13_AES_128_GCM_SHA256,
            Version::Tls13,
            Suite::Aes128Gcm,
        );
    }

    #[test]
    fn tls13_aes256_gcm_keeps_talking() {
        keeps_talking(
            Cert::Ecdsa,
            cs::TLS13_AES_256_GCM_SHA384,
            Version::Tls13,
            Suite::Aes256Gcm,
        );
    }

    #[test]
    fn tls13_chacha20_keeps_talking() {
        keeps_talking(
            Cert::Ecdsa,
            cs::TLS13_CHACHA20_POLY1305_SHA256,
            Version::Tls13,
            Suite::Chacha20Poly1305,
        );
    }

    #[test]
    fn tls13_with_an_rsa_certificate_keeps_talking() {
        keeps_talking(
            Cert::Rsa,
            cs::TLS13_AES_128_GCM_SHA256,
            Version::Tls13,
            Suite::Aes128Gcm,
        );
    }

    #[test]
    fn tls12_ecdhe_ecdsa_aes128_gcm_keeps_talking() {
        keeps_talking(
            Cert::Ecdsa,
            cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            Version::Tls12,
            Suite::Aes128Gcm,
        );
    }

    #[test]
    fn tls12_ecdhe_ecdsa_aes256_gcm_keeps_talking() {
        keeps_talking(
            Cert::Ecdsa,
            cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            Version::Tls12,
            Suite::Aes256Gcm,
        );
    }

    #[test]
    fn tls12_ecdhe_ecdsa_chacha20_keeps_talking() {
        keeps_talking(
            Cert::Ecdsa,
            cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
            Version::Tls12,
            Suite::Chacha20Poly1305,
        );
    }

    #[test]
    fn tls12_ecdhe_rsa_aes128_gcm_keeps_talking() {
        keeps_talking(
            Cert::Rsa,
            cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
            Version::Tls12,
            Suite::Aes128Gcm,
        );
    }

    #[test]
    fn tls12_ecdhe_rsa_aes256_gcm_keeps_talking() {
        keeps_talking(
            Cert::Rsa,
            cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
            Version::Tls12,
            Suite::Aes256Gcm,
        );
    }

    #[test]
    fn tls12_ecdhe_rsa_chacha20_keeps_talking() {
        keeps_talking(
            Cert::Rsa,
            cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
            Version::Tls12,
            Suite::Chacha20Poly1305,
        );
    }

    /// The client's side carried too, to send what rustls clients never
    /// send (alerts, handshake messages) with the session's real keys.
    fn carry_client(client: ClientConnection) -> CarriedTls {
        let version = match client.protocol_version() {
            Some(ProtocolVersion::TLSv1_3) => Version::Tls13,
            _ => Version::Tls12,
        };
        CarriedTls::from_secrets(version, client.dangerous_extract_secrets().unwrap()).unwrap()
    }

    fn record(from: &mut CarriedTls, content_type: u8, content: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        from.seal_record(content_type, content, &mut out).unwrap();
        out
    }

    const TLS13: SupportedCipherSuite = cs::TLS13_AES_128_GCM_SHA256;
    const TLS12: SupportedCipherSuite = cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256;

    #[test]
    fn pending_ciphertext_and_unread_plaintext_are_carried() {
        for suite in [TLS13, TLS12] {
            let (mut client, mut server) = session(Cert::Ecdsa, suite);
            // rustls opens the first record but nobody reads it; the second
            // arrives only in part before the carry.
            let first = client_sends(&mut client, b"north\r\n");
            let second = client_sends(&mut client, b"south\r\n");
            let mut read: Vec<u8> = [first.clone(), second[..9].to_vec()].concat();
            let whole = split_whole_records(&read);
            assert_eq!(whole, first.len());
            let pending = read.split_off(whole);
            let mut bytes = &read[..];
            server.read_tls(&mut bytes).unwrap();
            server.process_new_packets().unwrap();
            let mut carried = carry(server, pending);
            assert!(
                format!("{carried:?}").contains("incoming: 9"),
                "{carried:?}"
            );
            let opened = carried.open(&second[9..]).unwrap();
            assert_eq!(opened.data, b"north\r\nsouth\r\n", "{suite:?}");
            assert_eq!(opened.closed, None);
        }
    }

    #[test]
    fn a_close_notify_rustls_saw_before_the_carry_is_kept() {
        let (mut client, mut server) = session(Cert::Ecdsa, TLS13);
        client.send_close_notify();
        let bytes = records(&mut client);
        deliver(&bytes, &mut server);
        let mut carried = carry(server, Vec::new());
        assert_eq!(
            carried.open(&[]).unwrap().closed,
            Some(PeerClosed::CloseNotify)
        );
    }

    #[test]
    fn a_tampered_record_is_refused_and_the_session_stays_failed() {
        for suite in [
            TLS13,
            TLS12,
            cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        ] {
            let (mut client, server) = session(Cert::Ecdsa, suite);
            let mut carried = carry(server, Vec::new());
            let mut bytes = client_sends(&mut client, b"look\r\n");
            let last = bytes.len() - 1;
            bytes[last] ^= 1;
            assert!(
                matches!(carried.open(&bytes), Err(CarryError::Decrypt)),
                "{suite:?}"
            );
            assert!(matches!(carried.open(&[]), Err(CarryError::Failed)));
        }
    }

    #[test]
    fn a_record_out_of_order_or_replayed_is_refused() {
        let (mut client, server) = session(Cert::Ecdsa, TLS12);
        let base = carry(server, Vec::new()).encode();
        let first = client_sends(&mut client, b"a");
        let second = client_sends(&mut client, b"b");
        let mut carried = CarriedTls::decode(&base).unwrap();
        assert!(matches!(carried.open(&second), Err(CarryError::Decrypt)));
        let mut carried = CarriedTls::decode(&base).unwrap();
        assert_eq!(carried.open(&first).unwrap().data, b"a");
        assert!(matches!(carried.open(&first), Err(CarryError::Decrypt)));
    }

    #[test]
    fn a_tls13_key_update_from_rustls_is_a_clear_error() {
        let (mut client, server) = session(Cert::Ecdsa, TLS13);
        let mut carried = carry(server, Vec::new());
        client.refresh_traffic_keys().unwrap();
        let bytes = records(&mut client);
        let err = carried.open(&bytes).unwrap_err();
        assert!(matches!(err, CarryError::KeyUpdate), "{err}");
        assert!(err.to_string().contains("KeyUpdate"), "{err}");
    }

    #[test]
    fn handshake_messages_after_the_handshake_are_clear_errors() {
        for (suite, msg_type) in [(TLS13, 4), (TLS12, 1)] {
            let (client, server) = session(Cert::Ecdsa, suite);
            let mut carried = carry(server, Vec::new());
            let mut peer = carry_client(client);
            let bytes = record(&mut peer, HANDSHAKE, &[msg_type, 0, 0, 0]);
            let err = carried.open(&bytes).unwrap_err();
            assert!(
                matches!(err, CarryError::Handshake { msg_type: Some(t) } if t == msg_type),
                "{err}"
            );
        }
    }

    #[test]
    fn a_fatal_alert_closes_and_a_warning_does_not() {
        for (suite, ignored) in [(TLS13, [1, USER_CANCELED]), (TLS12, [1, 100])] {
            let (client, server) = session(Cert::Ecdsa, suite);
            let mut carried = carry(server, Vec::new());
            let mut peer = carry_client(client);
            let mut bytes = record(&mut peer, ALERT, &ignored);
            bytes.extend(peer.seal(b"still here").unwrap());
            let opened = carried.open(&bytes).unwrap();
            assert_eq!(
                (opened.data.as_slice(), opened.closed),
                (&b"still here"[..], None)
            );
            let mut bytes = record(&mut peer, ALERT, &[2, 40]);
            bytes.extend(peer.seal(b"after the alert").unwrap());
            let opened = carried.open(&bytes).unwrap();
            assert_eq!(
                opened,
                Opened {
                    data: Vec::new(),
                    closed: Some(PeerClosed::Alert(40))
                }
            );
        }
    }

    #[test]
    fn change_cipher_spec_and_odd_alerts_are_refused() {
        for suite in [TLS13, TLS12] {
            let (client, server) = session(Cert::Ecdsa, suite);
            let base = carry(server, Vec::new()).encode();
            let mut peer = carry_client(client);
            let bytes = record(&mut peer, CHANGE_CIPHER_SPEC, &[1]);
            let mut carried = CarriedTls::decode(&base).unwrap();
            let err = carried.open(&bytes).unwrap_err();
            // TLS 1.3 sends every record as application data outside, so
            // the type is seen inside; TLS 1.2 sees it on the header.
            assert!(
                matches!(err, CarryError::Unexpected { content_type: 20 }),
                "{err}"
            );
            let mut peer = CarriedTls::decode(&peer.encode()).unwrap();
            peer.tx.seq -= 1;
            let bytes = record(&mut peer, ALERT, &[2, 40, 0]);
            let mut carried = CarriedTls::decode(&base).unwrap();
            assert!(matches!(
                carried.open(&bytes),
                Err(CarryError::BadRecord(_))
            ));
        }
    }

    #[test]
    fn a_bad_header_is_refused_before_its_body_arrives() {
        let mut carried = synthetic(Version::Tls13, Suite::Aes128Gcm, 0);
        let err = carried.open(&[23, 3, 3, 0x48, 0x01]).unwrap_err();
        assert!(matches!(err, CarryError::BadRecord(_)), "{err}");
        let mut carried = synthetic(Version::Tls12, Suite::Aes128Gcm, 0);
        assert!(carried
            .open(&[23, 3, 3, 0x48, 0x00])
            .unwrap()
            .data
            .is_empty());
        let mut carried = synthetic(Version::Tls12, Suite::Aes128Gcm, 0);
        assert!(matches!(
            carried.open(&[24, 3, 3, 0, 1]),
            Err(CarryError::BadRecord(_))
        ));
        let mut carried = synthetic(Version::Tls12, Suite::Aes128Gcm, 0);
        assert!(matches!(
            carried.open(&[23, 3, 1, 0, 1]),
            Err(CarryError::BadRecord(_))
        ));
        let mut carried = synthetic(Version::Tls12, Suite::Aes128Gcm, 0);
        let short = [23, 3, 3, 0, 10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        assert!(matches!(
            carried.open(&short),
            Err(CarryError::BadRecord(_))
        ));
    }

    #[test]
    fn records_split_at_every_byte_boundary_open_the_same() {
        for suite in [
            TLS13,
            TLS12,
            cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        ] {
            let (mut client, server) = session(Cert::Ecdsa, suite);
            let base = carry(server, Vec::new()).encode();
            let mut bytes = client_sends(&mut client, b"get sword\r\n");
            bytes.extend(client_sends(&mut client, b"wield sword\r\n"));
            for cut in 0..=bytes.len() {
                let mut carried = CarriedTls::decode(&base).unwrap();
                let mut data = carried.open(&bytes[..cut]).unwrap().data;
                data.extend(carried.open(&bytes[cut..]).unwrap().data);
                assert_eq!(data, b"get sword\r\nwield sword\r\n", "cut at {cut}");
            }
        }
    }

    #[test]
    fn any_chunking_of_the_input_opens_the_same() {
        use proptest::prelude::*;
        let (mut client, server) = session(Cert::Ecdsa, TLS13);
        let base = carry(server, Vec::new()).encode();
        let mut bytes = Vec::new();
        let mut expect = Vec::new();
        for i in 0..20u8 {
            let line = vec![b'a' + i; usize::from(i) * 37 + 1];
            bytes.extend(client_sends(&mut client, &line));
            expect.extend(line);
        }
        let mut runner = proptest::test_runner::TestRunner::default();
        let chunks = proptest::collection::vec(1..200usize, 1..100);
        runner
            .run(&chunks, |sizes| {
                let mut carried = CarriedTls::decode(&base).unwrap();
                let mut data = Vec::new();
                let mut rest = &bytes[..];
                for size in sizes.iter().cycle() {
                    if rest.is_empty() {
                        break;
                    }
                    let (now, later) = rest.split_at((*size).min(rest.len()));
                    data.extend(carried.open(now).unwrap().data);
                    rest = later;
                }
                prop_assert_eq!(&data, &expect);
                Ok(())
            })
            .unwrap();
    }

    #[test]
    fn extraction_must_be_enabled() {
        let (config, der) = server_config(Cert::Ecdsa);
        let mut config = (*config).clone();
        config.enable_secret_extraction = false;
        let mut client = client(der, TLS13, false);
        let mut server = ServerConnection::new(Arc::new(config)).unwrap();
        while client.is_handshaking() || server.is_handshaking() || server.wants_write() {
            let to_server = records(&mut client);
            deliver(&to_server, &mut server);
            let to_client = records(&mut server);
            deliver(&to_client, &mut client);
        }
        let err = CarriedTls::from_rustls(server, Vec::new()).unwrap_err();
        assert!(matches!(err, CarryError::Extract(_)), "{err}");
    }

    #[test]
    fn records_rustls_has_not_sent_stop_the_carry() {
        let (_client, mut server) = session(Cert::Ecdsa, TLS12);
        server.writer().write_all(b"unsent").unwrap();
        let err = CarriedTls::from_rustls(server, Vec::new()).unwrap_err();
        assert!(matches!(err, CarryError::Extract(_)), "{err}");
    }

    #[test]
    fn an_unfinished_handshake_is_not_carried() {
        let (config, der) = server_config(Cert::Ecdsa);
        let mut client = client(der, TLS13, false);
        let mut server = ServerConnection::new(config).unwrap();
        let hello = records(&mut client);
        deliver(&hello, &mut server);
        let err = CarriedTls::from_rustls(server, Vec::new()).unwrap_err();
        assert!(
            matches!(err, CarryError::Extract(_) | CarryError::Version(_)),
            "{err}"
        );
    }

    #[test]
    fn too_much_pending_ciphertext_is_refused() {
        let (_client, server) = session(Cert::Ecdsa, TLS13);
        let err = CarriedTls::from_rustls(server, vec![0; MAX_CARRIED + 1]).unwrap_err();
        assert!(matches!(err, CarryError::TooMuchPending { .. }), "{err}");
    }

    /// A carried session with made-up keys, for the codec and the limits.
    fn synthetic(version: Version, suite: Suite, seq: u64) -> CarriedTls {
        let key: Vec<u8> = (0..suite.key_len() as u8).collect();
        CarriedTls {
            version,
            suite,
            tx: Keys::new(suite, &key, [7; NONCE_LEN], seq).unwrap(),
            rx: Keys::new(suite, &key, [9; NONCE_LEN], seq + 1).unwrap(),
            incoming: Vec::new(),
            unread: Vec::new(),
            peer_closed: None,
            sent_close: false,
            failed: false,
        }
    }

    #[test]
    fn a_worn_out_key_stops_sealing_but_can_still_close() {
        let mut carried = synthetic(Version::Tls13, Suite::Aes256Gcm, 1 << 24);
        assert!(matches!(carried.seal(b"x"), Err(CarryError::LimitReached)));
        assert!(!carried.close_notify().is_empty());
        assert!(carried.close_notify().is_empty());
        let mut carried = synthetic(Version::Tls12, Suite::Chacha20Poly1305, 1 << 24);
        assert!(carried.seal(b"x").is_ok());
    }

    #[test]
    fn debug_shows_no_key() {
        let carried = synthetic(Version::Tls12, Suite::Aes128Gcm, 3);
        let shown = format!("{carried:?}");
        assert!(shown.contains("tx_seq: 3"), "{shown}");
        assert!(!shown.contains("raw") && !shown.contains("iv"), "{shown}");
        assert!(!shown.contains("[0, 1, 2"), "{shown}");
    }

    #[test]
    fn the_hand_over_form_round_trips() {
        for version in [Version::Tls12, Version::Tls13] {
            for suite in [Suite::Aes128Gcm, Suite::Aes256Gcm, Suite::Chacha20Poly1305] {
                for closed in [
                    None,
                    Some(PeerClosed::CloseNotify),
                    Some(PeerClosed::Alert(80)),
                ] {
                    let mut carried = synthetic(version, suite, 41);
                    carried.incoming = b"partial".to_vec();
                    carried.unread = b"unread".to_vec();
                    carried.peer_closed = closed;
                    carried.sent_close = closed.is_some();
                    let bytes = carried.encode();
                    let back = CarriedTls::decode(&bytes).unwrap();
                    assert_eq!(back.encode(), bytes);
                    assert_eq!(format!("{back:?}"), format!("{carried:?}"));
                }
            }
        }
    }

    #[test]
    fn cut_short_hand_over_bytes_are_refused() {
        let mut carried = synthetic(Version::Tls13, Suite::Chacha20Poly1305, 5);
        carried.unread = b"unread".to_vec();
        carried.incoming = b"partial".to_vec();
        let bytes = carried.encode();
        for len in 0..bytes.len() {
            let err = CarriedTls::decode(&bytes[..len]).unwrap_err();
            assert!(matches!(err, CarryError::Corrupt(_)), "{len}: {err}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(
            CarriedTls::decode(&longer),
            Err(CarryError::Corrupt(_))
        ));
    }

    #[test]
    fn corrupt_hand_over_bytes_are_refused() {
        let mut carried = synthetic(Version::Tls12, Suite::Aes128Gcm, 5);
        carried.unread = b"unread".to_vec();
        carried.incoming = b"partial".to_vec();
        let bytes = carried.encode();
        // magic, format, version, cipher, close flag, peer-closed kind,
        // and the unread length made huge.
        let unread_len_at = bytes.len() - 4 - 7 - 4 - 6;
        for (at, value) in [
            (0, b'X'),
            (4, 2),
            (5, 0x11),
            (6, 9),
            (7, 2),
            (8, 3),
            (unread_len_at, 0xff),
        ] {
            let mut bad = bytes.clone();
            bad[at] = value;
            let err = CarriedTls::decode(&bad).unwrap_err();
            assert!(matches!(err, CarryError::Corrupt(_)), "byte {at}: {err}");
        }
    }

    #[test]
    fn any_bytes_decode_without_panic() {
        use proptest::prelude::*;
        let good = synthetic(Version::Tls13, Suite::Aes128Gcm, 5).encode();
        let mut runner = proptest::test_runner::TestRunner::default();
        let edits = proptest::collection::vec((0..good.len(), any::<u8>()), 0..8);
        runner
            .run(
                &(edits, proptest::collection::vec(any::<u8>(), 0..200)),
                |(edits, junk)| {
                    let _ = CarriedTls::decode(&junk);
                    let mut bytes = good.clone();
                    for (at, value) in edits {
                        bytes[at] = value;
                    }
                    if let Ok(back) = CarriedTls::decode(&bytes) {
                        prop_assert_eq!(back.encode(), bytes);
                    }
                    Ok(())
                },
            )
            .unwrap();
    }

    #[test]
    fn split_whole_records_keeps_a_partial_record_back() {
        assert_eq!(split_whole_records(&[]), 0);
        assert_eq!(split_whole_records(&[23, 3, 3, 0]), 0);
        assert_eq!(split_whole_records(&[23, 3, 3, 0, 0]), 5);
        assert_eq!(split_whole_records(&[23, 3, 3, 0, 1]), 0);
        assert_eq!(
            split_whole_records(&[23, 3, 3, 0, 1, 9, 21, 3, 3, 0, 2, 1, 0]),
            13
        );
        assert_eq!(
            split_whole_records(&[23, 3, 3, 0, 1, 9, 21, 3, 3, 0, 2, 1]),
            6
        );
        // Too long for any TLS record: passed on for rustls to refuse.
        assert_eq!(
            split_whole_records(&[23, 3, 3, 0, 1, 9, 23, 3, 3, 0xff, 0xff, 1]),
            12
        );
    }
}
