//! Building the game's output in Evennia colour markup.
//!
//! The portal renders the markup for each client (ANSI, xterm256,
//! truecolor, MXP links) or strips it; the game only writes it. Anything a
//! player typed must go through [`escape`] before it is shown to anyone, so
//! nobody can inject colours or clickable links.

/// Escape player text so the portal shows it literally: `|` becomes `||`.
pub fn escape(text: &str) -> String {
    text.replace('|', "||")
}

/// A clickable link that runs `command` when clicked, showing `label`.
/// Clients without links see just the label.
pub fn link(command: &str, label: &str) -> String {
    format!("|lc{command}|lt{label}|le")
}

/// Word-wrap plain text (no markup) to `width` columns. Words longer than
/// a line are left whole.
pub fn wrap(text: &str, width: usize) -> String {
    let mut out = String::new();
    let mut column = 0;
    for word in text.split_whitespace() {
        let len = word.chars().count();
        if column > 0 && column + 1 + len > width {
            out.push('\n');
            column = 0;
        } else if column > 0 {
            out.push(' ');
            column += 1;
        }
        out.push_str(word);
        column += len;
    }
    out
}

/// The 8 colour letters, in Evennia's order, with their names.
const COLOURS: [(char, &str); 8] = [
    ('r', "red"),
    ('g', "green"),
    ('y', "yellow"),
    ('b', "blue"),
    ('m', "magenta"),
    ('c', "cyan"),
    ('w', "white"),
    ('x', "black"),
];

/// Truecolor sample strip length, in characters.
const STRIP: usize = 64;

/// The `color` command's palette. `block` is the character used for
/// colour swatches (a full block on UTF-8 clients, `#` otherwise). Every
/// line is at most 78 characters wide once rendered.
pub fn palette(block: char) -> String {
    let swatch: String = [block, block].iter().collect();
    let mut out = String::new();
    out.push_str("|wANSI colours|n (type the code shown; ||n resets):\n");
    let bright: Vec<String> = COLOURS
        .iter()
        .map(|(c, _)| format!("|{c}||{c} {swatch}|n"))
        .collect();
    out.push_str(&format!("  bright      {}\n", bright.join(" ")));
    let normal: Vec<String> = COLOURS
        .iter()
        .map(|(c, _)| {
            let up = c.to_ascii_uppercase();
            format!("|{up}||{up} {swatch}|n")
        })
        .collect();
    out.push_str(&format!("  normal      {}\n", normal.join(" ")));
    let background: Vec<String> = COLOURS
        .iter()
        .map(|(c, _)| format!("|[{c}||[{c}|n"))
        .collect();
    out.push_str(&format!("  background  {}\n", background.join("  ")));
    let names: Vec<String> = COLOURS.iter().map(|(c, n)| format!("{c}={n}")).collect();
    out.push_str(&format!("  {}\n", names.join(" ")));

    out.push_str(
        "|wxterm256 colour cube|n: ||RGB foreground, ||[RGB background, \
         R G B each 0-5\n",
    );
    for r in 0..6 {
        out.push_str(&format!("  ||{r}xx "));
        for g in 0..6 {
            for b in 0..6 {
                out.push_str(&format!("|{r}{g}{b}{block}"));
            }
            out.push_str("|n ");
        }
        out.truncate(out.len() - 1);
        out.push('\n');
    }

    out.push_str("|wGreyscale|n: ||=a (darkest) to ||=z (lightest)\n  ");
    for letter in 'a'..='z' {
        out.push_str(&format!("|={letter}{swatch}"));
    }
    out.push_str("|n\n");

    out.push_str("|wTruecolor|n: ||#rrggbb, e.g. ||#ff8800\n  ");
    for i in 0..STRIP {
        let (r, g, b) = hue(i as f64 / STRIP as f64);
        out.push_str(&format!("|#{r:02x}{g:02x}{b:02x}{block}"));
    }
    out.push_str("|n");
    out
}

/// A fully saturated colour at `position` (0..1) round the colour wheel.
fn hue(position: f64) -> (u8, u8, u8) {
    let h = position * 6.0;
    let x = (255.0 * (1.0 - ((h % 2.0) - 1.0).abs())).round() as u8;
    match h as u32 {
        0 => (255, x, 0),
        1 => (x, 255, 0),
        2 => (0, 255, x),
        3 => (0, x, 255),
        4 => (x, 0, 255),
        _ => (255, 0, x),
    }
}

/// Drop the markup to see what a client without colours would show: a
/// rough renderer for tests and width checks.
#[cfg(test)]
pub fn strip(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars().peekable();
    let skip = |chars: &mut std::iter::Peekable<std::str::Chars>, n: usize| {
        for _ in 0..n {
            chars.next();
        }
    };
    while let Some(c) = chars.next() {
        if c != '|' {
            out.push(c);
            continue;
        }
        let mut code = chars.next();
        if code == Some('[') {
            code = chars.next();
        }
        match code {
            Some('|') => out.push('|'),
            Some('/') => out.push('\n'),
            Some('#') => skip(&mut chars, 6),
            Some('=') => skip(&mut chars, 1),
            Some(d) if d.is_ascii_digit() => skip(&mut chars, 2),
            // |lc<command>|lt: the command is not shown.
            Some('l') if chars.next() == Some('c') => {
                while let Some(c) = chars.next() {
                    if c == '|' && chars.peek() == Some(&'l') {
                        skip(&mut chars, 2);
                        break;
                    }
                }
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_doubles_every_bar() {
        assert_eq!(escape("a|rb||c"), "a||rb||||c");
        assert_eq!(escape("plain"), "plain");
        assert_eq!(strip(&escape("|r|lcquit|ltx|le")), "|r|lcquit|ltx|le");
    }

    #[test]
    fn wrap_breaks_between_words() {
        assert_eq!(wrap("aa bb cc dd", 5), "aa bb\ncc dd");
        assert_eq!(wrap("aa  bb", 80), "aa bb");
        assert_eq!(wrap("abcdefgh ij", 4), "abcdefgh\nij");
        assert_eq!(wrap("", 10), "");
    }

    #[test]
    fn links_show_their_label() {
        assert_eq!(link("look", "look around"), "|lclook|ltlook around|le");
        assert_eq!(strip(&link("who", "who")), "who");
    }

    #[test]
    fn palette_shows_the_codes_literally_and_fits_in_80_columns() {
        let palette = palette('#');
        let shown = strip(&palette);
        for code in [
            "|r", "|R", "|[r", "|x", "|X", "|=a", "|=z", "|#ff8800", "|RGB",
        ] {
            assert!(shown.contains(code), "{code} in {shown}");
        }
        for line in shown.lines() {
            assert!(line.chars().count() <= 78, "too wide: {line:?}");
        }
        // every cube colour and grey appears as markup
        for code in ["|000#", "|555#", "|=a##", "|=z##"] {
            assert!(palette.contains(code), "{code}");
        }
        let strip_line = palette.lines().last().unwrap();
        assert_eq!(strip_line.matches("|#").count(), STRIP);
    }

    #[test]
    fn hue_runs_round_the_wheel() {
        assert_eq!(hue(0.0), (255, 0, 0));
        assert_eq!(hue(1.0 / 3.0), (0, 255, 0));
        assert_eq!(hue(2.0 / 3.0), (0, 0, 255));
    }
}
