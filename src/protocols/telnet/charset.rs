//! CHARSET, RFC 2066 (option 42): agree on the text encoding, and the
//! encodings the portal can speak.
//!
//! We send IAC WILL CHARSET; on DO we send
//! `IAC SB CHARSET REQUEST ";UTF-8;ISO-8859-1;US-ASCII" IAC SE` and the
//! client answers `ACCEPTED <name>` or `REJECTED`. A client may also send
//! its own REQUEST, which we answer the same way. The agreed name is kept in
//! the `ENCODING` flag under Evennia's codec name (`utf-8`, `latin-1`,
//! `ascii`).
//!
//! ```
//! use portal::protocols::telnet::charset::{parse, Message};
//! assert_eq!(parse(b"\x02UTF-8"), Message::Accepted("UTF-8".into()));
//! assert_eq!(parse(b"\x01;KOI8-R;UTF-8"), Message::Request(vec!["KOI8-R".into(), "UTF-8".into()]));
//! ```

/// Telnet option number.
pub const CHARSET: u8 = 42;
pub const REQUEST: u8 = 1;
pub const ACCEPTED: u8 = 2;
pub const REJECTED: u8 = 3;

/// What we offer, best first.
pub const OFFER: [&str; 3] = ["UTF-8", "ISO-8859-1", "US-ASCII"];

/// A CHARSET subnegotiation from the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Request(Vec<String>),
    Accepted(String),
    Rejected,
    /// TTABLE messages and anything malformed.
    Other,
}

/// Read a CHARSET body.
pub fn parse(body: &[u8]) -> Message {
    let Some((&kind, rest)) = body.split_first() else {
        return Message::Other;
    };
    match kind {
        REQUEST => {
            // An optional "[TTABLE ]" plus version byte comes first.
            let rest = match rest.strip_prefix(b"[TTABLE]") {
                Some(after) => after.get(1..).unwrap_or_default(),
                None => rest,
            };
            let Some((&sep, names)) = rest.split_first() else {
                return Message::Request(Vec::new());
            };
            let names = names
                .split(|&b| b == sep)
                .filter(|n| !n.is_empty())
                .map(|n| String::from_utf8_lossy(n).trim().to_owned())
                .collect();
            Message::Request(names)
        }
        ACCEPTED => Message::Accepted(String::from_utf8_lossy(rest).trim().to_owned()),
        REJECTED => Message::Rejected,
        _ => Message::Other,
    }
}

/// The body of our REQUEST.
pub fn request() -> Vec<u8> {
    let mut body = vec![REQUEST];
    for name in OFFER {
        body.push(b';');
        body.extend_from_slice(name.as_bytes());
    }
    body
}

/// Our answer to a client's REQUEST: ACCEPTED with the first name we can
/// speak, else REJECTED.
pub fn answer(names: &[String]) -> (Vec<u8>, Option<&'static str>) {
    match names.iter().find(|n| codec_name(n).is_some()) {
        Some(name) => {
            let mut body = vec![ACCEPTED];
            body.extend_from_slice(name.as_bytes());
            (body, codec_name(name))
        }
        None => (vec![REJECTED], None),
    }
}

/// A charset name (IANA or codec style) → the codec name we use, if we
/// speak it.
pub fn codec_name(name: &str) -> Option<&'static str> {
    let key: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    match key.as_str() {
        "utf8" => Some("utf-8"),
        "latin1" | "iso88591" | "l1" | "iso885911987" => Some("latin-1"),
        "ascii" | "usascii" | "ansix341968" | "us" => Some("ascii"),
        _ => None,
    }
}

/// Text → bytes in `codec`; characters it cannot hold become `?`.
pub fn encode(text: &str, codec: &str) -> Vec<u8> {
    match codec_name(codec) {
        Some("latin-1") => text
            .chars()
            .map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?'))
            .collect(),
        Some("ascii") => text
            .chars()
            .map(|c| if c.is_ascii() { c as u8 } else { b'?' })
            .collect(),
        _ => text.as_bytes().to_vec(),
    }
}

/// Bytes in `codec` → text; `None` if they are not valid in it.
pub fn decode(bytes: &[u8], codec: &str) -> Option<String> {
    match codec_name(codec) {
        Some("latin-1") => Some(bytes.iter().map(|&b| char::from(b)).collect()),
        Some("ascii") if bytes.is_ascii() => Some(bytes.iter().map(|&b| char::from(b)).collect()),
        Some("ascii") => None,
        _ => std::str::from_utf8(bytes).ok().map(str::to_owned),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_request_lists_the_offer() {
        assert_eq!(request(), b"\x01;UTF-8;ISO-8859-1;US-ASCII");
    }

    #[test]
    fn a_client_request_gets_the_first_name_we_speak() {
        let (body, codec) = answer(&["KOI8-R".into(), "iso-8859-1".into()]);
        assert_eq!(body, b"\x02iso-8859-1");
        assert_eq!(codec, Some("latin-1"));
        assert_eq!(answer(&["KOI8-R".into()]), (vec![REJECTED], None));
    }

    #[test]
    fn ttable_prefix_is_skipped() {
        assert_eq!(
            parse(b"\x01[TTABLE]\x01;UTF-8"),
            Message::Request(vec!["UTF-8".into()])
        );
    }

    #[test]
    fn latin1_and_ascii_round_trip() {
        assert_eq!(encode("café", "latin-1"), b"caf\xe9");
        assert_eq!(decode(b"caf\xe9", "latin-1").as_deref(), Some("café"));
        assert_eq!(encode("café", "ascii"), b"caf?");
        assert_eq!(decode(b"caf\xe9", "ascii"), None);
        assert_eq!(decode(b"caf\xe9", "utf-8"), None);
    }
}
