//! An IRC client for a bot, sans-IO (message syntax of RFC 1459 and RFC
//! 2812 section 2.3; IRCv3 message tags are read past and ignored).
//!
//! Purpose: the portal's IRC bot session (`server_connect` with protocol
//! key `irc`, see [`crate::session::irc`]) signs on to a network, joins one
//! channel and relays between it and the game. Everything here is bytes or
//! lines in, events and bytes out, with time passed in as `now`; the
//! worker does the socket and the TLS.
//!
//! ```text
//!  socket bytes ─► LineBuffer ─► Bot::handle_line ─► Bot::poll_event ─► worker (to the game)
//!  game output ──► Bot::say / privmsg / request_names / ping / quit
//!  clock ────────► Bot::handle_timeout           Bot::poll_timeout ─► worker's sleep
//!  socket ◄─────── Bot::transmit (paced by a RateLimiter)
//! ```
//!
//! What it owns: registration (`PASS`/`NICK`/`USER`, a new nick on a
//! collision), the `JOIN` (again after a kick), answering the server's
//! `PING`, a keepalive `PING` of its own to notice a dead link, the
//! channel's names list, and the outgoing lines: each at most 512 bytes
//! with the prefix the server adds counted in, paced so the server's flood
//! control never cuts the bot off.
//!
//! ```
//! use portal::protocols::irc::parse;
//! let m = parse(":anna!a@host PRIVMSG #plaza :hello there").unwrap();
//! assert_eq!(m.nick(), Some("anna"));
//! assert_eq!(m.params, ["#plaza", "hello there"]);
//! ```

use crate::throttle::RateLimiter;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The longest line a server takes, CR LF included (RFC 2812 2.3).
pub const MAX_LINE: usize = 512;
/// The longest line read from the server: 512 plus IRCv3's 8191 bytes of
/// tags. A longer line is dropped.
pub const MAX_INPUT_LINE: usize = 8191 + MAX_LINE;
/// Room kept for the `nick!user@host` prefix the server puts on our lines
/// when it relays them: a user name of up to 10 bytes and a host of up to
/// 63 (a DNS label's limit; a longer cloak costs the tail of a line).
const PREFIX_ROOM_USER_HOST: usize = 10 + 63;
/// The nick length assumed until the server says (`NICKLEN` in 005).
const DEFAULT_NICKLEN: usize = 9;
/// Quiet this long from the server, the bot sends a `PING`.
pub const KEEPALIVE: Duration = Duration::from_secs(90);
/// A `PING` unanswered this long, or a registration not done in it, means
/// the connection is dead.
pub const DEAD_AFTER: Duration = Duration::from_secs(60);
/// Outgoing lines held while pacing; older ones are dropped past this.
pub const MAX_QUEUED_LINES: usize = 256;

/// One IRC message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// `nick!user@host` or a server name, without the `:`.
    pub prefix: Option<String>,
    /// The command or three-digit reply, as sent.
    pub command: String,
    /// The parameters, the trailing one without its `:`.
    pub params: Vec<String>,
}

impl Message {
    /// The nick in the prefix (what comes before `!`).
    pub fn nick(&self) -> Option<&str> {
        let prefix = self.prefix.as_deref()?;
        Some(prefix.split('!').next().unwrap_or(prefix))
    }

    fn param(&self, i: usize) -> &str {
        self.params.get(i).map_or("", String::as_str)
    }
}

/// Parse one line (without its line end). `None` for a line with no
/// command (empty, or only tags and a prefix).
pub fn parse(line: &str) -> Option<Message> {
    let mut rest = line.trim_end_matches(['\r', '\n']);
    if let Some(tagged) = rest.strip_prefix('@') {
        rest = tagged.split_once(' ').map_or("", |(_, r)| r);
    }
    rest = rest.trim_start_matches(' ');
    let mut prefix = None;
    if let Some(prefixed) = rest.strip_prefix(':') {
        let (p, r) = prefixed.split_once(' ').unwrap_or((prefixed, ""));
        prefix = Some(p.to_owned());
        rest = r.trim_start_matches(' ');
    }
    let (command, mut rest) = rest.split_once(' ').unwrap_or((rest, ""));
    if command.is_empty() {
        return None;
    }
    let mut params = Vec::new();
    loop {
        rest = rest.trim_start_matches(' ');
        if rest.is_empty() {
            break;
        }
        if let Some(trailing) = rest.strip_prefix(':') {
            params.push(trailing.to_owned());
            break;
        }
        let (param, r) = rest.split_once(' ').unwrap_or((rest, ""));
        params.push(param.to_owned());
        rest = r;
    }
    Some(Message {
        prefix,
        command: command.to_ascii_uppercase(),
        params,
    })
}

/// One line to send, CR LF ended. CR, LF and NUL become spaces (they
/// would end the line or be refused), and a space in the command or a
/// middle parameter `_`; the last parameter is sent trailing (`:`) when it
/// needs to be. A line over [`MAX_LINE`] is cut at a character boundary.
pub fn format(command: &str, params: &[&str]) -> Vec<u8> {
    let mut line = one_line(command).replace(' ', "_");
    for (i, param) in params.iter().enumerate() {
        let clean = one_line(param);
        line.push(' ');
        let last = i + 1 == params.len();
        if last && (clean.is_empty() || clean.contains(' ') || clean.starts_with(':')) {
            line.push(':');
            line.push_str(&clean);
        } else {
            line.push_str(&clean.replace(' ', "_"));
        }
    }
    let cut = floor_char_boundary(&line, MAX_LINE - 2);
    line.truncate(cut);
    line.push_str("\r\n");
    line.into_bytes()
}

/// `text` with CR, LF and NUL made spaces.
fn one_line(text: &str) -> String {
    let flat = |c| {
        if matches!(c, '\r' | '\n' | '\0') {
            ' '
        } else {
            c
        }
    };
    text.chars().map(flat).collect()
}

fn floor_char_boundary(text: &str, at: usize) -> usize {
    if at >= text.len() {
        return text.len();
    }
    (0..=at)
        .rev()
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0)
}

/// How many bytes of text fit in one `COMMAND target :text` line that the
/// server relays as `:nick!user@host COMMAND target :text` CR LF.
pub fn text_budget(nick: &str, command: &str, target: &str) -> usize {
    let prefix = 1 + nick.len() + 2 + PREFIX_ROOM_USER_HOST + 1; // ":" nick "!" "@" … " "
    let fixed = prefix + command.len() + 1 + target.len() + 2 + 2; // " " target " :" … CRLF
    MAX_LINE.saturating_sub(fixed).max(16)
}

/// Cut `text` into lines of at most `budget` bytes: at its line breaks,
/// then at the last space that fits (or, in a word longer than a line, at
/// a character boundary). Empty lines are left out (IRC has none).
pub fn split_text(text: &str, budget: usize) -> Vec<String> {
    let budget = budget.max(4);
    let mut out = Vec::new();
    for line in text.split('\n') {
        let mut rest = line.trim_end_matches('\r');
        while rest.len() > budget {
            let hard = floor_char_boundary(rest, budget);
            let cut = match rest[..hard].rfind(' ') {
                Some(space) if space > 0 => space,
                _ => hard.max(rest.chars().next().map_or(1, char::len_utf8)),
            };
            out.push(rest[..cut].to_owned());
            rest = rest[cut..].trim_start_matches(' ');
        }
        if !rest.trim().is_empty() {
            out.push(rest.to_owned());
        }
    }
    out
}

/// `text` without mIRC formatting: bold, italics, underline, strike,
/// monospace, reverse, reset, and colours (`^C` with up to two digits,
/// optionally `,` and up to two more; `^D` with hex colours).
pub fn strip_formatting(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\x02' | '\x1d' | '\x1f' | '\x1e' | '\x11' | '\x16' | '\x0f' => {}
            '\x03' | '\x04' => {
                let digit = |d: &char| {
                    if c == '\x03' {
                        d.is_ascii_digit()
                    } else {
                        d.is_ascii_hexdigit()
                    }
                };
                let most = if c == '\x03' { 2 } else { 6 };
                let fg = skip_while_max(&mut chars, digit, most);
                let mut ahead = chars.clone();
                if fg > 0 && ahead.next() == Some(',') && ahead.peek().is_some_and(digit) {
                    chars.next();
                    skip_while_max(&mut chars, digit, most);
                }
            }
            c => out.push(c),
        }
    }
    out
}

fn skip_while_max(
    chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
    keep: impl Fn(&char) -> bool,
    most: usize,
) -> usize {
    let mut skipped = 0;
    while skipped < most && chars.peek().is_some_and(&keep) {
        chars.next();
        skipped += 1;
    }
    skipped
}

/// A CTCP request or reply (`\x01COMMAND rest\x01`): the command and the
/// rest; `None` for plain text.
pub fn ctcp(text: &str) -> Option<(&str, &str)> {
    let inner = text.strip_prefix('\x01')?;
    let inner = inner.strip_suffix('\x01').unwrap_or(inner);
    Some(inner.split_once(' ').unwrap_or((inner, "")))
}

/// The nick to try after `attempt` collisions on `base` (`attempt` ≥ 1),
/// at most `max_len` bytes: `base_`, then `base2`, `base3`, … with the base
/// shortened to make room.
pub fn alternative_nick(base: &str, attempt: u32, max_len: usize) -> String {
    let suffix = if attempt <= 1 {
        "_".to_owned()
    } else {
        attempt.to_string()
    };
    let room = max_len.saturating_sub(suffix.len()).max(1);
    let stem = &base[..floor_char_boundary(base, room)];
    format!("{stem}{suffix}")
}

/// Exponential back-off between connection attempts: `initial`, times
/// `factor` after each failure, at most `max`. No jitter: one portal runs
/// a handful of bots, not a fleet that would reconnect in step.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    factor: f64,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub fn new(initial: Duration, factor: f64, max: Duration) -> Backoff {
        Backoff {
            initial,
            factor: factor.max(1.0),
            max,
            next: initial.min(max),
        }
    }

    /// The wait before the next attempt; each call lengthens the next.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = self.next.mul_f64(self.factor).min(self.max);
        delay
    }

    /// A connection worked: start again from `initial`.
    pub fn reset(&mut self) {
        self.next = self.initial.min(self.max);
    }
}

/// Who the bot is and where it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BotSettings {
    pub nick: String,
    pub channel: String,
    /// The user name (`USER`) and real name.
    pub user: String,
    pub realname: String,
    /// A server password (`PASS`), if the network wants one.
    pub password: Option<String>,
}

/// What kind of channel text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Said {
    /// A plain message (`msg`).
    Message,
    /// A CTCP ACTION, `/me` (`action`).
    Action,
}

/// What happened on the IRC side.
#[derive(Debug, Clone, PartialEq)]
pub enum BotEvent {
    /// Registered (001) as `nick`; the JOIN is on its way.
    SignedOn { nick: String },
    /// The server confirmed our JOIN.
    Joined,
    /// The bot tried another nick (the last was taken).
    NickInUse { tried: String, next: String },
    /// Someone spoke in the channel.
    Channel {
        user: String,
        text: String,
        kind: Said,
    },
    /// Someone wrote to the bot directly.
    Private { user: String, text: String },
    /// The channel's names, after a [`Bot::request_names`].
    Names(Vec<String>),
    /// The answer to a [`Bot::ping`], after this long.
    Pong(Duration),
    /// The bot was kicked (it joins again).
    Kicked { by: String, reason: String },
    /// The server refused the JOIN (numeric and text).
    JoinRefused(String),
    /// The server sent `ERROR` (it closes the connection next).
    ServerError(String),
    /// No answer to our keepalive, or no registration, in time.
    Dead(&'static str),
    /// Outgoing lines dropped because too many were waiting.
    Dropped(usize),
}

/// The bot's protocol state for one connection.
#[derive(Debug)]
pub struct Bot {
    settings: BotSettings,
    nick: String,
    nick_attempts: u32,
    nicklen: usize,
    registered: bool,
    /// Lines sent at once (registration, PONG, QUIT).
    urgent: Vec<u8>,
    /// Lines paced by `bucket`.
    paced: VecDeque<Vec<u8>>,
    bucket: RateLimiter,
    events: VecDeque<BotEvent>,
    names: Vec<String>,
    started: Instant,
    last_heard: Instant,
    /// Our keepalive ping: its token and when it went.
    keepalive: Option<(String, Instant)>,
    /// Pings the game asked for: token, when sent.
    game_pings: VecDeque<(String, Instant)>,
    ping_count: u64,
    quitting: bool,
}

impl Bot {
    /// A bot about to register: the registration lines are ready in
    /// [`Bot::transmit`]. `burst` lines may go at once, then `per_sec`.
    pub fn new(settings: BotSettings, burst: f64, per_sec: f64, now: Instant) -> Bot {
        let mut bot = Bot {
            nick: settings.nick.clone(),
            settings,
            nick_attempts: 0,
            nicklen: DEFAULT_NICKLEN,
            registered: false,
            urgent: Vec::new(),
            paced: VecDeque::new(),
            bucket: RateLimiter::with_burst(per_sec.max(0.001), burst, now),
            events: VecDeque::new(),
            names: Vec::new(),
            started: now,
            last_heard: now,
            keepalive: None,
            game_pings: VecDeque::new(),
            ping_count: 0,
            quitting: false,
        };
        if let Some(password) = bot.settings.password.clone() {
            bot.send_now("PASS", &[&password]);
        }
        let nick = bot.nick.clone();
        bot.send_now("NICK", &[&nick]);
        let (user, realname) = (bot.settings.user.clone(), bot.settings.realname.clone());
        bot.send_now("USER", &[&user, "0", "*", &realname]);
        bot
    }

    /// The nick in use (or being tried).
    pub fn nick(&self) -> &str {
        &self.nick
    }

    /// The channel the bot is for.
    pub fn channel(&self) -> &str {
        &self.settings.channel
    }

    /// Registered with the server.
    pub fn is_registered(&self) -> bool {
        self.registered
    }

    fn send_now(&mut self, command: &str, params: &[&str]) {
        self.urgent.extend(format(command, params));
    }

    fn send_paced(&mut self, command: &str, params: &[&str]) {
        if self.quitting {
            return;
        }
        self.paced.push_back(format(command, params));
        let over = self.paced.len().saturating_sub(MAX_QUEUED_LINES);
        if over > 0 {
            self.paced.drain(..over);
            self.events.push_back(BotEvent::Dropped(over));
        }
    }

    /// Say `text` in the channel (cut to fit, one message per line).
    pub fn say(&mut self, text: &str) {
        let target = self.settings.channel.clone();
        self.privmsg(&target, text);
    }

    /// Write `text` to `target` (a nick or the channel).
    pub fn privmsg(&mut self, target: &str, text: &str) {
        let budget = text_budget(&self.nick, "PRIVMSG", target);
        for line in split_text(text, budget) {
            self.send_paced("PRIVMSG", &[target, &line]);
        }
    }

    /// Ask for the channel's names (answered with [`BotEvent::Names`]).
    pub fn request_names(&mut self) {
        let channel = self.settings.channel.clone();
        self.send_paced("NAMES", &[&channel]);
    }

    /// Ping the server (answered with [`BotEvent::Pong`]).
    pub fn ping(&mut self, now: Instant) {
        let token = self.next_token("game");
        self.game_pings.push_back((token.clone(), now));
        if self.game_pings.len() > 16 {
            self.game_pings.pop_front();
        }
        self.send_paced("PING", &[&token]);
    }

    fn next_token(&mut self, kind: &str) -> String {
        self.ping_count += 1;
        format!("portal-{kind}-{}", self.ping_count)
    }

    /// Leave with `reason`: what is waiting is dropped, QUIT goes at once.
    pub fn quit(&mut self, reason: &str) {
        self.paced.clear();
        self.send_now("QUIT", &[reason]);
        self.quitting = true;
    }

    /// One line from the server.
    pub fn handle_line(&mut self, line: &str, now: Instant) {
        self.last_heard = now;
        self.keepalive = None;
        let Some(message) = parse(line) else {
            return;
        };
        match message.command.as_str() {
            "PING" => {
                let params: Vec<&str> = message.params.iter().map(String::as_str).collect();
                self.send_now("PONG", &params);
            }
            "PONG" => self.pong(&message, now),
            "001" => self.signed_on(&message),
            "005" => self.isupport(&message),
            "432" | "433" | "436" | "437" if !self.registered => self.nick_taken(),
            "JOIN" if self.is_me(&message) => self.events.push_back(BotEvent::Joined),
            "NICK" if self.is_me(&message) => self.nick = message.param(0).to_owned(),
            "KICK" if self.same(message.param(1), &self.nick) => self.kicked(&message),
            "PRIVMSG" => self.privmsg_in(&message),
            "353" if self.is_our_channel(message.param(2)) => {
                let names = message.param(3).split_whitespace().map(str::to_owned);
                self.names.extend(names);
            }
            "366" if self.is_our_channel(message.param(1)) => {
                let names = std::mem::take(&mut self.names);
                self.events.push_back(BotEvent::Names(names));
            }
            "403" | "405" | "471" | "473" | "474" | "475" | "477" => {
                let text = message.params.last().cloned().unwrap_or_default();
                let what = format!("{} {}", message.command, text);
                self.events.push_back(BotEvent::JoinRefused(what));
            }
            "ERROR" => {
                let text = message.params.first().cloned().unwrap_or_default();
                self.events.push_back(BotEvent::ServerError(text));
            }
            _ => {}
        }
    }

    fn signed_on(&mut self, message: &Message) {
        self.registered = true;
        if let Some(nick) = message.params.first() {
            self.nick = nick.clone();
        }
        let channel = self.settings.channel.clone();
        self.send_now("JOIN", &[&channel]);
        let nick = self.nick.clone();
        self.events.push_back(BotEvent::SignedOn { nick });
    }

    fn isupport(&mut self, message: &Message) {
        for token in &message.params {
            if let Some(n) = token.strip_prefix("NICKLEN=") {
                if let Ok(n) = n.parse::<usize>() {
                    self.nicklen = n.clamp(1, 64);
                }
            }
        }
    }

    fn nick_taken(&mut self) {
        self.nick_attempts += 1;
        let next = alternative_nick(&self.settings.nick, self.nick_attempts, self.nicklen);
        let tried = std::mem::replace(&mut self.nick, next.clone());
        self.send_now("NICK", &[&next]);
        self.events.push_back(BotEvent::NickInUse { tried, next });
    }

    fn kicked(&mut self, message: &Message) {
        let by = message.nick().unwrap_or("").to_owned();
        let reason = message.param(2).to_owned();
        self.events.push_back(BotEvent::Kicked { by, reason });
        let channel = self.settings.channel.clone();
        self.send_paced("JOIN", &[&channel]);
    }

    fn pong(&mut self, message: &Message, now: Instant) {
        let token = message.params.last().map_or("", String::as_str);
        if let Some(i) = self.game_pings.iter().position(|(t, _)| t == token) {
            if let Some((_, sent)) = self.game_pings.remove(i) {
                let took = now.saturating_duration_since(sent);
                self.events.push_back(BotEvent::Pong(took));
            }
        }
    }

    fn privmsg_in(&mut self, message: &Message) {
        let user = message.nick().unwrap_or("").to_owned();
        let target = message.param(0);
        let raw = message.param(1);
        let (text, kind) = match ctcp(raw) {
            Some(("ACTION", rest)) => (rest, Said::Action),
            // Other CTCP (VERSION, PING, …) is not for the game.
            Some(_) => return,
            None => (raw, Said::Message),
        };
        let text = strip_formatting(text);
        if self.same(target, &self.nick) {
            self.events.push_back(BotEvent::Private { user, text });
        } else if self.is_our_channel(target) {
            self.events
                .push_back(BotEvent::Channel { user, text, kind });
        }
    }

    fn is_me(&self, message: &Message) -> bool {
        message.nick().is_some_and(|n| self.same(n, &self.nick))
    }

    fn is_our_channel(&self, name: &str) -> bool {
        self.same(name, &self.settings.channel)
    }

    /// IRC names compare without case (ASCII; rfc1459's `[]\` folding is
    /// not applied).
    fn same(&self, a: &str, b: &str) -> bool {
        a.eq_ignore_ascii_case(b)
    }

    /// The next thing that happened.
    pub fn poll_event(&mut self) -> Option<BotEvent> {
        self.events.pop_front()
    }

    /// Check the clocks: send a keepalive after [`KEEPALIVE`] of quiet,
    /// report the link dead when it or the registration goes unanswered.
    pub fn handle_timeout(&mut self, now: Instant) {
        if !self.registered {
            if now.saturating_duration_since(self.started) >= DEAD_AFTER {
                self.events.push_back(BotEvent::Dead("no registration"));
                self.started = now;
            }
            return;
        }
        match &self.keepalive {
            Some((_, sent)) if now.saturating_duration_since(*sent) >= DEAD_AFTER => {
                self.events.push_back(BotEvent::Dead("no answer to PING"));
                self.keepalive = None;
                self.last_heard = now;
            }
            None if now.saturating_duration_since(self.last_heard) >= KEEPALIVE => {
                let token = self.next_token("keepalive");
                self.send_now("PING", &[&token]);
                self.keepalive = Some((token, now));
            }
            _ => {}
        }
    }

    /// When [`Bot::handle_timeout`] or [`Bot::transmit`] has something
    /// to do next.
    pub fn poll_timeout(&mut self, now: Instant) -> Instant {
        let clock = if !self.registered {
            self.started + DEAD_AFTER
        } else {
            match &self.keepalive {
                Some((_, sent)) => *sent + DEAD_AFTER,
                None => self.last_heard + KEEPALIVE,
            }
        };
        if self.paced.is_empty() {
            clock
        } else {
            clock.min(now + self.bucket.next_token_in(now))
        }
    }

    /// The bytes to write now: urgent lines, then the paced lines the
    /// bucket allows.
    pub fn transmit(&mut self, now: Instant) -> Vec<u8> {
        let mut out = std::mem::take(&mut self.urgent);
        while !self.paced.is_empty() && self.bucket.try_take(now) {
            if let Some(line) = self.paced.pop_front() {
                out.extend(line);
            }
        }
        out
    }

    /// Lines still waiting for the bucket.
    pub fn queued(&self) -> usize {
        self.paced.len()
    }
}

/// What [`LineBuffer::next_line`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// A line without its end, UTF-8 (invalid bytes replaced).
    Text(String),
    /// A line over [`MAX_INPUT_LINE`], dropped.
    TooLong,
}

/// Cuts the server's byte stream into lines (LF ended, a CR before it
/// dropped), never holding more than [`MAX_INPUT_LINE`] bytes.
#[derive(Debug, Default)]
pub struct LineBuffer {
    buf: Vec<u8>,
    /// Inside a line that was too long: drop up to its end.
    skipping: bool,
}

impl LineBuffer {
    /// Add bytes read from the socket.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete line, if any.
    pub fn next_line(&mut self) -> Option<Line> {
        loop {
            let Some(end) = self.buf.iter().position(|&b| b == b'\n') else {
                if self.buf.len() > MAX_INPUT_LINE {
                    self.buf.clear();
                    let first = !self.skipping;
                    self.skipping = true;
                    if first {
                        return Some(Line::TooLong);
                    }
                }
                return None;
            };
            let line: Vec<u8> = self.buf.drain(..=end).collect();
            if std::mem::take(&mut self.skipping) {
                continue;
            }
            if line.len() > MAX_INPUT_LINE {
                return Some(Line::TooLong);
            }
            let text = String::from_utf8_lossy(&line[..line.len() - 1]);
            return Some(Line::Text(text.trim_end_matches('\r').to_owned()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> BotSettings {
        BotSettings {
            nick: "demobot".into(),
            channel: "#plaza".into(),
            user: "portal".into(),
            realname: "Portal bot".into(),
            password: None,
        }
    }

    fn lines(bytes: &[u8]) -> Vec<String> {
        String::from_utf8_lossy(bytes)
            .split_terminator("\r\n")
            .map(str::to_owned)
            .collect()
    }

    fn events(bot: &mut Bot) -> Vec<BotEvent> {
        std::iter::from_fn(|| bot.poll_event()).collect()
    }

    fn signed_on(now: Instant) -> Bot {
        let mut bot = Bot::new(settings(), 4.0, 1.0, now);
        bot.transmit(now);
        bot.handle_line(":irc.test 001 demobot :Welcome", now);
        bot.transmit(now);
        events(&mut bot);
        bot
    }

    #[test]
    fn messages_parse_with_prefix_tags_and_trailing() {
        let m = parse("@time=x :nick!u@h PRIVMSG #c :hello  world ").unwrap();
        assert_eq!(m.prefix.as_deref(), Some("nick!u@h"));
        assert_eq!(m.command, "PRIVMSG");
        assert_eq!(m.params, ["#c", "hello  world "]);
        let m = parse("PING irc.test").unwrap();
        assert_eq!((m.prefix, m.params), (None, vec!["irc.test".to_owned()]));
        let m = parse(":srv 353 me = #c :a @b +c").unwrap();
        assert_eq!(m.params, ["me", "=", "#c", "a @b +c"]);
        assert_eq!(parse(""), None);
        assert_eq!(parse(":only-a-prefix"), None);
        assert_eq!(parse("@tags-only"), None);
    }

    #[test]
    fn lines_are_formatted_safely_and_never_over_512_bytes() {
        assert_eq!(format("NICK", &["bot"]), b"NICK bot\r\n");
        assert_eq!(
            format("PRIVMSG", &["#c", "two words"]),
            b"PRIVMSG #c :two words\r\n"
        );
        assert_eq!(
            format("PRIVMSG", &["#c", "a\r\nQUIT :x"]),
            b"PRIVMSG #c :a  QUIT :x\r\n",
            "no line injection"
        );
        assert_eq!(format("PRIVMSG", &["#c", ""]), b"PRIVMSG #c :\r\n");
        // Found by the property test: a line break in the command itself.
        assert_eq!(format("A\n0", &[]), b"A_0\r\n");
        let long = format("PRIVMSG", &["#c", &"é".repeat(600)]);
        assert!(long.len() <= MAX_LINE, "{}", long.len());
        assert!(String::from_utf8(long).is_ok(), "cut at a char boundary");
    }

    #[test]
    fn text_is_split_at_spaces_and_line_breaks_within_the_budget() {
        assert_eq!(split_text("one two three", 8), ["one two", "three"]);
        assert_eq!(split_text("a\n\nb\r\n", 100), ["a", "b"]);
        assert_eq!(split_text("abcdefghij", 4), ["abcd", "efgh", "ij"]);
        let pieces = split_text(&"ü".repeat(10), 5);
        assert!(pieces.iter().all(|p| p.len() <= 5), "{pieces:?}");
        assert_eq!(pieces.concat(), "ü".repeat(10));
    }

    #[test]
    fn a_relayed_line_with_the_longest_prefix_still_fits_512_bytes() {
        let mut bot = signed_on(Instant::now());
        bot.say(&"word ".repeat(300));
        let now = Instant::now() + Duration::from_secs(3600);
        let mut sent = Vec::new();
        for i in 0..20 {
            sent.extend(bot.transmit(now + Duration::from_secs(i)));
        }
        let host = "h".repeat(63);
        for line in lines(&sent) {
            let relayed = format!(":demobot!~portal00@{host} {line}\r\n");
            assert!(relayed.len() <= MAX_LINE, "{} bytes", relayed.len());
        }
        assert!(lines(&sent).len() >= 3);
    }

    #[test]
    fn formatting_and_colours_are_stripped() {
        assert_eq!(
            strip_formatting("\x02bold\x02 \x0304,12red\x03 \x031x\x0f \x04ff00ffhex"),
            "bold red x hex"
        );
        assert_eq!(strip_formatting("\x03,5 comma stays"), ",5 comma stays");
        assert_eq!(strip_formatting("plain"), "plain");
    }

    #[test]
    fn nick_alternatives_fit_the_nick_length() {
        assert_eq!(alternative_nick("demobot", 1, 9), "demobot_");
        assert_eq!(alternative_nick("demobot", 2, 9), "demobot2");
        assert_eq!(alternative_nick("longnickname", 12, 9), "longnic12");
        assert_eq!(alternative_nick("abcdefghi", 1, 9), "abcdefgh_");
    }

    #[test]
    fn backoff_grows_to_its_bound_and_resets() {
        let mut b = Backoff::new(Duration::from_secs(1), 2.0, Duration::from_secs(5));
        let got: Vec<u64> = (0..5).map(|_| b.next_delay().as_secs()).collect();
        assert_eq!(got, [1, 2, 4, 5, 5]);
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_secs(1));
    }

    #[test]
    fn registration_then_join_after_welcome() {
        let now = Instant::now();
        let mut bot = Bot::new(settings(), 4.0, 1.0, now);
        assert_eq!(
            lines(&bot.transmit(now)),
            ["NICK demobot", "USER portal 0 * :Portal bot"]
        );
        bot.handle_line(":irc.test 001 demobot :Welcome", now);
        assert_eq!(lines(&bot.transmit(now)), ["JOIN #plaza"]);
        assert_eq!(
            events(&mut bot),
            [BotEvent::SignedOn {
                nick: "demobot".into()
            }]
        );
        bot.handle_line(":demobot!~portal@127.0.0.1 JOIN :#plaza", now);
        assert_eq!(events(&mut bot), [BotEvent::Joined]);
    }

    #[test]
    fn a_taken_nick_is_replaced_until_one_is_free() {
        let now = Instant::now();
        let mut bot = Bot::new(settings(), 4.0, 1.0, now);
        bot.transmit(now);
        bot.handle_line(":irc.test 433 * demobot :Nickname already in use", now);
        assert_eq!(lines(&bot.transmit(now)), ["NICK demobot_"]);
        bot.handle_line(":irc.test 433 * demobot_ :Nickname already in use", now);
        assert_eq!(lines(&bot.transmit(now)), ["NICK demobot2"]);
        bot.handle_line(":irc.test 001 demobot2 :Welcome", now);
        assert_eq!(bot.nick(), "demobot2");
        // After registration a 433 (to some later NICK) changes nothing.
        bot.handle_line(":irc.test 433 demobot2 x :in use", now);
        assert_eq!(bot.nick(), "demobot2");
    }

    #[test]
    fn server_pings_are_answered_at_once_even_while_pacing() {
        let now = Instant::now();
        let mut bot = signed_on(now);
        for i in 0..10 {
            bot.say(&format!("line {i}"));
        }
        let first = lines(&bot.transmit(now));
        assert_eq!(first.len(), 4, "the burst: {first:?}");
        bot.handle_line("PING :irc.test", now);
        assert_eq!(lines(&bot.transmit(now)), ["PONG irc.test"]);
        assert_eq!(bot.queued(), 6);
        assert_eq!(bot.poll_timeout(now), now + Duration::from_secs(1));
    }

    #[test]
    fn channel_and_private_messages_become_events_with_the_speaker() {
        let now = Instant::now();
        let mut bot = signed_on(now);
        bot.handle_line(":anna!a@h PRIVMSG #Plaza :\x02hi\x02 all", now);
        bot.handle_line(":anna!a@h PRIVMSG #plaza :\x01ACTION waves\x01", now);
        bot.handle_line(":bob!b@h PRIVMSG demobot :psst", now);
        bot.handle_line(":bob!b@h PRIVMSG demobot :\x01VERSION\x01", now);
        bot.handle_line(":bob!b@h PRIVMSG #elsewhere :not ours", now);
        assert_eq!(
            events(&mut bot),
            [
                BotEvent::Channel {
                    user: "anna".into(),
                    text: "hi all".into(),
                    kind: Said::Message
                },
                BotEvent::Channel {
                    user: "anna".into(),
                    text: "waves".into(),
                    kind: Said::Action
                },
                BotEvent::Private {
                    user: "bob".into(),
                    text: "psst".into()
                },
            ]
        );
    }

    #[test]
    fn names_are_collected_until_the_end_of_the_list() {
        let now = Instant::now();
        let mut bot = signed_on(now);
        bot.request_names();
        assert_eq!(lines(&bot.transmit(now)), ["NAMES #plaza"]);
        bot.handle_line(":srv 353 demobot = #plaza :demobot @anna", now);
        bot.handle_line(":srv 353 demobot = #plaza :bob", now);
        bot.handle_line(":srv 366 demobot #plaza :End of NAMES list", now);
        assert_eq!(
            events(&mut bot),
            [BotEvent::Names(vec![
                "demobot".into(),
                "@anna".into(),
                "bob".into()
            ])]
        );
    }

    #[test]
    fn a_game_ping_is_timed_by_its_pong() {
        let now = Instant::now();
        let mut bot = signed_on(now);
        bot.ping(now);
        let sent = lines(&bot.transmit(now));
        let token = sent[0].strip_prefix("PING ").unwrap().to_owned();
        bot.handle_line(
            &format!(":srv PONG srv :{token}"),
            now + Duration::from_millis(30),
        );
        assert_eq!(
            events(&mut bot),
            [BotEvent::Pong(Duration::from_millis(30))]
        );
    }

    #[test]
    fn a_silent_server_gets_a_keepalive_then_is_declared_dead() {
        let now = Instant::now();
        let mut bot = signed_on(now);
        assert_eq!(bot.poll_timeout(now), now + KEEPALIVE);
        let quiet = now + KEEPALIVE;
        bot.handle_timeout(quiet);
        assert!(lines(&bot.transmit(quiet))[0].starts_with("PING portal-keepalive-"));
        bot.handle_timeout(quiet + DEAD_AFTER);
        assert_eq!(events(&mut bot), [BotEvent::Dead("no answer to PING")]);
    }

    #[test]
    fn any_line_from_the_server_answers_the_keepalive() {
        let now = Instant::now();
        let mut bot = signed_on(now);
        bot.handle_timeout(now + KEEPALIVE);
        bot.handle_line(":srv NOTICE demobot :hi", now + KEEPALIVE);
        bot.handle_timeout(now + KEEPALIVE + DEAD_AFTER);
        assert!(events(&mut bot).is_empty());
    }

    #[test]
    fn an_unregistered_connection_is_dead_after_the_limit() {
        let now = Instant::now();
        let mut bot = Bot::new(settings(), 4.0, 1.0, now);
        bot.handle_timeout(now + DEAD_AFTER);
        assert_eq!(events(&mut bot), [BotEvent::Dead("no registration")]);
    }

    #[test]
    fn a_kick_rejoins_and_quit_goes_first_dropping_the_queue() {
        let now = Instant::now();
        let mut bot = signed_on(now);
        bot.handle_line(":op!o@h KICK #plaza demobot :out", now);
        assert_eq!(lines(&bot.transmit(now)), ["JOIN #plaza"]);
        for _ in 0..10 {
            bot.say("x");
        }
        bot.quit("Portal shutting down");
        assert_eq!(lines(&bot.transmit(now)), ["QUIT :Portal shutting down"]);
        bot.say("late");
        assert_eq!(bot.queued(), 0);
    }

    #[test]
    fn the_queue_is_bounded() {
        let now = Instant::now();
        let mut bot = signed_on(now);
        for _ in 0..MAX_QUEUED_LINES + 5 {
            bot.say("x");
        }
        assert_eq!(bot.queued(), MAX_QUEUED_LINES);
        assert_eq!(events(&mut bot).last(), Some(&BotEvent::Dropped(1)));
    }

    #[test]
    fn lines_split_at_every_byte_boundary_come_out_the_same() {
        let input = b"PING :a\r\n:x PRIVMSG #c :h\xc3\xa9llo\r\nno-cr\n";
        let whole = {
            let mut b = LineBuffer::default();
            b.push(input);
            std::iter::from_fn(|| b.next_line()).collect::<Vec<_>>()
        };
        assert_eq!(
            whole,
            [
                Line::Text("PING :a".into()),
                Line::Text(":x PRIVMSG #c :héllo".into()),
                Line::Text("no-cr".into())
            ]
        );
        for cut in 0..input.len() {
            let mut b = LineBuffer::default();
            let mut got = Vec::new();
            b.push(&input[..cut]);
            got.extend(std::iter::from_fn(|| b.next_line()));
            b.push(&input[cut..]);
            got.extend(std::iter::from_fn(|| b.next_line()));
            assert_eq!(got, whole, "cut at {cut}");
        }
    }

    proptest::proptest! {
        #[test]
        fn any_line_parses_without_panic_and_formats_within_512_bytes(
            line in "[ -~\u{1}-\u{1f}\u{e9}\u{1f600}]{0,600}",
        ) {
            if let Some(m) = parse(&line) {
                let params: Vec<&str> = m.params.iter().map(String::as_str).collect();
                let out = format(&m.command, &params);
                proptest::prop_assert!(out.len() <= MAX_LINE);
                let body = &out[..out.len() - 2];
                proptest::prop_assert!(!body.contains(&b'\n') && !body.contains(&b'\r'));
            }
        }

        #[test]
        fn split_pieces_fit_and_keep_every_word(
            text in "[a-z \u{e9}\n]{0,300}",
            budget in 4usize..60,
        ) {
            let pieces = split_text(&text, budget);
            proptest::prop_assert!(pieces.iter().all(|p| p.len() <= budget && !p.contains('\n')));
            let words: String = text.split_whitespace().collect();
            let kept: String = pieces.iter().flat_map(|p| p.split_whitespace()).collect();
            proptest::prop_assert_eq!(kept, words);
        }

        #[test]
        fn chunking_the_stream_never_changes_the_lines(
            input in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::strategy::Just(b'\r'),
                    proptest::strategy::Just(b'\n'),
                    proptest::strategy::Just(b'a'),
                    proptest::arbitrary::any::<u8>()
                ],
                0..300,
            ),
            cut in 0usize..300,
        ) {
            let cut = cut.min(input.len());
            let run = |parts: &[&[u8]]| {
                let mut b = LineBuffer::default();
                let mut got = Vec::new();
                for part in parts {
                    b.push(part);
                    got.extend(std::iter::from_fn(|| b.next_line()));
                }
                got
            };
            proptest::prop_assert_eq!(run(&[&input]), run(&[&input[..cut], &input[cut..]]));
        }
    }

    #[test]
    fn an_endless_line_is_dropped_without_growing_the_buffer() {
        let mut b = LineBuffer::default();
        b.push(&vec![b'x'; MAX_INPUT_LINE + 1]);
        assert_eq!(b.next_line(), Some(Line::TooLong));
        b.push(&vec![b'x'; MAX_INPUT_LINE + 1]);
        assert_eq!(b.next_line(), None, "reported once");
        b.push(b"tail\r\nPING :ok\r\n");
        assert_eq!(b.next_line(), Some(Line::Text("PING :ok".into())));
    }
}
