//! A websocket test client (tungstenite's client side over a real socket)
//! and a raw HTTP helper, for the web listener's end-to-end tests.

use super::WAIT;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};
use tungstenite::handshake::client::generate_key;
use tungstenite::http::Request;
use tungstenite::{Message, WebSocket};

/// What the upgrade request carries.
#[derive(Default, Clone)]
pub struct Options {
    pub cookie: Option<String>,
    pub origin: Option<String>,
    pub subprotocols: Option<String>,
    /// Further request headers (`X-Forwarded-For` and the like).
    pub headers: Vec<(String, String)>,
}

/// One websocket player.
pub struct WebClient {
    pub ws: WebSocket<TcpStream>,
    /// Everything received so far, as (kind, payload text).
    pub seen: Vec<Message>,
    /// The subprotocol the portal chose.
    pub subprotocol: Option<String>,
}

/// Open a websocket to the portal's web listener.
pub fn try_connect(addr: SocketAddr, options: &Options) -> Result<WebClient, tungstenite::Error> {
    let stream = TcpStream::connect(addr).map_err(tungstenite::Error::Io)?;
    try_connect_on(stream, addr, options)
}

/// Open a websocket over `stream`, already connected (through a proxy, or
/// after a PROXY header) to a web listener that `addr` names.
pub fn try_connect_on(
    stream: TcpStream,
    addr: SocketAddr,
    options: &Options,
) -> Result<WebClient, tungstenite::Error> {
    let mut request = Request::builder()
        .uri(format!("ws://{addr}/ws"))
        .header("Host", addr.to_string())
        .header("Connection", "Upgrade")
        .header("Upgrade", "websocket")
        .header("Sec-WebSocket-Version", "13")
        .header("Sec-WebSocket-Key", generate_key());
    if let Some(cookie) = &options.cookie {
        request = request.header("Cookie", format!("portal_csessid={cookie}"));
    }
    if let Some(origin) = &options.origin {
        request = request.header("Origin", origin);
    }
    if let Some(protocols) = &options.subprotocols {
        request = request.header("Sec-WebSocket-Protocol", protocols);
    }
    for (name, value) in &options.headers {
        request = request.header(name, value);
    }
    let request = request.body(()).expect("request");
    let (ws, response) = tungstenite::client(request, stream).map_err(|e| match e {
        tungstenite::HandshakeError::Failure(e) => e,
        tungstenite::HandshakeError::Interrupted(_) => {
            tungstenite::Error::Io(std::io::ErrorKind::WouldBlock.into())
        }
    })?;
    ws.get_ref()
        .set_read_timeout(Some(Duration::from_millis(50)))
        .expect("timeout");
    let subprotocol = response
        .headers()
        .get("Sec-WebSocket-Protocol")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    Ok(WebClient {
        ws,
        seen: Vec::new(),
        subprotocol,
    })
}

pub fn connect(addr: SocketAddr, options: &Options) -> WebClient {
    try_connect(addr, options).expect("websocket upgrade")
}

/// Game text with the HTML taken out: tags dropped, entities decoded.
pub fn plain(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

impl WebClient {
    /// Send a JSON value as a text frame.
    pub fn send_json(&mut self, value: serde_json::Value) {
        self.ws
            .send(Message::text(value.to_string()))
            .expect("send");
    }

    /// Type a line (Evennia format).
    pub fn send(&mut self, line: &str) {
        self.send_json(serde_json::json!(["text", [line], {}]));
    }

    /// Read one message if one arrives soon. `Err` when the socket closed.
    pub fn read_one(&mut self) -> Result<Option<Message>, String> {
        match self.ws.read() {
            Ok(message) => {
                self.seen.push(message.clone());
                Ok(Some(message))
            }
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(e.to_string()),
        }
    }

    /// Read until a message whose text (HTML stripped) contains `needle`.
    pub fn expect(&mut self, needle: &str) -> String {
        self.expect_message(needle, |_| true)
    }

    /// Read until a message accepted by `keep` whose text contains `needle`.
    pub fn expect_message(&mut self, needle: &str, keep: impl Fn(&Message) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            match self.read_one() {
                Ok(Some(message)) => {
                    let text = message_text(&message);
                    if keep(&message) && text.contains(needle) {
                        return text;
                    }
                }
                Ok(None) => {}
                Err(e) => panic!(
                    "socket ended waiting for {needle:?}: {e}; seen {:?}",
                    self.seen
                ),
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {needle:?}; seen {:?}",
                self.seen
            );
        }
    }

    /// Read until the portal closes the websocket; the close frame's code
    /// and reason.
    pub fn expect_close(&mut self) -> (u16, String) {
        let deadline = Instant::now() + WAIT;
        loop {
            match self.read_one() {
                Ok(Some(Message::Close(frame))) => {
                    let frame = frame.map(|f| (u16::from(f.code), f.reason.to_string()));
                    return frame.unwrap_or((1005, String::new()));
                }
                Ok(_) => {}
                Err(e) => panic!(
                    "socket ended without a close frame: {e}; seen {:?}",
                    self.seen
                ),
            }
            assert!(Instant::now() < deadline, "no close; seen {:?}", self.seen);
        }
    }

    /// Create an account and wait for the room.
    pub fn create(&mut self, name: &str) {
        self.expect("create");
        self.send(&format!("create {name} pw123"));
        self.expect("The Portal Plaza");
    }
}

/// A message as text: Evennia arrays give their first argument with the
/// HTML removed; binary frames their UTF-8; other text frames as they are.
pub fn message_text(message: &Message) -> String {
    match message {
        Message::Text(text) => {
            let parsed: Option<serde_json::Value> = serde_json::from_str(text.as_str()).ok();
            match parsed.as_ref().and_then(|v| v.as_array()) {
                Some(array) => {
                    let first = array.get(1).and_then(|a| a.get(0)).and_then(|t| t.as_str());
                    match first {
                        Some(first) => plain(first),
                        None => text.to_string(),
                    }
                }
                None => text.to_string(),
            }
        }
        Message::Binary(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        other => format!("{other:?}"),
    }
}

/// Send raw bytes to an HTTP port and read the whole answer (until the
/// portal closes or `WAIT` passes).
pub fn http_exchange(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.write_all(request).expect("write");
    read_to_close(&mut stream)
}

/// Read until the peer closes (or `WAIT` passes). A plain socket gets a
/// read timeout here; any other stream must already have one underneath.
pub fn read_to_close(stream: &mut TcpStream) -> String {
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    read_all(stream)
}

/// Read until the peer closes or `WAIT` passes.
pub fn read_all(stream: &mut impl Read) -> String {
    let deadline = Instant::now() + WAIT;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
