//! The protocol stack a session worker drives: telnet (`telnet`,
//! `telnet/ssl`), the web listener's HTTP + websocket engine
//! (`webclient/websocket`), or the terminal engine with its line editor
//! (`ssh`, under the SSH transport).
//!
//! The engines are sans-IO and share one vocabulary (`handle_input`,
//! `poll_transmit`, `handle_timeout`, `poll_timeout`); this enum lets the
//! session core ([`super::core`]) drive any without caring which, and
//! renders game output the way each client wants it: ANSI for telnet, SSH
//! terminals and the terminal-style websocket formats, HTML for the web
//! page.

use crate::protocols::telnet::Telnet;
use crate::protocols::terminal::Terminal;
use crate::protocols::websocket::WebEngine;
use crate::session::render::{render_html_with, render_with, Rendered};
use crate::wire::flags::{Flag, ProtocolFlags};
use crate::wire::message::Command;
use crate::wire::value::Map;
use std::time::Instant;

/// The engine under one session. Serde carries every engine to a new
/// process (`portal upgrade`); a terminal engine goes with its SSH
/// connection ([`crate::ssh::SshTransport::freeze`]).
#[derive(serde::Serialize, serde::Deserialize)]
pub enum Protocol {
    Telnet(Box<Telnet>),
    Web(Box<WebEngine>),
    Terminal(Box<Terminal>),
}

impl Protocol {
    /// Bytes from the socket (already decrypted for TLS).
    pub fn handle_input(&mut self, bytes: &[u8], now: Instant) {
        match self {
            Protocol::Telnet(t) => t.handle_input(bytes, now),
            Protocol::Web(w) => w.handle_input(bytes, now),
            Protocol::Terminal(t) => t.handle_input(bytes, now),
        }
    }

    /// Bytes to write to the socket.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        match self {
            Protocol::Telnet(t) => t.poll_transmit(),
            Protocol::Web(w) => w.poll_transmit(),
            Protocol::Terminal(t) => t.poll_transmit(),
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        match self {
            Protocol::Telnet(t) => t.handle_timeout(now),
            Protocol::Web(w) => w.handle_timeout(now),
            Protocol::Terminal(_) => {}
        }
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        match self {
            Protocol::Telnet(t) => t.poll_timeout(),
            Protocol::Web(w) => w.poll_timeout(),
            Protocol::Terminal(_) => None,
        }
    }

    /// The flags the client negotiated.
    pub fn flags(&self) -> &ProtocolFlags {
        match self {
            Protocol::Telnet(t) => t.flags(),
            Protocol::Web(w) => w.flags(),
            Protocol::Terminal(t) => t.flags(),
        }
    }

    /// Copy the negotiated flags into a session record (only what differs).
    pub fn merge_flags_into(&self, record: &mut ProtocolFlags) {
        record.merge(self.flags());
    }

    /// Render game text for this client: the game's flags over the
    /// negotiated ones, the command's options over both.
    fn render(&self, text: &str, kwargs: &Map, game_flags: &ProtocolFlags) -> Rendered {
        let ours = self.flags();
        let flags = |flag: Flag| game_flags.is_on(flag).or_else(|| ours.is_on(flag));
        match self {
            Protocol::Web(w) if w.renders_html() => render_html_with(text, &flags, kwargs),
            _ => render_with(text, &flags, kwargs),
        }
    }

    /// Show one `text` or `prompt` from the game.
    pub fn show_text(&mut self, command: &Command, game_flags: &ProtocolFlags) {
        let text = command.first_str().unwrap_or_default();
        let shown = self.render(text, &command.kwargs, game_flags);
        let prompt = command.name == "prompt";
        match self {
            Protocol::Telnet(t) => {
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
                if let Some(echo) = shown.echo {
                    w.set_echo(echo);
                }
                if prompt {
                    w.send_prompt(&shown.text);
                } else {
                    w.send_text(&shown.text);
                }
            }
            Protocol::Terminal(t) => {
                if let Some(echo) = shown.echo {
                    t.set_echo(echo);
                }
                if prompt {
                    t.send_prompt(&shown.text);
                } else {
                    t.send_text(&shown.text);
                }
            }
        }
    }

    /// An out-of-band command; false if the client has no channel for it.
    pub fn send_oob(&mut self, command: &Command) -> bool {
        match self {
            Protocol::Telnet(t) => t.send_oob(command),
            Protocol::Web(w) => w.send_oob(command),
            Protocol::Terminal(_) => false,
        }
    }

    /// A line from the portal itself (a limit, a notice).
    pub fn notice(&mut self, text: &str, game_flags: &ProtocolFlags) {
        if let Protocol::Web(w) = self {
            return w.send_notice(text, false);
        }
        let shown = self.render(text, &Map::new(), game_flags);
        match self {
            Protocol::Telnet(t) => t.send_text(&shown.text),
            Protocol::Terminal(t) => t.send_text(&shown.text),
            Protocol::Web(_) => {}
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
