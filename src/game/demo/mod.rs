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
//! `screenreader`, `help`, `quit`, and for the first account ever created,
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
//! Exit status: 0 after the portal's `Stop` (the final `SessionSync` sent),
//! 1 when the link is lost (the portal's supervisor restarts the game),
//! 2 for bad arguments or when the database or the portal cannot be reached
//! at start.

pub mod accounts;
pub mod browser;
pub mod client;
pub mod command;
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
}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Invocation {
    Run(Options),
    Help,
}

/// The `--help` text.
pub const USAGE: &str = "\
usage: demo_game [options]   (normally started by the portal, [game] command)

  --amp ADDR                 the portal's AMP address (PORTAL_AMP_ADDR, else 127.0.0.1:4006)
  --db PATH                  account database (demo_game.sqlite3)
  --name NAME                the game's name (Portal Demo)
  --hash-cost default|fast|KIB
                             argon2 cost of passwords (default; DEMO_GAME_HASH_COST)
  --connect-timeout SECS     give up linking to the portal after SECS (30)
  --log-level LEVEL          error, warn, info, debug, trace (info; DEMO_GAME_LOG)
  --browser-login-hours N    a browser stays logged in N hours, 0 off (24)
  -h, --help                 this text

environment: PORTAL_AMP_ADDR, PORTAL_AMP_SECRET (the link's secret, none by
default), DEMO_GAME_HASH_COST, DEMO_GAME_LOG";

/// Parse the arguments (without the program name); `env` looks up
/// environment variables.
pub fn parse_args(
    args: impl IntoIterator<Item = String>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Invocation, String> {
    let mut opts = defaults(&env)?;
    let mut args = args.into_iter();
    while let Some(flag) = args.next() {
        if flag == "-h" || flag == "--help" {
            return Ok(Invocation::Help);
        }
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        apply_flag(&mut opts, &flag, &value)?;
    }
    Ok(Invocation::Run(opts))
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
    };
    if let Some(cost) = env("DEMO_GAME_HASH_COST") {
        apply_flag(&mut opts, "--hash-cost", &cost)?;
    }
    if let Some(level) = env("DEMO_GAME_LOG") {
        apply_flag(&mut opts, "--log-level", &level)?;
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
    let accounts = match AccountStore::open(&opts.db, opts.hash_cost) {
        Ok(store) => store,
        Err(e) => {
            log::error!("cannot open {}: {e}", opts.db.display());
            return EXIT_STARTUP;
        }
    };
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
    let mut game =
        Game::new(&opts.name, accounts).with_browser_login_hours(opts.browser_login_hours);
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
}
