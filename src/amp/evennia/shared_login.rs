//! Evennia's shared login between its website and its web client, for the
//! evennia dialect: what Evennia's own portal does in
//! `evennia/server/portal/webclient.py` and `webclient_ajax.py` with the
//! browser's Django session (the web client's `csessid` is its key).
//!
//! ```text
//!  web session opens (worker thread) ── opened() ── read django_session ──► uid?
//!      └─ uid: the record the Server gets (PCONN) says logged_in, uid:
//!         the Server logs the account in (portal_connect) and sends SLOGIN
//!  SLOGIN (AMP reader) ─── logged_in() ──┐
//!  SDISCONN, e.g. quit ─── server_closed()┤ queue ──► writer thread ──► django_session
//!  session ends ─────────── forget()      │  (bounded; full = dropped, logged)
//! ```
//!
//! - **Reading** (opening): Evennia's website login leaves
//!   `webclient_authenticated_uid` in the browser's Django session
//!   (SharedLoginMiddleware); a web session opening with that browser's
//!   key is marked logged in as that uid before it is synced, as Evennia's
//!   `onOpen` / `mode_init` do. The lookup runs on the session's own worker
//!   thread, read-only, with a [`BUSY_TIMEOUT`]: a missing, locked or
//!   unreadable database, or no SECRET_KEY, means "not logged in", logged.
//! - **Writing**: when the Server logs a web session in (SLOGIN), the
//!   uid goes into the browser's Django session, so the website shows the
//!   player logged in on its next page (Evennia's `at_login`). When the
//!   Server closes the session (`quit`), the uid is cleared as Evennia's
//!   `disconnect` does: for a websocket only if the website has not
//!   touched the session since it opened (`webclient_authenticated_nonce`
//!   unchanged), for AJAX always. Neither logs the website itself out:
//!   Evennia's doesn't either (Django's own login stays in the session).
//!   Writes go through one thread, so the AMP reader never waits on
//!   SQLite.
//!
//! Only Django's default database session store in SQLite (Evennia's
//! default `server/evennia.db3`) is read; `[amp] evennia_session_db`
//! names the file. The SECRET_KEY that signs the records comes from the
//! game's `server/conf/secret_settings.py` (else `settings.py`), where
//! Evennia writes it as a plain string.

use crate::amp::evennia::django_session::{self, Limits, WEBCLIENT_NONCE, WEBCLIENT_UID};
use crate::config::{Config, Dialect};
use crate::wire::session::Session;
use rusqlite::{Connection, OpenFlags, OptionalExtension};
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// How long a read or a write waits for Django's lock on the database.
pub const BUSY_TIMEOUT: Duration = Duration::from_millis(250);
/// Writes queued for the writer thread before new ones are dropped.
const QUEUE: usize = 256;
/// Largest settings file read for the SECRET_KEY.
const MAX_SETTINGS_BYTES: u64 = 1024 * 1024;

/// The web sessions whose browser's Django session the portal follows.
#[derive(Default)]
pub struct SharedLogin {
    tracked: Mutex<HashMap<u64, Tracked>>,
    writer: Mutex<Option<SyncSender<Write>>>,
}

/// A web session's browser: its Django session key, and the nonce the
/// website had set when it opened.
#[derive(Debug, Clone)]
struct Tracked {
    key: String,
    nonce: i64,
    websocket: bool,
    store: Store,
}

/// Where the game's Django sessions are, and the key that signs them.
#[derive(Debug, Clone, PartialEq)]
pub struct Store {
    pub db: PathBuf,
    pub secret: String,
}

/// One change to a browser's Django session.
#[derive(Debug)]
enum Write {
    /// The web client logged in as `uid` (Evennia's `at_login`).
    LoggedIn {
        sessid: u64,
        store: Store,
        key: String,
        uid: i64,
    },
    /// The Server closed the session: clear the uid, if the nonce is still
    /// `nonce` (websocket) or always (`None`, AJAX).
    Closed {
        sessid: u64,
        store: Store,
        key: String,
        nonce: Option<i64>,
    },
}

impl SharedLogin {
    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Tracked>> {
        self.tracked.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A web session is about to be registered: with the evennia dialect
    /// and a browser key whose Django session has a login, mark it logged
    /// in (`uid`, `logged_in`). Blocks this thread for at most about
    /// [`BUSY_TIMEOUT`].
    pub fn opened(&self, config: &Config, session: &mut Session) {
        let Some(key) = browser_key(config, session) else {
            return;
        };
        let Some(store) = store_for(config) else {
            return;
        };
        let sessid = session.sessid;
        let found = match read_session(&store, &key) {
            Ok(found) => found,
            Err(why) => {
                log::info!("session {sessid}: website login not read ({why}); not logged in");
                None
            }
        };
        let nonce = found.as_ref().map_or(0, django_session::webclient_nonce);
        if let Some(uid) = found.as_ref().and_then(django_session::webclient_uid) {
            log::info!("session {sessid}: logged in as account {uid} by the website's login");
            session.uid = Some(uid);
            session.logged_in = true;
        }
        let websocket = session.protocol_key != crate::protocols::ajax::PROTOCOL_KEY;
        self.lock().insert(
            sessid,
            Tracked {
                key,
                nonce,
                websocket,
                store,
            },
        );
    }

    /// The Server logged `sessid` in as `uid` (SLOGIN).
    pub fn logged_in(&self, sessid: u64, uid: Option<i64>) {
        let (Some(tracked), Some(uid)) = (self.lock().get(&sessid).cloned(), uid) else {
            return;
        };
        self.queue(Write::LoggedIn {
            sessid,
            store: tracked.store,
            key: tracked.key,
            uid,
        });
    }

    /// The Server closes `sessid` (SDISCONN: `quit`, a boot).
    pub fn server_closed(&self, sessid: u64) {
        let Some(tracked) = self.lock().remove(&sessid) else {
            return;
        };
        self.queue(Write::Closed {
            sessid,
            store: tracked.store,
            key: tracked.key,
            nonce: tracked.websocket.then_some(tracked.nonce),
        });
    }

    /// `sessid` ended; its browser's session is left as it is.
    pub fn forget(&self, sessid: u64) {
        self.lock().remove(&sessid);
    }

    /// How many sessions are followed (for tests).
    pub fn tracked(&self) -> usize {
        self.lock().len()
    }

    fn queue(&self, write: Write) {
        let mut writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        if writer.is_none() {
            *writer = start_writer();
        }
        let Some(tx) = writer.as_ref() else {
            return;
        };
        match tx.try_send(write) {
            Ok(()) => {}
            Err(TrySendError::Full(w)) => log::warn!("website login: queue full, dropped {w:?}"),
            Err(TrySendError::Disconnected(_)) => *writer = None,
        }
    }
}

fn start_writer() -> Option<SyncSender<Write>> {
    let (tx, rx) = sync_channel::<Write>(QUEUE);
    let spawned = std::thread::Builder::new()
        .name("website-login".into())
        .stack_size(256 * 1024)
        .spawn(move || {
            for write in rx {
                apply(&write);
            }
        });
    match spawned {
        Ok(_) => Some(tx),
        Err(e) => {
            log::warn!("website login: cannot start its writer thread ({e})");
            None
        }
    }
}

fn apply(write: &Write) {
    let (store, key) = match write {
        Write::LoggedIn { store, key, .. } | Write::Closed { store, key, .. } => (store, key),
    };
    let change = |session: &mut serde_json::Map<String, Value>| match write {
        Write::LoggedIn { uid, .. } => {
            let before = session.insert(WEBCLIENT_UID.into(), Value::from(*uid));
            before != Some(Value::from(*uid))
        }
        Write::Closed { nonce, .. } => {
            if nonce.is_some_and(|n| n != django_session::webclient_nonce(session)) {
                return false;
            }
            session.insert(WEBCLIENT_UID.into(), Value::Null);
            if nonce.is_some() {
                session.insert(WEBCLIENT_NONCE.into(), Value::from(0));
            }
            true
        }
    };
    let sessid = match write {
        Write::LoggedIn { sessid, .. } | Write::Closed { sessid, .. } => sessid,
    };
    match (update_session(store, key, change), write) {
        (Ok(true), Write::LoggedIn { uid, .. }) => log::info!(
            "session {sessid}: website login: the browser's website session is now account {uid}'s"
        ),
        (Ok(true), Write::Closed { .. }) => log::info!(
            "session {sessid}: website login: cleared the web client's login from the browser's session"
        ),
        (Ok(false), _) => {}
        (Err(why), _) => log::info!("session {sessid}: website login: not written ({why})"),
    }
}

/// The browser key of a web session the evennia dialect follows.
fn browser_key(config: &Config, session: &Session) -> Option<String> {
    if config.amp.dialect != Dialect::Evennia {
        return None;
    }
    let key = session.csessid.as_deref()?;
    django_session::is_session_key(key).then(|| key.to_owned())
}

/// The store from the config, if it is turned on and has a SECRET_KEY.
pub fn store_for(config: &Config) -> Option<Store> {
    let game_dir = crate::supervisor::evennia_server::game_dir(config).ok();
    let db = match config.amp.evennia_session_db.as_deref() {
        Some("") => return None,
        Some(path) => PathBuf::from(path),
        None => game_dir.as_ref()?.join("server").join("evennia.db3"),
    };
    let Some(secret) = game_dir.as_deref().and_then(secret_key) else {
        log::info!("website login: no SECRET_KEY found in the game's server/conf; not shared");
        return None;
    };
    Some(Store { db, secret })
}

/// The game's SECRET_KEY: `secret_settings.py` overrides `settings.py`,
/// as Evennia's settings import it last.
pub fn secret_key(game_dir: &Path) -> Option<String> {
    let conf = game_dir.join("server").join("conf");
    ["secret_settings.py", "settings.py"]
        .iter()
        .find_map(|name| {
            read_small(&conf.join(name)).and_then(|t| django_session::secret_key_in(&t))
        })
}

fn read_small(path: &Path) -> Option<String> {
    use std::io::Read;
    let file = std::fs::File::open(path).ok()?;
    let mut text = String::new();
    file.take(MAX_SETTINGS_BYTES)
        .read_to_string(&mut text)
        .ok()?;
    Some(text)
}

/// The SQL for a live record (Django's `expire_date__gt=now()`; Django
/// keeps UTC times as `YYYY-MM-DD HH:MM:SS.ffffff` text in SQLite).
const SELECT: &str = "SELECT session_data FROM django_session \
     WHERE session_key = ?1 AND expire_date > strftime('%Y-%m-%d %H:%M:%f', 'now')";

/// The decoded Django session of browser `key`, `None` if it has none (or
/// it expired).
pub fn read_session(
    store: &Store,
    key: &str,
) -> Result<Option<serde_json::Map<String, Value>>, String> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let db = open(store, flags)?;
    let data: Option<String> = db
        .query_row(SELECT, [key], |row| row.get(0))
        .optional()
        .map_err(|e| format!("{}: {e}", store.db.display()))?;
    let Some(data) = data else {
        return Ok(None);
    };
    django_session::decode(&data, &store.secret, &Limits::default())
        .map(Some)
        .map_err(|e| format!("browser session record: {e}"))
}

/// Change browser `key`'s live record with `change` (which says whether it
/// changed anything), in one write transaction. `Ok(false)`: nothing
/// written (no such record, or no change).
pub fn update_session(
    store: &Store,
    key: &str,
    change: impl FnOnce(&mut serde_json::Map<String, Value>) -> bool,
) -> Result<bool, String> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let mut db = open(store, flags)?;
    let at = |e: rusqlite::Error| format!("{}: {e}", store.db.display());
    let tx = db
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(at)?;
    let data: Option<String> = tx
        .query_row(SELECT, [key], |row| row.get(0))
        .optional()
        .map_err(at)?;
    let Some(data) = data else {
        return Ok(false);
    };
    let mut session = django_session::decode(&data, &store.secret, &Limits::default())
        .map_err(|e| format!("browser session record: {e}"))?;
    if !change(&mut session) {
        return Ok(false);
    }
    let now = crate::wire::session::unix_now().max(0.0) as u64;
    let text = django_session::encode(&session, &store.secret, now);
    tx.execute(
        "UPDATE django_session SET session_data = ?1 WHERE session_key = ?2",
        [text.as_str(), key],
    )
    .map_err(at)?;
    tx.commit().map_err(at)?;
    Ok(true)
}

fn open(store: &Store, flags: OpenFlags) -> Result<Connection, String> {
    let db = Connection::open_with_flags(&store.db, flags)
        .map_err(|e| format!("{}: {e}", store.db.display()))?;
    db.busy_timeout(BUSY_TIMEOUT)
        .map_err(|e| format!("{}: {e}", store.db.display()))?;
    Ok(db)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    const SECRET: &str = "golden-secret-key-for-tests-only";
    const KEY: &str = "k1a2b3c4d5e6f7g8h9i0j1k2l3m4n5o6";

    fn golden(name: &str) -> String {
        let path = format!(
            "{}/tests/data/django_session/{name}.txt",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read_to_string(path).unwrap().trim_end().to_owned()
    }

    /// A game directory with Evennia's secret_settings.py and a
    /// `django_session` table as Django's migration makes it.
    fn game() -> (tempfile::TempDir, Config) {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("server").join("conf");
        std::fs::create_dir_all(&conf).unwrap();
        std::fs::write(conf.join("settings.py"), "SECRET_KEY = 'not-this-one'\n").unwrap();
        std::fs::write(
            conf.join("secret_settings.py"),
            format!("\"\"\"doc\"\"\"\nSECRET_KEY = '{SECRET}'\n"),
        )
        .unwrap();
        let db = Connection::open(dir.path().join("server").join("evennia.db3")).unwrap();
        db.execute_batch(
            "CREATE TABLE django_session (session_key varchar(40) NOT NULL PRIMARY KEY, \
             session_data text NOT NULL, expire_date datetime NOT NULL);",
        )
        .unwrap();
        let mut config = Config::default();
        config.amp.dialect = Dialect::Evennia;
        config.game.workdir = dir.path().display().to_string();
        (dir, config)
    }

    fn insert(dir: &Path, key: &str, data: &str, expires: &str) {
        let db = Connection::open(dir.join("server").join("evennia.db3")).unwrap();
        db.execute(
            "INSERT INTO django_session VALUES (?1, ?2, ?3)",
            [key, data, expires],
        )
        .unwrap();
    }

    fn web_session(sessid: u64, key: &str) -> Session {
        let mut s = Session::init_session(sessid, "webclient/websocket", "127.0.0.1:5000");
        s.csessid = Some(key.to_owned());
        s
    }

    #[test]
    fn a_website_login_logs_the_opening_web_session_in() {
        let (dir, config) = game();
        insert(
            dir.path(),
            KEY,
            &golden("logged_in"),
            "2999-01-01 00:00:00.000000",
        );
        let shared = SharedLogin::default();
        let mut session = web_session(4, KEY);
        shared.opened(&config, &mut session);
        assert!(session.logged_in);
        assert_eq!(session.uid, Some(2));
        assert_eq!(shared.tracked(), 1);
        shared.forget(4);
        assert_eq!(shared.tracked(), 0);
    }

    #[test]
    fn no_login_in_the_session_leaves_it_logged_out_but_followed() {
        let (dir, config) = game();
        insert(
            dir.path(),
            KEY,
            &golden("logged_out"),
            "2999-01-01 00:00:00",
        );
        let shared = SharedLogin::default();
        let mut session = web_session(1, KEY);
        shared.opened(&config, &mut session);
        assert!(!session.logged_in);
        assert_eq!(session.uid, None);
        assert_eq!(shared.tracked(), 1, "a later web client login is written");
    }

    #[test]
    fn an_expired_or_forged_or_unknown_session_is_not_a_login() {
        let (dir, config) = game();
        insert(
            dir.path(),
            KEY,
            &golden("logged_in"),
            "2001-01-01 00:00:00.000000",
        );
        let forged = "k9a2b3c4d5e6f7g8h9i0j1k2l3m4n5o6";
        let other_key = django_session::encode(
            &django_session::decode(&golden("logged_in"), SECRET, &Limits::default()).unwrap(),
            "another-secret",
            1,
        );
        insert(dir.path(), forged, &other_key, "2999-01-01 00:00:00");
        let shared = SharedLogin::default();
        for key in [KEY, forged, "nosuchkey000000000000000000000000"] {
            let mut session = web_session(1, key);
            shared.opened(&config, &mut session);
            assert!(!session.logged_in, "{key}");
        }
    }

    #[test]
    fn nothing_is_read_for_the_native_dialect_or_a_key_django_never_makes() {
        let (dir, mut config) = game();
        insert(dir.path(), KEY, &golden("logged_in"), "2999-01-01 00:00:00");
        let shared = SharedLogin::default();
        let mut odd = web_session(1, "short");
        shared.opened(&config, &mut odd);
        assert!(!odd.logged_in);
        config.amp.dialect = Dialect::Native;
        let mut native = web_session(2, KEY);
        shared.opened(&config, &mut native);
        assert!(!native.logged_in);
        assert_eq!(shared.tracked(), 0);
        config.amp.dialect = Dialect::Evennia;
        config.amp.evennia_session_db = Some(String::new());
        let mut off = web_session(3, KEY);
        shared.opened(&config, &mut off);
        assert!(!off.logged_in, "\"\" turns it off");
    }

    #[test]
    fn a_missing_database_is_not_a_login() {
        let (dir, mut config) = game();
        config.amp.evennia_session_db = Some(dir.path().join("nope.db3").display().to_string());
        let mut session = web_session(1, KEY);
        SharedLogin::default().opened(&config, &mut session);
        assert!(!session.logged_in);
        assert!(
            !dir.path().join("nope.db3").exists(),
            "opened read-only, not created"
        );
    }

    #[test]
    fn a_locked_database_is_not_a_login_and_the_wait_is_bounded() {
        let (dir, config) = game();
        insert(dir.path(), KEY, &golden("logged_in"), "2999-01-01 00:00:00");
        let holder = Connection::open(dir.path().join("server").join("evennia.db3")).unwrap();
        holder.execute_batch("BEGIN EXCLUSIVE;").unwrap();
        let started = Instant::now();
        let mut session = web_session(1, KEY);
        SharedLogin::default().opened(&config, &mut session);
        let waited = started.elapsed();
        assert!(!session.logged_in);
        assert!(
            waited >= BUSY_TIMEOUT,
            "it waited for the lock ({waited:?})"
        );
        assert!(waited < BUSY_TIMEOUT * 8, "and no longer ({waited:?})");
        holder.execute_batch("ROLLBACK;").unwrap();
        SharedLogin::default().opened(&config, &mut session);
        assert!(session.logged_in, "read once the lock is gone");
    }

    fn stored(config: &Config) -> serde_json::Map<String, Value> {
        read_session(&store_for(config).unwrap(), KEY)
            .unwrap()
            .unwrap()
    }

    #[test]
    fn a_web_client_login_and_quit_are_written_as_evennia_writes_them() {
        let (dir, config) = game();
        insert(dir.path(), KEY, &golden("anonymous"), "2999-01-01 00:00:00");
        let store = store_for(&config).unwrap();
        let login = Write::LoggedIn {
            sessid: 1,
            store: store.clone(),
            key: KEY.into(),
            uid: 7,
        };
        apply(&login);
        let after = stored(&config);
        assert_eq!(django_session::webclient_uid(&after), Some(7));
        // The website touched the session since (nonce 1, not 0): kept.
        let mut touched = after.clone();
        touched.insert(WEBCLIENT_NONCE.into(), Value::from(1));
        assert!(update_session(&store, KEY, |s| {
            *s = touched;
            true
        })
        .unwrap());
        let stale = Write::Closed {
            sessid: 1,
            store: store.clone(),
            key: KEY.into(),
            nonce: Some(0),
        };
        apply(&stale);
        assert_eq!(django_session::webclient_uid(&stored(&config)), Some(7));
        let current = Write::Closed {
            sessid: 1,
            store: store.clone(),
            key: KEY.into(),
            nonce: Some(1),
        };
        apply(&current);
        let cleared = stored(&config);
        assert_eq!(cleared[WEBCLIENT_UID], Value::Null);
        assert_eq!(django_session::webclient_nonce(&cleared), 0);
        // AJAX clears whatever the nonce.
        apply(&login);
        apply(&Write::Closed {
            sessid: 1,
            store,
            key: KEY.into(),
            nonce: None,
        });
        assert_eq!(django_session::webclient_uid(&stored(&config)), None);
    }

    #[test]
    fn a_session_closed_by_the_server_is_cleared_through_the_writer() {
        let (dir, config) = game();
        insert(dir.path(), KEY, &golden("logged_in"), "2999-01-01 00:00:00");
        let shared = SharedLogin::default();
        let mut session = web_session(9, KEY);
        shared.opened(&config, &mut session);
        shared.server_closed(9);
        assert_eq!(shared.tracked(), 0);
        let deadline = Instant::now() + Duration::from_secs(10);
        while django_session::webclient_uid(&stored(&config)).is_some() {
            assert!(
                Instant::now() < deadline,
                "the writer thread did not clear it"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(django_session::webclient_nonce(&stored(&config)), 0);
        // A later login of an untracked session writes nothing.
        shared.logged_in(9, Some(3));
    }
}
