//! Evennia colour markup → safe HTML for the web client.
//!
//! The websocket session renders every `text` and `prompt` output through
//! [`render_html`]; the page inserts the result with `innerHTML`, so the
//! output must be markup *we* wrote around text *we* escaped. Like the ANSI
//! renderer this is a pure function: same lexer, same codes, no I/O.
//!
//! ```text
//! "|rHi <you>|n" ──lex──► tokens ──pen state──► "<span class=\"fg-9\">Hi &lt;you&gt;</span>"
//! ```
//!
//! # The output (the page's `style.css` and `client.js` rely on it)
//!
//! - Text: `&`, `<`, `>`, `"`, `'` become `&amp;`, `&lt;`, `&gt;`,
//!   `&quot;`, `&#39;`. Control characters other than `\n` and `\t` are
//!   dropped (so is `\r`), and so are raw escape sequences. `|/` is `\n`
//!   (the page shows text with `white-space: pre-wrap`), `|-` a tab, `|_` a
//!   space, `|>` four spaces.
//! - Colour and style: `<span class="…" style="…">…</span>`, opened just
//!   before text whose look differs from the open span's and closed before
//!   the next change, a link and the end, so spans never nest and are never
//!   left open. Either attribute is left out when it would be empty.
//!   - `fg-N` / `bg-N`, N = 0–15: the 16 ANSI colours, 0–7 dark (black,
//!     red, green, yellow, blue, magenta, cyan, light grey), 8–15 bright.
//!     `|r` is `fg-9`, `|R` `fg-1`, `|x` `fg-8`, `|X` `fg-0`, `|[R` `bg-1`,
//!     `|[r` `bg-9`.
//!   - `u`, `i`, `s`, `inv`, `blink` for `|u`, `|i`, `|s`, `|*`, `|^`.
//!   - xterm colours (`|500`, `|=a`) and hex colours (`|#ff8800`) as
//!     `style="color:#rrggbb"` / `style="background-color:#rrggbb"`, the
//!     digits always computed here. A hex colour is shown exactly (the ANSI
//!     renderer sends greys as xterm greyscale, as Evennia does; a browser
//!     needs no such fallback).
//! - Hilite follows the ANSI renderer: `|r` turns it on, `|R` off, `|!R`
//!   keeps it, `|h`/`|H` set it; a hue with hilite on is the bright one
//!   (`|h|!R` is `fg-9`). Hilite with no foreground colour is `fg-15`
//!   (bright white, as a terminal shows bold default text). `|n` ends
//!   every colour and style.
//! - Inverse swaps what is sent: `|*|r` is `class="bg-9 inv"`, `|*|[R` is
//!   `class="fg-1 inv"`; the `inv` class supplies the page's own colours for
//!   the side no code set.
//! - `|lc`cmd`|lt`text`|le` → `<a class="cmd" data-cmd="cmd" href="#">text</a>`;
//!   `|lu`url`|lt`text`|le` → `<a class="url" href="url" target="_blank"
//!   rel="noopener noreferrer">text</a>` when the URL starts with `http://`
//!   or `https://` (any case), else the text alone. The attribute values lose
//!   their markup and every control character, and are escaped like text.
//!   The text keeps its colour, and colour set inside it goes on after it,
//!   as in the ANSI renderer. Spans sit inside the anchor, never around it.
//! - [`HtmlOptions::color`] off or [`HtmlOptions::screenreader`] on: no
//!   spans at all; links are still links. A screenreader also loses the
//!   decoration [`super::RenderOptions::screenreader`] removes, within each
//!   stretch of text between link tags.
//!
//! Unlike [`super::strip`], which shows a URL link's URL (what a telnet
//! client without MXP can use), a URL link here shows its text.
//!
//! # Example
//!
//! ```
//! use portal::markup::{render_html, HtmlOptions};
//!
//! let color = HtmlOptions { color: true, screenreader: false };
//! assert_eq!(
//!     render_html("|rHi|n <b>|/|lclook|ltLook|le", &color),
//!     "<span class=\"fg-9\">Hi</span> &lt;b&gt;\n\
//!      <a class=\"cmd\" data-cmd=\"look\" href=\"#\">Look</a>"
//! );
//! assert_eq!(
//!     render_html("|#ff8800|uOrange", &color),
//!     "<span class=\"u\" style=\"color:#ff8800\">Orange</span>"
//! );
//! let plain = HtmlOptions { color: false, screenreader: false };
//! assert_eq!(render_html("|luJavaScript:x|ltno|le", &plain), "no");
//! ```

use super::{
    find_link, lex, plain_text, remove_decoration, Code, Hue, Layer, LinkKind, Style, Token, Xterm,
};

/// How one web client wants its output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HtmlOptions {
    /// Colour and style spans; off renders text and links only.
    pub color: bool,
    /// Text and links only, without decoration; overrides `color`.
    pub screenreader: bool,
}

/// Renders Evennia markup as HTML safe to insert with `innerHTML`.
///
/// Never panics; any input renders to something. See the [module
/// documentation](self) for the exact output.
pub fn render_html(text: &str, options: &HtmlOptions) -> String {
    let tokens = lex(text);
    let mut html = Html {
        out: String::with_capacity(text.len() + 32),
        pending: String::new(),
        pen: Pen::default(),
        open: None,
        color: options.color && !options.screenreader,
        screenreader: options.screenreader,
    };
    html.render_tokens(&tokens);
    html.flush();
    html.close_span();
    html.out
}

/// A colour as the page shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ink {
    /// One of the 16 palette colours, `fg-N` / `bg-N`.
    Palette(u8),
    /// An exact colour, sent as an inline style.
    Rgb([u8; 3]),
}

/// A foreground as the markup set it: a hue waits for the hilite to know
/// whether it is the dark or the bright one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Foreground {
    Hue(Hue),
    Exact([u8; 3]),
}

/// The colour and style state the codes change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Pen {
    fg: Option<Foreground>,
    bg: Option<Ink>,
    hilite: bool,
    underline: bool,
    italic: bool,
    strike: bool,
    inverse: bool,
    blink: bool,
}

impl Pen {
    fn apply(&mut self, code: Code) {
        match code {
            Code::Reset => *self = Pen::default(),
            Code::Style(style) => self.apply_style(style),
            Code::Bright(hue) => {
                self.hilite = true;
                self.fg = Some(Foreground::Hue(hue));
            }
            Code::Dark(hue) => {
                self.hilite = false;
                self.fg = Some(Foreground::Hue(hue));
            }
            Code::Plain(hue) => self.fg = Some(Foreground::Hue(hue)),
            Code::Background(hue) => self.bg = Some(Ink::Palette(hue as u8)),
            Code::BrightBackground(hue) => self.bg = Some(Ink::Palette(hue as u8 + 8)),
            Code::Xterm(Layer::Fg, colour) => self.fg = Some(Foreground::Exact(xterm_rgb(colour))),
            Code::Xterm(Layer::Bg, colour) => self.bg = Some(Ink::Rgb(xterm_rgb(colour))),
            Code::Hex(Layer::Fg, rgb) => self.fg = Some(Foreground::Exact(rgb)),
            Code::Hex(Layer::Bg, rgb) => self.bg = Some(Ink::Rgb(rgb)),
        }
    }

    fn apply_style(&mut self, style: Style) {
        match style {
            Style::Hilite(on) => self.hilite = on,
            Style::Underline(on) => self.underline = on,
            Style::Italic(on) => self.italic = on,
            Style::Strike(on) => self.strike = on,
            Style::Inverse => self.inverse = true,
            Style::Blink => self.blink = true,
        }
    }

    /// What text written with this pen looks like, or `None` for the
    /// page's plain text.
    fn look(&self) -> Option<Look> {
        let fg = match self.fg {
            Some(Foreground::Hue(hue)) => Some(Ink::Palette(hue as u8 + 8 * u8::from(self.hilite))),
            Some(Foreground::Exact(rgb)) => Some(Ink::Rgb(rgb)),
            None if self.hilite => Some(Ink::Palette(15)),
            None => None,
        };
        let (fg, bg) = if self.inverse {
            (self.bg, fg)
        } else {
            (fg, self.bg)
        };
        let look = Look {
            fg,
            bg,
            underline: self.underline,
            italic: self.italic,
            strike: self.strike,
            inverse: self.inverse,
            blink: self.blink,
        };
        (look != Look::default()).then_some(look)
    }
}

/// The attributes of one span: the pen after hilite and inverse are
/// worked out. Two pens with the same look share a span.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Look {
    fg: Option<Ink>,
    bg: Option<Ink>,
    underline: bool,
    italic: bool,
    strike: bool,
    inverse: bool,
    blink: bool,
}

impl Look {
    /// Writes `<span …>`.
    fn push_open_tag(&self, out: &mut String) {
        let mut classes: Vec<String> = Vec::new();
        let mut styles: Vec<String> = Vec::new();
        for (ink, class, property) in [
            (self.fg, "fg", "color"),
            (self.bg, "bg", "background-color"),
        ] {
            match ink {
                Some(Ink::Palette(n)) => classes.push(format!("{class}-{n}")),
                Some(Ink::Rgb([r, g, b])) => {
                    styles.push(format!("{property}:#{r:02x}{g:02x}{b:02x}"))
                }
                None => {}
            }
        }
        for (on, class) in [
            (self.underline, "u"),
            (self.italic, "i"),
            (self.strike, "s"),
            (self.inverse, "inv"),
            (self.blink, "blink"),
        ] {
            if on {
                classes.push(class.to_owned());
            }
        }
        out.push_str("<span");
        if !classes.is_empty() {
            out.push_str(" class=\"");
            out.push_str(&classes.join(" "));
            out.push('"');
        }
        if !styles.is_empty() {
            out.push_str(" style=\"");
            out.push_str(&styles.join(";"));
            out.push('"');
        }
        out.push('>');
    }
}

/// The HTML being built.
struct Html {
    out: String,
    /// Text for the current run (same span, same stretch between link
    /// tags), not yet escaped: a screenreader's decoration is removed from
    /// a whole run at once.
    pending: String,
    pen: Pen,
    /// The look of the span open in `out`, if one is.
    open: Option<Look>,
    color: bool,
    screenreader: bool,
}

impl Html {
    /// Renders a token list, pairing link tokens into links.
    fn render_tokens(&mut self, tokens: &[Token<'_>]) {
        let mut at = 0;
        while at < tokens.len() {
            if let Token::LinkOpen(kind) = tokens[at] {
                if let Some((target, label, used)) = find_link(&tokens[at + 1..]) {
                    self.render_link(kind, target, label);
                    at += 1 + used;
                    continue;
                }
            }
            self.render_token(tokens[at]);
            at += 1;
        }
    }

    /// Renders a token outside any link pairing: link tokens are text.
    fn render_token(&mut self, token: Token<'_>) {
        match token {
            Token::Text(text) => self.push_text(text),
            Token::Layout(text) => self.push_text(text),
            Token::Code(code) => self.pen.apply(code),
            Token::RawSgr(_) => {}
            link => self.push_text(link.link_literal()),
        }
    }

    fn render_link(&mut self, kind: LinkKind, target: &[Token<'_>], label: &[Token<'_>]) {
        let value: String = plain_text(target)
            .chars()
            .filter(|c| !c.is_control())
            .collect();
        let mut tag = String::new();
        match kind {
            LinkKind::Command => {
                tag.push_str("<a class=\"cmd\" data-cmd=\"");
                push_escaped(&mut tag, &value);
                tag.push_str("\" href=\"#\">");
            }
            LinkKind::Url if is_web_url(&value) => {
                tag.push_str("<a class=\"url\" href=\"");
                push_escaped(&mut tag, &value);
                tag.push_str("\" target=\"_blank\" rel=\"noopener noreferrer\">");
            }
            LinkKind::Url => {
                label.iter().for_each(|&token| self.render_token(token));
                return;
            }
        }
        self.push_tag(&tag);
        label.iter().for_each(|&token| self.render_token(token));
        self.push_tag("</a>");
    }

    /// Adds text, first opening the span the pen asks for.
    fn push_text(&mut self, text: &str) {
        if self.color && text.chars().any(is_kept) {
            let look = self.pen.look();
            if look != self.open {
                self.flush();
                self.close_span();
                if let Some(look) = look {
                    look.push_open_tag(&mut self.out);
                    self.open = Some(look);
                }
            }
        }
        self.pending.push_str(text);
    }

    /// Writes one of our own tags, outside any span.
    fn push_tag(&mut self, tag: &str) {
        self.flush();
        self.close_span();
        self.out.push_str(tag);
    }

    /// Escapes the pending text into the output.
    fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let text = std::mem::take(&mut self.pending);
        let text = if self.screenreader {
            remove_decoration(&text)
        } else {
            text
        };
        let kept: String = text.chars().filter(|&c| is_kept(c)).collect();
        push_escaped(&mut self.out, &kept);
    }

    fn close_span(&mut self) {
        if self.open.take().is_some() {
            self.out.push_str("</span>");
        }
    }
}

/// Whether a character of the input is shown: every one but the control
/// characters, except line breaks and tabs.
fn is_kept(c: char) -> bool {
    !c.is_control() || c == '\n' || c == '\t'
}

/// Text shown verbatim in HTML (for `raw` output): escaped, with control
/// characters other than line breaks and tabs dropped.
pub fn escape_html(text: &str) -> String {
    let kept: String = text.chars().filter(|&c| is_kept(c)).collect();
    let mut out = String::with_capacity(kept.len() + 8);
    push_escaped(&mut out, &kept);
    out
}

/// Appends text escaped for an HTML text node or a quoted attribute value.
fn push_escaped(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

/// Whether a URL may become a link: `http://` or `https://`, in any case.
fn is_web_url(url: &str) -> bool {
    let starts_with = |prefix: &str| {
        url.as_bytes()
            .get(..prefix.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(prefix.as_bytes()))
    };
    starts_with("http://") || starts_with("https://")
}

/// The colour xterm shows for a palette entry.
fn xterm_rgb(colour: Xterm) -> [u8; 3] {
    const CUBE_LEVELS: [u8; 6] = [0, 95, 135, 175, 215, 255];
    match colour {
        // The lexer only makes channels 0–5; `min` keeps the index in range.
        Xterm::Cube(rgb) => rgb.map(|c| CUBE_LEVELS[usize::from(c.min(5))]),
        // `a` and `z` are the cube's black and white, `b`–`y` the ramp
        // 232–255 (8, 18, … 238).
        Xterm::Grey(0) => [0; 3],
        Xterm::Grey(step) if step >= 25 => [255; 3],
        Xterm::Grey(step) => [8 + 10 * (step - 1); 3],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::markup::{render, strip, ColorDepth, RenderOptions};

    const COLOR: HtmlOptions = HtmlOptions {
        color: true,
        screenreader: false,
    };
    const PLAIN: HtmlOptions = HtmlOptions {
        color: false,
        screenreader: false,
    };
    const SCREENREADER: HtmlOptions = HtmlOptions {
        color: true,
        screenreader: true,
    };

    fn color(text: &str) -> String {
        render_html(text, &COLOR)
    }
    fn plain(text: &str) -> String {
        render_html(text, &PLAIN)
    }
    fn screenreader(text: &str) -> String {
        render_html(text, &SCREENREADER)
    }
    fn span(class: &str, text: &str) -> String {
        format!("<span class=\"{class}\">{text}</span>")
    }

    #[test]
    fn bright_letters_are_palette_8_to_15_and_capitals_0_to_7() {
        for (n, letter) in "xrgybmcw".chars().enumerate() {
            let upper = letter.to_ascii_uppercase();
            assert_eq!(
                color(&format!("|{letter}A")),
                span(&format!("fg-{}", n + 8), "A")
            );
            assert_eq!(color(&format!("|{upper}A")), span(&format!("fg-{n}"), "A"));
            assert_eq!(plain(&format!("|{letter}A|{upper}B")), "AB");
        }
    }

    #[test]
    fn named_examples_from_the_contract() {
        assert_eq!(color("|rA"), span("fg-9", "A"));
        assert_eq!(color("|RA"), span("fg-1", "A"));
        assert_eq!(color("|xA"), span("fg-8", "A"));
        assert_eq!(color("|XA"), span("fg-0", "A"));
        assert_eq!(color("|WA"), span("fg-7", "A"));
        assert_eq!(color("|wA"), span("fg-15", "A"));
    }

    #[test]
    fn bang_colours_keep_the_hilite() {
        assert_eq!(color("|!RA"), span("fg-1", "A"));
        assert_eq!(color("|h|!RA"), span("fg-9", "A"));
        assert_eq!(color("|r|!GA"), span("fg-10", "A"));
        assert_eq!(color("|R|hA|HB"), span("fg-9", "A") + &span("fg-1", "B"));
    }

    #[test]
    fn hilite_without_a_colour_is_bright_white() {
        assert_eq!(color("|hA|HB"), span("fg-15", "A") + "B");
    }

    #[test]
    fn backgrounds_dark_and_bright() {
        assert_eq!(color("|[RA"), span("bg-1", "A"));
        assert_eq!(color("|[rA"), span("bg-9", "A"));
        assert_eq!(color("|[xA|[XB"), span("bg-8", "A") + &span("bg-0", "B"));
        assert_eq!(color("|[B|yA"), span("fg-11 bg-4", "A"));
    }

    #[test]
    fn styles_are_classes_and_capitals_turn_them_off() {
        assert_eq!(color("|uA|UB"), span("u", "A") + "B");
        assert_eq!(color("|iA|IB"), span("i", "A") + "B");
        assert_eq!(color("|sA|SB"), span("s", "A") + "B");
        assert_eq!(color("|^A"), span("blink", "A"));
        assert_eq!(color("|*A"), span("inv", "A"));
        assert_eq!(color("|g|u|i|s|^A"), span("fg-10 u i s blink", "A"));
    }

    #[test]
    fn inverse_swaps_foreground_and_background() {
        assert_eq!(color("|*|rA"), span("bg-9 inv", "A"));
        assert_eq!(color("|[R|*A"), span("fg-1 inv", "A"));
        assert_eq!(color("|G|[B|*A"), span("fg-4 bg-2 inv", "A"));
        assert_eq!(
            color("|*|#ff8800A"),
            "<span class=\"inv\" style=\"background-color:#ff8800\">A</span>"
        );
    }

    #[test]
    fn xterm_cube_and_greys_are_inline_colours() {
        let style = |css: &str, text: &str| format!("<span style=\"{css}\">{text}</span>");
        assert_eq!(color("|500A"), style("color:#ff0000", "A"));
        assert_eq!(color("|123A"), style("color:#5f87af", "A"));
        assert_eq!(color("|[005A"), style("background-color:#0000ff", "A"));
        assert_eq!(
            color("|=aA|=bB"),
            style("color:#000000", "A") + &style("color:#080808", "B")
        );
        assert_eq!(
            color("|=yA|=zB"),
            style("color:#eeeeee", "A") + &style("color:#ffffff", "B")
        );
        assert_eq!(color("|[=mA"), style("background-color:#767676", "A"));
    }

    #[test]
    fn hex_colours_are_shown_exactly() {
        let style = |css: &str| format!("<span style=\"{css}\">A</span>");
        assert_eq!(color("|#ff8800A"), style("color:#ff8800"));
        assert_eq!(color("|#F80A"), style("color:#ff8800"));
        assert_eq!(color("|#808080A"), style("color:#808080"));
        assert_eq!(color("|[#123456A"), style("background-color:#123456"));
        assert_eq!(
            color("|#ff0000|[#00ff00|uA"),
            "<span class=\"u\" style=\"color:#ff0000;background-color:#00ff00\">A</span>"
        );
    }

    #[test]
    fn hilite_does_not_change_exact_colours() {
        assert_eq!(color("|h|500A"), "<span style=\"color:#ff0000\">A</span>");
    }

    #[test]
    fn reset_closes_everything() {
        assert_eq!(color("|r|[B|uA|nB"), span("fg-9 bg-4 u", "A") + "B");
        assert_eq!(color("|rA|n"), span("fg-9", "A"));
        assert_eq!(color("|n|n"), "");
    }

    #[test]
    fn a_span_opens_only_around_text_and_is_never_left_open() {
        assert_eq!(color("|r|g|bA"), span("fg-12", "A"));
        assert_eq!(color("|rA|rB"), span("fg-9", "AB"));
        assert_eq!(color("|rAB|u"), span("fg-9", "AB"));
        assert_eq!(color("|r"), "");
    }

    #[test]
    fn layout_codes_are_text_and_line_breaks_stay_newlines() {
        assert_eq!(plain("a|/b|-c|_d|>e\nf"), "a\nb\tc d    e\nf");
        assert_eq!(color("|ra|/b"), span("fg-9", "a\nb"));
    }

    #[test]
    fn double_bar_and_unknown_codes_are_literal_text() {
        assert_eq!(color("a||rb"), "a|rb");
        assert_eq!(color("|q|9|[q|=A|#xyz|!|"), "|q|9|[q|=A|#xyz|!|");
    }

    #[test]
    fn html_in_the_text_is_escaped() {
        assert_eq!(
            color("<script>alert(\"x\" & 'y')</script>"),
            "&lt;script&gt;alert(&quot;x&quot; &amp; &#39;y&#39;)&lt;/script&gt;"
        );
        assert_eq!(
            color("|r<img src=x onerror=alert(1)>"),
            span("fg-9", "&lt;img src=x onerror=alert(1)&gt;")
        );
        assert_eq!(plain("&amp; &#39;"), "&amp;amp; &amp;#39;");
    }

    #[test]
    fn raw_escapes_and_control_characters_are_dropped() {
        assert_eq!(color("\x1b[31mred\x1b[0m\x1b[2J"), "red");
        assert_eq!(color("a\x1bb\x07c\rd\0e\u{85}f\u{9b}g"), "abcdefg");
        assert_eq!(color("tab\there\r\n"), "tab\there\n");
    }

    #[test]
    fn unicode_is_kept() {
        assert_eq!(color("é|r日本|n🦀"), format!("é{}🦀", span("fg-9", "日本")));
    }

    #[test]
    fn command_links_are_anchors_with_the_command_in_data_cmd() {
        assert_eq!(
            color("Go |lclook|ltLook around|le."),
            "Go <a class=\"cmd\" data-cmd=\"look\" href=\"#\">Look around</a>."
        );
    }

    #[test]
    fn a_quote_in_the_command_cannot_leave_the_attribute() {
        assert_eq!(
            color("|lcsay \"hi\" onclick='x' <b>&|ltsay|le"),
            "<a class=\"cmd\" data-cmd=\"say &quot;hi&quot; onclick=&#39;x&#39; &lt;b&gt;&amp;\" \
             href=\"#\">say</a>"
        );
    }

    #[test]
    fn link_targets_lose_markup_and_control_characters() {
        assert_eq!(
            color("|lc|rsay a||b|/c\x07|lt|gYes|le"),
            "<a class=\"cmd\" data-cmd=\"say a|bc\" href=\"#\">".to_owned()
                + &span("fg-10", "Yes")
                + "</a>"
        );
    }

    #[test]
    fn link_text_keeps_colour_and_colour_goes_on_after_the_link() {
        assert_eq!(
            color("|rA|lcx|ltB|gC|le D"),
            span("fg-9", "A")
                + "<a class=\"cmd\" data-cmd=\"x\" href=\"#\">"
                + &span("fg-9", "B")
                + &span("fg-10", "C")
                + "</a>"
                + &span("fg-10", " D")
        );
    }

    #[test]
    fn web_url_links_open_in_a_new_tab() {
        let anchor = |href: &str, text: &str| {
            format!(
                "<a class=\"url\" href=\"{href}\" target=\"_blank\" rel=\"noopener noreferrer\">{text}</a>"
            )
        };
        assert_eq!(
            color("|luhttps://evennia.com/?a=1&b=\"2\"|ltsite|le"),
            anchor("https://evennia.com/?a=1&amp;b=&quot;2&quot;", "site")
        );
        assert_eq!(plain("|luHTTP://X.ORG|ltx|le"), anchor("HTTP://X.ORG", "x"));
        assert_eq!(plain("|luht\ttp://x|ltx|le"), anchor("http://x", "x"));
    }

    #[test]
    fn other_url_schemes_show_only_the_text() {
        for url in [
            "javascript:alert(1)",
            "JavaScript:alert(1)",
            " https://x.org",
            "\x01javascript:alert(1)",
            "data:text/html,<script>x</script>",
            "vbscript:x",
            "//evil.example",
            "httpx://x",
            "",
        ] {
            assert_eq!(
                color(&format!("|lu{url}|lt|rclick|le")),
                span("fg-9", "click"),
                "{url:?}"
            );
        }
    }

    #[test]
    fn unterminated_or_stray_link_codes_are_literal_text() {
        assert_eq!(color("|lclook|ltLook"), "|lclook|ltLook");
        assert_eq!(color("a|ltb|lec|lx"), "a|ltb|lec|lx");
        assert_eq!(
            color("|lca|ltx|lcy|le|le"),
            "<a class=\"cmd\" data-cmd=\"a\" href=\"#\">x|lcy</a>|le"
        );
    }

    #[test]
    fn unbalanced_markup_is_closed() {
        assert_eq!(color("|r|[b|u|*"), "");
        assert_eq!(color("|u|lcx|ltA"), span("u", "|lcx|ltA"));
        assert_eq!(color("|#ff|[|=|5|"), "|#ff|[|=|5|");
    }

    #[test]
    fn without_colour_there_are_no_spans_but_links_stay() {
        assert_eq!(plain("|r|[b|u|*A|#ff8800B|500C"), "ABC");
        assert_eq!(
            plain("|r|lclook|ltLook|le"),
            "<a class=\"cmd\" data-cmd=\"look\" href=\"#\">Look</a>"
        );
    }

    #[test]
    fn screenreader_drops_spans_and_decoration_but_keeps_links() {
        assert_eq!(screenreader("|r-----|n Title |g=====|n"), " Title ");
        assert_eq!(screenreader("+---+|/|| a |+|/+~~+"), "\n| a |\n~");
        assert_eq!(
            screenreader("|lclook|lt|rLook|le a-b"),
            "<a class=\"cmd\" data-cmd=\"look\" href=\"#\">Look</a> a-b"
        );
        // The command itself is data, not decoration.
        assert_eq!(
            screenreader("|lc---|lt==x|le"),
            "<a class=\"cmd\" data-cmd=\"---\" href=\"#\">x</a>"
        );
    }

    #[test]
    fn screenreader_overrides_colour() {
        let options = HtmlOptions {
            color: false,
            screenreader: true,
        };
        assert_eq!(render_html("|rA--", &options), "A");
    }

    /// What a browser would show for our HTML: checks that every tag and
    /// entity is one we write, that tags are balanced and never nested
    /// wrongly, and returns the visible text.
    fn visible_text(html: &str) -> Result<String, String> {
        let mut text = String::new();
        let (mut in_span, mut in_anchor) = (false, false);
        let mut rest = html;
        while let Some(c) = rest.chars().next() {
            match c {
                '<' => {
                    let end = rest.find('>').ok_or("unclosed tag")? + 1;
                    let tag = &rest[..end];
                    if tag == "</span>" && in_span {
                        in_span = false;
                    } else if tag == "</a>" && in_anchor && !in_span {
                        in_anchor = false;
                    } else if tag.starts_with("<span ") && !in_span && is_span_tag(tag) {
                        in_span = true;
                    } else if tag.starts_with("<a ") && !in_anchor && !in_span && is_anchor_tag(tag)
                    {
                        in_anchor = true;
                    } else {
                        return Err(format!("foreign or misplaced tag {tag:?}"));
                    }
                    rest = &rest[end..];
                }
                '&' => {
                    let (entity, shown) = [
                        ("&amp;", '&'),
                        ("&lt;", '<'),
                        ("&gt;", '>'),
                        ("&quot;", '"'),
                        ("&#39;", '\''),
                    ]
                    .into_iter()
                    .find(|(entity, _)| rest.starts_with(entity))
                    .ok_or("foreign entity")?;
                    text.push(shown);
                    rest = &rest[entity.len()..];
                }
                '>' | '"' | '\'' => return Err(format!("unescaped {c:?}")),
                c if !is_kept(c) => return Err(format!("control character {c:?}")),
                c => {
                    text.push(c);
                    rest = &rest[c.len_utf8()..];
                }
            }
        }
        if in_span || in_anchor {
            return Err("a tag is left open".into());
        }
        Ok(text)
    }

    /// `<span class="…" style="…">` with our characters only.
    fn is_span_tag(tag: &str) -> bool {
        let mut rest = &tag["<span".len()..];
        let mut any = false;
        for (name, allowed) in [
            (" class=\"", "abcdefghijklmnopqrstuvwxyz0123456789- "),
            (" style=\"", "abcdefghijklmnopqrstuvwxyz0123456789-:;#"),
        ] {
            if let Some(after) = rest.strip_prefix(name) {
                let Some(end) = after.find('"') else {
                    return false;
                };
                if end == 0 || !after[..end].chars().all(|c| allowed.contains(c)) {
                    return false;
                }
                rest = &after[end + 1..];
                any = true;
            }
        }
        any && rest == ">"
    }

    /// One of our two anchor shapes, with an escaped value.
    fn is_anchor_tag(tag: &str) -> bool {
        let escaped = |value: &str| !value.contains(['<', '>', '"', '\'']);
        if let Some(value) = tag
            .strip_prefix("<a class=\"cmd\" data-cmd=\"")
            .and_then(|t| t.strip_suffix("\" href=\"#\">"))
        {
            return escaped(value);
        }
        if let Some(value) = tag
            .strip_prefix("<a class=\"url\" href=\"")
            .and_then(|t| t.strip_suffix("\" target=\"_blank\" rel=\"noopener noreferrer\">"))
        {
            return escaped(value) && is_web_url(value);
        }
        false
    }

    /// What the text should read as: control characters other than line
    /// breaks and tabs removed.
    fn cleaned(text: &str) -> String {
        text.chars().filter(|&c| is_kept(c)).collect()
    }

    #[test]
    fn the_checker_rejects_what_we_never_write() {
        for bad in [
            "<b>",
            "<span>",
            "<span class=\"x\" onclick=\"y\">a</span>",
            "<span class=\"fg-1\">",
            "</span>",
            "<a class=\"url\" href=\"javascript:x\" target=\"_blank\" rel=\"noopener noreferrer\">x</a>",
            "&nbsp;",
            "a\"b",
            "\x1b[31m",
        ] {
            assert!(visible_text(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            visible_text(&color("|r<a>|lcx|lt&|le")).as_deref(),
            Ok("<a>&")
        );
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// Markup-heavy text: fragments that form, almost form, or break
        /// codes, links and HTML.
        fn markup() -> impl Strategy<Value = String> {
            let fragment = prop::sample::select(vec![
                "|",
                "||",
                "r",
                "R",
                "[",
                "#",
                "f",
                "0",
                "5",
                "=",
                "a",
                "!",
                "h",
                "l",
                "c",
                "u",
                "t",
                "e",
                "n",
                "*",
                "^",
                "/",
                "-",
                "+",
                "~",
                " ",
                "\n",
                "\r",
                "\t",
                "\x07",
                "\u{85}",
                "\x1b",
                "\x1b[",
                "m",
                "1;3",
                "é",
                "🦀",
                "<",
                ">",
                "\"",
                "'",
                "&",
                "&amp;",
                "<script>",
                "</span>",
                "<a href=",
                "http://",
                "HTTPS://",
                "javascript:",
                "data:",
            ]);
            prop::collection::vec(fragment, 0..40).prop_map(|parts| parts.concat())
        }

        fn any_text() -> impl Strategy<Value = String> {
            prop_oneof![markup(), any::<String>()]
        }

        fn any_options() -> impl Strategy<Value = HtmlOptions> {
            (any::<bool>(), any::<bool>()).prop_map(|(color, screenreader)| HtmlOptions {
                color,
                screenreader,
            })
        }

        /// No URL links: those show their text here and their URL in `strip`.
        fn without_url_links(text: &str) -> String {
            text.replace("|lu", "|lc")
        }

        /// No links at all: a screenreader's decoration is removed per
        /// stretch between link tags here, over the whole text in `render`.
        fn without_links(text: &str) -> String {
            text.replace("|l", "|q")
        }

        proptest! {
            #[test]
            fn output_has_only_our_tags_balanced(text in any_text(), options in any_options()) {
                let html = render_html(&text, &options);
                if let Err(why) = visible_text(&html) {
                    prop_assert!(false, "{}: {:?} → {:?}", why, text, html);
                }
            }

            #[test]
            fn no_spans_without_colour(text in any_text(), screenreader in any::<bool>()) {
                for options in [HtmlOptions { color: false, screenreader }, SCREENREADER] {
                    prop_assert!(!render_html(&text, &options).contains("<span"));
                }
            }

            #[test]
            fn visible_text_is_what_strip_gives(text in any_text(), color in any::<bool>()) {
                let text = without_url_links(&text);
                let html = render_html(&text, &HtmlOptions { color, screenreader: false });
                prop_assert_eq!(visible_text(&html), Ok(cleaned(&strip(&text))));
            }

            #[test]
            fn screenreader_text_is_what_the_ansi_screenreader_gives(text in any_text()) {
                let text = without_links(&text);
                let ansi = RenderOptions { color: ColorDepth::Truecolor, mxp: false, screenreader: true };
                let html = render_html(&text, &SCREENREADER);
                prop_assert_eq!(visible_text(&html), Ok(cleaned(&render(&text, &ansi))));
            }

            #[test]
            fn colour_never_changes_the_text(text in any_text()) {
                prop_assert_eq!(
                    visible_text(&render_html(&text, &COLOR)),
                    visible_text(&render_html(&text, &PLAIN))
                );
            }

            #[test]
            fn url_links_show_their_text(label in "[a-z <&]{0,8}", url in any_text()) {
                // Without `|` and `ESC` the URL cannot end the link early
                // (`ESC[|` is a whole escape sequence, and dropped).
                let url = url.replace(['|', '\x1b'], "");
                let text = format!("|lu{url}|lt{label}|le");
                let html = render_html(&text, &PLAIN);
                prop_assert_eq!(visible_text(&html), Ok(label));
            }
        }
    }
}
