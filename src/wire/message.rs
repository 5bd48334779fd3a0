//! The AMP message vocabulary, in both directions.
//!
//! Every frame on the link carries one of these enums, postcard-encoded.
//! The variant order is the wire format (`docs/amp-protocol.md`): never
//! reorder, only append, and bump [`PROTOCOL_VERSION`] on any other change.
//! The names in brackets are the seed's (Evennia's) AMP command names.

use crate::wire::session::Session;
use crate::wire::value::{Map, Value};
use serde::{Deserialize, Serialize};

/// The link protocol version both sides must agree on in the hello.
pub const PROTOCOL_VERSION: u32 = 1;

/// One command travelling to or from a session: `(cmdname, args, kwargs)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Command {
    pub name: String,
    pub args: Vec<Value>,
    pub kwargs: Map,
}

impl Command {
    /// A `text` command with one string argument: the common case.
    pub fn text(text: impl Into<String>) -> Command {
        Command {
            name: "text".into(),
            args: vec![Value::Str(text.into())],
            kwargs: Map::new(),
        }
    }

    /// The first argument as a string, if it is one.
    pub fn first_str(&self) -> Option<&str> {
        self.args.first().and_then(Value::as_str)
    }
}

/// Why the game server is (re)connecting, told to it in the sync reply so it
/// can tell players the right thing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StartMode {
    /// First start under this portal run.
    Start,
    /// Restarted on request (SIGUSR1, `portal reload-server`, the game's
    /// own `reload`): players expect to continue.
    Reload,
    /// Restarted after it died or stopped answering.
    Crash,
    /// The game connected on its own (started by hand, or relinked).
    Reconnect,
    /// Restarted on request in Evennia's `reset` mode (a cold start for
    /// the game, players stay connected).
    Reset,
}

impl StartMode {
    /// Lower-case name used in logs and docs.
    pub fn name(self) -> &'static str {
        match self {
            StartMode::Start => "start",
            StartMode::Reload => "reload",
            StartMode::Crash => "crash",
            StartMode::Reconnect => "reconnect",
            StartMode::Reset => "reset",
        }
    }
}

/// Why the portal asks the game to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StopMode {
    /// The game will be started again at once; keep session state.
    Reload,
    /// The portal is shutting down, or the game is stopped on its own.
    Shutdown,
    /// As `Reload`, in Evennia's `reset` mode.
    Reset,
}

/// Messages from the game server to the portal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ServerMsg {
    /// First frame on a link. `secret` is checked when the portal requires
    /// one (empty otherwise). Variant 0 and the leading `version` field are
    /// fixed forever so any version can be read and refused.
    Hello {
        version: u32,
        secret: String,
        name: String,
    },
    /// (PSYNC) Ask for every session's record; the portal answers `Sync`.
    SyncRequest,
    /// (SLOGIN) A session authenticated; the record carries uid/uname.
    Login { session: Session },
    /// (SDISCONN) Close one session, showing `reason` to the player first.
    Disconnect { sessid: u64, reason: String },
    /// (SDISCONNALL) Close every session with `reason`.
    DisconnectAll { reason: String },
    /// (SSYNC) Push session records to the portal; with `clean`, portal
    /// sessions missing from the list are closed.
    SessionSync { sessions: Vec<Session>, clean: bool },
    /// (SCONN) Open an outbound connection that behaves as a session.
    ServerConnect { protocol_key: String, config: Map },
    /// Ask the portal to restart the game, keeping every player connected.
    Reload,
    /// Ask the portal to shut down (game and portal).
    Shutdown,
    /// Output for one session.
    DataOut { sessid: u64, commands: Vec<Command> },
    /// Answer to [`PortalMsg::Ping`], sent once every frame received before
    /// that ping has been handled.
    Pong { seq: u64 },
    /// Ask the portal to restart the game in reset mode (Evennia's SRESET).
    Reset,
    /// Ask the portal to stop the game and keep it stopped, players staying
    /// connected (Evennia's SSHUTD, `evennia sstop`).
    StopGame,
}

/// Messages from the portal to the game server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PortalMsg {
    /// Hello accepted. Variant 0 is fixed forever.
    Welcome { version: u32, portal: String },
    /// Hello refused (wrong version, bad secret, another game linked); the
    /// portal closes the link after it. Variant 1 is fixed forever.
    Refused { reason: String },
    /// (PCONN) A new session connected.
    Connect { session: Session },
    /// (PCONNSYNC) A session's negotiated data changed.
    ConnSync { session: Session },
    /// (PDISCONN) A session closed from the client side.
    Disconnect { sessid: u64 },
    /// (PDISCONNALL) Every session closed.
    DisconnectAll,
    /// (PSYNC reply) Every session's record and why the game is starting.
    Sync {
        mode: StartMode,
        sessions: Vec<Session>,
    },
    /// Input from one session.
    DataIn { sessid: u64, commands: Vec<Command> },
    /// The game should finish what it has read and exit.
    Stop { mode: StopMode },
    /// A request from the game failed (e.g. `ServerConnect` with an
    /// unknown protocol key).
    Error { request: String, message: String },
    /// Heartbeat: the game answers `Pong { seq }` after handling every
    /// earlier frame. No answer within `[game] unresponsive_secs` and the
    /// game is restarted; the answer also confirms the input sent before.
    Ping { seq: u64 },
}
