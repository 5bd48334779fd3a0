//! A Django session record's `session_data`, as the Django under Evennia
//! 5.0.1 (Django 5.2) stores it, and the few keys of it Evennia's web
//! client login uses. Pure: text in, a JSON object out, and back; the
//! database is read and written by [`super::shared_login`].
//!
//! Django's database session store keeps each browser's session as
//! `signing.dumps(data, salt="django.contrib.sessions.SessionStore",
//! serializer=JSONSerializer, compress=True)` (`django/core/signing.py`,
//! `django/contrib/sessions/backends/base.py`):
//!
//! ```text
//!  [.]BASE64URL(json or zlib(json)) ":" BASE62(unix time) ":" BASE64URL(HMAC-SHA256)
//!  └ "." = compressed ┘                                        │
//!  HMAC key = SHA-256("django.contrib.sessions.SessionStoresigner" + SECRET_KEY),
//!  over everything before the last ":"  ──────────────────────┘
//! ```
//!
//! The JSON is Python's `json.dumps(data, separators=(",", ":"))`, ASCII
//! only, read back as Latin-1. A record whose signature does not match the
//! game's SECRET_KEY, or that is not that shape, is an error here (Django
//! reads it as an empty session); input is capped by [`Limits`].
//!
//! ```
//! use portal::amp::evennia::django_session::{decode, webclient_uid, Limits};
//! let data = "eyJ3ZWJjbGllbnRfYXV0aGVudGljYXRlZF91aWQiOjd9:1vRDpQ:\
//!             3dp-1imfkf0fglkQsZjdTa6C9O66e9PqYxysw1s4710";
//! let session = decode(data, "golden-secret-key-for-tests-only", &Limits::default()).unwrap();
//! assert_eq!(webclient_uid(&session), Some(7));
//! ```

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{Map, Value};
use std::io::Read;

/// The salt of Django's database session store (`key_salt`).
pub const SESSION_SALT: &str = "django.contrib.sessions.SessionStore";

/// The key Evennia's website login (SharedLoginMiddleware) and its portal
/// keep the logged-in account's id under.
pub const WEBCLIENT_UID: &str = "webclient_authenticated_uid";
/// A counter the website bumps on each request while [`WEBCLIENT_UID`] is
/// set; Evennia's websocket only clears the uid if it has not moved.
pub const WEBCLIENT_NONCE: &str = "webclient_authenticated_nonce";

/// How much of a record is read.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Longest `session_data` text, in bytes.
    pub max_record_bytes: usize,
    /// Largest JSON after inflating, in bytes.
    pub max_json_bytes: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_record_bytes: 64 * 1024,
            max_json_bytes: 256 * 1024,
        }
    }
}

/// Why a record could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionDataError {
    /// Longer than [`Limits::max_record_bytes`].
    TooLong,
    /// Not `payload:timestamp:signature`.
    NotSigned,
    /// The signature is not the game's SECRET_KEY's.
    BadSignature,
    /// The timestamp is not base 62.
    BadTimestamp,
    /// The payload is not unpadded URL-safe base64.
    BadBase64,
    /// A compressed payload is not a zlib stream.
    BadZlib,
    /// Inflates past [`Limits::max_json_bytes`].
    TooLarge,
    /// Not JSON, or JSON that is not an object.
    NotAnObject,
}

impl std::fmt::Display for SessionDataError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SessionDataError::TooLong => "the record is too long",
            SessionDataError::NotSigned => "the record is not signed data",
            SessionDataError::BadSignature => "the signature does not match the SECRET_KEY",
            SessionDataError::BadTimestamp => "the timestamp is not base 62",
            SessionDataError::BadBase64 => "the payload is not base64",
            SessionDataError::BadZlib => "the payload is not a zlib stream",
            SessionDataError::TooLarge => "the payload inflates too large",
            SessionDataError::NotAnObject => "the payload is not a JSON object",
        })
    }
}

impl std::error::Error for SessionDataError {}

/// The session dict stored in `session_data`, checked against `secret`
/// (the game's SECRET_KEY).
pub fn decode(
    session_data: &str,
    secret: &str,
    limits: &Limits,
) -> Result<Map<String, Value>, SessionDataError> {
    if session_data.len() > limits.max_record_bytes {
        return Err(SessionDataError::TooLong);
    }
    let (signed, signature) = session_data
        .rsplit_once(':')
        .ok_or(SessionDataError::NotSigned)?;
    let tag = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| SessionDataError::BadSignature)?;
    ring::hmac::verify(&signing_key(secret), signed.as_bytes(), &tag)
        .map_err(|_| SessionDataError::BadSignature)?;
    let (payload, timestamp) = signed.rsplit_once(':').ok_or(SessionDataError::NotSigned)?;
    b62_decode(timestamp).ok_or(SessionDataError::BadTimestamp)?;
    let (compressed, payload) = match payload.strip_prefix('.') {
        Some(rest) => (true, rest),
        None => (false, payload),
    };
    let raw = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| SessionDataError::BadBase64)?;
    let json = if compressed {
        inflate(&raw, limits.max_json_bytes)?
    } else if raw.len() > limits.max_json_bytes {
        return Err(SessionDataError::TooLarge);
    } else {
        raw
    };
    // JSONSerializer reads the bytes as Latin-1.
    let text: String = json.iter().map(|&b| char::from(b)).collect();
    match serde_json::from_str(&text) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(SessionDataError::NotAnObject),
    }
}

/// `session` as Django would store it, signed with `secret` at
/// `timestamp` (Unix seconds): compressed when that is shorter, as
/// Django's `compress=True` does.
pub fn encode(session: &Map<String, Value>, secret: &str, timestamp: u64) -> String {
    let json = ascii_json(session);
    let compressed = deflate(json.as_bytes());
    let payload = match compressed {
        Some(z) if z.len() < json.len().saturating_sub(1) => {
            format!(".{}", URL_SAFE_NO_PAD.encode(z))
        }
        _ => URL_SAFE_NO_PAD.encode(json.as_bytes()),
    };
    sign(&format!("{payload}:{}", b62_encode(timestamp)), secret)
}

/// `value:signature`, as Django's session signer signs `value` with
/// `secret` (what [`decode`] checks before it reads anything).
pub fn sign(value: &str, secret: &str) -> String {
    let tag = ring::hmac::sign(&signing_key(secret), value.as_bytes());
    format!("{value}:{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
}

/// The account id the website or the web client logged this browser in
/// as: [`WEBCLIENT_UID`] when it is a positive integer (Evennia tests it
/// for truth; a string id is not one Evennia writes).
pub fn webclient_uid(session: &Map<String, Value>) -> Option<i64> {
    session
        .get(WEBCLIENT_UID)
        .and_then(Value::as_i64)
        .filter(|&uid| uid > 0)
}

/// [`WEBCLIENT_NONCE`], 0 when absent (as Evennia's `get(…, 0)`).
pub fn webclient_nonce(session: &Map<String, Value>) -> i64 {
    session
        .get(WEBCLIENT_NONCE)
        .and_then(Value::as_i64)
        .unwrap_or(0)
}

/// Whether `key` can be a Django session key: Django makes them of 32
/// lower-case letters and digits, and refuses keys under 8 characters.
pub fn is_session_key(key: &str) -> bool {
    (8..=64).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// The SECRET_KEY a settings file sets with a plain string literal (as
/// Evennia's `secret_settings.py` does: `SECRET_KEY = '…'`); the last
/// such line wins, as Python's last assignment does. A value with
/// backslash escapes, or computed, is not read.
pub fn secret_key_in(settings_py: &str) -> Option<String> {
    settings_py.lines().rev().find_map(secret_key_line)
}

fn secret_key_line(line: &str) -> Option<String> {
    let rest = line.strip_prefix("SECRET_KEY")?.trim_start();
    let rest = rest.strip_prefix('=')?.trim_start();
    let quote = rest.chars().next().filter(|c| *c == '\'' || *c == '"')?;
    let body = &rest[1..];
    let end = body.find(quote)?;
    let value = &body[..end];
    let after = body[end + 1..].trim_start();
    let rest_ok = after.is_empty() || after.starts_with('#');
    (rest_ok && !value.contains('\\') && !value.is_empty()).then(|| value.to_owned())
}

/// Django's `salted_hmac` key for the session store's signer.
fn signing_key(secret: &str) -> ring::hmac::Key {
    let salt = format!("{SESSION_SALT}signer");
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(salt.as_bytes());
    ctx.update(secret.as_bytes());
    ring::hmac::Key::new(ring::hmac::HMAC_SHA256, ctx.finish().as_ref())
}

fn inflate(raw: &[u8], max: usize) -> Result<Vec<u8>, SessionDataError> {
    let mut out = Vec::new();
    let mut reader = flate2::read::ZlibDecoder::new(raw).take(max as u64 + 1);
    reader
        .read_to_end(&mut out)
        .map_err(|_| SessionDataError::BadZlib)?;
    if out.len() > max {
        return Err(SessionDataError::TooLarge);
    }
    Ok(out)
}

fn deflate(data: &[u8]) -> Option<Vec<u8>> {
    use std::io::Write;
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(data).ok()?;
    z.finish().ok()
}

/// Compact JSON with every non-ASCII character as `\uXXXX` (UTF-16), as
/// Python's `json.dumps` writes it; Django reads it back as Latin-1, so
/// raw UTF-8 would come back garbled.
fn ascii_json(session: &Map<String, Value>) -> String {
    let text = Value::Object(session.clone()).to_string();
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii() {
            out.push(c);
            continue;
        }
        let mut units = [0u16; 2];
        for unit in c.encode_utf16(&mut units) {
            out.push_str(&format!("\\u{unit:04x}"));
        }
    }
    out
}

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

fn b62_encode(mut n: u64) -> String {
    if n == 0 {
        return "0".to_owned();
    }
    let mut digits = Vec::new();
    while n > 0 {
        digits.push(BASE62[(n % 62) as usize]);
        n /= 62;
    }
    digits.iter().rev().map(|&b| char::from(b)).collect()
}

/// Django's `b62_decode`, for the non-negative times it writes; `None`
/// for a digit outside the alphabet or a value past `u64`.
fn b62_decode(text: &str) -> Option<u64> {
    if text.is_empty() {
        return None;
    }
    text.bytes().try_fold(0u64, |n, b| {
        let digit = BASE62.iter().position(|&d| d == b)? as u64;
        n.checked_mul(62)?.checked_add(digit)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "golden-secret-key-for-tests-only";

    fn golden(name: &str) -> String {
        let path = format!(
            "{}/tests/data/django_session/{name}.txt",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{path}: {e}"))
            .trim_end()
            .to_owned()
    }

    fn read(name: &str) -> Map<String, Value> {
        decode(&golden(name), SECRET, &Limits::default()).unwrap()
    }

    #[test]
    fn reads_a_compressed_website_login_made_by_django() {
        let data = golden("logged_in");
        assert!(data.starts_with('.'), "the golden record is compressed");
        let session = read("logged_in");
        assert_eq!(webclient_uid(&session), Some(2));
        assert_eq!(webclient_nonce(&session), 3);
        assert_eq!(session["_auth_user_id"], Value::from("2"));
        assert_eq!(session.len(), 6);
    }

    #[test]
    fn reads_uncompressed_empty_and_cleared_records() {
        assert_eq!(webclient_uid(&read("small")), Some(7));
        let anonymous = read("anonymous");
        assert!(anonymous.is_empty());
        assert_eq!(webclient_uid(&anonymous), None);
        let cleared = read("logged_out");
        assert_eq!(webclient_uid(&cleared), None, "null uid: not logged in");
        assert_eq!(webclient_nonce(&cleared), 0);
    }

    #[test]
    fn reads_python_unicode_escapes() {
        let session = read("unicode");
        assert_eq!(session["name"], Value::from("h\u{e9}llo \u{4e16}\u{1F600}"));
    }

    #[test]
    fn encodes_the_same_bytes_as_django_for_an_uncompressed_record() {
        // Python keeps insertion order and serde_json sorts keys, so the
        // byte-for-byte comparison is of records with sorted keys.
        for name in ["sorted", "small"] {
            let session = read(name);
            assert_eq!(
                encode(&session, SECRET, 1_764_872_000),
                golden(name),
                "{name}"
            );
        }
    }

    #[test]
    fn non_ascii_is_written_as_python_writes_it() {
        let session = read("unicode");
        let json = ascii_json(&session);
        assert_eq!(
            json,
            r#"{"name":"h\u00e9llo \u4e16\ud83d\ude00","webclient_authenticated_uid":5}"#
        );
        let text = encode(&session, SECRET, 1_764_872_000);
        assert_eq!(decode(&text, SECRET, &Limits::default()).unwrap(), session);
    }

    #[test]
    fn a_compressed_encoding_reads_back() {
        let mut session = read("logged_in");
        session.insert(WEBCLIENT_UID.into(), Value::Null);
        let text = encode(&session, SECRET, 1_764_872_000);
        assert!(text.starts_with('.'), "long enough to be compressed");
        assert_eq!(decode(&text, SECRET, &Limits::default()).unwrap(), session);
    }

    #[test]
    fn another_secret_key_is_a_bad_signature() {
        let got = decode(&golden("logged_in"), "not-the-key", &Limits::default());
        assert_eq!(got, Err(SessionDataError::BadSignature));
    }

    #[test]
    fn a_changed_payload_is_a_bad_signature() {
        // Changing uid 7 to 8 in the payload without the key.
        let data = golden("small");
        let forged = URL_SAFE_NO_PAD.encode(br#"{"webclient_authenticated_uid":8}"#);
        let (_, rest) = data.split_once(':').unwrap();
        let got = decode(&format!("{forged}:{rest}"), SECRET, &Limits::default());
        assert_eq!(got, Err(SessionDataError::BadSignature));
    }

    #[test]
    fn signed_but_not_a_session_is_an_error_not_a_panic() {
        let limits = Limits::default();
        let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
        let cases = [
            (sign_raw("!!"), SessionDataError::BadBase64),
            (
                sign_raw(&format!(".{}", b64(b"not zlib"))),
                SessionDataError::BadZlib,
            ),
            (sign_raw(&b64(b"[1,2]")), SessionDataError::NotAnObject),
            (sign_raw(&b64(b"{\"a\":")), SessionDataError::NotAnObject),
            (sign_raw(&b64(&[0xff, 0xfe])), SessionDataError::NotAnObject),
        ];
        for (data, want) in cases {
            assert_eq!(decode(&data, SECRET, &limits), Err(want), "{data}");
        }
        let bad_time = sign(&format!("{}:1v!DpQ", b64(b"{}")), SECRET);
        assert_eq!(
            decode(&bad_time, SECRET, &limits),
            Err(SessionDataError::BadTimestamp)
        );
        for junk in ["", ":", "::", "abc", "a:b:c", "a:b:!!!"] {
            assert!(decode(junk, SECRET, &limits).is_err(), "{junk:?}");
        }
    }

    #[test]
    fn a_zlib_bomb_stops_at_the_limit() {
        let big = format!("{{\"a\":\"{}\"}}", "x".repeat(1 << 20));
        let z = deflate(big.as_bytes()).unwrap();
        let data = sign_raw(&format!(".{}", URL_SAFE_NO_PAD.encode(z)));
        assert!(data.len() < 8 * 1024, "small on the wire");
        assert_eq!(
            decode(&data, SECRET, &Limits::default()),
            Err(SessionDataError::TooLarge)
        );
        let long = "a".repeat(Limits::default().max_record_bytes + 1);
        assert_eq!(
            decode(&long, SECRET, &Limits::default()),
            Err(SessionDataError::TooLong)
        );
    }

    #[test]
    fn deeply_nested_json_is_refused_not_a_stack_overflow() {
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(10_000), "]".repeat(10_000));
        let data = encode_raw(deep.as_bytes());
        assert_eq!(
            decode(&data, SECRET, &Limits::default()),
            Err(SessionDataError::NotAnObject)
        );
    }

    fn encode_raw(json: &[u8]) -> String {
        sign_raw(&URL_SAFE_NO_PAD.encode(json))
    }

    #[test]
    fn only_positive_integer_uids_log_in() {
        let with = |v: Value| {
            let mut m = Map::new();
            m.insert(WEBCLIENT_UID.into(), v);
            webclient_uid(&m)
        };
        assert_eq!(with(Value::from(3)), Some(3));
        assert_eq!(with(Value::from(0)), None);
        assert_eq!(with(Value::from(-1)), None);
        assert_eq!(with(Value::from("3")), None);
        assert_eq!(with(Value::Bool(true)), None);
        assert_eq!(with(Value::Null), None);
    }

    #[test]
    fn session_keys_are_django_shaped() {
        assert!(is_session_key("abcdefghijklmnopqrstuvwxyz012345"));
        assert!(!is_session_key("short"));
        assert!(!is_session_key("with space in the middle of it!"));
        assert!(!is_session_key("'; DROP TABLE django_session; --"));
        assert!(!is_session_key(&"a".repeat(65)));
    }

    #[test]
    fn reads_the_secret_key_evennia_writes() {
        let settings = "\"\"\"doc\"\"\"\n\n# The secret key ...\nSECRET_KEY = 'ab\"c$%^&*()_-x'\n";
        assert_eq!(secret_key_in(settings).as_deref(), Some("ab\"c$%^&*()_-x"));
        let twice = "SECRET_KEY = \"one\"\nSECRET_KEY = 'two'  # later\n";
        assert_eq!(secret_key_in(twice).as_deref(), Some("two"));
        for not in [
            "SECRET_KEY = os.environ['K']\n",
            "# SECRET_KEY = 'x'\n",
            "SECRET_KEY = 'a\\'b'\n",
            "SECRET_KEY = ''\n",
            "SECRET_KEY_FALLBACKS = ['x']\n",
            "SECRET_KEY = 'x' + y\n",
        ] {
            assert_eq!(secret_key_in(not), None, "{not:?}");
        }
    }

    fn sign_raw(payload: &str) -> String {
        sign(&format!("{payload}:1vRDpQ"), SECRET)
    }

    fn json_value() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            ".*".prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                proptest::collection::btree_map(".*", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        #[test]
        fn any_text_is_an_answer_not_a_panic(text in ".{0,300}") {
            let _ = decode(&text, SECRET, &Limits::default());
        }

        #[test]
        fn any_signed_payload_is_an_answer_not_a_panic(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
            compressed in proptest::prelude::any::<bool>(),
        ) {
            let payload = if compressed {
                format!(".{}", URL_SAFE_NO_PAD.encode(&bytes))
            } else {
                URL_SAFE_NO_PAD.encode(&bytes)
            };
            let _ = decode(&sign_raw(&payload), SECRET, &Limits::default());
        }

        #[test]
        fn what_is_encoded_decodes_to_the_same_session(
            session in proptest::collection::btree_map(".{0,12}", json_value(), 0..8),
            timestamp in proptest::prelude::any::<u64>(),
        ) {
            let session: Map<String, Value> = session.into_iter().collect();
            let text = encode(&session, SECRET, timestamp);
            proptest::prop_assert!(text.is_ascii());
            proptest::prop_assert_eq!(decode(&text, SECRET, &Limits::default()), Ok(session));
        }
    }

    #[test]
    fn base62_round_trips_and_matches_django() {
        assert_eq!(b62_encode(1_764_872_000), "1vRDpQ");
        assert_eq!(b62_encode(0), "0");
        for n in [0u64, 1, 61, 62, 3843, 1_764_872_000, u64::MAX] {
            assert_eq!(b62_decode(&b62_encode(n)), Some(n));
        }
        assert_eq!(b62_decode(""), None);
        assert_eq!(b62_decode("-1"), None);
        assert_eq!(b62_decode(&"z".repeat(20)), None, "past u64");
    }
}
