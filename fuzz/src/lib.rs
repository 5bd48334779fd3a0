//! What the fuzz targets share: cutting one input into reads, and a
//! client's view of the telnet stream the portal writes.
//!
//! Each target in `fuzz_targets/` drives one pure parser of the portal with
//! bytes a peer controls and checks invariants, not only "no panic". Run
//! them with `scripts/fuzz` (cargo-fuzz on the nightly toolchain).

use flate2::{Decompress, FlushDecompress, Status};

/// Cuts `input` into reads of 1..=64 bytes, the sizes chosen by `seed`
/// (a small xorshift, so a crash reproduces from its input alone).
pub fn chunks(input: &[u8], seed: u8) -> Vec<&[u8]> {
    let mut state = u32::from(seed) | 0x9e37_7900;
    let mut out = Vec::new();
    let mut rest = input;
    while !rest.is_empty() {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let take = (state as usize % 64 + 1).min(rest.len());
        let (head, tail) = rest.split_at(take);
        out.push(head);
        rest = tail;
    }
    out
}

/// One thing a telnet client reads from the portal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// Data bytes (consecutive ones merged).
    Data(Vec<u8>),
    /// IAC WILL/WONT/DO/DONT option.
    Negotiate(u8, u8),
    /// IAC SB option body IAC SE, the body unescaped.
    Sub(u8, Vec<u8>),
    /// Any other two-byte command (GA, EOR, NOP, ...).
    Command(u8),
}

/// Why the portal's output was not a valid telnet stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BadStream {
    /// IAC followed by a byte that starts no command.
    LoneIac,
    /// IAC SB never closed by IAC SE.
    OpenSubnegotiation,
    /// The MCCP2 part is not a valid zlib stream.
    Zlib(String),
}

const IAC: u8 = 255;
const SB: u8 = 250;
const SE: u8 = 240;
const COMPRESS2: u8 = 86;

/// Reads the whole output of one connection as its client would: telnet
/// commands, and after `IAC SB COMPRESS2 IAC SE` a zlib stream, plain again
/// after the stream ends.
pub fn client_view(wire: &[u8]) -> Result<Vec<Seen>, BadStream> {
    let mut seen = Vec::new();
    let mut rest = wire.to_vec();
    loop {
        let (used, compressed) = tokens(&rest, &mut seen)?;
        if !compressed {
            return Ok(seen);
        }
        let (plain, after) = inflate(&rest[used..])?;
        let mut inner = plain;
        inner.extend_from_slice(after);
        rest = inner;
    }
}

/// Tokenizes plain telnet; stops after a COMPRESS2 start, returning the
/// bytes used and whether compression began.
fn tokens(wire: &[u8], seen: &mut Vec<Seen>) -> Result<(usize, bool), BadStream> {
    let mut i = 0;
    while i < wire.len() {
        let byte = wire[i];
        if byte != IAC {
            push_data(seen, byte);
            i += 1;
            continue;
        }
        let Some(&verb) = wire.get(i + 1) else {
            return Err(BadStream::LoneIac);
        };
        match verb {
            IAC => {
                push_data(seen, IAC);
                i += 2;
            }
            251..=254 => {
                let option = *wire.get(i + 2).ok_or(BadStream::LoneIac)?;
                seen.push(Seen::Negotiate(verb, option));
                i += 3;
            }
            SB => {
                let (option, body, used) = subnegotiation(&wire[i + 2..])?;
                seen.push(Seen::Sub(option, body));
                i += 2 + used;
                if option == COMPRESS2 {
                    return Ok((i, true));
                }
            }
            SE => return Err(BadStream::LoneIac),
            other => {
                seen.push(Seen::Command(other));
                i += 2;
            }
        }
    }
    Ok((i, false))
}

fn subnegotiation(wire: &[u8]) -> Result<(u8, Vec<u8>, usize), BadStream> {
    let option = *wire.first().ok_or(BadStream::OpenSubnegotiation)?;
    let mut body = Vec::new();
    let mut i = 1;
    loop {
        match (wire.get(i), wire.get(i + 1)) {
            (Some(&IAC), Some(&SE)) => return Ok((option, body, i + 2)),
            (Some(&IAC), Some(&IAC)) => {
                body.push(IAC);
                i += 2;
            }
            (Some(&IAC), _) => return Err(BadStream::OpenSubnegotiation),
            (Some(&b), _) => {
                body.push(b);
                i += 1;
            }
            (None, _) => return Err(BadStream::OpenSubnegotiation),
        }
    }
}

fn push_data(seen: &mut Vec<Seen>, byte: u8) {
    match seen.last_mut() {
        Some(Seen::Data(data)) => data.push(byte),
        _ => seen.push(Seen::Data(vec![byte])),
    }
}

/// Inflates a zlib stream from the start of `wire`: the plain bytes, and
/// what follows the stream's end (empty if it has not ended).
fn inflate(wire: &[u8]) -> Result<(Vec<u8>, &[u8]), BadStream> {
    let mut stream = Decompress::new(true);
    let mut plain = Vec::with_capacity(wire.len() * 4 + 64);
    loop {
        let before = stream.total_in() as usize;
        if plain.len() == plain.capacity() {
            plain.reserve(plain.len() + 4096);
        }
        let status = stream
            .decompress_vec(&wire[before..], &mut plain, FlushDecompress::Sync)
            .map_err(|e| BadStream::Zlib(e.to_string()))?;
        let used = stream.total_in() as usize;
        match status {
            Status::StreamEnd => return Ok((plain, &wire[used..])),
            _ if used == wire.len() && plain.len() < plain.capacity() => {
                return Ok((plain, &[]));
            }
            _ if used == before && plain.len() < plain.capacity() => {
                return Err(BadStream::Zlib("no progress".into()));
            }
            _ => {}
        }
    }
}

/// All data bytes in a view, in order.
pub fn data_of(seen: &[Seen]) -> Vec<u8> {
    let mut out = Vec::new();
    for s in seen {
        if let Seen::Data(d) = s {
            out.extend_from_slice(d);
        }
    }
    out
}

/// Whether `needle` occurs in `hay`.
pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}
