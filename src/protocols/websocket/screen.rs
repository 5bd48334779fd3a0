//! The window size a web client reports, the websocket side of telnet's
//! NAWS: `screenwidth` and `screenheight` (columns and rows) among the
//! keyword arguments of Evennia's `client_options` input function, or of
//! `hello` (GMCP `Core.Hello`, which Evennia treats the same way).
//!
//! - Evennia format: `["client_options", [], {"screenwidth": 100, "screenheight": 30}]`
//! - GMCP formats: `Core.Hello {"screenwidth": 100, "screenheight": 30}`
//!
//! The format decoders ([`super::evennia`], [`super::json_standard`],
//! [`super::gmcp_standard`]) pass every decoded command through [`split`];
//! the engine sets the session's `SCREENWIDTH` / `SCREENHEIGHT` flags from
//! the [`Incoming::Size`] it yields, as NAWS does. Pure.
//!
//! ```
//! use portal::protocols::websocket::format::Incoming;
//! use portal::protocols::websocket::screen::{split, Size};
//! use portal::wire::message::Command;
//! use portal::wire::value::Value;
//! let command = Command {
//!     name: "client_options".into(),
//!     args: Vec::new(),
//!     kwargs: [("screenwidth".to_owned(), Value::Int(100))].into_iter().collect(),
//! };
//! let size = Size { width: Some(100), height: None };
//! assert_eq!(split(command), vec![Incoming::Size(size)]);
//! ```

use super::format::Incoming;
use crate::wire::message::Command;
use crate::wire::value::Value;

/// The commands whose keyword arguments may carry a size.
const SIZE_COMMANDS: [&str; 2] = ["client_options", "hello"];

/// A reported window size in characters; `None` where the client did not
/// say (or said 0, "unknown", as NAWS does).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Size {
    pub width: Option<u16>,
    pub height: Option<u16>,
}

/// A decoded command as what it means: the size it reports (if any), then
/// the command without the size keys, unless nothing but those was in it.
pub fn split(mut command: Command) -> Vec<Incoming> {
    if !SIZE_COMMANDS.contains(&command.name.as_str()) {
        return vec![Incoming::Command(command)];
    }
    let width = take(&mut command, "screenwidth");
    let height = take(&mut command, "screenheight");
    if width.is_none() && height.is_none() {
        return vec![Incoming::Command(command)];
    }
    let mut out = Vec::with_capacity(2);
    match (dimension(width), dimension(height)) {
        (Ok(width), Ok(height)) => out.push(Incoming::Size(Size { width, height })),
        (Err(why), _) | (_, Err(why)) => out.push(Incoming::Bad(why)),
    }
    if !command.args.is_empty() || !command.kwargs.is_empty() {
        out.push(Incoming::Command(command));
    }
    out
}

/// Remove a keyword argument, whatever its case (Evennia lowercases them).
fn take(command: &mut Command, key: &str) -> Option<Value> {
    let found = command
        .kwargs
        .keys()
        .find(|k| k.eq_ignore_ascii_case(key))?
        .clone();
    command.kwargs.remove(&found)
}

/// A size value: a whole number 0..=65535 (0 = unknown), as a number or
/// a string of digits (Evennia reads it with `int()`).
fn dimension(value: Option<Value>) -> Result<Option<u16>, String> {
    let Some(value) = value else {
        return Ok(None);
    };
    let number = match &value {
        Value::Int(n) => Some(*n),
        Value::Str(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    };
    match number.map(u16::try_from) {
        Some(Ok(0)) => Ok(None),
        Some(Ok(n)) => Ok(Some(n)),
        _ => Err("screenwidth and screenheight must be whole numbers from 0 to 65535".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command(name: &str, pairs: &[(&str, Value)]) -> Command {
        Command {
            name: name.into(),
            args: Vec::new(),
            kwargs: pairs
                .iter()
                .map(|(key, value)| ((*key).to_owned(), value.clone()))
                .collect(),
        }
    }

    fn size(width: Option<u16>, height: Option<u16>) -> Incoming {
        Incoming::Size(Size { width, height })
    }

    #[test]
    fn size_keys_become_a_size_and_nothing_is_forwarded() {
        let got = split(command(
            "client_options",
            &[
                ("screenwidth", Value::Int(120)),
                ("SCREENHEIGHT", Value::from("40")),
            ],
        ));
        assert_eq!(got, vec![size(Some(120), Some(40))]);
        let got = split(command("hello", &[("screenheight", Value::Int(0))]));
        assert_eq!(got, vec![size(None, None)]);
    }

    #[test]
    fn other_keys_are_forwarded_without_the_size() {
        let got = split(command(
            "hello",
            &[
                ("client", Value::from("Mudlet")),
                ("screenwidth", Value::Int(90)),
            ],
        ));
        assert_eq!(got.len(), 2);
        assert_eq!(got[0], size(Some(90), None));
        let Incoming::Command(rest) = &got[1] else {
            panic!("{got:?}")
        };
        assert_eq!(rest.name, "hello");
        assert_eq!(rest.kwargs.len(), 1);
    }

    #[test]
    fn commands_without_a_size_pass_unchanged() {
        let plain = command("client_options", &[("get", Value::Bool(true))]);
        assert_eq!(split(plain.clone()), vec![Incoming::Command(plain)]);
        let other = command("ping", &[("screenwidth", Value::Int(80))]);
        assert_eq!(split(other.clone()), vec![Incoming::Command(other)]);
    }

    #[test]
    fn bad_sizes_are_explained() {
        for bad in [
            Value::Int(-1),
            Value::Int(70000),
            Value::from("wide"),
            Value::Bool(true),
            Value::List(vec![]),
        ] {
            let got = split(command("client_options", &[("screenwidth", bad.clone())]));
            assert!(matches!(&got[..], [Incoming::Bad(_)]), "{bad:?}: {got:?}");
        }
    }
}
