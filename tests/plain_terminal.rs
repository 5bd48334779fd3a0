//! Typing in a plain terminal: Linux `telnet` in character mode sends
//! backspace as DEL or BS, and a player must not reach another's screen
//! with control characters through `say`.

mod support;
use support::Portal;

#[test]
fn backspace_and_delete_edit_the_line_before_the_game_sees_it() {
    let portal = Portal::start("");
    let mut anna = portal.player("anna");
    anna.send_raw(b"lo\x7f\x7flook\r\n");
    anna.expect("The Portal Plaza");
    anna.send_raw(b"lo\x08\x08echo edited-with-bs\r\n");
    let seen = anna.expect("edited-with-bs");
    assert!(!seen.contains("lo\u{8}"), "{seen:?}");
}

#[test]
fn control_characters_never_reach_another_players_screen() {
    let portal = Portal::start("");
    let mut anna = portal.player("anna");
    let mut bob = portal.player("bob");
    anna.send_raw(b"say \x07\x1b[2Jbell\tand-clear\r\n");
    let seen = bob.expect("and-clear");
    assert!(seen.contains("[2Jbell\tand-clear"), "{seen:?}");
    assert!(!seen.contains('\u{7}'), "no bell: {seen:?}");
    assert!(!seen.contains("\u{1b}[2J"), "no escape: {seen:?}");
}

#[test]
fn a_browser_on_the_telnet_port_gets_plain_http_first() {
    let portal = Portal::start("");
    let mut browser = support::Client::connect(portal.telnet);
    browser.send_raw(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let answer = browser.expect_closed();
    assert!(answer.starts_with("HTTP/1.1 "), "{answer:?}");
    assert!(answer.contains("not a web page"), "{answer:?}");
}

#[test]
fn a_silent_telnet_client_still_gets_negotiation_promptly() {
    let portal = Portal::start("");
    let started = std::time::Instant::now();
    let mut client = support::Client::connect(portal.telnet);
    client.expect_bytes(&[255]);
    let waited = started.elapsed();
    assert!(waited < std::time::Duration::from_secs(1), "{waited:?}");
    eprintln!("negotiation after {waited:?}");
}
