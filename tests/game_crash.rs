//! `kill -9` of the game: the portal stays up, players are told, the game is
//! restarted and everyone is still logged in.

mod support;
use support::Portal;

#[test]
fn killed_game_is_restarted_and_players_stay_logged_in() {
    let mut portal = Portal::start("");
    let mut anna = portal.player("anna");
    let mut bob = portal.player("bob");
    let pid = portal.game_pid_other_than(None);

    // SAFETY: kill(2) on the game process the portal started for this test.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
    anna.expect("stopped unexpectedly");
    bob.expect("stopped unexpectedly");
    let new_pid = portal.game_pid_other_than(Some(pid));
    assert_ne!(new_pid, pid);
    anna.expect("The game is back");

    anna.send("who");
    let who = anna.expect("bob");
    assert!(who.contains("anna"), "{who}");
    bob.send("say back again");
    anna.expect("bob says, \"back again\"");
    portal.wait_log("game server exited unexpectedly");
}
