//! Each websocket subprotocol round trip through the portal and the demo
//! game: typed text in, game text out in the format's frames, and GMCP
//! out-of-band messages where the format has them.

mod support;
use support::web::{self, Options, WebClient};
use support::Portal;
use tungstenite::Message;

fn with_subprotocol(portal: &Portal, name: &str) -> WebClient {
    let options = Options {
        subprotocols: Some(name.to_owned()),
        ..Options::default()
    };
    let client = web::connect(portal.web, &options);
    assert_eq!(client.subprotocol.as_deref(), Some(name));
    client
}

fn send_binary(client: &mut WebClient, line: &str) {
    let frame = Message::binary(format!("{line}\n").into_bytes());
    client.ws.send(frame).expect("send");
}

fn is_binary(message: &Message) -> bool {
    matches!(message, Message::Binary(_))
}

#[test]
fn terminal_format_plays_with_ansi_in_binary_frames() {
    let portal = Portal::start("");
    let mut client = with_subprotocol(&portal, "terminal.mudstandards.org");
    client.expect_message("create", is_binary);
    send_binary(&mut client, "create terry pw123");
    let room = client.expect_message("The Portal Plaza", is_binary);
    assert!(room.contains("\x1b["), "ANSI colour: {room:?}");
    // TEXT frames are typed lines too in this format.
    client
        .ws
        .send(Message::text("echo term-token"))
        .expect("send");
    client.expect_message("term-token", is_binary);
}

#[test]
fn gmcp_format_carries_gmcp_in_text_frames() {
    let portal = Portal::start("");
    let mut client = with_subprotocol(&portal, "gmcp.mudstandards.org");
    client.expect_message("create", is_binary);
    send_binary(&mut client, "create gina pw123");
    client.expect_message("The Portal Plaza", is_binary);
    let vitals = client.expect_message("Char.Vitals", |m| matches!(m, Message::Text(_)));
    assert!(vitals.starts_with("Char.Vitals {"), "{vitals}");
    client
        .ws
        .send(Message::text("Core.Ping {\"n\": 7}"))
        .expect("send");
    let pong = client.expect_message("Core.Ping", |m| matches!(m, Message::Text(_)));
    assert!(
        pong.contains('7'),
        "the game answers ping with its payload: {pong}"
    );
}

#[test]
fn json_format_carries_gmcp_envelopes() {
    let portal = Portal::start("");
    let mut client = with_subprotocol(&portal, "json.mudstandards.org");
    client.expect_message("create", is_binary);
    send_binary(&mut client, "create jonas pw123");
    client.expect_message("The Portal Plaza", is_binary);
    let text = |m: &Message| matches!(m, Message::Text(_));
    let vitals = client.expect_message("Char.Vitals", text);
    let envelope: serde_json::Value = serde_json::from_str(&vitals).expect("JSON envelope");
    assert_eq!(envelope["proto"], "gmcp");
    assert_eq!(envelope["id"], "Char.Vitals");
    assert!(
        envelope["data"].as_str().is_some_and(|d| d.contains("hp")),
        "{vitals}"
    );
    let ping = serde_json::json!({"proto": "gmcp", "id": "Core.Ping", "data": "{\"n\": 9}"});
    client
        .ws
        .send(Message::text(ping.to_string()))
        .expect("send");
    let pong = client.expect_message("Core.Ping", text);
    assert!(pong.contains('9'), "{pong}");
}

#[test]
fn evennia_format_carries_commands_as_arrays() {
    let portal = Portal::start("");
    let options = Options {
        subprotocols: Some("v1.evennia.com".into()),
        ..Options::default()
    };
    let mut client = web::connect(portal.web, &options);
    assert_eq!(client.subprotocol.as_deref(), Some("v1.evennia.com"));
    client.create("evan");
    client.send_json(serde_json::json!(["ping", [], {"n": 5}]));
    let pong = client.expect_message("", |m| {
        m.to_text().is_ok_and(|t| t.starts_with("[\"ping\""))
    });
    assert!(pong.contains('5'), "{pong}");
}

/// The window size each format reports reaches the game as the session's
/// screen size (what telnet's NAWS sets), shown by the demo's `client`.
#[test]
fn every_format_with_oob_tells_the_game_its_window_size() {
    let portal = Portal::start("");
    let size = r#"{"screenwidth": 131, "screenheight": 42}"#;
    let cases = [
        ("gmcp.mudstandards.org", format!("Core.Hello {size}")),
        (
            "json.mudstandards.org",
            serde_json::json!({"proto": "gmcp", "id": "Core.Hello", "data": size}).to_string(),
        ),
    ];
    for (n, (subprotocol, report)) in cases.into_iter().enumerate() {
        let mut client = with_subprotocol(&portal, subprotocol);
        client.expect_message("create", is_binary);
        send_binary(&mut client, &format!("create size{n} pw123"));
        client.expect_message("The Portal Plaza", is_binary);
        client.ws.send(Message::text(report)).expect("send");
        send_binary(&mut client, "client");
        client.expect_message("Screen: 131x42", is_binary);
    }
    let mut client = web::connect(portal.web, &Options::default());
    client.create("sizeweb");
    let resize = |w: u32, h: u32| serde_json::json!(["client_options", [], {"screenwidth": w, "screenheight": h}]);
    client.send_json(resize(131, 42));
    client.send("client");
    client.expect("Screen: 131x42");
    // A resize is reported again and replaces the size.
    client.send_json(resize(40, 12));
    client.send("client");
    client.expect("Screen: 40x12");
}
