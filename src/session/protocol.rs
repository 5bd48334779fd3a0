//! The protocol stack a session worker drives: telnet (`telnet`,
//! `telnet/ssl`) or the web listener's HTTP + websocket engine
//! (`webclient/websocket`).
//!
//! Both engines are sans-IO and share one vocabulary (`handle_input`,
//! `poll_transmit`, `handle_timeout`, `poll_timeout`); this enum lets the
//! worker ([`super::worker`]) drive either without caring which, and
//! renders game output the way each client wants it: ANSI for telnet and
//! the terminal-style websocket formats, HTML for the web page.

use crate::amp::message::Command;
use crate::protocols::telnet::Telnet;
use crate::protocols::websocket::WebEngine;
use crate::session::render::{render_for, render_html_for};
use crate::value::Map;
use std::time::Instant;

/// The engine under one session.
pub enum Protocol {
    Telnet(Box<Telnet>),
    Web(Box<WebEngine>),
}

impl Protocol {
    /// Bytes from the socket (already decrypted for TLS).
    pub fn handle_input(&mut self, bytes: &[u8], now: Instant) {
        match self {
            Protocol::Telnet(t) => t.handle_input(bytes, now),
            Protocol::Web(w) => w.handle_input(bytes, now),
        }
    }

    /// Bytes to write to the socket.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        match self {
            Protocol::Telnet(t) => t.poll_transmit(),
            Protocol::Web(w) => w.poll_transmit(),
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        match self {
            Protocol::Telnet(t) => t.handle_timeout(now),
            Protocol::Web(w) => w.handle_timeout(now),
        }
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        match self {
            Protocol::Telnet(t) => t.poll_timeout(),
            Protocol::Web(w) => w.poll_timeout(),
        }
    }

    /// What the client can do, in Evennia's flag names.
    pub fn protocol_flags(&self) -> Map {
        match self {
            Protocol::Telnet(t) => t.protocol_flags(),
            Protocol::Web(w) => w.protocol_flags(),
        }
    }

    /// Show one `text` or `prompt` from the game, rendered for this client
    /// with `flags` (negotiated plus the game's).
    pub fn show_text(&mut self, command: &Command, flags: &Map) {
        let text = command.first_str().unwrap_or_default();
        let prompt = command.name == "prompt";
        match self {
            Protocol::Telnet(t) => {
                let shown = render_for(text, flags, &command.kwargs);
                if let Some(echo) = shown.echo {
                    t.set_echo(!echo);
                }
                if prompt {
                    t.send_prompt(&shown.text);
                } else {
                    t.send_text(&shown.text);
                }
            }
            Protocol::Web(w) => {
                let shown = if w.renders_html() {
                    render_html_for(text, flags, &command.kwargs)
                } else {
                    render_for(text, flags, &command.kwargs)
                };
                if let Some(echo) = shown.echo {
                    w.set_echo(echo);
                }
                if prompt {
                    w.send_prompt(&shown.text);
                } else {
                    w.send_text(&shown.text);
                }
            }
        }
    }

    /// An out-of-band command; false if the client has no channel for it.
    pub fn send_oob(&mut self, command: &Command) -> bool {
        match self {
            Protocol::Telnet(t) => t.send_oob(command),
            Protocol::Web(w) => w.send_oob(command),
        }
    }

    /// A line from the portal itself (a limit, a notice), not markup.
    pub fn notice(&mut self, text: &str, flags: &Map) {
        match self {
            Protocol::Telnet(t) => t.send_text(&render_for(text, flags, &Map::new()).text),
            Protocol::Web(w) => w.send_notice(text, false),
        }
    }

    /// The session is being closed by the portal: a websocket gets a close
    /// frame with the reason (`going_away` when the portal shuts down).
    pub fn close(&mut self, reason: &str, going_away: bool) {
        if let Protocol::Web(w) = self {
            w.close(reason, going_away);
        }
    }
}
