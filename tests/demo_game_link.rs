//! The demo_game binary against a fake portal: handshake, account
//! creation, echo, a reload-style stop, and a restart that keeps the
//! logged-in player without a new login; browser tabs logging in together
//! and a browser's login resumed after a restart.

use portal::amp::codec::{decode, encode, Decoded};
use portal::wire::message::{Command, PortalMsg, ServerMsg, StartMode, StopMode, PROTOCOL_VERSION};
use portal::wire::session::Session;
use portal::wire::value::Value;
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command as Process, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(20);
const SECRET: &str = "s3cret";

/// The demo game child, killed and reaped when dropped.
struct GameProcess(Option<Child>);

impl GameProcess {
    fn start(addr: &str, db: &Path) -> GameProcess {
        let child = Process::new(env!("CARGO_BIN_EXE_demo_game"))
            .env("PORTAL_AMP_ADDR", addr)
            .env("PORTAL_AMP_SECRET", SECRET)
            .args(["--db", db.to_str().unwrap(), "--name", "Test Game"])
            .args(["--hash-cost", "fast", "--connect-timeout", "20"])
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn demo_game");
        GameProcess(Some(child))
    }

    /// Wait for the exit once the link has closed (the process is leaving).
    fn wait(mut self) -> ExitStatus {
        let mut child = self.0.take().unwrap();
        child.wait().unwrap()
    }
}

impl Drop for GameProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The fake portal's side of one link.
struct FakePortal {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl FakePortal {
    /// Accept one link, giving up after `WAIT` (the child may have died).
    fn accept(listener: &TcpListener) -> FakePortal {
        let listener = listener.try_clone().unwrap();
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let _ = tx.send(listener.accept().map(|(s, _)| s));
        });
        let stream = rx.recv_timeout(WAIT).expect("game connects").unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        FakePortal {
            stream,
            buf: Vec::new(),
        }
    }

    fn send(&mut self, msg: &PortalMsg) {
        let mut bytes = Vec::new();
        encode(msg, &mut bytes).unwrap();
        self.stream.write_all(&bytes).unwrap();
    }

    /// The next message, or `None` when the game closed the link.
    fn recv(&mut self) -> Option<ServerMsg> {
        loop {
            match decode::<ServerMsg>(&self.buf, 1 << 24) {
                Decoded::Frame { message, used } => {
                    self.buf.drain(..used);
                    return Some(message);
                }
                Decoded::NeedMore => {}
                other => panic!("bad frame from the game: {other:?}"),
            }
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => panic!("no message from the game: {e}"),
            }
        }
    }

    fn expect(&mut self) -> ServerMsg {
        self.recv().expect("the game closed the link")
    }

    /// Answer the hello and the sync request with `sessions`.
    fn handshake(&mut self, mode: StartMode, sessions: Vec<Session>) {
        match self.expect() {
            ServerMsg::Hello {
                version,
                secret,
                name,
            } => {
                assert_eq!(version, PROTOCOL_VERSION);
                assert_eq!(secret, SECRET);
                assert_eq!(name, "Test Game");
            }
            other => panic!("expected Hello, got {other:?}"),
        }
        self.send(&PortalMsg::Welcome {
            version: PROTOCOL_VERSION,
            portal: "fake".into(),
        });
        assert_eq!(self.expect(), ServerMsg::SyncRequest);
        self.send(&PortalMsg::Sync { mode, sessions });
    }

    fn input(&mut self, sessid: u64, line: &str) {
        self.send(&PortalMsg::DataIn {
            sessid,
            commands: vec![Command::text(line)],
        });
    }

    /// Messages up to and including the first text to `sessid`.
    fn until_text(&mut self, sessid: u64) -> (Vec<ServerMsg>, String) {
        let deadline = Instant::now() + WAIT;
        let mut seen = Vec::new();
        while Instant::now() < deadline {
            let msg = self.expect();
            if let Some(text) = text_to(&msg, sessid) {
                return (seen, text);
            }
            seen.push(msg);
        }
        panic!("no text for session {sessid}; saw {seen:?}");
    }

    /// Send `line` and return the first text reply, asserting nothing else
    /// came before it.
    fn ask(&mut self, sessid: u64, line: &str) -> String {
        self.input(sessid, line);
        let (before, text) = self.until_text(sessid);
        assert!(before.is_empty(), "unexpected before the reply: {before:?}");
        text
    }
}

fn text_to(msg: &ServerMsg, who: u64) -> Option<String> {
    match msg {
        ServerMsg::DataOut { sessid, commands } if *sessid == who => {
            let cmd = commands.first()?;
            (cmd.name == "text").then(|| cmd.first_str().unwrap_or("").to_owned())
        }
        _ => None,
    }
}

fn stop(portal: &mut FakePortal, game: GameProcess, mode: StopMode) -> Vec<Session> {
    portal.send(&PortalMsg::Stop { mode });
    let sessions = match portal.expect() {
        ServerMsg::SessionSync { sessions, clean } => {
            assert!(!clean);
            sessions
        }
        other => panic!("expected SessionSync, got {other:?}"),
    };
    assert_eq!(
        portal.recv(),
        None,
        "the game closes the link after the sync"
    );
    assert!(game.wait().success(), "the game exits 0 after Stop");
    sessions
}

#[test]
fn demo_game_creates_echoes_and_survives_a_reload_keeping_the_login() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("demo.sqlite3");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();

    // First run: create anna and talk.
    let game = GameProcess::start(&addr, &db);
    let mut portal = FakePortal::accept(&listener);
    portal.handshake(StartMode::Start, vec![]);
    let session = Session::init_session(1, "telnet", "127.0.0.1:40000");
    portal.send(&PortalMsg::Connect { session });
    let (_, screen) = portal.until_text(1);
    assert!(screen.contains("create <name> <password>"), "{screen}");

    portal.input(1, "create anna pw123");
    let (before, _) = portal.until_text(1);
    let mut all = before;
    let (more, welcome) = portal.until_text(1);
    all.extend(more);
    let login = all.iter().find_map(|m| match m {
        ServerMsg::Login { session } => Some(session.clone()),
        _ => None,
    });
    let login = login.expect("a Login before the greeting");
    assert!(login.logged_in);
    assert_eq!(login.uname.as_deref(), Some("anna"));
    assert!(welcome.contains("Welcome, anna!"), "{welcome}");
    assert_eq!(portal.ask(1, "echo hi"), "hi");

    let records = stop(&mut portal, game, StopMode::Reload);
    assert_eq!(records.len(), 1);
    assert!(records[0].logged_in);

    // Second run: the portal hands back anna's record; no new login needed.
    let game = GameProcess::start(&addr, &db);
    let mut portal = FakePortal::accept(&listener);
    portal.handshake(StartMode::Reload, records);
    assert_eq!(portal.ask(1, "echo still here"), "still here");
    let who = portal.ask(1, "who");
    assert!(
        who.contains("anna") && who.contains("1 account online"),
        "{who}"
    );

    // The account itself persisted: a second session can log in to it.
    let session = Session::init_session(2, "telnet", "127.0.0.1:40001");
    portal.send(&PortalMsg::Connect { session });
    portal.until_text(2);
    portal.input(2, "connect ANNA pw123");
    let (before, welcome) = portal.until_text(2);
    assert!(
        matches!(before.as_slice(), [ServerMsg::Login { .. }]),
        "{before:?}"
    );
    assert!(welcome.contains("Welcome, anna!"), "{welcome}");

    let records = stop(&mut portal, game, StopMode::Shutdown);
    assert_eq!(records.len(), 2);
}

#[test]
fn demo_game_exits_nonzero_when_the_portal_goes_away() {
    let dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let game = GameProcess::start(&addr, &dir.path().join("demo.sqlite3"));
    let mut portal = FakePortal::accept(&listener);
    portal.handshake(StartMode::Start, vec![]);
    drop(portal);
    let status = game.wait();
    assert_eq!(status.code(), Some(1), "{status:?}");
}

/// The commands of the next `DataOut` to `sessid`, skipping anything else.
fn next_commands(portal: &mut FakePortal, sessid: u64) -> Vec<Command> {
    loop {
        if let ServerMsg::DataOut {
            sessid: to,
            commands,
        } = portal.expect()
        {
            if to == sessid {
                return commands;
            }
        }
    }
}

fn echo_option(command: &Command) -> Option<&Value> {
    match command.kwargs.get("options")? {
        Value::Map(options) => options.get("echo"),
        _ => None,
    }
}

#[test]
fn demo_game_asks_for_the_password_with_echo_off_and_answers_gmcp_ping() {
    let dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let game = GameProcess::start(&addr, &dir.path().join("demo.sqlite3"));
    let mut portal = FakePortal::accept(&listener);
    portal.handshake(StartMode::Start, vec![]);
    let mut session = Session::init_session(1, "telnet", "127.0.0.1:40000");
    session
        .protocol_flags
        .insert("GMCP".into(), Value::Bool(true));
    portal.send(&PortalMsg::Connect { session });
    next_commands(&mut portal, 1);

    portal.input(1, "create");
    let asked = next_commands(&mut portal, 1);
    let name_prompt = asked.last().unwrap();
    assert_eq!(name_prompt.name, "prompt");
    assert_eq!(name_prompt.first_str(), Some("Name: "));
    portal.input(1, "anna");
    let asked = next_commands(&mut portal, 1);
    assert_eq!(asked[0].first_str(), Some("Password: "));
    assert_eq!(echo_option(&asked[0]), Some(&Value::Bool(false)));
    portal.input(1, "pw123");
    let restored = next_commands(&mut portal, 1);
    assert_eq!(echo_option(&restored[0]), Some(&Value::Bool(true)));
    let mut names = Vec::new();
    while !names.iter().any(|n| n == "prompt") {
        names.extend(next_commands(&mut portal, 1).into_iter().map(|c| c.name));
    }
    assert!(names.contains(&"char_vitals".to_owned()), "{names:?}");

    let ping = Command {
        name: "core_ping".into(),
        args: vec![Value::Int(42)],
        kwargs: Default::default(),
    };
    portal.send(&PortalMsg::DataIn {
        sessid: 1,
        commands: vec![ping.clone()],
    });
    assert_eq!(next_commands(&mut portal, 1), [ping]);
    stop(&mut portal, game, StopMode::Shutdown);
}

/// A browser tab: a web client session carrying its browser's id.
fn browser_tab(sessid: u64, csessid: &str) -> Session {
    let mut session = Session::init_session(sessid, "webclient/websocket", "127.0.0.1:40100");
    session.csessid = Some(csessid.to_owned());
    session
}

#[test]
fn demo_game_logs_every_tab_of_a_browser_in_and_resumes_it_after_a_restart() {
    const BROWSER: &str = "Zk3v9QmX2pL7sT4wR8yB1nC6dF0hJ5aE";
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("demo.sqlite3");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();

    // First run: two tabs of one browser and a telnet session; one tab logs in.
    let game = GameProcess::start(&addr, &db);
    let mut portal = FakePortal::accept(&listener);
    portal.handshake(StartMode::Start, vec![]);
    for session in [
        browser_tab(1, BROWSER),
        browser_tab(2, BROWSER),
        Session::init_session(3, "telnet", "127.0.0.1:40000"),
    ] {
        let sessid = session.sessid;
        portal.send(&PortalMsg::Connect { session });
        let (_, screen) = portal.until_text(sessid);
        assert!(screen.contains("create <name> <password>"), "{screen}");
    }
    portal.input(1, "create anna pw123");
    let mut logins = Vec::new();
    let mut greeted = false;
    let deadline = Instant::now() + WAIT;
    while (logins.len() < 2 || !greeted) && Instant::now() < deadline {
        match portal.expect() {
            ServerMsg::Login { session } => {
                assert!(session.logged_in);
                assert_eq!(session.uname.as_deref(), Some("anna"));
                logins.push(session.sessid);
            }
            msg => {
                let text = text_to(&msg, 2).unwrap_or_default();
                greeted |= text.contains("Welcome, anna!");
                assert!(text_to(&msg, 3).is_none(), "telnet untouched: {msg:?}");
            }
        }
    }
    logins.sort_unstable();
    assert_eq!(logins, [1, 2], "both tabs logged in");
    assert!(greeted, "the second tab is greeted");
    portal.input(2, "echo from tab two");
    let (_, echoed) = portal.until_text(2);
    assert_eq!(echoed, "from tab two");
    let records = stop(&mut portal, game, StopMode::Shutdown);
    assert_eq!(records.iter().filter(|s| s.logged_in).count(), 2);

    // Second run on the same database, the portal restarted too: a new tab
    // of that browser is logged in without a password.
    let game = GameProcess::start(&addr, &db);
    let mut portal = FakePortal::accept(&listener);
    portal.handshake(StartMode::Start, vec![]);
    portal.send(&PortalMsg::Connect {
        session: browser_tab(7, BROWSER),
    });
    let (before, welcome) = portal.until_text(7);
    match before.as_slice() {
        [ServerMsg::Login { session }] => {
            assert_eq!(session.sessid, 7);
            assert_eq!(session.uname.as_deref(), Some("anna"));
            assert!(session.logged_in);
        }
        other => panic!("expected one Login before the welcome, got {other:?}"),
    }
    assert!(
        welcome.contains("Welcome back, anna") && welcome.contains("(resumed from this browser)."),
        "{welcome}"
    );
    assert!(!welcome.contains(BROWSER), "the browser id is never shown");
    assert_eq!(portal.ask(7, "echo resumed"), "resumed");

    // Another browser still gets the login screen.
    portal.send(&PortalMsg::Connect {
        session: browser_tab(8, "another-browser-token-0123456789"),
    });
    let (before, screen) = portal.until_text(8);
    assert!(before.is_empty(), "{before:?}");
    assert!(screen.contains("create <name> <password>"), "{screen}");
    stop(&mut portal, game, StopMode::Shutdown);
}
