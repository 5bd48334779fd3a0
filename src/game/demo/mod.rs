//! The bundled demo game (`demo_game` binary): the first user of
//! [`crate::game`], and the target of the dummyrunner.
//!
//! ```text
//!   portal ──PortalMsg──► GameLink::recv ──► Game::handle ──► outbox
//!   portal ◄─ServerMsg─── GameLink::send_all ◄──────────────────┘
//! ```
//!
//! One thread, one loop over [`GameLink::recv`]. The rules follow
//! Evennia's default login screen and commands so MUD clients and load
//! tools can drive it: before login `create <name> <password>`,
//! `connect <name> <password>`, `look`, `help`, `quit`; after login `look`,
//! `say <text>` (or `"text`), `who`, `echo <text>`, `color`, `client`,
//! `screenreader`, `help`, `quit`, and for the admin,
//! `reload` and `shutdown`. A line `idle` is a keepalive and is ignored.
//!
//! What it asks of the portal ([`world`] has the details):
//!
//! - output is written in Evennia colour markup ([`markup`]), which the
//!   portal renders per client; anything a player typed is escaped, except
//!   `echo`'s reply, sent with the `raw` option so it comes back exactly;
//! - `create` or `connect` alone asks `Name: ` and then `Password: ` as
//!   prompts, the second with the option `echo: false` so the client stops
//!   showing what is typed, and turns echo back on after the password line;
//! - every logged-in command but `echo` and `quit` ends with a `prompt`;
//! - out-of-band: GMCP `Core.Ping` (`ping`, as Evennia's portal names it) is answered with its own
//!   payload, `Core.Hello` is remembered, and clients with GMCP or MSDP get
//!   `char_vitals` after login and `look`; MSDP's `LIST`, `REPORT`,
//!   `UNREPORT`, `RESET` and `SEND` get the game library's defaults
//!   ([`crate::game::MsdpDefaults`]), with `HEALTH` and `HEALTH_MAX` to
//!   report and send;
//! - `client` reports the session's `protocol_flags` ([`client`]);
//!   `screenreader` flips `SCREENREADER` there and pushes the record back
//!   with a `SessionSync`;
//! - browser sessions (`webclient/websocket`) carry their browser's id,
//!   `csessid`, from the `Connect` on; every tab of one browser has the
//!   same one, no other browser has it, and it is a secret only that
//!   browser knows (the portal's HttpOnly cookie). The game logs all tabs
//!   of a browser in together, and resumes a browser's login when a tab
//!   connects again ([`world`] has the rules); so whoever presents a
//!   browser's `csessid` is logged in as it. A `csessid` that is absent,
//!   empty, over 128 bytes or holds whitespace or control characters is
//!   ignored ([`browser`]): that session is no browser's tab, like a
//!   telnet session (which has none).
//!
//! Accounts live in SQLite ([`accounts`]); passwords are argon2id PHC
//! strings. The same database remembers, per browser, the account it was
//! last logged in as and when it was last seen (table `browser_logins`,
//! keyed by the SHA-256 of the `csessid`; the id itself is never stored or
//! logged), so a browser's login survives a game restart.
//!
//! # Interface
//!
//! The portal starts it as a child process:
//!
//! | setting | flag | environment | default |
//! |---|---|---|---|
//! | portal AMP address | `--amp ADDR` | `PORTAL_AMP_ADDR` | `127.0.0.1:4006` |
//! | shared secret | — | `PORTAL_AMP_SECRET` | empty |
//! | account database | `--db PATH` | — | `demo_game.sqlite3` |
//! | game name | `--name NAME` | — | `Portal Demo` |
//! | password hash cost | `--hash-cost COST` | `DEMO_GAME_HASH_COST` | `default` |
//! | connect timeout (s) | `--connect-timeout SECS` | — | `30` |
//! | browser login memory (h) | `--browser-login-hours N` | — | `24` |
//! | log level | `--log-level LEVEL` | `DEMO_GAME_LOG` | `info` |
//! | IRC bot ([`irc`]) | `--irc-bot NETWORK:PORT:CHANNEL:NICK[:tls]` | `DEMO_GAME_IRC_BOT` | none |
//!
//! `COST` is `default` (the argon2 crate's parameters: 19 MiB, 2 passes,
//! tens of milliseconds per login, during which this single-threaded game
//! does nothing else), `fast` (8 KiB, 1 pass: for load tests that create
//! thousands of accounts; not for real passwords) or a memory size in KiB.
//! Existing hashes keep verifying under any setting. Flags win over the
//! environment.
//!
//! `N` is how many hours after a browser was last seen (logging in, or
//! one of its logged-in tabs closing) a new tab of it is logged in without
//! a password; `0` turns remembering off and forgets every remembered
//! browser at start (tabs connected when one of them logs in still log in
//! together).
//!
//! # The admin
//!
//! Accounts players create are never admin. The operator makes the admin,
//! before or at the first start:
//!
//! - `demo_game create-admin [--db PATH] [--hash-cost COST] [NAME [PASSWORD]]`:
//!   what is not given comes from `DEMO_GAME_ADMIN_NAME` and
//!   `DEMO_GAME_ADMIN_PASSWORD`, else is asked for on the terminal (the
//!   password without echo);
//! - at start, when the database has no admin and both variables are set,
//!   the game creates that admin; with no admin and no variables it logs
//!   how to make one and runs without.
//!
//! Exit status: 0 after the portal's `Stop` (the final `SessionSync` sent),
//! 1 when the link is lost (the portal's supervisor restarts the game),
//! 2 for bad arguments or when the database or the portal cannot be reached
//! at start.

pub mod accounts;
pub mod browser;
pub mod client;
pub mod command;
pub mod irc;
pub mod markup;
pub mod world;

use crate::game::GameLink;
use accounts::{AccountStore, HashCost};
use log::LevelFilter;
use std::path::PathBuf;
use std::time::Duration;
use world::{Game, Step, DEFAULT_BROWSER_LOGIN_HOURS};

/// Exit status after a clean stop.
pub const EXIT_OK: i32 = 0;
/// Exit status when the link to the portal is lost.
pub const EXIT_LINK_LOST: i32 = 1;
/// Exit status for bad arguments or a failed start.
pub const EXIT_STARTUP: i32 = 2;

/// The name sent in the hello and shown on the login screen.
const DEFAULT_NAME: &str = "Portal Demo";

/// Everything the command line and environment decide.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub amp_addr: String,
    pub secret: String,
    pub db: PathBuf,
    pub name: String,
    pub hash_cost: HashCost,
    pub connect_timeout: Duration,
    pub log_level: LevelFilter,
    /// Hours a browser's login is remembered; 0 = not at all.
    pub browser_login_hours: u32,
    /// An IRC bot to ask the portal for ([`irc`]).
    pub irc_bot: Option<irc::IrcBotSpec>,
}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Invocation {
    Run(Options),
    /// `create-admin`: make the admin account, then exit.
    CreateAdmin(AdminRequest),
    Help,
}

/// The environment variable naming the admin account.
pub const ADMIN_NAME_ENV: &str = "DEMO_GAME_ADMIN_NAME";
/// The environment variable holding the admin's password.
pub const ADMIN_PASSWORD_ENV: &str = "DEMO_GAME_ADMIN_PASSWORD";

/// `create-admin`'s arguments; what is `None` is asked for on the terminal.
#[derive(Debug, Clone, PartialEq)]
pub struct AdminRequest {
    pub db: PathBuf,
    pub hash_cost: HashCost,
    pub name: Option<String>,
    pub password: Option<String>,
}

/// The `--help` text.
pub const USAGE: &str = "\
usage: demo_game [options]   (normally started by the portal, [game] command)
       demo_game create-admin [--db PATH] [--hash-cost COST] [NAME [PASSWORD]]

  --amp ADDR                 the portal's AMP address (PORTAL_AMP_ADDR, else 127.0.0.1:4006)
  --db PATH                  account database (demo_game.sqlite3)
  --name NAME                the game's name (Portal Demo)
  --hash-cost default|fast|KIB
                             argon2 cost of passwords (default; DEMO_GAME_HASH_COST)
  --connect-timeout SECS     give up linking to the portal after SECS (30)
  --log-level LEVEL          error, warn, info, debug, trace (info; DEMO_GAME_LOG)
  --browser-login-hours N    a browser stays logged in N hours, 0 off (24)
  --irc-bot NETWORK:PORT:CHANNEL:NICK[:tls]
                             ask the portal for an IRC bot relaying the channel
                             and players' say (DEMO_GAME_IRC_BOT; none)
  -h, --help                 this text

create-admin makes the admin account (who may shutdown and reload); a name
or password not given is read from DEMO_GAME_ADMIN_NAME and
DEMO_GAME_ADMIN_PASSWORD, else asked for on the terminal. Players' accounts
are never admin.

environment: PORTAL_AMP_ADDR, PORTAL_AMP_SECRET (the link's secret, none by
default), DEMO_GAME_HASH_COST, DEMO_GAME_LOG, DEMO_GAME_IRC_BOT, DEMO_GAME_ADMIN_NAME and
DEMO_GAME_ADMIN_PASSWORD (the admin, made at a start when there is none)";

/// Parse the arguments (without the program name); `env` looks up
/// environment variables.
pub fn parse_args(
    args: impl IntoIterator<Item = String>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Invocation, String> {
    let mut opts = defaults(&env)?;
    let mut args = args.into_iter().peekable();
    if args.peek().map(String::as_str) == Some("create-admin") {
        args.next();
        return parse_create_admin(opts, args, &env);
    }
    while let Some(flag) = args.next() {
        if flag == "-h" || flag == "--help" {
            return Ok(Invocation::Help);
        }
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        apply_flag(&mut opts, &flag, &value)?;
    }
    Ok(Invocation::Run(opts))
}

fn parse_create_admin(
    mut opts: Options,
    mut args: impl Iterator<Item = String>,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<Invocation, String> {
    let mut positional = Vec::new();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => return Ok(Invocation::Help),
            "--db" | "--hash-cost" => {
                let value = args.next().ok_or_else(|| format!("{arg} needs a value"))?;
                apply_flag(&mut opts, &arg, &value)?;
            }
            flag if flag.starts_with("--") => {
                return Err(format!("unknown create-admin option {flag:?}"))
            }
            _ => positional.push(arg),
        }
    }
    if positional.len() > 2 {
        return Err("create-admin takes at most a name and a password".into());
    }
    let mut positional = positional.into_iter();
    Ok(Invocation::CreateAdmin(AdminRequest {
        db: opts.db,
        hash_cost: opts.hash_cost,
        name: positional.next().or_else(|| env(ADMIN_NAME_ENV)),
        password: positional.next().or_else(|| env(ADMIN_PASSWORD_ENV)),
    }))
}

/// `create-admin`: make the admin from `request`, asking on the terminal
/// for what it lacks; returns the exit status.
pub fn create_admin(request: &AdminRequest) -> i32 {
    let name = match request
        .name
        .clone()
        .map(Ok)
        .unwrap_or_else(|| ask("Admin name: ", false))
    {
        Ok(name) => name,
        Err(e) => {
            eprintln!("demo_game create-admin: {e}");
            return EXIT_STARTUP;
        }
    };
    let password = match request
        .password
        .clone()
        .map(Ok)
        .unwrap_or_else(|| ask("Password: ", true))
    {
        Ok(password) => password,
        Err(e) => {
            eprintln!("demo_game create-admin: {e}");
            return EXIT_STARTUP;
        }
    };
    let made = AccountStore::open(&request.db, request.hash_cost)
        .and_then(|mut store| store.create_admin(&name, &password));
    match made {
        Ok(account) => {
            println!(
                "admin account {} created in {}",
                account.name,
                request.db.display()
            );
            EXIT_OK
        }
        Err(e) => {
            eprintln!("demo_game create-admin: {}: {e}", request.db.display());
            EXIT_STARTUP
        }
    }
}

/// Ask for one line on the terminal; `hidden` turns echo off while it is
/// typed. Refuses when stdin is not a terminal.
fn ask(prompt: &str, hidden: bool) -> Result<String, String> {
    use std::io::{BufRead, Write};
    // SAFETY: isatty only reads the descriptor's state.
    if unsafe { libc::isatty(0) } != 1 {
        return Err(format!(
            "stdin is not a terminal: give the name and password as arguments \
             or in {ADMIN_NAME_ENV} and {ADMIN_PASSWORD_ENV}"
        ));
    }
    eprint!("{prompt}");
    let _ = std::io::stderr().flush();
    let saved = if hidden { echo_off() } else { None };
    let mut line = String::new();
    let read = std::io::stdin().lock().read_line(&mut line);
    if let Some(saved) = saved {
        // SAFETY: restores the settings read by echo_off on the same fd.
        unsafe { libc::tcsetattr(0, libc::TCSANOW, &saved) };
        eprintln!();
    }
    read.map_err(|e| format!("cannot read stdin: {e}"))?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

/// Turn off the terminal's echo on stdin; the old settings, to restore.
fn echo_off() -> Option<libc::termios> {
    // SAFETY: termios is plain data; tcgetattr fills it or fails.
    let mut saved: libc::termios = unsafe { std::mem::zeroed() };
    if unsafe { libc::tcgetattr(0, &mut saved) } != 0 {
        return None;
    }
    let mut quiet = saved;
    quiet.c_lflag &= !libc::ECHO;
    // SAFETY: sets settings derived from the ones just read.
    if unsafe { libc::tcsetattr(0, libc::TCSANOW, &quiet) } != 0 {
        return None;
    }
    Some(saved)
}

/// At start: with no admin, make one from the environment, or log how to.
fn ensure_admin(accounts: &mut AccountStore, env: impl Fn(&str) -> Option<String>) {
    match accounts.has_admin() {
        Ok(true) => return,
        Ok(false) => {}
        Err(e) => {
            log::error!("cannot check for an admin account: {e}");
            return;
        }
    }
    match (env(ADMIN_NAME_ENV), env(ADMIN_PASSWORD_ENV)) {
        (Some(name), Some(password)) => match accounts.create_admin(&name, &password) {
            Ok(account) => log::info!(
                "created the admin account {} from the environment",
                account.name
            ),
            Err(e) => {
                log::error!("cannot create the admin account {name:?} from {ADMIN_NAME_ENV}: {e}")
            }
        },
        _ => log::warn!(
            "there is no admin account, and no player account ever becomes one: \
             run `demo_game create-admin` (with the same --db), or set \
             {ADMIN_NAME_ENV} and {ADMIN_PASSWORD_ENV} for the game's first start"
        ),
    }
}

fn defaults(env: &impl Fn(&str) -> Option<String>) -> Result<Options, String> {
    let mut opts = Options {
        amp_addr: env("PORTAL_AMP_ADDR").unwrap_or_else(|| "127.0.0.1:4006".into()),
        secret: env("PORTAL_AMP_SECRET").unwrap_or_default(),
        db: PathBuf::from("demo_game.sqlite3"),
        name: DEFAULT_NAME.into(),
        hash_cost: HashCost::Default,
        connect_timeout: Duration::from_secs(30),
        log_level: LevelFilter::Info,
        browser_login_hours: DEFAULT_BROWSER_LOGIN_HOURS,
        irc_bot: None,
    };
    if let Some(cost) = env("DEMO_GAME_HASH_COST") {
        apply_flag(&mut opts, "--hash-cost", &cost)?;
    }
    if let Some(level) = env("DEMO_GAME_LOG") {
        apply_flag(&mut opts, "--log-level", &level)?;
    }
    if let Some(spec) = env("DEMO_GAME_IRC_BOT").filter(|s| !s.is_empty()) {
        apply_flag(&mut opts, "--irc-bot", &spec)?;
    }
    Ok(opts)
}

fn apply_flag(opts: &mut Options, flag: &str, value: &str) -> Result<(), String> {
    match flag {
        "--amp" => opts.amp_addr = value.to_owned(),
        "--db" => opts.db = PathBuf::from(value),
        "--name" => opts.name = value.to_owned(),
        "--hash-cost" => {
            opts.hash_cost = HashCost::parse(value).ok_or_else(|| {
                format!("bad hash cost {value:?}: use default, fast or a size in KiB")
            })?;
        }
        "--connect-timeout" => {
            let secs: f64 = value
                .parse()
                .map_err(|_| format!("bad --connect-timeout {value:?}"))?;
            opts.connect_timeout = Duration::try_from_secs_f64(secs)
                .map_err(|_| format!("bad --connect-timeout {value:?}"))?;
        }
        "--browser-login-hours" => {
            opts.browser_login_hours = value.parse().map_err(|_| {
                format!(
                    "bad --browser-login-hours {value:?}: use a whole number of hours, 0 for off"
                )
            })?;
        }
        "--irc-bot" => opts.irc_bot = Some(irc::IrcBotSpec::parse(value)?),
        "--log-level" => {
            opts.log_level = value
                .parse()
                .map_err(|_| format!("bad log level {value:?}"))?;
        }
        other => return Err(format!("unknown option {other:?}")),
    }
    Ok(())
}

/// Run the game until the portal stops it; returns the exit status.
pub fn run(opts: &Options) -> i32 {
    let mut accounts = match AccountStore::open(&opts.db, opts.hash_cost) {
        Ok(store) => store,
        Err(e) => {
            log::error!("cannot open {}: {e}", opts.db.display());
            return EXIT_STARTUP;
        }
    };
    ensure_admin(&mut accounts, |key| std::env::var(key).ok());
    let linked = GameLink::connect(
        &opts.amp_addr,
        &opts.secret,
        &opts.name,
        opts.connect_timeout,
    );
    let (mut link, synced) = match linked {
        Ok(pair) => pair,
        Err(e) => {
            log::error!("{e}");
            return EXIT_STARTUP;
        }
    };
    log::info!("linked to the portal at {}", opts.amp_addr);
    let mut game = Game::new(&opts.name, accounts)
        .with_browser_login_hours(opts.browser_login_hours)
        .with_irc_bot(opts.irc_bot.clone());
    game.start(synced);
    serve(&mut link, &mut game)
}

/// The game loop: one message in, its replies out.
fn serve(link: &mut GameLink, game: &mut Game) -> i32 {
    loop {
        let out = game.take_outbox();
        if let Err(e) = link.send_all(&out) {
            log::error!("{e}; exiting");
            return EXIT_LINK_LOST;
        }
        let msg = match link.recv() {
            Ok(msg) => msg,
            Err(e) => {
                log::error!("{e}; exiting");
                return EXIT_LINK_LOST;
            }
        };
        if game.handle(msg) == Step::Stop {
            let out = game.take_outbox();
            if let Err(e) = link.send_all(&out) {
                log::error!("cannot send the final session sync: {e}");
                return EXIT_LINK_LOST;
            }
            log::info!("stopped by the portal");
            return EXIT_OK;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str], env: &[(&str, &str)]) -> Result<Invocation, String> {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        parse_args(args.iter().map(|s| s.to_string()), move |key| {
            env.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
        })
    }

    fn run_opts(args: &[&str], env: &[(&str, &str)]) -> Options {
        match parse(args, env) {
            Ok(Invocation::Run(opts)) => opts,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn defaults_come_from_the_environment() {
        let opts = run_opts(
            &[],
            &[
                ("PORTAL_AMP_ADDR", "127.0.0.1:5000"),
                ("PORTAL_AMP_SECRET", "s3"),
                ("DEMO_GAME_HASH_COST", "fast"),
            ],
        );
        assert_eq!(opts.amp_addr, "127.0.0.1:5000");
        assert_eq!(opts.secret, "s3");
        assert_eq!(opts.hash_cost, HashCost::Fast);
        assert_eq!(opts.db, PathBuf::from("demo_game.sqlite3"));
        assert_eq!(opts.name, DEFAULT_NAME);
        assert_eq!(opts.browser_login_hours, 24);
    }

    #[test]
    fn flags_override_the_environment() {
        let opts = run_opts(
            &[
                "--amp",
                "h:1",
                "--db",
                "x.db",
                "--name",
                "Zed",
                "--hash-cost",
                "64",
                "--browser-login-hours",
                "0",
            ],
            &[
                ("PORTAL_AMP_ADDR", "127.0.0.1:5000"),
                ("DEMO_GAME_HASH_COST", "fast"),
            ],
        );
        assert_eq!(opts.amp_addr, "h:1");
        assert_eq!(opts.db, PathBuf::from("x.db"));
        assert_eq!(opts.name, "Zed");
        assert_eq!(opts.hash_cost, HashCost::MemoryKib(64));
        assert_eq!(opts.browser_login_hours, 0);
    }

    #[test]
    fn bad_arguments_are_explained() {
        assert!(parse(&["--db"], &[])
            .unwrap_err()
            .contains("--db needs a value"));
        assert!(parse(&["--frob", "1"], &[]).unwrap_err().contains("--frob"));
        assert!(parse(&["--hash-cost", "cheap"], &[]).is_err());
        assert!(parse(&[], &[("DEMO_GAME_LOG", "loud")]).is_err());
        assert!(parse(&["--connect-timeout", "-1"], &[]).is_err());
        for bad in ["-1", "1.5", "day"] {
            let err = parse(&["--browser-login-hours", bad], &[]).unwrap_err();
            assert!(err.contains("--browser-login-hours"), "{err}");
        }
        assert_eq!(parse(&["--help"], &[]), Ok(Invocation::Help));
    }

    #[test]
    fn create_admin_takes_arguments_then_the_environment() {
        let env = [
            ("DEMO_GAME_ADMIN_NAME", "root"),
            ("DEMO_GAME_ADMIN_PASSWORD", "s3cret"),
        ];
        let parsed = parse(&["create-admin", "--db", "x.db", "boss"], &env).unwrap();
        let Invocation::CreateAdmin(request) = parsed else {
            panic!("{parsed:?}");
        };
        assert_eq!(request.db, PathBuf::from("x.db"));
        assert_eq!(request.name.as_deref(), Some("boss"));
        assert_eq!(request.password.as_deref(), Some("s3cret"));
        let parsed = parse(&["create-admin"], &[]).unwrap();
        let Invocation::CreateAdmin(request) = parsed else {
            panic!("{parsed:?}");
        };
        assert_eq!((request.name, request.password), (None, None));
        assert!(parse(&["create-admin", "a", "b", "c"], &[]).is_err());
        assert!(parse(&["create-admin", "--amp", "x"], &[]).is_err());
    }

    #[test]
    fn the_admin_comes_from_the_environment_only_when_there_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.sqlite3");
        let mut store = AccountStore::open(&path, HashCost::Fast).unwrap();
        ensure_admin(&mut store, |_| None);
        assert!(!store.has_admin().unwrap());
        let env = |key: &str| match key {
            ADMIN_NAME_ENV => Some("root".to_owned()),
            ADMIN_PASSWORD_ENV => Some("pw12345".to_owned()),
            _ => None,
        };
        ensure_admin(&mut store, env);
        assert!(store.authenticate("root", "pw12345").unwrap().is_admin);
        // A second start with the variables still set changes nothing.
        ensure_admin(&mut store, env);
        assert!(store.has_admin().unwrap());
    }
}
