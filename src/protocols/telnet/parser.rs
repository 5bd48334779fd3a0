//! RFC 854 byte parser: splits a telnet stream into data bytes, commands,
//! option negotiations and subnegotiations.
//!
//! One byte in, at most one [`Token`] out, so the caller can change how the
//! following bytes are read (MCCP3 starts decompressing right after the
//! subnegotiation that announces it). No allocation except the
//! subnegotiation body, which never grows past the configured cap.
//!
//! ```
//! use portal::protocols::telnet::parser::{Parser, Token};
//! let mut parser = Parser::new(16);
//! let tokens: Vec<Token> = [b'a', 255, 250, 31, 0, 80, 0, 24, 255, 240]
//!     .iter()
//!     .filter_map(|&b| parser.push(b))
//!     .collect();
//! assert_eq!(tokens, [Token::Data(b'a'), Token::Sub(31, vec![0, 80, 0, 24])]);
//! ```

use super::{DO, DONT, IAC, SB, SE, WILL, WONT};

/// How many times the cap an oversized subnegotiation may run on before
/// the parser gives up waiting for its IAC SE and reads data again.
pub const SKIP_FACTOR: usize = 8;

/// What one byte completed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    /// An application byte (IAC IAC arrives as 0xFF).
    Data(u8),
    /// A two-byte command other than SB/SE/IAC: NOP, GA, AYT, EOR, unknown…
    Command(u8),
    /// WILL/WONT/DO/DONT and its option.
    Negotiate(u8, u8),
    /// A complete subnegotiation: option and unescaped body.
    Sub(u8, Vec<u8>),
    /// A subnegotiation that passed the size cap was dropped.
    SubDropped(u8),
}

/// Where the parser is inside a command sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
enum State {
    Data,
    Iac,
    Negotiate(u8),
    /// IAC SB seen; the next byte is the option.
    SubOption,
    Sub,
    SubIac,
    /// Over the cap: skip to IAC SE, but at most [`SKIP_FACTOR`] × cap more
    /// bytes, so an unterminated subnegotiation cannot swallow the text
    /// stream forever (only a counter is kept, never the bytes).
    Skip(usize),
    SkipIac(usize),
}

/// The byte-level telnet parser.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Parser {
    state: State,
    option: u8,
    body: Vec<u8>,
    cap: usize,
    dropped: u64,
}

impl Parser {
    /// A parser keeping subnegotiation bodies up to `cap` bytes.
    pub fn new(cap: usize) -> Parser {
        Parser {
            state: State::Data,
            option: 0,
            body: Vec::new(),
            cap,
            dropped: 0,
        }
    }

    /// Subnegotiations dropped for passing the cap so far.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// True between IAC SB and its IAC SE (or the end of a skip).
    pub fn in_subnegotiation(&self) -> bool {
        !matches!(self.state, State::Data | State::Iac | State::Negotiate(_))
    }

    /// After a thaw: the cap from the current config, and whether the
    /// carried body fits under it.
    pub(crate) fn set_cap(&mut self, cap: usize) -> bool {
        self.cap = cap;
        let skip_ok = match self.state {
            State::Skip(left) | State::SkipIac(left) => left <= cap.saturating_mul(SKIP_FACTOR),
            _ => true,
        };
        // No live session counts anywhere near this many drops.
        let counter_ok = self.dropped <= u64::MAX / 2;
        self.body.len() <= cap && skip_ok && counter_ok
    }

    /// Bytes the body buffer holds room for (tests check it stays capped).
    #[cfg(test)]
    pub(crate) fn body_capacity(&self) -> usize {
        self.body.capacity()
    }

    /// Feed one byte.
    pub fn push(&mut self, byte: u8) -> Option<Token> {
        let (next, token) = self.step(byte);
        self.state = next;
        token
    }

    fn step(&mut self, byte: u8) -> (State, Option<Token>) {
        match (self.state, byte) {
            (State::Data, IAC) => (State::Iac, None),
            (State::Data, _) => (State::Data, Some(Token::Data(byte))),
            (State::Iac, IAC) => (State::Data, Some(Token::Data(IAC))),
            (State::Iac, WILL | WONT | DO | DONT) => (State::Negotiate(byte), None),
            (State::Iac, SB) => (State::SubOption, None),
            // A stray SE outside a subnegotiation means nothing.
            (State::Iac, SE) => (State::Data, None),
            (State::Iac, _) => (State::Data, Some(Token::Command(byte))),
            (State::Negotiate(verb), option) => (State::Data, Some(Token::Negotiate(verb, option))),
            (State::SubOption, option) => {
                self.option = option;
                self.body.clear();
                (State::Sub, None)
            }
            (State::Sub, IAC) => (State::SubIac, None),
            (State::Sub, _) => self.keep(byte),
            (State::SubIac, SE) => {
                let body = std::mem::take(&mut self.body);
                (State::Data, Some(Token::Sub(self.option, body)))
            }
            (State::SubIac, IAC) => self.keep(IAC),
            // IAC <other> inside SB is malformed: keep the byte, go on.
            (State::SubIac, _) => self.keep(byte),
            (State::Skip(left), IAC) => (State::SkipIac(left), None),
            (State::Skip(left) | State::SkipIac(left), _) => {
                let ended = self.state == State::SkipIac(left) && byte == SE;
                match left.checked_sub(1) {
                    _ if ended => (State::Data, None),
                    Some(left) if left > 0 => (State::Skip(left), None),
                    _ => (State::Data, None),
                }
            }
        }
    }

    /// Add a byte to the body, or drop the subnegotiation at the cap.
    fn keep(&mut self, byte: u8) -> (State, Option<Token>) {
        if self.body.len() < self.cap {
            self.body.push(byte);
            return (State::Sub, None);
        }
        self.dropped += 1;
        self.body = Vec::new();
        let skip = self.cap.saturating_mul(SKIP_FACTOR).max(1);
        (State::Skip(skip), Some(Token::SubDropped(self.option)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(cap: usize, input: &[u8]) -> Vec<Token> {
        let mut parser = Parser::new(cap);
        input.iter().filter_map(|&b| parser.push(b)).collect()
    }

    #[test]
    fn iac_iac_is_a_data_ff() {
        assert_eq!(parse(8, &[IAC, IAC]), [Token::Data(IAC)]);
    }

    #[test]
    fn escaped_iac_inside_a_subnegotiation_is_one_ff() {
        assert_eq!(
            parse(8, &[IAC, SB, 201, 1, IAC, IAC, 2, IAC, SE]),
            [Token::Sub(201, vec![1, IAC, 2])]
        );
    }

    #[test]
    fn negotiation_and_commands_are_tokens() {
        assert_eq!(
            parse(8, &[IAC, WILL, 24, IAC, 241, IAC, 17]),
            [
                Token::Negotiate(WILL, 24),
                Token::Command(241),
                Token::Command(17)
            ]
        );
    }

    #[test]
    fn oversized_subnegotiation_is_dropped_once_and_counted() {
        let mut input = vec![IAC, SB, 201];
        input.extend_from_slice(&[b'x'; 20]);
        input.extend_from_slice(&[IAC, SE, b'k']);
        let mut parser = Parser::new(4);
        let tokens: Vec<Token> = input.iter().filter_map(|&b| parser.push(b)).collect();
        assert_eq!(tokens, [Token::SubDropped(201), Token::Data(b'k')]);
        assert_eq!(parser.dropped(), 1);
        assert!(
            parser.body.capacity() <= 4,
            "the body never grows past the cap"
        );
    }

    #[test]
    fn unterminated_subnegotiation_gives_the_stream_back_after_the_cap() {
        let mut input = vec![IAC, SB, 24];
        input.extend_from_slice(&[b'x'; 4 + 1 + 4 * SKIP_FACTOR]);
        input.extend_from_slice(b"look");
        let data: Vec<u8> = parse(4, &input)
            .into_iter()
            .filter_map(|t| match t {
                Token::Data(b) => Some(b),
                _ => None,
            })
            .collect();
        assert_eq!(data, b"look");
    }
}
