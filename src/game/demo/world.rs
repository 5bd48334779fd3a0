//! The demo game's rules: a login screen, accounts, and one room.
//!
//! [`Game`] is pure state: portal messages go in through [`Game::handle`],
//! the messages to send back collect in an outbox the run loop drains with
//! [`Game::take_outbox`]. No sockets here, so every rule is unit-tested.
//!
//! # Browser logins
//!
//! Sessions with a usable `csessid` ([`browser::csessid`]) are tabs of one
//! browser:
//!
//! - when one tab logs in (`create`, `connect`, or a resumed login), every
//!   other tab of that browser that is not logged in is logged in to the
//!   same account, with the same welcome and room (an interactive login
//!   it was in the middle of is dropped, and echo turned back on);
//! - the browser's login is remembered in the account database
//!   ([`AccountStore::remember_browser`]); a tab that connects later is
//!   logged in at once (`Welcome back, <name> (resumed from this
//!   browser).`) if the browser was seen within the window (default
//!   [`DEFAULT_BROWSER_LOGIN_HOURS`] hours), or if another of its tabs is
//!   still logged in as that account. The browser counts as seen at each
//!   login and whenever one of its logged-in tabs closes (or the game
//!   stops), so a network blip or a game restart resumes the login;
//! - `quit` in a tab forgets the browser's login before closing that tab;
//!   its other tabs stay as they are, but new tabs get the login screen.
//!
//! Sessions of other browsers, and sessions without a browser (telnet),
//! are never touched by any of this.

use super::accounts::{Account, AccountError, AccountStore};
use super::browser::{self, BrowserKey};
use super::client::{self, flag_on, wants_oob};
use super::command::{name_and_password, parse, validate_name, Input};
use super::irc::{self, IrcBotSpec};
use super::markup::{escape, link, palette, wrap};
use crate::game::{MsdpDefaults, ServerSessions, Synced};
use crate::wire::flags::Flag;
use crate::wire::message::{Command, PortalMsg, ServerMsg, StartMode};
use crate::wire::session::{unix_now, Session};
use crate::wire::value::{Map, Value};
use std::collections::{HashMap, HashSet};

/// The one room.
const ROOM_NAME: &str = "The Portal Plaza";
const ROOM_DESC: &str = "Worn flagstones spread out around a tall archway of \
humming blue light: the portal itself. Travellers step through it and out \
again, and nobody ever seems to leave for long.";
/// The width descriptions are wrapped to when the client did not say.
const DEFAULT_WIDTH: usize = 78;
/// How many other names `look` lists before summing up the rest.
const LOOK_NAMES: usize = 20;
/// What the player sees when their connection is closed on request.
pub const GOODBYE: &str = "Goodbye!";
/// The interactive login's prompts.
pub const NAME_PROMPT: &str = "Name: ";
pub const PASSWORD_PROMPT: &str = "Password: ";
/// The prompt after every logged-in command (but `echo` and `quit`).
pub const PROMPT: &str = "|gHP 10/10|n > ";
/// The demo's fixed vitals, sent as `char_vitals` to GMCP/MSDP clients.
const HP: i64 = 10;
/// The MSDP variables the demo offers (`SEND`, `REPORT`): both are `HP`.
const MSDP_VARIABLES: [&str; 2] = ["HEALTH", "HEALTH_MAX"];
/// The `screenreader` command's replies.
pub const SCREENREADER_ON: &str = "Screenreader mode is now on.";
pub const SCREENREADER_OFF: &str = "Screenreader mode is now off.";
/// How much of a client's self-description (GMCP `Core.Hello`) is kept.
const HELLO_MAX: usize = 64;
/// How long a browser's login is remembered after it was last seen.
pub const DEFAULT_BROWSER_LOGIN_HOURS: u32 = 24;

/// Where a session is in the interactive `connect`/`create` dialogue.
#[derive(Debug, Clone, PartialEq, Eq)]
enum LoginStage {
    /// "Name:" was asked.
    Name { create: bool },
    /// "Password:" was asked, with the client's local echo off.
    Password { create: bool, name: String },
}

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
    /// Sessions in the middle of an interactive login.
    login: HashMap<u64, LoginStage>,
    /// How long (seconds) a browser's login is resumed after it was last
    /// seen; `None` when browser logins are not remembered.
    browser_window: Option<f64>,
    /// MSDP's `LIST`, `REPORT`, `SEND`… for what [`Game::oob`] leaves.
    msdp: MsdpDefaults,
    /// The IRC bot to ask the portal for at a first start ([`irc`]).
    irc_bot: Option<IrcBotSpec>,
}

impl Game {
    /// A game called `name` over an account store.
    pub fn new(name: &str, accounts: AccountStore) -> Game {
        Game {
            name: name.to_owned(),
            accounts,
            sessions: ServerSessions::new(),
            outbox: Vec::new(),
            login: HashMap::new(),
            browser_window: Some(f64::from(DEFAULT_BROWSER_LOGIN_HOURS) * 3600.0),
            msdp: MsdpDefaults::new()
                .with_reportable(&MSDP_VARIABLES)
                .with_sendable(&MSDP_VARIABLES),
            irc_bot: None,
        }
    }

    /// Ask the portal for this IRC bot at a first start, and relay
    /// between its channel and the players ([`irc`]).
    pub fn with_irc_bot(mut self, spec: Option<IrcBotSpec>) -> Game {
        self.irc_bot = spec;
        self
    }

    /// Remember browser logins for `hours` after a browser was last seen;
    /// 0 turns remembering off (and [`Game::start`] then forgets every
    /// browser the database still holds). Tabs connected at the moment one
    /// of them logs in are logged in together either way.
    pub fn with_browser_login_hours(mut self, hours: u32) -> Game {
        self.browser_window = (hours > 0).then(|| f64::from(hours) * 3600.0);
        self
    }

    /// Take over the portal's sessions after the handshake. Logged-in
    /// players continue silently; one whose account is gone is logged out.
    pub fn start(&mut self, synced: Synced) {
        self.forget_stale_browsers();
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
            // Later starts (reloads, crashes) find the bot still running.
            if let Some(spec) = &self.irc_bot {
                log::info!(
                    "asking the portal for IRC bot {} in {}",
                    spec.nick,
                    spec.channel
                );
                self.outbox.push(spec.request());
            }
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
        let mut waiting: Vec<u64> = self
            .sessions
            .iter()
            .filter(|s| !s.logged_in && !irc::is_bot(s))
            .map(|s| s.sessid)
            .collect();
        waiting.sort_unstable();
        for sessid in waiting {
            // A tab may have been logged in along with another of its browser.
            if !self.sessions.get(sessid).is_some_and(|s| s.logged_in) {
                self.greet(sessid);
            }
        }
    }

    /// A session that has just connected: log it in if its browser's login
    /// can be resumed, else show it the login screen.
    fn greet(&mut self, sessid: u64) {
        match self.browser_resume(sessid) {
            Some(account) => self.resume(sessid, account),
            None => self.send_login_screen(sessid),
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
                let bot = irc::is_bot(&session);
                if bot {
                    log::info!("IRC bot session {sessid} ({})", session.address);
                }
                self.sessions.connect(session);
                if !bot {
                    self.greet(sessid);
                }
            }
            PortalMsg::DataIn { sessid, commands } => self.data_in(sessid, &commands),
            PortalMsg::Stop { mode } => {
                log::info!("portal asks us to stop ({mode:?})");
                let all: Vec<u64> = self.sessions.iter().map(|s| s.sessid).collect();
                self.touch_browsers(&all);
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
                match &other {
                    PortalMsg::Disconnect { sessid } => {
                        self.login.remove(sessid);
                        self.msdp.forget(*sessid);
                        self.touch_browsers(&[*sessid]);
                    }
                    PortalMsg::DisconnectAll => {
                        self.login.clear();
                        self.msdp.forget_all();
                        let all: Vec<u64> = self.sessions.iter().map(|s| s.sessid).collect();
                        self.touch_browsers(&all);
                    }
                    PortalMsg::Sync { .. } => self.login.clear(),
                    _ => {}
                }
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
        if self.sessions.get(sessid).is_some_and(irc::is_bot) {
            return self.irc_in(commands);
        }
        for command in commands {
            if command.name != "text" {
                self.oob(sessid, command);
                continue;
            }
            let Some(text) = command.first_str() else {
                continue;
            };
            if text.is_empty() {
                // An empty line: it answers (cancels) a login question.
                self.line(sessid, "");
            }
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
        let echo = matches!(&input, Input::Command { verb, .. } if verb == "echo");
        if visible && self.login.contains_key(&sessid) {
            self.login_answer(sessid, line);
        } else if let Input::Command { verb, args } = input {
            if logged_in {
                self.player_command(sessid, &verb, args);
            } else {
                self.login_command(sessid, &verb, args);
            }
        } else {
            return;
        }
        let now_logged_in = self.sessions.get(sessid).is_some_and(|s| s.logged_in);
        if now_logged_in && !self.login.contains_key(&sessid) && !echo {
            self.prompt(sessid);
        }
    }

    // ---- out-of-band (GMCP/MSDP) ---------------------------------------

    /// An inbound OOB command. Never answered with text; what the demo
    /// does not handle itself gets the game library's MSDP defaults.
    fn oob(&mut self, sessid: u64, command: &Command) {
        let Some(session) = self.sessions.get_mut(sessid) else {
            log::debug!("{:?} for unknown session {sessid}", command.name);
            return;
        };
        match command.name.as_str() {
            // GMCP Core.Ping (Evennia's portal names it `ping`): answer
            // with the same payload.
            "ping" | "core_ping" => self.outbox.push(ServerMsg::DataOut {
                sessid,
                commands: vec![command.clone()],
            }),
            "hello" | "core_hello" => {
                let client = hello_field(command, "client", 0);
                let version = hello_field(command, "version", 1);
                log::info!("session {sessid}: client says it is {client:?} version {version:?}");
                for (key, value) in [
                    (client::HELLO_CLIENT, client),
                    (client::HELLO_VERSION, version),
                ] {
                    match value {
                        Some(v) => session.server_data.insert(key.into(), Value::Str(v)),
                        None => session.server_data.remove(key),
                    };
                }
            }
            other => {
                let value = |name: &str| MSDP_VARIABLES.contains(&name).then_some(Value::Int(HP));
                match self.msdp.answer(sessid, command, value) {
                    Some(replies) if !replies.is_empty() => self.outbox.push(ServerMsg::DataOut {
                        sessid,
                        commands: replies,
                    }),
                    Some(_) => {}
                    None => log::debug!("session {sessid}: ignoring out-of-band {other:?}"),
                }
            }
        }
    }

    // ---- before login ------------------------------------------------

    fn login_command(&mut self, sessid: u64, verb: &str, args: &str) {
        let create = matches!(verb, "create" | "cr");
        let connect = matches!(verb, "connect" | "conn" | "con" | "co");
        match verb {
            _ if (create || connect) && args.is_empty() => self.ask_name(sessid, create),
            _ if (create || connect) && !args.contains(char::is_whitespace) => {
                self.ask_password(sessid, create, args)
            }
            "create" | "cr" => self.create(sessid, args),
            "connect" | "conn" | "con" | "co" => self.connect(sessid, args),
            "look" | "l" => self.send_login_screen(sessid),
            "help" | "h" | "?" => self.text(sessid, LOGIN_HELP),
            "quit" | "q" | "qui" => self.quit(sessid),
            _ => self.text(
                sessid,
                format!(
                    "Unknown command '{}'. Try \"create <name> <password>\", \
                     \"connect <name> <password>\" or \"help\".",
                    escape(verb)
                ),
            ),
        }
    }

    /// Start the interactive dialogue: ask for the account name.
    fn ask_name(&mut self, sessid: u64, create: bool) {
        self.login.insert(sessid, LoginStage::Name { create });
        let what = if create {
            "Creating a new account"
        } else {
            "Logging in"
        };
        self.text(sessid, format!("{what}. Enter an empty line to cancel."));
        self.send_prompt(sessid, NAME_PROMPT, None);
    }

    /// Ask for the password with the client's local echo turned off.
    fn ask_password(&mut self, sessid: u64, create: bool, name: &str) {
        if let Err(why) = validate_name(name) {
            return self.text(sessid, why);
        }
        if create {
            match self.accounts.exists(name) {
                Ok(false) => {}
                Ok(true) => return self.account_error(sessid, AccountError::NameTaken),
                Err(e) => return self.account_error(sessid, e),
            }
        }
        let name = name.to_owned();
        self.login
            .insert(sessid, LoginStage::Password { create, name });
        self.send_prompt(sessid, PASSWORD_PROMPT, Some(false));
    }

    /// A line typed during the interactive dialogue.
    fn login_answer(&mut self, sessid: u64, line: &str) {
        let Some(stage) = self.login.remove(&sessid) else {
            return;
        };
        match stage {
            LoginStage::Name { create } => {
                let name = line.trim();
                if name.is_empty() {
                    return self.text(sessid, "Cancelled.");
                }
                self.ask_password(sessid, create, name);
            }
            LoginStage::Password { create, name } => {
                // The player's Enter was not echoed: end their line, and
                // turn local echo back on.
                self.text_with(sessid, "", &[("echo", true)]);
                let password = line.trim();
                if password.is_empty() {
                    return self.text(sessid, "Cancelled.");
                }
                if create {
                    self.create_account(sessid, &name, password);
                } else {
                    self.authenticate(sessid, &name, password);
                }
            }
        }
    }

    fn create(&mut self, sessid: u64, args: &str) {
        let Some((name, password)) = name_and_password(args) else {
            return self.text(sessid, "Usage: create <name> <password>");
        };
        self.create_account(sessid, name, password);
    }

    fn create_account(&mut self, sessid: u64, name: &str, password: &str) {
        match self.accounts.create(name, password) {
            Ok(account) => {
                log::info!(
                    "session {sessid} from {} created account {}",
                    self.address(sessid),
                    account.name
                );
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
        self.authenticate(sessid, name, password);
    }

    fn authenticate(&mut self, sessid: u64, name: &str, password: &str) {
        match self.accounts.authenticate(name, password) {
            Ok(account) => {
                log::info!(
                    "session {sessid} from {} logged in as {}",
                    self.address(sessid),
                    account.name
                );
                self.log_in(sessid, account)
            }
            Err(e) => {
                if matches!(e, AccountError::WrongCredentials) {
                    log::info!(
                        "session {sessid} from {}: failed login as {:?}",
                        self.address(sessid),
                        name
                    );
                }
                self.account_error(sessid, e)
            }
        }
    }

    /// The client address the portal gave for `sessid` (`?` if unknown).
    fn address(&self, sessid: u64) -> String {
        self.sessions
            .get(sessid)
            .map(|s| s.address.clone())
            .unwrap_or_else(|| "?".to_owned())
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

    /// A session logged in with a name and password (`create`, `connect`);
    /// its browser's other tabs follow. Its prompt comes from [`Game::line`].
    fn log_in(&mut self, sessid: u64, account: Account) {
        let greeting = format!("|wWelcome, {}!|n You are logged in.", escape(&account.name));
        if !self.enter(sessid, &account, &greeting) {
            return;
        }
        self.remember_browser(sessid, &account);
        self.log_in_other_tabs(sessid, &account, &greeting);
    }

    /// A session of a browser whose login was resumed on connect.
    fn resume(&mut self, sessid: u64, account: Account) {
        let greeting = format!(
            "|wWelcome back, {}|n (resumed from this browser).",
            escape(&account.name)
        );
        if !self.enter(sessid, &account, &greeting) {
            return;
        }
        log::info!(
            "session {sessid} resumed the login of {} from browser {}",
            account.name,
            self.browser_tag(sessid)
        );
        self.prompt(sessid);
        self.remember_browser(sessid, &account);
        self.log_in_other_tabs(sessid, &account, &greeting);
    }

    /// Log a session in to `account`: tell the portal (`Login`), then show
    /// `greeting`, the room and the vitals. False when there is no such
    /// session.
    fn enter(&mut self, sessid: u64, account: &Account, greeting: &str) -> bool {
        let Some(session) = self.sessions.get_mut(sessid) else {
            return false;
        };
        session.uid = Some(account.id);
        session.uname = Some(account.name.clone());
        session.puid = Some(account.id);
        session.logged_in = true;
        let record = session.get_sync_data();
        self.outbox.push(ServerMsg::Login { session: record });
        let room = self.room_text(sessid);
        self.text(sessid, format!("{greeting}\n\n{room}"));
        self.vitals(sessid);
        true
    }

    /// Every other tab of `sessid`'s browser that is not logged in is
    /// logged in to `account` too, greeted as `sessid` was.
    fn log_in_other_tabs(&mut self, sessid: u64, account: &Account, greeting: &str) {
        let Some(csessid) = self.sessions.get(sessid).and_then(browser::csessid) else {
            return;
        };
        let tabs: Vec<u64> = self
            .sessions
            .from_csessid(csessid)
            .into_iter()
            .filter(|s| s.sessid != sessid && !s.logged_in)
            .map(|s| s.sessid)
            .collect();
        if tabs.is_empty() {
            return;
        }
        log::info!(
            "browser {}: {} more tab(s) logged in as {} with session {sessid}",
            self.browser_tag(sessid),
            tabs.len(),
            account.name
        );
        for tab in tabs {
            // A login the tab was typing is moot now; if it was at the
            // password, its client's local echo is off: turn it back on.
            if let Some(LoginStage::Password { .. }) = self.login.remove(&tab) {
                self.text_with(tab, "", &[("echo", true)]);
            }
            self.enter(tab, account, greeting);
            self.prompt(tab);
        }
    }

    // ---- remembered browser logins ----------------------------------

    /// The account a newly connected session's browser is logged in as, if
    /// that login can be resumed: remembering is on, the session has a
    /// browser, the browser has a login, and it was seen within the window
    /// or another of its tabs is logged in as that account right now. An
    /// expired login, or one whose account is gone, is forgotten.
    fn browser_resume(&mut self, sessid: u64) -> Option<Account> {
        let window = self.browser_window?;
        let session = self.sessions.get(sessid)?;
        let csessid = browser::csessid(session)?;
        let key = BrowserKey::from_csessid(csessid);
        let remembered = match self.accounts.browser_login(&key) {
            Ok(found) => found?,
            Err(e) => {
                log::error!("cannot look up browser {}: {e}", key.tag());
                return None;
            }
        };
        let tab_logged_in = self
            .sessions
            .from_csessid(csessid)
            .iter()
            .any(|s| s.sessid != sessid && s.logged_in && s.uid == Some(remembered.account_id));
        let fresh = unix_now() - remembered.last_seen <= window;
        let account = if tab_logged_in || fresh {
            match self.accounts.get(remembered.account_id) {
                Ok(found) => found,
                Err(e) => {
                    log::error!("cannot load account {}: {e}", remembered.account_id);
                    return None;
                }
            }
        } else {
            log::info!("browser {}: remembered login expired", key.tag());
            None
        };
        if account.is_none() {
            if let Err(e) = self.accounts.forget_browser(&key) {
                log::error!("cannot forget browser {}: {e}", key.tag());
            }
        }
        account
    }

    /// Remember that `sessid`'s browser (if it has one) is logged in as
    /// `account`, seen now.
    fn remember_browser(&mut self, sessid: u64, account: &Account) {
        let Some(window) = self.browser_window else {
            return;
        };
        let Some(key) = self.sessions.get(sessid).and_then(BrowserKey::of) else {
            return;
        };
        let now = unix_now();
        if let Err(e) = self
            .accounts
            .remember_browser(&key, account.id, now, now - window)
        {
            log::error!("cannot remember browser {}: {e}", key.tag());
        }
    }

    /// The browsers of these sessions that are logged in were seen now
    /// (they are closing, or the game is stopping).
    fn touch_browsers(&mut self, sessids: &[u64]) {
        if self.browser_window.is_none() {
            return;
        }
        let mut seen = HashSet::new();
        let browsers: Vec<(BrowserKey, i64)> = sessids
            .iter()
            .filter_map(|id| self.sessions.get(*id))
            .filter(|s| s.logged_in)
            .filter_map(|s| Some((BrowserKey::of(s)?, s.uid?)))
            .filter(|pair| seen.insert(pair.clone()))
            .collect();
        if let Err(e) = self.accounts.touch_browsers(&browsers, unix_now()) {
            log::error!("cannot note {} browser(s) as seen: {e}", browsers.len());
        }
    }

    /// At start: forget browsers not seen within the window, or all of them
    /// when remembering is off.
    fn forget_stale_browsers(&mut self) {
        let before = match self.browser_window {
            Some(window) => unix_now() - window,
            None => f64::INFINITY,
        };
        match self.accounts.forget_browsers_before(before) {
            Ok(0) => {}
            Ok(n) => log::info!("forgot {n} browser login(s) not seen recently"),
            Err(e) => log::error!("cannot forget old browser logins: {e}"),
        }
    }

    /// `quit` in a tab: its browser's login is forgotten, so the next tab
    /// to connect shows the login screen.
    fn forget_browser(&mut self, sessid: u64) {
        let Some(key) = self.sessions.get(sessid).and_then(BrowserKey::of) else {
            return;
        };
        match self.accounts.forget_browser(&key) {
            Ok(true) => log::info!("session {sessid} quit: browser {} forgotten", key.tag()),
            Ok(false) => {}
            Err(e) => log::error!("cannot forget browser {}: {e}", key.tag()),
        }
    }

    /// The log name of a session's browser (never its id).
    fn browser_tag(&self, sessid: u64) -> String {
        self.sessions
            .get(sessid)
            .and_then(BrowserKey::of)
            .map_or_else(|| "-".to_owned(), |key| key.tag().to_owned())
    }

    fn send_login_screen(&mut self, sessid: u64) {
        let rule = format!("|b{}|n", "=".repeat(60));
        let screen = format!(
            "{rule}\n Welcome to |c{name}|n!\n\n\
             \x20Create an account:  |wcreate <name> <password>|n\n\
             \x20Log in:             |wconnect <name> <password>|n\n\
             \x20                    (or just |wcreate|n or |wconnect|n: you will be asked,\n\
             \x20                    and your password will not be shown)\n\
             \x20Help:               {help}\n\
             \x20Leave:              {quit}\n{rule}",
            name = escape(&self.name),
            help = link("help", "help"),
            quit = link("quit", "quit"),
        );
        self.text(sessid, screen);
    }

    // ---- logged in -----------------------------------------------------

    fn player_command(&mut self, sessid: u64, verb: &str, args: &str) {
        match verb {
            "look" | "l" => {
                let room = self.room_text(sessid);
                self.text(sessid, room);
                self.vitals(sessid);
            }
            "say" => self.say(sessid, args),
            "who" => self.who(sessid),
            "echo" if args.is_empty() => self.text(sessid, "Usage: echo <text>"),
            // Exactly as typed, never interpreted: load tools time it.
            "echo" => self.text_with(sessid, args, &[("raw", true)]),
            "color" | "colour" => self.color(sessid),
            "screenreader" => self.screenreader(sessid, args),
            "client" | "term" => self.client(sessid),
            "help" | "h" | "?" => self.text(sessid, player_help()),
            "quit" | "q" | "qui" => self.quit(sessid),
            "reload" | "shutdown" => self.admin(sessid, verb),
            "create" | "connect" => self.text(sessid, "You are already logged in."),
            _ => self.text(
                sessid,
                format!(
                    "Command '{}' is not available. Type \"{}\" for help.",
                    escape(verb),
                    link("help", "help")
                ),
            ),
        }
    }

    fn room_text(&self, sessid: u64) -> String {
        let me = self.sessions.get(sessid).and_then(|s| s.uid);
        let others: Vec<String> = self
            .names_online(|s| s.uid != me)
            .iter()
            .map(|name| format!("|y{}|n", escape(name)))
            .collect();
        let present = match others.len() {
            0 => "You are alone here.".to_owned(),
            n if n <= LOOK_NAMES => format!("|wAlso here:|n {}.", others.join(", ")),
            n => format!(
                "|wAlso here:|n {} and {} others.",
                others[..LOOK_NAMES].join(", "),
                n - LOOK_NAMES
            ),
        };
        let width = self
            .sessions
            .get(sessid)
            .and_then(client::screen_width)
            .unwrap_or(DEFAULT_WIDTH);
        let desc = wrap(ROOM_DESC, width);
        format!(
            "|c{ROOM_NAME}|n\n{desc}\n\
             |wExits:|n none; the only way out is {quit}. Try {who} or {help}.\n\
             {present}",
            quit = link("quit", "quit"),
            who = link("who", "who"),
            help = link("help", "help"),
        )
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

    /// Input on an IRC bot's session: channel talk to every player.
    fn irc_in(&mut self, commands: &[Command]) {
        let players: Vec<u64> = self.sessions.logged_in().map(|s| s.sessid).collect();
        for text in commands.iter().filter_map(irc::shown_to_players) {
            for &id in &players {
                self.text(id, text.clone());
            }
        }
    }

    /// A player's speech to every IRC bot's channel.
    fn say_on_irc(&mut self, speaker: &str, speech: &str) {
        let bots: Vec<u64> = self
            .sessions
            .iter()
            .filter(|s| irc::is_bot(s))
            .map(|s| s.sessid)
            .collect();
        for sessid in bots {
            self.outbox.push(ServerMsg::DataOut {
                sessid,
                commands: vec![irc::channel_line(speaker, speech)],
            });
        }
    }

    fn say(&mut self, sessid: u64, speech: &str) {
        if speech.is_empty() {
            return self.text(sessid, "Say what?");
        }
        let speaker = self.display_name(sessid);
        let listeners: Vec<u64> = self
            .sessions
            .logged_in()
            .filter(|s| !irc::is_bot(s))
            .map(|s| s.sessid)
            .filter(|&id| id != sessid)
            .collect();
        let speech = escape(speech);
        self.text(sessid, format!("You say, \"{speech}\""));
        let heard = format!("{} says, \"{speech}\"", escape(&speaker));
        for id in listeners {
            self.text(id, heard.clone());
        }
        self.say_on_irc(&escape(&speaker), &speech);
    }

    fn who(&mut self, sessid: u64) {
        let names = self.names_online(|_| true);
        let mut text = String::from("|wAccounts online:|n\n");
        for name in &names {
            text.push_str("  ");
            text.push_str(&escape(name));
            text.push('\n');
        }
        let count = names.len();
        let plural = if count == 1 { "" } else { "s" };
        text.push_str(&format!("{count} account{plural} online."));
        self.text(sessid, text);
    }

    fn quit(&mut self, sessid: u64) {
        self.login.remove(&sessid);
        self.forget_browser(sessid);
        self.outbox.push(ServerMsg::Disconnect {
            sessid,
            reason: GOODBYE.to_owned(),
        });
        self.sessions.disconnect(sessid);
    }

    fn admin(&mut self, sessid: u64, verb: &str) {
        if !self.is_admin(sessid) {
            log::info!(
                "session {sessid} from {} ({}) was refused {verb}: not an admin",
                self.address(sessid),
                self.display_name(sessid)
            );
            return self.text(sessid, "You are not allowed to do that.");
        }
        log::info!(
            "session {sessid} from {}: admin {} asked for {verb}",
            self.address(sessid),
            self.display_name(sessid)
        );
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

    /// `color`: the palette, with swatches the client's encoding can show.
    fn color(&mut self, sessid: u64) {
        let utf8 = self.sessions.get(sessid).is_some_and(client::is_utf8);
        self.text(sessid, palette(if utf8 { '\u{2588}' } else { '#' }));
    }

    /// `screenreader [on|off]`: flip (or set) the SCREENREADER protocol
    /// flag and tell the portal, which then renders for a screen reader.
    fn screenreader(&mut self, sessid: u64, args: &str) {
        let Some(session) = self.sessions.get_mut(sessid) else {
            return;
        };
        let on = match args.to_ascii_lowercase().as_str() {
            "" => !flag_on(session, Flag::Screenreader),
            "on" => true,
            "off" => false,
            _ => return self.text(sessid, "Usage: screenreader [on|off]"),
        };
        session.protocol_flags.set_on(Flag::Screenreader, on);
        let record = session.get_sync_data();
        self.outbox.push(ServerMsg::SessionSync {
            sessions: vec![record],
            clean: false,
        });
        self.text(
            sessid,
            if on {
                SCREENREADER_ON
            } else {
                SCREENREADER_OFF
            },
        );
    }

    /// `client`: what the portal negotiated with this player's client.
    fn client(&mut self, sessid: u64) {
        if let Some(session) = self.sessions.get(sessid) {
            let report = client::report(session);
            self.text(sessid, report);
        }
    }

    /// The demo's vitals as OOB data, for clients that take GMCP or MSDP.
    fn vitals(&mut self, sessid: u64) {
        if !self.sessions.get(sessid).is_some_and(wants_oob) {
            return;
        }
        let mut kwargs = Map::new();
        kwargs.insert("hp".into(), Value::Int(HP));
        kwargs.insert("maxhp".into(), Value::Int(HP));
        self.attach(
            sessid,
            Command {
                name: "char_vitals".into(),
                args: Vec::new(),
                kwargs,
            },
        );
    }

    /// The prompt that ends a logged-in command's output.
    fn prompt(&mut self, sessid: u64) {
        self.send_prompt(sessid, PROMPT, None);
    }

    /// A `prompt` command, optionally turning the client's local echo on
    /// or off.
    fn send_prompt(&mut self, sessid: u64, text: &str, echo: Option<bool>) {
        let kwargs = match echo {
            Some(on) => options(&[("echo", on)]),
            None => Map::new(),
        };
        let prompt = Command {
            name: "prompt".into(),
            args: vec![Value::from(text)],
            kwargs,
        };
        self.attach(sessid, prompt);
    }

    /// Add a command to the output just queued for `sessid`, so a reply,
    /// its OOB data and its prompt travel in one message; or queue it on
    /// its own when something else was queued last.
    fn attach(&mut self, sessid: u64, command: Command) {
        if let Some(ServerMsg::DataOut {
            sessid: to,
            commands,
        }) = self.outbox.last_mut()
        {
            if *to == sessid {
                commands.push(command);
                return;
            }
        }
        self.outbox.push(ServerMsg::DataOut {
            sessid,
            commands: vec![command],
        });
    }

    fn text(&mut self, sessid: u64, text: impl Into<String>) {
        self.outbox.push(ServerMsg::DataOut {
            sessid,
            commands: vec![Command::text(text)],
        });
    }

    /// A text with Evennia-style options (`echo`, `raw`, …).
    fn text_with(&mut self, sessid: u64, text: impl Into<String>, opts: &[(&str, bool)]) {
        let mut command = Command::text(text);
        command.kwargs = options(opts);
        self.outbox.push(ServerMsg::DataOut {
            sessid,
            commands: vec![command],
        });
    }
}

/// `kwargs` holding `{"options": {key: bool, …}}`.
fn options(opts: &[(&str, bool)]) -> Map {
    let options: Map = opts
        .iter()
        .map(|(key, on)| ((*key).to_owned(), Value::Bool(*on)))
        .collect();
    let mut kwargs = Map::new();
    kwargs.insert("options".into(), Value::Map(options));
    kwargs
}

/// A `Core.Hello` field: GMCP objects arrive as kwargs; a client that sent
/// a list has it as args. Control characters dropped, length capped.
fn hello_field(command: &Command, key: &str, position: usize) -> Option<String> {
    let value = command
        .kwargs
        .get(key)
        .or_else(|| command.args.get(position))?;
    let text = match value {
        Value::Str(s) => s.clone(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        _ => return None,
    };
    let text: String = text
        .chars()
        .filter(|c| !c.is_control())
        .take(HELLO_MAX)
        .collect();
    (!text.is_empty()).then_some(text)
}

const LOGIN_HELP: &str = "|wYou are not logged in.|n Commands:\n\
  create <name> <password>   make a new account and log in\n\
  connect <name> <password>  log in to your account\n\
  create, connect            the same, asking for the name and then the\n\
                             password (which is not shown as you type)\n\
  look                       show the welcome screen again\n\
  quit                       leave\n\
Names are 3-30 letters, digits or underscores; passwords at least 3 characters.";

/// The logged-in help; the commands are clickable in clients with links.
fn player_help() -> String {
    const WIDTH: usize = 23;
    let rows: [(&str, &str, &str); 9] = [
        ("look", "", "look around (also: l)"),
        (
            "say",
            " <text>",
            "say something to everyone here (or: \"<text>)",
        ),
        ("who", "", "list who is online"),
        ("echo", " <text>", "repeat text back to you, exactly"),
        ("color", "", "show the colour codes (also: colour)"),
        (
            "client",
            "",
            "what your client and the portal agreed (also: term)",
        ),
        (
            "screenreader",
            " [on|off]",
            "simpler output for screen readers",
        ),
        ("help", "", "this help"),
        ("quit", "", "leave the game"),
    ];
    let mut out = String::from("|wCommands:|n\n");
    for (command, usage, what) in rows {
        let shown = command.len() + usage.len();
        let pad = " ".repeat(WIDTH.saturating_sub(shown).max(1));
        out.push_str(&format!(
            "  {}{}{pad}{what}\n",
            link(command, command),
            escape(usage)
        ));
    }
    out.push_str("Admin only: reload (restart the game, keeping everyone connected), shutdown.");
    out
}

#[cfg(test)]
mod tests {
    use super::super::accounts::HashCost;
    use super::super::client::SCREENREADER;
    use super::super::markup::strip;
    use super::*;
    use crate::wire::message::{StartMode, StopMode};

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

    /// Every command sent to `who`, in order.
    fn commands_for(out: &[ServerMsg], who: u64) -> Vec<Command> {
        out.iter()
            .filter_map(|m| match m {
                ServerMsg::DataOut { sessid, commands } if *sessid == who => Some(commands.clone()),
                _ => None,
            })
            .flatten()
            .collect()
    }

    /// The texts (not prompts or OOB) sent to `who`, markup stripped.
    fn texts_for(out: &[ServerMsg], who: u64) -> Vec<String> {
        commands_for(out, who)
            .iter()
            .filter(|c| c.name == "text")
            .map(|c| strip(c.first_str().unwrap_or_default()))
            .collect()
    }

    /// The prompts sent to `who`.
    fn prompts_for(out: &[ServerMsg], who: u64) -> Vec<String> {
        commands_for(out, who)
            .iter()
            .filter(|c| c.name == "prompt")
            .map(|c| c.first_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// The `options` of a command's kwargs.
    fn options_of(command: &Command) -> Map {
        match command.kwargs.get("options") {
            Some(Value::Map(options)) => options.clone(),
            _ => Map::new(),
        }
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
    fn an_irc_bot_session_relays_between_its_channel_and_the_players() {
        let mut f = fixture();
        f.logged_in(1, "anna");
        let bot = Session::init_session(9, "ircbot", "#plaza@127.0.0.1");
        f.game.handle(PortalMsg::Connect { session: bot });
        assert!(f.game.take_outbox().is_empty(), "no login screen for a bot");
        let said = f.say(1, "say hello irc");
        let to_bot = commands_for(&said, 9);
        assert_eq!(to_bot.len(), 1, "{said:?}");
        assert_eq!(to_bot[0].name, "channel");
        assert_eq!(to_bot[0].first_str(), Some("anna: hello irc"));
        let input = Command {
            name: "bot_data_in".into(),
            args: vec![Value::Str("hi from irc".into())],
            kwargs: [("type", "msg"), ("user", "watcher"), ("channel", "#plaza")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), Value::Str(v.into())))
                .collect(),
        };
        f.game.handle(PortalMsg::DataIn {
            sessid: 9,
            commands: vec![input],
        });
        let out = f.game.take_outbox();
        assert_eq!(texts_for(&out, 1), ["[IRC] watcher: hi from irc"]);
        assert!(commands_for(&out, 9).is_empty(), "nothing back to the bot");
        // A player's own `bot_data_in` (GMCP, say) is not IRC input.
        let forged = Command {
            name: "bot_data_in".into(),
            ..Command::text("x")
        };
        f.game.handle(PortalMsg::DataIn {
            sessid: 1,
            commands: vec![forged],
        });
        assert!(texts_for(&f.game.take_outbox(), 1)
            .iter()
            .all(|t| !t.contains("[IRC]")));
    }

    #[test]
    fn a_first_start_asks_for_the_irc_bot_and_a_reload_does_not() {
        for (mode, asks) in [(StartMode::Start, true), (StartMode::Reload, false)] {
            let mut f = fixture();
            let spec = IrcBotSpec::parse("127.0.0.1:6667:#plaza:demobot").ok();
            f.game = f.game.with_irc_bot(spec);
            f.game.start(Synced {
                mode,
                sessions: vec![],
            });
            let asked = f
                .game
                .take_outbox()
                .iter()
                .any(|m| matches!(m, ServerMsg::ServerConnect { protocol_key, .. } if protocol_key == "irc"));
            assert_eq!(asked, asks, "{mode:?}");
        }
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
    fn admin_commands_are_for_the_operators_admin_only() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = AccountStore::open(&dir.path().join("db.sqlite3"), HashCost::Fast).unwrap();
        store.create_admin("root", "pw12345").unwrap();
        let mut f = Fixture {
            _dir: dir,
            game: Game::new("Demo", store),
        };
        f.logged_in(2, "bob");
        f.connect(1);
        f.say(1, "connect root pw12345");
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

    fn oob(name: &str, args: Vec<Value>, kwargs: &[(&str, Value)]) -> Command {
        Command {
            name: name.into(),
            args,
            kwargs: kwargs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect(),
        }
    }

    impl Fixture {
        fn send(&mut self, sessid: u64, command: Command) -> Vec<ServerMsg> {
            let commands = vec![command];
            self.game.handle(PortalMsg::DataIn { sessid, commands });
            self.game.take_outbox()
        }

        fn set_flag(&mut self, sessid: u64, key: &str, value: Value) {
            let mut record = self.game.sessions().get(sessid).unwrap().clone();
            record.protocol_flags.insert(key.into(), value);
            self.game.handle(PortalMsg::ConnSync { session: record });
            assert!(self.game.take_outbox().is_empty());
        }
    }

    #[test]
    fn echo_is_one_raw_text_exactly_as_typed_without_a_prompt() {
        let mut f = fixture();
        f.logged_in(1, "anna");
        let out = f.say(1, "echo |rred|n ||x |lcquit|ltq|le");
        let expected = Command {
            name: "text".into(),
            args: vec![Value::from("|rred|n ||x |lcquit|ltq|le")],
            kwargs: options(&[("raw", true)]),
        };
        let reply = ServerMsg::DataOut {
            sessid: 1,
            commands: vec![expected],
        };
        assert_eq!(out, [reply]);
    }

    #[test]
    fn logged_in_commands_end_with_a_prompt_in_the_same_message() {
        let mut f = fixture();
        f.connect(1);
        let out = f.say(1, "look");
        assert!(prompts_for(&out, 1).is_empty(), "no prompt before login");
        let out = f.say(1, "create anna pw123");
        assert_eq!(prompts_for(&out, 1), [PROMPT]);
        for line in ["look", "who", "help", "dance", "say hi", "color", "client"] {
            let out = f.say(1, line);
            assert_eq!(prompts_for(&out, 1), [PROMPT], "after {line}");
            let last = commands_for(&out, 1).pop().unwrap();
            assert_eq!(last.name, "prompt", "the prompt comes last after {line}");
        }
        // look's reply and its prompt are one DataOut
        match f.say(1, "look").as_slice() {
            [ServerMsg::DataOut { commands, .. }] => {
                let names: Vec<&str> = commands.iter().map(|c| c.name.as_str()).collect();
                assert_eq!(names, ["text", "prompt"]);
            }
            other => panic!("{other:?}"),
        }
        assert!(prompts_for(&f.say(1, "echo x"), 1).is_empty());
        assert!(prompts_for(&f.say(1, "quit"), 1).is_empty());
    }

    #[test]
    fn interactive_connect_hides_the_password() {
        let mut f = fixture();
        f.logged_in(1, "anna");
        f.connect(2);
        let out = f.say(2, "connect");
        assert_eq!(prompts_for(&out, 2), [NAME_PROMPT]);
        assert!(texts_for(&out, 2)[0].contains("empty line to cancel"));
        let out = f.say(2, "Anna");
        let commands = commands_for(&out, 2);
        assert_eq!(commands.len(), 1, "{commands:?}");
        assert_eq!(commands[0].name, "prompt");
        assert_eq!(commands[0].first_str(), Some(PASSWORD_PROMPT));
        assert_eq!(
            options_of(&commands[0]).get("echo"),
            Some(&Value::Bool(false))
        );

        let out = f.say(2, "pw123");
        let commands = commands_for(&out, 2);
        assert_eq!(commands[0].name, "text");
        assert_eq!(
            options_of(&commands[0]).get("echo"),
            Some(&Value::Bool(true))
        );
        assert!(out.iter().any(|m| matches!(m, ServerMsg::Login { .. })));
        assert!(texts_for(&out, 2).join("\n").contains("Welcome, anna!"));
        assert_eq!(prompts_for(&out, 2), [PROMPT]);
        assert!(
            !format!("{out:?}").contains("pw123"),
            "the password is not echoed"
        );
        assert!(f.game.sessions().get(2).unwrap().logged_in);
    }

    #[test]
    fn interactive_connect_with_a_wrong_password_restores_echo_and_starts_over() {
        let mut f = fixture();
        f.logged_in(1, "anna");
        f.connect(2);
        f.say(2, "connect anna");
        assert!(
            f.game.login.contains_key(&2),
            "a name skips to the password"
        );
        let out = f.say(2, "nope");
        let commands = commands_for(&out, 2);
        assert_eq!(
            options_of(&commands[0]).get("echo"),
            Some(&Value::Bool(true))
        );
        assert_eq!(texts_for(&out, 2), ["", "Incorrect name or password."]);
        assert!(!f.game.sessions().get(2).unwrap().logged_in);
        assert!(prompts_for(&out, 2).is_empty());
        // the dialogue is over: the next line is a command again
        assert!(f.texts(2, "look")[0].contains("Welcome to Demo"));
    }

    #[test]
    fn interactive_create_checks_the_name_before_asking_the_password() {
        let mut f = fixture();
        f.logged_in(1, "anna");
        f.connect(2);
        f.say(2, "create");
        assert_eq!(f.texts(2, "ANNA"), ["That name is already taken."]);
        f.say(2, "cr");
        assert!(f.texts(2, "no way")[0].contains("letters, digits"));
        f.say(2, "create");
        let out = f.say(2, "bob");
        assert_eq!(prompts_for(&out, 2), [PASSWORD_PROMPT]);
        let out = f.say(2, "  secret words ");
        let texts = texts_for(&out, 2);
        assert!(
            texts.contains(&"A new account 'bob' was created.".to_owned()),
            "{texts:?}"
        );
        f.connect(3);
        assert!(f.texts(3, "connect bob secret words")[0].contains("Welcome, bob!"));
    }

    #[test]
    fn empty_lines_cancel_and_idle_markers_do_not_answer() {
        let mut f = fixture();
        f.connect(1);
        f.say(1, "connect");
        assert!(f.say(1, "idle").is_empty());
        assert_eq!(f.texts(1, ""), ["Cancelled."]);
        f.say(1, "create anna");
        let out = f.say(1, " ");
        assert_eq!(texts_for(&out, 1), ["", "Cancelled."]);
        assert_eq!(
            options_of(&commands_for(&out, 1)[0]).get("echo"),
            Some(&Value::Bool(true))
        );
        assert!(f.game.login.is_empty());
    }

    #[test]
    fn disconnecting_forgets_the_dialogue() {
        let mut f = fixture();
        f.connect(1);
        f.connect(2);
        f.say(1, "connect");
        f.say(2, "create bob");
        f.game.handle(PortalMsg::Disconnect { sessid: 1 });
        assert!(!f.game.login.contains_key(&1));
        assert!(f.game.login.contains_key(&2));
        f.game.handle(PortalMsg::DisconnectAll);
        assert!(f.game.login.is_empty());
        f.connect(3);
        f.say(3, "connect");
        f.game.handle(PortalMsg::Sync {
            mode: StartMode::Reload,
            sessions: vec![],
        });
        assert!(f.game.login.is_empty());
    }

    #[test]
    fn player_text_is_escaped_so_nobody_injects_markup() {
        let mut f = fixture();
        f.logged_in(1, "anna");
        f.logged_in(2, "bob");
        let out = f.say(1, "say |rred |lcquit|ltclick|le");
        let raw = |who| commands_for(&out, who)[0].first_str().unwrap().to_owned();
        assert_eq!(raw(1), "You say, \"||rred ||lcquit||ltclick||le\"");
        assert_eq!(raw(2), "anna says, \"||rred ||lcquit||ltclick||le\"");
        let out = f.say(1, "|rdance");
        assert!(commands_for(&out, 1)[0]
            .first_str()
            .unwrap()
            .contains("'||rdance'"));
    }

    #[test]
    fn look_is_coloured_with_links_and_sends_vitals_to_oob_clients() {
        let mut f = fixture();
        f.logged_in(1, "anna");
        f.logged_in(2, "bob");
        let out = f.say(1, "look");
        let commands = commands_for(&out, 1);
        let room = commands[0].first_str().unwrap();
        assert!(room.starts_with(&format!("|c{ROOM_NAME}|n\n")), "{room}");
        assert!(room.contains("|ybob|n"), "{room}");
        assert!(room.contains("|lcwho|ltwho|le"), "{room}");
        assert!(
            strip(room).lines().all(|l| l.len() <= DEFAULT_WIDTH),
            "{room}"
        );
        let mut narrow = Map::new();
        narrow.insert("0".into(), Value::Int(40));
        f.set_flag(1, "SCREENWIDTH", Value::Map(narrow));
        let room = f.texts(1, "look")[0].clone();
        let desc: Vec<&str> = room
            .lines()
            .skip(1)
            .take_while(|l| !l.starts_with("Exits"))
            .collect();
        assert!(
            desc.len() > 3 && desc.iter().all(|l| l.len() <= 40),
            "{room}"
        );
        assert!(!commands.iter().any(|c| c.name == "char_vitals"));

        f.set_flag(1, "GMCP", Value::Bool(true));
        let out = f.say(1, "l");
        let names: Vec<String> = commands_for(&out, 1).into_iter().map(|c| c.name).collect();
        assert_eq!(names, ["text", "char_vitals", "prompt"]);
        let vitals = &commands_for(&out, 1)[1];
        assert_eq!(vitals.kwargs.get("hp"), Some(&Value::Int(10)));
        assert_eq!(vitals.kwargs.get("maxhp"), Some(&Value::Int(10)));
    }

    #[test]
    fn login_sends_vitals_when_the_client_speaks_msdp() {
        let mut f = fixture();
        f.connect(1);
        f.set_flag(1, "MSDP", Value::Bool(true));
        let out = f.say(1, "create anna pw123");
        assert!(commands_for(&out, 1)
            .iter()
            .any(|c| c.name == "char_vitals"));
    }

    #[test]
    fn screenreader_toggles_the_flag_and_syncs_it_to_the_portal() {
        let mut f = fixture();
        f.logged_in(1, "anna");
        let out = f.say(1, "screenreader");
        match &out[0] {
            ServerMsg::SessionSync { sessions, clean } => {
                assert!(!clean);
                assert_eq!(sessions.len(), 1);
                assert_eq!(sessions[0].sessid, 1);
                assert!(sessions[0].logged_in);
                let flag = sessions[0].protocol_flags.get(SCREENREADER);
                assert_eq!(flag, Some(Value::Bool(true)));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(texts_for(&out, 1), [SCREENREADER_ON]);
        assert_eq!(f.texts(1, "screenreader"), [SCREENREADER_OFF]);
        assert_eq!(f.texts(1, "screenreader off"), [SCREENREADER_OFF]);
        assert_eq!(f.texts(1, "SCREENREADER ON"), [SCREENREADER_ON]);
        let flags = &f.game.sessions().get(1).unwrap().protocol_flags;
        assert_eq!(flags.get(SCREENREADER), Some(Value::Bool(true)));
        assert!(f.texts(1, "client").join("").contains("SCREENREADER: yes"));
        let out = f.say(1, "screenreader maybe");
        assert!(!out
            .iter()
            .any(|m| matches!(m, ServerMsg::SessionSync { .. })));
    }

    #[test]
    fn client_reports_what_the_portal_negotiated() {
        let mut f = fixture();
        f.logged_in(1, "anna");
        let mut size = Map::new();
        size.insert("0".into(), Value::Int(132));
        f.set_flag(1, "SCREENWIDTH", Value::Map(size));
        f.set_flag(1, "CLIENTNAME", Value::from("Mudlet"));
        f.set_flag(1, "XTERM256", Value::Bool(true));
        let report = f.texts(1, "term").join("\n");
        assert!(report.contains("Screen: 132x45\n"), "{report}");
        assert!(report.contains("Client: Mudlet\n"), "{report}");
        assert!(report.contains("XTERM256: yes\n"), "{report}");
        assert!(report.contains("MCCP: no\n"), "{report}");
    }

    #[test]
    fn core_ping_is_answered_with_the_same_payload_even_before_login() {
        let mut f = fixture();
        f.connect(1);
        let ping = oob("core_ping", vec![Value::Int(7)], &[("x", Value::from("y"))]);
        let out = f.send(1, ping.clone());
        let reply = ServerMsg::DataOut {
            sessid: 1,
            commands: vec![ping],
        };
        assert_eq!(out, [reply]);
    }

    #[test]
    fn core_hello_is_remembered_and_shown_by_client() {
        let mut f = fixture();
        f.connect(1);
        let hello = oob(
            "core_hello",
            vec![],
            &[
                ("client", Value::from("Mudlet")),
                ("version", Value::from("4.17")),
            ],
        );
        assert!(f.send(1, hello).is_empty(), "OOB input gets no text reply");
        let data = &f.game.sessions().get(1).unwrap().server_data;
        assert_eq!(data.get(client::HELLO_CLIENT), Some(&Value::from("Mudlet")));
        assert_eq!(data.get(client::HELLO_VERSION), Some(&Value::from("4.17")));
        f.say(1, "create anna pw123");
        assert!(f
            .texts(1, "client")
            .join("\n")
            .contains("Client: Mudlet 4.17\n"));
    }

    #[test]
    fn unknown_oob_is_ignored_silently() {
        let mut f = fixture();
        f.logged_in(1, "anna");
        assert!(f.send(1, oob("char_login", vec![], &[])).is_empty());
        assert!(f.send(9, oob("core_ping", vec![], &[])).is_empty());
        let long = "x".repeat(500);
        f.send(1, oob("core_hello", vec![Value::from(long)], &[]));
        let data = &f.game.sessions().get(1).unwrap().server_data;
        let kept = data
            .get(client::HELLO_CLIENT)
            .and_then(Value::as_str)
            .unwrap();
        assert_eq!(kept.len(), HELLO_MAX);
        assert_eq!(data.get(client::HELLO_VERSION), None);
    }

    #[test]
    fn msdp_list_report_and_send_get_the_game_library_defaults() {
        let mut f = fixture();
        f.connect(1);
        let list = oob("msdp_list", vec![Value::from("COMMANDS")], &[]);
        let out = commands_for(&f.send(1, list), 1);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].name, "COMMANDS");
        let Value::List(names) = &out[0].args[0] else {
            panic!("{out:?}")
        };
        for name in ["LIST", "REPORT", "SEND"] {
            assert!(names.contains(&Value::from(name)), "{name} in {names:?}");
        }
        let report = oob("msdp_report", vec![Value::from("health")], &[]);
        assert!(f.send(1, report).is_empty());
        let list = oob("msdp_list", vec![Value::from("REPORTED_VARIABLES")], &[]);
        let out = commands_for(&f.send(1, list), 1);
        assert_eq!(out[0].args, [Value::List(vec![Value::from("HEALTH")])]);
        let send = oob("msdp_send", vec![Value::from("HEALTH")], &[]);
        let out = commands_for(&f.send(1, send), 1);
        assert_eq!(out[0].name, "HEALTH");
        assert_eq!(out[0].args, [Value::Int(HP)]);
    }

    #[test]
    fn color_shows_the_palette_in_blocks_the_encoding_can_carry() {
        let mut f = fixture();
        f.logged_in(1, "anna");
        let out = f.say(1, "colour");
        let palette = commands_for(&out, 1)[0].first_str().unwrap().to_owned();
        assert!(palette.contains("||r") && palette.contains("||[r"));
        assert!(palette.contains("|555\u{2588}"));
        f.set_flag(1, "ENCODING", Value::from("latin-1"));
        let out = f.say(1, "color");
        let palette = commands_for(&out, 1)[0].first_str().unwrap().to_owned();
        assert!(palette.contains("|555#") && !palette.contains('\u{2588}'));
    }

    #[test]
    fn help_lists_the_new_commands_as_links() {
        let mut f = fixture();
        f.logged_in(1, "anna");
        let out = f.say(1, "help");
        let help = commands_for(&out, 1)[0].first_str().unwrap().to_owned();
        for command in ["look", "color", "client", "screenreader"] {
            assert!(help.contains(&link(command, command)), "{command}: {help}");
        }
        let shown = texts_for(&out, 1)[0].clone();
        assert!(
            shown.contains("  screenreader [on|off]  simpler"),
            "{shown}"
        );
        assert!(shown.lines().all(|l| l.chars().count() <= 80), "{shown}");
        f.connect(2);
        assert!(f.texts(2, "help")[0].contains("not shown as you type"));
    }

    // ---- browser logins ------------------------------------------------

    const BROWSER_A: &str = "tok-A-6f1c9d2e8b7a4f3c";
    const BROWSER_B: &str = "tok-B-0e5d4c3b2a19f8e7";

    fn fixture_with_hours(hours: u32) -> Fixture {
        let mut f = fixture();
        f.game = reopen_game(&f, hours);
        f
    }

    /// A new `Game` over the fixture's database file.
    fn reopen_game(f: &Fixture, hours: u32) -> Game {
        let store = AccountStore::open(&f.db_path(), HashCost::Fast).unwrap();
        Game::new("Demo", store).with_browser_login_hours(hours)
    }

    fn logins_in(out: &[ServerMsg]) -> Vec<u64> {
        out.iter()
            .filter_map(|m| match m {
                ServerMsg::Login { session } => Some(session.sessid),
                _ => None,
            })
            .collect()
    }

    impl Fixture {
        fn db_path(&self) -> std::path::PathBuf {
            self._dir.path().join("db.sqlite3")
        }

        /// A browser tab (`webclient/websocket`) with this `csessid`.
        fn tab(&mut self, sessid: u64, csessid: &str) -> Vec<ServerMsg> {
            let mut session = Session::init_session(sessid, "webclient/websocket", "127.0.0.1:9");
            session.csessid = Some(csessid.to_owned());
            self.game.handle(PortalMsg::Connect { session });
            self.game.take_outbox()
        }

        fn close(&mut self, sessid: u64) {
            self.game.handle(PortalMsg::Disconnect { sessid });
            assert!(self.game.take_outbox().is_empty());
        }

        fn is_logged_in(&self, sessid: u64) -> bool {
            self.game.sessions().get(sessid).unwrap().logged_in
        }

        /// Make every remembered browser look `secs` older.
        fn age_browsers(&self, secs: f64) {
            let conn = rusqlite::Connection::open(self.db_path()).unwrap();
            conn.execute(
                "UPDATE browser_logins SET last_seen = last_seen - ?1",
                [secs],
            )
            .unwrap();
        }

        fn browsers_remembered(&self) -> i64 {
            let conn = rusqlite::Connection::open(self.db_path()).unwrap();
            conn.query_row("SELECT COUNT(*) FROM browser_logins", [], |r| r.get(0))
                .unwrap()
        }
    }

    fn is_login_screen(out: &[ServerMsg], sessid: u64) -> bool {
        !logins_in(out).contains(&sessid)
            && texts_for(out, sessid)
                .join("\n")
                .contains("Welcome to Demo")
    }

    fn is_resumed(out: &[ServerMsg], sessid: u64, name: &str) -> bool {
        let text = texts_for(out, sessid).join("\n");
        logins_in(out).contains(&sessid)
            && text.starts_with(&format!(
                "Welcome back, {name} (resumed from this browser).\n\n{ROOM_NAME}"
            ))
            && prompts_for(out, sessid) == [PROMPT]
    }

    #[test]
    fn the_tabs_of_one_browser_log_in_together_and_nobody_else_does() {
        let mut f = fixture();
        f.tab(1, BROWSER_A);
        f.tab(2, BROWSER_A);
        f.tab(3, BROWSER_B);
        f.connect(4);
        let out = f.say(1, "create anna pw123");
        assert_eq!(logins_in(&out), [1, 2]);
        let tab = texts_for(&out, 2).join("\n");
        assert!(
            tab.starts_with(&format!("Welcome, anna! You are logged in.\n\n{ROOM_NAME}")),
            "{tab}"
        );
        assert_eq!(prompts_for(&out, 2), [PROMPT]);
        assert_eq!(prompts_for(&out, 1), [PROMPT]);
        assert!(texts_for(&out, 3).is_empty() && texts_for(&out, 4).is_empty());
        assert!(f.is_logged_in(2));
        assert_eq!(
            f.game.sessions().get(2).unwrap().uname.as_deref(),
            Some("anna")
        );
        assert!(!f.is_logged_in(3) && !f.is_logged_in(4));
        // The other browser logs in as someone else: its tabs follow, and
        // the first browser's tabs keep their login.
        f.tab(6, BROWSER_B);
        let out = f.say(6, "create bob pw123");
        assert_eq!(logins_in(&out), [6, 3], "the tab that logged in first");
        for (tab, name) in [(1, "anna"), (2, "anna"), (3, "bob"), (6, "bob")] {
            let uname = f.game.sessions().get(tab).unwrap().uname.clone();
            assert_eq!(uname.as_deref(), Some(name), "tab {tab}");
        }
        assert!(!f.is_logged_in(4), "the telnet session is never a tab");
    }

    #[test]
    fn a_tab_at_the_password_prompt_is_logged_in_with_its_echo_turned_back_on() {
        let mut f = fixture();
        f.logged_in(9, "bob");
        f.tab(1, BROWSER_A);
        f.tab(2, BROWSER_A);
        f.say(2, "connect bob");
        let out = f.say(1, "connect bob pw123");
        assert_eq!(logins_in(&out), [1, 2]);
        let first = &commands_for(&out, 2)[0];
        assert_eq!(first.first_str(), Some(""));
        assert_eq!(options_of(first).get("echo"), Some(&Value::Bool(true)));
        assert!(!f.game.login.contains_key(&2), "the dialogue is over");
        // The tab's next line is a command, not a password.
        assert!(f.texts(2, "look")[0].starts_with(ROOM_NAME));
    }

    #[test]
    fn a_new_tab_resumes_the_browsers_login_without_a_password() {
        let mut f = fixture();
        f.tab(1, BROWSER_A);
        f.say(1, "create anna pw123");
        // Another tab while the first is open.
        let out = f.tab(2, BROWSER_A);
        assert!(is_resumed(&out, 2, "anna"), "{out:?}");
        // A network blip: every tab closes, the page reconnects.
        f.close(1);
        f.close(2);
        let out = f.tab(3, BROWSER_A);
        assert!(is_resumed(&out, 3, "anna"), "{out:?}");
        assert_eq!(f.game.sessions().get(3).unwrap().uid, Some(1));
        // Another browser and a telnet client see the login screen.
        assert!(is_login_screen(&f.tab(4, BROWSER_B), 4));
        assert!(is_login_screen(&f.connect(5), 5));
    }

    #[test]
    fn quit_forgets_the_browser_but_leaves_its_other_tabs_logged_in() {
        let mut f = fixture();
        f.tab(1, BROWSER_A);
        f.tab(2, BROWSER_A);
        f.say(1, "create anna pw123");
        assert_eq!(f.browsers_remembered(), 1);
        let out = f.say(1, "quit");
        assert!(out.contains(&ServerMsg::Disconnect {
            sessid: 1,
            reason: GOODBYE.into()
        }));
        assert_eq!(f.browsers_remembered(), 0);
        assert!(f.is_logged_in(2), "the other tab stays");
        assert!(is_login_screen(&f.tab(3, BROWSER_A), 3));
        // The remaining tab closing does not bring the login back.
        f.close(2);
        assert!(is_login_screen(&f.tab(4, BROWSER_A), 4));
        // Logging in again remembers the browser again.
        f.say(4, "connect anna pw123");
        assert!(f.is_logged_in(3), "tab 3 was still at the login screen");
        f.close(3);
        f.close(4);
        assert!(is_resumed(&f.tab(5, BROWSER_A), 5, "anna"));
    }

    #[test]
    fn quit_before_login_forgets_too() {
        let mut f = fixture();
        f.tab(1, BROWSER_A);
        f.say(1, "create anna pw123");
        f.close(1);
        f.tab(2, BROWSER_B);
        f.say(2, "quit");
        assert_eq!(f.browsers_remembered(), 1, "another browser's quit");
        f.connect(3);
        f.say(3, "quit");
        assert_eq!(f.browsers_remembered(), 1, "a telnet quit");
    }

    #[test]
    fn a_remembered_login_expires_unless_a_tab_is_still_logged_in() {
        let mut f = fixture_with_hours(1);
        f.tab(1, BROWSER_A);
        f.say(1, "create anna pw123");
        // Within the hour: resumed.
        f.close(1);
        f.age_browsers(1800.0);
        assert!(is_resumed(&f.tab(2, BROWSER_A), 2, "anna"));
        // Seen long ago, but tab 2 is logged in right now: resumed.
        f.age_browsers(7200.0);
        assert!(is_resumed(&f.tab(3, BROWSER_A), 3, "anna"));
        // A logged-in tab closing counts as the browser being seen.
        f.age_browsers(7200.0);
        f.close(2);
        f.close(3);
        assert!(is_resumed(&f.tab(4, BROWSER_A), 4, "anna"));
        // Two hours with no tab: expired, and forgotten.
        f.close(4);
        f.age_browsers(7200.0);
        assert!(is_login_screen(&f.tab(5, BROWSER_A), 5));
        assert_eq!(f.browsers_remembered(), 0);
    }

    #[test]
    fn the_default_window_is_a_day() {
        let mut f = fixture();
        f.tab(1, BROWSER_A);
        f.say(1, "create anna pw123");
        f.close(1);
        f.age_browsers(23.0 * 3600.0);
        assert!(is_resumed(&f.tab(2, BROWSER_A), 2, "anna"));
        f.close(2);
        f.age_browsers(25.0 * 3600.0);
        assert!(is_login_screen(&f.tab(3, BROWSER_A), 3));
    }

    #[test]
    fn zero_hours_remembers_nothing_but_tabs_still_log_in_together() {
        let mut f = fixture();
        f.tab(1, BROWSER_A);
        f.say(1, "create anna pw123");
        assert_eq!(f.browsers_remembered(), 1);
        let mut game = reopen_game(&f, 0);
        game.start(Synced {
            mode: StartMode::Start,
            sessions: vec![],
        });
        f.game = game;
        assert_eq!(f.browsers_remembered(), 0, "forgotten at start");
        f.tab(2, BROWSER_A);
        let out = f.tab(3, BROWSER_A);
        assert!(is_login_screen(&out, 3), "no resume");
        assert_eq!(logins_in(&f.say(2, "connect anna pw123")), [2, 3]);
        assert_eq!(f.browsers_remembered(), 0);
        f.close(2);
        f.close(3);
        assert!(is_login_screen(&f.tab(4, BROWSER_A), 4));
    }

    #[test]
    fn telnet_sessions_are_never_tabs() {
        let mut f = fixture();
        f.connect(1);
        f.connect(2);
        assert_eq!(logins_in(&f.say(1, "create anna pw123")), [1]);
        assert!(!f.is_logged_in(2));
        assert_eq!(f.browsers_remembered(), 0);
        f.close(1);
        assert!(is_login_screen(&f.connect(3), 3));
    }

    #[test]
    fn empty_or_absurd_csessids_are_no_browser() {
        let mut f = fixture();
        let long = "x".repeat(browser::MAX_CSESSID + 1);
        for (a, b, id) in [(1, 2, ""), (3, 4, long.as_str()), (5, 6, "a b")] {
            f.tab(a, id);
            f.tab(b, id);
            let name = format!("user{a}");
            assert_eq!(logins_in(&f.say(a, &format!("create {name} pw123"))), [a]);
            assert!(!f.is_logged_in(b), "{id:?}");
            f.close(a);
            assert!(is_login_screen(&f.tab(a + 10, id), a + 10), "{id:?}");
        }
        assert_eq!(f.browsers_remembered(), 0);
    }

    #[test]
    fn a_browser_login_survives_a_fresh_game_on_the_same_database() {
        let mut f = fixture();
        f.tab(1, BROWSER_A);
        f.tab(2, BROWSER_A);
        f.say(1, "create anna pw123");
        f.tab(3, BROWSER_B);
        // The game stops (the portal goes down with it), and comes back.
        f.game.handle(PortalMsg::Stop {
            mode: StopMode::Shutdown,
        });
        let mut game = reopen_game(&f, DEFAULT_BROWSER_LOGIN_HOURS);
        game.start(Synced {
            mode: StartMode::Start,
            sessions: vec![],
        });
        assert!(game.take_outbox().is_empty());
        f.game = game;
        assert!(is_resumed(&f.tab(7, BROWSER_A), 7, "anna"));
        assert!(is_login_screen(&f.tab(8, BROWSER_B), 8));
    }

    #[test]
    fn tabs_that_connected_while_the_game_was_starting_are_resumed_once() {
        let mut f = fixture();
        f.tab(1, BROWSER_A);
        f.say(1, "create anna pw123");
        f.close(1);
        let waiting: Vec<Session> = [(2, BROWSER_A), (3, BROWSER_A), (4, BROWSER_B)]
            .into_iter()
            .map(|(sessid, id)| {
                let mut s = Session::init_session(sessid, "webclient/websocket", "x");
                s.csessid = Some(id.to_owned());
                s
            })
            .collect();
        let mut game = reopen_game(&f, DEFAULT_BROWSER_LOGIN_HOURS);
        game.start(Synced {
            mode: StartMode::Start,
            sessions: waiting,
        });
        let out = game.take_outbox();
        assert_eq!(logins_in(&out), [2, 3]);
        for tab in [2, 3] {
            let welcomes = texts_for(&out, tab)
                .iter()
                .filter(|t| t.starts_with("Welcome back, anna"))
                .count();
            assert_eq!(welcomes, 1, "tab {tab}: {out:?}");
        }
        assert!(is_login_screen(&out, 4));
    }

    #[test]
    fn the_browser_id_is_never_shown_to_a_player() {
        let mut f = fixture();
        f.tab(1, BROWSER_A);
        f.tab(2, BROWSER_A);
        let mut out = f.say(1, "create anna pw123");
        out.extend(f.tab(3, BROWSER_A));
        for line in ["look", "who", "client", "help"] {
            out.extend(f.say(1, line));
        }
        let shown: Vec<String> = [1, 2, 3]
            .into_iter()
            .flat_map(|id| texts_for(&out, id))
            .collect();
        assert!(!shown.join("\n").contains(BROWSER_A), "{shown:?}");
    }
}
