//! Django session records (`session_data`) as the evennia dialect reads
//! them from the game's database. Invariants: any text, and any text
//! signed with the key as `payload:timestamp` (so the fuzzer gets past the
//! signature), decodes to a session or an error within its limits, never
//! a panic; what decodes encodes to a record that decodes to the same
//! session.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portal::amp::evennia::django_session::{decode, encode, sign, Limits};

const SECRET: &str = "golden-secret-key-for-tests-only";

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let limits = Limits::default();
    let _ = decode(&text, SECRET, &limits);
    // A golden record's signature is dropped and the rest signed again.
    let unsigned = text.rsplit_once(':').map_or(&*text, |(value, _)| value);
    let Ok(session) = decode(&sign(unsigned, SECRET), SECRET, &limits) else {
        return;
    };
    let again = encode(&session, SECRET, 1_764_872_000);
    match decode(&again, SECRET, &limits) {
        Ok(back) => assert_eq!(back, session, "round trip changed it"),
        Err(e) => panic!("our own record refused: {e}"),
    }
});
