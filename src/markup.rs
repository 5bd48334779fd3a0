//! Evennia colour markup → the text one client gets: ANSI-16, xterm-256,
//! truecolor, or plain.
//!
//! The session worker renders every `text` and `prompt` output through
//! [`render`] with the [`RenderOptions`] its client negotiated (TTYPE/MTTS
//! colour depth, MXP, the player's `nocolor` and `screenreader` options).
//! Web clients get HTML instead, from [`render_html`] (the [`html`]
//! module documents that output). Everything here is a pure function of
//! its input: no I/O, no clock, no state between calls.
//!
//! ```text
//! "|rHi |lclook|ltLook|le|n" ──lex──► tokens ──render(options)──► "\x1b[1m\x1b[31mHi Look\x1b[0m"
//! ```
//!
//! # The markup (Evennia's `|`-codes)
//!
//! | code | meaning | ANSI sent |
//! |---|---|---|
//! | `\|n` | reset | `ESC[0m` |
//! | `\|r \|g \|y \|b \|m \|c \|w \|x` | bright foreground (`x` is dark grey) | `ESC[1m` `ESC[3Nm` |
//! | `\|R \|G \|Y \|B \|M \|C \|W \|X` | dark foreground (`W` light grey, `X` black) | `ESC[22m` `ESC[3Nm` |
//! | `\|!R` … `\|!X` | foreground colour, keeping the current hilite | `ESC[3Nm` |
//! | `\|h` / `\|H` | hilite on / off | `ESC[1m` / `ESC[22m` |
//! | `\|[R` … `\|[X` | dark background | `ESC[4Nm` |
//! | `\|[r` … `\|[x` | bright background, sent as the xterm colour `\|[500` … `\|[222` | |
//! | `\|u` / `\|U` | underline on / off | `ESC[4m` / `ESC[24m` |
//! | `\|i` / `\|I` | italic on / off | `ESC[3m` / `ESC[23m` |
//! | `\|s` / `\|S` | strikethrough on / off | `ESC[9m` / `ESC[29m` |
//! | `\|*` | inverse | `ESC[7m` |
//! | `\|^` | blink | `ESC[5m` |
//! | `\|/` `\|-` `\|_` `\|>` | line break `\r\n`, tab, space, four-space indent | |
//! | `\|\|` | a literal `\|` | |
//! | `\|500`, `\|[500` | xterm 6×6×6 colour cube, digits 0–5 (fg, bg) | `ESC[38;5;Nm`, `ESC[48;5;Nm` |
//! | `\|=a` … `\|=z`, `\|[=a` | xterm greyscale, `a` black to `z` white | `ESC[38;5;Nm` |
//! | `\|#ff8800`, `\|#f80`, `\|[#…` | 24-bit colour (fg, bg) | `ESC[38;2;R;G;Bm` |
//! | `\|lc`cmd`\|lt`text`\|le` | MXP link sending a command | see below |
//! | `\|lu`url`\|lt`text`\|le` | MXP link opening a URL | see below |
//!
//! Anything else after a `|` (an unknown letter, a lone trailing `|`) is
//! left as literal text, as Evennia does.
//!
//! # Fallbacks, following Evennia
//!
//! - xterm colours on a 16-colour client use Evennia's table: each 0–5
//!   channel is halved, then matched to the nearest of the eight ANSI hues,
//!   bright or dark (dark foregrounds reset first: `ESC[0m ESC[31m`).
//!   Greyscale letters become black, dark grey, light grey or white.
//! - hex colours on a client without truecolor become the xterm cube colour
//!   whose channels are `round((v - 45) / 40)`, and pure greys become the
//!   greyscale letter `round((v - 8) / 10)` (rounding half to even, as
//!   Python's `round` does); on a 16-colour client that xterm colour then
//!   takes the path above. Like Evennia, a grey hex is sent as an xterm
//!   greyscale even to a truecolor client.
//! - [`ColorDepth::None`] removes every colour and style but keeps the text,
//!   line breaks, tabs and spaces.
//!
//! Every output that sent a colour or style and did not end with a reset
//! gets `ESC[0m` appended, so colour never bleeds into the next line.
//!
//! # MXP links
//!
//! With [`RenderOptions::mxp`], links become the tags Evennia sends, each
//! tag opened in MXP "temp secure" mode (`ESC[4z`):
//! `ESC[4z<SEND HREF="look">Look ESC[4z</SEND>` and
//! `ESC[4z<A HREF="https://…">text ESC[4z</A>`. Those are the only tags
//! an MXP client is sent: everywhere else, link text included, `&`, `<` and
//! `>` become `&amp;`, `&lt;` and `&gt;` (as Evennia's `mxp_parse` escapes
//! the text before adding its tags), so `create <name>` is shown and not
//! taken for a tag; the `HREF` value has `"` escaped too. Without MXP, text
//! is left as it is, a command link shows its text and a URL link shows its
//! URL, so the player can still copy it.
//!
//! # Raw escape sequences in the input
//!
//! Raw SGR sequences (`ESC[…m`) pass through to colour clients, as in
//! Evennia; every other escape sequence is dropped so that text can neither
//! move the cursor nor switch an MXP client into secure mode. Plain output
//! drops raw SGR sequences too, and so never contains `ESC` unless MXP
//! links were asked for.
//!
//! # Screenreaders
//!
//! [`RenderOptions::screenreader`] renders plain text without MXP links
//! (still escaped for an MXP client), then
//! removes the decoration Evennia's default `SCREENREADER_REGEX_STRIP`
//! removes: runs of two or more `-`, `=` or `~`, a `+` followed by dashes,
//! `+~`, and a `+` at the end of a line. Like Evennia's single regex pass,
//! text that only becomes decoration after a removal is kept.
//!
//! # Example
//!
//! ```
//! use portal::markup::{render, strip, ColorDepth, RenderOptions};
//!
//! let ansi16 = RenderOptions { color: ColorDepth::Ansi16, mxp: false, screenreader: false };
//! assert_eq!(render("|rHi|n", &ansi16), "\x1b[1m\x1b[31mHi\x1b[0m");
//! assert_eq!(render("|500Hi", &ansi16), "\x1b[1m\x1b[31mHi\x1b[0m");
//! assert_eq!(strip("|rHi|n || bye"), "Hi | bye");
//! ```

pub mod html;

pub use html::{escape_html, render_html, HtmlOptions};

/// How many colours the client can show.
///
/// Each level includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColorDepth {
    /// No colour at all: colour and style codes are removed.
    None,
    /// The eight ANSI colours, bright and dark.
    Ansi16,
    /// The xterm 256-colour palette.
    Xterm256,
    /// 24-bit colour.
    Truecolor,
}

/// What one client can show, as negotiated for its session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RenderOptions {
    /// The colour depth to render for.
    pub color: ColorDepth,
    /// The client speaks MXP: `|lc`/`|lu` links become MXP tags and all
    /// other text has `&`, `<`, `>` as entities.
    pub mxp: bool,
    /// Plain text without decoration; overrides `color` and MXP links
    /// (text is still escaped for an MXP client).
    pub screenreader: bool,
}

/// Renders Evennia markup for a client with the given abilities.
///
/// Never panics; any input renders to something.
pub fn render(text: &str, options: &RenderOptions) -> String {
    let (color, links) = if options.screenreader {
        (ColorDepth::None, false)
    } else {
        (options.color, options.mxp)
    };
    let tokens = lex(text);
    let mut out = Output {
        text: String::with_capacity(text.len() + 16),
        color,
        dirty: false,
        mxp: options.mxp,
        links,
    };
    out.render_tokens(&tokens);
    if out.dirty {
        out.text.push_str(RESET);
    }
    if options.screenreader {
        remove_decoration(&out.text)
    } else {
        out.text
    }
}

/// Removes all markup, leaving the text a player would read.
///
/// `||` becomes `|`, `|/` a line break; a command link keeps its text and a
/// URL link its URL. Raw escape sequences are removed too.
pub fn strip(text: &str) -> String {
    let plain = RenderOptions {
        color: ColorDepth::None,
        mxp: false,
        screenreader: false,
    };
    render(text, &plain)
}

/// Escapes text so that it renders verbatim: every `|` becomes `||`.
///
/// Use it for text a player typed before putting it into markup.
pub fn escape(text: &str) -> String {
    text.replace('|', "||")
}

const RESET: &str = "\x1b[0m";
const HILITE: &str = "\x1b[1m";
const UNHILITE: &str = "\x1b[22m";
/// Evennia's MXP "temp secure" mode: the next tag is secure.
const MXP_TEMP_SECURE: &str = "\x1b[4z";

/// The eight ANSI hues, numbered as in SGR `30 + n` / `40 + n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hue {
    Black = 0,
    Red = 1,
    Green = 2,
    Yellow = 3,
    Blue = 4,
    Magenta = 5,
    Cyan = 6,
    White = 7,
}

impl Hue {
    /// The hue a markup letter names, in either case.
    fn from_letter(letter: u8) -> Option<Hue> {
        Some(match letter.to_ascii_lowercase() {
            b'x' => Hue::Black,
            b'r' => Hue::Red,
            b'g' => Hue::Green,
            b'y' => Hue::Yellow,
            b'b' => Hue::Blue,
            b'm' => Hue::Magenta,
            b'c' => Hue::Cyan,
            b'w' => Hue::White,
            _ => return None,
        })
    }

    /// The xterm cube colour Evennia sends for the bright background `|[letter`.
    fn bright_background(self) -> [u8; 3] {
        match self {
            Hue::Red => [5, 0, 0],
            Hue::Green => [0, 5, 0],
            Hue::Yellow => [5, 5, 0],
            Hue::Blue => [0, 0, 5],
            Hue::Magenta => [5, 0, 5],
            Hue::Cyan => [0, 5, 5],
            Hue::White => [5, 5, 5],
            Hue::Black => [2, 2, 2],
        }
    }
}

/// Foreground or background.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layer {
    Fg,
    Bg,
}

impl Layer {
    /// The first SGR digit for extended colours: `38;…` or `48;…`.
    fn extended_prefix(self) -> u8 {
        match self {
            Layer::Fg => 3,
            Layer::Bg => 4,
        }
    }
}

/// An xterm-256 colour as the markup names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Xterm {
    /// The 6×6×6 cube, each channel 0–5.
    Cube([u8; 3]),
    /// The greyscale letters `a`–`z` as 0–25.
    Grey(u8),
}

impl Xterm {
    /// The palette index Evennia sends for this colour.
    fn index(self) -> u8 {
        match self {
            Xterm::Cube([r, g, b]) => 16 + 36 * r + 6 * g + b,
            // `a` and `z` are the cube's black and white; `b`..`y` are the
            // 24-step greyscale ramp 232..=255.
            Xterm::Grey(0) => 16,
            Xterm::Grey(25) => 231,
            Xterm::Grey(step) => 231 + step,
        }
    }

    /// The channels on the 0–5 scale the 16-colour fallback works on.
    fn channels(self) -> [u8; 3] {
        match self {
            Xterm::Cube(rgb) => rgb,
            Xterm::Grey(step) => {
                // round(step / 5); a step is never exactly halfway.
                let grey = (step + 2) / 5;
                [grey, grey, grey]
            }
        }
    }
}

/// One colour or style code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Code {
    /// `|n`.
    Reset,
    /// A style, sent the same way at every colour depth.
    Style(Style),
    /// `|r`-style bright foreground: hilite and the hue.
    Bright(Hue),
    /// `|R`-style dark foreground: unhilite and the hue.
    Dark(Hue),
    /// `|!R`-style foreground that keeps the current hilite.
    Plain(Hue),
    /// `|[R`-style dark background.
    Background(Hue),
    /// `|[r`-style bright background.
    BrightBackground(Hue),
    /// An xterm-256 colour.
    Xterm(Layer, Xterm),
    /// A 24-bit colour.
    Hex(Layer, [u8; 3]),
}

/// The style codes: `|h`/`|H`, `|u`/`|U`, `|i`/`|I`, `|s`/`|S`, `|*`, `|^`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Style {
    /// Hilite on or off.
    Hilite(bool),
    /// Underline on or off.
    Underline(bool),
    /// Italic on or off.
    Italic(bool),
    /// Strikethrough on or off.
    Strike(bool),
    /// Inverse (only `|n` ends it).
    Inverse,
    /// Blink (only `|n` ends it).
    Blink,
}

impl Style {
    /// The SGR sequence for this style.
    fn sgr(self) -> &'static str {
        match self {
            Style::Hilite(true) => HILITE,
            Style::Hilite(false) => UNHILITE,
            Style::Underline(true) => "\x1b[4m",
            Style::Underline(false) => "\x1b[24m",
            Style::Italic(true) => "\x1b[3m",
            Style::Italic(false) => "\x1b[23m",
            Style::Strike(true) => "\x1b[9m",
            Style::Strike(false) => "\x1b[29m",
            Style::Inverse => "\x1b[7m",
            Style::Blink => "\x1b[5m",
        }
    }
}

/// The two kinds of MXP link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LinkKind {
    /// `|lc`: clicking sends a command.
    Command,
    /// `|lu`: clicking opens a URL.
    Url,
}

/// One piece of lexed markup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token<'a> {
    /// Text shown as is (including the `|` of `||` and unknown codes).
    Text(&'a str),
    /// Text a layout code stands for (`|/`, `|-`, `|_`, `|>`).
    Layout(&'static str),
    /// A colour or style code.
    Code(Code),
    /// A raw `ESC[…m` sequence found in the input.
    RawSgr(&'a str),
    /// `|lc` or `|lu`.
    LinkOpen(LinkKind),
    /// `|lt`.
    LinkText,
    /// `|le`.
    LinkClose,
}

impl Token<'_> {
    /// The markup a link token was written as, shown when it pairs with nothing.
    fn link_literal(self) -> &'static str {
        match self {
            Token::LinkOpen(LinkKind::Command) => "|lc",
            Token::LinkOpen(LinkKind::Url) => "|lu",
            Token::LinkText => "|lt",
            Token::LinkClose => "|le",
            _ => "",
        }
    }
}

/// Splits markup into tokens.
///
/// Every code is ASCII, so each slice boundary falls on a `|`, an `ESC` or
/// just after an ASCII byte: always a UTF-8 character boundary.
fn lex(text: &str) -> Vec<Token<'_>> {
    let bytes = text.as_bytes();
    let mut tokens = Vec::new();
    let mut start = 0;
    let mut at = 0;
    while at < bytes.len() {
        let (token, used) = match bytes[at] {
            b'|' => lex_code(&bytes[at + 1..]),
            0x1b => lex_escape(text, at),
            _ => {
                at += 1;
                continue;
            }
        };
        if start < at {
            tokens.push(Token::Text(&text[start..at]));
        }
        if let Some(token) = token {
            tokens.push(token);
        }
        at += used;
        start = at;
    }
    if start < bytes.len() {
        tokens.push(Token::Text(&text[start..]));
    }
    tokens
}

/// Lexes the code after a `|`; returns the token and the bytes used,
/// counting the `|`.
fn lex_code(after: &[u8]) -> (Option<Token<'static>>, usize) {
    let literal_bar = (Some(Token::Text("|")), 1);
    let Some(&first) = after.first() else {
        return literal_bar;
    };
    let rest = &after[1..];
    let (token, used) = match first {
        b'|' => (Token::Text("|"), 1),
        b'#' => match lex_hex(rest) {
            Some((rgb, used)) => (Token::Code(Code::Hex(Layer::Fg, rgb)), 1 + used),
            None => return literal_bar,
        },
        b'[' => match lex_background(rest) {
            Some((code, used)) => (Token::Code(code), 1 + used),
            None => return literal_bar,
        },
        b'0'..=b'5' => match lex_cube(after) {
            Some(rgb) => (Token::Code(Code::Xterm(Layer::Fg, Xterm::Cube(rgb))), 3),
            None => return literal_bar,
        },
        b'=' => match lex_grey(rest) {
            Some(step) => (Token::Code(Code::Xterm(Layer::Fg, Xterm::Grey(step))), 2),
            None => return literal_bar,
        },
        b'!' => match rest.first().copied().filter(u8::is_ascii_uppercase) {
            Some(letter) => match Hue::from_letter(letter) {
                Some(hue) => (Token::Code(Code::Plain(hue)), 2),
                None => return literal_bar,
            },
            None => return literal_bar,
        },
        b'l' => match rest.first() {
            Some(b'c') => (Token::LinkOpen(LinkKind::Command), 2),
            Some(b'u') => (Token::LinkOpen(LinkKind::Url), 2),
            Some(b't') => (Token::LinkText, 2),
            Some(b'e') => (Token::LinkClose, 2),
            _ => return literal_bar,
        },
        letter => match lex_letter(letter) {
            Some(token) => (token, 1),
            None => return literal_bar,
        },
    };
    (Some(token), 1 + used)
}

/// The one-character codes.
fn lex_letter(letter: u8) -> Option<Token<'static>> {
    let style = |style| Some(Token::Code(Code::Style(style)));
    match letter {
        b'n' => Some(Token::Code(Code::Reset)),
        b'/' => Some(Token::Layout("\r\n")),
        b'-' => Some(Token::Layout("\t")),
        b'_' => Some(Token::Layout(" ")),
        b'>' => Some(Token::Layout("    ")),
        b'*' => style(Style::Inverse),
        b'^' => style(Style::Blink),
        b'u' => style(Style::Underline(true)),
        b'U' => style(Style::Underline(false)),
        b'i' => style(Style::Italic(true)),
        b'I' => style(Style::Italic(false)),
        b's' => style(Style::Strike(true)),
        b'S' => style(Style::Strike(false)),
        b'h' => style(Style::Hilite(true)),
        b'H' => style(Style::Hilite(false)),
        _ => {
            let hue = Hue::from_letter(letter)?;
            let code = if letter.is_ascii_lowercase() {
                Code::Bright(hue)
            } else {
                Code::Dark(hue)
            };
            Some(Token::Code(code))
        }
    }
}

/// Lexes what follows `|[`; the bytes used exclude the `|[`.
fn lex_background(rest: &[u8]) -> Option<(Code, usize)> {
    let &first = rest.first()?;
    match first {
        b'#' => lex_hex(&rest[1..]).map(|(rgb, used)| (Code::Hex(Layer::Bg, rgb), 1 + used)),
        b'0'..=b'5' => lex_cube(rest).map(|rgb| (Code::Xterm(Layer::Bg, Xterm::Cube(rgb)), 3)),
        b'=' => lex_grey(&rest[1..]).map(|step| (Code::Xterm(Layer::Bg, Xterm::Grey(step)), 2)),
        letter => {
            let hue = Hue::from_letter(letter)?;
            let code = if letter.is_ascii_lowercase() {
                Code::BrightBackground(hue)
            } else {
                Code::Background(hue)
            };
            Some((code, 1))
        }
    }
}

/// Three digits 0–5.
fn lex_cube(digits: &[u8]) -> Option<[u8; 3]> {
    let digit = |i: usize| match digits.get(i) {
        Some(&d @ b'0'..=b'5') => Some(d - b'0'),
        _ => None,
    };
    Some([digit(0)?, digit(1)?, digit(2)?])
}

/// A greyscale letter `a`–`z` as 0–25.
fn lex_grey(rest: &[u8]) -> Option<u8> {
    match rest.first() {
        Some(&letter @ b'a'..=b'z') => Some(letter - b'a'),
        _ => None,
    }
}

/// Six hex digits, or else three (each doubled: `f80` is `ff8800`).
fn lex_hex(rest: &[u8]) -> Option<([u8; 3], usize)> {
    let nibble = |i: usize| {
        rest.get(i)
            .and_then(|&d| (d as char).to_digit(16))
            .map(|n| n as u8)
    };
    let long: Option<Vec<u8>> = (0..6).map(nibble).collect();
    if let Some(n) = long {
        return Some(([n[0] << 4 | n[1], n[2] << 4 | n[3], n[4] << 4 | n[5]], 6));
    }
    let short: Option<Vec<u8>> = (0..3).map(nibble).collect();
    short.map(|n| ([n[0] * 17, n[1] * 17, n[2] * 17], 3))
}

/// Lexes a raw escape at `at`: a complete `ESC[…m` is kept as a token, any
/// other complete control sequence is dropped whole, and an `ESC` that
/// starts no complete sequence is dropped alone.
fn lex_escape(text: &str, at: usize) -> (Option<Token<'_>>, usize) {
    let bytes = text.as_bytes();
    if bytes.get(at + 1) != Some(&b'[') {
        return (None, 1);
    }
    let mut end = at + 2;
    while matches!(bytes.get(end), Some(0x30..=0x3f)) {
        end += 1;
    }
    let params_end = end;
    while matches!(bytes.get(end), Some(0x20..=0x2f)) {
        end += 1;
    }
    match bytes.get(end) {
        Some(b'm')
            if params_end == end
                && bytes[at + 2..end]
                    .iter()
                    .all(|&b| b.is_ascii_digit() || b == b';') =>
        {
            (Some(Token::RawSgr(&text[at..=end])), end + 1 - at)
        }
        Some(0x40..=0x7e) => (None, end + 1 - at),
        _ => (None, 1),
    }
}

/// The output being built, and whether a colour is still in effect.
struct Output {
    text: String,
    color: ColorDepth,
    /// A colour or style was sent and no reset since.
    dirty: bool,
    /// Text is for an MXP client: `&`, `<`, `>` become entities.
    mxp: bool,
    /// Links become MXP tags (MXP, and not for a screenreader).
    links: bool,
}

impl Output {
    /// Renders a token list, pairing link tokens into links.
    fn render_tokens(&mut self, tokens: &[Token<'_>]) {
        let mut at = 0;
        while at < tokens.len() {
            match tokens[at] {
                Token::LinkOpen(kind) => match find_link(&tokens[at + 1..]) {
                    Some((target, label, used)) => {
                        self.render_link(kind, target, label);
                        at += 1 + used;
                        continue;
                    }
                    None => self.push_text(tokens[at].link_literal()),
                },
                token => self.render_token(token),
            }
            at += 1;
        }
    }

    /// Renders a token outside any link pairing.
    fn render_token(&mut self, token: Token<'_>) {
        match token {
            Token::Text(text) => self.push_text(text),
            Token::Layout(text) => self.push_text(text),
            Token::Code(code) => self.render_code(code),
            Token::RawSgr(sgr) => {
                if self.color != ColorDepth::None {
                    self.text.push_str(sgr);
                    self.dirty = !matches!(sgr, "\x1b[m" | "\x1b[0m");
                }
            }
            link => self.push_text(link.link_literal()),
        }
    }

    /// Appends text the player reads, escaped for an MXP client so that
    /// only our own tags are tags.
    fn push_text(&mut self, text: &str) {
        if self.mxp {
            push_mxp_escaped(&mut self.text, text);
        } else {
            self.text.push_str(text);
        }
    }

    /// Renders a link: MXP tags around the label, or else what Evennia
    /// shows without MXP (a command link's label, a URL link's URL).
    fn render_link(&mut self, kind: LinkKind, target: &[Token<'_>], label: &[Token<'_>]) {
        if !self.links {
            match kind {
                LinkKind::Command => self.render_plain_tokens(label),
                LinkKind::Url => self.render_plain_tokens(target),
            }
            return;
        }
        let (open, close) = match kind {
            LinkKind::Command => ("<SEND HREF=\"", "</SEND>"),
            LinkKind::Url => ("<A HREF=\"", "</A>"),
        };
        let href = plain_text(target);
        self.text.push_str(MXP_TEMP_SECURE);
        self.text.push_str(open);
        push_escaped_attribute(&mut self.text, &href);
        self.text.push_str("\">");
        self.render_plain_tokens(label);
        self.text.push_str(MXP_TEMP_SECURE);
        self.text.push_str(close);
    }

    /// Renders tokens inside a link, where link tokens are literal text.
    fn render_plain_tokens(&mut self, tokens: &[Token<'_>]) {
        for &token in tokens {
            self.render_token(token);
        }
    }

    /// Sends the SGR sequence for a code at this output's colour depth.
    fn render_code(&mut self, code: Code) {
        if self.color == ColorDepth::None {
            return;
        }
        if code == Code::Reset {
            self.text.push_str(RESET);
            self.dirty = false;
            return;
        }
        self.dirty = true;
        match code {
            Code::Reset => {}
            Code::Style(style) => self.text.push_str(style.sgr()),
            Code::Bright(hue) => self.push_foreground(HILITE, hue),
            Code::Dark(hue) => self.push_foreground(UNHILITE, hue),
            Code::Plain(hue) => self.push_foreground("", hue),
            Code::Background(hue) => self.push_sgr(40 + hue as u8),
            Code::BrightBackground(hue) => {
                self.push_xterm(Layer::Bg, Xterm::Cube(hue.bright_background()))
            }
            Code::Xterm(layer, colour) => self.push_xterm(layer, colour),
            Code::Hex(layer, rgb) => self.push_hex(layer, rgb),
        }
    }

    fn push_foreground(&mut self, prefix: &str, hue: Hue) {
        self.text.push_str(prefix);
        self.push_sgr(30 + hue as u8);
    }

    fn push_sgr(&mut self, n: u8) {
        self.text.push_str(&format!("\x1b[{n}m"));
    }

    /// An xterm colour: the palette index, or Evennia's 16-colour fallback.
    fn push_xterm(&mut self, layer: Layer, colour: Xterm) {
        if self.color == ColorDepth::Ansi16 {
            let (hue, bright) = nearest_ansi(colour.channels());
            match layer {
                Layer::Bg => self.push_sgr(40 + hue as u8),
                Layer::Fg => self.push_foreground(if bright { HILITE } else { RESET }, hue),
            }
        } else {
            let prefix = layer.extended_prefix();
            let index = colour.index();
            self.text.push_str(&format!("\x1b[{prefix}8;5;{index}m"));
        }
    }

    /// A 24-bit colour: sent as is to truecolor clients, else (and always
    /// for pure greys, as Evennia does) as the xterm colour it maps to.
    fn push_hex(&mut self, layer: Layer, rgb: [u8; 3]) {
        let [r, g, b] = rgb;
        if r == g && g == b {
            self.push_xterm(layer, Xterm::Grey(grey_step(r)));
        } else if self.color == ColorDepth::Truecolor {
            let prefix = layer.extended_prefix();
            self.text
                .push_str(&format!("\x1b[{prefix}8;2;{r};{g};{b}m"));
        } else {
            self.push_xterm(layer, Xterm::Cube(rgb.map(cube_step)));
        }
    }
}

/// After a `|lc`/`|lu`, finds `|lt` and then `|le`: returns the target and
/// label tokens and how many tokens the link used after its opening.
fn find_link<'t, 'a>(after: &'t [Token<'a>]) -> Option<(&'t [Token<'a>], &'t [Token<'a>], usize)> {
    let mid = after.iter().position(|t| *t == Token::LinkText)?;
    let close = mid
        + 1
        + after[mid + 1..]
            .iter()
            .position(|t| *t == Token::LinkClose)?;
    Some((&after[..mid], &after[mid + 1..close], close + 1))
}

/// The visible text of tokens, with every code removed.
fn plain_text(tokens: &[Token<'_>]) -> String {
    let mut out = Output {
        text: String::new(),
        color: ColorDepth::None,
        dirty: false,
        mxp: false,
        links: false,
    };
    out.render_plain_tokens(tokens);
    out.text
}

/// Escapes text for an MXP client: `&`, `<` and `>` become entities, as
/// Evennia's `mxp_parse` does before it adds its own tags.
///
/// ```
/// assert_eq!(portal::markup::escape_mxp("create <name> & go"), "create &lt;name&gt; &amp; go");
/// ```
pub fn escape_mxp(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    push_mxp_escaped(&mut out, text);
    out
}

/// Appends `text` with `&`, `<` and `>` as MXP entities.
fn push_mxp_escaped(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
}

/// Appends text for a double-quoted MXP attribute value.
fn push_escaped_attribute(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
}

/// `num / den` rounded half to even, as Python's `round` does.
fn round_half_even(num: u32, den: u32) -> u32 {
    let (quotient, remainder) = (num / den, num % den);
    match (2 * remainder).cmp(&den) {
        std::cmp::Ordering::Less => quotient,
        std::cmp::Ordering::Greater => quotient + 1,
        std::cmp::Ordering::Equal => quotient + quotient % 2,
    }
}

/// Evennia's greyscale letter (0–25) for a grey channel value.
fn grey_step(value: u8) -> u8 {
    // At most round(247 / 10) = 25.
    round_half_even(u32::from(value).saturating_sub(8), 10) as u8
}

/// Evennia's cube step (0–5) for a channel value.
fn cube_step(value: u8) -> u8 {
    // At most round(210 / 40) = 5.
    round_half_even(u32::from(value).saturating_sub(45), 40) as u8
}

/// Evennia's 16-colour stand-in for a 0–5 cube colour: a hue, bright or
/// dark.
///
/// Near-greys go to black, dark grey, light grey or white; other colours are
/// halved to 0–3 per channel and matched to the hue whose pattern they fit.
fn nearest_ansi(rgb: [u8; 3]) -> (Hue, bool) {
    let [r, g, b] = rgb;
    let (low, high) = (r.min(g).min(b), r.max(g).max(b));
    if high - low <= 1 {
        let all_in = |a: u8, z: u8| rgb.iter().all(|&c| c == a || c == z);
        if rgb == [0, 0, 0] {
            return (Hue::Black, false);
        } else if all_in(1, 2) {
            return (Hue::Black, true);
        } else if all_in(2, 3) || all_in(3, 4) {
            return (Hue::White, false);
        } else if all_in(4, 5) {
            return (Hue::White, true);
        }
    }
    let [hr, hg, hb] = rgb.map(|c| c.div_ceil(2));
    let pattern = (hr, hg, hb);
    match pattern {
        (2 | 3, 0 | 1, 0 | 1) => (Hue::Red, true),
        (1, 0, 0) => (Hue::Red, false),
        (0 | 1, 2 | 3, 0 | 1) => (Hue::Green, true),
        (0 | 1, 1, 0) if g > r => (Hue::Green, false),
        (0 | 1, 0 | 1, 2 | 3) => (Hue::Blue, true),
        (0, 0, 1) => (Hue::Blue, false),
        (0..=2, 2 | 3, 2 | 3) if r == low => (Hue::Cyan, true),
        (0, 1 | 2, 1 | 2) => (Hue::Cyan, false),
        (2 | 3, 2 | 3, 0..=2) if b == low => (Hue::Yellow, true),
        (1 | 2, 1 | 2, 0 | 1) => (Hue::Yellow, false),
        (2 | 3, 0..=2, 2 | 3) if g == low => (Hue::Magenta, true),
        (1 | 2, 0, 1 | 2) => (Hue::Magenta, false),
        // Every cube colour matches a pattern above (the test
        // `every_cube_colour_falls_back_like_evennia` checks all 216); this
        // arm only keeps the match total.
        _ => (Hue::White, false),
    }
}

/// Removes the decoration Evennia's default screenreader pattern removes:
/// `+-…`, `+~`, a `+` ending a line, and runs of two or more `-`, `~` or `=`.
fn remove_decoration(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    let run_end = |from: usize, c: char| {
        let mut end = from;
        while chars.get(end) == Some(&c) {
            end += 1;
        }
        end
    };
    while at < chars.len() {
        let next = chars.get(at + 1).copied();
        let skip_to = match (chars[at], next) {
            ('+', Some('-')) => Some(run_end(at + 1, '-')),
            ('+', None | Some('\n' | '\r')) => Some(at + 1),
            ('+', Some('~')) => Some(at + 2),
            (c @ ('-' | '~' | '='), Some(n)) if n == c => Some(run_end(at, c)),
            _ => None,
        };
        match skip_to {
            Some(end) => at = end,
            None => {
                out.push(chars[at]);
                at += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(color: ColorDepth) -> RenderOptions {
        RenderOptions {
            color,
            mxp: false,
            screenreader: false,
        }
    }

    fn none(text: &str) -> String {
        render(text, &options(ColorDepth::None))
    }
    fn ansi16(text: &str) -> String {
        render(text, &options(ColorDepth::Ansi16))
    }
    fn xterm(text: &str) -> String {
        render(text, &options(ColorDepth::Xterm256))
    }
    fn truecolor(text: &str) -> String {
        render(text, &options(ColorDepth::Truecolor))
    }
    fn mxp(text: &str) -> String {
        let options = RenderOptions {
            mxp: true,
            ..options(ColorDepth::Ansi16)
        };
        render(text, &options)
    }
    fn screenreader(text: &str) -> String {
        let options = RenderOptions {
            screenreader: true,
            ..options(ColorDepth::Truecolor)
        };
        render(text, &options)
    }

    #[test]
    fn bright_colours_are_hilite_plus_hue() {
        for (letter, n) in [
            ('x', 30),
            ('r', 31),
            ('g', 32),
            ('y', 33),
            ('b', 34),
            ('m', 35),
            ('c', 36),
            ('w', 37),
        ] {
            let expected = format!("\x1b[1m\x1b[{n}mA\x1b[0m");
            for render in [ansi16, xterm, truecolor] {
                assert_eq!(render(&format!("|{letter}A")), expected, "|{letter}");
            }
            assert_eq!(none(&format!("|{letter}A")), "A");
        }
    }

    #[test]
    fn dark_colours_are_unhilite_plus_hue() {
        for (letter, n) in [
            ('X', 30),
            ('R', 31),
            ('G', 32),
            ('Y', 33),
            ('B', 34),
            ('M', 35),
            ('C', 36),
            ('W', 37),
        ] {
            let expected = format!("\x1b[22m\x1b[{n}mA\x1b[0m");
            assert_eq!(ansi16(&format!("|{letter}A")), expected, "|{letter}");
            assert_eq!(none(&format!("|{letter}A")), "A");
        }
    }

    #[test]
    fn bang_colours_keep_the_hilite() {
        assert_eq!(ansi16("|h|!RA"), "\x1b[1m\x1b[31mA\x1b[0m");
        assert_eq!(ansi16("|!XA"), "\x1b[30mA\x1b[0m");
        assert_eq!(ansi16("|!rA"), "|!rA", "only capitals follow |!");
    }

    #[test]
    fn dark_backgrounds_are_plain_ansi_backgrounds() {
        assert_eq!(ansi16("|[RA"), "\x1b[41mA\x1b[0m");
        assert_eq!(xterm("|[XA"), "\x1b[40mA\x1b[0m");
        assert_eq!(none("|[WA"), "A");
    }

    #[test]
    fn bright_backgrounds_are_xterm_colours_that_fall_back_to_dark_ones() {
        assert_eq!(xterm("|[rA"), "\x1b[48;5;196mA\x1b[0m");
        assert_eq!(ansi16("|[rA"), "\x1b[41mA\x1b[0m");
        assert_eq!(xterm("|[xA"), "\x1b[48;5;102mA\x1b[0m");
        assert_eq!(ansi16("|[xA"), "\x1b[40mA\x1b[0m");
        assert_eq!(ansi16("|[wA"), "\x1b[47mA\x1b[0m");
    }

    #[test]
    fn styles_have_their_own_sgr_codes() {
        for (code, sgr) in [
            ("|u", "\x1b[4m"),
            ("|U", "\x1b[24m"),
            ("|i", "\x1b[3m"),
            ("|I", "\x1b[23m"),
            ("|s", "\x1b[9m"),
            ("|S", "\x1b[29m"),
            ("|*", "\x1b[7m"),
            ("|^", "\x1b[5m"),
            ("|h", "\x1b[1m"),
            ("|H", "\x1b[22m"),
        ] {
            assert_eq!(
                ansi16(&format!("{code}A")),
                format!("{sgr}A\x1b[0m"),
                "{code}"
            );
            assert_eq!(none(&format!("{code}A")), "A", "{code}");
        }
    }

    #[test]
    fn layout_codes_are_text_at_every_depth() {
        for render in [none, ansi16, xterm, truecolor] {
            assert_eq!(render("a|/b|-c|_d|>e"), "a\r\nb\tc d    e");
        }
    }

    #[test]
    fn reset_is_sent_and_not_doubled_at_the_end() {
        assert_eq!(ansi16("|rHi|n"), "\x1b[1m\x1b[31mHi\x1b[0m");
        assert_eq!(ansi16("|rHi|n bye"), "\x1b[1m\x1b[31mHi\x1b[0m bye");
        assert_eq!(ansi16("Hi|n"), "Hi\x1b[0m");
        assert_eq!(none("|rHi|n"), "Hi");
    }

    #[test]
    fn colour_left_open_is_reset_at_the_end() {
        assert_eq!(ansi16("|rred"), "\x1b[1m\x1b[31mred\x1b[0m");
        assert_eq!(ansi16("|n|uunder"), "\x1b[0m\x1b[4munder\x1b[0m");
    }

    #[test]
    fn plain_text_gets_no_reset() {
        assert_eq!(ansi16("just text"), "just text");
        assert_eq!(truecolor(""), "");
    }

    #[test]
    fn double_bar_is_a_literal_bar() {
        for render in [none, ansi16, xterm, truecolor] {
            assert_eq!(render("a||rb"), "a|rb");
            assert_eq!(render("||||"), "||");
        }
        assert_eq!(ansi16("|||rb"), "|\x1b[1m\x1b[31mb\x1b[0m");
    }

    #[test]
    fn unknown_codes_and_a_trailing_bar_stay_literal() {
        for render in [none, ansi16, xterm] {
            assert_eq!(render("|q|z|9|[q|=A|#xyz|!"), "|q|z|9|[q|=A|#xyz|!");
            assert_eq!(render("end|"), "end|");
            assert_eq!(render("|"), "|");
        }
    }

    #[test]
    fn adjacent_and_nested_codes_are_sent_in_order() {
        assert_eq!(
            ansi16("|[R|gA|uB|nC"),
            "\x1b[41m\x1b[1m\x1b[32mA\x1b[4mB\x1b[0mC"
        );
        assert_eq!(xterm("|500|[005X"), "\x1b[38;5;196m\x1b[48;5;21mX\x1b[0m");
    }

    #[test]
    fn unicode_text_around_codes_is_kept() {
        assert_eq!(ansi16("é|r日本|n語|"), "é\x1b[1m\x1b[31m日本\x1b[0m語|");
        assert_eq!(none("🦀|[#ff0000🦀||"), "🦀🦀|");
    }

    #[test]
    fn xterm_cube_colours_use_the_palette_index() {
        assert_eq!(xterm("|000A"), "\x1b[38;5;16mA\x1b[0m");
        assert_eq!(xterm("|555A"), "\x1b[38;5;231mA\x1b[0m");
        assert_eq!(xterm("|425A"), "\x1b[38;5;177mA\x1b[0m");
        assert_eq!(truecolor("|[431A"), "\x1b[48;5;179mA\x1b[0m");
        assert_eq!(none("|[431A|123"), "A");
    }

    #[test]
    fn greyscale_letters_use_the_grey_ramp_and_cube_ends() {
        assert_eq!(xterm("|=aA"), "\x1b[38;5;16mA\x1b[0m");
        assert_eq!(xterm("|=bA"), "\x1b[38;5;232mA\x1b[0m");
        assert_eq!(xterm("|=yA"), "\x1b[38;5;255mA\x1b[0m");
        assert_eq!(xterm("|=zA"), "\x1b[38;5;231mA\x1b[0m");
        assert_eq!(xterm("|[=rA"), "\x1b[48;5;248mA\x1b[0m");
        assert_eq!(none("|[=rA"), "A");
    }

    #[test]
    fn greyscale_falls_back_to_black_grey_and_white() {
        assert_eq!(ansi16("|=cA"), "\x1b[0m\x1b[30mA\x1b[0m");
        assert_eq!(ansi16("|=dA"), "\x1b[1m\x1b[30mA\x1b[0m");
        assert_eq!(ansi16("|=nA"), "\x1b[0m\x1b[37mA\x1b[0m");
        assert_eq!(ansi16("|=xA"), "\x1b[1m\x1b[37mA\x1b[0m");
        assert_eq!(ansi16("|[=zA"), "\x1b[47mA\x1b[0m");
        assert_eq!(ansi16("|[=aA"), "\x1b[40mA\x1b[0m");
    }

    /// Evennia's 16-colour choice for every cube colour `|rgb`, in index
    /// order (`36r + 6g + b`): lowercase is bright (`ESC[1m`), uppercase
    /// dark (`ESC[0m`), and the letter is the hue (`x` black … `w` white).
    /// Taken from running Evennia's `sub_xterm256` over all 216.
    const EVENNIA_CUBE_FALLBACK: &str = concat!(
        "XBBbbbGCCbbbGCCbbbgggcccgggcccgggcccRMMbbbYxxbbbGxxbbbgggcccgggcccgggccc",
        "RMMbbbYxxbbbYxxWbbggWWccgggcccgggcccrrrmmmrrrmmmrrWWmmyyWWWcyyyWWcyyyccc",
        "rrrmmmrrrmmmrrrmmmyyyWWmyyyWWwyyyywwrrrmmmrrrmmmrrrmmmyyyymmyyyywwyyyyww",
    );

    #[test]
    fn every_cube_colour_falls_back_like_evennia() {
        let mut index = 0;
        for r in 0..6u8 {
            for g in 0..6u8 {
                for b in 0..6u8 {
                    let letter = EVENNIA_CUBE_FALLBACK.as_bytes()[index];
                    let hue = Hue::from_letter(letter).unwrap();
                    let bright = letter.is_ascii_lowercase();
                    assert_eq!(nearest_ansi([r, g, b]), (hue, bright), "|{r}{g}{b}");

                    let fg = ansi16(&format!("|{r}{g}{b}A"));
                    let prefix = if bright { "\x1b[1m" } else { "\x1b[0m" };
                    let n = hue as u8;
                    assert_eq!(fg, format!("{prefix}\x1b[3{n}mA\x1b[0m"));
                    let bg = ansi16(&format!("|[{r}{g}{b}A"));
                    assert_eq!(bg, format!("\x1b[4{n}mA\x1b[0m"));
                    index += 1;
                }
            }
        }
    }

    #[test]
    fn hex_colours_are_sent_as_is_to_truecolor_clients() {
        assert_eq!(truecolor("|#ff8800A"), "\x1b[38;2;255;136;0mA\x1b[0m");
        assert_eq!(truecolor("|[#FF8800A"), "\x1b[48;2;255;136;0mA\x1b[0m");
        assert_eq!(truecolor("|#f80A"), "\x1b[38;2;255;136;0mA\x1b[0m");
        assert_eq!(none("|#ff8800A|[#f80"), "A");
    }

    #[test]
    fn hex_prefers_six_digits_then_three() {
        assert_eq!(truecolor("|#ff88A"), "\x1b[38;2;255;255;136m8A\x1b[0m");
        assert_eq!(truecolor("|#12345g"), "\x1b[38;2;17;34;51m45g\x1b[0m");
    }

    #[test]
    fn hex_falls_back_to_the_xterm_cube_by_evennias_rounding() {
        // ff → 5, 88 → round(91/40) = 2, 00 → 0: |520 = 16 + 180 + 12.
        assert_eq!(xterm("|#ff8800A"), "\x1b[38;5;208mA\x1b[0m");
        assert_eq!(xterm("|[#ff8800A"), "\x1b[48;5;208mA\x1b[0m");
        // 0x41 = 65: (65 - 45) / 40 = 0.5 rounds half to even, to 0.
        assert_eq!(xterm("|#4100ffA"), "\x1b[38;5;21mA\x1b[0m");
        // 0x69 = 105: 1.5 rounds to 2.
        assert_eq!(xterm("|#6900ffA"), "\x1b[38;5;93mA\x1b[0m");
    }

    #[test]
    fn hex_falls_back_to_ansi16_through_the_cube() {
        // Orange is |520, which Evennia's table calls bright red.
        assert_eq!(ansi16("|#ff8800A"), "\x1b[1m\x1b[31mA\x1b[0m");
        assert_eq!(ansi16("|#ff0000A"), "\x1b[1m\x1b[31mA\x1b[0m");
        assert_eq!(ansi16("|[#0000ffA"), "\x1b[44mA\x1b[0m");
    }

    #[test]
    fn hex_greys_become_xterm_greyscale_even_for_truecolor() {
        // 0x80 = 128: round(120 / 10) = 12, the letter m, index 243.
        assert_eq!(truecolor("|#808080A"), "\x1b[38;5;243mA\x1b[0m");
        assert_eq!(xterm("|[#fffA"), "\x1b[48;5;231mA\x1b[0m");
        assert_eq!(xterm("|#000000A"), "\x1b[38;5;16mA\x1b[0m");
        assert_eq!(ansi16("|#808080A"), "\x1b[1m\x1b[30mA\x1b[0m");
        // 13 - 8 = 5: 0.5 rounds half to even, to a.
        assert_eq!(xterm("|#0d0d0dA"), "\x1b[38;5;16mA\x1b[0m");
    }

    #[test]
    fn rounding_is_half_to_even_like_python() {
        assert_eq!(round_half_even(5, 10), 0);
        assert_eq!(round_half_even(15, 10), 2);
        assert_eq!(round_half_even(25, 10), 2);
        assert_eq!(round_half_even(26, 10), 3);
        assert_eq!(grey_step(255), 25);
        assert_eq!(cube_step(255), 5);
        assert_eq!(cube_step(0), 0);
    }

    #[test]
    fn command_links_become_mxp_send_tags() {
        assert_eq!(
            mxp("Go |lclook|ltLook around|le."),
            "Go \x1b[4z<SEND HREF=\"look\">Look around\x1b[4z</SEND>."
        );
    }

    #[test]
    fn url_links_become_mxp_anchor_tags() {
        assert_eq!(
            mxp("|luhttps://evennia.com|ltsite|le"),
            "\x1b[4z<A HREF=\"https://evennia.com\">site\x1b[4z</A>"
        );
    }

    #[test]
    fn without_mxp_command_links_show_their_text_and_url_links_their_url() {
        assert_eq!(ansi16("Go |lclook|ltLook|le."), "Go Look.");
        assert_eq!(none("|luhttps://x.org|ltsite|le"), "https://x.org");
        assert_eq!(strip("|lclook|ltLook|le"), "Look");
    }

    #[test]
    fn link_href_is_escaped_so_it_cannot_break_out_of_the_tag() {
        assert_eq!(
            mxp("|lcsay \"<b>&\"|lthi|le"),
            "\x1b[4z<SEND HREF=\"say &quot;&lt;b&gt;&amp;&quot;\">hi\x1b[4z</SEND>"
        );
    }

    #[test]
    fn mxp_text_outside_our_tags_is_escaped() {
        assert_eq!(
            mxp("create <name> <password> & |rgo|n"),
            "create &lt;name&gt; &lt;password&gt; &amp; \x1b[1m\x1b[31mgo\x1b[0m"
        );
    }

    #[test]
    fn a_screenreader_with_mxp_gets_no_links_but_escaped_text() {
        let options = RenderOptions {
            color: ColorDepth::Ansi16,
            mxp: true,
            screenreader: true,
        };
        assert_eq!(
            render("a <b> |lclook|ltLook|le", &options),
            "a &lt;b&gt; Look"
        );
    }

    #[test]
    fn without_mxp_text_is_not_escaped() {
        assert_eq!(ansi16("a <b> & c"), "a <b> & c");
        assert_eq!(none("a <b> & c"), "a <b> & c");
        assert_eq!(none("|lcx|lt<y>|le"), "<y>");
    }

    #[test]
    fn mxp_link_tags_stay_intact_and_their_text_is_escaped() {
        assert_eq!(
            mxp("<|lcget <a&b>|lt<a&b>|le>"),
            "&lt;\x1b[4z<SEND HREF=\"get &lt;a&amp;b&gt;\">&lt;a&amp;b&gt;\x1b[4z</SEND>&gt;"
        );
        assert_eq!(
            mxp("|luhttps://x.org/?a=1&b=2|lt<site>|le"),
            "\x1b[4z<A HREF=\"https://x.org/?a=1&amp;b=2\">&lt;site&gt;\x1b[4z</A>"
        );
    }

    #[test]
    fn link_href_loses_markup_and_link_text_keeps_colour() {
        assert_eq!(
            mxp("|lc|rsay a||b|lt|gYes|le"),
            "\x1b[4z<SEND HREF=\"say a|b\">\x1b[1m\x1b[32mYes\x1b[4z</SEND>\x1b[0m"
        );
    }

    #[test]
    fn links_work_without_colour_when_mxp_is_on() {
        let options = RenderOptions {
            color: ColorDepth::None,
            mxp: true,
            screenreader: false,
        };
        assert_eq!(
            render("|r|lclook|ltLook|le", &options),
            "\x1b[4z<SEND HREF=\"look\">Look\x1b[4z</SEND>"
        );
    }

    #[test]
    fn unfinished_or_stray_link_codes_stay_literal() {
        for render in [none, mxp] {
            assert_eq!(render("|lclook|ltLook"), "|lclook|ltLook");
            assert_eq!(render("a|ltb|lec|lx"), "a|ltb|lec|lx");
        }
    }

    #[test]
    fn a_link_ends_at_the_first_text_and_end_markers() {
        assert_eq!(
            mxp("|lca|lcb|ltx|le|lty|le"),
            "\x1b[4z<SEND HREF=\"a|lcb\">x\x1b[4z</SEND>|lty|le"
        );
        assert_eq!(none("|lca|ltx|lcy|le"), "x|lcy");
    }

    #[test]
    fn raw_sgr_passes_to_colour_clients_and_is_stripped_for_plain_ones() {
        assert_eq!(ansi16("\x1b[31mred"), "\x1b[31mred\x1b[0m");
        assert_eq!(ansi16("\x1b[31mred\x1b[0m"), "\x1b[31mred\x1b[0m");
        assert_eq!(none("\x1b[1;31mred\x1b[0m"), "red");
    }

    #[test]
    fn a_raw_bare_reset_ends_the_colour() {
        assert_eq!(ansi16("|rred\x1b[m"), "\x1b[1m\x1b[31mred\x1b[m");
        assert_eq!(ansi16("\x1b[m"), "\x1b[m");
    }

    #[test]
    fn other_raw_escapes_are_dropped() {
        // An MXP secure-mode switch and a screen clear.
        assert_eq!(mxp("\x1b[1z<SEND>x\x1b[2J"), "&lt;SEND&gt;x");
        assert_eq!(ansi16("a\x1bb\x1b"), "ab");
        assert_eq!(ansi16("\x1b[31"), "[31");
        assert_eq!(none("\x1b[é"), "[é");
    }

    #[test]
    fn strip_removes_every_code_and_unescapes_bars() {
        assert_eq!(strip("|rR|[#ff0000|=a|500|uU|n||x|/|-"), "RU|x\r\n\t");
    }

    #[test]
    fn escape_makes_text_render_verbatim() {
        let said = "I typed |rred|n and ||";
        assert_eq!(ansi16(&escape(said)), said);
        assert_eq!(strip(&escape(said)), said);
    }

    #[test]
    fn screenreader_strips_colour_mxp_and_decoration() {
        assert_eq!(screenreader("|r-----|n Title |g=====|n"), " Title ");
        assert_eq!(screenreader("+---+|/|| a |+|/+~~+"), "\r\n| a |\r\n~");
        assert_eq!(screenreader("|lclook|ltLook|le a-b"), "Look a-b");
        assert!(!screenreader("|#ff0000~~~x").contains('\x1b'));
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// Markup-heavy text: fragments that form, almost form, or break codes.
        fn markup() -> impl Strategy<Value = String> {
            let fragment = prop::sample::select(vec![
                "|", "||", "r", "R", "[", "#", "f", "0", "5", "9", "=", "a", "!", "l", "c", "u",
                "t", "e", "n", "/", "-", "+", "~", " ", "\n", "\x1b", "\x1b[", "m", "1;3", "z",
                "é", "日本", "🦀", "<", "\"", "&",
            ]);
            prop::collection::vec(fragment, 0..40).prop_map(|parts| parts.concat())
        }

        fn any_text() -> impl Strategy<Value = String> {
            prop_oneof![markup(), any::<String>()]
        }

        fn any_options() -> impl Strategy<Value = RenderOptions> {
            let depth = prop::sample::select(vec![
                ColorDepth::None,
                ColorDepth::Ansi16,
                ColorDepth::Xterm256,
                ColorDepth::Truecolor,
            ]);
            (depth, any::<bool>(), any::<bool>()).prop_map(|(color, mxp, screenreader)| {
                RenderOptions {
                    color,
                    mxp,
                    screenreader,
                }
            })
        }

        /// Removes `ESC[…m` sequences, leaving the text a terminal shows.
        fn without_sgr(text: &str) -> String {
            let mut out = String::new();
            let mut rest = text;
            while let Some(at) = rest.find("\x1b[") {
                out.push_str(&rest[..at]);
                let after = &rest[at + 2..];
                let end = after.find('m').expect("every SGR we send ends in m");
                rest = &after[end + 1..];
            }
            out.push_str(rest);
            out
        }

        proptest! {
            #[test]
            fn any_input_renders_without_panicking(text in any_text(), options in any_options()) {
                let _ = render(&text, &options);
                let _ = strip(&text);
            }

            #[test]
            fn plain_output_never_contains_escape(text in any_text(), screenreader in any::<bool>()) {
                let options = RenderOptions { color: ColorDepth::None, mxp: false, screenreader };
                prop_assert!(!render(&text, &options).contains('\x1b'));
                prop_assert!(!strip(&text).contains('\x1b'));
            }

            #[test]
            fn plain_rendering_is_strip(text in any_text()) {
                prop_assert_eq!(render(&text, &options(ColorDepth::None)), strip(&text));
            }

            #[test]
            fn colour_never_changes_the_visible_text(text in any_text()) {
                let plain = strip(&text);
                for depth in [ColorDepth::Ansi16, ColorDepth::Xterm256, ColorDepth::Truecolor] {
                    prop_assert_eq!(without_sgr(&render(&text, &options(depth))), plain.clone());
                }
            }

            #[test]
            fn colour_never_bleeds_past_the_end(text in any_text(), options in any_options()) {
                let out = render(&text, &options);
                if let (false, Some(at)) = (options.mxp, out.rfind('\x1b')) {
                    // The last SGR sent is a reset (a raw `ESC[m` is one too).
                    let last = &out[at..at + out[at..].find('m').expect("SGR ends in m") + 1];
                    prop_assert!(matches!(last, "\x1b[0m" | "\x1b[m"), "{:?}", out);
                }
            }

            #[test]
            fn escaped_text_renders_verbatim(text in any_text(), options in any_options()) {
                let text = text.replace('\x1b', "");
                let options = RenderOptions { screenreader: false, ..options };
                // Verbatim for an MXP client is with MXP's entities.
                let shown = if options.mxp { escape_mxp(&text) } else { text.clone() };
                prop_assert_eq!(render(&escape(&text), &options), shown);
                prop_assert_eq!(strip(&escape(&text)), text);
            }

            #[test]
            fn stripping_twice_only_unescapes_again(text in any_text()) {
                let once = strip(&text);
                prop_assert_eq!(strip(&escape(&once)), once);
            }

            #[test]
            fn mxp_output_opens_only_tags_it_closes(text in markup()) {
                let options = RenderOptions { mxp: true, ..options(ColorDepth::None) };
                let out = render(&text, &options);
                let opens = out.matches("\x1b[4z<SEND ").count() + out.matches("\x1b[4z<A ").count();
                let closes = out.matches("\x1b[4z</SEND>").count() + out.matches("\x1b[4z</A>").count();
                prop_assert_eq!(opens, closes);
                prop_assert_eq!(out.matches('\x1b').count(), 2 * opens);
                // Every '<' and '>' is in one of our tags: the text has none left.
                prop_assert_eq!(out.matches('<').count(), opens + closes);
                prop_assert_eq!(out.matches('>').count(), opens + closes);
            }
        }
    }
}
