//! AJAX long-poll sessions (`webclient/ajax`): one worker thread per
//! session, which outlives the TCP connections its requests arrive on.
//!
//! A session is not a connection here. Its requests (`POST
//! /webclientdata`, the wire format in [`crate::protocols::ajax`]) come
//! on any of the browser's kept-alive connections, each served by an
//! ordinary web connection worker ([`super::worker`]), whose web engine
//! reads the request and its body and checks Origin and size. That
//! worker then calls `serve`:
//!
//! ```text
//!  init ──────► new AjaxWorker thread, filed in the AjaxTable by (csessid, cuid) ──► {"msg", "csessid"}
//!  input, keepalive, close ──► AjaxMail into the session's mailbox ─────────────────► ""
//!  receive ───► the connection's socket + transport (Taken) into the mailbox;
//!               the connection worker ends (no thread waits on a parked request)
//!
//!  AjaxWorker: session core (web engine in Evennia's format, output one
//!  message a line) + LongPoll (parked receive, ping, drop) + the parked socket
//!    output, ping or a newer receive ──► answer written by a fresh connection
//!    worker for that socket (Resume), which then reads its next request
//! ```
//!
//! So an idle session costs one thread (this worker, sleeping in `ppoll`
//! on its mailbox and the parked socket, to notice the browser leaving)
//! and one socket; answering a receive costs a short-lived thread, as a
//! new connection does. The parked socket's per-address count travels
//! with it, and the session itself counts against `max_sessions_per_ip`.
//! The session is registered like any other (held input through a game
//! restart, notices, `portal status`), with protocol key `webclient/ajax`
//! and the browser id as its `csessid`.

use crate::protocols::ajax::{self, Call, Key, LongPoll, Mode, Reply, Timing};
use crate::protocols::http::Response;
use crate::protocols::websocket::{AjaxPost, WebEngine};
use crate::session::core::{Core, Direction};
use crate::session::handle::{Mail, ToWorker, WorkerHandle};
use crate::session::protocol::Protocol;
use crate::session::waiter::{Readiness, Waiter};
use crate::session::worker::{
    apply_event, run_guarded, spawn_inbound, thread_builder, web_settings, AddressCount, Inbound,
    Resume, Taken, WEB_PROTOCOL_KEY,
};
use crate::shared::Shared;
use crate::stats::RefuseReason;
use crate::upgrade::format::{AjaxState, Dropped};
use crate::upgrade::Frozen;
use crate::wire::session::Session;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// What a web connection's worker hands an AJAX session.
pub(crate) enum AjaxMail {
    /// One `[cmdname, args, kwargs]` message as JSON text.
    Input(String),
    Keepalive,
    /// The browser is leaving.
    Close,
    /// A receive and the connection it came on.
    Receive(Box<Taken>),
}

impl std::fmt::Debug for AjaxMail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AjaxMail::Input(text) => write!(f, "Input({} bytes)", text.len()),
            AjaxMail::Keepalive => write!(f, "Keepalive"),
            AjaxMail::Close => write!(f, "Close"),
            AjaxMail::Receive(taken) => write!(f, "Receive(from {})", taken.address),
        }
    }
}

/// The AJAX sessions by browser and tab id.
#[derive(Default)]
pub struct AjaxTable {
    sessions: Mutex<HashMap<Key, (u64, WorkerHandle)>>,
}

impl AjaxTable {
    fn lock(&self) -> MutexGuard<'_, HashMap<Key, (u64, WorkerHandle)>> {
        // Each update is one map change: consistent after a panic.
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn get(&self, key: &Key) -> Option<WorkerHandle> {
        self.lock().get(key).map(|(_, handle)| handle.clone())
    }

    /// File a new session; the one it replaces, if any.
    fn insert(&self, key: Key, sessid: u64, handle: WorkerHandle) -> Option<WorkerHandle> {
        self.lock()
            .insert(key, (sessid, handle))
            .map(|(_, old)| old)
    }

    /// Forget session `sessid` (not a newer one filed under its key).
    fn remove(&self, key: &Key, sessid: u64) {
        let mut sessions = self.lock();
        if sessions.get(key).is_some_and(|(id, _)| *id == sessid) {
            sessions.remove(key);
        }
    }

    /// How many AJAX sessions are open.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What the connection worker does with an AJAX request.
pub(crate) enum Served {
    /// Answer it on the connection.
    Answer(Response),
    /// A receive: give the connection's socket to this session ([`park`]).
    HandOver(WorkerHandle),
}

/// Carry out one AJAX request that came from `address` (over TLS when
/// `secure`).
pub(crate) fn serve(
    shared: &Arc<Shared>,
    post: &AjaxPost,
    address: SocketAddr,
    secure: bool,
) -> Served {
    let call = match ajax::decode_form(&post.body) {
        Ok(fields) => ajax::parse_call(&fields),
        Err(_) => Err("the body is not a form"),
    };
    let call = match call {
        Ok(call) => call,
        Err(why) => return refuse(400, &format!("Not an AJAX request: {why}.")),
    };
    let Some(key) = call.key(post.cookie.as_deref()) else {
        return refuse(400, "No browser id (csessid) was sent.");
    };
    let Call { mode, .. } = call;
    let mail = match mode {
        Mode::Init(browser) => return open(shared, key, &browser, address, secure, &post.host),
        Mode::Receive => {
            return match shared.ajax.get(&key) {
                Some(session) => Served::HandOver(session),
                None => Served::Answer(ajax::answer(&ajax::gone_reply(
                    "This session has ended.",
                    1001,
                ))),
            }
        }
        Mode::Input(text) => AjaxMail::Input(text),
        Mode::Keepalive => AjaxMail::Keepalive,
        Mode::Close => AjaxMail::Close,
    };
    if let Some(session) = shared.ajax.get(&key) {
        session.ajax(mail);
    }
    Served::Answer(ajax::answer(ajax::NOTHING))
}

fn refuse(status: u16, text: &str) -> Served {
    let mut response = Response::error(status, text);
    // The connection stays usable: only this request was wrong.
    response.close = false;
    Served::Answer(response)
}

/// Give a receive's connection to its session; if the session has just
/// ended, the connection is dropped (closed, its count given back).
pub(crate) fn park(session: &WorkerHandle, taken: Taken) {
    session.ajax(AjaxMail::Receive(Box::new(taken)));
}

/// `init`: a new session for `key`, replacing one the same tab had.
fn open(
    shared: &Arc<Shared>,
    key: Key,
    browser: &str,
    address: SocketAddr,
    secure: bool,
    host: &str,
) -> Served {
    let config = shared.config();
    let counted = match shared
        .addresses
        .reserve(address.ip(), Instant::now(), &config.limits)
    {
        Ok(counted) => counted.then(|| address.ip()),
        Err(why) => {
            log::warn!("AJAX session from {address} refused: over the per-address cap ({why:?})");
            shared.stats.refuse(why.into());
            return refuse(429, &config.messages.too_many_from_address);
        }
    };
    match start(shared, key.clone(), browser, address, secure, counted) {
        Ok(()) => {
            let reply = ajax::init_reply(&config.portal.name, host, &key.csessid);
            Served::Answer(ajax::answer(&reply))
        }
        Err(e) => {
            log::warn!("AJAX session from {address}: cannot start its worker ({e}); refused");
            shared.stats.refuse(RefuseReason::WorkerSetup);
            if let Some(ip) = counted {
                shared.addresses.release(ip);
            }
            refuse(503, &config.messages.connection_refused)
        }
    }
}

/// Set up and file the session, then start its thread.
fn start(
    shared: &Arc<Shared>,
    key: Key,
    browser: &str,
    address: SocketAddr,
    secure: bool,
    counted: Option<IpAddr>,
) -> std::io::Result<()> {
    let config = shared.config();
    let settings = web_settings(&config, secure)?;
    let waiter = Waiter::new(-1)?;
    let sessid = shared.registry.generate_sessid();
    let (handle, rx) = WorkerHandle::new(waiter.waker());
    let now = Instant::now();
    let engine = WebEngine::new_ajax(settings, key.csessid.clone(), browser);
    let protocol = Protocol::Web(Box::new(engine));
    let core = Core::new(sessid, config.clone(), Direction::Web, protocol, now);
    let session = Session::init_session(sessid, ajax::PROTOCOL_KEY, &address.to_string());
    let mut worker = Box::new(AjaxWorker {
        shared: shared.clone(),
        config_generation: shared.config.generation(),
        key: key.clone(),
        waiter,
        rx,
        core,
        poll: LongPoll::new(timing(&config), now),
        unregistered: Some((session, handle.clone())),
        counted,
    });
    shared.upgrades.add_worker(sessid, handle.clone());
    if let Some(old) = shared.ajax.insert(key.clone(), sessid, handle) {
        old.close("This page opened a new session.");
    }
    let body_shared = shared.clone();
    let spawned = thread_builder(shared, format!("ajax-{sessid}")).spawn(move || {
        run_guarded(body_shared, sessid, move |_| worker.run());
    });
    if let Err(e) = spawned {
        shared.ajax.remove(&key, sessid);
        return Err(e);
    }
    Ok(())
}

fn timing(config: &crate::config::Config) -> Timing {
    Timing {
        receive_timeout: Duration::from_secs_f64(config.web.ajax_receive_timeout_secs),
        keepalive: Duration::from_secs_f64(config.web.ajax_keepalive_secs),
    }
}

/// A parked receive: the connection it came on, and whether to watch it
/// for the browser leaving (stopped once it sends anything more, which the
/// next reader of the connection gets).
struct Parked {
    taken: Box<Taken>,
    watching: bool,
}

/// One AJAX session's thread.
struct AjaxWorker {
    shared: Arc<Shared>,
    config_generation: u64,
    key: Key,
    waiter: Waiter,
    rx: Mail,
    core: Core,
    poll: LongPoll<Parked>,
    unregistered: Option<(Session, WorkerHandle)>,
    /// The session's own per-address count, released when it ends.
    counted: Option<IpAddr>,
}

impl AjaxWorker {
    fn run(&mut self) {
        // Registers the session (the engine reported it open).
        self.core.handle_timeout(Instant::now());
        self.apply_events();
        while let Some(ready) = self.sleep() {
            self.refresh_config();
            if ready.readable {
                self.check_parked();
            }
            let now = Instant::now();
            self.core.handle_timeout(now);
            self.run_poll_clock(now);
            self.drain_mail(now);
            self.apply_events();
            self.deliver();
            if self
                .core
                .is_finished(Instant::now(), !self.core.has_message())
            {
                break;
            }
        }
        self.finish();
    }

    /// Sleep until mail, the parked connection (watched for the browser
    /// leaving) or the next deadline; `None` if the poll failed.
    fn sleep(&mut self) -> Option<Readiness> {
        let now = Instant::now();
        let deadline = [self.core.poll_timeout(), Some(self.poll.poll_timeout())]
            .into_iter()
            .flatten()
            .min();
        let watched = self.poll.parked().filter(|p| p.watching);
        self.waiter
            .set_socket(watched.map_or(-1, |p| p.taken.stream.as_raw_fd()));
        let timeout = deadline.map(|at| at.saturating_duration_since(now));
        match self.waiter.wait(timeout) {
            Ok(ready) => Some(ready),
            Err(e) => {
                log::warn!("session {}: poll failed: {e}", self.core.sessid());
                None
            }
        }
    }

    /// Requests from connection workers, and the rest of the portal's
    /// messages (game output, closes) for the core.
    fn drain_mail(&mut self, now: Instant) {
        while let Some(message) = self.rx.try_recv() {
            match message {
                ToWorker::Ajax(mail) => self.handle_mail(*mail, now),
                ToWorker::Freeze(reply) => self.freeze(&reply, now),
                other => self.core.handle_message(other, now),
            }
        }
    }

    /// `portal upgrade`: a parked receive is answered here (empty, its
    /// connection closed, so the browser asks again, of the new portal);
    /// then the session's state goes to the upgrade and the worker waits.
    fn freeze(&mut self, reply: &crossbeam_channel::Sender<Frozen>, now: Instant) {
        if let Some(parked) = self.poll.take_parked() {
            answer_and_close(*parked.taken);
        }
        let sessid = self.core.sessid();
        let record = match &self.unregistered {
            Some((session, _)) => Some((session.clone(), false)),
            None => self.shared.registry.session(sessid).map(|s| (s, true)),
        };
        let frozen = match (record, self.core.is_closing()) {
            (Some(record), false) => self.core.freeze(now).map(|core| (record, core)),
            _ => Err(crate::session::core::FreezeError("it was closing".into())),
        };
        let ((record, registered), core) = match frozen {
            Ok(frozen) => frozen,
            Err(e) => return self.not_carried(reply, e.to_string(), now),
        };
        let state = AjaxState {
            record,
            registered,
            csessid: self.key.csessid.clone(),
            cuid: self.key.cuid.clone(),
            core,
            poll: self.poll.freeze(now),
            counted_ip: self.counted,
        };
        if reply.send(Frozen::Ajax(Box::new(state))).is_ok() {
            self.shared.upgrades.wait_until_called_off();
        }
        self.core.abort_freeze(Instant::now());
    }

    /// Not carried: the player is told, the session closes.
    fn not_carried(
        &mut self,
        reply: &crossbeam_channel::Sender<Frozen>,
        why: String,
        now: Instant,
    ) {
        let sessid = self.core.sessid();
        log::warn!(
            "session {sessid} ({}): not carried over the upgrade: {why}",
            ajax::PROTOCOL_KEY
        );
        if !self.core.is_closing() {
            let text = crate::upgrade::NOT_CARRIED.to_owned();
            self.core.handle_message(ToWorker::Close(text), now);
        }
        let _ = reply.send(Frozen::Dropped(Dropped {
            sessid,
            protocol_key: ajax::PROTOCOL_KEY.into(),
            why,
        }));
    }

    fn refresh_config(&mut self) {
        let generation = self.shared.config.generation();
        if generation != self.config_generation {
            self.config_generation = generation;
            let config = self.shared.config();
            self.poll.set_timing(timing(&config));
            self.core.set_config(config);
        }
    }

    /// The parked connection is readable: the browser left (end of
    /// stream, an error), or sent more, which is left for the next reader.
    fn check_parked(&mut self) {
        let mut byte = [0u8; 1];
        let gone = match self.poll.parked() {
            Some(parked) => match parked.taken.stream.peek(&mut byte) {
                Ok(0) => true,
                Ok(_) => false,
                Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
            },
            None => return,
        };
        if gone {
            log::debug!(
                "session {}: a parked receive's client left",
                self.core.sessid()
            );
            // Dropped: closed, its count given back.
            drop(self.poll.take_parked());
        } else if let Some(parked) = self.poll.parked_mut() {
            parked.watching = false;
        }
    }

    fn run_poll_clock(&mut self, now: Instant) {
        let (answers, drop) = self.poll.handle_timeout(now);
        self.answer_all(answers);
        if drop && !self.core.is_closing() {
            log::info!(
                "session {}: AJAX client silent since its ping; dropped",
                self.core.sessid()
            );
            self.core.handle_peer_gone();
        }
    }

    fn handle_mail(&mut self, mail: AjaxMail, now: Instant) {
        match mail {
            AjaxMail::Input(text) => {
                self.poll.heard(now);
                self.core.handle_input(text.as_bytes(), now);
            }
            AjaxMail::Keepalive => self.poll.heard(now),
            AjaxMail::Close => {
                log::debug!("session {}: the AJAX client closed", self.core.sessid());
                self.core.handle_peer_gone();
            }
            AjaxMail::Receive(taken) => {
                let parked = Parked {
                    taken,
                    watching: true,
                };
                let has_message = self.core.has_message();
                let answers = self.poll.receive(parked, has_message, now);
                self.answer_all(answers);
            }
        }
    }

    fn apply_events(&mut self) {
        while let Some(event) = self.core.poll_event() {
            apply_event(&self.shared, &mut self.core, &mut self.unregistered, event);
        }
    }

    /// Output is waiting: the parked receive gets the next message.
    fn deliver(&mut self) {
        if self.core.has_message() {
            if let Some(parked) = self.poll.message_ready() {
                self.answer(parked, Reply::Message);
            }
        }
    }

    fn answer_all(&mut self, answers: Vec<(Parked, Reply)>) {
        for (parked, reply) in answers {
            self.answer(parked, reply);
        }
    }

    /// Answer one receive; a fresh connection worker writes it and serves
    /// the connection's next request.
    fn answer(&mut self, parked: Parked, reply: Reply) {
        let body = match reply {
            Reply::Message => self.core.next_message().unwrap_or_default(),
            Reply::Ping => ajax::PING.to_owned(),
            Reply::Empty => String::new(),
            Reply::TooFast => {
                log::info!(
                    "session {}: receives from {} replace each other too fast; refused",
                    self.core.sessid(),
                    parked.taken.address
                );
                let refusal = Response::error(429, "Too many receives at once.");
                return resume(&self.shared, *parked.taken, refusal);
            }
        };
        log::debug!(
            "session {}: receive from {} answered ({reply:?}, {} bytes)",
            self.core.sessid(),
            parked.taken.address,
            body.len()
        );
        resume(&self.shared, *parked.taken, ajax::answer(&body));
    }

    fn finish(&mut self) {
        while let Some(parked) = self.poll.take_parked() {
            let reply = if self.core.has_message() {
                Reply::Message
            } else {
                Reply::Empty
            };
            self.answer(parked, reply);
        }
        self.shared.ajax.remove(&self.key, self.core.sessid());
        if let Some(ip) = self.counted.take() {
            self.shared.addresses.release(ip);
        }
        // Receives that arrive from now on find no session; any already
        // in the mailbox get an empty answer.
        while let Some(message) = self.rx.try_recv() {
            if let ToWorker::Ajax(mail) = message {
                if let AjaxMail::Receive(taken) = *mail {
                    resume(&self.shared, *taken, ajax::answer(""));
                }
            }
        }
    }
}

/// How long a freezing session gives a parked receive's answer.
const FREEZE_ANSWER: Duration = Duration::from_millis(300);

/// Answer a parked receive empty, in this thread, and close its
/// connection (an upgrade is under way: no new worker is started).
fn answer_and_close(taken: Taken) {
    let Taken {
        mut stream,
        mut transport,
        output: mut pending,
        counted,
        ..
    } = taken;
    let mut response = ajax::answer("");
    response.close = true;
    pending.extend_from_slice(&response.to_bytes(false));
    let deadline = Instant::now() + FREEZE_ANSWER;
    let mut closing = false;
    while transport.write(&mut stream, &mut pending).is_ok() && Instant::now() < deadline {
        if !transport.wants_write(&pending) {
            if closing {
                break;
            }
            // The answer is out: then TLS's close_notify, if TLS.
            transport.close_notify();
            closing = true;
            continue;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let _ = stream.shutdown(std::net::Shutdown::Write);
    drop(counted);
}

/// In the new portal: the AJAX session the old one froze, its worker
/// started and filed under its browser and tab ids. If it cannot be, the
/// game is told it left.
pub fn spawn_thawed(shared: &Arc<Shared>, state: AjaxState) -> std::io::Result<()> {
    let sessid = state.record.sessid;
    let registered = state.registered;
    let started = start_thawed(shared, state);
    if started.is_err() && registered {
        shared
            .amp
            .send(crate::amp::inbox::ToWriter::Disconnect(sessid));
    }
    started
}

fn start_thawed(shared: &Arc<Shared>, state: AjaxState) -> std::io::Result<()> {
    let config = shared.config();
    let now = Instant::now();
    let core = Core::thaw(&state.core, config.clone(), now).map_err(std::io::Error::other)?;
    let poll = LongPoll::thaw(&state.poll, timing(&config), now).map_err(std::io::Error::other)?;
    let waiter = Waiter::new(-1)?;
    let sessid = state.record.sessid;
    let (handle, rx) = WorkerHandle::new(waiter.waker());
    let key = Key {
        csessid: state.csessid,
        cuid: state.cuid,
    };
    if let Some(ip) = state.counted_ip {
        shared.addresses.adopt(ip);
    }
    let unregistered = if state.registered {
        shared.registry.adopt(state.record, handle.clone());
        None
    } else {
        Some((state.record, handle.clone()))
    };
    shared.upgrades.add_worker(sessid, handle.clone());
    shared.ajax.insert(key.clone(), sessid, handle);
    let mut worker = Box::new(AjaxWorker {
        shared: shared.clone(),
        config_generation: shared.config.generation(),
        key,
        waiter,
        rx,
        core,
        poll,
        unregistered,
        counted: state.counted_ip,
    });
    let body_shared = shared.clone();
    thread_builder(shared, format!("ajax-{sessid}"))
        .spawn(move || run_guarded(body_shared, sessid, move |_| worker.run()))
        .map(|_| ())
}

/// Answer a receive with `response`: a fresh web connection worker writes
/// it, then serves the connection's next request (or closes it, if the
/// client or the response asks).
fn resume(shared: &Arc<Shared>, taken: Taken, mut response: Response) {
    let Taken {
        stream,
        transport,
        address,
        leftover,
        output: mut pending,
        counted,
        keep_alive,
    } = taken;
    response.close |= !keep_alive;
    pending.extend_from_slice(&response.to_bytes(false));
    let end = response.close;
    // SAFETY: the descriptor comes from a live stream that gives up
    // ownership of it here.
    let stream = unsafe { std::net::TcpStream::from_raw_fd(stream.into_raw_fd()) };
    let inbound = Inbound {
        sessid: shared.registry.generate_sessid(),
        stream,
        address,
        protocol_key: WEB_PROTOCOL_KEY,
        tls: None,
        ssh: None,
        counted_ip: counted.is_some_and(AddressCount::hand_on),
        // Its PROXY header, if any, was read when it first connected.
        proxied: false,
        resume: Some(Box::new(Resume {
            transport,
            leftover,
            output: pending,
            end,
        })),
        waiter: None,
    };
    if let Err(failed) = spawn_inbound(shared.clone(), inbound) {
        let (inbound, e) = *failed;
        log::warn!("AJAX answer to {address} lost: cannot start a worker ({e})");
        if inbound.counted_ip {
            shared.addresses.release(address.ip());
        }
    }
}
