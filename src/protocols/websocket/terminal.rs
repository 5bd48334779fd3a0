//! `terminal.mudstandards.org` (mudstandards.org's websocket proposal):
//! ANSI text, UTF-8, in BINARY frames both ways, as a terminal would show
//! it; no out-of-band channel. TEXT frames from the client are read as
//! typed lines too.
//!
//! ```
//! use portal::protocols::websocket::format::{Format, Frame, Incoming};
//! let got = Format::Terminal.decode(&Frame::Binary(b"look\r\n".to_vec()), &|_| false);
//! assert_eq!(got, vec![Incoming::Line("look".into())]);
//! ```

use super::format::{lines, Frame, Incoming};

/// The subprotocol name.
pub const SUBPROTOCOL: &str = "terminal.mudstandards.org";

/// Every frame is typed text.
pub fn decode(frame: &Frame) -> Vec<Incoming> {
    match frame {
        Frame::Binary(bytes) => lines(bytes),
        Frame::Text(text) => lines(text.as_bytes()),
    }
}
