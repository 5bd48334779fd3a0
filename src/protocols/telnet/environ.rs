//! NEW-ENVIRON, RFC 1572 (option 39), as MNES (the Mud New-Environ
//! Standard) uses it: the client reports variables such as its name,
//! version, charset and MTTS bits.
//!
//! After IAC WILL NEW-ENVIRON we send `IAC SB NEW-ENVIRON SEND (VAR name)*
//! IAC SE`; the client answers `IS (VAR|USERVAR name VALUE value)*` and
//! later `INFO ...` when a value changes. ESC quotes the next byte.
//!
//! ```
//! use portal::protocols::telnet::environ::parse;
//! let vars = parse(b"\x00\x00CLIENT_NAME\x01Mudlet\x00MTTS\x01137");
//! assert_eq!(vars, [("CLIENT_NAME".into(), "Mudlet".into()), ("MTTS".into(), "137".into())]);
//! ```

use super::charset::codec_name;
use super::ttype::apply_mtts;
use crate::wire::flags::ProtocolFlags;

/// Telnet option number.
pub const NEW_ENVIRON: u8 = 39;
pub const IS: u8 = 0;
pub const SEND: u8 = 1;
pub const INFO: u8 = 2;
pub const VAR: u8 = 0;
pub const VALUE: u8 = 1;
pub const ESC: u8 = 2;
pub const USERVAR: u8 = 3;

/// The MNES variables we ask for.
pub const REQUESTED: [&str; 5] = [
    "CLIENT_NAME",
    "CLIENT_VERSION",
    "CHARSET",
    "MTTS",
    "TERMINAL_TYPE",
];

/// The body of our SEND.
pub fn request() -> Vec<u8> {
    let mut body = vec![SEND];
    for name in REQUESTED {
        body.push(VAR);
        body.extend_from_slice(name.as_bytes());
    }
    body
}

/// The variables in an IS or INFO body (anything else gives none).
pub fn parse(body: &[u8]) -> Vec<(String, String)> {
    let Some((&(IS | INFO), mut rest)) = body.split_first() else {
        return Vec::new();
    };
    let mut vars = Vec::new();
    while let Some((&kind, after)) = rest.split_first() {
        if kind != VAR && kind != USERVAR {
            rest = after;
            continue;
        }
        let (name, after) = field(after);
        let (value, after) = match after.split_first() {
            Some((&VALUE, value)) => field(value),
            _ => (Vec::new(), after),
        };
        rest = after;
        let name = String::from_utf8_lossy(&name).into_owned();
        if !name.is_empty() {
            vars.push((name, String::from_utf8_lossy(&value).into_owned()));
        }
    }
    vars
}

/// Bytes up to the next unescaped VAR/VALUE/USERVAR, unescaped.
fn field(input: &[u8]) -> (Vec<u8>, &[u8]) {
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(&b) = input.get(i) {
        match b {
            ESC => {
                if let Some(&quoted) = input.get(i + 1) {
                    out.push(quoted);
                }
                i += 2;
            }
            VAR | VALUE | USERVAR => break,
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    (out, input.get(i..).unwrap_or_default())
}

/// Record the variables MNES defines in the protocol flags. Returns
/// whether any flag changed.
pub fn apply(vars: &[(String, String)], flags: &mut ProtocolFlags) -> bool {
    let before = flags.clone();
    for (name, value) in vars {
        match name.as_str() {
            "CLIENT_NAME" if !value.is_empty() => {
                flags.clientname = Some(value.to_uppercase().into());
            }
            "CLIENT_VERSION" if !value.is_empty() => {
                flags.clientversion = Some(value.clone().into());
            }
            "CHARSET" => {
                if let Some(codec) = codec_name(value) {
                    flags.encoding = Some(codec.into());
                }
            }
            "MTTS" => apply_mtts(&format!("MTTS {value}"), flags),
            "TERMINAL_TYPE" if !value.is_empty() => {
                flags.term = Some(value.clone().into());
            }
            _ => {}
        }
    }
    *flags != before
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::value::Value;

    #[test]
    fn request_names_the_mnes_variables() {
        let body = request();
        assert_eq!(&body[..13], b"\x01\x00CLIENT_NAME");
        assert!(body.ends_with(b"\x00TERMINAL_TYPE"));
    }

    #[test]
    fn escaped_bytes_and_missing_values_parse() {
        let vars = parse(b"\x02\x03A\x02\x01B\x01x\x02\x00y\x00EMPTY");
        assert_eq!(
            vars,
            [
                ("A\u{1}B".into(), "x\u{0}y".into()),
                ("EMPTY".into(), String::new())
            ]
        );
    }

    #[test]
    fn mnes_variables_become_flags() {
        let mut flags = ProtocolFlags::default();
        let vars = parse(b"\x00\x00CLIENT_NAME\x01Mudlet\x00CLIENT_VERSION\x014.17\x00CHARSET\x01ISO-8859-1\x00MTTS\x01265");
        assert!(apply(&vars, &mut flags));
        assert_eq!(flags.to_map()["CLIENTNAME"], Value::from("MUDLET"));
        assert_eq!(flags.to_map()["CLIENTVERSION"], Value::from("4.17"));
        assert_eq!(flags.to_map()["ENCODING"], Value::from("latin-1"));
        assert_eq!(flags.to_map()["TRUECOLOR"], Value::Bool(true));
        assert!(!apply(&vars, &mut flags), "the same values change nothing");
    }
}
