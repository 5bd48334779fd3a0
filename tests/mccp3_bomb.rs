//! MCCP3 input is bounded after inflation: a client whose compressed input
//! inflates past `telnet.max_inflated_input` in one read is told and cut
//! off, and nobody else notices.

mod support;
use portal::protocols::telnet::mccp::COMPRESS3;
use portal::protocols::telnet::{DO, IAC, SB, SE};
use std::io::Write;
use support::Portal;

/// `plain` as one zlib stream at the best ratio (about 1000:1 for zeros).
fn zlib(plain: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(plain).expect("compress");
    encoder.finish().expect("compress")
}

#[test]
fn an_mccp3_bomb_is_cut_off_while_another_player_plays_on() {
    let portal = Portal::start("");
    let mut bob = portal.player("bob");

    let mut bomber = portal.client();
    bomber.expect("create <name>");
    // Small enough to arrive in one read: 2 MiB of zeros.
    let bomb = zlib(&vec![0u8; 2 << 20]);
    assert!(bomb.len() < 3000, "{}", bomb.len());
    let mut input = vec![IAC, DO, COMPRESS3, IAC, SB, COMPRESS3, IAC, SE];
    input.extend(&bomb);
    bomber.send_raw(&input);
    bomber.expect("more at once than the portal accepts");
    bomber.expect_closed();
    portal.wait_log("inflated past telnet.max_inflated_input");

    bob.send("echo ping-123");
    bob.expect("ping-123");
}
