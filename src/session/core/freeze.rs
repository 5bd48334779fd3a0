//! A session core as bytes, for `portal upgrade`: the running portal execs
//! a new binary and hands each session over; this is the session's part.
//!
//! The bytes are [`CORE_STATE_VERSION`] then the core in postcard (serde
//! derives through the core and its engines; instants as offsets from the
//! `now` of the freeze, see [`crate::session::frozen`]). What is not in
//! them: the config (the new process's own is given to [`Core::thaw`], and
//! the engines' settings are rebuilt from it, so new keys apply), and the
//! zlib streams. MCCP2 output is ended by [`Core::prepare_freeze`] (its
//! end-of-stream bytes are queued in [`Core::transmit`] for the caller to
//! write out before it freezes) and begun anew after a thaw or an aborted
//! upgrade: the client sees one stream end, plain `IAC SB COMPRESS2 IAC
//! SE`, then a fresh stream. An SSH session's terminal engine (line
//! editor, history, prompt, flags) is carried like the others; its SSH
//! connection goes beside the core ([`crate::ssh::SshTransport::freeze`]).
//! An MCCP3 input stream, an AJAX request in flight or a websocket
//! mid-close cannot be carried:
//! [`Core::uncarriable`] says so and the caller closes that session.
//!
//! A thaw trusts nothing: the input is capped at [`MAX_STATE_BYTES`],
//! every queue is bounded in length while it is decoded, and every buffer
//! is checked afterwards against the current config's limits, so a corrupt
//! or hostile state cannot make a session bigger than a live one can be.
//! The lead's upgrade orchestration (worker, hand-over file) is the caller.

use super::{Core, CoreEvent, Direction};
use crate::config::Config;
use crate::protocols::websocket::format::Format;
use crate::session::frozen;
use crate::session::protocol::Protocol;
use crate::session::worker::{telnet_settings, web_settings};
use crate::wire::message::Command;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::time::Instant;

/// The first byte of a frozen core; bumped whenever the encoding changes.
pub const CORE_STATE_VERSION: u8 = 1;

/// The largest frozen core [`Core::thaw`] reads under the default config:
/// above the output buffer (1 MiB by default) plus a websocket message and
/// a line, with room. A larger `limits.output_buffer_bytes` raises it
/// ([`max_state_bytes`]).
pub const MAX_STATE_BYTES: usize = 4 << 20;

/// The largest frozen core [`Core::thaw`] reads under `config`: the
/// output buffer twice over plus 2 MiB (a websocket message, a line, the
/// rest of the state), at least [`MAX_STATE_BYTES`]. Decoding allocates
/// in proportion to the input (a small multiple: one byte of input may
/// stand for an empty string or value in a list), so this also bounds
/// what a hostile state can cost while it is refused.
pub fn max_state_bytes(config: &Config) -> usize {
    let output = config.limits.output_buffer_bytes;
    output
        .saturating_mul(2)
        .saturating_add(2 << 20)
        .max(MAX_STATE_BYTES)
}

/// Why [`Core::freeze`] gave no bytes: the session cannot be carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FreezeError(pub String);

impl fmt::Display for FreezeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "session state cannot be carried: {}", self.0)
    }
}

impl std::error::Error for FreezeError {}

/// Why [`Core::thaw`] refused some bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ThawError {
    /// No bytes at all.
    Empty,
    /// More bytes (first) than [`max_state_bytes`] allows (second).
    TooLarge(usize, usize),
    /// Another format version than [`CORE_STATE_VERSION`].
    Version(u8),
    /// The bytes do not decode (truncated, corrupt, trailing bytes).
    Decode(String),
    /// Decoded, but not a state a live session can be in under this
    /// config (a buffer past a limit, a protocol for another direction).
    Invalid(&'static str),
    /// The engine's settings could not be made (no randomness for a
    /// browser id).
    Settings(String),
}

impl fmt::Display for ThawError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ThawError::Empty => write!(f, "no session state"),
            ThawError::TooLarge(n, max) => {
                write!(f, "session state of {n} bytes is over the {max} allowed")
            }
            ThawError::Version(v) => write!(
                f,
                "session state version {v}, this portal reads {CORE_STATE_VERSION}"
            ),
            ThawError::Decode(why) => write!(f, "session state does not decode: {why}"),
            ThawError::Invalid(why) => write!(f, "session state refused: {why}"),
            ThawError::Settings(why) => write!(f, "session settings: {why}"),
        }
    }
}

impl std::error::Error for ThawError {}

/// The config a decoded core holds until [`Core::thaw`] gives it the real one.
pub(super) fn placeholder_config() -> Arc<Config> {
    Arc::new(Config::default())
}

impl Core {
    /// What cannot be carried to a new process, if anything: the caller
    /// then tells the player and closes the session instead.
    pub fn uncarriable(&self) -> Option<&'static str> {
        if self.events.iter().any(|e| matches!(e, CoreEvent::Ajax(_))) {
            return Some("an AJAX request is pending");
        }
        if self.events.iter().any(|e| matches!(e, CoreEvent::Relay(_))) {
            return Some("a request for the game's web server is pending");
        }
        match &self.protocol {
            Protocol::Telnet(telnet) => telnet.uncarriable(),
            Protocol::Web(web) => web.uncarriable(),
            Protocol::Terminal(_) => None,
        }
    }

    /// Before a freeze: end what cannot be carried. MCCP2's zlib stream is
    /// finished and its last bytes queued in [`Core::transmit`]; write them
    /// out, then [`Core::freeze`]. Output after this is plain until a thaw
    /// (or [`Core::abort_freeze`]) starts compression again.
    pub fn prepare_freeze(&mut self, _now: Instant) {
        if let Protocol::Telnet(telnet) = &mut self.protocol {
            telnet.prepare_freeze();
        }
        self.take_transmit();
    }

    /// The session as bytes for [`Core::thaw`] in a new process, instants
    /// taken relative to `now`. Refused when [`Core::uncarriable`].
    pub fn freeze(&self, now: Instant) -> Result<Vec<u8>, FreezeError> {
        if let Some(why) = self.uncarriable() {
            return Err(FreezeError(why.into()));
        }
        let bytes = vec![CORE_STATE_VERSION];
        frozen::with_reference(now, || postcard::to_extend(self, bytes))
            .map_err(|e| FreezeError(e.to_string()))
    }

    /// The upgrade was called off: carry on here (MCCP2 starts again if
    /// it was on, with a fresh stream).
    pub fn abort_freeze(&mut self, _now: Instant) {
        if let Protocol::Telnet(telnet) = &mut self.protocol {
            telnet.resume_compression();
        }
        self.take_transmit();
    }

    /// The session [`Core::freeze`] encoded, in this process at `now`,
    /// under `config`. MCCP2 starts again if it was on (`IAC SB COMPRESS2
    /// IAC SE` queued in [`Core::transmit`]).
    pub fn thaw(bytes: &[u8], config: Arc<Config>, now: Instant) -> Result<Core, ThawError> {
        let (&version, body) = bytes.split_first().ok_or(ThawError::Empty)?;
        let max = max_state_bytes(&config);
        if bytes.len() > max {
            return Err(ThawError::TooLarge(bytes.len(), max));
        }
        if version != CORE_STATE_VERSION {
            return Err(ThawError::Version(version));
        }
        let decoded = frozen::with_reference(now, || postcard::take_from_bytes::<Core>(body));
        let (mut core, rest) = decoded.map_err(|e| ThawError::Decode(e.to_string()))?;
        if !rest.is_empty() {
            return Err(ThawError::Decode(format!(
                "{} bytes after the end",
                rest.len()
            )));
        }
        core.thaw_settings(&config)?;
        if !core.limiter.is_sane() {
            return Err(ThawError::Invalid("rate limiter counters out of range"));
        }
        core.set_config(config);
        core.check_limits()?;
        if let Protocol::Telnet(telnet) = &mut core.protocol {
            telnet.resume_compression();
        }
        core.take_transmit();
        Ok(core)
    }

    /// Give the engine its settings from `config`.
    fn thaw_settings(&mut self, config: &Config) -> Result<(), ThawError> {
        match (&mut self.protocol, self.direction) {
            (Protocol::Telnet(telnet), Direction::Inbound | Direction::Outbound) => {
                let settings = telnet_settings(config, self.direction);
                telnet.thaw_settings(settings).map_err(ThawError::Invalid)
            }
            // The line cap comes with `set_config`.
            (Protocol::Terminal(_), Direction::Inbound) => Ok(()),
            (Protocol::Web(web), Direction::Web) => {
                let settings = web_settings(config, web.secure())
                    .map_err(|e| ThawError::Settings(e.to_string()))?;
                web.thaw_settings(settings).map_err(ThawError::Invalid)
            }
            _ => Err(ThawError::Invalid(
                "a protocol engine for another direction",
            )),
        }
    }

    /// Every carried buffer within what a live session under this config
    /// may hold.
    fn check_limits(&self) -> Result<(), ThawError> {
        if !self.framer.fits() {
            return Err(ThawError::Invalid(
                "a partial line past limits.max_char_limit",
            ));
        }
        let buffered = match &self.protocol {
            Protocol::Telnet(telnet) => telnet.buffered_bytes(),
            Protocol::Web(web) => web.buffered_bytes(),
            Protocol::Terminal(terminal) => {
                if !terminal.fits(self.config.limits.output_buffer_bytes) {
                    return Err(ThawError::Invalid(
                        "a terminal line, history or prompt past its limits",
                    ));
                }
                terminal.buffered_bytes()
            }
        };
        let held = self.hold.as_ref().map_or(0, |hold| hold.bytes.len());
        let output = self.out.len() + held + buffered;
        if output > self.config.limits.output_buffer_bytes {
            return Err(ThawError::Invalid("output past limits.output_buffer_bytes"));
        }
        if self.hold.as_ref().is_some_and(|hold| hold.start.len() > 8) {
            return Err(ThawError::Invalid(
                "a held start longer than the HTTP check reads",
            ));
        }
        Ok(())
    }
}

/// A [`CoreEvent`] as carried: the subprotocol by its format, no AJAX
/// request (a core with one is not carried).
#[derive(Serialize, Deserialize)]
enum CarriedEvent {
    Register {
        csessid: Option<String>,
        format: Option<Format>,
        forwarded: Vec<String>,
    },
    Sync,
    Input {
        command: Command,
        visible: bool,
    },
    Refused,
    MsspRequest,
    BytesIn(usize),
    BytesOut(usize),
}

/// `#[serde(with)]` for the core's pending events.
pub(super) mod events {
    use super::*;
    use serde::de::Error as _;
    use serde::ser::Error as _;
    use serde::{Deserializer, Serializer};

    fn carried(event: &CoreEvent) -> Option<CarriedEvent> {
        Some(match event {
            CoreEvent::Register {
                csessid,
                subprotocol,
                forwarded,
            } => CarriedEvent::Register {
                csessid: csessid.clone(),
                format: subprotocol.and_then(Format::from_subprotocol),
                forwarded: forwarded.clone(),
            },
            CoreEvent::Sync => CarriedEvent::Sync,
            CoreEvent::Input { command, visible } => CarriedEvent::Input {
                command: command.clone(),
                visible: *visible,
            },
            CoreEvent::Refused => CarriedEvent::Refused,
            CoreEvent::MsspRequest => CarriedEvent::MsspRequest,
            CoreEvent::BytesIn(n) => CarriedEvent::BytesIn(*n),
            CoreEvent::BytesOut(n) => CarriedEvent::BytesOut(*n),
            CoreEvent::Ajax(_) | CoreEvent::Relay(_) => return None,
        })
    }

    fn live(event: CarriedEvent) -> CoreEvent {
        match event {
            CarriedEvent::Register {
                csessid,
                format,
                forwarded,
            } => CoreEvent::Register {
                csessid,
                subprotocol: format.map(Format::subprotocol),
                forwarded,
            },
            CarriedEvent::Sync => CoreEvent::Sync,
            CarriedEvent::Input { command, visible } => CoreEvent::Input { command, visible },
            CarriedEvent::Refused => CoreEvent::Refused,
            CarriedEvent::MsspRequest => CoreEvent::MsspRequest,
            CarriedEvent::BytesIn(n) => CoreEvent::BytesIn(n),
            CarriedEvent::BytesOut(n) => CoreEvent::BytesOut(n),
        }
    }

    pub fn serialize<S: Serializer>(events: &VecDeque<CoreEvent>, s: S) -> Result<S::Ok, S::Error> {
        let carried: Option<Vec<CarriedEvent>> = events.iter().map(carried).collect();
        let carried = carried.ok_or_else(|| S::Error::custom("an AJAX request is pending"))?;
        carried.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<VecDeque<CoreEvent>, D::Error> {
        let carried: VecDeque<CarriedEvent> = frozen::bounded_deque(d)?;
        if carried.len() > frozen::MAX_ITEMS {
            return Err(D::Error::custom("too many events"));
        }
        Ok(carried.into_iter().map(live).collect())
    }
}

#[cfg(test)]
mod tests;
