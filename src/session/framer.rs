//! Line framing of client input (pure).
//!
//! Telnet clients end lines with CR LF, but LF alone, CR NUL and a bare CR
//! are all seen in the wild; each ends exactly one line. A line longer than
//! the limit is reported once and its bytes are discarded up to the next line
//! end, so an endless line never grows memory. Used by the session core on
//! the data bytes the telnet parser leaves.
//!
//! A plain `telnet` runs in character mode against us (we offer SGA without
//! ECHO), so backspace reaches us as BS (0x08) or DEL (0x7f): the framer
//! applies both to the line being framed, deleting the previous character
//! (a whole UTF-8 code point) and never reaching before the line's start.
//!
//! [`strip_controls`] is the other half of cleaning player input: applied
//! to every protocol's decoded lines, it removes the control characters
//! (C0 other than TAB, DEL, C1) so no player can ring bells or send escape
//! sequences to another player's screen through `say`.

/// Backspace, as telnet clients in character mode send it.
const BS: u8 = 0x08;
/// Delete, what most terminals' backspace key sends.
const DEL: u8 = 0x7f;

/// Whether `c` is a control character players may not send: C0 other than
/// TAB (ESC included), DEL and C1.
fn is_refused_control(c: char) -> bool {
    c != '\t' && c.is_control()
}

/// `text` without the control characters a player may not send (see the
/// module docs); borrowed when there are none.
///
/// ```
/// use portal::session::framer::strip_controls;
/// assert_eq!(strip_controls("say \x1b[2Jhi\x07\tthere"), "say [2Jhi\tthere");
/// ```
pub fn strip_controls(text: &str) -> std::borrow::Cow<'_, str> {
    if text.chars().any(is_refused_control) {
        text.chars().filter(|&c| !is_refused_control(c)).collect()
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

/// One thing found in the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Framed {
    /// A complete line, without its terminator.
    Line(Vec<u8>),
    /// A line passed `max` bytes; the rest of it is being discarded.
    TooLong,
}

/// Splits a byte stream into lines.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct LineFramer {
    line: Vec<u8>,
    max: usize,
    after_cr: bool,
    discarding: bool,
}

impl LineFramer {
    /// A framer refusing lines over `max` bytes.
    pub fn new(max: usize) -> LineFramer {
        LineFramer {
            line: Vec::new(),
            max,
            after_cr: false,
            discarding: false,
        }
    }

    /// Change the limit (config reload).
    pub fn set_max(&mut self, max: usize) {
        self.max = max;
    }

    /// Whether the unfinished line fits under the limit (a thawed state
    /// is checked with it).
    pub fn fits(&self) -> bool {
        self.line.len() <= self.max
    }

    /// Bytes of an unfinished line held.
    pub fn pending(&self) -> usize {
        self.line.len()
    }

    /// Feed bytes; complete lines and overflows are appended to `out`.
    pub fn push(&mut self, input: &[u8], out: &mut Vec<Framed>) {
        for &byte in input {
            self.push_byte(byte, out);
        }
    }

    fn push_byte(&mut self, byte: u8, out: &mut Vec<Framed>) {
        let after_cr = std::mem::replace(&mut self.after_cr, false);
        match byte {
            b'\n' | 0 if after_cr => {}
            b'\r' => {
                self.end_line(out);
                self.after_cr = true;
            }
            b'\n' => self.end_line(out),
            BS | DEL => self.erase(),
            _ => self.add(byte, out),
        }
    }

    fn add(&mut self, byte: u8, out: &mut Vec<Framed>) {
        if self.discarding {
            return;
        }
        if self.line.len() >= self.max {
            self.line = Vec::new();
            self.discarding = true;
            out.push(Framed::TooLong);
            return;
        }
        self.line.push(byte);
    }

    /// Backspace: drop the last character of the line, a whole UTF-8
    /// sequence when the line ends in one, else one byte (another
    /// encoding, or a broken sequence).
    fn erase(&mut self) {
        if self.discarding {
            return;
        }
        let len = self.line.len();
        let start = (len.saturating_sub(4)..len).find(|&i| {
            let lead = self.line[i];
            let width = match lead {
                0xC0..=0xDF => 2,
                0xE0..=0xEF => 3,
                0xF0..=0xF7 => 4,
                _ => return false,
            };
            len - i == width && self.line[i + 1..].iter().all(|&b| b & 0xC0 == 0x80)
        });
        self.line.truncate(start.unwrap_or(len.saturating_sub(1)));
    }

    fn end_line(&mut self, out: &mut Vec<Framed>) {
        if std::mem::replace(&mut self.discarding, false) {
            return;
        }
        out.push(Framed::Line(std::mem::take(&mut self.line)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn lines(input: &[u8], max: usize) -> Vec<Framed> {
        let mut framer = LineFramer::new(max);
        let mut out = Vec::new();
        framer.push(input, &mut out);
        out
    }

    fn line(s: &str) -> Framed {
        Framed::Line(s.as_bytes().to_vec())
    }

    #[test]
    fn every_line_ending_ends_one_line() {
        let out = lines(b"a\r\nb\nc\r\0d\re\n", 100);
        assert_eq!(
            out,
            vec![line("a"), line("b"), line("c"), line("d"), line("e")]
        );
    }

    #[test]
    fn empty_lines_are_kept() {
        assert_eq!(lines(b"\r\n\r\n", 100), vec![line(""), line("")]);
    }

    #[test]
    fn unfinished_line_waits() {
        let mut framer = LineFramer::new(100);
        let mut out = Vec::new();
        framer.push(b"hel", &mut out);
        assert!(out.is_empty());
        assert_eq!(framer.pending(), 3);
        framer.push(b"lo\r", &mut out);
        framer.push(b"\n", &mut out);
        assert_eq!(out, vec![line("hello")]);
    }

    #[test]
    fn long_line_is_reported_once_and_discarded() {
        let mut input = vec![b'x'; 100_000];
        input.extend_from_slice(b"\r\nok\r\n");
        assert_eq!(lines(&input, 10), vec![Framed::TooLong, line("ok")]);
    }

    #[test]
    fn line_of_exactly_max_is_accepted() {
        assert_eq!(lines(b"12345\n", 5), vec![line("12345")]);
        assert_eq!(lines(b"123456\n", 5), vec![Framed::TooLong]);
    }

    #[test]
    fn endless_line_holds_no_more_than_max() {
        let mut framer = LineFramer::new(64);
        let mut out = Vec::new();
        for _ in 0..1000 {
            framer.push(&[b'y'; 1000], &mut out);
        }
        assert!(framer.pending() <= 64);
        assert_eq!(out, vec![Framed::TooLong]);
    }

    #[test]
    fn backspace_and_delete_erase_the_previous_character() {
        assert_eq!(lines(b"lo\x7f\x7flook\r\n", 100), vec![line("look")]);
        assert_eq!(lines(b"lo\x08\x08look\r\n", 100), vec![line("look")]);
        assert_eq!(lines(b"ab\x08c\n", 100), vec![line("ac")]);
    }

    #[test]
    fn erasing_never_reaches_before_the_line() {
        assert_eq!(
            lines(b"\x7f\x7fx\x08\x08\x08y\na\nb\x7f\n", 100),
            vec![line("y"), line("a"), line("")]
        );
    }

    #[test]
    fn erasing_removes_a_whole_code_point() {
        assert_eq!(
            lines("caf\u{e9}\x7fe \u{1f600}\x7f!\n".as_bytes(), 100),
            vec![line("cafe !")]
        );
        assert_eq!(lines("\u{20ac}\x08\n".as_bytes(), 100), vec![line("")]);
        // Latin-1 (or broken UTF-8): one byte at a time.
        assert_eq!(
            lines(b"a\xe9\xe9\x7f\n", 100),
            vec![Framed::Line(b"a\xe9".to_vec())]
        );
        assert_eq!(
            lines(b"a\xa9\xa9\x7f\n", 100),
            vec![Framed::Line(b"a\xa9".to_vec())]
        );
    }

    #[test]
    fn erasing_a_discarded_line_changes_nothing() {
        assert_eq!(
            lines(b"123456\x7f\x7f\nok\n", 5),
            vec![Framed::TooLong, line("ok")]
        );
    }

    #[test]
    fn control_characters_are_stripped_but_tab_is_kept() {
        assert_eq!(strip_controls("look"), "look");
        assert!(matches!(
            strip_controls("look"),
            std::borrow::Cow::Borrowed(_)
        ));
        assert_eq!(strip_controls("say \x07\x07hi"), "say hi");
        assert_eq!(strip_controls("say \x1b[31mred"), "say [31mred");
        assert_eq!(strip_controls("a\tb\x00c\x7fd\u{9b}e"), "a\tbcde");
        assert_eq!(strip_controls("caf\u{e9} \u{1f600}"), "caf\u{e9} \u{1f600}");
    }

    proptest! {
        #[test]
        fn stripped_text_has_no_controls_but_tab(text in ".{0,40}") {
            let clean = strip_controls(&text);
            prop_assert!(clean.chars().all(|c| c == '\t' || !c.is_control()));
            let kept: String = text.chars().filter(|c| *c == '\t' || !c.is_control()).collect();
            prop_assert_eq!(clean.as_ref(), kept.as_str());
        }


        #[test]
        fn splitting_the_input_never_changes_the_lines(
            input in proptest::collection::vec(
                prop_oneof![Just(b'\r'), Just(b'\n'), Just(0u8), Just(b'a'), Just(BS), Just(DEL),
                    Just(0xC3), Just(0xA9), any::<u8>()], 0..200),
            cuts in proptest::collection::vec(0usize..200, 0..8),
        ) {
            let whole = lines(&input, 16);
            let mut framer = LineFramer::new(16);
            let mut out = Vec::new();
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(input.len())).collect();
            cuts.sort_unstable();
            let mut start = 0;
            for cut in cuts {
                framer.push(&input[start..cut], &mut out);
                start = cut;
            }
            framer.push(&input[start..], &mut out);
            prop_assert_eq!(out, whole);
        }
    }
}
