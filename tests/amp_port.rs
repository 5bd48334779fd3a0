//! The AMP port under misuse: junk, oversized frames, a wrong version, a
//! second game, a game that breaks the link. Player sessions never notice.
//! Here the test itself plays the game over raw frames.

mod support;
use portal::amp::codec::encode;
use portal::wire::message::{Command, PortalMsg, ServerMsg, StartMode};
use support::{Portal, RawGame};

fn text_of(message: &PortalMsg) -> Option<(u64, String)> {
    match message {
        PortalMsg::DataIn { sessid, commands } => {
            Some((*sessid, commands.first()?.first_str()?.to_owned()))
        }
        _ => None,
    }
}

#[test]
fn junk_and_oversized_frames_are_refused_and_logged_while_play_goes_on() {
    let portal = Portal::start_with("", false);
    let (mut game, _) = RawGame::link(portal.amp);
    let mut player = portal.client();
    let PortalMsg::Connect { session } =
        game.recv_until(|m| matches!(m, PortalMsg::Connect { .. }))
    else {
        unreachable!()
    };

    let mut junk = RawGame::connect(portal.amp);
    junk.send_raw(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(junk.try_recv().is_none(), "junk is closed without a reply");
    portal.wait_log("not an AMP hello");

    let mut big = RawGame::connect(portal.amp);
    big.send_raw(&[0x7f, 0xff, 0xff, 0xff, 0, 1, 2]);
    assert!(big.try_recv().is_none());

    // The linked game and the player never noticed.
    player.send("still playing");
    let line = game.recv_until(|m| text_of(m).is_some());
    assert_eq!(
        text_of(&line),
        Some((session.sessid, "still playing".into()))
    );
    game.send(&ServerMsg::DataOut {
        sessid: session.sessid,
        commands: vec![Command::text("heard you")],
    });
    player.expect("heard you");
    assert!(
        !player.text().contains("stopped"),
        "no outage was announced"
    );
}

#[test]
fn wrong_version_hello_is_refused_with_a_clear_reason() {
    let portal = Portal::start_with("", false);
    let mut game = RawGame::connect(portal.amp);
    game.send(&ServerMsg::Hello {
        version: 99,
        secret: String::new(),
        name: "future".into(),
    });
    match game.recv() {
        PortalMsg::Refused { reason } => {
            assert!(
                reason.contains("version 1") && reason.contains("version 99"),
                "{reason}"
            )
        }
        other => panic!("expected Refused, got {other:?}"),
    }
    assert!(game.try_recv().is_none(), "link closed after the refusal");
    portal.wait_log("AMP version mismatch");
}

#[test]
fn a_second_game_is_refused_while_one_is_linked() {
    let portal = Portal::start_with("", false);
    let (_first, _) = RawGame::link(portal.amp);
    let mut second = RawGame::connect(portal.amp);
    second.send(&ServerMsg::Hello {
        version: 1,
        secret: String::new(),
        name: "second".into(),
    });
    match second.recv() {
        PortalMsg::Refused { reason } => assert!(reason.contains("already linked"), "{reason}"),
        other => panic!("expected Refused, got {other:?}"),
    }
}

#[test]
fn input_typed_with_no_game_is_held_and_delivered_in_order() {
    let portal = Portal::start_with("", false);
    let mut player = portal.client();
    for i in 0..5 {
        player.send(&format!("line {i}"));
    }
    player.expect("5 waiting");
    let (mut game, sync) = RawGame::link(portal.amp);
    let PortalMsg::Sync { mode, sessions } = sync else {
        panic!("expected Sync, got {sync:?}")
    };
    assert_eq!(mode, StartMode::Start);
    assert_eq!(sessions.len(), 1);
    let mut lines = Vec::new();
    while lines.len() < 5 {
        let message = game.recv();
        if let PortalMsg::DataIn { commands, .. } = message {
            lines.extend(
                commands
                    .iter()
                    .filter_map(|c| c.first_str().map(str::to_owned)),
            );
        }
    }
    assert_eq!(lines, ["line 0", "line 1", "line 2", "line 3", "line 4"]);
}

#[test]
fn an_oversized_frame_from_the_game_closes_the_link_but_not_the_players() {
    let portal = Portal::start_with("", false);
    let (mut game, _) = RawGame::link(portal.amp);
    let mut player = portal.client();
    let connect = game.recv_until(|m| matches!(m, PortalMsg::Connect { .. }));
    let PortalMsg::Connect { session } = connect else {
        unreachable!()
    };

    let mut header = Vec::new();
    header.extend_from_slice(&(64u32 << 20).to_be_bytes());
    game.send_raw(&header);
    assert!(game.try_recv().is_none(), "the portal closes the link");
    portal.wait_log("over max_frame_bytes");
    player.expect("stopped unexpectedly");

    // The player is still connected; a new game gets the session back.
    player.send("still here");
    let (mut game, sync) = RawGame::link(portal.amp);
    let PortalMsg::Sync { mode, sessions } = sync else {
        panic!()
    };
    assert_eq!(mode, StartMode::Crash);
    assert_eq!(sessions[0].sessid, session.sessid);
    let line = game.recv_until(|m| text_of(m).is_some());
    assert_eq!(text_of(&line).unwrap().1, "still here");
    game.send(&ServerMsg::DataOut {
        sessid: session.sessid,
        commands: vec![Command::text("welcome back")],
    });
    player.expect("welcome back");
}

#[test]
fn server_connect_with_an_unknown_protocol_is_an_error_to_the_game() {
    let portal = Portal::start_with("", false);
    let (mut game, _) = RawGame::link(portal.amp);
    game.send(&ServerMsg::ServerConnect {
        protocol_key: "carrier-pigeon".into(),
        config: Default::default(),
    });
    match game.recv_until(|m| matches!(m, PortalMsg::Error { .. })) {
        PortalMsg::Error { request, message } => {
            assert_eq!(request, "ServerConnect");
            assert!(message.contains("carrier-pigeon"), "{message}");
        }
        _ => unreachable!(),
    }
    // The link is still fine.
    let mut player = portal.client();
    player.send("hello");
    game.recv_until(|m| text_of(m).is_some_and(|(_, t)| t == "hello"));
}

#[test]
fn server_connect_telnet_opens_an_outbound_session() {
    use std::io::{Read, Write};
    let remote = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = remote.local_addr().unwrap().port();
    let portal = Portal::start_with("", false);
    let (mut game, _) = RawGame::link(portal.amp);
    let mut config = portal::wire::value::Map::new();
    config.insert("host".into(), "127.0.0.1".into());
    config.insert("port".into(), portal::wire::value::Value::Int(port.into()));
    game.send(&ServerMsg::ServerConnect {
        protocol_key: "telnet".into(),
        config,
    });
    let (mut peer, _) = remote.accept().unwrap();
    let PortalMsg::Connect { session } =
        game.recv_until(|m| matches!(m, PortalMsg::Connect { .. }))
    else {
        unreachable!()
    };
    peer.write_all(b"news from afar\r\n").unwrap();
    let line = game.recv_until(|m| text_of(m).is_some());
    assert_eq!(
        text_of(&line),
        Some((session.sessid, "news from afar".into()))
    );
    game.send(&ServerMsg::DataOut {
        sessid: session.sessid,
        commands: vec![Command::text("reply")],
    });
    let mut got = [0u8; 7];
    peer.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"reply\r\n");
    let _ = encode::<ServerMsg>;
}
