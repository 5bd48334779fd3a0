//! Outbound sessions the game asks for (the seed's `server_connect`,
//! SCONN): the protocol is looked up by key, the target read from the
//! request's config, and a worker started that connects out and then
//! behaves as a session: `telnet` ([`crate::session::worker`]) or `irc`
//! (a bot, [`crate::session::irc`]). Called by the AMP reader; every refusal is a
//! [`ServerConnectError`] sent back to the game, never a crash.

use crate::shared::Shared;
use crate::wire::value::{Map, Value};
use std::fmt;
use std::io;
use std::sync::Arc;

/// Protocol keys `server_connect` can open.
pub const OUTBOUND_PROTOCOLS: &[&str] = &["telnet", "irc"];

/// Why an outbound session could not be opened.
#[derive(Debug)]
#[non_exhaustive]
pub enum ServerConnectError {
    /// No protocol has this key.
    UnknownProtocol(String),
    /// The config lacks a usable value.
    BadConfig(&'static str),
    /// The worker thread could not start.
    Spawn(io::Error),
}

impl fmt::Display for ServerConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerConnectError::UnknownProtocol(key) => write!(
                f,
                "unknown protocol key `{key}` (known: {})",
                OUTBOUND_PROTOCOLS.join(", ")
            ),
            ServerConnectError::BadConfig(what) => write!(f, "config needs {what}"),
            ServerConnectError::Spawn(e) => write!(f, "cannot start an outbound session: {e}"),
        }
    }
}

impl std::error::Error for ServerConnectError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ServerConnectError::Spawn(e) => Some(e),
            _ => None,
        }
    }
}

/// Open an outbound session speaking `protocol_key`.
pub fn server_connect(
    shared: &Arc<Shared>,
    protocol_key: &str,
    config: &Map,
) -> Result<(), ServerConnectError> {
    match protocol_key {
        "telnet" => {
            let target = outbound_target(config)?;
            crate::session::worker::spawn_outbound(shared.clone(), target)
                .map_err(ServerConnectError::Spawn)
        }
        "irc" => {
            let bot = crate::session::irc::bot_config(config)?;
            crate::session::irc::spawn(shared.clone(), bot).map_err(ServerConnectError::Spawn)
        }
        other => Err(ServerConnectError::UnknownProtocol(other.to_owned())),
    }
}

/// `host` and `port` out of a `server_connect` config.
fn outbound_target(config: &Map) -> Result<String, ServerConnectError> {
    let host = config
        .get("host")
        .and_then(Value::as_str)
        .ok_or(ServerConnectError::BadConfig("a string `host`"))?;
    let port = config
        .get("port")
        .and_then(Value::as_int)
        .filter(|p| (1..=65535).contains(p))
        .ok_or(ServerConnectError::BadConfig(
            "an integer `port` between 1 and 65535",
        ))?;
    Ok(format!("{host}:{port}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_key_or_bad_config_is_an_error() {
        let (shared, _rx) = Shared::new(Default::default(), Arc::new(|_| {}));
        let err = server_connect(&shared, "gopher", &Map::new()).unwrap_err();
        assert!(
            err.to_string()
                .contains("unknown protocol key `gopher` (known: telnet, irc)"),
            "{err}"
        );
        let err = server_connect(&shared, "irc", &Map::new()).unwrap_err();
        assert!(err.to_string().contains("network"), "{err}");
        assert!(shared.bots.is_empty(), "no bot started");
        let err = server_connect(&shared, "telnet", &Map::new()).unwrap_err();
        assert!(err.to_string().contains("host"), "{err}");
    }
}
