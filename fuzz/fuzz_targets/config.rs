//! `portal.conf` parsing. Invariants: any text either parses or gives an
//! error naming the file with a reason; parsing is deterministic; a parsed
//! config's derived values (addresses, paths) never panic.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use portal::config::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("/etc/portal/portal.conf");
    match Config::parse(text, path) {
        Ok(config) => {
            assert!(
                Config::parse(text, path).is_ok(),
                "parse is not deterministic"
            );
            let _ = config.amp_addr();
            let _ = config.pidfile_path(path);
            let _ = config.control_socket_path(path);
        }
        Err(e) => {
            let message = e.to_string();
            assert!(message.starts_with("/etc/portal/portal.conf"), "{message}");
            assert!(
                message.len() > path.as_os_str().len() + 2,
                "no reason: {message}"
            );
        }
    }
});
