//! An AJAX long-poll test client: raw HTTP/1.1 POSTs to `/webclientdata`
//! over real kept-alive sockets, as a browser (or Evennia's web client)
//! sends them.

use super::web::plain;
use super::WAIT;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::fd::FromRawFd;
use std::time::{Duration, Instant};

/// Percent-encode a form value.
pub fn encode(value: &str) -> String {
    let mut out = String::new();
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// One answer: status, headers (lower-case names) and body.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One kept-alive HTTP connection.
pub struct Conn {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    pub fn open(addr: SocketAddr) -> Conn {
        Conn::wrap(TcpStream::connect(addr).expect("connect"))
    }

    /// A connection from another loopback address (`127.0.0.2`, ...), as
    /// another machine's would be.
    pub fn open_from(source: Ipv4Addr, addr: SocketAddr) -> Conn {
        Conn::wrap(connect_from(source, addr).expect("connect from another address"))
    }

    /// Set the read timeout (answers are polled in steps this long).
    pub fn set_step(&mut self, step: Duration) {
        self.stream.set_read_timeout(Some(step)).expect("timeout");
    }

    fn wrap(stream: TcpStream) -> Conn {
        stream
            .set_read_timeout(Some(Duration::from_millis(50)))
            .expect("timeout");
        Conn {
            stream,
            buf: Vec::new(),
        }
    }

    /// Send a POST of `form` with `extra` header lines (each ending CR LF).
    pub fn post(&mut self, form: &str, extra: &str) {
        self.stream
            .write_all(&post_bytes(form, extra))
            .expect("write");
    }

    /// The next answer, if one comes within `within`; `None` if none does
    /// or the connection closes first.
    pub fn answer_within(&mut self, within: Duration) -> Option<Answer> {
        read_answer(&mut self.stream, &mut self.buf, within)
    }

    /// The next answer (within `WAIT`).
    pub fn answer(&mut self) -> Answer {
        self.answer_within(WAIT).expect("an answer")
    }

    /// Whether the portal closed the connection (within `WAIT`).
    pub fn closed(&mut self) -> bool {
        let deadline = Instant::now() + WAIT;
        let mut chunk = [0u8; 4096];
        while Instant::now() < deadline {
            match self.stream.read(&mut chunk) {
                Ok(0) => return true,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => return true,
            }
        }
        false
    }
}

/// A TCP connection to `to` from local address `source`.
pub fn connect_from(source: Ipv4Addr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let SocketAddr::V4(to) = to else {
        return Err(std::io::Error::other("IPv4 only"));
    };
    let address = |ip: Ipv4Addr, port: u16| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(ip).to_be(),
        },
        sin_zero: [0; 8],
    };
    let size = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    let check = |rc: libc::c_int| {
        if rc < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(rc)
        }
    };
    // SAFETY: plain socket calls on a descriptor this function owns (the
    // stream closes it on every path), with addresses that live through
    // each call.
    unsafe {
        let fd = check(libc::socket(
            libc::AF_INET,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
            0,
        ))?;
        let stream = TcpStream::from_raw_fd(fd);
        let from = address(source, 0);
        check(libc::bind(
            fd,
            (&from as *const libc::sockaddr_in).cast(),
            size,
        ))?;
        let target = address(*to.ip(), to.port());
        check(libc::connect(
            fd,
            (&target as *const libc::sockaddr_in).cast(),
            size,
        ))?;
        Ok(stream)
    }
}

/// One AJAX player: a browser id and tab id, a connection for receives and
/// one for everything else.
pub struct AjaxClient {
    pub addr: SocketAddr,
    pub csessid: String,
    pub cuid: String,
    pub poll: Conn,
    pub control: Conn,
    /// Every message received, as JSON.
    pub seen: Vec<serde_json::Value>,
}

/// A random-enough browser id (32 hex digits, like the portal's).
pub fn browser_id(tag: u32) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{:016x}{:08x}{:08x}", nanos as u64, tag, std::process::id())
}

impl AjaxClient {
    /// `init` a session for browser `csessid`, tab `cuid`.
    pub fn init(addr: SocketAddr, csessid: &str, cuid: &str) -> AjaxClient {
        let mut client = AjaxClient {
            addr,
            csessid: csessid.to_owned(),
            cuid: cuid.to_owned(),
            poll: Conn::open(addr),
            control: Conn::open(addr),
            seen: Vec::new(),
        };
        let answer = client.call("init", "&browserstr=test");
        assert_eq!(answer.status, 200, "{answer:?}");
        let json: serde_json::Value = serde_json::from_str(&answer.body).expect("JSON");
        assert_eq!(json["csessid"], csessid, "{json}");
        client
    }

    /// The form fields naming this session, for `mode`.
    pub fn form(&self, mode: &str) -> String {
        format!("mode={mode}&csessid={}&cuid={}", self.csessid, self.cuid)
    }

    /// A request on the control connection and its answer.
    pub fn call(&mut self, mode: &str, extra: &str) -> Answer {
        let form = format!("{}{extra}", self.form(mode));
        self.control.post(&form, "");
        let answer = self.control.answer();
        if answer.header("connection") == Some("close") {
            // The portal serves a few dozen requests per connection.
            self.control = Conn::open(self.addr);
        }
        answer
    }

    /// One line of input.
    pub fn send(&mut self, line: &str) {
        let data = serde_json::json!(["text", [line], {}]).to_string();
        let answer = self.call("input", &format!("&data={}", encode(&data)));
        assert_eq!((answer.status, answer.body.as_str()), (200, "\"\""));
    }

    /// Start a receive on the poll connection.
    pub fn start_receive(&mut self) {
        let form = self.form("receive");
        self.poll.post(&form, "");
    }

    /// One receive, answered within `WAIT`: the message (JSON), or `Null`
    /// for an empty answer.
    pub fn receive(&mut self) -> serde_json::Value {
        self.start_receive();
        let answer = self.poll.answer();
        assert_eq!(answer.status, 200, "{answer:?}");
        if answer.header("connection") == Some("close") {
            self.poll = Conn::open(self.addr);
        }
        let message = if answer.body.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_str(&answer.body).expect("JSON")
        };
        self.seen.push(message.clone());
        message
    }

    /// Receive until a message's text holds `needle`; that text.
    pub fn expect(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            let message = self.receive();
            let text = text_of(&message);
            if text.contains(needle) {
                return text;
            }
            if message[0] == "ajax_keepalive" {
                self.call("keepalive", "");
            }
        }
        panic!("no message with {needle:?}; seen: {:?}", self.seen);
    }

    /// Log in a new account, as a player at the login screen does.
    pub fn create(&mut self, name: &str) {
        self.expect("create");
        self.send(&format!("create {name} pw123"));
        self.expect("The Portal Plaza");
    }
}

/// A message's first argument as plain text (HTML removed), or its JSON.
pub fn text_of(message: &serde_json::Value) -> String {
    match message[1][0].as_str() {
        Some(text) => plain(text),
        None => message.to_string(),
    }
}

/// Read one answer from `stream` (any bytes past it stay in `buf`), if
/// one comes within `within`; `None` if none does or the stream closes.
/// The stream must have a short read timeout.
pub fn read_answer(stream: &mut impl Read, buf: &mut Vec<u8>, within: Duration) -> Option<Answer> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(answer) = parse(buf) {
            return Some(answer);
        }
        if Instant::now() >= deadline {
            return None;
        }
        let mut chunk = [0u8; 8192];
        match stream.read(&mut chunk) {
            Ok(0) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return None,
        }
    }
}

/// A whole answer at the front of `buf`, taken out.
fn parse(buf: &mut Vec<u8>) -> Option<Answer> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    if buf.len() < end + length {
        return None;
    }
    let body = String::from_utf8_lossy(&buf[end..end + length]).into_owned();
    buf.drain(..end + length);
    Some(Answer {
        status,
        headers,
        body,
    })
}

/// A POST of `form` to `/webclientdata` as bytes, with `extra` header lines.
pub fn post_bytes(form: &str, extra: &str) -> Vec<u8> {
    format!(
        "POST /webclientdata HTTP/1.1\r\nHost: 127.0.0.1\r\n\
         Content-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\n{extra}\r\n{form}",
        form.len()
    )
    .into_bytes()
}
