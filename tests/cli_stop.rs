//! `portal stop` and `portal reload-server` take the same paths as SIGTERM
//! and the game's own `shutdown`/`reload`.

mod support;
use support::Portal;

#[test]
fn portal_stop_tells_players_and_exits_cleanly() {
    let mut portal = Portal::start("");
    let mut anna = portal.player("anna");
    let out = portal.cli(&["stop"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("stopped"), "{out:?}");
    assert!(anna.expect_closed().contains("shutting down"));
    assert_eq!(portal.wait_exit(), Some(0));
    assert!(!portal.path("portal.pid").exists(), "pid file removed");
    assert!(
        !portal.path("portal.sock").exists(),
        "control socket removed"
    );
    portal.wait_log("portal stopped");
}

#[test]
fn portal_reload_server_restarts_the_game_keeping_players() {
    let mut portal = Portal::start("");
    let mut anna = portal.player("anna");
    let first = portal.game_pid_other_than(None);
    let out = portal.cli(&["reload-server"]);
    assert_eq!(out.code, 0, "{out:?}");
    anna.expect("The game is restarting");
    anna.expect("The game is back");
    assert_ne!(portal.game_pid_other_than(Some(first)), first);
    anna.send("echo still-here");
    anna.expect("still-here");
}

#[test]
fn portal_reload_reports_the_verdict() {
    let portal = Portal::start("");
    portal.status_report();
    let out = portal.cli(&["reload"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("reloaded"), "{out:?}");

    let text = std::fs::read_to_string(&portal.conf).unwrap();
    std::fs::write(&portal.conf, format!("{text}\nmax_char_limit = 0\n")).unwrap();
    let out = portal.cli(&["reload"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("limits.max_char_limit"), "{out:?}");
    assert!(out.stderr.contains("not reloading"), "{out:?}");
}
