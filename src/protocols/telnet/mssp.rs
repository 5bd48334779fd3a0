//! MSSP, the MUD Server Status Protocol (option 70): crawlers ask for a
//! table of facts about the game.
//!
//! On IAC DO MSSP the server answers
//! `IAC SB MSSP (MSSP_VAR name (MSSP_VAL value)+)+ IAC SE`. The engine
//! reports the request; the session worker builds the table with
//! [`table`] from [`Facts`] it gathers (player count, start time, bound
//! ports) and the `[mssp]` keys of portal.conf.
//!
//! ```
//! use portal::protocols::telnet::mssp::encode;
//! let table = vec![("NAME".to_string(), vec!["Demo".to_string()])];
//! assert_eq!(encode(&table), b"\xff\xfa\x46\x01NAME\x02Demo\xff\xf0");
//! ```

use super::{IAC, SB, SE};
use std::collections::BTreeMap;

/// What the portal knows about itself for the table.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Facts {
    pub name: String,
    pub players: usize,
    /// When the portal started, in Unix seconds.
    pub started_unix: u64,
    /// The ports of the plain telnet listeners.
    pub telnet_ports: Vec<u16>,
    /// The ports of the telnet/ssl listeners.
    pub tls_ports: Vec<u16>,
}

/// The MSSP table: `NAME`, `PLAYERS` and `UPTIME` (integers, the start
/// time in Unix seconds, as crawlers read them), `CODEBASE`, `PORT` (each
/// telnet port), and with a telnet/ssl listener `TLS` and `SSL` (its port:
/// Mudlet offers an encrypted reconnect on it); then `extra` (the `[mssp]`
/// keys), where a key also given above replaces it (behind a proxy, the
/// public ports differ from the portal's own).
pub fn table(facts: &Facts, extra: &BTreeMap<String, String>) -> Vec<(String, Vec<String>)> {
    let ports = |list: &[u16]| list.iter().map(u16::to_string).collect::<Vec<_>>();
    let mut rows = vec![
        ("NAME".to_owned(), vec![facts.name.clone()]),
        ("PLAYERS".to_owned(), vec![facts.players.to_string()]),
        ("UPTIME".to_owned(), vec![facts.started_unix.to_string()]),
        (
            "CODEBASE".to_owned(),
            vec![format!("Portal {}", env!("CARGO_PKG_VERSION"))],
        ),
    ];
    if !facts.telnet_ports.is_empty() {
        rows.push(("PORT".to_owned(), ports(&facts.telnet_ports)));
    }
    if !facts.tls_ports.is_empty() {
        rows.push(("TLS".to_owned(), ports(&facts.tls_ports)));
        rows.push(("SSL".to_owned(), ports(&facts.tls_ports)));
    }
    for (key, value) in extra {
        let row = (key.clone(), vec![value.clone()]);
        match rows
            .iter_mut()
            .find(|(name, _)| name.eq_ignore_ascii_case(key))
        {
            Some(existing) => *existing = row,
            None => rows.push(row),
        }
    }
    rows
}

/// Telnet option number.
pub const MSSP: u8 = 70;
pub const MSSP_VAR: u8 = 1;
pub const MSSP_VAL: u8 = 2;

/// The whole subnegotiation for a table of `(name, values)`. A name with
/// no value gets one empty value; bytes the format reserves (NUL, VAR, VAL,
/// IAC) are removed from names and values.
pub fn encode(table: &[(String, Vec<String>)]) -> Vec<u8> {
    let mut out = vec![IAC, SB, MSSP];
    for (name, values) in table {
        out.push(MSSP_VAR);
        push_clean(&mut out, name);
        if values.is_empty() {
            out.push(MSSP_VAL);
        }
        for value in values {
            out.push(MSSP_VAL);
            push_clean(&mut out, value);
        }
    }
    out.extend_from_slice(&[IAC, SE]);
    out
}

fn push_clean(out: &mut Vec<u8>, text: &str) {
    let reserved = [0, MSSP_VAR, MSSP_VAL, IAC];
    out.extend(text.bytes().filter(|b| !reserved.contains(b)));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> Facts {
        Facts {
            name: "Demo".into(),
            players: 3,
            started_unix: 1_700_000_000,
            telnet_ports: vec![4000],
            tls_ports: vec![4443],
        }
    }

    fn row<'t>(table: &'t [(String, Vec<String>)], key: &str) -> Option<&'t [String]> {
        table
            .iter()
            .find(|(name, _)| name == key)
            .map(|(_, values)| values.as_slice())
    }

    #[test]
    fn the_table_has_the_crawlers_keys_and_the_tls_port() {
        let table = table(&facts(), &BTreeMap::new());
        assert_eq!(row(&table, "NAME"), Some(&["Demo".to_owned()][..]));
        assert_eq!(row(&table, "PLAYERS"), Some(&["3".to_owned()][..]));
        assert_eq!(row(&table, "UPTIME"), Some(&["1700000000".to_owned()][..]));
        assert_eq!(row(&table, "PORT"), Some(&["4000".to_owned()][..]));
        assert_eq!(row(&table, "TLS"), Some(&["4443".to_owned()][..]));
        assert_eq!(row(&table, "SSL"), Some(&["4443".to_owned()][..]));
        assert!(row(&table, "CODEBASE").is_some());
        let no_tls = Facts {
            tls_ports: vec![],
            ..facts()
        };
        assert_eq!(row(&super::table(&no_tls, &BTreeMap::new()), "TLS"), None);
    }

    #[test]
    fn mssp_keys_in_the_config_add_and_replace() {
        let extra = BTreeMap::from([
            ("TLS".to_owned(), "443".to_owned()),
            ("CODEBASE".to_owned(), "Evennia".to_owned()),
            ("CONTACT".to_owned(), "admin@example.com".to_owned()),
        ]);
        let table = table(&facts(), &extra);
        assert_eq!(row(&table, "TLS"), Some(&["443".to_owned()][..]));
        assert_eq!(row(&table, "CODEBASE"), Some(&["Evennia".to_owned()][..]));
        assert!(row(&table, "CONTACT").is_some());
        let names: Vec<&str> = table.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names.iter().filter(|n| **n == "TLS").count(), 1);
    }

    #[test]
    fn several_values_repeat_val() {
        let table = vec![
            (
                "PORT".to_string(),
                vec!["4000".to_string(), "4001".to_string()],
            ),
            ("EMPTY".to_string(), vec![]),
        ];
        let mut want = vec![IAC, SB, MSSP, MSSP_VAR];
        want.extend_from_slice(b"PORT\x024000\x024001\x01EMPTY\x02");
        want.extend_from_slice(&[IAC, SE]);
        assert_eq!(encode(&table), want);
    }

    #[test]
    fn reserved_bytes_cannot_break_the_frame() {
        let table = vec![("A\u{1}B".to_string(), vec!["x\u{2}\u{0}y".to_string()])];
        let bytes = encode(&table);
        assert_eq!(&bytes[3..bytes.len() - 2], b"\x01AB\x02xy");
    }
}
