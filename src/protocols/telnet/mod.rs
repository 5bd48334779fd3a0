//! Telnet for MUD clients (RFC 854/855 with RFC 1143 option negotiation):
//! one sans-IO engine per connection.
//!
//! ```text
//!  socket bytes ─► handle_input ─► [MCCP3 inflate] ─► parser ─┬─► data ──────────► poll_event: Data
//!                                                             ├─► WILL/DO… ─► options (Q method)
//!                                                             └─► SB ─► naws, ttype, charset, environ,
//!                                                                       gmcp/msdp ─► poll_event: Command
//!  game output ─► send_text / send_prompt / send_oob / send_mssp ─┐
//!  replies and offers ────────────────────────────────────────────┴─► [MCCP2 deflate] ─► poll_transmit
//!  now ─► handle_timeout: 2 s negotiation deadline (Ready), NOP keepalive
//! ```
//!
//! The engine reads no clock and touches no socket: the session worker feeds
//! it bytes and the time, and writes what [`Telnet::poll_transmit`] returns.
//! At start it offers every enabled option; [`TelnetEvent::Ready`] fires
//! once, when every answer is in or the deadline passed, and the worker
//! then syncs the session's [`Telnet::protocol_flags`] (named as Evennia
//! names them) with the game. Compression (MCCP2) starts only after the
//! TTYPE exchange or the deadline, as Evennia found some clients need.
//!
//! Options (one file each): ECHO, SGA and EOR here; [`naws`], [`ttype`]
//! (MTTS), [`mccp`] (MCCP2 out, MCCP3 in), [`mssp`], [`gmcp`], [`msdp`],
//! [`charset`], [`environ`] (NEW-ENVIRON/MNES); MXP is only switched on
//! (the markup renderer writes its tags).
//!
//! ```
//! use portal::protocols::telnet::{Telnet, TelnetEvent, TelnetOptions, TelnetSettings};
//! use std::time::Instant;
//! let now = Instant::now();
//! let options = TelnetOptions { mccp: false, ..TelnetOptions::default() };
//! let settings = TelnetSettings { options, ..TelnetSettings::default() };
//! let mut telnet = Telnet::new(settings, now);
//! let offers = telnet.poll_transmit().unwrap();
//! assert_eq!(&offers[..6], [255, 251, 3, 255, 253, 24]); // IAC WILL SGA, IAC DO TTYPE
//! // The client sends "hi", agrees to NAWS and reports 100x40.
//! telnet.handle_input(b"hi\xff\xfb\x1f\xff\xfa\x1f\x00\x64\x00\x28\xff\xf0", now);
//! assert!(matches!(telnet.poll_event(), Some(TelnetEvent::Data(d)) if d == b"hi"));
//! let flags = telnet.protocol_flags();
//! assert_eq!(flags["SCREENWIDTH"], portal::wire::value::Value::Map(
//!     [("0".to_string(), portal::wire::value::Value::Int(100))].into_iter().collect()));
//! ```

pub mod charset;
pub mod environ;
pub mod gmcp;
pub mod mccp;
pub mod msdp;
pub mod mssp;
pub mod naws;
pub mod options;
pub mod parser;
pub mod ttype;

use crate::wire::flags::{Flag, ProtocolFlags};
use crate::wire::message::Command;
use crate::wire::value::Map;
use mccp::{Deflater, Inflater, Stop, COMPRESS2, COMPRESS3};
use options::{Options, Side};
use parser::{Parser, Token};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Interpret As Command.
pub const IAC: u8 = 255;
pub const DONT: u8 = 254;
pub const DO: u8 = 253;
pub const WONT: u8 = 252;
pub const WILL: u8 = 251;
pub const SB: u8 = 250;
pub const GA: u8 = 249;
pub const NOP: u8 = 241;
pub const SE: u8 = 240;
/// The EOR command (RFC 885), sent after a prompt once option 25 is on.
pub const EOR_MARK: u8 = 239;

/// Option: we echo (RFC 857); on, the client stops echoing its input.
pub const ECHO: u8 = 1;
/// Option: suppress go-ahead (RFC 858).
pub const SGA: u8 = 3;
/// Option: end of record (RFC 885): prompts end with IAC EOR.
pub const EOR: u8 = 25;
/// Option: MUD eXtension Protocol.
pub const MXP: u8 = 91;

/// Which options the engine offers and accepts, one switch each. The one
/// list of them: portal.conf's `[telnet.options]` deserializes straight
/// into it (`config::TelnetSection::options`), and [`TelnetSettings`]
/// carries it. ECHO and SGA are not switches: they are always handled.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelnetOptions {
    pub naws: bool,
    pub ttype: bool,
    pub mccp: bool,
    pub mssp: bool,
    pub gmcp: bool,
    pub msdp: bool,
    pub mxp: bool,
    pub charset: bool,
    pub environ: bool,
    pub eor: bool,
}

impl TelnetOptions {
    /// Every option off: what our side of an outbound (passive) connection
    /// uses, and the base for tests that switch on only what they need.
    pub fn none() -> TelnetOptions {
        TelnetOptions {
            naws: false,
            ttype: false,
            mccp: false,
            mssp: false,
            gmcp: false,
            msdp: false,
            mxp: false,
            charset: false,
            environ: false,
            eor: false,
        }
    }
}

/// Every option on.
impl Default for TelnetOptions {
    fn default() -> Self {
        TelnetOptions {
            naws: true,
            ttype: true,
            mccp: true,
            mssp: true,
            gmcp: true,
            msdp: true,
            mxp: true,
            charset: true,
            environ: true,
            eor: true,
        }
    }
}

/// Every knob and limit of the telnet engine.
#[derive(Debug, Clone, PartialEq)]
pub struct TelnetSettings {
    /// The options offered at start and accepted when the client asks.
    pub options: TelnetOptions,
    /// How long to wait for negotiation answers before [`TelnetEvent::Ready`].
    pub negotiation_timeout: Duration,
    /// Largest subnegotiation body kept; longer ones are dropped and counted.
    pub max_subnegotiation: usize,
    /// Most bytes the MCCP3 input of one [`Telnet::handle_input`] call may
    /// inflate to; past it input stops ([`InputFailure::TooLarge`]).
    pub max_inflated_input: usize,
    /// Used when the client's MTTS answer says it cannot do UTF-8.
    pub fallback_encoding: String,
    /// Gap between IAC NOP keepalives; zero turns them off.
    pub nop_interval: Duration,
    /// Offer nothing at start (our side of an outbound connection): only
    /// answer what the peer asks.
    pub passive: bool,
}

impl Default for TelnetSettings {
    fn default() -> Self {
        TelnetSettings {
            options: TelnetOptions::default(),
            negotiation_timeout: Duration::from_secs(2),
            max_subnegotiation: 8 * 1024,
            max_inflated_input: 64 * 1024,
            fallback_encoding: "latin-1".into(),
            nop_interval: Duration::from_secs(30),
            passive: false,
        }
    }
}

/// What the engine reports to its driver.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum TelnetEvent {
    /// Application bytes, in order (the worker frames lines).
    Data(Vec<u8>),
    /// An inbound GMCP or MSDP message, as a `data_in` command.
    Command(Command),
    /// Negotiation settled (every answer in, or the deadline passed).
    /// Fires exactly once: sync the session then.
    Ready,
    /// A later change worth re-syncing (NAWS resize, late TTYPE, …).
    FlagsChanged,
    /// The client asked for MSSP: answer with [`Telnet::send_mssp`].
    MsspRequest,
}

/// Why the engine stopped reading a client's input for good (the caller
/// should close the connection).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum InputFailure {
    /// The MCCP3 stream was corrupt: nothing after it can be read.
    Corrupt,
    /// One read's MCCP3 input inflated past `max_inflated_input`.
    TooLarge,
}

/// Inflated MCCP3 input is parsed in chunks of this size.
const INFLATE_CHUNK: usize = 4096;

/// Whether the parser must stop because the rest of the input is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum After {
    Continue,
    Inflate,
}

/// One connection's telnet state.
///
/// Serde carries it to a new process (`portal upgrade`, see
/// [`crate::session::frozen`]): everything but the settings, which come
/// from the new config ([`Telnet::thaw_settings`]), and the zlib streams:
/// MCCP2 is ended before ([`Telnet::prepare_freeze`]) and restarted after
/// ([`Telnet::resume_compression`]); a session with MCCP3 input on is not
/// carried ([`Telnet::uncarriable`]).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Telnet {
    #[serde(skip)]
    settings: TelnetSettings,
    parser: Parser,
    options: Options,
    /// Our requests at start; `Ready` waits for their answers.
    #[serde(deserialize_with = "crate::session::frozen::bounded_vec")]
    offered: Vec<(Side, u8)>,
    /// The protocol flags, from [`initial_flags`] on (a compact struct:
    /// no allocation until a client names itself).
    flags: ProtocolFlags,
    #[serde(deserialize_with = "crate::session::frozen::bounded_deque")]
    events: VecDeque<TelnetEvent>,
    /// Data bytes for the next `Data` event.
    data: Vec<u8>,
    /// Bytes ready for the socket.
    transmit: Vec<u8>,
    /// Plain bytes waiting to be compressed (MCCP2 on).
    uncompressed: Vec<u8>,
    #[serde(skip)]
    deflater: Option<Deflater>,
    /// The client agreed to MCCP2; it starts once TTYPE is done or Ready.
    compress_wanted: bool,
    #[serde(skip)]
    inflater: Option<Inflater>,
    /// MCCP3 input is being inflated (its inflater is out of `inflater`
    /// while a chunk is parsed): a start inside the stream is ignored.
    inflating: bool,
    /// Set when the client's MCCP3 input was corrupt or too large: all
    /// further input is dropped (the caller should close).
    input_failure: Option<InputFailure>,
    ttype: ttype::Ttype,
    naws_seen: bool,
    charset_pending: bool,
    environ_pending: bool,
    ready: bool,
    #[serde(with = "crate::session::frozen::option_instant")]
    deadline: Option<Instant>,
    #[serde(with = "crate::session::frozen::option_instant")]
    next_nop: Option<Instant>,
}

impl Telnet {
    /// A new engine; the initial offers are queued for [`Telnet::poll_transmit`].
    pub fn new(settings: TelnetSettings, now: Instant) -> Telnet {
        let mut telnet = Telnet {
            parser: Parser::new(settings.max_subnegotiation),
            options: Options::new(),
            offered: Vec::new(),
            flags: initial_flags(),
            events: VecDeque::new(),
            data: Vec::new(),
            transmit: Vec::new(),
            uncompressed: Vec::new(),
            deflater: None,
            compress_wanted: false,
            inflater: None,
            inflating: false,
            input_failure: None,
            ttype: ttype::Ttype::new(),
            naws_seen: false,
            charset_pending: false,
            environ_pending: false,
            ready: false,
            deadline: Some(now + settings.negotiation_timeout),
            next_nop: (!settings.nop_interval.is_zero()).then(|| now + settings.nop_interval),
            settings,
        };
        telnet.offer_all();
        telnet
    }

    /// Our opening offers, TTYPE before MCCP (as Evennia orders them).
    fn offer_all(&mut self) {
        if self.settings.passive {
            return;
        }
        let s = &self.settings.options;
        let wanted = [
            (Side::Us, SGA, true),
            (Side::Him, ttype::TTYPE, s.ttype),
            (Side::Him, naws::NAWS, s.naws),
            (Side::Us, EOR, s.eor),
            (Side::Us, charset::CHARSET, s.charset),
            (Side::Him, environ::NEW_ENVIRON, s.environ),
            (Side::Us, msdp::MSDP, s.msdp),
            (Side::Us, gmcp::GMCP, s.gmcp),
            (Side::Us, mssp::MSSP, s.mssp),
            (Side::Us, MXP, s.mxp),
            (Side::Us, COMPRESS2, s.mccp),
            (Side::Us, COMPRESS3, s.mccp),
        ];
        for (side, option, on) in wanted {
            if on {
                self.offered.push((side, option));
                if let Some(verb) = self.options.ask_enable(side, option) {
                    self.write(&[IAC, verb, option]);
                }
            }
        }
    }

    // ---- input ----

    /// Raw socket bytes (MCCP3-compressed ones included).
    pub fn handle_input(&mut self, input: &[u8], _now: Instant) {
        if self.input_failure.is_some() {
            return;
        }
        let mut rest = input;
        let mut budget = self.settings.max_inflated_input;
        while !rest.is_empty() {
            match self.inflater.take() {
                Some(inflater) => rest = self.inflate(inflater, rest, &mut budget),
                None => {
                    let used = self.parse(rest);
                    rest = &rest[used..];
                }
            }
        }
        self.flush_data();
    }

    /// Decompress MCCP3 input and parse it, a chunk at a time, taking what
    /// it inflates to from `budget`; returns the plain rest after the end
    /// of the compressed stream, if any.
    fn inflate<'a>(&mut self, inflater: Inflater, input: &'a [u8], budget: &mut usize) -> &'a [u8] {
        self.inflating = true;
        let rest = self.inflate_chunks(inflater, input, budget);
        self.inflating = false;
        rest
    }

    fn inflate_chunks<'a>(
        &mut self,
        mut inflater: Inflater,
        input: &'a [u8],
        budget: &mut usize,
    ) -> &'a [u8] {
        let mut chunk = [0u8; INFLATE_CHUNK];
        let mut used = 0;
        loop {
            let room = INFLATE_CHUNK.min(budget.saturating_add(1));
            let step = inflater.inflate_into(&input[used..], &mut chunk[..room]);
            used += step.used;
            if step.written > *budget {
                return self.fail_input(InputFailure::TooLarge);
            }
            *budget -= step.written;
            self.parse(&chunk[..step.written]);
            match step.stop {
                Stop::Progress => {}
                Stop::InputEmpty => {
                    self.inflater = Some(inflater);
                    return &[];
                }
                Stop::End => return &input[used..],
                Stop::Corrupt => return self.fail_input(InputFailure::Corrupt),
            }
        }
    }

    /// Stop reading input for good; returns the (no) input left to read.
    fn fail_input(&mut self, why: InputFailure) -> &'static [u8] {
        log::debug!("telnet: MCCP3 input {why:?}; further input dropped");
        self.input_failure = Some(why);
        &[]
    }

    /// Parse plain bytes until they end or MCCP3 starts; returns bytes used.
    fn parse(&mut self, input: &[u8]) -> usize {
        for (i, &byte) in input.iter().enumerate() {
            let after = match self.parser.push(byte) {
                None => After::Continue,
                Some(Token::Data(b)) => {
                    self.data.push(b);
                    After::Continue
                }
                Some(token) => self.handle_token(token),
            };
            if after == After::Inflate {
                return i + 1;
            }
        }
        input.len()
    }

    fn handle_token(&mut self, token: Token) -> After {
        self.flush_data();
        // Only option changes and subnegotiations touch the flags.
        let may_change = matches!(token, Token::Negotiate(..) | Token::Sub(..));
        let flags_before = (self.ready && may_change).then(|| self.flags.clone());
        let after = match token {
            Token::Data(_) | Token::Command(_) => After::Continue,
            Token::Negotiate(verb, option) => {
                self.negotiate(verb, option);
                After::Continue
            }
            Token::Sub(option, body) => self.subnegotiate(option, &body),
            Token::SubDropped(option) => {
                log::debug!("telnet: oversized subnegotiation for option {option} dropped");
                After::Continue
            }
        };
        self.check_ready();
        if flags_before.is_some_and(|before| before != self.flags) {
            self.push_event(TelnetEvent::FlagsChanged);
        }
        after
    }

    fn negotiate(&mut self, verb: u8, option: u8) {
        let settings = &self.settings;
        let outcome = self
            .options
            .receive(verb, option, |side, option| accepts(settings, side, option));
        let reply = outcome.reply.map(|verb| [IAC, verb, option]);
        match outcome.change {
            // Turning off first: a compressed stream must end before the
            // plain WONT that follows it.
            Some(false) => {
                self.option_changed(outcome.side, option, false);
                self.write_opt(reply);
            }
            Some(true) => {
                self.write_opt(reply);
                self.option_changed(outcome.side, option, true);
            }
            None => self.write_opt(reply),
        }
    }

    fn write_opt(&mut self, bytes: Option<[u8; 3]>) {
        if let Some(bytes) = bytes {
            self.write(&bytes);
        }
    }

    /// Effects of one side of an option turning on or off.
    fn option_changed(&mut self, side: Side, option: u8, on: bool) {
        match (side, option) {
            (Side::Us, SGA) => self.flags.nogoahead = Some(on),
            (Side::Us, EOR) => self.flags.eor = Some(on),
            (Side::Us, COMPRESS2) if on => {
                self.compress_wanted = true;
                self.start_compression();
            }
            (Side::Us, COMPRESS2) => self.stop_compression(),
            (Side::Us, mssp::MSSP) if on => self.push_event(TelnetEvent::MsspRequest),
            (Side::Us, msdp::MSDP) => self.set_oob_flag(Flag::Msdp, on),
            (Side::Us, gmcp::GMCP) => self.set_oob_flag(Flag::Gmcp, on),
            (Side::Us, MXP) => {
                if on {
                    self.write_sub(MXP, &[]);
                }
                self.flags.mxp = Some(on);
            }
            (Side::Us, charset::CHARSET) => {
                if on {
                    self.write_sub(charset::CHARSET, &charset::request());
                }
                self.charset_pending = on;
            }
            (Side::Him, ttype::TTYPE) if on => self.write(&ttype::REQUEST),
            (Side::Him, ttype::TTYPE) => {
                self.ttype.finish();
                self.start_compression();
            }
            (Side::Him, naws::NAWS) => self.flags.autoresize = Some(on),
            (Side::Him, environ::NEW_ENVIRON) => {
                if on {
                    self.write_sub(environ::NEW_ENVIRON, &environ::request());
                }
                self.environ_pending = on;
            }
            _ => {}
        }
    }

    fn set_oob_flag(&mut self, flag: Flag, on: bool) {
        self.flags.set_on(flag, on);
        let oob = self.options.enabled(Side::Us, gmcp::GMCP)
            || self.options.enabled(Side::Us, msdp::MSDP);
        self.flags.oob = Some(oob);
    }

    fn subnegotiate(&mut self, option: u8, body: &[u8]) -> After {
        let us = |o: &Options| o.enabled(Side::Us, option);
        let him = |o: &Options| o.enabled(Side::Him, option);
        match option {
            ttype::TTYPE if him(&self.options) => self.receive_ttype(body),
            naws::NAWS if him(&self.options) => self.receive_naws(body),
            environ::NEW_ENVIRON if him(&self.options) => {
                let vars = environ::parse(body);
                environ::apply(&vars, &mut self.flags);
                self.environ_pending = false;
            }
            charset::CHARSET if us(&self.options) || him(&self.options) => {
                self.receive_charset(body)
            }
            gmcp::GMCP if us(&self.options) => {
                let command = gmcp::decode(body);
                self.push_event(TelnetEvent::Command(command));
            }
            msdp::MSDP if us(&self.options) => {
                for command in msdp::decode(body) {
                    self.push_event(TelnetEvent::Command(command));
                }
            }
            COMPRESS3 if us(&self.options) && self.inflater.is_none() && !self.inflating => {
                self.inflater = Some(Inflater::new());
                return After::Inflate;
            }
            _ => {}
        }
        After::Continue
    }

    fn receive_ttype(&mut self, body: &[u8]) {
        match self.ttype.receive(body, &mut self.flags) {
            ttype::Step::AskAgain => self.write(&ttype::REQUEST),
            ttype::Step::Done => {
                self.use_fallback_encoding_if_not_utf8();
                self.start_compression();
            }
            ttype::Step::Ignored => {}
        }
    }

    /// MTTS said the client cannot do UTF-8 and no CHARSET/NEW-ENVIRON
    /// answer named an encoding: use the configured fallback.
    fn use_fallback_encoding_if_not_utf8(&mut self) {
        let says_no_utf8 = self.flags.utf8 == Some(false);
        let named = self.encoding() != "utf-8";
        if says_no_utf8 && !named {
            let fallback = self.settings.fallback_encoding.clone();
            self.flags.encoding = Some(fallback.into());
        }
    }

    fn receive_naws(&mut self, body: &[u8]) {
        let Some((width, height)) = naws::parse(body) else {
            return;
        };
        self.naws_seen = true;
        if width > 0 {
            self.flags.screenwidth = Some(width);
        }
        if height > 0 {
            self.flags.screenheight = Some(height);
        }
    }

    fn receive_charset(&mut self, body: &[u8]) {
        match charset::parse(body) {
            charset::Message::Accepted(name) => {
                if let Some(codec) = charset::codec_name(&name) {
                    self.set_encoding(codec);
                }
                self.charset_pending = false;
            }
            charset::Message::Rejected => self.charset_pending = false,
            charset::Message::Request(names) => {
                let (answer, codec) = charset::answer(&names);
                self.write_sub(charset::CHARSET, &answer);
                if let Some(codec) = codec {
                    self.set_encoding(codec);
                }
            }
            charset::Message::Other => {}
        }
    }

    fn set_encoding(&mut self, codec: &'static str) {
        self.flags.encoding = Some(codec.into());
        self.flags.utf8 = Some(codec == "utf-8");
    }

    /// Fire `Ready` once every answer we wait for is in.
    fn check_ready(&mut self) {
        if self.ready || !self.settled() {
            return;
        }
        self.become_ready();
    }

    fn become_ready(&mut self) {
        self.ready = true;
        self.deadline = None;
        self.push_event(TelnetEvent::Ready);
        self.start_compression();
    }

    fn settled(&self) -> bool {
        let answered = self
            .offered
            .iter()
            .all(|&(side, option)| !self.options.pending(side, option));
        let ttype_done = !self.options.enabled(Side::Him, ttype::TTYPE) || self.ttype.done();
        let naws_done = !self.options.enabled(Side::Him, naws::NAWS) || self.naws_seen;
        answered && ttype_done && naws_done && !self.charset_pending && !self.environ_pending
    }

    fn push_event(&mut self, event: TelnetEvent) {
        self.flush_data();
        self.events.push_back(event);
    }

    fn flush_data(&mut self) {
        if !self.data.is_empty() {
            let data = std::mem::take(&mut self.data);
            self.events.push_back(TelnetEvent::Data(data));
        }
    }

    /// The next event, in order.
    pub fn poll_event(&mut self) -> Option<TelnetEvent> {
        let event = self.events.pop_front();
        if event.is_none() && self.events.capacity() > 0 {
            // Drained: an idle session keeps no queue.
            self.events = VecDeque::new();
        }
        event
    }

    // ---- timers ----

    /// The negotiation deadline and the keepalive.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.deadline.is_some_and(|deadline| now >= deadline) {
            self.become_ready();
        }
        if let Some(at) = self.next_nop {
            if now >= at {
                self.send_nop();
                self.next_nop = Some(now + self.settings.nop_interval);
            }
        }
    }

    /// When [`Telnet::handle_timeout`] next has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match (self.deadline, self.next_nop) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    // ---- output ----

    /// Game text: `\n` → CR LF, IAC doubled, encoded in the session's
    /// encoding, with a line end added when missing (Evennia's
    /// FORCEDENDLINE).
    pub fn send_text(&mut self, text: &str) {
        let mut bytes = self.encode_text(text);
        if !bytes.ends_with(b"\n") {
            bytes.extend_from_slice(b"\r\n");
        }
        self.write(&bytes);
    }

    /// A prompt: text with no added line end, then IAC EOR if the client
    /// agreed to EOR, else IAC GA unless go-ahead is suppressed (Mudlet asks
    /// for GA after prompts anyway: `NOPROMPTGOAHEAD` false).
    pub fn send_prompt(&mut self, text: &str) {
        let mut bytes = self.encode_text(text);
        if self.options.enabled(Side::Us, EOR) {
            bytes.extend_from_slice(&[IAC, EOR_MARK]);
        } else if self.prompt_wants_ga() {
            bytes.extend_from_slice(&[IAC, GA]);
        }
        self.write(&bytes);
    }

    fn prompt_wants_ga(&self) -> bool {
        let no_ga = self.options.enabled(Side::Us, SGA);
        let no_prompt_ga = self.flags.nopromptgoahead;
        !no_prompt_ga.unwrap_or(no_ga)
    }

    fn encode_text(&self, text: &str) -> Vec<u8> {
        let mut crlf = String::with_capacity(text.len() + 8);
        let mut previous = '\0';
        for c in text.chars() {
            if c == '\n' && previous != '\r' {
                crlf.push('\r');
            }
            crlf.push(c);
            previous = c;
        }
        let encoded = charset::encode(&crlf, self.encoding());
        escape_iac(&encoded)
    }

    fn encoding(&self) -> &str {
        self.flags.encoding.as_deref().unwrap_or("utf-8")
    }

    /// An out-of-band command: GMCP if agreed, else MSDP if agreed; false
    /// if neither (the caller drops it).
    pub fn send_oob(&mut self, command: &Command) -> bool {
        if self.options.enabled(Side::Us, gmcp::GMCP) {
            self.write_sub(gmcp::GMCP, &gmcp::encode(command));
        } else if self.options.enabled(Side::Us, msdp::MSDP) {
            self.write_sub(msdp::MSDP, &msdp::encode(command));
        } else {
            return false;
        }
        true
    }

    /// Answer an MSSP request with `(name, values)` pairs.
    pub fn send_mssp(&mut self, table: &[(String, Vec<String>)]) {
        if self.options.enabled(Side::Us, mssp::MSSP) {
            self.write(&mssp::encode(table));
        }
    }

    /// `true`: we WILL ECHO, so the client stops echoing (passwords);
    /// `false`: WONT ECHO, the client echoes again.
    pub fn set_echo(&mut self, local_echo_off: bool) {
        let verb = if local_echo_off {
            self.options.ask_enable(Side::Us, ECHO)
        } else {
            self.options.ask_disable(Side::Us, ECHO)
        };
        if let Some(verb) = verb {
            self.write(&[IAC, verb, ECHO]);
        }
    }

    /// IAC NOP, a keepalive clients ignore.
    pub fn send_nop(&mut self) {
        self.write(&[IAC, NOP]);
    }

    /// Bytes for the socket (compressed when MCCP2 is on), until `None`.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        if let Some(deflater) = &mut self.deflater {
            if !self.uncompressed.is_empty() {
                deflater.compress(&self.uncompressed, &mut self.transmit);
                self.uncompressed.clear();
            }
        }
        (!self.transmit.is_empty()).then(|| std::mem::take(&mut self.transmit))
    }

    fn write(&mut self, bytes: &[u8]) {
        match self.deflater {
            Some(_) => self.uncompressed.extend_from_slice(bytes),
            None => self.transmit.extend_from_slice(bytes),
        }
    }

    fn write_sub(&mut self, option: u8, body: &[u8]) {
        let mut bytes = Vec::with_capacity(body.len() + 5);
        bytes.extend_from_slice(&[IAC, SB, option]);
        bytes.extend_from_slice(&escape_iac(body));
        bytes.extend_from_slice(&[IAC, SE]);
        self.write(&bytes);
    }

    /// Begin MCCP2 if the client agreed and TTYPE is over (or Ready).
    fn start_compression(&mut self) {
        let ttype_over = self.ttype.done() || self.ready;
        if !self.compress_wanted || self.deflater.is_some() || !ttype_over {
            return;
        }
        self.write_sub(COMPRESS2, &[]);
        self.deflater = Some(Deflater::new());
        self.flags.mccp = Some(true);
    }

    /// End MCCP2: what is queued goes out compressed, then the stream ends.
    fn stop_compression(&mut self) {
        self.compress_wanted = false;
        if let Some(deflater) = self.deflater.take() {
            deflater.finish(&self.uncompressed, &mut self.transmit);
            self.uncompressed.clear();
        }
        self.flags.mccp = Some(false);
    }

    // ---- carried to a new process (`portal upgrade`) ----

    /// Before a freeze: end the MCCP2 stream, so its end is queued for the
    /// socket ([`Telnet::poll_transmit`]) and what follows is plain until
    /// [`Telnet::resume_compression`]. The client still wants compression.
    pub fn prepare_freeze(&mut self) {
        if let Some(deflater) = self.deflater.take() {
            deflater.finish(&self.uncompressed, &mut self.transmit);
            self.uncompressed.clear();
        }
    }

    /// After a thaw or an aborted freeze: start MCCP2 again (a fresh
    /// `IAC SB COMPRESS2 IAC SE` and zlib stream) if the client wanted it
    /// and it had begun.
    pub fn resume_compression(&mut self) {
        self.start_compression();
    }

    /// Why this engine cannot be carried, if it cannot: an MCCP3 input
    /// stream is a zlib state we cannot rebuild.
    pub fn uncarriable(&self) -> Option<&'static str> {
        (self.inflater.is_some() || self.inflating).then_some("MCCP3 input compression is on")
    }

    /// After a thaw: the settings from the current config, checked against
    /// what was carried (a body or answer past the config's caps, or a
    /// zlib stream marked as running, is refused).
    pub fn thaw_settings(&mut self, settings: TelnetSettings) -> Result<(), &'static str> {
        let cap = settings.max_subnegotiation;
        self.settings = settings;
        if !self.parser.set_cap(cap) || self.ttype.held_bytes() > cap {
            return Err("a subnegotiation past telnet.max_subnegotiation");
        }
        if !self.ttype.is_valid() {
            return Err("a TTYPE cycle past its last round");
        }
        if self.inflating {
            return Err("an MCCP3 stream marked as running");
        }
        Ok(())
    }

    /// Bytes the engine holds for the socket (or for its next event).
    pub fn buffered_bytes(&self) -> usize {
        self.transmit.len() + self.uncompressed.len() + self.data.len()
    }

    /// Whether MCCP2 is compressing output now.
    pub fn compressing(&self) -> bool {
        self.deflater.is_some()
    }

    // ---- state ----

    /// The session's protocol flags as the wire map (Evennia's names).
    pub fn protocol_flags(&self) -> Map {
        self.flags.to_map()
    }

    /// The session's protocol flags.
    pub fn flags(&self) -> &ProtocolFlags {
        &self.flags
    }

    /// Whether the client agreed to MXP.
    pub fn mxp_enabled(&self) -> bool {
        self.options.enabled(Side::Us, MXP)
    }

    /// Whether [`TelnetEvent::Ready`] has fired.
    pub fn is_ready(&self) -> bool {
        self.ready
    }

    /// Subnegotiations dropped for passing `max_subnegotiation`.
    pub fn dropped_subnegotiations(&self) -> u64 {
        self.parser.dropped()
    }

    /// True once the client's MCCP3 stream proved corrupt or too large:
    /// input is ignored from then on and the caller should close the
    /// connection.
    pub fn input_failed(&self) -> bool {
        self.input_failure.is_some()
    }

    /// Why input stopped, once it has ([`Telnet::input_failed`]).
    pub fn input_failure(&self) -> Option<InputFailure> {
        self.input_failure
    }

    #[cfg(test)]
    fn parser_body_capacity(&self) -> usize {
        self.parser.body_capacity()
    }

    /// A line of input → text in the session's encoding; the bool says
    /// some bytes were invalid in it and were replaced with U+FFFD.
    pub fn decode_line(&self, line: &[u8]) -> (String, bool) {
        match charset::decode(line, self.encoding()) {
            Some(text) => (text, false),
            None => (String::from_utf8_lossy(line).into_owned(), true),
        }
    }
}

/// Whether we agree to an option the client proposes unasked.
fn accepts(settings: &TelnetSettings, side: Side, option: u8) -> bool {
    let settings = &settings.options;
    match side {
        Side::Us => match option {
            SGA => true,
            EOR => settings.eor,
            COMPRESS2 | COMPRESS3 => settings.mccp,
            mssp::MSSP => settings.mssp,
            msdp::MSDP => settings.msdp,
            gmcp::GMCP => settings.gmcp,
            MXP => settings.mxp,
            charset::CHARSET => settings.charset,
            // Unasked DO ECHO would make us echo the client's typing.
            _ => false,
        },
        Side::Him => match option {
            SGA => true,
            ttype::TTYPE => settings.ttype,
            naws::NAWS => settings.naws,
            environ::NEW_ENVIRON => settings.environ,
            charset::CHARSET => settings.charset,
            _ => false,
        },
    }
}

/// Flags before any negotiation, as Evennia starts a telnet session.
fn initial_flags() -> ProtocolFlags {
    ProtocolFlags {
        encoding: Some("utf-8".into()),
        screenwidth: Some(78),
        screenheight: Some(45),
        ansi: Some(true),
        xterm256: Some(false),
        truecolor: Some(false),
        utf8: Some(true),
        screenreader: Some(false),
        ttype: Some(false),
        forcedendline: Some(true),
        nogoahead: Some(false),
        nopkeepalive: Some(true),
        autoresize: Some(false),
        mccp: Some(false),
        mxp: Some(false),
        gmcp: Some(false),
        msdp: Some(false),
        oob: Some(false),
        raw: Some(false),
        nocolor: Some(false),
        ..ProtocolFlags::default()
    }
}

/// Double every IAC so data cannot start a command.
pub fn escape_iac(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    for &b in bytes {
        out.push(b);
        if b == IAC {
            out.push(IAC);
        }
    }
    out
}

#[cfg(test)]
mod tests;
