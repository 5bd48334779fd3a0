//! IRC bot sessions end to end: a real ngIRCd (Debian's `/usr/sbin/ngircd`,
//! started in the foreground on free loopback ports from a config made
//! here), the portal with the demo game asking for a bot (`--irc-bot`),
//! a telnet player, and a raw-socket IRC client in the channel.
//!
//! - the player's `say` reaches the channel, the channel's reply reaches
//!   the player;
//! - ngIRCd restarted: the bot reconnects (back-off) and relays again;
//! - the portal shut down: the channel sees the bot QUIT;
//! - over TLS (ngIRCd's `[SSL]` port, a test-made certificate the portal
//!   trusts through `[irc] ca_file`), with the bot's nick already taken;
//! - a network that is not there: attempts 1 s, then 1.5 s apart, players
//!   unaffected, and the shutdown still ends the bot at once.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::{wait_for, Portal, WAIT};

const NGIRCD: &str = "/usr/sbin/ngircd";
const CHANNEL: &str = "#plaza";

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// An ngIRCd in the foreground; killed when dropped.
struct Ngircd {
    child: Option<Child>,
    conf: PathBuf,
    log: PathBuf,
    port: u16,
    tls_port: Option<u16>,
}

impl Ngircd {
    /// Start one in `dir` (with a TLS port when given a certificate and
    /// key). ngIRCd drops root for `nobody`, so `dir` is opened to it.
    fn start(dir: &Path, tls: Option<(&Path, &Path)>) -> Ngircd {
        assert!(
            Path::new(NGIRCD).exists(),
            "{NGIRCD} is missing: apt-get install ngircd (scripts/test installs it)"
        );
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let port = free_port();
        let tls_port = tls.map(|_| free_port());
        let ssl = match (tls, tls_port) {
            (Some((cert, key)), Some(p)) => {
                for file in [cert, key] {
                    std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o644))
                        .expect("chmod");
                }
                format!(
                    "[SSL]\nCertFile = {}\nKeyFile = {}\nPorts = {p}\n",
                    cert.display(),
                    key.display()
                )
            }
            _ => String::new(),
        };
        let conf = dir.join("ngircd.conf");
        let text = format!(
            "[Global]\nName = irc.test.local\nInfo = Portal test server\n\
             Listen = 127.0.0.1\nPorts = {port}\nMotdPhrase = \"test\"\n\
             [Limits]\nPingTimeout = 120\nPongTimeout = 20\n\
             [Options]\nDNS = no\nIdent = no\nPAM = no\n{ssl}"
        );
        std::fs::write(&conf, text).expect("write ngircd.conf");
        let mut server = Ngircd {
            child: None,
            conf,
            log: dir.join("ngircd.log"),
            port,
            tls_port,
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("ngircd log");
        let child = Command::new(NGIRCD)
            .arg("-n")
            .arg("-f")
            .arg(&self.conf)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start ngircd");
        self.child = Some(child);
        let addr: SocketAddr = ([127, 0, 0, 1], self.port).into();
        wait_for("ngircd to listen", || TcpStream::connect(addr).ok());
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: kill(2) on the ngircd child this test started.
            unsafe {
                libc::kill(child.id() as i32, libc::SIGTERM);
            }
            let _ = child.wait();
        }
    }

    fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Ngircd {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("---- ngircd.log ----\n{}", self.log_text());
        }
        self.stop();
    }
}

/// A raw-socket IRC client: registers, joins, reads lines (answering the
/// server's PINGs), says things.
struct IrcClient {
    stream: TcpStream,
    buf: Vec<u8>,
    nick: String,
}

impl IrcClient {
    fn connect(port: u16, nick: &str) -> IrcClient {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to ngircd");
        stream
            .set_read_timeout(Some(Duration::from_millis(50)))
            .expect("timeout");
        let mut client = IrcClient {
            stream,
            buf: Vec::new(),
            nick: nick.to_owned(),
        };
        client.send(&format!("NICK {nick}\r\nUSER watcher 0 * :Test watcher"));
        client.expect(|l| l.contains(" 001 "));
        client
    }

    /// Join `channel`; the nicks already in it (the server's names list).
    fn join(&mut self, channel: &str) -> Vec<String> {
        self.send(&format!("JOIN {channel}"));
        let nick = self.nick.clone();
        self.expect(|l| l.starts_with(&format!(":{nick}!")) && l.contains(" JOIN "));
        let mut names = Vec::new();
        loop {
            let line = self.expect(|l| l.contains(" 353 ") || l.contains(" 366 "));
            if line.contains(" 366 ") {
                return names;
            }
            let list = line.rsplit_once(" :").map_or("", |(_, l)| l);
            names.extend(
                list.split(' ')
                    .map(|n| n.trim_start_matches(['@', '+']).to_owned()),
            );
        }
    }

    fn send(&mut self, line: &str) {
        self.stream
            .write_all(format!("{line}\r\n").as_bytes())
            .expect("write to ngircd");
    }

    fn say(&mut self, channel: &str, text: &str) {
        self.send(&format!("PRIVMSG {channel} :{text}"));
    }

    /// The first line (from now) that `check` accepts.
    fn expect(&mut self, check: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        let mut seen = Vec::new();
        loop {
            while let Some(end) = self.buf.iter().position(|&b| b == b'\n') {
                let raw: Vec<u8> = self.buf.drain(..=end).collect();
                let line = String::from_utf8_lossy(&raw).trim_end().to_owned();
                if let Some(token) = line.strip_prefix("PING ") {
                    self.send(&format!("PONG {token}"));
                }
                if check(&line) {
                    return line;
                }
                seen.push(line);
            }
            assert!(
                Instant::now() < deadline,
                "no expected IRC line; saw:\n{}",
                seen.join("\n")
            );
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) => panic!("ngircd closed; saw:\n{}", seen.join("\n")),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => panic!("read from ngircd: {e}"),
            }
        }
    }
}

/// A line from `nick` of `command` (e.g. `JOIN`, `QUIT`).
fn from(nick: &str, command: &str, line: &str) -> bool {
    line.starts_with(&format!(":{nick}!")) && line.contains(&format!(" {command} "))
}

/// A portal whose demo game asks for the bot `spec`; `extra` goes at the
/// end of the config (whole tables).
fn portal_with_bot(spec: &str, extra: &str) -> Portal {
    let spec = spec.to_owned();
    Portal::start_edited(extra, move |text| {
        text.replacen(
            r#""--hash-cost", "fast"]"#,
            &format!(r#""--hash-cost", "fast", "--irc-bot", "{spec}"]"#),
            1,
        )
    })
}

#[test]
fn the_bot_relays_both_ways_reconnects_after_a_restart_and_quits_at_shutdown() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut ircd = Ngircd::start(dir.path(), None);
    let mut watcher = IrcClient::connect(ircd.port, "watcher");
    watcher.join(CHANNEL);
    let mut portal = portal_with_bot(&format!("127.0.0.1:{}:{CHANNEL}:demobot", ircd.port), "");
    watcher.expect(|l| from("demobot", "JOIN", l));

    let mut anna = portal.player("anna");
    anna.send("say hello irc");
    watcher.expect(|l| {
        from("demobot", "PRIVMSG", l) && l.ends_with(&format!("{CHANNEL} :anna: hello irc"))
    });
    watcher.say(CHANNEL, "hi from irc");
    anna.expect("[IRC] watcher: hi from irc");

    // A long say is cut into lines IRC takes, none lost.
    let words: Vec<String> = (0..150).map(|i| format!("w{i:03}")).collect();
    anna.send(&format!("say {}", words.join(" ")));
    let mut got = Vec::new();
    while got.last().map(String::as_str) != Some("w149") {
        let line = watcher.expect(|l| from("demobot", "PRIVMSG", l));
        assert!(line.len() + 2 <= 512, "{} bytes: {line}", line.len() + 2);
        let text = line
            .split_once(&format!("{CHANNEL} :"))
            .expect("a channel line")
            .1;
        got.extend(
            text.trim_start_matches("anna: ")
                .split(' ')
                .map(str::to_owned),
        );
    }
    assert_eq!(got, words, "every word, in order");

    // The IRC server goes away and comes back: the bot signs on again.
    ircd.restart();
    let restarted = Instant::now();
    let mut watcher = IrcClient::connect(ircd.port, "watcher");
    // The bot may be back before the watcher.
    if !watcher.join(CHANNEL).iter().any(|n| n == "demobot") {
        watcher.expect(|l| from("demobot", "JOIN", l));
    }
    eprintln!(
        "the bot was back in the channel {:?} after ngircd restarted",
        restarted.elapsed()
    );
    anna.send("say still here");
    watcher.expect(|l| from("demobot", "PRIVMSG", l) && l.ends_with(":anna: still here"));
    watcher.say(CHANNEL, "welcome back");
    anna.expect("[IRC] watcher: welcome back");
    let log = portal.log();
    assert!(log.contains("reconnecting in"), "{log}");
    assert_eq!(log.matches("signed on as demobot").count(), 2, "{log}");

    // A clean shutdown: the bot says goodbye in the channel.
    portal.signal(libc::SIGTERM);
    let quit = watcher.expect(|l| from("demobot", "QUIT", l));
    assert!(quit.contains("The portal is shutting down"), "{quit}");
    assert_eq!(portal.wait_exit(), Some(0));
}

#[test]
fn over_tls_the_bot_takes_another_nick_when_its_own_is_taken() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (cert, key, _) = support::tls::make_cert(dir.path(), "irc");
    let ircd = Ngircd::start(dir.path(), Some((&cert, &key)));
    let tls_port = ircd.tls_port.expect("a TLS port");
    // Someone already has the bot's nick.
    let mut squatter = IrcClient::connect(ircd.port, "tlsbot");
    squatter.join(CHANNEL);
    let extra = format!("\n[irc]\nca_file = \"{}\"\n", cert.display());
    let portal = portal_with_bot(
        &format!("localhost:{tls_port}:{CHANNEL}:tlsbot:tls"),
        &extra,
    );
    squatter.expect(|l| from("tlsbot_", "JOIN", l));
    let mut anna = portal.player("anna");
    anna.send("say over tls");
    squatter.expect(|l| from("tlsbot_", "PRIVMSG", l) && l.ends_with(":anna: over tls"));
    squatter.say(CHANNEL, "secure hello");
    anna.expect("[IRC] tlsbot: secure hello");
    let log = portal.log();
    assert!(
        log.contains("nick tlsbot is taken; trying tlsbot_"),
        "{log}"
    );
    assert!(log.contains("ircs://localhost"), "{log}");
}

#[test]
fn a_bot_that_cannot_reach_its_network_retries_and_still_stops_at_shutdown() {
    // Nothing listens on this port.
    let port = free_port();
    let mut portal = portal_with_bot(&format!("127.0.0.1:{port}:{CHANNEL}:lostbot"), "");
    wait_for("two failed attempts", || {
        (portal.log().matches(": cannot connect:").count() >= 2).then_some(())
    });
    let log = portal.log();
    assert!(log.contains("reconnecting in 1.0 s"), "{log}");
    assert!(log.contains("reconnecting in 1.5 s"), "{log}");
    // Players are unaffected.
    let mut anna = portal.player("anna");
    anna.send("say nobody on irc");
    anna.expect("You say, \"nobody on irc\"");
    let asked = Instant::now();
    portal.signal(libc::SIGTERM);
    assert_eq!(portal.wait_exit(), Some(0));
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "{:?}",
        asked.elapsed()
    );
    assert!(
        portal.log().contains("stopped while reconnecting"),
        "{}",
        portal.log()
    );
}

#[test]
fn a_portal_upgrade_takes_the_bot_off_the_network_and_back_on() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ircd = Ngircd::start(dir.path(), None);
    let mut watcher = IrcClient::connect(ircd.port, "watcher");
    watcher.join(CHANNEL);
    let portal = portal_with_bot(&format!("127.0.0.1:{}:{CHANNEL}:demobot", ircd.port), "");
    watcher.expect(|l| from("demobot", "JOIN", l));
    let mut anna = portal.player("anna");
    anna.send("say before the upgrade");
    watcher.expect(|l| from("demobot", "PRIVMSG", l) && l.ends_with(":anna: before the upgrade"));

    let binary = portal.new_binary("portal-new");
    let out = portal.cli(&["upgrade", "--binary", binary.to_str().unwrap()]);
    assert_eq!(out.code, 0, "upgrade: {} {}", out.stdout, out.stderr);
    let quit = watcher.expect(|l| from("demobot", "QUIT", l));
    assert!(quit.contains("upgraded"), "{quit}");
    watcher.expect(|l| from("demobot", "JOIN", l));
    anna.send("say after the upgrade");
    watcher.expect(|l| from("demobot", "PRIVMSG", l) && l.ends_with(":anna: after the upgrade"));
    watcher.say(CHANNEL, "welcome back");
    anna.expect("[IRC] watcher: welcome back");
}
