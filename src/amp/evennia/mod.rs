//! Evennia's AMP dialect: what an unmodified Evennia game Server and its
//! launcher (`evennia start|reload|stop|status`) speak on the AMP port.
//!
//! The dialect is a codec plus a mapping; everything above the link
//! (sessions, held input, restarts, rendering, limits) is the same code as
//! for the native dialect.
//!
//! - [`boxes`]: Twisted AMP boxes, pure;
//! - [`payload`]: `packed_data`, a pickle cut into zlib-compressed chunks;
//! - [`pickle`]: a bounded pickle codec (protocols 2-5 in, 4 out);
//! - [`mapping`]: Evennia's commands and operations ⇄ the link messages;
//! - [`django_session`]: a Django session record's `session_data`, pure;
//! - [`shared_login`]: the website's login shared with the web client,
//!   through the game's Django session table.
pub mod boxes;
pub mod django_session;
pub mod launcher;
pub mod link;
pub mod mapping;
pub mod payload;
pub mod pickle;
pub mod shared_login;

use crate::amp::evennia::pickle::Py;
use std::sync::Mutex;

/// What the portal knows of the Evennia Server, for the launcher's status:
/// the pid and info dict its PSYNC carried, and the command the launcher
/// last gave to start it.
#[derive(Default)]
pub struct ServerInfo {
    state: Mutex<InfoState>,
}

#[derive(Default, Clone)]
struct InfoState {
    pid: Option<i64>,
    info: Option<Py>,
    command: Vec<String>,
    /// Counts the Server's connections; `linked` is the current one's.
    epochs: u64,
    linked: Option<u64>,
}

impl ServerInfo {
    fn lock(&self) -> std::sync::MutexGuard<'_, InfoState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The Server (re)connected with this pid and info dict.
    pub fn connected(&self, pid: Option<i64>, info: Py) {
        let mut state = self.lock();
        state.pid = pid;
        state.info = Some(info);
        state.epochs += 1;
        state.linked = Some(state.epochs);
    }

    /// Which connection of the Server is linked now, if one is: a
    /// launcher waiting for a reload watches it change.
    pub fn epoch(&self) -> Option<u64> {
        self.lock().linked
    }

    /// The Server's link closed.
    pub fn disconnected(&self) {
        let mut state = self.lock();
        state.pid = None;
        state.info = None;
        state.linked = None;
    }

    /// The Server's pid and info dict, while it is linked.
    pub fn get(&self) -> (Option<i64>, Option<Py>) {
        let state = self.lock();
        (state.pid, state.info.clone())
    }

    /// The launcher's command for starting the Server (SSTART).
    pub fn set_command(&self, command: Vec<String>) {
        self.lock().command = command;
    }

    /// The command the launcher last gave; empty if none.
    pub fn command(&self) -> Vec<String> {
        self.lock().command.clone()
    }

    /// What `portal upgrade` carries (the info dict as a pickle).
    pub fn carry(&self) -> crate::upgrade::format::EvenniaState {
        let state = self.lock();
        crate::upgrade::format::EvenniaState {
            pid: state.pid,
            info: state.info.as_ref().map(pickle::encode),
            command: state.command.clone(),
            epochs: state.epochs,
            linked: state.linked,
        }
    }

    /// Take on what the previous portal knew of the Server; an info dict
    /// that does not decode is dropped (the launcher then shows none).
    pub fn adopt(&self, carried: crate::upgrade::format::EvenniaState) {
        let info = carried.info.and_then(|bytes| {
            pickle::decode(&bytes, &pickle::Limits::default())
                .inspect_err(|e| log::warn!("upgrade: the Evennia Server's info: {e}"))
                .ok()
        });
        let mut state = self.lock();
        state.pid = carried.pid;
        state.info = info;
        state.command = carried.command;
        state.epochs = carried.epochs;
        state.linked = carried.linked;
    }
}
