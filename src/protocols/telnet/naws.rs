//! NAWS, RFC 1073: the client reports its window size.
//!
//! After IAC WILL NAWS the client sends `IAC SB NAWS w1 w0 h1 h0 IAC SE`
//! (16-bit big-endian width and height, 255 doubled on the wire) and again
//! on every resize. Zero means "unknown" and is ignored.
//!
//! ```
//! use portal::protocols::telnet::naws::parse;
//! assert_eq!(parse(&[0, 120, 0, 40]), Some((120, 40)));
//! assert_eq!(parse(&[0, 120]), None);
//! ```

/// Telnet option number.
pub const NAWS: u8 = 31;

/// Width and height from a NAWS body; `None` if malformed. A zero in one
/// dimension is kept as 0 for the caller to ignore.
pub fn parse(body: &[u8]) -> Option<(u16, u16)> {
    match *body {
        [w1, w0, h1, h0] => Some((u16::from_be_bytes([w1, w0]), u16::from_be_bytes([h1, h0]))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_big_endian() {
        assert_eq!(parse(&[1, 0, 0, 255]), Some((256, 255)));
    }

    #[test]
    fn wrong_length_is_malformed() {
        assert_eq!(parse(&[0, 80, 0, 24, 0]), None);
        assert_eq!(parse(&[]), None);
    }
}
