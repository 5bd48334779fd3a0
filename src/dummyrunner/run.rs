//! The event loop: one mio `Poll` over every simulated player.

use super::options::Options;
use super::profile::{Action, Rng};
use super::stats::{Samples, Summary};
use super::telnet::LineReader;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use serde::Serialize;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

/// Longest line the reader keeps before cutting it.
const MAX_LINE: usize = 64 * 1024;
/// Throttle notices we keep verbatim for the summary.
const THROTTLE_EXAMPLES: usize = 5;

/// Where one simulated player is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting in the connect queue.
    Queued,
    /// TCP connect under way.
    Connecting,
    /// Connected, waiting for the login screen.
    Screen,
    /// `create` sent; waiting to be logged in (or told to `connect`).
    Creating,
    /// `connect` sent; waiting to be logged in.
    LoggingIn,
    Playing,
    /// `quit` sent; waiting for the server to close, then back to the queue.
    Quitting,
    /// At the login screen, staying silent (`--no-login`).
    Idle,
    /// Gone for good (failed, or disconnected by the server).
    Closed,
}

struct Client {
    name: String,
    phase: Phase,
    stream: Option<TcpStream>,
    reader: LineReader,
    out: Vec<u8>,
    /// Has an account already (after the first login).
    returning: bool,
    /// When the current login attempt started.
    login_started: Option<Instant>,
    /// When the current connection attempt started.
    connect_started: Option<Instant>,
    echo_seq: u64,
    outstanding: VecDeque<(u64, Instant)>,
    /// The first echo sent after the signal, until its answer comes.
    after_signal: Option<u64>,
    /// Invalidates timers set before a reconnect.
    generation: u32,
}

/// Counters and gauges, shown while running and in the summary.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Counts {
    pub connected: usize,
    pub logged_in: usize,
    pub connects: u64,
    pub connect_failures: u64,
    pub logins: u64,
    pub login_failures: u64,
    pub disconnects: u64,
    pub throttled: u64,
    pub actions: u64,
    /// Actions after the warmup (what actions/s is computed from).
    pub measured_actions: u64,
    pub echoes_sent: u64,
    pub echoes_answered: u64,
    pub echoes_lost: u64,
    /// Echoes answered between the warmup and the end of the run, whenever
    /// they were sent (what answered/s, the throughput, is computed from).
    pub measured_answers: u64,
    /// Connections that showed no login screen within --screen-timeout
    /// (closed and tried again).
    pub screen_timeouts: u64,
    /// Connections that reached the login screen (`--churn` counts these).
    pub screens: u64,
    /// Screens reached after the warmup (what connections/s is computed from).
    pub measured_screens: u64,
    pub bytes_in: u64,
    pub lines_in: u64,
}

/// What a signal sent during the run (`--signal`) cost the players.
#[derive(Debug, Default, Clone, Serialize)]
pub struct SignalReport {
    pub sent_at_s: f64,
    /// From the signal until the last player's first echo sent after it
    /// was answered.
    pub all_answered_ms: f64,
    pub players_answered: usize,
    pub players_unanswered: usize,
    /// Lag of every echo sent after the signal (the burst and later ones).
    pub after_signal_lag: Summary,
}

/// The end-of-run summary (`--json` prints it).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub addr: String,
    pub clients: usize,
    pub profile: String,
    pub interval_s: f64,
    pub warmup_s: f64,
    pub duration_s: f64,
    pub counts: Counts,
    pub peak_connected: usize,
    pub peak_logged_in: usize,
    pub actions_per_s: f64,
    pub actions_by_kind: BTreeMap<String, u64>,
    /// Echoes answered per second between the warmup and the end.
    pub answered_per_s: f64,
    /// Login screens reached per second after the warmup (`--churn`).
    pub connections_per_s: f64,
    /// Seconds from the first connection until the clock started
    /// (`--wait-logins`), else 0.
    pub login_wait_s: f64,
    pub lag: Summary,
    pub login_time: Summary,
    /// From starting a connection until its login screen was read.
    pub screen_time: Summary,
    pub throttle_examples: Vec<String>,
    pub signal: Option<SignalReport>,
}

struct Runner<'a> {
    opts: &'a Options,
    addr: SocketAddr,
    poll: Poll,
    clients: Vec<Client>,
    queue: VecDeque<usize>,
    timers: BinaryHeap<Reverse<(Instant, usize, u32)>>,
    rng: Rng,
    start: Instant,
    counts: Counts,
    by_kind: BTreeMap<String, u64>,
    lag: Samples,
    lag_window: Samples,
    login_time: Samples,
    screen_time: Samples,
    signal_lag: Samples,
    throttle_examples: Vec<String>,
    peak_connected: usize,
    peak_logged_in: usize,
    /// Actions stop being scheduled after this.
    acting: bool,
    /// False while `--wait-logins` waits for every player to log in.
    clock_started: bool,
    /// When the run began (`start` moves when the clock starts late).
    began: Instant,
    signal_sent: Option<Instant>,
    signal_answers: Vec<Option<Instant>>,
    progress: Box<dyn Write + 'a>,
}

/// Run the dummyrunner; progress lines go to `progress`.
pub fn run(opts: &Options, progress: Box<dyn Write + '_>) -> io::Result<Report> {
    let addr = opts
        .addr
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::other(format!("{} resolves to nothing", opts.addr)))?;
    let clients = (0..opts.clients)
        .map(|i| Client {
            name: format!("{}_{i}", opts.prefix),
            phase: Phase::Queued,
            stream: None,
            reader: LineReader::new(MAX_LINE),
            out: Vec::new(),
            returning: opts.returning,
            login_started: None,
            connect_started: None,
            echo_seq: 0,
            outstanding: VecDeque::new(),
            after_signal: None,
            generation: 0,
        })
        .collect();
    let mut runner = Runner {
        opts,
        addr,
        poll: Poll::new()?,
        clients,
        queue: (0..opts.clients).collect(),
        timers: BinaryHeap::new(),
        rng: Rng::new(opts.seed),
        start: Instant::now(),
        began: Instant::now(),
        clock_started: opts.wait_logins.is_none() || opts.no_login || opts.churn,
        counts: Counts::default(),
        by_kind: BTreeMap::new(),
        lag: Samples::default(),
        lag_window: Samples::default(),
        login_time: Samples::default(),
        screen_time: Samples::default(),
        signal_lag: Samples::default(),
        throttle_examples: Vec::new(),
        peak_connected: 0,
        peak_logged_in: 0,
        acting: true,
        signal_sent: None,
        signal_answers: vec![None; opts.clients],
        progress,
    };
    runner.run()
}

impl<'a> Runner<'a> {
    fn run(&mut self) -> io::Result<Report> {
        let mut events = Events::with_capacity(4096);
        let mut end = self.start + self.opts.duration;
        let connect_gap = Duration::from_secs_f64(1.0 / self.opts.connect_rate);
        let mut next_connect = self.start;
        let mut next_report = self.start + self.opts.report_every;
        let mut last_report = (self.start, 0u64);
        let mut drain_until = None;
        loop {
            let now = Instant::now();
            if !self.clock_started {
                let waited = now.duration_since(self.began);
                let wait = self.opts.wait_logins.unwrap_or_default();
                // Players that failed for good will not log in.
                let gone = self.phase_count(Phase::Closed);
                if self.counts.logged_in + gone >= self.opts.clients || waited >= wait {
                    self.clock_started = true;
                    self.start = now;
                    end = now + self.opts.duration;
                    let _ = writeln!(
                        self.progress,
                        "{} of {} players logged in after {:.1}s ({} failed, {} at the login \
                         screen, {} logging in): the clock starts",
                        self.counts.logged_in,
                        self.opts.clients,
                        waited.as_secs_f64(),
                        gone,
                        self.phase_count(Phase::Screen),
                        self.phase_count(Phase::Creating) + self.phase_count(Phase::LoggingIn),
                    );
                }
            }
            if self.acting && self.clock_started && now >= end {
                let _ = writeln!(
                    self.progress,
                    "[{:6.1}s] run over: draining unanswered echoes",
                    now.duration_since(self.start).as_secs_f64()
                );
                self.acting = false;
                self.queue.clear();
                drain_until = Some(now + self.opts.drain);
            }
            if let Some(until) = drain_until {
                let waiting: usize = self.clients.iter().map(|c| c.outstanding.len()).sum();
                if waiting == 0 || now >= until {
                    break;
                }
            }
            while self.acting && now >= next_connect {
                let Some(index) = self.queue.pop_front() else {
                    break;
                };
                self.connect(index);
                next_connect += connect_gap;
            }
            if self.queue.is_empty() && next_connect < now {
                // Do not let an empty queue bank connections for later.
                next_connect = now;
            }
            self.maybe_signal(now);
            self.fire_timers(now);
            if now >= next_report {
                let (at, actions) = last_report;
                self.report_progress(now, at, actions);
                last_report = (now, self.counts.actions);
                next_report += self.opts.report_every;
                self.check_login_timeouts(now);
            }
            let mut wake = next_report;
            if self.clock_started {
                wake = wake.min(drain_until.unwrap_or(end));
            }
            if !self.queue.is_empty() {
                wake = wake.min(next_connect);
            }
            if let Some(Reverse((at, _, _))) = self.timers.peek() {
                wake = wake.min(*at);
            }
            let timeout = wake
                .saturating_duration_since(Instant::now())
                .min(Duration::from_millis(100));
            match self.poll.poll(&mut events, Some(timeout)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            for event in events.iter() {
                let index = event.token().0;
                if event.is_writable() {
                    self.on_writable(index);
                }
                if event.is_readable() || event.is_read_closed() || event.is_error() {
                    self.on_readable(index);
                }
            }
        }
        for client in &mut self.clients {
            self.counts.echoes_lost += client.outstanding.len() as u64;
            client.outstanding.clear();
        }
        Ok(self.report())
    }

    // ---- connections ---------------------------------------------------

    fn connect(&mut self, index: usize) {
        let client = &mut self.clients[index];
        client.generation = client.generation.wrapping_add(1);
        client.reader = LineReader::new(MAX_LINE);
        client.out.clear();
        client.connect_started = Some(Instant::now());
        match TcpStream::connect(self.addr) {
            Ok(mut stream) => {
                let interest = Interest::READABLE | Interest::WRITABLE;
                if let Err(e) = self
                    .poll
                    .registry()
                    .register(&mut stream, Token(index), interest)
                {
                    self.fail_connect(index, &e);
                    return;
                }
                let client = &mut self.clients[index];
                client.stream = Some(stream);
                client.phase = Phase::Connecting;
            }
            Err(e) => self.fail_connect(index, &e),
        }
    }

    fn fail_connect(&mut self, index: usize, error: &io::Error) {
        self.counts.connect_failures += 1;
        if self.counts.connect_failures <= 3 {
            let _ = writeln!(self.progress, "connect failed: {error}");
        }
        self.clients[index].phase = Phase::Closed;
    }

    fn on_writable(&mut self, index: usize) {
        let Some(client) = self.clients.get_mut(index) else {
            return;
        };
        if client.phase == Phase::Connecting {
            let Some(stream) = client.stream.as_ref() else {
                return;
            };
            match (stream.take_error(), stream.peer_addr()) {
                (Ok(None), Ok(_)) => {
                    client.phase = Phase::Screen;
                    self.counts.connects += 1;
                    self.counts.connected += 1;
                    self.peak_connected = self.peak_connected.max(self.counts.connected);
                    if self.opts.raw {
                        // No login screen: play as soon as connected.
                        self.on_logged_in(index);
                    }
                }
                (Ok(Some(e)) | Err(e), _) => return self.drop_failed_connect(index, &e),
                (Ok(None), Err(e)) if e.kind() == io::ErrorKind::NotConnected => return,
                (Ok(None), Err(e)) => return self.drop_failed_connect(index, &e),
            }
        }
        self.flush(index);
    }

    fn drop_failed_connect(&mut self, index: usize, error: &io::Error) {
        if let Some(mut stream) = self.clients[index].stream.take() {
            let _ = self.poll.registry().deregister(&mut stream);
        }
        self.fail_connect(index, error);
    }

    fn flush(&mut self, index: usize) {
        let client = &mut self.clients[index];
        let Some(stream) = client.stream.as_mut() else {
            return;
        };
        while !client.out.is_empty() {
            match stream.write(&client.out) {
                Ok(0) => break,
                Ok(n) => {
                    client.out.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break, // the read side sees the close
            }
        }
    }

    fn send(&mut self, index: usize, line: &str) {
        let client = &mut self.clients[index];
        client.out.extend_from_slice(line.as_bytes());
        client.out.extend_from_slice(b"\r\n");
        self.flush(index);
    }

    fn on_readable(&mut self, index: usize) {
        let mut buf = [0u8; 16 * 1024];
        let mut closed = false;
        loop {
            let Some(client) = self.clients.get_mut(index) else {
                return;
            };
            if client.phase == Phase::Connecting {
                // Readiness before the connect finished means it failed.
                let Some(stream) = client.stream.as_ref() else {
                    return;
                };
                if let Ok(Some(e)) = stream.take_error() {
                    return self.drop_failed_connect(index, &e);
                }
                return;
            }
            let Some(stream) = client.stream.as_mut() else {
                return;
            };
            match stream.read(&mut buf) {
                Ok(0) => {
                    closed = true;
                    break;
                }
                Ok(n) => {
                    self.counts.bytes_in += n as u64;
                    let reply = client.reader.receive(&buf[..n]);
                    if !reply.is_empty() {
                        client.out.extend_from_slice(&reply);
                        self.flush(index);
                    }
                    self.handle_lines(index);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    closed = true;
                    break;
                }
            }
        }
        if closed {
            self.on_closed(index);
        }
    }

    fn on_closed(&mut self, index: usize) {
        let client = &mut self.clients[index];
        if let Some(mut stream) = client.stream.take() {
            let _ = self.poll.registry().deregister(&mut stream);
        }
        self.counts.connected = self.counts.connected.saturating_sub(1);
        let was = client.phase;
        if was == Phase::Playing || was == Phase::Quitting {
            self.counts.logged_in = self.counts.logged_in.saturating_sub(1);
        }
        let lost = client.outstanding.len() as u64;
        client.outstanding.clear();
        self.counts.echoes_lost += lost;
        if was == Phase::Quitting && self.acting {
            client.phase = Phase::Queued;
            self.queue.push_back(index);
        } else {
            client.phase = Phase::Closed;
            if self.acting {
                self.counts.disconnects += 1;
                if matches!(was, Phase::Creating | Phase::LoggingIn) {
                    self.counts.login_failures += 1;
                }
            }
        }
    }

    fn phase_count(&self, phase: Phase) -> usize {
        self.clients.iter().filter(|c| c.phase == phase).count()
    }

    /// `--churn`: hang up at the login screen and queue to connect again.
    fn close_and_requeue(&mut self, index: usize) {
        let client = &mut self.clients[index];
        if let Some(mut stream) = client.stream.take() {
            let _ = self.poll.registry().deregister(&mut stream);
        }
        client.phase = Phase::Queued;
        self.counts.connected = self.counts.connected.saturating_sub(1);
        if self.acting {
            self.queue.push_back(index);
        }
    }

    // ---- what the server says ------------------------------------------

    fn handle_lines(&mut self, index: usize) {
        while let Some(line) = self.clients[index].reader.next_line() {
            self.counts.lines_in += 1;
            self.handle_line(index, &line);
        }
        // A login screen or prompt may end without a newline.
        let pending = self.clients[index].reader.pending();
        if !pending.is_empty() && self.clients[index].phase == Phase::Screen {
            self.handle_line(index, &pending);
        }
    }

    fn handle_line(&mut self, index: usize, line: &str) {
        if let Some(seq) = self.echo_reply(index, line) {
            self.on_echo(index, seq);
            return;
        }
        let lower = line.to_lowercase();
        if ["queued", "too fast", " full", "too many"]
            .iter()
            .any(|w| lower.contains(w))
        {
            self.counts.throttled += 1;
            if self.throttle_examples.len() < THROTTLE_EXAMPLES
                && !self.throttle_examples.iter().any(|e| e == line)
            {
                self.throttle_examples.push(line.trim().to_owned());
            }
        }
        let opts = self.opts;
        let client = &mut self.clients[index];
        match client.phase {
            Phase::Screen if line.contains(&opts.screen) => {
                if let Some(started) = client.connect_started.take() {
                    self.screen_time.push(started.elapsed().as_micros() as u64);
                }
                self.counts.screens += 1;
                if Instant::now() >= self.start + opts.warmup {
                    self.counts.measured_screens += 1;
                }
                if opts.churn {
                    return self.close_and_requeue(index);
                }
                let client = &mut self.clients[index];
                if opts.no_login {
                    client.phase = Phase::Idle;
                    return;
                }
                client.login_started = Some(Instant::now());
                let (phase, template) = if client.returning {
                    (Phase::LoggingIn, &opts.connect_cmd)
                } else {
                    (Phase::Creating, &opts.create_cmd)
                };
                client.phase = phase;
                let cmd = fill(template, &client.name, &opts.password);
                self.send(index, &cmd);
            }
            Phase::Creating | Phase::LoggingIn if line.contains(&opts.logged_in) => {
                self.on_logged_in(index);
            }
            // Some games (Evennia 5) ask to confirm a new account.
            Phase::Creating if lower.contains("y]/n") || lower.contains("[y/n]") => {
                self.send(index, "y");
            }
            // Some games make the account and then ask for `connect`.
            Phase::Creating
                if lower.contains("connect ") && lower.contains(&client.name.to_lowercase()) =>
            {
                client.phase = Phase::LoggingIn;
                let cmd = fill(&opts.connect_cmd, &client.name, &opts.password);
                self.send(index, &cmd);
            }
            _ => {}
        }
    }

    fn on_logged_in(&mut self, index: usize) {
        let client = &mut self.clients[index];
        client.phase = Phase::Playing;
        client.returning = true;
        if let Some(started) = client.login_started.take() {
            self.login_time.push(started.elapsed().as_micros() as u64);
        }
        self.counts.logins += 1;
        self.counts.logged_in += 1;
        self.peak_logged_in = self.peak_logged_in.max(self.counts.logged_in);
        self.schedule(index, Instant::now());
    }

    /// The sequence number if `line` answers one of this client's echoes.
    fn echo_reply(&self, index: usize, line: &str) -> Option<u64> {
        let client = &self.clients[index];
        client.outstanding.front()?;
        let marker = format!("dr-{index}-");
        let at = line.find(&marker)?;
        let rest = &line[at + marker.len()..];
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        rest[..digits].parse().ok()
    }

    fn on_echo(&mut self, index: usize, seq: u64) {
        let now = Instant::now();
        let client = &mut self.clients[index];
        while let Some(&(sent_seq, sent_at)) = client.outstanding.front() {
            if sent_seq > seq {
                break;
            }
            client.outstanding.pop_front();
            if sent_seq < seq {
                self.counts.echoes_lost += 1;
                continue;
            }
            let micros = now.duration_since(sent_at).as_micros() as u64;
            if sent_at >= self.start + self.opts.warmup {
                self.lag_window.push(micros);
            }
            if self.signal_sent.is_some_and(|signal| sent_at >= signal) {
                self.signal_lag.push(micros);
            }
            self.counts.echoes_answered += 1;
            if self.acting && now >= self.start + self.opts.warmup && self.clock_started {
                self.counts.measured_answers += 1;
            }
            if client.after_signal.is_some_and(|first| seq >= first) {
                client.after_signal = None;
                self.signal_answers[index] = Some(now);
            }
        }
    }

    // ---- acting ----------------------------------------------------------

    fn schedule(&mut self, index: usize, from: Instant) {
        let mean = self.opts.interval.as_secs_f64();
        let factor = 1.0 + self.opts.jitter * (2.0 * self.rng.unit() - 1.0);
        let at = from + Duration::from_secs_f64(mean * factor);
        let generation = self.clients[index].generation;
        self.timers.push(Reverse((at, index, generation)));
    }

    fn fire_timers(&mut self, now: Instant) {
        while let Some(&Reverse((at, index, generation))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            let client = &self.clients[index];
            if !self.acting || client.generation != generation || client.phase != Phase::Playing {
                continue;
            }
            if !self.clock_started {
                // Quiet until every player is logged in (`--wait-logins`).
                self.schedule(index, now);
                continue;
            }
            let action = self
                .opts
                .profile
                .pick(self.rng.below(self.opts.profile.total()));
            self.act(index, action, now);
            if self.clients[index].phase == Phase::Playing {
                self.schedule(index, at.max(now - self.opts.interval));
            }
        }
    }

    fn act(&mut self, index: usize, action: Action, now: Instant) {
        self.counts.actions += 1;
        if now >= self.start + self.opts.warmup {
            self.counts.measured_actions += 1;
        }
        *self.by_kind.entry(action.name().to_owned()).or_default() += 1;
        match action {
            Action::Look => self.send(index, "look"),
            Action::Say => self.send(index, "say Hello there, everyone."),
            Action::Who => self.send(index, "who"),
            Action::Idle => self.send(index, "idle"),
            Action::Relog => {
                self.clients[index].phase = Phase::Quitting;
                self.send(index, "quit");
            }
            Action::Echo => {
                let client = &mut self.clients[index];
                client.echo_seq += 1;
                let seq = client.echo_seq;
                client.outstanding.push_back((seq, now));
                if self.signal_sent.is_some() && self.signal_answers[index].is_none() {
                    client.after_signal.get_or_insert(seq);
                }
                let micros = now.duration_since(self.start).as_micros();
                let token = format!("dr-{index}-{seq}-{micros}");
                let cmd = self.opts.echo_cmd.replace("{token}", &token);
                self.counts.echoes_sent += 1;
                self.send(index, &cmd);
            }
        }
    }

    fn maybe_signal(&mut self, now: Instant) {
        if self.signal_sent.is_some() {
            return;
        }
        if let Some((pid, signal, at)) = self.opts.signal {
            if now < self.start + at {
                return;
            }
            // SAFETY: kill(2) has no memory effects; the pid is the user's choice.
            let result = unsafe { libc::kill(pid, signal) };
            let _ = writeln!(
                self.progress,
                "sent signal {signal} to {pid} at {:.1}s{}",
                at.as_secs_f64(),
                if result == 0 { "" } else { " (failed)" }
            );
            self.signal_sent = Some(now);
            self.signal_burst(now);
        } else if let Some((at, cmd)) = &self.opts.exec_at {
            if now < self.start + *at {
                return;
            }
            let spawned = std::process::Command::new("sh")
                .arg("-c")
                .arg(cmd)
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .spawn();
            let _ = writeln!(
                self.progress,
                "ran {cmd:?} at {:.1}s{}",
                at.as_secs_f64(),
                if spawned.is_ok() { "" } else { " (failed)" }
            );
            // Not waited for here: the loop keeps serving the players.
            drop(spawned);
            self.signal_sent = Some(now);
            self.signal_burst(now);
        }
    }

    /// Right after the signal every playing player sends an echo, so "every
    /// player answered again" does not wait for anyone's next scheduled
    /// action.
    fn signal_burst(&mut self, now: Instant) {
        for index in 0..self.clients.len() {
            if self.clients[index].phase == Phase::Playing {
                self.act(index, Action::Echo, now);
            }
        }
    }

    fn check_login_timeouts(&mut self, now: Instant) {
        for index in 0..self.clients.len() {
            let client = &mut self.clients[index];
            let late = client
                .login_started
                .is_some_and(|t| now.duration_since(t) > self.opts.login_timeout);
            if late && matches!(client.phase, Phase::Creating | Phase::LoggingIn) {
                client.login_started = None;
                self.counts.login_failures += 1;
                if let Some(mut stream) = client.stream.take() {
                    let _ = self.poll.registry().deregister(&mut stream);
                    self.counts.connected = self.counts.connected.saturating_sub(1);
                }
                client.phase = Phase::Closed;
            }
            let client = &mut self.clients[index];
            let no_screen = client
                .connect_started
                .is_some_and(|t| now.duration_since(t) > self.opts.screen_timeout);
            if no_screen && client.phase == Phase::Screen && self.acting {
                // Connected as far as this side knows, but the server never
                // spoke (e.g. its accept queue overflowed and it dropped
                // the handshake): count it and connect again.
                self.counts.screen_timeouts += 1;
                self.close_and_requeue(index);
            }
        }
    }

    // ---- reporting -------------------------------------------------------

    fn report_progress(&mut self, now: Instant, since: Instant, actions_then: u64) {
        let secs = now.duration_since(since).as_secs_f64().max(1e-9);
        let rate = (self.counts.actions - actions_then) as f64 / secs;
        let lag = self.lag_window.summary();
        self.lag.absorb(&mut self.lag_window);
        let c = &self.counts;
        let _ = writeln!(
            self.progress,
            "[{:6.1}s] connected {:5} logged in {:5} | {:8.1} actions/s | lag p50 {:7.2} ms \
             p99 {:7.2} ms max {:7.2} ms ({} echoes) | failures {} throttled {} disconnects {}",
            now.duration_since(self.start).as_secs_f64(),
            c.connected,
            c.logged_in,
            rate,
            lag.p50_ms,
            lag.p99_ms,
            lag.max_ms,
            lag.count,
            c.connect_failures + c.login_failures,
            c.throttled,
            c.disconnects,
        );
    }

    fn report(&mut self) -> Report {
        self.lag.absorb(&mut self.lag_window);
        let elapsed = self.start.elapsed().as_secs_f64();
        let acting_secs = (self.opts.duration.as_secs_f64().min(elapsed)
            - self.opts.warmup.as_secs_f64())
        .max(1e-9);
        let signal = self.signal_sent.map(|sent| {
            let answered: Vec<Instant> = self.signal_answers.iter().flatten().copied().collect();
            let waiting = self
                .clients
                .iter()
                .filter(|c| c.after_signal.is_some())
                .count();
            SignalReport {
                sent_at_s: sent.duration_since(self.start).as_secs_f64(),
                all_answered_ms: answered
                    .iter()
                    .map(|t| t.duration_since(sent).as_secs_f64() * 1000.0)
                    .fold(0.0, f64::max),
                players_answered: answered.len(),
                players_unanswered: waiting,
                after_signal_lag: self.signal_lag.summary(),
            }
        });
        Report {
            addr: self.opts.addr.clone(),
            clients: self.opts.clients,
            profile: self.opts.profile.to_string(),
            interval_s: self.opts.interval.as_secs_f64(),
            warmup_s: self.opts.warmup.as_secs_f64(),
            duration_s: elapsed,
            counts: self.counts.clone(),
            peak_connected: self.peak_connected,
            peak_logged_in: self.peak_logged_in,
            actions_per_s: self.counts.measured_actions as f64 / acting_secs,
            actions_by_kind: self.by_kind.clone(),
            answered_per_s: self.counts.measured_answers as f64 / acting_secs,
            connections_per_s: self.counts.measured_screens as f64 / acting_secs,
            login_wait_s: self.start.duration_since(self.began).as_secs_f64(),
            lag: self.lag.summary(),
            login_time: self.login_time.summary(),
            screen_time: self.screen_time.summary(),
            throttle_examples: self.throttle_examples.clone(),
            signal,
        }
    }
}

/// Fill `{name}` and `{password}` in a login command template.
pub fn fill(template: &str, name: &str, password: &str) -> String {
    template
        .replace("{name}", name)
        .replace("{password}", password)
}

impl Report {
    /// The human-readable summary.
    pub fn text(&self) -> String {
        let c = &self.counts;
        let mut out = format!(
            "dummyrunner summary: {} clients against {} for {:.1}s (profile {}, one action per \
             {:.2}s per player)\n",
            self.clients, self.addr, self.duration_s, self.profile, self.interval_s
        );
        out += &format!(
            "  connected {} (peak {}), logged in {} (peak {}), logins {}\n",
            c.connected, self.peak_connected, c.logged_in, self.peak_logged_in, c.logins
        );
        out += &format!(
            "  actions {} ({:.1}/s): {:?}\n",
            c.actions, self.actions_per_s, self.actions_by_kind
        );
        out += &format!(
            "  lag (echo round trip): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms, mean {:.2} ms \
             over {} echoes ({} sent, {} lost)\n",
            self.lag.p50_ms,
            self.lag.p99_ms,
            self.lag.max_ms,
            self.lag.mean_ms,
            self.lag.count,
            c.echoes_sent,
            c.echoes_lost
        );
        out += &format!(
            "  login time: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms\n",
            self.login_time.p50_ms, self.login_time.p99_ms, self.login_time.max_ms
        );
        out += &format!(
            "  connect failures {}, login failures {}, disconnects {}, throttle notices {}, \
             no login screen (retried) {}\n",
            c.connect_failures, c.login_failures, c.disconnects, c.throttled, c.screen_timeouts
        );
        for example in &self.throttle_examples {
            out += &format!("    throttled: {example}\n");
        }
        if c.screens > 0 {
            out += &format!(
                "  login screens {} ({:.1}/s); connect to screen: p50 {:.2} ms, p99 {:.2} ms, \
                 max {:.2} ms\n",
                c.screens,
                self.connections_per_s,
                self.screen_time.p50_ms,
                self.screen_time.p99_ms,
                self.screen_time.max_ms
            );
        }
        if let Some(s) = &self.signal {
            out += &format!(
                "  signal at {:.1}s: every player's first echo after it answered within {:.0} ms \
                 ({} answered, {} still waiting); echoes sent after it: p99 {:.2} ms, \
                 max {:.2} ms over {}\n",
                s.sent_at_s,
                s.all_answered_ms,
                s.players_answered,
                s.players_unanswered,
                s.after_signal_lag.p99_ms,
                s.after_signal_lag.max_ms,
                s.after_signal_lag.count
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_templates_are_filled() {
        assert_eq!(
            fill("create {name} {password}", "dr1_0", "pw"),
            "create dr1_0 pw"
        );
    }
}
