//! SIGTERM/SIGINT: players are told, the game is stopped, exit 0.

mod support;
use support::Portal;

#[test]
fn sigterm_tells_players_and_exits_cleanly() {
    let mut portal = Portal::start("");
    let mut anna = portal.player("anna");
    let game = portal.game_pid_other_than(None);
    portal.signal(libc::SIGTERM);
    let rest = anna.expect_closed();
    assert!(rest.contains("shutting down"), "{rest}");
    assert_eq!(portal.wait_exit(), Some(0));
    support::wait_for("the game to be gone", || {
        // SAFETY: signal 0 only checks whether the pid exists.
        let alive = unsafe { libc::kill(game, 0) } == 0;
        let zombie = std::fs::read_to_string(format!("/proc/{game}/stat"))
            .map(|s| s.contains(") Z"))
            .unwrap_or(true);
        (!alive || zombie).then_some(())
    });
    assert!(
        !portal.path("portal.status").exists(),
        "status file removed"
    );
}

#[test]
fn sigint_also_shuts_down_cleanly() {
    let mut portal = Portal::start("");
    let mut anna = portal.client();
    anna.expect("create <name>");
    portal.signal(libc::SIGINT);
    assert!(anna.expect_closed().contains("shutting down"));
    assert_eq!(portal.wait_exit(), Some(0));
}
