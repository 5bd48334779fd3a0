//! A game that stops answering (SIGSTOP) for longer than
//! `[game] unresponsive_secs`: players are told, the game is killed and
//! restarted, players stay logged in and held input runs afterwards.

mod support;
use support::Portal;

#[test]
fn a_stopped_game_is_detected_restarted_and_players_stay() {
    let mut portal = Portal::start_edited("", |conf| {
        conf.replace("[game]\n", "[game]\nunresponsive_secs = 2.0\n")
    });
    let mut anna = portal.player("anna");
    let mut bob = portal.player("bob");
    let pid = portal.game_pid_other_than(None);

    // SAFETY: signals to the game process this test's portal started.
    unsafe {
        libc::kill(pid, libc::SIGSTOP);
    }
    anna.expect("not responding");
    bob.expect("not responding");
    anna.send("echo typed-while-hung");
    let new_pid = portal.game_pid_other_than(Some(pid));
    assert_ne!(new_pid, pid);
    anna.expect("The game is back");
    anna.expect("typed-while-hung");
    bob.send("who");
    let who = bob.expect("anna");
    assert!(
        !who.contains("create <name>"),
        "bob is still logged in: {who}"
    );
    portal.wait_log("has not answered a heartbeat");
}
