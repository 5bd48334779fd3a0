//! The AMP frame codec: pure bytes in, messages out.
//!
//! A frame is a 4-byte big-endian body length followed by the body, one
//! postcard-encoded message ([`crate::wire::message`]). No I/O happens here: the
//! reader thread feeds bytes in, the writer thread takes bytes out.
//!
//! ```
//! use portal::amp::codec::{decode, encode, Decoded};
//! use portal::wire::message::ServerMsg;
//!
//! let mut bytes = Vec::new();
//! encode(&ServerMsg::SyncRequest, &mut bytes).unwrap();
//! assert_eq!(bytes, [0, 0, 0, 1, 1]); // length 1, variant 1
//! match decode::<ServerMsg>(&bytes, 1024) {
//!     Decoded::Frame { message, used } => {
//!         assert_eq!(message, ServerMsg::SyncRequest);
//!         assert_eq!(used, 5);
//!     }
//!     other => panic!("{other:?}"),
//! }
//! ```

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Bytes in the length prefix.
pub const HEADER_LEN: usize = 4;

/// What [`decode`] found at the start of a buffer.
#[derive(Debug, PartialEq)]
pub enum Decoded<T> {
    /// Not a whole frame yet; nothing was used.
    NeedMore,
    /// One message, and how many bytes of the buffer it used.
    Frame { message: T, used: usize },
    /// The header announces a body over the limit. The link must close: the
    /// stream cannot be trusted after this.
    TooLarge { len: usize },
    /// A whole frame whose body is not a valid message.
    Invalid { used: usize, reason: String },
}

/// Why a message could not be encoded.
#[derive(Debug)]
pub struct EncodeError(pub String);

impl std::fmt::Display for EncodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot encode AMP message: {}", self.0)
    }
}

impl std::error::Error for EncodeError {}

/// Append one frame holding `message` to `out`.
pub fn encode<T: Serialize>(message: &T, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER_LEN]);
    let body = postcard::to_extend(message, std::mem::take(out))
        .map_err(|e| EncodeError(e.to_string()))?;
    *out = body;
    let len = out.len() - start - HEADER_LEN;
    let len32 = u32::try_from(len).map_err(|_| EncodeError(format!("body of {len} bytes")))?;
    out[start..start + HEADER_LEN].copy_from_slice(&len32.to_be_bytes());
    Ok(())
}

/// Decode the first frame in `buf`, refusing bodies over `max_body` bytes.
pub fn decode<T: DeserializeOwned>(buf: &[u8], max_body: usize) -> Decoded<T> {
    let Some(len) = body_len(buf) else {
        return Decoded::NeedMore;
    };
    if len > max_body {
        return Decoded::TooLarge { len };
    }
    let Some(body) = buf.get(HEADER_LEN..HEADER_LEN + len) else {
        return Decoded::NeedMore;
    };
    let used = HEADER_LEN + len;
    match postcard::from_bytes::<T>(body) {
        Ok(message) => Decoded::Frame { message, used },
        Err(e) => Decoded::Invalid {
            used,
            reason: e.to_string(),
        },
    }
}

/// The body length announced by the header, once four bytes are there.
fn body_len(buf: &[u8]) -> Option<usize> {
    let header: [u8; HEADER_LEN] = buf.get(..HEADER_LEN)?.try_into().ok()?;
    Some(u32::from_be_bytes(header) as usize)
}

/// Read the protocol version out of a `Hello` body without decoding the
/// rest, so a peer of any version can be told clearly what went wrong.
/// Returns `None` when the body does not start with the hello variant.
pub fn hello_version(body: &[u8]) -> Option<u32> {
    let (variant, rest) = read_varint(body)?;
    if variant != 0 {
        return None;
    }
    let (version, _) = read_varint(rest)?;
    u32::try_from(version).ok()
}

/// The body of the first frame in `buf`, when it is complete.
pub fn frame_body(buf: &[u8], max_body: usize) -> Option<&[u8]> {
    let len = body_len(buf)?;
    if len > max_body {
        return None;
    }
    buf.get(HEADER_LEN..HEADER_LEN + len)
}

/// Decode one LEB128 unsigned varint as postcard writes it.
fn read_varint(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let mut value: u64 = 0;
    for (i, byte) in bytes.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((value, &bytes[i + 1..]));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::flags::ProtocolFlags;
    use crate::wire::message::{Command, PortalMsg, ServerMsg, StartMode, PROTOCOL_VERSION};
    use crate::wire::session::Session;
    use crate::wire::value::{Map, Value};
    use proptest::prelude::*;

    fn sample_session() -> Session {
        let mut s = Session::init_session(42, "telnet", "127.0.0.1:5555");
        s.uname = Some("anna".into());
        s.server_data.insert("hp".into(), Value::Int(10));
        s
    }

    fn round_trip<T>(msg: &T) -> T
    where
        T: Serialize + DeserializeOwned + std::fmt::Debug,
    {
        let mut bytes = Vec::new();
        encode(msg, &mut bytes).unwrap();
        match decode::<T>(&bytes, 1 << 20) {
            Decoded::Frame { message, used } => {
                assert_eq!(used, bytes.len());
                message
            }
            other => panic!("expected a frame, got {other:?}"),
        }
    }

    #[test]
    fn every_portal_message_round_trips() {
        let mut kwargs = Map::new();
        kwargs.insert(
            "nested".into(),
            Value::List(vec![Value::Null, Value::Float(1.5)]),
        );
        let msgs = vec![
            PortalMsg::Welcome {
                version: 1,
                portal: "p".into(),
            },
            PortalMsg::Refused {
                reason: "no".into(),
            },
            PortalMsg::Connect {
                session: sample_session(),
            },
            PortalMsg::ConnSync {
                session: sample_session(),
            },
            PortalMsg::Disconnect { sessid: 9 },
            PortalMsg::DisconnectAll,
            PortalMsg::Sync {
                mode: StartMode::Reload,
                sessions: vec![sample_session()],
            },
            PortalMsg::DataIn {
                sessid: 3,
                commands: vec![Command {
                    name: "text".into(),
                    args: vec!["hi".into()],
                    kwargs,
                }],
            },
            PortalMsg::Error {
                request: "ServerConnect".into(),
                message: "x".into(),
            },
        ];
        for msg in msgs {
            assert_eq!(round_trip(&msg), msg);
        }
    }

    #[test]
    fn every_server_message_round_trips() {
        let msgs = vec![
            ServerMsg::Hello {
                version: 1,
                secret: "s".into(),
                name: "demo".into(),
            },
            ServerMsg::SyncRequest,
            ServerMsg::Login {
                session: sample_session(),
            },
            ServerMsg::Disconnect {
                sessid: 1,
                reason: "bye".into(),
            },
            ServerMsg::DisconnectAll {
                reason: "bye".into(),
            },
            ServerMsg::SessionSync {
                sessions: vec![sample_session()],
                clean: true,
            },
            ServerMsg::ServerConnect {
                protocol_key: "irc".into(),
                config: Map::new(),
            },
            ServerMsg::Reload,
            ServerMsg::Shutdown,
            ServerMsg::DataOut {
                sessid: 5,
                commands: vec![Command::text("hello")],
            },
        ];
        for msg in msgs {
            assert_eq!(round_trip(&msg), msg);
        }
    }

    #[test]
    fn truncated_frame_needs_more_at_every_cut() {
        let mut bytes = Vec::new();
        encode(
            &PortalMsg::Connect {
                session: sample_session(),
            },
            &mut bytes,
        )
        .unwrap();
        for cut in 0..bytes.len() {
            assert_eq!(
                decode::<PortalMsg>(&bytes[..cut], 1 << 20),
                Decoded::NeedMore
            );
        }
    }

    #[test]
    fn oversized_header_is_refused_before_the_body_arrives() {
        let bytes = [0x00, 0x10, 0x00, 0x01];
        assert_eq!(
            decode::<PortalMsg>(&bytes, 1024),
            Decoded::TooLarge { len: 0x100001 }
        );
    }

    #[test]
    fn http_on_the_amp_port_reads_as_an_oversized_frame() {
        let bytes = b"GET / HTTP/1.1\r\n\r\n";
        assert!(matches!(
            decode::<ServerMsg>(bytes, 1 << 20),
            Decoded::TooLarge { .. }
        ));
    }

    #[test]
    fn garbage_body_is_invalid_and_reports_its_length() {
        let bytes = [0, 0, 0, 2, 0xee, 0xee];
        assert!(matches!(
            decode::<ServerMsg>(&bytes, 1024),
            Decoded::Invalid { used: 6, .. }
        ));
    }

    #[test]
    fn two_frames_in_one_buffer_decode_one_at_a_time() {
        let mut bytes = Vec::new();
        encode(&ServerMsg::Reload, &mut bytes).unwrap();
        encode(&ServerMsg::Shutdown, &mut bytes).unwrap();
        let Decoded::Frame { message, used } = decode::<ServerMsg>(&bytes, 64) else {
            panic!("first frame")
        };
        assert_eq!(message, ServerMsg::Reload);
        let Decoded::Frame { message, .. } = decode::<ServerMsg>(&bytes[used..], 64) else {
            panic!("second frame")
        };
        assert_eq!(message, ServerMsg::Shutdown);
    }

    #[test]
    fn hello_version_is_readable_for_any_version() {
        for version in [0, 1, 2, 127, 128, 300, u32::MAX] {
            let hello = ServerMsg::Hello {
                version,
                secret: String::new(),
                name: "g".into(),
            };
            let mut bytes = Vec::new();
            encode(&hello, &mut bytes).unwrap();
            let body = frame_body(&bytes, 1024).unwrap();
            assert_eq!(hello_version(body), Some(version));
        }
        assert_eq!(hello_version(&[1]), None, "SyncRequest is not a hello");
        assert_eq!(PROTOCOL_VERSION, 1);
    }

    #[test]
    fn hello_frame_has_the_documented_bytes() {
        let hello = ServerMsg::Hello {
            version: 1,
            secret: String::new(),
            name: "demo".into(),
        };
        let mut bytes = Vec::new();
        encode(&hello, &mut bytes).unwrap();
        assert_eq!(bytes, [0, 0, 0, 8, 0, 1, 0, 4, b'd', b'e', b'm', b'o']);
    }

    fn arb_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::Int),
            (-1e9f64..1e9).prop_map(Value::Float),
            ".{0,12}".prop_map(Value::Str),
            proptest::collection::vec(any::<u8>(), 0..8).prop_map(Value::Bytes),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::List),
                proptest::collection::btree_map(".{0,6}", inner, 0..4).prop_map(Value::Map),
            ]
        })
    }

    /// The sync record as it was before the flags were typed: the same
    /// fields, `protocol_flags` a plain map.
    #[derive(Serialize)]
    struct MapSession {
        sessid: u64,
        protocol_key: String,
        address: String,
        csessid: Option<String>,
        uid: Option<i64>,
        uname: Option<String>,
        logged_in: bool,
        puid: Option<i64>,
        conn_time: f64,
        cmd_last: f64,
        cmd_last_visible: f64,
        cmd_total: u64,
        protocol_flags: Map,
        server_data: Map,
    }

    /// `PortalMsg` up to `Connect`, carrying a [`MapSession`].
    #[derive(Serialize)]
    #[allow(dead_code)]
    enum MapPortalMsg {
        Welcome { version: u32, portal: String },
        Refused { reason: String },
        Connect { session: MapSession },
    }

    /// A Mudlet-like telnet client's flags (TTYPE/MTTS, NAWS, GMCP, MCCP)
    /// and one flag of the game's own, as a literal map.
    fn mudlet_flags_map() -> Map {
        let window = |n: i64| Value::Map([("0".to_string(), Value::Int(n))].into());
        let mut flags = Map::new();
        for (name, on) in [
            ("ANSI", true),
            ("AUTORESIZE", true),
            ("FORCEDENDLINE", true),
            ("GMCP", true),
            ("MCCP", true),
            ("MSDP", false),
            ("MXP", false),
            ("NOCOLOR", false),
            ("NOGOAHEAD", true),
            ("NOPKEEPALIVE", true),
            ("NOPROMPTGOAHEAD", false),
            ("OOB", true),
            ("RAW", false),
            ("SCREENREADER", false),
            ("TRUECOLOR", true),
            ("TTYPE", true),
            ("UTF-8", true),
            ("XTERM256", true),
        ] {
            flags.insert(name.into(), Value::Bool(on));
        }
        flags.insert("CLIENTNAME".into(), Value::from("MUDLET"));
        flags.insert("CLIENTVERSION".into(), Value::from("4.17.2"));
        flags.insert("ENCODING".into(), Value::from("utf-8"));
        flags.insert("TERM".into(), Value::from("XTERM-256COLOR"));
        flags.insert("SCREENWIDTH".into(), window(120));
        flags.insert("SCREENHEIGHT".into(), window(40));
        flags.insert("GAME_THEME".into(), Value::from("dark"));
        flags
    }

    /// The same flags, set field by field.
    fn mudlet_flags_typed() -> ProtocolFlags {
        let mut flags = ProtocolFlags {
            ansi: Some(true),
            autoresize: Some(true),
            forcedendline: Some(true),
            gmcp: Some(true),
            mccp: Some(true),
            msdp: Some(false),
            mxp: Some(false),
            nocolor: Some(false),
            nogoahead: Some(true),
            nopkeepalive: Some(true),
            nopromptgoahead: Some(false),
            oob: Some(true),
            raw: Some(false),
            screenreader: Some(false),
            truecolor: Some(true),
            ttype: Some(true),
            utf8: Some(true),
            xterm256: Some(true),
            clientname: Some("MUDLET".into()),
            clientversion: Some("4.17.2".into()),
            encoding: Some("utf-8".into()),
            term: Some("XTERM-256COLOR".into()),
            screenwidth: Some(120),
            screenheight: Some(40),
            ..ProtocolFlags::default()
        };
        flags.insert("GAME_THEME".into(), Value::from("dark"));
        flags
    }

    #[test]
    fn typed_flags_encode_to_the_same_bytes_as_the_map() {
        let mut session = sample_session();
        *session.protocol_flags = mudlet_flags_typed();
        let old = MapSession {
            sessid: session.sessid,
            protocol_key: session.protocol_key.clone(),
            address: session.address.clone(),
            csessid: session.csessid.clone(),
            uid: session.uid,
            uname: session.uname.clone(),
            logged_in: session.logged_in,
            puid: session.puid,
            conn_time: session.conn_time,
            cmd_last: session.cmd_last,
            cmd_last_visible: session.cmd_last_visible,
            cmd_total: session.cmd_total,
            protocol_flags: mudlet_flags_map(),
            server_data: session.server_data.clone(),
        };
        let (mut new_bytes, mut old_bytes) = (Vec::new(), Vec::new());
        encode(
            &PortalMsg::Connect {
                session: session.clone(),
            },
            &mut new_bytes,
        )
        .unwrap();
        encode(&MapPortalMsg::Connect { session: old }, &mut old_bytes).unwrap();
        assert_eq!(new_bytes, old_bytes);
        match decode::<PortalMsg>(&old_bytes, 1 << 20) {
            Decoded::Frame {
                message: PortalMsg::Connect { session: back },
                ..
            } => assert_eq!(back, session),
            other => panic!("expected Connect, got {other:?}"),
        }
    }

    proptest! {
        #[test]
        fn any_value_round_trips(value in arb_value()) {
            let msg = PortalMsg::DataIn {
                sessid: 1,
                commands: vec![Command { name: "x".into(), args: vec![value], kwargs: Map::new() }],
            };
            prop_assert_eq!(round_trip(&msg), msg);
        }

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode::<ServerMsg>(&bytes, 32);
            let _ = decode::<PortalMsg>(&bytes, 1 << 20);
            let _ = hello_version(&bytes);
        }
    }
}
