//! `json.mudstandards.org` (mudstandards.org's websocket proposal): ANSI
//! text in BINARY frames both ways; TEXT frames carry a JSON envelope
//! `{"proto": "gmcp", "id": "Package.Name", "data": "<json text>"}`. Only
//! the `gmcp` proto is understood; its messages are named and mapped as on
//! telnet ([`crate::protocols::telnet::gmcp`]). The window size travels as
//! `Core.Hello` with `screenwidth` / `screenheight` ([`super::screen`]).
//!
//! ```
//! use portal::protocols::websocket::format::{Format, Frame, Incoming};
//! let envelope = r#"{"proto":"gmcp","id":"Core.Ping","data":""}"#;
//! let got = Format::JsonStandard.decode(&Frame::Text(envelope.into()), &|_| true);
//! assert!(matches!(&got[0], Incoming::Command(c) if c.name == "ping"));
//! ```

use super::format::{lines, Frame, Incoming};
use super::screen;
use crate::protocols::telnet::gmcp;
use crate::wire::message::Command;

/// The subprotocol name.
pub const SUBPROTOCOL: &str = "json.mudstandards.org";

/// BINARY: typed lines; TEXT: an envelope.
pub fn decode(frame: &Frame) -> Vec<Incoming> {
    match frame {
        Frame::Binary(bytes) => lines(bytes),
        Frame::Text(text) => match decode_envelope(text) {
            Ok(command) => screen::split(command),
            Err(why) => vec![Incoming::Bad(why)],
        },
    }
}

fn decode_envelope(text: &str) -> Result<Command, String> {
    let json: serde_json::Value = match serde_json::from_str(text) {
        Ok(json) => json,
        Err(e) => return Err(format!("not valid JSON: {e}")),
    };
    let Some(envelope) = json.as_object() else {
        return Err("expected a JSON object {\"proto\", \"id\", \"data\"}".into());
    };
    let proto = envelope.get("proto").and_then(|v| v.as_str()).unwrap_or("");
    if !proto.eq_ignore_ascii_case("gmcp") {
        return Err(format!("unknown proto `{proto}` (this portal speaks gmcp)"));
    }
    let Some(id) = envelope
        .get("id")
        .and_then(|v| v.as_str())
        .filter(|id| !id.is_empty())
    else {
        return Err("a gmcp envelope needs an \"id\"".into());
    };
    let data = match envelope.get("data") {
        None | Some(serde_json::Value::Null) => String::new(),
        Some(serde_json::Value::String(data)) => data.clone(),
        Some(other) => other.to_string(),
    };
    Ok(gmcp::decode(format!("{id} {data}").as_bytes()))
}

/// A command as a gmcp envelope in a TEXT frame.
pub fn encode_oob(command: &Command) -> Frame {
    let body = String::from_utf8_lossy(&gmcp::encode(command)).into_owned();
    let (id, data) = body.split_once(' ').unwrap_or((&body, ""));
    let envelope = serde_json::json!({"proto": "gmcp", "id": id, "data": data});
    Frame::Text(envelope.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::value::Value;

    #[test]
    fn envelopes_round_trip() {
        let text = r#"{"proto":"gmcp","id":"Char.Vitals","data":"{\"hp\":7}"}"#;
        let got = decode(&Frame::Text(text.into()));
        let Incoming::Command(command) = &got[0] else {
            panic!("{got:?}")
        };
        assert_eq!(command.name, "char_vitals");
        assert_eq!(command.kwargs["hp"], Value::Int(7));
        let Frame::Text(out) = encode_oob(command) else {
            panic!()
        };
        let back: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
        assert_eq!(back["id"], "Char.Vitals");
        assert_eq!(back["data"], "{\"hp\": 7}");
    }

    #[test]
    fn bad_envelopes_are_explained() {
        for bad in [
            "{",
            "[1]",
            r#"{"proto":"msdp","id":"X"}"#,
            r#"{"proto":"gmcp"}"#,
        ] {
            assert!(
                matches!(&decode(&Frame::Text(bad.into()))[0], Incoming::Bad(_)),
                "{bad}"
            );
        }
    }
}
