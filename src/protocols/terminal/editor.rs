//! The line editor for terminal sessions (SSH), pure: keystrokes in,
//! echo bytes and finished lines out.
//!
//! An SSH client in a terminal sends every key as it is pressed and shows
//! only what the server writes back, so the portal edits the line itself:
//! printable characters are inserted at the cursor and echoed (nothing is
//! echoed while [`LineEditor::set_hidden`] is on, for passwords);
//! Backspace/DEL and Ctrl-H delete before the cursor, Ctrl-D deletes under
//! it (or ends the session on an empty line), Ctrl-U deletes to the start,
//! Ctrl-W the word before the cursor, Ctrl-C drops the line, Ctrl-A/Home
//! and Ctrl-E/End jump, Left/Right move, Up/Down walk the history of sent
//! lines. CR, LF and CR LF each end one line. Other control characters and
//! unknown escape sequences are swallowed, never echoed. Invalid UTF-8
//! becomes U+FFFD.
//!
//! The terminal engine ([`super::Terminal`]) is the only caller; it also
//! asks for [`LineEditor::clear_bytes`] and [`LineEditor::redraw_bytes`]
//! to keep a half-typed line readable when game output arrives.

/// Lines kept for Up/Down.
const HISTORY: usize = 50;
/// CSI parameter bytes kept (more are dropped).
const MAX_PARAMS: usize = 16;

/// What the editor produced besides echo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edit {
    /// A finished line (without its line end).
    Line(String),
    /// Ctrl-D on an empty line: the player wants to leave.
    Quit,
}

/// Where the editor is inside an escape sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
enum Escape {
    None,
    /// After ESC.
    Start,
    /// After ESC [ (CSI): parameters until a final byte.
    Csi,
    /// After ESC O (SS3): one final byte.
    Ss3,
}

/// One terminal session's line being typed, and its history (carried
/// over `portal upgrade` with its terminal; [`LineEditor::fits`] checks a
/// decoded one).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct LineEditor {
    line: Vec<char>,
    cursor: usize,
    max_chars: usize,
    hidden: bool,
    #[serde(deserialize_with = "crate::session::frozen::bounded_vec")]
    history: Vec<String>,
    /// While walking the history: the entry shown (index into `history`).
    browsing: Option<usize>,
    escape: Escape,
    /// CSI parameter bytes so far (for `ESC [ 3 ~`).
    params: Vec<u8>,
    /// A UTF-8 character still missing bytes.
    partial: Vec<u8>,
    /// The last byte was CR (an LF right after it ends nothing more).
    after_cr: bool,
}

impl LineEditor {
    /// An empty editor taking lines of at most `max_chars` characters
    /// (more are refused with a bell).
    pub fn new(max_chars: usize) -> LineEditor {
        LineEditor {
            line: Vec::new(),
            cursor: 0,
            max_chars,
            hidden: false,
            history: Vec::new(),
            browsing: None,
            escape: Escape::None,
            params: Vec::new(),
            partial: Vec::new(),
            after_cr: false,
        }
    }

    /// Whether this (decoded) editor is one typing can make: the line
    /// within its cap, the cursor in it, the history at most `HISTORY`
    /// lines of at most the cap each, a history entry being shown that is
    /// there, an escape sequence and a UTF-8 character no longer than
    /// they can be.
    pub fn fits(&self) -> bool {
        let cap = self.max_chars;
        self.line.len() <= cap
            && self.cursor <= self.line.len()
            && self.history.len() <= HISTORY
            && self.history.iter().all(|l| l.chars().count() <= cap)
            && self.browsing.is_none_or(|i| i < self.history.len())
            && self.params.len() <= MAX_PARAMS
            && self.partial.len() < 4
    }

    /// A new line size cap (config reload).
    pub fn set_max(&mut self, max_chars: usize) {
        self.max_chars = max_chars;
    }

    /// Hide typing (a password): no echo, and the line is kept out of the
    /// history.
    pub fn set_hidden(&mut self, hidden: bool) {
        self.hidden = hidden;
    }

    pub fn is_hidden(&self) -> bool {
        self.hidden
    }

    /// The line as typed so far.
    pub fn line(&self) -> String {
        self.line.iter().collect()
    }

    /// Where the cursor is, in characters from the line's start.
    pub fn cursor(&self) -> usize {
        self.cursor
    }

    /// Feed keystrokes: echo goes to `echo`, finished lines and a quit to
    /// `edits`.
    pub fn input(&mut self, bytes: &[u8], echo: &mut Vec<u8>, edits: &mut Vec<Edit>) {
        for &byte in bytes {
            self.byte(byte, echo, edits);
        }
    }

    /// Bytes that wipe the visible line (before game output is written).
    pub fn clear_bytes(&self) -> Vec<u8> {
        if self.hidden || self.line.is_empty() {
            return Vec::new();
        }
        let mut out = Vec::new();
        move_left(&mut out, self.cursor);
        out.extend_from_slice(b"\x1b[K");
        out
    }

    /// Bytes that show the line again, cursor in place (after game output).
    pub fn redraw_bytes(&self) -> Vec<u8> {
        if self.hidden || self.line.is_empty() {
            return Vec::new();
        }
        let mut out = Vec::new();
        push_chars(&mut out, &self.line);
        move_left(&mut out, self.line.len() - self.cursor);
        out
    }

    fn byte(&mut self, byte: u8, echo: &mut Vec<u8>, edits: &mut Vec<Edit>) {
        let after_cr = std::mem::replace(&mut self.after_cr, false);
        if self.escape != Escape::None {
            return self.escape_byte(byte, echo);
        }
        if !self.partial.is_empty() || byte >= 0x80 {
            return self.utf8_byte(byte, echo, edits);
        }
        match byte {
            b'\r' => {
                self.after_cr = true;
                self.finish(echo, edits);
            }
            b'\n' if after_cr => {}
            b'\n' => self.finish(echo, edits),
            0x1b => self.escape = Escape::Start,
            0x7f | 0x08 => self.backspace(echo),
            0x01 => self.move_to(0, echo),
            0x02 => self.left(echo),
            0x03 => self.interrupt(echo),
            0x04 if self.line.is_empty() => edits.push(Edit::Quit),
            0x04 => self.delete(echo),
            0x05 => self.move_to(self.line.len(), echo),
            0x06 => self.right(echo),
            0x15 => self.kill_to_start(echo),
            0x17 => self.kill_word(echo),
            b'\t' => self.insert(' ', echo),
            0x20..=0x7e => self.insert(char::from(byte), echo),
            _ => {}
        }
    }

    fn utf8_byte(&mut self, byte: u8, echo: &mut Vec<u8>, edits: &mut Vec<Edit>) {
        if !self.partial.is_empty() && byte & 0xc0 != 0x80 {
            // The character broke off: replace it, then take this byte
            // afresh.
            self.partial.clear();
            self.insert(char::REPLACEMENT_CHARACTER, echo);
            return self.byte(byte, echo, edits);
        }
        self.partial.push(byte);
        let need = match self.partial[0] {
            0xc2..=0xdf => 2,
            0xe0..=0xef => 3,
            0xf0..=0xf4 => 4,
            _ => 1,
        };
        if self.partial.len() < need {
            return;
        }
        let bytes = std::mem::take(&mut self.partial);
        let decoded = std::str::from_utf8(&bytes)
            .ok()
            .and_then(|s| s.chars().next());
        match decoded {
            // C1 controls (U+0080–U+009F) are swallowed like C0 ones.
            Some(c) if c.is_control() => {}
            Some(c) => self.insert(c, echo),
            None => self.insert(char::REPLACEMENT_CHARACTER, echo),
        }
    }

    fn escape_byte(&mut self, byte: u8, echo: &mut Vec<u8>) {
        match self.escape {
            Escape::Start => {
                self.escape = match byte {
                    b'[' => Escape::Csi,
                    b'O' => Escape::Ss3,
                    _ => Escape::None,
                };
                self.params.clear();
            }
            Escape::Ss3 => {
                self.escape = Escape::None;
                self.cursor_key(byte, echo);
            }
            Escape::Csi => match byte {
                // Parameter (0x30-0x3f) and intermediate (0x20-0x2f) bytes.
                0x20..=0x3f => {
                    if self.params.len() < MAX_PARAMS {
                        self.params.push(byte);
                    }
                }
                _ => {
                    self.escape = Escape::None;
                    if byte == b'~' {
                        self.tilde_key(echo);
                    } else {
                        self.cursor_key(byte, echo);
                    }
                }
            },
            Escape::None => {}
        }
    }

    fn cursor_key(&mut self, byte: u8, echo: &mut Vec<u8>) {
        match byte {
            b'A' => self.history_step(true, echo),
            b'B' => self.history_step(false, echo),
            b'C' => self.right(echo),
            b'D' => self.left(echo),
            b'H' => self.move_to(0, echo),
            b'F' => self.move_to(self.line.len(), echo),
            _ => {}
        }
    }

    /// `ESC [ n ~`: 1/7 Home, 4/8 End, 3 Delete.
    fn tilde_key(&mut self, echo: &mut Vec<u8>) {
        match self.params.as_slice() {
            b"1" | b"7" => self.move_to(0, echo),
            b"4" | b"8" => self.move_to(self.line.len(), echo),
            b"3" => self.delete(echo),
            _ => {}
        }
    }

    // ---- edits ----

    fn insert(&mut self, c: char, echo: &mut Vec<u8>) {
        if self.line.len() >= self.max_chars {
            echo.push(0x07);
            return;
        }
        self.line.insert(self.cursor, c);
        self.cursor += 1;
        if self.hidden {
            return;
        }
        push_chars(echo, &self.line[self.cursor - 1..]);
        move_left(echo, self.line.len() - self.cursor);
    }

    fn backspace(&mut self, echo: &mut Vec<u8>) {
        if self.cursor == 0 {
            return;
        }
        let before = self.cursor;
        self.cursor -= 1;
        self.line.remove(self.cursor);
        self.redraw_from(before, echo);
    }

    fn delete(&mut self, echo: &mut Vec<u8>) {
        if self.cursor >= self.line.len() {
            return;
        }
        self.line.remove(self.cursor);
        self.redraw_from(self.cursor, echo);
    }

    fn kill_to_start(&mut self, echo: &mut Vec<u8>) {
        let before = self.cursor;
        self.line.drain(..self.cursor);
        self.cursor = 0;
        self.redraw_from(before, echo);
    }

    fn kill_word(&mut self, echo: &mut Vec<u8>) {
        let before = self.cursor;
        let mut start = self.cursor;
        while start > 0 && self.line[start - 1] == ' ' {
            start -= 1;
        }
        while start > 0 && self.line[start - 1] != ' ' {
            start -= 1;
        }
        self.line.drain(start..self.cursor);
        self.cursor = start;
        self.redraw_from(before, echo);
    }

    /// Ctrl-C: the line is dropped, a fresh one starts.
    fn interrupt(&mut self, echo: &mut Vec<u8>) {
        self.line.clear();
        self.cursor = 0;
        self.browsing = None;
        echo.extend_from_slice(b"^C\r\n");
    }

    fn finish(&mut self, echo: &mut Vec<u8>, edits: &mut Vec<Edit>) {
        let line: String = self.line.drain(..).collect();
        self.cursor = 0;
        self.browsing = None;
        echo.extend_from_slice(b"\r\n");
        if !self.hidden && !line.trim().is_empty() && self.history.last() != Some(&line) {
            if self.history.len() >= HISTORY {
                self.history.remove(0);
            }
            self.history.push(line.clone());
        }
        edits.push(Edit::Line(line));
    }

    // ---- movement ----

    fn left(&mut self, echo: &mut Vec<u8>) {
        if self.cursor > 0 {
            self.move_to(self.cursor - 1, echo);
        }
    }

    fn right(&mut self, echo: &mut Vec<u8>) {
        if self.cursor < self.line.len() {
            self.move_to(self.cursor + 1, echo);
        }
    }

    fn move_to(&mut self, to: usize, echo: &mut Vec<u8>) {
        let from = self.cursor;
        self.cursor = to.min(self.line.len());
        if self.hidden {
            return;
        }
        if self.cursor < from {
            move_left(echo, from - self.cursor);
        } else if self.cursor > from {
            move_right(echo, self.cursor - from);
        }
    }

    /// Up (`older`) or Down through the sent lines; Down past the newest
    /// gives an empty line.
    fn history_step(&mut self, older: bool, echo: &mut Vec<u8>) {
        if self.hidden || self.history.is_empty() {
            return;
        }
        let next = match (self.browsing, older) {
            (None, true) => Some(self.history.len() - 1),
            (None, false) => return,
            (Some(0), true) => Some(0),
            (Some(i), true) => Some(i - 1),
            (Some(i), false) if i + 1 < self.history.len() => Some(i + 1),
            (Some(_), false) => None,
        };
        self.browsing = next;
        let before = self.cursor;
        self.line = next
            .and_then(|i| self.history.get(i))
            .map(|entry| entry.chars().take(self.max_chars).collect())
            .unwrap_or_default();
        self.cursor = self.line.len();
        move_left(echo, before);
        push_chars(echo, &self.line);
        echo.extend_from_slice(b"\x1b[K");
    }

    /// Rewrite the screen from the cursor on after an edit: the cursor was
    /// at `before` on screen and goes to `self.cursor`.
    fn redraw_from(&self, before: usize, echo: &mut Vec<u8>) {
        if self.hidden {
            return;
        }
        move_left(echo, before.saturating_sub(self.cursor));
        push_chars(echo, &self.line[self.cursor..]);
        echo.extend_from_slice(b"\x1b[K");
        move_left(echo, self.line.len() - self.cursor);
    }
}

fn push_chars(out: &mut Vec<u8>, chars: &[char]) {
    let mut buf = [0u8; 4];
    for c in chars {
        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
    }
}

fn move_left(out: &mut Vec<u8>, n: usize) {
    match n {
        0 => {}
        1 => out.push(0x08),
        _ => out.extend_from_slice(format!("\x1b[{n}D").as_bytes()),
    }
}

fn move_right(out: &mut Vec<u8>, n: usize) {
    if n > 0 {
        out.extend_from_slice(format!("\x1b[{n}C").as_bytes());
    }
}

#[cfg(test)]
mod tests;
