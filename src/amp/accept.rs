//! The AMP listener and the hello handshake (thread `amp-accept`).
//!
//! Connections are accepted and their hellos run one at a time, so two
//! games can never both be admitted: a game that passes claims the link
//! ([`crate::amp::inbox::LinkStatus::claim`]) and is handed to the writer
//! (as a [`ToWriter::LinkUp`]) and then to the reader. A junk client, a
//! wrong version, a bad secret or a second game is refused with a clear
//! reason and closed; player sessions never notice.
//!
//! With the evennia dialect there is no hello: the first box tells the
//! Server (it asks for the sessions) from Evennia's launcher (a status or
//! an instruction), which is served on its own short-lived thread
//! ([`crate::amp::evennia::launcher`]).

use crate::amp::codec::{self, Decoded};
use crate::amp::error::LinkError;
use crate::amp::evennia::boxes::{self, AmpBox};
use crate::amp::evennia::launcher;
use crate::amp::inbox::ToWriter;
use crate::amp::reader::NewLink;
use crate::config::Dialect;
use crate::shared::Shared;
use crate::wire::message::{PortalMsg, ServerMsg, PROTOCOL_VERSION};
use crossbeam_channel::Sender;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Largest hello accepted, whatever `max_frame_bytes` says.
const MAX_HELLO: usize = 64 * 1024;

/// Accept games forever; each admitted one goes to the writer and reader.
/// Links are numbered from `first_id` (after an upgrade, past the carried
/// link's).
pub fn run_accept(
    listener: TcpListener,
    shared: Arc<Shared>,
    reader_tx: Sender<NewLink>,
    first_id: u64,
) {
    let mut next_id = first_id;
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
        let admitted = match shared.config().amp.dialect {
            Dialect::Native => admit(&shared, stream),
            Dialect::Evennia => match admit_evennia(&shared, stream) {
                Ok(Peer::Game(stream, leftover)) => Ok((stream, leftover)),
                Ok(Peer::Launcher(stream, leftover)) => {
                    start_launcher(&shared, stream, leftover, &peer);
                    continue;
                }
                Err(e) => Err(e),
            },
        };
        match admitted {
            Ok((stream, leftover)) => {
                let id = next_id;
                next_id += 1;
                if let Err(e) = hand_over(&shared, id, stream, leftover, &reader_tx) {
                    shared.link.release();
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
    shared: &Shared,
    id: u64,
    stream: TcpStream,
    leftover: Vec<u8>,
    reader_tx: &Sender<NewLink>,
) -> io::Result<()> {
    let for_writer = stream.try_clone()?;
    // The writer hears of the link before the reader can pass on any
    // request from this game.
    shared.amp.send(ToWriter::LinkUp(id, for_writer));
    let link = NewLink {
        id,
        stream,
        leftover,
    };
    reader_tx
        .send(link)
        .map_err(|_| io::Error::other("the AMP reader has stopped"))
}

/// Run the hello: read it within the deadline, check version, secret and
/// that no game is linked yet, claim the link and answer. Returns the
/// stream and any bytes read past the hello, or why the peer was refused.
fn admit(shared: &Shared, mut stream: TcpStream) -> Result<(TcpStream, Vec<u8>), LinkError> {
    let config = shared.config();
    let _ = stream.set_nodelay(true);
    let deadline = Instant::now() + Duration::from_secs_f64(config.amp.hello_timeout_secs);
    let (body, leftover) = read_first_frame(&mut stream, deadline)?;
    let mut verdict = check_hello(&body, &config.amp.secret, shared.link.is_claimed());
    if verdict.is_ok() && !shared.link.claim() {
        verdict = Err(LinkError::SecondGame);
    }
    let reply = match &verdict {
        Ok(()) => PortalMsg::Welcome {
            version: PROTOCOL_VERSION,
            portal: format!("portal {}", env!("CARGO_PKG_VERSION")),
        },
        Err(reason) => PortalMsg::Refused {
            reason: reason.to_string(),
        },
    };
    let mut bytes = Vec::new();
    if let Err(e) = codec::encode(&reply, &mut bytes) {
        log::error!("AMP: {e}");
    }
    let written = stream.write_all(&bytes);
    if verdict.is_err() {
        let _ = stream.shutdown(Shutdown::Both);
    }
    verdict?;
    let ready = written.and_then(|()| stream.set_read_timeout(None));
    if let Err(e) = ready {
        shared.link.release();
        return Err(LinkError::Io(e));
    }
    Ok((stream, leftover))
}

/// Who opened an Evennia-dialect connection, told by its first box.
enum Peer {
    /// The Server (its first box, PSYNC, is kept for the reader).
    Game(TcpStream, Vec<u8>),
    /// `evennia start|stop|reload|status` (first box kept too).
    Launcher(TcpStream, Vec<u8>),
}

/// Read the first box within the hello deadline and tell the Server from
/// the launcher; the Server claims the link as a native game does.
fn admit_evennia(shared: &Shared, mut stream: TcpStream) -> Result<Peer, LinkError> {
    let config = shared.config();
    let _ = stream.set_nodelay(true);
    let deadline = Instant::now() + Duration::from_secs_f64(config.amp.hello_timeout_secs);
    let (first, buf) = match read_first_box(&mut stream, deadline) {
        Ok(read) => read,
        Err(e) => {
            let _ = stream.shutdown(Shutdown::Both);
            return Err(e);
        }
    };
    let command = first.text("_command").unwrap_or_default();
    if matches!(command.as_str(), "MsgStatus" | "MsgLauncher2Portal") {
        stream.set_read_timeout(None)?;
        return Ok(Peer::Launcher(stream, buf));
    }
    if !shared.link.claim() {
        let _ = stream.shutdown(Shutdown::Both);
        return Err(LinkError::SecondGame);
    }
    if let Err(e) = stream.set_read_timeout(None) {
        shared.link.release();
        return Err(LinkError::Io(e));
    }
    Ok(Peer::Game(stream, buf))
}

/// Read until the first box is whole; returns it and every byte read.
fn read_first_box(
    stream: &mut TcpStream,
    deadline: Instant,
) -> Result<(AmpBox, Vec<u8>), LinkError> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match boxes::decode(&buf, MAX_HELLO) {
            boxes::Decoded::Box { amp_box, .. } => return Ok((amp_box, buf)),
            boxes::Decoded::Invalid { reason } => return Err(LinkError::NotAmp { reason }),
            boxes::Decoded::NeedMore => {}
        }
        read_more(stream, deadline, &mut buf, &mut chunk)?;
    }
}

/// One read into `buf` before `deadline`.
fn read_more(
    stream: &mut TcpStream,
    deadline: Instant,
    buf: &mut Vec<u8>,
    chunk: &mut [u8],
) -> Result<(), LinkError> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(LinkError::NoHello);
        }
        stream.set_read_timeout(Some(left))?;
        match stream.read(chunk) {
            Ok(0) => return Err(LinkError::ClosedBeforeHello),
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                return Ok(());
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if is_timeout(&e) => return Err(LinkError::NoHello),
            Err(e) => return Err(LinkError::Io(e)),
        }
    }
}

fn start_launcher(shared: &Arc<Shared>, stream: TcpStream, leftover: Vec<u8>, peer: &str) {
    log::debug!("AMP: Evennia launcher connected from {peer}");
    let s = shared.clone();
    let spawned = std::thread::Builder::new()
        .name("amp-launcher".into())
        .spawn(move || launcher::serve(&s, stream, leftover));
    if let Err(e) = spawned {
        log::error!("AMP: cannot serve the Evennia launcher: {e}");
    }
}

/// Read until one whole frame is in; returns its body and what followed.
fn read_first_frame(
    stream: &mut TcpStream,
    deadline: Instant,
) -> Result<(Vec<u8>, Vec<u8>), LinkError> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match codec::decode::<serde::de::IgnoredAny>(&buf, MAX_HELLO) {
            Decoded::TooLarge { len } => {
                let _ = stream.shutdown(Shutdown::Both);
                return Err(LinkError::HelloTooLarge { len });
            }
            Decoded::Frame { used, .. } | Decoded::Invalid { used, .. } => {
                let body = buf[codec::HEADER_LEN..used].to_vec();
                return Ok((body, buf[used..].to_vec()));
            }
            Decoded::NeedMore => {}
        }
        read_more(stream, deadline, &mut buf, &mut chunk)?;
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Decide on a hello body.
fn check_hello(body: &[u8], secret: &str, already_linked: bool) -> Result<(), LinkError> {
    let version = codec::hello_version(body).ok_or(LinkError::NotAHello)?;
    if version != PROTOCOL_VERSION {
        return Err(LinkError::Version {
            ours: PROTOCOL_VERSION,
            theirs: version,
        });
    }
    let hello: ServerMsg = postcard::from_bytes(body).map_err(LinkError::MalformedHello)?;
    let ServerMsg::Hello {
        secret: offered, ..
    } = hello
    else {
        return Err(LinkError::NotAHello);
    };
    if offered != secret {
        return Err(LinkError::WrongSecret);
    }
    if already_linked {
        return Err(LinkError::SecondGame);
    }
    Ok(())
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
        assert!(check_hello(&hello_body(1, "s"), "s", false).is_ok());
    }

    #[test]
    fn wrong_version_is_refused_naming_both_versions() {
        let err = check_hello(&hello_body(2, ""), "", false)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("version 1") && err.contains("version 2"),
            "{err}"
        );
    }

    #[test]
    fn wrong_secret_and_second_game_are_refused() {
        assert!(matches!(
            check_hello(&hello_body(1, "x"), "s", false),
            Err(LinkError::WrongSecret)
        ));
        assert!(check_hello(&hello_body(1, ""), "", true)
            .unwrap_err()
            .to_string()
            .contains("already"));
    }

    #[test]
    fn a_frame_that_is_not_a_hello_is_refused() {
        let body = postcard::to_stdvec(&ServerMsg::SyncRequest).unwrap();
        assert!(check_hello(&body, "", false).is_err());
        assert!(check_hello(&[], "", false).is_err());
    }
}
