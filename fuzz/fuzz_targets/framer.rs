//! The line framer and the control-character filter every typed line goes
//! through. Input: `[seed, max, bytes]`. Invariants: cutting the input
//! anywhere gives the same lines; no line holds CR, LF, BS or DEL or is
//! over the limit; an over-long line never grows the buffer; a filtered
//! line has no control character but TAB and keeps every other one.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portal::session::framer::{strip_controls, Framed, LineFramer};
use portal_fuzz::chunks;

fuzz_target!(|data: &[u8]| {
    let [seed, max, input @ ..] = data else {
        return;
    };
    let max = usize::from(*max) + 1;
    let whole = frame(max, &[input]);
    let cut = frame(max, &chunks(input, *seed));
    assert_eq!(whole, cut, "lines differ when the input is cut");
    let mut total = 0;
    for framed in &whole.0 {
        if let Framed::Line(line) = framed {
            assert!(line.len() <= max, "a line of {} over {max}", line.len());
            assert!(!line.iter().any(|b| matches!(b, b'\r' | b'\n' | 8 | 0x7f)));
            total += line.len();
            let text = String::from_utf8_lossy(line);
            let kept = strip_controls(&text);
            assert!(
                !kept.chars().any(|c| c.is_control() && c != '\t'),
                "{kept:?}"
            );
            let expected: String = text
                .chars()
                .filter(|c| !c.is_control() || *c == '\t')
                .collect();
            assert_eq!(kept, expected);
        }
    }
    assert!(total + whole.1 <= input.len(), "more bytes out than in");
});

/// The lines, and the bytes still pending at the end.
fn frame(max: usize, reads: &[&[u8]]) -> (Vec<Framed>, usize) {
    let mut framer = LineFramer::new(max);
    let mut out = Vec::new();
    for read in reads {
        framer.push(read, &mut out);
        assert!(
            framer.pending() <= max,
            "pending {} over {max}",
            framer.pending()
        );
    }
    (out, framer.pending())
}
