//! `gmcp.mudstandards.org` (mudstandards.org's websocket proposal): ANSI
//! text in BINARY frames both ways; TEXT frames carry one GMCP message
//! each, `Package.Name <json>`, named and mapped as on telnet
//! ([`crate::protocols::telnet::gmcp`]). The window size travels as
//! `Core.Hello {"screenwidth": 100, "screenheight": 30}` ([`super::screen`]).
//!
//! ```
//! use portal::protocols::websocket::format::{Format, Frame, Incoming};
//! let got = Format::GmcpStandard.decode(&Frame::Text("Core.Ping".into()), &|_| true);
//! assert!(matches!(&got[0], Incoming::Command(c) if c.name == "ping"));
//! ```

use super::format::{lines, Frame, Incoming};
use super::screen;
use crate::protocols::telnet::gmcp;
use crate::wire::message::Command;

/// The subprotocol name.
pub const SUBPROTOCOL: &str = "gmcp.mudstandards.org";

/// BINARY: typed lines; TEXT: a GMCP message.
pub fn decode(frame: &Frame) -> Vec<Incoming> {
    match frame {
        Frame::Binary(bytes) => lines(bytes),
        Frame::Text(text) if text.trim().is_empty() => {
            vec![Incoming::Bad("an empty GMCP message".into())]
        }
        Frame::Text(text) => screen::split(gmcp::decode(text.as_bytes())),
    }
}

/// A command as a GMCP TEXT frame.
pub fn encode_oob(command: &Command) -> Frame {
    Frame::Text(String::from_utf8_lossy(&gmcp::encode(command)).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::value::Value;

    #[test]
    fn gmcp_text_frames_round_trip_with_evennia_names() {
        let got = decode(&Frame::Text("Char.Vitals {\"hp\": 5}".into()));
        let Incoming::Command(command) = &got[0] else {
            panic!("{got:?}")
        };
        assert_eq!(command.name, "char_vitals");
        assert_eq!(command.kwargs["hp"], Value::Int(5));
        assert_eq!(
            encode_oob(command),
            Frame::Text("Char.Vitals {\"hp\": 5}".into())
        );
    }

    #[test]
    fn binary_frames_are_typed_lines() {
        assert_eq!(
            decode(&Frame::Binary(b"say hi".to_vec())),
            vec![Incoming::Line("say hi".into())]
        );
    }
}
