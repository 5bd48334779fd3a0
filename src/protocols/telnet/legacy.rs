//! The first, minimal telnet parser: data vs IAC sequences, every option
//! refused. Kept only until the session worker drives the full engine
//! ([`super::Telnet`]); remove it then.
//!
//! ```
//! use portal::protocols::telnet::legacy::Telnet;
//! let mut telnet = Telnet::new();
//! let mut data = Vec::new();
//! // "hi", then IAC DO ECHO (255 253 1), then IAC IAC (a data 0xFF).
//! telnet.handle_input(&[b'h', b'i', 255, 253, 1, 255, 255], &mut data);
//! assert_eq!(data, [b'h', b'i', 255]);
//! assert_eq!(telnet.take_transmit(), [255, 252, 1]); // IAC WONT ECHO
//! ```

use super::{DO, DONT, IAC, SB, SE, WILL, WONT};

/// Where the parser is inside a command sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Data,
    Iac,
    Negotiate(u8),
    Sub,
    SubIac,
}

/// Telnet byte-stream state for one connection.
#[derive(Debug)]
pub struct Telnet {
    state: State,
    transmit: Vec<u8>,
    /// Subnegotiation bytes seen (discarded: no option is enabled).
    sub_len: usize,
}

impl Default for Telnet {
    fn default() -> Self {
        Telnet::new()
    }
}

impl Telnet {
    pub fn new() -> Telnet {
        Telnet {
            state: State::Data,
            transmit: Vec::new(),
            sub_len: 0,
        }
    }

    /// Consume bytes from the peer; plain data is appended to `data`.
    pub fn handle_input(&mut self, input: &[u8], data: &mut Vec<u8>) {
        for &byte in input {
            self.state = self.step(byte, data);
        }
    }

    /// Replies to send to the peer, in order.
    pub fn take_transmit(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.transmit)
    }

    fn step(&mut self, byte: u8, data: &mut Vec<u8>) -> State {
        match (self.state, byte) {
            (State::Data, IAC) => State::Iac,
            (State::Data, _) => {
                data.push(byte);
                State::Data
            }
            (State::Iac, IAC) => {
                data.push(IAC);
                State::Data
            }
            (State::Iac, WILL | WONT | DO | DONT) => State::Negotiate(byte),
            (State::Iac, SB) => {
                self.sub_len = 0;
                State::Sub
            }
            // NOP, GA, AYT, an unknown command: nothing to do.
            (State::Iac, _) => State::Data,
            (State::Negotiate(verb), option) => {
                self.refuse(verb, option);
                State::Data
            }
            (State::Sub, IAC) => State::SubIac,
            (State::Sub, _) => {
                self.sub_len += 1;
                State::Sub
            }
            (State::SubIac, SE) => State::Data,
            (State::SubIac, _) => State::Sub,
        }
    }

    /// Every option is off on both sides: a request to turn one on is
    /// refused, a notice that one is off needs no answer (RFC 1143: never
    /// acknowledge a state we are already in).
    fn refuse(&mut self, verb: u8, option: u8) {
        let reply = match verb {
            WILL => DONT,
            DO => WONT,
            _ => return,
        };
        self.transmit.extend_from_slice(&[IAC, reply, option]);
    }
}

/// Turn game text into telnet bytes: line breaks become CR LF and a data
/// 0xFF is doubled so it cannot start a command.
pub fn encode_text(text: &str, out: &mut Vec<u8>) {
    let mut previous = 0u8;
    for &byte in text.as_bytes() {
        match byte {
            b'\n' if previous != b'\r' => out.extend_from_slice(b"\r\n"),
            IAC => out.extend_from_slice(&[IAC, IAC]),
            _ => out.push(byte),
        }
        previous = byte;
    }
}

#[cfg(test)]
mod tests {
    use super::super::NOP;
    use super::*;
    use proptest::prelude::*;

    fn parse(input: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let mut telnet = Telnet::new();
        let mut data = Vec::new();
        telnet.handle_input(input, &mut data);
        (data, telnet.take_transmit())
    }

    #[test]
    fn plain_text_passes_through() {
        assert_eq!(parse(b"look\r\n"), (b"look\r\n".to_vec(), vec![]));
    }

    #[test]
    fn will_is_refused_with_dont_and_do_with_wont() {
        let (data, replies) = parse(&[IAC, WILL, 31, IAC, DO, 3]);
        assert!(data.is_empty());
        assert_eq!(replies, [IAC, DONT, 31, IAC, WONT, 3]);
    }

    #[test]
    fn wont_and_dont_are_not_answered() {
        assert_eq!(parse(&[IAC, WONT, 1, IAC, DONT, 1]), (vec![], vec![]));
    }

    #[test]
    fn subnegotiation_is_consumed() {
        let (data, _) = parse(&[b'a', IAC, SB, 24, 0, b'x', IAC, IAC, IAC, SE, b'b']);
        assert_eq!(data, b"ab");
    }

    #[test]
    fn nop_and_unknown_commands_vanish() {
        assert_eq!(parse(&[b'a', IAC, NOP, b'b', IAC, 17, b'c']).0, b"abc");
    }

    #[test]
    fn lone_iac_at_a_packet_edge_waits_for_the_next_byte() {
        let mut telnet = Telnet::new();
        let mut data = Vec::new();
        telnet.handle_input(b"x\xff", &mut data);
        telnet.handle_input(b"\xffy", &mut data);
        assert_eq!(data, b"x\xffy");
    }

    #[test]
    fn encode_text_uses_crlf_and_escapes_iac() {
        let mut out = Vec::new();
        encode_text("a\nb\r\nc", &mut out);
        assert_eq!(out, b"a\r\nb\r\nc");
        let mut out = Vec::new();
        encode_text("\u{ff}", &mut out);
        assert_eq!(out, "\u{ff}".as_bytes(), "UTF-8 never contains a raw 0xFF");
    }

    proptest! {
        #[test]
        fn splitting_input_gives_the_same_data_and_replies(
            input in proptest::collection::vec(any::<u8>(), 0..200),
            cut in 0usize..200,
        ) {
            let whole = parse(&input);
            let cut = cut.min(input.len());
            let mut telnet = Telnet::new();
            let mut data = Vec::new();
            telnet.handle_input(&input[..cut], &mut data);
            telnet.handle_input(&input[cut..], &mut data);
            prop_assert_eq!((data, telnet.take_transmit()), whole);
        }

        #[test]
        fn data_never_contains_a_command_byte_it_was_not_sent_as_data(
            input in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            let (data, _) = parse(&input);
            let escaped = input.windows(2).filter(|w| w == &[IAC, IAC]).count();
            prop_assert!(data.iter().filter(|&&b| b == IAC).count() <= escaped);
        }
    }
}
