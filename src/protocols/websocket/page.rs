//! The web client's files, embedded in the binary (no CDN, nothing fetched
//! from elsewhere: the page works on a host without internet), and the
//! answers to plain HTTP requests on the web listener.
//!
//! `GET /` (or `/index.html`) is the page, with the game's name (`[portal]
//! name`, HTML-escaped) in its title and header; `/client.js` and
//! `/style.css` its script and style; `/favicon.svg` (also answered at
//! `/favicon.ico`, where browsers look by themselves) its icon; anything
//! else is 404. Every answer forbids framing and sniffing and pins the page
//! to its own origin with a Content-Security-Policy.

use crate::markup::escape_html;
use crate::protocols::http::{Request, Response};

/// The page itself, with [`NAME_SLOT`] where the game's name goes.
pub const INDEX_HTML: &str = include_str!("../../web/index.html");
/// What [`page`] replaces with the game's name.
pub const NAME_SLOT: &str = "{{game_name}}";
/// Its icon.
pub const FAVICON_SVG: &str = include_str!("../../web/favicon.svg");
/// Its script.
pub const CLIENT_JS: &str = include_str!("../../web/client.js");
/// Its style sheet.
pub const STYLE_CSS: &str = include_str!("../../web/style.css");

/// Scripts and styles from the portal only; the websocket to the portal
/// only. Inline style attributes are allowed because rendered game text
/// carries xterm and truecolor colours as `style="color:#rrggbb"` (values
/// written by the renderer, never by a player).
const CSP: &str = "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; \
style-src 'self' 'unsafe-inline'; script-src 'self'; frame-ancestors 'none'; base-uri 'none'; \
form-action 'none'";

/// The page, named after the game.
pub fn page(game_name: &str) -> String {
    INDEX_HTML.replace(NAME_SLOT, &escape_html(game_name))
}

/// The answer to a plain (non-upgrade) request; `game_name` names the page.
pub fn answer(request: &Request, game_name: &str) -> Response {
    if request.method != "GET" && request.method != "HEAD" {
        return Response::error(405, "Only GET and HEAD are served here.")
            .with("Allow", "GET, HEAD");
    }
    if request.has_body() {
        return Response::error(413, "Requests with a body are not served here.");
    }
    let (content_type, body) = match request.path.as_str() {
        "/" | "/index.html" => ("text/html; charset=utf-8", page(game_name)),
        "/client.js" => ("text/javascript; charset=utf-8", CLIENT_JS.to_owned()),
        "/style.css" => ("text/css; charset=utf-8", STYLE_CSS.to_owned()),
        "/favicon.svg" | "/favicon.ico" => ("image/svg+xml", FAVICON_SVG.to_owned()),
        _ => return secured(Response::error(404, "Not found.")),
    };
    secured(Response::new(200, content_type, body).with("Cache-Control", "no-cache"))
}

/// Whether `request` fetches the page (where the browser id cookie is set).
pub fn is_page(request: &Request) -> bool {
    matches!(request.path.as_str(), "/" | "/index.html")
}

fn secured(response: Response) -> Response {
    response
        .with("Content-Security-Policy", CSP)
        .with("X-Content-Type-Options", "nosniff")
        .with("X-Frame-Options", "DENY")
        .with("Referrer-Policy", "no-referrer")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocols::http::{parse_request, Parsed};

    fn get(line: &str) -> Response {
        let text = format!("{line}\r\nHost: h\r\n\r\n");
        match parse_request(text.as_bytes(), 4096) {
            Parsed::Request(request, _) => answer(&request, "Portal"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_page_and_its_files_are_served_and_the_rest_is_404() {
        let page = get("GET / HTTP/1.1");
        assert_eq!(page.status, 200);
        assert_eq!(page.body, super::page("Portal").as_bytes());
        assert_eq!(get("GET /client.js HTTP/1.1").body, CLIENT_JS.as_bytes());
        assert_eq!(get("GET /style.css HTTP/1.1").status, 200);
        for icon in ["/favicon.svg", "/favicon.ico"] {
            let got = get(&format!("GET {icon} HTTP/1.1"));
            assert_eq!(got.status, 200, "{icon}");
            assert_eq!(got.body, FAVICON_SVG.as_bytes());
        }
        assert_eq!(get("GET /etc/passwd HTTP/1.1").status, 404);
        assert_eq!(get("GET /../Cargo.toml HTTP/1.1").status, 404);
        assert_eq!(get("POST / HTTP/1.1").status, 405);
    }

    #[test]
    fn the_page_carries_the_game_name_escaped() {
        assert_eq!(INDEX_HTML.matches(NAME_SLOT).count(), 2, "title and header");
        let html = page("Tom & <Jerry>'s \"MUD\"");
        assert!(!html.contains(NAME_SLOT));
        assert!(!html.contains("<Jerry>"));
        assert!(html.contains("<title>Tom &amp; &lt;Jerry&gt;&#39;s &quot;MUD&quot;</title>"));
    }

    #[test]
    fn every_answer_carries_the_security_headers() {
        for response in [get("GET / HTTP/1.1"), get("GET /nope HTTP/1.1")] {
            let names: Vec<&str> = response.headers.iter().map(|(n, _)| n.as_str()).collect();
            assert!(names.contains(&"Content-Security-Policy"));
            assert!(names.contains(&"X-Frame-Options"));
        }
    }
}
