//! The one AMP writer (thread `amp-writer`): the only owner of the link's
//! state, every session's held and in-flight input, and the heartbeat.
//!
//! It sleeps on its inbox (the one channel every other thread sends to)
//! until a message arrives or the [`Outbox`]'s next deadline (a heartbeat
//! ping, a game that stopped answering). Every message already waiting is
//! taken in one go before writing, so under load many frames go out in one
//! write.
//! The socket has a short write timeout: a game that stops reading never
//! blocks the writer, which keeps taking input (holding it, and telling
//! players) and keeps its heartbeat; what was not written is retried.
//!
//! What the outbox decides for players (notices) goes out through the
//! registry after each batch; a hung game is reported to the main loop.
//! Each input frame written whole is timed (from its oldest command's
//! arrival) into the `input_to_game` histogram, and the queue towards the
//! game's socket is published with the link's state.

use crate::amp::inbox::{InboxReceiver, ToWriter, WriterFrozen};
use crate::amp::outbox::{Notice, Outbox};
use crate::shared::{Control, Shared};
use std::collections::VecDeque;
use std::io::{self, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long one write may block on a game that is not reading.
const WRITE_TIMEOUT: Duration = Duration::from_millis(20);
/// How soon to retry bytes a slow game did not take.
const RETRY: Duration = Duration::from_millis(10);
/// An idle writer still looks this often (config reloads).
const IDLE: Duration = Duration::from_secs(1);
/// How long a freezing writer gives the game to take what is queued.
const FREEZE_FLUSH: Duration = Duration::from_millis(500);

/// The writer's thread state: the outbox and the socket it writes to.
struct Writer {
    shared: Arc<Shared>,
    outbox: Outbox,
    stream: Option<(u64, TcpStream)>,
    config_generation: u64,
}

/// Run the writer for the life of the portal, from `outbox` (a new one,
/// or an upgrade's) and the link it writes to, if any.
pub fn run_writer(
    shared: Arc<Shared>,
    inbox: InboxReceiver,
    outbox: Outbox,
    stream: Option<(u64, TcpStream)>,
) {
    let mut writer = Writer {
        outbox,
        config_generation: shared.config.generation(),
        stream: None,
        shared,
    };
    if let Some((id, stream)) = stream {
        writer.adopt_link(id, stream);
    }
    let mut batch = VecDeque::new();
    loop {
        let wait = writer.next_wait(Instant::now());
        if inbox.take_all(wait, &mut batch) {
            for message in batch.drain(..) {
                writer.apply(message);
            }
            if batch.capacity() > 1024 {
                // A burst's queue goes back to the allocator.
                batch = VecDeque::new();
            }
        }
        writer.refresh_config();
        writer.outbox.handle_timeout(Instant::now());
        // Players hear the outbox's news before the game gets what goes
        // with it: "the game is back" must reach a player before the
        // game's answer to their held input can.
        writer.deliver_notices();
        writer.write();
        writer.deliver_notices();
        let status = (writer.outbox.link_state(), writer.outbox.held());
        writer.shared.link.publish(status.0, status.1);
        let queued = (
            writer.outbox.queued_frames(),
            writer.outbox.transmit().len(),
        );
        writer.shared.link.publish_queue(queued.0, queued.1);
    }
}

impl Writer {
    /// How long to sleep: until the next deadline, or a short retry while
    /// bytes wait for a slow game.
    fn next_wait(&self, now: Instant) -> Duration {
        let mut wait = IDLE;
        if let Some(at) = self.outbox.poll_timeout(now) {
            wait = wait.min(at.saturating_duration_since(now));
        }
        if self.stream.is_some() && !self.outbox.transmit().is_empty() {
            wait = wait.min(RETRY);
        }
        wait
    }

    fn apply(&mut self, message: ToWriter) {
        let outbox = &mut self.outbox;
        match message {
            ToWriter::Connect(session) => outbox.connect(session),
            ToWriter::ConnSync(session) => outbox.conn_sync(session),
            ToWriter::Disconnect(sessid) => outbox.disconnect(sessid),
            ToWriter::Forget(sessid) => outbox.forget(sessid),
            ToWriter::DisconnectAll => outbox.disconnect_all(),
            ToWriter::Input {
                sessid,
                commands,
                at,
            } => outbox.input(sessid, commands, at),
            ToWriter::Send(message) => outbox.send(message),
            ToWriter::LinkUp(id, stream) => self.link_up(id, stream),
            ToWriter::LinkDown(id) => self.link_down(id),
            ToWriter::SyncRequest(id) => {
                let sessions = self.shared.registry.snapshot();
                outbox.sync_request(id, sessions);
            }
            ToWriter::Pong(seq) => outbox.pong(seq),
            ToWriter::BeginRestart(mode) => outbox.begin_restart(mode),
            ToWriter::ExpectClose => outbox.expect_close(),
            ToWriter::Answer(id, answer) => outbox.answer(id, answer),
            ToWriter::Freeze(reply) => self.freeze(&reply),
        }
    }

    /// `portal upgrade`: everything sent before the freeze is in the
    /// outbox; write what the game takes (for a moment), answer with the
    /// state, and wait for the exec or for the upgrade to be called off.
    fn freeze(&mut self, reply: &crossbeam_channel::Sender<WriterFrozen>) {
        let deadline = Instant::now() + FREEZE_FLUSH;
        loop {
            self.deliver_notices();
            self.write();
            if self.outbox.transmit().is_empty() || Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(RETRY);
        }
        let frozen = WriterFrozen {
            outbox: self.outbox.freeze(Instant::now()),
            link: self.stream.as_ref().map(|(id, _)| *id),
        };
        if reply.send(frozen).is_ok() {
            self.shared.upgrades.wait_until_called_off();
        }
    }

    fn link_up(&mut self, id: u64, stream: TcpStream) {
        if let Err(e) = stream.set_write_timeout(Some(WRITE_TIMEOUT)) {
            log::warn!("AMP: cannot set the link's write timeout: {e}");
        }
        self.stream = Some((id, stream));
        self.outbox.link_up(id);
    }

    /// A link carried over an upgrade: the outbox already knows it.
    fn adopt_link(&mut self, id: u64, stream: TcpStream) {
        if let Err(e) = stream.set_write_timeout(Some(WRITE_TIMEOUT)) {
            log::warn!("AMP: cannot set the link's write timeout: {e}");
        }
        self.stream = Some((id, stream));
    }

    fn link_down(&mut self, id: u64) {
        if self
            .stream
            .as_ref()
            .is_some_and(|(current, _)| *current == id)
        {
            if let Some((_, stream)) = self.stream.take() {
                let _ = stream.shutdown(Shutdown::Both);
            }
        }
        self.outbox.link_down(id);
    }

    /// Pick up a reloaded portal.conf.
    fn refresh_config(&mut self) {
        let generation = self.shared.config.generation();
        if generation != self.config_generation {
            self.config_generation = generation;
            self.outbox.set_config(self.shared.config());
        }
    }

    /// Write what the socket takes now. A failed write closes the link:
    /// the outbox holds again what did not go.
    fn write(&mut self) {
        let Some((id, stream)) = self.stream.as_mut() else {
            return;
        };
        let id = *id;
        let mut written = 0;
        let result = loop {
            let pending = self.outbox.next_write(written);
            if pending.is_empty() {
                break Ok(());
            }
            match stream.write(pending) {
                Ok(0) => break Err(io::Error::from(io::ErrorKind::WriteZero)),
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_timeout(&e) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        self.outbox.wrote(written);
        let now = Instant::now();
        let timing = &self.shared.stats.input_to_game;
        for (since, commands) in self.outbox.take_written_input() {
            timing.observe_n(now.saturating_duration_since(since), commands as u64);
        }
        if let Err(e) = result {
            log::warn!("AMP: write to the game failed: {e}");
            self.link_down(id);
        }
    }

    fn deliver_notices(&mut self) {
        let registry = &self.shared.registry;
        while let Some(notice) = self.outbox.poll_notice() {
            match notice {
                Notice::To(sessid, text) => registry.tell(sessid, &text),
                Notice::All(text) => registry.announce_all(&text),
                Notice::Hung => self.shared.request(Control::KillHungGame),
            }
        }
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}
