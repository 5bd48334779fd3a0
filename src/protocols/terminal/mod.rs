//! The terminal engine: sessions whose client is a plain terminal that
//! sends raw keystrokes (SSH, protocol key `ssh`), sans-IO.
//!
//! Telnet clients edit their own lines; an SSH client in a terminal does
//! not, so this engine runs the [`editor::LineEditor`] over the keystrokes
//! (echo, editing keys, history, hidden passwords) and hands finished lines
//! to the session core ([`crate::session::core`]) as
//! [`TerminalEvent::Line`]; Ctrl-D on an empty line is
//! [`TerminalEvent::Quit`]. Game text goes out with CR LF line ends; a
//! line the player is half-way through typing is wiped before the text and
//! drawn again after it (with the last prompt), so it stays readable.
//!
//! SSH is the transport under it ([`crate::ssh`]); this engine sees only
//! channel data. It is driven through [`crate::session::protocol::Protocol`]
//! with the same calls as the telnet and web engines.

pub mod editor;

use crate::wire::flags::ProtocolFlags;
use editor::{Edit, LineEditor};
use std::collections::VecDeque;
use std::time::Instant;

/// What the engine reports to the session core.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum TerminalEvent {
    /// A line the player finished.
    Line(String),
    /// The player pressed Ctrl-D on an empty line.
    Quit,
}

/// One terminal session's engine. Serde carries it over `portal upgrade`
/// with its SSH connection (the half-typed line, history, prompt and
/// flags go on); [`Terminal::fits`] checks a decoded one.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct Terminal {
    editor: LineEditor,
    flags: ProtocolFlags,
    /// The last prompt the game sent, shown again under later output while
    /// a line is being typed.
    prompt: String,
    transmit: Vec<u8>,
    #[serde(deserialize_with = "crate::session::frozen::bounded_deque")]
    events: VecDeque<TerminalEvent>,
}

impl Terminal {
    /// An engine for lines of at most `max_chars` characters, with the
    /// flags a terminal has: ANSI colour, UTF-8, client name `ssh`.
    pub fn new(max_chars: usize, client_name: &str) -> Terminal {
        let flags = ProtocolFlags {
            ansi: Some(true),
            utf8: Some(true),
            encoding: Some("utf-8".to_owned().into()),
            clientname: Some(client_name.to_owned().into()),
            forcedendline: Some(true),
            ..ProtocolFlags::default()
        };
        Terminal {
            editor: LineEditor::new(max_chars),
            flags,
            prompt: String::new(),
            transmit: Vec::new(),
            events: VecDeque::new(),
        }
    }

    /// Keystrokes from the terminal.
    pub fn handle_input(&mut self, bytes: &[u8], _now: Instant) {
        let mut echo = Vec::new();
        let mut edits = Vec::new();
        self.editor.input(bytes, &mut echo, &mut edits);
        self.transmit.extend_from_slice(&echo);
        for edit in edits {
            if matches!(edit, Edit::Line(_)) {
                // The prompt was answered.
                self.prompt.clear();
            }
            self.events.push_back(match edit {
                Edit::Line(line) => TerminalEvent::Line(line),
                Edit::Quit => TerminalEvent::Quit,
            });
        }
    }

    pub fn poll_event(&mut self) -> Option<TerminalEvent> {
        self.events.pop_front()
    }

    /// Bytes for the transport, until `None`.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        (!self.transmit.is_empty()).then(|| std::mem::take(&mut self.transmit))
    }

    /// Bytes waiting for the transport (checked against the output cap
    /// after a thaw).
    pub fn buffered_bytes(&self) -> usize {
        self.transmit.len()
    }

    /// Whether a decoded engine is one a live session can be in: the
    /// editor's line within its cap and its own invariants, a prompt of at
    /// most `max_prompt` bytes (the output buffer's cap).
    pub fn fits(&self, max_prompt: usize) -> bool {
        self.editor.fits() && self.prompt.len() <= max_prompt
    }

    /// A new line size cap (config reload).
    pub fn set_max_chars(&mut self, max_chars: usize) {
        self.editor.set_max(max_chars);
    }

    /// The terminal's size (SSH pty-req and window-change), as NAWS sets it.
    pub fn set_size(&mut self, width: u16, height: u16) {
        self.flags.screenwidth = (width > 0).then_some(width);
        self.flags.screenheight = (height > 0).then_some(height);
    }

    /// The colour depth from `TERM` and `COLORTERM`.
    pub fn set_term(&mut self, term: &str, colorterm: &str) {
        self.flags.term = (!term.is_empty()).then(|| term.to_owned().into());
        let truecolor = matches!(colorterm, "truecolor" | "24bit");
        let xterm256 = truecolor || term.contains("256color");
        self.flags.xterm256 = Some(xterm256);
        self.flags.truecolor = Some(truecolor);
        self.flags.ansi = Some(term != "dumb");
    }

    pub fn flags(&self) -> &ProtocolFlags {
        &self.flags
    }

    /// `false` while the game asks for hidden input (a password).
    pub fn set_echo(&mut self, on: bool) {
        self.editor.set_hidden(!on);
    }

    /// Game text, with a line end added when missing.
    pub fn send_text(&mut self, text: &str) {
        let mut bytes = crlf(text);
        if !bytes.ends_with(b"\n") {
            bytes.extend_from_slice(b"\r\n");
        }
        self.around_typing(&bytes, false);
    }

    /// A prompt: no line end; remembered to redraw under later output.
    pub fn send_prompt(&mut self, text: &str) {
        let bytes = crlf(text);
        self.around_typing(&bytes, true);
        self.prompt = text.rsplit('\n').next().unwrap_or_default().to_owned();
    }

    /// Write `bytes` so they do not mix with a half-typed line: wipe it,
    /// write, then show the prompt (unless `bytes` is a new one) and the
    /// line again.
    fn around_typing(&mut self, bytes: &[u8], is_prompt: bool) {
        let typing = !self.editor.line().is_empty() && !self.editor.is_hidden();
        if !typing {
            return self.transmit.extend_from_slice(bytes);
        }
        self.transmit.extend_from_slice(&self.editor.clear_bytes());
        if !self.prompt.is_empty() {
            // Back over the old prompt too.
            self.transmit.extend_from_slice(b"\r\x1b[K");
        }
        self.transmit.extend_from_slice(bytes);
        if !is_prompt {
            self.transmit.extend_from_slice(&crlf(&self.prompt));
        }
        self.transmit.extend_from_slice(&self.editor.redraw_bytes());
    }
}

/// `\n` → CR LF (a CR LF already there is kept).
fn crlf(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + 8);
    let mut previous = 0u8;
    for &b in text.as_bytes() {
        if b == b'\n' && previous != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        previous = b;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(t: &mut Terminal) -> String {
        String::from_utf8(t.poll_transmit().unwrap_or_default()).unwrap()
    }

    #[test]
    fn text_goes_out_with_cr_lf() {
        let mut t = Terminal::new(100, "ssh");
        t.send_text("one\ntwo\r\nthree");
        assert_eq!(out(&mut t), "one\r\ntwo\r\nthree\r\n");
    }

    #[test]
    fn lines_and_quit_become_events() {
        let mut t = Terminal::new(100, "ssh");
        t.handle_input(b"look\r\x04", Instant::now());
        assert_eq!(t.poll_event(), Some(TerminalEvent::Line("look".into())));
        assert_eq!(t.poll_event(), Some(TerminalEvent::Quit));
        assert_eq!(out(&mut t), "look\r\n");
    }

    #[test]
    fn a_half_typed_line_is_redrawn_under_game_text() {
        let mut t = Terminal::new(100, "ssh");
        t.send_prompt("> ");
        out(&mut t);
        t.handle_input(b"say h", Instant::now());
        out(&mut t);
        t.send_text("Bob arrives.");
        let shown = out(&mut t);
        assert!(shown.contains("Bob arrives.\r\n> say h"), "{shown:?}");
    }

    #[test]
    fn echo_off_hides_typing() {
        let mut t = Terminal::new(100, "ssh");
        t.set_echo(false);
        t.handle_input(b"hunter2\r", Instant::now());
        assert_eq!(out(&mut t), "\r\n");
        assert_eq!(t.poll_event(), Some(TerminalEvent::Line("hunter2".into())));
    }

    #[test]
    fn term_sets_the_colour_depth_and_size_the_screen_flags() {
        let mut t = Terminal::new(100, "ssh");
        t.set_term("xterm-256color", "");
        assert_eq!(t.flags().xterm256, Some(true));
        assert_eq!(t.flags().truecolor, Some(false));
        t.set_term("xterm", "truecolor");
        assert_eq!(t.flags().truecolor, Some(true));
        t.set_size(120, 40);
        assert_eq!(t.flags().screen_width(), Some(120));
        assert_eq!(t.flags().screen_height(), Some(40));
    }
}
