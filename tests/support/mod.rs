//! Shared helpers for the end-to-end tests: start a real portal (and its
//! real demo game child) on free loopback ports from a temporary config,
//! and talk to it with raw telnet clients.
//!
//! Every wait is a condition polled until a deadline; nothing sleeps a fixed
//! time. Dropping a [`Portal`] kills the portal and its game.

#![allow(dead_code)]

pub mod ajax;
pub mod prometheus;
pub mod tls;
pub mod web;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long any single expectation may take.
pub const WAIT: Duration = Duration::from_secs(20);

/// Poll `check` until it gives a value or `WAIT` passes.
pub fn wait_for<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A running portal with its temporary directory.
pub struct Portal {
    pub child: Child,
    pub dir: tempfile::TempDir,
    pub telnet: SocketAddr,
    pub amp: SocketAddr,
    /// The web client's HTTP/websocket listener.
    pub web: SocketAddr,
    /// The config file the portal was started with.
    pub conf: PathBuf,
}

/// The config every test starts from: free ports, files in `dir`, the demo
/// game with a fast password hash, throttles open. `extra` is appended
/// (later TOML tables win only for keys not already set, so tests pass
/// whole sections they change through `sections`).
pub fn base_config(dir: &Path, autostart: bool) -> String {
    base_config_with(dir, autostart, "")
}

/// [`base_config`] with extra lines in its `[telnet]` section.
pub fn base_config_with(dir: &Path, autostart: bool, telnet: &str) -> String {
    let demo = env!("CARGO_BIN_EXE_demo_game");
    let db = dir.join("game.sqlite3");
    format!(
        r#"
[portal]
name = "Test Portal"
status_file = "{status}"

[telnet]
listen = ["127.0.0.1:0"]
{telnet}

[web]
listen = ["127.0.0.1:0"]

[amp]
listen = "127.0.0.1:0"

[log]
file = "{log}"
level = "debug"

[game]
autostart = {autostart}
command = ["{demo}", "--db", "{db}", "--hash-cost", "fast"]
stop_timeout_secs = 5.0
"#,
        status = dir.join("portal.status").display(),
        log = dir.join("portal.log").display(),
        db = db.display(),
    )
}

/// The admin account every test portal's demo game creates at first start.
pub const ADMIN_NAME: &str = "operator";
/// Its password.
pub const ADMIN_PASSWORD: &str = "op-pass-123";

impl Portal {
    /// Start a portal with the demo game and the given `[limits]` and
    /// `[messages]` lines (TOML body of a `[limits]` table).
    pub fn start(limits: &str) -> Portal {
        Portal::start_with(limits, true)
    }

    /// Start a portal; with `autostart` false the test plays the game.
    pub fn start_with(limits: &str, autostart: bool) -> Portal {
        Portal::start_full(limits, autostart, "")
    }

    /// Start a portal with extra `[limits]` lines and extra `[telnet]` lines.
    pub fn start_sections(limits: &str, telnet: &str) -> Portal {
        Portal::start_full(limits, true, telnet)
    }

    /// Start a portal with extra `[limits]` lines and whole extra tables
    /// (e.g. `[[tls]]`) appended to the config.
    pub fn start_tables(limits: &str, tables: &str) -> Portal {
        Portal::start_full(&format!("{limits}\n{tables}"), true, "")
    }

    /// Start a portal with extra lines in its `[web]` section.
    pub fn start_web(web: &str) -> Portal {
        let web = web.to_owned();
        Portal::start_edited("", move |text| {
            text.replacen("[web]\n", &format!("[web]\n{web}\n"), 1)
        })
    }

    /// The number of sessions `portal status` reports.
    pub fn sessions(&self) -> u64 {
        let status = self.status_report();
        status.words("sessions")[0]
            .parse()
            .expect("a session count")
    }

    /// Start a portal whose config text is first passed through `edit`.
    pub fn start_edited(limits: &str, edit: impl Fn(String) -> String) -> Portal {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut text = base_config_with(dir.path(), true, "");
        text.push_str("\n[limits]\nmax_connection_rate = 1000.0\n");
        text.push_str(limits);
        let conf = dir.path().join("portal.conf");
        std::fs::write(&conf, edit(text)).expect("write config");
        Portal::launch(dir, &conf)
    }

    fn start_full(limits: &str, autostart: bool, telnet: &str) -> Portal {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut text = base_config_with(dir.path(), autostart, telnet);
        text.push_str("\n[limits]\n");
        if !limits.contains("max_connection_rate") {
            text.push_str("max_connection_rate = 1000.0\n");
        }
        text.push_str(limits);
        let conf = dir.path().join("portal.conf");
        std::fs::write(&conf, text).expect("write config");
        Portal::launch(dir, &conf)
    }

    /// Start the portal binary on an existing config.
    pub fn launch(dir: tempfile::TempDir, conf: &Path) -> Portal {
        Portal::launch_with_fd_limit(dir, conf, None)
    }

    /// Start a portal (default test config plus `limits`) whose open-file
    /// limit, soft and hard, is `files`: it cannot raise it.
    pub fn start_with_fd_limit(limits: &str, files: u64) -> Portal {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut text = base_config(dir.path(), true);
        text.push_str("\n[limits]\nmax_connection_rate = 1000.0\n");
        text.push_str(limits);
        let conf = dir.path().join("portal.conf");
        std::fs::write(&conf, text).expect("write config");
        Portal::launch_with_fd_limit(dir, &conf, Some(files))
    }

    fn launch_with_fd_limit(dir: tempfile::TempDir, conf: &Path, files: Option<u64>) -> Portal {
        use std::os::unix::process::CommandExt;
        let stderr = std::fs::File::create(dir.path().join("stderr.log")).expect("stderr file");
        let mut command = Command::new(env!("CARGO_BIN_EXE_portal"));
        if let Some(files) = files {
            // SAFETY: setrlimit in the child between fork and exec only
            // touches the struct passed.
            unsafe {
                command.pre_exec(move || {
                    let limit = libc::rlimit {
                        rlim_cur: files,
                        rlim_max: files,
                    };
                    libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
                    Ok(())
                });
            }
        }
        let child = command
            // The operator's admin, made by the demo game at its first start.
            .env("DEMO_GAME_ADMIN_NAME", ADMIN_NAME)
            .env("DEMO_GAME_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .arg("--config")
            .arg(conf)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("start portal");
        let mut portal = Portal {
            child,
            dir,
            telnet: "127.0.0.1:1".parse().unwrap(),
            amp: "127.0.0.1:1".parse().unwrap(),
            web: "127.0.0.1:1".parse().unwrap(),
            conf: conf.to_owned(),
        };
        portal.telnet = portal.status("telnet").parse().expect("telnet address");
        portal.amp = portal.status("amp").parse().expect("amp address");
        if let Some(web) = portal.try_status("web") {
            portal.web = web.parse().expect("web address");
        }
        portal
    }

    /// Run `portal ARGS --config <this portal's config>` from another
    /// directory (so relative paths must be found through the config).
    pub fn cli(&self, args: &[&str]) -> CliOutput {
        cli(&self.conf, args)
    }

    /// `portal status`, parsed; waits for the control socket to answer
    /// (it opens before the status file names the listeners).
    pub fn status_report(&self) -> Status {
        let out = wait_for("`portal status` to answer", || {
            let out = self.cli(&["status"]);
            (out.code == 0).then_some(out)
        });
        Status::parse(&out.stdout)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A fresh copy of the portal binary in the portal's directory, as an
    /// admin installs a new version beside the old (for `portal upgrade`).
    pub fn new_binary(&self, name: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::copy(env!("CARGO_BIN_EXE_portal"), &path).expect("copy the portal binary");
        path
    }

    /// An executable script `name` in the portal's directory: a binary
    /// that is no portal, for the upgrade's hand-over check to refuse.
    pub fn script(&self, name: &str, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = self.path(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write script");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        path
    }

    /// A value from the status file, waiting until it is there.
    pub fn status(&mut self, key: &str) -> String {
        let path = self.path("portal.status");
        let child = &mut self.child;
        wait_for(&format!("status key {key}"), || {
            if let Ok(Some(code)) = child.try_wait() {
                panic!("portal exited early ({code})");
            }
            let text = std::fs::read_to_string(&path).ok()?;
            text.lines().find_map(|line| {
                let (k, v) = line.split_once(" = ")?;
                (k == key).then(|| v.to_owned())
            })
        })
    }

    /// A status key's value as the file says now (listeners are all
    /// written before the AMP address).
    pub fn try_status(&self, key: &str) -> Option<String> {
        let text = std::fs::read_to_string(self.path("portal.status")).ok()?;
        text.lines().find_map(|line| {
            let (k, v) = line.split_once(" = ")?;
            (k == key).then(|| v.to_owned())
        })
    }

    /// The running game's pid, once it is not `not`.
    pub fn game_pid_other_than(&mut self, not: Option<i32>) -> i32 {
        let path = self.path("portal.status");
        wait_for("a game pid", || {
            let text = std::fs::read_to_string(&path).ok()?;
            let pid: i32 = text
                .lines()
                .find_map(|l| l.strip_prefix("game_pid = "))?
                .parse()
                .ok()?;
            (Some(pid) != not).then_some(pid)
        })
    }

    /// The portal log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.path("portal.log")).unwrap_or_default()
    }

    /// The game's log so far (`game.log` beside the portal log, unless
    /// the config says otherwise).
    pub fn game_log(&self) -> String {
        std::fs::read_to_string(self.path("game.log")).unwrap_or_default()
    }

    /// What the portal wrote to its stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.path("stderr.log")).unwrap_or_default()
    }

    /// Wait until the log contains `text`.
    pub fn wait_log(&self, text: &str) {
        wait_for(&format!("log line {text:?}"), || {
            self.log().contains(text).then_some(())
        });
    }

    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as i32, signal);
        }
    }

    /// Wait for the portal to exit and return its exit code.
    pub fn wait_exit(&mut self) -> Option<i32> {
        let child = &mut self.child;
        wait_for("portal exit", || child.try_wait().ok().flatten()).code()
    }

    pub fn client(&self) -> Client {
        Client::connect(self.telnet)
    }

    /// A client logged in as the operator's admin ([`ADMIN_NAME`]).
    pub fn admin(&self) -> Client {
        let mut client = self.client();
        client.expect("create <name>");
        client.send(&format!("connect {ADMIN_NAME} {ADMIN_PASSWORD}"));
        client.expect("The Portal Plaza");
        client
    }

    /// A client that created `name` (password `pw123`) and is logged in.
    pub fn player(&self, name: &str) -> Client {
        let mut client = self.client();
        client.expect("create <name>");
        client.send(&format!("create {name} pw123"));
        client.expect("The Portal Plaza");
        client
    }
}

impl Drop for Portal {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // A failing test shows what the portal logged.
            eprintln!("---- portal.log ----\n{}", self.log());
            eprintln!("---- game.log ----\n{}", self.game_log());
        }
        let game = std::fs::read_to_string(self.path("portal.status"))
            .ok()
            .and_then(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix("game_pid = ")?.parse().ok())
            });
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(pid) = game {
            // SAFETY: kill(2) on the game child this portal started.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
}

/// A raw telnet client that keeps what it has read.
pub struct Client {
    pub stream: TcpStream,
    seen: Vec<u8>,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        Client::over(TcpStream::connect(addr).expect("connect to portal"))
    }

    /// A client on a stream already connected (through a proxy, or after
    /// a PROXY header it wrote).
    pub fn over(stream: TcpStream) -> Client {
        stream
            .set_read_timeout(Some(Duration::from_millis(50)))
            .expect("timeout");
        Client {
            stream,
            seen: Vec::new(),
        }
    }

    pub fn send(&mut self, line: &str) {
        self.send_raw(format!("{line}\r\n").as_bytes());
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send to portal");
    }

    /// Read what is there; false once the portal has closed the socket.
    pub fn pump(&mut self) -> bool {
        let mut buf = [0u8; 65536];
        match self.stream.read(&mut buf) {
            Ok(0) => false,
            Ok(n) => {
                self.seen.extend_from_slice(&buf[..n]);
                true
            }
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                true
            }
            Err(_) => false,
        }
    }

    /// Wait until `text` arrives; return everything up to and including it
    /// and forget it, so the next expect looks only at newer output.
    pub fn expect(&mut self, text: &str) -> String {
        let needle = text.as_bytes();
        wait_for(
            &format!("{text:?} (seen so far: {:?})", self.text()),
            || {
                if let Some(at) = find(&self.seen, needle) {
                    let end = at + needle.len();
                    let got: Vec<u8> = self.seen.drain(..end).collect();
                    return Some(String::from_utf8_lossy(&got).into_owned());
                }
                self.pump();
                None
            },
        )
    }

    /// Wait until `needle` bytes arrive; return everything up to and
    /// including them and forget it.
    pub fn expect_bytes(&mut self, needle: &[u8]) -> Vec<u8> {
        wait_for(&format!("bytes {needle:?}"), || {
            if let Some(at) = find(&self.seen, needle) {
                return Some(self.seen.drain(..at + needle.len()).collect());
            }
            self.pump();
            None
        })
    }

    /// Everything received so far, raw, and forget it.
    pub fn take_raw(&mut self) -> Vec<u8> {
        self.pump();
        std::mem::take(&mut self.seen)
    }

    /// Wait until the portal closes the connection; returns the rest.
    pub fn expect_closed(&mut self) -> String {
        wait_for("the portal to close the connection", || {
            (!self.pump()).then_some(())
        });
        let rest = std::mem::take(&mut self.seen);
        String::from_utf8_lossy(&rest).into_owned()
    }

    /// Everything unread so far, as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.seen).into_owned()
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A game played by the test itself: raw AMP frames over a real socket.
pub struct RawGame {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl RawGame {
    /// Connect without saying anything yet.
    pub fn connect(amp: SocketAddr) -> RawGame {
        let stream = TcpStream::connect(amp).expect("connect to AMP");
        stream
            .set_read_timeout(Some(Duration::from_millis(50)))
            .expect("timeout");
        RawGame {
            stream,
            buf: Vec::new(),
        }
    }

    /// Connect, hello, sync; returns the game and the sync reply.
    pub fn link(amp: SocketAddr) -> (RawGame, portal::wire::message::PortalMsg) {
        use portal::wire::message::{PortalMsg, ServerMsg, PROTOCOL_VERSION};
        let mut game = RawGame::connect(amp);
        game.send(&ServerMsg::Hello {
            version: PROTOCOL_VERSION,
            secret: String::new(),
            name: "test".into(),
        });
        let welcome = game.recv();
        assert!(matches!(welcome, PortalMsg::Welcome { .. }), "{welcome:?}");
        game.send(&ServerMsg::SyncRequest);
        let sync = game.recv();
        (game, sync)
    }

    pub fn send(&mut self, message: &portal::wire::message::ServerMsg) {
        let mut bytes = Vec::new();
        portal::amp::codec::encode(message, &mut bytes).expect("encode");
        self.stream.write_all(&bytes).expect("write frame");
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes);
    }

    /// The next message from the portal, or None once it closed the link.
    pub fn try_recv(&mut self) -> Option<portal::wire::message::PortalMsg> {
        use portal::amp::codec::{decode, Decoded};
        wait_for("a frame from the portal", || {
            match decode(&self.buf, 1 << 24) {
                Decoded::Frame { message, used } => {
                    self.buf.drain(..used);
                    return Some(Some(message));
                }
                Decoded::NeedMore => {}
                other => panic!("bad frame from the portal: {other:?}"),
            }
            let mut chunk = [0u8; 65536];
            match self.stream.read(&mut chunk) {
                Ok(0) => Some(None),
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    None
                }
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut =>
                {
                    None
                }
                Err(_) => Some(None),
            }
        })
    }

    pub fn recv(&mut self) -> portal::wire::message::PortalMsg {
        self.try_recv().expect("the portal closed the link")
    }

    /// Skip messages until one matches.
    pub fn recv_until(
        &mut self,
        mut want: impl FnMut(&portal::wire::message::PortalMsg) -> bool,
    ) -> portal::wire::message::PortalMsg {
        loop {
            let message = self.recv();
            if want(&message) {
                return message;
            }
        }
    }
}

/// What a `portal` command printed, and its exit code.
#[derive(Debug)]
pub struct CliOutput {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Run `portal ARGS --config CONF` with the working directory elsewhere.
pub fn cli(conf: &Path, args: &[&str]) -> CliOutput {
    let out = Command::new(env!("CARGO_BIN_EXE_portal"))
        .args(args)
        .arg("--config")
        .arg(conf)
        .current_dir(std::env::temp_dir())
        .stdin(Stdio::null())
        .output()
        .expect("run portal command");
    CliOutput {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `portal status` output: `topic: word word ...` lines.
#[derive(Debug)]
pub struct Status {
    pub lines: Vec<(String, Vec<String>)>,
}

impl Status {
    pub fn parse(text: &str) -> Status {
        let lines = text
            .lines()
            .map(|line| {
                let (topic, rest) = line.split_once(':').expect("topic: words");
                let words = rest.split_whitespace().map(str::to_owned).collect();
                (topic.to_owned(), words)
            })
            .collect();
        Status { lines }
    }

    /// The words of a topic's line.
    pub fn words(&self, topic: &str) -> &[String] {
        self.lines
            .iter()
            .find(|(t, _)| t == topic)
            .map(|(_, w)| w.as_slice())
            .unwrap_or_else(|| panic!("no `{topic}` line in {self:?}"))
    }

    /// The first word of a topic (a state or a count).
    pub fn first(&self, topic: &str) -> &str {
        &self.words(topic)[0]
    }

    /// The word after `label` on a topic's line.
    pub fn value(&self, topic: &str, label: &str) -> Option<&str> {
        let words = self.words(topic);
        let at = words.iter().position(|w| w == label)?;
        words.get(at + 1).map(String::as_str)
    }

    /// A number after `label`.
    pub fn number(&self, topic: &str, label: &str) -> u64 {
        self.value(topic, label)
            .unwrap_or_else(|| panic!("no `{label}` in `{topic}`: {self:?}"))
            .parse()
            .expect("a number")
    }
}

/// A pid no process has: a child that was started and reaped.
pub fn dead_pid() -> u32 {
    let mut child = Command::new("true").spawn().expect("run true");
    let pid = child.id();
    child.wait().expect("reap true");
    pid
}
