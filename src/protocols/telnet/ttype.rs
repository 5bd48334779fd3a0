//! TTYPE, RFC 1091, with the MUD Terminal Type Standard (MTTS) cycle.
//!
//! After IAC WILL TTYPE the server asks `IAC SB TTYPE SEND IAC SE` and the
//! client answers `IAC SB TTYPE IS <name> IAC SE`. MTTS gives the answers a
//! meaning by round: 1st the client name, 2nd the terminal type, 3rd
//! `MTTS <n>`, a bit set of capabilities. A client without MTTS repeats its
//! last answer, which ends the cycle; it never takes more than three rounds.
//! Like Evennia, well-known client names imply colour support.
//!
//! ```
//! use portal::protocols::telnet::ttype::{Ttype, Step};
//! use portal::wire::flags::ProtocolFlags;
//! let mut ttype = Ttype::new();
//! let mut flags = ProtocolFlags::default();
//! assert_eq!(ttype.receive(b"\x00Mudlet", &mut flags), Step::AskAgain);
//! assert_eq!(ttype.receive(b"\x00XTERM-256COLOR", &mut flags), Step::AskAgain);
//! assert_eq!(ttype.receive(b"\x00MTTS 2317", &mut flags), Step::Done);
//! assert_eq!(flags.clientname.as_deref(), Some("MUDLET"));
//! assert_eq!(flags.truecolor, Some(true));
//! ```

use super::{IAC, SB, SE};
use crate::wire::flags::{Flag, ProtocolFlags};
use crate::wire::value::Value;

/// Telnet option number.
pub const TTYPE: u8 = 24;
pub const IS: u8 = 0;
pub const SEND: u8 = 1;

/// `IAC SB TTYPE SEND IAC SE`.
pub const REQUEST: [u8; 6] = [IAC, SB, TTYPE, SEND, IAC, SE];

/// MTTS bits and the protocol flag each sets (Evennia's names).
pub const MTTS_BITS: [(u32, Flag); 12] = [
    (1, Flag::Ansi),
    (2, Flag::Vt100),
    (4, Flag::Utf8),
    (8, Flag::Xterm256),
    (16, Flag::MouseTracking),
    (32, Flag::OscColorPalette),
    (64, Flag::Screenreader),
    (128, Flag::Proxy),
    (256, Flag::Truecolor),
    (512, Flag::Mnes),
    (1024, Flag::Mslp),
    (2048, Flag::Ssl),
];

/// Clients that have shown xterm 256 colours for many years.
const XTERM256_CLIENTS: [&str; 9] = [
    "ATLANTIS",
    "CMUD",
    "KILDCLIENT",
    "MUDLET",
    "MUSHCLIENT",
    "PUTTY",
    "BEIP",
    "POTATO",
    "TINYFUGUE",
];

/// Clients known to render 24-bit colour.
const TRUECOLOR_CLIENTS: [&str; 2] = ["AXMUD", "TINTIN"];

/// What the engine should do after an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Send [`REQUEST`] again.
    AskAgain,
    /// The cycle is over (`TTYPE` flag set).
    Done,
    /// Not an IS answer: nothing to do (never answered, so two servers
    /// talking to each other cannot loop).
    Ignored,
}

/// Where the TTYPE cycle is.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Ttype {
    round: u8,
    last: Option<String>,
    done: bool,
}

impl Ttype {
    pub fn new() -> Ttype {
        Ttype::default()
    }

    /// Bytes of the last answer kept (bounded on a thaw).
    pub(crate) fn held_bytes(&self) -> usize {
        self.last.as_ref().map_or(0, String::len)
    }

    /// Whether this is a state the cycle can be in (a thawed one is
    /// checked): an unfinished cycle is never past its third round.
    pub(crate) fn is_valid(&self) -> bool {
        self.done || self.round < 3
    }

    /// True once the cycle has ended.
    pub fn done(&self) -> bool {
        self.done
    }

    /// End the cycle without more answers (the client refused TTYPE, or
    /// the negotiation deadline passed).
    pub fn finish(&mut self) {
        self.done = true;
    }

    /// Apply one `IS` answer to `flags`.
    pub fn receive(&mut self, body: &[u8], flags: &mut ProtocolFlags) -> Step {
        if self.done {
            return Step::Done;
        }
        let Some((&IS, name)) = body.split_first() else {
            return Step::Ignored;
        };
        let name = String::from_utf8_lossy(name).trim().to_owned();
        let repeated = self
            .last
            .as_deref()
            .is_some_and(|last| last.eq_ignore_ascii_case(&name));
        self.round += 1;
        if repeated {
            return self.end(flags);
        }
        match self.round {
            1 => apply_client_name(&name, flags),
            2 => apply_terminal_type(&name, flags),
            _ => {
                apply_mtts(&name, flags);
                return self.end(flags);
            }
        }
        self.last = Some(name);
        Step::AskAgain
    }

    fn end(&mut self, flags: &mut ProtocolFlags) -> Step {
        self.done = true;
        flags.ttype = Some(true);
        Step::Done
    }
}

/// Round 1: the client's name, and what Evennia infers from it.
fn apply_client_name(name: &str, flags: &mut ProtocolFlags) {
    let upper = name.to_uppercase();
    let (client, version) = match upper.split_once(' ') {
        Some((client, version)) => (client.to_owned(), version.trim().to_owned()),
        None => (upper.clone(), String::new()),
    };
    let xterm256 = upper.starts_with("XTERM")
        || upper.ends_with("-256COLOR")
        || XTERM256_CLIENTS.contains(&client.as_str());
    let truecolor = upper.ends_with("-TRUECOLOR")
        || TRUECOLOR_CLIENTS.contains(&client.as_str())
        || client.starts_with("TINTIN");
    if client == "MUDLET" {
        // Mudlet's prompt triggers want a GA after a prompt even when it
        // suppresses go-ahead elsewhere (as Evennia notes).
        flags.nopromptgoahead = Some(false);
    }
    flags.ansi = Some(true);
    flags.xterm256 = Some(xterm256);
    flags.truecolor = Some(truecolor);
    flags.clientname = Some(client.into());
    if !version.is_empty() {
        flags.clientversion = Some(version.into());
    }
}

/// Round 2: the terminal type.
fn apply_terminal_type(term: &str, flags: &mut ProtocolFlags) {
    let upper = term.to_uppercase();
    let xterm256 =
        upper.ends_with("-256COLOR") || (upper.ends_with("XTERM") && !upper.ends_with("-COLOR"));
    if xterm256 {
        flags.ansi = Some(true);
        flags.xterm256 = Some(true);
    }
    if upper.ends_with("-TRUECOLOR") {
        flags.truecolor = Some(true);
    }
    flags.term = Some(term.to_owned().into());
}

/// Round 3: `MTTS <bits>`.
pub fn apply_mtts(answer: &str, flags: &mut ProtocolFlags) {
    let Some(rest) = answer.strip_prefix("MTTS").map(str::trim) else {
        return;
    };
    match rest.parse::<u32>() {
        Ok(bits) => {
            for (bit, flag) in MTTS_BITS {
                if bits & bit != 0 {
                    flags.set_on(flag, true);
                }
            }
            // A client that reports its abilities and leaves out UTF-8
            // gets the fallback encoding.
            flags.utf8 = Some(bits & 4 != 0);
        }
        // Some clients send a word instead of a number: take it as a flag.
        Err(_) if !rest.is_empty() => flags.insert(rest.to_uppercase(), Value::Bool(true)),
        Err(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flag(flags: &ProtocolFlags, name: &str) -> bool {
        flags.get(name).is_some_and(|v| v.is_truthy())
    }

    #[test]
    fn a_client_repeating_its_name_ends_the_cycle_early() {
        let mut ttype = Ttype::new();
        let mut flags = ProtocolFlags::default();
        assert_eq!(ttype.receive(b"\x00ANSI", &mut flags), Step::AskAgain);
        assert_eq!(ttype.receive(b"\x00ANSI", &mut flags), Step::Done);
        assert!(flag(&flags, "TTYPE"));
        assert!(!flags.to_map().contains_key("TERM"));
    }

    #[test]
    fn mtts_bits_become_flags() {
        let mut flags = ProtocolFlags::default();
        apply_mtts("MTTS 69", &mut flags);
        assert!(flag(&flags, "ANSI") && flag(&flags, "UTF-8") && flag(&flags, "SCREENREADER"));
        assert!(!flag(&flags, "XTERM256"));
    }

    #[test]
    fn known_clients_get_xterm256() {
        for name in ["MUSHclient", "CMUD", "Potato", "xterm"] {
            let mut flags = ProtocolFlags::default();
            apply_client_name(name, &mut flags);
            assert!(flag(&flags, "XTERM256"), "{name}");
        }
        let mut flags = ProtocolFlags::default();
        apply_client_name("TinTin++", &mut flags);
        assert!(flag(&flags, "TRUECOLOR"));
    }

    #[test]
    fn a_version_after_the_name_is_kept() {
        let mut flags = ProtocolFlags::default();
        apply_client_name("Mudlet 4.17.2", &mut flags);
        assert_eq!(flags.to_map()["CLIENTNAME"], Value::from("MUDLET"));
        assert_eq!(flags.to_map()["CLIENTVERSION"], Value::from("4.17.2"));
        assert!(flag(&flags, "XTERM256"));
    }

    #[test]
    fn never_more_than_three_rounds() {
        let mut ttype = Ttype::new();
        let mut flags = ProtocolFlags::default();
        ttype.receive(b"\x00A", &mut flags);
        ttype.receive(b"\x00B", &mut flags);
        assert_eq!(ttype.receive(b"\x00C", &mut flags), Step::Done);
        assert_eq!(ttype.receive(b"\x00D", &mut flags), Step::Done);
    }
}
