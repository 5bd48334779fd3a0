//! The portal's end of the AMP link: listener, hello, reader and writer.
//!
//! Threads (started by [`start`]):
//! - `amp-accept` accepts connections and runs the hello handshake, one at a
//!   time, so two games can never both be admitted. A junk client, a wrong
//!   version, a bad secret or a second game is refused with a clear reason
//!   and closed; player sessions never notice.
//! - `amp-reader`, the one reader: decodes frames from the linked game and
//!   calls the [`Handler`] (data_out fans out to sessions by sessid).
//! - `amp-writer`, the one writer: takes every message waiting in the
//!   channel, encodes them into one buffer and writes it with one call.
//!
//! A frame over the size limit or a body that does not decode closes the
//! link (the stream cannot be trusted after it); the game is then restarted
//! by the supervisor like after a crash.

use crate::amp::codec::{self, Decoded};
use crate::handler::{Control, Handler};
use crate::wire::message::{PortalMsg, ServerMsg, PROTOCOL_VERSION};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Largest hello accepted, whatever `max_frame_bytes` says.
const MAX_HELLO: usize = 64 * 1024;
/// The writer puts at most this much into one write.
const MAX_BATCH: usize = 256 * 1024;

/// A linked game, as handed to the reader and writer.
struct NewLink {
    id: u64,
    stream: TcpStream,
    /// Bytes the game sent after its hello, already read.
    leftover: Vec<u8>,
}

/// Writer control: a new link replaces the old one, or a link died.
enum WriterCtl {
    Link(u64, TcpStream),
    Unlink(u64),
}

/// Start the accept, reader and writer threads on `listener`.
pub fn start(
    listener: TcpListener,
    handler: Arc<Handler>,
    amp_rx: Receiver<PortalMsg>,
) -> io::Result<()> {
    let (reader_tx, reader_rx) = crossbeam_channel::unbounded::<NewLink>();
    let (writer_tx, writer_rx) = crossbeam_channel::unbounded::<WriterCtl>();
    let h = handler.clone();
    let w = writer_tx.clone();
    std::thread::Builder::new()
        .name("amp-writer".into())
        .spawn(move || run_writer(h, amp_rx, writer_rx))?;
    let h = handler.clone();
    std::thread::Builder::new()
        .name("amp-reader".into())
        .spawn(move || run_reader(h, reader_rx, w))?;
    std::thread::Builder::new()
        .name("amp-accept".into())
        .spawn(move || run_accept(listener, handler, reader_tx, writer_tx))?;
    Ok(())
}

// ---- accepting and the hello ----

fn run_accept(
    listener: TcpListener,
    handler: Arc<Handler>,
    reader_tx: Sender<NewLink>,
    writer_tx: Sender<WriterCtl>,
) {
    let mut next_id = 1u64;
    for stream in listener.incoming() {
        let stream = match stream {
            Ok(stream) => stream,
            Err(e) => {
                log::warn!("AMP: accept failed: {e}");
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        let peer = peer_name(&stream);
        match admit(&handler, stream) {
            Ok((stream, leftover)) => {
                let id = next_id;
                next_id += 1;
                if let Err(e) = hand_over(&handler, id, stream, leftover, &reader_tx, &writer_tx) {
                    log::error!("AMP: cannot start link from {peer}: {e}");
                    continue;
                }
                log::info!("AMP: game server linked from {peer}");
            }
            Err(reason) => log::warn!("AMP: refused a link from {peer}: {reason}"),
        }
    }
}

fn peer_name(stream: &TcpStream) -> String {
    stream
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| "an unknown peer".into())
}

fn hand_over(
    handler: &Handler,
    id: u64,
    stream: TcpStream,
    leftover: Vec<u8>,
    reader_tx: &Sender<NewLink>,
    writer_tx: &Sender<WriterCtl>,
) -> io::Result<()> {
    let for_writer = stream.try_clone()?;
    handler.link_up(id);
    let _ = writer_tx.send(WriterCtl::Link(id, for_writer));
    let _ = reader_tx.send(NewLink {
        id,
        stream,
        leftover,
    });
    Ok(())
}

/// Run the hello: read it within the deadline, check version, secret and
/// that no game is linked yet, and answer. Returns the stream and any bytes
/// read past the hello, or why the peer was refused.
fn admit(handler: &Handler, mut stream: TcpStream) -> Result<(TcpStream, Vec<u8>), String> {
    let config = handler.config();
    let _ = stream.set_nodelay(true);
    let deadline = Instant::now() + Duration::from_secs_f64(config.amp.hello_timeout_secs);
    let (body, leftover) = read_first_frame(&mut stream, deadline)?;
    let verdict = check_hello(&body, &config.amp.secret, handler.is_linked());
    let reply = match &verdict {
        Ok(()) => PortalMsg::Welcome {
            version: PROTOCOL_VERSION,
            portal: format!("portal {}", env!("CARGO_PKG_VERSION")),
        },
        Err(reason) => PortalMsg::Refused {
            reason: reason.clone(),
        },
    };
    let mut bytes = Vec::new();
    codec::encode(&reply, &mut bytes).map_err(|e| e.to_string())?;
    let written = stream.write_all(&bytes);
    if verdict.is_err() {
        let _ = stream.shutdown(Shutdown::Both);
    }
    verdict?;
    written.map_err(|e| format!("cannot answer the hello: {e}"))?;
    stream
        .set_read_timeout(None)
        .map_err(|e| format!("cannot clear the read timeout: {e}"))?;
    Ok((stream, leftover))
}

/// Read until one whole frame is in; returns its body and what followed.
fn read_first_frame(
    stream: &mut TcpStream,
    deadline: Instant,
) -> Result<(Vec<u8>, Vec<u8>), String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match codec::decode::<serde::de::IgnoredAny>(&buf, MAX_HELLO) {
            Decoded::TooLarge { len } => {
                let _ = stream.shutdown(Shutdown::Both);
                return Err(format!(
                    "first frame announces {len} bytes: not an AMP hello"
                ));
            }
            Decoded::Frame { used, .. } | Decoded::Invalid { used, .. } => {
                let body = buf[codec::HEADER_LEN..used].to_vec();
                return Ok((body, buf[used..].to_vec()));
            }
            Decoded::NeedMore => {}
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err("no hello before the deadline".into());
        }
        stream
            .set_read_timeout(Some(left))
            .map_err(|e| e.to_string())?;
        match stream.read(&mut chunk) {
            Ok(0) => return Err("closed before its hello".into()),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("no hello: {e}")),
        }
    }
}

/// Decide on a hello body.
fn check_hello(body: &[u8], secret: &str, already_linked: bool) -> Result<(), String> {
    let version = codec::hello_version(body).ok_or("the first frame must be a Hello")?;
    if version != PROTOCOL_VERSION {
        return Err(format!(
            "AMP version mismatch: this portal speaks version {PROTOCOL_VERSION}, \
             the game sent version {version}"
        ));
    }
    let hello: ServerMsg =
        postcard::from_bytes(body).map_err(|e| format!("malformed Hello: {e}"))?;
    let ServerMsg::Hello {
        secret: offered, ..
    } = hello
    else {
        return Err("the first frame must be a Hello".into());
    };
    if offered != secret {
        return Err("wrong AMP secret".into());
    }
    if already_linked {
        return Err("another game server is already linked to this portal".into());
    }
    Ok(())
}

// ---- the reader ----

fn run_reader(handler: Arc<Handler>, links: Receiver<NewLink>, writer_tx: Sender<WriterCtl>) {
    for link in links {
        let id = link.id;
        match read_link(&handler, link) {
            Ok(()) => log::info!("AMP: the game closed the link"),
            Err(e) => log::warn!("AMP: link closed: {e}"),
        }
        let _ = writer_tx.send(WriterCtl::Unlink(id));
        handler.link_down(id);
    }
}

/// Read and dispatch frames until the link ends.
fn read_link(handler: &Arc<Handler>, link: NewLink) -> Result<(), String> {
    let NewLink {
        id,
        mut stream,
        leftover,
    } = link;
    let max = handler.config().amp.max_frame_bytes;
    let mut buf = leftover;
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let used = dispatch_frames(handler, id, &buf, max).inspect_err(|_| {
            let _ = stream.shutdown(Shutdown::Both);
        })?;
        buf.drain(..used);
        match stream.read(&mut chunk) {
            Ok(0) => return Ok(()),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// Handle every whole frame in `buf`; returns the bytes used.
fn dispatch_frames(
    handler: &Arc<Handler>,
    id: u64,
    buf: &[u8],
    max: usize,
) -> Result<usize, String> {
    let mut used = 0;
    loop {
        match codec::decode::<ServerMsg>(&buf[used..], max) {
            Decoded::NeedMore => return Ok(used),
            Decoded::Frame { message, used: n } => {
                used += n;
                dispatch(handler, id, message);
            }
            Decoded::TooLarge { len } => {
                return Err(format!(
                    "frame of {len} bytes is over max_frame_bytes ({max})"
                ))
            }
            Decoded::Invalid { reason, .. } => return Err(format!("undecodable frame: {reason}")),
        }
    }
}

/// Act on one message from the game.
fn dispatch(handler: &Arc<Handler>, id: u64, message: ServerMsg) {
    log::trace!("AMP: from the game: {message:?}");
    match message {
        ServerMsg::Hello { .. } => log::warn!("AMP: unexpected second Hello ignored"),
        ServerMsg::SyncRequest => handler.sync_request(id),
        ServerMsg::Login { session } => handler.server_logged_in(&session),
        ServerMsg::Disconnect { sessid, reason } => handler.server_disconnect(sessid, &reason),
        ServerMsg::DisconnectAll { reason } => handler.server_disconnect_all(&reason),
        ServerMsg::SessionSync { sessions, clean } => handler.server_session_sync(&sessions, clean),
        ServerMsg::ServerConnect {
            protocol_key,
            config,
        } => {
            if let Err(message) = handler.server_connect(&protocol_key, &config) {
                log::warn!("AMP: ServerConnect refused: {message}");
                handler.send_amp(PortalMsg::Error {
                    request: "ServerConnect".into(),
                    message,
                });
            }
        }
        ServerMsg::Reload => handler.request(Control::ReloadGame),
        ServerMsg::Shutdown => handler.request(Control::Shutdown),
        ServerMsg::DataOut { sessid, commands } => handler.data_out(sessid, commands),
        ServerMsg::Pong { seq } => handler.pong(seq),
    }
}

// ---- the writer ----

/// The writer sleeps on the message channel alone (a `select!` over it and
/// the control channel cost two waker registrations per message, contended
/// by every session's sender). Link changes only matter when there is
/// something to write, so they are applied before each batch: a `Link` is
/// sent before its reader starts, so it is always seen before any reply to
/// that game. An idle writer still looks once a second, so a dead link's
/// socket is closed soon after its `Unlink`.
fn run_writer(handler: Arc<Handler>, amp_rx: Receiver<PortalMsg>, ctl: Receiver<WriterCtl>) {
    let mut link: Option<(u64, TcpStream)> = None;
    loop {
        let next = amp_rx.recv_timeout(Duration::from_secs(1));
        for message in ctl.try_iter() {
            match message {
                WriterCtl::Link(id, stream) => link = Some((id, stream)),
                WriterCtl::Unlink(id) => {
                    if link.as_ref().is_some_and(|(current, _)| *current == id) {
                        link = None;
                    }
                }
            }
        }
        match next {
            Ok(first) => write_batch(&handler, &amp_rx, first, &mut link),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// Write `first` and everything already waiting behind it in one write.
fn write_batch(
    handler: &Handler,
    amp_rx: &Receiver<PortalMsg>,
    first: PortalMsg,
    link: &mut Option<(u64, TcpStream)>,
) {
    let mut batch = vec![first];
    let mut bytes = Vec::new();
    encode_into(&batch[0], &mut bytes);
    while bytes.len() < MAX_BATCH {
        let Ok(next) = amp_rx.try_recv() else { break };
        encode_into(&next, &mut bytes);
        batch.push(next);
    }
    let Some((id, stream)) = link.as_mut() else {
        return give_back(handler, batch);
    };
    if let Err(e) = stream.write_all(&bytes) {
        log::warn!("AMP: write to the game failed: {e}");
        let id = *id;
        let _ = stream.shutdown(Shutdown::Both);
        *link = None;
        give_back(handler, batch);
        handler.link_down(id);
    }
}

fn encode_into(message: &PortalMsg, bytes: &mut Vec<u8>) {
    if let Err(e) = codec::encode(message, bytes) {
        log::error!("AMP: {e}");
    }
}

/// Input that did not reach the game goes back to be held; the rest is
/// carried by the next sync.
fn give_back(handler: &Handler, batch: Vec<PortalMsg>) {
    // Newest first: each requeue goes to the front of its session's queue,
    // so the oldest ends up first again.
    for message in batch.into_iter().rev() {
        if let PortalMsg::DataIn { sessid, commands } = message {
            handler.requeue(sessid, commands);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello_body(version: u32, secret: &str) -> Vec<u8> {
        let hello = ServerMsg::Hello {
            version,
            secret: secret.into(),
            name: "g".into(),
        };
        postcard::to_stdvec(&hello).unwrap()
    }

    #[test]
    fn hello_with_the_right_version_and_secret_is_accepted() {
        assert_eq!(check_hello(&hello_body(1, "s"), "s", false), Ok(()));
    }

    #[test]
    fn wrong_version_is_refused_naming_both_versions() {
        let err = check_hello(&hello_body(2, ""), "", false).unwrap_err();
        assert!(
            err.contains("version 1") && err.contains("version 2"),
            "{err}"
        );
    }

    #[test]
    fn wrong_secret_and_second_game_are_refused() {
        assert!(check_hello(&hello_body(1, "x"), "s", false)
            .unwrap_err()
            .contains("secret"));
        assert!(check_hello(&hello_body(1, ""), "", true)
            .unwrap_err()
            .contains("already"));
    }

    #[test]
    fn a_frame_that_is_not_a_hello_is_refused() {
        let body = postcard::to_stdvec(&ServerMsg::SyncRequest).unwrap();
        assert!(check_hello(&body, "", false).is_err());
        assert!(check_hello(&[], "", false).is_err());
    }
}
