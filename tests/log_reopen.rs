//! SIGHUP reopens the log file, so logrotate can move it away.

mod support;
use support::Portal;

#[test]
fn sighup_after_the_log_was_moved_starts_a_new_file() {
    let portal = Portal::start("");
    portal.wait_log("game synced");
    let rotated = portal.path("portal.log.1");
    std::fs::rename(portal.path("portal.log"), &rotated).unwrap();

    portal.signal(libc::SIGHUP);
    portal.wait_log("log file");
    let new = portal.log();
    assert!(new.contains("reopened"), "{new}");
    assert!(
        !new.contains("game synced"),
        "old lines stay in the old file"
    );

    // Later lines land in the new file only.
    portal.signal(libc::SIGUSR1);
    portal.wait_log("restarting the game server");
    let old = std::fs::read_to_string(&rotated).unwrap();
    assert!(old.contains("game synced"), "{old}");
    assert!(!old.contains("restarting the game server"), "{old}");
}
