//! How one output command is shown to one client (pure).
//!
//! The session worker asks this module, for each `text` or `prompt` from the
//! game, which colour depth and MXP setting to render the markup with, and
//! whether the text also switches the client's local echo. The answer comes
//! from the client's negotiated protocol flags (Evennia's names: ANSI,
//! XTERM256, TRUECOLOR, NOCOLOR, SCREENREADER, MXP, RAW), overridden by the
//! game's per-message `options` (Evennia's `send_text` options: `raw`,
//! `nocolor`, `xterm256`, `truecolor`, `screenreader`, `mxp`, `echo`).

use crate::markup::{
    escape_html, escape_mxp, render, render_html, ColorDepth, HtmlOptions, RenderOptions,
};
use crate::wire::flags::{Flag, ProtocolFlags};
use crate::wire::value::{Map, Value};

/// What the worker does with one piece of game text.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    /// The bytes to send, as text (ANSI escapes or HTML included).
    pub text: String,
    /// `Some(false)`: the client should stop echoing (a password comes);
    /// `Some(true)`: echo again.
    pub echo: Option<bool>,
}

/// A client's flags as a lookup, so a caller holding them in layers (the
/// game's over the negotiated ones) need not merge them into a new map for
/// every message.
pub type Flags<'a> = &'a dyn Fn(Flag) -> Option<bool>;

/// The game's per-message `options` over the client's flags.
struct Choices<'a> {
    options: Option<&'a Map>,
    flags: Flags<'a>,
}

impl<'a> Choices<'a> {
    fn new(flags: Flags<'a>, kwargs: &'a Map) -> Choices<'a> {
        let options = match kwargs.get("options") {
            Some(Value::Map(options)) => Some(options),
            _ => None,
        };
        Choices { options, flags }
    }

    fn option(&self, name: &str) -> Option<&'a Value> {
        self.options.and_then(|options| options.get(name))
    }

    /// The option `name` if the game set it, else the client's `flag`.
    fn pick(&self, name: &str, flag: Flag) -> bool {
        self.option(name)
            .map(Value::is_truthy)
            .or_else(|| (self.flags)(flag))
            .unwrap_or(false)
    }

    fn echo(&self) -> Option<bool> {
        match self.option("echo") {
            Some(Value::Null) | None => None,
            Some(value) => Some(value.is_truthy()),
        }
    }
}

/// Render `text` for a client with `flags` (as the wire map has them),
/// honouring the command's `kwargs["options"]`.
pub fn render_for(text: &str, flags: &Map, kwargs: &Map) -> Rendered {
    let flags = ProtocolFlags::from_map(flags.clone());
    render_with(text, &|flag| flags.is_on(flag), kwargs)
}

/// [`render_for`] with the flags given as a lookup.
pub fn render_with(text: &str, flags: Flags<'_>, kwargs: &Map) -> Rendered {
    let choices = Choices::new(flags, kwargs);
    let echo = choices.echo();
    if choices.pick("raw", Flag::Raw) {
        // Raw text is not markup, but an MXP client still parses it for
        // tags: it gets `&`, `<`, `>` as entities like all other text.
        let text = if choices.pick("mxp", Flag::Mxp) {
            escape_mxp(text)
        } else {
            text.to_owned()
        };
        return Rendered { text, echo };
    }
    let pick = |name: &str, flag: Flag| choices.pick(name, flag);
    let screenreader = pick("screenreader", Flag::Screenreader);
    let color = if screenreader || pick("nocolor", Flag::NoColor) {
        ColorDepth::None
    } else if pick("truecolor", Flag::Truecolor) {
        ColorDepth::Truecolor
    } else if pick("xterm256", Flag::Xterm256) {
        ColorDepth::Xterm256
    } else if pick("ansi", Flag::Ansi) {
        ColorDepth::Ansi16
    } else {
        ColorDepth::None
    };
    let options = RenderOptions {
        color,
        mxp: pick("mxp", Flag::Mxp),
        screenreader,
    };
    Rendered {
        text: render(text, &options),
        echo,
    }
}

/// Render `text` as HTML for the web page: colours unless `nocolor`,
/// screen-reader plain text, `raw` shown escaped but otherwise verbatim.
pub fn render_html_for(text: &str, flags: &Map, kwargs: &Map) -> Rendered {
    let flags = ProtocolFlags::from_map(flags.clone());
    render_html_with(text, &|flag| flags.is_on(flag), kwargs)
}

/// [`render_html_for`] with the flags given as a lookup.
pub fn render_html_with(text: &str, flags: Flags<'_>, kwargs: &Map) -> Rendered {
    let choices = Choices::new(flags, kwargs);
    let echo = choices.echo();
    if choices.pick("raw", Flag::Raw) {
        return Rendered {
            text: escape_html(text),
            echo,
        };
    }
    let options = HtmlOptions {
        color: !choices.pick("nocolor", Flag::NoColor),
        screenreader: choices.pick("screenreader", Flag::Screenreader),
    };
    Rendered {
        text: render_html(text, &options),
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
    fn an_mxp_client_gets_text_and_raw_text_escaped() {
        let f = flags(&[("ANSI", true), ("MXP", true)]);
        let out = render_for("create <name> & |lclook|lt<look>|le", &f, &Map::new());
        assert_eq!(
            out.text,
            "create &lt;name&gt; &amp; \x1b[4z<SEND HREF=\"look\">&lt;look&gt;\x1b[4z</SEND>"
        );
        let raw = render_for("a <b> |r", &f, &options(&[("raw", Value::Bool(true))]));
        assert_eq!(raw.text, "a &lt;b&gt; |r");
    }

    #[test]
    fn a_client_without_mxp_gets_angle_brackets_as_they_are() {
        let f = flags(&[("ANSI", true), ("MXP", false)]);
        assert_eq!(render_for("a <b> & c", &f, &Map::new()).text, "a <b> & c");
        let raw = render_for("a <b>", &f, &options(&[("raw", Value::Bool(true))]));
        assert_eq!(raw.text, "a <b>");
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

    #[test]
    fn html_output_escapes_raw_text_and_honours_nocolor() {
        let raw = render_html_for(
            "<b>|r",
            &Map::new(),
            &options(&[("raw", Value::Bool(true))]),
        );
        assert_eq!(raw.text, "&lt;b&gt;|r");
        let plain = render_html_for(
            "|rred",
            &Map::new(),
            &options(&[("nocolor", Value::Bool(true))]),
        );
        assert_eq!(plain.text, "red");
        let hidden = render_html_for(
            "Password:",
            &Map::new(),
            &options(&[("echo", Value::Bool(false))]),
        );
        assert_eq!(hidden.echo, Some(false));
    }
}
