//! The one AMP reader (thread `amp-reader`): decodes frames from the linked
//! game and dispatches each message to its owner — output and session
//! changes to the [`crate::registry::Registry`], link and heartbeat events
//! to the AMP writer's inbox, outbound connections to
//! [`crate::session::outbound`], reload and shutdown to the main loop.
//!
//! A frame over the size limit or a body that does not decode closes the
//! link (the stream cannot be trusted after it); the game is then restarted
//! by the supervisor like after a crash.

use crate::amp::codec::{self, Decoded};
use crate::amp::error::LinkError;
use crate::amp::inbox::ToWriter;
use crate::config::Dialect;
use crate::shared::{Control, Shared};
use crate::upgrade::format::LinkState;
use crate::wire::message::{PortalMsg, ServerMsg};
use crossbeam_channel::{Receiver, RecvTimeoutError};
use std::io::{self, Read};
use std::net::{Shutdown, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Duration;

/// A linked game, as the accept thread hands it over.
pub struct NewLink {
    pub id: u64,
    pub stream: TcpStream,
    /// Bytes the game sent after its hello, already read.
    pub leftover: Vec<u8>,
}

/// How often a reader blocked on the game checks for an upgrade's freeze.
const FREEZE_CHECK: Duration = Duration::from_millis(100);

/// Read each linked game in turn until its link ends.
pub fn run_reader(shared: Arc<Shared>, links: Receiver<NewLink>) {
    loop {
        let link = match links.recv_timeout(FREEZE_CHECK) {
            Ok(link) => link,
            Err(RecvTimeoutError::Timeout) => {
                if shared.upgrades.freezing() {
                    shared.upgrades.park_reader(None);
                }
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let id = link.id;
        match read_link(&shared, link) {
            Ok(()) => log::info!("AMP: the game closed the link"),
            Err(e) => log::warn!("AMP: link closed: {e}"),
        }
        shared.amp.send(ToWriter::LinkDown(id));
        shared.evennia.disconnected();
        shared.link.release();
    }
}

/// Read and dispatch frames until the link ends.
fn read_link(shared: &Arc<Shared>, link: NewLink) -> Result<(), LinkError> {
    let NewLink {
        id,
        mut stream,
        leftover,
    } = link;
    let max = shared.config().amp.max_frame_bytes;
    let mut buf = leftover;
    let mut chunk = vec![0u8; 64 * 1024];
    let dialect = shared.config().amp.dialect;
    // Short reads, so an upgrade's freeze is seen while the game is quiet.
    stream
        .set_read_timeout(Some(FREEZE_CHECK))
        .map_err(LinkError::Io)?;
    loop {
        let used = match dialect {
            Dialect::Native => dispatch_frames(shared, id, &buf, max),
            Dialect::Evennia => crate::amp::evennia::link::dispatch_boxes(shared, id, &buf, max),
        }
        .inspect_err(|_| {
            let _ = stream.shutdown(Shutdown::Both);
        })?;
        buf.drain(..used);
        if shared.upgrades.freezing() {
            // Stopped between frames: the rest of one is carried.
            shared.upgrades.park_reader(Some(LinkState {
                fd: stream.as_raw_fd(),
                id,
                unread: buf.clone(),
            }));
            continue;
        }
        match stream.read(&mut chunk) {
            Ok(0) => return Ok(()),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(LinkError::Io(e)),
        }
    }
}

/// Handle every whole frame in `buf`; returns the bytes used.
fn dispatch_frames(
    shared: &Arc<Shared>,
    id: u64,
    buf: &[u8],
    max: usize,
) -> Result<usize, LinkError> {
    let mut used = 0;
    loop {
        match codec::decode::<ServerMsg>(&buf[used..], max) {
            Decoded::NeedMore => return Ok(used),
            Decoded::Frame { message, used: n } => {
                used += n;
                if let Err(e) = dispatch(shared, id, message) {
                    shared.amp.send_msg(PortalMsg::Error {
                        request: "ServerConnect".into(),
                        message: e,
                    });
                }
            }
            Decoded::TooLarge { len } => return Err(LinkError::FrameTooLarge { len, max }),
            Decoded::Invalid { reason, .. } => return Err(LinkError::Undecodable { reason }),
        }
    }
}

/// Act on one message from the game. Fails (with the reason to tell the
/// game) only for a `ServerConnect` that cannot be made.
pub fn dispatch(shared: &Arc<Shared>, id: u64, message: ServerMsg) -> Result<(), String> {
    log::trace!("AMP: from the game: {message:?}");
    let registry = &shared.registry;
    match message {
        ServerMsg::Hello { .. } => log::warn!("AMP: unexpected second Hello ignored"),
        ServerMsg::SyncRequest => shared.amp.send(ToWriter::SyncRequest(id)),
        ServerMsg::Login { session } => registry.server_logged_in(&session),
        ServerMsg::Disconnect { sessid, reason } => registry.server_disconnect(sessid, &reason),
        ServerMsg::DisconnectAll { reason } => registry.server_disconnect_all(&reason),
        ServerMsg::SessionSync { sessions, clean } => {
            registry.server_session_sync(&sessions, clean)
        }
        ServerMsg::ServerConnect {
            protocol_key,
            config,
        } => {
            if let Err(e) = crate::session::outbound::server_connect(shared, &protocol_key, &config)
            {
                log::warn!("AMP: ServerConnect refused: {e}");
                return Err(e.to_string());
            }
        }
        ServerMsg::Reload => shared.request(Control::ReloadGame),
        ServerMsg::Reset => shared.request(Control::ResetGame),
        ServerMsg::StopGame => shared.request(Control::StopGame),
        ServerMsg::Shutdown => shared.request(Control::Shutdown),
        ServerMsg::DataOut { sessid, commands } => registry.data_out(sessid, commands),
        ServerMsg::Pong { seq } => shared.amp.send(ToWriter::Pong(seq)),
    }
    Ok(())
}
