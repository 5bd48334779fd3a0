//! The PROXY protocol header parser (v1 and v2) and its reader. Input:
//! `[seed, bytes]`. Invariants: a header is decided by its own bytes alone
//! (what follows never changes it, and nothing past it is looked at);
//! every shorter prefix is incomplete and asks for no more than the
//! header still holds; an invalid start stays invalid however it goes on;
//! a header's version is the signature it starts with and its source
//! address is the one its bytes spell (v1: the third word and the fifth;
//! v2: the address block's first bytes); a reader fed the input in reads
//! cut anywhere (never more than it asks for) ends as the whole-input
//! parse does, having taken exactly the header, and a reader still
//! waiting fails at its deadline, not before.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portal::protocols::proxy::{
    parse, Header, HeaderReader, Parsed, ProxyError, Step, V2_SIGNATURE,
};
use portal_fuzz::chunks;
use std::net::{IpAddr, SocketAddr};
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
            check_contents(&input[..h.len], h);
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

/// A header says what its bytes say: the version of its signature, and
/// the source address written in it.
fn check_contents(bytes: &[u8], header: &Header) {
    match header.version {
        1 => {
            assert!(bytes.starts_with(b"PROXY ") && bytes.ends_with(b"\r\n"));
            assert!(bytes.len() <= 107, "v1 line of {} bytes", bytes.len());
            let line = std::str::from_utf8(&bytes[..bytes.len() - 2]).expect("v1 is ASCII");
            let words: Vec<&str> = line.split(' ').collect();
            match header.source {
                None => assert_eq!(words[1], "UNKNOWN"),
                Some(source) => {
                    assert!(words[1] == "TCP4" || words[1] == "TCP6", "{line:?}");
                    let ip: IpAddr = words[2].parse().expect("source address parses");
                    let port: u16 = words[4].parse().expect("source port parses");
                    assert_eq!(source, SocketAddr::new(ip, port), "{line:?}");
                }
            }
        }
        2 => {
            assert!(bytes.starts_with(&V2_SIGNATURE) && bytes.len() >= 16);
            let body_len = usize::from(u16::from_be_bytes([bytes[14], bytes[15]]));
            assert_eq!(bytes.len(), 16 + body_len, "v2 length field");
            let Some(source) = header.source else {
                return;
            };
            assert_eq!(bytes[12] & 0x0f, 1, "a LOCAL header has no source");
            let body = &bytes[16..];
            let (ip, port): (IpAddr, [u8; 2]) = match (bytes[13] >> 4, source.ip()) {
                (1, IpAddr::V4(_)) => (
                    <[u8; 4]>::try_from(&body[..4]).expect("4 bytes").into(),
                    [body[8], body[9]],
                ),
                (2, IpAddr::V6(_)) => (
                    <[u8; 16]>::try_from(&body[..16]).expect("16 bytes").into(),
                    [body[32], body[33]],
                ),
                (family, ip) => panic!("family {family} gave source {ip}"),
            };
            assert_eq!(source, SocketAddr::new(ip, u16::from_be_bytes(port)));
        }
        other => panic!("version {other}"),
    }
}

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
    let limit = Duration::from_secs(5);
    let mut reader = HeaderReader::new(now, limit);
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
    let before = reader.step().clone();
    match (&before, whole) {
        (Step::Done(h), Parsed::Header(w)) => {
            assert_eq!(h, w);
            assert_eq!(taken, h.len, "read past the header");
        }
        (Step::Failed(_), Parsed::Invalid(_)) => {}
        (Step::Read(_), Parsed::Incomplete { .. }) => assert_eq!(taken, input.len()),
        (step, whole) => panic!("reader {step:?}, whole input {whole:?}"),
    }
    assert_eq!(reader.handle_timeout(now + limit / 2), &before, "early");
    let late = reader.handle_timeout(now + limit).clone();
    match before {
        Step::Read(_) => assert_eq!(late, Step::Failed(ProxyError::TimedOut(limit))),
        settled => {
            assert_eq!(late, settled, "a settled reader changed at its deadline");
            assert_eq!(reader.push(b"more"), &settled, "a settled reader read on");
        }
    }
}
