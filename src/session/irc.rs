//! IRC bot sessions: `server_connect` with protocol key `irc` (Evennia's
//! `evennia.server.portal.irc.IRCBotFactory`). One thread per bot, which
//! connects to the network (plain TCP, or TLS with rustls), signs on with
//! the sans-IO [`Bot`], joins the channel, and from then on is a session
//! like any other: registered with the [`crate::registry::Registry`],
//! reached through its [`WorkerHandle`] mailbox, sleeping in a [`Waiter`].
//!
//! ```text
//!  IRC server ─► socket ─► LineBuffer ─► Bot ─► BotEvent ─► registry.data_in (bot_data_in)
//!  game ─► registry ─► mailbox (channel, privmsg, …) ─► Bot ─► paced lines ─► socket
//!  lost connection ─► PDISCONN, back-off 1 s × 1.5 … ≤ [irc] reconnect_max_secs ─► new session
//!  shutdown / server_disconnect ─► QUIT :reason ─► thread ends
//! ```
//!
//! As Evennia's portal does it, each connection that signs on is a new
//! session: protocol key `ircbot`, address `#channel@network`, and, when
//! the game's config names an account (`uid`), logged in as it. IRC
//! input reaches the game as the command `bot_data_in` with the text as
//! its argument and `type` (`msg`, `action`, `privmsg`, `nicklist`,
//! `ping`), `user` and `channel` as kwargs. From the game it takes
//! `channel` (say it in the channel), `privmsg` (kwarg `user`),
//! `request_nicklist`, `ping` and `reconnect`; `text` and everything else
//! is dropped (logged at debug level), so login screens and reload notices
//! never reach the channel. Game output while the bot is not signed on has
//! no session to go to and is lost, as in Evennia.
//!
//! Called by [`crate::session::outbound::server_connect`]; the shutdown
//! reaches bots that are between connections through [`Bots`].

use crate::protocols::irc::KEEPALIVE;
use crate::protocols::irc::{Backoff, Bot, BotEvent, BotSettings, Line, LineBuffer, Said};
use crate::session::handle::{Mail, ToWorker, WorkerHandle};
use crate::session::outbound::ServerConnectError;
use crate::session::waiter::Waiter;
use crate::shared::Shared;
use crate::stats::Stats;
use crate::throttle::RateLimiter;
use crate::wire::message::Command;
use crate::wire::session::Session;
use crate::wire::value::{Map, Value};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The protocol key a bot's session carries (Evennia's).
pub const SESSION_PROTOCOL_KEY: &str = "ircbot";
/// The command IRC input reaches the game as (Evennia's inputfunc).
pub const INPUT_COMMAND: &str = "bot_data_in";
/// How long one connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a QUIT may take to flush and the server to close after it.
const QUIT_LINGER: Duration = Duration::from_secs(2);
/// The same for the QUIT before `portal upgrade` (every thread waits).
const UPGRADE_LINGER: Duration = Duration::from_millis(300);
/// The bot's QUIT message when the portal is upgraded.
const UPGRADE_QUIT: &str = "The portal is being upgraded; back in a moment";

/// What the game's config asks for (Evennia's keys). Carried over
/// `portal upgrade`: the new portal starts the bot again from it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BotConfig {
    /// The IRC server's host name or address.
    pub network: String,
    pub port: u16,
    pub channel: String,
    pub nick: String,
    /// The game's account the session is logged in as.
    pub uid: Option<i64>,
    pub tls: bool,
    /// A server password.
    pub password: Option<String>,
}

/// Read a `server_connect` config: `network`, `channel`, `botname`
/// (strings), `port` (an int or a string of digits; default 6667, 6697
/// with TLS), `ssl` (truthy), `uid` (an int), `password` (a string).
pub fn bot_config(config: &Map) -> Result<BotConfig, ServerConnectError> {
    let string = |key: &str| config.get(key).and_then(Value::as_str).map(str::trim);
    let network = string("network")
        .filter(|n| !n.is_empty() && !n.contains(char::is_whitespace))
        .ok_or(ServerConnectError::BadConfig(
            "a string `network` (the IRC server)",
        ))?;
    let tls = config.get("ssl").is_some_and(Value::is_truthy);
    let port = match config.get("port") {
        None | Some(Value::Null) => Some(if tls { 6697 } else { 6667 }),
        Some(Value::Str(s)) => s.trim().parse::<u16>().ok(),
        Some(v) => v.as_int().and_then(|p| u16::try_from(p).ok()),
    }
    .filter(|p| *p > 0)
    .ok_or(ServerConnectError::BadConfig(
        "a `port` between 1 and 65535",
    ))?;
    let channel = string("channel")
        .filter(|c| is_name(c))
        .ok_or(ServerConnectError::BadConfig(
            "a string `channel` like `#plaza`",
        ))?;
    let channel = if channel.starts_with(['#', '&', '+', '!']) {
        channel.to_owned()
    } else {
        format!("#{channel}")
    };
    let nick = string("botname")
        .filter(|n| is_name(n) && !n.starts_with(['#', '&', ':']))
        .ok_or(ServerConnectError::BadConfig(
            "a string `botname` (the nick)",
        ))?;
    Ok(BotConfig {
        network: network.to_owned(),
        port,
        channel,
        nick: nick.to_owned(),
        uid: config.get("uid").and_then(Value::as_int),
        tls,
        password: string("password").map(str::to_owned),
    })
}

/// A nick or channel: not empty, no spaces, commas or control characters.
fn is_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name
            .chars()
            .any(|c| c == ',' || c.is_whitespace() || c.is_control())
}

/// The bots running, so a shutdown reaches one that is between
/// connections (and so has no session in the registry).
#[derive(Default)]
pub struct Bots {
    handles: Mutex<HashMap<u64, WorkerHandle>>,
    next: AtomicU64,
}

impl Bots {
    fn add(&self, handle: WorkerHandle) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.lock().insert(id, handle);
        id
    }

    fn remove(&self, id: u64) {
        self.lock().remove(&id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, WorkerHandle>> {
        // Inserts and removes only: consistent after a panic elsewhere.
        self.handles.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Ask every bot to QUIT with `reason` and end.
    pub fn close_all(&self, reason: &str) {
        let handles: Vec<WorkerHandle> = self.lock().values().cloned().collect();
        for handle in handles {
            handle.close(reason);
        }
    }

    /// Every bot's handle (an upgrade freezes them).
    pub fn handles(&self) -> Vec<WorkerHandle> {
        self.lock().values().cloned().collect()
    }

    /// How many bots are running.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Start a bot's thread. Only a failure to start it is an error: a
/// network that cannot be reached is retried with back-off, logged.
pub fn spawn(shared: Arc<Shared>, config: BotConfig) -> io::Result<()> {
    let tls = if config.tls {
        Some(client_config(shared.config().irc.ca_file())?)
    } else {
        None
    };
    let waiter = Waiter::new(-1)?;
    let (handle, mail) = WorkerHandle::new(waiter.waker());
    let name = format!("irc-{}", config.nick);
    let id = shared.bots.add(handle.clone());
    let spawned = crate::session::worker::thread_builder(&shared, name).spawn({
        let shared = shared.clone();
        move || {
            shared.stats.worker_started(true);
            let mut worker = BotWorker::new(shared.clone(), config, tls, waiter, handle, mail);
            if catch_unwind(AssertUnwindSafe(|| worker.run())).is_err() {
                log::error!("IRC bot: worker panicked; bot stopped");
            }
            worker.unregister();
            shared.bots.remove(id);
            shared.stats.worker_started(false);
        }
    });
    if let Err(e) = spawned {
        shared.bots.remove(id);
        return Err(e);
    }
    Ok(())
}

/// A rustls client trusting the certificates in `ca_file`.
fn client_config(ca_file: &std::path::Path) -> io::Result<Arc<rustls::ClientConfig>> {
    let bad = |e: &dyn std::fmt::Display| {
        io::Error::other(format!("IRC TLS roots {}: {e}", ca_file.display()))
    };
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(ca_file).map_err(|e| bad(&e))?;
    for cert in certs {
        let cert = cert.map_err(|e| bad(&e))?;
        // A root rustls cannot use is skipped, as a browser would.
        let _ = roots.add(cert);
    }
    if roots.is_empty() {
        return Err(bad(&"no usable certificate"));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(&e))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// How one connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// Lost (or never made): try again after the back-off.
    Lost,
    /// The game asked for a new connection: at once.
    Reconnect,
    /// Shutdown or `server_disconnect`: the thread ends.
    Stop,
    /// `portal upgrade`: the bot has left; its config goes to the new
    /// portal, which connects again.
    Upgrade,
}

/// One bot's thread state, across its connections.
struct BotWorker {
    shared: Arc<Shared>,
    config: BotConfig,
    tls: Option<Arc<rustls::ClientConfig>>,
    waiter: Waiter,
    handle: WorkerHandle,
    mail: Mail,
    backoff: Backoff,
    /// The current connection's session, once signed on.
    sessid: Option<u64>,
    /// IRC input towards the game: `[limits] max_command_rate`.
    input: RateLimiter,
    dropping_input: bool,
    /// Where to answer an upgrade's freeze, once the bot has left.
    freeze: Option<crossbeam_channel::Sender<crate::upgrade::Frozen>>,
}

/// One connection's socket and TLS state.
struct Conn {
    stream: TcpStream,
    tls: Option<Box<rustls::ClientConnection>>,
    /// Plain bytes not yet written (plain TCP only; rustls buffers its own).
    out: Vec<u8>,
}

/// What a read found besides data.
enum ReadEnd {
    WouldBlock,
    Closed,
    Failed(String),
}

impl Conn {
    fn queue(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        match &mut self.tls {
            Some(tls) => {
                let _ = tls.writer().write_all(bytes);
            }
            None => self.out.extend_from_slice(bytes),
        }
    }

    fn wants_write(&self) -> bool {
        match &self.tls {
            Some(tls) => tls.wants_write(),
            None => !self.out.is_empty(),
        }
    }

    /// Write what the socket takes; the bytes written.
    fn flush(&mut self) -> io::Result<usize> {
        let mut written = 0;
        loop {
            let result = match &mut self.tls {
                Some(tls) if tls.wants_write() => tls.write_tls(&mut self.stream),
                None if !self.out.is_empty() => self.stream.write(&self.out),
                _ => return Ok(written),
            };
            match result {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    written += n;
                    if self.tls.is_none() {
                        self.out.drain(..n);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(written),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Read what is there into `data`.
    fn read(&mut self, data: &mut Vec<u8>) -> ReadEnd {
        let mut buf = [0u8; 4096];
        loop {
            let result = match &mut self.tls {
                Some(tls) => tls.read_tls(&mut self.stream),
                None => self.stream.read(&mut buf),
            };
            match result {
                Ok(0) => return ReadEnd::Closed,
                Ok(n) => match &mut self.tls {
                    Some(tls) => {
                        if let Err(e) = tls.process_new_packets() {
                            return ReadEnd::Failed(format!("TLS: {e}"));
                        }
                        if take_plaintext(tls, data) {
                            return ReadEnd::Closed;
                        }
                    }
                    None => data.extend_from_slice(&buf[..n]),
                },
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return ReadEnd::WouldBlock,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return ReadEnd::Failed(e.to_string()),
            }
        }
    }
}

/// Move rustls's decrypted bytes into `data`; whether the peer closed.
fn take_plaintext(tls: &mut rustls::ClientConnection, data: &mut Vec<u8>) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        match tls.reader().read(&mut buf) {
            Ok(0) => return true,
            Ok(n) => data.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
            Err(_) => return true,
        }
    }
}

impl BotWorker {
    fn new(
        shared: Arc<Shared>,
        config: BotConfig,
        tls: Option<Arc<rustls::ClientConfig>>,
        waiter: Waiter,
        handle: WorkerHandle,
        mail: Mail,
    ) -> BotWorker {
        let settings = shared.config();
        let max = Duration::from_secs_f64(settings.irc.reconnect_max_secs);
        let rate = settings.limits.max_command_rate;
        BotWorker {
            config,
            tls,
            waiter,
            handle,
            mail,
            backoff: Backoff::new(Duration::from_secs(1), 1.5, max),
            sessid: None,
            input: RateLimiter::with_burst(rate.max(0.001), rate, Instant::now()),
            dropping_input: false,
            freeze: None,
            shared,
        }
    }

    fn label(&self) -> String {
        let c = &self.config;
        let scheme = if c.tls { "ircs" } else { "irc" };
        format!(
            "IRC bot {} ({scheme}://{}:{}/{})",
            c.nick, c.network, c.port, c.channel
        )
    }

    /// Connect, serve, and reconnect until told to stop.
    fn run(&mut self) {
        loop {
            log::info!("{}: connecting", self.label());
            let end = match self.connect() {
                Ok(conn) => self.serve(conn),
                Err(e) => {
                    log::warn!("{}: cannot connect: {e}", self.label());
                    End::Lost
                }
            };
            self.unregister();
            match end {
                End::Stop => return,
                End::Reconnect => self.backoff.reset(),
                End::Upgrade => {
                    self.answer_freeze();
                    self.backoff.reset();
                }
                End::Lost => {
                    let delay = self.backoff.next_delay();
                    log::info!(
                        "{}: reconnecting in {:.1} s",
                        self.label(),
                        delay.as_secs_f64()
                    );
                    if self.pause(delay) == End::Stop {
                        return;
                    }
                }
            }
        }
    }

    /// Wait `delay` between connections; game output has no session to go
    /// to. `Stop` if told to stop meanwhile.
    fn pause(&mut self, delay: Duration) -> End {
        self.waiter.set_socket(-1);
        self.waiter.set_write_interest(false);
        let until = Instant::now() + delay;
        loop {
            while let Some(message) = self.mail.try_recv() {
                match message {
                    ToWorker::Close(_) => {
                        log::info!("{}: stopped while reconnecting", self.label());
                        return End::Stop;
                    }
                    ToWorker::Freeze(reply) => {
                        self.freeze = Some(reply);
                        self.answer_freeze();
                        return End::Reconnect;
                    }
                    _ => {}
                }
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return End::Lost;
            }
            if self.waiter.wait(Some(left)).is_err() {
                return End::Lost;
            }
        }
    }

    fn connect(&self) -> io::Result<Conn> {
        use std::net::ToSocketAddrs;
        let target = (self.config.network.as_str(), self.config.port);
        let mut last = io::Error::new(io::ErrorKind::NotFound, "no address found");
        let mut stream = None;
        for addr in target.to_socket_addrs()? {
            match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last = e,
            }
        }
        let stream = stream.ok_or(last)?;
        stream.set_nonblocking(true)?;
        stream.set_nodelay(true)?;
        let tls = match &self.tls {
            Some(config) => {
                let name = ServerName::try_from(self.config.network.clone())
                    .map_err(|e| io::Error::other(format!("TLS server name: {e}")))?;
                let conn = rustls::ClientConnection::new(config.clone(), name)
                    .map_err(|e| io::Error::other(format!("TLS: {e}")))?;
                Some(Box::new(conn))
            }
            None => None,
        };
        Ok(Conn {
            stream,
            tls,
            out: Vec::new(),
        })
    }

    /// One connection, from registration to its end.
    fn serve(&mut self, mut conn: Conn) -> End {
        let mut bot = self.new_bot(Instant::now());
        self.waiter.set_socket(conn.stream.as_raw_fd());
        let mut lines = LineBuffer::default();
        // Set once the bot is leaving: why, and how long it may take.
        let mut leaving: Option<(End, Instant)> = None;
        loop {
            let now = Instant::now();
            conn.queue(&bot.transmit(now));
            match conn.flush() {
                Ok(n) => Stats::add(&self.shared.stats.bytes_out, n as u64),
                Err(e) => {
                    log::warn!("{}: write failed: {e}", self.label());
                    return leaving.map_or(End::Lost, |(end, _)| end);
                }
            }
            self.waiter.set_write_interest(conn.wants_write());
            let wake = match leaving {
                Some((end, until)) if now >= until => return end,
                Some((_, until)) => until,
                None => bot.poll_timeout(now),
            };
            let ready = match self.waiter.wait(Some(wake.saturating_duration_since(now))) {
                Ok(ready) => ready,
                Err(e) => {
                    log::warn!("{}: poll failed: {e}", self.label());
                    return End::Lost;
                }
            };
            let now = Instant::now();
            let closed = if ready.readable {
                self.read_lines(&mut conn, &mut lines, &mut bot, now)
            } else {
                None
            };
            if leaving.is_none() {
                if let Some(end) = self.drain_mail(&mut bot, now) {
                    let linger = if end == End::Upgrade {
                        UPGRADE_LINGER
                    } else {
                        QUIT_LINGER
                    };
                    leaving = Some((end, now + linger));
                }
                bot.handle_timeout(now);
            }
            if let Some(dead) = self.apply_events(&mut bot, now) {
                log::warn!("{}: {dead}; dropping the connection", self.label());
                return End::Lost;
            }
            match (closed, leaving) {
                (Some(_), Some((end, _))) => return end,
                (Some(why), None) => {
                    log::warn!("{}: connection lost: {why}", self.label());
                    return End::Lost;
                }
                (None, _) => {}
            }
        }
    }

    /// A fresh protocol state for a new connection, its registration
    /// lines ready to send.
    fn new_bot(&self, now: Instant) -> Bot {
        let settings = self.shared.config();
        let bot_settings = BotSettings {
            nick: self.config.nick.clone(),
            channel: self.config.channel.clone(),
            user: "portal".into(),
            realname: format!("{} (portal bot)", settings.portal.name),
            password: self.config.password.clone(),
        };
        let irc = &settings.irc;
        Bot::new(
            bot_settings,
            f64::from(irc.line_burst),
            irc.lines_per_sec,
            now,
        )
    }

    /// Read what the socket has and hand the bot every whole line;
    /// `Some(why)` when the connection has ended.
    fn read_lines(
        &self,
        conn: &mut Conn,
        lines: &mut LineBuffer,
        bot: &mut Bot,
        now: Instant,
    ) -> Option<String> {
        let mut data = Vec::new();
        let end = conn.read(&mut data);
        Stats::add(&self.shared.stats.bytes_in, data.len() as u64);
        lines.push(&data);
        while let Some(line) = lines.next_line() {
            match line {
                Line::Text(text) => bot.handle_line(&text, now),
                Line::TooLong => log::warn!("{}: dropped an over-long line", self.label()),
            }
        }
        match end {
            ReadEnd::WouldBlock => None,
            ReadEnd::Closed => Some("the server closed the connection".to_owned()),
            ReadEnd::Failed(why) => Some(why),
        }
    }

    /// Carry out what the game and the portal sent; `Some` when the bot
    /// is to leave (its QUIT is queued).
    fn drain_mail(&mut self, bot: &mut Bot, now: Instant) -> Option<End> {
        while let Some(message) = self.mail.try_recv() {
            match message {
                ToWorker::Out { commands, .. } => {
                    for command in &commands {
                        if let Some(end) = self.game_command(bot, command, now) {
                            return Some(end);
                        }
                    }
                }
                ToWorker::Close(reason) => {
                    log::info!("{}: leaving ({reason})", self.label());
                    let reason = if reason.trim().is_empty() {
                        "Portal closing".to_owned()
                    } else {
                        crate::markup::strip(&reason)
                    };
                    bot.quit(&reason);
                    // The registry has forgotten this session already.
                    self.sessid = None;
                    return Some(End::Stop);
                }
                ToWorker::Freeze(reply) => {
                    log::info!("{}: leaving for the portal's upgrade", self.label());
                    bot.quit(UPGRADE_QUIT);
                    self.freeze = Some(reply);
                    return Some(End::Upgrade);
                }
                ToWorker::Flags(_) | ToWorker::LoggedIn(_) | ToWorker::Ajax(_) => {}
            }
        }
        None
    }

    /// Give the upgrade this bot's config (the new portal starts it
    /// again) and wait: the exec ends this thread, or the upgrade is
    /// called off and the bot connects again here.
    fn answer_freeze(&mut self) {
        let Some(reply) = self.freeze.take() else {
            return;
        };
        let carried = crate::upgrade::Frozen::Bot(Box::new(self.config.clone()));
        if reply.send(carried).is_ok() {
            self.shared.upgrades.wait_until_called_off();
        }
    }

    /// One command from the game (Evennia's IRC bot's `send_*`).
    fn game_command(&mut self, bot: &mut Bot, command: &Command, now: Instant) -> Option<End> {
        let text = command
            .first_str()
            .map(crate::markup::strip)
            .unwrap_or_default();
        match command.name.as_str() {
            "channel" => bot.say(&text),
            "privmsg" => match command.kwargs.get("user").and_then(Value::as_str) {
                Some(user) if is_name(user) => bot.privmsg(user, &text),
                _ => log::debug!("{}: privmsg without a usable `user`", self.label()),
            },
            "request_nicklist" => bot.request_names(),
            "ping" => bot.ping(now),
            "reconnect" => {
                log::info!("{}: the game asks for a new connection", self.label());
                bot.quit("Reconnecting");
                return Some(End::Reconnect);
            }
            other => log::debug!("{}: `{other}` from the game is not for IRC", self.label()),
        }
        None
    }

    /// Act on what happened on IRC; `Some(why)` when the link is dead.
    fn apply_events(&mut self, bot: &mut Bot, now: Instant) -> Option<&'static str> {
        let channel = self.config.channel.clone();
        while let Some(event) = bot.poll_event() {
            match event {
                BotEvent::SignedOn { nick } => self.signed_on(&nick),
                BotEvent::Joined => log::info!("{}: joined {channel}", self.label()),
                BotEvent::NickInUse { tried, next } => {
                    log::info!("{}: nick {tried} is taken; trying {next}", self.label());
                }
                BotEvent::Channel { user, text, kind } => {
                    let kind = match kind {
                        Said::Message => "msg",
                        Said::Action => "action",
                    };
                    self.tell_game(&text, kind, &user, &channel, Map::new(), now);
                }
                BotEvent::Private { user, text } => {
                    let nick = bot.nick().to_owned();
                    self.tell_game(&text, "privmsg", &user, &nick, Map::new(), now);
                }
                BotEvent::Names(names) => {
                    let list = Value::List(names.into_iter().map(Value::Str).collect());
                    let extra = Map::from([("nicklist".to_owned(), list)]);
                    self.tell_game("", "nicklist", "server", &channel, extra, now);
                }
                BotEvent::Pong(took) => {
                    let timing = Value::Float(took.as_secs_f64());
                    let extra = Map::from([("timing".to_owned(), timing)]);
                    self.tell_game("", "ping", "server", &channel, extra, now);
                }
                BotEvent::Kicked { by, reason } => {
                    log::warn!("{}: kicked by {by} ({reason}); joining again", self.label());
                }
                BotEvent::JoinRefused(why) => {
                    log::warn!("{}: cannot join {channel}: {why}", self.label());
                }
                BotEvent::ServerError(text) => {
                    log::warn!("{}: the server says ERROR: {text}", self.label());
                }
                BotEvent::Dropped(n) => {
                    log::warn!(
                        "{}: {n} lines for IRC dropped (too many waiting)",
                        self.label()
                    );
                }
                BotEvent::Dead(why) => return Some(why),
            }
        }
        None
    }

    /// Registered on the network: this connection becomes a session.
    fn signed_on(&mut self, nick: &str) {
        self.backoff.reset();
        let sessid = self.shared.registry.generate_sessid();
        let address = format!("{}@{}", self.config.channel, self.config.network);
        let mut session = Session::init_session(sessid, SESSION_PROTOCOL_KEY, &address);
        session.uid = self.config.uid;
        session.logged_in = self.config.uid.is_some();
        self.shared.registry.connect(session, self.handle.clone());
        self.sessid = Some(sessid);
        log::info!(
            "{}: signed on as {nick}; session {sessid} (keepalive after {} s quiet)",
            self.label(),
            KEEPALIVE.as_secs()
        );
    }

    /// IRC input to the game as `bot_data_in`, within the session's
    /// command rate.
    fn tell_game(
        &mut self,
        text: &str,
        kind: &str,
        user: &str,
        channel: &str,
        extra: Map,
        now: Instant,
    ) {
        let Some(sessid) = self.sessid else {
            return;
        };
        log::debug!(
            "{}: {kind} from {user} in {channel} to the game",
            self.label()
        );
        if !self.input.try_take(now) {
            if !std::mem::replace(&mut self.dropping_input, true) {
                log::warn!(
                    "{}: IRC input over max_command_rate; dropping",
                    self.label()
                );
            }
            Stats::add(&self.shared.stats.commands_refused, 1);
            return;
        }
        self.dropping_input = false;
        let mut kwargs = extra;
        kwargs.insert("type".into(), Value::Str(kind.into()));
        kwargs.insert("user".into(), Value::Str(user.into()));
        kwargs.insert("channel".into(), Value::Str(channel.into()));
        let command = Command {
            name: INPUT_COMMAND.into(),
            args: vec![Value::Str(text.into())],
            kwargs,
        };
        Stats::add(&self.shared.stats.commands, 1);
        self.shared.registry.data_in(sessid, vec![command], true);
    }

    /// The connection is over: tell the game its session is gone.
    fn unregister(&mut self) {
        if let Some(sessid) = self.sessid.take() {
            self.shared.registry.disconnect(sessid);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, Value)]) -> Map {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }

    #[test]
    fn evennia_style_config_is_read_with_a_string_port() {
        let config = map(&[
            ("uid", Value::Int(3)),
            ("botname", "demobot".into()),
            ("channel", "plaza".into()),
            ("network", "irc.example.org".into()),
            ("port", "6697".into()),
            ("ssl", Value::Bool(true)),
        ]);
        let bot = bot_config(&config).unwrap();
        assert_eq!(
            bot,
            BotConfig {
                network: "irc.example.org".into(),
                port: 6697,
                channel: "#plaza".into(),
                nick: "demobot".into(),
                uid: Some(3),
                tls: true,
                password: None,
            }
        );
    }

    #[test]
    fn the_port_defaults_by_tls_and_bad_values_are_named() {
        let base = [
            ("botname", Value::from("b")),
            ("channel", "#c".into()),
            ("network", "h".into()),
        ];
        assert_eq!(bot_config(&map(&base)).unwrap().port, 6667);
        let mut tls = base.to_vec();
        tls.push(("ssl", Value::Bool(true)));
        assert_eq!(bot_config(&map(&tls)).unwrap().port, 6697);
        for (key, value, named) in [
            ("port", Value::Int(70000), "port"),
            ("port", Value::from("x"), "port"),
            ("channel", Value::from("#a b"), "channel"),
            ("botname", Value::from(""), "botname"),
            ("network", Value::Null, "network"),
        ] {
            let mut bad = base.to_vec();
            bad.retain(|(k, _)| *k != key);
            bad.push((key, value));
            let err = bot_config(&map(&bad)).unwrap_err().to_string();
            assert!(err.contains(named), "{key}: {err}");
        }
    }
}
