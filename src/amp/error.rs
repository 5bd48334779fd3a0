//! Why a game's link was refused or ended: the AMP link's one error type.
//!
//! The accept thread turns a refusal into a `Refused` answer for the peer
//! (its `Display` is the reason the game is shown) and a log line; the
//! reader logs why a link ended. Nothing here is shown to players.

use std::fmt;
use std::io;

/// Why a link was refused or ended.
#[derive(Debug)]
#[non_exhaustive]
pub enum LinkError {
    /// The peer sent no whole hello before the deadline.
    NoHello,
    /// The peer closed before its hello.
    ClosedBeforeHello,
    /// The first frame announces more than a hello may be.
    HelloTooLarge { len: usize },
    /// The first frame is not a `Hello`.
    NotAHello,
    /// The hello's version is not ours.
    Version { ours: u32, theirs: u32 },
    /// A `Hello` that does not decode.
    MalformedHello(postcard::Error),
    /// The hello's secret is not `[amp] secret`.
    WrongSecret,
    /// Another game holds the link.
    SecondGame,
    /// A frame over `[amp] max_frame_bytes`.
    FrameTooLarge { len: usize, max: usize },
    /// A whole frame whose body is not a message.
    Undecodable { reason: String },
    /// The first bytes are not a Twisted AMP box (evennia dialect).
    NotAmp { reason: String },
    /// The socket failed.
    Io(io::Error),
}

impl fmt::Display for LinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkError::NoHello => f.write_str("no hello before the deadline"),
            LinkError::ClosedBeforeHello => f.write_str("closed before its hello"),
            LinkError::HelloTooLarge { len } => {
                write!(f, "first frame announces {len} bytes: not an AMP hello")
            }
            LinkError::NotAHello => f.write_str("the first frame must be a Hello"),
            LinkError::Version { ours, theirs } => write!(
                f,
                "AMP version mismatch: this portal speaks version {ours}, \
                 the game sent version {theirs}"
            ),
            LinkError::MalformedHello(e) => write!(f, "malformed Hello: {e}"),
            LinkError::WrongSecret => f.write_str("wrong AMP secret"),
            LinkError::SecondGame => {
                f.write_str("another game server is already linked to this portal")
            }
            LinkError::FrameTooLarge { len, max } => {
                write!(f, "frame of {len} bytes is over max_frame_bytes ({max})")
            }
            LinkError::Undecodable { reason } => write!(f, "undecodable frame: {reason}"),
            LinkError::NotAmp { reason } => write!(f, "not AMP ({reason})"),
            LinkError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for LinkError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LinkError::MalformedHello(e) => Some(e),
            LinkError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for LinkError {
    fn from(e: io::Error) -> LinkError {
        LinkError::Io(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_error_stays_small() {
        assert!(std::mem::size_of::<LinkError>() <= 32);
    }

    #[test]
    fn io_errors_keep_their_source() {
        use std::error::Error;
        let e = LinkError::from(io::Error::other("boom"));
        assert_eq!(e.source().map(|s| s.to_string()).as_deref(), Some("boom"));
    }
}
