//! The websocket opening handshake (RFC 6455 section 4.2), server side:
//! the checks a browser's upgrade request must pass, the subprotocol
//! choice, and the `101 Switching Protocols` answer.
//!
//! The Origin check defends against cross-site websocket hijacking: a page
//! on another site could otherwise open a websocket to the portal with the
//! player's cookie. A request without `Origin` comes from a non-browser
//! client and is let through (nothing of the player's is at stake there).

use super::format::Format;
use crate::protocols::http::{Request, Response};

/// An accepted upgrade.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The `101` answer to write.
    pub response: Response,
    pub format: Format,
}

/// Whether `request` asks to become a websocket.
pub fn is_upgrade(request: &Request) -> bool {
    request.header_has_token("upgrade", "websocket")
}

/// Check an upgrade request and answer it. `allowed_origins` empty means
/// the page's own origin only: Origin's host must be the Host header and
/// its scheme the listener's (`https` when `secure`).
pub fn accept(
    request: &Request,
    allowed_origins: &[String],
    secure: bool,
) -> Result<Accepted, Response> {
    if request.method != "GET" {
        return Err(Response::error(405, "A websocket upgrade must be a GET."));
    }
    if !request.header_has_token("connection", "upgrade") {
        return Err(Response::error(400, "Connection: Upgrade is missing."));
    }
    if request.header("sec-websocket-version").map(str::trim) != Some("13") {
        return Err(
            Response::error(426, "Only websocket version 13 is spoken here.")
                .with("Sec-WebSocket-Version", "13"),
        );
    }
    let Some(key) = request
        .header("sec-websocket-key")
        .filter(|k| !k.is_empty())
    else {
        return Err(Response::error(400, "Sec-WebSocket-Key is missing."));
    };
    check_origin(request, allowed_origins, secure)?;
    let (format, named) = choose_format(request)?;
    let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
    let mut response = Response::new(101, "", Vec::new());
    response.headers = vec![
        ("Upgrade".into(), "websocket".into()),
        ("Connection".into(), "Upgrade".into()),
        ("Sec-WebSocket-Accept".into(), accept),
    ];
    if let Some(named) = named {
        // The client's own spelling: browsers compare the answer exactly.
        response = response.with("Sec-WebSocket-Protocol", &named);
    }
    Ok(Accepted { response, format })
}

pub(crate) fn check_origin(
    request: &Request,
    allowed: &[String],
    secure: bool,
) -> Result<(), Response> {
    let Some(origin) = request.header("origin") else {
        return Ok(());
    };
    let ok = if allowed.is_empty() {
        let scheme = if secure { "https" } else { "http" };
        let (origin_scheme, host) = origin.split_once("://").unwrap_or(("", ""));
        origin_scheme.eq_ignore_ascii_case(scheme)
            && request
                .header("host")
                .is_some_and(|h| !host.is_empty() && h.eq_ignore_ascii_case(host))
    } else {
        allowed
            .iter()
            .any(|a| a == "*" || a.trim_end_matches('/').eq_ignore_ascii_case(origin))
    };
    if ok {
        Ok(())
    } else {
        Err(Response::error(
            403,
            "This page's origin may not open a websocket to this portal.",
        ))
    }
}

/// The client's first subprotocol that we speak, in its order, and its
/// name as the client wrote it (to be echoed back); none asked for means
/// Evennia's format, unnamed.
fn choose_format(request: &Request) -> Result<(Format, Option<String>), Response> {
    let asked: Vec<&str> = request
        .headers
        .iter()
        .filter(|(k, _)| k == "sec-websocket-protocol")
        .flat_map(|(_, v)| v.split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    if asked.is_empty() {
        return Ok((Format::Evennia, None));
    }
    let chosen = asked
        .iter()
        .find_map(|p| Format::from_subprotocol(p).map(|f| (f, p.to_string())));
    match chosen {
        Some((format, name)) => Ok((format, Some(name))),
        None => {
            let spoken: Vec<&str> = Format::ALL.iter().map(|f| f.subprotocol()).collect();
            Err(Response::error(
                400,
                &format!(
                    "No subprotocol in common; this portal speaks: {}",
                    spoken.join(", ")
                ),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocols::http::{parse_request, Parsed};

    fn request(extra: &str) -> Request {
        let text = format!(
            "GET /ws HTTP/1.1\r\nHost: mud.example:4001\r\nConnection: Upgrade\r\n\
             Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extra}\r\n"
        );
        match parse_request(text.as_bytes(), 8192) {
            Parsed::Request(request, _) => request,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_rfc_example_key_gets_the_rfc_answer() {
        let accepted = accept(&request(""), &[], false).unwrap_or_else(|r| panic!("{r:?}"));
        assert_eq!(accepted.format, Format::Evennia);
        let text = String::from_utf8(accepted.response.to_bytes(false)).unwrap_or_default();
        assert!(text.starts_with("HTTP/1.1 101 Switching Protocols\r\n"));
        assert!(text.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
        assert!(!text.contains("Sec-WebSocket-Protocol"));
    }

    #[test]
    fn the_first_spoken_subprotocol_is_chosen_and_named() {
        let asked = "Sec-WebSocket-Protocol: telnet.mudstandards.org, gmcp.mudstandards.org, terminal.mudstandards.org\r\n";
        let accepted = accept(&request(asked), &[], false).unwrap_or_else(|r| panic!("{r:?}"));
        assert_eq!(accepted.format, Format::GmcpStandard);
        let text = String::from_utf8(accepted.response.to_bytes(false)).unwrap_or_default();
        assert!(text.contains("Sec-WebSocket-Protocol: gmcp.mudstandards.org\r\n"));
        let shouted = accept(
            &request("Sec-WebSocket-Protocol: GMCP.mudstandards.org\r\n"),
            &[],
            false,
        );
        let text =
            shouted.map(|a| String::from_utf8(a.response.to_bytes(false)).unwrap_or_default());
        assert!(
            text.is_ok_and(|t| t.contains("Sec-WebSocket-Protocol: GMCP.mudstandards.org\r\n")),
            "the client's spelling is echoed"
        );
        let none = accept(&request("Sec-WebSocket-Protocol: chat\r\n"), &[], false);
        assert_eq!(none.map(|a| a.format).map_err(|r| r.status), Err(400));
    }

    #[test]
    fn a_foreign_origin_is_refused_and_the_own_origin_let_in() {
        let own = request("Origin: http://mud.example:4001\r\n");
        assert!(accept(&own, &[], false).is_ok());
        let foreign = request("Origin: https://evil.example\r\n");
        assert_eq!(
            accept(&foreign, &[], false)
                .map(|_| ())
                .map_err(|r| r.status),
            Err(403)
        );
        let listed = vec!["https://evil.example/".to_owned()];
        assert!(accept(&foreign, &listed, false).is_ok());
        assert!(accept(&foreign, &["*".to_owned()], false).is_ok());
        assert!(
            accept(&request(""), &listed, false).is_ok(),
            "no Origin: not a browser"
        );
    }

    #[test]
    fn a_broken_upgrade_says_what_is_missing() {
        let text = "GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n";
        let Parsed::Request(r, _) = parse_request(text.as_bytes(), 8192) else {
            panic!()
        };
        assert_eq!(
            accept(&r, &[], false).map(|_| ()).map_err(|r| r.status),
            Err(400)
        );
        let old = "GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: upgrade\r\nSec-WebSocket-Version: 8\r\n\r\n";
        let Parsed::Request(r, _) = parse_request(old.as_bytes(), 8192) else {
            panic!()
        };
        assert_eq!(
            accept(&r, &[], false).map(|_| ()).map_err(|r| r.status),
            Err(426)
        );
    }
}
