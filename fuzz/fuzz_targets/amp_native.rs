//! The native AMP frame codec, both directions. Invariants: a decoder never
//! uses more bytes than it has; a decoded message encodes and decodes back
//! to itself; a refused frame is refused for a reason that says so.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portal::amp::codec::{decode, encode, frame_body, hello_version, Decoded};
use portal::wire::message::{PortalMsg, ServerMsg};
use serde::de::DeserializeOwned;
use serde::Serialize;

const MAX_BODY: usize = 1 << 16;

fuzz_target!(|data: &[u8]| {
    stream::<ServerMsg>(data);
    stream::<PortalMsg>(data);
    if let Some(body) = frame_body(data, MAX_BODY) {
        let _ = hello_version(body);
    }
});

/// Decode frames one after another, as a reader thread does.
fn stream<T>(mut buf: &[u8])
where
    T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    loop {
        match decode::<T>(buf, MAX_BODY) {
            Decoded::NeedMore => return,
            Decoded::TooLarge { len } => {
                assert!(len > MAX_BODY);
                return;
            }
            Decoded::Invalid { used, reason } => {
                assert!(!reason.is_empty());
                assert!(used <= buf.len());
                buf = &buf[used..];
            }
            Decoded::Frame { message, used } => {
                assert!(used <= buf.len() && used >= 4);
                let mut again = Vec::new();
                if encode(&message, &mut again).is_ok() {
                    match decode::<T>(&again, usize::MAX) {
                        Decoded::Frame {
                            message: back,
                            used,
                        } => {
                            // As text: a float NaN is never equal to itself.
                            assert_eq!(format!("{back:?}"), format!("{message:?}"));
                            assert_eq!(used, again.len());
                        }
                        other => panic!("re-encoded frame read as {other:?}"),
                    }
                }
                buf = &buf[used..];
            }
        }
    }
}
