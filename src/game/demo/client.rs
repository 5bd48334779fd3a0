//! Reading what the portal negotiated with a client: the session record's
//! `protocol_flags`, and what the client told us itself over GMCP
//! (`Core.Hello`, kept in `server_data`).

use super::markup::escape;
use crate::wire::flags::{Flag, Text};
use crate::wire::session::Session;
use crate::wire::value::Value;

/// The flag the `screenreader` command toggles, by its wire name.
pub const SCREENREADER: &str = Flag::Screenreader.name();

/// `server_data` keys for what the client said in GMCP `Core.Hello`.
pub const HELLO_CLIENT: &str = "gmcp_client";
pub const HELLO_VERSION: &str = "gmcp_client_version";

/// The yes/no abilities the `client` command lists, in this order.
const ABILITIES: [Flag; 8] = [
    Flag::Ansi,
    Flag::Xterm256,
    Flag::Truecolor,
    Flag::Mxp,
    Flag::Gmcp,
    Flag::Msdp,
    Flag::Mccp,
    Flag::Screenreader,
];

/// Whether a boolean flag is on (missing counts as off).
pub fn flag_on(session: &Session, flag: Flag) -> bool {
    session.protocol_flags.is_on(flag).unwrap_or(false)
}

/// Whether the client takes out-of-band data (GMCP or MSDP on telnet; a
/// web client whose format has an out-of-band channel sets `OOB`).
pub fn wants_oob(session: &Session) -> bool {
    [Flag::Gmcp, Flag::Msdp, Flag::Oob]
        .into_iter()
        .any(|flag| flag_on(session, flag))
}

/// Whether the client's encoding is UTF-8 (the default when unknown).
pub fn is_utf8(session: &Session) -> bool {
    match non_empty(&session.protocol_flags.encoding) {
        Some(enc) => {
            let enc = enc.to_ascii_lowercase().replace(['-', '_'], "");
            enc == "utf8"
        }
        None => true,
    }
}

/// A text flag, if set and non-empty.
fn non_empty(text: &Option<Text>) -> Option<&str> {
    text.as_deref().filter(|s| !s.is_empty())
}

/// The client's screen width, if it told (and it is sane).
pub fn screen_width(session: &Session) -> Option<usize> {
    let width = session.protocol_flags.screen_width()?;
    usize::try_from(width).ok().filter(|w| *w >= 10)
}

/// A string from the session's `server_data`.
fn server_str<'a>(session: &'a Session, key: &str) -> Option<&'a str> {
    session
        .server_data
        .get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// The `client` command's report.
pub fn report(session: &Session) -> String {
    let flags = &session.protocol_flags;
    let name = non_empty(&flags.clientname).or_else(|| server_str(session, HELLO_CLIENT));
    let version = non_empty(&flags.clientversion).or_else(|| server_str(session, HELLO_VERSION));
    let client = match (name, version) {
        (Some(n), Some(v)) => format!("{} {}", escape(n), escape(v)),
        (Some(n), None) => escape(n),
        (None, _) => "unknown".to_owned(),
    };
    let screen = match (flags.screen_width(), flags.screen_height()) {
        (Some(w), Some(h)) => format!("{w}x{h}"),
        _ => "unknown".to_owned(),
    };
    let encoding = non_empty(&flags.encoding).map_or("unknown".to_owned(), escape);
    let mut out = format!(
        "|wYour connection|n\n\
         Protocol: {}\n\
         Client: {client}\n\
         Screen: {screen}\n\
         Encoding: {encoding}\n",
        escape(&session.protocol_key)
    );
    for flag in ABILITIES {
        let state = if flag_on(session, flag) {
            "|gyes|n"
        } else {
            "|xno|n"
        };
        out.push_str(&format!("{}: {state}\n", flag.name()));
    }
    out.pop();
    out
}

#[cfg(test)]
mod tests {
    use super::super::markup::strip;
    use super::*;
    use crate::wire::value::Map;

    fn session() -> Session {
        Session::init_session(1, "telnet", "127.0.0.1:1")
    }

    fn window(n: i64) -> Value {
        let mut m = Map::new();
        m.insert("0".into(), Value::Int(n));
        Value::Map(m)
    }

    #[test]
    fn report_shows_negotiated_flags() {
        let mut s = session();
        let flags = &mut s.protocol_flags;
        flags.insert("CLIENTNAME".into(), Value::from("Mudlet"));
        flags.insert("CLIENTVERSION".into(), Value::from("4.17"));
        flags.insert("SCREENWIDTH".into(), window(120));
        flags.insert("SCREENHEIGHT".into(), window(40));
        flags.insert("GMCP".into(), Value::Bool(true));
        flags.insert("ANSI".into(), Value::Bool(true));
        let text = strip(&report(&s));
        assert!(text.contains("Client: Mudlet 4.17\n"), "{text}");
        assert!(text.contains("Screen: 120x40\n"), "{text}");
        assert!(text.contains("Encoding: utf-8\n"), "{text}");
        assert!(text.contains("ANSI: yes\n"), "{text}");
        assert!(text.contains("GMCP: yes\n"), "{text}");
        assert!(text.contains("MSDP: no\n"), "{text}");
        assert!(text.ends_with("SCREENREADER: no"), "{text}");
    }

    #[test]
    fn report_says_unknown_for_missing_data_and_escapes_client_strings() {
        let mut s = session();
        s.protocol_flags.clear();
        let text = strip(&report(&s));
        assert!(text.contains("Client: unknown\n"), "{text}");
        assert!(text.contains("Screen: unknown\n"), "{text}");
        assert!(text.contains("Encoding: unknown\n"), "{text}");
        assert!(text.contains("XTERM256: no\n"), "{text}");
        s.server_data
            .insert(HELLO_CLIENT.into(), Value::from("Evil|rClient"));
        assert!(report(&s).contains("Client: Evil||rClient\n"));
    }

    #[test]
    fn screen_size_accepts_plain_numbers_and_default_flags() {
        let mut s = session();
        assert!(report(&s).contains("Screen: 78x45\n"));
        s.protocol_flags
            .insert("SCREENWIDTH".into(), Value::Int(100));
        assert!(report(&s).contains("Screen: 100x45\n"));
        assert_eq!(screen_width(&s), Some(100));
        s.protocol_flags.insert("SCREENWIDTH".into(), Value::Int(0));
        assert_eq!(screen_width(&s), None);
    }

    #[test]
    fn oob_and_encoding_checks() {
        let mut s = session();
        assert!(!wants_oob(&s));
        assert!(is_utf8(&s));
        s.protocol_flags.insert("MSDP".into(), Value::Bool(true));
        assert!(wants_oob(&s));
        s.protocol_flags
            .insert("ENCODING".into(), Value::from("latin-1"));
        assert!(!is_utf8(&s));
        s.protocol_flags
            .insert("ENCODING".into(), Value::from("UTF_8"));
        assert!(is_utf8(&s));
    }
}
