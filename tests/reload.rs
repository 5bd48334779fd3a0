//! SIGUSR1 restarts the game while players stay connected and logged in;
//! a line typed during the restart is answered after it.

mod support;
use support::Portal;

#[test]
fn sigusr1_restarts_the_game_and_keeps_players_logged_in() {
    let mut portal = Portal::start("");
    let mut anna = portal.player("anna");
    let mut bob = portal.player("bob");
    let first_pid = portal.game_pid_other_than(None);

    portal.signal(libc::SIGUSR1);
    anna.expect("The game is restarting");
    bob.expect("The game is restarting");
    anna.send("echo typed-during-restart");

    anna.expect("The game is back");
    anna.expect("typed-during-restart");
    assert_ne!(portal.game_pid_other_than(Some(first_pid)), first_pid);

    bob.send("who");
    let who = bob.expect("anna");
    assert!(!who.contains("create"), "bob is still logged in: {who}");
    bob.send("say still here");
    anna.expect("bob says, \"still here\"");
}

#[test]
fn the_games_own_reload_command_keeps_players() {
    let portal = Portal::start("");
    let mut admin = portal.admin();
    let mut bob = portal.player("bob");
    bob.send("reload");
    bob.expect("not allowed");

    admin.send("reload");
    bob.expect("The game is restarting");
    bob.expect("The game is back");
    bob.send("echo after-reload");
    bob.expect("after-reload");
}
