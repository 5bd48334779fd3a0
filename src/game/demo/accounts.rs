//! The demo game's account store: SQLite for the rows, argon2 for the
//! passwords (PHC strings, so each hash records its own cost and a change
//! of [`HashCost`] never locks anyone out), and the browser logins: which
//! account each browser was last logged in as, keyed by the SHA-256 of its
//! `csessid` ([`BrowserKey`]), never the id itself.
//!
//! The admin rule: accounts players create ([`AccountStore::create`]) are
//! never admin, not even the first one; the only admin is the one the
//! operator makes ([`AccountStore::create_admin`], from `demo_game
//! create-admin` or the environment at first start).

use super::browser::BrowserKey;
use super::command::{validate_name, validate_password};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rusqlite::{params, Connection, OptionalExtension};
use std::io::Read;
use std::path::Path;

/// How expensive password hashing is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashCost {
    /// The argon2 crate's defaults (19 MiB, 2 passes): for real players.
    Default,
    /// The smallest argon2 parameters (8 KiB, 1 pass): for load tests that
    /// create thousands of accounts. Not safe for real passwords.
    Fast,
    /// The default passes with this much memory (KiB).
    MemoryKib(u32),
}

impl HashCost {
    /// Parse `default`, `fast` or a memory size in KiB.
    pub fn parse(text: &str) -> Option<HashCost> {
        match text.trim().to_ascii_lowercase().as_str() {
            "default" => Some(HashCost::Default),
            "fast" => Some(HashCost::Fast),
            other => other.parse().ok().map(HashCost::MemoryKib),
        }
    }

    fn params(self) -> Result<Params, argon2::Error> {
        match self {
            HashCost::Default => Ok(Params::default()),
            HashCost::Fast => Params::new(Params::MIN_M_COST, Params::MIN_T_COST, 1, None),
            HashCost::MemoryKib(kib) => Params::new(kib, Params::DEFAULT_T_COST, 1, None),
        }
    }
}

/// One account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: i64,
    /// The name as it was typed at creation.
    pub name: String,
    /// Made by the operator ([`AccountStore::create_admin`]); players'
    /// accounts never are.
    pub is_admin: bool,
}

/// Why an account operation failed. The first four are the player's
/// mistakes and their `Display` is meant for the player.
#[derive(Debug)]
pub enum AccountError {
    BadName(String),
    BadPassword(String),
    NameTaken,
    WrongCredentials,
    Db(rusqlite::Error),
    Hash(String),
}

impl std::fmt::Display for AccountError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AccountError::BadName(why) | AccountError::BadPassword(why) => f.write_str(why),
            AccountError::NameTaken => f.write_str("That name is already taken."),
            AccountError::WrongCredentials => f.write_str("Incorrect name or password."),
            AccountError::Db(e) => write!(f, "account database error: {e}"),
            AccountError::Hash(e) => write!(f, "password hashing error: {e}"),
        }
    }
}

impl std::error::Error for AccountError {}

impl From<rusqlite::Error> for AccountError {
    fn from(e: rusqlite::Error) -> Self {
        AccountError::Db(e)
    }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS accounts (
    id        INTEGER PRIMARY KEY,
    name      TEXT NOT NULL,
    name_key  TEXT NOT NULL UNIQUE,
    password  TEXT NOT NULL,
    is_admin  INTEGER NOT NULL DEFAULT 0,
    created   REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS browser_logins (
    csessid_hash TEXT PRIMARY KEY,
    account_id   INTEGER NOT NULL REFERENCES accounts(id),
    last_seen    REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS browser_logins_last_seen ON browser_logins (last_seen);";

/// A browser's remembered login.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BrowserLogin {
    pub account_id: i64,
    /// When the browser was last seen logged in (Unix seconds): at its
    /// login, a resumed login, or when one of its logged-in tabs closed.
    pub last_seen: f64,
}

/// Accounts in one SQLite file.
pub struct AccountStore {
    conn: Connection,
    hasher: Argon2<'static>,
}

impl AccountStore {
    /// Open (creating if needed) the store at `path`.
    pub fn open(path: &Path, cost: HashCost) -> Result<AccountStore, AccountError> {
        let conn = Connection::open(path)?;
        // WAL + NORMAL: safe across a game crash, cheap enough for load tests.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.execute_batch(SCHEMA)?;
        let params = cost
            .params()
            .map_err(|e| AccountError::Hash(e.to_string()))?;
        let hasher = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        Ok(AccountStore { conn, hasher })
    }

    /// Create a player's account; it is never an admin.
    pub fn create(&mut self, name: &str, password: &str) -> Result<Account, AccountError> {
        self.insert(name, password, false)
    }

    /// Create an admin account: for the operator only (`demo_game
    /// create-admin` or the environment at start), never for a player.
    pub fn create_admin(&mut self, name: &str, password: &str) -> Result<Account, AccountError> {
        self.insert(name, password, true)
    }

    /// Whether any admin account exists.
    pub fn has_admin(&self) -> Result<bool, AccountError> {
        let count: i64 =
            self.conn
                .query_row("SELECT COUNT(*) FROM accounts WHERE is_admin", [], |r| {
                    r.get(0)
                })?;
        Ok(count > 0)
    }

    fn insert(
        &mut self,
        name: &str,
        password: &str,
        is_admin: bool,
    ) -> Result<Account, AccountError> {
        validate_name(name).map_err(AccountError::BadName)?;
        validate_password(password).map_err(AccountError::BadPassword)?;
        if self.find(name)?.is_some() {
            return Err(AccountError::NameTaken);
        }
        let hash = self.hash(password)?;
        self.conn.execute(
            "INSERT INTO accounts (name, name_key, password, is_admin, created) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                name,
                name.to_ascii_lowercase(),
                hash,
                is_admin,
                crate::wire::session::unix_now()
            ],
        )?;
        Ok(Account {
            id: self.conn.last_insert_rowid(),
            name: name.to_owned(),
            is_admin,
        })
    }

    /// Check a name and password; the same error for either being wrong.
    pub fn authenticate(&self, name: &str, password: &str) -> Result<Account, AccountError> {
        let Some((account, stored)) = self.find(name)? else {
            return Err(AccountError::WrongCredentials);
        };
        let parsed = PasswordHash::new(&stored).map_err(|e| AccountError::Hash(e.to_string()))?;
        match self.hasher.verify_password(password.as_bytes(), &parsed) {
            Ok(()) => Ok(account),
            Err(argon2::password_hash::Error::Password) => Err(AccountError::WrongCredentials),
            Err(e) => Err(AccountError::Hash(e.to_string())),
        }
    }

    /// Whether an account of this name exists (ignoring case).
    pub fn exists(&self, name: &str) -> Result<bool, AccountError> {
        Ok(self.find(name)?.is_some())
    }

    /// The account with this id, if it exists.
    pub fn get(&self, id: i64) -> Result<Option<Account>, AccountError> {
        let row = self
            .conn
            .query_row(
                "SELECT id, name, is_admin FROM accounts WHERE id = ?1",
                [id],
                |r| {
                    Ok(Account {
                        id: r.get(0)?,
                        name: r.get(1)?,
                        is_admin: r.get(2)?,
                    })
                },
            )
            .optional()?;
        Ok(row)
    }

    /// Remember that `browser` is logged in as `account_id`, seen `now`
    /// (replacing whatever it was before), and forget browsers not seen
    /// since `stale_before`.
    pub fn remember_browser(
        &mut self,
        browser: &BrowserKey,
        account_id: i64,
        now: f64,
        stale_before: f64,
    ) -> Result<(), AccountError> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "DELETE FROM browser_logins WHERE last_seen < ?1",
            [stale_before],
        )?;
        tx.execute(
            "INSERT INTO browser_logins (csessid_hash, account_id, last_seen) \
             VALUES (?1, ?2, ?3) \
             ON CONFLICT (csessid_hash) DO UPDATE \
             SET account_id = excluded.account_id, last_seen = excluded.last_seen",
            params![browser.hash(), account_id, now],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// The login remembered for `browser`, however old.
    pub fn browser_login(
        &self,
        browser: &BrowserKey,
    ) -> Result<Option<BrowserLogin>, AccountError> {
        let row = self
            .conn
            .query_row(
                "SELECT account_id, last_seen FROM browser_logins WHERE csessid_hash = ?1",
                [browser.hash()],
                |r| {
                    Ok(BrowserLogin {
                        account_id: r.get(0)?,
                        last_seen: r.get(1)?,
                    })
                },
            )
            .optional()?;
        Ok(row)
    }

    /// Mark browsers as seen `now`, each still logged in as the account
    /// given; a browser whose login was forgotten (or changed) stays so.
    /// One transaction for the lot.
    pub fn touch_browsers(
        &mut self,
        seen: &[(BrowserKey, i64)],
        now: f64,
    ) -> Result<(), AccountError> {
        if seen.is_empty() {
            return Ok(());
        }
        let tx = self.conn.transaction()?;
        {
            let mut update = tx.prepare_cached(
                "UPDATE browser_logins SET last_seen = ?1 \
                 WHERE csessid_hash = ?2 AND account_id = ?3",
            )?;
            for (browser, account_id) in seen {
                update.execute(params![now, browser.hash(), account_id])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Forget `browser`'s login; returns whether one was remembered.
    pub fn forget_browser(&self, browser: &BrowserKey) -> Result<bool, AccountError> {
        let gone = self.conn.execute(
            "DELETE FROM browser_logins WHERE csessid_hash = ?1",
            [browser.hash()],
        )?;
        Ok(gone > 0)
    }

    /// Forget every browser not seen since `stale_before` (all of them
    /// with `f64::INFINITY`); returns how many were forgotten.
    pub fn forget_browsers_before(&self, stale_before: f64) -> Result<usize, AccountError> {
        let gone = self.conn.execute(
            "DELETE FROM browser_logins WHERE last_seen < ?1",
            [stale_before],
        )?;
        Ok(gone)
    }

    /// The account and its stored hash, looked up case-insensitively.
    fn find(&self, name: &str) -> Result<Option<(Account, String)>, AccountError> {
        let row = self
            .conn
            .query_row(
                "SELECT id, name, is_admin, password FROM accounts WHERE name_key = ?1",
                [name.to_ascii_lowercase()],
                |r| {
                    let account = Account {
                        id: r.get(0)?,
                        name: r.get(1)?,
                        is_admin: r.get(2)?,
                    };
                    Ok((account, r.get(3)?))
                },
            )
            .optional()?;
        Ok(row)
    }

    fn hash(&self, password: &str) -> Result<String, AccountError> {
        let salt = random_salt()?;
        self.hasher
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| AccountError::Hash(e.to_string()))
    }
}

/// A fresh 16-byte salt from the kernel's random source.
fn random_salt() -> Result<SaltString, AccountError> {
    let mut bytes = [0u8; argon2::password_hash::Salt::RECOMMENDED_LENGTH];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| AccountError::Hash(format!("cannot read /dev/urandom: {e}")))?;
    SaltString::encode_b64(&bytes).map_err(|e| AccountError::Hash(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(dir: &tempfile::TempDir) -> AccountStore {
        AccountStore::open(&dir.path().join("accounts.sqlite3"), HashCost::Fast).unwrap()
    }

    #[test]
    fn players_accounts_are_never_admin_not_even_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = store(&dir);
        let anna = s.create("Anna", "pw123").unwrap();
        assert!(!anna.is_admin);
        assert!(!s.get(anna.id).unwrap().unwrap().is_admin);
        assert!(!s.has_admin().unwrap());
    }

    #[test]
    fn only_the_operator_makes_an_admin() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = store(&dir);
        s.create("anna", "pw123").unwrap();
        let root = s.create_admin("Root", "pw12345").unwrap();
        assert!(root.is_admin);
        assert!(s.has_admin().unwrap());
        assert!(s.authenticate("root", "pw12345").unwrap().is_admin);
        assert!(!s.create("bob", "pw123").unwrap().is_admin);
        assert!(matches!(
            s.create_admin("ANNA", "pw12345"),
            Err(AccountError::NameTaken)
        ));
    }

    #[test]
    fn names_are_unique_regardless_of_case() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = store(&dir);
        s.create("Anna", "pw123").unwrap();
        assert!(s.exists("anna").unwrap());
        assert!(!s.exists("bob").unwrap());
        assert!(matches!(
            s.create("aNNA", "other"),
            Err(AccountError::NameTaken)
        ));
    }

    #[test]
    fn authenticate_checks_the_password_and_ignores_name_case() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = store(&dir);
        let anna = s.create("Anna", "pw123").unwrap();
        assert_eq!(s.authenticate("anna", "pw123").unwrap(), anna);
        assert!(matches!(
            s.authenticate("anna", "wrong"),
            Err(AccountError::WrongCredentials)
        ));
        assert!(matches!(
            s.authenticate("nobody", "pw123"),
            Err(AccountError::WrongCredentials)
        ));
    }

    #[test]
    fn accounts_survive_reopening_even_with_another_hash_cost() {
        let dir = tempfile::tempdir().unwrap();
        let id = store(&dir).create("anna", "pw123").unwrap().id;
        let path = dir.path().join("accounts.sqlite3");
        let s = AccountStore::open(&path, HashCost::MemoryKib(64)).unwrap();
        assert_eq!(s.authenticate("ANNA", "pw123").unwrap().id, id);
        assert_eq!(s.get(id).unwrap().unwrap().name, "anna");
        assert_eq!(s.get(id + 100).unwrap(), None);
    }

    #[test]
    fn stored_passwords_are_phc_strings_not_plain_text() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = store(&dir);
        s.create("anna", "pw123").unwrap();
        let (_, stored) = s.find("anna").unwrap().unwrap();
        assert!(stored.starts_with("$argon2id$"), "{stored}");
        assert!(!stored.contains("pw123"));
    }

    #[test]
    fn invalid_names_and_passwords_are_refused_before_storing() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = store(&dir);
        assert!(matches!(
            s.create("a", "pw123"),
            Err(AccountError::BadName(_))
        ));
        assert!(matches!(
            s.create("anna", "pw"),
            Err(AccountError::BadPassword(_))
        ));
    }

    #[test]
    fn browser_logins_are_remembered_by_hash_touched_and_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = store(&dir);
        let anna = s.create("anna", "pw123").unwrap().id;
        let bob = s.create("bob", "pw123").unwrap().id;
        let tab = BrowserKey::from_csessid("secret-token-1");
        let other = BrowserKey::from_csessid("secret-token-2");
        assert_eq!(s.browser_login(&tab).unwrap(), None);
        s.remember_browser(&tab, anna, 100.0, 0.0).unwrap();
        s.remember_browser(&other, bob, 100.0, 0.0).unwrap();
        let row = s.browser_login(&tab).unwrap().unwrap();
        assert_eq!((row.account_id, row.last_seen), (anna, 100.0));

        // Touching only updates a browser still logged in as that account.
        s.touch_browsers(&[(tab.clone(), anna), (other.clone(), anna)], 200.0)
            .unwrap();
        assert_eq!(s.browser_login(&tab).unwrap().unwrap().last_seen, 200.0);
        assert_eq!(s.browser_login(&other).unwrap().unwrap().last_seen, 100.0);

        // A new login replaces the old one and prunes stale browsers.
        s.remember_browser(&tab, bob, 300.0, 150.0).unwrap();
        assert_eq!(s.browser_login(&tab).unwrap().unwrap().account_id, bob);
        assert_eq!(s.browser_login(&other).unwrap(), None, "pruned");

        assert!(s.forget_browser(&tab).unwrap());
        assert!(!s.forget_browser(&tab).unwrap());
        s.remember_browser(&tab, anna, 400.0, 0.0).unwrap();
        s.touch_browsers(&[], 500.0).unwrap();
        assert_eq!(s.forget_browsers_before(f64::INFINITY).unwrap(), 1);
    }

    #[test]
    fn the_browser_id_itself_is_never_stored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("accounts.sqlite3");
        let mut s = store(&dir);
        let anna = s.create("anna", "pw123").unwrap().id;
        s.remember_browser(&BrowserKey::from_csessid("tok3n-xyz"), anna, 1.0, 0.0)
            .unwrap();
        drop(s);
        let conn = Connection::open(&path).unwrap();
        let stored: String = conn
            .query_row("SELECT csessid_hash FROM browser_logins", [], |r| r.get(0))
            .unwrap();
        assert_eq!(stored.len(), 64);
        assert!(!stored.contains("tok3n"));
        let raw = std::fs::read(&path).unwrap();
        let wal = std::fs::read(dir.path().join("accounts.sqlite3-wal")).unwrap_or_default();
        for bytes in [raw, wal] {
            assert!(!bytes.windows(9).any(|w| w == b"tok3n-xyz"));
        }
    }

    #[test]
    fn hash_cost_parses_names_and_sizes() {
        assert_eq!(HashCost::parse("fast"), Some(HashCost::Fast));
        assert_eq!(HashCost::parse("Default"), Some(HashCost::Default));
        assert_eq!(HashCost::parse("4096"), Some(HashCost::MemoryKib(4096)));
        assert_eq!(HashCost::parse("cheap"), None);
    }
}
