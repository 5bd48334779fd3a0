//! The bounded pickle codec an Evennia Server's payloads go through.
//! Invariants: decoding stays inside its limits (depth, items) and never
//! panics; what decodes encodes to a pickle that decodes to the same value,
//! and encoding that again gives the same bytes; the conversion to the
//! portal's values and back never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portal::amp::evennia::mapping::{to_py, to_value};
use portal::amp::evennia::pickle::{decode, encode, Limits};

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_depth: 40,
        max_items: 20_000,
    };
    let Ok(value) = decode(data, &limits) else {
        return;
    };
    let bytes = encode(&value);
    let big = Limits {
        max_depth: 200,
        max_items: 1 << 22,
    };
    match decode(&bytes, &big) {
        Ok(back) => {
            // Compared as text: a float NaN is never equal to itself.
            assert_eq!(
                format!("{back:?}"),
                format!("{value:?}"),
                "round trip changed it"
            );
            assert_eq!(encode(&back), bytes, "encoding is not stable");
        }
        Err(e) => panic!("our own pickle refused: {e}"),
    }
    let _ = to_py(&to_value(&value));
});
