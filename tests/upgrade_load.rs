//! `portal upgrade` under load: 50 telnet players (a third with MCCP2,
//! all with NAWS, some with GMCP), 10 websocket players and 5 telnet/ssl
//! players, logged in and each typing a numbered line every 100 ms, while
//! the portal is upgraded to a fresh copy of its binary, then asked to
//! upgrade to a binary that fails the hand-over check. Every connection
//! stays open, every line is answered exactly once, each MCCP2 stream the
//! client sees is valid zlib from start to end, and the game keeps its pid.

mod support;
use flate2::{Decompress, FlushDecompress, Status};
use portal::protocols::telnet::gmcp::GMCP;
use portal::protocols::telnet::mccp::COMPRESS2;
use portal::protocols::telnet::naws::NAWS;
use portal::protocols::telnet::ttype::TTYPE;
use portal::protocols::telnet::{DO, IAC, SB, SE, WILL, WONT};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};
use support::Portal;

const TELNET: usize = 50;
const WEB: usize = 10;
const TLS: usize = 5;
const EVERY: Duration = Duration::from_millis(100);

/// What one player's output holds, as text; MCCP2 streams are inflated as
/// they come and end, a broken one fails the test.
#[derive(Default)]
struct TelnetText {
    zlib: Option<Decompress>,
    raw: Vec<u8>,
    text: Vec<u8>,
    streams: usize,
    ended: usize,
}

impl TelnetText {
    fn feed(&mut self, mut input: &[u8]) {
        const START: [u8; 5] = [IAC, SB, COMPRESS2, IAC, SE];
        loop {
            if let Some(zlib) = &mut self.zlib {
                let mut out = vec![0u8; 65536];
                let (before_in, before_out) = (zlib.total_in(), zlib.total_out());
                let status = zlib
                    .decompress(input, &mut out, FlushDecompress::None)
                    .expect("the MCCP2 stream is valid zlib");
                let used = (zlib.total_in() - before_in) as usize;
                let made = (zlib.total_out() - before_out) as usize;
                self.text.extend_from_slice(&out[..made]);
                input = &input[used..];
                if status == Status::StreamEnd {
                    self.zlib = None;
                    self.ended += 1;
                    continue;
                }
                if input.is_empty() || (used == 0 && made == 0) {
                    return;
                }
                continue;
            }
            self.raw.extend_from_slice(input);
            match self.raw.windows(START.len()).position(|w| w == START) {
                Some(at) => {
                    self.text.extend_from_slice(&self.raw[..at]);
                    let rest = self.raw.split_off(at + START.len());
                    self.raw.clear();
                    self.zlib = Some(Decompress::new(true));
                    self.streams += 1;
                    if rest.is_empty() {
                        return;
                    }
                    // Feed what followed the start through the inflater.
                    return self.feed(&rest);
                }
                None => {
                    let keep = self.raw.len().saturating_sub(START.len() - 1);
                    let text: Vec<u8> = self.raw.drain(..keep).collect();
                    self.text.extend_from_slice(&text);
                    return;
                }
            }
        }
    }

    /// The text so far (with any bytes held back while looking for a
    /// compression start).
    fn lossy(&self) -> String {
        let mut all = self.text.clone();
        if self.zlib.is_none() {
            all.extend_from_slice(&self.raw);
        }
        String::from_utf8_lossy(&all).into_owned()
    }
}

/// One player's connection, whatever it speaks.
enum Conn {
    Telnet(std::net::TcpStream, TelnetText),
    Tls(Box<support::tls::TlsStream>, String),
    Web(Box<support::web::WebClient>, String),
}

impl Conn {
    fn send(&mut self, line: &str) {
        match self {
            Conn::Telnet(s, _) => s.write_all(format!("{line}\r\n").as_bytes()).expect("send"),
            Conn::Tls(s, _) => s.write_all(format!("{line}\r\n").as_bytes()).expect("send"),
            Conn::Web(w, _) => w.send(line),
        }
    }

    /// Read what has arrived; false once the portal closed the connection.
    fn pump(&mut self) -> bool {
        let mut buf = [0u8; 16384];
        let timeout = |e: &std::io::Error| {
            matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            )
        };
        match self {
            Conn::Telnet(s, text) => match s.read(&mut buf) {
                Ok(0) => false,
                Ok(n) => {
                    text.feed(&buf[..n]);
                    true
                }
                Err(e) => timeout(&e),
            },
            Conn::Tls(s, text) => match s.read(&mut buf) {
                Ok(0) => false,
                Ok(n) => {
                    text.push_str(&String::from_utf8_lossy(&buf[..n]));
                    true
                }
                Err(e) => timeout(&e),
            },
            Conn::Web(w, text) => match w.read_one() {
                Ok(Some(message)) => {
                    text.push_str(&support::web::message_text(&message));
                    text.push('\n');
                    true
                }
                Ok(None) => true,
                Err(_) => false,
            },
        }
    }

    fn text(&self) -> String {
        match self {
            Conn::Telnet(_, t) => t.lossy(),
            Conn::Tls(_, t) | Conn::Web(_, t) => t.clone(),
        }
    }

    fn wait_for(&mut self, needle: &str) {
        support::wait_for(&format!("{needle:?}"), || {
            assert!(self.pump(), "closed while waiting for {needle:?}");
            self.text().contains(needle).then_some(())
        });
    }
}

fn telnet_player(addr: SocketAddr, i: usize) -> Conn {
    let stream = std::net::TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let mut conn = Conn::Telnet(stream, TelnetText::default());
    conn.wait_for("create <name>");
    let Conn::Telnet(stream, _) = &mut conn else {
        unreachable!()
    };
    // No TTYPE (so MCCP2 starts at once), a window size.
    let mut answer = vec![IAC, WONT, TTYPE, IAC, WILL, NAWS];
    answer.extend_from_slice(&[IAC, SB, NAWS, 0, 100, 0, 40, IAC, SE]);
    if i.is_multiple_of(3) {
        answer.extend_from_slice(&[IAC, DO, COMPRESS2]);
    }
    if i.is_multiple_of(4) {
        answer.extend_from_slice(&[IAC, DO, GMCP]);
    }
    stream.write_all(&answer).unwrap();
    conn
}

fn tls_player(addr: SocketAddr, cert: &[u8]) -> Conn {
    let stream = support::tls::connect(addr, cert);
    let mut conn = Conn::Tls(Box::new(stream), String::new());
    conn.wait_for("create <name>");
    conn
}

fn web_player(addr: SocketAddr) -> Conn {
    let client = support::web::connect(addr, &Default::default());
    let mut conn = Conn::Web(Box::new(client), String::new());
    conn.wait_for("create");
    conn
}

/// Log in, then type `echo NAMEnNx` every 100 ms until `stop`; then wait
/// for the answers. Returns the name, lines sent, and their counts seen.
fn play(mut conn: Conn, name: String, ready: Arc<Barrier>, stop: Arc<AtomicBool>) -> Played {
    conn.send(&format!("create {name} pw123"));
    conn.wait_for("The Portal Plaza");
    ready.wait();
    let mut sent: usize = 0;
    let mut next = Instant::now();
    let mut open = true;
    while !stop.load(Ordering::Acquire) && open {
        if Instant::now() >= next {
            conn.send(&format!("echo {name}n{sent}x"));
            sent += 1;
            next += EVERY;
        }
        open = conn.pump();
    }
    let last = format!("{name}n{}x", sent.saturating_sub(1));
    let deadline = Instant::now() + support::WAIT;
    while open && Instant::now() < deadline && !conn.text().contains(&last) {
        open = conn.pump();
    }
    let text = conn.text();
    let mccp = match &conn {
        Conn::Telnet(_, t) => Some((t.streams, t.ended, t.zlib.is_some())),
        _ => None,
    };
    Played {
        name: name.clone(),
        sent,
        open,
        counts: count_tokens(&text, &name),
        mccp,
    }
}

struct Played {
    name: String,
    sent: usize,
    open: bool,
    counts: HashMap<usize, usize>,
    /// MCCP2 streams started, ended, and whether one is running now.
    mccp: Option<(usize, usize, bool)>,
}

/// How often each `NAMEnNx` appears in `text`.
fn count_tokens(text: &str, name: &str) -> HashMap<usize, usize> {
    let mut counts = HashMap::new();
    let prefix = format!("{name}n");
    let mut rest = text;
    while let Some(at) = rest.find(&prefix) {
        let after = &rest[at + prefix.len()..];
        let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
        if !digits.is_empty() && after[digits.len()..].starts_with('x') {
            *counts.entry(digits.parse().unwrap()).or_insert(0) += 1;
        }
        rest = &after[digits.len()..];
    }
    counts
}

#[test]
fn sixty_five_players_typing_through_an_upgrade_lose_and_double_nothing() {
    let cert_dir = tempfile::tempdir().unwrap();
    let (cert, key, cert_der) = support::tls::make_cert(cert_dir.path(), "portal");
    let tables = format!(
        "[[tls]]\nlisten = \"127.0.0.1:0\"\ncert = \"{}\"\nkey = \"{}\"\n",
        cert.display(),
        key.display()
    );
    let limits = "max_connection_rate = 1000.0\nmax_command_rate = 100.0\n";
    let mut portal = Portal::start_tables(limits, &tables);
    let tls_addr: SocketAddr = portal.status("tls").parse().unwrap();
    let game_pid = portal.game_pid_other_than(None);

    let ready = Arc::new(Barrier::new(TELNET + WEB + TLS + 1));
    let stop = Arc::new(AtomicBool::new(false));
    let mut players = Vec::new();
    for i in 0..TELNET + WEB + TLS {
        let (ready, stop) = (ready.clone(), stop.clone());
        let (telnet, web, der) = (portal.telnet, portal.web, cert_der.clone());
        players.push(std::thread::spawn(move || {
            let (conn, name) = match i {
                i if i < TELNET => (telnet_player(telnet, i), format!("tel{i}")),
                i if i < TELNET + WEB => (web_player(web), format!("web{i}")),
                i => (tls_player(tls_addr, &der), format!("tls{i}")),
            };
            play(conn, name, ready, stop)
        }));
    }
    ready.wait();
    std::thread::sleep(Duration::from_millis(1000));
    let binary = portal.new_binary("portal-new");
    let out = portal.cli(&["upgrade", "--binary", binary.to_str().unwrap()]);
    assert_eq!(out.code, 0, "upgrade: {} {}", out.stdout, out.stderr);
    std::thread::sleep(Duration::from_millis(700));
    // A second upgrade, to a binary that fails the hand-over check: the
    // upgraded portal carries on serving everyone.
    let broken = portal.script("portal-broken", "exit 3");
    let out = portal.cli(&["upgrade", "--binary", broken.to_str().unwrap()]);
    assert_eq!(out.code, 1, "refused: {} {}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("hand-over check failed"),
        "{}",
        out.stderr
    );
    std::thread::sleep(Duration::from_millis(800));
    stop.store(true, Ordering::Release);

    let mut problems = Vec::new();
    let mut compressed = 0;
    for player in players {
        let p = player.join().expect("player thread");
        if !p.open {
            problems.push(format!("{}: connection closed", p.name));
        }
        for n in 0..p.sent {
            match p.counts.get(&n).copied().unwrap_or(0) {
                1 => {}
                seen => problems.push(format!("{}: line {n} answered {seen} times", p.name)),
            }
        }
        if let Some((streams, ended, running)) = p.mccp {
            if streams > 0 {
                compressed += 1;
                // Ended for the hand-over, begun again after it.
                if !(streams >= 2 && ended >= 1 && running) {
                    problems.push(format!(
                        "{}: MCCP2 streams begun {streams}, ended {ended}, running {running}",
                        p.name
                    ));
                }
            }
        }
        if p.sent < 20 {
            problems.push(format!("{} sent only {} lines", p.name, p.sent));
        }
    }
    assert!(
        problems.is_empty(),
        "{} problems: {problems:?}",
        problems.len()
    );
    assert!(compressed >= TELNET / 3, "{compressed} players had MCCP2");
    assert_eq!(
        portal.game_pid_other_than(None),
        game_pid,
        "the game was not restarted"
    );
    let status = portal.status_report();
    assert_eq!(status.words("upgrades")[0], "1");
    assert_eq!(
        status.words("upgrades")[2],
        (TELNET + WEB + TLS).to_string(),
        "all carried"
    );
}
