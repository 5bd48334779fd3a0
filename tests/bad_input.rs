//! A huge line, invalid UTF-8 and a command flood each get a clear message
//! to that player only, while another player keeps being answered.

mod support;
use support::Portal;

#[test]
fn a_100_kb_line_is_refused_with_a_message() {
    let portal = Portal::start("");
    let mut anna = portal.player("anna");
    let mut bob = portal.player("bob");
    let mut line = vec![b'x'; 100 * 1024];
    line.extend_from_slice(b"\r\n");
    anna.send_raw(&line);
    anna.expect("too long");
    bob.send("echo bob-unaffected");
    bob.expect("bob-unaffected");
    anna.send("echo anna-still-playing");
    anna.expect("anna-still-playing");
    assert!(!bob.text().contains("too long"));
}

#[test]
fn invalid_utf8_is_replaced_and_the_player_told() {
    let portal = Portal::start("");
    let mut anna = portal.player("anna");
    anna.send_raw(b"echo caf\xe9 ok\r\n");
    anna.expect("not valid UTF-8");
    anna.expect("caf\u{fffd} ok");
    portal.wait_log("invalid UTF-8");
}

#[test]
fn a_command_flood_is_refused_with_a_message_and_others_carry_on() {
    let portal = Portal::start("max_command_rate = 5.0\n");
    let mut anna = portal.player("anna");
    let mut bob = portal.player("bob");
    let flood: String = (0..200).map(|i| format!("echo flood-{i}\r\n")).collect();
    anna.send_raw(flood.as_bytes());
    anna.expect("too fast");
    bob.send("echo bob-answered");
    bob.expect("bob-answered");
    assert!(!bob.text().contains("too fast"));
    // Once the burst has passed, anna plays again.
    support::wait_for("anna's rate to recover", || {
        anna.send("echo recovered");
        std::thread::sleep(std::time::Duration::from_millis(300));
        anna.pump();
        anna.text().contains("\r\nrecovered").then_some(())
    });
}
