//! MCCP2 (option 86) and MCCP3 (option 87): zlib compression of the telnet
//! stream, outbound and inbound.
//!
//! MCCP2: after IAC DO COMPRESS2 the server sends `IAC SB 86 IAC SE` and
//! every byte after it is one zlib stream. We sync-flush after each batch of
//! output so the client never waits for a full block, and finish the stream
//! when compression is turned off. MCCP3: after IAC DO COMPRESS3 the client
//! sends `IAC SB 87 IAC SE` and compresses everything it sends after that;
//! the stream ends with zlib's end marker, after which input is plain again.
//! Input is inflated in chunks the caller sizes, so a small "zlib bomb"
//! never becomes a large buffer: the telnet engine counts what each read
//! inflates to and stops at `max_inflated_input`.
//!
//! ```
//! use portal::protocols::telnet::mccp::{Deflater, Inflater};
//! let mut deflater = Deflater::new();
//! let mut wire = Vec::new();
//! deflater.compress(b"hello", &mut wire);
//! let mut inflater = Inflater::new();
//! let mut plain = [0u8; 64];
//! let step = inflater.inflate_into(&wire, &mut plain);
//! assert_eq!(&plain[..step.written], b"hello");
//! assert_eq!(step.used, wire.len());
//! ```

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// MCCP2: server → client compression.
pub const COMPRESS2: u8 = 86;
/// MCCP3: client → server compression.
pub const COMPRESS3: u8 = 87;

/// Output compression (MCCP2).
pub struct Deflater {
    stream: Compress,
}

impl std::fmt::Debug for Deflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deflater")
            .field("total_in", &self.stream.total_in())
            .finish()
    }
}

impl Default for Deflater {
    fn default() -> Self {
        Deflater::new()
    }
}

impl Deflater {
    /// A zlib (RFC 1950) stream at the default level.
    pub fn new() -> Deflater {
        Deflater {
            stream: Compress::new(Compression::default(), true),
        }
    }

    /// Compress `input` and sync-flush, appending to `out`.
    pub fn compress(&mut self, input: &[u8], out: &mut Vec<u8>) {
        self.run(input, FlushCompress::Sync, out);
    }

    /// Compress `input` and end the stream.
    pub fn finish(mut self, input: &[u8], out: &mut Vec<u8>) {
        self.run(input, FlushCompress::Finish, out);
    }

    fn run(&mut self, input: &[u8], flush: FlushCompress, out: &mut Vec<u8>) {
        let mut used = 0;
        loop {
            out.reserve(input.len() - used + 64);
            let before = self.stream.total_in();
            let status = self.stream.compress_vec(&input[used..], out, flush);
            used += (self.stream.total_in() - before) as usize;
            let room_left = out.len() < out.capacity();
            match status {
                Ok(Status::StreamEnd) | Err(_) => return,
                // All input taken and the flush fitted: done.
                Ok(_) if used == input.len() && room_left && flush != FlushCompress::Finish => {
                    return
                }
                Ok(_) => {}
            }
        }
    }
}

/// Input decompression (MCCP3).
pub struct Inflater {
    stream: Decompress,
}

impl std::fmt::Debug for Inflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inflater")
            .field("total_in", &self.stream.total_in())
            .finish()
    }
}

impl Default for Inflater {
    fn default() -> Self {
        Inflater::new()
    }
}

impl Inflater {
    pub fn new() -> Inflater {
        Inflater {
            stream: Decompress::new(true),
        }
    }
}

/// Why one bounded step of [`Inflater::inflate_into`] stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// All input used (or none could be); the stream goes on.
    InputEmpty,
    /// The output slice filled, or input is left: call again for more.
    Progress,
    /// The compressed stream ended; the rest of the input is plain.
    End,
    /// The input is not a valid zlib stream.
    Corrupt,
}

/// What one step of [`Inflater::inflate_into`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// Input bytes consumed.
    pub used: usize,
    /// Output bytes written to the front of the slice.
    pub written: usize,
    pub stop: Stop,
}

impl Inflater {
    /// Decompress from `input` into `out`, never more than it holds: the
    /// caller inflates in bounded chunks and decides how many it takes.
    pub fn inflate_into(&mut self, input: &[u8], out: &mut [u8]) -> Step {
        let before_in = self.stream.total_in();
        let before_out = self.stream.total_out();
        let status = self.stream.decompress(input, out, FlushDecompress::None);
        let used = (self.stream.total_in() - before_in) as usize;
        let written = (self.stream.total_out() - before_out) as usize;
        let stop = match status {
            Err(_) => Stop::Corrupt,
            Ok(Status::StreamEnd) => Stop::End,
            Ok(_) if used == input.len() && written < out.len() => Stop::InputEmpty,
            // zlib may hand out pending output before taking more input.
            Ok(_) if used > 0 || written > 0 => Stop::Progress,
            Ok(_) => Stop::InputEmpty,
        };
        Step {
            used,
            written,
            stop,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn each_batch_is_readable_without_the_next() {
        let mut deflater = Deflater::new();
        let mut wire = Vec::new();
        deflater.compress(b"first ", &mut wire);
        let first_len = wire.len();
        deflater.compress(b"second", &mut wire);
        // An independent decoder reads the first batch alone.
        let mut decoder = flate2::Decompress::new(true);
        let mut out = Vec::with_capacity(64);
        decoder
            .decompress_vec(&wire[..first_len], &mut out, FlushDecompress::Sync)
            .unwrap();
        assert_eq!(out, b"first ");
    }

    #[test]
    fn a_finished_stream_is_a_complete_zlib_stream() {
        let mut deflater = Deflater::new();
        let mut wire = Vec::new();
        deflater.compress(&[b'x'; 100_000], &mut wire);
        deflater.finish(b"end", &mut wire);
        let mut plain = Vec::new();
        flate2::read::ZlibDecoder::new(&wire[..])
            .read_to_end(&mut plain)
            .unwrap();
        assert_eq!(plain.len(), 100_003);
        assert!(plain.ends_with(b"xend"));
    }

    #[test]
    fn plain_bytes_after_the_stream_end_are_reported() {
        let mut wire = Vec::new();
        Deflater::new().finish(b"zipped", &mut wire);
        let zlen = wire.len();
        wire.extend_from_slice(b"plain");
        let mut out = [0u8; 64];
        let step = Inflater::new().inflate_into(&wire, &mut out);
        assert_eq!((step.used, step.stop), (zlen, Stop::End));
        assert_eq!(&out[..step.written], b"zipped");
    }

    #[test]
    fn inflating_into_a_small_slice_goes_step_by_step() {
        let mut wire = Vec::new();
        Deflater::new().finish(&[b'z'; 10_000], &mut wire);
        wire.extend_from_slice(b"plain");
        let mut inflater = Inflater::new();
        let (mut used, mut total) = (0, 0);
        let mut chunk = [0u8; 256];
        loop {
            let step = inflater.inflate_into(&wire[used..], &mut chunk);
            assert!(chunk[..step.written].iter().all(|&b| b == b'z'));
            used += step.used;
            total += step.written;
            match step.stop {
                Stop::Progress => continue,
                stop => break assert_eq!(stop, Stop::End),
            }
        }
        assert_eq!(total, 10_000);
        assert_eq!(&wire[used..], b"plain");
    }

    #[test]
    fn garbage_is_corrupt_not_a_panic() {
        let mut out = [0u8; 64];
        let step = Inflater::new().inflate_into(b"\x00\x01not zlib at all", &mut out);
        assert_eq!(step.stop, Stop::Corrupt);
    }
}
