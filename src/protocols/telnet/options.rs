//! RFC 1143 "Q method" option negotiation, for both sides of every option.
//!
//! Each option has two independent sides: *us* (we WILL/WONT, the peer
//! DOes/DONTs) and *him* (the peer WILLs/WONTs, we DO/DONT). Each side is one
//! of `No`, `Yes`, `WantNo`, `WantYes`, plus a one-slot queue remembering
//! that we changed our mind while a request was in flight. The rules make
//! negotiation loop-free: a state we are already in is never acknowledged,
//! and a request is never sent twice while one is pending.
//!
//! ```
//! use portal::protocols::telnet::options::{Options, Side};
//! use portal::protocols::telnet::{DO, WILL};
//! let mut options = Options::new();
//! // We offer GMCP (201): IAC WILL 201 goes out.
//! assert_eq!(options.ask_enable(Side::Us, 201), Some(WILL));
//! // The client agrees: no reply (the option was requested), now on.
//! let outcome = options.receive(DO, 201, |_, _| false);
//! assert_eq!(outcome.reply, None);
//! assert!(options.enabled(Side::Us, 201));
//! ```

use super::{DO, DONT, WILL, WONT};

/// Which side of an option.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Side {
    /// We perform the option (WILL/WONT from us, DO/DONT from the peer).
    Us,
    /// The peer performs the option (WILL/WONT from the peer, DO/DONT from us).
    Him,
}

/// RFC 1143 state of one side of an option.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum QState {
    #[default]
    No,
    Yes,
    WantNo,
    WantYes,
}

/// One side: its state and whether the opposite request is queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
struct Q {
    state: QState,
    opposite: bool,
}

/// What a received negotiation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub side: Side,
    /// The verb to send back (WILL/WONT/DO/DONT), if any.
    pub reply: Option<u8>,
    /// The option's side changed to on (`Some(true)`) or off (`Some(false)`),
    /// or a request of ours was refused (`Some(false)` from `WantYes`).
    pub change: Option<bool>,
}

/// Option state for all 256 options. Only options ever negotiated have an
/// entry (`option`, us, him); the rest are `No` on both sides. A session
/// touches a dozen options, so this is a few dozen bytes where two full
/// tables took 1 KiB in every session; a peer naming all 256 options makes
/// it at most 256 entries.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Options {
    #[serde(deserialize_with = "crate::session::frozen::bounded_vec")]
    entries: Vec<(u8, Q, Q)>,
}

impl Options {
    pub fn new() -> Options {
        Options::default()
    }

    fn side(&mut self, side: Side, option: u8) -> &mut Q {
        let index = match self.entries.iter().position(|e| e.0 == option) {
            Some(index) => index,
            None => {
                self.entries.push((option, Q::default(), Q::default()));
                self.entries.len() - 1
            }
        };
        let entry = &mut self.entries[index];
        match side {
            Side::Us => &mut entry.1,
            Side::Him => &mut entry.2,
        }
    }

    /// The RFC 1143 state of one side.
    pub fn state(&self, side: Side, option: u8) -> QState {
        let Some(entry) = self.entries.iter().find(|e| e.0 == option) else {
            return QState::No;
        };
        match side {
            Side::Us => entry.1.state,
            Side::Him => entry.2.state,
        }
    }

    /// Whether one side is on.
    pub fn enabled(&self, side: Side, option: u8) -> bool {
        self.state(side, option) == QState::Yes
    }

    /// Whether a request of ours on this side is still unanswered.
    pub fn pending(&self, side: Side, option: u8) -> bool {
        matches!(self.state(side, option), QState::WantYes | QState::WantNo)
    }

    /// We want the side on: returns the verb to send (WILL or DO), if any.
    pub fn ask_enable(&mut self, side: Side, option: u8) -> Option<u8> {
        let q = self.side(side, option);
        match (q.state, q.opposite) {
            (QState::No, _) => {
                q.state = QState::WantYes;
                Some(enable_verb(side))
            }
            (QState::WantNo, false) => {
                q.opposite = true;
                None
            }
            (QState::WantYes, true) => {
                q.opposite = false;
                None
            }
            _ => None,
        }
    }

    /// We want the side off: returns the verb to send (WONT or DONT), if any.
    pub fn ask_disable(&mut self, side: Side, option: u8) -> Option<u8> {
        let q = self.side(side, option);
        match (q.state, q.opposite) {
            (QState::Yes, _) => {
                q.state = QState::WantNo;
                Some(disable_verb(side))
            }
            (QState::WantNo, true) => {
                q.opposite = false;
                None
            }
            (QState::WantYes, false) => {
                q.opposite = true;
                None
            }
            _ => None,
        }
    }

    /// Apply a received WILL/WONT/DO/DONT. `accept(side, option)` is asked
    /// only when the peer proposes an option we did not request.
    pub fn receive(
        &mut self,
        verb: u8,
        option: u8,
        accept: impl FnOnce(Side, u8) -> bool,
    ) -> Outcome {
        let (side, wants_on) = match verb {
            WILL => (Side::Him, true),
            WONT => (Side::Him, false),
            DO => (Side::Us, true),
            _ => (Side::Us, false),
        };
        let (reply, change) = if wants_on {
            self.receive_on(side, option, accept)
        } else {
            self.receive_off(side, option)
        };
        Outcome {
            side,
            reply,
            change,
        }
    }

    fn receive_on(
        &mut self,
        side: Side,
        option: u8,
        accept: impl FnOnce(Side, u8) -> bool,
    ) -> (Option<u8>, Option<bool>) {
        let q = *self.side(side, option);
        let (next, reply, change) = match (q.state, q.opposite) {
            (QState::No, _) if accept(side, option) => {
                (QState::Yes, Some(enable_verb(side)), Some(true))
            }
            (QState::No, _) => (QState::No, Some(disable_verb(side)), None),
            (QState::Yes, _) => (QState::Yes, None, None),
            // The peer answered our "off" with "on": a protocol error, and
            // the RFC says to take it as off.
            (QState::WantNo, false) => (QState::No, None, Some(false)),
            (QState::WantNo, true) => (QState::Yes, None, Some(true)),
            (QState::WantYes, false) => (QState::Yes, None, Some(true)),
            // On now, but we changed our mind meanwhile: ask for off.
            (QState::WantYes, true) => (QState::WantNo, Some(disable_verb(side)), Some(true)),
        };
        *self.side(side, option) = Q {
            state: next,
            opposite: false,
        };
        (reply, change)
    }

    fn receive_off(&mut self, side: Side, option: u8) -> (Option<u8>, Option<bool>) {
        let q = *self.side(side, option);
        let (next, reply, change) = match (q.state, q.opposite) {
            (QState::No, _) => (QState::No, None, None),
            (QState::Yes, _) => (QState::No, Some(disable_verb(side)), Some(false)),
            (QState::WantNo, false) => (QState::No, None, Some(false)),
            // Off now, but we want it on again.
            (QState::WantNo, true) => (QState::WantYes, Some(enable_verb(side)), Some(false)),
            (QState::WantYes, _) => (QState::No, None, Some(false)),
        };
        *self.side(side, option) = Q {
            state: next,
            opposite: false,
        };
        (reply, change)
    }
}

fn enable_verb(side: Side) -> u8 {
    match side {
        Side::Us => WILL,
        Side::Him => DO,
    }
}

fn disable_verb(side: Side) -> u8 {
    match side {
        Side::Us => WONT,
        Side::Him => DONT,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unrequested_will_is_accepted_or_refused_by_policy() {
        let mut options = Options::new();
        let yes = options.receive(WILL, 31, |_, _| true);
        assert_eq!((yes.reply, yes.change), (Some(DO), Some(true)));
        let no = options.receive(WILL, 99, |_, _| false);
        assert_eq!((no.reply, no.change), (Some(DONT), None));
    }

    #[test]
    fn a_state_already_held_is_never_acknowledged() {
        let mut options = Options::new();
        options.receive(WILL, 31, |_, _| true);
        let again = options.receive(WILL, 31, |_, _| true);
        assert_eq!((again.reply, again.change), (None, None));
        let off = options.receive(WONT, 5, |_, _| true);
        assert_eq!((off.reply, off.change), (None, None));
        let dont = options.receive(DONT, 5, |_, _| true);
        assert_eq!(dont.reply, None);
    }

    #[test]
    fn a_pending_request_is_not_sent_twice() {
        let mut options = Options::new();
        assert_eq!(options.ask_enable(Side::Him, 24), Some(DO));
        assert_eq!(options.ask_enable(Side::Him, 24), None);
        assert!(options.pending(Side::Him, 24));
    }

    #[test]
    fn refusal_of_our_request_turns_the_side_off_without_reply() {
        let mut options = Options::new();
        options.ask_enable(Side::Us, 86);
        let out = options.receive(DONT, 86, |_, _| true);
        assert_eq!((out.reply, out.change), (None, Some(false)));
        assert_eq!(options.state(Side::Us, 86), QState::No);
    }

    #[test]
    fn changing_our_mind_while_pending_is_queued() {
        let mut options = Options::new();
        options.ask_enable(Side::Us, 1);
        assert_eq!(options.ask_disable(Side::Us, 1), None);
        // The peer agrees to the first request; we immediately ask for off.
        let out = options.receive(DO, 1, |_, _| true);
        assert_eq!(out.reply, Some(WONT));
        assert_eq!(options.state(Side::Us, 1), QState::WantNo);
        let out = options.receive(DONT, 1, |_, _| true);
        assert_eq!(out.reply, None);
        assert_eq!(options.state(Side::Us, 1), QState::No);
    }

    /// Two engines that both accept everything and both start by asking:
    /// their exchange must stop.
    #[test]
    fn two_eager_peers_stop_negotiating() {
        let mut a = Options::new();
        let mut b = Options::new();
        // Messages in flight: (to_b, verb, option).
        let mut wire: std::collections::VecDeque<(bool, u8)> = Default::default();
        for option in [1u8, 3, 24] {
            if let Some(v) = a.ask_enable(Side::Us, option) {
                wire.push_back((true, v));
            }
            if let Some(v) = a.ask_enable(Side::Him, option) {
                wire.push_back((true, v));
            }
            if let Some(v) = b.ask_enable(Side::Us, option) {
                wire.push_back((false, v));
            }
            if let Some(v) = b.ask_enable(Side::Him, option) {
                wire.push_back((false, v));
            }
        }
        let options = [1u8, 3, 24];
        let mut turns = 0;
        let mut queue: std::collections::VecDeque<(bool, u8, u8)> = wire
            .into_iter()
            .enumerate()
            .map(|(i, (to_b, v))| (to_b, v, options[(i / 4) % 3]))
            .collect();
        while let Some((to_b, verb, option)) = queue.pop_front() {
            turns += 1;
            assert!(turns < 100, "negotiation loops");
            let peer = if to_b { &mut b } else { &mut a };
            if let Some(reply) = peer.receive(verb, option, |_, _| true).reply {
                queue.push_back((!to_b, reply, option));
            }
        }
        for option in options {
            assert!(a.enabled(Side::Us, option) && b.enabled(Side::Him, option));
            assert!(a.enabled(Side::Him, option) && b.enabled(Side::Us, option));
        }
    }
}
