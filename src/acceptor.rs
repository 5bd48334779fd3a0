//! The acceptor: one `mio::Poll` over every listener, the signal pipe and a
//! control waker. It is the portal's main loop.
//!
//! Each accepted socket either starts a session at once or, beyond
//! `max_connection_rate` per second, waits in a queue; a queued client is
//! told it is queued and for about how long, and is let in when its turn
//! comes. A queued socket is watched by the same poll: one that closes
//! leaves the queue at once, so the dead neither hold up the live behind
//! them nor count in the wait they are told. A session starts as a worker
//! thread ([`crate::session::worker`]).
//! Running out of file descriptors or threads refuses that one client with
//! a message and a log line; the loop never spins.
//!
//! Control requests (shutdown, game reload, config reload) arrive from
//! signals (SIGTERM, SIGUSR1, SIGHUP here; SIGINT via `ctrlc` in `main.rs`)
//! and from the game over AMP, through [`ControlQueue`]. The `portal stop`,
//! `reload` and `reload-server` commands send those same signals, so an
//! admin's `shutdown`/`reload` in the game and the command line take one
//! path: a [`Control`] applied here.
//!
//! The loop also writes the periodic stats line (`[log]
//! stats_interval_secs`) and, on SIGHUP, reopens the log file.

use crate::config::{fill, Config, ProxyMode};
use crate::logfile::LogFile;
use crate::session::waiter::Waiter;
use crate::session::worker::{spawn_inbound, Inbound, WEB_PROTOCOL_KEY};
use crate::shared::{Control, ReloadNotes, Shared};
use crate::stats::{rate, Counters, RefuseReason, Stats};
use crate::supervisor::Supervisor;
use crate::throttle::RateLimiter;
use crossbeam_channel::{Receiver, Sender};
use mio::net::TcpListener;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};
use signal_hook::consts::{SIGHUP, SIGTERM, SIGUSR1, SIGUSR2};
use signal_hook_mio::v1_0::Signals;
use std::collections::VecDeque;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

const SIGNALS: Token = Token(usize::MAX - 1);
const CONTROL: Token = Token(usize::MAX - 2);
/// The longest the loop sleeps with nothing due (its once-a-second checks).
const IDLE_WAIT: Duration = Duration::from_secs(1);
/// Pause before accepting again after running out of descriptors.
const EMFILE_PAUSE: Duration = Duration::from_millis(200);

/// The main loop's inbox: a channel plus the waker of its poll.
#[derive(Clone)]
pub struct ControlQueue {
    tx: Sender<Control>,
    waker: Arc<Waker>,
}

impl ControlQueue {
    /// Deliver a request and wake the main loop.
    pub fn send(&self, control: Control) {
        if self.tx.send(control).is_ok() {
            let _ = self.waker.wake();
        }
    }
}

/// One listening socket and the protocol its sessions speak.
pub struct Listener {
    pub socket: TcpListener,
    pub protocol_key: &'static str,
    /// For `telnet/ssl`: the TLS configuration new connections get, and the
    /// index of its `[[tls]]` entry (to reload it on SIGHUP).
    pub tls: Option<(usize, Arc<rustls::ServerConfig>)>,
    /// For `ssh`: the listener's host key.
    pub ssh: Option<(Arc<crate::ssh::HostKey>, crate::ssh::AuthPolicy)>,
}

/// An accepted client not yet handed to a worker (maybe waiting its turn).
struct Pending {
    stream: std::net::TcpStream,
    address: SocketAddr,
    listener: usize,
    /// Counted against its address's caps (not allowlisted, not a
    /// trusted proxy).
    counted: bool,
    /// Its listener requires a PROXY header (from a trusted proxy).
    proxied: bool,
    /// Its token while it waits in the queue, registered with the poll to
    /// hear it close.
    token: Option<Token>,
}

/// The acceptor's state.
pub struct Acceptor {
    poll: Poll,
    listeners: Vec<Listener>,
    signals: Signals,
    control_rx: Receiver<Control>,
    shared: Arc<Shared>,
    supervisor: Option<Supervisor>,
    config_path: PathBuf,
    /// The config the portal started with: what its listeners, run files
    /// and log file really use until a restart.
    at_start: Arc<Config>,
    limiter: RateLimiter,
    queue: VecDeque<Pending>,
    /// The token the next queued client gets (after the listeners').
    next_token: usize,
    paused_until: Option<Instant>,
    spare_fd: Option<std::fs::File>,
    log_file: Option<LogFile>,
    /// The AMP listener's descriptor (handed over by `portal upgrade`).
    amp_listener: Option<i32>,
    /// When the last stats line was written, and the counters then.
    last_stats: (Instant, Counters),
}

/// Start catching SIGHUP, SIGUSR1 and SIGTERM. Call this first thing, so a
/// `portal reload` or `stop` right after start is queued, not fatal (their
/// default action ends the process); the loop reads them once it runs.
pub fn catch_signals() -> io::Result<Signals> {
    Signals::new([SIGHUP, SIGUSR1, SIGUSR2, SIGTERM])
}

/// Create the poll and the control queue the rest of the portal uses to
/// reach the main loop.
pub fn control_queue() -> io::Result<(Poll, ControlQueue, Receiver<Control>)> {
    let poll = Poll::new()?;
    let waker = Arc::new(Waker::new(poll.registry(), CONTROL)?);
    let (tx, rx) = crossbeam_channel::unbounded();
    Ok((poll, ControlQueue { tx, waker }, rx))
}

impl Acceptor {
    /// Register listeners and signals (from [`catch_signals`]) on `poll`.
    pub fn new(
        poll: Poll,
        mut signals: Signals,
        mut listeners: Vec<Listener>,
        control_rx: Receiver<Control>,
        shared: Arc<Shared>,
        config_path: PathBuf,
    ) -> io::Result<Acceptor> {
        for (i, listener) in listeners.iter_mut().enumerate() {
            poll.registry()
                .register(&mut listener.socket, Token(i), Interest::READABLE)?;
        }
        poll.registry()
            .register(&mut signals, SIGNALS, Interest::READABLE)?;
        let at_start = shared.config();
        let rate = at_start.limits.max_connection_rate;
        let next_token = listeners.len();
        Ok(Acceptor {
            poll,
            listeners,
            signals,
            control_rx,
            shared,
            supervisor: None,
            config_path,
            at_start,
            limiter: RateLimiter::new(rate, Instant::now()),
            queue: VecDeque::new(),
            next_token,
            paused_until: None,
            spare_fd: open_spare(),
            log_file: None,
            amp_listener: None,
            last_stats: (Instant::now(), Counters::default()),
        })
    }

    /// Hand the supervisor to the loop (it forwards reload requests).
    pub fn set_supervisor(&mut self, supervisor: Option<Supervisor>) {
        self.supervisor = supervisor;
    }

    /// The AMP listener, for `portal upgrade` to hand over.
    pub fn set_amp_listener(&mut self, fd: i32) {
        self.amp_listener = Some(fd);
    }

    /// Clients the previous portal had queued (`portal upgrade`).
    pub fn adopt_queue(&mut self, queued: Vec<crate::upgrade::format::QueuedState>) {
        use std::os::fd::FromRawFd;
        for q in queued {
            if q.listener >= self.listeners.len() {
                continue;
            }
            // SAFETY: the take-over checked that the descriptor is an open
            // socket named once in the hand-over.
            let stream = unsafe { std::net::TcpStream::from_raw_fd(q.fd) };
            let mut pending = Pending {
                stream,
                address: q.address,
                listener: q.listener,
                counted: q.counted,
                proxied: q.proxied,
                token: None,
            };
            if q.counted {
                self.shared.addresses.adopt(q.address.ip());
            }
            self.watch(&mut pending);
            self.queue.push_back(pending);
        }
        self.note_queue_length();
    }

    /// `portal upgrade` (or SIGUSR2): hand everything to the new binary;
    /// returns only if the upgrade did not happen (logged, told, and the
    /// portal carries on).
    fn upgrade(&mut self) {
        let Some(ask) = self.shared.upgrades.take_ask() else {
            return;
        };
        let binary = ask
            .binary
            .or_else(|| self.shared.upgrades.exe.get().cloned());
        let why = match (binary, self.amp_listener) {
            (Some(binary), Some(amp_listener)) => {
                let parts = crate::upgrade::run::Parts {
                    listeners: self.listener_states(),
                    queued: self.queued_states(),
                    supervisor: self.supervisor.as_ref(),
                    args: vec![
                        "start".into(),
                        "--config".into(),
                        self.config_path.display().to_string(),
                    ],
                    amp_listener,
                };
                crate::upgrade::run::hand_over(&self.shared, &binary, parts, ask.reply.as_ref())
            }
            (None, _) => "the portal's own binary path is unknown; give --binary".into(),
            (_, None) => "the AMP listener is not known to the main loop".into(),
        };
        log::error!("upgrade not done, the portal carries on: {why}");
        self.shared
            .upgrades
            .set_outcome(|o| o.refused = Some(why.clone()));
        if let Some(reply) = ask.reply {
            let _ = reply.send(format!("refused: {why}\n"));
        }
    }

    fn listener_states(&self) -> Vec<crate::upgrade::format::ListenerState> {
        let mut ssh_seen = 0;
        self.listeners
            .iter()
            .map(|l| {
                let ssh_index = (l.protocol_key == "ssh").then(|| {
                    ssh_seen += 1;
                    ssh_seen - 1
                });
                crate::upgrade::format::ListenerState {
                    fd: l.socket.as_raw_fd(),
                    protocol_key: l.protocol_key.into(),
                    tls_index: l.tls.as_ref().map(|(i, _)| *i),
                    ssh_index,
                }
            })
            .collect()
    }

    fn queued_states(&self) -> Vec<crate::upgrade::format::QueuedState> {
        self.queue
            .iter()
            .map(|p| crate::upgrade::format::QueuedState {
                fd: p.stream.as_raw_fd(),
                address: p.address,
                listener: p.listener,
                counted: p.counted,
                proxied: p.proxied,
            })
            .collect()
    }

    /// The log file SIGHUP reopens.
    pub fn set_log_file(&mut self, log_file: Option<LogFile>) {
        self.log_file = log_file;
    }

    /// Run until shutdown is requested; returns the supervisor so the caller
    /// can stop the game after the players have been told.
    pub fn run(mut self) -> io::Result<Option<Supervisor>> {
        let mut events = Events::with_capacity(256);
        loop {
            let wait = self.next_wait(Instant::now());
            if let Err(e) = self.poll.poll(&mut events, Some(wait)) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            // Queued clients that closed go first, so the clients accepted
            // in this same batch are not told a wait that counts them.
            let stirred: Vec<Token> = events
                .iter()
                .map(|event| event.token())
                .filter(|token| self.is_queue_token(*token))
                .collect();
            self.drop_closed(&stirred);
            for event in events.iter() {
                match event.token() {
                    SIGNALS => self.read_signals(),
                    Token(i) if i < self.listeners.len() => self.accept_all(i),
                    _ => {}
                }
            }
            while let Ok(control) = self.control_rx.try_recv() {
                if control == Control::Shutdown {
                    log::info!("shutting down");
                    return Ok(self.supervisor.take());
                }
                self.apply(control);
            }
            self.resume_after_pause();
            self.release_queue(Instant::now());
            self.log_stats_when_due(Instant::now());
        }
    }

    /// Signals become the same requests the game and `portal` commands
    /// make; shutdown goes through the queue so the loop ends in one place.
    fn read_signals(&mut self) {
        let pending: Vec<i32> = self.signals.pending().collect();
        for signal in pending {
            match signal {
                SIGUSR1 => self.apply(Control::ReloadGame),
                SIGHUP => self.apply(Control::ReloadConfig),
                SIGUSR2 => {
                    let ask = crate::upgrade::Ask {
                        binary: None,
                        reply: None,
                    };
                    if self.shared.upgrades.ask(ask) {
                        self.apply(Control::Upgrade);
                    }
                }
                SIGTERM => self.shared.request(Control::Shutdown),
                _ => {}
            }
        }
    }

    fn apply(&mut self, control: Control) {
        let (ask, what): (fn(&Supervisor), &str) = match control {
            Control::ReloadConfig => return self.reload_config(),
            Control::Upgrade => return self.upgrade(),
            Control::Shutdown => return,
            Control::KillHungGame if self.supervisor.is_none() => {
                return log::error!("the unsupervised game is not responding");
            }
            Control::KillHungGame => (Supervisor::kill_hung, "killing a hung game"),
            Control::ReloadGame => (Supervisor::reload, "a game reload"),
            Control::ResetGame => (Supervisor::reset, "a game reset"),
            Control::StopGame => (Supervisor::stop_game, "a game stop"),
            Control::StartGame => (Supervisor::start_game, "a game start"),
        };
        match &self.supervisor {
            Some(supervisor) => ask(supervisor),
            None => log::warn!("{what} was asked, but the game is not supervised"),
        }
    }

    /// SIGHUP: reopen the log file (logrotate), then re-read portal.conf
    /// and put what can change live in force.
    fn reload_config(&mut self) {
        self.reopen_log();
        let stats = &self.shared.stats;
        let new = match Config::load(&self.config_path) {
            Ok(config) => config,
            Err(e) => {
                Stats::add(&stats.config_reload_failures, 1);
                return log::error!("config reload refused, keeping the old one: {e}");
            }
        };
        let old = self.shared.config();
        let notes = reload_notes(&self.at_start, &old, &new);
        for key in &notes.new_at_last_reload {
            if *key == "game" {
                log::warn!("config reload: `[game]` changed; that takes effect when the game next starts (portal reload-server)");
            } else {
                log::warn!("config reload: `{key}` changed; that takes effect only when the portal restarts");
            }
        }
        // Before the count: `portal reload` reads the notes once it sees
        // the count go up.
        self.shared.set_reload_notes(notes);
        Stats::add(&stats.config_reloads, 1);
        if let Ok(level) = crate::config::parse_level(&new.log.level) {
            log::set_max_level(level);
        }
        self.limiter.set_rate(new.limits.max_connection_rate);
        self.reload_certificates(&new);
        self.shared.config.set(Arc::new(new));
        log::info!("config reloaded from {}", self.config_path.display());
    }

    /// Load every TLS listener's certificate and key again; new
    /// connections get the new ones, existing sessions keep theirs. A pair
    /// that fails to load keeps the old one and is logged.
    fn reload_certificates(&mut self, config: &Config) {
        for listener in &mut self.listeners {
            let Some((index, current)) = &mut listener.tls else {
                continue;
            };
            let Some(entry) = config.tls.get(*index) else {
                continue;
            };
            match crate::tls::load_server_config(&entry.cert, &entry.key) {
                Ok(fresh) => {
                    *current = fresh;
                    log::info!("TLS certificate reloaded for {}", entry.listen);
                }
                Err(e) => log::error!("TLS certificate reload refused, keeping the old one: {e}"),
            }
        }
    }

    /// Reopen the portal's log file and the game's.
    fn reopen_log(&self) {
        if let Some(log_file) = &self.log_file {
            report_reopen("log file", log_file.path(), log_file.reopen());
        }
        if let Some((path, result)) = self.shared.game_log.reopen() {
            report_reopen("game log file", &path, result);
        }
    }

    /// One stats line every `[log] stats_interval_secs` (0 = never).
    fn log_stats_when_due(&mut self, now: Instant) {
        let interval = self.shared.config().log.stats_interval_secs;
        let (since, before) = self.last_stats;
        let elapsed = now.saturating_duration_since(since);
        if interval == 0 || elapsed < Duration::from_secs(interval) {
            return;
        }
        let after = self.shared.stats.snapshot();
        self.last_stats = (now, after);
        let secs = elapsed.as_secs_f64();
        log::info!(
            "stats: sessions {}, logged in {}, commands/s {:.1}, bytes/s in {:.0} out {:.0}, \
             held input {}, queued connections {}",
            self.shared.registry.count_loggedin(true),
            self.shared.registry.count_loggedin(false),
            rate(before.commands, after.commands, secs),
            rate(before.bytes_in, after.bytes_in, secs),
            rate(before.bytes_out, after.bytes_out, secs),
            self.shared.link.held(),
            self.queue.len(),
        );
    }

    // ---- accepting ----

    fn accept_all(&mut self, index: usize) {
        if self.paused_until.is_some() {
            return;
        }
        loop {
            let Some(listener) = self.listeners.get(index) else {
                return;
            };
            match listener.socket.accept() {
                Ok((stream, address)) => {
                    Stats::add(&self.shared.stats.connections_accepted, 1);
                    self.admit(std::net::TcpStream::from(stream), address, index)
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if is_out_of_descriptors(&e) => return self.out_of_descriptors(index),
                Err(e) => log::warn!("accept failed: {e}"),
            }
        }
    }

    /// Start the session now, or queue it with a message.
    fn admit(&mut self, stream: std::net::TcpStream, address: SocketAddr, listener: usize) {
        let now = Instant::now();
        let config = self.shared.config();
        let proxied = self.proxy_mode(listener, &config) == ProxyMode::Required;
        let trusted = config.proxy.trusts(address.ip());
        if proxied && !trusted {
            log::warn!(
                "refused {address}: this listener requires a PROXY header and {} is not in proxy.trusted_proxies",
                address.ip()
            );
            self.shared.stats.refuse(RefuseReason::UntrustedProxy);
            let _ = stream.shutdown(std::net::Shutdown::Both);
            return;
        }
        // A trusted proxy speaks for many clients: its session counts the
        // client's address once known, not the proxy's.
        let reserved = if trusted {
            Ok(false)
        } else {
            self.shared
                .addresses
                .reserve(address.ip(), now, &config.limits)
        };
        let counted = match reserved {
            Ok(counted) => counted,
            Err(why) => {
                log::warn!("refused {address}: over the per-address cap ({why:?})");
                self.shared.stats.refuse(why.into());
                let web = self.is_web(listener);
                return refuse(stream, &config.messages.too_many_from_address, web);
            }
        };
        let pending = Pending {
            stream,
            address,
            listener,
            counted,
            proxied,
            token: None,
        };
        if self.queue.is_empty() && self.limiter.try_take(now) {
            return self.start_session(pending);
        }
        if self.queue.len() >= config.limits.connection_queue {
            log::warn!("connection queue full; refused {address}");
            self.shared.stats.refuse(RefuseReason::QueueFull);
            return self.refuse_pending(pending, &config.messages.connection_refused);
        }
        let wait = self.limiter.wait_for(self.queue.len() + 1).max(1.0);
        let text = fill(
            &config.messages.connection_queued,
            "seconds",
            &format!("{wait:.0}"),
        );
        let mut pending = pending;
        if !self.is_tls(listener) && !self.is_web(listener) {
            // A TLS client cannot read plain text before its handshake,
            // and a browser waits for its HTTP answer.
            let _ = pending.stream.write_all(format!("{text}\r\n").as_bytes());
        }
        log::info!("connection from {address} queued (about {wait:.0} s)");
        Stats::add(&self.shared.stats.connections_throttled, 1);
        self.watch(&mut pending);
        self.queue.push_back(pending);
        self.note_queue_length();
    }

    /// Let queued clients in as the rate allows, skipping any that closed
    /// since the poll last said so.
    fn release_queue(&mut self, now: Instant) {
        let mut changed = false;
        while let Some(front) = self.queue.front() {
            if peer_closed(&front.stream) {
                if let Some(pending) = self.queue.pop_front() {
                    self.forget_closed(pending);
                }
            } else if !self.limiter.try_take(now) {
                break;
            } else if let Some(mut pending) = self.queue.pop_front() {
                self.unwatch(&mut pending);
                self.start_session(pending);
            }
            changed = true;
        }
        if changed {
            self.note_queue_length();
        }
    }

    /// Register a queued client with the poll, to hear it close. Without a
    /// token (registration failed) it is still checked before its turn.
    fn watch(&mut self, pending: &mut Pending) {
        let token = Token(self.next_token);
        self.next_token = match self.next_token.checked_add(1) {
            Some(next) if next < CONTROL.0 => next,
            _ => self.listeners.len(),
        };
        let fd = pending.stream.as_raw_fd();
        let registry = self.poll.registry();
        match registry.register(&mut SourceFd(&fd), token, Interest::READABLE) {
            Ok(()) => pending.token = Some(token),
            Err(e) => log::warn!("cannot watch queued {}: {e}", pending.address),
        }
    }

    /// Take a client leaving the queue off the poll.
    fn unwatch(&self, pending: &mut Pending) {
        if pending.token.take().is_some() {
            let fd = pending.stream.as_raw_fd();
            let _ = self.poll.registry().deregister(&mut SourceFd(&fd));
        }
    }

    fn is_queue_token(&self, token: Token) -> bool {
        token != SIGNALS && token != CONTROL && token.0 >= self.listeners.len()
    }

    /// Drop the queued clients among `stirred` (tokens the poll reported)
    /// that have closed: a live one may just have sent bytes, which stay
    /// unread for its session.
    fn drop_closed(&mut self, stirred: &[Token]) {
        if stirred.is_empty() {
            return;
        }
        let (closed, live): (VecDeque<Pending>, VecDeque<Pending>) =
            std::mem::take(&mut self.queue).into_iter().partition(|p| {
                p.token.is_some_and(|t| stirred.contains(&t)) && peer_closed(&p.stream)
            });
        self.queue = live;
        if closed.is_empty() {
            return;
        }
        for pending in closed {
            self.forget_closed(pending);
        }
        self.note_queue_length();
    }

    /// A queued client closed before its turn: forget it and its count.
    fn forget_closed(&self, mut pending: Pending) {
        log::debug!("queued {} closed before its turn", pending.address);
        self.unwatch(&mut pending);
        self.release_pending(&pending);
    }

    /// How long the loop may sleep: until the next of its own deadlines
    /// (a queued client's turn, the end of a pause, the stats line).
    fn next_wait(&mut self, now: Instant) -> Duration {
        let mut wait = IDLE_WAIT;
        if !self.queue.is_empty() {
            wait = wait.min(self.limiter.next_token_in(now));
        }
        if let Some(at) = self.paused_until {
            wait = wait.min(at.saturating_duration_since(now));
        }
        let interval = self.shared.config().log.stats_interval_secs;
        if interval > 0 {
            let due = self.last_stats.0 + Duration::from_secs(interval);
            wait = wait.min(due.saturating_duration_since(now));
        }
        // Rounded up to a whole millisecond: poll(2) would otherwise wake
        // a moment early and spin until the deadline.
        wait.max(Duration::from_millis(1))
    }

    fn note_queue_length(&self) {
        let stats = &self.shared.stats;
        let length = self.queue.len() as u64;
        stats
            .connections_queued_now
            .store(length, std::sync::atomic::Ordering::Relaxed);
    }

    fn is_web(&self, listener: usize) -> bool {
        self.listeners
            .get(listener)
            .is_some_and(|l| l.protocol_key == WEB_PROTOCOL_KEY)
    }

    /// Whether `listener` reads a PROXY header, as the current config says.
    fn proxy_mode(&self, listener: usize, config: &Config) -> ProxyMode {
        let Some(l) = self.listeners.get(listener) else {
            return ProxyMode::Off;
        };
        match &l.tls {
            Some((index, _)) => config
                .tls
                .get(*index)
                .map_or(ProxyMode::Off, |t| t.proxy_protocol),
            None if l.protocol_key == WEB_PROTOCOL_KEY => config.web.proxy_protocol,
            None => config.telnet.proxy_protocol,
        }
    }

    fn is_tls(&self, listener: usize) -> bool {
        self.listeners
            .get(listener)
            .is_some_and(|l| l.tls.is_some() || l.ssh.is_some())
    }

    fn start_session(&mut self, pending: Pending) {
        let Some(from) = self.listeners.get(pending.listener) else {
            return self.release_pending(&pending);
        };
        let address = pending.address;
        // The worker's eventfd is made here, not on its thread: a worker
        // taking a descriptor while `out_of_descriptors` has freed its
        // spare would leave the next client waiting unanswered.
        let waiter = match Waiter::new(pending.stream.as_raw_fd()) {
            Ok(waiter) => waiter,
            Err(e) => {
                log::warn!("refused {address}: cannot make its session's waiter ({e})");
                let reason = if is_out_of_descriptors(&e) {
                    RefuseReason::NoDescriptors
                } else {
                    RefuseReason::WorkerSetup
                };
                self.shared.stats.refuse(reason);
                let text = self.shared.config().messages.connection_refused.clone();
                return self.refuse_pending(pending, &text);
            }
        };
        let inbound = Inbound {
            sessid: self.shared.registry.generate_sessid(),
            stream: pending.stream,
            address,
            protocol_key: from.protocol_key,
            tls: from.tls.as_ref().map(|(_, config)| config.clone()),
            ssh: from.ssh.clone(),
            counted_ip: pending.counted,
            proxied: pending.proxied,
            resume: None,
            waiter: Some(waiter),
        };
        if let Err(failed) = spawn_inbound(self.shared.clone(), inbound) {
            let (inbound, e) = *failed;
            log::error!("cannot start a session thread for {address}: {e}; client refused");
            self.shared.stats.refuse(RefuseReason::NoThread);
            if inbound.counted_ip {
                self.shared.addresses.release(address.ip());
            }
            let text = self.shared.config().messages.connection_refused.clone();
            refuse(inbound.stream, &text, from.protocol_key == WEB_PROTOCOL_KEY);
        }
    }

    /// Give back a pending client's per-address count.
    fn release_pending(&self, pending: &Pending) {
        if pending.counted {
            self.shared.addresses.release(pending.address.ip());
        }
    }

    /// Refuse a pending client with `text`, giving back its count.
    fn refuse_pending(&self, pending: Pending, text: &str) {
        self.release_pending(&pending);
        let web = self.is_web(pending.listener);
        refuse(pending.stream, text, web);
    }

    /// EMFILE/ENFILE: free the spare descriptor, accept and refuse one
    /// client with a message, then pause accepting briefly instead of
    /// spinning on a listener that stays readable.
    fn out_of_descriptors(&mut self, index: usize) {
        log::error!("out of file descriptors; refusing new connections for now");
        self.spare_fd = None;
        if let Some(listener) = self.listeners.get(index) {
            if let Ok((stream, address)) = listener.socket.accept() {
                log::warn!("refused {address}: no descriptors left");
                self.shared.stats.refuse(RefuseReason::NoDescriptors);
                let text = self.shared.config().messages.connection_refused.clone();
                let web = listener.protocol_key == WEB_PROTOCOL_KEY;
                let stream = std::net::TcpStream::from(stream);
                refuse_keeping(&stream, &text, web);
                self.spare_fd = spare_in_place_of(stream, listener.socket.as_raw_fd());
            } else {
                // Something outside the acceptor took the freed number:
                // this client waits until a descriptor comes back.
                log::warn!("out of file descriptors and the spare was taken; a client waits");
            }
        }
        if self.spare_fd.is_none() {
            self.spare_fd = open_spare();
        }
        self.paused_until = Some(Instant::now() + EMFILE_PAUSE);
    }

    fn resume_after_pause(&mut self) {
        if self.paused_until.is_some_and(|t| Instant::now() >= t) {
            self.paused_until = None;
            if self.spare_fd.is_none() {
                self.spare_fd = open_spare();
            }
            for i in 0..self.listeners.len() {
                self.accept_all(i);
            }
        }
    }
}

/// Tell a client why it cannot come in, and close it: a line of text, or
/// for a browser an HTTP 503 answer.
/// Log how reopening the log file `what` at `path` went.
fn report_reopen(what: &str, path: &std::path::Path, result: io::Result<()>) {
    match result {
        Ok(()) => log::info!("{what} {} reopened", path.display()),
        Err(e) => log::error!(
            "cannot reopen the {what} {}: {e}; still writing to the old one",
            path.display()
        ),
    }
}

pub(crate) fn refuse(stream: std::net::TcpStream, text: &str, web: bool) {
    refuse_keeping(&stream, text, web);
}

/// [`refuse`], leaving the (shut down) socket to the caller.
fn refuse_keeping(mut stream: &std::net::TcpStream, text: &str, web: bool) {
    let bytes = if web {
        crate::protocols::http::Response::error(503, text).to_bytes(false)
    } else {
        format!("{text}\r\n").into_bytes()
    };
    let _ = stream.write_all(&bytes);
    let _ = stream.shutdown(std::net::Shutdown::Both);
}

/// Close a refused connection and hold its descriptor number as the
/// spare in one step (`dup3` of the listener onto it): closing it first
/// and opening the spare after would let another thread (a worker making
/// its eventfd) take the descriptor in between, leaving no spare, and the
/// next client out of descriptors would wait unanswered.
fn spare_in_place_of(stream: std::net::TcpStream, listener: i32) -> Option<std::fs::File> {
    use std::os::fd::{FromRawFd, IntoRawFd};
    let fd = stream.into_raw_fd();
    // SAFETY: dup3 onto a descriptor we own (it closes the connection and
    // makes `fd` a second reference to the listener, close-on-exec).
    if unsafe { libc::dup3(listener, fd, libc::O_CLOEXEC) } == fd {
        // SAFETY: `fd` is ours alone: the spare, closed when dropped.
        return Some(unsafe { std::fs::File::from_raw_fd(fd) });
    }
    // SAFETY: as above; dup3 failed, so `fd` is still the connection.
    unsafe { libc::close(fd) };
    None
}

/// Whether the peer has closed (or reset) `stream`, asked without blocking
/// and without reading: bytes it sent stay for its session.
fn peer_closed(stream: &std::net::TcpStream) -> bool {
    let mut fd = libc::pollfd {
        fd: stream.as_raw_fd(),
        events: libc::POLLIN | libc::POLLRDHUP,
        revents: 0,
    };
    // SAFETY: one live pollfd, a zero timeout.
    let n = unsafe { libc::poll(&mut fd, 1, 0) };
    let closed = libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR | libc::POLLNVAL;
    n > 0 && fd.revents & closed != 0
}

fn is_out_of_descriptors(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE))
}

/// A descriptor held in reserve so one can be freed to refuse a client
/// politely when the limit is reached.
fn open_spare() -> Option<std::fs::File> {
    std::fs::File::open("/dev/null").ok()
}

/// What a reload from `last` (the file as last read) to `new` cannot apply
/// live. A key is pending while `new` differs from what the portal started
/// with (`at_start`), and new when it also differs from `last`: a value
/// already reported is not reported again, and a key changed back to its
/// running value is not pending. `[game]` is read at each game start, so
/// it is only ever new, never pending.
fn reload_notes(at_start: &Config, last: &Config, new: &Config) -> ReloadNotes {
    let pending = restart_only_changes(at_start, new);
    let since_last = restart_only_changes(last, new);
    let mut new_keys: Vec<&'static str> = pending
        .iter()
        .copied()
        .filter(|key| since_last.contains(key))
        .collect();
    if last.game != new.game {
        new_keys.push("game");
    }
    ReloadNotes {
        restart_pending: pending,
        new_at_last_reload: new_keys,
    }
}

/// Keys whose change needs a portal restart.
fn restart_only_changes(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut keys = Vec::new();
    if old.telnet.listen != new.telnet.listen {
        keys.push("telnet.listen");
    }
    let tls_addrs = |c: &Config| {
        let listeners = c.tls.iter().map(|t| (t.listen.clone(), t.serve));
        listeners.collect::<Vec<_>>()
    };
    if tls_addrs(old) != tls_addrs(new) {
        keys.push("tls.listen");
    }
    if old.ssh != new.ssh {
        keys.push("ssh");
    }
    if old.web.listen != new.web.listen {
        keys.push("web.listen");
    }
    if old.amp.listen != new.amp.listen {
        keys.push("amp.listen");
    }
    if old.log.file != new.log.file {
        keys.push("log.file");
    }
    if old.portal.status_file != new.portal.status_file {
        keys.push("portal.status_file");
    }
    if old.portal.pidfile != new.portal.pidfile {
        keys.push("portal.pidfile");
    }
    if old.portal.control_socket != new.portal.control_socket {
        keys.push("portal.control_socket");
    }
    if old.metrics.listen != new.metrics.listen {
        keys.push("metrics.listen");
    }
    keys
}
