//! `packed_data`: how Evennia carries a pickle inside an AMP box.
//!
//! The pickle is cut into chunks, each zlib-compressed on its own, under
//! the keys `packed_data`, `packed_data.2`, `packed_data.3`, … (Evennia's
//! `Compressed` argument). Reading accepts any chunk size; writing cuts
//! the pickle into 60,000-byte chunks as stored (uncompressed) zlib, which
//! Evennia reads like any zlib stream and which always fits a value. Pure.

use crate::amp::evennia::boxes::{AmpBox, MAX_VALUE};
use flate2::{Decompress, FlushDecompress, Status};
use std::cell::RefCell;

thread_local! {
    // One inflate stream per thread, reset for every chunk: a new stream
    // would allocate its 32 KiB window per message.
    static INFLATE: RefCell<Decompress> = RefCell::new(Decompress::new(true));
}

/// Raw bytes per chunk: stored (incompressible) data grows by 5 bytes per
/// 64 KiB block plus 6 of header and checksum, so this always fits.
pub const RAW_CHUNK: usize = 60_000;

/// Why a payload could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayloadError {
    /// The box has no `packed_data`.
    Missing,
    /// A chunk is not a zlib stream.
    BadZlib { chunk: usize, reason: String },
    /// The chunks inflate to more than the limit.
    TooLarge { max: usize },
}

impl std::fmt::Display for PayloadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PayloadError::Missing => write!(f, "no packed_data in the box"),
            PayloadError::BadZlib { chunk, reason } => {
                write!(f, "packed_data chunk {chunk} is not zlib data: {reason}")
            }
            PayloadError::TooLarge { max } => {
                write!(f, "packed_data inflates to more than {max} bytes")
            }
        }
    }
}

impl std::error::Error for PayloadError {}

/// The key of chunk `n` (1-based) of argument `name`.
fn chunk_key(name: &str, n: usize) -> String {
    if n == 1 {
        name.to_owned()
    } else {
        format!("{name}.{n}")
    }
}

/// Put `raw` into `b` under `name` as compressed chunks.
pub fn pack(b: &mut AmpBox, name: &str, raw: &[u8]) {
    let chunks: Vec<&[u8]> = if raw.is_empty() {
        vec![raw]
    } else {
        raw.chunks(RAW_CHUNK).collect()
    };
    for (i, chunk) in chunks.into_iter().enumerate() {
        let compressed = compress(chunk);
        debug_assert!(compressed.len() <= MAX_VALUE);
        b.insert(chunk_key(name, i + 1), compressed);
    }
}

/// `chunk` as a zlib stream of stored (uncompressed) blocks. The Evennia
/// link is loopback-only, so compressing buys nothing, while resetting a
/// deflate stream clears its 64 KiB hash table for every message; any
/// zlib reader (Evennia's `zlib.decompress`) reads stored blocks.
fn compress(chunk: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(chunk.len() + 16);
    out.extend_from_slice(&[0x78, 0x01]);
    let mut blocks = chunk.chunks(0xffff).peekable();
    if blocks.peek().is_none() {
        out.extend_from_slice(&[0x01, 0x00, 0x00, 0xff, 0xff]);
    }
    while let Some(block) = blocks.next() {
        let last = blocks.peek().is_none();
        let len = block.len() as u16;
        out.push(u8::from(last));
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(block);
    }
    out.extend_from_slice(&adler32(chunk).to_be_bytes());
    out
}

/// zlib's checksum (RFC 1950).
fn adler32(data: &[u8]) -> u32 {
    const MOD: u32 = 65521;
    let (mut a, mut b) = (1u32, 0u32);
    // 5552 bytes is the most that can be summed before b could overflow.
    for block in data.chunks(5552) {
        for &byte in block {
            a += u32::from(byte);
            b += a;
        }
        a %= MOD;
        b %= MOD;
    }
    (b << 16) | a
}

/// Read argument `name` back: every chunk inflated and joined, at most
/// `max` bytes in all.
pub fn unpack(b: &AmpBox, name: &str, max: usize) -> Result<Vec<u8>, PayloadError> {
    let mut out = Vec::new();
    let first = b.get(name).ok_or(PayloadError::Missing)?;
    inflate_into(first, 1, max, &mut out)?;
    for n in 2.. {
        let Some(chunk) = b.get(chunk_key(name, n)) else {
            break;
        };
        inflate_into(chunk, n, max, &mut out)?;
    }
    Ok(out)
}

fn inflate_into(chunk: &[u8], n: usize, max: usize, out: &mut Vec<u8>) -> Result<(), PayloadError> {
    let bad = |reason: String| PayloadError::BadZlib { chunk: n, reason };
    INFLATE.with(|d| {
        let mut d = d.borrow_mut();
        d.reset(true);
        loop {
            if out.len() > max {
                return Err(PayloadError::TooLarge { max });
            }
            if out.len() == out.capacity() {
                // Room for what the limit still allows, and one byte more
                // to see a stream that goes past it.
                let room = (max.saturating_add(1) - out.len()).min(out.capacity().max(4096));
                out.reserve_exact(room);
            }
            let read = (d.total_in() as usize).min(chunk.len());
            let before = (d.total_in(), d.total_out());
            let status = d
                .decompress_vec(&chunk[read..], out, FlushDecompress::None)
                .map_err(|e| bad(e.to_string()))?;
            match status {
                Status::StreamEnd => break,
                _ if (d.total_in(), d.total_out()) == before && out.len() < out.capacity() => {
                    return Err(bad("the stream ends early".into()));
                }
                _ => {}
            }
        }
        if out.len() > max {
            return Err(PayloadError::TooLarge { max });
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn incompressible(n: usize) -> Vec<u8> {
        // A xorshift stream: zlib cannot shrink it.
        let mut x: u64 = 0x9e3779b97f4a7c15;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[test]
    fn small_payloads_take_one_chunk() {
        let mut b = AmpBox::default();
        pack(&mut b, "packed_data", b"hello");
        assert!(b.get("packed_data.2").is_none());
        assert_eq!(unpack(&b, "packed_data", 100).unwrap(), b"hello");
    }

    #[test]
    fn incompressible_payloads_are_cut_so_every_chunk_fits_a_value() {
        let raw = incompressible(3 * RAW_CHUNK + 17);
        let mut b = AmpBox::default();
        pack(&mut b, "packed_data", &raw);
        for n in [
            "packed_data",
            "packed_data.2",
            "packed_data.3",
            "packed_data.4",
        ] {
            let v = b.get(n).unwrap_or_else(|| panic!("{n}"));
            assert!(v.len() <= MAX_VALUE, "{n}: {}", v.len());
        }
        assert!(b.get("packed_data.5").is_none());
        assert_eq!(unpack(&b, "packed_data", 1 << 20).unwrap(), raw);
        // The whole box still encodes (each value under 64 KiB).
        assert!(b.encode().len() > raw.len());
    }

    #[test]
    fn chunks_of_any_size_are_read() {
        // Evennia cuts at 65535 raw bytes; a peer may cut anywhere.
        let raw: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let mut b = AmpBox::default();
        for (i, chunk) in raw.chunks(65_535).enumerate() {
            b.insert(chunk_key("packed_data", i + 1), compress(chunk));
        }
        assert_eq!(unpack(&b, "packed_data", 1 << 20).unwrap(), raw);
    }

    #[test]
    fn stored_chunks_are_zlib_that_any_reader_takes() {
        use std::io::Read;
        for raw in [&b""[..], b"a", &incompressible(70_000)] {
            let mut back = Vec::new();
            flate2::read::ZlibDecoder::new(&compress(raw)[..])
                .read_to_end(&mut back)
                .unwrap();
            assert_eq!(back, raw);
        }
        // zlib's own value for "Wikipedia" (RFC 1950's example checksum).
        assert_eq!(adler32(b"Wikipedia"), 0x11E6_0398);
    }

    #[test]
    fn a_truncated_chunk_is_refused_and_the_next_one_still_reads() {
        let whole = compress(b"hello hello hello");
        let mut b = AmpBox::default();
        b.insert("packed_data", &whole[..whole.len() - 3]);
        assert!(matches!(
            unpack(&b, "packed_data", 100),
            Err(PayloadError::BadZlib { chunk: 1, .. })
        ));
        let mut b = AmpBox::default();
        b.insert("packed_data", &whole);
        assert_eq!(
            unpack(&b, "packed_data", 100).unwrap(),
            b"hello hello hello"
        );
    }

    #[test]
    fn bad_and_oversized_payloads_are_refused() {
        let mut b = AmpBox::default();
        b.insert("packed_data", b"not zlib");
        assert!(matches!(
            unpack(&b, "packed_data", 100),
            Err(PayloadError::BadZlib { chunk: 1, .. })
        ));
        let mut bomb = AmpBox::default();
        pack(&mut bomb, "packed_data", &vec![0u8; 50_000]);
        assert_eq!(
            unpack(&bomb, "packed_data", 1000),
            Err(PayloadError::TooLarge { max: 1000 })
        );
        assert_eq!(
            unpack(&AmpBox::default(), "packed_data", 10),
            Err(PayloadError::Missing)
        );
    }
}
