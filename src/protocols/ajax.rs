//! AJAX long-polling (protocol key `webclient/ajax`), sans-IO: Evennia's
//! `POST /webclientdata` wire format, for browsers whose websocket cannot
//! open (a proxy or network that breaks them) and for Evennia's own web
//! client, which falls back to it.
//!
//! Every request is a form-encoded POST (`application/x-www-form-urlencoded`)
//! naming a `mode`:
//!
//! | mode | fields | answer |
//! |---|---|---|
//! | `init` | `csessid`, `cuid`, `browserstr` | `{"msg": "<name> (<host>)", "csessid": "…"}`: a new session |
//! | `input` | `csessid`, `cuid`, `data` = `[cmdname, args, kwargs]` | `""` |
//! | `receive` | `csessid`, `cuid` | one `[cmdname, args, kwargs]` as soon as there is one |
//! | `keepalive` | `csessid`, `cuid` | `""` (the answer to an `ajax_keepalive` ping) |
//! | `close` | `csessid`, `cuid` | `""`; the session ends |
//!
//! A session is found by its browser id (`csessid`: the form's, else the
//! `portal_csessid` cookie) and the optional tab id `cuid` our page sends
//! (Evennia's client sends none, so it has one session per browser).
//!
//! This file holds the pure parts: form decoding ([`decode_form`]), the
//! request's mode and fields ([`parse_call`]), the answers
//! ([`init_reply`], [`answer`]), and the long-poll rules ([`LongPoll`]):
//! a `receive` is answered at once from the session's output, or parked
//! until output comes; a newer `receive` replaces a parked one (which gets
//! an empty answer, and which a client may do only a few times a second:
//! past that the newer one is refused and its connection closed); a
//! parked one is answered with a ping after
//! `receive_timeout`; a client silent for `keepalive` is pinged
//! (`["ajax_keepalive", [], {}]`, which Evennia's client answers with
//! `mode=keepalive`) and dropped when silent for `keepalive` more. The
//! session worker that owns one AJAX session ([`crate::session::ajax`])
//! drives it with the clock.
//!
//! ```
//! use portal::protocols::ajax::{decode_form, parse_call, Mode};
//! let form = decode_form(b"mode=input&csessid=abc&data=%5B%22text%22%2C%5B%22look%22%5D%2C%7B%7D%5D").unwrap();
//! let call = parse_call(&form).unwrap();
//! assert_eq!(call.mode, Mode::Input(r#"["text",["look"],{}]"#.into()));
//! ```

use crate::protocols::http::Response;
use crate::throttle::RateLimiter;
use std::time::{Duration, Instant};

/// Where the requests go.
pub const PATH: &str = "/webclientdata";
/// The sessions' protocol key (Evennia's).
pub const PROTOCOL_KEY: &str = "webclient/ajax";
/// The ping a silent client gets (Evennia's).
pub const PING: &str = r#"["ajax_keepalive",[],{}]"#;
/// The answer to input, keepalive and close: a JSON empty string.
pub const NOTHING: &str = r#""""#;
/// Most fields one request may carry.
const MAX_FIELDS: usize = 16;
/// Receives that may replace a parked one, per second and in a burst: a
/// page reloading or changing network does it now and then; a client
/// doing it in a loop (each costs the portal a worker) is refused.
const REPLACE_RATE: f64 = 2.0;
const REPLACE_BURST: f64 = 10.0;

/// Why a form could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormError {
    TooManyFields,
    /// A `%` not followed by two hex digits.
    BadEscape,
    /// A name or value that is not UTF-8 once decoded.
    NotUtf8,
}

/// Decode an `application/x-www-form-urlencoded` body into name/value
/// pairs, in order (`+` is a space, `%XX` a byte).
pub fn decode_form(body: &[u8]) -> Result<Vec<(String, String)>, FormError> {
    let mut fields = Vec::new();
    for pair in body.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
        if fields.len() == MAX_FIELDS {
            return Err(FormError::TooManyFields);
        }
        let (name, value) = match pair.iter().position(|&b| b == b'=') {
            Some(at) => (&pair[..at], &pair[at + 1..]),
            None => (pair, &[][..]),
        };
        fields.push((unescape(name)?, unescape(value)?));
    }
    Ok(fields)
}

fn unescape(text: &[u8]) -> Result<String, FormError> {
    let mut out = Vec::with_capacity(text.len());
    let mut at = 0;
    while at < text.len() {
        match text[at] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = text.get(at + 1..at + 3).ok_or(FormError::BadEscape)?;
                let hex = std::str::from_utf8(hex).map_err(|_| FormError::BadEscape)?;
                let byte = u8::from_str_radix(hex, 16).map_err(|_| FormError::BadEscape)?;
                out.push(byte);
                at += 2;
            }
            byte => out.push(byte),
        }
        at += 1;
    }
    String::from_utf8(out).map_err(|_| FormError::NotUtf8)
}

/// What a request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Open a session; the browser's name (`browserstr`).
    Init(String),
    /// One `[cmdname, args, kwargs]` message as JSON text.
    Input(String),
    Receive,
    Keepalive,
    Close,
}

/// One request: its mode and whose session it is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub mode: Mode,
    /// The form's browser id, if it sent a valid one.
    pub csessid: Option<String>,
    /// The tab id (empty when not sent).
    pub cuid: String,
}

/// The request's mode and fields; a reason when they do not make one.
pub fn parse_call(fields: &[(String, String)]) -> Result<Call, &'static str> {
    let field = |name: &str| {
        fields
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    };
    let mode = match field("mode") {
        Some("init") => Mode::Init(browser_name(field("browserstr").unwrap_or(""))),
        Some("input") => Mode::Input(field("data").ok_or("input without data")?.to_owned()),
        Some("receive") => Mode::Receive,
        Some("keepalive") => Mode::Keepalive,
        Some("close") => Mode::Close,
        Some(_) => return Err("unknown mode"),
        None => return Err("no mode"),
    };
    let csessid = field("csessid")
        .filter(|id| crate::protocols::websocket::valid_csessid(id))
        .map(str::to_owned);
    let cuid = field("cuid").unwrap_or("");
    if !valid_cuid(cuid) {
        return Err("cuid must be at most 64 letters, digits, - or _");
    }
    Ok(Call {
        mode,
        csessid,
        cuid: cuid.to_owned(),
    })
}

/// A tab id: empty, or up to 64 letters, digits, `-` and `_`.
fn valid_cuid(cuid: &str) -> bool {
    cuid.len() <= 64
        && cuid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The browser name, kept short and plain (it ends up in the client name).
fn browser_name(raw: &str) -> String {
    raw.chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, ' ' | '-' | '_' | '.'))
        .take(40)
        .collect()
}

/// Which session a request is for: its browser id and tab id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    pub csessid: String,
    pub cuid: String,
}

impl Call {
    /// The session key: the form's browser id, else the cookie's; `None`
    /// when neither is a valid one.
    pub fn key(&self, cookie: Option<&str>) -> Option<Key> {
        let csessid = self.csessid.as_deref().or(cookie)?;
        Some(Key {
            csessid: csessid.to_owned(),
            cuid: self.cuid.clone(),
        })
    }
}

/// The answer to `init`: the portal's name and address, and the browser
/// id the session is filed under.
pub fn init_reply(name: &str, host: &str, csessid: &str) -> String {
    let msg = format!("{name} ({host})");
    serde_json::json!({"msg": msg, "csessid": csessid}).to_string()
}

/// Evennia's `connection_close` message, for the end of a session or a
/// receive for one that does not exist (ended, or lost in a portal
/// restart). `code` is the websocket close code the same end would have
/// (1000: closed on purpose; 1001: the portal going away or the session
/// lost, so a page reconnects), for pages that tell them apart.
pub fn gone_reply(reason: &str, code: u16) -> String {
    serde_json::json!(["connection_close", [reason], {"code": code}]).to_string()
}

/// A JSON answer (an empty `body` is the empty answer a replaced receive
/// gets); never cached. Sent as plain text, as Evennia's portal does:
/// Evennia's client parses the `init` answer itself, and would fail on
/// one jQuery had already parsed for an `application/json` type.
pub fn answer(body: &str) -> Response {
    Response::new(200, "text/plain; charset=utf-8", body.as_bytes())
        .with("Cache-Control", "no-store")
        .with("X-Content-Type-Options", "nosniff")
}

/// The long-poll timing, from `[web]` in portal.conf.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// A parked receive is answered with a ping after this.
    pub receive_timeout: Duration,
    /// A client silent this long is pinged; silent as long again, dropped.
    pub keepalive: Duration,
}

/// What a receive is answered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// The session's next output message.
    Message,
    /// [`PING`].
    Ping,
    /// Nothing (a receive replaced by a newer one).
    Empty,
    /// Refused (429) and its connection closed: it would have replaced a
    /// parked receive too often.
    TooFast,
}

/// One session's long-poll state: at most one parked receive `P` (the
/// worker's held request and socket; anything in tests), the client's
/// last request, and the ping.
#[derive(Debug)]
pub struct LongPoll<P> {
    timing: Timing,
    parked: Option<(P, Instant)>,
    last_request: Instant,
    /// When the silent client was pinged (cleared by any request).
    pinged_at: Option<Instant>,
    /// A ping waiting for the next receive.
    ping_queued: bool,
    /// Receives replacing a parked one.
    replacing: RateLimiter,
}

/// What of a [`LongPoll`] crosses `portal upgrade` (no parked receive:
/// it is answered before the freeze).
#[derive(serde::Serialize, serde::Deserialize)]
struct FrozenPoll {
    #[serde(with = "crate::session::frozen::instant")]
    last_request: Instant,
    #[serde(with = "crate::session::frozen::option_instant")]
    pinged_at: Option<Instant>,
    ping_queued: bool,
    replacing: RateLimiter,
}

impl<P> LongPoll<P> {
    /// The state as bytes, times relative to `now`; a parked receive is
    /// not carried (take it first).
    pub fn freeze(&self, now: Instant) -> Vec<u8> {
        let frozen = FrozenPoll {
            last_request: self.last_request,
            pinged_at: self.pinged_at,
            ping_queued: self.ping_queued,
            replacing: self.replacing.clone(),
        };
        crate::session::frozen::with_reference(now, || postcard::to_stdvec(&frozen))
            .unwrap_or_default()
    }

    /// [`LongPoll::freeze`]'s bytes, in the new portal at `now`.
    pub fn thaw(bytes: &[u8], timing: Timing, now: Instant) -> Result<LongPoll<P>, String> {
        if bytes.len() > 1024 {
            return Err(format!("{} bytes of long-poll state", bytes.len()));
        }
        let frozen: FrozenPoll =
            crate::session::frozen::with_reference(now, || postcard::from_bytes(bytes))
                .map_err(|e| e.to_string())?;
        if !frozen.replacing.is_sane() {
            return Err("receive limiter counters out of range".into());
        }
        Ok(LongPoll {
            timing,
            parked: None,
            last_request: frozen.last_request,
            pinged_at: frozen.pinged_at,
            ping_queued: frozen.ping_queued,
            replacing: frozen.replacing,
        })
    }
}

impl<P> LongPoll<P> {
    /// A session opened (by an `init`) at `now`.
    pub fn new(timing: Timing, now: Instant) -> LongPoll<P> {
        LongPoll {
            timing,
            parked: None,
            last_request: now,
            pinged_at: None,
            ping_queued: false,
            replacing: RateLimiter::with_burst(REPLACE_RATE, REPLACE_BURST, now),
        }
    }

    /// New timing (a config reload).
    pub fn set_timing(&mut self, timing: Timing) {
        self.timing = timing;
    }

    /// Any request from the client: it is alive.
    pub fn heard(&mut self, now: Instant) {
        self.last_request = now;
        self.pinged_at = None;
    }

    /// A receive at `now`; `has_message` says whether output is waiting.
    /// Returns the receives to answer now, oldest first: a parked one it
    /// replaces (empty), and this one if it is not parked.
    pub fn receive(&mut self, request: P, has_message: bool, now: Instant) -> Vec<(P, Reply)> {
        self.heard(now);
        if self.parked.is_some() && !has_message && !self.replacing.try_take(now) {
            return vec![(request, Reply::TooFast)];
        }
        let mut answers = Vec::new();
        if let Some((old, _)) = self.parked.take() {
            answers.push((old, Reply::Empty));
        }
        if has_message {
            answers.push((request, Reply::Message));
        } else if std::mem::take(&mut self.ping_queued) {
            answers.push((request, Reply::Ping));
        } else {
            self.parked = Some((request, now));
        }
        answers
    }

    /// Output arrived: the parked receive, if any, to answer with it.
    pub fn message_ready(&mut self) -> Option<P> {
        self.parked.take().map(|(request, _)| request)
    }

    /// The parked receive, taken away (its client left, or the session is
    /// ending).
    pub fn take_parked(&mut self) -> Option<P> {
        self.parked.take().map(|(request, _)| request)
    }

    /// The parked receive, if any.
    pub fn parked(&self) -> Option<&P> {
        self.parked.as_ref().map(|(request, _)| request)
    }

    /// The parked receive, to change.
    pub fn parked_mut(&mut self) -> Option<&mut P> {
        self.parked.as_mut().map(|(request, _)| request)
    }

    /// Run the clock: the receives to answer now, and whether the client
    /// is to be dropped (pinged and silent since).
    pub fn handle_timeout(&mut self, now: Instant) -> (Vec<(P, Reply)>, bool) {
        let mut answers = Vec::new();
        let late = |at: Instant, after: Duration| now.saturating_duration_since(at) >= after;
        if self
            .parked
            .as_ref()
            .is_some_and(|(_, at)| late(*at, self.timing.receive_timeout))
        {
            if let Some((request, _)) = self.parked.take() {
                answers.push((request, Reply::Ping));
            }
        }
        match self.pinged_at {
            Some(at) if late(at, self.timing.keepalive) => return (answers, true),
            Some(_) => {}
            None if late(self.last_request, self.timing.keepalive) => {
                self.pinged_at = Some(now);
                match self.parked.take() {
                    Some((request, _)) => answers.push((request, Reply::Ping)),
                    None => self.ping_queued = true,
                }
            }
            None => {}
        }
        (answers, false)
    }

    /// When [`LongPoll::handle_timeout`] next has something to do.
    pub fn poll_timeout(&self) -> Instant {
        let silence = match self.pinged_at {
            Some(at) => at + self.timing.keepalive,
            None => self.last_request + self.timing.keepalive,
        };
        let parked = self
            .parked
            .as_ref()
            .map(|(_, at)| *at + self.timing.receive_timeout);
        parked.map_or(silence, |p| p.min(silence))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const TIMING: Timing = Timing {
        receive_timeout: Duration::from_secs(25),
        keepalive: Duration::from_secs(30),
    };

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn forms_decode_plus_percent_and_empty_values() {
        let got = decode_form(b"a=1+2&b=%7B%22x%22%7D&c&&d=").unwrap();
        let want = [("a", "1 2"), ("b", "{\"x\"}"), ("c", ""), ("d", "")];
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(got, want);
        assert_eq!(decode_form(b"a=%G1"), Err(FormError::BadEscape));
        assert_eq!(decode_form(b"a=%4"), Err(FormError::BadEscape));
        assert_eq!(decode_form(b"a=%FF"), Err(FormError::NotUtf8));
        let many = vec!["x=1"; 20].join("&");
        assert_eq!(decode_form(many.as_bytes()), Err(FormError::TooManyFields));
        assert_eq!(decode_form(b"").unwrap(), Vec::new());
    }

    #[test]
    fn calls_name_their_mode_browser_id_and_tab() {
        let form = decode_form(
            b"mode=init&csessid=0123456789abcdef0123&cuid=tab-1&browserstr=chrome%3Cscript",
        )
        .unwrap();
        let call = parse_call(&form).unwrap();
        assert_eq!(call.mode, Mode::Init("chromescript".into()));
        assert_eq!(call.csessid.as_deref(), Some("0123456789abcdef0123"));
        let key = call.key(Some("cookie0123456789abcd")).unwrap();
        assert_eq!(key.csessid, "0123456789abcdef0123", "the form's id wins");
        assert_eq!(key.cuid, "tab-1");

        let form = decode_form(b"mode=receive&csessid=short").unwrap();
        let call = parse_call(&form).unwrap();
        assert_eq!(call.csessid, None, "an id we never hand out is ignored");
        assert_eq!(call.key(None), None);
        assert_eq!(
            call.key(Some("cookie0123456789abcd")).map(|k| k.csessid),
            Some("cookie0123456789abcd".into())
        );
        for (body, why) in [
            (&b"csessid=x"[..], "no mode"),
            (b"mode=launch", "unknown mode"),
            (b"mode=input", "input without data"),
        ] {
            assert_eq!(parse_call(&decode_form(body).unwrap()), Err(why));
        }
        let bad_tab = decode_form(b"mode=receive&cuid=a%20b").unwrap();
        assert!(parse_call(&bad_tab).is_err());
    }

    #[test]
    fn answers_are_json() {
        let init: serde_json::Value =
            serde_json::from_str(&init_reply("Portal \"x\"", "h:4001", "abc")).unwrap();
        assert_eq!(init["msg"], "Portal \"x\" (h:4001)");
        assert_eq!(init["csessid"], "abc");
        let gone: serde_json::Value = serde_json::from_str(&gone_reply("bye", 1000)).unwrap();
        assert_eq!(
            gone,
            serde_json::json!(["connection_close", ["bye"], {"code": 1000}])
        );
        let text = String::from_utf8(answer(NOTHING).to_bytes(false)).unwrap();
        assert!(text.contains("Content-Type: text/plain"), "{text}");
        assert!(text.contains("X-Content-Type-Options: nosniff"), "{text}");
        assert!(text.ends_with("\r\n\r\n\"\""), "{text}");
    }

    #[test]
    fn a_receive_is_answered_at_once_from_output_or_parked_until_it_comes() {
        let t0 = Instant::now();
        let mut poll = LongPoll::new(TIMING, t0);
        assert_eq!(poll.receive(1, true, t0), vec![(1, Reply::Message)]);
        assert_eq!(poll.receive(2, false, t0), vec![]);
        assert_eq!(poll.parked(), Some(&2));
        assert_eq!(poll.message_ready(), Some(2));
        assert_eq!(poll.message_ready(), None);
    }

    #[test]
    fn a_newer_receive_replaces_a_parked_one_which_gets_an_empty_answer() {
        let t0 = Instant::now();
        let mut poll = LongPoll::new(TIMING, t0);
        assert!(poll.receive(1, false, t0).is_empty());
        assert_eq!(poll.receive(2, false, t0), vec![(1, Reply::Empty)]);
        assert_eq!(
            poll.receive(3, true, t0),
            vec![(2, Reply::Empty), (3, Reply::Message)]
        );
        assert_eq!(poll.parked(), None);
    }

    #[test]
    fn replacing_a_parked_receive_in_a_loop_is_refused() {
        let t0 = Instant::now();
        let mut poll = LongPoll::new(TIMING, t0);
        poll.receive(0, false, t0);
        for n in 1..=10 {
            assert_eq!(poll.receive(n, false, t0), vec![(n - 1, Reply::Empty)]);
        }
        assert_eq!(poll.receive(11, false, t0), vec![(11, Reply::TooFast)]);
        assert_eq!(poll.parked(), Some(&10), "the parked one stays");
        assert_eq!(
            poll.receive(12, true, t0),
            vec![(10, Reply::Empty), (12, Reply::Message)],
            "with output waiting nothing is churned"
        );
        let later = t0 + Duration::from_millis(500);
        poll.receive(13, false, later);
        assert_eq!(poll.receive(14, false, later), vec![(13, Reply::Empty)]);
    }

    #[test]
    fn a_parked_receive_is_answered_with_a_ping_after_the_timeout() {
        let t0 = Instant::now();
        let mut poll = LongPoll::new(TIMING, t0);
        poll.receive(1, false, t0);
        assert_eq!(poll.poll_timeout(), t0 + secs(25));
        assert_eq!(poll.handle_timeout(t0 + secs(24)), (vec![], false));
        assert_eq!(
            poll.handle_timeout(t0 + secs(25)),
            (vec![(1, Reply::Ping)], false)
        );
    }

    #[test]
    fn a_silent_client_is_pinged_then_dropped_and_any_request_revives_it() {
        let t0 = Instant::now();
        let mut poll: LongPoll<u32> = LongPoll::new(TIMING, t0);
        assert_eq!(poll.poll_timeout(), t0 + secs(30));
        assert_eq!(poll.handle_timeout(t0 + secs(30)), (vec![], false));
        // The ping waits for the next receive.
        assert_eq!(poll.poll_timeout(), t0 + secs(60));
        assert_eq!(poll.handle_timeout(t0 + secs(59)), (vec![], false));
        assert_eq!(poll.handle_timeout(t0 + secs(60)), (vec![], true));

        let mut poll: LongPoll<u32> = LongPoll::new(TIMING, t0);
        poll.handle_timeout(t0 + secs(30));
        assert_eq!(
            poll.receive(7, false, t0 + secs(31)),
            vec![(7, Reply::Ping)]
        );
        assert_eq!(
            poll.handle_timeout(t0 + secs(61)),
            (vec![], false),
            "heard at 31"
        );
        poll.heard(t0 + secs(50));
        assert_eq!(poll.poll_timeout(), t0 + secs(80));
    }

    #[test]
    fn a_silent_client_with_a_parked_receive_gets_the_ping_there() {
        let t0 = Instant::now();
        let timing = Timing {
            receive_timeout: secs(100),
            keepalive: secs(30),
        };
        let mut poll = LongPoll::new(timing, t0);
        poll.receive(1, false, t0);
        assert_eq!(
            poll.handle_timeout(t0 + secs(30)),
            (vec![(1, Reply::Ping)], false)
        );
        assert_eq!(poll.handle_timeout(t0 + secs(60)), (vec![], true));
    }

    proptest! {
        #[test]
        fn random_forms_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(form) = decode_form(&bytes) {
                let _ = parse_call(&form);
            }
        }

        #[test]
        fn at_most_one_receive_is_ever_parked(
            steps in proptest::collection::vec((any::<bool>(), any::<bool>(), 0u64..40), 1..60)
        ) {
            let t0 = Instant::now();
            let mut poll = LongPoll::new(TIMING, t0);
            let mut now = t0;
            let (mut asked, mut answered) = (0u32, 0u32);
            for (receive, has_message, wait) in steps {
                now += Duration::from_secs(wait);
                let (timed_out, _) = poll.handle_timeout(now);
                answered += timed_out.len() as u32;
                if receive {
                    asked += 1;
                    answered += poll.receive(asked, has_message, now).len() as u32;
                }
            }
            let parked = u32::from(poll.parked().is_some());
            prop_assert_eq!(asked, answered + parked, "every receive is answered or parked");
        }
    }
}
