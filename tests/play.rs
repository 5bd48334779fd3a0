//! Two players create accounts, log in, see each other and talk.

mod support;
use support::Portal;

#[test]
fn two_players_see_each_other_in_who_and_hear_say() {
    let portal = Portal::start("");
    let mut anna = portal.player("anna");
    let mut bob = portal.player("bob");

    anna.send("who");
    let who = anna.expect("bob");
    assert!(who.contains("anna"), "who lists both: {who}");

    anna.send("say hello bob");
    anna.expect("You say, \"hello bob\"");
    bob.expect("anna says, \"hello bob\"");

    bob.send("say hi anna");
    anna.expect("bob says, \"hi anna\"");

    bob.send("echo ping-123");
    bob.expect("ping-123");
}

#[test]
fn accounts_survive_a_new_connection() {
    let portal = Portal::start("");
    let mut anna = portal.player("carol");
    anna.send("quit");
    anna.expect_closed();

    let mut again = portal.client();
    again.expect("create <name>");
    again.send("connect carol wrongpw");
    again.send("connect carol pw123");
    again.expect("The Portal Plaza");
}
