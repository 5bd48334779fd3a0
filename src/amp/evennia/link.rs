//! The Evennia Server's side of the link, as the AMP reader thread sees
//! it: boxes are decoded ([`super::boxes`], [`super::mapping`]) and each is
//! handed to the same owners the native dialect uses
//! ([`crate::amp::reader::dispatch`]), with two differences Evennia needs:
//! every `_ask` is answered (through the writer, the link's only writer),
//! and session records arrive as partial dicts, applied onto the
//! registry's record before it is loaded.
//!
//! A box that is not AMP closes the link; a box whose payload cannot be
//! read is logged and answered with an error, and the link carries on.

use crate::amp::error::LinkError;
use crate::amp::evennia::boxes::{self, AmpBox, Decoded};
use crate::amp::evennia::mapping::{self, FromPeer};
use crate::amp::evennia::pickle::Py;
use crate::amp::inbox::ToWriter;
use crate::amp::reader::dispatch;
use crate::shared::Shared;
use crate::wire::message::ServerMsg;
use crate::wire::session::Session;
use std::sync::Arc;

/// Handle every whole box in `buf`; returns the bytes used.
pub fn dispatch_boxes(
    shared: &Arc<Shared>,
    id: u64,
    buf: &[u8],
    max: usize,
) -> Result<usize, LinkError> {
    let mut used = 0;
    loop {
        match boxes::decode(&buf[used..], max) {
            Decoded::NeedMore => return Ok(used),
            Decoded::Box { amp_box, used: n } => {
                used += n;
                handle_box(shared, id, &amp_box, max);
            }
            Decoded::Invalid { reason } => return Err(LinkError::Undecodable { reason }),
        }
    }
}

fn handle_box(shared: &Arc<Shared>, id: u64, amp_box: &AmpBox, max: usize) {
    let incoming = mapping::decode_box(amp_box, max);
    log::trace!("AMP: from the Evennia Server: {:?}", incoming.what);
    let verdict = match incoming.what {
        Ok(what) => act(shared, id, what),
        Err(e) => {
            log::warn!("AMP: a box from the Server could not be read: {e}");
            Err(("EXCEPTION", e.to_string()))
        }
    };
    let Some(ask) = incoming.ask else {
        return;
    };
    let reply = match verdict {
        Ok(()) => AmpBox::answer(&ask),
        Err((code, why)) => AmpBox::error(&ask, code, &why),
    };
    shared.amp.send(ToWriter::Answer(id, reply));
}

/// Act on one box; `Err` carries the error code and description to
/// answer with.
fn act(shared: &Arc<Shared>, id: u64, what: FromPeer) -> Result<(), (&'static str, String)> {
    match what {
        FromPeer::Msg(message) => {
            if let ServerMsg::Disconnect { sessid, .. } = &message {
                shared.shared_login.server_closed(*sessid);
            }
            return dispatch(shared, id, message).map_err(|e| ("EXCEPTION", e));
        }
        FromPeer::ServerHello { pid, info } => {
            log::info!(
                "AMP: the Evennia Server (pid {}) asks for the sessions",
                pid.map_or_else(|| "?".to_owned(), |p| p.to_string())
            );
            shared.evennia.connected(pid, info);
            shared.amp.send(ToWriter::SyncRequest(id));
        }
        FromPeer::Login { sessid, data } => {
            if let Some(record) = patched(shared, sessid, &data) {
                shared.registry.server_logged_in(&record);
                if record.logged_in {
                    shared.shared_login.logged_in(sessid, record.uid);
                }
            }
        }
        FromPeer::Sync { sessions, clean } => {
            let records: Vec<Session> = sessions
                .iter()
                .filter_map(|(sessid, data)| patched(shared, *sessid, data))
                .collect();
            shared.registry.server_session_sync(&records, clean);
        }
        FromPeer::Answer { ask } => pong(shared, &ask),
        FromPeer::Failed {
            ask,
            code,
            description,
        } => {
            log::warn!("AMP: the Server answered request {ask} with {code}: {description}");
            pong(shared, &ask);
        }
        FromPeer::Status | FromPeer::Launcher { .. } => {
            return Err((
                "UNHANDLED",
                "launcher commands go on their own connection".into(),
            ));
        }
        FromPeer::Unhandled { command } => {
            log::warn!("AMP: the Server sent an unknown command {command:?}");
            return Err(("UNHANDLED", format!("unhandled command {command:?}")));
        }
    }
    Ok(())
}

/// The portal's record of `sessid` with the Server's (partial) dict
/// applied; `None` for a session the portal does not have.
fn patched(shared: &Shared, sessid: u64, data: &Py) -> Option<Session> {
    let mut record = shared.registry.session(sessid)?;
    mapping::apply_sessiondata(&mut record, data);
    Some(record)
}

/// Heartbeats are asked with their seq as the `_ask`.
fn pong(shared: &Shared, ask: &str) {
    if let Ok(seq) = ask.parse() {
        shared.amp.send(ToWriter::Pong(seq));
    }
}
