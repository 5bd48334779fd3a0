//! `portal status` asks the running portal over its control socket: it
//! works with players on, with the game down, and says when nothing runs.

mod support;
use support::Portal;

#[test]
fn status_shows_the_game_sessions_counters_and_limits() {
    let mut portal = Portal::start("max_command_rate = 50.0\n");
    let mut anna = portal.player("anna");
    let _bob = portal.player("bob");
    let mut guest = portal.client();
    guest.expect("create <name>");
    anna.send("echo counted");
    anna.expect("counted");
    let game_pid = portal.game_pid_other_than(None);

    let status = portal.status_report();
    assert_eq!(status.first("portal"), "running");
    assert_eq!(status.number("portal", "pid"), u64::from(portal.child.id()));
    assert_eq!(
        status.value("portal", "version"),
        Some(env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(status.first("game"), "running");
    assert_eq!(status.number("game", "pid"), game_pid as u64);
    assert_eq!(status.number("game", "restarts"), 0);
    assert_eq!(status.value("game", "link"), Some("ready"));
    assert_eq!(status.first("sessions"), "3");
    assert_eq!(status.number("sessions", "telnet"), 3);
    assert_eq!(status.first("logged_in"), "2");
    assert_eq!(status.number("connections", "accepted"), 3);
    assert_eq!(status.number("connections", "refused"), 0);
    assert!(status.number("traffic", "bytes_in") > 0);
    assert!(status.number("traffic", "bytes_out") > 0);
    assert!(status.number("traffic", "commands") >= 3, "{status:?}");
    assert_eq!(status.value("limits", "max_command_rate"), Some("50"));

    let socket = portal.path("portal.sock");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "only the portal's user may ask");
}

#[test]
fn status_counts_throttled_connections_and_game_restarts() {
    let mut portal = Portal::start("max_connection_rate = 1.0\n");
    let first = portal.game_pid_other_than(None);
    let mut clients: Vec<_> = (0..3).map(|_| portal.client()).collect();
    clients[2].expect("you are queued");
    portal.signal(libc::SIGUSR1);
    portal.game_pid_other_than(Some(first));
    support::wait_for("the game to be linked again", || {
        let status = portal.status_report();
        (status.value("game", "link") == Some("ready")).then_some(())
    });
    let status = portal.status_report();
    assert!(status.number("connections", "throttled") >= 1, "{status:?}");
    assert_eq!(status.number("game", "restarts"), 1);
    assert_eq!(status.number("game", "crashes"), 0);
}

#[test]
fn status_works_while_the_game_is_down() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("portal.conf");
    let text = support::base_config(dir.path(), true).replace(
        "command = [",
        "command = [\"/bin/sh\", \"-c\", \"exit 3\"]\nunused = [",
    );
    // Drop the real command line: the game dies at once, every time.
    let text: String = text
        .lines()
        .filter(|l| !l.starts_with("unused ="))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&conf, text).unwrap();
    let portal = Portal::launch(dir, &conf);
    let _anna = portal.client();
    let status = support::wait_for("status to report the crash and anna", || {
        let status = portal.status_report();
        (status.number("game", "crashes") >= 1 && status.first("sessions") == "1").then_some(status)
    });
    assert_eq!(status.first("portal"), "running");
    assert!(
        ["down", "running"].contains(&status.first("game")),
        "{status:?}"
    );
    assert_ne!(status.value("game", "link"), Some("ready"));
}

#[test]
fn status_of_an_unsupervised_portal_without_a_game_says_down() {
    let portal = Portal::start_with("", false);
    let status = portal.status_report();
    assert_eq!(status.first("game"), "down");
    assert_eq!(status.value("game", "link"), Some("down"));
    assert_eq!(status.value("game", "supervised"), Some("no"));
}

#[test]
fn status_without_a_portal_says_not_running() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("portal.conf");
    std::fs::write(&conf, "").unwrap();
    let out = support::cli(&conf, &["status"]);
    assert_eq!(out.code, 3, "{out:?}");
    assert!(out.stdout.contains("not running"), "{out:?}");
    let out = support::cli(&conf, &["stop"]);
    assert_eq!(out.code, 3, "{out:?}");
}
