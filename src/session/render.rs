//! How one output command is shown to one client (pure).
//!
//! The session worker asks this module, for each `text` or `prompt` from the
//! game, which colour depth and MXP setting to render the markup with, and
//! whether the text also switches the client's local echo. The answer comes
//! from the client's negotiated protocol flags (Evennia's names: ANSI,
//! XTERM256, TRUECOLOR, NOCOLOR, SCREENREADER, MXP, RAW), overridden by the
//! game's per-message `options` (Evennia's `send_text` options: `raw`,
//! `nocolor`, `xterm256`, `truecolor`, `screenreader`, `mxp`, `echo`).

use crate::markup::{render, ColorDepth, RenderOptions};
use crate::value::{Map, Value};

/// What the worker does with one piece of game text.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    /// The bytes to send, as text (ANSI escapes included).
    pub text: String,
    /// `Some(false)`: the client should stop echoing (a password comes);
    /// `Some(true)`: echo again.
    pub echo: Option<bool>,
}

/// Render `text` for a client with `flags`, honouring the command's
/// `kwargs["options"]`.
pub fn render_for(text: &str, flags: &Map, kwargs: &Map) -> Rendered {
    render_with(text, &|name| flags.get(name), kwargs)
}

/// [`render_for`] with the flags given as a lookup, so a caller holding
/// them in layers (the game's over the negotiated ones) need not merge
/// them into a new map for every message.
pub fn render_with<'a>(
    text: &str,
    flags: &dyn Fn(&str) -> Option<&'a Value>,
    kwargs: &Map,
) -> Rendered {
    let empty = Map::new();
    let options = match kwargs.get("options") {
        Some(Value::Map(options)) => options,
        _ => &empty,
    };
    let pick = |name: &str, flag: &str| -> bool {
        options
            .get(name)
            .or_else(|| flags(flag))
            .is_some_and(Value::is_truthy)
    };
    let echo = match options.get("echo") {
        Some(Value::Null) | None => None,
        Some(value) => Some(value.is_truthy()),
    };
    if pick("raw", "RAW") {
        return Rendered {
            text: text.to_owned(),
            echo,
        };
    }
    let screenreader = pick("screenreader", "SCREENREADER");
    let color = if screenreader || pick("nocolor", "NOCOLOR") {
        ColorDepth::None
    } else if pick("truecolor", "TRUECOLOR") {
        ColorDepth::Truecolor
    } else if pick("xterm256", "XTERM256") {
        ColorDepth::Xterm256
    } else if pick("ansi", "ANSI") {
        ColorDepth::Ansi16
    } else {
        ColorDepth::None
    };
    let options = RenderOptions {
        color,
        mxp: pick("mxp", "MXP"),
        screenreader,
    };
    Rendered {
        text: render(text, &options),
        echo,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(pairs: &[(&str, bool)]) -> Map {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), Value::Bool(*v)))
            .collect()
    }

    fn options(pairs: &[(&str, Value)]) -> Map {
        let inner: Map = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        [("options".to_string(), Value::Map(inner))]
            .into_iter()
            .collect()
    }

    #[test]
    fn an_ansi_client_gets_ansi_colour() {
        let out = render_for("|rred|n", &flags(&[("ANSI", true)]), &Map::new());
        assert!(out.text.contains("\x1b[31m"), "{:?}", out.text);
        assert_eq!(out.echo, None);
    }

    #[test]
    fn a_client_without_colour_gets_plain_text() {
        let out = render_for("|rred|n", &flags(&[("ANSI", false)]), &Map::new());
        assert_eq!(out.text, "red");
    }

    #[test]
    fn xterm256_and_truecolor_flags_pick_the_depth() {
        let f = flags(&[("ANSI", true), ("XTERM256", true)]);
        assert!(render_for("|500x", &f, &Map::new())
            .text
            .contains("38;5;196"));
        let f = flags(&[("ANSI", true), ("TRUECOLOR", true)]);
        assert!(render_for("|#ff0000x", &f, &Map::new())
            .text
            .contains("38;2;255;0;0"));
    }

    #[test]
    fn options_override_flags() {
        let f = flags(&[("ANSI", true)]);
        let plain = render_for("|rred", &f, &options(&[("nocolor", Value::Bool(true))]));
        assert_eq!(plain.text, "red");
        let raw = render_for("|rred", &f, &options(&[("raw", Value::Bool(true))]));
        assert_eq!(raw.text, "|rred");
    }

    #[test]
    fn screenreader_strips_colour_and_decoration() {
        let f = flags(&[("ANSI", true), ("SCREENREADER", true)]);
        let out = render_for("|r-----|n Title", &f, &Map::new());
        assert!(!out.text.contains('\x1b'));
        assert!(!out.text.contains("-----"));
    }

    #[test]
    fn echo_option_is_reported() {
        let out = render_for(
            "Password:",
            &Map::new(),
            &options(&[("echo", Value::Bool(false))]),
        );
        assert_eq!(out.echo, Some(false));
        let out = render_for("ok", &Map::new(), &options(&[("echo", Value::Bool(true))]));
        assert_eq!(out.echo, Some(true));
    }
}
