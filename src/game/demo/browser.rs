//! Browser ids (`csessid`) as the demo game uses them.
//!
//! The portal gives every web client session the id of its browser: a
//! random token from an HttpOnly cookie, shared by all tabs of that
//! browser. Whoever holds it is that browser, so the game treats it as a
//! secret: it is never shown to players, never logged, and never stored.
//! What the database keeps, and what the logs name, is its SHA-256
//! ([`BrowserKey`]).

use crate::wire::session::Session;
use std::fmt::Write as _;

/// The longest `csessid` taken as a browser id; a longer one is ignored.
pub const MAX_CSESSID: usize = 128;

/// The session's browser id, if it has a usable one: present, not empty,
/// at most [`MAX_CSESSID`] bytes, and free of whitespace and control
/// characters (no cookie value has them). Anything else is no browser.
pub fn csessid(session: &Session) -> Option<&str> {
    let id = session.csessid.as_deref()?;
    let usable = !id.is_empty()
        && id.len() <= MAX_CSESSID
        && !id.chars().any(|c| c.is_whitespace() || c.is_control());
    usable.then_some(id)
}

/// A browser as the account store knows it: the hex SHA-256 of its
/// `csessid`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct BrowserKey {
    hash: String,
}

impl BrowserKey {
    /// The key of a session's browser, if it has a usable [`csessid`].
    pub fn of(session: &Session) -> Option<BrowserKey> {
        csessid(session).map(BrowserKey::from_csessid)
    }

    /// The key of a `csessid` (which the caller has checked).
    pub fn from_csessid(csessid: &str) -> BrowserKey {
        let digest = ring::digest::digest(&ring::digest::SHA256, csessid.as_bytes());
        let mut hash = String::with_capacity(64);
        for byte in digest.as_ref() {
            // Writing to a String cannot fail.
            let _ = write!(hash, "{byte:02x}");
        }
        BrowserKey { hash }
    }

    /// The full hash, as stored.
    pub fn hash(&self) -> &str {
        &self.hash
    }

    /// A short name for logs: the first 8 hex digits of the hash.
    pub fn tag(&self) -> &str {
        &self.hash[..8]
    }
}

/// Only the tag, so a key in a debug print gives nothing away either.
impl std::fmt::Debug for BrowserKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BrowserKey({}…)", self.tag())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(csessid: Option<&str>) -> Session {
        let mut s = Session::init_session(1, "webclient/websocket", "127.0.0.1:1");
        s.csessid = csessid.map(str::to_owned);
        s
    }

    #[test]
    fn absent_empty_absurd_or_odd_ids_are_no_browser() {
        assert_eq!(csessid(&with(None)), None);
        assert_eq!(csessid(&with(Some(""))), None);
        assert_eq!(csessid(&with(Some(&"x".repeat(MAX_CSESSID + 1)))), None);
        assert_eq!(csessid(&with(Some("two words"))), None);
        assert_eq!(csessid(&with(Some("nul\0"))), None);
        let longest = "x".repeat(MAX_CSESSID);
        assert_eq!(csessid(&with(Some(&longest))), Some(longest.as_str()));
        assert!(BrowserKey::of(&with(Some(""))).is_none());
    }

    #[test]
    fn the_key_is_the_sha256_of_the_id_and_never_the_id() {
        let key = BrowserKey::of(&with(Some("abc"))).unwrap();
        assert_eq!(
            key.hash(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(key.tag(), "ba7816bf");
        assert_eq!(format!("{key:?}"), "BrowserKey(ba7816bf…)");
        assert_ne!(key, BrowserKey::from_csessid("abd"));
    }
}
