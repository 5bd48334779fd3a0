//! Client protocols. Each is sans-IO: bytes in, data and replies out; the
//! session worker does the reading and writing.

pub mod ajax;
pub mod http;
pub mod http_probe;
pub mod http_relay;
pub mod irc;
pub mod proxy;
pub mod telnet;
pub mod terminal;
pub mod websocket;
