//! GMCP, the Generic MUD Communication Protocol (option 201): JSON
//! messages inside `IAC SB GMCP <Package.Name> <json> IAC SE`.
//!
//! Names map as Evennia maps them, so a game written for Evennia's inputfuncs
//! works unchanged: inbound `Core.Supports.Get` and the other well-known
//! packages get fixed names, any other `Package.Sub` becomes `package_sub`
//! with a leading `core_` dropped; a JSON object becomes kwargs, a list
//! becomes args, anything else one argument. Outbound `cmd_name` becomes
//! `Cmd.Name`, a name without `_` goes to the `Core` package.
//!
//! ```
//! use portal::protocols::telnet::gmcp::{decode, encode};
//! let command = decode(br#"Char.Vitals {"hp": 10}"#);
//! assert_eq!(command.name, "char_vitals");
//! assert_eq!(encode(&command), br#"Char.Vitals {"hp": 10}"#);
//! ```

use crate::wire::message::Command;
use crate::wire::value::{Map, Value};

/// Telnet option number.
pub const GMCP: u8 = 201;

/// Evennia's fixed names for well-known GMCP packages.
const EVENNIA_TO_GMCP: [(&str, &str); 5] = [
    ("client_options", "Core.Supports.Get"),
    ("get_inputfuncs", "Core.Commands.Get"),
    ("get_value", "Char.Value.Get"),
    ("repeat", "Char.Repeat.Update"),
    ("monitor", "Char.Monitor.Update"),
];

/// A GMCP message body → a command.
pub fn decode(body: &[u8]) -> Command {
    let text = String::from_utf8_lossy(body);
    let text = text.trim_start();
    let (package, payload) = match text.split_once(char::is_whitespace) {
        Some((package, payload)) => (package, Some(payload.trim())),
        None => (text, None),
    };
    let mut command = Command {
        name: command_name(package),
        ..Command::default()
    };
    let Some(payload) = payload else {
        return command;
    };
    let value = serde_json::from_str::<serde_json::Value>(payload)
        .map(from_json)
        .unwrap_or_else(|_| Value::from(payload));
    match value {
        Value::Map(map) => {
            command.kwargs = map.into_iter().filter(|(k, _)| !k.is_empty()).collect()
        }
        Value::List(list) => command.args = list,
        other => command.args = vec![other],
    }
    command
}

/// `Package.Sub` → Evennia's command name.
pub fn command_name(package: &str) -> String {
    if let Some((name, _)) = EVENNIA_TO_GMCP.iter().find(|(_, gmcp)| *gmcp == package) {
        return (*name).to_owned();
    }
    let name = package.replace('.', "_");
    let name = match name.get(..5) {
        Some(prefix) if prefix.eq_ignore_ascii_case("core_") => &name[5..],
        _ => &name,
    };
    name.to_lowercase()
}

/// Evennia's command name → `Package.Sub`.
pub fn package_name(command: &str) -> String {
    if let Some((_, gmcp)) = EVENNIA_TO_GMCP.iter().find(|(name, _)| *name == command) {
        return (*gmcp).to_owned();
    }
    if command.contains('_') {
        let words: Vec<String> = command
            .split('_')
            .map(|w| {
                if is_upper(w) {
                    w.to_owned()
                } else {
                    capitalize(w)
                }
            })
            .collect();
        return words.join(".");
    }
    if is_title(command) {
        format!("Core.{command}")
    } else {
        format!("Core.{}", capitalize(command))
    }
}

/// A command → the GMCP message body (Evennia's layout: one argument is
/// sent bare, several as a list, kwargs as an object, both as a pair).
pub fn encode(command: &Command) -> Vec<u8> {
    let mut out = package_name(&command.name);
    let args = match command.args.as_slice() {
        [] => None,
        [one] => Some(one.clone()),
        many => Some(Value::List(many.to_vec())),
    };
    let kwargs = (!command.kwargs.is_empty()).then(|| Value::Map(command.kwargs.clone()));
    let payload = match (args, kwargs) {
        (None, None) => None,
        (Some(args), None) => Some(args),
        (None, Some(kwargs)) => Some(kwargs),
        (Some(args), Some(kwargs)) => Some(Value::List(vec![args, kwargs])),
    };
    if let Some(payload) = payload {
        out.push(' ');
        write_json(&payload, &mut out);
    }
    out.into_bytes()
}

/// JSON → Value (integers that fit stay integers).
pub fn from_json(json: serde_json::Value) -> Value {
    use serde_json::Value as J;
    match json {
        J::Null => Value::Null,
        J::Bool(b) => Value::Bool(b),
        J::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        J::String(s) => Value::Str(s),
        J::Array(items) => Value::List(items.into_iter().map(from_json).collect()),
        J::Object(map) => Value::Map(map.into_iter().map(|(k, v)| (k, from_json(v))).collect()),
    }
}

/// Value → JSON text with Python's separators (`", "`, `": "`), as
/// Evennia's `json.dumps` writes it. Bytes go as (lossy) text, non-finite
/// floats as null.
pub fn write_json(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => out.push_str(&i.to_string()),
        Value::Float(f) => match serde_json::Number::from_f64(*f) {
            Some(n) => out.push_str(&n.to_string()),
            None => out.push_str("null"),
        },
        Value::Str(s) => write_json_string(s, out),
        Value::Bytes(b) => write_json_string(&String::from_utf8_lossy(b), out),
        Value::List(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_json(item, out);
            }
            out.push(']');
        }
        Value::Map(map) => write_json_map(map, out),
    }
}

fn write_json_map(map: &Map, out: &mut String) {
    out.push('{');
    for (i, (key, item)) in map.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        write_json_string(key, out);
        out.push_str(": ");
        write_json(item, out);
    }
    out.push('}');
}

fn write_json_string(s: &str, out: &mut String) {
    // serde_json's string escaping cannot fail for a &str.
    out.push_str(&serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into()));
}

fn capitalize(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first
            .to_uppercase()
            .chain(chars.flat_map(char::to_lowercase))
            .collect(),
        None => String::new(),
    }
}

/// Python's `str.isupper`: some cased letter, none lower-case.
fn is_upper(word: &str) -> bool {
    word.chars().any(char::is_uppercase) && !word.chars().any(char::is_lowercase)
}

/// Python's `str.istitle` for one word: starts upper-case, rest lower.
fn is_title(word: &str) -> bool {
    let mut chars = word.chars();
    chars.next().is_some_and(char::is_uppercase) && !chars.any(char::is_uppercase)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_hello_becomes_hello_with_kwargs() {
        let command = decode(br#"Core.Hello {"client":"Mudlet","version":"4"}"#);
        assert_eq!(command.name, "hello");
        assert!(command.args.is_empty());
        assert_eq!(command.kwargs["client"], Value::from("Mudlet"));
        assert_eq!(command.kwargs["version"], Value::from("4"));
    }

    #[test]
    fn a_list_is_args_and_a_scalar_is_one_arg() {
        let list = decode(br#"Char.Skills.Get [1, "two"]"#);
        assert_eq!(list.name, "char_skills_get");
        assert_eq!(list.args, [Value::Int(1), Value::from("two")]);
        let scalar = decode(b"Char.Name 3.5");
        assert_eq!(scalar.args, [Value::Float(3.5)]);
        let not_json = decode(b"Char.Say hello there");
        assert_eq!(not_json.args, [Value::from("hello there")]);
        let bare = decode(b"Core.Ping");
        assert_eq!((bare.name.as_str(), bare.args.len()), ("ping", 0));
    }

    #[test]
    fn well_known_packages_use_evennia_names_both_ways() {
        assert_eq!(decode(b"Core.Supports.Get").name, "client_options");
        assert_eq!(package_name("get_value"), "Char.Value.Get");
    }

    #[test]
    fn outbound_names_follow_evennia() {
        assert_eq!(package_name("text"), "Core.Text");
        assert_eq!(package_name("char_vitals"), "Char.Vitals");
        assert_eq!(package_name("char_HP"), "Char.HP");
    }

    #[test]
    fn outbound_payload_layout_follows_evennia() {
        let mut command = Command {
            name: "char_vitals".into(),
            args: vec![Value::Int(1)],
            kwargs: Map::new(),
        };
        assert_eq!(encode(&command), b"Char.Vitals 1");
        command.args.push(Value::from("a"));
        assert_eq!(encode(&command), br#"Char.Vitals [1, "a"]"#);
        command.kwargs.insert("hp".into(), Value::Int(5));
        assert_eq!(encode(&command), br#"Char.Vitals [[1, "a"], {"hp": 5}]"#);
        command.args.clear();
        assert_eq!(encode(&command), br#"Char.Vitals {"hp": 5}"#);
    }

    #[test]
    fn round_trip_keeps_nested_values() {
        let body = br#"Room.Info {"exits": ["n", "s"], "id": 7, "meta": {"dark": true}}"#;
        let command = decode(body);
        assert_eq!(command.name, "room_info");
        assert_eq!(encode(&command), body);
    }
}
