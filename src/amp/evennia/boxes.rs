//! Twisted AMP boxes: the framing Evennia's Server and launcher speak.
//!
//! A box is a run of key/value pairs, each a 2-byte big-endian length and
//! that many bytes; keys are 1-255 bytes, values 0-65535, and an empty key
//! ends the box. Requests carry `_command` (and `_ask` when they want an
//! answer), replies `_answer` or `_error` + `_error_code` +
//! `_error_description`. Pure: the dialect's reader feeds bytes in and
//! gets boxes out, the writer encodes boxes into bytes.
//!
//! ```
//! use portal::amp::evennia::boxes::{decode, AmpBox, Decoded};
//! let mut b = AmpBox::default();
//! b.insert("_command", "MsgStatus");
//! b.insert("status", "");
//! let bytes = b.encode();
//! match decode(&bytes, 1 << 20) {
//!     Decoded::Box { amp_box, used } => {
//!         assert_eq!(used, bytes.len());
//!         assert_eq!(amp_box.get("_command"), Some(&b"MsgStatus"[..]));
//!     }
//!     other => panic!("{other:?}"),
//! }
//! ```

/// Longest key AMP allows.
pub const MAX_KEY: usize = 255;
/// Longest value AMP allows (Twisted's `MAX_VALUE_LENGTH`).
pub const MAX_VALUE: usize = 0xffff;

/// One AMP box: its pairs in the order they arrived or will be written.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AmpBox {
    pairs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// What [`decode`] found at the start of a buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    /// Not a whole box yet; nothing was used.
    NeedMore,
    /// One box and how many bytes it used.
    Box { amp_box: AmpBox, used: usize },
    /// The bytes are not AMP (a key over 255 bytes, a box over the limit):
    /// the link must close, the stream cannot be trusted after this.
    Invalid { reason: String },
}

impl AmpBox {
    /// A request box for `command`, asking for an answer when `ask` is set.
    pub fn command(command: &str, ask: Option<&str>) -> AmpBox {
        let mut b = AmpBox::default();
        b.insert("_command", command);
        if let Some(ask) = ask {
            b.insert("_ask", ask);
        }
        b
    }

    /// The (empty) answer to request `ask`.
    pub fn answer(ask: &[u8]) -> AmpBox {
        let mut b = AmpBox::default();
        b.insert("_answer", ask);
        b
    }

    /// The error answer to request `ask`.
    pub fn error(ask: &[u8], code: &str, description: &str) -> AmpBox {
        let mut b = AmpBox::default();
        b.insert("_error", ask);
        b.insert("_error_code", code);
        b.insert("_error_description", description);
        b
    }

    /// Set `key` (replacing an earlier value).
    pub fn insert(&mut self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) {
        let (key, value) = (key.as_ref(), value.as_ref());
        match self.pairs.iter_mut().find(|(k, _)| k == key) {
            Some((_, v)) => *v = value.to_vec(),
            None => self.pairs.push((key.to_vec(), value.to_vec())),
        }
    }

    /// The value of `key`.
    pub fn get(&self, key: impl AsRef<[u8]>) -> Option<&[u8]> {
        let key = key.as_ref();
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_slice())
    }

    /// The value of `key` as text (lossy), for names and ids.
    pub fn text(&self, key: &str) -> Option<String> {
        self.get(key)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    /// Every pair, in order.
    pub fn pairs(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.pairs.iter().map(|(k, v)| (k.as_slice(), v.as_slice()))
    }

    /// Append the wire form to `out`. Keys and values past AMP's limits
    /// (an error description quoting a peer's huge value) are cut rather
    /// than written with a length that would corrupt the link; payloads
    /// are chunked by [`crate::amp::evennia::payload`] so they never are.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        for (key, value) in &self.pairs {
            let key = &key[..key.len().min(MAX_KEY)];
            let value = &value[..value.len().min(MAX_VALUE)];
            out.extend_from_slice(&(key.len() as u16).to_be_bytes());
            out.extend_from_slice(key);
            out.extend_from_slice(&(value.len() as u16).to_be_bytes());
            out.extend_from_slice(value);
        }
        out.extend_from_slice(&[0, 0]);
    }

    /// The wire form.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }
}

/// Decode the first box in `buf`, refusing boxes over `max_box` bytes.
pub fn decode(buf: &[u8], max_box: usize) -> Decoded {
    let mut pos = 0;
    let mut pairs = Vec::new();
    loop {
        if pos > max_box {
            return Decoded::Invalid {
                reason: format!("a box over {max_box} bytes"),
            };
        }
        let Some(key_len) = read_len(buf, pos) else {
            return Decoded::NeedMore;
        };
        pos += 2;
        if key_len == 0 {
            return Decoded::Box {
                amp_box: AmpBox { pairs },
                used: pos,
            };
        }
        if key_len > MAX_KEY {
            return Decoded::Invalid {
                reason: format!("a key of {key_len} bytes (AMP allows {MAX_KEY})"),
            };
        }
        let Some(key) = buf.get(pos..pos + key_len) else {
            return Decoded::NeedMore;
        };
        pos += key_len;
        let Some(value_len) = read_len(buf, pos) else {
            return Decoded::NeedMore;
        };
        pos += 2;
        let Some(value) = buf.get(pos..pos + value_len) else {
            return if pos + value_len > max_box {
                Decoded::Invalid {
                    reason: format!("a box over {max_box} bytes"),
                }
            } else {
                Decoded::NeedMore
            };
        };
        pos += value_len;
        pairs.push((key.to_vec(), value.to_vec()));
    }
}

fn read_len(buf: &[u8], pos: usize) -> Option<usize> {
    let bytes: [u8; 2] = buf.get(pos..pos + 2)?.try_into().ok()?;
    Some(u16::from_be_bytes(bytes) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> AmpBox {
        let mut b = AmpBox::command("MsgPortal2Server", Some("1f"));
        b.insert("packed_data", vec![0u8, 1, 2, 0, 0]);
        b.insert("packed_data.2", b"");
        b
    }

    #[test]
    fn a_box_round_trips_with_its_key_order() {
        let bytes = sample().encode();
        let Decoded::Box { amp_box, used } = decode(&bytes, 1 << 20) else {
            panic!()
        };
        assert_eq!(used, bytes.len());
        assert_eq!(amp_box, sample());
        let keys: Vec<&[u8]> = amp_box.pairs().map(|(k, _)| k).collect();
        assert_eq!(keys[0], b"_command");
        assert_eq!(keys[3], b"packed_data.2");
    }

    #[test]
    fn the_wire_form_is_twisted_s() {
        // What twisted.protocols.amp.AmpBox(_ask=b"1", x=b"ab").serialize()
        // gives, with the keys in this order.
        let mut b = AmpBox::default();
        b.insert("_ask", "1");
        b.insert("x", "ab");
        assert_eq!(
            b.encode(),
            b"\x00\x04_ask\x00\x011\x00\x01x\x00\x02ab\x00\x00".to_vec()
        );
    }

    #[test]
    fn a_box_split_anywhere_needs_more_until_it_is_whole() {
        let bytes = sample().encode();
        for cut in 0..bytes.len() {
            assert_eq!(decode(&bytes[..cut], 1 << 20), Decoded::NeedMore, "{cut}");
        }
    }

    #[test]
    fn two_boxes_in_one_read_come_out_one_at_a_time() {
        let mut bytes = sample().encode();
        let first = bytes.len();
        AmpBox::answer(b"7").encode_into(&mut bytes);
        let Decoded::Box { used, .. } = decode(&bytes, 1 << 20) else {
            panic!()
        };
        assert_eq!(used, first);
        let Decoded::Box { amp_box, .. } = decode(&bytes[used..], 1 << 20) else {
            panic!()
        };
        assert_eq!(amp_box.get("_answer"), Some(&b"7"[..]));
    }

    #[test]
    fn an_oversized_box_or_key_is_invalid() {
        let mut b = AmpBox::default();
        b.insert("v", vec![7u8; 60_000]);
        let bytes = b.encode();
        assert!(matches!(decode(&bytes, 1000), Decoded::Invalid { .. }));
        // Even before the value has arrived.
        assert!(matches!(
            decode(&bytes[..10], 1000),
            Decoded::Invalid { .. }
        ));
        let http = b"GET / HTTP/1.1\r\n\r\n";
        assert!(matches!(decode(http, 1 << 20), Decoded::Invalid { .. }));
    }

    #[test]
    fn an_over_long_value_is_cut_not_written_with_a_wrong_length() {
        let b = AmpBox::error(b"1", "EXCEPTION", &"x".repeat(70_000));
        let Decoded::Box { amp_box, .. } = decode(&b.encode(), 1 << 20) else {
            panic!()
        };
        assert_eq!(
            amp_box.get("_error_description").map(<[u8]>::len),
            Some(MAX_VALUE)
        );
    }

    #[test]
    fn an_empty_box_is_just_the_terminator() {
        assert_eq!(AmpBox::default().encode(), vec![0, 0]);
        assert!(matches!(decode(&[0, 0], 10), Decoded::Box { used: 2, .. }));
    }

    #[test]
    fn error_answers_carry_the_three_keys() {
        let b = AmpBox::error(b"3", "UNHANDLED", "no such command");
        assert_eq!(b.text("_error").as_deref(), Some("3"));
        assert_eq!(b.text("_error_code").as_deref(), Some("UNHANDLED"));
        assert!(b.get("_error_description").is_some());
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = decode(&bytes, 400);
        }

        #[test]
        fn any_box_round_trips(pairs in proptest::collection::vec(
            (proptest::collection::vec(any::<u8>(), 1..40), proptest::collection::vec(any::<u8>(), 0..300)), 0..8)) {
            let mut b = AmpBox::default();
            for (k, v) in &pairs { b.insert(k, v); }
            let bytes = b.encode();
            prop_assert_eq!(decode(&bytes, 1 << 20), Decoded::Box { amp_box: b, used: bytes.len() });
        }
    }
}
