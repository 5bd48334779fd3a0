//! The Evennia dialect: Twisted AMP boxes, `packed_data` chunks and the
//! mapping of a box to what it asks. Input: `[mode, bytes]`. Mode 0 reads
//! the bytes as a stream of boxes; mode 1 as the zlib chunks of one
//! `packed_data`; mode 2 packs the bytes and unpacks them again.
//! Invariants: a box encodes back to the bytes it came from and decodes to
//! itself; an inflated payload never passes its cap; pack then unpack gives
//! the bytes back; mapping a box never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portal::amp::evennia::boxes::{decode, AmpBox, Decoded};
use portal::amp::evennia::mapping::decode_box;
use portal::amp::evennia::payload::{pack, unpack};

const MAX_BOX: usize = 1 << 20;
const MAX_PAYLOAD: usize = 1 << 16;

fuzz_target!(|data: &[u8]| {
    let [mode, bytes @ ..] = data else {
        return;
    };
    match mode % 3 {
        0 => boxes(bytes),
        1 => chunks(bytes),
        _ => round_trip(bytes),
    }
});

fn boxes(mut buf: &[u8]) {
    loop {
        match decode(buf, MAX_BOX) {
            Decoded::NeedMore => return,
            Decoded::Invalid { reason } => {
                assert!(!reason.is_empty());
                return;
            }
            Decoded::Box { amp_box, used } => {
                assert!(used <= buf.len());
                let encoded = amp_box.encode();
                assert_eq!(encoded, &buf[..used], "box re-encoded differently");
                let _ = decode_box(&amp_box, MAX_PAYLOAD);
                buf = &buf[used..];
            }
        }
    }
}

/// The bytes as `packed_data` chunks: split at every 0x00 0x00 pair so the
/// fuzzer can give several chunks.
fn chunks(bytes: &[u8]) {
    let mut b = AmpBox::command("MsgPortal2Server", Some("1"));
    for (i, part) in split(bytes).into_iter().enumerate().take(20) {
        let key = if i == 0 {
            "packed_data".to_owned()
        } else {
            format!("packed_data.{}", i + 1)
        };
        b.insert(key, part);
    }
    if let Ok(out) = unpack(&b, "packed_data", MAX_PAYLOAD) {
        assert!(out.len() <= MAX_PAYLOAD, "{} bytes past the cap", out.len());
    }
    let _ = decode_box(&b, MAX_PAYLOAD);
}

fn split(bytes: &[u8]) -> Vec<&[u8]> {
    let mut parts = Vec::new();
    let mut rest = bytes;
    while let Some(at) = rest.windows(2).position(|w| w == [0, 0]) {
        parts.push(&rest[..at]);
        rest = &rest[at + 2..];
    }
    parts.push(rest);
    parts
}

fn round_trip(bytes: &[u8]) {
    let mut raw = bytes.to_vec();
    // Grow some inputs past one chunk (60,000 bytes) so joining is tested.
    if bytes.first().is_some_and(|b| b & 1 == 1) {
        raw = raw.repeat(70_000 / raw.len().max(1) + 1);
    }
    let mut b = AmpBox::command("MsgServer2Portal", None);
    pack(&mut b, "packed_data", &raw);
    let back = unpack(&b, "packed_data", raw.len());
    assert_eq!(back.as_deref(), Ok(&raw[..]));
    if !raw.is_empty() {
        assert!(
            unpack(&b, "packed_data", raw.len() - 1).is_err(),
            "cap not kept"
        );
    }
    match decode(&b.encode(), MAX_BOX) {
        Decoded::Box { amp_box, .. } => assert_eq!(amp_box, b),
        other => panic!("packed box read back as {other:?}"),
    }
}
