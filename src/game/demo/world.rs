//! The demo game's rules: a login screen, accounts, and one room.
//!
//! [`Game`] is pure state: portal messages go in through [`Game::handle`],
//! the messages to send back collect in an outbox the run loop drains with
//! [`Game::take_outbox`]. No sockets here, so every rule is unit-tested.

use super::accounts::{Account, AccountError, AccountStore};
use super::command::{name_and_password, parse, Input};
use crate::amp::message::{Command, PortalMsg, ServerMsg, StartMode};
use crate::game::{ServerSessions, Synced};
use crate::session::{unix_now, Session};

/// The one room.
const ROOM_NAME: &str = "The Portal Plaza";
const ROOM_DESC: &str = "Worn flagstones spread out around a tall archway of \
humming blue light: the portal itself. Travellers step through it and out \
again, and nobody ever seems to leave for long.";
/// How many other names `look` lists before summing up the rest.
const LOOK_NAMES: usize = 20;
/// What the player sees when their connection is closed on request.
pub const GOODBYE: &str = "Goodbye!";

/// What the run loop should do after a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Continue,
    /// The portal asked us to stop; the outbox holds the final sync.
    Stop,
}

/// The whole game.
pub struct Game {
    name: String,
    accounts: AccountStore,
    sessions: ServerSessions,
    outbox: Vec<ServerMsg>,
}

impl Game {
    /// A game called `name` over an account store.
    pub fn new(name: &str, accounts: AccountStore) -> Game {
        Game {
            name: name.to_owned(),
            accounts,
            sessions: ServerSessions::new(),
            outbox: Vec::new(),
        }
    }

    /// Take over the portal's sessions after the handshake. Logged-in
    /// players continue silently; one whose account is gone is logged out.
    pub fn start(&mut self, synced: Synced) {
        self.sessions.sync(synced.sessions);
        let logged_in: Vec<(u64, Option<i64>)> = self
            .sessions
            .logged_in()
            .map(|s| (s.sessid, s.uid))
            .collect();
        for (sessid, uid) in &logged_in {
            self.check_restored_login(*sessid, *uid);
        }
        if synced.mode == StartMode::Start {
            self.greet_unseen_sessions();
        }
        log::info!(
            "started ({}): {} sessions, {} logged in",
            synced.mode.name(),
            self.sessions.len(),
            self.sessions.count_logged_in()
        );
    }

    /// On a first start, players who connected while the game was still
    /// starting have seen nothing from it yet: show them the login screen.
    fn greet_unseen_sessions(&mut self) {
        let waiting: Vec<u64> = self
            .sessions
            .iter()
            .filter(|s| !s.logged_in)
            .map(|s| s.sessid)
            .collect();
        for sessid in waiting {
            self.send_login_screen(sessid);
        }
    }

    /// The session records.
    pub fn sessions(&self) -> &ServerSessions {
        &self.sessions
    }

    /// Everything to send since the last call.
    pub fn take_outbox(&mut self) -> Vec<ServerMsg> {
        std::mem::take(&mut self.outbox)
    }

    /// React to one message from the portal.
    pub fn handle(&mut self, msg: PortalMsg) -> Step {
        match msg {
            PortalMsg::Connect { session } => {
                let sessid = session.sessid;
                self.sessions.connect(session);
                self.send_login_screen(sessid);
            }
            PortalMsg::DataIn { sessid, commands } => self.data_in(sessid, &commands),
            PortalMsg::Stop { mode } => {
                log::info!("portal asks us to stop ({mode:?})");
                let sessions = self.sessions.records();
                self.outbox.push(ServerMsg::SessionSync {
                    sessions,
                    clean: false,
                });
                return Step::Stop;
            }
            PortalMsg::Error { request, message } => {
                log::warn!("portal refused {request}: {message}");
            }
            PortalMsg::Welcome { .. } | PortalMsg::Refused { .. } => {
                log::warn!("ignoring a handshake message after the handshake: {msg:?}");
            }
            other => {
                self.sessions.apply(&other);
            }
        }
        Step::Continue
    }

    fn check_restored_login(&mut self, sessid: u64, uid: Option<i64>) {
        let exists = match uid.map(|id| self.accounts.get(id)) {
            Some(Ok(found)) => found.is_some(),
            Some(Err(e)) => {
                // Keep the player in: the store may recover; admin checks will fail safe.
                log::error!("cannot check account {uid:?} of session {sessid}: {e}");
                true
            }
            None => false,
        };
        if exists {
            return;
        }
        let Some(session) = self.sessions.get_mut(sessid) else {
            return;
        };
        log::warn!("session {sessid} was logged in as a missing account; logging it out");
        session.uid = None;
        session.uname = None;
        session.puid = None;
        session.logged_in = false;
        let record = session.get_sync_data();
        self.outbox.push(ServerMsg::SessionSync {
            sessions: vec![record],
            clean: false,
        });
        self.text(sessid, "Your account no longer exists.");
        self.send_login_screen(sessid);
    }

    fn data_in(&mut self, sessid: u64, commands: &[Command]) {
        for command in commands {
            if command.name != "text" {
                log::debug!("session {sessid}: ignoring {:?} input", command.name);
                continue;
            }
            let Some(text) = command.first_str() else {
                continue;
            };
            for line in text.lines() {
                self.line(sessid, line);
            }
        }
    }

    fn line(&mut self, sessid: u64, line: &str) {
        let input = parse(line);
        let Some(session) = self.sessions.get_mut(sessid) else {
            log::warn!("input for unknown session {sessid}");
            return;
        };
        let visible = !matches!(input, Input::Idle);
        session.note_command(unix_now(), visible);
        let logged_in = session.logged_in;
        if let Input::Command { verb, args } = input {
            if logged_in {
                self.player_command(sessid, &verb, args);
            } else {
                self.login_command(sessid, &verb, args);
            }
        }
    }

    // ---- before login ------------------------------------------------

    fn login_command(&mut self, sessid: u64, verb: &str, args: &str) {
        match verb {
            "create" | "cr" => self.create(sessid, args),
            "connect" | "conn" | "con" | "co" => self.connect(sessid, args),
            "look" | "l" => self.send_login_screen(sessid),
            "help" | "h" | "?" => self.text(sessid, LOGIN_HELP),
            "quit" | "q" | "qui" => self.quit(sessid),
            _ => self.text(
                sessid,
                format!(
                    "Unknown command '{verb}'. Try \"create <name> <password>\", \
                     \"connect <name> <password>\" or \"help\"."
                ),
            ),
        }
    }

    fn create(&mut self, sessid: u64, args: &str) {
        let Some((name, password)) = name_and_password(args) else {
            return self.text(sessid, "Usage: create <name> <password>");
        };
        match self.accounts.create(name, password) {
            Ok(account) => {
                log::info!("session {sessid} created account {}", account.name);
                self.text(
                    sessid,
                    format!("A new account '{}' was created.", account.name),
                );
                self.log_in(sessid, account);
            }
            Err(e) => self.account_error(sessid, e),
        }
    }

    fn connect(&mut self, sessid: u64, args: &str) {
        let Some((name, password)) = name_and_password(args) else {
            return self.text(sessid, "Usage: connect <name> <password>");
        };
        match self.accounts.authenticate(name, password) {
            Ok(account) => self.log_in(sessid, account),
            Err(e) => self.account_error(sessid, e),
        }
    }

    fn account_error(&mut self, sessid: u64, error: AccountError) {
        match error {
            AccountError::Db(_) | AccountError::Hash(_) => {
                log::error!("session {sessid}: {error}");
                self.text(
                    sessid,
                    "Sorry, something went wrong. Please try again later.",
                );
            }
            player_error => self.text(sessid, player_error.to_string()),
        }
    }

    fn log_in(&mut self, sessid: u64, account: Account) {
        let Some(session) = self.sessions.get_mut(sessid) else {
            return;
        };
        session.uid = Some(account.id);
        session.uname = Some(account.name.clone());
        session.puid = Some(account.id);
        session.logged_in = true;
        let record = session.get_sync_data();
        self.outbox.push(ServerMsg::Login { session: record });
        let room = self.room_text(sessid);
        self.text(
            sessid,
            format!("Welcome, {}! You are logged in.\n\n{room}", account.name),
        );
    }

    fn send_login_screen(&mut self, sessid: u64) {
        let rule = "=".repeat(60);
        let screen = format!(
            "{rule}\n Welcome to {name}!\n\n\
             \x20Create an account:  create <name> <password>\n\
             \x20Log in:             connect <name> <password>\n\
             \x20Help:               help\n\
             \x20Leave:              quit\n{rule}",
            name = self.name
        );
        self.text(sessid, screen);
    }

    // ---- logged in -----------------------------------------------------

    fn player_command(&mut self, sessid: u64, verb: &str, args: &str) {
        match verb {
            "look" | "l" => {
                let room = self.room_text(sessid);
                self.text(sessid, room);
            }
            "say" => self.say(sessid, args),
            "who" => self.who(sessid),
            "echo" if args.is_empty() => self.text(sessid, "Usage: echo <text>"),
            "echo" => self.text(sessid, args),
            "help" | "h" | "?" => self.text(sessid, PLAYER_HELP),
            "quit" | "q" | "qui" => self.quit(sessid),
            "reload" | "shutdown" => self.admin(sessid, verb),
            "create" | "connect" => self.text(sessid, "You are already logged in."),
            _ => self.text(
                sessid,
                format!("Command '{verb}' is not available. Type \"help\" for help."),
            ),
        }
    }

    fn room_text(&self, sessid: u64) -> String {
        let me = self.sessions.get(sessid).and_then(|s| s.uid);
        let others = self.names_online(|s| s.uid != me);
        let present = match others.len() {
            0 => "You are alone here.".to_owned(),
            n if n <= LOOK_NAMES => format!("Also here: {}.", others.join(", ")),
            n => format!(
                "Also here: {} and {} others.",
                others[..LOOK_NAMES].join(", "),
                n - LOOK_NAMES
            ),
        };
        format!("{ROOM_NAME}\n{ROOM_DESC}\n{present}")
    }

    /// Distinct names of logged-in sessions passing `keep`, sorted.
    fn names_online(&self, keep: impl Fn(&Session) -> bool) -> Vec<String> {
        let mut names: Vec<String> = self
            .sessions
            .logged_in()
            .filter(|s| keep(s))
            .filter_map(|s| s.uname.clone())
            .collect();
        names.sort_by_key(|n| n.to_lowercase());
        names.dedup();
        names
    }

    fn say(&mut self, sessid: u64, speech: &str) {
        if speech.is_empty() {
            return self.text(sessid, "Say what?");
        }
        let speaker = self.display_name(sessid);
        let listeners: Vec<u64> = self
            .sessions
            .logged_in()
            .map(|s| s.sessid)
            .filter(|&id| id != sessid)
            .collect();
        self.text(sessid, format!("You say, \"{speech}\""));
        let heard = format!("{speaker} says, \"{speech}\"");
        for id in listeners {
            self.text(id, heard.clone());
        }
    }

    fn who(&mut self, sessid: u64) {
        let names = self.names_online(|_| true);
        let mut text = String::from("Accounts online:\n");
        for name in &names {
            text.push_str("  ");
            text.push_str(name);
            text.push('\n');
        }
        let count = names.len();
        let plural = if count == 1 { "" } else { "s" };
        text.push_str(&format!("{count} account{plural} online."));
        self.text(sessid, text);
    }

    fn quit(&mut self, sessid: u64) {
        self.outbox.push(ServerMsg::Disconnect {
            sessid,
            reason: GOODBYE.to_owned(),
        });
        self.sessions.disconnect(sessid);
    }

    fn admin(&mut self, sessid: u64, verb: &str) {
        if !self.is_admin(sessid) {
            return self.text(sessid, "You are not allowed to do that.");
        }
        log::info!("{} asked for {verb}", self.display_name(sessid));
        if verb == "reload" {
            self.text(sessid, "Reloading the game. You will stay connected.");
            self.outbox.push(ServerMsg::Reload);
        } else {
            self.text(sessid, "Shutting down the game and the portal.");
            self.outbox.push(ServerMsg::Shutdown);
        }
    }

    fn is_admin(&self, sessid: u64) -> bool {
        let Some(uid) = self.sessions.get(sessid).and_then(|s| s.uid) else {
            return false;
        };
        match self.accounts.get(uid) {
            Ok(account) => account.is_some_and(|a| a.is_admin),
            Err(e) => {
                log::error!("cannot check admin rights of account {uid}: {e}");
                false
            }
        }
    }

    fn display_name(&self, sessid: u64) -> String {
        self.sessions
            .get(sessid)
            .and_then(|s| s.uname.clone())
            .unwrap_or_else(|| "Someone".to_owned())
    }

    fn text(&mut self, sessid: u64, text: impl Into<String>) {
        self.outbox.push(ServerMsg::DataOut {
            sessid,
            commands: vec![Command::text(text)],
        });
    }
}

const LOGIN_HELP: &str = "You are not logged in. Commands:\n\
  create <name> <password>   make a new account and log in\n\
  connect <name> <password>  log in to your account\n\
  look                       show the welcome screen again\n\
  quit                       leave\n\
Names are 3-30 letters, digits or underscores; passwords at least 3 characters.";

const PLAYER_HELP: &str = "Commands:\n\
  look           look around\n\
  say <text>     say something to everyone here (or: \"<text>)\n\
  who            list who is online\n\
  echo <text>    repeat text back to you\n\
  quit           leave the game\n\
Admin only: reload (restart the game, keeping everyone connected), shutdown.";

#[cfg(test)]
mod tests {
    use super::super::accounts::HashCost;
    use super::*;
    use crate::amp::message::{StartMode, StopMode};

    struct Fixture {
        _dir: tempfile::TempDir,
        game: Game,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store = AccountStore::open(&dir.path().join("db.sqlite3"), HashCost::Fast).unwrap();
        Fixture {
            _dir: dir,
            game: Game::new("Demo", store),
        }
    }

    impl Fixture {
        fn connect(&mut self, sessid: u64) -> Vec<ServerMsg> {
            let session = Session::init_session(sessid, "telnet", "127.0.0.1:9");
            self.game.handle(PortalMsg::Connect { session });
            self.game.take_outbox()
        }

        fn say(&mut self, sessid: u64, line: &str) -> Vec<ServerMsg> {
            let commands = vec![Command::text(line)];
            self.game.handle(PortalMsg::DataIn { sessid, commands });
            self.game.take_outbox()
        }

        fn texts(&mut self, sessid: u64, line: &str) -> Vec<String> {
            texts_for(&self.say(sessid, line), sessid)
        }

        fn logged_in(&mut self, sessid: u64, name: &str) {
            self.connect(sessid);
            let out = self.say(sessid, &format!("create {name} pw123"));
            assert!(out.iter().any(|m| matches!(m, ServerMsg::Login { .. })));
        }
    }

    fn texts_for(out: &[ServerMsg], who: u64) -> Vec<String> {
        out.iter()
            .filter_map(|m| match m {
                ServerMsg::DataOut { sessid, commands } if *sessid == who => commands
                    .first()
                    .and_then(|c| c.first_str())
                    .map(str::to_owned),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn connect_shows_the_login_screen() {
        let mut f = fixture();
        let out = f.connect(1);
        let screen = texts_for(&out, 1).join("\n");
        assert!(screen.contains("Welcome to Demo"));
        assert!(screen.contains("create <name> <password>"));
        assert!(screen.contains("connect <name> <password>"));
    }

    #[test]
    fn create_logs_in_and_tells_the_portal() {
        let mut f = fixture();
        f.connect(1);
        let out = f.say(1, "create Anna pw123");
        let login = out.iter().find_map(|m| match m {
            ServerMsg::Login { session } => Some(session.clone()),
            _ => None,
        });
        let login = login.expect("a Login message");
        assert!(login.logged_in);
        assert_eq!(login.uname.as_deref(), Some("Anna"));
        assert_eq!(login.uid, login.puid);
        let text = texts_for(&out, 1).join("\n");
        assert!(text.contains("Welcome, Anna!"));
        assert!(text.contains(ROOM_NAME));
    }

    #[test]
    fn bad_create_and_connect_get_clear_errors_and_stay_logged_out() {
        let mut f = fixture();
        f.connect(1);
        assert_eq!(f.texts(1, "create"), ["Usage: create <name> <password>"]);
        assert!(f.texts(1, "create a! pw123")[0].contains("name"));
        assert!(f.texts(1, "create anna pw")[0].contains("password"));
        f.texts(1, "create anna pw123");
        f.connect(2);
        assert_eq!(
            f.texts(2, "create ANNA pw123"),
            ["That name is already taken."]
        );
        assert_eq!(
            f.texts(2, "connect anna nope"),
            ["Incorrect name or password."]
        );
        assert!(!f.game.sessions().get(2).unwrap().logged_in);
        assert!(f.texts(2, "connect Anna pw123")[0].contains("Welcome, anna!"));
    }

    #[test]
    fn idle_and_empty_lines_are_silent_but_counted() {
        let mut f = fixture();
        f.connect(1);
        assert!(f.say(1, "idle").is_empty());
        assert!(f.say(1, "   ").is_empty());
        assert_eq!(f.game.sessions().get(1).unwrap().cmd_total, 2);
    }

    #[test]
    fn unknown_commands_explain_what_to_do() {
        let mut f = fixture();
        f.connect(1);
        assert!(f.texts(1, "dance")[0].starts_with("Unknown command 'dance'"));
        f.texts(1, "create anna pw123");
        assert!(f.texts(1, "DANCE")[0].contains("'dance' is not available"));
    }

    #[test]
    fn echo_replies_with_exactly_the_text() {
        let mut f = fixture();
        f.logged_in(1, "anna");
        assert_eq!(f.texts(1, "ECHO hello  world"), ["hello  world"]);
    }

    #[test]
    fn say_reaches_everyone_logged_in_but_not_the_login_screen() {
        let mut f = fixture();
        f.logged_in(1, "anna");
        f.logged_in(2, "bob");
        f.connect(3);
        let out = f.say(1, "say hi there");
        assert_eq!(texts_for(&out, 1), ["You say, \"hi there\""]);
        assert_eq!(texts_for(&out, 2), ["anna says, \"hi there\""]);
        assert!(texts_for(&out, 3).is_empty());
        assert_eq!(f.texts(2, "'yo"), ["You say, \"yo\""]);
    }

    #[test]
    fn look_lists_the_others_and_who_counts_accounts() {
        let mut f = fixture();
        f.logged_in(1, "anna");
        assert!(f.texts(1, "look")[0].ends_with("You are alone here."));
        f.logged_in(2, "bob");
        assert!(f.texts(1, "l")[0].ends_with("Also here: bob."));
        let who = f.texts(1, "who").join("\n");
        assert!(who.contains("  anna\n  bob\n"), "{who}");
        assert!(who.ends_with("2 accounts online."));
    }

    #[test]
    fn admin_commands_are_for_the_first_account_only() {
        let mut f = fixture();
        f.logged_in(1, "anna");
        f.logged_in(2, "bob");
        let out = f.say(2, "reload");
        assert_eq!(texts_for(&out, 2), ["You are not allowed to do that."]);
        assert!(!out.contains(&ServerMsg::Reload));
        assert!(f.say(1, "reload").contains(&ServerMsg::Reload));
        assert!(f.say(1, "shutdown").contains(&ServerMsg::Shutdown));
    }

    #[test]
    fn quit_disconnects_with_goodbye_and_forgets_the_session() {
        let mut f = fixture();
        f.connect(1);
        let out = f.say(1, "quit");
        let bye = ServerMsg::Disconnect {
            sessid: 1,
            reason: GOODBYE.into(),
        };
        assert_eq!(out, [bye]);
        assert!(f.game.sessions().is_empty());
    }

    #[test]
    fn stop_sends_every_record_and_stops() {
        let mut f = fixture();
        f.logged_in(1, "anna");
        f.connect(2);
        let step = f.game.handle(PortalMsg::Stop {
            mode: StopMode::Reload,
        });
        assert_eq!(step, Step::Stop);
        match f.game.take_outbox().as_slice() {
            [ServerMsg::SessionSync { sessions, clean }] => {
                assert!(!clean);
                assert_eq!(sessions.len(), 2);
                assert!(sessions[0].logged_in);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn restart_restores_logins_quietly_and_logs_out_missing_accounts() {
        let mut f = fixture();
        f.logged_in(1, "anna");
        let mut records = f.game.sessions().records();
        let mut ghost = Session::init_session(2, "telnet", "x");
        ghost.uid = Some(999);
        ghost.uname = Some("ghost".into());
        ghost.logged_in = true;
        records.push(ghost);
        let path = f._dir.path().join("db.sqlite3");
        let store = AccountStore::open(&path, HashCost::Fast).unwrap();
        let mut game = Game::new("Demo", store);
        game.start(Synced {
            mode: StartMode::Reload,
            sessions: records,
        });
        let out = game.take_outbox();
        assert!(texts_for(&out, 1).is_empty(), "anna continues quietly");
        assert!(texts_for(&out, 2)[0].contains("no longer exists"));
        assert!(!game.sessions().get(2).unwrap().logged_in);
        let commands = vec![Command::text("echo back")];
        game.handle(PortalMsg::DataIn {
            sessid: 1,
            commands,
        });
        assert_eq!(texts_for(&game.take_outbox(), 1), ["back"]);
    }
}
