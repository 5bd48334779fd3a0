//! The websocket wire formats, chosen by the subprotocol the client asks
//! for in its handshake (`Sec-WebSocket-Protocol`), one file each:
//!
//! | subprotocol | file | text out | input | out-of-band |
//! |---|---|---|---|---|
//! | none, or `v1.evennia.com` | [`evennia`] | HTML in `["text", [html], {}]` | `["text", ["look"], {}]` | `[cmdname, args, kwargs]` |
//! | `json.mudstandards.org` | [`json_standard`] | ANSI in BINARY frames | BINARY lines | TEXT `{"proto":"gmcp","id":…,"data":…}` |
//! | `gmcp.mudstandards.org` | [`gmcp_standard`] | ANSI in BINARY frames | BINARY lines | TEXT `Package.Name json` |
//! | `terminal.mudstandards.org` | [`terminal`] | ANSI in BINARY frames | BINARY or TEXT lines | none |
//!
//! Every format with an out-of-band channel can report the window size
//! ([`super::screen`]); the terminal format has no way to.
//!
//! Pure: frames in, [`Incoming`] out; text and commands in, [`Frame`]s
//! out. The web engine ([`super::WebEngine`]) drives them.

use super::screen::Size;
use super::{evennia, gmcp_standard, json_standard, terminal};
use crate::wire::message::Command;

/// One wire format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Format {
    /// Evennia's JSON arrays; the page's format and the default.
    Evennia,
    /// `json.mudstandards.org`.
    JsonStandard,
    /// `gmcp.mudstandards.org`.
    GmcpStandard,
    /// `terminal.mudstandards.org`.
    Terminal,
}

/// A websocket data frame, either kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Text(String),
    Binary(Vec<u8>),
}

/// What one incoming frame carried.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// A line the player typed.
    Line(String),
    /// An out-of-band command.
    Command(Command),
    /// The client's window size, in characters ([`super::screen`]).
    Size(Size),
    /// Something this format cannot use; the reason is told to the client.
    Bad(String),
}

impl Format {
    /// Every format, in the order the portal prefers them.
    pub const ALL: [Format; 4] = [
        Format::Evennia,
        Format::JsonStandard,
        Format::GmcpStandard,
        Format::Terminal,
    ];

    /// The subprotocol name that selects this format.
    pub fn subprotocol(self) -> &'static str {
        match self {
            Format::Evennia => evennia::SUBPROTOCOL,
            Format::JsonStandard => json_standard::SUBPROTOCOL,
            Format::GmcpStandard => gmcp_standard::SUBPROTOCOL,
            Format::Terminal => terminal::SUBPROTOCOL,
        }
    }

    /// The format a subprotocol name selects.
    pub fn from_subprotocol(name: &str) -> Option<Format> {
        Format::ALL
            .into_iter()
            .find(|f| f.subprotocol().eq_ignore_ascii_case(name.trim()))
    }

    /// Whether game text is rendered as HTML (else as ANSI).
    pub fn renders_html(self) -> bool {
        self == Format::Evennia
    }

    /// Whether out-of-band commands can travel.
    pub fn supports_oob(self) -> bool {
        self != Format::Terminal
    }

    /// Whether out-of-band messages travel as GMCP.
    pub fn speaks_gmcp(self) -> bool {
        matches!(self, Format::JsonStandard | Format::GmcpStandard)
    }

    /// Decode one frame; `allowed` says which out-of-band command names the
    /// game accepts from web clients.
    pub fn decode(self, frame: &Frame, allowed: &dyn Fn(&str) -> bool) -> Vec<Incoming> {
        match self {
            Format::Evennia => evennia::decode(frame, allowed),
            Format::JsonStandard => json_standard::decode(frame),
            Format::GmcpStandard => gmcp_standard::decode(frame),
            Format::Terminal => terminal::decode(frame),
        }
    }

    /// Rendered game text (`prompt`: no line end, shown as a prompt).
    pub fn encode_text(self, text: &str, prompt: bool) -> Frame {
        match self {
            Format::Evennia => evennia::encode_text(text, prompt),
            _ => ansi_frame(text, prompt),
        }
    }

    /// An out-of-band command, if this format can carry it.
    pub fn encode_oob(self, command: &Command) -> Option<Frame> {
        match self {
            Format::Evennia => Some(evennia::encode_command(command)),
            Format::JsonStandard => Some(json_standard::encode_oob(command)),
            Format::GmcpStandard => Some(gmcp_standard::encode_oob(command)),
            Format::Terminal => None,
        }
    }

    /// A line from the portal itself (a limit, an error), plain text.
    pub fn encode_notice(self, text: &str, error: bool) -> Frame {
        match self {
            Format::Evennia => evennia::encode_notice(text, error),
            _ => ansi_frame(text, false),
        }
    }

    /// Tell the client to stop (`false`) or resume (`true`) showing what
    /// the player types, where the format has a way to.
    pub fn encode_echo(self, on: bool) -> Option<Frame> {
        match self {
            Format::Evennia => Some(evennia::encode_echo(on)),
            _ => None,
        }
    }
}

/// ANSI text as a BINARY frame, lines ending in CR LF as on telnet.
fn ansi_frame(text: &str, prompt: bool) -> Frame {
    let mut bytes = text
        .replace("\r\n", "\n")
        .replace('\n', "\r\n")
        .into_bytes();
    if !prompt {
        bytes.extend_from_slice(b"\r\n");
    }
    Frame::Binary(bytes)
}

/// Text frames or binary frames holding typed lines: split at line ends
/// (a final line end ends the last line, it does not start an empty one).
pub(crate) fn lines(bytes: &[u8]) -> Vec<Incoming> {
    let text = String::from_utf8_lossy(bytes);
    let mut out = Vec::new();
    if matches!(text, std::borrow::Cow::Owned(_)) {
        out.push(Incoming::Bad(
            "invalid UTF-8 in your input was replaced".into(),
        ));
    }
    let body = text.strip_suffix('\n').unwrap_or(&text);
    for line in body.split('\n') {
        out.push(Incoming::Line(
            line.strip_suffix('\r').unwrap_or(line).to_owned(),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subprotocol_names_select_formats_in_any_case() {
        for format in Format::ALL {
            assert_eq!(Format::from_subprotocol(format.subprotocol()), Some(format));
        }
        assert_eq!(
            Format::from_subprotocol(" GMCP.mudstandards.org"),
            Some(Format::GmcpStandard)
        );
        assert_eq!(Format::from_subprotocol("telnet.mudstandards.org"), None);
    }

    #[test]
    fn lines_split_at_line_ends_and_keep_an_empty_line() {
        assert_eq!(
            lines(b"look\r\nsay hi\n"),
            vec![
                Incoming::Line("look".into()),
                Incoming::Line("say hi".into())
            ]
        );
        assert_eq!(lines(b""), vec![Incoming::Line(String::new())]);
        assert_eq!(lines(b"\n"), vec![Incoming::Line(String::new())]);
    }

    #[test]
    fn invalid_utf8_is_replaced_and_reported() {
        let got = lines(b"caf\xe9");
        assert!(matches!(&got[0], Incoming::Bad(_)));
        assert_eq!(got[1], Incoming::Line("caf\u{fffd}".into()));
    }

    #[test]
    fn ansi_text_ends_lines_with_crlf_and_prompts_without() {
        assert_eq!(
            Format::Terminal.encode_text("a\nb", false),
            Frame::Binary(b"a\r\nb\r\n".to_vec())
        );
        assert_eq!(
            Format::GmcpStandard.encode_text("> ", true),
            Frame::Binary(b"> ".to_vec())
        );
    }
}
