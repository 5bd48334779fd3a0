//! Line framing of client input (pure).
//!
//! Telnet clients end lines with CR LF, but LF alone, CR NUL and a bare CR
//! are all seen in the wild; each ends exactly one line. A line longer than
//! the limit is reported once and its bytes are discarded up to the next line
//! end, so an endless line never grows memory. Used by the session core on
//! the data bytes the telnet parser leaves.

/// One thing found in the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Framed {
    /// A complete line, without its terminator.
    Line(Vec<u8>),
    /// A line passed `max` bytes; the rest of it is being discarded.
    TooLong,
}

/// Splits a byte stream into lines.
#[derive(Debug)]
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

    proptest! {
        #[test]
        fn splitting_the_input_never_changes_the_lines(
            input in proptest::collection::vec(
                prop_oneof![Just(b'\r'), Just(b'\n'), Just(0u8), Just(b'a'), any::<u8>()], 0..200),
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
