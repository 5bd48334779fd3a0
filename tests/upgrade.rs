//! `portal upgrade`: the running portal hands its listeners, sessions,
//! game link and game process to a new binary (a fresh copy of the
//! portal) without dropping anyone; a binary that fails the hand-over
//! check is refused and the old portal keeps serving.

mod support;
use support::Portal;

#[test]
fn an_upgrade_keeps_players_their_game_and_its_pid() {
    let mut portal = Portal::start("");
    let mut anna = portal.player("anna");
    let mut bob = portal.player("bob");
    let game_pid = portal.game_pid_other_than(None);
    anna.send("echo before-upgrade");
    anna.expect("before-upgrade");

    let binary = portal.new_binary("portal-new");
    let out = portal.cli(&["upgrade", "--binary", binary.to_str().unwrap()]);
    assert_eq!(out.code, 0, "upgrade: {} {}", out.stdout, out.stderr);
    assert!(out.stdout.contains("upgrades: 1"), "{}", out.stdout);

    anna.send("echo after-upgrade");
    anna.expect("after-upgrade");
    bob.send("say still here");
    anna.expect("bob says, \"still here\"");
    assert_eq!(
        portal.game_pid_other_than(None),
        game_pid,
        "the game was not restarted"
    );
    let status = portal.status_report();
    assert_eq!(status.words("upgrades")[0], "1");
    assert_eq!(status.words("sessions")[0], "2");
    assert!(
        portal.child.try_wait().unwrap().is_none(),
        "same process, still running"
    );
    portal.wait_log("upgrade 1 done: 2 sessions carried");

    // A new player gets in through the carried listener; a second upgrade
    // works from the upgraded portal.
    let mut carl = portal.player("carl");
    let out = portal.cli(&["upgrade", "--binary", binary.to_str().unwrap()]);
    assert_eq!(out.code, 0, "second upgrade: {} {}", out.stdout, out.stderr);
    carl.send("echo twice-upgraded");
    carl.expect("twice-upgraded");
    assert_eq!(portal.game_pid_other_than(None), game_pid);
}

#[test]
fn a_binary_that_fails_the_check_is_refused_and_the_portal_carries_on() {
    let portal = Portal::start("");
    let mut anna = portal.player("anna");
    let bad = portal.script("not-a-portal.sh", "echo portal 9.9.9");
    let out = portal.cli(&["upgrade", "--binary", bad.to_str().unwrap()]);
    assert_eq!(out.code, 1, "{} {}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("does not speak the hand-over"),
        "{}",
        out.stderr
    );
    anna.send("echo still-served");
    anna.expect("still-served");
    let status = portal.status_report();
    assert_eq!(status.words("upgrades")[0], "0");
    let missing = portal.cli(&["upgrade", "--binary", "/no/such/portal"]);
    assert_eq!(missing.code, 2, "{}", missing.stderr);
}

#[test]
fn an_mccp2_stream_ends_before_the_hand_over_and_a_new_one_begins_after() {
    use portal::protocols::telnet::mccp::COMPRESS2;
    use portal::protocols::telnet::ttype::TTYPE;
    use portal::protocols::telnet::{DO, IAC, SB, SE, WONT};
    let portal = Portal::start("");
    let mut client = portal.client();
    client.send_raw(&[IAC, WONT, TTYPE, IAC, DO, COMPRESS2]);
    let start = [IAC, SB, COMPRESS2, IAC, SE];
    client.expect_bytes(&start);
    client.send("create zed pw123");
    let mut first = flate2::Decompress::new(true);
    let mut text = Vec::new();
    let mut pending = Vec::new();
    support::wait_for("the room, compressed", || {
        pending.extend(client.take_raw());
        let mut out = vec![0u8; 65536];
        let before = first.total_in();
        first
            .decompress(&pending, &mut out, flate2::FlushDecompress::None)
            .expect("valid zlib");
        let used = (first.total_in() - before) as usize;
        pending.drain(..used);
        text.extend_from_slice(&out[..first.total_out() as usize - text.len()]);
        String::from_utf8_lossy(&text)
            .contains("Plaza")
            .then_some(())
    });
    let binary = portal.new_binary("portal-new");
    let out = portal.cli(&["upgrade", "--binary", binary.to_str().unwrap()]);
    assert_eq!(out.code, 0, "upgrade: {} {}", out.stdout, out.stderr);
    // The first stream ends (zlib's end marker), then a new one begins.
    let status = support::wait_for("the first stream to end", || {
        pending.extend(client.take_raw());
        let mut out = vec![0u8; 65536];
        let before = first.total_in();
        let status = first
            .decompress(&pending, &mut out, flate2::FlushDecompress::None)
            .expect("valid zlib to its end");
        let used = (first.total_in() - before) as usize;
        pending.drain(..used);
        (status == flate2::Status::StreamEnd).then_some(status)
    });
    assert_eq!(status, flate2::Status::StreamEnd);
    client.send("echo after-the-upgrade");
    support::wait_for("a fresh compression start", || {
        pending.extend(client.take_raw());
        pending.starts_with(&start).then_some(())
    });
    pending.drain(..start.len());
    let mut second = flate2::Decompress::new(true);
    let mut after = Vec::new();
    support::wait_for("the echo, in the new stream", || {
        pending.extend(client.take_raw());
        let mut out = vec![0u8; 65536];
        let before = second.total_in();
        second
            .decompress(&pending, &mut out, flate2::FlushDecompress::None)
            .expect("valid zlib");
        let used = (second.total_in() - before) as usize;
        pending.drain(..used);
        after.extend_from_slice(&out[..second.total_out() as usize - after.len()]);
        String::from_utf8_lossy(&after)
            .contains("after-the-upgrade")
            .then_some(())
    });
}

#[test]
fn an_ajax_session_with_a_parked_receive_goes_on_after_the_upgrade() {
    use support::ajax::{browser_id, AjaxClient};
    let portal = Portal::start("");
    let mut anna = AjaxClient::init(portal.web, &browser_id(1), "tab1");
    anna.create("anna");
    let mut bob = portal.player("bob");
    // A receive parked when the upgrade comes: answered (empty, its
    // connection closed) before the hand-over.
    anna.start_receive();
    let binary = portal.new_binary("portal-new");
    let out = portal.cli(&["upgrade", "--binary", binary.to_str().unwrap()]);
    assert_eq!(out.code, 0, "upgrade: {} {}", out.stdout, out.stderr);
    // (Answered with output still queued from the login, or empty.)
    let answer = anna.poll.answer();
    assert_eq!(answer.status, 200, "{answer:?}");
    if answer.header("connection") == Some("close") {
        anna.poll = support::ajax::Conn::open(portal.web);
    }
    anna.send("echo ajax-after-upgrade");
    anna.expect("ajax-after-upgrade");
    bob.send("say hello anna");
    anna.expect("bob says, \"hello anna\"");
    let status = portal.status_report();
    assert_eq!(status.words("sessions")[0], "2", "{status:?}");
    assert_eq!(status.words("upgrades")[4], "0", "none dropped: {status:?}");
}
