//! A session worker's part in `portal upgrade` ([`crate::upgrade`]): in
//! the old portal it freezes (flushes what the socket takes, ends MCCP2,
//! answers with its state and waits: the exec ends it, or the upgrade is
//! called off and it carries on); in the new portal [`spawn_thawed`]
//! starts the same session's worker from that state on the same socket.
//! An SSH session first reads and writes on until the SSH library is at a
//! quiet point (no packet half-read, no re-key), then its connection is
//! exported beside the core; one that does not get there in
//! [`SSH_SETTLE`] is told and closed as before.

use super::*;
use crate::amp::inbox::ToWriter;
use crate::session::transport::CarriedSession;
use crate::ssh::SshTransport;
use crate::tls::carried::CarriedTls;
use crate::upgrade::format::{Dropped, SessionState, TransportState};
use crate::upgrade::{Frozen, NOT_CARRIED};
use crossbeam_channel::Sender;
use std::os::fd::FromRawFd;

/// How long a freezing worker gives its socket to take what is queued
/// (the rest is carried).
const FREEZE_FLUSH: Duration = Duration::from_millis(300);

/// How long a freezing SSH session is given to reach a quiet point (a
/// packet half-read, a re-key, output the socket has not taken): it
/// reads and writes on meanwhile; past this it is not carried.
const SSH_SETTLE: Duration = Duration::from_millis(500);

impl Worker {
    /// Answer a freeze (see the module docs).
    pub(super) fn freeze(&mut self, reply: Sender<Frozen>) {
        let now = Instant::now();
        if self.core.is_closing() {
            // Ending anyway: nothing to carry, and not the upgrade's doing.
            let _ = reply.send(Frozen::Ended(self.core.sessid()));
            return;
        }
        if let Some(why) = self.not_carriable() {
            return self.drop_for_upgrade(&reply, why, now);
        }
        let Some((record, registered)) = self.record() else {
            return self.drop_for_upgrade(&reply, "the registry no longer has it".into(), now);
        };
        self.flush();
        self.core.prepare_freeze(now);
        self.flush_within(FREEZE_FLUSH);
        if let Err(why) = self.settle_ssh(SSH_SETTLE) {
            return self.drop_for_upgrade(&reply, why, now);
        }
        if self.core.is_closing() {
            // The client left while the SSH connection settled.
            let _ = reply.send(Frozen::Ended(self.core.sessid()));
            return;
        }
        let core = match self.core.freeze(now) {
            Ok(core) => core,
            Err(e) => return self.drop_for_upgrade(&reply, e.to_string(), now),
        };
        let (transport, unsent) = match self.freeze_transport() {
            Ok(frozen) => frozen,
            Err(why) => return self.drop_for_upgrade(&reply, why, now),
        };
        let state = SessionState {
            fd: self.stream.as_raw_fd(),
            record,
            registered,
            transport,
            address: self.admission.address,
            counted_ip: self.admission.count.counted_ip(),
            recount_at_register: self.admission.recount_at_register,
            core,
            unsent,
        };
        if reply.send(Frozen::Session(Box::new(state))).is_ok() {
            self.shared.upgrades.wait_until_called_off();
            log::info!(
                "session {}: upgrade called off; carrying on",
                self.core.sessid()
            );
        }
        self.core.abort_freeze(Instant::now());
    }

    /// Why this session cannot be carried, if it cannot.
    fn not_carriable(&self) -> Option<String> {
        match &self.transport {
            Transport::Ssh(ssh) if ssh.is_handshaking() => {
                return Some("its SSH handshake had not finished".into())
            }
            Transport::Tls(tls) if tls.conn.is_handshaking() => {
                return Some("its TLS handshake had not finished".into())
            }
            _ => {}
        }
        self.core.uncarriable().map(str::to_owned)
    }

    /// The session's record and whether it is registered.
    fn record(&self) -> Option<(Session, bool)> {
        match &self.unregistered {
            Some((session, _)) => Some((session.clone(), false)),
            None => self
                .shared
                .registry
                .session(self.core.sessid())
                .map(|s| (s, true)),
        }
    }

    /// Tell the player (unless it was closing anyway), close, and say so.
    fn drop_for_upgrade(&mut self, reply: &Sender<Frozen>, why: String, now: Instant) {
        let sessid = self.core.sessid();
        let protocol_key = self
            .record()
            .map(|(s, _)| s.protocol_key)
            .unwrap_or_default();
        log::warn!("session {sessid} ({protocol_key}): not carried over the upgrade: {why}");
        if !self.core.is_closing() {
            self.core
                .handle_message(ToWorker::Close(NOT_CARRIED.into()), now);
        }
        let _ = reply.send(Frozen::Dropped(Dropped {
            sessid,
            protocol_key,
            why,
        }));
    }

    /// Write what the socket takes, for up to `limit`.
    fn flush_within(&mut self, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            self.flush();
            if !self.transport.wants_write(self.core.transmit()) || Instant::now() >= deadline {
                return;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// An SSH session: read and write on (input goes to the core, so it is
    /// carried with it) until the SSH library is at a point its state can
    /// be taken ([`crate::ssh::SshTransport::quiet`]), for up to `limit`.
    /// Other transports are ready at once.
    fn settle_ssh(&mut self, limit: Duration) -> Result<(), String> {
        let deadline = Instant::now() + limit;
        loop {
            self.flush();
            let Transport::Ssh(ssh) = &self.transport else {
                return Ok(());
            };
            let why = match ssh.quiet() {
                Ok(()) => return Ok(()),
                Err(why) => why,
            };
            if self.core.is_closing() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(why);
            }
            self.read_socket();
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// The transport as the hand-over carries it, and ciphertext not yet
    /// written. A TLS session's keys are taken out of rustls: from here on
    /// (in the new portal, or here if the upgrade is called off) its
    /// records are sealed and opened by [`crate::tls::carried`].
    fn freeze_transport(&mut self) -> Result<(TransportState, Vec<u8>), String> {
        match std::mem::replace(&mut self.transport, Transport::Plain) {
            Transport::Plain => Ok((TransportState::Plain, Vec::new())),
            Transport::Tls(tls) => {
                let TlsSession { mut conn, partial } = *tls;
                let mut unsent = Vec::new();
                while conn.wants_write() {
                    if conn.write_tls(&mut unsent).is_err() {
                        break;
                    }
                }
                match CarriedTls::from_rustls(conn, partial) {
                    Ok(tls) => self.carry_on_with(tls, unsent),
                    Err(e) => {
                        // The keys are gone with rustls: nothing more can
                        // be said to this client; it is closed.
                        self.core.handle_peer_gone();
                        Err(format!("its TLS keys could not be taken: {e}"))
                    }
                }
            }
            Transport::Carried(carried) => {
                let CarriedSession { tls, out } = *carried;
                self.carry_on_with(tls, out)
            }
            Transport::Ssh(ssh) => {
                // Exported, not taken: if the upgrade is called off this
                // worker carries on with the same connection.
                let frozen = ssh.freeze();
                self.transport = Transport::Ssh(ssh);
                Ok((TransportState::Ssh(frozen?), Vec::new()))
            }
        }
    }

    /// Keep `tls` as this worker's transport (for an upgrade called off)
    /// and give its hand-over encoding and the records not yet written.
    fn carry_on_with(
        &mut self,
        tls: CarriedTls,
        unsent: Vec<u8>,
    ) -> Result<(TransportState, Vec<u8>), String> {
        let encoded = tls.encode();
        self.transport = Transport::Carried(Box::new(CarriedSession {
            tls,
            out: unsent.clone(),
        }));
        Ok((TransportState::Tls(encoded), unsent))
    }
}

/// In the new portal: set up the worker of a carried session (registered
/// at once, so game output already on its way finds it) and start its
/// thread. A session that cannot be taken over is closed (a plain client
/// is told why) and the game is told it left.
pub fn spawn_thawed(shared: Arc<Shared>, state: SessionState) -> io::Result<()> {
    let sessid = state.record.sessid;
    let registered = state.registered;
    let worker = match Worker::thawed(&shared, state) {
        Ok(worker) => worker,
        Err((why, stream)) => {
            log::warn!("session {sessid}: could not be taken over: {why}");
            if let Some(mut stream) = stream {
                use std::io::Write;
                let _ = stream.write_all(format!("{NOT_CARRIED}\r\n").as_bytes());
            }
            if registered {
                shared.amp.send(ToWriter::Disconnect(sessid));
            }
            return Ok(());
        }
    };
    let body = shared.clone();
    let spawned = thread_builder(&shared, format!("session-{sessid}")).spawn(move || {
        run_guarded(body, sessid, move |_| {
            let mut worker = worker;
            worker.flush();
            worker.apply_events();
            run_connection(worker);
        })
    });
    if let Err(e) = spawned {
        shared.upgrades.forget_worker(sessid);
        shared.registry.disconnect(sessid);
        return Err(e);
    }
    Ok(())
}

type ThawError = (String, Option<std::net::TcpStream>);

/// A carried SSH connection, with the host key of the `[[ssh]]` listener
/// it was made on: the new portal's config names the key files, and the
/// one whose fingerprint the state names is read (a key changed in the
/// meantime would fail the client's next re-key, so the session is not
/// taken over).
fn thaw_ssh(config: &crate::config::Config, bytes: &[u8]) -> Result<SshTransport, String> {
    let fingerprint = SshTransport::frozen_fingerprint(bytes)?;
    let (host_key, policy) = crate::ssh::find_host_key(&config.ssh, &fingerprint)?;
    SshTransport::thaw(bytes, host_key, policy)
}

impl Worker {
    /// The worker of a carried session, its socket `state.fd`.
    fn thawed(shared: &Arc<Shared>, state: SessionState) -> Result<Box<Worker>, ThawError> {
        // SAFETY: the new portal's take-over checked that the descriptor is
        // an open socket and that the hand-over names it once, for this
        // session only.
        let std_stream = unsafe { std::net::TcpStream::from_raw_fd(state.fd) };
        let config = shared.config();
        let now = Instant::now();
        let plain = matches!(state.transport, TransportState::Plain);
        let core = match Core::thaw(&state.core, config.clone(), now) {
            Ok(core) => core,
            Err(e) => return Err((e.to_string(), plain.then_some(std_stream))),
        };
        let transport = match state.transport {
            TransportState::Plain => Transport::Plain,
            TransportState::Tls(bytes) => match CarriedTls::decode(&bytes) {
                Ok(tls) => Transport::Carried(Box::new(CarriedSession {
                    tls,
                    out: state.unsent,
                })),
                Err(e) => return Err((format!("its TLS state: {e}"), None)),
            },
            TransportState::Ssh(bytes) => match thaw_ssh(&config, &bytes) {
                Ok(ssh) => Transport::Ssh(Box::new(ssh)),
                Err(e) => return Err((format!("its SSH state: {e}"), None)),
            },
        };
        if let Err(e) = std_stream.set_nonblocking(true) {
            return Err((e.to_string(), None));
        }
        let stream = TcpStream::from_std(std_stream);
        let waiter = match Waiter::new(stream.as_raw_fd()) {
            Ok(waiter) => waiter,
            Err(e) => return Err((e.to_string(), None)),
        };
        let sessid = state.record.sessid;
        let (handle, rx) = WorkerHandle::new(waiter.waker());
        shared.upgrades.add_worker(sessid, handle.clone());
        let unregistered = if state.registered {
            shared.registry.adopt(state.record, handle);
            None
        } else {
            Some((state.record, handle))
        };
        let inbound = core.direction() != Direction::Outbound;
        Ok(Box::new(Worker {
            admission: Admission {
                count: AddressCount::adopted(shared.clone(), state.counted_ip),
                address: state.address,
                recount_at_register: state.recount_at_register,
            },
            shared: shared.clone(),
            config_generation: shared.config.generation(),
            waiter,
            stream,
            transport,
            rx,
            unregistered,
            core,
            address: inbound.then_some(state.address),
            hand_to: None,
            game_output_since: None,
        }))
    }
}
