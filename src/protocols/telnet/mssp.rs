//! MSSP, the MUD Server Status Protocol (option 70): crawlers ask for a
//! table of facts about the game.
//!
//! On IAC DO MSSP the server answers
//! `IAC SB MSSP (MSSP_VAR name (MSSP_VAL value)+)+ IAC SE`. The engine
//! reports the request; the caller supplies the table (player count, uptime
//! and the like live in the game).
//!
//! ```
//! use portal::protocols::telnet::mssp::encode;
//! let table = vec![("NAME".to_string(), vec!["Demo".to_string()])];
//! assert_eq!(encode(&table), b"\xff\xfa\x46\x01NAME\x02Demo\xff\xf0");
//! ```

use super::{IAC, SB, SE};

/// Telnet option number.
pub const MSSP: u8 = 70;
pub const MSSP_VAR: u8 = 1;
pub const MSSP_VAL: u8 = 2;

/// The whole subnegotiation for a table of `(name, values)`. A name with
/// no value gets one empty value; bytes the format reserves (NUL, VAR, VAL,
/// IAC) are removed from names and values.
pub fn encode(table: &[(String, Vec<String>)]) -> Vec<u8> {
    let mut out = vec![IAC, SB, MSSP];
    for (name, values) in table {
        out.push(MSSP_VAR);
        push_clean(&mut out, name);
        if values.is_empty() {
            out.push(MSSP_VAL);
        }
        for value in values {
            out.push(MSSP_VAL);
            push_clean(&mut out, value);
        }
    }
    out.extend_from_slice(&[IAC, SE]);
    out
}

fn push_clean(out: &mut Vec<u8>, text: &str) {
    let reserved = [0, MSSP_VAR, MSSP_VAL, IAC];
    out.extend(text.bytes().filter(|b| !reserved.contains(b)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn several_values_repeat_val() {
        let table = vec![
            (
                "PORT".to_string(),
                vec!["4000".to_string(), "4001".to_string()],
            ),
            ("EMPTY".to_string(), vec![]),
        ];
        let mut want = vec![IAC, SB, MSSP, MSSP_VAR];
        want.extend_from_slice(b"PORT\x024000\x024001\x01EMPTY\x02");
        want.extend_from_slice(&[IAC, SE]);
        assert_eq!(encode(&table), want);
    }

    #[test]
    fn reserved_bytes_cannot_break_the_frame() {
        let table = vec![("A\u{1}B".to_string(), vec!["x\u{2}\u{0}y".to_string()])];
        let bytes = encode(&table);
        assert_eq!(&bytes[3..bytes.len() - 2], b"\x01AB\x02xy");
    }
}
