//! The status file: `key = value` lines describing the running portal
//! (bound addresses, game pid), rewritten atomically when a value changes.
//!
//! Written by `main.rs` (listeners) and the supervisor (game pid); read by
//! scripts and the tests to find free ports the portal picked.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

/// The status file, or nothing when `[portal] status_file` is unset.
pub struct StatusFile {
    path: Option<PathBuf>,
    values: Mutex<BTreeMap<String, String>>,
}

impl StatusFile {
    pub fn new(path: Option<PathBuf>) -> StatusFile {
        StatusFile {
            path,
            values: Mutex::new(BTreeMap::new()),
        }
    }

    /// Set one value and rewrite the file.
    pub fn set(&self, key: &str, value: &str) {
        let mut values = self.values.lock().unwrap_or_else(|p| p.into_inner());
        values.insert(key.to_owned(), value.to_owned());
        let Some(path) = &self.path else { return };
        let text: String = values.iter().map(|(k, v)| format!("{k} = {v}\n")).collect();
        let tmp = path.with_extension("tmp");
        let written = std::fs::write(&tmp, text).and_then(|_| std::fs::rename(&tmp, path));
        if let Err(e) = written {
            log::warn!("cannot write status file {}: {e}", path.display());
        }
    }

    /// Remove the file (clean exit).
    pub fn remove(&self) {
        if let Some(path) = &self.path {
            let _ = std::fs::remove_file(path);
        }
    }
}
