//! The PROXY protocol header parser (v1 and v2) and its reader. Input:
//! `[seed, bytes]`. Invariants: a header is decided by its own bytes alone
//! (what follows never changes it, and nothing past it is looked at);
//! every shorter prefix is incomplete and asks for no more than the
//! header still holds; an invalid start stays invalid however it goes on;
//! a reader fed the input in reads cut anywhere (never more than it asks
//! for) ends as the whole-input parse does, having taken exactly the
//! header.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portal::protocols::proxy::{parse, HeaderReader, Parsed, Step};
use portal_fuzz::chunks;
use std::time::{Duration, Instant};

fuzz_target!(|data: &[u8]| {
    let [seed, input @ ..] = data else {
        return;
    };
    let whole = parse(input);
    match &whole {
        Parsed::Header(h) => {
            assert!(h.len <= input.len() && h.len > 0);
            assert_eq!(parse(&input[..h.len]), whole, "the header alone differs");
            for cut in cuts(input, *seed).filter(|c| *c < h.len) {
                match parse(&input[..cut]) {
                    Parsed::Incomplete { need } => {
                        assert!(need >= 1 && cut + need <= h.len, "cut {cut} need {need}")
                    }
                    other => panic!("prefix {cut} of a header: {other:?}"),
                }
            }
        }
        Parsed::Incomplete { need } => assert!(*need >= 1),
        Parsed::Invalid(_) => {
            let longer = [input, input].concat();
            assert!(matches!(parse(&longer), Parsed::Invalid(_)), "became valid");
        }
    }
    read_in_chunks(input, *seed, &whole);
});

/// Where the seed's reads would cut the input.
fn cuts(input: &[u8], seed: u8) -> impl Iterator<Item = usize> {
    let mut at = 0;
    let ends: Vec<usize> = chunks(input, seed)
        .iter()
        .map(|c| {
            at += c.len();
            at
        })
        .collect();
    ends.into_iter()
}

/// Feed a reader as the worker does: reads of at most what it asks for,
/// and at most what the next cut gives.
fn read_in_chunks(input: &[u8], seed: u8, whole: &Parsed) {
    let now = Instant::now();
    let mut reader = HeaderReader::new(now, Duration::from_secs(5));
    let mut taken = 0;
    let mut sizes = chunks(input, seed).into_iter().map(<[u8]>::len).cycle();
    while let Step::Read(need) = reader.step().clone() {
        if taken == input.len() {
            break;
        }
        let size = need.min(sizes.next().unwrap_or(1)).min(input.len() - taken);
        reader.push(&input[taken..taken + size]);
        taken += size;
    }
    match (reader.step(), whole) {
        (Step::Done(h), Parsed::Header(w)) => {
            assert_eq!(h, w);
            assert_eq!(taken, h.len, "read past the header");
        }
        (Step::Failed(_), Parsed::Invalid(_)) => {}
        (Step::Read(_), Parsed::Incomplete { .. }) => assert_eq!(taken, input.len()),
        (step, whole) => panic!("reader {step:?}, whole input {whole:?}"),
    }
}
