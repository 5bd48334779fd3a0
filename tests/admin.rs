//! The admin is the operator's, never the first player's: a player's
//! account cannot `shutdown`, the admin made from the environment at the
//! game's first start can, `demo_game create-admin` makes one offline,
//! and logins are logged with the session id and client address.

mod support;

use std::process::Command;
use support::{wait_for, Portal};

#[test]
fn the_first_player_is_not_admin_and_the_operators_admin_can_shut_down() {
    let mut portal = Portal::start("");
    let mut anna = portal.player("anna");
    anna.send("shutdown");
    anna.expect("not allowed");

    let mut admin = portal.admin();
    wait_for("the admin's login line", || {
        let text = portal.game_log();
        text.lines()
            .any(|l| l.contains("logged in as operator") && l.contains("from 127.0.0.1:"))
            .then_some(())
    });
    assert!(
        portal
            .game_log()
            .contains("created the admin account operator from the environment"),
        "{}",
        portal.game_log()
    );
    admin.send("shutdown");
    anna.expect_closed();
    assert_eq!(portal.wait_exit(), Some(0));
    let text = portal.game_log();
    assert!(
        text.contains("was refused shutdown: not an admin"),
        "{text}"
    );
    assert!(text.contains("admin operator asked for shutdown"), "{text}");
}

#[test]
fn create_admin_makes_an_admin_offline_and_refuses_a_taken_name() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("game.sqlite3");
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_demo_game"))
            .arg("create-admin")
            .arg("--db")
            .arg(&db)
            .args(["--hash-cost", "fast"])
            .args(args)
            .stdin(std::process::Stdio::null())
            .env_remove("DEMO_GAME_ADMIN_NAME")
            .env_remove("DEMO_GAME_ADMIN_PASSWORD")
            .output()
            .unwrap()
    };
    let out = run(&["root", "pw12345"]);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("admin account root created"));
    let again = run(&["ROOT", "pw12345"]);
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already taken"));
    // Without a terminal, a missing password is an error, not a prompt.
    let missing = run(&["boss"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("not a terminal"));
}
