//! The colour markup renderers: game text is a peer too. Input: `[mode,
//! text]`. Invariants:
//! - ANSI: every escape sequence out is SGR (`ESC[…m`), or MXP's
//!   `ESC[4z` right before one of the four link tags; plain output has no
//!   ESC at all; an MXP client gets no `<`, `>` outside those tags;
//! - HTML: only our tags (`span`, `a class="cmd"|"url"`), spans never
//!   nested nor left open, anchors never nested, attribute values and text
//!   escaped, no control characters but `\n` and `\t`;
//! - both: output bounded by the input's length.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portal::markup::{
    escape_mxp, render, render_html, strip, ColorDepth, HtmlOptions, RenderOptions,
};

fuzz_target!(|data: &[u8]| {
    let [mode, bytes @ ..] = data else {
        return;
    };
    let text = String::from_utf8_lossy(bytes);
    let color = match mode & 3 {
        0 => ColorDepth::None,
        1 => ColorDepth::Ansi16,
        2 => ColorDepth::Xterm256,
        _ => ColorDepth::Truecolor,
    };
    let options = RenderOptions {
        color,
        mxp: mode & 4 != 0,
        screenreader: mode & 8 != 0,
    };
    let ansi = render(&text, &options);
    check_ansi(&ansi, &options);
    assert!(
        ansi.len() <= 64 + 48 * text.len(),
        "{} bytes for {}",
        ansi.len(),
        text.len()
    );

    let plain = strip(&text);
    assert!(!plain.contains('\x1b'), "strip left an escape");
    assert!(plain.len() <= text.len() * 4 + 4);
    let escaped = escape_mxp(&text);
    assert!(!escaped.contains('<') && !escaped.contains('>'));

    let html_options = HtmlOptions {
        color: mode & 16 != 0,
        screenreader: mode & 32 != 0,
    };
    let html = render_html(&text, &html_options);
    check_html(&html);
    assert!(
        html.len() <= 64 + 128 * text.len(),
        "{} bytes for {}",
        html.len(),
        text.len()
    );
});

const MXP_TAGS: [&str; 2] = ["<SEND HREF=\"", "<A HREF=\""];
const MXP_CLOSE: [&str; 2] = ["</SEND>", "</A>"];

fn check_ansi(out: &str, options: &RenderOptions) {
    let plain = options.color == ColorDepth::None || options.screenreader;
    if plain && !options.mxp {
        assert!(!out.contains('\x1b'), "escape in plain output: {out:?}");
    }
    let mut rest = out;
    while let Some(at) = rest.find(['\x1b', '<', '>']) {
        let (before, tail) = rest.split_at(at);
        let _ = before;
        if let Some(after) = tail.strip_prefix("\x1b[4z") {
            assert!(options.mxp, "MXP secure mode without MXP: {out:?}");
            rest = mxp_tag(after, out);
        } else if let Some(after) = tail.strip_prefix("\x1b[") {
            let end = after
                .find(|c: char| !(c.is_ascii_digit() || c == ';'))
                .unwrap_or(after.len());
            assert!(after[end..].starts_with('m'), "non-SGR escape in {out:?}");
            assert!(!plain, "colour in plain output: {out:?}");
            rest = &after[end + 1..];
        } else if tail.starts_with('\x1b') {
            panic!("bare ESC in {out:?}");
        } else {
            assert!(!options.mxp, "unescaped <> for an MXP client: {out:?}");
            rest = &tail[1..];
        }
    }
}

/// After `ESC[4z`: one of our tags, whose value has no `"`, `<` or `>`.
fn mxp_tag<'a>(after: &'a str, out: &str) -> &'a str {
    for close in MXP_CLOSE {
        if let Some(rest) = after.strip_prefix(close) {
            return rest;
        }
    }
    for open in MXP_TAGS {
        if let Some(value) = after.strip_prefix(open) {
            let end = value
                .find('"')
                .unwrap_or_else(|| panic!("open HREF in {out:?}"));
            assert!(
                !value[..end].contains(['<', '>']),
                "raw <> in HREF: {out:?}"
            );
            let rest = &value[end..];
            return rest
                .strip_prefix("\">")
                .unwrap_or_else(|| panic!("bad tag in {out:?}"));
        }
    }
    panic!("ESC[4z before no tag of ours: {out:?}");
}

fn check_html(html: &str) {
    assert!(
        !html
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t'),
        "control character in {html:?}"
    );
    let mut in_span = false;
    let mut in_a = false;
    let mut rest = html;
    while let Some(at) = rest.find(['<', '>', '&']) {
        let tail = &rest[at..];
        if tail.starts_with('&') {
            let entity = ["&amp;", "&lt;", "&gt;", "&quot;", "&#39;"]
                .into_iter()
                .find(|e| tail.starts_with(e))
                .unwrap_or_else(|| panic!("bare & in {html:?}"));
            rest = &tail[entity.len()..];
            continue;
        }
        assert!(tail.starts_with('<'), "bare > in {html:?}");
        let end = tail
            .find('>')
            .unwrap_or_else(|| panic!("open tag in {html:?}"));
        let tag = &tail[1..end];
        assert!(!tag.contains('<'), "< inside a tag: {html:?}");
        match tag {
            "/span" => {
                assert!(in_span, "</span> without <span>: {html:?}");
                in_span = false;
            }
            "/a" => {
                assert!(in_a && !in_span, "</a> out of place: {html:?}");
                in_a = false;
            }
            t if t.starts_with("span") => {
                assert!(!in_span, "nested span: {html:?}");
                check_attributes(&t[4..], &["class", "style"], html);
                in_span = true;
            }
            t if t.starts_with("a ") => {
                assert!(!in_a && !in_span, "anchor out of place: {html:?}");
                check_attributes(
                    &t[1..],
                    &["class", "data-cmd", "href", "target", "rel"],
                    html,
                );
                assert!(
                    t.starts_with("a class=\"cmd\"") || t.starts_with("a class=\"url\""),
                    "unknown anchor: {html:?}"
                );
                in_a = true;
            }
            _ => panic!("a tag not ours: <{tag}> in {html:?}"),
        }
        rest = &tail[end + 1..];
    }
    assert!(!in_span && !in_a, "left open: {html:?}");
}

/// ` name="value"` pairs only, from the allowed names; values hold no
/// quote, `<` or `>` (escaped text only).
fn check_attributes(mut attrs: &str, allowed: &[&str], html: &str) {
    while !attrs.is_empty() {
        let rest = attrs
            .strip_prefix(' ')
            .unwrap_or_else(|| panic!("attributes {attrs:?} in {html:?}"));
        let (name, value) = rest
            .split_once("=\"")
            .unwrap_or_else(|| panic!("attribute without value in {html:?}"));
        assert!(allowed.contains(&name), "attribute {name} in {html:?}");
        let end = value
            .find('"')
            .unwrap_or_else(|| panic!("open value in {html:?}"));
        assert!(
            !value[..end].contains(['<', '>']),
            "raw <> in a value: {html:?}"
        );
        attrs = &value[end + 1..];
    }
}
