//! Evennia's webclient format (the default when the client asks for no
//! subprotocol, or for `v1.evennia.com`): every message is a TEXT frame
//! holding a JSON array `[cmdname, args, kwargs]`.
//!
//! - client → portal: `["text", ["look"], {}]` is a typed line; any other
//!   `cmdname` is an out-of-band command, accepted if it is one of the
//!   names in `[web] commands` (Evennia's input functions by default).
//!   `screenwidth` / `screenheight` in `client_options` (or `hello`) are
//!   the window size, taken by the portal ([`super::screen`]).
//! - portal → client: `["text", ["<html>"], {}]` and `["prompt", ["<html>"],
//!   {}]` carry game text rendered to HTML
//!   ([`crate::markup::render_html`]: every character the game or a player
//!   wrote is escaped); `["echo", [false], {}]` / `["echo", [true], {}]`
//!   hide and show typing (passwords); `["portal", ["…"], {"level":
//!   "info"|"error"}]` is a plain-text line from the portal itself; any
//!   other command from the game is passed on as it is.
//!
//! ```
//! use portal::protocols::websocket::format::{Format, Frame, Incoming};
//! let got = Format::Evennia.decode(&Frame::Text(r#"["text", ["look"], {}]"#.into()), &|_| false);
//! assert_eq!(got, vec![Incoming::Line("look".into())]);
//! ```

use super::format::{Frame, Incoming};
use super::screen;
use crate::protocols::telnet::gmcp::{from_json, write_json};
use crate::wire::message::Command;
use crate::wire::value::{Map, Value};

/// The subprotocol name (Evennia's).
pub const SUBPROTOCOL: &str = "v1.evennia.com";

/// A TEXT frame → a line or a command; anything else is explained.
pub fn decode(frame: &Frame, allowed: &dyn Fn(&str) -> bool) -> Vec<Incoming> {
    let Frame::Text(text) = frame else {
        return vec![Incoming::Bad(
            "binary frames are not used by this format; send [cmdname, args, kwargs] as text"
                .into(),
        )];
    };
    let command = match decode_text(text) {
        Ok(command) => command,
        Err(bad) => return vec![bad],
    };
    if command.name == "text" {
        return vec![Incoming::Line(
            command.first_str().unwrap_or_default().to_owned(),
        )];
    }
    // The size is the portal's to take, whatever `allowed` says; the rest
    // of the command goes to the game only if the game takes it.
    screen::split(command)
        .into_iter()
        .map(|incoming| match incoming {
            Incoming::Command(c) if !allowed(&c.name) => {
                Incoming::Bad(format!("unknown command `{}`", short(&c.name)))
            }
            other => other,
        })
        .collect()
}

fn decode_text(text: &str) -> Result<Command, Incoming> {
    let json: serde_json::Value = match serde_json::from_str(text) {
        Ok(json) => json,
        Err(e) => return Err(Incoming::Bad(format!("not valid JSON ({e})"))),
    };
    to_command(json).map_err(|shape| Incoming::Bad(shape.explain().into()))
}

/// How a JSON message misses the `[cmdname, args, kwargs]` shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BadShape {
    /// Not an array of one to three items.
    NotAnArray,
    NameNotAString,
    KwargsNotAnObject,
}

impl BadShape {
    /// What the client is told.
    fn explain(self) -> &'static str {
        match self {
            BadShape::NotAnArray => "expected [cmdname, args, kwargs]",
            BadShape::NameNotAString => {
                "expected [cmdname, args, kwargs]: cmdname must be a string"
            }
            BadShape::KwargsNotAnObject => {
                "expected [cmdname, args, kwargs]: kwargs must be an object"
            }
        }
    }
}

fn to_command(json: serde_json::Value) -> Result<Command, BadShape> {
    let serde_json::Value::Array(mut items) = json else {
        return Err(BadShape::NotAnArray);
    };
    if items.is_empty() || items.len() > 3 {
        return Err(BadShape::NotAnArray);
    }
    let kwargs = if items.len() == 3 { items.pop() } else { None };
    let args = if items.len() == 2 { items.pop() } else { None };
    let Some(serde_json::Value::String(name)) = items.pop() else {
        return Err(BadShape::NameNotAString);
    };
    let args = match args.map(from_json) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::List(args)) => args,
        Some(one) => vec![one],
    };
    let kwargs = match kwargs.map(from_json) {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Map(kwargs)) => kwargs,
        Some(_) => return Err(BadShape::KwargsNotAnObject),
    };
    Ok(Command { name, args, kwargs })
}

/// At most 40 characters of a name, for an error message.
fn short(name: &str) -> String {
    name.chars().take(40).collect()
}

/// A command as its JSON array.
pub fn encode_command(command: &Command) -> Frame {
    let mut out = String::with_capacity(64);
    out.push('[');
    write_json(&Value::Str(command.name.clone()), &mut out);
    out.push(',');
    write_json(&Value::List(command.args.clone()), &mut out);
    out.push(',');
    write_json(&Value::Map(command.kwargs.clone()), &mut out);
    out.push(']');
    Frame::Text(out)
}

/// HTML game text or prompt.
pub fn encode_text(html: &str, prompt: bool) -> Frame {
    let name = if prompt { "prompt" } else { "text" };
    encode_command(&Command {
        name: name.into(),
        args: vec![Value::Str(html.to_owned())],
        kwargs: Map::new(),
    })
}

/// Rendered game text ([`crate::markup::html`]) as Evennia's own web
/// client shows it, for its page when the portal relays Evennia's site:
/// line ends as `<br>` (its output pane does not keep them) and the
/// palette and style classes under Evennia's names (`fg-9` is
/// `color-009`, `bg-4` `bgcolor-004`, `u` `underline`, `inv` `inverse`).
/// The markup is the renderer's own, so its class attributes are the only
/// `class="` in it (text is escaped).
pub fn for_evennia_page(html: &str) -> String {
    let mut out = String::with_capacity(html.len() + 16);
    let mut rest = html;
    while let Some(start) = rest.find("class=\"") {
        let (before, after) = rest.split_at(start + "class=\"".len());
        out.push_str(&before.replace('\n', "<br>"));
        let end = after.find('"').unwrap_or(after.len());
        let names: Vec<String> = after[..end].split(' ').map(evennia_class).collect();
        out.push_str(&names.join(" "));
        rest = &after[end..];
    }
    out.push_str(&rest.replace('\n', "<br>"));
    out
}

fn evennia_class(name: &str) -> String {
    let palette = |prefix: &str, n: &str| match n.parse::<u8>() {
        Ok(n) => format!("{prefix}-{n:03}"),
        Err(_) => name.to_owned(),
    };
    match name {
        "u" => "underline".into(),
        "inv" => "inverse".into(),
        _ => match (name.strip_prefix("fg-"), name.strip_prefix("bg-")) {
            (Some(n), _) => palette("color", n),
            (_, Some(n)) => palette("bgcolor", n),
            _ => name.to_owned(),
        },
    }
}

/// A plain line from the portal.
pub fn encode_notice(text: &str, error: bool) -> Frame {
    let level = if error { "error" } else { "info" };
    encode_command(&Command {
        name: "portal".into(),
        args: vec![Value::Str(text.to_owned())],
        kwargs: [("level".to_owned(), Value::Str(level.into()))]
            .into_iter()
            .collect(),
    })
}

/// Typing shown (`true`) or hidden.
pub fn encode_echo(on: bool) -> Frame {
    encode_command(&Command {
        name: "echo".into(),
        args: vec![Value::Bool(on)],
        kwargs: Map::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evennia_s_page_gets_br_line_ends_and_its_own_class_names() {
        let ours = "<span class=\"fg-9 bg-4 u inv blink\">a\nb</span>\n&lt;br&gt;\n";
        assert_eq!(
            for_evennia_page(ours),
            "<span class=\"color-009 bgcolor-004 underline inverse blink\">a<br>b</span><br>&lt;br&gt;<br>"
        );
        let xterm = "<span style=\"color:#ff8700\">x</span>";
        assert_eq!(for_evennia_page(xterm), xterm);
    }

    fn any(_: &str) -> bool {
        true
    }

    #[test]
    fn text_commands_are_lines_and_others_commands() {
        let got = decode(&Frame::Text(r#"["ping", [], {"id": 3}]"#.into()), &any);
        let Incoming::Command(command) = &got[0] else {
            panic!("{got:?}")
        };
        assert_eq!(command.name, "ping");
        assert_eq!(command.kwargs["id"], Value::Int(3));
        assert_eq!(
            decode(&Frame::Text(r#"["text"]"#.into()), &any),
            vec![Incoming::Line(String::new())]
        );
    }

    #[test]
    fn bad_json_unknown_names_and_wrong_shapes_are_explained() {
        let none = |_: &str| false;
        for bad in [
            "{not json",
            "{}",
            "[]",
            "[1, [], {}]",
            r#"["x", [], 5]"#,
            r#"["x",1,{},4]"#,
        ] {
            let got = decode(&Frame::Text(bad.into()), &any);
            assert!(matches!(&got[0], Incoming::Bad(_)), "{bad}: {got:?}");
        }
        let got = decode(&Frame::Text(r#"["launch_missiles", [], {}]"#.into()), &none);
        assert_eq!(
            got,
            vec![Incoming::Bad("unknown command `launch_missiles`".into())]
        );
        assert!(matches!(
            &decode(&Frame::Binary(vec![1]), &any)[0],
            Incoming::Bad(_)
        ));
    }

    #[test]
    fn output_is_the_evennia_array() {
        assert_eq!(
            encode_text("<b>hi</b> \"x\"", false),
            Frame::Text(r#"["text",["<b>hi</b> \"x\""],{}]"#.into())
        );
        assert_eq!(
            encode_echo(false),
            Frame::Text(r#"["echo",[false],{}]"#.into())
        );
        assert_eq!(
            encode_notice("slow down", true),
            Frame::Text(r#"["portal",["slow down"],{"level": "error"}]"#.into())
        );
    }
}
