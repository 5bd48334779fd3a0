//! The SSH sessions' line editor. Input: `[seed, max, flags, bytes]`.
//! Invariants: cutting the keystrokes anywhere gives the same echo and the
//! same lines; no line is over the limit or holds a control character;
//! the line kept and the cursor stay within the limit; what a terminal
//! shows after the echo is exactly the line being typed, cursor included;
//! with hiding on, nothing typed is echoed (only line ends, `^C` and the
//! bell).
#![no_main]

use libfuzzer_sys::fuzz_target;
use portal::protocols::terminal::editor::{Edit, LineEditor};
use portal_fuzz::chunks;

fuzz_target!(|data: &[u8]| {
    let [seed, max, flags, input @ ..] = data else {
        return;
    };
    let max = usize::from(*max) + 1;
    let hidden = flags & 1 == 1;
    let (echo, edits) = edit(max, hidden, &[input]);
    let (cut_echo, cut_edits) = edit(max, hidden, &chunks(input, *seed));
    assert_eq!(echo, cut_echo, "echo differs when the input is cut");
    assert_eq!(edits, cut_edits, "lines differ when the input is cut");
    for e in &edits {
        if let Edit::Line(line) = e {
            assert!(line.chars().count() <= max, "a line over {max}");
            assert!(!line.chars().any(char::is_control), "{line:?}");
        }
    }
    if hidden {
        let mut shown = echo.clone();
        for allowed in [&b"^C\r\n"[..], b"\r\n", b"\x07"] {
            shown = remove_all(&shown, allowed);
        }
        assert!(shown.is_empty(), "hidden typing was echoed: {shown:?}");
    }
});

fn edit(max: usize, hidden: bool, reads: &[&[u8]]) -> (Vec<u8>, Vec<Edit>) {
    let mut editor = LineEditor::new(max);
    editor.set_hidden(hidden);
    let mut screen = Screen::default();
    let mut echo = Vec::new();
    let mut edits = Vec::new();
    for read in reads {
        let from = echo.len();
        editor.input(read, &mut echo, &mut edits);
        let line: Vec<char> = editor.line().chars().collect();
        assert!(line.len() <= max);
        assert!(editor.cursor() <= line.len());
        if !hidden {
            screen.apply(&echo[from..]);
            assert_eq!(screen.cells, line, "the terminal shows another line");
            assert_eq!(screen.col, editor.cursor(), "the cursor is elsewhere");
        }
    }
    (echo, edits)
}

/// The line a terminal shows: what the echo draws, with the few controls
/// the editor writes (BS, CR LF, `ESC [ n D/C`, `ESC [ K`, BEL).
#[derive(Default)]
struct Screen {
    cells: Vec<char>,
    col: usize,
}

impl Screen {
    fn apply(&mut self, echo: &[u8]) {
        let text = std::str::from_utf8(echo).expect("the echo is UTF-8");
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\u{7}' => {}
                '\u{8}' => self.col = self.col.checked_sub(1).expect("BS at column 0"),
                '\r' => assert_eq!(chars.next(), Some('\n'), "CR without LF"),
                '\n' => panic!("LF without CR"),
                '\u{1b}' => {
                    assert_eq!(chars.next(), Some('['), "ESC without [");
                    let mut n = String::new();
                    while let Some(d) = chars.next_if(char::is_ascii_digit) {
                        n.push(d);
                    }
                    let n: usize = if n.is_empty() { 1 } else { n.parse().unwrap() };
                    match chars.next() {
                        Some('D') => self.col = self.col.checked_sub(n).expect("left past 0"),
                        Some('C') => {
                            self.col += n;
                            assert!(self.col <= self.cells.len(), "right past the line");
                        }
                        Some('K') => self.cells.truncate(self.col),
                        other => panic!("unknown escape ending {other:?}"),
                    }
                }
                c if c.is_control() => panic!("control {c:?} echoed"),
                c => {
                    if self.col < self.cells.len() {
                        self.cells[self.col] = c;
                    } else {
                        self.cells.push(c);
                    }
                    self.col += 1;
                }
            }
            if c == '\r' {
                // A line ended (Enter or Ctrl-C): a fresh, empty one.
                self.cells.clear();
                self.col = 0;
            }
        }
    }
}

fn remove_all(haystack: &[u8], needle: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(haystack.len());
    let mut i = 0;
    while i < haystack.len() {
        if haystack[i..].starts_with(needle) {
            i += needle.len();
        } else {
            out.push(haystack[i]);
            i += 1;
        }
    }
    out
}
