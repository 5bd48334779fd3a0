//! The dummyrunner's side of telnet (RFC 854): a client that refuses every
//! option, skips subnegotiations, and hands back text lines with ANSI
//! escapes stripped.
//!
//! Sans-IO: [`LineReader::receive`] takes bytes as they came off the socket
//! and returns the negotiation replies to send; finished lines are taken
//! with [`LineReader::next_line`].
//!
//! ```
//! use portal::dummyrunner::telnet::LineReader;
//! let mut reader = LineReader::new(1024);
//! // IAC DO NAWS, then "hi\r\n" in red.
//! let reply = reader.receive(b"\xff\xfd\x1f\x1b[31mhi\x1b[0m\r\n");
//! assert_eq!(reply, b"\xff\xfc\x1f"); // IAC WONT NAWS
//! assert_eq!(reader.next_line().as_deref(), Some("hi"));
//! ```

use std::collections::VecDeque;

use crate::protocols::telnet::{DO, DONT, IAC, SB, SE, WILL, WONT};
const ESC: u8 = 0x1b;

/// Where the byte parser is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Text,
    Iac,
    /// After WILL/WONT/DO/DONT: the option byte comes next.
    Option(u8),
    Sub,
    SubIac,
    /// After ESC: `[` starts a CSI sequence, anything else ends it.
    Escape,
    /// Inside `ESC [ ...` until a final byte (0x40..=0x7e).
    Csi,
    /// After `ESC (` or `ESC )`: one charset byte follows.
    Charset,
}

/// Telnet bytes in, refusals and text lines out.
#[derive(Debug)]
pub struct LineReader {
    state: State,
    partial: Vec<u8>,
    lines: VecDeque<String>,
    max_line: usize,
}

impl LineReader {
    /// A reader that cuts lines longer than `max_line` bytes into pieces.
    pub fn new(max_line: usize) -> LineReader {
        LineReader {
            state: State::Text,
            partial: Vec::new(),
            lines: VecDeque::new(),
            max_line: max_line.max(1),
        }
    }

    /// Feed received bytes; returns the negotiation replies to send (empty
    /// most of the time).
    pub fn receive(&mut self, bytes: &[u8]) -> Vec<u8> {
        let mut reply = Vec::new();
        for &byte in bytes {
            self.state = self.step(byte, &mut reply);
        }
        reply
    }

    fn step(&mut self, byte: u8, reply: &mut Vec<u8>) -> State {
        match (self.state, byte) {
            (State::Text, IAC) => State::Iac,
            (State::Text, ESC) => State::Escape,
            (State::Text, b'\n') => {
                self.end_line();
                State::Text
            }
            (State::Text, b'\r' | 0) => State::Text,
            (State::Text, b) => {
                self.push(b);
                State::Text
            }
            (State::Iac, IAC) => {
                self.push(IAC);
                State::Text
            }
            (State::Iac, WILL | WONT | DO | DONT) => State::Option(byte),
            (State::Iac, SB) => State::Sub,
            // NOP, GA, EOR and the other two-byte commands carry nothing.
            (State::Iac, _) => State::Text,
            (State::Option(verb), option) => {
                // Refuse what is offered or asked; a refusal needs no answer.
                match verb {
                    WILL => reply.extend_from_slice(&[IAC, DONT, option]),
                    DO => reply.extend_from_slice(&[IAC, WONT, option]),
                    _ => {}
                }
                State::Text
            }
            (State::Sub, IAC) => State::SubIac,
            (State::Sub, _) => State::Sub,
            (State::SubIac, SE) => State::Text,
            (State::SubIac, _) => State::Sub,
            (State::Escape, b'[') => State::Csi,
            (State::Escape, b'(' | b')') => State::Charset,
            (State::Charset, _) => State::Text,
            (State::Escape, _) => State::Text,
            (State::Csi, 0x40..=0x7e) => State::Text,
            (State::Csi, IAC) => State::Iac,
            (State::Csi, _) => State::Csi,
        }
    }

    fn push(&mut self, byte: u8) {
        self.partial.push(byte);
        if self.partial.len() >= self.max_line {
            self.end_line();
        }
    }

    fn end_line(&mut self) {
        let line = String::from_utf8_lossy(&self.partial).into_owned();
        self.partial.clear();
        self.lines.push_back(line);
    }

    /// The next complete line, without its line ending.
    pub fn next_line(&mut self) -> Option<String> {
        self.lines.pop_front()
    }

    /// The text after the last line ending (a prompt, usually).
    pub fn pending(&self) -> String {
        String::from_utf8_lossy(&self.partial).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(reader: &mut LineReader) -> Vec<String> {
        std::iter::from_fn(|| reader.next_line()).collect()
    }

    #[test]
    fn every_offer_is_refused_and_refusals_are_not_answered() {
        let mut r = LineReader::new(100);
        let reply = r.receive(&[IAC, WILL, 1, IAC, DO, 24, IAC, WONT, 3, IAC, DONT, 31]);
        assert_eq!(reply, vec![IAC, DONT, 1, IAC, WONT, 24]);
        assert!(lines(&mut r).is_empty());
        assert_eq!(r.pending(), "");
    }

    #[test]
    fn subnegotiations_are_skipped_even_with_escaped_iac_inside() {
        let mut r = LineReader::new(100);
        let reply = r.receive(b"a\xff\xfa\x18\x01\xff\xff\xff\xf0b\n");
        assert!(reply.is_empty());
        assert_eq!(lines(&mut r), vec!["ab"]);
    }

    #[test]
    fn doubled_iac_is_a_data_byte_and_ga_is_ignored() {
        let mut r = LineReader::new(100);
        r.receive(b"HP 10/10 > \xff\xf9");
        assert_eq!(r.pending(), "HP 10/10 > ");
        r.receive(b"x\xff\xffy\r\n");
        assert_eq!(lines(&mut r), vec!["HP 10/10 > x\u{fffd}y"]);
    }

    #[test]
    fn ansi_escapes_are_stripped() {
        let mut r = LineReader::new(100);
        r.receive(b"\x1b[1;32mThe Portal Plaza\x1b[0m\r\n\x1b(Bplain\n");
        assert_eq!(lines(&mut r), vec!["The Portal Plaza", "plain"]);
    }

    #[test]
    fn long_lines_are_cut_not_grown() {
        let mut r = LineReader::new(4);
        r.receive(b"abcdefghij\n");
        assert_eq!(lines(&mut r), vec!["abcd", "efgh", "ij"]);
    }

    #[test]
    fn split_at_every_byte_boundary_gives_the_same_result() {
        let input: &[u8] =
            b"\xff\xfb\x01welcome\x1b[31m!\x1b[0m\r\n\xff\xfa\x18\x01\xff\xf0HP > \xff\xf9echo 1\n";
        let mut whole = LineReader::new(100);
        let whole_reply = whole.receive(input);
        let whole_lines = lines(&mut whole);
        for cut in 0..=input.len() {
            let mut r = LineReader::new(100);
            let mut reply = r.receive(&input[..cut]);
            reply.extend(r.receive(&input[cut..]));
            assert_eq!(reply, whole_reply, "cut at {cut}");
            assert_eq!(lines(&mut r), whole_lines, "cut at {cut}");
        }
        assert_eq!(whole_lines, vec!["welcome!", "HP > echo 1"]);
    }
}
