//! MSDP, the MUD Server Data Protocol (option 69): typed variables inside
//! `IAC SB MSDP ... IAC SE`.
//!
//! A message is `VAR name VAL value`, where a value is text, a table
//! (`TABLE_OPEN (VAR k VAL v)* TABLE_CLOSE`) or an array
//! (`ARRAY_OPEN (VAL v)* ARRAY_CLOSE`), nested to any depth. Inbound, each
//! variable becomes a command as Evennia makes it: a table gives kwargs, an
//! array or text gives args, the same name seen twice merges, and MSDP's
//! generic commands (`LIST`, `REPORT`, `RESET`, `SEND`, `UNREPORT`) get an
//! `msdp_` prefix (the game library answers those by default:
//! [`crate::game::msdp`]). Outbound, one argument is sent as the value,
//! several as an array, kwargs as a table; so a reply naming a list with
//! one list argument is `VAR name VAL ARRAY_OPEN (VAL item)* ARRAY_CLOSE`.
//!
//! ```
//! use portal::protocols::telnet::msdp::{decode, encode};
//! use portal::wire::value::Value;
//! let commands = decode(b"\x01LIST\x02COMMANDS");
//! assert_eq!(commands[0].name, "msdp_list");
//! assert_eq!(commands[0].args, [Value::from("COMMANDS")]);
//! assert_eq!(encode(&commands[0]), b"\x01msdp_list\x02COMMANDS");
//! ```

use crate::wire::message::Command;
use crate::wire::value::{Map, Value};

/// Telnet option number.
pub const MSDP: u8 = 69;
pub const VAR: u8 = 1;
pub const VAL: u8 = 2;
pub const TABLE_OPEN: u8 = 3;
pub const TABLE_CLOSE: u8 = 4;
pub const ARRAY_OPEN: u8 = 5;
pub const ARRAY_CLOSE: u8 = 6;

/// Deepest nesting decoded; deeper structure is flattened to text so
/// hostile input cannot exhaust a worker's stack.
const MAX_DEPTH: usize = 16;

/// MSDP commands Evennia renames so they cannot collide with game commands.
const GENERIC: [&str; 5] = ["list", "report", "reset", "send", "unreport"];

/// An MSDP message body → commands, in the order their names first appear.
pub fn decode(body: &[u8]) -> Vec<Command> {
    let mut reader = Reader { body, at: 0 };
    let mut commands: Vec<Command> = Vec::new();
    while let Some((name, values)) = reader.variable(0) {
        let name = command_name(&name);
        let index = match commands.iter().position(|c| c.name == name) {
            Some(index) => index,
            None => {
                commands.push(Command {
                    name,
                    ..Command::default()
                });
                commands.len() - 1
            }
        };
        let command = &mut commands[index];
        for value in values {
            match value {
                Value::Map(map) => command.kwargs.extend(map),
                Value::List(items) => command.args.extend(items),
                Value::Str(s) if s.is_empty() => {}
                other => command.args.push(other),
            }
        }
    }
    commands
}

fn command_name(name: &str) -> String {
    let lower = name.to_lowercase();
    if GENERIC.contains(&lower.as_str()) {
        format!("msdp_{lower}")
    } else {
        name.to_owned()
    }
}

/// A cursor over an MSDP body.
struct Reader<'a> {
    body: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn peek(&self) -> Option<u8> {
        self.body.get(self.at).copied()
    }

    /// `VAR name (VAL value)*`, skipping any junk before the VAR.
    fn variable(&mut self, depth: usize) -> Option<(String, Vec<Value>)> {
        while self.peek()? != VAR {
            if depth > 0 && matches!(self.peek(), Some(TABLE_CLOSE)) {
                return None;
            }
            self.at += 1;
        }
        self.at += 1;
        let name = self.text();
        let mut values = Vec::new();
        while self.peek() == Some(VAL) {
            self.at += 1;
            values.push(self.value(depth));
        }
        Some((name, values))
    }

    fn value(&mut self, depth: usize) -> Value {
        match self.peek() {
            Some(TABLE_OPEN) if depth < MAX_DEPTH => {
                self.at += 1;
                Value::Map(self.table(depth + 1))
            }
            Some(ARRAY_OPEN) if depth < MAX_DEPTH => {
                self.at += 1;
                Value::List(self.array(depth + 1))
            }
            _ => Value::Str(self.text()),
        }
    }

    fn table(&mut self, depth: usize) -> Map {
        let mut map = Map::new();
        loop {
            match self.peek() {
                None => return map,
                Some(TABLE_CLOSE) => {
                    self.at += 1;
                    return map;
                }
                Some(VAR) => {
                    if let Some((key, mut values)) = self.variable(depth) {
                        let value = match values.len() {
                            0 => Value::Str(String::new()),
                            1 => values.remove(0),
                            _ => Value::List(values),
                        };
                        if !key.is_empty() {
                            map.insert(key, value);
                        }
                    }
                }
                Some(_) => self.at += 1,
            }
        }
    }

    fn array(&mut self, depth: usize) -> Vec<Value> {
        let mut items = Vec::new();
        loop {
            match self.peek() {
                None => return items,
                Some(ARRAY_CLOSE) => {
                    self.at += 1;
                    return items;
                }
                Some(VAL) => {
                    self.at += 1;
                    items.push(self.value(depth));
                }
                Some(_) => self.at += 1,
            }
        }
    }

    /// Text up to the next MSDP control byte.
    fn text(&mut self) -> String {
        let start = self.at;
        while self
            .peek()
            .is_some_and(|b| !(VAR..=ARRAY_CLOSE).contains(&b))
        {
            self.at += 1;
        }
        String::from_utf8_lossy(&self.body[start..self.at]).into_owned()
    }
}

/// A command → an MSDP message body, laid out as Evennia lays it out.
pub fn encode(command: &Command) -> Vec<u8> {
    let mut out = Vec::new();
    let head = |out: &mut Vec<u8>| {
        out.push(VAR);
        push_text(out, &command.name);
        out.push(VAL);
    };
    if command.args.is_empty() && command.kwargs.is_empty() {
        head(&mut out);
        return out;
    }
    match command.args.as_slice() {
        [] => {}
        [one] => {
            head(&mut out);
            push_value(&mut out, one);
        }
        many => {
            head(&mut out);
            push_array(&mut out, many);
        }
    }
    if !command.kwargs.is_empty() {
        head(&mut out);
        push_table(&mut out, &command.kwargs);
    }
    out
}

fn push_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::List(items) => push_array(out, items),
        Value::Map(map) => push_table(out, map),
        scalar => push_text(out, &scalar_text(scalar)),
    }
}

fn push_array(out: &mut Vec<u8>, items: &[Value]) {
    out.push(ARRAY_OPEN);
    for item in items {
        out.push(VAL);
        push_value(out, item);
    }
    out.push(ARRAY_CLOSE);
}

fn push_table(out: &mut Vec<u8>, map: &Map) {
    out.push(TABLE_OPEN);
    for (key, item) in map {
        out.push(VAR);
        push_text(out, key);
        out.push(VAL);
        push_value(out, item);
    }
    out.push(TABLE_CLOSE);
}

/// A scalar as Python's `str()` writes it (Evennia sends `str(arg)`).
fn scalar_text(value: &Value) -> String {
    match value {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => format!("{f:?}"),
        Value::Str(s) => s.clone(),
        Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
        Value::List(_) | Value::Map(_) => String::new(),
    }
}

/// Text with MSDP's control bytes (and NUL) removed so it cannot change
/// the structure.
fn push_text(out: &mut Vec<u8>, text: &str) {
    out.extend(text.bytes().filter(|&b| b > ARRAY_CLOSE));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, Value)]) -> Map {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }

    #[test]
    fn nested_tables_and_arrays_decode() {
        // VAR ROOM VAL { VAR VNUM VAL 6008 VAR EXITS VAL { VAR n VAL 6011 }
        //                VAR TAGS VAL [ VAL a VAL [ VAL b ] ] }
        let body = b"\x01ROOM\x02\x03\x01VNUM\x026008\x01EXITS\x02\x03\x01n\x026011\x04\
\x01TAGS\x02\x05\x02a\x02\x05\x02b\x06\x06\x04";
        let commands = decode(body);
        assert_eq!(commands.len(), 1);
        let exits = map(&[("n", Value::from("6011"))]);
        let tags = Value::List(vec![Value::from("a"), Value::List(vec![Value::from("b")])]);
        let want = map(&[
            ("VNUM", Value::from("6008")),
            ("EXITS", Value::Map(exits)),
            ("TAGS", tags),
        ]);
        assert_eq!(commands[0].name, "ROOM");
        assert_eq!(commands[0].kwargs, want);
    }

    #[test]
    fn arrays_are_args_and_several_variables_are_several_commands() {
        let commands = decode(b"\x01REPORT\x02\x05\x02HEALTH\x02MANA\x06\x01PING\x02");
        assert_eq!(commands[0].name, "msdp_report");
        assert_eq!(
            commands[0].args,
            [Value::from("HEALTH"), Value::from("MANA")]
        );
        assert_eq!(commands[1].name, "PING");
        assert!(commands[1].args.is_empty());
    }

    #[test]
    fn the_same_name_merges_array_and_table() {
        let commands = decode(b"\x01X\x02\x05\x021\x06\x01X\x02\x03\x01k\x02v\x04");
        assert_eq!(commands.len(), 1);
        assert_eq!(commands[0].args, [Value::from("1")]);
        assert_eq!(commands[0].kwargs, map(&[("k", Value::from("v"))]));
    }

    #[test]
    fn truncated_and_garbage_input_does_not_panic() {
        for body in [
            &b"\x01"[..],
            b"\x02\x03\x05",
            b"\x01A\x02\x03\x01",
            b"\x04\x06junk",
        ] {
            let _ = decode(body);
        }
        let deep = [vec![VAR, b'A', VAL], [ARRAY_OPEN, VAL].repeat(1000)].concat();
        let _ = decode(&deep);
    }

    #[test]
    fn encode_follows_evennia_layout() {
        let mut command = Command {
            name: "HEALTH".into(),
            ..Command::default()
        };
        assert_eq!(encode(&command), b"\x01HEALTH\x02");
        command.args = vec![Value::Int(10), Value::Bool(true)];
        assert_eq!(encode(&command), b"\x01HEALTH\x02\x05\x0210\x02True\x06");
        command.kwargs = map(&[("max", Value::Int(20))]);
        assert_eq!(
            encode(&command),
            b"\x01HEALTH\x02\x05\x0210\x02True\x06\x01HEALTH\x02\x03\x01max\x0220\x04"
        );
    }

    #[test]
    fn encode_then_decode_keeps_nested_structure() {
        let kwargs = map(&[
            (
                "exits",
                Value::List(vec![Value::from("n"), Value::from("s")]),
            ),
            ("area", Value::Map(map(&[("name", Value::from("Town"))]))),
        ]);
        let command = Command {
            name: "ROOM".into(),
            args: vec![],
            kwargs: kwargs.clone(),
        };
        assert_eq!(decode(&encode(&command))[0].kwargs, kwargs);
    }
}
