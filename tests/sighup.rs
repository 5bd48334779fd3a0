//! SIGHUP re-reads portal.conf and never stops the portal.

mod support;
use support::Portal;

#[test]
fn sighup_reloads_the_config_and_players_stay() {
    let portal = Portal::start("");
    let mut anna = portal.player("anna");
    let conf = portal.path("portal.conf");
    let text = std::fs::read_to_string(&conf).unwrap();
    std::fs::write(
        &conf,
        text.replace("[limits]\n", "[limits]\nmax_char_limit = 10\n"),
    )
    .unwrap();
    portal.signal(libc::SIGHUP);
    portal.wait_log("config reloaded");
    anna.send("echo this line is longer than ten");
    anna.expect("too long");
    anna.send("echo short");
    anna.expect("short");
}

#[test]
fn sighup_with_a_broken_file_keeps_the_running_config() {
    let portal = Portal::start("");
    let mut anna = portal.player("anna");
    let conf = portal.path("portal.conf");
    let text = std::fs::read_to_string(&conf).unwrap();
    let broken = text.replace("[limits]\n", "[limits]\nmax_char_limit = \"many\"\n");
    std::fs::write(&conf, broken).unwrap();
    portal.signal(libc::SIGHUP);
    portal.wait_log("config reload refused");
    assert!(
        portal.log().contains("limits.max_char_limit"),
        "the log names the key"
    );
    anna.send("echo still here after a bad reload");
    anna.expect("still here after a bad reload");
}
